//! The dashboard's back end: answers [`UiCommand`]s and runs the refresh scheduler, reporting
//! everything as [`AppEvent`]s on one channel. The UI never waits on it: both directions are
//! unbounded channels, and network and disk work runs on tokio tasks.
//!
//! The scheduler wakes every second and compares *wall-clock* time with each account's due
//! time, so after a suspend or a clock jump it notices within a second what fell due.

mod commands;
mod login;
mod scheduler;
mod views;

pub use commands::export_line_event;
pub use views::{account_view, account_views, invalid_views};

use super::App;
use super::hooks::{self, Hooks};
use super::view::{AccountView, AppEvent, BackendStatus, LogEntry, LogKind, UiCommand};
use crate::secret::PastedRedirect;
use crate::vault::Records;
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
    let scheduler = tokio::spawn(scheduler::scheduler(driver.clone()));
    let watcher = tokio::spawn(scheduler::follow_changes(driver.clone()));
    while let Some(cmd) = commands.recv().await {
        if matches!(cmd, UiCommand::Quit) {
            break;
        }
        commands::handle(&driver, cmd);
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

#[cfg(test)]
mod tests {
    use super::*;

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
