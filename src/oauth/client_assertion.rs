//! `private_key_jwt` client authentication (MACH-2, RFC 7523 §2.2 and OpenID Connect Core
//! §9): the client proves who it is with a short-lived JWT signed by its own private key, so no
//! shared secret exists at all.
//!
//! The key comes from a PKCS#8 PEM file that only its owner may read (mode 0600). ES256 (P-256)
//! and RS256 (RSA, 2048 bits or more) are supported; the algorithm follows the key.

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use ring::rand::SystemRandom;
use ring::signature::{self, EcdsaKeyPair, KeyPair as _, RsaKeyPair};
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use zeroize::Zeroizing;

/// The `client_assertion_type` of a JWT client assertion (RFC 7523 §2.2).
pub const ASSERTION_TYPE: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

/// How long an assertion is valid: long enough for one request, short enough that a captured
/// one is useless (RFC 7523 §3 item 4 asks for an expiry; one minute is common practice).
const LIFETIME_SECS: i64 = 60;

/// Largest key file read: a 4096-bit RSA key in PEM is about 3.3 KB.
const MAX_KEY_FILE: u64 = 64 * 1024;

/// Why a key cannot be used. Messages name the file, never key material.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// The file cannot be read.
    #[error("cannot read the client key {}: {source}", .path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// Group or others may read the file.
    #[error(
        "the client key {} may be read by others (mode {mode:o}); run `chmod 600 {}`",
        .path.display(), .path.display()
    )]
    TooOpen {
        /// The file.
        path: PathBuf,
        /// Its permission bits.
        mode: u32,
    },
    /// Not a usable key.
    #[error("the client key {}: {why}", .path.display())]
    Unusable {
        /// The file.
        path: PathBuf,
        /// What is wrong, with the fix.
        why: String,
    },
}

/// The signing algorithm, from the key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AssertionAlg {
    /// ECDSA P-256 with SHA-256.
    Es256,
    /// RSASSA-PKCS1-v1_5 with SHA-256.
    Rs256,
}

impl AssertionAlg {
    /// The JWS `alg` name.
    pub fn as_str(self) -> &'static str {
        match self {
            AssertionAlg::Es256 => "ES256",
            AssertionAlg::Rs256 => "RS256",
        }
    }
}

enum Signer {
    Ec(EcdsaKeyPair),
    Rsa(RsaKeyPair),
}

/// A client's private key for `private_key_jwt`. Secret: `Debug` shows the algorithm, the key
/// id and the file, never the key.
#[derive(Clone)]
pub struct ClientKey {
    signer: Arc<Signer>,
    alg: AssertionAlg,
    kid: Option<String>,
    path: PathBuf,
}

impl fmt::Debug for ClientKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientKey")
            .field("alg", &self.alg)
            .field("kid", &self.kid)
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

impl ClientKey {
    /// Reads the key at `path` (mode 0600, PKCS#8 PEM), with the key id to put in the header.
    pub fn load(path: &Path, kid: Option<String>) -> Result<ClientKey, KeyError> {
        let read = |source| KeyError::Read {
            path: path.to_path_buf(),
            source,
        };
        let meta = std::fs::metadata(path).map_err(read)?;
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = meta.permissions().mode() & 0o7777;
            if mode & 0o077 != 0 {
                return Err(KeyError::TooOpen {
                    path: path.to_path_buf(),
                    mode,
                });
            }
        }
        if meta.len() > MAX_KEY_FILE {
            return Err(unusable(path, "the file is too large for a key"));
        }
        let text = Zeroizing::new(std::fs::read_to_string(path).map_err(read)?);
        Self::from_pem(&text, kid, path)
    }

    /// Parses a PKCS#8 PEM key; `path` is only for messages.
    pub fn from_pem(pem: &str, kid: Option<String>, path: &Path) -> Result<ClientKey, KeyError> {
        let der = pkcs8_der(pem).map_err(|why| unusable(path, why))?;
        let rng = SystemRandom::new();
        let (signer, alg) = if let Ok(k) =
            EcdsaKeyPair::from_pkcs8(&signature::ECDSA_P256_SHA256_FIXED_SIGNING, &der, &rng)
        {
            (Signer::Ec(k), AssertionAlg::Es256)
        } else if let Ok(k) = RsaKeyPair::from_pkcs8(&der) {
            (Signer::Rsa(k), AssertionAlg::Rs256)
        } else {
            return Err(unusable(
                path,
                "not a P-256 EC or a 2048-bit-or-larger RSA private key in PKCS#8",
            ));
        };
        Ok(ClientKey {
            signer: Arc::new(signer),
            alg,
            kid,
            path: path.to_path_buf(),
        })
    }

    /// The algorithm this key signs with.
    pub fn alg(&self) -> AssertionAlg {
        self.alg
    }

    /// The public key: for P-256 the uncompressed point, for RSA the DER `RSAPublicKey`, as
    /// ring's verifiers take them.
    pub fn public_key(&self) -> Vec<u8> {
        match self.signer.as_ref() {
            Signer::Ec(k) => k.public_key().as_ref().to_vec(),
            Signer::Rsa(k) => k.public_key().as_ref().to_vec(),
        }
    }

    /// A fresh client assertion for `client_id` at `audience` (the token endpoint URL, RFC
    /// 7523 §3 item 3), issued at `now` (Unix seconds), valid for a minute, with a random
    /// `jti` so the server can refuse a replay.
    pub fn assertion(&self, client_id: &str, audience: &str, now: i64) -> Result<String, KeyError> {
        let mut header = serde_json::json!({ "alg": self.alg.as_str(), "typ": "JWT" });
        if let Some(kid) = &self.kid {
            header["kid"] = serde_json::Value::from(kid.as_str());
        }
        let claims = serde_json::json!({
            "iss": client_id,
            "sub": client_id,
            "aud": audience,
            "jti": URL_SAFE_NO_PAD.encode(crate::secret::random_bytes::<16>()),
            "iat": now,
            "exp": now.saturating_add(LIFETIME_SECS),
        });
        let input = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header.to_string()),
            URL_SAFE_NO_PAD.encode(claims.to_string())
        );
        let rng = SystemRandom::new();
        let fail = || unusable(&self.path, "signing failed");
        let sig = match self.signer.as_ref() {
            Signer::Ec(k) => k
                .sign(&rng, input.as_bytes())
                .map_err(|_| fail())?
                .as_ref()
                .to_vec(),
            Signer::Rsa(k) => {
                let mut sig = vec![0; k.public().modulus_len()];
                k.sign(
                    &signature::RSA_PKCS1_SHA256,
                    &rng,
                    input.as_bytes(),
                    &mut sig,
                )
                .map_err(|_| fail())?;
                sig
            }
        };
        Ok(format!("{input}.{}", URL_SAFE_NO_PAD.encode(sig)))
    }
}

fn unusable(path: &Path, why: impl Into<String>) -> KeyError {
    KeyError::Unusable {
        path: path.to_path_buf(),
        why: why.into(),
    }
}

/// The DER inside the first `PRIVATE KEY` PEM block, with a fix for the common wrong kinds.
fn pkcs8_der(pem: &str) -> Result<Zeroizing<Vec<u8>>, String> {
    let label = |l: &str| format!("-----BEGIN {l}-----");
    if pem.contains(&label("ENCRYPTED PRIVATE KEY")) {
        return Err("the key is encrypted; store it unencrypted with mode 0600 \
                    (`openssl pkcs8 -topk8 -nocrypt -in KEY -out KEY.pk8`)"
            .into());
    }
    for old in ["EC PRIVATE KEY", "RSA PRIVATE KEY"] {
        if pem.contains(&label(old)) {
            return Err(format!(
                "a {old} block is not PKCS#8; convert it with \
                 `openssl pkcs8 -topk8 -nocrypt -in KEY -out KEY.pk8`"
            ));
        }
    }
    let begin = label("PRIVATE KEY");
    let Some(start) = pem.find(&begin) else {
        return Err("no -----BEGIN PRIVATE KEY----- block".into());
    };
    let body = &pem[start + begin.len()..];
    let Some(end) = body.find("-----END PRIVATE KEY-----") else {
        return Err("the PRIVATE KEY block has no END line".into());
    };
    let b64: Zeroizing<String> = Zeroizing::new(
        body[..end]
            .chars()
            .filter(|c| !c.is_ascii_whitespace())
            .collect(),
    );
    STANDARD
        .decode(b64.as_bytes())
        .map(Zeroizing::new)
        .map_err(|_| "the PRIVATE KEY block is not valid base64".into())
}

/// Checks a client assertion's signature with `public_key` (as [`ClientKey::public_key`]
/// gives it) and returns its claims. Used by the devserver; claims are the caller's to check.
pub fn verify(
    jwt: &str,
    alg: AssertionAlg,
    public_key: &[u8],
) -> Option<serde_json::Map<String, serde_json::Value>> {
    let mut parts = jwt.split('.');
    let (h, c, s) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() {
        return None;
    }
    let header: serde_json::Value =
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(h).ok()?).ok()?;
    if header.get("alg")?.as_str()? != alg.as_str() {
        return None;
    }
    let sig = URL_SAFE_NO_PAD.decode(s).ok()?;
    let verifier: &dyn signature::VerificationAlgorithm = match alg {
        AssertionAlg::Es256 => &signature::ECDSA_P256_SHA256_FIXED,
        AssertionAlg::Rs256 => &signature::RSA_PKCS1_2048_8192_SHA256,
    };
    signature::UnparsedPublicKey::new(verifier, public_key)
        .verify(format!("{h}.{c}").as_bytes(), &sig)
        .ok()?;
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(c).ok()?).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use ring::signature::EcdsaKeyPair;

    fn ec_pem() -> String {
        let doc = EcdsaKeyPair::generate_pkcs8(
            &signature::ECDSA_P256_SHA256_FIXED_SIGNING,
            &SystemRandom::new(),
        )
        .unwrap();
        let b64 = STANDARD.encode(doc.as_ref());
        let lines: Vec<&str> = b64
            .as_bytes()
            .chunks(64)
            .map(|c| std::str::from_utf8(c).unwrap())
            .collect();
        format!(
            "-----BEGIN PRIVATE KEY-----\n{}\n-----END PRIVATE KEY-----\n",
            lines.join("\n")
        )
    }

    #[test]
    fn mach_2_es256_assertion_verifies_and_carries_the_rfc_7523_claims() {
        let key = ClientKey::from_pem(&ec_pem(), Some("k1".into()), Path::new("k.pem")).unwrap();
        assert_eq!(key.alg(), AssertionAlg::Es256);
        let jwt = key.assertion("svc", "https://as/token", 1_000).unwrap();
        let claims = verify(&jwt, AssertionAlg::Es256, &key.public_key()).unwrap();
        assert_eq!(claims["iss"], "svc");
        assert_eq!(claims["sub"], "svc");
        assert_eq!(claims["aud"], "https://as/token");
        assert_eq!(claims["exp"], 1_060);
        let header: serde_json::Value = serde_json::from_slice(
            &URL_SAFE_NO_PAD
                .decode(jwt.split('.').next().unwrap())
                .unwrap(),
        )
        .unwrap();
        assert_eq!(header["kid"], "k1");
        let other = key.assertion("svc", "https://as/token", 1_000).unwrap();
        let jti =
            |j: &str| verify(j, AssertionAlg::Es256, &key.public_key()).unwrap()["jti"].clone();
        assert_ne!(jti(&jwt), jti(&other), "a fresh jti each time");
        // Tampered claims fail the signature.
        let mut parts: Vec<&str> = jwt.split('.').collect();
        let forged = URL_SAFE_NO_PAD.encode(r#"{"iss":"evil","sub":"evil"}"#);
        parts[1] = &forged;
        assert!(verify(&parts.join("."), AssertionAlg::Es256, &key.public_key()).is_none());
        assert!(!format!("{key:?}").contains("PRIVATE"), "no key in Debug");
    }

    #[test]
    fn mach_2_wrong_kinds_of_key_files_get_a_fix() {
        let p = Path::new("/keys/svc.pem");
        let e = |pem: &str| ClientKey::from_pem(pem, None, p).unwrap_err().to_string();
        assert!(
            e("-----BEGIN EC PRIVATE KEY-----\nAA==\n-----END EC PRIVATE KEY-----")
                .contains("openssl pkcs8")
        );
        assert!(e("-----BEGIN ENCRYPTED PRIVATE KEY-----\n").contains("encrypted"));
        assert!(e("garbage").contains("/keys/svc.pem"));
        assert!(e("-----BEGIN PRIVATE KEY-----\n!!\n-----END PRIVATE KEY-----").contains("base64"));
        assert!(
            e("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----").contains("PKCS#8")
        );
    }

    #[test]
    fn mach_2_key_file_must_be_private() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("svc.pem");
        std::fs::write(&path, ec_pem()).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let err = ClientKey::load(&path, None).unwrap_err().to_string();
        assert!(err.contains("chmod 600"), "{err}");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        assert!(ClientKey::load(&path, None).is_ok());
        let missing = ClientKey::load(&dir.path().join("nope.pem"), None).unwrap_err();
        assert!(missing.to_string().contains("nope.pem"), "{missing}");
    }
}
