//! Fault injection, for the test suites only (`cfg(test)` or the `test-support` feature): the
//! release binary and `authdeck demo` carry none of it.
//!
//! [`DevServer::inject`](super::DevServer::inject) queues a [`Fault`] on an [`Endpoint`]; the
//! server takes one per matching request. [`Fault::IdToken`] breaks the id_token of a token
//! answer as an [`IdTokenFault`] says, and marks it with [`FORGED_EMAIL`].

use std::collections::VecDeque;
use std::sync::MutexGuard;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Value, json};

use super::handlers::Reply;
use super::state::State;

/// The e-mail in an id_token broken by an [`IdTokenFault`].
pub const FORGED_EMAIL: &str = "forged@authdeck.invalid";

/// A misbehaviour to inject with [`DevServer::inject`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// Answer with this status and `{"error":"server_error"}` (`temporarily_unavailable` for 503).
    Status(u16),
    /// 429 with `Retry-After: retry_after_secs`.
    TooManyRequests {
        /// Value of the `Retry-After` header, in seconds.
        retry_after_secs: u64,
    },
    /// Sleep this long, then answer normally.
    Slow(Duration),
    /// Handle the request at once (a refresh rotates the token now), but hold the answer back
    /// this long: a client that stops waiting has lost what the server already did.
    SlowAnswer(Duration),
    /// 200 with a body that is not JSON.
    GarbageJson,
    /// Close the connection without a response.
    ConnectionReset,
    /// Answer normally, but with a bad `id_token` (only for grants that issue one; queue it
    /// on [`Endpoint::Token`]).
    IdToken(IdTokenFault),
}

/// What is wrong with an `id_token` under [`Fault::IdToken`] (DISC-5 tests). Every broken
/// token also carries the e-mail [`FORGED_EMAIL`], so a test can see whether its claims
/// were stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IdTokenFault {
    /// Signed by a key that is not in `/jwks`, under the published `kid`.
    WrongKey,
    /// Names a `kid` that `/jwks` does not list (and never will).
    UnknownKid,
    /// `iss` is another issuer.
    WrongIssuer,
    /// `aud` is another client.
    WrongAudience,
    /// `exp` is an hour in the past.
    Expired,
    /// Unsigned, `alg: none` (what this server used to issue).
    Unsigned,
}

/// Which requests a fault applies to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Endpoint {
    /// `POST /token`.
    Token,
    /// `POST /revoke`.
    Revoke,
    /// `POST /device_authorization`.
    DeviceAuthorization,
    /// `GET /userinfo` and `/api/*`.
    Userinfo,
    /// Every request.
    Any,
}

/// One queued fault: `fault` on `on`, `left` more times.
#[derive(Debug, Clone)]
pub(super) struct Queued {
    fault: Fault,
    on: Endpoint,
    left: u32,
}

/// The error a handler returns to make hyper drop the connection without answering
/// ([`Fault::ConnectionReset`]).
#[derive(Debug)]
pub(super) struct ResetConnection;

impl std::fmt::Display for ResetConnection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("connection reset by fault injection")
    }
}

impl std::error::Error for ResetConnection {}

/// The queue of injected faults.
pub(super) type Queue = std::sync::Mutex<VecDeque<Queued>>;

/// Queues `fault` for the next `times` requests to `on`.
pub(super) fn push(queue: &Queue, fault: Fault, times: u32, on: Endpoint) {
    if times > 0 {
        lock(queue).push_back(Queued {
            fault,
            on,
            left: times,
        });
    }
}

fn lock(queue: &Queue) -> MutexGuard<'_, VecDeque<Queued>> {
    queue.lock().unwrap_or_else(|p| p.into_inner())
}

/// Takes one fault queued for `endpoint`, if any (first queued, first served).
pub(super) fn take(queue: &Queue, endpoint: Option<Endpoint>) -> Option<Fault> {
    let mut faults = lock(queue);
    let idx = faults
        .iter()
        .position(|q| q.on == Endpoint::Any || Some(q.on) == endpoint)?;
    let q = faults.get_mut(idx)?;
    let fault = q.fault;
    q.left = q.left.saturating_sub(1);
    if q.left == 0 {
        faults.remove(idx);
    }
    Some(fault)
}

/// Which fault queue a request belongs to.
pub(super) fn endpoint_of(method: &str, path: &str) -> Option<Endpoint> {
    match (method, path) {
        ("POST", "/token") => Some(Endpoint::Token),
        ("POST", "/revoke") => Some(Endpoint::Revoke),
        ("POST", "/device_authorization") => Some(Endpoint::DeviceAuthorization),
        (_, "/userinfo") => Some(Endpoint::Userinfo),
        (_, p) if p.starts_with("/api/") => Some(Endpoint::Userinfo),
        _ => None,
    }
}

/// The reply for a fault that answers (all but `Slow` and `ConnectionReset`).
pub(super) fn fault_reply(fault: Fault) -> Reply {
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
        Fault::Slow(_) | Fault::SlowAnswer(_) | Fault::ConnectionReset | Fault::IdToken(_) => {
            Reply::error(500, "server_error", "fault")
        }
    }
}

/// The id_token of a token answer, broken as `fault` says: `claims` are the good token's.
/// Every broken token carries [`FORGED_EMAIL`], so a test can see whether its claims were
/// stored.
pub(super) fn broken_id_token(state: &State, fault: IdTokenFault, mut claims: Value) -> String {
    if let Some(obj) = claims.as_object_mut() {
        obj.insert("email".into(), json!(FORGED_EMAIL));
        match fault {
            IdTokenFault::WrongIssuer => {
                obj.insert("iss".into(), json!("http://127.0.0.1:1"));
            }
            IdTokenFault::WrongAudience => {
                obj.insert("aud".into(), json!("someone-else"));
            }
            IdTokenFault::Expired => {
                let iat = obj.get("iat").and_then(Value::as_u64).unwrap_or(0);
                obj.insert("exp".into(), json!(iat.saturating_sub(3600)));
            }
            IdTokenFault::WrongKey | IdTokenFault::UnknownKid | IdTokenFault::Unsigned => {}
        }
    }
    let kid = state.signing.kid.as_str();
    match fault {
        IdTokenFault::WrongKey => state.rogue.sign(kid, &claims),
        IdTokenFault::UnknownKid => state.rogue.sign(&state.rogue.kid, &claims),
        IdTokenFault::Unsigned => {
            let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"none","typ":"JWT"}"#);
            format!("{header}.{}.", URL_SAFE_NO_PAD.encode(claims.to_string()))
        }
        _ => state.signing.sign(kid, &claims),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
