//! Newtypes for every secret authdeck touches: tokens, codes, verifiers, client secrets,
//! passphrases and vault keys.
//!
//! Each type has a redacting `Debug`, no `Display` and no `Deref`, and is zeroized on drop. The
//! value is reached only through [`secret()`](AccessToken::secret), so a reviewer can grep for
//! every place a secret leaves its wrapper. Logs may carry a [`fingerprint`](AccessToken::fingerprint)
//! (8 hex digits of SHA-256) to tell two tokens apart without revealing either (LOG-3).

use rand::TryRngCore;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::fmt;
use zeroize::{Zeroize, ZeroizeOnDrop};

/// Defines a string secret newtype with a redacted `Debug` and zeroize-on-drop.
macro_rules! secret_string {
    ($(#[$meta:meta])* $name:ident $(, $derive:ident)*) => {
        $(#[$meta])*
        #[derive(Zeroize, ZeroizeOnDrop, Serialize $(, $derive)*)]
        #[serde(transparent)]
        pub struct $name(String);

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                d.deserialize_any(SecretVisitor).map(Self)
            }
        }

        impl $name {
            /// Wraps a secret value.
            pub fn new(value: impl Into<String>) -> Self {
                Self(value.into())
            }

            /// The secret itself.
            ///
            /// Security: never pass the result to a log, an error message, a page or argv.
            pub fn secret(&self) -> &str {
                &self.0
            }

            /// 8 hex digits of SHA-256: safe to log, tells two values apart.
            pub fn fingerprint(&self) -> String {
                fingerprint(self.0.as_bytes())
            }

            /// Compares in constant time (for `state` and similar).
            pub fn ct_eq(&self, other: &str) -> bool {
                ct_eq(self.0.as_bytes(), other.as_bytes())
            }

            /// True when the value is the empty string.
            pub fn is_empty(&self) -> bool {
                self.0.is_empty()
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, concat!(stringify!($name), "([redacted])"))
            }
        }
    };
}

/// Reads a secret string. Anything but a string is refused with a message that never shows
/// the value (HARD-11): serde's own "invalid type: integer `12345`" would put a mistyped
/// secret into an error on the screen or in a log.
struct SecretVisitor;

impl SecretVisitor {
    fn refuse<E: serde::de::Error>(kind: &str) -> E {
        E::custom(format!(
            "invalid type: {kind} (value not shown), expected a string; quote the secret"
        ))
    }
}

impl<'de> serde::de::Visitor<'de> for SecretVisitor {
    type Value = String;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a string")
    }

    fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<String, E> {
        Ok(v.to_owned())
    }

    fn visit_string<E: serde::de::Error>(self, v: String) -> Result<String, E> {
        Ok(v)
    }

    fn visit_bool<E: serde::de::Error>(self, _: bool) -> Result<String, E> {
        Err(Self::refuse("a boolean"))
    }

    fn visit_i64<E: serde::de::Error>(self, _: i64) -> Result<String, E> {
        Err(Self::refuse("an integer"))
    }

    fn visit_u64<E: serde::de::Error>(self, _: u64) -> Result<String, E> {
        Err(Self::refuse("an integer"))
    }

    fn visit_i128<E: serde::de::Error>(self, _: i128) -> Result<String, E> {
        Err(Self::refuse("an integer"))
    }

    fn visit_u128<E: serde::de::Error>(self, _: u128) -> Result<String, E> {
        Err(Self::refuse("an integer"))
    }

    fn visit_f64<E: serde::de::Error>(self, _: f64) -> Result<String, E> {
        Err(Self::refuse("a number"))
    }

    fn visit_char<E: serde::de::Error>(self, _: char) -> Result<String, E> {
        Err(Self::refuse("a character"))
    }

    fn visit_bytes<E: serde::de::Error>(self, _: &[u8]) -> Result<String, E> {
        Err(Self::refuse("bytes"))
    }

    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, _: A) -> Result<String, A::Error> {
        Err(Self::refuse("an array"))
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, _: A) -> Result<String, A::Error> {
        Err(Self::refuse("a table"))
    }

    fn visit_unit<E: serde::de::Error>(self) -> Result<String, E> {
        Err(Self::refuse("null"))
    }
}

secret_string!(
    /// An OAuth access token.
    AccessToken, Clone, PartialEq, Eq
);
secret_string!(
    /// An OAuth refresh token.
    RefreshToken, Clone, PartialEq, Eq
);
secret_string!(
    /// A raw OpenID Connect ID token (a JWT).
    IdToken, Clone, PartialEq, Eq
);
secret_string!(
    /// An authorization code from the redirect.
    AuthCode, Clone, PartialEq, Eq
);
secret_string!(
    /// A PKCE code verifier. Deliberately not `Clone` (PKCE-4: one copy, dropped after use).
    PkceVerifier
);
secret_string!(
    /// The `state` parameter of an authorization request.
    CsrfState, Clone, PartialEq, Eq
);
secret_string!(
    /// The OIDC `nonce` of an authorization request.
    Nonce, Clone, PartialEq, Eq
);
secret_string!(
    /// A device grant `device_code` (RFC 8628).
    DeviceCode, Clone, PartialEq, Eq
);
secret_string!(
    /// A token sent for revocation (RFC 7009 §2.1 `token`): an access or a refresh token whose
    /// kind the sender only hints at, as the exchange proxy receives it.
    AnyToken, Clone, PartialEq, Eq
);
secret_string!(
    /// An OAuth client secret.
    ClientSecret, Clone, PartialEq, Eq
);
secret_string!(
    /// A vault passphrase typed by the user or read from the environment.
    Passphrase, Clone, PartialEq, Eq
);
secret_string!(
    /// A base64 SASL initial response (XOAUTH2 / OAUTHBEARER): it holds an access token.
    SaslResponse
);
secret_string!(
    /// A shell export line (`export NAME='…'`): it embeds an access token and is as sensitive.
    ExportLine, Clone, PartialEq, Eq
);
secret_string!(
    /// What the user pasted in paste mode: the redirect URL the browser ended on (with `code`
    /// and `state`) or a bare code. Not yet a code: `app::login::check_pasted` judges it.
    PastedRedirect, Clone, PartialEq, Eq
);

/// A 256-bit symmetric key (the vault key). Zeroized on drop, never printed.
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub struct Key32([u8; 32]);

impl Key32 {
    /// Wraps raw key bytes.
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    /// A fresh key from the OS random generator.
    pub fn generate() -> Self {
        Self(random_bytes())
    }

    /// The key bytes. Security: never log or persist them unencrypted.
    pub fn secret(&self) -> &[u8; 32] {
        &self.0
    }
}

impl fmt::Debug for Key32 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Key32([redacted])")
    }
}

/// A [`Key32`] kept for a long time (the agent's vault key, AGENT-6): one heap copy, locked in
/// RAM where the OS allows (`mlock`, so it is never written to swap), zeroized and then unlocked
/// on drop.
pub struct LockedKey32 {
    key: Box<Key32>,
    locked: bool,
}

impl LockedKey32 {
    /// Moves `key` to its own allocation and tries to lock that memory.
    pub fn new(key: Key32) -> Self {
        let key = Box::new(key);
        let locked = mlock_region(key.0.as_ptr(), key.0.len());
        Self { key, locked }
    }

    /// The key.
    pub fn key(&self) -> &Key32 {
        &self.key
    }

    /// Whether the OS agreed to lock the key's memory (RLIMIT_MEMLOCK may forbid it).
    pub fn is_memory_locked(&self) -> bool {
        self.locked
    }
}

impl Drop for LockedKey32 {
    fn drop(&mut self) {
        self.key.zeroize();
        if self.locked {
            munlock_region(self.key.0.as_ptr(), self.key.0.len());
        }
    }
}

impl fmt::Debug for LockedKey32 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("LockedKey32([redacted])")
    }
}

#[cfg(unix)]
fn mlock_region(ptr: *const u8, len: usize) -> bool {
    // SAFETY: `ptr..ptr+len` is a live allocation owned by the caller; mlock only changes
    // paging attributes of the pages that hold it.
    unsafe { libc::mlock(ptr.cast(), len) == 0 }
}

#[cfg(unix)]
fn munlock_region(ptr: *const u8, len: usize) {
    // SAFETY: as in `mlock_region`; the region is still allocated here.
    unsafe {
        libc::munlock(ptr.cast(), len);
    }
}

#[cfg(not(unix))]
fn mlock_region(_ptr: *const u8, _len: usize) -> bool {
    false
}

#[cfg(not(unix))]
fn munlock_region(_ptr: *const u8, _len: usize) {}

/// `N` bytes from the operating system's random generator.
///
/// # Panics
/// Only if the OS generator fails, which leaves no safe way to continue.
pub fn random_bytes<const N: usize>() -> [u8; N] {
    let mut buf = [0u8; N];
    #[allow(clippy::expect_used)]
    rand::rngs::OsRng
        .try_fill_bytes(&mut buf)
        .expect("the operating system's random generator failed");
    buf
}

/// 8 hex digits of SHA-256 of `bytes`.
pub fn fingerprint(bytes: &[u8]) -> String {
    let digest = Sha256::digest(bytes);
    digest[..4].iter().map(|b| format!("{b:02x}")).collect()
}

/// Constant-time equality (length is not hidden).
pub fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log2_debug_is_redacted() {
        let t = AccessToken::new("at-fx-1");
        assert_eq!(format!("{t:?}"), "AccessToken([redacted])");
        let s = ClientSecret::new("gX1fBat3bV");
        assert!(!format!("{s:?}").contains("gX1fBat3bV"));
        let any = AnyToken::new("rt-or-at-fx-2");
        assert_eq!(format!("{any:?}"), "AnyToken([redacted])");
        let line = ExportLine::new("export X='tok'");
        assert_eq!(format!("{line:?}"), "ExportLine([redacted])");
        let pasted = PastedRedirect::new("http://127.0.0.1:1/cb?code=c&state=s");
        assert_eq!(format!("{pasted:?}"), "PastedRedirect([redacted])");
        let k = Key32::from_bytes([7; 32]);
        assert_eq!(format!("{k:?}"), "Key32([redacted])");
        let locked = LockedKey32::new(Key32::from_bytes([7; 32]));
        assert_eq!(format!("{locked:?}"), "LockedKey32([redacted])");
        assert_eq!(locked.key().secret(), &[7; 32]);
    }

    #[test]
    fn fingerprint_is_8_hex_and_stable() {
        let a = AccessToken::new("abc");
        assert_eq!(a.fingerprint(), "ba7816bf");
        assert_ne!(a.fingerprint(), AccessToken::new("abd").fingerprint());
    }

    #[test]
    fn ct_eq_compares() {
        let s = CsrfState::new("st-OK");
        assert!(s.ct_eq("st-OK"));
        assert!(!s.ct_eq("st-BAD"));
        assert!(!s.ct_eq("st-OK2"));
    }

    #[test]
    fn random_bytes_differ() {
        assert_ne!(random_bytes::<32>(), random_bytes::<32>());
    }

    /// HARD-11: a mistyped secret (a number, a boolean, a date, an array) is refused with a
    /// message that does not contain it, in TOML and in JSON; a string still reads.
    #[test]
    fn a_mistyped_secret_is_refused_without_echoing_it() {
        #[derive(Deserialize, Debug)]
        #[allow(dead_code)]
        struct File {
            client_secret: ClientSecret,
        }
        for text in [
            "client_secret = 98765432101",
            "client_secret = 9876.54321",
            "client_secret = true",
            "client_secret = 1979-05-27T07:32:00Z",
            "client_secret = [98765432101]",
        ] {
            let err = toml::from_str::<File>(text).unwrap_err();
            // The project shows `message()` with its own FILE:LINE:COL, never toml's snippet.
            let shown = err.message();
            for leak in ["98765432101", "9876.54321", "true", "1979-05-27"] {
                assert!(!shown.contains(leak), "{text}: {shown}");
            }
            assert!(err.message().contains("value not shown"), "{text}: {shown}");
        }
        let err = serde_json::from_str::<ClientSecret>("98765432101").unwrap_err();
        assert!(!err.to_string().contains("98765432101"), "{err}");
        let ok: File = toml::from_str(r#"client_secret = "s3cret""#).unwrap();
        assert_eq!(ok.client_secret.secret(), "s3cret");
    }

    #[test]
    fn serde_is_transparent() {
        let t = RefreshToken::new("rt");
        assert_eq!(serde_json::to_string(&t).unwrap(), "\"rt\"");
    }
}
