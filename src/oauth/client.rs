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
    "client_assertion",
    "client_assertion_type",
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
            ClientAuth::PrivateKeyJwt(key) => {
                // MACH-2: the audience is the endpoint the assertion is sent to (RFC 7523 §3).
                let jwt = key
                    .assertion(&config.client_id, url.as_str(), unix_now(SystemTime::now()))
                    .map_err(|e| OAuthError::Config(e.to_string()))?;
                form.append_pair("client_id", &config.client_id);
                form.append_pair(
                    "client_assertion_type",
                    super::client_assertion::ASSERTION_TYPE,
                );
                form.append_pair("client_assertion", &jwt);
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
mod tests;

/// Seconds since the Unix epoch (0 before it: a clock that wrong fails elsewhere first).
fn unix_now(now: SystemTime) -> i64 {
    now.duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}
