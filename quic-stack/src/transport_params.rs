//! Transport parameters (RFC 9000 §18), version_information (RFC 9368), grease_quic_bit
//! (RFC 9287) and max_datagram_frame_size (RFC 9221)
//!
//! [`TransportParameters::decode`] validates everything §7.4 and §18.2 ask of a receiver that
//! can be checked from the bytes alone. Checks that need connection state (that
//! initial_source_connection_id matches the packet's SCID, that the server's
//! original_destination_connection_id matches, version downgrade checks) belong to the
//! connection.

use core::net::{Ipv4Addr, Ipv6Addr, SocketAddrV4, SocketAddrV6};

use bytes::BufMut;

use crate::coding::{take, Codec, UnexpectedEnd};
use crate::error::TransportError;
use crate::shared::{ConnectionId, Side};
use crate::varint::{self, VarInt};

/// A server's preferred address (RFC 9000 §18.2, §9.6)
#[derive(Debug, Copy, Clone, Eq, PartialEq)]
pub struct PreferredAddress {
    /// IPv4 address and port; `None` is sent as all zeros
    pub address_v4: Option<SocketAddrV4>,
    /// IPv6 address and port; `None` is sent as all zeros
    pub address_v6: Option<SocketAddrV6>,
    /// Connection ID to use on the new address (1..=20 bytes)
    pub connection_id: ConnectionId,
    /// Stateless reset token for that connection ID
    pub stateless_reset_token: [u8; 16],
}

/// The version_information parameter (RFC 9368 §3)
#[derive(Debug, Clone, Eq, PartialEq)]
pub struct VersionInformation {
    /// The version the sender used for this connection
    pub chosen: u32,
    /// Versions the sender supports, in order of preference
    pub available: Vec<u32>,
}

/// The transport parameters of one endpoint
///
/// Integer fields hold the wire value in the unit the RFC gives (milliseconds for timeouts);
/// absent parameters take the RFC default.
#[derive(Debug, Clone, Eq, PartialEq)]
pub struct TransportParameters {
    /// DCID of the client's first Initial (server only)
    pub original_destination_connection_id: Option<ConnectionId>,
    /// Idle timeout in milliseconds; 0 disables it
    pub max_idle_timeout: u64,
    /// Stateless reset token for the handshake connection ID (server only)
    pub stateless_reset_token: Option<[u8; 16]>,
    /// Largest UDP payload the sender will receive (default 65527, at least 1200)
    pub max_udp_payload_size: u64,
    /// Initial connection-level flow control limit
    pub initial_max_data: u64,
    /// Initial limit for bidirectional streams opened by the sender
    pub initial_max_stream_data_bidi_local: u64,
    /// Initial limit for bidirectional streams opened by the receiver
    pub initial_max_stream_data_bidi_remote: u64,
    /// Initial limit for unidirectional streams opened by the receiver
    pub initial_max_stream_data_uni: u64,
    /// Bidirectional streams the receiver may open
    pub initial_max_streams_bidi: u64,
    /// Unidirectional streams the receiver may open
    pub initial_max_streams_uni: u64,
    /// Exponent scaling the ACK Delay field (default 3, at most 20)
    pub ack_delay_exponent: u64,
    /// Largest delay in milliseconds before sending an ACK (default 25, below 2^14)
    pub max_ack_delay: u64,
    /// The sender does not support active migration
    pub disable_active_migration: bool,
    /// Address to migrate to after the handshake (server only)
    pub preferred_address: Option<PreferredAddress>,
    /// Connection IDs the sender will store (default 2, at least 2)
    pub active_connection_id_limit: u64,
    /// SCID of the sender's first Initial
    pub initial_source_connection_id: Option<ConnectionId>,
    /// SCID of the server's Retry (server only, after a Retry)
    pub retry_source_connection_id: Option<ConnectionId>,
    /// Largest DATAGRAM frame the sender accepts; `None` (like the default, 0) means no
    /// datagrams (RFC 9221 §3)
    pub max_datagram_frame_size: Option<u64>,
    /// The sender accepts packets with the fixed bit cleared (RFC 9287 §3)
    pub grease_quic_bit: bool,
    /// Compatible version negotiation data (RFC 9368)
    pub version_information: Option<VersionInformation>,
}

impl Default for TransportParameters {
    /// The values an endpoint assumes for parameters its peer left out (RFC 9000 §18.2)
    fn default() -> Self {
        Self {
            original_destination_connection_id: None,
            max_idle_timeout: 0,
            stateless_reset_token: None,
            max_udp_payload_size: 65527,
            initial_max_data: 0,
            initial_max_stream_data_bidi_local: 0,
            initial_max_stream_data_bidi_remote: 0,
            initial_max_stream_data_uni: 0,
            initial_max_streams_bidi: 0,
            initial_max_streams_uni: 0,
            ack_delay_exponent: 3,
            max_ack_delay: 25,
            disable_active_migration: false,
            preferred_address: None,
            active_connection_id_limit: 2,
            initial_source_connection_id: None,
            retry_source_connection_id: None,
            max_datagram_frame_size: None,
            grease_quic_bit: false,
            version_information: None,
        }
    }
}

/// Transport parameter identifiers
#[allow(missing_docs)]
pub mod id {
    pub const ORIGINAL_DESTINATION_CONNECTION_ID: u64 = 0x00;
    pub const MAX_IDLE_TIMEOUT: u64 = 0x01;
    pub const STATELESS_RESET_TOKEN: u64 = 0x02;
    pub const MAX_UDP_PAYLOAD_SIZE: u64 = 0x03;
    pub const INITIAL_MAX_DATA: u64 = 0x04;
    pub const INITIAL_MAX_STREAM_DATA_BIDI_LOCAL: u64 = 0x05;
    pub const INITIAL_MAX_STREAM_DATA_BIDI_REMOTE: u64 = 0x06;
    pub const INITIAL_MAX_STREAM_DATA_UNI: u64 = 0x07;
    pub const INITIAL_MAX_STREAMS_BIDI: u64 = 0x08;
    pub const INITIAL_MAX_STREAMS_UNI: u64 = 0x09;
    pub const ACK_DELAY_EXPONENT: u64 = 0x0a;
    pub const MAX_ACK_DELAY: u64 = 0x0b;
    pub const DISABLE_ACTIVE_MIGRATION: u64 = 0x0c;
    pub const PREFERRED_ADDRESS: u64 = 0x0d;
    pub const ACTIVE_CONNECTION_ID_LIMIT: u64 = 0x0e;
    pub const INITIAL_SOURCE_CONNECTION_ID: u64 = 0x0f;
    pub const RETRY_SOURCE_CONNECTION_ID: u64 = 0x10;
    /// RFC 9368
    pub const VERSION_INFORMATION: u64 = 0x11;
    /// RFC 9221
    pub const MAX_DATAGRAM_FRAME_SIZE: u64 = 0x20;
    /// RFC 9287
    pub const GREASE_QUIC_BIT: u64 = 0x2ab2;
}

/// Why a peer's transport parameters were rejected; each becomes TRANSPORT_PARAMETER_ERROR
#[derive(Debug, Copy, Clone, Eq, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum TransportParamsError {
    /// The id/length/value framing ran past the end
    #[error("transport parameters truncated")]
    Truncated,
    /// A parameter's value does not have the form its definition requires
    #[error("malformed transport parameter {0:#x}")]
    Malformed(u64),
    /// A parameter's value is outside its allowed range
    #[error("invalid value for transport parameter {0:#x}")]
    InvalidValue(u64),
    /// A parameter appeared twice (RFC 9000 §7.4)
    #[error("duplicate transport parameter {0:#x}")]
    Duplicate(u64),
    /// A client sent a server-only parameter (RFC 9000 §18.2)
    #[error("server-only transport parameter {0:#x} sent by a client")]
    ServerOnly(u64),
}

impl From<TransportParamsError> for TransportError {
    fn from(e: TransportParamsError) -> Self {
        // RFC 9000 §7.4: invalid or forbidden parameters MUST be TRANSPORT_PARAMETER_ERROR
        Self::TRANSPORT_PARAMETER_ERROR(e.to_string())
    }
}

/// The largest stream count a max_streams parameter may carry (RFC 9000 §4.6)
const MAX_STREAM_COUNT: u64 = 1 << 60;

impl TransportParameters {
    /// Encode every parameter that differs from its default
    pub fn encode<B: BufMut>(&self, buf: &mut B) {
        let d = Self::default();
        let int = |buf: &mut B, id: u64, value: u64, default: u64| {
            if value != default {
                write_param(buf, id, varint::size(value), |b| varint::write(value, b));
            }
        };
        let cid = |buf: &mut B, id: u64, cid: &Option<ConnectionId>| {
            if let Some(c) = cid {
                write_param(buf, id, c.len(), |b| b.put_slice(c));
            }
        };
        let flag = |buf: &mut B, id: u64, set: bool| {
            if set {
                write_param(buf, id, 0, |_| {});
            }
        };
        cid(
            buf,
            id::ORIGINAL_DESTINATION_CONNECTION_ID,
            &self.original_destination_connection_id,
        );
        int(buf, id::MAX_IDLE_TIMEOUT, self.max_idle_timeout, 0);
        if let Some(token) = &self.stateless_reset_token {
            write_param(buf, id::STATELESS_RESET_TOKEN, 16, |b| b.put_slice(token));
        }
        int(
            buf,
            id::MAX_UDP_PAYLOAD_SIZE,
            self.max_udp_payload_size,
            d.max_udp_payload_size,
        );
        int(buf, id::INITIAL_MAX_DATA, self.initial_max_data, 0);
        int(
            buf,
            id::INITIAL_MAX_STREAM_DATA_BIDI_LOCAL,
            self.initial_max_stream_data_bidi_local,
            0,
        );
        int(
            buf,
            id::INITIAL_MAX_STREAM_DATA_BIDI_REMOTE,
            self.initial_max_stream_data_bidi_remote,
            0,
        );
        int(
            buf,
            id::INITIAL_MAX_STREAM_DATA_UNI,
            self.initial_max_stream_data_uni,
            0,
        );
        int(
            buf,
            id::INITIAL_MAX_STREAMS_BIDI,
            self.initial_max_streams_bidi,
            0,
        );
        int(
            buf,
            id::INITIAL_MAX_STREAMS_UNI,
            self.initial_max_streams_uni,
            0,
        );
        int(
            buf,
            id::ACK_DELAY_EXPONENT,
            self.ack_delay_exponent,
            d.ack_delay_exponent,
        );
        int(buf, id::MAX_ACK_DELAY, self.max_ack_delay, d.max_ack_delay);
        flag(
            buf,
            id::DISABLE_ACTIVE_MIGRATION,
            self.disable_active_migration,
        );
        if let Some(pa) = &self.preferred_address {
            let len = 4 + 2 + 16 + 2 + 1 + pa.connection_id.len() + 16;
            write_param(buf, id::PREFERRED_ADDRESS, len, |b| encode_preferred(b, pa));
        }
        int(
            buf,
            id::ACTIVE_CONNECTION_ID_LIMIT,
            self.active_connection_id_limit,
            d.active_connection_id_limit,
        );
        cid(
            buf,
            id::INITIAL_SOURCE_CONNECTION_ID,
            &self.initial_source_connection_id,
        );
        cid(
            buf,
            id::RETRY_SOURCE_CONNECTION_ID,
            &self.retry_source_connection_id,
        );
        if let Some(vi) = &self.version_information {
            let len = 4 * (1 + vi.available.len());
            write_param(buf, id::VERSION_INFORMATION, len, |b| {
                b.put_u32(vi.chosen);
                for &v in &vi.available {
                    b.put_u32(v);
                }
            });
        }
        if let Some(size) = self.max_datagram_frame_size {
            write_param(buf, id::MAX_DATAGRAM_FRAME_SIZE, varint::size(size), |b| {
                varint::write(size, b)
            });
        }
        flag(buf, id::GREASE_QUIC_BIT, self.grease_quic_bit);
    }

    /// Encode, plus one reserved parameter (id 31 * N + 27, RFC 9000 §18.1) carrying `value`
    /// so peers keep ignoring unknown ids; `n` is reduced to keep the id a varint
    pub fn encode_with_grease<B: BufMut>(&self, buf: &mut B, n: u64, value: &[u8]) {
        self.encode(buf);
        let n = n % ((VarInt::MAX.into_inner() - 27) / 31 + 1);
        write_param(buf, 31 * n + 27, value.len(), |b| b.put_slice(value));
    }

    /// Decode and validate parameters sent by `sender`; unknown ids are skipped
    pub fn decode(sender: Side, bytes: &[u8]) -> Result<Self, TransportParamsError> {
        let mut params = Self::default();
        // One bit per known id (ids 0x00..=0x11, 0x20 and 0x2ab2 mapped to bits 0..=19)
        let mut seen = 0u32;
        let mut buf = bytes;
        while !buf.is_empty() {
            let id = varint::read(&mut buf).map_err(|_| TransportParamsError::Truncated)?;
            let len = varint::read(&mut buf).map_err(|_| TransportParamsError::Truncated)?;
            let len = usize::try_from(len).map_err(|_| TransportParamsError::Truncated)?;
            let value = take(&mut buf, len).map_err(|_| TransportParamsError::Truncated)?;
            let Some(bit) = known_bit(id) else {
                // RFC 9000 §7.4.2: unknown parameters MUST be ignored
                continue;
            };
            // RFC 9000 §7.4: a parameter sent twice SHOULD be TRANSPORT_PARAMETER_ERROR
            if seen & (1 << bit) != 0 {
                return Err(TransportParamsError::Duplicate(id));
            }
            seen |= 1 << bit;
            // RFC 9000 §18.2: a client MUST NOT send these; receiving one MUST be an error
            if sender == Side::Client
                && matches!(
                    id,
                    id::ORIGINAL_DESTINATION_CONNECTION_ID
                        | id::PREFERRED_ADDRESS
                        | id::RETRY_SOURCE_CONNECTION_ID
                        | id::STATELESS_RESET_TOKEN
                )
            {
                return Err(TransportParamsError::ServerOnly(id));
            }
            params.set(id, value)?;
        }
        Ok(params)
    }

    /// Store one known parameter's value, checking its form and range
    fn set(&mut self, param: u64, value: &[u8]) -> Result<(), TransportParamsError> {
        let malformed = TransportParamsError::Malformed(param);
        let invalid = TransportParamsError::InvalidValue(param);
        let int = || read_int(value).ok_or(malformed);
        let cid = || ConnectionId::new(value).ok_or(malformed);
        let flag = || value.is_empty().then_some(true).ok_or(malformed);
        match param {
            id::ORIGINAL_DESTINATION_CONNECTION_ID => {
                self.original_destination_connection_id = Some(cid()?)
            }
            id::MAX_IDLE_TIMEOUT => self.max_idle_timeout = int()?,
            id::STATELESS_RESET_TOKEN => {
                self.stateless_reset_token = Some(value.try_into().map_err(|_| malformed)?)
            }
            id::MAX_UDP_PAYLOAD_SIZE => {
                let v = int()?;
                // RFC 9000 §18.2: values below 1200 are invalid
                if v < 1200 {
                    return Err(invalid);
                }
                self.max_udp_payload_size = v;
            }
            id::INITIAL_MAX_DATA => self.initial_max_data = int()?,
            id::INITIAL_MAX_STREAM_DATA_BIDI_LOCAL => {
                self.initial_max_stream_data_bidi_local = int()?
            }
            id::INITIAL_MAX_STREAM_DATA_BIDI_REMOTE => {
                self.initial_max_stream_data_bidi_remote = int()?
            }
            id::INITIAL_MAX_STREAM_DATA_UNI => self.initial_max_stream_data_uni = int()?,
            id::INITIAL_MAX_STREAMS_BIDI | id::INITIAL_MAX_STREAMS_UNI => {
                let v = int()?;
                // RFC 9000 §4.6: a count above 2^60 MUST be TRANSPORT_PARAMETER_ERROR
                if v > MAX_STREAM_COUNT {
                    return Err(invalid);
                }
                if param == id::INITIAL_MAX_STREAMS_BIDI {
                    self.initial_max_streams_bidi = v;
                } else {
                    self.initial_max_streams_uni = v;
                }
            }
            id::ACK_DELAY_EXPONENT => {
                let v = int()?;
                // RFC 9000 §18.2: values above 20 are invalid
                if v > 20 {
                    return Err(invalid);
                }
                self.ack_delay_exponent = v;
            }
            id::MAX_ACK_DELAY => {
                let v = int()?;
                // RFC 9000 §18.2: values of 2^14 or more are invalid
                if v >= 1 << 14 {
                    return Err(invalid);
                }
                self.max_ack_delay = v;
            }
            id::DISABLE_ACTIVE_MIGRATION => self.disable_active_migration = flag()?,
            id::PREFERRED_ADDRESS => {
                self.preferred_address = Some(decode_preferred(value).ok_or(malformed)?)
            }
            id::ACTIVE_CONNECTION_ID_LIMIT => {
                let v = int()?;
                // RFC 9000 §18.2: a value below 2 MUST be TRANSPORT_PARAMETER_ERROR
                if v < 2 {
                    return Err(invalid);
                }
                self.active_connection_id_limit = v;
            }
            id::INITIAL_SOURCE_CONNECTION_ID => self.initial_source_connection_id = Some(cid()?),
            id::RETRY_SOURCE_CONNECTION_ID => self.retry_source_connection_id = Some(cid()?),
            id::VERSION_INFORMATION => {
                self.version_information = Some(decode_version_info(value).ok_or(malformed)?)
            }
            id::MAX_DATAGRAM_FRAME_SIZE => self.max_datagram_frame_size = Some(int()?),
            id::GREASE_QUIC_BIT => self.grease_quic_bit = flag()?,
            _ => {}
        }
        Ok(())
    }
}

/// Bit index used for duplicate detection, for ids this module understands
fn known_bit(param: u64) -> Option<u32> {
    match param {
        0x00..=0x11 => Some(param as u32),
        id::MAX_DATAGRAM_FRAME_SIZE => Some(18),
        id::GREASE_QUIC_BIT => Some(19),
        _ => None,
    }
}

fn write_param<B: BufMut>(buf: &mut B, param: u64, len: usize, value: impl FnOnce(&mut B)) {
    varint::write(param, buf);
    varint::write(len as u64, buf);
    value(buf);
}

/// A value that is exactly one varint
fn read_int(mut value: &[u8]) -> Option<u64> {
    let v = varint::read(&mut value).ok()?;
    value.is_empty().then_some(v)
}

fn encode_preferred<B: BufMut>(buf: &mut B, pa: &PreferredAddress) {
    let v4 = pa
        .address_v4
        .unwrap_or(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 0));
    buf.put_slice(&v4.ip().octets());
    buf.put_u16(v4.port());
    let v6 = pa
        .address_v6
        .unwrap_or(SocketAddrV6::new(Ipv6Addr::UNSPECIFIED, 0, 0, 0));
    buf.put_slice(&v6.ip().octets());
    buf.put_u16(v6.port());
    buf.put_u8(pa.connection_id.len() as u8);
    buf.put_slice(&pa.connection_id);
    buf.put_slice(&pa.stateless_reset_token);
}

fn decode_preferred(mut value: &[u8]) -> Option<PreferredAddress> {
    let buf = &mut value;
    let arr = |buf: &mut &[u8]| -> Result<[u8; 16], UnexpectedEnd> {
        let mut out = [0; 16];
        out.copy_from_slice(take(buf, 16)?);
        Ok(out)
    };
    let v4: [u8; 4] = take(buf, 4).ok()?.try_into().ok()?;
    let v4_port = u16::decode(buf).ok()?;
    let v6 = arr(buf).ok()?;
    let v6_port = u16::decode(buf).ok()?;
    let cid_len = usize::from(u8::decode(buf).ok()?);
    // RFC 9000 §18.2: a server using zero-length CIDs MUST NOT send a preferred address; the
    // CID length is otherwise 1..=20
    if cid_len == 0 {
        return None;
    }
    let connection_id = ConnectionId::new(take(buf, cid_len).ok()?)?;
    let stateless_reset_token = arr(buf).ok()?;
    if !buf.is_empty() {
        return None;
    }
    let v4 = SocketAddrV4::new(v4.into(), v4_port);
    let v6 = SocketAddrV6::new(v6.into(), v6_port, 0, 0);
    Some(PreferredAddress {
        // An all-zero address and port means that family is absent
        address_v4: (!v4.ip().is_unspecified() || v4.port() != 0).then_some(v4),
        address_v6: (!v6.ip().is_unspecified() || v6.port() != 0).then_some(v6),
        connection_id,
        stateless_reset_token,
    })
}

fn decode_version_info(value: &[u8]) -> Option<VersionInformation> {
    // RFC 9368 §3: a list of 32-bit versions, at least the chosen one; a zero chosen or
    // available version MUST be treated as a parsing failure
    if value.is_empty() || value.len() % 4 != 0 {
        return None;
    }
    let mut versions = value
        .chunks_exact(4)
        .map(|c| u32::from_be_bytes([c[0], c[1], c[2], c[3]]));
    let chosen = versions.next()?;
    let available: Vec<u32> = versions.collect();
    if chosen == 0 || available.contains(&0) {
        return None;
    }
    Some(VersionInformation { chosen, available })
}

#[cfg(test)]
mod tests;
