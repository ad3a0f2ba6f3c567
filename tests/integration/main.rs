//! One integration-test binary: the real `authdeck` binary and the library, end to end.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod callback;
mod devserver;
mod interop;
mod oidc_provider;
mod providers;
mod proxy;
mod support;
mod vault;
