//! Fuzz target bodies, shared by cargo-fuzz and the corpus replay under cargo test
//!
//! OWNER: wire helper (stub until it lands)
