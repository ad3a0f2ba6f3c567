//! `authdeck revoke` (at the provider, then locally) and `authdeck logout` (locally only).

use super::context::{Locations, open_app, run};
use crate::app::exit;

/// `authdeck revoke NAME`: at the provider, then locally (REV-4).
pub fn revoke(loc: &Locations, name: &str) -> u8 {
    run(|rt| {
        let app = open_app(loc, false)?;
        match rt.block_on(app.revoke(name)) {
            Ok(note) => {
                eprintln!("{name}: {note}");
                Ok(exit::OK)
            }
            Err(e) => Err(e),
        }
    })
}

/// `authdeck logout NAME`: forget the tokens locally.
pub fn logout(loc: &Locations, name: &str) -> u8 {
    run(|_| {
        let app = open_app(loc, false)?;
        if app.logout(name)? {
            eprintln!(
                "{name}: logged out (tokens removed from the vault; not revoked at the provider)"
            );
        } else {
            eprintln!("{name}: was not logged in");
        }
        Ok(exit::OK)
    })
}
