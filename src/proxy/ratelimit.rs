//! Per-IP rate limit for the token routes (PROXY-10): a fixed one-minute window per address.
//!
//! The state is per process; behind a load balancer each instance limits on its own, which
//! keeps the proxy stateless at the cost of a limit that scales with the instance count.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

const WINDOW: Duration = Duration::from_secs(60);
/// Above this many tracked addresses, expired windows are dropped so memory stays bounded.
const PRUNE_ABOVE: usize = 10_000;

/// Counts token requests per client IP.
#[derive(Debug)]
pub(crate) struct RateLimiter {
    per_window: u32,
    windows: Mutex<HashMap<IpAddr, Window>>,
}

#[derive(Debug, Clone, Copy)]
struct Window {
    start: Instant,
    count: u32,
}

impl RateLimiter {
    /// A limiter allowing `per_minute` requests per address; `None` when 0 (off).
    pub(crate) fn new(per_minute: u32) -> Option<Self> {
        (per_minute > 0).then(|| Self {
            per_window: per_minute,
            windows: Mutex::new(HashMap::new()),
        })
    }

    /// Counts one request from `ip`; `Err(seconds)` to wait when over the limit.
    pub(crate) fn check(&self, ip: IpAddr, now: Instant) -> Result<(), u64> {
        // A poisoned lock only means another request panicked; the counts are still usable.
        let mut windows = self.windows.lock().unwrap_or_else(|p| p.into_inner());
        if windows.len() > PRUNE_ABOVE {
            windows.retain(|_, w| now.duration_since(w.start) < WINDOW);
        }
        let window = windows.entry(ip).or_insert(Window {
            start: now,
            count: 0,
        });
        if now.duration_since(window.start) >= WINDOW {
            *window = Window {
                start: now,
                count: 0,
            };
        }
        if window.count >= self.per_window {
            let left = WINDOW.saturating_sub(now.duration_since(window.start));
            return Err(left.as_secs().max(1) + u64::from(left.subsec_nanos() > 0));
        }
        window.count += 1;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zero_turns_it_off() {
        assert!(RateLimiter::new(0).is_none());
    }

    #[test]
    fn limits_per_ip_and_resets_after_a_minute() {
        let limiter = RateLimiter::new(2).unwrap();
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        let b: IpAddr = "10.0.0.2".parse().unwrap();
        let t0 = Instant::now();
        assert!(limiter.check(a, t0).is_ok());
        assert!(limiter.check(a, t0).is_ok());
        let wait = limiter.check(a, t0 + Duration::from_secs(10)).unwrap_err();
        assert!((50..=51).contains(&wait), "{wait}");
        assert!(
            limiter.check(b, t0).is_ok(),
            "another address has its own window"
        );
        assert!(limiter.check(a, t0 + WINDOW).is_ok());
    }
}
