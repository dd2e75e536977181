//! The tokio driver reports why a connection ended even after the core forgot it, and a
//! handle to a drained connection never reaches the connection that reuses its slot

mod common;

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use quic_stack::config::{ClientConfig, EndpointConfig, ServerConfig};
use quic_stack::connection::ConnectionError;
use quic_stack::driver;

const ALPN: &[u8] = b"quictun-close-test";
const TEST_TIMEOUT: Duration = Duration::from_secs(30);

fn setup() -> (driver::Endpoint, driver::Endpoint, ClientConfig) {
    let (crypto, client_config) = common::self_signed_tls(ALPN);
    let server = driver::Endpoint::new(
        SocketAddr::from((Ipv4Addr::LOCALHOST, 0)),
        EndpointConfig::default(),
        Some(ServerConfig::new(Arc::new(crypto))),
    )
    .expect("bind server");
    let client = driver::Endpoint::new(
        SocketAddr::from((Ipv4Addr::LOCALHOST, 0)),
        EndpointConfig::default(),
        None,
    )
    .expect("bind client");
    (server, client, client_config)
}

/// Connect once; the server side is returned too
async fn connect(
    server: &driver::Endpoint,
    client: &driver::Endpoint,
    config: &ClientConfig,
) -> (driver::Connection, driver::Connection) {
    let conn = client
        .connect(config.clone(), server.local_addr(), "localhost")
        .expect("start connecting");
    let accepted = server.accept().await.expect("incoming connection");
    let (c, s) = tokio::join!(conn.handshake(), accepted.handshake());
    c.expect("client handshake");
    s.expect("server handshake");
    (conn, accepted)
}

/// Wait (bounded) until the core has dropped the connection: `stats` is gone then
async fn drained(conn: &driver::Connection) {
    common::wait_until("the connection never drained", || conn.stats().is_none()).await;
}

#[tokio::test]
async fn close_reason_is_kept_after_the_connection_drained() {
    tokio::time::timeout(TEST_TIMEOUT, async {
        let (server, client, config) = setup();
        let (conn, accepted) = connect(&server, &client, &config).await;
        accepted.close(0x42, b"bye");
        let reason = conn.closed().await;
        assert!(
            matches!(
                reason,
                ConnectionError::ApplicationClosed {
                    error_code: 0x42,
                    ..
                }
            ),
            "{reason:?}"
        );
        drained(&conn).await;
        // The core forgot the connection; the handle still knows why it ended
        let after = conn.close_reason();
        assert!(
            matches!(
                after,
                Some(ConnectionError::ApplicationClosed {
                    error_code: 0x42,
                    ..
                })
            ),
            "{after:?}"
        );
        let read = conn.read_datagram().await;
        assert!(
            matches!(
                read,
                Err(ConnectionError::ApplicationClosed {
                    error_code: 0x42,
                    ..
                })
            ),
            "{read:?}"
        );
        drained(&accepted).await;
        assert_eq!(
            accepted.close_reason(),
            Some(ConnectionError::LocallyClosed)
        );

        // A new connection takes the freed slot: the old handles must neither see it nor
        // close it when they go away
        let (conn2, accepted2) = connect(&server, &client, &config).await;
        assert!(
            conn.stats().is_none(),
            "a stale handle reached the new connection"
        );
        drop(conn);
        drop(accepted);
        let (mut send, mut recv) = conn2.open_bi().await.expect("open on the new connection");
        send.write_all(b"still here").await.expect("write");
        send.finish().expect("finish");
        let (mut s2, mut r2) = accepted2.accept_bi().await.expect("accept");
        let got = r2.read_to_end(1024).await.expect("read");
        assert_eq!(got, b"still here");
        s2.write_all(&got).await.expect("echo");
        s2.finish().expect("finish echo");
        assert_eq!(
            recv.read_to_end(1024).await.expect("echo back"),
            b"still here"
        );
        assert_eq!(conn2.close_reason(), None);
    })
    .await
    .expect("test timed out");
}
