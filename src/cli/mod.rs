//! The command line: argument parsing, output formats and exit codes. A thin face on `app`.

pub mod agent;
pub mod attach;
pub mod completions;
pub mod context;
pub mod dashboard;
pub mod exec;
pub mod export;
mod fast;
pub mod gitcred;
pub mod kube;
pub mod login;
pub mod providers;
pub mod proxy;
pub mod refresh;
pub mod request;
pub mod revoke;
pub mod status;
pub mod token;
pub mod token_opts;
pub mod vault;

use crate::app::export::ExportFormat;
use clap::{Parser, Subcommand};
use context::Locations;
use std::path::PathBuf;
use std::process::ExitCode;

/// The exit codes live in `app` (an `AppError` knows its own); re-exported for the commands.
pub use crate::app::exit;

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

    /// The same as the `export` command: `eval "$(authdeck --export)"`. Takes the names and
    /// `--format` in any order.
    #[arg(long, num_args = 0.., value_name = "NAME", add = completions::accounts())]
    pub export: Option<Vec<String>>,

    /// The command; none opens the dashboard.
    #[command(subcommand)]
    pub command: Option<Command>,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Log in to an account: browser, VPS paste mode, or the device grant.
    Login(login::LoginArgs),
    /// Print one valid access token (refreshed first when due) and nothing else.
    Token(token_opts::TokenArgs),
    /// Print `export NAME='token'` lines for every logged-in account (or those named),
    /// refreshing what is due: `eval "$(authdeck export)"`.
    Export(ExportArgs),
    /// Show every account: state, expiry, identity, scopes, last refresh.
    Status {
        /// Machine-readable output.
        #[arg(long)]
        json: bool,
    },
    /// Refresh accounts now, due or not.
    Refresh(refresh::RefreshArgs),
    /// Revoke an account's tokens at the provider, then forget them locally.
    Revoke {
        /// The account.
        #[arg(add = completions::accounts())]
        name: String,
    },
    /// Forget an account's tokens locally (they stay valid at the provider).
    Logout {
        /// The account.
        #[arg(add = completions::accounts())]
        name: String,
    },
    /// Send an authenticated HTTP request; on 401 refresh once and retry.
    Request(request::RequestArgs),
    /// Run a command with the accounts' tokens in its environment (never in argv).
    Exec {
        /// Accounts whose tokens to pass.
        #[arg(required = true, add = completions::accounts())]
        names: Vec<String>,
        /// Another scope, resource or audience than each account's own.
        #[command(flatten)]
        narrow: token_opts::NarrowArgs,
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
    /// The agent: unlock once, tokens for every command over a socket, background refresh.
    Agent(agent::AgentArgs),
    /// Unlock the agent: the passphrase from the terminal or AUTHDECK_PASSPHRASE(_FILE).
    Unlock,
    /// Lock the agent: it forgets the vault key until the next `authdeck unlock`.
    Lock,
    /// Manage the encrypted token vault.
    Vault {
        /// What to do.
        #[command(subcommand)]
        command: vault::VaultCommand,
    },
    /// git's credential helper: `git config credential.helper '!authdeck git-credential'`.
    ///
    /// The account is the one whose `git_urls` match the remote best; no match prints nothing,
    /// so git asks its next helper.
    GitCredential(gitcred::GitCredentialArgs),
    /// kubectl's exec credential plugin: prints an ExecCredential with a fresh token.
    KubeCredential(kube::KubeCredentialArgs),
    /// Print the completion script for a shell (account names complete from the config dir).
    Completions {
        /// The shell.
        #[arg(value_enum)]
        shell: completions::Shell,
    },
    /// Print the man page, or write one page per command into a directory.
    Man {
        /// Write `authdeck.1`, `authdeck-login.1`, … here instead of printing.
        #[arg(long, value_name = "DIR")]
        dir: Option<PathBuf>,
    },
}

/// `authdeck export [NAME...] [--format sh|fish|powershell|dotenv|json]`.
#[derive(Debug, Clone, clap::Args)]
pub struct ExportArgs {
    /// Accounts to export (default: every logged-in account).
    #[arg(value_name = "NAME", add = completions::accounts())]
    pub names: Vec<String>,
    /// Output format.
    #[arg(long, value_enum, default_value_t = ExportFormat::Sh)]
    pub format: ExportFormat,
    /// Another scope, resource or audience than each account's own.
    #[command(flatten)]
    pub narrow: token_opts::NarrowArgs,
}

/// The clap definition, for completion and the man page.
pub fn command() -> clap::Command {
    use clap::CommandFactory;
    Cli::command()
}

/// `--export` anywhere before the command words becomes the `export` command, so that
/// `authdeck --export --format json work` means `authdeck export --format json work`: the
/// names and `--format` may come in any order. Only the words before the first command word
/// are looked at, and the values of `--config`, `--vault` and `--format` are skipped.
pub fn rewrite_export_flag(args: Vec<std::ffi::OsString>) -> Vec<std::ffi::OsString> {
    let mut skip_value = false;
    let mut found = None;
    for (i, a) in args.iter().enumerate().skip(1) {
        if skip_value {
            skip_value = false;
            continue;
        }
        let Some(a) = a.to_str() else { continue };
        match a {
            "--" => break,
            "--config" | "--vault" | "--format" => skip_value = true,
            // A command word: `--export` after it belongs to that command (and is an error).
            _ if !a.starts_with('-') => break,
            "--export" => {
                found = Some((i, None));
                break;
            }
            _ if a.starts_with("--export=") => {
                found = Some((i, Some(a["--export=".len()..].to_owned())));
                break;
            }
            _ => {}
        }
    }
    let Some((i, inline)) = found else {
        return args;
    };
    let mut out = Vec::with_capacity(args.len() + 1);
    out.extend(args[..1].iter().cloned());
    out.push("export".into());
    out.extend(args[1..i].iter().cloned());
    out.extend(inline.map(Into::into));
    out.extend(args[i + 1..].iter().cloned());
    out
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
    completions::answer_if_asked();
    let args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    // The lines scripts run most, without building clap's whole definition (same reading).
    if let Some((command, loc)) = fast::recognise(&args) {
        return ExitCode::from(fast::run(command, &loc));
    }
    let cli = Cli::parse_from(rewrite_export_flag(args));
    let loc = Locations {
        config: cli.config.clone(),
        vault: cli.vault.clone(),
    };
    let code = match cli.command {
        None => dashboard::dashboard(&loc),
        Some(Command::Login(args)) => login::login(&loc, &args),
        Some(Command::Token(args)) if args.is_plain() => token::token(&loc, &args.name),
        Some(Command::Token(args)) => token_opts::run(&loc, &args),
        Some(Command::Export(args)) if args.narrow.request().is_empty() => {
            export::export(&loc, &args.names, args.format)
        }
        Some(Command::Export(args)) => {
            token_opts::export_narrowed(&loc, &args.names, args.format, &args.narrow)
        }
        Some(Command::Status { json }) => status::status(&loc, json),
        Some(Command::Refresh(args)) => refresh::refresh(&loc, &args),
        Some(Command::Revoke { name }) => revoke::revoke(&loc, &name),
        Some(Command::Logout { name }) => revoke::logout(&loc, &name),
        Some(Command::Request(args)) => request::request(&loc, &args),
        Some(Command::Exec {
            names,
            narrow,
            command,
        }) => exec::exec(&loc, &names, &narrow.request(), &command),
        Some(Command::Demo) => dashboard::demo(),
        Some(Command::Providers(args)) => providers::run(&args, cli.config.as_deref()),
        Some(Command::Agent(args)) => agent::run(&loc, &args),
        Some(Command::Unlock) => agent::unlock(),
        Some(Command::Lock) => agent::lock(),
        Some(Command::Vault { command }) => {
            return vault::run(cli.vault, cli.config.as_deref(), command);
        }
        Some(Command::Proxy(args)) => return proxy::run(cli.config.as_deref(), &args),
        Some(Command::GitCredential(args)) => gitcred::run(&loc, &args),
        Some(Command::KubeCredential(args)) => kube::run(&loc, &args),
        Some(Command::Completions { shell }) => completions::print_script(shell),
        Some(Command::Man { dir }) => completions::man(dir.as_deref()),
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

    fn parse(args: &[&str]) -> Cli {
        let args = args.iter().map(std::ffi::OsString::from).collect();
        let args = rewrite_export_flag(args);
        Cli::try_parse_from(&args).unwrap_or_else(|e| panic!("{args:?}: {e}"))
    }

    fn export_args(cli: Cli) -> (Vec<String>, ExportFormat) {
        match cli.command {
            Some(Command::Export(a)) => (a.names, a.format),
            other => panic!("not export: {other:?}"),
        }
    }

    #[test]
    fn export_flag_takes_names_and_a_format_in_any_order() {
        let ab = vec!["a".to_string(), "b".to_string()];
        for args in [
            &["authdeck", "--export", "a", "b", "--format", "fish"][..],
            &["authdeck", "--export", "--format", "fish", "a", "b"],
            &["authdeck", "--export", "a", "--format", "fish", "b"],
            &["authdeck", "export", "a", "--format", "fish", "b"],
            &[
                "authdeck",
                "--config",
                "/c",
                "--export",
                "a",
                "b",
                "--format=fish",
            ],
        ] {
            assert_eq!(
                export_args(parse(args)),
                (ab.clone(), ExportFormat::Fish),
                "{args:?}"
            );
        }
        let (names, format) = export_args(parse(&["authdeck", "--export"]));
        assert!(names.is_empty());
        assert_eq!(format, ExportFormat::Sh);
        assert_eq!(
            export_args(parse(&["authdeck", "--export=work"])).0,
            vec!["work"]
        );
    }

    #[test]
    fn without_export_flag_nothing_is_rewritten() {
        let args: Vec<std::ffi::OsString> = ["authdeck", "exec", "a", "--", "env", "--export"]
            .iter()
            .map(Into::into)
            .collect();
        assert_eq!(rewrite_export_flag(args.clone()), args);
        let cli = parse(&["authdeck", "--vault", "/v", "status"]);
        assert!(matches!(cli.command, Some(Command::Status { .. })));
        let args: Vec<std::ffi::OsString> = ["authdeck", "token", "--export"]
            .iter()
            .map(Into::into)
            .collect();
        assert_eq!(rewrite_export_flag(args.clone()), args);
        let (names, format) =
            export_args(parse(&["authdeck", "--format", "json", "--export", "w"]));
        assert_eq!((names, format), (vec!["w".to_string()], ExportFormat::Json));
    }
}
