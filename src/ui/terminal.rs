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

/// Performs the effects; returns true when the dashboard must close.
fn perform(effects: Vec<Effect>, commands: &UnboundedSender<UiCommand>, out: &mut Stdout) -> bool {
    let mut exit = false;
    for e in effects {
        match e {
            // A closed channel means `app` is gone; the UI still closes cleanly on `q`.
            Effect::Send(cmd) => {
                let _ = commands.send(cmd);
            }
            Effect::Copy(clip) => {
                let _ = osc52(out, &clip);
            }
            Effect::Exit => exit = true,
        }
    }
    exit
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
    loop {
        term.draw(|f| render::view(state, f))?;
        // Block until something happens, then take everything already queued before drawing
        // again: a burst of 100 refresh events costs one frame, not 100.
        let Some(first) = rx.recv().await else {
            return Ok(());
        };
        let mut exit = perform(update(state, first), commands, &mut out);
        while let Ok(msg) = rx.try_recv() {
            exit |= perform(update(state, msg), commands, &mut out);
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
    fn osc52_writes_base64_and_nothing_else() {
        let mut out = Vec::new();
        osc52(&mut out, &Clipboard::Url("hi there".into())).unwrap();
        assert_eq!(out, b"\x1b]52;c;aGkgdGhlcmU=\x07");
    }
}
