//! Integration tests: devserver.
