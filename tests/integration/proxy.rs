//! Integration tests: the exchange proxy against an in-test upstream stub that records every
//! request. Rule IDs (PROXY-1..10, SECRET-3) are defined in docs/protocol.md.

use crate::support;
use authdeck::oauth::testutil::{Recorded, Reply as Up, Stub};
use authdeck::proxy::{CaptureSink, Proxy, ProxyConfig, ProxyHandle};
use base64::Engine;
use std::io::{BufRead, BufReader};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::net::TcpListener;

const SECRET: &str = "Sup3r/Secret:v@lue+\u{fc}";
/// RFC 6749 §2.3.1: both parts form-urlencoded before base64.
const ENCODED_PAIR: &str = "dash+board%3A1:Sup3r%2FSecret%3Av%40lue%2B%C3%BC";
const CLIENT_ID: &str = "dash board:1";
const CODE: &str = "AUTH-CODE-4711";
const VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
const REDIRECT: &str = "http://localhost:3100/auth/callback";
const ORIGIN: &str = "http://localhost:3100";
const ACCESS: &str = "AT-very-secret-access";
const REFRESH: &str = "RT-very-secret-refresh";
const TOKEN_JSON: &str = r#"{"access_token":"AT-very-secret-access","token_type":"Bearer","expires_in":3600,"refresh_token":"RT-very-secret-refresh","scope":"openid"}"#;

/// What the stub upstream does with a token request.
#[derive(Clone)]
enum Behavior {
    /// Answer with this status, body and extra headers.
    Reply(u16, &'static str, Vec<(&'static str, &'static str)>),
    /// Wait, then answer 200 with `TOKEN_JSON`.
    Slow(Duration),
}

/// One request the stub saw.
#[derive(Debug, Clone)]
struct Seen {
    method: String,
    path: String,
    authorization: Option<String>,
    body: String,
}

/// The upstream: the suite's shared HTTP stub, answering as `Behavior` says.
struct Upstream {
    url: String,
    stub: Stub,
}

impl Upstream {
    /// Every request but discovery's, in arrival order.
    fn seen(&self) -> Vec<Seen> {
        self.stub
            .requests()
            .into_iter()
            .filter(|r| r.path != DISCOVERY)
            .map(|r| Seen {
                authorization: r.header("authorization"),
                method: r.method,
                path: r.path,
                body: r.body,
            })
            .collect()
    }
}

const DISCOVERY: &str = "/.well-known/openid-configuration";

/// Starts the stub on 127.0.0.1:0. It also serves OIDC discovery naming itself as issuer.
async fn upstream(behavior: Behavior) -> Upstream {
    let stub = Stub::serve_with(move |addr| {
        let url = format!("http://{addr}");
        move |req: &Recorded| {
            if req.path == DISCOVERY {
                return Up::json(
                    200,
                    &format!(
                        r#"{{"issuer":"{url}","token_endpoint":"{url}/discovered-token","revocation_endpoint":"{url}/discovered-revoke"}}"#
                    ),
                );
            }
            match &behavior {
                Behavior::Reply(status, text, headers) => {
                    let mut reply = Up::text(*status, text);
                    if !headers
                        .iter()
                        .any(|(k, _)| k.eq_ignore_ascii_case("content-type"))
                    {
                        reply = reply.header("content-type", "application/json");
                    }
                    for (k, v) in headers {
                        reply = reply.header(k, v);
                    }
                    reply
                }
                Behavior::Slow(d) => Up::json(200, TOKEN_JSON).delay(*d),
            }
        }
    })
    .await;
    Upstream {
        url: stub.base(),
        stub,
    }
}

fn config_text(endpoint_line: &str, extra_top: &str) -> String {
    format!(
        r#"{extra_top}
[clients.dashboard]
{endpoint_line}
client_id = "{CLIENT_ID}"
client_secret_env = "DASH_SECRET"
redirect_uris = ["{REDIRECT}"]
allowed_origins = ["{ORIGIN}"]
"#
    )
}

fn env(name: &str) -> Option<String> {
    match name {
        "DASH_SECRET" => Some(SECRET.to_owned()),
        "OTHER_SECRET" => Some("other-secret-value".to_owned()),
        _ => None,
    }
}

struct Harness {
    proxy: ProxyHandle,
    log: Arc<CaptureSink>,
    http: reqwest::Client,
}

/// A response, already checked for the secret (SECRET-3).
struct Answer {
    status: u16,
    headers: reqwest::header::HeaderMap,
    body: String,
}

impl Answer {
    fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap()
    }
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).map(|v| v.to_str().unwrap())
    }
}

async fn start_with(config: &str) -> Harness {
    let config = ProxyConfig::from_str(config, "test.toml").unwrap();
    let log = Arc::new(CaptureSink::default());
    let proxy = Proxy::build(&config, &env, log.clone()).await.unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    Harness {
        proxy: proxy.spawn(listener).unwrap(),
        log,
        http: reqwest::Client::builder()
            .no_proxy()
            .timeout(Duration::from_secs(15))
            .build()
            .unwrap(),
    }
}

async fn start(up: &Upstream) -> Harness {
    start_with(&config_text(
        &format!("token_endpoint = \"{}/token\"", up.url),
        "",
    ))
    .await
}

fn exchange_body() -> serde_json::Value {
    serde_json::json!({"code": CODE, "code_verifier": VERIFIER, "redirect_uri": REDIRECT})
}

fn assert_no_secret(what: &str, text: &str) {
    let b64 = base64::engine::general_purpose::STANDARD.encode(ENCODED_PAIR);
    for needle in [SECRET, "Sup3r", &b64, "other-secret-value"] {
        assert!(
            !text.contains(needle),
            "{what} leaks the client secret: {text}"
        );
    }
}

impl Harness {
    async fn send(&self, req: reqwest::RequestBuilder) -> Answer {
        let resp = req.send().await.unwrap();
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let body = resp.text().await.unwrap();
        for (name, value) in &headers {
            assert_no_secret("a response header", &format!("{name}: {value:?}"));
        }
        assert_no_secret("a response body", &body);
        Answer {
            status,
            headers,
            body,
        }
    }

    async fn post(&self, path: &str, body: &serde_json::Value) -> Answer {
        let url = format!("{}{path}", self.proxy.url());
        self.send(self.http.post(url).json(body)).await
    }

    /// Every captured log line: never a secret, code, verifier or token (LOG-1, PROXY-10).
    fn checked_log(&self) -> Vec<String> {
        let lines: Vec<String> = self.log.lines().into_iter().map(|(_, l)| l).collect();
        for line in &lines {
            assert_no_secret("a log line", line);
            for needle in [CODE, VERIFIER, ACCESS, REFRESH] {
                assert!(
                    !line.contains(needle),
                    "log line leaks a credential: {line}"
                );
            }
        }
        lines
    }

    fn access_lines(&self) -> Vec<String> {
        self.checked_log()
            .into_iter()
            .filter(|l| l.starts_with("access "))
            .collect()
    }

    async fn stop(self) {
        let _ = self.checked_log();
        tokio::time::timeout(Duration::from_secs(10), self.proxy.shutdown())
            .await
            .unwrap()
            .unwrap();
    }
}

/// Sends `kib` KiB of whitespace with chunked encoding (no Content-Length); returns the status.
async fn chunked_upload_status(addr: std::net::SocketAddr, kib: usize) -> u16 {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    let head = "POST /api/auth/exchange HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n";
    s.write_all(head.as_bytes()).await.unwrap();
    let chunk = format!("400\r\n{}\r\n", " ".repeat(1024));
    for _ in 0..kib {
        // The proxy may answer and close early; later writes may then fail.
        if s.write_all(chunk.as_bytes()).await.is_err() {
            break;
        }
    }
    let _ = s.write_all(b"0\r\n\r\n").await;
    let mut reply = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut reply)).await;
    let text = String::from_utf8_lossy(&reply);
    text.split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0)
}

fn form(body: &str) -> Vec<(String, String)> {
    form_urlencoded::parse(body.as_bytes())
        .into_owned()
        .collect()
}

#[tokio::test]
async fn exchange_success_basic_auth_proxy_3_4_secret_3() {
    let up = upstream(Behavior::Reply(200, TOKEN_JSON, vec![])).await;
    let h = start(&up).await;
    let a = h.post("/api/auth/exchange", &exchange_body()).await;
    assert_eq!(a.status, 200, "{}", a.body);
    assert_eq!(a.body, TOKEN_JSON, "PROXY-4: the upstream JSON unchanged");
    assert_eq!(a.header("cache-control"), Some("no-store"));
    assert_eq!(a.header("pragma"), Some("no-cache"));

    let seen = up.seen();
    assert_eq!(seen.len(), 1);
    assert_eq!(
        (seen[0].method.as_str(), seen[0].path.as_str()),
        ("POST", "/token")
    );
    let expected = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(ENCODED_PAIR)
    );
    assert_eq!(seen[0].authorization.as_deref(), Some(expected.as_str()));
    assert_eq!(
        form(&seen[0].body),
        vec![
            ("grant_type".into(), "authorization_code".into()),
            ("code".into(), CODE.into()),
            ("redirect_uri".into(), REDIRECT.into()),
            ("code_verifier".into(), VERIFIER.into()),
        ],
        "PROXY-3: exactly these four parameters"
    );
    assert!(!seen[0].body.contains("secret") && !seen[0].body.contains("Sup3r"));

    let access = h.access_lines();
    assert_eq!(access.len(), 1, "{access:?}");
    assert!(
        access[0].contains("method=POST path=/api/auth/exchange status=200"),
        "{}",
        access[0]
    );
    assert!(access[0].contains("client=dashboard") && access[0].contains("latency_ms="));
    h.stop().await;
}

#[tokio::test]
async fn invalid_grant_passed_through_with_status_proxy_5() {
    let body = r#"{"error":"invalid_grant","error_description":"code already used","error_uri":"https://as.example/e","trace":"internal-xyz"}"#;
    let up = upstream(Behavior::Reply(400, body, vec![])).await;
    let h = start(&up).await;
    let a = h.post("/api/auth/exchange", &exchange_body()).await;
    assert_eq!(a.status, 400);
    assert_eq!(
        a.json(),
        serde_json::json!({"error":"invalid_grant","error_description":"code already used","error_uri":"https://as.example/e"})
    );
    assert_eq!(a.header("cache-control"), Some("no-store"));
    assert!(
        h.access_lines()[0].contains("status=400")
            && h.access_lines()[0].contains("upstream_error=invalid_grant")
    );
    h.stop().await;
}

#[tokio::test]
async fn invalid_client_alerts_and_drops_www_authenticate_proxy_5() {
    let up = upstream(Behavior::Reply(
        401,
        r#"{"error":"invalid_client"}"#,
        vec![("www-authenticate", "Basic realm=\"as\"")],
    ))
    .await;
    let h = start(&up).await;
    let a = h.post("/api/auth/exchange", &exchange_body()).await;
    assert_eq!(a.status, 401);
    assert_eq!(a.json(), serde_json::json!({"error":"invalid_client"}));
    assert!(a.header("www-authenticate").is_none());
    let log = h.checked_log();
    assert!(
        log.iter()
            .any(|l| l.starts_with("ALERT client=dashboard") && l.contains("invalid_client")),
        "{log:?}"
    );
    h.stop().await;
}

#[tokio::test]
async fn upstream_500_is_502_and_not_retried_proxy_6() {
    let up = upstream(Behavior::Reply(500, r#"{"error":"server_error"}"#, vec![])).await;
    let h = start(&up).await;
    let a = h.post("/api/auth/exchange", &exchange_body()).await;
    assert_eq!(a.status, 502);
    assert_eq!(a.json()["error"], "server_error");
    assert_eq!(a.header("cache-control"), Some("no-store"));
    assert_eq!(up.seen().len(), 1, "a code is single-use: no retry");
    h.stop().await;
}

#[tokio::test]
async fn upstream_non_json_is_502_proxy_6() {
    let up = upstream(Behavior::Reply(200, "<html>hello</html>", vec![])).await;
    let h = start(&up).await;
    let a = h.post("/api/auth/exchange", &exchange_body()).await;
    assert_eq!(a.status, 502);
    assert_eq!(a.json()["error"], "server_error");
    h.stop().await;
}

#[tokio::test]
async fn upstream_slow_is_504_proxy_6() {
    let up = upstream(Behavior::Slow(Duration::from_secs(6))).await;
    let endpoint = format!("token_endpoint = \"{}/token\"", up.url);
    let h = start_with(&config_text(&endpoint, "upstream_timeout_secs = 1")).await;
    let started = Instant::now();
    let a = h.post("/api/auth/exchange", &exchange_body()).await;
    assert_eq!(a.status, 504, "{}", a.body);
    assert_eq!(a.json()["error"], "temporarily_unavailable");
    assert!(started.elapsed() < Duration::from_secs(4));
    assert_eq!(up.seen().len(), 1, "never retried once sent");
    h.stop().await;
}

#[tokio::test]
async fn upstream_unreachable_is_502_proxy_6() {
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    let h = start_with(&config_text(
        &format!("token_endpoint = \"http://{closed}/token\""),
        "",
    ))
    .await;
    let a = h.post("/api/auth/exchange", &exchange_body()).await;
    assert_eq!(a.status, 502);
    assert_eq!(a.json()["error"], "temporarily_unavailable");
    assert!(h.access_lines()[0].contains("error=temporarily_unavailable"));
    h.stop().await;
}

#[tokio::test]
async fn cors_allowed_origin_preflight_and_actual_proxy_7() {
    let up = upstream(Behavior::Reply(200, TOKEN_JSON, vec![])).await;
    let h = start(&up).await;
    let url = format!("{}/api/auth/exchange", h.proxy.url());
    let pre = h
        .send(
            h.http
                .request(reqwest::Method::OPTIONS, &url)
                .header("origin", ORIGIN)
                .header("access-control-request-method", "POST")
                .header("access-control-request-headers", "content-type"),
        )
        .await;
    assert_eq!(pre.status, 204);
    assert_eq!(pre.header("access-control-allow-origin"), Some(ORIGIN));
    assert_eq!(pre.header("vary"), Some("Origin"));
    assert_eq!(pre.header("access-control-allow-methods"), Some("POST"));
    assert_eq!(
        pre.header("access-control-allow-headers"),
        Some("Content-Type")
    );
    assert!(pre.header("access-control-allow-credentials").is_none());

    let a = h
        .send(
            h.http
                .post(&url)
                .header("origin", ORIGIN)
                .json(&exchange_body()),
        )
        .await;
    assert_eq!(a.status, 200);
    assert_eq!(a.header("access-control-allow-origin"), Some(ORIGIN));
    assert_eq!(a.header("vary"), Some("Origin"));
    assert!(a.header("access-control-allow-credentials").is_none());
    h.stop().await;
}

#[tokio::test]
async fn cors_other_origin_refused_proxy_8() {
    let up = upstream(Behavior::Reply(200, TOKEN_JSON, vec![])).await;
    let h = start(&up).await;
    let url = format!("{}/api/auth/exchange", h.proxy.url());
    for origin in [
        "https://evil.example",
        "http://localhost:3100.evil.example",
        "null",
        "http://localhost:3101",
    ] {
        let pre = h
            .send(
                h.http
                    .request(reqwest::Method::OPTIONS, &url)
                    .header("origin", origin)
                    .header("access-control-request-method", "POST"),
            )
            .await;
        assert_eq!(pre.status, 403, "{origin}");
        let a = h
            .send(
                h.http
                    .post(&url)
                    .header("origin", origin)
                    .json(&exchange_body()),
            )
            .await;
        assert_eq!(a.status, 403, "{origin}");
        for ans in [&pre, &a] {
            assert!(
                ans.header("access-control-allow-origin").is_none(),
                "{origin}"
            );
            assert!(ans.header("access-control-allow-credentials").is_none());
            assert!(ans.headers.values().all(|v| v != "*"));
        }
    }
    // A preflight for another method is refused too, even from the allowed origin.
    let pre = h
        .send(
            h.http
                .request(reqwest::Method::OPTIONS, &url)
                .header("origin", ORIGIN)
                .header("access-control-request-method", "DELETE"),
        )
        .await;
    assert_eq!(pre.status, 403);
    assert!(
        up.seen().is_empty(),
        "a refused origin never reaches the upstream"
    );
    h.stop().await;
}

#[tokio::test]
async fn redirect_uri_not_allowed_never_forwarded_proxy_2() {
    let up = upstream(Behavior::Reply(200, TOKEN_JSON, vec![])).await;
    let h = start(&up).await;
    for uri in [
        "http://localhost:3100/auth/callback/",
        "https://evil.example/cb",
        "http://localhost:3100/auth/callback?x=1",
    ] {
        let mut body = exchange_body();
        body["redirect_uri"] = uri.into();
        let a = h.post("/api/auth/exchange", &body).await;
        assert_eq!(a.status, 400, "{uri}");
        assert_eq!(a.json()["error"], "invalid_request");
        assert!(
            a.json()["error_description"]
                .as_str()
                .unwrap()
                .contains("redirect_uri")
        );
    }
    assert!(up.seen().is_empty());
    h.stop().await;
}

#[tokio::test]
async fn bad_input_is_rejected_before_the_upstream_proxy_2() {
    let up = upstream(Behavior::Reply(200, TOKEN_JSON, vec![])).await;
    let h = start(&up).await;
    let url = format!("{}/api/auth/exchange", h.proxy.url());

    // Oversized: declared and streamed (chunked, no Content-Length).
    let mut big = exchange_body();
    big["padding"] = "x".repeat(17 * 1024).into();
    let a = h.post("/api/auth/exchange", &big).await;
    assert_eq!(a.status, 413);
    assert_eq!(chunked_upload_status(h.proxy.local_addr(), 20).await, 413);

    // Malformed JSON, and JSON that is not an object of strings.
    for body in [r#"{"code": "abc""#, "[1,2]", r#"{"code": 5}"#] {
        let a = h
            .send(
                h.http
                    .post(&url)
                    .header("content-type", "application/json")
                    .body(body),
            )
            .await;
        assert_eq!(a.status, 400, "{body}");
        assert_eq!(a.json()["error"], "invalid_request");
    }

    // Wrong content type.
    let a = h
        .send(
            h.http
                .post(&url)
                .header("content-type", "application/x-www-form-urlencoded")
                .body("code=x"),
        )
        .await;
    assert_eq!(a.status, 415);
    let a = h
        .send(h.http.post(&url).body(exchange_body().to_string()))
        .await;
    assert_eq!(a.status, 415, "no content type");

    // A missing or empty field is named.
    for field in ["code", "code_verifier", "redirect_uri"] {
        let mut body = exchange_body();
        body.as_object_mut().unwrap().remove(field);
        let a = h.post("/api/auth/exchange", &body).await;
        assert_eq!(a.status, 400);
        assert_eq!(a.json()["error"], "invalid_request");
        assert_eq!(
            a.json()["error_description"],
            format!("missing or empty field '{field}'")
        );
        body[field] = "".into();
        let a = h.post("/api/auth/exchange", &body).await;
        assert_eq!(
            a.json()["error_description"],
            format!("missing or empty field '{field}'")
        );
    }

    // RFC 7636 §4.1 verifier syntax.
    for verifier in ["short", &format!("{}!", "a".repeat(50))] {
        let mut body = exchange_body();
        body["code_verifier"] = verifier.into();
        let a = h.post("/api/auth/exchange", &body).await;
        assert_eq!(a.status, 400);
        assert!(
            a.json()["error_description"]
                .as_str()
                .unwrap()
                .contains("code_verifier")
        );
    }
    assert!(up.seen().is_empty(), "nothing invalid is forwarded");
    h.stop().await;
}

#[tokio::test]
async fn only_known_routes_proxy_1() {
    let up = upstream(Behavior::Reply(200, TOKEN_JSON, vec![])).await;
    let h = start(&up).await;
    let base = h.proxy.url();
    let a = h.send(h.http.get(format!("{base}/healthz"))).await;
    assert_eq!((a.status, a.json()["status"].as_str()), (200, Some("ok")));
    let a = h
        .send(h.http.get(format!("{base}/api/auth/exchange")))
        .await;
    assert_eq!(a.status, 405);
    assert_eq!(a.header("allow"), Some("POST, OPTIONS"));
    let a = h.send(h.http.post(format!("{base}/healthz"))).await;
    assert_eq!(a.status, 405);
    let a = h
        .send(h.http.get(format!("{base}/auth/callback?code=leaky-code")))
        .await;
    assert_eq!(a.status, 404);
    let log = h.access_lines();
    assert!(
        log.iter()
            .all(|l| !l.contains("leaky-code") && !l.contains("callback")),
        "{log:?}"
    );
    assert_eq!(log.len(), 4, "one access line per request");
    h.stop().await;
}

#[tokio::test]
async fn refresh_endpoint_forwards_refresh_grant() {
    let up = upstream(Behavior::Reply(200, TOKEN_JSON, vec![])).await;
    let h = start(&up).await;
    let a = h
        .post(
            "/api/auth/refresh",
            &serde_json::json!({"refresh_token": REFRESH, "scope": "openid email"}),
        )
        .await;
    assert_eq!(a.status, 200);
    assert_eq!(a.body, TOKEN_JSON);
    assert_eq!(a.header("cache-control"), Some("no-store"));
    let seen = up.seen();
    assert_eq!(
        form(&seen[0].body),
        vec![
            ("grant_type".into(), "refresh_token".into()),
            ("refresh_token".into(), REFRESH.into()),
            ("scope".into(), "openid email".into()),
        ]
    );
    assert!(
        seen[0]
            .authorization
            .as_deref()
            .unwrap()
            .starts_with("Basic ")
    );
    let a = h
        .post("/api/auth/refresh", &serde_json::json!({"scope": "openid"}))
        .await;
    assert_eq!(a.status, 400);
    assert_eq!(
        a.json()["error_description"],
        "missing or empty field 'refresh_token'"
    );
    assert_eq!(up.seen().len(), 1);
    h.stop().await;
}

#[tokio::test]
async fn several_clients_require_client_field() {
    let up = upstream(Behavior::Reply(200, TOKEN_JSON, vec![])).await;
    let config = format!(
        "{}\n[clients.cli]\ntoken_endpoint = \"{}/other-token\"\nclient_id = \"cli-app\"\nclient_secret_env = \"OTHER_SECRET\"\nredirect_uris = [\"http://127.0.0.1:8400/cb\"]\n",
        config_text(&format!("token_endpoint = \"{}/token\"", up.url), ""),
        up.url
    );
    let h = start_with(&config).await;
    let a = h.post("/api/auth/exchange", &exchange_body()).await;
    assert_eq!(a.status, 400);
    assert_eq!(
        a.json()["error_description"],
        "missing or empty field 'client'"
    );
    let mut body = exchange_body();
    body["client"] = "nope".into();
    assert_eq!(h.post("/api/auth/exchange", &body).await.status, 400);

    body["client"] = "cli".into();
    let a = h.post("/api/auth/exchange", &body).await;
    assert_eq!(
        a.status, 400,
        "dashboard's redirect_uri is not on cli's allowlist"
    );
    body["redirect_uri"] = "http://127.0.0.1:8400/cb".into();
    let a = h.post("/api/auth/exchange", &body).await;
    assert_eq!(a.status, 200);
    let seen = up.seen();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].path, "/other-token");
    let expected = base64::engine::general_purpose::STANDARD.encode("cli-app:other-secret-value");
    assert_eq!(
        seen[0].authorization.as_deref(),
        Some(format!("Basic {expected}").as_str())
    );
    // The dashboard's origin is not one of cli's: refused even though another client allows it.
    let url = format!("{}/api/auth/exchange", h.proxy.url());
    let a = h
        .send(h.http.post(&url).header("origin", ORIGIN).json(&body))
        .await;
    assert_eq!(a.status, 403);
    assert!(
        h.access_lines()
            .iter()
            .any(|l| l.contains("client=cli status") || l.contains("client=cli"))
    );
    h.stop().await;
}

#[tokio::test]
async fn rate_limit_per_ip_429_with_retry_after_proxy_10() {
    let up = upstream(Behavior::Reply(200, TOKEN_JSON, vec![])).await;
    let endpoint = format!("token_endpoint = \"{}/token\"", up.url);
    let h = start_with(&config_text(&endpoint, "rate_limit_per_minute = 2")).await;
    assert_eq!(
        h.post("/api/auth/exchange", &exchange_body()).await.status,
        200
    );
    assert_eq!(
        h.post("/api/auth/exchange", &exchange_body()).await.status,
        200
    );
    let a = h.post("/api/auth/exchange", &exchange_body()).await;
    assert_eq!(a.status, 429);
    let retry: u64 = a.header("retry-after").unwrap().parse().unwrap();
    assert!((1..=60).contains(&retry));
    assert_eq!(up.seen().len(), 2);
    let a = h
        .send(h.http.get(format!("{}/healthz", h.proxy.url())))
        .await;
    assert_eq!(a.status, 200, "health checks are not limited");
    h.stop().await;
}

#[tokio::test]
async fn issuer_discovery_finds_token_endpoint() {
    let up = upstream(Behavior::Reply(200, TOKEN_JSON, vec![])).await;
    let h = start_with(&config_text(&format!("issuer = \"{}\"", up.url), "")).await;
    assert_eq!(
        h.post("/api/auth/exchange", &exchange_body()).await.status,
        200
    );
    assert_eq!(up.seen()[0].path, "/discovered-token");
    h.stop().await;

    // An issuer that does not match the document is refused at startup.
    let text = config_text(&format!("issuer = \"{}/\"", up.url), "");
    let config = ProxyConfig::from_str(&text, "t.toml").unwrap();
    let e = Proxy::build(&config, &env, Arc::new(CaptureSink::default()))
        .await
        .unwrap_err();
    assert!(e.to_string().contains("instead of"), "{e}");
}

#[tokio::test]
async fn graceful_shutdown_finishes_in_flight_requests() {
    let up = upstream(Behavior::Slow(Duration::from_millis(800))).await;
    let h = start(&up).await;
    let url = format!("{}/api/auth/exchange", h.proxy.url());
    let request = tokio::spawn(h.http.post(url).json(&exchange_body()).send());
    // Wait until the upstream holds the request, then stop the proxy.
    let deadline = Instant::now() + Duration::from_secs(5);
    while up.seen().is_empty() {
        assert!(
            Instant::now() < deadline,
            "request never reached the upstream"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let addr = h.proxy.local_addr();
    h.stop().await;
    let resp = request.await.unwrap().unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.text().await.unwrap(), TOKEN_JSON);
    assert!(
        tokio::net::TcpStream::connect(addr).await.is_err(),
        "no longer listening"
    );
}

/// PROXY-20: a connection open when shutdown begins may still bring its request (a balancer
/// reusing a keep-alive connection, or one the kernel accepted just before): it is answered,
/// with `Connection: close`, instead of being closed under the request.
#[tokio::test]
async fn shutdown_still_answers_a_request_on_an_open_connection_proxy_20() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let up = upstream(Behavior::Slow(Duration::ZERO)).await;
    let h = start(&up).await;
    let addr = h.proxy.local_addr();
    let mut open = tokio::net::TcpStream::connect(addr).await.unwrap();
    // The proxy has accepted the connection once it answers on another one.
    let healthz = format!("{}/healthz", h.proxy.url());
    assert_eq!(h.http.get(&healthz).send().await.unwrap().status(), 200);
    let stopping = tokio::spawn(h.stop());
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        tokio::net::TcpStream::connect(addr).await.is_err(),
        "the listener closes at once"
    );
    open.write_all(b"GET /healthz HTTP/1.1\r\nHost: proxy\r\n\r\n")
        .await
        .unwrap();
    let mut answer = Vec::new();
    tokio::time::timeout(Duration::from_secs(5), open.read_to_end(&mut answer))
        .await
        .expect("the proxy closes the connection after answering")
        .unwrap();
    let answer = String::from_utf8_lossy(&answer).to_ascii_lowercase();
    assert!(answer.starts_with("http/1.1 200"), "{answer}");
    assert!(answer.contains("connection: close"), "{answer}");
    tokio::time::timeout(Duration::from_secs(10), stopping)
        .await
        .unwrap()
        .unwrap();
    drop(up);
}

#[tokio::test]
async fn config_errors_refuse_to_start_proxy_9() {
    let text = config_text("token_endpoint = \"https://as.example/token\"", "");
    let config = ProxyConfig::from_str(&text, "t.toml").unwrap();
    let e = Proxy::build(&config, &|_| None, Arc::new(CaptureSink::default()))
        .await
        .unwrap_err();
    assert!(e.to_string().contains("DASH_SECRET is not set"), "{e}");

    let inline = text.replace(
        "client_secret_env = \"DASH_SECRET\"",
        "client_secret = \"inline-s3cret\"",
    );
    let e = ProxyConfig::from_str(&inline, "t.toml")
        .unwrap_err()
        .to_string();
    assert!(
        e.starts_with("t.toml:5:17:") && e.contains("allow_inline_secret"),
        "{e}"
    );
    assert!(!e.contains("inline-s3cret"));
}

/// Waits for a line on the child's stderr containing `needle`, bounded by `timeout`.
fn wait_for_line(
    rx: &std::sync::mpsc::Receiver<String>,
    needle: &str,
    timeout: Duration,
) -> String {
    let deadline = Instant::now() + timeout;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(line) if line.contains(needle) => return line,
            Ok(_) => {}
            Err(_) => panic!("no line containing {needle:?} within {timeout:?}"),
        }
    }
}

#[test]
fn binary_serves_healthz_and_exits_cleanly_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("proxy.toml");
    std::fs::write(
        &path,
        config_text("token_endpoint = \"https://as.example/token\"", ""),
    )
    .unwrap();
    let mut child = std::process::Command::new(support::bin())
        .args(["proxy", "--config"])
        .arg(&path)
        .args(["--listen", "127.0.0.1:0"])
        .env("DASH_SECRET", SECRET)
        .env_remove("AUTHDECK_LOG")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let reader = std::thread::spawn(move || {
        let mut all = Vec::new();
        for line in BufReader::new(stderr).lines() {
            let line = line.unwrap();
            all.push(line.clone());
            let _ = tx.send(line);
        }
        all
    });
    let line = wait_for_line(&rx, "listening on http://", Duration::from_secs(10));
    let addr = line
        .split("listening on http://")
        .nth(1)
        .unwrap()
        .trim()
        .to_owned();

    let mut stream = std::net::TcpStream::connect(&addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    use std::io::{Read, Write};
    stream
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut reply = String::new();
    stream.read_to_string(&mut reply).unwrap();
    assert!(reply.starts_with("HTTP/1.1 200"), "{reply}");
    assert!(reply.contains(r#"{"status":"ok"}"#));

    let status = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let deadline = Instant::now() + Duration::from_secs(10);
    let exit = loop {
        if let Some(exit) = child.try_wait().unwrap() {
            break exit;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("the proxy did not exit within 10 s of SIGTERM");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(exit.success(), "{exit:?}");
    let lines = reader.join().unwrap();
    assert!(
        lines.iter().any(|l| l.contains("path=/healthz status=200")),
        "{lines:?}"
    );
    for line in &lines {
        assert_no_secret("the binary's stderr", line);
    }
}

#[test]
fn binary_refuses_to_start_without_secret_proxy_9() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("proxy.toml");
    std::fs::write(
        &path,
        config_text("token_endpoint = \"https://as.example/token\"", ""),
    )
    .unwrap();
    let out = std::process::Command::new(support::bin())
        .args(["proxy", "--config"])
        .arg(&path)
        .args(["--listen", "127.0.0.1:0"])
        .env_remove("DASH_SECRET")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("client 'dashboard': environment variable DASH_SECRET is not set"),
        "{stderr}"
    );
}

// ---------------------------------------------------------------------------------------------
// POST /api/auth/revoke (RFC 7009 through the proxy; REV-1..3 on the client side).
// ---------------------------------------------------------------------------------------------

fn revoke_body(token: &str, hint: &str) -> serde_json::Value {
    serde_json::json!({"token": token, "token_type_hint": hint})
}

#[tokio::test]
async fn revoke_uses_the_discovered_revocation_endpoint_with_basic_rev1_rev2_proxy_3() {
    // REV-2: the upstream's 200 body is ignored; the proxy answers `{}`.
    let up = upstream(Behavior::Reply(200, "ignored", vec![])).await;
    let h = start_with(&config_text(&format!("issuer = \"{}\"", up.url), "")).await;
    let a = h
        .post("/api/auth/revoke", &revoke_body(REFRESH, "refresh_token"))
        .await;
    assert_eq!(a.status, 200, "{}", a.body);
    assert_eq!(a.body, "{}");
    assert_eq!(a.header("cache-control"), Some("no-store"));
    let seen = up.seen();
    assert_eq!(seen.len(), 1);
    assert_eq!(
        (seen[0].method.as_str(), seen[0].path.as_str()),
        ("POST", "/discovered-revoke")
    );
    let expected = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(ENCODED_PAIR)
    );
    assert_eq!(seen[0].authorization.as_deref(), Some(expected.as_str()));
    assert_eq!(
        form(&seen[0].body),
        vec![
            ("token".into(), REFRESH.into()),
            ("token_type_hint".into(), "refresh_token".into()),
        ],
        "RFC 7009 §2.1: token and hint, no secret in the body"
    );
    let access = h.access_lines();
    assert_eq!(access.len(), 1, "{access:?}");
    assert!(
        access[0].contains("method=POST path=/api/auth/revoke status=200")
            && access[0].contains("client=dashboard"),
        "{}",
        access[0]
    );
    h.stop().await;
}

#[tokio::test]
async fn revoke_configured_endpoint_wins_and_errors_pass_through_rev3_proxy_5() {
    let body = r#"{"error":"unsupported_token_type","error_description":"access tokens are JWTs","internal":"x"}"#;
    let up = upstream(Behavior::Reply(400, body, vec![])).await;
    let line = format!(
        "issuer = \"{0}\"\nrevocation_endpoint = \"{0}/configured-revoke\"",
        up.url
    );
    let h = start_with(&config_text(&line, "")).await;
    let a = h
        .post("/api/auth/revoke", &revoke_body(ACCESS, "access_token"))
        .await;
    assert_eq!(a.status, 400, "{}", a.body);
    assert_eq!(
        a.json(),
        serde_json::json!({"error":"unsupported_token_type","error_description":"access tokens are JWTs"})
    );
    assert_eq!(up.seen()[0].path, "/configured-revoke");
    let access = h.access_lines();
    assert!(
        access[0].contains("status=400")
            && access[0].contains("upstream_error=unsupported_token_type"),
        "{access:?}"
    );
    h.stop().await;
}

#[tokio::test]
async fn revoke_without_revocation_endpoint_is_501_and_never_forwarded() {
    let up = upstream(Behavior::Reply(200, "", vec![])).await;
    let h = start(&up).await; // token_endpoint only: no revocation endpoint
    let a = h
        .post("/api/auth/revoke", &revoke_body(REFRESH, "refresh_token"))
        .await;
    assert_eq!(a.status, 501, "{}", a.body);
    assert_eq!(a.json()["error"], "unsupported_operation");
    assert!(up.seen().is_empty());
    h.stop().await;
}

#[tokio::test]
async fn revoke_upstream_slow_is_504_and_unreachable_502_proxy_6() {
    let up = upstream(Behavior::Slow(Duration::from_secs(4))).await;
    let line = format!(
        "token_endpoint = \"{0}/token\"\nrevocation_endpoint = \"{0}/revoke\"",
        up.url
    );
    let h = start_with(&config_text(&line, "upstream_timeout_secs = 1")).await;
    let started = Instant::now();
    let a = h
        .post("/api/auth/revoke", &revoke_body(REFRESH, "refresh_token"))
        .await;
    assert_eq!(a.status, 504, "{}", a.body);
    assert_eq!(a.json()["error"], "temporarily_unavailable");
    assert!(started.elapsed() < Duration::from_secs(3));
    h.stop().await;

    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let line = format!(
        "token_endpoint = \"http://127.0.0.1:{port}/token\"\nrevocation_endpoint = \"http://127.0.0.1:{port}/revoke\""
    );
    let h = start_with(&config_text(&line, "")).await;
    let b = h
        .post("/api/auth/revoke", &revoke_body(REFRESH, "refresh_token"))
        .await;
    assert_eq!(b.status, 502, "{}", b.body);
    assert_eq!(b.json()["error"], "temporarily_unavailable");
    h.stop().await;
}

#[tokio::test]
async fn revoke_with_several_clients_needs_the_client_field() {
    let up = upstream(Behavior::Reply(200, "", vec![])).await;
    let line = format!(
        "token_endpoint = \"{0}/token\"\nrevocation_endpoint = \"{0}/revoke\"",
        up.url
    );
    let other = format!(
        "[clients.other]\ntoken_endpoint = \"{0}/token\"\nrevocation_endpoint = \"{0}/other-revoke\"\nclient_id = \"other\"\nclient_secret_env = \"OTHER_SECRET\"\nredirect_uris = [\"{REDIRECT}\"]\n",
        up.url
    );
    let h = start_with(&format!("{}{other}", config_text(&line, ""))).await;
    let a = h
        .post("/api/auth/revoke", &revoke_body(REFRESH, "refresh_token"))
        .await;
    assert_eq!(a.status, 400, "{}", a.body);
    assert!(
        a.json()["error_description"]
            .as_str()
            .unwrap()
            .contains("'client'")
    );
    let mut body = revoke_body(REFRESH, "refresh_token");
    body["client"] = "other".into();
    let b = h.post("/api/auth/revoke", &body).await;
    assert_eq!(b.status, 200, "{}", b.body);
    let seen = up.seen();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].path, "/other-revoke");
    let expected = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode("other:other-secret-value")
    );
    assert_eq!(seen[0].authorization.as_deref(), Some(expected.as_str()));
    h.stop().await;
}
