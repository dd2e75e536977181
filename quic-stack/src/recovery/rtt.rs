//! RTT estimation (RFC 9002 §5)

use std::time::Duration;

use super::loss::K_GRANULARITY;

/// Smoothed RTT, RTT variation and minimum RTT of one path (RFC 9002 §5)
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RttEstimator {
    latest: Duration,
    smoothed: Duration,
    var: Duration,
    min: Duration,
    has_sample: bool,
}

impl RttEstimator {
    /// An estimator with no sample yet, seeded with `initial_rtt` (RFC 9002 §6.2.2: 333 ms
    /// unless configured otherwise)
    pub fn new(initial_rtt: Duration) -> Self {
        // RFC 9002 §5.3: before the first sample, smoothed_rtt = kInitialRtt,
        // rttvar = kInitialRtt / 2.
        Self {
            latest: initial_rtt,
            smoothed: initial_rtt,
            var: initial_rtt / 2,
            min: initial_rtt,
            has_sample: false,
        }
    }

    /// Feeds one RTT sample
    ///
    /// `ack_delay` must already be capped by max_ack_delay once the handshake is confirmed
    /// (RFC 9002 §5.3); it is never subtracted so far that the sample drops below min_rtt.
    pub fn update(&mut self, ack_delay: Duration, rtt_sample: Duration) {
        self.latest = rtt_sample;
        if !self.has_sample {
            // RFC 9002 §5.3: the first sample resets the estimator.
            self.has_sample = true;
            self.min = rtt_sample;
            self.smoothed = rtt_sample;
            self.var = rtt_sample / 2;
            return;
        }
        // RFC 9002 §5.2: min_rtt ignores ack delay.
        self.min = self.min.min(rtt_sample);
        // RFC 9002 §5.3: subtract ack_delay only if the result stays at or above min_rtt.
        let adjusted = match rtt_sample.checked_sub(ack_delay) {
            Some(a) if a >= self.min => a,
            _ => rtt_sample,
        };
        // RFC 9002 §5.3: rttvar uses the previous smoothed_rtt.
        let var_sample = self.smoothed.abs_diff(adjusted);
        self.var = weighted(self.var, 3, var_sample, 4);
        self.smoothed = weighted(self.smoothed, 7, adjusted, 8);
    }

    /// The most recent sample (latest_rtt)
    pub fn latest(&self) -> Duration {
        self.latest
    }

    /// smoothed_rtt
    pub fn smoothed(&self) -> Duration {
        self.smoothed
    }

    /// rttvar
    pub fn var(&self) -> Duration {
        self.var
    }

    /// min_rtt (the initial RTT until the first sample)
    pub fn min(&self) -> Duration {
        self.min
    }

    /// True once [`Self::update`] has been called
    pub fn has_sample(&self) -> bool {
        self.has_sample
    }

    /// smoothed_rtt + max(4 * rttvar, kGranularity): the PTO without max_ack_delay or backoff
    /// (RFC 9002 §6.2.1)
    pub fn pto_base(&self) -> Duration {
        self.smoothed
            .saturating_add(self.var.saturating_mul(4).max(K_GRANULARITY))
    }
}

/// (old * keep + new) / denom, computed in u128 nanoseconds so that it cannot overflow
fn weighted(old: Duration, keep: u128, new: Duration, denom: u128) -> Duration {
    let ns = (old.as_nanos() * keep + new.as_nanos()) / denom;
    let secs = u64::try_from(ns / 1_000_000_000).unwrap_or(u64::MAX);
    // The remainder is below 10^9, so it fits.
    Duration::new(secs, (ns % 1_000_000_000) as u32)
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn initial_state() {
        let r = RttEstimator::new(333 * MS);
        assert!(!r.has_sample());
        assert_eq!(r.smoothed(), 333 * MS);
        assert_eq!(r.var(), Duration::from_micros(166_500));
        assert_eq!(r.pto_base(), 333 * MS + 666 * MS);
    }

    #[test]
    fn first_sample_and_smoothing() {
        let mut r = RttEstimator::new(333 * MS);
        r.update(50 * MS, 100 * MS);
        // First sample ignores ack_delay.
        assert_eq!(
            (r.latest(), r.smoothed(), r.var(), r.min()),
            (100 * MS, 100 * MS, 50 * MS, 100 * MS)
        );
        // 180 - 40 = 140 >= min 100: adjusted.
        r.update(40 * MS, 180 * MS);
        assert_eq!(r.smoothed(), 105 * MS);
        assert_eq!(r.var(), (150 * MS + 40 * MS) / 4);
        assert_eq!(r.min(), 100 * MS);
        assert!(r.has_sample());
    }

    #[test]
    fn ack_delay_never_below_min() {
        let mut r = RttEstimator::new(333 * MS);
        r.update(Duration::ZERO, 100 * MS);
        // 110 - 20 = 90 < min 100: the raw sample is used.
        r.update(20 * MS, 110 * MS);
        assert_eq!(r.smoothed(), (700 * MS + 110 * MS) / 8);
        // A huge ack delay does not underflow.
        r.update(Duration::from_secs(1000), 100 * MS);
        assert!(r.smoothed() > Duration::ZERO);
        // Extreme samples saturate rather than overflow.
        let mut big = r;
        big.update(Duration::ZERO, Duration::MAX);
        big.update(Duration::ZERO, Duration::MAX);
        assert!(big.smoothed() > Duration::from_secs(1 << 60));
        // A smaller sample lowers min_rtt.
        r.update(Duration::ZERO, 10 * MS);
        assert_eq!(r.min(), 10 * MS);
    }

    #[test]
    fn pto_base_granularity_floor() {
        let mut r = RttEstimator::new(333 * MS);
        for _ in 0..200 {
            r.update(Duration::ZERO, 10 * MS);
        }
        assert_eq!(r.var(), Duration::ZERO);
        assert_eq!(r.pto_base(), 11 * MS);
    }
}
