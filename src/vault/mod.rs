//! The encrypted token vault: account records, AES-256-GCM under an Argon2id passphrase or a key
//! file, atomic replace, advisory locking and compare-and-swap saves. See docs/vault-format.md.
//!
//! Callers use [`Vault`]: [`Vault::read`] needs no lock, [`Vault::update`] runs a closure inside
//! lock → re-read → closure → compare-and-swap save → unlock, so concurrent processes (the
//! dashboard, a background refresh, `--export` in another shell) never lose each other's work.
//! A missing vault reads as empty and is created by the first update, never by a read.
//!
//! The vault knows an account only by its name and a provider only by its name.

pub mod backend;
mod coord;
mod error;
pub mod etcd;
mod format;
#[cfg(feature = "fuzzing")]
pub mod fuzzing;
mod key;
mod keycache;
pub mod migrate;
pub mod os_keyring;
pub mod private;
mod record;
mod store;

pub use backend::Backend;
pub use coord::{AccountLock, BackendHealth, Changes, Fence, account_lock_path, lock_account_file};
pub use error::{Result, VaultError};
pub use format::{FORMAT_VERSION, HEADER_LEN, SCHEMA_VERSION};
pub use key::{
    DerivedKey, ENV_KEY_FILE, ENV_PASSPHRASE, ENV_PASSPHRASE_FILE, KdfParams, KeyEnv, KeyKind,
    KeySource, PromptPurpose, generate_key_file, prompt_terminal, read_key_file,
    read_passphrase_file,
};
pub use record::{
    Claims, LoginGrant, NarrowedToken, Record, Records, RefreshAttempt, RefreshOutcome,
    StoredState, UnixSeconds,
};
pub use store::{FileStore, Opened, Rollback, Snapshot, Store, StoreLock, Tokens};

use std::path::{Path, PathBuf};

/// Environment variable overriding the vault location (same as `--vault`).
pub const ENV_VAULT: &str = "AUTHDECK_VAULT";

/// The default vault path: `<data dir>/vault.bin` (e.g. `~/.local/share/authdeck/vault.bin`).
pub fn default_path() -> Result<PathBuf> {
    directories::ProjectDirs::from("", "", "authdeck")
        .map(|d| d.data_dir().join("vault.bin"))
        .ok_or(VaultError::NoDataDir)
}

/// Where this machine keeps vault high-water marks (HARD-8): the state directory
/// (`~/.local/state/authdeck/high-water` on Linux), away from the vault's own directory.
pub fn high_water_dir() -> Option<PathBuf> {
    let dirs = directories::ProjectDirs::from("", "", "authdeck")?;
    let base = dirs
        .state_dir()
        .map_or_else(|| dirs.data_local_dir().join("state"), Path::to_path_buf);
    Some(base.join("high-water"))
}

/// The vault: a handle on a [`Store`] with the read and update operations callers need.
pub struct Vault {
    store: std::sync::Arc<dyn Store>,
    /// The vault decrypted by `open` (to check the key), until a caller takes it.
    opened: std::sync::Mutex<Option<Opened>>,
}

impl std::fmt::Debug for Vault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Vault({})", self.store.location().display())
    }
}

impl Vault {
    /// Opens the vault file at `path`. An existing vault is decrypted once here, so a wrong key
    /// fails now ([`VaultError::WrongKey`]); a missing one is fine and is created by the first
    /// [`update`](Self::update).
    pub fn open(path: impl Into<PathBuf>, key: KeySource) -> Result<Vault> {
        Self::open_store(Box::new(FileStore::new(path, key)))
    }

    /// Opens any [`Store`] (a custom `FileStore`, or another backend); checks the key as `open`.
    pub fn open_store(store: Box<dyn Store>) -> Result<Vault> {
        let opened = store.load_opened()?;
        Ok(Vault {
            store: store.into(),
            opened: std::sync::Mutex::new(opened),
        })
    }

    /// Another handle on the same store, and so the same key: what a process that rebuilds its
    /// app around an open vault uses (the agent, after account files changed), so the key is
    /// neither copied nor derived again (AGENT-6).
    pub fn share(&self) -> Vault {
        Vault {
            store: self.store.clone(),
            opened: std::sync::Mutex::new(None),
        }
    }

    /// The snapshot `open` decrypted, once (later calls get `None`), so a caller that caches
    /// snapshots by generation does not decrypt the same vault twice at start-up.
    ///
    /// A record that fails the full parse gives `None` here; the caller's next read
    /// ([`snapshot`](Self::snapshot)) reports it.
    pub fn take_opened(&self) -> Option<Snapshot> {
        let opened = self.opened.lock().ok().and_then(|mut s| s.take())?;
        opened.snapshot().ok()
    }

    /// The token fields of every record (see [`Tokens`]): from what `open` decrypted while
    /// nobody took it, else read now. `--export`, `token` and the other token commands answer
    /// from these when the account index is current, without parsing the full records.
    pub fn tokens(&self) -> Result<std::sync::Arc<Tokens>> {
        if let Some(opened) = self.opened.lock().ok().as_ref().and_then(|s| s.as_ref()) {
            return Ok(opened.tokens());
        }
        Ok(match self.store.load_opened()? {
            Some(o) => o.tokens(),
            None => std::sync::Arc::new(Tokens {
                generation: 0,
                records: Records::new(),
            }),
        })
    }

    /// Creates a new, empty vault at `path` (`authdeck vault init`); fails if one exists.
    pub fn create(path: impl Into<PathBuf>, key: KeySource) -> Result<Vault> {
        Self::create_store(Box::new(FileStore::new(path, key)))
    }

    /// Creates a new, empty vault in `store`; fails if one exists.
    pub fn create_store(store: Box<dyn Store>) -> Result<Vault> {
        let lock = store.lock()?;
        if store.exists()? {
            return Err(VaultError::AlreadyExists {
                path: store.location().to_path_buf(),
            });
        }
        store.save_if_generation(&lock, 0, &Records::new())?;
        drop(lock);
        Ok(Vault {
            store: store.into(),
            opened: std::sync::Mutex::new(None),
        })
    }

    /// Opens the vault at `path` with the key named by the environment (`AUTHDECK_KEY_FILE`,
    /// `AUTHDECK_PASSPHRASE`, `AUTHDECK_PASSPHRASE_FILE`), else asks on the terminal. The
    /// header says which kind of key to ask for; a missing vault asks for a new passphrase.
    pub fn open_from_env(path: impl Into<PathBuf>) -> Result<Vault> {
        let path = path.into();
        let expected = FileStore::new(&path, KeySource::KeyFile(PathBuf::new())).key_kind()?;
        let purpose = if expected.is_some() {
            PromptPurpose::Unlock
        } else {
            PromptPurpose::New
        };
        let key = KeyEnv::from_process().resolve(&path, expected, purpose, prompt_terminal)?;
        let mut store = FileStore::new(path, key);
        if let Some(dir) = high_water_dir() {
            store = store.with_high_water(dir);
        }
        Self::open_store(Box::new(store))
    }

    /// Whether the vault looks rolled back to an older copy (HARD-8); see [`Rollback`].
    pub fn rollback(&self) -> Result<Option<Rollback>> {
        self.store.rollback()
    }

    /// The store behind this vault, shared (e.g. to take an account lock on a blocking thread).
    pub fn store(&self) -> std::sync::Arc<dyn Store> {
        self.store.clone()
    }

    /// New generations as other writers save them, when the backend can tell (ETCD-7).
    pub fn changes(&self) -> Option<Changes> {
        self.store.changes()
    }

    /// The backend's health as of its last request (the dashboard's header).
    pub fn health(&self) -> BackendHealth {
        self.store.health()
    }

    /// The vault's file when it is a local file (`None` on a shared backend): for caches that
    /// live beside it.
    pub fn local_file(&self) -> Option<&Path> {
        self.store.local_file()
    }

    /// The vault's location.
    pub fn path(&self) -> &Path {
        self.store.location()
    }

    /// Whether the vault exists yet.
    pub fn exists(&self) -> Result<bool> {
        self.store.exists()
    }

    /// The current records without taking the lock; empty when there is no vault yet.
    pub fn read(&self) -> Result<Records> {
        Ok(self.snapshot()?.records)
    }

    /// The current generation and records; generation 0 and no records when there is no vault.
    pub fn snapshot(&self) -> Result<Snapshot> {
        Ok(self.store.load()?.unwrap_or(Snapshot {
            generation: 0,
            records: Records::new(),
        }))
    }

    /// The current generation (0: no vault) from the header alone, without decrypting: a cheap
    /// test of whether a [`Snapshot`] taken earlier is still current.
    pub fn generation(&self) -> Result<u64> {
        self.store.generation()
    }

    /// One account's record, if present.
    pub fn get(&self, name: &str) -> Result<Option<Record>> {
        Ok(self.read()?.remove(name))
    }

    /// Read-modify-write under the lock: takes the lock, re-reads the newest generation, runs
    /// `f`, saves with compare-and-swap if `f` changed anything, releases the lock. If `f` fails
    /// nothing is written. Creates the vault if it is missing and `f` adds something.
    pub fn update<T, E>(&self, f: impl FnOnce(&mut Records) -> Result<T, E>) -> Result<T, E>
    where
        E: From<VaultError>,
    {
        let lock = self.store.lock()?;
        let snap = self.snapshot()?;
        let mut records = snap.records.clone();
        let out = f(&mut records)?;
        if records != snap.records {
            self.store
                .save_if_generation(&lock, snap.generation, &records)?;
        }
        drop(lock);
        Ok(out)
    }

    /// Like [`update`](Self::update), and also returns the vault as it is afterwards (the
    /// generation just saved and its records), so a caller caching snapshots needs no re-read.
    pub fn update_snapshot<T, E>(
        &self,
        f: impl FnOnce(&mut Records) -> Result<T, E>,
    ) -> Result<(T, Snapshot), E>
    where
        E: From<VaultError>,
    {
        self.update_snapshot_fenced(&[], f)
    }

    /// [`update_snapshot`](Self::update_snapshot) for a change made under account locks: the
    /// save is refused ([`VaultError::LockLost`]) unless every fence still holds (ETCD-4).
    pub fn update_snapshot_fenced<T, E>(
        &self,
        fences: &[Fence],
        f: impl FnOnce(&mut Records) -> Result<T, E>,
    ) -> Result<(T, Snapshot), E>
    where
        E: From<VaultError>,
    {
        let lock = self.store.lock()?;
        let snap = self.snapshot()?;
        let mut records = snap.records.clone();
        let out = f(&mut records)?;
        let generation = if records == snap.records {
            snap.generation
        } else if fences.is_empty() {
            self.store
                .save_if_generation(&lock, snap.generation, &records)?
        } else {
            self.store
                .save_fenced(&lock, snap.generation, &records, fences)?
        };
        drop(lock);
        Ok((
            out,
            Snapshot {
                generation,
                records,
            },
        ))
    }

    /// Re-encrypts the vault under a new key or passphrase, atomically (`vault passwd`).
    pub fn rekey(&self, new_key: KeySource) -> Result<()> {
        let lock = self.store.lock()?;
        let Some(snap) = self.store.load()? else {
            return Err(VaultError::NotFound {
                path: self.path().to_path_buf(),
            });
        };
        self.store
            .rekey_if_generation(&lock, snap.generation, &snap.records, new_key)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key_vault(dir: &Path) -> (PathBuf, KeySource) {
        let key = dir.join("vault.key");
        generate_key_file(&key).unwrap();
        (dir.join("vault.bin"), KeySource::KeyFile(key))
    }

    fn add(vault: &Vault, name: &str) -> (usize, Snapshot) {
        vault
            .update_snapshot(|r| {
                r.insert(name.to_string(), Record::default());
                Ok::<_, VaultError>(r.len())
            })
            .unwrap()
    }

    #[test]
    fn generation_is_read_from_the_header_and_update_snapshot_returns_the_saved_one() {
        let dir = tempfile::tempdir().unwrap();
        let (path, key) = key_vault(dir.path());
        let missing = Vault::open(&path, key.clone()).unwrap();
        assert_eq!(missing.generation().unwrap(), 0, "no vault yet");
        let vault = Vault::create(&path, key.clone()).unwrap();
        assert_eq!(vault.generation().unwrap(), 1);
        let (len, snap) = add(&vault, "a");
        assert_eq!(len, 1);
        assert_eq!(snap.generation, 2);
        assert_eq!(vault.generation().unwrap(), 2);
        assert_eq!(
            snap,
            vault.snapshot().unwrap(),
            "the returned snapshot is what was saved"
        );
        // Another handle's save shows up in the header.
        let other = Vault::open(&path, key).unwrap();
        add(&other, "b");
        assert_eq!(vault.generation().unwrap(), 3);
        // No change, no save: the generation stays.
        let (_, same) = vault.update_snapshot(|_| Ok::<_, VaultError>(())).unwrap();
        assert_eq!(same.generation, 3);
    }

    #[test]
    fn generation_of_a_file_that_is_not_a_vault_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let (path, key) = key_vault(dir.path());
        let vault = Vault::create(&path, key).unwrap();
        std::fs::write(&path, b"not a vault at all").unwrap();
        assert!(vault.generation().is_err());
    }

    #[test]
    fn take_opened_gives_the_snapshot_decrypted_at_open_once() {
        let dir = tempfile::tempdir().unwrap();
        let (path, key) = key_vault(dir.path());
        let created = Vault::create(&path, key.clone()).unwrap();
        assert!(created.take_opened().is_none(), "create decrypts nothing");
        add(&created, "a");
        let vault = Vault::open(&path, key).unwrap();
        let opened = vault.take_opened().unwrap();
        assert_eq!(opened.generation, 2);
        assert!(opened.records.contains_key("a"));
        assert!(vault.take_opened().is_none());
    }

    /// `tokens` parses only the fields that hand out an access token (no refresh token, ID
    /// token or client secret is copied into it), the same from what `open` decrypted and from
    /// a fresh read; the full records are still there for `take_opened`.
    #[test]
    fn tokens_hold_only_the_token_fields_and_the_full_records_stay_whole() {
        use crate::secret::{AccessToken, ClientSecret, IdToken, RefreshToken};
        let dir = tempfile::tempdir().unwrap();
        let (path, key) = key_vault(dir.path());
        let created = Vault::create(&path, key.clone()).unwrap();
        let full = Record {
            provider: "oidc".into(),
            access_token: Some(AccessToken::new("at-1")),
            refresh_token: Some(RefreshToken::new("rt-1")),
            id_token: Some(IdToken::new("id-1")),
            client_secret: Some(ClientSecret::new("cs-1")),
            obtained_at: Some(100),
            expires_at: Some(200),
            state: StoredState::Valid,
            refresh_count: 3,
            ..Record::default()
        };
        created
            .update(|r| {
                r.insert("a".into(), full.clone());
                Ok::<_, VaultError>(())
            })
            .unwrap();
        let only_tokens = Record {
            access_token: Some(AccessToken::new("at-1")),
            obtained_at: Some(100),
            expires_at: Some(200),
            state: StoredState::Valid,
            ..Record::default()
        };
        let vault = Vault::open(&path, key).unwrap();
        let tokens = vault.tokens().unwrap();
        assert_eq!(tokens.generation, 2);
        assert_eq!(tokens.records.get("a"), Some(&only_tokens));
        let opened = vault.take_opened().expect("the full records");
        assert_eq!(opened.records.get("a"), Some(&full));
        // Taken: read again, the same token fields.
        assert_eq!(vault.tokens().unwrap(), tokens);
        assert_eq!(Tokens::of(&opened), *tokens);
    }

    fn with_token(vault: &Vault, name: &str, refresh: &str) {
        vault
            .update(|r| {
                r.insert(
                    name.to_string(),
                    Record {
                        refresh_token: Some(crate::secret::RefreshToken::new(refresh)),
                        ..Record::default()
                    },
                );
                Ok::<_, VaultError>(())
            })
            .unwrap();
    }

    fn backup_of(path: &Path, key: KeySource) -> Result<Snapshot> {
        let bak = FileStore::new(path, key.clone()).backup_path();
        Vault::open(bak, key).and_then(|v| v.snapshot())
    }

    /// HARD-7: after `vault passwd` the `.bak` is re-sealed under the new key in the same locked
    /// save: the old key opens neither file, the new one opens both.
    #[test]
    fn rekey_reseals_the_backup_under_the_new_key() {
        let dir = tempfile::tempdir().unwrap();
        let (path, old) = key_vault(dir.path());
        let vault = Vault::create(&path, old.clone()).unwrap();
        with_token(&vault, "a", "rt-a");
        with_token(&vault, "a", "rt-a2");
        let new_file = dir.path().join("new.key");
        generate_key_file(&new_file).unwrap();
        let new = KeySource::KeyFile(new_file);
        vault.rekey(new.clone()).unwrap();
        assert!(matches!(
            backup_of(&path, old.clone()),
            Err(VaultError::WrongKey { .. })
        ));
        assert!(Vault::open(&path, old).is_err());
        let bak = backup_of(&path, new.clone()).unwrap();
        assert_eq!(bak.generation, 3, "the backup is the replaced generation");
        let rt = bak.records["a"].refresh_token.as_ref().unwrap();
        assert_eq!(rt.secret(), "rt-a2");
        assert_eq!(vault.rollback().unwrap(), None);
    }

    /// HARD-7: removing an account (logout, revoke) purges it from the `.bak` in the same save;
    /// the other accounts stay in it; a save that removes nothing keeps the plain backup.
    #[test]
    fn removing_an_account_purges_it_from_the_backup() {
        let dir = tempfile::tempdir().unwrap();
        let (path, key) = key_vault(dir.path());
        let vault = Vault::create(&path, key.clone()).unwrap();
        with_token(&vault, "gone", "rt-gone");
        with_token(&vault, "kept", "rt-kept");
        let bak = std::fs::read(FileStore::new(&path, key.clone()).backup_path()).unwrap();
        assert!(!bak.is_empty());
        vault
            .update(|r| {
                r.remove("gone");
                Ok::<_, VaultError>(())
            })
            .unwrap();
        let bak = backup_of(&path, key.clone()).unwrap();
        assert_eq!(bak.generation, 3);
        assert!(!bak.records.contains_key("gone"), "purged from the backup");
        assert!(bak.records.contains_key("kept"));
        // A later save of another handle (names not cached) that removes nothing links as before.
        let other = Vault::open(&path, key.clone()).unwrap();
        with_token(&other, "kept", "rt-kept2");
        let bak = backup_of(&path, key).unwrap();
        assert_eq!(bak.generation, 4);
        assert!(!bak.records.contains_key("gone"));
    }

    /// HARD-8: a vault copied back from its `.bak` (or any older copy) is reported: its
    /// generation is not above the backup's; the next save clears the warning.
    #[test]
    fn a_vault_rolled_back_to_its_backup_is_reported() {
        let dir = tempfile::tempdir().unwrap();
        let (path, key) = key_vault(dir.path());
        let vault = Vault::create(&path, key.clone()).unwrap();
        with_token(&vault, "a", "rt-1");
        with_token(&vault, "a", "rt-2");
        assert_eq!(vault.rollback().unwrap(), None);
        let bak = FileStore::new(&path, key.clone()).backup_path();
        std::fs::copy(&bak, &path).unwrap();
        assert_eq!(
            vault.rollback().unwrap(),
            Some(Rollback::NotAboveBackup {
                generation: 2,
                backup: 2
            })
        );
        let text = vault.rollback().unwrap().unwrap().to_string();
        assert!(text.contains("rolled back"), "{text}");
        with_token(&vault, "a", "rt-3");
        assert_eq!(vault.rollback().unwrap(), None);
    }

    /// HARD-8: with a high-water mark kept elsewhere, an old copy put back without its backup is
    /// still reported; a forged mark (no key) is ignored, not trusted.
    #[test]
    fn the_high_water_mark_catches_a_rollback_without_a_backup() {
        let dir = tempfile::tempdir().unwrap();
        let marks = dir.path().join("state");
        let (path, key) = key_vault(dir.path());
        let store = || FileStore::new(&path, key.clone()).with_high_water(&marks);
        let vault = Vault::create_store(Box::new(store())).unwrap();
        with_token(&vault, "a", "rt-1");
        let old_copy = std::fs::read(&path).unwrap();
        with_token(&vault, "a", "rt-2");
        with_token(&vault, "a", "rt-3");
        std::fs::write(&path, &old_copy).unwrap();
        std::fs::remove_file(store().backup_path()).unwrap();
        let fresh = Vault::open_store(Box::new(store())).unwrap();
        assert_eq!(
            fresh.rollback().unwrap(),
            Some(Rollback::BelowHighWater {
                generation: 2,
                high_water: 4
            })
        );
        // Without the high-water mark and the backup, nothing can be told.
        let plain = Vault::open(&path, key.clone()).unwrap();
        assert_eq!(plain.rollback().unwrap(), None);
        // A mark written without the key is not believed (and does not hide anything).
        let mark = std::fs::read_dir(&marks)
            .unwrap()
            .next()
            .unwrap()
            .unwrap()
            .path();
        let mut forged = 1u64.to_le_bytes().to_vec();
        forged.extend_from_slice(&[0u8; 32]);
        std::fs::write(&mark, forged).unwrap();
        assert_eq!(fresh.rollback().unwrap(), None);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let m = std::fs::metadata(&marks).unwrap().permissions().mode() & 0o777;
            assert_eq!(m, 0o700);
        }
    }
}
