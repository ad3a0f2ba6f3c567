//! The agent's answers: one [`Response`] frame per request, and the [`ErrorCode`] and
//! [`Failure`] of a refused one (AGENT-3).

use super::VERSION;
#[cfg(doc)]
use super::{MAX_FRAME, Request};
use crate::app::AccountStatus;
use crate::secret::AccessToken;
use serde::{Deserialize, Serialize};
use std::path::PathBuf;

/// Why the agent refused a request, on the wire as a snake_case string.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// Not one JSON object on one line.
    BadFrame,
    /// Over [`MAX_FRAME`] bytes.
    TooLarge,
    /// A protocol version this agent does not speak.
    BadVersion,
    /// A verb this agent does not know.
    UnknownVerb,
    /// A known verb with missing or malformed fields.
    BadRequest,
    /// The peer is another user (AGENT-2).
    Forbidden,
    /// Too many connections at once.
    Busy,
    /// The agent holds no key: run `authdeck unlock`.
    Locked,
    /// The passphrase did not open the vault (AGENT-7).
    WrongPassphrase,
    /// The account needs a login (exit code 3).
    NeedsLogin,
    /// The agent serves another vault on this host (AGENT-10).
    OtherVault,
    /// Anything else (exit code 1); the message says what.
    Error,
    /// A code from a newer agent.
    #[serde(other)]
    Unknown,
}

impl ErrorCode {
    /// Whether the agent closes the connection after answering with this code (AGENT-3).
    pub fn closes(self) -> bool {
        matches!(
            self,
            ErrorCode::BadFrame
                | ErrorCode::TooLarge
                | ErrorCode::BadVersion
                | ErrorCode::UnknownVerb
                | ErrorCode::BadRequest
                | ErrorCode::Forbidden
                | ErrorCode::Busy
        )
    }
}

/// An error answer's payload: a code for programs, a one-line message for people (the very
/// text the direct path prints, so output is the same either way).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Failure {
    /// What kind of failure.
    pub code: ErrorCode,
    /// One line, secret-free.
    pub message: String,
}

impl Failure {
    /// A failure with `code` and `message`.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
        }
    }
}

/// One exported variable (AGENT-4: an access token, nothing else).
#[derive(Debug, Serialize, Deserialize)]
pub struct ExportVar {
    /// The account.
    pub account: String,
    /// The environment variable name.
    pub name: String,
    /// The access token.
    pub token: AccessToken,
}

/// One account that gave no token, or whose refresh failed.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AccountFailure {
    /// The account.
    pub account: String,
    /// Why.
    #[serde(flatten)]
    pub failure: Failure,
}

/// The result of refreshing one account.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RefreshResult {
    /// The account.
    pub account: String,
    /// What happened, as `authdeck refresh` words it.
    pub outcome: String,
    /// The new expiry when a refresh was made (Unix seconds).
    #[serde(default)]
    pub expires_at: Option<i64>,
    /// Whether the refresh produced a token (`false` for `not_due`, `by_other`, ...).
    #[serde(default)]
    pub refreshed: bool,
    /// Why this account failed (it is in `failures` too); results stay in the order asked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<Failure>,
}

/// Who serves and in what state (`status`, `agent status`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AgentInfo {
    /// authdeck's version.
    pub version: String,
    /// The agent's process id (on its own host).
    pub pid: u32,
    /// The host the agent runs on (differs from the caller's when forwarded over SSH).
    pub host: String,
    /// The vault it serves.
    pub vault: PathBuf,
    /// The configuration directory it reads account files from.
    pub config_dir: PathBuf,
    /// The socket it listens on (its own path, on its own host).
    pub socket: PathBuf,
    /// `locked`, `unlocked`, or `no_vault`.
    pub state: KeyState,
    /// How the vault is unlocked: `passphrase`, `key_file`, or none yet.
    #[serde(default)]
    pub key: Option<String>,
    /// When it will lock by itself (Unix seconds), with `--lock-after`.
    #[serde(default)]
    pub lock_at: Option<i64>,
    /// Whether the key's memory is locked in RAM (mlock).
    #[serde(default)]
    pub key_memory_locked: bool,
    /// Whether the agent process is non-dumpable (HARD-1).
    #[serde(default)]
    pub non_dumpable: bool,
    /// When the agent started (Unix seconds).
    pub started_at: i64,
}

/// Whether the agent can answer with tokens.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum KeyState {
    /// It holds the key (or needs none: a key-file vault).
    Unlocked,
    /// It holds no key: `authdeck unlock`.
    Locked,
    /// There is no vault yet; tokens appear after a login.
    NoVault,
}

impl KeyState {
    /// The word shown to people.
    pub fn word(self) -> &'static str {
        match self {
            KeyState::Unlocked => "unlocked",
            KeyState::Locked => "locked",
            KeyState::NoVault => "no vault yet",
        }
    }
}

/// An answer. Fields that do not apply to the verb are absent.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct Response {
    /// The protocol version.
    pub v: u32,
    /// True for success.
    pub ok: bool,
    /// Set when `ok` is false.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<Failure>,
    /// `token`: the access token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token: Option<AccessToken>,
    /// `token`: its expiry (Unix seconds), when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<i64>,
    /// `token`, `git_credential`: a warning for the caller's stderr (a transient refresh
    /// failure).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub warning: Option<String>,
    /// `token` with `id_token`: the account's ID token (KUBE-2), and nothing else.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id_token: Option<crate::secret::IdToken>,
    /// `token`: the account's e-mail from its ID token (SASL's `user=`, SASL-1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    /// `git_credential` `get`: the account chosen (absent: no account matches, GIT-3).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account: Option<String>,
    /// `git_credential` `get`: the user name for git (GIT-2).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    /// `revoke`, `logout`: what happened, as the command prints it after `NAME: `.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
    /// `status` when unlocked: problems of the account files, one line each.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub problems: Option<Vec<String>>,
    /// `export`: the variables, in the order asked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vars: Option<Vec<ExportVar>>,
    /// `export`, `refresh`: accounts that failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failures: Option<Vec<AccountFailure>>,
    /// `refresh`: what happened per account.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refreshed: Option<Vec<RefreshResult>>,
    /// `status`, `unlock`, `lock`: the agent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent: Option<AgentInfo>,
    /// `status` when unlocked: every account (no secrets).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub accounts: Option<Vec<AccountStatus>>,
}

impl Response {
    /// A success with nothing in it yet.
    pub fn ok() -> Self {
        Self {
            v: VERSION,
            ok: true,
            ..Self::default()
        }
    }

    /// An error answer.
    pub fn fail(failure: Failure) -> Self {
        Self {
            v: VERSION,
            ok: false,
            error: Some(failure),
            ..Self::default()
        }
    }
}
