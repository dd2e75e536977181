//! Transport parameters (RFC 9000 §18), version_information (RFC 9368), grease_quic_bit (RFC 9287)
//!
//! OWNER: wire helper (stub until it lands)
