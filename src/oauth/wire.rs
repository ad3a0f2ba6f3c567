//! Stateless protocol helpers that both the client (`oauth`) and the exchange proxy need, so
//! each rule has one implementation.

use crate::secret::ClientSecret;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use http::HeaderValue;
use std::net::IpAddr;
use url::{Host, Url};

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

/// PKCE-1: true when `verifier` is 43–128 characters of `[A-Za-z0-9-._~]` (RFC 7636 §4.1).
pub fn is_valid_verifier(verifier: &str) -> bool {
    (43..=128).contains(&verifier.len())
        && verifier
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~'))
}

/// RFC 6749 §3.3: one `scope-token`, `1*( %x21 / %x23-5B / %x5D-7E )` (printable ASCII but
/// space, `"` and `\`).
pub fn is_scope_token(token: &str) -> bool {
    !token.is_empty()
        && token
            .bytes()
            .all(|b| b == 0x21 || (0x23..=0x5B).contains(&b) || (0x5D..=0x7E).contains(&b))
}

/// RFC 6749 §3.3: a `scope` value, scope-tokens separated by single spaces (no leading,
/// trailing or doubled space).
pub fn is_scope(scope: &str) -> bool {
    !scope.is_empty() && scope.split(' ').all(is_scope_token)
}

/// RFC 6749 Appendix A.12 / A.17: true when every byte is printable ASCII, space included
/// (`VSCHAR`), the syntax of access tokens, refresh tokens and scopes as a whole (HARD-9).
/// The empty string passes; a caller that needs a value checks that first.
pub fn is_vschar(text: &str) -> bool {
    text.bytes().all(|b| (0x20..=0x7e).contains(&b))
}

/// True when the URL's host is a loopback address (127.0.0.0/8, `::1`) or `localhost`: the one
/// loopback rule of the crate (DISC-4, NET-1, RFC 8252 §7.3). A name that merely starts with
/// `127.` or `localhost.` is not loopback.
pub fn is_loopback(url: &Url) -> bool {
    match url.host() {
        Some(Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        Some(Host::Ipv4(ip)) => ip.is_loopback(),
        Some(Host::Ipv6(ip)) => is_loopback_ip(IpAddr::V6(ip)),
        None => false,
    }
}

/// True for a loopback peer address; an IPv4-mapped IPv6 address (`::ffff:127.0.0.1`, what a
/// dual-stack socket reports) counts as the IPv4 address it carries.
pub fn is_loopback_ip(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => v4.is_loopback(),
        IpAddr::V6(v6) => {
            v6.is_loopback() || v6.to_ipv4_mapped().is_some_and(|v4| v4.is_loopback())
        }
    }
}

/// DISC-4 / NET-1: what is wrong with `url` as an endpoint of an authorization server, or
/// `None`. It must be `https` (plain `http` only on a loopback host, which never leaves the
/// machine), have no fragment (RFC 6749 §3.1) and no user name or password (they end up in
/// logs; a client secret has its own settings). The text reads after the endpoint's name:
/// "token_endpoint must use https …".
pub fn endpoint_problem(url: &Url) -> Option<&'static str> {
    match url.scheme() {
        "https" if url.host().is_some() => {}
        "http" if is_loopback(url) => {}
        _ => return Some("must use https (plain http is allowed only for loopback hosts)"),
    }
    if url.fragment().is_some() {
        return Some("must not have a fragment");
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Some("must not contain a user name or password");
    }
    None
}

/// Parses `text` as an endpoint URL and checks it with [`endpoint_problem`].
pub fn endpoint_url(text: &str) -> Result<Url, &'static str> {
    let url = Url::parse(text).map_err(|_| "must be an absolute URL")?;
    match endpoint_problem(&url) {
        None => Ok(url),
        Some(problem) => Err(problem),
    }
}

/// True when the body's first non-whitespace byte opens a JSON object. serde would accept any
/// JSON value into a struct-shaped type's `Option` fields (an array, for one); a token answer
/// or a request body must be an object, and this says so without parsing twice.
pub fn looks_like_json_object(body: &[u8]) -> bool {
    body.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'{')
}

/// The 1-based line and column (in characters) of byte `offset` in `text`, for `FILE:LINE:COL`
/// messages. An offset past the end or inside a character counts from the character before.
pub fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let mut end = offset.min(text.len());
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    let before = &text[..end];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let column = before[line_start..].chars().count() + 1;
    (line, column)
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

    #[test]
    fn pkce_1_verifier_syntax() {
        assert!(is_valid_verifier(&"a".repeat(43)));
        assert!(is_valid_verifier(&"A-._~9".repeat(22)[..128]));
        assert!(!is_valid_verifier(&"a".repeat(42)));
        assert!(!is_valid_verifier(&"a".repeat(129)));
        assert!(!is_valid_verifier(&format!("{}+", "a".repeat(43))));
        assert!(!is_valid_verifier(&format!("{}é", "a".repeat(43))));
    }

    #[test]
    fn scope_syntax_rfc6749_3_3() {
        assert!(is_scope("openid email"));
        assert!(is_scope("https://graph.example/.default offline_access"));
        assert!(!is_scope(""));
        assert!(!is_scope("openid  email"), "doubled space");
        assert!(!is_scope(" openid"), "leading space");
        assert!(!is_scope("a\"b"), "quote");
        assert!(!is_scope("a\\b"), "backslash");
        assert!(!is_scope("caf\u{e9}"));
        assert!(is_scope_token("!#[]~"));
        assert!(!is_scope_token("a b"));
    }

    #[test]
    fn vschar_is_printable_ascii_hard_9() {
        assert!(is_vschar("ya29.a0-_~+/= ok"));
        assert!(!is_vschar("tok\u{1b}[2J"));
        assert!(!is_vschar("café"));
        assert!(!is_vschar("a\tb"));
    }

    #[test]
    fn loopback_rule() {
        let l = |s: &str| is_loopback(&Url::parse(s).unwrap());
        assert!(l("http://127.0.0.1:8080/"));
        assert!(l("http://127.8.9.1/"));
        assert!(l("http://[::1]:8080/"));
        assert!(l("http://localhost/"));
        assert!(l("http://LOCALHOST/"));
        assert!(!l("http://127.0.0.1.evil.example/"));
        assert!(!l("http://localhost.evil.example/"));
        assert!(!l("http://10.0.0.1/"));
        assert!(!l("file:///etc/passwd"));
        let ip = |s: &str| is_loopback_ip(s.parse().unwrap());
        assert!(ip("127.0.0.1") && ip("::1") && ip("::ffff:127.0.0.1"));
        assert!(!ip("10.0.0.1") && !ip("::ffff:192.168.1.1") && !ip("::"));
    }

    #[test]
    fn disc_4_endpoint_rules() {
        assert!(endpoint_url("https://as.example/token").is_ok());
        assert!(endpoint_url("http://127.0.0.1:8080/token").is_ok());
        assert!(endpoint_url("http://[::1]:8080/token").is_ok());
        assert!(endpoint_url("http://localhost/token").is_ok());
        let bad = |s: &str| endpoint_url(s).unwrap_err();
        assert!(bad("http://as.example/token").contains("https"));
        assert!(bad("http://127.0.0.1.evil.example/token").contains("https"));
        assert!(bad("ftp://as.example/token").contains("https"));
        assert!(bad("https://as.example/token#x").contains("fragment"));
        assert!(bad("https://u:p@as.example/token").contains("password"));
        assert!(bad("/token").contains("absolute"));
    }

    #[test]
    fn json_object_check() {
        assert!(looks_like_json_object(b" \n{\"a\":1}"));
        assert!(!looks_like_json_object(b"[1]"));
        assert!(!looks_like_json_object(b"\"s\""));
        assert!(!looks_like_json_object(b""));
    }

    #[test]
    fn line_col_counts_characters() {
        let text = "a = 1\nbé = 2\n";
        assert_eq!(line_col(text, 0), (1, 1));
        assert_eq!(line_col(text, 6), (2, 1));
        let eq = text.rfind('=').unwrap();
        assert_eq!(line_col(text, eq), (2, 4), "é is one column");
        assert_eq!(
            line_col(text, 8),
            (2, 2),
            "inside é: from the character before"
        );
        assert_eq!(line_col(text, 999), (3, 1), "past the end");
    }
}
