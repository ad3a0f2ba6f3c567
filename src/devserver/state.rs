//! The fake server's memory: codes, tokens and device authorizations.
//!
//! Every secret it hands out is stored only as its SHA-256 digest (hex), as a real server
//! should, so the maps never hold a usable token.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ring::rand::SystemRandom;
use ring::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use super::{DevClient, DevServerConfig, Stats};
use crate::secret::random_bytes;

/// How long an authorization code stays valid.
pub const CODE_TTL: Duration = Duration::from_secs(60);

/// The digest under which a secret is stored.
pub fn digest(secret: &str) -> String {
    Sha256::digest(secret.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// A fresh 256-bit random value, base64url without padding.
pub fn random_token() -> String {
    URL_SAFE_NO_PAD.encode(random_bytes::<32>())
}

/// A user code like `ABCD-EFGH` from an alphabet without vowels that look like digits.
pub fn random_user_code() -> String {
    const ALPHABET: &[u8] = b"BCDFGHJKLMNPQRSTVWXZ";
    let bytes = random_bytes::<8>();
    let letters: Vec<char> = bytes
        .iter()
        .map(|b| char::from(ALPHABET[usize::from(*b) % ALPHABET.len()]))
        .collect();
    let (a, b) = letters.split_at(4);
    format!(
        "{}-{}",
        a.iter().collect::<String>(),
        b.iter().collect::<String>()
    )
}

/// An ES256 key the server signs id_tokens with (DISC-5). Made fresh at every start and never
/// written anywhere: tokens of one run do not verify against another.
pub struct SigningKey {
    /// The key id in the JWS header and the JWKS.
    pub kid: String,
    pair: EcdsaKeyPair,
    rng: SystemRandom,
}

impl SigningKey {
    /// A new P-256 key pair with a random `kid`.
    pub fn generate() -> std::io::Result<Self> {
        let rng = SystemRandom::new();
        let alg = &ECDSA_P256_SHA256_FIXED_SIGNING;
        let failed = |what: &str| std::io::Error::other(format!("devserver: cannot {what}"));
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(alg, &rng)
            .map_err(|_| failed("generate the id_token signing key"))?;
        let pair = EcdsaKeyPair::from_pkcs8(alg, pkcs8.as_ref(), &rng)
            .map_err(|_| failed("load the id_token signing key"))?;
        let kid = format!("dev-{}", &digest(&random_token())[..12]);
        Ok(Self { kid, pair, rng })
    }

    /// The public key as a JWK (RFC 7517, RFC 7518 §6.2).
    pub fn jwk(&self) -> Value {
        // The public key is the uncompressed point 0x04 || x || y, 32 bytes each.
        let point = self.pair.public_key().as_ref();
        let (x, y) = point
            .get(1..)
            .unwrap_or_default()
            .split_at(point.len().saturating_sub(1) / 2);
        json!({
            "kty": "EC",
            "crv": "P-256",
            "x": URL_SAFE_NO_PAD.encode(x),
            "y": URL_SAFE_NO_PAD.encode(y),
            "kid": self.kid,
            "alg": "ES256",
            "use": "sig",
        })
    }

    /// A compact JWS of `claims`, header `{"alg":"ES256","kid":…}`, signed with this key but
    /// naming `kid` (a fault may name another key's id).
    pub fn sign(&self, kid: &str, claims: &Value) -> String {
        let header = json!({"alg": "ES256", "typ": "JWT", "kid": kid});
        let input = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header.to_string()),
            URL_SAFE_NO_PAD.encode(claims.to_string())
        );
        // Signing with a valid key only fails if the system RNG fails; the token then carries
        // an empty signature, which no client accepts.
        let sig = self
            .pair
            .sign(&self.rng, input.as_bytes())
            .map(|s| URL_SAFE_NO_PAD.encode(s.as_ref()))
            .unwrap_or_default();
        format!("{input}.{sig}")
    }
}

/// A pending authorization code.
#[derive(Debug, Clone)]
pub struct CodeGrant {
    pub client_id: String,
    pub redirect_uri: String,
    pub challenge: String,
    pub scope: String,
    pub nonce: Option<String>,
    pub expires: Instant,
}

/// What an access or refresh token was issued for.
#[derive(Debug, Clone)]
pub struct Grant {
    pub client_id: String,
    pub scope: String,
    /// `None` for refresh tokens (they do not expire here).
    pub expires: Option<Instant>,
    /// Where the tokens came from; refresh tokens carry it on through rotation.
    pub lineage: Lineage,
}

/// What a refresh token remembers of the login that started it (personality rules).
#[derive(Debug, Clone, Default)]
pub struct Lineage {
    /// The login used the device grant (GitHub lets its refreshes go without a secret).
    pub via_device: bool,
    /// The login's redirect URI (GitLab wants it again on refresh).
    pub redirect_uri: Option<String>,
    /// When the login happened, on the server's clock (Google "Testing" apps: 7 days).
    pub born: Option<Instant>,
}

/// Where a device authorization stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeviceStatus {
    Pending,
    Approved,
    Denied,
    /// Tokens were issued: the device code is spent.
    Used,
}

/// A device authorization (RFC 8628).
#[derive(Debug, Clone)]
pub struct DeviceGrant {
    pub user_code: String,
    pub client_id: String,
    pub scope: String,
    pub status: DeviceStatus,
    pub expires: Instant,
    pub last_poll: Option<Instant>,
}

/// Everything the server remembers.
pub struct State {
    pub config: DevServerConfig,
    pub issuer: String,
    pub stats: Stats,
    /// The id_token signing key, published at `/jwks`.
    pub signing: SigningKey,
    /// A second key, never published: the `IdTokenFault::WrongKey` fault signs with it.
    #[cfg(any(test, feature = "test-support"))]
    pub rogue: SigningKey,
    /// The id_token fault of the request being served, if any.
    #[cfg(any(test, feature = "test-support"))]
    pub id_token_fault: Option<super::IdTokenFault>,
    /// Keyed by the digest of the code.
    pub codes: HashMap<String, CodeGrant>,
    /// Keyed by the digest of the access token.
    pub access: HashMap<String, Grant>,
    /// Keyed by the digest of the refresh token.
    pub refresh: HashMap<String, Grant>,
    /// Keyed by the digest of the device code.
    pub devices: HashMap<String, DeviceGrant>,
    /// How far the tests moved the server's clock ahead ([`State::now`]).
    pub clock_offset: Duration,
    /// `jti`s of client assertions already accepted: a replay is refused (MACH-2).
    pub used_jtis: std::collections::HashSet<String>,
}

impl State {
    /// An empty state for `config`, answering as `issuer`, with fresh signing keys.
    pub fn new(config: DevServerConfig, issuer: String) -> std::io::Result<Self> {
        Ok(Self {
            config,
            issuer,
            stats: Stats::default(),
            signing: SigningKey::generate()?,
            #[cfg(any(test, feature = "test-support"))]
            rogue: SigningKey::generate()?,
            #[cfg(any(test, feature = "test-support"))]
            id_token_fault: None,
            codes: HashMap::new(),
            access: HashMap::new(),
            refresh: HashMap::new(),
            devices: HashMap::new(),
            clock_offset: Duration::ZERO,
            used_jtis: std::collections::HashSet::new(),
        })
    }

    /// The registered client with this id.
    pub fn client(&self, client_id: &str) -> Option<&DevClient> {
        self.config
            .clients
            .iter()
            .find(|c| c.client_id == client_id)
    }

    /// Issues an access token (and a refresh token when configured) for `client_id`/`scope`.
    #[cfg(test)]
    pub fn issue(&mut self, client_id: &str, scope: &str) -> (String, Option<String>) {
        let lineage = Lineage {
            born: Some(self.now()),
            ..Lineage::default()
        };
        self.issue_with(client_id, scope, lineage)
    }

    /// Issues tokens for a login (or refresh) of known `lineage`.
    pub fn issue_with(
        &mut self,
        client_id: &str,
        scope: &str,
        lineage: Lineage,
    ) -> (String, Option<String>) {
        let access = random_token();
        let expires = self.access_ttl().map(|ttl| self.now() + ttl);
        self.access.insert(
            digest(&access),
            Grant {
                client_id: client_id.to_owned(),
                scope: scope.to_owned(),
                expires,
                lineage: lineage.clone(),
            },
        );
        let issue_refresh = self.config.issue_refresh_tokens
            && self
                .config
                .personality
                .as_ref()
                .is_none_or(|p| p.refresh != super::personality::RefreshRule::NotIssued);
        let refresh = issue_refresh.then(|| {
            let refresh = random_token();
            self.refresh.insert(
                digest(&refresh),
                Grant {
                    client_id: client_id.to_owned(),
                    scope: scope.to_owned(),
                    expires: None,
                    lineage,
                },
            );
            refresh
        });
        (access, refresh)
    }

    /// The access token lifetime: the personality's, else the configured one; `None` when
    /// tokens never expire (GitHub OAuth apps).
    pub fn access_ttl(&self) -> Option<Duration> {
        use super::personality::Expiry;
        match self.config.personality.as_ref().map(|p| p.expiry) {
            Some(Expiry::Seconds(s) | Expiry::StringSeconds(s)) => Some(Duration::from_secs(s)),
            Some(Expiry::Never) => None,
            None => Some(self.config.access_token_ttl),
        }
    }

    /// The server's clock: real time plus whatever the tests advanced it by.
    pub fn now(&self) -> Instant {
        Instant::now() + self.clock_offset
    }

    /// The grant behind a live access token.
    pub fn live_access(&self, token: &str) -> Option<&Grant> {
        self.access
            .get(&digest(token))
            .filter(|g| g.expires.is_none_or(|e| self.now() < e))
    }

    /// Approves or denies the pending device authorization with `user_code`.
    pub fn decide_device(&mut self, user_code: &str, approve: bool) -> bool {
        let wanted = user_code.trim().to_ascii_uppercase();
        let Some(grant) = self
            .devices
            .values_mut()
            .find(|d| d.user_code == wanted && d.status == DeviceStatus::Pending)
        else {
            return false;
        };
        grant.status = if approve {
            DeviceStatus::Approved
        } else {
            DeviceStatus::Denied
        };
        true
    }

    /// Forgets every access and refresh token.
    pub fn revoke_all(&mut self) {
        self.access.clear();
        self.refresh.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_code_has_the_abcd_efgh_shape() {
        let code = random_user_code();
        assert_eq!(code.len(), 9);
        assert_eq!(&code[4..5], "-");
        assert!(
            code.chars()
                .filter(|c| *c != '-')
                .all(|c| c.is_ascii_uppercase())
        );
    }

    #[test]
    fn tokens_are_stored_as_digests_only() {
        let mut state = State::new(DevServerConfig::default(), "http://x".into()).unwrap();
        let (access, refresh) = state.issue("demo-public", "openid");
        assert!(!state.access.contains_key(&access));
        assert!(state.live_access(&access).is_some());
        let refresh = refresh.unwrap();
        assert!(state.refresh.contains_key(&digest(&refresh)));
        state.revoke_all();
        assert!(state.live_access(&access).is_none());
    }

    #[test]
    fn expired_access_token_is_not_live() {
        let config = DevServerConfig {
            access_token_ttl: Duration::ZERO,
            ..DevServerConfig::default()
        };
        let mut state = State::new(config, "http://x".into()).unwrap();
        let (access, _) = state.issue("demo-public", "");
        assert!(state.live_access(&access).is_none());
    }
}
