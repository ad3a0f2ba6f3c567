//! Files and directories only their owner may use (VAULT-4, HARD-5): created with modes
//! 0600/0700 whatever the umask, and tightened when an older build left them looser.

use std::fs::{self, File, OpenOptions};
use std::io;
use std::path::Path;

/// `OpenOptions` that create a file with mode 0600 (the umask can only take bits away).
pub(crate) fn file_options() -> OpenOptions {
    #[allow(unused_mut)]
    let mut opts = OpenOptions::new();
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    opts
}

/// Creates `dir` (and missing parents) with mode 0700; an existing `dir` looser than 0700 is
/// tightened. Only for directories authdeck owns (such as the account locks' directory): the
/// vault's own directory may be one the user shares on purpose.
pub fn create_dir(dir: &Path) -> io::Result<()> {
    let mut builder = fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        builder.mode(0o700);
    }
    builder.create(dir)?;
    tighten(dir, 0o700)
}

/// Opens (creating if needed) a lock file with mode 0600, tightening an existing looser one.
pub fn open_lock_file(path: &Path) -> io::Result<File> {
    let file = file_options()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)?;
    tighten_open(&file, 0o600)?;
    Ok(file)
}

/// Creates a new file with mode 0600; fails if `path` exists (no following a planted link).
pub fn open_new_private(path: &Path) -> io::Result<File> {
    file_options().write(true).create_new(true).open(path)
}

/// Removes the permission bits outside `allowed` from `path`, if any are set.
pub(crate) fn tighten(path: &Path, allowed: u32) -> io::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = fs::metadata(path)?.permissions().mode() & 0o7777;
        if mode & !allowed != 0 {
            fs::set_permissions(path, fs::Permissions::from_mode(mode & allowed))?;
        }
    }
    #[cfg(not(unix))]
    let _ = (path, allowed);
    Ok(())
}

fn tighten_open(file: &File, allowed: u32) -> io::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = file.metadata()?.permissions().mode() & 0o7777;
        if mode & !allowed != 0 {
            file.set_permissions(fs::Permissions::from_mode(mode & allowed))?;
        }
    }
    #[cfg(not(unix))]
    let _ = (file, allowed);
    Ok(())
}

#[cfg(test)]
#[cfg(unix)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn mode(p: &Path) -> u32 {
        fs::metadata(p).unwrap().permissions().mode() & 0o7777
    }

    /// HARD-5: lock files and their directory are 0600/0700 even when they existed looser.
    #[test]
    fn loose_dir_and_lock_file_are_tightened() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("locks");
        fs::create_dir(&dir).unwrap();
        fs::set_permissions(&dir, fs::Permissions::from_mode(0o777)).unwrap();
        create_dir(&dir).unwrap();
        assert_eq!(mode(&dir), 0o700);
        let lock = dir.join("a.lock");
        fs::write(&lock, b"").unwrap();
        fs::set_permissions(&lock, fs::Permissions::from_mode(0o666)).unwrap();
        drop(open_lock_file(&lock).unwrap());
        assert_eq!(mode(&lock), 0o600);
        let fresh = dir.join("b.lock");
        drop(open_lock_file(&fresh).unwrap());
        assert_eq!(mode(&fresh), 0o600);
    }
}
