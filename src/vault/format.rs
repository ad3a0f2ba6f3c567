//! The on-disk format (docs/vault-format.md): a fixed 88-byte header, then AES-256-GCM over the
//! JSON records with the whole header as associated data (VAULT-1, VAULT-2).

use super::error::{Result, VaultError};
use super::key::{KdfParams, KeyKind};
use super::record::Records;
use crate::secret::Key32;
use aes_gcm::aead::{AeadInPlace, KeyInit};
use aes_gcm::{Aes256Gcm, Nonce, Tag};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
use zeroize::Zeroizing;

/// First eight bytes of every vault file.
pub const MAGIC: &[u8; 8] = b"AUTHDECK";
/// The newest format version this build reads and writes. Version 2 is version 1 plus key kind
/// 3 (the OS keyring, VAULT-7); only vaults of that kind are written as version 2, so that an
/// older authdeck still opens every passphrase and key-file vault this build writes.
pub const FORMAT_VERSION: u16 = 2;
/// The version of vaults keyed by a passphrase or a key file.
const FORMAT_V1: u16 = 1;
/// The schema version of the JSON records inside the ciphertext.
pub const SCHEMA_VERSION: u32 = 1;
/// Header length in bytes.
pub const HEADER_LEN: usize = 88;
/// AES-GCM tag length.
const TAG_LEN: usize = 16;
/// Largest plaintext accepted (64 MiB): a sanity bound against a hostile length field.
const MAX_PLAINTEXT: usize = 64 << 20;

const KIND_PASSPHRASE: u8 = 1;
const KIND_KEY_FILE: u8 = 2;
const KIND_OS_KEYRING: u8 = 3;
const KEY_CHECK_DOMAIN: &[u8] = b"authdeck vault key check v1\0";

/// The parsed, checksum-verified header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Header {
    pub kind: KeyKind,
    /// Present for passphrase vaults.
    pub params: Option<KdfParams>,
    /// The Argon2id salt of a passphrase vault; the keyring item's id of an OS keyring vault
    /// (VAULT-7); zeros for a key-file vault.
    pub salt: [u8; 16],
    pub generation: u64,
    key_check: [u8; 16],
    nonce: [u8; 12],
    ct_len: u32,
}

/// A derived or loaded key together with what the header must say about it.
#[derive(Debug, Clone)]
pub(crate) struct Unlocked {
    pub kind: KeyKind,
    pub params: Option<KdfParams>,
    pub salt: [u8; 16],
    pub key: Key32,
}

#[derive(Serialize)]
struct PayloadOut<'a> {
    schema: u32,
    accounts: &'a Records,
}

#[derive(Deserialize)]
struct PayloadIn {
    schema: u32,
    #[serde(default)]
    accounts: Records,
}

/// The records as `parse_tokens` reads them: only what handing out an access token needs.
#[derive(Deserialize)]
struct TokensIn {
    schema: u32,
    #[serde(default)]
    accounts: std::collections::BTreeMap<String, TokenFields>,
}

/// The fields of a record that hand out its access token. Every other field (the refresh token,
/// the ID token, a client secret, history) is skipped by the parser, never copied.
#[derive(Deserialize, Default)]
#[serde(default)]
struct TokenFields {
    access_token: Option<crate::secret::AccessToken>,
    obtained_at: Option<i64>,
    expires_at: Option<i64>,
    state: super::record::StoredState,
}

/// Names the file and its backup in integrity errors.
pub(crate) struct Ctx<'a> {
    pub path: &'a Path,
    /// Where a backup would be: named in an error only if it exists, and looked up only then,
    /// so that the happy path costs no `stat`.
    pub backup: PathBuf,
}

impl Ctx<'_> {
    fn corrupt(&self, reason: &'static str) -> VaultError {
        VaultError::Corrupt {
            path: self.path.to_path_buf(),
            reason,
            backup: self.backup.exists().then(|| self.backup.clone()),
        }
    }
}

fn key_check(key: &Key32) -> [u8; 16] {
    let mut h = Sha256::new();
    h.update(KEY_CHECK_DOMAIN);
    h.update(key.secret());
    let digest = h.finalize();
    let mut out = [0u8; 16];
    out.copy_from_slice(&digest[..16]);
    out
}

fn header_sum(prefix: &[u8]) -> [u8; 8] {
    let digest = Sha256::digest(prefix);
    let mut out = [0u8; 8];
    out.copy_from_slice(&digest[..8]);
    out
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    let mut a = [0u8; 4];
    a.copy_from_slice(&b[at..at + 4]);
    u32::from_le_bytes(a)
}

/// Parses and checks the header: length, magic, checksum, version, field consistency.
pub(crate) fn parse_header(bytes: &[u8], ctx: &Ctx<'_>) -> Result<Header> {
    if bytes.len() < MAGIC.len() || &bytes[..MAGIC.len()] != MAGIC {
        if bytes.len() < MAGIC.len() && MAGIC.starts_with(bytes) {
            return Err(ctx.corrupt("truncated header"));
        }
        return Err(VaultError::NotAVault {
            path: ctx.path.to_path_buf(),
        });
    }
    let version = u16::from_le_bytes([*bytes.get(8).unwrap_or(&0), *bytes.get(9).unwrap_or(&0)]);
    if bytes.len() < HEADER_LEN {
        return Err(ctx.corrupt("truncated header"));
    }
    if header_sum(&bytes[..80]) != bytes[80..88] {
        // A newer format may lay its header out differently; say so rather than "corrupt".
        if version > FORMAT_VERSION {
            return Err(VaultError::UnsupportedVersion {
                path: ctx.path.to_path_buf(),
                found: u32::from(version),
                supported: u32::from(FORMAT_VERSION),
            });
        }
        return Err(ctx.corrupt("header checksum mismatch"));
    }
    if version > FORMAT_VERSION {
        return Err(VaultError::UnsupportedVersion {
            path: ctx.path.to_path_buf(),
            found: u32::from(version),
            supported: u32::from(FORMAT_VERSION),
        });
    }
    if version < FORMAT_V1 {
        return Err(ctx.corrupt("unknown format version"));
    }
    let params = KdfParams {
        m_cost_kib: u32_at(bytes, 12),
        t_cost: u32_at(bytes, 16),
        p_cost: u32_at(bytes, 20),
    };
    let mut salt = [0u8; 16];
    salt.copy_from_slice(&bytes[24..40]);
    let no_kdf = params
        == (KdfParams {
            m_cost_kib: 0,
            t_cost: 0,
            p_cost: 0,
        });
    let (kind, params) = match bytes[10] {
        KIND_PASSPHRASE => (KeyKind::Passphrase, Some(params)),
        KIND_KEY_FILE if no_kdf && salt == [0; 16] => (KeyKind::KeyFile, None),
        // VAULT-7: version 2 only; the salt field names the keyring item, so it is not zero.
        KIND_OS_KEYRING if version >= 2 && no_kdf && salt != [0; 16] => (KeyKind::OsKeyring, None),
        _ => return Err(ctx.corrupt("inconsistent key fields")),
    };
    if bytes[11] != 0 {
        return Err(ctx.corrupt("reserved byte set"));
    }
    let mut generation = [0u8; 8];
    generation.copy_from_slice(&bytes[40..48]);
    let mut key_check = [0u8; 16];
    key_check.copy_from_slice(&bytes[48..64]);
    let mut nonce = [0u8; 12];
    nonce.copy_from_slice(&bytes[64..76]);
    Ok(Header {
        kind,
        params,
        salt,
        generation: u64::from_le_bytes(generation),
        key_check,
        nonce,
        ct_len: u32_at(bytes, 76),
    })
}

/// Counts serialized bytes so the plaintext buffer is allocated once, never reallocated (a
/// reallocation would leave an unzeroized copy of the tokens in freed memory).
struct Counter(usize);

impl std::io::Write for Counter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0 += buf.len();
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Serializes and encrypts `records` as generation `generation` with a fresh random nonce.
pub(crate) fn seal(key: &Unlocked, generation: u64, records: &Records) -> Result<Vec<u8>> {
    let payload = PayloadOut {
        schema: SCHEMA_VERSION,
        accounts: records,
    };
    let mut counter = Counter(0);
    serde_json::to_writer(&mut counter, &payload)
        .map_err(|e| VaultError::Serialize(e.to_string()))?;
    seal_with(key, generation, counter.0, |out| {
        serde_json::to_writer(out, &payload).map_err(|e| VaultError::Serialize(e.to_string()))
    })
}

/// Writes the header for a `pt_len`-byte plaintext, lets `write` append exactly that plaintext,
/// and encrypts it in place. The buffer is sized once up front, so it is never reallocated (a
/// reallocation would leave an unzeroized copy of the tokens in freed memory).
pub(super) fn seal_with(
    key: &Unlocked,
    generation: u64,
    pt_len: usize,
    write: impl FnOnce(&mut Vec<u8>) -> Result<()>,
) -> Result<Vec<u8>> {
    if pt_len > MAX_PLAINTEXT {
        return Err(VaultError::Serialize(
            "the records exceed 64 MiB".to_owned(),
        ));
    }
    let mut out = Zeroizing::new(Vec::with_capacity(HEADER_LEN + pt_len + TAG_LEN));
    out.extend_from_slice(MAGIC);
    let version = match key.kind {
        KeyKind::OsKeyring => FORMAT_VERSION,
        KeyKind::Passphrase | KeyKind::KeyFile => FORMAT_V1,
    };
    out.extend_from_slice(&version.to_le_bytes());
    let params = key.params.unwrap_or(KdfParams {
        m_cost_kib: 0,
        t_cost: 0,
        p_cost: 0,
    });
    out.push(match key.kind {
        KeyKind::Passphrase => KIND_PASSPHRASE,
        KeyKind::KeyFile => KIND_KEY_FILE,
        KeyKind::OsKeyring => KIND_OS_KEYRING,
    });
    out.push(0);
    out.extend_from_slice(&params.m_cost_kib.to_le_bytes());
    out.extend_from_slice(&params.t_cost.to_le_bytes());
    out.extend_from_slice(&params.p_cost.to_le_bytes());
    out.extend_from_slice(&key.salt);
    out.extend_from_slice(&generation.to_le_bytes());
    out.extend_from_slice(&key_check(&key.key));
    let nonce: [u8; 12] = crate::secret::random_bytes();
    out.extend_from_slice(&nonce);
    // pt_len <= 64 MiB, so the cast cannot truncate.
    out.extend_from_slice(&((pt_len + TAG_LEN) as u32).to_le_bytes());
    let sum = header_sum(&out[..80]);
    out.extend_from_slice(&sum);
    write(&mut out)?;
    if out.len() != HEADER_LEN + pt_len {
        return Err(VaultError::Serialize(
            "the records changed while sealing".to_owned(),
        ));
    }
    let cipher = Aes256Gcm::new(key.key.secret().into());
    let (aad, body) = out.split_at_mut(HEADER_LEN);
    let tag = cipher
        .encrypt_in_place_detached(Nonce::from_slice(&nonce), aad, body)
        .map_err(|_| VaultError::Serialize("encryption failed".to_owned()))?;
    out.extend_from_slice(&tag);
    // The buffer now holds only ciphertext; hand it out without the zeroizing wrapper.
    Ok(std::mem::take(&mut *out))
}

impl Header {
    /// Whether `key` is the key this vault was written with (a wrong key is told apart from a
    /// corrupt file, and a handle with a wrong key can never write).
    pub fn key_matches(&self, key: &Key32) -> bool {
        crate::secret::ct_eq(&key_check(key), &self.key_check)
    }
}

/// Checks the key against the header and decrypts the records.
pub(crate) fn open(
    bytes: &[u8],
    header: &Header,
    key: &Unlocked,
    ctx: &Ctx<'_>,
) -> Result<Records> {
    parse(&decrypt(bytes, header, key, ctx)?, ctx)
}

/// Checks the key against the header and decrypts the body: the records' JSON, authenticated
/// with the whole header (VAULT-2), in a buffer zeroized when dropped.
pub(crate) fn decrypt(
    bytes: &[u8],
    header: &Header,
    key: &Unlocked,
    ctx: &Ctx<'_>,
) -> Result<Zeroizing<Vec<u8>>> {
    if key.kind != header.kind {
        return Err(VaultError::KeyKindMismatch {
            path: ctx.path.to_path_buf(),
            expected: header.kind,
            given: key.kind,
        });
    }
    if !header.key_matches(&key.key) {
        return Err(VaultError::WrongKey {
            path: ctx.path.to_path_buf(),
        });
    }
    let ct_len = header.ct_len as usize;
    if ct_len < TAG_LEN || bytes.len() != HEADER_LEN + ct_len {
        return Err(ctx.corrupt("length mismatch"));
    }
    let (aad, rest) = bytes.split_at(HEADER_LEN);
    let (body, tag) = rest.split_at(ct_len - TAG_LEN);
    let mut plain = Zeroizing::new(body.to_vec());
    let cipher = Aes256Gcm::new(key.key.secret().into());
    cipher
        .decrypt_in_place_detached(
            Nonce::from_slice(&header.nonce),
            aad,
            &mut plain,
            Tag::from_slice(tag),
        )
        .map_err(|_| ctx.corrupt("authentication tag mismatch"))?;
    Ok(plain)
}

/// Every record of a decrypted body.
pub(crate) fn parse(plain: &[u8], ctx: &Ctx<'_>) -> Result<Records> {
    let payload: PayloadIn =
        serde_json::from_slice(plain).map_err(|_| ctx.corrupt("undecodable records"))?;
    check_schema(payload.schema, ctx)?;
    Ok(payload.accounts)
}

/// Each record of a decrypted body with only its access token, the token's times and the
/// record's state (the rest of each record is default): what `--export`, `token` and the
/// other token commands hand out, at a fraction of the parsing and with no other secret
/// copied (docs/benchmarks.md, "`export` of 50 accounts beside a minimal program"). The whole
/// body is still checked to be well-formed JSON of a schema this build reads.
pub(crate) fn parse_tokens(plain: &[u8], ctx: &Ctx<'_>) -> Result<Records> {
    let payload: TokensIn =
        serde_json::from_slice(plain).map_err(|_| ctx.corrupt("undecodable records"))?;
    check_schema(payload.schema, ctx)?;
    Ok(payload
        .accounts
        .into_iter()
        .map(|(name, t)| {
            let record = super::record::Record {
                access_token: t.access_token,
                obtained_at: t.obtained_at,
                expires_at: t.expires_at,
                state: t.state,
                ..super::record::Record::default()
            };
            (name, record)
        })
        .collect())
}

fn check_schema(schema: u32, ctx: &Ctx<'_>) -> Result<()> {
    if schema > SCHEMA_VERSION {
        return Err(VaultError::UnsupportedVersion {
            path: ctx.path.to_path_buf(),
            found: schema,
            supported: SCHEMA_VERSION,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::vault::record::Record;

    fn unlocked() -> Unlocked {
        Unlocked {
            kind: KeyKind::KeyFile,
            params: None,
            salt: [0; 16],
            key: Key32::from_bytes([9; 32]),
        }
    }

    fn ctx() -> Ctx<'static> {
        Ctx {
            path: Path::new("v"),
            backup: PathBuf::from("v.bak-that-does-not-exist"),
        }
    }

    #[test]
    fn seal_open_round_trip_and_fresh_nonce() {
        let mut recs = Records::new();
        recs.insert("work".into(), Record::default());
        let k = unlocked();
        let a = seal(&k, 7, &recs).unwrap();
        let b = seal(&k, 7, &recs).unwrap();
        assert_ne!(a, b, "VAULT-1: every write uses a fresh nonce");
        let h = parse_header(&a, &ctx()).unwrap();
        assert_eq!(h.generation, 7);
        assert_eq!(h.kind, KeyKind::KeyFile);
        assert_eq!(open(&a, &h, &k, &ctx()).unwrap(), recs);
    }

    #[test]
    fn wrong_key_is_reported_as_such() {
        let k = unlocked();
        let bytes = seal(&k, 1, &Records::new()).unwrap();
        let h = parse_header(&bytes, &ctx()).unwrap();
        let other = Unlocked {
            key: Key32::from_bytes([8; 32]),
            ..k
        };
        assert!(matches!(
            open(&bytes, &h, &other, &ctx()),
            Err(VaultError::WrongKey { .. })
        ));
    }

    /// VAULT-7: an OS keyring vault is format 2 with key kind 3 and its item id in the salt
    /// field; passphrase and key-file vaults stay format 1, so older builds still read them.
    #[test]
    fn vault7_keyring_vaults_are_format_2_and_others_stay_format_1() {
        let k = unlocked();
        let v1 = seal(&k, 1, &Records::new()).unwrap();
        assert_eq!(u16::from_le_bytes([v1[8], v1[9]]), 1);
        let id = [5u8; 16];
        let kr = Unlocked {
            kind: KeyKind::OsKeyring,
            params: None,
            salt: id,
            key: Key32::from_bytes([9; 32]),
        };
        let v2 = seal(&kr, 3, &Records::new()).unwrap();
        assert_eq!(u16::from_le_bytes([v2[8], v2[9]]), 2);
        assert_eq!(v2[10], KIND_OS_KEYRING);
        let h = parse_header(&v2, &ctx()).unwrap();
        assert_eq!((h.kind, h.params, h.salt), (KeyKind::OsKeyring, None, id));
        assert!(open(&v2, &h, &kr, &ctx()).is_ok());
        // A key-file key does not open it, and says which kind is needed.
        assert!(matches!(
            open(&v2, &h, &k, &ctx()),
            Err(VaultError::KeyKindMismatch {
                expected: KeyKind::OsKeyring,
                ..
            })
        ));
        // Kind 3 in a version-1 header, or with a zero id, is inconsistent.
        let mut forged = v2.clone();
        forged[8] = 1;
        let sum = header_sum(&forged[..80]);
        forged[80..88].copy_from_slice(&sum);
        assert!(matches!(
            parse_header(&forged, &ctx()),
            Err(VaultError::Corrupt { .. })
        ));
        let mut zero_id = v2.clone();
        zero_id[24..40].fill(0);
        let sum = header_sum(&zero_id[..80]);
        zero_id[80..88].copy_from_slice(&sum);
        assert!(matches!(
            parse_header(&zero_id, &ctx()),
            Err(VaultError::Corrupt { .. })
        ));
        // A newer format is "upgrade authdeck", not corruption.
        let mut v3 = v2;
        v3[8] = 3;
        let sum = header_sum(&v3[..80]);
        v3[80..88].copy_from_slice(&sum);
        assert!(matches!(
            parse_header(&v3, &ctx()),
            Err(VaultError::UnsupportedVersion {
                found: 3,
                supported: 2,
                ..
            })
        ));
    }

    #[test]
    fn not_a_vault() {
        assert!(matches!(
            parse_header(b"hello world, this is not a vault", &ctx()),
            Err(VaultError::NotAVault { .. })
        ));
    }
}
