//! An attached dashboard (AGENT-14): the `attach` stream of events out and commands in.

use super::{Holder, Shared};
use crate::agent::protocol::{self, ErrorCode, Failure, KeyState, MAX_FRAME, Response};
use crate::app::driver;
use crate::app::view::{AgentKeyState, AgentView, AppEvent, LoginMode, UiCommand};
use std::sync::Arc;
use std::time::{Duration, SystemTime};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::sync::mpsc;
use zeroize::Zeroizing;

/// How often an attached dashboard's view of the agent (locked, when it locks) is compared
/// with the agent's (AGENT-14).
const AGENT_VIEW_POLL: Duration = Duration::from_secs(1);

/// The longest an attached dashboard goes without a frame: the `agent` event is sent again
/// when nothing else was, so a dashboard can tell a paused or hung agent from a quiet one
/// (AGENT-16; the dashboard gives up after 10 s of silence).
const HEARTBEAT: Duration = Duration::from_secs(2);

/// An attached dashboard (AGENT-14): the agent's scheduler events go out, the dashboard's
/// commands come in, so one scheduler runs for the dashboard and the agent alike.
impl Shared {
    /// The agent as the dashboard's header shows it.
    fn agent_view(&self) -> AgentView {
        let info = self.info();
        AgentView {
            host: info.host,
            state: match info.state {
                KeyState::Unlocked => AgentKeyState::Unlocked,
                KeyState::Locked | KeyState::NoVault => AgentKeyState::Locked,
            },
            lock_at: info.lock_at.and_then(|s| {
                SystemTime::UNIX_EPOCH.checked_add(Duration::from_secs(u64::try_from(s).ok()?))
            }),
            lockable: self.lockable(),
        }
    }

    /// What a dashboard needs when it attaches or the key comes or goes: the account list
    /// when unlocked, the passphrase prompt when locked.
    fn state_events(&self, out: &mpsc::UnboundedSender<AppEvent>) {
        let app = match &*self.holder() {
            Holder::Unlocked(u) => Some(u.app.clone()),
            _ => None,
        };
        match app {
            Some(app) => {
                let records = app.vault().read().unwrap_or_default();
                let views = driver::account_views(&app, &records, SystemTime::now());
                let _ = out.send(AppEvent::AccountsLoaded(views));
            }
            None => {
                let _ = out.send(AppEvent::PassphraseNeeded { retry: false });
            }
        }
    }

    /// Serves an attached dashboard until it closes, sends a frame that is not a command (it
    /// gets the AGENT-3 error answer first, AGENT-15), or the agent stops. Quitting the
    /// dashboard closes only this connection.
    pub(super) async fn attached(
        self: &Arc<Self>,
        rd: BufReader<tokio::net::unix::OwnedReadHalf>,
        mut wr: tokio::net::unix::OwnedWriteHalf,
    ) {
        let mut events = self.events.subscribe();
        let (out_tx, mut out_rx) = mpsc::unbounded_channel();
        let (cmd_tx, mut cmd_rx) = mpsc::unbounded_channel();
        let reader = tokio::spawn(read_commands(rd, cmd_tx));
        let mut shown = self.agent_view();
        let _ = out_tx.send(AppEvent::Agent(shown.clone()));
        self.state_events(&out_tx);
        let mut poll = tokio::time::interval(AGENT_VIEW_POLL);
        poll.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        let mut last_sent = tokio::time::Instant::now();
        loop {
            let event = tokio::select! {
                cmd = cmd_rx.recv() => match cmd {
                    Some(Ok(UiCommand::Quit)) | None => break,
                    Some(Ok(cmd)) => {
                        self.dashboard_command(cmd, &out_tx);
                        continue;
                    }
                    Some(Err(f)) => {
                        // AGENT-15: the error answer, then the connection closes.
                        tracing::debug!(code = ?f.code, "refused a dashboard command");
                        let frame = protocol::encode_response(&Response::fail(f));
                        if wr.write_all(&frame).await.is_ok() {
                            let _ = wr.shutdown().await;
                        }
                        break;
                    }
                },
                ev = events.recv() => match ev {
                    Ok(ev) => ev,
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {
                        self.state_events(&out_tx);
                        continue;
                    }
                    Err(tokio::sync::broadcast::error::RecvError::Closed) => break,
                },
                Some(ev) = out_rx.recv() => ev,
                _ = poll.tick() => {
                    let now = self.agent_view();
                    if now == shown && last_sent.elapsed() < HEARTBEAT {
                        continue;
                    }
                    let changed = now.state != shown.state;
                    shown = now.clone();
                    if changed {
                        self.state_events(&out_tx);
                    }
                    AppEvent::Agent(now)
                }
            };
            let frame = Zeroizing::new(protocol::encode_event(event));
            if wr.write_all(&frame).await.is_err() {
                break;
            }
            last_sent = tokio::time::Instant::now();
        }
        reader.abort();
    }

    /// One command from an attached dashboard. The scheduler's commands go to the scheduler;
    /// the key (`LockAgent`, `SubmitPassphrase`) and the export line (answered to this
    /// dashboard only) are handled here.
    fn dashboard_command(self: &Arc<Self>, cmd: UiCommand, out: &mpsc::UnboundedSender<AppEvent>) {
        self.touch();
        let notice = |message: String| {
            let _ = out.send(AppEvent::Notice {
                error: true,
                message,
            });
        };
        match cmd {
            UiCommand::LockAgent => {
                if !self.lockable() {
                    notice("this agent holds no passphrase key to forget".into());
                    return;
                }
                self.lock_now("locked from the dashboard");
                let _ = out.send(AppEvent::Agent(self.agent_view()));
                self.state_events(out);
            }
            UiCommand::SubmitPassphrase(passphrase) => {
                let (s, out) = (self.clone(), out.clone());
                tokio::spawn(async move {
                    match s.unlock(passphrase).await {
                        Ok(_) => {
                            let _ = out.send(AppEvent::Agent(s.agent_view()));
                            s.state_events(&out);
                        }
                        Err(f) => {
                            if f.code != ErrorCode::WrongPassphrase {
                                let _ = out.send(AppEvent::Notice {
                                    error: true,
                                    message: f.message,
                                });
                            }
                            let _ = out.send(AppEvent::PassphraseNeeded { retry: true });
                        }
                    }
                });
            }
            UiCommand::CopyExport(name) => match self.app() {
                Ok(app) => {
                    let out = out.clone();
                    tokio::spawn(async move {
                        let _ = out.send(driver::export_line_event(&app, name).await);
                    });
                }
                Err(f) => notice(f.message),
            },
            UiCommand::Quit => {}
            cmd => {
                // The agent opens no browser (it may have no display): a browser login runs its
                // loopback listener here and the dashboard opens the URL it is sent.
                let cmd = match cmd {
                    UiCommand::Login {
                        account,
                        mode: LoginMode::Browser,
                    } => UiCommand::Login {
                        account,
                        mode: LoginMode::Paste,
                    },
                    cmd => cmd,
                };
                self.refresh_holder();
                let sent = match &*self.holder() {
                    Holder::Unlocked(u) => u.commands.send(cmd).is_ok(),
                    _ => false,
                };
                if !sent {
                    notice(protocol::LOCKED_MESSAGE.into());
                    let _ = out.send(AppEvent::PassphraseNeeded { retry: false });
                }
            }
        }
    }
}

/// Reads an attached dashboard's command frames (AGENT-3 limits) until it closes or sends one
/// that is not a command: that one is passed on as its failure (AGENT-15) and reading ends.
async fn read_commands(
    mut rd: BufReader<tokio::net::unix::OwnedReadHalf>,
    commands: mpsc::UnboundedSender<Result<UiCommand, Failure>>,
) {
    loop {
        let mut line = Zeroizing::new(Vec::new());
        let n = match (&mut rd)
            .take(MAX_FRAME as u64)
            .read_until(b'\n', &mut line)
            .await
        {
            Ok(n) if n > 0 => n,
            _ => return,
        };
        let cmd = if line.last() != Some(&b'\n') {
            Err(if n >= MAX_FRAME {
                Failure::new(ErrorCode::TooLarge, "frame over 64 KiB")
            } else {
                Failure::new(ErrorCode::BadFrame, "the frame ended without a newline")
            })
        } else {
            protocol::decode_command(&line[..n - 1])
        };
        let last = cmd.is_err();
        if commands.send(cmd).is_err() || last {
            return;
        }
    }
}
