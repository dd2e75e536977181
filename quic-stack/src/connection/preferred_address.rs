//! Server's preferred address (RFC 9000 §9.6)
//!
//! - Server: the endpoint puts a preferred_address transport parameter (one address per family,
//!   a CID of sequence number 1 and its reset token) into the handshake and routes that CID.
//!   A PATH_CHALLENGE that arrives with that CID is answered from the preferred address, with a
//!   PATH_CHALLENGE of our own that validates the new path from our side; once
//!   a non-probing packet arrives with it, every packet leaves from the preferred address
//!   ([`crate::shared::Transmit::src_ip`] names it; the driver sends from its second socket).
//!   The client's own address does not change, so nothing else about the path does.
//! - Client: after handshake confirmation it probes the preferred address of the family it
//!   uses, from the same socket, with a PATH_CHALLENGE under the new CID, while traffic stays on
//!   the original path. A matching PATH_RESPONSE moves the connection there (new CID, fresh
//!   congestion state when the IP changed); if validation times out it stays where it is.
//! - Per connection: instead of the endpoint-wide configuration, the application can give one
//!   server connection its own preferred address ([`Connection::advertise_preferred_address`],
//!   the kernel's QUIC_SOCKOPT_CONNECTION_MIGRATION on a socket still establishing), as long as
//!   its transport parameters have not left yet.

use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use super::{Connection, EndpointEvent, Event, Timer};
use crate::crypto::token::stateless_reset_token;
use crate::error::TransportError;
use crate::frame::{Frame, NewConnectionId};
use crate::qlog::QlogEvent;
use crate::recovery::RttEstimator;
use crate::shared::{ConnectionId, Side, SpaceId, Transmit};
use crate::transport_params::{PreferredAddress, TransportParameters};

/// Why [`Connection::advertise_preferred_address`] refused
#[derive(Debug, Clone, Copy, Eq, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum PreferredAddressError {
    /// Only a server has a preferred address (RFC 9000 §18.2)
    #[error("only a server advertises a preferred address")]
    NotServer,
    /// Our transport parameters already went to TLS: the handshake started (built-in TLS) or
    /// the application took them for its extension 0x39 (external TLS)
    #[error("transport parameters already sent")]
    ParamsSent,
    /// A server using zero-length connection IDs cannot offer one (RFC 9000 §18.2)
    #[error("zero-length connection IDs cannot go with a preferred address")]
    ZeroLengthCid,
    /// Port 0, or an unspecified or multicast IP
    #[error("invalid preferred address {0}")]
    InvalidAddress(SocketAddr),
    /// The connection is closing or closed
    #[error("connection closed")]
    Closed,
}

/// The preferred address CID always has sequence number 1 (RFC 9000 §5.1.1)
const PREFERRED_CID_SEQ: u64 = 1;

/// Datagrams carrying PATH_CHALLENGE or PATH_RESPONSE are padded to this (RFC 9000 §8.2)
const PROBE_DATAGRAM: usize = 1200;

/// Client: an outstanding probe of the preferred address
#[derive(Debug)]
struct Probe {
    data: [u8; 8],
    pending: bool,
    sends: u32,
    deadline: Instant,
}

/// Preferred-address state of one connection
#[derive(Debug, Default)]
pub(super) struct PreferredState {
    /// Server: what we advertised
    advertised: Option<PreferredAddress>,
    /// Server: the client moved to the preferred address; we send from it
    active: bool,
    /// Server: a PATH_RESPONSE owed for a challenge that arrived at the preferred address
    response: Option<[u8; 8]>,
    /// Server: our PATH_CHALLENGE on the preferred path, until answered
    challenge: Option<[u8; 8]>,
    /// Client: the address to probe (the family we use), once the parameter arrived
    target: Option<SocketAddr>,
    /// Client: probing is due to start (the handshake got confirmed)
    start_pending: bool,
    probe: Option<Probe>,
    /// Client: whether we moved (true) or validation failed (false)
    outcome: Option<bool>,
}

impl Connection {
    /// Server: advertise `pa` (the endpoint routes its CID to us)
    pub(crate) fn set_preferred_address(&mut self, pa: PreferredAddress) {
        self.cids
            .add_preferred_local(pa.connection_id, pa.stateless_reset_token);
        self.preferred.advertised = Some(pa);
    }

    /// Server: advertise `addr` as this connection's preferred address of its family (one of
    /// each family can be set; a second call for a family replaces the first)
    ///
    /// The first call picks a fresh connection ID with its stateless reset token for the
    /// preferred address and has the endpoint route it here. Only possible while our
    /// transport parameters can still change: with external TLS, before the application took
    /// them ([`Connection::external_local_params`]); a built-in TLS server hands them to rustls
    /// when the connection is created, so it always gets [`PreferredAddressError::ParamsSent`].
    /// The caller makes `addr` reachable (the driver binds a socket on it) and sends what
    /// [`crate::shared::Transmit::src_ip`] marks from there.
    pub fn advertise_preferred_address(
        &mut self,
        addr: SocketAddr,
    ) -> Result<(), PreferredAddressError> {
        if self.side.is_client() {
            return Err(PreferredAddressError::NotServer);
        }
        if self.is_closed() {
            return Err(PreferredAddressError::Closed);
        }
        if addr.port() == 0 || addr.ip().is_unspecified() || addr.ip().is_multicast() {
            return Err(PreferredAddressError::InvalidAddress(addr));
        }
        let cid_len = self.endpoint_config.local_cid_len;
        if cid_len == 0 {
            return Err(PreferredAddressError::ZeroLengthCid);
        }
        let encoded = self
            .tls
            .as_external_ref()
            .and_then(|s| s.untaken_local_parameters())
            .ok_or(PreferredAddressError::ParamsSent)?;
        // Our own encoding: it decodes unless memory is corrupt, and then the parameters
        // cannot be trusted to change either
        let mut params = TransportParameters::decode(Side::Server, encoded)
            .map_err(|_| PreferredAddressError::ParamsSent)?;
        let fresh = self.preferred.advertised.is_none();
        let mut pa = match self.preferred.advertised {
            Some(pa) => pa,
            None => {
                // The preferred address's CID is number 1 (RFC 9000 §5.1.1), so no other may
                // have been issued; none is before the handshake completes
                if self.cids.local_seq_range().1 != 0 {
                    return Err(PreferredAddressError::ParamsSent);
                }
                let cid = ConnectionId::random(&mut self.rng, cid_len);
                PreferredAddress {
                    address_v4: None,
                    address_v6: None,
                    connection_id: cid,
                    stateless_reset_token: stateless_reset_token(&self.reset_key, &cid),
                }
            }
        };
        match addr {
            SocketAddr::V4(a) => pa.address_v4 = Some(a),
            SocketAddr::V6(a) => pa.address_v6 = Some(a),
        }
        params.preferred_address = Some(pa);
        let mut buf = Vec::new();
        params.encode(&mut buf);
        self.tls
            .as_external()
            .ok_or(PreferredAddressError::ParamsSent)?
            .replace_local_parameters(buf)
            .map_err(|_| PreferredAddressError::ParamsSent)?;
        if fresh {
            self.set_preferred_address(pa);
            self.endpoint_events
                .push_back(EndpointEvent::NewCid(pa.connection_id));
        } else {
            self.preferred.advertised = Some(pa);
        }
        tracing::debug!(%addr, "advertising a preferred address");
        Ok(())
    }

    /// Server: the preferred addresses this connection advertises (IPv4, IPv6)
    pub fn advertised_preferred_address(&self) -> Option<PreferredAddress> {
        self.preferred.advertised
    }

    /// Server: the local address our datagrams leave from because the client moved to our
    /// preferred address (`None` while it has not)
    pub fn preferred_local_address(&self) -> Option<SocketAddr> {
        if !self.preferred.active {
            return None;
        }
        self.advertised_addr()
    }

    /// Server: the preferred address of the family the client uses
    fn advertised_addr(&self) -> Option<SocketAddr> {
        let pa = self.preferred.advertised.as_ref()?;
        match self.path.remote {
            SocketAddr::V4(_) => pa.address_v4.map(SocketAddr::V4),
            SocketAddr::V6(_) => pa.address_v6.map(SocketAddr::V6),
        }
    }

    /// Server: a packet carried the preferred address's CID, so it was sent to that address
    /// (when the driver reports the local IP, it must be the preferred one too: a client may
    /// also use that CID on the original address)
    pub(super) fn is_preferred_dcid(&self, dcid: &[u8]) -> bool {
        let cid_matches = self
            .preferred
            .advertised
            .as_ref()
            .is_some_and(|pa| pa.connection_id[..] == *dcid);
        let ip_matches = match (self.rx_local_ip, self.advertised_addr()) {
            (Some(local), Some(pa)) => local == pa.ip(),
            _ => true,
        };
        cid_matches && ip_matches
    }

    /// Server: the local IP our datagrams must leave from, if not the original address
    pub(super) fn preferred_src_ip(&self) -> Option<IpAddr> {
        if !self.preferred.active {
            return None;
        }
        self.advertised_addr().map(|a| a.ip())
    }

    /// Server: PATH_CHALLENGE that arrived at the preferred address; true if taken here
    pub(super) fn on_preferred_challenge(&mut self, dcid: &[u8], data: [u8; 8]) -> bool {
        if self.side.is_client() || self.preferred.active || !self.is_preferred_dcid(dcid) {
            return false;
        }
        self.preferred.response = Some(data);
        true
    }

    /// Server: a non-probing packet arrived at the preferred address (RFC 9000 §9.6.2: only
    /// now may we send from it)
    pub(super) fn on_preferred_packet(&mut self, now: Instant, dcid: &[u8]) {
        if self.side.is_client() || self.preferred.active || !self.is_preferred_dcid(dcid) {
            return;
        }
        self.preferred.active = true;
        self.preferred.response = None;
        self.stats.migrations += 1;
        tracing::debug!("client moved to our preferred address");
        let remote = self.path.remote;
        self.qlog(now, || QlogEvent::PathUpdated { remote });
    }

    /// Client: the server's preferred_address parameter (RFC 9000 §18.2)
    pub(super) fn on_preferred_address_param(
        &mut self,
        pa: &PreferredAddress,
    ) -> Result<(), TransportError> {
        if self.side.is_server() {
            return Ok(());
        }
        // The CID counts as issued by the server with sequence number 1 (RFC 9000 §5.1.1)
        self.cids.on_new_cid(&NewConnectionId {
            sequence: PREFERRED_CID_SEQ,
            retire_prior_to: 0,
            id: pa.connection_id,
            reset_token: pa.stateless_reset_token,
        })?;
        let target = match self.path.remote {
            SocketAddr::V4(_) => pa.address_v4.map(SocketAddr::V4),
            SocketAddr::V6(_) => pa.address_v6.map(SocketAddr::V6),
        };
        self.preferred.target = target.filter(|t| *t != self.path.remote);
        if self.preferred.target.is_some() {
            self.cids.reserved_peer_seq = Some(PREFERRED_CID_SEQ);
        }
        Ok(())
    }

    /// Client: handshake confirmed, so migration may start (RFC 9000 §9.6.1)
    pub(super) fn on_confirmed_preferred(&mut self) {
        if self.side.is_client() && self.preferred.target.is_some() {
            self.preferred.start_pending = true;
        }
    }

    /// Client: packets from the preferred address are accepted while probing and after moving
    pub(super) fn is_preferred_target(&self, remote: SocketAddr) -> bool {
        self.side.is_client() && self.preferred.target == Some(remote)
    }

    /// Client: whether we moved to the server's preferred address (`Some(false)`: validation
    /// failed and we stayed); `None` when the server advertised none for our family or the
    /// probe is still running
    pub fn preferred_address_outcome(&self) -> Option<bool> {
        self.preferred.outcome
    }

    /// A datagram for the preferred address, if one is due: the client's probe or the
    /// server's PATH_RESPONSE
    pub(super) fn poll_preferred(&mut self, now: Instant, buf: &mut Vec<u8>) -> Option<Transmit> {
        // Probes and responses are 1-RTT packets
        self.space(SpaceId::Data).keys.as_ref()?;
        if let Some(data) = self.preferred.response.take() {
            let src_ip = self.advertised_addr().map(|a| a.ip());
            // The first packet on the new path also probes it from our side (RFC 9000 §8.2);
            // the client's address is already validated, so nothing waits for the answer
            let mut ours = [0u8; 8];
            rand::RngCore::fill_bytes(&mut self.rng, &mut ours);
            self.preferred.challenge = Some(ours);
            let frames = [Frame::PathResponse(data), Frame::PathChallenge(ours)];
            return self.build_probe_datagram(now, buf, &frames, None, src_ip);
        }
        if self.preferred.start_pending {
            self.preferred.start_pending = false;
            self.start_preferred_probe(now);
        }
        let target = self.preferred.target?;
        let probe = self.preferred.probe.as_mut().filter(|p| p.pending)?;
        let data = probe.data;
        probe.pending = false;
        probe.sends += 1;
        let sends = probe.sends;
        let deadline = probe.deadline;
        let dcid = self.cids.peer_cid_by_seq(PREFERRED_CID_SEQ)?;
        let pto = self.rtt.pto_base() + self.peer_max_ack_delay;
        let backoff = pto.saturating_mul(1 << sends.min(8).saturating_sub(1));
        let at = (now + backoff.max(Duration::from_millis(1))).min(deadline);
        self.timers.set(Timer::PreferredAddress, at);
        let frames = [Frame::PathChallenge(data)];
        let t = self.build_probe_datagram(now, buf, &frames, Some(dcid), None);
        t.map(|t| Transmit {
            destination: target,
            ..t
        })
    }

    fn start_preferred_probe(&mut self, now: Instant) {
        if self.preferred.target.is_none() || self.preferred.outcome.is_some() {
            return;
        }
        let mut data = [0u8; 8];
        rand::RngCore::fill_bytes(&mut self.rng, &mut data);
        // RFC 9000 §8.2.4: three times the larger of the current PTO and a new path's
        let initial_pto = RttEstimator::new(self.config.initial_rtt).pto_base();
        let pto = self.rtt.pto_base().max(initial_pto) + self.peer_max_ack_delay;
        let deadline = now + 3 * pto;
        tracing::debug!(target = ?self.preferred.target, "probing the server's preferred address");
        self.preferred.probe = Some(Probe {
            data,
            pending: true,
            sends: 0,
            deadline,
        });
        self.timers.set(Timer::PreferredAddress, deadline);
    }

    /// One ack-eliciting 1-RTT packet holding `frames`, padded to 1200 bytes, sent to the
    /// current remote (the caller redirects it) with `dcid` instead of the active CID
    fn build_probe_datagram(
        &mut self,
        now: Instant,
        buf: &mut Vec<u8>,
        frames: &[Frame<'_>],
        dcid: Option<ConnectionId>,
        src_ip: Option<IpAddr>,
    ) -> Option<Transmit> {
        buf.clear();
        self.dcid_override = dcid;
        let mut p = self.start_packet(now, buf, SpaceId::Data);
        self.dcid_override = None;
        for frame in frames {
            frame.encode(buf);
        }
        p.ack_eliciting = true;
        self.space_mut(SpaceId::Data).next_pn += 1;
        self.finish_packet(now, buf, p, Some(PROBE_DATAGRAM));
        self.stats.udp_tx_datagrams += 1;
        self.stats.udp_tx_bytes += buf.len() as u64;
        Some(Transmit {
            destination: self.path.remote,
            size: buf.len(),
            ecn: None,
            segment_size: None,
            src_ip,
        })
    }

    /// Client: the probe timer fired: resend, or give up at the deadline (RFC 9000 §8.2.4)
    pub(super) fn on_preferred_timeout(&mut self, now: Instant) {
        let Some(probe) = self.preferred.probe.as_mut() else {
            return;
        };
        if now < probe.deadline {
            probe.pending = true;
            return;
        }
        self.preferred.probe = None;
        self.preferred.outcome = Some(false);
        self.cids.reserved_peer_seq = None;
        self.stats.path_validations_failed += 1;
        if let Some(remote) = self.preferred.target.take() {
            tracing::debug!(%remote, "preferred address unreachable: staying on the original");
            self.qlog(now, || QlogEvent::PathValidation {
                remote,
                success: false,
            });
            self.events.push_back(Event::PathFailed { remote });
        }
    }

    /// Client: a PATH_RESPONSE; true if it answered our probe (and we moved)
    pub(super) fn on_preferred_response(&mut self, now: Instant, data: [u8; 8]) -> bool {
        if self.side.is_server() {
            if self.preferred.challenge != Some(data) {
                return false;
            }
            self.preferred.challenge = None;
            self.stats.path_validations_succeeded += 1;
            return true;
        }
        let Some(target) = self.preferred.target else {
            return false;
        };
        if self.preferred.probe.as_ref().is_none_or(|p| p.data != data) {
            return false;
        }
        self.preferred.probe = None;
        self.timers.stop(Timer::PreferredAddress);
        self.cids.reserved_peer_seq = None;
        // RFC 9000 §9.6.1: from now on, all packets go to the new address with the new CID
        if !self.cids.use_peer_cid(PREFERRED_CID_SEQ) {
            // The CID went to an earlier migration of ours: without it the move would link
            // the two paths, so stay
            self.preferred.outcome = Some(false);
            self.preferred.target = None;
            return true;
        }
        let old = self.path.remote;
        self.path.remote = target;
        self.path.validated = true;
        self.path.prev_remote = None;
        // RFC 9000 §9.4: a new IP address gets fresh congestion state and RTT
        if old.ip() != target.ip() {
            self.reset_path_estimates(now);
        }
        self.ecn.restart(self.config.ecn);
        self.stats.migrations += 1;
        self.stats.path_validations_succeeded += 1;
        self.preferred.outcome = Some(true);
        // A non-probing packet right away lets the server switch too (RFC 9000 §9.6.2)
        self.space_mut(SpaceId::Data).ping_pending = true;
        tracing::debug!(from = %old, to = %target, "moved to the server's preferred address");
        self.qlog(now, || QlogEvent::PathValidation {
            remote: target,
            success: true,
        });
        self.qlog(now, || QlogEvent::PathUpdated { remote: target });
        self.events
            .push_back(Event::PathValidated { remote: target });
        self.events.push_back(Event::PathChanged { remote: target });
        true
    }
}
