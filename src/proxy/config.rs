//! The proxy's TOML configuration: parsing, validation with `FILE:LINE:COL` errors, and loading
//! each client's secret from the environment or a file (PROXY-9). One client's table is parsed in
//! `config/client.rs`.

mod client;

use super::forwarded::{Cidr, TrustedProxies};
use crate::oauth::wire;
use crate::secret::ClientSecret;
use client::{RawClient, parse_client};
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
/// Parses an upstream URL: https, or plain http only to a loopback host (tests, sidecars), no
/// fragment and no credentials (DISC-4, the client's rule: [`wire::endpoint_url`]).
pub(crate) fn upstream_url(text: &str) -> Result<Url, &'static str> {
    wire::endpoint_url(text)
}
#[cfg(test)]
mod tests;
