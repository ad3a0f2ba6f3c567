//! Getting tokens out: what `token`, `--export` and the agent's answers share, so the agent
//! path and the direct path produce the same tokens, the same warnings and the same errors
//! (AGENT-9).

use super::export::Opened;
use super::gitcred;
use super::handoff::Handed;
use super::refresh::{Refreshed, token_if_not_due};
use super::status::{human_duration, unix};
use super::{App, AppError, Result, Settings};
use crate::provider::Index;
use crate::secret::AccessToken;
use crate::vault::{Snapshot, Tokens, Vault};
use std::path::PathBuf;
use std::time::{Duration, SystemTime};

/// One account's export result: its (variable, token), or why it has none.
pub type ExportSlot = Result<(String, AccessToken)>;

impl App {
    /// Accounts with tokens in `snap` and a file, valid or not (a broken one is then named with
    /// its problem rather than skipped without a word), in name order.
    pub fn logged_in(&self, snap: &Snapshot) -> Vec<String> {
        snap.records
            .iter()
            .filter(|(name, r)| {
                r.access_token.is_some()
                    && !matches!(self.account(name), Err(AppError::UnknownAccount(_)))
            })
            .map(|(name, _)| name.clone())
            .collect()
    }

    /// `--export NAMES` (every logged-in account when empty): each account's (variable, token)
    /// or error, in order; what is due is refreshed first.
    pub async fn export_slots(&self, names: &[String]) -> Result<Vec<(String, ExportSlot)>> {
        let snap = self.current()?;
        let names: Vec<String> = if names.is_empty() {
            self.logged_in(&snap)
        } else {
            names.to_vec()
        };
        let now = SystemTime::now();
        let mut out = Vec::with_capacity(names.len());
        for name in names {
            let slot = match self.account(&name).map(|p| p.export_var_name()) {
                Ok(var) => match token_if_not_due(&name, snap.records.get(&name), now) {
                    Some(token) => token.map(|t| (var, t)),
                    None => self.fresh_token(&name, false).await.map(|(t, _)| (var, t)),
                },
                Err(e) => Err(e),
            };
            out.push((name, slot));
        }
        Ok(out)
    }
}

/// What `git-credential get` answers (GIT-2): the account its `git_urls` chose, the user name
/// and a fresh token.
#[derive(Debug)]
pub struct GitAnswer {
    /// The account chosen (GIT-1).
    pub account: String,
    /// `username` (GIT-2).
    pub username: String,
    /// The token and its expiry.
    pub handed: Handed,
    /// How it was obtained (a transient refresh failure is warned about).
    pub how: Refreshed,
}

impl App {
    /// The account whose `git_urls` match `req` best (GIT-1), if any.
    pub fn git_account(&self, req: &gitcred::Request) -> Option<String> {
        let accounts: Vec<(&str, &[crate::provider::GitUrl])> = self
            .loaded()
            .accounts
            .iter()
            .map(|p| (p.name.as_str(), p.git_urls.as_slice()))
            .collect();
        gitcred::choose(req, accounts).map(str::to_owned)
    }

    /// `git-credential get`: `None` when no account matches (GIT-3), else the answer.
    pub async fn git_get(&self, req: &gitcred::Request) -> Result<Option<GitAnswer>> {
        let Some(account) = self.git_account(req) else {
            return Ok(None);
        };
        let (handed, how) = self.hand_token(&account, Duration::ZERO).await?;
        let username = self
            .account(&account)
            .ok()
            .and_then(|p| p.git_username.clone())
            .unwrap_or_else(|| {
                let template = self.account(&account).ok().and_then(|p| p.template.clone());
                gitcred::default_username(template.as_deref()).to_owned()
            });
        Ok(Some(GitAnswer {
            account,
            username,
            handed,
            how,
        }))
    }

    /// What `git-credential get` needs: the answer straight from the vault when the account
    /// index is current and, if an account matches, its token is not due — no account file is
    /// read, as for `token` (docs/benchmarks.md, "`--export` of 50 accounts; git-credential
    /// and kube-credential beside `token`") — else the app with the accounts loaded, which
    /// chooses and refreshes as [`App::git_get`] does.
    pub fn for_git(
        config_dir: PathBuf,
        vault: Vault,
        req: &gitcred::Request,
        settings: Settings,
    ) -> Result<GitSource> {
        let now = SystemTime::now();
        let opened = App::open_indexed(config_dir, vault, settings, |index, snap| {
            git_from_index(index, snap, req, now)
        })?;
        Ok(match opened {
            Opened::Indexed(answer, _) => GitSource::Indexed(answer),
            Opened::Loaded(app) => GitSource::Loaded(app),
        })
    }

    /// `git-credential erase`: marks the matching account's token stale when it is the one git
    /// used (GIT-4).
    pub fn git_erase(&self, req: &gitcred::Request) -> Result<()> {
        let Some(rejected) = &req.password else {
            return Ok(());
        };
        match self.git_account(req) {
            Some(name) => self.mark_stale(&name, rejected).map(|_| ()),
            None => Ok(()),
        }
    }
}

/// Where `git-credential get` takes its answer from (see [`App::for_git`]).
#[derive(Debug)]
pub enum GitSource {
    /// The account index answered: `None` when no account's `git_urls` match (GIT-3).
    Indexed(Option<GitAnswer>),
    /// The account files were loaded: ask [`App::git_get`].
    Loaded(Box<App>),
}

/// GIT-1, GIT-2 from a current account index: `Some(None)` when no valid account matches,
/// `Some(answer)` when the chosen account's token is present and not due, `None` when the
/// loaded path must decide (a token to refresh, a login needed: its error says so).
fn git_from_index(
    index: &Index,
    snap: &Tokens,
    req: &gitcred::Request,
    now: SystemTime,
) -> Option<Option<GitAnswer>> {
    // The index lists the accounts that loaded without errors, as `git_account` chooses from.
    let Some(account) = gitcred::choose(req, index.git_urls()) else {
        return Some(None);
    };
    let (git_username, template) = index.git_user(account)?;
    let record = snap.records.get(account);
    let token = token_if_not_due(account, record, now)?.ok()?;
    let username = git_username.map_or_else(
        || gitcred::default_username(template).to_owned(),
        str::to_owned,
    );
    Some(Some(GitAnswer {
        account: account.to_owned(),
        username,
        // git takes no e-mail; the token fields hold none.
        handed: Handed {
            token,
            expires_at: record.and_then(|r| r.expires_at),
            email: None,
        },
        how: Refreshed::NotDue,
    }))
}

/// The stderr line (after `authdeck: warning: `) for a refresh that failed while the token is
/// still valid, the same for `token`, `kube-credential` and the agent's answers.
pub fn refresh_warning(how: &Refreshed) -> Option<String> {
    match how {
        Refreshed::FailedButValid { reason } => Some(format!(
            "refresh failed ({reason}); the current token is still valid"
        )),
        _ => None,
    }
}

/// How `authdeck logout` words its outcome, after `NAME: `.
pub fn logout_note(had_tokens: bool) -> &'static str {
    if had_tokens {
        "logged out (tokens removed from the vault; not revoked at the provider)"
    } else {
        "was not logged in"
    }
}

/// How `authdeck refresh` words one account's outcome.
pub fn describe(how: &Refreshed) -> String {
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
