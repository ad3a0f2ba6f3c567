//! Account operations beyond login and refresh: refreshing many, revoking, logging out.

use super::refresh::{Refreshed, expired, failure_result, record_failure, record_success, usable};
use super::{App, AppError, Result, refresh_config};
use crate::oauth::{ClientConfig, OAuthError, Revocation, TokenSet};
use crate::provider::Provider;
use crate::vault::{Fence, LoginGrant, Record, StoredState, VaultError};
use futures::StreamExt;
use std::sync::Arc;
use tokio::sync::{mpsc, oneshot};

/// A refresh whose network part is done, waiting for the committer to save it.
struct Pending<'a> {
    name: &'a str,
    account: &'a Provider,
    cfg: ClientConfig,
    /// The record as it was under the account lock, before the request.
    current: Record,
    outcome: std::result::Result<TokenSet, OAuthError>,
    /// ETCD-4: the account lock's fence, checked by the save.
    fence: Option<Fence>,
    /// Told the final outcome once it is durable (or that saving failed).
    done: oneshot::Sender<Result<Refreshed>>,
}

impl App {
    /// Refreshes `names` now, due or not, at most `settings.refresh_concurrency` at a time.
    /// Results come back in the order of `names`.
    ///
    /// Same guarantees as [`fresh_token`](Self::fresh_token) (REF-2: one request in flight per
    /// account across processes, under its lock file, skipped when another process refreshed
    /// since our snapshot; REF-3: the result is durable before the lock is released), but the
    /// vault is written by one committer that saves every result that arrived meanwhile in a
    /// single update (group commit), instead of one decrypt-encrypt-fsync per account.
    pub async fn refresh_many(&self, names: &[String]) -> Vec<(String, Result<Refreshed>)> {
        let start = match self.current() {
            Ok(s) => s,
            Err(e) => {
                let msg = e.to_string();
                return names
                    .iter()
                    .map(|n| (n.clone(), Err(AppError::Config(msg.clone()))))
                    .collect();
            }
        };
        let limit = self.settings.refresh_concurrency.max(1);
        let (tx, rx) = mpsc::unbounded_channel::<Pending<'_>>();
        let start = &start;
        let work = async move {
            let tx = &tx;
            futures::stream::iter(names.iter().enumerate())
                .map(|(i, name)| async move {
                    let before = start.records.get(name).cloned();
                    (i, name.clone(), self.refresh_one(name, before, tx).await)
                })
                .buffer_unordered(limit)
                .collect::<Vec<_>>()
                .await
            // `tx` drops here, which ends the committer.
        };
        let (mut results, ()) = futures::join!(work, self.committer(rx));
        results.sort_by_key(|(i, _, _)| *i);
        results.into_iter().map(|(_, n, r)| (n, r)).collect()
    }

    /// One account of [`refresh_many`](Self::refresh_many): lock, re-check, request, hand the
    /// outcome to the committer and wait until it is durable, unlock.
    async fn refresh_one<'a>(
        &'a self,
        name: &'a str,
        before: Option<Record>,
        tx: &mpsc::UnboundedSender<Pending<'a>>,
    ) -> Result<Refreshed> {
        let account = self.account(name)?;
        let before = usable(name, before)?;
        let lock = self.lock_account(name).await?;
        // Under the lock: a cheap generation check, a decryption only if someone else saved.
        let current = usable(name, self.current()?.records.get(name).cloned())?;
        if current.obtained_at != before.obtained_at {
            return Ok(Refreshed::ByOther);
        }
        let Some(refresh_token) = current.refresh_token.clone() else {
            return if expired(&current) {
                Err(AppError::NeedsLogin(name.to_string()))
            } else {
                Ok(Refreshed::NoRefreshToken)
            };
        };
        let stored_secret = match &account.client_secret {
            Some(_) => None,
            None => current.client_secret.clone(),
        };
        let grant = current.login_grant.unwrap_or(LoginGrant::Code);
        let cfg = refresh_config(
            self.client_config_with(account, stored_secret, grant)
                .await?,
            account,
            &current,
        );
        let oauth = self.oauth()?;
        let outcome = match &account.exchange_proxy {
            Some(proxy) => oauth.refresh_via_proxy(proxy, &cfg, &refresh_token).await,
            None => oauth.refresh(&cfg, &refresh_token).await,
        };
        let outcome = self
            .vet_refreshed_id_token(name, &cfg, &current, outcome)
            .await;
        let (done, durable) = oneshot::channel();
        let pending = Pending {
            name,
            account,
            cfg,
            current,
            outcome,
            fence: lock.fence().cloned(),
            done,
        };
        tx.send(pending)
            .map_err(|_| AppError::Config("the vault writer stopped".into()))?;
        // REF-3: the lock is held until the new tokens are saved.
        durable
            .await
            .map_err(|_| AppError::Config("the vault writer stopped".into()))?
    }

    /// Saves refresh outcomes as they arrive: everything queued while the previous save ran
    /// goes into the next single `vault.update`.
    async fn committer(&self, mut rx: mpsc::UnboundedReceiver<Pending<'_>>) {
        while let Some(first) = rx.recv().await {
            let mut batch = vec![first];
            while let Ok(more) = rx.try_recv() {
                batch.push(more);
            }
            self.commit(batch);
        }
    }

    /// Applies `batch` in one update, then tells each task its outcome (and that it is durable).
    /// When a lock was lost (ETCD-4) the batch is saved one refresh at a time, so only the
    /// refreshes whose lock expired are refused.
    fn commit(&self, batch: Vec<Pending<'_>>) {
        if batch.len() > 1 && batch.iter().any(|p| p.fence.is_some()) {
            let fences: Vec<Fence> = batch.iter().filter_map(|p| p.fence.clone()).collect();
            match self.commit_fenced(batch, &fences) {
                Ok(()) => {}
                Err(batch) => {
                    for p in batch {
                        let fences: Vec<Fence> = p.fence.iter().cloned().collect();
                        if let Err(mut rest) = self.commit_fenced(vec![p], &fences) {
                            let p = rest.remove(0);
                            self.reply_saving_failed(
                                vec![p],
                                &VaultError::LockLost {
                                    path: self.vault.path().to_path_buf(),
                                    what: "account refresh",
                                },
                            );
                        }
                    }
                }
            }
            return;
        }
        let fences: Vec<Fence> = batch.iter().filter_map(|p| p.fence.clone()).collect();
        if let Err(batch) = self.commit_fenced(batch, &fences) {
            self.reply_saving_failed(
                batch,
                &VaultError::LockLost {
                    path: self.vault.path().to_path_buf(),
                    what: "account refresh",
                },
            );
        }
    }

    /// One fenced save of `batch`. Gives the batch back, untouched, when a fence failed.
    fn commit_fenced<'a>(
        &self,
        batch: Vec<Pending<'a>>,
        fences: &[Fence],
    ) -> std::result::Result<(), Vec<Pending<'a>>> {
        let saved = self.vault.update_snapshot_fenced(fences, |records| {
            let outs: Vec<Option<Record>> = batch
                .iter()
                .map(|p| match &p.outcome {
                    Ok(tokens) => Some(record_success(
                        records,
                        p.name,
                        p.account,
                        &p.cfg,
                        tokens.clone(),
                    )),
                    Err(err) => {
                        record_failure(records, p.name, err);
                        None
                    }
                })
                .collect();
            Ok::<_, AppError>(outs)
        });
        match saved {
            Ok((outs, snap)) => {
                self.remember(Arc::new(snap));
                for (p, out) in batch.into_iter().zip(outs) {
                    let rotated = p.outcome.as_ref().is_ok_and(|t| t.refresh_token.is_some());
                    let reply = match (out, p.outcome) {
                        (Some(rec), _) => Ok(Refreshed::Done {
                            expires_at: rec.expires_at,
                            rotated,
                        }),
                        (None, Err(err)) => {
                            failure_result(p.name, p.account, &p.current, err).map(|(_, how)| how)
                        }
                        (None, Ok(_)) => Err(AppError::Config("refresh result lost".into())),
                    };
                    // The task may have been dropped (caller gave up): nothing to tell then.
                    let _ = p.done.send(reply);
                }
                Ok(())
            }
            Err(AppError::Vault(VaultError::LockLost { .. })) => Err(batch),
            Err(e) => {
                self.reply_saving_failed(batch, &e);
                Ok(())
            }
        }
    }

    /// Tells every refresh of `batch` that its result could not be saved.
    fn reply_saving_failed(&self, batch: Vec<Pending<'_>>, e: &dyn std::fmt::Display) {
        let msg = format!("cannot save the refreshed tokens: {e}");
        for p in batch {
            let _ = p.done.send(Err(AppError::Config(msg.clone())));
        }
    }

    /// Revokes `name`'s tokens at the provider (RFC 7009), through the exchange proxy for an
    /// `exchange_proxy` account, then deletes them locally whatever the remote outcome (REV-4).
    /// Returns a one-line note for the user.
    pub async fn revoke(&self, name: &str) -> Result<String> {
        let account = self.account(name)?;
        let Some(record) = self.vault.get(name)? else {
            return Err(AppError::NeedsLogin(name.to_string()));
        };
        let (access, refresh) = (record.access_token.as_ref(), record.refresh_token.as_ref());
        // An `exchange_proxy` account holds no client secret: the proxy authenticates the
        // client at the revocation endpoint (RFC 7009 §2.1), so no local client config (and
        // no discovery) is needed.
        let remote = match &account.exchange_proxy {
            Some(proxy) => self.oauth()?.revoke_via_proxy(proxy, access, refresh).await,
            // A configuration the provider cannot be asked with (a missing client secret) is
            // a failed revocation like any other: the tokens still go locally (REV-4).
            None => match self.client_config(account).await {
                Ok(cfg) => self.oauth()?.revoke(&cfg, access, refresh).await,
                Err(AppError::Config(message)) => Err(OAuthError::Config(message)),
                Err(e) => return Err(e),
            },
        };
        self.forget(name)?;
        Ok(match remote {
            Ok(outcome) if outcome.any_revoked() => {
                let which = match (&outcome.refresh, &outcome.access) {
                    (Revocation::Revoked, Revocation::Revoked) => "refresh and access tokens",
                    (Revocation::Revoked, _) => "refresh token",
                    _ => "access token",
                };
                format!("revoked the {which} at the provider and removed them locally")
            }
            Ok(_) => {
                "the provider cannot revoke these tokens (unsupported_token_type); removed locally"
                    .into()
            }
            Err(OAuthError::NoRevocationEndpoint) if account.exchange_proxy.is_some() => {
                "the exchange proxy has no revocation endpoint for this client; tokens removed locally only".into()
            }
            Err(OAuthError::NoRevocationEndpoint) => {
                "the provider has no revocation endpoint; tokens removed locally only".into()
            }
            Err(e) => {
                format!("warning: revocation at the provider failed ({e}); tokens removed locally")
            }
        })
    }

    /// Forgets `name`'s tokens locally (not at the provider). Keeps a stored client secret.
    /// Returns whether there was anything to forget.
    pub fn logout(&self, name: &str) -> Result<bool> {
        self.account(name)?;
        self.forget(name)
    }

    fn forget(&self, name: &str) -> Result<bool> {
        self.vault.update(|records| {
            let Some(rec) = records.get_mut(name) else {
                return Ok::<_, AppError>(false);
            };
            let had = rec.access_token.is_some() || rec.refresh_token.is_some();
            if rec.client_secret.is_some() {
                rec.access_token = None;
                rec.refresh_token = None;
                rec.id_token = None;
                rec.narrowed.clear();
                rec.expires_at = None;
                rec.state = StoredState::NeedsLogin;
            } else {
                records.remove(name);
            }
            Ok(had)
        })
    }
}
