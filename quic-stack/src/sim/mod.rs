//! Deterministic in-memory network simulator for tests
//!
//! Contract:
//! - Nodes implement [`Node`] (the same four calls as the QUIC `Endpoint`), so the simulator never
//!   depends on the endpoint itself; any sans-IO state machine can be driven.
//! - Time is virtual: an `Instant` base is captured once and the clock only moves forward, jumping
//!   straight to the next event (a node timeout, a datagram delivery or a scheduled rebinding).
//!   A 30 s idle timeout therefore runs in microseconds of real time.
//! - Every random decision comes from one seeded ChaCha8 RNG, and every collection that affects
//!   ordering is ordered (no `HashMap` iteration), so the same seed reproduces the same run.
//! - Each direction between two nodes is a [`Link`] with its own [`LinkConfig`] impairments and
//!   [`LinkStats`] counters. GSO transmits are split into single datagrams on the wire.
//! - If a test panics while a [`Network`] is alive, the seed is printed to stderr.
//!
//! Rules for node implementations: `poll_transmit` must eventually return `None` at a fixed `now`,
//! and `poll_timeout` must move forward after `handle_timeout`; otherwise the step caps turn the
//! livelock into a [`SimError`] instead of a hang.

mod link;
mod network;
mod pair;
#[cfg(test)]
mod tests;

use std::time::Instant;

use crate::shared::{RecvMeta, Transmit};

pub use link::{DropReason, Link, LinkConfig, LinkStats};
pub use network::{
    seed_from_env, Network, NodeId, PacketInfo, SimError, TraceEvent, TraceKind, Verdict, SEED_ENV,
};
pub use pair::{Pair, CLIENT_V4, CLIENT_V6, SERVER_V4, SERVER_V6};

/// A sans-IO network participant the simulator can drive (the `Endpoint` call surface)
pub trait Node {
    /// Feed one received UDP datagram
    fn handle_datagram(&mut self, now: Instant, meta: RecvMeta, data: &mut [u8]);
    /// Tell the node that `now` has reached (or passed) its `poll_timeout`
    fn handle_timeout(&mut self, now: Instant);
    /// Write the next datagram (or GSO batch of at most `max_datagrams`) into `buf`
    ///
    /// `buf` is cleared first; with `segment_size: Some(s)` it holds several datagrams of `s`
    /// bytes, the last possibly shorter.
    fn poll_transmit(
        &mut self,
        now: Instant,
        max_datagrams: usize,
        buf: &mut Vec<u8>,
    ) -> Option<Transmit>;
    /// The earliest time the node wants `handle_timeout`, if any
    fn poll_timeout(&mut self) -> Option<Instant>;
}

impl<T: Node + ?Sized> Node for Box<T> {
    fn handle_datagram(&mut self, now: Instant, meta: RecvMeta, data: &mut [u8]) {
        (**self).handle_datagram(now, meta, data)
    }
    fn handle_timeout(&mut self, now: Instant) {
        (**self).handle_timeout(now)
    }
    fn poll_transmit(
        &mut self,
        now: Instant,
        max_datagrams: usize,
        buf: &mut Vec<u8>,
    ) -> Option<Transmit> {
        (**self).poll_transmit(now, max_datagrams, buf)
    }
    fn poll_timeout(&mut self) -> Option<Instant> {
        (**self).poll_timeout()
    }
}
