//! `authdeck --export`: `export NAME='token'` lines for the shell, refreshing what is due.

use super::context::{
    Locations, ask_agent, incomplete, light_runtime, logged_in, open_parts, refused, report,
};
use crate::agent::protocol::{Narrow, Request};
use crate::app::exit;
use crate::app::export::{self, ExportFormat, Source};
use crate::app::refresh::token_if_not_due;
use crate::app::{App, AppError, Settings};
use crate::secret::AccessToken;
use std::io::Write;
use std::time::SystemTime;

/// `authdeck --export [NAME...] [--format ...]`.
///
/// Valid tokens come straight from the one decrypted snapshot; an async runtime is started only
/// when some account is due for a refresh (the budget in docs/benchmarks.md: 50 accounts in
/// ≤ 2 ms).
pub fn export(loc: &Locations, names: &[String], format: ExportFormat) -> u8 {
    match export_tokens(loc, names, format) {
        Ok(code) => code,
        Err(e) => report(&e),
    }
}

fn export_tokens(loc: &Locations, names: &[String], format: ExportFormat) -> Result<u8, AppError> {
    let slots = match agent_tokens(loc, names)? {
        Some(slots) => slots,
        None => {
            let (config_dir, vault) = open_parts(loc, false)?;
            match App::for_export(config_dir, vault, names, Settings::default())? {
                Source::Indexed(vars, _) => vars.into_iter().map(Ok).collect(),
                Source::Loaded(app) => loaded_tokens(&app, names)?,
            }
        }
    };
    let mut vars: Vec<(String, AccessToken)> = Vec::new();
    let mut failed = 0usize;
    let mut needs_login = 0usize;
    for slot in slots {
        match slot {
            Ok(pair) => vars.push(pair),
            Err(e) => {
                failed += 1;
                needs_login += usize::from(e.needs_login());
                eprintln!("authdeck: {e}");
            }
        }
    }
    let mut text = String::new();
    for (name, token) in &vars {
        let checked = if format == ExportFormat::Json {
            export::line(format, name, token.secret()).map(drop)
        } else {
            export::push_line(&mut text, format, name, token.secret())
        };
        if let Err(e) = checked {
            failed += 1;
            eprintln!("authdeck: {e}");
        }
    }
    if format == ExportFormat::Json {
        let pairs: Vec<(String, &str)> =
            vars.iter().map(|(k, t)| (k.clone(), t.secret())).collect();
        text = export::render(format, &pairs).map_err(|e| AppError::Config(e.to_string()))?;
    }
    let _ = std::io::stdout().lock().write_all(text.as_bytes());
    Ok(match (failed, vars.is_empty()) {
        (0, _) => exit::OK,
        (_, false) => exit::PARTIAL,
        (f, true) if f == needs_login => exit::NEEDS_LOGIN,
        _ => exit::ERROR,
    })
}

/// AGENT-9: the agent's variables and failures when one answers. The failures come first:
/// they go to stderr in order, the variables to stdout in order, as on the direct path.
fn agent_tokens(loc: &Locations, names: &[String]) -> Result<Option<Vec<ExportSlot>>, AppError> {
    let Some(r) = ask_agent(loc, |origin| Request::Export {
        accounts: names.to_vec(),
        narrow: Narrow::default(),
        origin,
    })?
    else {
        return Ok(None);
    };
    let vars = r.vars.ok_or_else(|| incomplete("vars"))?;
    let failures = r.failures.unwrap_or_default();
    let mut slots: Vec<ExportSlot> = Vec::with_capacity(vars.len() + failures.len());
    slots.extend(failures.into_iter().map(|f| Err(refused(f.failure))));
    slots.extend(vars.into_iter().map(|v| Ok((v.name, v.token))));
    Ok(Some(slots))
}

/// Each account's (variable, token), or why it has none; what is due is refreshed first, on a
/// runtime started only then.
fn loaded_tokens(app: &App, names: &[String]) -> Result<Vec<ExportSlot>, AppError> {
    let snap = app.current()?;
    let names: Vec<String> = if names.is_empty() {
        logged_in(app, &snap)
    } else {
        names.to_vec()
    };
    let now = SystemTime::now();
    // One slot per name, in order; a due account (its variable kept in `due`) is filled in by
    // the refresh pass below.
    let mut slots: Vec<Option<ExportSlot>> = Vec::with_capacity(names.len());
    let mut due: Vec<(usize, String)> = Vec::new();
    for name in &names {
        let slot = match app.account(name).map(|p| p.export_var_name()) {
            Ok(var) => match token_if_not_due(name, snap.records.get(name), now) {
                Some(token) => Some(token.map(|t| (var, t))),
                None => {
                    due.push((slots.len(), var));
                    None
                }
            },
            Err(e) => Some(Err(e)),
        };
        slots.push(slot);
    }
    if !due.is_empty() {
        let rt = light_runtime()?;
        for (i, var) in due {
            let fresh = rt.block_on(app.fresh_token(&names[i], false));
            slots[i] = Some(fresh.map(|(token, _)| (var, token)));
        }
    }
    Ok(slots.into_iter().flatten().collect())
}

type ExportSlot = Result<(String, AccessToken), AppError>;
