//! `POST /token`: client authentication and every grant the server knows (code, refresh,
//! device, client credentials), and the token response with its signed id_token.

use super::*;

/// The 401 for failed client authentication.
pub(super) fn invalid_client() -> Reply {
    Reply::error(401, "invalid_client", "client authentication failed")
        .with_header("www-authenticate", "Basic realm=\"devserver\"")
}

/// Decodes `Authorization: Basic` per RFC 6749 §2.3.1 (form-urlencoded id and secret).
pub(super) fn basic_credentials(header: &str) -> Option<(String, String)> {
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
pub(super) fn authenticate(state: &mut State, req: &Incoming) -> Result<String, Reply> {
    authenticate_as(state, req, false)
}

/// [`authenticate`], also accepting a confidential client that sends only its id when
/// `public_ok` (GitHub's device flow and its refreshes).
pub(super) fn authenticate_as(
    state: &mut State,
    req: &Incoming,
    public_ok: bool,
) -> Result<String, Reply> {
    if req.form("client_assertion_type").is_some() || req.form("client_assertion").is_some() {
        return assertion_client(state, req);
    }
    let (client_id, secret, method) = match req.authorization.as_deref().map(basic_credentials) {
        Some(Some((id, secret))) => (id, Some(secret), AuthMethod::Basic),
        Some(None) => return Err(invalid_client()),
        None => match (req.form("client_id"), req.form("client_secret")) {
            (Some(id), Some(secret)) => (id.to_owned(), Some(secret.to_owned()), AuthMethod::Post),
            (Some(id), None) => (id.to_owned(), None, AuthMethod::None),
            (None, _) => return Err(invalid_client()),
        },
    };
    let client = state.client(&client_id).ok_or_else(invalid_client)?;
    // A client_id in the body must agree with the authenticated one.
    let method_ok = client.auth == method || (public_ok && method == AuthMethod::None);
    if req.form("client_id").is_some_and(|id| id != client_id) || !method_ok {
        return Err(invalid_client());
    }
    let secret_ok = match (&client.secret, &secret) {
        (_, None) => method == AuthMethod::None,
        (Some(expected), Some(given)) => ct_eq(expected.as_bytes(), given.as_bytes()),
        (None, Some(_)) => false,
    };
    if !secret_ok {
        return Err(invalid_client());
    }
    state.stats.last_client_auth = Some(method.as_str().to_owned());
    Ok(client_id)
}

/// MACH-2: a `private_key_jwt` client: the assertion's type, signature (with the registered
/// key), issuer and subject (the client), audience (this server or its token endpoint),
/// expiry and `jti` (no replay) must all be right (RFC 7523 §3).
fn assertion_client(state: &mut State, req: &Incoming) -> Result<String, Reply> {
    use crate::oauth::client_assertion::{ASSERTION_TYPE, verify};
    if req.form("client_assertion_type") != Some(ASSERTION_TYPE) || req.authorization.is_some() {
        return Err(invalid_client());
    }
    let jwt = req.form("client_assertion").ok_or_else(invalid_client)?;
    let claims = state
        .config
        .clients
        .iter()
        .filter_map(|c| c.assertion_key.as_ref().map(|k| (c, k)))
        .find_map(|(c, (alg, key))| {
            verify(jwt, *alg, key).map(|claims| (c.client_id.clone(), claims))
        });
    let Some((client_id, claims)) = claims else {
        return Err(invalid_client());
    };
    let text = |k: &str| claims.get(k).and_then(Value::as_str).unwrap_or_default();
    let now = std::time::SystemTime::now() + state.clock_offset;
    let now = now
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX));
    let token_url = format!("{}/token", state.issuer);
    let aud_ok = match claims.get("aud") {
        Some(Value::String(a)) => *a == state.issuer || *a == token_url,
        Some(Value::Array(list)) => list
            .iter()
            .any(|a| a.as_str() == Some(&state.issuer) || a.as_str() == Some(&token_url)),
        _ => false,
    };
    let exp_ok = claims
        .get("exp")
        .and_then(Value::as_i64)
        .is_some_and(|exp| exp > now && exp <= now + 3600);
    let jti = text("jti").to_owned();
    let ok = text("iss") == client_id
        && text("sub") == client_id
        && req.form("client_id").is_none_or(|id| id == client_id)
        && aud_ok
        && exp_ok
        && !jti.is_empty()
        && state.used_jtis.insert(jti);
    if !ok {
        return Err(invalid_client());
    }
    state.stats.last_client_auth = Some(AuthMethod::PrivateKeyJwt.as_str().to_owned());
    Ok(client_id)
}

/// `POST /token`.
pub(super) fn token(state: &mut State, req: &Incoming) -> Reply {
    let reply = token_rfc(state, req);
    match &state.config.personality {
        Some(p) if p.github_errors => github_error(reply, req),
        _ => reply,
    }
}

/// GitHub answers token errors with HTTP 200 and its own codes (PROV-12), in the format the
/// request accepts.
pub(super) fn github_error(reply: Reply, req: &Incoming) -> Reply {
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
pub(super) fn token_rfc(state: &mut State, req: &Incoming) -> Reply {
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
pub(super) fn client_credentials_grant(
    state: &mut State,
    req: &Incoming,
    client_id: &str,
) -> Reply {
    if state
        .client(client_id)
        .is_none_or(|c| c.auth == AuthMethod::None)
    {
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
pub(super) fn public_grant(state: &State, req: &Incoming) -> bool {
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
pub(super) fn code_grant(state: &mut State, req: &Incoming, client_id: &str) -> Reply {
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
pub(super) fn refresh_grant(state: &mut State, req: &Incoming, client_id: &str) -> Reply {
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
pub(super) fn personality_refresh_check(
    state: &State,
    req: &Incoming,
    lineage: &Lineage,
) -> Option<Reply> {
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
pub(super) fn narrowed_scope(granted: &str, asked: Option<&str>) -> Result<String, Reply> {
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
pub(super) fn device_grant(state: &mut State, req: &Incoming, client_id: &str) -> Reply {
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

pub(super) fn wants_openid(scope: &str) -> bool {
    scope.split(' ').any(|s| s == "openid")
}

/// A successful token response in the configured shape.
pub(super) fn token_reply(
    state: &State,
    req: &Incoming,
    access: &str,
    refresh: Option<&str>,
    scope: &str,
    id_token: Option<String>,
) -> Reply {
    let config = &state.config;
    let personality = config.personality.as_ref();
    let ttl = config.access_token_ttl.as_secs();
    #[cfg(any(test, feature = "test-support"))]
    let (access, scope, refresh, id_token) = config
        .hostile
        .token_answer(access, scope, refresh, id_token);
    let mut fields: Vec<(&str, Value)> = vec![
        ("access_token", Value::from(access)),
        ("token_type", Value::from("Bearer")),
    ];
    #[cfg(any(test, feature = "test-support"))]
    if let Some(padding) = config.hostile.padding() {
        fields.push(("padding", padding));
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

pub(super) fn now_epoch() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// An id_token signed with the server's ES256 key (DISC-5); in the test suites' builds,
/// broken as the request's injected fault says.
pub(super) fn id_token(state: &State, client_id: &str, nonce: Option<&str>, login: bool) -> String {
    let iat = now_epoch();
    let issuer = match state.config.personality.as_ref().map(|p| p.iss) {
        Some(IssRule::OnLogin(iss)) if login => iss,
        _ => state.issuer.as_str(),
    };
    let mut claims = json!({
        "iss": issuer,
        "sub": SUB,
        "aud": client_id,
        "iat": iat,
        "exp": iat + state.config.access_token_ttl.as_secs().max(60),
        "email": EMAIL,
        "email_verified": true,
        "name": NAME,
    });
    if let (Some(n), Some(obj)) = (nonce, claims.as_object_mut()) {
        obj.insert("nonce".into(), Value::from(n));
    }
    #[cfg(any(test, feature = "test-support"))]
    state.config.hostile.id_token_claims(&mut claims);
    #[cfg(any(test, feature = "test-support"))]
    if let Some(fault) = state.id_token_fault {
        return crate::devserver::faults::broken_id_token(state, fault, claims);
    }
    state.signing.sign(state.signing.kid.as_str(), &claims)
}
