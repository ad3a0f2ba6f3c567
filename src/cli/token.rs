//! `authdeck token`: one valid access token on stdout and nothing else.

use super::context::{Locations, light_runtime, open_parts, report};
use crate::app::exit;
use crate::app::export::Source;
use crate::app::refresh::Refreshed;
use crate::app::{App, AppError, Settings};
use std::io::Write;

/// `authdeck token NAME`.
pub fn token(loc: &Locations, name: &str) -> u8 {
    match print_token(loc, name) {
        Ok(code) => code,
        Err(e) => report(&e),
    }
}

fn print_token(loc: &Locations, name: &str) -> Result<u8, AppError> {
    let (config_dir, vault) = open_parts(loc, false)?;
    let names = [name.to_owned()];
    let token = match App::for_export(config_dir, vault, &names, Settings::default())? {
        Source::Indexed(mut vars) => match vars.pop() {
            Some((_, token)) => token,
            None => return Err(AppError::UnknownAccount(name.to_owned())),
        },
        Source::Loaded(app) => {
            let (token, how) = light_runtime()?.block_on(app.fresh_token(name, false))?;
            if let Refreshed::FailedButValid { reason } = how {
                eprintln!(
                    "authdeck: warning: refresh failed ({reason}); the current token is still valid"
                );
            }
            token
        }
    };
    let _ = writeln!(std::io::stdout().lock(), "{}", token.secret());
    Ok(exit::OK)
}
