//! Helpers shared by the fuzz targets: splitting one input into the parts a target needs.

/// Reads the input front to back. Running out never fails: missing bytes read as zero and a
/// missing tail as empty, so every input is a valid case.
pub struct Input<'a> {
    data: &'a [u8],
}

impl<'a> Input<'a> {
    /// Wraps the fuzzer's bytes.
    pub fn new(data: &'a [u8]) -> Self {
        Self { data }
    }

    /// The next byte, or 0.
    pub fn byte(&mut self) -> u8 {
        match self.data.split_first() {
            Some((b, rest)) => {
                self.data = rest;
                *b
            }
            None => 0,
        }
    }

    /// Bytes up to the next `\n` (not included), or everything left.
    pub fn line(&mut self) -> &'a [u8] {
        match self.data.iter().position(|b| *b == b'\n') {
            Some(i) => {
                let (head, rest) = self.data.split_at(i);
                self.data = &rest[1..];
                head
            }
            None => self.rest(),
        }
    }

    /// Everything left.
    pub fn rest(&mut self) -> &'a [u8] {
        std::mem::take(&mut self.data)
    }
}

/// True when `needle` is long and distinctive enough that finding it in an error message or a
/// `Debug` output means the value itself leaked (not a coincidence with other text there).
pub fn distinctive(needle: &str) -> bool {
    needle.len() >= 16
        && needle.bytes().any(|b| b.is_ascii_alphabetic())
        && needle.bytes().any(|b| !b.is_ascii_digit())
}

/// Signing keys for the JWS and JWKS targets: the repository's RSA test key, an Ed25519 key
/// from a fixed seed (both deterministic, so seeds can carry their public JWKs) and a P-256 key
/// made once per process.
pub mod keys {
    use base64::Engine;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use ring::rand::SystemRandom;
    use ring::signature::{self, EcdsaKeyPair, Ed25519KeyPair, KeyPair, RsaKeyPair};
    use serde_json::{Value, json};
    use std::sync::OnceLock;

    const RSA_PKCS1_DER: &[u8] =
        include_bytes!("../../tests/fixtures/jwks/rsa2048-test-only.pkcs1.der");

    /// The three keys.
    pub struct Keys {
        pub rsa: RsaKeyPair,
        pub ed: Ed25519KeyPair,
        pub ec: EcdsaKeyPair,
    }

    /// Which key and algorithm signs a minted token.
    #[derive(Clone, Copy, Debug)]
    pub enum Signer {
        Rs256,
        Ps384,
        EdDsa,
        Es256,
    }

    impl Signer {
        pub const ALL: [Signer; 4] = [Signer::Rs256, Signer::Ps384, Signer::EdDsa, Signer::Es256];

        pub fn alg(self) -> &'static str {
            match self {
                Signer::Rs256 => "RS256",
                Signer::Ps384 => "PS384",
                Signer::EdDsa => "EdDSA",
                Signer::Es256 => "ES256",
            }
        }

        pub fn kid(self) -> &'static str {
            match self {
                Signer::Rs256 | Signer::Ps384 => "rsa",
                Signer::EdDsa => "ed",
                Signer::Es256 => "ec",
            }
        }
    }

    pub fn b64(b: &[u8]) -> String {
        URL_SAFE_NO_PAD.encode(b)
    }

    pub fn get() -> &'static Keys {
        static KEYS: OnceLock<Keys> = OnceLock::new();
        KEYS.get_or_init(|| {
            let rng = SystemRandom::new();
            let alg = &signature::ECDSA_P256_SHA256_FIXED_SIGNING;
            let doc = EcdsaKeyPair::generate_pkcs8(alg, &rng).expect("P-256 key");
            Keys {
                rsa: RsaKeyPair::from_der(RSA_PKCS1_DER).expect("RSA test key"),
                ed: Ed25519KeyPair::from_seed_unchecked(&[7; 32]).expect("Ed25519 key"),
                ec: EcdsaKeyPair::from_pkcs8(alg, doc.as_ref(), &rng).expect("P-256 key"),
            }
        })
    }

    impl Keys {
        /// The public JWKs, each with its `kid`.
        pub fn jwks(&self) -> Value {
            let c: signature::RsaPublicKeyComponents<Vec<u8>> = self.rsa.public().into();
            let p = self.ec.public_key().as_ref();
            json!({"keys": [
                {"kty": "RSA", "kid": "rsa", "n": b64(&c.n), "e": b64(&c.e)},
                {"kty": "OKP", "crv": "Ed25519", "kid": "ed", "x": b64(self.ed.public_key().as_ref())},
                {"kty": "EC", "crv": "P-256", "kid": "ec", "x": b64(&p[1..33]), "y": b64(&p[33..])},
            ]})
        }

        /// `header.payload.signature` with `signer`'s key.
        pub fn mint(&self, signer: Signer, header: &Value, payload: &[u8]) -> String {
            let input = format!("{}.{}", b64(header.to_string().as_bytes()), b64(payload));
            let rng = SystemRandom::new();
            let sig = match signer {
                Signer::Rs256 | Signer::Ps384 => {
                    let pad: &'static dyn signature::RsaEncoding = match signer {
                        Signer::Rs256 => &signature::RSA_PKCS1_SHA256,
                        _ => &signature::RSA_PSS_SHA384,
                    };
                    let mut sig = vec![0; self.rsa.public().modulus_len()];
                    self.rsa
                        .sign(pad, &rng, input.as_bytes(), &mut sig)
                        .expect("RSA sign");
                    sig
                }
                Signer::EdDsa => self.ed.sign(input.as_bytes()).as_ref().to_vec(),
                Signer::Es256 => self
                    .ec
                    .sign(&rng, input.as_bytes())
                    .expect("ECDSA sign")
                    .as_ref()
                    .to_vec(),
            };
            format!("{input}.{}", b64(&sig))
        }
    }
}
