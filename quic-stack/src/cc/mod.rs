//! Congestion control: the [`Controller`] trait, NewReno, CUBIC and BBR
//!
//! Recovery ([`crate::recovery`]) decides what was acknowledged or lost; a controller only turns
//! those events into a congestion window. Controllers are pure functions of the events and the
//! times passed in, so they can be driven by generated operation sequences in tests.
//!
//! Call protocol, per ACK frame: `on_ack` once per newly acked in-flight packet, then
//! `on_end_acks`; per loss-detection pass with losses: one `on_congestion_event` with the send
//! time of the largest lost packet and the total bytes lost.

use std::fmt;
use std::str::FromStr;
use std::time::Instant;

use crate::recovery::RttEstimator;

mod bbr;
mod cubic;
mod hystart;
mod newreno;

pub use bbr::{Bbr, BbrState};
pub use cubic::Cubic;
pub use newreno::NewReno;

/// Bytes RFC 9002 §7.2 caps the initial window at, unless ten packets are smaller
const INITIAL_WINDOW_CAP: u64 = 14_720;

/// A congestion controller; object safe so connections hold a `Box<dyn Controller>`
pub trait Controller: fmt::Debug + Send {
    /// A packet of `bytes` (counted in flight) with number `pn` was sent
    fn on_sent(&mut self, now: Instant, bytes: u64, pn: u64);

    /// A packet sent at `sent`, of `bytes`, was newly acknowledged; `app_limited` means the
    /// sender was not using its window, so the window must not grow (RFC 9002 §7.8)
    fn on_ack(
        &mut self,
        now: Instant,
        sent: Instant,
        bytes: u64,
        app_limited: bool,
        rtt: &RttEstimator,
    );

    /// All packets acknowledged by one ACK frame have been reported
    fn on_end_acks(
        &mut self,
        _now: Instant,
        _in_flight: u64,
        _app_limited: bool,
        _largest_packet_num_acked: Option<u64>,
    ) {
    }

    /// Packets were declared lost (or ECN-CE reported); `sent` is the send time of the most
    /// recent one, `lost_bytes` their total size (RFC 9002 §7.3.2)
    fn on_congestion_event(
        &mut self,
        now: Instant,
        sent: Instant,
        is_persistent_congestion: bool,
        lost_bytes: u64,
    );

    /// The path MTU (max datagram size) changed
    fn on_mtu_update(&mut self, new_mtu: u16);

    /// Congestion window in bytes
    fn window(&self) -> u64;

    /// Slow start threshold in bytes (`u64::MAX` until the first congestion event)
    fn ssthresh(&self) -> u64;

    /// Window the controller started with
    fn initial_window(&self) -> u64;

    /// Sending rate in bytes per second, for controllers that pace from a model of the path
    /// (BBR); `None` leaves pacing to the window (1.25 × cwnd per smoothed RTT)
    fn pacing_rate(&self) -> Option<u64> {
        None
    }

    /// Algorithm name, as accepted by [`Algorithm::from_str`]
    fn name(&self) -> &'static str;
}

/// The available congestion control algorithms
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Algorithm {
    /// RFC 9002 §7 NewReno
    NewReno,
    /// RFC 9438 CUBIC
    #[default]
    Cubic,
    /// BBR (v1 model, draft-cardwell-iccrg-bbr-congestion-control)
    Bbr,
}

impl Algorithm {
    /// The name used in configuration
    pub fn as_str(self) -> &'static str {
        match self {
            Self::NewReno => "newreno",
            Self::Cubic => "cubic",
            Self::Bbr => "bbr",
        }
    }
}

impl fmt::Display for Algorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An unrecognised congestion control algorithm name
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown congestion control algorithm {0:?} (expected \"newreno\", \"cubic\" or \"bbr\")")]
pub struct UnknownAlgorithm(pub String);

impl FromStr for Algorithm {
    type Err = UnknownAlgorithm;
    fn from_str(s: &str) -> Result<Self, UnknownAlgorithm> {
        match s.to_ascii_lowercase().as_str() {
            "newreno" => Ok(Self::NewReno),
            "cubic" => Ok(Self::Cubic),
            "bbr" => Ok(Self::Bbr),
            _ => Err(UnknownAlgorithm(s.to_owned())),
        }
    }
}

/// A fresh controller of the given algorithm for a path with max datagram size `mtu`
pub fn new_controller(algorithm: Algorithm, mtu: u16, now: Instant) -> Box<dyn Controller> {
    match algorithm {
        Algorithm::NewReno => Box::new(NewReno::new(mtu, now)),
        Algorithm::Cubic => Box::new(Cubic::new(mtu, now)),
        Algorithm::Bbr => Box::new(Bbr::new(mtu, now)),
    }
}

/// RFC 9002 §7.2: min(10 * max_datagram_size, max(2 * max_datagram_size, 14720))
pub fn initial_window(mtu: u16) -> u64 {
    let mtu = u64::from(mtu);
    (10 * mtu).min((2 * mtu).max(INITIAL_WINDOW_CAP))
}

/// RFC 9002 §7.2: kMinimumWindow = 2 * max_datagram_size
pub fn minimum_window(mtu: u16) -> u64 {
    2 * u64::from(mtu)
}

#[cfg(test)]
mod tests;
