//! The protocol core: PKCE, authorization requests, token / refresh / revocation / device
//! requests, discovery, retries, id_token claims and signatures (JWKS), and the loopback callback listener.
//! Never touches the vault or the terminal; never logs a code or a token.

pub mod authorize;
pub mod callback;
pub mod client;
pub mod client_assertion;
pub mod client_auth;
pub mod config;
pub mod device;
pub mod discovery;
pub mod error;
pub mod exchange_proxy;
pub mod idtoken;
pub mod jwks;
pub mod narrow;
pub mod pkce;
pub mod retry;
pub mod revoke;
pub mod sasl;
#[cfg(any(test, feature = "test-support"))]
pub mod testutil;
pub mod token;
pub mod wire;

pub use authorize::AuthorizationRequest;
pub use client::{ClientSettings, OAuthClient};
pub use client_auth::{AuthMethod, ClientAuth, RevocationFormat};
pub use config::ClientConfig;
pub use device::{DeviceAuthorization, DeviceTiming};
pub use discovery::ProviderMetadata;
pub use error::{FailureKind, OAuthError, Result};
pub use idtoken::IdClaims;
pub use narrow::Narrowing;
pub use pkce::PkcePair;
pub use retry::RetryPolicy;
pub use revoke::{Revocation, RevokeOutcome};
pub use token::TokenSet;
