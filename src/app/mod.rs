//! Composes `oauth`, `vault` and `provider`: login, refresh scheduling, export, requests, events.
//! `cli` and `ui` are thin faces on it.

pub mod export;
pub mod mode;
pub mod schedule;
pub mod view;
