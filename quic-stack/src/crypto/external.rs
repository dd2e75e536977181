//! A [`Session`] whose TLS handshake runs outside the stack ("external TLS")
//!
//! The kernel SOL_QUIC model: the application runs TLS 1.3 itself, moves raw handshake bytes
//! per encryption level in and out, installs the traffic secrets per level and direction, and
//! carries the transport-parameters extension (0x39) in its own ClientHello/EncryptedExtensions.
//! This session only queues bytes and turns secrets into packet keys (RFC 9001 §5.1); Initial
//! keys stay with the connection, derived from the client's first DCID as always.

use std::collections::VecDeque;

use crate::crypto::{
    self, CryptoError, HandshakeData, HeaderKey, KeyPair, Keys, LeveledOutput, PacketKey, Session,
    Suite,
};
use crate::error::TransportError;
use crate::shared::{Side, SpaceId};

/// Largest handshake backlog kept for either side of the external TLS before refusing more
/// (RFC 9000 §7.5 asks for at least 4096 bytes of CRYPTO buffering per level)
const MAX_QUEUED: usize = 64 * 1024;

/// The application asked for something the external session cannot do
#[derive(Debug, Clone, Eq, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum ExternalTlsError {
    /// Initial secrets come from the connection ID, never from the application
    #[error("secrets cannot be installed for the Initial level")]
    InitialLevel,
    /// Secrets for this level and direction were installed already
    #[error("secret already installed")]
    AlreadyInstalled,
    /// The secret's length does not match the cipher suite's hash
    #[error("secret length {0} does not match the cipher suite")]
    SecretLength(usize),
    /// The handshake is complete: handshake secrets and transport parameters are fixed
    #[error("handshake already complete")]
    Complete,
    /// Too much handshake data queued
    #[error("handshake data backlog full")]
    Backlog,
    /// The peer's transport parameters were set already
    #[error("peer transport parameters already set")]
    PeerParamsSet,
    /// The connection does not run external TLS
    #[error("not an external-TLS connection")]
    NotExternal,
    /// The connection refused the handshake state (e.g. invalid peer transport parameters)
    /// and is closing
    #[error("handshake failed: {0}")]
    Failed(String),
    /// The built-in TLS can no longer take the handshake over: the application already took
    /// part in it (sent bytes, installed a secret, set parameters), or this is a client
    #[error("the handshake is already run by the application")]
    Committed,
    /// The application already took our transport parameters for its TLS extension, so they
    /// can no longer change
    #[error("local transport parameters already taken")]
    ParamsTaken,
    /// 0-RTT protects client-to-server packets only: the early secret is Send on a client and
    /// Receive on a server, and only a client learns the server's verdict
    #[error("0-RTT runs from client to server only")]
    EarlyDirection,
}

/// Which way a traffic secret protects packets
#[derive(Debug, Clone, Copy, Eq, PartialEq)]
pub enum Direction {
    /// Ours: packets we seal
    Send,
    /// The peer's: packets we open
    Receive,
}

/// One level's two traffic secrets while they arrive one at a time
#[derive(Default)]
struct LevelSecrets {
    tx: Option<(Suite, Vec<u8>)>,
    rx: Option<(Suite, Vec<u8>)>,
    /// Keys went to the connection
    handed_out: bool,
}

/// Handshake-level (index 0) and 1-RTT (index 1) slots
fn slot(space: SpaceId) -> Result<usize, ExternalTlsError> {
    match space {
        SpaceId::Initial => Err(ExternalTlsError::InitialLevel),
        SpaceId::Handshake => Ok(0),
        SpaceId::Data => Ok(1),
    }
}

/// The connection's side of an externally run TLS handshake
pub struct ExternalSession {
    side: Side,
    version: u32,
    local_params: Vec<u8>,
    /// The application read `local_params` (for its extension 0x39): they are fixed now
    params_taken: std::cell::Cell<bool>,
    peer_params: Option<Vec<u8>>,
    alpn: Option<Vec<u8>>,
    /// CRYPTO bytes the peer sent, by level, for the application to read
    received: VecDeque<(SpaceId, Vec<u8>)>,
    received_len: usize,
    /// Handshake bytes from the application for the connection's CRYPTO streams
    to_send: VecDeque<(SpaceId, Vec<u8>)>,
    levels: [LevelSecrets; 2],
    /// The 1-RTT secrets of the phase after the last keys handed out, for key updates
    next_1rtt: Option<(Suite, Vec<u8>, Vec<u8>)>,
    /// Server: a copy of every CRYPTO byte received while the application has not yet taken
    /// part in the handshake, so the built-in TLS can still take it over (the kernel's accept
    /// comes before the handshake, whose owner is chosen afterwards); `None` once the
    /// application committed to running TLS itself, or on a client
    replay: Option<Vec<(SpaceId, Vec<u8>)>>,
    replay_len: usize,
    /// The 0-RTT secret (RFC 9001 §5.1, client_early_traffic_secret), one direction only
    early: Option<(Suite, Vec<u8>)>,
    /// Client: whether the server accepted 0-RTT, as the application's TLS reported it
    early_verdict: Option<bool>,
}

impl std::fmt::Debug for ExternalSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ExternalSession")
            .field("side", &self.side)
            .field("handshaking", &self.is_handshaking())
            .finish_non_exhaustive()
    }
}

impl ExternalSession {
    /// A session for QUIC `version` whose handshake the application runs; `local_params` is
    /// our encoded transport parameters, which the application sends in extension 0x39
    pub fn new(side: Side, version: u32, local_params: Vec<u8>) -> Self {
        Self {
            side,
            version,
            local_params,
            params_taken: std::cell::Cell::new(false),
            peer_params: None,
            alpn: None,
            received: VecDeque::new(),
            received_len: 0,
            to_send: VecDeque::new(),
            levels: Default::default(),
            next_1rtt: None,
            replay: (side == Side::Server).then(Vec::new),
            replay_len: 0,
            early: None,
            early_verdict: None,
        }
    }

    /// The application acted on the handshake: it is its own from now on
    fn commit(&mut self) {
        self.replay = None;
        self.replay_len = 0;
    }

    /// Everything the peer sent so far, by level and in order, if the application has not
    /// taken part in the handshake yet (server only); the session is unusable afterwards,
    /// because the caller replaces it with a built-in TLS session
    pub fn take_replay(&mut self) -> Option<Vec<(SpaceId, Vec<u8>)>> {
        self.replay_len = 0;
        self.replay.take()
    }

    /// Our encoded transport parameters (the body of TLS extension 0x39); from now on they
    /// are fixed
    pub fn local_transport_parameters(&self) -> &[u8] {
        self.params_taken.set(true);
        &self.local_params
    }

    /// Our encoded transport parameters while they may still change (nobody took them yet)
    pub(crate) fn untaken_local_parameters(&self) -> Option<&[u8]> {
        (!self.params_taken.get()).then_some(self.local_params.as_slice())
    }

    /// Replace our encoded transport parameters before the application took them
    pub(crate) fn replace_local_parameters(
        &mut self,
        params: Vec<u8>,
    ) -> Result<(), ExternalTlsError> {
        if self.params_taken.get() {
            return Err(ExternalTlsError::ParamsTaken);
        }
        self.local_params = params;
        Ok(())
    }

    /// Remember the peer's encoded transport parameters from its TLS extension 0x39; the
    /// connection checks them when it next drives the handshake
    pub fn set_peer_transport_parameters(&mut self, params: &[u8]) -> Result<(), ExternalTlsError> {
        if self.peer_params.is_some() {
            return Err(ExternalTlsError::PeerParamsSet);
        }
        if !self.is_handshaking() {
            return Err(ExternalTlsError::Complete);
        }
        self.commit();
        self.peer_params = Some(params.to_vec());
        Ok(())
    }

    /// Record the ALPN protocol the application's TLS negotiated
    pub fn set_alpn(&mut self, alpn: Option<Vec<u8>>) {
        self.commit();
        self.alpn = alpn;
    }

    /// Queue handshake bytes to send in CRYPTO frames at `level` (Data: 1-RTT, e.g. a
    /// NewSessionTicket)
    pub fn send_handshake(&mut self, level: SpaceId, data: &[u8]) -> Result<(), ExternalTlsError> {
        let queued: usize = self.to_send.iter().map(|(_, d)| d.len()).sum();
        if queued + data.len() > MAX_QUEUED {
            return Err(ExternalTlsError::Backlog);
        }
        if !data.is_empty() {
            self.commit();
            self.to_send.push_back((level, data.to_vec()));
        }
        Ok(())
    }

    /// The next run of CRYPTO bytes the peer sent, with its level, in order
    pub fn recv_handshake(&mut self) -> Option<(SpaceId, Vec<u8>)> {
        let (level, data) = self.received.pop_front()?;
        self.received_len -= data.len();
        Some((level, data))
    }

    /// Whether received handshake bytes wait for the application
    pub fn has_received(&self) -> bool {
        !self.received.is_empty()
    }

    /// Install the traffic secret of `level` (Handshake or Data = 1-RTT) for one direction;
    /// the keys reach the connection once both directions of the level are present
    pub fn install_secret(
        &mut self,
        level: SpaceId,
        direction: Direction,
        suite: Suite,
        secret: &[u8],
    ) -> Result<(), ExternalTlsError> {
        let i = slot(level)?;
        if secret.len() != suite.secret_len() {
            return Err(ExternalTlsError::SecretLength(secret.len()));
        }
        if !self.is_handshaking() {
            return Err(ExternalTlsError::Complete);
        }
        let s = &mut self.levels[i];
        let target = match direction {
            Direction::Send => &mut s.tx,
            Direction::Receive => &mut s.rx,
        };
        if target.is_some() {
            return Err(ExternalTlsError::AlreadyInstalled);
        }
        *target = Some((suite, secret.to_vec()));
        self.commit();
        Ok(())
    }

    /// Install the 0-RTT secret: a client's Send secret seals its early data, a server's
    /// Receive secret (installed once its TLS accepted early data) opens it
    pub fn install_early_secret(
        &mut self,
        direction: Direction,
        suite: Suite,
        secret: &[u8],
    ) -> Result<(), ExternalTlsError> {
        if secret.len() != suite.secret_len() {
            return Err(ExternalTlsError::SecretLength(secret.len()));
        }
        if !self.is_handshaking() {
            return Err(ExternalTlsError::Complete);
        }
        let expected = match self.side {
            Side::Client => Direction::Send,
            Side::Server => Direction::Receive,
        };
        if direction != expected {
            return Err(ExternalTlsError::EarlyDirection);
        }
        if self.early.is_some() {
            return Err(ExternalTlsError::AlreadyInstalled);
        }
        self.early = Some((suite, secret.to_vec()));
        Ok(())
    }

    /// Client: record whether the server accepted 0-RTT (the application's TLS saw the
    /// early_data extension in EncryptedExtensions, or not)
    pub fn set_early_data_accepted(&mut self, accepted: bool) -> Result<(), ExternalTlsError> {
        if self.side.is_server() {
            return Err(ExternalTlsError::EarlyDirection);
        }
        self.early_verdict = Some(accepted);
        Ok(())
    }

    /// Whether both secrets of `level` are installed
    pub fn has_keys(&self, level: SpaceId) -> bool {
        slot(level).is_ok_and(|i| self.levels[i].tx.is_some() && self.levels[i].rx.is_some())
    }

    /// Keys of a level whose two secrets are both present and not yet handed out
    fn ready_keys(&mut self, i: usize) -> Option<Keys> {
        let version = self.version;
        let s = &mut self.levels[i];
        if s.handed_out {
            return None;
        }
        let ((tx_suite, tx), (rx_suite, rx)) = (s.tx.as_ref()?, s.rx.as_ref()?);
        let (local_packet, local_header) = crypto::keys_from_secret(version, *tx_suite, tx);
        let (remote_packet, remote_header) = crypto::keys_from_secret(version, *rx_suite, rx);
        s.handed_out = true;
        if i == 1 {
            // Key updates derive from the secrets of the phase just installed (RFC 9001 §6.1)
            self.next_1rtt = Some((
                *tx_suite,
                crypto::next_secret(version, *tx_suite, tx),
                crypto::next_secret(version, *rx_suite, rx),
            ));
            // The secrets themselves are no longer needed
            s.tx = s.tx.take().map(|(suite, _)| (suite, Vec::new()));
            s.rx = s.rx.take().map(|(suite, _)| (suite, Vec::new()));
            // Nor is the 0-RTT secret: no 0-RTT packet is sent or opened after 1-RTT keys
            self.early = None;
        }
        Some(Keys {
            header: KeyPair {
                local: local_header,
                remote: remote_header,
            },
            packet: KeyPair {
                local: local_packet,
                remote: remote_packet,
            },
        })
    }
}

impl Session for ExternalSession {
    fn is_handshaking(&self) -> bool {
        !self.levels[1].handed_out
    }

    fn read_handshake(&mut self, data: &[u8]) -> Result<bool, TransportError> {
        self.read_handshake_at(SpaceId::Initial, data)
    }

    fn read_handshake_at(&mut self, space: SpaceId, data: &[u8]) -> Result<bool, TransportError> {
        if self.received_len + data.len() > MAX_QUEUED {
            // RFC 9000 §7.5: the application does not keep up with the peer's handshake data
            return Err(TransportError::CRYPTO_BUFFER_EXCEEDED(
                "external TLS handshake backlog",
            ));
        }
        self.received_len += data.len();
        match self.received.back_mut() {
            Some((level, buf)) if *level == space => buf.extend_from_slice(data),
            _ => self.received.push_back((space, data.to_vec())),
        }
        if self.replay_len + data.len() > MAX_QUEUED {
            // Far beyond any ClientHello: keep serving the application, but no takeover
            self.commit();
        }
        if let Some(replay) = &mut self.replay {
            self.replay_len += data.len();
            match replay.last_mut() {
                Some((level, buf)) if *level == space => buf.extend_from_slice(data),
                _ => replay.push((space, data.to_vec())),
            }
        }
        Ok(false)
    }

    fn write_handshake(&mut self, _buf: &mut Vec<u8>) -> Option<Keys> {
        // Output carries explicit levels: see `poll_leveled`
        None
    }

    fn poll_leveled(&mut self) -> Option<LeveledOutput> {
        // Keys first, so bytes for a level never wait behind their own keys
        for (i, space) in [(0, SpaceId::Handshake), (1, SpaceId::Data)] {
            if let Some(keys) = self.ready_keys(i) {
                return Some(LeveledOutput::Keys(space, keys));
            }
        }
        let (level, data) = self.to_send.pop_front()?;
        Some(LeveledOutput::Handshake(level, data))
    }

    fn next_1rtt_keys(&mut self) -> Option<KeyPair<Box<dyn PacketKey>>> {
        let version = self.version;
        let (suite, tx, rx) = self.next_1rtt.as_mut()?;
        let (local, _) = crypto::keys_from_secret(version, *suite, tx);
        let (remote, _) = crypto::keys_from_secret(version, *suite, rx);
        *tx = crypto::next_secret(version, *suite, tx);
        *rx = crypto::next_secret(version, *suite, rx);
        Some(KeyPair { local, remote })
    }

    fn early_crypto(&self) -> Option<(Box<dyn HeaderKey>, Box<dyn PacketKey>)> {
        let (suite, secret) = self.early.as_ref()?;
        let (packet, header) = crypto::keys_from_secret(self.version, *suite, secret);
        Some((header, packet))
    }

    fn early_data_accepted(&self) -> Option<bool> {
        self.early_verdict
    }

    fn transport_parameters(&self) -> Option<&[u8]> {
        self.peer_params.as_deref()
    }

    fn handshake_data(&self) -> Option<HandshakeData> {
        (!self.is_handshaking()).then(|| HandshakeData {
            alpn: self.alpn.clone(),
            server_name: None,
        })
    }

    fn peer_identity(&self) -> Option<Vec<Vec<u8>>> {
        // The application verified the peer; the stack never sees the certificate
        None
    }

    fn export_keying_material(
        &self,
        _output: &mut [u8],
        _label: &[u8],
        _context: &[u8],
    ) -> Result<(), CryptoError> {
        // Needs the TLS exporter secret, which stays with the application
        Err(CryptoError)
    }

    fn side(&self) -> Side {
        self.side
    }

    fn as_external(&mut self) -> Option<&mut ExternalSession> {
        Some(self)
    }

    fn as_external_ref(&self) -> Option<&ExternalSession> {
        Some(self)
    }
}
