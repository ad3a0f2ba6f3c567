//! Process exit codes, documented in the README. `app` owns them because an [`AppError`]
//! knows its own code (see [`AppError::exit_code`]).
//!
//! [`AppError`]: super::AppError
//! [`AppError::exit_code`]: super::AppError::exit_code

/// Success.
pub const OK: u8 = 0;
/// An error.
pub const ERROR: u8 = 1;
/// Bad usage (clap's own code).
pub const USAGE: u8 = 2;
/// The account needs a (new) login.
pub const NEEDS_LOGIN: u8 = 3;
/// Some accounts failed, the others succeeded.
pub const PARTIAL: u8 = 4;
/// The agent is locked: run `authdeck unlock` (AGENT-9).
pub const LOCKED: u8 = 5;
