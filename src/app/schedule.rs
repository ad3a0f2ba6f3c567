//! When to refresh: the EXP-4 margin, shared by the CLI, the scheduler and the dashboard.

use std::time::{Duration, SystemTime};

/// Lower bound of the refresh margin (EXP-4).
pub const MIN_MARGIN: Duration = Duration::from_secs(60);

/// The refresh margin for a token of `lifetime`: max(60 s, 10 % of the lifetime), capped at half
/// the lifetime, so a 30 s token refreshes with 15 s left and never in a loop (EXP-4).
pub fn margin(lifetime: Duration) -> Duration {
    let tenth = lifetime / 10;
    tenth.max(MIN_MARGIN).min(lifetime / 2)
}

/// The moment a token obtained at `obtained_at` and expiring at `expires_at` falls due.
/// `None` when the expiry is unknown (EXP-3: never refreshed on a timer).
pub fn due_at(obtained_at: SystemTime, expires_at: Option<SystemTime>) -> Option<SystemTime> {
    let expires_at = expires_at?;
    let lifetime = expires_at
        .duration_since(obtained_at)
        .unwrap_or(Duration::ZERO);
    Some(expires_at - margin(lifetime))
}

/// True when the token should be refreshed at `now`.
pub fn is_due(now: SystemTime, obtained_at: SystemTime, expires_at: Option<SystemTime>) -> bool {
    due_at(obtained_at, expires_at).is_some_and(|due| now >= due)
}

#[cfg(test)]
mod tests {
    use super::*;

    const T0: SystemTime = SystemTime::UNIX_EPOCH;

    fn secs(s: u64) -> Duration {
        Duration::from_secs(s)
    }

    #[test]
    fn exp4_margin_rules() {
        assert_eq!(margin(secs(3600)), secs(360), "10 % of an hour");
        assert_eq!(margin(secs(300)), secs(60), "at least 60 s");
        assert_eq!(margin(secs(30)), secs(15), "capped at half the lifetime");
        assert_eq!(margin(Duration::ZERO), Duration::ZERO);
    }

    #[test]
    fn exp4_thirty_second_token_due_at_fifteen_seconds_left() {
        let exp = Some(T0 + secs(30));
        assert!(!is_due(T0 + secs(14), T0, exp));
        assert!(is_due(T0 + secs(15), T0, exp));
    }

    #[test]
    fn exp3_unknown_expiry_is_never_due() {
        assert!(!is_due(T0 + secs(1_000_000), T0, None));
    }
}
