//! The exchange proxy's request handling: route, method, `Content-Type`, `Origin` and a body,
//! through the same handler every proxy connection uses (`proxy::fuzzing::answer`): size and
//! type checks, the JSON body parser and the field checks (PROXY-2).
//!
//! Properties: no panic and no 500; every non-empty answer is a JSON object; neither the answer
//! nor a log line shows the client secret or a code, verifier or token from the body (LOG-1).
#![no_main]

use authdeck::proxy::fuzzing::{CLIENT_SECRET, ORIGIN, answer};
use authdeck_fuzz::{Input, distinctive};
use bytes::Bytes;
use http_body_util::Full;
use libfuzzer_sys::fuzz_target;
use serde_json::Value;

const PATHS: [&str; 6] = [
    "/api/auth/exchange",
    "/api/auth/refresh",
    "/api/auth/revoke",
    "/api/auth/device",
    "/healthz",
    "/api/auth/other",
];
const METHODS: [&str; 4] = ["POST", "POST", "OPTIONS", "GET"];
const TYPES: [Option<&str>; 4] = [
    Some("application/json"),
    Some("application/json; charset=utf-8"),
    Some("text/plain"),
    None,
];
const ORIGINS: [Option<&str>; 3] = [None, Some(ORIGIN), Some("https://evil.example")];
const SECRET_FIELDS: [&str; 5] = [
    "code",
    "code_verifier",
    "refresh_token",
    "token",
    "device_code",
];

fuzz_target!(|data: &[u8]| {
    let mut input = Input::new(data);
    let path = PATHS[usize::from(input.byte()) % PATHS.len()];
    let method = METHODS[usize::from(input.byte()) % METHODS.len()];
    let content_type = TYPES[usize::from(input.byte()) % TYPES.len()];
    let origin = ORIGINS[usize::from(input.byte()) % ORIGINS.len()];
    let body = input.rest();
    let mut req = http::Request::builder().method(method).uri(path);
    if let Some(t) = content_type {
        req = req.header("content-type", t);
    }
    if let Some(o) = origin {
        req = req
            .header("origin", o)
            .header("access-control-request-method", "POST");
    }
    let req = req
        .body(Full::new(Bytes::copy_from_slice(body)))
        .expect("a fixed request builds");
    let a = answer(req);
    assert_ne!(a.status, 500, "internal error on client input");
    if !a.body.is_empty() {
        let v: Value = serde_json::from_slice(&a.body).expect("answers are JSON");
        assert!(v.is_object(), "answers are JSON objects");
    }
    let text = String::from_utf8_lossy(&a.body);
    let mut outputs = vec![text.as_ref()];
    outputs.extend(a.log.iter().map(String::as_str));
    for out in &outputs {
        assert!(
            !out.contains(CLIENT_SECRET),
            "the client secret leaked: {out}"
        );
    }
    for secret in secrets_in(body) {
        for out in &outputs {
            assert!(!out.contains(&secret), "a body secret leaked: {out}");
        }
    }
});

/// Distinctive values of the secret fields that no other field repeats.
fn secrets_in(body: &[u8]) -> Vec<String> {
    let Ok(Value::Object(fields)) = serde_json::from_slice::<Value>(body) else {
        return Vec::new();
    };
    let others: Vec<String> = fields
        .iter()
        .filter(|(k, _)| !SECRET_FIELDS.contains(&k.as_str()))
        .map(|(k, v)| format!("{k} {v}"))
        .collect();
    SECRET_FIELDS
        .iter()
        .filter_map(|k| fields.get(*k).and_then(Value::as_str))
        .filter(|s| distinctive(s))
        .filter(|s| !others.iter().any(|o| o.contains(*s)))
        .map(str::to_owned)
        .collect()
}
