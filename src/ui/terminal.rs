//! Terminal ownership: raw mode and the alternate screen in, everything restored out (on quit,
//! on error, on panic, on signals), and the one event loop.
//!
//! Everything is drawn on the alternate screen, which terminals discard on exit: nothing shown
//! (URLs, codes, the paste field) reaches the scrollback. OSC 52 sends clipboard text to the
//! terminal without displaying it.

use super::state::{Clipboard, DashboardState, Effect, Msg};
use super::update::update;
use super::{UiError, render};
use crate::app::view::{AppEvent, UiCommand};
use base64::Engine;
use crossterm::event::{Event, EventStream};
use crossterm::{cursor, event, execute, terminal};
use futures::StreamExt;
use ratatui::Terminal;
use ratatui::backend::CrosstermBackend;
use std::io::{self, IsTerminal, Stdout, Write};
use std::time::{Duration, SystemTime};
use tokio::sync::mpsc::{self, UnboundedReceiver, UnboundedSender};
use tokio::task::JoinHandle;
use zeroize::{Zeroize, Zeroizing};

/// Puts the terminal back: leave the alternate screen, cooked mode, cursor shown. Safe to call
/// twice; errors are ignored because there is nothing better to do while leaving.
fn restore() {
    let _ = terminal::disable_raw_mode();
    let _ = execute!(
        io::stdout(),
        event::DisableBracketedPaste,
        terminal::LeaveAlternateScreen,
        cursor::Show
    );
}

/// Whether a panic on the current thread ends the dashboard: only one on the thread that runs
/// its event loop does (HARD-4).
fn ends_the_process(ui_thread: std::thread::ThreadId) -> bool {
    std::thread::current().id() == ui_thread
}

/// Restores the terminal when dropped, whichever way `run` leaves.
struct Guard {
    previous_hook: Option<std::sync::Arc<PanicHook>>,
}

type PanicHook = dyn Fn(&std::panic::PanicHookInfo<'_>) + Sync + Send + 'static;

impl Guard {
    fn enter() -> Result<Self, UiError> {
        // The hook restores the terminal before the panic message prints, so the message lands
        // on the normal screen in cooked mode and the terminal stays usable.
        //
        // HARD-4: only a panic of this thread (the one running the dashboard loop) ends the
        // process. A worker's panic is caught by the runtime and becomes an error event (see
        // `app::driver`); restoring the terminal then would leave a dashboard running in cooked
        // mode on the normal screen, and printing the message would scribble over it.
        let previous: std::sync::Arc<PanicHook> = std::panic::take_hook().into();
        let chained = previous.clone();
        let ui_thread = std::thread::current().id();
        std::panic::set_hook(Box::new(move |info| {
            if ends_the_process(ui_thread) {
                restore();
                chained(info);
            }
        }));
        let guard = Self {
            previous_hook: Some(previous),
        };
        terminal::enable_raw_mode()?;
        execute!(
            io::stdout(),
            terminal::EnterAlternateScreen,
            event::EnableBracketedPaste,
            cursor::Hide
        )?;
        Ok(guard)
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        restore();
        if let Some(prev) = self.previous_hook.take() {
            let _ = std::panic::take_hook();
            std::panic::set_hook(Box::new(move |info| prev(info)));
        }
    }
}

/// Writes `text` to the terminal's clipboard with OSC 52 (works over SSH in most terminals).
/// The encoded copy is zeroized after writing.
fn osc52(out: &mut impl Write, clip: &Clipboard) -> io::Result<()> {
    let mut seq = Zeroizing::new(String::from("\x1b]52;c;"));
    base64::engine::general_purpose::STANDARD.encode_string(clip.secret(), &mut seq);
    seq.push('\x07');
    out.write_all(seq.as_bytes())?;
    out.flush()
}

fn spawn_inputs(
    tx: UnboundedSender<Msg>,
    mut events: UnboundedReceiver<AppEvent>,
) -> Vec<JoinHandle<()>> {
    let keys = tx.clone();
    let input = tokio::spawn(async move {
        let mut stream = EventStream::new();
        while let Some(Ok(ev)) = stream.next().await {
            let msg = match ev {
                Event::Key(k) => Msg::Key(k),
                Event::Paste(mut text) => {
                    let msg = Msg::Paste(Zeroizing::new(text.clone()));
                    text.zeroize();
                    msg
                }
                Event::Resize(..) => Msg::Resize,
                _ => continue,
            };
            if keys.send(msg).is_err() {
                break;
            }
        }
    });
    let ticks = tx.clone();
    let tick = tokio::spawn(async move {
        let mut every = tokio::time::interval(Duration::from_secs(1));
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        loop {
            every.tick().await;
            // The wall clock, not a monotonic count: after a suspend the countdowns jump to
            // the truth at the next tick.
            if ticks.send(Msg::Tick(SystemTime::now())).is_err() {
                break;
            }
        }
    });
    let app_tx = tx.clone();
    let app = tokio::spawn(async move {
        while let Some(ev) = events.recv().await {
            if app_tx.send(Msg::from(ev)).is_err() {
                break;
            }
        }
    });
    let signals = tokio::spawn(async move {
        wait_for_signal().await;
        let _ = tx.send(Msg::Signal);
    });
    vec![input, tick, app, signals]
}

#[cfg(unix)]
async fn wait_for_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut term), Ok(mut int), Ok(mut hup)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
        signal(SignalKind::hangup()),
    ) else {
        return std::future::pending().await;
    };
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
        _ = hup.recv() => {}
    }
}

#[cfg(not(unix))]
async fn wait_for_signal() {
    let _ = tokio::signal::ctrl_c().await;
}

/// Whether the terminal named by `TERM` gets an OSC 8 hyperlink around the URL shown alone.
///
/// Decided conservatively, as most terminals that do not know OSC 8 ignore it but some print
/// it: no for an unset or empty `TERM`, `dumb`, the Linux and BSD consoles (`linux`, `cons25`,
/// `wsvt25`), hardware terminals (`vt…`), GNU screen (`screen…`, which passes OSC 8 through
/// only in recent versions) and Emacs' `eterm…`; yes for everything else (xterm, the VTE,
/// kitty, WezTerm, iTerm2, Alacritty, foot, tmux 3.4+ all handle or ignore it).
/// `AUTHDECK_HYPERLINKS=0` turns it off, `=1` on, whatever `TERM` says.
pub(super) fn hyperlinks(term: Option<&str>, setting: Option<&str>) -> bool {
    match setting.map(str::trim) {
        Some("0" | "no" | "off" | "false") => return false,
        Some("1" | "yes" | "on" | "true") => return true,
        _ => {}
    }
    let Some(term) = term.map(str::trim).filter(|t| !t.is_empty()) else {
        return false;
    };
    let plain = ["dumb", "linux", "cons25", "wsvt25"];
    let families = ["vt", "screen", "eterm"];
    !(plain.contains(&term) || families.iter().any(|f| term.starts_with(f)))
}

/// The bytes that show `url` alone on the normal screen: a blank line, the URL on a line of its
/// own (no wrapping inserted, no box; the terminal's own soft wrap keeps it one line for a mouse
/// selection), a blank line and the way back. The URL came from a server (an authorization
/// endpoint, a verification URI), so it is sanitised first (HARD-9); it is made an OSC 8
/// hyperlink only when `link` and it is plain printable ASCII that needed no escaping.
pub(super) fn url_alone(url: &str, link: bool) -> String {
    let clean = crate::text::sanitize(url, 8192);
    let shown = if link && clean == url && url.bytes().all(|b| (0x21..0x7f).contains(&b)) {
        format!("\x1b]8;;{clean}\x1b\\{clean}\x1b]8;;\x1b\\")
    } else {
        clean
    };
    // Raw mode stays on (one key comes back), so lines end in CR LF.
    format!("\r\n{shown}\r\n\r\nPress any key to return to the dashboard.\r\n")
}

/// Leaves the alternate screen and prints [`url_alone`].
fn show_url(out: &mut Stdout, url: &str) -> io::Result<()> {
    let term = std::env::var("TERM").ok();
    let setting = std::env::var("AUTHDECK_HYPERLINKS").ok();
    let link = hyperlinks(term.as_deref(), setting.as_deref());
    execute!(
        out,
        terminal::LeaveAlternateScreen,
        cursor::Show,
        terminal::Clear(terminal::ClearType::FromCursorDown)
    )?;
    out.write_all(url_alone(url, link).as_bytes())?;
    out.flush()
}

/// What the loop must do after performing a batch of effects.
#[derive(Default)]
struct After {
    exit: bool,
    /// The URL is on the normal screen: draw nothing until the next key.
    away: bool,
}

/// Performs the effects.
fn perform(effects: Vec<Effect>, commands: &UnboundedSender<UiCommand>, out: &mut Stdout) -> After {
    let mut after = After::default();
    for e in effects {
        match e {
            // A closed channel means `app` is gone; the UI still closes cleanly on `q`.
            Effect::Send(cmd) => {
                let _ = commands.send(cmd);
            }
            Effect::Copy(clip) => {
                let _ = osc52(out, &clip);
            }
            Effect::ShowUrl(url) => after.away |= show_url(out, &url).is_ok(),
            Effect::Exit => after.exit = true,
        }
    }
    after
}

pub(super) async fn run(
    mut state: DashboardState,
    commands: UnboundedSender<UiCommand>,
    events: UnboundedReceiver<AppEvent>,
) -> Result<(), UiError> {
    if !io::stdout().is_terminal() {
        return Err(UiError::NotATerminal);
    }
    state.now = SystemTime::now();
    let guard = Guard::enter()?;
    let (tx, mut rx) = mpsc::unbounded_channel();
    let tasks = spawn_inputs(tx, events);
    let result = event_loop(&mut state, &commands, &mut rx).await;
    for t in tasks {
        t.abort();
    }
    drop(guard);
    result
}

async fn event_loop(
    state: &mut DashboardState,
    commands: &UnboundedSender<UiCommand>,
    rx: &mut mpsc::UnboundedReceiver<Msg>,
) -> Result<(), UiError> {
    let mut term = Terminal::new(CrosstermBackend::new(io::stdout()))?;
    let mut out = io::stdout();
    // While the URL is shown alone on the normal screen nothing is drawn; events still update
    // the state, and the next key (swallowed) brings the dashboard back.
    let mut away = false;
    loop {
        if !away {
            term.draw(|f| render::view(state, f))?;
        }
        // Block until something happens, then take everything already queued before drawing
        // again: a burst of 100 refresh events costs one frame, not 100.
        let Some(first) = rx.recv().await else {
            return Ok(());
        };
        let mut exit = false;
        for msg in std::iter::once(first).chain(std::iter::from_fn(|| rx.try_recv().ok())) {
            if away && matches!(msg, Msg::Key(_) | Msg::Paste(_)) {
                away = false;
                execute!(
                    out,
                    terminal::EnterAlternateScreen,
                    terminal::Clear(terminal::ClearType::All),
                    cursor::Hide
                )?;
                // A fresh terminal draws every cell again. (`Terminal::clear` would ask the
                // terminal for the cursor position, a read that races the key reader.)
                term = Terminal::new(CrosstermBackend::new(io::stdout()))?;
                continue;
            }
            let after = perform(update(state, msg), commands, &mut out);
            exit |= after.exit;
            away |= after.away;
        }
        if exit {
            return Ok(());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// HARD-4: a worker thread's panic does not count as the dashboard ending.
    #[test]
    fn only_the_ui_thread_ends_the_process() {
        let ui = std::thread::current().id();
        assert!(ends_the_process(ui));
        let worker = std::thread::spawn(move || ends_the_process(ui))
            .join()
            .unwrap();
        assert!(!worker);
    }

    #[test]
    fn hyperlinks_only_where_the_terminal_is_known_to_cope() {
        for t in [
            "xterm-256color",
            "xterm-kitty",
            "alacritty",
            "tmux-256color",
            "foot",
        ] {
            assert!(hyperlinks(Some(t), None), "{t}");
        }
        for t in [
            "dumb",
            "linux",
            "vt100",
            "vt220",
            "screen",
            "screen-256color",
            "",
            " ",
        ] {
            assert!(!hyperlinks(Some(t), None), "{t}");
        }
        assert!(!hyperlinks(None, None));
        assert!(!hyperlinks(Some("xterm"), Some("0")));
        assert!(hyperlinks(Some("dumb"), Some("1")));
    }

    /// HARD-9: the URL shown alone is sanitised (no escape reaches the terminal) and is on one
    /// line with no box around it; OSC 8 only around a clean ASCII URL.
    #[test]
    fn url_alone_is_one_clean_line() {
        let url = "https://id.example/authorize?client_id=abc&state=xyz";
        let plain = url_alone(url, false);
        assert_eq!(plain.lines().filter(|l| l.contains("https://")).count(), 1);
        assert!(plain.contains(&format!("\r\n{url}\r\n")));
        assert!(!plain.contains('\x1b'));
        let linked = url_alone(url, true);
        assert!(linked.contains(&format!("\x1b]8;;{url}\x1b\\{url}\x1b]8;;\x1b\\")));
        let hostile = url_alone("https://x/\x1b]52;c;cHduZWQ=\x07\rover", true);
        assert!(
            !hostile.contains("\x1b]8;;"),
            "no hyperlink around an escaped URL"
        );
        assert!(!hostile.contains("\x1b]52"), "{hostile:?}");
        for box_char in ['│', '─', '┌', '╭'] {
            assert!(!linked.contains(box_char));
        }
    }

    #[test]
    fn osc52_writes_base64_and_nothing_else() {
        let mut out = Vec::new();
        osc52(&mut out, &Clipboard::Url("hi there".into())).unwrap();
        assert_eq!(out, b"\x1b]52;c;aGkgdGhlcmU=\x07");
    }
}
