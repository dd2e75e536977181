//! External TLS: the test runs rustls's QUIC handshake itself on one side, moving handshake
//! bytes and traffic secrets through the connection's external-TLS controls, against a peer on
//! the built-in rustls session; the wire format must interoperate

use std::sync::{Arc, Mutex};

use rustls::quic::{self as rq, KeyChange};

use super::util::{Harness, Setup, ALPN};
use crate::connection::{Connection, Event};
use crate::crypto::external::{Direction, ExternalTlsError};
use crate::crypto::Suite;
use crate::shared::{Dir, Side, SpaceId};

/// Keeps the TLS 1.3 traffic secrets rustls logs (it hands QUIC only derived keys)
#[derive(Debug, Default)]
struct Secrets(Mutex<Vec<(String, Vec<u8>)>>);

impl Secrets {
    fn get(&self, label: &str) -> Vec<u8> {
        let all = self.0.lock().expect("lock");
        all.iter()
            .find(|(l, _)| l == label)
            .map(|(_, s)| s.clone())
            .unwrap_or_else(|| panic!("{label} not logged"))
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

/// The application's TLS: rustls's QUIC API driving the connection's external-TLS controls
struct AppTls {
    tls: rq::Connection,
    side: Side,
    secrets: Arc<Secrets>,
    write_level: SpaceId,
    peer_params_set: bool,
    app_rx_installed: bool,
}

impl AppTls {
    fn suite(&self) -> Suite {
        use rustls::CipherSuite as C;
        match self.tls.negotiated_cipher_suite().expect("suite").suite() {
            C::TLS13_AES_128_GCM_SHA256 => Suite::Aes128Gcm,
            C::TLS13_AES_256_GCM_SHA384 => Suite::Aes256Gcm,
            C::TLS13_CHACHA20_POLY1305_SHA256 => Suite::ChaCha20Poly1305,
            other => panic!("unexpected suite {other:?}"),
        }
    }

    fn install(&self, c: &mut Connection, now: std::time::Instant, level: SpaceId, dir: Direction) {
        let (client, server) = match level {
            SpaceId::Handshake => (
                "CLIENT_HANDSHAKE_TRAFFIC_SECRET",
                "SERVER_HANDSHAKE_TRAFFIC_SECRET",
            ),
            _ => ("CLIENT_TRAFFIC_SECRET_0", "SERVER_TRAFFIC_SECRET_0"),
        };
        let ours = (self.side == Side::Client) == (dir == Direction::Send);
        let secret = self.secrets.get(if ours { client } else { server });
        c.external_install_secret(now, level, dir, self.suite(), &secret)
            .expect("install secret");
    }

    /// Move bytes both ways and install secrets as rustls produces them
    fn pump(&mut self, c: &mut Connection, now: std::time::Instant) {
        while let Some((_level, data)) = c.external_recv_handshake() {
            self.tls.read_hs(&data).expect("peer handshake data");
        }
        if !self.peer_params_set {
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
}

fn key_logging(secrets: &Arc<Secrets>) -> Arc<dyn rustls::KeyLog> {
    secrets.clone()
}

fn app_client(h: &mut Harness) -> AppTls {
    let secrets = Arc::new(Secrets::default());
    let mut config = (*super::util::tls_client(h.cert_key.0.clone())).clone();
    config.key_log = key_logging(&secrets);
    let params = h
        .client_conn()
        .external_local_params()
        .expect("external session")
        .to_vec();
    let name = rustls_pki_types::ServerName::try_from("localhost").expect("name");
    let tls = rq::ClientConnection::new(Arc::new(config), rq::Version::V1, name, params)
        .expect("rustls client");
    AppTls {
        tls: tls.into(),
        side: Side::Client,
        secrets,
        write_level: SpaceId::Initial,
        peer_params_set: false,
        app_rx_installed: false,
    }
}

fn app_server(h: &Harness, params: Vec<u8>) -> AppTls {
    let secrets = Arc::new(Secrets::default());
    let (cert, key) = (h.cert_key.0.clone(), h.cert_key.1.clone_key());
    let mut config = crate::tls::server_config(vec![cert], key, vec![ALPN.to_vec()], None, false)
        .expect("server config");
    config.key_log = key_logging(&secrets);
    let tls = rq::ServerConnection::new(Arc::new(config), rq::Version::V1, params)
        .expect("rustls server");
    AppTls {
        tls: tls.into(),
        side: Side::Server,
        secrets,
        write_level: SpaceId::Initial,
        peer_params_set: false,
        app_rx_installed: false,
    }
}

/// After the handshake: streams both ways and a datagram each way
fn exchange(h: &mut Harness) {
    let up = super::util::payload(50_000, 7);
    assert_eq!(h.transfer(Dir::Uni, &up), up);
    let bi = super::util::payload(20_000, 8);
    assert_eq!(h.transfer(Dir::Bi, &bi), bi);
    h.client_datagram(b"ping over external TLS");
    h.server_conn()
        .send_datagram(bytes::Bytes::from_static(b"pong"))
        .expect("server datagram");
    let (ch, sh) = (h.ch, h.sh.expect("server"));
    let (mut got_c, mut got_s) = (None, None);
    h.pair
        .drive_until(|p| {
            got_s = got_s
                .take()
                .or_else(|| p.server_mut().conn(sh).recv_datagram());
            got_c = got_c
                .take()
                .or_else(|| p.client_mut().conn(ch).recv_datagram());
            got_s.is_some() && got_c.is_some()
        })
        .expect("datagrams");
    assert_eq!(got_s.as_deref(), Some(&b"ping over external TLS"[..]));
    assert_eq!(got_c.as_deref(), Some(&b"pong"[..]));
}

#[test]
fn external_client_against_builtin_server() {
    let mut h = Harness::new(Setup {
        client_external_tls: true,
        ..Setup::default()
    });
    assert!(h.client_conn().is_external_tls());
    let mut app = app_client(&mut h);
    let ch = h.ch;
    h.pair
        .drive_until(|p| {
            let now = p.net.now();
            app.pump(p.client_mut().conn(ch), now);
            let s = p.server();
            let server_done = s
                .accepted
                .first()
                .is_some_and(|&h| s.has_event(h, |e| *e == Event::Connected));
            server_done && p.client().has_event(ch, |e| *e == Event::Connected)
        })
        .expect("handshake");
    h.sh = h.server().accepted.first().copied();
    assert!(!app.tls.is_handshaking());
    // The built-in server saw the ALPN the application's TLS offered
    let alpn = h.server_conn().handshake_data().and_then(|d| d.alpn);
    assert_eq!(alpn.as_deref(), Some(ALPN));
    exchange(&mut h);
    // Key updates derive from the installed secrets (RFC 9001 §6)
    h.client_conn().initiate_key_update();
    let more = super::util::payload(10_000, 9);
    assert_eq!(h.transfer(Dir::Uni, &more), more);
    assert!(
        h.client_conn().key_phase(),
        "the client moved to the next key phase"
    );
    assert!(h.server_conn().key_phase(), "the server followed");
}

#[test]
fn external_server_against_builtin_client() {
    let mut h = Harness::new(Setup {
        server_external_tls: true,
        ..Setup::default()
    });
    let ch = h.ch;
    // The application's TLS starts once the accepted connection (and its parameters) exist
    let mut params_of_server = None;
    h.pair
        .drive_until(|p| {
            if let Some(&sh) = p.server().accepted.first() {
                params_of_server = p
                    .server_mut()
                    .conn(sh)
                    .external_local_params()
                    .map(<[u8]>::to_vec);
            }
            params_of_server.is_some()
        })
        .expect("accept");
    let params = params_of_server.expect("server connection accepted");
    let mut app_tls = app_server(&h, params);
    h.pair
        .drive_until(|p| {
            let now = p.net.now();
            let Some(&sh) = p.server().accepted.first() else {
                return false;
            };
            app_tls.pump(p.server_mut().conn(sh), now);
            let s = p.server();
            s.has_event(sh, |e| *e == Event::Connected)
                && p.client().has_event(ch, |e| *e == Event::Connected)
        })
        .expect("handshake");
    h.sh = h.server().accepted.first().copied();
    assert!(!app_tls.tls.is_handshaking());
    exchange(&mut h);
}

#[test]
fn secrets_follow_the_kernel_rules() {
    let mut h = Harness::new(Setup {
        client_external_tls: true,
        ..Setup::default()
    });
    let now = h.now();
    let c = h.client_conn();
    let secret = [7u8; 32];
    assert_eq!(
        c.external_install_secret(
            now,
            SpaceId::Initial,
            Direction::Send,
            Suite::Aes128Gcm,
            &secret
        ),
        Err(ExternalTlsError::InitialLevel)
    );
    assert_eq!(
        c.external_install_secret(
            now,
            SpaceId::Handshake,
            Direction::Send,
            Suite::Aes256Gcm,
            &secret
        ),
        Err(ExternalTlsError::SecretLength(32))
    );
    c.external_install_secret(
        now,
        SpaceId::Handshake,
        Direction::Send,
        Suite::Aes128Gcm,
        &secret,
    )
    .expect("first install");
    assert_eq!(
        c.external_install_secret(
            now,
            SpaceId::Handshake,
            Direction::Send,
            Suite::Aes128Gcm,
            &secret
        ),
        Err(ExternalTlsError::AlreadyInstalled)
    );
    // A built-in connection refuses the external controls
    let mut builtin = Harness::new(Setup::default());
    let now = builtin.now();
    assert_eq!(
        builtin
            .client_conn()
            .external_send_handshake(now, SpaceId::Initial, b"x"),
        Err(ExternalTlsError::NotExternal)
    );
    assert!(builtin.client_conn().external_local_params().is_none());
}

#[test]
fn bad_peer_parameters_close_the_connection() {
    let mut h = Harness::new(Setup {
        client_external_tls: true,
        ..Setup::default()
    });
    let now = h.now();
    let c = h.client_conn();
    // A truncated parameter (id 0x01 max_idle_timeout, length 4, one byte of value)
    let r = c.external_set_peer_params(now, &[0x01, 0x04, 0x05]);
    assert!(matches!(r, Err(ExternalTlsError::Failed(_))), "{r:?}");
    assert!(c.is_closed());
    // Only once
    assert_eq!(
        c.external_set_peer_params(now, &[]),
        Err(ExternalTlsError::PeerParamsSet)
    );
}

/// The client sends a datagram right behind its Finished; the server's application installs
/// the 1-RTT read secret only when it gets round to reading the Finished from the socket (here
/// 5 ms later). The datagram's packet waits for the key instead of being dropped (RFC 9001
/// §5.7), as the kernel keeps it too: a lost datagram is never resent.
#[test]
fn one_rtt_packets_wait_for_the_applications_secret() {
    let mut h = Harness::new(Setup {
        server_external_tls: true,
        ..Setup::default()
    });
    let ch = h.ch;
    let mut params_of_server = None;
    h.pair
        .drive_until(|p| {
            if let Some(&sh) = p.server().accepted.first() {
                params_of_server = p
                    .server_mut()
                    .conn(sh)
                    .external_local_params()
                    .map(<[u8]>::to_vec);
            }
            params_of_server.is_some()
        })
        .expect("accept");
    let params = params_of_server.expect("server connection accepted");
    let mut app_tls = app_server(&h, params);
    let app_delay = std::time::Duration::from_millis(5);
    let mut next_pump = h.now();
    let mut datagram_queued = false;
    let mut got = None;
    h.pair
        .drive_until(|p| {
            let now = p.net.now();
            if !datagram_queued && p.client().has_event(ch, |e| *e == Event::Connected) {
                p.client_mut()
                    .conn(ch)
                    .send_datagram(bytes::Bytes::from_static(b"right behind Finished"))
                    .expect("datagram");
                datagram_queued = true;
            }
            let Some(&sh) = p.server().accepted.first() else {
                return false;
            };
            if now >= next_pump {
                app_tls.pump(p.server_mut().conn(sh), now);
                next_pump = now + app_delay;
            }
            if got.is_none() {
                got = p.server_mut().conn(sh).recv_datagram();
            }
            got.is_some()
        })
        .expect("the datagram reaches the server");
    assert_eq!(got.as_deref(), Some(&b"right behind Finished"[..]));
    let sh = h.server().accepted.first().copied().expect("accepted");
    h.pair
        .drive_until(|p| p.server().has_event(sh, |e| *e == Event::Connected))
        .expect("the server reports the handshake complete");
}
