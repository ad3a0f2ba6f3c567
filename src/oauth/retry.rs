//! Retry policy (NET-2): full-jitter exponential backoff, `Retry-After`, bounded attempts
//! and total time.

use std::time::{Duration, SystemTime};

/// How often and how long to retry transient failures.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts in total, the first one included (NET-2: 3).
    pub max_attempts: u32,
    /// Backoff base: attempt `n` (from 0) waits a random time in `[0, min(cap, base·2ⁿ)]`.
    pub base: Duration,
    /// Backoff ceiling.
    pub cap: Duration,
    /// No retry starts later than this after the first attempt.
    pub max_total: Duration,
    /// A `Retry-After` longer than this is not waited for: the failure is returned.
    pub retry_after_cap: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_attempts: 3,
            base: Duration::from_secs(1),
            cap: Duration::from_secs(30),
            max_total: Duration::from_secs(90),
            retry_after_cap: Duration::from_secs(120),
        }
    }
}

impl RetryPolicy {
    /// A policy that never retries.
    pub fn none() -> Self {
        Self {
            max_attempts: 1,
            ..Self::default()
        }
    }

    /// The full-jitter delay before retry number `retry` (0 for the first retry).
    pub fn backoff(&self, retry: u32) -> Duration {
        let ceiling = self
            .base
            .saturating_mul(2u32.saturating_pow(retry.min(31)))
            .min(self.cap);
        let max_ms = u64::try_from(ceiling.as_millis()).unwrap_or(u64::MAX);
        Duration::from_millis(rand::random_range(0..=max_ms))
    }

    /// The wait before the next attempt, or `None` when the server asked for longer than
    /// `retry_after_cap`. A `Retry-After` wins over the backoff (NET-2).
    pub fn delay(&self, retry: u32, retry_after: Option<Duration>) -> Option<Duration> {
        match retry_after {
            Some(d) if d > self.retry_after_cap => None,
            Some(d) => Some(d),
            None => Some(self.backoff(retry)),
        }
    }
}

/// Parses a `Retry-After` value: delta seconds or an HTTP-date (RFC 9110 §10.2.3). A date in
/// the past means "now"; anything else unparseable is ignored.
pub fn parse_retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    let value = value.trim();
    if let Ok(secs) = value.parse::<u64>() {
        return Some(Duration::from_secs(secs).min(MAX_RETRY_AFTER));
    }
    let when = httpdate::parse_http_date(value).ok()?;
    Some(
        when.duration_since(now)
            .unwrap_or(Duration::ZERO)
            .min(MAX_RETRY_AFTER),
    )
}

/// The longest `Retry-After` kept (HARD-4): longer than any wait a caller honours, and small
/// enough that adding it to any clock reading cannot overflow.
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(24 * 3600);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn net2_backoff_is_full_jitter_bounded_by_cap() {
        let p = RetryPolicy::default();
        for retry in 0..10 {
            for _ in 0..20 {
                let d = p.backoff(retry);
                let ceiling = Duration::from_secs(1 << retry.min(5)).min(p.cap);
                assert!(d <= ceiling, "retry {retry}: {d:?}");
            }
        }
        // Jitter: 50 draws in [0, 4 s] are not all equal.
        let draws: std::collections::HashSet<_> = (0..50).map(|_| p.backoff(2)).collect();
        assert!(draws.len() > 1);
    }

    #[test]
    fn net2_retry_after_seconds_and_http_date() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        assert_eq!(parse_retry_after("7", now), Some(Duration::from_secs(7)));
        let later = httpdate::fmt_http_date(now + Duration::from_secs(30));
        assert_eq!(
            parse_retry_after(&later, now),
            Some(Duration::from_secs(30))
        );
        let past = httpdate::fmt_http_date(now - Duration::from_secs(30));
        assert_eq!(parse_retry_after(&past, now), Some(Duration::ZERO));
        assert_eq!(parse_retry_after("soon", now), None);
    }

    #[test]
    fn net2_retry_after_cap_stops_retrying() {
        let p = RetryPolicy::default();
        assert_eq!(
            p.delay(0, Some(Duration::from_secs(7))),
            Some(Duration::from_secs(7))
        );
        assert_eq!(p.delay(0, Some(Duration::from_secs(121))), None);
        assert!(p.delay(0, None).unwrap() <= p.base);
    }
}
