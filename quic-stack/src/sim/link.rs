//! One direction of a simulated path: its impairments, its queue and its counters

use std::time::{Duration, Instant};

/// Impairments of one direction of a path
///
/// Probabilities outside `0.0..=1.0` are clamped (NaN counts as 0), so no value panics.
#[derive(Debug, Clone, PartialEq)]
pub struct LinkConfig {
    /// Fixed one-way propagation delay
    pub delay: Duration,
    /// Extra delay drawn uniformly from `0..=jitter` per datagram; reorders datagrams
    pub jitter: Duration,
    /// Probability a datagram is lost
    pub loss: f64,
    /// Probability a datagram is delivered twice (the copy gets its own jitter)
    pub duplicate: f64,
    /// Probability one byte of a datagram is flipped
    pub corrupt: f64,
    /// Largest UDP payload carried; bigger datagrams are dropped (no fragmentation)
    pub mtu: usize,
    /// Bottleneck rate in bytes per second; `None` is unlimited
    pub bandwidth: Option<u64>,
    /// Bytes that may wait for the bottleneck before tail drop (only with `bandwidth`)
    pub queue_limit: usize,
    /// Drop everything while set
    pub blackhole: bool,
    /// Probability an ECT(0)/ECT(1) datagram is re-marked CE (congestion experienced)
    pub ce_mark: f64,
}

impl Default for LinkConfig {
    fn default() -> Self {
        Self {
            delay: Duration::from_millis(10),
            jitter: Duration::ZERO,
            loss: 0.0,
            duplicate: 0.0,
            corrupt: 0.0,
            // Large enough for jumbo QUIC datagrams; tests lower it to probe PMTUD
            mtu: 65_527,
            bandwidth: None,
            queue_limit: 256 * 1024,
            blackhole: false,
            ce_mark: 0.0,
        }
    }
}

impl LinkConfig {
    /// A perfect link with no delay at all
    pub fn ideal() -> Self {
        Self {
            delay: Duration::ZERO,
            ..Self::default()
        }
    }
}

/// Why the simulator discarded a datagram
#[derive(Debug, Copy, Clone, Eq, PartialEq, Ord, PartialOrd, Hash)]
pub enum DropReason {
    /// The interceptor returned [`super::Verdict::Drop`]
    Interceptor,
    /// The link was blackholed
    Blackhole,
    /// Larger than the link MTU
    Mtu,
    /// Random loss
    Loss,
    /// The bottleneck queue was full (tail drop)
    QueueFull,
    /// No node owns the destination address (also stale NAT mappings)
    NoRoute,
}

impl DropReason {
    /// Every reason, in counter order
    pub const ALL: [Self; 6] = [
        Self::Interceptor,
        Self::Blackhole,
        Self::Mtu,
        Self::Loss,
        Self::QueueFull,
        Self::NoRoute,
    ];
}

/// Counters of one link direction
#[derive(Debug, Default, Clone, Eq, PartialEq)]
pub struct LinkStats {
    /// Datagrams put on the link (after GSO split)
    pub sent: u64,
    /// Bytes put on the link
    pub sent_bytes: u64,
    /// Datagrams handed to the receiver (duplicates count twice)
    pub delivered: u64,
    /// Bytes handed to the receiver
    pub delivered_bytes: u64,
    /// Extra copies created by duplication
    pub duplicated: u64,
    /// Datagrams with a flipped byte
    pub corrupted: u64,
    /// Datagrams re-marked CE
    pub ce_marked: u64,
    dropped: [u64; DropReason::ALL.len()],
}

impl LinkStats {
    /// Datagrams dropped for `reason`
    pub fn dropped(&self, reason: DropReason) -> u64 {
        self.dropped[reason as usize]
    }
    /// Datagrams dropped for any reason
    pub fn dropped_total(&self) -> u64 {
        self.dropped.iter().sum()
    }
    pub(super) fn count_drop(&mut self, reason: DropReason) {
        self.dropped[reason as usize] += 1;
    }
}

/// One direction of a path: configuration, bottleneck state and counters
#[derive(Debug, Clone)]
pub struct Link {
    /// Impairments; may be changed at any time (takes effect for the next datagram)
    pub config: LinkConfig,
    /// Counters
    pub stats: LinkStats,
    /// When the bottleneck finishes serialising what is already queued
    busy_until: Option<Instant>,
}

impl Link {
    pub(super) fn new(config: LinkConfig) -> Self {
        Self {
            config,
            stats: LinkStats::default(),
            busy_until: None,
        }
    }

    /// Pass a datagram of `len` bytes through the bottleneck at `now`
    ///
    /// Returns when its last byte leaves the bottleneck, or `None` on tail drop. The queue is a
    /// FIFO: its backlog in bytes is the time still needed to drain it times the rate.
    pub(super) fn enqueue(&mut self, now: Instant, len: usize) -> Option<Instant> {
        let rate = match self.config.bandwidth {
            Some(rate) if rate > 0 => rate,
            _ => return Some(now),
        };
        let start = self.busy_until.filter(|&t| t > now).unwrap_or(now);
        let backlog = bytes_in(start - now, rate);
        if backlog > 0 && backlog.saturating_add(len as u64) > self.config.queue_limit as u64 {
            return None;
        }
        let done = start + serialisation(len, rate);
        self.busy_until = Some(done);
        Some(done)
    }
}

/// Time to push `len` bytes through a `rate` bytes/s bottleneck
fn serialisation(len: usize, rate: u64) -> Duration {
    let nanos = (len as u128 * 1_000_000_000).div_ceil(rate as u128);
    Duration::from_nanos(u64::try_from(nanos).unwrap_or(u64::MAX))
}

/// Bytes a `rate` bytes/s bottleneck drains in `d`
fn bytes_in(d: Duration, rate: u64) -> u64 {
    u64::try_from(d.as_nanos() * rate as u128 / 1_000_000_000).unwrap_or(u64::MAX)
}
