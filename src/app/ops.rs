//! Account operations beyond login and refresh: refreshing many, revoking, logging out.

use super::refresh::Refreshed;
use super::{App, AppError, Result};
use crate::oauth::{OAuthError, Revocation};
use crate::vault::AccountState;
use futures::StreamExt;

impl App {
    /// Refreshes `names` now, due or not, at most `settings.refresh_concurrency` at a time.
    /// Results come back in the order of `names`.
    pub async fn refresh_many(&self, names: &[String]) -> Vec<(String, Result<Refreshed>)> {
        let limit = self.settings.refresh_concurrency.max(1);
        let mut results: Vec<(usize, String, Result<Refreshed>)> =
            futures::stream::iter(names.iter().enumerate())
                .map(|(i, name)| async move {
                    let r = self.fresh_token(name, true).await.map(|(_, how)| how);
                    (i, name.clone(), r)
                })
                .buffer_unordered(limit)
                .collect()
                .await;
        results.sort_by_key(|(i, _, _)| *i);
        results.into_iter().map(|(_, n, r)| (n, r)).collect()
    }

    /// Revokes `name`'s tokens at the provider (RFC 7009), then deletes them locally whatever
    /// the remote outcome (REV-4). Returns a one-line note for the user.
    pub async fn revoke(&self, name: &str) -> Result<String> {
        let account = self.account(name)?;
        let Some(record) = self.vault.get(name)? else {
            return Err(AppError::NeedsLogin(name.to_string()));
        };
        let cfg = self.client_config(account).await?;
        let remote = self
            .oauth()?
            .revoke(
                &cfg,
                record.access_token.as_ref(),
                record.refresh_token.as_ref(),
            )
            .await;
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
                rec.expires_at = None;
                rec.state = AccountState::NeedsLogin;
            } else {
                records.remove(name);
            }
            Ok(had)
        })
    }
}
