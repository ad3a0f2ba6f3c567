//! One `[clients.NAME]` table of the proxy's configuration: its token endpoint (as written,
//! by issuer discovery or from a bundled provider template), revocation and device endpoints,
//! client id, secret source (PROXY-9), redirect URIs and allowed origins.

use super::{ConfigError, EndpointSource, Locator, ProxyClient, SecretSource, upstream_url};
use crate::secret::ClientSecret;
use serde::Deserialize;
use std::ops::Range;
use std::path::PathBuf;
use toml::Spanned;
use url::Url;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawClient {
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

pub(super) fn parse_client(
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
/// True when `text` is exactly a serialized web origin, as a browser sends it in `Origin`.
fn is_origin(text: &str) -> bool {
    match Url::parse(text) {
        Ok(url) if matches!(url.scheme(), "http" | "https") => {
            url.origin().ascii_serialization() == text
        }
        _ => false,
    }
}
