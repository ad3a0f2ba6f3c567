//! The `app` error type: every failure a command can end with, each mapped to an exit code.

use crate::oauth::OAuthError;
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
    #[error("account '{name}': {source}")]
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
    /// Wraps an OAuth error for `name`, turning `invalid_grant` into [`AppError::RefreshRefused`].
    pub fn oauth(name: &str, source: OAuthError) -> Self {
        AppError::OAuth {
            name: name.to_string(),
            source,
        }
    }

    /// True when the user must log in again (exit code 3).
    pub fn needs_login(&self) -> bool {
        matches!(
            self,
            AppError::NeedsLogin(_) | AppError::RefreshRefused { .. }
        )
    }

    /// The process exit code for this error (README: 1 error, 3 needs login).
    pub fn exit_code(&self) -> u8 {
        if self.needs_login() {
            super::exit::NEEDS_LOGIN
        } else {
            super::exit::ERROR
        }
    }
}
