//! Discovery: OpenID Connect Discovery 1.0 with a fallback to RFC 8414.

use reqwest::header::ACCEPT;
use serde_json::Value;
use url::Url;

use super::client::{OAuthClient, Replay};
use super::config::{ClientConfig, check_endpoint};
use super::error::{OAuthError, Result};
use super::token::{Fields, parse_fields};
use super::wire;

/// The parts of a discovery document authdeck uses.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ProviderMetadata {
    /// The issuer, equal to the one asked for (DISC-3).
    pub issuer: String,
    /// Authorization endpoint.
    pub authorization_endpoint: Option<Url>,
    /// Token endpoint.
    pub token_endpoint: Option<Url>,
    /// RFC 7009 revocation endpoint.
    pub revocation_endpoint: Option<Url>,
    /// RFC 8628 device authorization endpoint.
    pub device_authorization_endpoint: Option<Url>,
    /// OIDC userinfo endpoint.
    pub userinfo_endpoint: Option<Url>,
    /// JWKS for ID token signatures.
    pub jwks_uri: Option<Url>,
    /// Scopes the server advertises.
    pub scopes_supported: Vec<String>,
    /// PKCE methods; `S256` allows bare pasted codes (HL-4).
    pub code_challenge_methods_supported: Vec<String>,
    /// RFC 9207: the callback must carry `iss` (AUTHZ-4).
    pub authorization_response_iss_parameter_supported: bool,
}

impl OAuthClient {
    /// DISC-1..4: GETs `{issuer}/.well-known/openid-configuration`; if that fails with an
    /// HTTP error or an unusable document, GETs the RFC 8414 URL
    /// `{origin}/.well-known/oauth-authorization-server{issuer path}`. The document's `issuer`
    /// must equal `issuer` exactly, and every endpoint must be https (or loopback).
    pub async fn discover(&self, issuer: &str) -> Result<ProviderMetadata> {
        let [oidc, rfc8414] = discovery_urls(issuer)?;
        match self.fetch_metadata(&oidc, issuer).await {
            Err(first_err) if falls_back(&first_err) => {
                tracing::debug!(error = %first_err, "OIDC discovery failed; trying RFC 8414");
                self.fetch_metadata(&rfc8414, issuer).await
            }
            first => first,
        }
    }

    async fn fetch_metadata(&self, url: &str, issuer: &str) -> Result<ProviderMetadata> {
        let url = Url::parse(url).map_err(|_| OAuthError::Config("bad discovery URL".into()))?;
        let request = self
            .http
            .get(url)
            .header(ACCEPT, "application/json")
            .build()
            .map_err(|_| OAuthError::Config("cannot build the discovery request".into()))?;
        let resp = self.send(request, Replay::Always).await?;
        if resp.status != 200 {
            return Err(OAuthError::Http {
                status: resp.status,
            });
        }
        let fields = parse_fields(Some("application/json"), &resp.body)?;
        parse_metadata(&fields, issuer)
    }
}

/// DISC-1/2: the discovery URLs of `issuer`, in the order they are tried: OpenID Connect's
/// `{issuer}/.well-known/openid-configuration`, then RFC 8414's (see [`rfc8414_url`]). The
/// issuer itself must pass DISC-4 and have no query or fragment. Shared with the exchange
/// proxy, which fetches them with its own transport.
pub fn discovery_urls(issuer: &str) -> Result<[String; 2]> {
    let issuer_url = Url::parse(issuer)
        .map_err(|_| OAuthError::Config("the issuer is not a valid URL".into()))?;
    check_endpoint(&issuer_url)?;
    if issuer_url.query().is_some() || issuer_url.fragment().is_some() {
        return Err(OAuthError::Config(
            "the issuer may not have a query or fragment".into(),
        ));
    }
    let oidc = format!(
        "{}/.well-known/openid-configuration",
        issuer.trim_end_matches('/')
    );
    Ok([oidc, rfc8414_url(&issuer_url)])
}

/// DISC-2: whether a failure at the OpenID Connect URL lets the RFC 8414 URL be tried. An HTTP
/// error or an unusable document does; a network failure, a timeout or another issuer's
/// document (DISC-3) does not.
pub fn falls_back(first: &OAuthError) -> bool {
    !matches!(
        first,
        OAuthError::IssuerMismatch { .. } | OAuthError::Network(_) | OAuthError::Timeout
    )
}

/// DISC-2: the well-known segment goes between the origin and the issuer's path.
pub fn rfc8414_url(issuer: &Url) -> String {
    let path = issuer.path().trim_end_matches('/');
    format!(
        "{}/.well-known/oauth-authorization-server{path}",
        issuer.origin().ascii_serialization()
    )
}

/// Reads a discovery document, checking DISC-3 and DISC-4.
pub fn parse_metadata(fields: &Fields, issuer: &str) -> Result<ProviderMetadata> {
    let got = fields
        .get("issuer")
        .and_then(Value::as_str)
        .ok_or_else(|| OAuthError::InvalidResponse("discovery document without issuer".into()))?;
    if got != issuer {
        return Err(OAuthError::IssuerMismatch {
            expected: issuer.to_owned(),
            got: got.to_owned(),
        });
    }
    let endpoint = |k: &str| -> Result<Option<Url>> {
        let Some(s) = fields.get(k).and_then(Value::as_str) else {
            return Ok(None);
        };
        // DISC-4 for every endpoint the document names, used now or not.
        wire::endpoint_url(s)
            .map(Some)
            .map_err(|problem| OAuthError::InvalidResponse(format!("discovery: {k} {problem}")))
    };
    let list = |k: &str| -> Vec<String> {
        fields
            .get(k)
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(Value::as_str)
                    .map(str::to_owned)
                    .collect()
            })
            .unwrap_or_default()
    };
    Ok(ProviderMetadata {
        issuer: got.to_owned(),
        authorization_endpoint: endpoint("authorization_endpoint")?,
        token_endpoint: endpoint("token_endpoint")?,
        revocation_endpoint: endpoint("revocation_endpoint")?,
        device_authorization_endpoint: endpoint("device_authorization_endpoint")?,
        userinfo_endpoint: endpoint("userinfo_endpoint")?,
        jwks_uri: endpoint("jwks_uri")?,
        scopes_supported: list("scopes_supported"),
        code_challenge_methods_supported: list("code_challenge_methods_supported"),
        authorization_response_iss_parameter_supported: fields
            .get("authorization_response_iss_parameter_supported")
            .and_then(Value::as_bool)
            .unwrap_or(false),
    })
}

impl ClientConfig {
    /// Fills endpoints and the issuer from discovery; values already set win (DISC-1).
    pub fn fill_from(&mut self, meta: &ProviderMetadata) {
        fn fill(slot: &mut Option<Url>, from: &Option<Url>) {
            if slot.is_none() {
                slot.clone_from(from);
            }
        }
        if self.issuer.is_none() {
            self.issuer = Some(meta.issuer.clone());
        }
        // AUTHZ-4: an issuer that says it sends `iss` must send it; DISC-3 made sure this
        // document is the issuer's own.
        if self.issuer.as_deref() == Some(meta.issuer.as_str()) {
            self.require_iss |= meta.authorization_response_iss_parameter_supported;
        }
        fill(
            &mut self.authorization_endpoint,
            &meta.authorization_endpoint,
        );
        fill(&mut self.token_endpoint, &meta.token_endpoint);
        fill(&mut self.revocation_endpoint, &meta.revocation_endpoint);
        fill(
            &mut self.device_authorization_endpoint,
            &meta.device_authorization_endpoint,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::oauth::testutil::{Reply, Stub, fast_client};

    fn doc(issuer: &str) -> String {
        serde_json::json!({
            "issuer": issuer,
            "authorization_endpoint": format!("{issuer}/auth"),
            "token_endpoint": format!("{issuer}/token"),
            "revocation_endpoint": format!("{issuer}/revoke"),
            "device_authorization_endpoint": format!("{issuer}/device"),
            "jwks_uri": format!("{issuer}/jwks"),
            "code_challenge_methods_supported": ["S256"],
            "authorization_response_iss_parameter_supported": true,
        })
        .to_string()
    }

    #[tokio::test]
    async fn disc1_oidc_document_used_and_disc3_issuer_checked() {
        let (stub, issuer) = stub_for(|issuer| vec![Reply::json(200, &doc(issuer))]).await;
        let meta = fast_client().discover(&issuer).await.unwrap();
        assert_eq!(meta.issuer, issuer);
        assert_eq!(
            meta.token_endpoint.unwrap().as_str(),
            format!("{issuer}/token")
        );
        assert_eq!(meta.code_challenge_methods_supported, ["S256"]);
        assert!(meta.authorization_response_iss_parameter_supported);
        assert!(meta.jwks_uri.is_some());
        let reqs = stub.requests();
        assert_eq!(reqs.len(), 1);
        assert_eq!(reqs[0].method, "GET");
        assert_eq!(reqs[0].path, "/tenant/.well-known/openid-configuration");
    }

    #[tokio::test]
    async fn disc2_falls_back_to_rfc8414_with_path_insertion() {
        let (stub, issuer) = stub_for(|issuer| {
            vec![
                Reply::text(404, "not found"),
                Reply::json(200, &doc(issuer)),
            ]
        })
        .await;
        let meta = fast_client().discover(&issuer).await.unwrap();
        assert_eq!(meta.issuer, issuer);
        let reqs = stub.requests();
        assert_eq!(reqs.len(), 2);
        assert_eq!(
            reqs[1].path,
            "/.well-known/oauth-authorization-server/tenant"
        );
    }

    #[tokio::test]
    async fn disc3_issuer_mismatch_rejected() {
        let (_stub, issuer) =
            stub_for(|issuer| vec![Reply::json(200, &doc(&format!("{issuer}/other")))]).await;
        let e = fast_client().discover(&issuer).await.unwrap_err();
        assert!(matches!(e, OAuthError::IssuerMismatch { .. }), "{e}");
        // A trailing slash is a different issuer.
        let (_stub, issuer) = stub_for(|issuer| vec![Reply::json(200, &doc(issuer))]).await;
        assert!(fast_client().discover(&format!("{issuer}/")).await.is_err());
    }

    #[test]
    fn disc4_non_https_endpoint_in_document_rejected() {
        let fields: Fields = serde_json::from_str(
            r#"{"issuer":"https://as.example","token_endpoint":"http://as.example/token"}"#,
        )
        .unwrap();
        assert!(parse_metadata(&fields, "https://as.example").is_err());
        let fields: Fields = serde_json::from_str(
            r#"{"issuer":"https://as.example","token_endpoint":"https://as.example/token"}"#,
        )
        .unwrap();
        assert!(parse_metadata(&fields, "https://as.example").is_ok());
    }

    #[test]
    fn disc2_rfc8414_url_shapes() {
        let u = |s: &str| rfc8414_url(&Url::parse(s).unwrap());
        assert_eq!(
            u("https://as.example"),
            "https://as.example/.well-known/oauth-authorization-server"
        );
        assert_eq!(
            u("https://as.example/"),
            "https://as.example/.well-known/oauth-authorization-server"
        );
        assert_eq!(
            u("https://as.example/t/1"),
            "https://as.example/.well-known/oauth-authorization-server/t/1"
        );
    }

    #[test]
    fn fill_from_keeps_explicit_values() {
        let meta = ProviderMetadata {
            issuer: "https://as.example".into(),
            token_endpoint: Some(Url::parse("https://as.example/token").unwrap()),
            revocation_endpoint: Some(Url::parse("https://as.example/revoke").unwrap()),
            ..Default::default()
        };
        let mut cfg = ClientConfig {
            token_endpoint: Some(Url::parse("https://mine.example/token").unwrap()),
            ..Default::default()
        };
        cfg.fill_from(&meta);
        assert_eq!(
            cfg.token_endpoint.unwrap().as_str(),
            "https://mine.example/token"
        );
        assert_eq!(
            cfg.revocation_endpoint.unwrap().as_str(),
            "https://as.example/revoke"
        );
        assert_eq!(cfg.issuer.as_deref(), Some("https://as.example"));
    }

    /// A stub whose script depends on its own issuer URL (`http://127.0.0.1:PORT/tenant`).
    async fn stub_for(script: impl Fn(&str) -> Vec<Reply>) -> (Stub, String) {
        let stub = Stub::start_with(|addr| script(&format!("http://{addr}/tenant"))).await;
        let issuer = format!("http://{}/tenant", stub.addr);
        (stub, issuer)
    }
}
