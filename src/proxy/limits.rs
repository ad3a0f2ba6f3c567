//! Connection caps and a throttled warning (HARD-13): a flood of idle connections from one
//! address, or from many, cannot use up the proxy's file descriptors and starve everyone else
//! (`/healthz` included), and a flood of accept errors cannot flood the log.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Open connections when the configuration says nothing (`max_connections`).
pub const DEFAULT_MAX_CONNECTIONS: usize = 1024;
/// Open connections per client address when the configuration says nothing
/// (`max_connections_per_ip`).
pub const DEFAULT_MAX_CONNECTIONS_PER_IP: usize = 64;
/// File descriptors kept free for upstream connections, the listener, logs and config reloads.
const FD_HEADROOM: u64 = 64;

/// Counts open connections, in total and per address; a [`Slot`] is one of them.
#[derive(Debug)]
pub(crate) struct ConnectionLimits {
    max_total: usize,
    max_per_ip: usize,
    open: Mutex<Open>,
}

#[derive(Debug, Default)]
struct Open {
    total: usize,
    per_ip: HashMap<IpAddr, usize>,
}

/// Why a connection was turned away.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refused {
    /// The proxy has `max_connections` open.
    Total,
    /// This address has `max_connections_per_ip` open.
    PerIp,
}

impl ConnectionLimits {
    /// Caps of `max_total` (lowered to what the process's file descriptor limit allows) and
    /// `max_per_ip` open connections.
    /// One address gets at most a quarter of the total, so that it alone cannot fill it.
    pub(crate) fn new(max_total: usize, max_per_ip: usize) -> Arc<Self> {
        let max_total = max_total.min(fd_budget()).max(1);
        Arc::new(Self {
            max_total,
            max_per_ip: max_per_ip.min(max_total / 4).max(1),
            open: Mutex::new(Open::default()),
        })
    }

    /// The effective global cap.
    pub(crate) fn max_total(&self) -> usize {
        self.max_total
    }

    /// The effective per-address cap.
    pub(crate) fn max_per_ip(&self) -> usize {
        self.max_per_ip
    }

    /// Takes a slot for a connection from `ip`; `per_ip` is false for a trusted load balancer,
    /// whose one address stands for every client.
    pub(crate) fn admit(self: &Arc<Self>, ip: IpAddr, per_ip: bool) -> Result<Slot, Refused> {
        let mut open = self.open.lock().unwrap_or_else(|p| p.into_inner());
        if open.total >= self.max_total {
            return Err(Refused::Total);
        }
        let key = per_ip.then_some(ip);
        if let Some(ip) = key {
            let n = open.per_ip.entry(ip).or_insert(0);
            if *n >= self.max_per_ip {
                return Err(Refused::PerIp);
            }
            *n += 1;
        }
        open.total += 1;
        Ok(Slot {
            limits: Arc::clone(self),
            ip: key,
        })
    }
}

/// One open connection; released on drop.
#[derive(Debug)]
pub(crate) struct Slot {
    limits: Arc<ConnectionLimits>,
    ip: Option<IpAddr>,
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut open = self.limits.open.lock().unwrap_or_else(|p| p.into_inner());
        open.total = open.total.saturating_sub(1);
        if let Some(ip) = self.ip
            && let Some(n) = open.per_ip.get_mut(&ip)
        {
            *n = n.saturating_sub(1);
            if *n == 0 {
                open.per_ip.remove(&ip);
            }
        }
    }
}

/// How many connections the file descriptor limit leaves room for.
fn fd_budget() -> usize {
    #[cfg(unix)]
    {
        let mut limit = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        // SAFETY: a pointer to a local.
        if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } == 0
            && limit.rlim_cur != libc::RLIM_INFINITY
        {
            let budget = limit.rlim_cur.saturating_sub(FD_HEADROOM).max(1);
            return usize::try_from(budget).unwrap_or(usize::MAX);
        }
    }
    usize::MAX
}

/// Lets a repeated warning through at most once per `every`, counting what it held back.
#[derive(Debug)]
pub(crate) struct Throttle {
    every: Duration,
    state: Mutex<(Option<Instant>, u64)>,
}

impl Throttle {
    pub(crate) fn new(every: Duration) -> Self {
        Self {
            every,
            state: Mutex::new((None, 0)),
        }
    }

    /// `Some(suppressed)` when the warning may be written now (with how many were held back
    /// since the last one), `None` when it is held back.
    pub(crate) fn allow(&self, now: Instant) -> Option<u64> {
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let (last, held) = &mut *state;
        match last {
            Some(at) if now.duration_since(*at) < self.every => {
                *held += 1;
                None
            }
            _ => {
                *last = Some(now);
                Some(std::mem::take(held))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// HARD-13: the caps hold in total and per address, a trusted balancer is only counted in
    /// the total, and a closed connection frees its slot.
    #[test]
    fn caps_in_total_and_per_address() {
        let limits = ConnectionLimits::new(3, 2);
        assert_eq!(limits.max_per_ip, 1, "a quarter of the total at most");
        let limits = Arc::new(ConnectionLimits {
            max_total: 3,
            max_per_ip: 2,
            open: Mutex::new(Open::default()),
        });
        let a: IpAddr = "127.0.0.1".parse().unwrap();
        let b: IpAddr = "127.0.0.2".parse().unwrap();
        let a1 = limits.admit(a, true).unwrap();
        let _a2 = limits.admit(a, true).unwrap();
        assert_eq!(limits.admit(a, true).unwrap_err(), Refused::PerIp);
        let _b1 = limits.admit(b, true).unwrap();
        assert_eq!(limits.admit(b, true).unwrap_err(), Refused::Total);
        drop(a1);
        let _lb = limits.admit(a, false).unwrap();
        assert_eq!(limits.admit(b, false).unwrap_err(), Refused::Total);
    }

    /// HARD-13: the cap never exceeds what the descriptor limit leaves room for.
    #[test]
    fn the_cap_respects_the_descriptor_limit() {
        assert!(ConnectionLimits::new(usize::MAX, 1).max_total() <= fd_budget());
    }

    /// HARD-13: one warning per period, with the count of those held back.
    #[test]
    fn throttle_lets_one_through_per_period() {
        let t = Throttle::new(Duration::from_secs(1));
        let t0 = Instant::now();
        assert_eq!(t.allow(t0), Some(0));
        for i in 1..=100 {
            assert_eq!(t.allow(t0 + Duration::from_millis(i)), None);
        }
        assert_eq!(t.allow(t0 + Duration::from_secs(1)), Some(100));
    }
}
