//! Narrower tokens (REF-9): a token for another scope, resource or audience than the account's
//! own, obtained with the account's refresh token, kept in the vault beside the main token
//! under the key of what was asked, and refreshed on its own. Microsoft issues one resource per
//! access token, so Graph and IMAP need two; `--resource graph` names a scope set of the
//! account's `[resources]` table.
//!
//! A refusal (`invalid_scope`, `invalid_target`, …) is an error that changes nothing. Only
//! `invalid_grant` touches the account: its refresh token is dead for every token (REF-6).

use super::handoff::{Handed, remaining_below};
use super::refresh::{failure_result, record_failure, usable};
use super::status::unix;
use super::{App, AppError, Result, refresh_config, schedule};
use crate::oauth::{Narrowing, TokenSet};
use crate::vault::{LoginGrant, NarrowedToken, Record};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// What the command line asked for, before the account's `[resources]` names are looked up.
#[derive(Debug, Clone, Default)]
pub struct NarrowRequest {
    /// `--scope "A B"`.
    pub scope: Option<String>,
    /// `--resource URL|NAME`.
    pub resource: Option<String>,
    /// `--audience X`.
    pub audience: Option<String>,
}

impl NarrowRequest {
    /// Whether anything was asked.
    pub fn is_empty(&self) -> bool {
        self.scope.is_none() && self.resource.is_none() && self.audience.is_none()
    }
}

impl App {
    /// The [`Narrowing`] for `name`: a `--resource` that is not a URL names a scope set of the
    /// account's `[resources]`.
    pub fn narrowing(&self, name: &str, req: &NarrowRequest) -> Result<Narrowing> {
        let account = self.account(name)?;
        let named = req
            .resource
            .as_deref()
            .filter(|r| url::Url::parse(r).is_err());
        if let Some(resource) = named {
            let Some(scopes) = account.resources.get(resource) else {
                let known: Vec<&str> = account.resources.keys().map(String::as_str).collect();
                return Err(AppError::Config(format!(
                    "{name} names no resource {resource:?} (its [resources]: {}); give a URL for RFC 8707",
                    if known.is_empty() {
                        "none".to_owned()
                    } else {
                        known.join(", ")
                    }
                )));
            };
            let joined = scopes.join(" ");
            return Narrowing::new(Some(&joined), None, req.audience.as_deref())
                .map_err(AppError::Config);
        }
        Narrowing::new(
            req.scope.as_deref(),
            req.resource.as_deref(),
            req.audience.as_deref(),
        )
        .map_err(AppError::Config)
    }

    /// The token `req` asks for: the account's own (refreshed when due or when less than
    /// `min_valid` remains) when `req` is empty, else the narrowed one.
    pub async fn token_as_asked(
        &self,
        name: &str,
        req: &NarrowRequest,
        min_valid: Duration,
    ) -> Result<(Handed, super::refresh::Refreshed)> {
        if req.is_empty() {
            return self.hand_token(name, min_valid).await;
        }
        let narrow = self.narrowing(name, req)?;
        let handed = self.narrowed_token(name, &narrow, min_valid).await?;
        Ok((handed, super::refresh::Refreshed::NotDue))
    }

    /// A narrower token for `name`, valid for at least `min_valid` more: the stored one while it
    /// is not due, else a new one from the refresh token, under the account's refresh lock so
    /// that processes asking at once make one request (REF-2).
    pub async fn narrowed_token(
        &self,
        name: &str,
        narrow: &Narrowing,
        min_valid: Duration,
    ) -> Result<Handed> {
        let key = narrow.key();
        let account = self.account(name)?;
        let before = usable(name, self.current()?.records.get(name).cloned())?;
        if let Some(h) = fresh_enough(&before, &key, min_valid) {
            return Ok(h);
        }
        let _lock = self.lock_account(name).await?;
        let current = usable(name, self.current()?.records.get(name).cloned())?;
        if let Some(h) = fresh_enough(&current, &key, min_valid) {
            return Ok(h);
        }
        let Some(refresh_token) = current.refresh_token.clone() else {
            return Err(AppError::Config(format!(
                "{name} has no refresh token, so no token for another scope or resource can be asked for"
            )));
        };
        if account.exchange_proxy.is_some() {
            return Err(AppError::Config(format!(
                "{name} refreshes through an exchange proxy, which asks only for the account's own scope"
            )));
        }
        let grant = current.login_grant.unwrap_or(LoginGrant::Code);
        let cfg = refresh_config(
            self.client_config_for(account, grant).await?,
            account,
            &current,
        );
        match self
            .oauth()?
            .refresh_narrowed(&cfg, &refresh_token, narrow)
            .await
        {
            Ok(tokens) => self.store_narrowed(name, &key, tokens),
            Err(err) if err.is_invalid_grant() => {
                self.vault().update(|records| {
                    record_failure(records, name, &err);
                    Ok::<_, AppError>(())
                })?;
                // REF-6: the same answer as a refresh of the main token refused this way.
                Err(failure_result(name, account, &current, err)
                    .err()
                    .unwrap_or_else(|| AppError::NeedsLogin(name.to_owned())))
            }
            Err(err) => Err(AppError::oauth(name, err)),
        }
    }

    /// Saves a narrowed token, and the rotated refresh token if one came back, before the
    /// token is handed out (REF-3).
    fn store_narrowed(&self, name: &str, key: &str, tokens: TokenSet) -> Result<Handed> {
        let entry = NarrowedToken {
            access_token: Some(tokens.access_token.clone()),
            scopes: tokens.scopes.clone(),
            obtained_at: Some(unix(tokens.obtained_at)),
            expires_at: tokens.expires_at.map(unix),
        };
        let (email, snap) = self.vault().update_snapshot(|records| {
            let Some(rec) = records.get_mut(name) else {
                return Err(AppError::NeedsLogin(name.to_owned()));
            };
            if let Some(rt) = &tokens.refresh_token {
                rec.refresh_token = Some(rt.clone());
            }
            rec.narrowed.insert(key.to_owned(), entry.clone());
            Ok(rec.claims.email.clone())
        })?;
        self.remember(std::sync::Arc::new(snap));
        Ok(Handed {
            token: tokens.access_token,
            expires_at: entry.expires_at,
            email,
        })
    }
}

/// The stored narrowed token `key` of `record`, when it is not due and has `min_valid` left.
fn fresh_enough(record: &Record, key: &str, min_valid: Duration) -> Option<Handed> {
    let entry = record.narrowed.get(key)?;
    let token = entry.access_token.clone()?;
    let now = SystemTime::now();
    let at = |s: i64| UNIX_EPOCH + Duration::from_secs(u64::try_from(s).unwrap_or(0));
    let due = match (entry.obtained_at, entry.expires_at) {
        (Some(o), Some(e)) => schedule::is_due(now, at(o), Some(at(e))),
        _ => false,
    };
    if due || remaining_below(entry.expires_at, now, min_valid) {
        return None;
    }
    Some(Handed {
        token,
        expires_at: entry.expires_at,
        email: record.claims.email.clone(),
    })
}
