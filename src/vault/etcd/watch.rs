//! The watch behind [`Store::changes`](crate::vault::Store::changes) on etcd (ETCD-7): each new
//! generation of the vault key, read from the header without decrypting.

use super::client::{self, Failure, Shared};
use crate::vault::format::{self, Ctx};
use etcd_client::WatchOptions;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// Follows the vault key and sends each new generation (read from the header, no decryption).
/// Reconnects with backoff after any failure, bounded to a few seconds apart.
pub(super) async fn watch_generations(
    shared: Arc<Shared>,
    key: Vec<u8>,
    location: PathBuf,
    tx: tokio::sync::watch::Sender<u64>,
) {
    let ctx = Ctx {
        path: &location,
        backup: PathBuf::new(),
    };
    let mut pause = Duration::from_millis(200);
    let mut next_rev: Option<i64> = None;
    loop {
        let started = async {
            let mut c = shared.client().await?;
            // Catch up first: what is stored now, then changes after it.
            let now = tokio::time::timeout(shared.cfg.timeout, c.get(key.clone(), None))
                .await
                .map_err(|_| Failure::Transient("no answer".into()))?
                .map_err(client::classify)?;
            if let Some(kv) = now.kvs().first()
                && let Ok(h) = format::parse_header(kv.value(), &ctx)
            {
                tx.send_if_modified(|g| std::mem::replace(g, h.generation) != h.generation);
            }
            let from = next_rev.unwrap_or_else(|| now.header().map_or(0, |h| h.revision()) + 1);
            let opts = WatchOptions::new().with_start_revision(from);
            c.watch(key.clone(), Some(opts))
                .await
                .map_err(client::classify)
        }
        .await;
        if let Ok(mut stream) = started {
            pause = Duration::from_millis(200);
            while let Ok(Some(resp)) = stream.message().await {
                if resp.canceled() {
                    // Compacted past our revision: start again from what is stored now.
                    next_rev = None;
                    break;
                }
                for ev in resp.events() {
                    if let Some(kv) = ev.kv() {
                        next_rev = Some(kv.mod_revision() + 1);
                        if let Ok(h) = format::parse_header(kv.value(), &ctx) {
                            tx.send_replace(h.generation);
                        }
                    }
                }
            }
        }
        if tx.is_closed() {
            return;
        }
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(Duration::from_secs(3));
    }
}
