//! The etcd client behind the synchronous [`Store`](crate::vault::Store) interface: its own
//! small tokio runtime (so a store call works from any thread, inside another runtime or not),
//! one connection shared by every call, a bound on every request (ETCD-6), retries of what is
//! transient, and lease-backed locks kept alive while held (ETCD-3).

use super::config::EtcdConfig;
use crate::vault::coord::BackendHealth;
use crate::vault::error::{Result, VaultError};
use etcd_client::{Certificate, Client, ConnectOptions, Identity, LockOptions, TlsOptions};
use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};
use tokio::runtime::{Handle, Runtime};
use tokio::task::JoinHandle;

/// Longest server-supplied text kept in a message.
const MAX_REASON: usize = 160;

/// What one failed attempt means.
#[derive(Debug, Clone)]
pub(crate) enum Failure {
    /// Worth retrying until the deadline: no leader, unreachable, timed out.
    Transient(String),
    /// Not worth retrying: authentication, permission, bad request.
    Permanent(String),
}

impl Failure {
    fn reason(&self) -> &str {
        match self {
            Failure::Transient(r) | Failure::Permanent(r) => r,
        }
    }
}

/// State shared with the runtime's tasks.
pub(crate) struct Shared {
    pub cfg: EtcdConfig,
    /// The connection, and whether it is the one-member first dial (ETCD-9).
    client: tokio::sync::Mutex<Option<(Client, Dial)>>,
    health: Mutex<BackendHealth>,
    /// The one-member first dial was made (it is tried once per process).
    dialed_single: AtomicBool,
}

impl Shared {
    /// The connection, made on first use. ETCD-9: the first dial goes to one member only (a
    /// short-lived command needs one connection, not one per member); after a transient
    /// failure on it, [`Shared::forget_single`] makes the next dial balance over every member.
    pub async fn client(&self) -> std::result::Result<Client, Failure> {
        let mut slot = self.client.lock().await;
        if let Some((c, _)) = slot.as_ref() {
            return Ok(c.clone());
        }
        let dial = if self.cfg.endpoints.len() > 1 && !self.dialed_single.swap(true, Relaxed) {
            Dial::One
        } else {
            Dial::All
        };
        let c = connect(&self.cfg, dial).await?;
        *slot = Some((c.clone(), dial));
        Ok(c)
    }

    /// Drops a one-member connection after a transient failure, so the retry dials them all.
    async fn forget_single(&self) {
        let mut slot = self.client.lock().await;
        if matches!(slot.as_ref(), Some((_, Dial::One))) {
            *slot = None;
        }
    }

    fn note(&self, outcome: std::result::Result<(), &Failure>) {
        let backend = format!("etcd {}", self.cfg.endpoints.join(","));
        let now = match outcome {
            Ok(()) => BackendHealth::Connected { backend },
            Err(f) => BackendHealth::Unavailable {
                backend,
                reason: f.reason().to_string(),
            },
        };
        *self.health.lock().unwrap_or_else(PoisonError::into_inner) = now;
    }

    pub fn health(&self) -> BackendHealth {
        self.health
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Runs `op` until it succeeds, fails permanently, or `budget` is spent. Each attempt is
    /// bounded by `attempt` (default: the configured request timeout).
    pub async fn retrying<T, F, Fut>(
        &self,
        budget: Duration,
        attempt: Option<Duration>,
        mut op: F,
    ) -> std::result::Result<T, Failure>
    where
        F: FnMut(Client) -> Fut,
        Fut: Future<Output = std::result::Result<T, etcd_client::Error>>,
    {
        let deadline = Instant::now() + budget;
        let mut pause = Duration::from_millis(50);
        let mut last: Option<Failure> = None;
        loop {
            let remaining = deadline.saturating_duration_since(Instant::now());
            if remaining < Duration::from_millis(10)
                && let Some(f) = last.take()
            {
                // The budget is spent: report what actually failed, not an empty attempt.
                self.note(Err(&f));
                return Err(f);
            }
            let bound = remaining.min(attempt.unwrap_or(self.cfg.timeout));
            let result = tokio::time::timeout(bound, async {
                let client = self.client().await?;
                op(client).await.map_err(classify)
            })
            .await
            .unwrap_or_else(|_| {
                Err(Failure::Transient(format!(
                    "no answer within {} ms",
                    bound.as_millis()
                )))
            });
            match result {
                Ok(v) => {
                    self.note(Ok(()));
                    return Ok(v);
                }
                Err(f @ Failure::Permanent(_)) => {
                    self.note(Err(&f));
                    return Err(f);
                }
                Err(f) => {
                    self.forget_single().await;
                    let remaining = deadline.saturating_duration_since(Instant::now());
                    if remaining.is_zero() {
                        self.note(Err(&f));
                        return Err(f);
                    }
                    // A timed-out attempt says less than the failure before it.
                    let timed_out = f.reason().starts_with("no answer within");
                    if !(timed_out && last.is_some()) {
                        last = Some(f);
                    }
                    tokio::time::sleep(pause.min(remaining)).await;
                    pause = (pause * 2).min(Duration::from_millis(500));
                }
            }
        }
    }

    /// The error a caller sees for `f`.
    pub fn error(&self, f: Failure) -> VaultError {
        match f {
            Failure::Transient(reason) => VaultError::BackendUnavailable {
                reason: format!("etcd at {}: {reason}", self.cfg.endpoints.join(",")),
            },
            Failure::Permanent(reason) => VaultError::Backend(format!(
                "etcd at {}: {reason}",
                self.cfg.endpoints.join(",")
            )),
        }
    }
}

/// How many members a connection dials (ETCD-9).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Dial {
    /// One member, chosen by process id so many processes spread over the cluster.
    One,
    /// Every member, balanced: what a long-lived process ends up with after any failure.
    All,
}

/// Dials the cluster: TLS and user from the configuration, every request bounded.
async fn connect(cfg: &EtcdConfig, dial: Dial) -> std::result::Result<Client, Failure> {
    let urls = cfg.urls();
    let urls = match dial {
        Dial::One => {
            let i = std::process::id() as usize % urls.len().max(1);
            urls.get(i..=i).map(<[String]>::to_vec).unwrap_or(urls)
        }
        Dial::All => urls,
    };
    // A member that is down refuses at once on a LAN; one that is unreachable must not cost
    // the whole request bound before the balanced dial takes over.
    let connect_timeout = match dial {
        Dial::One => cfg.timeout.min(Duration::from_millis(500)),
        Dial::All => cfg.timeout,
    };
    let mut opts = ConnectOptions::new()
        .with_connect_timeout(connect_timeout)
        .with_timeout(cfg.timeout.max(cfg.lock_wait))
        .with_keep_alive(Duration::from_secs(2), cfg.timeout);
    if let Some(tls) = &cfg.tls {
        let mut t = TlsOptions::new();
        if let Some(ca) = &tls.ca {
            t = t.ca_certificate(Certificate::from_pem(read_pem(ca)?));
        }
        if let (Some(cert), Some(key)) = (&tls.cert, &tls.key) {
            t = t.identity(Identity::from_pem(read_pem(cert)?, read_pem(key)?));
        }
        opts = opts.with_tls(t);
    }
    let password = cfg
        .read_password()
        .map_err(|e| Failure::Permanent(e.to_string()))?;
    if let (Some(user), Some(pw)) = (&cfg.user, password) {
        opts = opts.with_user(user.clone(), pw.secret().to_string());
    }
    Client::connect(urls, Some(opts)).await.map_err(classify)
}

fn read_pem(path: &std::path::Path) -> std::result::Result<Vec<u8>, Failure> {
    std::fs::read(path)
        .map_err(|e| Failure::Permanent(format!("cannot read TLS file {}: {e}", path.display())))
}

/// Sorts an etcd error into retry-worthy or not, with a sanitized one-line reason.
pub(crate) fn classify(e: etcd_client::Error) -> Failure {
    use etcd_client::Error as E;
    use tonic::Code;
    match e {
        E::GRpcStatus(s) => {
            let reason = sanitize(s.message());
            match s.code() {
                Code::Unavailable
                | Code::DeadlineExceeded
                | Code::Aborted
                | Code::Cancelled
                | Code::ResourceExhausted => Failure::Transient(reason),
                Code::Unknown
                    if reason.contains("leader")
                        || reason.contains("timed out")
                        || reason.contains("transport") =>
                {
                    Failure::Transient(reason)
                }
                code => Failure::Permanent(format!("{code:?}: {reason}")),
            }
        }
        E::TransportError(t) => Failure::Transient(sanitize(&error_chain(&t))),
        E::IoError(io) => Failure::Transient(sanitize(&io.to_string())),
        E::LeaseKeepAliveError(m) | E::WatchError(m) => Failure::Transient(sanitize(&m)),
        other => Failure::Permanent(sanitize(&other.to_string())),
    }
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut source = e.source();
    while let Some(inner) = source {
        s.push_str(": ");
        s.push_str(&inner.to_string());
        source = inner.source();
    }
    s
}

/// Server and transport text is shown to a terminal: escape controls, bound the length.
pub(crate) fn sanitize(text: &str) -> String {
    let mut out = String::new();
    for (n, c) in text.chars().enumerate() {
        if n >= MAX_REASON {
            out.push('…');
            break;
        }
        if c.is_ascii_graphic() || c == ' ' {
            out.push(c);
        } else {
            out.extend(c.escape_default());
        }
    }
    out
}

/// The runtime that runs every etcd request, and the shared state.
pub(crate) struct Bridge {
    pub shared: Arc<Shared>,
    handle: Handle,
    rt: Option<Runtime>,
}

impl Bridge {
    pub fn new(cfg: EtcdConfig) -> Result<Arc<Bridge>> {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("authdeck-etcd")
            .enable_all()
            .build()
            .map_err(|e| VaultError::Backend(format!("cannot start the etcd client: {e}")))?;
        let backend = format!("etcd {}", cfg.endpoints.join(","));
        Ok(Arc::new(Bridge {
            shared: Arc::new(Shared {
                cfg,
                client: tokio::sync::Mutex::new(None),
                dialed_single: AtomicBool::new(false),
                health: Mutex::new(BackendHealth::Connected { backend }),
            }),
            handle: rt.handle().clone(),
            rt: Some(rt),
        }))
    }

    /// Runs `fut` on the etcd runtime and waits for it (from any thread but the runtime's own).
    pub fn block<T, Fut>(&self, fut: Fut) -> Result<T>
    where
        T: Send + 'static,
        Fut: Future<Output = Result<T>> + Send + 'static,
    {
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        self.handle.spawn(async move {
            let _ = tx.send(fut.await);
        });
        rx.recv().map_err(|_| VaultError::BackendUnavailable {
            reason: "the etcd client stopped".into(),
        })?
    }

    /// Starts a background task on the etcd runtime.
    pub fn spawn<Fut>(&self, fut: Fut) -> JoinHandle<()>
    where
        Fut: Future<Output = ()> + Send + 'static,
    {
        self.handle.spawn(fut)
    }

    /// Takes the lock `name` under a lease of its own (ETCD-3): grant, keep alive, lock. With
    /// `fence`, also reads the lock key's create revision for fenced saves (ETCD-4).
    pub fn lock(self: &Arc<Self>, name: Vec<u8>, fence: bool) -> Result<Held> {
        let shared = self.shared.clone();
        let (lease, key, revision, keeper) = self.block({
            let bridge = self.clone();
            async move { acquire(&bridge, &shared, name, fence).await }
        })?;
        Ok(Held {
            bridge: self.clone(),
            lease,
            key,
            revision,
            keeper,
        })
    }
}

impl Drop for Bridge {
    fn drop(&mut self) {
        // May run inside another runtime, where a blocking shutdown would panic.
        if let Some(rt) = self.rt.take() {
            rt.shutdown_background();
        }
    }
}

type Acquired = (i64, Vec<u8>, i64, JoinHandle<()>);

async fn acquire(
    bridge: &Bridge,
    shared: &Arc<Shared>,
    name: Vec<u8>,
    fence: bool,
) -> Result<Acquired> {
    let cfg = &shared.cfg;
    let ttl = i64::try_from(cfg.lease_ttl.as_secs().max(1)).unwrap_or(60);
    let lease = shared
        .retrying(cfg.timeout, None, |mut c| async move {
            c.lease_grant(ttl, None).await
        })
        .await
        .map_err(|f| shared.error(f))?
        .id();
    let keeper = bridge.spawn(keep_alive(shared.clone(), lease));
    let got = async {
        // The same lease names the same lock key, so a retried Lock is idempotent.
        let key = shared
            .retrying(cfg.lock_wait, Some(cfg.lock_wait), |mut c| {
                let name = name.clone();
                async move {
                    c.lock(name, Some(LockOptions::new().with_lease(lease)))
                        .await
                }
            })
            .await
            .map_err(|f| match f {
                Failure::Transient(r) if r.starts_with("no answer within") => {
                    VaultError::LockTimeout {
                        path: std::path::PathBuf::from(cfg.display()),
                    }
                }
                f => shared.error(f),
            })?
            .key()
            .to_vec();
        let revision = if fence {
            let k = key.clone();
            let got = shared
                .retrying(cfg.timeout, None, |mut c| {
                    let k = k.clone();
                    async move { c.get(k, None).await }
                })
                .await
                .map_err(|f| shared.error(f))?;
            got.kvs().first().map_or(0, |kv| kv.create_revision())
        } else {
            0
        };
        Ok::<_, VaultError>((key, revision))
    }
    .await;
    match got {
        Ok((key, revision)) => Ok((lease, key, revision, keeper)),
        Err(e) => {
            keeper.abort();
            revoke(shared, lease).await;
            Err(e)
        }
    }
}

/// Ends a lease (and so deletes its lock key); if etcd cannot be reached the lease simply
/// expires after its TTL.
async fn revoke(shared: &Shared, lease: i64) {
    let _ = shared
        .retrying(shared.cfg.timeout, None, |mut c| async move {
            c.lease_revoke(lease).await
        })
        .await;
}

/// Keeps `lease` alive every third of its TTL until aborted (the lock is released) or until
/// etcd says the lease is gone (then the fence refuses this holder's saves, ETCD-4).
async fn keep_alive(shared: Arc<Shared>, lease: i64) {
    let every = (shared.cfg.lease_ttl / 3).max(Duration::from_millis(200));
    loop {
        if let Ok(mut client) = shared.client().await
            && let Ok(Ok((mut keeper, mut stream))) =
                tokio::time::timeout(shared.cfg.timeout, client.lease_keep_alive(lease)).await
        {
            loop {
                if keeper.keep_alive().await.is_err() {
                    break;
                }
                match tokio::time::timeout(shared.cfg.timeout, stream.message()).await {
                    Ok(Ok(Some(resp))) if resp.ttl() <= 0 => return,
                    Ok(Ok(Some(_))) => tokio::time::sleep(every).await,
                    _ => break,
                }
            }
        }
        tokio::time::sleep(every / 2).await;
    }
}

/// A lock held under its own lease; dropping it revokes the lease, which releases the lock.
pub(crate) struct Held {
    bridge: Arc<Bridge>,
    lease: i64,
    pub key: Vec<u8>,
    pub revision: i64,
    keeper: JoinHandle<()>,
}

impl Drop for Held {
    fn drop(&mut self) {
        self.keeper.abort();
        let shared = self.bridge.shared.clone();
        let lease = self.lease;
        // Waited for (bounded): a process that exits right after must not leave its lock to
        // expire, which would hold every other machine up for the TTL.
        let _ = self.bridge.block(async move {
            revoke(&shared, lease).await;
            Ok(())
        });
    }
}
