//! The OS keyring as a vault key source (VAULT-7): a random 32-byte vault key kept by the
//! desktop's keyring — the Secret Service on Linux (GNOME Keyring, KWallet, KeePassXC), reached
//! over D-Bus by the `keyring` crate's pure-Rust backend (zbus) with an encrypted session.
//!
//! The item is found by attributes `service = "authdeck"` and `username = "vault-<id>"`, where
//! `<id>` is 16 random bytes the vault header keeps in its salt field: moving or copying the
//! vault keeps its key, and two vaults never share an item. Nothing about the key is in the
//! header but the id and the key check.
//!
//! Every call runs on a thread of its own and is given [`TIMEOUT`]: the backend blocks on a
//! private tokio runtime (which must not run inside another runtime), and a keyring that waits
//! for a password prompt nobody can answer must not hang a command or the agent.

use crate::secret::Key32;
use std::time::Duration;
use zeroize::Zeroizing;

/// The `service` attribute of every item authdeck keeps.
pub const SERVICE: &str = "authdeck";

/// How long one keyring call may take.
pub const TIMEOUT: Duration = Duration::from_secs(20);

/// The name of a vault's item: 16 random bytes, kept in the vault header.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) struct ItemId(pub [u8; 16]);

impl ItemId {
    /// A fresh random id, for a new vault or a re-key.
    pub fn generate() -> Self {
        Self(crate::secret::random_bytes())
    }

    /// The item's `username` attribute: `vault-` and 32 hex digits.
    pub fn user(&self) -> String {
        let hex: String = self.0.iter().map(|b| format!("{b:02x}")).collect();
        format!("vault-{hex}")
    }
}

impl std::fmt::Debug for ItemId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.user())
    }
}

/// What went wrong with the OS keyring. One line each, naming the item, never the key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum KeyringFailure {
    /// No keyring service answers: no D-Bus session (a server without a desktop), or no
    /// Secret Service on it.
    #[error(
        "no OS keyring answers ({why}); where there is none (a server without a desktop \
         session), keep the vault under a passphrase and let the agent hold its key: run \
         `authdeck agent start`, then `authdeck unlock`"
    )]
    Unavailable {
        /// Why, in one sanitized line.
        why: String,
    },
    /// The keyring answers but holds no item for this vault (removed, or another keyring).
    #[error(
        "the OS keyring holds no key for it (item {user:?} of service \"authdeck\" is gone, or \
         this is another keyring); nothing was changed"
    )]
    NoEntry {
        /// The item's `username` attribute.
        user: String,
    },
    /// Several items match.
    #[error(
        "several items in the OS keyring are named {user:?} of service \"authdeck\"; remove all \
         but the right one"
    )]
    Ambiguous {
        /// The item's `username` attribute.
        user: String,
    },
    /// The item holds something that is not a 32-byte key.
    #[error("the OS keyring item {user:?} does not hold a 32-byte key")]
    BadKey {
        /// The item's `username` attribute.
        user: String,
    },
    /// No answer in time.
    #[error(
        "the OS keyring did not answer within {secs} s (is it locked and waiting for a password \
         prompt?)"
    )]
    Timeout {
        /// The time allowed.
        secs: u64,
    },
    /// Anything else the keyring said.
    #[error("the OS keyring failed: {0}")]
    Failed(String),
}

/// Reads the key of item `id`.
pub(crate) fn load(id: ItemId) -> Result<Key32, KeyringFailure> {
    call(move || {
        let secret = Zeroizing::new(backend::get(id)?);
        if secret.len() != 32 {
            return Err(KeyringFailure::BadKey { user: id.user() });
        }
        let mut bytes = Zeroizing::new([0u8; 32]);
        bytes.copy_from_slice(&secret);
        Ok(Key32::from_bytes(*bytes))
    })
}

/// Stores `key` as item `id`, labelled `label` (what the keyring's own tools show).
pub(crate) fn store(id: ItemId, key: &Key32, label: String) -> Result<(), KeyringFailure> {
    let key = key.clone();
    call(move || backend::set(id, &key, &label))
}

/// Removes item `id`; an item already gone is not an error.
pub(crate) fn delete(id: ItemId) -> Result<(), KeyringFailure> {
    call(move || match backend::delete(id) {
        Err(KeyringFailure::NoEntry { .. }) => Ok(()),
        other => other,
    })
}

/// Runs `f` on a thread of its own and waits at most [`TIMEOUT`]. A call that times out is
/// left to finish on its own; what it returns then is dropped (and zeroized).
fn call<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, KeyringFailure> + Send + 'static,
) -> Result<T, KeyringFailure> {
    backend::reachable()?;
    let (tx, rx) = std::sync::mpsc::sync_channel(1);
    std::thread::Builder::new()
        .name("os-keyring".into())
        .spawn(move || {
            let _ = tx.send(f());
        })
        .map_err(|e| KeyringFailure::Failed(format!("cannot start a thread: {e}")))?;
    match rx.recv_timeout(TIMEOUT) {
        Ok(result) => result,
        Err(std::sync::mpsc::RecvTimeoutError::Timeout) => Err(KeyringFailure::Timeout {
            secs: TIMEOUT.as_secs(),
        }),
        Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => Err(KeyringFailure::Failed(
            "the keyring call ended without an answer".into(),
        )),
    }
}

/// Classifies a keyring backend's error; `unavailable` tells, from the error and its text,
/// whether no keyring answered at all (VAULT-8). `BadEncoding` would carry the secret's bytes:
/// only the variant is looked at, never its content.
#[cfg(any(target_os = "linux", target_os = "macos"))]
fn classify(
    e: keyring::Error,
    id: ItemId,
    unavailable: impl Fn(&keyring::Error, &str) -> bool,
) -> KeyringFailure {
    match e {
        keyring::Error::NoEntry => KeyringFailure::NoEntry { user: id.user() },
        keyring::Error::Ambiguous(_) => KeyringFailure::Ambiguous { user: id.user() },
        keyring::Error::BadEncoding(_) => KeyringFailure::BadKey { user: id.user() },
        other => {
            let text = match &other {
                keyring::Error::PlatformFailure(inner) | keyring::Error::NoStorageAccess(inner) => {
                    inner.to_string()
                }
                other => other.to_string(),
            };
            if unavailable(&other, &text) {
                KeyringFailure::Unavailable { why: line(&text) }
            } else {
                KeyringFailure::Failed(line(&text))
            }
        }
    }
}

/// One line of what a keyring backend said: no control characters, bounded.
#[cfg(any(target_os = "linux", target_os = "macos"))]
fn line(text: &str) -> String {
    crate::text::sanitize(text, 300)
}

#[cfg(target_os = "linux")]
mod backend {
    //! The Secret Service, over zbus.

    use super::{ItemId, KeyringFailure, SERVICE};
    use crate::secret::Key32;
    use keyring::credential::CredentialApi;
    use keyring::secret_service::SsCredential;

    /// Fails at once, with the reason, when there is no D-Bus session bus to ask (rather than
    /// letting the D-Bus library fail with a message about addresses).
    pub fn reachable() -> Result<(), KeyringFailure> {
        if std::env::var_os("DBUS_SESSION_BUS_ADDRESS").is_some_and(|v| !v.is_empty()) {
            return Ok(());
        }
        // Without the variable the session bus is looked for at $XDG_RUNTIME_DIR/bus.
        let runtime_bus = std::env::var_os("XDG_RUNTIME_DIR")
            .filter(|d| !d.is_empty())
            .map(|d| std::path::PathBuf::from(d).join("bus"));
        if runtime_bus.is_some_and(|p| p.exists()) {
            return Ok(());
        }
        Err(KeyringFailure::Unavailable {
            why: "no D-Bus session: DBUS_SESSION_BUS_ADDRESS is not set".into(),
        })
    }

    fn credential(id: ItemId) -> Result<SsCredential, KeyringFailure> {
        SsCredential::new_with_target(None, SERVICE, &id.user()).map_err(|e| classify(e, id))
    }

    pub fn get(id: ItemId) -> Result<Vec<u8>, KeyringFailure> {
        credential(id)?.get_secret().map_err(|e| classify(e, id))
    }

    pub fn set(id: ItemId, key: &Key32, label: &str) -> Result<(), KeyringFailure> {
        let mut cred = credential(id)?;
        cred.label = label.to_owned();
        cred.set_secret(key.secret()).map_err(|e| classify(e, id))
    }

    pub fn delete(id: ItemId) -> Result<(), KeyringFailure> {
        credential(id)?
            .delete_credential()
            .map_err(|e| classify(e, id))
    }

    /// What the Secret Service says when there is none on the bus, or no bus.
    fn classify(e: keyring::Error, id: ItemId) -> KeyringFailure {
        super::classify(e, id, |_, text| {
            [
                "ServiceUnknown",
                "NameHasNoOwner",
                "No such file or directory",
                "Connection refused",
                "Address",
            ]
            .iter()
            .any(|s| text.contains(s))
        })
    }
}

#[cfg(target_os = "macos")]
mod backend {
    //! The login keychain, through Security.framework (VAULT-7). Type-checked on Linux with
    //! `cargo check --target x86_64-apple-darwin` (docs/vault.md); not run here.

    use super::{ItemId, KeyringFailure, SERVICE};
    use crate::secret::Key32;
    use keyring::credential::CredentialApi;
    use keyring::macos::MacCredential;

    /// The user's keychain is there whenever a user is logged in; a locked one prompts.
    pub fn reachable() -> Result<(), KeyringFailure> {
        Ok(())
    }

    fn credential(id: ItemId) -> Result<MacCredential, KeyringFailure> {
        MacCredential::new_with_target(None, SERVICE, &id.user()).map_err(|e| classify(e, id))
    }

    pub fn get(id: ItemId) -> Result<Vec<u8>, KeyringFailure> {
        credential(id)?.get_secret().map_err(|e| classify(e, id))
    }

    /// The keychain item has no label of its own: Keychain Access shows the service name.
    pub fn set(id: ItemId, key: &Key32, _label: &str) -> Result<(), KeyringFailure> {
        credential(id)?
            .set_secret(key.secret())
            .map_err(|e| classify(e, id))
    }

    pub fn delete(id: ItemId) -> Result<(), KeyringFailure> {
        credential(id)?
            .delete_credential()
            .map_err(|e| classify(e, id))
    }

    /// The keychain refuses access (locked, denied) as `NoStorageAccess`.
    fn classify(e: keyring::Error, id: ItemId) -> KeyringFailure {
        super::classify(e, id, |e, _| {
            matches!(e, keyring::Error::NoStorageAccess(_))
        })
    }
}

#[cfg(not(any(target_os = "linux", target_os = "macos")))]
mod backend {
    //! No OS keyring support in this build on this platform.

    use super::{ItemId, KeyringFailure};
    use crate::secret::Key32;

    fn none() -> KeyringFailure {
        KeyringFailure::Unavailable {
            why: "this build of authdeck reaches the OS keyring on Linux and macOS only".into(),
        }
    }

    pub fn reachable() -> Result<(), KeyringFailure> {
        Err(none())
    }

    pub fn get(_id: ItemId) -> Result<Vec<u8>, KeyringFailure> {
        Err(none())
    }

    pub fn set(_id: ItemId, _key: &Key32, _label: &str) -> Result<(), KeyringFailure> {
        Err(none())
    }

    pub fn delete(_id: ItemId) -> Result<(), KeyringFailure> {
        Err(none())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vault7_item_names_are_random_and_debug_shows_only_the_name() {
        let a = ItemId::generate();
        let b = ItemId::generate();
        assert_ne!(a, b);
        assert!(a.user().starts_with("vault-") && a.user().len() == 38);
        assert_eq!(format!("{a:?}"), a.user());
    }

    #[test]
    fn vault7_failures_are_one_line_and_point_to_the_agent() {
        let f = KeyringFailure::Unavailable {
            why: "no D-Bus session: DBUS_SESSION_BUS_ADDRESS is not set".into(),
        };
        let text = f.to_string();
        assert!(text.contains("authdeck agent start"), "{text}");
        assert!(text.contains("authdeck unlock"), "{text}");
        assert!(!text.contains('\n'));
        assert_eq!(
            line("a\u{1b}[31mb\nc"),
            crate::text::sanitize("a\u{1b}[31mb\nc", 300)
        );
    }
}
