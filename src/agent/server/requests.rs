//! One connection and the verbs it carries: the peer check (AGENT-2), frames (AGENT-3), the
//! caller's vault (AGENT-10) and the answers to each request.

use super::{Holder, Shared};
use crate::agent::harden::{self, peer_of};
use crate::agent::protocol::{
    self, AccountFailure, AgentInfo, ErrorCode, ExportVar, Failure, GitOperation, KeyState,
    MAX_FRAME, Narrow, Origin, RefreshResult, Request, Response,
};
use crate::app::handoff::Handed;
use crate::app::refresh::Refreshed;
use crate::app::status::unix;
use crate::app::{App, AppError};
use crate::vault::KeyKind;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::UnixStream;
use zeroize::Zeroizing;

/// How long a connection may sit without sending a complete frame.
const IDLE_TIMEOUT: Duration = Duration::from_secs(60);

/// Classifies an app error for the wire: the same text the direct path prints.
pub(super) fn failure_of(e: &AppError) -> Failure {
    let code = if e.needs_login() {
        ErrorCode::NeedsLogin
    } else {
        ErrorCode::Error
    };
    Failure::new(code, e.to_string())
}

impl Shared {
    pub(super) fn info(&self) -> AgentInfo {
        let (state, key, memory_locked) = match &*self.holder() {
            Holder::NoVault => (KeyState::NoVault, None, false),
            Holder::Locked => (KeyState::Locked, Some(self.header_kind()), false),
            Holder::Unlocked(u) => (KeyState::Unlocked, Some(u.kind), u.memory_locked),
        };
        let lock_at = match (state, key, self.cfg.lock_after) {
            (KeyState::Unlocked, Some(KeyKind::Passphrase), Some(after)) => {
                let idle = self
                    .last_used
                    .lock()
                    .map(|t| t.elapsed())
                    .unwrap_or_default();
                let left = after.saturating_sub(idle);
                Some(unix(SystemTime::now() + left))
            }
            _ => None,
        };
        AgentInfo {
            version: env!("CARGO_PKG_VERSION").into(),
            pid: std::process::id(),
            host: self.host.clone(),
            vault: self.cfg.vault.clone(),
            config_dir: self.cfg.config_dir.clone(),
            socket: self.cfg.socket.path.clone(),
            state,
            key: key.map(|k| k.word().to_owned()),
            lock_at,
            key_memory_locked: memory_locked,
            non_dumpable: !harden::is_dumpable(),
            started_at: self.started_at,
        }
    }

    fn check_origin(&self, origin: &Origin) -> Result<(), Failure> {
        match other_vault(origin, &self.host, &self.cfg.vault) {
            Some(f) => Err(f),
            None => Ok(()),
        }
    }

    /// One connection: the peer check (AGENT-2), then frames until the client closes or sends
    /// something the agent does not accept (AGENT-3).
    pub(super) async fn connection(self: Arc<Self>, stream: UnixStream) {
        let Ok(_slot) = self.connections.clone().try_acquire_owned() else {
            let _ = reply_and_close(
                stream,
                Failure::new(ErrorCode::Busy, "too many connections; try again"),
            )
            .await;
            return;
        };
        match peer_of(&stream) {
            Ok(peer) if peer.uid == self.uid => {}
            Ok(peer) => {
                tracing::warn!(
                    uid = peer.uid,
                    pid = peer.pid,
                    "refused a connection from another user"
                );
                let _ = reply_and_close(
                    stream,
                    Failure::new(ErrorCode::Forbidden, "this agent serves only its own user"),
                )
                .await;
                return;
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot read the peer's credentials; refused");
                return;
            }
        }
        let (rd, wr) = stream.into_split();
        if let Some((rd, wr)) = self.serve_frames(BufReader::new(rd), wr).await {
            self.attached(rd, wr).await;
        }
    }

    /// The frames of one accepted connection (AGENT-3): each at most `MAX_FRAME` bytes, one
    /// answer each, closed after a frame it does not accept. Generic over the stream so the
    /// fuzz target drives the very same loop over bytes in memory. Returns the stream when a
    /// dashboard attached (its answer already sent): the caller serves it from then on.
    pub(super) async fn serve_frames<R, W>(self: &Arc<Self>, mut rd: R, mut wr: W) -> Option<(R, W)>
    where
        R: tokio::io::AsyncBufRead + Unpin,
        W: tokio::io::AsyncWrite + Unpin,
    {
        loop {
            let mut line = Zeroizing::new(Vec::new());
            let read = tokio::time::timeout(
                IDLE_TIMEOUT,
                (&mut rd)
                    .take(MAX_FRAME as u64)
                    .read_until(b'\n', &mut line),
            )
            .await;
            let n = match read {
                Ok(Ok(n)) => n,
                Ok(Err(_)) | Err(_) => return None,
            };
            if n == 0 {
                return None;
            }
            let request = if line.last() != Some(&b'\n') {
                Err(if n >= MAX_FRAME {
                    Failure::new(ErrorCode::TooLarge, "frame over 64 KiB")
                } else {
                    Failure::new(ErrorCode::BadFrame, "the frame ended without a newline")
                })
            } else {
                protocol::decode_request(&line[..n - 1])
            };
            drop(line);
            let (answer, stop) = match request {
                Ok(Request::Stop) => (Response::ok(), true),
                Ok(Request::Attach { origin }) => {
                    let answer = match self.check_origin(&origin) {
                        Ok(()) => {
                            self.refresh_holder();
                            let mut r = Response::ok();
                            r.agent = Some(self.info());
                            r
                        }
                        Err(f) => Response::fail(f),
                    };
                    let ok = answer.ok;
                    if wr
                        .write_all(&protocol::encode_response(&answer))
                        .await
                        .is_err()
                        || !ok
                    {
                        return None;
                    }
                    return Some((rd, wr));
                }
                Ok(req) => (self.answer(req).await, false),
                Err(f) => {
                    tracing::debug!(code = ?f.code, "refused a frame");
                    (Response::fail(f), false)
                }
            };
            let closes = answer.error.as_ref().is_some_and(|f| f.code.closes());
            let frame = Zeroizing::new(protocol::encode_response(&answer));
            drop(answer);
            if wr.write_all(&frame).await.is_err() {
                return None;
            }
            if stop {
                tracing::info!("stop requested");
                self.shutdown.notify_one();
                return None;
            }
            if closes {
                let _ = wr.shutdown().await;
                return None;
            }
        }
    }

    async fn answer(self: &Arc<Self>, request: Request) -> Response {
        match self.dispatch(request).await {
            Ok(r) => r,
            Err(f) => Response::fail(f),
        }
    }

    async fn dispatch(self: &Arc<Self>, request: Request) -> Result<Response, Failure> {
        match request {
            Request::Status { origin } => {
                self.check_origin(&origin)?;
                self.refresh_holder();
                let mut r = Response::ok();
                r.agent = Some(self.info());
                if let Holder::Unlocked(u) = &*self.holder() {
                    r.accounts = Some(
                        u.app
                            .statuses(SystemTime::now())
                            .map_err(|e| failure_of(&e))?,
                    );
                    r.problems = Some(
                        u.app
                            .loaded()
                            .problems
                            .iter()
                            .map(ToString::to_string)
                            .collect(),
                    );
                }
                Ok(r)
            }
            Request::Token {
                account,
                min_valid,
                force,
                narrow,
                id_token,
                origin,
            } => {
                self.check_origin(&origin)?;
                let app = self.app()?;
                self.touch();
                answer_token(&app, &account, min_valid, force, &narrow, id_token)
                    .await
                    .map_err(|e| failure_of(&e))
            }
            Request::Export {
                accounts,
                narrow,
                origin,
            } => {
                self.check_origin(&origin)?;
                let app = self.app()?;
                self.touch();
                answer_export(&app, &accounts, &narrow).await
            }
            Request::Refresh { accounts, origin } => {
                self.check_origin(&origin)?;
                let app = self.app()?;
                self.touch();
                answer_refresh(app, accounts).await
            }
            Request::Logout { account, origin } => {
                self.check_origin(&origin)?;
                let app = self.app()?;
                self.touch();
                let had = app.logout(&account).map_err(|e| failure_of(&e))?;
                let mut r = Response::ok();
                r.note = Some(crate::app::access::logout_note(had).into());
                Ok(r)
            }
            Request::Revoke { account, origin } => {
                self.check_origin(&origin)?;
                let app = self.app()?;
                self.touch();
                let note = app.revoke(&account).await.map_err(|e| failure_of(&e))?;
                let mut r = Response::ok();
                r.note = Some(note);
                Ok(r)
            }
            Request::GitCredential {
                operation,
                request,
                origin,
            } => {
                self.check_origin(&origin)?;
                let app = self.app()?;
                self.touch();
                answer_git(&app, operation, &request.to_request())
                    .await
                    .map_err(|e| failure_of(&e))
            }
            Request::Lock => {
                let unlocked_kind = match &*self.holder() {
                    Holder::Unlocked(u) => Some(u.kind),
                    _ => None,
                };
                match unlocked_kind {
                    Some(KeyKind::KeyFile) => {
                        return Err(Failure::new(
                            ErrorCode::Error,
                            "this vault opens with a key file: there is no key to forget (stop the agent instead)",
                        ));
                    }
                    Some(KeyKind::OsKeyring) => {
                        return Err(Failure::new(
                            ErrorCode::Error,
                            "this vault's key is in the OS keyring: there is no passphrase to unlock with again (stop the agent instead)",
                        ));
                    }
                    Some(KeyKind::Passphrase) | None => {}
                }
                self.lock_now("authdeck lock");
                let mut r = Response::ok();
                r.agent = Some(self.info());
                Ok(r)
            }
            Request::Unlock { passphrase } => self.unlock(passphrase).await,
            Request::Stop => Ok(Response::ok()),
            // Answered by `connection`, which then hands the connection to `attached`.
            Request::Attach { .. } => Err(Failure::new(
                ErrorCode::BadRequest,
                "attach turns the connection into a stream",
            )),
        }
    }
}

/// `token`: the answer the direct path would print (AGENT-9): the account's own token
/// refreshed when due or shorter-lived than `min_valid`, a narrower one (REF-9), a forced
/// refresh after a 401 (USE-2), or the ID token when asked for by name (KUBE-2, AGENT-4).
async fn answer_token(
    app: &App,
    account: &str,
    min_valid: u64,
    force: bool,
    narrow: &Narrow,
    id_token: bool,
) -> Result<Response, AppError> {
    let mut r = Response::ok();
    if id_token {
        let (token, exp) = app.hand_id_token(account).await?;
        r.id_token = Some(crate::secret::IdToken::new(token.secret()));
        r.expires_at = exp;
        return Ok(r);
    }
    let (handed, how) = if force {
        let (token, how) = app.fresh_token(account, true).await?;
        let snap = app.current()?;
        let record = snap.records.get(account);
        let handed = Handed {
            token,
            expires_at: record.and_then(|r| r.expires_at),
            email: record.and_then(|r| r.claims.email.clone()),
        };
        (handed, how)
    } else {
        app.token_as_asked(account, &narrow.request(), Duration::from_secs(min_valid))
            .await?
    };
    r.warning = crate::app::access::refresh_warning(&how);
    r.token = Some(handed.token);
    r.expires_at = handed.expires_at;
    r.email = handed.email;
    Ok(r)
}

/// `export`: every account's variable and token in order, failures beside them; a narrowed
/// export stops at the first failure, as the direct path does.
async fn answer_export(
    app: &App,
    accounts: &[String],
    narrow: &Narrow,
) -> Result<Response, Failure> {
    let mut vars = Vec::new();
    let mut failures = Vec::new();
    if narrow == &Narrow::default() {
        let slots = app
            .export_slots(accounts)
            .await
            .map_err(|e| failure_of(&e))?;
        for (account, slot) in slots {
            match slot {
                Ok((name, token)) => vars.push(ExportVar {
                    account,
                    name,
                    token,
                }),
                Err(e) => failures.push(AccountFailure {
                    account,
                    failure: failure_of(&e),
                }),
            }
        }
    } else {
        let req = narrow.request();
        for account in accounts {
            let got = match app.account(account).map(|p| p.export_var_name()) {
                Ok(name) => app
                    .token_as_asked(account, &req, Duration::ZERO)
                    .await
                    .map(|(h, _)| (name, h.token)),
                Err(e) => Err(e),
            };
            match got {
                Ok((name, token)) => vars.push(ExportVar {
                    account: account.clone(),
                    name,
                    token,
                }),
                Err(e) => {
                    failures.push(AccountFailure {
                        account: account.clone(),
                        failure: failure_of(&e),
                    });
                    break;
                }
            }
        }
    }
    let mut r = Response::ok();
    r.vars = Some(vars);
    r.failures = Some(failures);
    Ok(r)
}

/// `refresh`: each account's outcome in the order asked, a failure carried in place and in
/// `failures`.
async fn answer_refresh(app: Arc<App>, accounts: Vec<String>) -> Result<Response, Failure> {
    let names = if accounts.is_empty() {
        let snap = app.current().map_err(|e| failure_of(&e))?;
        app.logged_in(&snap)
    } else {
        accounts
    };
    // `refresh_many`'s future is not `Send` for every lifetime (its stream closure borrows the
    // names), so it runs on a blocking thread of this runtime.
    let handle = tokio::runtime::Handle::current();
    let results = tokio::task::spawn_blocking(move || handle.block_on(app.refresh_many(&names)))
        .await
        .map_err(|_| Failure::new(ErrorCode::Error, "the refresh task failed"))?;
    let mut done = Vec::new();
    let mut failures = Vec::new();
    for (account, result) in results {
        match result {
            Ok(how) => done.push(RefreshResult {
                outcome: crate::app::access::describe(&how),
                expires_at: match &how {
                    Refreshed::Done { expires_at, .. } => *expires_at,
                    _ => None,
                },
                refreshed: matches!(how, Refreshed::Done { .. }),
                error: None,
                account,
            }),
            Err(e) => {
                let failure = failure_of(&e);
                failures.push(AccountFailure {
                    account: account.clone(),
                    failure: failure.clone(),
                });
                done.push(RefreshResult {
                    account,
                    outcome: "failed".into(),
                    expires_at: None,
                    refreshed: false,
                    error: Some(failure),
                });
            }
        }
    }
    let mut r = Response::ok();
    r.refreshed = Some(done);
    r.failures = Some(failures);
    Ok(r)
}

/// `git_credential`: the account chosen by `git_urls` on the agent's side (GIT-1), its token
/// and user name (GIT-2); `erase` marks a rejected token stale (GIT-4).
async fn answer_git(
    app: &App,
    operation: GitOperation,
    request: &crate::app::gitcred::Request,
) -> Result<Response, AppError> {
    let mut r = Response::ok();
    match operation {
        GitOperation::Erase => app.git_erase(request)?,
        GitOperation::Get => {
            if let Some(g) = app.git_get(request).await? {
                r.warning = match &g.how {
                    Refreshed::FailedButValid { reason } => Some(format!(
                        "refresh of {} failed ({reason}); the current token is still valid",
                        g.account
                    )),
                    _ => None,
                };
                r.account = Some(g.account);
                r.username = Some(g.username);
                r.token = Some(g.handed.token);
                r.expires_at = g.handed.expires_at;
            }
        }
    }
    Ok(r)
}

/// AGENT-10: a client on this host that would use another vault is told so, and uses its own;
/// a forwarded client (another host) or one that names no vault is served.
fn other_vault(origin: &Origin, host: &str, vault: &Path) -> Option<Failure> {
    let (Some(their_host), Some(their_vault)) = (&origin.host, &origin.vault) else {
        return None;
    };
    if their_host != host || same_file(their_vault, vault) {
        return None;
    }
    Some(Failure::new(
        ErrorCode::OtherVault,
        format!(
            "the agent serves vault {}, not {}",
            vault.display(),
            their_vault.display()
        ),
    ))
}

fn same_file(a: &Path, b: &Path) -> bool {
    if a == b {
        return true;
    }
    match (std::fs::canonicalize(a), std::fs::canonicalize(b)) {
        (Ok(x), Ok(y)) => x == y,
        _ => false,
    }
}

async fn reply_and_close(mut stream: UnixStream, failure: Failure) -> std::io::Result<()> {
    let frame = protocol::encode_response(&Response::fail(failure));
    stream.write_all(&frame).await?;
    stream.shutdown().await
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    #[test]
    fn agent10_only_a_local_client_of_another_vault_is_sent_away() {
        let mine = Path::new("/home/u/.local/share/authdeck/vault.bin");
        let origin = |host: Option<&str>, vault: Option<&str>| Origin {
            host: host.map(String::from),
            vault: vault.map(PathBuf::from),
        };
        assert!(other_vault(&origin(None, None), "h", mine).is_none());
        assert!(other_vault(&origin(Some("h"), None), "h", mine).is_none());
        assert!(other_vault(&origin(Some("h"), Some(mine.to_str().unwrap())), "h", mine).is_none());
        assert!(
            other_vault(&origin(Some("remote"), Some("/other/vault.bin")), "h", mine).is_none(),
            "forwarded over SSH: served"
        );
        let f = other_vault(&origin(Some("h"), Some("/other/vault.bin")), "h", mine).unwrap();
        assert_eq!(f.code, ErrorCode::OtherVault);
        assert!(f.message.contains("/other/vault.bin"), "{}", f.message);
    }
}
