//! rustls QUIC adapter implementing [`crate::crypto::Session`]
//!
//! [`TlsSession`] wraps `rustls::quic::{ClientConnection, ServerConnection}` and hands rustls's
//! packet and header keys to the connection through our [`PacketKey`]/[`HeaderKey`] traits.
//! The config helpers build TLS 1.3-only configs on the ring provider (RFC 9001 §4.2: QUIC
//! requires TLS 1.3). Nothing here reads the environment: the driver decides about key logging
//! and passes the decision in through [`key_log`].

use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, WebPkiSupportedAlgorithms};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::quic::{self as rq, KeyChange};
use rustls::server::WebPkiClientVerifier;
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, ServerConfig, SignatureScheme};

use crate::crypto::{
    self, CryptoError, HandshakeData, HeaderKey, KeyPair, Keys, PacketKey, Session, VERSION_1,
    VERSION_2,
};
use crate::error::{TransportError, TransportErrorCode};
use crate::shared::Side;

mod rekey;

/// A TLS session or config could not be set up
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TlsError {
    /// rustls refused the config or the session
    #[error("TLS: {0}")]
    Rustls(#[from] rustls::Error),
    /// The client certificate verifier could not be built (e.g. an empty CA store)
    #[error("client certificate verifier: {0}")]
    Verifier(#[from] rustls::server::VerifierBuilderError),
    /// A QUIC version rustls has no keys for
    #[error("unsupported QUIC version {0:#x}")]
    UnsupportedVersion(u32),
    /// Not a valid DNS name or IP address
    #[error("invalid server name {0:?}")]
    InvalidServerName(String),
}

/// The rustls key schedule matching a QUIC version
fn rustls_version(version: u32) -> Result<rq::Version, TlsError> {
    match version {
        VERSION_1 => Ok(rq::Version::V1),
        VERSION_2 => Ok(rq::Version::V2),
        other => Err(TlsError::UnsupportedVersion(other)),
    }
}

/// A TLS 1.3 handshake for one QUIC connection, on rustls
pub struct TlsSession {
    conn: rq::Connection,
    side: Side,
    /// Secrets for the next 1-RTT key phase, once 1-RTT keys have been handed out
    next_secrets: Option<rq::Secrets>,
    /// Whether `read_handshake` has already reported handshake data as available
    got_handshake_data: bool,
    /// Set on a client that may change QUIC version mid-handshake (see [`Self::client_upgradable`])
    rekey: Option<rekey::Rekey>,
}

impl std::fmt::Debug for TlsSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsSession")
            .field("side", &self.side)
            .field("handshaking", &self.conn.is_handshaking())
            .finish_non_exhaustive()
    }
}

impl TlsSession {
    /// Start a client handshake to `server_name` (a DNS name or IP address), offering our
    /// encoded transport parameters
    pub fn client(
        config: Arc<ClientConfig>,
        version: u32,
        server_name: &str,
        transport_params: Vec<u8>,
    ) -> Result<Self, TlsError> {
        let version = rustls_version(version)?;
        let name = ServerName::try_from(server_name.to_owned())
            .map_err(|_| TlsError::InvalidServerName(server_name.to_owned()))?;
        let conn = rq::ClientConnection::new(config, version, name, transport_params)?;
        Ok(Self::new(conn.into(), Side::Client))
    }

    /// Start a server handshake, sending our encoded transport parameters
    pub fn server(
        config: Arc<ServerConfig>,
        version: u32,
        transport_params: Vec<u8>,
    ) -> Result<Self, TlsError> {
        let version = rustls_version(version)?;
        let conn = rq::ServerConnection::new(config, version, transport_params)?;
        Ok(Self::new(conn.into(), Side::Server))
    }

    /// Server: refuse early data from this client even if the config and its ticket allow it
    /// (RFC 9001 §4.6.2); must be called before the ClientHello is read
    pub fn reject_early_data(&mut self) {
        if let rq::Connection::Server(s) = &mut self.conn {
            s.reject_early_data();
        }
    }

    fn new(conn: rq::Connection, side: Side) -> Self {
        Self {
            conn,
            side,
            next_secrets: None,
            got_handshake_data: false,
            rekey: None,
        }
    }

    /// Like [`Self::client`], for a client offering other versions in compatible version
    /// negotiation (RFC 9368 §2.3): the session can later follow the server into one of them
    /// ([`Session::set_version`]). It works on a per-connection copy of `config` whose key log
    /// also hands the traffic secrets to the session (the configured key log still gets them).
    pub fn client_upgradable(
        config: Arc<ClientConfig>,
        version: u32,
        server_name: &str,
        transport_params: Vec<u8>,
    ) -> Result<Self, TlsError> {
        let mut own = (*config).clone();
        let capture = Arc::new(rekey::SecretCapture::new(own.key_log.clone()));
        own.key_log = capture.clone();
        let mut session = Self::client(Arc::new(own), version, server_name, transport_params)?;
        session.rekey = Some(rekey::Rekey::new(capture, version));
        Ok(session)
    }

    /// Our name for the negotiated cipher suite
    fn suite(&self) -> Option<crypto::Suite> {
        use rustls::CipherSuite as C;
        match self.conn.negotiated_cipher_suite()?.suite() {
            C::TLS13_AES_128_GCM_SHA256 => Some(crypto::Suite::Aes128Gcm),
            C::TLS13_AES_256_GCM_SHA384 => Some(crypto::Suite::Aes256Gcm),
            C::TLS13_CHACHA20_POLY1305_SHA256 => Some(crypto::Suite::ChaCha20Poly1305),
            _ => None,
        }
    }

    /// Keys re-derived for a changed version, when the session changed version
    fn rekeyed(&mut self, one_rtt: bool) -> Option<Keys> {
        let suite = self.suite();
        let side = self.side;
        let rekey = self.rekey.as_mut().filter(|r| r.active())?;
        let keys = suite.and_then(|suite| {
            if one_rtt {
                rekey.one_rtt_keys(suite, side)
            } else {
                rekey.handshake_keys(suite, side)
            }
        });
        if keys.is_none() {
            // Cannot happen with rustls logging every TLS 1.3 secret; the handshake then
            // fails on undecryptable packets rather than with wrong-version keys silently
            tracing::warn!("no traffic secrets captured for the negotiated version");
        }
        keys
    }

    /// Turn a rustls error into the CONNECTION_CLOSE it calls for
    fn transport_error(&self, err: rustls::Error) -> TransportError {
        let reason = err.to_string();
        // RFC 9001 §4.8: a TLS alert is sent as CRYPTO_ERROR, 0x0100 plus the alert value
        if let Some(alert) = self.conn.alert() {
            return TransportError::new(TransportErrorCode::crypto(u8::from(alert)), reason);
        }
        let code = match err {
            rustls::Error::InvalidMessage(_)
            | rustls::Error::PeerMisbehaved(_)
            | rustls::Error::PeerIncompatible(_)
            | rustls::Error::InappropriateMessage { .. }
            | rustls::Error::InappropriateHandshakeMessage { .. } => {
                TransportErrorCode::PROTOCOL_VIOLATION
            }
            _ => TransportErrorCode::INTERNAL_ERROR,
        };
        TransportError::new(code, reason)
    }

    /// Whether ALPN (and on the server, SNI) can be reported yet
    fn handshake_data_ready(&self) -> bool {
        let sni_known = match &self.conn {
            rq::Connection::Server(s) => s.server_name().is_some(),
            rq::Connection::Client(_) => false,
        };
        !self.conn.is_handshaking() || self.conn.alpn_protocol().is_some() || sni_known
    }
}

/// Convert rustls's keys for one level into ours
fn convert_keys(keys: rq::Keys) -> Keys {
    Keys {
        header: KeyPair {
            local: Box::new(RustlsHeaderKey(keys.local.header)),
            remote: Box::new(RustlsHeaderKey(keys.remote.header)),
        },
        packet: KeyPair {
            local: Box::new(RustlsPacketKey(keys.local.packet)),
            remote: Box::new(RustlsPacketKey(keys.remote.packet)),
        },
    }
}

impl Session for TlsSession {
    fn is_handshaking(&self) -> bool {
        self.conn.is_handshaking()
    }

    fn read_handshake(&mut self, data: &[u8]) -> Result<bool, TransportError> {
        if let Err(err) = self.conn.read_hs(data) {
            return Err(self.transport_error(err));
        }
        if !self.got_handshake_data && self.handshake_data_ready() {
            self.got_handshake_data = true;
            return Ok(true);
        }
        Ok(false)
    }

    fn write_handshake(&mut self, buf: &mut Vec<u8>) -> Option<Keys> {
        match self.conn.write_hs(buf)? {
            KeyChange::Handshake { keys } => {
                self.rekeyed(false).or_else(|| Some(convert_keys(keys)))
            }
            KeyChange::OneRtt { keys, next } => {
                // rustls hands over secrets already advanced to the next key phase
                self.next_secrets = Some(next);
                let rekeyed = self.rekeyed(true);
                if let Some(r) = &self.rekey {
                    r.settle();
                }
                rekeyed.or_else(|| Some(convert_keys(keys)))
            }
        }
    }

    fn next_1rtt_keys(&mut self) -> Option<KeyPair<Box<dyn PacketKey>>> {
        let side = self.side;
        if let Some(rekey) = self.rekey.as_mut().filter(|r| r.active()) {
            return rekey.next_1rtt_keys(side);
        }
        let keys = self.next_secrets.as_mut()?.next_packet_keys();
        Some(KeyPair {
            local: Box::new(RustlsPacketKey(keys.local)),
            remote: Box::new(RustlsPacketKey(keys.remote)),
        })
    }

    fn early_crypto(&self) -> Option<(Box<dyn HeaderKey>, Box<dyn PacketKey>)> {
        let keys = self.conn.zero_rtt_keys()?;
        Some((
            Box::new(RustlsHeaderKey(keys.header)),
            Box::new(RustlsPacketKey(keys.packet)),
        ))
    }

    fn early_data_accepted(&self) -> Option<bool> {
        match &self.conn {
            rq::Connection::Client(c) if !c.is_handshaking() => Some(c.is_early_data_accepted()),
            _ => None,
        }
    }

    fn transport_parameters(&self) -> Option<&[u8]> {
        // A resuming rustls client reports the parameters remembered with the session ticket
        // (meant for 0-RTT) from the ClientHello on; those carry the previous connection's
        // initial_source_connection_id. Only hand out the server's own ones, which arrive in
        // EncryptedExtensions together with the ALPN choice.
        if self.side == Side::Client && !self.handshake_data_ready() {
            return None;
        }
        self.conn.quic_transport_parameters()
    }

    fn early_transport_parameters(&self) -> Option<&[u8]> {
        // Before EncryptedExtensions, rustls reports the parameters stored with the ticket
        if self.side == Side::Server || self.handshake_data_ready() {
            return None;
        }
        self.conn.quic_transport_parameters()
    }

    fn handshake_data(&self) -> Option<HandshakeData> {
        if !self.got_handshake_data {
            return None;
        }
        Some(HandshakeData {
            alpn: self.conn.alpn_protocol().map(<[u8]>::to_vec),
            server_name: match &self.conn {
                rq::Connection::Server(s) => s.server_name().map(str::to_owned),
                rq::Connection::Client(_) => None,
            },
        })
    }

    fn peer_identity(&self) -> Option<Vec<Vec<u8>>> {
        let certs = self.conn.peer_certificates()?;
        Some(certs.iter().map(|c| c.as_ref().to_vec()).collect())
    }

    fn export_keying_material(
        &self,
        output: &mut [u8],
        label: &[u8],
        context: &[u8],
    ) -> Result<(), CryptoError> {
        self.conn
            .export_keying_material(output, label, Some(context))
            .map(|_| ())
            .map_err(|_| CryptoError)
    }

    fn side(&self) -> Side {
        self.side
    }

    fn set_version(&mut self, version: u32) -> Result<(), CryptoError> {
        if !crypto::is_supported_version(version) {
            return Err(CryptoError);
        }
        let rekey = self.rekey.as_mut().ok_or(CryptoError)?;
        rekey.set_version(version);
        Ok(())
    }
}

/// rustls's header protection behind our [`HeaderKey`]
struct RustlsHeaderKey(Box<dyn rq::HeaderProtectionKey>);

impl HeaderKey for RustlsHeaderKey {
    fn sample_size(&self) -> usize {
        self.0.sample_len()
    }

    fn decrypt(&self, pn_offset: usize, packet: &mut [u8]) -> Result<(), CryptoError> {
        let (first, pn, sample) =
            crypto::split_for_header_protection(pn_offset, self.sample_size(), packet)?;
        // rustls reads the packet number length from the unmasked first byte and only unmasks
        // that many of the 4 bytes passed
        self.0
            .decrypt_in_place(sample, first, pn)
            .map_err(|_| CryptoError)
    }

    fn encrypt(&self, pn_offset: usize, packet: &mut [u8]) -> Result<(), CryptoError> {
        let (first, pn, sample) =
            crypto::split_for_header_protection(pn_offset, self.sample_size(), packet)?;
        self.0
            .encrypt_in_place(sample, first, pn)
            .map_err(|_| CryptoError)
    }
}

/// rustls's packet protection behind our [`PacketKey`]
struct RustlsPacketKey(Box<dyn rq::PacketKey>);

impl PacketKey for RustlsPacketKey {
    fn seal(&self, packet_number: u64, header: &[u8], payload_and_tag: &mut [u8]) {
        // rustls returns the tag separately; `seal_with` writes it into the tail
        crypto::seal_with(payload_and_tag, |payload| {
            self.0.encrypt_in_place(packet_number, header, payload).ok()
        });
    }

    fn open(
        &self,
        packet_number: u64,
        header: &[u8],
        payload_and_tag: &mut [u8],
    ) -> Result<usize, CryptoError> {
        self.0
            .decrypt_in_place(packet_number, header, payload_and_tag)
            .map(|plain| plain.len())
            .map_err(|_| CryptoError)
    }

    fn tag_len(&self) -> usize {
        self.0.tag_len()
    }

    fn confidentiality_limit(&self) -> u64 {
        self.0.confidentiality_limit()
    }

    fn integrity_limit(&self) -> u64 {
        self.0.integrity_limit()
    }
}

/// The ring crypto provider: this project never builds aws-lc-rs
fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// A key logger for `config.key_log`: rustls's [`rustls::KeyLogFile`] (which writes to the file
/// named by `SSLKEYLOGFILE`) when `enabled`, else nothing
///
/// The driver decides `enabled` (typically: whether `SSLKEYLOGFILE` is set), so the core never
/// consults the environment on its own.
pub fn key_log(enabled: bool) -> Arc<dyn rustls::KeyLog> {
    if enabled {
        Arc::new(rustls::KeyLogFile::new())
    } else {
        Arc::new(rustls::NoKeyLog)
    }
}

/// A TLS 1.3 client config trusting `roots`, offering `alpn`, with an optional client
/// certificate chain and key; 0-RTT is enabled (used when a resumption ticket allows it)
pub fn client_config(
    roots: RootCertStore,
    alpn: Vec<Vec<u8>>,
    client_auth: Option<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>)>,
) -> Result<ClientConfig, TlsError> {
    let builder = ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .with_root_certificates(roots);
    let config = match client_auth {
        Some((chain, key)) => builder.with_client_auth_cert(chain, key)?,
        None => builder.with_no_client_auth(),
    };
    Ok(finish_client_config(config, alpn))
}

/// A TLS 1.3 client config that accepts ANY server certificate, for interop tests and tools
/// only: it authenticates nobody and is open to any active attacker
///
/// Handshake signatures are still checked, so the server must hold the key of the certificate
/// it presents.
pub fn danger_insecure_client_config(alpn: Vec<Vec<u8>>) -> Result<ClientConfig, TlsError> {
    danger_insecure_client_config_with_provider(provider(), alpn)
}

/// [`danger_insecure_client_config`] on a caller-chosen provider, e.g. one restricted to a
/// single cipher suite (the interop runner's `chacha20` test case); same caveats
pub fn danger_insecure_client_config_with_provider(
    provider: Arc<CryptoProvider>,
    alpn: Vec<Vec<u8>>,
) -> Result<ClientConfig, TlsError> {
    let verifier = Arc::new(AcceptAnyServerCert(
        provider.signature_verification_algorithms,
    ));
    let config = ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_no_client_auth();
    Ok(finish_client_config(config, alpn))
}

fn finish_client_config(mut config: ClientConfig, alpn: Vec<Vec<u8>>) -> ClientConfig {
    config.alpn_protocols = alpn;
    config.enable_early_data = true;
    config
}

/// A TLS 1.3 server config presenting `cert_chain`/`key` and selecting from `alpn`
///
/// With `client_ca`, clients must present a certificate chaining to one of those roots (mutual
/// TLS). `early_data` lets resumed clients send 0-RTT.
pub fn server_config(
    cert_chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
    alpn: Vec<Vec<u8>>,
    client_ca: Option<RootCertStore>,
    early_data: bool,
) -> Result<ServerConfig, TlsError> {
    let provider = provider();
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&[&rustls::version::TLS13])?;
    let builder = match client_ca {
        Some(roots) => builder.with_client_cert_verifier(
            WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider).build()?,
        ),
        None => builder.with_no_client_auth(),
    };
    let mut config = builder.with_single_cert(cert_chain, key)?;
    config.alpn_protocols = alpn;
    // RFC 9001 §4.6.1: a server accepting 0-RTT MUST send max_early_data_size 0xffffffff;
    // 0 means no early data
    config.max_early_data_size = if early_data { u32::MAX } else { 0 };
    Ok(config)
}

/// A server certificate verifier that trusts every certificate (see
/// [`danger_insecure_client_config`])
#[derive(Debug)]
struct AcceptAnyServerCert(WebPkiSupportedAlgorithms);

impl ServerCertVerifier for AcceptAnyServerCert {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.0)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.0)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rcgen::{BasicConstraints, CertificateParams, IsCa, KeyPair as RcKeyPair};
    use rustls::pki_types::PrivatePkcs8KeyDer;

    /// A CA and its key, to sign leaf certificates
    struct Ca {
        cert: rcgen::Certificate,
        key: RcKeyPair,
    }

    impl Ca {
        fn new(name: &str) -> Self {
            let key = RcKeyPair::generate().unwrap();
            let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
            params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
            params
                .distinguished_name
                .push(rcgen::DnType::CommonName, name);
            let cert = params.self_signed(&key).unwrap();
            Self { cert, key }
        }

        fn roots(&self) -> RootCertStore {
            let mut roots = RootCertStore::empty();
            roots.add(self.cert.der().clone()).unwrap();
            roots
        }

        /// A leaf certificate for `name` and its key
        fn leaf(&self, name: &str) -> (Vec<CertificateDer<'static>>, PrivateKeyDer<'static>) {
            let key = RcKeyPair::generate().unwrap();
            let params = CertificateParams::new(vec![name.to_owned()]).unwrap();
            let cert = params.signed_by(&key, &self.cert, &self.key).unwrap();
            (
                vec![cert.der().clone()],
                PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der())),
            )
        }
    }

    const CLIENT_PARAMS: &[u8] = b"client transport parameters";
    const SERVER_PARAMS: &[u8] = b"server transport parameters";

    /// Keys each side obtained, in order (Handshake, then 1-RTT)
    #[derive(Default)]
    struct Obtained {
        keys: Vec<Keys>,
        data_events: usize,
    }

    /// Move bytes from `from` to `to` until `from` has nothing more to say
    fn pump(
        from: &mut TlsSession,
        from_got: &mut Obtained,
        to: &mut TlsSession,
        to_got: &mut Obtained,
    ) -> Result<bool, TransportError> {
        let mut progressed = false;
        loop {
            let mut buf = Vec::new();
            let keys = from.write_handshake(&mut buf);
            if !buf.is_empty() {
                progressed = true;
                if to.read_handshake(&buf)? {
                    to_got.data_events += 1;
                }
            }
            match keys {
                Some(keys) => {
                    progressed = true;
                    from_got.keys.push(keys);
                }
                None if buf.is_empty() => return Ok(progressed),
                None => {}
            }
        }
    }

    /// Run a handshake in memory; an error names the side that failed to read
    fn handshake(
        client: &mut TlsSession,
        server: &mut TlsSession,
    ) -> Result<(Obtained, Obtained), (Side, TransportError)> {
        let mut c = Obtained::default();
        let mut s = Obtained::default();
        loop {
            let a = pump(client, &mut c, server, &mut s).map_err(|e| (Side::Server, e))?;
            let b = pump(server, &mut s, client, &mut c).map_err(|e| (Side::Client, e))?;
            if !a && !b {
                return Ok((c, s));
            }
        }
    }

    struct Setup {
        client_config: Arc<ClientConfig>,
        server_config: Arc<ServerConfig>,
    }

    fn setup() -> (Setup, Ca) {
        let ca = Ca::new("test CA");
        let (chain, key) = ca.leaf("localhost");
        let client =
            client_config(ca.roots(), vec![b"h3".to_vec(), b"vpn".to_vec()], None).unwrap();
        let server = server_config(chain, key, vec![b"vpn".to_vec()], None, true).unwrap();
        (
            Setup {
                client_config: Arc::new(client),
                server_config: Arc::new(server),
            },
            ca,
        )
    }

    fn sessions(setup: &Setup, version: u32) -> (TlsSession, TlsSession) {
        let client = TlsSession::client(
            setup.client_config.clone(),
            version,
            "localhost",
            CLIENT_PARAMS.to_vec(),
        )
        .unwrap();
        let server =
            TlsSession::server(setup.server_config.clone(), version, SERVER_PARAMS.to_vec())
                .unwrap();
        (client, server)
    }

    /// Two 1-RTT key updates on both sides: the new packet keys agree, while header protection
    /// stays that of the first 1-RTT keys (`c`/`s`: the keys each side obtained)
    fn check_two_key_updates(
        client: &mut TlsSession,
        server: &mut TlsSession,
        c: &Obtained,
        s: &Obtained,
    ) {
        for _ in 0..2 {
            let ck = client.next_1rtt_keys().unwrap();
            let sk = server.next_1rtt_keys().unwrap();
            check_direction(
                &*ck.local,
                &*c.keys[1].header.local,
                &*sk.remote,
                &*s.keys[1].header.remote,
            );
            check_direction(
                &*sk.local,
                &*s.keys[1].header.local,
                &*ck.remote,
                &*c.keys[1].header.remote,
            );
        }
    }

    /// Seal with `a`'s local keys and open with `b`'s remote keys, header protection included
    fn check_direction(
        seal: &dyn PacketKey,
        hp_seal: &dyn HeaderKey,
        open: &dyn PacketKey,
        hp_open: &dyn HeaderKey,
    ) {
        let header = [0x41u8, 0xaa, 0xbb, 0x00, 0x07];
        let mut packet = header.to_vec();
        packet.extend_from_slice(b"some frames, long enough to be sampled");
        let plain_len = packet.len() - header.len();
        packet.resize(packet.len() + seal.tag_len(), 0);
        let (hdr, body) = packet.split_at_mut(header.len());
        seal.seal(7, hdr, body);
        hp_seal.encrypt(3, &mut packet).unwrap();
        hp_open.decrypt(3, &mut packet).unwrap();
        assert_eq!(packet[..header.len()], header);
        let (hdr, body) = packet.split_at_mut(header.len());
        assert_eq!(open.open(7, hdr, body), Ok(plain_len));
        assert_eq!(
            &body[..plain_len],
            b"some frames, long enough to be sampled"
        );
    }

    fn check_keys_agree(a: &Keys, b: &Keys) {
        check_direction(
            &*a.packet.local,
            &*a.header.local,
            &*b.packet.remote,
            &*b.header.remote,
        );
        check_direction(
            &*b.packet.local,
            &*b.header.local,
            &*a.packet.remote,
            &*a.header.remote,
        );
    }

    fn check_full_handshake(version: u32) {
        let (setup, _ca) = setup();
        let (mut client, mut server) = sessions(&setup, version);
        assert_eq!(client.side(), Side::Client);
        assert_eq!(server.side(), Side::Server);
        assert!(client.handshake_data().is_none());
        let (c, s) = handshake(&mut client, &mut server).unwrap();

        assert!(!client.is_handshaking());
        assert!(!server.is_handshaking());
        // Handshake and 1-RTT keys on each side, and they match the peer's
        assert_eq!(c.keys.len(), 2);
        assert_eq!(s.keys.len(), 2);
        check_keys_agree(&c.keys[0], &s.keys[0]);
        check_keys_agree(&c.keys[1], &s.keys[1]);

        // Handshake data is reported exactly once, and carries ALPN and SNI
        assert_eq!(c.data_events, 1);
        assert_eq!(s.data_events, 1);
        let client_data = client.handshake_data().unwrap();
        assert_eq!(client_data.alpn.as_deref(), Some(&b"vpn"[..]));
        let server_data = server.handshake_data().unwrap();
        assert_eq!(server_data.alpn.as_deref(), Some(&b"vpn"[..]));
        assert_eq!(server_data.server_name.as_deref(), Some("localhost"));

        assert_eq!(client.transport_parameters(), Some(SERVER_PARAMS));
        assert_eq!(server.transport_parameters(), Some(CLIENT_PARAMS));
        assert!(client.peer_identity().is_some_and(|chain| chain.len() == 1));
        assert!(server.peer_identity().is_none());
        assert_eq!(client.early_data_accepted(), Some(false));

        // Two key updates; header keys stay those of the first 1-RTT keys
        check_two_key_updates(&mut client, &mut server, &c, &s);

        let mut a = [0u8; 32];
        let mut b = [0u8; 32];
        client
            .export_keying_material(&mut a, b"label", b"ctx")
            .unwrap();
        server
            .export_keying_material(&mut b, b"label", b"ctx")
            .unwrap();
        assert_eq!(a, b);
        assert_ne!(a, [0; 32]);
    }

    #[test]
    fn handshake_v1() {
        check_full_handshake(VERSION_1);
    }

    #[test]
    fn handshake_v2() {
        check_full_handshake(VERSION_2);
    }

    /// Compatible version negotiation: the client's ClientHello left in v1, then it learns the
    /// server answers in v2; every later key must be v2's, for AES and ChaCha20 suites alike
    #[test]
    fn upgradable_client_follows_the_server_into_v2() {
        let (setup, _ca) = setup();
        let mut chacha = rustls::crypto::ring::default_provider();
        chacha
            .cipher_suites
            .retain(|s| s.suite() == rustls::CipherSuite::TLS13_CHACHA20_POLY1305_SHA256);
        let chacha_config =
            danger_insecure_client_config_with_provider(Arc::new(chacha), vec![b"vpn".to_vec()])
                .unwrap();
        for config in [setup.client_config.clone(), Arc::new(chacha_config)] {
            let mut client = TlsSession::client_upgradable(
                config,
                VERSION_1,
                "localhost",
                CLIENT_PARAMS.to_vec(),
            )
            .unwrap();
            let mut server = TlsSession::server(
                setup.server_config.clone(),
                VERSION_2,
                SERVER_PARAMS.to_vec(),
            )
            .unwrap();
            let mut c = Obtained::default();
            let mut s = Obtained::default();
            pump(&mut client, &mut c, &mut server, &mut s).unwrap();
            client.set_version(VERSION_2).unwrap();
            let (c2, s2) = handshake(&mut client, &mut server).unwrap();
            c.keys.extend(c2.keys);
            s.keys.extend(s2.keys);
            assert_eq!((c.keys.len(), s.keys.len()), (2, 2));
            check_keys_agree(&c.keys[0], &s.keys[0]);
            check_keys_agree(&c.keys[1], &s.keys[1]);
            // Key updates use v2's "quicv2 ku" label on both sides
            check_two_key_updates(&mut client, &mut server, &c, &s);
        }
        // A session not built for it refuses to change version
        let (mut plain, _) = sessions(&setup, VERSION_1);
        assert!(plain.set_version(VERSION_2).is_err());
    }

    #[test]
    fn upgradable_client_that_stays_in_v1_uses_rustls_keys() {
        let (setup, _ca) = setup();
        let mut client = TlsSession::client_upgradable(
            setup.client_config.clone(),
            VERSION_1,
            "localhost",
            CLIENT_PARAMS.to_vec(),
        )
        .unwrap();
        let mut server = TlsSession::server(
            setup.server_config.clone(),
            VERSION_1,
            SERVER_PARAMS.to_vec(),
        )
        .unwrap();
        let (c, s) = handshake(&mut client, &mut server).unwrap();
        check_keys_agree(&c.keys[0], &s.keys[0]);
        check_keys_agree(&c.keys[1], &s.keys[1]);
        let ck = client.next_1rtt_keys().unwrap();
        let sk = server.next_1rtt_keys().unwrap();
        check_direction(
            &*ck.local,
            &*c.keys[1].header.local,
            &*sk.remote,
            &*s.keys[1].header.remote,
        );
    }

    #[test]
    fn next_keys_absent_before_1rtt() {
        let (setup, _ca) = setup();
        let (mut client, _server) = sessions(&setup, VERSION_1);
        assert!(client.next_1rtt_keys().is_none());
        assert!(client.early_crypto().is_none());
        let mut out = [0u8; 8];
        assert!(client.export_keying_material(&mut out, b"x", b"").is_err());
    }

    #[test]
    fn unsupported_version_and_bad_name() {
        let (setup, _ca) = setup();
        assert!(matches!(
            TlsSession::client(
                setup.client_config.clone(),
                0xff00_001d,
                "localhost",
                vec![]
            ),
            Err(TlsError::UnsupportedVersion(0xff00_001d))
        ));
        assert!(matches!(
            TlsSession::server(setup.server_config.clone(), 0, vec![]),
            Err(TlsError::UnsupportedVersion(0))
        ));
        assert!(matches!(
            TlsSession::client(setup.client_config, VERSION_1, "not a name!", vec![]),
            Err(TlsError::InvalidServerName(_))
        ));
    }

    #[test]
    fn mutual_tls() {
        let ca = Ca::new("CA");
        let (chain, key) = ca.leaf("localhost");
        let (client_chain, client_key) = ca.leaf("client.example");
        let expected: Vec<Vec<u8>> = client_chain.iter().map(|c| c.to_vec()).collect();
        let server =
            server_config(chain, key, vec![b"vpn".to_vec()], Some(ca.roots()), false).unwrap();
        let client = client_config(
            ca.roots(),
            vec![b"vpn".to_vec()],
            Some((client_chain, client_key)),
        )
        .unwrap();
        let setup = Setup {
            client_config: Arc::new(client),
            server_config: Arc::new(server),
        };
        let (mut client, mut server) = sessions(&setup, VERSION_1);
        let (c, s) = handshake(&mut client, &mut server).unwrap();
        check_keys_agree(&c.keys[1], &s.keys[1]);
        assert_eq!(server.peer_identity(), Some(expected));
    }

    fn is_crypto_error(err: &TransportError) -> bool {
        (0x100..=0x1ff).contains(&err.code.0)
    }

    #[test]
    fn client_cert_from_other_ca_refused() {
        let ca = Ca::new("server-side CA");
        let other = Ca::new("rogue CA");
        let (chain, key) = ca.leaf("localhost");
        let server =
            server_config(chain, key, vec![b"vpn".to_vec()], Some(ca.roots()), false).unwrap();
        let client =
            client_config(ca.roots(), vec![b"vpn".to_vec()], Some(other.leaf("c"))).unwrap();
        let setup = Setup {
            client_config: Arc::new(client),
            server_config: Arc::new(server),
        };
        let (mut client, mut server) = sessions(&setup, VERSION_1);
        let (side, err) = handshake(&mut client, &mut server).err().unwrap();
        assert_eq!(side, Side::Server);
        assert!(is_crypto_error(&err), "{err}");
        assert!(!err.reason.is_empty());
    }

    #[test]
    fn client_without_cert_refused_by_mtls_server() {
        let ca = Ca::new("CA");
        let (chain, key) = ca.leaf("localhost");
        let server =
            server_config(chain, key, vec![b"vpn".to_vec()], Some(ca.roots()), false).unwrap();
        let client = client_config(ca.roots(), vec![b"vpn".to_vec()], None).unwrap();
        let setup = Setup {
            client_config: Arc::new(client),
            server_config: Arc::new(server),
        };
        let (mut client, mut server) = sessions(&setup, VERSION_1);
        let (side, err) = handshake(&mut client, &mut server).err().unwrap();
        assert_eq!(side, Side::Server);
        assert!(is_crypto_error(&err), "{err}");
    }

    #[test]
    fn untrusted_server_cert_refused() {
        let ca = Ca::new("real CA");
        let other = Ca::new("client's CA");
        let (chain, key) = ca.leaf("localhost");
        let server = server_config(chain, key, vec![b"vpn".to_vec()], None, false).unwrap();
        let client = client_config(other.roots(), vec![b"vpn".to_vec()], None).unwrap();
        let setup = Setup {
            client_config: Arc::new(client),
            server_config: Arc::new(server),
        };
        let (mut client, mut server) = sessions(&setup, VERSION_1);
        let (side, err) = handshake(&mut client, &mut server).err().unwrap();
        assert_eq!(side, Side::Client);
        assert!(is_crypto_error(&err), "{err}");
    }

    #[test]
    fn wrong_server_name_refused() {
        let (setup, _ca) = setup();
        let mut client = TlsSession::client(
            setup.client_config.clone(),
            VERSION_1,
            "other.example",
            vec![],
        )
        .unwrap();
        let mut server = TlsSession::server(setup.server_config, VERSION_1, vec![]).unwrap();
        let (side, err) = handshake(&mut client, &mut server).err().unwrap();
        assert_eq!(side, Side::Client);
        assert!(is_crypto_error(&err), "{err}");
    }

    #[test]
    fn no_common_alpn_refused() {
        let ca = Ca::new("CA");
        let (chain, key) = ca.leaf("localhost");
        let server = server_config(chain, key, vec![b"vpn".to_vec()], None, false).unwrap();
        let client = client_config(ca.roots(), vec![b"h3".to_vec()], None).unwrap();
        let setup = Setup {
            client_config: Arc::new(client),
            server_config: Arc::new(server),
        };
        let (mut client, mut server) = sessions(&setup, VERSION_1);
        let (side, err) = handshake(&mut client, &mut server).err().unwrap();
        assert_eq!(side, Side::Server);
        // RFC 9001 §8.1: no_application_protocol (120)
        assert_eq!(err.code, TransportErrorCode::crypto(120));
    }

    #[test]
    fn insecure_client_accepts_any_server() {
        let ca = Ca::new("unknown CA");
        let (chain, key) = ca.leaf("localhost");
        let server = server_config(chain, key, vec![b"vpn".to_vec()], None, false).unwrap();
        let client = danger_insecure_client_config(vec![b"vpn".to_vec()]).unwrap();
        let setup = Setup {
            client_config: Arc::new(client),
            server_config: Arc::new(server),
        };
        let (mut client, mut server) = sessions(&setup, VERSION_2);
        let (c, s) = handshake(&mut client, &mut server).unwrap();
        check_keys_agree(&c.keys[1], &s.keys[1]);
    }

    #[test]
    fn resumption_with_zero_rtt() {
        let (setup, _ca) = setup();
        // The first connection delivers a session ticket, kept in the client config's cache
        let (mut client, mut server) = sessions(&setup, VERSION_1);
        handshake(&mut client, &mut server).unwrap();

        let (mut client, mut server) = sessions(&setup, VERSION_1);
        let (client_hp, client_pk) = client.early_crypto().expect("client offers 0-RTT");
        // ClientHello only, then the server can derive the same 0-RTT keys
        let mut hello = Vec::new();
        assert!(client.write_handshake(&mut hello).is_none());
        server.read_handshake(&hello).unwrap();
        let (server_hp, server_pk) = server.early_crypto().expect("server accepts 0-RTT");
        check_direction(&*client_pk, &*client_hp, &*server_pk, &*server_hp);

        let mut c = Obtained::default();
        let mut s = Obtained::default();
        pump(&mut server, &mut s, &mut client, &mut c).unwrap();
        let (mut c2, s2) = handshake(&mut client, &mut server).unwrap();
        c.keys.append(&mut c2.keys);
        assert_eq!(client.early_data_accepted(), Some(true));
        assert_eq!(s.keys.len() + s2.keys.len(), 2);
        // Resumption carries no certificates but the ticket is checked by the server
        assert!(!server.is_handshaking());
    }

    /// A resuming client must not report the previous connection's transport parameters as
    /// the server's (they carry a stale initial_source_connection_id)
    #[test]
    fn resuming_client_waits_for_fresh_transport_parameters() {
        let (setup, _ca) = setup();
        let (mut client, mut server) = sessions(&setup, VERSION_1);
        handshake(&mut client, &mut server).unwrap();
        let (mut client, mut server) = sessions(&setup, VERSION_1);
        assert!(client.transport_parameters().is_none());
        handshake(&mut client, &mut server).unwrap();
        assert_eq!(client.transport_parameters(), Some(SERVER_PARAMS));
    }

    #[test]
    fn zero_rtt_refused_when_server_disables_it() {
        let ca = Ca::new("CA");
        let (chain, key) = ca.leaf("localhost");
        let server = server_config(chain, key, vec![b"vpn".to_vec()], None, false).unwrap();
        let client = client_config(ca.roots(), vec![b"vpn".to_vec()], None).unwrap();
        let setup = Setup {
            client_config: Arc::new(client),
            server_config: Arc::new(server),
        };
        let (mut client, mut server) = sessions(&setup, VERSION_1);
        handshake(&mut client, &mut server).unwrap();
        let (mut client, mut server) = sessions(&setup, VERSION_1);
        // Without a ticket allowing early data the client has no 0-RTT keys
        assert!(client.early_crypto().is_none());
        handshake(&mut client, &mut server).unwrap();
        assert_eq!(client.early_data_accepted(), Some(false));
    }

    /// Our own Initial keys interoperate with rustls's, in both versions and directions
    #[test]
    fn initial_keys_match_rustls() {
        let suite = rustls::crypto::ring::cipher_suite::TLS13_AES_128_GCM_SHA256
            .tls13()
            .and_then(|s| s.quic_suite())
            .unwrap();
        let dcid = [0x83, 0x94, 0xc8, 0xf0, 0x3e, 0x51, 0x57, 0x08];
        for (version, rv) in [(VERSION_1, rq::Version::V1), (VERSION_2, rq::Version::V2)] {
            let ours = crypto::initial_keys(version, &dcid, Side::Client).unwrap();
            let theirs = convert_keys(suite.keys(&dcid, rustls::Side::Server, rv));
            check_keys_agree(&ours, &theirs);
            let ours = crypto::initial_keys(version, &dcid, Side::Server).unwrap();
            let theirs = convert_keys(suite.keys(&dcid, rustls::Side::Client, rv));
            check_keys_agree(&ours, &theirs);
        }
    }

    #[test]
    fn key_log_switch() {
        // Only checks that both choices build; KeyLogFile writes nothing without SSLKEYLOGFILE
        let _on = key_log(true);
        let _off = key_log(false);
        let (setup, _ca) = setup();
        let mut config = (*setup.client_config).clone();
        config.key_log = key_log(false);
        assert!(config.enable_early_data);
    }
}
