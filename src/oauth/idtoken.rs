//! ID token claims and their DISC-5 checks.
//!
//! [`OAuthClient::verify_id_token`] is the real check: signature with the issuer's JWKS
//! ([`super::jwks`]), then `iss`, `aud` / `azp`, `exp`, `iat` and `nonce`
//! ([`check_claims`]). [`decode_unverified`] only decodes, for providers whose issuer and
//! `jwks_uri` are unknown: such claims prove nothing and are shown as unverified.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine;
use base64::engine::general_purpose::{URL_SAFE, URL_SAFE_NO_PAD};
use serde_json::Value;
use url::Url;

use super::client::OAuthClient;
use super::error::{OAuthError, Result};
use crate::secret::{IdToken, Nonce};

/// Leeway for `exp` checks (EXP-5).
pub const LEEWAY: Duration = Duration::from_secs(60);

/// How far in the future `iat` may lie (clock skew) before a token is refused as absurd.
pub const MAX_IAT_SKEW: Duration = Duration::from_secs(300);

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
    /// Authorized party: the client the token was issued to.
    pub azp: Option<String>,
    /// The nonce echoed from the request (AUTHZ-6). Secret-typed: never logged.
    pub nonce: Option<Nonce>,
    /// True only for claims that passed [`OAuthClient::verify_id_token`] (DISC-5).
    pub verified: bool,
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
            .field("azp", &self.azp)
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
    claims_from_payload(&bytes).map_err(bad)
}

/// Reads the claims of a decoded JWT payload.
fn claims_from_payload(bytes: &[u8]) -> std::result::Result<IdClaims, &'static str> {
    let value: Value = serde_json::from_slice(bytes).map_err(|_| "payload is not JSON")?;
    let obj = value.as_object().ok_or("payload is not an object")?;
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
        azp: text("azp"),
        nonce: text("nonce").map(Nonce::new),
        verified: false,
    })
}

/// What a verified ID token must match (DISC-5).
#[derive(Debug, Clone)]
pub struct IdTokenCheck<'a> {
    /// The issuer identifier, compared exactly with `iss`.
    pub issuer: &'a str,
    /// Other exact spellings of the issuer that `iss` may carry (PROV-8: Google writes
    /// `accounts.google.com` with or without `https://`). Empty for every other provider.
    pub issuer_aliases: &'a [String],
    /// Where the issuer publishes its signing keys (from discovery).
    pub jwks_uri: &'a Url,
    /// Our `client_id`: must be in `aud`, and equal `azp` when present.
    pub client_id: &'a str,
    /// The login's nonce (AUTHZ-6); `None` for refresh and device responses (OIDC Core §12.2).
    pub nonce: Option<&'a Nonce>,
    /// On refresh: the `sub` of the account's earlier ID token, which must not change
    /// (OIDC Core §12.2). `None` when unknown.
    pub subject: Option<&'a str>,
    /// The current time.
    pub now: SystemTime,
}

impl OAuthClient {
    /// DISC-5: verifies `token`'s signature with the issuer's keys (fetched from
    /// `check.jwks_uri`, cached per issuer, refetched once for an unknown key), then its
    /// claims with [`check_claims`]. Returns the verified claims. Errors are
    /// [`OAuthError::IdToken`] with a fixed reason, or the JWKS fetch's own error.
    pub async fn verify_id_token(
        &self,
        token: &IdToken,
        check: &IdTokenCheck<'_>,
    ) -> Result<IdClaims> {
        let payload = self
            .verify_jws(token.secret(), check.issuer, check.jwks_uri)
            .await?;
        let claims = claims_from_payload(&payload)
            .map_err(|why| OAuthError::IdToken(format!("malformed token: {why}")))?;
        check_claims(&claims, check)?;
        Ok(IdClaims {
            verified: true,
            ..claims
        })
    }
}

/// DISC-5 claim checks on SIGNED claims: `iss` equal, `aud` contains the client, `azp` (when
/// present) is the client, `exp` not past (with [`LEEWAY`]), `iat` not beyond
/// [`MAX_IAT_SKEW`] in the future, `nonce` equal (AUTHZ-6, constant time), `sub` unchanged.
pub fn check_claims(claims: &IdClaims, check: &IdTokenCheck<'_>) -> Result<()> {
    let bad = |why: &str| OAuthError::IdToken(why.to_owned());
    let iss_ok = claims
        .iss
        .as_deref()
        .is_some_and(|iss| iss == check.issuer || check.issuer_aliases.iter().any(|a| a == iss));
    if !iss_ok {
        return Err(bad("issuer mismatch"));
    }
    if !claims.aud.iter().any(|a| a == check.client_id) {
        return Err(bad("audience does not contain the client_id"));
    }
    // OIDC Core §3.1.3.7 (5): an `azp` must name us; with several audiences it says which
    // of them the token is for.
    if claims
        .azp
        .as_deref()
        .is_some_and(|azp| azp != check.client_id)
    {
        return Err(bad("authorized party (azp) is another client"));
    }
    let now = epoch_secs(check.now);
    let exp = claims.exp.ok_or_else(|| bad("no exp claim"))?;
    if u64::try_from(exp).map_or(true, |e| e.saturating_add(LEEWAY.as_secs()) < now) {
        return Err(bad("expired"));
    }
    if let Some(iat) = claims.iat
        && u64::try_from(iat).map_or(true, |i| i > now.saturating_add(MAX_IAT_SKEW.as_secs()))
    {
        return Err(bad("issued in the future (iat)"));
    }
    if let Some(expected) = check.nonce {
        check_nonce(claims, expected)?;
    }
    if let Some(sub) = check.subject
        && claims.sub.as_deref() != Some(sub)
    {
        return Err(bad("subject differs from the account's"));
    }
    Ok(())
}

/// Seconds since the Unix epoch (0 before it).
fn epoch_secs(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
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
    use crate::oauth::jwks::testkeys::{TestKey, mint};
    use crate::oauth::testutil::{Reply, Stub, fast_client};
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
        // EXP-5: `exp` gets 60 s of leeway.
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

    fn check<'a>(uri: &'a Url, nonce: Option<&'a Nonce>, now: u64) -> IdTokenCheck<'a> {
        IdTokenCheck {
            issuer: "https://as.example",
            issuer_aliases: &[],
            jwks_uri: uri,
            client_id: "cid",
            nonce,
            subject: None,
            now: UNIX_EPOCH + Duration::from_secs(now),
        }
    }

    fn good_claims() -> Value {
        json!({"iss": "https://as.example", "sub": "u1", "aud": "cid", "iat": 1_900_000_000,
               "exp": 1_900_000_600, "nonce": "n-1", "email": "a@b.example"})
    }

    /// Verifies `claims` signed by a fresh ES256 key served by a stub JWKS.
    async fn verify_with(
        claims: &Value,
        nonce: &str,
        now: u64,
        tweak: impl Fn(&mut IdTokenCheck<'_>),
    ) -> Result<IdClaims> {
        let key = TestKey::es256();
        let set = json!({"keys": [key.jwk(Some("k1"))]}).to_string();
        let stub = Stub::start(vec![Reply::json(200, &set)]).await;
        let uri = Url::parse(&format!("http://{}/jwks", stub.addr)).unwrap();
        let token = IdToken::new(mint(&key, &json!({"alg": "ES256", "kid": "k1"}), claims));
        let nonce = Nonce::new(nonce);
        let mut c = check(&uri, Some(&nonce), now);
        tweak(&mut c);
        fast_client().verify_id_token(&token, &c).await
    }

    fn reason(r: Result<IdClaims>) -> String {
        match r {
            Err(OAuthError::IdToken(why)) => why,
            Err(OAuthError::NonceMismatch) => "nonce".into(),
            other => panic!("expected an ID token error, got {other:?}"),
        }
    }

    #[test]
    fn prov8_issuer_aliases_are_accepted_only_when_listed() {
        let uri = Url::parse("http://127.0.0.1:9/jwks").unwrap();
        let now = 1_900_000_100;
        let mut payload = good_claims();
        payload["iss"] = json!("as.example");
        let claims = decode_unverified(&make_jwt(&payload)).unwrap();
        let plain = check(&uri, None, now);
        assert!(check_claims(&claims, &plain).is_err(), "no alias: refused");
        let aliases = ["as.example".to_owned()];
        let aliased = IdTokenCheck {
            issuer_aliases: &aliases,
            ..check(&uri, None, now)
        };
        check_claims(&claims, &aliased).unwrap();
        // The issuer itself still passes; anything else still fails.
        let exact = decode_unverified(&make_jwt(&good_claims())).unwrap();
        check_claims(&exact, &aliased).unwrap();
        payload["iss"] = json!("evil.example");
        let evil = decode_unverified(&make_jwt(&payload)).unwrap();
        assert!(check_claims(&evil, &aliased).is_err());
    }

    #[tokio::test]
    async fn disc5_verified_token_yields_its_claims() {
        let c = verify_with(&good_claims(), "n-1", 1_900_000_100, |_| {})
            .await
            .unwrap();
        assert_eq!(c.sub.as_deref(), Some("u1"));
        assert_eq!(c.email.as_deref(), Some("a@b.example"));
        // Within the exp leeway still passes (EXP-5: 60 s).
        verify_with(&good_claims(), "n-1", 1_900_000_650, |_| {})
            .await
            .unwrap();
    }

    #[tokio::test]
    async fn disc5_wrong_iss_aud_azp_exp_iat_nonce_sub_refused() {
        let at = 1_900_000_100;
        let with = |k: &str, v: Value| {
            let mut c = good_claims();
            c[k] = v;
            c
        };
        let cases = [
            (
                with("iss", json!("https://evil.example")),
                "issuer mismatch",
            ),
            (with("iss", json!("https://as.example/")), "issuer mismatch"),
            (
                with("aud", json!("other")),
                "audience does not contain the client_id",
            ),
            (
                with("aud", json!(["other", "third"])),
                "audience does not contain the client_id",
            ),
            (
                with("azp", json!("other")),
                "authorized party (azp) is another client",
            ),
            (with("exp", json!(1_900_000_000)), "expired"),
            (with("exp", json!("soon")), "no exp claim"),
            (
                with("iat", json!(1_900_001_000)),
                "issued in the future (iat)",
            ),
            (with("nonce", json!("n-2")), "nonce"),
        ];
        for (claims, want) in cases {
            let got = reason(verify_with(&claims, "n-1", at, |_| {}).await);
            assert_eq!(got, want, "{claims}");
        }
        // Several audiences with azp = us pass.
        let multi = with("aud", json!(["cid", "api"]));
        let multi = {
            let mut m = multi;
            m["azp"] = json!("cid");
            m
        };
        verify_with(&multi, "n-1", at, |_| {}).await.unwrap();
        // No nonce expected (refresh, OIDC Core §12.2): passes; a changed subject does not.
        verify_with(&good_claims(), "x", at, |c| c.nonce = None)
            .await
            .unwrap();
        let got = reason(
            verify_with(&good_claims(), "x", at, |c| {
                c.nonce = None;
                c.subject = Some("u2");
            })
            .await,
        );
        assert_eq!(got, "subject differs from the account's");
    }

    #[tokio::test]
    async fn disc5_signature_failure_is_one_secret_free_line() {
        let key = TestKey::es256();
        let other = TestKey::es256();
        let stub = Stub::start(vec![Reply::json(
            200,
            &json!({"keys": [other.jwk(Some("k1"))]}).to_string(),
        )])
        .await;
        let uri = Url::parse(&format!("http://{}/jwks", stub.addr)).unwrap();
        let raw = mint(&key, &json!({"alg": "ES256", "kid": "k1"}), &good_claims());
        let nonce = Nonce::new("n-1");
        let e = fast_client()
            .verify_id_token(
                &IdToken::new(raw.as_str()),
                &check(&uri, Some(&nonce), 1_900_000_100),
            )
            .await
            .unwrap_err();
        let shown = e.to_string();
        assert_eq!(
            shown,
            "the ID token was rejected (DISC-5): signature does not verify"
        );
        for part in raw.split('.') {
            assert!(!shown.contains(part));
        }
    }

    #[test]
    fn garbage_id_token_is_an_error_without_echo() {
        for bad in ["abc", "a.b", "a.!!!.c", "a.b.c.d", "eyJ.bm90IGpzb24.c"] {
            let e = decode_unverified(&IdToken::new(bad)).unwrap_err();
            assert!(!e.to_string().contains(bad), "{e}");
        }
    }
}
