//! Path MTU discovery (RFC 9000 §14.3, DPLPMTUD of RFC 8899, simplified)
//!
//! Once the handshake is confirmed we send PING+PADDING probes of growing size in their own
//! datagrams. An acknowledged probe raises the path MTU; three lost probes of one size lower
//! the search ceiling below it. The search is a binary search between the confirmed size and
//! the smaller of both sides' max_udp_payload_size. A lost probe is not a congestion signal
//! (RFC 8899 §4.1).
//!
//! Black holes (RFC 8899 §4.3, RFC 9000 §14.4): a path that starts dropping datagrams above the
//! base size after the search raised the MTU shows up as consecutive PTOs (nothing gets through,
//! so nothing is acknowledged) or as a run of lost large packets with no large one
//! acknowledged. Either drops the MTU back to the base size, where the 1200 bytes QUIC
//! requires are known to pass, and restarts the search from there.

use std::time::Instant;

use super::Connection;
use crate::shared::SpaceId;

/// Stop searching when the window is this narrow
const MIN_STEP: u16 = 16;
/// Lost probes of one size before it is considered too large
const MAX_PROBE_FAILURES: u8 = 3;
/// Consecutive PTOs above the base size that mean a black hole
const BLACK_HOLE_PTOS: u32 = 3;
/// Lost packets above the base size, with none of that size acknowledged since, that mean a
/// black hole (well above what ordinary congestion loses between two acknowledgments)
const BLACK_HOLE_LOSSES: u32 = 16;

/// Search state
#[derive(Debug, Default)]
pub(super) struct MtuDiscovery {
    /// Largest size known to work
    lo: u16,
    /// Largest size that may work
    hi: u16,
    /// Size of the probe in flight
    in_flight: Option<u16>,
    failures: u8,
    /// The ceiling itself was probed
    tried_max: bool,
    enabled: bool,
    /// The size known to pass on any path (where a black hole sends us back)
    base: u16,
    /// Lost packets above `base` since one above it was acknowledged
    large_losses: u32,
}

impl MtuDiscovery {
    pub(super) fn new(enabled: bool, base: u16) -> Self {
        Self {
            lo: base,
            hi: base,
            in_flight: None,
            failures: 0,
            tried_max: false,
            enabled,
            base,
            large_losses: 0,
        }
    }

    /// The peer's limit is known: search up to the smaller of both
    pub(super) fn set_ceiling(&mut self, hi: u16) {
        self.hi = hi.max(self.lo);
    }

    /// A new path: search again from `base`, keeping the ceiling; a probe still in flight on
    /// the old path no longer counts
    pub(super) fn restart(&mut self, base: u16) {
        *self = Self {
            lo: base,
            hi: self.hi.max(base),
            in_flight: None,
            failures: 0,
            tried_max: false,
            enabled: self.enabled,
            base,
            large_losses: 0,
        };
    }

    /// The next probe size, if one should be sent now
    pub(super) fn next_probe(&self) -> Option<u16> {
        if !self.enabled || self.in_flight.is_some() || self.hi < self.lo + MIN_STEP {
            return None;
        }
        // Most paths carry the full size: try it first, then bisect
        Some(if self.tried_max {
            self.lo + (self.hi - self.lo).div_ceil(2)
        } else {
            self.hi
        })
    }
}

impl Connection {
    /// A probe is due: the caller builds it as its own datagram
    pub(super) fn mtu_probe_due(&self) -> Option<u16> {
        if !self.handshake_confirmed || !self.path.validated {
            return None;
        }
        self.mtud.next_probe()
    }

    pub(super) fn on_mtu_probe_sent(&mut self, size: u16) {
        self.mtud.in_flight = Some(size);
        if size == self.mtud.hi {
            self.mtud.tried_max = true;
        }
    }

    pub(super) fn on_mtu_probe_acked(&mut self, size: u16) {
        if self.mtud.in_flight != Some(size) {
            return; // sent on a previous path
        }
        self.mtud.in_flight = None;
        self.mtud.failures = 0;
        if size > self.mtud.lo {
            self.mtud.lo = size;
        }
        if size > self.path.mtu {
            tracing::debug!(side = ?self.side, mtu = size, "path MTU raised");
            self.path.mtu = size;
            self.cc.on_mtu_update(size);
            let payload = self.max_1rtt_payload();
            self.datagrams.set_max_packet_payload(payload);
        }
    }

    pub(super) fn on_mtu_probe_lost(&mut self, size: u16) {
        if self.mtud.in_flight != Some(size) {
            return;
        }
        self.mtud.in_flight = None;
        self.mtud.failures += 1;
        if self.mtud.failures >= MAX_PROBE_FAILURES {
            self.mtud.failures = 0;
            self.mtud.hi = size.saturating_sub(1).max(self.mtud.lo);
        }
    }

    /// A non-probe packet of `size` bytes was acknowledged
    pub(super) fn on_sized_packet_acked(&mut self, size: u16) {
        if size > self.mtud.base {
            self.mtud.large_losses = 0;
        }
    }

    /// A non-probe packet of `size` bytes was declared lost
    pub(super) fn on_sized_packet_lost(&mut self, now: Instant, size: u16) {
        if size > self.mtud.base && self.path.mtu > self.mtud.base {
            self.mtud.large_losses += 1;
            if self.mtud.large_losses >= BLACK_HOLE_LOSSES {
                self.on_black_hole(now);
            }
        }
    }

    /// A PTO fired; `pto_count` consecutive ones without an acknowledgment
    pub(super) fn check_black_hole_pto(&mut self, now: Instant) {
        if self.pto_count >= BLACK_HOLE_PTOS
            && self.path.mtu > self.mtud.base
            && self.handshake_confirmed
        {
            self.on_black_hole(now);
        }
    }

    /// Large datagrams stopped getting through: back to the base size, search again
    fn on_black_hole(&mut self, now: Instant) {
        let base = self.mtud.base;
        tracing::debug!(side = ?self.side, from = self.path.mtu, to = base, "path MTU black hole");
        self.stats.mtu_black_holes += 1;
        self.path.mtu = base;
        self.mtud.restart(base);
        self.cc.on_mtu_update(base);
        let payload = self.max_1rtt_payload();
        self.datagrams.set_max_packet_payload(payload);
        // Probe the base-size path at once rather than after a further backed-off PTO
        let space = self.space_mut(SpaceId::Data);
        if space.keys.is_some() {
            space.probes = space.probes.max(1);
        }
        self.set_loss_detection_timer(now);
    }

    /// Build a probe of exactly `size` bytes: a 1-RTT packet with PING and PADDING
    pub(super) fn build_mtu_probe(&mut self, now: Instant, buf: &mut Vec<u8>, size: u16) -> bool {
        if self.space(SpaceId::Data).keys.is_none() {
            return false;
        }
        let start = buf.len();
        let mut p = self.start_packet(now, buf, SpaceId::Data);
        crate::frame::Frame::Ping.encode(buf);
        p.ack_eliciting = true;
        p.record.mtu_probe = Some(size);
        self.space_mut(SpaceId::Data).next_pn += 1;
        self.finish_packet(now, buf, p, Some(start + usize::from(size)));
        self.on_mtu_probe_sent(size);
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn search_order() {
        let mut m = MtuDiscovery::new(true, 1200);
        m.set_ceiling(1472);
        assert_eq!(m.next_probe(), Some(1472));
        m.tried_max = true;
        assert_eq!(m.next_probe(), Some(1336));
        m.hi = 1210;
        assert_eq!(m.next_probe(), None);
        assert_eq!(MtuDiscovery::new(false, 1200).next_probe(), None);
    }
}
