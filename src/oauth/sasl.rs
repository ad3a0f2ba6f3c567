//! SASL initial responses that carry an OAuth 2.0 bearer token, for mail clients that want the
//! whole string rather than the token (SASL-1): Google's and Microsoft's `XOAUTH2`, and
//! `OAUTHBEARER` (RFC 7628 §3.1).

use crate::secret::{AccessToken, SaslResponse};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use thiserror::Error;

/// The SASL mechanisms authdeck can answer for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mechanism {
    /// `user=U ^A auth=Bearer T ^A ^A` (Google, Microsoft).
    XOAuth2,
    /// RFC 7628: `n,a=U, ^A [host=H ^A port=P ^A] auth=Bearer T ^A ^A`.
    OAuthBearer,
}

/// Why no response can be built.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum SaslError {
    /// The user name is empty or holds a control character (`^A` would split the message).
    #[error("the SASL user name must be non-empty printable text")]
    BadUser,
    /// The token holds a character outside RFC 6750's b64token alphabet plus `~+/=`.
    #[error("the access token cannot be sent in a SASL bearer message")]
    BadToken,
}

/// Builds the base64 initial response for `mechanism` (SASL-1). `host`/`port` are optional in
/// OAUTHBEARER and ignored for XOAUTH2.
pub fn initial_response(
    mechanism: Mechanism,
    user: &str,
    token: &AccessToken,
    host: Option<&str>,
    port: Option<u16>,
) -> Result<SaslResponse, SaslError> {
    if user.is_empty() || user.chars().any(char::is_control) {
        return Err(SaslError::BadUser);
    }
    if !bearer_token_ok(token.secret()) {
        return Err(SaslError::BadToken);
    }
    let mut raw = String::with_capacity(token.secret().len() + user.len() + 48);
    match mechanism {
        Mechanism::XOAuth2 => {
            raw.push_str("user=");
            raw.push_str(user);
            raw.push('\x01');
        }
        Mechanism::OAuthBearer => {
            raw.push_str("n,a=");
            raw.push_str(&saslname(user));
            raw.push_str(",\x01");
            if let Some(h) = host.filter(|h| !h.is_empty() && !h.contains(char::is_control)) {
                raw.push_str("host=");
                raw.push_str(h);
                raw.push('\x01');
            }
            if let Some(p) = port {
                raw.push_str(&format!("port={p}\x01"));
            }
        }
    }
    raw.push_str("auth=Bearer ");
    raw.push_str(token.secret());
    raw.push_str("\x01\x01");
    let encoded = SaslResponse::new(STANDARD.encode(raw.as_bytes()));
    zeroize::Zeroize::zeroize(&mut raw);
    Ok(encoded)
}

/// RFC 5801 §5.1 saslname: `,` and `=` escaped as `=2C` and `=3D`.
fn saslname(user: &str) -> String {
    user.replace('=', "=3D").replace(',', "=2C")
}

/// RFC 6750 §2.1 b64token: `1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" ) *"="`.
fn bearer_token_ok(token: &str) -> bool {
    let body = token.trim_end_matches('=');
    !body.is_empty()
        && body
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-._~+/".contains(&b))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode(r: &SaslResponse) -> String {
        String::from_utf8(STANDARD.decode(r.secret()).unwrap()).unwrap()
    }

    #[test]
    fn xoauth2_matches_googles_example() {
        // The example of Google's "OAuth 2.0 Mechanism" page.
        let t = AccessToken::new("ya29.vF9dft4qmTc2Nvb3RlckBhdHRhdmlzdGEuY29tCg");
        let r =
            initial_response(Mechanism::XOAuth2, "someuser@example.com", &t, None, None).unwrap();
        assert_eq!(
            r.secret(),
            "dXNlcj1zb21ldXNlckBleGFtcGxlLmNvbQFhdXRoPUJlYXJlciB5YTI5LnZGOWRmdDRxbVRjMk52YjNSbGNrQmhkSFJoZG1semRHRXVZMjl0Q2cBAQ=="
        );
    }

    #[test]
    fn oauthbearer_matches_rfc7628() {
        // RFC 7628 §4.1, with the host and port of the example.
        let t = AccessToken::new("vF9dft4qmTc2Nvb3RlckBhbHRhdmlzdGEuY29tCg==");
        let r = initial_response(
            Mechanism::OAuthBearer,
            "user@example.com",
            &t,
            Some("server.example.com"),
            Some(143),
        )
        .unwrap();
        assert_eq!(
            decode(&r),
            "n,a=user@example.com,\x01host=server.example.com\x01port=143\x01auth=Bearer vF9dft4qmTc2Nvb3RlckBhbHRhdmlzdGEuY29tCg==\x01\x01"
        );
    }

    #[test]
    fn saslname_escapes() {
        let t = AccessToken::new("abc");
        let r = initial_response(Mechanism::OAuthBearer, "a,b=c", &t, None, None).unwrap();
        assert!(decode(&r).starts_with("n,a=a=2Cb=3Dc,\x01auth=Bearer abc"));
    }

    #[test]
    fn hostile_values_are_refused() {
        let t = AccessToken::new("abc");
        assert_eq!(
            initial_response(Mechanism::XOAuth2, "a\x01b", &t, None, None).err(),
            Some(SaslError::BadUser)
        );
        assert_eq!(
            initial_response(Mechanism::XOAuth2, "", &t, None, None).err(),
            Some(SaslError::BadUser)
        );
        let bad = AccessToken::new("abc\x01auth=x");
        assert_eq!(
            initial_response(Mechanism::XOAuth2, "u", &bad, None, None).err(),
            Some(SaslError::BadToken)
        );
    }
}
