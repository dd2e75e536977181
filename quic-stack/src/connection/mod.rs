//! The connection state machine
//!
//! OWNER: conn helper (stub until it lands)
