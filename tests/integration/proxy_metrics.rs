//! Integration tests: `GET /metrics` of the exchange proxy (PROXY-16, PROXY-17): counts that
//! match what was sent, scraped while requests run, no secret or token in the text, off by
//! default, and on a separate listener with the real binary.

use crate::proxy_lb::start_upstream;
use crate::proxy_reload::{Running, start_proxy};
use authdeck::proxy::{CaptureSink, Proxy, ProxyConfig, ProxyHandle};
use std::io::{Read, Write};
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;

const SECRET: &str = "metrics-test-s3cret";
const VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
const REDIRECT: &str = "http://127.0.0.1:8765/callback";

/// A port nothing listens on.
fn closed_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

async fn start(top: &str, good_endpoint: &str) -> ProxyHandle {
    let text = format!(
        r#"{top}
[clients.good]
token_endpoint = "{good_endpoint}"
client_id = "good"
client_secret = "{SECRET}"
allow_inline_secret = true
redirect_uris = ["{REDIRECT}"]
[clients.down]
token_endpoint = "http://127.0.0.1:{}/token"
client_id = "down"
client_secret = "{SECRET}"
allow_inline_secret = true
redirect_uris = ["{REDIRECT}"]
"#,
        closed_port()
    );
    let config = ProxyConfig::from_str(&text, "metrics.toml").unwrap();
    let proxy = Proxy::build(&config, &|_| None, Arc::new(CaptureSink::default()))
        .await
        .unwrap();
    proxy
        .spawn(TcpListener::bind("127.0.0.1:0").await.unwrap())
        .unwrap()
}

fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(20))
        .build()
        .unwrap()
}

async fn exchange(http: &reqwest::Client, proxy: &ProxyHandle, client: &str, n: usize) -> u16 {
    let body = serde_json::json!({
        "code": format!("CODE-{n}"), "code_verifier": VERIFIER,
        "redirect_uri": REDIRECT, "client": client,
    });
    let url = format!("{}/api/auth/exchange", proxy.url());
    let resp = http.post(url).json(&body).send().await.unwrap();
    resp.status().as_u16()
}

async fn scrape(http: &reqwest::Client, base: &str) -> (u16, String) {
    let resp = http.get(format!("{base}/metrics")).send().await.unwrap();
    let status = resp.status().as_u16();
    (status, resp.text().await.unwrap())
}

/// The value of the sample line that starts with `series ` (exact labels).
fn sample(text: &str, series: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
        .unwrap_or_else(|| panic!("no sample {series} in\n{text}"))
        .parse()
        .unwrap()
}

#[tokio::test]
async fn metrics_count_routes_clients_statuses_errors_and_limits_proxy_16() {
    let upstream = start_upstream();
    let endpoint = upstream.url.clone();
    let proxy = start("metrics = true\nrate_limit_per_minute = 60", &endpoint).await;
    let http = http();

    // 40 good exchanges in parallel while /metrics is scraped: every scrape parses.
    let mut tasks = tokio::task::JoinSet::new();
    for n in 0..40 {
        let (http, url) = (http.clone(), proxy.url());
        tasks.spawn(async move {
            let body = serde_json::json!({
                "code": format!("CODE-{n}"), "code_verifier": VERIFIER,
                "redirect_uri": REDIRECT, "client": "good",
            });
            let r = http
                .post(format!("{url}/api/auth/exchange"))
                .json(&body)
                .send()
                .await;
            r.unwrap().status().as_u16()
        });
    }
    for _ in 0..5 {
        let (status, text) = scrape(&http, &proxy.url()).await;
        assert_eq!(status, 200);
        assert!(text.contains("# TYPE authdeck_proxy_requests_total counter"));
    }
    let mut statuses = Vec::new();
    while let Some(s) = tasks.join_next().await {
        statuses.push(s.unwrap());
    }
    assert!(statuses.iter().all(|s| *s == 200), "{statuses:?}");
    // 5 exchanges for the client whose upstream is down: 502 unreachable.
    for n in 0..5 {
        assert_eq!(exchange(&http, &proxy, "down", n).await, 502);
    }
    // A hostile client name is refused and never becomes a label.
    assert_eq!(exchange(&http, &proxy, "evil\"name\n", 0).await, 400);
    // 46 counted so far; 14 more reach the limit of 60, then 3 are refused.
    let mut limited = 0;
    for n in 0..17 {
        if exchange(&http, &proxy, "good", 100 + n).await == 429 {
            limited += 1;
        }
    }
    assert_eq!(limited, 3);

    let (status, text) = scrape(&http, &proxy.url()).await;
    assert_eq!(status, 200);
    let ok = sample(
        &text,
        r#"authdeck_proxy_requests_total{route="/api/auth/exchange",client="good",status="200"}"#,
    );
    assert_eq!(ok, 54.0);
    let down = sample(
        &text,
        r#"authdeck_proxy_requests_total{route="/api/auth/exchange",client="down",status="502"}"#,
    );
    assert_eq!(down, 5.0);
    let bad = sample(
        &text,
        r#"authdeck_proxy_requests_total{route="/api/auth/exchange",client="-",status="400"}"#,
    );
    assert_eq!(bad, 1.0);
    assert_eq!(sample(&text, "authdeck_proxy_rate_limited_total"), 3.0);
    assert_eq!(
        sample(
            &text,
            r#"authdeck_proxy_upstream_errors_total{kind="unreachable"}"#
        ),
        5.0
    );
    assert_eq!(
        sample(
            &text,
            r#"authdeck_proxy_upstream_errors_total{kind="timeout"}"#
        ),
        0.0
    );
    // 54 good + 5 down upstream calls; refused requests never reach the upstream.
    assert_eq!(
        sample(&text, "authdeck_proxy_upstream_duration_seconds_count"),
        59.0
    );
    assert_eq!(
        sample(
            &text,
            r#"authdeck_proxy_upstream_duration_seconds_bucket{le="+Inf"}"#
        ),
        59.0
    );
    assert!(sample(&text, "authdeck_proxy_open_connections") >= 1.0);
    // Nothing a request carried, and no secret or token.
    for needle in [SECRET, "CODE-", VERIFIER, "at-lb", "evil", "access_token"] {
        assert!(!text.contains(needle), "{needle} in\n{text}");
    }
    proxy.shutdown().await.unwrap();
}

#[tokio::test]
async fn metrics_are_off_by_default_proxy_17() {
    let upstream = start_upstream();
    let endpoint = upstream.url.clone();
    let proxy = start("", &endpoint).await;
    let (status, text) = scrape(&http(), &proxy.url()).await;
    assert_eq!(status, 404);
    assert!(!text.contains("authdeck_proxy"), "{text}");
    proxy.shutdown().await.unwrap();
}

/// A GET on a fresh connection; the status and body.
fn get(addr: &str, path: &str) -> (u16, String) {
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut reply = String::new();
    s.read_to_string(&mut reply).unwrap();
    let status = reply.get(9..12).and_then(|c| c.parse().ok()).unwrap_or(0);
    let body = reply
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    (status, body)
}

#[test]
fn binary_serves_metrics_only_on_metrics_listen_and_counts_reloads_proxy_17() {
    let upstream = start_upstream();
    let endpoint = upstream.url.clone();
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("proxy.toml");
    std::fs::write(dir.path().join("secret"), SECRET).unwrap();
    let text = format!(
        r#"metrics_listen = "127.0.0.1:0"
[clients.app]
token_endpoint = "{endpoint}"
client_id = "app"
client_secret_file = "secret"
redirect_uris = ["{REDIRECT}"]
"#
    );
    std::fs::write(&config, &text).unwrap();
    let proxy: Running = start_proxy(&config);
    let line = proxy.wait_for("metrics on http://");
    let metrics_addr = line
        .split("metrics on http://")
        .nth(1)
        .unwrap()
        .trim()
        .trim_end_matches("/metrics")
        .to_owned();
    let (status, _) = get(&proxy.addr, "/metrics");
    assert_eq!(status, 404, "not on the main listener");
    let (status, _) = get(&metrics_addr, "/api/auth/exchange");
    assert_eq!(status, 404, "nothing but /metrics on the metrics listener");
    assert_eq!(get(&proxy.addr, "/healthz").0, 200);

    std::fs::write(&config, "broken = [").unwrap();
    proxy.signal("-HUP");
    proxy.wait_for("reload refused");
    std::fs::write(&config, &text).unwrap();
    proxy.signal("-HUP");
    proxy.wait_for("reloaded: 1 client(s)");

    let (status, body) = get(&metrics_addr, "/metrics");
    assert_eq!(status, 200);
    assert_eq!(
        sample(&body, r#"authdeck_proxy_reloads_total{result="refused"}"#),
        1.0
    );
    assert_eq!(
        sample(&body, r#"authdeck_proxy_reloads_total{result="applied"}"#),
        1.0
    );
    assert_eq!(
        sample(
            &body,
            r#"authdeck_proxy_requests_total{route="/healthz",client="-",status="200"}"#
        ),
        1.0
    );
    assert!(!body.contains(SECRET));
}
