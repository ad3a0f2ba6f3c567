//! The dashboard's state and `update`: Elm style. `update` changes the state and returns the
//! effects to perform; it never does I/O, so every action is unit-testable.

use super::keymap::{self, Action, InputMode};
use super::qr::QrArt;
use crate::app::view::{AccountView, AppEvent, LogEntry, LogKind, LoginMode, LoginStep, UiCommand};
use crate::secret::{AccessToken, AuthCode, Passphrase};
use crossterm::event::KeyEvent;
use std::collections::VecDeque;
use std::fmt;
use std::time::{Duration, SystemTime};
use zeroize::{Zeroize, Zeroizing};

/// How many refresh-panel lines are kept.
pub const LOG_CAP: usize = 500;
/// How long a status-bar message stays.
pub const FLASH_FOR: Duration = Duration::from_secs(5);
/// Longest text a field accepts: a redirect URL is well under this; more is a mistaken paste.
/// Fields preallocate this much so that typing never reallocates (and leaves no stray copy).
pub const FIELD_MAX: usize = 4096;

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

/// A text field whose content may be secret: zeroized on drop, never in `Debug`.
#[derive(Default)]
pub struct Field {
    text: String,
}

impl Field {
    fn new() -> Self {
        Self {
            text: String::with_capacity(FIELD_MAX),
        }
    }

    fn push(&mut self, c: char) {
        if c.is_control() || self.text.len() + c.len_utf8() > FIELD_MAX {
            return;
        }
        if self.text.capacity() == 0 {
            self.text.reserve_exact(FIELD_MAX);
        }
        self.text.push(c);
    }

    fn push_str(&mut self, s: &str) {
        s.chars().for_each(|c| self.push(c));
    }

    fn backspace(&mut self) {
        self.text.pop();
    }

    fn clear(&mut self) {
        self.text.zeroize();
    }

    /// Moves the content out, leaving the field empty.
    fn take(&mut self) -> String {
        std::mem::take(&mut self.text)
    }

    /// The content, for rendering on the alternate screen only.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// Number of characters typed.
    pub fn chars(&self) -> usize {
        self.text.chars().count()
    }

    /// Nothing typed.
    pub fn is_empty(&self) -> bool {
        self.text.is_empty()
    }
}

impl Drop for Field {
    fn drop(&mut self) {
        self.text.zeroize();
    }
}

impl fmt::Debug for Field {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Field({} chars)", self.chars())
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
}

/// What the loop feeds `update`.
pub enum Msg {
    /// A key press (mapped through [`keymap`]).
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
    ExportLine(AccessToken),
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

    fn flash(&mut self, text: impl Into<String>, error: bool) {
        self.flash = Some(Flash {
            text: text.into(),
            error,
            at: self.now,
        });
    }

    fn clamp_selection(&mut self) {
        let n = self.visible().len();
        self.selected = self.selected.min(n.saturating_sub(1));
    }

    fn push_log(&mut self, entry: LogEntry) {
        if self.log.len() == LOG_CAP {
            self.log.pop_front();
        }
        self.log.push_back(entry);
    }
}

/// Applies one message; returns what the loop must do.
pub fn update(state: &mut DashboardState, msg: Msg) -> Vec<Effect> {
    let effects = match msg {
        Msg::Key(key) => match keymap::map(state.input_mode(), key) {
            Some(action) => on_action(state, action),
            None => Vec::new(),
        },
        Msg::Action(action) => on_action(state, action),
        Msg::Paste(text) => {
            on_paste(state, &text);
            Vec::new()
        }
        Msg::Tick(now) => {
            on_tick(state, now);
            Vec::new()
        }
        Msg::Resize => Vec::new(),
        Msg::App(ev) => on_app(state, *ev),
        Msg::Signal => quit(state),
    };
    if effects.iter().any(|e| matches!(e, Effect::Exit)) {
        state.quit = true;
    }
    effects
}

fn quit(state: &mut DashboardState) -> Vec<Effect> {
    state.quit = true;
    vec![Effect::Send(UiCommand::Quit), Effect::Exit]
}

fn on_tick(state: &mut DashboardState, now: SystemTime) {
    state.now = now;
    state.ticks = state.ticks.wrapping_add(1);
    let stale = state
        .flash
        .as_ref()
        .is_some_and(|f| now.duration_since(f.at).unwrap_or_default() >= FLASH_FOR);
    if stale {
        state.flash = None;
    }
}

fn on_action(state: &mut DashboardState, action: Action) -> Vec<Effect> {
    if action == Action::Quit {
        return quit(state);
    }
    match std::mem::take(&mut state.overlay) {
        Overlay::None if state.filter_editing => {
            on_filter_key(state, action);
            Vec::new()
        }
        Overlay::None => on_main(state, action),
        Overlay::Help => Vec::new(), // any key closes it: the overlay is already taken
        Overlay::Confirm(c) => on_confirm(state, c, action),
        Overlay::Picker {
            account,
            choice,
            can_device,
        } => on_picker(state, account, choice, can_device, action),
        Overlay::Login(d) => on_login(state, d, action),
        Overlay::Passphrase { retry, input } => on_passphrase(state, retry, input, action),
    }
}

fn on_main(state: &mut DashboardState, action: Action) -> Vec<Effect> {
    let n = state.visible().len();
    let selected = state.selected_account().map(|a| a.name.clone());
    let send = |c: UiCommand| vec![Effect::Send(c)];
    match action {
        Action::Up => state.selected = state.selected.saturating_sub(1),
        Action::Down => state.selected = (state.selected + 1).min(n.saturating_sub(1)),
        Action::PageUp => state.selected = state.selected.saturating_sub(10),
        Action::PageDown => state.selected = (state.selected + 10).min(n.saturating_sub(1)),
        Action::Top => state.selected = 0,
        Action::Bottom => state.selected = n.saturating_sub(1),
        Action::Help => state.overlay = Overlay::Help,
        Action::Filter => state.filter_editing = true,
        Action::Cancel if !state.filter.is_empty() => {
            state.filter.clear();
            state.clamp_selection();
        }
        Action::RefreshAll => {
            state.flash("Refreshing all accounts…", false);
            return send(UiCommand::RefreshAll);
        }
        Action::Login => {
            if let Some(a) = state.selected_account() {
                let can_device = a.can_device;
                let mut choice = state.preferred_login;
                if choice == LoginMode::Device && !can_device {
                    choice = LoginMode::Browser;
                }
                state.overlay = Overlay::Picker {
                    account: a.name.clone(),
                    choice,
                    can_device,
                };
            }
        }
        Action::Refresh => {
            if let Some(name) = selected {
                state.flash(format!("Refreshing {name}…"), false);
                return send(UiCommand::Refresh(name));
            }
        }
        Action::Revoke => {
            if let Some(name) = selected {
                state.overlay = Overlay::Confirm(Confirm::Revoke(name));
            }
        }
        Action::Logout => {
            if let Some(name) = selected {
                state.overlay = Overlay::Confirm(Confirm::Logout(name));
            }
        }
        Action::CopyExport => {
            if let Some(name) = selected {
                return send(UiCommand::CopyExport(name));
            }
        }
        _ => {}
    }
    Vec::new()
}

fn on_filter_key(state: &mut DashboardState, action: Action) {
    match action {
        Action::Input(c) => state.filter.push(c),
        Action::Backspace => {
            state.filter.pop();
        }
        Action::ClearInput => state.filter.clear(),
        Action::Submit => state.filter_editing = false,
        Action::Cancel => {
            state.filter.clear();
            state.filter_editing = false;
        }
        _ => {}
    }
    state.clamp_selection();
}

fn on_confirm(state: &mut DashboardState, c: Confirm, action: Action) -> Vec<Effect> {
    if action != Action::Yes {
        return Vec::new();
    }
    let cmd = match c {
        Confirm::Revoke(name) => {
            state.flash(format!("Revoking {name}…"), false);
            UiCommand::Revoke(name)
        }
        Confirm::Logout(name) => {
            state.flash(format!("Logging {name} out…"), false);
            UiCommand::Logout(name)
        }
    };
    vec![Effect::Send(cmd)]
}

fn on_picker(
    state: &mut DashboardState,
    account: String,
    choice: LoginMode,
    can_device: bool,
    action: Action,
) -> Vec<Effect> {
    let offered: Vec<LoginMode> = LoginMode::ALL
        .into_iter()
        .filter(|m| can_device || *m != LoginMode::Device)
        .collect();
    let pos = offered.iter().position(|m| *m == choice).unwrap_or(0);
    let pick = match action {
        Action::Cancel => return Vec::new(),
        Action::Submit => Some(choice),
        Action::Pick(m) if offered.contains(&m) => Some(m),
        Action::Up | Action::Down => {
            let next = if action == Action::Up {
                pos.saturating_sub(1)
            } else {
                (pos + 1).min(offered.len().saturating_sub(1))
            };
            let choice = offered.get(next).copied().unwrap_or(choice);
            state.overlay = Overlay::Picker {
                account,
                choice,
                can_device,
            };
            return Vec::new();
        }
        _ => None,
    };
    let Some(mode) = pick else {
        state.overlay = Overlay::Picker {
            account,
            choice,
            can_device,
        };
        return Vec::new();
    };
    state.overlay = Overlay::Login(LoginDialog {
        account: account.clone(),
        mode,
        step: DialogStep::Starting,
        started_at: state.now,
        paste: Field::new(),
        paste_focus: false,
        qr: None,
    });
    vec![Effect::Send(UiCommand::Login { account, mode })]
}

fn on_login(state: &mut DashboardState, mut d: LoginDialog, action: Action) -> Vec<Effect> {
    let failed = matches!(d.step, DialogStep::Failed(_));
    match action {
        Action::Cancel => {
            if failed {
                return Vec::new();
            }
            state.flash(format!("Login to {} cancelled", d.account), false);
            return vec![Effect::Send(UiCommand::CancelLogin { account: d.account })];
        }
        Action::CopyUrl => {
            let url = match &d.step {
                DialogStep::Url { url, .. } => Some(url.clone()),
                DialogStep::Device {
                    verification_uri,
                    complete,
                    ..
                } => Some(complete.clone().unwrap_or_else(|| verification_uri.clone())),
                _ => None,
            };
            state.overlay = Overlay::Login(d);
            if let Some(url) = url {
                state.flash("Copied the URL to the clipboard (OSC 52)", false);
                return vec![Effect::Copy(Clipboard::Url(url))];
            }
            return Vec::new();
        }
        Action::Focus if d.mode == LoginMode::Paste && !failed => d.paste_focus = !d.paste_focus,
        Action::Input(c) if d.paste_focus => d.paste.push(c),
        Action::Backspace if d.paste_focus => d.paste.backspace(),
        Action::ClearInput if d.paste_focus => d.paste.clear(),
        Action::Submit if d.paste_focus && !d.paste.is_empty() => {
            let input = AuthCode::new(d.paste.take());
            let account = d.account.clone();
            d.step = DialogStep::Waiting;
            d.paste_focus = false;
            state.overlay = Overlay::Login(d);
            return vec![Effect::Send(UiCommand::SubmitPaste { account, input })];
        }
        Action::Submit if failed => return Vec::new(),
        _ => {}
    }
    state.overlay = Overlay::Login(d);
    Vec::new()
}

fn on_passphrase(
    state: &mut DashboardState,
    retry: bool,
    mut input: Field,
    action: Action,
) -> Vec<Effect> {
    match action {
        Action::Cancel => return quit(state),
        Action::Submit if !input.is_empty() => {
            state.flash("Unlocking the vault…", false);
            let pass = Passphrase::new(input.take());
            return vec![Effect::Send(UiCommand::SubmitPassphrase(pass))];
        }
        Action::Input(c) => input.push(c),
        Action::Backspace => input.backspace(),
        Action::ClearInput => input.clear(),
        _ => {}
    }
    state.overlay = Overlay::Passphrase { retry, input };
    Vec::new()
}

fn on_paste(state: &mut DashboardState, text: &str) {
    // A pasted URL may carry a trailing newline; fields are single-line.
    let text = text.trim();
    match &mut state.overlay {
        Overlay::Login(d) if d.mode == LoginMode::Paste => {
            d.paste.push_str(text);
            d.paste_focus = true;
        }
        Overlay::Passphrase { input, .. } => input.push_str(text),
        Overlay::None if state.filter_editing => {
            state.filter.push_str(text);
            state.clamp_selection();
        }
        _ => {}
    }
}

fn on_app(state: &mut DashboardState, ev: AppEvent) -> Vec<Effect> {
    match ev {
        AppEvent::AccountsLoaded(accounts) => {
            let keep = state.selected_account().map(|a| a.name.clone());
            state.accounts = accounts;
            if let Some(name) = keep {
                let visible = state.visible();
                if let Some(pos) = visible
                    .iter()
                    .position(|&i| state.accounts.get(i).is_some_and(|a| a.name == name))
                {
                    state.selected = pos;
                }
            }
            state.clamp_selection();
        }
        AppEvent::AccountUpdated(a) => match state.accounts.iter_mut().find(|x| x.name == a.name) {
            Some(slot) => *slot = a,
            None => state.accounts.push(a),
        },
        AppEvent::AccountRemoved(name) => {
            state.accounts.retain(|a| a.name != name);
            state.clamp_selection();
        }
        AppEvent::Log(entry) => state.push_log(entry),
        AppEvent::LoginProgress { account, step } => on_login_progress(state, account, step),
        AppEvent::PassphraseNeeded { retry } => {
            state.overlay = Overlay::Passphrase {
                retry,
                input: Field::new(),
            };
        }
        AppEvent::ExportLine { account, line } => {
            state.flash(
                format!("Copied the export line of {account} to the clipboard (OSC 52)"),
                false,
            );
            return vec![Effect::Copy(Clipboard::ExportLine(line))];
        }
        AppEvent::Notice { error, message } => state.flash(message, error),
    }
    Vec::new()
}

fn on_login_progress(state: &mut DashboardState, account: String, step: LoginStep) {
    let Overlay::Login(d) = &mut state.overlay else {
        if step == LoginStep::Done {
            state.flash(format!("Logged in: {account}"), false);
        }
        return;
    };
    if d.account != account {
        return;
    }
    match step {
        LoginStep::ShowUrl { url, expires_at } => {
            d.qr = QrArt::encode(&url);
            d.step = DialogStep::Url { url, expires_at };
        }
        LoginStep::ShowDeviceCode {
            user_code,
            verification_uri,
            verification_uri_complete,
            expires_at,
        } => {
            d.qr = verification_uri_complete
                .as_deref()
                .or(Some(verification_uri.as_str()))
                .and_then(QrArt::encode);
            d.step = DialogStep::Device {
                user_code,
                verification_uri,
                complete: verification_uri_complete,
                expires_at,
            };
        }
        LoginStep::Waiting => {
            d.step = DialogStep::Waiting;
            d.paste_focus = false;
        }
        LoginStep::Failed(reason) => {
            d.step = DialogStep::Failed(reason);
            d.paste_focus = false;
        }
        LoginStep::Done => {
            state.overlay = Overlay::None;
            state.flash(format!("Logged in: {account}"), false);
        }
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::app::view::AccountState;
    use crate::ui::preview::{preview_now, preview_state};
    use crossterm::event::{KeyCode, KeyModifiers};

    fn press(s: &mut DashboardState, code: KeyCode) -> Vec<Effect> {
        update(s, Msg::Key(KeyEvent::new(code, KeyModifiers::NONE)))
    }

    fn chars(s: &mut DashboardState, text: &str) {
        for c in text.chars() {
            press(s, KeyCode::Char(c));
        }
    }

    fn sent(effects: &[Effect]) -> Vec<&UiCommand> {
        effects
            .iter()
            .filter_map(|e| match e {
                Effect::Send(c) => Some(c),
                _ => None,
            })
            .collect()
    }

    fn selected(s: &DashboardState) -> String {
        s.selected_account()
            .map(|a| a.name.clone())
            .unwrap_or_default()
    }

    #[test]
    fn selection_moves_and_stays_in_bounds() {
        let mut s = preview_state(preview_now());
        let n = s.accounts.len();
        press(&mut s, KeyCode::Up);
        assert_eq!(s.selected, 0);
        press(&mut s, KeyCode::Char('j'));
        press(&mut s, KeyCode::Down);
        assert_eq!(s.selected, 2);
        press(&mut s, KeyCode::Char('k'));
        assert_eq!(s.selected, 1);
        press(&mut s, KeyCode::Char('G'));
        assert_eq!(s.selected, n - 1);
        press(&mut s, KeyCode::Down);
        assert_eq!(s.selected, n - 1);
        press(&mut s, KeyCode::Char('g'));
        assert_eq!(s.selected, 0);
        press(&mut s, KeyCode::PageDown);
        assert_eq!(s.selected, n - 1);
    }

    #[test]
    fn movement_on_an_empty_list_is_harmless() {
        let mut s = DashboardState::new(Vec::new(), preview_now(), Theme { color: false });
        for k in [
            KeyCode::Down,
            KeyCode::Char('G'),
            KeyCode::Up,
            KeyCode::Char('r'),
        ] {
            assert!(sent(&press(&mut s, k)).is_empty());
        }
        assert_eq!(s.selected, 0);
        assert!(s.selected_account().is_none());
        press(&mut s, KeyCode::Char('l'));
        assert!(matches!(s.overlay, Overlay::None));
    }

    #[test]
    fn filter_narrows_typed_letters_do_not_trigger_commands() {
        let mut s = preview_state(preview_now());
        press(&mut s, KeyCode::Char('G'));
        press(&mut s, KeyCode::Char('/'));
        assert_eq!(s.input_mode(), InputMode::Text);
        // 'r' and 'q' are letters while typing, not refresh / quit.
        let mut effects = press(&mut s, KeyCode::Char('q'));
        effects.extend(press(&mut s, KeyCode::Char('r')));
        assert_eq!(s.filter, "qr");
        assert!(!s.quit);
        press(&mut s, KeyCode::Backspace);
        press(&mut s, KeyCode::Backspace);
        for c in "gi".chars() {
            effects.extend(press(&mut s, KeyCode::Char(c)));
        }
        assert!(effects.is_empty());
        let names: Vec<_> = s
            .visible()
            .iter()
            .map(|&i| s.accounts[i].name.clone())
            .collect();
        assert_eq!(names, ["github", "gitlab"]);
        assert!(
            s.selected < names.len(),
            "selection clamped into the filtered list"
        );
        press(&mut s, KeyCode::Enter);
        assert!(!s.filter_editing);
        assert_eq!(s.filter, "gi");
        // Identity matches too (case-insensitive).
        press(&mut s, KeyCode::Char('/'));
        press(&mut s, KeyCode::Backspace);
        press(&mut s, KeyCode::Backspace);
        chars(&mut s, "CONTOSO");
        assert_eq!(s.visible().len(), 1);
        press(&mut s, KeyCode::Esc);
        assert!(s.filter.is_empty());
        assert_eq!(s.visible().len(), s.accounts.len());
    }

    #[test]
    fn refresh_and_refresh_all_send_commands() {
        let mut s = preview_state(preview_now());
        press(&mut s, KeyCode::Char('j'));
        let e = press(&mut s, KeyCode::Char('r'));
        assert_eq!(sent(&e), [&UiCommand::Refresh("google-work".into())]);
        let e = press(&mut s, KeyCode::Char('R'));
        assert_eq!(sent(&e), [&UiCommand::RefreshAll]);
    }

    #[test]
    fn revoke_needs_yes() {
        let mut s = preview_state(preview_now());
        assert!(sent(&press(&mut s, KeyCode::Char('x'))).is_empty());
        assert_eq!(s.overlay_confirm(), Some(&Confirm::Revoke("github".into())));
        // Enter is "no" (the safe default).
        assert!(sent(&press(&mut s, KeyCode::Enter)).is_empty());
        assert!(matches!(s.overlay, Overlay::None));
        press(&mut s, KeyCode::Char('x'));
        let e = press(&mut s, KeyCode::Char('y'));
        assert_eq!(sent(&e), [&UiCommand::Revoke("github".into())]);
        assert!(matches!(s.overlay, Overlay::None));
    }

    #[test]
    fn logout_confirm_and_cancel() {
        let mut s = preview_state(preview_now());
        press(&mut s, KeyCode::Char('d'));
        assert_eq!(s.overlay_confirm(), Some(&Confirm::Logout("github".into())));
        // Keys other than y/n do nothing and keep the question.
        assert!(sent(&press(&mut s, KeyCode::Char('q'))).is_empty());
        assert!(s.overlay_confirm().is_some());
        assert!(sent(&press(&mut s, KeyCode::Esc)).is_empty());
        press(&mut s, KeyCode::Char('d'));
        let e = press(&mut s, KeyCode::Char('Y'));
        assert_eq!(sent(&e), [&UiCommand::Logout("github".into())]);
    }

    #[test]
    fn login_picker_sends_the_chosen_mode() {
        let mut s = preview_state(preview_now());
        press(&mut s, KeyCode::Char('l'));
        assert_eq!(s.input_mode(), InputMode::Picker);
        press(&mut s, KeyCode::Down);
        let e = press(&mut s, KeyCode::Enter);
        assert_eq!(
            sent(&e),
            [&UiCommand::Login {
                account: "github".into(),
                mode: LoginMode::Paste
            }]
        );
        assert!(matches!(&s.overlay, Overlay::Login(d) if d.step == DialogStep::Starting));
        // Esc cancels the login at the app too.
        let e = press(&mut s, KeyCode::Esc);
        assert_eq!(
            sent(&e),
            [&UiCommand::CancelLogin {
                account: "github".into()
            }]
        );
        // The shortcut letters pick directly.
        press(&mut s, KeyCode::Char('l'));
        let e = press(&mut s, KeyCode::Char('v'));
        assert!(matches!(
            sent(&e)[..],
            [UiCommand::Login {
                mode: LoginMode::Device,
                ..
            }]
        ));
    }

    #[test]
    fn device_mode_not_offered_without_endpoint() {
        let mut s = preview_state(preview_now());
        press(&mut s, KeyCode::Char('j'));
        press(&mut s, KeyCode::Char('j')); // microsoft: can_device = false
        press(&mut s, KeyCode::Char('l'));
        assert!(sent(&press(&mut s, KeyCode::Char('v'))).is_empty());
        press(&mut s, KeyCode::Down);
        press(&mut s, KeyCode::Down);
        press(&mut s, KeyCode::Down);
        let e = press(&mut s, KeyCode::Enter);
        assert!(matches!(
            sent(&e)[..],
            [UiCommand::Login {
                mode: LoginMode::Paste,
                ..
            }]
        ));
    }

    fn paste_dialog() -> DashboardState {
        let mut s = preview_state(preview_now());
        press(&mut s, KeyCode::Char('l'));
        press(&mut s, KeyCode::Char('p'));
        update(
            &mut s,
            AppEvent::LoginProgress {
                account: "github".into(),
                step: LoginStep::ShowUrl {
                    url: "http://127.0.0.1:4455/authorize?client_id=demo&state=st".into(),
                    expires_at: Some(preview_now() + Duration::from_secs(300)),
                },
            }
            .into(),
        );
        s
    }

    #[test]
    fn paste_submission_sends_the_typed_input() {
        let mut s = paste_dialog();
        assert_eq!(s.input_mode(), InputMode::LoginDialog);
        // `c` copies the URL while the field does not have focus.
        let e = press(&mut s, KeyCode::Char('c'));
        assert!(matches!(&e[..], [Effect::Copy(Clipboard::Url(u))] if u.contains("authorize")));
        // Enter with nothing typed does nothing.
        press(&mut s, KeyCode::Tab);
        assert_eq!(s.input_mode(), InputMode::Text);
        assert!(press(&mut s, KeyCode::Enter).is_empty());
        chars(&mut s, "c0dex");
        press(&mut s, KeyCode::Backspace);
        let e = press(&mut s, KeyCode::Enter);
        assert_eq!(
            sent(&e),
            [&UiCommand::SubmitPaste {
                account: "github".into(),
                input: AuthCode::new("c0de")
            }]
        );
        assert!(matches!(&s.overlay, Overlay::Login(d) if d.step == DialogStep::Waiting));
    }

    #[test]
    fn bracketed_paste_fills_the_field_and_focuses_it() {
        let mut s = paste_dialog();
        update(
            &mut s,
            Msg::Paste(Zeroizing::new(
                "http://127.0.0.1:4455/callback?code=abc&state=st\n".into(),
            )),
        );
        assert_eq!(s.input_mode(), InputMode::Text);
        let e = press(&mut s, KeyCode::Enter);
        assert_eq!(
            sent(&e),
            [&UiCommand::SubmitPaste {
                account: "github".into(),
                input: AuthCode::new("http://127.0.0.1:4455/callback?code=abc&state=st")
            }]
        );
    }

    #[test]
    fn login_progress_done_and_failed() {
        let mut s = paste_dialog();
        assert!(matches!(&s.overlay, Overlay::Login(d) if d.qr.is_some()));
        // Progress for another account is ignored.
        update(
            &mut s,
            AppEvent::LoginProgress {
                account: "gitlab".into(),
                step: LoginStep::Done,
            }
            .into(),
        );
        assert!(matches!(s.overlay, Overlay::Login(_)));
        update(
            &mut s,
            AppEvent::LoginProgress {
                account: "github".into(),
                step: LoginStep::Failed("state mismatch".into()),
            }
            .into(),
        );
        assert!(
            matches!(&s.overlay, Overlay::Login(d) if d.step == DialogStep::Failed("state mismatch".into()))
        );
        // Closing a failed dialog does not cancel anything.
        assert!(press(&mut s, KeyCode::Esc).is_empty());
        assert!(matches!(s.overlay, Overlay::None));

        let mut s = paste_dialog();
        update(
            &mut s,
            AppEvent::LoginProgress {
                account: "github".into(),
                step: LoginStep::Done,
            }
            .into(),
        );
        assert!(matches!(s.overlay, Overlay::None));
        assert!(s.flash.as_ref().is_some_and(|f| f.text.contains("github")));
    }

    #[test]
    fn passphrase_retry_asks_again() {
        let mut s = preview_state(preview_now());
        update(&mut s, AppEvent::PassphraseNeeded { retry: false }.into());
        assert_eq!(s.input_mode(), InputMode::Text);
        chars(&mut s, "wrong q");
        let e = press(&mut s, KeyCode::Enter);
        assert_eq!(
            sent(&e),
            [&UiCommand::SubmitPassphrase(Passphrase::new("wrong q"))]
        );
        assert!(matches!(s.overlay, Overlay::None));
        update(&mut s, AppEvent::PassphraseNeeded { retry: true }.into());
        assert!(
            matches!(&s.overlay, Overlay::Passphrase { retry: true, input } if input.is_empty())
        );
        chars(&mut s, "right");
        let e = press(&mut s, KeyCode::Enter);
        assert_eq!(
            sent(&e),
            [&UiCommand::SubmitPassphrase(Passphrase::new("right"))]
        );
    }

    #[test]
    fn passphrase_esc_quits() {
        let mut s = preview_state(preview_now());
        update(&mut s, AppEvent::PassphraseNeeded { retry: false }.into());
        let e = press(&mut s, KeyCode::Esc);
        assert!(matches!(
            &e[..],
            [Effect::Send(UiCommand::Quit), Effect::Exit]
        ));
        assert!(s.quit);
    }

    #[test]
    fn fields_do_not_leak_in_debug_log_1() {
        let mut s = preview_state(preview_now());
        update(&mut s, AppEvent::PassphraseNeeded { retry: false }.into());
        chars(&mut s, "hunter2");
        assert!(!format!("{s:?}").contains("hunter2"));
    }

    #[test]
    fn log_panel_appends_and_caps() {
        let mut s = DashboardState::new(Vec::new(), preview_now(), Theme { color: true });
        for i in 0..LOG_CAP + 7 {
            update(
                &mut s,
                AppEvent::Log(log_entry(preview_now(), &format!("a{i}"), LogKind::Rotated)).into(),
            );
        }
        assert_eq!(s.log.len(), LOG_CAP);
        assert_eq!(s.log.front().map(|e| e.account.as_str()), Some("a7"));
        let last = format!("a{}", LOG_CAP + 6);
        assert_eq!(
            s.log.back().map(|e| e.account.as_str()),
            Some(last.as_str())
        );
    }

    #[test]
    fn account_updates_replace_by_name_and_keep_selection() {
        let mut s = preview_state(preview_now());
        press(&mut s, KeyCode::Char('j'));
        let mut g = s.accounts[1].clone();
        g.state = AccountState::Refreshing;
        update(&mut s, AppEvent::AccountUpdated(g).into());
        assert_eq!(s.accounts[1].state, AccountState::Refreshing);
        update(
            &mut s,
            AppEvent::AccountUpdated(AccountView::new("new", "x")).into(),
        );
        assert_eq!(s.accounts.last().map(|a| a.name.as_str()), Some("new"));
        // A reload in another order keeps the same account selected.
        let mut reversed = s.accounts.clone();
        reversed.reverse();
        update(&mut s, AppEvent::AccountsLoaded(reversed).into());
        assert_eq!(selected(&s), "google-work");
        update(&mut s, AppEvent::AccountsLoaded(Vec::new()).into());
        assert_eq!(s.selected, 0);
    }

    #[test]
    fn export_line_goes_to_clipboard_only() {
        let mut s = preview_state(preview_now());
        let e = press(&mut s, KeyCode::Char('e'));
        assert_eq!(sent(&e), [&UiCommand::CopyExport("github".into())]);
        let e = update(
            &mut s,
            AppEvent::ExportLine {
                account: "github".into(),
                line: AccessToken::new("export GITHUB_ACCESS_TOKEN='t0k'"),
            }
            .into(),
        );
        assert!(matches!(&e[..], [Effect::Copy(c)] if c.secret().contains("t0k")));
        assert!(!format!("{e:?}").contains("t0k"));
        assert!(s.flash.as_ref().is_some_and(|f| !f.text.contains("t0k")));
    }

    #[test]
    fn ticks_advance_time_and_expire_flash() {
        let mut s = preview_state(preview_now());
        press(&mut s, KeyCode::Char('R'));
        assert!(s.flash.is_some());
        update(&mut s, Msg::Tick(preview_now() + Duration::from_secs(1)));
        assert!(s.flash.is_some());
        assert_eq!(s.ticks, 1);
        update(&mut s, Msg::Tick(preview_now() + FLASH_FOR));
        assert!(s.flash.is_none());
        assert_eq!(s.now, preview_now() + FLASH_FOR);
    }

    #[test]
    fn quit_help_and_signals() {
        let mut s = preview_state(preview_now());
        press(&mut s, KeyCode::Char('?'));
        assert_eq!(s.input_mode(), InputMode::Help);
        // `q` closes the help rather than quitting.
        assert!(press(&mut s, KeyCode::Char('q')).is_empty());
        assert!(!s.quit);
        let e = press(&mut s, KeyCode::Char('q'));
        assert!(matches!(
            &e[..],
            [Effect::Send(UiCommand::Quit), Effect::Exit]
        ));
        let mut s = preview_state(preview_now());
        let e = update(&mut s, Msg::Signal);
        assert!(matches!(
            &e[..],
            [Effect::Send(UiCommand::Quit), Effect::Exit]
        ));
    }

    impl DashboardState {
        fn overlay_confirm(&self) -> Option<&Confirm> {
            match &self.overlay {
                Overlay::Confirm(c) => Some(c),
                _ => None,
            }
        }
    }
}
