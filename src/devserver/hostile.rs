//! Hostile answers on demand, for the hardening tests (HARD-…, AUTHZ-4): what a malicious or
//! broken authorization server could send. Every field is off by default.

use serde_json::Value;

/// What the server sends instead of its honest answer. Set at start through
/// [`DevServerConfig::hostile`](super::DevServerConfig::hostile) or, in the test suites'
/// builds (`test-support`), later with `DevServer::set_hostile`.
#[derive(Debug, Clone, Default)]
pub struct Hostile {
    /// Leave `iss` out of the authorization redirect, although discovery still advertises
    /// `authorization_response_iss_parameter_supported: true` (AUTHZ-4).
    pub omit_iss: bool,
    /// The `access_token` sent instead of the issued one (it is then unknown to the server).
    pub access_token: Option<String>,
    /// The `scope` sent in token responses.
    pub scope: Option<String>,
    /// Leave `refresh_token` out of token responses.
    pub omit_refresh_token: bool,
    /// Leave `id_token` out of token responses.
    pub omit_id_token: bool,
    /// The `sub` claim of the ID tokens.
    pub subject: Option<String>,
    /// The `email` claim of the ID tokens.
    pub email: Option<String>,
    /// The device answer's `user_code` (approval still works through the real one).
    pub user_code: Option<String>,
    /// The device answer's `verification_uri`.
    pub verification_uri: Option<String>,
    /// The device answer's `verification_uri_complete`.
    pub verification_uri_complete: Option<String>,
    /// The device answer's `expires_in`, e.g. `9223372036854775807`.
    pub device_expires_in: Option<Value>,
    /// Pads every token response with a field of this many bytes (a huge body).
    pub token_padding: usize,
}
