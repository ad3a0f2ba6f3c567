//! The fake server's endpoints, as plain functions from a request to a [`Reply`] so that
//! they are easy to read and test without sockets.

use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use bytes::Bytes;
use serde_json::{Map, Value, json};
use url::Url;

use super::personality::{
    AuthRule, Expiry, IssRule, Personality, RefreshRule, Revocation as PRevocation, Route,
    TokenFormat,
};
use super::state::Lineage;
use super::state::{
    CODE_TTL, CodeGrant, DeviceGrant, DeviceStatus, State, digest, random_token, random_user_code,
};
use crate::oauth::AuthMethod;
use crate::oauth::pkce::challenge_s256;
use crate::secret::ct_eq;

mod revoke;
mod token;
use revoke::*;
use token::*;

/// The device grant's `grant_type`.
const DEVICE_GRANT: &str = "urn:ietf:params:oauth:grant-type:device_code";
/// The demo user's subject, e-mail and name.
const SUB: &str = "demo-user";
const EMAIL: &str = "demo@authdeck.invalid";
const NAME: &str = "Demo User";
/// A request, reduced to what the endpoints look at.
pub struct Incoming {
    method: String,
    path: String,
    query: Vec<(String, String)>,
    authorization: Option<String>,
    form: Vec<(String, String)>,
    /// The request said `Accept: application/json`.
    accept_json: bool,
    /// The body was `application/json` (its string members are in `form`).
    json_body: bool,
}

impl Incoming {
    /// Parses the query and, for POSTs, the form body.
    pub fn new(parts: &http::request::Parts, body: Bytes) -> Self {
        let query = parts
            .uri
            .query()
            .map(|q| form_urlencoded::parse(q.as_bytes()).into_owned().collect())
            .unwrap_or_default();
        let authorization = parts
            .headers
            .get(http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let header = |name: http::header::HeaderName| {
            parts
                .headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_ascii_lowercase()
        };
        let accept_json = header(http::header::ACCEPT).contains("application/json");
        let json_body = header(http::header::CONTENT_TYPE).starts_with("application/json");
        // A JSON body's string members are read like form fields (OpenAI and GitHub
        // revocation); anything else in it is ignored.
        let form = if json_body {
            serde_json::from_slice::<Map<String, Value>>(&body)
                .unwrap_or_default()
                .into_iter()
                .filter_map(|(k, v)| v.as_str().map(|s| (k, s.to_owned())))
                .collect()
        } else {
            form_urlencoded::parse(&body).into_owned().collect()
        };
        Self {
            method: parts.method.as_str().to_owned(),
            path: parts.uri.path().to_owned(),
            query,
            authorization,
            form,
            accept_json,
            json_body,
        }
    }

    fn query(&self, key: &str) -> Option<&str> {
        find(&self.query, key)
    }

    fn form(&self, key: &str) -> Option<&str> {
        find(&self.form, key)
    }
}

fn find<'a>(pairs: &'a [(String, String)], key: &str) -> Option<&'a str> {
    pairs
        .iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
        .filter(|v| !v.is_empty())
}

/// A response before it becomes an HTTP one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    pub status: u16,
    pub content_type: &'static str,
    pub body: String,
    pub headers: Vec<(String, String)>,
}

impl Reply {
    /// A JSON reply.
    pub fn json(status: u16, value: &Value) -> Self {
        Self {
            status,
            content_type: "application/json",
            body: value.to_string(),
            headers: Vec::new(),
        }
    }

    /// A plain-text reply.
    pub fn text(status: u16, text: &str) -> Self {
        Self {
            status,
            content_type: "text/plain; charset=utf-8",
            body: text.to_owned(),
            headers: Vec::new(),
        }
    }

    /// A small self-contained HTML page; `message` must not need escaping.
    fn html(status: u16, title: &str, message: &str) -> Self {
        Self {
            status,
            content_type: "text/html; charset=utf-8",
            body: format!(
                "<!doctype html><html><head><meta charset=\"utf-8\"><title>{title}</title></head>\
                 <body><h1>{title}</h1><p>{message}</p><p>authdeck devserver (a fake \
                 authorization server)</p></body></html>"
            ),
            headers: Vec::new(),
        }
    }

    /// An RFC 6749 §5.2 error.
    pub(super) fn error(status: u16, error: &str, description: &str) -> Self {
        Self::json(
            status,
            &json!({"error": error, "error_description": description}),
        )
    }

    pub(super) fn with_header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.to_owned(), value.to_owned()));
        self
    }

    fn redirect(location: &Url) -> Self {
        Self::text(302, "redirecting").with_header("location", location.as_str())
    }
}

/// Counts requests that [`super::Stats`] tracks by path, faults included.
pub fn count_request(state: &mut State, path: &str) {
    match path {
        "/token" => state.stats.token_requests += 1,
        "/userinfo" => state.stats.userinfo += 1,
        "/jwks" => state.stats.jwks_requests += 1,
        p if p.starts_with("/api/") => state.stats.userinfo += 1,
        _ => {}
    }
}

/// Dispatches a request to its endpoint.
pub fn route(state: &mut State, req: &Incoming) -> Reply {
    if let Some(p) = state.config.personality.clone() {
        return route_personality(state, req, &p);
    }
    match (req.method.as_str(), req.path.as_str()) {
        ("GET", "/.well-known/openid-configuration")
        | ("GET", "/.well-known/oauth-authorization-server") => discovery(&state.issuer),
        ("GET", "/jwks") => Reply::json(200, &json!({"keys": [state.signing.jwk()]})),
        ("GET", "/authorize") => authorize(state, req),
        ("POST", "/token") => token(state, req),
        ("POST", "/revoke") => revoke(state, req),
        ("POST", "/device_authorization") => device_authorization(state, req),
        ("GET", "/device") => device_page(state, req),
        ("GET", "/userinfo") => userinfo(state, req),
        ("GET", p) if p.starts_with("/api/") => userinfo(state, req),
        (_, "/token" | "/revoke" | "/device_authorization") => {
            Reply::text(405, "method not allowed").with_header("allow", "POST")
        }
        _ => Reply::text(404, "not found"),
    }
}

/// A mimic's dispatch: the provider's own paths, its discovery only if it has one (PROV-1).
fn route_personality(state: &mut State, req: &Incoming, p: &Personality) -> Reply {
    match (req.method.as_str(), req.path.as_str()) {
        ("GET", "/.well-known/openid-configuration") if p.discovery => {
            personality_discovery(&state.issuer, p)
        }
        ("GET", "/jwks") if p.discovery => {
            Reply::json(200, &json!({"keys": [state.signing.jwk()]}))
        }
        // The approval page stands in for the provider's device page (tests open it).
        ("GET", "/device") => device_page(state, req),
        (method, path) => match p.route(method, path) {
            Some(Route::Authorize) => authorize(state, req),
            Some(Route::Token) => token(state, req),
            Some(Route::Device) => device_authorization(state, req),
            Some(Route::Userinfo) => userinfo(state, req),
            Some(Route::Revoke) => match p.revocation {
                PRevocation::Rfc7009 => revoke(state, req),
                PRevocation::Json => revoke_json(state, req),
                PRevocation::Github => revoke_github(state, req, p),
                PRevocation::None => Reply::text(404, "not found"),
            },
            None => Reply::text(404, "not found"),
        },
    }
}

/// A mimic's discovery document: its own paths, the generic server's keys.
fn personality_discovery(issuer: &str, p: &Personality) -> Reply {
    let path = |route: Route| {
        p.routes
            .iter()
            .find(|(_, _, r)| *r == route)
            .map(|(_, path, _)| format!("{issuer}{path}"))
    };
    let mut doc = json!({
        "issuer": issuer,
        "jwks_uri": format!("{issuer}/jwks"),
        "response_types_supported": ["code"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": ["ES256"],
        "code_challenge_methods_supported": ["S256"],
    });
    for (key, route) in [
        ("authorization_endpoint", Route::Authorize),
        ("token_endpoint", Route::Token),
        ("device_authorization_endpoint", Route::Device),
        ("revocation_endpoint", Route::Revoke),
        ("userinfo_endpoint", Route::Userinfo),
    ] {
        if let (Some(url), Some(obj)) = (path(route), doc.as_object_mut()) {
            obj.insert(key.into(), Value::from(url));
        }
    }
    Reply::json(200, &doc)
}

/// The discovery document (OpenID Connect Discovery and RFC 8414 alike).
fn discovery(issuer: &str) -> Reply {
    Reply::json(
        200,
        &json!({
            "issuer": issuer,
            "authorization_endpoint": format!("{issuer}/authorize"),
            "token_endpoint": format!("{issuer}/token"),
            "revocation_endpoint": format!("{issuer}/revoke"),
            "device_authorization_endpoint": format!("{issuer}/device_authorization"),
            "userinfo_endpoint": format!("{issuer}/userinfo"),
            "jwks_uri": format!("{issuer}/jwks"),
            "response_types_supported": ["code"],
            "grant_types_supported":
                ["authorization_code", "refresh_token", DEVICE_GRANT, "client_credentials"],
            "code_challenge_methods_supported": ["S256"],
            "token_endpoint_auth_methods_supported":
                ["none", "client_secret_basic", "client_secret_post", "private_key_jwt"],
            "token_endpoint_auth_signing_alg_values_supported": ["ES256", "RS256"],
            "scopes_supported": ["openid", "email", "profile", "offline_access"],
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": ["ES256"],
            "authorization_response_iss_parameter_supported": true,
        }),
    )
}

/// True when `uri` is an `http` URI on a loopback host (RFC 8252 §7.3), any port.
fn is_loopback_http(uri: &str) -> bool {
    let Ok(url) = Url::parse(uri) else {
        return false;
    };
    url.scheme() == "http" && crate::oauth::wire::is_loopback(&url) && url.fragment().is_none()
}

/// `GET /authorize`: validates, then approves at once (no password: it is a fake).
fn authorize(state: &mut State, req: &Incoming) -> Reply {
    let Some(client) = req.query("client_id").and_then(|id| state.client(id)) else {
        return Reply::html(
            400,
            "Unknown client",
            "The client_id is missing or unknown.",
        );
    };
    let client_id = client.client_id.clone();
    let personality = state.config.personality.as_ref();
    let redirect_ok = |uri: &str| match personality {
        Some(p) => p.redirect_allowed(uri, &client.redirect_uris),
        None if client.redirect_uris.is_empty() => is_loopback_http(uri),
        None => client.redirect_uris.iter().any(|r| r == uri),
    };
    let Some(redirect_uri) = req.query("redirect_uri").filter(|u| redirect_ok(u)) else {
        return Reply::html(
            400,
            "Invalid redirect URI",
            "The redirect_uri is missing or not registered for this client.",
        );
    };
    let Ok(mut location) = Url::parse(redirect_uri) else {
        return Reply::html(
            400,
            "Invalid redirect URI",
            "The redirect_uri is not a URL.",
        );
    };
    match check_authorize_params(req) {
        Ok(challenge) => {
            let code = random_token();
            state.codes.insert(
                digest(&code),
                CodeGrant {
                    client_id,
                    redirect_uri: redirect_uri.to_owned(),
                    challenge: challenge.to_owned(),
                    scope: req.query("scope").unwrap_or_default().to_owned(),
                    nonce: req.query("nonce").map(str::to_owned),
                    expires: state.now() + CODE_TTL,
                },
            );
            location.query_pairs_mut().append_pair("code", &code);
        }
        Err(error) => {
            location.query_pairs_mut().append_pair("error", error);
        }
    }
    let mut pairs = location.query_pairs_mut();
    if let Some(s) = req.query("state") {
        pairs.append_pair("state", s);
    }
    // AUTHZ-4's tests: a server that advertises `iss` and leaves it out (test support only).
    #[cfg(any(test, feature = "test-support"))]
    let send_iss = !state.config.hostile.omit_iss();
    #[cfg(not(any(test, feature = "test-support")))]
    let send_iss = true;
    if send_iss {
        pairs.append_pair("iss", &state.issuer);
    }
    drop(pairs);
    Reply::redirect(&location)
}

/// Checks `response_type` and PKCE; returns the challenge or the `error` code.
fn check_authorize_params(req: &Incoming) -> Result<&str, &'static str> {
    if req.query("response_type") != Some("code") {
        return Err("unsupported_response_type");
    }
    let challenge = req.query("code_challenge").ok_or("invalid_request")?;
    if req.query("code_challenge_method") != Some("S256") {
        return Err("invalid_request");
    }
    // An S256 challenge is 43 base64url characters.
    if challenge.len() != 43 {
        return Err("invalid_request");
    }
    Ok(challenge)
}

/// `POST /device_authorization` (RFC 8628 §3.1, §3.2).
fn device_authorization(state: &mut State, req: &Incoming) -> Reply {
    let public_ok = state
        .config
        .personality
        .as_ref()
        .is_some_and(|p| p.auth == AuthRule::NoSecretForDevice);
    let client_id = match authenticate_as(state, req, public_ok) {
        Ok(id) => id,
        Err(reply) => return reply,
    };
    if state
        .config
        .device_client_ids
        .as_ref()
        .is_some_and(|ids| !ids.contains(&client_id))
    {
        return Reply::error(401, "invalid_client", "Invalid client type.");
    }
    let device_code = random_token();
    let user_code = random_user_code();
    let ttl = state.config.device_code_ttl;
    state.devices.insert(
        digest(&device_code),
        DeviceGrant {
            user_code: user_code.clone(),
            client_id,
            scope: req.form("scope").unwrap_or_default().to_owned(),
            status: DeviceStatus::Pending,
            expires: state.now() + ttl,
            last_poll: None,
        },
    );
    let verification_uri = format!("{}/device", state.issuer);
    let complete = format!("{verification_uri}?user_code={user_code}");
    #[allow(unused_mut)]
    let mut answer = json!({
        "device_code": device_code,
        "user_code": user_code,
        "verification_uri": verification_uri,
        "verification_uri_complete": complete,
        "expires_in": ttl.as_secs(),
        "interval": state.config.device_interval_secs,
    });
    #[cfg(any(test, feature = "test-support"))]
    state.config.hostile.device_answer(&mut answer);
    Reply::json(200, &answer)
}

/// `GET /device?user_code=…`: the demo "browser" step, which approves at once.
fn device_page(state: &mut State, req: &Incoming) -> Reply {
    let Some(user_code) = req.query("user_code") else {
        return Reply::html(
            200,
            "Device login",
            "Open this page with ?user_code=XXXX-XXXX to approve a device.",
        );
    };
    if state.decide_device(user_code, true) {
        Reply::html(
            200,
            "Device approved",
            "The device is approved. You can close this page.",
        )
    } else {
        Reply::html(
            404,
            "Unknown code",
            "No pending device login has this code.",
        )
    }
}

/// `GET /userinfo` and `GET /api/*`: a bearer-protected resource.
fn userinfo(state: &mut State, req: &Incoming) -> Reply {
    let token = req
        .authorization
        .as_deref()
        .and_then(|h| h.strip_prefix("Bearer ").or(h.strip_prefix("bearer ")))
        .map(str::trim);
    let Some(grant) = token.and_then(|t| state.live_access(t)) else {
        return Reply::error(
            401,
            "invalid_token",
            "the access token is missing or invalid",
        )
        .with_header("www-authenticate", "Bearer error=\"invalid_token\"");
    };
    if req.path == "/userinfo" {
        return Reply::json(
            200,
            &json!({"sub": SUB, "email": EMAIL, "email_verified": true, "name": NAME}),
        );
    }
    Reply::json(
        200,
        &json!({
            "ok": true,
            "method": req.method,
            "path": req.path,
            "sub": SUB,
            "client_id": grant.client_id,
            "scope": grant.scope,
        }),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::oauth::wire::basic_auth;
    use crate::secret::ClientSecret;

    #[test]
    fn basic_credentials_are_form_urldecoded_rfc6749_2_3_1() {
        let header = basic_auth("my client", &ClientSecret::new("p@ss:w+rd")).unwrap();
        let (id, secret) = basic_credentials(header.to_str().unwrap()).unwrap();
        assert_eq!(id, "my client");
        assert_eq!(secret, "p@ss:w+rd");
        assert!(basic_credentials("Basic !!!").is_none());
        assert!(basic_credentials("Bearer abc").is_none());
    }

    #[test]
    fn loopback_redirects_only() {
        assert!(is_loopback_http("http://127.0.0.1:4000/cb"));
        assert!(is_loopback_http("http://[::1]:4000/cb"));
        assert!(is_loopback_http("http://localhost/cb"));
        assert!(!is_loopback_http("https://127.0.0.1/cb"));
        assert!(!is_loopback_http("http://evil.example/cb"));
        assert!(!is_loopback_http("http://127.0.0.1.evil.example/cb"));
        assert!(!is_loopback_http("not a url"));
    }
}
