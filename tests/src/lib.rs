//! Shared helpers for the cross-crate and network-namespace tests.
//!
//! - [`testnet`]: multi-host test networks built from network namespaces and veth pairs
//! - [`traffic`]: ping, TCP bulk transfer with hash check and stall measurement, UDP echo
//! - [`daemon`]: `quictun up` in-process inside a test host, certificates, temp directories
//! - [`relay`]: a userspace UDP impairment relay (delay, jitter, loss, duplication, rate,
//!   NAT rebinding), sans-IO core plus a tokio I/O loop

pub mod daemon;
pub mod relay;
pub mod testnet;
pub mod traffic;
