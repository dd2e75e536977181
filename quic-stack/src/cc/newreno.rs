//! NewReno (RFC 9002 §7 and Appendix B)

use std::time::Instant;

use super::{initial_window, minimum_window, Controller};
use crate::recovery::RttEstimator;

/// RFC 9002 §7.3.2 kLossReductionFactor, as a fraction 1/2
const LOSS_REDUCTION_DIVISOR: u64 = 2;

/// The NewReno congestion controller of RFC 9002 §7
#[derive(Debug, Clone)]
pub struct NewReno {
    mtu: u16,
    window: u64,
    ssthresh: u64,
    initial_window: u64,
    /// RFC 9002 §B.2 congestion_recovery_start_time; `None` outside recovery
    recovery_start: Option<Instant>,
    /// Bytes acked since the window last grew in congestion avoidance
    bytes_acked: u64,
}

impl NewReno {
    /// A controller in slow start with the RFC 9002 §7.2 initial window
    pub fn new(mtu: u16, _now: Instant) -> Self {
        let initial_window = initial_window(mtu);
        Self {
            mtu,
            window: initial_window,
            ssthresh: u64::MAX,
            initial_window,
            recovery_start: None,
            bytes_acked: 0,
        }
    }

    fn in_recovery(&self, sent: Instant) -> bool {
        // RFC 9002 §7.3.2: recovery ends when a packet sent after it started is acked.
        self.recovery_start.is_some_and(|start| sent <= start)
    }
}

impl Controller for NewReno {
    fn on_sent(&mut self, _now: Instant, _bytes: u64, _pn: u64) {}

    fn on_ack(
        &mut self,
        _now: Instant,
        sent: Instant,
        bytes: u64,
        app_limited: bool,
        _rtt: &RttEstimator,
    ) {
        // RFC 9002 §7.8: no growth while not using the window; §7.3.2: none during recovery.
        if app_limited || self.in_recovery(sent) {
            return;
        }
        if self.window < self.ssthresh {
            // RFC 9002 §7.3.1: slow start, +1 byte per byte acked.
            self.window = self.window.saturating_add(bytes);
            return;
        }
        // RFC 9002 §7.3.3: congestion avoidance, +1 MTU per window acked.
        self.bytes_acked = self.bytes_acked.saturating_add(bytes);
        if self.bytes_acked >= self.window {
            self.bytes_acked -= self.window;
            self.window = self.window.saturating_add(u64::from(self.mtu));
        }
    }

    fn on_congestion_event(
        &mut self,
        now: Instant,
        sent: Instant,
        is_persistent_congestion: bool,
        _lost_bytes: u64,
    ) {
        // RFC 9002 §7.3.2: one reduction per recovery period.
        if !self.in_recovery(sent) {
            self.recovery_start = Some(now);
            self.window = (self.window / LOSS_REDUCTION_DIVISOR).max(minimum_window(self.mtu));
            self.ssthresh = self.window;
            self.bytes_acked = 0;
        }
        // RFC 9002 §7.6.2: persistent congestion collapses the window and ends recovery.
        if is_persistent_congestion {
            self.window = minimum_window(self.mtu);
            self.recovery_start = None;
            self.bytes_acked = 0;
        }
    }

    fn on_mtu_update(&mut self, new_mtu: u16) {
        self.mtu = new_mtu;
        self.window = self.window.max(minimum_window(new_mtu));
    }

    fn window(&self) -> u64 {
        self.window
    }

    fn ssthresh(&self) -> u64 {
        self.ssthresh
    }

    fn initial_window(&self) -> u64 {
        self.initial_window
    }

    fn name(&self) -> &'static str {
        "newreno"
    }
}
