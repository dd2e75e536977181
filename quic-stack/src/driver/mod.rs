//! Thin tokio driver: UDP sockets with GSO/GRO, async handles
//!
//! OWNER: driver helper (stub until it lands)

pub mod socket;
