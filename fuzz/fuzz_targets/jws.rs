//! Compact JWS / id_token parsing and verification (DISC-5): `Jws::parse`, `Jws::verify` and
//! `idtoken::decode_unverified`.
//!
//! Mode 0: the rest of the input is a token, verified against fixed RSA, Ed25519 and P-256
//! keys. Property: a token that verifies returns exactly its decoded middle segment.
//! Mode 1: the rest is a payload, signed here with one of the keys. Property: it verifies and
//! returns the payload unchanged (a correct signature is never refused).
#![no_main]

use authdeck::oauth::idtoken::decode_unverified;
use authdeck::oauth::jwks::{JwkSet, Jws};
use authdeck::secret::IdToken;
use authdeck_fuzz::Input;
use authdeck_fuzz::keys::{self, Signer};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use libfuzzer_sys::fuzz_target;
use serde_json::json;
use std::sync::OnceLock;

fn key_set() -> &'static JwkSet {
    static SET: OnceLock<JwkSet> = OnceLock::new();
    SET.get_or_init(|| {
        JwkSet::parse(keys::get().jwks().to_string().as_bytes()).expect("own JWKS parses")
    })
}

fuzz_target!(|data: &[u8]| {
    let mut input = Input::new(data);
    match input.byte() % 2 {
        0 => {
            let Ok(token) = std::str::from_utf8(input.rest()) else {
                return;
            };
            let _ = decode_unverified(&IdToken::new(token));
            let Ok(jws) = Jws::parse(token) else {
                return;
            };
            if let Ok(payload) = jws.verify(key_set()) {
                let middle = token.split('.').nth(1).expect("three parts");
                let decoded = URL_SAFE_NO_PAD
                    .decode(middle)
                    .expect("verified means decoded");
                assert_eq!(payload, decoded.as_slice());
            }
        }
        _ => {
            let signer = Signer::ALL[usize::from(input.byte()) % Signer::ALL.len()];
            let with_kid = input.byte() % 2 == 0;
            let payload = input.rest();
            let header = if with_kid {
                json!({"alg": signer.alg(), "kid": signer.kid(), "typ": "JWT"})
            } else {
                json!({"alg": signer.alg()})
            };
            let token = keys::get().mint(signer, &header, payload);
            let _ = decode_unverified(&IdToken::new(token.as_str()));
            let jws = Jws::parse(&token).expect("a minted token parses");
            // Without a kid, RS256 and PS384 both fit the one RSA key: still exactly one key.
            let verified = jws.verify(key_set()).expect("a correct signature verifies");
            assert_eq!(verified, payload);
        }
    }
});
