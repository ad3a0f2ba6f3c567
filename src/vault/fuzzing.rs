//! The vault decoder for the fuzz targets in `fuzz/` (feature `fuzzing`; never in a normal
//! build, see docs/fuzzing.md).
//!
//! [`decode`] runs the exact read path of [`FileStore`](super::FileStore) on bytes instead of a
//! file: header checks, KDF parameter bounds, key check, AES-GCM and the JSON records. The key
//! comes from [`KEY`] instead of a key file or Argon2id (which would make every run take a
//! second): a passphrase vault is opened as if the passphrase had derived [`KEY`].

use std::path::Path;

use super::error::Result;
use super::format::{self, Ctx, Unlocked};
use super::key::{KdfParams, KeyKind};
use super::record::Records;
use crate::secret::Key32;

/// The key every fuzzed vault is opened and sealed with.
pub const KEY: [u8; 32] = [0x42; 32];

const PATH: &str = "fuzz-vault.bin";

/// What a successful decode found.
#[derive(Debug)]
pub struct Decoded {
    /// The header's generation.
    pub generation: u64,
    /// The header's key kind.
    pub kind: KeyKind,
    /// The header's KDF parameters (passphrase vaults).
    pub params: Option<KdfParams>,
    /// The header's salt.
    pub salt: [u8; 16],
    /// The decrypted records.
    pub records: Records,
}

fn ctx() -> Ctx<'static> {
    Ctx {
        path: Path::new(PATH),
        backup: Path::new(PATH).with_extension("bin.bak"),
    }
}

/// Decodes a whole vault file as [`FileStore`](super::FileStore)'s load does, with [`KEY`].
pub fn decode(bytes: &[u8]) -> Result<Decoded> {
    let header = format::parse_header(bytes, &ctx())?;
    if let Some(params) = header.params {
        // derive_key refuses these before running Argon2id; so does the fuzzed path.
        params.validate(Path::new(PATH))?;
    }
    let key = Unlocked {
        kind: header.kind,
        params: header.params,
        salt: header.salt,
        key: Key32::from_bytes(KEY),
    };
    let records = format::open(bytes, &header, &key, &ctx())?;
    Ok(Decoded {
        generation: header.generation,
        kind: header.kind,
        params: header.params,
        salt: header.salt,
        records,
    })
}

/// Seals `records` as a key-file vault (or a passphrase vault with `params` and `salt`) under
/// [`KEY`], as a save does.
pub fn seal(
    generation: u64,
    params: Option<KdfParams>,
    salt: [u8; 16],
    records: &Records,
) -> Result<Vec<u8>> {
    format::seal(&unlocked(params, salt), generation, records)
}

/// Seals arbitrary `plaintext` under a valid header and [`KEY`], so a fuzzer gets past
/// AES-GCM to the record decoder with bytes no save would write.
pub fn seal_plaintext(generation: u64, plaintext: &[u8]) -> Result<Vec<u8>> {
    format::seal_with(
        &unlocked(None, [0; 16]),
        generation,
        plaintext.len(),
        |out| {
            out.extend_from_slice(plaintext);
            Ok(())
        },
    )
}

fn unlocked(params: Option<KdfParams>, salt: [u8; 16]) -> Unlocked {
    Unlocked {
        kind: if params.is_some() {
            KeyKind::Passphrase
        } else {
            KeyKind::KeyFile
        },
        params,
        salt: if params.is_some() { salt } else { [0; 16] },
        key: Key32::from_bytes(KEY),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::vault::Record;

    #[test]
    fn sealed_records_decode_and_raw_plaintext_reaches_the_record_decoder() {
        let mut records = Records::new();
        records.insert("a".into(), Record::default());
        let bytes = seal(7, None, [0; 16], &records).unwrap();
        let d = decode(&bytes).unwrap();
        assert_eq!((d.generation, d.records), (7, records));
        let raw = seal_plaintext(3, br#"{"schema":1,"accounts":{}}"#).unwrap();
        assert_eq!(decode(&raw).unwrap().generation, 3);
        let bad = seal_plaintext(3, b"not json").unwrap();
        assert!(decode(&bad).is_err());
    }
}
