//! The client side of `authdeck proxy`: an account whose provider file sets `exchange_proxy`
//! sends its code exchange and refresh through the proxy, which adds the client secret, so the
//! account holds none (SECRET-4).
//!
//! `exchange_proxy` is the proxy's base URL; a `client` query parameter on it names the proxy's
//! client when the proxy serves several (`https://proxy.example/?client=dashboard`).

use super::client::{OAuthClient, Replay};
use super::config::{ClientConfig, check_endpoint};
use super::device::{DEVICE_GRANT, DeviceAuthorization, device_authorization_from};
use super::error::{OAuthError, Result};
use super::revoke::{RevokeOutcome, Via};
use super::token::TokenSet;
use crate::secret::{AccessToken, AuthCode, DeviceCode, PkceVerifier, RefreshToken};
use tokio::sync::watch;
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

    /// Starts a device login through the proxy's `POST /api/auth/device` (PROXY-18), which
    /// adds the client credentials the account does not hold: `{scope[, client]}`. Like
    /// [`start_device`](Self::start_device), it may be replayed (nothing is granted yet).
    pub async fn start_device_via_proxy(
        &self,
        proxy: &Url,
        config: &ClientConfig,
    ) -> Result<DeviceAuthorization> {
        let mut body = serde_json::json!({});
        if let Some(scope) = config.scope_string() {
            body["scope"] = serde_json::Value::from(scope);
        }
        add_client(proxy, &mut body);
        let request = self.proxy_request(proxy, "api/auth/device", &body)?;
        let resp = self.send(request, Replay::Always).await?;
        device_authorization_from(&resp)
    }

    /// Polls through the proxy's `POST /api/auth/exchange` with the device grant
    /// (`{grant_type: urn:…:device_code, device_code[, client]}`, PROXY-19) until the user
    /// approves; the polling rules are [`poll_device`](Self::poll_device)'s (DEV-4..8).
    pub async fn poll_device_via_proxy(
        &self,
        proxy: &Url,
        config: &ClientConfig,
        auth: &DeviceAuthorization,
        cancel: watch::Receiver<bool>,
    ) -> Result<TokenSet> {
        let request = |code: &DeviceCode| {
            let mut body = serde_json::json!({
                "grant_type": DEVICE_GRANT,
                "device_code": code.secret(),
            });
            add_client(proxy, &mut body);
            self.proxy_request(proxy, "api/auth/exchange", &body)
        };
        self.poll_device_with(config, auth, cancel, &request).await
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

    // --- revoke_via_proxy (REV-1..3 through the proxy's /api/auth/revoke). ---

    use crate::oauth::revoke::{Revocation, RevokeOutcome};
    use crate::oauth::testutil::{Reply, Stub, fast_client};

    fn json_of(body: &str) -> serde_json::Value {
        serde_json::from_str(body).unwrap()
    }

    #[tokio::test]
    async fn rev1_rev2_via_proxy_refresh_then_access_with_hints_and_client() {
        let stub = Stub::start(vec![Reply::json(200, "{}")]).await;
        let proxy = stub.url("/base?client=dash");
        let out = fast_client()
            .revoke_via_proxy(
                &proxy,
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
        for r in &reqs {
            assert_eq!(
                (r.method.as_str(), r.path.as_str()),
                ("POST", "/base/api/auth/revoke")
            );
            assert_eq!(
                r.header("content-type").as_deref(),
                Some("application/json")
            );
            assert_eq!(
                r.header("authorization"),
                None,
                "SECRET-4: the account holds no secret"
            );
        }
        assert_eq!(
            json_of(&reqs[0].body),
            serde_json::json!({"token": "rt", "token_type_hint": "refresh_token", "client": "dash"})
        );
        assert_eq!(
            json_of(&reqs[1].body),
            serde_json::json!({"token": "at", "token_type_hint": "access_token", "client": "dash"})
        );
    }

    #[tokio::test]
    async fn rev3_via_proxy_unsupported_token_type_tries_the_other() {
        let stub = Stub::start(vec![
            Reply::json(400, r#"{"error":"unsupported_token_type"}"#),
            Reply::json(200, "{}"),
        ])
        .await;
        let out = fast_client()
            .revoke_via_proxy(
                &stub.url("/"),
                Some(&AccessToken::new("at")),
                Some(&RefreshToken::new("rt")),
            )
            .await
            .unwrap();
        assert_eq!(out.refresh, Revocation::Unsupported);
        assert_eq!(out.access, Revocation::Revoked);
    }

    #[tokio::test]
    async fn rev3_via_proxy_502_retried_per_net2_then_reported() {
        let busy =
            r#"{"error":"server_error","error_description":"the authorization server failed"}"#;
        let stub = Stub::start(vec![Reply::json(502, busy), Reply::json(200, "{}")]).await;
        let out = fast_client()
            .revoke_via_proxy(&stub.url("/"), None, Some(&RefreshToken::new("rt")))
            .await
            .unwrap();
        assert_eq!(out.refresh, Revocation::Revoked);
        assert_eq!(
            stub.requests().len(),
            2,
            "revocation is idempotent: retried"
        );

        let stub = Stub::start(vec![Reply::json(502, busy)]).await;
        let e = fast_client()
            .revoke_via_proxy(&stub.url("/"), None, Some(&RefreshToken::new("rt")))
            .await
            .unwrap_err();
        assert!(e.is_transient(), "{e}");
    }

    #[tokio::test]
    async fn via_proxy_501_unsupported_operation_is_no_revocation_endpoint() {
        let stub = Stub::start(vec![Reply::json(
            501,
            r#"{"error":"unsupported_operation","error_description":"none"}"#,
        )])
        .await;
        let e = fast_client()
            .revoke_via_proxy(
                &stub.url("/"),
                Some(&AccessToken::new("at")),
                Some(&RefreshToken::new("rt")),
            )
            .await
            .unwrap_err();
        assert!(matches!(e, OAuthError::NoRevocationEndpoint), "{e}");
        assert_eq!(
            stub.requests().len(),
            1,
            "no second attempt for the access token"
        );
    }

    #[tokio::test]
    async fn via_proxy_invalid_client_is_returned() {
        let stub = Stub::start(vec![Reply::json(401, r#"{"error":"invalid_client"}"#)]).await;
        let e = fast_client()
            .revoke_via_proxy(&stub.url("/"), None, Some(&RefreshToken::new("rt")))
            .await
            .unwrap_err();
        assert_eq!(e.code(), Some("invalid_client"));
        assert_eq!(stub.requests().len(), 1);
    }
}
