//! Loss recovery (RFC 9002): RTT estimation, sent-packet tracking, loss detection, PTO, pacing
//!
//! OWNER: recovery helper (stub until it lands)
