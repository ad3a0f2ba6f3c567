//! PKCE (RFC 7636): a fresh verifier per login and its S256 challenge.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sha2::{Digest, Sha256};

use crate::secret::{PkceVerifier, random_bytes};

/// A verifier and its S256 challenge, made together for one authorization request.
#[derive(Debug)]
pub struct PkcePair {
    /// The secret verifier, sent only in the code exchange (PKCE-4). Not `Clone`.
    pub verifier: PkceVerifier,
    /// `BASE64URL-NOPAD(SHA-256(verifier))`, sent in the authorization URL.
    pub challenge: String,
}

impl PkcePair {
    /// PKCE-1: 32 bytes from the OS random generator, base64url without padding (43 chars).
    pub fn generate() -> Self {
        let verifier = URL_SAFE_NO_PAD.encode(random_bytes::<32>());
        let challenge = challenge_s256(&verifier);
        Self {
            verifier: PkceVerifier::new(verifier),
            challenge,
        }
    }
}

/// PKCE-2: the S256 challenge of a verifier.
pub fn challenge_s256(verifier: &str) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()))
}

pub use super::wire::is_valid_verifier;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pkce2_rfc7636_appendix_b_vector() {
        let octets: [u8; 32] = [
            116, 24, 223, 180, 151, 153, 224, 37, 79, 250, 96, 125, 216, 173, 187, 186, 22, 212,
            37, 77, 105, 214, 191, 240, 91, 88, 5, 88, 83, 132, 141, 121,
        ];
        let verifier = URL_SAFE_NO_PAD.encode(octets);
        assert_eq!(verifier, "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk");
        assert_eq!(
            challenge_s256(&verifier),
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
        );
    }

    #[test]
    fn pkce1_generated_verifier_is_valid_fresh_and_matches_challenge() {
        let a = PkcePair::generate();
        let b = PkcePair::generate();
        assert_eq!(a.verifier.secret().len(), 43);
        assert!(is_valid_verifier(a.verifier.secret()));
        assert_ne!(a.verifier.secret(), b.verifier.secret());
        assert_eq!(a.challenge, challenge_s256(a.verifier.secret()));
        assert!(!format!("{a:?}").contains(a.verifier.secret()));
    }

    #[test]
    fn pkce1_verifier_syntax() {
        assert!(is_valid_verifier(&"a".repeat(43)));
        assert!(is_valid_verifier(&"-._~".repeat(32)));
        assert!(!is_valid_verifier(&"a".repeat(42)));
        assert!(!is_valid_verifier(&"a".repeat(129)));
        assert!(!is_valid_verifier(&format!("{}+", "a".repeat(43))));
        assert!(!is_valid_verifier(&format!("{}é", "a".repeat(43))));
    }
}
