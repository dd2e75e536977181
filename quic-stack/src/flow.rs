//! Flow-control credit with window auto-tuning
//!
//! OWNER: recovery helper (stub until it lands)
