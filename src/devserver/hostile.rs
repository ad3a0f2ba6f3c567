//! Hostile answers on demand, for the hardening tests (HARD-…, AUTHZ-4): what a malicious or
//! broken authorization server could send. Every field is off by default.
//!
//! Test support only (`cfg(test)` or the `test-support` feature), like `faults`: a release
//! build and `authdeck demo` have no way to make the server lie. The handlers build the honest
//! answer and, in the test suites' builds only, pass it through the methods below.

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

impl Hostile {
    /// Whether the authorization redirect leaves `iss` out.
    pub(super) fn omit_iss(&self) -> bool {
        self.omit_iss
    }

    /// Overwrites the device answer's fields that are set here.
    pub(super) fn device_answer(&self, answer: &mut Value) {
        let strings = [
            ("user_code", &self.user_code),
            ("verification_uri", &self.verification_uri),
            ("verification_uri_complete", &self.verification_uri_complete),
        ];
        for (field, value) in strings {
            if let Some(v) = value {
                answer[field] = Value::from(v.as_str());
            }
        }
        if let Some(v) = &self.device_expires_in {
            answer["expires_in"] = v.clone();
        }
    }

    /// A token answer's access token, scope, refresh token and id_token, as sent.
    pub(super) fn token_answer<'a>(
        &'a self,
        access: &'a str,
        scope: &'a str,
        refresh: Option<&'a str>,
        id_token: Option<String>,
    ) -> (&'a str, &'a str, Option<&'a str>, Option<String>) {
        (
            self.access_token.as_deref().unwrap_or(access),
            self.scope.as_deref().unwrap_or(scope),
            refresh.filter(|_| !self.omit_refresh_token),
            id_token.filter(|_| !self.omit_id_token),
        )
    }

    /// The padding field's value, when token answers are padded.
    pub(super) fn padding(&self) -> Option<Value> {
        (self.token_padding > 0).then(|| Value::from("x".repeat(self.token_padding)))
    }

    /// Overwrites the ID token claims that are set here (`sub`, `email`).
    pub(super) fn id_token_claims(&self, claims: &mut Value) {
        if let Some(sub) = &self.subject {
            claims["sub"] = Value::from(sub.as_str());
        }
        if let Some(email) = &self.email {
            claims["email"] = Value::from(email.as_str());
        }
    }
}
