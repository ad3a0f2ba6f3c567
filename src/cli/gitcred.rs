//! `authdeck git-credential get|store|erase`: git's credential helper (gitcredentials(7)).
//!
//! Whatever goes wrong, `get` prints nothing a git could take for a credential: no match, a
//! malformed request or an account that needs a login all end with empty output, so git falls
//! through to its next helper (GIT-3); the reason goes to stderr, which git shows.

use super::context::{Locations, ask_agent, incomplete, open_app, open_parts, report};
use super::exit;
use crate::agent::protocol::{GitOperation, GitRequest, Request};
use crate::app::access::GitSource;
use crate::app::gitcred::{self, Operation};
use crate::app::refresh::Refreshed;
use crate::app::{App, Settings};
use crate::secret::AccessToken;
use clap::Args;
use std::io::{Read, Write};

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

/// AGENT-9: git's request to the agent when one answers (`None`: use the vault directly).
fn ask(
    loc: &Locations,
    operation: GitOperation,
    req: &gitcred::Request,
) -> Result<Option<crate::agent::protocol::Response>, crate::app::AppError> {
    let request = GitRequest::from_request(req);
    ask_agent(loc, |origin| Request::GitCredential {
        operation,
        request: request.clone(),
        origin,
    })
}

/// What `get` hands git: the account, its user name, the token and its expiry.
struct Answer {
    account: String,
    username: String,
    token: AccessToken,
    expires_at: Option<i64>,
}

/// GIT-1, GIT-2 from the agent or the vault; `Ok(None)`: no account matches. A transient
/// refresh failure is warned about on stderr.
fn answer(loc: &Locations, req: &gitcred::Request) -> Result<Option<Answer>, crate::app::AppError> {
    if let Some(r) = ask(loc, GitOperation::Get, req)? {
        if let Some(w) = &r.warning {
            eprintln!("authdeck: warning: {w}");
        }
        let Some(account) = r.account else {
            return Ok(None);
        };
        return Ok(Some(Answer {
            account,
            username: r.username.ok_or_else(|| incomplete("username"))?,
            token: r.token.ok_or_else(|| incomplete("token"))?,
            expires_at: r.expires_at,
        }));
    }
    // From the account index when it is current and the chosen token is not due, with no
    // account file read, as `token` (docs/benchmarks.md, "`--export` of 50 accounts; …").
    let (config_dir, vault) = open_parts(loc, false)?;
    let got = match App::for_git(config_dir, vault, req, Settings::default())? {
        GitSource::Indexed(got) => got,
        GitSource::Loaded(app) => {
            super::context::light_runtime().and_then(|rt| rt.block_on(app.git_get(req)))?
        }
    };
    let Some(g) = got else {
        return Ok(None);
    };
    if let Refreshed::FailedButValid { reason } = &g.how {
        eprintln!(
            "authdeck: warning: refresh of {} failed ({reason}); the current token is still valid",
            g.account
        );
    }
    Ok(Some(Answer {
        account: g.account,
        username: g.username,
        token: g.handed.token,
        expires_at: g.handed.expires_at,
    }))
}

/// GIT-3: whatever goes wrong, git gets empty output and exit 0; the reason goes to stderr.
fn get(loc: &Locations, req: &gitcred::Request) -> u8 {
    let a = match answer(loc, req) {
        Ok(Some(a)) => a,
        Ok(None) => return exit::OK,
        Err(e) => {
            report(&e);
            return exit::OK;
        }
    };
    if !gitcred::safe_value(a.token.secret()) {
        eprintln!(
            "authdeck: git-credential: the token of {} cannot be passed to git",
            a.account
        );
        return exit::OK;
    }
    let answer = gitcred::answer(&a.username, &a.token, a.expires_at);
    let _ = std::io::stdout().lock().write_all(answer.as_bytes());
    exit::OK
}

fn erase(loc: &Locations, req: &gitcred::Request) -> u8 {
    if req.password.is_none() {
        return exit::OK;
    }
    let result = ask(loc, GitOperation::Erase, req).and_then(|answered| match answered {
        Some(_) => Ok(()),
        None => open_app(loc, false).and_then(|app| app.git_erase(req)),
    });
    if let Err(e) = result {
        report(&e);
    }
    exit::OK
}
