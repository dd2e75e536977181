//! Congestion control: the Controller trait, NewReno, CUBIC
//!
//! OWNER: recovery helper (stub until it lands)
