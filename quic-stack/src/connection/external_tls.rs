//! The connection's controls for a handshake run by the application (external TLS, see
//! [`crate::crypto::external`])

use crate::crypto::external::{Direction, ExternalSession, ExternalTlsError};
use crate::crypto::{LeveledOutput, Suite};
use crate::shared::SpaceId;
use crate::tls::TlsSession;
use std::sync::Arc;
use std::time::Instant;

use super::Connection;

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
        // A secret the application just installed may open packets that arrived before it
        self.replay_early_packets(now);
        Ok(())
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

    /// Server: hand a handshake that is still waiting in external mode to the built-in TLS
    /// with `crypto` (certificate, ALPN, session store of this connection alone), replaying the
    /// CRYPTO bytes the client sent so far; refused once the application took part in the
    /// handshake ([`ExternalTlsError::Committed`])
    ///
    /// This is how a service offering the kernel's model decides TLS after accept(): every
    /// accepted connection starts external (the client's Initials are only acknowledged),
    /// and the application then either runs TLS itself or asks for the built-in one. Doing it
    /// in the core (rather than driving the external hooks from a rustls session outside)
    /// keeps the built-in session's 0-RTT and resumption: rustls sees the ClientHello as if
    /// it had been there from the start, and early keys reach the connection as usual.
    pub fn attach_server_tls(
        &mut self,
        now: Instant,
        crypto: Arc<rustls::ServerConfig>,
    ) -> Result<(), ExternalTlsError> {
        if !self.side.is_server() {
            return Err(ExternalTlsError::Committed);
        }
        let external = self.external()?;
        let params = external.local_transport_parameters().to_vec();
        let Some(replay) = external.take_replay() else {
            return Err(ExternalTlsError::Committed);
        };
        let mut tls = match TlsSession::server(crypto, self.version, params) {
            Ok(t) => t,
            Err(e) => {
                // The external session gave up its replay: nobody can finish this handshake
                let reason = e.to_string();
                self.close_with_error(
                    now,
                    crate::error::TransportError::INTERNAL_ERROR("built-in TLS refused"),
                );
                return Err(ExternalTlsError::Failed(reason));
            }
        };
        // The endpoint does the same for connections that start with the built-in TLS
        if !self.config.zero_rtt {
            tls.reject_early_data();
        }
        self.tls = Box::new(tls);
        for (space, data) in replay {
            if let Err(e) = self.tls.read_handshake_at(space, &data) {
                let reason = e.to_string();
                self.close_with_error(now, e);
                return Err(ExternalTlsError::Failed(reason));
            }
        }
        // With early data accepted the 0-RTT keys are in now, and the 0-RTT packets that
        // waited for them are opened (`replay_early_packets`); without, they are dropped
        self.external_progress(now)
    }
}
