//! The shared vault on etcd (docs/etcd.md): the same [`Store`] contract as the file vault, so
//! nothing above `vault` knows which one it uses.
//!
//! Keys under the prefix P (ETCD-2):
//! - `P/vault`: the whole vault, byte for byte the file format (header + AES-256-GCM), sealed
//!   on the client under the same key sources (ETCD-1): etcd never sees a token.
//! - `P/locks/vault/<lease>`: the lock that serializes read-modify-write (ETCD-3).
//! - `P/locks/account/<h>/<lease>`: an account's refresh lock, `h` a hash of its name (ETCD-2).
//!
//! Saves are transactions comparing the vault key's revision as read (ETCD-5) and, for a
//! refresh, the account lock key's create revision (the fence, ETCD-4).

pub mod client;
pub mod config;
mod watch;

use super::coord::{AccountLock, BackendHealth, Changes, Fence};
use super::error::{Result, VaultError};
use super::format::{self, Ctx, Header, Unlocked};
use super::key::{KdfParams, KeyKind, KeySource};
use super::keycache::KeyCache;
use super::record::Records;
use super::store::{Snapshot, Store, StoreLock};
use client::{Bridge, Shared};
pub use config::{ConfiguredBackend, EtcdConfig, parse_config_toml};
use etcd_client::{Compare, CompareOp, GetOptions, Txn, TxnOp, TxnOpResponse};
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::time::{Duration, Instant};

/// ETCD-8: how long a read of the vault key answers later lock-free reads of this process.
const READ_REUSE: Duration = Duration::from_millis(50);

/// Domain separation for the account-name hash in lock keys (ETCD-2).
const LOCK_NAME_DOMAIN: &[u8] = b"authdeck etcd account lock v1\0";

/// The vault key's value and modification revision.
type Stored = (Vec<u8>, i64);

/// The vault key's state as last read: its revision and header.
#[derive(Debug, Clone)]
struct Seen {
    mod_revision: i64,
    header: Header,
}

/// How a save transaction ended.
enum Saved {
    /// Written at this revision.
    Committed(i64),
    /// A compare failed; the vault key as it is now (`None`: absent).
    Refused(Option<(Vec<u8>, i64)>),
}

/// The vault on an etcd cluster.
pub struct EtcdStore {
    bridge: Arc<Bridge>,
    location: PathBuf,
    vault_key: Vec<u8>,
    keys: KeyCache,
    seen: Mutex<Option<Seen>>,
    /// The last read of the vault key and when it was made (ETCD-8).
    recent: Mutex<Option<(Instant, Option<Stored>)>>,
    changes: OnceLock<Changes>,
}

impl std::fmt::Debug for EtcdStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "EtcdStore({})", self.location.display())
    }
}

impl EtcdStore {
    /// A store on the cluster `cfg` names, unlocked with `source`. Connects on first use.
    pub fn new(cfg: EtcdConfig, source: KeySource) -> Result<Self> {
        Self::with_kdf_params(cfg, source, KdfParams::DEFAULT)
    }

    /// Like [`new`](Self::new) with Argon2id parameters for a vault this store creates (tests).
    pub fn with_kdf_params(cfg: EtcdConfig, source: KeySource, params: KdfParams) -> Result<Self> {
        let location = PathBuf::from(cfg.display());
        let vault_key = format!("{}/vault", cfg.prefix).into_bytes();
        Ok(Self {
            bridge: Bridge::new(cfg)?,
            keys: KeyCache::new(&location, source, params),
            location,
            vault_key,
            seen: Mutex::new(None),
            recent: Mutex::new(None),
            changes: OnceLock::new(),
        })
    }

    /// Replaces the key source (the header said which kind of key to ask for).
    pub fn set_key_source(&self, source: KeySource) {
        self.keys.set_source(source);
    }

    /// Derives the key of this existing passphrase vault from `pass` and checks it against the
    /// header, as [`FileStore::derive_key`](super::FileStore::derive_key) does for a file: an
    /// agent serving this vault keeps the key, never the passphrase (AGENT-6).
    pub fn derive_key(&self, pass: &crate::secret::Passphrase) -> Result<super::key::DerivedKey> {
        let Some(seen) = self.fetch_seen()? else {
            return Err(VaultError::NotFound {
                path: self.location.clone(),
            });
        };
        let header = seen.header;
        let Some(params) = header.params else {
            return Err(VaultError::KeyKindMismatch {
                path: self.location.clone(),
                expected: header.kind,
                given: KeyKind::Passphrase,
            });
        };
        let key = super::key::derive_key(pass, &header.salt, params, &self.location)?;
        if !header.key_matches(&key) {
            return Err(VaultError::WrongKey {
                path: self.location.clone(),
            });
        }
        Ok(super::key::DerivedKey::new(params, header.salt, key))
    }

    /// The configuration.
    pub fn config(&self) -> &EtcdConfig {
        &self.bridge.shared.cfg
    }

    /// The raw stored bytes (the file format) and their revision; `None` when absent.
    pub fn raw(&self) -> Result<Option<Vec<u8>>> {
        Ok(self.fetch()?.map(|(b, _)| b))
    }

    fn shared(&self) -> Arc<Shared> {
        self.bridge.shared.clone()
    }

    fn ctx(&self) -> Ctx<'_> {
        Ctx {
            path: &self.location,
            // etcd keeps no backup key; its revision history and snapshots serve instead.
            backup: PathBuf::new(),
        }
    }

    /// The lock key prefix of account `name` (ETCD-2: a hash, not the name).
    fn account_lock_name(&self, name: &str) -> Vec<u8> {
        let mut h = Sha256::new();
        h.update(LOCK_NAME_DOMAIN);
        h.update(name.as_bytes());
        let digest = h.finalize();
        let hex: String = digest[..16].iter().map(|b| format!("{b:02x}")).collect();
        format!("{}/locks/account/{hex}", self.config().prefix).into_bytes()
    }

    /// The vault key: the read made less than [`READ_REUSE`] ago when there is one and no lock
    /// was taken since (ETCD-8), else a new read.
    fn fetch(&self) -> Result<Option<(Vec<u8>, i64)>> {
        if let Some((at, value)) = self
            .recent
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .as_ref()
            && at.elapsed() < READ_REUSE
        {
            return Ok(value.clone());
        }
        let value = self.fetch_now()?;
        *self.recent.lock().unwrap_or_else(PoisonError::into_inner) =
            Some((Instant::now(), value.clone()));
        Ok(value)
    }

    /// Forgets the last read: after taking a lock or saving, the next read asks etcd.
    fn forget_recent(&self) {
        *self.recent.lock().unwrap_or_else(PoisonError::into_inner) = None;
    }

    /// Whether a read made less than [`READ_REUSE`] ago can answer.
    fn recent_is_fresh(&self) -> bool {
        self.recent
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .as_ref()
            .is_some_and(|(at, _)| at.elapsed() < READ_REUSE)
    }

    /// Reads the vault key now (linearizable).
    fn fetch_now(&self) -> Result<Option<(Vec<u8>, i64)>> {
        let shared = self.shared();
        let key = self.vault_key.clone();
        self.bridge.block(async move {
            let resp = shared
                .retrying(shared.cfg.timeout, None, |mut c| {
                    let key = key.clone();
                    async move { c.get(key, None).await }
                })
                .await
                .map_err(|f| shared.error(f))?;
            Ok(resp
                .kvs()
                .first()
                .map(|kv| (kv.value().to_vec(), kv.mod_revision())))
        })
    }

    /// The vault key's revision alone (0: absent): one small request.
    fn fetch_revision(&self) -> Result<i64> {
        let shared = self.shared();
        let key = self.vault_key.clone();
        self.bridge.block(async move {
            let resp = shared
                .retrying(shared.cfg.timeout, None, |mut c| {
                    let key = key.clone();
                    async move { c.get(key, Some(GetOptions::new().with_keys_only())).await }
                })
                .await
                .map_err(|f| shared.error(f))?;
            Ok(resp.kvs().first().map_or(0, |kv| kv.mod_revision()))
        })
    }

    fn remember(&self, seen: Option<Seen>) {
        self.forget_recent();
        *self.seen.lock().unwrap_or_else(PoisonError::into_inner) = seen;
    }

    /// Records what a read found (keeps the read for reuse, unlike [`remember`]).
    fn note_seen(&self, seen: Option<Seen>) {
        *self.seen.lock().unwrap_or_else(PoisonError::into_inner) = seen;
    }

    fn last_seen(&self) -> Option<Seen> {
        self.seen
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// The header and revision of the stored vault, fetched now (`None`: absent).
    fn fetch_seen(&self) -> Result<Option<Seen>> {
        let Some((bytes, mod_revision)) = self.fetch()? else {
            self.note_seen(None);
            return Ok(None);
        };
        let header = format::parse_header(&bytes, &self.ctx())?;
        let seen = Seen {
            mod_revision,
            header,
        };
        self.note_seen(Some(seen.clone()));
        Ok(Some(seen))
    }

    /// ETCD-5: what a save from generation `expected` must compare, and the key to seal with.
    fn precondition(&self, expected: u64) -> Result<(Compare, Option<Unlocked>)> {
        let absent = || Compare::version(self.vault_key.clone(), CompareOp::Equal, 0);
        if expected == 0 {
            return match self.fetch_seen()? {
                None => Ok((absent(), None)),
                Some(s) => Err(self.conflict(0, s.header.generation)),
            };
        }
        let seen = match self.last_seen() {
            Some(s) if s.header.generation == expected => s,
            _ => self
                .fetch_seen()?
                .ok_or_else(|| self.conflict(expected, 0))?,
        };
        if seen.header.generation != expected {
            return Err(self.conflict(expected, seen.header.generation));
        }
        let key = self.keys.unlock_for(&seen.header)?;
        let cmp =
            Compare::mod_revision(self.vault_key.clone(), CompareOp::Equal, seen.mod_revision);
        Ok((cmp, Some(key)))
    }

    fn conflict(&self, expected: u64, found: u64) -> VaultError {
        VaultError::Conflict {
            path: self.location.clone(),
            expected,
            found,
        }
    }

    /// The one write path: seal generation `expected + 1` under `key` (or the current one),
    /// then a transaction that puts it only if nothing changed and every fence holds.
    fn save_with(
        &self,
        expected: u64,
        records: &Records,
        fences: &[Fence],
        new_key: Option<KeySource>,
    ) -> Result<u64> {
        self.write(expected, expected + 1, records, fences, new_key)
    }

    /// Seals `records` as `generation` and stores it if the vault is still at `expected`.
    fn write(
        &self,
        expected: u64,
        generation: u64,
        records: &Records,
        fences: &[Fence],
        new_key: Option<KeySource>,
    ) -> Result<u64> {
        let (cmp, current_key) = self.precondition(expected)?;
        let key = match (&new_key, current_key) {
            (None, Some(k)) => k,
            (Some(s), _) => self.keys.unlock_new(Some(s))?,
            (None, None) => self.keys.unlock_new(None)?,
        };
        let bytes = format::seal(&key, generation, records)?;
        let mut compares = vec![cmp];
        compares.extend(
            fences
                .iter()
                .map(|f| Compare::create_revision(f.key.clone(), CompareOp::Equal, f.revision)),
        );
        match self.transact(compares, bytes.clone())? {
            Saved::Committed(rev) => {
                let header = format::parse_header(&bytes, &self.ctx())?;
                self.remember(Some(Seen {
                    mod_revision: rev,
                    header,
                }));
                if new_key.is_some() || expected == 0 {
                    self.keys.adopt(new_key, key);
                }
                Ok(generation)
            }
            Saved::Refused(now) => {
                let found = match &now {
                    Some((b, _)) => format::parse_header(b, &self.ctx())?.generation,
                    None => 0,
                };
                self.remember(None);
                if found != expected || fences.is_empty() {
                    Err(self.conflict(expected, found))
                } else {
                    Err(VaultError::LockLost {
                        path: self.location.clone(),
                        what: "account refresh",
                    })
                }
            }
        }
    }

    /// Runs the save transaction, retrying what is transient for up to three request timeouts
    /// (a leader election; ETCD-6). An attempt whose outcome was unknown and that did commit
    /// shows up as the stored value being exactly ours (a fresh nonce makes it unique).
    fn transact(&self, compares: Vec<Compare>, bytes: Vec<u8>) -> Result<Saved> {
        let shared = self.shared();
        let key = self.vault_key.clone();
        self.bridge.block(async move {
            let budget = shared.cfg.timeout * 3;
            let resp = shared
                .retrying(budget, None, |mut c| {
                    let txn = Txn::new()
                        .when(compares.clone())
                        .and_then(vec![TxnOp::put(key.clone(), bytes.clone(), None)])
                        .or_else(vec![TxnOp::get(key.clone(), None)]);
                    async move { c.txn(txn).await }
                })
                .await
                .map_err(|f| shared.error(f))?;
            if resp.succeeded() {
                let rev = resp.header().map_or(0, |h| h.revision());
                return Ok(Saved::Committed(rev));
            }
            let now = resp.op_responses().into_iter().find_map(|op| match op {
                TxnOpResponse::Get(g) => Some(
                    g.kvs()
                        .first()
                        .map(|kv| (kv.value().to_vec(), kv.mod_revision())),
                ),
                _ => None,
            });
            let now = now.flatten();
            match now {
                Some((value, rev)) if value == bytes => Ok(Saved::Committed(rev)),
                other => Ok(Saved::Refused(other)),
            }
        })
    }

    /// Moves `P/vault` to `P/vault.migrated` in one transaction, if it is still at the revision
    /// read for generation `expected`.
    fn move_aside(&self, expected: u64) -> Result<String> {
        let (cmp, _) = self.precondition(expected)?;
        let Some((bytes, _)) = self.fetch()? else {
            return Err(self.conflict(expected, 0));
        };
        let shared = self.shared();
        let key = self.vault_key.clone();
        let mut aside = key.clone();
        aside.extend_from_slice(b".migrated");
        let aside_name = String::from_utf8_lossy(&aside).into_owned();
        let moved = self.bridge.block(async move {
            let resp = shared
                .retrying(shared.cfg.timeout * 3, None, |mut c| {
                    let txn = Txn::new().when(vec![cmp.clone()]).and_then(vec![
                        TxnOp::put(aside.clone(), bytes.clone(), None),
                        TxnOp::delete(key.clone(), None),
                    ]);
                    async move { c.txn(txn).await }
                })
                .await
                .map_err(|f| shared.error(f))?;
            Ok(resp.succeeded())
        })?;
        self.remember(None);
        // A retried transaction that had committed finds the key already moved.
        if moved || self.fetch_revision()? == 0 {
            Ok(format!("key {aside_name} on etcd"))
        } else {
            Err(self.conflict(expected, self.generation()?))
        }
    }

    /// Starts the watch task that feeds [`Store::changes`] (ETCD-7).
    fn start_watch(&self) -> Changes {
        let initial = self.last_seen().map_or(0, |s| s.header.generation);
        let (tx, rx) = tokio::sync::watch::channel(initial);
        let shared = self.shared();
        let key = self.vault_key.clone();
        let location = self.location.clone();
        self.bridge
            .spawn(watch::watch_generations(shared, key, location, tx));
        rx
    }
}

impl Store for EtcdStore {
    fn location(&self) -> &Path {
        &self.location
    }

    fn exists(&self) -> Result<bool> {
        Ok(self.fetch_revision()? != 0)
    }

    fn load(&self) -> Result<Option<Snapshot>> {
        let Some((bytes, mod_revision)) = self.fetch()? else {
            self.note_seen(None);
            return Ok(None);
        };
        let header = format::parse_header(&bytes, &self.ctx())?;
        let key = self.keys.unlock_for(&header)?;
        let records = format::open(&bytes, &header, &key, &self.ctx())?;
        let generation = header.generation;
        self.note_seen(Some(Seen {
            mod_revision,
            header,
        }));
        Ok(Some(Snapshot {
            generation,
            records,
        }))
    }

    fn generation(&self) -> Result<u64> {
        if self.recent_is_fresh() {
            return Ok(self.fetch_seen()?.map_or(0, |s| s.header.generation));
        }
        let rev = self.fetch_revision()?;
        if rev == 0 {
            return Ok(0);
        }
        if let Some(s) = self.last_seen()
            && s.mod_revision == rev
        {
            return Ok(s.header.generation);
        }
        Ok(self.fetch_seen()?.map_or(0, |s| s.header.generation))
    }

    fn lock(&self) -> Result<StoreLock> {
        let name = format!("{}/locks/vault", self.config().prefix).into_bytes();
        let held = self.bridge.lock(name, false)?;
        // ETCD-8: what was read before the lock may be stale; read again under it.
        self.forget_recent();
        Ok(StoreLock::new(Box::new(held)))
    }

    fn save_if_generation(
        &self,
        _lock: &StoreLock,
        expected: u64,
        records: &Records,
    ) -> Result<u64> {
        self.save_with(expected, records, &[], None)
    }

    fn save_fenced(
        &self,
        _lock: &StoreLock,
        expected: u64,
        records: &Records,
        fences: &[Fence],
    ) -> Result<u64> {
        self.save_with(expected, records, fences, None)
    }

    fn rekey_if_generation(
        &self,
        _lock: &StoreLock,
        expected: u64,
        records: &Records,
        new_key: KeySource,
    ) -> Result<u64> {
        self.save_with(expected, records, &[], Some(new_key))
    }

    fn import(&self, _lock: &StoreLock, generation: u64, records: &Records) -> Result<()> {
        match self.write(0, generation, records, &[], None) {
            Err(VaultError::Conflict { .. }) => Err(VaultError::AlreadyExists {
                path: self.location.clone(),
            }),
            other => other.map(|_| ()),
        }
    }

    fn retire(&self, _lock: &StoreLock, expected: u64) -> Result<String> {
        self.move_aside(expected)
    }

    fn lock_account(&self, name: &str) -> Result<AccountLock> {
        let held = self.bridge.lock(self.account_lock_name(name), true)?;
        // ETCD-8: another machine may have refreshed while we waited; read again.
        self.forget_recent();
        let fence = Fence {
            key: held.key.clone(),
            revision: held.revision,
        };
        Ok(AccountLock::new(Box::new(held), Some(fence)))
    }

    fn key_kind(&self) -> Result<Option<KeyKind>> {
        Ok(self.fetch_seen()?.map(|s| s.header.kind))
    }

    fn changes(&self) -> Option<Changes> {
        Some(self.changes.get_or_init(|| self.start_watch()).clone())
    }

    fn health(&self) -> BackendHealth {
        self.bridge.shared.health()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// ETCD-2: account names appear in lock keys only hashed, under the prefix.
    #[test]
    fn etcd2_lock_keys_hash_account_names() {
        let cfg = EtcdConfig::new(vec!["127.0.0.1:9".into()], "/team").unwrap();
        let s = EtcdStore::new(cfg, KeySource::KeyFile(PathBuf::new())).unwrap();
        let k = String::from_utf8(s.account_lock_name("github-work")).unwrap();
        assert!(k.starts_with("/team/locks/account/"), "{k}");
        assert!(!k.contains("github"), "{k}");
        assert_eq!(k.len(), "/team/locks/account/".len() + 32);
        assert_ne!(
            k,
            String::from_utf8(s.account_lock_name("github-home")).unwrap()
        );
        assert_eq!(s.vault_key, b"/team/vault");
    }
}
