//! The tokio driver gives one accepted connection its own preferred address (what the SOL_QUIC
//! service does for QUIC_SOCKOPT_CONNECTION_MIGRATION on a socket still establishing): it binds
//! a socket there, the client moves to it after the handshake, data keeps flowing, and the
//! socket closes with the connection. The server's TLS is run by the test (external TLS, as
//! in the kernel model), over loopback only (127.0.0.1 → 127.0.0.2, and ::1 to another port).

mod common;

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, UdpSocket};
use std::sync::Arc;
use std::time::Duration;

use common::app_tls::app_server;
use quic_stack::config::{ClientConfig, EndpointConfig, ServerConfig};
use quic_stack::driver;

const ALPN: &[u8] = b"quictun-preferred-test";
const TEST_TIMEOUT: Duration = Duration::from_secs(30);

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
    let mut app = app_server(server_tls, params, false);
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
    common::wait_until(
        "the preferred-address socket outlived its connection",
        || UdpSocket::bind(pa).is_ok(),
    )
    .await;
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
