//! Discovery documents (RFC 8414 / OIDC Discovery): `parse_fields` then `parse_metadata`, and
//! `ClientConfig::fill_from` with the result.
//!
//! Input: the expected issuer on the first line, the document after it.
//! Properties: no panic; a success has exactly the expected issuer (DISC-3) and only https or
//! loopback-http endpoints (DISC-4); filling a config keeps what was set explicitly.
#![no_main]

use authdeck::oauth::ClientConfig;
use authdeck::oauth::config::check_endpoint;
use authdeck::oauth::discovery::parse_metadata;
use authdeck::oauth::token::parse_fields;
use authdeck_fuzz::Input;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut input = Input::new(data);
    let Ok(issuer) = std::str::from_utf8(input.line()) else {
        return;
    };
    let body = input.rest();
    let Ok(fields) = parse_fields(Some("application/json"), body) else {
        return;
    };
    let Ok(meta) = parse_metadata(&fields, issuer) else {
        return;
    };
    assert_eq!(meta.issuer, issuer, "DISC-3: issuer must match exactly");
    let endpoints = [
        &meta.authorization_endpoint,
        &meta.token_endpoint,
        &meta.revocation_endpoint,
        &meta.device_authorization_endpoint,
        &meta.userinfo_endpoint,
        &meta.jwks_uri,
    ];
    for url in endpoints.into_iter().flatten() {
        assert!(
            check_endpoint(url).is_ok(),
            "DISC-4: non-https endpoint accepted"
        );
    }
    let explicit = url::Url::parse("https://explicit.example/token").ok();
    let mut config = ClientConfig {
        token_endpoint: explicit.clone(),
        ..ClientConfig::default()
    };
    config.fill_from(&meta);
    assert_eq!(
        config.token_endpoint, explicit,
        "an explicit endpoint was overwritten"
    );
});
