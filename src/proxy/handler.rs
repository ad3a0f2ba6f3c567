//! One request, start to finish: routing (PROXY-1), CORS (`cors`, PROXY-7/8), rate limit (PROXY-10),
//! input checks (PROXY-2), the upstream call, and the access-log line.

use super::cors::{self, Origin, with_origin};
use super::device;
use super::log::log_word;
use super::upstream::{self, Reply, error_body};
use super::{ResolvedClient, Shared};
use crate::oauth::wire::{self, basic_auth};
use crate::secret::{AnyToken, AuthCode, DeviceCode, PkceVerifier, RefreshToken};
use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderValue};
use http::{Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, Limited};
use serde::Deserialize;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tracing::Level;
use url::Url;

mod routes;
use routes::*;

/// The response body type.
pub(crate) type Body = Full<Bytes>;

/// The largest request body accepted (PROXY-2).
pub const MAX_BODY: usize = 16 * 1024;
/// How long a client may take to send its body: a slow sender must not pin a connection.
const BODY_READ_TIMEOUT: Duration = Duration::from_secs(10);

/// The routes the proxy knows (PROXY-1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Route {
    Exchange,
    Refresh,
    Revoke,
    Device,
    Healthz,
    Other,
}

impl Route {
    fn of(path: &str) -> Self {
        match path {
            "/api/auth/exchange" => Self::Exchange,
            "/api/auth/refresh" => Self::Refresh,
            "/api/auth/revoke" => Self::Revoke,
            "/api/auth/device" => Self::Device,
            "/healthz" => Self::Healthz,
            _ => Self::Other,
        }
    }

    /// The path as logged: unknown paths are not echoed, as they may carry anything (LOG-1).
    fn log_path(self) -> &'static str {
        match self {
            Self::Exchange => "/api/auth/exchange",
            Self::Refresh => "/api/auth/refresh",
            Self::Revoke => "/api/auth/revoke",
            Self::Device => "/api/auth/device",
            Self::Healthz => "/healthz",
            Self::Other => "(other)",
        }
    }
}

/// What the access log line reports beyond method, path, status and latency.
#[derive(Debug, Default)]
struct Note {
    client: Option<String>,
    error: Option<String>,
    from_upstream: bool,
}

/// A refusal before any upstream call.
#[derive(Debug)]
struct Reject {
    status: StatusCode,
    code: &'static str,
    description: String,
}

impl Reject {
    fn bad_request(description: impl Into<String>) -> Self {
        Self {
            status: StatusCode::BAD_REQUEST,
            code: "invalid_request",
            description: description.into(),
        }
    }

    fn missing(field: &str) -> Self {
        Self::bad_request(format!("missing or empty field '{field}'"))
    }

    fn forbidden_origin() -> Self {
        Self {
            status: StatusCode::FORBIDDEN,
            code: "invalid_request",
            description: "origin not allowed".into(),
        }
    }
}

/// Handles one request and writes its access-log line.
pub(crate) async fn handle<B>(shared: Arc<Shared>, peer: IpAddr, req: Request<B>) -> Response<Body>
where
    B: hyper::body::Body<Data = Bytes>,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let started = Instant::now();
    let method = req.method().clone();
    let route = Route::of(req.uri().path());
    let mut note = Note::default();
    let response = dispatch(&shared, peer, route, req, &mut note).await;
    access_log(
        &shared,
        &method,
        route,
        response.status(),
        started,
        peer,
        &note,
    );
    shared
        .metrics
        .request(route.log_path(), note.client.take(), response.status());
    response
}

/// `peer` is the resolved client address (PROXY-12), which the rate limit counts too.
fn access_log(
    shared: &Shared,
    method: &Method,
    route: Route,
    status: StatusCode,
    started: Instant,
    peer: IpAddr,
    note: &Note,
) {
    let latency_ms = started.elapsed().as_secs_f64() * 1000.0;
    let client = note.client.as_deref().unwrap_or("-");
    let error = match (&note.error, note.from_upstream) {
        (Some(code), true) => format!(" upstream_error={}", log_word(code)),
        (Some(code), false) => format!(" error={}", log_word(code)),
        (None, _) => String::new(),
    };
    shared.log.write(
        Level::INFO,
        &format!(
            "access method={} path={} status={} latency_ms={latency_ms:.2} client={} ip={peer}{error}",
            log_word(method.as_str()),
            route.log_path(),
            status.as_u16(),
            log_word(client),
        ),
    );
}

async fn dispatch<B>(
    shared: &Shared,
    peer: IpAddr,
    route: Route,
    req: Request<B>,
    note: &mut Note,
) -> Response<Body>
where
    B: hyper::body::Body<Data = Bytes>,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let method = req.method();
    match route {
        Route::Other => plain_error(StatusCode::NOT_FOUND, "not_found", "no such route", note),
        Route::Healthz if method == Method::GET || method == Method::HEAD => {
            json_response(StatusCode::OK, Bytes::from_static(br#"{"status":"ok"}"#))
        }
        Route::Healthz => {
            let mut r = plain_error(
                StatusCode::METHOD_NOT_ALLOWED,
                "invalid_request",
                "use GET",
                note,
            );
            r.headers_mut()
                .insert(header::ALLOW, HeaderValue::from_static("GET, HEAD"));
            r
        }
        Route::Exchange | Route::Refresh | Route::Revoke | Route::Device
            if method == Method::OPTIONS =>
        {
            preflight(shared, req.headers(), note)
        }
        Route::Exchange | Route::Refresh | Route::Revoke | Route::Device
            if method == Method::POST =>
        {
            token_route(shared, peer, route, req, note).await
        }
        Route::Exchange | Route::Refresh | Route::Revoke | Route::Device => {
            let mut r = plain_error(
                StatusCode::METHOD_NOT_ALLOWED,
                "invalid_request",
                "use POST",
                note,
            );
            r.headers_mut()
                .insert(header::ALLOW, HeaderValue::from_static("POST, OPTIONS"));
            r
        }
    }
}

/// Answers a CORS preflight: only for an exactly configured origin asking for POST (PROXY-7/8).
fn preflight(shared: &Shared, headers: &HeaderMap, note: &mut Note) -> Response<Body> {
    match cors::preflight_origin(headers, &shared.all_origins) {
        Some(origin) => cors::preflight_response(origin),
        None => {
            let mut r = plain_error(
                StatusCode::FORBIDDEN,
                "invalid_request",
                "origin not allowed",
                note,
            );
            cors::vary_origin(r.headers_mut());
            r
        }
    }
}

async fn token_route<B>(
    shared: &Shared,
    peer: IpAddr,
    route: Route,
    req: Request<B>,
    note: &mut Note,
) -> Response<Body>
where
    B: hyper::body::Body<Data = Bytes>,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let (parts, body) = req.into_parts();
    let origin = Origin::of(&parts.headers, &shared.all_origins);
    match token_route_inner(shared, peer, route, &parts.headers, body, origin, note).await {
        Ok((reply, origin)) => {
            note.error = reply.error.clone();
            note.from_upstream = reply.from_upstream;
            with_origin(json_response(reply.status, reply.body), origin)
        }
        Err((reject, retry_after)) => {
            let allowed = if matches!(reject.status, StatusCode::FORBIDDEN) {
                Origin::Refused
            } else {
                origin
            };
            let mut r = with_origin(
                plain_error(reject.status, reject.code, &reject.description, note),
                allowed,
            );
            if let Some(secs) = retry_after
                && let Ok(v) = HeaderValue::from_str(&secs.to_string())
            {
                r.headers_mut().insert(header::RETRY_AFTER, v);
            }
            r
        }
    }
}

type Rejected = (Reject, Option<u64>);

async fn token_route_inner<'a, B>(
    shared: &'a Shared,
    peer: IpAddr,
    route: Route,
    headers: &HeaderMap,
    body: B,
    origin: Origin<'a>,
    note: &mut Note,
) -> Result<(Reply, Origin<'a>), Rejected>
where
    B: hyper::body::Body<Data = Bytes>,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    if matches!(origin, Origin::Refused) {
        return Err((Reject::forbidden_origin(), None));
    }
    if let Some(limiter) = &shared.limiter
        && let Err(wait) = limiter.check(peer, Instant::now())
    {
        let reject = Reject {
            status: StatusCode::TOO_MANY_REQUESTS,
            code: "temporarily_unavailable",
            description: "too many requests; retry later".into(),
        };
        return Err((reject, Some(wait)));
    }
    let body = read_json_body(headers, body).await.map_err(|r| (r, None))?;
    let result = match route {
        Route::Refresh => refresh(shared, &body, origin, note).await,
        Route::Revoke => revoke(shared, &body, origin, note).await,
        Route::Device => device_authorization(shared, &body, origin, note).await,
        _ => exchange(shared, &body, origin, note).await,
    };
    result.map_err(|r| (r, None))
}

/// Checks the content type and size and reads the body (PROXY-2).
async fn read_json_body<B>(headers: &HeaderMap, body: B) -> Result<Bytes, Reject>
where
    B: hyper::body::Body<Data = Bytes>,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let is_json = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|m| m.trim().eq_ignore_ascii_case("application/json"));
    if !is_json {
        return Err(Reject {
            status: StatusCode::UNSUPPORTED_MEDIA_TYPE,
            code: "invalid_request",
            description: "Content-Type must be application/json".into(),
        });
    }
    let too_large = || Reject {
        status: StatusCode::PAYLOAD_TOO_LARGE,
        code: "invalid_request",
        description: format!("the body must be at most {MAX_BODY} bytes"),
    };
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > MAX_BODY as u64) {
        return Err(too_large());
    }
    let collected =
        tokio::time::timeout(BODY_READ_TIMEOUT, Limited::new(body, MAX_BODY).collect()).await;
    match collected {
        Ok(Ok(c)) => Ok(c.to_bytes()),
        Ok(Err(e)) if e.is::<http_body_util::LengthLimitError>() => Err(too_large()),
        Ok(Err(_)) => Err(Reject::bad_request("the request body could not be read")),
        Err(_) => Err(Reject {
            status: StatusCode::REQUEST_TIMEOUT,
            code: "invalid_request",
            description: "the request body arrived too slowly".into(),
        }),
    }
}

/// Sends `form` to `endpoint` with the client's credentials as HTTP Basic (PROXY-3) and maps
/// the answer with `map`; alerts on `invalid_client` (PROXY-5).
async fn call_upstream(
    shared: &Shared,
    client: &ResolvedClient,
    endpoint: &Url,
    form: String,
    map: upstream::MapFn,
) -> Reply {
    let Some(auth) = basic_auth(&client.client_id, &client.secret) else {
        return upstream::proxy_error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "server_error",
            "the proxy's client credentials cannot be encoded",
        );
    };
    let sent = Instant::now();
    let reply = upstream::post_form(&shared.http, endpoint, auth, form, map).await;
    shared.metrics.upstream(sent.elapsed(), &reply);
    if reply.from_upstream && reply.error.as_deref() == Some("invalid_client") {
        // PROXY-5: the proxy's own credentials were refused; an operator must act.
        shared.log.write(
            Level::ERROR,
            &format!(
                "ALERT client={} the authorization server answered invalid_client: check client_id and the client secret",
                client.name
            ),
        );
    }
    reply
}

fn json_response(status: StatusCode, body: Bytes) -> Response<Body> {
    let mut r = Response::new(Full::new(body));
    *r.status_mut() = status;
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    // PROXY-4: on every response, so no cache ever holds a token or an error about one.
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
    r
}

fn plain_error(
    status: StatusCode,
    code: &str,
    description: &str,
    note: &mut Note,
) -> Response<Body> {
    note.error = Some(code.to_owned());
    note.from_upstream = false;
    json_response(status, error_body(code, description))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_never_echoes_values() {
        let r = parse::<ExchangeBody>(br#"{"code": 12345}"#).unwrap_err();
        assert!(!r.description.contains("12345"));
        let r = parse::<ExchangeBody>(br#"{"code": "abc"#).unwrap_err();
        assert_eq!(r.description, "malformed JSON body");
        let r = parse::<ExchangeBody>(br#"["c","v","r"]"#).unwrap_err();
        assert!(r.description.contains("object"), "{}", r.description);
    }

    #[test]
    fn unknown_paths_are_not_logged_verbatim() {
        assert_eq!(Route::of("/cb/secret-code").log_path(), "(other)");
        assert_eq!(
            Route::of("/api/auth/exchange").log_path(),
            "/api/auth/exchange"
        );
        assert_eq!(Route::of("/api/auth/revoke").log_path(), "/api/auth/revoke");
    }

    // --- POST /api/auth/revoke, driven through `handle` against a scripted upstream. ---

    use crate::oauth::testutil::{Reply as Up, Stub, closed_port, form_of};
    use crate::proxy::log::{CaptureSink, LogSink};
    use crate::proxy::ratelimit::RateLimiter;
    use crate::secret::ClientSecret;
    use base64::Engine;
    use std::collections::BTreeMap;

    const ID: &str = "dash:1";
    const SECRET: &str = "pr0xy/Secret:value";
    const TOKEN: &str = "RT-revoke-me-4711";
    const ORIGIN: &str = "https://app.example";

    struct Rig {
        shared: Arc<Shared>,
        log: Arc<CaptureSink>,
    }

    fn rig_with(revocation: Option<Url>, timeout: Duration, per_minute: u32) -> Rig {
        let log = Arc::new(CaptureSink::default());
        let client = ResolvedClient {
            name: "dash".into(),
            token_endpoint: Url::parse("http://127.0.0.1:9/token").unwrap(),
            revocation_endpoint: revocation,
            device_authorization_endpoint: None,
            client_id: ID.into(),
            secret: ClientSecret::new(SECRET),
            redirect_uris: vec!["http://127.0.0.1:8765/callback".into()],
            allowed_origins: vec![ORIGIN.into()],
        };
        let shared = Shared {
            clients: BTreeMap::from([("dash".to_owned(), Arc::new(client))]),
            all_origins: vec![ORIGIN.into()],
            http: upstream::build_client(timeout).unwrap(),
            limiter: RateLimiter::new(per_minute).map(Arc::new),
            log: Arc::clone(&log) as Arc<dyn LogSink>,
            trusted: crate::proxy::forwarded::TrustedProxies::default(),
            metrics: Arc::default(),
        };
        Rig {
            shared: Arc::new(shared),
            log,
        }
    }

    fn rig(stub: &Stub) -> Rig {
        rig_with(Some(stub.url("/revoke")), Duration::from_secs(5), 0)
    }

    struct Answer {
        status: u16,
        headers: HeaderMap,
        json: serde_json::Value,
    }

    impl Rig {
        async fn send(&self, req: Request<Full<Bytes>>) -> Answer {
            let peer: IpAddr = "127.0.0.1".parse().unwrap();
            let resp = handle(Arc::clone(&self.shared), peer, req).await;
            let status = resp.status().as_u16();
            let headers = resp.headers().clone();
            let body = resp.into_body().collect().await.unwrap().to_bytes();
            let text = String::from_utf8(body.to_vec()).unwrap();
            assert!(!text.contains(SECRET) && !text.contains(TOKEN), "{text}");
            let json = serde_json::from_str(&text).unwrap_or(serde_json::Value::Null);
            Answer {
                status,
                headers,
                json,
            }
        }

        async fn revoke(&self, body: &str) -> Answer {
            self.send(post(body, None)).await
        }

        /// Every log line, checked: no token, no secret, no Basic credentials (LOG-1).
        fn lines(&self) -> Vec<String> {
            let b64 =
                base64::engine::general_purpose::STANDARD.encode("dash%3A1:pr0xy%2FSecret%3Avalue");
            let lines: Vec<String> = self.log.lines().into_iter().map(|(_, l)| l).collect();
            for l in &lines {
                for needle in [SECRET, TOKEN, b64.as_str(), "Basic"] {
                    assert!(!l.contains(needle), "log leaks {needle}: {l}");
                }
            }
            lines
        }
    }

    fn post(body: &str, origin: Option<&str>) -> Request<Full<Bytes>> {
        let mut b = Request::builder()
            .method(Method::POST)
            .uri("/api/auth/revoke")
            .header(header::CONTENT_TYPE, "application/json");
        if let Some(o) = origin {
            b = b.header(header::ORIGIN, o);
        }
        b.body(Full::new(Bytes::from(body.to_owned()))).unwrap()
    }

    fn revoke_json(hint: Option<&str>) -> String {
        let mut v = serde_json::json!({ "token": TOKEN });
        if let Some(h) = hint {
            v["token_type_hint"] = serde_json::Value::from(h);
        }
        v.to_string()
    }

    #[tokio::test]
    async fn revoke_adds_basic_and_forwards_form_rev1_rev2_proxy_3() {
        // REV-2: a 200 means revoked whatever its body; the proxy answers exactly `{}`.
        let stub = Stub::start(vec![Up::text(200, "not json at all")]).await;
        let r = rig(&stub);
        let a = r.revoke(&revoke_json(Some("refresh_token"))).await;
        assert_eq!(a.status, 200);
        assert_eq!(a.json, serde_json::json!({}));
        assert_eq!(a.headers[header::CACHE_CONTROL], "no-store", "PROXY-4");
        let seen = stub.requests();
        assert_eq!(seen.len(), 1);
        assert_eq!(
            (seen[0].method.as_str(), seen[0].path.as_str()),
            ("POST", "/revoke")
        );
        assert_eq!(
            seen[0].header("content-type").as_deref(),
            Some("application/x-www-form-urlencoded")
        );
        let form = form_of(&seen[0].body);
        assert_eq!(form.len(), 2, "only token and hint: {form:?}");
        assert_eq!(form["token"], TOKEN);
        assert_eq!(form["token_type_hint"], "refresh_token");
        let basic = seen[0].header("authorization").unwrap();
        let raw = base64::engine::general_purpose::STANDARD
            .decode(basic.strip_prefix("Basic ").unwrap())
            .unwrap();
        assert_eq!(
            String::from_utf8(raw).unwrap(),
            "dash%3A1:pr0xy%2FSecret%3Avalue"
        );
        assert!(
            !seen[0].body.contains("pr0xy"),
            "the secret only in the header"
        );
        let lines = r.lines();
        assert!(
            lines.iter().any(|l| l
                .starts_with("access method=POST path=/api/auth/revoke status=200")
                && l.ends_with("client=dash ip=127.0.0.1")),
            "{lines:?}"
        );
    }

    #[tokio::test]
    async fn revoke_without_hint_sends_no_hint_rev1() {
        let stub = Stub::start(vec![Up::text(200, "")]).await;
        let a = rig(&stub).revoke(&revoke_json(None)).await;
        assert_eq!(a.status, 200);
        let form = form_of(&stub.requests()[0].body);
        assert_eq!(form.get("token").map(String::as_str), Some(TOKEN));
        assert!(!form.contains_key("token_type_hint"), "{form:?}");
    }

    #[tokio::test]
    async fn revoke_errors_forwarded_with_status_rev3_proxy_5() {
        let stub = Stub::start(vec![
            Up::json(
                400,
                r#"{"error":"unsupported_token_type","error_description":"no","extra":1}"#,
            ),
            Up::json(401, r#"{"error":"invalid_client"}"#)
                .header("WWW-Authenticate", "Basic realm=\"as\""),
        ])
        .await;
        let r = rig(&stub);
        let a = r.revoke(&revoke_json(Some("access_token"))).await;
        assert_eq!(a.status, 400);
        assert_eq!(
            a.json,
            serde_json::json!({"error":"unsupported_token_type","error_description":"no"})
        );
        let b = r.revoke(&revoke_json(Some("refresh_token"))).await;
        assert_eq!(b.status, 401);
        assert_eq!(b.json["error"], "invalid_client");
        assert!(!b.headers.contains_key(header::WWW_AUTHENTICATE));
        let lines = r.lines();
        assert!(
            lines
                .iter()
                .any(|l| l.contains("upstream_error=unsupported_token_type"))
        );
        assert!(
            lines.iter().any(|l| l.starts_with("ALERT client=dash")),
            "PROXY-5: invalid_client alerts: {lines:?}"
        );
    }

    #[tokio::test]
    async fn revoke_upstream_failures_are_502_and_504_proxy_6() {
        let stub = Stub::start(vec![
            Up::text(503, "busy"),
            Up::text(200, "").delay(Duration::from_secs(3)),
        ])
        .await;
        let r = rig_with(Some(stub.url("/revoke")), Duration::from_millis(500), 0);
        let a = r.revoke(&revoke_json(None)).await;
        assert_eq!(a.status, 502);
        assert_eq!(a.json["error"], "server_error");
        let started = Instant::now();
        let b = r.revoke(&revoke_json(None)).await;
        assert_eq!(b.status, 504);
        assert_eq!(b.json["error"], "temporarily_unavailable");
        assert!(started.elapsed() < Duration::from_secs(2));

        let port = closed_port().await;
        let gone = Url::parse(&format!("http://127.0.0.1:{port}/revoke")).unwrap();
        let r = rig_with(Some(gone), Duration::from_secs(2), 0);
        let c = r.revoke(&revoke_json(None)).await;
        assert_eq!(c.status, 502);
        assert_eq!(c.json["error"], "temporarily_unavailable");
    }

    #[tokio::test]
    async fn revoke_bad_input_is_400_and_never_forwarded_proxy_2() {
        let stub = Stub::start(vec![Up::text(200, "")]).await;
        let r = rig(&stub);
        let long = "a".repeat(MAX_TOKEN_LEN + 1);
        for (body, want) in [
            (r#"{}"#.to_owned(), "missing or empty field 'token'"),
            (
                r#"{"token":""}"#.to_owned(),
                "missing or empty field 'token'",
            ),
            (r#"{"token":42}"#.to_owned(), "JSON strings"),
            (format!(r#"{{"token":"{TOKEN}\n"}}"#), "printable ASCII"),
            (format!(r#"{{"token":"{TOKEN}\u00e9"}}"#), "printable ASCII"),
            (format!(r#"{{"token":"{long}"}}"#), "printable ASCII"),
            (
                format!(r#"{{"token":"{TOKEN}","token_type_hint":"id_token"}}"#),
                "token_type_hint",
            ),
            (
                format!(r#"{{"token":"{TOKEN}","client":"other"}}"#),
                "unknown client",
            ),
            (format!(r#"{{"token":"{TOKEN}""#), "malformed JSON"),
        ] {
            let a = r.revoke(&body).await;
            assert_eq!(a.status, 400, "{body}: {}", a.json);
            assert_eq!(a.json["error"], "invalid_request");
            let d = a.json["error_description"].as_str().unwrap();
            assert!(d.contains(want), "{body}: {d}");
        }
        let wrong_type = Request::builder()
            .method(Method::POST)
            .uri("/api/auth/revoke")
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body(Full::new(Bytes::from(format!("token={TOKEN}"))))
            .unwrap();
        assert_eq!(r.send(wrong_type).await.status, 415);
        let huge = format!(r#"{{"token":"{}"}}"#, "a".repeat(MAX_BODY));
        assert_eq!(r.revoke(&huge).await.status, 413);
        assert!(stub.requests().is_empty(), "PROXY-2: nothing forwarded");
        r.lines();
    }

    #[tokio::test]
    async fn revoke_without_endpoint_is_501_unsupported_operation() {
        let r = rig_with(None, Duration::from_secs(1), 0);
        let a = r.revoke(&revoke_json(Some("refresh_token"))).await;
        assert_eq!(a.status, 501);
        assert_eq!(a.json["error"], "unsupported_operation");
        assert!(
            r.lines()
                .iter()
                .any(|l| l.contains("error=unsupported_operation"))
        );
    }

    #[tokio::test]
    async fn revoke_cors_preflight_and_origin_check_proxy_7_8() {
        let stub = Stub::start(vec![Up::text(200, "")]).await;
        let r = rig(&stub);
        let preflight = |origin: &str| {
            Request::builder()
                .method(Method::OPTIONS)
                .uri("/api/auth/revoke")
                .header(header::ORIGIN, origin)
                .header(header::ACCESS_CONTROL_REQUEST_METHOD, "POST")
                .body(Full::new(Bytes::new()))
                .unwrap()
        };
        let ok = r.send(preflight(ORIGIN)).await;
        assert_eq!(ok.status, 204);
        assert_eq!(ok.headers[header::ACCESS_CONTROL_ALLOW_ORIGIN], ORIGIN);
        assert_eq!(ok.headers[header::ACCESS_CONTROL_ALLOW_METHODS], "POST");
        let refused = r.send(preflight("https://evil.example")).await;
        assert_eq!(refused.status, 403);
        assert!(
            !refused
                .headers
                .contains_key(header::ACCESS_CONTROL_ALLOW_ORIGIN)
        );

        let a = r.send(post(&revoke_json(None), Some(ORIGIN))).await;
        assert_eq!(a.status, 200);
        assert_eq!(a.headers[header::ACCESS_CONTROL_ALLOW_ORIGIN], ORIGIN);
        let b = r
            .send(post(&revoke_json(None), Some("https://evil.example")))
            .await;
        assert_eq!(b.status, 403);
        assert!(!b.headers.contains_key(header::ACCESS_CONTROL_ALLOW_ORIGIN));
        assert_eq!(
            stub.requests().len(),
            1,
            "the refused origin was not forwarded"
        );
    }

    #[tokio::test]
    async fn revoke_is_rate_limited_and_post_only_proxy_1_10() {
        let stub = Stub::start(vec![Up::text(200, "")]).await;
        let r = rig_with(Some(stub.url("/revoke")), Duration::from_secs(5), 1);
        assert_eq!(r.revoke(&revoke_json(None)).await.status, 200);
        let limited = r.revoke(&revoke_json(None)).await;
        assert_eq!(limited.status, 429);
        assert!(limited.headers.contains_key(header::RETRY_AFTER));
        let get = Request::builder()
            .method(Method::GET)
            .uri("/api/auth/revoke")
            .body(Full::new(Bytes::new()))
            .unwrap();
        let a = r.send(get).await;
        assert_eq!(a.status, 405);
        assert_eq!(a.headers[header::ALLOW], "POST, OPTIONS");
        assert_eq!(stub.requests().len(), 1);
    }

    #[test]
    fn token_syntax_is_vschar_rfc6749_a_12() {
        assert!(token_syntax_ok("abc.DEF-_~+/= x"));
        assert!(!token_syntax_ok(""));
        assert!(!token_syntax_ok("tab\there"));
        assert!(!token_syntax_ok("caf\u{e9}"));
        assert!(token_syntax_ok(&"a".repeat(MAX_TOKEN_LEN)));
        assert!(!token_syntax_ok(&"a".repeat(MAX_TOKEN_LEN + 1)));
    }
}
