//! The application's TLS for external-TLS scenarios: rustls's QUIC API run by the test, moving
//! handshake bytes and traffic secrets (Handshake, 0-RTT, 1-RTT) through the connection's
//! external-TLS controls the way a kernel-API application with its own TLS library does.
//!
//! One file for the library's unit tests (src/tests/app_tls.rs) and the driver integration
//! tests, which reach the stack under different paths: the including module provides them as
//! `super::stack`.
// Each includer uses only some of it (the driver tests only the server side)
#![allow(dead_code)]

use std::sync::{Arc, Mutex};
use std::time::Instant;

use rustls::quic::{self as rq, KeyChange};

use super::stack::{Connection, Direction, Side, SpaceId, Suite};

/// The TLS 1.3 secrets rustls logs (it hands QUIC only derived keys), newest last
#[derive(Debug, Default)]
pub(crate) struct Secrets(Mutex<Vec<(String, Vec<u8>)>>);

impl Secrets {
    fn get(&self, label: &str) -> Option<Vec<u8>> {
        let all = self.0.lock().expect("lock");
        all.iter()
            .rev()
            .find(|(l, _)| l == label)
            .map(|(_, s)| s.clone())
    }
}

impl rustls::KeyLog for Secrets {
    fn log(&self, label: &str, _client_random: &[u8], secret: &[u8]) {
        self.0
            .lock()
            .expect("lock")
            .push((label.to_owned(), secret.to_vec()));
    }
}

fn suite_of(s: rustls::SupportedCipherSuite) -> Suite {
    use rustls::CipherSuite as C;
    match s.suite() {
        C::TLS13_AES_128_GCM_SHA256 => Suite::Aes128Gcm,
        C::TLS13_AES_256_GCM_SHA384 => Suite::Aes256Gcm,
        C::TLS13_CHACHA20_POLY1305_SHA256 => Suite::ChaCha20Poly1305,
        other => panic!("unexpected suite {other:?}"),
    }
}

/// One connection's TLS, run by the "application"
pub(crate) struct AppTls {
    pub(crate) tls: rq::Connection,
    side: Side,
    secrets: Arc<Secrets>,
    write_level: SpaceId,
    peer_params_set: bool,
    app_rx_installed: bool,
    early_installed: bool,
    /// Client: hand rustls's 0-RTT verdict to the connection (a kernel-API application has no
    /// way to, so the default is not to)
    pub(crate) report_early_verdict: bool,
    /// Client: report this verdict instead of rustls's (a broken application)
    pub(crate) false_verdict: Option<bool>,
    verdict_reported: bool,
    /// Runs of 1-RTT handshake bytes read (a client's NewSessionTicket)
    pub(crate) app_level_reads: usize,
}

impl AppTls {
    /// Before any handshake byte: nothing installed or reported yet
    fn new(tls: rq::Connection, side: Side, secrets: Arc<Secrets>) -> Self {
        Self {
            tls,
            side,
            secrets,
            write_level: SpaceId::Initial,
            peer_params_set: false,
            app_rx_installed: false,
            early_installed: false,
            report_early_verdict: false,
            false_verdict: None,
            verdict_reported: false,
            app_level_reads: 0,
        }
    }

    fn suite(&self) -> Suite {
        suite_of(self.tls.negotiated_cipher_suite().expect("suite"))
    }

    fn install(&self, c: &mut Connection, now: Instant, level: SpaceId, dir: Direction) {
        let (client, server) = match level {
            SpaceId::Handshake => (
                "CLIENT_HANDSHAKE_TRAFFIC_SECRET",
                "SERVER_HANDSHAKE_TRAFFIC_SECRET",
            ),
            _ => ("CLIENT_TRAFFIC_SECRET_0", "SERVER_TRAFFIC_SECRET_0"),
        };
        let ours = (self.side == Side::Client) == (dir == Direction::Send);
        let label = if ours { client } else { server };
        let secret = self
            .secrets
            .get(label)
            .unwrap_or_else(|| panic!("{label} not logged"));
        c.external_install_secret(now, level, dir, self.suite(), &secret)
            .expect("install secret");
    }

    /// 0-RTT: once rustls offers (client) or accepts (server) early data, install the early
    /// secret in the one direction it protects
    fn install_early(&mut self, c: &mut Connection, now: Instant) {
        if self.early_installed || self.tls.zero_rtt_keys().is_none() {
            return;
        }
        let Some(secret) = self.secrets.get("CLIENT_EARLY_TRAFFIC_SECRET") else {
            return;
        };
        // A resuming client knows the suite from its ticket before the ServerHello
        let suite = self
            .tls
            .negotiated_cipher_suite()
            .map_or(Suite::Aes128Gcm, suite_of);
        let dir = match self.side {
            Side::Client => Direction::Send,
            Side::Server => Direction::Receive,
        };
        c.external_install_early_secret(now, dir, suite, &secret)
            .expect("install early secret");
        self.early_installed = true;
    }

    /// Whether the early secret went to the connection
    pub(crate) fn early_installed(&self) -> bool {
        self.early_installed
    }

    /// Move bytes both ways and install secrets as rustls produces them
    pub(crate) fn pump(&mut self, c: &mut Connection, now: Instant) {
        while let Some((level, data)) = c.external_recv_handshake() {
            self.tls.read_hs(&data).expect("peer handshake data");
            if level == SpaceId::Data {
                self.app_level_reads += 1;
            }
        }
        self.install_early(c, now);
        // A resuming rustls client reports the ticket's parameters until the server's
        // EncryptedExtensions arrive, so a client takes them with its 1-RTT keys (below)
        if !self.peer_params_set && self.side == Side::Server {
            if let Some(tp) = self.tls.quic_transport_parameters() {
                c.external_set_peer_params(now, tp).expect("peer params");
                self.peer_params_set = true;
            }
        }
        loop {
            let mut buf = Vec::new();
            let change = self.tls.write_hs(&mut buf);
            if !buf.is_empty() {
                c.external_send_handshake(now, self.write_level, &buf)
                    .expect("send handshake");
            }
            match change {
                Some(KeyChange::Handshake { .. }) => {
                    self.install(c, now, SpaceId::Handshake, Direction::Send);
                    self.install(c, now, SpaceId::Handshake, Direction::Receive);
                    self.write_level = SpaceId::Handshake;
                }
                Some(KeyChange::OneRtt { .. }) => {
                    if self.side == Side::Client {
                        // EncryptedExtensions are in: the peer's parameters and rustls's
                        // 0-RTT verdict are final
                        if !self.peer_params_set {
                            let tp = self.tls.quic_transport_parameters().expect("server params");
                            c.external_set_peer_params(now, tp).expect("peer params");
                            self.peer_params_set = true;
                        }
                        self.report_verdict(c, now);
                    }
                    self.install(c, now, SpaceId::Data, Direction::Send);
                    // Like gnutls in the kernel model, a server learns its 1-RTT read key only
                    // once the client's Finished is in (below)
                    if self.side == Side::Client {
                        self.install(c, now, SpaceId::Data, Direction::Receive);
                        self.app_rx_installed = true;
                    }
                    self.write_level = SpaceId::Data;
                }
                None if buf.is_empty() => break,
                None => {}
            }
        }
        if !self.app_rx_installed && !self.tls.is_handshaking() {
            self.install(c, now, SpaceId::Data, Direction::Receive);
            self.app_rx_installed = true;
        }
    }

    fn report_verdict(&mut self, c: &mut Connection, now: Instant) {
        if self.report_early_verdict && !self.verdict_reported && self.early_installed {
            if let rq::Connection::Client(client) = &self.tls {
                let verdict = self
                    .false_verdict
                    .unwrap_or_else(|| client.is_early_data_accepted());
                c.external_set_early_data_accepted(now, verdict)
                    .expect("verdict");
                self.verdict_reported = true;
            }
        }
    }
}

fn key_logging(secrets: &Arc<Secrets>) -> Arc<dyn rustls::KeyLog> {
    secrets.clone()
}

/// The client's TLS over `config` (whose session store carries tickets between connections)
pub(crate) fn app_client(config: &rustls::ClientConfig, c: &Connection) -> AppTls {
    let secrets = Arc::new(Secrets::default());
    let mut config = config.clone();
    config.key_log = key_logging(&secrets);
    let params = c
        .external_local_params()
        .expect("external session")
        .to_vec();
    let name = rustls_pki_types::ServerName::try_from("localhost").expect("name");
    let tls = rq::ClientConnection::new(Arc::new(config), rq::Version::V1, name, params)
        .expect("rustls client");
    AppTls::new(tls.into(), Side::Client, secrets)
}

/// The server's TLS over `config`; `reject_early` refuses 0-RTT even if the ticket allows it
pub(crate) fn app_server(
    config: &rustls::ServerConfig,
    params: Vec<u8>,
    reject_early: bool,
) -> AppTls {
    let secrets = Arc::new(Secrets::default());
    let mut config = config.clone();
    config.key_log = key_logging(&secrets);
    let mut tls = rq::ServerConnection::new(Arc::new(config), rq::Version::V1, params)
        .expect("rustls server");
    if reject_early {
        tls.reject_early_data();
    }
    AppTls::new(tls.into(), Side::Server, secrets)
}
