//! The few command lines that scripts run many times a day — `token NAME`, `export [NAME...]`
//! (or `--export`), `git-credential OPERATION` and `kube-credential NAME`, with no option —
//! recognised without building clap's definition of the whole command line. Building, using and
//! dropping that definition cost about a third of the instructions of such a process and 30 of
//! its page faults (docs/benchmarks.md, "Agent"). Anything else, and anything in doubt (an
//! option, a word that is not UTF-8 or is empty, an empty `AUTHDECK_CONFIG_DIR`), goes to clap;
//! a unit test checks that clap reads every recognised line the same way.

use super::context::Locations;
use std::ffi::OsString;
use std::path::PathBuf;

/// A command line recognised without clap.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Fast {
    /// `token NAME`.
    Token(String),
    /// `export [NAME...]` or `--export [NAME...]`, shell format.
    Export(Vec<String>),
    /// `git-credential OPERATION`.
    GitCredential(String),
    /// `kube-credential NAME`.
    KubeCredential(String),
}

/// The value clap would give an option with `env = VAR` that is absent from the command line:
/// `Ok(None)` when the variable is unset; `Err` when it is set but empty, which clap refuses.
fn env_path(var: &str) -> Result<Option<PathBuf>, ()> {
    match std::env::var_os(var) {
        None => Ok(None),
        Some(v) if v.is_empty() => Err(()),
        Some(v) => Ok(Some(PathBuf::from(v))),
    }
}

/// The command and where the config and vault are, when `args` (program name first) is one of
/// the shapes above; `None`: ask clap.
pub(super) fn recognise(args: &[OsString]) -> Option<(Fast, Locations)> {
    let words: Vec<&str> = args
        .iter()
        .skip(1)
        .map(|a| a.to_str().filter(|s| !s.is_empty()))
        .collect::<Option<_>>()?;
    let (&verb, rest) = words.split_first()?;
    if rest.iter().any(|w| w.starts_with('-')) {
        return None;
    }
    let one = || match rest {
        [name] => Some(name.to_string()),
        _ => None,
    };
    let fast = match verb {
        "token" => Fast::Token(one()?),
        "export" | "--export" => Fast::Export(rest.iter().map(|w| w.to_string()).collect()),
        "git-credential" => Fast::GitCredential(one()?),
        "kube-credential" => Fast::KubeCredential(one()?),
        _ => return None,
    };
    let loc = Locations {
        config: env_path("AUTHDECK_CONFIG_DIR").ok()?,
        vault: env_path("AUTHDECK_VAULT").ok()?,
    };
    Some((fast, loc))
}

/// Runs a recognised command line as `main` would after clap.
pub(super) fn run(fast: Fast, loc: &Locations) -> u8 {
    match fast {
        Fast::Token(name) => super::token::token(loc, &name),
        Fast::Export(names) => super::export::export(loc, &names, Default::default()),
        Fast::GitCredential(operation) => {
            super::gitcred::run(loc, &super::gitcred::GitCredentialArgs { operation })
        }
        Fast::KubeCredential(name) => super::kube::run(
            loc,
            &super::kube::KubeCredentialArgs {
                name,
                id_token: false,
            },
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::{Cli, Command, rewrite_export_flag};
    use clap::Parser;

    fn os(args: &[&str]) -> Vec<OsString> {
        args.iter().map(OsString::from).collect()
    }

    /// What clap makes of `args`, in the terms of [`Fast`]; `None` for anything else.
    fn clap_reading(args: &[&str]) -> Option<Fast> {
        let cli = Cli::try_parse_from(rewrite_export_flag(os(args))).ok()?;
        match cli.command? {
            Command::Token(a) if a.is_plain() && a.min_valid.is_none() => Some(Fast::Token(a.name)),
            Command::Export(a)
                if a.format == crate::app::export::ExportFormat::Sh
                    && a.narrow.request().is_empty() =>
            {
                Some(Fast::Export(a.names))
            }
            Command::GitCredential(a) => Some(Fast::GitCredential(a.operation)),
            Command::KubeCredential(a) if !a.id_token => Some(Fast::KubeCredential(a.name)),
            _ => None,
        }
    }

    #[test]
    fn every_recognised_line_is_what_clap_reads() {
        let lines: &[&[&str]] = &[
            &["authdeck", "token", "work"],
            &["authdeck", "token", "help"],
            &["authdeck", "token", "a b"],
            &["authdeck", "export"],
            &["authdeck", "export", "a", "b"],
            &["authdeck", "--export"],
            &["authdeck", "--export", "work", "home"],
            &["authdeck", "git-credential", "get"],
            &["authdeck", "git-credential", "frobnicate"],
            &["authdeck", "kube-credential", "k8s"],
        ];
        for line in lines {
            let (fast, _) = recognise(&os(line)).unwrap_or_else(|| panic!("{line:?}"));
            assert_eq!(Some(fast), clap_reading(line), "{line:?}");
        }
    }

    #[test]
    fn options_and_other_shapes_go_to_clap() {
        let lines: &[&[&str]] = &[
            &["authdeck"],
            &["authdeck", "token"],
            &["authdeck", "token", "a", "b"],
            &["authdeck", "token", "work", "--format", "xoauth2"],
            &["authdeck", "token", "--help"],
            &["authdeck", "token", "-h"],
            &["authdeck", "token", ""],
            &["authdeck", "--config", "/c", "token", "work"],
            &["authdeck", "export", "--format", "json"],
            &["authdeck", "export", "a", "--scope", "x"],
            &["authdeck", "kube-credential", "k8s", "--id-token"],
            &["authdeck", "git-credential"],
            &["authdeck", "status"],
            &["authdeck", "tok", "work"],
            &["authdeck", "--version"],
        ];
        for line in lines {
            assert!(recognise(&os(line)).is_none(), "{line:?}");
        }
    }
}
