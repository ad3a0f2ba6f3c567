//! Composes `oauth`, `vault` and `provider`: login, refresh with one request in flight per
//! account across processes, export, authenticated requests, the demo. `cli` and `ui` are thin
//! faces on it.

pub mod access;
pub mod browser;
pub mod dashboard;
pub mod demo;
pub mod driver;
pub mod error;
pub mod exit;
pub mod export;
pub mod gitcred;
pub mod handoff;
pub mod hooks;
mod idtoken;
pub mod kubecred;
pub mod login;
mod machine;
pub mod mode;
pub mod ops;
pub mod refresh;
pub mod request;
mod rescue;
pub mod schedule;
pub mod scoped;
pub mod status;
pub mod timefmt;
pub mod view;

pub use error::{AppError, Result};
pub use status::{AccountStatus, Health};

use crate::oauth::{ClientAuth, ClientConfig, ClientSettings, OAuthClient, TokenSet};
use crate::provider::{self, Loaded, Provider};
use crate::secret::ClientSecret;
use crate::vault::{Claims, LoginGrant, Record, Snapshot, StoredState, Vault};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, SystemTime};

/// Settings of an [`App`] that callers may change (tests shrink timeouts).
#[derive(Debug, Clone)]
pub struct Settings {
    /// How long a login waits for the browser / paste / device approval (CB-12: 5 min).
    pub login_timeout: Duration,
    /// HTTP timeouts and the retry policy.
    pub http: ClientSettings,
    /// How many refreshes run at once in `refresh --all` and the scheduler.
    pub refresh_concurrency: usize,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            login_timeout: Duration::from_secs(300),
            http: ClientSettings::default(),
            refresh_concurrency: 32,
        }
    }
}

/// The application: the loaded accounts, the vault and an OAuth client.
#[derive(Debug)]
pub struct App {
    config_dir: PathBuf,
    loaded: Loaded,
    vault: Vault,
    /// Built on first use: commands that make no request (`--export` of valid tokens, `status`)
    /// never pay for the TLS configuration.
    oauth: OnceLock<OAuthClient>,
    settings: Settings,
    /// The last decrypted vault, reused while the header's generation is unchanged, so that
    /// asking for many accounts' tokens decrypts the vault once, not once per account.
    snapshot: Mutex<Option<Arc<Snapshot>>>,
    /// Discovery results per issuer, so one process asks each issuer once.
    discovered: Mutex<HashMap<String, crate::oauth::ProviderMetadata>>,
}

impl App {
    /// Builds the app from a config dir and an opened vault.
    pub fn new(config_dir: PathBuf, vault: Vault, settings: Settings) -> Result<App> {
        let loaded = provider::load_accounts(&config_dir);
        let opened = vault.take_opened().map(Arc::new);
        Ok(App::assemble(config_dir, loaded, vault, opened, settings))
    }

    /// The app from its parts; `opened` is a snapshot of `vault` already decrypted.
    fn assemble(
        config_dir: PathBuf,
        loaded: Loaded,
        vault: Vault,
        opened: Option<Arc<Snapshot>>,
        settings: Settings,
    ) -> App {
        App {
            config_dir,
            loaded,
            vault,
            oauth: OnceLock::new(),
            settings,
            snapshot: Mutex::new(opened),
            discovered: Mutex::new(HashMap::new()),
        }
    }

    /// The configuration directory.
    pub fn config_dir(&self) -> &Path {
        &self.config_dir
    }

    /// The loaded accounts and the problems found.
    pub fn loaded(&self) -> &Loaded {
        &self.loaded
    }

    /// The vault.
    pub fn vault(&self) -> &Vault {
        &self.vault
    }

    /// The OAuth client, built on first use.
    pub fn oauth(&self) -> Result<&OAuthClient> {
        if let Some(client) = self.oauth.get() {
            return Ok(client);
        }
        let client = OAuthClient::with_settings(self.settings.http.clone())
            .map_err(|e| AppError::Config(e.to_string()))?;
        // Two tasks may race to build it; either client is fine.
        Ok(self.oauth.get_or_init(|| client))
    }

    /// The vault as it is now: the cached snapshot while the vault's generation (read from
    /// the header, no decryption) is unchanged, else a fresh decryption.
    pub fn current(&self) -> Result<Arc<Snapshot>> {
        let generation = self.vault.generation()?;
        if let Some(snap) = self.cached_snapshot()
            && snap.generation == generation
        {
            return Ok(snap);
        }
        let snap = Arc::new(self.vault.snapshot()?);
        self.remember(snap.clone());
        Ok(snap)
    }

    /// The cached snapshot, if any (possibly stale: compare its generation).
    fn cached_snapshot(&self) -> Option<Arc<Snapshot>> {
        self.snapshot.lock().ok().and_then(|s| s.clone())
    }

    /// Caches `snap` unless a newer one is cached already.
    fn remember(&self, snap: Arc<Snapshot>) {
        if let Ok(mut cached) = self.snapshot.lock()
            && cached
                .as_ref()
                .is_none_or(|c| c.generation <= snap.generation)
        {
            *cached = Some(snap);
        }
    }

    /// The settings.
    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    /// All account names, sorted.
    pub fn account_names(&self) -> Vec<String> {
        let mut names: Vec<String> = self
            .loaded
            .accounts
            .iter()
            .map(|p| p.name.clone())
            .collect();
        names.sort();
        names
    }

    /// The account called `name`, or why it cannot be used.
    pub fn account(&self, name: &str) -> Result<&Provider> {
        if let Some(p) = self.loaded.accounts.iter().find(|p| p.name == name) {
            return Ok(p);
        }
        let problems: Vec<String> = self
            .loaded
            .problems
            .iter()
            .filter(|p| p.is_error() && problem_is_for(&p.file, name))
            .map(ToString::to_string)
            .collect();
        if problems.is_empty() {
            Err(AppError::UnknownAccount(name.to_string()))
        } else {
            Err(AppError::BadAccount {
                name: name.to_string(),
                details: problems.join("\n"),
            })
        }
    }

    /// The status of every account at `now`.
    pub fn statuses(&self, now: SystemTime) -> Result<Vec<AccountStatus>> {
        let snap = self.current()?;
        let records = &snap.records;
        let mut out: Vec<AccountStatus> = self
            .loaded
            .accounts
            .iter()
            .map(|p| status::account_status(p, records.get(&p.name), now))
            .collect();
        out.sort_by(|a, b| a.account.cmp(&b.account));
        Ok(out)
    }

    /// The engine configuration for `account`: the provider file, a client secret from the
    /// vault when the file names none, and discovery for missing endpoints.
    pub async fn client_config(&self, account: &Provider) -> Result<ClientConfig> {
        self.client_config_for(account, LoginGrant::Code).await
    }

    /// [`client_config`](Self::client_config) for a grant: the device grant uses the account's
    /// `device_client_auth` (PROV-2).
    pub async fn client_config_for(
        &self,
        account: &Provider,
        grant: LoginGrant,
    ) -> Result<ClientConfig> {
        let stored_secret = match &account.client_secret {
            Some(_) => None,
            None => self
                .current()?
                .records
                .get(&account.name)
                .and_then(|r| r.client_secret.clone()),
        };
        self.client_config_with(account, stored_secret, grant).await
    }

    /// [`client_config`](Self::client_config) with the vault's client secret already looked up.
    pub(crate) async fn client_config_with(
        &self,
        account: &Provider,
        stored_secret: Option<ClientSecret>,
        grant: LoginGrant,
    ) -> Result<ClientConfig> {
        let mut cfg = grant_config(account, stored_secret, grant)?;
        if account.needs_discovery()
            && let Some(issuer) = cfg.issuer.clone()
        {
            let meta = self.discover(&account.name, &issuer).await?;
            cfg.fill_from(&meta);
        }
        Ok(cfg)
    }

    async fn discover(&self, name: &str, issuer: &str) -> Result<crate::oauth::ProviderMetadata> {
        if let Some(meta) = self
            .discovered
            .lock()
            .ok()
            .and_then(|m| m.get(issuer).cloned())
        {
            return Ok(meta);
        }
        let meta = self
            .oauth()?
            .discover(issuer)
            .await
            .map_err(|e| AppError::oauth(name, e))?;
        if let Ok(mut cache) = self.discovered.lock() {
            cache.insert(issuer.to_string(), meta.clone());
        }
        Ok(meta)
    }
}

/// True when a problem reported for `file` concerns account `name` (`.../name.toml`).
fn problem_is_for(file: &str, name: &str) -> bool {
    Path::new(file)
        .file_stem()
        .is_some_and(|stem| stem.to_string_lossy() == name)
}

/// An issuer URL as the provider spells it: `url` adds a `/` to a bare origin, which would
/// break the exact issuer comparisons of DISC-3 and AUTHZ-4.
pub fn issuer_string(url: &url::Url) -> String {
    let s = url.as_str();
    if url.path() == "/" && url.query().is_none() {
        s.trim_end_matches('/').to_string()
    } else {
        s.to_string()
    }
}

/// Maps a provider file onto the engine's configuration (no network), for the authorization
/// code grant.
pub fn base_config(p: &Provider, stored_secret: Option<ClientSecret>) -> Result<ClientConfig> {
    grant_config(p, stored_secret, LoginGrant::Code)
}

/// The configuration for refreshing `record`'s tokens: the client authentication of the grant
/// that obtained them (PROV-2) and, when the provider wants it, the login's `redirect_uri`
/// (PROV-5).
pub fn refresh_config(mut cfg: ClientConfig, account: &Provider, record: &Record) -> ClientConfig {
    if account.send_redirect_uri_on_refresh {
        cfg.refresh_redirect_uri = record.redirect_uri.clone();
    }
    cfg
}

/// MACH-2: the client's private key, read now (mode 0600) so a missing, open or unusable file
/// is a configuration error naming the file, before anything is sent.
fn client_key_auth(p: &Provider) -> Result<ClientAuth> {
    let path = p.client_key_file.as_deref().ok_or_else(|| {
        AppError::Config(format!(
            "account '{}': client_auth = \"private_key_jwt\" needs client_key_file",
            p.name
        ))
    })?;
    crate::oauth::client_assertion::ClientKey::load(path, p.client_key_id.clone())
        .map(ClientAuth::PrivateKeyJwt)
        .map_err(|e| AppError::Config(format!("account '{}': {e}", p.name)))
}

/// [`base_config`] for `grant`: the device grant, and refreshes of the tokens it issued,
/// authenticate as `device_client_auth` says (PROV-2: GitHub needs no secret there).
///
/// A method that needs a secret (`basic`, `post`) and finds none, in the file or the vault, is
/// a configuration error here, before anything is sent. Through an exchange proxy the account
/// holds no secret: the proxy authenticates the client (PROXY-3), so the account sends none.
pub fn grant_config(
    p: &Provider,
    stored_secret: Option<ClientSecret>,
    grant: LoginGrant,
) -> Result<ClientConfig> {
    // PROV-10: a device client of its own (Google) brings its own id and secret.
    let (client_id, client_secret) = match (grant, &p.device_client_id) {
        (LoginGrant::Device, Some(id)) => (id.clone(), p.device_client_secret.clone()),
        _ => (
            p.client_id.clone().unwrap_or_default(),
            p.client_secret.clone().or(stored_secret),
        ),
    };
    let method = match grant {
        LoginGrant::Code => p.client_auth,
        LoginGrant::Device => p.device_client_auth,
    };
    let client_auth = match ClientAuth::new(method, client_secret) {
        Ok(auth) => auth,
        Err(crate::oauth::AuthMethod::PrivateKeyJwt) => client_key_auth(p)?,
        Err(_) if p.exchange_proxy.is_some() => ClientAuth::None,
        Err(method) => {
            return Err(AppError::Config(format!(
                "account '{}': client authentication '{}' needs a client secret: set \
                 client_secret_env in the account file (or store it in the vault)",
                p.name,
                method.as_str()
            )));
        }
    };
    Ok(ClientConfig {
        client_id,
        client_auth,
        revocation_format: p.revocation_format,
        issuer_aliases: p.issuer_aliases.clone(),
        refresh_redirect_uri: None,
        issuer: p.issuer.as_ref().map(issuer_string),
        authorization_endpoint: p.authorization_endpoint.clone(),
        token_endpoint: p.token_endpoint.clone(),
        revocation_endpoint: p.revocation_endpoint.clone(),
        device_authorization_endpoint: p.device_authorization_endpoint.clone(),
        scopes: p.scopes.clone(),
        auth_params: p
            .auth_params
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect(),
        token_params: p
            .token_params
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect(),
        scope_on_refresh: p.send_scope_on_refresh,
        default_lifetime: p.default_lifetime_secs.map(Duration::from_secs),
        // Set by discovery (AUTHZ-4).
        require_iss: false,
    })
}

/// EXP-3: the one-line, secret-free warning for a login or refresh that produced a token of
/// unknown lifetime (`expires_at` is `None`), or `None` when the expiry is known. Shown once per
/// token acquisition (by `login`, `refresh` and the dashboard), never by `token`/`--export`.
pub fn unknown_expiry_warning(account: &str, expires_at: Option<i64>) -> Option<String> {
    expires_at.is_none().then(|| {
        format!(
            "{account}: the provider did not say when the token expires; authdeck will refresh \
             it only when a request gets a 401 (set default_lifetime_secs in the account file \
             to refresh on a timer)"
        )
    })
}

/// The record a login stores (HARD-10): a fresh one, not the previous login's with new tokens.
/// It keeps only what the user put there (a client secret stored in the vault). The previous
/// refresh token survives only when this login returned none and its ID token names the same
/// subject at the same issuer as the stored claims; the identity comes from this login's ID
/// token alone (none: no identity shown).
pub fn login_record(
    previous: Option<&Record>,
    provider: &Provider,
    cfg: &ClientConfig,
    tokens: TokenSet,
) -> Record {
    let same_user = previous.is_some_and(|p| {
        p.issuer == cfg.issuer
            && p.claims.subject.is_some()
            && tokens.claims.as_ref().map(|c| &c.sub) == Some(&p.claims.subject)
    });
    let inherited = previous
        .filter(|_| same_user && tokens.refresh_token.is_none())
        .and_then(|p| p.refresh_token.clone());
    let fresh = Record {
        client_secret: previous.and_then(|p| p.client_secret.clone()),
        ..Record::default()
    };
    let mut rec = apply_tokens(Some(&fresh), provider, cfg, tokens);
    if rec.refresh_token.is_none() {
        rec.refresh_token = inherited;
    }
    rec
}

/// A fresh record (or an updated one) from a token response. Keeps the old refresh token when
/// the response carries none (REF-4) and the stored client secret.
pub fn apply_tokens(
    previous: Option<&Record>,
    provider: &Provider,
    cfg: &ClientConfig,
    tokens: TokenSet,
) -> Record {
    let mut rec = previous.cloned().unwrap_or_default();
    rec.provider = provider
        .template
        .clone()
        .unwrap_or_else(|| provider.name.clone());
    rec.issuer = cfg.issuer.clone();
    rec.client_id = Some(cfg.client_id.clone());
    rec.access_token = Some(tokens.access_token.clone());
    if let Some(rt) = &tokens.refresh_token {
        rec.refresh_token = Some(rt.clone());
    }
    rec.token_type = Some(tokens.token_type.clone());
    rec.scopes = tokens.scopes.clone();
    rec.obtained_at = Some(status::unix(tokens.obtained_at));
    rec.expires_at = tokens.expires_at.map(status::unix);
    if let Some(id) = &tokens.id_token {
        rec.id_token = Some(id.clone());
    }
    if let Some(claims) = &tokens.claims {
        rec.claims = Claims {
            subject: claims.sub.clone(),
            email: claims.email.clone(),
            name: claims.name.clone(),
            verified: claims.verified,
        };
    }
    rec.state = StoredState::Valid;
    rec
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::vault::{KeySource, VaultError, generate_key_file};

    #[test]
    fn current_reuses_the_snapshot_until_the_generation_changes() {
        let dir = tempfile::tempdir().unwrap();
        let key = dir.path().join("vault.key");
        generate_key_file(&key).unwrap();
        let path = dir.path().join("vault.bin");
        let vault = Vault::create(&path, KeySource::KeyFile(key.clone())).unwrap();
        let app = App::new(dir.path().join("config"), vault, Settings::default()).unwrap();
        let first = app.current().unwrap();
        assert!(
            Arc::ptr_eq(&first, &app.current().unwrap()),
            "unchanged: no re-read"
        );
        // Another process saves: the next call sees it.
        let other = Vault::open(&path, KeySource::KeyFile(key)).unwrap();
        other
            .update(|r| {
                r.insert("a".into(), Record::default());
                Ok::<_, VaultError>(())
            })
            .unwrap();
        let second = app.current().unwrap();
        assert_eq!(second.generation, first.generation + 1);
        assert!(second.records.contains_key("a"));
        assert!(Arc::ptr_eq(&second, &app.current().unwrap()));
    }

    #[test]
    fn exp3_warning_only_for_an_unknown_expiry() {
        let w = unknown_expiry_warning("demo", None).unwrap();
        assert!(w.starts_with("demo: "), "{w}");
        assert!(w.contains("did not say when the token expires"), "{w}");
        assert!(w.contains("401"), "{w}");
        assert!(!w.contains('\n'), "one line: {w}");
        assert_eq!(unknown_expiry_warning("demo", Some(1_700_000_000)), None);
    }

    /// EXP-3 end to end through `apply_tokens`: an unusable `expires_in` with no profile default
    /// stores an unknown expiry (never due, USE-2 applies); with `default_lifetime_secs` the
    /// default is stored; a usable value wins over the default.
    #[test]
    fn hard10_login_record_is_fresh_and_keeps_a_refresh_token_only_for_the_same_user() {
        use crate::oauth::IdClaims;
        use crate::oauth::token::parse_token_response;
        use crate::secret::{ClientSecret, RefreshToken};
        let p = test_provider();
        let mut cfg = base_config(&p, None).unwrap();
        cfg.issuer = Some("https://as.example".into());
        let tokens = |refresh: bool, sub: Option<&str>| {
            let rt = if refresh {
                r#","refresh_token":"rt-new""#
            } else {
                ""
            };
            let body = format!(r#"{{"access_token":"at","token_type":"Bearer"{rt}}}"#);
            let mut t = parse_token_response(
                200,
                None,
                body.as_bytes(),
                &[],
                None,
                std::time::SystemTime::now(),
            )
            .unwrap();
            t.claims = sub.map(|s| IdClaims {
                sub: Some(s.into()),
                email: Some(format!("{s}@example.com")),
                ..IdClaims::default()
            });
            t
        };
        let a = login_record(None, &p, &cfg, tokens(true, Some("user-a")));
        let a = Record {
            refresh_count: 7,
            client_secret: Some(ClientSecret::new("kept-secret")),
            ..a
        };
        // Another user, no refresh token: A's refresh token and claims do not carry over.
        let b = login_record(Some(&a), &p, &cfg, tokens(false, Some("user-b")));
        assert!(
            b.refresh_token.is_none(),
            "B must not inherit A's refresh token"
        );
        assert_eq!(b.claims.subject.as_deref(), Some("user-b"));
        assert_eq!(b.refresh_count, 0);
        assert_eq!(
            b.client_secret.as_ref().map(|s| s.secret().to_owned()),
            Some("kept-secret".into()),
            "what the user stored stays"
        );
        // The same user, no refresh token: the old one is kept (REF-4 for a re-login).
        let a2 = login_record(Some(&a), &p, &cfg, tokens(false, Some("user-a")));
        assert_eq!(
            a2.refresh_token.as_ref().map(RefreshToken::secret),
            Some("rt-new")
        );
        // No ID token: no identity, and no proof of the same user.
        let anon = login_record(Some(&a), &p, &cfg, tokens(false, None));
        assert_eq!(anon.claims, Claims::default());
        assert!(anon.refresh_token.is_none());
    }

    #[test]
    fn exp3_apply_tokens_stores_default_or_unknown_expiry() {
        use crate::oauth::token::parse_token_response;
        let sent = std::time::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let mut p = test_provider();
        for (expires_in, default, want) in [
            ("", None, None),
            (r#","expires_in":0"#, None, None),
            (r#","expires_in":-5"#, None, None),
            (r#","expires_in":"abc""#, None, None),
            ("", Some(600), Some(600)),
            (r#","expires_in":0"#, Some(600), Some(600)),
            (r#","expires_in":-5"#, Some(600), Some(600)),
            (r#","expires_in":"abc""#, Some(600), Some(600)),
            (r#","expires_in":"3600""#, Some(600), Some(3600)),
            (r#","expires_in":3600"#, None, Some(3600)),
        ] {
            p.default_lifetime_secs = default;
            let cfg = base_config(&p, None).unwrap();
            let body = format!(r#"{{"access_token":"at","token_type":"Bearer"{expires_in}}}"#);
            let tokens =
                parse_token_response(200, None, body.as_bytes(), &[], cfg.default_lifetime, sent)
                    .unwrap();
            let rec = apply_tokens(None, &p, &cfg, tokens);
            assert_eq!(rec.obtained_at, Some(1_700_000_000));
            assert_eq!(
                rec.expires_at,
                want.map(|w| 1_700_000_000 + w),
                "{expires_in} default {default:?}"
            );
            let far_future = status::from_unix(1_700_000_000 + 10 * 365 * 86_400);
            assert_eq!(
                status::is_due(&rec, far_future),
                want.is_some(),
                "unknown: never due on a timer"
            );
            assert_eq!(
                unknown_expiry_warning("x", rec.expires_at).is_some(),
                want.is_none()
            );
        }
    }

    fn test_provider() -> Provider {
        let dir = tempfile::tempdir().unwrap();
        let providers = dir.path().join("providers");
        std::fs::create_dir_all(&providers).unwrap();
        std::fs::write(
            providers.join("demo.toml"),
            "extends = \"oidc\"\nissuer = \"http://127.0.0.1:9\"\nclient_id = \"c\"\n",
        )
        .unwrap();
        let loaded = provider::load_accounts(dir.path());
        assert!(
            loaded.problems.iter().all(|p| !p.is_error()),
            "{:?}",
            loaded.problems
        );
        loaded.accounts.into_iter().next().unwrap()
    }

    /// PROV-2 and PROV-10: the device grant authenticates as `device_client_auth` says and
    /// with the device client when the account names one; the code grant never does.
    #[test]
    fn prov2_prov10_device_grant_config_uses_its_own_auth_and_client() {
        use crate::oauth::AuthMethod;
        let mut p = test_provider();
        p.client_id = Some("desktop".into());
        p.client_secret = Some(ClientSecret::new("desktop-secret"));
        p.client_auth = AuthMethod::Post;
        p.device_client_auth = AuthMethod::None;
        let code = grant_config(&p, None, LoginGrant::Code).unwrap();
        assert_eq!(
            (code.client_id.as_str(), code.client_auth.method()),
            ("desktop", AuthMethod::Post)
        );
        let device = grant_config(&p, None, LoginGrant::Device).unwrap();
        assert_eq!(
            (device.client_id.as_str(), device.client_auth.method()),
            ("desktop", AuthMethod::None)
        );
        p.device_client_id = Some("tv".into());
        p.device_client_secret = Some(ClientSecret::new("tv-secret"));
        p.device_client_auth = AuthMethod::Post;
        let device =
            grant_config(&p, Some(ClientSecret::new("stored")), LoginGrant::Device).unwrap();
        assert_eq!(device.client_id, "tv");
        assert_eq!(
            device.client_auth.secret().map(ClientSecret::secret),
            Some("tv-secret")
        );
        let code = grant_config(&p, None, LoginGrant::Code).unwrap();
        assert_eq!(code.client_id, "desktop");
        // A secret method without a secret is refused before anything is sent (SECRET-2)…
        p.client_secret = None;
        let e = grant_config(&p, None, LoginGrant::Code).unwrap_err();
        assert!(e.to_string().contains("needs a client secret"), "{e}");
        // …unless an exchange proxy authenticates the client (PROXY-3).
        p.exchange_proxy = Some(url::Url::parse("https://proxy.example/").unwrap());
        let cfg = grant_config(&p, None, LoginGrant::Code).unwrap();
        assert_eq!(cfg.client_auth.method(), AuthMethod::None);
    }

    /// PROV-5: the login's redirect URI goes on refresh only when the provider asks for it.
    #[test]
    fn prov5_refresh_config_carries_the_login_redirect_only_when_asked() {
        let mut p = test_provider();
        let rec = Record {
            redirect_uri: Some("http://127.0.0.1:8123/cb".into()),
            ..Record::default()
        };
        let cfg = refresh_config(base_config(&p, None).unwrap(), &p, &rec);
        assert_eq!(cfg.refresh_redirect_uri, None);
        p.send_redirect_uri_on_refresh = true;
        let cfg = refresh_config(base_config(&p, None).unwrap(), &p, &rec);
        assert_eq!(
            cfg.refresh_redirect_uri.as_deref(),
            Some("http://127.0.0.1:8123/cb")
        );
    }

    #[test]
    fn the_oauth_client_is_built_on_first_use_only() {
        let dir = tempfile::tempdir().unwrap();
        let vault = Vault::open(
            dir.path().join("vault.bin"),
            KeySource::KeyFile(PathBuf::new()),
        )
        .unwrap();
        let app = App::new(dir.path().join("config"), vault, Settings::default()).unwrap();
        assert!(app.oauth.get().is_none());
        let a: *const OAuthClient = app.oauth().unwrap();
        let b: *const OAuthClient = app.oauth().unwrap();
        assert_eq!(a, b, "built once");
    }
}
