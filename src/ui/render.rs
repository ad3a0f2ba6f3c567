//! `view`: draws a [`DashboardState`] into a frame. A pure function of the state: no clock, no
//! environment, no I/O, so the same state always gives the same screen (snapshot tests).

use super::format::{clock, compact, countdown, datetime, remaining};
use super::overlay::draw_overlay;
use super::state::{DashboardState, Overlay, Theme};
use crate::app::view::{AccountView, AgentKeyState, Badge, FailureKind, LogEntry, LogKind};
use ratatui::Frame;
use ratatui::buffer::Buffer;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span, Text};
use ratatui::widgets::{Block, Cell, Paragraph, Row, Table, TableState, Wrap};

/// Wide layouts put the details beside the list from this width.
const WIDE: u16 = 110;
/// Below this width the provider and identity columns are hidden.
const NARROW: u16 = 70;
pub(super) const SPINNER: [&str; 10] = ["⠋", "⠙", "⠹", "⠸", "⠼", "⠴", "⠦", "⠧", "⠇", "⠏"];

impl Theme {
    pub(super) fn fg(self, c: Color) -> Style {
        if self.color {
            Style::new().fg(c)
        } else {
            Style::new()
        }
    }

    pub(super) fn badge(self, s: Badge) -> Style {
        let (c, bold) = match s {
            Badge::Valid => (Color::Green, false),
            Badge::Expiring => (Color::Yellow, false),
            Badge::Expired => (Color::Red, true),
            Badge::NeedsLogin => (Color::Magenta, false),
            Badge::Error => (Color::Red, true),
            Badge::Refreshing => (Color::Cyan, false),
            Badge::Invalid => (Color::Red, true),
            Badge::Machine => (Color::Blue, false),
        };
        let style = self.fg(c);
        if bold {
            style.add_modifier(Modifier::BOLD)
        } else {
            style
        }
    }

    pub(super) fn dim(self) -> Style {
        if self.color {
            Style::new().fg(Color::DarkGray)
        } else {
            Style::new().add_modifier(Modifier::DIM)
        }
    }

    pub(super) fn label(self) -> Style {
        self.fg(Color::Cyan)
    }

    pub(super) fn error(self) -> Style {
        self.fg(Color::Red).add_modifier(Modifier::BOLD)
    }

    pub(super) fn key(self) -> Style {
        self.fg(Color::Yellow).add_modifier(Modifier::BOLD)
    }

    pub(super) fn selected(self) -> Style {
        if self.color {
            Style::new().bg(Color::Blue).fg(Color::White)
        } else {
            Style::new().add_modifier(Modifier::REVERSED)
        }
    }

    pub(super) fn border(self) -> Style {
        self.fg(Color::Gray)
    }

    pub(super) fn qr(self) -> Style {
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
pub(super) trait RenderRef {
    fn render_ref(self, area: Rect, buf: &mut Buffer);
}

impl<W: ratatui::widgets::Widget> RenderRef for W {
    fn render_ref(self, area: Rect, buf: &mut Buffer) {
        self.render(area, buf);
    }
}

fn draw_header(state: &DashboardState, area: Rect, buf: &mut Buffer) {
    let t = state.theme;
    let count = |f: fn(Badge) -> bool| state.accounts.iter().filter(|a| f(a.state)).count();
    let attention = count(|b| matches!(b, Badge::Expired | Badge::NeedsLogin | Badge::Error));
    let invalid = count(|b| b == Badge::Invalid);
    let mut left = vec![
        Span::styled(" authdeck ", t.fg(Color::Cyan).add_modifier(Modifier::BOLD)),
        Span::raw(format!(
            " {}",
            plural(state.accounts.len(), "account", "accounts")
        )),
    ];
    // A file that does not validate is an account the user meant to have: counted, and named.
    if invalid > 0 {
        left.push(Span::styled(
            format!(" · {invalid} invalid"),
            t.fg(Color::Red).add_modifier(Modifier::BOLD),
        ));
    }
    if attention > 0 {
        left.push(Span::styled(
            format!(
                " · {attention} {} attention",
                if attention == 1 { "needs" } else { "need" }
            ),
            t.fg(Color::Yellow),
        ));
    }
    if let Some(b) = &state.backend {
        // The shared vault (ETCD-6): a symbol and a word, readable without colour.
        let kind = b.backend.split(' ').next().unwrap_or("vault");
        left.push(if b.healthy {
            Span::styled(format!(" · {kind} ✓ connected"), t.fg(Color::Green))
        } else {
            Span::styled(format!(" · {kind} ✗ unavailable"), t.fg(Color::Red))
        });
    }
    if let Some(a) = &state.agent {
        // The agent this dashboard is attached to (AGENT-14): locked or not, and when it locks.
        left.push(match a.state {
            AgentKeyState::Unlocked => {
                let when = a.lock_at.map_or_else(String::new, |at| {
                    format!(", locks in {}", compact(remaining(at, state.now)))
                });
                Span::styled(format!(" · agent ✓ unlocked{when}"), t.fg(Color::Green))
            }
            AgentKeyState::Locked => Span::styled(" · agent ✗ locked", t.fg(Color::Yellow)),
            // AGENT-16: the agent went away; the dashboard reattaches when one answers.
            AgentKeyState::Gone => Span::styled(
                " · agent ✗ gone, reattaching…",
                t.fg(Color::Red).add_modifier(Modifier::BOLD),
            ),
        });
    }
    let right = format!("{} ", datetime(state.now));
    let right_w = u16::try_from(right.len()).unwrap_or(0);
    Line::from(left).render_ref(area, buf);
    if area.width > right_w + 30 {
        let r = Rect::new(area.right() - right_w, area.y, right_w, 1);
        Span::styled(right, t.dim()).render_ref(r, buf);
    }
}

/// `1 account`, `2 accounts`.
fn plural(n: usize, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
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

pub(super) fn block(title: impl Into<String>, t: Theme) -> Block<'static> {
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

pub(super) fn kv<'a>(t: Theme, k: &'a str, v: impl Into<Span<'a>>) -> Line<'a> {
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
            kind,
        } => {
            let next = match (next_try, kind) {
                (Some(n), _) => format!(", next try {}", clock(*n)),
                (None, FailureKind::NeedsLogin) => ", needs login".to_owned(),
                (None, _) => ", not retried automatically".to_owned(),
            };
            let kind = kind.word();
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::app::view::{AppEvent, LoginMode, LoginStep};
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

    /// ETCD-6: the header shows the shared backend's health, from the `Backend` event.
    #[test]
    fn header_shows_the_shared_backend_health() {
        use crate::app::view::BackendStatus;
        let mut s = DashboardState::new(Vec::new(), preview_now(), Theme { color: false });
        let header = |s: &DashboardState| {
            let term = render(s, 100, 24);
            let buf = term.backend().buffer().clone();
            (0..100u16)
                .map(|x| buf[(x, 0)].symbol().to_string())
                .collect::<String>()
        };
        assert!(!header(&s).contains("etcd"), "a local file shows nothing");
        let mut status = BackendStatus {
            backend: "etcd 127.0.0.1:2379".into(),
            healthy: true,
            reason: None,
        };
        update(&mut s, AppEvent::Backend(status.clone()).into());
        assert!(header(&s).contains("etcd ✓ connected"), "{}", header(&s));
        status.healthy = false;
        status.reason = Some("no answer within 5000 ms".into());
        update(&mut s, AppEvent::Backend(status).into());
        assert!(header(&s).contains("etcd ✗ unavailable"), "{}", header(&s));
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
    fn snapshot_invalid_account_row_counted_in_the_header() {
        let mut s = preview_state(preview_now());
        let mut broken = AccountView::new("broken", "");
        broken.state = Badge::Invalid;
        broken.last_error = Some(
            "/home/ada/.config/authdeck/providers/broken.toml:3:1: unknown field `scope`".into(),
        );
        s.accounts.insert(0, broken);
        s.selected = 0;
        let text = format!("{:?}", render(&s, 120, 40).backend());
        assert!(text.contains("1 invalid"), "{text}");
        snap("invalid", &s);
    }

    #[test]
    fn header_says_1_account_not_1_accounts() {
        let mut s = preview_state(preview_now());
        s.accounts.truncate(1);
        let text = format!("{:?}", render(&s, 120, 40).backend());
        assert!(
            text.contains(" 1 account ") && !text.contains("1 accounts"),
            "{text}"
        );
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
        // The preview's accounts all load; an invalid file is a row of its own.
        let mut broken = AccountView::new("broken", "");
        broken.state = Badge::Invalid;
        s.accounts.push(broken);
        let mut machine = AccountView::new("ci-bot", "oidc");
        machine.state = Badge::Machine;
        machine.machine = true;
        s.accounts.push(machine);
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
