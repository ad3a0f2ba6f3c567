//! The agent's per-connection frame handling for the fuzz target `agent_frame` in `fuzz/`
//! (feature `fuzzing`; never in a normal build, see docs/fuzzing.md).
//!
//! [`serve`] runs bytes through the very loop every accepted connection runs after the peer
//! check (`serve_frames`: the 64 KiB frame reader, the request decoder, the dispatcher), on an
//! agent whose vault does not exist yet, so every verb is answered without a key or a network.

use std::path::PathBuf;
use std::pin::Pin;
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};

use tokio::io::{AsyncWrite, BufReader};

use super::{ServerConfig, Shared};
use crate::agent::socket::{self, SocketPath};

/// The vault path the fuzzed agent serves: in a directory that is never created.
pub fn vault_path() -> PathBuf {
    std::env::temp_dir()
        .join(format!("authdeck-fuzz-agent-{}-absent", std::process::id()))
        .join("vault.bin")
}

struct Rig {
    runtime: tokio::runtime::Runtime,
    host: String,
}

fn rig() -> &'static Rig {
    static RIG: OnceLock<Rig> = OnceLock::new();
    RIG.get_or_init(|| Rig {
        runtime: tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap_or_else(|e| panic!("fuzz rig: no runtime: {e}")),
        host: socket::host_name(),
    })
}

/// A fresh agent with no vault (so nothing carries over from one input to the next).
fn agent() -> Arc<Shared> {
    let vault = vault_path();
    let dir = vault.parent().map(PathBuf::from).unwrap_or_default();
    let cfg = ServerConfig::new(
        SocketPath {
            path: dir.join("agent.sock"),
            managed_dir: false,
        },
        vault,
        dir.join("config"),
    );
    Arc::new(Shared::new(cfg, socket::current_uid(), rig().host.clone()))
}

/// Serves `input` as the bytes one peer sent on one connection, then end of stream, and hands
/// each answer frame (without its newline) to `on_answer` as soon as it is written, so the
/// caller keeps none of them unless it wants to. Returns the bytes written after the last
/// newline (empty when every answer was a whole frame).
pub fn serve(input: &[u8], on_answer: impl FnMut(&[u8]) + Unpin) -> Vec<u8> {
    let shared = agent();
    let mut sink = Lines {
        partial: Vec::new(),
        on_answer,
    };
    rig().runtime.block_on(async {
        // An `attach` hands the stream back for the dashboard's own stream: the fuzzed
        // connection ends there.
        let _attached = shared.serve_frames(BufReader::new(input), &mut sink).await;
    });
    sink.partial
}

/// A writer that cuts what it is given into lines.
struct Lines<F> {
    partial: Vec<u8>,
    on_answer: F,
}

impl<F: FnMut(&[u8])> Lines<F> {
    fn take(&mut self, mut buf: &[u8]) {
        while let Some(i) = buf.iter().position(|b| *b == b'\n') {
            if self.partial.is_empty() {
                (self.on_answer)(&buf[..i]);
            } else {
                self.partial.extend_from_slice(&buf[..i]);
                let line = std::mem::take(&mut self.partial);
                (self.on_answer)(&line);
            }
            buf = &buf[i + 1..];
        }
        self.partial.extend_from_slice(buf);
    }
}

impl<F: FnMut(&[u8]) + Unpin> AsyncWrite for Lines<F> {
    fn poll_write(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        self.get_mut().take(buf);
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}
