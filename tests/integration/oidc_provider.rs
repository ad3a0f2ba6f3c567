//! Integration tests: oidc_provider.
