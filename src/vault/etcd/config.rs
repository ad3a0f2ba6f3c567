//! Where the etcd vault lives and how to reach it: `--vault etcd://h:p,h:p/prefix`, or the
//! `[vault]` table of `config.toml` (docs/etcd.md).

use crate::vault::error::{Result, VaultError};
use serde::Deserialize;
use std::path::PathBuf;
use std::time::Duration;

/// The scheme of a `--vault` value naming an etcd cluster.
pub const SCHEME: &str = "etcd://";
/// Environment variable holding the etcd password (when `password_env` names none).
pub const ENV_PASSWORD: &str = "AUTHDECK_ETCD_PASSWORD";
/// Default key prefix.
pub const DEFAULT_PREFIX: &str = "/authdeck";
/// Default lease TTL of a lock (ETCD-3), seconds.
pub const DEFAULT_LEASE_TTL_SECS: u64 = 10;
/// Default bound on one etcd request (ETCD-6), milliseconds.
pub const DEFAULT_TIMEOUT_MS: u64 = 5000;
/// Default bound on waiting for an account lock another machine holds, seconds.
pub const DEFAULT_LOCK_WAIT_SECS: u64 = 120;
/// Most endpoints accepted (a sanity bound on the configuration).
const MAX_ENDPOINTS: usize = 16;

/// TLS files for the etcd connection (any of them implies `https`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TlsFiles {
    /// CA certificate (PEM) that signed the etcd members' certificates.
    pub ca: Option<PathBuf>,
    /// Client certificate (PEM), for etcd's `--client-cert-auth`.
    pub cert: Option<PathBuf>,
    /// The client certificate's private key (PEM).
    pub key: Option<PathBuf>,
}

/// Where the etcd password comes from: never the command line or the config file itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PasswordSource {
    /// An environment variable.
    Env(String),
    /// The first line of a file.
    File(PathBuf),
}

/// Everything needed to reach the etcd vault.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EtcdConfig {
    /// `host:port` of each member.
    pub endpoints: Vec<String>,
    /// Key prefix, e.g. `/authdeck` (no trailing `/`).
    pub prefix: String,
    /// TLS, when any file is given.
    pub tls: Option<TlsFiles>,
    /// etcd user (auth enabled on the cluster).
    pub user: Option<String>,
    /// Where the user's password is.
    pub password: PasswordSource,
    /// Lease TTL of every lock (ETCD-3): how long a dead holder delays the others.
    pub lease_ttl: Duration,
    /// Bound on each etcd request (ETCD-6).
    pub timeout: Duration,
    /// Bound on waiting for a lock held by someone else.
    pub lock_wait: Duration,
}

impl EtcdConfig {
    /// A configuration with defaults for everything but the endpoints and prefix.
    pub fn new(endpoints: Vec<String>, prefix: &str) -> Result<Self> {
        Ok(Self {
            endpoints: check_endpoints(endpoints)?,
            prefix: normalize_prefix(prefix)?,
            tls: None,
            user: None,
            password: PasswordSource::Env(ENV_PASSWORD.to_string()),
            lease_ttl: Duration::from_secs(DEFAULT_LEASE_TTL_SECS),
            timeout: Duration::from_millis(DEFAULT_TIMEOUT_MS),
            lock_wait: Duration::from_secs(DEFAULT_LOCK_WAIT_SECS),
        })
    }

    /// Parses `etcd://[user@]host:port,host:port/prefix`.
    pub fn from_url(url: &str) -> Result<Self> {
        let rest = url
            .strip_prefix(SCHEME)
            .ok_or_else(|| bad(format!("a vault URL starts with {SCHEME}")))?;
        let (authority, path) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, DEFAULT_PREFIX),
        };
        let (user, hosts) = match authority.rsplit_once('@') {
            Some((u, h)) if !u.is_empty() && !u.contains(':') => (Some(u.to_string()), h),
            Some(_) => {
                return Err(bad(
                    "put only the user name in the URL; the password comes from AUTHDECK_ETCD_PASSWORD or password_file".into(),
                ));
            }
            None => (None, authority),
        };
        let endpoints = hosts.split(',').map(str::to_string).collect();
        let path = if path == "/" { DEFAULT_PREFIX } else { path };
        let mut cfg = Self::new(endpoints, path)?;
        cfg.user = user;
        Ok(cfg)
    }

    /// `etcd://host:port,…/prefix`, for messages (never a password).
    pub fn display(&self) -> String {
        format!("{SCHEME}{}{}", self.endpoints.join(","), self.prefix)
    }

    /// The endpoint URLs the client dials.
    pub fn urls(&self) -> Vec<String> {
        let scheme = if self.tls.is_some() { "https" } else { "http" };
        self.endpoints
            .iter()
            .map(|e| format!("{scheme}://{e}"))
            .collect()
    }

    /// The password, read now from its source; `None` when there is no user.
    pub fn read_password(&self) -> Result<Option<crate::secret::Passphrase>> {
        if self.user.is_none() {
            return Ok(None);
        }
        let text = match &self.password {
            PasswordSource::Env(var) => std::env::var(var).map_err(|_| {
                VaultError::Backend(format!(
                    "etcd user {} needs a password: set {var} or password_file",
                    self.user.as_deref().unwrap_or_default()
                ))
            })?,
            PasswordSource::File(path) => {
                let text = std::fs::read_to_string(path)
                    .map_err(|e| VaultError::io("cannot read the etcd password file", path, e))?;
                text.lines().next().unwrap_or_default().to_string()
            }
        };
        Ok(Some(crate::secret::Passphrase::new(text)))
    }
}

fn bad(reason: String) -> VaultError {
    VaultError::Backend(format!("bad etcd vault setting: {reason}"))
}

fn check_endpoints(endpoints: Vec<String>) -> Result<Vec<String>> {
    if endpoints.is_empty() || endpoints.len() > MAX_ENDPOINTS {
        return Err(bad(format!("give 1 to {MAX_ENDPOINTS} endpoints")));
    }
    for e in &endpoints {
        let valid = e.rsplit_once(':').is_some_and(|(host, port)| {
            !host.is_empty()
                && port.parse::<u16>().is_ok_and(|p| p > 0)
                && host
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || ".-[]:".contains(c))
        });
        if !valid {
            return Err(bad(format!(
                "endpoint '{}' is not host:port",
                e.escape_debug()
            )));
        }
    }
    Ok(endpoints)
}

/// `/authdeck`, `authdeck/` and `/authdeck/` all become `/authdeck`.
fn normalize_prefix(prefix: &str) -> Result<String> {
    let trimmed = prefix.trim_matches('/');
    if trimmed.is_empty()
        || trimmed.len() > 200
        || !trimmed
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./".contains(c))
    {
        return Err(bad(format!(
            "prefix '{}' must be 1 to 200 of A-Z a-z 0-9 - _ . /",
            prefix.escape_debug()
        )));
    }
    Ok(format!("/{trimmed}"))
}

/// The `[vault]` table of `config.toml`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct VaultTable {
    backend: Option<String>,
    path: Option<PathBuf>,
    endpoints: Option<Vec<String>>,
    prefix: Option<String>,
    ca_file: Option<PathBuf>,
    cert_file: Option<PathBuf>,
    key_file: Option<PathBuf>,
    user: Option<String>,
    password_env: Option<String>,
    password_file: Option<PathBuf>,
    lease_ttl_secs: Option<u64>,
    timeout_ms: Option<u64>,
    lock_wait_secs: Option<u64>,
}

#[derive(Debug, Default, Deserialize)]
struct ConfigFile {
    vault: Option<VaultTable>,
}

/// What `config.toml` says about the vault.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConfiguredBackend {
    /// The file backend, at this path (or the default path).
    File(Option<PathBuf>),
    /// The etcd backend.
    Etcd(Box<EtcdConfig>),
}

/// Parses `config.toml` text (`file` names it in errors). Other top-level tables are ignored:
/// they belong to other parts of authdeck.
pub fn parse_config_toml(text: &str, file: &std::path::Path) -> Result<ConfiguredBackend> {
    let parsed: ConfigFile = toml::from_str(text).map_err(|e| {
        VaultError::Backend(format!(
            "{}: {}",
            file.display(),
            e.message().lines().next().unwrap_or_default()
        ))
    })?;
    let Some(v) = parsed.vault else {
        return Ok(ConfiguredBackend::File(None));
    };
    match v.backend.as_deref().unwrap_or("file") {
        "file" => Ok(ConfiguredBackend::File(v.path)),
        "etcd" => etcd_from_table(v).map(|c| ConfiguredBackend::Etcd(Box::new(c))),
        other => Err(bad(format!(
            "[vault] backend = '{}' (use \"file\" or \"etcd\")",
            other.escape_debug()
        ))),
    }
}

fn etcd_from_table(v: VaultTable) -> Result<EtcdConfig> {
    let endpoints = v.endpoints.ok_or_else(|| {
        bad("[vault] backend = \"etcd\" needs endpoints = [\"host:port\", …]".into())
    })?;
    let mut cfg = EtcdConfig::new(endpoints, v.prefix.as_deref().unwrap_or(DEFAULT_PREFIX))?;
    if v.ca_file.is_some() || v.cert_file.is_some() || v.key_file.is_some() {
        if v.cert_file.is_some() != v.key_file.is_some() {
            return Err(bad("cert_file and key_file go together".into()));
        }
        cfg.tls = Some(TlsFiles {
            ca: v.ca_file,
            cert: v.cert_file,
            key: v.key_file,
        });
    }
    cfg.user = v.user;
    cfg.password = match (v.password_env, v.password_file) {
        (Some(_), Some(_)) => {
            return Err(bad("give password_env or password_file, not both".into()));
        }
        (Some(var), None) => PasswordSource::Env(var),
        (None, Some(file)) => PasswordSource::File(file),
        (None, None) => PasswordSource::Env(ENV_PASSWORD.to_string()),
    };
    if let Some(ttl) = v.lease_ttl_secs {
        if !(1..=3600).contains(&ttl) {
            return Err(bad("lease_ttl_secs must be 1 to 3600".into()));
        }
        cfg.lease_ttl = Duration::from_secs(ttl);
    }
    if let Some(ms) = v.timeout_ms {
        if !(100..=600_000).contains(&ms) {
            return Err(bad("timeout_ms must be 100 to 600000".into()));
        }
        cfg.timeout = Duration::from_millis(ms);
    }
    if let Some(secs) = v.lock_wait_secs {
        if !(1..=3600).contains(&secs) {
            return Err(bad("lock_wait_secs must be 1 to 3600".into()));
        }
        cfg.lock_wait = Duration::from_secs(secs);
    }
    Ok(cfg)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    #[test]
    fn urls_parse_into_endpoints_and_a_prefix() {
        let c = EtcdConfig::from_url("etcd://10.0.0.1:2379,h2:2379/team/vault/").unwrap();
        assert_eq!(c.endpoints, ["10.0.0.1:2379", "h2:2379"]);
        assert_eq!(c.prefix, "/team/vault");
        assert_eq!(c.urls()[1], "http://h2:2379");
        assert_eq!(c.display(), "etcd://10.0.0.1:2379,h2:2379/team/vault");
        let c = EtcdConfig::from_url("etcd://ops@h:1").unwrap();
        assert_eq!(c.prefix, DEFAULT_PREFIX);
        assert_eq!(c.user.as_deref(), Some("ops"));
    }

    #[test]
    fn bad_urls_are_refused_with_a_reason() {
        for (url, want) in [
            ("http://h:1/x", "starts with etcd://"),
            ("etcd:///x", "not host:port"),
            ("etcd://h/x", "not host:port"),
            ("etcd://h:0/x", "not host:port"),
            ("etcd://h:1/bad prefix", "prefix"),
            ("etcd://u:pw@h:1/x", "only the user name"),
        ] {
            let e = EtcdConfig::from_url(url).unwrap_err().to_string();
            assert!(e.contains(want), "{url}: {e}");
            assert!(!e.contains("pw@"), "no password echoed: {e}");
        }
    }

    #[test]
    fn config_toml_selects_the_backend() {
        let f = Path::new("config.toml");
        assert_eq!(
            parse_config_toml("", f).unwrap(),
            ConfiguredBackend::File(None)
        );
        assert_eq!(
            parse_config_toml("[vault]\nbackend = \"file\"\npath = \"/v\"\n", f).unwrap(),
            ConfiguredBackend::File(Some(PathBuf::from("/v")))
        );
        let text = r#"
[vault]
backend = "etcd"
endpoints = ["a:2379", "b:2379"]
prefix = "p"
ca_file = "/ca.pem"
cert_file = "/c.pem"
key_file = "/k.pem"
user = "authdeck"
password_file = "/pw"
lease_ttl_secs = 3
timeout_ms = 1500
"#;
        let ConfiguredBackend::Etcd(c) = parse_config_toml(text, f).unwrap() else {
            panic!("etcd")
        };
        assert_eq!(c.prefix, "/p");
        assert_eq!(c.lease_ttl, Duration::from_secs(3));
        assert_eq!(c.timeout, Duration::from_millis(1500));
        assert_eq!(c.password, PasswordSource::File(PathBuf::from("/pw")));
        assert_eq!(c.urls()[0], "https://a:2379");
        for (text, want) in [
            ("[vault]\nbackend = \"etcd\"\n", "needs endpoints"),
            ("[vault]\nbackend = \"s3\"\n", "backend = 's3'"),
            (
                "[vault]\nbackend = \"etcd\"\nendpoints=[\"a:1\"]\nlease_ttl_secs = 0\n",
                "lease_ttl_secs",
            ),
            (
                "[vault]\nbackend = \"etcd\"\nendpoints=[\"a:1\"]\ncert_file = \"/c\"\n",
                "go together",
            ),
            ("[vault]\nbogus = 1\n", "config.toml"),
        ] {
            let e = parse_config_toml(text, f).unwrap_err().to_string();
            assert!(e.contains(want), "{text}: {e}");
        }
    }
}
