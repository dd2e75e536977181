//! Counters a connection exposes to the application

use std::time::Duration;

/// Connection statistics, cumulative since the connection started
#[derive(Debug, Default, Copy, Clone, Eq, PartialEq)]
#[non_exhaustive]
pub struct ConnectionStats {
    /// UDP datagrams sent
    pub udp_tx_datagrams: u64,
    /// UDP payload bytes sent
    pub udp_tx_bytes: u64,
    /// UDP datagrams received (including undecryptable ones routed to this connection)
    pub udp_rx_datagrams: u64,
    /// UDP payload bytes received
    pub udp_rx_bytes: u64,
    /// QUIC packets sent
    pub packets_sent: u64,
    /// QUIC packets received and successfully decrypted
    pub packets_received: u64,
    /// Packets declared lost
    pub packets_lost: u64,
    /// Bytes of packets declared lost
    pub bytes_lost: u64,
    /// Packets dropped on receipt (no keys, failed decryption, duplicates)
    pub packets_dropped: u64,
    /// Congestion events (loss or ECN-CE)
    pub congestion_events: u64,
    /// Persistent congestion events (RFC 9002 §7.6)
    pub persistent_congestion_events: u64,
    /// Smoothed RTT
    pub rtt: Duration,
    /// Current congestion window in bytes
    pub cwnd: u64,
    /// Bytes in flight
    pub bytes_in_flight: u64,
    /// Datagrams dropped because a queue was full (send or receive)
    pub datagrams_dropped: u64,
    /// Datagrams sent
    pub datagrams_sent: u64,
    /// Datagrams received
    pub datagrams_received: u64,
    /// PTO expirations
    pub pto_count: u64,
    /// 1-RTT key updates (either side initiated)
    pub key_updates: u64,
    /// Compatible version negotiations this connection went through (0 or 1)
    pub version_upgrades: u64,
    /// Path changes: our active migrations (client) or peer address changes (server)
    pub migrations: u64,
    /// Path validations that succeeded (RFC 9000 §8.2)
    pub path_validations_succeeded: u64,
    /// Path validations that timed out
    pub path_validations_failed: u64,
    /// Increase of the CE counts the peer reported (RFC 9000 §13.4.1)
    pub ecn_ce_reported: u64,
    /// ECN was validated on the current path and packets are marked ECT(0)
    pub ecn_capable: bool,
    /// Path MTU black holes detected (large datagrams stopped getting through)
    pub mtu_black_holes: u64,
    /// Client: 0-RTT packets sent
    pub zero_rtt_packets_sent: u64,
    /// Client: bytes of 0-RTT packets sent
    pub zero_rtt_bytes_sent: u64,
    /// Client: bytes of 0-RTT packets the server accepted (all of them, or 0 if it rejected
    /// 0-RTT); server: bytes of 0-RTT packets received and processed
    pub zero_rtt_bytes_accepted: u64,
    /// Client: 0-RTT packets whose frames were resent because the server never processed them
    /// (rejected 0-RTT, Retry)
    pub zero_rtt_packets_resent: u64,
}
