//! One integration-test binary: the real `authdeck` binary and the library, end to end.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod callback;
mod cli;
mod cli_interop;
mod devserver;
mod engine_interop;
mod expiry;
mod hardening;
mod interop;
mod oauth_engine;
mod oidc_provider;
mod providers;
mod proxy;
mod proxy_e2e;
mod proxy_forwarded;
mod proxy_lb;
mod proxy_metrics;
mod proxy_reload;
mod pty;
mod refresh_batch;
mod rule_ids;
mod support;
mod tui;
mod vault;
