//! Scenario tests over the simulator
//!
//! OWNER: conn helper (stub until it lands)
