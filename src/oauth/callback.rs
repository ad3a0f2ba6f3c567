//! The loopback callback listener (hyper 1.x): one listener, several pending logins routed by `state`.
//!
//! [`CallbackListener::bind`] opens loopback sockets only (CB-1): `127.0.0.1`, `[::1]`, or both
//! for `localhost` (RFC 8252 §7.3). Each [`CallbackListener::register`] adds a
//! [`PendingLogin`] keyed by its `state`; the browser's redirect completes it. The server runs
//! in background tasks and closes its sockets when the last pending login finishes, times out
//! or is dropped, and when the listener itself is dropped (CB-3).
//!
//! The browser always gets its page *before* the waiting login is woken, so the code exchange
//! runs in the caller after the response was built. No code, state or token is ever logged,
//! echoed in a page or put in an error message.

use std::convert::Infallible;
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use bytes::Bytes;
use http::header::{CACHE_CONTROL, CONTENT_TYPE, HOST, HeaderName, HeaderValue};
use http::{Method, Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{oneshot, watch};
use tokio::task::{AbortHandle, JoinHandle};
use url::{Host, Url};

use crate::oauth::error::sanitize;
use crate::secret::{AuthCode, CsrfState};

/// Default lifetime of one pending login (CB-12: 5 minutes).
pub const DEFAULT_LOGIN_TIMEOUT: Duration = Duration::from_secs(300);
/// Default time a client gets to send a complete request head (CB-12).
pub const DEFAULT_READ_TIMEOUT: Duration = Duration::from_secs(5);
/// Default limit of a request head in bytes (CB-12). hyper cannot go below 8 KiB.
pub const DEFAULT_MAX_HEAD_BYTES: usize = 8 * 1024;
/// Longest request target (path + query) accepted; longer gets 414 (CB-12).
pub const MAX_URI_BYTES: usize = 4 * 1024;
/// hyper's minimum read buffer; `max_buf_size` panics below it.
const HYPER_MIN_BUF: usize = 8 * 1024;
/// Longest `error` code shown in a page or an error (AUTHZ-7).
const MAX_ERROR_CODE_CHARS: usize = 64;
/// Longest `error_description` shown in a page or an error (AUTHZ-7).
const MAX_DESCRIPTION_CHARS: usize = 200;
/// Tries to find a port free on both 127.0.0.1 and ::1 for `localhost` with port 0.
const LOCALHOST_PORT_ATTEMPTS: usize = 8;

/// Tunables of a [`CallbackListener`].
#[derive(Debug, Clone)]
pub struct ListenerOptions {
    /// Lifetime of each pending login; afterwards it fails with [`CallbackError::Timeout`].
    pub timeout: Duration,
    /// Time a connection gets to send its request head (CB-12).
    pub read_timeout: Duration,
    /// Largest request head accepted; larger gets 431 (CB-12). Values below 8 KiB act as 8 KiB.
    pub max_head_bytes: usize,
}

impl Default for ListenerOptions {
    fn default() -> Self {
        Self {
            timeout: DEFAULT_LOGIN_TIMEOUT,
            read_timeout: DEFAULT_READ_TIMEOUT,
            max_head_bytes: DEFAULT_MAX_HEAD_BYTES,
        }
    }
}

/// What a successful redirect delivers.
#[derive(Debug)]
pub struct CallbackResult {
    /// The authorization code (secret).
    pub code: AuthCode,
    /// The `iss` parameter (RFC 9207), when the provider sent one; already checked (AUTHZ-4).
    pub iss: Option<String>,
}

/// Why a callback listener or a pending login failed. Messages never contain a secret.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CallbackError {
    /// A fixed port from the provider profile is already taken (CB-1).
    #[error(
        "port {port} on the loopback interface is already in use (another login or program holds it); free it and try again"
    )]
    PortInUse {
        /// The port that was asked for.
        port: u16,
    },
    /// Another failure opening the loopback socket.
    #[error("cannot open the loopback callback listener: {0}")]
    Bind(#[source] io::Error),
    /// The redirect URI is not an `http` loopback URI this listener can serve (CB-1).
    #[error("the redirect URI cannot be served locally: {0}")]
    InvalidRedirectUri(String),
    /// No redirect arrived before the login's timeout.
    #[error("the login timed out waiting for the browser")]
    Timeout,
    /// The user refused consent: `error=access_denied` (CB-8).
    #[error("the login was denied by the user{}", show_description(description))]
    Denied {
        /// `error_description`, escaped and truncated (AUTHZ-7).
        description: Option<String>,
    },
    /// The provider redirected with another `error` code (CB-8).
    #[error(
        "the authorization server refused the login: {error}{}",
        show_description(description)
    )]
    Provider {
        /// The `error` code, escaped and truncated (AUTHZ-7).
        error: String,
        /// `error_description`, escaped and truncated (AUTHZ-7).
        description: Option<String>,
    },
    /// The redirect had a valid `state` but neither `code` nor `error` (CB-9), or repeated them.
    #[error("malformed authorization response: no code and no error")]
    Malformed,
    /// `iss` differs from the provider's issuer, or is missing where required (AUTHZ-4).
    #[error("the authorization response's issuer (iss) is missing or does not match the provider")]
    IssuerMismatch,
    /// The listener was stopped before this login finished (dropped, or already closed).
    #[error("the callback listener is closed")]
    Closed,
    /// A pending login with the same `state` is already registered.
    #[error("a login with the same state is already pending")]
    DuplicateState,
}

fn show_description(description: &Option<String>) -> String {
    description
        .as_deref()
        .map(|d| format!(": {d}"))
        .unwrap_or_default()
}

#[cfg(feature = "fuzzing")]
pub mod fuzzing;
mod redirect;
use redirect::*;

/// Outcome sent from the server task to the waiting login.
type Outcome = Result<CallbackResult, CallbackError>;

/// One registered login.
struct Slot {
    id: u64,
    state: CsrfState,
    expected_issuer: Option<String>,
    require_iss: bool,
    /// `Some` while the login is pending; taken when it finishes (CB-10 keeps the slot).
    sender: Option<oneshot::Sender<Outcome>>,
    timer: Option<AbortHandle>,
}

#[derive(Default)]
struct Registry {
    next_id: u64,
    slots: Vec<Slot>,
    /// Set once the server stopped: no new login may register.
    closed: bool,
}

/// State shared by the listener handle, the pending logins and the server tasks.
struct Shared {
    registry: Mutex<Registry>,
    shutdown: watch::Sender<bool>,
    /// Exact path of the redirect URI.
    path: String,
    /// Accepted `Host` header values, lower case (CB-5).
    hosts: Vec<String>,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Registry> {
        self.registry.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Marks login `id` finished and returns its sender if it was still pending; closes the
    /// server when it was the last one (CB-3). `None` when it had already finished (CB-10).
    fn take(&self, id: u64) -> Option<oneshot::Sender<Outcome>> {
        let mut reg = self.lock();
        let slot = reg.slots.iter_mut().find(|s| s.id == id)?;
        let sender = slot.sender.take()?;
        if let Some(timer) = slot.timer.take() {
            timer.abort();
        }
        if !reg.slots.iter().any(|s| s.sender.is_some()) {
            self.close_locked(&mut reg);
        }
        Some(sender)
    }

    /// Ends login `id` with `outcome` now, if it is still pending. Returns false otherwise.
    fn finish(&self, id: u64, outcome: Outcome) -> bool {
        match self.take(id) {
            Some(sender) => {
                // The waiter may be gone (cancelled); nothing to do then.
                let _ = sender.send(outcome);
                true
            }
            None => false,
        }
    }

    /// Forgets a cancelled login (dropped before it finished).
    fn cancel(&self, id: u64) {
        let mut reg = self.lock();
        let Some(pos) = reg
            .slots
            .iter()
            .position(|s| s.id == id && s.sender.is_some())
        else {
            return;
        };
        let slot = reg.slots.remove(pos);
        if let Some(timer) = slot.timer {
            timer.abort();
        }
        if !reg.slots.iter().any(|s| s.sender.is_some()) {
            self.close_locked(&mut reg);
        }
    }

    /// Stops the server and fails every pending login with `Closed` (senders dropped).
    fn close_locked(&self, reg: &mut Registry) {
        reg.closed = true;
        for slot in &mut reg.slots {
            slot.sender = None;
            if let Some(timer) = slot.timer.take() {
                timer.abort();
            }
        }
        self.shutdown.send_replace(true);
    }
}

/// A loopback HTTP server waiting for authorization redirects. Dropping it stops the server
/// and fails every login still pending with [`CallbackError::Closed`].
pub struct CallbackListener {
    shared: Arc<Shared>,
    redirect_uri: Url,
    runtime: tokio::runtime::Handle,
    timeout: Duration,
    tasks: Vec<JoinHandle<()>>,
}

impl std::fmt::Debug for CallbackListener {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CallbackListener")
            .field("redirect_uri", &self.redirect_uri.as_str())
            .finish_non_exhaustive()
    }
}

impl CallbackListener {
    /// Opens the loopback socket(s) for `redirect_uri` (CB-1): `127.0.0.1`, `[::1]`, or both
    /// for `localhost` (127.0.0.1 alone when ::1 is unavailable). Port 0 (or none) picks a
    /// free port; a fixed port already taken gives [`CallbackError::PortInUse`].
    ///
    /// Must be called inside a tokio runtime.
    pub async fn bind(
        redirect_uri: &Url,
        options: ListenerOptions,
    ) -> Result<CallbackListener, CallbackError> {
        if redirect_uri.scheme() != "http" {
            return Err(CallbackError::InvalidRedirectUri(
                "the scheme must be http".into(),
            ));
        }
        let wanted_port = redirect_uri.port().unwrap_or(0);
        let (listeners, port) = match redirect_uri.host() {
            Some(Host::Ipv4(ip)) if ip == Ipv4Addr::LOCALHOST => {
                let l = bind_one(IpAddr::V4(ip), wanted_port).await?;
                let port = local_port(&l)?;
                (vec![l], port)
            }
            Some(Host::Ipv6(ip)) if ip == Ipv6Addr::LOCALHOST => {
                let l = bind_one(IpAddr::V6(ip), wanted_port).await?;
                let port = local_port(&l)?;
                (vec![l], port)
            }
            Some(Host::Domain(d)) if d.eq_ignore_ascii_case("localhost") => {
                bind_localhost(wanted_port).await?
            }
            _ => {
                return Err(CallbackError::InvalidRedirectUri(
                    "the host must be 127.0.0.1, [::1] or localhost".into(),
                ));
            }
        };
        let mut effective = redirect_uri.clone();
        effective
            .set_port(Some(port))
            .map_err(|()| CallbackError::InvalidRedirectUri("cannot set the port".into()))?;
        let hosts = allowed_hosts(redirect_uri.host(), port);
        let (shutdown, _) = watch::channel(false);
        let shared = Arc::new(Shared {
            registry: Mutex::new(Registry::default()),
            shutdown,
            path: redirect_uri.path().to_owned(),
            hosts,
        });
        let tasks = listeners
            .into_iter()
            .map(|l| tokio::spawn(accept_loop(l, Arc::clone(&shared), options.clone())))
            .collect();
        Ok(CallbackListener {
            shared,
            redirect_uri: effective,
            runtime: tokio::runtime::Handle::current(),
            timeout: options.timeout,
            tasks,
        })
    }

    /// The redirect URI to send in the authorization request: the configured one with the
    /// bound port (CB-2).
    pub fn redirect_uri(&self) -> Url {
        self.redirect_uri.clone()
    }

    /// Registers a login waiting for a redirect carrying `state`. When `expected_issuer` is
    /// set, an `iss` parameter must equal it exactly (AUTHZ-4). The login's timeout starts now.
    pub fn register(
        &self,
        state: CsrfState,
        expected_issuer: Option<String>,
    ) -> Result<PendingLogin, CallbackError> {
        let (sender, receiver) = oneshot::channel();
        let mut reg = self.shared.lock();
        if reg.closed {
            return Err(CallbackError::Closed);
        }
        if reg.slots.iter().any(|s| s.state.ct_eq(state.secret())) {
            return Err(CallbackError::DuplicateState);
        }
        reg.next_id += 1;
        let id = reg.next_id;
        let shared = Arc::clone(&self.shared);
        let timeout = self.timeout;
        let timer = self.runtime.spawn(async move {
            tokio::time::sleep(timeout).await;
            if shared.finish(id, Err(CallbackError::Timeout)) {
                tracing::info!("callback: a pending login timed out");
            }
        });
        reg.slots.push(Slot {
            id,
            state,
            expected_issuer,
            require_iss: false,
            sender: Some(sender),
            timer: Some(timer.abort_handle()),
        });
        Ok(PendingLogin {
            shared: Arc::clone(&self.shared),
            id,
            receiver: Some(receiver),
        })
    }
}

impl Drop for CallbackListener {
    fn drop(&mut self) {
        let mut reg = self.shared.lock();
        self.shared.close_locked(&mut reg);
        drop(reg);
        for task in &self.tasks {
            task.abort();
        }
    }
}

/// A login waiting for its redirect. Dropping it cancels the login (CB-3).
pub struct PendingLogin {
    shared: Arc<Shared>,
    id: u64,
    receiver: Option<oneshot::Receiver<Outcome>>,
}

impl std::fmt::Debug for PendingLogin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PendingLogin")
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

impl PendingLogin {
    /// Requires an `iss` parameter (the provider's metadata sets
    /// `authorization_response_iss_parameter_supported`): a redirect without one then fails
    /// with [`CallbackError::IssuerMismatch`] (AUTHZ-4). Has no effect once the login finished.
    pub fn set_require_iss(&self, require: bool) {
        let mut reg = self.shared.lock();
        if let Some(slot) = reg.slots.iter_mut().find(|s| s.id == self.id) {
            slot.require_iss = require;
        }
    }

    /// Waits for the redirect, the timeout, or the listener's end.
    pub async fn wait(mut self) -> Result<CallbackResult, CallbackError> {
        let Some(receiver) = self.receiver.take() else {
            return Err(CallbackError::Closed);
        };
        receiver.await.unwrap_or(Err(CallbackError::Closed))
    }
}

impl Drop for PendingLogin {
    fn drop(&mut self) {
        self.shared.cancel(self.id);
    }
}

async fn bind_one(ip: IpAddr, port: u16) -> Result<TcpListener, CallbackError> {
    TcpListener::bind(SocketAddr::new(ip, port))
        .await
        .map_err(|e| bind_error(e, port))
}

fn bind_error(e: io::Error, port: u16) -> CallbackError {
    if e.kind() == io::ErrorKind::AddrInUse && port != 0 {
        CallbackError::PortInUse { port }
    } else {
        CallbackError::Bind(e)
    }
}

fn local_port(l: &TcpListener) -> Result<u16, CallbackError> {
    l.local_addr()
        .map(|a| a.port())
        .map_err(CallbackError::Bind)
}

/// Binds 127.0.0.1 and [::1] on the same port for `localhost` (RFC 8252 §7.3), so the browser
/// reaches us whichever address it resolves first. A taken ::1 port with a fixed port is an
/// error (another program could receive the code); an unavailable ::1 leaves 127.0.0.1 alone.
async fn bind_localhost(wanted: u16) -> Result<(Vec<TcpListener>, u16), CallbackError> {
    for _ in 0..LOCALHOST_PORT_ATTEMPTS {
        let v4 = bind_one(IpAddr::V4(Ipv4Addr::LOCALHOST), wanted).await?;
        let port = local_port(&v4)?;
        match TcpListener::bind(SocketAddr::new(IpAddr::V6(Ipv6Addr::LOCALHOST), port)).await {
            Ok(v6) => return Ok((vec![v4, v6], port)),
            Err(e) if e.kind() == io::ErrorKind::AddrInUse => {
                if wanted != 0 {
                    return Err(CallbackError::PortInUse { port: wanted });
                }
                // The free v4 port is taken on v6: try another one.
            }
            Err(_) => return Ok((vec![v4], port)),
        }
    }
    Err(CallbackError::Bind(io::Error::new(
        io::ErrorKind::AddrInUse,
        "no port free on both 127.0.0.1 and ::1",
    )))
}

/// `Host` header values accepted for the redirect URI's host (CB-5).
fn allowed_hosts(host: Option<Host<&str>>, port: u16) -> Vec<String> {
    match host {
        Some(Host::Domain(_)) => vec![
            format!("localhost:{port}"),
            format!("127.0.0.1:{port}"),
            format!("[::1]:{port}"),
        ],
        Some(Host::Ipv6(_)) => vec![format!("[::1]:{port}")],
        _ => vec![format!("127.0.0.1:{port}")],
    }
}

async fn accept_loop(listener: TcpListener, shared: Arc<Shared>, options: ListenerOptions) {
    let mut shutdown = shared.shutdown.subscribe();
    loop {
        let accepted = tokio::select! {
            biased;
            _ = shutdown.wait_for(|stop| *stop) => break,
            accepted = listener.accept() => accepted,
        };
        let Ok((stream, peer)) = accepted else {
            // Transient accept errors (e.g. EMFILE): back off briefly instead of spinning.
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        };
        if !super::wire::is_loopback_ip(peer.ip()) {
            // CB-4: drop without a response.
            tracing::warn!("callback: dropped a connection from a non-loopback peer");
            continue;
        }
        tokio::spawn(serve_connection(
            stream,
            Arc::clone(&shared),
            options.clone(),
        ));
    }
    // Dropping `listener` here closes the socket (CB-3).
}

/// A finished login's outcome, held by its connection until the page has been written.
struct Deferred {
    sender: oneshot::Sender<Outcome>,
    outcome: Outcome,
}

/// Where a connection's handler leaves the outcome it must deliver after answering.
type DeferredSlot = Arc<Mutex<Option<Deferred>>>;

async fn serve_connection(stream: TcpStream, shared: Arc<Shared>, options: ListenerOptions) {
    let deferred: DeferredSlot = Arc::default();
    let handler = Arc::clone(&shared);
    let slot = Arc::clone(&deferred);
    let service = service_fn(move |req: Request<Incoming>| {
        let response = handle(&handler, &req, &slot);
        async move { Ok::<_, Infallible>(response) }
    });
    // A GET has no body and the head is bounded by `read_timeout`, so two of them is plenty
    // for the whole exchange; a client that stops reading cannot hold the login forever.
    let lifetime = options.read_timeout.saturating_mul(2);
    let served = run_connection(stream, service, &shared, &options);
    let _ = tokio::time::timeout(lifetime, served).await;
    // The browser has its page (or is gone): only now wake the waiting login.
    let pending = deferred
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .take();
    if let Some(Deferred { sender, outcome }) = pending {
        let _ = sender.send(outcome);
    }
}

async fn run_connection<S>(
    stream: TcpStream,
    service: S,
    shared: &Shared,
    options: &ListenerOptions,
) where
    S: hyper::service::Service<
            Request<Incoming>,
            Response = Response<Full<Bytes>>,
            Error = Infallible,
        >,
{
    let mut shutdown = shared.shutdown.subscribe();
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(options.read_timeout)
        .max_buf_size(options.max_head_bytes.max(HYPER_MIN_BUF))
        // One request per connection: nothing idles after the answer.
        .keep_alive(false);
    let conn = builder.serve_connection(TokioIo::new(stream), service);
    let mut conn = std::pin::pin!(conn);
    tokio::select! {
        _ = conn.as_mut() => return,
        _ = shutdown.wait_for(|stop| *stop) => {}
    }
    // Finish the response in flight (the success page), then close.
    conn.as_mut().graceful_shutdown();
    let _ = conn.await;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(query: &str) -> Params {
        Params::parse(query)
    }

    #[test]
    fn cb4_loopback_peer_predicate() {
        assert!(crate::oauth::wire::is_loopback_ip(
            "127.0.0.1".parse().unwrap()
        ));
        assert!(crate::oauth::wire::is_loopback_ip(
            "127.8.9.1".parse().unwrap()
        ));
        assert!(crate::oauth::wire::is_loopback_ip("::1".parse().unwrap()));
        assert!(crate::oauth::wire::is_loopback_ip(
            "::ffff:127.0.0.1".parse().unwrap()
        ));
        assert!(!crate::oauth::wire::is_loopback_ip(
            "10.0.0.1".parse().unwrap()
        ));
        assert!(!crate::oauth::wire::is_loopback_ip(
            "::ffff:192.168.1.1".parse().unwrap()
        ));
        assert!(!crate::oauth::wire::is_loopback_ip("::".parse().unwrap()));
    }

    #[test]
    fn cb5_allowed_hosts_per_redirect_host() {
        assert_eq!(
            allowed_hosts(Some(Host::Ipv4(Ipv4Addr::LOCALHOST)), 4000),
            ["127.0.0.1:4000"]
        );
        assert_eq!(
            allowed_hosts(Some(Host::Ipv6(Ipv6Addr::LOCALHOST)), 4000),
            ["[::1]:4000"]
        );
        assert_eq!(
            allowed_hosts(Some(Host::Domain("localhost")), 1455),
            ["localhost:1455", "127.0.0.1:1455", "[::1]:1455"]
        );
    }

    #[test]
    fn cb8_access_denied_is_denied() {
        let out = evaluate(
            params("error=access_denied&error_description=no"),
            None,
            false,
        );
        assert!(matches!(out, Err(CallbackError::Denied { description: Some(d) }) if d == "no"));
    }

    #[test]
    fn authz7_provider_error_is_escaped_and_truncated() {
        let long = "y".repeat(1000);
        let q = format!("error=server%1b[31m&error_description=a%0a{long}");
        let Err(CallbackError::Provider { error, description }) = evaluate(params(&q), None, false)
        else {
            panic!("expected a provider error");
        };
        assert!(!error.contains('\x1b'), "{error}");
        let d = description.unwrap();
        assert!(!d.contains('\n'));
        assert!(
            d.chars().count() <= MAX_DESCRIPTION_CHARS + 4,
            "{}",
            d.len()
        );
    }

    #[test]
    fn cb9_neither_code_nor_error_or_repeated_code_is_malformed() {
        assert!(matches!(
            evaluate(params(""), None, false),
            Err(CallbackError::Malformed)
        ));
        assert!(matches!(
            evaluate(params("code="), None, false),
            Err(CallbackError::Malformed)
        ));
        assert!(matches!(
            evaluate(params("code=a&code=b"), None, false),
            Err(CallbackError::Malformed)
        ));
    }

    #[test]
    fn authz4_iss_rules() {
        let ok = evaluate(params("code=c&iss=https://a"), Some("https://a"), false).unwrap();
        assert_eq!(ok.iss.as_deref(), Some("https://a"));
        assert_eq!(ok.code.secret(), "c");
        // Exact match only: no trailing-slash or case normalisation.
        for q in [
            "code=c&iss=https://a/",
            "code=c&iss=HTTPS://a",
            "code=c&iss=x&iss=https://a",
        ] {
            assert!(
                matches!(
                    evaluate(params(q), Some("https://a"), false),
                    Err(CallbackError::IssuerMismatch)
                ),
                "{q}"
            );
        }
        // Error responses are checked too.
        assert!(matches!(
            evaluate(
                params("error=access_denied&iss=https://evil"),
                Some("https://a"),
                false
            ),
            Err(CallbackError::IssuerMismatch)
        ));
        // Missing iss: accepted unless required.
        assert!(evaluate(params("code=c"), Some("https://a"), false).is_ok());
        assert!(matches!(
            evaluate(params("code=c"), Some("https://a"), true),
            Err(CallbackError::IssuerMismatch)
        ));
    }

    #[test]
    fn cb11_page_headers_and_escaping() {
        let resp = page(StatusCode::OK, "t<", "<script>alert(1)</script>");
        let h = resp.headers();
        assert_eq!(h[CACHE_CONTROL], "no-store");
        assert_eq!(h["referrer-policy"], "no-referrer");
        assert_eq!(
            html_escape("<a href='x'>&\""),
            "&lt;a href=&#39;x&#39;&gt;&amp;&quot;"
        );
    }

    #[test]
    fn errors_never_show_secrets_and_port_is_named() {
        let e = CallbackError::PortInUse { port: 1455 };
        assert!(e.to_string().contains("1455"));
        let r = CallbackResult {
            code: AuthCode::new("sekrit-code"),
            iss: None,
        };
        assert!(!format!("{r:?}").contains("sekrit"));
    }
}
