//! The connection's controls for a handshake run by the application (external TLS, see
//! [`crate::crypto::external`])

use crate::crypto::external::{Direction, ExternalSession, ExternalTlsError};
use crate::crypto::{LeveledOutput, Suite};
use crate::packet;
use crate::shared::{RecvMeta, SpaceId};
use std::time::Instant;

use super::recv::{kind, PacketKind};
use super::{Connection, State};

/// Most packets kept while the application has not installed their keys (a peer's flight is
/// about ten packets)
const MAX_PENDING_PACKETS: usize = 32;
/// ... and most bytes
const MAX_PENDING_BYTES: usize = 64 * 1024;

/// Packets that arrived before the application installed their keys: the server's Handshake
/// flight coalesced with its ServerHello, 0-RTT packets before the early secret, 1-RTT packets
/// before the 1-RTT secrets. Like the kernel, the connection keeps a few and processes them
/// once the keys are in (RFC 9000 §5.2.2, RFC 9001 §4.1.4 allow buffering).
#[derive(Debug, Default)]
pub(super) struct PendingPackets {
    packets: Vec<(RecvMeta, Vec<u8>)>,
    bytes: usize,
}

impl Connection {
    /// Move level-labelled TLS output into the CRYPTO streams and install keys
    pub(super) fn drive_leveled_output(&mut self) {
        while let Some(out) = self.tls.poll_leveled() {
            match out {
                LeveledOutput::Handshake(space, data) => {
                    self.space_mut(space).crypto_tx.write(&data);
                }
                LeveledOutput::Keys(space, keys) => {
                    // Later levels' output must not go out under older keys
                    if space as usize > self.crypto_write_space as usize {
                        self.crypto_write_space = space;
                    }
                    self.space_mut(space).keys = Some(keys);
                    if space == SpaceId::Data {
                        self.on_1rtt_keys();
                    }
                }
            }
        }
    }

    /// Whether the application runs this connection's TLS handshake
    pub fn is_external_tls(&self) -> bool {
        self.tls.as_external_ref().is_some()
    }

    fn external(&mut self) -> Result<&mut ExternalSession, ExternalTlsError> {
        self.tls.as_external().ok_or(ExternalTlsError::NotExternal)
    }

    /// Let the connection act on what the application just handed over: queue CRYPTO data,
    /// install keys, check the peer's transport parameters, complete the handshake
    fn external_progress(&mut self, now: Instant) -> Result<(), ExternalTlsError> {
        if let Err(e) = self.drive_tls(now) {
            let reason = e.to_string();
            self.close_with_error(now, e);
            return Err(ExternalTlsError::Failed(reason));
        }
        self.replay_pending_packets(now);
        Ok(())
    }

    /// Whether a packet of `kind` lacks keys the application may still install
    fn awaits_keys(&self, kind: PacketKind) -> bool {
        if !self.is_external_tls() || !matches!(self.state, State::Handshake | State::Established) {
            return false;
        }
        match kind {
            PacketKind::Handshake => {
                let space = self.space(SpaceId::Handshake);
                space.keys.is_none() && !space.discarded
            }
            PacketKind::Short => self.space(SpaceId::Data).keys.is_none(),
            PacketKind::ZeroRtt => {
                self.zero_rtt.header_key().is_none() && self.awaiting_early_keys()
            }
            _ => false,
        }
    }

    /// Keep a packet whose keys the application has not installed yet; false if it is to be
    /// dropped (keys never coming, or the buffer full)
    pub(super) fn keep_pending_packet(
        &mut self,
        meta: &RecvMeta,
        kind: PacketKind,
        packet: &[u8],
    ) -> bool {
        if !self.awaits_keys(kind) {
            return false;
        }
        let pending = &mut self.pending_packets;
        if pending.packets.len() >= MAX_PENDING_PACKETS
            || pending.bytes + packet.len() > MAX_PENDING_BYTES
        {
            return false;
        }
        pending.bytes += packet.len();
        pending.packets.push((*meta, packet.to_vec()));
        true
    }

    /// Process the kept packets whose keys arrived; those still waiting stay, those whose keys
    /// can no longer come (a rejected 0-RTT packet) go through the normal drop path
    fn replay_pending_packets(&mut self, now: Instant) {
        if self.pending_packets.packets.is_empty() {
            return;
        }
        let packets = std::mem::take(&mut self.pending_packets.packets);
        self.pending_packets.bytes = 0;
        let (remote, local_ip) = (self.rx_remote, self.rx_local_ip);
        let cid_len = self.endpoint_config.local_cid_len;
        for (meta, mut bytes) in packets {
            let Ok(hdr) = packet::parse_header(&bytes, cid_len) else {
                continue;
            };
            if self.awaits_keys(kind(&hdr)) {
                self.pending_packets.bytes += bytes.len();
                self.pending_packets.packets.push((meta, bytes));
                continue;
            }
            if !matches!(self.state, State::Handshake | State::Established) {
                break;
            }
            self.rx_remote = meta.remote;
            self.rx_local_ip = meta.local_ip;
            self.handle_packet(now, &meta, &hdr, &mut bytes);
        }
        self.rx_remote = remote;
        self.rx_local_ip = local_ip;
    }

    /// Our encoded transport parameters, for the application's TLS extension 0x39
    pub fn external_local_params(&self) -> Option<&[u8]> {
        Some(self.tls.as_external_ref()?.local_transport_parameters())
    }

    /// Send handshake bytes in CRYPTO frames at `level`
    pub fn external_send_handshake(
        &mut self,
        now: Instant,
        level: SpaceId,
        data: &[u8],
    ) -> Result<(), ExternalTlsError> {
        self.external()?.send_handshake(level, data)?;
        self.external_progress(now)
    }

    /// The next run of handshake bytes the peer sent, with its level
    pub fn external_recv_handshake(&mut self) -> Option<(SpaceId, Vec<u8>)> {
        self.tls.as_external()?.recv_handshake()
    }

    /// Whether handshake bytes from the peer wait for the application
    pub fn external_has_handshake(&self) -> bool {
        self.tls
            .as_external_ref()
            .is_some_and(ExternalSession::has_received)
    }

    /// Install one direction's traffic secret for `level` (Handshake or Data); with both
    /// 1-RTT secrets present the handshake is complete
    pub fn external_install_secret(
        &mut self,
        now: Instant,
        level: SpaceId,
        direction: Direction,
        suite: Suite,
        secret: &[u8],
    ) -> Result<(), ExternalTlsError> {
        self.external()?
            .install_secret(level, direction, suite, secret)?;
        self.external_progress(now)
    }

    /// Install the 0-RTT traffic secret (RFC 9001 §5.6): on a client the Send secret, which
    /// releases written stream data and datagrams in 0-RTT packets once the remembered server
    /// parameters are set ([`Connection::set_remembered_peer_params`]); on a server the
    /// Receive secret, once its TLS accepted early data, which also processes the 0-RTT
    /// packets that arrived before it
    pub fn external_install_early_secret(
        &mut self,
        now: Instant,
        direction: Direction,
        suite: Suite,
        secret: &[u8],
    ) -> Result<(), ExternalTlsError> {
        self.external()?
            .install_early_secret(direction, suite, secret)?;
        self.on_external_early_secret();
        self.external_progress(now)
    }

    /// Client: whether the server accepted 0-RTT, as the application's TLS saw it. Optional:
    /// with it a rejection resends the 0-RTT data at once (and an accepting server that
    /// lowered its limits is caught, RFC 9000 §7.4.1); without it loss detection resends
    /// what the server never acknowledged
    pub fn external_set_early_data_accepted(
        &mut self,
        now: Instant,
        accepted: bool,
    ) -> Result<(), ExternalTlsError> {
        self.external()?.set_early_data_accepted(accepted)?;
        self.on_external_early_verdict(now);
        Ok(())
    }

    /// The peer's encoded transport parameters from its TLS extension 0x39; invalid ones
    /// close the connection
    pub fn external_set_peer_params(
        &mut self,
        now: Instant,
        params: &[u8],
    ) -> Result<(), ExternalTlsError> {
        self.external()?.set_peer_transport_parameters(params)?;
        // Checked now rather than at completion (as for a rustls client, whose early reports
        // may be a ticket's parameters): the kernel refuses bad ones in the setsockopt
        if let Err(e) = self.handle_peer_params() {
            let reason = e.to_string();
            self.close_with_error(now, e);
            return Err(ExternalTlsError::Failed(reason));
        }
        self.external_progress(now)
    }

    /// Record the ALPN protocol the application's TLS negotiated (reported as handshake data)
    pub fn external_set_alpn(&mut self, alpn: Option<Vec<u8>>) -> Result<(), ExternalTlsError> {
        self.external()?.set_alpn(alpn);
        Ok(())
    }
}
