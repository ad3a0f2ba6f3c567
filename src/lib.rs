//! authdeck: one place for every OAuth 2.0 / OpenID Connect token a person holds.
//!
//! Dependencies point one way: `ui` and `cli` → `app` → `oauth` / `vault` / `provider` →
//! `secret`. `proxy` and `devserver` stand beside them. See `docs/architecture.md`.

#![warn(missing_docs)]

pub mod agent;
pub mod app;
pub mod cli;
pub mod devserver;
pub mod oauth;
pub mod process;
pub mod provider;
pub mod proxy;
pub mod secret;
pub mod text;
pub mod ui;
pub mod vault;
