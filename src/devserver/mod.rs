//! An embedded fake OAuth 2.0 / OpenID Connect authorization server on 127.0.0.1, for
//! `authdeck demo` and the test suites.
//!
//! It approves every authorization request without a password, yet enforces what a real
//! server enforces and what the engine must cope with: PKCE S256, client authentication
//! (`none`, `basic`, `post`), single-use codes bound to client and redirect URI, refresh-token
//! rotation, RFC 7009 revocation and the RFC 8628 device grant. With `cfg(test)` or the
//! `test-support` feature (the test suites' builds, never a release), faults can be injected
//! on demand, answers made hostile (`Hostile`) and the server's clock moved ahead.
//!
//! This is a FAKE: it signs `id_token`s (ES256) with a key pair made at start and published at
//! `/jwks` (so clients exercise the real DISC-5 verification), nothing is persisted, and it
//! listens on loopback only. Tokens are kept as SHA-256 digests, never in the clear, and the
//! server logs nothing but counters.
//!
//! ```no_run
//! # async fn demo() -> std::io::Result<()> {
//! use authdeck::devserver::{DevServer, DevServerConfig};
//! let server = DevServer::start(DevServerConfig::default()).await?;
//! let token_endpoint = server.url("/token");
//! # let _ = token_endpoint;
//! # Ok(())
//! # }
//! ```

#[cfg(any(test, feature = "test-support"))]
mod faults;
mod handlers;
#[cfg(any(test, feature = "test-support"))]
mod hostile;
mod personality;
mod state;

use crate::oauth::client_assertion::{AssertionAlg, ClientKey};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::oauth::AuthMethod;
#[cfg(any(test, feature = "test-support"))]
pub use faults::{Endpoint, FORGED_EMAIL, Fault, IdTokenFault};
use handlers::{Incoming as Req, Reply};
#[cfg(any(test, feature = "test-support"))]
pub use hostile::Hostile;
pub use personality::{
    AuthRule, Expiry, IssRule, Personality, RedirectRule, RefreshRule, Revocation, Route,
    TokenFormat,
};
use state::State;

/// Largest request body the server reads.
const MAX_BODY: usize = 64 * 1024;

/// A client registered with the fake server.
#[derive(Debug, Clone)]
pub struct DevClient {
    /// The `client_id`.
    pub client_id: String,
    /// The secret for `Basic` and `Post` clients (kept as the fake's configuration; tests own it).
    pub secret: Option<String>,
    /// How the client authenticates at `/token`, `/revoke` and `/device_authorization`.
    pub auth: AuthMethod,
    /// Registered redirect URIs (exact match); empty = any loopback `http` URI (RFC 8252 §7.3).
    pub redirect_uris: Vec<String>,
    /// For `private_key_jwt` clients: the algorithm and public key client assertions are
    /// checked with (MACH-2).
    pub assertion_key: Option<(AssertionAlg, Vec<u8>)>,
}

impl DevClient {
    /// A public client (`auth = none`) that accepts any loopback redirect URI.
    pub fn public(client_id: &str) -> Self {
        Self {
            client_id: client_id.to_owned(),
            secret: None,
            auth: AuthMethod::None,
            redirect_uris: Vec::new(),
            assertion_key: None,
        }
    }

    /// A `private_key_jwt` client whose assertions must be signed by `key` (MACH-2).
    pub fn private_key_jwt(client_id: &str, key: &ClientKey) -> Self {
        Self {
            client_id: client_id.to_owned(),
            secret: None,
            auth: AuthMethod::PrivateKeyJwt,
            redirect_uris: Vec::new(),
            assertion_key: Some((key.alg(), key.public_key())),
        }
    }

    /// A confidential client with `auth` (`Basic` or `Post`) and any loopback redirect URI.
    pub fn confidential(client_id: &str, secret: &str, auth: AuthMethod) -> Self {
        Self {
            client_id: client_id.to_owned(),
            secret: Some(secret.to_owned()),
            auth,
            redirect_uris: Vec::new(),
            assertion_key: None,
        }
    }
}

/// Behaviour of a [`DevServer`].
#[derive(Debug, Clone)]
pub struct DevServerConfig {
    /// Registered clients.
    pub clients: Vec<DevClient>,
    /// Lifetime of issued access tokens (default 3600 s; the demo uses 30 s).
    pub access_token_ttl: Duration,
    /// Issue a new refresh token on every refresh and retire the old one (default true).
    pub rotate_refresh_tokens: bool,
    /// Answer successful token requests as `application/x-www-form-urlencoded` (GitHub-like).
    /// Error responses stay JSON.
    pub form_encoded_responses: bool,
    /// Send `expires_in` as a string (`"3600"`), as some providers do.
    pub expires_in_as_string: bool,
    /// Leave `expires_in` out of token responses (unknown expiry).
    pub omit_expires_in: bool,
    /// Send exactly this `expires_in` instead of the lifetime, e.g. `0`, `-5` or `"abc"`, as
    /// broken providers do (EXP-3 tests). The server still expires tokens after
    /// `access_token_ttl`. `omit_expires_in` wins over it.
    pub expires_in_value: Option<serde_json::Value>,
    /// Issue refresh tokens at all (default true).
    pub issue_refresh_tokens: bool,
    /// Approve a device code on its first poll (the demo has nobody to open `/device`).
    pub auto_approve_device: bool,
    /// The device grant's polling `interval` (default 5 s; tests use 1).
    pub device_interval_secs: u64,
    /// How long a device code stays valid (default 600 s); an addition for `expired_token` tests.
    pub device_code_ttl: Duration,
    /// Hostile answers for the security tests (none by default; test support only).
    #[cfg(any(test, feature = "test-support"))]
    pub hostile: Hostile,
    /// Answer as this provider documents (its paths and quirks), instead of the generic
    /// server; see [`Personality::for_template`].
    pub personality: Option<Personality>,
    /// When set, only these clients may start the device grant; others get `invalid_client`
    /// "Invalid client type." (Google accepts only "TVs and Limited Input devices" clients).
    pub device_client_ids: Option<Vec<String>>,
    /// RFC 8707 resource indicators a refresh may ask for (default none: `invalid_target`).
    pub resources: Vec<String>,
}

impl Default for DevServerConfig {
    /// One public client, `demo-public`, with any loopback redirect URI.
    fn default() -> Self {
        Self {
            clients: vec![DevClient::public("demo-public")],
            access_token_ttl: Duration::from_secs(3600),
            rotate_refresh_tokens: true,
            form_encoded_responses: false,
            expires_in_as_string: false,
            omit_expires_in: false,
            expires_in_value: None,
            issue_refresh_tokens: true,
            auto_approve_device: false,
            device_interval_secs: 5,
            device_code_ttl: Duration::from_secs(600),
            #[cfg(any(test, feature = "test-support"))]
            hostile: Hostile::default(),
            personality: None,
            device_client_ids: None,
            resources: Vec::new(),
        }
    }
}

/// Request counters.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Stats {
    /// Requests to `/token` (any grant, any outcome, faults included).
    pub token_requests: u64,
    /// Successful authorization-code exchanges.
    pub code_exchanges: u64,
    /// Successful refreshes.
    pub refreshes: u64,
    /// Device-code polls at `/token` (any outcome).
    pub device_polls: u64,
    /// Requests to `/revoke` that passed client authentication.
    pub revocations: u64,
    /// Requests to `/userinfo` and `/api/*` (any outcome).
    pub userinfo: u64,
    /// The client authentication method of the last authenticated request: `none`, `basic`
    /// or `post`.
    pub last_client_auth: Option<String>,
    /// Requests to `/jwks`.
    pub jwks_requests: u64,
    /// Tokens issued by the client credentials grant.
    pub client_credentials: u64,
}

/// State shared by the handle and every connection task.
struct Shared {
    state: Mutex<State>,
    #[cfg(any(test, feature = "test-support"))]
    faults: faults::Queue,
}

impl Shared {
    /// Locks the state; a poisoned lock (a panicking handler) still yields the data.
    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// The running fake server. It runs on background tokio tasks and shuts down on drop.
pub struct DevServer {
    addr: SocketAddr,
    shared: Arc<Shared>,
    // Dropping the sender tells the accept loop and every connection to stop.
    _stop: watch::Sender<()>,
}

impl std::fmt::Debug for DevServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DevServer")
            .field("addr", &self.addr)
            .finish()
    }
}

impl DevServer {
    /// Binds 127.0.0.1 on a free port and starts serving. Must run inside a tokio runtime.
    pub async fn start(config: DevServerConfig) -> std::io::Result<DevServer> {
        let listener = TcpListener::bind(("127.0.0.1", 0)).await?;
        let addr = listener.local_addr()?;
        let issuer = format!("http://{addr}");
        let shared = Arc::new(Shared {
            state: Mutex::new(State::new(config, issuer)?),
            #[cfg(any(test, feature = "test-support"))]
            faults: faults::Queue::default(),
        });
        let (stop, stopped) = watch::channel(());
        tokio::spawn(accept_loop(listener, shared.clone(), stopped));
        Ok(DevServer {
            addr,
            shared,
            _stop: stop,
        })
    }

    /// The issuer, `http://127.0.0.1:PORT` (no trailing slash).
    pub fn issuer(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The absolute URL of `path` (which should start with `/`).
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.issuer())
    }

    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Makes the next `times` requests to `on` misbehave with `fault`, then recover.
    /// Faults queued for the same endpoint are served in order.
    #[cfg(any(test, feature = "test-support"))]
    pub fn inject(&self, fault: Fault, times: u32, on: Endpoint) {
        faults::push(&self.shared.faults, fault, times, on);
    }

    /// Replaces the hostile answers from now on (see [`Hostile`]).
    #[cfg(any(test, feature = "test-support"))]
    pub fn set_hostile(&self, hostile: Hostile) {
        self.shared.state().config.hostile = hostile;
    }

    /// A snapshot of the counters.
    pub fn stats(&self) -> Stats {
        self.shared.state().stats.clone()
    }

    /// Approves the pending device authorization with this user code (the "browser" step).
    /// False when no pending authorization has it.
    pub fn approve_device(&self, user_code: &str) -> bool {
        self.shared.state().decide_device(user_code, true)
    }

    /// Denies the pending device authorization with this user code.
    pub fn deny_device(&self, user_code: &str) -> bool {
        self.shared.state().decide_device(user_code, false)
    }

    /// Replaces the id_token signing key with a new one under a new `kid` (key rotation):
    /// `/jwks` lists only the new key from now on. Returns the new `kid`.
    pub fn rotate_signing_key(&self) -> std::io::Result<String> {
        let key = state::SigningKey::generate()?;
        let kid = key.kid.clone();
        self.shared.state().signing = key;
        Ok(kid)
    }

    /// Moves the server's clock ahead by `by` (token lifetimes, refresh-token ages, device
    /// polling intervals), so a test need not sleep.
    #[cfg(any(test, feature = "test-support"))]
    pub fn advance_clock(&self, by: Duration) {
        let mut state = self.shared.state();
        state.clock_offset = state.clock_offset.saturating_add(by);
    }

    /// Revokes every access and refresh token server-side.
    pub fn revoke_all(&self) {
        self.shared.state().revoke_all();
    }

    /// Stops the server (as dropping it does).
    pub fn shutdown(self) {
        drop(self);
    }
}

/// Accepts connections until the handle is dropped.
async fn accept_loop(listener: TcpListener, shared: Arc<Shared>, mut stopped: watch::Receiver<()>) {
    loop {
        let accepted = tokio::select! {
            a = listener.accept() => a,
            _ = stopped.changed() => return,
        };
        // Accept errors (e.g. too many open files) are transient: keep serving.
        let Ok((stream, _)) = accepted else {
            tokio::time::sleep(Duration::from_millis(10)).await;
            continue;
        };
        let shared = shared.clone();
        let mut stopped = stopped.clone();
        tokio::spawn(async move {
            let service = service_fn(move |req| serve(shared.clone(), req));
            let conn = http1::Builder::new()
                .keep_alive(true)
                .serve_connection(TokioIo::new(stream), service);
            tokio::select! {
                _ = conn => {}
                _ = stopped.changed() => {}
            }
        });
    }
}

/// What makes hyper drop a connection without answering: only an injected
/// `Fault::ConnectionReset` (test support), so a release build cannot fail here.
#[cfg(not(any(test, feature = "test-support")))]
type ResetConnection = std::convert::Infallible;
#[cfg(any(test, feature = "test-support"))]
use faults::ResetConnection;

/// Serves one request: fault injection first, then the endpoint.
async fn serve(
    shared: Arc<Shared>,
    req: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, ResetConnection> {
    let (parts, body) = req.into_parts();
    handlers::count_request(&mut shared.state(), parts.uri.path());
    #[allow(unused_mut)]
    let mut reply = None;
    #[cfg(any(test, feature = "test-support"))]
    let mut id_token_fault = None;
    #[cfg(any(test, feature = "test-support"))]
    let mut answer_after = None;
    #[cfg(any(test, feature = "test-support"))]
    {
        let endpoint = faults::endpoint_of(parts.method.as_str(), parts.uri.path());
        match faults::take(&shared.faults, endpoint) {
            Some(Fault::ConnectionReset) => return Err(ResetConnection),
            Some(Fault::Slow(d)) => tokio::time::sleep(d).await,
            Some(Fault::SlowAnswer(d)) => answer_after = Some(d),
            Some(Fault::IdToken(f)) => id_token_fault = Some(f),
            Some(other) => reply = Some(faults::fault_reply(other)),
            None => {}
        }
    }
    let reply = match reply {
        Some(r) => r,
        None => {
            let body = match Limited::new(body, MAX_BODY).collect().await {
                Ok(b) => b.to_bytes(),
                Err(_) => return Ok(into_response(Reply::text(413, "request body too large"))),
            };
            let incoming = Req::new(&parts, body);
            let mut state = shared.state();
            #[cfg(any(test, feature = "test-support"))]
            {
                state.id_token_fault = id_token_fault;
            }
            let reply = handlers::route(&mut state, &incoming);
            #[cfg(any(test, feature = "test-support"))]
            {
                state.id_token_fault = None;
            }
            reply
        }
    };
    #[cfg(any(test, feature = "test-support"))]
    if let Some(d) = answer_after {
        tokio::time::sleep(d).await;
    }
    Ok(into_response(reply))
}

/// Builds the hyper response.
fn into_response(reply: Reply) -> Response<Full<Bytes>> {
    let mut builder = Response::builder()
        .status(reply.status)
        .header("content-type", reply.content_type)
        .header("cache-control", "no-store");
    for (name, value) in &reply.headers {
        builder = builder.header(name.as_str(), value.as_str());
    }
    builder
        .body(Full::new(Bytes::from(reply.body)))
        .unwrap_or_else(|_| {
            let mut r = Response::new(Full::new(Bytes::from_static(b"internal error")));
            *r.status_mut() = hyper::StatusCode::INTERNAL_SERVER_ERROR;
            r
        })
}
