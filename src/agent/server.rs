//! The agent process: binds the socket, checks every peer, answers frames, keeps the vault key
//! (and nothing derived from a passphrase but the key) and runs the dashboard's scheduler in
//! the background.

mod attach;
mod key;
mod reload;
mod requests;

pub use key::unlock_delay;

use super::AgentError;
use super::protocol::{Origin, Request};
use super::socket::{self, Existing, SocketPath};
use crate::app::driver::DriverSettings;
use crate::app::status::unix;
use crate::app::view::{AppEvent, UiCommand};
use crate::app::{App, Settings};
use crate::vault::{KeyEnv, KeyKind};
use reload::ConfigStamps;
use std::fs::File;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};
use tokio::net::UnixListener;
use tokio::sync::{Notify, Semaphore, mpsc};

/// Connections served at once; more are answered `busy` and closed.
const MAX_CONNECTIONS: usize = 256;

/// How often the account files and config.toml are checked for changes (AGENT-11).
const CONFIG_POLL: Duration = Duration::from_secs(2);

/// Events kept for an attached dashboard that has not read them yet; one that falls further
/// behind gets the whole account list again (AGENT-14).
const EVENT_BACKLOG: usize = 1024;

/// How the agent is set up.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Where to listen.
    pub socket: SocketPath,
    /// The vault served: its file, or for an etcd vault its name (`etcd://…`, see `etcd`).
    pub vault: PathBuf,
    /// The etcd cluster holding the vault, when it is not a file (docs/etcd.md).
    pub etcd: Option<Box<crate::vault::etcd::EtcdConfig>>,
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
            etcd: None,
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
    /// An etcd vault's store with no key, made once: its header is read for every `status`
    /// of a locked agent and every second for an attached dashboard.
    etcd_keyless: std::sync::OnceLock<Arc<crate::vault::etcd::EtcdStore>>,
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
        // An etcd vault has no file to claim beside: the claim is in the config directory.
        let claimed = match &cfg.etcd {
            Some(_) => cfg.config_dir.join("etcd-vault"),
            None => cfg.vault.clone(),
        };
        let claim = claim_vault(&claimed, &cfg.socket.path)?;
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
        let watcher = tokio::spawn(reload::follow_config(shared.clone()));
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
            etcd_keyless: std::sync::OnceLock::new(),
            cfg,
        }
    }
}

#[cfg(feature = "fuzzing")]
pub mod fuzzing;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn agent5_claim_path_is_beside_the_vault() {
        assert_eq!(
            claim_path(Path::new("/d/vault.bin")),
            PathBuf::from("/d/vault.bin.agent")
        );
    }
}
