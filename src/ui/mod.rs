//! `ui`: see docs/architecture.md.
