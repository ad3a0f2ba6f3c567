//! The token routes (PROXY-2..6, PROXY-18/19): each body's shape and syntax checks, the
//! client it selects, and the upstream request it becomes.

use super::*;

/// `POST /api/auth/exchange` body. Secret values go straight into secret types.
#[derive(Debug, Deserialize)]
pub(super) struct ExchangeBody {
    /// Absent or `authorization_code`; or the device grant's URN (PROXY-19).
    grant_type: Option<String>,
    device_code: Option<DeviceCode>,
    code: Option<AuthCode>,
    code_verifier: Option<PkceVerifier>,
    redirect_uri: Option<String>,
    client: Option<String>,
}

/// `POST /api/auth/refresh` body.
#[derive(Debug, Deserialize)]
pub(super) struct RefreshBody {
    refresh_token: Option<RefreshToken>,
    scope: Option<String>,
    client: Option<String>,
}

/// `POST /api/auth/revoke` body (RFC 7009 §2.1 parameters, plus the client selection).
#[derive(Debug, Deserialize)]
pub(super) struct RevokeBody {
    token: Option<AnyToken>,
    token_type_hint: Option<String>,
    client: Option<String>,
}

/// Parses a JSON object without echoing serde's message, which may quote a secret value.
pub(super) fn parse<'de, T: Deserialize<'de>>(body: &'de [u8]) -> Result<T, Reject> {
    if !wire::looks_like_json_object(body) {
        return Err(
            match serde_json::from_slice::<serde::de::IgnoredAny>(body) {
                Ok(_) => Reject::bad_request("the body must be a JSON object"),
                Err(_) => Reject::bad_request("malformed JSON body"),
            },
        );
    }
    serde_json::from_slice::<T>(body).map_err(|e| {
        if e.is_data() {
            Reject::bad_request("the body's fields must be JSON strings")
        } else {
            Reject::bad_request("malformed JSON body")
        }
    })
}

/// Picks the client: the named one, or the only one (PROXY-2).
pub(super) fn select_client<'a>(
    shared: &'a Shared,
    name: Option<&str>,
    note: &mut Note,
) -> Result<&'a Arc<ResolvedClient>, Reject> {
    let client = match name {
        Some(name) => shared
            .clients
            .get(name)
            .ok_or_else(|| Reject::bad_request("unknown client"))?,
        None if shared.clients.len() == 1 => shared
            .clients
            .values()
            .next()
            .ok_or_else(|| Reject::missing("client"))?,
        None => return Err(Reject::missing("client")),
    };
    note.client = Some(client.name.clone());
    Ok(client)
}

pub(super) fn required<T>(
    value: Option<T>,
    empty: impl Fn(&T) -> bool,
    field: &str,
) -> Result<T, Reject> {
    value
        .filter(|v| !empty(v))
        .ok_or_else(|| Reject::missing(field))
}

pub(super) async fn exchange<'a>(
    shared: &Shared,
    body: &[u8],
    origin: Origin<'a>,
    note: &mut Note,
) -> Result<(Reply, Origin<'a>), Reject> {
    let req: ExchangeBody = parse(body)?;
    let client = select_client(shared, req.client.as_deref(), note)?;
    let origin = origin
        .for_client(&client.allowed_origins)
        .ok_or_else(Reject::forbidden_origin)?;
    match req.grant_type.as_deref() {
        None | Some("authorization_code") => {}
        Some(device::GRANT) => {
            // PROXY-19: the device grant's token request, with the client's credentials.
            let code = required(req.device_code, DeviceCode::is_empty, "device_code")?;
            let form = device::token_form(&code).map_err(Reject::bad_request)?;
            let endpoint = &client.token_endpoint;
            let reply = call_upstream(shared, client, endpoint, form, upstream::map_response).await;
            return Ok((reply, origin));
        }
        Some(_) => {
            return Err(Reject {
                status: StatusCode::BAD_REQUEST,
                code: "unsupported_grant_type",
                description: format!("grant_type must be authorization_code or {}", device::GRANT),
            });
        }
    }
    let code = required(req.code, AuthCode::is_empty, "code")?;
    let verifier = required(req.code_verifier, PkceVerifier::is_empty, "code_verifier")?;
    let redirect_uri = required(req.redirect_uri, String::is_empty, "redirect_uri")?;
    if !wire::is_valid_verifier(verifier.secret()) {
        return Err(Reject::bad_request(
            "code_verifier must be 43 to 128 characters of [A-Za-z0-9-._~] (RFC 7636 section 4.1)",
        ));
    }
    if !client.redirect_uris.contains(&redirect_uri) {
        return Err(Reject::bad_request(
            "redirect_uri is not allowed for this client",
        ));
    }
    let form = form_urlencoded::Serializer::new(String::new())
        .append_pair("grant_type", "authorization_code")
        .append_pair("code", code.secret())
        .append_pair("redirect_uri", &redirect_uri)
        .append_pair("code_verifier", verifier.secret())
        .finish();
    let endpoint = &client.token_endpoint;
    let reply = call_upstream(shared, client, endpoint, form, upstream::map_response).await;
    Ok((reply, origin))
}

pub(super) async fn refresh<'a>(
    shared: &Shared,
    body: &[u8],
    origin: Origin<'a>,
    note: &mut Note,
) -> Result<(Reply, Origin<'a>), Reject> {
    let req: RefreshBody = parse(body)?;
    let client = select_client(shared, req.client.as_deref(), note)?;
    let origin = origin
        .for_client(&client.allowed_origins)
        .ok_or_else(Reject::forbidden_origin)?;
    let token = required(req.refresh_token, RefreshToken::is_empty, "refresh_token")?;
    if req.scope.as_deref().is_some_and(|s| !wire::is_scope(s)) {
        return Err(Reject::bad_request(
            "scope must be space-separated scope tokens (RFC 6749 section 3.3)",
        ));
    }
    // Built in a block: the serializer is not `Send` and must not live across the await.
    let form = {
        let mut form = form_urlencoded::Serializer::new(String::new());
        form.append_pair("grant_type", "refresh_token")
            .append_pair("refresh_token", token.secret());
        if let Some(scope) = &req.scope {
            form.append_pair("scope", scope);
        }
        form.finish()
    };
    let endpoint = &client.token_endpoint;
    let reply = call_upstream(shared, client, endpoint, form, upstream::map_response).await;
    Ok((reply, origin))
}

/// `POST /api/auth/device` (PROXY-18): the device authorization request with the client's
/// credentials added; the answer (device code, user code, verification URI) is passed back.
pub(super) async fn device_authorization<'a>(
    shared: &Shared,
    body: &[u8],
    origin: Origin<'a>,
    note: &mut Note,
) -> Result<(Reply, Origin<'a>), Reject> {
    let req: device::DeviceBody = parse(body)?;
    let client = select_client(shared, req.client.as_deref(), note)?;
    let origin = origin
        .for_client(&client.allowed_origins)
        .ok_or_else(Reject::forbidden_origin)?;
    if req.scope.as_deref().is_some_and(|s| !wire::is_scope(s)) {
        return Err(Reject::bad_request(
            "scope must be space-separated scope tokens (RFC 6749 section 3.3)",
        ));
    }
    let Some(endpoint) = &client.device_authorization_endpoint else {
        return Err(Reject {
            status: StatusCode::NOT_IMPLEMENTED,
            code: "unsupported_operation",
            description: "this client has no device_authorization_endpoint configured at the proxy"
                .into(),
        });
    };
    let form = device::authorization_form(req.scope.as_deref());
    let reply = call_upstream(
        shared,
        client,
        endpoint,
        form,
        device::map_authorization_response,
    )
    .await;
    Ok((reply, origin))
}

/// The hints RFC 7009 §2.1 defines. Others are refused rather than forwarded: the proxy only
/// passes on values it understands.
pub(super) const TOKEN_TYPE_HINTS: [&str; 2] = ["refresh_token", "access_token"];

/// The longest token accepted for revocation; real tokens, JWTs included, are far shorter.
pub(super) const MAX_TOKEN_LEN: usize = 8 * 1024;

/// RFC 6749 Appendix A.12 / A.17: an access or refresh token is `1*VSCHAR` (`%x20-7E`).
pub(super) fn token_syntax_ok(token: &str) -> bool {
    (1..=MAX_TOKEN_LEN).contains(&token.len()) && wire::is_vschar(token)
}

pub(super) async fn revoke<'a>(
    shared: &Shared,
    body: &[u8],
    origin: Origin<'a>,
    note: &mut Note,
) -> Result<(Reply, Origin<'a>), Reject> {
    let req: RevokeBody = parse(body)?;
    let client = select_client(shared, req.client.as_deref(), note)?;
    let origin = origin
        .for_client(&client.allowed_origins)
        .ok_or_else(Reject::forbidden_origin)?;
    let token = required(req.token, AnyToken::is_empty, "token")?;
    if !token_syntax_ok(token.secret()) {
        return Err(Reject::bad_request(format!(
            "token must be at most {MAX_TOKEN_LEN} printable ASCII characters (RFC 6749 appendix A.12)"
        )));
    }
    let hint = req.token_type_hint.as_deref();
    if hint.is_some_and(|h| !TOKEN_TYPE_HINTS.contains(&h)) {
        return Err(Reject::bad_request(
            "token_type_hint must be 'refresh_token' or 'access_token' (RFC 7009 section 2.1)",
        ));
    }
    let Some(endpoint) = &client.revocation_endpoint else {
        return Err(Reject {
            status: StatusCode::NOT_IMPLEMENTED,
            code: "unsupported_operation",
            description: "this client has no revocation_endpoint configured at the proxy".into(),
        });
    };
    let form = {
        let mut form = form_urlencoded::Serializer::new(String::new());
        form.append_pair("token", token.secret());
        if let Some(hint) = hint {
            form.append_pair("token_type_hint", hint);
        }
        form.finish()
    };
    let reply = call_upstream(
        shared,
        client,
        endpoint,
        form,
        upstream::map_revocation_response,
    )
    .await;
    Ok((reply, origin))
}
