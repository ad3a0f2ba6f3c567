//! The peer credential check (AGENT-2) and what the agent reports of its own hardening
//! (HARD-1 is applied to every authdeck process by `process::harden`).

use std::io;
use std::os::fd::AsRawFd;

/// Whether this process is dumpable (HARD-1 makes it not), for the agent's status.
#[cfg(target_os = "linux")]
pub fn is_dumpable() -> bool {
    // SAFETY: PR_GET_DUMPABLE takes no pointer argument.
    unsafe { libc::prctl(libc::PR_GET_DUMPABLE, 0, 0, 0, 0) != 0 }
}

/// Elsewhere there is no such switch.
#[cfg(not(target_os = "linux"))]
pub fn is_dumpable() -> bool {
    true
}

/// The peer of a connected Unix socket: its uid and, where known, its pid (AGENT-2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Peer {
    /// The peer's effective uid when it connected.
    pub uid: u32,
    /// The peer's pid (0 when the OS does not say).
    pub pid: i32,
}

/// Reads the peer's credentials from the kernel (SO_PEERCRED): they cannot be forged by the
/// peer, and are those of the process that called `connect` (or `listen`, seen from a client).
#[cfg(target_os = "linux")]
pub fn peer_of(sock: &impl AsRawFd) -> io::Result<Peer> {
    let mut cred = libc::ucred {
        pid: 0,
        uid: 0,
        gid: 0,
    };
    let mut len = std::mem::size_of::<libc::ucred>() as libc::socklen_t;
    // SAFETY: `cred` and `len` are valid for writes of the sizes given; the fd is open.
    let rc = unsafe {
        libc::getsockopt(
            sock.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_PEERCRED,
            (&raw mut cred).cast(),
            &raw mut len,
        )
    };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(Peer {
        uid: cred.uid,
        pid: cred.pid,
    })
}

/// `getpeereid` where there is no SO_PEERCRED (macOS, the BSDs).
#[cfg(not(target_os = "linux"))]
pub fn peer_of(sock: &impl AsRawFd) -> io::Result<Peer> {
    let mut uid: libc::uid_t = 0;
    let mut gid: libc::gid_t = 0;
    // SAFETY: valid pointers; the fd is open.
    let rc = unsafe { libc::getpeereid(sock.as_raw_fd(), &mut uid, &mut gid) };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(Peer { uid, pid: 0 })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn agent2_peer_of_a_socketpair_is_this_process() {
        let (a, _b) = std::os::unix::net::UnixStream::pair().unwrap();
        let peer = peer_of(&a).unwrap();
        assert_eq!(peer.uid, super::super::socket::current_uid());
        #[cfg(target_os = "linux")]
        assert_eq!(peer.pid, i32::try_from(std::process::id()).unwrap());
    }
}
