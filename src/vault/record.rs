//! Account records: what the vault stores per account (VAULT-6). The vault knows
//! an account by its name and its provider only by name; never a PKCE verifier or `state`.

use crate::secret::{AccessToken, ClientSecret, IdToken, RefreshToken};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// All accounts, keyed by account name (sorted, so the serialized form is stable).
pub type Records = BTreeMap<String, Record>;

/// Seconds since the Unix epoch.
pub type UnixSeconds = i64;

/// One account's tokens and status. Every field defaults, so older files read into newer code.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Record {
    /// The provider (template) name this account uses; informational for the vault.
    pub provider: String,
    /// The issuer that granted the tokens, when known.
    pub issuer: Option<String>,
    /// The client_id the tokens were issued to.
    pub client_id: Option<String>,
    /// The current access token.
    pub access_token: Option<AccessToken>,
    /// The current refresh token.
    pub refresh_token: Option<RefreshToken>,
    /// `token_type` from the token response (usually "Bearer").
    pub token_type: Option<String>,
    /// Granted scopes (from the response, or the requested ones when the server omitted them).
    pub scopes: Vec<String>,
    /// When the current tokens were obtained.
    pub obtained_at: Option<UnixSeconds>,
    /// Absolute expiry of the access token; `None` when the server did not say.
    pub expires_at: Option<UnixSeconds>,
    /// A summary of the id_token claims.
    pub claims: Claims,
    /// The last id_token, kept for `kube-credential --id-token` (the Kubernetes OIDC
    /// authenticator takes ID tokens). Encrypted like every token; never exported otherwise.
    pub id_token: Option<IdToken>,
    /// The last refresh attempt, if any.
    pub last_refresh: Option<RefreshAttempt>,
    /// How many refreshes have succeeded.
    pub refresh_count: u64,
    /// Whether the tokens are usable.
    pub state: StoredState,
    /// A client secret stored here instead of in the account's TOML (optional).
    pub client_secret: Option<ClientSecret>,
    /// Narrower tokens obtained with the refresh token (`token --scope/--resource/--audience`),
    /// keyed by what was asked (REF-9). Each is refreshed on its own; none holds a refresh
    /// token (that stays the account's one).
    pub narrowed: BTreeMap<String, NarrowedToken>,
    /// The grant of the last login (PROV-2: a device-grant token may refresh with another
    /// client authentication). `None` in records written before it was kept.
    pub login_grant: Option<LoginGrant>,
    /// The redirect URI of the last browser or paste login, sent again on refresh when the
    /// provider wants it (PROV-5). Not a secret.
    pub redirect_uri: Option<String>,
}

/// The grant a login used.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LoginGrant {
    /// Authorization code (browser or paste mode).
    Code,
    /// Device authorization grant (RFC 8628).
    Device,
}

/// A token for another scope, resource or audience than the account's own (REF-9).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct NarrowedToken {
    /// The access token.
    pub access_token: Option<AccessToken>,
    /// Granted scopes.
    pub scopes: Vec<String>,
    /// When it was obtained.
    pub obtained_at: Option<UnixSeconds>,
    /// Its absolute expiry, when the server said.
    pub expires_at: Option<UnixSeconds>,
}

/// The id_token claims worth showing.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Claims {
    /// `sub`.
    pub subject: Option<String>,
    /// `email`.
    pub email: Option<String>,
    /// `name`.
    pub name: Option<String>,
    /// The id_token's signature and claims were verified (DISC-5); false for claims kept for
    /// display only (no issuer keys to check them with) and in vaults written before.
    pub verified: bool,
}

/// When the last refresh ran and how it ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RefreshAttempt {
    /// When it finished.
    pub at: UnixSeconds,
    /// How it ended.
    pub outcome: RefreshOutcome,
}

/// The result of one refresh.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "result", rename_all = "snake_case")]
pub enum RefreshOutcome {
    /// New tokens were stored.
    Ok,
    /// It failed; `message` is a one-line, secret-free description.
    Failed {
        /// What went wrong.
        message: String,
    },
}

/// What the vault remembers about whether an account's tokens can be used. (What users see is
/// computed by `app` from this and the clock.)
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum StoredState {
    /// Tokens present and believed good.
    Valid,
    /// No usable tokens: the user must log in (again). The default for a new record.
    #[default]
    NeedsLogin,
    /// The last operation failed; `message` is one secret-free line.
    Error {
        /// What went wrong.
        message: String,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn old_records_with_missing_fields_still_parse() {
        let r: Record = serde_json::from_str(r#"{"provider":"github"}"#).unwrap();
        assert_eq!(r.provider, "github");
        assert_eq!(r.state, StoredState::NeedsLogin);
        assert_eq!(r.expires_at, None);
    }

    #[test]
    fn debug_never_shows_tokens() {
        let r = Record {
            access_token: Some(AccessToken::new("at-visible?")),
            client_secret: Some(ClientSecret::new("cs-visible?")),
            ..Record::default()
        };
        let dbg = format!("{r:?}");
        assert!(!dbg.contains("visible?"), "{dbg}");
    }

    #[test]
    fn state_serializes_tagged() {
        let s = StoredState::Error {
            message: "invalid_grant".into(),
        };
        assert_eq!(
            serde_json::to_string(&s).unwrap(),
            r#"{"state":"error","message":"invalid_grant"}"#
        );
    }
}
