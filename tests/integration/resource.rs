//! Loopback resource servers for the integration tests: a small threaded HTTP/1.1 server whose
//! handler decides each answer, and the check a resource server makes of a bearer token (the
//! devserver's `/userinfo` answers 200 only for an access token it issued and still honours).
//! git smart HTTP (`git_http`) and the fake Kubernetes API (`kube`) run on it.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// One request, read whole.
pub struct Req {
    pub method: String,
    pub path: String,
    pub query: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Req {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// `Authorization: Basic` user and password.
    pub fn basic(&self) -> Option<(String, String)> {
        use base64::Engine as _;
        let value = self.header("authorization")?.strip_prefix("Basic ")?;
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(value.trim())
            .ok()?;
        let text = String::from_utf8(decoded).ok()?;
        let (user, pass) = text.split_once(':')?;
        Some((user.to_string(), pass.to_string()))
    }

    /// `Authorization: Bearer` token.
    pub fn bearer(&self) -> Option<&str> {
        self.header("authorization")?
            .strip_prefix("Bearer ")
            .map(str::trim)
    }
}

/// One answer.
pub struct Resp {
    pub status: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Resp {
    pub fn new(status: &str, content_type: &str, body: impl Into<Vec<u8>>) -> Resp {
        Resp {
            status: status.to_string(),
            headers: vec![("Content-Type".into(), content_type.into())],
            body: body.into(),
        }
    }

    pub fn with_header(mut self, k: &str, v: &str) -> Resp {
        self.headers.push((k.into(), v.into()));
        self
    }
}

type Handler = Arc<dyn Fn(Req) -> Resp + Send + Sync>;

/// The running server; stopped (and its accept loop joined) on drop.
pub struct HttpServer {
    pub port: u16,
    /// The self-signed certificate (PEM) of an HTTPS server, for the client to trust.
    pub ca_pem: Option<String>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl HttpServer {
    /// Plain HTTP.
    pub fn start(handler: impl Fn(Req) -> Resp + Send + Sync + 'static) -> HttpServer {
        HttpServer::start_with(None, handler)
    }

    /// HTTPS with a fresh self-signed certificate for `127.0.0.1` (kubectl's client runs an
    /// exec credential plugin only for HTTPS servers).
    pub fn start_tls(handler: impl Fn(Req) -> Resp + Send + Sync + 'static) -> HttpServer {
        let key = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_string()]).unwrap();
        let der = rustls::pki_types::PrivatePkcs8KeyDer::from(key.signing_key.serialize_der());
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(vec![key.cert.der().clone()], der.into())
            .unwrap();
        let mut server = HttpServer::start_with(Some(Arc::new(config)), handler);
        server.ca_pem = Some(key.cert.pem());
        server
    }

    fn start_with(
        tls: Option<Arc<rustls::ServerConfig>>,
        handler: impl Fn(Req) -> Resp + Send + Sync + 'static,
    ) -> HttpServer {
        let handler: Handler = Arc::new(handler);
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let port = listener.local_addr().unwrap().port();
        let stop = Arc::new(AtomicBool::new(false));
        let stop2 = stop.clone();
        let thread = std::thread::spawn(move || {
            while !stop2.load(Ordering::SeqCst) {
                match listener.accept() {
                    Ok((stream, _)) => {
                        let (handler, tls) = (handler.clone(), tls.clone());
                        std::thread::spawn(move || {
                            let _ = accept(stream, tls, &handler);
                        });
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(5)),
                }
            }
        });
        HttpServer {
            port,
            ca_pem: None,
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for HttpServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn accept(
    stream: TcpStream,
    tls: Option<Arc<rustls::ServerConfig>>,
    handler: &Handler,
) -> std::io::Result<()> {
    stream.set_nonblocking(false)?;
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    match tls {
        None => serve(stream, handler),
        Some(config) => {
            let conn = rustls::ServerConnection::new(config).map_err(std::io::Error::other)?;
            serve(rustls::StreamOwned::new(conn, stream), handler)
        }
    }
}

/// Answers requests on one connection until the client closes it (keep-alive, as git and
/// kubectl expect), each read with a 10 s timeout.
fn serve(stream: impl Read + Write, handler: &Handler) -> std::io::Result<()> {
    let mut reader = BufReader::new(stream);
    for _ in 0..1000 {
        let Some(req) = read_request(&mut reader)? else {
            return Ok(());
        };
        let resp = handler(req);
        let mut head = format!("HTTP/1.1 {}\r\n", resp.status);
        for (k, v) in &resp.headers {
            head.push_str(&format!("{k}: {v}\r\n"));
        }
        head.push_str(&format!("Content-Length: {}\r\n\r\n", resp.body.len()));
        let out = reader.get_mut();
        out.write_all(head.as_bytes())?;
        out.write_all(&resp.body)?;
        out.flush()?;
    }
    Ok(())
}

fn read_request(r: &mut impl BufRead) -> std::io::Result<Option<Req>> {
    let mut line = String::new();
    if r.read_line(&mut line)? == 0 {
        return Ok(None);
    }
    let mut parts = line.split_whitespace();
    let method = parts.next().unwrap_or_default().to_string();
    let target = parts.next().unwrap_or_default().to_string();
    let (path, query) = match target.split_once('?') {
        Some((p, q)) => (p.to_string(), q.to_string()),
        None => (target, String::new()),
    };
    let mut headers = Vec::new();
    for _ in 0..200 {
        let mut h = String::new();
        if r.read_line(&mut h)? == 0 || h.trim_end().is_empty() {
            break;
        }
        if let Some((k, v)) = h.trim_end().split_once(':') {
            headers.push((k.trim().to_string(), v.trim().to_string()));
        }
    }
    let mut req = Req {
        method,
        path,
        query,
        headers,
        body: Vec::new(),
    };
    req.body = read_body(r, &req)?;
    Ok(Some(req))
}

fn read_body(r: &mut impl BufRead, req: &Req) -> std::io::Result<Vec<u8>> {
    let mut body = Vec::new();
    if req
        .header("transfer-encoding")
        .is_some_and(|v| v.eq_ignore_ascii_case("chunked"))
    {
        for _ in 0..100_000 {
            let mut size = String::new();
            r.read_line(&mut size)?;
            let n = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
            if n == 0 {
                let mut end = String::new();
                r.read_line(&mut end)?;
                break;
            }
            let mut chunk = vec![0; n.min(16 << 20)];
            r.read_exact(&mut chunk)?;
            body.extend_from_slice(&chunk);
            let mut crlf = [0u8; 2];
            r.read_exact(&mut crlf)?;
        }
    } else if let Some(n) = req
        .header("content-length")
        .and_then(|v| v.parse::<usize>().ok())
    {
        body.resize(n.min(64 << 20), 0);
        r.read_exact(&mut body)?;
    }
    Ok(body)
}

/// Whether the devserver at `userinfo` honours `token` as a live access token.
pub fn token_is_live(userinfo: &str, token: &str) -> bool {
    reqwest::blocking::Client::new()
        .get(userinfo)
        .bearer_auth(token)
        .timeout(Duration::from_secs(5))
        .send()
        .is_ok_and(|r| r.status().is_success())
}
