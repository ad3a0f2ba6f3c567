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
    /// Create a new, empty vault (keyed by a passphrase unless --key-file or AUTHDECK_KEY_FILE).
    Init {
        /// Use this key file (32 random bytes, mode 0600); created if it does not exist.
        #[arg(long, value_name = "PATH")]
        key_file: Option<PathBuf>,
    },
    /// Re-encrypt the vault under a new passphrase or key file, atomically.
    Passwd {
        /// Switch to this key file (created if it does not exist).
        #[arg(long, value_name = "PATH", conflicts_with = "new_passphrase_file")]
        new_key_file: Option<PathBuf>,
        /// Read the new passphrase from the first line of this file instead of prompting.
        #[arg(long, value_name = "PATH")]
        new_passphrase_file: Option<PathBuf>,
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

/// Runs a vault subcommand; `vault_path` is the global `--vault` / `AUTHDECK_VAULT`.
pub fn run(vault_path: Option<PathBuf>, config: Option<&Path>, cmd: VaultCommand) -> ExitCode {
    let result = match cmd {
        VaultCommand::Migrate { to, dry_run } => migrate(vault_path, config, &to, dry_run),
        cmd => execute(vault_path, cmd),
    };
    match result {
        Ok(()) => ExitCode::from(crate::app::exit::OK),
        Err(e) => {
            eprintln!("authdeck: {e}");
            ExitCode::from(crate::app::exit::ERROR)
        }
    }
}

fn execute(vault_path: Option<PathBuf>, cmd: VaultCommand) -> Result<(), VaultError> {
    let path = match vault_path {
        Some(p) => p,
        None => vault::default_path()?,
    };
    match cmd {
        VaultCommand::Path => {
            println!("{}", path.display());
            Ok(())
        }
        VaultCommand::Init { key_file } => init(&path, key_file),
        // `run` sends it to `migrate`, which also needs the config directory.
        VaultCommand::Migrate { .. } => Ok(()),
        VaultCommand::Passwd {
            new_key_file,
            new_passphrase_file,
        } => passwd(&path, new_key_file, new_passphrase_file),
    }
}

/// `vault migrate`: from the vault `--vault` / `config.toml` name, to `to`.
fn migrate(
    vault_path: Option<PathBuf>,
    config: Option<&Path>,
    to: &Path,
    dry_run: bool,
) -> Result<(), VaultError> {
    let config_dir =
        crate::provider::config_dir(config).map_err(|e| VaultError::Backend(e.to_string()))?;
    let from = Backend::resolve(vault_path.as_deref(), &config_dir)?;
    let to = Backend::from_arg(to)?;
    let key = from.key_from_env()?;
    let done = vault::migrate::migrate(&from, &to, key, dry_run)?;
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

fn init(path: &Path, key_file: Option<PathBuf>) -> Result<(), VaultError> {
    if path.exists() {
        return Err(VaultError::AlreadyExists {
            path: path.to_path_buf(),
        });
    }
    let key = match key_file {
        Some(f) => key_file_source(f)?,
        None => KeyEnv::from_process().resolve(path, None, PromptPurpose::New, prompt_terminal)?,
    };
    let kind = key.kind();
    Vault::create(path, key)?;
    println!("created vault {} (unlocked with {kind})", path.display());
    Ok(())
}

fn passwd(
    path: &Path,
    new_key_file: Option<PathBuf>,
    new_passphrase_file: Option<PathBuf>,
) -> Result<(), VaultError> {
    if !path.exists() {
        return Err(VaultError::NotFound {
            path: path.to_path_buf(),
        });
    }
    let vault = Vault::open_from_env(path)?;
    super::warn_rollback(&vault);
    let new_key = match (new_key_file, new_passphrase_file) {
        (Some(f), _) => key_file_source(f)?,
        (None, Some(f)) => KeySource::Passphrase(read_passphrase_file(&f)?),
        (None, None) => KeySource::Passphrase(prompt_terminal(PromptPurpose::New)?),
    };
    let kind = new_key.kind();
    vault.rekey(new_key)?;
    println!(
        "re-encrypted vault {} (now unlocked with {kind})",
        path.display()
    );
    Ok(())
}
