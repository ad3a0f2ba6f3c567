//! The dashboard (`authdeck` with no command) and `authdeck demo`: wiring `app`'s back end to
//! the `ui` loop.

use super::context::{Access, Locations, access, open_app, run};
use super::status::status;
use crate::app::dashboard;
use crate::app::exit;
use crate::app::mode;
use crate::app::status::human_duration;
use crate::app::{App, AppError};
use crate::provider;
use crate::vault;
use std::io::IsTerminal;
use std::path::PathBuf;
use std::time::SystemTime;

/// The dashboard: `authdeck` with no command. Falls back to `status` when stdout is not a
/// terminal (scripts, pipes). A passphrase vault with no passphrase in the environment is
/// unlocked inside the dashboard (a wrong passphrase asks again).
pub fn dashboard(loc: &Locations) -> u8 {
    if !std::io::stdout().is_terminal() {
        return status(loc, false);
    }
    run(|rt| {
        // AGENT-9, AGENT-14: with an agent running, the dashboard is its client and only the
        // agent's scheduler runs; `AUTHDECK_AGENT=off` or no agent: the vault, as always.
        if let Access::Agent(link) = access(loc)?
            && let Some((stream, read_ahead)) = link.attach()?
        {
            return rt.block_on(super::attach::run_attached(loc.clone(), stream, read_ahead));
        }
        let config_dir = provider::config_dir(loc.config.as_deref())
            .map_err(|e| AppError::Config(e.to_string()))?;
        let backend = vault::Backend::resolve(loc.vault.as_deref(), &config_dir)?;
        // A local passphrase vault is unlocked inside the dashboard; a shared one asks (or
        // reads the environment) before raw mode.
        let path = backend.file().map(std::path::Path::to_path_buf);
        if let Some(path) = &path
            && dashboard::needs_passphrase_prompt(path)?
        {
            return rt.block_on(run_locked_dashboard(config_dir, path.clone()));
        }
        // With accounts but no vault yet, a login from the dashboard will create the vault, so
        // its key is settled now (environment, or a new passphrase asked before raw mode).
        let create =
            dashboard::has_account_files(&config_dir) && path.as_ref().is_none_or(|p| !p.exists());
        let app = open_app(loc, create)?;
        rt.block_on(run_dashboard(std::sync::Arc::new(app)))
    })
}

/// The dashboard on a locked vault: [`dashboard::serve_locked`] asks for the passphrase
/// through it, then serves as usual.
async fn run_locked_dashboard(config_dir: PathBuf, path: PathBuf) -> Result<u8, AppError> {
    let (cmd_tx, cmd_rx) = tokio::sync::mpsc::unbounded_channel();
    let (ev_tx, ev_rx) = tokio::sync::mpsc::unbounded_channel();
    let state =
        crate::ui::DashboardState::new(Vec::new(), SystemTime::now(), crate::ui::Theme::from_env());
    let backend = tokio::spawn(dashboard::serve_locked(config_dir, path, cmd_rx, ev_tx));
    let result = crate::ui::run(state, cmd_tx, ev_rx).await;
    backend.abort();
    result.map_err(|e| AppError::Config(e.to_string()))?;
    Ok(exit::OK)
}

/// Runs the dashboard on `app` until the user quits.
async fn run_dashboard(app: std::sync::Arc<App>) -> Result<u8, AppError> {
    use crate::app::driver;
    let (cmd_tx, cmd_rx) = tokio::sync::mpsc::unbounded_channel();
    let (ev_tx, ev_rx) = tokio::sync::mpsc::unbounded_channel();
    let now = SystemTime::now();
    let records = app.vault().read()?;
    let mut state = crate::ui::DashboardState::new(
        driver::account_views(&app, &records, now),
        now,
        crate::ui::Theme::from_env(),
    );
    state.preferred_login = mode::detect();
    let backend = tokio::spawn(driver::serve(app, cmd_rx, ev_tx));
    let result = crate::ui::run(state, cmd_tx, ev_rx).await;
    backend.abort();
    result.map_err(|e| AppError::Config(e.to_string()))?;
    Ok(exit::OK)
}

/// `authdeck demo`: the embedded server, a throwaway vault, one account logged in, then the
/// dashboard.
pub fn demo() -> u8 {
    run(|rt| {
        eprintln!("authdeck demo: starting the embedded authorization server…");
        let demo = rt.block_on(crate::app::demo::start(std::time::Duration::from_secs(30)))?;
        eprintln!(
            "authdeck demo: server {}; throwaway vault in {}",
            demo.server.issuer(),
            demo.dir().display()
        );
        let crate::app::demo::Demo { app, server, .. } = demo;
        let app = std::sync::Arc::new(app);
        let code = if std::io::stdout().is_terminal() {
            rt.block_on(run_dashboard(app.clone()))?
        } else {
            // No terminal: show what the demo set up, as `status` would.
            for s in app.statuses(SystemTime::now())? {
                println!(
                    "{}\t{}\t{}",
                    s.account,
                    s.state.as_str(),
                    s.expires_in.map_or_else(|| "-".into(), human_duration)
                );
            }
            exit::OK
        };
        drop(server);
        Ok(code)
    })
}
