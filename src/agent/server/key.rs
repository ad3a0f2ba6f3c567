//! The key the agent holds: opening the vault at start, unlocking with a passphrase
//! (AGENT-6, AGENT-7) or the OS keyring, locking, and the app that exists only while unlocked.

use super::requests::failure_of;
use super::{ConfigStamps, Holder, Shared, Unlocked};
use crate::agent::harden;
use crate::agent::protocol::{self, ErrorCode, Failure, KeyState, Response};
use crate::app::{App, AppError};
use crate::secret::Passphrase;
use crate::vault::etcd::EtcdStore;
use crate::vault::{self, FileStore, KeyKind, KeySource, Store, Vault, VaultError};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The longest delay after wrong passphrases (AGENT-7).
const MAX_UNLOCK_DELAY: Duration = Duration::from_secs(30);

/// The served vault's store before a key is known: its header says which key it wants, and a
/// passphrase is checked against it. A file, or a key on etcd (docs/etcd.md).
enum Keyless {
    File(Box<FileStore>),
    Etcd(Arc<EtcdStore>),
}

impl Keyless {
    fn key_kind(&self) -> Result<Option<KeyKind>, VaultError> {
        match self {
            Keyless::File(f) => f.key_kind(),
            Keyless::Etcd(e) => e.key_kind(),
        }
    }

    fn derive_key(&self, pass: &Passphrase) -> Result<vault::DerivedKey, VaultError> {
        match self {
            Keyless::File(f) => f.derive_key(pass),
            Keyless::Etcd(e) => e.derive_key(pass),
        }
    }
}

fn locked_failure() -> Failure {
    Failure::new(ErrorCode::Locked, protocol::LOCKED_MESSAGE)
}

impl Shared {
    /// The served vault's store with no key (see [`Keyless`]).
    fn keyless(&self) -> Result<Keyless, VaultError> {
        let none = KeySource::KeyFile(PathBuf::new());
        Ok(match &self.cfg.etcd {
            Some(cfg) => {
                if let Some(store) = self.etcd_keyless.get() {
                    return Ok(Keyless::Etcd(store.clone()));
                }
                let store = Arc::new(EtcdStore::new((**cfg).clone(), none)?);
                Keyless::Etcd(self.etcd_keyless.get_or_init(|| store).clone())
            }
            None => Keyless::File(Box::new(FileStore::new(&self.cfg.vault, none))),
        })
    }

    /// Whether the served vault exists (a login may create it after the agent started).
    fn vault_exists(&self) -> bool {
        match &self.cfg.etcd {
            Some(_) => self
                .keyless()
                .and_then(|k| k.key_kind())
                .is_ok_and(|k| k.is_some()),
            None => self.cfg.vault.exists(),
        }
    }

    pub(super) fn touch(&self) {
        if let Ok(mut t) = self.last_used.lock() {
            *t = Instant::now();
        }
    }

    pub(super) fn lockable(&self) -> bool {
        matches!(&*self.holder(), Holder::Unlocked(u) if u.kind.needs_passphrase())
    }

    pub(super) fn holder(&self) -> std::sync::MutexGuard<'_, Holder> {
        self.holder
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// AGENT-6: drops the app (its snapshot of records, the scheduler) and with it the last
    /// copy of the key, which zeroizes itself.
    pub(super) fn lock_now(&self, why: &str) {
        let old = {
            let mut h = self.holder();
            if !matches!(&*h, Holder::Unlocked(_)) {
                return;
            }
            std::mem::replace(&mut *h, Holder::Locked)
        };
        drop(old);
        tracing::info!(reason = why, "locked: the vault key was forgotten");
    }

    /// The app, after checking that the vault still exists and is what the holder thinks.
    pub(super) fn app(&self) -> Result<Arc<App>, Failure> {
        self.refresh_holder();
        match &*self.holder() {
            Holder::Unlocked(u) => Ok(u.app.clone()),
            Holder::Locked => Err(locked_failure()),
            Holder::NoVault => Err(Failure::new(
                ErrorCode::Error,
                format!(
                    "no vault at {} yet (log in to an account first)",
                    self.cfg.vault.display()
                ),
            )),
        }
    }

    /// A vault created after the agent started (by a login) makes a `NoVault` agent `Locked`,
    /// or unlocked with its key file.
    pub(super) fn refresh_holder(&self) {
        let no_vault = matches!(&*self.holder(), Holder::NoVault);
        if no_vault && self.vault_exists() {
            self.open_with_env(false);
        }
    }

    /// At start: a key file, or a passphrase in the agent's own environment, unlocks at once.
    pub(super) async fn open_at_start(self: &Arc<Self>) {
        let s = self.clone();
        let _ = tokio::task::spawn_blocking(move || s.open_with_env(true)).await;
        tracing::info!(
            socket = %self.cfg.socket.path.display(),
            vault = %self.cfg.vault.display(),
            state = self.key_state().word(),
            non_dumpable = !harden::is_dumpable(),
            "agent listening"
        );
    }

    pub(super) fn key_state(&self) -> KeyState {
        match &*self.holder() {
            Holder::NoVault => KeyState::NoVault,
            Holder::Locked => KeyState::Locked,
            Holder::Unlocked(_) => KeyState::Unlocked,
        }
    }

    pub(super) fn open_with_env(&self, at_start: bool) {
        let store = match self.keyless() {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(error = %e, "cannot reach the vault");
                *self.holder() = Holder::Locked;
                return;
            }
        };
        let kind = match store.key_kind() {
            Ok(Some(kind)) => kind,
            Ok(None) => return,
            Err(e) => {
                tracing::warn!(error = %e, "cannot read the vault header");
                *self.holder() = Holder::Locked;
                return;
            }
        };
        let env = &self.cfg.key_env;
        let source = match kind {
            KeyKind::KeyFile => env.key_file.clone().map(KeySource::KeyFile),
            KeyKind::Passphrase if at_start => env
                .passphrase
                .clone()
                .or_else(|| {
                    env.passphrase_file
                        .as_deref()
                        .and_then(|f| vault::read_passphrase_file(f).ok())
                })
                .and_then(|p| store.derive_key(&p).ok())
                .map(KeySource::Derived),
            KeyKind::Passphrase => None,
            // VAULT-7: the key is in the OS keyring; no unlock needed.
            KeyKind::OsKeyring => Some(KeySource::OsKeyring),
        };
        let Some(source) = source else {
            if kind == KeyKind::KeyFile {
                tracing::warn!(
                    "the vault uses a key file: start the agent with AUTHDECK_KEY_FILE set"
                );
            }
            *self.holder() = Holder::Locked;
            return;
        };
        match self.install(source) {
            Ok(()) => tracing::info!("unlocked at start"),
            Err(e) => {
                tracing::warn!(error = %e, "cannot open the vault");
                *self.holder() = Holder::Locked;
            }
        }
    }

    /// Opens the vault with `source` and starts the scheduler on it.
    pub(super) fn install(&self, source: KeySource) -> Result<(), AppError> {
        let kind = source.kind();
        let memory_locked = match &source {
            KeySource::Derived(d) => d.is_memory_locked(),
            _ => false,
        };
        let vault = match &self.cfg.etcd {
            Some(cfg) => Vault::open_store(Box::new(EtcdStore::new((**cfg).clone(), source)?))?,
            None => Vault::open(&self.cfg.vault, source)?,
        };
        let stamps = ConfigStamps::take(&self.cfg.config_dir);
        let app = Arc::new(App::new(
            self.cfg.config_dir.clone(),
            vault,
            self.cfg.settings.clone(),
        )?);
        let commands = self.start_scheduler(&app);
        *self.holder() = Holder::Unlocked(Box::new(Unlocked {
            app,
            kind,
            memory_locked,
            commands,
            stamps,
        }));
        self.touch();
        Ok(())
    }

    /// The kind of key the vault's header asks for (a passphrase when it cannot be read).
    pub(super) fn header_kind(&self) -> KeyKind {
        self.keyless()
            .and_then(|k| k.key_kind())
            .ok()
            .flatten()
            .unwrap_or(KeyKind::Passphrase)
    }

    /// AGENT-6, AGENT-7: derive, check, keep only the key. One attempt at a time; each wrong
    /// passphrase doubles the wait before the answer, and changes nothing else.
    pub(super) async fn unlock(
        self: &Arc<Self>,
        passphrase: Passphrase,
    ) -> Result<Response, Failure> {
        let mut failures = self.unlock_gate.lock().await;
        self.refresh_holder();
        match &*self.holder() {
            Holder::Unlocked(_) => {
                let mut r = Response::ok();
                r.agent = Some(self.info());
                return Ok(r);
            }
            Holder::NoVault => {
                return Err(Failure::new(
                    ErrorCode::Error,
                    format!(
                        "no vault at {} yet (log in to an account first)",
                        self.cfg.vault.display()
                    ),
                ));
            }
            Holder::Locked => {}
        }
        if self.header_kind() == KeyKind::OsKeyring {
            // VAULT-7: the keyring did not answer at start; ask it again (no passphrase).
            let s = self.clone();
            tokio::task::spawn_blocking(move || s.install(KeySource::OsKeyring))
                .await
                .map_err(|_| Failure::new(ErrorCode::Error, "the unlock task failed"))?
                .map_err(|e| failure_of(&e))?;
            tracing::info!("unlocked from the OS keyring");
            let mut r = Response::ok();
            r.agent = Some(self.info());
            return Ok(r);
        }
        let s = self.clone();
        let derived = tokio::task::spawn_blocking(move || {
            s.keyless().and_then(|k| k.derive_key(&passphrase))
        })
        .await
        .map_err(|_| Failure::new(ErrorCode::Error, "the key derivation task failed"))?;
        match derived {
            Ok(key) => {
                let s = self.clone();
                // Opening decrypts the vault: blocking work, off the reactor.
                let installed =
                    tokio::task::spawn_blocking(move || s.install(KeySource::Derived(key)))
                        .await
                        .map_err(|_| Failure::new(ErrorCode::Error, "the unlock task failed"))?;
                installed.map_err(|e| failure_of(&e))?;
                *failures = 0;
                tracing::info!("unlocked");
                let mut r = Response::ok();
                r.agent = Some(self.info());
                Ok(r)
            }
            Err(VaultError::WrongKey { .. }) => {
                *failures = failures.saturating_add(1);
                let delay = unlock_delay(self.cfg.unlock_delay, *failures);
                tracing::warn!(
                    attempts = *failures,
                    delay_ms = u64::try_from(delay.as_millis()).unwrap_or(u64::MAX),
                    "wrong passphrase"
                );
                tokio::time::sleep(delay).await;
                Err(Failure::new(
                    ErrorCode::WrongPassphrase,
                    "wrong passphrase: the agent stays locked",
                ))
            }
            Err(e) => Err(Failure::new(ErrorCode::Error, e.to_string())),
        }
    }
}

/// AGENT-7: `base` after the first wrong passphrase, doubling with each one after, at most
/// `MAX_UNLOCK_DELAY`.
pub fn unlock_delay(base: Duration, failures: u32) -> Duration {
    let factor = 1u32 << failures.saturating_sub(1).min(16);
    base.saturating_mul(factor).min(MAX_UNLOCK_DELAY)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn agent7_delay_doubles_and_is_capped() {
        let base = Duration::from_millis(500);
        assert_eq!(unlock_delay(base, 1), Duration::from_millis(500));
        assert_eq!(unlock_delay(base, 2), Duration::from_secs(1));
        assert_eq!(unlock_delay(base, 3), Duration::from_secs(2));
        assert_eq!(unlock_delay(base, 10), MAX_UNLOCK_DELAY);
        assert_eq!(unlock_delay(base, u32::MAX), MAX_UNLOCK_DELAY);
    }
}
