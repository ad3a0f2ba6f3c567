//! Getting tokens out: what `token`, `--export` and the agent's answers share, so the agent
//! path and the direct path produce the same tokens, the same warnings and the same errors
//! (AGENT-9).

use super::refresh::{Refreshed, token_if_not_due};
use super::status::{human_duration, unix};
use super::{App, AppError, Result};
use crate::secret::AccessToken;
use crate::vault::Snapshot;
use std::time::{Duration, SystemTime};

/// One account's export result: its (variable, token), or why it has none.
pub type ExportSlot = Result<(String, AccessToken)>;

/// A token with what the caller should know about it.
#[derive(Debug)]
pub struct TokenAnswer {
    /// The access token.
    pub token: AccessToken,
    /// Its expiry (Unix seconds), when known.
    pub expires_at: Option<i64>,
    /// A line for stderr: the refresh failed transiently but the token is still valid.
    pub warning: Option<String>,
}

impl App {
    /// Accounts with tokens in `snap` and a file, valid or not (a broken one is then named with
    /// its problem rather than skipped without a word), in name order.
    pub fn logged_in(&self, snap: &Snapshot) -> Vec<String> {
        snap.records
            .iter()
            .filter(|(name, r)| {
                r.access_token.is_some()
                    && !matches!(self.account(name), Err(AppError::UnknownAccount(_)))
            })
            .map(|(name, _)| name.clone())
            .collect()
    }

    /// `--export NAMES` (every logged-in account when empty): each account's (variable, token)
    /// or error, in order; what is due is refreshed first.
    pub async fn export_slots(&self, names: &[String]) -> Result<Vec<(String, ExportSlot)>> {
        let snap = self.current()?;
        let names: Vec<String> = if names.is_empty() {
            self.logged_in(&snap)
        } else {
            names.to_vec()
        };
        let now = SystemTime::now();
        let mut out = Vec::with_capacity(names.len());
        for name in names {
            let slot = match self.account(&name).map(|p| p.export_var_name()) {
                Ok(var) => match token_if_not_due(&name, snap.records.get(&name), now) {
                    Some(token) => token.map(|t| (var, t)),
                    None => self.fresh_token(&name, false).await.map(|(t, _)| (var, t)),
                },
                Err(e) => Err(e),
            };
            out.push((name, slot));
        }
        Ok(out)
    }

    /// `name`'s token, refreshed first when due, when `force`, or when it would expire within
    /// `min_valid`.
    pub async fn token_at_least(
        &self,
        name: &str,
        min_valid: Duration,
        force: bool,
    ) -> Result<TokenAnswer> {
        let (mut token, mut how) = self.fresh_token(name, force).await?;
        let mut expires_at = self.expires_at(name);
        let short = |exp: Option<i64>| {
            let min = i64::try_from(min_valid.as_secs()).unwrap_or(i64::MAX);
            exp.is_some_and(|e| e.saturating_sub(unix(SystemTime::now())) < min)
        };
        if !min_valid.is_zero() && short(expires_at) && !matches!(how, Refreshed::Done { .. }) {
            (token, how) = self.fresh_token(name, true).await?;
            expires_at = self.expires_at(name);
        }
        let warning = match how {
            Refreshed::FailedButValid { reason } => Some(format!(
                "refresh failed ({reason}); the current token is still valid"
            )),
            _ => None,
        };
        Ok(TokenAnswer {
            token,
            expires_at,
            warning,
        })
    }

    fn expires_at(&self, name: &str) -> Option<i64> {
        self.current()
            .ok()
            .and_then(|s| s.records.get(name).and_then(|r| r.expires_at))
    }
}

/// How `authdeck refresh` words one account's outcome.
pub fn describe(how: &Refreshed) -> String {
    match how {
        Refreshed::Done {
            expires_at,
            rotated,
        } => format!(
            "refreshed{}; {}",
            if *rotated {
                " (refresh token rotated)"
            } else {
                ""
            },
            expires_at.map_or_else(
                || "expiry unknown".to_string(),
                |e| format!("expires in {}", human_duration(e - unix(SystemTime::now())))
            )
        ),
        Refreshed::ByOther => "already refreshed by another process".into(),
        Refreshed::NotDue => "not due".into(),
        Refreshed::NoRefreshToken => {
            "no refresh token (the provider issues none); token kept".into()
        }
        Refreshed::FailedButValid { reason } => {
            format!("refresh failed ({reason}); the current token is still valid")
        }
    }
}
