//! The uapi structs of `linux/quic.h` with their exact x86_64 byte layouts
//!
//! Each struct has `SIZE`, `encode() -> [u8; SIZE]` and `decode(&[u8])`. Decoding follows the
//! kernel's option handlers: it copies `min(len, SIZE)` bytes and zero-fills the rest, so a
//! shorter (older) struct is accepted and extra trailing bytes are ignored. Decoding therefore
//! never fails; range checks belong to [`super::options`]. All integers are little-endian
//! (host order on every Linux target we serve).

use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};

use super::consts::net::{AF_INET, AF_INET6, SOCKADDR_IN6_LEN, SOCKADDR_IN_LEN};
use super::consts::QUIC_CLOSE_PHRASE_BUFFER_SIZE;
use super::consts::QUIC_CRYPTO_SECRET_BUFFER_SIZE;
use super::Errno;

/// Copy `min(src.len(), N)` bytes and zero the rest (the kernel's short-struct rule)
pub(crate) fn padded<const N: usize>(src: &[u8]) -> [u8; N] {
    let mut out = [0u8; N];
    let n = src.len().min(N);
    out[..n].copy_from_slice(&src[..n]);
    out
}

// Fixed-offset readers on full-size arrays: the offsets are constants inside the array, so
// the `try_into` cannot fail; `unwrap_or_default` keeps the no-panic rule without a branch
// that matters.
fn u16_at<const N: usize>(b: &[u8; N], off: usize) -> u16 {
    u16::from_le_bytes(b[off..off + 2].try_into().unwrap_or_default())
}
fn u32_at<const N: usize>(b: &[u8; N], off: usize) -> u32 {
    u32::from_le_bytes(b[off..off + 4].try_into().unwrap_or_default())
}
fn u64_at<const N: usize>(b: &[u8; N], off: usize) -> u64 {
    u64::from_le_bytes(b[off..off + 8].try_into().unwrap_or_default())
}
fn put<const N: usize>(b: &mut [u8; N], off: usize, v: &[u8]) {
    b[off..off + v.len()].copy_from_slice(v);
}

/// `struct quic_stream_info` (16 B): stream id and MSG_QUIC_STREAM_* flags
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StreamInfo {
    /// Stream id; -1 means "the active stream, else the next one"
    pub stream_id: i64,
    /// MSG_QUIC_STREAM_* flags
    pub stream_flags: u32,
}

impl StreamInfo {
    /// `sizeof(struct quic_stream_info)`, padding included
    pub const SIZE: usize = 16;
    /// Byte image
    pub fn encode(&self) -> [u8; Self::SIZE] {
        let mut b = [0u8; Self::SIZE];
        put(&mut b, 0, &self.stream_id.to_le_bytes());
        put(&mut b, 8, &self.stream_flags.to_le_bytes());
        b
    }
    /// Parse, zero-filling a short input
    pub fn decode(src: &[u8]) -> Self {
        let b = padded::<{ Self::SIZE }>(src);
        Self {
            stream_id: u64_at(&b, 0) as i64,
            stream_flags: u32_at(&b, 8),
        }
    }
}

/// `struct quic_handshake_info` (1 B): the crypto level of handshake bytes
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct HandshakeInfo {
    /// QUIC_CRYPTO_* level
    pub crypto_level: u8,
}

impl HandshakeInfo {
    /// `sizeof(struct quic_handshake_info)`
    pub const SIZE: usize = 1;
    /// Byte image
    pub fn encode(&self) -> [u8; Self::SIZE] {
        [self.crypto_level]
    }
    /// Parse, zero-filling a short input
    pub fn decode(src: &[u8]) -> Self {
        Self {
            crypto_level: src.first().copied().unwrap_or(0),
        }
    }
}

/// `struct quic_transport_param` (56 B); times in microseconds
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[allow(missing_docs)] // field names are the uapi's
pub struct TransportParam {
    pub remote: u8,
    pub disable_active_migration: u8,
    pub grease_quic_bit: u8,
    pub stateless_reset: u8,
    pub disable_1rtt_encryption: u8,
    pub disable_compatible_version: u8,
    pub active_connection_id_limit: u8,
    pub ack_delay_exponent: u8,
    pub max_datagram_frame_size: u16,
    pub max_udp_payload_size: u16,
    pub max_idle_timeout: u32,
    pub max_ack_delay: u32,
    pub max_streams_bidi: u16,
    pub max_streams_uni: u16,
    pub max_data: u64,
    pub max_stream_data_bidi_local: u64,
    pub max_stream_data_bidi_remote: u64,
    pub max_stream_data_uni: u64,
}

impl TransportParam {
    /// `sizeof(struct quic_transport_param)`
    pub const SIZE: usize = 56;
    /// Byte image
    pub fn encode(&self) -> [u8; Self::SIZE] {
        let mut b = [0u8; Self::SIZE];
        b[0] = self.remote;
        b[1] = self.disable_active_migration;
        b[2] = self.grease_quic_bit;
        b[3] = self.stateless_reset;
        b[4] = self.disable_1rtt_encryption;
        b[5] = self.disable_compatible_version;
        b[6] = self.active_connection_id_limit;
        b[7] = self.ack_delay_exponent;
        put(&mut b, 8, &self.max_datagram_frame_size.to_le_bytes());
        put(&mut b, 10, &self.max_udp_payload_size.to_le_bytes());
        put(&mut b, 12, &self.max_idle_timeout.to_le_bytes());
        put(&mut b, 16, &self.max_ack_delay.to_le_bytes());
        put(&mut b, 20, &self.max_streams_bidi.to_le_bytes());
        put(&mut b, 22, &self.max_streams_uni.to_le_bytes());
        put(&mut b, 24, &self.max_data.to_le_bytes());
        put(&mut b, 32, &self.max_stream_data_bidi_local.to_le_bytes());
        put(&mut b, 40, &self.max_stream_data_bidi_remote.to_le_bytes());
        put(&mut b, 48, &self.max_stream_data_uni.to_le_bytes());
        b
    }
    /// Parse, zero-filling a short input
    pub fn decode(src: &[u8]) -> Self {
        let b = padded::<{ Self::SIZE }>(src);
        Self {
            remote: b[0],
            disable_active_migration: b[1],
            grease_quic_bit: b[2],
            stateless_reset: b[3],
            disable_1rtt_encryption: b[4],
            disable_compatible_version: b[5],
            active_connection_id_limit: b[6],
            ack_delay_exponent: b[7],
            max_datagram_frame_size: u16_at(&b, 8),
            max_udp_payload_size: u16_at(&b, 10),
            max_idle_timeout: u32_at(&b, 12),
            max_ack_delay: u32_at(&b, 16),
            max_streams_bidi: u16_at(&b, 20),
            max_streams_uni: u16_at(&b, 22),
            max_data: u64_at(&b, 24),
            max_stream_data_bidi_local: u64_at(&b, 32),
            max_stream_data_bidi_remote: u64_at(&b, 40),
            max_stream_data_uni: u64_at(&b, 48),
        }
    }

    /// The peer's parameters as the core remembers them for 0-RTT (RFC 9000 §7.4.1: only the
    /// limits matter; times are microseconds here and milliseconds on the wire)
    pub fn to_core(&self) -> crate::transport_params::TransportParameters {
        crate::transport_params::TransportParameters {
            max_idle_timeout: u64::from(self.max_idle_timeout) / 1000,
            max_udp_payload_size: u64::from(self.max_udp_payload_size),
            initial_max_data: self.max_data,
            initial_max_stream_data_bidi_local: self.max_stream_data_bidi_local,
            initial_max_stream_data_bidi_remote: self.max_stream_data_bidi_remote,
            initial_max_stream_data_uni: self.max_stream_data_uni,
            initial_max_streams_bidi: u64::from(self.max_streams_bidi),
            initial_max_streams_uni: u64::from(self.max_streams_uni),
            ack_delay_exponent: u64::from(self.ack_delay_exponent),
            max_ack_delay: u64::from(self.max_ack_delay) / 1000,
            disable_active_migration: self.disable_active_migration != 0,
            active_connection_id_limit: u64::from(self.active_connection_id_limit),
            max_datagram_frame_size: (self.max_datagram_frame_size != 0)
                .then_some(u64::from(self.max_datagram_frame_size)),
            grease_quic_bit: self.grease_quic_bit != 0,
            ..Default::default()
        }
    }

    /// The struct a client caches after the handshake (getsockopt with remote=1); values too
    /// large for the uapi's narrow fields saturate
    pub fn from_core(p: &crate::transport_params::TransportParameters) -> Self {
        let sat16 = |v: u64| u16::try_from(v).unwrap_or(u16::MAX);
        let sat32 = |v: u64| u32::try_from(v).unwrap_or(u32::MAX);
        Self {
            remote: 1,
            disable_active_migration: u8::from(p.disable_active_migration),
            grease_quic_bit: u8::from(p.grease_quic_bit),
            stateless_reset: u8::from(p.stateless_reset_token.is_some()),
            disable_1rtt_encryption: 0,
            disable_compatible_version: 0,
            active_connection_id_limit: u8::try_from(p.active_connection_id_limit)
                .unwrap_or(u8::MAX),
            ack_delay_exponent: u8::try_from(p.ack_delay_exponent).unwrap_or(u8::MAX),
            max_datagram_frame_size: sat16(p.max_datagram_frame_size.unwrap_or(0)),
            max_udp_payload_size: sat16(p.max_udp_payload_size),
            max_idle_timeout: sat32(p.max_idle_timeout.saturating_mul(1000)),
            max_ack_delay: sat32(p.max_ack_delay.saturating_mul(1000)),
            max_streams_bidi: sat16(p.initial_max_streams_bidi),
            max_streams_uni: sat16(p.initial_max_streams_uni),
            max_data: p.initial_max_data,
            max_stream_data_bidi_local: p.initial_max_stream_data_bidi_local,
            max_stream_data_bidi_remote: p.initial_max_stream_data_bidi_remote,
            max_stream_data_uni: p.initial_max_stream_data_uni,
        }
    }
}

/// `struct quic_config` (28 B); intervals and RTT in microseconds
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[allow(missing_docs)] // field names are the uapi's
pub struct Config {
    pub version: u32,
    pub plpmtud_probe_interval: u32,
    pub initial_smoothed_rtt: u32,
    pub payload_cipher_type: u32,
    pub congestion_control_algo: u8,
    pub validate_peer_address: u8,
    pub stream_data_nodelay: u8,
    pub receive_session_ticket: u8,
    pub certificate_request: u8,
    pub keepalive_probe_interval: u32,
}

impl Config {
    /// `sizeof(struct quic_config)`
    pub const SIZE: usize = 28;
    /// Byte image (reserved bytes zero)
    pub fn encode(&self) -> [u8; Self::SIZE] {
        let mut b = [0u8; Self::SIZE];
        put(&mut b, 0, &self.version.to_le_bytes());
        put(&mut b, 4, &self.plpmtud_probe_interval.to_le_bytes());
        put(&mut b, 8, &self.initial_smoothed_rtt.to_le_bytes());
        put(&mut b, 12, &self.payload_cipher_type.to_le_bytes());
        b[16] = self.congestion_control_algo;
        b[17] = self.validate_peer_address;
        b[18] = self.stream_data_nodelay;
        b[19] = self.receive_session_ticket;
        b[20] = self.certificate_request;
        put(&mut b, 24, &self.keepalive_probe_interval.to_le_bytes());
        b
    }
    /// Parse, zero-filling a short input
    pub fn decode(src: &[u8]) -> Self {
        let b = padded::<{ Self::SIZE }>(src);
        Self {
            version: u32_at(&b, 0),
            plpmtud_probe_interval: u32_at(&b, 4),
            initial_smoothed_rtt: u32_at(&b, 8),
            payload_cipher_type: u32_at(&b, 12),
            congestion_control_algo: b[16],
            validate_peer_address: b[17],
            stream_data_nodelay: b[18],
            receive_session_ticket: b[19],
            certificate_request: b[20],
            keepalive_probe_interval: u32_at(&b, 24),
        }
    }
}

/// `struct quic_crypto_secret` (56 B): one TLS traffic secret for one direction and level
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CryptoSecret {
    /// 1 = transmit, 0 = receive
    pub send: u8,
    /// QUIC_CRYPTO_* level
    pub level: u8,
    /// TLS_CIPHER_* id
    pub cipher_type: u32,
    /// The secret; 32 bytes used for SHA-256 suites, 48 for AES-256-GCM
    pub secret: [u8; QUIC_CRYPTO_SECRET_BUFFER_SIZE],
}

impl Default for CryptoSecret {
    fn default() -> Self {
        Self {
            send: 0,
            level: 0,
            cipher_type: 0,
            secret: [0; QUIC_CRYPTO_SECRET_BUFFER_SIZE],
        }
    }
}

impl CryptoSecret {
    /// `sizeof(struct quic_crypto_secret)`
    pub const SIZE: usize = 56;
    /// Byte image
    pub fn encode(&self) -> [u8; Self::SIZE] {
        let mut b = [0u8; Self::SIZE];
        b[0] = self.send;
        b[1] = self.level;
        put(&mut b, 4, &self.cipher_type.to_le_bytes());
        put(&mut b, 8, &self.secret);
        b
    }
    /// Parse, zero-filling a short input
    pub fn decode(src: &[u8]) -> Self {
        let b = padded::<{ Self::SIZE }>(src);
        let mut secret = [0u8; QUIC_CRYPTO_SECRET_BUFFER_SIZE];
        secret.copy_from_slice(&b[8..]);
        Self {
            send: b[0],
            level: b[1],
            cipher_type: u32_at(&b, 4),
            secret,
        }
    }
    /// Secret length the cipher uses (its hash output size); None for an unknown cipher
    pub fn secret_len(&self) -> Option<usize> {
        use super::consts::*;
        match self.cipher_type {
            TLS_CIPHER_AES_GCM_128 | TLS_CIPHER_AES_CCM_128 | TLS_CIPHER_CHACHA20_POLY1305 => {
                Some(32)
            }
            TLS_CIPHER_AES_GCM_256 => Some(48),
            _ => None,
        }
    }
}

/// `struct quic_errinfo` (16 B): a stream and an application error code
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ErrInfo {
    /// Stream id
    pub stream_id: i64,
    /// Application error code
    pub errcode: u32,
}

impl ErrInfo {
    /// `sizeof(struct quic_errinfo)`
    pub const SIZE: usize = 16;
    /// Byte image
    pub fn encode(&self) -> [u8; Self::SIZE] {
        let mut b = [0u8; Self::SIZE];
        put(&mut b, 0, &self.stream_id.to_le_bytes());
        put(&mut b, 8, &self.errcode.to_le_bytes());
        b
    }
    /// Parse, zero-filling a short input
    pub fn decode(src: &[u8]) -> Self {
        let b = padded::<{ Self::SIZE }>(src);
        Self {
            stream_id: u64_at(&b, 0) as i64,
            errcode: u32_at(&b, 8),
        }
    }
}

/// `struct quic_connection_id_info` (12 B)
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ConnectionIdInfo {
    /// 1 = destination CID set, 0 = source
    pub dest: u8,
    /// Number of the CID in use (set: switch to it if non-zero)
    pub active: u32,
    /// Lowest live number (set: retire all below)
    pub prior_to: u32,
}

impl ConnectionIdInfo {
    /// `sizeof(struct quic_connection_id_info)`
    pub const SIZE: usize = 12;
    /// Byte image
    pub fn encode(&self) -> [u8; Self::SIZE] {
        let mut b = [0u8; Self::SIZE];
        b[0] = self.dest;
        put(&mut b, 4, &self.active.to_le_bytes());
        put(&mut b, 8, &self.prior_to.to_le_bytes());
        b
    }
    /// Parse, zero-filling a short input
    pub fn decode(src: &[u8]) -> Self {
        let b = padded::<{ Self::SIZE }>(src);
        Self {
            dest: b[0],
            active: u32_at(&b, 4),
            prior_to: u32_at(&b, 8),
        }
    }
}

/// `struct quic_event_option` (2 B)
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct EventOption {
    /// QUIC_EVENT_* type
    pub event_type: u8,
    /// Non-zero = enabled
    pub on: u8,
}

impl EventOption {
    /// `sizeof(struct quic_event_option)`
    pub const SIZE: usize = 2;
    /// Byte image
    pub fn encode(&self) -> [u8; Self::SIZE] {
        [self.event_type, self.on]
    }
    /// Parse, zero-filling a short input
    pub fn decode(src: &[u8]) -> Self {
        let b = padded::<{ Self::SIZE }>(src);
        Self {
            event_type: b[0],
            on: b[1],
        }
    }
}

/// `struct quic_stream_update` (24 B): payload of QUIC_EVENT_STREAM_UPDATE
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StreamUpdate {
    /// Stream id
    pub id: i64,
    /// `stream_state::*`
    pub state: u8,
    /// Application error code (reset states)
    pub errcode: u32,
    /// Final size (SIZE_KNOWN, RECVD, RESET_RECVD)
    pub finalsz: u64,
}

impl StreamUpdate {
    /// `sizeof(struct quic_stream_update)`
    pub const SIZE: usize = 24;
    /// Byte image
    pub fn encode(&self) -> [u8; Self::SIZE] {
        let mut b = [0u8; Self::SIZE];
        put(&mut b, 0, &self.id.to_le_bytes());
        b[8] = self.state;
        put(&mut b, 12, &self.errcode.to_le_bytes());
        put(&mut b, 16, &self.finalsz.to_le_bytes());
        b
    }
    /// Parse, zero-filling a short input
    pub fn decode(src: &[u8]) -> Self {
        let b = padded::<{ Self::SIZE }>(src);
        Self {
            id: u64_at(&b, 0) as i64,
            state: b[8],
            errcode: u32_at(&b, 12),
            finalsz: u64_at(&b, 16),
        }
    }
}

/// `struct quic_stream_max_data` (16 B): payload of QUIC_EVENT_STREAM_MAX_DATA
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StreamMaxData {
    /// Stream id
    pub id: i64,
    /// New send limit
    pub max_data: u64,
}

impl StreamMaxData {
    /// `sizeof(struct quic_stream_max_data)`
    pub const SIZE: usize = 16;
    /// Byte image
    pub fn encode(&self) -> [u8; Self::SIZE] {
        let mut b = [0u8; Self::SIZE];
        put(&mut b, 0, &self.id.to_le_bytes());
        put(&mut b, 8, &self.max_data.to_le_bytes());
        b
    }
    /// Parse, zero-filling a short input
    pub fn decode(src: &[u8]) -> Self {
        let b = padded::<{ Self::SIZE }>(src);
        Self {
            id: u64_at(&b, 0) as i64,
            max_data: u64_at(&b, 8),
        }
    }
}

/// `struct quic_connection_close` (72 B): error code, frame type and a NUL-terminated phrase
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnectionClose {
    /// Transport or application error code
    pub errcode: u32,
    /// Frame type that caused a transport error
    pub frame: u8,
    /// Phrase bytes, NUL-terminated inside the 64-byte buffer
    pub phrase: [u8; QUIC_CLOSE_PHRASE_BUFFER_SIZE],
}

impl Default for ConnectionClose {
    fn default() -> Self {
        Self {
            errcode: 0,
            frame: 0,
            phrase: [0; QUIC_CLOSE_PHRASE_BUFFER_SIZE],
        }
    }
}

impl ConnectionClose {
    /// `sizeof(struct quic_connection_close)`
    pub const SIZE: usize = 72;
    /// A close with a phrase, truncated to 63 bytes so the NUL always fits
    pub fn new(errcode: u32, frame: u8, phrase: &[u8]) -> Self {
        let mut c = Self {
            errcode,
            frame,
            ..Self::default()
        };
        let n = phrase.len().min(QUIC_CLOSE_PHRASE_BUFFER_SIZE - 1);
        c.phrase[..n].copy_from_slice(&phrase[..n]);
        c
    }
    /// The phrase up to its NUL
    pub fn phrase_bytes(&self) -> &[u8] {
        let end = self
            .phrase
            .iter()
            .position(|&c| c == 0)
            .unwrap_or(self.phrase.len());
        &self.phrase[..end]
    }
    /// Byte image
    pub fn encode(&self) -> [u8; Self::SIZE] {
        let mut b = [0u8; Self::SIZE];
        put(&mut b, 0, &self.errcode.to_le_bytes());
        b[4] = self.frame;
        put(&mut b, 8, &self.phrase);
        b
    }
    /// Parse, zero-filling a short input
    pub fn decode(src: &[u8]) -> Self {
        let b = padded::<{ Self::SIZE }>(src);
        let mut phrase = [0u8; QUIC_CLOSE_PHRASE_BUFFER_SIZE];
        phrase.copy_from_slice(&b[8..]);
        Self {
            errcode: u32_at(&b, 0),
            frame: b[4],
            phrase,
        }
    }
}

/// `sizeof(union quic_event)`: the largest member is `quic_connection_close`
pub const QUIC_EVENT_UNION_SIZE: usize = 72;

/// `CMSG_ALIGN(len)` on 64-bit Linux
pub const fn cmsg_align(len: usize) -> usize {
    (len + 7) & !7
}
/// `sizeof(struct cmsghdr)` on 64-bit Linux
pub const CMSGHDR_LEN: usize = 16;
/// `CMSG_SPACE(len)` on 64-bit Linux
pub const fn cmsg_space(len: usize) -> usize {
    CMSGHDR_LEN + cmsg_align(len)
}
/// `CMSG_LEN(len)` on 64-bit Linux
pub const fn cmsg_len(len: usize) -> usize {
    CMSGHDR_LEN + len
}

/// Parse a raw `sockaddr_in`/`sockaddr_in6` as passed to bind/connect/setsockopt
///
/// EINVAL if too short for its family; EAFNOSUPPORT for any other family. A v4-mapped IPv6
/// address stays IPv6 here; callers that store plain v4 (as the kernel does) use
/// [`canonical_addr`].
pub fn sockaddr_decode(raw: &[u8]) -> Result<SocketAddr, Errno> {
    if raw.len() < 2 {
        return Err(Errno::EINVAL);
    }
    let family = u16::from_le_bytes([raw[0], raw[1]]);
    match family {
        AF_INET => {
            if raw.len() < SOCKADDR_IN_LEN {
                return Err(Errno::EINVAL);
            }
            let port = u16::from_be_bytes([raw[2], raw[3]]);
            let ip = Ipv4Addr::new(raw[4], raw[5], raw[6], raw[7]);
            Ok(SocketAddr::V4(SocketAddrV4::new(ip, port)))
        }
        AF_INET6 => {
            let b = match raw.get(..SOCKADDR_IN6_LEN) {
                Some(b) => padded::<SOCKADDR_IN6_LEN>(b),
                None => return Err(Errno::EINVAL),
            };
            let port = u16::from_be_bytes([b[2], b[3]]);
            let flowinfo = u32::from_be_bytes([b[4], b[5], b[6], b[7]]);
            let mut ip = [0u8; 16];
            ip.copy_from_slice(&b[8..24]);
            let scope = u32_at(&b, 24);
            Ok(SocketAddr::V6(SocketAddrV6::new(
                Ipv6Addr::from(ip),
                port,
                flowinfo,
                scope,
            )))
        }
        _ => Err(Errno::EAFNOSUPPORT),
    }
}

/// Encode a socket address as a raw Linux `sockaddr_in` (16 B) or `sockaddr_in6` (28 B)
pub fn sockaddr_encode(addr: &SocketAddr) -> Vec<u8> {
    match addr {
        SocketAddr::V4(a) => {
            let mut b = vec![0u8; SOCKADDR_IN_LEN];
            b[0..2].copy_from_slice(&AF_INET.to_le_bytes());
            b[2..4].copy_from_slice(&a.port().to_be_bytes());
            b[4..8].copy_from_slice(&a.ip().octets());
            b
        }
        SocketAddr::V6(a) => {
            let mut b = vec![0u8; SOCKADDR_IN6_LEN];
            b[0..2].copy_from_slice(&AF_INET6.to_le_bytes());
            b[2..4].copy_from_slice(&a.port().to_be_bytes());
            b[4..8].copy_from_slice(&a.flowinfo().to_be_bytes());
            b[8..24].copy_from_slice(&a.ip().octets());
            b[24..28].copy_from_slice(&a.scope_id().to_le_bytes());
            b
        }
    }
}

/// The address as the kernel stores it: v4-mapped IPv6 becomes plain IPv4
pub fn canonical_addr(addr: SocketAddr) -> SocketAddr {
    match addr {
        SocketAddr::V6(a) => match a.ip().to_ipv4_mapped() {
            Some(v4) => SocketAddr::V4(SocketAddrV4::new(v4, a.port())),
            None => addr,
        },
        v4 => v4,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transport_param_survives_the_core_round_trip() {
        let tp = TransportParam {
            remote: 1,
            disable_active_migration: 1,
            active_connection_id_limit: 4,
            ack_delay_exponent: 5,
            max_datagram_frame_size: 1500,
            max_udp_payload_size: 1400,
            max_idle_timeout: 20_000_000,
            max_ack_delay: 30_000,
            max_streams_bidi: 7,
            max_streams_uni: 9,
            max_data: 123_456,
            max_stream_data_bidi_local: 1_000,
            max_stream_data_bidi_remote: 2_000,
            max_stream_data_uni: 3_000,
            ..TransportParam::default()
        };
        let core = tp.to_core();
        assert_eq!((core.max_idle_timeout, core.max_ack_delay), (20_000, 30));
        assert_eq!(core.max_datagram_frame_size, Some(1500));
        assert_eq!(TransportParam::from_core(&core), tp);
        let none = TransportParam::default().to_core();
        assert_eq!(none.max_datagram_frame_size, None, "0 = no datagrams");
        let mut big = core;
        big.initial_max_streams_bidi = 1 << 40;
        assert_eq!(TransportParam::from_core(&big).max_streams_bidi, u16::MAX);
    }

    #[test]
    fn sizes_match_the_uapi() {
        assert_eq!(StreamInfo::SIZE, 16);
        assert_eq!(HandshakeInfo::SIZE, 1);
        assert_eq!(TransportParam::SIZE, 56);
        assert_eq!(Config::SIZE, 28);
        assert_eq!(CryptoSecret::SIZE, 56);
        assert_eq!(ErrInfo::SIZE, 16);
        assert_eq!(ConnectionIdInfo::SIZE, 12);
        assert_eq!(EventOption::SIZE, 2);
        assert_eq!(StreamUpdate::SIZE, 24);
        assert_eq!(StreamMaxData::SIZE, 16);
        assert_eq!(ConnectionClose::SIZE, 72);
        assert_eq!(cmsg_space(StreamInfo::SIZE), 32);
        assert_eq!(cmsg_space(HandshakeInfo::SIZE), 24);
    }

    #[test]
    fn transport_param_offsets() {
        let tp = TransportParam {
            remote: 1,
            disable_active_migration: 2,
            grease_quic_bit: 3,
            stateless_reset: 4,
            disable_1rtt_encryption: 5,
            disable_compatible_version: 6,
            active_connection_id_limit: 7,
            ack_delay_exponent: 8,
            max_datagram_frame_size: 0x0a09,
            max_udp_payload_size: 0x0c0b,
            max_idle_timeout: 0x100f0e0d,
            max_ack_delay: 0x14131211,
            max_streams_bidi: 0x1615,
            max_streams_uni: 0x1817,
            max_data: 0x2120_1f1e_1d1c_1b1a,
            max_stream_data_bidi_local: 0x2928_2726_2524_2322,
            max_stream_data_bidi_remote: 0x3130_2f2e_2d2c_2b2a,
            max_stream_data_uni: 0x3938_3736_3534_3332,
        };
        let b = tp.encode();
        assert_eq!(&b[..8], &[1, 2, 3, 4, 5, 6, 7, 8]);
        assert_eq!(&b[8..12], &[9, 10, 11, 12]);
        assert_eq!(&b[12..16], &[13, 14, 15, 16]);
        assert_eq!(&b[16..20], &[0x11, 0x12, 0x13, 0x14]);
        assert_eq!(&b[20..24], &[0x15, 0x16, 0x17, 0x18]);
        assert_eq!(b[24], 0x1a);
        assert_eq!(b[32], 0x22);
        assert_eq!(b[40], 0x2a);
        assert_eq!(b[48], 0x32);
        assert_eq!(TransportParam::decode(&b), tp);
    }

    #[test]
    fn config_offsets() {
        let c = Config {
            version: 1,
            plpmtud_probe_interval: 2,
            initial_smoothed_rtt: 3,
            payload_cipher_type: 4,
            congestion_control_algo: 5,
            validate_peer_address: 6,
            stream_data_nodelay: 7,
            receive_session_ticket: 8,
            certificate_request: 9,
            keepalive_probe_interval: 10,
        };
        let b = c.encode();
        assert_eq!(b[0], 1);
        assert_eq!(b[4], 2);
        assert_eq!(b[8], 3);
        assert_eq!(b[12], 4);
        assert_eq!(&b[16..24], &[5, 6, 7, 8, 9, 0, 0, 0]);
        assert_eq!(b[24], 10);
        assert_eq!(Config::decode(&b), c);
    }

    #[test]
    fn other_offsets() {
        let s = CryptoSecret {
            send: 1,
            level: 2,
            cipher_type: 51,
            secret: [7; 48],
        };
        let b = s.encode();
        assert_eq!((b[0], b[1], b[2], b[3], b[4]), (1, 2, 0, 0, 51));
        assert_eq!(b[8], 7);
        assert_eq!(CryptoSecret::decode(&b), s);

        let u = StreamUpdate {
            id: 4,
            state: 3,
            errcode: 9,
            finalsz: 100,
        };
        let b = u.encode();
        assert_eq!((b[0], b[8], b[12], b[16]), (4, 3, 9, 100));
        assert_eq!(StreamUpdate::decode(&b), u);

        let c = ConnectionIdInfo {
            dest: 1,
            active: 5,
            prior_to: 3,
        };
        let b = c.encode();
        assert_eq!((b[0], b[4], b[8]), (1, 5, 3));
        assert_eq!(ConnectionIdInfo::decode(&b), c);

        let cc = ConnectionClose::new(0x1c, 6, b"bye");
        let b = cc.encode();
        assert_eq!((b[0], b[4], &b[8..11], b[11]), (0x1c, 6, &b"bye"[..], 0));
        assert_eq!(ConnectionClose::decode(&b).phrase_bytes(), b"bye");
        let long = ConnectionClose::new(0, 0, &[b'x'; 100]);
        assert_eq!(long.phrase_bytes().len(), 63);

        let si = StreamInfo {
            stream_id: -1,
            stream_flags: 0x400,
        };
        assert_eq!(StreamInfo::decode(&si.encode()), si);
        let e = ErrInfo {
            stream_id: 8,
            errcode: 1,
        };
        assert_eq!(ErrInfo::decode(&e.encode()), e);
        let m = StreamMaxData { id: 2, max_data: 9 };
        assert_eq!(StreamMaxData::decode(&m.encode()), m);
    }

    #[test]
    fn short_structs_are_zero_filled() {
        // An older 24-byte transport_param (up to max_streams_uni) keeps its prefix.
        let full = TransportParam {
            max_idle_timeout: 5,
            max_streams_uni: 3,
            max_data: 99,
            ..TransportParam::default()
        };
        let short = TransportParam::decode(&full.encode()[..24]);
        assert_eq!(short.max_idle_timeout, 5);
        assert_eq!(short.max_streams_uni, 3);
        assert_eq!(short.max_data, 0);
        // An older quic_config without keepalive_probe_interval (24 B).
        let c = Config::decode(&[1, 0, 0, 0]);
        assert_eq!(c.version, 1);
        assert_eq!(c.keepalive_probe_interval, 0);
        assert_eq!(StreamInfo::decode(&[]), StreamInfo::default());
        assert_eq!(HandshakeInfo::decode(&[]).crypto_level, 0);
        // Extra bytes are ignored.
        assert_eq!(EventOption::decode(&[1, 1, 9, 9]).on, 1);
    }

    #[test]
    fn sockaddr_round_trip() {
        for a in [
            "127.0.0.1:1234".parse::<SocketAddr>().unwrap(),
            "[::1]:443".parse().unwrap(),
            "[fe80::1%3]:80".parse().unwrap(),
        ] {
            assert_eq!(sockaddr_decode(&sockaddr_encode(&a)).unwrap(), a);
        }
        assert_eq!(sockaddr_decode(&[2, 0, 1]), Err(Errno::EINVAL));
        assert_eq!(sockaddr_decode(&[1, 0, 0, 0]), Err(Errno::EAFNOSUPPORT));
        let mapped: SocketAddr = "[::ffff:198.18.0.1]:5".parse().unwrap();
        assert_eq!(canonical_addr(mapped), "198.18.0.1:5".parse().unwrap());
    }
}
