//! The narrow storage interface (VAULT-4: locked read-modify-write, compare-and-swap saves)
//! and its file implementation.
//!
//! `Store` is all a caller's read-modify-write needs: load, lock, compare-and-swap save. A shared
//! backend (on an existing distributed store) would implement the same trait; `Vault` and
//! everything above it would not change.

use super::coord::{AccountLock, BackendHealth, Changes, Fence};
use super::error::{Result, VaultError};
use super::format::{self, Ctx, Header, Unlocked};
use super::key::{self, KdfParams, KeyKind, KeySource};
use super::keycache::KeyCache;
use super::private::{self, file_options as private_options};
use super::record::Records;
use crate::secret::Key32;
use std::collections::BTreeSet;
use std::fs::{self, File};
use std::io::{ErrorKind, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// A decrypted vault at one generation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Snapshot {
    /// The generation counter from the header; 0 means "no vault yet".
    pub generation: u64,
    /// The accounts.
    pub records: Records,
}

/// Proof that the caller holds the store's exclusive lock; released on drop.
pub struct StoreLock {
    _held: Box<dyn Send + Sync>,
}

impl StoreLock {
    /// Wraps whatever keeps a backend's lock held (a locked file, a lease, ...).
    pub fn new(held: Box<dyn Send + Sync>) -> Self {
        Self { _held: held }
    }
}

impl std::fmt::Debug for StoreLock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("StoreLock")
    }
}

/// Load, lock, and save-if-generation: the whole storage contract.
pub trait Store: Send + Sync {
    /// Where the vault lives, for messages.
    fn location(&self) -> &Path;

    /// Whether a vault exists yet.
    fn exists(&self) -> Result<bool>;

    /// Reads and decrypts the current generation; `None` when there is no vault. Needs no lock:
    /// writers replace the whole vault atomically.
    fn load(&self) -> Result<Option<Snapshot>>;

    /// Takes the exclusive advisory lock that serializes read-modify-write across processes.
    fn lock(&self) -> Result<StoreLock>;

    /// Saves `records` as generation `expected + 1` if the stored generation is still
    /// `expected` (0: no vault yet), else fails with [`VaultError::Conflict`]. Returns the new
    /// generation.
    fn save_if_generation(&self, lock: &StoreLock, expected: u64, records: &Records)
    -> Result<u64>;

    /// Like `save_if_generation`, but re-encrypts under a new key (`authdeck vault passwd`).
    fn rekey_if_generation(
        &self,
        lock: &StoreLock,
        expected: u64,
        records: &Records,
        new_key: KeySource,
    ) -> Result<u64>;

    /// Whether the stored vault looks rolled back to an older copy (HARD-8): its generation is
    /// not above its backup's, or is below the high-water mark this machine recorded. A
    /// backend that cannot tell answers `None`.
    fn rollback(&self) -> Result<Option<Rollback>> {
        Ok(None)
    }

    /// The current generation (0: no vault), as cheaply as the backend allows, so callers can
    /// tell whether a snapshot they hold is still current without decrypting again.
    fn generation(&self) -> Result<u64> {
        Ok(self.load()?.map_or(0, |s| s.generation))
    }

    /// Takes `name`'s refresh lock (REF-2), blocking until it is held: one refresher per
    /// account across every process that shares this store. Saves of that refresh pass the
    /// lock's [`Fence`] to [`save_fenced`](Self::save_fenced).
    fn lock_account(&self, name: &str) -> Result<AccountLock>;

    /// Like `save_if_generation`, and also refused ([`VaultError::LockLost`]) unless every
    /// fence still holds (ETCD-4). A backend whose locks cannot be lost ignores the fences.
    fn save_fenced(
        &self,
        lock: &StoreLock,
        expected: u64,
        records: &Records,
        fences: &[Fence],
    ) -> Result<u64> {
        let _ = fences;
        self.save_if_generation(lock, expected, records)
    }

    /// Which key the stored vault expects (`None`: no vault yet), read without decrypting.
    fn key_kind(&self) -> Result<Option<KeyKind>>;

    /// New generations saved by anyone, as they happen (ETCD-7); `None` when the backend
    /// cannot notify (callers poll [`generation`](Self::generation) instead).
    fn changes(&self) -> Option<Changes> {
        None
    }

    /// How the backend is doing, as of its last request.
    fn health(&self) -> BackendHealth {
        BackendHealth::Local
    }

    /// The vault's file when it is a local file (caches beside it); `None` otherwise.
    fn local_file(&self) -> Option<&Path> {
        None
    }

    /// `vault migrate`: writes `records` as generation `generation` where no vault exists yet
    /// (the copy keeps the source's generation), else [`VaultError::AlreadyExists`].
    fn import(&self, lock: &StoreLock, generation: u64, records: &Records) -> Result<()>;

    /// `vault migrate`, after the copy was verified: moves this vault aside if it is still at
    /// `expected` (else `Conflict`), so nobody keeps using a copy that no longer changes.
    /// Returns where it went, for the message.
    fn retire(&self, lock: &StoreLock, expected: u64) -> Result<String>;
}

/// Signs of a vault rolled back to an older copy (HARD-8). A warning, not an error: restoring
/// the backup on purpose looks the same, and the next save clears it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rollback {
    /// The vault's generation is not above that of its `.bak`, the generation it replaced.
    NotAboveBackup {
        /// The vault's generation.
        generation: u64,
        /// The backup's generation.
        backup: u64,
    },
    /// The vault's generation is below the highest one this machine has saved.
    BelowHighWater {
        /// The vault's generation.
        generation: u64,
        /// The highest generation saved here.
        high_water: u64,
    },
}

impl std::fmt::Display for Rollback {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::NotAboveBackup { generation, backup } => write!(
                f,
                "the vault is at generation {generation}, not above its backup's ({backup}): \
                 it may have been rolled back to an older copy (ignore this if you restored \
                 the backup yourself)"
            ),
            Self::BelowHighWater {
                generation,
                high_water,
            } => write!(
                f,
                "the vault is at generation {generation}, below generation {high_water} that \
                 this machine saved before: it may have been rolled back to an older copy \
                 (ignore this if you restored a copy yourself)"
            ),
        }
    }
}

/// What the save does with `<vault>.bak` (HARD-7).
enum BackupPlan {
    /// No vault yet: nothing to back up.
    Nothing,
    /// Hard-link the replaced file (the common case: cheap, no extra write).
    LinkCurrent,
    /// Write these sealed bytes instead: the replaced generation re-sealed under the new key,
    /// or without the accounts this save removes.
    Sealed(Vec<u8>),
}

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
    high_water: Option<PathBuf>,
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
        self.high_water = Some(dir.into());
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
        self.raise_high_water(&key.key, generation);
        Ok(generation)
    }

    fn remember_names(&self, generation: u64, records: &Records) {
        *lock_unpoisoned(&self.names) = Some((generation, records.keys().cloned().collect()));
    }

    /// The file holding this vault's high-water mark, if one is kept.
    fn high_water_file(&self) -> Option<PathBuf> {
        let dir = self.high_water.as_ref()?;
        let canonical = fs::canonicalize(&self.path).ok()?;
        use sha2::Digest;
        let digest = sha2::Sha256::digest(canonical.as_os_str().as_encoded_bytes());
        let name: String = digest[..12].iter().map(|b| format!("{b:02x}")).collect();
        Some(dir.join(format!("{name}.hwm")))
    }

    /// The recorded high-water mark, if present and signed with `key` for this vault.
    fn read_high_water(&self, key: &Key32) -> Option<u64> {
        let file = self.high_water_file()?;
        let bytes = fs::read(&file).ok()?;
        let (gen_bytes, tag) = bytes.split_first_chunk::<8>()?;
        let generation = u64::from_le_bytes(*gen_bytes);
        let canonical = fs::canonicalize(&self.path).ok()?;
        let hmac = high_water_key(key);
        let msg = high_water_message(&canonical, generation);
        ring::hmac::verify(&hmac, &msg, tag).ok()?;
        Some(generation)
    }

    /// Records `generation` as the high-water mark if it is above the recorded one. Best
    /// effort: a mark that cannot be written only weakens the rollback warning.
    fn raise_high_water(&self, key: &Key32, generation: u64) {
        let Some(file) = self.high_water_file() else {
            return;
        };
        if self.read_high_water(key).is_some_and(|g| g >= generation) {
            return;
        }
        let Ok(canonical) = fs::canonicalize(&self.path) else {
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

impl Store for FileStore {
    fn location(&self) -> &Path {
        &self.path
    }

    fn lock_account(&self, name: &str) -> Result<AccountLock> {
        super::coord::lock_account_file(&self.path, name)
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
        if self.high_water.is_none() {
            return Ok(None);
        }
        let key = self.unlock_for(&header)?;
        Ok(self
            .read_high_water(&key.key)
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

/// `<path><suffix>`, e.g. `vault.bak` next to `vault`.
fn sibling(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(suffix);
    path.with_file_name(name)
}

fn parent_dir(path: &Path) -> &Path {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}

/// Creates the vault's directory with mode 0700 when missing (VAULT-4). An existing directory
/// is left as it is: `--vault` may point into a directory the user shares on purpose.
fn ensure_dir(vault: &Path) -> Result<()> {
    let dir = parent_dir(vault);
    if dir.is_dir() {
        return Ok(());
    }
    let mut builder = fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        builder.mode(0o700);
    }
    builder
        .create(dir)
        .map_err(|e| VaultError::io("cannot create vault directory", dir, e))
}

/// Tightens a vault file that someone loosened (VAULT-4); best effort, the content is encrypted.
fn fix_file_mode(path: &Path) {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        if let Ok(meta) = fs::metadata(path)
            && meta.permissions().mode() & 0o077 != 0
        {
            tracing::warn!(path = %path.display(), "vault mode was looser than 0600; fixing");
            let _ = fs::set_permissions(path, fs::Permissions::from_mode(0o600));
        }
    }
    #[cfg(not(unix))]
    let _ = path;
}

/// Replaces `path` with `bytes` so a crash at any moment leaves either the old or the new
/// generation (VAULT-4): temp file in the same directory, fsync, keep the old file as `backup`,
/// rename, fsync the directory. Callers hold the lock, so leftover temp files are stale.
fn write_atomic(path: &Path, backup: &Path, bytes: &[u8], plan: BackupPlan) -> Result<()> {
    ensure_dir(path)?;
    let dir = parent_dir(path);
    remove_stale_temps(path);
    let tmp = sibling(
        path,
        &format!(
            ".tmp-{}-{}",
            std::process::id(),
            crate::secret::fingerprint(&crate::secret::random_bytes::<8>())
        ),
    );
    let result = write_then_rename(path, backup, &tmp, bytes, plan);
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result?;
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| VaultError::io("cannot sync vault directory", dir, e))
}

fn write_then_rename(
    path: &Path,
    backup: &Path,
    tmp: &Path,
    bytes: &[u8],
    plan: BackupPlan,
) -> Result<()> {
    let mut file = private_options()
        .write(true)
        .create_new(true)
        .open(tmp)
        .map_err(|e| VaultError::io("cannot create temporary file", tmp, e))?;
    file.write_all(bytes)
        .and_then(|()| file.sync_all())
        .map_err(|e| VaultError::io("cannot write temporary file", tmp, e))?;
    drop(file);
    // The backup is in place before the vault is replaced: a crash in between leaves the old
    // generation as the vault, and never a `.bak` that still holds what this save removes.
    match plan {
        BackupPlan::LinkCurrent => keep_backup(path, backup)?,
        BackupPlan::Sealed(sealed) => write_backup(backup, &sealed)?,
        BackupPlan::Nothing if path.exists() => keep_backup(path, backup)?,
        BackupPlan::Nothing => {}
    }
    fs::rename(tmp, path).map_err(|e| VaultError::io("cannot replace vault", path, e))
}

/// Makes `backup` the current vault's content, atomically: a hard link (or a copy where links
/// are unsupported) under a temporary name, then a rename over the old backup.
fn keep_backup(path: &Path, backup: &Path) -> Result<()> {
    let staging = sibling(backup, ".tmp");
    let _ = fs::remove_file(&staging);
    if fs::hard_link(path, &staging).is_err() {
        fs::copy(path, &staging)
            .map_err(|e| VaultError::io("cannot back up vault to", &staging, e))?;
        File::open(&staging)
            .and_then(|f| f.sync_all())
            .map_err(|e| VaultError::io("cannot sync backup", &staging, e))?;
    }
    fs::rename(&staging, backup).map_err(|e| VaultError::io("cannot back up vault to", backup, e))
}

/// Replaces `backup` with `bytes` atomically (temp file, fsync, rename).
fn write_backup(backup: &Path, bytes: &[u8]) -> Result<()> {
    let staging = sibling(backup, ".tmp");
    let _ = fs::remove_file(&staging);
    let mut file = private_options()
        .write(true)
        .create_new(true)
        .open(&staging)
        .map_err(|e| VaultError::io("cannot back up vault to", &staging, e))?;
    file.write_all(bytes)
        .and_then(|()| file.sync_all())
        .map_err(|e| VaultError::io("cannot write backup", &staging, e))?;
    drop(file);
    fs::rename(&staging, backup).map_err(|e| VaultError::io("cannot back up vault to", backup, e))
}

/// Removes temp files a killed writer left behind (only ever called under the lock).
fn remove_stale_temps(path: &Path) {
    let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
        return;
    };
    let prefix = format!("{name}.tmp-");
    let Ok(entries) = fs::read_dir(parent_dir(path)) else {
        return;
    };
    for entry in entries.flatten() {
        if entry
            .file_name()
            .to_str()
            .is_some_and(|n| n.starts_with(&prefix))
        {
            let _ = fs::remove_file(entry.path());
        }
    }
}
