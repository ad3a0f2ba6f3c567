//! Token revocation (RFC 7009).

use url::Url;

use super::client::{OAuthClient, Replay};
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
            Via::Endpoint { config, url } => {
                let params = [("token", token), ("token_type_hint", hint)];
                self.token_request(config, url, &params)?
            }
            Via::Proxy(proxy) => self.proxy_revoke_request(proxy, token, hint)?,
        };
        // Revocation is idempotent: NET-2 in full, 503 included (REV-3).
        let resp = self.send(request, Replay::Always).await?;
        if resp.status == 200 {
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
    use crate::oauth::testutil::{Reply, Stub, fast_client, form_of};
    use crate::provider::ClientAuth;
    use crate::secret::ClientSecret;

    fn config(stub: &Stub) -> ClientConfig {
        ClientConfig {
            client_id: "cid".into(),
            client_secret: Some(ClientSecret::new("sec")),
            client_auth: ClientAuth::Basic,
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
