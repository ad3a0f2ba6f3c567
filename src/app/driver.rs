//! The dashboard's back end: answers [`UiCommand`]s and runs the refresh scheduler, reporting
//! everything as [`AppEvent`]s on one channel. The UI never waits on it: both directions are
//! unbounded channels, and network and disk work runs on tokio tasks.
//!
//! The scheduler wakes every second and compares *wall-clock* time with each account's due
//! time, so after a suspend or a clock jump it notices within a second what fell due.

use super::hooks::{self, HookCall, HookEvent, Hooks};
use super::login::{LoginEvent, LoginInput};
use super::refresh::Refreshed;
use super::status::{Health, from_unix, health};
use super::view::{
    AccountView, AppEvent, BackendStatus, Badge, LogEntry, LogKind, LoginStep, UiCommand,
};
use super::{App, export, mode::LoginMode, schedule};
use crate::oauth::FailureKind;
use crate::provider::{Provider, Source};
use crate::secret::{ExportLine, PastedRedirect};
use crate::vault::{BackendHealth, Record, Records};
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};
use tokio::sync::mpsc::{UnboundedReceiver, UnboundedSender};
use tokio::sync::watch;

/// How often the scheduler looks at the clock.
const SCHEDULER_TICK: Duration = Duration::from_secs(1);
/// How often the vault is re-read for changes made by other processes.
const RELOAD_EVERY: Duration = Duration::from_secs(5);

/// The wall clock the scheduler reads (`SystemTime::now` in production; tests jump it).
pub type Clock = Arc<dyn Fn() -> SystemTime + Send + Sync>;

/// How the driver keeps time. The default is what the dashboard uses; tests inject a clock
/// that jumps and a shorter tick.
#[derive(Clone)]
pub struct DriverSettings {
    /// The wall clock compared with each account's due time.
    pub clock: Clock,
    /// How often the scheduler looks at the clock (1 s).
    pub tick: Duration,
    /// How often (by `clock`) the vault is re-read for other processes' changes (5 s).
    pub reload_every: Duration,
}

impl DriverSettings {
    /// The production settings. Built with the `test-support` feature (what `cargo test`
    /// builds, never a release) the wall clock may be moved by
    /// `AUTHDECK_TEST_CLOCK_OFFSET_FILE`: a file holding a signed number of seconds added to
    /// the real time, read at every look at the clock, so a test can jump the clock of a
    /// running agent or dashboard.
    pub fn from_env() -> DriverSettings {
        #[cfg(feature = "test-support")]
        if let Some(file) = std::env::var_os("AUTHDECK_TEST_CLOCK_OFFSET_FILE") {
            let file = std::path::PathBuf::from(file);
            return DriverSettings {
                clock: Arc::new(move || offset_clock(&file)),
                ..DriverSettings::default()
            };
        }
        DriverSettings::default()
    }
}

/// Real time plus the offset in `file` (none when it cannot be read).
#[cfg(feature = "test-support")]
fn offset_clock(file: &std::path::Path) -> SystemTime {
    let now = SystemTime::now();
    let offset: i64 = std::fs::read_to_string(file)
        .ok()
        .and_then(|t| t.trim().parse().ok())
        .unwrap_or(0);
    let by = Duration::from_secs(offset.unsigned_abs());
    if offset >= 0 {
        now.checked_add(by)
    } else {
        now.checked_sub(by)
    }
    .unwrap_or(now)
}

impl Default for DriverSettings {
    fn default() -> Self {
        DriverSettings {
            clock: Arc::new(SystemTime::now),
            tick: SCHEDULER_TICK,
            reload_every: RELOAD_EVERY,
        }
    }
}

impl std::fmt::Debug for DriverSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DriverSettings")
            .field("tick", &self.tick)
            .field("reload_every", &self.reload_every)
            .finish_non_exhaustive()
    }
}

/// The view of one account for the dashboard (no secrets).
pub fn account_view(p: &Provider, rec: Option<&Record>, now: SystemTime) -> AccountView {
    let mut v = AccountView::new(
        p.name.clone(),
        p.template.clone().unwrap_or_else(|| p.name.clone()),
    );
    v.display_name = p.display_name.clone();
    v.state = health(rec, now).into();
    v.provider_file = match &p.source {
        Source::File(path) => Some(path.clone()),
        Source::Bundled => None,
    };
    v.can_device = p.device_authorization_endpoint.is_some() || p.issuer.is_some();
    v.export_var = Some(p.export_var_name());
    v.machine = p.grant == crate::provider::AccountGrant::ClientCredentials;
    if v.machine && v.state == Badge::NeedsLogin {
        // MACH-1: a machine account without a token has simply not fetched one yet.
        v.state = Badge::Machine;
    }
    if let Some(r) = rec {
        v.expires_at = r.expires_at.map(from_unix);
        v.obtained_at = r.obtained_at.map(from_unix);
        v.identity = r.claims.email.clone().or_else(|| r.claims.subject.clone());
        v.scopes = r.scopes.clone();
        v.token_type = r.token_type.clone();
        v.refresh_count = u32::try_from(r.refresh_count).unwrap_or(u32::MAX);
        v.last_refresh = r.last_refresh.as_ref().map(|a| from_unix(a.at));
        v.next_refresh = r
            .obtained_at
            .and_then(|o| schedule::due_at(from_unix(o), r.expires_at.map(from_unix)));
        v.last_error = super::status::last_error(r);
        v.has_refresh_token = r.refresh_token.is_some();
        let claims = [
            ("sub", &r.claims.subject),
            ("email", &r.claims.email),
            ("name", &r.claims.name),
        ];
        v.claims_verified = r.claims.verified;
        v.claims = claims
            .into_iter()
            .filter_map(|(k, val)| val.clone().map(|val| (k.to_string(), val)))
            .collect();
    }
    v
}

/// The views of every account, and a row for each account file that does not validate.
pub fn account_views(app: &App, records: &Records, now: SystemTime) -> Vec<AccountView> {
    let mut views: Vec<AccountView> = app
        .loaded()
        .accounts
        .iter()
        .map(|p| account_view(p, records.get(&p.name), now))
        .collect();
    views.extend(invalid_views(&app.loaded().problems));
    views.sort_by(|a, b| a.name.cmp(&b.name));
    views
}

/// One row per account file with errors: the account the user meant to have stays visible,
/// with its first problem as `FILE:LINE:COL: message` (and how many more there are).
pub fn invalid_views(problems: &[crate::provider::Problem]) -> Vec<AccountView> {
    let mut by_file: std::collections::BTreeMap<&str, Vec<&crate::provider::Problem>> =
        std::collections::BTreeMap::new();
    for p in problems.iter().filter(|p| p.is_error()) {
        by_file.entry(p.file.as_str()).or_default().push(p);
    }
    by_file
        .into_iter()
        .filter(|(file, _)| file.ends_with(".toml"))
        .filter_map(|(file, found)| {
            let path = std::path::Path::new(file);
            let name = path.file_stem()?.to_string_lossy().into_owned();
            let first = found.first()?.to_string();
            let first = first.lines().next().unwrap_or_default();
            let more = match found.len() {
                1 => String::new(),
                n => format!(" (and {} more)", n - 1),
            };
            let mut v = AccountView::new(name, "");
            v.state = Badge::Invalid;
            v.last_error = Some(format!("{first}{more}"));
            v.provider_file = Some(path.to_path_buf());
            Some(v)
        })
        .collect()
}

/// Shared state of the driver's tasks.
struct Driver {
    app: Arc<App>,
    events: UnboundedSender<AppEvent>,
    refreshing: Mutex<HashSet<String>>,
    /// Each account's `obtained_at` as our own last refresh left it: a reload that finds another
    /// value saw another machine's refresh (logged as such).
    own_refresh: Mutex<HashMap<String, Option<i64>>>,
    /// Set by the vault's change notifications (ETCD-7): the scheduler reloads at its next tick.
    reload_now: std::sync::atomic::AtomicBool,
    /// The backend health last sent to the header.
    backend: Mutex<Option<BackendStatus>>,
    /// Accounts whose last scheduled refresh failed transiently: when to try again, and the
    /// backoff.
    retry_at: Mutex<HashMap<String, (SystemTime, Duration)>>,
    /// Accounts whose last refresh failed in a way that retrying cannot fix (misconfigured,
    /// refused, REF-7): the scheduler leaves them alone until a manual refresh or a login.
    parked: Mutex<HashSet<String>>,
    logins: Mutex<HashMap<String, LoginHandle>>,
    settings: DriverSettings,
    /// At most `refresh_concurrency` token requests at once (as `refresh --all`): refreshing
    /// every account does not open a connection per account, nor finish them all in one burst
    /// of vault writes.
    refresh_slots: Arc<tokio::sync::Semaphore>,
    /// `[hooks]` of config.toml, read when the driver starts (AGENT-12).
    hooks: Hooks,
    /// At most `MAX_RUNNING_HOOKS` hook processes at once.
    hook_slots: Arc<tokio::sync::Semaphore>,
}

struct LoginHandle {
    paste: UnboundedSender<PastedRedirect>,
    cancel: watch::Sender<bool>,
}

impl Driver {
    fn send(&self, ev: AppEvent) {
        // The UI may be gone while a task finishes; nothing to do then.
        let _ = self.events.send(ev);
    }

    /// The driver's wall clock.
    fn now(&self) -> SystemTime {
        (self.settings.clock)()
    }

    fn log(&self, account: &str, kind: LogKind) {
        self.send(AppEvent::Log(LogEntry {
            at: self.now(),
            account: account.to_string(),
            kind,
        }));
    }

    fn records(&self) -> Records {
        // Decrypts only when the vault's generation changed (a cheap header read).
        self.app
            .current()
            .map(|s| s.records.clone())
            .unwrap_or_default()
    }

    fn view_of(&self, name: &str) -> Option<AccountView> {
        let p = self.app.account(name).ok()?;
        // The shared snapshot, not a copy of every record: this runs once per account when
        // many refreshes start or end at once.
        let snap = self.app.current().ok();
        let rec = snap.as_ref().and_then(|s| s.records.get(name));
        Some(account_view(p, rec, self.now()))
    }

    /// Keeps the scheduler away from `name` until [`unpark`](Self::unpark).
    fn park(&self, name: &str) {
        if let Ok(mut p) = self.parked.lock() {
            p.insert(name.to_owned());
        }
        if let Ok(mut r) = self.retry_at.lock() {
            r.remove(name);
        }
    }

    /// Lets the scheduler refresh `name` again: after a success, a login, or a manual refresh.
    fn unpark(&self, name: &str) {
        if let Ok(mut p) = self.parked.lock() {
            p.remove(name);
        }
    }

    fn push_view(&self, name: &str) {
        if let Some(v) = self.view_of(name) {
            self.send(AppEvent::AccountUpdated(v));
        }
    }
}

/// Runs until `commands` closes or a `Quit` arrives.
pub async fn serve(
    app: Arc<App>,
    commands: UnboundedReceiver<UiCommand>,
    events: UnboundedSender<AppEvent>,
) {
    serve_with(app, commands, events, DriverSettings::from_env()).await;
}

/// [`serve`] with an explicit clock and tick (tests).
pub async fn serve_with(
    app: Arc<App>,
    mut commands: UnboundedReceiver<UiCommand>,
    events: UnboundedSender<AppEvent>,
    settings: DriverSettings,
) {
    let slots = app.settings().refresh_concurrency.max(1);
    let (hooks, hook_problem) = match Hooks::load(app.config_dir()) {
        Ok(h) => (h, None),
        Err(e) => (Hooks::default(), Some(e)),
    };
    let driver = Arc::new(Driver {
        hooks,
        hook_slots: Arc::new(tokio::sync::Semaphore::new(hooks::MAX_RUNNING_HOOKS)),
        refresh_slots: Arc::new(tokio::sync::Semaphore::new(slots)),
        app,
        events,
        refreshing: Mutex::new(HashSet::new()),
        own_refresh: Mutex::new(HashMap::new()),
        reload_now: std::sync::atomic::AtomicBool::new(false),
        backend: Mutex::new(None),
        retry_at: Mutex::new(HashMap::new()),
        parked: Mutex::new(HashSet::new()),
        logins: Mutex::new(HashMap::new()),
        settings,
    });
    let records = driver.records();
    driver.send(AppEvent::AccountsLoaded(account_views(
        &driver.app,
        &records,
        driver.now(),
    )));
    for p in &driver.app.loaded().problems {
        driver.send(AppEvent::Notice {
            error: p.is_error(),
            message: p.to_string().lines().next().unwrap_or_default().to_string(),
        });
    }
    if let Some(e) = hook_problem {
        tracing::warn!(error = %e, "hooks not loaded");
        driver.send(AppEvent::Notice {
            error: true,
            message: format!("hooks not run: {e}"),
        });
    }
    driver.report_backend();
    let scheduler = tokio::spawn(scheduler(driver.clone()));
    let watcher = tokio::spawn(follow_changes(driver.clone()));
    while let Some(cmd) = commands.recv().await {
        if matches!(cmd, UiCommand::Quit) {
            break;
        }
        handle(&driver, cmd);
    }
    scheduler.abort();
    watcher.abort();
    let logins: Vec<LoginHandle> = driver
        .logins
        .lock()
        .map(|mut l| l.drain().map(|(_, h)| h).collect())
        .unwrap_or_default();
    for h in logins {
        let _ = h.cancel.send(true);
    }
}

fn handle(driver: &Arc<Driver>, cmd: UiCommand) {
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

/// Runs `task` on the runtime; should it panic, `on_panic` gets the (sanitised) panic message
/// and turns it into an event, so the dashboard reports the failure and stays usable instead
/// of losing the task silently (HARD-4).
fn spawn_guarded<C, F>(driver: &Arc<C>, task: F, on_panic: impl FnOnce(&C, String) + Send + 'static)
where
    C: Send + Sync + 'static,
    F: std::future::Future<Output = ()> + Send + 'static,
{
    let handle = tokio::spawn(task);
    let d = Arc::clone(driver);
    tokio::spawn(async move {
        if let Err(e) = handle.await
            && e.is_panic()
        {
            on_panic(&d, panic_message(e.into_panic()));
        }
    });
}

/// The text of a panic payload, escaped like server text (AUTHZ-7) before it is shown (HARD-4).
fn panic_message(payload: Box<dyn std::any::Any + Send>) -> String {
    let text = payload
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic".to_owned());
    format!(
        "internal error (a bug): {}",
        crate::oauth::error::sanitize(&text, 200)
    )
}

fn spawn_refresh(driver: &Arc<Driver>, name: String, force: bool) {
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
fn warn_unknown_expiry(d: &Driver, name: &str, expires_at: Option<i64>) {
    if let Some(w) = super::unknown_expiry_warning(name, expires_at) {
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

async fn scheduler(d: Arc<Driver>) {
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
async fn follow_changes(d: Arc<Driver>) {
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
    fn report_backend(&self) {
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
    fn is_machine(&self, name: &str) -> bool {
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
                    && super::status::is_due(rec, now)
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

fn spawn_login(driver: &Arc<Driver>, account: String, mode: LoginMode) {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_invalid_account_file_becomes_a_row_with_file_line_col() {
        let dir = tempfile::tempdir().unwrap();
        let providers = dir.path().join("providers");
        std::fs::create_dir_all(&providers).unwrap();
        std::fs::write(
            providers.join("good.toml"),
            "extends = \"oidc\"\nissuer = \"http://127.0.0.1:9\"\nclient_id = \"c\"\n",
        )
        .unwrap();
        std::fs::write(
            providers.join("broken.toml"),
            "extends = \"google\"\nclient_id = \"c\"\nscope = 1\ntypo = 2\n",
        )
        .unwrap();
        let loaded = crate::provider::load_accounts(dir.path());
        let rows = invalid_views(&loaded.problems);
        assert_eq!(rows.len(), 1, "{rows:?}");
        let r = &rows[0];
        assert_eq!((r.name.as_str(), r.state), ("broken", Badge::Invalid));
        let err = r.last_error.as_deref().unwrap_or_default();
        assert!(
            err.contains("broken.toml:3:1: unknown field `scope`"),
            "{err}"
        );
        assert!(err.ends_with("(and 1 more)"), "{err}");
        assert_eq!(
            r.provider_file.as_deref(),
            Some(providers.join("broken.toml").as_path())
        );
    }

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

    #[test]
    fn default_settings_are_the_production_clock_and_tick() {
        let s = DriverSettings::default();
        assert_eq!((s.tick, s.reload_every), (SCHEDULER_TICK, RELOAD_EVERY));
        let before = SystemTime::now();
        let read = (s.clock)();
        assert!(read >= before && read <= SystemTime::now());
    }

    /// HARD-4: a task that panics is reported through `on_panic` with its message escaped,
    /// and the runtime (the dashboard's back end) keeps running.
    #[tokio::test]
    async fn a_panicking_task_becomes_an_event() {
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<String>();
        let ctx = Arc::new(tx);
        spawn_guarded(
            &ctx,
            async { panic!("overflow when adding duration to instant\u{1b}[2J") },
            |tx, message| {
                let _ = tx.send(message);
            },
        );
        let message = tokio::time::timeout(Duration::from_secs(5), rx.recv())
            .await
            .unwrap()
            .unwrap();
        assert!(
            message.starts_with("internal error (a bug): overflow"),
            "{message}"
        );
        assert!(!message.contains('\u{1b}'), "{message}");
        // The runtime is still there for the next task.
        assert_eq!(tokio::spawn(async { 7 }).await.unwrap(), 7);
    }
}
