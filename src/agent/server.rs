//! The agent process: binds the socket, checks every peer, answers frames, keeps the vault key
//! (and nothing derived from a passphrase but the key) and runs the dashboard's scheduler in
//! the background.

use super::AgentError;
use super::harden::{self, peer_of};
use super::protocol::{
    self, AccountFailure, AgentInfo, ErrorCode, ExportVar, Failure, GitOperation, KeyState,
    MAX_FRAME, Narrow, Origin, RefreshResult, Request, Response,
};
use super::socket::{self, Existing, SocketPath};
use crate::app::driver::{self, DriverSettings};
use crate::app::handoff::Handed;
use crate::app::refresh::Refreshed;
use crate::app::status::unix;
use crate::app::view::{AgentKeyState, AgentView, AppEvent, LogKind, LoginMode, UiCommand};
use crate::app::{App, AppError, Settings};
use crate::secret::Passphrase;
use crate::vault::{self, FileStore, KeyEnv, KeyKind, KeySource, Vault, VaultError};
use std::fs::File;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::{Notify, Semaphore, mpsc};
use zeroize::Zeroizing;

/// Connections served at once; more are answered `busy` and closed.
const MAX_CONNECTIONS: usize = 256;

/// How long a connection may sit without sending a complete frame.
const IDLE_TIMEOUT: Duration = Duration::from_secs(60);

/// How often the account files and config.toml are checked for changes (AGENT-11).
const CONFIG_POLL: Duration = Duration::from_secs(2);

/// Events kept for an attached dashboard that has not read them yet; one that falls further
/// behind gets the whole account list again (AGENT-14).
const EVENT_BACKLOG: usize = 1024;

/// How often an attached dashboard's view of the agent (locked, when it locks) is compared
/// with the agent's (AGENT-14).
const AGENT_VIEW_POLL: Duration = Duration::from_secs(1);

/// The longest delay after wrong passphrases (AGENT-7).
const MAX_UNLOCK_DELAY: Duration = Duration::from_secs(30);

/// How the agent is set up.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Where to listen.
    pub socket: SocketPath,
    /// The vault served.
    pub vault: PathBuf,
    /// The configuration directory (account files).
    pub config_dir: PathBuf,
    /// Lock after this much time without a request (AGENT-8).
    pub lock_after: Option<Duration>,
    /// App settings (timeouts, concurrency).
    pub settings: Settings,
    /// The scheduler's clock and tick.
    pub driver: DriverSettings,
    /// The delay after the first wrong passphrase; doubles with each (AGENT-7).
    pub unlock_delay: Duration,
    /// Keys the agent may use at start: a key file, or a passphrase from the environment.
    pub key_env: KeyEnv,
    /// How often account files and config.toml are checked for changes (AGENT-11).
    pub config_poll: Duration,
}

impl ServerConfig {
    /// The defaults for `socket`, `vault` and `config_dir`.
    pub fn new(socket: SocketPath, vault: PathBuf, config_dir: PathBuf) -> Self {
        Self {
            socket,
            vault,
            config_dir,
            lock_after: None,
            settings: Settings::default(),
            driver: DriverSettings::from_env(),
            unlock_delay: Duration::from_millis(500),
            key_env: KeyEnv::default(),
            config_poll: CONFIG_POLL,
        }
    }
}

/// The key the agent holds, and what runs because of it.
enum Holder {
    /// No vault file yet.
    NoVault,
    /// A passphrase vault with no key held.
    Locked,
    /// Tokens can be served.
    Unlocked(Box<Unlocked>),
}

struct Unlocked {
    app: Arc<App>,
    kind: KeyKind,
    memory_locked: bool,
    /// The scheduler (`app::driver`); dropped or told to quit on lock.
    commands: mpsc::UnboundedSender<UiCommand>,
    /// The account files and config.toml as `app` loaded them (AGENT-11).
    stamps: ConfigStamps,
}

/// What the agent's app was built from: the stamps of the account directory and its files,
/// and of config.toml (hooks). Another value means something was added, changed or removed.
#[derive(Debug, Clone, PartialEq, Eq)]
struct ConfigStamps {
    accounts: Option<crate::provider::Stamps>,
    config: Option<crate::provider::index::Stamp>,
}

impl ConfigStamps {
    /// Taken before the files are read, so an edit made while they load shows as a change.
    fn take(config_dir: &Path) -> ConfigStamps {
        ConfigStamps {
            accounts: crate::provider::Stamps::take(config_dir),
            config: crate::provider::index::Stamp::of(
                &config_dir.join(crate::vault::backend::CONFIG_FILE),
            ),
        }
    }
}

impl Drop for Unlocked {
    fn drop(&mut self) {
        let _ = self.commands.send(UiCommand::Quit);
    }
}

struct Shared {
    cfg: ServerConfig,
    uid: u32,
    host: String,
    started_at: i64,
    holder: Mutex<Holder>,
    last_used: Mutex<Instant>,
    /// Serializes unlock attempts and counts consecutive failures (AGENT-7).
    unlock_gate: tokio::sync::Mutex<u32>,
    shutdown: Notify,
    connections: Arc<Semaphore>,
    /// What the scheduler reports, for attached dashboards (AGENT-14); it outlives each
    /// scheduler (lock, unlock, reload).
    events: tokio::sync::broadcast::Sender<AppEvent>,
}

/// A bound agent, ready to [`run`](Server::run).
pub struct Server {
    listener: std::os::unix::net::UnixListener,
    shared: Arc<Shared>,
    /// Held for the agent's life: one agent per vault (AGENT-5).
    _vault_claim: File,
}

impl std::fmt::Debug for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Server")
            .field("socket", &self.shared.cfg.socket.path)
            .field("vault", &self.shared.cfg.vault)
            .finish_non_exhaustive()
    }
}

/// `<vault>.agent`: the file whose lock says an agent serves this vault, and who.
pub fn claim_path(vault: &Path) -> PathBuf {
    let mut name = vault.file_name().unwrap_or_default().to_os_string();
    name.push(".agent");
    vault.with_file_name(name)
}

impl Server {
    /// Prepares the socket directory (AGENT-1), claims the vault (AGENT-5), replaces a stale
    /// socket and binds. Nothing is listening if this fails.
    pub fn bind(cfg: ServerConfig) -> Result<Server, AgentError> {
        let uid = socket::current_uid();
        socket::prepare_dir(&cfg.socket, uid)?;
        let claim = claim_vault(&cfg.vault, &cfg.socket.path)?;
        match socket::probe(&cfg.socket.path)? {
            Existing::Nothing => {}
            Existing::Stale => {
                tracing::info!(socket = %cfg.socket.path.display(), "replacing a stale socket");
                std::fs::remove_file(&cfg.socket.path)
                    .map_err(|e| AgentError::io("cannot remove", &cfg.socket.path, e))?;
            }
            Existing::Live => return Err(already_running(&cfg.socket)),
            Existing::NotASocket => {
                return Err(AgentError::NotASocket {
                    path: cfg.socket.path.clone(),
                });
            }
        }
        let listener = bind_private(&cfg.socket.path)?;
        let shared = Arc::new(Shared::new(cfg, uid, socket::host_name()));
        Ok(Server {
            listener,
            shared,
            _vault_claim: claim,
        })
    }

    /// The socket path.
    pub fn socket(&self) -> &Path {
        &self.shared.cfg.socket.path
    }

    /// Serves until `stop`, SIGTERM or SIGINT; then forgets the key and removes the socket.
    /// Must run inside a tokio runtime.
    pub async fn run(self) -> Result<(), AgentError> {
        let Server {
            listener,
            shared,
            _vault_claim,
        } = self;
        listener
            .set_nonblocking(true)
            .map_err(|e| AgentError::io("cannot configure", &shared.cfg.socket.path, e))?;
        let listener = UnixListener::from_std(listener)
            .map_err(|e| AgentError::io("cannot listen on", &shared.cfg.socket.path, e))?;
        shared.open_at_start().await;
        let ticker = tokio::spawn(lock_ticker(shared.clone()));
        let watcher = tokio::spawn(follow_config(shared.clone()));
        // AGENT-13: the socket is bound and listening and the key (if any) installed.
        match super::notify::notify("READY=1") {
            Ok(true) => tracing::info!("told the service manager we are ready"),
            Ok(false) => {}
            Err(e) => tracing::warn!(error = %e, "cannot notify the service manager"),
        }
        let mut term = signal(tokio::signal::unix::SignalKind::terminate());
        let mut int = signal(tokio::signal::unix::SignalKind::interrupt());
        loop {
            tokio::select! {
                accepted = listener.accept() => match accepted {
                    Ok((stream, _)) => {
                        let s = shared.clone();
                        tokio::spawn(async move { s.connection(stream).await });
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                },
                () = shared.shutdown.notified() => break,
                _ = recv(&mut term) => break,
                _ = recv(&mut int) => break,
            }
        }
        let _ = super::notify::notify("STOPPING=1");
        ticker.abort();
        watcher.abort();
        shared.lock_now("agent stopping");
        // Only our own socket: a new agent may have replaced it after a `stop` raced a start.
        let _ = std::fs::remove_file(&shared.cfg.socket.path);
        tracing::info!("agent stopped");
        Ok(())
    }
}

fn signal(kind: tokio::signal::unix::SignalKind) -> Option<tokio::signal::unix::Signal> {
    tokio::signal::unix::signal(kind).ok()
}

async fn recv(sig: &mut Option<tokio::signal::unix::Signal>) {
    match sig {
        Some(s) => {
            s.recv().await;
        }
        None => std::future::pending().await,
    }
}

fn already_running(sock: &SocketPath) -> AgentError {
    // Ask the live agent who it is; if it does not say, still refuse to take its socket.
    let info = super::Client::connect(sock)
        .ok()
        .flatten()
        .and_then(|mut c| {
            c.call(&Request::Status {
                origin: Origin::default(),
            })
            .ok()
            .and_then(|r| r.agent)
        });
    match info {
        Some(a) => AgentError::AlreadyRunning {
            socket: sock.path.clone(),
            pid: a.pid,
            vault: a.vault,
        },
        None => AgentError::AlreadyRunning {
            socket: sock.path.clone(),
            pid: 0,
            vault: PathBuf::from("?"),
        },
    }
}

/// AGENT-5: one agent per vault: an exclusive lock on `<vault>.agent`, holding the pid and the
/// socket for the message a second agent prints.
fn claim_vault(vault_path: &Path, sock: &Path) -> Result<File, AgentError> {
    let path = claim_path(vault_path);
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty())
        && !dir.exists()
    {
        use std::os::unix::fs::DirBuilderExt;
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(|e| AgentError::io("cannot create", dir, e))?;
    }
    let mut opts = File::options();
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600);
    }
    let mut file = opts
        .open(&path)
        .map_err(|e| AgentError::io("cannot open", &path, e))?;
    match file.try_lock() {
        Ok(()) => {}
        Err(std::fs::TryLockError::WouldBlock) => {
            let holder = std::fs::read_to_string(&path)
                .ok()
                .map(|t| {
                    t.trim()
                        .chars()
                        .filter(|c| !c.is_control())
                        .take(300)
                        .collect()
                })
                .filter(|t: &String| !t.is_empty())
                .unwrap_or_else(|| "pid unknown".into());
            return Err(AgentError::VaultTaken {
                vault: vault_path.to_path_buf(),
                holder,
            });
        }
        Err(std::fs::TryLockError::Error(e)) => {
            return Err(AgentError::io("cannot lock", &path, e));
        }
    }
    let note = format!("pid {}, socket {}", std::process::id(), sock.display());
    let _ = file.set_len(0);
    let _ = file.write_all(note.as_bytes());
    Ok(file)
}

/// Binds with a umask that leaves the socket 0600 from the start (the directory is private
/// anyway; this covers an explicit AUTHDECK_AGENT_SOCK in a shared directory).
fn bind_private(path: &Path) -> Result<std::os::unix::net::UnixListener, AgentError> {
    // SAFETY: umask only changes this process's file-creation mask; restored right after.
    let old = unsafe { libc::umask(0o177) };
    let bound = std::os::unix::net::UnixListener::bind(path);
    // SAFETY: as above.
    unsafe { libc::umask(old) };
    bound.map_err(|e| AgentError::io("cannot bind", path, e))
}

/// Locks after `lock_after` without a request (AGENT-8); looks once a second.
async fn lock_ticker(shared: Arc<Shared>) {
    let Some(after) = shared.cfg.lock_after else {
        return;
    };
    let mut tick = tokio::time::interval(Duration::from_secs(1).min(after));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let idle = shared
            .last_used
            .lock()
            .map(|t| t.elapsed())
            .unwrap_or_default();
        if idle >= after && shared.lockable() {
            shared.lock_now("idle");
        }
    }
}

/// AGENT-11: account files added, changed or removed, and config.toml's hooks, take effect
/// without a restart. Vault writes by other processes need nothing here: every answer and the
/// scheduler's periodic reload read the vault's generation first.
async fn follow_config(shared: Arc<Shared>) {
    let mut tick = tokio::time::interval(shared.cfg.config_poll);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let s = shared.clone();
        let _ = tokio::task::spawn_blocking(move || s.reload_config_if_changed()).await;
    }
}

/// Classifies an app error for the wire: the same text the direct path prints.
fn failure_of(e: &AppError) -> Failure {
    let code = if e.needs_login() {
        ErrorCode::NeedsLogin
    } else {
        ErrorCode::Error
    };
    Failure::new(code, e.to_string())
}

fn locked_failure() -> Failure {
    Failure::new(ErrorCode::Locked, protocol::LOCKED_MESSAGE)
}

impl Shared {
    /// A fresh agent state: no vault opened yet (the fuzz target builds one the same way).
    fn new(cfg: ServerConfig, uid: u32, host: String) -> Self {
        Shared {
            uid,
            host,
            started_at: unix(SystemTime::now()),
            holder: Mutex::new(Holder::NoVault),
            last_used: Mutex::new(Instant::now()),
            unlock_gate: tokio::sync::Mutex::new(0),
            shutdown: Notify::new(),
            connections: Arc::new(Semaphore::new(MAX_CONNECTIONS)),
            events: tokio::sync::broadcast::channel(EVENT_BACKLOG).0,
            cfg,
        }
    }

    fn touch(&self) {
        if let Ok(mut t) = self.last_used.lock() {
            *t = Instant::now();
        }
    }

    fn lockable(&self) -> bool {
        matches!(&*self.holder(), Holder::Unlocked(u) if u.kind.needs_passphrase())
    }

    fn holder(&self) -> std::sync::MutexGuard<'_, Holder> {
        self.holder
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// AGENT-6: drops the app (its snapshot of records, the scheduler) and with it the last
    /// copy of the key, which zeroizes itself.
    fn lock_now(&self, why: &str) {
        let old = {
            let mut h = self.holder();
            if !matches!(&*h, Holder::Unlocked(_)) {
                return;
            }
            std::mem::replace(&mut *h, Holder::Locked)
        };
        drop(old);
        tracing::info!(reason = why, "locked: the vault key was forgotten");
    }

    /// The app, after checking that the vault still exists and is what the holder thinks.
    fn app(&self) -> Result<Arc<App>, Failure> {
        self.refresh_holder();
        match &*self.holder() {
            Holder::Unlocked(u) => Ok(u.app.clone()),
            Holder::Locked => Err(locked_failure()),
            Holder::NoVault => Err(Failure::new(
                ErrorCode::Error,
                format!(
                    "no vault at {} yet (log in to an account first)",
                    self.cfg.vault.display()
                ),
            )),
        }
    }

    /// A vault created after the agent started (by a login) makes a `NoVault` agent `Locked`,
    /// or unlocked with its key file.
    fn refresh_holder(&self) {
        let no_vault = matches!(&*self.holder(), Holder::NoVault);
        if no_vault && self.cfg.vault.exists() {
            self.open_with_env(false);
        }
    }

    /// At start: a key file, or a passphrase in the agent's own environment, unlocks at once.
    async fn open_at_start(self: &Arc<Self>) {
        let s = self.clone();
        let _ = tokio::task::spawn_blocking(move || s.open_with_env(true)).await;
        tracing::info!(
            socket = %self.cfg.socket.path.display(),
            vault = %self.cfg.vault.display(),
            state = self.key_state().word(),
            non_dumpable = !harden::is_dumpable(),
            "agent listening"
        );
    }

    fn key_state(&self) -> KeyState {
        match &*self.holder() {
            Holder::NoVault => KeyState::NoVault,
            Holder::Locked => KeyState::Locked,
            Holder::Unlocked(_) => KeyState::Unlocked,
        }
    }

    fn open_with_env(&self, at_start: bool) {
        let store = FileStore::new(&self.cfg.vault, KeySource::KeyFile(PathBuf::new()));
        let kind = match store.key_kind() {
            Ok(Some(kind)) => kind,
            Ok(None) => return,
            Err(e) => {
                tracing::warn!(error = %e, "cannot read the vault header");
                *self.holder() = Holder::Locked;
                return;
            }
        };
        let env = &self.cfg.key_env;
        let source = match kind {
            KeyKind::KeyFile => env.key_file.clone().map(KeySource::KeyFile),
            KeyKind::Passphrase if at_start => env
                .passphrase
                .clone()
                .or_else(|| {
                    env.passphrase_file
                        .as_deref()
                        .and_then(|f| vault::read_passphrase_file(f).ok())
                })
                .and_then(|p| store.derive_key(&p).ok())
                .map(KeySource::Derived),
            KeyKind::Passphrase => None,
            // VAULT-7: the key is in the OS keyring; no unlock needed.
            KeyKind::OsKeyring => Some(KeySource::OsKeyring),
        };
        let Some(source) = source else {
            if kind == KeyKind::KeyFile {
                tracing::warn!(
                    "the vault uses a key file: start the agent with AUTHDECK_KEY_FILE set"
                );
            }
            *self.holder() = Holder::Locked;
            return;
        };
        match self.install(source) {
            Ok(()) => tracing::info!("unlocked at start"),
            Err(e) => {
                tracing::warn!(error = %e, "cannot open the vault");
                *self.holder() = Holder::Locked;
            }
        }
    }

    /// Opens the vault with `source` and starts the scheduler on it.
    fn install(&self, source: KeySource) -> Result<(), AppError> {
        let kind = source.kind();
        let memory_locked = match &source {
            KeySource::Derived(d) => d.is_memory_locked(),
            _ => false,
        };
        let vault = Vault::open(&self.cfg.vault, source)?;
        let stamps = ConfigStamps::take(&self.cfg.config_dir);
        let app = Arc::new(App::new(
            self.cfg.config_dir.clone(),
            vault,
            self.cfg.settings.clone(),
        )?);
        let commands = self.start_scheduler(&app);
        *self.holder() = Holder::Unlocked(Box::new(Unlocked {
            app,
            kind,
            memory_locked,
            commands,
            stamps,
        }));
        self.touch();
        Ok(())
    }

    /// Runs the dashboard's scheduler on `app` in the background (AGENT-11): the EXP-4 margin,
    /// wall-clock checks, bounded concurrency, backoff, REF-6, and the hooks (AGENT-12).
    fn start_scheduler(&self, app: &Arc<App>) -> mpsc::UnboundedSender<UiCommand> {
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
    fn reload_config_if_changed(&self) {
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

    fn info(&self) -> AgentInfo {
        let (state, key, memory_locked) = match &*self.holder() {
            Holder::NoVault => (KeyState::NoVault, None, false),
            Holder::Locked => (KeyState::Locked, Some(self.header_kind()), false),
            Holder::Unlocked(u) => (KeyState::Unlocked, Some(u.kind), u.memory_locked),
        };
        let lock_at = match (state, key, self.cfg.lock_after) {
            (KeyState::Unlocked, Some(KeyKind::Passphrase), Some(after)) => {
                let idle = self
                    .last_used
                    .lock()
                    .map(|t| t.elapsed())
                    .unwrap_or_default();
                let left = after.saturating_sub(idle);
                Some(unix(SystemTime::now() + left))
            }
            _ => None,
        };
        AgentInfo {
            version: env!("CARGO_PKG_VERSION").into(),
            pid: std::process::id(),
            host: self.host.clone(),
            vault: self.cfg.vault.clone(),
            config_dir: self.cfg.config_dir.clone(),
            socket: self.cfg.socket.path.clone(),
            state,
            key: key.map(|k| k.word().to_owned()),
            lock_at,
            key_memory_locked: memory_locked,
            non_dumpable: !harden::is_dumpable(),
            started_at: self.started_at,
        }
    }

    /// The kind of key the vault's header asks for (a passphrase when it cannot be read).
    fn header_kind(&self) -> KeyKind {
        FileStore::new(&self.cfg.vault, KeySource::KeyFile(PathBuf::new()))
            .key_kind()
            .ok()
            .flatten()
            .unwrap_or(KeyKind::Passphrase)
    }

    fn check_origin(&self, origin: &Origin) -> Result<(), Failure> {
        match other_vault(origin, &self.host, &self.cfg.vault) {
            Some(f) => Err(f),
            None => Ok(()),
        }
    }

    /// One connection: the peer check (AGENT-2), then frames until the client closes or sends
    /// something the agent does not accept (AGENT-3).
    async fn connection(self: Arc<Self>, stream: UnixStream) {
        let Ok(_slot) = self.connections.clone().try_acquire_owned() else {
            let _ = reply_and_close(
                stream,
                Failure::new(ErrorCode::Busy, "too many connections; try again"),
            )
            .await;
            return;
        };
        match peer_of(&stream) {
            Ok(peer) if peer.uid == self.uid => {}
            Ok(peer) => {
                tracing::warn!(
                    uid = peer.uid,
                    pid = peer.pid,
                    "refused a connection from another user"
                );
                let _ = reply_and_close(
                    stream,
                    Failure::new(ErrorCode::Forbidden, "this agent serves only its own user"),
                )
                .await;
                return;
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot read the peer's credentials; refused");
                return;
            }
        }
        let (rd, wr) = stream.into_split();
        if let Some((rd, wr)) = self.serve_frames(BufReader::new(rd), wr).await {
            self.attached(rd, wr).await;
        }
    }

    /// The frames of one accepted connection (AGENT-3): each at most `MAX_FRAME` bytes, one
    /// answer each, closed after a frame it does not accept. Generic over the stream so the
    /// fuzz target drives the very same loop over bytes in memory. Returns the stream when a
    /// dashboard attached (its answer already sent): the caller serves it from then on.
    async fn serve_frames<R, W>(self: &Arc<Self>, mut rd: R, mut wr: W) -> Option<(R, W)>
    where
        R: tokio::io::AsyncBufRead + Unpin,
        W: tokio::io::AsyncWrite + Unpin,
    {
        loop {
            let mut line = Zeroizing::new(Vec::new());
            let read = tokio::time::timeout(
                IDLE_TIMEOUT,
                (&mut rd)
                    .take(MAX_FRAME as u64)
                    .read_until(b'\n', &mut line),
            )
            .await;
            let n = match read {
                Ok(Ok(n)) => n,
                Ok(Err(_)) | Err(_) => return None,
            };
            if n == 0 {
                return None;
            }
            let request = if line.last() != Some(&b'\n') {
                Err(if n >= MAX_FRAME {
                    Failure::new(ErrorCode::TooLarge, "frame over 64 KiB")
                } else {
                    Failure::new(ErrorCode::BadFrame, "the frame ended without a newline")
                })
            } else {
                protocol::decode_request(&line[..n - 1])
            };
            drop(line);
            let (answer, stop) = match request {
                Ok(Request::Stop) => (Response::ok(), true),
                Ok(Request::Attach { origin }) => {
                    let answer = match self.check_origin(&origin) {
                        Ok(()) => {
                            self.refresh_holder();
                            let mut r = Response::ok();
                            r.agent = Some(self.info());
                            r
                        }
                        Err(f) => Response::fail(f),
                    };
                    let ok = answer.ok;
                    if wr
                        .write_all(&protocol::encode_response(&answer))
                        .await
                        .is_err()
                        || !ok
                    {
                        return None;
                    }
                    return Some((rd, wr));
                }
                Ok(req) => (self.answer(req).await, false),
                Err(f) => {
                    tracing::debug!(code = ?f.code, "refused a frame");
                    (Response::fail(f), false)
                }
            };
            let closes = answer.error.as_ref().is_some_and(|f| f.code.closes());
            let frame = Zeroizing::new(protocol::encode_response(&answer));
            drop(answer);
            if wr.write_all(&frame).await.is_err() {
                return None;
            }
            if stop {
                tracing::info!("stop requested");
                self.shutdown.notify_one();
                return None;
            }
            if closes {
                let _ = wr.shutdown().await;
                return None;
            }
        }
    }

    async fn answer(self: &Arc<Self>, request: Request) -> Response {
        match self.dispatch(request).await {
            Ok(r) => r,
            Err(f) => Response::fail(f),
        }
    }

    async fn dispatch(self: &Arc<Self>, request: Request) -> Result<Response, Failure> {
        match request {
            Request::Status { origin } => {
                self.check_origin(&origin)?;
                self.refresh_holder();
                let mut r = Response::ok();
                r.agent = Some(self.info());
                if let Holder::Unlocked(u) = &*self.holder() {
                    r.accounts = Some(
                        u.app
                            .statuses(SystemTime::now())
                            .map_err(|e| failure_of(&e))?,
                    );
                    r.problems = Some(
                        u.app
                            .loaded()
                            .problems
                            .iter()
                            .map(ToString::to_string)
                            .collect(),
                    );
                }
                Ok(r)
            }
            Request::Token {
                account,
                min_valid,
                force,
                narrow,
                id_token,
                origin,
            } => {
                self.check_origin(&origin)?;
                let app = self.app()?;
                self.touch();
                answer_token(&app, &account, min_valid, force, &narrow, id_token)
                    .await
                    .map_err(|e| failure_of(&e))
            }
            Request::Export {
                accounts,
                narrow,
                origin,
            } => {
                self.check_origin(&origin)?;
                let app = self.app()?;
                self.touch();
                answer_export(&app, &accounts, &narrow).await
            }
            Request::Refresh { accounts, origin } => {
                self.check_origin(&origin)?;
                let app = self.app()?;
                self.touch();
                answer_refresh(app, accounts).await
            }
            Request::Logout { account, origin } => {
                self.check_origin(&origin)?;
                let app = self.app()?;
                self.touch();
                let had = app.logout(&account).map_err(|e| failure_of(&e))?;
                let mut r = Response::ok();
                r.note = Some(crate::app::access::logout_note(had).into());
                Ok(r)
            }
            Request::Revoke { account, origin } => {
                self.check_origin(&origin)?;
                let app = self.app()?;
                self.touch();
                let note = app.revoke(&account).await.map_err(|e| failure_of(&e))?;
                let mut r = Response::ok();
                r.note = Some(note);
                Ok(r)
            }
            Request::GitCredential {
                operation,
                request,
                origin,
            } => {
                self.check_origin(&origin)?;
                let app = self.app()?;
                self.touch();
                answer_git(&app, operation, &request.to_request())
                    .await
                    .map_err(|e| failure_of(&e))
            }
            Request::Lock => {
                let unlocked_kind = match &*self.holder() {
                    Holder::Unlocked(u) => Some(u.kind),
                    _ => None,
                };
                match unlocked_kind {
                    Some(KeyKind::KeyFile) => {
                        return Err(Failure::new(
                            ErrorCode::Error,
                            "this vault opens with a key file: there is no key to forget (stop the agent instead)",
                        ));
                    }
                    Some(KeyKind::OsKeyring) => {
                        return Err(Failure::new(
                            ErrorCode::Error,
                            "this vault's key is in the OS keyring: there is no passphrase to unlock with again (stop the agent instead)",
                        ));
                    }
                    Some(KeyKind::Passphrase) | None => {}
                }
                self.lock_now("authdeck lock");
                let mut r = Response::ok();
                r.agent = Some(self.info());
                Ok(r)
            }
            Request::Unlock { passphrase } => self.unlock(passphrase).await,
            Request::Stop => Ok(Response::ok()),
            // Answered by `connection`, which then hands the connection to `attached`.
            Request::Attach { .. } => Err(Failure::new(
                ErrorCode::BadRequest,
                "attach turns the connection into a stream",
            )),
        }
    }

    /// AGENT-6, AGENT-7: derive, check, keep only the key. One attempt at a time; each wrong
    /// passphrase doubles the wait before the answer, and changes nothing else.
    async fn unlock(self: &Arc<Self>, passphrase: Passphrase) -> Result<Response, Failure> {
        let mut failures = self.unlock_gate.lock().await;
        self.refresh_holder();
        match &*self.holder() {
            Holder::Unlocked(_) => {
                let mut r = Response::ok();
                r.agent = Some(self.info());
                return Ok(r);
            }
            Holder::NoVault => {
                return Err(Failure::new(
                    ErrorCode::Error,
                    format!(
                        "no vault at {} yet (log in to an account first)",
                        self.cfg.vault.display()
                    ),
                ));
            }
            Holder::Locked => {}
        }
        if self.header_kind() == KeyKind::OsKeyring {
            // VAULT-7: the keyring did not answer at start; ask it again (no passphrase).
            let s = self.clone();
            tokio::task::spawn_blocking(move || s.install(KeySource::OsKeyring))
                .await
                .map_err(|_| Failure::new(ErrorCode::Error, "the unlock task failed"))?
                .map_err(|e| failure_of(&e))?;
            tracing::info!("unlocked from the OS keyring");
            let mut r = Response::ok();
            r.agent = Some(self.info());
            return Ok(r);
        }
        let path = self.cfg.vault.clone();
        let derived = tokio::task::spawn_blocking(move || {
            FileStore::new(&path, KeySource::KeyFile(PathBuf::new())).derive_key(&passphrase)
        })
        .await
        .map_err(|_| Failure::new(ErrorCode::Error, "the key derivation task failed"))?;
        match derived {
            Ok(key) => {
                let s = self.clone();
                // Opening decrypts the vault: blocking work, off the reactor.
                let installed =
                    tokio::task::spawn_blocking(move || s.install(KeySource::Derived(key)))
                        .await
                        .map_err(|_| Failure::new(ErrorCode::Error, "the unlock task failed"))?;
                installed.map_err(|e| failure_of(&e))?;
                *failures = 0;
                tracing::info!("unlocked");
                let mut r = Response::ok();
                r.agent = Some(self.info());
                Ok(r)
            }
            Err(VaultError::WrongKey { .. }) => {
                *failures = failures.saturating_add(1);
                let delay = unlock_delay(self.cfg.unlock_delay, *failures);
                tracing::warn!(
                    attempts = *failures,
                    delay_ms = u64::try_from(delay.as_millis()).unwrap_or(u64::MAX),
                    "wrong passphrase"
                );
                tokio::time::sleep(delay).await;
                Err(Failure::new(
                    ErrorCode::WrongPassphrase,
                    "wrong passphrase: the agent stays locked",
                ))
            }
            Err(e) => Err(Failure::new(ErrorCode::Error, e.to_string())),
        }
    }
}

/// An attached dashboard (AGENT-14): the agent's scheduler events go out, the dashboard's
/// commands come in, so one scheduler runs for the dashboard and the agent alike.
impl Shared {
    /// The agent as the dashboard's header shows it.
    fn agent_view(&self) -> AgentView {
        let info = self.info();
        AgentView {
            host: info.host,
            state: match info.state {
                KeyState::Unlocked => AgentKeyState::Unlocked,
                KeyState::Locked | KeyState::NoVault => AgentKeyState::Locked,
            },
            lock_at: info.lock_at.and_then(|s| {
                SystemTime::UNIX_EPOCH.checked_add(Duration::from_secs(u64::try_from(s).ok()?))
            }),
            lockable: self.lockable(),
        }
    }

    /// What a dashboard needs when it attaches or the key comes or goes: the account list
    /// when unlocked, the passphrase prompt when locked.
    fn state_events(&self, out: &mpsc::UnboundedSender<AppEvent>) {
        let app = match &*self.holder() {
            Holder::Unlocked(u) => Some(u.app.clone()),
            _ => None,
        };
        match app {
            Some(app) => {
                let records = app.vault().read().unwrap_or_default();
                let views = driver::account_views(&app, &records, SystemTime::now());
                let _ = out.send(AppEvent::AccountsLoaded(views));
            }
            None => {
                let _ = out.send(AppEvent::PassphraseNeeded { retry: false });
            }
        }
    }

    /// Serves an attached dashboard until it closes, sends something unreadable, or the agent
    /// stops. Quitting the dashboard closes only this connection.
    async fn attached(
        self: &Arc<Self>,
        rd: BufReader<tokio::net::unix::OwnedReadHalf>,
        mut wr: tokio::net::unix::OwnedWriteHalf,
    ) {
        let mut events = self.events.subscribe();
        let (out_tx, mut out_rx) = mpsc::unbounded_channel();
        let (cmd_tx, mut cmd_rx) = mpsc::unbounded_channel();
        let reader = tokio::spawn(read_commands(rd, cmd_tx));
        let mut shown = self.agent_view();
        let _ = out_tx.send(AppEvent::Agent(shown.clone()));
        self.state_events(&out_tx);
        let mut poll = tokio::time::interval(AGENT_VIEW_POLL);
        poll.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        loop {
            let event = tokio::select! {
                cmd = cmd_rx.recv() => match cmd {
                    Some(UiCommand::Quit) | None => break,
                    Some(cmd) => {
                        self.dashboard_command(cmd, &out_tx);
                        continue;
                    }
                },
                ev = events.recv() => match ev {
                    Ok(ev) => ev,
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {
                        self.state_events(&out_tx);
                        continue;
                    }
                    Err(tokio::sync::broadcast::error::RecvError::Closed) => break,
                },
                Some(ev) = out_rx.recv() => ev,
                _ = poll.tick() => {
                    let now = self.agent_view();
                    if now == shown {
                        continue;
                    }
                    let changed = now.state != shown.state;
                    shown = now.clone();
                    if changed {
                        self.state_events(&out_tx);
                    }
                    AppEvent::Agent(now)
                }
            };
            let frame = Zeroizing::new(protocol::encode_event(event));
            if wr.write_all(&frame).await.is_err() {
                break;
            }
        }
        reader.abort();
    }

    /// One command from an attached dashboard. The scheduler's commands go to the scheduler;
    /// the key (`LockAgent`, `SubmitPassphrase`) and the export line (answered to this
    /// dashboard only) are handled here.
    fn dashboard_command(self: &Arc<Self>, cmd: UiCommand, out: &mpsc::UnboundedSender<AppEvent>) {
        self.touch();
        let notice = |message: String| {
            let _ = out.send(AppEvent::Notice {
                error: true,
                message,
            });
        };
        match cmd {
            UiCommand::LockAgent => {
                if !self.lockable() {
                    notice("this agent holds no passphrase key to forget".into());
                    return;
                }
                self.lock_now("locked from the dashboard");
                let _ = out.send(AppEvent::Agent(self.agent_view()));
                self.state_events(out);
            }
            UiCommand::SubmitPassphrase(passphrase) => {
                let (s, out) = (self.clone(), out.clone());
                tokio::spawn(async move {
                    match s.unlock(passphrase).await {
                        Ok(_) => {
                            let _ = out.send(AppEvent::Agent(s.agent_view()));
                            s.state_events(&out);
                        }
                        Err(f) => {
                            if f.code != ErrorCode::WrongPassphrase {
                                let _ = out.send(AppEvent::Notice {
                                    error: true,
                                    message: f.message,
                                });
                            }
                            let _ = out.send(AppEvent::PassphraseNeeded { retry: true });
                        }
                    }
                });
            }
            UiCommand::CopyExport(name) => match self.app() {
                Ok(app) => {
                    let out = out.clone();
                    tokio::spawn(async move {
                        let _ = out.send(driver::export_line_event(&app, name).await);
                    });
                }
                Err(f) => notice(f.message),
            },
            UiCommand::Quit => {}
            cmd => {
                // The agent opens no browser (it may have no display): a browser login runs its
                // loopback listener here and the dashboard opens the URL it is sent.
                let cmd = match cmd {
                    UiCommand::Login {
                        account,
                        mode: LoginMode::Browser,
                    } => UiCommand::Login {
                        account,
                        mode: LoginMode::Paste,
                    },
                    cmd => cmd,
                };
                self.refresh_holder();
                let sent = match &*self.holder() {
                    Holder::Unlocked(u) => u.commands.send(cmd).is_ok(),
                    _ => false,
                };
                if !sent {
                    notice(protocol::LOCKED_MESSAGE.into());
                    let _ = out.send(AppEvent::PassphraseNeeded { retry: false });
                }
            }
        }
    }
}

/// Reads an attached dashboard's command frames (AGENT-3 limits) until it closes or sends one
/// that is not a command; then the connection ends.
async fn read_commands(
    mut rd: BufReader<tokio::net::unix::OwnedReadHalf>,
    commands: mpsc::UnboundedSender<UiCommand>,
) {
    loop {
        let mut line = Zeroizing::new(Vec::new());
        let n = match (&mut rd)
            .take(MAX_FRAME as u64)
            .read_until(b'\n', &mut line)
            .await
        {
            Ok(n) if n > 0 && line.last() == Some(&b'\n') => n,
            _ => return,
        };
        match protocol::decode_command(&line[..n - 1]) {
            Ok(cmd) => {
                if commands.send(cmd).is_err() {
                    return;
                }
            }
            Err(f) => {
                tracing::debug!(code = ?f.code, "refused a dashboard command");
                return;
            }
        }
    }
}

/// `token`: the answer the direct path would print (AGENT-9): the account's own token
/// refreshed when due or shorter-lived than `min_valid`, a narrower one (REF-9), a forced
/// refresh after a 401 (USE-2), or the ID token when asked for by name (KUBE-2, AGENT-4).
async fn answer_token(
    app: &App,
    account: &str,
    min_valid: u64,
    force: bool,
    narrow: &Narrow,
    id_token: bool,
) -> Result<Response, AppError> {
    let mut r = Response::ok();
    if id_token {
        let (token, exp) = app.hand_id_token(account).await?;
        r.id_token = Some(crate::secret::IdToken::new(token.secret()));
        r.expires_at = exp;
        return Ok(r);
    }
    let (handed, how) = if force {
        let (token, how) = app.fresh_token(account, true).await?;
        let snap = app.current()?;
        let record = snap.records.get(account);
        let handed = Handed {
            token,
            expires_at: record.and_then(|r| r.expires_at),
            email: record.and_then(|r| r.claims.email.clone()),
        };
        (handed, how)
    } else {
        app.token_as_asked(account, &narrow.request(), Duration::from_secs(min_valid))
            .await?
    };
    r.warning = crate::app::access::refresh_warning(&how);
    r.token = Some(handed.token);
    r.expires_at = handed.expires_at;
    r.email = handed.email;
    Ok(r)
}

/// `export`: every account's variable and token in order, failures beside them; a narrowed
/// export stops at the first failure, as the direct path does.
async fn answer_export(
    app: &App,
    accounts: &[String],
    narrow: &Narrow,
) -> Result<Response, Failure> {
    let mut vars = Vec::new();
    let mut failures = Vec::new();
    if narrow == &Narrow::default() {
        let slots = app
            .export_slots(accounts)
            .await
            .map_err(|e| failure_of(&e))?;
        for (account, slot) in slots {
            match slot {
                Ok((name, token)) => vars.push(ExportVar {
                    account,
                    name,
                    token,
                }),
                Err(e) => failures.push(AccountFailure {
                    account,
                    failure: failure_of(&e),
                }),
            }
        }
    } else {
        let req = narrow.request();
        for account in accounts {
            let got = match app.account(account).map(|p| p.export_var_name()) {
                Ok(name) => app
                    .token_as_asked(account, &req, Duration::ZERO)
                    .await
                    .map(|(h, _)| (name, h.token)),
                Err(e) => Err(e),
            };
            match got {
                Ok((name, token)) => vars.push(ExportVar {
                    account: account.clone(),
                    name,
                    token,
                }),
                Err(e) => {
                    failures.push(AccountFailure {
                        account: account.clone(),
                        failure: failure_of(&e),
                    });
                    break;
                }
            }
        }
    }
    let mut r = Response::ok();
    r.vars = Some(vars);
    r.failures = Some(failures);
    Ok(r)
}

/// `refresh`: each account's outcome in the order asked, a failure carried in place and in
/// `failures`.
async fn answer_refresh(app: Arc<App>, accounts: Vec<String>) -> Result<Response, Failure> {
    let names = if accounts.is_empty() {
        let snap = app.current().map_err(|e| failure_of(&e))?;
        app.logged_in(&snap)
    } else {
        accounts
    };
    // `refresh_many`'s future is not `Send` for every lifetime (its stream closure borrows the
    // names), so it runs on a blocking thread of this runtime.
    let handle = tokio::runtime::Handle::current();
    let results = tokio::task::spawn_blocking(move || handle.block_on(app.refresh_many(&names)))
        .await
        .map_err(|_| Failure::new(ErrorCode::Error, "the refresh task failed"))?;
    let mut done = Vec::new();
    let mut failures = Vec::new();
    for (account, result) in results {
        match result {
            Ok(how) => done.push(RefreshResult {
                outcome: crate::app::access::describe(&how),
                expires_at: match &how {
                    Refreshed::Done { expires_at, .. } => *expires_at,
                    _ => None,
                },
                refreshed: matches!(how, Refreshed::Done { .. }),
                error: None,
                account,
            }),
            Err(e) => {
                let failure = failure_of(&e);
                failures.push(AccountFailure {
                    account: account.clone(),
                    failure: failure.clone(),
                });
                done.push(RefreshResult {
                    account,
                    outcome: "failed".into(),
                    expires_at: None,
                    refreshed: false,
                    error: Some(failure),
                });
            }
        }
    }
    let mut r = Response::ok();
    r.refreshed = Some(done);
    r.failures = Some(failures);
    Ok(r)
}

/// `git_credential`: the account chosen by `git_urls` on the agent's side (GIT-1), its token
/// and user name (GIT-2); `erase` marks a rejected token stale (GIT-4).
async fn answer_git(
    app: &App,
    operation: GitOperation,
    request: &crate::app::gitcred::Request,
) -> Result<Response, AppError> {
    let mut r = Response::ok();
    match operation {
        GitOperation::Erase => app.git_erase(request)?,
        GitOperation::Get => {
            if let Some(g) = app.git_get(request).await? {
                r.warning = match &g.how {
                    Refreshed::FailedButValid { reason } => Some(format!(
                        "refresh of {} failed ({reason}); the current token is still valid",
                        g.account
                    )),
                    _ => None,
                };
                r.account = Some(g.account);
                r.username = Some(g.username);
                r.token = Some(g.handed.token);
                r.expires_at = g.handed.expires_at;
            }
        }
    }
    Ok(r)
}

/// AGENT-7: `base` after the first wrong passphrase, doubling with each one after, at most
/// `MAX_UNLOCK_DELAY`.
pub fn unlock_delay(base: Duration, failures: u32) -> Duration {
    let factor = 1u32 << failures.saturating_sub(1).min(16);
    base.saturating_mul(factor).min(MAX_UNLOCK_DELAY)
}

/// AGENT-10: a client on this host that would use another vault is told so, and uses its own;
/// a forwarded client (another host) or one that names no vault is served.
fn other_vault(origin: &Origin, host: &str, vault: &Path) -> Option<Failure> {
    let (Some(their_host), Some(their_vault)) = (&origin.host, &origin.vault) else {
        return None;
    };
    if their_host != host || same_file(their_vault, vault) {
        return None;
    }
    Some(Failure::new(
        ErrorCode::OtherVault,
        format!(
            "the agent serves vault {}, not {}",
            vault.display(),
            their_vault.display()
        ),
    ))
}

fn same_file(a: &Path, b: &Path) -> bool {
    if a == b {
        return true;
    }
    match (std::fs::canonicalize(a), std::fs::canonicalize(b)) {
        (Ok(x), Ok(y)) => x == y,
        _ => false,
    }
}

async fn reply_and_close(mut stream: UnixStream, failure: Failure) -> std::io::Result<()> {
    let frame = protocol::encode_response(&Response::fail(failure));
    stream.write_all(&frame).await?;
    stream.shutdown().await
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

#[cfg(feature = "fuzzing")]
pub mod fuzzing;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn agent7_delay_doubles_and_is_capped() {
        let base = Duration::from_millis(500);
        assert_eq!(unlock_delay(base, 1), Duration::from_millis(500));
        assert_eq!(unlock_delay(base, 2), Duration::from_secs(1));
        assert_eq!(unlock_delay(base, 3), Duration::from_secs(2));
        assert_eq!(unlock_delay(base, 10), MAX_UNLOCK_DELAY);
        assert_eq!(unlock_delay(base, u32::MAX), MAX_UNLOCK_DELAY);
    }

    #[test]
    fn agent10_only_a_local_client_of_another_vault_is_sent_away() {
        let mine = Path::new("/home/u/.local/share/authdeck/vault.bin");
        let origin = |host: Option<&str>, vault: Option<&str>| Origin {
            host: host.map(String::from),
            vault: vault.map(PathBuf::from),
        };
        assert!(other_vault(&origin(None, None), "h", mine).is_none());
        assert!(other_vault(&origin(Some("h"), None), "h", mine).is_none());
        assert!(other_vault(&origin(Some("h"), Some(mine.to_str().unwrap())), "h", mine).is_none());
        assert!(
            other_vault(&origin(Some("remote"), Some("/other/vault.bin")), "h", mine).is_none(),
            "forwarded over SSH: served"
        );
        let f = other_vault(&origin(Some("h"), Some("/other/vault.bin")), "h", mine).unwrap();
        assert_eq!(f.code, ErrorCode::OtherVault);
        assert!(f.message.contains("/other/vault.bin"), "{}", f.message);
    }

    #[test]
    fn agent5_claim_path_is_beside_the_vault() {
        assert_eq!(
            claim_path(Path::new("/d/vault.bin")),
            PathBuf::from("/d/vault.bin.agent")
        );
    }
}
