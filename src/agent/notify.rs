//! Readiness for a service manager (AGENT-13): the `sd_notify` datagram protocol, without
//! libsystemd. `NOTIFY_SOCKET` names a Unix datagram socket: a path, or an abstract-namespace
//! name written with a leading `@`. The agent sends `READY=1` once its socket answers and
//! `STOPPING=1` when it begins to stop, so `Type=notify` units start what needs it only when
//! tokens can be had.

use std::ffi::OsStr;
use std::os::unix::net::UnixDatagram;

/// The variable a service manager sets.
pub const ENV_NOTIFY_SOCKET: &str = "NOTIFY_SOCKET";

/// Sends `state` (e.g. `READY=1`) to `$NOTIFY_SOCKET`. `Ok(false)` when the variable is not
/// set (not started by a service manager that wants to hear).
pub fn notify(state: &str) -> std::io::Result<bool> {
    match std::env::var_os(ENV_NOTIFY_SOCKET) {
        Some(addr) if !addr.is_empty() => notify_to(&addr, state).map(|()| true),
        _ => Ok(false),
    }
}

/// Sends `state` as one datagram to `addr` (a path, or `@name` in the abstract namespace).
pub fn notify_to(addr: &OsStr, state: &str) -> std::io::Result<()> {
    use std::os::unix::ffi::OsStrExt;
    let bytes = addr.as_bytes();
    let socket = UnixDatagram::unbound()?;
    let sent = match bytes.split_first() {
        Some((b'@', name)) => send_abstract(&socket, name, state)?,
        Some((b'/', _)) => socket.send_to(state.as_bytes(), addr)?,
        _ => {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                "NOTIFY_SOCKET is neither an absolute path nor an @abstract name",
            ));
        }
    };
    if sent != state.len() {
        return Err(std::io::Error::new(
            std::io::ErrorKind::WriteZero,
            "the notification was cut short",
        ));
    }
    Ok(())
}

#[cfg(any(target_os = "linux", target_os = "android"))]
fn send_abstract(socket: &UnixDatagram, name: &[u8], state: &str) -> std::io::Result<usize> {
    #[cfg(target_os = "android")]
    use std::os::android::net::SocketAddrExt;
    #[cfg(target_os = "linux")]
    use std::os::linux::net::SocketAddrExt;
    let addr = std::os::unix::net::SocketAddr::from_abstract_name(name)?;
    socket.send_to_addr(state.as_bytes(), &addr)
}

#[cfg(not(any(target_os = "linux", target_os = "android")))]
fn send_abstract(_: &UnixDatagram, _: &[u8], _: &str) -> std::io::Result<usize> {
    Err(std::io::Error::new(
        std::io::ErrorKind::Unsupported,
        "abstract socket names exist only on Linux",
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn recv(socket: &UnixDatagram) -> String {
        socket
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        let mut buf = [0u8; 256];
        let n = socket.recv(&mut buf).unwrap();
        String::from_utf8_lossy(&buf[..n]).into_owned()
    }

    #[test]
    fn agent13_a_datagram_reaches_a_path_socket() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("notify");
        let listener = UnixDatagram::bind(&path).unwrap();
        notify_to(path.as_os_str(), "READY=1").unwrap();
        assert_eq!(recv(&listener), "READY=1");
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn agent13_a_datagram_reaches_an_abstract_socket() {
        use std::os::linux::net::SocketAddrExt;
        let name = format!("authdeck-notify-test-{}", std::process::id());
        let addr = std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes()).unwrap();
        let listener = UnixDatagram::bind_addr(&addr).unwrap();
        notify_to(OsStr::new(&format!("@{name}")), "STOPPING=1").unwrap();
        assert_eq!(recv(&listener), "STOPPING=1");
    }

    #[test]
    fn agent13_a_relative_address_is_refused() {
        let e = notify_to(OsStr::new("relative/sock"), "READY=1").unwrap_err();
        assert_eq!(e.kind(), std::io::ErrorKind::InvalidInput);
    }
}
