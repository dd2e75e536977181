//! Streams (RFC 9000 §2-§4)
//!
//! OWNER: conn helper

pub mod assembler;
pub mod send_buf;
