//! The connection state machine (RFC 9000, RFC 9001, RFC 9002)
//!
//! A [`Connection`] is owned by an [`Endpoint`](crate::endpoint::Endpoint), which routes
//! datagrams to it and drives it. It never performs I/O and never reads a clock.
//!
//! # Call protocol
//! There are four kinds of method:
//! - inputs: `handle_datagram` (via the endpoint) and `handle_timeout`;
//! - application commands: [`Connection::open`], [`Connection::write`], [`Connection::read`],
//!   [`Connection::send_datagram`], [`Connection::close`], ...;
//! - outputs: `poll_transmit`, `poll_timeout`, `poll_event` (via the endpoint);
//! - getters: [`Connection::stats`], [`Connection::rtt`], [`Connection::remote_address`], ...
//!
//! After every input or command the caller drains events, then transmits until there is
//! nothing more to send, then arms a timer for the earliest timeout. A connection that went
//! through closing or draining reports [`Event::Drained`] and is then removed by the endpoint.
//!
//! # Lifecycle
//! `Handshake` → `Established` → `Closing` (we sent CONNECTION_CLOSE) or `Draining` (the peer
//! did) → `Drained`. An idle timeout goes straight to `Drained` (RFC 9000 §10.1).
//!
//! # Files
//! `spaces` (packet number spaces, ACK generation, CRYPTO streams), `send` (packet building,
//! coalescing, protection, GSO), `recv` (unprotection, frame dispatch, TLS), `loss` (ACK
//! processing, loss detection, PTO), `close` (closing and draining), `cid` (connection IDs),
//! `path` (anti-amplification, path validation), `keys` (key updates), `mtud` (path MTU
//! discovery), `params` (transport parameters), `timer`, `stats`.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use rand::SeedableRng;
use rand_chacha::ChaCha20Rng;

use crate::cc;
use crate::config::{EndpointConfig, TransportConfig};
use crate::crypto::{self, HandshakeData, Session};
use crate::datagram::{DatagramState, SendDatagramError};
use crate::error::TransportError;
use crate::qlog::{QlogEvent, QlogPacketType, QlogSink};
use crate::recovery::pacing::Pacer;
use crate::recovery::RttEstimator;
use crate::shared::{ConnectionId, Dir, Side, SpaceId, StreamId};
use crate::stream::{ClosedStream, ReadError, ReadResult, StreamEvent, StreamsState, WriteError};
use crate::transport_params::TransportParameters;

mod cid;
mod close;
mod early_packets;
mod ecn;
mod external_tls;
mod keys;
mod loss;
mod migration;
mod mtud;
mod params;
mod path;
mod preferred_address;
mod recv;
/// Packet classification shared with the endpoint
pub(crate) mod recv_kind {
    pub(crate) use super::recv::{kind, PacketKind};
}
/// Compatible version negotiation, for the endpoint
pub(crate) mod version_negotiation {
    pub(crate) use super::version::{compatible, server_version};
}
mod send;
mod sockapi_hooks;
mod spaces;
mod stats;
mod timer;
mod version;
mod zero_rtt;

pub use cid::CidControlError;
use cid::CidState;
pub use migration::MigrateError;
use path::PathData;
pub use preferred_address::PreferredAddressError;
use spaces::PacketSpace;
pub use stats::ConnectionStats;
use timer::{Timer, TimerTable};
pub use zero_rtt::RememberedParamsError;

/// Something the application should know about a connection
#[derive(Debug, Clone, Eq, PartialEq)]
#[non_exhaustive]
pub enum Event {
    /// The handshake completed
    Connected,
    /// The handshake is confirmed (RFC 9001 §4.1.2); on a client this is when the server has
    /// accepted it, client certificate included
    HandshakeConfirmed,
    /// The peer opened streams of this direction; call [`Connection::accept`]
    StreamOpened {
        /// Direction of the new streams
        dir: Dir,
    },
    /// Data (or a FIN or reset) can be read from a stream
    StreamReadable {
        /// The stream
        id: StreamId,
    },
    /// A stream that was blocked can take more data
    StreamWritable {
        /// The stream
        id: StreamId,
    },
    /// Everything we wrote on a finished stream was acknowledged
    StreamFinished {
        /// The stream
        id: StreamId,
    },
    /// The peer asked us to stop sending on a stream (STOP_SENDING)
    StreamStopped {
        /// The stream
        id: StreamId,
        /// The peer's application error code
        error_code: u64,
    },
    /// The peer raised its stream limit: [`Connection::open`] may succeed again
    StreamAvailable {
        /// Direction that gained credit
        dir: Dir,
    },
    /// A datagram can be taken with [`Connection::recv_datagram`]
    DatagramReceived,
    /// External TLS: handshake bytes from the peer wait in
    /// [`Connection::external_recv_handshake`]
    ExternalHandshakeData,
    /// We now send on a different path: the peer moved (server) or we migrated (client)
    PathChanged {
        /// The peer address we now send to
        remote: SocketAddr,
    },
    /// The current path passed validation (RFC 9000 §8.2)
    PathValidated {
        /// The validated peer address
        remote: SocketAddr,
    },
    /// Validation of a new path failed; a server falls back to the last validated address
    PathFailed {
        /// The peer address that did not answer
        remote: SocketAddr,
    },
    /// The connection failed or was closed by the peer; no more data flows
    ConnectionLost {
        /// Why
        reason: ConnectionError,
    },
    /// All state is gone; the endpoint forgets the connection after reporting this
    Drained,
}

/// Why a connection ended
#[derive(Debug, Clone, Eq, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum ConnectionError {
    /// The peer speaks none of our versions
    #[error("peer doesn't implement any supported version")]
    VersionMismatch,
    /// We detected a protocol violation
    #[error(transparent)]
    TransportError(#[from] TransportError),
    /// The peer closed the connection with a transport error code
    #[error("closed by peer: {error_code:#x} (frame {frame_type:#x}): {reason}")]
    ConnectionClosed {
        /// Transport error code
        error_code: u64,
        /// Frame type that triggered it (0 if unknown)
        frame_type: u64,
        /// Reason phrase (lossy UTF-8)
        reason: String,
    },
    /// The peer's application closed the connection
    #[error("closed by peer application: {error_code}")]
    ApplicationClosed {
        /// Application error code
        error_code: u64,
        /// Reason phrase
        reason: Bytes,
    },
    /// The peer sent a stateless reset
    #[error("reset by peer")]
    Reset,
    /// Nothing heard from the peer within the idle timeout
    #[error("timed out")]
    TimedOut,
    /// We closed the connection
    #[error("closed locally")]
    LocallyClosed,
}

#[derive(Debug, Copy, Clone, Eq, PartialEq)]
enum State {
    Handshake,
    Established,
    /// We sent CONNECTION_CLOSE and answer further packets with it (RFC 9000 §10.2.1)
    Closing,
    /// The peer closed; we send nothing (RFC 9000 §10.2.2)
    Draining,
    Drained,
}

/// Notices from a connection to its endpoint
#[derive(Debug)]
pub(crate) enum EndpointEvent {
    /// Route this CID to the connection
    NewCid(ConnectionId),
    /// Stop routing this CID
    RetireCid(ConnectionId),
    /// The connection finished draining: remove it
    Drained,
    /// A Version Negotiation packet asks us to start over in this version (RFC 9000 §6.2,
    /// RFC 9368 §2.1): the endpoint replaces the connection under the same handle
    Restart(u32),
    /// Server: mint a NEW_TOKEN token for this client (see [`Connection::queue_new_token`])
    IssueToken,
    /// Client: the server gave us a token for future connections (NEW_TOKEN)
    NewToken(Vec<u8>),
}

/// One QUIC connection
pub struct Connection {
    side: Side,
    version: u32,
    config: Arc<TransportConfig>,
    endpoint_config: Arc<EndpointConfig>,
    state: State,
    tls: Box<dyn Session>,
    spaces: [PacketSpace; 3],
    /// The level TLS writes its next handshake bytes at
    crypto_write_space: SpaceId,
    path: PathData,
    rtt: RttEstimator,
    cc: Box<dyn cc::Controller>,
    pacer: Pacer,
    timers: TimerTable,
    streams: StreamsState,
    datagrams: DatagramState,
    cids: CidState,
    /// DCID of the client's first Initial (RFC 9000 §7.3)
    orig_dst_cid: ConnectionId,
    /// Client: SCID of the Retry we answered; server: the CID of the Retry the client answered
    retry_src_cid: Option<ConnectionId>,
    /// Client: the Retry token to put in every Initial (RFC 9000 §17.2.5.3)
    retry_token: Vec<u8>,
    /// Client: the server's CID was learned from its first Initial
    peer_cid_set: bool,
    /// Server: a NEW_TOKEN frame to (re)send
    new_token: Option<Vec<u8>>,
    new_token_pending: bool,
    /// Client: the version a Version Negotiation packet rejected (RFC 9368 §4)
    vn_original: Option<u32>,
    peer_params: Option<TransportParameters>,
    handshake_confirmed: bool,
    /// The handshake completed at some point (stays true through closing)
    handshake_completed: bool,
    /// Server: HANDSHAKE_DONE still to be (re)sent
    handshake_done_pending: bool,
    /// Server: the peer acknowledged a packet carrying HANDSHAKE_DONE
    handshake_done_acked: bool,
    events: VecDeque<Event>,
    pub(crate) endpoint_events: VecDeque<EndpointEvent>,
    /// Why the connection ended, once it did
    error: Option<ConnectionError>,
    close: close::CloseState,
    stats: ConnectionStats,
    rng: ChaCha20Rng,
    /// Consecutive PTOs without an acknowledgment (RFC 9002 §6.2.1)
    pto_count: u32,
    /// Effective idle timeout: the minimum of both sides' (RFC 9000 §10.1)
    idle_timeout: Option<Duration>,
    /// Restart the idle timer on the next ack-eliciting packet sent (RFC 9000 §10.1)
    idle_reset_on_send: bool,
    peer_max_ack_delay: Duration,
    peer_ack_delay_exponent: u8,
    /// Scratch buffer for TLS input and output (reused, no per-packet allocation)
    crypto_buf: Vec<u8>,
    /// Scratch for acknowledged and lost packets during ACK processing
    acked_scratch: Vec<(u64, crate::recovery::SentPacket<spaces::SentRecord>)>,
    lost_scratch: Vec<(u64, crate::recovery::SentPacket<spaces::SentRecord>)>,
    /// Packets waiting for the keys that open them
    early_packets: early_packets::EarlyPackets,
    lost_times_scratch: Vec<(Instant, bool)>,
    /// Whether the last send stopped for lack of data rather than window
    app_limited: bool,
    /// 1-RTT packets in a row that carried only an ACK (see `migration::ACKS_BEFORE_PING`)
    ack_only_sent: u32,
    /// When the first RTT sample was taken (persistent congestion only counts losses after
    /// it, RFC 9002 §7.6.2)
    first_rtt_sample: Option<Instant>,
    /// Size of the datagram being processed (for the amplification budget of a new path)
    last_datagram_len: u64,
    /// Source address of the datagram being processed
    rx_remote: SocketAddr,
    /// DCID of the newest 1-RTT packet from the peer: a change with a new address means the
    /// peer migrated actively, and we answer with a fresh CID of its own (RFC 9000 §9.5)
    rx_dcid: Option<ConnectionId>,
    /// When the congestion controller was last reset for a new path: earlier losses are not
    /// congestion signals for it
    cc_reset_at: Option<Instant>,
    key_update: keys::KeyUpdateState,
    /// Derives the stateless reset tokens of the CIDs we issue
    reset_key: Arc<ring::hmac::Key>,
    mtud: mtud::MtuDiscovery,
    ecn: ecn::EcnState,
    /// ECN codepoint of the datagram being built
    tx_ecn: Option<crate::shared::EcnCodepoint>,
    /// qlog sink and the start of its trace
    qlog: Option<(Box<dyn QlogSink>, Instant)>,
    zero_rtt: zero_rtt::ZeroRttState,
    preferred: preferred_address::PreferredState,
    /// DCID for the packet being started instead of the active one (probes of a server's
    /// preferred address use its own CID)
    dcid_override: Option<ConnectionId>,
    /// Local IP the datagram being processed arrived on, when the driver knows it
    rx_local_ip: Option<std::net::IpAddr>,
    /// Compatible version negotiation (RFC 9368 §2.3)
    version_state: version::VersionState,
}

/// What [`Connection::new`] needs besides the TLS session
pub(crate) struct ConnectionParams {
    pub(crate) side: Side,
    pub(crate) version: u32,
    pub(crate) endpoint_config: Arc<EndpointConfig>,
    pub(crate) config: Arc<TransportConfig>,
    pub(crate) local_cid: ConnectionId,
    pub(crate) remote_cid: ConnectionId,
    pub(crate) orig_dst_cid: ConnectionId,
    /// DCID the Initial keys derive from: `orig_dst_cid`, or after a Retry the server's new CID
    pub(crate) initial_dcid: ConnectionId,
    /// Server: the CID of the Retry the client answered (RFC 9000 §7.3)
    pub(crate) retry_src_cid: Option<ConnectionId>,
    /// Server: the client's address was validated by a Retry token
    pub(crate) validated: bool,
    /// Client: this attempt follows a Version Negotiation packet that rejected this version
    pub(crate) vn_original: Option<u32>,
    pub(crate) remote: SocketAddr,
    pub(crate) now: Instant,
    pub(crate) rng_seed: [u8; 32],
    pub(crate) reset_key: Arc<ring::hmac::Key>,
}

impl Connection {
    pub(crate) fn new(
        p: ConnectionParams,
        tls: Box<dyn Session>,
    ) -> Result<Self, crypto::CryptoError> {
        let config = p.config;
        let cid_len = p.endpoint_config.local_cid_len;
        let mtu = config.mtu();
        let mut spaces = [PacketSpace::new(), PacketSpace::new(), PacketSpace::new()];
        spaces[SpaceId::Initial as usize].keys =
            Some(crypto::initial_keys(p.version, &p.initial_dcid, p.side)?);
        let streams = StreamsState::new(p.side, &params::streams_config(&config));
        let datagrams = DatagramState::new(
            params::local_max_datagram_frame_size(&config),
            config.datagram_receive_buffer_size.unwrap_or(0),
            config.datagram_send_buffer_size,
        );
        let rtt = RttEstimator::new(config.initial_rtt);
        let cc = cc::new_controller(config.congestion, mtu, p.now);
        let pacer = Pacer::new(cc.window(), mtu, p.now);
        let mut conn = Self {
            side: p.side,
            version: p.version,
            endpoint_config: p.endpoint_config,
            state: State::Handshake,
            tls,
            spaces,
            crypto_write_space: SpaceId::Initial,
            // RFC 9000 §8.1: the client's own address needs no validation by itself
            path: PathData::new(p.remote, p.side.is_client() || p.validated, mtu),
            rtt,
            cc,
            pacer,
            timers: TimerTable::default(),
            streams,
            datagrams,
            cids: CidState::new(
                cid_len,
                p.local_cid,
                p.remote_cid,
                config.active_connection_id_limit,
            ),
            orig_dst_cid: p.orig_dst_cid,
            retry_src_cid: p.retry_src_cid,
            retry_token: Vec::new(),
            peer_cid_set: p.side.is_server(),
            new_token: None,
            new_token_pending: false,
            vn_original: p.vn_original,
            peer_params: None,
            handshake_confirmed: false,
            handshake_completed: false,
            handshake_done_pending: false,
            handshake_done_acked: false,
            events: VecDeque::new(),
            endpoint_events: VecDeque::new(),
            error: None,
            close: close::CloseState::default(),
            stats: ConnectionStats::default(),
            rng: ChaCha20Rng::from_seed(p.rng_seed),
            pto_count: 0,
            idle_timeout: config.idle_timeout.filter(|d| !d.is_zero()),
            idle_reset_on_send: true,
            peer_max_ack_delay: Duration::from_millis(25),
            peer_ack_delay_exponent: 3,
            crypto_buf: Vec::new(),
            acked_scratch: Vec::new(),
            lost_scratch: Vec::new(),
            early_packets: early_packets::EarlyPackets::default(),
            lost_times_scratch: Vec::new(),
            app_limited: true,
            ack_only_sent: 0,
            first_rtt_sample: None,
            last_datagram_len: 0,
            rx_remote: p.remote,
            rx_dcid: None,
            cc_reset_at: None,
            key_update: keys::KeyUpdateState::default(),
            reset_key: p.reset_key,
            mtud: mtud::MtuDiscovery::new(config.mtu_discovery, mtu),
            ecn: ecn::EcnState::new(config.ecn),
            tx_ecn: None,
            qlog: None,
            zero_rtt: zero_rtt::ZeroRttState::default(),
            preferred: preferred_address::PreferredState::default(),
            dcid_override: None,
            rx_local_ip: None,
            version_state: version::VersionState::default(),
            config,
        };
        if let Some(t) = conn.idle_timeout {
            conn.timers.set(Timer::Idle, p.now + t);
        }
        // The client speaks first: pull its ClientHello out of TLS now.
        conn.drive_tls_write();
        conn.init_client_zero_rtt();
        Ok(conn)
    }

    // ---- Application API: streams ----

    /// Open a stream of `dir`; `None` while the peer's stream limit is reached
    pub fn open(&mut self, dir: Dir) -> Option<StreamId> {
        if !self.is_usable() {
            return None;
        }
        self.streams.open(dir)
    }

    /// Take the next stream the peer opened
    pub fn accept(&mut self, dir: Dir) -> Option<StreamId> {
        self.streams.accept(dir)
    }

    /// Queue data on a stream; returns how much was taken (flow control may limit it)
    pub fn write(&mut self, id: StreamId, data: &[u8]) -> Result<usize, WriteError> {
        self.streams.write(id, data)
    }

    /// No more data will be written on the stream (sends FIN)
    pub fn finish(&mut self, id: StreamId) -> Result<(), ClosedStream> {
        self.streams.finish(id)
    }

    /// Abandon sending on a stream (RESET_STREAM)
    pub fn reset(&mut self, id: StreamId, error_code: u64) -> Result<(), ClosedStream> {
        self.streams.reset(id, error_code)
    }

    /// Ask the peer to stop sending on a stream (STOP_SENDING)
    pub fn stop_sending(&mut self, id: StreamId, error_code: u64) -> Result<(), ClosedStream> {
        self.streams.stop_sending(id, error_code)
    }

    /// Read in-order data from a stream; `Ok(None)` when nothing is available yet
    pub fn read(&mut self, id: StreamId, buf: &mut [u8]) -> Result<Option<ReadResult>, ReadError> {
        self.streams.read(id, buf)
    }

    // ---- Application API: datagrams ----

    /// Queue an unreliable datagram (RFC 9221); the oldest queued one is dropped when full
    pub fn send_datagram(&mut self, data: Bytes) -> Result<(), SendDatagramError> {
        self.datagrams.send(data, true)
    }

    /// Take the next received datagram
    pub fn recv_datagram(&mut self) -> Option<Bytes> {
        self.datagrams.recv()
    }

    /// Largest datagram payload that fits in one packet now; `None` if the peer doesn't
    /// accept datagrams (or before its transport parameters arrived)
    pub fn max_datagram_size(&self) -> Option<usize> {
        self.datagrams.max_size(self.max_1rtt_payload())
    }

    // ---- Application API: lifecycle ----

    /// Close the connection with an application error code (CONNECTION_CLOSE 0x1d)
    pub fn close(&mut self, now: Instant, error_code: u64, reason: &[u8]) {
        self.close_local(
            now,
            close::CloseReason::Application {
                code: error_code,
                reason: Bytes::copy_from_slice(reason),
            },
        );
    }

    /// True until the handshake completes
    pub fn is_handshaking(&self) -> bool {
        self.state == State::Handshake
    }

    /// True once the handshake completed, even if the connection closed since
    pub fn handshake_completed(&self) -> bool {
        self.handshake_completed
    }

    /// True once the handshake is confirmed (RFC 9001 §4.1.2): on a client, only then has the
    /// server accepted it, client certificate included
    pub fn is_handshake_confirmed(&self) -> bool {
        self.handshake_confirmed
    }

    /// True once closing, draining or drained
    pub fn is_closed(&self) -> bool {
        matches!(
            self.state,
            State::Closing | State::Draining | State::Drained
        )
    }

    /// True once all state is gone
    pub fn is_drained(&self) -> bool {
        self.state == State::Drained
    }

    /// Why the connection ended, if it did
    pub fn close_reason(&self) -> Option<ConnectionError> {
        self.error.clone()
    }

    // ---- Getters ----

    /// Counters and current recovery state
    pub fn stats(&self) -> ConnectionStats {
        let mut s = self.stats;
        s.rtt = self.rtt.smoothed();
        s.cwnd = self.cc.window();
        s.bytes_in_flight = self.bytes_in_flight();
        s.ecn_capable = self.ecn.is_capable();
        let d = self.datagrams.stats();
        s.datagrams_dropped =
            d.dropped_send_queue_full + d.dropped_too_large + d.dropped_recv_buffer_full;
        if self.side.is_client() && self.zero_rtt.accepted != Some(true) {
            s.zero_rtt_bytes_accepted = 0;
        }
        s
    }

    /// Smoothed round-trip time
    pub fn rtt(&self) -> Duration {
        self.rtt.smoothed()
    }

    /// Largest UDP payload currently sent on the path (grows with MTU discovery)
    pub fn current_mtu(&self) -> u16 {
        self.path.mtu
    }

    /// The peer's address
    pub fn remote_address(&self) -> SocketAddr {
        self.path.remote
    }

    /// Which side we are
    pub fn side(&self) -> Side {
        self.side
    }

    /// The negotiated QUIC version
    pub fn version(&self) -> u32 {
        self.version
    }

    /// ALPN and SNI, once the handshake got far enough
    pub fn handshake_data(&self) -> Option<HandshakeData> {
        self.tls.handshake_data()
    }

    /// The peer's certificate chain (DER), once verified
    pub fn peer_identity(&self) -> Option<Vec<Vec<u8>>> {
        self.tls.peer_identity()
    }

    /// The peer's transport parameters, once received and validated
    pub fn peer_params(&self) -> Option<&TransportParameters> {
        self.peer_params.as_ref()
    }

    /// Export keying material (RFC 5705) bound to this connection
    pub fn export_keying_material(
        &self,
        output: &mut [u8],
        label: &[u8],
        context: &[u8],
    ) -> Result<(), crypto::CryptoError> {
        self.tls.export_keying_material(output, label, context)
    }

    /// Trace this connection's events to `sink` (qlog), times relative to `now`
    pub fn set_qlog(&mut self, now: Instant, sink: Box<dyn QlogSink>) {
        self.qlog = Some((sink, now));
    }

    /// The Destination Connection ID of the client's first Initial (names qlog traces)
    pub fn original_dcid(&self) -> ConnectionId {
        self.orig_dst_cid
    }

    /// Hand an event to the qlog sink, building it only when tracing
    fn qlog(&mut self, now: Instant, event: impl FnOnce() -> QlogEvent) {
        if let Some((sink, start)) = self.qlog.as_mut() {
            sink.emit(now.saturating_duration_since(*start), &event());
        }
    }

    // ---- Outputs ----

    /// The next application event
    pub(crate) fn poll_event(&mut self) -> Option<Event> {
        if let Some(e) = self.events.pop_front() {
            return Some(e);
        }
        self.streams.poll_event().map(|e| match e {
            StreamEvent::Opened { dir } => Event::StreamOpened { dir },
            StreamEvent::Readable { id } => Event::StreamReadable { id },
            StreamEvent::Writable { id } => Event::StreamWritable { id },
            StreamEvent::Finished { id } => Event::StreamFinished { id },
            StreamEvent::Stopped { id, error_code } => Event::StreamStopped { id, error_code },
            StreamEvent::Available { dir } => Event::StreamAvailable { dir },
        })
    }

    /// The earliest time [`Connection::handle_timeout`] should be called
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.timers.next_timeout()
    }

    /// Act on expired timers
    pub(crate) fn handle_timeout(&mut self, now: Instant) {
        for timer in Timer::ALL {
            if !self.timers.expire(timer, now) {
                continue;
            }
            match timer {
                Timer::Close => {
                    self.set_drained();
                    return;
                }
                Timer::Idle => {
                    self.on_idle_timeout();
                    return;
                }
                Timer::LossDetection => self.on_loss_detection_timeout(now),
                Timer::KeepAlive => {
                    if self.state == State::Established {
                        self.spaces[SpaceId::Data as usize].ping_pending = true;
                    }
                }
                Timer::MaxAckDelay => {
                    let space = &mut self.spaces[SpaceId::Data as usize];
                    if space.ack_pending && space.unacked_eliciting > 0 {
                        space.immediate_ack = true;
                    }
                }
                Timer::PathValidation => {
                    self.on_path_validation_timeout(now);
                    if self.state == State::Drained {
                        return;
                    }
                }
                Timer::PathChallenge => self.on_path_challenge_timeout(),
                Timer::PreferredAddress => self.on_preferred_timeout(now),
                Timer::KeyDiscard => self.on_key_discard_timeout(),
                // Sending resumes in poll_transmit; nothing to do
                Timer::Pacing => {}
            }
        }
    }

    // ---- Internals shared by the submodules ----

    /// Streams and datagrams may be used
    fn is_usable(&self) -> bool {
        matches!(self.state, State::Handshake | State::Established)
    }

    fn space(&self, id: SpaceId) -> &PacketSpace {
        &self.spaces[id as usize]
    }

    fn space_mut(&mut self, id: SpaceId) -> &mut PacketSpace {
        &mut self.spaces[id as usize]
    }

    fn bytes_in_flight(&self) -> u64 {
        self.spaces.iter().map(|s| s.sent.bytes_in_flight()).sum()
    }

    fn ack_eliciting_in_flight(&self) -> bool {
        self.spaces
            .iter()
            .any(|s| s.sent.ack_eliciting_in_flight() > 0)
    }

    /// Largest frame payload a 1-RTT packet can carry on this path
    fn max_1rtt_payload(&self) -> usize {
        // short header: 1 + DCID + up to 4 pn bytes; AEAD tag 16
        (self.path.mtu as usize).saturating_sub(1 + self.cids.peer_cid().len() + 4 + 16)
    }

    /// PTO of the current highest space, for the closing and draining periods
    fn pto_for_close(&self) -> Duration {
        self.rtt.pto_base() + self.peer_max_ack_delay
    }

    fn reset_idle_timer(&mut self, now: Instant) {
        if let Some(t) = self.idle_timeout {
            // RFC 9000 §10.1: at least three PTOs, so a few lost probes don't kill it
            let t = t.max(3 * self.pto_for_close());
            self.timers.set(Timer::Idle, now + t);
        }
    }

    fn reset_keep_alive(&mut self, now: Instant) {
        if let Some(k) = self.config.keep_alive_interval {
            if self.state == State::Established {
                self.timers.set(Timer::KeepAlive, now + k);
            }
        }
    }

    fn on_idle_timeout(&mut self) {
        if self.error.is_none() && !self.is_closed() {
            self.error = Some(ConnectionError::TimedOut);
            self.events.push_back(Event::ConnectionLost {
                reason: ConnectionError::TimedOut,
            });
        }
        self.set_drained();
    }

    fn set_drained(&mut self) {
        if self.state == State::Drained {
            return;
        }
        self.state = State::Drained;
        self.timers.stop_all();
        self.events.push_back(Event::Drained);
        self.endpoint_events.push_back(EndpointEvent::Drained);
    }

    /// Take over the application's streams and datagrams of an attempt that a Version
    /// Negotiation packet ended (only 0-RTT packets can have carried their data, and those
    /// are requeued)
    pub(crate) fn adopt_app_state(&mut self, old: &mut Self) {
        // 0-RTT packets of the old attempt were never processed: their data goes again
        old.requeue_zero_rtt();
        std::mem::swap(&mut self.streams, &mut old.streams);
        std::mem::swap(&mut self.datagrams, &mut old.datagrams);
        self.events.extend(old.events.drain(..));
    }

    /// Client: the token for our Initial packets, from a NEW_TOKEN of an earlier connection
    pub(crate) fn set_initial_token(&mut self, token: Vec<u8>) {
        self.retry_token = token;
    }

    /// Server: send `token` in a NEW_TOKEN frame
    pub(crate) fn queue_new_token(&mut self, token: Vec<u8>) {
        self.new_token = Some(token);
        self.new_token_pending = true;
    }

    /// The CID we chose for the handshake (routes the connection at the endpoint)
    pub(crate) fn initial_local_cid(&self) -> ConnectionId {
        self.cids.initial_local_cid()
    }

    /// No version to fall back to could be set up: the attempt fails
    pub(crate) fn fail_version_negotiation(&mut self) {
        self.error = Some(ConnectionError::VersionMismatch);
        self.events.push_back(Event::ConnectionLost {
            reason: ConnectionError::VersionMismatch,
        });
        self.set_drained();
    }

    /// Drop the keys of a space and everything in flight in it (RFC 9002 §6.4)
    fn discard_space(&mut self, id: SpaceId) {
        let space = &mut self.spaces[id as usize];
        if space.discarded {
            return;
        }
        // Replacing the map forgets its packets and their bytes in flight.
        space.sent = crate::recovery::SentPackets::new();
        self.spaces[id as usize].discard();
        if id == SpaceId::Initial {
            self.discard_original_keys();
        }
        self.pto_count = 0;
    }
}

/// The qlog name of a packet number space's packets
fn qlog_packet_type(space: SpaceId) -> QlogPacketType {
    match space {
        SpaceId::Initial => QlogPacketType::Initial,
        SpaceId::Handshake => QlogPacketType::Handshake,
        SpaceId::Data => QlogPacketType::OneRtt,
    }
}

impl std::fmt::Debug for Connection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connection")
            .field("side", &self.side)
            .field("state", &self.state)
            .field("remote", &self.path.remote)
            .finish_non_exhaustive()
    }
}

/// Our encoded transport parameters for a new connection (see [`params::local_params`])
#[allow(clippy::too_many_arguments)]
pub(crate) fn params_for(
    config: &TransportConfig,
    endpoint: &EndpointConfig,
    side: Side,
    version: u32,
    initial_scid: ConnectionId,
    orig_dst_cid: Option<ConnectionId>,
    reset_token: Option<[u8; 16]>,
    retry_src_cid: Option<ConnectionId>,
    preferred_address: Option<crate::transport_params::PreferredAddress>,
) -> Vec<u8> {
    let mut p = params::local_params(
        config,
        endpoint,
        side,
        version,
        initial_scid,
        orig_dst_cid,
        reset_token,
    );
    if side.is_server() {
        p.retry_source_connection_id = retry_src_cid;
        p.preferred_address = preferred_address;
    }
    let mut buf = Vec::new();
    p.encode(&mut buf);
    buf
}
