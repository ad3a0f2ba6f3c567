//! `authdeck kube-credential NAME [--id-token]`: kubectl's exec credential plugin.
//!
//! kubeconfig:
//! ```yaml
//! users:
//! - name: work
//!   user:
//!     exec:
//!       apiVersion: client.authentication.k8s.io/v1
//!       command: authdeck
//!       args: [kube-credential, work]
//!       interactiveMode: Never
//! ```

use super::context::{Locations, ask_agent, incomplete, light_runtime, open_parts, report};
use super::exit;
use crate::agent::protocol::{Narrow, Request};
use crate::app::export::Source;
use crate::app::kubecred;
use crate::app::refresh::Refreshed;
use crate::app::{App, AppError, Settings};
use crate::secret::AnyToken;
use clap::Args;
use std::io::Write;
use std::time::Duration;

/// `authdeck kube-credential NAME [--id-token]`.
#[derive(Debug, Args)]
pub struct KubeCredentialArgs {
    /// The account.
    #[arg(add = super::completions::accounts())]
    pub name: String,
    /// Hand over the account's ID token instead of the access token (the Kubernetes OIDC
    /// authenticator takes ID tokens).
    #[arg(long)]
    pub id_token: bool,
}

/// Prints one ExecCredential.
pub fn run(loc: &Locations, args: &KubeCredentialArgs) -> u8 {
    let exec_info = std::env::var("KUBERNETES_EXEC_INFO").ok();
    let version = match kubecred::requested_version(exec_info.as_deref()) {
        Ok(v) => v,
        Err(e) => {
            eprintln!("authdeck: kube-credential: {e}");
            return exit::ERROR;
        }
    };
    let result = token(loc, args)
        .map(|(token, expires_at)| kubecred::exec_credential(version, &token, expires_at));
    match result {
        Ok(json) => {
            let _ = writeln!(std::io::stdout().lock(), "{json}");
            exit::OK
        }
        Err(e) => report(&e),
    }
}

/// The token and its expiry, from the agent when one answers (AGENT-9), else the vault. The
/// agent hands out the ID token only to this explicit request (KUBE-2, AGENT-4).
fn token(loc: &Locations, args: &KubeCredentialArgs) -> Result<(AnyToken, Option<i64>), AppError> {
    let id_token = args.id_token;
    let account = args.name.clone();
    let asked = ask_agent(loc, |origin| Request::Token {
        account: account.clone(),
        min_valid: 0,
        force: false,
        narrow: Narrow::default(),
        id_token,
        origin,
    })?;
    if let Some(r) = asked {
        if let Some(w) = &r.warning {
            eprintln!("authdeck: warning: {w}");
        }
        let token = if id_token {
            r.id_token.map(|t| AnyToken::new(t.secret()))
        } else {
            r.token.map(|t| AnyToken::new(t.secret()))
        };
        return Ok((token.ok_or_else(|| incomplete("token"))?, r.expires_at));
    }
    let (config_dir, vault) = open_parts(loc, false)?;
    let app = if args.id_token {
        App::new(config_dir, vault, Settings::default())?
    } else {
        // The access token as `token` finds it: from the account index when it is current and
        // the token not due, with no account file read (docs/benchmarks.md, "Agent").
        let names = [args.name.clone()];
        match App::for_export(config_dir, vault, &names, Settings::default())? {
            Source::Indexed(mut vars, snap) => {
                let Some((_, token)) = vars.pop() else {
                    return Err(AppError::UnknownAccount(args.name.clone()));
                };
                let expires_at = snap.records.get(&args.name).and_then(|r| r.expires_at);
                return Ok((AnyToken::new(token.secret()), expires_at));
            }
            Source::Loaded(app) => *app,
        }
    };
    let rt = light_runtime()?;
    let (token, expires_at) = if args.id_token {
        rt.block_on(app.hand_id_token(&args.name))?
    } else {
        let (handed, how) = rt.block_on(app.hand_token(&args.name, Duration::ZERO))?;
        if let Refreshed::FailedButValid { reason } = how {
            eprintln!(
                "authdeck: warning: refresh failed ({reason}); the current token is still valid"
            );
        }
        (AnyToken::new(handed.token.secret()), handed.expires_at)
    };
    Ok((token, expires_at))
}
