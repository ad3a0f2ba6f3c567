//! Parsing one provider file into a [`Layer`]: every field keeps the file and position it came
//! from, so a problem found after `extends` merging still points at the right line.

use super::problem::{Position, Problem, closest};
use super::{AccountGrant, AuthMethod, RevocationFormat, TokenResponse};
use crate::secret::ClientSecret;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;
use toml::Spanned;

/// Every field a provider file may contain, in schema order.
pub const FIELDS: &[&str] = &[
    "extends",
    "display_name",
    "issuer",
    "authorization_endpoint",
    "token_endpoint",
    "revocation_endpoint",
    "device_authorization_endpoint",
    "userinfo_endpoint",
    "scopes",
    "client_id",
    "client_secret",
    "client_secret_env",
    "client_auth",
    "client_key_file",
    "client_key_id",
    "redirect_uri",
    "auth_params",
    "token_params",
    "export_var",
    "exchange_proxy",
    "git_urls",
    "git_username",
    "token_response",
    "grant",
    "refresh_token_rotates",
    "send_scope_on_refresh",
    "default_lifetime_secs",
    "pkce",
    "vars",
    "device_client_auth",
    "device_client_id",
    "device_client_secret_env",
    "revocation_format",
    "send_redirect_uri_on_refresh",
    "redirect_fallback_ports",
    "require_redirect_uri",
    "require_ip_literal_redirect",
    "issuer_aliases",
    "error_hints",
    "resources",
];

/// The file as serde sees it.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    extends: Option<Spanned<String>>,
    display_name: Option<Spanned<String>>,
    issuer: Option<Spanned<String>>,
    authorization_endpoint: Option<Spanned<String>>,
    token_endpoint: Option<Spanned<String>>,
    revocation_endpoint: Option<Spanned<String>>,
    device_authorization_endpoint: Option<Spanned<String>>,
    userinfo_endpoint: Option<Spanned<String>>,
    scopes: Option<Spanned<Vec<Spanned<String>>>>,
    client_id: Option<Spanned<String>>,
    client_secret: Option<Spanned<ClientSecret>>,
    client_secret_env: Option<Spanned<String>>,
    client_auth: Option<Spanned<AuthMethod>>,
    client_key_file: Option<Spanned<String>>,
    client_key_id: Option<Spanned<String>>,
    redirect_uri: Option<Spanned<String>>,
    auth_params: Option<BTreeMap<String, Spanned<ParamValue>>>,
    token_params: Option<BTreeMap<String, Spanned<ParamValue>>>,
    export_var: Option<Spanned<String>>,
    exchange_proxy: Option<Spanned<String>>,
    git_urls: Option<Spanned<Vec<Spanned<String>>>>,
    git_username: Option<Spanned<String>>,
    token_response: Option<Spanned<TokenResponse>>,
    grant: Option<Spanned<AccountGrant>>,
    refresh_token_rotates: Option<Spanned<bool>>,
    send_scope_on_refresh: Option<Spanned<bool>>,
    default_lifetime_secs: Option<Spanned<i64>>,
    pkce: Option<Spanned<bool>>,
    vars: Option<BTreeMap<String, Spanned<String>>>,
    device_client_auth: Option<Spanned<AuthMethod>>,
    device_client_id: Option<Spanned<String>>,
    device_client_secret_env: Option<Spanned<String>>,
    revocation_format: Option<Spanned<RevocationFormat>>,
    send_redirect_uri_on_refresh: Option<Spanned<bool>>,
    redirect_fallback_ports: Option<Spanned<Vec<Spanned<i64>>>>,
    require_redirect_uri: Option<Spanned<bool>>,
    require_ip_literal_redirect: Option<Spanned<bool>>,
    issuer_aliases: Option<Spanned<Vec<Spanned<String>>>>,
    error_hints: Option<BTreeMap<String, Spanned<String>>>,
    resources: Option<BTreeMap<String, Spanned<Vec<Spanned<String>>>>>,
}

/// A parameter value: TOML strings, integers and booleans are all sent as text.
struct ParamValue(String);

impl<'de> Deserialize<'de> for ParamValue {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl serde::de::Visitor<'_> for V {
            type Value = ParamValue;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string, an integer or a boolean")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<ParamValue, E> {
                Ok(ParamValue(v.to_owned()))
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<ParamValue, E> {
                Ok(ParamValue(v.to_string()))
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<ParamValue, E> {
                Ok(ParamValue(v.to_string()))
            }
            fn visit_bool<E: serde::de::Error>(self, v: bool) -> Result<ParamValue, E> {
                Ok(ParamValue(v.to_string()))
            }
        }
        d.deserialize_any(V)
    }
}

/// A parsed file's label and text, shared by the [`Origin`] of every value in it.
#[derive(Debug)]
struct SourceFile {
    /// The file label (path as given, or `<bundled>/NAME.toml`).
    label: String,
    text: Box<str>,
}

/// Where a value came from: its file and byte offset. The line and column are worked out only
/// when a problem is reported: loading many valid files (`--export`) never pays for them.
#[derive(Debug, Clone)]
pub struct Origin {
    source: Arc<SourceFile>,
    offset: usize,
}

impl Origin {
    /// The file label (path as given, or `<bundled>/NAME.toml`).
    pub fn file(&self) -> &str {
        &self.source.label
    }

    /// The 1-based position of the value in its file.
    pub fn position(&self) -> Position {
        Position::of_offset(&self.source.text, self.offset)
    }

    /// An error at this origin.
    pub fn error(&self, message: impl Into<String>, hint: impl Into<String>) -> Problem {
        Problem::error(self.file(), self.position(), message, hint)
    }

    /// A warning at this origin.
    pub fn warning(&self, message: impl Into<String>, hint: impl Into<String>) -> Problem {
        Problem::warning(self.file(), self.position(), message, hint)
    }
}

/// A value and where it came from.
#[derive(Debug, Clone)]
pub struct At<T> {
    /// The value.
    pub value: T,
    /// Where it was written.
    pub origin: Origin,
}

/// A table of values, each with its origin; merged key by key.
pub type AtTable = BTreeMap<String, At<String>>;

/// A located list of located values.
pub type AtList<T> = At<Vec<At<T>>>;

/// A table of lists (`[resources]`), merged key by key; each list replaces.
pub type AtListTable = BTreeMap<String, AtList<String>>;

/// One parsed file (or the merge of a chain of files): every field optional, every value located.
#[derive(Debug, Clone)]
pub struct Layer {
    /// The account or template name (the file stem).
    pub name: String,
    /// The file, for problems about the file as a whole.
    source: Arc<SourceFile>,
    pub extends: Option<At<String>>,
    pub display_name: Option<At<String>>,
    pub issuer: Option<At<String>>,
    pub authorization_endpoint: Option<At<String>>,
    pub token_endpoint: Option<At<String>>,
    pub revocation_endpoint: Option<At<String>>,
    pub device_authorization_endpoint: Option<At<String>>,
    pub userinfo_endpoint: Option<At<String>>,
    pub scopes: Option<At<Vec<At<String>>>>,
    pub client_id: Option<At<String>>,
    pub client_secret: Option<At<ClientSecret>>,
    pub client_secret_env: Option<At<String>>,
    pub client_auth: Option<At<AuthMethod>>,
    pub client_key_file: Option<At<String>>,
    pub client_key_id: Option<At<String>>,
    pub redirect_uri: Option<At<String>>,
    pub auth_params: AtTable,
    pub token_params: AtTable,
    pub export_var: Option<At<String>>,
    pub exchange_proxy: Option<At<String>>,
    pub git_urls: Option<At<Vec<At<String>>>>,
    pub git_username: Option<At<String>>,
    pub token_response: Option<At<TokenResponse>>,
    pub grant: Option<At<AccountGrant>>,
    pub refresh_token_rotates: Option<At<bool>>,
    pub send_scope_on_refresh: Option<At<bool>>,
    pub default_lifetime_secs: Option<At<i64>>,
    pub pkce: Option<At<bool>>,
    pub vars: AtTable,
    pub device_client_auth: Option<At<AuthMethod>>,
    pub device_client_id: Option<At<String>>,
    pub device_client_secret_env: Option<At<String>>,
    pub revocation_format: Option<At<RevocationFormat>>,
    pub send_redirect_uri_on_refresh: Option<At<bool>>,
    pub redirect_fallback_ports: Option<AtList<i64>>,
    pub require_redirect_uri: Option<At<bool>>,
    pub require_ip_literal_redirect: Option<At<bool>>,
    pub issuer_aliases: Option<AtList<String>>,
    pub error_hints: AtTable,
    pub resources: AtListTable,
}

impl Layer {
    /// The origin of the file as a whole (line 1, column 1).
    pub fn start(&self) -> Origin {
        Origin {
            source: self.source.clone(),
            offset: 0,
        }
    }

    /// Applies `over` on top of `self` (the base, shared: a cached template is cloned only for
    /// the fields `over` leaves unset): scalars override, tables merge key by key,
    /// lists replace. Setting either secret source in `over` drops both of the base's, so a
    /// child can switch from an inline secret to an environment variable or back.
    pub fn merged_over(&self, over: Layer) -> Layer {
        let base = self;
        let (client_secret, client_secret_env) =
            if over.client_secret.is_some() || over.client_secret_env.is_some() {
                (over.client_secret, over.client_secret_env)
            } else {
                (base.client_secret.clone(), base.client_secret_env.clone())
            };
        let table = |b: &AtTable, o: AtTable| {
            if b.is_empty() {
                o
            } else {
                merge_tables(b.clone(), o)
            }
        };
        // Every plain field: the child's value if it set one, else the base's.
        macro_rules! child_else_base {
            ($($field:ident),* ; $($rest:tt)*) => {
                Layer { $($field: over.$field.or_else(|| base.$field.clone()),)* $($rest)* }
            };
        }
        child_else_base!(
            display_name, issuer, authorization_endpoint, token_endpoint, revocation_endpoint,
            device_authorization_endpoint, userinfo_endpoint, scopes, client_id, client_auth,
            client_key_file, client_key_id, redirect_uri, export_var, exchange_proxy, git_urls, git_username, token_response, grant,
            refresh_token_rotates, send_scope_on_refresh, default_lifetime_secs, pkce,
            device_client_auth, device_client_id, device_client_secret_env, revocation_format,
            send_redirect_uri_on_refresh, redirect_fallback_ports, require_redirect_uri,
            require_ip_literal_redirect,
            issuer_aliases;
            name: over.name,
            source: over.source,
            extends: over.extends,
            client_secret,
            client_secret_env,
            auth_params: table(&base.auth_params, over.auth_params),
            token_params: table(&base.token_params, over.token_params),
            vars: table(&base.vars, over.vars),
            error_hints: table(&base.error_hints, over.error_hints),
            resources: {
                let mut r = base.resources.clone();
                r.extend(over.resources);
                r
            },
        )
    }
}

fn merge_tables(mut base: AtTable, over: AtTable) -> AtTable {
    base.extend(over);
    base
}

/// Parses `text` (the contents of `file`, account or template `name`) into a [`Layer`].
///
/// Reports every TOML syntax error, then every unknown top-level field, then the first type
/// error serde finds; each at its position.
pub fn parse_layer(name: &str, file: &str, text: &str) -> Result<Layer, Vec<Problem>> {
    let source = Arc::new(SourceFile {
        label: file.to_owned(),
        text: text.into(),
    });
    let at = |offset: usize| Origin {
        source: source.clone(),
        offset,
    };
    let (table, errors) = toml::de::DeTable::parse_recoverable(text);
    if !errors.is_empty() {
        return Err(errors
            .iter()
            .map(|e| {
                at(e.span().map_or(0, |s| s.start)).error(
                    format!("invalid TOML: {}", e.message().trim()),
                    "check the quoting, `=` and brackets near this position (https://toml.io)",
                )
            })
            .collect());
    }
    // DeTable keys are sorted by name; report them in file order.
    let mut unknown: Vec<Problem> = table
        .get_ref()
        .keys()
        .filter(|k| !FIELDS.contains(&k.get_ref().as_ref()))
        .map(|k| {
            let key: &str = k.get_ref().as_ref();
            at(k.span().start).error(format!("unknown field `{key}`"), unknown_field_hint(key))
        })
        .collect();
    if !unknown.is_empty() {
        unknown.sort_by_key(|p| p.position);
        return Err(unknown);
    }
    let raw = RawFile::deserialize(toml::de::Deserializer::from(table)).map_err(|e| {
        vec![at(e.span().map_or(0, |s| s.start)).error(type_message(&e), type_hint(&e))]
    })?;
    Ok(raw.into_layer(name, source))
}

fn unknown_field_hint(key: &str) -> String {
    match closest(key, FIELDS.iter().copied()) {
        Some(c) => format!("did you mean `{c}`? (see docs/providers.md for every field)"),
        None => format!("allowed fields: {}", FIELDS.join(", ")),
    }
}

/// serde's message, with the field name that toml keeps separately when it has one.
fn type_message(e: &toml::de::Error) -> String {
    format!("invalid value: {}", e.message().trim())
}

fn type_hint(e: &toml::de::Error) -> String {
    let m = e.message();
    if m.contains("AuthMethod") || m.contains("`none`, `basic`") {
        "client_auth is one of \"none\", \"basic\", \"post\", \"private_key_jwt\"".to_owned()
    } else if m.contains("`json`, `form`") {
        "token_response is \"json\" or \"form\"".to_owned()
    } else if m.contains("`authorization_code`, `client_credentials`") {
        "grant is \"authorization_code\" (a person logs in) or \"client_credentials\" (a machine account)".to_owned()
    } else if m.contains("`rfc7009`") {
        "revocation_format is one of \"rfc7009\", \"json\", \"github\"".to_owned()
    } else {
        "see docs/providers.md for the type of each field".to_owned()
    }
}

impl RawFile {
    fn into_layer(self, name: &str, source: Arc<SourceFile>) -> Layer {
        let at = |offset: usize| Origin {
            source: source.clone(),
            offset,
        };
        fn one<T>(s: Spanned<T>, at: &impl Fn(usize) -> Origin) -> At<T> {
            let origin = at(s.span().start);
            At {
                value: s.into_inner(),
                origin,
            }
        }
        let opt = |s: Option<Spanned<String>>| s.map(|s| one(s, &at));
        fn list<T>(s: Spanned<Vec<Spanned<T>>>, at: &impl Fn(usize) -> Origin) -> AtList<T> {
            let l = one(s, at);
            At {
                value: l.value.into_iter().map(|v| one(v, at)).collect(),
                origin: l.origin,
            }
        }
        let table = |t: Option<BTreeMap<String, Spanned<ParamValue>>>| {
            t.unwrap_or_default()
                .into_iter()
                .map(|(k, v)| {
                    let v = one(v, &at);
                    (
                        k,
                        At {
                            value: v.value.0,
                            origin: v.origin,
                        },
                    )
                })
                .collect()
        };
        Layer {
            name: name.to_owned(),
            source: source.clone(),
            extends: opt(self.extends),
            display_name: opt(self.display_name),
            issuer: opt(self.issuer),
            authorization_endpoint: opt(self.authorization_endpoint),
            token_endpoint: opt(self.token_endpoint),
            revocation_endpoint: opt(self.revocation_endpoint),
            device_authorization_endpoint: opt(self.device_authorization_endpoint),
            userinfo_endpoint: opt(self.userinfo_endpoint),
            scopes: self.scopes.map(|s| list(s, &at)),
            client_id: opt(self.client_id),
            client_secret: self.client_secret.map(|s| one(s, &at)),
            client_secret_env: opt(self.client_secret_env),
            client_auth: self.client_auth.map(|s| one(s, &at)),
            client_key_file: opt(self.client_key_file),
            client_key_id: opt(self.client_key_id),
            redirect_uri: opt(self.redirect_uri),
            auth_params: table(self.auth_params),
            token_params: table(self.token_params),
            export_var: opt(self.export_var),
            exchange_proxy: opt(self.exchange_proxy),
            git_urls: self.git_urls.map(|s| list(s, &at)),
            git_username: opt(self.git_username),
            token_response: self.token_response.map(|s| one(s, &at)),
            grant: self.grant.map(|s| one(s, &at)),
            refresh_token_rotates: self.refresh_token_rotates.map(|s| one(s, &at)),
            send_scope_on_refresh: self.send_scope_on_refresh.map(|s| one(s, &at)),
            default_lifetime_secs: self.default_lifetime_secs.map(|s| one(s, &at)),
            pkce: self.pkce.map(|s| one(s, &at)),
            vars: self
                .vars
                .unwrap_or_default()
                .into_iter()
                .map(|(k, v)| (k, one(v, &at)))
                .collect(),
            device_client_auth: self.device_client_auth.map(|s| one(s, &at)),
            device_client_id: opt(self.device_client_id),
            device_client_secret_env: opt(self.device_client_secret_env),
            revocation_format: self.revocation_format.map(|s| one(s, &at)),
            send_redirect_uri_on_refresh: self.send_redirect_uri_on_refresh.map(|s| one(s, &at)),
            redirect_fallback_ports: self.redirect_fallback_ports.map(|s| list(s, &at)),
            require_redirect_uri: self.require_redirect_uri.map(|s| one(s, &at)),
            require_ip_literal_redirect: self.require_ip_literal_redirect.map(|s| one(s, &at)),
            issuer_aliases: self.issuer_aliases.map(|s| list(s, &at)),
            error_hints: self
                .error_hints
                .unwrap_or_default()
                .into_iter()
                .map(|(k, v)| (k, one(v, &at)))
                .collect(),
            resources: self
                .resources
                .unwrap_or_default()
                .into_iter()
                .map(|(k, v)| (k, list(v, &at)))
                .collect(),
        }
    }
}
