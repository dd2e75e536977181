//! Our transport parameters, and checking and applying the peer's (RFC 9000 §7.3, §7.4, §18)

use std::time::Duration;

use super::Connection;
use crate::config::{EndpointConfig, TransportConfig};
use crate::error::TransportError;
use crate::shared::{ConnectionId, Side};
use crate::stream::{PeerStreamParams, StreamsConfig};
use crate::transport_params::{TransportParameters, VersionInformation};

/// max_datagram_frame_size we advertise, `None` when datagrams are off
pub(super) fn local_max_datagram_frame_size(config: &TransportConfig) -> Option<u64> {
    config
        .datagram_receive_buffer_size
        .map(|_| u64::from(config.max_udp_payload_size))
}

pub(super) fn streams_config(config: &TransportConfig) -> StreamsConfig {
    StreamsConfig {
        max_concurrent_bidi: config.max_concurrent_bidi_streams,
        max_concurrent_uni: config.max_concurrent_uni_streams,
        stream_receive_window: config.stream_receive_window,
        // Auto-tuning may grow windows up to 4× the configured start
        max_stream_receive_window: config.stream_receive_window.saturating_mul(4),
        receive_window: config.receive_window,
        max_receive_window: config.receive_window.saturating_mul(4),
        send_window: config.send_window,
    }
}

/// The transport parameters we send
///
/// `orig_dst_cid` is set by a server only: it echoes the DCID of the client's first Initial.
pub(crate) fn local_params(
    config: &TransportConfig,
    endpoint: &EndpointConfig,
    side: Side,
    version: u32,
    initial_scid: ConnectionId,
    orig_dst_cid: Option<ConnectionId>,
    reset_token: Option<[u8; 16]>,
) -> TransportParameters {
    TransportParameters {
        max_idle_timeout: config
            .idle_timeout
            .map_or(0, |d| d.as_millis().min(u128::from(u32::MAX)) as u64),
        max_udp_payload_size: u64::from(config.max_udp_payload_size.max(1200)),
        initial_max_data: config.receive_window,
        initial_max_stream_data_bidi_local: config.stream_receive_window,
        initial_max_stream_data_bidi_remote: config.stream_receive_window,
        initial_max_stream_data_uni: config.stream_receive_window,
        initial_max_streams_bidi: config.max_concurrent_bidi_streams,
        initial_max_streams_uni: config.max_concurrent_uni_streams,
        ack_delay_exponent: u64::from(config.ack_delay_exponent()),
        max_ack_delay: config.max_ack_delay_ms(),
        active_connection_id_limit: config.active_connection_id_limit.max(2),
        initial_source_connection_id: Some(initial_scid),
        original_destination_connection_id: if side.is_server() { orig_dst_cid } else { None },
        // RFC 9000 §18.2: only servers send stateless_reset_token
        stateless_reset_token: if side.is_server() { reset_token } else { None },
        max_datagram_frame_size: local_max_datagram_frame_size(config),
        grease_quic_bit: endpoint.grease_quic_bit,
        // RFC 9368 §3: the version we use, and every version we support by preference
        version_information: Some(VersionInformation {
            chosen: version,
            available: endpoint.supported_versions.clone(),
        }),
        ..TransportParameters::default()
    }
}

impl Connection {
    /// Decode, check and apply the peer's transport parameters once TLS has them
    pub(super) fn handle_peer_params(&mut self) -> Result<(), TransportError> {
        if self.peer_params.is_some() {
            return Ok(());
        }
        let Some(bytes) = self.tls.transport_parameters() else {
            return Ok(());
        };
        let params = TransportParameters::decode(!self.side, bytes).map_err(|e| {
            TransportError::TRANSPORT_PARAMETER_ERROR(format!("peer transport parameters: {e}"))
        })?;
        // RFC 9000 §7.3: authenticate the connection IDs used during the handshake
        let peer_initial_cid = self.cids.peer_cid();
        if params.initial_source_connection_id != Some(peer_initial_cid) {
            return Err(TransportError::TRANSPORT_PARAMETER_ERROR(
                "initial_source_connection_id mismatch",
            ));
        }
        if self.side.is_client() {
            if params.original_destination_connection_id != Some(self.orig_dst_cid) {
                return Err(TransportError::TRANSPORT_PARAMETER_ERROR(
                    "original_destination_connection_id mismatch",
                ));
            }
            // RFC 9000 §7.3: retry_source_connection_id is present exactly when we answered a
            // Retry, and names its SCID
            if params.retry_source_connection_id != self.retry_src_cid {
                return Err(TransportError::TRANSPORT_PARAMETER_ERROR(
                    "retry_source_connection_id mismatch",
                ));
            }
            if let Some(token) = params.stateless_reset_token {
                self.cids.set_initial_reset_token(token);
            }
        }
        self.check_version_information(params.version_information.as_ref())?;
        if let Some(pa) = &params.preferred_address {
            self.on_preferred_address_param(pa)?;
        }
        self.apply_peer_params(&params);
        self.peer_params = Some(params);
        Ok(())
    }

    fn apply_peer_params(&mut self, p: &TransportParameters) {
        // RFC 9000 §10.1: the effective idle timeout is the minimum of the non-zero values
        let peer_idle = (p.max_idle_timeout > 0).then(|| Duration::from_millis(p.max_idle_timeout));
        self.idle_timeout = match (self.idle_timeout, peer_idle) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        self.peer_max_ack_delay = Duration::from_millis(p.max_ack_delay);
        self.peer_ack_delay_exponent = p.ack_delay_exponent.min(20) as u8;
        let peer_mtu = p.max_udp_payload_size.clamp(1200, u64::from(u16::MAX)) as u16;
        self.path.mtu = self.path.mtu.min(peer_mtu);
        self.mtud
            .set_ceiling(peer_mtu.min(self.config.max_udp_payload_size));
        self.streams.set_peer_params(&PeerStreamParams {
            initial_max_data: p.initial_max_data,
            initial_max_stream_data_bidi_local: p.initial_max_stream_data_bidi_local,
            initial_max_stream_data_bidi_remote: p.initial_max_stream_data_bidi_remote,
            initial_max_stream_data_uni: p.initial_max_stream_data_uni,
            initial_max_streams_bidi: p.initial_max_streams_bidi,
            initial_max_streams_uni: p.initial_max_streams_uni,
        });
        self.datagrams
            .set_peer_max_frame_size(p.max_datagram_frame_size);
        let max_payload = self.max_1rtt_payload();
        self.datagrams.set_max_packet_payload(max_payload);
    }

    /// RFC 9368 §4: the peer's Version Information must agree with the version in use, and
    /// after a Version Negotiation packet it must show the fallback was genuine
    fn check_version_information(
        &self,
        vi: Option<&VersionInformation>,
    ) -> Result<(), TransportError> {
        if let Some(vi) = vi {
            if vi.chosen != self.expected_peer_chosen_version() {
                return Err(TransportError::VERSION_NEGOTIATION_ERROR(
                    "chosen version differs from the version in use",
                ));
            }
        }
        let Some(original) = self.vn_original else {
            return Ok(());
        };
        let Some(vi) = vi else {
            // RFC 9368 §4: after acting on a VN packet, missing Version Information MUST
            // close the connection (unless the operator relaxed it for legacy servers)
            if self.endpoint_config.strict_version_negotiation {
                return Err(TransportError::VERSION_NEGOTIATION_ERROR(
                    "no version_information after version negotiation",
                ));
            }
            return Ok(());
        };
        // RFC 9368 §4: we must have picked the same version from the server's Other Versions
        // plus the negotiated one; a server that supports what we tried first means the VN
        // packet was forged
        let would_pick = self
            .endpoint_config
            .supported_versions
            .iter()
            .copied()
            .find(|v| *v == self.version || vi.available.contains(v));
        if would_pick != Some(self.version) || vi.available.contains(&original) {
            return Err(TransportError::VERSION_NEGOTIATION_ERROR(
                "version downgrade detected",
            ));
        }
        Ok(())
    }

    /// The peer's active_connection_id_limit (2 when unknown, RFC 9000 §18.2 default)
    pub(super) fn peer_cid_limit(&self) -> u64 {
        self.peer_params
            .as_ref()
            .map_or(2, |p| p.active_connection_id_limit.max(2))
    }
}
