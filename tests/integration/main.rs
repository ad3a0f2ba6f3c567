//! One integration-test binary: the real `authdeck` binary and the library, end to end.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;
