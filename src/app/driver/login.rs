//! Logins started from the dashboard: one task per account, its progress as
//! [`LoginStep`]s, a pasted redirect or a cancel passed in while it runs.

use super::scheduler::warn_unknown_expiry;
use super::{Driver, LoginHandle, spawn_guarded};
use crate::app::login::{LoginEvent, LoginInput};
use crate::app::mode::LoginMode;
use crate::app::view::{AppEvent, LogKind, LoginStep};
use std::sync::Arc;
use std::time::{Duration, SystemTime};
use tokio::sync::watch;

pub(super) fn spawn_login(driver: &Arc<Driver>, account: String, mode: LoginMode) {
    let (paste_tx, paste_rx) = tokio::sync::mpsc::unbounded_channel();
    let (cancel_tx, cancel_rx) = watch::channel(false);
    if let Ok(mut logins) = driver.logins.lock()
        && let Some(old) = logins.insert(
            account.clone(),
            LoginHandle {
                paste: paste_tx,
                cancel: cancel_tx,
            },
        )
    {
        let _ = old.cancel.send(true);
    }
    let d = driver.clone();
    let failed = account.clone();
    let on_panic = move |d: &Driver, message: String| {
        if let Ok(mut logins) = d.logins.lock() {
            logins.remove(&failed);
        }
        d.send(AppEvent::LoginProgress {
            account: failed.clone(),
            step: LoginStep::Failed(message),
        });
        d.push_view(&failed);
    };
    spawn_guarded(
        driver,
        async move {
            let timeout = d.app.settings().login_timeout;
            let events = d.events.clone();
            let name = account.clone();
            let sink = move |ev: LoginEvent| {
                let step = match ev {
                    LoginEvent::AuthorizationUrl { url, .. } => LoginStep::ShowUrl {
                        url,
                        expires_at: Some(SystemTime::now() + timeout),
                    },
                    LoginEvent::DeviceCode {
                        user_code,
                        verification_uri,
                        verification_uri_complete,
                        expires_in,
                    } => LoginStep::ShowDeviceCode {
                        user_code,
                        verification_uri,
                        verification_uri_complete,
                        // HARD-4: checked; the device grant caps `expires_in` already.
                        expires_at: SystemTime::now()
                            .checked_add(Duration::from_secs(expires_in))
                            .unwrap_or_else(SystemTime::now),
                    },
                    LoginEvent::PasteRejected(why) => {
                        let _ = events.send(AppEvent::Notice {
                            error: true,
                            message: format!("not accepted: {why}"),
                        });
                        return;
                    }
                    LoginEvent::Exchanging => LoginStep::Waiting,
                };
                let _ = events.send(AppEvent::LoginProgress {
                    account: name.clone(),
                    step,
                });
            };
            let input = LoginInput {
                mode,
                pasted: Some(paste_rx),
                cancel: cancel_rx,
                browser: std::env::var("BROWSER").ok(),
                sink: &sink,
            };
            let result = d.app.login(&account, input).await;
            if let Ok(mut logins) = d.logins.lock() {
                logins.remove(&account);
            }
            match result {
                Ok(expires_at) => {
                    d.send(AppEvent::LoginProgress {
                        account: account.clone(),
                        step: LoginStep::Done,
                    });
                    d.unpark(&account);
                    d.log(&account, LogKind::LoggedIn);
                    warn_unknown_expiry(&d, &account, expires_at);
                }
                Err(e) => d.send(AppEvent::LoginProgress {
                    account: account.clone(),
                    step: LoginStep::Failed(e.to_string()),
                }),
            }
            d.push_view(&account);
        },
        on_panic,
    );
}
