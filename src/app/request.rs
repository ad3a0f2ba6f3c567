//! Using tokens: authenticated HTTP requests (USE-1..3) and running a command with tokens in
//! its environment (never in argv).

use super::{App, AppError, Result};
use crate::secret::AccessToken;
use std::time::Duration;

/// An authenticated request as the user wrote it.
#[derive(Debug, Clone)]
pub struct HttpRequest {
    /// Method, e.g. `GET`.
    pub method: String,
    /// Absolute URL.
    pub url: String,
    /// Extra headers `(name, value)`.
    pub headers: Vec<(String, String)>,
    /// Body, if any.
    pub body: Option<Vec<u8>>,
}

/// The response.
#[derive(Debug)]
pub struct HttpResponse {
    /// HTTP status.
    pub status: u16,
    /// The body.
    pub body: bytes::Bytes,
    /// `scope` from a 403 `insufficient_scope` challenge (USE-3).
    pub insufficient_scope: Option<String>,
    /// Whether authdeck refreshed after a 401 (USE-2).
    pub refreshed_after_401: bool,
}

impl App {
    /// Sends `req` with `Authorization: Bearer` (USE-1); on a 401 it refreshes once and tries
    /// again; a second 401 is final (USE-2). A 403 never triggers a refresh (USE-3).
    pub async fn request(&self, name: &str, req: &HttpRequest) -> Result<HttpResponse> {
        send_authenticated(req, |force| async move {
            self.fresh_token(name, force).await.map(|(t, _)| t)
        })
        .await
    }
}

/// USE-1..3 with the token from `token(force)`: the vault's own refresh, or the agent's
/// (AGENT-9), so `request` behaves the same either way. After a 401 the token is asked for
/// again with `force`; a refresh that kept the same token (the provider issues no refresh
/// token, or the refresh failed) has nothing new to try, and the first answer stands.
pub async fn send_authenticated<F, Fut>(req: &HttpRequest, mut token: F) -> Result<HttpResponse>
where
    F: FnMut(bool) -> Fut,
    Fut: std::future::Future<Output = Result<AccessToken>>,
{
    let first_token = token(false).await?;
    let first = send_with(&first_token, req).await?;
    if first.status().as_u16() != 401 {
        return finish(first, false).await;
    }
    let fresh = token(true).await?;
    if fresh.ct_eq(first_token.secret()) {
        return finish(first, false).await;
    }
    let second = send_with(&fresh, req).await?;
    finish(second, true).await
}

async fn send_with(token: &AccessToken, req: &HttpRequest) -> Result<reqwest::Response> {
    let method = reqwest::Method::from_bytes(req.method.to_ascii_uppercase().as_bytes())
        .map_err(|_| AppError::Config(format!("'{}' is not an HTTP method", req.method)))?;
    let client = reqwest::Client::builder()
        .use_rustls_tls()
        .timeout(Duration::from_secs(60))
        .build()
        .map_err(|e| AppError::Config(format!("cannot build the HTTP client: {e}")))?;
    let mut builder = client.request(method, &req.url).bearer_auth(token.secret());
    for (k, v) in &req.headers {
        builder = builder.header(k, v);
    }
    if let Some(body) = &req.body {
        builder = builder.body(body.clone());
    }
    builder.send().await.map_err(|e| {
        // reqwest's error text carries the URL, which is the user's own; no token in it.
        AppError::Config(format!("request failed: {}", e.without_url()))
    })
}

async fn finish(resp: reqwest::Response, refreshed: bool) -> Result<HttpResponse> {
    let status = resp.status().as_u16();
    let insufficient_scope = (status == 403)
        .then(|| {
            resp.headers()
                .get(reqwest::header::WWW_AUTHENTICATE)
                .and_then(|v| v.to_str().ok())
                .filter(|v| v.contains("insufficient_scope"))
                .map(|v| challenge_param(v, "scope").unwrap_or_default())
        })
        .flatten();
    let body = resp.bytes().await.map_err(|e| {
        AppError::Config(format!("reading the response failed: {}", e.without_url()))
    })?;
    Ok(HttpResponse {
        status,
        body,
        insufficient_scope,
        refreshed_after_401: refreshed,
    })
}

/// A parameter of a `WWW-Authenticate` challenge: `scope="a b"` → `a b`.
pub fn challenge_param(header: &str, name: &str) -> Option<String> {
    let start = header.find(&format!("{name}="))? + name.len() + 1;
    let rest = &header[start..];
    if let Some(quoted) = rest.strip_prefix('"') {
        quoted.split('"').next().map(str::to_string)
    } else {
        rest.split([',', ' ']).next().map(str::to_string)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn use3_scope_from_challenge() {
        assert_eq!(
            challenge_param(
                r#"Bearer error="insufficient_scope", scope="repo read:org""#,
                "scope"
            )
            .as_deref(),
            Some("repo read:org")
        );
        assert_eq!(
            challenge_param("Bearer scope=x,y", "scope").as_deref(),
            Some("x")
        );
        assert_eq!(challenge_param("Bearer", "scope"), None);
    }
}
