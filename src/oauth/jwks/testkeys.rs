use super::*;
use ring::rand::SystemRandom;
use ring::signature::{EcdsaKeyPair, Ed25519KeyPair, KeyPair, RsaKeyPair};
use serde_json::json;

/// A 2048-bit RSA key made with `openssl genpkey` (PKCS#1 DER) for these tests only (ring cannot
/// generate RSA keys).
pub const RSA_PKCS1_DER: &[u8] =
    include_bytes!("../../../tests/fixtures/jwks/rsa2048-test-only.pkcs1.der");

/// A signing key and its JWK.
pub enum TestKey {
    Rsa(RsaKeyPair),
    Ec(EcdsaKeyPair),
    Ed(Ed25519KeyPair),
}

fn b64(b: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(b)
}

impl TestKey {
    pub fn rsa() -> Self {
        Self::Rsa(RsaKeyPair::from_der(RSA_PKCS1_DER).unwrap())
    }

    pub fn es256() -> Self {
        let rng = SystemRandom::new();
        let alg = &signature::ECDSA_P256_SHA256_FIXED_SIGNING;
        let doc = EcdsaKeyPair::generate_pkcs8(alg, &rng).unwrap();
        Self::Ec(EcdsaKeyPair::from_pkcs8(alg, doc.as_ref(), &rng).unwrap())
    }

    pub fn es384() -> Self {
        let rng = SystemRandom::new();
        let alg = &signature::ECDSA_P384_SHA384_FIXED_SIGNING;
        let doc = EcdsaKeyPair::generate_pkcs8(alg, &rng).unwrap();
        Self::Ec(EcdsaKeyPair::from_pkcs8(alg, doc.as_ref(), &rng).unwrap())
    }

    pub fn ed25519() -> Self {
        let doc = Ed25519KeyPair::generate_pkcs8(&SystemRandom::new()).unwrap();
        Self::Ed(Ed25519KeyPair::from_pkcs8(doc.as_ref()).unwrap())
    }

    /// The public JWK, with `kid`.
    pub fn jwk(&self, kid: Option<&str>) -> Value {
        let mut v = match self {
            Self::Rsa(k) => {
                let c: RsaPublicKeyComponents<Vec<u8>> = k.public().into();
                json!({"kty": "RSA", "n": b64(&c.n), "e": b64(&c.e)})
            }
            Self::Ec(k) => {
                let p = k.public_key().as_ref();
                let len = (p.len() - 1) / 2;
                let crv = if len == 32 { "P-256" } else { "P-384" };
                json!({"kty": "EC", "crv": crv, "x": b64(&p[1..=len]), "y": b64(&p[len + 1..])})
            }
            Self::Ed(k) => {
                json!({"kty": "OKP", "crv": "Ed25519", "x": b64(k.public_key().as_ref())})
            }
        };
        if let Some(kid) = kid {
            v["kid"] = json!(kid);
        }
        v
    }

    /// Signs `header.payload` with `alg`.
    pub fn sign(&self, alg: &str, input: &[u8]) -> Vec<u8> {
        let rng = SystemRandom::new();
        match self {
            Self::Rsa(k) => {
                let pad: &'static dyn signature::RsaEncoding = match alg {
                    "RS256" => &signature::RSA_PKCS1_SHA256,
                    "RS384" => &signature::RSA_PKCS1_SHA384,
                    "RS512" => &signature::RSA_PKCS1_SHA512,
                    "PS256" => &signature::RSA_PSS_SHA256,
                    "PS384" => &signature::RSA_PSS_SHA384,
                    _ => &signature::RSA_PSS_SHA512,
                };
                let mut sig = vec![0; k.public().modulus_len()];
                k.sign(pad, &rng, input, &mut sig).unwrap();
                sig
            }
            Self::Ec(k) => k.sign(&rng, input).unwrap().as_ref().to_vec(),
            Self::Ed(k) => k.sign(input).as_ref().to_vec(),
        }
    }
}

/// A compact JWS of `claims` with `header`, signed by `key` with the header's `alg`.
pub fn mint(key: &TestKey, header: &Value, claims: &Value) -> String {
    let input = format!(
        "{}.{}",
        b64(header.to_string().as_bytes()),
        b64(claims.to_string().as_bytes())
    );
    let alg = header["alg"].as_str().unwrap_or("RS256");
    let sig = key.sign(alg, input.as_bytes());
    format!("{input}.{}", b64(&sig))
}

/// A JWK Set document of `keys`.
pub fn jwks(keys: &[Value]) -> JwkSet {
    JwkSet::parse(json!({ "keys": keys }).to_string().as_bytes()).unwrap()
}
