//! The command line: argument parsing, output formats and exit codes. A thin face on `app`.

pub mod providers;
pub mod proxy;
pub mod vault;

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
#[derive(Debug, Parser)]
#[command(name = "authdeck", version, about, long_about = None)]
pub struct Cli {
    /// Configuration directory (holds providers/NAME.toml account files); for `proxy`, its TOML file.
    #[arg(long, global = true, env = "AUTHDECK_CONFIG_DIR", value_name = "DIR")]
    pub config: Option<PathBuf>,

    /// The token vault file (default: the vault in the data directory; see `vault path`).
    #[arg(long, global = true, env = "AUTHDECK_VAULT", value_name = "PATH")]
    pub vault: Option<PathBuf>,

    #[command(subcommand)]
    pub command: Option<Command>,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// List bundled provider templates and your accounts, or check account files.
    Providers(providers::ProvidersArgs),
    /// Run the token exchange proxy (holds client secrets for front ends); see docs/proxy.md.
    ///
    /// The global `--config` names the proxy's TOML file here.
    Proxy(proxy::ProxyArgs),
    /// Manage the encrypted token vault.
    Vault {
        /// What to do.
        #[command(subcommand)]
        command: vault::VaultCommand,
    },
}

/// Parses the arguments and runs the command; the single place that turns errors into messages.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        None => {
            use clap::CommandFactory;
            let _ = Cli::command().print_help();
            ExitCode::from(exit::OK)
        }
        Some(Command::Providers(args)) => {
            ExitCode::from(providers::run(&args, cli.config.as_deref()))
        }
        Some(Command::Proxy(args)) => proxy::run(cli.config.as_deref(), &args),
        Some(Command::Vault { command }) => vault::run(cli.vault, command),
    }
}
