//! The callback's request handling for the fuzz targets in `fuzz/` (feature `fuzzing`; never
//! in a normal build, see docs/fuzzing.md).
//!
//! [`answer`] hands one parsed request to the same `handle` the listener's connections use,
//! with one login pending, and returns the page and the login's outcome. hyper's own head
//! parser (httparse) runs in the fuzz target, which builds the [`Request`].

use std::net::Ipv4Addr;
use std::sync::{Arc, Mutex, PoisonError};

use bytes::Bytes;
use http::{Request, StatusCode};
use http_body_util::{BodyExt, Full};
use tokio::sync::{oneshot, watch};
use url::Host;

use super::{
    CallbackError, CallbackResult, DeferredSlot, Registry, Shared, Slot, allowed_hosts, handle,
};
use crate::secret::CsrfState;

/// The port the fuzzed listener pretends to be bound to.
pub const PORT: u16 = 8765;
/// The path of the fuzzed listener's redirect URI.
pub const PATH: &str = "/callback";

/// What the listener answered.
#[derive(Debug)]
pub struct Answer {
    /// The page's status.
    pub status: StatusCode,
    /// The page's HTML.
    pub body: String,
    /// What the pending login received, if the request finished it.
    pub outcome: Option<Result<CallbackResult, CallbackError>>,
}

/// Answers `req` as the listener for `http://127.0.0.1:PORT/callback` would, with one login
/// pending for `state` (expecting `expected_issuer`, requiring `iss` when `require_iss`).
pub fn answer<B>(
    req: &Request<B>,
    state: &str,
    expected_issuer: Option<&str>,
    require_iss: bool,
) -> Answer {
    let (sender, mut receiver) = oneshot::channel();
    let registry = Registry {
        next_id: 1,
        slots: vec![Slot {
            id: 1,
            state: CsrfState::new(state),
            expected_issuer: expected_issuer.map(str::to_owned),
            require_iss,
            sender: Some(sender),
            timer: None,
        }],
        closed: false,
    };
    let (shutdown, _) = watch::channel(false);
    let shared = Shared {
        registry: Mutex::new(registry),
        shutdown,
        path: PATH.to_owned(),
        hosts: allowed_hosts(Some(Host::Ipv4(Ipv4Addr::LOCALHOST)), PORT),
    };
    let deferred: DeferredSlot = Arc::default();
    let response = handle(&shared, req, &deferred);
    let pending = deferred
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .take();
    if let Some(d) = pending {
        let _ = d.sender.send(d.outcome);
    }
    let status = response.status();
    let body = collect(response.into_body());
    Answer {
        status,
        body,
        outcome: receiver.try_recv().ok(),
    }
}

fn collect(body: Full<Bytes>) -> String {
    let bytes = futures::executor::block_on(body.collect())
        .map(|c| c.to_bytes())
        .unwrap_or_default();
    String::from_utf8_lossy(&bytes).into_owned()
}
