//! The tokio driver gives one accepted connection its own preferred address (what the SOL_QUIC
//! service does for QUIC_SOCKOPT_CONNECTION_MIGRATION on a socket still establishing): it binds
//! a socket there, the client moves to it after the handshake, data keeps flowing, and the
//! socket closes with the connection. The server's TLS is run by the test (external TLS, as
//! in the kernel model), over loopback only (127.0.0.1 → 127.0.0.2, and ::1 to another port).

mod common;

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, UdpSocket};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use quic_stack::config::{ClientConfig, EndpointConfig, ServerConfig};
use quic_stack::crypto::external::Direction;
use quic_stack::crypto::Suite;
use quic_stack::{driver, Connection, SpaceId};
use rustls::quic::{self as rq, KeyChange};

const ALPN: &[u8] = b"quictun-preferred-test";
const TEST_TIMEOUT: Duration = Duration::from_secs(30);

/// The TLS 1.3 secrets rustls logs (QUIC gets only derived keys from it)
#[derive(Debug, Default)]
struct Secrets(Mutex<Vec<(String, Vec<u8>)>>);

impl rustls::KeyLog for Secrets {
    fn log(&self, label: &str, _client_random: &[u8], secret: &[u8]) {
        self.0
            .lock()
            .expect("lock")
            .push((label.to_owned(), secret.to_vec()));
    }
}

/// The server application's TLS: rustls's QUIC API feeding the connection's external-TLS
/// controls
struct ServerTls {
    tls: rq::ServerConnection,
    secrets: Arc<Secrets>,
    level: SpaceId,
    params_set: bool,
    app_rx: bool,
}

impl ServerTls {
    fn secret(&self, label: &str) -> Vec<u8> {
        let all = self.secrets.0.lock().expect("lock");
        all.iter()
            .find(|(l, _)| l == label)
            .map(|(_, s)| s.clone())
            .unwrap_or_else(|| panic!("{label} not logged"))
    }

    fn suite(&self) -> Suite {
        use rustls::CipherSuite as C;
        match self.tls.negotiated_cipher_suite().expect("suite").suite() {
            C::TLS13_AES_128_GCM_SHA256 => Suite::Aes128Gcm,
            C::TLS13_AES_256_GCM_SHA384 => Suite::Aes256Gcm,
            C::TLS13_CHACHA20_POLY1305_SHA256 => Suite::ChaCha20Poly1305,
            other => panic!("unexpected suite {other:?}"),
        }
    }

    fn install(&self, c: &mut Connection, now: Instant, level: SpaceId, dir: Direction) {
        let label = match (level, dir) {
            (SpaceId::Handshake, Direction::Send) => "SERVER_HANDSHAKE_TRAFFIC_SECRET",
            (SpaceId::Handshake, Direction::Receive) => "CLIENT_HANDSHAKE_TRAFFIC_SECRET",
            (_, Direction::Send) => "SERVER_TRAFFIC_SECRET_0",
            (_, Direction::Receive) => "CLIENT_TRAFFIC_SECRET_0",
        };
        c.external_install_secret(now, level, dir, self.suite(), &self.secret(label))
            .expect("install secret");
    }

    fn pump(&mut self, c: &mut Connection, now: Instant) {
        while let Some((_, data)) = c.external_recv_handshake() {
            self.tls.read_hs(&data).expect("client handshake data");
        }
        if !self.params_set {
            if let Some(tp) = self.tls.quic_transport_parameters() {
                c.external_set_peer_params(now, tp)
                    .expect("client parameters");
                self.params_set = true;
            }
        }
        loop {
            let mut buf = Vec::new();
            let change = self.tls.write_hs(&mut buf);
            if !buf.is_empty() {
                c.external_send_handshake(now, self.level, &buf)
                    .expect("send handshake");
            }
            match change {
                Some(KeyChange::Handshake { .. }) => {
                    self.install(c, now, SpaceId::Handshake, Direction::Send);
                    self.install(c, now, SpaceId::Handshake, Direction::Receive);
                    self.level = SpaceId::Handshake;
                }
                Some(KeyChange::OneRtt { .. }) => {
                    self.install(c, now, SpaceId::Data, Direction::Send);
                    self.level = SpaceId::Data;
                }
                None if buf.is_empty() => break,
                None => {}
            }
        }
        // The 1-RTT read key once the client's Finished is in (the kernel model)
        if !self.app_rx && !self.tls.is_handshaking() {
            self.install(c, now, SpaceId::Data, Direction::Receive);
            self.app_rx = true;
        }
    }
}

struct Setup {
    server: driver::Endpoint,
    client: driver::Endpoint,
    client_config: ClientConfig,
    server_tls: rustls::ServerConfig,
}

fn setup(ip: IpAddr) -> Setup {
    let (server_tls, client_config) = common::self_signed_tls(ALPN);
    let server = driver::Endpoint::new(
        SocketAddr::new(ip, 0),
        EndpointConfig::default(),
        Some(ServerConfig {
            external_tls: true,
            ..ServerConfig::new(Arc::new(server_tls.clone()))
        }),
    )
    .expect("bind server");
    let client = driver::Endpoint::new(SocketAddr::new(ip, 0), EndpointConfig::default(), None)
        .expect("bind client");
    Setup {
        server,
        client,
        client_config,
        server_tls,
    }
}

/// A free UDP port on `ip` (127.0.0.2 works: the whole of 127/8 is loopback on Linux)
fn free_port_on(ip: IpAddr) -> SocketAddr {
    let probe = UdpSocket::bind((ip, 0)).expect("bind a probe socket");
    probe.local_addr().expect("local address")
}

const PREFERRED_V4: IpAddr = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2));

/// Run the server application's TLS until the connection is established
async fn server_handshake(accepted: &driver::Connection, server_tls: &rustls::ServerConfig) {
    let params = accepted
        .with_core(|c, _| c.external_local_params().map(<[u8]>::to_vec))
        .flatten()
        .expect("external TLS parameters");
    let secrets = Arc::new(Secrets::default());
    let mut config = server_tls.clone();
    config.key_log = secrets.clone();
    let tls = rq::ServerConnection::new(Arc::new(config), rq::Version::V1, params)
        .expect("rustls server");
    let mut app = ServerTls {
        tls,
        secrets,
        level: SpaceId::Initial,
        params_set: false,
        app_rx: false,
    };
    loop {
        let done = accepted
            .with_core(|c, now| {
                app.pump(c, now);
                !c.is_handshaking()
            })
            .expect("server connection alive");
        if done {
            return;
        }
        accepted
            .wait_core(|c| (c.external_has_handshake() || !c.is_handshaking()).then_some(()))
            .await
            .expect("handshake data");
    }
}

/// Connect, advertise `pa` on the accepted connection, run both handshakes and wait until the
/// client moved there
async fn connect_and_move(s: &Setup, pa: SocketAddr) -> (driver::Connection, driver::Connection) {
    let conn = s
        .client
        .connect(s.client_config.clone(), s.server.local_addr(), "localhost")
        .expect("connect");
    let accepted = s.server.accept().await.expect("incoming connection");
    accepted
        .advertise_preferred_address(pa)
        .expect("preferred address on an establishing server connection");
    // The socket is bound now: the address is taken
    assert_eq!(
        UdpSocket::bind(pa).map_err(|e| e.kind()).err(),
        Some(io::ErrorKind::AddrInUse)
    );
    let (client, ()) = tokio::join!(conn.handshake(), server_handshake(&accepted, &s.server_tls));
    client.expect("client handshake");
    let moved = conn
        .wait_core(|c| c.preferred_address_outcome())
        .await
        .expect("preferred-address outcome");
    assert!(moved, "the client validated the preferred address");
    assert_eq!(conn.remote_address(), Some(pa));
    (conn, accepted)
}

/// An echo over the new path: the client only accepts packets from its current server
/// address, so the answer proves the server sends from the preferred socket
async fn echo(conn: &driver::Connection, accepted: &driver::Connection, pa: SocketAddr, seed: u8) {
    let data: Vec<u8> = (0..100_000u32).map(|i| (i % 251) as u8 ^ seed).collect();
    let serve = async {
        let (mut send, mut recv) = accepted.accept_bi().await.expect("accept stream");
        let got = recv.read_to_end(1 << 20).await.expect("server read");
        send.write_all(&got).await.expect("server write");
        send.finish().expect("server finish");
    };
    let ask = async {
        let (mut send, mut recv) = conn.open_bi().await.expect("open stream");
        send.write_all(&data).await.expect("client write");
        send.finish().expect("client finish");
        recv.read_to_end(1 << 20).await.expect("client read")
    };
    let ((), back) = tokio::join!(serve, ask);
    assert!(back == data, "echo corrupted over the preferred address");
    assert_eq!(accepted.preferred_local_address(), Some(pa));
    assert_eq!(conn.remote_address(), Some(pa));
    let stats = conn.stats().expect("client stats");
    assert_eq!(stats.migrations, 1, "{stats:?}");
}

/// Close the connection and wait (bounded) until its preferred-address socket is gone
async fn close_releases(conn: driver::Connection, accepted: driver::Connection, pa: SocketAddr) {
    conn.close(0, b"done");
    drop(conn);
    let _ = accepted.closed().await;
    drop(accepted);
    for _ in 0..500 {
        if UdpSocket::bind(pa).is_ok() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("the preferred-address socket outlived its connection");
}

#[tokio::test]
async fn client_moves_to_the_connections_preferred_address_and_data_flows() {
    tokio::time::timeout(TEST_TIMEOUT, async {
        let s = setup(IpAddr::V4(Ipv4Addr::LOCALHOST));
        let pa = free_port_on(PREFERRED_V4);
        let (conn, accepted) = connect_and_move(&s, pa).await;
        echo(&conn, &accepted, pa, 0).await;
        close_releases(conn, accepted, pa).await;
    })
    .await
    .expect("test timed out");
}

#[tokio::test]
async fn ipv6_preferred_address_on_another_port_of_the_same_ip() {
    // The preferred socket shares its IP with the endpoint's own socket
    tokio::time::timeout(TEST_TIMEOUT, async {
        let lo = IpAddr::V6(Ipv6Addr::LOCALHOST);
        let s = setup(lo);
        let pa = free_port_on(lo);
        let (conn, accepted) = connect_and_move(&s, pa).await;
        echo(&conn, &accepted, pa, 1).await;
        close_releases(conn, accepted, pa).await;
    })
    .await
    .expect("test timed out");
}

#[tokio::test]
async fn two_connections_with_preferred_ports_on_one_ip() {
    // Both preferred sockets are on 127.0.0.2: the driver tells them apart by connection
    tokio::time::timeout(TEST_TIMEOUT, async {
        let s = setup(IpAddr::V4(Ipv4Addr::LOCALHOST));
        let pa1 = free_port_on(PREFERRED_V4);
        let (c1, a1) = connect_and_move(&s, pa1).await;
        let pa2 = free_port_on(PREFERRED_V4);
        let (c2, a2) = connect_and_move(&s, pa2).await;
        assert_ne!(pa1, pa2);
        tokio::join!(echo(&c1, &a1, pa1, 2), echo(&c2, &a2, pa2, 3));
        // Closing one keeps the other's socket and path
        close_releases(c1, a1, pa1).await;
        echo(&c2, &a2, pa2, 4).await;
        close_releases(c2, a2, pa2).await;
    })
    .await
    .expect("test timed out");
}

#[tokio::test]
async fn preferred_address_errors_carry_the_kernels_errno() {
    tokio::time::timeout(TEST_TIMEOUT, async {
        let s = setup(IpAddr::V4(Ipv4Addr::LOCALHOST));
        let pa = free_port_on(PREFERRED_V4);
        let conn = s
            .client
            .connect(s.client_config.clone(), s.server.local_addr(), "localhost")
            .expect("connect");
        let accepted = s.server.accept().await.expect("incoming connection");
        let errno = |r: io::Result<()>| r.err().and_then(|e| e.raw_os_error());
        // A client has no preferred address
        assert_eq!(
            errno(conn.advertise_preferred_address(pa)),
            Some(nix::libc::EINVAL)
        );
        assert_eq!(
            errno(accepted.advertise_preferred_address(SocketAddr::new(pa.ip(), 0))),
            Some(nix::libc::EINVAL)
        );
        // Someone else holds the address
        let holder = UdpSocket::bind(pa).expect("hold the address");
        let busy = accepted.advertise_preferred_address(pa);
        assert_eq!(
            busy.map_err(|e| e.kind()).err(),
            Some(io::ErrorKind::AddrInUse)
        );
        drop(holder);
        // Once the application took the transport parameters they are fixed; the socket bound
        // for the attempt is not kept
        accepted
            .with_core(|c, _| c.external_local_params().map(<[u8]>::to_vec))
            .flatten()
            .expect("parameters");
        assert_eq!(
            errno(accepted.advertise_preferred_address(pa)),
            Some(nix::libc::EINVAL)
        );
        UdpSocket::bind(pa).expect("nothing kept the address");
        // A closed connection
        accepted.close(0, b"");
        let _ = accepted.closed().await;
        assert_eq!(
            errno(accepted.advertise_preferred_address(pa)),
            Some(nix::libc::EPIPE)
        );
    })
    .await
    .expect("test timed out");
}
