//! The agent (`authdeck agent`): unlock once, then every command gets tokens over a Unix
//! socket in about a millisecond, and tokens are refreshed in the background. See
//! docs/agent-protocol.md for the protocol and the AGENT-n rules cited here.
//!
//! Layering: `socket`, `protocol` and `client` depend only on `secret` and plain data of
//! `app` (the status type, the narrowing and git request types), so `app` (its error type) and
//! `cli::context::access` — the one place that picks agent or vault (AGENT-9) — can use them;
//! `server` composes `app` (`app::access` holds what both paths share) and is used only by
//! `cli`.

pub mod client;
pub mod harden;
pub mod notify;
pub mod protocol;
pub mod server;
pub mod socket;

use std::path::{Path, PathBuf};

pub use client::Client;
pub use socket::{ENV_SOCK, SocketEnv, SocketPath};

/// Environment variable that turns the agent off for one command (`AUTHDECK_AGENT=off`):
/// every command then uses the vault directly (AGENT-9).
pub const ENV_AGENT: &str = "AUTHDECK_AGENT";

/// True when `AUTHDECK_AGENT` says not to use an agent.
pub fn disabled_by_env() -> bool {
    std::env::var(ENV_AGENT).is_ok_and(|v| {
        matches!(
            v.trim().to_ascii_lowercase().as_str(),
            "off" | "0" | "no" | "false"
        )
    })
}

/// What can go wrong talking to, or running, an agent. Messages are one line and name paths,
/// never secrets.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AgentError {
    /// An I/O failure on a path.
    #[error("{what} {}: {source}", .path.display())]
    Io {
        /// What was being done.
        what: &'static str,
        /// On what.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// AGENT-1: the socket directory could be tampered with by someone else.
    #[error("refusing agent directory {}: {why}", .dir.display())]
    UnsafeDir {
        /// The directory.
        dir: PathBuf,
        /// What is wrong, with the fix.
        why: String,
    },
    /// AGENT-5: something that is not a socket sits where the socket should be.
    #[error("{} exists and is not a socket; remove it or set AUTHDECK_AGENT_SOCK", .path.display())]
    NotASocket {
        /// The path.
        path: PathBuf,
    },
    /// No agent answers.
    #[error("no agent answers at {} (start one: authdeck agent start)", .socket.display())]
    NotRunning {
        /// The socket.
        socket: PathBuf,
    },
    /// An agent already answers on this socket.
    #[error("an agent already runs at {} (pid {pid}, vault {})", .socket.display(), .vault.display())]
    AlreadyRunning {
        /// The socket.
        socket: PathBuf,
        /// Its pid.
        pid: u32,
        /// Its vault.
        vault: PathBuf,
    },
    /// AGENT-5: one agent per vault.
    #[error("an agent already serves vault {} ({holder})", .vault.display())]
    VaultTaken {
        /// The vault.
        vault: PathBuf,
        /// Who holds it: pid and socket, as recorded.
        holder: String,
    },
    /// The other side is not the user's own process (AGENT-2, as seen by a client).
    #[error("the process behind {} belongs to uid {uid}, not to you; not using it", .socket.display())]
    ForeignPeer {
        /// The socket.
        socket: PathBuf,
        /// The peer's uid.
        uid: u32,
    },
    /// The agent answered something that is not protocol version 1, or closed early.
    #[error("the agent at {} answered badly: {why}", .socket.display())]
    Protocol {
        /// The socket.
        socket: PathBuf,
        /// What was wrong.
        why: String,
    },
    /// The agent refused the request; the message is its own (the direct path's wording).
    #[error("{}", .0.message)]
    Refused(protocol::Failure),
}

impl AgentError {
    pub(crate) fn io(what: &'static str, path: &Path, source: std::io::Error) -> Self {
        AgentError::Io {
            what,
            path: path.to_path_buf(),
            source,
        }
    }
}
