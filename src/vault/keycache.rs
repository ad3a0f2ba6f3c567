//! The vault key of one store: its key source and the last key unlocked, so Argon2id runs once
//! per process rather than once per read. The one unlock routine of every backend (the file
//! store and etcd alike): the header says which kind of key and which KDF parameters (VAULT-3).
//!
//! Not to be confused with the OS keyring (`os_keyring`), one of the key sources.

use super::error::{Result, VaultError};
use super::format::{Header, Unlocked};
use super::key::{self, KdfParams, KeyEnv, KeyKind, KeySource, PromptPurpose};
use super::os_keyring::{self, ItemId};
use crate::secret::Key32;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard, PoisonError};

/// A key source and its cached unlocked key.
#[derive(Debug)]
pub(crate) struct KeyCache {
    location: PathBuf,
    source: Mutex<KeySource>,
    new_params: KdfParams,
    cache: Mutex<Option<Unlocked>>,
}

/// A poisoned mutex here only guards a cache or a key source, both still consistent.
fn unpoisoned<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl KeyCache {
    pub fn new(location: &Path, source: KeySource, new_params: KdfParams) -> Self {
        Self {
            location: location.to_path_buf(),
            source: Mutex::new(source),
            new_params,
            cache: Mutex::new(None),
        }
    }

    /// Argon2id parameters for a vault created or re-keyed from now on.
    pub fn set_new_params(&mut self, params: KdfParams) {
        self.new_params = params;
    }

    /// Replaces the key source (after the header told which kind to ask for).
    pub fn set_source(&self, source: KeySource) {
        *unpoisoned(&self.source) = source;
        *unpoisoned(&self.cache) = None;
    }

    /// The key source. [`KeySource::not_yet`] (a vault opened before it existed, with no key
    /// named) is resolved here, once, from the environment or else the terminal, as a first
    /// login resolves it (MACH-1): a passphrase vault from `AUTHDECK_PASSPHRASE_FILE`, or the
    /// one-line error that says how to give a key when there is no terminal.
    fn source(&self, expected: Option<KeyKind>, purpose: PromptPurpose) -> Result<KeySource> {
        let current = unpoisoned(&self.source).clone();
        if !current.is_not_yet() {
            return Ok(current);
        }
        let resolved = KeyEnv::from_process().resolve(
            &self.location,
            expected,
            purpose,
            key::prompt_terminal,
        )?;
        *unpoisoned(&self.source) = resolved.clone();
        Ok(resolved)
    }

    /// The key for an existing vault's header: from the cache, or derived from the source.
    pub fn unlock_for(&self, header: &Header) -> Result<Unlocked> {
        let mut cache = unpoisoned(&self.cache);
        if let Some(u) = cache.as_ref()
            && u.kind == header.kind
            && u.params == header.params
            && u.salt == header.salt
            && header.key_matches(&u.key)
        {
            return Ok(u.clone());
        }
        let source = self.source(Some(header.kind), PromptPurpose::Unlock)?;
        if source.kind() != header.kind {
            return Err(VaultError::KeyKindMismatch {
                path: self.location.clone(),
                expected: header.kind,
                given: source.kind(),
            });
        }
        let key = match (&source, header.params) {
            (KeySource::Passphrase(p), Some(params)) => {
                key::derive_key(p, &header.salt, params, &self.location)?
            }
            (KeySource::Derived(d), Some(params))
                if d.salt == header.salt && d.params == params =>
            {
                d.key().clone()
            }
            // Derived for another salt: the vault was re-keyed since.
            (KeySource::Derived(_), Some(_)) => {
                return Err(VaultError::WrongKey {
                    path: self.location.clone(),
                });
            }
            (KeySource::KeyFile(f), _) => key::read_key_file(f)?,
            // VAULT-7: the header's salt field names the keyring item.
            (KeySource::OsKeyring, _) => self.keyring_load(ItemId(header.salt))?,
            (KeySource::Passphrase(_) | KeySource::Derived(_), None) => {
                return Err(VaultError::KeyKindMismatch {
                    path: self.location.clone(),
                    expected: KeyKind::KeyFile,
                    given: KeyKind::Passphrase,
                });
            }
        };
        if !header.key_matches(&key) {
            return Err(VaultError::WrongKey {
                path: self.location.clone(),
            });
        }
        let unlocked = Unlocked {
            kind: header.kind,
            params: header.params,
            salt: header.salt,
            key,
        };
        // A derived key is kept once, in locked memory, by its source (AGENT-6).
        if !matches!(source, KeySource::Derived(_)) {
            *cache = Some(unlocked.clone());
        }
        Ok(unlocked)
    }

    /// A key for a brand-new vault (fresh salt) from the current source, or from `other`.
    pub fn unlock_new(&self, other: Option<&KeySource>) -> Result<Unlocked> {
        let source = match other {
            Some(s) => s.clone(),
            None => self.source(None, PromptPurpose::New)?,
        };
        let unlocked = match &source {
            KeySource::Passphrase(p) => {
                let salt = crate::secret::random_bytes();
                Unlocked {
                    kind: KeyKind::Passphrase,
                    params: Some(self.new_params),
                    salt,
                    key: key::derive_key(p, &salt, self.new_params, &self.location)?,
                }
            }
            KeySource::KeyFile(f) => Unlocked {
                kind: KeyKind::KeyFile,
                params: None,
                salt: [0; 16],
                key: key::read_key_file(f)?,
            },
            KeySource::Derived(d) => Unlocked {
                kind: KeyKind::Passphrase,
                params: Some(d.params),
                salt: d.salt,
                key: d.key().clone(),
            },
            // VAULT-7: a fresh random key under a fresh item, stored before the vault is
            // written; `discard_new` removes it again if that write fails.
            KeySource::OsKeyring => {
                let id = ItemId::generate();
                let key = Key32::generate();
                let label = format!("authdeck vault key ({})", self.location.display());
                os_keyring::store(id, &key, label).map_err(|failure| VaultError::OsKeyring {
                    path: self.location.clone(),
                    failure,
                })?;
                Unlocked {
                    kind: KeyKind::OsKeyring,
                    params: None,
                    salt: id.0,
                    key,
                }
            }
        };
        Ok(unlocked)
    }

    fn keyring_load(&self, id: ItemId) -> Result<Key32> {
        os_keyring::load(id).map_err(|failure| VaultError::OsKeyring {
            path: self.location.clone(),
            failure,
        })
    }

    /// A key from `unlock_new` that was never used (the vault write failed): its keyring item,
    /// if it has one, is removed again (best effort).
    pub fn discard_new(&self, unused: &Unlocked) {
        if unused.kind == KeyKind::OsKeyring {
            self.forget_item(ItemId(unused.salt));
        }
    }

    /// After a re-key from `old` to `new` was written: the old key's keyring item, if it had
    /// one, opens nothing any more (the backup was re-sealed too, HARD-7) and is removed.
    pub fn retire_old(&self, old: &Unlocked, new: &Unlocked) {
        if old.kind == KeyKind::OsKeyring
            && (new.kind != KeyKind::OsKeyring || new.salt != old.salt)
        {
            self.forget_item(ItemId(old.salt));
        }
    }

    fn forget_item(&self, id: ItemId) {
        if let Err(e) = os_keyring::delete(id) {
            tracing::warn!(
                vault = %self.location.display(),
                item = ?id,
                error = %e,
                "could not remove an unused vault key from the OS keyring"
            );
        }
    }

    /// Makes `source` and its key current (after a successful create or re-key). A derived key
    /// is kept once, by its source (AGENT-6), so it is not cached a second time.
    pub fn adopt(&self, source: Option<KeySource>, unlocked: Unlocked) {
        let mut current = unpoisoned(&self.source);
        if let Some(s) = source {
            *current = s;
        }
        let derived = matches!(*current, KeySource::Derived(_));
        drop(current);
        *unpoisoned(&self.cache) = (!derived).then_some(unlocked);
    }
}
