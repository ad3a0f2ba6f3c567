//! Token endpoint responses: JSON or form-encoded bodies, RFC 6749 §5.2 errors, and the
//! resulting [`TokenSet`].

use std::time::{Duration, SystemTime};

use serde_json::{Map, Value};

use super::error::{OAuthError, Result};
use super::idtoken::{IdClaims, check_nonce, decode_unverified};
use crate::secret::{AccessToken, IdToken, Nonce, RefreshToken};

/// A decoded response body: field name → JSON value (form values become strings).
pub type Fields = Map<String, Value>;

/// The tokens a successful grant produced.
#[derive(Debug, Clone)]
pub struct TokenSet {
    /// The access token.
    pub access_token: AccessToken,
    /// The token type, normalised to `Bearer` (TOK-5).
    pub token_type: String,
    /// A new refresh token, or `None` (on refresh: keep the old one, REF-4).
    pub refresh_token: Option<RefreshToken>,
    /// Absolute expiry: send time + `expires_in` (EXP-1), the default lifetime, or unknown.
    pub expires_at: Option<SystemTime>,
    /// The lifetime the expiry was computed from (for the refresh margin, EXP-4).
    pub lifetime: Option<Duration>,
    /// True when the server gave no usable `expires_in` and `default_lifetime` was used.
    pub lifetime_defaulted: bool,
    /// When the request was sent.
    pub obtained_at: SystemTime,
    /// Granted scopes; the requested ones when the server sent none (TOK-6).
    pub scopes: Vec<String>,
    /// The raw ID token, if any.
    pub id_token: Option<IdToken>,
    /// Its claims: decoded without verification by the token parser (display only), replaced
    /// by the verified ones when the app checks the id_token (DISC-5, `IdClaims::verified`).
    pub claims: Option<IdClaims>,
}

impl TokenSet {
    /// AUTHZ-6: when an ID token came back, its `nonce` must equal the login's. A response
    /// without an ID token passes (not every provider sends one); an undecodable one fails.
    pub fn check_nonce(&self, expected: &Nonce) -> Result<()> {
        match (&self.id_token, &self.claims) {
            (None, _) => Ok(()),
            (Some(_), Some(claims)) => check_nonce(claims, expected),
            (Some(_), None) => Err(OAuthError::NonceMismatch),
        }
    }
}

/// Decodes a body as JSON or `application/x-www-form-urlencoded` (GitHub answers form when it
/// ignores `Accept`). Error text never quotes the body.
pub fn parse_fields(content_type: Option<&str>, body: &[u8]) -> Result<Fields> {
    let ct = content_type.unwrap_or_default().to_ascii_lowercase();
    let looks_json = super::wire::looks_like_json_object(body);
    if ct.contains("json") || (looks_json && !ct.contains("x-www-form-urlencoded")) {
        return match serde_json::from_slice::<Value>(body) {
            Ok(Value::Object(map)) => Ok(map),
            Ok(_) => Err(OAuthError::InvalidResponse(
                "the JSON body is not an object".into(),
            )),
            Err(_) => Err(OAuthError::InvalidResponse(
                "the body is not valid JSON".into(),
            )),
        };
    }
    if ct.contains("x-www-form-urlencoded") || ct.starts_with("text/plain") || ct.is_empty() {
        let text = std::str::from_utf8(body)
            .map_err(|_| OAuthError::InvalidResponse("the body is not UTF-8".into()))?;
        if text.contains('=') && !text.trim_start().starts_with('<') {
            return Ok(form_urlencoded::parse(text.trim().as_bytes())
                .map(|(k, v)| (k.into_owned(), Value::String(v.into_owned())))
                .collect());
        }
    }
    Err(OAuthError::InvalidResponse(format!(
        "unexpected body ({} bytes, content type '{}')",
        body.len(),
        super::error::sanitize(&ct, 60)
    )))
}

/// The RFC 6749 §5.2 error in `fields`, if it has an `error` member (TOK-4: on any status).
pub fn error_in(status: u16, fields: &Fields) -> Option<OAuthError> {
    let text = |k: &str| {
        fields
            .get(k)
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
    };
    let code = match fields.get("error") {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Null) | None => return None,
        // A non-string `error` is still an error; show a placeholder instead of raw JSON.
        Some(_) => "unknown_error".to_owned(),
    };
    Some(OAuthError::server(
        status,
        &code,
        text("error_description"),
        text("error_uri"),
    ))
}

/// Turns a token endpoint answer into a [`TokenSet`] or an [`OAuthError`].
///
/// `requested_scopes` fill in an absent `scope` (TOK-6); `default_lifetime` an unusable
/// `expires_in` (EXP-3); `sent_at` is the time the request left (EXP-1).
pub fn parse_token_response(
    status: u16,
    content_type: Option<&str>,
    body: &[u8],
    requested_scopes: &[String],
    default_lifetime: Option<Duration>,
    sent_at: SystemTime,
) -> Result<TokenSet> {
    let fields = match parse_fields(content_type, body) {
        Ok(f) => f,
        Err(_) if status != 200 => return Err(OAuthError::Http { status }),
        Err(e) => return Err(e),
    };
    if let Some(err) = error_in(status, &fields) {
        return Err(err);
    }
    if status != 200 {
        return Err(OAuthError::Http { status });
    }
    token_set_from(&fields, requested_scopes, default_lifetime, sent_at)
}

/// Builds a [`TokenSet`] from a success body (TOK-4, TOK-5, TOK-6, EXP-1..3).
pub fn token_set_from(
    fields: &Fields,
    requested_scopes: &[String],
    default_lifetime: Option<Duration>,
    sent_at: SystemTime,
) -> Result<TokenSet> {
    let text = |k: &str| {
        fields
            .get(k)
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
    };
    let access = text("access_token")
        .ok_or_else(|| OAuthError::InvalidResponse("no access_token in the response".into()))?;
    // HARD-9: tokens and scopes are printable ASCII (RFC 6749 Appendix A); anything else is
    // refused here, before it can reach a terminal, a header or a shell through `--export`.
    let refresh = text("refresh_token");
    if !super::wire::is_vschar(access) || !refresh.is_none_or(super::wire::is_vschar) {
        return Err(OAuthError::InvalidResponse(
            "a token in the response holds characters outside printable ASCII".into(),
        ));
    }
    if !text("scope").is_none_or(super::wire::is_vschar) {
        return Err(OAuthError::InvalidResponse(
            "the scope in the response holds characters outside printable ASCII".into(),
        ));
    }
    // TOK-4 requires token_type. GitHub always sends `token_type=bearer`, so no exception.
    let token_type = text("token_type")
        .ok_or_else(|| OAuthError::InvalidResponse("no token_type in the response".into()))?;
    if !token_type.eq_ignore_ascii_case("bearer") {
        return Err(OAuthError::InvalidResponse(format!(
            "unsupported token_type '{}'",
            super::error::sanitize(token_type, 40)
        )));
    }
    let (lifetime, lifetime_defaulted) =
        lifetime_of(fields.get("expires_in"), default_lifetime, sent_at);
    let scopes = match text("scope") {
        Some(s) => s
            .split(' ')
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .collect(),
        None => requested_scopes.to_vec(),
    };
    if scopes.len() < requested_scopes.len() {
        tracing::warn!(
            granted = scopes.len(),
            requested = requested_scopes.len(),
            "narrower scope granted"
        );
    }
    let id_token = text("id_token").map(IdToken::new);
    let claims = id_token.as_ref().and_then(|t| match decode_unverified(t) {
        Ok(c) => Some(c),
        Err(e) => {
            tracing::warn!(error = %e, "could not decode the id_token claims");
            None
        }
    });
    Ok(TokenSet {
        access_token: AccessToken::new(access),
        token_type: "Bearer".to_owned(),
        refresh_token: refresh.map(RefreshToken::new),
        // `lifetime_of` only returns lifetimes that fit after `sent_at`.
        expires_at: lifetime.and_then(|d| sent_at.checked_add(d)),
        lifetime,
        lifetime_defaulted,
        obtained_at: sent_at,
        scopes,
        id_token,
        claims,
    })
}

/// EXP-1..3: the token's lifetime and whether it is the profile's default. A server value that
/// is absent, not positive, unparseable or too large to add to `sent_at` is unusable: then the
/// default applies, else the expiry is unknown (`None`; the caller warns the user, USE-2).
fn lifetime_of(
    expires_in: Option<&Value>,
    default_lifetime: Option<Duration>,
    sent_at: SystemTime,
) -> (Option<Duration>, bool) {
    let fits = |d: &Duration| sent_at.checked_add(*d).is_some();
    if let Some(d) = expires_in.and_then(parse_expires_in).filter(fits) {
        return (Some(d), false);
    }
    let default = default_lifetime.filter(fits);
    if default.is_none() {
        // Secret-free; the user-facing warning is printed once per login/refresh by the app.
        tracing::warn!("token response has no usable expires_in; expiry unknown");
    }
    (default, default.is_some())
}

/// EXP-2 / EXP-3: a positive integer or decimal string; anything else is unusable.
pub fn parse_expires_in(value: &Value) -> Option<Duration> {
    let secs = match value {
        Value::Number(n) => n.as_i64()?,
        Value::String(s) => s.trim().parse::<i64>().ok()?,
        _ => return None,
    };
    u64::try_from(secs)
        .ok()
        .filter(|s| *s > 0)
        .map(Duration::from_secs)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const JSON: Option<&str> = Some("application/json");
    fn t0() -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000)
    }
    fn scopes() -> Vec<String> {
        vec!["openid".into(), "email".into()]
    }
    fn parse(status: u16, ct: Option<&str>, body: &str) -> Result<TokenSet> {
        parse_token_response(status, ct, body.as_bytes(), &scopes(), None, t0())
    }

    /// HARD-9: an access token, refresh token or scope with a terminal escape (or any byte
    /// outside printable ASCII) is refused when received.
    #[test]
    fn hard9_tokens_and_scopes_outside_printable_ascii_are_refused() {
        for body in [
            "{\"access_token\":\"at\\u001b]52;c;cHduZWQ=\\u0007\",\"token_type\":\"Bearer\"}",
            "{\"access_token\":\"at\",\"refresh_token\":\"rt\\r\",\"token_type\":\"Bearer\"}",
            "{\"access_token\":\"at\",\"token_type\":\"Bearer\",\"scope\":\"openid \\u001b[2J\"}",
            "{\"access_token\":\"caf\u{e9}\",\"token_type\":\"Bearer\"}",
        ] {
            let e = parse(200, JSON, body).unwrap_err();
            assert!(e.to_string().contains("printable ASCII"), "{body}: {e}");
        }
        assert!(
            parse(
                200,
                JSON,
                r#"{"access_token":"a.b-c_d~e+f/g=","token_type":"Bearer","scope":"openid email"}"#
            )
            .is_ok()
        );
    }

    #[test]
    fn tok4_fixture_login_response() {
        let t = parse(200, JSON, r#"{"access_token":"at-fx-1","token_type":"Bearer","expires_in":3600,"refresh_token":"rt-fx-A1","scope":"openid email offline_access","extra":{"x":1}}"#).unwrap();
        assert_eq!(t.access_token.secret(), "at-fx-1");
        assert_eq!(t.refresh_token.unwrap().secret(), "rt-fx-A1");
        assert_eq!(t.expires_at, Some(t0() + Duration::from_secs(3600)));
        assert_eq!(t.scopes, ["openid", "email", "offline_access"]);
        assert_eq!(t.token_type, "Bearer");
    }

    #[test]
    fn exp2_string_expiry_tok5_lowercase_bearer() {
        let t = parse(200, JSON, r#"{"access_token":"at-fx-2","token_type":"bearer","expires_in":"3600","refresh_token":"rt-fx-A2"}"#).unwrap();
        assert_eq!(t.expires_at, Some(t0() + Duration::from_secs(3600)));
        assert_eq!(t.token_type, "Bearer");
    }

    #[test]
    fn exp3_unusable_expiry_uses_default_or_unknown_tok6_requested_scope() {
        for e in [
            "",
            r#","expires_in":0"#,
            r#","expires_in":-5"#,
            r#","expires_in":"abc""#,
            r#","expires_in":null"#,
        ] {
            let body = format!(r#"{{"access_token":"at-fx-3","token_type":"Bearer"{e}}}"#);
            let t = parse(200, JSON, &body).unwrap();
            assert_eq!(t.expires_at, None, "{body}");
            assert!(t.refresh_token.is_none());
            assert_eq!(t.scopes, scopes());
            let d = parse_token_response(
                200,
                JSON,
                body.as_bytes(),
                &[],
                Some(Duration::from_secs(600)),
                t0(),
            )
            .unwrap();
            assert_eq!(d.expires_at, Some(t0() + Duration::from_secs(600)));
            assert!(d.lifetime_defaulted);
        }
    }

    /// The spec's `expires_in` table, row by row (EXP-2, EXP-3): what each value gives with
    /// and without a profile `default_lifetime`.
    #[test]
    fn exp2_exp3_expires_in_table() {
        let hour = Some(Duration::from_secs(3600));
        let usable = [
            (r#","expires_in":3600"#, hour),
            (r#","expires_in":"3600""#, hour),
            (r#","expires_in":" 3600 ""#, hour),
            (r#","expires_in":1"#, Some(Duration::from_secs(1))),
        ];
        let unusable = [
            "",
            r#","expires_in":0"#,
            r#","expires_in":"0""#,
            r#","expires_in":-5"#,
            r#","expires_in":"-5""#,
            r#","expires_in":"abc""#,
            r#","expires_in":"""#,
            r#","expires_in":null"#,
            r#","expires_in":true"#,
            r#","expires_in":3600.5"#,
            r#","expires_in":[3600]"#,
            r#","expires_in":1e30"#,
            // Fits in an i64 but not after the send time: unusable, not a panic.
            r#","expires_in":9223372036854775807"#,
        ];
        let default = Some(Duration::from_secs(600));
        let run = |e: &str, default_lifetime| {
            let body = format!(r#"{{"access_token":"at-fx-3","token_type":"Bearer"{e}}}"#);
            parse_token_response(200, JSON, body.as_bytes(), &[], default_lifetime, t0())
                .unwrap_or_else(|err| panic!("{body}: {err}"))
        };
        for (e, want) in usable {
            for d in [None, default] {
                let t = run(e, d);
                assert_eq!(t.lifetime, want, "{e}");
                assert_eq!(t.expires_at, want.map(|w| t0() + w), "{e}");
                assert!(!t.lifetime_defaulted, "{e}");
            }
        }
        for e in unusable {
            let unknown = run(e, None);
            assert_eq!((unknown.expires_at, unknown.lifetime), (None, None), "{e}");
            assert!(!unknown.lifetime_defaulted, "{e}");
            let defaulted = run(e, default);
            assert_eq!(
                defaulted.expires_at,
                Some(t0() + Duration::from_secs(600)),
                "{e}"
            );
            assert!(defaulted.lifetime_defaulted, "{e}");
        }
        // Form-encoded bodies carry strings only: the same rules apply.
        let form = Some("application/x-www-form-urlencoded");
        for (body, want) in [
            ("access_token=a&token_type=bearer&expires_in=3600", hour),
            ("access_token=a&token_type=bearer&expires_in=-5", None),
            ("access_token=a&token_type=bearer&expires_in=abc", None),
        ] {
            assert_eq!(parse(200, form, body).unwrap().lifetime, want, "{body}");
        }
    }

    #[test]
    fn tok5_unsupported_token_type_and_missing_fields_refused() {
        assert!(parse(200, JSON, r#"{"access_token":"a","token_type":"mac"}"#).is_err());
        assert!(parse(200, JSON, r#"{"access_token":"a"}"#).is_err());
        assert!(parse(200, JSON, r#"{"access_token":"","token_type":"Bearer"}"#).is_err());
        assert!(parse(200, JSON, r#"{"access_token":5,"token_type":"Bearer"}"#).is_err());
        assert!(parse(200, JSON, r#"{"token_type":"Bearer"}"#).is_err());
    }

    #[test]
    fn tok_form_encoded_response_github() {
        let ct = Some("application/x-www-form-urlencoded; charset=utf-8");
        let t = parse(
            200,
            ct,
            "access_token=gho_x%2By&scope=repo%2Cgist&token_type=bearer",
        )
        .unwrap();
        assert_eq!(t.access_token.secret(), "gho_x+y");
        assert_eq!(t.scopes, ["repo,gist"]);
        let e = parse(
            200,
            ct,
            "error=bad_verification_code&error_description=The+code+is+bad",
        )
        .unwrap_err();
        assert_eq!(e.code(), Some("bad_verification_code"));
        // No content type at all: sniffed.
        assert!(parse(200, None, "access_token=a&token_type=bearer").is_ok());
        assert!(parse(200, None, r#"{"access_token":"a","token_type":"bearer"}"#).is_ok());
    }

    #[test]
    fn tok4_error_on_200_and_rfc6749_5_2_parsing() {
        let e = parse(200, JSON, r#"{"error":"access_denied"}"#).unwrap_err();
        assert!(matches!(e, OAuthError::Server { status: 200, .. }));
        let e = parse(400, JSON, r#"{"error":"invalid_grant","error_description":"refresh token revoked","error_uri":"https://as.example/e"}"#).unwrap_err();
        match &e {
            OAuthError::Server {
                status,
                error,
                description,
                uri,
            } => {
                assert_eq!((*status, error.as_str()), (400, "invalid_grant"));
                assert_eq!(description.as_deref(), Some("refresh token revoked"));
                assert_eq!(uri.as_deref(), Some("https://as.example/e"));
            }
            other => panic!("{other:?}"),
        }
        assert!(e.is_invalid_grant());
    }

    #[test]
    fn garbage_bodies_never_echoed() {
        let e = parse(200, JSON, "{not json at-secret").unwrap_err();
        assert!(matches!(e, OAuthError::InvalidResponse(_)));
        assert!(!e.to_string().contains("at-secret"));
        let e = parse(200, Some("text/html"), "<html>at-secret</html>").unwrap_err();
        assert!(!e.to_string().contains("at-secret"));
        assert!(matches!(
            parse(502, Some("text/html"), "<html>bad gateway</html>"),
            Err(OAuthError::Http { status: 502 })
        ));
        assert!(matches!(
            parse(500, JSON, "[]"),
            Err(OAuthError::Http { status: 500 })
        ));
    }

    #[test]
    fn id_token_claims_decoded() {
        let jwt = super::super::idtoken::make_jwt(&json!({"sub":"u1","email":"a@b.example"}));
        let body =
            json!({"access_token":"a","token_type":"Bearer","id_token":jwt.secret()}).to_string();
        let t = parse(200, JSON, &body).unwrap();
        assert_eq!(
            t.claims.as_ref().unwrap().email.as_deref(),
            Some("a@b.example")
        );
        assert!(t.id_token.is_some());
        // AUTHZ-6: the token carries no nonce, so any expected nonce fails.
        assert!(t.check_nonce(&Nonce::new("n-1")).is_err());
        let jwt = super::super::idtoken::make_jwt(&json!({"nonce":"n-1"}));
        let body =
            json!({"access_token":"a","token_type":"Bearer","id_token":jwt.secret()}).to_string();
        let t = parse(200, JSON, &body).unwrap();
        t.check_nonce(&Nonce::new("n-1")).unwrap();
        assert!(t.check_nonce(&Nonce::new("n-2")).is_err());
        let plain = parse(200, JSON, r#"{"access_token":"a","token_type":"Bearer"}"#).unwrap();
        plain.check_nonce(&Nonce::new("n-1")).unwrap();
    }
}
