//! `vault`: see docs/architecture.md.
