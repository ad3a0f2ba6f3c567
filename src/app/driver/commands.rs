//! The dashboard's commands ([`UiCommand`]): each answered on a task of its own, so the
//! command loop never waits.

use super::Driver;
use super::login::spawn_login;
use super::scheduler::spawn_refresh;
use crate::app::view::{AppEvent, LogKind, UiCommand};
use crate::app::{App, export};
use crate::secret::ExportLine;
use std::sync::Arc;

pub(super) fn handle(driver: &Arc<Driver>, cmd: UiCommand) {
    match cmd {
        UiCommand::Refresh(name) => spawn_refresh(driver, name, true),
        UiCommand::RefreshAll => {
            let records = driver.records();
            for name in driver.app.account_names() {
                if records.get(&name).is_some_and(|r| r.access_token.is_some())
                    || driver.is_machine(&name)
                {
                    spawn_refresh(driver, name, true);
                }
            }
        }
        // MACH-1: "log in" to a machine account means fetching its token.
        UiCommand::Login { account, .. } if driver.is_machine(&account) => {
            spawn_refresh(driver, account, true);
        }
        UiCommand::Login { account, mode } => spawn_login(driver, account, mode),
        UiCommand::SubmitPaste { account, input } => {
            let sender = driver
                .logins
                .lock()
                .ok()
                .and_then(|l| l.get(&account).map(|h| h.paste.clone()));
            match sender {
                Some(tx) => {
                    let _ = tx.send(input);
                }
                None => driver.send(AppEvent::Notice {
                    error: true,
                    message: format!("no login in progress for {account}"),
                }),
            }
        }
        UiCommand::CancelLogin { account } => {
            if let Some(h) = driver
                .logins
                .lock()
                .ok()
                .and_then(|mut l| l.remove(&account))
            {
                let _ = h.cancel.send(true);
            }
        }
        UiCommand::Revoke(name) => {
            let d = driver.clone();
            tokio::spawn(async move {
                match d.app.revoke(&name).await {
                    Ok(note) => {
                        d.log(&name, LogKind::Revoked);
                        d.send(AppEvent::Notice {
                            error: false,
                            message: format!("{name}: {note}"),
                        });
                    }
                    Err(e) => d.send(AppEvent::Notice {
                        error: true,
                        message: e.to_string(),
                    }),
                }
                d.push_view(&name);
            });
        }
        UiCommand::Logout(name) => {
            let d = driver.clone();
            tokio::task::spawn_blocking(move || {
                match d.app.logout(&name) {
                    Ok(_) => d.log(&name, LogKind::LoggedOut),
                    Err(e) => d.send(AppEvent::Notice {
                        error: true,
                        message: e.to_string(),
                    }),
                }
                d.push_view(&name);
            });
        }
        UiCommand::CopyExport(name) => {
            let d = driver.clone();
            tokio::spawn(async move {
                let ev = export_line_event(&d.app, name).await;
                d.send(ev);
            });
        }
        // The vault is opened before the driver starts (see `cli`); nothing to do here.
        UiCommand::SubmitPassphrase(_) => {}
        // Only a dashboard attached to an agent has an agent to lock; the agent handles it.
        UiCommand::LockAgent => driver.send(AppEvent::Notice {
            error: true,
            message: "no agent runs: there is nothing to lock".into(),
        }),
        UiCommand::Quit => {}
    }
}

/// The answer to [`UiCommand::CopyExport`]: the account's export line (its token refreshed
/// first when due), or a notice saying why not.
pub async fn export_line_event(app: &App, name: String) -> AppEvent {
    let notice = |e: &dyn std::fmt::Display| AppEvent::Notice {
        error: true,
        message: e.to_string(),
    };
    let var = match app.account(&name) {
        Ok(p) => p.export_var_name(),
        Err(e) => return notice(&e),
    };
    match app.fresh_token(&name, false).await {
        Ok((token, _)) => match export::line(export::ExportFormat::Sh, &var, token.secret()) {
            Ok(line) => AppEvent::ExportLine {
                account: name,
                line: ExportLine::new(line),
            },
            Err(e) => notice(&e),
        },
        Err(e) => notice(&e),
    }
}
