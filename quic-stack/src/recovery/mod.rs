//! Loss recovery (RFC 9002): RTT estimation, sent-packet tracking, loss detection, PTO, pacing
//!
//! Everything here is pure: time is passed in as `Instant`/`Duration`, nothing reads a clock.
//! Congestion control lives in [`crate::cc`]; this module only tells it what was acked or lost.

pub mod loss;
pub mod pacing;
mod rtt;
mod sent;

pub use rtt::RttEstimator;
pub use sent::{SentPacket, SentPackets};
