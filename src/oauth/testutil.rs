//! The one HTTP stub of the test suites, on 127.0.0.1:0. It records every request it receives
//! and answers either from a script ([`Stub::start`]: each request gets the next reply, the last
//! one repeats, one request at a time) or from a handler ([`Stub::serve`]: a function of the
//! request, connections served concurrently). One request per connection. Test support
//! only (`cfg(test)` or the `test-support` feature, which the integration tests and benches
//! turn on): not in a release build.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
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
        body: String,
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
        Self::Respond {
            status,
            headers: Vec::new(),
            body: body.to_owned(),
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
    pub body: String,
    /// Head and body as received.
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
}

/// The running stub; stops when dropped.
pub struct Stub {
    pub addr: SocketAddr,
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
            requests,
            task,
        }
    }

    /// A stub that answers each request with `handler(request)`, serving connections
    /// concurrently (a slow reply does not hold up the next request).
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
        let handler = Arc::new(handler(addr));
        let requests = Arc::new(Mutex::new(Vec::new()));
        let log = requests.clone();
        let task = tokio::spawn(async move {
            // Connection tasks live in the set, so stopping the stub stops them too.
            let mut connections = tokio::task::JoinSet::new();
            loop {
                let Ok((mut stream, _)) = listener.accept().await else {
                    return;
                };
                let (log, handler) = (log.clone(), handler.clone());
                connections.spawn(async move {
                    let read =
                        tokio::time::timeout(Duration::from_secs(10), read_request(&mut stream));
                    if let Ok(Some(request)) = read.await {
                        let reply = handler(&request);
                        log.lock().unwrap().push(request);
                        respond(stream, reply).await;
                    }
                });
                while connections.try_join_next().is_some() {}
            }
        });
        Self {
            addr,
            requests,
            task,
        }
    }

    /// The base URL, `http://127.0.0.1:PORT` (no trailing slash).
    pub fn base(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn url(&self, path: &str) -> Url {
        Url::parse(&format!("http://{}{}", self.addr, path)).unwrap()
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

/// Reads one request (head and `Content-Length` body); `None` when none arrived.
async fn read_request(stream: &mut TcpStream) -> Option<Recorded> {
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
    let len: usize = headers
        .iter()
        .find(|(k, _)| k == "content-length")
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(0);
    while buf.len() < head_end + len {
        match stream.read(&mut chunk).await {
            Ok(0) | Err(_) => break,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
    let body = String::from_utf8_lossy(&buf[head_end..]).into_owned();
    Some(Recorded {
        method,
        path,
        headers,
        raw: format!("{head}{body}"),
        body,
        at: Instant::now(),
    })
}

/// Writes `reply` (after its delay) and closes the connection.
async fn respond(mut stream: TcpStream, reply: Reply) {
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
            out.push_str(&body);
            let _ = stream.write_all(out.as_bytes()).await;
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
