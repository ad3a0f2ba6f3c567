//! The embedded fake authorization server (`devserver`), driven with raw reqwest and
//! hand-built PKCE, then with the real `oauth` engine. Rule IDs in test names are defined in
//! docs/protocol.md.

use std::time::{Duration, Instant};

use authdeck::devserver::{DevClient, DevServer, DevServerConfig, Endpoint, Fault};
use authdeck::oauth::pkce::challenge_s256;
use authdeck::oauth::{AuthMethod, ClientAuth};
use authdeck::oauth::{
    AuthorizationRequest, ClientConfig, ClientSettings, OAuthClient, RetryPolicy,
};
use authdeck::secret::{AuthCode, ClientSecret};
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use reqwest::redirect::Policy;
use serde_json::Value;
use url::Url;

const REDIRECT: &str = "http://127.0.0.1:9/cb";
const VERIFIER: &str = "dBjftJeZ4CVP-mJ0OAQWp-wd8jA6Qsb2a6mGdR0ZVOkq3v9Xw4eFmN0sA7pE1yLz";

fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(Policy::none())
        .no_proxy()
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap()
}

/// Three clients: public, `basic` and `post`.
fn three_clients() -> DevServerConfig {
    DevServerConfig {
        clients: vec![
            DevClient::public("pub"),
            DevClient::confidential("basic client", "s3cr:t+/x", AuthMethod::Basic),
            DevClient::confidential("poster", "post-secret", AuthMethod::Post),
        ],
        device_interval_secs: 1,
        ..DevServerConfig::default()
    }
}

async fn start(config: DevServerConfig) -> DevServer {
    DevServer::start(config).await.unwrap()
}

/// `GET /authorize` with a PKCE challenge for [`VERIFIER`]; returns the redirect Location.
async fn authorize_raw(server: &DevServer, client_id: &str, extra: &[(&str, &str)]) -> Url {
    let mut url = Url::parse(&server.url("/authorize")).unwrap();
    url.query_pairs_mut()
        .append_pair("response_type", "code")
        .append_pair("client_id", client_id)
        .append_pair("redirect_uri", REDIRECT)
        .append_pair("state", "st-1")
        .append_pair("code_challenge", &challenge_s256(VERIFIER))
        .append_pair("code_challenge_method", "S256");
    for (k, v) in extra {
        url.query_pairs_mut().append_pair(k, v);
    }
    let resp = http().get(url).send().await.unwrap();
    assert_eq!(resp.status(), 302);
    let location = resp.headers()["location"].to_str().unwrap();
    Url::parse(location).unwrap()
}

fn param(url: &Url, key: &str) -> Option<String> {
    url.query_pairs()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.into_owned())
}

async fn code_for(server: &DevServer, client_id: &str, scope: &str) -> String {
    let loc = authorize_raw(server, client_id, &[("scope", scope)]).await;
    param(&loc, "code").expect("a code in the redirect")
}

/// POSTs a form to `/token` (or another path) as client `pub`, with extra auth by the caller.
async fn post(
    server: &DevServer,
    path: &str,
    form: &[(&str, &str)],
    basic: Option<(&str, &str)>,
) -> (u16, Value) {
    let mut req = http().post(server.url(path)).form(form);
    if let Some((id, secret)) = basic {
        req = req.header(
            "authorization",
            authdeck::oauth::wire::basic_auth(id, &ClientSecret::new(secret)).unwrap(),
        );
    }
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    let text = resp.text().await.unwrap();
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

async fn exchange(server: &DevServer, code: &str, verifier: &str) -> (u16, Value) {
    post(
        server,
        "/token",
        &[
            ("grant_type", "authorization_code"),
            ("client_id", "pub"),
            ("code", code),
            ("redirect_uri", REDIRECT),
            ("code_verifier", verifier),
        ],
        None,
    )
    .await
}

async fn refresh(server: &DevServer, refresh: &str) -> (u16, Value) {
    post(
        server,
        "/token",
        &[
            ("grant_type", "refresh_token"),
            ("client_id", "pub"),
            ("refresh_token", refresh),
        ],
        None,
    )
    .await
}

async fn userinfo(server: &DevServer, path: &str, token: &str) -> reqwest::Response {
    http()
        .get(server.url(path))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
}

fn s(v: &Value, key: &str) -> String {
    v[key].as_str().unwrap_or_default().to_owned()
}

#[tokio::test]
async fn pkce3_authorize_redirect_carries_code_state_iss_and_verifier_is_checked() {
    let server = start(three_clients()).await;
    let loc = authorize_raw(&server, "pub", &[]).await;
    assert_eq!(loc.as_str().split('?').next(), Some(REDIRECT));
    assert_eq!(param(&loc, "state").as_deref(), Some("st-1"));
    assert_eq!(param(&loc, "iss"), Some(server.issuer()));
    let code = param(&loc, "code").unwrap();

    let wrong = "x".repeat(43);
    let (status, body) = exchange(&server, &code, &wrong).await;
    assert_eq!((status, s(&body, "error").as_str()), (400, "invalid_grant"));

    let code = code_for(&server, "pub", "read").await;
    let (status, body) = exchange(&server, &code, VERIFIER).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(s(&body, "token_type"), "Bearer");
    assert_eq!(body["expires_in"], 3600);
    assert_eq!(s(&body, "scope"), "read");
    assert!(s(&body, "access_token").len() >= 43);
    assert!(!s(&body, "refresh_token").is_empty());
    assert!(body.get("id_token").is_none(), "no openid, no id_token");
    assert_eq!(server.stats().code_exchanges, 1);
}

#[tokio::test]
async fn tok2_code_is_single_use_and_bound_to_redirect_uri() {
    let server = start(three_clients()).await;
    let code = code_for(&server, "pub", "").await;
    assert_eq!(exchange(&server, &code, VERIFIER).await.0, 200);
    let (status, body) = exchange(&server, &code, VERIFIER).await;
    assert_eq!((status, s(&body, "error").as_str()), (400, "invalid_grant"));

    let code = code_for(&server, "pub", "").await;
    let (status, body) = post(
        &server,
        "/token",
        &[
            ("grant_type", "authorization_code"),
            ("client_id", "pub"),
            ("code", &code),
            ("redirect_uri", "http://127.0.0.1:9/other"),
            ("code_verifier", VERIFIER),
        ],
        None,
    )
    .await;
    assert_eq!((status, s(&body, "error").as_str()), (400, "invalid_grant"));
}

#[tokio::test]
async fn authz_bad_client_or_redirect_is_a_page_other_errors_redirect() {
    let server = start(three_clients()).await;
    let get = |q: String| {
        let url = format!("{}?{q}", server.url("/authorize"));
        async move { http().get(url).send().await.unwrap() }
    };
    let challenge = challenge_s256(VERIFIER);
    let unknown = get(format!(
        "response_type=code&client_id=nobody&redirect_uri={REDIRECT}&code_challenge={challenge}&code_challenge_method=S256"
    ))
    .await;
    assert_eq!(unknown.status(), 400);
    assert!(unknown.headers().get("location").is_none());
    let evil = get(format!(
        "response_type=code&client_id=pub&redirect_uri=http://evil.example/cb&code_challenge={challenge}&code_challenge_method=S256"
    ))
    .await;
    assert_eq!(evil.status(), 400);
    assert!(evil.headers().get("location").is_none());

    // PKCE is required: no challenge → error redirect with the state.
    let loc = authorize_raw(&server, "pub", &[]).await;
    assert!(param(&loc, "code").is_some());
    let no_pkce = get(format!(
        "response_type=code&client_id=pub&redirect_uri={REDIRECT}&state=s9"
    ))
    .await;
    assert_eq!(no_pkce.status(), 302);
    let loc = Url::parse(no_pkce.headers()["location"].to_str().unwrap()).unwrap();
    assert_eq!(param(&loc, "error").as_deref(), Some("invalid_request"));
    assert_eq!(param(&loc, "state").as_deref(), Some("s9"));
    assert!(param(&loc, "code").is_none());
    let plain = get(format!(
        "response_type=code&client_id=pub&redirect_uri={REDIRECT}&code_challenge={challenge}&code_challenge_method=plain"
    ))
    .await;
    let loc = Url::parse(plain.headers()["location"].to_str().unwrap()).unwrap();
    assert_eq!(param(&loc, "error").as_deref(), Some("invalid_request"));
}

#[tokio::test]
async fn tok3_client_authentication_none_basic_post_and_wrong_secret() {
    let server = start(three_clients()).await;
    let grant = |code: &str| {
        vec![
            ("grant_type", "authorization_code".to_owned()),
            ("code", code.to_owned()),
            ("redirect_uri", REDIRECT.to_owned()),
            ("code_verifier", VERIFIER.to_owned()),
        ]
    };
    // basic: id and secret form-urlencoded before base64 (RFC 6749 §2.3.1).
    let code = code_for(&server, "basic client", "").await;
    let form = grant(&code);
    let form: Vec<(&str, &str)> = form.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let (status, _) = post(
        &server,
        "/token",
        &form,
        Some(("basic client", "s3cr:t+/x")),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(server.stats().last_client_auth.as_deref(), Some("basic"));

    // A naive (not urlencoded) Basic header with the wrong secret is refused.
    let code = code_for(&server, "basic client", "").await;
    let form = grant(&code);
    let form: Vec<(&str, &str)> = form.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let resp = http()
        .post(server.url("/token"))
        .header(
            "authorization",
            format!("Basic {}", STANDARD.encode("basic client:wrong")),
        )
        .form(&form)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 401);
    assert_eq!(
        resp.headers()["www-authenticate"],
        "Basic realm=\"devserver\""
    );
    let body: Value = resp.json().await.unwrap();
    assert_eq!(s(&body, "error"), "invalid_client");

    // post: id and secret in the body; wrong secret → 401; basic-only client via post → 401.
    let code = code_for(&server, "poster", "").await;
    let mut form = grant(&code);
    form.push(("client_id", "poster".into()));
    form.push(("client_secret", "wrong".into()));
    let f: Vec<(&str, &str)> = form.iter().map(|(k, v)| (*k, v.as_str())).collect();
    assert_eq!(post(&server, "/token", &f, None).await.0, 401);
    let code = code_for(&server, "poster", "").await;
    let mut form = grant(&code);
    form.push(("client_id", "poster".into()));
    form.push(("client_secret", "post-secret".into()));
    let f: Vec<(&str, &str)> = form.iter().map(|(k, v)| (*k, v.as_str())).collect();
    assert_eq!(post(&server, "/token", &f, None).await.0, 200);
    assert_eq!(server.stats().last_client_auth.as_deref(), Some("post"));

    // A confidential client may not pass as public.
    let code = code_for(&server, "poster", "").await;
    let mut form = grant(&code);
    form.push(("client_id", "poster".into()));
    let f: Vec<(&str, &str)> = form.iter().map(|(k, v)| (*k, v.as_str())).collect();
    assert_eq!(post(&server, "/token", &f, None).await.0, 401);

    // none: only the client_id.
    let code = code_for(&server, "pub", "").await;
    assert_eq!(exchange(&server, &code, VERIFIER).await.0, 200);
    assert_eq!(server.stats().last_client_auth.as_deref(), Some("none"));
}

#[tokio::test]
async fn ref2_refresh_rotates_and_the_old_token_is_refused() {
    let server = start(three_clients()).await;
    let code = code_for(&server, "pub", "read write").await;
    let (_, tokens) = exchange(&server, &code, VERIFIER).await;
    let rt1 = s(&tokens, "refresh_token");
    let (status, body) = refresh(&server, &rt1).await;
    assert_eq!(status, 200);
    let rt2 = s(&body, "refresh_token");
    assert!(!rt2.is_empty() && rt2 != rt1);
    assert_eq!(s(&body, "scope"), "read write");
    assert_ne!(s(&body, "access_token"), s(&tokens, "access_token"));
    let (status, body) = refresh(&server, &rt1).await;
    assert_eq!((status, s(&body, "error").as_str()), (400, "invalid_grant"));
    assert_eq!(refresh(&server, &rt2).await.0, 200);
    assert_eq!(server.stats().refreshes, 2);
}

#[tokio::test]
async fn ref4_rotation_off_keeps_the_same_refresh_token_valid() {
    let server = start(DevServerConfig {
        rotate_refresh_tokens: false,
        ..three_clients()
    })
    .await;
    let code = code_for(&server, "pub", "").await;
    let rt = s(&exchange(&server, &code, VERIFIER).await.1, "refresh_token");
    for _ in 0..3 {
        let (status, body) = refresh(&server, &rt).await;
        assert_eq!(status, 200);
        assert!(body.get("refresh_token").is_none());
        assert!(!s(&body, "access_token").is_empty());
    }
}

#[tokio::test]
async fn rev1_revocation_kills_tokens_and_unknown_tokens_get_200() {
    let server = start(three_clients()).await;
    let code = code_for(&server, "pub", "").await;
    let (_, tokens) = exchange(&server, &code, VERIFIER).await;
    let (at, rt) = (s(&tokens, "access_token"), s(&tokens, "refresh_token"));
    assert_eq!(userinfo(&server, "/userinfo", &at).await.status(), 200);

    let revoke = |token: String, hint: &'static str| {
        let server = &server;
        async move {
            post(
                server,
                "/revoke",
                &[
                    ("client_id", "pub"),
                    ("token", &token),
                    ("token_type_hint", hint),
                ],
                None,
            )
            .await
            .0
        }
    };
    assert_eq!(revoke(rt.clone(), "refresh_token").await, 200);
    assert_eq!(revoke(at.clone(), "access_token").await, 200);
    assert_eq!(revoke("never-issued".into(), "access_token").await, 200);
    let (status, body) = refresh(&server, &rt).await;
    assert_eq!((status, s(&body, "error").as_str()), (400, "invalid_grant"));
    let resp = userinfo(&server, "/userinfo", &at).await;
    assert_eq!(resp.status(), 401);
    assert_eq!(
        resp.headers()["www-authenticate"],
        "Bearer error=\"invalid_token\""
    );
    assert_eq!(server.stats().revocations, 3);
    // Revocation authenticates the client like /token.
    let (status, _) = post(&server, "/revoke", &[("token", "x")], None).await;
    assert_eq!(status, 401);
}

#[tokio::test]
async fn revoke_all_invalidates_every_token() {
    let server = start(three_clients()).await;
    let code = code_for(&server, "pub", "").await;
    let (_, tokens) = exchange(&server, &code, VERIFIER).await;
    server.revoke_all();
    let at = s(&tokens, "access_token");
    assert_eq!(userinfo(&server, "/api/echo", &at).await.status(), 401);
    assert_eq!(refresh(&server, &s(&tokens, "refresh_token")).await.0, 400);
}

async fn device_start(server: &DevServer) -> Value {
    let (status, body) = post(
        server,
        "/device_authorization",
        &[("client_id", "pub"), ("scope", "openid")],
        None,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    body
}

async fn device_poll(server: &DevServer, device_code: &str) -> (u16, Value) {
    post(
        server,
        "/token",
        &[
            ("grant_type", "urn:ietf:params:oauth:grant-type:device_code"),
            ("client_id", "pub"),
            ("device_code", device_code),
        ],
        None,
    )
    .await
}

#[tokio::test]
async fn dev1_device_grant_pending_slow_down_approve_tokens() {
    let server = start(three_clients()).await;
    let auth = device_start(&server).await;
    let user_code = s(&auth, "user_code");
    assert_eq!(user_code.len(), 9);
    assert_eq!(&user_code[4..5], "-");
    assert_eq!(s(&auth, "verification_uri"), server.url("/device"));
    assert!(s(&auth, "verification_uri_complete").ends_with(&user_code));
    assert_eq!(auth["expires_in"], 600);
    assert_eq!(auth["interval"], 1);
    let dc = s(&auth, "device_code");

    let (status, body) = device_poll(&server, &dc).await;
    assert_eq!(
        (status, s(&body, "error").as_str()),
        (400, "authorization_pending")
    );
    let (_, body) = device_poll(&server, &dc).await;
    assert_eq!(s(&body, "error"), "slow_down");

    // The "browser" approves through the verification page.
    let page = http()
        .get(s(&auth, "verification_uri_complete"))
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 200);
    assert!(page.text().await.unwrap().contains("approved"));
    server.advance_clock(Duration::from_millis(1100));
    let (status, body) = device_poll(&server, &dc).await;
    assert_eq!(status, 200, "{body}");
    assert!(!s(&body, "access_token").is_empty());
    assert!(!s(&body, "id_token").is_empty());
    // The device code is spent.
    server.advance_clock(Duration::from_millis(1100));
    assert_eq!(
        s(&device_poll(&server, &dc).await.1, "error"),
        "invalid_grant"
    );
    assert_eq!(server.stats().device_polls, 4);
}

#[tokio::test]
async fn dev2_device_denied_and_api_approval_and_expiry() {
    let server = start(three_clients()).await;
    let auth = device_start(&server).await;
    assert!(server.deny_device(&s(&auth, "user_code")));
    assert!(
        !server.approve_device(&s(&auth, "user_code")),
        "already decided"
    );
    let (_, body) = device_poll(&server, &s(&auth, "device_code")).await;
    assert_eq!(s(&body, "error"), "access_denied");

    let auth = device_start(&server).await;
    assert!(server.approve_device(&s(&auth, "user_code")));
    assert_eq!(device_poll(&server, &s(&auth, "device_code")).await.0, 200);
    assert!(!server.approve_device("ZZZZ-ZZZZ"));

    let expired = start(DevServerConfig {
        device_code_ttl: Duration::ZERO,
        ..three_clients()
    })
    .await;
    let auth = device_start(&expired).await;
    let (_, body) = device_poll(&expired, &s(&auth, "device_code")).await;
    assert_eq!(s(&body, "error"), "expired_token");
}

#[tokio::test]
async fn dev_auto_approve_issues_tokens_on_first_poll() {
    let server = start(DevServerConfig {
        auto_approve_device: true,
        ..three_clients()
    })
    .await;
    let auth = device_start(&server).await;
    assert_eq!(device_poll(&server, &s(&auth, "device_code")).await.0, 200);
}

#[tokio::test]
async fn disc1_discovery_documents() {
    let server = start(DevServerConfig::default()).await;
    for path in [
        "/.well-known/openid-configuration",
        "/.well-known/oauth-authorization-server",
    ] {
        let doc: Value = http()
            .get(server.url(path))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(s(&doc, "issuer"), server.issuer());
        assert_eq!(s(&doc, "token_endpoint"), server.url("/token"));
        assert_eq!(s(&doc, "authorization_endpoint"), server.url("/authorize"));
        assert_eq!(s(&doc, "revocation_endpoint"), server.url("/revoke"));
        assert_eq!(
            s(&doc, "device_authorization_endpoint"),
            server.url("/device_authorization")
        );
        assert_eq!(s(&doc, "userinfo_endpoint"), server.url("/userinfo"));
        assert_eq!(
            doc["code_challenge_methods_supported"],
            serde_json::json!(["S256"])
        );
        assert_eq!(doc["authorization_response_iss_parameter_supported"], true);
    }
    assert!(server.issuer().starts_with("http://127.0.0.1:"));
    assert_eq!(server.addr().ip().to_string(), "127.0.0.1");
}

#[tokio::test]
async fn net2_each_fault_kind_then_recovery() {
    let server = start(three_clients()).await;
    let code = code_for(&server, "pub", "").await;
    let (_, tokens) = exchange(&server, &code, VERIFIER).await;
    let mut rt = s(&tokens, "refresh_token");

    server.inject(Fault::Status(500), 1, Endpoint::Token);
    server.inject(Fault::Status(503), 1, Endpoint::Token);
    let (status, body) = refresh(&server, &rt).await;
    assert_eq!((status, s(&body, "error").as_str()), (500, "server_error"));
    let (status, body) = refresh(&server, &rt).await;
    assert_eq!(
        (status, s(&body, "error").as_str()),
        (503, "temporarily_unavailable")
    );

    server.inject(
        Fault::TooManyRequests {
            retry_after_secs: 2,
        },
        2,
        Endpoint::Token,
    );
    for _ in 0..2 {
        let resp = http()
            .post(server.url("/token"))
            .form(&[
                ("grant_type", "refresh_token"),
                ("client_id", "pub"),
                ("refresh_token", &rt),
            ])
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 429);
        assert_eq!(resp.headers()["retry-after"], "2");
    }

    server.inject(Fault::GarbageJson, 1, Endpoint::Token);
    let resp = http()
        .post(server.url("/token"))
        .form(&[
            ("grant_type", "refresh_token"),
            ("client_id", "pub"),
            ("refresh_token", &rt),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert!(serde_json::from_str::<Value>(&resp.text().await.unwrap()).is_err());

    server.inject(Fault::ConnectionReset, 1, Endpoint::Token);
    let err = http()
        .post(server.url("/token"))
        .form(&[
            ("grant_type", "refresh_token"),
            ("client_id", "pub"),
            ("refresh_token", &rt),
        ])
        .send()
        .await;
    assert!(err.is_err(), "the connection was closed without a response");

    // A fault on one endpoint leaves the others alone.
    server.inject(Fault::Status(500), 1, Endpoint::Revoke);
    let at = s(&tokens, "access_token");
    assert_eq!(userinfo(&server, "/userinfo", &at).await.status(), 200);

    server.inject(Fault::Slow(Duration::from_millis(300)), 1, Endpoint::Any);
    let started = Instant::now();
    // Faults never consumed the refresh token: it still works (and rotates).
    let (status, body) = refresh(&server, &rt).await;
    assert!(started.elapsed() >= Duration::from_millis(300));
    assert_eq!(status, 200, "{body}");
    rt = s(&body, "refresh_token");
    // Recovered: the next request is normal.
    assert_eq!(refresh(&server, &rt).await.0, 200);
    assert_eq!(server.stats().refreshes, 2);
    assert!(server.stats().token_requests >= 9);
    let (status, _) = post(
        &server,
        "/revoke",
        &[("client_id", "pub"), ("token", "x")],
        None,
    )
    .await;
    assert_eq!(status, 500);
}

#[tokio::test]
async fn userinfo_and_api_echo_need_a_live_bearer_token() {
    let server = start(DevServerConfig {
        access_token_ttl: Duration::from_secs(1),
        ..three_clients()
    })
    .await;
    let code = code_for(&server, "pub", "openid").await;
    let at = s(&exchange(&server, &code, VERIFIER).await.1, "access_token");
    let info: Value = userinfo(&server, "/userinfo", &at)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(s(&info, "sub"), "demo-user");
    assert_eq!(s(&info, "email"), "demo@authdeck.invalid");
    let echo: Value = userinfo(&server, "/api/echo", &at)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(echo["ok"], true);
    assert_eq!(s(&echo, "method"), "GET");
    let none = http().get(server.url("/userinfo")).send().await.unwrap();
    assert_eq!(none.status(), 401);
    assert_eq!(userinfo(&server, "/userinfo", "bogus").await.status(), 401);
    server.advance_clock(Duration::from_millis(1100));
    assert_eq!(
        userinfo(&server, "/userinfo", &at).await.status(),
        401,
        "expired"
    );
    assert_eq!(server.stats().userinfo, 5);
}

#[tokio::test]
async fn tok5_github_like_form_response_and_expires_in_variants() {
    let server = start(DevServerConfig {
        form_encoded_responses: true,
        expires_in_as_string: true,
        ..three_clients()
    })
    .await;
    let code = code_for(&server, "pub", "repo").await;
    let resp = http()
        .post(server.url("/token"))
        .form(&[
            ("grant_type", "authorization_code"),
            ("client_id", "pub"),
            ("code", &code),
            ("redirect_uri", REDIRECT),
            ("code_verifier", VERIFIER),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(
        resp.headers()["content-type"],
        "application/x-www-form-urlencoded"
    );
    let body = resp.text().await.unwrap();
    let form: Vec<(String, String)> = form_urlencoded::parse(body.as_bytes())
        .into_owned()
        .collect();
    let get = |k: &str| {
        form.iter()
            .find(|(key, _)| key == k)
            .map(|(_, v)| v.clone())
    };
    assert_eq!(get("token_type").as_deref(), Some("Bearer"));
    assert_eq!(get("expires_in").as_deref(), Some("3600"));
    assert_eq!(get("scope").as_deref(), Some("repo"));
    assert!(get("access_token").is_some());

    let server = start(DevServerConfig {
        omit_expires_in: true,
        issue_refresh_tokens: false,
        ..three_clients()
    })
    .await;
    let code = code_for(&server, "pub", "").await;
    let (_, body) = exchange(&server, &code, VERIFIER).await;
    assert!(body.get("expires_in").is_none());
    assert!(body.get("refresh_token").is_none());
    assert!(!s(&body, "access_token").is_empty());
}

#[tokio::test]
async fn authz6_id_token_carries_the_nonce_and_demo_claims() {
    let server = start(three_clients()).await;
    let loc = authorize_raw(
        &server,
        "pub",
        &[("scope", "openid email"), ("nonce", "n-42")],
    )
    .await;
    let (_, body) = exchange(&server, &param(&loc, "code").unwrap(), VERIFIER).await;
    let id_token = s(&body, "id_token");
    let parts: Vec<&str> = id_token.split('.').collect();
    assert_eq!(parts.len(), 3);
    let header: Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[0]).unwrap()).unwrap();
    // DISC-5: signed with the key published at /jwks (advertised in discovery).
    assert_eq!(s(&header, "alg"), "ES256");
    let jwks: Value = http()
        .get(server.url("/jwks"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(jwks["keys"][0]["kid"], header["kid"]);
    assert_eq!(s(&jwks["keys"][0], "crv"), "P-256");
    assert!(jwks["keys"][0].get("d").is_none(), "public key only");
    let claims: Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[1]).unwrap()).unwrap();
    assert_eq!(s(&claims, "nonce"), "n-42");
    assert_eq!(s(&claims, "iss"), server.issuer());
    assert_eq!(s(&claims, "aud"), "pub");
    assert_eq!(s(&claims, "sub"), "demo-user");
    assert_eq!(s(&claims, "email"), "demo@authdeck.invalid");
    assert_eq!(s(&claims, "name"), "Demo User");
    assert!(claims["exp"].as_u64().unwrap() > claims["iat"].as_u64().unwrap());
}

#[tokio::test]
async fn many_concurrent_refreshes_with_keep_alive() {
    let server = start(DevServerConfig {
        rotate_refresh_tokens: false,
        ..three_clients()
    })
    .await;
    let code = code_for(&server, "pub", "").await;
    let rt = s(&exchange(&server, &code, VERIFIER).await.1, "refresh_token");
    let client = http();
    let url = server.url("/token");
    let tasks: Vec<_> = (0..200)
        .map(|_| {
            let (client, url, rt) = (client.clone(), url.clone(), rt.clone());
            tokio::spawn(async move {
                client
                    .post(url)
                    .form(&[
                        ("grant_type", "refresh_token"),
                        ("client_id", "pub"),
                        ("refresh_token", &rt),
                    ])
                    .send()
                    .await
                    .unwrap()
                    .status()
                    .as_u16()
            })
        })
        .collect();
    for t in tasks {
        assert_eq!(t.await.unwrap(), 200);
    }
    assert_eq!(server.stats().refreshes, 200);
}

fn engine() -> OAuthClient {
    OAuthClient::with_settings(ClientSettings {
        retry: RetryPolicy {
            base: Duration::from_millis(5),
            cap: Duration::from_millis(20),
            ..RetryPolicy::default()
        },
        system_proxy: false,
        ..ClientSettings::default()
    })
    .unwrap()
}

fn engine_config(
    server: &DevServer,
    client_id: &str,
    auth: AuthMethod,
    secret: &str,
) -> ClientConfig {
    let url = |p: &str| Some(Url::parse(&server.url(p)).unwrap());
    ClientConfig {
        client_id: client_id.into(),
        client_auth: ClientAuth::new(
            auth,
            (!secret.is_empty()).then(|| ClientSecret::new(secret)),
        )
        .unwrap(),
        issuer: Some(server.issuer()),
        authorization_endpoint: url("/authorize"),
        token_endpoint: url("/token"),
        revocation_endpoint: url("/revoke"),
        device_authorization_endpoint: url("/device_authorization"),
        scopes: vec!["openid".into(), "email".into()],
        ..ClientConfig::default()
    }
}

/// Plays the browser: follows `/authorize` once and reads the code from the Location.
async fn browser_code(req: &AuthorizationRequest, issuer: &str) -> AuthCode {
    let resp = http().get(req.url.clone()).send().await.unwrap();
    assert_eq!(resp.status(), 302);
    let loc = Url::parse(resp.headers()["location"].to_str().unwrap()).unwrap();
    assert!(loc.as_str().starts_with(&req.redirect_uri));
    assert!(req.state.ct_eq(&param(&loc, "state").unwrap()));
    assert_eq!(param(&loc, "iss").as_deref(), Some(issuer));
    AuthCode::new(param(&loc, "code").unwrap())
}

#[tokio::test]
async fn pkce2_tok2_ref3_rev1_real_engine_against_devserver() {
    let server = start(three_clients()).await;
    let client = engine();
    for (id, auth, secret) in [
        ("pub", AuthMethod::None, ""),
        ("basic client", AuthMethod::Basic, "s3cr:t+/x"),
        ("poster", AuthMethod::Post, "post-secret"),
    ] {
        let config = engine_config(&server, id, auth, secret);
        let req = AuthorizationRequest::new(&config, REDIRECT).unwrap();
        let code = browser_code(&req, &server.issuer()).await;
        let nonce = req.nonce.clone().expect("openid requests carry a nonce");
        let tokens = client
            .exchange_code(&config, &code, req.verifier, &req.redirect_uri)
            .await
            .unwrap();
        tokens.check_nonce(&nonce).unwrap();
        let claims = tokens.claims.clone().unwrap();
        assert_eq!(claims.email.as_deref(), Some("demo@authdeck.invalid"));
        assert_eq!(tokens.lifetime, Some(Duration::from_secs(3600)));
        assert_eq!(
            server.stats().last_client_auth.as_deref(),
            Some(auth.as_str())
        );

        let rt1 = tokens.refresh_token.clone().unwrap();
        let refreshed = client.refresh(&config, &rt1).await.unwrap();
        let rt2 = refreshed.refresh_token.clone().unwrap();
        assert_ne!(rt1, rt2);
        assert!(
            client
                .refresh(&config, &rt1)
                .await
                .unwrap_err()
                .is_invalid_grant()
        );

        let out = client
            .revoke(&config, Some(&refreshed.access_token), Some(&rt2))
            .await
            .unwrap();
        assert!(out.any_revoked());
        assert!(
            client
                .refresh(&config, &rt2)
                .await
                .unwrap_err()
                .is_invalid_grant()
        );
        let status = userinfo(&server, "/userinfo", refreshed.access_token.secret())
            .await
            .status();
        assert_eq!(status, 401);
    }
    // The engine's wrong-verifier exchange is refused (PKCE-2).
    let config = engine_config(&server, "pub", AuthMethod::None, "");
    let req = AuthorizationRequest::new(&config, REDIRECT).unwrap();
    let code = browser_code(&req, &server.issuer()).await;
    let other = AuthorizationRequest::new(&config, REDIRECT).unwrap();
    let err = client
        .exchange_code(&config, &code, other.verifier, &req.redirect_uri)
        .await
        .unwrap_err();
    assert!(err.is_invalid_grant());
}

#[tokio::test]
async fn net2_engine_retries_through_injected_503_then_succeeds() {
    let server = start(three_clients()).await;
    let config = engine_config(&server, "pub", AuthMethod::None, "");
    let client = engine();
    let req = AuthorizationRequest::new(&config, REDIRECT).unwrap();
    let code = browser_code(&req, &server.issuer()).await;
    let tokens = client
        .exchange_code(&config, &code, req.verifier, &req.redirect_uri)
        .await
        .unwrap();
    let rt = tokens.refresh_token.unwrap();
    server.inject(Fault::Status(503), 2, Endpoint::Token);
    let before = server.stats().token_requests;
    let refreshed = client.refresh(&config, &rt).await.unwrap();
    assert!(!refreshed.access_token.secret().is_empty());
    assert_eq!(server.stats().token_requests, before + 3);
}

#[tokio::test]
async fn shutdown_stops_listening_and_unknown_paths_are_404() {
    let server = start(DevServerConfig::default()).await;
    let missing = http().get(server.url("/nope")).send().await.unwrap();
    assert_eq!(missing.status(), 404);
    let wrong_method = http().get(server.url("/token")).send().await.unwrap();
    assert_eq!(wrong_method.status(), 405);
    let addr = server.addr();
    server.shutdown();
    // The accept loop stops on the next turn of the runtime; bounded wait.
    let deadline = Instant::now() + Duration::from_secs(2);
    loop {
        let fresh = reqwest::Client::builder()
            .no_proxy()
            .pool_max_idle_per_host(0)
            .timeout(Duration::from_millis(300))
            .build()
            .unwrap();
        if fresh.get(format!("http://{addr}/")).send().await.is_err() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "server still answering after shutdown"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

// ---- DISC-5: signed id_tokens, verified by the app through the real login flow ----

use authdeck::app::demo::login_as_browser;
use authdeck::app::refresh::Refreshed;
use authdeck::app::{App, Settings};
use authdeck::devserver::{FORGED_EMAIL, IdTokenFault};
use authdeck::vault::{KeySource, Vault, generate_key_file};

const DEMO_EMAIL: &str = "demo@authdeck.invalid";

/// An app in a temp dir with one account `acc` on `server`: by issuer (discovery, JWKS) when
/// `by_issuer`, else explicit endpoints and no issuer (nothing to verify against).
fn disc5_app(server: &DevServer, by_issuer: bool) -> (tempfile::TempDir, App) {
    let dir = tempfile::tempdir().unwrap();
    let providers = dir.path().join("config/providers");
    std::fs::create_dir_all(&providers).unwrap();
    let issuer = server.issuer();
    let place = if by_issuer {
        format!("issuer = \"{issuer}\"\n")
    } else {
        format!(
            "authorization_endpoint = \"{issuer}/authorize\"\n\
             token_endpoint = \"{issuer}/token\"\n"
        )
    };
    std::fs::write(
        providers.join("acc.toml"),
        format!(
            "extends = \"oidc\"\n{place}client_id = \"demo-public\"\n\
             scopes = [\"openid\", \"email\", \"offline_access\"]\n"
        ),
    )
    .unwrap();
    let key = dir.path().join("vault.key");
    generate_key_file(&key).unwrap();
    let vault = Vault::create(dir.path().join("vault.bin"), KeySource::KeyFile(key)).unwrap();
    let mut settings = Settings {
        login_timeout: Duration::from_secs(10),
        ..Settings::default()
    };
    settings.http.system_proxy = false;
    let app = App::new(dir.path().join("config"), vault, settings).unwrap();
    (dir, app)
}

fn stored_verified(app: &App) -> bool {
    app.current()
        .unwrap()
        .records
        .get("acc")
        .is_some_and(|r| r.claims.verified)
}

fn stored_email(app: &App) -> Option<String> {
    app.current()
        .unwrap()
        .records
        .get("acc")?
        .claims
        .email
        .clone()
}

#[tokio::test]
async fn disc5_login_and_refresh_verify_signed_id_tokens_and_refetch_keys_once_on_rotation() {
    let server = start(DevServerConfig::default()).await;
    let (_dir, app) = disc5_app(&server, true);
    login_as_browser(&app, "acc").await.unwrap();
    assert_eq!(stored_email(&app).as_deref(), Some(DEMO_EMAIL));
    assert!(
        stored_verified(&app),
        "verified claims are marked so for the dashboard"
    );
    assert_eq!(server.stats().jwks_requests, 1);

    // OIDC Core §12.2: the refresh response's id_token verifies with the cached keys.
    let (_, how) = app.fresh_token("acc", true).await.unwrap();
    assert!(matches!(how, Refreshed::Done { .. }), "{how:?}");
    assert_eq!(server.stats().jwks_requests, 1, "keys cached per issuer");

    // Key rotation: the next token names an unknown kid; the JWKS is fetched again once.
    server.rotate_signing_key().unwrap();
    app.fresh_token("acc", true).await.unwrap();
    assert_eq!(server.stats().jwks_requests, 2);
    assert_eq!(stored_email(&app).as_deref(), Some(DEMO_EMAIL));

    // A refresh whose id_token fails: the tokens are kept (the rotated refresh token is the
    // only live one) but the forged claims are not stored.
    let before = app.current().unwrap().records["acc"].access_token.clone();
    server.inject(Fault::IdToken(IdTokenFault::WrongKey), 1, Endpoint::Token);
    let (token, how) = app.fresh_token("acc", true).await.unwrap();
    assert!(
        matches!(how, Refreshed::Done { rotated: true, .. }),
        "{how:?}"
    );
    assert_ne!(Some(token), before);
    assert_eq!(stored_email(&app).as_deref(), Some(DEMO_EMAIL));
    // The kept refresh token still works.
    app.fresh_token("acc", true).await.unwrap();
}

#[tokio::test]
async fn disc5_login_fails_on_a_bad_id_token_and_the_vault_is_unchanged() {
    let server = start(DevServerConfig::default()).await;
    let (_dir, app) = disc5_app(&server, true);
    let cases = [
        (IdTokenFault::WrongKey, "signature does not verify"),
        (IdTokenFault::UnknownKid, "unknown key id"),
        (IdTokenFault::WrongIssuer, "issuer mismatch"),
        (
            IdTokenFault::WrongAudience,
            "audience does not contain the client_id",
        ),
        (IdTokenFault::Expired, "expired"),
        (IdTokenFault::Unsigned, "unsigned token (alg none) refused"),
    ];
    for (fault, reason) in cases {
        server.inject(Fault::IdToken(fault), 1, Endpoint::Token);
        let err = login_as_browser(&app, "acc").await.unwrap_err().to_string();
        assert_eq!(
            err,
            format!("login to 'acc' failed: the ID token was rejected (DISC-5): {reason}"),
            "{fault:?}"
        );
        assert!(!err.contains("eyJ"), "no token in the message");
        assert!(
            !app.current().unwrap().records.contains_key("acc"),
            "{fault:?}: vault unchanged"
        );
    }
    // The unknown kid made exactly one refetch beyond the first fetch; then a clean login.
    let jwks = server.stats().jwks_requests;
    assert_eq!(jwks, 2, "first fetch + one refetch for the unknown kid");
    login_as_browser(&app, "acc").await.unwrap();
    assert_eq!(stored_email(&app).as_deref(), Some(DEMO_EMAIL));
}

#[tokio::test]
async fn disc5_without_an_issuer_claims_stay_unverified_as_before() {
    // Explicit endpoints and no issuer: there is no jwks_uri to verify with, so even an
    // unsigned token's claims are taken for display (documented in docs/providers.md).
    let server = start(DevServerConfig::default()).await;
    let (_dir, app) = disc5_app(&server, false);
    server.inject(Fault::IdToken(IdTokenFault::Unsigned), 1, Endpoint::Token);
    login_as_browser(&app, "acc").await.unwrap();
    assert_eq!(stored_email(&app).as_deref(), Some(FORGED_EMAIL));
    assert!(
        !stored_verified(&app),
        "claims nobody could check are not marked verified"
    );
    assert_eq!(server.stats().jwks_requests, 0);
}
