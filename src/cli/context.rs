//! What every account command shares: where the config and the vault are, opening the app,
//! the async runtimes, and printing an error with its exit code.

use crate::agent::protocol::{ErrorCode, Origin, Request, Response};
use crate::agent::{self, AgentError, Client};
use crate::app::{App, AppError, Settings};
use crate::provider;
use crate::vault::{self, Snapshot, Vault};
use std::io::IsTerminal;
use std::path::PathBuf;

/// Where the config and the vault are.
#[derive(Debug, Clone, Default)]
pub struct Locations {
    /// `--config` / `AUTHDECK_CONFIG_DIR`.
    pub config: Option<PathBuf>,
    /// `--vault` / `AUTHDECK_VAULT`.
    pub vault: Option<PathBuf>,
}

/// Opens the app. A missing vault is not created (and no key is asked for) unless `create`.
pub fn open_app(loc: &Locations, create: bool) -> Result<App, AppError> {
    let (config_dir, vault) = open_parts(loc, create)?;
    App::new(config_dir, vault, Settings::default())
}

/// The configuration directory and the opened vault (see [`open_app`]): the backend is chosen
/// by `--vault`, else `config.toml`, else the default file (`vault::Backend`).
pub(super) fn open_parts(loc: &Locations, create: bool) -> Result<(PathBuf, Vault), AppError> {
    let config_dir =
        provider::config_dir(loc.config.as_deref()).map_err(|e| AppError::Config(e.to_string()))?;
    let vault = vault::Backend::resolve(loc.vault.as_deref(), &config_dir)?.open(create)?;
    super::warn_rollback(&vault);
    Ok((config_dir, vault))
}

/// AGENT-9: the one decision every command that needs a token makes, between the agent and
/// the vault. Commands ask [`access`] (or [`ask_agent`]) and take the direct path on
/// [`Access::Direct`], with the same output, errors and exit codes either way.
#[derive(Debug)]
pub enum Access {
    /// An agent answers on the socket: requests go to it.
    Agent(AgentLink),
    /// No agent answers, or `AUTHDECK_AGENT=off`: the command opens the vault itself, as it
    /// always did. (The direct paths differ per command, `token` and `--export` reading the
    /// account index without loading every account, so the app is opened by the command.)
    Direct,
}

/// AGENT-9: the agent when its socket answers (AGENT-1, AGENT-2 checked by the client), else
/// the vault. `AUTHDECK_AGENT=off` forces the vault. A socket that answers from an unsafe
/// directory or another user is an error, never silently trusted or skipped.
pub fn access(loc: &Locations) -> Result<Access, AppError> {
    if agent::disabled_by_env() {
        return Ok(Access::Direct);
    }
    let sock = agent::SocketEnv::from_process().socket_path();
    let Some(client) = Client::connect(&sock)? else {
        return Ok(Access::Direct);
    };
    Ok(Access::Agent(AgentLink {
        client,
        origin: origin(loc),
        offered_unlock: false,
    }))
}

/// AGENT-9: one request to the agent when one answers; `None` when the command must open
/// the vault itself (no agent, `AUTHDECK_AGENT=off`, or an agent of another vault on this
/// host, AGENT-10).
pub fn ask_agent(
    loc: &Locations,
    build: impl Fn(Origin) -> Request,
) -> Result<Option<Response>, AppError> {
    match access(loc)? {
        Access::Agent(mut link) => link.call(build),
        Access::Direct => Ok(None),
    }
}

/// AGENT-10: this host and the vault this command would open itself, so an agent of another
/// vault sends it back to its own. A vault that does not exist (a host reached over SSH, with
/// a forwarded socket and no vault of its own), or cannot be resolved, is not named: the
/// direct path has nothing to open, so the agent serves.
fn origin(loc: &Locations) -> Origin {
    let vault = provider::config_dir(loc.config.as_deref())
        .ok()
        .and_then(|dir| vault::Backend::resolve(loc.vault.as_deref(), &dir).ok())
        .and_then(|b| match b {
            vault::Backend::File(p) if !p.exists() => None,
            vault::Backend::File(p) if p.is_absolute() => Some(p),
            vault::Backend::File(p) => {
                Some(std::env::current_dir().map_or(p.clone(), |d| d.join(p)))
            }
            // A shared backend by its name (`etcd://…`), the name an agent serving it uses.
            vault::Backend::Etcd(c) => Some(PathBuf::from(c.display())),
        });
    Origin {
        host: Some(agent::socket::host_name()),
        vault,
    }
}

/// A connection to the agent, as a command uses it.
#[derive(Debug)]
pub struct AgentLink {
    client: Client,
    origin: Origin,
    offered_unlock: bool,
}

impl AgentLink {
    /// Sends the request `build` makes with this command's origin. `Ok(None)`: the agent serves
    /// another vault on this host (AGENT-10); use the vault directly. A locked agent is unlocked
    /// right here once when the command runs on a terminal, then asked again; otherwise it is
    /// an error that says how to unlock (exit 5).
    pub fn call(
        &mut self,
        build: impl Fn(Origin) -> Request,
    ) -> Result<Option<Response>, AppError> {
        loop {
            match self.client.call(&build(self.origin.clone())) {
                Ok(r) => return Ok(Some(r)),
                Err(AgentError::Refused(f)) if f.code == ErrorCode::OtherVault => return Ok(None),
                Err(AgentError::Refused(f)) if f.code == ErrorCode::Locked => self.locked()?,
                Err(e) => return Err(e.into()),
            }
        }
    }

    /// The agent said it is locked: on a terminal, the first time, unlock it here (`Ok`: ask
    /// again); otherwise the locked error, which says how to unlock (exit 5).
    pub fn locked(&mut self) -> Result<(), AppError> {
        if self.offered_unlock || !interactive() {
            return Err(locked());
        }
        self.offered_unlock = true;
        self.unlock_here()
    }

    /// AGENT-9: the passphrase from the terminal, sent to the agent (which derives and checks
    /// the key and keeps only the key, AGENT-6).
    fn unlock_here(&mut self) -> Result<(), AppError> {
        eprintln!(
            "authdeck: the agent at {} is locked; unlock it now (or press Enter to leave it locked)",
            self.client.socket().display()
        );
        let passphrase = match vault::prompt_terminal(vault::PromptPurpose::Unlock) {
            Ok(p) => p,
            Err(_) => return Err(locked()),
        };
        self.client.call(&Request::Unlock { passphrase })?;
        Ok(())
    }
}

impl AgentLink {
    /// AGENT-14: turns this connection into the dashboard's stream: the connection and the
    /// bytes already read past the answer. `None`: the dashboard opens the vault itself (an
    /// agent of another vault on this host, AGENT-10, or one with no vault yet).
    pub fn attach(self) -> Result<Option<(std::os::unix::net::UnixStream, Vec<u8>)>, AppError> {
        let AgentLink {
            mut client, origin, ..
        } = self;
        match client.call(&Request::Attach { origin }) {
            Ok(r) => {
                let info = r.agent.ok_or_else(|| incomplete("agent"))?;
                if info.state == agent::protocol::KeyState::NoVault {
                    return Ok(None);
                }
                Ok(Some(client.into_stream()))
            }
            Err(AgentError::Refused(f)) if f.code == ErrorCode::OtherVault => Ok(None),
            Err(e) => Err(e.into()),
        }
    }
}

/// An agent's answer without the field its verb promises.
pub fn incomplete(field: &str) -> AppError {
    AppError::Agent(AgentError::Protocol {
        socket: agent::SocketEnv::from_process().socket_path().path,
        why: format!("no {field} in the answer"),
    })
}

/// The token request of `token`, `kube-credential` and `request` (AGENT-9).
pub fn token_request(
    account: &str,
    min_valid: std::time::Duration,
    narrow: &crate::app::scoped::NarrowRequest,
) -> impl Fn(Origin) -> Request + use<> {
    let account = account.to_owned();
    let narrow = agent::protocol::Narrow::from_request(narrow);
    move |origin| Request::Token {
        account: account.clone(),
        min_valid: min_valid.as_secs(),
        force: false,
        narrow: narrow.clone(),
        id_token: false,
        origin,
    }
}

/// A failure the agent reported for one account, as the error the direct path would return.
pub fn refused(failure: agent::protocol::Failure) -> AppError {
    AppError::Agent(AgentError::Refused(failure))
}

/// The locked answer for a prompt that was declined: the agent's own wording.
fn locked() -> AppError {
    AppError::Agent(AgentError::Refused(agent::protocol::Failure::new(
        ErrorCode::Locked,
        agent::protocol::LOCKED_MESSAGE,
    )))
}

/// Whether a person is at this command: stdin and stderr on a terminal (a command substitution
/// such as `$(authdeck token work)` still is; git's and kubectl's helpers are not).
fn interactive() -> bool {
    std::io::stdin().is_terminal() && std::io::stderr().is_terminal()
}

/// Prints `err` as one `authdeck: …` line on stderr and returns its exit code (from
/// [`AppError::kind`]). The text itself is the error's `Display`, the same words the dashboard
/// shows in its refresh log and notices; commands that go on after a failure (`--export`,
/// `refresh`) print per-account lines themselves.
pub fn report(err: &AppError) -> u8 {
    eprintln!("authdeck: {err}");
    err.exit_code()
}

pub(super) fn runtime() -> Result<tokio::runtime::Runtime, AppError> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|source| AppError::Io {
            what: "cannot start the async runtime".into(),
            source,
        })
}

pub(super) fn run(f: impl FnOnce(&tokio::runtime::Runtime) -> Result<u8, AppError>) -> u8 {
    match runtime().and_then(|rt| f(&rt)) {
        Ok(code) => code,
        Err(e) => report(&e),
    }
}

/// A current-thread runtime: enough for `token` and `--export`, which make at most a few
/// sequential requests, and it starts no worker threads (the `--export` budget in
/// docs/benchmarks.md).
pub(super) fn light_runtime() -> Result<tokio::runtime::Runtime, AppError> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|source| AppError::Io {
            what: "cannot start the async runtime".into(),
            source,
        })
}

/// Accounts with tokens in `snap` and a file, valid or not (a broken one is then named with
/// its problem rather than skipped without a word), in name order.
pub(super) fn logged_in(app: &App, snap: &Snapshot) -> Vec<String> {
    snap.records
        .iter()
        .filter(|(name, r)| {
            r.access_token.is_some()
                && !matches!(app.account(name), Err(AppError::UnknownAccount(_)))
        })
        .map(|(name, _)| name.clone())
        .collect()
}

/// EXP-3: once per login or refresh that got a token of unknown lifetime (never on `token`).
pub(super) fn warn_unknown_expiry(name: &str, expires_at: Option<i64>) {
    if let Some(w) = crate::app::unknown_expiry_warning(name, expires_at) {
        eprintln!("authdeck: warning: {w}");
    }
}
