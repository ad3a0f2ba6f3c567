//! The error type of the OAuth engine.
//!
//! Every message is one line meant for a user. None ever contains a secret or a raw response
//! body: server-provided text (`error`, `error_description`, `error_uri`) is escaped and
//! truncated before it is shown (AUTHZ-7).

use std::fmt;

/// Result alias for the OAuth engine.
pub type Result<T, E = OAuthError> = std::result::Result<T, E>;

/// RFC 6749 §5.2 token error codes that are never retried (ERR-2, NET-3).
pub const TOKEN_ERROR_CODES: &[&str] = &[
    "invalid_request",
    "invalid_client",
    "invalid_grant",
    "unauthorized_client",
    "unsupported_grant_type",
    "invalid_scope",
];

/// Longest `error` code shown to a user, in characters.
const MAX_CODE_CHARS: usize = 64;
/// Longest `error_description` / `error_uri` shown to a user, in characters (AUTHZ-7).
const MAX_TEXT_CHARS: usize = 200;

/// Everything that can go wrong talking to an authorization server.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum OAuthError {
    /// An RFC 6749 §5.2 error response (also device and revocation errors), on any status.
    #[error("the authorization server refused: {}{} (HTTP {status})", show_code(error), ServerExtra { description, uri })]
    Server {
        /// HTTP status of the response (200 when a 200 carried `error`, TOK-4).
        status: u16,
        /// The `error` code as sent by the server (unescaped; display escapes it).
        error: String,
        /// `error_description`, if any (unescaped; display escapes and truncates it).
        description: Option<String>,
        /// `error_uri`, if any (never followed, AUTHZ-7).
        uri: Option<String>,
    },
    /// A non-success HTTP status without an OAuth error body.
    #[error("the authorization server answered HTTP {status}")]
    Http {
        /// HTTP status.
        status: u16,
    },
    /// The connection failed (refused, reset, TLS, DNS). Never contains a URL query or body.
    #[error("network error: {0}")]
    Network(String),
    /// The request did not finish within the configured timeout.
    #[error("the request timed out")]
    Timeout,
    /// The server answered something that is not a valid OAuth response.
    #[error("invalid response from the authorization server: {0}")]
    InvalidResponse(String),
    /// The client configuration cannot work (missing endpoint, bad URL, reserved parameter).
    #[error("configuration error: {0}")]
    Config(String),
    /// The provider has no revocation endpoint (REV-1).
    #[error("the provider has no revocation endpoint")]
    NoRevocationEndpoint,
    /// Discovery returned a document for another issuer (DISC-3).
    #[error(
        "discovery returned issuer '{}' instead of '{}'",
        sanitize(got, MAX_TEXT_CHARS),
        sanitize(expected, MAX_TEXT_CHARS)
    )]
    IssuerMismatch {
        /// The issuer we asked about.
        expected: String,
        /// The issuer the document claims.
        got: String,
    },
    /// The device code expired before the user approved (DEV-8).
    #[error("the device code expired before the login was approved")]
    DeviceExpired,
    /// The operation was cancelled by the user (DEV-8).
    #[error("cancelled")]
    Cancelled,
    /// The ID token's `nonce` does not match the request's (AUTHZ-6).
    #[error("the ID token's nonce does not match the login request")]
    NonceMismatch,
    /// The ID token failed DISC-5 (signature, `iss`, `aud`, `exp`, ...). The reason is one
    /// short fixed phrase such as "signature does not verify"; never the token or a claim value.
    #[error("the ID token was rejected (DISC-5): {0}")]
    IdToken(String),
}

impl OAuthError {
    /// Builds a [`OAuthError::Server`] error.
    pub fn server(status: u16, error: &str, description: Option<&str>, uri: Option<&str>) -> Self {
        Self::Server {
            status,
            error: error.to_owned(),
            description: description.map(str::to_owned),
            uri: uri.map(str::to_owned),
        }
    }

    /// The OAuth `error` code, when the server sent one.
    pub fn code(&self) -> Option<&str> {
        match self {
            Self::Server { error, .. } => Some(error),
            _ => None,
        }
    }

    /// What this failure means for whoever must act on it: the one classification that the
    /// CLI's exit codes, the dashboard's retry schedule, the refresh log and `AppError` use.
    ///
    /// Transient: network errors, timeouts, 429 / 5xx without an OAuth error code, and the
    /// `temporarily_unavailable` / `server_error` codes (NET-2). A transient failure must never
    /// delete anything (REF-6: only `invalid_grant` does). `invalid_grant` needs a login
    /// (REF-6); `invalid_client`, `unauthorized_client` and local configuration errors are the
    /// client configuration's fault and are never retried (REF-7); everything else is final
    /// for this request (NET-3, ERR-2).
    pub fn kind(&self) -> FailureKind {
        match self {
            Self::Network(_) | Self::Timeout => FailureKind::Transient,
            Self::Http { status } if is_retryable_status(*status) => FailureKind::Transient,
            Self::Server { error, .. } => match error.as_str() {
                "temporarily_unavailable" | "server_error" => FailureKind::Transient,
                // PROV-12: GitHub's own names for a dead refresh token or code, and for
                // refused client credentials.
                "invalid_grant" | "bad_refresh_token" | "bad_verification_code" => {
                    FailureKind::NeedsLogin
                }
                "invalid_client" | "unauthorized_client" | "incorrect_client_credentials" => {
                    FailureKind::Misconfigured
                }
                _ => FailureKind::Refused,
            },
            Self::Config(_) | Self::IssuerMismatch { .. } => FailureKind::Misconfigured,
            Self::Cancelled => FailureKind::Cancelled,
            Self::Http { .. }
            | Self::InvalidResponse(_)
            | Self::NoRevocationEndpoint
            | Self::DeviceExpired
            | Self::NonceMismatch
            | Self::IdToken(_) => FailureKind::Refused,
        }
    }

    /// What the user should change when [`kind`](Self::kind) is
    /// [`FailureKind::Misconfigured`] because the server refused the client (REF-7): one line,
    /// or `None` for other failures.
    pub fn fix_hint(&self) -> Option<&'static str> {
        match self.code()? {
            "invalid_client" | "incorrect_client_credentials" => Some(
                "the provider does not accept this client: check client_id, client_secret and client_auth in the account file",
            ),
            "unauthorized_client" => Some(
                "this client may not use this grant: check the client's registration at the provider and grant settings in the account file",
            ),
            _ => None,
        }
    }

    /// Shorthand for `kind() == FailureKind::Transient`.
    pub fn is_transient(&self) -> bool {
        self.kind() == FailureKind::Transient
    }

    /// Shorthand for `kind() == FailureKind::NeedsLogin`: `invalid_grant`, the refresh token
    /// or code is dead (REF-6).
    pub fn is_invalid_grant(&self) -> bool {
        self.kind() == FailureKind::NeedsLogin
    }

    /// Shorthand for `kind() == FailureKind::Misconfigured` (REF-7).
    pub fn is_config_error(&self) -> bool {
        self.kind() == FailureKind::Misconfigured
    }

    /// True for an RFC 6749 §5.2 token error code (ERR-2): never retried.
    pub fn is_token_error(&self) -> bool {
        self.code().is_some_and(|c| TOKEN_ERROR_CODES.contains(&c))
    }
}

/// What a failure means for whoever must act on it (see [`OAuthError::kind`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FailureKind {
    /// Worth trying again later without user action (NET-2).
    Transient,
    /// The grant is dead: the user must log in again (REF-6).
    NeedsLogin,
    /// The client or account configuration is wrong; retrying cannot help until it is fixed
    /// (REF-7).
    Misconfigured,
    /// The server refused this request or answered something unusable; final for this request
    /// (NET-3, ERR-2), not retried automatically.
    Refused,
    /// The user cancelled.
    Cancelled,
}

impl FailureKind {
    /// One word for logs and the refresh panel.
    pub fn word(self) -> &'static str {
        match self {
            Self::Transient => "transient",
            Self::NeedsLogin => "needs login",
            Self::Misconfigured => "misconfigured",
            Self::Refused => "refused",
            Self::Cancelled => "cancelled",
        }
    }
}

/// 500, 502, 503, 504 and 429: the statuses NET-2 allows retrying.
pub fn is_retryable_status(status: u16) -> bool {
    matches!(status, 429 | 500 | 502 | 503 | 504)
}

/// Escapes what a terminal would act on and truncates (AUTHZ-7): the one sanitiser, see
/// [`crate::text::sanitize`].
pub use crate::text::sanitize;

fn show_code(code: &str) -> String {
    sanitize(code, MAX_CODE_CHARS)
}

/// Formats the optional description and URI of a server error.
struct ServerExtra<'a> {
    description: &'a Option<String>,
    uri: &'a Option<String>,
}

impl fmt::Display for ServerExtra<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(d) = self.description {
            write!(f, ": {}", sanitize(d, MAX_TEXT_CHARS))?;
        }
        if let Some(u) = self.uri {
            write!(f, " (see {})", sanitize(u, MAX_TEXT_CHARS))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn authz7_display_escapes_and_truncates() {
        let long = "x".repeat(500);
        let e = OAuthError::server(
            400,
            "invalid_grant",
            Some(&format!("bad\x1b[31m {long}")),
            None,
        );
        let s = e.to_string();
        assert!(!s.contains('\x1b'), "{s}");
        assert!(s.contains("\\u{1b}"));
        assert!(s.len() < 400, "{}", s.len());
        assert!(s.contains("invalid_grant") && s.contains("HTTP 400"));
    }

    #[test]
    fn err2_classification() {
        let g = OAuthError::server(400, "invalid_grant", None, None);
        assert!(g.is_invalid_grant() && g.is_token_error() && !g.is_transient());
        let c = OAuthError::server(401, "invalid_client", None, None);
        assert!(c.is_config_error() && !c.is_invalid_grant());
        assert!(OAuthError::server(400, "unauthorized_client", None, None).is_config_error());
        // PROV-12: GitHub's codes, sent with HTTP 200.
        assert!(OAuthError::server(200, "bad_refresh_token", None, None).is_invalid_grant());
        assert!(OAuthError::server(200, "bad_verification_code", None, None).is_invalid_grant());
        assert!(
            OAuthError::server(200, "incorrect_client_credentials", None, None).is_config_error()
        );
        assert!(OAuthError::Timeout.is_transient());
        assert!(OAuthError::Http { status: 503 }.is_transient());
        assert!(!OAuthError::Http { status: 404 }.is_transient());
        assert!(OAuthError::server(503, "temporarily_unavailable", None, None).is_transient());
    }
}
