//! `authdeck git-credential get|store|erase`: git's credential helper (gitcredentials(7)).
//!
//! Whatever goes wrong, `get` prints nothing a git could take for a credential: no match, a
//! malformed request or an account that needs a login all end with empty output, so git falls
//! through to its next helper (GIT-3); the reason goes to stderr, which git shows.

use super::context::{Locations, open_app, report};
use super::exit;
use crate::app::gitcred::{self, Operation};
use crate::app::handoff::Handed;
use crate::app::refresh::Refreshed;
use clap::Args;
use std::io::{Read, Write};
use std::time::Duration;

/// `authdeck git-credential OPERATION`.
#[derive(Debug, Args)]
pub struct GitCredentialArgs {
    /// What git asks: `get`, `store` or `erase`.
    pub operation: String,
}

/// Runs one helper request; the exit code is 0 unless the request itself was unusable.
pub fn run(loc: &Locations, args: &GitCredentialArgs) -> u8 {
    let Some(op) = Operation::parse(&args.operation) else {
        // git ignores operations it does not know a helper for; so does the helper.
        return exit::OK;
    };
    let mut input = Vec::new();
    let read = std::io::stdin()
        .lock()
        .take(gitcred::MAX_REQUEST as u64 + 1)
        .read_to_end(&mut input);
    if read.is_err() {
        eprintln!("authdeck: git-credential: cannot read the request from git");
        return exit::ERROR;
    }
    let req = match gitcred::parse_request(&input) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("authdeck: git-credential: {e}");
            return exit::OK;
        }
    };
    match op {
        Operation::Store => exit::OK,
        Operation::Get => get(loc, &req),
        Operation::Erase => erase(loc, &req),
    }
}

/// The account for `req`, if any account's `git_urls` match it.
fn account_for(app: &crate::app::App, req: &gitcred::Request) -> Option<String> {
    let accounts: Vec<(&str, &[crate::provider::GitUrl])> = app
        .loaded()
        .accounts
        .iter()
        .map(|p| (p.name.as_str(), p.git_urls.as_slice()))
        .collect();
    gitcred::choose(req, accounts).map(str::to_owned)
}

fn get(loc: &Locations, req: &gitcred::Request) -> u8 {
    let app = match open_app(loc, false) {
        Ok(app) => app,
        Err(e) => {
            report(&e);
            return exit::OK;
        }
    };
    let Some(name) = account_for(&app, req) else {
        return exit::OK;
    };
    let handed = super::context::light_runtime()
        .and_then(|rt| rt.block_on(app.hand_token(&name, Duration::ZERO)));
    let (handed, how): (Handed, Refreshed) = match handed {
        Ok(h) => h,
        Err(e) => {
            report(&e);
            return exit::OK;
        }
    };
    if let Refreshed::FailedButValid { reason } = how {
        eprintln!(
            "authdeck: warning: refresh of {name} failed ({reason}); the current token is still valid"
        );
    }
    if !gitcred::safe_value(handed.token.secret()) {
        eprintln!("authdeck: git-credential: the token of {name} cannot be passed to git");
        return exit::OK;
    }
    let username = app
        .account(&name)
        .ok()
        .and_then(|p| p.git_username.clone())
        .unwrap_or_else(|| {
            let template = app.account(&name).ok().and_then(|p| p.template.clone());
            gitcred::default_username(template.as_deref()).to_owned()
        });
    let answer = gitcred::answer(&username, &handed.token, handed.expires_at);
    let _ = std::io::stdout().lock().write_all(answer.as_bytes());
    exit::OK
}

fn erase(loc: &Locations, req: &gitcred::Request) -> u8 {
    let Some(rejected) = &req.password else {
        return exit::OK;
    };
    let result = open_app(loc, false).and_then(|app| match account_for(&app, req) {
        Some(name) => app.mark_stale(&name, rejected).map(|_| ()),
        None => Ok(()),
    });
    if let Err(e) = result {
        report(&e);
    }
    exit::OK
}
