//! The proxy's own upstream calls: one pooled reqwest client (TLS validated, no redirects, a
//! timeout), the token request with HTTP Basic client authentication, and the mapping of the
//! authorization server's answer onto the proxy's reply (PROXY-3..6).
//!
//! Deliberately separate from `crate::oauth`: the client secret lives only here and in the
//! config, and leaves the process only inside `Authorization: Basic` (SECRET-3).

use bytes::Bytes;
use http::{HeaderValue, StatusCode};
use serde::Deserialize;
use serde_json::{Map, Value, json};
use std::time::Duration;
use url::Url;

use crate::oauth::discovery::{self, ProviderMetadata};
use crate::oauth::error::OAuthError;
use crate::oauth::token::parse_fields;

/// The largest upstream body the proxy reads; a token response is a few KiB at most.
const MAX_UPSTREAM_BODY: usize = 64 * 1024;

/// What the proxy answers after an upstream call.
#[derive(Debug)]
pub(crate) struct Reply {
    /// The status to send.
    pub status: StatusCode,
    /// The JSON body to send.
    pub body: Bytes,
    /// The OAuth `error` code (upstream's, or the proxy's own for 502/504), for the access log.
    pub error: Option<String>,
    /// True when `error` came from the authorization server rather than the proxy.
    pub from_upstream: bool,
}

/// Builds the shared upstream client (PROXY-9).
pub(crate) fn build_client(timeout: Duration) -> Result<reqwest::Client, reqwest::Error> {
    reqwest::Client::builder()
        .use_rustls_tls()
        .https_only(false) // config allows plain http only to loopback hosts
        .redirect(reqwest::redirect::Policy::none())
        .timeout(timeout)
        .connect_timeout(timeout.min(Duration::from_secs(5)))
        .pool_idle_timeout(Duration::from_secs(60))
        // The proxy talks to configured endpoints directly; an ambient HTTP_PROXY variable
        // must not route client secrets through a third party.
        .no_proxy()
        .user_agent(concat!("authdeck-proxy/", env!("CARGO_PKG_VERSION")))
        .build()
}

/// How an upstream status and body become the proxy's reply: [`map_response`] for the token
/// endpoint, [`map_revocation_response`] for the revocation endpoint.
pub(crate) type MapFn = fn(u16, Bytes) -> Reply;

/// POSTs `form` to `endpoint` once (a code is single-use: never retried, PROXY-6) and maps the
/// answer with `map`.
pub(crate) async fn post_form(
    http: &reqwest::Client,
    endpoint: &Url,
    auth: HeaderValue,
    form: String,
    map: MapFn,
) -> Reply {
    let sent = http
        .post(endpoint.clone())
        .header(http::header::AUTHORIZATION, auth)
        .header(http::header::ACCEPT, "application/json")
        .header(
            http::header::CONTENT_TYPE,
            "application/x-www-form-urlencoded",
        )
        .body(form)
        .send()
        .await;
    let mut response = match sent {
        Ok(r) => r,
        Err(e) => return transport_failure(&e),
    };
    let status = response.status().as_u16();
    if response
        .content_length()
        .is_some_and(|n| n > MAX_UPSTREAM_BODY as u64)
    {
        return bad_gateway("the authorization server sent an oversized response");
    }
    let mut body = Vec::new();
    loop {
        match response.chunk().await {
            Ok(Some(chunk)) => {
                if body.len() + chunk.len() > MAX_UPSTREAM_BODY {
                    return bad_gateway("the authorization server sent an oversized response");
                }
                body.extend_from_slice(&chunk);
            }
            Ok(None) => break,
            Err(e) => return transport_failure(&e),
        }
    }
    map(status, Bytes::from(body))
}

fn transport_failure(e: &reqwest::Error) -> Reply {
    if e.is_timeout() {
        proxy_error(
            StatusCode::GATEWAY_TIMEOUT,
            "temporarily_unavailable",
            "the authorization server did not answer in time",
        )
    } else {
        proxy_error(
            StatusCode::BAD_GATEWAY,
            "temporarily_unavailable",
            "the authorization server could not be reached",
        )
    }
}

pub(crate) fn bad_gateway(description: &str) -> Reply {
    proxy_error(StatusCode::BAD_GATEWAY, "server_error", description)
}

/// An error the proxy itself reports, with an RFC 6749 §5.2-shaped body.
pub(crate) fn proxy_error(status: StatusCode, code: &str, description: &str) -> Reply {
    Reply {
        status,
        body: error_body(code, description),
        error: Some(code.to_owned()),
        from_upstream: false,
    }
}

/// `{"error": code, "error_description": description}`.
pub(crate) fn error_body(code: &str, description: &str) -> Bytes {
    Bytes::from(json!({ "error": code, "error_description": description }).to_string())
}

/// Only what is needed to recognise a token response; the token stays in a secret type.
#[derive(Deserialize)]
struct TokenShape {
    access_token: Option<crate::secret::AccessToken>,
    token_type: Option<String>,
}

/// Maps an upstream status and body onto the proxy's reply.
///
/// 200 with a token → the body unchanged (PROXY-4). 4xx with a JSON `error` → that status with
/// only `error`, `error_description`, `error_uri` (PROXY-5). Anything else → 502 (PROXY-6).
pub(crate) fn map_response(status: u16, body: Bytes) -> Reply {
    let is_object = crate::oauth::wire::looks_like_json_object(&body);
    if status == 200 {
        let shape = serde_json::from_slice::<TokenShape>(&body)
            .ok()
            .filter(|_| is_object);
        return match shape {
            Some(TokenShape {
                access_token: Some(token),
                token_type: Some(kind),
            }) if !token.is_empty() && !kind.is_empty() => Reply {
                status: StatusCode::OK,
                body,
                error: None,
                from_upstream: false,
            },
            _ => bad_gateway("the authorization server sent an invalid token response"),
        };
    }
    map_error(status, &body)
}

/// Maps a revocation endpoint's answer (RFC 7009 §2.2): 200 → 200 `{}` whatever the body (the
/// server also says 200 for a token that was already invalid, REV-2); anything else as
/// [`map_response`] maps a non-200.
pub(crate) fn map_revocation_response(status: u16, body: Bytes) -> Reply {
    if status == 200 {
        return Reply {
            status: StatusCode::OK,
            body: Bytes::from_static(b"{}"),
            error: None,
            from_upstream: false,
        };
    }
    map_error(status, &body)
}

/// A non-200 answer: 4xx with a JSON `error` → that status with only `error`,
/// `error_description`, `error_uri` (PROXY-5); anything else → 502 (PROXY-6).
pub(crate) fn map_error(status: u16, body: &[u8]) -> Reply {
    if (400..500).contains(&status) {
        let fields = serde_json::from_slice::<Map<String, Value>>(body).ok();
        if let Some(fields) = fields
            && let Some(Value::String(code)) = fields.get("error")
            && let Ok(status) = StatusCode::from_u16(status)
        {
            let mut kept = Map::new();
            for key in ["error", "error_description", "error_uri"] {
                if let Some(Value::String(v)) = fields.get(key) {
                    kept.insert(key.to_owned(), Value::String(v.clone()));
                }
            }
            return Reply {
                status,
                body: Bytes::from(Value::Object(kept).to_string()),
                error: Some(code.clone()),
                from_upstream: true,
            };
        }
        return bad_gateway("the authorization server sent an unreadable error response");
    }
    if status >= 500 {
        return bad_gateway("the authorization server failed");
    }
    bad_gateway("the authorization server sent an unexpected response")
}

/// What the proxy takes from a discovery document; every endpoint in it passed DISC-4.
#[derive(Debug)]
pub(crate) struct Discovered {
    /// The token endpoint.
    pub token_endpoint: Url,
    /// `revocation_endpoint` (RFC 8414 §2).
    pub revocation_endpoint: Option<Url>,
    /// `device_authorization_endpoint` (RFC 8628 §4).
    pub device_authorization_endpoint: Option<Url>,
}

/// Finds the endpoints of `issuer` with the client's discovery rules (`oauth::discovery`):
/// the OpenID Connect URL, then the RFC 8414 one (DISC-1/2); the document's `issuer` must
/// equal the configured one exactly (DISC-3) and every endpoint it names must pass DISC-4.
/// Only the transport is the proxy's own: one try per URL, the body capped (HARD-3).
pub(crate) async fn discover(http: &reqwest::Client, issuer: &str) -> Result<Discovered, String> {
    let urls = discovery::discovery_urls(issuer).map_err(|e| format!("the issuer {e}"))?;
    let mut first_failure = None;
    for url in &urls {
        match fetch_metadata(http, url, issuer).await {
            Ok(meta) => {
                let token_endpoint = meta
                    .token_endpoint
                    .ok_or_else(|| format!("discovery at {url} did not return a token_endpoint"))?;
                return Ok(Discovered {
                    token_endpoint,
                    revocation_endpoint: meta.revocation_endpoint,
                    device_authorization_endpoint: meta.device_authorization_endpoint,
                });
            }
            Err(e) if discovery::falls_back(&e) && first_failure.is_none() => {
                first_failure = Some(format!("discovery at {url}: {e}"));
            }
            // HARD-9: the error text quotes no server string unescaped (OAuthError's Display
            // sanitises what it quotes).
            Err(e) => {
                let first = first_failure.map(|f| format!("{f}; ")).unwrap_or_default();
                return Err(format!("{first}discovery at {url}: {e}"));
            }
        }
    }
    Err(first_failure.unwrap_or_else(|| "discovery failed".into()))
}

/// One GET of a discovery document: no retry, the body read up to the proxy's cap.
async fn fetch_metadata(
    http: &reqwest::Client,
    url: &str,
    issuer: &str,
) -> Result<ProviderMetadata, OAuthError> {
    let mut response = http
        .get(url)
        .header(http::header::ACCEPT, "application/json")
        .send()
        .await
        .map_err(|e| {
            if e.is_timeout() {
                OAuthError::Timeout
            } else {
                OAuthError::Network(crate::text::sanitize(&e.to_string(), 300))
            }
        })?;
    let status = response.status().as_u16();
    if status != 200 {
        return Err(OAuthError::Http { status });
    }
    // HARD-3: the document is read up to the same cap as a token answer.
    let mut body = Vec::new();
    while let Some(chunk) = response
        .chunk()
        .await
        .map_err(|e| OAuthError::Network(crate::text::sanitize(&e.to_string(), 300)))?
    {
        if body.len() + chunk.len() > MAX_UPSTREAM_BODY {
            return Err(OAuthError::InvalidResponse(format!(
                "the document is larger than {} KiB",
                MAX_UPSTREAM_BODY / 1024
            )));
        }
        body.extend_from_slice(&chunk);
    }
    let fields = parse_fields(Some("application/json"), &body)?;
    discovery::parse_metadata(&fields, issuer)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(reply: &Reply) -> &str {
        std::str::from_utf8(&reply.body).unwrap()
    }

    #[test]
    fn token_response_passes_unchanged_proxy_4() {
        let body = Bytes::from_static(
            br#"{"access_token":"at","token_type":"Bearer","expires_in":3600,"x":1}"#,
        );
        let reply = map_response(200, body.clone());
        assert_eq!(reply.status, StatusCode::OK);
        assert_eq!(reply.body, body);
    }

    #[test]
    fn odd_200s_become_502_proxy_6() {
        for body in [
            &br#"{"error":"access_denied"}"#[..],
            br#"{"access_token":"","token_type":"Bearer"}"#,
            br#"["at","Bearer"]"#,
            b"<html>",
        ] {
            let reply = map_response(200, Bytes::copy_from_slice(body));
            assert_eq!(reply.status, StatusCode::BAD_GATEWAY);
            assert!(text(&reply).contains("server_error"));
        }
    }

    #[test]
    fn oauth_errors_keep_status_and_three_fields_proxy_5() {
        let body = br#"{"error":"invalid_grant","error_description":"used","error_uri":"https://e/x","extra":"drop me"}"#;
        let reply = map_response(400, Bytes::from_static(body));
        assert_eq!(reply.status, StatusCode::BAD_REQUEST);
        assert_eq!(reply.error.as_deref(), Some("invalid_grant"));
        let v: Value = serde_json::from_slice(&reply.body).unwrap();
        assert_eq!(
            v,
            json!({"error":"invalid_grant","error_description":"used","error_uri":"https://e/x"})
        );
    }

    #[test]
    fn server_failures_become_502_proxy_6() {
        let reply = map_response(500, Bytes::from_static(br#"{"error":"server_error"}"#));
        assert_eq!(reply.status, StatusCode::BAD_GATEWAY);
        let reply = map_response(401, Bytes::from_static(b"Unauthorized"));
        assert_eq!(reply.status, StatusCode::BAD_GATEWAY);
        let reply = map_response(302, Bytes::new());
        assert_eq!(reply.status, StatusCode::BAD_GATEWAY);
    }

    #[test]
    fn revocation_200_is_empty_object_whatever_the_body_rev2() {
        for body in [&b""[..], b"<html>", br#"{"error":"x"}"#] {
            let reply = map_revocation_response(200, Bytes::copy_from_slice(body));
            assert_eq!(reply.status, StatusCode::OK);
            assert_eq!(text(&reply), "{}");
            assert_eq!(reply.error, None);
        }
    }

    #[test]
    fn revocation_errors_map_like_token_errors_rev3_proxy_5_6() {
        let reply = map_revocation_response(
            400,
            Bytes::from_static(br#"{"error":"unsupported_token_type","x":1}"#),
        );
        assert_eq!(reply.status, StatusCode::BAD_REQUEST);
        assert_eq!(text(&reply), r#"{"error":"unsupported_token_type"}"#);
        assert!(reply.from_upstream);
        let reply = map_revocation_response(503, Bytes::from_static(b"busy"));
        assert_eq!(reply.status, StatusCode::BAD_GATEWAY);
        let reply = map_revocation_response(400, Bytes::from_static(b"bad"));
        assert_eq!(reply.status, StatusCode::BAD_GATEWAY);
    }

    /// A stub whose script depends on its own issuer URL (`http://127.0.0.1:PORT/tenant`).
    async fn stub_for(
        script: impl Fn(&str) -> Vec<crate::oauth::testutil::Reply>,
    ) -> (crate::oauth::testutil::Stub, String) {
        use crate::oauth::testutil::Stub;
        let stub = Stub::start_with(|addr| script(&format!("http://{addr}/tenant"))).await;
        let issuer = format!("http://{}/tenant", stub.addr);
        (stub, issuer)
    }

    fn doc(issuer: &str, revocation: &str) -> String {
        json!({
            "issuer": issuer,
            "token_endpoint": format!("{issuer}/token"),
            "revocation_endpoint": revocation,
        })
        .to_string()
    }

    #[tokio::test]
    async fn discovery_falls_back_to_rfc8414_disc_2() {
        use crate::oauth::testutil::Reply as Up;
        let (stub, issuer) = stub_for(|issuer| {
            vec![
                Up::text(404, "no"),
                Up::json(200, &doc(issuer, &format!("{issuer}/revoke"))),
            ]
        })
        .await;
        let found = discover(&reqwest::Client::new(), &issuer).await.unwrap();
        assert_eq!(found.token_endpoint.as_str(), format!("{issuer}/token"));
        assert_eq!(
            found.revocation_endpoint.unwrap().as_str(),
            format!("{issuer}/revoke")
        );
        let paths: Vec<String> = stub.requests().into_iter().map(|r| r.path).collect();
        assert_eq!(
            paths,
            [
                "/tenant/.well-known/openid-configuration",
                "/.well-known/oauth-authorization-server/tenant"
            ]
        );
    }

    #[tokio::test]
    async fn discovered_revocation_endpoint_is_validated_disc_4() {
        use crate::oauth::testutil::Reply as Up;
        let (_stub, issuer) =
            stub_for(|issuer| vec![Up::json(200, &doc(issuer, "http://as.example/revoke"))]).await;
        let e = discover(&reqwest::Client::new(), &issuer)
            .await
            .unwrap_err();
        assert!(e.contains("revocation_endpoint must use https"), "{e}");
    }

    #[tokio::test]
    async fn another_issuers_document_does_not_fall_back_disc_3() {
        use crate::oauth::testutil::Reply as Up;
        let (stub, issuer) = stub_for(|issuer| {
            vec![Up::json(
                200,
                &doc(&format!("{issuer}/x"), &format!("{issuer}/r")),
            )]
        })
        .await;
        let e = discover(&reqwest::Client::new(), &issuer)
            .await
            .unwrap_err();
        assert!(e.contains("instead of"), "{e}");
        assert_eq!(stub.requests().len(), 1, "one try, no fallback");
    }
}
