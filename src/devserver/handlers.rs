//! The fake server's endpoints, as plain functions from a request to a [`Reply`] so that
//! they are easy to read and test without sockets.

use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
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
use super::{Endpoint, Fault, IdTokenFault};
use crate::oauth::pkce::challenge_s256;
use crate::provider::ClientAuth;
use crate::secret::ct_eq;

/// The device grant's `grant_type`.
const DEVICE_GRANT: &str = "urn:ietf:params:oauth:grant-type:device_code";
/// The demo user's subject, e-mail and name.
const SUB: &str = "demo-user";
const EMAIL: &str = "demo@authdeck.invalid";
const NAME: &str = "Demo User";
/// The e-mail in an id_token broken by an [`IdTokenFault`].
pub const FORGED_EMAIL: &str = "forged@authdeck.invalid";

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
    fn error(status: u16, error: &str, description: &str) -> Self {
        Self::json(
            status,
            &json!({"error": error, "error_description": description}),
        )
    }

    fn with_header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.to_owned(), value.to_owned()));
        self
    }

    fn redirect(location: &Url) -> Self {
        Self::text(302, "redirecting").with_header("location", location.as_str())
    }
}

/// Which fault queue a request belongs to.
pub fn endpoint_of(method: &str, path: &str) -> Option<Endpoint> {
    match (method, path) {
        ("POST", "/token") => Some(Endpoint::Token),
        ("POST", "/revoke") => Some(Endpoint::Revoke),
        ("POST", "/device_authorization") => Some(Endpoint::DeviceAuthorization),
        (_, "/userinfo") => Some(Endpoint::Userinfo),
        (_, p) if p.starts_with("/api/") => Some(Endpoint::Userinfo),
        _ => None,
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

/// The reply for a fault that answers (all but `Slow` and `ConnectionReset`).
pub fn fault_reply(fault: Fault) -> Reply {
    match fault {
        Fault::Status(503) => Reply::error(503, "temporarily_unavailable", "injected fault"),
        Fault::Status(code) => Reply::error(code, "server_error", "injected fault"),
        Fault::TooManyRequests { retry_after_secs } => {
            Reply::error(429, "temporarily_unavailable", "injected fault: slow down")
                .with_header("retry-after", &retry_after_secs.to_string())
        }
        Fault::GarbageJson => Reply {
            status: 200,
            content_type: "application/json",
            body: "<html>this is not JSON {".to_owned(),
            headers: Vec::new(),
        },
        Fault::Slow(_) | Fault::ConnectionReset | Fault::IdToken(_) => {
            Reply::error(500, "server_error", "fault")
        }
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
                ["none", "client_secret_basic", "client_secret_post"],
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
    url.scheme() == "http"
        && matches!(
            url.host_str(),
            Some("127.0.0.1") | Some("[::1]") | Some("localhost")
        )
        && url.fragment().is_none()
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
    if !state.config.hostile.omit_iss {
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

/// The 401 for failed client authentication.
fn invalid_client() -> Reply {
    Reply::error(401, "invalid_client", "client authentication failed")
        .with_header("www-authenticate", "Basic realm=\"devserver\"")
}

/// Decodes `Authorization: Basic` per RFC 6749 §2.3.1 (form-urlencoded id and secret).
fn basic_credentials(header: &str) -> Option<(String, String)> {
    let encoded = header
        .strip_prefix("Basic ")
        .or(header.strip_prefix("basic "))?;
    let decoded = STANDARD.decode(encoded.trim()).ok()?;
    let text = String::from_utf8(decoded).ok()?;
    let (id, secret) = text.split_once(':')?;
    let unescape = |s: &str| -> String {
        form_urlencoded::parse(format!("x={s}").as_bytes())
            .next()
            .map(|(_, v)| v.into_owned())
            .unwrap_or_default()
    };
    Some((unescape(id), unescape(secret)))
}

/// Authenticates the client as registered; returns its id, or the 401 reply.
fn authenticate(state: &mut State, req: &Incoming) -> Result<String, Reply> {
    authenticate_as(state, req, false)
}

/// [`authenticate`], also accepting a confidential client that sends only its id when
/// `public_ok` (GitHub's device flow and its refreshes).
fn authenticate_as(state: &mut State, req: &Incoming, public_ok: bool) -> Result<String, Reply> {
    let (client_id, secret, method) = match req.authorization.as_deref().map(basic_credentials) {
        Some(Some((id, secret))) => (id, Some(secret), ClientAuth::Basic),
        Some(None) => return Err(invalid_client()),
        None => match (req.form("client_id"), req.form("client_secret")) {
            (Some(id), Some(secret)) => (id.to_owned(), Some(secret.to_owned()), ClientAuth::Post),
            (Some(id), None) => (id.to_owned(), None, ClientAuth::None),
            (None, _) => return Err(invalid_client()),
        },
    };
    let client = state.client(&client_id).ok_or_else(invalid_client)?;
    // A client_id in the body must agree with the authenticated one.
    let method_ok = client.auth == method || (public_ok && method == ClientAuth::None);
    if req.form("client_id").is_some_and(|id| id != client_id) || !method_ok {
        return Err(invalid_client());
    }
    let secret_ok = match (&client.secret, &secret) {
        (_, None) => method == ClientAuth::None,
        (Some(expected), Some(given)) => ct_eq(expected.as_bytes(), given.as_bytes()),
        (None, Some(_)) => false,
    };
    if !secret_ok {
        return Err(invalid_client());
    }
    state.stats.last_client_auth = Some(method.as_str().to_owned());
    Ok(client_id)
}

/// `POST /token`.
fn token(state: &mut State, req: &Incoming) -> Reply {
    let reply = token_rfc(state, req);
    match &state.config.personality {
        Some(p) if p.github_errors => github_error(reply, req),
        _ => reply,
    }
}

/// GitHub answers token errors with HTTP 200 and its own codes (PROV-12), in the format the
/// request accepts.
fn github_error(reply: Reply, req: &Incoming) -> Reply {
    if reply.status == 200 {
        return reply;
    }
    let Ok(body) = serde_json::from_str::<Map<String, Value>>(&reply.body) else {
        return reply;
    };
    let code = body
        .get("error")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let grant = req.form("grant_type").unwrap_or_default();
    let github = match (code, grant) {
        ("invalid_grant", "refresh_token") => "bad_refresh_token",
        ("invalid_grant", "authorization_code") => "bad_verification_code",
        ("invalid_grant", DEVICE_GRANT) => "incorrect_device_code",
        ("invalid_client", _) => "incorrect_client_credentials",
        (other, _) => other,
    };
    let description = body
        .get("error_description")
        .and_then(Value::as_str)
        .unwrap_or_default();
    if req.accept_json {
        Reply::json(
            200,
            &json!({"error": github, "error_description": description}),
        )
    } else {
        let mut out = form_urlencoded::Serializer::new(String::new());
        out.append_pair("error", github);
        out.append_pair("error_description", description);
        Reply {
            status: 200,
            content_type: "application/x-www-form-urlencoded",
            body: out.finish(),
            headers: Vec::new(),
        }
    }
}

/// `POST /token` as RFC 6749 says (the personality's rules inside).
fn token_rfc(state: &mut State, req: &Incoming) -> Reply {
    let client_id = match authenticate_as(state, req, public_grant(state, req)) {
        Ok(id) => id,
        Err(reply) => return reply,
    };
    match req.form("grant_type") {
        Some("authorization_code") => code_grant(state, req, &client_id),
        Some("refresh_token") => refresh_grant(state, req, &client_id),
        Some(DEVICE_GRANT) => device_grant(state, req, &client_id),
        Some("client_credentials") => client_credentials_grant(state, req, &client_id),
        Some(_) => Reply::error(400, "unsupported_grant_type", "grant_type not supported"),
        None => Reply::error(400, "invalid_request", "grant_type is missing"),
    }
}

/// `grant_type=client_credentials` (RFC 6749 §4.4): confidential clients only, no refresh
/// token, the scope asked for.
fn client_credentials_grant(state: &mut State, req: &Incoming, client_id: &str) -> Reply {
    if state.client(client_id).is_none_or(|c| c.secret.is_none()) {
        return Reply::error(
            400,
            "unauthorized_client",
            "client_credentials needs a confidential client",
        );
    }
    let scope = req.form("scope").unwrap_or_default().to_owned();
    state.stats.client_credentials += 1;
    let rotate = std::mem::replace(&mut state.config.issue_refresh_tokens, false);
    let lineage = Lineage {
        born: Some(state.now()),
        ..Lineage::default()
    };
    let (access, _) = state.issue_with(client_id, &scope, lineage);
    state.config.issue_refresh_tokens = rotate;
    token_reply(state, req, &access, None, &scope, None)
}

/// True when a personality lets this token request go without the client secret: GitHub's
/// device grant, and refreshes of the tokens it issued.
fn public_grant(state: &State, req: &Incoming) -> bool {
    let Some(p) = &state.config.personality else {
        return false;
    };
    if p.auth != AuthRule::NoSecretForDevice {
        return false;
    }
    match req.form("grant_type") {
        Some(DEVICE_GRANT) => true,
        Some("refresh_token") => req
            .form("refresh_token")
            .and_then(|t| state.refresh.get(&digest(t)))
            .is_some_and(|g| g.lineage.via_device),
        _ => false,
    }
}

/// `grant_type=authorization_code`: single use, bound to client and redirect URI, PKCE S256.
fn code_grant(state: &mut State, req: &Incoming, client_id: &str) -> Reply {
    let Some(code) = req.form("code") else {
        return Reply::error(400, "invalid_request", "code is missing");
    };
    // Removed before any check: a code is burnt by its first use, right or wrong.
    let Some(grant) = state.codes.remove(&digest(code)) else {
        return Reply::error(400, "invalid_grant", "unknown, used or expired code");
    };
    if grant.expires < state.now() || grant.client_id != client_id {
        return Reply::error(
            400,
            "invalid_grant",
            "code expired or issued to another client",
        );
    }
    if req.form("redirect_uri") != Some(grant.redirect_uri.as_str()) {
        return Reply::error(400, "invalid_grant", "redirect_uri does not match");
    }
    let verified = req
        .form("code_verifier")
        .is_some_and(|v| ct_eq(challenge_s256(v).as_bytes(), grant.challenge.as_bytes()));
    if !verified {
        return Reply::error(400, "invalid_grant", "PKCE verification failed");
    }
    state.stats.code_exchanges += 1;
    let lineage = Lineage {
        via_device: false,
        redirect_uri: Some(grant.redirect_uri.clone()),
        born: Some(state.now()),
    };
    let (access, refresh) = state.issue_with(client_id, &grant.scope, lineage);
    let id_token = wants_openid(&grant.scope)
        .then(|| id_token(state, client_id, grant.nonce.as_deref(), true));
    token_reply(
        state,
        req,
        &access,
        refresh.as_deref(),
        &grant.scope,
        id_token,
    )
}

/// `grant_type=refresh_token`, rotating when configured.
fn refresh_grant(state: &mut State, req: &Incoming, client_id: &str) -> Reply {
    let Some(refresh) = req.form("refresh_token") else {
        return Reply::error(400, "invalid_request", "refresh_token is missing");
    };
    let key = digest(refresh);
    let Some(grant) = state.refresh.get(&key).filter(|g| g.client_id == client_id) else {
        return Reply::error(
            400,
            "invalid_grant",
            "unknown, rotated or revoked refresh token",
        );
    };
    let granted = grant.scope.clone();
    let lineage = grant.lineage.clone();
    if let Some(refused) = personality_refresh_check(state, req, &lineage) {
        if refused.body.contains("invalid_grant") {
            state.refresh.remove(&key);
        }
        return refused;
    }
    // RFC 6749 §6: a narrower scope may be asked for; the refresh token keeps the grant's.
    let scope = match narrowed_scope(&granted, req.form("scope")) {
        Ok(s) => s,
        Err(reply) => return reply,
    };
    // RFC 8707: a resource must be one this server serves.
    if let Some(resource) = req.form("resource")
        && !state.config.resources.iter().any(|r| r == resource)
    {
        return Reply::error(400, "invalid_target", "this server serves no such resource");
    }
    state.stats.refreshes += 1;
    // OIDC Core §12.2: a refresh may carry a new id_token (no nonce); this server sends one.
    let id_token = wants_openid(&scope).then(|| id_token(state, client_id, None, false));
    let rotate = match state.config.personality.as_ref().map(|p| p.refresh) {
        Some(RefreshRule::Rotate) => true,
        Some(RefreshRule::Keep | RefreshRule::NotIssued) => false,
        None => state.config.rotate_refresh_tokens,
    };
    if rotate {
        state.refresh.remove(&key);
        let (access, new_refresh) = state.issue_with(client_id, &scope, lineage);
        if let Some(r) = &new_refresh
            && let Some(g) = state.refresh.get_mut(&digest(r))
        {
            g.scope = granted;
        }
        token_reply(
            state,
            req,
            &access,
            new_refresh.as_deref(),
            &scope,
            id_token,
        )
    } else {
        // Without rotation the old refresh token stays valid and none is sent back.
        let rotate = std::mem::replace(&mut state.config.issue_refresh_tokens, false);
        let (access, _) = state.issue_with(client_id, &scope, lineage);
        state.config.issue_refresh_tokens = rotate;
        token_reply(state, req, &access, None, &scope, id_token)
    }
}

/// A personality's refresh rules (PROV-1), before any token is issued: Microsoft wants
/// `scope`; GitLab the login's `redirect_uri`; a Google "Testing" app's refresh token dies
/// 7 days after the login. `None` when the request passes.
fn personality_refresh_check(state: &State, req: &Incoming, lineage: &Lineage) -> Option<Reply> {
    let p = state.config.personality.as_ref()?;
    if p.scope_required_on_refresh && req.form("scope").is_none() {
        return Some(Reply::error(
            400,
            "invalid_request",
            "AADSTS90014: The required field 'scope' is missing from the request.",
        ));
    }
    // A device login had no redirect URI to repeat.
    if p.redirect_uri_required_on_refresh && lineage.redirect_uri.is_some() {
        match req.form("redirect_uri") {
            None => {
                return Some(Reply::error(
                    400,
                    "invalid_request",
                    "redirect_uri is missing",
                ));
            }
            Some(uri) if Some(uri) != lineage.redirect_uri.as_deref() => {
                return Some(Reply::error(
                    400,
                    "invalid_grant",
                    "redirect_uri does not match the one of the authorization",
                ));
            }
            Some(_) => {}
        }
    }
    let expired = p
        .refresh_token_lifetime
        .zip(lineage.born)
        .is_some_and(|(life, born)| state.now().saturating_duration_since(born) >= life);
    if expired {
        return Some(Reply::error(
            400,
            "invalid_grant",
            "Token has been expired or revoked.",
        ));
    }
    None
}

/// The scope of a refreshed access token: the grant's, or the subset asked for (RFC 6749 §6);
/// a scope outside the grant is `invalid_scope`.
fn narrowed_scope(granted: &str, asked: Option<&str>) -> Result<String, Reply> {
    let Some(asked) = asked else {
        return Ok(granted.to_owned());
    };
    let have: Vec<&str> = granted.split_whitespace().collect();
    if asked.split_whitespace().all(|s| have.contains(&s)) && !asked.trim().is_empty() {
        Ok(asked.split_whitespace().collect::<Vec<_>>().join(" "))
    } else {
        Err(Reply::error(
            400,
            "invalid_scope",
            "the scope asked for exceeds the grant",
        ))
    }
}

/// `grant_type=urn:ietf:params:oauth:grant-type:device_code` (RFC 8628 §3.4, §3.5).
fn device_grant(state: &mut State, req: &Incoming, client_id: &str) -> Reply {
    state.stats.device_polls += 1;
    let Some(code) = req.form("device_code") else {
        return Reply::error(400, "invalid_request", "device_code is missing");
    };
    let interval = std::time::Duration::from_secs(state.config.device_interval_secs);
    let auto_approve = state.config.auto_approve_device;
    let now = state.now();
    let Some(grant) = state
        .devices
        .get_mut(&digest(code))
        .filter(|g| g.client_id == client_id)
    else {
        return Reply::error(400, "invalid_grant", "unknown device_code");
    };
    if grant.expires < now {
        return Reply::error(400, "expired_token", "the device code has expired");
    }
    let too_fast = grant
        .last_poll
        .is_some_and(|t| now.duration_since(t) < interval);
    grant.last_poll = Some(now);
    if auto_approve && grant.status == DeviceStatus::Pending {
        grant.status = DeviceStatus::Approved;
    }
    match grant.status {
        DeviceStatus::Denied => Reply::error(400, "access_denied", "the user denied the request"),
        DeviceStatus::Used => Reply::error(400, "invalid_grant", "device_code already used"),
        DeviceStatus::Pending if too_fast => {
            Reply::error(400, "slow_down", "polling faster than the interval")
        }
        DeviceStatus::Pending => Reply::error(400, "authorization_pending", "waiting for the user"),
        DeviceStatus::Approved => {
            grant.status = DeviceStatus::Used;
            let scope = grant.scope.clone();
            let lineage = Lineage {
                via_device: true,
                redirect_uri: None,
                born: Some(now),
            };
            let (access, refresh) = state.issue_with(client_id, &scope, lineage);
            let id_token = wants_openid(&scope).then(|| id_token(state, client_id, None, true));
            token_reply(state, req, &access, refresh.as_deref(), &scope, id_token)
        }
    }
}

fn wants_openid(scope: &str) -> bool {
    scope.split(' ').any(|s| s == "openid")
}

/// A successful token response in the configured shape.
fn token_reply(
    state: &State,
    req: &Incoming,
    access: &str,
    refresh: Option<&str>,
    scope: &str,
    id_token: Option<String>,
) -> Reply {
    let config = &state.config;
    let hostile = &config.hostile;
    let personality = config.personality.as_ref();
    let ttl = config.access_token_ttl.as_secs();
    let access = hostile.access_token.as_deref().unwrap_or(access);
    let scope = hostile.scope.as_deref().unwrap_or(scope);
    let id_token = id_token.filter(|_| !hostile.omit_id_token);
    let refresh = refresh.filter(|_| !hostile.omit_refresh_token);
    let mut fields: Vec<(&str, Value)> = vec![
        ("access_token", Value::from(access)),
        ("token_type", Value::from("Bearer")),
    ];
    if hostile.token_padding > 0 {
        fields.push(("padding", Value::from("x".repeat(hostile.token_padding))));
    }
    match personality.map(|p| p.expiry) {
        Some(Expiry::Seconds(s)) => fields.push(("expires_in", Value::from(s))),
        // GitHub App user tokens: strings, and the refresh token's own lifetime (6 months).
        Some(Expiry::StringSeconds(s)) => {
            fields.push(("expires_in", Value::from(s.to_string())));
            if refresh.is_some() {
                fields.push(("refresh_token_expires_in", Value::from("15811200")));
            }
        }
        Some(Expiry::Never) => {}
        None if config.omit_expires_in => {}
        None => {
            let ttl = if let Some(v) = &config.expires_in_value {
                v.clone()
            } else if config.expires_in_as_string {
                Value::from(ttl.to_string())
            } else {
                Value::from(ttl)
            };
            fields.push(("expires_in", ttl));
        }
    }
    if let Some(r) = refresh {
        fields.push(("refresh_token", Value::from(r)));
    }
    fields.push(("scope", Value::from(scope)));
    if let Some(t) = id_token {
        fields.push(("id_token", Value::from(t)));
    }
    let form = match personality.map(|p| p.token_format) {
        Some(TokenFormat::FormUnlessAcceptJson) => !req.accept_json,
        Some(TokenFormat::Json) => false,
        None => config.form_encoded_responses,
    };
    if form {
        let mut out = form_urlencoded::Serializer::new(String::new());
        for (k, v) in &fields {
            match v {
                Value::String(s) => out.append_pair(k, s),
                other => out.append_pair(k, &other.to_string()),
            };
        }
        Reply {
            status: 200,
            content_type: "application/x-www-form-urlencoded",
            body: out.finish(),
            headers: Vec::new(),
        }
    } else {
        let map: Map<String, Value> = fields.into_iter().map(|(k, v)| (k.to_owned(), v)).collect();
        Reply::json(200, &Value::Object(map)).with_header("pragma", "no-cache")
    }
}

fn now_epoch() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// An id_token signed with the server's ES256 key (DISC-5), or broken as the request's
/// [`IdTokenFault`] says.
fn id_token(state: &State, client_id: &str, nonce: Option<&str>, login: bool) -> String {
    let iat = now_epoch();
    let fault = state.id_token_fault;
    let personality_iss = match state.config.personality.as_ref().map(|p| p.iss) {
        Some(IssRule::OnLogin(iss)) if login => Some(iss),
        _ => None,
    };
    let issuer = match fault {
        Some(IdTokenFault::WrongIssuer) => "http://127.0.0.1:1",
        _ => personality_iss.unwrap_or(state.issuer.as_str()),
    };
    let aud = match fault {
        Some(IdTokenFault::WrongAudience) => "someone-else",
        _ => client_id,
    };
    let exp = match fault {
        Some(IdTokenFault::Expired) => iat.saturating_sub(3600),
        _ => iat + state.config.access_token_ttl.as_secs().max(60),
    };
    let mut claims = json!({
        "iss": issuer,
        "sub": state.config.hostile.subject.as_deref().unwrap_or(SUB),
        "aud": aud,
        "iat": iat,
        "exp": exp,
        // A broken token says so in its e-mail, so a test can tell whether its claims were
        // stored.
        "email": match (fault, &state.config.hostile.email) {
            (Some(_), _) => FORGED_EMAIL,
            (None, Some(email)) => email.as_str(),
            (None, None) => EMAIL,
        },
        "email_verified": true,
        "name": NAME,
    });
    if let (Some(n), Some(obj)) = (nonce, claims.as_object_mut()) {
        obj.insert("nonce".into(), Value::from(n));
    }
    let kid = state.signing.kid.as_str();
    match fault {
        Some(IdTokenFault::WrongKey) => state.rogue.sign(kid, &claims),
        Some(IdTokenFault::UnknownKid) => state.rogue.sign(&state.rogue.kid, &claims),
        Some(IdTokenFault::Unsigned) => {
            let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"none","typ":"JWT"}"#);
            format!("{header}.{}.", URL_SAFE_NO_PAD.encode(claims.to_string()))
        }
        _ => state.signing.sign(kid, &claims),
    }
}

/// `POST /revoke` (RFC 7009): unknown tokens are fine; the hint is only a hint.
fn revoke(state: &mut State, req: &Incoming) -> Reply {
    let client_id = match authenticate(state, req) {
        Ok(id) => id,
        Err(reply) => return reply,
    };
    state.stats.revocations += 1;
    let Some(token) = req.form("token") else {
        return Reply::error(400, "invalid_request", "token is missing");
    };
    let key = digest(token);
    // A token of another client is left alone, and the answer is still 200 (§2.1).
    if state
        .access
        .get(&key)
        .is_some_and(|g| g.client_id == client_id)
    {
        state.access.remove(&key);
    }
    if state
        .refresh
        .get(&key)
        .is_some_and(|g| g.client_id == client_id)
    {
        state.refresh.remove(&key);
    }
    Reply::text(200, "")
}

/// OpenAI's revocation (PROV-3): a JSON body `{"token", "token_type_hint", "client_id"?}`, no
/// client authentication; a form body is refused.
fn revoke_json(state: &mut State, req: &Incoming) -> Reply {
    if !req.json_body {
        return Reply::error(400, "invalid_request", "expected a JSON body");
    }
    let Some(token) = req.form("token") else {
        return Reply::error(400, "invalid_request", "token is missing");
    };
    state.stats.revocations += 1;
    let key = digest(token);
    state.access.remove(&key);
    state.refresh.remove(&key);
    Reply::json(200, &json!({}))
}

/// GitHub's `DELETE /applications/{client_id}/token` (PROV-3): HTTP Basic with the client id
/// and secret (the path's client must be the authenticated one), JSON `{"access_token"}`,
/// 204. Revoking the access token ends its grant: the refresh tokens of that login go too.
fn revoke_github(state: &mut State, req: &Incoming, p: &Personality) -> Reply {
    let Some(path_client) = p.client_id_in_path(&req.path) else {
        return Reply::text(404, "not found");
    };
    let authenticated = req
        .authorization
        .as_deref()
        .and_then(basic_credentials)
        .filter(|(id, secret)| {
            id == path_client
                && state.client(id).is_some_and(|c| {
                    c.secret
                        .as_deref()
                        .is_some_and(|s| ct_eq(s.as_bytes(), secret.as_bytes()))
                })
        });
    let Some((client_id, _)) = authenticated else {
        return Reply::json(401, &json!({"message": "Bad credentials"}));
    };
    let Some(token) = req.form("access_token").filter(|_| req.json_body) else {
        return Reply::json(422, &json!({"message": "Validation Failed"}));
    };
    state.stats.revocations += 1;
    let key = digest(token);
    let Some(grant) = state.access.remove(&key) else {
        return Reply::json(404, &json!({"message": "Not Found"}));
    };
    if grant.client_id != client_id {
        state.access.insert(key, grant);
        return Reply::json(404, &json!({"message": "Not Found"}));
    }
    // The grant's refresh tokens die with it (same login: same birth instant).
    state
        .refresh
        .retain(|_, g| !(g.client_id == client_id && g.lineage.born == grant.lineage.born));
    Reply {
        status: 204,
        content_type: "application/json",
        body: String::new(),
        headers: Vec::new(),
    }
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
    let hostile = &state.config.hostile;
    Reply::json(
        200,
        &json!({
            "device_code": device_code,
            "user_code": hostile.user_code.as_deref().unwrap_or(&user_code),
            "verification_uri":
                hostile.verification_uri.as_deref().unwrap_or(&verification_uri),
            "verification_uri_complete":
                hostile.verification_uri_complete.as_deref().unwrap_or(&complete),
            "expires_in": hostile
                .device_expires_in
                .clone()
                .unwrap_or_else(|| Value::from(ttl.as_secs())),
            "interval": state.config.device_interval_secs,
        }),
    )
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

    #[test]
    fn faults_map_to_statuses() {
        assert_eq!(fault_reply(Fault::Status(500)).status, 500);
        assert!(
            fault_reply(Fault::Status(503))
                .body
                .contains("temporarily_unavailable")
        );
        let r = fault_reply(Fault::TooManyRequests {
            retry_after_secs: 7,
        });
        assert_eq!(r.status, 429);
        assert!(r.headers.contains(&("retry-after".into(), "7".into())));
        let g = fault_reply(Fault::GarbageJson);
        assert!(serde_json::from_str::<Value>(&g.body).is_err());
    }

    #[test]
    fn endpoints_for_faults() {
        assert_eq!(endpoint_of("POST", "/token"), Some(Endpoint::Token));
        assert_eq!(endpoint_of("GET", "/api/echo"), Some(Endpoint::Userinfo));
        assert_eq!(endpoint_of("GET", "/authorize"), None);
    }
}
