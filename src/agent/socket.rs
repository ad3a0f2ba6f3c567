//! Where the agent's socket lives and how it is made safe to use (AGENT-1, AGENT-5).
//!
//! Only the standard library and `libc`: the client path (`token` in ~1 ms) starts no runtime.

use super::AgentError;
use std::fs;
use std::io;
use std::os::unix::fs::{DirBuilderExt, FileTypeExt, MetadataExt, PermissionsExt};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};

/// Environment variable naming the socket explicitly (SSH forwarding, tests, several agents).
pub const ENV_SOCK: &str = "AUTHDECK_AGENT_SOCK";

/// The socket's file name inside the agent directory.
pub const SOCKET_NAME: &str = "agent.sock";

/// Where the socket is and whether authdeck chose the directory (then it must be private).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SocketPath {
    /// The socket file.
    pub path: PathBuf,
    /// True for the default locations (AGENT-1): the directory is checked, and created 0700.
    pub managed_dir: bool,
}

/// The values the socket location depends on, so the rule is testable without touching the
/// process environment.
#[derive(Debug, Clone, Default)]
pub struct SocketEnv {
    /// `AUTHDECK_AGENT_SOCK`.
    pub sock: Option<PathBuf>,
    /// `XDG_RUNTIME_DIR`.
    pub runtime_dir: Option<PathBuf>,
    /// The temporary directory (`TMPDIR`, else `/tmp`).
    pub temp_dir: PathBuf,
    /// The effective uid.
    pub uid: u32,
}

impl SocketEnv {
    /// Reads the process environment (empty values count as unset).
    pub fn from_process() -> Self {
        let get = |name: &str| {
            std::env::var_os(name)
                .filter(|v| !v.is_empty())
                .map(PathBuf::from)
        };
        Self {
            sock: get(ENV_SOCK),
            // XDG_RUNTIME_DIR must be absolute to count (XDG Base Directory spec).
            runtime_dir: get("XDG_RUNTIME_DIR").filter(|p| p.is_absolute()),
            temp_dir: std::env::temp_dir(),
            uid: current_uid(),
        }
    }

    /// AGENT-1: `AUTHDECK_AGENT_SOCK`, else `$XDG_RUNTIME_DIR/authdeck/agent.sock`, else
    /// `<temp dir>/authdeck-<uid>/agent.sock`.
    pub fn socket_path(&self) -> SocketPath {
        if let Some(p) = &self.sock {
            return SocketPath {
                path: p.clone(),
                managed_dir: false,
            };
        }
        let dir = match &self.runtime_dir {
            Some(run) => run.join("authdeck"),
            None => self.temp_dir.join(format!("authdeck-{}", self.uid)),
        };
        SocketPath {
            path: dir.join(SOCKET_NAME),
            managed_dir: true,
        }
    }
}

/// The effective uid of this process.
pub fn current_uid() -> u32 {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() }
}

/// The directory holding `sock`.
pub fn socket_dir(sock: &Path) -> &Path {
    match sock.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}

/// AGENT-1: the directory must be a real directory (not a symlink), owned by `uid`, and give
/// nothing to group or others. Checked by the agent before it binds and by a client before it
/// sends a passphrase or trusts an answer.
pub fn check_dir(dir: &Path, uid: u32) -> Result<(), AgentError> {
    let meta = fs::symlink_metadata(dir).map_err(|e| AgentError::io("cannot inspect", dir, e))?;
    let bad = |why: String| AgentError::UnsafeDir {
        dir: dir.to_path_buf(),
        why,
    };
    if !meta.file_type().is_dir() {
        return Err(bad("it is not a directory".into()));
    }
    if meta.uid() != uid {
        return Err(bad(format!(
            "it is owned by uid {}, not by you (uid {uid})",
            meta.uid()
        )));
    }
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(bad(format!(
            "its mode is {mode:04o}; group and others must have no access (chmod 700)"
        )));
    }
    Ok(())
}

/// Creates the agent directory 0700 when missing (AGENT-1); then checks it. The parents of a
/// managed directory (`$XDG_RUNTIME_DIR`, the temp dir) are not created: they must exist.
pub fn prepare_dir(sock: &SocketPath, uid: u32) -> Result<(), AgentError> {
    let dir = socket_dir(&sock.path);
    if !sock.managed_dir {
        // A path the user named: create what is missing privately, and check only the socket's
        // own directory when authdeck created it or it is private already.
        if !dir.exists() {
            fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(dir)
                .map_err(|e| AgentError::io("cannot create", dir, e))?;
        }
        return check_owned(dir, uid);
    }
    match fs::DirBuilder::new().mode(0o700).create(dir) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(AgentError::io("cannot create", dir, e)),
    }
    check_dir(dir, uid)
}

/// For a directory the user named: it must at least be owned by the user or by root (a shared
/// sticky directory such as /tmp), never by another user who could replace the socket.
fn check_owned(dir: &Path, uid: u32) -> Result<(), AgentError> {
    let meta = fs::metadata(dir).map_err(|e| AgentError::io("cannot inspect", dir, e))?;
    let mode = meta.permissions().mode();
    let sticky = mode & 0o1000 != 0;
    if meta.uid() == uid || (meta.uid() == 0 && sticky) {
        return Ok(());
    }
    Err(AgentError::UnsafeDir {
        dir: dir.to_path_buf(),
        why: format!(
            "it is owned by uid {}, not by you (uid {uid}), and is not a sticky shared directory",
            meta.uid()
        ),
    })
}

/// What is at the socket path now.
#[derive(Debug, PartialEq, Eq)]
pub enum Existing {
    /// Nothing.
    Nothing,
    /// A socket an agent answers on.
    Live,
    /// A socket nobody answers on: left by a killed agent.
    Stale,
    /// Something that is not a socket.
    NotASocket,
}

/// AGENT-5: tells a live socket from a stale one by connecting to it.
pub fn probe(path: &Path) -> Result<Existing, AgentError> {
    let meta = match fs::symlink_metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Existing::Nothing),
        Err(e) => return Err(AgentError::io("cannot inspect", path, e)),
    };
    if !meta.file_type().is_socket() {
        return Ok(Existing::NotASocket);
    }
    match UnixStream::connect(path) {
        Ok(_) => Ok(Existing::Live),
        Err(e)
            if matches!(
                e.kind(),
                io::ErrorKind::ConnectionRefused | io::ErrorKind::NotFound
            ) =>
        {
            Ok(Existing::Stale)
        }
        Err(e) => Err(AgentError::io("cannot connect to", path, e)),
    }
}

/// This machine's host name, for `agent status` and the forwarding check (AGENT-10).
pub fn host_name() -> String {
    let mut buf = [0u8; 256];
    // SAFETY: the buffer is valid for its length; gethostname NUL-terminates on success
    // (truncation is handled by searching for the NUL within the buffer).
    let rc = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) };
    if rc != 0 {
        return "unknown".into();
    }
    let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
    String::from_utf8_lossy(&buf[..end]).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env() -> SocketEnv {
        SocketEnv {
            sock: None,
            runtime_dir: None,
            temp_dir: PathBuf::from("/tmp"),
            uid: 1000,
        }
    }

    #[test]
    fn agent1_path_rules() {
        let mut e = env();
        assert_eq!(
            e.socket_path(),
            SocketPath {
                path: PathBuf::from("/tmp/authdeck-1000/agent.sock"),
                managed_dir: true
            }
        );
        e.runtime_dir = Some(PathBuf::from("/run/user/1000"));
        assert_eq!(
            e.socket_path().path,
            PathBuf::from("/run/user/1000/authdeck/agent.sock")
        );
        e.sock = Some(PathBuf::from("/x/y.sock"));
        assert_eq!(
            e.socket_path(),
            SocketPath {
                path: PathBuf::from("/x/y.sock"),
                managed_dir: false
            }
        );
    }

    #[test]
    fn agent1_directory_is_created_private_and_loose_or_foreign_ones_are_refused() {
        let tmp = tempfile::tempdir().unwrap();
        let uid = current_uid();
        let sock = SocketPath {
            path: tmp.path().join("authdeck").join(SOCKET_NAME),
            managed_dir: true,
        };
        prepare_dir(&sock, uid).unwrap();
        let dir = tmp.path().join("authdeck");
        let mode = fs::metadata(&dir).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o700);
        // Group-readable: refused, with the fix named.
        fs::set_permissions(&dir, fs::Permissions::from_mode(0o750)).unwrap();
        let err = prepare_dir(&sock, uid).unwrap_err().to_string();
        assert!(err.contains("0750") && err.contains("chmod 700"), "{err}");
        fs::set_permissions(&dir, fs::Permissions::from_mode(0o700)).unwrap();
        // Owned by someone else (as seen from another uid).
        let err = check_dir(&dir, uid.wrapping_add(1))
            .unwrap_err()
            .to_string();
        assert!(err.contains("not by you"), "{err}");
        // A symlink to a private directory is refused too: it could be swapped.
        let link = tmp.path().join("link");
        std::os::unix::fs::symlink(&dir, &link).unwrap();
        assert!(check_dir(&link, uid).is_err());
    }

    #[test]
    fn agent5_probe_tells_live_stale_and_foreign_files_apart() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("s.sock");
        assert_eq!(probe(&path).unwrap(), Existing::Nothing);
        let listener = std::os::unix::net::UnixListener::bind(&path).unwrap();
        assert_eq!(probe(&path).unwrap(), Existing::Live);
        drop(listener);
        assert_eq!(probe(&path).unwrap(), Existing::Stale, "left behind");
        fs::remove_file(&path).unwrap();
        fs::write(&path, b"not a socket").unwrap();
        assert_eq!(probe(&path).unwrap(), Existing::NotASocket);
    }

    #[test]
    fn host_name_is_not_empty() {
        assert!(!host_name().is_empty());
    }
}
