//! `authdeck vault migrate --to …`: moves the vault between backends (a file and etcd, either
//! way), atomically: the source is held locked and left untouched until the target holds a
//! complete copy that was read back, decrypted and compared; only then is the source moved
//! aside, so no machine keeps using a copy that no longer changes.

use super::{Backend, KeySource, Result, VaultError};

/// What a migration did (or, dry, would do). Holds no secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Migration {
    /// How many accounts the vault holds.
    pub accounts: usize,
    /// The generation copied (the target starts at it).
    pub generation: u64,
    /// Where the old vault went (`None` for a dry run).
    pub moved_to: Option<String>,
}

/// Copies the vault from `from` to `to` under `key` (the same key opens both); with `dry_run`
/// only checks that it could (source readable, target empty) and writes nothing.
pub fn migrate(from: &Backend, to: &Backend, key: KeySource, dry_run: bool) -> Result<Migration> {
    if from == to {
        return Err(VaultError::Backend(
            "the source and the target are the same vault".into(),
        ));
    }
    let source = from.store(key.clone())?;
    let target = to.store(key.clone())?;
    let source_lock = source.lock()?;
    let snap = source.load()?.ok_or_else(|| VaultError::NotFound {
        path: source.location().to_path_buf(),
    })?;
    let target_lock = target.lock()?;
    if target.exists()? {
        return Err(VaultError::AlreadyExists {
            path: target.location().to_path_buf(),
        });
    }
    let mut report = Migration {
        accounts: snap.records.len(),
        generation: snap.generation,
        moved_to: None,
    };
    if dry_run {
        return Ok(report);
    }
    target.import(&target_lock, snap.generation, &snap.records)?;
    // Verify through a fresh store: what a new process would read.
    let copy = to.store(key)?.load()?;
    let verified = copy
        .as_ref()
        .is_some_and(|c| c.generation == snap.generation && c.records == snap.records);
    if !verified {
        return Err(VaultError::Backend(format!(
            "the copy at {} does not read back as the source; the source was left as it is",
            to.display()
        )));
    }
    drop(target_lock);
    report.moved_to = Some(source.retire(&source_lock, snap.generation)?);
    Ok(report)
}
