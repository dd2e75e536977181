//! Connection IDs (RFC 9000 §5.1): the ones we issued to the peer and the ones it issued to us

use std::collections::VecDeque;

use rand::RngCore;

use crate::crypto::token::stateless_reset_token;
use crate::error::TransportError;
use crate::frame::NewConnectionId;
use crate::shared::ConnectionId;

/// Local CIDs beyond the handshake one that we keep issued
const MAX_LOCAL_CIDS: u64 = 4;

/// A CID we issued
#[derive(Debug, Clone)]
struct LocalCid {
    sequence: u64,
    cid: ConnectionId,
    reset_token: [u8; 16],
}

/// A CID the peer issued
#[derive(Debug, Clone)]
struct PeerCid {
    sequence: u64,
    cid: ConnectionId,
    reset_token: Option<[u8; 16]>,
}

/// Both CID sets of a connection
#[derive(Debug)]
pub(crate) struct CidState {
    cid_len: usize,
    local: Vec<LocalCid>,
    next_local_seq: u64,
    /// NEW_CONNECTION_ID sequence numbers to (re)send
    pub(crate) pending_new: VecDeque<u64>,
    /// CIDs the endpoint must start routing to us
    pub(crate) endpoint_new: VecDeque<ConnectionId>,
    /// CIDs the endpoint must stop routing to us
    pub(crate) endpoint_retired: VecDeque<ConnectionId>,
    peer: Vec<PeerCid>,
    /// Sequence of the peer CID we send to
    active_peer_seq: u64,
    /// RETIRE_CONNECTION_ID sequence numbers to (re)send
    pub(crate) pending_retire: VecDeque<u64>,
    /// Peer CIDs with a sequence below this are retired
    peer_retire_prior_to: u64,
    /// How many peer CIDs we accept (our active_connection_id_limit)
    peer_limit: u64,
    /// Client: the preferred address's CID, kept for the move there (a server that sees it
    /// takes the packet as sent to its preferred address)
    pub(crate) reserved_peer_seq: Option<u64>,
    /// retire_prior_to we put in NEW_CONNECTION_ID frames (application request, see
    /// [`CidState::retire_local_prior_to`])
    local_retire_prior_to: u64,
}

impl CidState {
    pub(crate) fn new(
        cid_len: usize,
        local_initial: ConnectionId,
        peer_initial: ConnectionId,
        peer_limit: u64,
    ) -> Self {
        Self {
            cid_len,
            local: vec![LocalCid {
                sequence: 0,
                cid: local_initial,
                reset_token: [0; 16],
            }],
            next_local_seq: 1,
            pending_new: VecDeque::new(),
            endpoint_new: VecDeque::new(),
            endpoint_retired: VecDeque::new(),
            peer: vec![PeerCid {
                sequence: 0,
                cid: peer_initial,
                reset_token: None,
            }],
            active_peer_seq: 0,
            pending_retire: VecDeque::new(),
            peer_retire_prior_to: 0,
            peer_limit: peer_limit.max(2),
            reserved_peer_seq: None,
            local_retire_prior_to: 0,
        }
    }

    /// The CID we put in the Destination Connection ID of our packets
    pub(crate) fn peer_cid(&self) -> ConnectionId {
        self.peer
            .iter()
            .find(|c| c.sequence == self.active_peer_seq)
            .or(self.peer.first())
            .map(|c| c.cid)
            .unwrap_or_default()
    }

    /// Switch to an unused peer CID and retire the current one (RFC 9000 §9.5: a new local
    /// address gets a new CID); false when the peer gave us no spare one
    pub(crate) fn rotate_peer_cid(&mut self) -> bool {
        let Some(next) = self
            .peer
            .iter()
            .map(|c| c.sequence)
            .filter(|&s| s > self.active_peer_seq && Some(s) != self.reserved_peer_seq)
            .min()
        else {
            return false;
        };
        let old = self.active_peer_seq;
        self.peer.retain(|c| c.sequence != old);
        self.pending_retire.push_back(old);
        self.active_peer_seq = next;
        true
    }

    /// A peer CID we hold, by sequence number
    pub(crate) fn peer_cid_by_seq(&self, sequence: u64) -> Option<ConnectionId> {
        self.peer
            .iter()
            .find(|c| c.sequence == sequence)
            .map(|c| c.cid)
    }

    /// Switch to the peer CID `sequence` and retire the current one; false if we no longer
    /// hold it (it was used and retired already)
    pub(crate) fn use_peer_cid(&mut self, sequence: u64) -> bool {
        if sequence == self.active_peer_seq {
            return true;
        }
        if self.peer_cid_by_seq(sequence).is_none() {
            return false;
        }
        let old = self.active_peer_seq;
        self.peer.retain(|c| c.sequence != old);
        self.pending_retire.push_back(old);
        self.active_peer_seq = sequence;
        true
    }

    /// Server: the CID of our preferred_address transport parameter, which has sequence
    /// number 1 (RFC 9000 §5.1.1); the client learns it from the parameter, not a frame
    pub(crate) fn add_preferred_local(&mut self, cid: ConnectionId, reset_token: [u8; 16]) {
        let sequence = self.next_local_seq;
        self.next_local_seq += 1;
        self.local.push(LocalCid {
            sequence,
            cid,
            reset_token,
        });
    }

    /// The client learned the server's chosen CID from its first Initial (RFC 9000 §7.2)
    pub(crate) fn set_initial_peer_cid(&mut self, cid: ConnectionId) {
        if let Some(c) = self.peer.iter_mut().find(|c| c.sequence == 0) {
            c.cid = cid;
        }
    }

    /// The stateless reset token of the handshake CID, from transport parameters
    pub(crate) fn set_initial_reset_token(&mut self, token: [u8; 16]) {
        if let Some(c) = self.peer.iter_mut().find(|c| c.sequence == 0) {
            c.reset_token = Some(token);
        }
    }

    /// True if `token` is the reset token of any peer CID we hold (RFC 9000 §10.3.1)
    pub(crate) fn is_stateless_reset(&self, token: &[u8]) -> bool {
        self.peer
            .iter()
            .any(|c| c.reset_token.is_some_and(|t| t[..] == *token))
    }

    /// The handshake CID we chose
    pub(crate) fn initial_local_cid(&self) -> ConnectionId {
        self.local
            .iter()
            .find(|c| c.sequence == 0)
            .map_or_else(ConnectionId::default, |c| c.cid)
    }

    /// Issue CIDs up to the peer's active_connection_id_limit (RFC 9000 §5.1.1)
    pub(crate) fn issue(
        &mut self,
        rng: &mut impl RngCore,
        peer_active_limit: u64,
        reset_key: &ring::hmac::Key,
    ) {
        if self.cid_len == 0 {
            return; // zero-length CIDs cannot be changed
        }
        let target = peer_active_limit.clamp(1, MAX_LOCAL_CIDS) as usize;
        while self.local.len() < target {
            self.issue_one(rng, reset_key);
        }
    }

    /// One fresh CID of ours: NEW_CONNECTION_ID to send, and a route at the endpoint
    fn issue_one(&mut self, rng: &mut impl RngCore, reset_key: &ring::hmac::Key) {
        let cid = ConnectionId::random(rng, self.cid_len);
        let reset_token = stateless_reset_token(reset_key, &cid);
        let sequence = self.next_local_seq;
        self.next_local_seq += 1;
        self.local.push(LocalCid {
            sequence,
            cid,
            reset_token,
        });
        self.pending_new.push_back(sequence);
        self.endpoint_new.push_back(cid);
    }

    /// The frame to send for a pending NEW_CONNECTION_ID, if the CID is still ours
    pub(crate) fn new_cid_frame(&self, sequence: u64) -> Option<NewConnectionId> {
        self.local
            .iter()
            .find(|c| c.sequence == sequence)
            .map(|c| NewConnectionId {
                sequence,
                retire_prior_to: self.local_retire_prior_to.min(sequence),
                id: c.cid,
                reset_token: c.reset_token,
            })
    }

    /// RETIRE_CONNECTION_ID from the peer (RFC 9000 §19.16)
    pub(crate) fn on_retire(
        &mut self,
        sequence: u64,
        rng: &mut impl RngCore,
        peer_active_limit: u64,
        packet_dcid: &[u8],
        reset_key: &ring::hmac::Key,
    ) -> Result<(), TransportError> {
        if sequence >= self.next_local_seq {
            return Err(TransportError::PROTOCOL_VIOLATION(
                "retiring a connection ID never issued",
            ));
        }
        if let Some(i) = self.local.iter().position(|c| c.sequence == sequence) {
            // RFC 9000 §19.16: the CID being retired must not be the one the packet used
            if &self.local[i].cid[..] == packet_dcid {
                return Err(TransportError::PROTOCOL_VIOLATION(
                    "retiring the connection ID in use",
                ));
            }
            let c = self.local.remove(i);
            self.endpoint_retired.push_back(c.cid);
            self.issue(rng, peer_active_limit, reset_key);
        }
        Ok(())
    }

    /// NEW_CONNECTION_ID from the peer (RFC 9000 §19.15)
    pub(crate) fn on_new_cid(&mut self, frame: &NewConnectionId) -> Result<(), TransportError> {
        if frame.retire_prior_to > frame.sequence {
            return Err(TransportError::FRAME_ENCODING_ERROR(
                "retire_prior_to above sequence",
            ));
        }
        if self.peer.first().is_some_and(|c| c.cid.is_empty()) {
            return Err(TransportError::PROTOCOL_VIOLATION(
                "NEW_CONNECTION_ID with a zero-length connection ID in use",
            ));
        }
        if let Some(existing) = self.peer.iter().find(|c| c.sequence == frame.sequence) {
            if existing.cid != frame.id {
                return Err(TransportError::PROTOCOL_VIOLATION(
                    "sequence number reused for a different connection ID",
                ));
            }
            return Ok(());
        }
        if frame.sequence < self.peer_retire_prior_to {
            // Already retired by an earlier retire_prior_to: retire at once (RFC 9000 §19.15)
            self.pending_retire.push_back(frame.sequence);
            return Ok(());
        }
        self.peer.push(PeerCid {
            sequence: frame.sequence,
            cid: frame.id,
            reset_token: Some(frame.reset_token),
        });
        if frame.retire_prior_to > self.peer_retire_prior_to {
            self.peer_retire_prior_to = frame.retire_prior_to;
            let rpt = frame.retire_prior_to;
            let mut retired = Vec::new();
            self.peer.retain(|c| {
                if c.sequence < rpt {
                    retired.push(c.sequence);
                    false
                } else {
                    true
                }
            });
            self.pending_retire.extend(retired);
            if self.active_peer_seq < rpt {
                self.active_peer_seq = self.peer.iter().map(|c| c.sequence).min().unwrap_or(rpt);
            }
        }
        // RFC 9000 §5.1.1: more than our limit is CONNECTION_ID_LIMIT_ERROR
        if self.peer.len() as u64 > self.peer_limit {
            return Err(TransportError::CONNECTION_ID_LIMIT_ERROR(
                "too many connection IDs",
            ));
        }
        Ok(())
    }
}

/// Why an application request on the CID sets was refused
#[derive(Debug, Clone, Copy, Eq, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum CidControlError {
    /// The number is outside the live range, or not above the current one
    #[error("connection ID sequence number out of range")]
    OutOfRange,
    /// Zero-length CIDs cannot be changed or retired
    #[error("zero-length connection IDs")]
    ZeroLength,
}

/// Views and application controls of the CID sets (the SOL_QUIC socket API's
/// QUIC_SOCKOPT_CONNECTION_ID)
impl CidState {
    /// Peer-issued CIDs: (sequence in use, lowest live, highest live)
    pub(crate) fn peer_seq_range(&self) -> (u64, u64, u64) {
        let lo = self.peer.iter().map(|c| c.sequence).min().unwrap_or(0);
        let hi = self.peer.iter().map(|c| c.sequence).max().unwrap_or(0);
        (self.active_peer_seq, lo, hi)
    }

    /// CIDs we issued that the peer may still use: (lowest live, highest live); CIDs below
    /// our own retire_prior_to count as gone, as the peer must stop using them
    pub(crate) fn local_seq_range(&self) -> (u64, u64) {
        let live = || {
            self.local
                .iter()
                .map(|c| c.sequence)
                .filter(|&s| s >= self.local_retire_prior_to)
        };
        (
            live().min().unwrap_or(self.local_retire_prior_to),
            live().max().unwrap_or(0),
        )
    }

    /// Sequence number of our CID `cid`, if still live
    pub(crate) fn local_seq_of(&self, cid: &[u8]) -> Option<u64> {
        self.local
            .iter()
            .find(|c| &c.cid[..] == cid)
            .map(|c| c.sequence)
    }

    /// Retire the peer's CIDs below `prior_to` (RETIRE_CONNECTION_ID) and send to `active`
    /// (or, when 0, the lowest one left); `prior_to` must be in (lowest, highest]
    pub(crate) fn retire_peer_prior_to(
        &mut self,
        prior_to: u64,
        active: u64,
    ) -> Result<(), CidControlError> {
        if self.peer.first().is_some_and(|c| c.cid.is_empty()) {
            return Err(CidControlError::ZeroLength);
        }
        let (cur, lo, hi) = self.peer_seq_range();
        let prior_to = if prior_to == 0 { lo } else { prior_to };
        if prior_to < lo || prior_to > hi || (prior_to == lo && active == 0) {
            return Err(CidControlError::OutOfRange);
        }
        let target = if active == 0 {
            cur.max(prior_to)
        } else {
            active
        };
        if target < prior_to || target < cur || !self.peer.iter().any(|c| c.sequence == target) {
            return Err(CidControlError::OutOfRange);
        }
        let mut retired = Vec::new();
        self.peer.retain(|c| {
            if c.sequence < prior_to {
                retired.push(c.sequence);
                false
            } else {
                true
            }
        });
        self.pending_retire.extend(retired);
        self.active_peer_seq = target;
        self.peer_retire_prior_to = self.peer_retire_prior_to.max(prior_to);
        Ok(())
    }

    /// Ask the peer to retire our CIDs below `prior_to`: a fresh CID goes out in a
    /// NEW_CONNECTION_ID carrying retire_prior_to (RFC 9000 §5.1.2); `prior_to` must be in
    /// (lowest, highest] of the live ones
    pub(crate) fn retire_local_prior_to(
        &mut self,
        prior_to: u64,
        rng: &mut impl RngCore,
        reset_key: &ring::hmac::Key,
    ) -> Result<(), CidControlError> {
        if self.cid_len == 0 {
            return Err(CidControlError::ZeroLength);
        }
        let (lo, hi) = self.local_seq_range();
        if prior_to <= lo || prior_to > hi {
            return Err(CidControlError::OutOfRange);
        }
        self.local_retire_prior_to = prior_to;
        self.issue_one(rng, reset_key);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    fn cid(b: u8) -> ConnectionId {
        ConnectionId::new(&[b; 8]).unwrap()
    }

    fn key() -> ring::hmac::Key {
        ring::hmac::Key::new(ring::hmac::HMAC_SHA256, &[7; 32])
    }

    #[test]
    fn issue_and_retire() {
        let key = key();
        let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(1);
        let mut s = CidState::new(8, cid(1), cid(2), 4);
        s.issue(&mut rng, 3, &key);
        assert_eq!(s.pending_new.len(), 2);
        assert_eq!(s.endpoint_new.len(), 2);
        s.on_retire(1, &mut rng, 3, &cid(1), &key).unwrap();
        assert_eq!(s.endpoint_retired.len(), 1);
        assert_eq!(s.local.len(), 3);
        assert!(s.on_retire(0, &mut rng, 3, &cid(1), &key).is_err());
        assert!(s.on_retire(99, &mut rng, 3, &cid(1), &key).is_err());
    }

    #[test]
    fn new_cid_retire_prior_to() {
        let mut s = CidState::new(8, cid(1), cid(2), 2);
        let f = |seq, rpt, b| NewConnectionId {
            sequence: seq,
            retire_prior_to: rpt,
            id: cid(b),
            reset_token: [b; 16],
        };
        s.on_new_cid(&f(1, 0, 3)).unwrap();
        assert!(s.on_new_cid(&f(2, 0, 4)).is_err(), "limit is 2");
        let mut s = CidState::new(8, cid(1), cid(2), 2);
        s.on_new_cid(&f(1, 1, 3)).unwrap();
        assert_eq!(s.peer_cid(), cid(3));
        assert_eq!(
            s.pending_retire.iter().copied().collect::<Vec<_>>(),
            vec![0]
        );
        assert!(s.is_stateless_reset(&[3; 16]));
    }

    #[test]
    fn rotate_uses_a_fresh_cid_and_retires_the_old() {
        let mut s = CidState::new(8, cid(1), cid(2), 4);
        assert!(!s.rotate_peer_cid(), "no spare CID yet");
        s.on_new_cid(&NewConnectionId {
            sequence: 1,
            retire_prior_to: 0,
            id: cid(5),
            reset_token: [5; 16],
        })
        .unwrap();
        assert!(s.rotate_peer_cid());
        assert_eq!(s.peer_cid(), cid(5));
        assert_eq!(
            s.pending_retire.iter().copied().collect::<Vec<_>>(),
            vec![0]
        );
        assert!(!s.rotate_peer_cid());
    }

    #[test]
    fn preferred_address_cid_is_kept_for_the_move() {
        let mut s = CidState::new(8, cid(1), cid(2), 4);
        for (sequence, b) in [(1, 5), (2, 6)] {
            s.on_new_cid(&NewConnectionId {
                sequence,
                retire_prior_to: 0,
                id: cid(b),
                reset_token: [b; 16],
            })
            .unwrap();
        }
        s.reserved_peer_seq = Some(1);
        // An ordinary migration skips the reserved CID
        assert!(s.rotate_peer_cid());
        assert_eq!(s.peer_cid(), cid(6));
        assert!(!s.rotate_peer_cid(), "only the reserved CID is left");
        // The move to the preferred address takes it and retires the one in use
        assert_eq!(s.peer_cid_by_seq(1), Some(cid(5)));
        assert!(s.use_peer_cid(1));
        assert_eq!(s.peer_cid(), cid(5));
        assert_eq!(
            s.pending_retire.iter().copied().collect::<Vec<_>>(),
            vec![0, 2]
        );
        assert!(!s.use_peer_cid(2), "a retired CID cannot come back");
    }
}
