//! The dashboard's stream on an attached connection (AGENT-14): after an `attach` answer, the
//! agent writes event frames and reads command frames, one JSON object per line as every other
//! frame (AGENT-3), until either side closes.

use super::{ErrorCode, Failure, VERSION, encode, frame_head, sanitize_serde};
#[cfg(doc)]
use super::{MAX_FRAME, decode_request};
use crate::app::view::{AppEvent, UiCommand};
use serde::{Deserialize, Serialize};

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
    let head: CommandHead = frame_head(line, |h: &CommandHead| h.v.as_ref())?;
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
