//! The client side of `authdeck proxy`: an account whose provider file sets `exchange_proxy`
//! sends its code exchange and refresh through the proxy, which adds the client secret, so the
//! account holds none (issue 7 item 6).
//!
//! `exchange_proxy` is the proxy's base URL; a `client` query parameter on it names the proxy's
//! client when the proxy serves several (`https://proxy.example/?client=dashboard`).

use super::client::{OAuthClient, Replay};
use super::config::{ClientConfig, check_endpoint};
use super::error::{OAuthError, Result};
use super::revoke::{RevokeOutcome, Via};
use super::token::TokenSet;
use crate::secret::{AccessToken, AuthCode, PkceVerifier, RefreshToken};
use url::Url;

impl OAuthClient {
    /// Exchanges a code through the proxy's `POST /api/auth/exchange` (never retried once sent:
    /// a code is single-use, NET-4).
    pub async fn exchange_via_proxy(
        &self,
        proxy: &Url,
        config: &ClientConfig,
        code: &AuthCode,
        verifier: PkceVerifier,
        redirect_uri: &str,
    ) -> Result<TokenSet> {
        let mut body = serde_json::json!({
            "code": code.secret(),
            "code_verifier": verifier.secret(),
            "redirect_uri": redirect_uri,
        });
        drop(verifier);
        add_client(proxy, &mut body);
        let request = self.proxy_request(proxy, "api/auth/exchange", &body)?;
        self.token_grant(
            config,
            request,
            Replay::UnsentOnly,
            "authorization_code (proxy)",
        )
        .await
    }

    /// Refreshes through the proxy's `POST /api/auth/refresh`.
    pub async fn refresh_via_proxy(
        &self,
        proxy: &Url,
        config: &ClientConfig,
        refresh: &RefreshToken,
    ) -> Result<TokenSet> {
        let mut body = serde_json::json!({ "refresh_token": refresh.secret() });
        if config.scope_on_refresh
            && let Some(scope) = config.scope_string()
        {
            body["scope"] = serde_json::Value::from(scope);
        }
        add_client(proxy, &mut body);
        let request = self.proxy_request(proxy, "api/auth/refresh", &body)?;
        self.token_grant(
            config,
            request,
            Replay::OncePostSend,
            "refresh_token (proxy)",
        )
        .await
    }

    /// Revokes through the proxy's `POST /api/auth/revoke`, which adds the client credentials
    /// the account does not hold (RFC 7009 §2.1): the refresh token first, then the access
    /// token, each with its `token_type_hint` (REV-1..3, as [`revoke`](Self::revoke)). A proxy
    /// without a revocation endpoint for the client (501 `unsupported_operation`) gives
    /// [`OAuthError::NoRevocationEndpoint`].
    pub async fn revoke_via_proxy(
        &self,
        proxy: &Url,
        access: Option<&AccessToken>,
        refresh: Option<&RefreshToken>,
    ) -> Result<RevokeOutcome> {
        check_endpoint(proxy)?;
        self.revoke_pair(Via::Proxy(proxy), access, refresh).await
    }

    /// One `POST /api/auth/revoke` request: `{token, token_type_hint[, client]}`.
    pub(super) fn proxy_revoke_request(
        &self,
        proxy: &Url,
        token: &str,
        hint: &str,
    ) -> Result<reqwest::Request> {
        let mut body = serde_json::json!({ "token": token, "token_type_hint": hint });
        add_client(proxy, &mut body);
        self.proxy_request(proxy, "api/auth/revoke", &body)
    }

    fn proxy_request(
        &self,
        proxy: &Url,
        path: &str,
        body: &serde_json::Value,
    ) -> Result<reqwest::Request> {
        check_endpoint(proxy)?;
        let url = endpoint(proxy, path)?;
        self.http
            .post(url)
            .header(reqwest::header::ACCEPT, "application/json")
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(body.to_string())
            .build()
            .map_err(|_| {
                OAuthError::Config("cannot build the request to the exchange proxy".into())
            })
    }
}

/// `base` + `path`, without the base's query.
fn endpoint(base: &Url, path: &str) -> Result<Url> {
    let mut base = base.clone();
    base.set_query(None);
    if !base.path().ends_with('/') {
        let p = format!("{}/", base.path());
        base.set_path(&p);
    }
    base.join(path)
        .map_err(|_| OAuthError::Config("the exchange_proxy URL is not a valid base URL".into()))
}

fn add_client(proxy: &Url, body: &mut serde_json::Value) {
    if let Some((_, client)) = proxy.query_pairs().find(|(k, _)| k == "client") {
        body["client"] = serde_json::Value::from(client.into_owned());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proxy_endpoints_join_under_the_base() {
        let u = |s: &str| Url::parse(s).unwrap();
        assert_eq!(
            endpoint(&u("https://p.example"), "api/auth/exchange")
                .unwrap()
                .as_str(),
            "https://p.example/api/auth/exchange"
        );
        assert_eq!(
            endpoint(&u("https://p.example/auth?client=x"), "api/auth/refresh")
                .unwrap()
                .as_str(),
            "https://p.example/auth/api/auth/refresh"
        );
        let mut body = serde_json::json!({});
        add_client(&u("https://p.example/?client=dash"), &mut body);
        assert_eq!(body["client"], "dash");
    }
}
