//! Token revocation: RFC 7009, and the providers' own formats (PROV-3).

use reqwest::header::{ACCEPT, AUTHORIZATION, CONTENT_TYPE};
use url::Url;

use super::client::{OAuthClient, Replay, basic_header};
use super::client_auth::RevocationFormat;
use super::config::{ClientConfig, check_endpoint};
use super::error::{OAuthError, Result};
use super::token::{error_in, parse_fields};
use crate::secret::{AccessToken, RefreshToken};

/// What happened to one token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Revocation {
    /// The server answered 200 (REV-2: also for tokens it did not know).
    Revoked,
    /// The server answered `unsupported_token_type` (REV-3): not revocable there.
    Unsupported,
    /// No such token was given.
    NotAttempted,
}

/// The result of [`OAuthClient::revoke`], per token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RevokeOutcome {
    /// The refresh token's fate (revoked first: it usually takes the access token with it).
    pub refresh: Revocation,
    /// The access token's fate.
    pub access: Revocation,
}

impl RevokeOutcome {
    /// True when at least one token was revoked.
    pub fn any_revoked(&self) -> bool {
        self.refresh == Revocation::Revoked || self.access == Revocation::Revoked
    }
}

impl OAuthClient {
    /// REV-1..3: revokes the refresh token (`token_type_hint=refresh_token`), then the access
    /// token (`token_type_hint=access_token`); an `unsupported_token_type` for one does not stop
    /// the other. Client authentication as configured. No endpoint →
    /// [`OAuthError::NoRevocationEndpoint`]. A 503 is retried per NET-2; if it persists the
    /// error is returned and the token must be treated as live.
    pub async fn revoke(
        &self,
        config: &ClientConfig,
        access: Option<&AccessToken>,
        refresh: Option<&RefreshToken>,
    ) -> Result<RevokeOutcome> {
        let url = config
            .revocation_endpoint
            .as_ref()
            .ok_or(OAuthError::NoRevocationEndpoint)?;
        check_endpoint(url)?;
        // GitHub's API revokes an access token (and its grant); it takes no refresh token.
        let refresh = refresh.filter(|_| config.revocation_format != RevocationFormat::Github);
        self.revoke_pair(Via::Endpoint { config, url }, access, refresh)
            .await
    }

    /// REV-1..3 over `via`: the refresh token first, then the access token; an
    /// `unsupported_token_type` for one does not stop the other, any other error does.
    pub(crate) async fn revoke_pair(
        &self,
        via: Via<'_>,
        access: Option<&AccessToken>,
        refresh: Option<&RefreshToken>,
    ) -> Result<RevokeOutcome> {
        let refresh = match refresh {
            Some(t) => self.revoke_one(via, t.secret(), "refresh_token").await?,
            None => Revocation::NotAttempted,
        };
        let access = match access {
            Some(t) => self.revoke_one(via, t.secret(), "access_token").await?,
            None => Revocation::NotAttempted,
        };
        tracing::debug!(host = %via.host(), ?refresh, ?access, "revocation done");
        Ok(RevokeOutcome { refresh, access })
    }

    async fn revoke_one(&self, via: Via<'_>, token: &str, hint: &str) -> Result<Revocation> {
        let request = match via {
            Via::Endpoint { config, url } => match config.revocation_format {
                RevocationFormat::Rfc7009 => {
                    let params = [("token", token), ("token_type_hint", hint)];
                    self.token_request(config, url, &params)?
                }
                RevocationFormat::Json => json_revoke_request(self, config, url, token, hint)?,
                RevocationFormat::Github => github_revoke_request(self, config, url, token)?,
            },
            Via::Proxy(proxy) => self.proxy_revoke_request(proxy, token, hint)?,
        };
        // Revocation is idempotent: NET-2 in full, 503 included (REV-3).
        let resp = self.send(request, Replay::Always).await?;
        // RFC 7009 answers 200; GitHub's API answers 204 No Content.
        if resp.status == 200 || resp.status == 204 {
            return Ok(Revocation::Revoked);
        }
        let error = parse_fields(resp.content_type.as_deref(), &resp.body)
            .ok()
            .and_then(|f| error_in(resp.status, &f));
        match error {
            Some(e) if e.code() == Some("unsupported_token_type") => Ok(Revocation::Unsupported),
            // The exchange proxy has no revocation endpoint for this client.
            Some(e)
                if matches!(via, Via::Proxy(_))
                    && resp.status == 501
                    && e.code() == Some("unsupported_operation") =>
            {
                Err(OAuthError::NoRevocationEndpoint)
            }
            Some(e) => Err(e),
            None => Err(OAuthError::Http {
                status: resp.status,
            }),
        }
    }
}

/// PROV-3, OpenAI: a JSON POST of `token` and `token_type_hint`, with `client_id` for a refresh
/// token only, as the Codex CLI sends it (a public client: no secret).
fn json_revoke_request(
    client: &OAuthClient,
    config: &ClientConfig,
    url: &Url,
    token: &str,
    hint: &str,
) -> Result<reqwest::Request> {
    let mut body = serde_json::json!({ "token": token, "token_type_hint": hint });
    if hint == "refresh_token" {
        body["client_id"] = serde_json::Value::from(config.client_id.as_str());
    }
    client
        .http
        .post(url.clone())
        .header(ACCEPT, "application/json")
        .header(CONTENT_TYPE, "application/json")
        .body(body.to_string())
        .build()
        .map_err(|_| OAuthError::Config("cannot build the request".into()))
}

/// PROV-3, GitHub: `DELETE /applications/{client_id}/token` (the URL comes from the template)
/// with HTTP Basic `client_id:client_secret` and `{"access_token": ...}`. The secret is needed
/// whatever the account's `client_auth` says.
fn github_revoke_request(
    client: &OAuthClient,
    config: &ClientConfig,
    url: &Url,
    token: &str,
) -> Result<reqwest::Request> {
    let secret = config.client_auth.secret().ok_or_else(|| {
        OAuthError::Config(
            "GitHub's revocation API needs the client secret (HTTP Basic); set client_secret_env"
                .into(),
        )
    })?;
    let body = serde_json::json!({ "access_token": token });
    client
        .http
        .delete(url.clone())
        .header(ACCEPT, "application/vnd.github+json")
        .header(CONTENT_TYPE, "application/json")
        .header(AUTHORIZATION, basic_header(&config.client_id, secret)?)
        .body(body.to_string())
        .build()
        .map_err(|_| OAuthError::Config("cannot build the request".into()))
}

/// Where a revocation request goes.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Via<'a> {
    /// The provider's revocation endpoint, with the client authentication `config` names.
    Endpoint {
        config: &'a ClientConfig,
        url: &'a Url,
    },
    /// An exchange proxy's `POST /api/auth/revoke`, which adds the client credentials.
    Proxy(&'a Url),
}

impl Via<'_> {
    fn host(&self) -> &str {
        match self {
            Self::Endpoint { url, .. } | Self::Proxy(url) => url.host_str().unwrap_or("?"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::oauth::ClientAuth;
    use crate::oauth::testutil::{Reply, Stub, fast_client, form_of};
    use crate::secret::ClientSecret;

    fn config(stub: &Stub) -> ClientConfig {
        ClientConfig {
            client_id: "cid".into(),
            client_auth: ClientAuth::Basic(ClientSecret::new("sec")),
            token_endpoint: Some(stub.url("/token")),
            revocation_endpoint: Some(stub.url("/revoke")),
            ..Default::default()
        }
    }

    #[tokio::test]
    async fn rev1_rev2_refresh_then_access_with_hints_200_is_success() {
        let stub = Stub::start(vec![Reply::text(200, "ignored {\"error\":\"x\"}")]).await;
        let out = fast_client()
            .revoke(
                &config(&stub),
                Some(&AccessToken::new("at")),
                Some(&RefreshToken::new("rt")),
            )
            .await
            .unwrap();
        assert_eq!(
            out,
            RevokeOutcome {
                refresh: Revocation::Revoked,
                access: Revocation::Revoked
            }
        );
        let reqs = stub.requests();
        assert_eq!(reqs.len(), 2);
        let (a, b) = (form_of(&reqs[0].body), form_of(&reqs[1].body));
        assert_eq!(
            (a["token"].as_str(), a["token_type_hint"].as_str()),
            ("rt", "refresh_token")
        );
        assert_eq!(
            (b["token"].as_str(), b["token_type_hint"].as_str()),
            ("at", "access_token")
        );
        assert_eq!(reqs[0].path, "/revoke");
        assert!(
            reqs[0]
                .header("authorization")
                .unwrap()
                .starts_with("Basic ")
        );
    }

    #[tokio::test]
    async fn rev3_unsupported_token_type_tries_the_other() {
        let stub = Stub::start(vec![
            Reply::json(400, r#"{"error":"unsupported_token_type"}"#),
            Reply::text(200, ""),
        ])
        .await;
        let out = fast_client()
            .revoke(
                &config(&stub),
                Some(&AccessToken::new("at")),
                Some(&RefreshToken::new("rt")),
            )
            .await
            .unwrap();
        assert_eq!(out.refresh, Revocation::Unsupported);
        assert_eq!(out.access, Revocation::Revoked);
        assert!(out.any_revoked());

        let stub = Stub::start(vec![Reply::json(
            400,
            r#"{"error":"unsupported_token_type"}"#,
        )])
        .await;
        let out = fast_client()
            .revoke(&config(&stub), None, Some(&RefreshToken::new("rt")))
            .await
            .unwrap();
        assert_eq!(
            out,
            RevokeOutcome {
                refresh: Revocation::Unsupported,
                access: Revocation::NotAttempted
            }
        );
        assert!(!out.any_revoked());
    }

    #[tokio::test]
    async fn rev3_503_retried_then_reported() {
        let stub = Stub::start(vec![Reply::text(503, ""), Reply::text(200, "")]).await;
        let out = fast_client()
            .revoke(&config(&stub), None, Some(&RefreshToken::new("rt")))
            .await
            .unwrap();
        assert_eq!(out.refresh, Revocation::Revoked);
        assert_eq!(stub.requests().len(), 2);

        let stub = Stub::start(vec![Reply::text(503, "")]).await;
        let e = fast_client()
            .revoke(&config(&stub), None, Some(&RefreshToken::new("rt")))
            .await
            .unwrap_err();
        assert!(e.is_transient());
    }

    #[tokio::test]
    async fn rev_no_endpoint_reported() {
        let stub = Stub::start(vec![Reply::text(200, "")]).await;
        let mut cfg = config(&stub);
        cfg.revocation_endpoint = None;
        let e = fast_client()
            .revoke(&cfg, None, Some(&RefreshToken::new("rt")))
            .await
            .unwrap_err();
        assert!(matches!(e, OAuthError::NoRevocationEndpoint));
        assert!(stub.requests().is_empty());
    }

    #[tokio::test]
    async fn prov3_json_revocation_body_like_the_codex_cli() {
        let stub = Stub::start(vec![Reply::text(200, "")]).await;
        let mut cfg = config(&stub);
        cfg.client_auth = ClientAuth::None;
        cfg.revocation_format = RevocationFormat::Json;
        let out = fast_client()
            .revoke(
                &cfg,
                Some(&AccessToken::new("at")),
                Some(&RefreshToken::new("rt")),
            )
            .await
            .unwrap();
        assert_eq!(out.refresh, Revocation::Revoked);
        assert_eq!(out.access, Revocation::Revoked);
        let reqs = stub.requests();
        assert_eq!(reqs[0].method, "POST");
        assert_eq!(
            reqs[0].header("content-type").as_deref(),
            Some("application/json")
        );
        assert!(reqs[0].header("authorization").is_none());
        let a: serde_json::Value = serde_json::from_str(&reqs[0].body).unwrap();
        let b: serde_json::Value = serde_json::from_str(&reqs[1].body).unwrap();
        assert_eq!(
            a,
            serde_json::json!({"token": "rt", "token_type_hint": "refresh_token", "client_id": "cid"})
        );
        assert_eq!(
            b,
            serde_json::json!({"token": "at", "token_type_hint": "access_token"})
        );
    }

    #[tokio::test]
    async fn prov3_github_revocation_is_a_basic_authenticated_delete_of_the_access_token() {
        let stub = Stub::start(vec![Reply::text(204, "")]).await;
        let mut cfg = config(&stub);
        cfg.client_auth = ClientAuth::Post(ClientSecret::new("sec"));
        cfg.revocation_format = RevocationFormat::Github;
        cfg.revocation_endpoint = Some(stub.url("/applications/cid/token"));
        let out = fast_client()
            .revoke(
                &cfg,
                Some(&AccessToken::new("gho_1")),
                Some(&RefreshToken::new("ghr_1")),
            )
            .await
            .unwrap();
        assert_eq!(out.access, Revocation::Revoked);
        assert_eq!(out.refresh, Revocation::NotAttempted);
        let reqs = stub.requests();
        assert_eq!(reqs.len(), 1);
        assert_eq!(reqs[0].method, "DELETE");
        assert_eq!(reqs[0].path, "/applications/cid/token");
        assert_eq!(
            reqs[0].header("authorization").as_deref(),
            Some(
                crate::oauth::wire::basic_auth("cid", &ClientSecret::new("sec"))
                    .unwrap()
                    .to_str()
                    .unwrap()
            )
        );
        let body: serde_json::Value = serde_json::from_str(&reqs[0].body).unwrap();
        assert_eq!(body, serde_json::json!({"access_token": "gho_1"}));

        // Without the secret: a clear configuration error, nothing sent.
        let stub = Stub::start(vec![Reply::text(204, "")]).await;
        cfg.client_auth = ClientAuth::None;
        cfg.revocation_endpoint = Some(stub.url("/applications/cid/token"));
        let e = fast_client()
            .revoke(&cfg, Some(&AccessToken::new("gho_1")), None)
            .await
            .unwrap_err();
        assert!(
            e.is_config_error() && e.to_string().contains("client secret"),
            "{e}"
        );
        assert!(stub.requests().is_empty());
    }

    #[tokio::test]
    async fn rev_other_error_is_returned() {
        let stub = Stub::start(vec![Reply::json(401, r#"{"error":"invalid_client"}"#)]).await;
        let e = fast_client()
            .revoke(&config(&stub), None, Some(&RefreshToken::new("rt")))
            .await
            .unwrap_err();
        assert!(e.is_config_error());
        assert_eq!(stub.requests().len(), 1);
    }
}
