//! CORS for the exchange routes (PROXY-7/8): an `Origin` is either absent (a server-side or
//! native caller), exactly one of the configured origins, or refused. Only an allowed origin is
//! echoed; `Vary: Origin` is on every answer because the answer depends on it.

use super::handler::Body;
use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderValue};
use http::{Response, StatusCode};
use http_body_util::Full;

/// How long a browser may cache a preflight answer, in seconds.
const PREFLIGHT_MAX_AGE: &str = "600";

/// How the request's `Origin` relates to the configured origins.
#[derive(Debug, Clone, Copy)]
pub(super) enum Origin<'a> {
    /// No `Origin` header: a server-side or native caller; no CORS headers.
    Absent,
    /// Exactly a configured origin; echoed back in `Access-Control-Allow-Origin`.
    Allowed(&'a str),
    /// Anything else: no CORS headers, 403 (PROXY-8).
    Refused,
}

impl<'a> Origin<'a> {
    /// Classifies the request's `Origin` header against `allowed` (exact match only).
    pub(super) fn of(headers: &HeaderMap, allowed: &'a [String]) -> Self {
        let Some(value) = headers.get(header::ORIGIN) else {
            return Self::Absent;
        };
        let found = value
            .to_str()
            .ok()
            .and_then(|o| allowed.iter().find(|a| a.as_str() == o));
        match found {
            Some(origin) => Self::Allowed(origin),
            None => Self::Refused,
        }
    }

    /// Narrows an origin allowed by some client to the selected client's `allowed` list;
    /// `None` when the request must be refused (403).
    pub(super) fn for_client(self, allowed: &[String]) -> Option<Self> {
        match self {
            Self::Allowed(o) if !allowed.iter().any(|a| a == o) => None,
            Self::Refused => None,
            other => Some(other),
        }
    }
}

/// The origin a preflight may be answered for: an exactly configured one asking for POST.
pub(super) fn preflight_origin<'a>(headers: &HeaderMap, allowed: &'a [String]) -> Option<&'a str> {
    let method_ok = headers
        .get(header::ACCESS_CONTROL_REQUEST_METHOD)
        .is_none_or(|m| m.as_bytes() == b"POST");
    match Origin::of(headers, allowed) {
        Origin::Allowed(origin) if method_ok => Some(origin),
        _ => None,
    }
}

/// The 204 answer to an allowed preflight (PROXY-7).
pub(super) fn preflight_response(origin: &str) -> Response<Body> {
    let mut r = Response::new(Full::new(Bytes::new()));
    *r.status_mut() = StatusCode::NO_CONTENT;
    let h = r.headers_mut();
    allow_origin(h, origin);
    h.insert(
        header::ACCESS_CONTROL_ALLOW_METHODS,
        HeaderValue::from_static("POST"),
    );
    h.insert(
        header::ACCESS_CONTROL_ALLOW_HEADERS,
        HeaderValue::from_static("Content-Type"),
    );
    h.insert(
        header::ACCESS_CONTROL_MAX_AGE,
        HeaderValue::from_static(PREFLIGHT_MAX_AGE),
    );
    r
}

/// `Vary: Origin`, for an answer that carries no `Access-Control-Allow-Origin`.
pub(super) fn vary_origin(h: &mut HeaderMap) {
    h.insert(header::VARY, HeaderValue::from_static("Origin"));
}

fn allow_origin(h: &mut HeaderMap, origin: &str) {
    if let Ok(v) = HeaderValue::from_str(origin) {
        h.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, v);
    }
    vary_origin(h);
}

/// PROXY-7: echo an allowed origin; `Vary: Origin` always, since the answer depends on it.
pub(super) fn with_origin(mut r: Response<Body>, origin: Origin<'_>) -> Response<Body> {
    match origin {
        Origin::Allowed(o) => allow_origin(r.headers_mut(), o),
        Origin::Absent | Origin::Refused => vary_origin(r.headers_mut()),
    }
    r
}
