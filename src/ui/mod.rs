//! The dashboard: a ratatui TUI over [`app::view`](crate::app::view)'s contract.
//!
//! Elm style: [`DashboardState`] is plain data, [`update()`] applies a [`Msg`] and returns
//! [`Effect`]s, [`view`] is a pure function of the state. [`run`] owns the terminal and one
//! event channel that merges key presses (crossterm's `EventStream`), a 1 s tick, the app's
//! [`AppEvent`]s and termination signals; it redraws after each batch of messages, so once a
//! second when idle and at once on events, with no busy loop. The UI never waits on `app`:
//! commands go out on an unbounded channel.

pub mod field;
pub mod format;
pub mod keymap;
mod overlay;
#[cfg(any(test, feature = "test-support"))]
pub mod preview;
pub mod qr;
pub mod render;
pub mod state;
mod terminal;
pub mod update;

#[cfg(any(test, feature = "test-support"))]
pub use preview::{many_accounts, preview_accounts, preview_now, preview_state};
pub use render::{draw, view};
pub use state::{DashboardState, Effect, Msg, Theme};
pub use update::update;

use crate::app::view::{AppEvent, UiCommand};
use tokio::sync::mpsc::{UnboundedReceiver, UnboundedSender};

/// Why the dashboard could not run.
#[derive(Debug, thiserror::Error)]
pub enum UiError {
    /// stdout is not a terminal (e.g. piped): the dashboard needs one.
    #[error("the dashboard needs a terminal; use `authdeck status` in scripts")]
    NotATerminal,
    /// Setting up, drawing to or restoring the terminal failed.
    #[error("terminal error: {0}")]
    Terminal(#[from] std::io::Error),
}

/// Runs the dashboard until the user quits (or SIGTERM/SIGINT/SIGHUP), then restores the
/// terminal. Sends [`UiCommand::Quit`] before returning.
///
/// `initial.now` is replaced by the wall clock at start; set `initial.theme` with
/// [`Theme::from_env`] (`NO_COLOR`) and `initial.preferred_login` as `login` would choose.
pub async fn run(
    initial: DashboardState,
    commands: UnboundedSender<UiCommand>,
    events: UnboundedReceiver<AppEvent>,
) -> Result<(), UiError> {
    terminal::run(initial, commands, events).await
}
