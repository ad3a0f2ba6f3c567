//! `authdeck providers` (templates, accounts, problems) and `authdeck providers check FILE...`.

use crate::app::exit;
use crate::provider::{self, Problem, Provider, Source};
use clap::{Args, Subcommand};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

/// Arguments of `authdeck providers`.
#[derive(Debug, Args)]
pub struct ProvidersArgs {
    /// `check FILE...`; none lists templates, accounts and problems.
    #[command(subcommand)]
    pub action: Option<ProvidersAction>,
}

/// Subcommands of `authdeck providers`.
#[derive(Debug, Subcommand)]
pub enum ProvidersAction {
    /// Validate account files; prints each problem as FILE:LINE:COL on stderr.
    Check {
        /// Account files to check (NAME.toml).
        #[arg(required = true, value_name = "FILE")]
        files: Vec<PathBuf>,
    },
}

/// Runs `authdeck providers [check FILE...]`; returns the exit code.
pub fn run(args: &ProvidersArgs, config_override: Option<&Path>) -> u8 {
    let result = match &args.action {
        None => list(config_override),
        Some(ProvidersAction::Check { files }) => check(files),
    };
    match result {
        Ok(code) => code,
        // `authdeck providers | head` is not an error.
        Err(e) if e.kind() == io::ErrorKind::BrokenPipe => exit::OK,
        Err(e) => {
            eprintln!("authdeck: cannot write output: {e}");
            exit::ERROR
        }
    }
}

fn list(config_override: Option<&Path>) -> io::Result<u8> {
    let config_dir = match provider::config_dir(config_override) {
        Ok(d) => d,
        Err(e) => {
            eprintln!("authdeck: {e}");
            return Ok(exit::ERROR);
        }
    };
    let loaded = provider::load_accounts(&config_dir);
    let mut out = io::stdout().lock();
    writeln!(out, "Bundled templates:")?;
    let rows: Vec<Vec<String>> = provider::templates().iter().map(template_row).collect();
    table(
        &mut out,
        &["NAME", "PROVIDER", "CLIENT AUTH", "NOTES"],
        &rows,
    )?;
    writeln!(out)?;
    writeln!(out, "Accounts in {}:", loaded.dir.display())?;
    if loaded.accounts.is_empty() {
        writeln!(
            out,
            "  (none) create {} with `extends = \"google\"` and your client_id; see docs/providers.md",
            loaded.dir.join("NAME.toml").display()
        )?;
    } else {
        let rows: Vec<Vec<String>> = loaded.accounts.iter().map(account_row).collect();
        table(
            &mut out,
            &["NAME", "TEMPLATE", "CLIENT AUTH", "EXPORT", "FILE"],
            &rows,
        )?;
    }
    drop(out);
    report(&loaded.problems);
    let mut bad: Vec<&str> = loaded
        .problems
        .iter()
        .filter(|p| p.is_error())
        .map(|p| p.file.as_str())
        .collect();
    bad.dedup();
    if !bad.is_empty() {
        eprintln!(
            "{} invalid file(s) skipped; fix them or check one with `authdeck providers check FILE`",
            bad.len()
        );
        return Ok(exit::ERROR);
    }
    Ok(exit::OK)
}

fn check(files: &[PathBuf]) -> io::Result<u8> {
    let mut out = io::stdout().lock();
    let mut code = exit::OK;
    for file in files {
        match provider::load_file(file) {
            Ok(p) => {
                let from = p
                    .extends
                    .as_deref()
                    .map(|e| format!(", extends {e}"))
                    .unwrap_or_default();
                writeln!(out, "{}: ok (account {}{from})", file.display(), p.name)?;
                report(&p.warnings);
            }
            Err(problems) => {
                report(&problems);
                code = exit::ERROR;
            }
        }
    }
    Ok(code)
}

/// Prints problems on stderr, one `FILE:LINE:COL: message` + hint each.
fn report(problems: &[Problem]) {
    for p in problems {
        eprintln!("{p}");
    }
}

fn template_row(p: &Provider) -> Vec<String> {
    vec![
        p.name.clone(),
        p.display_name.clone(),
        p.client_auth.as_str().to_owned(),
        notes(p),
    ]
}

/// The quirks worth a glance in the listing.
fn notes(p: &Provider) -> String {
    let mut n = Vec::new();
    if p.needs_discovery() || (p.issuer.is_none() && p.token_endpoint.is_none()) {
        n.push("needs issuer (discovery)".to_owned());
    }
    for (k, v) in &p.vars {
        n.push(format!("{k}={v}"));
    }
    if p.device_authorization_endpoint.is_some() {
        n.push("device flow".to_owned());
    }
    if p.refresh_token_rotates {
        n.push("rotating refresh".to_owned());
    }
    if p.send_scope_on_refresh {
        n.push("scope on refresh".to_owned());
    }
    if p.token_response == provider::TokenResponse::Form {
        n.push("form token response".to_owned());
    }
    if let Some(r) = &p.redirect_uri {
        n.push(format!("redirect {r}"));
    }
    if !p.auth_params.is_empty() {
        let params: Vec<String> = p
            .auth_params
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        n.push(params.join(" "));
    }
    n.join(", ")
}

fn account_row(p: &Provider) -> Vec<String> {
    let file = match &p.source {
        Source::File(path) => path.display().to_string(),
        Source::Bundled => "(bundled)".to_owned(),
    };
    vec![
        p.name.clone(),
        p.template.clone().unwrap_or_else(|| "-".to_owned()),
        p.client_auth.as_str().to_owned(),
        p.export_var_name(),
        file,
    ]
}

/// Prints rows in aligned columns (the last column is not padded).
fn table(out: &mut impl Write, header: &[&str], rows: &[Vec<String>]) -> io::Result<()> {
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |cells: Vec<&str>| -> String {
        let mut s = String::from(" ");
        let last = cells.len().saturating_sub(1);
        for (i, (cell, w)) in cells.iter().zip(&widths).enumerate() {
            s.push(' ');
            s.push_str(cell);
            if i < last {
                s.push_str(&" ".repeat(w - cell.chars().count() + 1));
            }
        }
        s.trim_end().to_owned()
    };
    writeln!(out, "{}", line(header.to_vec()))?;
    for row in rows {
        writeln!(out, "{}", line(row.iter().map(String::as_str).collect()))?;
    }
    Ok(())
}
