//! How a client authenticates at the token and revocation endpoints (RFC 6749 §2.3), and how
//! tokens are revoked: the vocabulary of provider files, owned by the protocol core.
//!
//! [`AuthMethod`] is what a provider file says (`client_auth = "basic"`); [`ClientAuth`] is
//! the method with the secret it needs, so "Basic with no secret" cannot be built (SECRET-2).

use serde::{Deserialize, Serialize};

use super::client_assertion::ClientKey;
use crate::secret::ClientSecret;

/// The client authentication method a provider file names (RFC 6749 §2.3.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum AuthMethod {
    /// Public client: only `client_id` in the body.
    #[default]
    None,
    /// `Authorization: Basic base64(urlencode(id):urlencode(secret))`.
    Basic,
    /// `client_id` and `client_secret` in the form body.
    Post,
    /// A JWT client assertion signed with the client's private key (MACH-2, RFC 7523).
    #[serde(rename = "private_key_jwt")]
    PrivateKeyJwt,
}

impl AuthMethod {
    /// The name used in provider files.
    pub fn as_str(self) -> &'static str {
        match self {
            AuthMethod::None => "none",
            AuthMethod::Basic => "basic",
            AuthMethod::Post => "post",
            AuthMethod::PrivateKeyJwt => "private_key_jwt",
        }
    }
}

/// How the client authenticates, with the secret the method needs.
#[derive(Debug, Clone, Default)]
pub enum ClientAuth {
    /// Public client: only `client_id` is sent.
    #[default]
    None,
    /// HTTP Basic with this secret.
    Basic(ClientSecret),
    /// `client_secret` in the form body.
    Post(ClientSecret),
    /// A client assertion signed with this key (MACH-2).
    PrivateKeyJwt(ClientKey),
}

impl ClientAuth {
    /// `method` with `secret`; `Err(method)` when the method needs a secret and there is none,
    /// and for `private_key_jwt`, which needs a key ([`ClientAuth::PrivateKeyJwt`]) instead.
    /// A secret given to `none` is dropped: a public client sends none (SECRET-2).
    pub fn new(method: AuthMethod, secret: Option<ClientSecret>) -> Result<Self, AuthMethod> {
        match (method, secret) {
            (AuthMethod::None, _) => Ok(ClientAuth::None),
            (AuthMethod::Basic, Some(secret)) => Ok(ClientAuth::Basic(secret)),
            (AuthMethod::Post, Some(secret)) => Ok(ClientAuth::Post(secret)),
            (AuthMethod::PrivateKeyJwt, _) => Err(AuthMethod::PrivateKeyJwt),
            (method, None) => Err(method),
        }
    }

    /// The method, without the secret.
    pub fn method(&self) -> AuthMethod {
        match self {
            ClientAuth::None => AuthMethod::None,
            ClientAuth::Basic(_) => AuthMethod::Basic,
            ClientAuth::Post(_) => AuthMethod::Post,
            ClientAuth::PrivateKeyJwt(_) => AuthMethod::PrivateKeyJwt,
        }
    }

    /// The client secret, when the method has one.
    pub fn secret(&self) -> Option<&ClientSecret> {
        match self {
            ClientAuth::None | ClientAuth::PrivateKeyJwt(_) => None,
            ClientAuth::Basic(secret) | ClientAuth::Post(secret) => Some(secret),
        }
    }
}

/// How tokens are revoked at `revocation_endpoint` (PROV-3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum RevocationFormat {
    /// RFC 7009: a form POST of `token` and `token_type_hint`, with client authentication.
    #[default]
    Rfc7009,
    /// A JSON POST of `token` and `token_type_hint` (plus `client_id` for a refresh token),
    /// as the Codex CLI revokes at OpenAI.
    Json,
    /// GitHub's REST API: `DELETE` at the endpoint with HTTP Basic `client_id:client_secret` and
    /// the JSON body `{"access_token": ...}`; only the access token is sent.
    Github,
}

impl RevocationFormat {
    /// The name used in provider files.
    pub fn as_str(self) -> &'static str {
        match self {
            RevocationFormat::Rfc7009 => "rfc7009",
            RevocationFormat::Json => "json",
            RevocationFormat::Github => "github",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_2_a_secret_method_needs_a_secret() {
        let s = || Some(ClientSecret::new("s"));
        assert!(matches!(
            ClientAuth::new(AuthMethod::None, s()),
            Ok(ClientAuth::None)
        ));
        assert_eq!(
            ClientAuth::new(AuthMethod::Basic, s()).unwrap().method(),
            AuthMethod::Basic
        );
        let post = ClientAuth::new(AuthMethod::Post, s()).unwrap();
        assert_eq!(post.secret().map(ClientSecret::secret), Some("s"));
        assert_eq!(
            ClientAuth::new(AuthMethod::Basic, None).unwrap_err(),
            AuthMethod::Basic
        );
        assert_eq!(
            ClientAuth::new(AuthMethod::Post, None).unwrap_err(),
            AuthMethod::Post
        );
        assert!(
            !format!("{post:?}").contains("\"s\""),
            "secret never in Debug"
        );
    }
}
