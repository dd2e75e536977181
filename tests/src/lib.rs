//! Shared helpers for the cross-crate and network-namespace tests.
