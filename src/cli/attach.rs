//! The dashboard attached to a running agent (AGENT-14): the agent's events feed the `ui` loop
//! and its commands go to the agent, so one scheduler runs, the agent's. Quitting closes this
//! connection only; the agent goes on. When the agent goes away the dashboard says so and
//! attaches again as soon as an agent answers (AGENT-16).

use super::context::{Access, Locations, access};
use crate::agent::client::MAX_ANSWER;
use crate::agent::protocol;
use crate::app::AppError;
use crate::app::browser::BrowserHandoff;
use crate::app::exit;
use crate::app::mode;
use crate::app::view::{AgentKeyState, AgentView, AppEvent, LoginMode, LoginStep, UiCommand};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::sync::mpsc::{UnboundedReceiver, UnboundedSender, unbounded_channel};
use zeroize::Zeroizing;

/// How often a dashboard whose agent went away asks whether one answers again (AGENT-16).
const REATTACH_EVERY: Duration = Duration::from_secs(1);

/// How long the dashboard waits without a frame before it takes the agent for gone: the agent
/// sends at least one every 2 s (AGENT-16), so silence means it is paused or hung.
const SILENCE: Duration = Duration::from_secs(10);

/// What the dashboard says when its agent stops answering (AGENT-16).
const SILENT_MESSAGE: &str = "the agent stopped answering; reattaching when one answers (q quits)";

/// What the dashboard says when its agent goes away (AGENT-16).
const GONE_MESSAGE: &str =
    "the agent stopped; reattaching when one answers (q quits; AUTHDECK_AGENT=off runs without it)";

/// What a command given while the agent is away gets (AGENT-16).
const NOT_SENT: &str = "the agent is gone: nothing was done; reattaching when one answers";

/// Browser-mode logins this dashboard started, by account: the agent opens no browser, so the
/// dashboard opens the URL it is sent, and keeps the hand-off page until the login ends
/// (HARD-12).
type BrowserLogins = Arc<Mutex<HashMap<String, Option<BrowserHandoff>>>>;

/// An attached connection: the stream that answered `attach` and what was read past the answer.
type Attached = (std::os::unix::net::UnixStream, Vec<u8>);

/// Runs the dashboard on `stream`, a connection that answered `attach`; `read_ahead` is what
/// was read past that answer. `loc` finds the agent again if it goes away (AGENT-16).
pub async fn run_attached(
    loc: Locations,
    stream: std::os::unix::net::UnixStream,
    read_ahead: Vec<u8>,
) -> Result<u8, AppError> {
    let (cmd_tx, cmd_rx) = unbounded_channel();
    let (ev_tx, ev_rx) = unbounded_channel();
    let link = tokio::spawn(serve_link(loc, (stream, read_ahead), cmd_rx, ev_tx));
    let mut state =
        crate::ui::DashboardState::new(Vec::new(), SystemTime::now(), crate::ui::Theme::from_env());
    state.preferred_login = mode::detect();
    let result = crate::ui::run(state, cmd_tx, ev_rx).await;
    // `Quit` closed the connection already; on an error it is closed here.
    link.abort();
    result.map_err(|e| AppError::Config(e.to_string()))?;
    Ok(exit::OK)
}

/// Why an attached connection ended.
enum Ended {
    /// The dashboard quit.
    Quit,
    /// The agent closed the connection (stopped, killed, or refused a frame).
    Lost,
    /// The agent sent nothing for [`SILENCE`] (paused, hung): the connection is dropped.
    Silent,
}

/// The dashboard's link to the agent, for as long as the dashboard runs: one attached
/// connection after another (AGENT-16). Between two, the header shows the agent gone and the
/// commands are answered here, so nothing waits on an agent that is not there.
async fn serve_link(
    loc: Locations,
    first: Attached,
    mut commands: UnboundedReceiver<UiCommand>,
    events: UnboundedSender<AppEvent>,
) {
    let browser: BrowserLogins = Arc::default();
    let mut next = Some(first);
    let host = Arc::new(Mutex::new(String::new()));
    loop {
        if let Some(attached) = next.take() {
            let why =
                match serve_connection(attached, &mut commands, &events, &browser, &host).await {
                    Ended::Quit => return,
                    Ended::Lost => GONE_MESSAGE,
                    Ended::Silent => SILENT_MESSAGE,
                };
            // Whatever ran in the agent for this dashboard ended with the connection.
            if let Ok(mut logins) = browser.lock() {
                logins.clear();
            }
            let _ = events.send(AppEvent::Agent(AgentView {
                host: host.lock().map(|h| h.clone()).unwrap_or_default(),
                state: AgentKeyState::Gone,
                lock_at: None,
                lockable: false,
            }));
            let _ = events.send(AppEvent::Notice {
                error: true,
                message: why.into(),
            });
        }
        let mut tick = tokio::time::interval(REATTACH_EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tick.tick().await;
        // One attempt at a time, beside the commands, on a thread of its own: an agent that
        // accepts but does not answer (a stopped process) holds up the attempt, never the
        // dashboard's commands, nor its exit (the runtime does not wait for that thread).
        let mut attempt: Option<tokio::sync::oneshot::Receiver<Option<Attached>>> = None;
        while next.is_none() {
            tokio::select! {
                cmd = commands.recv() => match cmd {
                    None | Some(UiCommand::Quit) => return,
                    Some(cmd) => refuse_while_gone(cmd, &events),
                },
                _ = tick.tick(), if attempt.is_none() => {
                    let (tx, rx) = tokio::sync::oneshot::channel();
                    let loc = loc.clone();
                    std::thread::spawn(move || {
                        let _ = tx.send(reattach(&loc));
                    });
                    attempt = Some(rx);
                }
                done = async {
                    match attempt.as_mut() {
                        Some(running) => running.await,
                        None => std::future::pending().await,
                    }
                }, if attempt.is_some() => {
                    attempt = None;
                    next = done.ok().flatten();
                }
            }
        }
        let _ = events.send(AppEvent::Notice {
            error: false,
            message: "the agent answers again: reattached".into(),
        });
    }
}

/// A command given while no agent answers: nothing is sent anywhere, the dashboard is told.
fn refuse_while_gone(cmd: UiCommand, events: &UnboundedSender<AppEvent>) {
    let _ = match cmd {
        UiCommand::Login { account, .. } => events.send(AppEvent::LoginProgress {
            account,
            step: LoginStep::Failed(NOT_SENT.into()),
        }),
        // Esc in a dialog: nothing runs, nothing to say.
        UiCommand::CancelLogin { .. } => Ok(()),
        _ => events.send(AppEvent::Notice {
            error: true,
            message: NOT_SENT.into(),
        }),
    };
}

/// The agent again, the way the dashboard found it at start (AGENT-9, AGENT-14): `None` while
/// none answers, or while the one that answers serves another vault or none.
fn reattach(loc: &Locations) -> Option<Attached> {
    match access(loc) {
        Ok(Access::Agent(link)) => link.attach().ok().flatten(),
        Ok(Access::Direct) | Err(_) => None,
    }
}

/// Serves one attached connection: the agent's events into the dashboard, its commands out,
/// until the dashboard quits or the connection ends. `host` learns where the agent runs.
async fn serve_connection(
    (stream, read_ahead): Attached,
    commands: &mut UnboundedReceiver<UiCommand>,
    events: &UnboundedSender<AppEvent>,
    browser: &BrowserLogins,
    host: &Arc<Mutex<String>>,
) -> Ended {
    let stream = match stream
        .set_nonblocking(true)
        .and_then(|()| tokio::net::UnixStream::from_std(stream))
    {
        Ok(s) => s,
        Err(_) => return Ended::Lost,
    };
    let (rd, mut wr) = stream.into_split();
    let heard = Arc::new(Mutex::new(tokio::time::Instant::now()));
    let mut reader = tokio::spawn(read_events(
        BufReader::new(HeardReader {
            inner: std::io::Cursor::new(read_ahead).chain(rd),
            heard: heard.clone(),
        }),
        events.clone(),
        browser.clone(),
        host.clone(),
    ));
    let mut check = tokio::time::interval(Duration::from_secs(1));
    check.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let ended = loop {
        tokio::select! {
            _ = &mut reader => break Ended::Lost,
            _ = check.tick() => {
                let quiet = heard.lock().map_or(Duration::ZERO, |t| t.elapsed());
                if quiet > SILENCE {
                    break Ended::Silent;
                }
            }
            cmd = commands.recv() => {
                let Some(cmd) = cmd else { break Ended::Quit };
                if cmd == UiCommand::Quit {
                    let _ = wr.shutdown().await;
                    break Ended::Quit;
                }
                note_login(browser, &cmd);
                let frame = Zeroizing::new(protocol::encode_command(cmd));
                if wr.write_all(&frame).await.is_err() {
                    // The reader sees the end too; what was typed is said to be lost.
                    let _ = events.send(AppEvent::Notice {
                        error: true,
                        message: NOT_SENT.into(),
                    });
                }
            }
        }
    };
    reader.abort();
    ended
}

/// The agent's connection, noting when bytes last arrived (AGENT-16's silence check).
struct HeardReader<R> {
    inner: R,
    heard: Arc<Mutex<tokio::time::Instant>>,
}

impl<R: tokio::io::AsyncRead + Unpin> tokio::io::AsyncRead for HeardReader<R> {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let polled = std::pin::Pin::new(&mut self.inner).poll_read(cx, buf);
        if buf.filled().len() > before
            && let Ok(mut t) = self.heard.lock()
        {
            *t = tokio::time::Instant::now();
        }
        polled
    }
}

/// The agent's events, into the dashboard, until the connection ends. A browser login's URL is
/// opened here; an error answer (a frame the agent refused, AGENT-15) is shown.
async fn read_events<R: tokio::io::AsyncRead + Unpin>(
    mut rd: BufReader<R>,
    events: UnboundedSender<AppEvent>,
    browser: BrowserLogins,
    host: Arc<Mutex<String>>,
) {
    loop {
        let mut line = Zeroizing::new(Vec::new());
        let n = (&mut rd)
            .take(MAX_ANSWER as u64)
            .read_until(b'\n', &mut line)
            .await
            .unwrap_or(0);
        if n == 0 || line.last() != Some(&b'\n') {
            return;
        }
        let event = match protocol::decode_event(&line[..n - 1]) {
            Ok(ev) => ev,
            Err(_) => {
                if let Ok(answer) = protocol::decode_response(&line[..n - 1])
                    && let Some(f) = answer.error
                {
                    let _ = events.send(AppEvent::Notice {
                        error: true,
                        message: format!(
                            "the agent refused: {}",
                            crate::text::sanitize(&f.message, 300)
                        ),
                    });
                }
                // Otherwise a newer agent's event this dashboard does not know: skipped.
                continue;
            }
        };
        match &event {
            AppEvent::LoginProgress { account, step } => {
                follow_browser_login(&browser, account, step);
            }
            AppEvent::Agent(a) => {
                if let Ok(mut h) = host.lock() {
                    h.clone_from(&a.host);
                }
            }
            _ => {}
        }
        if events.send(event).is_err() {
            return;
        }
    }
}

/// Remembers a browser-mode login this dashboard starts (its URL is opened here), forgets one
/// that is cancelled or restarted in another mode.
fn note_login(browser: &BrowserLogins, cmd: &UiCommand) {
    let Ok(mut logins) = browser.lock() else {
        return;
    };
    match cmd {
        UiCommand::Login { account, mode } => {
            if *mode == LoginMode::Browser {
                logins.insert(account.clone(), None);
            } else {
                logins.remove(account);
            }
        }
        UiCommand::CancelLogin { account } => {
            logins.remove(account);
        }
        _ => {}
    }
}

/// Opens the browser for a browser-mode login of this dashboard when its URL arrives; forgets
/// the login when it ends.
fn follow_browser_login(browser: &BrowserLogins, account: &str, step: &LoginStep) {
    let Ok(mut logins) = browser.lock() else {
        return;
    };
    match step {
        LoginStep::ShowUrl { url, .. } => {
            if let Some(slot @ None) = logins.get_mut(account) {
                let cmd = std::env::var("BROWSER").ok();
                *slot = crate::app::login::open_browser(cmd.as_deref(), url);
            }
        }
        LoginStep::Done | LoginStep::Failed(_) => {
            logins.remove(account);
        }
        LoginStep::ShowDeviceCode { .. } | LoginStep::Waiting => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// AGENT-15, AGENT-14: what the agent writes reaches the dashboard as events; an error
    /// answer becomes one sanitised notice; a line this dashboard does not know is skipped;
    /// the end of the connection ends the reader.
    #[tokio::test]
    async fn agent15_an_error_answer_is_shown_sanitised_and_unknown_events_skipped() {
        let agent = AppEvent::Agent(AgentView {
            host: "h".into(),
            state: AgentKeyState::Unlocked,
            lock_at: None,
            lockable: true,
        });
        let mut wire = protocol::encode_event(agent.clone());
        wire.extend_from_slice(b"{\"v\":1,\"event\":{\"from_the_future\":1}}\n");
        wire.extend_from_slice(
            b"{\"v\":1,\"ok\":false,\"error\":{\"code\":\"bad_request\",\"message\":\"bad\\u001b[31m\"}}\n",
        );
        let (tx, mut rx) = unbounded_channel();
        let host = Arc::new(Mutex::new(String::new()));
        read_events(
            BufReader::new(std::io::Cursor::new(wire)),
            tx,
            BrowserLogins::default(),
            host.clone(),
        )
        .await;
        assert_eq!(rx.recv().await, Some(agent));
        match rx.recv().await {
            Some(AppEvent::Notice {
                error: true,
                message,
            }) => {
                assert!(message.starts_with("the agent refused: bad"), "{message}");
                assert!(!message.contains('\u{1b}'), "{message:?}");
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(
            rx.recv().await,
            None,
            "the reader ended with the connection"
        );
        assert_eq!(*host.lock().unwrap(), "h");
    }
}
