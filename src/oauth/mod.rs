//! The protocol core: PKCE, authorization requests, token / refresh / revocation / device
//! requests, discovery, retries, id_token claims, and the loopback callback listener.
//! Never touches the vault or the terminal; never logs a code or a token.

pub mod callback;
