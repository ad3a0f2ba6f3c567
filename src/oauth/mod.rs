//! `oauth`: see docs/architecture.md.
