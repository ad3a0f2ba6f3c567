//! `authdeck refresh`: refresh accounts now, due or not.

use super::context::{Locations, logged_in, open_app, run, warn_unknown_expiry};
use crate::app::exit;
use crate::app::refresh::Refreshed;
use crate::app::status::{human_duration, unix};
use clap::Args;
use std::time::SystemTime;

/// `authdeck refresh [NAME...|--all]`.
#[derive(Debug, Args)]
pub struct RefreshArgs {
    /// Accounts to refresh now, due or not.
    pub names: Vec<String>,
    /// Refresh every logged-in account.
    #[arg(long, conflicts_with = "names")]
    pub all: bool,
}

/// Runs `refresh`.
pub fn refresh(loc: &Locations, args: &RefreshArgs) -> u8 {
    run(|rt| {
        let app = open_app(loc, false)?;
        let names = if args.all || args.names.is_empty() {
            let snap = app.current()?;
            logged_in(&app, &snap)
        } else {
            args.names.clone()
        };
        if names.is_empty() {
            eprintln!("authdeck: no logged-in accounts to refresh");
            return Ok(exit::OK);
        }
        let results = rt.block_on(app.refresh_many(&names));
        let (mut ok, mut failed, mut needs_login) = (0usize, 0usize, 0usize);
        for (name, result) in results {
            match result {
                Ok(how) => {
                    ok += 1;
                    eprintln!("{name}: {}", describe(&how));
                    if let Refreshed::Done { expires_at, .. } = how {
                        warn_unknown_expiry(&name, expires_at);
                    }
                }
                Err(e) => {
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

fn describe(how: &Refreshed) -> String {
    match how {
        Refreshed::Done {
            expires_at,
            rotated,
        } => format!(
            "refreshed{}; {}",
            if *rotated {
                " (refresh token rotated)"
            } else {
                ""
            },
            expires_at.map_or_else(
                || "expiry unknown".to_string(),
                |e| format!("expires in {}", human_duration(e - unix(SystemTime::now())))
            )
        ),
        Refreshed::ByOther => "already refreshed by another process".into(),
        Refreshed::NotDue => "not due".into(),
        Refreshed::NoRefreshToken => {
            "no refresh token (the provider issues none); token kept".into()
        }
        Refreshed::FailedButValid { reason } => {
            format!("refresh failed ({reason}); the current token is still valid")
        }
    }
}
