//! The exchange proxy (`authdeck proxy`): a small stateless server that holds OAuth client
//! secrets for front ends and thin clients and completes the code exchange and refresh for
//! them (rules PROXY-1..10 and SECRET-3 in docs/protocol.md).
//!
//! ```text
//! browser ──POST /api/auth/exchange {code, code_verifier, redirect_uri}──► proxy
//! proxy ──POST token_endpoint, Authorization: Basic (id:secret), form──► authorization server
//! ```
//!
//! It shares no code path with the client-side `oauth` module, so nothing on the client side
//! can ever carry a proxy secret. Build a [`Proxy`] from a [`ProxyConfig`], then [`Proxy::serve`]
//! it on a listener (or [`Proxy::spawn`] it, in tests). See docs/proxy.md.

pub mod config;
mod cors;
mod device;
pub mod forwarded;
#[cfg(feature = "fuzzing")]
pub mod fuzzing;
mod handler;
mod limits;
pub mod log;
mod metrics;
mod ratelimit;
mod reload;
mod upstream;

pub use config::MetricsMode;
pub use config::{ConfigError, EndpointSource, ProxyClient, ProxyConfig, SecretSource};
pub use handler::MAX_BODY;
pub use log::{CaptureSink, LogSink, TracingSink};
pub use metrics::MetricsEndpoint;
pub use reload::Reloader;

use crate::secret::ClientSecret;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use metrics::Metrics;
use ratelimit::RateLimiter;
use std::collections::BTreeMap;
use std::convert::Infallible;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{oneshot, watch};
use tokio::task::JoinSet;
use tracing::Level;
use url::Url;

/// How long a client may take to send request headers (slowloris guard).
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);
/// How long an open connection may still bring a request after shutdown began (PROXY-20).
const DRAIN_LINGER: Duration = Duration::from_secs(1);
/// Extra time granted to in-flight requests at shutdown beyond the upstream timeout.
pub(crate) const DRAIN_GRACE: Duration = Duration::from_secs(5);

/// Why the proxy could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ProxyError {
    /// The configuration is invalid or a secret is missing (PROXY-9).
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// Discovery of an `issuer`'s token endpoint failed.
    #[error("{location}: client '{client}': {message}")]
    Discovery {
        /// `FILE:LINE:COL` of the client table.
        location: String,
        /// The client's name.
        client: String,
        /// What failed.
        message: String,
    },
    /// The HTTP client could not be built (TLS roots unavailable).
    #[error("cannot build the upstream HTTP client: {0}")]
    Http(#[from] reqwest::Error),
}

/// A client ready to serve: endpoint resolved, secret loaded.
pub(crate) struct ResolvedClient {
    pub(crate) name: String,
    pub(crate) token_endpoint: Url,
    /// `None`: the client cannot revoke through the proxy (501).
    pub(crate) revocation_endpoint: Option<Url>,
    /// `None`: the client cannot start a device login through the proxy (501, PROXY-18).
    pub(crate) device_authorization_endpoint: Option<Url>,
    pub(crate) client_id: String,
    pub(crate) secret: ClientSecret,
    pub(crate) redirect_uris: Vec<String>,
    pub(crate) allowed_origins: Vec<String>,
}

/// One configuration generation: what a request needs, read-only except the rate-limit
/// counts. A reload builds a new one and swaps it in; a request keeps the generation it
/// started with until it ends (PROXY-14).
pub(crate) struct Shared {
    pub(crate) clients: BTreeMap<String, Arc<ResolvedClient>>,
    /// Every client's origins: a preflight carries no body, so it cannot name its client.
    pub(crate) all_origins: Vec<String>,
    pub(crate) http: reqwest::Client,
    /// Shared between generations while `rate_limit_per_minute` stays the same, so a reload
    /// does not hand every client a fresh window.
    pub(crate) limiter: Option<Arc<RateLimiter>>,
    pub(crate) log: Arc<dyn LogSink>,
    /// Whose forwarding headers are believed (PROXY-11).
    pub(crate) trusted: forwarded::TrustedProxies,
    /// The process's counters, the same in every generation (PROXY-16).
    pub(crate) metrics: Arc<Metrics>,
}

/// A proxy ready to serve.
pub struct Proxy {
    current: Arc<reload::Current>,
    reloader: Reloader,
    log: Arc<dyn LogSink>,
    /// The listener expects a PROXY protocol header first (PROXY-13); fixed at startup.
    proxy_protocol: bool,
    metrics: Arc<Metrics>,
    /// `GET /metrics` is served on the main listener (`metrics = true` without
    /// `metrics_listen`, PROXY-17).
    metrics_on_listen: bool,
    /// Open connections, in total and per address (HARD-13); fixed at startup.
    limits: Arc<limits::ConnectionLimits>,
}

impl std::fmt::Debug for Proxy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Proxy")
            .field(
                "clients",
                &self.current.load().clients.keys().collect::<Vec<_>>(),
            )
            .finish_non_exhaustive()
    }
}

impl Proxy {
    /// Loads every client's secret (`env` looks up environment variables; pass
    /// `&|name| std::env::var(name).ok()` in production), discovers `issuer` token endpoints,
    /// and builds the shared upstream client. Fails if any secret is missing (PROXY-9).
    pub async fn build(
        config: &ProxyConfig,
        env: &(dyn Fn(&str) -> Option<String> + Sync),
        log: Arc<dyn LogSink>,
    ) -> Result<Self, ProxyError> {
        let limiter = RateLimiter::new(config.rate_limit_per_minute).map(Arc::new);
        let metrics = Arc::new(Metrics::default());
        let shared =
            build_shared(config, env, Arc::clone(&log), limiter, Arc::clone(&metrics)).await?;
        let current = Arc::new(reload::Current::new(Arc::new(shared)));
        let reloader = Reloader::new(Arc::clone(&current), config, Arc::clone(&log));
        Ok(Self {
            current,
            reloader,
            log,
            proxy_protocol: config.proxy_protocol,
            metrics,
            metrics_on_listen: config.metrics == MetricsMode::OnListen,
            limits: limits::ConnectionLimits::new(
                config.max_connections,
                config.max_connections_per_ip,
            ),
        })
    }

    /// The proxy's metrics, to serve on a separate listener (`metrics_listen`, PROXY-17).
    pub fn metrics(&self) -> MetricsEndpoint {
        MetricsEndpoint(Arc::clone(&self.metrics))
    }

    /// A handle that applies a new configuration to this proxy while it serves (SIGHUP).
    pub fn reloader(&self) -> Reloader {
        self.reloader.clone()
    }

    /// Serves on `listener` until `shutdown` completes, then stops accepting, lets in-flight
    /// requests finish (up to the upstream timeout plus 5 s) and returns.
    pub async fn serve(
        self,
        listener: TcpListener,
        shutdown: impl Future<Output = ()>,
    ) -> std::io::Result<()> {
        let (stop_tx, stop_rx) = watch::channel(false);
        let mut connections = JoinSet::new();
        // HARD-13: one warning per second at most, however fast accept fails or refuses.
        let accept_failed = limits::Throttle::new(Duration::from_secs(1));
        self.log.write(
            Level::INFO,
            &format!(
                "connection limits: {} open in total, {} per client address",
                self.limits.max_total(),
                self.limits.max_per_ip()
            ),
        );
        let refused = limits::Throttle::new(Duration::from_secs(1));
        tokio::pin!(shutdown);
        loop {
            tokio::select! {
                () = &mut shutdown => break,
                accepted = listener.accept() => match accepted {
                    Ok((stream, peer)) => {
                        self.admit(stream, peer, &mut connections, &stop_rx, &refused);
                    }
                    Err(e) => {
                        // Out of file descriptors and the like: back off instead of spinning.
                        if let Some(held) = accept_failed.allow(std::time::Instant::now()) {
                            self.log.write(
                                Level::WARN,
                                &format!(
                                    "accept failed: {e} ({held} more since the last warning)"
                                ),
                            );
                        }
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                },
                Some(_) = connections.join_next(), if !connections.is_empty() => {}
            }
        }
        let _ = stop_tx.send(true);
        // PROXY-20: connections the kernel already completed are served, not reset: a
        // balancer may have sent a request on one, and it cannot safely resend a POST.
        while let Ok(Ok((stream, peer))) =
            tokio::time::timeout(Duration::ZERO, listener.accept()).await
        {
            self.admit(stream, peer, &mut connections, &stop_rx, &refused);
        }
        drop(listener);
        let in_flight = connections.len();
        self.log.write(
            Level::INFO,
            &format!("shutting down: {in_flight} open connection(s) draining"),
        );
        let drain = async { while connections.join_next().await.is_some() {} };
        if tokio::time::timeout(self.reloader.drain_timeout(), drain)
            .await
            .is_err()
        {
            self.log.write(
                Level::WARN,
                "shutdown: connections still open after the drain timeout were closed",
            );
            connections.abort_all();
        }
        Ok(())
    }

    /// Admits a new connection under the connection limits (HARD-13) and serves it in
    /// `connections`, or closes it at once when a limit is reached.
    fn admit(
        &self,
        stream: TcpStream,
        peer: SocketAddr,
        connections: &mut JoinSet<()>,
        stop_rx: &watch::Receiver<bool>,
        refused: &limits::Throttle,
    ) {
        let ip = forwarded::canonical(peer.ip());
        let shared = self.current.load();
        let per_ip = !shared.trusted.contains(ip);
        match self.limits.admit(ip, per_ip) {
            Ok(slot) => {
                connections.spawn(serve_connection(
                    Arc::clone(&self.current),
                    stream,
                    peer,
                    Listener {
                        proxy_protocol: self.proxy_protocol,
                        metrics: self.metrics_on_listen,
                    },
                    stop_rx.clone(),
                    slot,
                ));
            }
            Err(why) => {
                // Closed at once: the descriptor is free again, and the client may retry.
                drop(stream);
                if let Some(held) = refused.allow(std::time::Instant::now()) {
                    let what = match why {
                        limits::Refused::Total => "the proxy's",
                        limits::Refused::PerIp => "that address's",
                    };
                    self.log.write(
                        Level::WARN,
                        &format!(
                            "connection refused: {what} connection limit is reached ({held} \
                             more refused since the last warning)"
                        ),
                    );
                }
            }
        }
    }

    /// Serves on `listener` in a background task; for tests and embedding.
    pub fn spawn(self, listener: TcpListener) -> std::io::Result<ProxyHandle> {
        let local_addr = listener.local_addr()?;
        let (tx, rx) = oneshot::channel::<()>();
        let task = tokio::spawn(self.serve(listener, async {
            let _ = rx.await;
        }));
        Ok(ProxyHandle {
            local_addr,
            stop: Some(tx),
            task,
        })
    }
}

/// Loads every client's secret, discovers `issuer` endpoints and builds one generation.
pub(crate) async fn build_shared(
    config: &ProxyConfig,
    env: &(dyn Fn(&str) -> Option<String> + Sync),
    log: Arc<dyn LogSink>,
    limiter: Option<Arc<RateLimiter>>,
    metrics: Arc<Metrics>,
) -> Result<Shared, ProxyError> {
    let http = upstream::build_client(config.upstream_timeout)?;
    let mut clients = BTreeMap::new();
    let mut all_origins: Vec<String> = Vec::new();
    for (name, client) in &config.clients {
        let secret = client.secret.load(name, env)?;
        let Endpoints {
            token: token_endpoint,
            revocation: revocation_endpoint,
            device: device_authorization_endpoint,
        } = resolve_endpoints(&http, name, client).await?;
        log.write(
            Level::INFO,
            &format!(
                "client {name}: token endpoint {token_endpoint}, revocation endpoint {}",
                revocation_endpoint
                    .as_ref()
                    .map_or("(none: /api/auth/revoke answers 501)", Url::as_str)
            ),
        );
        for origin in &client.allowed_origins {
            if !all_origins.contains(origin) {
                all_origins.push(origin.clone());
            }
        }
        clients.insert(
            name.clone(),
            Arc::new(ResolvedClient {
                name: name.clone(),
                token_endpoint,
                revocation_endpoint,
                device_authorization_endpoint,
                client_id: client.client_id.clone(),
                secret,
                redirect_uris: client.redirect_uris.clone(),
                allowed_origins: client.allowed_origins.clone(),
            }),
        );
    }
    Ok(Shared {
        clients,
        all_origins,
        http,
        limiter,
        log,
        trusted: config.trusted_proxies.clone(),
        metrics,
    })
}

/// A client's upstream endpoints once configured values and discovery are combined.
struct Endpoints {
    token: Url,
    revocation: Option<Url>,
    device: Option<Url>,
}

/// The client's token, revocation and device authorization endpoints: as configured, or
/// discovered from `issuer` (a configured revocation or device endpoint wins over the
/// discovered one).
async fn resolve_endpoints(
    http: &reqwest::Client,
    name: &str,
    client: &ProxyClient,
) -> Result<Endpoints, ProxyError> {
    match &client.endpoint {
        EndpointSource::TokenEndpoint(url) => Ok(Endpoints {
            token: url.clone(),
            revocation: client.revocation_endpoint.clone(),
            device: client.device_authorization_endpoint.clone(),
        }),
        EndpointSource::Issuer(issuer) => {
            let fail = |message: String| ProxyError::Discovery {
                location: client.location.clone(),
                client: name.to_owned(),
                message,
            };
            let found = upstream::discover(http, issuer).await.map_err(fail)?;
            // A configured endpoint wins; a discovered one already passed DISC-4.
            let pick = |configured: &Option<Url>, discovered: Option<Url>| {
                configured.clone().or(discovered)
            };
            Ok(Endpoints {
                revocation: pick(&client.revocation_endpoint, found.revocation_endpoint),
                device: pick(
                    &client.device_authorization_endpoint,
                    found.device_authorization_endpoint,
                ),
                token: found.token_endpoint,
            })
        }
    }
}

/// A running proxy started by [`Proxy::spawn`]. Dropping it stops the proxy.
#[derive(Debug)]
pub struct ProxyHandle {
    local_addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl ProxyHandle {
    /// The address the proxy listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The base URL, such as `http://127.0.0.1:40123`.
    pub fn url(&self) -> String {
        format!("http://{}", self.local_addr)
    }

    /// Stops accepting, waits for in-flight requests, and returns the server's result.
    pub async fn shutdown(mut self) -> std::io::Result<()> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        match (&mut self.task).await {
            Ok(result) => result,
            Err(e) => Err(std::io::Error::other(e)),
        }
    }
}

/// What a listening socket does besides the proxy routes.
#[derive(Debug, Clone, Copy)]
struct Listener {
    /// Expects a PROXY protocol header first (PROXY-13).
    proxy_protocol: bool,
    /// Answers `GET /metrics` (PROXY-17).
    metrics: bool,
}

async fn serve_connection(
    current: Arc<reload::Current>,
    mut stream: TcpStream,
    peer: SocketAddr,
    listener: Listener,
    mut stop: watch::Receiver<bool>,
    // Held for the connection's lifetime (HARD-13).
    _slot: limits::Slot,
) {
    let counters = Arc::clone(&current.load().metrics);
    let _open = counters.connection();
    // Token requests are small request/response pairs: Nagle would only add latency.
    let _ = stream.set_nodelay(true);
    let Some(peer) = connection_peer(&current, &mut stream, peer, listener.proxy_protocol).await
    else {
        counters.proxy_header_refused();
        return;
    };
    let stopping = stop.clone();
    let service = service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
        // Each request takes the generation current when it starts (PROXY-14).
        let shared = current.load();
        let client = shared.trusted.client_ip(peer, req.headers());
        let stopping = stopping.clone();
        async move {
            let mut response = if listener.metrics && req.uri().path() == metrics::PATH {
                metrics::answer(&shared.metrics, req.method())
            } else {
                handler::handle(shared, client, req).await
            };
            if *stopping.borrow() {
                // PROXY-20: the client learns not to send another request here.
                response.headers_mut().insert(
                    hyper::header::CONNECTION,
                    hyper::header::HeaderValue::from_static("close"),
                );
            }
            Ok::<_, Infallible>(response)
        }
    });
    let connection = http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT)
        .serve_connection(TokioIo::new(stream), service);
    tokio::pin!(connection);
    tokio::select! {
        _ = connection.as_mut() => {}
        _ = async { let _ = stop.wait_for(|stopping| *stopping).await; } => {
            // PROXY-20: a request may be on its way on this connection (a balancer's reused
            // keep-alive connection, or one accepted just now): it gets DRAIN_LINGER to arrive
            // and is answered with `Connection: close`. Then the request in flight, if any,
            // finishes and the connection closes (graceful shutdown).
            if tokio::time::timeout(DRAIN_LINGER, connection.as_mut()).await.is_err() {
                connection.as_mut().graceful_shutdown();
                let _ = connection.await;
            }
        }
    }
}

/// The address a connection stands for: the TCP peer, or on a PROXY protocol listener the
/// source the header announces when the TCP peer is a trusted proxy (PROXY-13). `None`: the
/// header was missing or malformed; the connection is closed without an answer, since the
/// bytes that follow cannot be trusted to be HTTP.
async fn connection_peer(
    current: &reload::Current,
    stream: &mut TcpStream,
    peer: SocketAddr,
    proxy_protocol: bool,
) -> Option<IpAddr> {
    let tcp_peer = forwarded::canonical(peer.ip());
    if !proxy_protocol {
        return Some(tcp_peer);
    }
    match forwarded::read_proxy_header(stream, HEADER_READ_TIMEOUT).await {
        Ok(forwarded::ProxyHeader::Source(source)) if current.load().trusted.contains(tcp_peer) => {
            Some(forwarded::canonical(source.ip()))
        }
        // From an untrusted peer the announced source is ignored (PROXY-11).
        Ok(_) => Some(tcp_peer),
        Err(e) => {
            current
                .load()
                .log
                .write(Level::DEBUG, &format!("connection closed: {e}"));
            None
        }
    }
}
