//! `GET /metrics` in the Prometheus text format (version 0.0.4) (PROXY-16, PROXY-17).
//!
//! Every label value comes from a fixed set or from the configuration: the route (one of the
//! known paths or `(other)`), the client's configured name (`-` when none was selected), the
//! HTTP status, an error kind. Nothing a request carries, and never a secret or token, can
//! become a label, so the series count stays bounded whatever clients send.
//!
//! Recording costs one uncontended mutex and a hash lookup per request and a few atomic adds
//! per upstream call; rendering walks the small map once.

use super::handler::Body;
use super::upstream::Reply;
use bytes::Bytes;
use http::{HeaderValue, Method, Response, StatusCode, header};
use http_body_util::Full;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use std::collections::HashMap;
use std::convert::Infallible;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// The metrics path.
pub(crate) const PATH: &str = "/metrics";
/// The exposition format's content type.
const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";
/// Slow scrapers must not pin a connection of the metrics listener.
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);

/// Upper bounds of the upstream latency buckets, in seconds.
const BUCKETS: [f64; 12] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0,
];

/// Why an upstream call did not give a usable answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum UpstreamError {
    /// No answer within `upstream_timeout_secs` (the proxy answered 504).
    Timeout,
    /// Connection refused, reset, DNS, TLS (502 `temporarily_unavailable`).
    Unreachable,
    /// 5xx, 3xx, non-JSON, oversized, or a 200 without a token (502 `server_error`).
    BadResponse,
    /// The server refused the proxy's own credentials (PROXY-5's alert).
    InvalidClient,
}

impl UpstreamError {
    const ALL: [Self; 4] = [
        Self::Timeout,
        Self::Unreachable,
        Self::BadResponse,
        Self::InvalidClient,
    ];

    fn label(self) -> &'static str {
        match self {
            Self::Timeout => "timeout",
            Self::Unreachable => "unreachable",
            Self::BadResponse => "bad_response",
            Self::InvalidClient => "invalid_client",
        }
    }

    /// Classifies a reply; `None` for a usable answer (a token, or an OAuth error such as
    /// `invalid_grant`, which is the client's business, not an upstream failure).
    pub(crate) fn of(reply: &Reply) -> Option<Self> {
        if reply.from_upstream {
            return (reply.error.as_deref() == Some("invalid_client"))
                .then_some(Self::InvalidClient);
        }
        match (reply.status, reply.error.as_deref()) {
            (StatusCode::GATEWAY_TIMEOUT, _) => Some(Self::Timeout),
            (StatusCode::BAD_GATEWAY, Some("temporarily_unavailable")) => Some(Self::Unreachable),
            (StatusCode::BAD_GATEWAY, _) => Some(Self::BadResponse),
            _ => None,
        }
    }
}

/// How a reload ended, for `authdeck_proxy_reloads_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ReloadOutcome {
    /// The new configuration is in use.
    Applied,
    /// It failed to load; the old one stays.
    Refused,
}

/// Series key of `authdeck_proxy_requests_total`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
struct RequestKey {
    route: &'static str,
    client: Option<String>,
    status: u16,
}

/// The proxy's counters; one per process, shared by every configuration generation.
#[derive(Debug, Default)]
pub(crate) struct Metrics {
    requests: Mutex<HashMap<RequestKey, u64>>,
    latency_buckets: [AtomicU64; BUCKETS.len()],
    latency_count: AtomicU64,
    latency_sum_micros: AtomicU64,
    upstream_errors: [AtomicU64; UpstreamError::ALL.len()],
    rate_limited: AtomicU64,
    open_connections: AtomicI64,
    connections: AtomicU64,
    proxy_header_refused: AtomicU64,
    reloads: [AtomicU64; 2],
}

/// Decrements the open-connection gauge when the connection ends, however it ends.
#[derive(Debug)]
pub(crate) struct ConnectionGuard<'a>(&'a Metrics);

impl Drop for ConnectionGuard<'_> {
    fn drop(&mut self) {
        self.0.open_connections.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Metrics {
    /// Counts one answered request. `client` is a configured client name or `None`; `route`
    /// one of the fixed paths. A 429 is also counted as rate-limited.
    pub(crate) fn request(&self, route: &'static str, client: Option<String>, status: StatusCode) {
        if status == StatusCode::TOO_MANY_REQUESTS {
            self.rate_limited.fetch_add(1, Ordering::Relaxed);
        }
        let key = RequestKey {
            route,
            client,
            status: status.as_u16(),
        };
        let mut map = self.requests.lock().unwrap_or_else(|p| p.into_inner());
        *map.entry(key).or_insert(0) += 1;
    }

    /// Records one upstream call: its duration and, if it failed, why.
    pub(crate) fn upstream(&self, elapsed: Duration, reply: &Reply) {
        let secs = elapsed.as_secs_f64();
        for (bucket, bound) in self.latency_buckets.iter().zip(BUCKETS) {
            if secs <= bound {
                bucket.fetch_add(1, Ordering::Relaxed);
            }
        }
        self.latency_count.fetch_add(1, Ordering::Relaxed);
        let micros = u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX);
        self.latency_sum_micros.fetch_add(micros, Ordering::Relaxed);
        if let Some(kind) = UpstreamError::of(reply)
            && let Some(counter) = UpstreamError::ALL
                .iter()
                .position(|k| *k == kind)
                .and_then(|i| self.upstream_errors.get(i))
        {
            counter.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Counts an accepted connection until the guard is dropped.
    pub(crate) fn connection(&self) -> ConnectionGuard<'_> {
        self.open_connections.fetch_add(1, Ordering::Relaxed);
        self.connections.fetch_add(1, Ordering::Relaxed);
        ConnectionGuard(self)
    }

    /// Counts a connection closed for a missing or malformed PROXY header.
    pub(crate) fn proxy_header_refused(&self) {
        self.proxy_header_refused.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts a reload.
    pub(crate) fn reload(&self, outcome: ReloadOutcome) {
        let i = usize::from(outcome == ReloadOutcome::Refused);
        if let Some(c) = self.reloads.get(i) {
            c.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// The exposition text.
    pub(crate) fn render(&self) -> String {
        let mut out = String::with_capacity(4096);
        let mut requests: Vec<(RequestKey, u64)> = {
            let map = self.requests.lock().unwrap_or_else(|p| p.into_inner());
            map.iter().map(|(k, v)| (k.clone(), *v)).collect()
        };
        requests.sort();
        header(
            &mut out,
            "authdeck_proxy_requests_total",
            "counter",
            "Requests answered, by route, configured client name and HTTP status.",
        );
        for (key, count) in &requests {
            let _ = writeln!(
                out,
                "authdeck_proxy_requests_total{{route=\"{}\",client=\"{}\",status=\"{}\"}} {count}",
                escape(key.route),
                escape(key.client.as_deref().unwrap_or("-")),
                key.status
            );
        }
        header(
            &mut out,
            "authdeck_proxy_upstream_duration_seconds",
            "histogram",
            "Duration of calls to the authorization server (token and revocation endpoints).",
        );
        for (bucket, bound) in self.latency_buckets.iter().zip(BUCKETS) {
            let _ = writeln!(
                out,
                "authdeck_proxy_upstream_duration_seconds_bucket{{le=\"{bound}\"}} {}",
                bucket.load(Ordering::Relaxed)
            );
        }
        let count = self.latency_count.load(Ordering::Relaxed);
        let sum = self.latency_sum_micros.load(Ordering::Relaxed) as f64 / 1e6;
        let _ = writeln!(
            out,
            "authdeck_proxy_upstream_duration_seconds_bucket{{le=\"+Inf\"}} {count}\n\
             authdeck_proxy_upstream_duration_seconds_sum {sum}\n\
             authdeck_proxy_upstream_duration_seconds_count {count}"
        );
        header(
            &mut out,
            "authdeck_proxy_upstream_errors_total",
            "counter",
            "Upstream calls that failed, by kind.",
        );
        for (kind, counter) in UpstreamError::ALL.iter().zip(&self.upstream_errors) {
            let _ = writeln!(
                out,
                "authdeck_proxy_upstream_errors_total{{kind=\"{}\"}} {}",
                kind.label(),
                counter.load(Ordering::Relaxed)
            );
        }
        let simple = [
            (
                "authdeck_proxy_rate_limited_total",
                "counter",
                "Requests refused with 429 by the per-IP rate limit.",
                self.rate_limited.load(Ordering::Relaxed).to_string(),
            ),
            (
                "authdeck_proxy_open_connections",
                "gauge",
                "Client connections open now.",
                self.open_connections.load(Ordering::Relaxed).to_string(),
            ),
            (
                "authdeck_proxy_connections_total",
                "counter",
                "Client connections accepted.",
                self.connections.load(Ordering::Relaxed).to_string(),
            ),
            (
                "authdeck_proxy_proxy_header_refused_total",
                "counter",
                "Connections closed for a missing or malformed PROXY protocol header.",
                self.proxy_header_refused
                    .load(Ordering::Relaxed)
                    .to_string(),
            ),
        ];
        for (name, kind, help, value) in simple {
            header(&mut out, name, kind, help);
            let _ = writeln!(out, "{name} {value}");
        }
        header(
            &mut out,
            "authdeck_proxy_reloads_total",
            "counter",
            "Configuration reloads (SIGHUP), applied or refused.",
        );
        for (result, counter) in ["applied", "refused"].iter().zip(&self.reloads) {
            let _ = writeln!(
                out,
                "authdeck_proxy_reloads_total{{result=\"{result}\"}} {}",
                counter.load(Ordering::Relaxed)
            );
        }
        out
    }
}

/// The answer to a request for [`PATH`]: the text for GET/HEAD, 405 otherwise.
pub(crate) fn answer(metrics: &Metrics, method: &Method) -> Response<Body> {
    let mut r = if method == Method::GET || method == Method::HEAD {
        let mut r = Response::new(Full::new(Bytes::from(metrics.render())));
        r.headers_mut()
            .insert(header::CONTENT_TYPE, HeaderValue::from_static(CONTENT_TYPE));
        r
    } else {
        let mut r = Response::new(Full::new(Bytes::new()));
        *r.status_mut() = StatusCode::METHOD_NOT_ALLOWED;
        r.headers_mut()
            .insert(header::ALLOW, HeaderValue::from_static("GET, HEAD"));
        r
    };
    r.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

/// The metrics of a running proxy, served on their own listener (`metrics_listen`, PROXY-17).
#[derive(Debug, Clone)]
pub struct MetricsEndpoint(pub(crate) Arc<Metrics>);

impl MetricsEndpoint {
    /// The current exposition text.
    pub fn render(&self) -> String {
        self.0.render()
    }

    /// Serves `GET /metrics` (and 404 for anything else) on `listener` until the task is
    /// dropped; nothing else is reachable there.
    pub async fn serve(self, listener: tokio::net::TcpListener) {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                // Out of descriptors and the like: back off instead of spinning.
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            };
            let metrics = Arc::clone(&self.0);
            tokio::spawn(async move {
                let service = service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
                    let response = if req.uri().path() == PATH {
                        answer(&metrics, req.method())
                    } else {
                        let mut r = Response::new(Full::new(Bytes::new()));
                        *r.status_mut() = StatusCode::NOT_FOUND;
                        r
                    };
                    async move { Ok::<_, Infallible>(response) }
                });
                let _ = http1::Builder::new()
                    .timer(TokioTimer::new())
                    .header_read_timeout(HEADER_READ_TIMEOUT)
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    }
}

fn header(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
}

/// Label value escaping of the text format (`\`, `"`, newline). Configured names cannot hold
/// these, but the renderer must not depend on that.
fn escape(value: &str) -> std::borrow::Cow<'_, str> {
    if value.contains(['\\', '"', '\n']) {
        value
            .replace('\\', "\\\\")
            .replace('"', "\\\"")
            .replace('\n', "\\n")
            .into()
    } else {
        value.into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    fn reply(status: StatusCode, error: Option<&str>, from_upstream: bool) -> Reply {
        Reply {
            status,
            body: Bytes::new(),
            error: error.map(str::to_owned),
            from_upstream,
        }
    }

    #[test]
    fn classifies_upstream_failures() {
        let ok = reply(StatusCode::OK, None, false);
        assert_eq!(UpstreamError::of(&ok), None);
        let grant = reply(StatusCode::BAD_REQUEST, Some("invalid_grant"), true);
        assert_eq!(UpstreamError::of(&grant), None);
        let client = reply(StatusCode::UNAUTHORIZED, Some("invalid_client"), true);
        assert_eq!(
            UpstreamError::of(&client),
            Some(UpstreamError::InvalidClient)
        );
        let timeout = reply(
            StatusCode::GATEWAY_TIMEOUT,
            Some("temporarily_unavailable"),
            false,
        );
        assert_eq!(UpstreamError::of(&timeout), Some(UpstreamError::Timeout));
        let down = reply(
            StatusCode::BAD_GATEWAY,
            Some("temporarily_unavailable"),
            false,
        );
        assert_eq!(UpstreamError::of(&down), Some(UpstreamError::Unreachable));
        let junk = reply(StatusCode::BAD_GATEWAY, Some("server_error"), false);
        assert_eq!(UpstreamError::of(&junk), Some(UpstreamError::BadResponse));
    }

    #[test]
    fn renders_prometheus_text() {
        let m = Metrics::default();
        m.request("/api/auth/exchange", Some("dash".into()), StatusCode::OK);
        m.request("/api/auth/exchange", Some("dash".into()), StatusCode::OK);
        m.request("/api/auth/refresh", None, StatusCode::TOO_MANY_REQUESTS);
        m.upstream(
            Duration::from_millis(3),
            &reply(StatusCode::OK, None, false),
        );
        m.upstream(
            Duration::from_secs(11),
            &reply(
                StatusCode::GATEWAY_TIMEOUT,
                Some("temporarily_unavailable"),
                false,
            ),
        );
        let guard = m.connection();
        m.reload(ReloadOutcome::Refused);
        let text = m.render();
        for line in [
            "authdeck_proxy_requests_total{route=\"/api/auth/exchange\",client=\"dash\",status=\"200\"} 2",
            "authdeck_proxy_requests_total{route=\"/api/auth/refresh\",client=\"-\",status=\"429\"} 1",
            "authdeck_proxy_upstream_duration_seconds_bucket{le=\"0.001\"} 0",
            "authdeck_proxy_upstream_duration_seconds_bucket{le=\"0.005\"} 1",
            "authdeck_proxy_upstream_duration_seconds_bucket{le=\"10\"} 1",
            "authdeck_proxy_upstream_duration_seconds_bucket{le=\"+Inf\"} 2",
            "authdeck_proxy_upstream_duration_seconds_sum 11.003",
            "authdeck_proxy_upstream_duration_seconds_count 2",
            "authdeck_proxy_upstream_errors_total{kind=\"timeout\"} 1",
            "authdeck_proxy_upstream_errors_total{kind=\"unreachable\"} 0",
            "authdeck_proxy_rate_limited_total 1",
            "authdeck_proxy_open_connections 1",
            "authdeck_proxy_reloads_total{result=\"refused\"} 1",
            "# TYPE authdeck_proxy_upstream_duration_seconds histogram",
        ] {
            assert!(
                text.lines().any(|l| l == line),
                "missing {line:?} in\n{text}"
            );
        }
        drop(guard);
        assert!(m.render().contains("authdeck_proxy_open_connections 0\n"));
        // Every sample line is NAME{labels} VALUE or NAME VALUE with a numeric value.
        for line in text.lines().filter(|l| !l.starts_with('#')) {
            let value = line.rsplit(' ').next().unwrap();
            assert!(value.parse::<f64>().is_ok(), "{line}");
        }
    }

    #[test]
    fn escapes_label_values() {
        assert_eq!(escape("plain-name.1"), "plain-name.1");
        assert_eq!(escape("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
    }
}
