//! Sets of disjoint u64 ranges: received packet numbers, received stream offsets
//!
//! OWNER: recovery helper (stub until it lands)
