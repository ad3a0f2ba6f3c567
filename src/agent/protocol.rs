//! The agent's wire protocol, version 1 (docs/agent-protocol.md, AGENT-3).
//!
//! One JSON object per line in each direction, at most [`MAX_FRAME`] bytes including the
//! newline. A client may send several requests on one connection, one at a time; every request
//! gets exactly one answer. A frame the agent cannot accept gets an error answer and the
//! connection is closed.

use crate::app::AccountStatus;
use crate::app::view::{AppEvent, UiCommand};
use crate::secret::{AccessToken, Passphrase};
use serde::{Deserialize, Serialize};
use std::path::PathBuf;

/// The protocol version this build speaks.
pub const VERSION: u32 = 1;

/// Largest frame, newline included (AGENT-3).
pub const MAX_FRAME: usize = 64 * 1024;

/// What a locked agent answers, and what the CLI prints before exiting 5 (AGENT-9).
pub const LOCKED_MESSAGE: &str = "the agent is locked: run `authdeck unlock`";

/// Most JSON values one frame may hold (AGENT-3), an array counting as 4 and an object as 16
/// (each costs the decoder a vector or a map of its own). Decoding builds a structure per value
/// (serde buffers a tagged request whole), so a 64 KiB frame of `[0,0,0,…]` would cost the
/// agent about 1.2 MB per connection; with this bound a frame costs at most a few hundred KiB.
pub const MAX_VALUES: usize = 1024;

/// Most accounts one `export` or `refresh` request may name (AGENT-3): the answer holds a
/// line per account, so a frame of thousands of short names would cost the agent far more
/// than the frame. An empty list means every account and is how all of them are asked for.
pub const MAX_ACCOUNTS: usize = 512;

/// The verbs of version 1.
pub const VERBS: &[&str] = &[
    "status",
    "token",
    "export",
    "refresh",
    "logout",
    "revoke",
    "git_credential",
    "lock",
    "unlock",
    "stop",
    "attach",
];

/// A request. On the wire: `{"v":1,"verb":"token","account":"work",...}`.
#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "verb", rename_all = "snake_case")]
pub enum Request {
    /// The agent itself (who serves, locked or not) and, when unlocked, every account's status.
    Status {
        /// The caller's view of where it runs (AGENT-10); absent for `agent status`.
        #[serde(default, flatten)]
        origin: Origin,
    },
    /// One account's access token, refreshed first when due, or when it would expire within
    /// `min_valid` seconds, or when `force`.
    Token {
        /// The account.
        account: String,
        /// Seconds the token must stay valid at least.
        #[serde(default)]
        min_valid: u64,
        /// Refresh even when not due (`request` after a 401, USE-2).
        #[serde(default, skip_serializing_if = "is_false")]
        force: bool,
        /// A narrower token than the account's own (REF-9), refreshed by the agent.
        #[serde(default, flatten)]
        narrow: Narrow,
        /// The account's ID token instead of its access token (`kube-credential --id-token`,
        /// KUBE-2): handed out only when asked for by name (AGENT-4).
        #[serde(default, skip_serializing_if = "is_false")]
        id_token: bool,
        /// The caller's view of where it runs (AGENT-10).
        #[serde(default, flatten)]
        origin: Origin,
    },
    /// Several accounts' variables and tokens (every logged-in account when `accounts` is
    /// empty), what is due refreshed first.
    Export {
        /// The accounts; empty for all logged-in ones.
        #[serde(default)]
        accounts: Vec<String>,
        /// Narrower tokens (REF-9): each named account's token for this scope, resource or
        /// audience; the first failure ends the export.
        #[serde(default, flatten)]
        narrow: Narrow,
        /// The caller's view of where it runs (AGENT-10).
        #[serde(default, flatten)]
        origin: Origin,
    },
    /// Refresh now, due or not (every logged-in account when `accounts` is empty).
    Refresh {
        /// The accounts.
        #[serde(default)]
        accounts: Vec<String>,
        /// The caller's view of where it runs (AGENT-10).
        #[serde(default, flatten)]
        origin: Origin,
    },
    /// Forget an account's tokens (`authdeck logout`): they stay valid at the provider.
    Logout {
        /// The account.
        account: String,
        /// The caller's view of where it runs (AGENT-10).
        #[serde(default, flatten)]
        origin: Origin,
    },
    /// Revoke an account's tokens at the provider, then forget them (`authdeck revoke`); the
    /// refresh token never leaves the agent.
    Revoke {
        /// The account.
        account: String,
        /// The caller's view of where it runs (AGENT-10).
        #[serde(default, flatten)]
        origin: Origin,
    },
    /// git's credential helper (`authdeck git-credential get|erase`): the agent picks the
    /// account by its `git_urls` (GIT-1), since the caller may have no account files.
    GitCredential {
        /// `get` or `erase`.
        operation: GitOperation,
        /// What git sent (`password` only with `erase`), as an object of its own: its `host`
        /// is not the caller's.
        request: GitRequest,
        /// The caller's view of where it runs (AGENT-10).
        #[serde(default, flatten)]
        origin: Origin,
    },
    /// Forget the key now (AGENT-6).
    Lock,
    /// Derive the key from a passphrase and keep it (AGENT-6, AGENT-7).
    Unlock {
        /// The vault passphrase.
        passphrase: Passphrase,
    },
    /// Exit (`authdeck agent stop`).
    Stop,
    /// Turn this connection into a dashboard's stream (AGENT-14): after the answer (with
    /// `agent`), the agent writes [`EventFrame`]s and reads [`CommandFrame`]s until either side
    /// closes.
    Attach {
        /// The caller's view of where it runs (AGENT-10).
        #[serde(default, flatten)]
        origin: Origin,
    },
}

/// An event the agent pushes to an attached dashboard: `{"v":1,"event":{...}}`, one line
/// (AGENT-14). The event is `app::view`'s [`AppEvent`] as JSON.
#[derive(Debug, Serialize, Deserialize)]
pub struct EventFrame {
    /// The protocol version.
    pub v: u32,
    /// The event.
    pub event: AppEvent,
}

/// A command an attached dashboard sends: `{"v":1,"command":{...}}`, one line of at most
/// [`MAX_FRAME`] bytes (AGENT-3, AGENT-14). The command is `app::view`'s [`UiCommand`].
#[derive(Debug, Serialize, Deserialize)]
pub struct CommandFrame {
    /// The protocol version.
    pub v: u32,
    /// The command.
    pub command: UiCommand,
}

/// Encodes an event for an attached dashboard (newline included).
pub fn encode_event(event: AppEvent) -> Vec<u8> {
    encode(&EventFrame { v: VERSION, event })
}

/// Encodes a dashboard's command (newline included).
pub fn encode_command(command: UiCommand) -> Vec<u8> {
    encode(&CommandFrame {
        v: VERSION,
        command,
    })
}

/// The dashboard commands of version 1 (AGENT-14), by their name on the wire.
pub const COMMANDS: &[&str] = &[
    "login",
    "submit_paste",
    "cancel_login",
    "refresh",
    "refresh_all",
    "revoke",
    "logout",
    "copy_export",
    "submit_passphrase",
    "lock_agent",
    "quit",
];

/// A command frame's head: its version and the command's name, read without keeping the
/// command's value (it may be a passphrase).
#[derive(Deserialize)]
struct CommandHead {
    #[serde(default)]
    v: Option<serde_json::Value>,
    #[serde(default)]
    command: Option<CommandName>,
}

/// An externally tagged command's name: the string itself (`"refresh_all"`) or the one key of
/// its object (`{"refresh":"work"}`); its value is skipped unread.
struct CommandName(Option<String>);

impl<'de> Deserialize<'de> for CommandName {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Name;
        impl<'de> serde::de::Visitor<'de> for Name {
            type Value = CommandName;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a command name or an object with one")
            }
            fn visit_str<E: serde::de::Error>(self, s: &str) -> Result<CommandName, E> {
                Ok(CommandName(Some(s.to_owned())))
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<CommandName, A::Error> {
                let name = map.next_key::<String>()?;
                if name.is_some() {
                    map.next_value::<serde::de::IgnoredAny>()?;
                }
                while map
                    .next_entry::<serde::de::IgnoredAny, serde::de::IgnoredAny>()?
                    .is_some()
                {}
                Ok(CommandName(name))
            }
            fn visit_unit<E: serde::de::Error>(self) -> Result<CommandName, E> {
                Ok(CommandName(None))
            }
            fn visit_bool<E: serde::de::Error>(self, _: bool) -> Result<CommandName, E> {
                Ok(CommandName(None))
            }
            fn visit_i64<E: serde::de::Error>(self, _: i64) -> Result<CommandName, E> {
                Ok(CommandName(None))
            }
            fn visit_u64<E: serde::de::Error>(self, _: u64) -> Result<CommandName, E> {
                Ok(CommandName(None))
            }
            fn visit_f64<E: serde::de::Error>(self, _: f64) -> Result<CommandName, E> {
                Ok(CommandName(None))
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut seq: A,
            ) -> Result<CommandName, A::Error> {
                while seq.next_element::<serde::de::IgnoredAny>()?.is_some() {}
                Ok(CommandName(None))
            }
        }
        d.deserialize_any(Name)
    }
}

/// Decodes a dashboard's command frame (without its newline), classifying what is wrong as
/// [`decode_request`] does (AGENT-3, AGENT-15): not one JSON object is `bad_frame`, too many
/// values `too_large`, a wrong version `bad_version`, a command this agent does not know
/// `unknown_verb`, a known one with bad fields `bad_request`. What serde disliked is never
/// repeated: a command may hold a passphrase or a pasted code.
pub fn decode_command(line: &[u8]) -> Result<UiCommand, Failure> {
    if line.trim_ascii_start().first() != Some(&b'{') {
        return Err(Failure::new(
            ErrorCode::BadFrame,
            "not a JSON object on one line",
        ));
    }
    if value_count(line) > MAX_VALUES {
        return Err(Failure::new(
            ErrorCode::TooLarge,
            format!("a frame holds at most {MAX_VALUES} JSON values"),
        ));
    }
    let head: CommandHead = serde_json::from_slice(line)
        .map_err(|_| Failure::new(ErrorCode::BadFrame, "not a JSON object on one line"))?;
    match head.v.as_ref().and_then(serde_json::Value::as_u64) {
        Some(v) if v == u64::from(VERSION) => {}
        _ => {
            return Err(Failure::new(
                ErrorCode::BadVersion,
                format!("this agent speaks protocol version {VERSION} (field \"v\")"),
            ));
        }
    }
    let known = head
        .command
        .and_then(|c| c.0)
        .is_some_and(|name| COMMANDS.contains(&name.as_str()));
    if !known {
        return Err(Failure::new(
            ErrorCode::UnknownVerb,
            format!("unknown dashboard command (known: {})", COMMANDS.join(", ")),
        ));
    }
    let frame: CommandFrame = serde_json::from_slice(line).map_err(|e| {
        Failure::new(
            ErrorCode::BadRequest,
            format!("bad dashboard command: {}", sanitize_serde(&e)),
        )
    })?;
    Ok(frame.command)
}

/// Decodes an event frame from the agent (without its newline).
pub fn decode_event(line: &[u8]) -> Result<AppEvent, serde_json::Error> {
    let frame: EventFrame = serde_json::from_slice(line)?;
    Ok(frame.event)
}

/// Where a client runs and which vault it would use itself: an agent on the same host that
/// serves another vault answers `other_vault`, and the client uses its own vault (AGENT-10).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct Origin {
    /// The client's host name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    /// The vault the client would open.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vault: Option<PathBuf>,
}

/// `--scope`, `--resource`, `--audience` (REF-9); all absent for the account's own token.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct Narrow {
    /// Scopes, space-separated.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
    /// An RFC 8707 resource URL, or a name from the account's `[resources]`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource: Option<String>,
    /// An `audience`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub audience: Option<String>,
}

impl Narrow {
    /// The request for `app`.
    pub fn request(&self) -> crate::app::scoped::NarrowRequest {
        crate::app::scoped::NarrowRequest {
            scope: self.scope.clone(),
            resource: self.resource.clone(),
            audience: self.audience.clone(),
        }
    }

    /// From `app`'s request.
    pub fn from_request(req: &crate::app::scoped::NarrowRequest) -> Self {
        Self {
            scope: req.scope.clone(),
            resource: req.resource.clone(),
            audience: req.audience.clone(),
        }
    }
}

/// What git asked the credential helper to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GitOperation {
    /// A credential, please.
    Get,
    /// This credential was rejected (GIT-4).
    Erase,
}

/// The attributes of git's request that choose the account (GIT-1), and the rejected token
/// of an `erase` (GIT-4).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct GitRequest {
    /// `protocol`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub protocol: Option<String>,
    /// `host` (with `:port`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    /// `path`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// `username`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    /// `url`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// `password`: the token git used (`erase` only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password: Option<AccessToken>,
}

impl GitRequest {
    /// From what git sent.
    pub fn from_request(req: &crate::app::gitcred::Request) -> Self {
        Self {
            protocol: req.protocol.clone(),
            host: req.host.clone(),
            path: req.path.clone(),
            username: req.username.clone(),
            url: req.url.clone(),
            password: req.password.clone(),
        }
    }

    /// Back into `app`'s request.
    pub fn to_request(&self) -> crate::app::gitcred::Request {
        crate::app::gitcred::Request {
            protocol: self.protocol.clone(),
            host: self.host.clone(),
            path: self.path.clone(),
            username: self.username.clone(),
            wwwauth: Vec::new(),
            url: self.url.clone(),
            password: self.password.clone(),
        }
    }
}

fn is_false(b: &bool) -> bool {
    !*b
}

/// The outer frame of a request: the version beside the verb's fields.
#[derive(Serialize)]
struct RequestFrame<'a> {
    v: u32,
    #[serde(flatten)]
    request: &'a Request,
}

/// Only the version and the verb: read first, so a wrong version or an unknown verb gets its
/// own error code whatever else the frame holds.
#[derive(Deserialize)]
struct Head {
    #[serde(default)]
    v: Option<serde_json::Value>,
    #[serde(default)]
    verb: Option<serde_json::Value>,
}

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

/// Encodes a request as one frame (newline included).
pub fn encode_request(request: &Request) -> Vec<u8> {
    encode(&RequestFrame {
        v: VERSION,
        request,
    })
}

/// Encodes an answer as one frame (newline included).
pub fn encode_response(response: &Response) -> Vec<u8> {
    encode(response)
}

fn encode<T: Serialize>(value: &T) -> Vec<u8> {
    // Serializing these types cannot fail (string keys, no maps with non-string keys); an
    // empty object would still be a valid frame.
    let mut out = serde_json::to_vec(value).unwrap_or_else(|_| b"{}".to_vec());
    out.push(b'\n');
    out
}

/// Decodes one request frame (without its newline), classifying what is wrong (AGENT-3).
pub fn decode_request(line: &[u8]) -> Result<Request, Failure> {
    // serde would read a struct from a JSON array too; a frame must be an object.
    if line.trim_ascii_start().first() != Some(&b'{') {
        return Err(Failure::new(
            ErrorCode::BadFrame,
            "not a JSON object on one line",
        ));
    }
    if value_count(line) > MAX_VALUES {
        return Err(Failure::new(
            ErrorCode::TooLarge,
            format!("a frame holds at most {MAX_VALUES} JSON values"),
        ));
    }
    let head: Head = serde_json::from_slice(line)
        .map_err(|_| Failure::new(ErrorCode::BadFrame, "not a JSON object on one line"))?;
    match head.v.as_ref().and_then(serde_json::Value::as_u64) {
        Some(v) if v == u64::from(VERSION) => {}
        _ => {
            return Err(Failure::new(
                ErrorCode::BadVersion,
                format!("this agent speaks protocol version {VERSION} (field \"v\")"),
            ));
        }
    }
    let verb = head
        .verb
        .as_ref()
        .and_then(serde_json::Value::as_str)
        .unwrap_or_default();
    if !VERBS.contains(&verb) {
        return Err(Failure::new(
            ErrorCode::UnknownVerb,
            format!("unknown verb (known: {})", VERBS.join(", ")),
        ));
    }
    let request: Request = serde_json::from_slice(line).map_err(|e| {
        // serde's message names the field and the expected type, never the value.
        Failure::new(
            ErrorCode::BadRequest,
            format!("bad {verb} request: {}", sanitize_serde(&e)),
        )
    })?;
    match &request {
        Request::Export { accounts, .. } | Request::Refresh { accounts, .. }
            if accounts.len() > MAX_ACCOUNTS =>
        {
            Err(Failure::new(
                ErrorCode::BadRequest,
                format!(
                    "bad {verb} request: at most {MAX_ACCOUNTS} accounts by name (none: every account)"
                ),
            ))
        }
        _ => Ok(request),
    }
}

/// An upper bound on the JSON values in `line`, weighted as [`MAX_VALUES`] says, counted
/// without parsing: every value after the first follows a `,` or opens with `[` or `{` (outside
/// strings).
fn value_count(line: &[u8]) -> usize {
    let mut n = 1usize;
    let mut in_string = false;
    let mut escaped = false;
    for &b in line {
        if in_string {
            match b {
                _ if escaped => escaped = false,
                b'\\' => escaped = true,
                b'"' => in_string = false,
                _ => {}
            }
            continue;
        }
        match b {
            b'"' => in_string = true,
            b',' => n += 1,
            b'[' => n += 4,
            b'{' => n += 16,
            _ => {}
        }
    }
    n
}

/// Decodes one answer frame (without its newline).
pub fn decode_response(line: &[u8]) -> Result<Response, serde_json::Error> {
    serde_json::from_slice(line)
}

/// A secret-free account of what serde disliked: a missing field is named; anything else may
/// quote the offending value (a passphrase of the wrong type), so it is not repeated.
fn sanitize_serde(e: &serde_json::Error) -> String {
    let text = e.to_string();
    if text.starts_with("missing field `") {
        let cut = text.find(" at line ").unwrap_or(text.len());
        return text[..cut]
            .chars()
            .filter(|c| !c.is_control())
            .take(120)
            .collect();
    }
    "a field has the wrong type or the JSON is malformed".into()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn code(line: &str) -> ErrorCode {
        decode_request(line.as_bytes()).unwrap_err().code
    }

    /// AGENT-14: the dashboard's commands and the agent's events round-trip as one JSON line;
    /// a bad command frame never repeats its value (it may be a passphrase).
    #[test]
    fn agent14_dashboard_frames_round_trip_and_bad_ones_do_not_echo() {
        use crate::app::view::{AgentKeyState, AgentView};
        let frame = encode_command(UiCommand::SubmitPassphrase(Passphrase::new("hunter2")));
        assert_eq!(frame.last(), Some(&b'\n'));
        let back = decode_command(&frame[..frame.len() - 1]).unwrap();
        assert_eq!(
            back,
            UiCommand::SubmitPassphrase(Passphrase::new("hunter2"))
        );
        let ev = AppEvent::Agent(AgentView {
            host: "h".into(),
            state: AgentKeyState::Locked,
            lock_at: None,
            lockable: true,
        });
        let frame = encode_event(ev.clone());
        assert_eq!(decode_event(&frame[..frame.len() - 1]).unwrap(), ev);
        let bad =
            decode_command(br#"{"v":1,"command":{"submit_passphrase":12345678}}"#).unwrap_err();
        assert!(!bad.message.contains("12345678"), "{}", bad.message);
        let old = decode_command(br#"{"v":2,"command":"refresh_all"}"#).unwrap_err();
        assert_eq!(old.code, ErrorCode::BadVersion);
    }

    /// AGENT-15: each bad command frame of an attached dashboard has its code, as a request
    /// would; every command this build sends is a known one.
    #[test]
    fn agent15_each_bad_command_frame_has_its_code() {
        let code = |line: &str| decode_command(line.as_bytes()).unwrap_err().code;
        assert_eq!(code("garbage"), ErrorCode::BadFrame);
        assert_eq!(code(r#"{"v":1,"command":"#), ErrorCode::BadFrame);
        assert_eq!(code(r#"{"v":2,"command":"quit"}"#), ErrorCode::BadVersion);
        assert_eq!(code(r#"{"v":1,"command":"fly"}"#), ErrorCode::UnknownVerb);
        assert_eq!(
            code(r#"{"v":1,"command":{"fly":"x"}}"#),
            ErrorCode::UnknownVerb
        );
        assert_eq!(code(r#"{"v":1,"command":[1]}"#), ErrorCode::UnknownVerb);
        assert_eq!(code(r#"{"v":1}"#), ErrorCode::UnknownVerb);
        assert_eq!(
            code(r#"{"v":1,"command":{"refresh":7}}"#),
            ErrorCode::BadRequest
        );
        let many = format!(
            r#"{{"v":1,"command":{{"refresh":[{}]}}}}"#,
            "[],".repeat(400)
        );
        assert_eq!(code(&many), ErrorCode::TooLarge);
        let secret = decode_command(br#"{"v":1,"command":{"hunter2-secret":1}}"#).unwrap_err();
        assert!(!secret.message.contains("hunter2"), "{}", secret.message);
        let pass = crate::secret::PastedRedirect::new("x");
        for cmd in [
            UiCommand::Login {
                account: "a".into(),
                mode: crate::app::view::LoginMode::Paste,
            },
            UiCommand::SubmitPaste {
                account: "a".into(),
                input: pass,
            },
            UiCommand::CancelLogin {
                account: "a".into(),
            },
            UiCommand::Refresh("a".into()),
            UiCommand::RefreshAll,
            UiCommand::Revoke("a".into()),
            UiCommand::Logout("a".into()),
            UiCommand::CopyExport("a".into()),
            UiCommand::SubmitPassphrase(Passphrase::new("p")),
            UiCommand::LockAgent,
            UiCommand::Quit,
        ] {
            let frame = encode_command(cmd.clone());
            assert_eq!(decode_command(&frame[..frame.len() - 1]).unwrap(), cmd);
        }
    }

    #[test]
    fn agent3_requests_round_trip() {
        let req = Request::Token {
            account: "work".into(),
            min_valid: 30,
            force: false,
            narrow: Narrow::default(),
            id_token: false,
            origin: Origin {
                host: Some("h".into()),
                vault: None,
            },
        };
        let frame = encode_request(&req);
        assert_eq!(frame.last(), Some(&b'\n'));
        let text = std::str::from_utf8(&frame).unwrap();
        assert!(
            text.starts_with(r#"{"v":1,"verb":"token","account":"work""#),
            "{text}"
        );
        match decode_request(&frame[..frame.len() - 1]).unwrap() {
            Request::Token {
                account,
                min_valid,
                origin,
                ..
            } => {
                assert_eq!(account, "work");
                assert_eq!(min_valid, 30);
                assert_eq!(origin.host.as_deref(), Some("h"));
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            decode_request(br#"{"v":1,"verb":"export"}"#).unwrap(),
            Request::Export { accounts, .. } if accounts.is_empty()
        ));
    }

    #[test]
    fn agent3_each_bad_frame_has_its_code() {
        assert_eq!(code("garbage"), ErrorCode::BadFrame);
        assert_eq!(code("[1,2]"), ErrorCode::BadFrame);
        assert_eq!(code(r#"{"verb":"status"}"#), ErrorCode::BadVersion);
        assert_eq!(code(r#"{"v":2,"verb":"status"}"#), ErrorCode::BadVersion);
        assert_eq!(code(r#"{"v":"1","verb":"status"}"#), ErrorCode::BadVersion);
        assert_eq!(code(r#"{"v":1,"verb":"steal"}"#), ErrorCode::UnknownVerb);
        assert_eq!(code(r#"{"v":1}"#), ErrorCode::UnknownVerb);
        assert_eq!(code(r#"{"v":1,"verb":"token"}"#), ErrorCode::BadRequest);
        assert_eq!(
            code(r#"{"v":1,"verb":"token","account":7}"#),
            ErrorCode::BadRequest
        );
    }

    /// AGENT-3: a frame of many small values (found by the `agent_frame` fuzz target's memory
    /// bound: 64 KiB of `[0,0,…]` made the decoder allocate 1.2 MB) is refused before decoding.
    #[test]
    fn agent3_a_frame_of_too_many_values_is_refused_before_it_is_decoded() {
        let many = format!(
            r#"{{"v":1,"verb":"lock","x":[{}0]}}"#,
            "0,".repeat(MAX_VALUES)
        );
        assert_eq!(code(&many), ErrorCode::TooLarge);
        let nested = format!(r#"{{"v":[{}[]]}}"#, "[],".repeat(MAX_VALUES / 5));
        assert_eq!(code(&nested), ErrorCode::TooLarge);
        let maps = format!(
            r#"{{"v":1,"verb":"lock","x":[{}0]}}"#,
            r#"{"a":0},"#.repeat(250)
        );
        assert_eq!(code(&maps), ErrorCode::TooLarge);
        // Commas and brackets inside strings are not values.
        let text = format!(
            r#"{{"v":1,"verb":"token","account":"{}"}}"#,
            ",[{".repeat(5000)
        );
        assert!(decode_request(text.as_bytes()).is_ok());
        let escaped = format!(
            r#"{{"v":1,"verb":"token","account":"\"{}"}}"#,
            ",".repeat(5000)
        );
        assert!(decode_request(escaped.as_bytes()).is_ok());
        let names = |n: usize| -> Vec<String> { (0..n).map(|i| format!("a{i}")).collect() };
        for verb in ["export", "refresh"] {
            let frame = |n| format!(r#"{{"v":1,"verb":"{verb}","accounts":{:?}}}"#, names(n));
            assert!(
                decode_request(frame(MAX_ACCOUNTS).as_bytes()).is_ok(),
                "{MAX_ACCOUNTS} accounts fit"
            );
            let f = decode_request(frame(MAX_ACCOUNTS + 1).as_bytes()).unwrap_err();
            assert_eq!(f.code, ErrorCode::BadRequest, "{verb}: {}", f.message);
        }
    }

    #[test]
    fn agent3_a_bad_unlock_frame_does_not_echo_the_passphrase() {
        let f = decode_request(br#"{"v":1,"verb":"unlock","passphrase":12345678}"#).unwrap_err();
        assert_eq!(f.code, ErrorCode::BadRequest);
        assert!(!f.message.contains("12345678"), "{}", f.message);
        let f =
            decode_request(br#"{"v":1,"verb":"unlock","passphrase":"hunter2","x":[}"#).unwrap_err();
        assert!(!f.message.contains("hunter2"), "{}", f.message);
    }

    #[test]
    fn agent4_answers_redact_in_debug_and_unknown_codes_survive() {
        let mut r = Response::ok();
        r.token = Some(AccessToken::new("at-secret-1"));
        assert!(!format!("{r:?}").contains("at-secret-1"));
        let line = br#"{"v":1,"ok":false,"error":{"code":"from_the_future","message":"m"}}"#;
        let r = decode_response(line).unwrap();
        assert_eq!(r.error.unwrap().code, ErrorCode::Unknown);
    }
}
