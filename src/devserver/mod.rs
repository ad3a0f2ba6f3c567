//! `devserver`: see docs/architecture.md.
