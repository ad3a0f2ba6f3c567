//! What an account looks like right now: the state shown by `status`, the dashboard and the
//! scheduler, computed from its record and the clock (never from the network).

use super::schedule;
use crate::provider::Provider;
use crate::vault::{Record, RefreshOutcome, StoredState};
use serde::{Deserialize, Serialize};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The state of an account as users see it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Health {
    /// Tokens present, not yet due for refresh.
    Valid,
    /// Inside the refresh margin (EXP-4): refreshed on the next use.
    Expiring,
    /// Past its expiry.
    Expired,
    /// No usable tokens.
    NeedsLogin,
    /// The last operation failed.
    Error,
}

impl Health {
    /// The word shown to users.
    pub fn as_str(self) -> &'static str {
        match self {
            Health::Valid => "valid",
            Health::Expiring => "expiring",
            Health::Expired => "expired",
            Health::NeedsLogin => "needs login",
            Health::Error => "error",
        }
    }
}

/// One account's status, ready to print or serialize (`status --json`); holds no secret.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AccountStatus {
    /// The account name.
    pub account: String,
    /// The provider (template) it extends, or its own name.
    pub provider: String,
    /// valid / expiring / expired / needs login / error.
    pub state: Health,
    /// Seconds until the access token expires (negative when expired); `None` when unknown.
    pub expires_in: Option<i64>,
    /// Absolute expiry, Unix seconds.
    pub expires_at: Option<i64>,
    /// Email, else subject, from the id_token.
    pub identity: Option<String>,
    /// Granted scopes.
    pub scopes: Vec<String>,
    /// When the last refresh finished, Unix seconds.
    pub last_refresh: Option<i64>,
    /// Whether that refresh succeeded.
    pub last_refresh_ok: Option<bool>,
    /// The last error, one line.
    pub error: Option<String>,
    /// Successful refreshes.
    pub refresh_count: u64,
    /// Whether a refresh token is held.
    pub has_refresh_token: bool,
    /// Narrower tokens kept beside the main one (REF-9): what each is for and its expiry.
    pub narrowed: Vec<NarrowedStatus>,
    /// A machine account (MACH-1): it needs no login; without a token it has simply not been
    /// asked for one yet.
    pub machine: bool,
}

/// One narrower token of an account, as `status` shows it. No secret.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NarrowedStatus {
    /// What was asked: `scope=…`, `resource=…`, `audience=…`.
    pub key: String,
    /// Seconds until it expires (negative when expired); `None` when unknown.
    pub expires_in: Option<i64>,
}

/// Seconds since the Unix epoch for `t` (negative before 1970).
pub fn unix(t: SystemTime) -> i64 {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
        Err(e) => -i64::try_from(e.duration().as_secs()).unwrap_or(i64::MAX),
    }
}

/// The `SystemTime` of Unix seconds `s`.
pub fn from_unix(s: i64) -> SystemTime {
    if s >= 0 {
        UNIX_EPOCH + Duration::from_secs(s.unsigned_abs())
    } else {
        UNIX_EPOCH - Duration::from_secs(s.unsigned_abs())
    }
}

/// True when `record` holds an access token that should be refreshed at `now` (EXP-4).
pub fn is_due(record: &Record, now: SystemTime) -> bool {
    let (Some(obtained), Some(expires)) = (record.obtained_at, record.expires_at) else {
        return false;
    };
    schedule::is_due(now, from_unix(obtained), Some(from_unix(expires)))
}

/// The user-facing state of `record` at `now`.
pub fn health(record: Option<&Record>, now: SystemTime) -> Health {
    let Some(record) = record else {
        return Health::NeedsLogin;
    };
    match &record.state {
        StoredState::NeedsLogin => return Health::NeedsLogin,
        StoredState::Error { .. } => return Health::Error,
        StoredState::Valid => {}
    }
    if record.access_token.is_none() {
        return Health::NeedsLogin;
    }
    match record.expires_at {
        Some(exp) if unix(now) >= exp => Health::Expired,
        _ if is_due(record, now) => Health::Expiring,
        _ => Health::Valid,
    }
}

/// The account's last error, one line: its error state, else a failed last refresh.
pub fn last_error(record: &Record) -> Option<String> {
    match (&record.state, &record.last_refresh) {
        (StoredState::Error { message }, _) => Some(message.clone()),
        (_, Some(attempt)) => match &attempt.outcome {
            RefreshOutcome::Failed { message } => Some(message.clone()),
            RefreshOutcome::Ok => None,
        },
        _ => None,
    }
}

/// Builds the status of `provider`'s account from its record.
pub fn account_status(
    provider: &Provider,
    record: Option<&Record>,
    now: SystemTime,
) -> AccountStatus {
    let state = health(record, now);
    let identity = record.and_then(|r| r.claims.email.clone().or_else(|| r.claims.subject.clone()));
    let error = record.and_then(last_error);
    AccountStatus {
        account: provider.name.clone(),
        provider: provider
            .template
            .clone()
            .unwrap_or_else(|| provider.name.clone()),
        state,
        expires_in: record.and_then(|r| r.expires_at).map(|exp| exp - unix(now)),
        expires_at: record.and_then(|r| r.expires_at),
        identity,
        scopes: record.map(|r| r.scopes.clone()).unwrap_or_default(),
        last_refresh: record.and_then(|r| r.last_refresh.as_ref().map(|a| a.at)),
        last_refresh_ok: record.and_then(|r| {
            r.last_refresh
                .as_ref()
                .map(|a| matches!(a.outcome, RefreshOutcome::Ok))
        }),
        error,
        refresh_count: record.map_or(0, |r| r.refresh_count),
        has_refresh_token: record.is_some_and(|r| r.refresh_token.is_some()),
        machine: provider.grant == crate::provider::AccountGrant::ClientCredentials,
        narrowed: record
            .map(|r| {
                r.narrowed
                    .iter()
                    .filter(|(_, t)| t.access_token.is_some())
                    .map(|(key, t)| NarrowedStatus {
                        key: key.clone(),
                        expires_in: t.expires_at.map(|exp| exp - unix(now)),
                    })
                    .collect()
            })
            .unwrap_or_default(),
    }
}

/// `1h 02m`, `4m 05s`, `29s`, `3d 04h`: a compact duration for tables.
pub fn human_duration(secs: i64) -> String {
    let s = secs.unsigned_abs();
    let text = match s {
        0..60 => format!("{s}s"),
        60..3600 => format!("{}m {:02}s", s / 60, s % 60),
        3600..86400 => format!("{}h {:02}m", s / 3600, (s % 3600) / 60),
        _ => format!("{}d {:02}h", s / 86400, (s % 86400) / 3600),
    };
    if secs < 0 { format!("-{text}") } else { text }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::secret::AccessToken;

    fn record(obtained: i64, expires: Option<i64>) -> Record {
        Record {
            access_token: Some(AccessToken::new("t")),
            obtained_at: Some(obtained),
            expires_at: expires,
            state: StoredState::Valid,
            ..Record::default()
        }
    }

    #[test]
    fn health_follows_the_clock() {
        let r = record(0, Some(3600));
        assert_eq!(health(Some(&r), from_unix(100)), Health::Valid);
        assert_eq!(health(Some(&r), from_unix(3300)), Health::Expiring);
        assert_eq!(health(Some(&r), from_unix(3600)), Health::Expired);
        assert_eq!(health(None, from_unix(0)), Health::NeedsLogin);
        let never = record(0, None);
        assert_eq!(health(Some(&never), from_unix(1 << 40)), Health::Valid);
    }

    #[test]
    fn needs_login_and_error_states_win() {
        let mut r = record(0, Some(3600));
        r.state = StoredState::NeedsLogin;
        assert_eq!(health(Some(&r), from_unix(1)), Health::NeedsLogin);
        r.state = StoredState::Error {
            message: "x".into(),
        };
        assert_eq!(health(Some(&r), from_unix(1)), Health::Error);
    }

    #[test]
    fn human_durations() {
        assert_eq!(human_duration(29), "29s");
        assert_eq!(human_duration(245), "4m 05s");
        assert_eq!(human_duration(7380), "2h 03m");
        assert_eq!(human_duration(-12), "-12s");
    }
}
