//! The agent's wire protocol, version 1 (docs/agent-protocol.md, AGENT-3).
//!
//! One JSON object per line in each direction, at most [`MAX_FRAME`] bytes including the
//! newline. A client may send several requests on one connection, one at a time; every request
//! gets exactly one answer. A frame the agent cannot accept gets an error answer and the
//! connection is closed. The dashboard's stream after `attach` is in `protocol/attach.rs`, the
//! answers in `protocol/response.rs`.

mod attach;
mod response;

pub use attach::{
    COMMANDS, CommandFrame, EventFrame, decode_command, decode_event, encode_command, encode_event,
};
pub use response::{
    AccountFailure, AgentInfo, ErrorCode, ExportVar, Failure, KeyState, RefreshResult, Response,
};

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
    let head: Head = frame_head(line, |h: &Head| h.v.as_ref())?;
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

/// What every frame must be before its own fields are read (AGENT-3): one JSON object (serde
/// would read a struct from an array too), at most [`MAX_VALUES`] values, at [`VERSION`].
/// Returns the frame's head `H`, whose `v` field `version` reads.
fn frame_head<H: serde::de::DeserializeOwned>(
    line: &[u8],
    version: fn(&H) -> Option<&serde_json::Value>,
) -> Result<H, Failure> {
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
    let head: H = serde_json::from_slice(line)
        .map_err(|_| Failure::new(ErrorCode::BadFrame, "not a JSON object on one line"))?;
    match version(&head).and_then(serde_json::Value::as_u64) {
        Some(v) if v == u64::from(VERSION) => Ok(head),
        _ => Err(Failure::new(
            ErrorCode::BadVersion,
            format!("this agent speaks protocol version {VERSION} (field \"v\")"),
        )),
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
    use crate::app::view::{AppEvent, UiCommand};

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

    /// AGENT-15: mutated command frames (bytes flipped, cut, repeated) are answered with a
    /// code, never a panic, and a refused one never quotes the passphrase it held.
    #[test]
    fn agent15_mutated_command_frames_never_panic_nor_echo() {
        let seed = encode_command(UiCommand::SubmitPassphrase(Passphrase::new("sekrit-pass")));
        let seed = &seed[..seed.len() - 1];
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut next = || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        for _ in 0..20_000 {
            let mut frame = seed.to_vec();
            for _ in 0..(next() % 4 + 1) {
                let at = (next() as usize) % frame.len().max(1);
                match next() % 4 {
                    0 if !frame.is_empty() => frame[at] = next() as u8,
                    1 => frame.truncate(at),
                    2 => frame.insert(at, b"{}[]\",:"[(next() % 7) as usize]),
                    0 => {}
                    _ => {
                        let tail = frame[at..].to_vec();
                        frame.extend_from_slice(&tail);
                    }
                }
            }
            if let Err(f) = decode_command(&frame) {
                assert!(!f.message.contains("sekrit"), "{}", f.message);
            }
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
