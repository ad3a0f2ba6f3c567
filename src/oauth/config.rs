//! The engine's own view of a client: endpoints, credentials, scopes and extra parameters.
//!
//! `oauth` does not read provider files; `app` maps a provider onto a [`ClientConfig`].

use std::time::Duration;

use url::Url;

use super::client_auth::{ClientAuth, RevocationFormat};
use super::error::{OAuthError, Result};
use super::wire;

/// Everything the engine needs to talk to one provider for one client.
#[derive(Debug, Clone, Default)]
pub struct ClientConfig {
    /// The OAuth `client_id`.
    pub client_id: String,
    /// How the client authenticates at the token and revocation endpoints, with the secret
    /// `basic` / `post` need (SECRET-2).
    pub client_auth: ClientAuth,
    /// The issuer identifier, when known (discovery, `iss` checks).
    pub issuer: Option<String>,
    /// Where the browser is sent to log in.
    pub authorization_endpoint: Option<Url>,
    /// Where codes and refresh tokens are exchanged.
    pub token_endpoint: Option<Url>,
    /// Revocation endpoint (RFC 7009, or the provider's own format).
    pub revocation_endpoint: Option<Url>,
    /// How the revocation endpoint is called (PROV-3).
    pub revocation_format: RevocationFormat,
    /// Other exact `iss` spellings of the issuer (PROV-8).
    pub issuer_aliases: Vec<String>,
    /// The login's `redirect_uri`, sent again on refresh when the provider wants it (PROV-5).
    pub refresh_redirect_uri: Option<String>,
    /// RFC 8628 device authorization endpoint.
    pub device_authorization_endpoint: Option<Url>,
    /// Requested scopes, sent space-joined.
    pub scopes: Vec<String>,
    /// Extra parameters for the authorization request (e.g. `access_type=offline`).
    pub auth_params: Vec<(String, String)>,
    /// Extra parameters for every token request.
    pub token_params: Vec<(String, String)>,
    /// Send `scope` on refresh (Microsoft requires it).
    pub scope_on_refresh: bool,
    /// Lifetime assumed when the server sends no usable `expires_in` (EXP-3).
    pub default_lifetime: Option<Duration>,
    /// The issuer's metadata says `authorization_response_iss_parameter_supported: true`, so an
    /// authorization response without `iss` is refused (AUTHZ-4, RFC 9207 §2.4).
    pub require_iss: bool,
}

impl ClientConfig {
    /// The token endpoint, checked against DISC-4.
    pub(crate) fn token_url(&self) -> Result<&Url> {
        let url = self
            .token_endpoint
            .as_ref()
            .ok_or_else(|| OAuthError::Config("the provider has no token endpoint".into()))?;
        check_endpoint(url)?;
        Ok(url)
    }

    /// True when `openid` is among the scopes (an OIDC login, AUTHZ-6).
    pub fn is_oidc(&self) -> bool {
        self.scopes.iter().any(|s| s == "openid")
    }

    /// The scopes joined by single spaces, or `None` when there are none.
    pub fn scope_string(&self) -> Option<String> {
        (!self.scopes.is_empty()).then(|| self.scopes.join(" "))
    }
}

/// DISC-4 / NET-1: endpoints must be `https`, except on loopback hosts (127.0.0.0/8, ::1,
/// `localhost`), which the local fake server and tests use. Loopback never leaves the machine.
/// The rule itself is [`wire::endpoint_problem`], shared with the exchange proxy.
pub fn check_endpoint(url: &Url) -> Result<()> {
    match wire::endpoint_problem(url) {
        None => Ok(()),
        Some(problem) => Err(OAuthError::Config(format!(
            "the endpoint on host '{}' {problem}",
            crate::text::sanitize(url.host_str().unwrap_or("?"), 100)
        ))),
    }
}

pub use super::wire::is_loopback;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn disc4_rejects_plain_http_except_loopback() {
        let ok = |s: &str| check_endpoint(&Url::parse(s).unwrap()).is_ok();
        assert!(ok("https://as.example/token"));
        assert!(ok("http://127.0.0.1:8080/token"));
        assert!(ok("http://[::1]:8080/token"));
        assert!(ok("http://localhost/token"));
        assert!(!ok("http://as.example/token"));
        assert!(!ok("http://127.0.0.1.evil.example/token"));
        assert!(!ok("ftp://as.example/token"));
        assert!(!ok("https://as.example/token#frag"));
        assert!(!ok("https://user:pw@as.example/token"));
    }
}
