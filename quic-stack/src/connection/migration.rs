//! Connection migration (RFC 9000 §9) and path validation (RFC 9000 §8.2)
//!
//! - Client (active migration): [`Connection::migrate`] moves to a new local address at once
//!   (the driver has already closed the old socket), switches to an unused peer CID, resets
//!   congestion control and RTT unless only the port changed, and probes the path with a
//!   PATH_CHALLENGE that is resent with backoff until it is answered or the validation
//!   timeout fires.
//! - Server (peer migration, NAT rebinding): only an authenticated, non-probing packet carrying
//!   the largest packet number so far moves us to a new peer address. The new address is
//!   unvalidated (anti-amplification applies) until our PATH_CHALLENGE is answered; if it is
//!   not, we fall back to the last validated address. A packet with a higher packet number from
//!   that old address moves us straight back (an attacker's forwarded copy cannot steal the
//!   connection, RFC 9000 §9.3.3).

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use super::path::Challenge;
use super::{Connection, ConnectionError, Event, State, Timer};
use crate::cc;
use crate::qlog::QlogEvent;
use crate::recovery::pacing::Pacer;
use crate::recovery::RttEstimator;
use crate::shared::{ConnectionId, SpaceId};

/// ACK-only 1-RTT packets after which the next ACK also carries a PING when nothing
/// ack-eliciting is in flight: a pure receiver then notices (by PTO) a path that died under it
/// and speaks from its new address, which is how the peer learns of a NAT rebinding
pub(super) const ACKS_BEFORE_PING: u32 = 8;

/// Validation rounds a server retries on an address it has no validated alternative to, while
/// the peer keeps sending from it (see `on_path_validation_timeout`)
const MAX_UNVALIDATED_RETRIES: u32 = 3;

/// Why [`Connection::migrate`] refused
#[derive(Debug, Clone, Copy, Eq, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum MigrateError {
    /// Only clients migrate (RFC 9000 §9)
    #[error("only clients can migrate")]
    NotClient,
    /// RFC 9000 §9: no migration before the handshake is confirmed
    #[error("handshake not confirmed yet")]
    NotConfirmed,
    /// The peer sent disable_active_migration (RFC 9000 §18.2)
    #[error("the peer disabled active migration")]
    Disabled,
    /// The connection is closing or gone
    #[error("connection closed")]
    Closed,
}

impl Connection {
    /// Move the connection to a new local address (active migration, RFC 9000 §9.2)
    ///
    /// Call after the socket was rebound; `new_local` is the new address if known. Sending
    /// continues at once on the new path with a fresh connection ID while a PATH_CHALLENGE
    /// validates it; [`Event::PathValidated`] or [`Event::PathFailed`] reports the outcome.
    pub fn migrate(
        &mut self,
        now: Instant,
        new_local: Option<SocketAddr>,
    ) -> Result<(), MigrateError> {
        if self.side.is_server() {
            return Err(MigrateError::NotClient);
        }
        if self.is_closed() {
            return Err(MigrateError::Closed);
        }
        // RFC 9000 §9: an endpoint MUST NOT initiate migration before handshake confirmation
        if !self.handshake_confirmed {
            return Err(MigrateError::NotConfirmed);
        }
        // RFC 9000 §9: MUST NOT migrate if the peer sent disable_active_migration
        if self
            .peer_params
            .as_ref()
            .is_some_and(|p| p.disable_active_migration)
        {
            return Err(MigrateError::Disabled);
        }
        let port_only = match (self.path.local, new_local) {
            (Some(a), Some(b)) => a.ip() == b.ip(),
            _ => false,
        };
        self.path.local = new_local;
        // RFC 9000 §9.5: MUST NOT reuse a CID when sending from more than one local address;
        // without a spare one we keep the current CID rather than strand the connection
        if !self.cids.rotate_peer_cid() {
            tracing::debug!("migrating without a fresh connection ID: none available");
        }
        self.stats.migrations += 1;
        // RFC 9000 §9.4: reset congestion control and RTT for the new path
        if !port_only {
            self.reset_path_estimates(now);
        }
        tracing::debug!(side = ?self.side, local = ?new_local, "migrating to a new local address");
        self.ecn.restart(self.config.ecn);
        self.start_path_challenge(now);
        // Elicit an immediate answer so the server follows quickly
        self.space_mut(SpaceId::Data).ping_pending = true;
        let remote = self.path.remote;
        self.qlog(now, || QlogEvent::PathUpdated { remote });
        self.events.push_back(Event::PathChanged { remote });
        Ok(())
    }

    /// Our address on the current path, if the driver told us (see [`Self::migrate`])
    pub fn local_address(&self) -> Option<SocketAddr> {
        self.path.local
    }

    /// The current path is validated (always true for the client's initial path)
    pub fn path_validated(&self) -> bool {
        self.path.validated && self.path.challenge.is_none()
    }

    /// Fresh congestion controller, RTT estimator, pacer and MTU for a new path (RFC 9000 §9.4)
    pub(super) fn reset_path_estimates(&mut self, now: Instant) {
        let mtu = self.config.mtu();
        self.path.mtu = mtu;
        self.mtud.restart(mtu);
        let payload = self.max_1rtt_payload();
        self.datagrams.set_max_packet_payload(payload);
        self.cc = cc::new_controller(self.config.congestion, mtu, now);
        self.rtt = RttEstimator::new(self.config.initial_rtt);
        self.pacer = Pacer::new(self.cc.window(), mtu, now);
        // Losses of packets sent on the old path say nothing about the new one
        self.cc_reset_at = Some(now);
    }

    /// Probe the current path with a new PATH_CHALLENGE (RFC 9000 §8.2.1)
    fn start_path_challenge(&mut self, now: Instant) {
        let mut data = [0u8; 8];
        rand::RngCore::fill_bytes(&mut self.rng, &mut data);
        // RFC 9000 §8.2.4: three times the larger of the current PTO and the PTO for a new
        // path (which starts from kInitialRtt)
        let initial_pto = RttEstimator::new(self.config.initial_rtt).pto_base();
        let pto = self.rtt.pto_base().max(initial_pto) + self.peer_max_ack_delay;
        let deadline = now + 3 * pto;
        self.path.challenge = Some(Challenge {
            data,
            pending: true,
            sends: 0,
            deadline,
        });
        self.path.heard_since_challenge = false;
        self.timers.set(Timer::PathValidation, deadline);
        self.timers.stop(Timer::PathChallenge);
    }

    /// A PATH_CHALLENGE frame went out: arm its retransmission with exponential backoff
    pub(super) fn on_path_challenge_sent(&mut self, now: Instant) {
        let pto = self.rtt.pto_base() + self.peer_max_ack_delay;
        let Some(c) = self.path.challenge.as_mut() else {
            return;
        };
        c.pending = false;
        c.sends += 1;
        let backoff = pto.saturating_mul(1 << c.sends.min(8).saturating_sub(1));
        let at = (now + backoff.max(Duration::from_millis(1))).min(c.deadline);
        self.timers.set(Timer::PathChallenge, at);
    }

    /// The retransmission timer of the PATH_CHALLENGE fired
    pub(super) fn on_path_challenge_timeout(&mut self) {
        if let Some(c) = self.path.challenge.as_mut() {
            c.pending = true;
        }
    }

    /// The peer's address changed (RFC 9000 §9.3): called for every authenticated 1-RTT packet
    pub(super) fn on_peer_address(
        &mut self,
        now: Instant,
        remote: SocketAddr,
        pn: u64,
        non_probing: bool,
        dcid: ConnectionId,
    ) {
        let newest = self
            .space(SpaceId::Data)
            .largest_rx
            .is_none_or(|(l, _)| l == pn);
        let prev_dcid = if newest {
            self.rx_dcid.replace(dcid)
        } else {
            self.rx_dcid
        };
        if remote == self.path.remote {
            self.path.heard_since_challenge = true;
            return;
        }
        if self.side.is_client() {
            return;
        }
        // RFC 9000 §9.3: only the highest-numbered non-probing packet moves us, and not before
        // the handshake is confirmed (RFC 9000 §9)
        if !non_probing || !self.handshake_confirmed {
            return;
        }
        if !newest {
            return; // an old, reordered packet: not evidence of a new path
        }
        let old = self.path.remote;
        if self.path.prev_remote == Some(remote) {
            // Back to the last validated address: the move was spurious (RFC 9000 §9.3.3)
            tracing::debug!(side = ?self.side, to = %remote, "peer returned to its validated address");
            self.abandon_validation(false);
            self.path.remote = remote;
            self.path.validated = true;
            self.path.prev_remote = None;
            self.events.push_back(Event::PathChanged { remote });
            return;
        }
        tracing::debug!(side = ?self.side, from = %old, to = %remote, "peer address changed");
        if self.path.validated && self.path.challenge.is_none() {
            self.path.prev_remote = Some(old);
        }
        self.path.remote = remote;
        self.stats.migrations += 1;
        // RFC 9000 §9.3: the new address is unvalidated; anti-amplification applies until the
        // peer answers our PATH_CHALLENGE (RFC 9000 §8.1, §9.3.1)
        self.path.validated = false;
        self.path.bytes_received = self.last_datagram_len;
        self.path.bytes_sent = 0;
        // RFC 9000 §9.4: a new IP address gets a fresh congestion controller and RTT; a NAT
        // rebinding that changed only the port keeps them
        if old.ip() != remote.ip() {
            self.reset_path_estimates(now);
        }
        // RFC 9000 §9.5: a peer that moved with a new CID gets a new CID from us as well, so
        // the two paths cannot be linked (a NAT rebinding keeps its CID, and so do we)
        if prev_dcid.is_some_and(|d| d != dcid) && !self.cids.rotate_peer_cid() {
            tracing::debug!("peer migrated but we have no spare connection ID for it");
        }
        self.abandon_validation(false);
        self.ecn.restart(self.config.ecn);
        self.start_path_challenge(now);
        self.qlog(now, || QlogEvent::PathUpdated { remote });
        self.events.push_back(Event::PathChanged { remote });
    }

    /// Client without a keep-alive: after the peer's ack-eliciting packets stop, send one PING
    ///
    /// A client that only receives has nothing in flight, so when its NAT rebinds the server's
    /// packets go to the dead mapping and neither side ever speaks again (RFC 9000 §9.3: the
    /// server only learns the new address from the client). One PING three PTOs after the last
    /// ack-eliciting packet arms the PTO, whose probes then leave from the new mapping. The
    /// peer's reply is an ACK, which does not re-arm this, so an idle connection stays quiet.
    pub(super) fn arm_receive_stall_probe(&mut self, now: Instant) {
        if self.side.is_server()
            || self.config.keep_alive_interval.is_some()
            || !self.handshake_confirmed
            || self.state != State::Established
        {
            return;
        }
        let pto = self.rtt.pto_base() + self.peer_max_ack_delay;
        self.timers.set(Timer::KeepAlive, now + 3 * pto);
    }

    /// Forget an outstanding challenge; `failed` counts it as a failed validation
    fn abandon_validation(&mut self, failed: bool) {
        if self.path.challenge.take().is_some() && failed {
            self.stats.path_validations_failed += 1;
        }
        self.timers.stop(Timer::PathValidation);
        self.timers.stop(Timer::PathChallenge);
    }

    pub(super) fn on_path_response(&mut self, now: Instant, data: [u8; 8]) {
        // RFC 9000 §8.2.3: a PATH_RESPONSE on any path validates the challenged path
        if self.path.challenge.as_ref().is_none_or(|c| c.data != data) {
            return;
        }
        self.abandon_validation(false);
        self.path.validated = true;
        self.path.prev_remote = None;
        self.path.failed_in_row = 0;
        self.stats.path_validations_succeeded += 1;
        tracing::debug!(side = ?self.side, remote = %self.path.remote, "path validated");
        let remote = self.path.remote;
        self.qlog(now, || QlogEvent::PathValidation {
            remote,
            success: true,
        });
        self.events.push_back(Event::PathValidated { remote });
    }

    /// The path never answered (RFC 9000 §8.2.4)
    pub(super) fn on_path_validation_timeout(&mut self, now: Instant) {
        if self.path.challenge.is_none() {
            return;
        }
        let failed = self.path.remote;
        self.abandon_validation(true);
        self.events.push_back(Event::PathFailed { remote: failed });
        let remote = failed;
        self.qlog(now, || QlogEvent::PathValidation {
            remote,
            success: false,
        });
        if self.side.is_client() {
            // The driver decides: back to the old socket if its address still exists,
            // otherwise on with the new path until the idle timer says otherwise
            tracing::info!(side = ?self.side, remote = %failed, "path abandoned: no PATH_RESPONSE before the validation deadline");
            return;
        }
        match self.path.prev_remote.take() {
            // RFC 9000 §9.3.2: MUST revert to the last validated peer address
            Some(prev) => {
                tracing::info!(side = ?self.side, failed = %failed, back_to = %prev, "path abandoned: the peer's new address did not answer PATH_CHALLENGE");
                self.path.remote = prev;
                self.path.validated = true;
                self.path.failed_in_row = 0;
                self.events.push_back(Event::PathChanged { remote: prev });
            }
            // RFC 9000 §9.3.2 says SHOULD close silently without a validated address. A peer
            // that keeps sending authenticated packets from this address is alive though (a
            // NAT that rebinds again before our challenge got through): challenge it again a
            // few times, and only give up if the address stays silent to challenges
            None if self.state == State::Established
                && self.path.failed_in_row < MAX_UNVALIDATED_RETRIES
                && self.path.heard_since_challenge =>
            {
                self.path.failed_in_row += 1;
                tracing::info!(side = ?self.side, remote = %failed, attempt = self.path.failed_in_row, "path validation failed with no validated address to return to; challenging again");
                self.start_path_challenge(now);
            }
            None if self.state == State::Established || self.state == State::Handshake => {
                tracing::info!(side = ?self.side, remote = %failed, "closing silently: path validation failed and no validated address is left (RFC 9000 §9.3.2)");
                self.error = Some(ConnectionError::TimedOut);
                self.events.push_back(Event::ConnectionLost {
                    reason: ConnectionError::TimedOut,
                });
                self.set_drained();
            }
            None => {}
        }
    }
}
