//! Deterministic in-memory network simulator for tests
//!
//! OWNER: sim helper (stub until it lands)
