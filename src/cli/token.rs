//! `authdeck token`: one valid access token on stdout and nothing else.

use super::context::{
    Locations, ask_agent, incomplete, light_runtime, open_parts, report, token_request,
};
use crate::app::exit;
use crate::app::export::Source;
use crate::app::scoped::NarrowRequest;
use crate::app::{App, AppError, Settings};
use std::io::Write;
use std::time::Duration;

/// `authdeck token NAME`.
pub fn token(loc: &Locations, name: &str) -> u8 {
    match print_token(loc, name) {
        Ok(code) => code,
        Err(e) => report(&e),
    }
}

fn print_token(loc: &Locations, name: &str) -> Result<u8, AppError> {
    // AGENT-9: the agent when one answers, the same output either way.
    let narrow = NarrowRequest::default();
    if let Some(r) = ask_agent(loc, token_request(name, Duration::ZERO, &narrow))? {
        if let Some(w) = &r.warning {
            eprintln!("authdeck: warning: {w}");
        }
        let token = r.token.ok_or_else(|| incomplete("token"))?;
        let _ = writeln!(std::io::stdout().lock(), "{}", token.secret());
        return Ok(exit::OK);
    }
    let (config_dir, vault) = open_parts(loc, false)?;
    let names = [name.to_owned()];
    let token = match App::for_export(config_dir, vault, &names, Settings::default())? {
        Source::Indexed(mut vars, _) => match vars.pop() {
            Some((_, token)) => token,
            None => return Err(AppError::UnknownAccount(name.to_owned())),
        },
        Source::Loaded(app) => {
            let (token, how) = light_runtime()?.block_on(app.fresh_token(name, false))?;
            if let Some(w) = crate::app::access::refresh_warning(&how) {
                eprintln!("authdeck: warning: {w}");
            }
            token
        }
    };
    let _ = writeln!(std::io::stdout().lock(), "{}", token.secret());
    Ok(exit::OK)
}
