//! Reload without downtime (PROXY-14): a new configuration and new secrets are loaded next to
//! the running ones and swapped in with one pointer store. A request holds the generation it
//! started with (an `Arc`), so requests in flight finish with the old secrets while new ones
//! get the new; nothing stops listening, so `/healthz` keeps answering.
//!
//! A configuration that fails anywhere (parse, missing secret, failed discovery) is refused
//! as a whole and the running one stays (PROXY-15).

use super::log::LogSink;
use super::metrics::ReloadOutcome;
use super::ratelimit::RateLimiter;
use super::{DRAIN_GRACE, ProxyConfig, ProxyError, Shared, build_shared};
use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;
use tracing::Level;

/// The generation requests use now.
pub(crate) struct Current {
    shared: RwLock<Arc<Shared>>,
}

impl Current {
    pub(crate) fn new(shared: Arc<Shared>) -> Self {
        Self {
            shared: RwLock::new(shared),
        }
    }

    /// The current generation; the caller keeps it for the whole request.
    pub(crate) fn load(&self) -> Arc<Shared> {
        // A poisoned lock only means a panic while swapping a pointer; the value is intact.
        Arc::clone(&self.shared.read().unwrap_or_else(|p| p.into_inner()))
    }

    fn store(&self, shared: Arc<Shared>) {
        *self.shared.write().unwrap_or_else(|p| p.into_inner()) = shared;
    }
}

/// What the running proxy was last configured with, for what a reload cannot change or must
/// carry over.
#[derive(Debug, Clone, Copy)]
struct Applied {
    listen: SocketAddr,
    proxy_protocol: bool,
    rate_limit_per_minute: u32,
    upstream_timeout: Duration,
}

impl Applied {
    fn of(config: &ProxyConfig) -> Self {
        Self {
            listen: config.listen,
            proxy_protocol: config.proxy_protocol,
            rate_limit_per_minute: config.rate_limit_per_minute,
            upstream_timeout: config.upstream_timeout,
        }
    }
}

/// Applies a new configuration to a running [`super::Proxy`]; cheap to clone.
#[derive(Clone)]
pub struct Reloader {
    current: Arc<Current>,
    applied: Arc<Mutex<Applied>>,
    /// Serialises reloads: two SIGHUPs in a row apply one after the other.
    running: Arc<tokio::sync::Mutex<()>>,
    log: Arc<dyn LogSink>,
}

impl std::fmt::Debug for Reloader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reloader").finish_non_exhaustive()
    }
}

impl Reloader {
    pub(crate) fn new(current: Arc<Current>, config: &ProxyConfig, log: Arc<dyn LogSink>) -> Self {
        Self {
            current,
            applied: Arc::new(Mutex::new(Applied::of(config))),
            running: Arc::new(tokio::sync::Mutex::new(())),
            log,
        }
    }

    fn applied(&self) -> Applied {
        *self.applied.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// How long shutdown waits for in-flight requests: the current upstream timeout + 5 s.
    pub(crate) fn drain_timeout(&self) -> Duration {
        self.applied().upstream_timeout + DRAIN_GRACE
    }

    /// Reads `path` again (with `listen` overriding the file's `listen`, as `--listen` does at
    /// startup) and applies it; logs the outcome and counts it in the metrics. On error the
    /// running configuration stays (PROXY-15) and the error is returned.
    pub async fn reload_file(
        &self,
        path: &Path,
        listen: Option<SocketAddr>,
        env: &(dyn Fn(&str) -> Option<String> + Sync),
    ) -> Result<(), ProxyError> {
        self.log.write(
            Level::INFO,
            &format!("SIGHUP: reloading {}", path.display()),
        );
        let result = match ProxyConfig::from_path(path) {
            Ok(mut config) => {
                if let Some(listen) = listen {
                    config.listen = listen;
                }
                self.reload(&config, env).await
            }
            Err(e) => Err(e.into()),
        };
        let metrics = Arc::clone(&self.current.load().metrics);
        match &result {
            Ok(()) => metrics.reload(ReloadOutcome::Applied),
            Err(e) => {
                metrics.reload(ReloadOutcome::Refused);
                self.log.write(
                    Level::ERROR,
                    &format!("reload refused, the running configuration stays: {e}"),
                );
            }
        }
        result
    }

    /// Builds a generation from `config` (secrets loaded, issuers discovered) and swaps it in.
    /// On any error nothing changes and the error is returned (and logged by the caller).
    ///
    /// `listen` and `proxy_protocol` belong to the listening socket: a change is reported in
    /// the log and takes effect at the next restart; everything else applies at once.
    pub async fn reload(
        &self,
        config: &ProxyConfig,
        env: &(dyn Fn(&str) -> Option<String> + Sync),
    ) -> Result<(), ProxyError> {
        let _one_at_a_time = self.running.lock().await;
        let before = self.applied();
        let old = self.current.load();
        let limiter = if config.rate_limit_per_minute == before.rate_limit_per_minute {
            old.limiter.clone()
        } else {
            RateLimiter::new(config.rate_limit_per_minute).map(Arc::new)
        };
        let metrics = Arc::clone(&old.metrics);
        let shared = build_shared(config, env, Arc::clone(&self.log), limiter, metrics).await?;
        let clients = shared.clients.len();
        self.current.store(Arc::new(shared));
        for (key, changed) in [
            ("listen", config.listen != before.listen),
            (
                "proxy_protocol",
                config.proxy_protocol != before.proxy_protocol,
            ),
        ] {
            if changed {
                self.log.write(
                    Level::WARN,
                    &format!("reload: {key} changed; it takes effect at the next restart"),
                );
            }
        }
        *self.applied.lock().unwrap_or_else(|p| p.into_inner()) = Applied {
            listen: before.listen,
            proxy_protocol: before.proxy_protocol,
            ..Applied::of(config)
        };
        self.log.write(
            Level::INFO,
            &format!("reloaded: {clients} client(s); new requests use the new configuration"),
        );
        Ok(())
    }
}
