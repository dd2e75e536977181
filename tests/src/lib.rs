//! Shared helpers for the cross-crate and network-namespace tests.
//!
//! - [`testnet`]: multi-host test networks built from network namespaces and veth pairs
//! - [`traffic`]: ping, TCP bulk transfer with hash check and stall measurement, UDP echo
//! - [`relay`]: a userspace UDP impairment relay (delay, jitter, loss, duplication, rate,
//!   NAT rebinding), sans-IO core plus a tokio I/O loop

pub mod relay;
pub mod testnet;
pub mod traffic;
