//! Tokens handed to other programs (git, kubectl, mail clients, scripts): one access token with
//! what the receiving program wants beside it (its expiry, the account's e-mail), a minimum
//! remaining validity (`--min-valid`), and git's "this token was rejected" (`erase`), which
//! marks the stored access token stale so the next request refreshes (GIT-4).

use super::refresh::Refreshed;
use super::status::unix;
use super::{App, AppError, Result};
use crate::oauth::idtoken::decode_unverified;
use crate::secret::{AccessToken, AnyToken};
use std::time::{Duration, SystemTime};

/// An access token and what the receiving program may want with it. No refresh token.
#[derive(Debug, Clone)]
pub struct Handed {
    /// The token.
    pub token: AccessToken,
    /// Its absolute expiry (Unix seconds), when the provider said.
    pub expires_at: Option<i64>,
    /// The account's e-mail from its id_token, for SASL's `user=`.
    pub email: Option<String>,
}

impl App {
    /// A token for `name` valid for at least `min_valid` more (refreshed first when due, or
    /// when less than `min_valid` remains), and how it was obtained.
    pub async fn hand_token(&self, name: &str, min_valid: Duration) -> Result<(Handed, Refreshed)> {
        let now = SystemTime::now();
        let short = self
            .current()?
            .records
            .get(name)
            .is_some_and(|r| remaining_below(r.expires_at, now, min_valid));
        let (token, how) = self.fresh_token(name, short).await?;
        let snap = self.current()?;
        let record = snap.records.get(name);
        let handed = Handed {
            token,
            expires_at: record.and_then(|r| r.expires_at),
            email: record.and_then(|r| r.claims.email.clone()),
        };
        Ok((handed, how))
    }

    /// Marks `name`'s access token stale when it is `rejected` (what git sent with `erase`), so
    /// the next request refreshes. The refresh token is kept; a token other than the stored
    /// one (already replaced by a refresh) changes nothing. Returns whether it was marked.
    pub fn mark_stale(&self, name: &str, rejected: &AccessToken) -> Result<bool> {
        self.account(name)?;
        let now = unix(SystemTime::now());
        self.vault().update(|records| {
            let Some(rec) = records.get_mut(name) else {
                return Ok::<_, AppError>(false);
            };
            let current = rec.access_token.as_ref();
            if !current.is_some_and(|t| t.ct_eq(rejected.secret())) {
                return Ok(false);
            }
            // Expired now, obtained before: due for the schedule (EXP-4) and for `token`.
            rec.expires_at = Some(now);
            rec.obtained_at = Some(rec.obtained_at.map_or(now - 1, |o| o.min(now - 1)));
            Ok(true)
        })
    }
}

impl App {
    /// `name`'s stored ID token and its `exp`, refreshing first when it has less than a
    /// minute left (providers send a new one with each refresh). An account whose provider
    /// gave none, or gives no new one on refresh, is an error that says so.
    pub async fn hand_id_token(&self, name: &str) -> Result<(AnyToken, Option<i64>)> {
        let stored = |app: &App| -> Result<Option<(AnyToken, Option<i64>)>> {
            let snap = app.current()?;
            Ok(snap
                .records
                .get(name)
                .and_then(|r| r.id_token.as_ref())
                .map(|t| {
                    let exp = decode_unverified(t).ok().and_then(|c| c.exp);
                    (AnyToken::new(t.secret()), exp)
                }))
        };
        let min = Duration::from_secs(60);
        let now = SystemTime::now();
        if let Some((t, exp)) = stored(self)? {
            if !remaining_below(exp, now, min) {
                return Ok((t, exp));
            }
            self.fresh_token(name, true).await?;
            if let Some((t, exp)) = stored(self)?
                && !remaining_below(exp, SystemTime::now(), min)
            {
                return Ok((t, exp));
            }
            return Err(AppError::Config(format!(
                "the provider of {name} gave no new ID token on refresh; log in again (authdeck login {name})"
            )));
        }
        Err(AppError::Config(format!(
            "{name} has no ID token: its provider sent none (request the \"openid\" scope and log in again)"
        )))
    }
}

/// Whether less than `min_valid` remains before `expires_at` (an unknown expiry never is).
pub fn remaining_below(expires_at: Option<i64>, now: SystemTime, min_valid: Duration) -> bool {
    if min_valid.is_zero() {
        return false;
    }
    let Some(exp) = expires_at else {
        return false;
    };
    let min = i64::try_from(min_valid.as_secs()).unwrap_or(i64::MAX);
    exp.saturating_sub(unix(now)) < min
}

/// Parses a duration such as `90`, `90s`, `10m`, `2h` or `1d` (`--min-valid`, `--lock-after`).
pub fn parse_duration(text: &str) -> std::result::Result<Duration, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (digits, unit) = text.split_at(split);
    let n: u64 = digits
        .parse()
        .map_err(|_| format!("{text:?} is not a duration such as 90s, 10m or 2h"))?;
    let factor = match unit {
        "" | "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => return Err(format!("unknown unit {unit:?}: use s, m, h or d")),
    };
    n.checked_mul(factor)
        .filter(|s| *s <= 366 * 86_400)
        .map(Duration::from_secs)
        .ok_or_else(|| format!("{text:?} is longer than a year"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("90"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("10m"), Ok(Duration::from_secs(600)));
        assert_eq!(parse_duration("2h"), Ok(Duration::from_secs(7200)));
        assert_eq!(parse_duration("1d"), Ok(Duration::from_secs(86_400)));
        assert!(parse_duration("10x").is_err());
        assert!(parse_duration("m").is_err());
        assert!(parse_duration("99999999999999999999").is_err());
        assert!(parse_duration("400d").is_err());
    }

    #[test]
    fn min_valid_rule() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1000);
        let ten = Duration::from_secs(600);
        assert!(remaining_below(Some(1000 + 599), now, ten));
        assert!(!remaining_below(Some(1000 + 600), now, ten));
        assert!(!remaining_below(None, now, ten));
        assert!(!remaining_below(Some(0), now, Duration::ZERO));
        assert!(remaining_below(Some(i64::MIN), now, ten));
    }
}
