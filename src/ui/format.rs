//! Text for times and durations. Pure functions of their arguments: "now" is always passed in,
//! never read from the clock, so rendering stays deterministic.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// A compact duration: `29s`, `4m 05s`, `2h 03m`, `3d`.
pub fn compact(d: Duration) -> String {
    let s = d.as_secs();
    match s {
        0..60 => format!("{s}s"),
        60..3600 => format!("{}m {:02}s", s / 60, s % 60),
        3600..86_400 => format!("{}h {:02}m", s / 3600, (s % 3600) / 60),
        _ => format!("{}d", s / 86_400),
    }
}

/// The countdown to an expiry: `4m 05s`, `expired 12s ago`, or `unknown` when there is none.
pub fn countdown(expires_at: Option<SystemTime>, now: SystemTime) -> String {
    let Some(at) = expires_at else {
        return "unknown".to_owned();
    };
    match at.duration_since(now) {
        Ok(left) => compact(left),
        Err(past) => format!("expired {} ago", compact(past.duration())),
    }
}

/// Time left until `at` (zero once passed), for timeouts in dialogs.
pub fn remaining(at: SystemTime, now: SystemTime) -> Duration {
    at.duration_since(now).unwrap_or(Duration::ZERO)
}

/// `HH:MM:SS` in UTC.
pub fn clock(t: SystemTime) -> String {
    let (_, h, m, s) = split(t);
    format!("{h:02}:{m:02}:{s:02}")
}

/// `YYYY-MM-DD HH:MM:SS UTC`.
pub fn datetime(t: SystemTime) -> String {
    let (days, h, m, s) = split(t);
    let (y, mo, d) = crate::app::timefmt::civil_from_days(days);
    format!("{y:04}-{mo:02}-{d:02} {h:02}:{m:02}:{s:02} UTC")
}

/// Days since the epoch and the time of day; times before 1970 show as the epoch.
fn split(t: SystemTime) -> (i64, u64, u64, u64) {
    let secs = t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let days = i64::try_from(secs / 86_400).unwrap_or(i64::MAX / 2);
    let rem = secs % 86_400;
    (days, rem / 3600, (rem % 3600) / 60, rem % 60)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(secs: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(secs)
    }

    #[test]
    fn compact_covers_each_unit() {
        assert_eq!(compact(Duration::from_secs(0)), "0s");
        assert_eq!(compact(Duration::from_secs(29)), "29s");
        assert_eq!(compact(Duration::from_secs(245)), "4m 05s");
        assert_eq!(
            compact(Duration::from_secs(2 * 3600 + 3 * 60 + 59)),
            "2h 03m"
        );
        assert_eq!(compact(Duration::from_secs(3 * 86_400 + 5)), "3d");
        assert_eq!(compact(Duration::from_millis(59_999)), "59s");
    }

    #[test]
    fn countdown_future_past_and_unknown() {
        let now = at(1_000_000);
        assert_eq!(countdown(Some(at(1_000_029)), now), "29s");
        assert_eq!(countdown(Some(at(1_000_000 + 245)), now), "4m 05s");
        assert_eq!(countdown(Some(at(999_988)), now), "expired 12s ago");
        assert_eq!(countdown(Some(now), now), "0s");
        assert_eq!(countdown(None, now), "unknown");
    }

    #[test]
    fn countdown_decreases_each_second() {
        let exp = Some(at(100));
        assert_eq!(countdown(exp, at(40)), "1m 00s");
        assert_eq!(countdown(exp, at(41)), "59s");
    }

    #[test]
    fn dates_in_utc() {
        assert_eq!(datetime(at(0)), "1970-01-01 00:00:00 UTC");
        // 2026-11-23 14:03:21 UTC
        assert_eq!(datetime(at(1_795_442_601)), "2026-11-23 14:03:21 UTC");
        assert_eq!(datetime(at(951_782_400)), "2000-02-29 00:00:00 UTC");
        assert_eq!(clock(at(1_795_442_601)), "14:03:21");
    }

    #[test]
    fn remaining_saturates() {
        assert_eq!(remaining(at(5), at(9)), Duration::ZERO);
        assert_eq!(remaining(at(9), at(5)), Duration::from_secs(4));
    }
}
