//! rustls QUIC adapter implementing crypto::Session
//!
//! OWNER: crypto helper (stub until it lands)
