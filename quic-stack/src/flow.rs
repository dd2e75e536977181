//! Flow-control credit with window auto-tuning (RFC 9000 §4)
//!
//! The same two types serve connection-level (MAX_DATA / DATA_BLOCKED) and stream-level
//! (MAX_STREAM_DATA / STREAM_DATA_BLOCKED) flow control: offsets for a stream, sums of stream
//! offsets for the connection. Every counter saturates; peer-supplied offsets cannot panic.

use std::time::{Duration, Instant};

use crate::error::TransportError;

/// The peer sent data beyond the limit we advertised (RFC 9000 §4.1: FLOW_CONTROL_ERROR)
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("peer sent up to offset {end} beyond the advertised limit {limit}")]
pub struct FlowControlExceeded {
    /// The offending end offset
    pub end: u64,
    /// The limit in force
    pub limit: u64,
}

impl From<FlowControlExceeded> for TransportError {
    fn from(e: FlowControlExceeded) -> Self {
        Self::FLOW_CONTROL_ERROR(e.to_string())
    }
}

/// Receive-side credit: the limit we advertise to the peer
#[derive(Debug, Clone)]
pub struct RecvFlow {
    /// Current window: how far beyond the consumed offset we let the peer send
    window: u64,
    /// Auto-tuning never grows the window beyond this
    max_window: u64,
    /// The limit advertised (or about to be)
    max: u64,
    /// Highest end offset received
    received: u64,
    /// Bytes the application has consumed
    consumed: u64,
    /// When the limit was last raised, for auto-tuning
    last_update: Option<Instant>,
}

impl RecvFlow {
    /// A limit of `initial_window` (as sent in the transport parameters), growing up to
    /// `max_window`
    pub fn new(initial_window: u64, max_window: u64) -> Self {
        Self {
            window: initial_window,
            max_window: max_window.max(initial_window),
            max: initial_window,
            received: 0,
            consumed: 0,
            last_update: None,
        }
    }

    /// The peer sent data ending at `end_offset`
    ///
    /// RFC 9000 §4.1: a receiver MUST close the connection with FLOW_CONTROL_ERROR when the
    /// sender exceeds the advertised limit.
    pub fn on_data(&mut self, end_offset: u64) -> Result<(), FlowControlExceeded> {
        if end_offset > self.max {
            return Err(FlowControlExceeded {
                end: end_offset,
                limit: self.max,
            });
        }
        self.received = self.received.max(end_offset);
        Ok(())
    }

    /// The application consumed `n` more bytes (never counted beyond what was received)
    pub fn on_consumed(&mut self, n: u64) {
        self.consumed = self.consumed.saturating_add(n).min(self.received);
    }

    /// A new limit to advertise, once at least half the window has been consumed
    ///
    /// Auto-tuning: if the previous update was less than two RTTs ago, the window was used up
    /// faster than the peer could be told about it, so the window doubles (up to `max_window`).
    /// RFC 9000 §4.2 leaves the strategy to us but asks to avoid frequent small updates.
    pub fn poll_update(&mut self, now: Instant, rtt: Duration) -> Option<u64> {
        let remaining = self.max.saturating_sub(self.consumed);
        if remaining > self.window / 2 {
            return None;
        }
        if let Some(last) = self.last_update {
            if now.saturating_duration_since(last) < rtt.saturating_mul(2) {
                self.window = self.window.saturating_mul(2).min(self.max_window);
            }
        }
        let new_max = self.consumed.saturating_add(self.window);
        if new_max <= self.max {
            return None;
        }
        self.max = new_max;
        self.last_update = Some(now);
        Some(new_max)
    }

    /// The limit currently advertised
    pub fn max(&self) -> u64 {
        self.max
    }

    /// Highest end offset received
    pub fn received(&self) -> u64 {
        self.received
    }

    /// Bytes consumed by the application
    pub fn consumed(&self) -> u64 {
        self.consumed
    }

    /// The current (possibly auto-tuned) window
    pub fn window(&self) -> u64 {
        self.window
    }
}

/// Send-side credit: the limit the peer granted us
#[derive(Debug, Clone)]
pub struct SendFlow {
    max: u64,
    sent: u64,
    /// The limit at which a *_BLOCKED frame was last queued
    blocked_sent_at: Option<u64>,
}

impl SendFlow {
    /// Credit up to `max` (from the peer's transport parameters)
    pub fn new(max: u64) -> Self {
        Self {
            max,
            sent: 0,
            blocked_sent_at: None,
        }
    }

    /// Bytes that may still be sent
    pub fn credit(&self) -> u64 {
        self.max.saturating_sub(self.sent)
    }

    /// `n` new bytes were sent (callers stay within [`Self::credit`]; excess is clamped)
    pub fn on_sent(&mut self, n: u64) {
        self.sent = self.sent.saturating_add(n).min(self.max);
    }

    /// A MAX_DATA / MAX_STREAM_DATA arrived; true if it raised the limit
    ///
    /// RFC 9000 §4.1: a frame that does not increase the limit MUST be ignored (frames can
    /// arrive out of order).
    pub fn update_max(&mut self, new: u64) -> bool {
        if new <= self.max {
            return false;
        }
        self.max = new;
        true
    }

    /// True when all credit is used
    pub fn is_blocked(&self) -> bool {
        self.sent >= self.max
    }

    /// The limit to report in a DATA_BLOCKED / STREAM_DATA_BLOCKED frame, once per limit
    ///
    /// RFC 9000 §4.1: a sender SHOULD send a blocked frame when it has data but no credit; one
    /// per limit is enough.
    pub fn poll_blocked(&mut self) -> Option<u64> {
        if !self.is_blocked() || self.blocked_sent_at == Some(self.max) {
            return None;
        }
        self.blocked_sent_at = Some(self.max);
        Some(self.max)
    }

    /// A blocked frame reporting `limit` was lost; re-send it if still blocked at that limit
    /// (RFC 9000 §13.3)
    pub fn on_blocked_lost(&mut self, limit: u64) {
        if self.blocked_sent_at == Some(limit) {
            self.blocked_sent_at = None;
        }
    }

    /// The peer's current limit
    pub fn max(&self) -> u64 {
        self.max
    }

    /// Bytes sent so far
    pub fn sent(&self) -> u64 {
        self.sent
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn recv_limit_enforced() {
        let mut f = RecvFlow::new(1000, 10_000);
        assert!(f.on_data(1000).is_ok());
        assert_eq!(
            f.on_data(1001),
            Err(FlowControlExceeded {
                end: 1001,
                limit: 1000
            })
        );
        let e: TransportError = f.on_data(u64::MAX).unwrap_err().into();
        assert_eq!(e.code, crate::error::TransportErrorCode::FLOW_CONTROL_ERROR);
        assert_eq!(f.received(), 1000);
    }

    #[test]
    fn update_after_half_consumed() {
        let t0 = Instant::now();
        let mut f = RecvFlow::new(1000, 1000);
        f.on_data(1000).unwrap();
        f.on_consumed(499);
        assert_eq!(f.poll_update(t0, 100 * MS), None);
        f.on_consumed(1);
        assert_eq!(f.poll_update(t0, 100 * MS), Some(1500));
        assert_eq!(f.poll_update(t0, 100 * MS), None);
        // Capped at max_window: no growth.
        f.on_data(1500).unwrap();
        f.on_consumed(1000);
        assert_eq!(f.poll_update(t0 + MS, 100 * MS), Some(2500));
        assert_eq!(f.window(), 1000);
    }

    #[test]
    fn autotune_doubles_when_fast() {
        let t0 = Instant::now();
        let mut f = RecvFlow::new(1000, 4000);
        f.on_data(600).unwrap();
        f.on_consumed(600);
        assert_eq!(f.poll_update(t0, 100 * MS), Some(1600));
        // Half the window used again within 2 RTTs: double.
        f.on_data(1100).unwrap();
        f.on_consumed(500);
        assert_eq!(f.poll_update(t0 + 150 * MS, 100 * MS), Some(3100));
        assert_eq!(f.window(), 2000);
        // Slow consumption: keep the window.
        f.on_data(2100).unwrap();
        f.on_consumed(1000);
        assert_eq!(f.poll_update(t0 + 1000 * MS, 100 * MS), Some(4100));
        assert_eq!(f.window(), 2000);
        // Capped.
        for i in 0..5u32 {
            let r = f.received();
            f.on_data(r + 2000).unwrap();
            f.on_consumed(2000);
            f.poll_update(t0 + MS * (1001 + i), 100 * MS);
        }
        assert_eq!(f.window(), 4000);
    }

    #[test]
    fn send_credit_and_blocked_once() {
        let mut f = SendFlow::new(100);
        assert_eq!(f.poll_blocked(), None);
        f.on_sent(60);
        assert_eq!(f.credit(), 40);
        f.on_sent(40);
        assert!(f.is_blocked());
        assert_eq!(f.poll_blocked(), Some(100));
        assert_eq!(f.poll_blocked(), None);
        f.on_blocked_lost(100);
        assert_eq!(f.poll_blocked(), Some(100));
        assert!(!f.update_max(100));
        assert!(!f.update_max(50));
        assert!(f.update_max(150));
        assert_eq!(f.credit(), 50);
        assert_eq!(f.poll_blocked(), None);
        f.on_sent(50);
        assert_eq!(f.poll_blocked(), Some(150));
        // Stale loss report for the old limit changes nothing.
        f.on_blocked_lost(100);
        assert_eq!(f.poll_blocked(), None);
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]
        #[test]
        fn credit_model(ops in prop::collection::vec((0u8..4, 0u64..5000), 1..100)) {
            let t0 = Instant::now();
            let mut send = SendFlow::new(1000);
            let mut recv = RecvFlow::new(1000, 8000);
            let (mut sent, mut max) = (0u64, 1000u64);
            for (i, (kind, n)) in ops.into_iter().enumerate() {
                match kind {
                    0 => {
                        // Send within credit; the receiver must accept it.
                        let n = n.min(send.credit());
                        send.on_sent(n);
                        sent += n;
                        prop_assert!(recv.on_data(sent).is_ok());
                    }
                    1 => {
                        recv.on_consumed(n);
                        prop_assert!(recv.consumed() <= recv.received());
                    }
                    2 => {
                        if let Some(m) = recv.poll_update(t0 + MS * (i as u32 * 10), 50 * MS) {
                            prop_assert!(m > max);
                            max = m;
                            prop_assert!(send.update_max(m));
                        }
                    }
                    _ => {
                        // Anything beyond the advertised limit is refused.
                        prop_assert_eq!(recv.on_data(max + 1 + n).is_err(), true);
                    }
                }
                prop_assert_eq!(send.credit(), max - sent);
                prop_assert!(recv.max() - recv.consumed() <= 8000);
                prop_assert_eq!(send.is_blocked(), sent == max);
            }
        }
    }
}
