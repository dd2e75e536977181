//! Endpoint: demultiplexes datagrams by connection ID and accepts connections
//!
//! OWNER: conn helper (stub until it lands)
