//! The narrow storage interface (VAULT-4: locked read-modify-write, compare-and-swap saves).
//!
//! `Store` is all a caller's read-modify-write needs: load, lock, compare-and-swap save. A shared
//! backend (on an existing distributed store) would implement the same trait; `Vault` and
//! everything above it would not change. The file implementation is [`FileStore`] (`file.rs`),
//! with its crash-safe writes in `atomic.rs` and its rollback mark in `high_water.rs`.

mod atomic;
mod file;
mod high_water;

pub use file::FileStore;

use super::coord::{AccountLock, BackendHealth, Changes, Fence};
use super::error::Result;
#[cfg(doc)]
use super::error::VaultError;
use super::key::{KeyKind, KeySource};
use super::record::Records;
use std::path::Path;

/// A decrypted vault at one generation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Snapshot {
    /// The generation counter from the header; 0 means "no vault yet".
    pub generation: u64,
    /// The accounts.
    pub records: Records,
}

/// The access-token fields of every record at one generation (`Vault::tokens`): each record's
/// access token, its obtained and expiry times and its state, every other field default. It
/// holds no refresh token, ID token or client secret, and is no [`Snapshot`]: nothing can save
/// it back over the full records.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tokens {
    /// The generation counter from the header; 0 means "no vault yet".
    pub generation: u64,
    /// The accounts, token fields only.
    pub records: Records,
}

impl Tokens {
    /// The token fields of a full snapshot.
    pub fn of(snap: &Snapshot) -> Tokens {
        let records = snap
            .records
            .iter()
            .map(|(name, r)| {
                let record = super::record::Record {
                    access_token: r.access_token.clone(),
                    obtained_at: r.obtained_at,
                    expires_at: r.expires_at,
                    state: r.state.clone(),
                    ..super::record::Record::default()
                };
                (name.clone(), record)
            })
            .collect();
        Tokens {
            generation: snap.generation,
            records,
        }
    }
}

/// A vault as read by [`Store::load_opened`]: parsed in full, or decrypted (its key and
/// integrity checked, its token fields parsed) with the full records parsed only when asked.
pub enum Opened {
    /// Every record parsed.
    Parsed(Snapshot),
    /// Decrypted; the token fields parsed.
    Decrypted {
        /// The token fields, parsed when the body was decrypted (which also checked that the
        /// body is well-formed JSON of a schema this build reads).
        tokens: std::sync::Arc<Tokens>,
        /// The decrypted body, zeroized when dropped.
        plain: zeroize::Zeroizing<Vec<u8>>,
        /// The vault and its backup, named in a parse error.
        path: std::path::PathBuf,
    },
}

impl std::fmt::Debug for Opened {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Opened::Parsed(s) => write!(f, "Parsed(generation {})", s.generation),
            Opened::Decrypted { tokens, .. } => {
                write!(f, "Decrypted(generation {})", tokens.generation)
            }
        }
    }
}

impl Opened {
    /// Every record.
    pub fn snapshot(self) -> Result<Snapshot> {
        match self {
            Opened::Parsed(s) => Ok(s),
            Opened::Decrypted {
                tokens,
                plain,
                path,
                ..
            } => {
                let ctx = super::format::Ctx {
                    backup: atomic::sibling(&path, ".bak"),
                    path: &path,
                };
                Ok(Snapshot {
                    generation: tokens.generation,
                    records: super::format::parse(&plain, &ctx)?,
                })
            }
        }
    }

    /// The token fields of every record.
    pub fn tokens(&self) -> std::sync::Arc<Tokens> {
        match self {
            Opened::Parsed(s) => std::sync::Arc::new(Tokens::of(s)),
            Opened::Decrypted { tokens, .. } => tokens.clone(),
        }
    }
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

    /// Like `load`, but a backend may decrypt now and leave the full parse of the records to
    /// [`Opened::snapshot`], parsing only their token fields (the file store does).
    fn load_opened(&self) -> Result<Option<Opened>> {
        Ok(self.load()?.map(Opened::Parsed))
    }

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
