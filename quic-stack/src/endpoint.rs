//! Endpoint: demultiplexes datagrams by connection ID and accepts connections
//!
//! The endpoint owns every connection (a slab indexed by [`ConnectionHandle`]). It routes each
//! datagram by its Destination Connection ID: our issued CIDs, or for a server the client's
//! original DCID until the client switches to ours. Unknown long-header packets create a
//! connection (a client Initial in a datagram of at least 1200 bytes) or get a Version
//! Negotiation reply; everything else unroutable is dropped without a panic.
//!
//! Call protocol is the same as [`Connection`]'s, lifted to the endpoint: feed
//! [`Endpoint::handle_datagram`] and [`Endpoint::handle_timeout`], then drain
//! [`Endpoint::poll_event`], [`Endpoint::accept`] and [`Endpoint::poll_transmit`], then sleep
//! until [`Endpoint::poll_timeout`].

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha20Rng;

use crate::config::{ClientConfig, EndpointConfig, ServerConfig};
use crate::connection::recv_kind::{kind, PacketKind};
use crate::connection::version_negotiation;
use crate::connection::{params_for, Connection, ConnectionParams, EndpointEvent, Event};
use crate::crypto::external::ExternalSession;
use crate::crypto::token::{stateless_reset_token, TokenKey};
use crate::packet;
use crate::shared::{ConnectionId, RecvMeta, Side, Transmit};
use crate::tls::TlsSession;
use crate::transport_params::PreferredAddress;

/// Identifies a connection within its endpoint
#[derive(Debug, Copy, Clone, Eq, PartialEq, Hash, Ord, PartialOrd)]
pub struct ConnectionHandle(pub usize);

/// Why [`Endpoint::connect`] failed
#[derive(Debug, Clone, Eq, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum ConnectError {
    /// The server name is not a valid DNS name or IP address
    #[error("invalid server name: {0}")]
    InvalidServerName(String),
    /// The configured version is not one the endpoint supports
    #[error("unsupported QUIC version {0:#x}")]
    UnsupportedVersion(u32),
    /// The endpoint holds [`EndpointConfig::max_connections`] already
    #[error("too many connections")]
    TooManyConnections,
    /// The remote port is 0
    #[error("invalid remote address {0}")]
    InvalidRemoteAddress(SocketAddr),
    /// TLS or key setup failed
    #[error("crypto setup failed: {0}")]
    Crypto(String),
}

/// A QUIC endpoint: one UDP socket's worth of connections
pub struct Endpoint {
    config: Arc<EndpointConfig>,
    server: Option<Arc<ServerConfig>>,
    rng: ChaCha20Rng,
    connections: Vec<Option<Connection>>,
    free: Vec<usize>,
    live: usize,
    /// Our issued CIDs → connection
    cids: HashMap<ConnectionId, usize>,
    /// Server: the DCID of each client's first Initial → connection, so retransmitted Initials
    /// reach the same connection (RFC 9000 §7.2)
    initial_cids: HashMap<ConnectionId, usize>,
    /// With zero-length local CIDs: remote address → connection
    by_addr: HashMap<SocketAddr, usize>,
    accept_queue: VecDeque<ConnectionHandle>,
    /// Client: configuration and server name of each connection still handshaking, to start
    /// over after a Version Negotiation packet
    client_attempts: HashMap<usize, (ClientConfig, String)>,
    /// Client: the latest NEW_TOKEN token per server name, used in the next connection's
    /// Initial packets (RFC 9000 §8.1.3)
    tokens: HashMap<String, Vec<u8>>,
    /// Packets sent without a connection (Version Negotiation)
    stateless: VecDeque<(SocketAddr, Vec<u8>)>,
    next_transmit: usize,
    next_event: usize,
    /// Derives stateless reset tokens from CIDs (RFC 9000 §10.3.2)
    reset_key: Arc<ring::hmac::Key>,
    /// Seals Retry tokens
    token_key: TokenKey,
    /// Time of the latest input, for work triggered while processing it
    last_now: Option<Instant>,
    /// Origin of the endpoint's seconds clock for token lifetimes
    epoch: Option<Instant>,
}

/// A Retry token is only good for the handshake attempt that follows it
const RETRY_TOKEN_LIFETIME_SECS: u64 = 10;
/// A NEW_TOKEN token lets a client skip Retry for a day
const NEW_TOKEN_LIFETIME_SECS: u64 = 24 * 3600;

/// What the token of a client Initial proves
enum TokenCheck {
    /// A fresh Retry token for this address, naming the original DCID
    Retry(ConnectionId),
    /// A fresh NEW_TOKEN token for this address
    NewToken,
    /// Nothing (absent, invalid, expired or for another address)
    None,
}

impl Endpoint {
    /// A new endpoint; `server` enables accepting connections
    pub fn new(
        config: Arc<EndpointConfig>,
        server: Option<Arc<ServerConfig>>,
        rng_seed: [u8; 32],
    ) -> Self {
        let mut rng = ChaCha20Rng::from_seed(rng_seed);
        let key = config.reset_key.unwrap_or_else(|| rng.gen());
        let reset_key = Arc::new(ring::hmac::Key::new(ring::hmac::HMAC_SHA256, &key));
        let token_key = TokenKey::random(&mut rng);
        Self {
            config,
            server,
            rng,
            connections: Vec::new(),
            free: Vec::new(),
            live: 0,
            cids: HashMap::new(),
            initial_cids: HashMap::new(),
            by_addr: HashMap::new(),
            accept_queue: VecDeque::new(),
            client_attempts: HashMap::new(),
            tokens: HashMap::new(),
            stateless: VecDeque::new(),
            next_transmit: 0,
            next_event: 0,
            reset_key,
            token_key,
            epoch: None,
            last_now: None,
        }
    }

    /// Replace (or remove) the server configuration for future connections
    pub fn set_server_config(&mut self, server: Option<Arc<ServerConfig>>) {
        self.server = server;
    }

    /// The endpoint configuration
    pub fn config(&self) -> &EndpointConfig {
        &self.config
    }

    /// Start a connection to `remote`; the first Initial leaves with the next poll_transmit
    pub fn connect(
        &mut self,
        now: Instant,
        config: ClientConfig,
        remote: SocketAddr,
        server_name: &str,
    ) -> Result<ConnectionHandle, ConnectError> {
        if remote.port() == 0 {
            return Err(ConnectError::InvalidRemoteAddress(remote));
        }
        if rustls_pki_types::ServerName::try_from(server_name.to_owned()).is_err() {
            return Err(ConnectError::InvalidServerName(server_name.into()));
        }
        if !self.config.supported_versions.contains(&config.version) {
            return Err(ConnectError::UnsupportedVersion(config.version));
        }
        if self.live >= self.config.max_connections {
            return Err(ConnectError::TooManyConnections);
        }
        let local_cid = self.new_cid();
        let mut conn = self.new_client(now, &config, remote, server_name, local_cid, None)?;
        // RFC 9000 §8.1.3: a token is used once
        if let Some(token) = self.tokens.remove(server_name) {
            conn.set_initial_token(token);
        }
        let h = self.insert(conn);
        self.route_local_cid(local_cid, remote, h);
        self.client_attempts
            .insert(h, (config, server_name.to_owned()));
        Ok(ConnectionHandle(h))
    }

    /// A client connection attempt; `vn_original` is the version a Version Negotiation packet
    /// rejected, when this attempt follows one
    fn new_client(
        &mut self,
        now: Instant,
        config: &ClientConfig,
        remote: SocketAddr,
        server_name: &str,
        local_cid: ConnectionId,
        vn_original: Option<u32>,
    ) -> Result<Connection, ConnectError> {
        let version = config.version;
        // RFC 9000 §7.2: the first DCID is unpredictable and at least 8 bytes
        let dcid = ConnectionId::random(&mut self.rng, 8);
        let params = params_for(
            &config.transport,
            &self.config,
            Side::Client,
            version,
            local_cid,
            None,
            None,
            None,
            None,
        );
        // RFC 9368 §2.3: a client offering versions compatible with its first one may be moved
        // to one of them by the server, after its ClientHello went out
        let upgradable = self
            .config
            .supported_versions
            .iter()
            .any(|&v| v != version && version_negotiation::compatible(version, v));
        let tls: Box<dyn crate::crypto::Session> = if config.external_tls {
            Box::new(ExternalSession::new(Side::Client, version, params))
        } else {
            let tls = if upgradable {
                TlsSession::client_upgradable(config.crypto.clone(), version, server_name, params)
            } else {
                TlsSession::client(config.crypto.clone(), version, server_name, params)
            };
            Box::new(tls.map_err(|e| ConnectError::Crypto(e.to_string()))?)
        };
        Connection::new(
            ConnectionParams {
                side: Side::Client,
                version,
                endpoint_config: self.config.clone(),
                config: config.transport.clone(),
                local_cid,
                remote_cid: dcid,
                orig_dst_cid: dcid,
                initial_dcid: dcid,
                retry_src_cid: None,
                validated: false,
                vn_original,
                remote,
                now,
                rng_seed: self.rng.gen(),
                reset_key: self.reset_key.clone(),
            },
            tls,
        )
        .map_err(|e| ConnectError::Crypto(e.to_string()))
    }

    /// Start the attempt of connection `h` over in `version` after a Version Negotiation
    /// packet (RFC 9000 §6.2); the handle and the application's queued data survive
    fn restart_client(&mut self, now: Instant, h: usize, version: u32) {
        let Some((config, server_name)) = self.client_attempts.get(&h).cloned() else {
            return;
        };
        let Some(old) = self.connections[h].as_mut() else {
            return;
        };
        let original = old.version();
        let remote = old.remote_address();
        let local_cid = old.initial_local_cid();
        let config = ClientConfig { version, ..config };
        match self.new_client(
            now,
            &config,
            remote,
            &server_name,
            local_cid,
            Some(original),
        ) {
            Ok(mut conn) => {
                if let Some(old) = self.connections[h].as_mut() {
                    conn.adopt_app_state(old);
                }
                self.connections[h] = Some(conn);
            }
            Err(e) => {
                tracing::debug!("version fallback failed: {e}");
                if let Some(old) = self.connections[h].as_mut() {
                    old.fail_version_negotiation();
                }
            }
        }
    }

    /// Process one received UDP datagram; `data` is decrypted in place
    pub fn handle_datagram(&mut self, now: Instant, meta: RecvMeta, data: &mut [u8]) {
        self.last_now = Some(now);
        let cid_len = self.config.local_cid_len;
        let Ok(hdr) = packet::parse_header(data, cid_len) else {
            return;
        };
        let routed = if cid_len == 0 {
            self.by_addr.get(&meta.remote).copied()
        } else {
            None
        }
        .or_else(|| self.cids.get(&hdr.dcid).copied())
        .or_else(|| match kind(&hdr) {
            PacketKind::Initial | PacketKind::ZeroRtt => self.initial_cids.get(&hdr.dcid).copied(),
            _ => None,
        });
        if let Some(h) = routed {
            if let Some(conn) = self.connections[h].as_mut() {
                conn.handle_datagram(now, meta, data);
                self.process_endpoint_events(h);
            }
            return;
        }
        match kind(&hdr) {
            PacketKind::Short => {
                if !self.handle_stateless_reset(&meta, data) {
                    self.send_stateless_reset(&meta, &hdr, data.len());
                }
            }
            PacketKind::VersionNegotiation | PacketKind::Retry => {}
            PacketKind::UnsupportedVersion => {
                self.send_version_negotiation(&meta, &hdr, data.len())
            }
            PacketKind::Initial | PacketKind::ZeroRtt | PacketKind::Handshake => {
                let Some(version) = hdr.version else {
                    return;
                };
                if !self.config.supported_versions.contains(&version) {
                    self.send_version_negotiation(&meta, &hdr, data.len());
                } else if kind(&hdr) == PacketKind::Initial {
                    self.accept_initial(now, meta, &hdr, data);
                }
            }
        }
    }

    /// RFC 9000 §6.1: answer an unknown version, unless the datagram is too small to be a
    /// client's first Initial (which stops us from amplifying junk)
    fn send_version_negotiation(
        &mut self,
        meta: &RecvMeta,
        hdr: &packet::ProtectedHeader,
        len: usize,
    ) {
        if self.server.is_none() || len < 1200 || self.stateless.len() > 64 {
            return;
        }
        let mut buf = Vec::new();
        packet::write_version_negotiation(
            &mut buf,
            self.rng.gen(),
            &hdr.scid,
            &hdr.dcid,
            &self.config.supported_versions,
        );
        self.stateless.push_back((meta.remote, buf));
    }

    /// Seconds on the endpoint's own clock, for token lifetimes
    fn secs(&mut self, now: Instant) -> u64 {
        let epoch = *self.epoch.get_or_insert(now);
        now.saturating_duration_since(epoch).as_secs()
    }

    /// Answer a token-less Initial with Retry (RFC 9000 §17.2.5)
    fn send_retry(
        &mut self,
        now: Instant,
        meta: &RecvMeta,
        hdr: &packet::ProtectedHeader,
        version: u32,
    ) {
        if self.stateless.len() > 64 {
            return;
        }
        let secs = self.secs(now);
        let token = self.token_key.seal(meta.remote.ip(), secs, Some(&hdr.dcid));
        let retry_scid = self.new_cid();
        let mut buf = Vec::with_capacity(64 + token.len());
        packet::write_retry(&mut buf, version, &hdr.scid, &retry_scid, &token);
        let tag = crate::crypto::retry_tag(version, &hdr.dcid, &buf);
        buf.extend_from_slice(&tag);
        self.stateless.push_back((meta.remote, buf));
    }

    /// Classify the token of a client Initial (RFC 9000 §8.1.3)
    fn check_token(&mut self, now: Instant, meta: &RecvMeta, token: &[u8]) -> TokenCheck {
        if token.is_empty() {
            return TokenCheck::None;
        }
        let secs = self.secs(now);
        let Ok(data) = self.token_key.open(meta.remote.ip(), token) else {
            return TokenCheck::None;
        };
        match data.orig_dst_cid {
            Some(odcid) if data.is_fresh(secs, RETRY_TOKEN_LIFETIME_SECS) => {
                TokenCheck::Retry(odcid)
            }
            None if data.is_fresh(secs, NEW_TOKEN_LIFETIME_SECS) => TokenCheck::NewToken,
            _ => TokenCheck::None,
        }
    }

    /// A token for the client of connection `h` to validate its address next time (NEW_TOKEN,
    /// RFC 9000 §8.1.3)
    fn issue_new_token(&mut self, h: usize) {
        let Some(now) = self.last_now else {
            return;
        };
        let secs = self.secs(now);
        if let Some(conn) = self.connections[h].as_mut() {
            let token = self.token_key.seal(conn.remote_address().ip(), secs, None);
            conn.queue_new_token(token);
        }
    }

    /// A stateless reset carries a random DCID, so it is matched by its last 16 bytes against
    /// the tokens of connections to the sender (RFC 9000 §10.3.1)
    fn handle_stateless_reset(&mut self, meta: &RecvMeta, data: &[u8]) -> bool {
        if data.len() < 21 {
            return false;
        }
        let mut token = [0u8; 16];
        token.copy_from_slice(&data[data.len() - 16..]);
        for h in 0..self.connections.len() {
            let Some(conn) = self.connections[h].as_mut() else {
                continue;
            };
            if conn.remote_address() == meta.remote && conn.handle_stateless_reset(&token) {
                self.process_endpoint_events(h);
                return true;
            }
        }
        false
    }

    /// RFC 9000 §10.3: tell the sender of a short packet for an unknown CID that the
    /// connection is gone. The reset is shorter than what triggered it, so two endpoints that
    /// both lost state cannot bounce resets forever (RFC 9000 §10.3.3)
    fn send_stateless_reset(&mut self, meta: &RecvMeta, hdr: &packet::ProtectedHeader, len: usize) {
        // RFC 9000 §10.3: at least 21 bytes, so it looks like a short packet with a payload
        const MIN_RESET: usize = 21;
        const MAX_RESET: usize = 43;
        if self.config.local_cid_len == 0 || len <= MIN_RESET || self.stateless.len() > 64 {
            return;
        }
        let size = (len - 1).min(MAX_RESET);
        let mut buf = vec![0u8; size];
        self.rng.fill(&mut buf[..size - 16]);
        // Short header form with the fixed bit, like any 1-RTT packet
        buf[0] = 0x40 | (buf[0] & 0x3f);
        let token = stateless_reset_token(&self.reset_key, &hdr.dcid);
        buf[size - 16..].copy_from_slice(&token);
        self.stateless.push_back((meta.remote, buf));
    }

    fn accept_initial(
        &mut self,
        now: Instant,
        meta: RecvMeta,
        hdr: &packet::ProtectedHeader,
        data: &mut [u8],
    ) {
        let Some(server) = self.server.clone() else {
            return;
        };
        // RFC 9000 §14.1: a server discards Initials in datagrams smaller than 1200 bytes;
        // RFC 9000 §7.2: the client's first DCID has at least 8 bytes
        if server.refuse
            || data.len() < 1200
            || hdr.dcid.len() < 8
            || self.live >= self.config.max_connections
        {
            return;
        }
        let Some(version) = hdr.version else {
            return;
        };
        // RFC 9000 §17.2: the fixed bit may only be clear if we advertised grease_quic_bit
        if !hdr.fixed_bit() && !self.config.grease_quic_bit {
            return;
        }
        // Address validation with Retry (RFC 9000 §8.1.2): the first Initial gets a Retry,
        // the second must carry its token
        let token = data.get(hdr.token.clone()).unwrap_or_default().to_vec();
        let (orig_dst_cid, retry_src_cid, validated) = match self.check_token(now, &meta, &token) {
            TokenCheck::Retry(odcid) => (odcid, Some(hdr.dcid), true),
            // RFC 9000 §8.1.3: a NEW_TOKEN token validates the address without a Retry
            TokenCheck::NewToken => {
                tracing::debug!(remote = %meta.remote, "address validated by a NEW_TOKEN token");
                (hdr.dcid, None, true)
            }
            // RFC 9000 §8.1.3: an invalid or missing token counts as no token
            TokenCheck::None if server.retry => {
                self.send_retry(now, &meta, hdr, version);
                return;
            }
            TokenCheck::None => (hdr.dcid, None, false),
        };
        // RFC 9368 §2.3: answer in our most preferred version the client can convert to
        let original = version;
        let first_packet = &data[..hdr.packet_len.min(data.len())];
        let version = version_negotiation::server_version(
            &self.config.supported_versions,
            original,
            hdr,
            first_packet,
        );
        let local_cid = self.new_cid();
        // RFC 9000 §18.2: a server with zero-length CIDs cannot offer a preferred address
        let preferred = (self.config.local_cid_len > 0
            && (server.preferred_address_v4.is_some() || server.preferred_address_v6.is_some()))
        .then(|| {
            let cid = self.new_cid();
            PreferredAddress {
                address_v4: server.preferred_address_v4,
                address_v6: server.preferred_address_v6,
                connection_id: cid,
                stateless_reset_token: stateless_reset_token(&self.reset_key, &cid),
            }
        });
        let params = params_for(
            &server.transport,
            &self.config,
            Side::Server,
            version,
            local_cid,
            Some(orig_dst_cid),
            Some(stateless_reset_token(&self.reset_key, &local_cid)),
            retry_src_cid,
            preferred,
        );
        let tls: Box<dyn crate::crypto::Session> = if server.external_tls {
            Box::new(ExternalSession::new(Side::Server, version, params))
        } else {
            let Ok(mut tls) = TlsSession::server(server.crypto.clone(), version, params) else {
                return;
            };
            // 0-RTT is off unless the transport configuration asks for it, whatever TLS allows
            if !server.transport.zero_rtt {
                tls.reject_early_data();
            }
            Box::new(tls)
        };
        let conn = Connection::new(
            ConnectionParams {
                side: Side::Server,
                version,
                endpoint_config: self.config.clone(),
                config: server.transport.clone(),
                local_cid,
                remote_cid: hdr.scid,
                orig_dst_cid,
                initial_dcid: hdr.dcid,
                retry_src_cid,
                validated,
                vn_original: None,
                remote: meta.remote,
                now,
                rng_seed: self.rng.gen(),
                reset_key: self.reset_key.clone(),
            },
            tls,
        );
        let Ok(mut conn) = conn else {
            return;
        };
        if version != original && conn.set_upgraded_from(original).is_err() {
            return;
        }
        if let Some(pa) = preferred {
            conn.set_preferred_address(pa);
        }
        let h = self.insert(conn);
        self.route_local_cid(local_cid, meta.remote, h);
        if let Some(pa) = preferred {
            self.route_local_cid(pa.connection_id, meta.remote, h);
        }
        self.initial_cids.insert(hdr.dcid, h);
        self.accept_queue.push_back(ConnectionHandle(h));
        if let Some(conn) = self.connections[h].as_mut() {
            conn.handle_datagram(now, meta, data);
        }
        self.process_endpoint_events(h);
    }

    /// Act on expired timers of every connection
    pub fn handle_timeout(&mut self, now: Instant) {
        for h in 0..self.connections.len() {
            let Some(conn) = self.connections[h].as_mut() else {
                continue;
            };
            if conn.poll_timeout().is_some_and(|t| t <= now) {
                conn.handle_timeout(now);
                self.process_endpoint_events(h);
            }
        }
    }

    /// The next datagram (or GSO batch of same-size datagrams) to send; clears `buf` and writes
    /// [`Transmit::size`] bytes into it
    pub fn poll_transmit(
        &mut self,
        now: Instant,
        max_datagrams: usize,
        buf: &mut Vec<u8>,
    ) -> Option<Transmit> {
        self.poll_transmit_from(now, max_datagrams, buf)
            .map(|(_, t)| t)
    }

    /// [`Endpoint::poll_transmit`], naming the connection the datagram belongs to (`None` for
    /// packets sent without one), for drivers with a socket per connection's preferred address
    pub fn poll_transmit_from(
        &mut self,
        now: Instant,
        max_datagrams: usize,
        buf: &mut Vec<u8>,
    ) -> Option<(Option<ConnectionHandle>, Transmit)> {
        if let Some((destination, data)) = self.stateless.pop_front() {
            buf.clear();
            buf.extend_from_slice(&data);
            let t = Transmit {
                destination,
                size: data.len(),
                ecn: None,
                segment_size: None,
                src_ip: None,
            };
            return Some((None, t));
        }
        let n = self.connections.len();
        for i in 0..n {
            // Rotate the starting point so one busy connection cannot starve the others
            let h = (self.next_transmit + i) % n;
            let Some(conn) = self.connections[h].as_mut() else {
                continue;
            };
            if let Some(t) = conn.poll_transmit(now, max_datagrams, buf) {
                self.next_transmit = h + 1;
                self.process_endpoint_events(h);
                return Some((Some(ConnectionHandle(h)), t));
            }
        }
        None
    }

    /// The earliest time [`Endpoint::handle_timeout`] should be called
    pub fn poll_timeout(&mut self) -> Option<Instant> {
        self.connections
            .iter()
            .flatten()
            .filter_map(|c| c.poll_timeout())
            .min()
    }

    /// The next event of any connection; after [`Event::Drained`] the handle is invalid
    pub fn poll_event(&mut self) -> Option<(ConnectionHandle, Event)> {
        let n = self.connections.len();
        for i in 0..n {
            let h = (self.next_event + i) % n;
            let Some(conn) = self.connections[h].as_mut() else {
                continue;
            };
            if let Some(event) = conn.poll_event() {
                self.next_event = h;
                if event == Event::Drained {
                    self.remove(h);
                    self.next_event = h + 1;
                }
                return Some((ConnectionHandle(h), event));
            }
        }
        None
    }

    /// The next incoming connection (still handshaking or already established)
    pub fn accept(&mut self) -> Option<ConnectionHandle> {
        while let Some(h) = self.accept_queue.pop_front() {
            if self.connections.get(h.0).is_some_and(|c| c.is_some()) {
                return Some(h);
            }
        }
        None
    }

    /// A connection by handle
    pub fn connection(&self, h: ConnectionHandle) -> Option<&Connection> {
        self.connections.get(h.0)?.as_ref()
    }

    /// A connection by handle, for application commands
    pub fn connection_mut(&mut self, h: ConnectionHandle) -> Option<&mut Connection> {
        self.connections.get_mut(h.0)?.as_mut()
    }

    /// Handles of all live connections
    pub fn connection_handles(&self) -> impl Iterator<Item = ConnectionHandle> + '_ {
        self.connections
            .iter()
            .enumerate()
            .filter(|(_, c)| c.is_some())
            .map(|(h, _)| ConnectionHandle(h))
    }

    /// Number of live connections
    pub fn open_connections(&self) -> usize {
        self.live
    }

    /// Whether a NEW_TOKEN token is stored for `server_name`
    #[cfg(test)]
    pub(crate) fn has_token(&self, server_name: &str) -> bool {
        self.tokens.contains_key(server_name)
    }

    /// Connection IDs currently routed (tests check NEW_CONNECTION_ID issuance)
    #[cfg(test)]
    pub(crate) fn routed_cids(&self) -> usize {
        self.cids.len()
    }

    fn new_cid(&mut self) -> ConnectionId {
        loop {
            let cid = ConnectionId::random(&mut self.rng, self.config.local_cid_len);
            if cid.is_empty() || !self.cids.contains_key(&cid) {
                return cid;
            }
        }
    }

    fn insert(&mut self, conn: Connection) -> usize {
        self.live += 1;
        match self.free.pop() {
            Some(h) => {
                self.connections[h] = Some(conn);
                h
            }
            None => {
                self.connections.push(Some(conn));
                self.connections.len() - 1
            }
        }
    }

    fn route_local_cid(&mut self, cid: ConnectionId, remote: SocketAddr, h: usize) {
        if cid.is_empty() {
            self.by_addr.insert(remote, h);
        } else {
            self.cids.insert(cid, h);
        }
    }

    fn remove(&mut self, h: usize) {
        if self.connections[h].take().is_some() {
            self.live -= 1;
            self.free.push(h);
            self.cids.retain(|_, v| *v != h);
            self.initial_cids.retain(|_, v| *v != h);
            self.by_addr.retain(|_, v| *v != h);
            self.client_attempts.remove(&h);
        }
    }

    fn process_endpoint_events(&mut self, h: usize) {
        let Some(conn) = self.connections[h].as_mut() else {
            return;
        };
        let mut restart = None;
        let mut issue_token = false;
        while let Some(e) = conn.endpoint_events.pop_front() {
            match e {
                EndpointEvent::NewCid(cid) => {
                    self.cids.insert(cid, h);
                }
                EndpointEvent::RetireCid(cid) => {
                    if self.cids.get(&cid) == Some(&h) {
                        self.cids.remove(&cid);
                    }
                }
                // Removed once the application has seen Event::Drained
                EndpointEvent::Drained => {}
                EndpointEvent::Restart(version) => restart = Some(version),
                EndpointEvent::IssueToken => issue_token = true,
                EndpointEvent::NewToken(token) => {
                    if let Some((_, name)) = self.client_attempts.get(&h) {
                        self.tokens.insert(name.clone(), token);
                    }
                }
            }
        }
        if issue_token {
            self.issue_new_token(h);
        }
        if let Some(version) = restart {
            if let Some(now) = self.last_now {
                self.restart_client(now, h, version);
            }
        }
    }
}

/// NEW_TOKEN tokens as the SOL_QUIC socket API exposes them (QUIC_SOCKOPT_TOKEN)
impl Endpoint {
    /// Client: the latest NEW_TOKEN token from the server named `server_name`, kept for the
    /// next connection to it
    pub fn new_token(&self, server_name: &str) -> Option<&[u8]> {
        self.tokens.get(server_name).map(Vec::as_slice)
    }

    /// Client: the token to send in the next connection's Initial packets to `server_name`
    /// (one saved from an earlier connection, possibly by another process)
    pub fn set_new_token(&mut self, server_name: &str, token: Vec<u8>) {
        self.tokens.insert(server_name.to_owned(), token);
    }
}

impl std::fmt::Debug for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Endpoint")
            .field("connections", &self.live)
            .field("server", &self.server.is_some())
            .finish_non_exhaustive()
    }
}
