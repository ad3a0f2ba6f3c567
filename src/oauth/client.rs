//! The HTTP side: [`OAuthClient`] (reqwest, rustls, no redirects, timeouts), the retry loop
//! (NET-2..4), client authentication (RFC 6749 §2.3) and the code / refresh grants.

use std::time::{Duration, Instant, SystemTime};

use reqwest::header::{ACCEPT, AUTHORIZATION, CONTENT_TYPE, HeaderValue, RETRY_AFTER};
use url::Url;

use super::client_auth::ClientAuth;
use super::config::ClientConfig;
use super::device::DeviceTiming;
use super::error::{OAuthError, Result, TOKEN_ERROR_CODES, is_retryable_status};
use super::narrow::Narrowing;
use super::retry::{RetryPolicy, parse_retry_after};
use super::token::{TokenSet, error_in, parse_fields, parse_token_response};
pub use super::wire::basic_auth;
use crate::secret::{AuthCode, ClientSecret, PkceVerifier, RefreshToken};

/// Parameters the engine sets itself in token requests; `token_params` may not repeat them.
const RESERVED_TOKEN_PARAMS: &[&str] = &[
    "grant_type",
    "code",
    "redirect_uri",
    "code_verifier",
    "refresh_token",
    "client_id",
    "client_secret",
    "device_code",
    "token",
    "token_type_hint",
];

/// Transport settings of an [`OAuthClient`].
#[derive(Debug, Clone)]
pub struct ClientSettings {
    /// TCP + TLS connect timeout (NET-1: 10 s).
    pub connect_timeout: Duration,
    /// Whole-request timeout (NET-1: 30 s).
    pub timeout: Duration,
    /// Retry policy for transient failures (NET-2).
    pub retry: RetryPolicy,
    /// Device grant polling steps (RFC 8628 §3.5).
    pub device: DeviceTiming,
    /// Honour `HTTPS_PROXY` and friends. Tests turn it off so loopback is reached directly.
    pub system_proxy: bool,
}

impl Default for ClientSettings {
    fn default() -> Self {
        Self {
            connect_timeout: Duration::from_secs(10),
            timeout: Duration::from_secs(30),
            retry: RetryPolicy::default(),
            device: DeviceTiming::default(),
            system_proxy: true,
        }
    }
}

/// Talks to authorization servers. Cheap to clone (the connection pool is shared).
#[derive(Debug, Clone)]
pub struct OAuthClient {
    pub(crate) http: reqwest::Client,
    pub(crate) settings: ClientSettings,
    /// ID token signing keys per issuer, shared by all clones (DISC-5).
    pub(crate) jwks_cache: std::sync::Arc<super::jwks::JwksCache>,
}

/// An HTTP answer, read in full.
#[derive(Debug)]
pub(crate) struct RawResponse {
    pub status: u16,
    pub content_type: Option<String>,
    pub retry_after: Option<Duration>,
    pub body: bytes::Bytes,
    /// When the attempt that produced this answer was sent (EXP-1).
    pub sent_at: SystemTime,
}

/// When a failed request may be sent again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Replay {
    /// Safe to repeat: NET-2 in full (revocation, discovery, device authorization).
    Always,
    /// Refresh: NET-2, but after a post-send network failure only once (REF-8).
    OncePostSend,
    /// Code exchange: only when the request never left (NET-4). No retry on any answer.
    UnsentOnly,
}

/// A transport failure and whether the request may have reached the server.
struct SendFailure {
    err: OAuthError,
    sent: bool,
    /// TLS failures are never retried (NET-3).
    fatal: bool,
}

impl OAuthClient {
    /// A client with the default settings (10 s / 30 s timeouts, 3 attempts).
    pub fn new() -> Result<Self> {
        Self::with_settings(ClientSettings::default())
    }

    /// A client with explicit settings. TLS is validated by rustls; redirects are never
    /// followed (NET-1).
    pub fn with_settings(settings: ClientSettings) -> Result<Self> {
        let mut builder = reqwest::Client::builder()
            .use_rustls_tls()
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(settings.connect_timeout)
            .timeout(settings.timeout)
            .user_agent(concat!("authdeck/", env!("CARGO_PKG_VERSION")));
        if !settings.system_proxy {
            builder = builder.no_proxy();
        }
        let http = builder.build().map_err(|e| {
            OAuthError::Config(format!("cannot build the HTTP client: {}", chain(&e)))
        })?;
        Ok(Self {
            http,
            settings,
            jwks_cache: Default::default(),
        })
    }

    /// The settings this client was built with.
    pub fn settings(&self) -> &ClientSettings {
        &self.settings
    }

    /// Exchanges an authorization code (TOK-2): `grant_type=authorization_code`, `code`,
    /// `redirect_uri` exactly as sent, `code_verifier`. The verifier is consumed and dropped
    /// (PKCE-4). Retried only if the request never left (NET-4).
    pub async fn exchange_code(
        &self,
        config: &ClientConfig,
        code: &AuthCode,
        verifier: PkceVerifier,
        redirect_uri: &str,
    ) -> Result<TokenSet> {
        let params = [
            ("grant_type", "authorization_code"),
            ("code", code.secret()),
            ("redirect_uri", redirect_uri),
            ("code_verifier", verifier.secret()),
        ];
        let request = self.token_request(config, config.token_url()?, &params)?;
        drop(verifier);
        self.token_grant(config, request, Replay::UnsentOnly, "authorization_code")
            .await
    }

    /// Refreshes (REF-1): `grant_type=refresh_token`, `refresh_token`, and `scope` when the
    /// provider wants it. A response without `refresh_token` yields `refresh_token: None`:
    /// the caller keeps the old one (REF-4).
    pub async fn refresh(&self, config: &ClientConfig, refresh: &RefreshToken) -> Result<TokenSet> {
        let scope = config.scope_string().filter(|_| config.scope_on_refresh);
        let mut params = vec![
            ("grant_type", "refresh_token"),
            ("refresh_token", refresh.secret()),
        ];
        if let Some(scope) = &scope {
            params.push(("scope", scope));
        }
        // PROV-5: GitLab documents the login's redirect_uri on the refresh request.
        if let Some(uri) = &config.refresh_redirect_uri {
            params.push(("redirect_uri", uri));
        }
        let request = self.token_request(config, config.token_url()?, &params)?;
        self.token_grant(config, request, Replay::OncePostSend, "refresh_token")
            .await
    }

    /// The client credentials grant (RFC 6749 §4.4; MACH-1): a token for the client itself, no
    /// user and no refresh token. Sending it again is harmless, so a send that may have
    /// reached the server is retried like a refresh.
    pub async fn client_credentials(&self, config: &ClientConfig) -> Result<TokenSet> {
        let scope = config.scope_string();
        let mut params = vec![("grant_type", "client_credentials")];
        if let Some(scope) = &scope {
            params.push(("scope", scope));
        }
        let request = self.token_request(config, config.token_url()?, &params)?;
        self.token_grant(config, request, Replay::OncePostSend, "client_credentials")
            .await
    }

    /// A refresh for a narrower token (REF-9): the refresh token grant with `scope`, and RFC
    /// 8707 `resource` or `audience`, as asked, instead of the account's own scope. The
    /// caller keeps the account's main access token; a rotated refresh token replaces the
    /// stored one as for any refresh (REF-3).
    pub async fn refresh_narrowed(
        &self,
        config: &ClientConfig,
        refresh: &RefreshToken,
        narrow: &Narrowing,
    ) -> Result<TokenSet> {
        let mut params = vec![
            ("grant_type", "refresh_token"),
            ("refresh_token", refresh.secret()),
        ];
        let scope = narrow.scope.as_ref().map(|s| s.join(" "));
        if let Some(scope) = &scope {
            params.push(("scope", scope));
        }
        if let Some(resource) = &narrow.resource {
            params.push(("resource", resource.as_str()));
        }
        if let Some(audience) = &narrow.audience {
            params.push(("audience", audience));
        }
        if let Some(uri) = &config.refresh_redirect_uri {
            params.push(("redirect_uri", uri));
        }
        let mut config = config.clone();
        if let Some(scope) = &narrow.scope {
            // TOK-6: an absent `scope` in the answer means the scope asked for.
            config.scopes = scope.clone();
        }
        let request = self.token_request(&config, config.token_url()?, &params)?;
        self.token_grant(&config, request, Replay::OncePostSend, "refresh_token")
            .await
    }

    /// Sends a token request and parses the answer.
    pub(crate) async fn token_grant(
        &self,
        config: &ClientConfig,
        request: reqwest::Request,
        replay: Replay,
        grant: &'static str,
    ) -> Result<TokenSet> {
        let host = host_of(request.url());
        let resp = self.send(request, replay).await?;
        let result = parse_token_response(
            resp.status,
            resp.content_type.as_deref(),
            &resp.body,
            &config.scopes,
            config.default_lifetime,
            resp.sent_at,
        );
        match &result {
            Ok(t) => tracing::debug!(%host, grant, status = resp.status,
                access = %t.access_token.fingerprint(), rotated = t.refresh_token.is_some(), "token granted"),
            Err(e) => tracing::debug!(%host, grant, status = resp.status,
                code = e.code().unwrap_or("-"), "token request failed"),
        }
        result
    }

    /// A POST with a form body, `Accept: application/json` (TOK-1), and client
    /// authentication per `config.client_auth` (SECRET-2), then `token_params`.
    pub(crate) fn token_request(
        &self,
        config: &ClientConfig,
        url: &Url,
        params: &[(&str, &str)],
    ) -> Result<reqwest::Request> {
        let mut form = form_urlencoded::Serializer::new(String::new());
        form.extend_pairs(params);
        let mut basic = None;
        match &config.client_auth {
            ClientAuth::None => {
                form.append_pair("client_id", &config.client_id);
            }
            ClientAuth::Post(secret) => {
                form.append_pair("client_id", &config.client_id);
                form.append_pair("client_secret", secret.secret());
            }
            ClientAuth::Basic(secret) => {
                basic = Some(basic_header(&config.client_id, secret)?);
            }
        }
        for (k, v) in &config.token_params {
            if RESERVED_TOKEN_PARAMS.contains(&k.as_str()) || params.iter().any(|(p, _)| p == k) {
                return Err(OAuthError::Config(format!(
                    "token_params may not set '{k}' (client auth '{}')",
                    config.client_auth.method().as_str()
                )));
            }
            form.append_pair(k, v);
        }
        self.form_post(url, form.finish(), basic)
    }

    /// A POST of an already-encoded form body with `Accept: application/json`.
    pub(crate) fn form_post(
        &self,
        url: &Url,
        body: String,
        basic: Option<HeaderValue>,
    ) -> Result<reqwest::Request> {
        let mut builder = self
            .http
            .post(url.clone())
            .header(ACCEPT, "application/json")
            .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body(body);
        if let Some(value) = basic {
            builder = builder.header(AUTHORIZATION, value);
        }
        builder
            .build()
            .map_err(|_| OAuthError::Config("cannot build the request".into()))
    }

    /// Sends `request`, retrying per NET-2 within what `replay` allows. Returns the last
    /// answer when retries run out (the caller turns its status into an error).
    pub(crate) async fn send(
        &self,
        request: reqwest::Request,
        replay: Replay,
    ) -> Result<RawResponse> {
        let policy = self.settings.retry;
        let host = host_of(request.url());
        let started = Instant::now();
        let mut post_send_failures = 0u32;
        let mut attempt = 0u32;
        loop {
            let this = request
                .try_clone()
                .ok_or_else(|| OAuthError::Config("request body cannot be replayed".into()))?;
            let (last, retry_after): (Result<RawResponse>, _) = match self.send_once(this).await {
                Ok(resp) => {
                    if replay == Replay::UnsentOnly || !should_retry_response(&resp) {
                        return Ok(resp);
                    }
                    tracing::debug!(%host, status = resp.status, attempt, "transient HTTP status");
                    let ra = resp.retry_after;
                    (Ok(resp), ra)
                }
                Err(f) => {
                    let allowed = !f.fatal
                        && match replay {
                            Replay::Always => true,
                            Replay::UnsentOnly => !f.sent,
                            Replay::OncePostSend => !f.sent || post_send_failures == 0,
                        };
                    if !allowed {
                        return Err(f.err);
                    }
                    post_send_failures += u32::from(f.sent);
                    tracing::debug!(%host, attempt, sent = f.sent, error = %f.err, "transport failure");
                    (Err(f.err), None)
                }
            };
            if attempt + 1 >= policy.max_attempts {
                return last;
            }
            let Some(delay) = policy.delay(attempt, retry_after) else {
                return last;
            };
            if started.elapsed() + delay > policy.max_total {
                return last;
            }
            tracing::debug!(%host, attempt, delay_ms = delay.as_millis() as u64, "retrying");
            tokio::time::sleep(delay).await;
            attempt += 1;
        }
    }

    /// One attempt, no retry (device polling has its own backoff, DEV-7).
    pub(crate) async fn send_single(&self, request: reqwest::Request) -> Result<RawResponse> {
        self.send_once(request).await.map_err(|f| f.err)
    }

    /// One attempt: send, read the whole body.
    async fn send_once(
        &self,
        request: reqwest::Request,
    ) -> std::result::Result<RawResponse, SendFailure> {
        let sent_at = SystemTime::now();
        let resp = self.http.execute(request).await.map_err(failure)?;
        let status = resp.status().as_u16();
        let header = |name| {
            resp.headers()
                .get(name)
                .and_then(|v: &HeaderValue| v.to_str().ok())
                .map(str::to_owned)
        };
        let content_type = header(CONTENT_TYPE);
        let retry_after =
            header(RETRY_AFTER).and_then(|v| parse_retry_after(&v, SystemTime::now()));
        let body = read_capped(resp).await?;
        Ok(RawResponse {
            status,
            content_type,
            retry_after,
            body,
            sent_at,
        })
    }
}

/// The largest response body read from an authorization server (HARD-3): token, device,
/// discovery and JWKS answers are a few KiB; a bigger one is refused before it fills memory.
pub(crate) const MAX_RESPONSE_BODY: usize = 1024 * 1024;

/// Reads `resp`'s body, refusing one over [`MAX_RESPONSE_BODY`] as soon as it is known to be
/// (from `Content-Length`, or while reading), and never retrying that answer.
async fn read_capped(
    mut resp: reqwest::Response,
) -> std::result::Result<bytes::Bytes, SendFailure> {
    let too_large = || SendFailure {
        err: OAuthError::InvalidResponse(format!(
            "the response body is larger than {} KiB",
            MAX_RESPONSE_BODY / 1024
        )),
        sent: true,
        fatal: true,
    };
    if resp
        .content_length()
        .is_some_and(|n| n > MAX_RESPONSE_BODY as u64)
    {
        return Err(too_large());
    }
    let mut body = Vec::new();
    while let Some(chunk) = resp.chunk().await.map_err(failure)? {
        if body.len() + chunk.len() > MAX_RESPONSE_BODY {
            return Err(too_large());
        }
        body.extend_from_slice(&chunk);
    }
    Ok(bytes::Bytes::from(body))
}

/// NET-2 / NET-3: retry 429 and 500/502/503/504, unless the body is an RFC 6749 §5.2 error.
fn should_retry_response(resp: &RawResponse) -> bool {
    if !is_retryable_status(resp.status) {
        return false;
    }
    let token_error = parse_fields(resp.content_type.as_deref(), &resp.body)
        .ok()
        .and_then(|f| error_in(resp.status, &f))
        .is_some_and(|e| e.code().is_some_and(|c| TOKEN_ERROR_CODES.contains(&c)));
    !token_error
}

/// Classifies a reqwest error. Connect errors never reached the server (NET-4).
fn failure(e: reqwest::Error) -> SendFailure {
    let detail = chain(&e);
    let lower = detail.to_ascii_lowercase();
    let fatal = lower.contains("certificate") || lower.contains("tls");
    let sent = !e.is_connect();
    let err = if e.is_timeout() {
        OAuthError::Timeout
    } else {
        OAuthError::Network(detail)
    };
    SendFailure { err, sent, fatal }
}

/// The error and its sources, without the URL (a URL could carry a query).
fn chain(e: &reqwest::Error) -> String {
    let mut out = String::from("request failed");
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    super::error::sanitize(&out, 300)
}

/// The host of a URL, for logs.
pub(crate) fn host_of(url: &Url) -> String {
    url.host_str().unwrap_or("?").to_owned()
}

/// [`basic_auth`] for a request: an unbuildable header is a configuration error, never a bare
/// `Basic`.
pub(crate) fn basic_header(client_id: &str, secret: &ClientSecret) -> Result<HeaderValue> {
    basic_auth(client_id, secret)
        .ok_or_else(|| OAuthError::Config("the client credentials cannot be encoded".into()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::oauth::client_auth::AuthMethod;
    use crate::oauth::testutil::{Reply, Stub, fast_client, form_of};
    use std::time::Duration;

    fn config(stub: &Stub, auth: AuthMethod) -> ClientConfig {
        ClientConfig {
            client_id: "my client".into(),
            client_auth: ClientAuth::new(auth, Some(ClientSecret::new("p@ss:w/rd+=?"))).unwrap(),
            token_endpoint: Some(stub.url("/token")),
            scopes: vec!["openid".into(), "email".into()],
            ..Default::default()
        }
    }

    const OK: &str = r#"{"access_token":"at-fx-1","token_type":"Bearer","expires_in":3600,"refresh_token":"rt-fx-A1"}"#;

    async fn exchange(_stub: &Stub, cfg: &ClientConfig) -> Result<TokenSet> {
        fast_client()
            .exchange_code(
                cfg,
                &AuthCode::new("c1"),
                PkceVerifier::new("v".repeat(43)),
                "http://127.0.0.1:1/cb",
            )
            .await
    }

    #[test]
    fn secret2_basic_auth_rfc6749_vectors() {
        let v = basic_auth("s6BhdRkqt3", &ClientSecret::new("gX1fBat3bV")).unwrap();
        assert_eq!(v.to_str().unwrap(), "Basic czZCaGRSa3F0MzpnWDFmQmF0M2JW");
        let v = basic_auth("my client", &ClientSecret::new("p@ss:w/rd+=?")).unwrap();
        assert_eq!(
            v.to_str().unwrap(),
            "Basic bXkrY2xpZW50OnAlNDBzcyUzQXclMkZyZCUyQiUzRCUzRg=="
        );
        assert!(v.is_sensitive());
    }

    #[tokio::test]
    async fn tok1_tok2_exchange_with_client_auth_none() {
        let stub = Stub::start(vec![Reply::json(200, OK)]).await;
        let t = exchange(&stub, &config(&stub, AuthMethod::None))
            .await
            .unwrap();
        assert_eq!(t.access_token.secret(), "at-fx-1");
        let r = &stub.requests()[0];
        assert_eq!((r.method.as_str(), r.path.as_str()), ("POST", "/token"));
        assert_eq!(r.header("accept").as_deref(), Some("application/json"));
        assert_eq!(
            r.header("content-type").as_deref(),
            Some("application/x-www-form-urlencoded")
        );
        assert!(r.header("authorization").is_none());
        let f = form_of(&r.body);
        assert_eq!(f["grant_type"], "authorization_code");
        assert_eq!(f["code"], "c1");
        assert_eq!(f["redirect_uri"], "http://127.0.0.1:1/cb");
        assert_eq!(f["code_verifier"], "v".repeat(43));
        assert_eq!(f["client_id"], "my client");
        assert!(!f.contains_key("client_secret"));
        assert!(!r.raw.contains("p%40ss") && !r.raw.contains("p@ss"));
    }

    #[tokio::test]
    async fn secret2_basic_auth_puts_secret_only_in_header() {
        let stub = Stub::start(vec![Reply::json(200, OK)]).await;
        exchange(&stub, &config(&stub, AuthMethod::Basic))
            .await
            .unwrap();
        let r = &stub.requests()[0];
        assert_eq!(
            r.header("authorization").as_deref(),
            Some("Basic bXkrY2xpZW50OnAlNDBzcyUzQXclMkZyZCUyQiUzRCUzRg==")
        );
        let f = form_of(&r.body);
        assert!(!f.contains_key("client_secret") && !f.contains_key("client_id"));
        assert!(!r.body.contains("ss"));
    }

    #[tokio::test]
    async fn secret2_post_auth_puts_secret_only_in_body() {
        let stub = Stub::start(vec![Reply::json(200, OK)]).await;
        exchange(&stub, &config(&stub, AuthMethod::Post))
            .await
            .unwrap();
        let r = &stub.requests()[0];
        assert!(r.header("authorization").is_none());
        let f = form_of(&r.body);
        assert_eq!(f["client_id"], "my client");
        assert_eq!(f["client_secret"], "p@ss:w/rd+=?");
        assert!(!r.path.contains('?'));
    }

    #[tokio::test]
    async fn tok_form_encoded_response_over_http() {
        let stub = Stub::start(vec![Reply::form(
            200,
            "access_token=gho_1&token_type=bearer&scope=repo",
        )])
        .await;
        let t = exchange(&stub, &config(&stub, AuthMethod::None))
            .await
            .unwrap();
        assert_eq!(t.access_token.secret(), "gho_1");
        assert_eq!(t.scopes, ["repo"]);
    }

    #[tokio::test]
    async fn net2_retries_each_transient_status_then_succeeds_on_refresh() {
        for status in [500u16, 502, 503, 504, 429] {
            let stub = Stub::start(vec![Reply::text(status, "oops"), Reply::json(200, OK)]).await;
            let cfg = config(&stub, AuthMethod::None);
            let t = fast_client()
                .refresh(&cfg, &RefreshToken::new("rt"))
                .await
                .unwrap();
            assert_eq!(t.access_token.secret(), "at-fx-1", "{status}");
            assert_eq!(stub.requests().len(), 2, "{status}");
        }
    }

    #[tokio::test]
    async fn net2_429_retry_after_is_honoured() {
        let stub = Stub::start(vec![
            Reply::text(429, "slow down").header("Retry-After", "1"),
            Reply::json(200, OK),
        ])
        .await;
        let cfg = config(&stub, AuthMethod::None);
        fast_client()
            .refresh(&cfg, &RefreshToken::new("rt"))
            .await
            .unwrap();
        let reqs = stub.requests();
        assert_eq!(reqs.len(), 2);
        assert!(reqs[1].at - reqs[0].at >= Duration::from_millis(950));
    }

    #[tokio::test]
    async fn net2_retry_after_beyond_cap_is_not_waited_for() {
        let stub = Stub::start(vec![Reply::text(429, "no").header("Retry-After", "500")]).await;
        let cfg = config(&stub, AuthMethod::None);
        let e = fast_client()
            .refresh(&cfg, &RefreshToken::new("rt"))
            .await
            .unwrap_err();
        assert!(matches!(e, OAuthError::Http { status: 429 }));
        assert_eq!(stub.requests().len(), 1);
    }

    #[tokio::test]
    async fn net2_attempts_are_bounded() {
        let stub = Stub::start(vec![Reply::text(503, "down")]).await;
        let cfg = config(&stub, AuthMethod::None);
        let e = fast_client()
            .refresh(&cfg, &RefreshToken::new("rt"))
            .await
            .unwrap_err();
        assert!(matches!(e, OAuthError::Http { status: 503 }) && e.is_transient());
        assert_eq!(stub.requests().len(), 3);
    }

    #[tokio::test]
    async fn net3_client_errors_not_retried() {
        for status in [400u16, 401, 403, 404] {
            let stub = Stub::start(vec![Reply::text(status, "no"), Reply::json(200, OK)]).await;
            let cfg = config(&stub, AuthMethod::None);
            let e = fast_client()
                .refresh(&cfg, &RefreshToken::new("rt"))
                .await
                .unwrap_err();
            assert!(matches!(e, OAuthError::Http { .. }), "{status}: {e}");
            assert_eq!(stub.requests().len(), 1, "{status}");
        }
    }

    #[tokio::test]
    async fn err2_invalid_grant_attempted_exactly_once_even_on_5xx() {
        for status in [400u16, 500, 503] {
            let stub = Stub::start(vec![
                Reply::json(
                    status,
                    r#"{"error":"invalid_grant","error_description":"refresh token revoked"}"#,
                ),
                Reply::json(200, OK),
            ])
            .await;
            let cfg = config(&stub, AuthMethod::None);
            let e = fast_client()
                .refresh(&cfg, &RefreshToken::new("rt"))
                .await
                .unwrap_err();
            assert!(e.is_invalid_grant(), "{e}");
            assert!(e.to_string().contains("refresh token revoked"));
            assert_eq!(stub.requests().len(), 1);
        }
    }

    #[tokio::test]
    async fn err3_unknown_error_code_is_shown_escaped_and_final_on_4xx() {
        let stub = Stub::start(vec![
            Reply::json(400, r#"{"error":"brand_new\u001b[31m_code"}"#),
            Reply::json(200, OK),
        ])
        .await;
        let cfg = config(&stub, AuthMethod::None);
        let e = fast_client()
            .refresh(&cfg, &RefreshToken::new("rt"))
            .await
            .unwrap_err();
        let text = e.to_string();
        assert!(
            text.contains("brand_new") && !text.contains('\u{1b}'),
            "{text}"
        );
        assert_eq!(stub.requests().len(), 1);
    }

    #[tokio::test]
    async fn ref7_invalid_client_is_config_error_not_retried() {
        let stub = Stub::start(vec![
            Reply::json(401, r#"{"error":"invalid_client"}"#)
                .header("WWW-Authenticate", "Basic realm=\"as\""),
        ])
        .await;
        let cfg = config(&stub, AuthMethod::Basic);
        let e = fast_client()
            .refresh(&cfg, &RefreshToken::new("rt"))
            .await
            .unwrap_err();
        assert!(e.is_config_error() && !e.is_transient());
        assert_eq!(stub.requests().len(), 1);
    }

    #[tokio::test]
    async fn net2_network_error_retried_connect_refused() {
        let port = crate::oauth::testutil::closed_port().await;
        let cfg = ClientConfig {
            client_id: "c".into(),
            token_endpoint: Some(Url::parse(&format!("http://127.0.0.1:{port}/token")).unwrap()),
            ..Default::default()
        };
        let started = Instant::now();
        let e = fast_client()
            .refresh(&cfg, &RefreshToken::new("rt"))
            .await
            .unwrap_err();
        assert!(
            matches!(e, OAuthError::Network(_)) && e.is_transient(),
            "{e}"
        );
        assert!(started.elapsed() < Duration::from_secs(5));
    }

    #[tokio::test]
    async fn net2_post_send_network_error_retried_on_refresh() {
        let stub = Stub::start(vec![Reply::Drop, Reply::json(200, OK)]).await;
        let cfg = config(&stub, AuthMethod::None);
        fast_client()
            .refresh(&cfg, &RefreshToken::new("rt"))
            .await
            .unwrap();
        assert_eq!(stub.requests().len(), 2);
    }

    #[tokio::test]
    async fn ref8_post_send_failure_retried_only_once_on_refresh() {
        let stub = Stub::start(vec![Reply::Drop, Reply::Drop, Reply::json(200, OK)]).await;
        let cfg = config(&stub, AuthMethod::None);
        let e = fast_client()
            .refresh(&cfg, &RefreshToken::new("rt"))
            .await
            .unwrap_err();
        assert!(matches!(e, OAuthError::Network(_)), "{e}");
        assert_eq!(stub.requests().len(), 2);
    }

    #[tokio::test]
    async fn net4_code_exchange_not_retried_after_send() {
        let stub = Stub::start(vec![Reply::Drop, Reply::json(200, OK)]).await;
        let e = exchange(&stub, &config(&stub, AuthMethod::None))
            .await
            .unwrap_err();
        assert!(matches!(e, OAuthError::Network(_)), "{e}");
        assert_eq!(stub.requests().len(), 1);

        let stub = Stub::start(vec![Reply::text(503, "down"), Reply::json(200, OK)]).await;
        let e = exchange(&stub, &config(&stub, AuthMethod::None))
            .await
            .unwrap_err();
        assert!(matches!(e, OAuthError::Http { status: 503 }));
        assert_eq!(stub.requests().len(), 1);
    }

    /// HARD-3: a token response larger than the cap is refused (not read into memory without
    /// bound) and not retried; one just under it is read.
    #[tokio::test]
    async fn hard3_oversized_response_body_is_refused() {
        let pad = "x".repeat(MAX_RESPONSE_BODY + 1);
        let huge = format!(r#"{{"access_token":"at","token_type":"Bearer","pad":"{pad}"}}"#);
        let stub = Stub::start(vec![Reply::json(200, &huge), Reply::json(200, OK)]).await;
        let e = exchange(&stub, &config(&stub, AuthMethod::None))
            .await
            .unwrap_err();
        assert!(
            matches!(&e, OAuthError::InvalidResponse(m) if m.contains("larger than 1024 KiB")),
            "{e}"
        );
        assert_eq!(stub.requests().len(), 1, "never retried");
        let pad = "x".repeat(MAX_RESPONSE_BODY - 100);
        let big = format!(r#"{{"access_token":"at","token_type":"Bearer","pad":"{pad}"}}"#);
        let stub = Stub::start(vec![Reply::json(200, &big)]).await;
        assert!(
            exchange(&stub, &config(&stub, AuthMethod::None))
                .await
                .is_ok()
        );
    }

    #[tokio::test]
    async fn net1_total_timeout() {
        let stub = Stub::start(vec![Reply::json(200, OK).delay(Duration::from_secs(3))]).await;
        let mut settings = crate::oauth::testutil::fast_settings();
        settings.timeout = Duration::from_millis(300);
        settings.retry = RetryPolicy::none();
        let client = OAuthClient::with_settings(settings).unwrap();
        let cfg = config(&stub, AuthMethod::None);
        let started = Instant::now();
        let e = client
            .refresh(&cfg, &RefreshToken::new("rt"))
            .await
            .unwrap_err();
        assert!(matches!(e, OAuthError::Timeout), "{e}");
        assert!(started.elapsed() < Duration::from_secs(2));
    }

    #[tokio::test]
    async fn ref1_refresh_request_and_ref4_rotation() {
        let stub = Stub::start(vec![
            Reply::json(200, r#"{"access_token":"at-fx-2","token_type":"bearer","expires_in":"3600","refresh_token":"rt-fx-A2"}"#),
            Reply::json(200, r#"{"access_token":"at-fx-3","token_type":"Bearer"}"#),
        ])
        .await;
        let cfg = config(&stub, AuthMethod::None);
        let client = fast_client();
        let t = client
            .refresh(&cfg, &RefreshToken::new("rt-fx-A1"))
            .await
            .unwrap();
        assert_eq!(t.refresh_token.unwrap().secret(), "rt-fx-A2");
        let f = form_of(&stub.requests()[0].body);
        assert_eq!(f["grant_type"], "refresh_token");
        assert_eq!(f["refresh_token"], "rt-fx-A1");
        assert_eq!(f["client_id"], "my client");
        assert!(!f.contains_key("scope"));
        // REF-4: no refresh_token in the answer → None, the caller keeps the old one.
        let t = client
            .refresh(&cfg, &RefreshToken::new("rt-fx-A2"))
            .await
            .unwrap();
        assert!(t.refresh_token.is_none());
        assert_eq!(t.expires_at, None);
        assert_eq!(t.scopes, ["openid", "email"]);
    }

    #[tokio::test]
    async fn ref1_scope_sent_on_refresh_when_configured() {
        let stub = Stub::start(vec![Reply::json(200, OK)]).await;
        let mut cfg = config(&stub, AuthMethod::None);
        cfg.scope_on_refresh = true;
        cfg.token_params = vec![("resource".into(), "https://api.example".into())];
        fast_client()
            .refresh(&cfg, &RefreshToken::new("rt"))
            .await
            .unwrap();
        let f = form_of(&stub.requests()[0].body);
        assert_eq!(f["scope"], "openid email");
        assert_eq!(f["resource"], "https://api.example");
    }

    #[tokio::test]
    async fn prov5_refresh_carries_the_login_redirect_uri_when_configured() {
        let stub = Stub::start(vec![Reply::json(200, OK), Reply::json(200, OK)]).await;
        let mut cfg = config(&stub, AuthMethod::None);
        let client = fast_client();
        client
            .refresh(&cfg, &RefreshToken::new("rt"))
            .await
            .unwrap();
        cfg.refresh_redirect_uri = Some("http://127.0.0.1:8123/callback".into());
        client
            .refresh(&cfg, &RefreshToken::new("rt"))
            .await
            .unwrap();
        let reqs = stub.requests();
        assert!(!form_of(&reqs[0].body).contains_key("redirect_uri"));
        assert_eq!(
            form_of(&reqs[1].body)["redirect_uri"],
            "http://127.0.0.1:8123/callback"
        );
    }

    #[tokio::test]
    async fn token_params_may_not_override_reserved() {
        let stub = Stub::start(vec![Reply::json(200, OK)]).await;
        let mut cfg = config(&stub, AuthMethod::None);
        cfg.token_params = vec![("client_secret".into(), "x".into())];
        assert!(exchange(&stub, &cfg).await.unwrap_err().is_config_error());
    }

    #[tokio::test]
    async fn disc4_plain_http_token_endpoint_refused() {
        let cfg = ClientConfig {
            client_id: "c".into(),
            token_endpoint: Some(Url::parse("http://as.example/token").unwrap()),
            ..Default::default()
        };
        let e = fast_client()
            .refresh(&cfg, &RefreshToken::new("rt"))
            .await
            .unwrap_err();
        assert!(e.is_config_error());
    }

    #[tokio::test]
    async fn redirects_not_followed() {
        let stub = Stub::start(vec![
            Reply::text(302, "").header("Location", "http://127.0.0.1:1/elsewhere"),
        ])
        .await;
        let e = exchange(&stub, &config(&stub, AuthMethod::None))
            .await
            .unwrap_err();
        assert!(matches!(e, OAuthError::Http { status: 302 }));
        assert_eq!(stub.requests().len(), 1);
    }

    #[tokio::test]
    async fn net4_connect_error_counts_as_not_sent_and_drop_as_sent() {
        let http = reqwest::Client::builder().no_proxy().build().unwrap();
        let port = crate::oauth::testutil::closed_port().await;
        let e = http
            .get(format!("http://127.0.0.1:{port}/"))
            .send()
            .await
            .unwrap_err();
        assert!(!failure(e).sent);
        let stub = Stub::start(vec![Reply::Drop]).await;
        let e = http.get(stub.url("/")).send().await.unwrap_err();
        let f = failure(e);
        assert!(f.sent && !f.fatal);
    }

    /// LOG-3. The subscriber is scoped to this thread (`with_default`, never global) and the
    /// requests run on a current-thread runtime inside that scope, so exactly this test's events
    /// are captured, whatever other tests of the binary do on their threads meanwhile.
    #[test]
    fn log3_no_secret_in_trace_logs() {
        use std::sync::{Arc, Mutex};
        #[derive(Clone, Default)]
        struct Buf(Arc<Mutex<Vec<u8>>>);
        impl std::io::Write for Buf {
            fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
                self.0.lock().unwrap().extend_from_slice(b);
                Ok(b.len())
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        let buf = Buf::default();
        let writer = buf.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_max_level(tracing::Level::TRACE)
            .with_writer(move || writer.clone())
            .with_ansi(false)
            .finish();
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        tracing::subscriber::with_default(subscriber, || {
            // Another thread may have cached a callsite's interest as "never" before this
            // subscriber existed; recompute it so our events cannot be lost.
            tracing::callsite::rebuild_interest_cache();
            rt.block_on(log3_requests());
        });
        let logs = String::from_utf8(buf.0.lock().unwrap().clone()).unwrap();
        assert!(logs.contains("token granted"), "nothing logged: {logs}");
        assert!(!logs.contains("LEAK"), "secret in logs: {logs}");
        let header = basic_auth("my client", &ClientSecret::new("cs-LEAK-3")).unwrap();
        let b64 = header.to_str().unwrap().trim_start_matches("Basic ");
        assert!(!logs.contains(b64), "basic header in logs");
    }

    /// The requests of the LOG-3 test: a retried refresh, then a refused code exchange, with a
    /// client secret sent in a Basic header.
    async fn log3_requests() {
        let stub = Stub::start(vec![
            Reply::text(503, ""),
            Reply::json(
                200,
                r#"{"access_token":"at-LEAK-1","token_type":"Bearer","refresh_token":"rt-LEAK-2"}"#,
            ),
            Reply::json(
                400,
                r#"{"error":"invalid_grant","error_description":"bad"}"#,
            ),
        ])
        .await;
        let mut cfg = config(&stub, AuthMethod::Basic);
        cfg.client_auth = ClientAuth::Basic(ClientSecret::new("cs-LEAK-3"));
        let client = fast_client();
        client
            .refresh(&cfg, &RefreshToken::new("rt-LEAK-4"))
            .await
            .unwrap();
        let _ = client
            .exchange_code(
                &cfg,
                &AuthCode::new("code-LEAK-5"),
                PkceVerifier::new("ver-LEAK-6"),
                "http://127.0.0.1:1/cb",
            )
            .await;
    }
}
