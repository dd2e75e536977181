//! Endpoint, transport, client and server configuration
//!
//! OWNER: conn helper (stub until it lands)
