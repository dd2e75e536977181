//! HyStart++ (RFC 9406): leave slow start on RTT increase before it overshoots into loss
//!
//! Rounds are tracked by packet number: a round ends when an ACK covers the last packet sent
//! when it began (windowEnd, RFC 9406 §4.2). The RTT sample is taken once per ACK frame:
//! controllers see `on_ack` per packet, so the first call after `on_end_acks` samples.
//! L (the per-ACK increase cap) is unlimited because the connection paces (RFC 9406 §4.3).

use std::time::Duration;

/// RFC 9406 §4.3 MIN_RTT_THRESH
const MIN_RTT_THRESH: Duration = Duration::from_millis(4);
/// RFC 9406 §4.3 MAX_RTT_THRESH
const MAX_RTT_THRESH: Duration = Duration::from_millis(16);
/// RFC 9406 §4.3 MIN_RTT_DIVISOR
const MIN_RTT_DIVISOR: u32 = 8;
/// RFC 9406 §4.3 N_RTT_SAMPLE
const N_RTT_SAMPLE: u32 = 8;
/// RFC 9406 §4.3 CSS_GROWTH_DIVISOR
const CSS_GROWTH_DIVISOR: u64 = 4;
/// RFC 9406 §4.3 CSS_ROUNDS
const CSS_ROUNDS: u32 = 5;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Phase {
    /// Standard slow start
    SlowStart,
    /// Conservative Slow Start, with the RTT baseline that triggered it and rounds done
    Css { baseline: Duration, rounds: u32 },
    /// Left slow start (HyStart++ or a congestion event); no longer involved
    Done,
}

/// HyStart++ state for one congestion controller
#[derive(Debug, Clone)]
pub(super) struct HyStart {
    phase: Phase,
    /// Packet number whose acknowledgement ends the current round
    window_end: Option<u64>,
    last_sent: u64,
    last_round_min: Option<Duration>,
    current_round_min: Option<Duration>,
    samples: u32,
    sampled_this_ack: bool,
    /// Remainder of CSS growth below one byte per divisor
    css_carry: u64,
}

impl HyStart {
    pub(super) fn new() -> Self {
        Self {
            phase: Phase::SlowStart,
            window_end: None,
            last_sent: 0,
            last_round_min: None,
            current_round_min: None,
            samples: 0,
            sampled_this_ack: false,
            css_carry: 0,
        }
    }

    pub(super) fn phase(&self) -> Phase {
        self.phase
    }

    pub(super) fn on_sent(&mut self, pn: u64) {
        self.last_sent = pn;
        // The first round ends with the acknowledgement of the first packet.
        if self.window_end.is_none() {
            self.window_end = Some(pn);
        }
    }

    /// Window increase for `bytes` newly acked in slow start, after taking the ACK's RTT sample
    pub(super) fn on_ack(&mut self, bytes: u64, latest_rtt: Duration) -> u64 {
        if !self.sampled_this_ack {
            self.sampled_this_ack = true;
            self.sample(latest_rtt);
        }
        match self.phase {
            Phase::Css { .. } => {
                // RFC 9406 §4.2: CSS grows by bytes_acked / CSS_GROWTH_DIVISOR.
                let total = self.css_carry.saturating_add(bytes);
                self.css_carry = total % CSS_GROWTH_DIVISOR;
                total / CSS_GROWTH_DIVISOR
            }
            _ => bytes,
        }
    }

    fn sample(&mut self, rtt: Duration) {
        self.current_round_min = Some(self.current_round_min.map_or(rtt, |m| m.min(rtt)));
        self.samples = self.samples.saturating_add(1);
        if self.samples < N_RTT_SAMPLE {
            return;
        }
        let Some(current) = self.current_round_min else {
            return;
        };
        match self.phase {
            Phase::SlowStart => {
                let Some(last) = self.last_round_min else {
                    return;
                };
                // RFC 9406 §4.2: RttThresh = clamp(lastRoundMinRTT / 8, 4 ms, 16 ms).
                let thresh = (last / MIN_RTT_DIVISOR).clamp(MIN_RTT_THRESH, MAX_RTT_THRESH);
                if current >= last.saturating_add(thresh) {
                    self.phase = Phase::Css {
                        baseline: current,
                        rounds: 0,
                    };
                }
            }
            Phase::Css { baseline, .. } => {
                // RFC 9406 §4.2: the RTT increase was spurious; resume slow start.
                if current < baseline {
                    self.phase = Phase::SlowStart;
                }
            }
            Phase::Done => {}
        }
    }

    /// End of one ACK frame; true when HyStart++ says to enter congestion avoidance
    pub(super) fn on_end_acks(&mut self, largest_acked: Option<u64>) -> bool {
        self.sampled_this_ack = false;
        let round_over = match (largest_acked, self.window_end) {
            (Some(acked), Some(end)) => acked >= end,
            _ => false,
        };
        if !round_over {
            return false;
        }
        // RFC 9406 §4.2: a new round starts; windowEnd = the last packet sent so far.
        self.last_round_min = self.current_round_min.take();
        self.samples = 0;
        self.window_end = Some(self.last_sent);
        if let Phase::Css { baseline, rounds } = self.phase {
            let rounds = rounds + 1;
            if rounds >= CSS_ROUNDS {
                // RFC 9406 §4.2: after CSS_ROUNDS rounds, enter congestion avoidance.
                self.phase = Phase::Done;
                return true;
            }
            self.phase = Phase::Css { baseline, rounds };
        }
        false
    }

    /// A congestion event ended slow start for good (RFC 9406 §4.2)
    pub(super) fn on_congestion(&mut self) {
        self.phase = Phase::Done;
    }
}
