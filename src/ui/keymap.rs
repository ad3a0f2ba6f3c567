//! Keys → actions. The only place that knows which key does what; `update` sees [`Action`]s.
//!
//! Which map applies depends on what has focus ([`InputMode`]): in a text field `q` is a letter,
//! in the list it quits. Ctrl-C quits from everywhere.

use crossterm::event::{KeyCode, KeyEvent, KeyEventKind, KeyModifiers};

/// What has the keyboard.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InputMode {
    /// The account list.
    Normal,
    /// The help overlay: any key closes it.
    Help,
    /// A yes/no question.
    Confirm,
    /// The login mode picker.
    Picker,
    /// A login dialog whose URL has focus (`c` copies it).
    LoginDialog,
    /// A text field: the filter, the paste field or the passphrase.
    Text,
}

/// What a key means.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    /// Select the previous row / option.
    Up,
    /// Select the next row / option.
    Down,
    /// Jump to the first row.
    Top,
    /// Jump to the last row.
    Bottom,
    /// Ten rows up.
    PageUp,
    /// Ten rows down.
    PageDown,
    /// Leave the dashboard.
    Quit,
    /// Open the help overlay.
    Help,
    /// Open the login mode picker for the selected account.
    Login,
    /// Refresh the selected account.
    Refresh,
    /// Refresh every account.
    RefreshAll,
    /// Revoke the selected account (asks first).
    Revoke,
    /// Log the selected account out (asks first).
    Logout,
    /// Copy the selected account's export line (OSC 52).
    CopyExport,
    /// Lock the agent the dashboard is attached to.
    LockAgent,
    /// Start typing a filter.
    Filter,
    /// Answer yes.
    Yes,
    /// Answer no.
    No,
    /// Esc: close, cancel or clear.
    Cancel,
    /// Enter.
    Submit,
    /// Move focus (login dialog: URL ↔ paste field).
    Focus,
    /// Copy the login URL (OSC 52).
    CopyUrl,
    /// Leave the alternate screen and print the login URL alone on the normal screen, so a
    /// mouse can select it over SSH; any key comes back.
    ShowUrl,
    /// Pick a login mode directly.
    Pick(crate::app::view::LoginMode),
    /// A character typed into a text field.
    Input(char),
    /// Delete the character before the cursor.
    Backspace,
    /// Ctrl-U: empty the field.
    ClearInput,
}

/// Maps a key press to an action in the given mode; `None` for keys that do nothing.
pub fn map(mode: InputMode, key: KeyEvent) -> Option<Action> {
    if key.kind == KeyEventKind::Release {
        return None;
    }
    let ctrl = key.modifiers.contains(KeyModifiers::CONTROL);
    if ctrl && matches!(key.code, KeyCode::Char('c' | 'C')) {
        return Some(Action::Quit);
    }
    match mode {
        InputMode::Normal => normal(key.code, ctrl),
        InputMode::Help => Some(Action::Cancel),
        InputMode::Confirm => confirm(key.code),
        InputMode::Picker => picker(key.code),
        InputMode::LoginDialog => dialog(key.code),
        InputMode::Text => text(key.code, ctrl),
    }
}

fn normal(code: KeyCode, ctrl: bool) -> Option<Action> {
    Some(match code {
        KeyCode::Up | KeyCode::Char('k') => Action::Up,
        KeyCode::Down | KeyCode::Char('j') => Action::Down,
        KeyCode::Home | KeyCode::Char('g') => Action::Top,
        KeyCode::End | KeyCode::Char('G') => Action::Bottom,
        KeyCode::PageUp => Action::PageUp,
        KeyCode::PageDown => Action::PageDown,
        KeyCode::Char('u') if ctrl => Action::PageUp,
        KeyCode::Char('d') if ctrl => Action::PageDown,
        KeyCode::Char('q') => Action::Quit,
        KeyCode::Char('?') | KeyCode::F(1) => Action::Help,
        KeyCode::Char('l') | KeyCode::Enter => Action::Login,
        KeyCode::Char('r') => Action::Refresh,
        KeyCode::Char('R') => Action::RefreshAll,
        KeyCode::Char('x') => Action::Revoke,
        KeyCode::Char('d') => Action::Logout,
        KeyCode::Char('e') => Action::CopyExport,
        KeyCode::Char('L') => Action::LockAgent,
        KeyCode::Char('/') => Action::Filter,
        KeyCode::Esc => Action::Cancel,
        _ => return None,
    })
}

fn confirm(code: KeyCode) -> Option<Action> {
    Some(match code {
        KeyCode::Char('y' | 'Y') => Action::Yes,
        KeyCode::Char('n' | 'N') | KeyCode::Esc | KeyCode::Enter => Action::No,
        _ => return None,
    })
}

fn picker(code: KeyCode) -> Option<Action> {
    use crate::app::view::LoginMode;
    Some(match code {
        KeyCode::Up | KeyCode::Char('k') => Action::Up,
        KeyCode::Down | KeyCode::Char('j') => Action::Down,
        KeyCode::Enter => Action::Submit,
        KeyCode::Esc | KeyCode::Char('q') => Action::Cancel,
        KeyCode::Char('b') => Action::Pick(LoginMode::Browser),
        KeyCode::Char('p') => Action::Pick(LoginMode::Paste),
        KeyCode::Char('v') => Action::Pick(LoginMode::Device),
        _ => return None,
    })
}

fn dialog(code: KeyCode) -> Option<Action> {
    Some(match code {
        KeyCode::Char('c') => Action::CopyUrl,
        KeyCode::Char('u') => Action::ShowUrl,
        KeyCode::Tab | KeyCode::Char('i' | 'p') => Action::Focus,
        KeyCode::Enter => Action::Submit,
        KeyCode::Esc => Action::Cancel,
        _ => return None,
    })
}

fn text(code: KeyCode, ctrl: bool) -> Option<Action> {
    Some(match code {
        KeyCode::Char('u') if ctrl => Action::ClearInput,
        KeyCode::Char(_) if ctrl => return None,
        KeyCode::Char(c) => Action::Input(c),
        KeyCode::Backspace => Action::Backspace,
        KeyCode::Enter => Action::Submit,
        KeyCode::Esc => Action::Cancel,
        KeyCode::Tab | KeyCode::BackTab => Action::Focus,
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(code: KeyCode) -> KeyEvent {
        KeyEvent::new(code, KeyModifiers::NONE)
    }

    #[test]
    fn vim_and_arrow_keys_move() {
        for (c, a) in [
            (KeyCode::Char('j'), Action::Down),
            (KeyCode::Down, Action::Down),
            (KeyCode::Char('k'), Action::Up),
            (KeyCode::Up, Action::Up),
            (KeyCode::Char('g'), Action::Top),
            (KeyCode::Char('G'), Action::Bottom),
        ] {
            assert_eq!(map(InputMode::Normal, key(c)), Some(a));
        }
    }

    #[test]
    fn letters_are_text_in_fields_but_commands_in_the_list() {
        assert_eq!(
            map(InputMode::Normal, key(KeyCode::Char('q'))),
            Some(Action::Quit)
        );
        assert_eq!(
            map(InputMode::Text, key(KeyCode::Char('q'))),
            Some(Action::Input('q'))
        );
        assert_eq!(
            map(InputMode::Normal, key(KeyCode::Char('R'))),
            Some(Action::RefreshAll)
        );
    }

    #[test]
    fn ctrl_c_quits_everywhere() {
        let k = KeyEvent::new(KeyCode::Char('c'), KeyModifiers::CONTROL);
        for m in [
            InputMode::Normal,
            InputMode::Help,
            InputMode::Confirm,
            InputMode::Picker,
            InputMode::LoginDialog,
            InputMode::Text,
        ] {
            assert_eq!(map(m, k), Some(Action::Quit), "{m:?}");
        }
    }

    #[test]
    fn confirm_defaults_to_no() {
        assert_eq!(
            map(InputMode::Confirm, key(KeyCode::Enter)),
            Some(Action::No)
        );
        assert_eq!(
            map(InputMode::Confirm, key(KeyCode::Char('y'))),
            Some(Action::Yes)
        );
        assert_eq!(map(InputMode::Confirm, key(KeyCode::Char('x'))), None);
    }

    #[test]
    fn releases_are_ignored() {
        let mut k = key(KeyCode::Char('q'));
        k.kind = KeyEventKind::Release;
        assert_eq!(map(InputMode::Normal, k), None);
    }
}
