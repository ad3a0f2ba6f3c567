//! What a [`Store`](super::Store) offers beyond load and save, for coordinating machines: the
//! per-account refresh lock with its fence, change notifications and the backend's health.
//!
//! The file backend implements them with lock files and offers no notifications; the etcd
//! backend (docs/etcd.md) with leases, fenced transactions and a watch.

use super::error::{Result, VaultError};
use std::fs::File;
use std::path::{Path, PathBuf};

/// Proof that this process holds one account's refresh lock (REF-2); released on drop.
pub struct AccountLock {
    fence: Option<Fence>,
    _held: Box<dyn Send + Sync>,
}

impl AccountLock {
    /// Wraps whatever keeps a backend's lock held, and the fence its saves must check
    /// (`None` when the lock cannot be lost while the process lives, as a lock file).
    pub fn new(held: Box<dyn Send + Sync>, fence: Option<Fence>) -> Self {
        Self { fence, _held: held }
    }

    /// The fence a save made under this lock must pass (ETCD-4).
    pub fn fence(&self) -> Option<&Fence> {
        self.fence.as_ref()
    }
}

impl std::fmt::Debug for AccountLock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AccountLock")
    }
}

/// ETCD-4: identifies one holding of a lease-backed lock. A save that carries it succeeds only
/// while the lock is still held (the lock key still exists at the revision it was created).
#[derive(Clone, PartialEq, Eq)]
pub struct Fence {
    /// The backend's lock key.
    pub(crate) key: Vec<u8>,
    /// The revision at which the lock key was created.
    pub(crate) revision: i64,
}

impl std::fmt::Debug for Fence {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Fence(rev {})", self.revision)
    }
}

/// How the vault's backend is doing, for the dashboard's header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BackendHealth {
    /// A local file: always there.
    Local,
    /// The shared backend answered the last request.
    Connected {
        /// Where, e.g. `etcd 127.0.0.1:2379,…`.
        backend: String,
    },
    /// The shared backend did not answer the last request (ETCD-6).
    Unavailable {
        /// Where.
        backend: String,
        /// Why, one sanitized line.
        reason: String,
    },
}

/// A change notification: receives each new generation another writer saves (ETCD-7).
pub type Changes = tokio::sync::watch::Receiver<u64>;

/// The lock file of `name` beside the vault at `vault`: `<dir>/locks/<name>.lock`, with every
/// character other than ASCII letters, digits, `-` and `_` replaced by `_`.
pub fn account_lock_path(vault: &Path, name: &str) -> PathBuf {
    let safe: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect();
    let dir = vault
        .parent()
        .map(|p| p.join("locks"))
        .unwrap_or_else(|| PathBuf::from("locks"));
    dir.join(format!("{safe}.lock"))
}

/// The file backend's account lock: an exclusive `flock` on the account's lock file, waited for
/// without limit (the holder is a live process on this machine; the kernel drops the lock when
/// it dies). Each call opens its own file: flock locks belong to the open file, so two tasks of
/// one process exclude each other too.
pub fn lock_account_file(vault: &Path, name: &str) -> Result<AccountLock> {
    let path = account_lock_path(vault, name);
    let take = || -> std::io::Result<File> {
        // HARD-5: the locks and their directory are private like the vault, whatever the
        // umask (an account's name is in each file name).
        if let Some(dir) = path.parent() {
            super::private::create_dir(dir)?;
        }
        let file = super::private::open_lock_file(&path)?;
        file.lock()?;
        Ok(file)
    };
    let file = take().map_err(|e| VaultError::io("cannot take the refresh lock", &path, e))?;
    Ok(AccountLock::new(Box::new(file), None))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lock_file_names_are_sanitized_and_beside_the_vault() {
        let p = account_lock_path(Path::new("/x/vault.bin"), "a/b c.d-e_f");
        assert_eq!(p, PathBuf::from("/x/locks/a_b_c_d-e_f.lock"));
    }

    #[test]
    fn a_file_lock_excludes_a_second_holder_until_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let vault = dir.path().join("vault.bin");
        let held = lock_account_file(&vault, "acct").unwrap();
        assert!(
            held.fence().is_none(),
            "a lock file cannot be lost: no fence"
        );
        let path = account_lock_path(&vault, "acct");
        let other = File::options().write(true).open(&path).unwrap();
        assert!(other.try_lock().is_err(), "held");
        drop(held);
        assert!(other.try_lock().is_ok(), "released on drop");
    }
}
