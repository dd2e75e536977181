//! Receive-side reassembly of stream and CRYPTO data
//!
//! OWNER: recovery helper (stub until it lands)
