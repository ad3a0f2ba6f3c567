use super::*;
use crate::oauth::client_auth::AuthMethod;
use crate::oauth::testutil::{Reply, Stub, fast_client, form_of};
use std::time::Duration;

fn config(stub: &Stub, auth: AuthMethod) -> ClientConfig {
    ClientConfig {
        client_id: "my client".into(),
        client_auth: ClientAuth::new(auth, Some(ClientSecret::new("p@ss:w/rd+=?"))).unwrap(),
        token_endpoint: Some(stub.url("/token")),
        scopes: vec!["openid".into(), "email".into()],
        ..Default::default()
    }
}

const OK: &str = r#"{"access_token":"at-fx-1","token_type":"Bearer","expires_in":3600,"refresh_token":"rt-fx-A1"}"#;

async fn exchange(_stub: &Stub, cfg: &ClientConfig) -> Result<TokenSet> {
    fast_client()
        .exchange_code(
            cfg,
            &AuthCode::new("c1"),
            PkceVerifier::new("v".repeat(43)),
            "http://127.0.0.1:1/cb",
        )
        .await
}

#[test]
fn secret2_basic_auth_rfc6749_vectors() {
    let v = basic_auth("s6BhdRkqt3", &ClientSecret::new("gX1fBat3bV")).unwrap();
    assert_eq!(v.to_str().unwrap(), "Basic czZCaGRSa3F0MzpnWDFmQmF0M2JW");
    let v = basic_auth("my client", &ClientSecret::new("p@ss:w/rd+=?")).unwrap();
    assert_eq!(
        v.to_str().unwrap(),
        "Basic bXkrY2xpZW50OnAlNDBzcyUzQXclMkZyZCUyQiUzRCUzRg=="
    );
    assert!(v.is_sensitive());
}

#[tokio::test]
async fn tok1_tok2_exchange_with_client_auth_none() {
    let stub = Stub::start(vec![Reply::json(200, OK)]).await;
    let t = exchange(&stub, &config(&stub, AuthMethod::None))
        .await
        .unwrap();
    assert_eq!(t.access_token.secret(), "at-fx-1");
    let r = &stub.requests()[0];
    assert_eq!((r.method.as_str(), r.path.as_str()), ("POST", "/token"));
    assert_eq!(r.header("accept").as_deref(), Some("application/json"));
    assert_eq!(
        r.header("content-type").as_deref(),
        Some("application/x-www-form-urlencoded")
    );
    assert!(r.header("authorization").is_none());
    let f = form_of(&r.body);
    assert_eq!(f["grant_type"], "authorization_code");
    assert_eq!(f["code"], "c1");
    assert_eq!(f["redirect_uri"], "http://127.0.0.1:1/cb");
    assert_eq!(f["code_verifier"], "v".repeat(43));
    assert_eq!(f["client_id"], "my client");
    assert!(!f.contains_key("client_secret"));
    assert!(!r.raw.contains("p%40ss") && !r.raw.contains("p@ss"));
}

#[tokio::test]
async fn secret2_basic_auth_puts_secret_only_in_header() {
    let stub = Stub::start(vec![Reply::json(200, OK)]).await;
    exchange(&stub, &config(&stub, AuthMethod::Basic))
        .await
        .unwrap();
    let r = &stub.requests()[0];
    assert_eq!(
        r.header("authorization").as_deref(),
        Some("Basic bXkrY2xpZW50OnAlNDBzcyUzQXclMkZyZCUyQiUzRCUzRg==")
    );
    let f = form_of(&r.body);
    assert!(!f.contains_key("client_secret") && !f.contains_key("client_id"));
    assert!(!r.body.contains("ss"));
}

#[tokio::test]
async fn secret2_post_auth_puts_secret_only_in_body() {
    let stub = Stub::start(vec![Reply::json(200, OK)]).await;
    exchange(&stub, &config(&stub, AuthMethod::Post))
        .await
        .unwrap();
    let r = &stub.requests()[0];
    assert!(r.header("authorization").is_none());
    let f = form_of(&r.body);
    assert_eq!(f["client_id"], "my client");
    assert_eq!(f["client_secret"], "p@ss:w/rd+=?");
    assert!(!r.path.contains('?'));
}

#[tokio::test]
async fn tok_form_encoded_response_over_http() {
    let stub = Stub::start(vec![Reply::form(
        200,
        "access_token=gho_1&token_type=bearer&scope=repo",
    )])
    .await;
    let t = exchange(&stub, &config(&stub, AuthMethod::None))
        .await
        .unwrap();
    assert_eq!(t.access_token.secret(), "gho_1");
    assert_eq!(t.scopes, ["repo"]);
}

#[tokio::test]
async fn net2_retries_each_transient_status_then_succeeds_on_refresh() {
    for status in [500u16, 502, 503, 504, 429] {
        let stub = Stub::start(vec![Reply::text(status, "oops"), Reply::json(200, OK)]).await;
        let cfg = config(&stub, AuthMethod::None);
        let t = fast_client()
            .refresh(&cfg, &RefreshToken::new("rt"))
            .await
            .unwrap();
        assert_eq!(t.access_token.secret(), "at-fx-1", "{status}");
        assert_eq!(stub.requests().len(), 2, "{status}");
    }
}

#[tokio::test]
async fn net2_429_retry_after_is_honoured() {
    let stub = Stub::start(vec![
        Reply::text(429, "slow down").header("Retry-After", "1"),
        Reply::json(200, OK),
    ])
    .await;
    let cfg = config(&stub, AuthMethod::None);
    fast_client()
        .refresh(&cfg, &RefreshToken::new("rt"))
        .await
        .unwrap();
    let reqs = stub.requests();
    assert_eq!(reqs.len(), 2);
    assert!(reqs[1].at - reqs[0].at >= Duration::from_millis(950));
}

#[tokio::test]
async fn net2_retry_after_beyond_cap_is_not_waited_for() {
    let stub = Stub::start(vec![Reply::text(429, "no").header("Retry-After", "500")]).await;
    let cfg = config(&stub, AuthMethod::None);
    let e = fast_client()
        .refresh(&cfg, &RefreshToken::new("rt"))
        .await
        .unwrap_err();
    assert!(matches!(e, OAuthError::Http { status: 429 }));
    assert_eq!(stub.requests().len(), 1);
}

#[tokio::test]
async fn net2_attempts_are_bounded() {
    let stub = Stub::start(vec![Reply::text(503, "down")]).await;
    let cfg = config(&stub, AuthMethod::None);
    let e = fast_client()
        .refresh(&cfg, &RefreshToken::new("rt"))
        .await
        .unwrap_err();
    assert!(matches!(e, OAuthError::Http { status: 503 }) && e.is_transient());
    assert_eq!(stub.requests().len(), 3);
}

#[tokio::test]
async fn net3_client_errors_not_retried() {
    for status in [400u16, 401, 403, 404] {
        let stub = Stub::start(vec![Reply::text(status, "no"), Reply::json(200, OK)]).await;
        let cfg = config(&stub, AuthMethod::None);
        let e = fast_client()
            .refresh(&cfg, &RefreshToken::new("rt"))
            .await
            .unwrap_err();
        assert!(matches!(e, OAuthError::Http { .. }), "{status}: {e}");
        assert_eq!(stub.requests().len(), 1, "{status}");
    }
}

#[tokio::test]
async fn err2_invalid_grant_attempted_exactly_once_even_on_5xx() {
    for status in [400u16, 500, 503] {
        let stub = Stub::start(vec![
            Reply::json(
                status,
                r#"{"error":"invalid_grant","error_description":"refresh token revoked"}"#,
            ),
            Reply::json(200, OK),
        ])
        .await;
        let cfg = config(&stub, AuthMethod::None);
        let e = fast_client()
            .refresh(&cfg, &RefreshToken::new("rt"))
            .await
            .unwrap_err();
        assert!(e.is_invalid_grant(), "{e}");
        assert!(e.to_string().contains("refresh token revoked"));
        assert_eq!(stub.requests().len(), 1);
    }
}

#[tokio::test]
async fn err3_unknown_error_code_is_shown_escaped_and_final_on_4xx() {
    let stub = Stub::start(vec![
        Reply::json(400, r#"{"error":"brand_new\u001b[31m_code"}"#),
        Reply::json(200, OK),
    ])
    .await;
    let cfg = config(&stub, AuthMethod::None);
    let e = fast_client()
        .refresh(&cfg, &RefreshToken::new("rt"))
        .await
        .unwrap_err();
    let text = e.to_string();
    assert!(
        text.contains("brand_new") && !text.contains('\u{1b}'),
        "{text}"
    );
    assert_eq!(stub.requests().len(), 1);
}

#[tokio::test]
async fn ref7_invalid_client_is_config_error_not_retried() {
    let stub = Stub::start(vec![
        Reply::json(401, r#"{"error":"invalid_client"}"#)
            .header("WWW-Authenticate", "Basic realm=\"as\""),
    ])
    .await;
    let cfg = config(&stub, AuthMethod::Basic);
    let e = fast_client()
        .refresh(&cfg, &RefreshToken::new("rt"))
        .await
        .unwrap_err();
    assert!(e.is_config_error() && !e.is_transient());
    assert_eq!(stub.requests().len(), 1);
}

#[tokio::test]
async fn net2_network_error_retried_connect_refused() {
    let port = crate::oauth::testutil::closed_port().await;
    let cfg = ClientConfig {
        client_id: "c".into(),
        token_endpoint: Some(Url::parse(&format!("http://127.0.0.1:{port}/token")).unwrap()),
        ..Default::default()
    };
    let started = Instant::now();
    let e = fast_client()
        .refresh(&cfg, &RefreshToken::new("rt"))
        .await
        .unwrap_err();
    assert!(
        matches!(e, OAuthError::Network(_)) && e.is_transient(),
        "{e}"
    );
    assert!(started.elapsed() < Duration::from_secs(5));
}

#[tokio::test]
async fn net2_post_send_network_error_retried_on_refresh() {
    let stub = Stub::start(vec![Reply::Drop, Reply::json(200, OK)]).await;
    let cfg = config(&stub, AuthMethod::None);
    fast_client()
        .refresh(&cfg, &RefreshToken::new("rt"))
        .await
        .unwrap();
    assert_eq!(stub.requests().len(), 2);
}

#[tokio::test]
async fn ref8_post_send_failure_retried_only_once_on_refresh() {
    let stub = Stub::start(vec![Reply::Drop, Reply::Drop, Reply::json(200, OK)]).await;
    let cfg = config(&stub, AuthMethod::None);
    let e = fast_client()
        .refresh(&cfg, &RefreshToken::new("rt"))
        .await
        .unwrap_err();
    assert!(matches!(e, OAuthError::Network(_)), "{e}");
    assert_eq!(stub.requests().len(), 2);
}

#[tokio::test]
async fn net4_code_exchange_not_retried_after_send() {
    let stub = Stub::start(vec![Reply::Drop, Reply::json(200, OK)]).await;
    let e = exchange(&stub, &config(&stub, AuthMethod::None))
        .await
        .unwrap_err();
    assert!(matches!(e, OAuthError::Network(_)), "{e}");
    assert_eq!(stub.requests().len(), 1);

    let stub = Stub::start(vec![Reply::text(503, "down"), Reply::json(200, OK)]).await;
    let e = exchange(&stub, &config(&stub, AuthMethod::None))
        .await
        .unwrap_err();
    assert!(matches!(e, OAuthError::Http { status: 503 }));
    assert_eq!(stub.requests().len(), 1);
}

/// HARD-3: a token response larger than the cap is refused (not read into memory without
/// bound) and not retried; one just under it is read.
#[tokio::test]
async fn hard3_oversized_response_body_is_refused() {
    let pad = "x".repeat(MAX_RESPONSE_BODY + 1);
    let huge = format!(r#"{{"access_token":"at","token_type":"Bearer","pad":"{pad}"}}"#);
    let stub = Stub::start(vec![Reply::json(200, &huge), Reply::json(200, OK)]).await;
    let e = exchange(&stub, &config(&stub, AuthMethod::None))
        .await
        .unwrap_err();
    assert!(
        matches!(&e, OAuthError::InvalidResponse(m) if m.contains("larger than 1024 KiB")),
        "{e}"
    );
    assert_eq!(stub.requests().len(), 1, "never retried");
    let pad = "x".repeat(MAX_RESPONSE_BODY - 100);
    let big = format!(r#"{{"access_token":"at","token_type":"Bearer","pad":"{pad}"}}"#);
    let stub = Stub::start(vec![Reply::json(200, &big)]).await;
    assert!(
        exchange(&stub, &config(&stub, AuthMethod::None))
            .await
            .is_ok()
    );
}

#[tokio::test]
async fn net1_total_timeout() {
    let stub = Stub::start(vec![Reply::json(200, OK).delay(Duration::from_secs(3))]).await;
    let mut settings = crate::oauth::testutil::fast_settings();
    settings.timeout = Duration::from_millis(300);
    settings.retry = RetryPolicy::none();
    let client = OAuthClient::with_settings(settings).unwrap();
    let cfg = config(&stub, AuthMethod::None);
    let started = Instant::now();
    let e = client
        .refresh(&cfg, &RefreshToken::new("rt"))
        .await
        .unwrap_err();
    assert!(matches!(e, OAuthError::Timeout), "{e}");
    assert!(started.elapsed() < Duration::from_secs(2));
}

#[tokio::test]
async fn ref1_refresh_request_and_ref4_rotation() {
    let stub = Stub::start(vec![
            Reply::json(200, r#"{"access_token":"at-fx-2","token_type":"bearer","expires_in":"3600","refresh_token":"rt-fx-A2"}"#),
            Reply::json(200, r#"{"access_token":"at-fx-3","token_type":"Bearer"}"#),
        ])
        .await;
    let cfg = config(&stub, AuthMethod::None);
    let client = fast_client();
    let t = client
        .refresh(&cfg, &RefreshToken::new("rt-fx-A1"))
        .await
        .unwrap();
    assert_eq!(t.refresh_token.unwrap().secret(), "rt-fx-A2");
    let f = form_of(&stub.requests()[0].body);
    assert_eq!(f["grant_type"], "refresh_token");
    assert_eq!(f["refresh_token"], "rt-fx-A1");
    assert_eq!(f["client_id"], "my client");
    assert!(!f.contains_key("scope"));
    // REF-4: no refresh_token in the answer → None, the caller keeps the old one.
    let t = client
        .refresh(&cfg, &RefreshToken::new("rt-fx-A2"))
        .await
        .unwrap();
    assert!(t.refresh_token.is_none());
    assert_eq!(t.expires_at, None);
    assert_eq!(t.scopes, ["openid", "email"]);
}

#[tokio::test]
async fn ref1_scope_sent_on_refresh_when_configured() {
    let stub = Stub::start(vec![Reply::json(200, OK)]).await;
    let mut cfg = config(&stub, AuthMethod::None);
    cfg.scope_on_refresh = true;
    cfg.token_params = vec![("resource".into(), "https://api.example".into())];
    fast_client()
        .refresh(&cfg, &RefreshToken::new("rt"))
        .await
        .unwrap();
    let f = form_of(&stub.requests()[0].body);
    assert_eq!(f["scope"], "openid email");
    assert_eq!(f["resource"], "https://api.example");
}

#[tokio::test]
async fn prov5_refresh_carries_the_login_redirect_uri_when_configured() {
    let stub = Stub::start(vec![Reply::json(200, OK), Reply::json(200, OK)]).await;
    let mut cfg = config(&stub, AuthMethod::None);
    let client = fast_client();
    client
        .refresh(&cfg, &RefreshToken::new("rt"))
        .await
        .unwrap();
    cfg.refresh_redirect_uri = Some("http://127.0.0.1:8123/callback".into());
    client
        .refresh(&cfg, &RefreshToken::new("rt"))
        .await
        .unwrap();
    let reqs = stub.requests();
    assert!(!form_of(&reqs[0].body).contains_key("redirect_uri"));
    assert_eq!(
        form_of(&reqs[1].body)["redirect_uri"],
        "http://127.0.0.1:8123/callback"
    );
}

#[tokio::test]
async fn token_params_may_not_override_reserved() {
    let stub = Stub::start(vec![Reply::json(200, OK)]).await;
    let mut cfg = config(&stub, AuthMethod::None);
    cfg.token_params = vec![("client_secret".into(), "x".into())];
    assert!(exchange(&stub, &cfg).await.unwrap_err().is_config_error());
}

#[tokio::test]
async fn disc4_plain_http_token_endpoint_refused() {
    let cfg = ClientConfig {
        client_id: "c".into(),
        token_endpoint: Some(Url::parse("http://as.example/token").unwrap()),
        ..Default::default()
    };
    let e = fast_client()
        .refresh(&cfg, &RefreshToken::new("rt"))
        .await
        .unwrap_err();
    assert!(e.is_config_error());
}

#[tokio::test]
async fn redirects_not_followed() {
    let stub = Stub::start(vec![
        Reply::text(302, "").header("Location", "http://127.0.0.1:1/elsewhere"),
    ])
    .await;
    let e = exchange(&stub, &config(&stub, AuthMethod::None))
        .await
        .unwrap_err();
    assert!(matches!(e, OAuthError::Http { status: 302 }));
    assert_eq!(stub.requests().len(), 1);
}

#[tokio::test]
async fn net4_connect_error_counts_as_not_sent_and_drop_as_sent() {
    let http = reqwest::Client::builder().no_proxy().build().unwrap();
    let port = crate::oauth::testutil::closed_port().await;
    let e = http
        .get(format!("http://127.0.0.1:{port}/"))
        .send()
        .await
        .unwrap_err();
    assert!(!failure(e).sent);
    let stub = Stub::start(vec![Reply::Drop]).await;
    let e = http.get(stub.url("/")).send().await.unwrap_err();
    let f = failure(e);
    assert!(f.sent && !f.fatal);
}

/// LOG-3. The subscriber is scoped to this thread (`with_default`, never global) and the
/// requests run on a current-thread runtime inside that scope, so exactly this test's events
/// are captured, whatever other tests of the binary do on their threads meanwhile.
#[test]
fn log3_no_secret_in_trace_logs() {
    use std::sync::{Arc, Mutex};
    #[derive(Clone, Default)]
    struct Buf(Arc<Mutex<Vec<u8>>>);
    impl std::io::Write for Buf {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let buf = Buf::default();
    let writer = buf.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .finish();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    tracing::subscriber::with_default(subscriber, || {
        // Another thread may have cached a callsite's interest as "never" before this
        // subscriber existed; recompute it so our events cannot be lost.
        tracing::callsite::rebuild_interest_cache();
        rt.block_on(log3_requests());
    });
    let logs = String::from_utf8(buf.0.lock().unwrap().clone()).unwrap();
    assert!(logs.contains("token granted"), "nothing logged: {logs}");
    assert!(!logs.contains("LEAK"), "secret in logs: {logs}");
    let header = basic_auth("my client", &ClientSecret::new("cs-LEAK-3")).unwrap();
    let b64 = header.to_str().unwrap().trim_start_matches("Basic ");
    assert!(!logs.contains(b64), "basic header in logs");
}

/// The requests of the LOG-3 test: a retried refresh, then a refused code exchange, with a
/// client secret sent in a Basic header.
async fn log3_requests() {
    let stub = Stub::start(vec![
        Reply::text(503, ""),
        Reply::json(
            200,
            r#"{"access_token":"at-LEAK-1","token_type":"Bearer","refresh_token":"rt-LEAK-2"}"#,
        ),
        Reply::json(
            400,
            r#"{"error":"invalid_grant","error_description":"bad"}"#,
        ),
    ])
    .await;
    let mut cfg = config(&stub, AuthMethod::Basic);
    cfg.client_auth = ClientAuth::Basic(ClientSecret::new("cs-LEAK-3"));
    let client = fast_client();
    client
        .refresh(&cfg, &RefreshToken::new("rt-LEAK-4"))
        .await
        .unwrap();
    let _ = client
        .exchange_code(
            &cfg,
            &AuthCode::new("code-LEAK-5"),
            PkceVerifier::new("ver-LEAK-6"),
            "http://127.0.0.1:1/cb",
        )
        .await;
}
