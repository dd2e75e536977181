//! CUBIC (RFC 9438)
//!
//! The window is kept in bytes; the RFC's formulas are in segments, so W_max and W_est are
//! converted with the current MTU. Floating point only computes a target; every stored window
//! is clamped back into `[minimum_window, u64::MAX]`, so odd inputs cannot produce NaN windows.

use std::time::Instant;

use super::hystart::{HyStart, Phase};
use super::{initial_window, minimum_window, Controller};
use crate::recovery::RttEstimator;

/// RFC 9438 §5.1 C
const C: f64 = 0.4;
/// RFC 9438 §4.6 β_cubic
const BETA: f64 = 0.7;
/// RFC 9438 §4.3 α_cubic = 3 (1 - β) / (1 + β)
const ALPHA: f64 = 3.0 * (1.0 - BETA) / (1.0 + BETA);

/// The CUBIC congestion controller of RFC 9438
#[derive(Debug, Clone)]
pub struct Cubic {
    mtu: u16,
    window: u64,
    ssthresh: u64,
    initial_window: u64,
    /// Same meaning as NewReno's (RFC 9438 §4.6 follows RFC 9002 recovery)
    recovery_start: Option<Instant>,
    /// W_max in bytes: window just before the last reduction (RFC 9438 §4.1)
    pub(super) w_max: f64,
    /// Start of the current congestion avoidance stage, with K (seconds) and W_est (bytes)
    epoch: Option<Epoch>,
    /// Fractional bytes of window growth not yet applied
    growth_carry: f64,
    /// RFC 9438 §4.10 / RFC 9406: HyStart++ during the initial slow start
    hystart: HyStart,
}

#[derive(Debug, Clone, Copy)]
struct Epoch {
    start: Instant,
    k: f64,
    w_est: f64,
}

impl Cubic {
    /// A controller in slow start with the RFC 9002 §7.2 initial window
    pub fn new(mtu: u16, _now: Instant) -> Self {
        let initial_window = initial_window(mtu);
        Self {
            mtu,
            window: initial_window,
            ssthresh: u64::MAX,
            initial_window,
            recovery_start: None,
            w_max: 0.0,
            epoch: None,
            growth_carry: 0.0,
            hystart: HyStart::new(),
        }
    }

    /// True while HyStart++ holds the controller in Conservative Slow Start
    pub fn in_css(&self) -> bool {
        matches!(self.hystart.phase(), Phase::Css { .. })
    }

    fn in_recovery(&self, sent: Instant) -> bool {
        self.recovery_start.is_some_and(|start| sent <= start)
    }

    fn mtu_f(&self) -> f64 {
        f64::from(self.mtu.max(1))
    }

    /// W_cubic(t) in bytes (RFC 9438 §4.2, Figure 1)
    fn w_cubic(&self, k: f64, t: f64) -> f64 {
        C * (t - k).powi(3) * self.mtu_f() + self.w_max
    }

    fn set_window(&mut self, w: f64) {
        // `as` saturates and maps NaN to 0; the floor keeps the RFC 9002 minimum.
        self.window = (w as u64).max(minimum_window(self.mtu));
    }
}

impl Controller for Cubic {
    fn on_sent(&mut self, _now: Instant, _bytes: u64, pn: u64) {
        self.hystart.on_sent(pn);
    }

    fn on_ack(
        &mut self,
        now: Instant,
        sent: Instant,
        bytes: u64,
        app_limited: bool,
        rtt: &RttEstimator,
    ) {
        if self.in_recovery(sent) {
            return;
        }
        if app_limited {
            // RFC 9438 §5.8: do not grow while not cwnd-limited; restart the epoch afterwards
            // so the idle time does not count as growth time.
            self.epoch = None;
            return;
        }
        if self.window < self.ssthresh {
            // RFC 9438 §4.10: slow start as in RFC 9002, moderated by HyStart++ (RFC 9406).
            let increase = if self.ssthresh == u64::MAX {
                self.hystart.on_ack(bytes, rtt.latest())
            } else {
                bytes
            };
            self.window = self.window.saturating_add(increase);
            return;
        }
        let cwnd = self.window as f64;
        let epoch = match self.epoch {
            Some(e) => e,
            None => {
                // RFC 9438 §4.2: a new congestion avoidance stage; K from W_max and the window
                // at its start (cwnd_epoch). Without a prior reduction below W_max, K = 0.
                if self.w_max < cwnd {
                    self.w_max = cwnd;
                }
                let k = ((self.w_max - cwnd) / self.mtu_f() / C).cbrt();
                let e = Epoch {
                    start: now,
                    k,
                    w_est: cwnd,
                };
                self.epoch = Some(e);
                e
            }
        };
        let t = now.saturating_duration_since(epoch.start).as_secs_f64();
        // RFC 9438 §4.3: Reno-friendly estimate; α becomes 1 once W_est passes W_max.
        let alpha = if epoch.w_est >= self.w_max {
            1.0
        } else {
            ALPHA
        };
        let w_est = epoch.w_est + alpha * bytes as f64 * self.mtu_f() / cwnd;
        if let Some(e) = &mut self.epoch {
            e.w_est = w_est;
        }
        let w_cubic_now = self.w_cubic(epoch.k, t);
        if w_cubic_now < w_est {
            // RFC 9438 §4.3: Reno-friendly region.
            self.set_window(w_est.max(cwnd));
            return;
        }
        // RFC 9438 §4.4/§4.5: concave and convex regions aim at W_cubic(t + RTT), clamped to
        // [cwnd, 1.5 cwnd].
        let target = self
            .w_cubic(epoch.k, t + rtt.smoothed().as_secs_f64())
            .clamp(cwnd, 1.5 * cwnd);
        self.growth_carry += (target - cwnd) * bytes as f64 / cwnd;
        let whole = self.growth_carry.floor();
        if whole >= 1.0 {
            self.growth_carry -= whole;
            self.set_window(cwnd + whole);
        }
    }

    fn on_end_acks(
        &mut self,
        _now: Instant,
        _in_flight: u64,
        _app_limited: bool,
        largest_packet_num_acked: Option<u64>,
    ) {
        if self.window < self.ssthresh && self.hystart.on_end_acks(largest_packet_num_acked) {
            // RFC 9406 §4.2: CSS is over; continue in congestion avoidance from here.
            self.ssthresh = self.window;
        }
    }

    fn on_congestion_event(
        &mut self,
        now: Instant,
        sent: Instant,
        is_persistent_congestion: bool,
        _lost_bytes: u64,
    ) {
        // RFC 9406 §4.2: any congestion event ends slow start and CSS.
        self.hystart.on_congestion();
        if !self.in_recovery(sent) {
            self.recovery_start = Some(now);
            let cwnd = self.window as f64;
            // RFC 9438 §4.7: fast convergence releases bandwidth when W_max keeps shrinking.
            self.w_max = if cwnd < self.w_max {
                cwnd * (1.0 + BETA) / 2.0
            } else {
                cwnd
            };
            // RFC 9438 §4.6: ssthresh = cwnd = max(cwnd * β, minimum window).
            self.set_window(cwnd * BETA);
            self.ssthresh = self.window;
            self.epoch = None;
            self.growth_carry = 0.0;
        }
        // RFC 9002 §7.6.2 / RFC 9438 §4.8: persistent congestion collapses the window.
        if is_persistent_congestion {
            self.window = minimum_window(self.mtu);
            self.recovery_start = None;
            self.epoch = None;
            self.growth_carry = 0.0;
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
        "cubic"
    }
}
