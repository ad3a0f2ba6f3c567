//! Integration tests of the `oauth` engine through its public API only: authorization URL →
//! code exchange (the stub checks PKCE S256 against the URL's challenge) → refresh with
//! rotation → revocation, against a tiny scripted token endpoint on 127.0.0.1:0.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use authdeck::oauth::ClientAuth;
use authdeck::oauth::pkce::challenge_s256;
use authdeck::oauth::testutil::{Reply as Up, Stub};
use authdeck::oauth::{
    AuthorizationRequest, ClientConfig, ClientSettings, OAuthClient, RetryPolicy, Revocation,
};
use authdeck::secret::{AuthCode, ClientSecret};
use url::Url;

/// Records every form posted and the stub that answers it with `answer(path, form)` (the
/// suite's shared HTTP stub); the stub stops when dropped.
type Forms = Arc<Mutex<Vec<Vec<(String, String)>>>>;

/// Serves form POSTs with `answer(path, form)`, recording each form.
async fn serve(
    answer: impl Fn(&str, &[(String, String)]) -> (u16, String) + Send + Sync + 'static,
) -> (String, Forms, Stub) {
    let seen: Forms = Arc::default();
    let log = seen.clone();
    let stub = Stub::serve(move |req| {
        let form: Vec<(String, String)> = form_urlencoded::parse(req.body.as_bytes())
            .into_owned()
            .collect();
        log.lock().unwrap().push(form.clone());
        let (status, json) = answer(&req.path, &form);
        Up::json(status, &json)
    })
    .await;
    (stub.base(), seen, stub)
}

fn get<'a>(form: &'a [(String, String)], key: &str) -> Option<&'a str> {
    form.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
}

fn client() -> OAuthClient {
    OAuthClient::with_settings(ClientSettings {
        retry: RetryPolicy {
            base: Duration::from_millis(5),
            cap: Duration::from_millis(10),
            ..RetryPolicy::default()
        },
        system_proxy: false,
        ..ClientSettings::default()
    })
    .unwrap()
}

#[tokio::test]
async fn pkce2_tok2_ref3_rev1_login_refresh_revoke_through_public_api() {
    let challenge = Arc::new(Mutex::new(String::new()));
    let expected = challenge.clone();
    let (base, seen, _stub) = serve(move |path, form| match (path, get(form, "grant_type")) {
        ("/token", Some("authorization_code")) => {
            let ok = get(form, "code_verifier").map(challenge_s256).as_deref()
                == Some(expected.lock().unwrap().as_str());
            if ok && get(form, "code") == Some("c1") {
                (200, r#"{"access_token":"at-1","token_type":"Bearer","expires_in":3600,"refresh_token":"rt-1"}"#.into())
            } else {
                (400, r#"{"error":"invalid_grant"}"#.into())
            }
        }
        ("/token", Some("refresh_token")) if get(form, "refresh_token") == Some("rt-1") => {
            (200, r#"{"access_token":"at-2","token_type":"bearer","expires_in":"60","refresh_token":"rt-2"}"#.into())
        }
        ("/token", _) => (400, r#"{"error":"invalid_grant"}"#.into()),
        ("/revoke", _) => (200, String::new()),
        _ => (404, "{}".into()),
    })
    .await;
    let config = ClientConfig {
        client_id: "cli".into(),
        client_auth: ClientAuth::Post(ClientSecret::new("sec")),
        authorization_endpoint: Some(Url::parse(&format!("{base}/authorize")).unwrap()),
        token_endpoint: Some(Url::parse(&format!("{base}/token")).unwrap()),
        revocation_endpoint: Some(Url::parse(&format!("{base}/revoke")).unwrap()),
        scopes: vec!["read".into()],
        ..ClientConfig::default()
    };
    let req = AuthorizationRequest::new(&config, "http://127.0.0.1:9/cb").unwrap();
    let sent_challenge = req
        .url
        .query_pairs()
        .find(|(k, _)| k == "code_challenge")
        .map(|(_, v)| v.into_owned())
        .unwrap();
    *challenge.lock().unwrap() = sent_challenge;

    let client = client();
    let tokens = client
        .exchange_code(
            &config,
            &AuthCode::new("c1"),
            req.verifier,
            &req.redirect_uri,
        )
        .await
        .unwrap();
    assert_eq!(tokens.access_token.secret(), "at-1");
    assert_eq!(tokens.scopes, ["read"]);
    let rt1 = tokens.refresh_token.unwrap();

    let refreshed = client.refresh(&config, &rt1).await.unwrap();
    assert_eq!(refreshed.access_token.secret(), "at-2");
    let rt2 = refreshed.refresh_token.unwrap();
    assert_eq!(rt2.secret(), "rt-2");
    // The rotated-out token is refused: invalid_grant, tried once.
    let before = seen.lock().unwrap().len();
    let e = client.refresh(&config, &rt2).await.unwrap_err();
    assert!(e.is_invalid_grant());
    assert_eq!(seen.lock().unwrap().len(), before + 1);

    let out = client
        .revoke(&config, Some(&refreshed.access_token), Some(&rt2))
        .await
        .unwrap();
    assert_eq!(out.refresh, Revocation::Revoked);
    assert_eq!(out.access, Revocation::Revoked);
    let forms = seen.lock().unwrap().clone();
    assert_eq!(
        get(&forms[0], "redirect_uri"),
        Some("http://127.0.0.1:9/cb")
    );
    assert_eq!(get(&forms[0], "client_secret"), Some("sec"));
}

#[tokio::test]
async fn pkce2_wrong_verifier_is_invalid_grant() {
    let (base, _seen, _stub) = serve(|_, form| {
        if get(form, "code_verifier").map(challenge_s256).as_deref() == Some("never") {
            (200, "{}".into())
        } else {
            (
                400,
                r#"{"error":"invalid_grant","error_description":"PKCE verification failed"}"#
                    .into(),
            )
        }
    })
    .await;
    let config = ClientConfig {
        client_id: "cli".into(),
        authorization_endpoint: Some(Url::parse(&format!("{base}/authorize")).unwrap()),
        token_endpoint: Some(Url::parse(&format!("{base}/token")).unwrap()),
        ..ClientConfig::default()
    };
    let req = AuthorizationRequest::new(&config, "http://127.0.0.1:9/cb").unwrap();
    let e = client()
        .exchange_code(
            &config,
            &AuthCode::new("c1"),
            req.verifier,
            &req.redirect_uri,
        )
        .await
        .unwrap_err();
    assert!(e.is_invalid_grant());
    assert!(e.to_string().contains("PKCE verification failed"));
}
