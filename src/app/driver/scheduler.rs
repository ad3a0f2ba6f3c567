//! The refresh scheduler: which accounts are due (EXP-4) and when, each refresh on its own
//! task (bounded), the backoff after transient failures and parking after the others (REF-6,
//! REF-7), the vault re-read for other processes' refreshes, and the hooks (AGENT-12).

use super::{Driver, account_views, spawn_guarded};
use crate::app::hooks::{self, HookCall, HookEvent};
use crate::app::refresh::Refreshed;
use crate::app::status::{Health, from_unix, health};
use crate::app::view::{AppEvent, BackendStatus, Badge, LogKind};
use crate::oauth::FailureKind;
use crate::provider::Provider;
use crate::vault::{BackendHealth, Records};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

pub(super) fn spawn_refresh(driver: &Arc<Driver>, name: String, force: bool) {
    if force {
        // The user asked: a parked account gets its one try (and is parked again on failure).
        driver.unpark(&name);
    }
    {
        let Ok(mut busy) = driver.refreshing.lock() else {
            return;
        };
        if !busy.insert(name.clone()) {
            return;
        }
    }
    if let Some(mut v) = driver.view_of(&name) {
        v.state = Badge::Refreshing;
        driver.send(AppEvent::AccountUpdated(v));
    }
    let d = driver.clone();
    let failed = name.clone();
    let on_panic = move |d: &Driver, message: String| {
        if let Ok(mut busy) = d.refreshing.lock() {
            busy.remove(&failed);
        }
        d.log(
            &failed,
            LogKind::Failed {
                reason: message,
                next_try: None,
                kind: FailureKind::Refused,
            },
        );
        d.push_view(&failed);
    };
    spawn_guarded(
        driver,
        async move {
            // The semaphore is never closed; were it, the refresh would simply run unthrottled.
            let _slot = d.refresh_slots.clone().acquire_owned().await;
            let result = d.app.fresh_token(&name, force).await;
            match result {
                Ok((_, how)) => {
                    if let Ok(mut r) = d.retry_at.lock() {
                        r.remove(&name);
                    }
                    d.unpark(&name);
                    match how {
                        Refreshed::Done {
                            expires_at,
                            rotated,
                        } => {
                            d.log(
                                &name,
                                LogKind::Refreshed {
                                    new_expiry: expires_at.map(from_unix),
                                },
                            );
                            if rotated {
                                d.log(&name, LogKind::Rotated);
                            }
                            warn_unknown_expiry(&d, &name, expires_at);
                            let reason = match expires_at {
                                Some(at) => format!("new token expires at {at} (Unix time)"),
                                None => "new token of unknown lifetime".into(),
                            };
                            d.fire_hook(HookEvent::Refreshed, &name, reason);
                        }
                        Refreshed::ByOther => d.log(
                            &name,
                            LogKind::Info("already refreshed by another process".into()),
                        ),
                        Refreshed::NotDue => {}
                        Refreshed::NoRefreshToken => {
                            d.log(&name, LogKind::Info("no refresh token; token kept".into()))
                        }
                        Refreshed::FailedButValid { reason } => {
                            d.fire_hook(HookEvent::RefreshFailed, &name, reason.clone());
                            let next = backoff(&d, &name);
                            d.log(
                                &name,
                                LogKind::Failed {
                                    reason,
                                    next_try: Some(next),
                                    kind: FailureKind::Transient,
                                },
                            );
                        }
                    }
                }
                Err(e) => {
                    // Only a transient failure is retried on the backoff schedule; anything else
                    // waits for the user (REF-6, REF-7).
                    let kind = e.kind();
                    let event = if e.needs_login() {
                        HookEvent::NeedsLogin
                    } else {
                        HookEvent::RefreshFailed
                    };
                    d.fire_hook(event, &name, e.to_string());
                    let next = match kind {
                        FailureKind::Transient => Some(backoff(&d, &name)),
                        _ => {
                            d.park(&name);
                            None
                        }
                    };
                    d.log(
                        &name,
                        LogKind::Failed {
                            reason: e.to_string(),
                            next_try: next,
                            kind,
                        },
                    );
                }
            }
            d.note_own_refresh(&name);
            if let Ok(mut busy) = d.refreshing.lock() {
                busy.remove(&name);
            }
            d.push_view(&name);
        },
        on_panic,
    );
}

impl Driver {
    /// AGENT-12: runs the hook configured for `event`, if any, on its own task: the refresh
    /// that caused it does not wait, and a failing hook is logged and changes nothing else.
    fn fire_hook(self: &Arc<Self>, event: HookEvent, account: &str, reason: String) {
        let Some(argv) = self.hooks.argv(event).map(<[String]>::to_vec) else {
            return;
        };
        let call = HookCall {
            event,
            account: account.to_owned(),
            reason,
        };
        // Tokens may sit in the accounts' export variables of the environment we inherited.
        let scrub: Vec<String> = self
            .app
            .loaded()
            .accounts
            .iter()
            .map(Provider::export_var_name)
            .collect();
        let d = self.clone();
        tokio::spawn(async move {
            let _slot = d.hook_slots.clone().acquire_owned().await;
            if let Err(e) = hooks::run(&argv, &call, &scrub, hooks::HOOK_TIMEOUT).await {
                tracing::warn!(account = %call.account, error = %e, "hook failed");
                d.log(&call.account, LogKind::Info(e.to_string()));
            }
        });
    }
}

/// EXP-3: one refresh-panel line per login or refresh that got a token of unknown lifetime.
pub(super) fn warn_unknown_expiry(d: &Driver, name: &str, expires_at: Option<i64>) {
    if let Some(w) = crate::app::unknown_expiry_warning(name, expires_at) {
        d.log(name, LogKind::Info(format!("warning: {w}")));
    }
}

/// Exponential backoff for scheduled retries after a failure: 15 s, 30 s, … up to 5 min.
fn backoff(d: &Driver, name: &str) -> SystemTime {
    let now = d.now();
    let Ok(mut map) = d.retry_at.lock() else {
        return now + Duration::from_secs(60);
    };
    let step = map.get(name).map_or(Duration::from_secs(15), |(_, s)| {
        (*s * 2).min(Duration::from_secs(300))
    });
    let at = now + step;
    map.insert(name.to_string(), (at, step));
    at
}

pub(super) async fn scheduler(d: Arc<Driver>) {
    let mut tick = tokio::time::interval(d.settings.tick);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let reload_every = d.settings.reload_every;
    let mut last_reload = d.now();
    let mut records = d.records();
    loop {
        tick.tick().await;
        let now = d.now();
        // Wall-clock time: a jump (suspend, NTP) shows up here at the next tick. A backward
        // jump (`duration_since` fails) reloads once, then the clock runs on from there.
        let reload_due = now
            .duration_since(last_reload)
            .map_or(true, |e| e >= reload_every);
        let notified = d
            .reload_now
            .swap(false, std::sync::atomic::Ordering::Relaxed);
        if reload_due || notified {
            let d2 = d.clone();
            if let Ok(fresh) = tokio::task::spawn_blocking(move || d2.records()).await {
                if fresh != records {
                    d.log_refreshed_elsewhere(&records, &fresh);
                    let views = account_views(&d.app, &fresh, now);
                    for v in views {
                        d.send(AppEvent::AccountUpdated(v));
                    }
                }
                records = fresh;
            }
            d.report_backend();
            last_reload = now;
        }
        for name in d.due_now(&records, now) {
            spawn_refresh(&d, name, false);
        }
        // Records refreshed by our own tasks are re-read on the next reload.
        if d.refreshing.lock().map(|b| !b.is_empty()).unwrap_or(false) {
            last_reload = now.checked_sub(reload_every).unwrap_or(now);
        }
    }
}

/// ETCD-7: follows the vault's change notifications, when the backend has them, so another
/// machine's refresh shows up here at once (the next scheduler tick) rather than at the next
/// periodic reload. This is the hook an agent uses too: `Vault::changes`.
pub(super) async fn follow_changes(d: Arc<Driver>) {
    let Some(mut changes) = d.app.vault().changes() else {
        return;
    };
    while changes.changed().await.is_ok() {
        d.reload_now
            .store(true, std::sync::atomic::Ordering::Relaxed);
    }
}

impl Driver {
    /// Sends the shared backend's health to the header when it changed (a local file has
    /// none); a newly unavailable backend also gets a status-bar notice.
    pub(super) fn report_backend(&self) {
        let status = match self.app.vault().health() {
            BackendHealth::Local => return,
            BackendHealth::Connected { backend } => BackendStatus {
                backend,
                healthy: true,
                reason: None,
            },
            BackendHealth::Unavailable { backend, reason } => BackendStatus {
                backend,
                healthy: false,
                reason: Some(reason),
            },
        };
        let Ok(mut last) = self.backend.lock() else {
            return;
        };
        if last.as_ref() == Some(&status) {
            return;
        }
        if let Some(reason) = &status.reason {
            self.send(AppEvent::Notice {
                error: true,
                message: format!("vault backend unavailable: {reason}"),
            });
        }
        *last = Some(status.clone());
        self.send(AppEvent::Backend(status));
    }

    /// Notes what our own refresh of `name` left in the vault.
    fn note_own_refresh(&self, name: &str) {
        let obtained = self
            .app
            .current()
            .ok()
            .and_then(|s| s.records.get(name).map(|r| r.obtained_at));
        if let (Some(obtained), Ok(mut own)) = (obtained, self.own_refresh.lock()) {
            own.insert(name.to_string(), obtained);
        }
    }

    /// Logs the accounts whose tokens changed between `old` and `new` by someone else's refresh.
    fn log_refreshed_elsewhere(&self, old: &Records, new: &Records) {
        let busy = self
            .refreshing
            .lock()
            .map(|b| b.clone())
            .unwrap_or_default();
        let own = self
            .own_refresh
            .lock()
            .map(|o| o.clone())
            .unwrap_or_default();
        for (name, rec) in new {
            let before = old.get(name).map(|r| r.obtained_at);
            let changed = before.is_some_and(|b| b != rec.obtained_at);
            if changed
                && rec.obtained_at.is_some()
                && !busy.contains(name)
                && own.get(name) != Some(&rec.obtained_at)
            {
                self.log(
                    name,
                    LogKind::Refreshed {
                        new_expiry: rec.expires_at.map(from_unix),
                    },
                );
                self.log(name, LogKind::Info("refreshed by another machine".into()));
            }
        }
    }

    /// Whether `name` is a machine account (MACH-1).
    pub(super) fn is_machine(&self, name: &str) -> bool {
        self.app
            .account(name)
            .is_ok_and(|p| p.grant == crate::provider::AccountGrant::ClientCredentials)
    }

    /// The accounts the scheduler should refresh at `now`: logged in with a refresh token, due
    /// by EXP-4 (never when the expiry is unknown, EXP-3), and not waiting out a backoff.
    fn due_now(&self, records: &Records, now: SystemTime) -> Vec<String> {
        let retry_at = self.retry_at.lock().map(|m| m.clone()).unwrap_or_default();
        let parked = self.parked.lock().map(|p| p.clone()).unwrap_or_default();
        records
            .iter()
            .filter(|(name, rec)| {
                self.app.account(name).is_ok()
                    // MACH-1: a machine account renews with its own credentials.
                    && (rec.refresh_token.is_some() || self.is_machine(name))
                    && health(Some(rec), now) != Health::NeedsLogin
                    && crate::app::status::is_due(rec, now)
                    && !retry_at.get(*name).is_some_and(|r| waiting(*r, now))
                    && !parked.contains(*name)
            })
            .map(|(name, _)| name.clone())
            .collect()
    }
}

/// True while a backoff `(at, step)` is still running at `now`. A retry time further away than
/// the step itself means the clock went backwards: retry now rather than wait out the jump.
fn waiting((at, step): (SystemTime, Duration), now: SystemTime) -> bool {
    at.duration_since(now)
        .is_ok_and(|left| !left.is_zero() && left <= step)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_waits_its_step_and_a_backward_clock_jump_does_not_stall_it() {
        let t = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000);
        let step = Duration::from_secs(15);
        let at = t + step;
        assert!(waiting((at, step), t));
        assert!(waiting((at, step), t + Duration::from_secs(14)));
        assert!(!waiting((at, step), at), "due at the retry time");
        assert!(!waiting((at, step), at + Duration::from_secs(1)));
        // The clock went back an hour: retry now instead of an hour and 15 s from now.
        assert!(!waiting((at, step), t - Duration::from_secs(3600)));
    }
}
