//! What the SOL_QUIC socket service (`quictun sockd`) needs from a connection beyond the
//! tunnel's API: key phase, CID sets, the peer's stream limits, NEW_TOKEN on demand
//!
//! The socket API reports changes as events (KEY_UPDATE, CONNECTION_ID, MAX_STREAMS, ...).
//! Rather than a second event queue in the core, these are plain views the service compares
//! between wake-ups, so nothing is lost when it falls behind and nothing grows unbounded.

use super::{Connection, EndpointEvent};
use crate::connection::cid::CidControlError;
use crate::shared::{Dir, SpaceId, StreamId};

impl Connection {
    /// Key phase bit of our current 1-RTT keys; flips on every key update (RFC 9001 §6)
    pub fn key_phase(&self) -> bool {
        self.key_update.phase
    }

    /// A key update is unfinished: requested and not started, or started and not yet answered
    /// by the peer in the new phase
    pub fn key_update_pending(&self) -> bool {
        self.key_update.requested || (self.stats.key_updates > 0 && self.key_update.awaiting_peer())
    }

    /// One CID set as QUIC_SOCKOPT_CONNECTION_ID shows it: (sequence number in use, lowest
    /// live sequence number). `dest`: the peer's CIDs we send to; otherwise ours, where "in
    /// use" is the one the peer put on its latest 1-RTT packet
    pub fn connection_id_numbers(&self, dest: bool) -> (u64, u64) {
        if dest {
            let (active, lo, _) = self.cids.peer_seq_range();
            return (active, lo);
        }
        let (lo, _) = self.cids.local_seq_range();
        let active = self
            .rx_dcid
            .and_then(|c| self.cids.local_seq_of(&c))
            .unwrap_or(lo)
            .max(lo);
        (active, lo)
    }

    /// Retire CIDs below `prior_to`: the peer's (`dest`, RETIRE_CONNECTION_ID; then send to
    /// `active`, or the lowest left when 0) or ours (a NEW_CONNECTION_ID with retire_prior_to
    /// asks the peer to drop them)
    pub fn retire_connection_ids(
        &mut self,
        dest: bool,
        prior_to: u64,
        active: u64,
    ) -> Result<(), CidControlError> {
        if dest {
            return self.cids.retire_peer_prior_to(prior_to, active);
        }
        self.cids
            .retire_local_prior_to(prior_to, &mut self.rng, &self.reset_key)?;
        // The endpoint must route the fresh CID before the peer can use it.
        while let Some(cid) = self.cids.endpoint_new.pop_front() {
            self.endpoint_events.push_back(EndpointEvent::NewCid(cid));
        }
        Ok(())
    }

    /// The peer's current MAX_STREAMS for streams we open in `dir`
    pub fn peer_max_streams(&self, dir: Dir) -> u64 {
        self.streams.peer_max_streams(dir)
    }

    /// The peer's MAX_STREAM_DATA for our sending half of `id`, while the stream lives
    pub fn stream_send_max_data(&self, id: StreamId) -> Option<u64> {
        self.streams.send_max_data(id)
    }

    /// The final size of the peer's data on `id` once its FIN arrived (not after a reset), and
    /// whether all of it has arrived (the kernel's RECV_SIZE_KNOWN is "known, not all there")
    pub fn stream_recv_final_size(&self, id: StreamId) -> Option<(u64, bool)> {
        self.streams.recv_final_size(id)
    }

    /// Stream data or a FIN written by the application has not gone out yet (a socket's close
    /// lets it leave before the CONNECTION_CLOSE)
    pub fn has_unsent_stream_data(&self) -> bool {
        self.streams.has_queued_stream_data()
    }

    /// Server: send the client one more NEW_TOKEN token; false while one is still unacknowledged
    /// or on a client
    pub fn request_new_token(&mut self) -> bool {
        if self.side.is_client() || self.new_token_pending || !self.handshake_completed {
            return false;
        }
        self.endpoint_events.push_back(EndpointEvent::IssueToken);
        // The endpoint mints tokens when it next looks at this connection, which a transmit
        // guarantees.
        self.space_mut(SpaceId::Data).ping_pending = true;
        true
    }
}
