//! Device authorization responses (RFC 8628 §3.2): `parse_fields` then
//! `parse_device_authorization`.
//!
//! Properties: no panic; a success has a non-empty device code, user code and verification URI
//! and a positive lifetime and interval, both capped (HARD-4); `Debug` never shows the device
//! code or the user code (DEV-3, LOG-1).
#![no_main]

use std::time::Instant;

use authdeck::oauth::device::{
    MAX_DEVICE_INTERVAL, MAX_DEVICE_LIFETIME, parse_device_authorization,
};
use authdeck::oauth::token::parse_fields;
use authdeck_fuzz::{Input, distinctive};
use libfuzzer_sys::fuzz_target;

const CONTENT_TYPES: [Option<&str>; 3] = [
    Some("application/json"),
    Some("application/x-www-form-urlencoded"),
    None,
];

fuzz_target!(|data: &[u8]| {
    let mut input = Input::new(data);
    let content_type = CONTENT_TYPES[usize::from(input.byte()) % CONTENT_TYPES.len()];
    let body = input.rest();
    let Ok(fields) = parse_fields(content_type, body) else {
        return;
    };
    let Ok(auth) = parse_device_authorization(&fields, Instant::now()) else {
        return;
    };
    assert!(!auth.device_code.is_empty());
    assert!(!auth.user_code.is_empty());
    assert!(!auth.verification_uri.is_empty());
    assert!(!auth.expires_in.is_zero(), "a zero lifetime accepted");
    assert!(!auth.interval.is_zero(), "a zero polling interval accepted");
    // HARD-4: the server's numbers are capped, so the polling deadline is representable.
    assert!(auth.expires_in <= MAX_DEVICE_LIFETIME && auth.interval <= MAX_DEVICE_INTERVAL);
    assert!(
        auth.started
            .checked_add(auth.expires_in + auth.interval)
            .is_some()
    );
    let shown = format!("{auth:?}");
    for secret in [auth.device_code.secret(), auth.user_code.as_str()] {
        let repeated = fields
            .iter()
            .filter(|(k, _)| !matches!(k.as_str(), "device_code" | "user_code"))
            .any(|(_, v)| v.to_string().contains(secret));
        if distinctive(secret) && !repeated {
            assert!(!shown.contains(secret), "Debug shows a device or user code");
        }
    }
});
