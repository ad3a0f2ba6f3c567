//! Provider definitions: the TOML schema, bundled templates, user account files, `extends`,
//! validation with `FILE:LINE:COL` errors, and OIDC / RFC 8414 discovery.

use serde::{Deserialize, Serialize};

/// How the client authenticates at the token endpoint (RFC 6749 §2.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum ClientAuth {
    /// Public client: only `client_id` in the body.
    #[default]
    None,
    /// `Authorization: Basic base64(urlencode(id):urlencode(secret))`.
    Basic,
    /// `client_id` and `client_secret` in the form body.
    Post,
}
