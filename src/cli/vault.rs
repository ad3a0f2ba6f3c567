//! `authdeck vault ...`: create the vault, change its key, show where it lives.

use crate::vault::{
    self, Backend, KeyEnv, KeySource, PromptPurpose, Vault, VaultError, generate_key_file,
    prompt_terminal, read_passphrase_file,
};
use clap::Subcommand;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// Vault administration.
#[derive(Debug, Subcommand)]
pub enum VaultCommand {
    /// Create a new, empty vault (keyed by a passphrase unless --key-file, --keyring or
    /// AUTHDECK_KEY_FILE).
    Init {
        /// Use this key file (32 random bytes, mode 0600); created if it does not exist.
        #[arg(long, value_name = "PATH", conflicts_with = "keyring")]
        key_file: Option<PathBuf>,
        /// Keep a random vault key in the OS keyring (the Secret Service on Linux): no prompt,
        /// no key file (VAULT-7).
        #[arg(long)]
        keyring: bool,
    },
    /// Re-encrypt the vault under a new passphrase, key file or OS keyring key, atomically.
    Passwd {
        /// Switch to this key file (created if it does not exist).
        #[arg(long, value_name = "PATH", conflicts_with_all = ["new_passphrase_file", "to_keyring"])]
        new_key_file: Option<PathBuf>,
        /// Read the new passphrase from the first line of this file instead of prompting.
        #[arg(long, value_name = "PATH", conflicts_with = "to_keyring")]
        new_passphrase_file: Option<PathBuf>,
        /// Switch to a new random key kept in the OS keyring (VAULT-7).
        #[arg(long)]
        to_keyring: bool,
    },
    /// Print the vault's path.
    Path,
    /// Move the vault to another backend (a file or etcd, either way), atomically: the source
    /// is moved aside only after the copy was read back and verified (docs/etcd.md).
    Migrate {
        /// Where to: a file path or `etcd://host:port,host:port/prefix`.
        #[arg(long, value_name = "TARGET")]
        to: PathBuf,
        /// Check that it can be done and say what would be copied; write nothing.
        #[arg(long)]
        dry_run: bool,
    },
}

/// Runs a vault subcommand; `vault_path` is the global `--vault` / `AUTHDECK_VAULT` (a file or
/// an `etcd://` URL), else `config.toml` in the `config` directory names the vault.
pub fn run(vault_path: Option<PathBuf>, config: Option<&Path>, cmd: VaultCommand) -> ExitCode {
    match execute(vault_path, config, cmd) {
        Ok(()) => ExitCode::from(crate::app::exit::OK),
        Err(e) => {
            eprintln!("authdeck: {e}");
            ExitCode::from(crate::app::exit::ERROR)
        }
    }
}

fn execute(
    vault_path: Option<PathBuf>,
    config: Option<&Path>,
    cmd: VaultCommand,
) -> Result<(), VaultError> {
    let config_dir =
        crate::provider::config_dir(config).map_err(|e| VaultError::Backend(e.to_string()))?;
    let backend = Backend::resolve(vault_path.as_deref(), &config_dir)?;
    match cmd {
        VaultCommand::Path => {
            println!("{}", backend.display());
            Ok(())
        }
        VaultCommand::Init { key_file, keyring } => match backend.file() {
            Some(path) => init(path, key_file, keyring),
            None if keyring => Err(shared_keyring(&backend)),
            None => init_shared(&backend, key_file),
        },
        VaultCommand::Migrate { to, dry_run } => migrate(&backend, &to, dry_run),
        VaultCommand::Passwd {
            new_key_file,
            new_passphrase_file,
            to_keyring,
        } => {
            let new_key = || {
                if to_keyring {
                    return Ok(KeySource::OsKeyring);
                }
                new_key_source(new_key_file, new_passphrase_file)
            };
            match backend.file() {
                Some(path) => passwd(path, new_key),
                None if to_keyring => Err(shared_keyring(&backend)),
                None => passwd_shared(&backend, new_key),
            }
        }
    }
}

/// VAULT-7: an OS keyring holds a key for one machine; a shared vault is opened by many.
fn shared_keyring(backend: &Backend) -> VaultError {
    VaultError::Backend(format!(
        "{} is shared by several machines, and an OS keyring keeps a key for one: use a \
         passphrase or a key file",
        backend.display()
    ))
}

/// `vault init` on a shared backend (etcd): fails if a vault is there already.
fn init_shared(backend: &Backend, key_file: Option<PathBuf>) -> Result<(), VaultError> {
    let where_ = PathBuf::from(backend.display());
    let key = match key_file {
        Some(f) => key_file_source(f)?,
        None => {
            KeyEnv::from_process().resolve(&where_, None, PromptPurpose::New, prompt_terminal)?
        }
    };
    let kind = key.kind();
    backend.create(key)?;
    println!("created vault {} (unlocked with {kind})", backend.display());
    Ok(())
}

/// `vault passwd` on a shared backend (etcd): every machine needs the new key afterwards.
fn passwd_shared(
    backend: &Backend,
    new_key: impl FnOnce() -> Result<KeySource, VaultError>,
) -> Result<(), VaultError> {
    let vault = backend.open_with(backend.key_from_env()?)?;
    let new_key = new_key()?;
    let kind = new_key.kind();
    vault.rekey(new_key)?;
    println!(
        "re-encrypted vault {} (now unlocked with {kind}; give every machine the new key)",
        backend.display()
    );
    Ok(())
}

/// The new key of `vault passwd`: a key file, a passphrase file, or the prompt.
fn new_key_source(
    new_key_file: Option<PathBuf>,
    new_passphrase_file: Option<PathBuf>,
) -> Result<KeySource, VaultError> {
    Ok(match (new_key_file, new_passphrase_file) {
        (Some(f), _) => key_file_source(f)?,
        (None, Some(f)) => KeySource::Passphrase(read_passphrase_file(&f)?),
        (None, None) => KeySource::Passphrase(prompt_terminal(PromptPurpose::New)?),
    })
}

/// `vault migrate`: from the vault `--vault` / `config.toml` name (`from`), to `to`.
fn migrate(from: &Backend, to: &Path, dry_run: bool) -> Result<(), VaultError> {
    let to = Backend::from_arg(to)?;
    let key = from.key_from_env()?;
    let done = vault::migrate::migrate(from, &to, key, dry_run)?;
    let (from, to) = (from.display(), to.display());
    let n = done.accounts;
    match done.moved_to {
        None => println!(
            "would migrate {n} account(s) (generation {}) from {from} to {to}; nothing was written",
            done.generation
        ),
        Some(aside) => {
            println!("migrated {n} account(s) from {from} to {to}; the old vault is now {aside}");
            println!(
                "point every machine at the new vault: --vault {to}, or [vault] in config.toml \
                 (docs/etcd.md)"
            );
        }
    }
    Ok(())
}

/// Uses `path` as a key file, creating one of 32 random bytes if it does not exist yet.
fn key_file_source(path: PathBuf) -> Result<KeySource, VaultError> {
    if !path.exists() {
        generate_key_file(&path)?;
        eprintln!(
            "created key file {} (keep it safe: without it the vault cannot be opened)",
            path.display()
        );
    }
    Ok(KeySource::KeyFile(path))
}

fn init(path: &Path, key_file: Option<PathBuf>, keyring: bool) -> Result<(), VaultError> {
    if path.exists() {
        return Err(VaultError::AlreadyExists {
            path: path.to_path_buf(),
        });
    }
    let key = match key_file {
        Some(f) => key_file_source(f)?,
        None if keyring => KeySource::OsKeyring,
        None => KeyEnv::from_process().resolve(path, None, PromptPurpose::New, prompt_terminal)?,
    };
    let kind = key.kind();
    Vault::create(path, key)?;
    println!("created vault {} (unlocked with {kind})", path.display());
    Ok(())
}

fn passwd(
    path: &Path,
    new_key: impl FnOnce() -> Result<KeySource, VaultError>,
) -> Result<(), VaultError> {
    if !path.exists() {
        return Err(VaultError::NotFound {
            path: path.to_path_buf(),
        });
    }
    let vault = Vault::open_from_env(path)?;
    super::warn_rollback(&vault);
    let new_key = new_key()?;
    let kind = new_key.kind();
    vault.rekey(new_key)?;
    println!(
        "re-encrypted vault {} (now unlocked with {kind})",
        path.display()
    );
    Ok(())
}
