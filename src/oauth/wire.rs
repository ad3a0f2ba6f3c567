//! Stateless protocol helpers that both the client (`oauth`) and the exchange proxy need, so
//! each rule has one implementation.

use crate::secret::ClientSecret;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use http::HeaderValue;

/// RFC 6749 §2.3.1: `Basic base64(urlencode(id) ":" urlencode(secret))`, marked sensitive so
/// it never shows in a `Debug` or trace log (LOG-3). Both parts are form-urlencoded first, so a
/// `:` in either cannot shift the split.
///
/// `None` only if the header could not be built (it always can: base64 output is ASCII); a
/// caller then refuses to send the request rather than send a bare `Basic`.
pub fn basic_auth(client_id: &str, secret: &ClientSecret) -> Option<HeaderValue> {
    let id: String = form_urlencoded::byte_serialize(client_id.as_bytes()).collect();
    let pw: String = form_urlencoded::byte_serialize(secret.secret().as_bytes()).collect();
    let encoded = STANDARD.encode(format!("{id}:{pw}"));
    let mut value = HeaderValue::try_from(format!("Basic {encoded}")).ok()?;
    value.set_sensitive(true);
    Some(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn basic_auth_form_encodes_both_parts_then_base64() {
        // RFC 6749 §2.3.1: "a b:c" → "a+b%3Ac" before base64.
        let value = basic_auth("id:1", &ClientSecret::new("a b:c/é")).unwrap();
        assert!(value.is_sensitive());
        let b64 = value.to_str().unwrap().strip_prefix("Basic ").unwrap();
        let raw = STANDARD.decode(b64).unwrap();
        assert_eq!(String::from_utf8(raw).unwrap(), "id%3A1:a+b%3Ac%2F%C3%A9");
    }

    #[test]
    fn basic_auth_rfc6749_example() {
        let v = basic_auth("s6BhdRkqt3", &ClientSecret::new("gX1fBat3bV")).unwrap();
        assert_eq!(v.to_str().unwrap(), "Basic czZCaGRSa3F0MzpnWDFmQmF0M2JW");
    }
}
