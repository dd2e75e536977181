//! Send-side stream buffer: unsent, in flight, acknowledged, retransmit
//!
//! OWNER: recovery helper (stub until it lands)
