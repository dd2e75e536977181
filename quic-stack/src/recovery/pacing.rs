//! Token-bucket pacing (RFC 9002 §7.7)
//!
//! The bucket refills at 1.25 × cwnd / smoothed_rtt (the N = 1.25 of RFC 9002 §7.7, so that
//! pacing does not itself limit the window). It holds [`BURST_INTERVAL`] worth of window, at
//! least [`MIN_BURST_PACKETS`] and at most [`MAX_BURST_PACKETS`] packets: drivers sleep with
//! millisecond timers, so a bucket smaller than a timer tick would cap the rate at one bucket
//! per tick.
//!
//! Once the bucket runs dry it stays closed until it holds [`RESUME_PACKETS`] packets again (or
//! half the bucket, if smaller): senders then wake up once per batch, not once per packet, and
//! each wake-up fills a GSO batch. The average rate is unchanged.
//!
//! The caller asks [`Pacer::delay`] before building a packet and reports each sent packet with
//! [`Pacer::on_sent`].

use std::time::{Duration, Instant};

/// Time worth of window the bucket holds (two ticks of a millisecond timer)
const BURST_INTERVAL: Duration = Duration::from_millis(2);

/// Fewest packets the bucket holds (RFC 9002 §7.7 allows the initial window, ten packets)
const MIN_BURST_PACKETS: u64 = 10;

/// Most packets the bucket holds
const MAX_BURST_PACKETS: u64 = 256;

/// Packets a dry bucket must refill before sending resumes
const RESUME_PACKETS: u64 = 16;

/// A token-bucket pacer
#[derive(Debug, Clone)]
pub struct Pacer {
    /// Bytes that may be sent now
    tokens: u64,
    /// Bucket size in bytes
    capacity: u64,
    /// Window, MTU and RTT the capacity was computed for
    window: u64,
    mtu: u16,
    rtt: Duration,
    /// The bucket ran dry: wait for a batch worth of tokens before sending again
    dry: bool,
    /// Time up to which tokens have been credited
    last_refill: Instant,
}

impl Pacer {
    /// A full bucket for `window` and `mtu`
    pub fn new(window: u64, mtu: u16, now: Instant) -> Self {
        let capacity = capacity(window, mtu, Duration::ZERO);
        Self {
            tokens: capacity,
            capacity,
            window,
            mtu,
            rtt: Duration::ZERO,
            dry: false,
            last_refill: now,
        }
    }

    /// When `bytes_to_send` may be sent: `None` means now, otherwise the instant the bucket
    /// will hold enough tokens (arm the pacing timer for it)
    pub fn delay(
        &mut self,
        smoothed_rtt: Duration,
        bytes_to_send: u64,
        mtu: u16,
        window: u64,
        now: Instant,
    ) -> Option<Instant> {
        if window != self.window || mtu != self.mtu || smoothed_rtt != self.rtt {
            self.window = window;
            self.mtu = mtu;
            self.rtt = smoothed_rtt;
            self.capacity = capacity(window, mtu, smoothed_rtt);
            self.tokens = self.tokens.min(self.capacity);
        }
        // A request larger than the bucket could never be met: wait for a full bucket instead.
        let need = bytes_to_send.min(self.capacity);
        // After running dry, wait for a batch (never more than half the bucket, never less
        // than the request) so that wake-ups are not spent on single packets.
        let resume = if self.dry {
            (RESUME_PACKETS * u64::from(mtu))
                .min(self.capacity / 2)
                .max(need)
        } else {
            need
        };
        if self.tokens >= resume {
            self.dry = false;
            return None;
        }
        let rtt_ns = smoothed_rtt.as_nanos();
        if rtt_ns == 0 || window == 0 {
            // No meaningful rate: do not hold packets back.
            self.dry = false;
            return None;
        }
        // Refill: window * 5/4 bytes per smoothed RTT.
        let elapsed_ns = now.saturating_duration_since(self.last_refill).as_nanos();
        let per_rtt = u128::from(window) * 5;
        let added = elapsed_ns.saturating_mul(per_rtt) / (rtt_ns * 4);
        if added > 0 {
            let added = u64::try_from(added).unwrap_or(u64::MAX);
            self.tokens = self.tokens.saturating_add(added).min(self.capacity);
            // Credit time only for whole tokens so that frequent polls lose nothing; a full
            // bucket forgets the rest.
            self.last_refill = if self.tokens == self.capacity {
                now
            } else {
                let used_ns = u128::from(added) * rtt_ns * 4 / per_rtt;
                self.last_refill + nanos(used_ns)
            };
        }
        if self.tokens >= resume {
            self.dry = false;
            return None;
        }
        if !self.dry {
            // Just ran dry: from now on wait for a whole batch
            self.dry = true;
            return self.delay(smoothed_rtt, bytes_to_send, mtu, window, now);
        }
        // Time until the deficit is refilled, rounded up.
        let deficit = u128::from(resume - self.tokens);
        let wait_ns = (deficit * rtt_ns * 4).div_ceil(per_rtt);
        Some((self.last_refill + nanos(wait_ns)).max(now))
    }

    /// Takes `bytes` tokens for a packet just sent
    pub fn on_sent(&mut self, bytes: u64) {
        self.tokens = self.tokens.saturating_sub(bytes);
    }
}

/// The window whose pacing rate (5/4 of it per `rtt`) equals `rate` bytes per second, so a
/// controller that knows its rate can drive the same pacer
pub fn window_for_rate(rate: u64, rtt: Duration) -> u64 {
    let bytes = u128::from(rate)
        .saturating_mul(rtt.as_nanos())
        .saturating_mul(4)
        / (5 * 1_000_000_000);
    u64::try_from(bytes).unwrap_or(u64::MAX)
}

fn capacity(window: u64, mtu: u16, rtt: Duration) -> u64 {
    let mtu = u64::from(mtu);
    let packets = match rtt.as_nanos() {
        0 => MIN_BURST_PACKETS,
        rtt_ns => {
            let bytes = u128::from(window) * BURST_INTERVAL.as_nanos() / rtt_ns;
            let packets = u64::try_from(bytes / u128::from(mtu.max(1))).unwrap_or(u64::MAX);
            packets.clamp(MIN_BURST_PACKETS, MAX_BURST_PACKETS)
        }
    };
    // Never more than the window, never less than one packet.
    (packets * mtu).min(window).max(mtu)
}

fn nanos(ns: u128) -> Duration {
    Duration::from_nanos(u64::try_from(ns).unwrap_or(u64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn burst_then_paced() {
        let t0 = Instant::now();
        let window = 100_000;
        let mut p = Pacer::new(window, 1200, t0);
        for _ in 0..10 {
            assert_eq!(p.delay(100 * MS, 1200, 1200, window, t0), None);
            p.on_sent(1200);
        }
        // Bucket empty: it resumes with half a bucket, 6000 bytes at 125000 B/100ms = 4.8 ms.
        let d = p.delay(100 * MS, 1200, 1200, window, t0).unwrap();
        assert_eq!(d - t0, Duration::from_micros(4800));
        let halfway = t0 + Duration::from_micros(2400);
        assert_eq!(p.delay(100 * MS, 1200, 1200, window, halfway), Some(d));
        for _ in 0..5 {
            assert_eq!(p.delay(100 * MS, 1200, 1200, window, d), None);
            p.on_sent(1200);
        }
        assert!(p.delay(100 * MS, 1200, 1200, window, d).is_some());
        // Long idle refills at most a burst.
        let later = d + 10 * 100 * MS;
        for _ in 0..10 {
            assert_eq!(p.delay(100 * MS, 1200, 1200, window, later), None);
            p.on_sent(1200);
        }
        assert!(p.delay(100 * MS, 1200, 1200, window, later).is_some());
    }

    #[test]
    fn rate_maps_to_an_equivalent_window() {
        // 1 MB/s over a 100 ms RTT: the pacer's 5/4 × window per RTT must give 100 kB per RTT
        let w = window_for_rate(1_000_000, 100 * MS);
        assert_eq!(w, 80_000);
        assert_eq!(w * 5 / 4, 100_000);
        assert_eq!(window_for_rate(1_000_000, Duration::ZERO), 0);
        assert_eq!(
            window_for_rate(u64::MAX, Duration::from_secs(1 << 40)),
            u64::MAX
        );
    }

    #[test]
    fn bucket_covers_timer_ticks() {
        let t0 = Instant::now();
        // 4 MB window over 4 ms: 2 ms of it is 2 MB, capped at 256 packets.
        let mut p = Pacer::new(14_720, 1472, t0);
        assert_eq!(p.delay(4 * MS, 1472, 1472, 4_000_000, t0), None);
        assert_eq!(p.capacity, 256 * 1472);
        // 300 kB over 10 ms: 60 kB, 40 packets.
        assert_eq!(p.delay(10 * MS, 1472, 1472, 300_000, t0), None);
        assert_eq!(p.capacity, 40 * 1472);
        // Small windows keep ten packets, but never more than the window.
        assert_eq!(capacity(12_000, 1200, 100 * MS), 12_000);
        assert_eq!(capacity(5_000, 1200, 100 * MS), 5_000);
    }

    #[test]
    fn rate_matches_window() {
        let t0 = Instant::now();
        let window = 50_000;
        let mut p = Pacer::new(window, 1000, t0);
        let mut now = t0;
        let mut sent = 0u64;
        while now < t0 + 1000 * MS {
            match p.delay(50 * MS, 1000, 1000, window, now) {
                None => {
                    p.on_sent(1000);
                    sent += 1000;
                }
                Some(t) => now = t,
            }
        }
        // 1.25 * 50000 / 50ms = 1.25 MB/s, plus the initial 10 kB burst.
        assert!((1_240_000..=1_270_000).contains(&sent), "{sent}");
    }

    #[test]
    fn degenerate_inputs() {
        let t0 = Instant::now();
        let mut p = Pacer::new(0, 1200, t0);
        assert_eq!(p.delay(Duration::ZERO, 5000, 1200, 0, t0), None);
        p.on_sent(u64::MAX);
        assert_eq!(p.delay(Duration::ZERO, 5000, 1200, 1, t0), None);
        assert!(p
            .delay(Duration::MAX, u64::MAX, 1200, u64::MAX, t0)
            .is_some());
        // A shrinking window clamps the bucket.
        let mut p = Pacer::new(1_000_000, 1200, t0);
        assert_eq!(p.delay(100 * MS, 12_000, 1200, 2400, t0), None);
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(128))]
        /// Whatever the inputs, a returned send time is in the future and the bytes let through
        /// never exceed one burst plus the pacing rate over the elapsed time.
        #[test]
        fn never_exceeds_rate(
            window in 2400u64..10_000_000,
            rtt_ms in 1u64..500,
            ops in prop::collection::vec((1u64..=1200, 0u64..20_000), 1..200),
        ) {
            let t0 = Instant::now();
            let mtu = 1200u16;
            let rtt = Duration::from_millis(rtt_ms);
            let mut p = Pacer::new(window, mtu, t0);
            let mut now = t0;
            let mut sent = 0u128;
            for (bytes, advance_us) in ops {
                now += Duration::from_micros(advance_us);
                match p.delay(rtt, bytes, mtu, window, now) {
                    None => {
                        p.on_sent(bytes);
                        sent += u128::from(bytes);
                    }
                    Some(t) => prop_assert!(t > now),
                }
                let elapsed = (now - t0).as_nanos();
                let allowance = u128::from(capacity(window, mtu, rtt))
                    + elapsed * u128::from(window) * 5 / (rtt.as_nanos() * 4);
                prop_assert!(sent <= allowance, "{} > {}", sent, allowance);
            }
        }
    }
}
