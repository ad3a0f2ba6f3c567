//! The OAuth engine (`authdeck::oauth`, public API only) against the real `oidc-provider`
//! from npm (tests/interop/). The harness in `oidc_provider.rs` only plays the browser (login
//! and consent pages, device approval); every protocol request — discovery, the code
//! exchange, refresh, revocation, the device grant — is made by the engine itself.
//!
//! Tests share the process-wide server (`OidcProvider::shared()`) unless they need their own
//! settings; each login has its own browser, grant and tokens, so they run in parallel.

use std::time::{Duration, Instant, SystemTime};

use authdeck::oauth::idtoken::{IdTokenCheck, check_claims_unverified};
use authdeck::oauth::pkce::PkcePair;
use authdeck::oauth::{AuthMethod, ClientAuth};
use authdeck::oauth::{
    AuthorizationRequest, ClientConfig, ClientSettings, OAuthClient, OAuthError, RetryPolicy,
    Revocation, TokenSet,
};
use authdeck::secret::{
    AccessToken, AuthCode, ClientSecret, IdToken, Nonce, PkceVerifier, RefreshToken,
};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use tokio::sync::watch;

use crate::oidc_provider::{
    BASIC_CLIENT, Browser, ClientAuth as HarnessAuth, DEFAULT_LOGIN, OidcProvider, POST_CLIENT,
    PUBLIC_CLIENT, ProviderOptions, TestClient, approve_device, approve_device_with_code,
    browse_authorization, redirect_uri,
};

/// Scopes every login asks for. oidc-provider drops `offline_access` without
/// `prompt=consent` but issues refresh tokens anyway (see tests/interop/README.md).
const SCOPES: [&str; 4] = ["openid", "email", "profile", "offline_access"];
/// The scope the server grants for [`SCOPES`].
const GRANTED: [&str; 3] = ["openid", "email", "profile"];
/// Upper bound for any single engine call or browser run in these tests.
const STEP_TIMEOUT: Duration = Duration::from_secs(15);

/// The engine with test transport settings: no system proxy (loopback must be reached
/// directly), short timeouts, the default retry policy.
fn engine() -> OAuthClient {
    engine_with(RetryPolicy::default())
}

fn engine_with(retry: RetryPolicy) -> OAuthClient {
    OAuthClient::with_settings(ClientSettings {
        connect_timeout: Duration::from_secs(5),
        timeout: Duration::from_secs(10),
        retry,
        system_proxy: false,
        ..ClientSettings::default()
    })
    .unwrap()
}

/// Runs `fut` with [`STEP_TIMEOUT`], so a hung server fails the test instead of hanging it.
async fn bounded<T>(what: &str, fut: impl Future<Output = T>) -> T {
    tokio::time::timeout(STEP_TIMEOUT, fut)
        .await
        .unwrap_or_else(|_| panic!("{what}: no answer within {STEP_TIMEOUT:?}"))
}

/// The engine's view of a harness client.
fn engine_auth(auth: HarnessAuth) -> AuthMethod {
    match auth {
        HarnessAuth::None => AuthMethod::None,
        HarnessAuth::Basic => AuthMethod::Basic,
        HarnessAuth::Post => AuthMethod::Post,
    }
}

/// A [`ClientConfig`] for `client`, endpoints from the engine's own discovery (DISC-1).
async fn config_for(engine: &OAuthClient, op: &OidcProvider, client: &TestClient) -> ClientConfig {
    let meta = bounded("discovery", engine.discover(&op.issuer))
        .await
        .unwrap();
    let mut config = ClientConfig {
        client_id: client.id.to_owned(),
        client_auth: ClientAuth::new(
            engine_auth(client.auth),
            client.secret.map(ClientSecret::new),
        )
        .unwrap(),
        scopes: SCOPES.iter().map(|s| (*s).to_owned()).collect(),
        ..ClientConfig::default()
    };
    config.fill_from(&meta);
    config
}

/// What came back to the redirect URI, parsed.
struct Callback {
    code: AuthCode,
    state: String,
    iss: Option<String>,
}

/// Plays the browser for `request` and parses the redirect it ends on.
async fn browse(request: &AuthorizationRequest) -> Callback {
    let location = bounded("browser", browse_authorization(request.url.as_str()))
        .await
        .unwrap();
    let url = url::Url::parse(&location).unwrap();
    assert!(
        location.starts_with(&request.redirect_uri),
        "redirected elsewhere: {}",
        url.path()
    );
    let get = |name: &str| {
        url.query_pairs()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.into_owned())
    };
    assert_eq!(get("error"), None, "the login failed");
    Callback {
        code: AuthCode::new(get("code").expect("no code in the callback")),
        state: get("state").expect("no state in the callback"),
        iss: get("iss"),
    }
}

/// A finished login: the tokens plus what the request kept for checks.
struct Login {
    tokens: TokenSet,
    nonce: Nonce,
    code: AuthCode,
    verifier_copy: String,
    redirect_uri: String,
}

/// A full authorization code + PKCE login through the engine, the harness as the browser.
/// Checks the callback's `state` (AUTHZ-2) and RFC 9207 `iss` (AUTHZ-4) on the way.
async fn login(engine: &OAuthClient, op: &OidcProvider, config: &ClientConfig) -> Login {
    let request = AuthorizationRequest::new(config, &redirect_uri(49_200)).unwrap();
    let callback = browse(&request).await;
    assert!(request.state.ct_eq(&callback.state), "state changed");
    assert_eq!(callback.iss.as_deref(), Some(op.issuer.as_str()));
    let AuthorizationRequest {
        verifier,
        nonce,
        redirect_uri,
        ..
    } = request;
    // Only for TOK-3 below: the engine itself never copies a verifier (PKCE-4).
    let verifier_copy = verifier.secret().to_owned();
    let started = SystemTime::now();
    let tokens = bounded(
        "code exchange",
        engine.exchange_code(config, &callback.code, verifier, &redirect_uri),
    )
    .await
    .unwrap();
    let finished = SystemTime::now();
    assert!(tokens.obtained_at >= started && tokens.obtained_at <= finished);
    Login {
        tokens,
        nonce: nonce.expect("openid requested, so a nonce is sent (AUTHZ-6)"),
        code: callback.code,
        verifier_copy,
        redirect_uri,
    }
}

/// TOK-5, EXP-1, TOK-6, AUTHZ-6 and the unverified claims of a fresh login's [`TokenSet`].
fn assert_login_tokens(login: &Login, client: &TestClient, issuer: &str) {
    let t = &login.tokens;
    assert_eq!(t.token_type, "Bearer", "TOK-5");
    assert!(!t.access_token.is_empty());
    assert!(t.refresh_token.as_ref().is_some_and(|r| !r.is_empty()));
    // EXP-1: expiry = send time + expires_in (the server's default access token TTL, 60 s).
    assert_eq!(t.lifetime, Some(Duration::from_secs(60)));
    assert!(!t.lifetime_defaulted);
    assert_eq!(t.expires_at, Some(t.obtained_at + Duration::from_secs(60)));
    let left = t
        .expires_at
        .unwrap()
        .duration_since(SystemTime::now())
        .unwrap();
    assert!(left > Duration::from_secs(45) && left <= Duration::from_secs(60));
    // TOK-6: the granted scope is recorded, not the requested one.
    assert_eq!(t.scopes, GRANTED);
    // The id_token's claims, decoded (unverified, display only).
    assert!(t.id_token.is_some());
    let claims = t.claims.as_ref().expect("id_token claims decoded");
    assert_eq!(claims.sub.as_deref(), Some(DEFAULT_LOGIN));
    assert_eq!(
        claims.email.as_deref(),
        Some(format!("{DEFAULT_LOGIN}@example.test").as_str())
    );
    assert_eq!(claims.iss.as_deref(), Some(issuer));
    assert!(claims.aud.iter().any(|a| a == client.id), "aud");
    assert!(claims.exp.is_some_and(|exp| exp > claims.iat.unwrap_or(0)));
    // DISC-5 minus the signature: the engine's own claim checks accept the real token...
    check_claims_unverified(claims, issuer, client.id, SystemTime::now()).unwrap();
    // ...and refuse it for another client or issuer.
    assert!(check_claims_unverified(claims, issuer, "someone-else", SystemTime::now()).is_err());
    assert!(
        check_claims_unverified(claims, "http://127.0.0.1:1", client.id, SystemTime::now())
            .is_err()
    );
    // AUTHZ-6: the nonce round-trips; another one is refused.
    t.check_nonce(&login.nonce).unwrap();
    assert!(matches!(
        t.check_nonce(&Nonce::new("another-nonce")),
        Err(OAuthError::NonceMismatch)
    ));
}

/// PKCE-1..3, TOK-1, TOK-2, SECRET-2 for one client, then TOK-3: the code works only once.
async fn code_pkce(client: TestClient) {
    let op = OidcProvider::shared().unwrap();
    let engine = engine();
    let config = config_for(&engine, op, &client).await;
    assert_eq!(config.client_auth.method(), engine_auth(client.auth));
    let login = login(&engine, op, &config).await;
    assert_login_tokens(&login, &client, &op.issuer);

    // REF-7 / SECRET-2: a confidential client with a wrong secret is refused with
    // `invalid_client`, a configuration error, before the code is even looked at.
    if client.secret.is_some() {
        let wrong = ClientConfig {
            client_auth: ClientAuth::new(
                config.client_auth.method(),
                Some(ClientSecret::new("wrong secret")),
            )
            .unwrap(),
            ..config.clone()
        };
        let err = bounded(
            "wrong secret",
            engine.exchange_code(
                &wrong,
                &login.code,
                PkceVerifier::new(login.verifier_copy.as_str()),
                &login.redirect_uri,
            ),
        )
        .await
        .unwrap_err();
        assert_eq!(err.code(), Some("invalid_client"), "{err}");
        assert!(err.is_config_error() && !err.is_transient(), "{err}");
    }

    let again = bounded(
        "code replay",
        engine.exchange_code(
            &config,
            &login.code,
            PkceVerifier::new(login.verifier_copy.as_str()),
            &login.redirect_uri,
        ),
    )
    .await
    .unwrap_err();
    assert!(again.is_invalid_grant(), "TOK-3: {again}");
}

/// DISC-1, DISC-3: discovery from the issuer, endpoints filled in (explicit ones win), and
/// an issuer that differs from the document's is refused.
#[tokio::test]
async fn interop_engine_discovery() {
    let op = OidcProvider::shared().unwrap();
    let engine = engine();
    let meta = bounded("discovery", engine.discover(&op.issuer))
        .await
        .unwrap();
    assert_eq!(meta.issuer, op.issuer);
    for (name, endpoint, path) in [
        ("authorization", &meta.authorization_endpoint, "/auth"),
        ("token", &meta.token_endpoint, "/token"),
        ("revocation", &meta.revocation_endpoint, "/token/revocation"),
        (
            "device",
            &meta.device_authorization_endpoint,
            "/device/auth",
        ),
        ("jwks", &meta.jwks_uri, "/jwks"),
    ] {
        assert_eq!(
            endpoint.as_ref().map(url::Url::as_str),
            Some(op.url(path).as_str()),
            "{name}"
        );
    }
    assert_eq!(meta.code_challenge_methods_supported, ["S256"]);
    assert!(meta.authorization_response_iss_parameter_supported);
    assert!(meta.scopes_supported.iter().any(|s| s == "offline_access"));

    // DISC-1: a field already set (from a provider file) wins over discovery.
    let explicit = url::Url::parse("http://127.0.0.1:1/my-token").unwrap();
    let mut config = ClientConfig {
        token_endpoint: Some(explicit.clone()),
        ..ClientConfig::default()
    };
    config.fill_from(&meta);
    assert_eq!(config.token_endpoint, Some(explicit));
    assert_eq!(config.issuer.as_deref(), Some(op.issuer.as_str()));
    assert_eq!(config.revocation_endpoint, meta.revocation_endpoint);

    // DISC-3: the same server under another spelling of its issuer is refused.
    let other_spellings = [
        format!("{}/", op.issuer),
        format!("http://localhost:{}", op.port),
    ];
    for wrong in other_spellings {
        let err = bounded("discovery", engine.discover(&wrong))
            .await
            .unwrap_err();
        match &err {
            OAuthError::IssuerMismatch { expected, got } => {
                assert_eq!(expected, &wrong);
                assert_eq!(got, &op.issuer);
            }
            other => panic!("{wrong}: expected IssuerMismatch, got {other}"),
        }
    }
}

/// PKCE-1..3, TOK-1/TOK-2: a public client (`none`: only `client_id` in the body).
#[tokio::test]
async fn interop_engine_code_pkce_public() {
    code_pkce(PUBLIC_CLIENT).await;
}

/// SECRET-2 with `client_secret_basic`: the secret holds ` :+%&=`, which the server only
/// accepts when form-urlencoded before base64 (RFC 6749 §2.3.1).
#[tokio::test]
async fn interop_engine_code_pkce_basic() {
    code_pkce(BASIC_CLIENT).await;
}

/// SECRET-2 with `client_secret_post`: `client_id` and `client_secret` in the body.
#[tokio::test]
async fn interop_engine_code_pkce_post() {
    code_pkce(POST_CLIENT).await;
}

/// PKCE-2 / ERR-2: a verifier that does not match the challenge gets `invalid_grant`, which
/// is not transient and is sent once: with a retry policy whose 9 retries would add seconds
/// of backoff, the call still returns at once.
#[tokio::test]
async fn interop_engine_wrong_verifier_invalid_grant() {
    let op = OidcProvider::shared().unwrap();
    let slow_retries = RetryPolicy {
        max_attempts: 10,
        base: Duration::from_secs(3),
        cap: Duration::from_secs(3),
        max_total: Duration::from_secs(120),
        ..RetryPolicy::default()
    };
    let engine = engine_with(slow_retries);
    let config = config_for(&engine, op, &BASIC_CLIENT).await;
    let request = AuthorizationRequest::new(&config, &redirect_uri(49_201)).unwrap();
    let callback = browse(&request).await;

    let wrong = PkcePair::generate().verifier;
    assert!(!wrong.ct_eq(request.verifier.secret()));
    let started = Instant::now();
    let err = bounded(
        "code exchange",
        engine.exchange_code(&config, &callback.code, wrong, &request.redirect_uri),
    )
    .await
    .unwrap_err();
    let took = started.elapsed();
    assert!(err.is_invalid_grant(), "{err}");
    assert!(err.is_token_error() && !err.is_transient(), "{err}");
    assert!(
        matches!(err, OAuthError::Server { status: 400, .. }),
        "{err}"
    );
    // Nine retries with full-jitter backoff in [0, 3 s] each stay under 2 s with
    // probability < 1e-7: a fast answer means one attempt.
    assert!(took < Duration::from_secs(2), "retried? took {took:?}");
}

/// REF-1, REF-3: a refresh rotates the refresh token; the old one then gets `invalid_grant`
/// (and oidc-provider's reuse detection revokes the whole grant, so the new one dies too).
#[tokio::test]
async fn interop_engine_refresh_rotation() {
    let op = OidcProvider::shared().unwrap();
    let engine = engine();
    for client in [PUBLIC_CLIENT, BASIC_CLIENT] {
        let config = config_for(&engine, op, &client).await;
        let first = login(&engine, op, &config).await.tokens;
        let old = first.refresh_token.clone().unwrap();

        let second = bounded("refresh", engine.refresh(&config, &old))
            .await
            .unwrap();
        let new = second.refresh_token.clone().expect("REF-3: rotated");
        assert_ne!(new, old, "{}: refresh token not rotated", client.id);
        assert_ne!(second.access_token, first.access_token);
        assert_eq!(second.token_type, "Bearer");
        assert_eq!(second.scopes, GRANTED, "TOK-6 on refresh");
        assert_eq!(
            second.expires_at,
            Some(second.obtained_at + Duration::from_secs(60))
        );
        assert!(second.obtained_at >= first.obtained_at);

        let err = bounded("old refresh token", engine.refresh(&config, &old))
            .await
            .unwrap_err();
        assert!(err.is_invalid_grant(), "{}: {err}", client.id);
        assert!(!err.is_transient());
        let err = bounded("new refresh token", engine.refresh(&config, &new))
            .await
            .unwrap_err();
        assert!(
            err.is_invalid_grant(),
            "{}: reuse detection: {err}",
            client.id
        );
    }
}

/// Whether the server still accepts `access` (userinfo: 200 live, 401 revoked). An oracle
/// for REV-1 only; the engine has no userinfo call.
async fn access_token_live(op: &OidcProvider, access: &AccessToken) -> bool {
    let response = reqwest::Client::new()
        .get(op.url("/me"))
        .bearer_auth(access.secret())
        .timeout(Duration::from_secs(10))
        .send()
        .await
        .unwrap();
    match response.status().as_u16() {
        200 => true,
        401 => false,
        other => panic!("userinfo answered {other}"),
    }
}

/// REV-1, REV-2: revoking the refresh and access tokens (client auth as configured, for all
/// three clients) is `Revoked` for both; both are refused afterwards; an unknown token is
/// `Revoked` too (RFC 7009 §2.2).
#[tokio::test]
async fn interop_engine_revocation() {
    let op = OidcProvider::shared().unwrap();
    let engine = engine();
    for client in [PUBLIC_CLIENT, BASIC_CLIENT, POST_CLIENT] {
        let config = config_for(&engine, op, &client).await;
        let tokens = login(&engine, op, &config).await.tokens;
        let refresh = tokens.refresh_token.clone().unwrap();
        assert!(access_token_live(op, &tokens.access_token).await);

        let outcome = bounded(
            "revoke",
            engine.revoke(&config, Some(&tokens.access_token), Some(&refresh)),
        )
        .await
        .unwrap();
        assert_eq!(outcome.refresh, Revocation::Revoked, "{}", client.id);
        assert_eq!(outcome.access, Revocation::Revoked, "{}", client.id);
        assert!(outcome.any_revoked());

        let err = bounded("refresh after revoke", engine.refresh(&config, &refresh))
            .await
            .unwrap_err();
        assert!(err.is_invalid_grant(), "{}: {err}", client.id);
        assert!(
            !access_token_live(op, &tokens.access_token).await,
            "{}: access token still accepted",
            client.id
        );
    }
    let config = config_for(&engine, op, &PUBLIC_CLIENT).await;
    let unknown = RefreshToken::new("not-a-token-this-server-issued");
    let outcome = bounded(
        "revoke unknown",
        engine.revoke(&config, None, Some(&unknown)),
    )
    .await
    .unwrap();
    assert_eq!(outcome.refresh, Revocation::Revoked, "REV-2");
    assert_eq!(outcome.access, Revocation::NotAttempted);
}

/// Polls with a cancel switch; `cancel_after` fires it (DEV-8), `None` keeps it off.
async fn poll(
    engine: &OAuthClient,
    config: &ClientConfig,
    auth: &authdeck::oauth::DeviceAuthorization,
    cancel_after: Option<Duration>,
) -> Result<TokenSet, OAuthError> {
    let (tx, rx) = watch::channel(false);
    let canceller = cancel_after.map(|after| {
        tokio::spawn(async move {
            tokio::time::sleep(after).await;
            let _ = tx.send(true);
        })
    });
    let result = bounded("device polling", engine.poll_device(config, auth, rx)).await;
    if let Some(task) = canceller {
        task.abort();
    }
    result
}

/// DEV-1..5: device authorization (the server sends no `interval`, so 5 s is assumed), polling
/// through `authorization_pending` (cancellable, DEV-8), approval in the browser, tokens. The
/// public client approves via `verification_uri_complete`, the post client by typing the
/// user code at `verification_uri` (DEV-3).
#[tokio::test]
async fn interop_engine_device_grant() {
    let op = OidcProvider::shared().unwrap();
    let engine = engine();
    for (client, typed) in [(PUBLIC_CLIENT, false), (POST_CLIENT, true)] {
        let config = config_for(&engine, op, &client).await;
        let mut auth = bounded("device authorization", engine.start_device(&config))
            .await
            .unwrap();
        assert_eq!(auth.interval, Duration::from_secs(5), "DEV-2 default");
        assert_eq!(auth.expires_in, Duration::from_secs(120));
        assert!(!auth.user_code.is_empty() && !auth.device_code.is_empty());
        assert_eq!(auth.verification_uri, op.url("/device"));
        let complete = auth.verification_uri_complete.clone().unwrap();
        assert!(complete.starts_with(&auth.verification_uri));
        // Poll fast: the 5 s default would make each poll wait 5 s (`interval` is public
        // for this, see DeviceAuthorization).
        auth.interval = Duration::from_millis(100);

        // Before approval every poll is `authorization_pending`: polling goes on until
        // cancelled.
        let pending = poll(&engine, &config, &auth, Some(Duration::from_millis(450))).await;
        assert!(
            matches!(pending, Err(OAuthError::Cancelled)),
            "{}: {pending:?}",
            client.id
        );

        // The browser approves while the engine polls. Concurrently on this task, not
        // spawned: the harness's browser future is not `Send` (its `stop: &dyn Fn` lacks
        // `Sync`).
        let approval = async {
            if typed {
                approve_device_with_code(&auth.verification_uri, &auth.user_code).await
            } else {
                approve_device(&complete).await
            }
        };
        let (approved, tokens) = tokio::join!(approval, poll(&engine, &config, &auth, None));
        approved.unwrap();
        let tokens = tokens.unwrap();
        assert_eq!(tokens.token_type, "Bearer");
        assert!(tokens.refresh_token.is_some(), "{}", client.id);
        assert_eq!(
            tokens.claims.as_ref().and_then(|c| c.sub.as_deref()),
            Some(DEFAULT_LOGIN)
        );
        // The `prompt=consent` rule that drops `offline_access` is an authorization
        // endpoint rule: the device grant keeps it.
        assert_eq!(tokens.scopes, SCOPES);
        assert_eq!(
            tokens.expires_at,
            Some(tokens.obtained_at + Duration::from_secs(60))
        );
    }
}

/// DEV-6: the user aborts on the confirmation page; polling stops with `access_denied`
/// (not a retry, not a timeout).
#[tokio::test]
async fn interop_engine_device_denied() {
    let op = OidcProvider::start_with(&ProviderOptions {
        device_code_ttl: Some(30),
        ..ProviderOptions::default()
    })
    .unwrap();
    let engine = engine();
    let config = config_for(&engine, &op, &PUBLIC_CLIENT).await;
    let mut auth = bounded("device authorization", engine.start_device(&config))
        .await
        .unwrap();
    assert_eq!(auth.expires_in, Duration::from_secs(30));
    auth.interval = Duration::from_millis(100);
    let uri = auth.verification_uri_complete.clone().unwrap();
    let refused = bounded(
        "denying browser",
        Browser::new().unwrap().denying().approve_device(&uri, None),
    )
    .await;
    assert!(refused.is_err(), "the browser was not refused");

    let started = Instant::now();
    let err = poll(&engine, &config, &auth, None).await.unwrap_err();
    assert_eq!(err.code(), Some("access_denied"), "{err}");
    assert!(!err.is_transient());
    assert!(started.elapsed() < Duration::from_secs(5), "kept polling");
}

/// DISC-5 against a real server: oidc-provider signs its id_tokens (RS256 by default) with
/// the keys it publishes at its discovered `jwks_uri`. The engine verifies a real login's and
/// a real refresh's id_token; the same token with one payload byte changed, or checked for
/// another client, issuer or nonce, is refused.
#[tokio::test]
async fn interop_engine_disc5_real_id_token_verifies_and_a_tampered_one_fails() {
    let op = OidcProvider::shared().unwrap();
    let engine = engine();
    let client = PUBLIC_CLIENT;
    let meta = bounded("discovery", engine.discover(&op.issuer))
        .await
        .unwrap();
    let jwks_uri = meta.jwks_uri.expect("oidc-provider advertises a jwks_uri");
    let config = config_for(&engine, op, &client).await;
    let login = login(&engine, op, &config).await;
    let id_token = login.tokens.id_token.clone().expect("an id_token");
    let check = IdTokenCheck {
        issuer: &op.issuer,
        issuer_aliases: &[],
        jwks_uri: &jwks_uri,
        client_id: client.id,
        nonce: Some(&login.nonce),
        subject: None,
        now: SystemTime::now(),
    };
    let claims = bounded("verify", engine.verify_id_token(&id_token, &check))
        .await
        .unwrap();
    assert_eq!(claims.sub.as_deref(), Some(DEFAULT_LOGIN));
    let parts: Vec<&str> = id_token.secret().split('.').collect();
    let header: serde_json::Value =
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[0]).unwrap()).unwrap();
    assert_eq!(header["alg"], "RS256", "oidc-provider's default");
    assert!(header["kid"].is_string());

    // The payload altered (another subject), the signature kept.
    let mut payload: serde_json::Value =
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[1]).unwrap()).unwrap();
    payload["sub"] = "someone-else".into();
    let forged = IdToken::new(format!(
        "{}.{}.{}",
        parts[0],
        URL_SAFE_NO_PAD.encode(payload.to_string()),
        parts[2]
    ));
    let err = bounded("forged", engine.verify_id_token(&forged, &check))
        .await
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "the ID token was rejected (DISC-5): signature does not verify"
    );
    // Right signature, wrong expectations.
    let other_client = IdTokenCheck {
        client_id: "someone-else",
        ..check.clone()
    };
    let err = bounded("aud", engine.verify_id_token(&id_token, &other_client))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("audience"), "{err}");
    let other_issuer = IdTokenCheck {
        issuer: "http://127.0.0.1:1",
        ..check.clone()
    };
    let err = bounded("iss", engine.verify_id_token(&id_token, &other_issuer))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("issuer mismatch"), "{err}");
    let nonce = Nonce::new("another-nonce");
    let other_nonce = IdTokenCheck {
        nonce: Some(&nonce),
        ..check.clone()
    };
    let err = bounded("nonce", engine.verify_id_token(&id_token, &other_nonce))
        .await
        .unwrap_err();
    assert!(matches!(err, OAuthError::NonceMismatch), "{err}");

    // OIDC Core §12.2: the refresh response's id_token verifies too (no nonce, same sub).
    let rt = login.tokens.refresh_token.clone().unwrap();
    let refreshed = bounded("refresh", engine.refresh(&config, &rt))
        .await
        .unwrap();
    let again = refreshed
        .id_token
        .expect("oidc-provider sends an id_token on refresh");
    let on_refresh = IdTokenCheck {
        nonce: None,
        subject: Some(DEFAULT_LOGIN),
        now: SystemTime::now(),
        ..check
    };
    bounded(
        "verify refresh",
        engine.verify_id_token(&again, &on_refresh),
    )
    .await
    .unwrap();
}
