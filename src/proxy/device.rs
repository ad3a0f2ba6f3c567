//! The device authorization grant (RFC 8628) through the proxy (PROXY-18, PROXY-19): the
//! request bodies, the upstream forms and the mapping of the device authorization answer.
//! The route glue (client selection, CORS, the upstream call) is in the handler, shared with
//! the other routes.
//!
//! ```text
//! device ──POST /api/auth/device {scope?}──► proxy ──POST device_authorization_endpoint,
//!                                                      Authorization: Basic, scope=…──► AS
//! device ──POST /api/auth/exchange {grant_type: urn:…:device_code, device_code}──► proxy
//!        ──POST token_endpoint, Basic, grant_type=urn:…:device_code&device_code=…──► AS
//! ```

use super::upstream::{Reply, bad_gateway, map_error};
use crate::secret::DeviceCode;
use bytes::Bytes;
use http::StatusCode;
use serde::Deserialize;

/// The device grant's `grant_type` (RFC 8628 §3.4).
pub(crate) const GRANT: &str = "urn:ietf:params:oauth:grant-type:device_code";
/// The longest device code accepted; real ones are far shorter.
const MAX_DEVICE_CODE_LEN: usize = 1024;

/// `POST /api/auth/device` body.
#[derive(Debug, Deserialize)]
pub(crate) struct DeviceBody {
    pub(crate) scope: Option<String>,
    pub(crate) client: Option<String>,
}

/// The device authorization request's form: only `scope`, when given. The client
/// authenticates with HTTP Basic (RFC 8628 §3.1 applies RFC 6749 §2.3.1), so no `client_id`.
pub(crate) fn authorization_form(scope: Option<&str>) -> String {
    let mut form = form_urlencoded::Serializer::new(String::new());
    if let Some(scope) = scope {
        form.append_pair("scope", scope);
    }
    form.finish()
}

/// The device access token request's form (RFC 8628 §3.4), or why the code is refused:
/// 1 to 1024 printable ASCII characters (RFC 6749 Appendix A: VSCHAR).
pub(crate) fn token_form(device_code: &DeviceCode) -> Result<String, &'static str> {
    let code = device_code.secret();
    let ok = (1..=MAX_DEVICE_CODE_LEN).contains(&code.len())
        && code.bytes().all(|b| (0x20..=0x7E).contains(&b));
    if !ok {
        return Err("device_code must be 1 to 1024 printable ASCII characters");
    }
    Ok(form_urlencoded::Serializer::new(String::new())
        .append_pair("grant_type", GRANT)
        .append_pair("device_code", code)
        .finish())
}

#[derive(Deserialize)]
struct AuthorizationShape {
    device_code: Option<String>,
    user_code: Option<String>,
    verification_uri: Option<String>,
    /// Google's pre-RFC spelling.
    verification_url: Option<String>,
}

/// Maps the device authorization endpoint's answer (RFC 8628 §3.2): a 200 JSON object with
/// `device_code`, `user_code` and a verification URI is passed back unchanged (the device
/// needs all of it); an OAuth error keeps its status and three fields (PROXY-5); anything
/// else is a 502 (PROXY-6).
pub(crate) fn map_authorization_response(status: u16, body: Bytes) -> Reply {
    if status != 200 {
        return map_error(status, &body);
    }
    let is_object = crate::oauth::wire::looks_like_json_object(&body);
    let shape = serde_json::from_slice::<AuthorizationShape>(&body)
        .ok()
        .filter(|_| is_object);
    let nonempty = |v: &Option<String>| v.as_deref().is_some_and(|s| !s.is_empty());
    match shape {
        Some(s)
            if nonempty(&s.device_code)
                && nonempty(&s.user_code)
                && (nonempty(&s.verification_uri) || nonempty(&s.verification_url)) =>
        {
            Reply {
                status: StatusCode::OK,
                body,
                error: None,
                from_upstream: false,
            }
        }
        _ => bad_gateway("the authorization server sent an invalid device authorization response"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forms_proxy_18_19() {
        assert_eq!(authorization_form(None), "");
        assert_eq!(
            authorization_form(Some("openid email")),
            "scope=openid+email"
        );
        let form = token_form(&DeviceCode::new("dc-1&x=y")).unwrap();
        assert_eq!(
            form,
            "grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Adevice_code&device_code=dc-1%26x%3Dy"
        );
        assert!(token_form(&DeviceCode::new("")).is_err());
        assert!(token_form(&DeviceCode::new("a\nb")).is_err());
        assert!(token_form(&DeviceCode::new("x".repeat(1025))).is_err());
    }

    #[test]
    fn authorization_answers_proxy_18() {
        let good = r#"{"device_code":"dc","user_code":"AB-CD","verification_uri":"https://as/device","expires_in":600}"#;
        let r = map_authorization_response(200, Bytes::from_static(good.as_bytes()));
        assert_eq!(r.status, StatusCode::OK);
        assert_eq!(&r.body[..], good.as_bytes(), "passed back unchanged");
        let google = r#"{"device_code":"dc","user_code":"AB","verification_url":"https://g/device","expires_in":1800}"#;
        assert_eq!(
            map_authorization_response(200, Bytes::from_static(google.as_bytes())).status,
            StatusCode::OK
        );
        for junk in [
            r#"{"user_code":"AB","verification_uri":"x"}"#,
            r#"{"device_code":"dc","verification_uri":"x"}"#,
            r#"{"device_code":"dc","user_code":"AB"}"#,
            r#"{"device_code":"","user_code":"AB","verification_uri":"x"}"#,
            r#"["device_code"]"#,
            "<html>",
        ] {
            let r = map_authorization_response(200, Bytes::from(junk));
            assert_eq!(r.status, StatusCode::BAD_GATEWAY, "{junk}");
        }
        let err = map_authorization_response(
            400,
            Bytes::from_static(
                br#"{"error":"invalid_scope","error_description":"no","extra":"x"}"#,
            ),
        );
        assert_eq!(err.status, StatusCode::BAD_REQUEST);
        assert!(!String::from_utf8_lossy(&err.body).contains("extra"));
        assert_eq!(
            map_authorization_response(500, Bytes::new()).status,
            StatusCode::BAD_GATEWAY
        );
    }
}
