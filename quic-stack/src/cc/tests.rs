use std::time::{Duration, Instant};

use proptest::prelude::*;

use super::*;

const MTU: u16 = 1200;
const MS: Duration = Duration::from_millis(1);

fn rtt(ms: u32) -> RttEstimator {
    let mut r = RttEstimator::new(MS * ms);
    r.update(Duration::ZERO, MS * ms);
    r
}

/// Sends one window of MTU-sized packets at `now` and acks them all one RTT later
fn round(cc: &mut dyn Controller, now: &mut Instant, r: &RttEstimator) {
    let sent = *now;
    let packets = cc.window() / u64::from(MTU);
    *now += r.smoothed();
    for _ in 0..packets {
        cc.on_ack(*now, sent, u64::from(MTU), false, r);
    }
    cc.on_end_acks(*now, 0, false, None);
}

#[test]
fn names_and_parsing() {
    for alg in [Algorithm::NewReno, Algorithm::Cubic, Algorithm::Bbr] {
        assert_eq!(alg.to_string().parse::<Algorithm>(), Ok(alg));
        let cc = new_controller(alg, MTU, Instant::now());
        assert_eq!(cc.name(), alg.as_str());
    }
    assert_eq!("CUBIC".parse::<Algorithm>(), Ok(Algorithm::Cubic));
    assert_eq!("BBR".parse::<Algorithm>(), Ok(Algorithm::Bbr));
    assert!("vegas".parse::<Algorithm>().is_err());
    // Only model-based controllers set their own pacing rate
    assert!(new_controller(Algorithm::Cubic, MTU, Instant::now())
        .pacing_rate()
        .is_none());
    assert!(new_controller(Algorithm::Bbr, MTU, Instant::now())
        .pacing_rate()
        .is_some());
}

#[test]
fn initial_window_rule() {
    assert_eq!(initial_window(1200), 12_000);
    assert_eq!(initial_window(1500), 14_720);
    assert_eq!(initial_window(9000), 18_000);
    let cc = NewReno::new(1200, Instant::now());
    assert_eq!((cc.window(), cc.ssthresh()), (12_000, u64::MAX));
    assert_eq!(cc.initial_window(), 12_000);
}

#[test]
fn slow_start_doubles_per_rtt() {
    for alg in [Algorithm::NewReno, Algorithm::Cubic] {
        let mut now = Instant::now();
        let mut cc = new_controller(alg, MTU, now);
        let r = rtt(50);
        for i in 1..=4 {
            round(cc.as_mut(), &mut now, &r);
            assert_eq!(cc.window(), 12_000 << i, "{alg}");
        }
    }
}

#[test]
fn app_limited_does_not_grow() {
    for alg in [Algorithm::NewReno, Algorithm::Cubic] {
        let now = Instant::now();
        let mut cc = new_controller(alg, MTU, now);
        cc.on_ack(now + 50 * MS, now, 1200, true, &rtt(50));
        assert_eq!(cc.window(), 12_000, "{alg}");
    }
}

#[test]
fn newreno_loss_recovery() {
    let t0 = Instant::now();
    let mut cc = NewReno::new(MTU, t0);
    let r = rtt(50);
    let mut now = t0;
    round(&mut cc, &mut now, &r); // 24000
    let before_loss = now;
    now += 10 * MS;
    cc.on_congestion_event(now, before_loss, false, 1200);
    assert_eq!((cc.window(), cc.ssthresh()), (12_000, 12_000));
    // A second loss of a packet sent before recovery began: no further reduction.
    cc.on_congestion_event(now + MS, before_loss + MS, false, 1200);
    assert_eq!(cc.window(), 12_000);
    // Acks for packets sent before recovery do not grow the window.
    cc.on_ack(now + MS, before_loss, 1200, false, &r);
    assert_eq!(cc.window(), 12_000);
    // Congestion avoidance: +1 MTU per window acked.
    let sent = now + MS;
    for _ in 0..10 {
        cc.on_ack(now + 60 * MS, sent, 1200, false, &r);
    }
    assert_eq!(cc.window(), 13_200);
    // A loss of a packet sent after recovery began starts a new period.
    cc.on_congestion_event(now + 70 * MS, sent, false, 1200);
    assert_eq!(cc.window(), 6_600);
    // Halving never goes below the minimum window.
    for i in 0..5u32 {
        cc.on_congestion_event(
            now + MS * (100 + i * 10),
            now + MS * (95 + i * 10),
            false,
            1,
        );
    }
    assert_eq!(cc.window(), minimum_window(MTU));
}

#[test]
fn persistent_congestion_collapses() {
    for alg in [Algorithm::NewReno, Algorithm::Cubic] {
        let mut now = Instant::now();
        let mut cc = new_controller(alg, MTU, now);
        let r = rtt(50);
        round(cc.as_mut(), &mut now, &r);
        round(cc.as_mut(), &mut now, &r);
        cc.on_congestion_event(now, now - MS, true, 10_000);
        assert_eq!(cc.window(), 2400, "{alg}");
        // Recovery ended: the next ack grows the window again (slow start below ssthresh).
        cc.on_ack(now + 50 * MS, now - 2 * MS, 1200, false, &r);
        assert_eq!(cc.window(), 3600, "{alg}");
    }
}

#[test]
fn cubic_reduction_and_regrowth() {
    let t0 = Instant::now();
    let mut cc = Cubic::new(MTU, t0);
    let r = rtt(100);
    let mut now = t0;
    for _ in 0..3 {
        round(&mut cc, &mut now, &r);
    }
    assert_eq!(cc.window(), 96_000);
    cc.on_congestion_event(now, now - MS, false, 1200);
    // β = 0.7.
    assert_eq!((cc.window(), cc.ssthresh()), (67_200, 67_200));
    cc.on_congestion_event(now + MS, now - MS, false, 1200);
    assert_eq!(cc.window(), 67_200);
    // Growth: concave towards W_max = 96000, then beyond it.
    let mut windows = vec![];
    for _ in 0..60 {
        round(&mut cc, &mut now, &r);
        windows.push(cc.window());
    }
    assert!(windows.windows(2).all(|w| w[0] <= w[1]));
    assert!(*windows.last().unwrap() > 96_000, "{windows:?}");
    // K = cbrt(28800 / 1200 / 0.4) ≈ 3.9 s: still below W_max after ~2 s.
    assert!(windows[19] < 96_000, "{windows:?}");
}

#[test]
fn cubic_fast_convergence() {
    let t0 = Instant::now();
    let mut cc = Cubic::new(MTU, t0);
    let r = rtt(100);
    let mut now = t0;
    for _ in 0..3 {
        round(&mut cc, &mut now, &r);
    }
    cc.on_congestion_event(now, now - MS, false, 1200); // W_max 96000, cwnd 67200
    now += MS;
    round(&mut cc, &mut now, &r);
    let w = cc.window();
    assert!(w < 96_000);
    cc.on_congestion_event(now, now - MS, false, 1200);
    // W_max = w * 1.7 / 2 < w; cwnd = 0.7 w.
    assert_eq!(cc.window(), (w as f64 * 0.7) as u64);
    assert!(cc.w_max < w as f64);
}

#[test]
fn mtu_update_raises_floor() {
    let now = Instant::now();
    for alg in [Algorithm::NewReno, Algorithm::Cubic] {
        let mut cc = new_controller(alg, 1200, now);
        cc.on_congestion_event(now, now, true, 1);
        assert_eq!(cc.window(), 2400);
        cc.on_mtu_update(1500);
        assert_eq!(cc.window(), 3000);
    }
}

#[derive(Debug, Clone)]
enum Op {
    Sent(u64),
    Ack {
        bytes: u64,
        age_ms: u32,
        app_limited: bool,
        rtt_ms: u32,
    },
    Loss {
        age_ms: u32,
        persistent: bool,
    },
    Mtu(u16),
    Advance(u32),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        (0u64..100_000).prop_map(Op::Sent),
        (0u64..100_000, 0u32..500, any::<bool>(), 0u32..1000).prop_map(
            |(bytes, age_ms, app_limited, rtt_ms)| Op::Ack {
                bytes,
                age_ms,
                app_limited,
                rtt_ms
            }
        ),
        (0u32..500, prop::bool::weighted(0.1))
            .prop_map(|(age_ms, persistent)| Op::Loss { age_ms, persistent }),
        (0u16..=u16::MAX).prop_map(Op::Mtu),
        (0u32..5000).prop_map(Op::Advance),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]
    #[test]
    fn window_stays_above_minimum(
        alg in prop_oneof![Just(Algorithm::NewReno), Just(Algorithm::Cubic)],
        mtu in 1200u16..9000,
        ops in prop::collection::vec(op(), 1..200),
    ) {
        let t0 = Instant::now();
        let mut now = t0 + Duration::from_secs(1);
        let mut mtu = mtu;
        let mut cc = new_controller(alg, mtu, now);
        let mut pn = 0;
        for op in ops {
            match op {
                Op::Sent(bytes) => { cc.on_sent(now, bytes, pn); pn += 1; }
                Op::Ack { bytes, age_ms, app_limited, rtt_ms } => {
                    let r = rtt(rtt_ms);
                    cc.on_ack(now, now - MS * age_ms, bytes, app_limited, &r);
                    cc.on_end_acks(now, bytes, app_limited, Some(pn));
                }
                Op::Loss { age_ms, persistent } => {
                    cc.on_congestion_event(now, now - MS * age_ms, persistent, 1200);
                }
                Op::Mtu(m) => { mtu = m; cc.on_mtu_update(m); }
                Op::Advance(ms) => now += MS * ms,
            }
            prop_assert!(cc.window() >= minimum_window(mtu), "{} < min", cc.window());
        }
    }
}

/// Ack-clocked sender: keeps the window full and gets ACK frames for two packets at a time,
/// one RTT (`rtt_at(send time)`) after they were sent
struct AckClock<F> {
    t0: Instant,
    now: Instant,
    next_pn: u64,
    in_flight: std::collections::VecDeque<(u64, Instant)>,
    rtt_at: F,
}

impl<F: Fn(Duration) -> u32> AckClock<F> {
    fn new(t0: Instant, rtt_at: F) -> Self {
        Self {
            t0,
            now: t0,
            next_pn: 0,
            in_flight: Default::default(),
            rtt_at,
        }
    }

    /// One ACK frame; returns the time it arrived
    fn step(&mut self, cc: &mut Cubic) -> Duration {
        while (self.in_flight.len() as u64) * u64::from(MTU) < cc.window() {
            cc.on_sent(self.now, u64::from(MTU), self.next_pn);
            self.in_flight.push_back((self.next_pn, self.now));
            self.next_pn += 1;
        }
        let (_, sent) = self.in_flight[0];
        let rtt_ms = (self.rtt_at)(sent - self.t0);
        self.now = self.now.max(sent + MS * rtt_ms);
        let r = rtt(rtt_ms);
        let mut largest = None;
        for _ in 0..2 {
            if let Some((pn, sent)) = self.in_flight.pop_front() {
                cc.on_ack(self.now, sent, u64::from(MTU), false, &r);
                largest = Some(pn);
            }
        }
        cc.on_end_acks(self.now, 0, false, largest);
        self.now - self.t0
    }
}

#[test]
fn hystart_enters_css_on_rtt_increase() {
    let t0 = Instant::now();
    let mut cc = Cubic::new(MTU, t0);
    // RTT rises from 50 ms to 70 ms (threshold max(50/8, 4) = 6.25 ms) after 200 ms.
    let mut sim = AckClock::new(t0, |t| if t < 200 * MS { 50 } else { 70 });
    let mut css_at = None;
    while cc.ssthresh() == u64::MAX {
        let t = sim.step(&mut cc);
        assert!(t < 2000 * MS, "never left slow start");
        if cc.in_css() && css_at.is_none() {
            css_at = Some((t, cc.window()));
        }
    }
    let (css_t, css_w) = css_at.expect("never entered CSS");
    // CSS lasts CSS_ROUNDS (5) rounds of ~70 ms, growing by ~1.25x per round instead of 2x.
    let t_exit = sim.now - t0;
    assert!(t_exit - css_t >= 4 * 70 * MS, "{css_t:?} {t_exit:?}");
    assert!(cc.window() < css_w * 4, "{} vs {css_w}", cc.window());
    // Left without loss: ssthresh is the window at exit, not a reduction.
    assert_eq!(cc.ssthresh(), cc.window());
    assert!(!cc.in_css());
}

#[test]
fn hystart_stays_in_slow_start_with_flat_rtt() {
    let t0 = Instant::now();
    let mut cc = Cubic::new(MTU, t0);
    let mut sim = AckClock::new(t0, |_| 50);
    for _ in 0..300 {
        sim.step(&mut cc);
    }
    assert_eq!(cc.ssthresh(), u64::MAX);
    assert!(!cc.in_css());
    // 300 ACKs of 2 packets each: +1 packet per packet acked.
    assert_eq!(cc.window(), 12_000 + 600 * 1200);
}

#[test]
fn hystart_spurious_css_resumes_slow_start() {
    let t0 = Instant::now();
    let mut cc = Cubic::new(MTU, t0);
    // A bump to 70 ms between 200 and 300 ms, then back to 50.
    let mut sim = AckClock::new(t0, |t| {
        if (200 * MS..300 * MS).contains(&t) {
            70
        } else {
            50
        }
    });
    let mut saw_css = false;
    let mut resumed = false;
    for _ in 0..2000 {
        sim.step(&mut cc);
        if cc.in_css() {
            saw_css = true;
        } else if saw_css && cc.ssthresh() == u64::MAX {
            resumed = true;
            break;
        }
    }
    assert!(saw_css && resumed, "css {saw_css} resumed {resumed}");
}
