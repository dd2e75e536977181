//! The network path: remote address, anti-amplification (RFC 9000 §8.1) and answering path
//! validation (RFC 9000 §8.2)

use std::net::SocketAddr;

/// State of the one path a connection uses
#[derive(Debug)]
pub(crate) struct PathData {
    pub(crate) remote: SocketAddr,
    /// The peer proved it receives at `remote`; lifts the amplification limit
    pub(crate) validated: bool,
    /// UDP payload bytes received from the peer on this path
    pub(crate) bytes_received: u64,
    /// UDP payload bytes sent to the peer on this path
    pub(crate) bytes_sent: u64,
    /// PATH_RESPONSE data to send, latest challenge only (RFC 9000 §8.2.2 allows that)
    pub(crate) pending_response: Option<[u8; 8]>,
    /// Largest datagram we build
    pub(crate) mtu: u16,
    /// Outstanding PATH_CHALLENGE data after the peer's address changed
    pub(crate) challenge: Option<[u8; 8]>,
    /// The PATH_CHALLENGE still has to be sent
    pub(crate) challenge_pending: bool,
    /// The address before the last change, to fall back to if validation fails
    pub(crate) prev_remote: Option<SocketAddr>,
}

impl PathData {
    pub(crate) fn new(remote: SocketAddr, validated: bool, mtu: u16) -> Self {
        Self {
            remote,
            validated,
            bytes_received: 0,
            bytes_sent: 0,
            pending_response: None,
            mtu,
            challenge: None,
            challenge_pending: false,
            prev_remote: None,
        }
    }

    /// Bytes we may still send before hearing more from an unvalidated peer
    /// (RFC 9000 §8.1: at most three times the bytes received)
    pub(crate) fn amplification_budget(&self) -> u64 {
        if self.validated {
            u64::MAX
        } else {
            (3 * self.bytes_received).saturating_sub(self.bytes_sent)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn three_times() {
        let mut p = PathData::new("127.0.0.1:1".parse().unwrap(), false, 1200);
        assert_eq!(p.amplification_budget(), 0);
        p.bytes_received = 1200;
        p.bytes_sent = 1000;
        assert_eq!(p.amplification_budget(), 2600);
        p.validated = true;
        assert_eq!(p.amplification_budget(), u64::MAX);
    }
}
