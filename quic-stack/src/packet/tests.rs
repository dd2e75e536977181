//! Packet header tests
