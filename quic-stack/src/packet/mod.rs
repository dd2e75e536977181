//! Packet headers: long/short views, packet numbers, coalescing, version negotiation
//!
//! OWNER: wire helper (stub until it lands)
