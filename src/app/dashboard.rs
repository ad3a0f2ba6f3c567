//! What the dashboard needs from `app` before an [`App`] exists: whether the vault must be
//! unlocked inside the dashboard, and the back end that asks for its passphrase and then hands
//! over to [`driver::serve`](super::driver::serve).

use super::view::{AppEvent, UiCommand};
use super::{App, AppError, Settings};
use crate::provider;
use crate::vault::{self, KeySource, Vault};
use std::path::{Path, PathBuf};
use tokio::sync::mpsc::{UnboundedReceiver, UnboundedSender};

/// True when the config directory holds at least one account file (a directory listing only:
/// `App::new` loads and validates them right after).
pub fn has_account_files(config_dir: &Path) -> bool {
    std::fs::read_dir(provider::accounts_dir(config_dir)).is_ok_and(|entries| {
        entries
            .flatten()
            .any(|e| e.path().extension().is_some_and(|x| x == "toml"))
    })
}

/// True when the vault exists, wants a passphrase, and the environment gives none.
pub fn needs_passphrase_prompt(path: &Path) -> Result<bool, AppError> {
    if !path.exists() {
        return Ok(false);
    }
    let kind = vault::FileStore::new(path, KeySource::KeyFile(PathBuf::new())).key_kind()?;
    let env = vault::KeyEnv::from_process();
    Ok(kind == Some(vault::KeyKind::Passphrase)
        && env.passphrase.is_none()
        && env.passphrase_file.is_none())
}

/// The back end of the dashboard on a locked vault: asks for the passphrase (an
/// [`AppEvent::PassphraseNeeded`] is sent first), opens the vault with each submitted one until
/// it fits, then serves as usual. Returns when the user quits or the vault cannot be used.
pub async fn serve_locked(
    config_dir: PathBuf,
    path: PathBuf,
    mut cmd_rx: UnboundedReceiver<UiCommand>,
    ev_tx: UnboundedSender<AppEvent>,
) {
    let _ = ev_tx.send(AppEvent::PassphraseNeeded { retry: false });
    while let Some(cmd) = cmd_rx.recv().await {
        let pass = match cmd {
            UiCommand::SubmitPassphrase(p) => p,
            UiCommand::Quit => return,
            _ => continue,
        };
        let p2 = path.clone();
        let opened =
            tokio::task::spawn_blocking(move || Vault::open(p2, KeySource::Passphrase(pass))).await;
        match opened {
            Ok(Ok(vault)) => match App::new(config_dir.clone(), vault, Settings::default()) {
                Ok(app) => {
                    super::driver::serve(std::sync::Arc::new(app), cmd_rx, ev_tx).await;
                    return;
                }
                Err(e) => {
                    let _ = ev_tx.send(AppEvent::Notice {
                        error: true,
                        message: e.to_string(),
                    });
                    return;
                }
            },
            Ok(Err(vault::VaultError::WrongKey { .. })) => {
                let _ = ev_tx.send(AppEvent::PassphraseNeeded { retry: true });
            }
            Ok(Err(e)) => {
                let _ = ev_tx.send(AppEvent::Notice {
                    error: true,
                    message: e.to_string(),
                });
                let _ = ev_tx.send(AppEvent::PassphraseNeeded { retry: true });
            }
            Err(_) => return,
        }
    }
}
