//! Integration tests: callback.
