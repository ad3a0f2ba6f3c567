//! [`FileStore`]: the default store, one encrypted file next to its `.bak` and `.lock`.

use super::atomic::{BackupPlan, ensure_dir, fix_file_mode, parent_dir, sibling, write_atomic};
use super::high_water::HighWater;
use super::{Opened, Rollback, Snapshot, Store, StoreLock, Tokens};
use crate::vault::coord::AccountLock;
use crate::vault::error::{Result, VaultError};
use crate::vault::format::{self, Ctx, Header, Unlocked};
use crate::vault::key::{self, KdfParams, KeyKind, KeySource};
use crate::vault::keycache::KeyCache;
use crate::vault::private::file_options as private_options;
use crate::vault::record::Records;
use std::collections::BTreeSet;
use std::fs::{self, File};
use std::io::ErrorKind;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Longest sleep between attempts to take the lock: short, because a waiter that oversleeps
/// delays every process queued behind it (`File::lock` itself cannot time out).
const MAX_LOCK_PAUSE: Duration = Duration::from_millis(2);

/// The default store: one encrypted file, a `.bak` of the previous generation, a `.lock` file.
#[derive(Debug)]
pub struct FileStore {
    path: PathBuf,
    /// The key source and the last key unlocked (Argon2id runs once per process, not per read).
    keys: KeyCache,
    /// The account names of the last generation loaded, so a save can tell cheaply whether it
    /// removes an account (whose tokens must then leave the `.bak` too, HARD-7).
    names: Mutex<Option<(u64, BTreeSet<String>)>>,
    /// Where this machine keeps the vault's high-water mark (HARD-8); `None`: not kept.
    high_water: Option<HighWater>,
    lock_timeout: Duration,
}

impl FileStore {
    /// A store for the vault at `path`, unlocked with `source`.
    pub fn new(path: impl Into<PathBuf>, source: KeySource) -> Self {
        let path = path.into();
        Self {
            keys: KeyCache::new(&path, source, KdfParams::DEFAULT),
            path,
            names: Mutex::new(None),
            high_water: None,
            lock_timeout: Duration::from_secs(30),
        }
    }

    /// Argon2id parameters for a vault this store creates or re-keys (tests use tiny ones;
    /// existing vaults always use the parameters in their header).
    pub fn with_kdf_params(mut self, params: KdfParams) -> Self {
        self.keys.set_new_params(params);
        self
    }

    /// How long [`Store::lock`] waits for another process before giving up.
    pub fn with_lock_timeout(mut self, timeout: Duration) -> Self {
        self.lock_timeout = timeout;
        self
    }

    /// Keeps a high-water mark of the generations saved in `dir` (outside the vault's
    /// directory, so copying an old vault back does not roll the mark back too), signed with the
    /// vault key so that it cannot be forged without it (HARD-8).
    pub fn with_high_water(mut self, dir: impl Into<PathBuf>) -> Self {
        self.high_water = Some(HighWater::new(dir.into()));
        self
    }

    /// The backup of the previous generation: `<vault>.bak`.
    pub fn backup_path(&self) -> PathBuf {
        sibling(&self.path, ".bak")
    }

    /// The advisory lock file: `<vault>.lock`.
    pub fn lock_path(&self) -> PathBuf {
        sibling(&self.path, ".lock")
    }

    /// Reads only the header: which key the vault expects (`None` when there is no vault).
    pub fn key_kind(&self) -> Result<Option<KeyKind>> {
        Ok(self.header_only()?.map(|h| h.kind))
    }

    /// The Argon2id parameters in the header (`None` for no vault or a key-file vault).
    pub fn kdf_params(&self) -> Result<Option<KdfParams>> {
        Ok(self.header_only()?.and_then(|h| h.params))
    }

    /// The generation in the header, without decrypting (0 when there is no vault): a cheap way
    /// to notice that another process saved.
    pub fn generation(&self) -> Result<u64> {
        Ok(self.header_only()?.map_or(0, |h| h.generation))
    }

    /// The header alone: reads its bytes only, not the (possibly large) body. `parse_header`
    /// looks at nothing past the header, so the answer is the one the whole file would give.
    fn header_only(&self) -> Result<Option<Header>> {
        use std::io::Read;
        let file = match fs::File::open(&self.path) {
            Ok(f) => f,
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(VaultError::io("cannot read vault", &self.path, e)),
        };
        let mut head = Vec::with_capacity(format::HEADER_LEN);
        file.take(format::HEADER_LEN as u64)
            .read_to_end(&mut head)
            .map_err(|e| VaultError::io("cannot read vault", &self.path, e))?;
        format::parse_header(&head, &self.ctx()).map(Some)
    }

    fn ctx(&self) -> Ctx<'_> {
        Ctx {
            path: &self.path,
            backup: self.backup_path(),
        }
    }

    fn read_bytes(&self) -> Result<Option<Vec<u8>>> {
        match fs::read(&self.path) {
            Ok(b) => Ok(Some(b)),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
            Err(e) => Err(VaultError::io("cannot read vault", &self.path, e)),
        }
    }

    fn read_header(&self) -> Result<Option<(Header, Vec<u8>)>> {
        let Some(bytes) = self.read_bytes()? else {
            return Ok(None);
        };
        let header = format::parse_header(&bytes, &self.ctx())?;
        Ok(Some((header, bytes)))
    }

    /// The key for an existing vault's header (the one routine every backend shares).
    fn unlock_for(&self, header: &Header) -> Result<Unlocked> {
        self.keys.unlock_for(header)
    }

    /// Derives the key of this existing passphrase vault from `pass` and checks it against the
    /// header (AGENT-6: the agent keeps this key, never the passphrase). A wrong passphrase is
    /// [`VaultError::WrongKey`]; nothing is written.
    pub fn derive_key(&self, pass: &crate::secret::Passphrase) -> Result<key::DerivedKey> {
        let Some(header) = self.header_only()? else {
            return Err(VaultError::NotFound {
                path: self.path.clone(),
            });
        };
        let Some(params) = header.params else {
            return Err(VaultError::KeyKindMismatch {
                path: self.path.clone(),
                expected: header.kind,
                given: KeyKind::Passphrase,
            });
        };
        let key = key::derive_key(pass, &header.salt, params, &self.path)?;
        if !header.key_matches(&key) {
            return Err(VaultError::WrongKey {
                path: self.path.clone(),
            });
        }
        Ok(key::DerivedKey::new(params, header.salt, key))
    }

    /// Checks the CAS condition and returns the current vault (if any): the key it is under,
    /// its header and its bytes.
    fn check_generation(&self, expected: u64) -> Result<Option<(Unlocked, Header, Vec<u8>)>> {
        let current = self.read_header()?;
        let found = current.as_ref().map_or(0, |(h, _)| h.generation);
        if found != expected {
            return Err(VaultError::Conflict {
                path: self.path.clone(),
                expected,
                found,
            });
        }
        current
            .map(|(h, bytes)| Ok((self.unlock_for(&h)?, h, bytes)))
            .transpose()
    }

    /// The account names in the current vault (generation `header.generation`): from the last
    /// load when it was of this generation, else by decrypting `bytes`.
    fn current_names(
        &self,
        key: &Unlocked,
        header: &Header,
        bytes: &[u8],
    ) -> Result<BTreeSet<String>> {
        if let Some((generation, names)) = lock_unpoisoned(&self.names).as_ref()
            && *generation == header.generation
        {
            return Ok(names.clone());
        }
        let records = format::open(bytes, header, key, &self.ctx())?;
        Ok(records.into_keys().collect())
    }

    /// What to do with the `.bak` when `records` replace the current vault (HARD-7): link it as
    /// it is, unless this save removes an account, whose tokens must not stay in the backup.
    fn backup_plan(
        &self,
        current: Option<&(Unlocked, Header, Vec<u8>)>,
        records: &Records,
    ) -> Result<BackupPlan> {
        let Some((key, header, bytes)) = current else {
            return Ok(BackupPlan::Nothing);
        };
        let names = self.current_names(key, header, bytes)?;
        if names.iter().all(|n| records.contains_key(n)) {
            return Ok(BackupPlan::LinkCurrent);
        }
        let mut previous = format::open(bytes, header, key, &self.ctx())?;
        previous.retain(|name, _| records.contains_key(name));
        Ok(BackupPlan::Sealed(format::seal(
            key,
            header.generation,
            &previous,
        )?))
    }

    fn write_generation(
        &self,
        key: &Unlocked,
        generation: u64,
        records: &Records,
        backup: BackupPlan,
    ) -> Result<u64> {
        let bytes = format::seal(key, generation, records)?;
        write_atomic(&self.path, &self.backup_path(), &bytes, backup)?;
        self.remember_names(generation, records);
        if let Some(high_water) = &self.high_water {
            high_water.raise(&self.path, &key.key, generation);
        }
        Ok(generation)
    }

    fn remember_names(&self, generation: u64, records: &Records) {
        *lock_unpoisoned(&self.names) = Some((generation, records.keys().cloned().collect()));
    }

    /// The generation in the `.bak`'s header, if there is a readable one.
    fn backup_generation(&self) -> Option<u64> {
        use std::io::Read;
        let file = fs::File::open(self.backup_path()).ok()?;
        let mut head = Vec::with_capacity(format::HEADER_LEN);
        file.take(format::HEADER_LEN as u64)
            .read_to_end(&mut head)
            .ok()?;
        format::parse_header(&head, &self.ctx())
            .ok()
            .map(|h| h.generation)
    }
}

impl Store for FileStore {
    fn location(&self) -> &Path {
        &self.path
    }

    fn lock_account(&self, name: &str) -> Result<AccountLock> {
        crate::vault::coord::lock_account_file(&self.path, name)
    }

    fn key_kind(&self) -> Result<Option<KeyKind>> {
        FileStore::key_kind(self)
    }

    fn local_file(&self) -> Option<&Path> {
        Some(&self.path)
    }

    fn generation(&self) -> Result<u64> {
        FileStore::generation(self)
    }

    fn exists(&self) -> Result<bool> {
        self.path
            .try_exists()
            .map_err(|e| VaultError::io("cannot inspect vault", &self.path, e))
    }

    fn load(&self) -> Result<Option<Snapshot>> {
        let Some((header, bytes)) = self.read_header()? else {
            return Ok(None);
        };
        let key = self.unlock_for(&header)?;
        let records = format::open(&bytes, &header, &key, &self.ctx())?;
        self.remember_names(header.generation, &records);
        fix_file_mode(&self.path);
        Ok(Some(Snapshot {
            generation: header.generation,
            records,
        }))
    }

    fn load_opened(&self) -> Result<Option<Opened>> {
        let Some((header, bytes)) = self.read_header()? else {
            return Ok(None);
        };
        let key = self.unlock_for(&header)?;
        let plain = format::decrypt(&bytes, &header, &key, &self.ctx())?;
        let records = format::parse_tokens(&plain, &self.ctx())?;
        fix_file_mode(&self.path);
        Ok(Some(Opened::Decrypted {
            tokens: std::sync::Arc::new(Tokens {
                generation: header.generation,
                records,
            }),
            plain,
            path: self.path.clone(),
        }))
    }

    fn rollback(&self) -> Result<Option<Rollback>> {
        let Some(header) = self.header_only()? else {
            return Ok(None);
        };
        let generation = header.generation;
        if let Some(backup) = self.backup_generation()
            && backup >= generation
        {
            return Ok(Some(Rollback::NotAboveBackup { generation, backup }));
        }
        let Some(high_water) = &self.high_water else {
            return Ok(None);
        };
        let key = self.unlock_for(&header)?;
        Ok(high_water
            .read(&self.path, &key.key)
            .filter(|&high| high > generation)
            .map(|high_water| Rollback::BelowHighWater {
                generation,
                high_water,
            }))
    }

    fn lock(&self) -> Result<StoreLock> {
        ensure_dir(&self.path)?;
        let lock_path = self.lock_path();
        let file = private_options()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&lock_path)
            .map_err(|e| VaultError::io("cannot open lock file", &lock_path, e))?;
        let deadline = Instant::now() + self.lock_timeout;
        let mut pause = Duration::from_micros(100);
        loop {
            match file.try_lock() {
                Ok(()) => return Ok(StoreLock::new(Box::new(file))),
                Err(fs::TryLockError::WouldBlock) if Instant::now() < deadline => {
                    std::thread::sleep(pause);
                    pause = (pause * 2).min(MAX_LOCK_PAUSE);
                }
                Err(fs::TryLockError::WouldBlock) => {
                    return Err(VaultError::LockTimeout {
                        path: self.path.clone(),
                    });
                }
                Err(fs::TryLockError::Error(e)) => {
                    return Err(VaultError::io("cannot lock", &lock_path, e));
                }
            }
        }
    }

    fn save_if_generation(
        &self,
        _lock: &StoreLock,
        expected: u64,
        records: &Records,
    ) -> Result<u64> {
        let current = self.check_generation(expected)?;
        let backup = self.backup_plan(current.as_ref(), records)?;
        let Some((key, _, _)) = current else {
            let key = self.keys.unlock_new(None)?;
            let written = self.write_generation(&key, expected + 1, records, backup);
            match &written {
                Ok(_) => self.keys.adopt(None, key),
                Err(_) => self.keys.discard_new(&key),
            }
            return written;
        };
        self.write_generation(&key, expected + 1, records, backup)
    }

    fn import(&self, _lock: &StoreLock, generation: u64, records: &Records) -> Result<()> {
        if self.check_generation(0).is_err() {
            return Err(VaultError::AlreadyExists {
                path: self.path.clone(),
            });
        }
        let key = self.keys.unlock_new(None)?;
        if let Err(e) = self.write_generation(&key, generation, records, BackupPlan::Nothing) {
            self.keys.discard_new(&key);
            return Err(e);
        }
        self.keys.adopt(None, key);
        Ok(())
    }

    fn retire(&self, _lock: &StoreLock, expected: u64) -> Result<String> {
        self.check_generation(expected)?;
        let aside = sibling(&self.path, ".migrated");
        fs::rename(&self.path, &aside)
            .map_err(|e| VaultError::io("cannot move the old vault aside", &self.path, e))?;
        let dir = parent_dir(&self.path);
        File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(|e| VaultError::io("cannot sync vault directory", dir, e))?;
        Ok(aside.display().to_string())
    }

    fn rekey_if_generation(
        &self,
        _lock: &StoreLock,
        expected: u64,
        records: &Records,
        new_key: KeySource,
    ) -> Result<u64> {
        let current = self.check_generation(expected)?;
        let key = self.keys.unlock_new(Some(&new_key))?;
        // HARD-7: the replaced generation goes to the `.bak` re-sealed under the new key (and
        // without any account this save drops), so the old key opens nothing any more.
        let written = (|| {
            let backup = match &current {
                Some((old_key, header, bytes)) => {
                    let mut previous = format::open(bytes, header, old_key, &self.ctx())?;
                    previous.retain(|name, _| records.contains_key(name));
                    BackupPlan::Sealed(format::seal(&key, header.generation, &previous)?)
                }
                None => BackupPlan::Nothing,
            };
            self.write_generation(&key, expected + 1, records, backup)
        })();
        let generation = match written {
            Ok(g) => g,
            Err(e) => {
                self.keys.discard_new(&key);
                return Err(e);
            }
        };
        // VAULT-7: an OS keyring item of the old key opens nothing any more.
        if let Some((old_key, _, _)) = &current {
            self.keys.retire_old(old_key, &key);
        }
        self.keys.adopt(Some(new_key), key);
        Ok(generation)
    }
}

/// A poisoned mutex here only guards a cache or a key source, both still consistent.
fn lock_unpoisoned<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}
