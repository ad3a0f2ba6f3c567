//! The command line: argument parsing, output formats and exit codes. A thin face on `app`.

pub mod accounts;
pub mod providers;
pub mod proxy;
pub mod vault;

use crate::app::export::ExportFormat;
use accounts::Locations;
use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;

/// Exit codes, documented in the README.
pub mod exit {
    /// Success.
    pub const OK: u8 = 0;
    /// An error.
    pub const ERROR: u8 = 1;
    /// Bad usage (clap's own code).
    pub const USAGE: u8 = 2;
    /// The account needs a (new) login.
    pub const NEEDS_LOGIN: u8 = 3;
    /// Some accounts failed, the others succeeded.
    pub const PARTIAL: u8 = 4;
}

/// authdeck: every OAuth 2.0 / OpenID Connect token you hold, in one place.
///
/// With no command it opens the dashboard.
#[derive(Debug, Parser)]
#[command(name = "authdeck", version, about, long_about = None)]
pub struct Cli {
    /// Configuration directory (holds providers/NAME.toml account files); for `proxy`, its TOML file.
    #[arg(long, global = true, env = "AUTHDECK_CONFIG_DIR", value_name = "DIR")]
    pub config: Option<PathBuf>,

    /// The token vault file (default: the vault in the data directory; see `vault path`).
    #[arg(long, global = true, env = "AUTHDECK_VAULT", value_name = "PATH")]
    pub vault: Option<PathBuf>,

    /// Print `export NAME='token'` lines for every logged-in account (or those named),
    /// refreshing what is due: `eval "$(authdeck --export)"`.
    #[arg(long, num_args = 0.., value_name = "NAME")]
    pub export: Option<Vec<String>>,

    /// Output format of --export.
    #[arg(long, value_enum, default_value_t = ExportFormat::Sh, requires = "export")]
    pub format: ExportFormat,

    #[command(subcommand)]
    pub command: Option<Command>,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Log in to an account: browser, VPS paste mode, or the device grant.
    Login(accounts::LoginArgs),
    /// Print one valid access token (refreshed first when due) and nothing else.
    Token {
        /// The account.
        name: String,
    },
    /// Show every account: state, expiry, identity, scopes, last refresh.
    Status {
        /// Machine-readable output.
        #[arg(long)]
        json: bool,
    },
    /// Refresh accounts now, due or not.
    Refresh(accounts::RefreshArgs),
    /// Revoke an account's tokens at the provider, then forget them locally.
    Revoke {
        /// The account.
        name: String,
    },
    /// Forget an account's tokens locally (they stay valid at the provider).
    Logout {
        /// The account.
        name: String,
    },
    /// Send an authenticated HTTP request; on 401 refresh once and retry.
    Request(accounts::RequestArgs),
    /// Run a command with the accounts' tokens in its environment (never in argv).
    Exec {
        /// Accounts whose tokens to pass.
        #[arg(required = true)]
        names: Vec<String>,
        /// The command and its arguments, after `--`.
        #[arg(last = true, required = true)]
        command: Vec<String>,
    },
    /// The dashboard against an embedded local authorization server: no account needed.
    Demo,
    /// List bundled provider templates and your accounts, or check account files.
    Providers(providers::ProvidersArgs),
    /// Run the token exchange proxy (holds client secrets for front ends); see docs/proxy.md.
    ///
    /// The global `--config` names the proxy's TOML file here (or a directory with proxy.toml).
    Proxy(proxy::ProxyArgs),
    /// Manage the encrypted token vault.
    Vault {
        /// What to do.
        #[command(subcommand)]
        command: vault::VaultCommand,
    },
}

/// Warns on stderr when the vault looks rolled back to an older copy (HARD-8). A check that
/// cannot run (an unreadable backup, say) says nothing: the vault itself opened fine.
pub fn warn_rollback(vault: &crate::vault::Vault) {
    if let Ok(Some(rollback)) = vault.rollback() {
        eprintln!("authdeck: warning: {rollback}");
    }
}

/// Parses the arguments and runs the command.
pub fn main() -> ExitCode {
    // HARD-1: before anything holds a secret.
    if let Err(e) = crate::process::harden() {
        eprintln!("authdeck: warning: cannot make the process non-dumpable: {e}");
    }
    let cli = Cli::parse();
    let loc = Locations {
        config: cli.config.clone(),
        vault: cli.vault.clone(),
    };
    if cli.export.is_some() && cli.command.is_some() {
        use clap::CommandFactory;
        Cli::command()
            .error(
                clap::error::ErrorKind::ArgumentConflict,
                "--export cannot be combined with a command",
            )
            .exit();
    }
    if let Some(names) = &cli.export {
        return ExitCode::from(accounts::export(&loc, names, cli.format));
    }
    let code = match cli.command {
        None => accounts::dashboard(&loc),
        Some(Command::Login(args)) => accounts::login(&loc, &args),
        Some(Command::Token { name }) => accounts::token(&loc, &name),
        Some(Command::Status { json }) => accounts::status(&loc, json),
        Some(Command::Refresh(args)) => accounts::refresh(&loc, &args),
        Some(Command::Revoke { name }) => accounts::revoke(&loc, &name),
        Some(Command::Logout { name }) => accounts::logout(&loc, &name),
        Some(Command::Request(args)) => accounts::request(&loc, &args),
        Some(Command::Exec { names, command }) => accounts::exec(&loc, &names, &command),
        Some(Command::Demo) => accounts::demo(),
        Some(Command::Providers(args)) => providers::run(&args, cli.config.as_deref()),
        Some(Command::Vault { command }) => return vault::run(cli.vault, command),
        Some(Command::Proxy(args)) => return proxy::run(cli.config.as_deref(), &args),
    };
    ExitCode::from(code)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn clap_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn export_takes_names_and_a_format() {
        let cli =
            Cli::try_parse_from(["authdeck", "--export", "a", "b", "--format", "fish"]).unwrap();
        assert_eq!(cli.export, Some(vec!["a".to_string(), "b".to_string()]));
        assert_eq!(cli.format, ExportFormat::Fish);
        let cli = Cli::try_parse_from(["authdeck", "--export"]).unwrap();
        assert_eq!(cli.export, Some(vec![]));
    }
}
