//! `authdeck exec`: run a command with tokens in its environment, never in argv.

use super::context::{Locations, open_app, run};
use crate::app::AppError;
use crate::app::exit;

/// `authdeck exec NAME... -- CMD [ARGS...]`: tokens in the environment, never in argv.
pub fn exec(
    loc: &Locations,
    names: &[String],
    narrow: &crate::app::scoped::NarrowRequest,
    command: &[String],
) -> u8 {
    run(|rt| {
        let Some((program, args)) = command.split_first() else {
            return Err(AppError::Config("exec needs a command after --".into()));
        };
        let mut cmd = std::process::Command::new(program);
        cmd.args(args);
        // HARD-2: the command gets the tokens it asked for, never the vault's key.
        crate::process::prepare_child(&mut cmd);
        // AGENT-9: the agent hands over the tokens when one answers (narrowed ones too).
        if let Some(vars) = super::token_opts::narrowed_from_agent(loc, names, narrow)? {
            for (var, token) in vars {
                cmd.env(var, token.secret());
            }
        } else {
            let app = open_app(loc, false)?;
            for name in names {
                let var = app.account(name)?.export_var_name();
                // REF-9: a narrower token when `--scope`/`--resource`/`--audience` ask for one.
                let min = std::time::Duration::ZERO;
                let (handed, _) = rt.block_on(app.token_as_asked(name, narrow, min))?;
                cmd.env(var, handed.token.secret());
            }
        }
        let status = cmd.status().map_err(|source| AppError::Io {
            what: format!("cannot run {program}"),
            source,
        })?;
        Ok(exit_status_code(status))
    })
}

fn exit_status_code(status: std::process::ExitStatus) -> u8 {
    if let Some(code) = status.code() {
        return u8::try_from(code & 0xff).unwrap_or(exit::ERROR);
    }
    #[cfg(unix)]
    {
        use std::os::unix::process::ExitStatusExt;
        if let Some(sig) = status.signal() {
            return u8::try_from((128 + sig) & 0xff).unwrap_or(exit::ERROR);
        }
    }
    exit::ERROR
}
