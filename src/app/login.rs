//! Login in three modes: the system browser with the loopback listener, VPS paste mode (the
//! listener keeps running for `ssh -L`; the first valid result, pasted or received, wins), and
//! the device grant. A failed login leaves the vault as it was.

use super::mode::LoginMode;
use super::{App, AppError, Result, login_record};
use crate::oauth::callback::{CallbackError, CallbackListener, ListenerOptions};
use crate::oauth::{AuthorizationRequest, ClientConfig, OAuthError, TokenSet};
use crate::provider::{HintStage, Provider};
use crate::secret::{AuthCode, CsrfState, PastedRedirect};
use crate::text::sanitize;
use crate::vault::LoginGrant;
use tokio::sync::{mpsc, watch};
use url::Url;

/// The default redirect when an account names none: its own path on a free loopback port
/// (AUTHZ-5, CB-1, CB-2).
pub const DEFAULT_REDIRECT: &str = "http://127.0.0.1:0/callback";

/// What a login shows the user, in order. No secret except the URL the user must open.
#[derive(Debug, Clone)]
pub enum LoginEvent {
    /// Open this URL (browser mode: also opened for you; paste mode: print + QR).
    AuthorizationUrl {
        /// The authorization URL (holds `state` and the PKCE challenge, never a secret).
        url: String,
        /// The redirect URI the listener waits on.
        redirect_uri: String,
        /// Whether authdeck tried to open a browser.
        browser_opened: bool,
    },
    /// Device grant: show the code and where to enter it.
    DeviceCode {
        /// The code to type.
        user_code: String,
        /// Where to type it.
        verification_uri: String,
        /// A URL with the code included, when the server gives one.
        verification_uri_complete: Option<String>,
        /// Seconds until the code expires.
        expires_in: u64,
    },
    /// A pasted input was not accepted; the login keeps waiting.
    PasteRejected(String),
    /// The code arrived; exchanging it.
    Exchanging,
}

/// Where login events go (the CLI prints them, the dashboard shows a dialog).
pub trait LoginSink: Send + Sync {
    /// Called for each event.
    fn event(&self, event: LoginEvent);
}

impl<F: Fn(LoginEvent) + Send + Sync> LoginSink for F {
    fn event(&self, event: LoginEvent) {
        self(event)
    }
}

/// Inputs of a login besides the account.
pub struct LoginInput<'a> {
    /// The mode.
    pub mode: LoginMode,
    /// Lines the user pasted (paste mode): a redirect URL or a bare code.
    pub pasted: Option<mpsc::UnboundedReceiver<PastedRedirect>>,
    /// Set to `true` to cancel.
    pub cancel: watch::Receiver<bool>,
    /// The browser command (`$BROWSER`), if any; `None` uses the system opener.
    pub browser: Option<String>,
    /// Where events go.
    pub sink: &'a dyn LoginSink,
}

impl App {
    /// Logs `name` in and stores its tokens. Returns the new record's expiry (Unix seconds).
    pub async fn login(&self, name: &str, input: LoginInput<'_>) -> Result<Option<i64>> {
        if self.account(name)?.grant == crate::provider::AccountGrant::ClientCredentials {
            return Err(AppError::Config(format!(
                "{name} is a machine account (grant = \"client_credentials\"): it needs no login; `authdeck token {name}` fetches a token"
            )));
        }
        let account = self.account(name)?;
        let grant = match input.mode {
            LoginMode::Device => LoginGrant::Device,
            LoginMode::Browser | LoginMode::Paste => LoginGrant::Code,
        };
        // A grant that authenticates with a secret cannot end well without one: the
        // configuration says so now (`grant_config`), not after the user has logged in at the
        // provider.
        let cfg = self.client_config_for(account, grant).await?;
        let timeout = self.settings.login_timeout;
        let LoginInput {
            mode,
            pasted,
            cancel,
            browser,
            sink,
        } = input;
        let login = async {
            match mode {
                LoginMode::Device => self
                    .login_device(name, account, &cfg, cancel.clone(), sink)
                    .await
                    .map(|t| (t, None)),
                LoginMode::Browser | LoginMode::Paste => {
                    let opener = (mode == LoginMode::Browser).then_some(browser);
                    self.login_code(name, account, &cfg, pasted, opener, sink)
                        .await
                        .map(|(t, uri)| (t, Some(uri)))
                }
            }
        };
        let mut cancel = cancel.clone();
        let (tokens, redirect_uri) = tokio::select! {
            r = tokio::time::timeout(timeout, login) => r.map_err(|_| AppError::Login {
                name: name.to_string(),
                reason: format!("timed out after {} s", timeout.as_secs()),
            })??,
            _ = cancelled(&mut cancel) => return Err(AppError::Login {
                name: name.to_string(),
                reason: "cancelled".into(),
            }),
        };
        sink.event(LoginEvent::Exchanging);
        let record = self.vault.update(|records| {
            let mut rec = login_record(records.get(name), account, &cfg, tokens);
            // PROV-2, PROV-5: how these tokens were obtained decides how they are refreshed.
            rec.login_grant = Some(grant);
            rec.redirect_uri = redirect_uri;
            records.insert(name.to_string(), rec.clone());
            Ok::<_, AppError>(rec)
        })?;
        Ok(record.expires_at)
    }

    /// Authorization code + PKCE via the loopback listener, with paste as a second source.
    /// Returns the tokens and the redirect URI they were obtained with.
    async fn login_code(
        &self,
        name: &str,
        account: &Provider,
        cfg: &ClientConfig,
        mut pasted: Option<mpsc::UnboundedReceiver<PastedRedirect>>,
        opener: Option<Option<String>>,
        sink: &dyn LoginSink,
    ) -> Result<(TokenSet, String)> {
        let fail = |reason: String| AppError::Login {
            name: name.to_string(),
            reason,
        };
        let wanted = match &account.redirect_uri {
            Some(u) => u.clone(),
            None => Url::parse(DEFAULT_REDIRECT).map_err(|e| fail(e.to_string()))?,
        };
        let options = ListenerOptions {
            timeout: self.settings.login_timeout,
            ..ListenerOptions::default()
        };
        let listener = bind_with_fallbacks(&wanted, &account.redirect_fallback_ports, options)
            .await
            .map_err(|e| fail(e.to_string()))?;
        let redirect_uri = listener.redirect_uri().to_string();
        let request =
            AuthorizationRequest::new(cfg, &redirect_uri).map_err(|e| AppError::oauth(name, e))?;
        let pending = listener
            .register(request.state.clone(), cfg.issuer.clone())
            .map_err(|e| fail(e.to_string()))?;
        // AUTHZ-4: before the URL is shown, so no redirect can arrive unchecked.
        pending.set_require_iss(cfg.require_iss);
        // Kept until the login ends: the browser may read the page late (HARD-12).
        let handoff = opener
            .as_ref()
            .and_then(|b| open_browser(b.as_deref(), request.url.as_str()));
        let browser_opened = handoff.is_some();
        sink.event(LoginEvent::AuthorizationUrl {
            url: request.url.to_string(),
            redirect_uri: redirect_uri.clone(),
            browser_opened,
        });

        let from_paste = async {
            let Some(rx) = pasted.as_mut() else {
                return std::future::pending::<Result<AuthCode>>().await;
            };
            while let Some(line) = rx.recv().await {
                let issuer = IssuerCheck {
                    expected: cfg.issuer.as_deref(),
                    required: cfg.require_iss,
                };
                match check_pasted(line.secret(), &redirect_uri, &request.state, issuer) {
                    Ok(code) => return Ok(code),
                    Err(Pasted::Rejected(why)) => sink.event(LoginEvent::PasteRejected(why)),
                    Err(Pasted::Fatal(why)) => return Err(fail(why)),
                }
            }
            // stdin closed: keep waiting for the listener.
            std::future::pending::<Result<AuthCode>>().await
        };
        let code = tokio::select! {
            r = pending.wait() => r.map(|res| res.code).map_err(|e| fail(e.to_string()))?,
            r = from_paste => r?,
        };
        drop(listener);
        let mut tokens = match &account.exchange_proxy {
            Some(proxy) => {
                self.oauth()?
                    .exchange_via_proxy(proxy, cfg, &code, request.verifier, &redirect_uri)
                    .await
            }
            None => {
                self.oauth()?
                    .exchange_code(cfg, &code, request.verifier, &redirect_uri)
                    .await
            }
        }
        .map_err(|e| hinted(name, account, HintStage::Login, e))?;
        // DISC-5 / AUTHZ-6: signature and claims when the issuer publishes keys, else the nonce.
        self.vet_login_id_token(name, cfg, &mut tokens, request.nonce.as_ref())
            .await?;
        Ok((tokens, redirect_uri))
    }

    /// The device authorization grant (RFC 8628).
    async fn login_device(
        &self,
        name: &str,
        account: &Provider,
        cfg: &ClientConfig,
        cancel: watch::Receiver<bool>,
        sink: &dyn LoginSink,
    ) -> Result<TokenSet> {
        // Through an exchange proxy the proxy's configuration decides (a 501 if it has no
        // device endpoint for the client); directly, the provider must offer one.
        let proxy = account.exchange_proxy.as_ref();
        if proxy.is_none() && cfg.device_authorization_endpoint.is_none() {
            return Err(AppError::Unsupported {
                name: name.to_string(),
                what: "the provider offers no device authorization endpoint; use --mode paste"
                    .into(),
            });
        }
        let oauth = self.oauth()?;
        let auth = match proxy {
            Some(proxy) => oauth.start_device_via_proxy(proxy, cfg).await,
            None => oauth.start_device(cfg).await,
        }
        .map_err(|e| hinted(name, account, HintStage::Device, e))?;
        sink.event(LoginEvent::DeviceCode {
            user_code: auth.user_code.clone(),
            verification_uri: auth.verification_uri.clone(),
            verification_uri_complete: auth.verification_uri_complete.clone(),
            expires_in: auth.expires_in.as_secs(),
        });
        let mut tokens = match proxy {
            Some(proxy) => oauth.poll_device_via_proxy(proxy, cfg, &auth, cancel).await,
            None => oauth.poll_device(cfg, &auth, cancel).await,
        }
        .map_err(|e| hinted(name, account, HintStage::Device, e))?;
        // DISC-5: the device grant has no nonce; everything else is checked.
        self.vet_login_id_token(name, cfg, &mut tokens, None)
            .await?;
        Ok(tokens)
    }
}

/// An OAuth error of a login, with the provider's advice for its error code when the template
/// gives one (PROV-9: Google's device flow refuses "Desktop app" clients).
fn hinted(name: &str, account: &Provider, stage: HintStage, e: OAuthError) -> AppError {
    match e.code().and_then(|code| account.error_hint(stage, code)) {
        Some(hint) => AppError::Login {
            name: name.to_string(),
            reason: format!("{e}; likely cause: {hint}"),
        },
        None => AppError::oauth(name, e),
    }
}

/// Binds the listener on `wanted`, then, while its port is taken, on each fallback port in
/// order, same host and path (PROV-6: OpenAI's client is registered for 1455 and 1457).
async fn bind_with_fallbacks(
    wanted: &Url,
    fallbacks: &[u16],
    options: ListenerOptions,
) -> std::result::Result<CallbackListener, CallbackError> {
    let mut result = CallbackListener::bind(wanted, options.clone()).await;
    for port in fallbacks {
        if !matches!(result, Err(CallbackError::PortInUse { .. })) {
            break;
        }
        let mut next = wanted.clone();
        if next.set_port(Some(*port)).is_err() {
            break;
        }
        tracing::debug!(port, "redirect port taken; trying the fallback port");
        result = CallbackListener::bind(&next, options.clone()).await;
    }
    result
}

async fn cancelled(rx: &mut watch::Receiver<bool>) {
    loop {
        if *rx.borrow() {
            return;
        }
        if rx.changed().await.is_err() {
            // The sender is gone: nobody can cancel any more.
            std::future::pending::<()>().await;
        }
    }
}

/// Why a pasted line was not taken.
#[derive(Debug, PartialEq, Eq)]
pub enum Pasted {
    /// Not usable; keep waiting (typo, wrong URL, stray state).
    Rejected(String),
    /// The provider answered with an error: the login ends.
    Fatal(String),
}

/// What a pasted redirect's `iss` must be (AUTHZ-4).
#[derive(Debug, Clone, Copy, Default)]
pub struct IssuerCheck<'a> {
    /// The account's issuer: a present `iss` must equal it.
    pub expected: Option<&'a str>,
    /// The issuer always sends `iss` (its metadata says so): a redirect without one is refused.
    pub required: bool,
}

/// Checks a pasted redirect URL or bare code (HL-2, HL-3, HL-4, CB-7..CB-9, AUTHZ-4).
pub fn check_pasted(
    line: &str,
    redirect_uri: &str,
    state: &CsrfState,
    issuer: IssuerCheck<'_>,
) -> std::result::Result<AuthCode, Pasted> {
    let input = line.trim();
    if input.is_empty() {
        return Err(Pasted::Rejected("empty input".into()));
    }
    if !input.contains("://") && !input.contains('=') {
        // HL-4: a bare code; PKCE binds it to this login's verifier.
        if input.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(Pasted::Rejected("that does not look like a code".into()));
        }
        return Ok(AuthCode::new(input));
    }
    let url = Url::parse(input)
        .map_err(|_| Pasted::Rejected("that is neither a redirect URL nor a code".into()))?;
    let expected = Url::parse(redirect_uri)
        .map_err(|_| Pasted::Rejected("internal: bad redirect URI".into()))?;
    // HL-3: scheme, host, port and path must be the ones we sent.
    if url.scheme() != expected.scheme()
        || url.host_str() != expected.host_str()
        || url.port_or_known_default() != expected.port_or_known_default()
        || url.path() != expected.path()
    {
        return Err(Pasted::Rejected(format!(
            "that URL does not go to {}",
            expected.as_str().trim_end_matches('/')
        )));
    }
    let mut code = None;
    let mut got_state = None;
    let mut error = None;
    let mut description = None;
    let mut iss = None;
    for (k, v) in url.query_pairs() {
        match k.as_ref() {
            "code" => code = Some(v.into_owned()),
            "state" => got_state = Some(v.into_owned()),
            "error" => error = Some(v.into_owned()),
            "error_description" => description = Some(v.into_owned()),
            "iss" => iss = Some(v.into_owned()),
            _ => {}
        }
    }
    match got_state {
        Some(s) if state.ct_eq(&s) => {}
        _ => {
            return Err(Pasted::Rejected(
                "state mismatch: this URL is not from this login".into(),
            ));
        }
    }
    match (&iss, issuer.expected) {
        (Some(iss), Some(expected)) if iss != expected => {
            return Err(Pasted::Fatal(
                "the response came from another issuer (iss mismatch)".into(),
            ));
        }
        (None, _) if issuer.required => {
            return Err(Pasted::Fatal(
                "the response carries no issuer (iss), which this provider always sends".into(),
            ));
        }
        _ => {}
    }
    if let Some(error) = error {
        let text = sanitize(&error, 64);
        let desc = description
            .map(|d| format!(": {}", sanitize(&d, 200)))
            .unwrap_or_default();
        return Err(Pasted::Fatal(if error == "access_denied" {
            format!("denied by user{desc}")
        } else {
            format!("the provider answered {text}{desc}")
        }));
    }
    match code {
        Some(c) if !c.is_empty() => Ok(AuthCode::new(c)),
        _ => Err(Pasted::Fatal(
            "malformed response: neither code nor error".into(),
        )),
    }
}

/// Opens `url` with `$BROWSER` (a command; `%s` replaced by the page, else appended) or the
/// system opener. The browser gets the path of a private page that forwards to `url`, never
/// `url` itself: argv is readable by every local user, and `url` carries `state` and `nonce`
/// (HARD-12). The page is passed as one argv element, never through a shell (AUTHZ-1). `None`
/// when the browser could not be started; the returned handoff must live until the login ends.
pub fn open_browser(browser: Option<&str>, url: &str) -> Option<super::browser::BrowserHandoff> {
    let handoff = super::browser::BrowserHandoff::new(url).ok()?;
    let page = handoff.path().to_string_lossy().into_owned();
    let spawn = |program: &str, args: Vec<String>| {
        let mut cmd = std::process::Command::new(program);
        // HARD-2: the browser gets nothing that unlocks the vault.
        crate::process::prepare_child(&mut cmd);
        cmd.args(args)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .is_ok()
    };
    let started = if let Some(cmd) = browser.filter(|b| !b.trim().is_empty()) {
        // $BROWSER may be a list separated by ':' (the convention); take the first.
        let first = cmd.split(':').next().unwrap_or(cmd);
        let mut parts = first.split_whitespace();
        let program = parts.next()?;
        let mut args: Vec<String> = parts.map(str::to_string).collect();
        if let Some(slot) = args.iter_mut().find(|a| a.contains("%s")) {
            *slot = slot.replace("%s", &page);
        } else {
            args.push(page);
        }
        spawn(program, args)
    } else {
        let opener = if cfg!(target_os = "macos") {
            "open"
        } else {
            "xdg-open"
        };
        spawn(opener, vec![page])
    };
    started.then_some(handoff)
}

#[cfg(test)]
mod tests {
    use super::*;

    const REDIRECT: &str = "http://127.0.0.1:53117/callback";

    fn st() -> CsrfState {
        CsrfState::new("st-OK")
    }

    fn expect_iss(expected: &str, required: bool) -> IssuerCheck<'_> {
        IssuerCheck {
            expected: Some(expected),
            required,
        }
    }

    /// AUTHZ-4: when the issuer advertises `authorization_response_iss_parameter_supported`, a
    /// pasted redirect without `iss` ends the login; with the right `iss` it is accepted.
    #[test]
    fn authz4_pasted_redirect_without_a_required_iss_is_fatal() {
        let r = check_pasted(
            "http://127.0.0.1:53117/callback?code=c&state=st-OK",
            REDIRECT,
            &st(),
            expect_iss("https://as.example", true),
        );
        assert!(matches!(r, Err(Pasted::Fatal(m)) if m.contains("no issuer")));
        let ok = check_pasted(
            "http://127.0.0.1:53117/callback?code=c&state=st-OK&iss=https%3A%2F%2Fas.example",
            REDIRECT,
            &st(),
            expect_iss("https://as.example", true),
        );
        assert!(ok.is_ok());
    }

    #[test]
    fn hl3_pasted_url_accepted() {
        let code = check_pasted(
            "  http://127.0.0.1:53117/callback?code=c1&state=st-OK&iss=https%3A%2F%2Fas.example \n",
            REDIRECT,
            &st(),
            expect_iss("https://as.example", false),
        )
        .unwrap();
        assert_eq!(code.secret(), "c1");
    }

    #[test]
    fn cb7_pasted_wrong_state_rejected_and_keeps_waiting() {
        let r = check_pasted(
            "http://127.0.0.1:53117/callback?code=c1&state=st-BAD",
            REDIRECT,
            &st(),
            IssuerCheck::default(),
        );
        assert!(matches!(r, Err(Pasted::Rejected(m)) if m.contains("state mismatch")));
    }

    #[test]
    fn hl3_pasted_url_for_another_port_or_path_rejected() {
        for bad in [
            "http://127.0.0.1:9999/callback?code=c1&state=st-OK",
            "http://127.0.0.1:53117/other?code=c1&state=st-OK",
            "https://127.0.0.1:53117/callback?code=c1&state=st-OK",
        ] {
            assert!(matches!(
                check_pasted(bad, REDIRECT, &st(), IssuerCheck::default()),
                Err(Pasted::Rejected(_))
            ));
        }
    }

    #[test]
    fn cb8_cb9_pasted_error_and_malformed_end_the_login() {
        let denied = check_pasted(
            "http://127.0.0.1:53117/callback?error=access_denied&state=st-OK",
            REDIRECT,
            &st(),
            IssuerCheck::default(),
        );
        assert!(matches!(denied, Err(Pasted::Fatal(m)) if m.contains("denied by user")));
        let malformed = check_pasted(
            "http://127.0.0.1:53117/callback?state=st-OK",
            REDIRECT,
            &st(),
            IssuerCheck::default(),
        );
        assert!(matches!(malformed, Err(Pasted::Fatal(m)) if m.contains("malformed")));
    }

    #[test]
    fn authz4_pasted_iss_mismatch_is_fatal() {
        let r = check_pasted(
            "http://127.0.0.1:53117/callback?code=c&state=st-OK&iss=https%3A%2F%2Fevil.example",
            REDIRECT,
            &st(),
            expect_iss("https://as.example", false),
        );
        assert!(matches!(r, Err(Pasted::Fatal(m)) if m.contains("iss")));
    }

    /// PROV-6: a taken redirect port falls back to the next port, same host and path; all
    /// taken is the first port's error.
    #[tokio::test]
    async fn prov6_taken_redirect_port_falls_back_in_order() {
        let held = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let taken = held.local_addr().unwrap().port();
        let held2 = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let taken2 = held2.local_addr().unwrap().port();
        let free = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        let wanted = Url::parse(&format!("http://127.0.0.1:{taken}/auth/callback")).unwrap();
        let l = bind_with_fallbacks(&wanted, &[taken2, free], ListenerOptions::default())
            .await
            .unwrap();
        assert_eq!(
            l.redirect_uri().as_str(),
            format!("http://127.0.0.1:{free}/auth/callback")
        );
        drop(l);
        let e = bind_with_fallbacks(&wanted, &[taken2], ListenerOptions::default())
            .await
            .err()
            .unwrap();
        assert!(
            matches!(e, CallbackError::PortInUse { port } if port == taken2),
            "{e}"
        );
        // Without fallbacks the first error stands.
        let e = bind_with_fallbacks(&wanted, &[], ListenerOptions::default())
            .await
            .err()
            .unwrap();
        assert!(
            matches!(e, CallbackError::PortInUse { port } if port == taken),
            "{e}"
        );
        drop((held, held2));
    }

    #[test]
    fn hl4_bare_code_accepted() {
        assert_eq!(
            check_pasted("4/0AbCd-efg_h.i~j", REDIRECT, &st(), IssuerCheck::default())
                .unwrap()
                .secret(),
            "4/0AbCd-efg_h.i~j"
        );
        assert!(check_pasted("two words", REDIRECT, &st(), IssuerCheck::default()).is_err());
        assert!(check_pasted("   ", REDIRECT, &st(), IssuerCheck::default()).is_err());
    }
}
