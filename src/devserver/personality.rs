//! Provider personalities: the devserver answering as one bundled template's provider
//! documents, so each template can be tested against its provider's behaviour (PROV-1).
//!
//! A personality is data: the provider's own paths, and one small rule per quirk. The sources
//! of every rule are the per-provider tables in `docs/providers.md`; [`Personality::for_template`]
//! is the table. `handlers` consults it where the generic server would do the RFC thing.

use std::time::Duration;

/// What a provider path is, in the generic server's terms.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    /// The authorization endpoint (`GET`).
    Authorize,
    /// The token endpoint (`POST`).
    Token,
    /// The device authorization endpoint (`POST`).
    Device,
    /// The revocation endpoint, in the personality's [`Revocation`] format.
    Revoke,
    /// The userinfo / "who am I" endpoint.
    Userinfo,
}

/// Which answer format the token endpoint uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenFormat {
    /// `application/json` always.
    Json,
    /// `application/x-www-form-urlencoded` unless the request says `Accept: application/json`
    /// (GitHub).
    FormUnlessAcceptJson,
}

/// Which client authentication the token and device endpoints accept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthRule {
    /// Exactly as the client is registered.
    AsRegistered,
    /// As registered for the code grant; a confidential client may also send only its id for
    /// the device grant and for refreshing tokens the device grant issued (GitHub).
    NoSecretForDevice,
}

/// How access tokens expire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expiry {
    /// `expires_in` as a number, this many seconds.
    Seconds(u64),
    /// `expires_in` as a string (GitHub App user tokens: `"28800"`).
    StringSeconds(u64),
    /// No `expires_in`, and the token never expires (GitHub OAuth app tokens).
    Never,
}

/// What a refresh does to the refresh token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RefreshRule {
    /// No refresh tokens are issued at all (GitHub OAuth apps).
    NotIssued,
    /// Every refresh returns a new refresh token and the old one stops working.
    Rotate,
    /// The refresh token stays; the answer carries none (Google).
    Keep,
}

/// Which redirect URIs the authorization endpoint accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RedirectRule {
    /// Any `http` loopback URI (RFC 8252 §7.3), or the client's registered list when it has one.
    AnyLoopback,
    /// Loopback IP literals only, any port (`localhost` refused; Spotify).
    IpLiteralLoopback,
    /// Exactly one of the client's registered URIs, port included (Dexcom).
    Registered,
    /// `http://localhost:PORT/auth/callback` on these ports only (OpenAI's registered pair).
    FixedPorts(&'static [u16]),
}

/// How revocation works.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Revocation {
    /// No revocation endpoint: 404.
    None,
    /// RFC 7009 form POST.
    Rfc7009,
    /// JSON POST `{"token", "token_type_hint", "client_id"?}` without client authentication.
    Json,
    /// GitHub: `DELETE /applications/{client_id}/token`, Basic auth, `{"access_token"}`, 204.
    Github,
}

/// The `iss` of ID tokens.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IssRule {
    /// The issuer URL.
    Issuer,
    /// This fixed value on login ID tokens, the issuer URL on refresh (Google writes
    /// `accounts.google.com` without the scheme as often as with it).
    OnLogin(&'static str),
}

/// One provider's behaviour.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Personality {
    /// The bundled template it mimics.
    pub template: &'static str,
    /// `(method, path, route)`: the provider's own paths. Anything else is 404.
    pub routes: &'static [(&'static str, &'static str, Route)],
    /// Paths start with a tenant segment (`/{tenant}/oauth2/v2.0/...`, Microsoft); the tenant
    /// must be one of `common`, `organizations`, `consumers` or look like a tenant id or domain.
    pub tenant_paths: bool,
    /// `/.well-known/openid-configuration` and `/jwks` exist.
    pub discovery: bool,
    /// Token answer format.
    pub token_format: TokenFormat,
    /// Client authentication rule.
    pub auth: AuthRule,
    /// Access token lifetime.
    pub expiry: Expiry,
    /// Refresh token rule.
    pub refresh: RefreshRule,
    /// Refresh tokens die this long after the login that issued them (Google "Testing" apps:
    /// 7 days), measured on the devserver's clock.
    pub refresh_token_lifetime: Option<Duration>,
    /// A refresh without `scope` is refused (Microsoft v2.0).
    pub scope_required_on_refresh: bool,
    /// A refresh must carry the login's `redirect_uri` (GitLab).
    pub redirect_uri_required_on_refresh: bool,
    /// Redirect URI rule.
    pub redirects: RedirectRule,
    /// Revocation.
    pub revocation: Revocation,
    /// `iss` of ID tokens.
    pub iss: IssRule,
    /// Token errors come as GitHub sends them: HTTP 200 with `bad_verification_code`,
    /// `bad_refresh_token` or `incorrect_client_credentials` instead of the RFC 6749 codes.
    pub github_errors: bool,
}

const SEVEN_DAYS: Duration = Duration::from_secs(7 * 24 * 3600);

impl Personality {
    /// The personality of bundled template `name` (`github` is an OAuth app; `github-app` the
    /// GitHub App variant with expiring tokens; `google-testing` a Google app in "Testing").
    /// `None` for an unknown name and for `oidc` (the generic server is that).
    pub fn for_template(name: &str) -> Option<Personality> {
        use Route::*;
        let p = match name {
            "github" | "github-app" => Personality {
                template: "github",
                routes: &[
                    ("GET", "/login/oauth/authorize", Authorize),
                    ("POST", "/login/oauth/access_token", Token),
                    ("POST", "/login/device/code", Device),
                    ("DELETE", "/applications/{client_id}/token", Revoke),
                    ("GET", "/user", Userinfo),
                ],
                tenant_paths: false,
                discovery: false,
                token_format: TokenFormat::FormUnlessAcceptJson,
                auth: AuthRule::NoSecretForDevice,
                expiry: if name == "github-app" {
                    Expiry::StringSeconds(8 * 3600)
                } else {
                    Expiry::Never
                },
                refresh: if name == "github-app" {
                    RefreshRule::Rotate
                } else {
                    RefreshRule::NotIssued
                },
                refresh_token_lifetime: None,
                scope_required_on_refresh: false,
                redirect_uri_required_on_refresh: false,
                redirects: RedirectRule::AnyLoopback,
                revocation: Revocation::Github,
                iss: IssRule::Issuer,
                github_errors: true,
            },
            "google" | "google-testing" => Personality {
                template: "google",
                routes: &[
                    ("GET", "/o/oauth2/v2/auth", Authorize),
                    ("POST", "/token", Token),
                    ("POST", "/device/code", Device),
                    ("POST", "/revoke", Revoke),
                    ("GET", "/v1/userinfo", Userinfo),
                ],
                tenant_paths: false,
                discovery: true,
                token_format: TokenFormat::Json,
                auth: AuthRule::AsRegistered,
                expiry: Expiry::Seconds(3599),
                refresh: RefreshRule::Keep,
                refresh_token_lifetime: (name == "google-testing").then_some(SEVEN_DAYS),
                scope_required_on_refresh: false,
                redirect_uri_required_on_refresh: false,
                redirects: RedirectRule::AnyLoopback,
                revocation: Revocation::Rfc7009,
                iss: IssRule::OnLogin("accounts.google.com"),
                github_errors: false,
            },
            "microsoft" => Personality {
                template: "microsoft",
                routes: &[
                    ("GET", "/oauth2/v2.0/authorize", Authorize),
                    ("POST", "/oauth2/v2.0/token", Token),
                    ("POST", "/oauth2/v2.0/devicecode", Device),
                ],
                tenant_paths: true,
                discovery: false,
                token_format: TokenFormat::Json,
                auth: AuthRule::AsRegistered,
                expiry: Expiry::Seconds(3600),
                refresh: RefreshRule::Rotate,
                refresh_token_lifetime: None,
                scope_required_on_refresh: true,
                redirect_uri_required_on_refresh: false,
                redirects: RedirectRule::AnyLoopback,
                revocation: Revocation::None,
                iss: IssRule::Issuer,
                github_errors: false,
            },
            "gitlab" => Personality {
                template: "gitlab",
                routes: &[
                    ("GET", "/oauth/authorize", Authorize),
                    ("POST", "/oauth/token", Token),
                    ("POST", "/oauth/authorize_device", Device),
                    ("POST", "/oauth/revoke", Revoke),
                    ("GET", "/oauth/userinfo", Userinfo),
                ],
                tenant_paths: false,
                discovery: true,
                token_format: TokenFormat::Json,
                auth: AuthRule::AsRegistered,
                expiry: Expiry::Seconds(7200),
                refresh: RefreshRule::Rotate,
                refresh_token_lifetime: None,
                scope_required_on_refresh: false,
                redirect_uri_required_on_refresh: true,
                redirects: RedirectRule::Registered,
                revocation: Revocation::Rfc7009,
                iss: IssRule::Issuer,
                github_errors: false,
            },
            "dexcom" | "dexcom-sandbox" => Personality {
                template: "dexcom",
                routes: &[
                    ("GET", "/v2/oauth2/login", Authorize),
                    ("POST", "/v2/oauth2/token", Token),
                ],
                tenant_paths: false,
                discovery: false,
                token_format: TokenFormat::Json,
                auth: AuthRule::AsRegistered,
                expiry: Expiry::Seconds(7200),
                refresh: RefreshRule::Rotate,
                refresh_token_lifetime: None,
                scope_required_on_refresh: false,
                redirect_uri_required_on_refresh: false,
                redirects: RedirectRule::Registered,
                revocation: Revocation::None,
                iss: IssRule::Issuer,
                github_errors: false,
            },
            "spotify" => Personality {
                template: "spotify",
                routes: &[
                    ("GET", "/authorize", Authorize),
                    ("POST", "/api/token", Token),
                ],
                tenant_paths: false,
                discovery: false,
                token_format: TokenFormat::Json,
                auth: AuthRule::AsRegistered,
                expiry: Expiry::Seconds(3600),
                refresh: RefreshRule::Rotate,
                refresh_token_lifetime: None,
                scope_required_on_refresh: false,
                redirect_uri_required_on_refresh: false,
                redirects: RedirectRule::IpLiteralLoopback,
                revocation: Revocation::None,
                iss: IssRule::Issuer,
                github_errors: false,
            },
            "openai" => Personality {
                template: "openai",
                routes: &[
                    ("GET", "/oauth/authorize", Authorize),
                    ("POST", "/oauth/token", Token),
                    ("POST", "/oauth/revoke", Revoke),
                ],
                tenant_paths: false,
                discovery: false,
                token_format: TokenFormat::Json,
                auth: AuthRule::AsRegistered,
                expiry: Expiry::Seconds(3600),
                refresh: RefreshRule::Rotate,
                refresh_token_lifetime: None,
                scope_required_on_refresh: false,
                redirect_uri_required_on_refresh: false,
                redirects: RedirectRule::FixedPorts(&[1455, 1457]),
                revocation: Revocation::Json,
                iss: IssRule::Issuer,
                github_errors: false,
            },
            _ => return None,
        };
        Some(p)
    }

    /// The route of `method path`, if the provider has one there. `{client_id}` in a route
    /// matches one path segment; with `tenant_paths` the first segment is the tenant.
    pub fn route(&self, method: &str, path: &str) -> Option<Route> {
        let path = if self.tenant_paths {
            let rest = path.strip_prefix('/')?;
            let (tenant, rest) = rest.split_once('/')?;
            if !valid_tenant(tenant) {
                return None;
            }
            &path[path.len() - rest.len() - 1..]
        } else {
            path
        };
        self.routes
            .iter()
            .find(|(m, p, _)| *m == method && path_matches(p, path))
            .map(|(_, _, r)| *r)
    }

    /// The `{client_id}` segment of a GitHub revocation path.
    pub fn client_id_in_path<'a>(&self, path: &'a str) -> Option<&'a str> {
        let pattern = self
            .routes
            .iter()
            .find(|(_, p, r)| *r == Route::Revoke && p.contains("{client_id}"))?
            .1;
        let (before, after) = pattern.split_once("{client_id}")?;
        path.strip_prefix(before)?
            .strip_suffix(after)
            .filter(|id| !id.is_empty() && !id.contains('/'))
    }

    /// Whether `uri` may be a redirect URI for a client that registered `registered`.
    pub fn redirect_allowed(&self, uri: &str, registered: &[String]) -> bool {
        let Ok(url) = url::Url::parse(uri) else {
            return false;
        };
        if url.scheme() != "http" || url.fragment().is_some() {
            return false;
        }
        let host = url.host_str().unwrap_or_default();
        match self.redirects {
            RedirectRule::AnyLoopback => {
                if registered.is_empty() {
                    matches!(host, "127.0.0.1" | "[::1]" | "localhost")
                } else {
                    registered.iter().any(|r| r == uri)
                }
            }
            RedirectRule::IpLiteralLoopback => {
                matches!(host, "127.0.0.1" | "[::1]")
                    && (registered.is_empty()
                        || registered.iter().any(|r| same_except_port(r, &url)))
            }
            RedirectRule::Registered => registered.iter().any(|r| r == uri),
            RedirectRule::FixedPorts(ports) => {
                host == "localhost"
                    && url.path() == "/auth/callback"
                    && url.port().is_some_and(|p| ports.contains(&p))
            }
        }
    }
}

/// `{client_id}` matches one non-empty segment; everything else literally.
fn path_matches(pattern: &str, path: &str) -> bool {
    match pattern.split_once("{client_id}") {
        None => pattern == path,
        Some((before, after)) => path
            .strip_prefix(before)
            .and_then(|rest| rest.strip_suffix(after))
            .is_some_and(|id| !id.is_empty() && !id.contains('/')),
    }
}

/// Microsoft's `{tenant}`: `common`, `organizations`, `consumers`, a GUID or a domain.
fn valid_tenant(t: &str) -> bool {
    !t.is_empty()
        && t.len() <= 64
        && t.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.'))
}

/// Spotify's loopback rule: a registered URI without a port accepts any port.
fn same_except_port(registered: &str, url: &url::Url) -> bool {
    let Ok(r) = url::Url::parse(registered) else {
        return false;
    };
    r.scheme() == url.scheme()
        && r.host_str() == url.host_str()
        && r.path() == url.path()
        && (r.port().is_none() || r.port() == url.port())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_bundled_template_but_oidc_has_a_personality() {
        for name in crate::provider::TEMPLATE_NAMES {
            let p = Personality::for_template(name);
            assert_eq!(p.is_some(), *name != "oidc", "{name}");
        }
    }

    /// PROV-1: the mimic's paths are the template's paths.
    #[test]
    fn prov1_routes_are_the_templates_own_paths() {
        for name in crate::provider::TEMPLATE_NAMES
            .iter()
            .filter(|n| **n != "oidc")
        {
            let t = crate::provider::template(name).unwrap();
            let p = Personality::for_template(name).unwrap();
            let check = |url: &Option<url::Url>, method: &str, route: Route| {
                if let Some(u) = url {
                    let path = u.path().replace("%7Bclient_id%7D", "Iv1.x");
                    assert_eq!(p.route(method, &path), Some(route), "{name} {u}");
                }
            };
            check(&t.authorization_endpoint, "GET", Route::Authorize);
            check(&t.token_endpoint, "POST", Route::Token);
            check(&t.device_authorization_endpoint, "POST", Route::Device);
            let revoke_method = if t.revocation_format == crate::oauth::RevocationFormat::Github {
                "DELETE"
            } else {
                "POST"
            };
            check(&t.revocation_endpoint, revoke_method, Route::Revoke);
            assert_eq!(
                t.revocation_endpoint.is_some(),
                p.revocation != Revocation::None,
                "{name}"
            );
            assert_eq!(t.issuer.is_some(), p.discovery, "{name}");
        }
    }

    #[test]
    fn microsoft_tenant_segment_and_github_client_id_segment() {
        let m = Personality::for_template("microsoft").unwrap();
        assert_eq!(
            m.route("POST", "/organizations/oauth2/v2.0/token"),
            Some(Route::Token)
        );
        assert_eq!(
            m.route("GET", "/contoso.onmicrosoft.com/oauth2/v2.0/authorize"),
            Some(Route::Authorize)
        );
        assert_eq!(m.route("POST", "/oauth2/v2.0/token"), None);
        assert_eq!(m.route("POST", "/a b/oauth2/v2.0/token"), None);
        let g = Personality::for_template("github").unwrap();
        assert_eq!(
            g.route("DELETE", "/applications/Iv1.x/token"),
            Some(Route::Revoke)
        );
        assert_eq!(
            g.client_id_in_path("/applications/Iv1.x/token"),
            Some("Iv1.x")
        );
        assert_eq!(g.route("POST", "/applications/Iv1.x/token"), None);
        assert_eq!(g.route("DELETE", "/applications//token"), None);
    }

    #[test]
    fn redirect_rules_per_provider() {
        let spotify = Personality::for_template("spotify").unwrap();
        let reg = vec!["http://127.0.0.1/callback".to_owned()];
        assert!(spotify.redirect_allowed("http://127.0.0.1:5555/callback", &reg));
        assert!(!spotify.redirect_allowed("http://localhost:5555/callback", &reg));
        assert!(!spotify.redirect_allowed("http://127.0.0.1:5555/other", &reg));
        let dexcom = Personality::for_template("dexcom").unwrap();
        let reg = vec!["http://127.0.0.1:8123/callback".to_owned()];
        assert!(dexcom.redirect_allowed("http://127.0.0.1:8123/callback", &reg));
        assert!(!dexcom.redirect_allowed("http://127.0.0.1:8124/callback", &reg));
        assert!(!dexcom.redirect_allowed("http://127.0.0.1:8123/callback", &[]));
        let openai = Personality::for_template("openai").unwrap();
        assert!(openai.redirect_allowed("http://localhost:1455/auth/callback", &[]));
        assert!(openai.redirect_allowed("http://localhost:1457/auth/callback", &[]));
        assert!(!openai.redirect_allowed("http://localhost:1456/auth/callback", &[]));
        assert!(!openai.redirect_allowed("http://127.0.0.1:1455/auth/callback", &[]));
    }
}
