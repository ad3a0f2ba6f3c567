//! Refresh with one request in flight per account across all processes (REF-2): take the
//! account's lock from the store (a lock file, or a lease on etcd), re-read the vault, skip the request if another process already
//! refreshed, and persist a rotated refresh token before anyone uses the new access token
//! (REF-3).

use super::status::{self, unix};
use super::{App, AppError, Result, apply_tokens, refresh_config};
use crate::oauth::{ClientConfig, FailureKind, OAuthError, TokenSet};
use crate::provider::HintStage;
use crate::provider::Provider;
use crate::secret::AccessToken;
use crate::vault::{
    AccountLock, Fence, LoginGrant, Record, Records, RefreshAttempt, RefreshOutcome, StoredState,
};
use std::time::SystemTime;

/// What a refresh did, for the CLI, the dashboard's refresh panel and logs. No secrets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refreshed {
    /// Not due: the stored token was used.
    NotDue,
    /// Another process refreshed while we waited for the lock.
    ByOther,
    /// We refreshed; `rotated` says whether a new refresh token came back.
    Done {
        /// New absolute expiry (Unix seconds), if known.
        expires_at: Option<i64>,
        /// The refresh token was rotated.
        rotated: bool,
    },
    /// No refresh token (e.g. GitHub OAuth apps): the stored token is all there is.
    NoRefreshToken,
    /// The refresh failed transiently but the stored token has not expired yet.
    FailedButValid {
        /// Why it failed, one line.
        reason: String,
    },
}

/// `name`'s stored access token when it is not due for a refresh: `None` when it is due (ask
/// [`App::fresh_token`]), an error when there is none to give. No lock, no request, no runtime:
/// this is what lets `--export` of valid tokens cost one decryption for any number of accounts.
pub fn token_if_not_due(
    name: &str,
    record: Option<&Record>,
    now: SystemTime,
) -> Option<Result<AccessToken>> {
    match record {
        Some(r) if r.access_token.is_some() && r.state != StoredState::NeedsLogin => {
            (!status::is_due(r, now)).then(|| token_of(name, r))
        }
        _ => Some(Err(AppError::NeedsLogin(name.to_string()))),
    }
}

impl App {
    /// A usable access token for `name`, refreshed first when due (or when `force`).
    pub async fn fresh_token(&self, name: &str, force: bool) -> Result<(AccessToken, Refreshed)> {
        let account = self.account(name)?;
        if account.grant == crate::provider::AccountGrant::ClientCredentials {
            return self.machine_token(name, force).await;
        }
        let before = self.current()?.records.get(name).cloned();
        let before = usable(name, before)?;
        if !force && !status::is_due(&before, SystemTime::now()) {
            return Ok((token_of(name, &before)?, Refreshed::NotDue));
        }
        let lock = self.lock_account(name).await?;
        // ETCD-4: every save made for this refresh checks that the lock is still ours.
        let fences: Vec<Fence> = lock.fence().cloned().into_iter().collect();
        // Re-read under the lock: another process may have refreshed meanwhile (REF-2).
        let current = usable(name, self.current()?.records.get(name).cloned())?;
        if current.obtained_at != before.obtained_at
            || (!force && !status::is_due(&current, SystemTime::now()))
        {
            return Ok((token_of(name, &current)?, Refreshed::ByOther));
        }
        let Some(refresh_token) = current.refresh_token.clone() else {
            return if expired(&current) {
                Err(AppError::NeedsLogin(name.to_string()))
            } else {
                Ok((token_of(name, &current)?, Refreshed::NoRefreshToken))
            };
        };
        let grant = current.login_grant.unwrap_or(LoginGrant::Code);
        let cfg = refresh_config(
            self.client_config_for(account, grant).await?,
            account,
            &current,
        );
        let result = match &account.exchange_proxy {
            Some(proxy) => {
                self.oauth()?
                    .refresh_via_proxy(proxy, &cfg, &refresh_token)
                    .await
            }
            None => self.oauth()?.refresh(&cfg, &refresh_token).await,
        };
        let result = self
            .vet_refreshed_id_token(name, &cfg, &current, result)
            .await;
        match result {
            Ok(tokens) => {
                let rotated = tokens.refresh_token.is_some();
                let (record, snap) = self
                    .save_refreshed(name, account, &cfg, &current, tokens, &fences)
                    .await?;
                self.remember(std::sync::Arc::new(snap));
                let token = token_of(name, &record)?;
                Ok((
                    token,
                    Refreshed::Done {
                        expires_at: record.expires_at,
                        rotated,
                    },
                ))
            }
            Err(err) => self.refresh_failed(name, account, &current, err, &fences),
        }
    }

    /// Takes `name`'s refresh lock through the vault's store (REF-2): a lock file beside a file
    /// vault, a lease-backed lock on etcd (ETCD-3). Waits on a blocking thread.
    pub(super) async fn lock_account(&self, name: &str) -> Result<AccountLock> {
        let store = self.vault.store();
        let name = name.to_string();
        tokio::task::spawn_blocking(move || store.lock_account(&name))
            .await
            .map_err(|e| AppError::Config(format!("lock task failed: {e}")))?
            .map_err(AppError::from)
    }
}

/// Notes a failed refresh in `name`'s record: REF-6 for a dead refresh token, an error state
/// for a configuration problem, the attempt itself always.
pub(super) fn record_failure(records: &mut Records, name: &str, err: &OAuthError) {
    let Some(rec) = records.get_mut(name) else {
        return;
    };
    let reason = err.to_string();
    rec.last_refresh = Some(RefreshAttempt {
        at: unix(SystemTime::now()),
        outcome: RefreshOutcome::Failed {
            message: reason.clone(),
        },
    });
    match err.kind() {
        FailureKind::NeedsLogin => {
            // REF-6: the refresh token is dead; keep the rest of the record.
            rec.refresh_token = None;
            rec.state = StoredState::NeedsLogin;
        }
        FailureKind::Misconfigured => {
            // REF-7: kept until the next success or login, with what to fix.
            let message = match err.fix_hint() {
                Some(fix) => format!("{reason}; {fix}"),
                None => reason,
            };
            rec.state = StoredState::Error { message };
        }
        FailureKind::Transient | FailureKind::Refused | FailureKind::Cancelled => {}
    }
}

/// What the caller of a failed refresh gets: the stored token while it is still valid and the
/// failure transient, else an error.
pub(super) fn failure_result(
    name: &str,
    account: &Provider,
    current: &Record,
    err: OAuthError,
) -> Result<(AccessToken, Refreshed)> {
    let reason = err.to_string();
    let kind = err.kind();
    if kind == FailureKind::NeedsLogin {
        let code = err
            .code()
            .map_or_else(|| reason.clone(), ToString::to_string);
        // PROV-9: the provider's likely cause (Google: a "Testing" app's 7-day refresh tokens).
        let reason = match account.error_hint(HintStage::Refresh, "invalid_grant") {
            Some(hint) => format!("{code}; likely cause: {hint}"),
            None => code,
        };
        return Err(AppError::RefreshRefused {
            name: name.to_string(),
            reason,
        });
    }
    if kind == FailureKind::Transient && !expired(current) {
        return Ok((
            token_of(name, current)?,
            Refreshed::FailedButValid { reason },
        ));
    }
    Err(AppError::oauth(name, err))
}

/// Applies a successful refresh to `name`'s record (REF-4 via `apply_tokens`); returns it.
pub(super) fn record_success(
    records: &mut Records,
    name: &str,
    account: &Provider,
    cfg: &ClientConfig,
    tokens: TokenSet,
) -> Record {
    let mut rec = apply_tokens(records.get(name), account, cfg, tokens);
    rec.refresh_count += 1;
    rec.last_refresh = Some(RefreshAttempt {
        at: unix(SystemTime::now()),
        outcome: RefreshOutcome::Ok,
    });
    records.insert(name.to_string(), rec.clone());
    rec
}

/// The record if it can give a token at all.
pub(super) fn usable(name: &str, record: Option<Record>) -> Result<Record> {
    match record {
        Some(r) if r.access_token.is_some() && r.state != StoredState::NeedsLogin => Ok(r),
        _ => Err(AppError::NeedsLogin(name.to_string())),
    }
}

pub(super) fn token_of(name: &str, record: &Record) -> Result<AccessToken> {
    let token = record
        .access_token
        .clone()
        .ok_or_else(|| AppError::NeedsLogin(name.to_string()))?;
    // HARD-9: tokens are checked when received; one stored by an older build that would put
    // control characters on a terminal or into a shell is not handed out.
    if !crate::oauth::wire::is_vschar(token.secret()) {
        return Err(AppError::NeedsLogin(name.to_string()));
    }
    Ok(token)
}

pub(super) fn expired(record: &Record) -> bool {
    record
        .expires_at
        .is_some_and(|exp| unix(SystemTime::now()) >= exp)
}
