//! The authorization request: the browser URL plus the per-login secrets kept in memory.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use url::Url;

use super::config::{ClientConfig, check_endpoint};
use super::error::{OAuthError, Result};
use super::pkce::PkcePair;
use crate::secret::{CsrfState, Nonce, PkceVerifier, random_bytes};

/// Everything but RFC 3986 unreserved characters is encoded, so a space is `%20` and a `+`
/// is `%2B`: both decode the same under form and plain percent decoding.
const QUERY_VALUE: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// Parameters the engine sets itself; `auth_params` may not override them, and none may
/// carry a secret (SECRET-2).
const RESERVED: &[&str] = &[
    "response_type",
    "client_id",
    "redirect_uri",
    "scope",
    "state",
    "nonce",
    "code_challenge",
    "code_challenge_method",
    "client_secret",
];

/// One login's authorization request. Keep it until the callback arrives; the verifier is
/// consumed by the code exchange (PKCE-4).
#[derive(Debug)]
pub struct AuthorizationRequest {
    /// The URL to open in the system browser. Holds no secret but the state and nonce.
    pub url: Url,
    /// The CSRF `state` (256 random bits; AUTHZ-2), compared in constant time on callback.
    pub state: CsrfState,
    /// The PKCE verifier for the exchange.
    pub verifier: PkceVerifier,
    /// The OIDC nonce, when `openid` is requested (AUTHZ-6).
    pub nonce: Option<Nonce>,
    /// The exact `redirect_uri` sent, to be repeated byte for byte in the exchange (TOK-2).
    pub redirect_uri: String,
}

impl AuthorizationRequest {
    /// Builds the URL: `response_type=code`, `client_id`, `redirect_uri`, `scope`, `state`,
    /// `code_challenge` with `code_challenge_method=S256` (PKCE-3), `nonce` for OIDC, then
    /// the provider's `auth_params`. Every value is percent-encoded.
    pub fn new(config: &ClientConfig, redirect_uri: &str) -> Result<Self> {
        let endpoint = config.authorization_endpoint.as_ref().ok_or_else(|| {
            OAuthError::Config("the provider has no authorization endpoint".into())
        })?;
        check_endpoint(endpoint)?;
        if let Some((k, _)) = config
            .auth_params
            .iter()
            .find(|(k, _)| RESERVED.contains(&k.as_str()))
        {
            return Err(OAuthError::Config(format!(
                "auth_params may not set '{k}': authdeck sets it itself"
            )));
        }
        let pkce = PkcePair::generate();
        let state = CsrfState::new(random_token());
        let nonce = config.is_oidc().then(|| Nonce::new(random_token()));

        let mut params: Vec<(&str, &str)> = vec![
            ("response_type", "code"),
            ("client_id", &config.client_id),
            ("redirect_uri", redirect_uri),
        ];
        let scope = config.scope_string();
        if let Some(scope) = &scope {
            params.push(("scope", scope));
        }
        params.push(("state", state.secret()));
        params.push(("code_challenge", &pkce.challenge));
        params.push(("code_challenge_method", "S256"));
        if let Some(nonce) = &nonce {
            params.push(("nonce", nonce.secret()));
        }
        params.extend(
            config
                .auth_params
                .iter()
                .map(|(k, v)| (k.as_str(), v.as_str())),
        );

        let url = append_query(endpoint, &params)?;
        Ok(Self {
            url,
            state,
            verifier: pkce.verifier,
            nonce,
            redirect_uri: redirect_uri.to_owned(),
        })
    }
}

/// 32 random bytes (256 bits), base64url: used for `state` and `nonce`.
fn random_token() -> String {
    URL_SAFE_NO_PAD.encode(random_bytes::<32>())
}

/// Appends `params` to the endpoint's existing query, encoding with [`QUERY_VALUE`].
fn append_query(endpoint: &Url, params: &[(&str, &str)]) -> Result<Url> {
    let encoded: Vec<String> = params
        .iter()
        .map(|(k, v)| {
            format!(
                "{}={}",
                utf8_percent_encode(k, QUERY_VALUE),
                utf8_percent_encode(v, QUERY_VALUE)
            )
        })
        .collect();
    let mut query = endpoint.query().unwrap_or_default().to_owned();
    for part in encoded {
        if !query.is_empty() {
            query.push('&');
        }
        query.push_str(&part);
    }
    let mut url = endpoint.clone();
    url.set_query(Some(&query));
    if url.query() != Some(query.as_str()) {
        return Err(OAuthError::Config(
            "the authorization URL could not be encoded".into(),
        ));
    }
    Ok(url)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::oauth::ClientAuth;
    use crate::secret::ClientSecret;

    fn config() -> ClientConfig {
        ClientConfig {
            client_id: "my client+id".into(),
            client_auth: ClientAuth::Basic(ClientSecret::new("s3cr3t-value")),
            authorization_endpoint: Some(
                Url::parse("https://as.example/authorize?tenant=x").unwrap(),
            ),
            scopes: vec!["openid".into(), "email".into(), "offline_access".into()],
            auth_params: vec![
                ("prompt".into(), "select account".into()),
                ("hint".into(), "Zoë+1".into()),
            ],
            ..Default::default()
        }
    }

    fn pairs(url: &Url) -> Vec<(String, String)> {
        url.query_pairs()
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect()
    }

    fn get(url: &Url, key: &str) -> Option<String> {
        pairs(url)
            .into_iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v)
    }

    #[test]
    fn authz_url_encodes_every_parameter_pkce3() {
        let req = AuthorizationRequest::new(&config(), "http://127.0.0.1:53117/callback").unwrap();
        let raw = req.url.as_str();
        assert!(raw.starts_with("https://as.example/authorize?tenant=x&response_type=code&"));
        assert!(raw.contains("client_id=my%20client%2Bid"), "{raw}");
        assert!(
            raw.contains("scope=openid%20email%20offline_access"),
            "{raw}"
        );
        assert!(
            raw.contains("redirect_uri=http%3A%2F%2F127.0.0.1%3A53117%2Fcallback"),
            "{raw}"
        );
        assert!(raw.contains("hint=Zo%C3%AB%2B1"), "{raw}");
        assert!(raw.contains("prompt=select%20account"), "{raw}");
        assert!(raw.contains("code_challenge_method=S256"));
        assert!(!raw.contains("plain"));
        assert_eq!(get(&req.url, "client_id").unwrap(), "my client+id");
        assert_eq!(get(&req.url, "hint").unwrap(), "Zoë+1");
        assert_eq!(
            get(&req.url, "code_challenge").unwrap(),
            super::super::pkce::challenge_s256(req.verifier.secret())
        );
        assert_eq!(req.redirect_uri, "http://127.0.0.1:53117/callback");
    }

    #[test]
    fn authz2_state_is_fresh_and_256_bits_authz6_nonce_for_openid() {
        let a = AuthorizationRequest::new(&config(), "http://127.0.0.1:1/cb").unwrap();
        let b = AuthorizationRequest::new(&config(), "http://127.0.0.1:1/cb").unwrap();
        assert_eq!(a.state.secret().len(), 43);
        assert_ne!(a.state, b.state);
        assert_eq!(get(&a.url, "state").unwrap(), a.state.secret());
        let nonce = a.nonce.as_ref().unwrap();
        assert_eq!(get(&a.url, "nonce").unwrap(), nonce.secret());

        let mut plain = config();
        plain.scopes = vec!["repo".into()];
        let c = AuthorizationRequest::new(&plain, "http://127.0.0.1:1/cb").unwrap();
        assert!(c.nonce.is_none());
        assert!(get(&c.url, "nonce").is_none());
    }

    #[test]
    fn secret2_no_secret_in_authorization_url() {
        let req = AuthorizationRequest::new(&config(), "http://127.0.0.1:1/cb").unwrap();
        assert!(!req.url.as_str().contains("s3cr3t"));
        assert!(get(&req.url, "client_secret").is_none());
        assert!(!req.url.as_str().contains(req.verifier.secret()));
    }

    #[test]
    fn auth_params_may_not_override_reserved() {
        for key in ["state", "client_secret", "code_challenge_method"] {
            let mut c = config();
            c.auth_params.push((key.into(), "x".into()));
            let err = AuthorizationRequest::new(&c, "http://127.0.0.1:1/cb").unwrap_err();
            assert!(err.is_config_error(), "{key}");
        }
    }

    #[test]
    fn missing_or_insecure_endpoint_is_config_error() {
        let mut c = config();
        c.authorization_endpoint = None;
        assert!(
            AuthorizationRequest::new(&c, "x")
                .unwrap_err()
                .is_config_error()
        );
        c.authorization_endpoint = Some(Url::parse("http://as.example/a").unwrap());
        assert!(
            AuthorizationRequest::new(&c, "x")
                .unwrap_err()
                .is_config_error()
        );
    }
}
