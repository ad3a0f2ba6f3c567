//! Interop smoke tests against the real `oidc-provider` (npm), with raw reqwest and a
//! hand-built PKCE only: they prove the server, its configuration and the browser helper
//! (tests/integration/oidc_provider.rs), independently of authdeck's own OAuth client.
//! Each test starts its own server, so they are independent and run in parallel.

use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use reqwest::StatusCode;
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::oidc_provider::{
    BASIC_CLIENT, Browser, CLIENTS, ClientAuth, OidcProvider, POST_CLIENT, PUBLIC_CLIENT,
    ProviderOptions, TestClient, approve_device, approve_device_with_code, browse_authorization,
    deliver_callback, redirect_uri,
};

/// A PKCE pair (RFC 7636): 32 random bytes → 43-char verifier, S256 challenge.
fn pkce() -> (String, String) {
    let verifier = URL_SAFE_NO_PAD.encode(rand::random::<[u8; 32]>());
    let challenge = URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()));
    (verifier, challenge)
}

fn random_token() -> String {
    URL_SAFE_NO_PAD.encode(rand::random::<[u8; 16]>())
}

fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap()
}

async fn discovery(op: &OidcProvider) -> Value {
    http()
        .get(op.discovery_url())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

fn endpoint(doc: &Value, name: &str) -> String {
    doc[name]
        .as_str()
        .unwrap_or_else(|| panic!("discovery lacks {name}"))
        .to_owned()
}

/// One started login: what the client keeps until the callback.
struct Login {
    url: String,
    verifier: String,
    state: String,
    redirect_uri: String,
}

fn authorization_request(op: &OidcProvider, client: &TestClient, port: u16) -> Login {
    let (verifier, challenge) = pkce();
    let state = random_token();
    let redirect_uri = redirect_uri(port);
    let mut url = url::Url::parse(&op.url("/auth")).unwrap();
    url.query_pairs_mut()
        .append_pair("response_type", "code")
        .append_pair("client_id", client.id)
        .append_pair("redirect_uri", &redirect_uri)
        .append_pair("scope", "openid email profile offline_access")
        .append_pair("state", &state)
        .append_pair("nonce", &random_token())
        .append_pair("code_challenge", &challenge)
        .append_pair("code_challenge_method", "S256");
    Login {
        url: url.to_string(),
        verifier,
        state,
        redirect_uri,
    }
}

/// Runs the browser and returns the code from the callback URL, checking `state` and `iss`.
async fn login_code(op: &OidcProvider, login: &Login) -> String {
    let location = browse_authorization(&login.url)
        .await
        .unwrap_or_else(|e| panic!("{e}\n{}", op.stderr()));
    assert!(location.starts_with(&login.redirect_uri), "{location}");
    let callback = url::Url::parse(&location).unwrap();
    let query = |k: &str| {
        callback
            .query_pairs()
            .find(|(n, _)| n == k)
            .map(|(_, v)| v.into_owned())
    };
    assert_eq!(query("error"), None, "{location}");
    assert_eq!(query("state").as_deref(), Some(login.state.as_str()));
    // RFC 9207: oidc-provider sends `iss`, which must be the issuer.
    assert_eq!(query("iss").as_deref(), Some(op.issuer.as_str()));
    query("code").expect("code in callback")
}

/// RFC 6749 §2.3.1: id and secret each form-urlencoded, then `id:secret` in base64.
fn basic_auth(id: &str, secret: &str) -> String {
    let enc = |s: &str| form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
    format!(
        "Basic {}",
        STANDARD.encode(format!("{}:{}", enc(id), enc(secret)))
    )
}

/// POSTs a form to the token endpoint (or any endpoint) with `client`'s authentication.
async fn post_as(client: &TestClient, url: &str, params: &[(&str, &str)]) -> (StatusCode, Value) {
    let mut form: Vec<(&str, &str)> = params.to_vec();
    let mut request = http().post(url).header("Accept", "application/json");
    match client.auth {
        ClientAuth::None => form.push(("client_id", client.id)),
        ClientAuth::Basic => {
            request = request.header(
                "Authorization",
                basic_auth(client.id, client.secret.unwrap()),
            );
        }
        ClientAuth::Post => {
            form.push(("client_id", client.id));
            form.push(("client_secret", client.secret.unwrap()));
        }
    }
    let response = request.form(&form).send().await.unwrap();
    let status = response.status();
    let text = response.text().await.unwrap();
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

async fn exchange(
    client: &TestClient,
    token_endpoint: &str,
    login: &Login,
    code: &str,
) -> (StatusCode, Value) {
    post_as(
        client,
        token_endpoint,
        &[
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", &login.redirect_uri),
            ("code_verifier", &login.verifier),
        ],
    )
    .await
}

async fn refresh(
    client: &TestClient,
    token_endpoint: &str,
    refresh_token: &str,
) -> (StatusCode, Value) {
    post_as(
        client,
        token_endpoint,
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", refresh_token),
        ],
    )
    .await
}

#[track_caller]
fn assert_tokens(status: StatusCode, body: &Value) {
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(
        body["access_token"].as_str().is_some_and(|t| !t.is_empty()),
        "{body}"
    );
    assert!(
        body["token_type"]
            .as_str()
            .is_some_and(|t| t.eq_ignore_ascii_case("bearer")),
        "{body}"
    );
    assert!(
        body["refresh_token"]
            .as_str()
            .is_some_and(|t| !t.is_empty()),
        "{body}"
    );
    assert!(body["expires_in"].as_u64().is_some_and(|s| s > 0), "{body}");
}

#[track_caller]
fn assert_oauth_error(status: StatusCode, body: &Value, error: &str) {
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(body["error"], error, "{body}");
}

/// A full login (browser + exchange) for `client`; returns the token response.
async fn logged_in(op: &OidcProvider, client: &TestClient) -> (String, Value) {
    let token_endpoint = endpoint(&discovery(op).await, "token_endpoint");
    let login = authorization_request(op, client, 49_152);
    let code = login_code(op, &login).await;
    let (status, body) = exchange(client, &token_endpoint, &login, &code).await;
    assert_tokens(status, &body);
    (token_endpoint, body)
}

#[tokio::test]
async fn interop_discovery_document() {
    let op = OidcProvider::shared().unwrap();
    let doc = discovery(op).await;
    assert_eq!(doc["issuer"], op.issuer.as_str());
    for name in [
        "authorization_endpoint",
        "token_endpoint",
        "revocation_endpoint",
        "device_authorization_endpoint",
        "jwks_uri",
    ] {
        assert!(
            endpoint(&doc, name).starts_with(&op.issuer),
            "{name}: {doc}"
        );
    }
    let list = |name: &str| doc[name].as_array().cloned().unwrap_or_default();
    assert_eq!(
        list("code_challenge_methods_supported"),
        vec![Value::from("S256")]
    );
    for grant in [
        "authorization_code",
        "refresh_token",
        "urn:ietf:params:oauth:grant-type:device_code",
    ] {
        assert!(
            list("grant_types_supported").contains(&Value::from(grant)),
            "{grant}"
        );
    }
    for method in ["none", "client_secret_basic", "client_secret_post"] {
        assert!(
            list("token_endpoint_auth_methods_supported").contains(&Value::from(method)),
            "{method}"
        );
    }
    assert!(list("scopes_supported").contains(&Value::from("offline_access")));
    assert_eq!(doc["authorization_response_iss_parameter_supported"], true);
    // RFC 8414's well-known path is served too, with the same issuer.
    let url = op.url("/.well-known/oauth-authorization-server");
    let rfc8414: Value = http().get(url).send().await.unwrap().json().await.unwrap();
    assert_eq!(rfc8414["issuer"], op.issuer.as_str());
}

/// PKCE-2/PKCE-3, TOK-2: code + S256 for each client, each authenticating its own way, on
/// loopback redirect URIs with different ports (RFC 8252 §7.3 port flexibility).
#[tokio::test]
async fn interop_code_pkce_all_three_clients() {
    let op = OidcProvider::start().unwrap();
    let token_endpoint = endpoint(&discovery(&op).await, "token_endpoint");
    for (i, client) in CLIENTS.iter().enumerate() {
        let login = authorization_request(&op, client, 50_000 + u16::try_from(i).unwrap());
        let code = login_code(&op, &login).await;
        let (status, body) = exchange(client, &token_endpoint, &login, &code).await;
        assert_tokens(status, &body);
        assert!(body["id_token"].as_str().is_some(), "{}: {body}", client.id);
        // oidc-provider drops `offline_access` without `prompt=consent`; the server issues a
        // refresh token anyway (issueRefreshToken), so the granted scope lacks it.
        assert_eq!(
            body["scope"], "openid email profile",
            "{}: {body}",
            client.id
        );
        // TOK-3: a code works once.
        let (status, body) = exchange(client, &token_endpoint, &login, &code).await;
        assert_oauth_error(status, &body, "invalid_grant");
    }
}

/// The whole browser round trip ends at a real loopback listener: the callback request it
/// receives carries the code, state and iss, and the browser sees the listener's page.
#[tokio::test]
async fn interop_callback_reaches_loopback_listener() {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let op = OidcProvider::start().unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let server = tokio::spawn(async move {
        let (mut stream, _) = listener.accept().await.unwrap();
        let mut head = vec![0; 8192];
        let n = stream.read(&mut head).await.unwrap();
        let page = "HTTP/1.1 200 OK\r\ncontent-length: 9\r\nconnection: close\r\n\r\nlogged in";
        stream.write_all(page.as_bytes()).await.unwrap();
        String::from_utf8_lossy(&head[..n]).into_owned()
    });
    let login = authorization_request(&op, &PUBLIC_CLIENT, port);
    let location = browse_authorization(&login.url).await.unwrap();
    let (status, body) = deliver_callback(&location).await.unwrap();
    assert_eq!((status, body.as_str()), (200, "logged in"));
    let request = tokio::time::timeout(Duration::from_secs(5), server)
        .await
        .unwrap()
        .unwrap();
    let request_line = request.lines().next().unwrap();
    assert!(
        request_line.starts_with("GET /callback?code="),
        "{request_line}"
    );
    assert!(
        request_line.contains(&format!("state={}", login.state)),
        "{request_line}"
    );
}

/// The id_token carries the login typed in the browser as `sub`.
#[tokio::test]
async fn interop_id_token_subject_is_the_browser_login() {
    let op = OidcProvider::start().unwrap();
    let token_endpoint = endpoint(&discovery(&op).await, "token_endpoint");
    let login = authorization_request(&op, &PUBLIC_CLIENT, 50_100);
    let location = Browser::with_login("bob")
        .unwrap()
        .authorize(&login.url)
        .await
        .unwrap();
    let code = url::Url::parse(&location)
        .unwrap()
        .query_pairs()
        .find(|(k, _)| k == "code")
        .unwrap()
        .1
        .into_owned();
    let (status, body) = exchange(&PUBLIC_CLIENT, &token_endpoint, &login, &code).await;
    assert_tokens(status, &body);
    let payload = body["id_token"]
        .as_str()
        .unwrap()
        .split('.')
        .nth(1)
        .unwrap();
    let claims: Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap();
    assert_eq!(claims["sub"], "bob");
    assert_eq!(claims["email"], "bob@example.test");
    assert_eq!(claims["iss"], op.issuer.as_str());
}

/// RFC 6749 §2.3.1: the basic client's secret holds reserved characters; sending it without
/// form-urlencoding is refused, so the encoding in the tests above is really exercised.
#[tokio::test]
async fn interop_basic_auth_requires_form_urlencoding() {
    let op = OidcProvider::shared().unwrap();
    let token_endpoint = endpoint(&discovery(op).await, "token_endpoint");
    let raw = format!("{}:{}", BASIC_CLIENT.id, BASIC_CLIENT.secret.unwrap());
    let response = http()
        .post(&token_endpoint)
        .header("Authorization", format!("Basic {}", STANDARD.encode(raw)))
        .form(&[("grant_type", "refresh_token"), ("refresh_token", "x")])
        .send()
        .await
        .unwrap();
    // Undecodable (`%ch`) → 400 invalid_request; decodable but wrong → 401 invalid_client.
    let status = response.status();
    let body: Value = response.json().await.unwrap();
    assert_eq!(
        (status, &body["error"]),
        (StatusCode::BAD_REQUEST, &Value::from("invalid_request")),
        "{body}"
    );
}

/// PKCE-2: a wrong `code_verifier` gets 400 invalid_grant (and burns nothing else).
#[tokio::test]
async fn interop_wrong_code_verifier_is_invalid_grant() {
    let op = OidcProvider::shared().unwrap();
    let token_endpoint = endpoint(&discovery(op).await, "token_endpoint");
    let mut login = authorization_request(op, &POST_CLIENT, 50_200);
    let code = login_code(op, &login).await;
    login.verifier = pkce().0;
    let (status, body) = exchange(&POST_CLIENT, &token_endpoint, &login, &code).await;
    assert_oauth_error(status, &body, "invalid_grant");
}

/// PKCE-3: PKCE is required for every client, confidential ones too.
#[tokio::test]
async fn interop_pkce_required_for_confidential_client() {
    let op = OidcProvider::shared().unwrap();
    let login = authorization_request(op, &BASIC_CLIENT, 50_300);
    let mut url = url::Url::parse(&login.url).unwrap();
    let without: Vec<(String, String)> = url
        .query_pairs()
        .filter(|(k, _)| !k.starts_with("code_challenge"))
        .map(|(k, v)| (k.into(), v.into()))
        .collect();
    url.query_pairs_mut().clear().extend_pairs(without);
    let location = browse_authorization(url.as_str()).await.unwrap();
    let callback = url::Url::parse(&location).unwrap();
    let error = callback
        .query_pairs()
        .find(|(k, _)| k == "error")
        .map(|(_, v)| v.into_owned());
    assert_eq!(error.as_deref(), Some("invalid_request"), "{location}");
}

/// CB-8: a user who cancels the login page sends `error=access_denied` to the redirect URI.
#[tokio::test]
async fn interop_denied_login_redirects_access_denied() {
    let op = OidcProvider::shared().unwrap();
    let login = authorization_request(op, &PUBLIC_CLIENT, 50_400);
    let location = Browser::new()
        .unwrap()
        .denying()
        .authorize(&login.url)
        .await
        .unwrap();
    let callback = url::Url::parse(&location).unwrap();
    let query = |k: &str| {
        callback
            .query_pairs()
            .find(|(n, _)| n == k)
            .map(|(_, v)| v.into_owned())
    };
    assert_eq!(
        query("error").as_deref(),
        Some("access_denied"),
        "{location}"
    );
    assert_eq!(query("state").as_deref(), Some(login.state.as_str()));
    assert_eq!(query("code"), None);
}

/// REF-3: every refresh rotates the refresh token; the old one is refused afterwards, and
/// (oidc-provider's reuse detection) replaying it revokes the whole grant.
#[tokio::test]
async fn interop_refresh_rotation_refuses_old_token() {
    let op = OidcProvider::start().unwrap();
    for client in [BASIC_CLIENT, PUBLIC_CLIENT] {
        let (token_endpoint, first) = logged_in(&op, &client).await;
        let old = first["refresh_token"].as_str().unwrap();
        let (status, second) = refresh(&client, &token_endpoint, old).await;
        assert_tokens(status, &second);
        let new = second["refresh_token"].as_str().unwrap();
        assert_ne!(new, old, "{}: refresh token not rotated", client.id);
        assert_ne!(second["access_token"], first["access_token"]);

        let (status, body) = refresh(&client, &token_endpoint, old).await;
        assert_oauth_error(status, &body, "invalid_grant");
        let (status, body) = refresh(&client, &token_endpoint, new).await;
        assert_oauth_error(status, &body, "invalid_grant");
    }
}

/// REV-1/REV-2 (RFC 7009): revoking the refresh token gives 200 and the token is refused
/// afterwards; an unknown token is also 200.
#[tokio::test]
async fn interop_revocation_refuses_refresh_token() {
    let op = OidcProvider::start().unwrap();
    let doc = discovery(&op).await;
    let revocation = endpoint(&doc, "revocation_endpoint");
    for client in CLIENTS {
        let (token_endpoint, tokens) = logged_in(&op, &client).await;
        let refresh_token = tokens["refresh_token"].as_str().unwrap();
        let params = [
            ("token", refresh_token),
            ("token_type_hint", "refresh_token"),
        ];
        let (status, body) = post_as(&client, &revocation, &params).await;
        assert_eq!(status, StatusCode::OK, "{}: {body}", client.id);
        let (status, body) = refresh(&client, &token_endpoint, refresh_token).await;
        assert_oauth_error(status, &body, "invalid_grant");
    }
    let (status, body) = post_as(&PUBLIC_CLIENT, &revocation, &[("token", "unknown-token")]).await;
    assert_eq!(status, StatusCode::OK, "{body}");
}

/// Short lifetimes are configurable per server: `expires_in` follows the option.
#[tokio::test]
async fn interop_access_token_ttl_is_configurable() {
    let options = ProviderOptions {
        access_token_ttl: Some(7),
        ..ProviderOptions::default()
    };
    let op = OidcProvider::start_with(&options).unwrap();
    let (_, tokens) = logged_in(&op, &PUBLIC_CLIENT).await;
    assert_eq!(tokens["expires_in"], 7, "{tokens}");
}

/// Extra redirect URIs (e.g. a proxy's fixed one) can be registered per server.
#[tokio::test]
async fn interop_extra_redirect_uri_is_accepted() {
    let extra = "http://localhost:3100/auth/callback";
    let options = ProviderOptions {
        extra_redirect_uris: vec![extra.to_owned()],
        ..ProviderOptions::default()
    };
    let op = OidcProvider::start_with(&options).unwrap();
    let mut login = authorization_request(&op, &BASIC_CLIENT, 1);
    login.url = login
        .url
        .replace(&urlencode(&login.redirect_uri), &urlencode(extra));
    login.redirect_uri = extra.to_owned();
    let code = login_code(&op, &login).await;
    let token_endpoint = endpoint(&discovery(&op).await, "token_endpoint");
    let (status, body) = exchange(&BASIC_CLIENT, &token_endpoint, &login, &code).await;
    assert_tokens(status, &body);
}

fn urlencode(s: &str) -> String {
    form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

/// An unregistered redirect URI is never redirected to: the browser gets an error page.
#[tokio::test]
async fn interop_unregistered_redirect_uri_is_refused() {
    let op = OidcProvider::shared().unwrap();
    let login = authorization_request(op, &PUBLIC_CLIENT, 50_500);
    let evil = "http://attacker.example/callback";
    let url = login
        .url
        .replace(&urlencode(&login.redirect_uri), &urlencode(evil));
    let error = browse_authorization(&url).await.unwrap_err();
    assert!(
        error.contains("HTTP 400") && error.contains("redirect_uri"),
        "{error}"
    );
}

/// DEV-1/DEV-4 (RFC 8628): device authorization, `authorization_pending` until the user
/// approves in the browser, then tokens; for both the complete URI and a typed user code.
#[tokio::test]
async fn interop_device_grant() {
    let op = OidcProvider::start().unwrap();
    let doc = discovery(&op).await;
    let device_endpoint = endpoint(&doc, "device_authorization_endpoint");
    let token_endpoint = endpoint(&doc, "token_endpoint");
    for (client, typed) in [(PUBLIC_CLIENT, false), (POST_CLIENT, true)] {
        let (status, device) = post_as(
            &client,
            &device_endpoint,
            &[("scope", "openid offline_access")],
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{device}");
        let device_code = device["device_code"].as_str().unwrap();
        let grant = [
            ("grant_type", "urn:ietf:params:oauth:grant-type:device_code"),
            ("device_code", device_code),
        ];

        let (status, body) = post_as(&client, &token_endpoint, &grant).await;
        assert_oauth_error(status, &body, "authorization_pending");

        if typed {
            let uri = device["verification_uri"].as_str().unwrap();
            approve_device_with_code(uri, device["user_code"].as_str().unwrap())
                .await
                .unwrap();
        } else {
            approve_device(device["verification_uri_complete"].as_str().unwrap())
                .await
                .unwrap();
        }
        let tokens = poll_device_token(&client, &token_endpoint, &grant).await;
        assert_tokens(StatusCode::OK, &tokens);
    }
}

/// DEV-6: a user who aborts on the confirmation page turns the poll into `access_denied`.
#[tokio::test]
async fn interop_device_grant_denied() {
    let op = OidcProvider::start().unwrap();
    let doc = discovery(&op).await;
    let (status, device) = post_as(
        &PUBLIC_CLIENT,
        &endpoint(&doc, "device_authorization_endpoint"),
        &[("scope", "openid")],
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{device}");
    let uri = device["verification_uri_complete"].as_str().unwrap();
    let refused = Browser::new()
        .unwrap()
        .denying()
        .approve_device(uri, None)
        .await;
    let message = refused.unwrap_err();
    assert!(message.contains("interrupted"), "{message}");
    let grant = [
        ("grant_type", "urn:ietf:params:oauth:grant-type:device_code"),
        ("device_code", device["device_code"].as_str().unwrap()),
    ];
    let (status, body) = post_as(&PUBLIC_CLIENT, &endpoint(&doc, "token_endpoint"), &grant).await;
    assert_oauth_error(status, &body, "access_denied");
}

/// Polls the token endpoint (bounded) while it answers `authorization_pending`.
async fn poll_device_token(
    client: &TestClient,
    token_endpoint: &str,
    grant: &[(&str, &str)],
) -> Value {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (status, body) = post_as(client, token_endpoint, grant).await;
        if status == StatusCode::OK {
            return body;
        }
        assert_oauth_error(status, &body, "authorization_pending");
        assert!(Instant::now() < deadline, "device grant still pending");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The server exits on its own when its stdin closes, as it does when the test process dies,
/// so no orphan is left; and a dropped server no longer answers.
#[tokio::test]
async fn interop_server_exits_when_stdin_closes() {
    let op = OidcProvider::start().unwrap();
    let url = op.discovery_url();
    assert!(http().get(&url).send().await.unwrap().status().is_success());
    let status = op.close_stdin_and_wait(Duration::from_secs(10)).unwrap();
    assert!(status.success(), "{status}");
    assert!(
        http().get(&url).send().await.is_err(),
        "server still answering"
    );

    let op = OidcProvider::start().unwrap();
    let url = op.discovery_url();
    drop(op);
    assert!(
        http().get(&url).send().await.is_err(),
        "dropped server still answering"
    );
}

/// A mistyped user code is refused on the verification page (the browser reports it).
#[tokio::test]
async fn interop_device_wrong_user_code_is_refused() {
    let op = OidcProvider::shared().unwrap();
    let doc = discovery(op).await;
    let (status, device) = post_as(
        &PUBLIC_CLIENT,
        &endpoint(&doc, "device_authorization_endpoint"),
        &[("scope", "openid")],
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{device}");
    let uri = device["verification_uri"].as_str().unwrap();
    let message = approve_device_with_code(uri, "WRONG-CODE")
        .await
        .unwrap_err();
    assert!(message.contains("incorrect"), "{message}");
}
