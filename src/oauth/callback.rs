//! The loopback callback listener (hyper 1.x): one listener, several pending logins routed by `state`.
