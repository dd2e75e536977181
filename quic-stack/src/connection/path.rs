//! The network path: remote address, anti-amplification (RFC 9000 §8.1) and the state of path
//! validation (RFC 9000 §8.2); the migration logic that drives it lives in `migration`

use std::net::SocketAddr;
use std::time::Instant;

/// An outstanding PATH_CHALLENGE we sent (RFC 9000 §8.2.1)
#[derive(Debug, Clone)]
pub(crate) struct Challenge {
    /// The unpredictable payload the peer must echo
    pub(crate) data: [u8; 8],
    /// The frame still has to be (re)sent
    pub(crate) pending: bool,
    /// Times it was sent so far (for the retransmission backoff)
    pub(crate) sends: u32,
    /// When validation is abandoned (RFC 9000 §8.2.4)
    pub(crate) deadline: Instant,
}

/// State of the path a connection sends on
#[derive(Debug)]
pub(crate) struct PathData {
    pub(crate) remote: SocketAddr,
    /// Our own address on the path, when the driver told us (client migration)
    pub(crate) local: Option<SocketAddr>,
    /// The peer proved it receives at `remote`; lifts the amplification limit
    pub(crate) validated: bool,
    /// UDP payload bytes received from the peer on this path
    pub(crate) bytes_received: u64,
    /// UDP payload bytes sent to the peer on this path
    pub(crate) bytes_sent: u64,
    /// PATH_RESPONSE data to send and the address the challenge came from; latest challenge
    /// only (RFC 9000 §8.2.2 allows that)
    pub(crate) pending_response: Option<([u8; 8], SocketAddr)>,
    /// Largest datagram we build
    pub(crate) mtu: u16,
    /// Outstanding PATH_CHALLENGE for this path
    pub(crate) challenge: Option<Challenge>,
    /// The last validated address before the peer moved, to fall back to if validation fails
    /// (RFC 9000 §9.3.2)
    pub(crate) prev_remote: Option<SocketAddr>,
    /// An authenticated packet arrived from `remote` since the current challenge began
    pub(crate) heard_since_challenge: bool,
    /// Validations of this address that failed in a row with nothing validated to return to
    pub(crate) failed_in_row: u32,
}

impl PathData {
    pub(crate) fn new(remote: SocketAddr, validated: bool, mtu: u16) -> Self {
        Self {
            remote,
            local: None,
            validated,
            bytes_received: 0,
            bytes_sent: 0,
            pending_response: None,
            mtu,
            challenge: None,
            prev_remote: None,
            heard_since_challenge: false,
            failed_in_row: 0,
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

    /// A PATH_CHALLENGE is due on this path
    pub(crate) fn challenge_pending(&self) -> bool {
        self.challenge.as_ref().is_some_and(|c| c.pending)
    }

    /// A PATH_RESPONSE is due on this path (responses for other addresses go out separately)
    pub(crate) fn response_on_path(&self) -> Option<[u8; 8]> {
        self.pending_response
            .filter(|(_, addr)| *addr == self.remote)
            .map(|(d, _)| d)
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

    #[test]
    fn response_only_for_the_current_address() {
        let a: SocketAddr = "127.0.0.1:1".parse().unwrap();
        let b: SocketAddr = "127.0.0.1:2".parse().unwrap();
        let mut p = PathData::new(a, true, 1200);
        p.pending_response = Some(([1; 8], b));
        assert_eq!(p.response_on_path(), None);
        p.pending_response = Some(([1; 8], a));
        assert_eq!(p.response_on_path(), Some([1; 8]));
    }
}
