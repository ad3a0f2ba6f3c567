//! ID token claims, decoded WITHOUT signature verification, for display only.
//!
//! Nothing here proves who issued the token. Use the claims to show "logged in as", never to
//! make a security decision beyond the nonce / audience sanity checks below.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine;
use base64::engine::general_purpose::{URL_SAFE, URL_SAFE_NO_PAD};
use serde_json::Value;

use super::error::{OAuthError, Result};
use crate::secret::{IdToken, Nonce};

/// Leeway for `exp` checks (EXP-5).
pub const LEEWAY: Duration = Duration::from_secs(60);

/// Claims of an ID token, as decoded by [`decode_unverified`].
#[derive(Clone, PartialEq, Eq, Default)]
pub struct IdClaims {
    /// Subject identifier.
    pub sub: Option<String>,
    /// E-mail address.
    pub email: Option<String>,
    /// Display name.
    pub name: Option<String>,
    /// Expiry, epoch seconds.
    pub exp: Option<i64>,
    /// Issued at, epoch seconds.
    pub iat: Option<i64>,
    /// Issuer.
    pub iss: Option<String>,
    /// Audiences (a single string becomes one entry).
    pub aud: Vec<String>,
    /// The nonce echoed from the request (AUTHZ-6). Secret-typed: never logged.
    pub nonce: Option<Nonce>,
}

impl std::fmt::Debug for IdClaims {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IdClaims")
            .field("sub", &self.sub)
            .field("email", &self.email)
            .field("name", &self.name)
            .field("exp", &self.exp)
            .field("iss", &self.iss)
            .field("aud", &self.aud)
            .field("nonce", &self.nonce)
            .finish()
    }
}

/// Decodes the payload of a compact JWS WITHOUT verifying its signature.
pub fn decode_unverified(token: &IdToken) -> Result<IdClaims> {
    let bad = |why: &str| OAuthError::InvalidResponse(format!("id_token: {why}"));
    let mut parts = token.secret().split('.');
    let (Some(_header), Some(payload), Some(_sig), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(bad("not a three-part JWT"));
    };
    let bytes = URL_SAFE_NO_PAD
        .decode(payload)
        .or_else(|_| URL_SAFE.decode(payload))
        .map_err(|_| bad("payload is not base64url"))?;
    let value: Value = serde_json::from_slice(&bytes).map_err(|_| bad("payload is not JSON"))?;
    let obj = value
        .as_object()
        .ok_or_else(|| bad("payload is not an object"))?;
    let text = |k: &str| obj.get(k).and_then(Value::as_str).map(str::to_owned);
    let aud = match obj.get("aud") {
        Some(Value::String(s)) => vec![s.clone()],
        Some(Value::Array(a)) => a
            .iter()
            .filter_map(Value::as_str)
            .map(str::to_owned)
            .collect(),
        _ => Vec::new(),
    };
    Ok(IdClaims {
        sub: text("sub"),
        email: text("email"),
        name: text("name"),
        exp: obj.get("exp").and_then(Value::as_i64),
        iat: obj.get("iat").and_then(Value::as_i64),
        iss: text("iss"),
        aud,
        nonce: text("nonce").map(Nonce::new),
    })
}

/// AUTHZ-6: the token's nonce must equal the request's (constant-time compare).
pub fn check_nonce(claims: &IdClaims, expected: &Nonce) -> Result<()> {
    match &claims.nonce {
        Some(n) if expected.ct_eq(n.secret()) => Ok(()),
        _ => Err(OAuthError::NonceMismatch),
    }
}

/// DISC-5 without the signature: `iss` equal, `aud` contains `client_id`, `exp` not past
/// (with [`LEEWAY`]). Still unverified: a forger can satisfy all three.
pub fn check_claims_unverified(
    claims: &IdClaims,
    issuer: &str,
    client_id: &str,
    now: SystemTime,
) -> Result<()> {
    let bad = |why: &str| OAuthError::InvalidResponse(format!("id_token: {why}"));
    if claims.iss.as_deref() != Some(issuer) {
        return Err(bad("issuer does not match"));
    }
    if !claims.aud.iter().any(|a| a == client_id) {
        return Err(bad("audience does not contain the client_id"));
    }
    let now_secs = now
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let exp = claims.exp.ok_or_else(|| bad("no exp claim"))?;
    let leeway = LEEWAY.as_secs();
    if u64::try_from(exp).map_or(true, |e| e.saturating_add(leeway) < now_secs) {
        return Err(bad("expired"));
    }
    Ok(())
}

#[cfg(test)]
pub(crate) fn make_jwt(payload: &Value) -> IdToken {
    let head = URL_SAFE_NO_PAD.encode(br#"{"alg":"RS256","typ":"JWT"}"#);
    let body = URL_SAFE_NO_PAD.encode(payload.to_string());
    IdToken::new(format!("{head}.{body}.c2ln"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn disc5_decode_unverified_claims() {
        let t = make_jwt(
            &json!({"sub":"u1","email":"a@b.example","name":"Zoë","exp":2000000000,
            "iss":"https://as.example","aud":["cid","other"],"nonce":"n-1"}),
        );
        let c = decode_unverified(&t).unwrap();
        assert_eq!(c.sub.as_deref(), Some("u1"));
        assert_eq!(c.email.as_deref(), Some("a@b.example"));
        assert_eq!(c.name.as_deref(), Some("Zoë"));
        assert_eq!(c.exp, Some(2_000_000_000));
        assert_eq!(c.aud, vec!["cid", "other"]);
        assert!(!format!("{c:?}").contains("n-1"));
        let now = UNIX_EPOCH + Duration::from_secs(1_900_000_000);
        check_claims_unverified(&c, "https://as.example", "cid", now).unwrap();
        assert!(check_claims_unverified(&c, "https://evil.example", "cid", now).is_err());
        assert!(check_claims_unverified(&c, "https://as.example", "x", now).is_err());
        let late = UNIX_EPOCH + Duration::from_secs(2_000_000_100);
        assert!(check_claims_unverified(&c, "https://as.example", "cid", late).is_err());
        let within_leeway = UNIX_EPOCH + Duration::from_secs(2_000_000_030);
        assert!(check_claims_unverified(&c, "https://as.example", "cid", within_leeway).is_ok());
    }

    #[test]
    fn authz6_nonce_check() {
        let c = decode_unverified(&make_jwt(&json!({"nonce":"n-1","aud":"cid"}))).unwrap();
        assert_eq!(c.aud, vec!["cid"]);
        check_nonce(&c, &Nonce::new("n-1")).unwrap();
        assert!(matches!(
            check_nonce(&c, &Nonce::new("n-2")),
            Err(OAuthError::NonceMismatch)
        ));
        let none = decode_unverified(&make_jwt(&json!({}))).unwrap();
        assert!(check_nonce(&none, &Nonce::new("n-1")).is_err());
    }

    #[test]
    fn garbage_id_token_is_an_error_without_echo() {
        for bad in ["abc", "a.b", "a.!!!.c", "a.b.c.d", "eyJ.bm90IGpzb24.c"] {
            let e = decode_unverified(&IdToken::new(bad)).unwrap_err();
            assert!(!e.to_string().contains(bad), "{e}");
        }
    }
}
