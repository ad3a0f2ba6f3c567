//! The overlays drawn over the dashboard: help, y/n confirmations, the login-mode picker, the
//! login dialog (URL, QR code, paste field, device code) and the passphrase prompt. Pure, like
//! [`super::render`].

use super::format::{compact, remaining};
use super::qr::QrArt;
use super::render::{RenderRef, SPINNER, block};
use super::state::{Confirm, DashboardState, DialogStep, LoginDialog, Overlay, Theme};
use crate::app::view::LoginMode;
use ratatui::buffer::Buffer;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Clear, Paragraph, Wrap};

/// A rectangle of at most `w`×`h` centred in `area`.
fn centered(area: Rect, w: u16, h: u16) -> Rect {
    let w = w.min(area.width);
    let h = h.min(area.height);
    Rect::new(
        area.x + (area.width - w) / 2,
        area.y + (area.height - h) / 2,
        w,
        h,
    )
}

fn popup(area: Rect, buf: &mut Buffer, title: &str, t: Theme) -> Rect {
    Clear.render_ref(area, buf);
    let b = block(title, t).border_style(t.fg(Color::Cyan));
    let inner = b.inner(area);
    b.render_ref(area, buf);
    inner
}

pub(super) fn draw_overlay(state: &DashboardState, area: Rect, buf: &mut Buffer) {
    let t = state.theme;
    match &state.overlay {
        Overlay::None => {}
        Overlay::Help => draw_help(area, buf, t),
        Overlay::Confirm(c) => draw_confirm(c, area, buf, t),
        Overlay::Picker {
            account,
            choice,
            can_device,
        } => draw_picker(account, *choice, *can_device, area, buf, t),
        Overlay::Login(d) => draw_login(state, d, area, buf),
        Overlay::Passphrase { retry, input } => {
            let inner = popup(centered(area, 56, 7), buf, "Unlock the vault", t);
            let mut lines = Vec::new();
            if *retry {
                lines.push(Line::styled("Wrong passphrase, try again.", t.error()));
            } else {
                lines.push(Line::raw("The vault is locked."));
            }
            let shown = input
                .chars()
                .min(usize::from(inner.width.saturating_sub(14)));
            lines.push(Line::from(vec![
                Span::styled("Passphrase: ", t.label()),
                Span::raw(format!("{}▏", "•".repeat(shown))),
            ]));
            lines.push(Line::raw(""));
            lines.push(hints(t, &[("Enter", "unlock"), ("Esc", "quit")]));
            Paragraph::new(lines).render_ref(inner, buf);
        }
    }
}

pub(super) fn hints(t: Theme, keys: &[(&str, &str)]) -> Line<'static> {
    let mut spans = Vec::new();
    for (k, what) in keys {
        spans.push(Span::styled(k.to_string(), t.key()));
        spans.push(Span::raw(format!(" {what}  ")));
    }
    Line::from(spans)
}

const HELP: &[(&str, &str)] = &[
    ("↑/k ↓/j", "select account"),
    ("g / G", "first / last"),
    ("PgUp PgDn", "ten rows up / down"),
    ("l, Enter", "log in (choose browser, paste or device)"),
    ("r", "refresh the selected account now"),
    ("R", "refresh every account now"),
    ("x", "revoke at the provider (asks first)"),
    ("d", "log out locally (asks first)"),
    ("e", "copy the export line (OSC 52 clipboard)"),
    ("L", "lock the agent (when attached to one)"),
    ("/", "filter by name, provider or identity"),
    ("Esc", "close, cancel, clear the filter"),
    ("?", "this help"),
    ("q, Ctrl-C", "quit"),
];

fn draw_help(area: Rect, buf: &mut Buffer, t: Theme) {
    let h = u16::try_from(HELP.len()).unwrap_or(20) + 6;
    let inner = popup(centered(area, 64, h), buf, "Keys", t);
    let mut lines: Vec<Line> = HELP
        .iter()
        .map(|(k, what)| {
            Line::from(vec![
                Span::styled(format!("{k:<11}"), t.key()),
                Span::raw(*what),
            ])
        })
        .collect();
    lines.push(Line::raw(""));
    lines.push(Line::styled(
        "Login dialogs: c copies the URL (OSC 52), u shows it alone",
        t.dim(),
    ));
    lines.push(Line::styled(
        "(to select with a mouse over SSH), Tab: the paste field.",
        t.dim(),
    ));
    lines.push(Line::styled("Any key closes this help.", t.dim()));
    Paragraph::new(lines).render_ref(inner, buf);
}

fn draw_confirm(c: &Confirm, area: Rect, buf: &mut Buffer, t: Theme) {
    let (title, q) = match c {
        Confirm::Revoke(n) => (
            "Revoke",
            format!("Revoke {n} at the provider and delete its tokens here?"),
        ),
        Confirm::Logout(n) => (
            "Log out",
            format!("Delete the tokens of {n} here? (The provider is not told.)"),
        ),
    };
    let inner = popup(centered(area, 60, 6), buf, title, t);
    Paragraph::new(vec![
        Line::raw(q),
        Line::raw(""),
        hints(t, &[("y", "yes"), ("n/Esc", "no")]),
    ])
    .wrap(Wrap { trim: true })
    .render_ref(inner, buf);
}

fn mode_blurb(m: LoginMode) -> &'static str {
    match m {
        LoginMode::Browser => "Browser: open a browser on this machine",
        LoginMode::Paste => "Paste (VPS/SSH): URL + QR, paste the redirect back",
        LoginMode::Device => "Device: enter a code on another device",
    }
}

fn draw_picker(
    account: &str,
    choice: LoginMode,
    can_device: bool,
    area: Rect,
    buf: &mut Buffer,
    t: Theme,
) {
    let inner = popup(centered(area, 62, 9), buf, &format!("Log in: {account}"), t);
    let keys = ["b", "p", "v"];
    let mut lines = Vec::new();
    for (m, k) in LoginMode::ALL.into_iter().zip(keys) {
        let off = m == LoginMode::Device && !can_device;
        let marker = if m == choice { "▶ " } else { "  " };
        let mut style = if m == choice {
            t.selected()
        } else {
            Style::new()
        };
        if off {
            style = t.dim();
        }
        let suffix = if off { " (not offered)" } else { "" };
        lines.push(Line::styled(
            format!("{marker}{k}  {}{suffix}", mode_blurb(m)),
            style,
        ));
    }
    lines.push(Line::raw(""));
    lines.push(hints(
        t,
        &[("↑↓", "choose"), ("Enter", "start"), ("Esc", "cancel")],
    ));
    Paragraph::new(lines).render_ref(inner, buf);
}

fn spinner(state: &DashboardState) -> &'static str {
    let i = usize::try_from(state.ticks % SPINNER.len() as u64).unwrap_or(0);
    SPINNER.get(i).copied().unwrap_or("*")
}

fn draw_login(state: &DashboardState, d: &LoginDialog, area: Rect, buf: &mut Buffer) {
    let t = state.theme;
    let title = format!("Log in: {} · {} mode", d.account, d.mode.word());
    // The whole body: a login needs the room (URL, QR code) and half-covered panes behind a
    // dialog only distract.
    let inner = popup(area, buf, &title, t);
    // The QR code goes to the right when there is room beside ~40 columns of text.
    let qr =
        d.qr.as_ref()
            .filter(|q| q.width + 42 <= inner.width && q.height() <= inner.height);
    let text_area = match qr {
        Some(q) => {
            let [text, gap, code] = Layout::horizontal([
                Constraint::Min(40),
                Constraint::Length(1),
                Constraint::Length(q.width),
            ])
            .areas(inner);
            let _ = gap;
            draw_qr(q, code, buf, t);
            text
        }
        None => inner,
    };
    let mut lines = login_lines(state, d);
    if d.qr.is_some() && qr.is_none() {
        lines.push(Line::styled(
            "(QR code hidden: enlarge the terminal to see it)",
            t.dim(),
        ));
    }
    Paragraph::new(lines)
        .wrap(Wrap { trim: false })
        .render_ref(text_area, buf);
}

fn draw_qr(q: &QrArt, area: Rect, buf: &mut Buffer, t: Theme) {
    let lines: Vec<Line> = q.lines.iter().map(|l| Line::raw(l.as_str())).collect();
    let h = q.height().min(area.height);
    Paragraph::new(lines)
        .style(t.qr())
        .render_ref(Rect::new(area.x, area.y, q.width.min(area.width), h), buf);
}

fn login_lines<'a>(state: &DashboardState, d: &'a LoginDialog) -> Vec<Line<'a>> {
    let t = state.theme;
    let spin = spinner(state);
    let mut lines: Vec<Line> = Vec::new();
    let timeout = |at: Option<std::time::SystemTime>| match at {
        Some(at) => format!(" · times out in {}", compact(remaining(at, state.now))),
        None => String::new(),
    };
    match &d.step {
        DialogStep::Starting => {
            let waited = state.now.duration_since(d.started_at).unwrap_or_default();
            lines.push(Line::raw(format!(
                "{spin} starting the login… ({})",
                compact(waited)
            )));
            lines.push(Line::raw(""));
            lines.push(hints(t, &[("Esc", "cancel")]));
        }
        DialogStep::Url { url, expires_at } => {
            let (intro, wait) = if d.mode == LoginMode::Paste {
                (
                    "1. Open this URL in a browser on any machine (or scan the QR code):",
                    "waiting for the callback or your paste",
                )
            } else {
                (
                    "Your browser should open. If it does not, open this URL:",
                    "waiting for the browser to come back",
                )
            };
            lines.push(Line::raw(intro));
            lines.push(Line::styled(url.as_str(), t.fg(Color::Cyan)));
            lines.push(Line::raw(""));
            if d.mode == LoginMode::Paste {
                lines.push(Line::raw(
                    "2. After approving, copy the address the browser ended on (even if \
                     the page did not load), or just the code, and paste it here:",
                ));
                let field_style = if d.paste_focus { t.selected() } else { t.dim() };
                let shown = if d.paste.is_empty() && !d.paste_focus {
                    "[press Tab, or just paste]".to_owned()
                } else {
                    let cursor = if d.paste_focus { "▏" } else { "" };
                    format!("{}{cursor}", d.paste.as_str())
                };
                lines.push(Line::from(vec![
                    Span::styled("> ", t.key()),
                    Span::styled(shown, field_style),
                ]));
                lines.push(Line::raw(""));
            }
            lines.push(Line::raw(format!("{spin} {wait}{}", timeout(*expires_at))));
            let keys: &[(&str, &str)] = if d.mode == LoginMode::Paste {
                &[
                    ("c", "copy URL"),
                    ("u", "URL alone"),
                    ("Tab", "paste field"),
                    ("Enter", "submit"),
                    ("Esc", "cancel"),
                ]
            } else {
                &[("c", "copy URL"), ("u", "URL alone"), ("Esc", "cancel")]
            };
            lines.push(hints(t, keys));
        }
        DialogStep::Device {
            user_code,
            verification_uri,
            complete,
            expires_at,
        } => {
            lines.push(Line::raw("On any device, open:"));
            lines.push(Line::styled(
                format!("  {verification_uri}"),
                t.fg(Color::Cyan),
            ));
            lines.push(Line::raw("and enter the code:"));
            lines.push(Line::styled(
                format!("  {user_code}"),
                t.key().add_modifier(Modifier::REVERSED),
            ));
            if let Some(c) = complete {
                lines.push(Line::raw(""));
                lines.push(Line::raw("Or open (code included), or scan the QR code:"));
                lines.push(Line::styled(format!("  {c}"), t.fg(Color::Cyan)));
            }
            lines.push(Line::raw(""));
            lines.push(Line::raw(format!(
                "{spin} waiting for approval · code expires in {}",
                compact(remaining(*expires_at, state.now))
            )));
            lines.push(hints(
                t,
                &[("c", "copy URL"), ("u", "URL alone"), ("Esc", "cancel")],
            ));
        }
        DialogStep::Waiting => {
            lines.push(Line::raw(format!("{spin} exchanging the code for tokens…")));
            lines.push(Line::raw(""));
            lines.push(hints(t, &[("Esc", "cancel")]));
        }
        DialogStep::Failed(reason) => {
            lines.push(Line::styled(format!("✗ login failed: {reason}"), t.error()));
            lines.push(Line::raw(""));
            lines.push(hints(t, &[("Esc", "close")]));
        }
    }
    lines
}
