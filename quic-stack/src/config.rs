//! Endpoint, transport, client and server configuration
//!
//! Every struct has public fields and a `Default` with sane values, so callers write
//! `TransportConfig { idle_timeout: Some(..), ..Default::default() }`. Nothing here is validated
//! at construction: out-of-range values are clamped where they are used (documented per field).

use std::net::{SocketAddrV4, SocketAddrV6};
use std::sync::Arc;
use std::time::Duration;

use crate::cc;
use crate::crypto;

/// Per-connection transport settings (RFC 9000 §18.2 parameters plus local policy)
#[derive(Debug, Clone)]
pub struct TransportConfig {
    /// Local max_idle_timeout; the effective timeout is the minimum of both sides' non-zero values
    /// (RFC 9000 §10.1). `None` disables it locally
    pub idle_timeout: Option<Duration>,
    /// Send a PING after this long without sending anything ack-eliciting; keeps NAT bindings and
    /// the idle timer alive. Should be well below `idle_timeout`
    pub keep_alive_interval: Option<Duration>,
    /// RTT assumed before the first sample (RFC 9002 §6.2.2 recommends 333 ms)
    pub initial_rtt: Duration,
    /// Longest we delay an ACK for 1-RTT packets (max_ack_delay, RFC 9000 §18.2); clamped to < 2^14 ms
    pub max_ack_delay: Duration,
    /// Exponent used to scale the ACK Delay field we send; clamped to 20
    pub ack_delay_exponent: u8,
    /// Bytes the peer may send on one stream beyond what we have read
    pub stream_receive_window: u64,
    /// Bytes the peer may send on all streams together beyond what we have read
    pub receive_window: u64,
    /// Bytes we buffer for sending across all streams
    pub send_window: u64,
    /// Bidirectional streams the peer may open concurrently
    pub max_concurrent_bidi_streams: u64,
    /// Unidirectional streams the peer may open concurrently
    pub max_concurrent_uni_streams: u64,
    /// Bytes of received datagrams buffered before the oldest are dropped; `None` disables
    /// datagrams (max_datagram_frame_size is not advertised)
    pub datagram_receive_buffer_size: Option<usize>,
    /// Datagrams queued for sending before the oldest are dropped
    pub datagram_send_buffer_size: usize,
    /// Largest UDP payload we accept (max_udp_payload_size, RFC 9000 §18.2); at least 1200
    pub max_udp_payload_size: u16,
    /// UDP payload size we send; RFC 9000 §14 requires paths to carry at least 1200 bytes
    pub initial_mtu: u16,
    /// Congestion controller
    pub congestion: cc::Algorithm,
    /// Connection IDs of the peer we are willing to store (active_connection_id_limit, ≥ 2)
    pub active_connection_id_limit: u64,
    /// Pace packets over the RTT instead of sending a window in bursts
    pub pacing: bool,
    /// Probe for a larger path MTU, up to `max_udp_payload_size` (RFC 9000 §14.3)
    pub mtu_discovery: bool,
    /// Mark packets ECT(0), report ECN counts and react to CE (RFC 9000 §13.4); disabled
    /// per path when validation fails
    pub ecn: bool,
    /// 0-RTT (RFC 9001 §4.6). A client with a resumption ticket that allows early data sends
    /// stream data and datagrams before the handshake completes, within the limits the server
    /// granted last time (RFC 9000 §7.4.1); a server accepts such data. Off by default: 0-RTT
    /// data can be replayed by an attacker, so only idempotent requests belong in it
    pub zero_rtt: bool,
}

impl Default for TransportConfig {
    fn default() -> Self {
        const MIB: u64 = 1 << 20;
        Self {
            idle_timeout: Some(Duration::from_secs(30)),
            keep_alive_interval: None,
            initial_rtt: Duration::from_millis(333),
            max_ack_delay: Duration::from_millis(25),
            ack_delay_exponent: 3,
            stream_receive_window: 4 * MIB,
            receive_window: 16 * MIB,
            send_window: 16 * MIB,
            max_concurrent_bidi_streams: 100,
            max_concurrent_uni_streams: 100,
            datagram_receive_buffer_size: Some(MIB as usize),
            datagram_send_buffer_size: 1024,
            max_udp_payload_size: 1472,
            initial_mtu: 1200,
            congestion: cc::Algorithm::default(),
            active_connection_id_limit: 4,
            pacing: true,
            mtu_discovery: true,
            ecn: true,
            zero_rtt: false,
        }
    }
}

impl TransportConfig {
    /// max_ack_delay in milliseconds as advertised (RFC 9000 §18.2: values ≥ 2^14 are invalid)
    pub(crate) fn max_ack_delay_ms(&self) -> u64 {
        (self.max_ack_delay.as_millis() as u64).min((1 << 14) - 1)
    }

    /// ack_delay_exponent as advertised (RFC 9000 §18.2: values above 20 are invalid)
    pub(crate) fn ack_delay_exponent(&self) -> u8 {
        self.ack_delay_exponent.min(20)
    }

    /// The UDP payload size we build packets for
    pub(crate) fn mtu(&self) -> u16 {
        self.initial_mtu
            .clamp(1200, self.max_udp_payload_size.max(1200))
    }
}

/// Settings shared by every connection of an endpoint
#[derive(Debug, Clone)]
pub struct EndpointConfig {
    /// Length of the connection IDs we issue (0..=20); 0 demultiplexes by remote address only
    pub local_cid_len: usize,
    /// Versions we speak, most preferred first
    pub supported_versions: Vec<u32>,
    /// Largest UDP payload we accept
    pub max_udp_payload_size: u16,
    /// Advertise grease_quic_bit (RFC 9287): accept packets whose QUIC bit is cleared. Our own
    /// bit is greased only when the peer advertises it too
    pub grease_quic_bit: bool,
    /// Connections the endpoint will hold at once; further Initials are dropped
    pub max_connections: usize,
    /// Key for stateless reset tokens (RFC 9000 §10.3); keep it across restarts so peers of a
    /// restarted endpoint learn at once that their connection is gone. `None`: a random key
    pub reset_key: Option<[u8; 32]>,
    /// After falling back on a Version Negotiation packet, require the server's
    /// version_information and close with VERSION_NEGOTIATION_ERROR without it (RFC 9368 §4).
    /// Turn off only to reach legacy servers that do not send it (such as quinn 0.11)
    pub strict_version_negotiation: bool,
    /// Write a qlog trace (JSON-SEQ, one `.sqlog` file per connection) into this directory.
    /// The core only emits events; the driver creates the files
    pub qlog_dir: Option<std::path::PathBuf>,
}

impl Default for EndpointConfig {
    fn default() -> Self {
        Self {
            local_cid_len: 8,
            supported_versions: vec![crypto::VERSION_1, crypto::VERSION_2],
            max_udp_payload_size: 1472,
            grease_quic_bit: true,
            max_connections: 100_000,
            reset_key: None,
            strict_version_negotiation: true,
            qlog_dir: None,
        }
    }
}

/// Settings for one outgoing connection
#[derive(Clone)]
pub struct ClientConfig {
    /// TLS configuration (must have ALPN set and TLS 1.3 enabled)
    pub crypto: Arc<rustls::ClientConfig>,
    /// Transport settings
    pub transport: Arc<TransportConfig>,
    /// QUIC version of the first Initial ([`crypto::VERSION_1`] or [`crypto::VERSION_2`])
    pub version: u32,
    /// The application runs the TLS handshake itself ([`crate::crypto::external`]); `crypto`
    /// is then unused
    pub external_tls: bool,
}

impl ClientConfig {
    /// A v1 client configuration with default transport settings
    pub fn new(crypto: Arc<rustls::ClientConfig>) -> Self {
        Self {
            crypto,
            transport: Arc::new(TransportConfig::default()),
            version: crypto::VERSION_1,
            external_tls: false,
        }
    }
}

impl std::fmt::Debug for ClientConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientConfig")
            .field("transport", &self.transport)
            .field("version", &format_args!("{:#x}", self.version))
            .finish_non_exhaustive()
    }
}

/// Settings for accepting connections
#[derive(Clone)]
pub struct ServerConfig {
    /// TLS configuration (must have ALPN set and TLS 1.3 enabled)
    pub crypto: Arc<rustls::ServerConfig>,
    /// Transport settings for accepted connections
    pub transport: Arc<TransportConfig>,
    /// Require address validation with Retry before creating state (not implemented yet: ignored)
    pub retry: bool,
    /// Refuse new connections while true (they are dropped silently)
    pub refuse: bool,
    /// Advertise this IPv4 address as preferred_address (RFC 9000 §9.6): clients reaching us
    /// over IPv4 validate it after the handshake and move there. The endpoint must receive
    /// datagrams sent to it too (the driver binds a second socket)
    pub preferred_address_v4: Option<SocketAddrV4>,
    /// The IPv6 preferred address, as `preferred_address_v4`
    pub preferred_address_v6: Option<SocketAddrV6>,
    /// Accepted connections leave the TLS handshake to the application
    /// ([`crate::crypto::external`]); `crypto` is then unused
    pub external_tls: bool,
}

impl ServerConfig {
    /// A server configuration with default transport settings
    pub fn new(crypto: Arc<rustls::ServerConfig>) -> Self {
        Self {
            crypto,
            transport: Arc::new(TransportConfig::default()),
            retry: false,
            refuse: false,
            preferred_address_v4: None,
            preferred_address_v6: None,
            external_tls: false,
        }
    }
}

impl std::fmt::Debug for ServerConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerConfig")
            .field("transport", &self.transport)
            .field("retry", &self.retry)
            .field("preferred_address_v4", &self.preferred_address_v4)
            .field("preferred_address_v6", &self.preferred_address_v6)
            .finish_non_exhaustive()
    }
}
