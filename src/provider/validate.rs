//! Turning a merged [`Layer`] into a validated [`Provider`]: placeholders, URLs, loopback rules,
//! required fields and secret sources.

use super::raw::{At, Layer, Origin};
use super::{AccountGrant, AuthMethod, Problem, Provider, RevocationFormat, Source, TokenResponse};
use crate::oauth::wire::{is_loopback, is_scope_token};
use crate::secret::ClientSecret;
use std::collections::BTreeMap;
use url::Url;

mod extensions;

/// What the layer is being validated as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// A bundled template: may lack a client id and endpoints, must not hold a secret.
    Template,
    /// A user account: must be usable for a login.
    Account,
}

/// Facts about the layer that are not in the layer itself.
pub struct Meta {
    pub source: Source,
    pub template: Option<String>,
    pub extends: Option<String>,
    /// Warn about an inline secret in a world-readable file (only for real files).
    pub check_permissions: bool,
}

/// Validates `layer`: `Ok` carries the provider (with its warnings), `Err` every problem found.
pub fn finish(layer: Layer, mode: Mode, meta: Meta) -> Result<Provider, Vec<Problem>> {
    let mut vars: BTreeMap<String, String> = layer
        .vars
        .iter()
        .map(|(k, v)| (k.clone(), v.value.clone()))
        .collect();
    // `{client_id}` may appear in URLs (GitHub's revocation path, PROV-3). A template has no
    // client id: the placeholder stays visible in its URL (templates are never requested).
    let client_id_value = match &layer.client_id {
        Some(c) => c.value.clone(),
        None if mode == Mode::Template => "{client_id}".to_owned(),
        None => String::new(),
    };
    let mut client_id_var = false;
    if !vars.contains_key("client_id") && !client_id_value.is_empty() {
        vars.insert("client_id".to_owned(), client_id_value);
        client_id_var = true;
    }
    let mut v = Validator {
        vars,
        problems: Vec::new(),
    };
    let start = layer.start();
    let endpoint = |v: &mut Validator, f: &str, at: &Option<At<String>>| {
        at.as_ref().and_then(|a| v.url(f, a, UrlRule::Endpoint))
    };
    let issuer = endpoint(&mut v, "issuer", &layer.issuer);
    let authorization_endpoint = endpoint(
        &mut v,
        "authorization_endpoint",
        &layer.authorization_endpoint,
    );
    let token_endpoint = endpoint(&mut v, "token_endpoint", &layer.token_endpoint);
    let revocation_endpoint = endpoint(&mut v, "revocation_endpoint", &layer.revocation_endpoint);
    let device_authorization_endpoint = endpoint(
        &mut v,
        "device_authorization_endpoint",
        &layer.device_authorization_endpoint,
    );
    let userinfo_endpoint = endpoint(&mut v, "userinfo_endpoint", &layer.userinfo_endpoint);
    let exchange_proxy = endpoint(&mut v, "exchange_proxy", &layer.exchange_proxy);
    let redirect_uri = layer
        .redirect_uri
        .as_ref()
        .and_then(|a| v.url("redirect_uri", a, UrlRule::Redirect));

    if mode == Mode::Account {
        v.require_endpoints(&layer, &start);
        if layer
            .client_id
            .as_ref()
            .is_none_or(|c| c.value.trim().is_empty())
        {
            let at = layer.client_id.as_ref().map_or(&start, |c| &c.origin);
            v.problems.push(at.error(
                "missing client_id",
                "register an application with the provider and add `client_id = \"...\"`",
            ));
        }
    }
    if let Some(pkce) = layer.pkce.as_ref().filter(|p| !p.value) {
        // PKCE-3: every login sends an S256 challenge; a bare pasted code is safe only because
        // of it (HL-4). The field stays accepted as `true` for older files.
        v.problems.push(pkce.origin.error(
            "`pkce = false` is not supported: every login sends a PKCE S256 challenge",
            "remove `pkce` (PKCE is always on; providers that do not support it ignore the \
             challenge, RFC 7636 §5)",
        ));
    }
    let scopes = v.scopes(&layer);
    v.check_export_var(&layer);
    if mode == Mode::Account {
        v.check_machine_account(&layer);
    }
    let default_lifetime_secs = v.lifetime(&layer);
    let client_auth = layer
        .client_auth
        .as_ref()
        .map_or(AuthMethod::None, |a| a.value);
    let client_secret = v.secret(&layer, mode, client_auth, &meta);
    v.check_client_key(&layer, client_auth);
    let redirect_fallback_ports = v.fallback_ports(&layer, redirect_uri.as_ref());
    if mode == Mode::Account {
        v.check_required_redirect(
            &layer,
            redirect_uri.as_ref(),
            &start,
            meta.template.as_deref(),
        );
        v.check_ip_literal_redirect(&layer, redirect_uri.as_ref(), meta.template.as_deref());
    }
    let issuer_aliases = v.issuer_aliases(&layer);
    v.check_error_hints(&layer);
    let resources = v.resources(&layer);
    let device_client_secret = v.device_secret(&layer, mode);

    if v.problems.iter().any(Problem::is_error) {
        return Err(v.problems);
    }
    let strings = |t: &BTreeMap<String, At<String>>| -> BTreeMap<String, String> {
        // An empty value removes a parameter inherited through `extends`.
        t.iter()
            .filter(|(_, v)| !v.value.is_empty())
            .map(|(k, v)| (k.clone(), v.value.clone()))
            .collect()
    };
    Ok(Provider {
        display_name: layer
            .display_name
            .as_ref()
            .map_or_else(|| layer.name.clone(), |d| d.value.clone()),
        name: layer.name.clone(),
        template: meta.template,
        extends: meta.extends,
        source: meta.source,
        issuer,
        authorization_endpoint,
        token_endpoint,
        revocation_endpoint,
        device_authorization_endpoint,
        userinfo_endpoint,
        scopes,
        client_id: layer.client_id.as_ref().map(|c| c.value.clone()),
        client_secret,
        client_secret_env: layer.client_secret_env.as_ref().map(|e| e.value.clone()),
        client_auth,
        // A relative key path is relative to the account file, not to wherever authdeck runs.
        client_key_file: layer.client_key_file.as_ref().map(|f| {
            let dir = std::path::Path::new(f.origin.file()).parent();
            dir.map_or_else(|| f.value.clone().into(), |d| d.join(&f.value))
        }),
        client_key_id: layer.client_key_id.as_ref().map(|k| k.value.clone()),
        redirect_uri,
        auth_params: strings(&layer.auth_params),
        token_params: strings(&layer.token_params),
        export_var: layer.export_var.as_ref().map(|e| e.value.clone()),
        git_urls: v.git_urls(&layer),
        git_username: layer.git_username.as_ref().map(|e| e.value.clone()),
        exchange_proxy,
        token_response: layer
            .token_response
            .as_ref()
            .map_or(TokenResponse::Json, |t| t.value),
        grant: layer
            .grant
            .as_ref()
            .map_or(AccountGrant::default(), |g| g.value),
        refresh_token_rotates: layer
            .refresh_token_rotates
            .as_ref()
            .is_some_and(|b| b.value),
        send_scope_on_refresh: layer
            .send_scope_on_refresh
            .as_ref()
            .is_some_and(|b| b.value),
        default_lifetime_secs,
        pkce: layer.pkce.as_ref().is_none_or(|b| b.value),
        vars: {
            let mut vars = v.vars;
            if client_id_var {
                vars.remove("client_id");
            }
            vars
        },
        device_client_auth: layer
            .device_client_auth
            .as_ref()
            .map_or(client_auth, |a| a.value),
        device_client_id: layer
            .device_client_id
            .as_ref()
            .map(|c| c.value.clone())
            .filter(|c| !c.trim().is_empty()),
        device_client_secret,
        revocation_format: layer
            .revocation_format
            .as_ref()
            .map_or(RevocationFormat::Rfc7009, |f| f.value),
        send_redirect_uri_on_refresh: layer
            .send_redirect_uri_on_refresh
            .as_ref()
            .is_some_and(|b| b.value),
        redirect_fallback_ports,
        require_redirect_uri: layer.require_redirect_uri.as_ref().is_some_and(|b| b.value),
        issuer_aliases,
        error_hints: strings(&layer.error_hints),
        resources,
        warnings: v.problems,
    })
}

#[derive(Clone, Copy)]
enum UrlRule {
    /// https, or http on a loopback host.
    Endpoint,
    /// http on a loopback host (RFC 8252 §7.3).
    Redirect,
}

struct Validator {
    vars: BTreeMap<String, String>,
    problems: Vec<Problem>,
}

const LOOPBACK_HINT: &str =
    "http:// is allowed only for loopback hosts (127.0.0.1, [::1], localhost); use https://";

impl Validator {
    /// Replaces `{name}` placeholders with `[vars]` values.
    fn expand(&mut self, field: &str, at: &At<String>) -> Option<String> {
        let mut out = String::new();
        let mut rest = at.value.as_str();
        while let Some(open) = rest.find('{') {
            out.push_str(&rest[..open]);
            let after = &rest[open + 1..];
            let Some(close) = after.find('}') else {
                out.push_str(&rest[open..]);
                rest = "";
                break;
            };
            let var = &after[..close];
            match self.vars.get(var) {
                Some(value) => out.push_str(value),
                None => {
                    self.problems.push(at.origin.error(
                        format!("`{field}` uses the placeholder `{{{var}}}`, which no [vars] entry defines"),
                        format!("define it in the account file: [vars] then {var} = \"...\" on the next line"),
                    ));
                    return None;
                }
            }
            rest = &after[close + 1..];
        }
        out.push_str(rest);
        Some(out)
    }

    fn url(&mut self, field: &str, at: &At<String>, rule: UrlRule) -> Option<Url> {
        let text = self.expand(field, at)?;
        let url = match Url::parse(&text) {
            Ok(u) => u,
            Err(e) => {
                self.problems.push(at.origin.error(
                    format!("`{field}` is not a valid URL ({e}): `{text}`"),
                    "write an absolute URL such as \"https://example.com/oauth/token\"",
                ));
                return None;
            }
        };
        let loopback = is_loopback(&url);
        let problem = match rule {
            UrlRule::Endpoint if url.scheme() == "https" => None,
            UrlRule::Endpoint if url.scheme() == "http" && loopback => None,
            UrlRule::Endpoint if url.scheme() == "http" => Some((
                format!("`{field}` uses http:// on the non-loopback host `{}`", host_of(&url)),
                LOOPBACK_HINT.to_owned(),
            )),
            UrlRule::Endpoint => Some((
                format!("`{field}` must be an https:// URL, not {}://", url.scheme()),
                LOOPBACK_HINT.to_owned(),
            )),
            UrlRule::Redirect if url.scheme() == "http" && loopback => None,
            UrlRule::Redirect => Some((
                format!("redirect_uri `{text}` is not a loopback address"),
                "use http://127.0.0.1:PORT/PATH (port 0 = any free port), [::1] or localhost (RFC 8252 §7.3)"
                    .to_owned(),
            )),
        };
        if let Some((message, hint)) = problem {
            self.problems.push(at.origin.error(message, hint));
            return None;
        }
        if url.fragment().is_some() {
            self.problems.push(at.origin.error(
                format!("`{field}` must not contain a #fragment"),
                "remove everything from `#` on (RFC 6749 §3.1)",
            ));
            return None;
        }
        Some(url)
    }

    fn require_endpoints(&mut self, layer: &Layer, start: &Origin) {
        if layer.issuer.is_some() {
            return; // discovery fills what is missing
        }
        let mut missing = Vec::new();
        if layer.authorization_endpoint.is_none() && layer.device_authorization_endpoint.is_none() {
            missing.push("authorization_endpoint");
        }
        if layer.token_endpoint.is_none() {
            missing.push("token_endpoint");
        }
        if !missing.is_empty() {
            self.problems.push(start.error(
                format!("missing {} and no `issuer` to discover it from", missing.join(" and ")),
                "set `issuer = \"https://...\"` (OpenID Connect discovery) or the endpoints themselves, or `extends` a template",
            ));
        }
    }

    fn scopes(&mut self, layer: &Layer) -> Vec<String> {
        let Some(list) = &layer.scopes else {
            return Vec::new();
        };
        for s in &list.value {
            if !is_scope_token(&s.value) {
                self.problems.push(s.origin.error(
                    format!("invalid scope {:?}", s.value),
                    "one scope per list entry, without spaces, quotes or backslashes: scopes = [\"openid\", \"email\"]",
                ));
            }
        }
        list.value.iter().map(|s| s.value.clone()).collect()
    }

    /// `git_urls`: each must parse as a [`GitUrl`]; a bad one is an error at its position.
    fn git_urls(&mut self, layer: &Layer) -> Vec<super::GitUrl> {
        let Some(list) = &layer.git_urls else {
            return Vec::new();
        };
        let mut out = Vec::new();
        for entry in &list.value {
            match super::GitUrl::parse(&entry.value) {
                Ok(u) => out.push(u),
                Err(why) => self.problems.push(entry.origin.error(
                    format!("git_urls entry {:?}: {why}", entry.value),
                    "write a protocol and host, and optionally a path prefix: \"https://gitlab.example.com/group/\"",
                )),
            }
        }
        out
    }

    /// MACH-1: a machine account authenticates as its client, so it needs a secret and a
    /// client authentication that sends it.
    fn check_machine_account(&mut self, layer: &Layer) {
        let Some(grant) = layer
            .grant
            .as_ref()
            .filter(|g| g.value == AccountGrant::ClientCredentials)
        else {
            return;
        };
        let jwt = layer
            .client_auth
            .as_ref()
            .is_some_and(|a| a.value == AuthMethod::PrivateKeyJwt);
        if !jwt && layer.client_secret.is_none() && layer.client_secret_env.is_none() {
            self.problems.push(grant.origin.error(
                "grant = \"client_credentials\" needs the client's secret",
                "set client_secret_env = \"VAR\" (the variable holding the secret)",
            ));
        }
        if layer
            .client_auth
            .as_ref()
            .is_some_and(|a| a.value == AuthMethod::None)
        {
            self.problems.push(grant.origin.error(
                "grant = \"client_credentials\" cannot use client_auth = \"none\"",
                "use client_auth = \"basic\", \"post\" or \"private_key_jwt\"",
            ));
        }
    }

    /// MACH-2: `private_key_jwt` needs `client_key_file`, and a key file means nothing to any
    /// other method. The file itself is read (and its mode checked) when a request needs it,
    /// so validity does not depend on the file system beyond the account file.
    fn check_client_key(&mut self, layer: &Layer, client_auth: AuthMethod) {
        match (&layer.client_key_file, client_auth) {
            (None, AuthMethod::PrivateKeyJwt) => {
                if let Some(a) = &layer.client_auth {
                    self.problems.push(a.origin.error(
                        "client_auth = \"private_key_jwt\" needs client_key_file",
                        "set client_key_file = \"/path/to/key.pem\" (PKCS#8 PEM, mode 0600)",
                    ));
                }
            }
            (Some(f), method) if method != AuthMethod::PrivateKeyJwt => {
                self.problems.push(f.origin.warning(
                    "client_key_file is set but client_auth is not \"private_key_jwt\", so it is never used",
                    "set client_auth = \"private_key_jwt\", or remove client_key_file",
                ));
            }
            _ => {}
        }
    }

    fn check_export_var(&mut self, layer: &Layer) {
        if let Some(e) = &layer.export_var {
            let mut chars = e.value.chars();
            let ok = chars
                .next()
                .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
                && chars.all(|c| c.is_ascii_alphanumeric() || c == '_');
            if !ok {
                self.problems.push(e.origin.error(
                    format!(
                        "export_var {:?} is not a valid environment variable name",
                        e.value
                    ),
                    "use letters, digits and `_`, not starting with a digit, e.g. \"GITHUB_TOKEN\"",
                ));
            }
        }
    }

    fn lifetime(&mut self, layer: &Layer) -> Option<u64> {
        let l = layer.default_lifetime_secs.as_ref()?;
        match u64::try_from(l.value) {
            Ok(secs) if secs > 0 => Some(secs),
            _ => {
                self.problems.push(l.origin.error(
                    format!("default_lifetime_secs must be a positive number of seconds, not {}", l.value),
                    "e.g. default_lifetime_secs = 3600, or leave it out to treat the expiry as unknown",
                ));
                None
            }
        }
    }

    /// Resolves the client secret (inline or from `client_secret_env`) and checks where it lives.
    fn secret(
        &mut self,
        layer: &Layer,
        mode: Mode,
        client_auth: AuthMethod,
        meta: &Meta,
    ) -> Option<ClientSecret> {
        // Merging keeps the two sources from different files apart, so both set means one file
        // set both.
        if let (Some(_), Some(env)) = (&layer.client_secret, &layer.client_secret_env) {
            self.problems.push(env.origin.error(
                "set either client_secret or client_secret_env, not both",
                "prefer client_secret_env and remove the inline client_secret",
            ));
            return None;
        }
        if let Some(inline) = &layer.client_secret {
            if mode == Mode::Template {
                self.problems.push(inline.origin.error(
                    "a bundled template must not contain a client_secret (SECRET-1)",
                    "put the secret in the account file's client_secret_env or the vault",
                ));
                return None;
            }
            if client_auth == AuthMethod::None {
                self.problems.push(inline.origin.warning(
                    "client_secret is set but client_auth is \"none\", so it is never sent",
                    "set client_auth = \"basic\" or \"post\", or remove the secret",
                ));
            }
            if meta.check_permissions && world_readable(inline.origin.file()) {
                self.problems.push(inline.origin.warning(
                    "client_secret is stored inline in a world-readable file",
                    format!(
                        "run `chmod 600 {}` or move the secret to client_secret_env",
                        inline.origin.file()
                    ),
                ));
            }
            return Some(inline.value.clone());
        }
        let env = layer.client_secret_env.as_ref()?;
        if env.value.is_empty() || env.value.contains(['=', '\0']) {
            self.problems.push(env.origin.error(
                format!("client_secret_env {:?} is not a valid environment variable name", env.value),
                "name the variable that holds the secret, e.g. client_secret_env = \"GOOGLE_CLIENT_SECRET\"",
            ));
            return None;
        }
        if mode == Mode::Template {
            return None;
        }
        match std::env::var(&env.value) {
            Ok(value) if !value.is_empty() => Some(ClientSecret::new(value)),
            _ => {
                // A warning, never an error: whether an account is valid must not depend on
                // the environment, because the account index (index.rs) remembers validity
                // between runs with nothing but file stamps.
                if client_auth != AuthMethod::None {
                    self.problems.push(env.origin.warning(
                        format!("environment variable {} is not set", env.value),
                        "export it before logging in, or store the secret in the vault",
                    ));
                }
                None
            }
        }
    }
}

fn host_of(url: &Url) -> String {
    url.host_str().unwrap_or_default().to_owned()
}

#[cfg(unix)]
fn world_readable(path: &str) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).is_ok_and(|m| m.permissions().mode() & 0o004 != 0)
}

#[cfg(not(unix))]
fn world_readable(_path: &str) -> bool {
    false
}
