//! The vault's high-water mark (HARD-8): the highest generation this machine saved, kept
//! outside the vault's directory and signed with the vault key, so that a vault copied back to
//! an older generation is noticed.

use crate::secret::Key32;
use crate::vault::private::{self, file_options as private_options};
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

/// Where this machine keeps high-water marks: one small file per vault in `dir`.
#[derive(Debug)]
pub(super) struct HighWater {
    dir: PathBuf,
}

impl HighWater {
    pub(super) fn new(dir: PathBuf) -> Self {
        Self { dir }
    }

    /// The file holding the high-water mark of the vault at `vault`.
    fn file(&self, vault: &Path) -> Option<PathBuf> {
        let canonical = fs::canonicalize(vault).ok()?;
        use sha2::Digest;
        let digest = sha2::Sha256::digest(canonical.as_os_str().as_encoded_bytes());
        let name: String = digest[..12].iter().map(|b| format!("{b:02x}")).collect();
        Some(self.dir.join(format!("{name}.hwm")))
    }

    /// The recorded high-water mark of the vault at `vault`, if present and signed with `key`
    /// for this vault.
    pub(super) fn read(&self, vault: &Path, key: &Key32) -> Option<u64> {
        let file = self.file(vault)?;
        let bytes = fs::read(&file).ok()?;
        let (gen_bytes, tag) = bytes.split_first_chunk::<8>()?;
        let generation = u64::from_le_bytes(*gen_bytes);
        let canonical = fs::canonicalize(vault).ok()?;
        let hmac = high_water_key(key);
        let msg = high_water_message(&canonical, generation);
        ring::hmac::verify(&hmac, &msg, tag).ok()?;
        Some(generation)
    }

    /// Records `generation` as the high-water mark if it is above the recorded one. Best
    /// effort: a mark that cannot be written only weakens the rollback warning.
    pub(super) fn raise(&self, vault: &Path, key: &Key32, generation: u64) {
        let Some(file) = self.file(vault) else {
            return;
        };
        if self.read(vault, key).is_some_and(|g| g >= generation) {
            return;
        }
        let Ok(canonical) = fs::canonicalize(vault) else {
            return;
        };
        let tag = ring::hmac::sign(
            &high_water_key(key),
            &high_water_message(&canonical, generation),
        );
        let mut bytes = generation.to_le_bytes().to_vec();
        bytes.extend_from_slice(tag.as_ref());
        let Some(dir) = file.parent() else {
            return;
        };
        let tmp = file.with_extension(format!("tmp-{}", std::process::id()));
        let written = private::create_dir(dir)
            .and_then(|()| {
                let mut f = private_options()
                    .write(true)
                    .create(true)
                    .truncate(true)
                    .open(&tmp)?;
                f.write_all(&bytes)
            })
            .and_then(|()| fs::rename(&tmp, &file));
        if written.is_err() {
            let _ = fs::remove_file(&tmp);
        }
    }
}

/// The high-water mark's MAC key: the vault key, used under its own domain in the message.
fn high_water_key(key: &Key32) -> ring::hmac::Key {
    ring::hmac::Key::new(ring::hmac::HMAC_SHA256, key.secret())
}

fn high_water_message(vault: &Path, generation: u64) -> Vec<u8> {
    let mut msg = b"authdeck high-water mark v1\0".to_vec();
    msg.extend_from_slice(&generation.to_le_bytes());
    msg.extend_from_slice(vault.as_os_str().as_encoded_bytes());
    msg
}
