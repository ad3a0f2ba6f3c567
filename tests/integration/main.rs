//! One integration-test binary: the real `authdeck` binary and the library, end to end.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;
mod providers;
mod vault;
mod proxy;
mod interop;
mod oidc_provider;
mod devserver;
mod callback;
