//! Composes `oauth`, `vault` and `provider`: login, refresh scheduling, export, requests, events.
//! `cli` and `ui` are thin faces on it.

pub mod view;
