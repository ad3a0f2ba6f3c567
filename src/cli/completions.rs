//! `authdeck completions SHELL` and the man page: both generated from the one clap definition.
//!
//! Completion is dynamic (clap_complete's `CompleteEnv`): the script a shell loads calls
//! `COMPLETE=SHELL authdeck -- WORDS…` at each TAB, so account names come from the config
//! directory as it is at that moment, for every argument that names an account.

use clap::ValueEnum;
use clap_complete::engine::{ArgValueCandidates, CompletionCandidate};
use clap_complete::env::{Bash, Elvish, EnvCompleter, Fish, Powershell, Zsh};
use std::ffi::OsString;
use std::io::Write;
use std::path::PathBuf;

/// The environment variable that turns a run into a completion request.
pub const COMPLETE_VAR: &str = "COMPLETE";

/// The shells `completions` writes a script for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Shell {
    /// GNU bash.
    Bash,
    /// Z shell.
    Zsh,
    /// fish.
    Fish,
    /// PowerShell.
    Powershell,
    /// Elvish.
    Elvish,
}

impl Shell {
    fn completer(self) -> &'static dyn EnvCompleter {
        match self {
            Shell::Bash => &Bash,
            Shell::Zsh => &Zsh,
            Shell::Fish => &Fish,
            Shell::Powershell => &Powershell,
            Shell::Elvish => &Elvish,
        }
    }
}

/// Candidates for an argument that names an account: the account files of the config dir
/// (`AUTHDECK_CONFIG_DIR`, else the default), read fresh at each TAB.
pub fn accounts() -> ArgValueCandidates {
    ArgValueCandidates::new(|| {
        let dir = std::env::var_os("AUTHDECK_CONFIG_DIR").map(PathBuf::from);
        crate::provider::config_dir(dir.as_deref())
            .map(|d| crate::provider::account_names(&d))
            .unwrap_or_default()
            .into_iter()
            .map(CompletionCandidate::new)
            .collect()
    })
}

/// Answers a completion request when `COMPLETE` is set (and exits); returns otherwise. Costs
/// one environment lookup on every other run.
pub fn answer_if_asked() {
    if std::env::var_os(COMPLETE_VAR).is_some() {
        clap_complete::CompleteEnv::with_factory(super::command).complete();
    }
}

/// `authdeck completions SHELL`: the registration script for `shell`, calling back into this
/// binary (by the name it was run as, made absolute when it was a relative path).
pub fn print_script(shell: Shell) -> u8 {
    let completer = completer_path();
    let mut buf = Vec::new();
    let written = shell.completer().write_registration(
        COMPLETE_VAR,
        "authdeck",
        "authdeck",
        &completer,
        &mut buf,
    );
    match written.and_then(|()| std::io::stdout().lock().write_all(&buf)) {
        Ok(()) => super::exit::OK,
        Err(e) => {
            eprintln!("authdeck: cannot write the completion script: {e}");
            super::exit::ERROR
        }
    }
}

fn completer_path() -> String {
    let arg0: PathBuf = std::env::args_os()
        .next()
        .unwrap_or_else(|| OsString::from("authdeck"))
        .into();
    if arg0.components().count() > 1
        && let Ok(cwd) = std::env::current_dir()
    {
        return cwd.join(arg0).to_string_lossy().into_owned();
    }
    arg0.to_string_lossy().into_owned()
}

/// `authdeck man [--dir DIR]`: the man page (roff) on stdout, or with `dir` one page per
/// command (`authdeck.1`, `authdeck-login.1`, …) written there.
pub fn man(dir: Option<&std::path::Path>) -> u8 {
    let cmd = super::command();
    let written = match dir {
        Some(d) => std::fs::create_dir_all(d).and_then(|()| clap_mangen::generate_to(cmd, d)),
        None => {
            let mut buf = Vec::new();
            clap_mangen::Man::new(cmd)
                .render(&mut buf)
                .and_then(|()| std::io::stdout().lock().write_all(&buf))
        }
    };
    match written {
        Ok(()) => super::exit::OK,
        Err(e) => {
            eprintln!("authdeck: cannot write the man page: {e}");
            super::exit::ERROR
        }
    }
}
