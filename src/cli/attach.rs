//! The dashboard attached to a running agent (AGENT-14): the agent's events feed the `ui` loop
//! and its commands go to the agent, so one scheduler runs, the agent's. Quitting closes this
//! connection only; the agent goes on.

use crate::agent::client::MAX_ANSWER;
use crate::agent::protocol;
use crate::app::AppError;
use crate::app::browser::BrowserHandoff;
use crate::app::exit;
use crate::app::mode;
use crate::app::view::{AppEvent, LoginMode, LoginStep, UiCommand};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::SystemTime;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::sync::mpsc::{UnboundedReceiver, UnboundedSender, unbounded_channel};
use zeroize::Zeroizing;

/// Browser-mode logins this dashboard started, by account: the agent opens no browser, so the
/// dashboard opens the URL it is sent, and keeps the hand-off page until the login ends
/// (HARD-12).
type BrowserLogins = Arc<Mutex<HashMap<String, Option<BrowserHandoff>>>>;

/// Runs the dashboard on `stream`, a connection that answered `attach`; `read_ahead` is what
/// was read past that answer.
pub async fn run_attached(
    stream: std::os::unix::net::UnixStream,
    read_ahead: Vec<u8>,
) -> Result<u8, AppError> {
    let io = |source| AppError::Io {
        what: "cannot use the agent's connection".into(),
        source,
    };
    stream.set_nonblocking(true).map_err(io)?;
    let stream = tokio::net::UnixStream::from_std(stream).map_err(io)?;
    let (rd, wr) = stream.into_split();
    let (cmd_tx, cmd_rx) = unbounded_channel();
    let (ev_tx, ev_rx) = unbounded_channel();
    let browser: BrowserLogins = Arc::default();
    let reader = tokio::spawn(read_events(
        BufReader::new(std::io::Cursor::new(read_ahead).chain(rd)),
        ev_tx,
        browser.clone(),
    ));
    let writer = tokio::spawn(write_commands(wr, cmd_rx, browser.clone()));
    let mut state =
        crate::ui::DashboardState::new(Vec::new(), SystemTime::now(), crate::ui::Theme::from_env());
    state.preferred_login = mode::detect();
    let result = crate::ui::run(state, cmd_tx, ev_rx).await;
    // `Quit` closed the connection already; on an error the writer is stopped here.
    writer.abort();
    reader.abort();
    result.map_err(|e| AppError::Config(e.to_string()))?;
    Ok(exit::OK)
}

/// The agent's events, into the dashboard. A browser login's URL is opened here.
async fn read_events<R: tokio::io::AsyncRead + Unpin>(
    mut rd: BufReader<R>,
    events: UnboundedSender<AppEvent>,
    browser: BrowserLogins,
) {
    loop {
        let mut line = Zeroizing::new(Vec::new());
        let n = (&mut rd)
            .take(MAX_ANSWER as u64)
            .read_until(b'\n', &mut line)
            .await
            .unwrap_or(0);
        if n == 0 || line.last() != Some(&b'\n') {
            let _ = events.send(AppEvent::Notice {
                error: true,
                message:
                    "the agent closed the connection (stopped?); quit and start authdeck again"
                        .into(),
            });
            return;
        }
        let event = match protocol::decode_event(&line[..n - 1]) {
            Ok(ev) => ev,
            // A newer agent's event this dashboard does not know: skipped.
            Err(_) => continue,
        };
        if let AppEvent::LoginProgress { account, step } = &event {
            follow_browser_login(&browser, account, step);
        }
        if events.send(event).is_err() {
            return;
        }
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

/// The dashboard's commands, to the agent. `Quit` closes the connection (the agent goes on).
async fn write_commands(
    mut wr: tokio::net::unix::OwnedWriteHalf,
    mut commands: UnboundedReceiver<UiCommand>,
    browser: BrowserLogins,
) {
    while let Some(cmd) = commands.recv().await {
        match &cmd {
            UiCommand::Quit => break,
            UiCommand::Login { account, mode } => {
                if let Ok(mut logins) = browser.lock() {
                    if *mode == LoginMode::Browser {
                        logins.insert(account.clone(), None);
                    } else {
                        logins.remove(account);
                    }
                }
            }
            UiCommand::CancelLogin { account } => {
                if let Ok(mut logins) = browser.lock() {
                    logins.remove(account);
                }
            }
            _ => {}
        }
        let frame = Zeroizing::new(protocol::encode_command(cmd));
        if wr.write_all(&frame).await.is_err() {
            return;
        }
    }
    let _ = wr.shutdown().await;
}
