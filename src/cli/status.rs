//! `authdeck status`: every account as a table or JSON.

use super::context::{Access, Locations, access, incomplete, open_app, run};
use crate::agent::protocol::{KeyState, Request};
use crate::app::AppError;
use crate::app::exit;
use crate::app::status::{AccountStatus, Health, human_duration, unix};
use crate::provider;
use crate::text::sanitize;
use std::io::Write;
use std::time::SystemTime;

/// `authdeck status [--json]`.
pub fn status(loc: &Locations, json: bool) -> u8 {
    run(|_| {
        // AGENT-9: the agent's view when one answers (and has a vault), else the vault's.
        let (statuses, config_dir, problems) = match from_agent(loc)? {
            Some(parts) => parts,
            None => {
                let app = open_app(loc, false)?;
                let statuses = app.statuses(SystemTime::now())?;
                let problems = app.loaded().problems.iter().map(ToString::to_string);
                (statuses, app.config_dir().to_path_buf(), problems.collect())
            }
        };
        let mut out = std::io::stdout().lock();
        if json {
            let text = serde_json::to_string_pretty(&statuses)
                .map_err(|e| AppError::Config(e.to_string()))?;
            let _ = writeln!(out, "{text}");
            return Ok(exit::OK);
        }
        if statuses.is_empty() {
            let _ = writeln!(
                out,
                "No accounts yet. Create {}/NAME.toml (see `authdeck providers`), then `authdeck login NAME`.",
                provider::accounts_dir(&config_dir).display()
            );
            return Ok(exit::OK);
        }
        let rows: Vec<[String; 7]> = statuses
            .iter()
            .map(|s| {
                [
                    s.account.clone(),
                    s.provider.clone(),
                    // MACH-1: a machine account is never "needs login".
                    match (s.machine, s.state) {
                        (true, Health::NeedsLogin) => "machine (no token yet)".into(),
                        (true, state) => format!("{} (machine)", state.as_str()),
                        (false, state) => state.as_str().to_string(),
                    },
                    match (s.state, s.expires_in) {
                        (Health::NeedsLogin, _) => "-".into(),
                        (_, Some(secs)) if secs < 0 => {
                            format!("expired {} ago", human_duration(-secs))
                        }
                        (_, Some(secs)) => human_duration(secs),
                        (_, None) => "never/unknown".into(),
                    },
                    // HARD-9: the identity and scopes come from the server.
                    s.identity
                        .as_deref()
                        .map_or_else(|| "-".into(), |i| sanitize(i, 200)),
                    if s.scopes.is_empty() {
                        "-".into()
                    } else {
                        sanitize(&s.scopes.join(" "), 500)
                    },
                    match (s.last_refresh, s.last_refresh_ok) {
                        (Some(at), Some(ok)) => format!(
                            "{} ago{}",
                            human_duration(unix(SystemTime::now()) - at),
                            if ok { "" } else { " (failed)" }
                        ),
                        _ => "-".into(),
                    },
                ]
            })
            .collect();
        let header = [
            "ACCOUNT",
            "PROVIDER",
            "STATE",
            "EXPIRES IN",
            "IDENTITY",
            "SCOPES",
            "LAST REFRESH",
        ];
        let widths: Vec<usize> = (0..7)
            .map(|i| {
                rows.iter()
                    .map(|r| r[i].chars().count())
                    .chain([header[i].len()])
                    .max()
                    .unwrap_or(0)
            })
            .collect();
        let line = |cells: &[String]| {
            cells
                .iter()
                .zip(&widths)
                .map(|(c, w)| format!("{c:<w$}"))
                .collect::<Vec<_>>()
                .join("  ")
                .trim_end()
                .to_string()
        };
        let _ = writeln!(out, "{}", line(&header.map(String::from)));
        for (r, s) in rows.iter().zip(&statuses) {
            let _ = writeln!(out, "{}", line(r));
            // REF-9: narrower tokens under their account.
            for n in &s.narrowed {
                let left = match n.expires_in {
                    Some(secs) if secs < 0 => format!("expired {} ago", human_duration(-secs)),
                    Some(secs) => format!("expires in {}", human_duration(secs)),
                    None => "expiry unknown".into(),
                };
                let _ = writeln!(out, "  + {}  {left}", n.key);
            }
        }
        for p in &problems {
            eprintln!("{p}");
        }
        Ok(exit::OK)
    })
}

/// The agent's statuses, configuration directory and account-file problems; `None` when no
/// agent answers, or when its vault does not exist yet (the direct path then says what it
/// always says). A locked agent is the locked error (exit 5).
#[allow(clippy::type_complexity)]
fn from_agent(
    loc: &Locations,
) -> Result<Option<(Vec<AccountStatus>, std::path::PathBuf, Vec<String>)>, AppError> {
    let Access::Agent(mut link) = access(loc)? else {
        return Ok(None);
    };
    loop {
        let Some(r) = link.call(|origin| Request::Status { origin })? else {
            return Ok(None);
        };
        let info = r.agent.ok_or_else(|| incomplete("agent"))?;
        match info.state {
            KeyState::NoVault => return Ok(None),
            // Unlocked here once on a terminal, then asked again; else exit 5.
            KeyState::Locked => link.locked()?,
            KeyState::Unlocked => {
                return Ok(Some((
                    r.accounts.ok_or_else(|| incomplete("accounts"))?,
                    info.config_dir,
                    r.problems.unwrap_or_default(),
                )));
            }
        }
    }
}
