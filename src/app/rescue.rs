//! Saving a refresh that the server already made (ETCD-10). A rotating provider invalidates
//! the refresh token it was sent the moment it answers, so once an answer with a new refresh
//! token is in hand, that token is the only one that still works: losing it means a new login.
//! On etcd the account lock is a lease, and a lease can expire while the server answers (a
//! paused or starved process, a slow cluster); the fence (ETCD-4) then refuses the save. The
//! rotation is still saved here, without the lock, when nobody has stored newer tokens since the
//! refresh started: the stored record is still the one it started from (same `obtained_at`).

use super::refresh::{Refreshed, record_failure, record_success, token_of};
use super::{App, AppError, Result};
use crate::oauth::{ClientConfig, OAuthError, TokenSet};
use crate::provider::Provider;
use crate::secret::AccessToken;
use crate::vault::{Fence, Record, Snapshot, VaultError};
use std::time::{Duration, Instant};

/// How long a rotation that could not be saved under its fence is still tried: several times
/// the default request bound (ETCD-6), to ride out a slow cluster or a leader election.
const RESCUE_FOR: Duration = Duration::from_secs(30);
/// Pause between two tries.
const RESCUE_PAUSE: Duration = Duration::from_millis(500);

impl App {
    /// Saves a successful refresh of `name` (started from `from`) under the account lock's
    /// `fences`; when that save fails because the lock was lost or the backend stayed
    /// unreachable, a rotated refresh token is saved anyway if nobody stored newer tokens
    /// (ETCD-10). Otherwise the error of the fenced save.
    pub(super) async fn save_refreshed(
        &self,
        name: &str,
        account: &Provider,
        cfg: &ClientConfig,
        from: &Record,
        tokens: TokenSet,
        fences: &[Fence],
    ) -> Result<(Record, Snapshot)> {
        let spare = (tokens.refresh_token.is_some() && !fences.is_empty()).then(|| tokens.clone());
        let fenced = self.vault.update_snapshot_fenced(fences, |records| {
            Ok::<_, AppError>(record_success(records, name, account, cfg, tokens))
        });
        match (fenced, spare) {
            (Err(e), Some(tokens)) if worth_rescuing(&e) => {
                self.rescue(name, account, cfg, from, tokens, e).await
            }
            (result, _) => result,
        }
    }

    /// Tries the unfenced save of ETCD-10 for up to `RESCUE_FOR`; gives back `why` when the
    /// stored record moved on (another process's tokens win) or time ran out.
    async fn rescue(
        &self,
        name: &str,
        account: &Provider,
        cfg: &ClientConfig,
        from: &Record,
        tokens: TokenSet,
        why: AppError,
    ) -> Result<(Record, Snapshot)> {
        let deadline = Instant::now() + RESCUE_FOR;
        loop {
            let saved = self.vault.update_snapshot_fenced(&[], |records| {
                let untouched = records
                    .get(name)
                    .is_some_and(|r| r.obtained_at == from.obtained_at);
                Ok::<_, AppError>(
                    untouched.then(|| record_success(records, name, account, cfg, tokens.clone())),
                )
            });
            match saved {
                Ok((Some(record), snap)) => {
                    tracing::warn!(
                        account = name,
                        "the account lock was lost while the server answered; its rotated \
                         refresh token was saved anyway (nobody had stored newer tokens)"
                    );
                    return Ok((record, snap));
                }
                Ok((None, _)) => return Err(why),
                Err(e) if worth_retrying(&e) && Instant::now() + RESCUE_PAUSE < deadline => {
                    tokio::time::sleep(RESCUE_PAUSE).await;
                }
                Err(_) => return Err(why),
            }
        }
    }

    /// Records a failed refresh of `name` (started from `from`) and decides what the caller
    /// gets. When the stored record moved on meanwhile (ETCD-10: another process's rotation
    /// landed after this one sent a now-stale refresh token), nothing is recorded and the
    /// caller gets that newer token.
    pub(super) fn refresh_failed(
        &self,
        name: &str,
        account: &Provider,
        from: &Record,
        err: OAuthError,
        fences: &[Fence],
    ) -> Result<(AccessToken, Refreshed)> {
        let (newer, _) = self.vault.update_snapshot_fenced(fences, |records| {
            match records.get(name) {
                Some(r) if r.obtained_at != from.obtained_at => {
                    return Ok::<_, AppError>(Some(r.clone()));
                }
                _ => record_failure(records, name, &err),
            }
            Ok(None)
        })?;
        match newer {
            Some(record) => Ok((token_of(name, &record)?, Refreshed::ByOther)),
            None => super::refresh::failure_result(name, account, from, err),
        }
    }
}

/// A fenced save that failed in a way the unfenced save can help with.
fn worth_rescuing(e: &AppError) -> bool {
    matches!(
        e,
        AppError::Vault(VaultError::LockLost { .. } | VaultError::BackendUnavailable { .. })
    )
}

/// A failure of the unfenced save that a later try may not have.
fn worth_retrying(e: &AppError) -> bool {
    matches!(
        e,
        AppError::Vault(
            VaultError::BackendUnavailable { .. }
                | VaultError::Conflict { .. }
                | VaultError::LockTimeout { .. }
        )
    )
}
