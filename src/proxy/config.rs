//! The proxy's TOML configuration: parsing, validation with `FILE:LINE:COL` errors, and loading
//! each client's secret from the environment or a file (PROXY-9).

use super::forwarded::{Cidr, TrustedProxies};
use crate::oauth::wire;
use crate::secret::ClientSecret;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::time::Duration;
use toml::Spanned;
use url::Url;

/// Where the proxy listens when neither the config nor `--listen` says otherwise.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:3100";
/// Upstream timeout when the config omits `upstream_timeout_secs` (PROXY-9: 10 s).
pub const DEFAULT_UPSTREAM_TIMEOUT_SECS: u64 = 10;
/// Requests per minute per client IP when the config omits `rate_limit_per_minute`.
///
/// A login needs one exchange and a session one refresh per token lifetime, so ten per second
/// from one address is far above honest use yet stops a script from hammering the upstream.
pub const DEFAULT_RATE_LIMIT_PER_MINUTE: u32 = 600;
/// The longest upstream timeout accepted: beyond it a front end has long given up.
const MAX_UPSTREAM_TIMEOUT_SECS: u64 = 300;

/// A configuration problem. Messages are one line and never contain a secret.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The file is not valid TOML, has an unknown field, or a value is not allowed.
    #[error("{location}: {message}")]
    Invalid {
        /// `FILE:LINE:COL` of the offending value.
        location: String,
        /// What is wrong, user-facing.
        message: String,
    },
    /// The config file could not be read.
    #[error("cannot read proxy config {path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// A client's secret could not be loaded (PROXY-9: the proxy refuses to start).
    #[error("client '{client}': {message}")]
    Secret {
        /// The client's name in the config.
        client: String,
        /// What is missing, naming the variable or file, never the value.
        message: String,
    },
}

/// The parsed and validated `proxy.toml`.
#[derive(Debug, Clone)]
pub struct ProxyConfig {
    /// The address to listen on (`listen`, overridden by `--listen`).
    pub listen: SocketAddr,
    /// Timeout for one upstream token request, connect to last byte.
    pub upstream_timeout: Duration,
    /// Token requests allowed per client IP per minute; 0 turns the limit off.
    pub rate_limit_per_minute: u32,
    /// The clients by name (`[clients.NAME]`); never empty.
    pub clients: BTreeMap<String, ProxyClient>,
    /// Peers whose `X-Forwarded-For` / PROXY header is believed (PROXY-11); empty by default.
    pub trusted_proxies: TrustedProxies,
    /// The `listen` socket expects a PROXY protocol v1/v2 header on every connection
    /// (PROXY-13), as HAProxy sends it with `send-proxy` / `send-proxy-v2`.
    pub proxy_protocol: bool,
    /// Where `GET /metrics` is served (PROXY-17); off by default.
    pub metrics: MetricsMode,
    /// Open connections at most (HARD-13), lowered to what the descriptor limit allows.
    pub max_connections: usize,
    /// Open connections per client address at most (HARD-13); trusted proxies are exempt.
    pub max_connections_per_ip: usize,
}

/// Where the Prometheus metrics are served (`metrics`, `metrics_listen`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetricsMode {
    /// Not at all (`/metrics` is a 404): the default.
    Off,
    /// On the `listen` address (`metrics = true`).
    OnListen,
    /// Only on this separate address (`metrics_listen = "ADDR"`), e.g. a private interface.
    Separate(SocketAddr),
}

/// One `[clients.NAME]` table.
#[derive(Debug, Clone)]
pub struct ProxyClient {
    /// Where the token endpoint comes from.
    pub endpoint: EndpointSource,
    /// The RFC 7009 revocation endpoint for `POST /api/auth/revoke`: `revocation_endpoint`, else
    /// the `provider` template's. `None` with `issuer`: taken from discovery at startup, if the
    /// document names one. `None` otherwise: the revoke route answers 501.
    pub revocation_endpoint: Option<Url>,
    /// The RFC 8628 device authorization endpoint for `POST /api/auth/device`: as configured,
    /// else (with `issuer`) from discovery at startup; `None`: the route answers 501.
    pub device_authorization_endpoint: Option<Url>,
    /// The OAuth `client_id`.
    pub client_id: String,
    /// Where the client secret comes from.
    pub secret: SecretSource,
    /// Redirect URIs a request may name, compared exactly.
    pub redirect_uris: Vec<String>,
    /// Front-end origins (`scheme://host[:port]`) allowed by CORS, compared exactly.
    pub allowed_origins: Vec<String>,
    /// `FILE:LINE:COL` of the table, for errors found after parsing (secret, discovery).
    pub location: String,
}

/// How a client's token endpoint is found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EndpointSource {
    /// `token_endpoint = "…"`: used as is.
    TokenEndpoint(Url),
    /// `issuer = "…"`: the token endpoint is discovered at startup from
    /// `ISSUER/.well-known/openid-configuration`.
    Issuer(String),
}

/// How a client's secret is loaded.
#[derive(Debug, Clone)]
pub enum SecretSource {
    /// `client_secret_env = "NAME"`.
    Env(String),
    /// `client_secret_file = "PATH"` (relative paths are relative to the config file).
    File(PathBuf),
    /// `client_secret = "…"` with `allow_inline_secret = true`.
    Inline(ClientSecret),
}

impl SecretSource {
    /// Loads the secret. `env` looks up an environment variable (tests pass a closure).
    ///
    /// An unset or empty variable, or an unreadable or empty file, is an error (PROXY-9).
    pub fn load(
        &self,
        client: &str,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<ClientSecret, ConfigError> {
        let fail = |message: String| ConfigError::Secret {
            client: client.to_owned(),
            message,
        };
        match self {
            Self::Env(name) => match env(name) {
                Some(value) if !value.is_empty() => Ok(ClientSecret::new(value)),
                Some(_) => Err(fail(format!("environment variable {name} is empty"))),
                None => Err(fail(format!(
                    "environment variable {name} is not set; the proxy needs the client secret to start"
                ))),
            },
            Self::File(path) => {
                let text = std::fs::read_to_string(path).map_err(|e| {
                    fail(format!(
                        "cannot read client_secret_file {}: {e}",
                        path.display()
                    ))
                })?;
                // A trailing newline is an artefact of `echo > file`, never part of a secret.
                let value = text.trim_end_matches(['\n', '\r']);
                if value.is_empty() {
                    return Err(fail(format!(
                        "client_secret_file {} is empty",
                        path.display()
                    )));
                }
                Ok(ClientSecret::new(value))
            }
            Self::Inline(secret) => Ok(secret.clone()),
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    listen: Option<Spanned<String>>,
    upstream_timeout_secs: Option<Spanned<u64>>,
    rate_limit_per_minute: Option<u32>,
    #[serde(default)]
    trusted_proxies: Vec<Spanned<String>>,
    #[serde(default)]
    proxy_protocol: bool,
    metrics: Option<bool>,
    metrics_listen: Option<Spanned<String>>,
    max_connections: Option<Spanned<usize>>,
    max_connections_per_ip: Option<Spanned<usize>>,
    #[serde(default)]
    clients: BTreeMap<String, Spanned<RawClient>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawClient {
    token_endpoint: Option<Spanned<String>>,
    provider: Option<Spanned<String>>,
    issuer: Option<Spanned<String>>,
    revocation_endpoint: Option<Spanned<String>>,
    device_authorization_endpoint: Option<Spanned<String>>,
    client_id: Option<Spanned<String>>,
    client_secret_env: Option<Spanned<String>>,
    client_secret_file: Option<Spanned<String>>,
    client_secret: Option<Spanned<ClientSecret>>,
    #[serde(default)]
    allow_inline_secret: bool,
    #[serde(default)]
    redirect_uris: Vec<Spanned<String>>,
    #[serde(default)]
    allowed_origins: Vec<Spanned<String>>,
}

/// Turns byte offsets into `FILE:LINE:COL`.
struct Locator<'a> {
    label: &'a str,
    text: &'a str,
}

impl Locator<'_> {
    fn at(&self, offset: usize) -> String {
        let (line, col) = wire::line_col(self.text, offset);
        format!("{}:{line}:{col}", self.label)
    }

    fn error(&self, span: Range<usize>, message: impl Into<String>) -> ConfigError {
        ConfigError::Invalid {
            location: self.at(span.start),
            message: message.into(),
        }
    }
}

/// A count that must be at least 1, or `default` when absent.
fn positive(
    loc: &Locator<'_>,
    value: Option<&Spanned<usize>>,
    key: &str,
    default: usize,
) -> Result<usize, ConfigError> {
    match value {
        None => Ok(default),
        Some(v) if *v.get_ref() >= 1 => Ok(*v.get_ref()),
        Some(v) => Err(loc.error(v.span(), format!("{key} must be at least 1"))),
    }
}

impl ProxyConfig {
    /// Reads and validates a config file; relative `client_secret_file` paths are resolved
    /// against the file's directory.
    pub fn from_path(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.display().to_string(),
            source,
        })?;
        let mut config = Self::from_str(&text, &path.display().to_string())?;
        let base = path.parent().unwrap_or_else(|| Path::new("."));
        for client in config.clients.values_mut() {
            if let SecretSource::File(file) = &mut client.secret
                && file.is_relative()
            {
                *file = base.join(&*file);
            }
        }
        Ok(config)
    }

    /// Parses and validates config text; `label` names it in errors (usually the path).
    ///
    /// Secrets are not loaded here: see [`SecretSource::load`].
    #[allow(clippy::should_implement_trait)] // needs a label, so not `FromStr`
    pub fn from_str(text: &str, label: &str) -> Result<Self, ConfigError> {
        let loc = Locator { label, text };
        let raw: RawConfig = toml::from_str(text).map_err(|e| ConfigError::Invalid {
            location: loc.at(e.span().map_or(0, |s| s.start)),
            message: e.message().trim().replace('\n', " "),
        })?;
        let listen = match &raw.listen {
            None => DEFAULT_LISTEN
                .parse()
                .map_err(|_| loc.error(0..0, "bad default"))?,
            Some(s) => s.get_ref().parse().map_err(|_| {
                loc.error(
                    s.span(),
                    "listen must be an IP address and port, such as 127.0.0.1:3100",
                )
            })?,
        };
        let timeout_secs = match &raw.upstream_timeout_secs {
            None => DEFAULT_UPSTREAM_TIMEOUT_SECS,
            Some(s) if (1..=MAX_UPSTREAM_TIMEOUT_SECS).contains(s.get_ref()) => *s.get_ref(),
            Some(s) => {
                return Err(loc.error(
                    s.span(),
                    format!(
                        "upstream_timeout_secs must be between 1 and {MAX_UPSTREAM_TIMEOUT_SECS}"
                    ),
                ));
            }
        };
        if raw.clients.is_empty() {
            return Err(loc.error(0..0, "no clients: add a [clients.NAME] table"));
        }
        let mut trusted = Vec::new();
        for range in &raw.trusted_proxies {
            let cidr = Cidr::parse(range.get_ref())
                .map_err(|m| loc.error(range.span(), format!("trusted_proxies: {m}")))?;
            trusted.push(cidr);
        }
        if raw.proxy_protocol && trusted.is_empty() {
            // Without a trusted peer every PROXY header would be ignored: almost certainly a
            // forgotten line, and the rate limit would then count the balancer as one client.
            return Err(loc.error(
                0..0,
                "proxy_protocol = true needs trusted_proxies naming the load balancer's address",
            ));
        }
        let metrics = match (&raw.metrics_listen, raw.metrics) {
            (Some(_), Some(false)) => {
                return Err(loc.error(0..0, "metrics_listen is set but metrics = false"));
            }
            (Some(addr), _) => {
                let parsed: SocketAddr = addr.get_ref().parse().map_err(|_| {
                    loc.error(
                        addr.span(),
                        "metrics_listen must be an IP address and port, such as 127.0.0.1:9100",
                    )
                })?;
                if parsed == listen {
                    return Err(loc.error(
                        addr.span(),
                        "metrics_listen must differ from listen (use metrics = true to serve both on listen)",
                    ));
                }
                MetricsMode::Separate(parsed)
            }
            (None, Some(true)) => MetricsMode::OnListen,
            (None, _) => MetricsMode::Off,
        };
        let mut clients = BTreeMap::new();
        for (name, table) in &raw.clients {
            let client = parse_client(&loc, name, table)?;
            clients.insert(name.clone(), client);
        }
        Ok(Self {
            listen,
            upstream_timeout: Duration::from_secs(timeout_secs),
            rate_limit_per_minute: raw
                .rate_limit_per_minute
                .unwrap_or(DEFAULT_RATE_LIMIT_PER_MINUTE),
            clients,
            trusted_proxies: TrustedProxies::new(trusted),
            proxy_protocol: raw.proxy_protocol,
            metrics,
            max_connections: positive(
                &loc,
                raw.max_connections.as_ref(),
                "max_connections",
                super::limits::DEFAULT_MAX_CONNECTIONS,
            )?,
            max_connections_per_ip: positive(
                &loc,
                raw.max_connections_per_ip.as_ref(),
                "max_connections_per_ip",
                super::limits::DEFAULT_MAX_CONNECTIONS_PER_IP,
            )?,
        })
    }
}

fn parse_client(
    loc: &Locator<'_>,
    name: &str,
    table: &Spanned<RawClient>,
) -> Result<ProxyClient, ConfigError> {
    let span = table.span();
    let raw = table.get_ref();
    let err = |span: Range<usize>, message: String| {
        loc.error(span, format!("client '{name}': {message}"))
    };
    if name.is_empty()
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.')
    {
        return Err(err(
            span,
            "a client name may hold only letters, digits, '-', '_' and '.'".into(),
        ));
    }
    let endpoint = parse_endpoint(raw, &|s, m| err(s, m), span.clone())?;
    let revocation_endpoint = parse_revocation_endpoint(raw, &|s, m| err(s, m))?;
    let device_authorization_endpoint = match &raw.device_authorization_endpoint {
        Some(url) => Some(
            upstream_url(url.get_ref())
                .map_err(|m| err(url.span(), format!("device_authorization_endpoint {m}")))?,
        ),
        None => None,
    };
    let client_id = match &raw.client_id {
        Some(id) if !id.get_ref().is_empty() => id.get_ref().clone(),
        Some(id) => return Err(err(id.span(), "client_id must not be empty".into())),
        None => return Err(err(span, "client_id is required".into())),
    };
    let secret = parse_secret_source(raw, &|s, m| err(s, m), span.clone())?;
    if raw.redirect_uris.is_empty() {
        return Err(err(span, "redirect_uris must list at least one URI".into()));
    }
    for uri in &raw.redirect_uris {
        match Url::parse(uri.get_ref()) {
            Ok(url) if url.fragment().is_none() => {}
            _ => {
                return Err(err(
                    uri.span(),
                    "each redirect_uri must be an absolute URL without a fragment".into(),
                ));
            }
        }
    }
    for origin in &raw.allowed_origins {
        if !is_origin(origin.get_ref()) {
            return Err(err(
                origin.span(),
                "each allowed origin must be exactly scheme://host[:port] (no path, no trailing slash, no wildcard)"
                    .into(),
            ));
        }
    }
    Ok(ProxyClient {
        endpoint,
        revocation_endpoint,
        device_authorization_endpoint,
        client_id,
        secret,
        redirect_uris: raw
            .redirect_uris
            .iter()
            .map(|u| u.get_ref().clone())
            .collect(),
        allowed_origins: raw
            .allowed_origins
            .iter()
            .map(|o| o.get_ref().clone())
            .collect(),
        location: loc.at(span.start),
    })
}

type ErrFn<'a> = dyn Fn(Range<usize>, String) -> ConfigError + 'a;

fn parse_endpoint(
    raw: &RawClient,
    err: &ErrFn<'_>,
    table: Range<usize>,
) -> Result<EndpointSource, ConfigError> {
    match (&raw.token_endpoint, &raw.provider, &raw.issuer) {
        (Some(url), None, None) => {
            let parsed = upstream_url(url.get_ref())
                .map_err(|m| err(url.span(), format!("token_endpoint {m}")))?;
            Ok(EndpointSource::TokenEndpoint(parsed))
        }
        (None, Some(p), None) => provider_endpoint(p.get_ref())
            .map(EndpointSource::TokenEndpoint)
            .map_err(|m| err(p.span(), m)),
        (None, None, Some(issuer)) => {
            upstream_url(issuer.get_ref())
                .map_err(|m| err(issuer.span(), format!("issuer {m}")))?;
            Ok(EndpointSource::Issuer(issuer.get_ref().clone()))
        }
        (None, None, None) => Err(err(
            table,
            "set one of token_endpoint, issuer or provider".into(),
        )),
        _ => Err(err(
            table,
            "set only one of token_endpoint, issuer or provider".into(),
        )),
    }
}

/// The token endpoint of a bundled provider template (`provider = "NAME"`).
///
/// Only templates whose token endpoint is one fixed URL qualify: one filled from `[vars]`
/// (a tenant, a base URL) depends on the account, and `oidc` has none until discovery, so
/// both are refused with the exact line to write instead.
fn provider_endpoint(name: &str) -> Result<Url, String> {
    if crate::provider::template_text(name).is_none() {
        return Err(format!(
            "unknown provider template '{name}' (known: {})",
            crate::provider::TEMPLATE_NAMES.join(", ")
        ));
    }
    let template = crate::provider::template(name).ok_or_else(|| {
        format!("provider template '{name}' cannot be used as is: use token_endpoint or issuer")
    })?;
    let Some(endpoint) = template.token_endpoint else {
        return Err(format!(
            "provider template '{name}' has no fixed token endpoint (it is found by discovery): set issuer = \"https://…\" or token_endpoint instead"
        ));
    };
    // A var whose value is part of the endpoint built it (GitHub's `api_url` only builds the
    // API URLs, not the token endpoint). Bundled templates only: a false match merely refuses.
    let vars: Vec<&str> = template
        .vars
        .iter()
        .filter(|(_, v)| endpoint.as_str().contains(v.as_str()))
        .map(|(k, _)| k.as_str())
        .collect();
    if !vars.is_empty() {
        return Err(format!(
            "provider template '{name}' builds its token endpoint from [vars] ({}), which the proxy does not take: set token_endpoint instead (with the defaults: \"{endpoint}\")",
            vars.join(", ")
        ));
    }
    upstream_url(endpoint.as_str())
        .map_err(|m| format!("provider template '{name}': token endpoint {m}"))
}

/// `revocation_endpoint = "…"` as written, else the `provider` template's fixed one (if any).
fn parse_revocation_endpoint(raw: &RawClient, err: &ErrFn<'_>) -> Result<Option<Url>, ConfigError> {
    if let Some(url) = &raw.revocation_endpoint {
        let parsed = upstream_url(url.get_ref())
            .map_err(|m| err(url.span(), format!("revocation_endpoint {m}")))?;
        return Ok(Some(parsed));
    }
    let Some(name) = &raw.provider else {
        return Ok(None);
    };
    // `parse_endpoint` has already accepted the template; one with [vars] never gets here.
    // The proxy revokes per RFC 7009 only (PROV-3: GitHub's and OpenAI's formats are not).
    let endpoint = crate::provider::template(name.get_ref())
        .filter(|t| t.revocation_format == crate::oauth::RevocationFormat::Rfc7009)
        .and_then(|t| t.revocation_endpoint);
    match endpoint {
        Some(url) => upstream_url(url.as_str()).map(Some).map_err(|m| {
            err(
                name.span(),
                format!("provider template's revocation endpoint {m}"),
            )
        }),
        None => Ok(None),
    }
}

fn parse_secret_source(
    raw: &RawClient,
    err: &ErrFn<'_>,
    table: Range<usize>,
) -> Result<SecretSource, ConfigError> {
    match (&raw.client_secret_env, &raw.client_secret_file, &raw.client_secret) {
        (Some(var), None, None) if !var.get_ref().is_empty() => {
            Ok(SecretSource::Env(var.get_ref().clone()))
        }
        (None, Some(file), None) if !file.get_ref().is_empty() => {
            Ok(SecretSource::File(PathBuf::from(file.get_ref())))
        }
        (None, None, Some(inline)) if raw.allow_inline_secret => {
            if inline.get_ref().is_empty() {
                return Err(err(inline.span(), "client_secret must not be empty".into()));
            }
            Ok(SecretSource::Inline(inline.get_ref().clone()))
        }
        (None, None, Some(inline)) => Err(err(
            inline.span(),
            "an inline client_secret needs allow_inline_secret = true; prefer client_secret_env or client_secret_file"
                .into(),
        )),
        (None, None, None) => Err(err(
            table,
            "set client_secret_env or client_secret_file (PROXY-9: the proxy needs the secret)".into(),
        )),
        (Some(_), None, None) | (None, Some(_), None) => Err(err(
            table,
            "client_secret_env / client_secret_file must not be empty".into(),
        )),
        _ => Err(err(
            table,
            "set only one of client_secret_env, client_secret_file or client_secret".into(),
        )),
    }
}

/// Parses an upstream URL: https, or plain http only to a loopback host (tests, sidecars), no
/// fragment and no credentials (DISC-4, the client's rule: [`wire::endpoint_url`]).
pub(crate) fn upstream_url(text: &str) -> Result<Url, &'static str> {
    wire::endpoint_url(text)
}

/// True when `text` is exactly a serialized web origin, as a browser sends it in `Origin`.
fn is_origin(text: &str) -> bool {
    match Url::parse(text) {
        Ok(url) if matches!(url.scheme(), "http" | "https") => {
            url.origin().ascii_serialization() == text
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests;
