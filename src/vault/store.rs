//! The narrow storage interface (VAULT-4: locked read-modify-write, compare-and-swap saves)
//! and its file implementation.
//!
//! `Store` is all a caller's read-modify-write needs: load, lock, compare-and-swap save. A shared
//! backend (on an existing distributed store) would implement the same trait; `Vault` and
//! everything above it would not change.

use super::error::{Result, VaultError};
use super::format::{self, Ctx, Header, Unlocked};
use super::key::{self, KdfParams, KeyKind, KeySource};
use super::record::Records;
use std::fs::{self, File, OpenOptions};
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

    /// The current generation (0: no vault), as cheaply as the backend allows, so callers can
    /// tell whether a snapshot they hold is still current without decrypting again.
    fn generation(&self) -> Result<u64> {
        Ok(self.load()?.map_or(0, |s| s.generation))
    }
}

/// Longest sleep between attempts to take the lock: short, because a waiter that oversleeps
/// delays every process queued behind it (`File::lock` itself cannot time out).
const MAX_LOCK_PAUSE: Duration = Duration::from_millis(2);

/// The default store: one encrypted file, a `.bak` of the previous generation, a `.lock` file.
#[derive(Debug)]
pub struct FileStore {
    path: PathBuf,
    source: Mutex<KeySource>,
    new_params: KdfParams,
    /// The last key derived, so Argon2id runs once per process rather than once per read.
    cache: Mutex<Option<Unlocked>>,
    lock_timeout: Duration,
}

impl FileStore {
    /// A store for the vault at `path`, unlocked with `source`.
    pub fn new(path: impl Into<PathBuf>, source: KeySource) -> Self {
        Self {
            path: path.into(),
            source: Mutex::new(source),
            new_params: KdfParams::DEFAULT,
            cache: Mutex::new(None),
            lock_timeout: Duration::from_secs(30),
        }
    }

    /// Argon2id parameters for a vault this store creates or re-keys (tests use tiny ones;
    /// existing vaults always use the parameters in their header).
    pub fn with_kdf_params(mut self, params: KdfParams) -> Self {
        self.new_params = params;
        self
    }

    /// How long [`Store::lock`] waits for another process before giving up.
    pub fn with_lock_timeout(mut self, timeout: Duration) -> Self {
        self.lock_timeout = timeout;
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

    /// The key for an existing vault's header: from the cache, or derived from the source.
    fn unlock_for(&self, header: &Header) -> Result<Unlocked> {
        let mut cache = lock_unpoisoned(&self.cache);
        if let Some(u) = cache.as_ref()
            && u.kind == header.kind
            && u.params == header.params
            && u.salt == header.salt
        {
            return Ok(u.clone());
        }
        let source = lock_unpoisoned(&self.source).clone();
        if source.kind() != header.kind {
            return Err(VaultError::KeyKindMismatch {
                path: self.path.clone(),
                expected: header.kind,
                given: source.kind(),
            });
        }
        let key = match (&source, header.params) {
            (KeySource::Passphrase(p), Some(params)) => {
                key::derive_key(p, &header.salt, params, &self.path)?
            }
            (KeySource::KeyFile(f), _) => key::read_key_file(f)?,
            (KeySource::Passphrase(_), None) => {
                return Err(VaultError::KeyKindMismatch {
                    path: self.path.clone(),
                    expected: KeyKind::KeyFile,
                    given: KeyKind::Passphrase,
                });
            }
        };
        if !header.key_matches(&key) {
            return Err(VaultError::WrongKey {
                path: self.path.clone(),
            });
        }
        let unlocked = Unlocked {
            kind: header.kind,
            params: header.params,
            salt: header.salt,
            key,
        };
        *cache = Some(unlocked.clone());
        Ok(unlocked)
    }

    /// A key for a brand-new vault (fresh salt) from `source`.
    fn unlock_new(&self, source: &KeySource) -> Result<Unlocked> {
        Ok(match source {
            KeySource::Passphrase(p) => {
                let salt = crate::secret::random_bytes();
                Unlocked {
                    kind: KeyKind::Passphrase,
                    params: Some(self.new_params),
                    salt,
                    key: key::derive_key(p, &salt, self.new_params, &self.path)?,
                }
            }
            KeySource::KeyFile(f) => Unlocked {
                kind: KeyKind::KeyFile,
                params: None,
                salt: [0; 16],
                key: key::read_key_file(f)?,
            },
        })
    }

    /// Checks the CAS condition and returns the key the current vault is under (if any).
    fn check_generation(&self, expected: u64) -> Result<Option<Unlocked>> {
        let current = self.read_header()?;
        let found = current.as_ref().map_or(0, |(h, _)| h.generation);
        if found != expected {
            return Err(VaultError::Conflict {
                path: self.path.clone(),
                expected,
                found,
            });
        }
        current.map(|(h, _)| self.unlock_for(&h)).transpose()
    }

    fn write_generation(&self, key: &Unlocked, generation: u64, records: &Records) -> Result<u64> {
        let bytes = format::seal(key, generation, records)?;
        write_atomic(&self.path, &self.backup_path(), &bytes)?;
        Ok(generation)
    }
}

impl Store for FileStore {
    fn location(&self) -> &Path {
        &self.path
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
        fix_file_mode(&self.path);
        Ok(Some(Snapshot {
            generation: header.generation,
            records,
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
        let key = match self.check_generation(expected)? {
            Some(key) => key,
            None => {
                let source = lock_unpoisoned(&self.source).clone();
                let key = self.unlock_new(&source)?;
                *lock_unpoisoned(&self.cache) = Some(key.clone());
                key
            }
        };
        self.write_generation(&key, expected + 1, records)
    }

    fn rekey_if_generation(
        &self,
        _lock: &StoreLock,
        expected: u64,
        records: &Records,
        new_key: KeySource,
    ) -> Result<u64> {
        self.check_generation(expected)?;
        let key = self.unlock_new(&new_key)?;
        let generation = self.write_generation(&key, expected + 1, records)?;
        *lock_unpoisoned(&self.source) = new_key;
        *lock_unpoisoned(&self.cache) = Some(key);
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

fn private_options() -> OpenOptions {
    #[allow(unused_mut)]
    let mut opts = OpenOptions::new();
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    opts
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
fn write_atomic(path: &Path, backup: &Path, bytes: &[u8]) -> Result<()> {
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
    let result = write_then_rename(path, backup, &tmp, bytes);
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result?;
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| VaultError::io("cannot sync vault directory", dir, e))
}

fn write_then_rename(path: &Path, backup: &Path, tmp: &Path, bytes: &[u8]) -> Result<()> {
    let mut file = private_options()
        .write(true)
        .create_new(true)
        .open(tmp)
        .map_err(|e| VaultError::io("cannot create temporary file", tmp, e))?;
    file.write_all(bytes)
        .and_then(|()| file.sync_all())
        .map_err(|e| VaultError::io("cannot write temporary file", tmp, e))?;
    drop(file);
    if path.exists() {
        keep_backup(path, backup)?;
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
