//! Loss recovery (RFC 9002): RTT estimation, sent-packet tracking, loss detection, PTO, pacing
//!
//! Everything here is pure: time is passed in as `Instant`/`Duration`, nothing reads a clock.
//! Congestion control lives in [`crate::cc`]; this module only tells it what was acked or lost.
//!
//! How a connection uses the pieces, per packet number space (RFC 9002 Appendix A):
//! 1. on send: [`SentPackets::insert`], then `Controller::on_sent` and [`pacing::Pacer::on_sent`];
//! 2. on an ACK frame: if the largest acknowledged packet is newly acked and ack-eliciting, take
//!    an RTT sample with [`RttEstimator::update`]; [`SentPackets::on_ack`] hands over each newly
//!    acked packet (feed in-flight ones to `Controller::on_ack`), then `Controller::on_end_acks`;
//! 3. then [`SentPackets::detect_lost`] with [`loss::loss_delay`]: lost packets are requeued and
//!    reported once to `Controller::on_congestion_event`, with
//!    [`loss::in_persistent_congestion`] deciding the persistent flag; the returned instant arms
//!    the loss timer, else [`loss::pto_duration`] arms the PTO.

pub mod loss;
pub mod pacing;
mod rtt;
mod sent;

pub use rtt::RttEstimator;
pub use sent::{SentPacket, SentPackets};
