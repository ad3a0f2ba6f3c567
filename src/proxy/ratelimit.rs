//! Per-IP rate limit for the token routes (PROXY-10): a fixed one-minute window per address.
//!
//! The state is per process; behind a load balancer each instance limits on its own, which
//! keeps the proxy stateless at the cost of a limit that scales with the instance count.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv6Addr};
use std::sync::Mutex;
use std::time::{Duration, Instant};

const WINDOW: Duration = Duration::from_secs(60);
/// Above this many tracked addresses, expired windows are swept out.
const PRUNE_ABOVE: usize = 10_000;
/// A sweep runs at most this often, so a crowd of live windows does not make every request
/// scan the map (HARD-14).
const PRUNE_EVERY: Duration = Duration::from_secs(1);
/// Addresses tracked at most; past this, new addresses share one window (HARD-14), so memory
/// and time per request stay bounded under any number of addresses.
pub(crate) const MAX_TRACKED: usize = 100_000;

/// Counts token requests per client IP.
#[derive(Debug)]
pub(crate) struct RateLimiter {
    per_window: u32,
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    windows: HashMap<IpAddr, Window>,
    /// The window shared by addresses that arrive while `windows` is full.
    overflow: Option<Window>,
    last_sweep: Option<Instant>,
    sweeps: u64,
}

#[derive(Debug, Clone, Copy)]
struct Window {
    start: Instant,
    count: u32,
}

/// The key an address is counted under: an IPv6 address by its /64, the block one host or
/// one customer usually gets, so a single machine cannot rotate through 2^64 addresses to
/// escape the limit or fill the map (HARD-14).
fn key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => {
            let bits = u128::from(v6) & !u128::from(u64::MAX);
            IpAddr::V6(Ipv6Addr::from(bits))
        }
    }
}

impl RateLimiter {
    /// A limiter allowing `per_minute` requests per address; `None` when 0 (off).
    pub(crate) fn new(per_minute: u32) -> Option<Self> {
        (per_minute > 0).then(|| Self {
            per_window: per_minute,
            state: Mutex::new(State::default()),
        })
    }

    /// Counts one request from `ip`; `Err(seconds)` to wait when over the limit.
    pub(crate) fn check(&self, ip: IpAddr, now: Instant) -> Result<(), u64> {
        // A poisoned lock only means another request panicked; the counts are still usable.
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let state = &mut *state;
        if state.windows.len() > PRUNE_ABOVE
            && state
                .last_sweep
                .is_none_or(|at| now.duration_since(at) >= PRUNE_EVERY)
        {
            state
                .windows
                .retain(|_, w| now.duration_since(w.start) < WINDOW);
            state.last_sweep = Some(now);
            state.sweeps += 1;
        }
        let key = key(ip);
        let fresh = Window {
            start: now,
            count: 0,
        };
        let window = if state.windows.len() < MAX_TRACKED || state.windows.contains_key(&key) {
            state.windows.entry(key).or_insert(fresh)
        } else {
            state.overflow.get_or_insert(fresh)
        };
        if now.duration_since(window.start) >= WINDOW {
            *window = fresh;
        }
        if window.count >= self.per_window {
            let left = WINDOW.saturating_sub(now.duration_since(window.start));
            return Err(left.as_secs().max(1) + u64::from(left.subsec_nanos() > 0));
        }
        window.count += 1;
        Ok(())
    }

    /// How many full sweeps ran, and how many addresses are tracked (tests).
    #[cfg(test)]
    fn sweeps_and_tracked(&self) -> (u64, usize) {
        let state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        (state.sweeps, state.windows.len())
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

    /// HARD-14: 30,000 live addresses within one second cost at most one sweep of the map
    /// (before, every request past 10,000 scanned it all under the lock).
    #[test]
    fn a_crowd_of_live_addresses_is_swept_at_most_once_per_second() {
        let limiter = RateLimiter::new(10).unwrap();
        let t0 = Instant::now();
        for i in 0..30_000u32 {
            let ip = IpAddr::V4(std::net::Ipv4Addr::from(0x0a00_0000 + i));
            assert!(
                limiter
                    .check(ip, t0 + Duration::from_micros(u64::from(i)))
                    .is_ok()
            );
        }
        let (sweeps, tracked) = limiter.sweeps_and_tracked();
        assert!(sweeps <= 1, "{sweeps} sweeps");
        assert_eq!(tracked, 30_000);
        // A minute later the next sweep drops them all.
        let later = t0 + WINDOW + Duration::from_secs(2);
        assert!(limiter.check("10.9.9.9".parse().unwrap(), later).is_ok());
        assert_eq!(limiter.sweeps_and_tracked().1, 1);
    }

    /// HARD-14: past `MAX_TRACKED` addresses the map stops growing; newcomers share a window.
    #[test]
    fn the_map_is_bounded_and_newcomers_share_a_window() {
        let limiter = RateLimiter::new(2).unwrap();
        let t0 = Instant::now();
        for i in 0..(MAX_TRACKED as u32 + 5) {
            let ip = IpAddr::V4(std::net::Ipv4Addr::from(0x0b00_0000 + i));
            let _ = limiter.check(ip, t0);
        }
        assert_eq!(limiter.sweeps_and_tracked().1, MAX_TRACKED);
        // The five newcomers used the shared window up.
        let newcomer = IpAddr::V4(std::net::Ipv4Addr::from(0x0c00_0000));
        assert!(limiter.check(newcomer, t0).is_err());
    }

    /// HARD-14: the addresses of one IPv6 /64 share a window; another /64 has its own.
    #[test]
    fn ipv6_is_counted_per_64() {
        let limiter = RateLimiter::new(2).unwrap();
        let t0 = Instant::now();
        for ip in ["2001:db8:1:2::1", "2001:db8:1:2:ffff::9"] {
            assert!(limiter.check(ip.parse().unwrap(), t0).is_ok());
        }
        assert!(
            limiter
                .check("2001:db8:1:2::77".parse().unwrap(), t0)
                .is_err()
        );
        assert!(
            limiter
                .check("2001:db8:1:3::1".parse().unwrap(), t0)
                .is_ok()
        );
        assert!(limiter.check("10.0.0.1".parse().unwrap(), t0).is_ok());
    }
}
