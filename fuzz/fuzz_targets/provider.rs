//! Provider TOML (the raw layer and validation): `provider::parse_str`, which parses the text
//! into a layer, merges a bundled template named by `extends` and validates the result.
//!
//! Properties: no panic; a refusal lists at least one problem and at least one error; an
//! accepted provider has https (or loopback http) endpoints and no empty scope.
#![no_main]

use authdeck::provider::{Severity, parse_str};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match parse_str("fuzz", "fuzz.toml", text) {
        Ok(p) => {
            assert!(
                p.scopes.iter().all(|s| !s.is_empty()),
                "empty scope accepted"
            );
            for url in [&p.authorization_endpoint, &p.token_endpoint]
                .into_iter()
                .flatten()
            {
                let loopback_http =
                    url.scheme() == "http" && authdeck::oauth::wire::is_loopback(url);
                assert!(
                    url.scheme() == "https" || loopback_http,
                    "insecure endpoint accepted"
                );
            }
        }
        Err(problems) => {
            assert!(!problems.is_empty(), "a refusal without a problem");
            assert!(
                problems.iter().any(|p| p.severity == Severity::Error),
                "refused with warnings only"
            );
        }
    }
});
