//! Provider definitions: the TOML schema, bundled templates, user account files, `extends`,
//! and validation with `FILE:LINE:COL` errors.
//!
//! A file `<config dir>/providers/NAME.toml` is one account named NAME. `extends = "google"`
//! starts from a template (or from another account file in the same directory) and applies the
//! file on top: scalars override, tables (`auth_params`, `token_params`, `vars`) merge key by key,
//! lists (`scopes`) replace. The reference is `docs/providers.md`.
//!
//! Everything here parses from `&str` ([`parse_str`]); [`load_file`] and [`load_accounts`] wrap
//! the file system around it. One bad file never hides the good ones.

mod git_url;
pub mod index;
mod problem;
mod raw;
mod templates;
mod validate;

pub use git_url::GitUrl;
pub use index::{Index, Stamps};
pub use problem::{Position, Problem, Severity};
pub use raw::FIELDS;
pub use templates::TEMPLATE_NAMES;

use crate::oauth::{AuthMethod, RevocationFormat};
use crate::secret::ClientSecret;
use raw::{Layer, parse_layer};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use url::Url;
use validate::{Meta, Mode};

/// The stage of a request an `[error_hints]` entry applies to (PROV-9).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HintStage {
    /// The code exchange or the browser step of a login.
    Login,
    /// Starting or polling the device grant.
    Device,
    /// A refresh.
    Refresh,
    /// A revocation.
    Revoke,
}

impl HintStage {
    /// The key prefix in `[error_hints]`.
    pub fn as_str(self) -> &'static str {
        match self {
            HintStage::Login => "login",
            HintStage::Device => "device",
            HintStage::Refresh => "refresh",
            HintStage::Revoke => "revoke",
        }
    }
}

/// How an account gets its tokens.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum AccountGrant {
    /// A person logs in (authorization code, paste mode or the device grant).
    #[default]
    AuthorizationCode,
    /// A machine account (MACH-1): no login; the client's own credentials fetch each token.
    ClientCredentials,
}

/// The format the token endpoint answers in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum TokenResponse {
    /// `application/json` (RFC 6749 §5.1).
    #[default]
    Json,
    /// `application/x-www-form-urlencoded` unless the request carries `Accept: application/json`
    /// (GitHub). The client sends that header and parses by the response's `Content-Type`.
    Form,
}

/// Where a provider definition came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// A template compiled into the binary.
    Bundled,
    /// A user's account file.
    File(PathBuf),
}

/// A resolved, validated provider: a bundled template or a user's account (after `extends`).
#[derive(Debug, Clone)]
pub struct Provider {
    /// Account (or template) name: the file stem.
    pub name: String,
    /// Human-readable name (`display_name`, else inherited, else `name`).
    pub display_name: String,
    /// The first bundled template in the `extends` chain, if any.
    pub template: Option<String>,
    /// The file's own `extends` value.
    pub extends: Option<String>,
    /// Where this definition came from.
    pub source: Source,
    /// Issuer identifier; used for discovery and `iss` checks.
    pub issuer: Option<Url>,
    /// Authorization endpoint (RFC 6749 §3.1).
    pub authorization_endpoint: Option<Url>,
    /// Token endpoint (RFC 6749 §3.2).
    pub token_endpoint: Option<Url>,
    /// Revocation endpoint (RFC 7009).
    pub revocation_endpoint: Option<Url>,
    /// Device authorization endpoint (RFC 8628).
    pub device_authorization_endpoint: Option<Url>,
    /// OpenID Connect userinfo (or the provider's "who am I") endpoint.
    pub userinfo_endpoint: Option<Url>,
    /// Scopes to request.
    pub scopes: Vec<String>,
    /// The OAuth client id.
    pub client_id: Option<String>,
    /// The client secret, from the file or from `client_secret_env` at load time.
    pub client_secret: Option<ClientSecret>,
    /// Name of the environment variable holding the secret.
    pub client_secret_env: Option<String>,
    /// How the client authenticates at the token endpoint.
    pub client_auth: AuthMethod,
    /// The PEM file of the client's private key, for `client_auth = "private_key_jwt"`
    /// (MACH-2); read, and its mode checked, when a request needs it.
    pub client_key_file: Option<std::path::PathBuf>,
    /// The `kid` put in the client assertion's header, when the server wants one.
    pub client_key_id: Option<String>,
    /// Fixed loopback redirect URI; `None` lets the listener pick (`127.0.0.1:0`).
    /// Port 0 means any free port.
    pub redirect_uri: Option<Url>,
    /// Extra authorization request parameters.
    pub auth_params: BTreeMap<String, String>,
    /// Extra token request parameters.
    pub token_params: BTreeMap<String, String>,
    /// Environment variable name for `export` (see [`Provider::export_var_name`]).
    pub export_var: Option<String>,
    /// Exchange proxy base URL: the code exchange goes through it instead of holding a secret.
    pub exchange_proxy: Option<Url>,
    /// git remotes this account's token is for (`git-credential`; GIT-1).
    pub git_urls: Vec<GitUrl>,
    /// The username `git-credential` sends with the token; `None`: the template's default.
    pub git_username: Option<String>,
    /// Token endpoint response format.
    pub token_response: TokenResponse,
    /// How the account gets its tokens (`grant`).
    pub grant: AccountGrant,
    /// True when a refresh may return a new refresh token that replaces the old one.
    pub refresh_token_rotates: bool,
    /// True when refresh requests must carry `scope` (Microsoft).
    pub send_scope_on_refresh: bool,
    /// Lifetime to assume when a token response has no usable `expires_in` (EXP-3).
    pub default_lifetime_secs: Option<u64>,
    /// Send PKCE S256 (default true; PKCE-3).
    pub pkce: bool,
    /// Placeholder values (`[vars]`), already applied to the URLs above.
    pub vars: BTreeMap<String, String>,
    /// Client authentication for the device grant and for refreshing the tokens it issued
    /// (PROV-2); `client_auth` when unset.
    pub device_client_auth: AuthMethod,
    /// A second client for the device grant (PROV-10: Google's device flow needs a "TVs and
    /// Limited Input devices" client); `client_id` when unset.
    pub device_client_id: Option<String>,
    /// That client's secret, read from `device_client_secret_env` at load time.
    pub device_client_secret: Option<ClientSecret>,
    /// How `revocation_endpoint` is called (PROV-3).
    pub revocation_format: RevocationFormat,
    /// Send the login's `redirect_uri` with refresh requests (PROV-5, GitLab).
    pub send_redirect_uri_on_refresh: bool,
    /// Ports to try, in order, when the `redirect_uri` port is taken (PROV-6, OpenAI).
    pub redirect_fallback_ports: Vec<u16>,
    /// The account must set a fixed `redirect_uri` (PROV-7, Dexcom). Checked at load time.
    pub require_redirect_uri: bool,
    /// Other spellings of the issuer that ID tokens may carry in `iss` (PROV-8, Google).
    pub issuer_aliases: Vec<String>,
    /// Extra advice for provider errors, keyed `STAGE.ERROR_CODE` (PROV-9).
    pub error_hints: BTreeMap<String, String>,
    /// Named scope sets, one per resource an access token can be for (PROV-11, Microsoft).
    pub resources: BTreeMap<String, Vec<String>>,
    /// Warnings found while loading (the provider is usable).
    pub warnings: Vec<Problem>,
}

impl Provider {
    /// The environment variable `export` sets: `export_var`, else NAME upper-cased with every
    /// other character mapped to `_`, plus `_ACCESS_TOKEN` (`_` first if NAME starts with a digit).
    pub fn export_var_name(&self) -> String {
        if let Some(v) = &self.export_var {
            return v.clone();
        }
        let mut out: String = self
            .name
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() {
                    c.to_ascii_uppercase()
                } else {
                    '_'
                }
            })
            .collect();
        if out.starts_with(|c: char| c.is_ascii_digit()) {
            out.insert(0, '_');
        }
        out + "_ACCESS_TOKEN"
    }

    /// The `[error_hints]` advice for `code` at `stage`, if the template gives one (PROV-9).
    pub fn error_hint(&self, stage: HintStage, code: &str) -> Option<&str> {
        self.error_hints
            .get(&format!("{}.{code}", stage.as_str()))
            .map(String::as_str)
    }

    /// True when an endpoint must come from discovery (`issuer` set, an endpoint missing).
    pub fn needs_discovery(&self) -> bool {
        self.issuer.is_some()
            && (self.authorization_endpoint.is_none() || self.token_endpoint.is_none())
    }
}

/// The result of loading a configuration directory: the good accounts and every problem.
#[derive(Debug, Default)]
pub struct Loaded {
    /// The directory that was read (`<config dir>/providers`).
    pub dir: PathBuf,
    /// Valid accounts, sorted by name.
    pub accounts: Vec<Provider>,
    /// Errors (from files that were skipped) and warnings (from accounts that loaded).
    pub problems: Vec<Problem>,
}

impl Loaded {
    /// True when at least one file was rejected.
    pub fn has_errors(&self) -> bool {
        self.problems.iter().any(Problem::is_error)
    }
}

/// Failure to find the configuration directory.
#[derive(Debug, thiserror::Error)]
pub enum ConfigDirError {
    /// No `--config`, no `AUTHDECK_CONFIG_DIR` and no home directory.
    #[error(
        "cannot find a configuration directory: no home directory; pass --config DIR or set AUTHDECK_CONFIG_DIR"
    )]
    NoHome,
}

/// The configuration directory: `--config DIR` / `AUTHDECK_CONFIG_DIR` (clap passes either as
/// `cli_override`), else the platform's config dir for authdeck (`$XDG_CONFIG_HOME/authdeck`,
/// `~/.config/authdeck`, `~/Library/Application Support/authdeck`, ...).
pub fn config_dir(cli_override: Option<&Path>) -> Result<PathBuf, ConfigDirError> {
    if let Some(dir) = cli_override {
        return Ok(dir.to_path_buf());
    }
    directories::ProjectDirs::from("", "", "authdeck")
        .map(|d| d.config_dir().to_path_buf())
        .ok_or(ConfigDirError::NoHome)
}

/// Where account files live inside a configuration directory.
pub fn accounts_dir(config_dir: &Path) -> PathBuf {
    config_dir.join("providers")
}

/// The names of the account files in `config_dir`, sorted, without reading them (shell
/// completion). A missing or unreadable directory has none.
pub fn account_names(config_dir: &Path) -> Vec<String> {
    list_toml(&accounts_dir(config_dir))
        .map(|files| files.into_keys().collect())
        .unwrap_or_default()
}

/// Every bundled template, validated, in [`TEMPLATE_NAMES`] order.
pub fn templates() -> Vec<Provider> {
    TEMPLATE_NAMES.iter().filter_map(|n| template(n)).collect()
}

/// One bundled template by name, validated (`None` if there is no such template).
pub fn template(name: &str) -> Option<Provider> {
    let text = templates::text(name)?;
    let label = templates::label(name);
    let layer = parse_layer(name, &label, text).ok()?;
    let (merged, template) = resolve_chain(layer, Kind::Template, &BTreeMap::new()).ok()?;
    let extends = merged_extends(text);
    let meta = Meta {
        source: Source::Bundled,
        template,
        extends,
        check_permissions: false,
    };
    validate::finish(merged, Mode::Template, meta).ok()
}

/// The source text of a bundled template.
pub fn template_text(name: &str) -> Option<&'static str> {
    templates::text(name)
}

fn merged_extends(text: &str) -> Option<String> {
    toml::from_str::<toml::Table>(text)
        .ok()?
        .get("extends")?
        .as_str()
        .map(str::to_owned)
}

/// Parses an account from `text` without touching the file system. `name` is the account name,
/// `file_label` what problems call the file. `extends` may name bundled templates only.
pub fn parse_str(name: &str, file_label: &str, text: &str) -> Result<Provider, Vec<Problem>> {
    account_from_text(name, file_label, text, None, &BTreeMap::new())
}

/// Loads one account file. `extends` may name a bundled template or another `.toml` file in the
/// same directory. `Err` holds every problem found (errors and warnings), never empty.
pub fn load_file(path: &Path) -> Result<Provider, Vec<Problem>> {
    let siblings = path
        .parent()
        .map(|dir| list_toml(dir).unwrap_or_default())
        .unwrap_or_default();
    load_with_siblings(path, &siblings)
}

/// Loads every `<config_dir>/providers/*.toml` account. A missing directory means no accounts.
pub fn load_accounts(config_dir: &Path) -> Loaded {
    let dir = accounts_dir(config_dir);
    let mut loaded = Loaded {
        dir: dir.clone(),
        ..Loaded::default()
    };
    let siblings = match list_toml(&dir) {
        Ok(s) => s,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return loaded,
        Err(e) => {
            loaded.problems.push(io_problem(&dir, &e));
            return loaded;
        }
    };
    for path in siblings.values() {
        match load_with_siblings(path, &siblings) {
            Ok(mut p) => {
                loaded.problems.append(&mut p.warnings);
                loaded.accounts.push(p);
            }
            Err(mut problems) => loaded.problems.append(&mut problems),
        }
    }
    loaded
}

fn load_with_siblings(
    path: &Path,
    siblings: &BTreeMap<String, PathBuf>,
) -> Result<Provider, Vec<Problem>> {
    let text = read_account_file(path).map_err(|e| vec![io_problem(path, &e)])?;
    let name = stem(path);
    account_from_text(
        &name,
        &path.display().to_string(),
        &text,
        Some(path),
        siblings,
    )
}

fn account_from_text(
    name: &str,
    label: &str,
    text: &str,
    path: Option<&Path>,
    siblings: &BTreeMap<String, PathBuf>,
) -> Result<Provider, Vec<Problem>> {
    let start = || Problem::error(label, Position::START, "", "");
    if !valid_account_name(name) {
        return Err(vec![Problem {
            message: format!("`{name}` is not a valid account name"),
            hint: "name the file with letters, digits, `.`, `_` or `-`, e.g. work-google.toml"
                .to_owned(),
            ..start()
        }]);
    }
    let layer = parse_layer(name, label, text)?;
    let extends = layer.extends.as_ref().map(|e| e.value.clone());
    let (merged, template) = resolve_chain(layer, Kind::User, siblings)?;
    let meta = Meta {
        source: path.map_or(Source::File(PathBuf::from(label)), |p| {
            Source::File(p.to_path_buf())
        }),
        template,
        extends,
        check_permissions: path.is_some(),
    };
    // Problems in file order read best, whatever order the checks ran in.
    match validate::finish(merged, Mode::Account, meta) {
        Ok(mut p) => {
            p.warnings.sort_by_key(|w| w.position);
            Ok(p)
        }
        Err(mut problems) => {
            problems.sort_by(|a, b| (&a.file, a.position).cmp(&(&b.file, b.position)));
            Err(problems)
        }
    }
}

fn valid_account_name(name: &str) -> bool {
    name.chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphanumeric())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
}

fn stem(path: &Path) -> String {
    path.file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// `*.toml` files of `dir` by account name (symbolic links to files count).
fn list_toml(dir: &Path) -> std::io::Result<BTreeMap<String, PathBuf>> {
    let mut out = BTreeMap::new();
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let path = entry.path();
        if path.extension().is_none_or(|e| e != "toml") {
            continue;
        }
        // The directory entry knows its type: a `stat` per file only for links (and for file
        // systems that do not say), which matters when a command loads 50 accounts.
        let is_file = match entry.file_type() {
            Ok(t) if t.is_file() => true,
            Ok(t) if t.is_dir() => false,
            _ => path.is_file(),
        };
        if is_file {
            out.insert(stem(&path), path);
        }
    }
    Ok(out)
}

/// Largest account file read: far above any real one, and it stops a link to a device or a
/// huge file from eating memory.
const MAX_ACCOUNT_FILE: u64 = 1 << 20;

/// Reads an account file: `open`, `read` until the end, `close`, and no `stat` (small files
/// need no size hint). Not UTF-8 is `InvalidData`; too large is `FileTooLarge`.
fn read_account_file(path: &Path) -> std::io::Result<String> {
    use std::io::Read;
    let file = std::fs::File::open(path)?;
    let mut bytes = Vec::with_capacity(2048);
    file.take(MAX_ACCOUNT_FILE + 1).read_to_end(&mut bytes)?;
    if bytes.len() as u64 > MAX_ACCOUNT_FILE {
        return Err(std::io::Error::from(std::io::ErrorKind::FileTooLarge));
    }
    String::from_utf8(bytes).map_err(|_| std::io::Error::from(std::io::ErrorKind::InvalidData))
}

fn io_problem(path: &Path, e: &std::io::Error) -> Problem {
    let message = match e.kind() {
        std::io::ErrorKind::InvalidData => "cannot read file: it is not valid UTF-8".to_owned(),
        std::io::ErrorKind::FileTooLarge => {
            format!(
                "cannot read file: larger than {} KiB",
                MAX_ACCOUNT_FILE / 1024
            )
        }
        _ => format!("cannot read: {e}"),
    };
    Problem {
        file: path.display().to_string(),
        position: None,
        severity: Severity::Error,
        message,
        hint: "check that the path exists and is readable".to_owned(),
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Template,
    User,
}

/// Follows `extends` from `first` to the root and merges the chain (root first). Returns the
/// merged layer and the first bundled template met on the way.
///
/// A user file's `extends` names a sibling file first, a template second; a file that extends its
/// own name means the template of that name (so `google.toml` may say `extends = "google"`).
fn resolve_chain(
    first: Layer,
    first_kind: Kind,
    siblings: &BTreeMap<String, PathBuf>,
) -> Result<(Layer, Option<String>), Vec<Problem>> {
    let first_extends = first.extends.clone();
    let mut seen = vec![(first_kind, first.name.clone())];
    let mut chain = vec![Arc::new(first)];
    let mut kind = first_kind;
    let mut template = None;
    while let Some(ext) = chain.last().and_then(|l| l.extends.clone()) {
        let current = chain.last().map(|l| l.name.clone()).unwrap_or_default();
        let target = ext.value.as_str();
        let sibling = siblings
            .get(target)
            .filter(|_| kind == Kind::User && target != current);
        let (parent, parent_kind) = if let Some(path) = sibling {
            let text = read_account_file(path).ok();
            let label = path.display().to_string();
            match text.map(|t| parse_layer(target, &label, &t)) {
                Some(Ok(l)) => (Arc::new(l), Kind::User),
                _ => {
                    return Err(vec![ext.origin.error(
                        format!("`extends = \"{target}\"` names an account file that has errors"),
                        format!("fix the problems reported for {label}"),
                    )]);
                }
            }
        } else if templates::text(target).is_some() {
            (template_layer(target)?, Kind::Template)
        } else {
            return Err(vec![ext.origin.error(
                format!("unknown template `{target}` in extends"),
                unknown_template_hint(target, siblings),
            )]);
        };
        if seen.contains(&(parent_kind, parent.name.clone())) {
            let names: Vec<&str> = seen
                .iter()
                .map(|(_, n)| n.as_str())
                .chain([target])
                .collect();
            let origin = first_extends
                .as_ref()
                .map_or(ext.origin.clone(), |e| e.origin.clone());
            return Err(vec![origin.error(
                format!("extends cycle: {}", names.join(" -> ")),
                "make one file of the cycle extend a bundled template instead",
            )]);
        }
        if parent_kind == Kind::Template && template.is_none() {
            template = Some(parent.name.clone());
        }
        seen.push((parent_kind, parent.name.clone()));
        chain.push(parent);
        kind = parent_kind;
    }
    // Root first; a shared (template) layer is cloned only for the fields a child leaves unset.
    let mut layers = chain.into_iter().rev();
    let root = layers.next().ok_or_else(Vec::new)?;
    let merged = layers.fold(root, |base, over| {
        Arc::new(base.merged_over(Arc::unwrap_or_clone(over)))
    });
    Ok((Arc::unwrap_or_clone(merged), template))
}

/// A bundled template parsed once per process: `--export` of many accounts that extend the
/// same template would otherwise parse its text again for each of them.
fn template_layer(name: &str) -> Result<Arc<Layer>, Vec<Problem>> {
    use std::sync::OnceLock;
    type Parsed = Result<Arc<Layer>, Vec<Problem>>;
    static CACHE: [OnceLock<Parsed>; TEMPLATE_NAMES.len()] =
        [const { OnceLock::new() }; TEMPLATE_NAMES.len()];
    let parse = || {
        let text = templates::text(name).unwrap_or_default();
        parse_layer(name, &templates::label(name), text).map(Arc::new)
    };
    match TEMPLATE_NAMES.iter().position(|n| *n == name) {
        Some(i) => CACHE[i].get_or_init(parse).clone(),
        None => parse(),
    }
}

fn unknown_template_hint(target: &str, siblings: &BTreeMap<String, PathBuf>) -> String {
    let candidates = TEMPLATE_NAMES
        .iter()
        .copied()
        .chain(siblings.keys().map(String::as_str));
    let list = TEMPLATE_NAMES.join(", ");
    match problem::closest(target, candidates) {
        Some(c) => format!("did you mean `{c}`? bundled templates: {list}"),
        None => {
            format!("bundled templates: {list} (or the name of another file in this directory)")
        }
    }
}

#[cfg(test)]
mod tests;
