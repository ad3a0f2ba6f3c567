//! The client side: a blocking connection on the standard library alone, so `authdeck token`
//! through the agent starts no async runtime and costs one connect, one write, one read.

use super::AgentError;
use super::harden::peer_of;
use super::protocol::{self, ErrorCode, Request, Response};
use super::socket::{self, SocketPath};
use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Largest answer a client reads: an export of many accounts exceeds the 64 KiB request limit.
pub const MAX_ANSWER: usize = 16 << 20;

/// How long a client waits for one answer: a due token is refreshed first, and a refresh may
/// retry (NET-1: 30 s per attempt).
pub const ANSWER_TIMEOUT: Duration = Duration::from_secs(150);

/// One connection to an agent.
#[derive(Debug)]
pub struct Client {
    reader: BufReader<UnixStream>,
    socket: PathBuf,
}

impl Client {
    /// Connects to the agent at `sock`. `Ok(None)` when no agent answers there (no socket, or a
    /// stale one): the caller then uses the vault directly. A socket in an unsafe directory, or
    /// one served by another user, is an error (AGENT-1, AGENT-2): never silently trusted.
    pub fn connect(sock: &SocketPath) -> Result<Option<Client>, AgentError> {
        let stream = match UnixStream::connect(&sock.path) {
            Ok(s) => s,
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::NotFound | std::io::ErrorKind::ConnectionRefused
                ) =>
            {
                return Ok(None);
            }
            Err(e) => return Err(AgentError::io("cannot connect to", &sock.path, e)),
        };
        let uid = socket::current_uid();
        if sock.managed_dir {
            socket::check_dir(socket::socket_dir(&sock.path), uid)?;
        }
        let peer = peer_of(&stream).map_err(|e| AgentError::io("cannot check", &sock.path, e))?;
        if peer.uid != uid {
            return Err(AgentError::ForeignPeer {
                socket: sock.path.clone(),
                uid: peer.uid,
            });
        }
        stream
            .set_read_timeout(Some(ANSWER_TIMEOUT))
            .and_then(|()| stream.set_write_timeout(Some(ANSWER_TIMEOUT)))
            .map_err(|e| AgentError::io("cannot configure", &sock.path, e))?;
        Ok(Some(Client {
            reader: BufReader::new(stream),
            socket: sock.path.clone(),
        }))
    }

    /// Connects, or says that no agent runs.
    pub fn connect_running(sock: &SocketPath) -> Result<Client, AgentError> {
        Self::connect(sock)?.ok_or_else(|| AgentError::NotRunning {
            socket: sock.path.clone(),
        })
    }

    /// The socket this client is connected to.
    pub fn socket(&self) -> &Path {
        &self.socket
    }

    /// Sends `request` and reads its answer. An error answer becomes
    /// [`AgentError::Refused`] carrying the agent's code and message.
    pub fn call(&mut self, request: &Request) -> Result<Response, AgentError> {
        let answer = self.call_raw(request)?;
        if answer.ok {
            return Ok(answer);
        }
        Err(AgentError::Refused(answer.error.unwrap_or_else(|| {
            protocol::Failure::new(ErrorCode::Error, "the agent failed without a reason")
        })))
    }

    /// The connection itself, with what was already read past the last answer: after an
    /// `attach` answer the agent's events follow at once (AGENT-14).
    pub fn into_stream(self) -> (UnixStream, Vec<u8>) {
        let read_ahead = self.reader.buffer().to_vec();
        (self.reader.into_inner(), read_ahead)
    }

    /// Sends `request` and reads its answer as it is, error or not.
    pub fn call_raw(&mut self, request: &Request) -> Result<Response, AgentError> {
        let frame = zeroize::Zeroizing::new(protocol::encode_request(request));
        self.reader
            .get_mut()
            .write_all(&frame)
            .map_err(|e| AgentError::io("cannot write to", &self.socket, e))?;
        let mut line = zeroize::Zeroizing::new(Vec::with_capacity(1024));
        let n = (&mut self.reader)
            .take(MAX_ANSWER as u64)
            .read_until(b'\n', &mut line)
            .map_err(|e| AgentError::io("cannot read from", &self.socket, e))?;
        if n == 0 || line.last() != Some(&b'\n') {
            return Err(AgentError::Protocol {
                socket: self.socket.clone(),
                why: if n == 0 {
                    "it closed the connection".into()
                } else {
                    "the answer was cut short or too long".into()
                },
            });
        }
        let answer =
            protocol::decode_response(&line[..n - 1]).map_err(|_| AgentError::Protocol {
                socket: self.socket.clone(),
                why: "not a JSON answer".into(),
            })?;
        if answer.v != protocol::VERSION {
            return Err(AgentError::Protocol {
                socket: self.socket.clone(),
                why: format!(
                    "protocol version {} (this authdeck speaks {})",
                    answer.v,
                    protocol::VERSION
                ),
            });
        }
        Ok(answer)
    }
}
