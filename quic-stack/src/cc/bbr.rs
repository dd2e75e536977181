//! BBR, version 1 style (draft-cardwell-iccrg-bbr-congestion-control-00)
//!
//! BBR builds a model of the path from two filters, the bottleneck bandwidth (a windowed maximum
//! of delivery-rate samples over ten round trips) and the round-trip propagation time (a windowed
//! minimum of RTT samples over ten seconds), and paces at a gain times that bandwidth. The window
//! only caps what is in flight at a multiple of the estimated bandwidth-delay product, so random
//! loss, which does not change the model, barely slows it down: that is the point of BBR on lossy
//! links where loss-based controllers collapse.
//!
//! Delivery-rate samples follow draft-cheng-iccrg-delivery-rate-estimation: every sent packet
//! remembers how much had been delivered when it left; when it is acknowledged, the bytes
//! delivered since, divided by the longer of the send and ack intervals, is one sample. The
//! [`Controller`] interface reports acks by send time, so packets sent at the same instant
//! share one record (they left with the same delivery state anyway).

use std::collections::{BTreeMap, VecDeque};
use std::time::{Duration, Instant};

use super::{initial_window, Controller};
use crate::recovery::RttEstimator;

/// 2/ln(2): the smallest gain that doubles the sending rate every round trip in Startup
const STARTUP_GAIN: f64 = 2.885;
/// Pacing gains of the ProbeBw cycle: probe up, drain the probe's queue, then cruise
const PROBE_BW_GAINS: [f64; 8] = [1.25, 0.75, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0];
/// Window gain outside Startup: room for delayed and aggregated acks
const CWND_GAIN: f64 = 2.0;
/// Round trips the bandwidth filter remembers
const BTL_BW_FILTER_ROUNDS: u64 = 10;
/// How long a min_rtt sample stays valid before ProbeRtt refreshes it
const RT_PROP_FILTER_LEN: Duration = Duration::from_secs(10);
/// Time spent at the minimal window in ProbeRtt
const PROBE_RTT_DURATION: Duration = Duration::from_millis(200);
/// Packets the window never goes below (and ProbeRtt drops to)
const MIN_PIPE_PACKETS: u64 = 4;
/// The pipe is full once three rounds in a row grew the bandwidth by less than 25 %
const FULL_BW_THRESH: f64 = 1.25;
const FULL_BW_ROUNDS: u32 = 3;

/// The state machine of draft-cardwell §4.3
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BbrState {
    /// Exponential search for the bottleneck bandwidth
    Startup,
    /// Empty the queue Startup built
    Drain,
    /// Cruise at the estimated bandwidth, probing for more once per cycle
    ProbeBw,
    /// Shrink the window briefly to measure the propagation delay without our own queue
    ProbeRtt,
}

/// What the sender knew when a packet left (the rate sampler's per-packet state)
#[derive(Debug, Clone, Copy)]
struct SendState {
    delivered: u64,
    delivered_time: Instant,
    first_sent_time: Instant,
    app_limited: bool,
}

/// The packet of the current ACK that yields the rate sample, with its send time
#[derive(Debug, Clone, Copy)]
struct Pending {
    sent: Instant,
    state: SendState,
}

/// BBR congestion controller
#[derive(Debug, Clone)]
pub struct Bbr {
    mtu: u16,
    state: BbrState,
    pacing_gain: f64,
    cwnd_gain: f64,
    cwnd: u64,
    initial_window: u64,
    /// Bytes per second
    pacing_rate: u64,
    /// Per round trip, the largest delivery rate seen (bytes per second), newest last
    bw_samples: VecDeque<(u64, u64)>,
    rt_prop: Option<Duration>,
    rt_prop_stamp: Instant,
    rt_prop_expired: bool,
    // Rate sampler
    delivered: u64,
    delivered_time: Instant,
    first_sent_time: Instant,
    /// Non-zero while app-limited: the delivered count at which that ends
    app_limited_until: u64,
    in_flight: u64,
    sent: BTreeMap<Instant, SendState>,
    pending: Option<Pending>,
    acked_now: u64,
    min_rtt_now: Option<Duration>,
    // Round counting
    next_round_delivered: u64,
    round_count: u64,
    round_start: bool,
    // Full pipe detection
    filled_pipe: bool,
    full_bw: u64,
    full_bw_count: u32,
    // ProbeBw
    cycle_index: usize,
    cycle_stamp: Instant,
    lost_in_round: bool,
    // ProbeRtt
    probe_rtt_done: Option<Instant>,
    probe_rtt_round_done: bool,
    prior_cwnd: u64,
    /// Loss recovery: packets sent up to this time belong to the episode
    recovery_start: Option<Instant>,
    /// Smoothed RTT, for the pacing rate before the first bandwidth sample
    srtt: Duration,
}

impl Bbr {
    /// A controller in Startup with the RFC 9002 §7.2 initial window
    pub fn new(mtu: u16, now: Instant) -> Self {
        let initial_window = initial_window(mtu);
        Self {
            mtu,
            state: BbrState::Startup,
            pacing_gain: STARTUP_GAIN,
            cwnd_gain: STARTUP_GAIN,
            cwnd: initial_window,
            initial_window,
            // Until an RTT is known, pace the initial window over a millisecond (draft §4.2.1):
            // in effect unpaced, the window is the limit.
            pacing_rate: (STARTUP_GAIN * initial_window as f64 * 1000.0) as u64,
            bw_samples: VecDeque::new(),
            rt_prop: None,
            rt_prop_stamp: now,
            rt_prop_expired: false,
            delivered: 0,
            delivered_time: now,
            first_sent_time: now,
            app_limited_until: 0,
            in_flight: 0,
            sent: BTreeMap::new(),
            pending: None,
            acked_now: 0,
            min_rtt_now: None,
            next_round_delivered: 0,
            round_count: 0,
            round_start: false,
            filled_pipe: false,
            full_bw: 0,
            full_bw_count: 0,
            cycle_index: 0,
            cycle_stamp: now,
            lost_in_round: false,
            probe_rtt_done: None,
            probe_rtt_round_done: false,
            prior_cwnd: initial_window,
            recovery_start: None,
            srtt: Duration::ZERO,
        }
    }

    /// Current state of the model's state machine
    pub fn state(&self) -> BbrState {
        self.state
    }

    /// Estimated bottleneck bandwidth in bytes per second (0 before the first sample)
    pub fn btl_bw(&self) -> u64 {
        self.bw_samples.iter().map(|&(_, bw)| bw).max().unwrap_or(0)
    }

    /// Estimated round-trip propagation time
    pub fn rt_prop(&self) -> Option<Duration> {
        self.rt_prop
    }

    fn min_pipe_cwnd(&self) -> u64 {
        MIN_PIPE_PACKETS * u64::from(self.mtu)
    }

    /// The bandwidth-delay product times `gain`, or the initial window before a model exists
    fn inflight(&self, gain: f64) -> u64 {
        let (bw, Some(rtt)) = (self.btl_bw(), self.rt_prop) else {
            return self.initial_window;
        };
        if bw == 0 {
            return self.initial_window;
        }
        let bdp = bw as f64 * rtt.as_secs_f64();
        (gain * bdp) as u64
    }

    fn update_bw_filter(&mut self, bw: u64) {
        match self.bw_samples.back_mut() {
            Some((round, best)) if *round == self.round_count => *best = (*best).max(bw),
            _ => self.bw_samples.push_back((self.round_count, bw)),
        }
        while self
            .bw_samples
            .front()
            .is_some_and(|&(round, _)| round + BTL_BW_FILTER_ROUNDS <= self.round_count)
        {
            self.bw_samples.pop_front();
        }
    }

    /// Rate sample and round counting for the packet that anchors this ACK
    fn on_rate_sample(&mut self, now: Instant, p: Pending) {
        if self.app_limited_until != 0 && self.delivered > self.app_limited_until {
            self.app_limited_until = 0;
        }
        self.round_start = false;
        if p.state.delivered >= self.next_round_delivered {
            self.next_round_delivered = self.delivered;
            self.round_count += 1;
            self.round_start = true;
            self.lost_in_round = false;
        }
        let send_elapsed = p.sent.saturating_duration_since(p.state.first_sent_time);
        let ack_elapsed = now.saturating_duration_since(p.state.delivered_time);
        let interval = send_elapsed.max(ack_elapsed);
        // An interval shorter than the path RTT would overestimate the rate (ack compression)
        if interval.is_zero() || self.rt_prop.is_some_and(|r| interval < r) {
            return;
        }
        let bytes = self.delivered - p.state.delivered;
        let bw = (bytes as f64 / interval.as_secs_f64()) as u64;
        // An app-limited sample only shows a lower bound: keep it only if it beats the model
        if !p.state.app_limited || bw >= self.btl_bw() {
            self.update_bw_filter(bw);
        }
        if self.round_start && !p.state.app_limited {
            self.check_full_pipe();
        }
    }

    fn check_full_pipe(&mut self) {
        if self.filled_pipe {
            return;
        }
        let bw = self.btl_bw();
        if bw as f64 >= self.full_bw as f64 * FULL_BW_THRESH {
            self.full_bw = bw;
            self.full_bw_count = 0;
            return;
        }
        self.full_bw_count += 1;
        if self.full_bw_count >= FULL_BW_ROUNDS {
            self.filled_pipe = true;
        }
    }

    fn update_rt_prop(&mut self, now: Instant) {
        self.rt_prop_expired = now > self.rt_prop_stamp + RT_PROP_FILTER_LEN;
        if let Some(sample) = self.min_rtt_now {
            if self.rt_prop.is_none_or(|r| sample <= r) || self.rt_prop_expired {
                self.rt_prop = Some(sample);
                self.rt_prop_stamp = now;
            }
        }
    }

    fn enter_probe_bw(&mut self, now: Instant) {
        self.state = BbrState::ProbeBw;
        self.cwnd_gain = CWND_GAIN;
        // Start anywhere but in the drain phase (draft §4.3.4.4); the round count is varied
        // enough to spread flows over the cycle without a random source.
        const STARTS: [usize; 7] = [0, 2, 3, 4, 5, 6, 7];
        self.cycle_index = STARTS[(self.round_count % STARTS.len() as u64) as usize];
        self.cycle_stamp = now;
        self.pacing_gain = PROBE_BW_GAINS[self.cycle_index];
    }

    fn enter_startup(&mut self) {
        self.state = BbrState::Startup;
        self.pacing_gain = STARTUP_GAIN;
        self.cwnd_gain = STARTUP_GAIN;
    }

    fn update_state(&mut self, now: Instant, prior_in_flight: u64) {
        match self.state {
            BbrState::Startup if self.filled_pipe => {
                self.state = BbrState::Drain;
                self.pacing_gain = 1.0 / STARTUP_GAIN;
                self.cwnd_gain = STARTUP_GAIN;
            }
            BbrState::ProbeBw => {
                let full_length = self
                    .rt_prop
                    .is_some_and(|r| now.saturating_duration_since(self.cycle_stamp) > r);
                let gain = self.pacing_gain;
                let advance = if gain > 1.0 {
                    full_length && (self.lost_in_round || prior_in_flight >= self.inflight(gain))
                } else if gain < 1.0 {
                    full_length || prior_in_flight <= self.inflight(1.0)
                } else {
                    full_length
                };
                if advance {
                    self.cycle_index = (self.cycle_index + 1) % PROBE_BW_GAINS.len();
                    self.cycle_stamp = now;
                    self.pacing_gain = PROBE_BW_GAINS[self.cycle_index];
                }
            }
            _ => {}
        }
        if self.state == BbrState::Drain && self.in_flight <= self.inflight(1.0) {
            self.enter_probe_bw(now);
        }
        self.check_probe_rtt(now);
    }

    fn check_probe_rtt(&mut self, now: Instant) {
        if self.state != BbrState::ProbeRtt && self.rt_prop_expired {
            self.state = BbrState::ProbeRtt;
            self.pacing_gain = 1.0;
            self.cwnd_gain = 1.0;
            self.prior_cwnd = self.saved_cwnd();
            self.probe_rtt_done = None;
        }
        if self.state != BbrState::ProbeRtt {
            return;
        }
        // The whole ProbeRtt episode is application-limited by construction
        self.app_limited_until = (self.delivered + self.in_flight).max(1);
        match self.probe_rtt_done {
            None if self.in_flight <= self.min_pipe_cwnd() => {
                self.probe_rtt_done = Some(now + PROBE_RTT_DURATION);
                self.probe_rtt_round_done = false;
                self.next_round_delivered = self.delivered;
            }
            None => {}
            Some(done) => {
                if self.round_start {
                    self.probe_rtt_round_done = true;
                }
                if self.probe_rtt_round_done && now >= done {
                    self.rt_prop_stamp = now;
                    self.rt_prop_expired = false;
                    self.cwnd = self.cwnd.max(self.prior_cwnd);
                    if self.filled_pipe {
                        self.enter_probe_bw(now);
                    } else {
                        self.enter_startup();
                    }
                }
            }
        }
    }

    fn saved_cwnd(&self) -> u64 {
        if self.recovery_start.is_none() && self.state != BbrState::ProbeRtt {
            self.cwnd
        } else {
            self.cwnd.max(self.prior_cwnd)
        }
    }

    fn update_pacing_rate(&mut self) {
        let bw = self.btl_bw();
        let rate = if bw == 0 {
            // No delivery sample yet: the initial window per smoothed RTT
            let srtt = self.srtt.max(Duration::from_millis(1));
            (self.initial_window as f64 / srtt.as_secs_f64()) as u64
        } else {
            bw
        };
        let rate = (self.pacing_gain * rate as f64) as u64;
        // Before the pipe is full a lower sample must not slow Startup down
        if self.filled_pipe || rate > self.pacing_rate || bw == 0 {
            self.pacing_rate = rate.max(u64::from(self.mtu));
        }
    }

    fn update_cwnd(&mut self) {
        // Three packets of headroom for pacing bursts and delayed acks (draft §4.2.3.2)
        let target = self.inflight(self.cwnd_gain) + 3 * u64::from(self.mtu);
        let acked = self.acked_now;
        if self.recovery_start.is_some() {
            // Packet conservation: send one packet per packet delivered, no more
            self.cwnd = self
                .cwnd
                .max(self.in_flight + acked)
                .min(target.max(self.cwnd));
        } else if self.filled_pipe {
            self.cwnd = (self.cwnd + acked).min(target);
        } else if self.cwnd < target || self.delivered < self.initial_window {
            self.cwnd += acked;
        }
        self.cwnd = self.cwnd.max(self.min_pipe_cwnd());
        if self.state == BbrState::ProbeRtt {
            self.cwnd = self.cwnd.min(self.min_pipe_cwnd());
        }
    }
}

impl Controller for Bbr {
    fn on_sent(&mut self, now: Instant, bytes: u64, _pn: u64) {
        if self.in_flight == 0 {
            // Restarting from idle: the send interval of the next sample begins now
            self.first_sent_time = now;
            self.delivered_time = now;
        }
        let state = SendState {
            delivered: self.delivered,
            delivered_time: self.delivered_time,
            first_sent_time: self.first_sent_time,
            app_limited: self.app_limited_until != 0,
        };
        self.sent.entry(now).or_insert(state);
        self.in_flight += bytes;
    }

    fn on_ack(
        &mut self,
        now: Instant,
        sent: Instant,
        bytes: u64,
        app_limited: bool,
        rtt: &RttEstimator,
    ) {
        if rtt.has_sample() {
            self.srtt = rtt.smoothed();
        }
        self.in_flight = self.in_flight.saturating_sub(bytes);
        self.delivered += bytes;
        self.delivered_time = now;
        self.acked_now += bytes;
        if app_limited && self.app_limited_until == 0 {
            self.app_limited_until = (self.delivered + self.in_flight).max(1);
        }
        let sample = now.saturating_duration_since(sent);
        self.min_rtt_now = Some(self.min_rtt_now.map_or(sample, |m| m.min(sample)));
        if let Some(&state) = self.sent.get(&sent) {
            if self
                .pending
                .is_none_or(|p| state.delivered >= p.state.delivered)
            {
                self.pending = Some(Pending { sent, state });
            }
            self.first_sent_time = sent;
        }
        // Anything sent earlier was acknowledged already or is lost: its record is done
        if self.sent.first_key_value().is_some_and(|(&t, _)| t < sent) {
            self.sent = self.sent.split_off(&sent);
        }
        if self.recovery_start.is_some_and(|start| sent > start) {
            // A packet sent after the loss arrived: the episode is over
            self.recovery_start = None;
            self.cwnd = self.cwnd.max(self.prior_cwnd);
        }
    }

    fn on_end_acks(
        &mut self,
        now: Instant,
        in_flight: u64,
        _app_limited: bool,
        _largest_packet_num_acked: Option<u64>,
    ) {
        let prior_in_flight = self.in_flight + self.acked_now;
        self.in_flight = in_flight;
        if let Some(p) = self.pending.take() {
            self.on_rate_sample(now, p);
        } else {
            self.round_start = false;
        }
        self.update_rt_prop(now);
        self.min_rtt_now = None;
        self.update_state(now, prior_in_flight);
        self.update_pacing_rate();
        self.update_cwnd();
        self.acked_now = 0;
    }

    fn on_congestion_event(
        &mut self,
        now: Instant,
        sent: Instant,
        is_persistent_congestion: bool,
        lost_bytes: u64,
    ) {
        self.in_flight = self.in_flight.saturating_sub(lost_bytes);
        self.lost_in_round = true;
        if is_persistent_congestion {
            // RFC 9002 §7.6.2 / draft §4.2.3.4: everything in flight is presumed lost
            self.prior_cwnd = self.saved_cwnd();
            self.cwnd = self.min_pipe_cwnd();
            self.recovery_start = Some(now);
            return;
        }
        if self.recovery_start.is_some_and(|start| sent <= start) {
            return;
        }
        // Entering recovery: fall back to what is still in flight, then conserve packets for
        // the episode; the model itself is not touched by loss.
        self.prior_cwnd = self.saved_cwnd();
        self.recovery_start = Some(now);
        self.cwnd = self.in_flight.max(self.min_pipe_cwnd());
    }

    fn on_mtu_update(&mut self, new_mtu: u16) {
        self.mtu = new_mtu;
        self.cwnd = self.cwnd.max(self.min_pipe_cwnd());
    }

    fn window(&self) -> u64 {
        self.cwnd
    }

    fn ssthresh(&self) -> u64 {
        // BBR has no slow-start threshold; report the end of Startup as one
        if self.filled_pipe {
            self.inflight(1.0)
        } else {
            u64::MAX
        }
    }

    fn initial_window(&self) -> u64 {
        self.initial_window
    }

    fn pacing_rate(&self) -> Option<u64> {
        Some(self.pacing_rate)
    }

    fn name(&self) -> &'static str {
        "bbr"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MTU: u16 = 1200;
    const MS: Duration = Duration::from_millis(1);

    /// A packet-level model of one bottleneck: a FIFO drained at `rate` bytes per second
    /// followed by a fixed round-trip propagation delay. Every `loss_every`-th packet is lost
    /// (reported one RTT after it was sent, as time-threshold detection would).
    struct Path {
        rate: u64,
        rtt: Duration,
        loss_every: Option<u64>,
    }

    /// What a run observed
    struct Run {
        bbr: Bbr,
        delivered: u64,
        elapsed: Duration,
        states: Vec<BbrState>,
        max_cwnd_after_startup: u64,
        min_cwnd_in_probe_rtt: Option<u64>,
    }

    fn run(path: &Path, duration: Duration) -> Run {
        let t0 = Instant::now();
        let mut now = t0;
        let mut bbr = Bbr::new(MTU, t0);
        let mut rtt = RttEstimator::new(333 * MS);
        let mss = u64::from(MTU);
        let serialise = Duration::from_secs_f64(mss as f64 / path.rate as f64);
        let mut queue_free_at = t0;
        let mut next_send = t0;
        // (event time, send time, lost)
        let mut events: VecDeque<(Instant, Instant, bool)> = VecDeque::new();
        let mut in_flight = 0u64;
        let mut sent_count = 0u64;
        let mut delivered = 0u64;
        let mut states = vec![bbr.state()];
        let mut max_cwnd_after_startup = 0;
        let mut min_cwnd_in_probe_rtt = None;
        while now < t0 + duration {
            // Send while the window and the pacer allow
            while in_flight + mss <= bbr.window() && next_send <= now {
                sent_count += 1;
                let lost = path.loss_every.is_some_and(|n| sent_count % n == 0);
                bbr.on_sent(now, mss, sent_count);
                in_flight += mss;
                let departs = queue_free_at.max(now) + serialise;
                queue_free_at = departs;
                let at = if lost {
                    now + path.rtt * 9 / 8
                } else {
                    departs + path.rtt
                };
                // Events stay ordered: losses are reported no earlier than later acks
                let pos = events.partition_point(|e| e.0 <= at);
                events.insert(pos, (at, now, lost));
                let rate = bbr.pacing_rate().unwrap_or(u64::MAX).max(1);
                next_send = now + Duration::from_secs_f64(mss as f64 / rate as f64);
            }
            // Advance to the next event: an ack, a loss, or the pacer releasing a packet
            let mut next = events.front().map(|e| e.0);
            if in_flight + mss <= bbr.window() {
                next = Some(next.map_or(next_send, |n| n.min(next_send)));
            }
            let Some(next) = next else { break };
            now = now.max(next);
            let mut acked_any = false;
            while events.front().is_some_and(|e| e.0 <= now) {
                let Some((_, sent, lost)) = events.pop_front() else {
                    break;
                };
                in_flight -= mss;
                if lost {
                    bbr.on_congestion_event(now, sent, false, mss);
                } else {
                    rtt.update(Duration::ZERO, now - sent);
                    bbr.on_ack(now, sent, mss, false, &rtt);
                    delivered += mss;
                    acked_any = true;
                }
            }
            if acked_any {
                bbr.on_end_acks(now, in_flight, false, None);
            }
            if states.last() != Some(&bbr.state()) {
                states.push(bbr.state());
            }
            if bbr.state() == BbrState::ProbeBw {
                max_cwnd_after_startup = max_cwnd_after_startup.max(bbr.window());
            }
            if bbr.state() == BbrState::ProbeRtt {
                let m = min_cwnd_in_probe_rtt.get_or_insert(u64::MAX);
                *m = (*m).min(bbr.window());
            }
        }
        Run {
            bbr,
            delivered,
            elapsed: now - t0,
            states,
            max_cwnd_after_startup,
            min_cwnd_in_probe_rtt,
        }
    }

    fn within(value: f64, expect: f64, tolerance: f64) -> bool {
        (value - expect).abs() <= expect * tolerance
    }

    #[test]
    fn startup_drain_probe_bw_and_a_sound_model() {
        let path = Path {
            rate: 1_250_000, // 10 Mbit/s
            rtt: 40 * MS,
            loss_every: None,
        };
        let r = run(&path, Duration::from_secs(5));
        assert_eq!(
            &r.states[..3],
            &[BbrState::Startup, BbrState::Drain, BbrState::ProbeBw],
            "{:?}",
            r.states
        );
        let bw = r.bbr.btl_bw() as f64;
        assert!(within(bw, 1_250_000.0, 0.1), "btl_bw {bw}");
        let rt_prop = r.bbr.rt_prop().expect("rt_prop");
        assert!(rt_prop >= 40 * MS && rt_prop < 45 * MS, "{rt_prop:?}");
        // The window stays near 2 BDP (plus headroom), never the unbounded growth of a
        // loss-based controller on a path without loss
        // The path BDP: 40 ms of propagation plus one packet's serialisation (~1 ms)
        let bdp = 1_250_000 * 41 / 1000;
        let cwnd = r.bbr.window();
        assert!(
            cwnd <= 2 * bdp + 4 * u64::from(MTU) && cwnd >= bdp,
            "cwnd {cwnd} bdp {bdp}"
        );
        // Startup overshoots (gain 2.885), but Drain and ProbeBw pull the window back
        assert!(r.max_cwnd_after_startup >= cwnd);
        let goodput = r.delivered as f64 / r.elapsed.as_secs_f64();
        assert!(goodput > 0.85 * 1_250_000.0, "goodput {goodput}");
    }

    #[test]
    fn probe_rtt_after_ten_seconds_then_back_to_probe_bw() {
        let path = Path {
            rate: 2_500_000,
            rtt: 20 * MS,
            loss_every: None,
        };
        let r = run(&path, Duration::from_secs(12));
        let probe_rtt = r
            .states
            .iter()
            .position(|s| *s == BbrState::ProbeRtt)
            .unwrap_or_else(|| panic!("no ProbeRtt: {:?}", r.states));
        assert_eq!(
            r.states.get(probe_rtt + 1),
            Some(&BbrState::ProbeBw),
            "{:?}",
            r.states
        );
        assert_eq!(
            r.min_cwnd_in_probe_rtt,
            Some(MIN_PIPE_PACKETS * u64::from(MTU))
        );
    }

    #[test]
    fn random_loss_does_not_collapse_the_rate() {
        // 2 % loss would hold a Reno-style window to a few packets (Mathis: ~1.22/sqrt(p)
        // packets per RTT); BBR's model ignores it
        let path = Path {
            rate: 1_250_000,
            rtt: 50 * MS,
            loss_every: Some(50),
        };
        let r = run(&path, Duration::from_secs(6));
        let goodput = r.delivered as f64 / r.elapsed.as_secs_f64();
        assert!(goodput > 0.75 * 1_250_000.0, "goodput {goodput}");
        assert!(within(r.bbr.btl_bw() as f64, 1_250_000.0, 0.15));
    }

    proptest::proptest! {
        /// Any sequence of sends, acks (in any order, duplicates included) and losses keeps
        /// the window at or above the minimum and the pacing rate positive
        #[test]
        fn arbitrary_events_keep_the_model_sane(
            ops in proptest::collection::vec((0u8..4, 0u64..200, 1u64..3000), 1..300)
        ) {
            let t0 = Instant::now();
            let mut bbr = Bbr::new(MTU, t0);
            let mut rtt = RttEstimator::new(100 * MS);
            let mut sent: Vec<Instant> = Vec::new();
            let mut now = t0;
            let mut in_flight = 0u64;
            for (op, arg, bytes) in ops {
                now += Duration::from_micros(arg * 250);
                match op {
                    0 => {
                        bbr.on_sent(now, bytes, sent.len() as u64);
                        sent.push(now);
                        in_flight += bytes;
                    }
                    1 if !sent.is_empty() => {
                        let at = sent[arg as usize % sent.len()];
                        rtt.update(Duration::ZERO, now - at);
                        bbr.on_ack(now, at, bytes, arg % 7 == 0, &rtt);
                        in_flight = in_flight.saturating_sub(bytes);
                        bbr.on_end_acks(now, in_flight, false, None);
                    }
                    2 if !sent.is_empty() => {
                        let at = sent[arg as usize % sent.len()];
                        bbr.on_congestion_event(now, at, arg % 11 == 0, bytes);
                        in_flight = in_flight.saturating_sub(bytes);
                    }
                    _ => bbr.on_mtu_update(1200 + (arg as u16 % 300)),
                }
                proptest::prop_assert!(bbr.window() >= MIN_PIPE_PACKETS * 1200);
                proptest::prop_assert!(bbr.pacing_rate().is_some_and(|r| r > 0));
            }
        }
    }

    #[test]
    fn persistent_congestion_shrinks_to_the_minimum_window() {
        let now = Instant::now();
        let mut bbr = Bbr::new(MTU, now);
        bbr.on_sent(now, 10_000, 0);
        bbr.on_congestion_event(now + 3 * MS * 100, now, true, 10_000);
        assert_eq!(bbr.window(), MIN_PIPE_PACKETS * u64::from(MTU));
        // The model was not reset: ssthresh stays open while Startup has not ended
        assert_eq!(bbr.ssthresh(), u64::MAX);
    }

    #[test]
    fn pacing_rate_follows_the_bandwidth_estimate() {
        let path = Path {
            rate: 625_000,
            rtt: 30 * MS,
            loss_every: None,
        };
        let r = run(&path, Duration::from_secs(4));
        let rate = r.bbr.pacing_rate().expect("rate") as f64;
        // In ProbeBw the gain is one of 1.25, 0.75 or 1
        let bw = r.bbr.btl_bw() as f64;
        assert!(
            rate >= 0.74 * bw && rate <= 1.26 * bw,
            "rate {rate} bw {bw}"
        );
    }
}
