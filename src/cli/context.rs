//! What every account command shares: where the config and the vault are, opening the app,
//! the async runtimes, and printing an error with its exit code.

use crate::app::{App, AppError, Settings};
use crate::provider;
use crate::vault::{self, Snapshot, Vault};
use std::path::PathBuf;

/// Where the config and the vault are.
#[derive(Debug, Clone, Default)]
pub struct Locations {
    /// `--config` / `AUTHDECK_CONFIG_DIR`.
    pub config: Option<PathBuf>,
    /// `--vault` / `AUTHDECK_VAULT`.
    pub vault: Option<PathBuf>,
}

/// Opens the app. A missing vault is not created (and no key is asked for) unless `create`.
pub fn open_app(loc: &Locations, create: bool) -> Result<App, AppError> {
    let (config_dir, vault) = open_parts(loc, create)?;
    App::new(config_dir, vault, Settings::default())
}

/// The configuration directory and the opened vault (see [`open_app`]): the backend is chosen
/// by `--vault`, else `config.toml`, else the default file (`vault::Backend`).
pub(super) fn open_parts(loc: &Locations, create: bool) -> Result<(PathBuf, Vault), AppError> {
    let config_dir =
        provider::config_dir(loc.config.as_deref()).map_err(|e| AppError::Config(e.to_string()))?;
    let vault = vault::Backend::resolve(loc.vault.as_deref(), &config_dir)?.open(create)?;
    super::warn_rollback(&vault);
    Ok((config_dir, vault))
}

/// Prints `err` as one `authdeck: …` line on stderr and returns its exit code (from
/// [`AppError::kind`]). The text itself is the error's `Display`, the same words the dashboard
/// shows in its refresh log and notices; commands that go on after a failure (`--export`,
/// `refresh`) print per-account lines themselves.
pub fn report(err: &AppError) -> u8 {
    eprintln!("authdeck: {err}");
    err.exit_code()
}

pub(super) fn runtime() -> Result<tokio::runtime::Runtime, AppError> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|source| AppError::Io {
            what: "cannot start the async runtime".into(),
            source,
        })
}

pub(super) fn run(f: impl FnOnce(&tokio::runtime::Runtime) -> Result<u8, AppError>) -> u8 {
    match runtime().and_then(|rt| f(&rt)) {
        Ok(code) => code,
        Err(e) => report(&e),
    }
}

/// A current-thread runtime: enough for `token` and `--export`, which make at most a few
/// sequential requests, and it starts no worker threads (the `--export` budget in
/// docs/benchmarks.md).
pub(super) fn light_runtime() -> Result<tokio::runtime::Runtime, AppError> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|source| AppError::Io {
            what: "cannot start the async runtime".into(),
            source,
        })
}

/// Accounts with tokens in `snap` and a file, valid or not (a broken one is then named with
/// its problem rather than skipped without a word), in name order.
pub(super) fn logged_in(app: &App, snap: &Snapshot) -> Vec<String> {
    snap.records
        .iter()
        .filter(|(name, r)| {
            r.access_token.is_some()
                && !matches!(app.account(name), Err(AppError::UnknownAccount(_)))
        })
        .map(|(name, _)| name.clone())
        .collect()
}

/// EXP-3: once per login or refresh that got a token of unknown lifetime (never on `token`).
pub(super) fn warn_unknown_expiry(name: &str, expires_at: Option<i64>) {
    if let Some(w) = crate::app::unknown_expiry_warning(name, expires_at) {
        eprintln!("authdeck: warning: {w}");
    }
}
