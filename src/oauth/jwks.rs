//! ID token signatures (DISC-5): JSON Web Key Sets (RFC 7517), compact JWS verification
//! (RFC 7515) with `ring`, and the per-process key cache with one refetch on an unknown key.
//!
//! Only asymmetric algorithms are accepted: RS256/384/512, PS256/384/512, ES256, ES384 and
//! EdDSA (Ed25519). `none` and every HMAC algorithm are refused outright: a client holds no
//! shared secret with the issuer, and accepting `HS256` would let anyone "sign" with the
//! issuer's PUBLIC key as the HMAC secret (algorithm confusion). Keys come only from the
//! issuer's `jwks_uri`, never from the token's own header (`jwk`, `jku`, `x5u`, `x5c`).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use reqwest::header::ACCEPT;
use ring::signature::{self, RsaPublicKeyComponents, UnparsedPublicKey, VerificationAlgorithm};
use serde_json::{Map, Value};
use url::Url;

use super::client::{OAuthClient, Replay};
use super::config::check_endpoint;
use super::error::{OAuthError, Result};

/// How long a fetched key set is trusted before it is fetched again, even when every `kid`
/// is known: a key the issuer withdrew stops being accepted by a long-running dashboard.
pub const JWKS_MAX_AGE: Duration = Duration::from_secs(3600);

/// A JWS signature algorithm authdeck verifies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JwsAlg {
    /// RSASSA-PKCS1-v1_5 with SHA-256.
    Rs256,
    /// RSASSA-PKCS1-v1_5 with SHA-384.
    Rs384,
    /// RSASSA-PKCS1-v1_5 with SHA-512.
    Rs512,
    /// RSASSA-PSS with SHA-256.
    Ps256,
    /// RSASSA-PSS with SHA-384.
    Ps384,
    /// RSASSA-PSS with SHA-512.
    Ps512,
    /// ECDSA on P-256 with SHA-256.
    Es256,
    /// ECDSA on P-384 with SHA-384.
    Es384,
    /// EdDSA; only Ed25519 keys are supported.
    EdDsa,
}

impl JwsAlg {
    /// The JOSE name (`RS256`, ...).
    pub fn name(self) -> &'static str {
        match self {
            Self::Rs256 => "RS256",
            Self::Rs384 => "RS384",
            Self::Rs512 => "RS512",
            Self::Ps256 => "PS256",
            Self::Ps384 => "PS384",
            Self::Ps512 => "PS512",
            Self::Es256 => "ES256",
            Self::Es384 => "ES384",
            Self::EdDsa => "EdDSA",
        }
    }

    /// Parses a header's `alg`, refusing `none`, HMAC and anything unsupported.
    fn parse(alg: &str) -> std::result::Result<Self, JwsError> {
        Ok(match alg {
            "RS256" => Self::Rs256,
            "RS384" => Self::Rs384,
            "RS512" => Self::Rs512,
            "PS256" => Self::Ps256,
            "PS384" => Self::Ps384,
            "PS512" => Self::Ps512,
            "ES256" => Self::Es256,
            "ES384" => Self::Es384,
            "EdDSA" => Self::EdDsa,
            a if a.eq_ignore_ascii_case("none") => return Err(JwsError::AlgNone),
            a if a.starts_with("HS") => return Err(JwsError::Hmac),
            _ => return Err(JwsError::UnsupportedAlg),
        })
    }

    /// True when `key` is of the type and curve this algorithm needs.
    fn fits(self, key: &KeyMaterial) -> bool {
        match (self, key) {
            (
                Self::Rs256 | Self::Rs384 | Self::Rs512 | Self::Ps256 | Self::Ps384 | Self::Ps512,
                KeyMaterial::Rsa { .. },
            ) => true,
            (Self::Es256, KeyMaterial::Ec { curve, .. }) => *curve == Curve::P256,
            (Self::Es384, KeyMaterial::Ec { curve, .. }) => *curve == Curve::P384,
            (Self::EdDsa, KeyMaterial::Ed25519(_)) => true,
            _ => false,
        }
    }
}

/// Why a token's signature was not accepted. Each message is a fixed phrase: no token, key or
/// claim value ever appears in it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum JwsError {
    /// Not `header.payload.signature`, bad base64url, bad JSON.
    #[error("malformed token: {0}")]
    Malformed(&'static str),
    /// `alg: none`.
    #[error("unsigned token (alg none) refused")]
    AlgNone,
    /// `HS256` and friends: no shared secret exists, and the public key is no secret.
    #[error("HMAC algorithm refused (an ID token must be signed with the issuer's private key)")]
    Hmac,
    /// An algorithm authdeck does not verify.
    #[error("unsupported signature algorithm")]
    UnsupportedAlg,
    /// A `crit` header: authdeck understands no JWS extension, so it must refuse (RFC 7515 §4.1.11).
    #[error("unknown critical header (crit)")]
    CriticalHeader,
    /// The token's `kid` is not in the key set.
    #[error("unknown key id")]
    UnknownKeyId,
    /// The token names no `kid` and no key of the right type is in the set.
    #[error("no signing key of the right type in the issuer's key set")]
    NoMatchingKey,
    /// The token names no `kid` and several keys could have signed it.
    #[error("the token names no key id and several keys fit")]
    AmbiguousKey,
    /// The `kid` names a key of another type, curve or algorithm than the header's `alg`.
    #[error("the key does not match the token's algorithm")]
    KeyAlgMismatch,
    /// The signature is wrong (tampered payload or signature, or another key).
    #[error("signature does not verify")]
    BadSignature,
}

impl JwsError {
    /// True when fetching the key set again could help (the issuer may have rotated keys).
    pub fn key_missing(&self) -> bool {
        matches!(self, Self::UnknownKeyId | Self::NoMatchingKey)
    }
}

impl From<JwsError> for OAuthError {
    fn from(e: JwsError) -> Self {
        OAuthError::IdToken(e.to_string())
    }
}

/// An elliptic curve authdeck verifies on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Curve {
    P256,
    P384,
}

/// The public part of a key, decoded and size-checked.
#[derive(Clone, PartialEq, Eq)]
enum KeyMaterial {
    /// Modulus and exponent, big-endian without leading zeros.
    Rsa { n: Vec<u8>, e: Vec<u8> },
    /// The uncompressed point `0x04 || x || y`.
    Ec { curve: Curve, point: Vec<u8> },
    /// The 32-byte public key.
    Ed25519(Vec<u8>),
}

/// One usable key of a [`JwkSet`].
#[derive(Clone, PartialEq, Eq)]
pub struct Jwk {
    /// Key id.
    pub kid: Option<String>,
    /// The `alg` the key is restricted to, if any.
    pub alg: Option<String>,
    key: KeyMaterial,
}

impl std::fmt::Debug for Jwk {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let kty = match &self.key {
            KeyMaterial::Rsa { .. } => "RSA",
            KeyMaterial::Ec { .. } => "EC",
            KeyMaterial::Ed25519(_) => "OKP",
        };
        f.debug_struct("Jwk")
            .field("kid", &self.kid)
            .field("kty", &kty)
            .field("alg", &self.alg)
            .finish()
    }
}

/// The signature-verification keys of a JWK Set. Keys authdeck cannot use (symmetric `oct`
/// keys, encryption-only keys, unknown types or curves, malformed members) are left out, as
/// RFC 7517 §5 asks.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct JwkSet {
    keys: Vec<Jwk>,
}

impl JwkSet {
    /// Parses a JWK Set document (`{"keys": [...]}`).
    pub fn parse(body: &[u8]) -> Result<Self> {
        let bad = |why: &str| OAuthError::InvalidResponse(format!("jwks: {why}"));
        let value: Value = serde_json::from_slice(body).map_err(|_| bad("not valid JSON"))?;
        let keys = value
            .get("keys")
            .and_then(Value::as_array)
            .ok_or_else(|| bad("no \"keys\" array"))?;
        let keys: Vec<Jwk> = keys
            .iter()
            .filter_map(|k| k.as_object().and_then(parse_jwk))
            .collect();
        Ok(Self { keys })
    }

    /// The usable keys.
    pub fn keys(&self) -> &[Jwk] {
        &self.keys
    }

    /// Picks the key for a token: by `kid` when the header has one, else the single key that
    /// fits the algorithm.
    fn select(&self, alg: JwsAlg, kid: Option<&str>) -> std::result::Result<&Jwk, JwsError> {
        let fits = |k: &&Jwk| alg.fits(&k.key) && k.alg.as_deref().is_none_or(|a| a == alg.name());
        match kid {
            Some(kid) => {
                let mut named = self
                    .keys
                    .iter()
                    .filter(|k| k.kid.as_deref() == Some(kid))
                    .peekable();
                if named.peek().is_none() {
                    return Err(JwsError::UnknownKeyId);
                }
                named.find(fits).ok_or(JwsError::KeyAlgMismatch)
            }
            None => {
                let mut candidates = self.keys.iter().filter(fits);
                match (candidates.next(), candidates.next()) {
                    (Some(k), None) => Ok(k),
                    (None, _) => Err(JwsError::NoMatchingKey),
                    (Some(_), Some(_)) => Err(JwsError::AmbiguousKey),
                }
            }
        }
    }
}

/// One JWK, or `None` when it is not a usable signature-verification key.
fn parse_jwk(obj: &Map<String, Value>) -> Option<Jwk> {
    let text = |k: &str| obj.get(k).and_then(Value::as_str);
    let bytes = |k: &str| text(k).and_then(|s| URL_SAFE_NO_PAD.decode(s).ok());
    // `use` and `key_ops` may restrict a key to encryption; such a key never verifies.
    if text("use").is_some_and(|u| u != "sig") {
        return None;
    }
    if let Some(ops) = obj.get("key_ops").and_then(Value::as_array)
        && !ops.iter().any(|o| o.as_str() == Some("verify"))
    {
        return None;
    }
    let key = match (text("kty")?, text("crv")) {
        ("RSA", _) => KeyMaterial::Rsa {
            n: strip_zeros(bytes("n")?),
            e: strip_zeros(bytes("e")?),
        },
        ("EC", Some(crv @ ("P-256" | "P-384"))) => {
            let (curve, len) = if crv == "P-256" {
                (Curve::P256, 32)
            } else {
                (Curve::P384, 48)
            };
            let (x, y) = (bytes("x")?, bytes("y")?);
            if x.len() != len || y.len() != len {
                return None;
            }
            let mut point = Vec::with_capacity(1 + 2 * len);
            point.push(0x04);
            point.extend_from_slice(&x);
            point.extend_from_slice(&y);
            KeyMaterial::Ec { curve, point }
        }
        ("OKP", Some("Ed25519")) => {
            let x = bytes("x")?;
            if x.len() != signature::ED25519_PUBLIC_KEY_LEN {
                return None;
            }
            KeyMaterial::Ed25519(x)
        }
        _ => return None,
    };
    Some(Jwk {
        kid: text("kid").map(str::to_owned),
        alg: text("alg").map(str::to_owned),
        key,
    })
}

/// RSA integers as ring wants them: big-endian, no leading zero bytes.
fn strip_zeros(mut v: Vec<u8>) -> Vec<u8> {
    let first = v.iter().position(|b| *b != 0).unwrap_or(v.len());
    v.drain(..first);
    v
}

/// A compact JWS split and decoded, not yet verified.
pub struct Jws<'a> {
    /// The algorithm named in the protected header.
    pub alg: JwsAlg,
    /// The key id named in the protected header.
    pub kid: Option<String>,
    /// `base64url(header) "." base64url(payload)`: what the signature covers.
    signing_input: &'a str,
    /// The decoded payload (the claims JSON).
    payload: Vec<u8>,
    signature: Vec<u8>,
}

impl std::fmt::Debug for Jws<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Jws")
            .field("alg", &self.alg)
            .field("kid", &self.kid)
            .finish_non_exhaustive()
    }
}

impl<'a> Jws<'a> {
    /// Splits `token` (exactly three base64url segments, no padding) and checks its protected
    /// header: a supported asymmetric `alg`, no `crit`.
    pub fn parse(token: &'a str) -> std::result::Result<Self, JwsError> {
        let mut parts = token.split('.');
        let (Some(head), Some(body), Some(sig), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(JwsError::Malformed("not three dot-separated parts"));
        };
        let decode = |s: &str, what| {
            URL_SAFE_NO_PAD
                .decode(s)
                .map_err(|_| JwsError::Malformed(what))
        };
        let header: Value = serde_json::from_slice(&decode(head, "header is not base64url")?)
            .map_err(|_| JwsError::Malformed("header is not JSON"))?;
        let header = header
            .as_object()
            .ok_or(JwsError::Malformed("header is not an object"))?;
        let alg = header
            .get("alg")
            .and_then(Value::as_str)
            .ok_or(JwsError::Malformed("header has no alg"))?;
        let alg = JwsAlg::parse(alg)?;
        if header.contains_key("crit") {
            return Err(JwsError::CriticalHeader);
        }
        let kid = match header.get("kid") {
            None => None,
            Some(Value::String(k)) => Some(k.clone()),
            Some(_) => return Err(JwsError::Malformed("kid is not a string")),
        };
        let signing_input = &token[..head.len() + 1 + body.len()];
        Ok(Self {
            alg,
            kid,
            signing_input,
            payload: decode(body, "payload is not base64url")?,
            signature: decode(sig, "signature is not base64url")?,
        })
    }

    /// Verifies the signature with the matching key of `keys`; returns the payload bytes.
    pub fn verify(&self, keys: &JwkSet) -> std::result::Result<&[u8], JwsError> {
        let jwk = keys.select(self.alg, self.kid.as_deref())?;
        let msg = self.signing_input.as_bytes();
        let ok = match &jwk.key {
            KeyMaterial::Rsa { n, e } => {
                let params = match self.alg {
                    JwsAlg::Rs256 => &signature::RSA_PKCS1_2048_8192_SHA256,
                    JwsAlg::Rs384 => &signature::RSA_PKCS1_2048_8192_SHA384,
                    JwsAlg::Rs512 => &signature::RSA_PKCS1_2048_8192_SHA512,
                    JwsAlg::Ps256 => &signature::RSA_PSS_2048_8192_SHA256,
                    JwsAlg::Ps384 => &signature::RSA_PSS_2048_8192_SHA384,
                    JwsAlg::Ps512 => &signature::RSA_PSS_2048_8192_SHA512,
                    _ => return Err(JwsError::KeyAlgMismatch),
                };
                RsaPublicKeyComponents { n, e }
                    .verify(params, msg, &self.signature)
                    .is_ok()
            }
            KeyMaterial::Ec { curve, point } => {
                let alg: &dyn VerificationAlgorithm = match curve {
                    Curve::P256 => &signature::ECDSA_P256_SHA256_FIXED,
                    Curve::P384 => &signature::ECDSA_P384_SHA384_FIXED,
                };
                UnparsedPublicKey::new(alg, point)
                    .verify(msg, &self.signature)
                    .is_ok()
            }
            KeyMaterial::Ed25519(x) => UnparsedPublicKey::new(&signature::ED25519, x)
                .verify(msg, &self.signature)
                .is_ok(),
        };
        if ok {
            Ok(&self.payload)
        } else {
            Err(JwsError::BadSignature)
        }
    }
}

/// Key sets per issuer, shared by every clone of an [`OAuthClient`] (one per process).
#[derive(Debug, Default)]
pub struct JwksCache {
    entries: Mutex<HashMap<String, Cached>>,
}

#[derive(Debug, Clone)]
struct Cached {
    jwks_uri: Url,
    keys: Arc<JwkSet>,
    fetched: Instant,
}

impl JwksCache {
    /// The cached set for `issuer`, if it came from `jwks_uri` and is younger than
    /// [`JWKS_MAX_AGE`].
    fn get(&self, issuer: &str, jwks_uri: &Url) -> Option<Arc<JwkSet>> {
        let entries = self.entries.lock().ok()?;
        entries
            .get(issuer)
            .filter(|c| &c.jwks_uri == jwks_uri && c.fetched.elapsed() < JWKS_MAX_AGE)
            .map(|c| c.keys.clone())
    }

    fn put(&self, issuer: &str, jwks_uri: &Url, keys: Arc<JwkSet>) {
        if let Ok(mut entries) = self.entries.lock() {
            entries.insert(
                issuer.to_owned(),
                Cached {
                    jwks_uri: jwks_uri.clone(),
                    keys,
                    fetched: Instant::now(),
                },
            );
        }
    }
}

impl OAuthClient {
    /// GETs a JWK Set (DISC-5) with the usual transport rules: https or loopback only
    /// (DISC-4), no redirects, NET-2 retries.
    pub async fn fetch_jwks(&self, jwks_uri: &Url) -> Result<JwkSet> {
        check_endpoint(jwks_uri)?;
        let request = self
            .http
            .get(jwks_uri.clone())
            .header(ACCEPT, "application/jwk-set+json, application/json")
            .build()
            .map_err(|_| OAuthError::Config("cannot build the JWKS request".into()))?;
        let resp = self.send(request, Replay::Always).await?;
        if resp.status != 200 {
            return Err(OAuthError::Http {
                status: resp.status,
            });
        }
        let keys = JwkSet::parse(&resp.body)?;
        tracing::debug!(host = %super::client::host_of(jwks_uri), keys = keys.keys.len(), "JWKS fetched");
        Ok(keys)
    }

    /// Verifies `token`'s signature with `issuer`'s keys from `jwks_uri` and returns the
    /// payload. The key set is cached per issuer for this process; when the token names a key
    /// the cached set lacks (rotation), the set is fetched again ONCE, never more.
    pub(crate) async fn verify_jws(
        &self,
        token: &str,
        issuer: &str,
        jwks_uri: &Url,
    ) -> Result<Vec<u8>> {
        let jws = Jws::parse(token)?;
        let (keys, fresh) = match self.jwks_cache.get(issuer, jwks_uri) {
            Some(keys) => (keys, false),
            None => (self.refetch_jwks(issuer, jwks_uri).await?, true),
        };
        match jws.verify(&keys) {
            Ok(payload) => Ok(payload.to_vec()),
            Err(e) if e.key_missing() && !fresh => {
                tracing::debug!(
                    issuer,
                    "ID token names an unknown key; fetching the JWKS again"
                );
                let keys = self.refetch_jwks(issuer, jwks_uri).await?;
                Ok(jws.verify(&keys)?.to_vec())
            }
            Err(e) => Err(e.into()),
        }
    }

    async fn refetch_jwks(&self, issuer: &str, jwks_uri: &Url) -> Result<Arc<JwkSet>> {
        let keys = Arc::new(self.fetch_jwks(jwks_uri).await?);
        self.jwks_cache.put(issuer, jwks_uri, keys.clone());
        Ok(keys)
    }
}

/// Test keys and token minting, shared with `idtoken`'s tests.
#[cfg(test)]
pub(crate) mod testkeys;

#[cfg(test)]
mod tests;
