//! The dashboard's `update`: Elm style. It changes the [`DashboardState`] and returns the
//! effects to perform; it never does I/O, so every action is unit-testable.

use super::field::Field;
use super::keymap::{self, Action};
use super::qr::QrArt;
use super::state::{
    Clipboard, Confirm, DashboardState, DialogStep, Effect, FLASH_FOR, LoginDialog, Msg, Overlay,
};
use crate::app::view::{AgentKeyState, AppEvent, LoginMode, LoginStep, UiCommand};
use crate::secret::{Passphrase, PastedRedirect};
use std::time::SystemTime;

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
        Action::LockAgent => match &state.agent {
            Some(a) if a.state == AgentKeyState::Gone => {
                state.flash("the agent is gone: there is nothing to lock", true);
            }
            Some(a) if a.lockable => {
                state.flash("Locking the agent…", false);
                return send(UiCommand::LockAgent);
            }
            Some(_) => state.flash("the agent holds no passphrase key to forget", true),
            None => state.flash("no agent runs: there is nothing to lock", true),
        },
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
            let url = dialog_url(&d);
            state.overlay = Overlay::Login(d);
            if let Some(url) = url {
                state.flash("Copied the URL to the clipboard (OSC 52)", false);
                return vec![Effect::Copy(Clipboard::Url(url))];
            }
            return Vec::new();
        }
        Action::ShowUrl => {
            let url = dialog_url(&d);
            state.overlay = Overlay::Login(d);
            return url.map(Effect::ShowUrl).into_iter().collect();
        }
        Action::Focus if d.mode == LoginMode::Paste && !failed => d.paste_focus = !d.paste_focus,
        Action::Input(c) if d.paste_focus => d.paste.push(c),
        Action::Backspace if d.paste_focus => d.paste.backspace(),
        Action::ClearInput if d.paste_focus => d.paste.clear(),
        Action::Submit if d.paste_focus && !d.paste.is_empty() => {
            let input = PastedRedirect::new(d.paste.take());
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

/// The URL a login dialog shows: the authorization URL, or the device verification URI (with
/// the code in it when the server gave one).
fn dialog_url(d: &LoginDialog) -> Option<String> {
    match &d.step {
        DialogStep::Url { url, .. } => Some(url.clone()),
        DialogStep::Device {
            verification_uri,
            complete,
            ..
        } => Some(complete.clone().unwrap_or_else(|| verification_uri.clone())),
        _ => None,
    }
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
        AppEvent::Backend(status) => state.backend = Some(status),
        AppEvent::Agent(agent) => {
            // Unlocked again (from here or by `authdeck unlock`), or gone (AGENT-16): the
            // prompt has nothing to do.
            if matches!(agent.state, AgentKeyState::Unlocked | AgentKeyState::Gone)
                && matches!(state.overlay, Overlay::Passphrase { .. })
            {
                state.overlay = Overlay::None;
            }
            // A login in the agent ended with it (AGENT-16).
            if agent.state == AgentKeyState::Gone
                && let Overlay::Login(d) = &mut state.overlay
                && !matches!(d.step, DialogStep::Failed(_))
            {
                d.step = DialogStep::Failed("the agent stopped; the login ended with it".into());
                d.paste_focus = false;
            }
            state.agent = Some(agent);
        }
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::app::view::Badge;
    use crate::app::view::{AccountView, LogKind};
    use crate::secret::ExportLine;
    use crate::ui::keymap::InputMode;
    use crate::ui::preview::{preview_now, preview_state};
    use crate::ui::state::{LOG_CAP, Theme, log_entry};
    use crossterm::event::KeyEvent;
    use crossterm::event::{KeyCode, KeyModifiers};
    use std::time::Duration;
    use zeroize::Zeroizing;

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

    /// AGENT-16: the agent going away closes the passphrase prompt, ends a login in progress
    /// with a reason, and `L` says there is nothing to lock.
    #[test]
    fn agent16_a_gone_agent_ends_prompts_and_logins() {
        use crate::app::view::AgentView;
        let gone = AgentView {
            host: "h".into(),
            state: AgentKeyState::Gone,
            lock_at: None,
            lockable: false,
        };
        let mut s = preview_state(preview_now());
        update(
            &mut s,
            Msg::App(Box::new(AppEvent::PassphraseNeeded { retry: false })),
        );
        assert!(matches!(s.overlay, Overlay::Passphrase { .. }));
        update(&mut s, Msg::App(Box::new(AppEvent::Agent(gone.clone()))));
        assert!(matches!(s.overlay, Overlay::None));
        press(&mut s, KeyCode::Char('l'));
        press(&mut s, KeyCode::Char('p'));
        assert!(matches!(s.overlay, Overlay::Login(_)), "{:?}", s.overlay);
        update(&mut s, Msg::App(Box::new(AppEvent::Agent(gone))));
        assert!(
            matches!(&s.overlay, Overlay::Login(d) if matches!(&d.step, DialogStep::Failed(r) if r.contains("agent stopped"))),
            "{:?}",
            s.overlay
        );
        press(&mut s, KeyCode::Esc);
        assert!(sent(&press(&mut s, KeyCode::Char('L'))).is_empty());
        assert!(s.flash.as_ref().is_some_and(|f| f.text.contains("gone")));
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
                input: PastedRedirect::new("c0de")
            }]
        );
        assert!(matches!(&s.overlay, Overlay::Login(d) if d.step == DialogStep::Waiting));
    }

    /// `u` asks the loop to show the URL alone on the normal screen; the dialog stays; in the
    /// paste field `u` is a letter.
    #[test]
    fn u_shows_the_url_alone_and_keeps_the_dialog() {
        let mut s = paste_dialog();
        let e = press(&mut s, KeyCode::Char('u'));
        assert!(matches!(&e[..], [Effect::ShowUrl(u)] if u.contains("/authorize?client_id=demo")));
        assert!(
            matches!(&s.overlay, Overlay::Login(d) if matches!(d.step, DialogStep::Url { .. }))
        );
        press(&mut s, KeyCode::Tab);
        assert!(press(&mut s, KeyCode::Char('u')).is_empty());
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
                input: PastedRedirect::new("http://127.0.0.1:4455/callback?code=abc&state=st")
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
        g.state = Badge::Refreshing;
        update(&mut s, AppEvent::AccountUpdated(g).into());
        assert_eq!(s.accounts[1].state, Badge::Refreshing);
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
                line: ExportLine::new("export GITHUB_ACCESS_TOKEN='t0k'"),
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
