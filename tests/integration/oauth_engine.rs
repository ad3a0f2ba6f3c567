//! Integration tests of the `oauth` engine through its public API only: authorization URL →
//! code exchange (the stub checks PKCE S256 against the URL's challenge) → refresh with
//! rotation → revocation, against a tiny scripted token endpoint on 127.0.0.1:0.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use authdeck::oauth::ClientAuth;
use authdeck::oauth::pkce::challenge_s256;
use authdeck::oauth::{
    AuthorizationRequest, ClientConfig, ClientSettings, OAuthClient, RetryPolicy, Revocation,
};
use authdeck::secret::{AuthCode, ClientSecret};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use url::Url;

/// Serves form POSTs with `answer(path, form)`, recording each form; stops with the test.
async fn serve(
    answer: impl Fn(&str, &[(String, String)]) -> (u16, String) + Send + Sync + 'static,
) -> (String, Arc<Mutex<Vec<Vec<(String, String)>>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = seen.clone();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            let mut buf = Vec::new();
            let mut chunk = [0u8; 4096];
            let _ = tokio::time::timeout(Duration::from_secs(5), async {
                loop {
                    let n = s.read(&mut chunk).await.unwrap_or(0);
                    if n == 0 {
                        break;
                    }
                    buf.extend_from_slice(&chunk[..n]);
                    let text = String::from_utf8_lossy(&buf).to_string();
                    if let Some((head, body)) = text.split_once("\r\n\r\n") {
                        let len = head
                            .lines()
                            .find_map(|l| {
                                l.to_ascii_lowercase()
                                    .strip_prefix("content-length:")
                                    .map(|v| v.trim().parse::<usize>().unwrap_or(0))
                            })
                            .unwrap_or(0);
                        if body.len() >= len {
                            break;
                        }
                    }
                }
            })
            .await;
            let text = String::from_utf8_lossy(&buf).to_string();
            let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
            let path = head.split(' ').nth(1).unwrap_or("").to_owned();
            let form: Vec<(String, String)> = form_urlencoded::parse(body.as_bytes())
                .into_owned()
                .collect();
            log.lock().unwrap().push(form.clone());
            let (status, json) = answer(&path, &form);
            let out = format!(
                "HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{json}",
                json.len()
            );
            let _ = s.write_all(out.as_bytes()).await;
        }
    });
    (base, seen)
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
    let (base, seen) = serve(move |path, form| match (path, get(form, "grant_type")) {
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
    let (base, _seen) = serve(|_, form| {
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
