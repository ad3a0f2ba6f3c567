//! Plain data the dashboard shows and the commands it sends: the contract between `app` and `ui`.
//!
//! Everything here is data: no network, no disk, no clock. `app` builds [`AccountView`]s from
//! vault records and provider files and reports what its background tasks do as [`AppEvent`]s;
//! the dashboard answers with [`UiCommand`]s. Both travel over tokio unbounded channels, so
//! neither side ever waits on the other.
//!
//! Secrets: an [`AccountView`] holds none. The only secrets that cross this boundary are the
//! ones the user types or asks for, and each travels in a `crate::secret` type:
//! - the passphrase ([`UiCommand::SubmitPassphrase`], a [`Passphrase`]);
//! - the pasted redirect URL or bare code ([`UiCommand::SubmitPaste`], a [`PastedRedirect`]:
//!   `app` parses it, checks `state` when it is a URL, and extracts the code);
//! - the export line for `e` ([`AppEvent::ExportLine`], an [`ExportLine`]: it embeds the access
//!   token; the dashboard writes it to the terminal's clipboard through OSC 52 and drops it).
//!
//! Every type here is serialisable: a dashboard attached to the agent receives the agent's
//! events and sends its commands over the agent's socket as JSON (AGENT-14). Secrets keep their
//! `crate::secret` wrappers on the wire too; no event carries a refresh token, a client secret
//! or a key.

use super::status::Health;
/// The failure classification, re-exported so the dashboard contract is complete here.
pub use crate::oauth::FailureKind;
use crate::secret::{ExportLine, Passphrase, PastedRedirect};
use serde::{Deserialize, Serialize};
use std::path::PathBuf;
use std::time::SystemTime;

/// One account as the dashboard shows it. Holds no secret.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccountView {
    /// The account's name (its provider file's stem), unique.
    pub name: String,
    /// The provider template it uses, e.g. `github`.
    pub provider: String,
    /// The provider's human name, e.g. `GitHub`; may be empty.
    pub display_name: String,
    /// What the badge shows.
    pub state: Badge,
    /// Absolute expiry of the access token; `None` when unknown or not logged in (EXP-3).
    pub expires_at: Option<SystemTime>,
    /// When the current access token was obtained.
    pub obtained_at: Option<SystemTime>,
    /// Email or subject from the id_token / userinfo.
    pub identity: Option<String>,
    /// Granted scopes (TOK-6).
    pub scopes: Vec<String>,
    /// `Bearer` usually.
    pub token_type: Option<String>,
    /// Refreshes since login.
    pub refresh_count: u32,
    /// When the last successful refresh happened.
    pub last_refresh: Option<SystemTime>,
    /// When the scheduler plans the next refresh (EXP-4), if it knows.
    pub next_refresh: Option<SystemTime>,
    /// The last error, one line, no secret in it.
    pub last_error: Option<String>,
    /// id_token claims as shown, `(name, value)`, no secret in them.
    pub claims: Vec<(String, String)>,
    /// Whether those claims were verified (DISC-5) or are shown as the token said.
    pub claims_verified: bool,
    /// Where the account's provider file lives.
    pub provider_file: Option<PathBuf>,
    /// Whether the provider has a device authorization endpoint.
    pub can_device: bool,
    /// Whether a refresh token is stored (no refresh token: re-login when it expires).
    pub has_refresh_token: bool,
    /// The variable name `--export` uses, e.g. `GITHUB_ACCESS_TOKEN`.
    pub export_var: Option<String>,
    /// A machine account (MACH-1): it fetches its own token and never needs a login.
    pub machine: bool,
}

impl AccountView {
    /// A logged-out account with everything else empty: a convenient base for `app` and tests.
    pub fn new(name: impl Into<String>, provider: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            provider: provider.into(),
            display_name: String::new(),
            state: Badge::NeedsLogin,
            expires_at: None,
            obtained_at: None,
            identity: None,
            scopes: Vec::new(),
            token_type: None,
            refresh_count: 0,
            last_refresh: None,
            next_refresh: None,
            last_error: None,
            claims: Vec::new(),
            claims_verified: false,
            provider_file: None,
            can_device: false,
            has_refresh_token: false,
            export_var: None,
            machine: false,
        }
    }
}

/// The dashboard's state badge of an account: its [`Health`] plus `Refreshing`. Each reads
/// without colour: a symbol and a word. (The vault's own record of an account is
/// [`StoredState`](crate::vault::StoredState).)
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Badge {
    /// A token that is not yet due for refresh.
    Valid,
    /// Inside the refresh margin (EXP-4): a refresh is due or scheduled.
    Expiring,
    /// Past its expiry and not refreshed (no refresh token, or refreshing failed).
    Expired,
    /// No token, or the refresh token was refused (`invalid_grant`).
    NeedsLogin,
    /// The last operation failed (see `last_error`).
    Error,
    /// A refresh is in flight.
    Refreshing,
    /// The account file does not validate: `last_error` holds `FILE:LINE:COL: message`.
    Invalid,
    /// A machine account with no token yet (MACH-1): the first use or a refresh fetches one.
    Machine,
}

impl Badge {
    /// Every state, in badge order.
    pub const ALL: [Badge; 8] = [
        Self::Valid,
        Self::Expiring,
        Self::Expired,
        Self::NeedsLogin,
        Self::Error,
        Self::Refreshing,
        Self::Invalid,
        Self::Machine,
    ];

    /// A one-character symbol that tells the states apart without colour.
    pub fn symbol(self) -> &'static str {
        match self {
            Self::Valid => "✓",
            Self::Expiring => "◔",
            Self::Expired => "✗",
            Self::NeedsLogin => "○",
            Self::Error => "!",
            Self::Refreshing => "↻",
            Self::Invalid => "⊘",
            Self::Machine => "⚙",
        }
    }

    /// The word used by the dashboard and `status` alike.
    pub fn word(self) -> &'static str {
        match self {
            Self::Valid => "valid",
            Self::Expiring => "expiring",
            Self::Expired => "expired",
            Self::NeedsLogin => "needs login",
            Self::Error => "error",
            Self::Refreshing => "refreshing",
            Self::Invalid => "invalid",
            Self::Machine => "machine",
        }
    }

    /// Whether the account holds a usable or recently usable token.
    pub fn has_token(self) -> bool {
        matches!(self, Self::Valid | Self::Expiring | Self::Refreshing)
    }
}

/// The badge shows an account's [`Health`], or that a refresh is in flight.
impl From<Health> for Badge {
    fn from(h: Health) -> Self {
        match h {
            Health::Valid => Self::Valid,
            Health::Expiring => Self::Expiring,
            Health::Expired => Self::Expired,
            Health::NeedsLogin => Self::NeedsLogin,
            Health::Error => Self::Error,
        }
    }
}

/// How a login proceeds: the one [`LoginMode`], re-exported so the
/// dashboard contract is complete in this module.
pub use super::mode::LoginMode;

/// A line of the refresh panel: what the scheduler or a command did.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogEntry {
    /// When it happened.
    pub at: SystemTime,
    /// The account it concerns (empty for general messages).
    pub account: String,
    /// What happened.
    pub kind: LogKind,
}

/// What a [`LogEntry`] reports. No secret in any field.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LogKind {
    /// A refresh succeeded.
    Refreshed {
        /// The new expiry, when known.
        new_expiry: Option<SystemTime>,
    },
    /// A refresh failed.
    Failed {
        /// One line, user-facing.
        reason: String,
        /// When the scheduler will try again; `None` when it will not (only a transient
        /// failure is retried on its own).
        next_try: Option<SystemTime>,
        /// What the failure means (transient: retried; needs login; misconfigured: fix the
        /// account file; refused).
        kind: FailureKind,
    },
    /// The server rotated the refresh token (and the new one was saved first).
    Rotated,
    /// Revoked at the provider and deleted locally.
    Revoked,
    /// A login completed.
    LoggedIn,
    /// Deleted locally.
    LoggedOut,
    /// Anything else worth a line.
    Info(String),
}

/// A step of a login started from the dashboard.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LoginStep {
    /// Browser and paste modes: the authorization URL (the dashboard renders its QR code).
    ShowUrl {
        /// The authorization URL.
        url: String,
        /// When the flow times out (CB-12: 5 minutes), if known.
        expires_at: Option<SystemTime>,
    },
    /// Device mode: what the user must enter where (DEV-3).
    ShowDeviceCode {
        /// The code to type.
        user_code: String,
        /// Where to type it.
        verification_uri: String,
        /// A URI with the code already in it, shown as a QR code when present.
        verification_uri_complete: Option<String>,
        /// When the device code expires (DEV-8).
        expires_at: SystemTime,
    },
    /// The code arrived; tokens are being exchanged.
    Waiting,
    /// Logged in.
    Done,
    /// The login ended without tokens; one line, no secret.
    Failed(String),
}

/// Everything the background reports to the dashboard.
///
/// `AccountUpdated` carries a whole [`AccountView`] by value: events are made once per change
/// and moved, never copied in bulk, so the size difference clippy measures costs nothing here.
#[allow(clippy::large_enum_variant)]
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AppEvent {
    /// The full account list (at start, after unlocking the vault, after a reload).
    AccountsLoaded(Vec<AccountView>),
    /// One account changed (state, expiry, error, …); added if the name is new.
    AccountUpdated(AccountView),
    /// An account's provider file is gone.
    AccountRemoved(String),
    /// A line for the refresh panel.
    Log(LogEntry),
    /// Progress of a login the dashboard started.
    LoginProgress {
        /// The account logging in.
        account: String,
        /// Where it stands.
        step: LoginStep,
    },
    /// The vault needs a passphrase; `retry` when the previous one was wrong.
    PassphraseNeeded {
        /// The previous passphrase was wrong.
        retry: bool,
    },
    /// The answer to [`UiCommand::CopyExport`]: the account's export line, to be copied to the
    /// clipboard through OSC 52 and dropped.
    ExportLine {
        /// The account.
        account: String,
        /// e.g. `export GITHUB_ACCESS_TOKEN='…'`.
        line: ExportLine,
    },
    /// The shared vault backend's health for the header (never sent for a local file).
    Backend(BackendStatus),
    /// The agent this dashboard is attached to: locked or not, when it locks (AGENT-14). Never
    /// sent to a dashboard that opened the vault itself.
    Agent(AgentView),
    /// A one-line message for the status bar (e.g. "cannot export: needs login").
    Notice {
        /// Shown as an error.
        error: bool,
        /// The message, no secret.
        message: String,
    },
}

/// How the shared vault backend (etcd) is doing, for the dashboard's header. No secret.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BackendStatus {
    /// What it is, e.g. `etcd 10.0.0.1:2379,10.0.0.2:2379`.
    pub backend: String,
    /// Whether its last request succeeded.
    pub healthy: bool,
    /// Why not, one sanitized line.
    pub reason: Option<String>,
}

/// The agent a dashboard is attached to, for the header (AGENT-14). No secret.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AgentView {
    /// The host it runs on.
    pub host: String,
    /// Whether it holds the vault key.
    pub state: AgentKeyState,
    /// When it locks by itself (`--lock-after`), while unlocked with a passphrase.
    pub lock_at: Option<SystemTime>,
    /// Whether `L` can lock it (a passphrase vault; a key-file vault has no key to forget).
    pub lockable: bool,
}

/// Whether the agent holds the vault key.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AgentKeyState {
    /// It holds the key.
    Unlocked,
    /// It holds none: the dashboard asks for the passphrase.
    Locked,
    /// It went away (stopped or killed): the dashboard waits for one to answer again and
    /// attaches to it (AGENT-16). Never sent by an agent; the dashboard sets it itself.
    Gone,
}

/// Everything the dashboard asks the background to do.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum UiCommand {
    /// Start a login in the given mode; progress comes back as [`AppEvent::LoginProgress`].
    Login {
        /// The account.
        account: String,
        /// Browser, paste or device.
        mode: LoginMode,
    },
    /// The redirect URL the browser ended on, or the bare code, exactly as pasted or typed.
    SubmitPaste {
        /// The account logging in.
        account: String,
        /// What the user pasted (a URL with `code` and `state`, or a code).
        input: PastedRedirect,
    },
    /// The user pressed Esc in a login dialog.
    CancelLogin {
        /// The account.
        account: String,
    },
    /// Refresh one account now, due or not.
    Refresh(String),
    /// Refresh every logged-in account now.
    RefreshAll,
    /// Revoke at the provider, then delete locally (confirmed by the user).
    Revoke(String),
    /// Delete locally only (confirmed by the user).
    Logout(String),
    /// Send the account's export line back as [`AppEvent::ExportLine`].
    CopyExport(String),
    /// The passphrase typed into the prompt.
    SubmitPassphrase(Passphrase),
    /// Lock the agent the dashboard is attached to (AGENT-14): it forgets the vault key.
    LockAgent,
    /// The dashboard is closing.
    Quit,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn badges_differ_without_colour() {
        let symbols: std::collections::HashSet<_> = Badge::ALL.iter().map(|s| s.symbol()).collect();
        let words: std::collections::HashSet<_> = Badge::ALL.iter().map(|s| s.word()).collect();
        assert_eq!(symbols.len(), Badge::ALL.len());
        assert_eq!(words.len(), Badge::ALL.len());
    }

    #[test]
    fn secrets_in_commands_and_events_are_redacted_log_2() {
        let cmd = UiCommand::SubmitPaste {
            account: "demo".into(),
            input: PastedRedirect::new("code-xyz-123"),
        };
        assert!(!format!("{cmd:?}").contains("code-xyz-123"));
        let cmd = UiCommand::SubmitPassphrase(Passphrase::new("hunter2"));
        assert!(!format!("{cmd:?}").contains("hunter2"));
        let ev = AppEvent::ExportLine {
            account: "demo".into(),
            line: ExportLine::new("export X='tok-abc'"),
        };
        assert!(!format!("{ev:?}").contains("tok-abc"));
    }
}
