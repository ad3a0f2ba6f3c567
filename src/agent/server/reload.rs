//! The agent's scheduler (`app::driver`) and what restarts it: the account files and
//! config.toml re-read when they change (AGENT-11), the scheduler's events logged and passed
//! to attached dashboards (AGENT-14).

use super::{Holder, Shared};
use crate::app::App;
use crate::app::driver;
use crate::app::status::unix;
use crate::app::view::{AppEvent, LogKind, UiCommand};
use std::path::Path;
use std::sync::Arc;
use tokio::sync::mpsc;

/// What the agent's app was built from: the stamps of the account directory and its files,
/// and of config.toml (hooks). Another value means something was added, changed or removed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct ConfigStamps {
    accounts: Option<crate::provider::Stamps>,
    config: Option<crate::provider::index::Stamp>,
}

impl ConfigStamps {
    /// Taken before the files are read, so an edit made while they load shows as a change.
    pub(super) fn take(config_dir: &Path) -> ConfigStamps {
        ConfigStamps {
            accounts: crate::provider::Stamps::take(config_dir),
            config: crate::provider::index::Stamp::of(
                &config_dir.join(crate::vault::backend::CONFIG_FILE),
            ),
        }
    }
}

/// AGENT-11: account files added, changed or removed, and config.toml's hooks, take effect
/// without a restart. Vault writes by other processes need nothing here: every answer and the
/// scheduler's periodic reload read the vault's generation first.
pub(super) async fn follow_config(shared: Arc<Shared>) {
    let mut tick = tokio::time::interval(shared.cfg.config_poll);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let s = shared.clone();
        let _ = tokio::task::spawn_blocking(move || s.reload_config_if_changed()).await;
    }
}

impl Shared {
    /// Runs the dashboard's scheduler on `app` in the background (AGENT-11): the EXP-4 margin,
    /// wall-clock checks, bounded concurrency, backoff, REF-6, and the hooks (AGENT-12).
    pub(super) fn start_scheduler(&self, app: &Arc<App>) -> mpsc::UnboundedSender<UiCommand> {
        let (commands, rx) = mpsc::unbounded_channel();
        let (events, ev_rx) = mpsc::unbounded_channel();
        tokio::spawn(driver::serve_with(
            app.clone(),
            rx,
            events,
            self.cfg.driver.clone(),
        ));
        tokio::spawn(log_events(ev_rx, self.events.clone()));
        commands
    }

    /// AGENT-11: when the account files or config.toml changed since the app was built, builds
    /// a new app on the same vault handle (the key is not copied) and restarts the scheduler
    /// on it. Requests already running finish on the old app. Blocking: reads files.
    pub(super) fn reload_config_if_changed(&self) {
        let (old_app, old_stamps) = match &*self.holder() {
            Holder::Unlocked(u) => (u.app.clone(), u.stamps.clone()),
            _ => return,
        };
        let stamps = ConfigStamps::take(&self.cfg.config_dir);
        if stamps == old_stamps {
            return;
        }
        let app = match App::new(
            self.cfg.config_dir.clone(),
            old_app.vault().share(),
            self.cfg.settings.clone(),
        ) {
            Ok(app) => Arc::new(app),
            Err(e) => {
                tracing::warn!(error = %e, "cannot reload the account files");
                return;
            }
        };
        let old_commands = {
            let mut h = self.holder();
            let Holder::Unlocked(u) = &mut *h else {
                return;
            };
            // Locked, or reloaded by someone else meanwhile: this app is not the current one.
            if !Arc::ptr_eq(&u.app, &old_app) {
                return;
            }
            let commands = self.start_scheduler(&app);
            u.app = app.clone();
            u.stamps = stamps;
            std::mem::replace(&mut u.commands, commands)
        };
        let _ = old_commands.send(UiCommand::Quit);
        tracing::info!(
            accounts = app.loaded().accounts.len(),
            problems = app
                .loaded()
                .problems
                .iter()
                .filter(|p| p.is_error())
                .count(),
            "account files or config.toml changed: reloaded"
        );
    }
}

/// The scheduler's refresh panel, as log lines (no secrets: the events carry none), and every
/// event to the attached dashboards (AGENT-14). An export line is never broadcast: an attached
/// dashboard's `CopyExport` is answered on its own connection.
async fn log_events(
    mut events: mpsc::UnboundedReceiver<AppEvent>,
    attached: tokio::sync::broadcast::Sender<AppEvent>,
) {
    while let Some(ev) = events.recv().await {
        if !matches!(ev, AppEvent::ExportLine { .. }) && attached.receiver_count() > 0 {
            let _ = attached.send(ev.clone());
        }
        let entry = match ev {
            AppEvent::Log(entry) => entry,
            // Account files with errors, hooks that cannot be read.
            AppEvent::Notice {
                error: true,
                message,
            } => {
                tracing::warn!("{message}");
                continue;
            }
            _ => continue,
        };
        let account = entry.account.as_str();
        match entry.kind {
            LogKind::Refreshed { new_expiry } => {
                tracing::info!(account, expires_at = new_expiry.map(unix), "refreshed")
            }
            LogKind::Rotated => tracing::info!(account, "refresh token rotated"),
            LogKind::Failed {
                reason,
                next_try,
                kind,
            } => tracing::warn!(
                account,
                kind = kind.word(),
                next_try = next_try.map(unix),
                reason = %reason,
                "refresh failed"
            ),
            LogKind::Info(msg) => tracing::info!(account, "{msg}"),
            LogKind::Revoked | LogKind::LoggedIn | LogKind::LoggedOut => {}
        }
    }
}
