//! 0-RTT (RFC 9001 §4.6, RFC 9000 §7.4.1)
//!
//! 0-RTT packets share the application packet number space with 1-RTT packets (RFC 9000
//! §12.3), so they live in the Data space and its sent-packet map; only their keys (one
//! direction) and long header differ. A client builds Data-space packets as 0-RTT while it has
//! 0-RTT keys and no 1-RTT keys yet.
//!
//! - Client: with `TransportConfig::zero_rtt` and a ticket that allows early data, the stream
//!   and flow-control limits the server granted in the earlier connection (remembered with the
//!   ticket) apply at once, so the application can open streams and write right after
//!   `connect`. If the server rejects 0-RTT, or answers with Retry, every 0-RTT packet counts
//!   as lost (without a congestion signal) and its frames go out again; the application sees
//!   no loss of stream data.
//! - Server: TLS decides acceptance (the endpoint makes TLS refuse early data unless
//!   `TransportConfig::zero_rtt` is set); accepted 0-RTT packets are processed like 1-RTT ones,
//!   except that they cannot move the path or carry frames RFC 9000 §12.4 forbids.
//!
//! External TLS (the kernel model: the application's TLS library decides everything):
//! - Client: the application hands over the server parameters it saved from the earlier
//!   connection ([`Connection::set_remembered_peer_params`], QUIC_SOCKOPT_TRANSPORT_PARAM with
//!   remote=1), so streams and datagrams can be written at once; they wait until it installs
//!   the 0-RTT secret ([`Connection::external_install_early_secret`]) and then leave as 0-RTT.
//!   Only the application's TLS sees whether the server accepted: if it reports the verdict
//!   ([`Connection::external_set_early_data_accepted`]) a rejection is handled as above; if it
//!   never does (the kernel API has no way to), the 0-RTT packets stay in flight after the
//!   handshake and loss detection resends what the server never acknowledged, in 1-RTT
//!   packets (RFC 9001 §4.6.2 leaves it there: a rejecting server simply never processes them).
//! - Server: 0-RTT packets that arrive before the application installed the 0-RTT read secret
//!   wait with the other packets whose keys are missing (a bounded number, RFC 9000 §5.2.2,
//!   see `external_tls`) and are processed once it does; when the handshake completes without
//!   it, they are dropped unread (RFC 9001 §4.6.2: a server that rejected 0-RTT must not
//!   process them).

use std::time::Instant;

use super::{Connection, State};
use crate::crypto::{HeaderKey, PacketKey};
use crate::error::TransportError;
use crate::shared::SpaceId;
use crate::stream::PeerStreamParams;
use crate::transport_params::TransportParameters;

/// Why [`Connection::set_remembered_peer_params`] refused
#[derive(Debug, Clone, Copy, Eq, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum RememberedParamsError {
    /// Only a client sends 0-RTT
    #[error("only a client uses remembered server parameters")]
    NotClient,
    /// The handshake is complete, or packets already went out under the limits in force
    #[error("too late for remembered parameters")]
    TooLate,
}

/// 0-RTT state of one connection
#[derive(Default)]
pub(super) struct ZeroRttState {
    /// Client: sealing keys; server: opening keys
    keys: Option<(Box<dyn HeaderKey>, Box<dyn PacketKey>)>,
    /// The server parameters the client's 0-RTT data was bounded by
    remembered: Option<TransportParameters>,
    /// Client: first Data-space packet number sent with 1-RTT keys; everything below it went
    /// out in 0-RTT packets
    first_1rtt_pn: Option<u64>,
    /// Client: 0-RTT was attempted; server: TLS accepted early data
    pub(super) enabled: bool,
    /// Whether the server accepted 0-RTT, once known
    pub(super) accepted: Option<bool>,
}

impl std::fmt::Debug for ZeroRttState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ZeroRttState")
            .field("keys", &self.keys.is_some())
            .field("enabled", &self.enabled)
            .field("accepted", &self.accepted)
            .finish_non_exhaustive()
    }
}

impl ZeroRttState {
    pub(super) fn header_key(&self) -> Option<&dyn HeaderKey> {
        self.keys.as_ref().map(|(h, _)| &**h)
    }

    pub(super) fn packet_key(&self) -> Option<&dyn PacketKey> {
        self.keys.as_ref().map(|(_, p)| &**p)
    }
}

impl Connection {
    /// Client, at creation: take 0-RTT keys and the remembered limits if TLS can resume with
    /// early data and the configuration asks for 0-RTT
    pub(super) fn init_client_zero_rtt(&mut self) {
        if !self.side.is_client() || !self.config.zero_rtt {
            return;
        }
        let Some(keys) = self.tls.early_crypto() else {
            return;
        };
        let Some(params) = self
            .tls
            .early_transport_parameters()
            .and_then(|b| TransportParameters::decode(!self.side, b).ok())
        else {
            // Without the old limits nothing could be sent anyway
            return;
        };
        self.apply_remembered(params);
        self.zero_rtt.keys = Some(keys);
        self.zero_rtt.enabled = true;
        tracing::debug!("0-RTT enabled by the resumption ticket");
    }

    /// Client: the server's limits of an earlier connection apply until the handshake is done
    fn apply_remembered(&mut self, params: TransportParameters) {
        // RFC 9000 §7.4.1: remembered flow-control and stream limits bound 0-RTT; RFC 9221 §3:
        // so does the remembered max_datagram_frame_size
        self.streams.set_peer_params(&PeerStreamParams {
            initial_max_data: params.initial_max_data,
            initial_max_stream_data_bidi_local: params.initial_max_stream_data_bidi_local,
            initial_max_stream_data_bidi_remote: params.initial_max_stream_data_bidi_remote,
            initial_max_stream_data_uni: params.initial_max_stream_data_uni,
            initial_max_streams_bidi: params.initial_max_streams_bidi,
            initial_max_streams_uni: params.initial_max_streams_uni,
        });
        self.datagrams
            .set_peer_max_frame_size(params.max_datagram_frame_size);
        let payload = self.max_1rtt_payload();
        self.datagrams.set_max_packet_payload(payload);
        self.zero_rtt.remembered = Some(params);
    }

    /// Client: the transport parameters the server sent in an earlier connection, saved by the
    /// application (the kernel's QUIC_SOCKOPT_TRANSPORT_PARAM with remote=1): streams and
    /// datagrams can be written right away within their limits; the data leaves in 0-RTT
    /// packets once the 0-RTT secret is installed (external TLS), else in 1-RTT packets
    ///
    /// Parameters RFC 9000 §7.4.1 forbids remembering (CIDs, tokens, preferred_address,
    /// ack delay) are ignored. Refused once the handshake is complete or a packet of the
    /// application space was sent.
    pub fn set_remembered_peer_params(
        &mut self,
        params: &TransportParameters,
    ) -> Result<(), RememberedParamsError> {
        if !self.side.is_client() {
            return Err(RememberedParamsError::NotClient);
        }
        if self.state != State::Handshake
            || self.space(SpaceId::Data).keys.is_some()
            || self.space(SpaceId::Data).next_pn > 0
        {
            return Err(RememberedParamsError::TooLate);
        }
        self.apply_remembered(params.clone());
        self.start_external_zero_rtt();
        Ok(())
    }

    /// Client, external TLS: 0-RTT starts once both the remembered limits and the 0-RTT
    /// secret are there
    fn start_external_zero_rtt(&mut self) {
        if !self.side.is_client()
            || !self.is_external_tls()
            || self.zero_rtt.keys.is_some()
            || self.zero_rtt.remembered.is_none()
            || self.space(SpaceId::Data).keys.is_some()
        {
            return;
        }
        if let Some(keys) = self.tls.early_crypto() {
            self.zero_rtt.keys = Some(keys);
            self.zero_rtt.enabled = true;
            tracing::debug!("0-RTT enabled by the application's early secret");
        }
    }

    /// External TLS: the application installed the 0-RTT secret
    pub(super) fn on_external_early_secret(&mut self) {
        if self.side.is_client() {
            self.start_external_zero_rtt();
        } else {
            self.poll_server_zero_rtt();
        }
    }

    /// Server, external TLS: a 0-RTT packet without keys may still be accepted by the
    /// application's TLS
    pub(super) fn awaiting_early_keys(&self) -> bool {
        self.side.is_server()
            && self.state == State::Handshake
            && self.tls.is_handshaking()
            && !self.zero_rtt.enabled
    }

    /// Server, after TLS read the ClientHello: install 0-RTT keys if TLS accepted early data
    pub(super) fn poll_server_zero_rtt(&mut self) {
        if !self.side.is_server() || self.zero_rtt.enabled || !self.tls.is_handshaking() {
            return;
        }
        if let Some(keys) = self.tls.early_crypto() {
            self.zero_rtt.keys = Some(keys);
            self.zero_rtt.enabled = true;
            self.zero_rtt.accepted = Some(true);
        }
    }

    /// Client: the next Data-space packet is 0-RTT
    pub(super) fn sending_zero_rtt(&self) -> bool {
        self.side.is_client()
            && self.space(SpaceId::Data).keys.is_none()
            && self.zero_rtt.keys.is_some()
    }

    /// Client: 0-RTT packets may be built now. Not before an Initial has gone out: a 0-RTT
    /// packet ahead of the Initial that creates the server's connection is dropped there. With
    /// external TLS this is the normal order, since a TLS library derives the early secret
    /// while writing the ClientHello, before the application hands the ClientHello over.
    pub(super) fn may_seal_zero_rtt(&self) -> bool {
        self.sending_zero_rtt() && self.space(SpaceId::Initial).next_pn > 0
    }

    /// Client: 1-RTT keys arrived, so no more 0-RTT packets (RFC 9001 §4.6.1)
    pub(super) fn on_client_1rtt_keys(&mut self) {
        if self.side.is_client() && self.zero_rtt.enabled {
            self.zero_rtt.first_1rtt_pn = Some(self.space(SpaceId::Data).next_pn);
            self.zero_rtt.keys = None;
        }
    }

    /// Server: a 1-RTT packet arrived, so the client sends no more 0-RTT (RFC 9001 §4.9.3
    /// allows discarding the keys now; a reordered straggler is retransmitted as 1-RTT)
    pub(super) fn on_server_1rtt_packet(&mut self) {
        if self.side.is_server() {
            self.zero_rtt.keys = None;
        }
    }

    /// Client: after the server rejected 0-RTT, an ACK of a 0-RTT packet is a
    /// PROTOCOL_VIOLATION (RFC 9001 §4.6.2: the client SHOULD check when it can)
    pub(super) fn check_ack_of_rejected_zero_rtt(
        &self,
        ack: &crate::frame::Ack<'_>,
    ) -> Result<(), TransportError> {
        if !self.side.is_client() || self.zero_rtt.accepted != Some(false) {
            return Ok(());
        }
        let Some(first_1rtt) = self.zero_rtt.first_1rtt_pn else {
            return Ok(());
        };
        if ack.iter().any(|r| *r.start() < first_1rtt) {
            return Err(TransportError::PROTOCOL_VIOLATION(
                "acknowledged a 0-RTT packet the server rejected",
            ));
        }
        Ok(())
    }

    /// Whether an acknowledged Data-space packet number was a 1-RTT packet (an ACK of 0-RTT
    /// data confirms nothing about the handshake)
    pub(super) fn is_1rtt_pn(&self, pn: u64) -> bool {
        self.zero_rtt.first_1rtt_pn.is_none_or(|first| pn >= first)
    }

    /// Client, handshake complete: learn whether 0-RTT was accepted, resend its data if not,
    /// and check that an accepting server did not lower the limits we relied on
    pub(super) fn on_zero_rtt_outcome(&mut self) -> Result<(), TransportError> {
        if !self.side.is_client() || !self.zero_rtt.enabled || self.zero_rtt.accepted.is_some() {
            return Ok(());
        }
        let verdict = self.tls.early_data_accepted();
        self.zero_rtt.keys = None;
        if verdict.is_none() && self.is_external_tls() {
            // The application's TLS did not tell (the kernel API cannot): the 0-RTT packets
            // stay in flight, and loss detection resends whatever the server never
            // acknowledges in 1-RTT packets
            tracing::debug!("0-RTT outcome unknown: loss detection covers a rejection");
            return Ok(());
        }
        let accepted = verdict.unwrap_or(false);
        self.zero_rtt.accepted = Some(accepted);
        if !accepted {
            tracing::debug!("0-RTT rejected: resending its data in 1-RTT packets");
            self.requeue_zero_rtt();
            return Ok(());
        }
        self.stats.zero_rtt_bytes_accepted = self.stats.zero_rtt_bytes_sent;
        let (Some(old), Some(new)) = (&self.zero_rtt.remembered, &self.peer_params) else {
            return Ok(());
        };
        // RFC 9000 §7.4.1: a server accepting 0-RTT MUST NOT reduce any limit the client's
        // 0-RTT data may have used
        let reduced = new.initial_max_data < old.initial_max_data
            || new.initial_max_stream_data_bidi_local < old.initial_max_stream_data_bidi_local
            || new.initial_max_stream_data_bidi_remote < old.initial_max_stream_data_bidi_remote
            || new.initial_max_stream_data_uni < old.initial_max_stream_data_uni
            || new.initial_max_streams_bidi < old.initial_max_streams_bidi
            || new.initial_max_streams_uni < old.initial_max_streams_uni
            || new.max_datagram_frame_size.unwrap_or(0) < old.max_datagram_frame_size.unwrap_or(0);
        if reduced {
            return Err(TransportError::PROTOCOL_VIOLATION(
                "server accepted 0-RTT but reduced its limits",
            ));
        }
        Ok(())
    }

    /// The server never processed our 0-RTT packets (rejection, Retry, version change): take
    /// them out of flight without a congestion signal and queue their frames again
    pub(super) fn requeue_zero_rtt(&mut self) {
        let first_1rtt = self.zero_rtt.first_1rtt_pn.unwrap_or(u64::MAX);
        let space = &mut self.spaces[SpaceId::Data as usize];
        let pns: Vec<u64> = space
            .sent
            .iter()
            .map(|(pn, _)| pn)
            .filter(|&pn| pn < first_1rtt)
            .collect();
        for pn in pns {
            let Some(p) = self.spaces[SpaceId::Data as usize].sent.remove(pn) else {
                continue;
            };
            // Bytes in flight are counted from the sent map, so removing the packet is enough
            self.stats.zero_rtt_packets_resent += 1;
            self.on_packet_lost(SpaceId::Data, p.payload);
        }
        if self.spaces[SpaceId::Data as usize].sent.is_empty() {
            self.spaces[SpaceId::Data as usize].time_of_last_ack_eliciting = None;
        }
    }

    /// Client, external TLS: the application's TLS reported the server's 0-RTT verdict; after
    /// the handshake completed it still takes back what a rejecting server never processed
    pub(super) fn on_external_early_verdict(&mut self, now: Instant) {
        // While handshaking the verdict waits for completion; once closed it no longer matters
        if self.state != State::Established {
            return;
        }
        if let Err(e) = self.on_zero_rtt_outcome() {
            self.close_with_error(now, e);
        }
    }

    /// Whether the server accepted our 0-RTT data (client, after the handshake) or accepted
    /// early data (server); `None` if 0-RTT was not attempted or the outcome is not known yet
    pub fn zero_rtt_accepted(&self) -> Option<bool> {
        if self.side.is_server() {
            return self.zero_rtt.accepted;
        }
        if !self.zero_rtt.enabled {
            return None;
        }
        self.zero_rtt.accepted
    }

    /// Client: 0-RTT keys are in use, so streams and datagrams can carry data before the
    /// handshake completes
    pub fn is_zero_rtt_available(&self) -> bool {
        self.sending_zero_rtt()
    }
}
