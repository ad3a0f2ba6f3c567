//! `authdeck token NAME` with options: `--min-valid DURATION` and `--format xoauth2|oauthbearer
//! [--user EMAIL]` (the SASL message mail clients without XOAUTH2 support of their own want).
//! Plain `token NAME` stays on the fast path of `token::token`.

use super::context::{
    Locations, ask_agent, incomplete, light_runtime, open_app, refused, report, token_request,
};
use super::exit;
use crate::agent::protocol::{Narrow, Request};
use crate::app::AppError;
use crate::app::handoff::Handed;
use crate::app::scoped::NarrowRequest;
use crate::oauth::sasl::{self, Mechanism};
use clap::{Args, ValueEnum};
use std::io::Write;
use std::time::Duration;

/// What `token` prints.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, ValueEnum)]
pub enum TokenFormat {
    /// The access token alone (what `passwordeval` / `PassCmd` expect).
    #[default]
    Raw,
    /// base64 of `user=EMAIL^Aauth=Bearer TOKEN^A^A` (Google, Microsoft).
    Xoauth2,
    /// base64 of the RFC 7628 OAUTHBEARER message.
    Oauthbearer,
}

/// `authdeck token NAME [--min-valid D] [--format F] [--user EMAIL]`.
#[derive(Debug, Args)]
pub struct TokenArgs {
    /// The account.
    #[arg(add = super::completions::accounts())]
    pub name: String,
    /// Refresh first when less than this remains (`90s`, `10m`, `1h`).
    #[arg(long, value_name = "DURATION", value_parser = crate::app::handoff::parse_duration)]
    pub min_valid: Option<Duration>,
    /// Output format.
    #[arg(long, value_enum, default_value_t = TokenFormat::Raw)]
    pub format: TokenFormat,
    /// The SASL user name (default: the e-mail of the account's ID token).
    #[arg(long, value_name = "EMAIL", requires = "format")]
    pub user: Option<String>,
    /// Another scope, resource or audience than the account's own.
    #[command(flatten)]
    pub narrow: NarrowArgs,
}

/// `--scope`, `--resource`, `--audience`: a token for something narrower than the account's
/// own scope, obtained with its refresh token and kept beside its main token (REF-9).
#[derive(Debug, Clone, Default, Args)]
pub struct NarrowArgs {
    /// Scopes, space-separated: `--scope "Mail.Read offline_access"`.
    #[arg(long, value_name = "SCOPES", conflicts_with = "resource")]
    pub scope: Option<String>,
    /// An RFC 8707 resource URL, or a name from the account's `[resources]` (`graph`).
    #[arg(long, value_name = "URL|NAME")]
    pub resource: Option<String>,
    /// An `audience` for providers that take one.
    #[arg(long, value_name = "AUDIENCE")]
    pub audience: Option<String>,
}

impl NarrowArgs {
    /// The request for `app`.
    pub fn request(&self) -> NarrowRequest {
        NarrowRequest {
            scope: self.scope.clone(),
            resource: self.resource.clone(),
            audience: self.audience.clone(),
        }
    }
}

impl TokenArgs {
    /// Whether plain `token::token` answers this (no option given).
    pub fn is_plain(&self) -> bool {
        self.min_valid.is_none()
            && self.format == TokenFormat::Raw
            && self.narrow.request().is_empty()
    }
}

/// `authdeck export NAMES --scope/--resource/--audience`: each named account's narrowed token
/// under its usual variable.
pub fn export_narrowed(
    loc: &Locations,
    names: &[String],
    format: crate::app::export::ExportFormat,
    narrow: &NarrowArgs,
) -> u8 {
    let result = (|| -> Result<u8, AppError> {
        if names.is_empty() {
            return Err(AppError::Config(
                "name the accounts whose narrowed tokens to export".into(),
            ));
        }
        let req = narrow.request();
        let vars = match narrowed_from_agent(loc, names, &req)? {
            Some(vars) => vars,
            None => {
                let app = open_app(loc, false)?;
                let rt = light_runtime()?;
                let mut vars = Vec::new();
                for name in names {
                    let var = app.account(name)?.export_var_name();
                    let (handed, _) =
                        rt.block_on(app.token_as_asked(name, &req, Duration::ZERO))?;
                    vars.push((var, handed.token));
                }
                vars
            }
        };
        let pairs: Vec<(String, &str)> =
            vars.iter().map(|(v, t)| (v.clone(), t.secret())).collect();
        let text = crate::app::export::render(format, &pairs)
            .map_err(|e| AppError::Config(e.to_string()))?;
        let _ = std::io::stdout().lock().write_all(text.as_bytes());
        Ok(exit::OK)
    })();
    result.unwrap_or_else(|e| report(&e))
}

/// AGENT-9: the variables and narrowed tokens of `names` from the agent (`None`: no agent);
/// the first failure is the command's error, as on the direct path.
pub fn narrowed_from_agent(
    loc: &Locations,
    names: &[String],
    req: &NarrowRequest,
) -> Result<Option<Vec<(String, crate::secret::AccessToken)>>, AppError> {
    let narrow = Narrow::from_request(req);
    let Some(r) = ask_agent(loc, |origin| Request::Export {
        accounts: names.to_vec(),
        narrow: narrow.clone(),
        origin,
    })?
    else {
        return Ok(None);
    };
    if let Some(f) = r.failures.into_iter().flatten().next() {
        return Err(refused(f.failure));
    }
    let vars = r.vars.ok_or_else(|| incomplete("vars"))?;
    Ok(Some(vars.into_iter().map(|v| (v.name, v.token)).collect()))
}

/// Prints the token as asked.
pub fn run(loc: &Locations, args: &TokenArgs) -> u8 {
    match print(loc, args) {
        Ok(code) => code,
        Err(e) => report(&e),
    }
}

fn print(loc: &Locations, args: &TokenArgs) -> Result<u8, AppError> {
    let min_valid = args.min_valid.unwrap_or(Duration::ZERO);
    let req = args.narrow.request();
    // AGENT-9: the agent refreshes (narrowed tokens too) when one answers.
    let (handed, warning) = match ask_agent(loc, token_request(&args.name, min_valid, &req))? {
        Some(r) => (
            Handed {
                token: r.token.ok_or_else(|| incomplete("token"))?,
                expires_at: r.expires_at,
                email: r.email,
            },
            r.warning,
        ),
        None => {
            let app = open_app(loc, false)?;
            let (handed, how) =
                light_runtime()?.block_on(app.token_as_asked(&args.name, &req, min_valid))?;
            (handed, crate::app::access::refresh_warning(&how))
        }
    };
    if let Some(w) = warning {
        eprintln!("authdeck: warning: {w}");
    }
    let now = crate::app::status::unix(std::time::SystemTime::now());
    if crate::app::handoff::remaining_below(
        handed.expires_at,
        std::time::SystemTime::now(),
        min_valid,
    ) {
        let left = handed.expires_at.map_or(0, |e| e.saturating_sub(now));
        eprintln!(
            "authdeck: warning: {} tokens live {left} s, less than --min-valid",
            args.name
        );
    }
    let mechanism = match args.format {
        TokenFormat::Raw => {
            let _ = writeln!(std::io::stdout().lock(), "{}", handed.token.secret());
            return Ok(exit::OK);
        }
        TokenFormat::Xoauth2 => Mechanism::XOAuth2,
        TokenFormat::Oauthbearer => Mechanism::OAuthBearer,
    };
    let user = args.user.clone().or(handed.email).ok_or_else(|| {
        AppError::Config(format!(
            "{} has no e-mail from an ID token: pass --user EMAIL",
            args.name
        ))
    })?;
    let message = sasl::initial_response(mechanism, &user, &handed.token, None, None)
        .map_err(|e| AppError::Config(e.to_string()))?;
    let _ = writeln!(std::io::stdout().lock(), "{}", message.secret());
    Ok(exit::OK)
}
