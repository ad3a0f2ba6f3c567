//! JWK Set documents (RFC 7517): `JwkSet::parse`, then verification of fixed tokens against
//! the parsed keys (hostile key material reaches `ring` through `Jws::verify`).
//!
//! Properties: no panic; the seeds' fixed tokens verify only with the key that signed them,
//! so a set that does not hold that key never verifies them.
#![no_main]

use authdeck::oauth::jwks::{Jwk, JwkSet, Jws};
use authdeck_fuzz::keys::{self, Signer};
use libfuzzer_sys::fuzz_target;
use serde_json::json;
use std::sync::OnceLock;

/// Tokens signed once per process by each key, with and without `kid`.
fn tokens() -> &'static Vec<(Signer, String)> {
    static TOKENS: OnceLock<Vec<(Signer, String)>> = OnceLock::new();
    TOKENS.get_or_init(|| {
        let k = keys::get();
        let mut out = Vec::new();
        for signer in Signer::ALL {
            let payload = br#"{"iss":"https://issuer.example","sub":"fuzz"}"#;
            out.push((
                signer,
                k.mint(signer, &json!({"alg": signer.alg()}), payload),
            ));
            let header = json!({"alg": signer.alg(), "kid": signer.kid()});
            out.push((signer, k.mint(signer, &header, payload)));
        }
        out
    })
}

fuzz_target!(|data: &[u8]| {
    let Ok(set) = JwkSet::parse(data) else {
        return;
    };
    let _ = format!("{set:?}");
    for (_, token) in tokens() {
        let jws = Jws::parse(token).expect("a minted token parses");
        if jws.verify(&set).is_ok() {
            // Only a real public key can verify its signature, whatever kid or alg it carries.
            assert!(
                set.keys().iter().map(bare).any(|k| own().contains(&k)),
                "a token verified against a set that holds none of the real keys"
            );
        }
    }
});

/// The key material alone.
fn bare(k: &Jwk) -> Jwk {
    let mut k = k.clone();
    k.kid = None;
    k.alg = None;
    k
}

fn own() -> &'static Vec<Jwk> {
    static OWN: OnceLock<Vec<Jwk>> = OnceLock::new();
    OWN.get_or_init(|| {
        let set = JwkSet::parse(keys::get().jwks().to_string().as_bytes()).expect("own set");
        set.keys().iter().map(bare).collect()
    })
}
