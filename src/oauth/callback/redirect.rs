//! One redirect request: its parameters, the verdict on them (CB-5..CB-11, AUTHZ-4) and the
//! HTML page the browser gets.

use super::*;

/// The parameters of an authorization response, each with every value it was given (a
/// repeated parameter is malformed, RFC 6749 §3.1).
#[derive(Default)]
pub(super) struct Params {
    pub(super) state: Vec<String>,
    pub(super) code: Vec<String>,
    pub(super) error: Vec<String>,
    pub(super) description: Vec<String>,
    pub(super) iss: Vec<String>,
}

impl Params {
    pub(super) fn parse(query: &str) -> Self {
        let mut p = Params::default();
        for (k, v) in form_urlencoded::parse(query.as_bytes()) {
            let list = match k.as_ref() {
                "state" => &mut p.state,
                "code" => &mut p.code,
                "error" => &mut p.error,
                "error_description" => &mut p.description,
                "iss" => &mut p.iss,
                _ => continue,
            };
            list.push(v.into_owned());
        }
        p
    }
}

/// Answers one request; completes a pending login when it is a valid redirect.
pub(super) fn handle<B>(
    shared: &Shared,
    req: &Request<B>,
    deferred: &DeferredSlot,
) -> Response<Full<Bytes>> {
    if !host_allowed(shared, req) {
        tracing::warn!("callback: rejected a request with an unexpected Host header");
        return page(StatusCode::BAD_REQUEST, "Bad request", "Unexpected host.");
    }
    let target_len = req.uri().path_and_query().map_or(0, |pq| pq.as_str().len());
    if target_len > MAX_URI_BYTES {
        return page(
            StatusCode::URI_TOO_LONG,
            "Request too long",
            "The address is too long.",
        );
    }
    if req.method() != Method::GET {
        let mut resp = page(
            StatusCode::METHOD_NOT_ALLOWED,
            "Method not allowed",
            "Only GET is accepted here.",
        );
        resp.headers_mut()
            .insert(http::header::ALLOW, HeaderValue::from_static("GET"));
        return resp;
    }
    if req.uri().path() != shared.path {
        return page(StatusCode::NOT_FOUND, "Not found", "Nothing here.");
    }
    let params = Params::parse(req.uri().query().unwrap_or(""));
    complete(shared, params, deferred)
}

pub(super) fn host_allowed<B>(shared: &Shared, req: &Request<B>) -> bool {
    let mut values = req.headers().get_all(HOST).iter();
    let (Some(host), None) = (values.next(), values.next()) else {
        return false;
    };
    let Ok(host) = host.to_str() else {
        return false;
    };
    shared.hosts.iter().any(|h| h.eq_ignore_ascii_case(host))
}

/// Routes a redirect to its login by `state` (constant-time) and finishes that login.
pub(super) fn complete(
    shared: &Shared,
    params: Params,
    deferred: &DeferredSlot,
) -> Response<Full<Bytes>> {
    let [state] = params.state.as_slice() else {
        tracing::warn!("callback: state mismatch");
        return page(
            StatusCode::BAD_REQUEST,
            "Bad request",
            "Unknown or missing login.",
        );
    };
    let found = {
        let reg = shared.lock();
        // Compare against every slot without stopping early (CB-7, constant time per slot).
        let mut found = None;
        for slot in &reg.slots {
            if slot.state.ct_eq(state) {
                found = Some((
                    slot.id,
                    slot.sender.is_some(),
                    slot.expected_issuer.clone(),
                    slot.require_iss,
                ));
            }
        }
        found
    };
    let Some((id, pending, expected_issuer, require_iss)) = found else {
        tracing::warn!("callback: state mismatch");
        return page(
            StatusCode::BAD_REQUEST,
            "Bad request",
            "Unknown or missing login.",
        );
    };
    if !pending {
        // CB-10: never a second exchange.
        return already_completed();
    }
    // Taken before anything else so a racing second hit sees "already completed" (CB-10).
    let Some(sender) = shared.take(id) else {
        return already_completed();
    };
    let outcome = evaluate(params, expected_issuer.as_deref(), require_iss);
    let response = outcome_page(&outcome);
    // Delivered by the connection after the page is written: the exchange runs in the
    // caller only once the browser has its answer.
    *deferred.lock().unwrap_or_else(PoisonError::into_inner) = Some(Deferred { sender, outcome });
    response
}

/// CB-10: a repeat hit never causes a second exchange.
pub(super) fn already_completed() -> Response<Full<Bytes>> {
    page(
        StatusCode::BAD_REQUEST,
        "Already completed",
        "This login was already completed. You can close this tab.",
    )
}

/// Turns the parameters of a redirect with a valid `state` into the login's outcome.
pub(super) fn evaluate(
    params: Params,
    expected_issuer: Option<&str>,
    require_iss: bool,
) -> Outcome {
    // AUTHZ-4: checked first, error responses included.
    match (params.iss.as_slice(), expected_issuer) {
        ([], _) if require_iss => return Err(CallbackError::IssuerMismatch),
        ([], _) => {}
        ([iss], Some(expected)) if iss == expected => {}
        ([_], None) if !require_iss => {}
        _ => return Err(CallbackError::IssuerMismatch),
    }
    let iss = params.iss.into_iter().next();
    let description = match params.description.as_slice() {
        [] => None,
        [d] => Some(sanitize(d, MAX_DESCRIPTION_CHARS)),
        _ => return Err(CallbackError::Malformed),
    };
    match (params.error.as_slice(), params.code.as_slice()) {
        ([error], _) if error == "access_denied" => Err(CallbackError::Denied { description }),
        ([error], _) => Err(CallbackError::Provider {
            error: sanitize(error, MAX_ERROR_CODE_CHARS),
            description,
        }),
        ([], [code]) if !code.is_empty() => Ok(CallbackResult {
            code: AuthCode::new(code.as_str()),
            iss,
        }),
        _ => Err(CallbackError::Malformed),
    }
}

/// The browser's page for a finished login (CB-11). Shows the error message, never a secret.
pub(super) fn outcome_page(outcome: &Outcome) -> Response<Full<Bytes>> {
    match outcome {
        Ok(_) => page(
            StatusCode::OK,
            "Login complete",
            "authdeck received the authorization. You can close this tab.",
        ),
        Err(e) => page(
            StatusCode::BAD_REQUEST,
            "Login failed",
            &format!("{e}. You can close this tab."),
        ),
    }
}

/// A small static page: no scripts, no external resources, not cached, no referrer (CB-11).
pub(super) fn page(status: StatusCode, title: &str, message: &str) -> Response<Full<Bytes>> {
    let body = format!(
        "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>authdeck: {t}</title></head>\
         <body><h1>{t}</h1><p>{m}</p></body></html>\n",
        t = html_escape(title),
        m = html_escape(message),
    );
    let mut resp = Response::new(Full::new(Bytes::from(body)));
    *resp.status_mut() = status;
    let headers = resp.headers_mut();
    headers.insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(
        HeaderName::from_static("referrer-policy"),
        HeaderValue::from_static("no-referrer"),
    );
    headers.insert(
        HeaderName::from_static("content-security-policy"),
        HeaderValue::from_static("default-src 'none'"),
    );
    headers.insert(
        HeaderName::from_static("x-content-type-options"),
        HeaderValue::from_static("nosniff"),
    );
    resp
}

pub(super) fn html_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}
