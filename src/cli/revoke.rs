//! `authdeck revoke` (at the provider, then locally) and `authdeck logout` (locally only).
//! With an agent running, it does both (AGENT-9): the refresh token never leaves it.

use super::context::{Locations, ask_agent, incomplete, open_app, run};
use crate::agent::protocol::Request;
use crate::app::access::logout_note;
use crate::app::exit;

/// `authdeck revoke NAME`: at the provider, then locally (REV-4).
pub fn revoke(loc: &Locations, name: &str) -> u8 {
    run(|rt| {
        let note = match ask_agent(loc, |origin| Request::Revoke {
            account: name.to_owned(),
            origin,
        })? {
            Some(r) => r.note.ok_or_else(|| incomplete("note"))?,
            None => {
                let app = open_app(loc, false)?;
                rt.block_on(app.revoke(name))?
            }
        };
        eprintln!("{name}: {note}");
        Ok(exit::OK)
    })
}

/// `authdeck logout NAME`: forget the tokens locally.
pub fn logout(loc: &Locations, name: &str) -> u8 {
    run(|_| {
        let note = match ask_agent(loc, |origin| Request::Logout {
            account: name.to_owned(),
            origin,
        })? {
            Some(r) => r.note.ok_or_else(|| incomplete("note"))?,
            None => logout_note(open_app(loc, false)?.logout(name)?).to_owned(),
        };
        eprintln!("{name}: {note}");
        Ok(exit::OK)
    })
}
