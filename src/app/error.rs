//! The `app` error type: every failure a command can end with, each classified by
//! [`AppError::kind`] (the same [`FailureKind`] the OAuth engine uses) and mapped to an exit
//! code from it.

use crate::oauth::{FailureKind, OAuthError};
use crate::vault::VaultError;

/// Result alias for `app`.
pub type Result<T, E = AppError> = std::result::Result<T, E>;

/// What can go wrong composing providers, the OAuth engine and the vault.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AppError {
    /// No account file has this name.
    #[error("no account named '{0}' (see `authdeck providers`)")]
    UnknownAccount(String),
    /// The account file has errors.
    #[error("account '{name}' has configuration problems:\n{details}")]
    BadAccount {
        /// The account.
        name: String,
        /// The problems, one per line, `FILE:LINE:COL: message`.
        details: String,
    },
    /// The account has no usable tokens: log in.
    #[error("account '{0}' needs a login: run `authdeck login {0}`")]
    NeedsLogin(String),
    /// The refresh token was refused (`invalid_grant`): the account was marked needs-login.
    #[error(
        "account '{name}': the provider refused the refresh token ({reason}); run `authdeck login {name}`"
    )]
    RefreshRefused {
        /// The account.
        name: String,
        /// The provider's error, sanitized.
        reason: String,
    },
    /// An OAuth request failed.
    #[error("account '{name}': {source}{}", fix_suffix(source))]
    OAuth {
        /// The account.
        name: String,
        /// What failed.
        #[source]
        source: OAuthError,
    },
    /// The vault failed.
    #[error(transparent)]
    Vault(#[from] VaultError),
    /// A login failed (timeout, state mismatch, provider error, cancelled).
    #[error("login to '{name}' failed: {reason}")]
    Login {
        /// The account.
        name: String,
        /// One line, secret-free.
        reason: String,
    },
    /// The account's provider does not support what was asked (device flow, revocation).
    #[error("account '{name}': {what}")]
    Unsupported {
        /// The account.
        name: String,
        /// What is missing.
        what: String,
    },
    /// A configuration or environment problem outside any account.
    #[error("{0}")]
    Config(String),
    /// The agent answered with an error, or could not be talked to (AGENT-9). An error answer
    /// carries the very text the direct path prints, so the output is the same either way.
    #[error(transparent)]
    Agent(#[from] crate::agent::AgentError),
    /// An I/O failure outside the vault.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
}

impl AppError {
    /// Wraps an OAuth error for `name`. It is not reclassified: an `invalid_grant` stays an
    /// [`AppError::OAuth`] whose [`kind`](Self::kind) is [`FailureKind::NeedsLogin`]; the refresh
    /// path itself turns it into [`AppError::RefreshRefused`] after marking the record (REF-6).
    pub fn oauth(name: &str, source: OAuthError) -> Self {
        AppError::OAuth {
            name: name.to_string(),
            source,
        }
    }

    /// What this failure means for whoever must act on it: the one classification behind the
    /// exit code, the dashboard's retry schedule and its refresh log.
    pub fn kind(&self) -> FailureKind {
        match self {
            AppError::NeedsLogin(_) | AppError::RefreshRefused { .. } => FailureKind::NeedsLogin,
            AppError::OAuth { source, .. } => source.kind(),
            AppError::UnknownAccount(_)
            | AppError::BadAccount { .. }
            | AppError::Unsupported { .. }
            | AppError::Config(_) => FailureKind::Misconfigured,
            AppError::Vault(e) => vault_kind(e),
            AppError::Login { .. } => FailureKind::Refused,
            AppError::Io { .. } => FailureKind::Transient,
            AppError::Agent(e) => agent_kind(e),
        }
    }

    /// Shorthand for `kind() == FailureKind::NeedsLogin` (exit code 3).
    pub fn needs_login(&self) -> bool {
        self.kind() == FailureKind::NeedsLogin
    }

    /// The process exit code for this error (README: 1 error, 3 needs login).
    pub fn exit_code(&self) -> u8 {
        if self.agent_locked() {
            return super::exit::LOCKED;
        }
        match self.kind() {
            FailureKind::NeedsLogin => super::exit::NEEDS_LOGIN,
            FailureKind::Transient
            | FailureKind::Misconfigured
            | FailureKind::Refused
            | FailureKind::Cancelled => super::exit::ERROR,
        }
    }
}

impl AppError {
    /// Whether the agent is locked (or stayed locked after a wrong passphrase): exit code 5,
    /// `authdeck unlock` (AGENT-9).
    pub fn agent_locked(&self) -> bool {
        use crate::agent::protocol::ErrorCode;
        matches!(self, AppError::Agent(crate::agent::AgentError::Refused(f))
            if matches!(f.code, ErrorCode::Locked | ErrorCode::WrongPassphrase))
    }
}

/// An agent failure's kind: its answer's code says whether a login is needed; talking to it
/// failed transiently; anything else is what the message says.
fn agent_kind(e: &crate::agent::AgentError) -> FailureKind {
    use crate::agent::AgentError;
    use crate::agent::protocol::ErrorCode;
    match e {
        AgentError::Refused(f) => match f.code {
            ErrorCode::NeedsLogin => FailureKind::NeedsLogin,
            ErrorCode::Busy => FailureKind::Transient,
            _ => FailureKind::Misconfigured,
        },
        AgentError::Io { .. } | AgentError::Protocol { .. } | AgentError::NotRunning { .. } => {
            FailureKind::Transient
        }
        _ => FailureKind::Misconfigured,
    }
}

/// A vault failure's kind: contention and I/O pass; a wrong key or setup must be fixed; a
/// damaged file is final.
fn vault_kind(e: &VaultError) -> FailureKind {
    match e {
        VaultError::Conflict { .. }
        | VaultError::LockTimeout { .. }
        | VaultError::LockLost { .. }
        | VaultError::BackendUnavailable { .. }
        | VaultError::Io { .. } => FailureKind::Transient,
        VaultError::Corrupt { .. }
        | VaultError::NotAVault { .. }
        | VaultError::UnsupportedVersion { .. } => FailureKind::Refused,
        _ => FailureKind::Misconfigured,
    }
}

/// `"; what to fix"` after an OAuth error the client configuration caused (REF-7).
fn fix_suffix(e: &OAuthError) -> String {
    e.fix_hint().map(|h| format!("; {h}")).unwrap_or_default()
}
