//! When the app trusts an ID token (DISC-5).
//!
//! If the account has an issuer and the issuer's discovery document names a `jwks_uri`, every
//! id_token must verify: signature with the issuer's keys, `iss`, `aud` / `azp`, `exp`, `iat`,
//! and on login the `nonce`. A login whose id_token fails ends with the reason and leaves the
//! vault as it was. Without an issuer, or without a `jwks_uri` (for example Microsoft's
//! multi-tenant endpoints, configured explicitly and with no issuer), nothing can be verified:
//! the claims are kept for display only, marked unverified, and only the nonce is checked.

use std::time::SystemTime;

use url::Url;

use super::{App, AppError, Result};
use crate::oauth::idtoken::IdTokenCheck;
use crate::oauth::{ClientConfig, OAuthError, TokenSet};
use crate::secret::Nonce;
use crate::vault::Record;

impl App {
    /// Where `cfg`'s ID tokens can be verified: `(issuer, jwks_uri)`, or `None` when the
    /// account has no issuer or its metadata names no `jwks_uri`. Discovery is cached per
    /// process, so accounts with explicit endpoints pay for it once.
    async fn id_token_keys(&self, name: &str, cfg: &ClientConfig) -> Result<Option<(String, Url)>> {
        let Some(issuer) = cfg.issuer.clone() else {
            return Ok(None);
        };
        let meta = self.discover(name, &issuer).await?;
        Ok(meta.jwks_uri.map(|uri| (issuer, uri)))
    }

    /// DISC-5 / AUTHZ-6 for a login's token response: verifies the id_token (if any) and
    /// replaces its display claims with the verified ones. `nonce` is the one the
    /// authorization request carried (`None` for the device grant, which has no nonce).
    pub(super) async fn vet_login_id_token(
        &self,
        name: &str,
        cfg: &ClientConfig,
        tokens: &mut TokenSet,
        nonce: Option<&Nonce>,
    ) -> Result<()> {
        let Some(id_token) = &tokens.id_token else {
            return Ok(());
        };
        let Some((issuer, jwks_uri)) = self.id_token_keys(name, cfg).await? else {
            // Nothing to verify against: the pre-DISC-5 behaviour (claims shown unverified).
            if let Some(nonce) = nonce {
                tokens
                    .check_nonce(nonce)
                    .map_err(|e| AppError::oauth(name, e))?;
            }
            return Ok(());
        };
        let check = IdTokenCheck {
            issuer: &issuer,
            issuer_aliases: &cfg.issuer_aliases,
            jwks_uri: &jwks_uri,
            client_id: &cfg.client_id,
            nonce,
            subject: None,
            now: SystemTime::now(),
        };
        let claims = self
            .oauth()?
            .verify_id_token(id_token, &check)
            .await
            .map_err(|e| AppError::Login {
                name: name.to_string(),
                reason: e.to_string(),
            })?;
        tokens.claims = Some(claims);
        Ok(())
    }

    /// OIDC Core §12.2: a refresh response's id_token is checked like a login's, without a
    /// nonce and with the account's earlier `sub`.
    ///
    /// When it fails, only the claims are dropped (the account keeps its earlier ones); the
    /// tokens are still stored. They came over TLS straight from the token endpoint this client
    /// authenticated to, and a rotated refresh token has already replaced the old one on the
    /// server: throwing the response away would lock the account out (REF-3) without making
    /// anything safer. The failure is logged as a warning (never the token).
    pub(super) async fn vet_refreshed_id_token(
        &self,
        name: &str,
        cfg: &ClientConfig,
        previous: &Record,
        outcome: std::result::Result<TokenSet, OAuthError>,
    ) -> std::result::Result<TokenSet, OAuthError> {
        let mut tokens = outcome?;
        let Some(id_token) = tokens.id_token.clone() else {
            return Ok(tokens);
        };
        let verified = match self.id_token_keys(name, cfg).await {
            Ok(None) => return Ok(tokens),
            Ok(Some((issuer, jwks_uri))) => {
                let check = IdTokenCheck {
                    issuer: &issuer,
                    issuer_aliases: &cfg.issuer_aliases,
                    jwks_uri: &jwks_uri,
                    client_id: &cfg.client_id,
                    nonce: None,
                    subject: previous.claims.subject.as_deref(),
                    now: SystemTime::now(),
                };
                match self.oauth() {
                    Ok(oauth) => oauth
                        .verify_id_token(&id_token, &check)
                        .await
                        .map_err(|e| e.to_string()),
                    Err(e) => Err(e.to_string()),
                }
            }
            Err(e) => Err(e.to_string()),
        };
        match verified {
            Ok(claims) => tokens.claims = Some(claims),
            Err(reason) => {
                tracing::warn!(account = name, %reason, "refreshed id_token not accepted; keeping the earlier claims");
                tokens.claims = None;
                tokens.id_token = None;
            }
        }
        Ok(tokens)
    }
}
