//! Explicit Congestion Notification (RFC 9000 §13.4, RFC 9002 §7.1)
//!
//! We mark packets ECT(0). The first [`TESTING_PACKETS`] are marked while the path is
//! untested; marking then pauses until an ACK_ECN frame validates the path (RFC 9000
//! §13.4.2, appendix A.4). Validation fails, and marking stops for good on this path, when
//! the peer acknowledges ECT(0) packets without ECN counts or with counts that do not cover
//! them, or when every test packet is lost. An increase of the peer's CE count is a
//! congestion event.

use std::time::Instant;

use super::Connection;
use crate::frame::EcnCounts;
use crate::shared::{EcnCodepoint, SpaceId};

/// ECT(0) packets sent to test a path before waiting for validation
const TESTING_PACKETS: u64 = 10;

#[derive(Debug, Copy, Clone, Eq, PartialEq)]
enum Mode {
    /// Marking the first packets of a path
    Testing,
    /// Test packets sent; waiting for an ACK_ECN to validate them
    Unknown,
    /// Validated: every packet is marked
    Capable,
    /// The path or the peer mangles ECN: no marking
    Failed,
}

/// ECN state of the current path
#[derive(Debug)]
pub(super) struct EcnState {
    mode: Mode,
    /// ECT(0) packets sent while testing, and how many of them were lost
    testing_sent: u64,
    testing_lost: u64,
    /// ECN counts the peer reported last, per packet number space
    peer_counts: [EcnCounts; 3],
}

impl EcnState {
    pub(super) fn new(enabled: bool) -> Self {
        Self {
            mode: if enabled { Mode::Testing } else { Mode::Failed },
            testing_sent: 0,
            testing_lost: 0,
            peer_counts: [EcnCounts::default(); 3],
        }
    }

    /// A new path: test it again (RFC 9000 §13.4.2: validation is per path)
    pub(super) fn restart(&mut self, enabled: bool) {
        *self = Self::new(enabled);
    }

    /// The codepoint for the next datagram, `None` for Not-ECT
    pub(super) fn codepoint(&self) -> Option<EcnCodepoint> {
        match self.mode {
            Mode::Testing | Mode::Capable => Some(EcnCodepoint::Ect0),
            Mode::Unknown | Mode::Failed => None,
        }
    }

    pub(super) fn on_packet_sent(&mut self) {
        if self.mode == Mode::Testing {
            self.testing_sent += 1;
            if self.testing_sent >= TESTING_PACKETS {
                self.mode = Mode::Unknown;
            }
        }
    }

    /// True once ACK_ECN feedback validated the path
    pub(super) fn is_capable(&self) -> bool {
        self.mode == Mode::Capable
    }

    fn fail(&mut self, why: &str) {
        if self.mode != Mode::Failed {
            tracing::debug!("ECN validation failed: {why}");
            self.mode = Mode::Failed;
        }
    }
}

impl Connection {
    /// Validate the ECN counts of an ACK that newly acknowledged `newly_acked_ect` ECT(0)
    /// packets of `space` (RFC 9000 §13.4.2.1); a CE increase is a congestion event (RFC 9002
    /// §7.1), with `largest_sent` the send time of the largest newly acknowledged packet
    pub(super) fn on_ack_ecn(
        &mut self,
        now: Instant,
        space: SpaceId,
        counts: Option<EcnCounts>,
        newly_acked_ect: u64,
        largest_sent: Option<Instant>,
    ) {
        if self.ecn.mode == Mode::Failed {
            return;
        }
        let Some(c) = counts else {
            if newly_acked_ect > 0 {
                // RFC 9000 §13.4.2.1: ECT packets acknowledged without ECN counts
                self.ecn.fail("ACK without ECN counts");
            }
            return;
        };
        let prev = self.ecn.peer_counts[space as usize];
        if c.ect0 < prev.ect0 || c.ect1 < prev.ect1 || c.ce < prev.ce {
            return; // an older ACK overtaken by a newer one
        }
        let d_ect0 = c.ect0 - prev.ect0;
        let d_ce = c.ce - prev.ce;
        self.ecn.peer_counts[space as usize] = c;
        // RFC 9000 §13.4.2.1: the increase in ECT(0) and CE must cover the newly acknowledged
        // ECT(0) packets; we never send ECT(1), so reports of it mean remarking
        if d_ect0 + d_ce < newly_acked_ect {
            self.ecn
                .fail("counts below the ECT(0) packets acknowledged");
            return;
        }
        if c.ect1 > 0 {
            self.ecn.fail("ECT(1) reported though never sent");
            return;
        }
        if newly_acked_ect > 0 && matches!(self.ecn.mode, Mode::Testing | Mode::Unknown) {
            tracing::debug!(side = ?self.side, "ECN validated");
            self.ecn.mode = Mode::Capable;
        }
        if d_ce > 0 {
            self.stats.ecn_ce_reported += d_ce;
            if let Some(sent) = largest_sent {
                // RFC 9002 §7.1: a CE increase is a congestion event, like a loss
                self.stats.congestion_events += 1;
                self.cc.on_congestion_event(now, sent, false, 0);
            }
        }
    }

    /// An ECT(0) test packet was declared lost: all of them lost means the path drops ECT
    pub(super) fn on_ecn_packet_lost(&mut self) {
        if matches!(self.ecn.mode, Mode::Testing | Mode::Unknown) {
            self.ecn.testing_lost += 1;
            if self.ecn.testing_lost >= TESTING_PACKETS {
                // RFC 9000 §13.4.2.1 (appendix A.4): every test packet lost
                self.ecn.fail("all ECN test packets lost");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn testing_then_unknown() {
        let mut s = EcnState::new(true);
        for _ in 0..TESTING_PACKETS {
            assert_eq!(s.codepoint(), Some(EcnCodepoint::Ect0));
            s.on_packet_sent();
        }
        assert_eq!(s.codepoint(), None);
        assert!(!s.is_capable());
        let off = EcnState::new(false);
        assert_eq!(off.codepoint(), None);
    }
}
