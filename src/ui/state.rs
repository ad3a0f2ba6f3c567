//! The dashboard's state: what `update` (in [`super::update`](mod@super::update)) changes and `render` draws.
//! Plain data; no I/O.

use super::field::Field;
use super::keymap::{Action, InputMode};
use super::qr::QrArt;
use crate::app::view::{AccountView, AppEvent, LogEntry, LogKind, LoginMode, UiCommand};
use crate::secret::ExportLine;
use crossterm::event::KeyEvent;
use std::collections::VecDeque;
use std::fmt;
use std::time::{Duration, SystemTime};
use zeroize::Zeroizing;

/// How many refresh-panel lines are kept.
pub const LOG_CAP: usize = 500;
/// How long a status-bar message stays.
pub const FLASH_FOR: Duration = Duration::from_secs(5);

/// Colours on or off. Decided once, outside rendering (`NO_COLOR`), so renders are
/// deterministic.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Theme {
    /// Use colours; when false only bold/reverse/dim are used.
    pub color: bool,
}

impl Theme {
    /// Colour unless `NO_COLOR` is set to a non-empty value (<https://no-color.org>).
    pub fn from_env() -> Self {
        let no_color = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
        Self { color: !no_color }
    }
}

/// A question waiting for y/n.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Confirm {
    /// Revoke at the provider and delete locally.
    Revoke(String),
    /// Delete locally.
    Logout(String),
}

/// Where a login dialog stands.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DialogStep {
    /// Sent `Login`, no answer yet.
    Starting,
    /// The authorization URL (browser and paste modes).
    Url {
        /// The URL.
        url: String,
        /// When the flow times out.
        expires_at: Option<SystemTime>,
    },
    /// The device code (device mode).
    Device {
        /// The code to type.
        user_code: String,
        /// Where to type it.
        verification_uri: String,
        /// The URI with the code in it.
        complete: Option<String>,
        /// When the code expires.
        expires_at: SystemTime,
    },
    /// Exchanging the code.
    Waiting,
    /// The login failed: the reason, shown until Esc.
    Failed(String),
}

/// A login in progress.
#[derive(Debug)]
pub struct LoginDialog {
    /// The account.
    pub account: String,
    /// Browser, paste or device.
    pub mode: LoginMode,
    /// Where it stands.
    pub step: DialogStep,
    /// When the dialog opened (for the elapsed time before the app answers).
    pub started_at: SystemTime,
    /// Paste mode: the redirect URL or code being typed.
    pub paste: Field,
    /// Paste mode: whether the paste field has the keyboard.
    pub paste_focus: bool,
    /// The QR code of the URL (computed once when the URL arrives, not per frame).
    pub qr: Option<QrArt>,
}

/// What is drawn over the main view; only one at a time.
#[derive(Debug, Default)]
pub enum Overlay {
    /// Nothing.
    #[default]
    None,
    /// The key help.
    Help,
    /// A yes/no question.
    Confirm(Confirm),
    /// The login mode picker.
    Picker {
        /// The account.
        account: String,
        /// The highlighted mode.
        choice: LoginMode,
        /// Whether device mode is offered.
        can_device: bool,
    },
    /// A login dialog.
    Login(LoginDialog),
    /// The vault passphrase prompt.
    Passphrase {
        /// The previous one was wrong.
        retry: bool,
        /// Masked input.
        input: Field,
    },
}

/// A status-bar message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Flash {
    /// The text.
    pub text: String,
    /// Shown as an error.
    pub error: bool,
    /// When it was set (it goes away after [`FLASH_FOR`]).
    pub at: SystemTime,
}

/// Everything the dashboard shows. `view` is a pure function of it.
#[derive(Debug)]
pub struct DashboardState {
    /// All accounts, in the order `app` sent them.
    pub accounts: Vec<AccountView>,
    /// The current time, advanced by ticks: rendering never reads the clock.
    pub now: SystemTime,
    /// Colours on or off.
    pub theme: Theme,
    /// Index into [`visible`](Self::visible).
    pub selected: usize,
    /// Case-insensitive substring of name, provider or identity.
    pub filter: String,
    /// Whether the filter field has the keyboard.
    pub filter_editing: bool,
    /// The refresh panel, oldest first, at most [`LOG_CAP`] lines.
    pub log: VecDeque<LogEntry>,
    /// What is drawn over the main view.
    pub overlay: Overlay,
    /// A status-bar message.
    pub flash: Option<Flash>,
    /// Ticks so far: drives the spinner.
    pub ticks: u64,
    /// The login mode the picker highlights first (the lead sets it as `login` chooses its
    /// default: browser with a local display, paste over SSH).
    pub preferred_login: LoginMode,
    /// Set once the dashboard should close.
    pub quit: bool,
    /// The shared vault backend's health (`None`: a local file, nothing to show).
    pub backend: Option<crate::app::view::BackendStatus>,
    /// The agent this dashboard is attached to (`None`: the dashboard opened the vault itself).
    pub agent: Option<crate::app::view::AgentView>,
}

/// What the loop feeds `update`.
pub enum Msg {
    /// A key press (mapped through [`keymap`](super::keymap)).
    Key(KeyEvent),
    /// An already-mapped action (tests, scripted input).
    Action(Action),
    /// Bracketed paste: text for whichever field is open. Zeroized after use.
    Paste(Zeroizing<String>),
    /// One second passed; the wall-clock time now.
    Tick(SystemTime),
    /// The terminal was resized (the view adapts; this only forces a redraw).
    Resize,
    /// Something from the background (boxed: an [`AccountView`] is large).
    App(Box<AppEvent>),
    /// SIGTERM / SIGINT / SIGHUP.
    Signal,
}

impl From<AppEvent> for Msg {
    fn from(ev: AppEvent) -> Self {
        Self::App(Box::new(ev))
    }
}

/// Text copied through OSC 52.
pub enum Clipboard {
    /// An export line (contains the access token).
    ExportLine(ExportLine),
    /// A login URL.
    Url(String),
}

impl Clipboard {
    /// The text to copy. Security: only the OSC 52 writer may use it.
    pub fn secret(&self) -> &str {
        match self {
            Self::ExportLine(l) => l.secret(),
            Self::Url(u) => u,
        }
    }
}

impl fmt::Debug for Clipboard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::ExportLine(_) => f.write_str("Clipboard::ExportLine([redacted])"),
            Self::Url(_) => f.write_str("Clipboard::Url([redacted])"),
        }
    }
}

/// What `update` asks the loop to do.
#[derive(Debug)]
pub enum Effect {
    /// Send a command to `app`.
    Send(UiCommand),
    /// Copy text to the terminal's clipboard (OSC 52).
    Copy(Clipboard),
    /// Leave the alternate screen, print this URL alone on the normal screen and come back on
    /// the next key.
    ShowUrl(String),
    /// Leave the dashboard and restore the terminal.
    Exit,
}

impl DashboardState {
    /// A dashboard over `accounts` at time `now`.
    pub fn new(accounts: Vec<AccountView>, now: SystemTime, theme: Theme) -> Self {
        Self {
            accounts,
            now,
            theme,
            selected: 0,
            filter: String::new(),
            filter_editing: false,
            log: VecDeque::new(),
            overlay: Overlay::None,
            flash: None,
            ticks: 0,
            preferred_login: LoginMode::Browser,
            quit: false,
            backend: None,
            agent: None,
        }
    }

    /// Indices into `accounts` of the rows shown (the filter applied), in order.
    pub fn visible(&self) -> Vec<usize> {
        if self.filter.is_empty() {
            return (0..self.accounts.len()).collect();
        }
        let needle = self.filter.to_lowercase();
        self.accounts
            .iter()
            .enumerate()
            .filter(|(_, a)| {
                a.name.to_lowercase().contains(&needle)
                    || a.provider.to_lowercase().contains(&needle)
                    || a.identity
                        .as_deref()
                        .is_some_and(|i| i.to_lowercase().contains(&needle))
            })
            .map(|(i, _)| i)
            .collect()
    }

    /// The selected account, if any row is shown.
    pub fn selected_account(&self) -> Option<&AccountView> {
        let visible = self.visible();
        visible
            .get(self.selected)
            .and_then(|&i| self.accounts.get(i))
    }

    /// What has the keyboard.
    pub fn input_mode(&self) -> InputMode {
        match &self.overlay {
            Overlay::Help => InputMode::Help,
            Overlay::Confirm(_) => InputMode::Confirm,
            Overlay::Picker { .. } => InputMode::Picker,
            Overlay::Login(d) if d.paste_focus => InputMode::Text,
            Overlay::Login(_) => InputMode::LoginDialog,
            Overlay::Passphrase { .. } => InputMode::Text,
            Overlay::None if self.filter_editing => InputMode::Text,
            Overlay::None => InputMode::Normal,
        }
    }

    pub(super) fn flash(&mut self, text: impl Into<String>, error: bool) {
        self.flash = Some(Flash {
            text: text.into(),
            error,
            at: self.now,
        });
    }

    pub(super) fn clamp_selection(&mut self) {
        let n = self.visible().len();
        self.selected = self.selected.min(n.saturating_sub(1));
    }

    pub(super) fn push_log(&mut self, entry: LogEntry) {
        if self.log.len() == LOG_CAP {
            self.log.pop_front();
        }
        self.log.push_back(entry);
    }
}

/// Convenience for tests and scripted input: a log entry of `kind` for `account` at `at`.
pub fn log_entry(at: SystemTime, account: &str, kind: LogKind) -> LogEntry {
    LogEntry {
        at,
        account: account.to_owned(),
        kind,
    }
}
