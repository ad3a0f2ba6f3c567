//! The device authorization grant (RFC 8628): start, then poll until approved, denied,
//! expired or cancelled.

use std::time::{Duration, Instant};

use serde_json::Value;
use tokio::sync::watch;

use super::client::{OAuthClient, RawResponse, Replay};
use super::config::{ClientConfig, check_endpoint};
use super::error::{OAuthError, Result, is_retryable_status};
use super::token::{TokenSet, error_in, parse_expires_in, parse_fields, parse_token_response};
use crate::secret::DeviceCode;

/// The grant type URN polled at the token endpoint (DEV-4).
pub const DEVICE_GRANT: &str = "urn:ietf:params:oauth:grant-type:device_code";
/// Interval when the server sends none (DEV-2).
pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(5);
/// The longest device-code lifetime believed (HARD-4): RFC 8628 servers give minutes; a huge
/// `expires_in` must neither overflow a deadline nor keep a login polling for days.
pub const MAX_DEVICE_LIFETIME: Duration = Duration::from_secs(3600);
/// The longest polling interval, whatever `interval`, `slow_down` or `Retry-After` say
/// (HARD-4).
pub const MAX_DEVICE_INTERVAL: Duration = Duration::from_secs(300);

/// Polling steps. The defaults are RFC 8628's; tests shrink them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeviceTiming {
    /// Added to the interval on every `slow_down` (DEV-5: 5 s).
    pub slow_down_step: Duration,
    /// Ceiling of the doubled interval after timeouts or 5xx / 429 (DEV-7: 60 s).
    pub max_interval: Duration,
}

impl Default for DeviceTiming {
    fn default() -> Self {
        Self {
            slow_down_step: Duration::from_secs(5),
            max_interval: Duration::from_secs(60),
        }
    }
}

/// A started device login: show `user_code` and `verification_uri` (DEV-3), then poll.
pub struct DeviceAuthorization {
    /// The secret device code (never logged, DEV-3).
    pub device_code: DeviceCode,
    /// The code the user types.
    pub user_code: String,
    /// Where the user goes.
    pub verification_uri: String,
    /// The same with the code filled in, when given (good for a QR code).
    pub verification_uri_complete: Option<String>,
    /// Lifetime of the device code.
    pub expires_in: Duration,
    /// Polling interval (5 s when absent, DEV-2). Public so tests can shorten it.
    pub interval: Duration,
    /// When the authorization was received; polling stops at `started + expires_in` (DEV-8).
    pub started: Instant,
}

impl std::fmt::Debug for DeviceAuthorization {
    // user_code is shown to the user but never logged (LOG-1).
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DeviceAuthorization")
            .field("device_code", &self.device_code)
            .field("user_code", &"[redacted]")
            .field("verification_uri", &self.verification_uri)
            .field("expires_in", &self.expires_in)
            .field("interval", &self.interval)
            .finish()
    }
}

impl OAuthClient {
    /// DEV-1: POSTs `client_id` and `scope` to the device authorization endpoint. Client
    /// authentication follows `client_auth` (RFC 8628 §3.1 applies RFC 6749 §3.2.1), so a
    /// public client sends only `client_id`.
    pub async fn start_device(&self, config: &ClientConfig) -> Result<DeviceAuthorization> {
        let url = config
            .device_authorization_endpoint
            .as_ref()
            .ok_or_else(|| {
                OAuthError::Config("the provider has no device authorization endpoint".into())
            })?;
        check_endpoint(url)?;
        let scope = config.scope_string();
        let params: Vec<(&str, &str)> = scope.iter().map(|s| ("scope", s.as_str())).collect();
        let request = self.token_request(config, url, &params)?;
        let resp = self.send(request, Replay::Always).await?;
        device_authorization_from(&resp)
    }

    /// Polls the token endpoint until the user approves (DEV-4..8). `cancel` ends polling
    /// when it turns `true` (Ctrl-C, Esc); a dropped sender never cancels.
    pub async fn poll_device(
        &self,
        config: &ClientConfig,
        auth: &DeviceAuthorization,
        cancel: watch::Receiver<bool>,
    ) -> Result<TokenSet> {
        let token_url = config.token_url()?;
        let request = |code: &DeviceCode| {
            let params = [("grant_type", DEVICE_GRANT), ("device_code", code.secret())];
            self.token_request(config, token_url, &params)
        };
        self.poll_device_with(config, auth, cancel, &request).await
    }

    /// The polling loop of [`poll_device`](Self::poll_device); `request` builds one token
    /// request for the device code (direct, or through the exchange proxy).
    pub(super) async fn poll_device_with(
        &self,
        config: &ClientConfig,
        auth: &DeviceAuthorization,
        mut cancel: watch::Receiver<bool>,
        request: &(dyn Fn(&DeviceCode) -> Result<reqwest::Request> + Sync),
    ) -> Result<TokenSet> {
        let timing = self.settings.device;
        // HARD-4: every sum below is of bounded durations, and checked all the same.
        let deadline = later(auth.started, auth.expires_in.min(MAX_DEVICE_LIFETIME));
        let mut interval = auth.interval.min(MAX_DEVICE_INTERVAL);
        let mut wait = interval;
        loop {
            let wake = later(Instant::now(), wait);
            let expired = wake >= deadline;
            tokio::select! {
                () = tokio::time::sleep_until(wake.min(deadline).into()) => {}
                () = cancelled(&mut cancel) => return Err(OAuthError::Cancelled),
            }
            if expired {
                return Err(OAuthError::DeviceExpired);
            }
            let request = request(&auth.device_code)?;
            let resp = match self.send_single(request).await {
                Ok(resp) => resp,
                Err(e) if e.is_transient() => {
                    interval = doubled(interval, timing.max_interval);
                    wait = interval;
                    tracing::debug!(
                        interval_ms = interval.as_millis() as u64,
                        "device poll failed; backing off"
                    );
                    continue;
                }
                Err(e) => return Err(e),
            };
            let parsed = parse_token_response(
                resp.status,
                resp.content_type.as_deref(),
                &resp.body,
                &config.scopes,
                config.default_lifetime,
                resp.sent_at,
            );
            match parsed {
                Ok(tokens) => return Ok(tokens),
                Err(e) => match e.code() {
                    Some("authorization_pending") => wait = interval,
                    Some("slow_down") => {
                        interval = interval
                            .saturating_add(timing.slow_down_step)
                            .min(MAX_DEVICE_INTERVAL);
                        wait = interval;
                    }
                    Some("expired_token") => return Err(OAuthError::DeviceExpired),
                    None if is_retryable_status(resp.status) => {
                        interval = doubled(interval, timing.max_interval);
                        wait = resp
                            .retry_after
                            .map_or(interval, |ra| ra.max(interval))
                            .min(MAX_DEVICE_INTERVAL);
                    }
                    _ => return Err(e),
                },
            }
        }
    }
}

/// A device authorization answer (RFC 8628 §3.2) as a [`DeviceAuthorization`], or the error
/// it carries; shared by the direct and the exchange-proxy paths.
pub(super) fn device_authorization_from(resp: &RawResponse) -> Result<DeviceAuthorization> {
    let started = Instant::now();
    let fields = match parse_fields(resp.content_type.as_deref(), &resp.body) {
        Ok(f) => f,
        Err(_) if resp.status != 200 => {
            return Err(OAuthError::Http {
                status: resp.status,
            });
        }
        Err(e) => return Err(e),
    };
    if let Some(err) = error_in(resp.status, &fields) {
        return Err(err);
    }
    if resp.status != 200 {
        return Err(OAuthError::Http {
            status: resp.status,
        });
    }
    parse_device_authorization(&fields, started)
}

/// A verification URI must be an `https` URL, or `http` on a loopback host (the devserver,
/// tests), with nothing a terminal would act on (HARD-9).
fn check_verification_uri(uri: &str) -> Result<()> {
    let bad = || {
        OAuthError::InvalidResponse(format!(
            "the device authorization's verification URI '{}' is not an https URL",
            crate::text::sanitize(uri, 100)
        ))
    };
    if !super::wire::is_vschar(uri) {
        return Err(bad());
    }
    let url = url::Url::parse(uri).map_err(|_| bad())?;
    let loopback = super::wire::is_loopback(&url);
    match url.scheme() {
        "https" if url.host().is_some() => Ok(()),
        "http" if loopback => Ok(()),
        _ => Err(bad()),
    }
}

/// `at + d`, or the farthest representable instant rather than a panic (HARD-4).
fn later(at: Instant, d: Duration) -> Instant {
    at.checked_add(d)
        .or_else(|| at.checked_add(MAX_DEVICE_LIFETIME))
        .unwrap_or(at)
}

/// DEV-7: doubles the interval up to `max`, never shrinking one that `slow_down` already
/// raised above `max`.
fn doubled(interval: Duration, max: Duration) -> Duration {
    interval.saturating_mul(2).min(max).max(interval)
}

/// Resolves once `rx` holds `true`; never if the sender is gone.
async fn cancelled(rx: &mut watch::Receiver<bool>) {
    loop {
        if *rx.borrow_and_update() {
            return;
        }
        if rx.changed().await.is_err() {
            std::future::pending::<()>().await;
        }
    }
}

/// DEV-2: `device_code`, `user_code`, `verification_uri` (Google: `verification_url`) and
/// `expires_in` are required; `interval` defaults to 5 s.
pub fn parse_device_authorization(
    fields: &serde_json::Map<String, Value>,
    started: Instant,
) -> Result<DeviceAuthorization> {
    let text = |k: &str| {
        fields
            .get(k)
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
    };
    let missing =
        |k: &str| OAuthError::InvalidResponse(format!("device authorization without {k}"));
    let device_code = text("device_code").ok_or_else(|| missing("device_code"))?;
    let user_code = text("user_code").ok_or_else(|| missing("user_code"))?;
    let verification_uri = text("verification_uri")
        .or_else(|| text("verification_url"))
        .ok_or_else(|| missing("verification_uri"))?;
    // HARD-9: what the user is told to open or type must be what it looks like.
    check_verification_uri(verification_uri)?;
    let complete = text("verification_uri_complete");
    if let Some(uri) = complete {
        check_verification_uri(uri)?;
    }
    if user_code.chars().any(crate::text::is_unsafe) {
        return Err(OAuthError::InvalidResponse(
            "the device authorization's user_code holds control characters".into(),
        ));
    }
    // HARD-4: the server's numbers are capped before any arithmetic uses them.
    let expires_in = fields
        .get("expires_in")
        .and_then(parse_expires_in)
        .ok_or_else(|| missing("a valid expires_in"))?
        .min(MAX_DEVICE_LIFETIME);
    let interval = fields
        .get("interval")
        .and_then(parse_expires_in)
        .unwrap_or(DEFAULT_INTERVAL)
        .min(MAX_DEVICE_INTERVAL);
    Ok(DeviceAuthorization {
        device_code: DeviceCode::new(device_code),
        user_code: user_code.to_owned(),
        verification_uri: verification_uri.to_owned(),
        verification_uri_complete: complete.map(str::to_owned),
        expires_in,
        interval,
        started,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::oauth::ClientAuth;
    use crate::oauth::testutil::{Reply, Stub, fast_client, form_of};

    const DEVICE: &str = r#"{"device_code":"dc-fx-9","user_code":"QWRT-ZXCV","verification_uri":"https://as.example/device","verification_uri_complete":"https://as.example/device?user_code=QWRT-ZXCV","expires_in":900,"interval":5}"#;
    const PENDING: &str = r#"{"error":"authorization_pending"}"#;
    const OK: &str = r#"{"access_token":"at-dev","token_type":"Bearer","expires_in":60}"#;

    fn config(stub: &Stub) -> ClientConfig {
        ClientConfig {
            client_id: "cid".into(),
            client_auth: ClientAuth::None,
            token_endpoint: Some(stub.url("/token")),
            device_authorization_endpoint: Some(stub.url("/device")),
            scopes: vec!["openid".into(), "profile".into()],
            ..Default::default()
        }
    }

    fn auth(interval_ms: u64, expires_ms: u64) -> DeviceAuthorization {
        DeviceAuthorization {
            device_code: DeviceCode::new("dc-fx-9"),
            user_code: "QWRT-ZXCV".into(),
            verification_uri: "https://as.example/device".into(),
            verification_uri_complete: None,
            expires_in: Duration::from_millis(expires_ms),
            interval: Duration::from_millis(interval_ms),
            started: Instant::now(),
        }
    }

    fn no_cancel() -> watch::Receiver<bool> {
        watch::channel(false).1
    }

    #[test]
    fn dev7_doubling_is_capped_and_never_shrinks() {
        let s = Duration::from_secs;
        assert_eq!(doubled(s(5), s(60)), s(10));
        assert_eq!(doubled(s(40), s(60)), s(60));
        assert_eq!(doubled(s(65), s(60)), s(65));
    }

    #[tokio::test]
    async fn dev1_dev2_start_device_fixture() {
        let stub = Stub::start(vec![Reply::json(200, DEVICE)]).await;
        let a = fast_client().start_device(&config(&stub)).await.unwrap();
        assert_eq!(a.device_code.secret(), "dc-fx-9");
        assert_eq!(a.user_code, "QWRT-ZXCV");
        assert_eq!(a.verification_uri, "https://as.example/device");
        assert_eq!(
            a.verification_uri_complete.as_deref(),
            Some("https://as.example/device?user_code=QWRT-ZXCV")
        );
        assert_eq!(a.expires_in, Duration::from_secs(900));
        assert_eq!(a.interval, Duration::from_secs(5));
        assert!(!format!("{a:?}").contains("QWRT") && !format!("{a:?}").contains("dc-fx-9"));
        let f = form_of(&stub.requests()[0].body);
        assert_eq!(f["client_id"], "cid");
        assert_eq!(f["scope"], "openid profile");
        assert!(!f.contains_key("client_secret"));
    }

    /// HARD-4: a hostile `expires_in` (2^63 − 1) or `interval` is capped when parsed, so no
    /// deadline addition can overflow (it panicked before).
    #[test]
    fn hard4_huge_device_numbers_are_capped() {
        let fields: serde_json::Map<String, Value> = serde_json::from_str(
            r#"{"device_code":"d","user_code":"u","verification_uri":"https://as.example/d",
                "expires_in":9223372036854775807,"interval":"9223372036854775807"}"#,
        )
        .unwrap();
        let a = parse_device_authorization(&fields, Instant::now()).unwrap();
        assert_eq!(a.expires_in, MAX_DEVICE_LIFETIME);
        assert_eq!(a.interval, MAX_DEVICE_INTERVAL);
        assert!(later(Instant::now(), Duration::MAX) > Instant::now());
    }

    /// HARD-9: verification URIs must be https (or loopback http) and the user code free of
    /// control characters; an OSC 52 sequence in either is refused.
    #[test]
    fn hard9_device_uris_and_user_code_are_checked() {
        let parse = |uri: &str, complete: &str, code: &str| {
            let fields = serde_json::json!({
                "device_code": "d", "user_code": code, "verification_uri": uri,
                "verification_uri_complete": complete, "expires_in": 600,
            });
            parse_device_authorization(fields.as_object().unwrap(), Instant::now())
        };
        let ok = "https://as.example/device";
        assert!(parse(ok, ok, "ABCD-EFGH").is_ok());
        assert!(parse("http://127.0.0.1:8080/device", ok, "ABCD").is_ok());
        for (uri, complete, code) in [
            ("http://as.example/device", ok, "ABCD"),
            ("javascript:alert(1)", ok, "ABCD"),
            (ok, "https://as.example/d\u{1b}]52;c;cHduZWQ=\u{7}", "ABCD"),
            ("file:///etc/passwd", ok, "ABCD"),
            (ok, ok, "AB\u{1b}[2JCD"),
        ] {
            assert!(
                parse(uri, complete, code).is_err(),
                "{uri:?} {complete:?} {code:?}"
            );
        }
    }

    /// HARD-4: a 503 with a huge `Retry-After` during device polling neither panics nor waits
    /// past the device code's deadline.
    #[tokio::test]
    async fn hard4_huge_retry_after_while_polling_ends_at_the_deadline() {
        let stub = Stub::start(vec![
            Reply::json(503, "{}").header("retry-after", "18446744073709551615"),
        ])
        .await;
        let client = fast_client();
        let started = Instant::now();
        let e = client
            .poll_device(&config(&stub), &auth(10, 600), no_cancel())
            .await
            .unwrap_err();
        assert!(matches!(e, OAuthError::DeviceExpired), "{e}");
        assert!(started.elapsed() < Duration::from_secs(3));
    }

    #[tokio::test]
    async fn dev2_missing_interval_defaults_and_required_fields() {
        let stub = Stub::start(vec![Reply::json(200, r#"{"device_code":"d","user_code":"u","verification_url":"https://g.example/device","expires_in":"1800"}"#)]).await;
        let a = fast_client().start_device(&config(&stub)).await.unwrap();
        assert_eq!(a.interval, DEFAULT_INTERVAL);
        assert_eq!(a.verification_uri, "https://g.example/device");
        let stub = Stub::start(vec![Reply::json(
            200,
            r#"{"device_code":"d","verification_uri":"https://x.example","expires_in":5}"#,
        )])
        .await;
        assert!(matches!(
            fast_client().start_device(&config(&stub)).await,
            Err(OAuthError::InvalidResponse(_))
        ));
        let mut cfg = config(&stub);
        cfg.device_authorization_endpoint = None;
        assert!(
            fast_client()
                .start_device(&cfg)
                .await
                .unwrap_err()
                .is_config_error()
        );
    }

    #[tokio::test]
    async fn dev4_dev5_pending_then_slow_down_then_success() {
        let stub = Stub::start(vec![
            Reply::json(400, PENDING),
            Reply::json(400, r#"{"error":"slow_down"}"#),
            Reply::json(400, PENDING),
            Reply::json(200, OK),
        ])
        .await;
        let t = fast_client()
            .poll_device(&config(&stub), &auth(100, 20_000), no_cancel())
            .await
            .unwrap();
        assert_eq!(t.access_token.secret(), "at-dev");
        let reqs = stub.requests();
        assert_eq!(reqs.len(), 4);
        let f = form_of(&reqs[0].body);
        assert_eq!(f["grant_type"], DEVICE_GRANT);
        assert_eq!(f["device_code"], "dc-fx-9");
        assert_eq!(f["client_id"], "cid");
        // slow_down adds the step (150 ms in tests) for this and all later polls.
        assert!(reqs[2].at - reqs[1].at >= Duration::from_millis(240));
        assert!(reqs[3].at - reqs[2].at >= Duration::from_millis(240));
        assert!(reqs[1].at - reqs[0].at >= Duration::from_millis(95));
    }

    #[tokio::test]
    async fn dev6_access_denied_stops_even_on_200() {
        for (status, body) in [
            (400, r#"{"error":"access_denied"}"#),
            (200, r#"{"error":"access_denied"}"#),
        ] {
            let stub = Stub::start(vec![Reply::json(status, body), Reply::json(200, OK)]).await;
            let e = fast_client()
                .poll_device(&config(&stub), &auth(20, 10_000), no_cancel())
                .await
                .unwrap_err();
            assert_eq!(e.code(), Some("access_denied"));
            assert_eq!(stub.requests().len(), 1);
        }
    }

    #[tokio::test]
    async fn dev6_expired_token_stops() {
        let stub = Stub::start(vec![Reply::json(400, r#"{"error":"expired_token"}"#)]).await;
        let e = fast_client()
            .poll_device(&config(&stub), &auth(20, 10_000), no_cancel())
            .await
            .unwrap_err();
        assert!(matches!(e, OAuthError::DeviceExpired));
        assert_eq!(stub.requests().len(), 1);
    }

    #[tokio::test]
    async fn dev8_stops_at_expires_in_deadline() {
        let stub = Stub::start(vec![Reply::json(400, PENDING)]).await;
        let started = Instant::now();
        let e = fast_client()
            .poll_device(&config(&stub), &auth(50, 400), no_cancel())
            .await
            .unwrap_err();
        assert!(matches!(e, OAuthError::DeviceExpired));
        assert!(started.elapsed() < Duration::from_secs(3));
        assert!(started.elapsed() >= Duration::from_millis(390));
        assert!(!stub.requests().is_empty());
    }

    #[tokio::test]
    async fn dev8_cancel_stops_polling() {
        let stub = Stub::start(vec![Reply::json(400, PENDING)]).await;
        let (tx, rx) = watch::channel(false);
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(200)).await;
            let _ = tx.send(true);
        });
        let started = Instant::now();
        let e = fast_client()
            .poll_device(&config(&stub), &auth(50, 20_000), rx)
            .await
            .unwrap_err();
        assert!(matches!(e, OAuthError::Cancelled));
        assert!(started.elapsed() < Duration::from_secs(3));
    }

    #[tokio::test]
    async fn dev7_5xx_doubles_interval_then_recovers() {
        let stub = Stub::start(vec![
            Reply::text(503, "down"),
            Reply::json(400, PENDING),
            Reply::json(200, OK),
        ])
        .await;
        let t = fast_client()
            .poll_device(&config(&stub), &auth(100, 20_000), no_cancel())
            .await
            .unwrap();
        assert_eq!(t.access_token.secret(), "at-dev");
        let reqs = stub.requests();
        assert_eq!(reqs.len(), 3);
        assert!(reqs[1].at - reqs[0].at >= Duration::from_millis(190));
        assert!(reqs[2].at - reqs[1].at >= Duration::from_millis(190));
    }

    #[tokio::test]
    async fn dev7_connection_failure_doubles_interval() {
        let stub = Stub::start(vec![Reply::Drop, Reply::Drop, Reply::json(200, OK)]).await;
        let t = fast_client()
            .poll_device(&config(&stub), &auth(100, 20_000), no_cancel())
            .await
            .unwrap();
        assert_eq!(t.access_token.secret(), "at-dev");
        let reqs = stub.requests();
        assert_eq!(reqs.len(), 3);
        // 100 ms, doubled to 200 ms, doubled to 400 ms.
        assert!(reqs[1].at - reqs[0].at >= Duration::from_millis(190));
        assert!(reqs[2].at - reqs[1].at >= Duration::from_millis(390));
    }
}
