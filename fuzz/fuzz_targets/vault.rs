//! The vault decoder: header, KDF parameter bounds, key check, AES-GCM and the JSON records
//! (`vault::fuzzing::decode`, the read path of `FileStore` without the file).
//!
//! Mode 0: the rest of the input is a whole vault file. Mode 1: the rest is the plaintext,
//! sealed here under a valid header so the fuzzer reaches the record decoder.
//! Properties: no panic; a vault that decodes seals again into one that decodes to the same
//! generation and records (round trip); passphrase parameters that decode are within bounds;
//! `Debug` of the records never shows a token or client secret (LOG-1).
#![no_main]

use authdeck::vault::Records;
use authdeck::vault::fuzzing::{decode, seal, seal_plaintext};
use authdeck_fuzz::{Input, distinctive};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut input = Input::new(data);
    let mode = input.byte();
    let bytes = if mode % 2 == 0 {
        input.rest().to_vec()
    } else {
        let generation = u64::from(input.byte());
        match seal_plaintext(generation, input.rest()) {
            Ok(b) => b,
            Err(_) => return,
        }
    };
    let Ok(d) = decode(&bytes) else {
        return;
    };
    if let Some(p) = d.params {
        assert!(
            p.m_cost_kib <= 1 << 20 && p.t_cost >= 1 && p.p_cost >= 1,
            "{p:?}"
        );
    }
    let again = seal(d.generation, d.params, d.salt, &d.records).expect("decoded records seal");
    let back = decode(&again).expect("a sealed vault decodes");
    assert_eq!(back.generation, d.generation);
    assert_eq!(back.records, d.records, "records changed in a round trip");
    no_secret_in_debug(&d.records);
});

fn no_secret_in_debug(records: &Records) {
    let shown = format!("{records:?}");
    for (name, r) in records {
        let mut public = r.clone();
        public.access_token = None;
        public.refresh_token = None;
        public.client_secret = None;
        let visible = format!("{name} {}", serde_json::to_string(&public).expect("json"));
        let secrets = [
            r.access_token.as_ref().map(|t| t.secret().to_owned()),
            r.refresh_token.as_ref().map(|t| t.secret().to_owned()),
            r.client_secret.as_ref().map(|t| t.secret().to_owned()),
        ];
        for s in secrets.into_iter().flatten() {
            if distinctive(&s) && !visible.contains(&s) && !records.keys().any(|k| k.contains(&s)) {
                assert!(!shown.contains(&s), "Debug of the records shows a secret");
            }
        }
    }
}
