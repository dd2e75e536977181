//! Loss detection constants and timer arithmetic (RFC 9002 §6, §7.6)
//!
//! All durations saturate instead of overflowing: RTT inputs derive from peer-reported ack
//! delays, so no arithmetic here may panic.

use std::time::{Duration, Instant};

use super::RttEstimator;

/// kPacketThreshold: reordering threshold in packets before a packet is deemed lost
/// (RFC 9002 §6.1.1)
pub const K_PACKET_THRESHOLD: u64 = 3;

/// kTimeThreshold: reordering threshold in units of RTT, as `(numerator, denominator)` = 9/8
/// (RFC 9002 §6.1.2)
pub const K_TIME_THRESHOLD: (u32, u32) = (9, 8);

/// kGranularity: system timer granularity (RFC 9002 §6.1.2)
pub const K_GRANULARITY: Duration = Duration::from_millis(1);

/// kPersistentCongestionThreshold: PTO periods without an ack that signal persistent
/// congestion (RFC 9002 §7.6.1)
pub const K_PERSISTENT_CONGESTION_THRESHOLD: u32 = 3;

/// The time-threshold loss delay: max(kTimeThreshold * max(smoothed_rtt, latest_rtt),
/// kGranularity) (RFC 9002 §6.1.2)
pub fn loss_delay(rtt: &RttEstimator) -> Duration {
    let base = rtt.smoothed().max(rtt.latest());
    let (num, den) = K_TIME_THRESHOLD;
    let delay = base.checked_mul(num).map_or(Duration::MAX, |d| d / den);
    delay.max(K_GRANULARITY)
}

/// The probe timeout after `pto_count` consecutive PTOs (RFC 9002 §6.2.1):
/// (smoothed_rtt + max(4 * rttvar, kGranularity) + max_ack_delay) * 2^pto_count
///
/// `include_ack_delay` is false for the Initial and Handshake spaces (RFC 9002 §6.2.1: the
/// peer does not delay acks there). Saturates at `Duration::MAX`.
pub fn pto_duration(
    rtt: &RttEstimator,
    max_ack_delay: Duration,
    include_ack_delay: bool,
    pto_count: u32,
) -> Duration {
    let mut base = rtt.pto_base();
    if include_ack_delay {
        base = base.saturating_add(max_ack_delay);
    }
    // RFC 9002 §6.2.1: exponential backoff on each consecutive expiry.
    match 1u32.checked_shl(pto_count) {
        Some(factor) => base.saturating_mul(factor),
        None => Duration::MAX,
    }
}

/// The persistent congestion duration (RFC 9002 §7.6.1):
/// (smoothed_rtt + max(4 * rttvar, kGranularity) + max_ack_delay) *
/// kPersistentCongestionThreshold
pub fn persistent_congestion_duration(rtt: &RttEstimator, max_ack_delay: Duration) -> Duration {
    rtt.pto_base()
        .saturating_add(max_ack_delay)
        .saturating_mul(K_PERSISTENT_CONGESTION_THRESHOLD)
}

/// True if a run of lost packets establishes persistent congestion (RFC 9002 §7.6.2)
///
/// `lost` holds `(time_sent, ack_eliciting)` for lost packets. The caller must pass one run: no
/// packet sent between the earliest and the latest entry, in any packet number space, was
/// acknowledged (split runs at acknowledged packets and call once per run). Order does not
/// matter. `first_rtt_sample` is when the first RTT sample was taken; `None` means no sample yet,
/// which never establishes persistent congestion.
pub fn in_persistent_congestion(
    lost: &[(Instant, bool)],
    first_rtt_sample: Option<Instant>,
    rtt: &RttEstimator,
    max_ack_delay: Duration,
) -> bool {
    // RFC 9002 §7.6.2: persistent congestion needs a prior RTT sample, and only packets sent
    // after it count.
    let Some(first_sample) = first_rtt_sample else {
        return false;
    };
    // RFC 9002 §7.6.2: the period is bounded by two lost ack-eliciting packets.
    let mut bounds: Option<(Instant, Instant)> = None;
    for &(sent, ack_eliciting) in lost {
        if !ack_eliciting || sent <= first_sample {
            continue;
        }
        bounds = Some(match bounds {
            None => (sent, sent),
            Some((lo, hi)) => (lo.min(sent), hi.max(sent)),
        });
    }
    let Some((lo, hi)) = bounds else {
        return false;
    };
    hi.duration_since(lo) > persistent_congestion_duration(rtt, max_ack_delay)
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    fn rtt_100() -> RttEstimator {
        let mut r = RttEstimator::new(333 * MS);
        r.update(Duration::ZERO, 100 * MS);
        r
    }

    #[test]
    fn loss_delay_values() {
        let r = rtt_100();
        assert_eq!(loss_delay(&r), 112_500 * Duration::from_micros(1));
        let mut tiny = RttEstimator::new(Duration::ZERO);
        tiny.update(Duration::ZERO, Duration::from_micros(10));
        assert_eq!(loss_delay(&tiny), K_GRANULARITY);
        let mut huge = RttEstimator::new(Duration::MAX);
        huge.update(Duration::ZERO, Duration::MAX);
        assert_eq!(loss_delay(&huge), Duration::MAX);
    }

    #[test]
    fn pto_backoff_saturates() {
        let r = rtt_100();
        // 100 + 4 * 50 = 300 ms, + 25 ms ack delay.
        assert_eq!(pto_duration(&r, 25 * MS, false, 0), 300 * MS);
        assert_eq!(pto_duration(&r, 25 * MS, true, 0), 325 * MS);
        assert_eq!(pto_duration(&r, 25 * MS, true, 3), 2600 * MS);
        assert_eq!(pto_duration(&r, 25 * MS, true, 40), Duration::MAX);
        assert_eq!(pto_duration(&r, 25 * MS, true, 32), Duration::MAX);
    }

    #[test]
    fn persistent_congestion() {
        let r = rtt_100();
        let t0 = Instant::now();
        // Duration: (100 + 200 + 25) * 3 = 975 ms.
        let mad = 25 * MS;
        let first = Some(t0);
        let at = |ms: u32| t0 + MS * ms;
        assert!(!in_persistent_congestion(&[], first, &r, mad));
        assert!(!in_persistent_congestion(
            &[(at(1), true), (at(976), true)],
            None,
            &r,
            mad
        ));
        assert!(in_persistent_congestion(
            &[(at(1), true), (at(500), false), (at(977), true)],
            first,
            &r,
            mad
        ));
        // Exactly the duration is not enough.
        assert!(!in_persistent_congestion(
            &[(at(1), true), (at(976), true)],
            first,
            &r,
            mad
        ));
        // Non-ack-eliciting packets do not bound the period.
        assert!(!in_persistent_congestion(
            &[(at(1), false), (at(100), true), (at(2000), false)],
            first,
            &r,
            mad
        ));
        // Packets sent before the first RTT sample are ignored.
        assert!(!in_persistent_congestion(
            &[(t0, true), (at(900), true)],
            first,
            &r,
            mad
        ));
    }
}
