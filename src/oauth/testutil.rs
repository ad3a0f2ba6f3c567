//! The one HTTP stub of the test suites, on 127.0.0.1:0. It records every request it receives
//! and answers either from a script ([`Stub::start`]: each request gets the next reply, the last
//! one repeats, one request at a time) or from a handler ([`Stub::serve`]: a function of the
//! request, connections served concurrently, on plain HTTP or HTTPS with a certificate made at
//! start: [`Stub::serve_tls`]). One request per connection; request bodies by `Content-Length`
//! or chunked, bodies either way may be binary. Test support only (`cfg(test)` or the
//! `test-support` feature, which the integration tests and benches turn on): not in a release
//! build.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use url::Url;

use super::client::{ClientSettings, OAuthClient};
use super::device::DeviceTiming;
use super::retry::RetryPolicy;

/// One scripted answer.
#[derive(Debug, Clone)]
pub enum Reply {
    /// An HTTP response, optionally after a delay.
    Respond {
        status: u16,
        headers: Vec<(String, String)>,
        body: Vec<u8>,
        delay: Duration,
    },
    /// Read the request, then close the connection without answering.
    Drop,
}

impl Reply {
    pub fn json(status: u16, body: &str) -> Self {
        Self::text(status, body).header("Content-Type", "application/json")
    }
    pub fn form(status: u16, body: &str) -> Self {
        Self::text(status, body).header("Content-Type", "application/x-www-form-urlencoded")
    }
    pub fn text(status: u16, body: &str) -> Self {
        Self::bytes(status, body.as_bytes().to_vec())
    }
    /// Any body, binary included (no `Content-Type` unless added).
    pub fn bytes(status: u16, body: Vec<u8>) -> Self {
        Self::Respond {
            status,
            headers: Vec::new(),
            body,
            delay: Duration::ZERO,
        }
    }
    pub fn header(mut self, k: &str, v: &str) -> Self {
        if let Self::Respond { headers, .. } = &mut self {
            headers.push((k.to_owned(), v.to_owned()));
        }
        self
    }
    pub fn delay(mut self, d: Duration) -> Self {
        if let Self::Respond { delay, .. } = &mut self {
            *delay = d;
        }
        self
    }
}

/// A request the stub received.
#[derive(Debug, Clone)]
pub struct Recorded {
    pub method: String,
    pub path: String,
    pub headers: Vec<(String, String)>,
    /// The body as text (lossy).
    pub body: String,
    /// The body as received (de-chunked).
    pub bytes: Vec<u8>,
    /// Head and body as received (lossy).
    pub raw: String,
    pub at: Instant,
}

impl Recorded {
    pub fn header(&self, name: &str) -> Option<String> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.clone())
    }

    /// The path without its query.
    pub fn route(&self) -> &str {
        self.path.split_once('?').map_or(&self.path, |(p, _)| p)
    }

    /// The query string (without `?`; empty when there is none).
    pub fn query(&self) -> &str {
        self.path.split_once('?').map_or("", |(_, q)| q)
    }

    /// `Authorization: Bearer` token.
    pub fn bearer(&self) -> Option<String> {
        let value = self.header("authorization")?;
        value.strip_prefix("Bearer ").map(|t| t.trim().to_owned())
    }

    /// `Authorization: Basic` user and password.
    pub fn basic(&self) -> Option<(String, String)> {
        use base64::Engine as _;
        let value = self.header("authorization")?;
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(value.strip_prefix("Basic ")?.trim())
            .ok()?;
        let (user, pass) = std::str::from_utf8(&decoded).ok()?.split_once(':')?;
        Some((user.to_owned(), pass.to_owned()))
    }
}

/// The running stub; stops when dropped.
pub struct Stub {
    pub addr: SocketAddr,
    /// The certificate (PEM) of an HTTPS stub, for the client to trust.
    pub ca_pem: Option<String>,
    requests: Arc<Mutex<Vec<Recorded>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Stub {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Stub {
    pub async fn start(script: Vec<Reply>) -> Self {
        Self::start_with(|_| script).await
    }

    /// Starts a stub whose script may mention its own address.
    pub async fn start_with(script: impl FnOnce(SocketAddr) -> Vec<Reply>) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let script = script(addr);
        assert!(!script.is_empty(), "a stub needs at least one reply");
        let requests = Arc::new(Mutex::new(Vec::new()));
        let log = requests.clone();
        let task = tokio::spawn(async move {
            let mut next = 0usize;
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                let reply = script[next.min(script.len() - 1)].clone();
                let log = log.clone();
                // Requests are served one at a time, in order, so the script stays in order.
                let served =
                    tokio::time::timeout(Duration::from_secs(10), serve(stream, reply, log)).await;
                if matches!(served, Ok(true)) {
                    next += 1;
                }
            }
        });
        Self {
            addr,
            ca_pem: None,
            requests,
            task,
        }
    }

    /// A stub that answers each request with `handler(request)`, serving connections
    /// concurrently (a slow reply does not hold up the next request). The handler runs on a
    /// blocking thread, so it may block: run a program, or ask another server with a blocking
    /// client.
    pub async fn serve(handler: impl Fn(&Recorded) -> Reply + Send + Sync + 'static) -> Self {
        Self::serve_with(|_| handler).await
    }

    /// [`serve`](Self::serve) with a handler that may mention the stub's own address.
    pub async fn serve_with<H>(handler: impl FnOnce(SocketAddr) -> H) -> Self
    where
        H: Fn(&Recorded) -> Reply + Send + Sync + 'static,
    {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        Self::serving(listener, Arc::new(handler(addr)), None)
    }

    /// [`serve`](Self::serve) over HTTPS, with a fresh self-signed certificate for
    /// `127.0.0.1` (in [`ca_pem`](Self::ca_pem)).
    pub async fn serve_tls(handler: impl Fn(&Recorded) -> Reply + Send + Sync + 'static) -> Self {
        let key = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_owned()]).unwrap();
        let der = rustls::pki_types::PrivatePkcs8KeyDer::from(key.signing_key.serialize_der());
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(vec![key.cert.der().clone()], der.into())
            .unwrap();
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        let mut stub = Self::serving(listener, Arc::new(handler), Some(acceptor));
        stub.ca_pem = Some(key.cert.pem());
        stub
    }

    fn serving(
        listener: TcpListener,
        handler: Arc<dyn Fn(&Recorded) -> Reply + Send + Sync>,
        tls: Option<tokio_rustls::TlsAcceptor>,
    ) -> Self {
        let addr = listener.local_addr().unwrap();
        let requests = Arc::new(Mutex::new(Vec::new()));
        let log = requests.clone();
        let task = tokio::spawn(async move {
            // Connection tasks live in the set, so stopping the stub stops them too.
            let mut connections = tokio::task::JoinSet::new();
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                let (log, handler, tls) = (log.clone(), handler.clone(), tls.clone());
                connections.spawn(async move {
                    let answer = answer(stream, tls, handler, log);
                    let _ = tokio::time::timeout(Duration::from_secs(60), answer).await;
                });
                while connections.try_join_next().is_some() {}
            }
        });
        Self {
            addr,
            ca_pem: None,
            requests,
            task,
        }
    }

    /// The base URL, `http://127.0.0.1:PORT` or `https://…` (no trailing slash).
    pub fn base(&self) -> String {
        let scheme = if self.ca_pem.is_some() {
            "https"
        } else {
            "http"
        };
        format!("{scheme}://{}", self.addr)
    }

    pub fn url(&self, path: &str) -> Url {
        Url::parse(&format!("{}{path}", self.base())).unwrap()
    }

    pub fn requests(&self) -> Vec<Recorded> {
        self.requests.lock().unwrap().clone()
    }
}

/// Reads one request and answers it. False when no request arrived on the connection.
async fn serve(mut stream: TcpStream, reply: Reply, log: Arc<Mutex<Vec<Recorded>>>) -> bool {
    let Some(request) = read_request(&mut stream).await else {
        return false;
    };
    log.lock().unwrap().push(request);
    respond(stream, reply).await;
    true
}

/// Serves one connection of [`Stub::serve`]: the TLS handshake if any, one request read within
/// 10 s, the handler's reply.
async fn answer(
    stream: TcpStream,
    tls: Option<tokio_rustls::TlsAcceptor>,
    handler: Arc<dyn Fn(&Recorded) -> Reply + Send + Sync>,
    log: Arc<Mutex<Vec<Recorded>>>,
) {
    async fn on<S: AsyncRead + AsyncWrite + Unpin>(
        mut stream: S,
        handler: Arc<dyn Fn(&Recorded) -> Reply + Send + Sync>,
        log: Arc<Mutex<Vec<Recorded>>>,
    ) {
        let read = tokio::time::timeout(Duration::from_secs(10), read_request(&mut stream));
        let Ok(Some(request)) = read.await else {
            return;
        };
        let answered = tokio::task::spawn_blocking(move || (handler(&request), request)).await;
        if let Ok((reply, request)) = answered {
            log.lock().unwrap().push(request);
            respond(stream, reply).await;
        }
    }
    match tls {
        None => on(stream, handler, log).await,
        Some(acceptor) => {
            let handshake = tokio::time::timeout(Duration::from_secs(10), acceptor.accept(stream));
            if let Ok(Ok(stream)) = handshake.await {
                on(stream, handler, log).await;
            }
        }
    }
}

/// The most body bytes read of one request.
const MAX_BODY: usize = 64 << 20;

/// Reads one request (head, then a `Content-Length` or chunked body); `None` when none arrived.
async fn read_request<S: AsyncRead + Unpin>(stream: &mut S) -> Option<Recorded> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let head_end = loop {
        if let Some(p) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break p + 4;
        }
        match stream.read(&mut chunk).await {
            Ok(0) | Err(_) => return None,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    let mut lines = head.split("\r\n");
    let mut first = lines.next().unwrap_or_default().split(' ');
    let method = first.next().unwrap_or_default().to_owned();
    let path = first.next().unwrap_or_default().to_owned();
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    let value = |name: &str| {
        headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    };
    let chunked = value("transfer-encoding").is_some_and(|v| v.eq_ignore_ascii_case("chunked"));
    let len: usize = value("content-length")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let mut rest = buf.split_off(head_end);
    let bytes = if chunked {
        read_chunked(stream, rest).await
    } else {
        while rest.len() < len.min(MAX_BODY) {
            match stream.read(&mut chunk).await {
                Ok(0) | Err(_) => break,
                Ok(n) => rest.extend_from_slice(&chunk[..n]),
            }
        }
        rest
    };
    let body = String::from_utf8_lossy(&bytes).into_owned();
    Some(Recorded {
        method,
        path,
        headers,
        raw: format!("{head}{body}"),
        body,
        bytes,
        at: Instant::now(),
    })
}

/// A chunked body, `buf` holding what was read after the head: the chunks' data, up to
/// [`MAX_BODY`] bytes and the last (empty) chunk; trailers are not read.
async fn read_chunked<S: AsyncRead + Unpin>(stream: &mut S, mut buf: Vec<u8>) -> Vec<u8> {
    let mut body = Vec::new();
    let mut at = 0;
    let mut chunk = [0u8; 4096];
    loop {
        // The size line, then that many bytes and their CRLF.
        let parsed = buf[at..]
            .windows(2)
            .position(|w| w == b"\r\n")
            .and_then(|end| {
                let line = std::str::from_utf8(&buf[at..at + end]).ok()?;
                let size = usize::from_str_radix(line.split(';').next()?.trim(), 16).ok()?;
                Some((end + 2, size))
            });
        if let Some((line, size)) = parsed {
            if size == 0 || body.len() + size > MAX_BODY {
                return body;
            }
            if buf.len() >= at + line + size + 2 {
                body.extend_from_slice(&buf[at + line..at + line + size]);
                at += line + size + 2;
                continue;
            }
        }
        match stream.read(&mut chunk).await {
            Ok(0) | Err(_) => return body,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
}

/// Writes `reply` (after its delay) and closes the connection.
async fn respond<S: AsyncWrite + Unpin>(mut stream: S, reply: Reply) {
    match reply {
        Reply::Drop => {
            let _ = stream.shutdown().await;
        }
        Reply::Respond {
            status,
            headers,
            body,
            delay,
        } => {
            tokio::time::sleep(delay).await;
            let mut out = format!(
                "HTTP/1.1 {status} Stub\r\nContent-Length: {}\r\nConnection: close\r\n",
                body.len()
            );
            for (k, v) in headers {
                out.push_str(&format!("{k}: {v}\r\n"));
            }
            out.push_str("\r\n");
            let mut out = out.into_bytes();
            out.extend_from_slice(&body);
            let _ = stream.write_all(&out).await;
            let _ = stream.shutdown().await;
        }
    }
}

/// A port nothing listens on (bound, then released).
pub async fn closed_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    l.local_addr().unwrap().port()
}

/// Decodes a form body into a map.
pub fn form_of(body: &str) -> HashMap<String, String> {
    form_urlencoded::parse(body.as_bytes())
        .into_owned()
        .collect()
}

/// Settings with millisecond backoff and device steps, no proxy.
pub fn fast_settings() -> ClientSettings {
    ClientSettings {
        connect_timeout: Duration::from_secs(2),
        timeout: Duration::from_secs(5),
        retry: RetryPolicy {
            max_attempts: 3,
            base: Duration::from_millis(5),
            cap: Duration::from_millis(20),
            max_total: Duration::from_secs(10),
            retry_after_cap: Duration::from_secs(2),
        },
        device: DeviceTiming {
            slow_down_step: Duration::from_millis(150),
            max_interval: Duration::from_millis(600),
        },
        system_proxy: false,
    }
}

/// A client with [`fast_settings`].
pub fn fast_client() -> OAuthClient {
    OAuthClient::with_settings(fast_settings()).unwrap()
}
