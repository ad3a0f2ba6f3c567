//! `authdeck refresh`: refresh accounts now, due or not.

use super::context::{
    Locations, ask_agent, incomplete, logged_in, open_app, refused, run, warn_unknown_expiry,
};
use crate::agent::protocol::Request;
use crate::app::access::describe;
use crate::app::exit;
use crate::app::refresh::Refreshed;
use crate::app::{AppError, Result};
use clap::Args;

/// `authdeck refresh [NAME...|--all]`.
#[derive(Debug, Args)]
pub struct RefreshArgs {
    /// Accounts to refresh now, due or not.
    pub names: Vec<String>,
    /// Refresh every logged-in account.
    #[arg(long, conflicts_with = "names")]
    pub all: bool,
}

/// One account's outcome, from the vault or from the agent.
enum Outcome {
    /// Refreshed (or not needed): the line to print and the new expiry when a token came.
    Ok {
        line: String,
        new_expiry: Option<Option<i64>>,
    },
    /// Failed.
    Failed(AppError),
}

/// Runs `refresh`.
pub fn refresh(loc: &Locations, args: &RefreshArgs) -> u8 {
    run(|rt| {
        let asked = if args.all {
            Vec::new()
        } else {
            args.names.clone()
        };
        // AGENT-9: the agent refreshes (the refresh tokens never leave it) when one answers.
        let results = match from_agent(loc, &asked)? {
            Some(results) => results,
            None => {
                let app = open_app(loc, false)?;
                let names = if asked.is_empty() {
                    let snap = app.current()?;
                    logged_in(&app, &snap)
                } else {
                    asked
                };
                rt.block_on(app.refresh_many(&names))
                    .into_iter()
                    .map(|(name, result)| {
                        let outcome = match result {
                            Ok(how) => Outcome::Ok {
                                line: describe(&how),
                                new_expiry: match how {
                                    Refreshed::Done { expires_at, .. } => Some(expires_at),
                                    _ => None,
                                },
                            },
                            Err(e) => Outcome::Failed(e),
                        };
                        (name, outcome)
                    })
                    .collect()
            }
        };
        if results.is_empty() {
            eprintln!("authdeck: no logged-in accounts to refresh");
            return Ok(exit::OK);
        }
        let (mut ok, mut failed, mut needs_login) = (0usize, 0usize, 0usize);
        for (name, outcome) in results {
            match outcome {
                Outcome::Ok { line, new_expiry } => {
                    ok += 1;
                    eprintln!("{name}: {line}");
                    if let Some(expires_at) = new_expiry {
                        warn_unknown_expiry(&name, expires_at);
                    }
                }
                Outcome::Failed(e) => {
                    failed += 1;
                    needs_login += usize::from(e.needs_login());
                    eprintln!("authdeck: {e}");
                }
            }
        }
        Ok(match (failed, ok) {
            (0, _) => exit::OK,
            (_, 1..) => exit::PARTIAL,
            (f, 0) if f == needs_login => exit::NEEDS_LOGIN,
            _ => exit::ERROR,
        })
    })
}

/// The agent's outcomes, in the order it refreshed; `None` when no agent answers.
fn from_agent(loc: &Locations, names: &[String]) -> Result<Option<Vec<(String, Outcome)>>> {
    let Some(r) = ask_agent(loc, |origin| Request::Refresh {
        accounts: names.to_vec(),
        origin,
    })?
    else {
        return Ok(None);
    };
    let results = r.refreshed.ok_or_else(|| incomplete("refreshed"))?;
    Ok(Some(
        results
            .into_iter()
            .map(|res| {
                let outcome = match res.error {
                    Some(f) => Outcome::Failed(refused(f)),
                    None => Outcome::Ok {
                        line: res.outcome,
                        new_expiry: res.refreshed.then_some(res.expires_at),
                    },
                };
                (res.account, outcome)
            })
            .collect(),
    ))
}
