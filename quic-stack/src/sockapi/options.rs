//! SOL_QUIC socket options: defaults, limits, state rules and errno choices of the kernel
//!
//! [`SockOptions`] is the per-socket option store. `set`/`get` apply the kernel's rules and
//! either complete on their own (stored values) or hand the caller a [`ConnAction`] /
//! [`ConnQuery`] that needs the live connection (reset a stream, install a secret, ...). The
//! service performs those on the quic-stack connection and reports lifecycle changes back
//! through the `on_*` methods, so state rules here always see the kernel's socket state.

use std::net::SocketAddr;

use super::consts::*;
use super::events::EventMask;
use super::types::*;
use super::{Errno, SockResult};

/// Socket state as the kernel tracks it in `sk_state`
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SockState {
    /// Fresh, or closed after shutdown/close/peer close
    Closed,
    /// `listen()` was called
    Listening,
    /// Connected or accepted, handshake in progress
    Establishing,
    /// 1-RTT keys installed both ways
    Established,
}

/// Which end of the connection this socket is
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Created by socket(); the kernel treats every non-listener, non-accepted socket as client
    Client,
    /// A listener or a socket returned by accept()
    Server,
}

/// Work a setsockopt needs from the connection; the service performs it and returns its errno
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConnAction {
    /// QUIC_SOCKOPT_STREAM_RESET: send RESET_STREAM (EINVAL if the stream can't be reset)
    StreamReset(ErrInfo),
    /// QUIC_SOCKOPT_STREAM_STOP_SENDING: send STOP_SENDING (EAGAIN if one is in flight)
    StopSending(ErrInfo),
    /// QUIC_SOCKOPT_CONNECTION_ID set: retire below `prior_to`, switch to `active`
    ConnectionId(ConnectionIdInfo),
    /// QUIC_SOCKOPT_CONNECTION_MIGRATION when established: probe and move to this local address
    Migrate(SocketAddr),
    /// QUIC_SOCKOPT_CONNECTION_MIGRATION on an establishing server: preferred_address param
    SetPreferredAddress(SocketAddr),
    /// QUIC_SOCKOPT_KEY_UPDATE: start a key update (EINVAL if one is unfinished)
    KeyUpdate,
    /// QUIC_SOCKOPT_TOKEN on an established server: send NEW_TOKEN (EAGAIN if one is pending)
    SendNewToken,
    /// QUIC_SOCKOPT_CRYPTO_SECRET: install a secret (external TLS)
    InstallSecret(CryptoSecret),
    /// QUIC_SOCKOPT_TRANSPORT_PARAM_EXT set: the peer's encoded extension (external TLS)
    PeerTransportParamExt(Vec<u8>),
}

/// A getsockopt value only the connection knows
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConnQuery {
    /// QUIC_SOCKOPT_STREAM_OPEN: open a stream; reply is the `StreamInfo` with the assigned id
    StreamOpen(StreamInfo),
    /// QUIC_SOCKOPT_CONNECTION_ID get: active count and lowest live number of one set
    ConnectionId {
        /// true = destination CIDs
        dest: bool,
    },
    /// QUIC_SOCKOPT_SESSION_TICKET on a server without a user key: 64 B key from peer address
    SessionTicketKey,
    /// QUIC_SOCKOPT_TRANSPORT_PARAM_EXT get: the encoded local extension (≤ 512 B)
    TransportParamExt,
}

/// Outcome of a successful setsockopt
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SetOutcome {
    /// Done: the value is stored
    Stored,
    /// Valid for the socket; the connection must now do this
    Do(ConnAction),
}

/// Outcome of a successful getsockopt
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GetOutcome {
    /// The value, already truncated to the caller's optlen
    Value(Vec<u8>),
    /// Ask the connection, then pass its answer through [`reply_for`]
    Ask(ConnQuery),
}

/// How a getsockopt value meets a short caller buffer
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fit {
    /// Struct options: truncate to optlen
    Truncate,
    /// Byte-string options: EINVAL when the buffer is too small
    Whole,
}

fn fit(value: &[u8], optlen: usize, how: Fit) -> SockResult<Vec<u8>> {
    match how {
        Fit::Truncate => Ok(value[..value.len().min(optlen)].to_vec()),
        Fit::Whole if optlen < value.len() => Err(Errno::EINVAL),
        Fit::Whole => Ok(value.to_vec()),
    }
}

/// Shape a connection's answer to a [`ConnQuery`] for a caller buffer of `optlen` bytes
pub fn reply_for(query: &ConnQuery, value: &[u8], optlen: usize) -> SockResult<Vec<u8>> {
    match query {
        ConnQuery::StreamOpen(_) | ConnQuery::ConnectionId { .. } => {
            fit(value, optlen, Fit::Truncate)
        }
        ConnQuery::SessionTicketKey | ConnQuery::TransportParamExt => {
            fit(value, optlen, Fit::Whole)
        }
    }
}

/// The kernel's per-socket transport parameter defaults (§1.7 of the reference)
pub fn default_transport_param() -> TransportParam {
    TransportParam {
        max_udp_payload_size: 65527,
        ack_delay_exponent: 3,
        max_ack_delay: 25_000,
        active_connection_id_limit: 7,
        max_idle_timeout: 30_000_000,
        max_data: 65535 * 32,
        max_stream_data_bidi_local: 65535 * 16,
        max_stream_data_bidi_remote: 65535 * 16,
        max_stream_data_uni: 65535 * 16,
        max_streams_bidi: 100,
        max_streams_uni: 100,
        ..TransportParam::default()
    }
}

/// The kernel's per-socket config defaults
pub fn default_config() -> Config {
    Config {
        version: QUIC_VERSION_V1,
        initial_smoothed_rtt: 333_000,
        congestion_control_algo: QUIC_CONG_ALG_RENO,
        ..Config::default()
    }
}

/// Largest max_streams_* a socket accepts (local: EINVAL above, remote: clamped)
pub const MAX_STREAMS_LIMIT: u16 = 4096;
const S32_MAX: u64 = i32::MAX as u64;

/// The SOL_QUIC option store of one socket
#[derive(Debug, Clone)]
pub struct SockOptions {
    state: SockState,
    role: Role,
    events: EventMask,
    local_tp: TransportParam,
    remote_tp: TransportParam,
    config: Config,
    close_local: ConnectionClose,
    close_peer: Option<ConnectionClose>,
    token: Vec<u8>,
    alpn: Vec<u8>,
    session_ticket: Vec<u8>,
    /// [level][send] installed through CRYPTO_SECRET
    secrets: [[bool; 2]; QUIC_CRYPTO_MAX as usize],
    /// QUIC_SOCKOPT_EXTERNAL_TLS_LISTENER as set; a no-op kept for older programs (accepted
    /// sockets choose their TLS after accept(), whatever its value)
    external_tls_listener: bool,
}

impl Default for SockOptions {
    fn default() -> Self {
        Self::new()
    }
}

impl SockOptions {
    /// A fresh socket: closed, client role, kernel defaults, all events off
    pub fn new() -> Self {
        Self {
            state: SockState::Closed,
            role: Role::Client,
            events: EventMask::default(),
            local_tp: default_transport_param(),
            remote_tp: TransportParam {
                remote: 1,
                ..default_transport_param()
            },
            config: default_config(),
            close_local: ConnectionClose::default(),
            close_peer: None,
            token: Vec::new(),
            alpn: Vec::new(),
            session_ticket: Vec::new(),
            secrets: [[false; 2]; QUIC_CRYPTO_MAX as usize],
            external_tls_listener: false,
        }
    }

    /// Current socket state
    pub fn state(&self) -> SockState {
        self.state
    }
    /// Client or server
    pub fn role(&self) -> Role {
        self.role
    }
    /// Enabled events
    pub fn events(&self) -> EventMask {
        self.events
    }
    /// Local transport parameters (what the connection should advertise)
    pub fn local_transport_param(&self) -> &TransportParam {
        &self.local_tp
    }
    /// Peer transport parameters (cached for 0-RTT, or learnt in the handshake)
    pub fn remote_transport_param(&self) -> &TransportParam {
        &self.remote_tp
    }
    /// Socket config
    pub fn config(&self) -> &Config {
        &self.config
    }
    /// Error code and phrase the socket closes with
    pub fn local_close(&self) -> &ConnectionClose {
        &self.close_local
    }
    /// ALPN comma list as set by the application
    pub fn alpn(&self) -> &[u8] {
        &self.alpn
    }
    /// Client token for the next Initial / last NEW_TOKEN
    pub fn token(&self) -> &[u8] {
        &self.token
    }
    /// Session ticket (client) or ticket key (server)
    pub fn session_ticket(&self) -> &[u8] {
        &self.session_ticket
    }
    /// What QUIC_SOCKOPT_EXTERNAL_TLS_LISTENER was set to (it has no effect)
    pub fn external_tls_listener(&self) -> bool {
        self.external_tls_listener
    }
    /// Both 1-RTT secrets were installed through CRYPTO_SECRET (external TLS)
    pub fn app_secrets_installed(&self) -> bool {
        self.secrets[QUIC_CRYPTO_APP as usize] == [true, true]
    }

    /// connect() succeeded: client, handshake in progress
    pub fn on_connect(&mut self) {
        self.role = Role::Client;
        self.state = SockState::Establishing;
    }
    /// listen() with a non-zero backlog succeeded (zero stops listening)
    pub fn on_listen(&mut self, backlog: i32) {
        self.role = Role::Server;
        self.state = if backlog == 0 {
            SockState::Closed
        } else {
            SockState::Listening
        };
    }
    /// The option store of a socket accept() returns: inherits events, ALPN, config and
    /// transport parameters of the listener, like the kernel's child socket
    pub fn accept_child(&self) -> Self {
        Self {
            state: SockState::Establishing,
            role: Role::Server,
            events: self.events,
            local_tp: self.local_tp,
            config: self.config,
            alpn: self.alpn.clone(),
            session_ticket: self.session_ticket.clone(),
            external_tls_listener: self.external_tls_listener,
            ..Self::new()
        }
    }
    /// The handshake completed
    pub fn on_established(&mut self) {
        self.state = SockState::Established;
    }
    /// shutdown/close, idle timeout, or peer close
    pub fn on_closed(&mut self) {
        self.state = SockState::Closed;
    }
    /// The peer sent CONNECTION_CLOSE: getsockopt(CONNECTION_CLOSE) now reports it
    pub fn on_peer_close(&mut self, close: ConnectionClose) {
        self.close_peer = Some(close);
        self.state = SockState::Closed;
    }
    /// NEW_TOKEN received (client)
    pub fn on_new_token(&mut self, token: &[u8]) {
        self.token = token.to_vec();
    }
    /// A NewSessionTicket arrived (client)
    pub fn on_session_ticket(&mut self, ticket: &[u8]) {
        self.session_ticket = ticket.to_vec();
    }
    /// The handshake learnt the peer's transport parameters
    pub fn on_peer_transport_param(&mut self, tp: TransportParam) {
        self.remote_tp = TransportParam { remote: 1, ..tp };
    }

    /// setsockopt(SOL_QUIC, optname, optval)
    pub fn set(&mut self, optname: i32, optval: &[u8]) -> SockResult<SetOutcome> {
        if optval.len() > MAX_OPTLEN {
            return Err(Errno::EINVAL);
        }
        match optname {
            QUIC_SOCKOPT_EVENT => {
                let o = EventOption::decode(optval);
                self.events.set(o.event_type, o.on != 0)?;
                Ok(SetOutcome::Stored)
            }
            QUIC_SOCKOPT_STREAM_RESET | QUIC_SOCKOPT_STREAM_STOP_SENDING => {
                if self.state != SockState::Established {
                    return Err(Errno::EINVAL);
                }
                let e = ErrInfo::decode(optval);
                if e.stream_id < 0 {
                    return Err(Errno::EINVAL);
                }
                Ok(SetOutcome::Do(if optname == QUIC_SOCKOPT_STREAM_RESET {
                    ConnAction::StreamReset(e)
                } else {
                    ConnAction::StopSending(e)
                }))
            }
            QUIC_SOCKOPT_CONNECTION_ID => {
                if self.state != SockState::Established {
                    return Err(Errno::EINVAL);
                }
                Ok(SetOutcome::Do(ConnAction::ConnectionId(
                    ConnectionIdInfo::decode(optval),
                )))
            }
            QUIC_SOCKOPT_CONNECTION_CLOSE => {
                let mut c = ConnectionClose::decode(optval);
                // Keep the phrase a C string whatever the caller passed.
                c.phrase[QUIC_CLOSE_PHRASE_BUFFER_SIZE - 1] = 0;
                self.close_local = c;
                Ok(SetOutcome::Stored)
            }
            QUIC_SOCKOPT_CONNECTION_MIGRATION => self.set_migration(optval),
            QUIC_SOCKOPT_KEY_UPDATE => {
                if self.state != SockState::Established {
                    return Err(Errno::EPIPE);
                }
                Ok(SetOutcome::Do(ConnAction::KeyUpdate))
            }
            QUIC_SOCKOPT_TRANSPORT_PARAM => self.set_transport_param(optval),
            QUIC_SOCKOPT_CONFIG => self.set_config(optval),
            QUIC_SOCKOPT_TOKEN => self.set_token(optval),
            QUIC_SOCKOPT_ALPN => self.set_alpn(optval),
            QUIC_SOCKOPT_SESSION_TICKET => {
                if self.state == SockState::Listening {
                    return Err(Errno::EPIPE);
                }
                if !(SESSION_TICKET_MIN..=SESSION_TICKET_MAX).contains(&optval.len()) {
                    return Err(Errno::EINVAL);
                }
                self.session_ticket = optval.to_vec();
                Ok(SetOutcome::Stored)
            }
            QUIC_SOCKOPT_CRYPTO_SECRET => self.set_crypto_secret(optval),
            QUIC_SOCKOPT_EXTERNAL_TLS_LISTENER => {
                // No effect any more (see the field); its old rules stay, so a program that
                // worked before sees the same answers
                if self.state != SockState::Closed {
                    return Err(Errno::EINVAL);
                }
                let v: [u8; 4] = optval
                    .get(..4)
                    .and_then(|b| b.try_into().ok())
                    .ok_or(Errno::EINVAL)?;
                self.external_tls_listener = i32::from_ne_bytes(v) != 0;
                Ok(SetOutcome::Stored)
            }
            QUIC_SOCKOPT_TRANSPORT_PARAM_EXT => {
                if self.state != SockState::Establishing {
                    return Err(Errno::EINVAL);
                }
                Ok(SetOutcome::Do(ConnAction::PeerTransportParamExt(
                    optval.to_vec(),
                )))
            }
            // STREAM_OPEN is get-only; anything else is unknown.
            _ => Err(Errno::ENOPROTOOPT),
        }
    }

    /// getsockopt(SOL_QUIC, optname): `input` is the caller's optval on entry (some options are
    /// in/out), `optlen` its buffer size
    pub fn get(&self, optname: i32, input: &[u8], optlen: usize) -> SockResult<GetOutcome> {
        let value = |v: &[u8], how| fit(v, optlen, how).map(GetOutcome::Value);
        match optname {
            QUIC_SOCKOPT_EVENT => {
                let mut o = EventOption::decode(input);
                o.on = u8::from(self.events.get(o.event_type)?);
                value(&o.encode(), Fit::Truncate)
            }
            QUIC_SOCKOPT_STREAM_OPEN => {
                if matches!(self.state, SockState::Closed | SockState::Listening) {
                    return Err(Errno::EPIPE);
                }
                let info = StreamInfo::decode(input);
                if info.stream_id < -1 {
                    return Err(Errno::EINVAL);
                }
                Ok(GetOutcome::Ask(ConnQuery::StreamOpen(info)))
            }
            QUIC_SOCKOPT_CONNECTION_ID => Ok(GetOutcome::Ask(ConnQuery::ConnectionId {
                dest: ConnectionIdInfo::decode(input).dest != 0,
            })),
            QUIC_SOCKOPT_CONNECTION_CLOSE => {
                let c = self.close_peer.as_ref().unwrap_or(&self.close_local);
                value(&c.encode(), Fit::Truncate)
            }
            QUIC_SOCKOPT_TRANSPORT_PARAM => {
                let tp = if TransportParam::decode(input).remote != 0 {
                    &self.remote_tp
                } else {
                    &self.local_tp
                };
                value(&tp.encode(), Fit::Truncate)
            }
            QUIC_SOCKOPT_CONFIG => value(&self.config.encode(), Fit::Truncate),
            QUIC_SOCKOPT_TOKEN => {
                // libquic detects the server role by this failing.
                if self.role == Role::Server {
                    return Err(Errno::EINVAL);
                }
                value(&self.token, Fit::Whole)
            }
            QUIC_SOCKOPT_ALPN => value(&self.alpn, Fit::Whole),
            QUIC_SOCKOPT_SESSION_TICKET => {
                if self.state == SockState::Listening {
                    return Err(Errno::EPIPE);
                }
                if self.role == Role::Server && self.session_ticket.is_empty() {
                    return Ok(GetOutcome::Ask(ConnQuery::SessionTicketKey));
                }
                value(&self.session_ticket, Fit::Whole)
            }
            QUIC_SOCKOPT_TRANSPORT_PARAM_EXT => {
                if self.state != SockState::Establishing {
                    return Err(Errno::EINVAL);
                }
                Ok(GetOutcome::Ask(ConnQuery::TransportParamExt))
            }
            QUIC_SOCKOPT_EXTERNAL_TLS_LISTENER => value(
                &i32::from(self.external_tls_listener).to_ne_bytes(),
                Fit::Truncate,
            ),
            // Set-only options and unknown names.
            _ => Err(Errno::ENOPROTOOPT),
        }
    }

    fn set_migration(&mut self, optval: &[u8]) -> SockResult<SetOutcome> {
        let addr = sockaddr_decode(optval)?;
        match (self.state, self.role) {
            (SockState::Closed, _) => Err(Errno::EPIPE),
            (SockState::Established, _) => {
                if addr.port() == 0 {
                    return Err(Errno::EINVAL);
                }
                if self.remote_tp.disable_active_migration != 0 {
                    return Err(Errno::EINVAL);
                }
                Ok(SetOutcome::Do(ConnAction::Migrate(canonical_addr(addr))))
            }
            (SockState::Establishing, Role::Server) => Ok(SetOutcome::Do(
                ConnAction::SetPreferredAddress(canonical_addr(addr)),
            )),
            _ => Err(Errno::EINVAL),
        }
    }

    fn set_transport_param(&mut self, optval: &[u8]) -> SockResult<SetOutcome> {
        let p = TransportParam::decode(optval);
        let remote = p.remote != 0;
        if remote {
            // Cached peer params for 0-RTT: only after connect, before the handshake ends.
            if self.state != SockState::Establishing {
                return Err(Errno::EINVAL);
            }
        } else if self.state == SockState::Established {
            return Err(Errno::EINVAL);
        }
        check_transport_param(&p, remote)?;
        let t = if remote {
            &mut self.remote_tp
        } else {
            &mut self.local_tp
        };
        // Zero means "unchanged"; booleans can only be turned on.
        macro_rules! take {
            ($($f:ident),*) => { $( if p.$f != 0 { t.$f = p.$f; } )* };
        }
        macro_rules! on {
            ($($f:ident),*) => { $( if p.$f != 0 { t.$f = 1; } )* };
        }
        on!(
            disable_active_migration,
            grease_quic_bit,
            stateless_reset,
            disable_1rtt_encryption,
            disable_compatible_version
        );
        take!(
            active_connection_id_limit,
            ack_delay_exponent,
            max_datagram_frame_size,
            max_udp_payload_size,
            max_idle_timeout,
            max_ack_delay,
            max_data,
            max_stream_data_bidi_local,
            max_stream_data_bidi_remote,
            max_stream_data_uni
        );
        // Remote stream limits above 4096 are clamped rather than refused.
        if p.max_streams_bidi != 0 {
            t.max_streams_bidi = p.max_streams_bidi.min(MAX_STREAMS_LIMIT);
        }
        if p.max_streams_uni != 0 {
            t.max_streams_uni = p.max_streams_uni.min(MAX_STREAMS_LIMIT);
        }
        Ok(SetOutcome::Stored)
    }

    fn set_config(&mut self, optval: &[u8]) -> SockResult<SetOutcome> {
        if self.state == SockState::Established {
            return Err(Errno::EINVAL);
        }
        let c = Config::decode(optval);
        check_config(&c)?;
        let t = &mut self.config;
        macro_rules! take {
            ($($f:ident),*) => { $( if c.$f != 0 { t.$f = c.$f; } )* };
        }
        take!(
            version,
            plpmtud_probe_interval,
            initial_smoothed_rtt,
            payload_cipher_type,
            congestion_control_algo,
            validate_peer_address,
            stream_data_nodelay,
            receive_session_ticket,
            certificate_request,
            keepalive_probe_interval
        );
        Ok(SetOutcome::Stored)
    }

    fn set_token(&mut self, optval: &[u8]) -> SockResult<SetOutcome> {
        match self.role {
            Role::Server => {
                if self.state != SockState::Established {
                    return Err(Errno::EINVAL);
                }
                Ok(SetOutcome::Do(ConnAction::SendNewToken))
            }
            Role::Client => {
                if optval.is_empty() || optval.len() > MAX_TOKEN_LEN {
                    return Err(Errno::EINVAL);
                }
                self.token = optval.to_vec();
                Ok(SetOutcome::Stored)
            }
        }
    }

    fn set_alpn(&mut self, optval: &[u8]) -> SockResult<SetOutcome> {
        // C callers pass strlen() or sizeof(); tolerate the terminating NUL.
        let v = match optval.iter().position(|&c| c == 0) {
            Some(n) => &optval[..n],
            None => optval,
        };
        if v.len() > MAX_ALPN_LEN || self.state == SockState::Listening {
            return Err(Errno::EINVAL);
        }
        if !v.is_empty() && v.split(|&c| c == b',').any(|e| e.is_empty()) {
            return Err(Errno::EINVAL);
        }
        self.alpn = v.to_vec();
        Ok(SetOutcome::Stored)
    }

    fn set_crypto_secret(&mut self, optval: &[u8]) -> SockResult<SetOutcome> {
        if self.state != SockState::Establishing {
            return Err(Errno::EINVAL);
        }
        let s = CryptoSecret::decode(optval);
        // INITIAL keys are derived from the DCID, never installed by the application.
        if !matches!(
            s.level,
            QUIC_CRYPTO_APP | QUIC_CRYPTO_HANDSHAKE | QUIC_CRYPTO_EARLY
        ) || s.secret_len().is_none()
        {
            return Err(Errno::EINVAL);
        }
        let dir = usize::from(s.send != 0);
        self.secrets[usize::from(s.level)][dir] = true;
        Ok(SetOutcome::Do(ConnAction::InstallSecret(s)))
    }
}

/// Range checks of a transport-parameter set (non-zero fields only; zero = unchanged)
fn check_transport_param(p: &TransportParam, remote: bool) -> SockResult<()> {
    let bad = |c: bool| if c { Err(Errno::EINVAL) } else { Ok(()) };
    let nz = |v: u64, lo: u64, hi: u64| v != 0 && !(lo..=hi).contains(&v);
    bad(nz(u64::from(p.max_udp_payload_size), 1200, 65527))?;
    bad(p.ack_delay_exponent > 20)?;
    bad(p.max_ack_delay >= 16_384_000)?;
    bad(nz(u64::from(p.active_connection_id_limit), 2, 8))?;
    bad(nz(u64::from(p.max_idle_timeout), 1_000_000, u64::MAX))?;
    bad(nz(u64::from(p.max_datagram_frame_size), 1200, u64::MAX))?;
    // Upper bounds on data limits apply to our own advertisement only.
    let (data_hi, stream_hi) = if remote {
        (u64::MAX, u64::MAX)
    } else {
        (S32_MAX / 4, S32_MAX / 8)
    };
    bad(nz(p.max_data, 1200, data_hi))?;
    bad(nz(p.max_stream_data_bidi_local, 1200, stream_hi))?;
    bad(nz(p.max_stream_data_bidi_remote, 1200, stream_hi))?;
    bad(nz(p.max_stream_data_uni, 1200, stream_hi))?;
    if !remote {
        bad(p.max_streams_bidi > MAX_STREAMS_LIMIT || p.max_streams_uni > MAX_STREAMS_LIMIT)?;
    }
    Ok(())
}

/// Range checks of a config set (non-zero fields only)
fn check_config(c: &Config) -> SockResult<()> {
    let bad = |c: bool| if c { Err(Errno::EINVAL) } else { Ok(()) };
    bad(c.initial_smoothed_rtt != 0 && !(1_000..=6_000_000).contains(&c.initial_smoothed_rtt))?;
    bad(c.congestion_control_algo >= QUIC_CONG_ALG_MAX)?;
    bad(c.plpmtud_probe_interval != 0 && c.plpmtud_probe_interval < 5_000_000)?;
    bad(c.keepalive_probe_interval != 0 && c.keepalive_probe_interval < 1_500_000)?;
    bad(c.payload_cipher_type != 0
        && !(TLS_CIPHER_AES_GCM_128..=TLS_CIPHER_CHACHA20_POLY1305)
            .contains(&c.payload_cipher_type))?;
    bad(c.certificate_request > 2)?;
    Ok(())
}

#[cfg(test)]
mod tests;
