//! `view`: draws a [`DashboardState`] into a frame. A pure function of the state: no clock, no
//! environment, no I/O, so the same state always gives the same screen (snapshot tests).

use super::format::{clock, compact, countdown, datetime, remaining};
use super::qr::QrArt;
use super::state::{Confirm, DashboardState, DialogStep, LoginDialog, Overlay, Theme};
use crate::app::view::{AccountView, Badge, LogEntry, LogKind, LoginMode};
use ratatui::Frame;
use ratatui::buffer::Buffer;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span, Text};
use ratatui::widgets::{Block, Cell, Clear, Paragraph, Row, Table, TableState, Wrap};

/// Wide layouts put the details beside the list from this width.
const WIDE: u16 = 110;
/// Below this width the provider and identity columns are hidden.
const NARROW: u16 = 70;
const SPINNER: [&str; 10] = ["⠋", "⠙", "⠹", "⠸", "⠼", "⠴", "⠦", "⠧", "⠇", "⠏"];

impl Theme {
    fn fg(self, c: Color) -> Style {
        if self.color {
            Style::new().fg(c)
        } else {
            Style::new()
        }
    }

    fn badge(self, s: Badge) -> Style {
        let (c, bold) = match s {
            Badge::Valid => (Color::Green, false),
            Badge::Expiring => (Color::Yellow, false),
            Badge::Expired => (Color::Red, true),
            Badge::NeedsLogin => (Color::Magenta, false),
            Badge::Error => (Color::Red, true),
            Badge::Refreshing => (Color::Cyan, false),
        };
        let style = self.fg(c);
        if bold {
            style.add_modifier(Modifier::BOLD)
        } else {
            style
        }
    }

    fn dim(self) -> Style {
        if self.color {
            Style::new().fg(Color::DarkGray)
        } else {
            Style::new().add_modifier(Modifier::DIM)
        }
    }

    fn label(self) -> Style {
        self.fg(Color::Cyan)
    }

    fn error(self) -> Style {
        self.fg(Color::Red).add_modifier(Modifier::BOLD)
    }

    fn key(self) -> Style {
        self.fg(Color::Yellow).add_modifier(Modifier::BOLD)
    }

    fn selected(self) -> Style {
        if self.color {
            Style::new().bg(Color::Blue).fg(Color::White)
        } else {
            Style::new().add_modifier(Modifier::REVERSED)
        }
    }

    fn border(self) -> Style {
        self.fg(Color::Gray)
    }

    fn qr(self) -> Style {
        if self.color {
            Style::new().fg(Color::White).bg(Color::Black)
        } else {
            Style::new()
        }
    }
}

/// Draws the whole dashboard.
pub fn view(state: &DashboardState, frame: &mut Frame) {
    draw(state, frame.area(), frame.buffer_mut());
}

/// Draws the dashboard into any buffer area (the render benchmark uses this directly).
pub fn draw(state: &DashboardState, area: Rect, buf: &mut Buffer) {
    if area.width < 20 || area.height < 6 {
        Paragraph::new("authdeck: terminal too small")
            .wrap(Wrap { trim: true })
            .render_ref(area, buf);
        return;
    }
    let [header, body, status] = Layout::vertical([
        Constraint::Length(1),
        Constraint::Min(1),
        Constraint::Length(1),
    ])
    .areas(area);
    draw_header(state, header, buf);
    draw_body(state, body, buf);
    draw_status(state, status, buf);
    draw_overlay(state, body, buf);
}

/// Small adapter so widgets render into a `Buffer` without a `Frame`.
trait RenderRef {
    fn render_ref(self, area: Rect, buf: &mut Buffer);
}

impl<W: ratatui::widgets::Widget> RenderRef for W {
    fn render_ref(self, area: Rect, buf: &mut Buffer) {
        self.render(area, buf);
    }
}

fn draw_header(state: &DashboardState, area: Rect, buf: &mut Buffer) {
    let t = state.theme;
    let attention = state
        .accounts
        .iter()
        .filter(|a| matches!(a.state, Badge::Expired | Badge::NeedsLogin | Badge::Error))
        .count();
    let mut left = vec![
        Span::styled(" authdeck ", t.fg(Color::Cyan).add_modifier(Modifier::BOLD)),
        Span::raw(format!(" {} accounts", state.accounts.len())),
    ];
    if attention > 0 {
        left.push(Span::styled(
            format!(" · {attention} need attention"),
            t.fg(Color::Yellow),
        ));
    }
    let right = format!("{} ", datetime(state.now));
    let right_w = u16::try_from(right.len()).unwrap_or(0);
    Line::from(left).render_ref(area, buf);
    if area.width > right_w + 30 {
        let r = Rect::new(area.right() - right_w, area.y, right_w, 1);
        Span::styled(right, t.dim()).render_ref(r, buf);
    }
}

fn draw_body(state: &DashboardState, area: Rect, buf: &mut Buffer) {
    let show_log = area.height >= 16;
    let show_details = area.height >= 10;
    let log_h = if show_log {
        (area.height / 4).clamp(5, 12)
    } else {
        0
    };
    let [top, log] = Layout::vertical([Constraint::Min(1), Constraint::Length(log_h)]).areas(area);
    if area.width >= WIDE && show_details {
        let [list, details] =
            Layout::horizontal([Constraint::Percentage(60), Constraint::Percentage(40)]).areas(top);
        draw_list(state, list, buf);
        draw_details(state, details, buf);
    } else if show_details {
        // The list takes the rows it needs, up to 60 %; the details get the rest.
        let wanted = u16::try_from(state.visible().len() + 3).unwrap_or(u16::MAX);
        let list_h = wanted.min(top.height * 3 / 5).max(4);
        let [list, details] =
            Layout::vertical([Constraint::Length(list_h), Constraint::Min(1)]).areas(top);
        draw_list(state, list, buf);
        draw_details(state, details, buf);
    } else {
        draw_list(state, top, buf);
    }
    if show_log {
        draw_log(state, log, buf);
    }
}

fn block(title: impl Into<String>, t: Theme) -> Block<'static> {
    Block::bordered()
        .border_style(t.border())
        .title(Span::styled(
            format!(" {} ", title.into()),
            Style::new().add_modifier(Modifier::BOLD),
        ))
}

fn draw_list(state: &DashboardState, area: Rect, buf: &mut Buffer) {
    let t = state.theme;
    let visible = state.visible();
    let title = if state.filter.is_empty() {
        "Accounts".to_owned()
    } else {
        format!(
            "Accounts · filter “{}” {}/{}",
            state.filter,
            visible.len(),
            state.accounts.len()
        )
    };
    let outer = block(title, t);
    let inner = outer.inner(area);
    outer.render_ref(area, buf);
    if visible.is_empty() {
        let msg = if state.accounts.is_empty() {
            "No accounts yet. Add a provider file (see `authdeck --help`), or try `authdeck demo`."
        } else {
            "No account matches the filter. Esc clears it."
        };
        Paragraph::new(msg)
            .style(t.dim())
            .wrap(Wrap { trim: true })
            .render_ref(inner, buf);
        return;
    }
    let wide = inner.width >= NARROW;
    // Only the rows that fit are built: 500 accounts cost no more than 30.
    let rows_fit = usize::from(inner.height.saturating_sub(1)).max(1);
    let selected = state.selected.min(visible.len() - 1);
    let offset = (selected + 1).saturating_sub(rows_fit);
    let rows: Vec<Row> = visible
        .iter()
        .skip(offset)
        .take(rows_fit)
        .filter_map(|&i| state.accounts.get(i))
        .map(|a| account_row(a, state, wide))
        .collect();
    let widths: Vec<Constraint> = if wide {
        vec![
            Constraint::Length(13),
            Constraint::Length(16),
            Constraint::Length(10),
            Constraint::Length(16),
            Constraint::Min(8),
        ]
    } else {
        vec![
            Constraint::Length(13),
            Constraint::Min(8),
            Constraint::Length(16),
        ]
    };
    let header: Vec<&str> = if wide {
        vec!["State", "Account", "Provider", "Expires in", "Identity"]
    } else {
        vec!["State", "Account", "Expires in"]
    };
    let table = Table::new(rows, widths)
        .header(Row::new(header).style(t.label().add_modifier(Modifier::BOLD)))
        .row_highlight_style(t.selected());
    let mut ts = TableState::default().with_selected(Some(selected - offset));
    ratatui::widgets::StatefulWidget::render(table, inner, buf, &mut ts);
}

fn expiry_text(a: &AccountView, now: std::time::SystemTime) -> String {
    if a.expires_at.is_none() && !a.state.has_token() {
        return "—".to_owned();
    }
    countdown(a.expires_at, now)
}

fn account_row<'a>(a: &'a AccountView, state: &DashboardState, wide: bool) -> Row<'a> {
    let t = state.theme;
    let badge = Cell::from(Span::styled(
        format!("{} {}", a.state.symbol(), a.state.word()),
        t.badge(a.state),
    ));
    let expires = Cell::from(expiry_text(a, state.now));
    if wide {
        Row::new(vec![
            badge,
            Cell::from(a.name.as_str()),
            Cell::from(a.provider.as_str()),
            expires,
            Cell::from(a.identity.as_deref().unwrap_or("")),
        ])
    } else {
        Row::new(vec![badge, Cell::from(a.name.as_str()), expires])
    }
}

fn kv<'a>(t: Theme, k: &'a str, v: impl Into<Span<'a>>) -> Line<'a> {
    Line::from(vec![Span::styled(format!("{k:<9}"), t.label()), v.into()])
}

fn draw_details(state: &DashboardState, area: Rect, buf: &mut Buffer) {
    let t = state.theme;
    let Some(a) = state.selected_account() else {
        block("Details", t).render_ref(area, buf);
        return;
    };
    let title = if a.display_name.is_empty() {
        a.name.clone()
    } else {
        format!("{} · {}", a.name, a.display_name)
    };
    let mut lines = vec![kv(
        t,
        "State",
        Span::styled(
            format!("{} {}", a.state.symbol(), a.state.word()),
            t.badge(a.state),
        ),
    )];
    if let Some(e) = &a.last_error {
        lines.push(kv(t, "Error", Span::styled(e.as_str(), t.error())));
    }
    if let Some(id) = &a.identity {
        lines.push(kv(t, "Identity", id.as_str()));
    }
    if let Some(exp) = a.expires_at {
        lines.push(kv(
            t,
            "Expires",
            format!("{} ({})", datetime(exp), countdown(Some(exp), state.now)),
        ));
    } else if a.state.has_token() {
        lines.push(kv(t, "Expires", "unknown"));
    }
    if !a.scopes.is_empty() {
        lines.push(kv(t, "Scopes", a.scopes.join(" ")));
    }
    if let Some(o) = a.obtained_at {
        lines.push(kv(t, "Obtained", datetime(o)));
    }
    lines.push(kv(t, "Token", token_summary(a)));
    if let Some(next) = a.next_refresh {
        lines.push(kv(t, "Next", format!("refresh at {}", clock(next))));
    }
    if let Some(v) = &a.export_var {
        lines.push(kv(t, "Export", v.as_str()));
    }
    if let Some(p) = &a.provider_file {
        lines.push(kv(t, "File", p.display().to_string()));
    }
    lines.push(kv(
        t,
        "Device",
        if a.can_device {
            "supported"
        } else {
            "not offered"
        },
    ));
    if !a.claims.is_empty() {
        let heading = if a.claims_verified {
            "id_token claims (verified)"
        } else {
            "id_token claims (unverified)"
        };
        lines.push(Line::styled(heading, t.label()));
        for (k, v) in &a.claims {
            lines.push(Line::from(vec![
                Span::styled(format!("  {k}: "), t.dim()),
                Span::raw(v.as_str()),
            ]));
        }
    }
    Paragraph::new(Text::from(lines))
        .block(block(title, t))
        .wrap(Wrap { trim: false })
        .render_ref(area, buf);
}

fn token_summary(a: &AccountView) -> String {
    let mut parts = vec![a.token_type.clone().unwrap_or_else(|| "none".to_owned())];
    if a.has_refresh_token {
        parts.push("refresh token stored".to_owned());
    }
    let times = if a.refresh_count == 1 {
        "time"
    } else {
        "times"
    };
    match a.last_refresh {
        Some(at) => parts.push(format!(
            "refreshed {} {times}, last {}",
            a.refresh_count,
            clock(at)
        )),
        None => parts.push(format!("refreshed {} {times}", a.refresh_count)),
    }
    parts.join(" · ")
}

fn log_line(e: &LogEntry, t: Theme) -> Line<'_> {
    let (sym, text, style) = match &e.kind {
        LogKind::Refreshed { new_expiry } => (
            "↻",
            match new_expiry {
                Some(x) => format!("refreshed, new expiry {}", clock(*x)),
                None => "refreshed, expiry unknown".to_owned(),
            },
            t.fg(Color::Green),
        ),
        LogKind::Failed {
            reason,
            next_try,
            transient,
        } => {
            let kind = if *transient { "transient" } else { "permanent" };
            let next = match next_try {
                Some(n) => format!(", next try {}", clock(*n)),
                None => ", needs login".to_owned(),
            };
            (
                "✗",
                format!("refresh failed ({kind}): {reason}{next}"),
                t.error(),
            )
        }
        LogKind::Rotated => ("⟳", "refresh token rotated".to_owned(), t.fg(Color::Cyan)),
        LogKind::Revoked => ("⊘", "revoked".to_owned(), t.fg(Color::Magenta)),
        LogKind::LoggedIn => ("✓", "logged in".to_owned(), t.fg(Color::Green)),
        LogKind::LoggedOut => ("○", "logged out".to_owned(), t.fg(Color::Magenta)),
        LogKind::Info(m) => ("·", m.clone(), Style::new()),
    };
    Line::from(vec![
        Span::styled(format!("{} ", clock(e.at)), t.dim()),
        Span::styled(format!("{sym} "), style),
        Span::styled(
            format!("{:<12} ", e.account),
            Style::new().add_modifier(Modifier::BOLD),
        ),
        Span::styled(text, style),
    ])
}

fn draw_log(state: &DashboardState, area: Rect, buf: &mut Buffer) {
    let t = state.theme;
    let outer = block("Refresh log", t);
    let inner = outer.inner(area);
    outer.render_ref(area, buf);
    if state.log.is_empty() {
        Span::styled("Nothing yet: refreshes and logins show up here.", t.dim())
            .render_ref(inner, buf);
        return;
    }
    let n = usize::from(inner.height);
    let skip = state.log.len().saturating_sub(n);
    let lines: Vec<Line> = state
        .log
        .iter()
        .skip(skip)
        .map(|e| log_line(e, t))
        .collect();
    Paragraph::new(lines).render_ref(inner, buf);
}

fn draw_status(state: &DashboardState, area: Rect, buf: &mut Buffer) {
    let t = state.theme;
    if state.filter_editing {
        Line::from(vec![
            Span::styled(" / ", t.key()),
            Span::raw(format!("{}▏", state.filter)),
            Span::styled("  Enter keep · Esc clear", t.dim()),
        ])
        .render_ref(area, buf);
        return;
    }
    if let Some(f) = &state.flash {
        let style = if f.error {
            t.error()
        } else {
            t.fg(Color::Green)
        };
        Span::styled(format!(" {}", f.text), style).render_ref(area, buf);
        return;
    }
    if !matches!(state.overlay, Overlay::None) {
        // The dialog shows its own keys; the list's keys would not work behind it.
        Line::from(vec![
            Span::styled(" Esc", t.key()),
            Span::raw(" close or cancel  "),
            Span::styled("Ctrl-C", t.key()),
            Span::raw(" quit"),
        ])
        .render_ref(area, buf);
        return;
    }
    let keys: &[(&str, &str)] = if area.width >= 100 {
        &[
            ("↑↓", "move"),
            ("l", "login"),
            ("r", "refresh"),
            ("R", "all"),
            ("x", "revoke"),
            ("d", "logout"),
            ("e", "copy export"),
            ("/", "filter"),
            ("?", "help"),
            ("q", "quit"),
        ]
    } else {
        &[
            ("l", "login"),
            ("r", "refresh"),
            ("x", "revoke"),
            ("d", "logout"),
            ("e", "export"),
            ("/", "filter"),
            ("?", "help"),
            ("q", "quit"),
        ]
    };
    let mut spans = vec![Span::raw(" ")];
    for (k, what) in keys {
        spans.push(Span::styled(*k, t.key()));
        spans.push(Span::raw(format!(" {what}  ")));
    }
    Line::from(spans).render_ref(area, buf);
}

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

fn draw_overlay(state: &DashboardState, area: Rect, buf: &mut Buffer) {
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

fn hints(t: Theme, keys: &[(&str, &str)]) -> Line<'static> {
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
    ("/", "filter by name, provider or identity"),
    ("Esc", "close, cancel, clear the filter"),
    ("?", "this help"),
    ("q, Ctrl-C", "quit"),
];

fn draw_help(area: Rect, buf: &mut Buffer, t: Theme) {
    let h = u16::try_from(HELP.len()).unwrap_or(20) + 5;
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
        "Login dialogs: c copies the URL, Tab focuses the paste field.",
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
                    ("Tab", "paste field"),
                    ("Enter", "submit"),
                    ("Esc", "cancel"),
                ]
            } else {
                &[("c", "copy URL"), ("Esc", "cancel")]
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
            lines.push(hints(t, &[("c", "copy URL"), ("Esc", "cancel")]));
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::app::view::{AppEvent, LoginStep};
    use crate::ui::keymap::Action;
    use crate::ui::preview::{preview_now, preview_state};
    use crate::ui::state::Msg;
    use crate::ui::update::update;
    use ratatui::Terminal;
    use ratatui::backend::TestBackend;
    use std::time::Duration;

    const SIZES: [(u16, u16); 2] = [(80, 24), (120, 40)];

    fn render(state: &DashboardState, w: u16, h: u16) -> Terminal<TestBackend> {
        let mut term = Terminal::new(TestBackend::new(w, h)).unwrap();
        term.draw(|f| view(state, f)).unwrap();
        term
    }

    /// Snapshots `state` at both sizes, named `{name}_{w}x{h}`.
    #[track_caller]
    fn snap(name: &str, state: &DashboardState) {
        for (w, h) in SIZES {
            let term = render(state, w, h);
            insta::assert_snapshot!(format!("{name}_{w}x{h}"), term.backend());
        }
    }

    fn act(s: &mut DashboardState, a: Action) {
        update(s, Msg::Action(a));
    }

    fn login(s: &mut DashboardState, mode: LoginMode, step: LoginStep) {
        act(s, Action::Login);
        act(s, Action::Pick(mode));
        update(
            s,
            AppEvent::LoginProgress {
                account: "github".into(),
                step,
            }
            .into(),
        );
    }

    #[test]
    fn snapshot_no_accounts() {
        let s = DashboardState::new(Vec::new(), preview_now(), Theme { color: true });
        snap("no_accounts", &s);
    }

    #[test]
    fn snapshot_mixed_states() {
        snap("mixed", &preview_state(preview_now()));
    }

    #[test]
    fn details_say_whether_the_claims_were_verified_disc5() {
        let mut s = preview_state(preview_now());
        let text = |s: &DashboardState| format!("{:?}", render(s, 120, 40).backend());
        assert!(text(&s).contains("id_token claims (unverified)"));
        let selected = s.selected;
        s.accounts[selected].claims_verified = true;
        assert!(text(&s).contains("id_token claims (verified)"));
    }

    #[test]
    fn snapshot_error_selected() {
        let mut s = preview_state(preview_now());
        s.selected = 4; // gitlab: error with last_error
        snap("error", &s);
    }

    #[test]
    fn snapshot_help_overlay() {
        let mut s = preview_state(preview_now());
        act(&mut s, Action::Help);
        snap("help", &s);
    }

    #[test]
    fn snapshot_vps_paste_login() {
        let mut s = preview_state(preview_now());
        let url = "http://127.0.0.1:41234/authorize?response_type=code&client_id=authdeck-demo\
                   &redirect_uri=http%3A%2F%2F127.0.0.1%3A53117%2Fcallback&scope=openid%20email\
                   &state=Zq3xT0p1cS4mPl3StAtE&code_challenge=E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM\
                   &code_challenge_method=S256";
        login(
            &mut s,
            LoginMode::Paste,
            LoginStep::ShowUrl {
                url: url.into(),
                expires_at: Some(preview_now() + Duration::from_secs(272)),
            },
        );
        s.ticks = 3;
        snap("login_paste", &s);
        // With something pasted into the focused field.
        update(
            &mut s,
            Msg::Paste(zeroize::Zeroizing::new(
                "http://127.0.0.1:53117/callback?code=abc".into(),
            )),
        );
        snap("login_paste_typed", &s);
    }

    #[test]
    fn snapshot_device_login() {
        let mut s = preview_state(preview_now());
        login(
            &mut s,
            LoginMode::Device,
            LoginStep::ShowDeviceCode {
                user_code: "WDJB-MJHT".into(),
                verification_uri: "https://example.com/device".into(),
                verification_uri_complete: Some(
                    "https://example.com/device?user_code=WDJB-MJHT".into(),
                ),
                expires_at: preview_now() + Duration::from_secs(552),
            },
        );
        snap("login_device", &s);
    }

    #[test]
    fn snapshot_login_picker_and_failure() {
        let mut s = preview_state(preview_now());
        act(&mut s, Action::Login);
        snap("login_picker", &s);
        act(&mut s, Action::Pick(LoginMode::Browser));
        update(
            &mut s,
            AppEvent::LoginProgress {
                account: "github".into(),
                step: LoginStep::Failed("denied by user (access_denied)".into()),
            }
            .into(),
        );
        snap("login_failed", &s);
    }

    #[test]
    fn snapshot_passphrase_retry_and_confirm() {
        let mut s = preview_state(preview_now());
        update(&mut s, AppEvent::PassphraseNeeded { retry: true }.into());
        for c in "secret".chars() {
            act(&mut s, Action::Input(c));
        }
        let text = render(&s, 80, 24).backend().to_string();
        assert!(!text.contains("secret"), "the passphrase is masked");
        snap("passphrase_retry", &s);
        let mut s = preview_state(preview_now());
        act(&mut s, Action::Revoke);
        snap("confirm_revoke", &s);
    }

    #[test]
    fn snapshot_no_color() {
        let mut s = preview_state(preview_now());
        s.theme = Theme { color: false };
        snap("no_color", &s);
    }

    #[test]
    fn no_color_uses_no_colour_anywhere() {
        let mut s = preview_state(preview_now());
        s.theme = Theme { color: false };
        login(
            &mut s,
            LoginMode::Paste,
            LoginStep::ShowUrl {
                url: "http://127.0.0.1:1/a".into(),
                expires_at: None,
            },
        );
        for state in [&s, &preview_state(preview_now())] {
            let term = render(state, 120, 40);
            let colored = term
                .backend()
                .buffer()
                .content
                .iter()
                .filter(|c| c.fg != Color::Reset || c.bg != Color::Reset)
                .count();
            if state.theme.color {
                assert!(colored > 0, "colour on paints something");
            } else {
                assert_eq!(colored, 0, "NO_COLOR: no cell has a colour");
            }
        }
    }

    #[test]
    fn badges_read_without_colour() {
        let mut s = preview_state(preview_now());
        s.theme = Theme { color: false };
        let text = render(&s, 120, 40).backend().to_string();
        for st in Badge::ALL {
            assert!(
                text.contains(&format!("{} {}", st.symbol(), st.word())),
                "{st:?} badge missing"
            );
        }
    }

    #[test]
    fn countdown_ticks_in_the_list() {
        let mut s = preview_state(preview_now());
        let before = render(&s, 120, 40).backend().to_string();
        assert!(before.contains("4m 05s"));
        update(&mut s, Msg::Tick(preview_now() + Duration::from_secs(1)));
        let after = render(&s, 120, 40).backend().to_string();
        assert!(after.contains("4m 04s"));
        assert!(!after.contains("4m 05s"));
    }

    #[test]
    fn selection_stays_visible_with_many_accounts() {
        let now = preview_now();
        let mut s = DashboardState::new(
            crate::ui::many_accounts(500, now),
            now,
            Theme { color: true },
        );
        s.selected = 499;
        let text = render(&s, 80, 24).backend().to_string();
        assert!(
            text.contains("0499"),
            "the last account is scrolled into view"
        );
    }

    #[test]
    fn narrow_terminals_drop_columns_and_panes() {
        let s = preview_state(preview_now());
        let text = render(&s, 60, 16).backend().to_string();
        assert!(text.contains("Expires in"));
        assert!(
            !text.contains("Provider"),
            "provider column hidden below 70 columns"
        );
        assert!(!text.contains("Refresh log"), "log hidden when short");
        let text = render(&s, 100, 11).backend().to_string();
        assert!(!text.contains("Obtained"), "details hidden when very short");
        assert!(text.contains("github"));
    }

    #[test]
    fn tiny_and_narrow_terminals_do_not_panic() {
        let mut s = preview_state(preview_now());
        for (w, h) in [
            (1, 1),
            (10, 3),
            (20, 6),
            (40, 12),
            (60, 15),
            (79, 23),
            (200, 60),
        ] {
            render(&s, w, h);
        }
        login(
            &mut s,
            LoginMode::Paste,
            LoginStep::ShowUrl {
                url: "http://127.0.0.1:1/a".into(),
                expires_at: None,
            },
        );
        for (w, h) in [(1, 1), (20, 6), (40, 12), (60, 15)] {
            render(&s, w, h);
        }
    }
}
