//! Crash-safe replacement of the vault file and its `.bak` (VAULT-4, HARD-7), and the file
//! modes and directories they need.

use crate::vault::error::{Result, VaultError};
use crate::vault::private::file_options as private_options;
use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};

/// What the save does with `<vault>.bak` (HARD-7).
pub(super) enum BackupPlan {
    /// No vault yet: nothing to back up.
    Nothing,
    /// Hard-link the replaced file (the common case: cheap, no extra write).
    LinkCurrent,
    /// Write these sealed bytes instead: the replaced generation re-sealed under the new key,
    /// or without the accounts this save removes.
    Sealed(Vec<u8>),
}

/// `<path><suffix>`, e.g. `vault.bak` next to `vault`.
pub(super) fn sibling(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(suffix);
    path.with_file_name(name)
}

pub(super) fn parent_dir(path: &Path) -> &Path {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}

/// Creates the vault's directory with mode 0700 when missing (VAULT-4). An existing directory
/// is left as it is: `--vault` may point into a directory the user shares on purpose.
pub(super) fn ensure_dir(vault: &Path) -> Result<()> {
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
pub(super) fn fix_file_mode(path: &Path) {
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
pub(super) fn write_atomic(
    path: &Path,
    backup: &Path,
    bytes: &[u8],
    plan: BackupPlan,
) -> Result<()> {
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
