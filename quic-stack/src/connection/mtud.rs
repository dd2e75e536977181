//! Path MTU discovery (RFC 9000 §14.3, DPLPMTUD of RFC 8899, simplified)
//!
//! Once the handshake is confirmed we send PING+PADDING probes of growing size in their own
//! datagrams. An acknowledged probe raises the path MTU; three lost probes of one size lower
//! the search ceiling below it. The search is a binary search between the confirmed size and
//! the smaller of both sides' max_udp_payload_size. A lost probe is not a congestion signal
//! (RFC 8899 §4.1).

use std::time::Instant;

use super::Connection;
use crate::shared::SpaceId;

/// Stop searching when the window is this narrow
const MIN_STEP: u16 = 16;
/// Lost probes of one size before it is considered too large
const MAX_PROBE_FAILURES: u8 = 3;

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
