//! The proxy's request handling for the fuzz targets in `fuzz/` (feature `fuzzing`; never in a
//! normal build, see docs/fuzzing.md).
//!
//! [`answer`] runs one request through the handler every proxy connection uses: routing, CORS,
//! content type and size checks, the JSON body parser and the field checks. The proxy is built
//! once, from a fixed configuration, by [`Proxy::build`]; its one client's token, revocation
//! and device endpoints are a closed loopback port, so a request that passes every check ends
//! in a quick 502 instead of leaving the machine.

use std::net::{IpAddr, Ipv4Addr};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};

use bytes::Bytes;
use http::Request;
use http_body_util::{BodyExt, Full};
use tracing::Level;

use super::{LogSink, Proxy, ProxyConfig, handler};

/// The fixed client's secret: must never appear in an answer or a log line.
pub const CLIENT_SECRET: &str = "fuzz-proxy-client-secret-5f1c";
/// The fixed client's allowed origin.
pub const ORIGIN: &str = "https://app.example";
/// The fixed client's redirect URI.
pub const REDIRECT_URI: &str = "http://127.0.0.1:8765/callback";

const CONFIG: &str = r#"
listen = "127.0.0.1:0"
upstream_timeout_secs = 2
rate_limit_per_minute = 0
[clients.dash]
token_endpoint = "http://127.0.0.1:9/token"
revocation_endpoint = "http://127.0.0.1:9/revoke"
device_authorization_endpoint = "http://127.0.0.1:9/device"
client_id = "dash"
client_secret_env = "FUZZ_SECRET"
redirect_uris = ["http://127.0.0.1:8765/callback"]
allowed_origins = ["https://app.example"]
"#;

/// What the proxy answered and logged.
#[derive(Debug)]
pub struct Answer {
    /// The response status.
    pub status: u16,
    /// The response body.
    pub body: Bytes,
    /// The log lines this request wrote.
    pub log: Vec<String>,
}

/// Keeps the lines of the request in flight (one at a time).
#[derive(Default)]
struct Lines(Mutex<Vec<String>>);

impl LogSink for Lines {
    fn write(&self, _level: Level, line: &str) {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(line.to_owned());
    }
}

struct Rig {
    runtime: tokio::runtime::Runtime,
    proxy: Proxy,
    lines: Arc<Lines>,
}

fn rig() -> &'static Rig {
    static RIG: OnceLock<Rig> = OnceLock::new();
    RIG.get_or_init(|| {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap_or_else(|e| panic!("fuzz rig: no runtime: {e}"));
        let config = ProxyConfig::from_str(CONFIG, "fuzz.toml")
            .unwrap_or_else(|e| panic!("fuzz rig: bad config: {e}"));
        let lines = Arc::new(Lines::default());
        let env = |name: &str| (name == "FUZZ_SECRET").then(|| CLIENT_SECRET.to_owned());
        let sink = Arc::clone(&lines) as Arc<dyn LogSink>;
        let proxy = runtime
            .block_on(Proxy::build(&config, &env, sink))
            .unwrap_or_else(|e| panic!("fuzz rig: proxy: {e}"));
        Rig {
            runtime,
            proxy,
            lines,
        }
    })
}

/// Answers `req` as the proxy would for a client at 127.0.0.1.
pub fn answer(req: Request<Full<Bytes>>) -> Answer {
    let rig = rig();
    let shared = rig.proxy.current.load();
    let peer = IpAddr::V4(Ipv4Addr::LOCALHOST);
    let (status, body) = rig.runtime.block_on(async move {
        let response = handler::handle(shared, peer, req).await;
        let status = response.status().as_u16();
        let body = response
            .into_body()
            .collect()
            .await
            .map(|c| c.to_bytes())
            .unwrap_or_default();
        (status, body)
    });
    let log = std::mem::take(&mut *rig.lines.0.lock().unwrap_or_else(PoisonError::into_inner));
    Answer { status, body, log }
}
