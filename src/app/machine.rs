//! Machine accounts (`grant = "client_credentials"`; MACH-1): no person logs in; the client's
//! own credentials fetch a token when none is stored or the stored one is due, under the
//! account's refresh lock so that processes asking at once make one request (REF-2).

use super::refresh::{Refreshed, token_of};
use super::{App, AppError, Result, apply_tokens, status};
use crate::secret::AccessToken;
use crate::vault::{Record, StoredState};
use std::time::SystemTime;

/// The stored token of a machine account while it is usable and not due.
fn current_token(record: Option<&Record>, now: SystemTime) -> Option<&AccessToken> {
    let rec = record?;
    let usable = rec.state == StoredState::Valid && !super::refresh::expired(rec);
    (usable && !status::is_due(rec, now))
        .then_some(())
        .and(rec.access_token.as_ref())
}

impl App {
    /// A token for machine account `name`: the stored one while not due (unless `force`), else a
    /// new one from the client credentials grant, saved before it is handed out.
    pub(super) async fn machine_token(
        &self,
        name: &str,
        force: bool,
    ) -> Result<(AccessToken, Refreshed)> {
        let account = self.account(name)?;
        let before = self.current()?.records.get(name).cloned();
        if !force && let Some(t) = current_token(before.as_ref(), SystemTime::now()) {
            return Ok((t.clone(), Refreshed::NotDue));
        }
        let _lock = self.lock_account(name).await?;
        let current = self.current()?.records.get(name).cloned();
        let changed =
            current.as_ref().map(|r| r.obtained_at) != before.as_ref().map(|r| r.obtained_at);
        if (changed || !force)
            && let Some(t) = current_token(current.as_ref(), SystemTime::now())
        {
            return Ok((t.clone(), Refreshed::ByOther));
        }
        let cfg = self.client_config(account).await?;
        let tokens = match self.oauth()?.client_credentials(&cfg).await {
            Ok(t) => t,
            Err(err) => {
                // A transient failure while the stored token still works: keep using it.
                if err.is_transient()
                    && let Some(rec) = current.as_ref().filter(|r| !super::refresh::expired(r))
                    && rec.access_token.is_some()
                {
                    return Ok((
                        token_of(name, rec)?,
                        Refreshed::FailedButValid {
                            reason: err.to_string(),
                        },
                    ));
                }
                return Err(AppError::oauth(name, err));
            }
        };
        let (record, snap) = self.vault().update_snapshot(|records| {
            let rec = apply_tokens(records.get(name), account, &cfg, tokens);
            records.insert(name.to_owned(), rec.clone());
            Ok::<_, AppError>(rec)
        })?;
        self.remember(std::sync::Arc::new(snap));
        Ok((
            token_of(name, &record)?,
            Refreshed::Done {
                expires_at: record.expires_at,
                rotated: false,
            },
        ))
    }
}
