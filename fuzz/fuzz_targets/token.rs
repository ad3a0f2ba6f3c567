//! Token endpoint responses: `parse_token_response` over any status, content type and body.
//!
//! Properties: no panic; a success carries a non-empty access token, `Bearer`, no empty scope
//! and an expiry at or after the send time; neither an error message nor a `Debug` of the token
//! set shows a token value (LOG-1).
#![no_main]

use std::time::{Duration, SystemTime};

use authdeck::oauth::token::parse_token_response;
use authdeck_fuzz::{Input, distinctive};
use libfuzzer_sys::fuzz_target;
use serde_json::Value;

const STATUSES: [u16; 6] = [200, 200, 400, 401, 429, 503];
const CONTENT_TYPES: [Option<&str>; 6] = [
    Some("application/json"),
    Some("application/json; charset=utf-8"),
    Some("application/x-www-form-urlencoded"),
    Some("text/plain"),
    Some("text/html"),
    None,
];

fuzz_target!(|data: &[u8]| {
    let mut input = Input::new(data);
    let status = STATUSES[usize::from(input.byte()) % STATUSES.len()];
    let content_type = CONTENT_TYPES[usize::from(input.byte()) % CONTENT_TYPES.len()];
    let default_lifetime = match input.byte() % 3 {
        0 => None,
        1 => Some(Duration::from_secs(3600)),
        _ => Some(Duration::MAX),
    };
    let body = input.rest();
    let requested = vec!["openid".to_owned(), "email".to_owned()];
    let sent_at = SystemTime::now();
    let secrets = secrets_in(content_type, body);
    match parse_token_response(
        status,
        content_type,
        body,
        &requested,
        default_lifetime,
        sent_at,
    ) {
        Ok(set) => {
            assert_eq!(status, 200, "only a 200 yields tokens");
            assert!(!set.access_token.is_empty(), "empty access token accepted");
            assert_eq!(set.token_type, "Bearer");
            assert!(set.scopes.iter().all(|s| !s.is_empty()), "empty scope");
            if let Some(at) = set.expires_at {
                assert!(at >= set.obtained_at, "expiry before the send time");
            }
            let shown = format!("{set:?}");
            for s in &secrets {
                assert!(!shown.contains(s.as_str()), "Debug shows a token value");
            }
        }
        Err(e) => {
            let shown = format!("{e} {e:?}");
            for s in &secrets {
                assert!(!shown.contains(s.as_str()), "an error shows a token value");
            }
        }
    }
});

/// Token values in the body that no other field repeats (so finding one in the output is a
/// leak): `access_token`, `refresh_token`, `id_token`.
fn secrets_in(content_type: Option<&str>, body: &[u8]) -> Vec<String> {
    let Ok(fields) = authdeck::oauth::token::parse_fields(content_type, body) else {
        return Vec::new();
    };
    let others: Vec<String> = fields
        .iter()
        .filter(|(k, _)| !matches!(k.as_str(), "access_token" | "refresh_token" | "id_token"))
        .map(|(_, v)| v.to_string())
        .collect();
    ["access_token", "refresh_token", "id_token"]
        .iter()
        .filter_map(|k| fields.get(*k).and_then(Value::as_str))
        .filter(|s| distinctive(s))
        .filter(|s| !others.iter().any(|o| o.contains(*s)))
        // The id_token's claims (email, name) are shown on purpose; a token that repeats them
        // proves nothing.
        .filter(|_| !fields.contains_key("id_token"))
        .map(str::to_owned)
        .collect()
}
