//! The account commands: login, token, --export, status, refresh, revoke, logout, request,
//! exec. Each parses nothing itself (clap did), calls `app`, prints, and returns an exit code.

use super::exit;
use crate::app::export::{self, ExportFormat, Source};
use crate::app::login::{LoginEvent, LoginInput};
use crate::app::mode::{self, LoginMode};
use crate::app::refresh::{Refreshed, token_if_not_due};
use crate::app::request::HttpRequest;
use crate::app::status::{Health, human_duration, unix};
use crate::app::{App, AppError, Settings};

use crate::provider;
use crate::secret::AccessToken;
use crate::vault::{self, KeySource, Snapshot, Vault};
use clap::Args;
use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::time::SystemTime;

/// Where the config and the vault are.
#[derive(Debug, Clone, Default)]
pub struct Locations {
    /// `--config` / `AUTHDECK_CONFIG_DIR`.
    pub config: Option<PathBuf>,
    /// `--vault` / `AUTHDECK_VAULT`.
    pub vault: Option<PathBuf>,
}

/// Opens the app. A missing vault is not created (and no key is asked for) unless `create`.
pub fn open_app(loc: &Locations, create: bool) -> Result<App, AppError> {
    let (config_dir, vault) = open_parts(loc, create)?;
    App::new(config_dir, vault, Settings::default())
}

/// The configuration directory and the opened vault (see [`open_app`]): the backend is chosen
/// by `--vault`, else `config.toml`, else the default file (`vault::Backend`).
fn open_parts(loc: &Locations, create: bool) -> Result<(PathBuf, Vault), AppError> {
    let config_dir =
        provider::config_dir(loc.config.as_deref()).map_err(|e| AppError::Config(e.to_string()))?;
    let vault = vault::Backend::resolve(loc.vault.as_deref(), &config_dir)?.open(create)?;
    super::warn_rollback(&vault);
    Ok((config_dir, vault))
}

/// Prints `err` as one message and returns its exit code: the single place errors become text.
pub fn report(err: &AppError) -> u8 {
    eprintln!("authdeck: {err}");
    err.exit_code()
}

fn runtime() -> Result<tokio::runtime::Runtime, AppError> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|source| AppError::Io {
            what: "cannot start the async runtime".into(),
            source,
        })
}

fn run(f: impl FnOnce(&tokio::runtime::Runtime) -> Result<u8, AppError>) -> u8 {
    match runtime().and_then(|rt| f(&rt)) {
        Ok(code) => code,
        Err(e) => report(&e),
    }
}

/// A current-thread runtime: enough for `token` and `--export`, which make at most a few
/// sequential requests, and it starts no worker threads (issue 5: export time).
pub(crate) fn light_runtime() -> Result<tokio::runtime::Runtime, AppError> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|source| AppError::Io {
            what: "cannot start the async runtime".into(),
            source,
        })
}

/// `authdeck login NAME [--mode browser|paste|device]`.
#[derive(Debug, Args)]
pub struct LoginArgs {
    /// The account (a file `providers/NAME.toml` in the config directory).
    pub name: String,
    /// How to log in; default: browser on a local desktop, paste over SSH or without display.
    #[arg(long, value_enum)]
    pub mode: Option<LoginMode>,
}

/// Runs `login`.
pub fn login(loc: &Locations, args: &LoginArgs) -> u8 {
    run(|rt| {
        let app = open_app(loc, true)?;
        let mode = args.mode.unwrap_or_else(mode::detect);
        let tty = std::io::stdout().is_terminal();
        let pasted = (mode == LoginMode::Paste).then(stdin_lines);
        let (_cancel_tx, cancel) = tokio::sync::watch::channel(false);
        let sink = move |event: LoginEvent| print_login_event(event, mode, tty);
        let input = LoginInput {
            mode,
            pasted,
            cancel,
            browser: std::env::var("BROWSER").ok(),
            sink: &sink,
        };
        let expires = rt.block_on(app.login(&args.name, input))?;
        let when = expires.map_or_else(
            || "does not say when it expires".to_string(),
            |exp| {
                format!(
                    "expires in {}",
                    human_duration(exp - unix(SystemTime::now()))
                )
            },
        );
        eprintln!("Logged in to {}; the access token {when}.", args.name);
        warn_unknown_expiry(&args.name, expires);
        Ok(exit::OK)
    })
}

fn print_login_event(event: LoginEvent, mode: LoginMode, tty: bool) {
    match event {
        LoginEvent::AuthorizationUrl {
            url,
            redirect_uri,
            browser_opened,
        } => {
            if mode == LoginMode::Browser {
                if browser_opened {
                    eprintln!("Opened your browser. If nothing happened, open this URL:");
                } else {
                    eprintln!("Could not open a browser. Open this URL:");
                }
            } else {
                eprintln!("Open this URL in a browser on any machine and log in:");
            }
            // The URL alone on its own line on stdout, so it can be copied or piped.
            println!("{url}");
            let _ = std::io::stdout().flush();
            if mode == LoginMode::Paste {
                if tty
                    && let Some(qr) = crate::ui::qr::QrArt::encode(&url).map(|q| q.lines.join("\n"))
                {
                    eprintln!("{qr}");
                }
                eprintln!(
                    "Then paste the URL your browser ends on (it starts with {redirect_uri}), or just the code, and press Enter."
                );
                eprintln!(
                    "(Or forward the port: the listener on {redirect_uri} keeps waiting, e.g. ssh -L.)"
                );
            }
        }
        LoginEvent::DeviceCode {
            user_code,
            verification_uri,
            verification_uri_complete,
            expires_in,
        } => {
            eprintln!("Go to {verification_uri} and enter the code:");
            println!("{user_code}");
            if let Some(complete) = verification_uri_complete {
                eprintln!("(or open {complete})");
                if tty
                    && let Some(qr) =
                        crate::ui::qr::QrArt::encode(&complete).map(|q| q.lines.join("\n"))
                {
                    eprintln!("{qr}");
                }
            }
            eprintln!(
                "Waiting for approval (the code expires in {}).",
                human_duration(i64::try_from(expires_in).unwrap_or(i64::MAX))
            );
        }
        LoginEvent::PasteRejected(why) => eprintln!("Not accepted: {why}. Try again."),
        LoginEvent::Exchanging => eprintln!("Received the code; exchanging it for tokens."),
    }
}

/// Lines from stdin on a channel (a thread: stdin has no async reader that can be abandoned).
fn stdin_lines() -> tokio::sync::mpsc::UnboundedReceiver<String> {
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    std::thread::spawn(move || {
        let stdin = std::io::stdin();
        let mut line = String::new();
        while stdin.read_line(&mut line).map(|n| n > 0).unwrap_or(false) {
            if tx.send(std::mem::take(&mut line)).is_err() {
                break;
            }
        }
    });
    rx
}

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

/// `authdeck --export [NAME...] [--format ...]`.
///
/// Valid tokens come straight from the one decrypted snapshot; an async runtime is started only
/// when some account is due for a refresh (issue 5: export of 50 accounts in ≤ 2 ms).
pub fn export(loc: &Locations, names: &[String], format: ExportFormat) -> u8 {
    match export_tokens(loc, names, format) {
        Ok(code) => code,
        Err(e) => report(&e),
    }
}

fn export_tokens(loc: &Locations, names: &[String], format: ExportFormat) -> Result<u8, AppError> {
    let (config_dir, vault) = open_parts(loc, false)?;
    let slots = match App::for_export(config_dir, vault, names, Settings::default())? {
        Source::Indexed(vars) => vars.into_iter().map(Ok).collect(),
        Source::Loaded(app) => loaded_tokens(&app, names)?,
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
    let pairs: Vec<(String, &str)> = vars.iter().map(|(k, t)| (k.clone(), t.secret())).collect();
    let mut text = String::new();
    for (name, value) in &pairs {
        match export::line(format, name, value) {
            Ok(line) if format != ExportFormat::Json => {
                text.push_str(&line);
                text.push('\n');
            }
            Ok(_) => {}
            Err(e) => {
                failed += 1;
                eprintln!("authdeck: {e}");
            }
        }
    }
    if format == ExportFormat::Json {
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

/// Accounts with tokens in `snap` and a file, valid or not (a broken one is then named with
/// its problem rather than skipped without a word), in name order.
fn logged_in(app: &App, snap: &Snapshot) -> Vec<String> {
    snap.records
        .iter()
        .filter(|(name, r)| {
            r.access_token.is_some()
                && !matches!(app.account(name), Err(AppError::UnknownAccount(_)))
        })
        .map(|(name, _)| name.clone())
        .collect()
}

/// `authdeck status [--json]`.
pub fn status(loc: &Locations, json: bool) -> u8 {
    run(|_| {
        let app = open_app(loc, false)?;
        let statuses = app.statuses(SystemTime::now())?;
        let mut out = std::io::stdout().lock();
        if json {
            let text = serde_json::to_string_pretty(&statuses)
                .map_err(|e| AppError::Config(e.to_string()))?;
            let _ = writeln!(out, "{text}");
            return Ok(exit::OK);
        }
        if statuses.is_empty() {
            let _ = writeln!(
                out,
                "No accounts yet. Create {}/NAME.toml (see `authdeck providers`), then `authdeck login NAME`.",
                provider::accounts_dir(app.config_dir()).display()
            );
            return Ok(exit::OK);
        }
        let rows: Vec<[String; 7]> = statuses
            .iter()
            .map(|s| {
                [
                    s.account.clone(),
                    s.provider.clone(),
                    s.state.as_str().to_string(),
                    match (s.state, s.expires_in) {
                        (Health::NeedsLogin, _) => "-".into(),
                        (_, Some(secs)) if secs < 0 => {
                            format!("expired {} ago", human_duration(-secs))
                        }
                        (_, Some(secs)) => human_duration(secs),
                        (_, None) => "never/unknown".into(),
                    },
                    s.identity.clone().unwrap_or_else(|| "-".into()),
                    if s.scopes.is_empty() {
                        "-".into()
                    } else {
                        s.scopes.join(" ")
                    },
                    match (s.last_refresh, s.last_refresh_ok) {
                        (Some(at), Some(ok)) => format!(
                            "{} ago{}",
                            human_duration(unix(SystemTime::now()) - at),
                            if ok { "" } else { " (failed)" }
                        ),
                        _ => "-".into(),
                    },
                ]
            })
            .collect();
        let header = [
            "ACCOUNT",
            "PROVIDER",
            "STATE",
            "EXPIRES IN",
            "IDENTITY",
            "SCOPES",
            "LAST REFRESH",
        ];
        let widths: Vec<usize> = (0..7)
            .map(|i| {
                rows.iter()
                    .map(|r| r[i].chars().count())
                    .chain([header[i].len()])
                    .max()
                    .unwrap_or(0)
            })
            .collect();
        let line = |cells: &[String]| {
            cells
                .iter()
                .zip(&widths)
                .map(|(c, w)| format!("{c:<w$}"))
                .collect::<Vec<_>>()
                .join("  ")
                .trim_end()
                .to_string()
        };
        let _ = writeln!(out, "{}", line(&header.map(String::from)));
        for r in &rows {
            let _ = writeln!(out, "{}", line(r));
        }
        for p in &app.loaded().problems {
            eprintln!("{p}");
        }
        Ok(exit::OK)
    })
}

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

/// EXP-3: once per login or refresh that got a token of unknown lifetime (never on `token`).
fn warn_unknown_expiry(name: &str, expires_at: Option<i64>) {
    if let Some(w) = crate::app::unknown_expiry_warning(name, expires_at) {
        eprintln!("authdeck: warning: {w}");
    }
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

/// `authdeck request NAME URL [-X METHOD] [-H 'K: V']... [-d DATA]`.
#[derive(Debug, Args)]
pub struct RequestArgs {
    /// The account whose token to send.
    pub name: String,
    /// The URL.
    pub url: String,
    /// HTTP method (default GET, or POST with -d).
    #[arg(short = 'X', long = "request", value_name = "METHOD")]
    pub method: Option<String>,
    /// Extra header, `Name: value` (repeatable).
    #[arg(short = 'H', long = "header", value_name = "HEADER")]
    pub headers: Vec<String>,
    /// Request body; `@FILE` reads a file, `@-` stdin.
    #[arg(short = 'd', long = "data", value_name = "DATA")]
    pub data: Option<String>,
}

/// Runs `request`: prints the body; exit 0 for 2xx, 1 otherwise (3 when a login is needed).
pub fn request(loc: &Locations, args: &RequestArgs) -> u8 {
    run(|rt| {
        let app = open_app(loc, false)?;
        let mut headers = Vec::new();
        for h in &args.headers {
            let (k, v) = h
                .split_once(':')
                .ok_or_else(|| AppError::Config(format!("header '{h}' is not 'Name: value'")))?;
            headers.push((k.trim().to_string(), v.trim().to_string()));
        }
        let body = match args.data.as_deref() {
            None => None,
            Some("@-") => {
                let mut buf = Vec::new();
                std::io::Read::read_to_end(&mut std::io::stdin(), &mut buf).map_err(|source| {
                    AppError::Io {
                        what: "cannot read stdin".into(),
                        source,
                    }
                })?;
                Some(buf)
            }
            Some(d) if d.starts_with('@') => {
                Some(std::fs::read(&d[1..]).map_err(|source| AppError::Io {
                    what: format!("cannot read {}", &d[1..]),
                    source,
                })?)
            }
            Some(d) => Some(d.as_bytes().to_vec()),
        };
        let method = args.method.clone().unwrap_or_else(|| {
            if body.is_some() {
                "POST".into()
            } else {
                "GET".into()
            }
        });
        let req = HttpRequest {
            method,
            url: args.url.clone(),
            headers,
            body,
        };
        let resp = rt.block_on(app.request(&args.name, &req))?;
        let _ = std::io::stdout().lock().write_all(&resp.body);
        if let Some(scope) = &resp.insufficient_scope {
            eprintln!(
                "authdeck: HTTP 403 insufficient_scope: the token lacks scope '{scope}' (not refreshed; log in with more scopes)"
            );
        } else if !(200..300).contains(&resp.status) {
            eprintln!("authdeck: HTTP {}", resp.status);
        }
        Ok(if (200..300).contains(&resp.status) {
            exit::OK
        } else {
            exit::ERROR
        })
    })
}

/// `authdeck exec NAME... -- CMD [ARGS...]`: tokens in the environment, never in argv.
pub fn exec(loc: &Locations, names: &[String], command: &[String]) -> u8 {
    run(|rt| {
        let app = open_app(loc, false)?;
        let Some((program, args)) = command.split_first() else {
            return Err(AppError::Config("exec needs a command after --".into()));
        };
        let mut cmd = std::process::Command::new(program);
        cmd.args(args);
        // HARD-2: the command gets the tokens it asked for, never the vault's key.
        crate::process::prepare_child(&mut cmd);
        for name in names {
            let var = app.account(name)?.export_var_name();
            let (token, _) = rt.block_on(app.fresh_token(name, false))?;
            cmd.env(var, token.secret());
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

/// The dashboard: `authdeck` with no command. Falls back to `status` when stdout is not a
/// terminal (scripts, pipes). A passphrase vault with no passphrase in the environment is
/// unlocked inside the dashboard (a wrong passphrase asks again).
pub fn dashboard(loc: &Locations) -> u8 {
    if !std::io::stdout().is_terminal() {
        return status(loc, false);
    }
    run(|rt| {
        let config_dir = provider::config_dir(loc.config.as_deref())
            .map_err(|e| AppError::Config(e.to_string()))?;
        let backend = vault::Backend::resolve(loc.vault.as_deref(), &config_dir)?;
        // A local passphrase vault is unlocked inside the dashboard; a shared one asks (or
        // reads the environment) before raw mode.
        let path = backend.file().map(std::path::Path::to_path_buf);
        if let Some(path) = &path
            && needs_passphrase_prompt(path)?
        {
            return rt.block_on(run_locked_dashboard(config_dir, path.clone()));
        }
        // With accounts but no vault yet, a login from the dashboard will create the vault, so
        // its key is settled now (environment, or a new passphrase asked before raw mode).
        let create = has_account_files(&config_dir) && path.as_ref().is_none_or(|p| !p.exists());
        let app = open_app(loc, create)?;
        rt.block_on(run_dashboard(std::sync::Arc::new(app)))
    })
}

/// True when the config directory holds at least one account file (a directory listing only:
/// `App::new` loads and validates them right after).
fn has_account_files(config_dir: &std::path::Path) -> bool {
    std::fs::read_dir(provider::accounts_dir(config_dir)).is_ok_and(|entries| {
        entries
            .flatten()
            .any(|e| e.path().extension().is_some_and(|x| x == "toml"))
    })
}

/// True when the vault exists, wants a passphrase, and the environment gives none.
fn needs_passphrase_prompt(path: &std::path::Path) -> Result<bool, AppError> {
    if !path.exists() {
        return Ok(false);
    }
    let kind = vault::FileStore::new(path, KeySource::KeyFile(PathBuf::new())).key_kind()?;
    let env = vault::KeyEnv::from_process();
    Ok(kind == Some(vault::KeyKind::Passphrase)
        && env.passphrase.is_none()
        && env.passphrase_file.is_none())
}

/// The dashboard on a locked vault: it asks for the passphrase itself, then serves as usual.
async fn run_locked_dashboard(config_dir: PathBuf, path: PathBuf) -> Result<u8, AppError> {
    use crate::app::view::{AppEvent, UiCommand};
    let (cmd_tx, mut cmd_rx) = tokio::sync::mpsc::unbounded_channel();
    let (ev_tx, ev_rx) = tokio::sync::mpsc::unbounded_channel();
    let state =
        crate::ui::DashboardState::new(Vec::new(), SystemTime::now(), crate::ui::Theme::from_env());
    let _ = ev_tx.send(AppEvent::PassphraseNeeded { retry: false });
    let backend = tokio::spawn(async move {
        while let Some(cmd) = cmd_rx.recv().await {
            let pass = match cmd {
                UiCommand::SubmitPassphrase(p) => p,
                UiCommand::Quit => return,
                _ => continue,
            };
            let p2 = path.clone();
            let opened =
                tokio::task::spawn_blocking(move || Vault::open(p2, KeySource::Passphrase(pass)))
                    .await;
            match opened {
                Ok(Ok(vault)) => match App::new(config_dir.clone(), vault, Settings::default()) {
                    Ok(app) => {
                        crate::app::driver::serve(std::sync::Arc::new(app), cmd_rx, ev_tx).await;
                        return;
                    }
                    Err(e) => {
                        let _ = ev_tx.send(AppEvent::Notice {
                            error: true,
                            message: e.to_string(),
                        });
                        return;
                    }
                },
                Ok(Err(vault::VaultError::WrongKey { .. })) => {
                    let _ = ev_tx.send(AppEvent::PassphraseNeeded { retry: true });
                }
                Ok(Err(e)) => {
                    let _ = ev_tx.send(AppEvent::Notice {
                        error: true,
                        message: e.to_string(),
                    });
                    let _ = ev_tx.send(AppEvent::PassphraseNeeded { retry: true });
                }
                Err(_) => return,
            }
        }
    });
    let result = crate::ui::run(state, cmd_tx, ev_rx).await;
    backend.abort();
    result.map_err(|e| AppError::Config(e.to_string()))?;
    Ok(exit::OK)
}

/// Runs the dashboard on `app` until the user quits.
async fn run_dashboard(app: std::sync::Arc<App>) -> Result<u8, AppError> {
    use crate::app::driver;
    let (cmd_tx, cmd_rx) = tokio::sync::mpsc::unbounded_channel();
    let (ev_tx, ev_rx) = tokio::sync::mpsc::unbounded_channel();
    let now = SystemTime::now();
    let records = app.vault().read()?;
    let mut state = crate::ui::DashboardState::new(
        driver::account_views(&app, &records, now),
        now,
        crate::ui::Theme::from_env(),
    );
    state.preferred_login = match mode::detect() {
        LoginMode::Browser => crate::app::view::LoginMode::Browser,
        LoginMode::Paste => crate::app::view::LoginMode::Paste,
        LoginMode::Device => crate::app::view::LoginMode::Device,
    };
    let backend = tokio::spawn(driver::serve(app, cmd_rx, ev_tx));
    let result = crate::ui::run(state, cmd_tx, ev_rx).await;
    backend.abort();
    result.map_err(|e| AppError::Config(e.to_string()))?;
    Ok(exit::OK)
}

/// `authdeck demo`: the embedded server, a throwaway vault, one account logged in, then the
/// dashboard.
pub fn demo() -> u8 {
    run(|rt| {
        eprintln!("authdeck demo: starting the embedded authorization server…");
        let demo = rt.block_on(crate::app::demo::start(std::time::Duration::from_secs(30)))?;
        eprintln!(
            "authdeck demo: server {}; throwaway vault in {}",
            demo.server.issuer(),
            demo.dir().display()
        );
        let crate::app::demo::Demo { app, server, .. } = demo;
        let app = std::sync::Arc::new(app);
        let code = if std::io::stdout().is_terminal() {
            rt.block_on(run_dashboard(app.clone()))?
        } else {
            // No terminal: show what the demo set up, as `status` would.
            for s in app.statuses(SystemTime::now())? {
                println!(
                    "{}\t{}\t{}",
                    s.account,
                    s.state.as_str(),
                    s.expires_in.map_or_else(|| "-".into(), human_duration)
                );
            }
            exit::OK
        };
        drop(server);
        Ok(code)
    })
}
