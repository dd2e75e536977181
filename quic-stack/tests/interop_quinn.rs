//! Interop against quinn, an independent QUIC implementation, over loopback UDP
//!
//! Each direction (our client ↔ quinn server, quinn client ↔ our server) runs the same script:
//! handshake, 8 MiB echoed on a bidirectional stream, a unidirectional stream each way, 100
//! datagrams each way, and an application close whose code the peer must see.

mod common;

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use common::quinn_peer::{
    our_client_crypto, our_endpoint, our_server_crypto, quinn_client_crypto, quinn_client_endpoint,
    quinn_server_crypto, quinn_server_endpoint, test_cert, TestCert,
};
use quic_stack::config::{ClientConfig, EndpointConfig, ServerConfig};
use quic_stack::connection::ConnectionError;
use quic_stack::driver;

const ECHO_BYTES: usize = 8 * 1024 * 1024;
const DATAGRAMS: usize = 100;
const CLOSE_CODE: u32 = 0x42;
/// Bounds every test so a protocol bug fails instead of hanging CI
const TEST_TIMEOUT: Duration = Duration::from_secs(60);

fn quinn_server(cert: &TestCert) -> quinn::Endpoint {
    let mut transport = quinn::TransportConfig::default();
    transport.max_concurrent_uni_streams(16u32.into());
    quinn_server_endpoint(quinn_server_crypto(cert), Some(transport))
}

fn quinn_client(cert: &TestCert) -> (quinn::Endpoint, quinn::ClientConfig) {
    let crypto = quinn_client_crypto(cert, common::quinn_peer::provider());
    quinn_client_endpoint(
        quinn::crypto::rustls::QuicClientConfig::try_from(crypto).expect("QUIC-capable"),
    )
}

fn our_server(cert: &TestCert) -> driver::Endpoint {
    let server = ServerConfig::new(Arc::new(our_server_crypto(cert, false)));
    our_endpoint(EndpointConfig::default(), Some(server))
}

fn our_client(cert: &TestCert) -> (driver::Endpoint, ClientConfig) {
    let crypto = our_client_crypto(cert);
    let endpoint = our_endpoint(EndpointConfig::default(), None);
    (endpoint, ClientConfig::new(Arc::new(crypto)))
}

fn pattern(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i % 251) as u8).collect()
}

async fn with_timeout<F: std::future::Future>(f: F) -> F::Output {
    common::quinn_peer::with_timeout(TEST_TIMEOUT, f).await
}

/// quinn's side of the script when it is the server: echo every bidi stream, answer a uni stream
/// with one of its own, echo datagrams, then wait for our close
async fn quinn_serve(endpoint: quinn::Endpoint) -> quinn::ConnectionError {
    let incoming = endpoint.accept().await.expect("an incoming connection");
    let conn = incoming.await.expect("quinn completes the handshake");
    let echo_conn = conn.clone();
    tokio::spawn(async move {
        while let Ok((mut send, mut recv)) = echo_conn.accept_bi().await {
            tokio::spawn(async move {
                let data = recv.read_to_end(usize::MAX).await.expect("read bidi");
                send.write_all(&data).await.expect("echo bidi");
                send.finish().expect("finish echo");
            });
        }
    });
    let uni_conn = conn.clone();
    tokio::spawn(async move {
        while let Ok(mut recv) = uni_conn.accept_uni().await {
            let data = recv.read_to_end(usize::MAX).await.expect("read uni");
            let mut send = uni_conn.open_uni().await.expect("open uni back");
            send.write_all(&data).await.expect("write uni back");
            send.finish().expect("finish uni back");
        }
    });
    let dgram_conn = conn.clone();
    tokio::spawn(async move {
        while let Ok(data) = dgram_conn.read_datagram().await {
            if dgram_conn.send_datagram(data).is_err() {
                break;
            }
        }
    });
    conn.closed().await
}

#[tokio::test]
async fn our_client_to_quinn_server() {
    with_timeout(async {
        let cert = test_cert();
        let server = quinn_server(&cert);
        let server_addr = server.local_addr().expect("quinn address");
        let server_task = tokio::spawn(quinn_serve(server));

        let (endpoint, config) = our_client(&cert);
        let conn = endpoint
            .connect(config, server_addr, "localhost")
            .expect("start connecting");
        conn.handshake().await.expect("handshake with quinn");

        // 8 MiB echoed on a bidirectional stream
        let payload = pattern(ECHO_BYTES);
        let (mut send, mut recv) = conn.open_bi().await.expect("open bidi");
        let writer = {
            let payload = payload.clone();
            tokio::spawn(async move {
                send.write_all(&payload).await.expect("write 8 MiB");
                send.finish().expect("finish");
            })
        };
        let echoed = recv.read_to_end(ECHO_BYTES + 1).await.expect("read echo");
        writer.await.expect("writer task");
        assert!(echoed == payload, "echoed bytes differ from what was sent");

        // a unidirectional stream each way
        let mut uni = conn.open_uni().await.expect("open uni");
        uni.write_all(b"uni from us").await.expect("write uni");
        uni.finish().expect("finish uni");
        let mut back = conn.accept_uni().await.expect("quinn opens uni back");
        assert_eq!(
            back.read_to_end(1024).await.expect("read uni"),
            b"uni from us"
        );

        // 100 datagrams each way
        for i in 0..DATAGRAMS {
            conn.send_datagram(Bytes::from(format!("datagram {i}")))
                .expect("send datagram");
            let echoed = conn.read_datagram().await.expect("echoed datagram");
            assert_eq!(echoed, format!("datagram {i}").as_bytes());
        }

        // application close seen by quinn with our code
        conn.close(u64::from(CLOSE_CODE), b"done");
        match server_task.await.expect("server task") {
            quinn::ConnectionError::ApplicationClosed(close) => {
                assert_eq!(close.error_code, quinn::VarInt::from_u32(CLOSE_CODE));
                assert_eq!(&close.reason[..], b"done");
            }
            other => panic!("quinn saw {other:?}, expected our application close"),
        }
    })
    .await;
}

#[tokio::test]
async fn quinn_client_to_our_server() {
    with_timeout(async {
        let cert = test_cert();
        let server = our_server(&cert);
        let server_addr = server.local_addr();

        let server_task = tokio::spawn(async move {
            let conn = server.accept().await.expect("incoming connection");
            conn.handshake()
                .await
                .expect("our server completes the handshake");
            // echo one bidi stream
            let (mut send, mut recv) = conn.accept_bi().await.expect("accept bidi");
            let data = recv.read_to_end(ECHO_BYTES + 1).await.expect("read bidi");
            send.write_all(&data).await.expect("echo");
            send.finish().expect("finish echo");
            // answer a uni stream with one of ours
            let mut uni = conn.accept_uni().await.expect("accept uni");
            let data = uni.read_to_end(1024).await.expect("read uni");
            let mut back = conn.open_uni().await.expect("open uni back");
            back.write_all(&data).await.expect("write uni back");
            back.finish().expect("finish uni back");
            // echo datagrams
            for _ in 0..DATAGRAMS {
                let data = conn.read_datagram().await.expect("datagram from quinn");
                conn.send_datagram(data).expect("echo datagram");
            }
            conn.closed().await
        });

        let (endpoint, config) = quinn_client(&cert);
        let conn = endpoint
            .connect_with(config, server_addr, "localhost")
            .expect("start connecting")
            .await
            .expect("handshake with our server");

        let payload = pattern(ECHO_BYTES);
        let (mut send, mut recv) = conn.open_bi().await.expect("open bidi");
        let writer = {
            let payload = payload.clone();
            tokio::spawn(async move {
                send.write_all(&payload).await.expect("write 8 MiB");
                send.finish().expect("finish");
            })
        };
        let echoed = recv.read_to_end(ECHO_BYTES + 1).await.expect("read echo");
        writer.await.expect("writer task");
        assert!(echoed == payload, "echoed bytes differ from what was sent");

        let mut uni = conn.open_uni().await.expect("open uni");
        uni.write_all(b"uni from quinn").await.expect("write uni");
        uni.finish().expect("finish uni");
        let mut back = conn.accept_uni().await.expect("we open uni back");
        assert_eq!(
            back.read_to_end(1024).await.expect("read uni"),
            b"uni from quinn"
        );

        for i in 0..DATAGRAMS {
            conn.send_datagram(Bytes::from(format!("datagram {i}")))
                .expect("send datagram");
            let echoed = conn.read_datagram().await.expect("echoed datagram");
            assert_eq!(echoed, format!("datagram {i}").as_bytes());
        }

        conn.close(quinn::VarInt::from_u32(CLOSE_CODE), b"done");
        match server_task.await.expect("server task") {
            ConnectionError::ApplicationClosed { error_code, reason } => {
                assert_eq!(error_code, u64::from(CLOSE_CODE));
                assert_eq!(&reason[..], b"done");
            }
            other => panic!("we saw {other:?}, expected quinn's application close"),
        }
        endpoint.wait_idle().await;
    })
    .await;
}

/// Echo one bidirectional stream as the quinn server, then report the client address quinn
/// sends to and wait for the close
async fn quinn_echo_once(endpoint: quinn::Endpoint) -> SocketAddr {
    let incoming = endpoint.accept().await.expect("an incoming connection");
    let conn = incoming.await.expect("quinn completes the handshake");
    let (mut send, mut recv) = conn.accept_bi().await.expect("accept bidi");
    let data = recv.read_to_end(usize::MAX).await.expect("read bidi");
    send.write_all(&data).await.expect("echo bidi");
    send.finish().expect("finish echo");
    // Our close comes after we read the whole echo, so quinn has followed us by then
    let _ = conn.closed().await;
    conn.remote_address()
}

#[tokio::test]
async fn our_client_rebinds_mid_transfer_to_quinn() {
    with_timeout(async {
        let cert = test_cert();
        let server = quinn_server(&cert);
        let server_addr = server.local_addr().expect("quinn address");
        let server_task = tokio::spawn(quinn_echo_once(server));

        let (endpoint, config) = our_client(&cert);
        let old_addr = endpoint.local_addr();
        let conn = endpoint
            .connect(config, server_addr, "localhost")
            .expect("start connecting");
        conn.handshake().await.expect("handshake with quinn");

        let payload = pattern(ECHO_BYTES);
        let (mut send, mut recv) = conn.open_bi().await.expect("open bidi");
        let writer = {
            let payload = payload.clone();
            tokio::spawn(async move {
                send.write_all(&payload).await.expect("write 8 MiB");
                send.finish().expect("finish");
            })
        };
        // Read a first part of the echo, then move to a new socket (new port)
        let mut echoed = Vec::new();
        let mut buf = vec![0u8; 64 * 1024];
        while echoed.len() < ECHO_BYTES / 4 {
            let n = recv
                .read(&mut buf)
                .await
                .expect("read echo")
                .expect("more data");
            echoed.extend_from_slice(&buf[..n]);
        }
        endpoint
            .rebind(SocketAddr::from((Ipv4Addr::LOCALHOST, 0)))
            .expect("rebind");
        let new_addr = endpoint.local_addr();
        assert_ne!(new_addr, old_addr);
        let rest = recv.read_to_end(ECHO_BYTES + 1).await.expect("read echo");
        echoed.extend_from_slice(&rest);
        writer.await.expect("writer task");
        assert!(echoed == payload, "echoed bytes differ from what was sent");

        let stats = conn.stats().expect("stats");
        assert_eq!(stats.migrations, 1, "{stats:?}");
        assert!(stats.path_validations_succeeded >= 1, "{stats:?}");
        conn.close(u64::from(CLOSE_CODE), b"done");
        let seen = server_task.await.expect("server task");
        assert_eq!(seen, new_addr, "quinn did not follow the migration");
    })
    .await;
}

#[tokio::test]
async fn quinn_client_rebinds_to_our_server() {
    with_timeout(async {
        let cert = test_cert();
        let server = our_server(&cert);
        let server_addr = server.local_addr();
        let server_task = tokio::spawn(async move {
            let conn = server.accept().await.expect("incoming connection");
            conn.handshake().await.expect("handshake");
            let (mut send, mut recv) = conn.accept_bi().await.expect("accept bidi");
            let data = recv.read_to_end(ECHO_BYTES + 1).await.expect("read bidi");
            send.write_all(&data).await.expect("echo");
            send.finish().expect("finish echo");
            // All of the second half came from quinn's new socket
            let seen = (conn.remote_address(), conn.stats());
            conn.closed().await;
            seen
        });

        let (endpoint, config) = quinn_client(&cert);
        let conn = endpoint
            .connect_with(config, server_addr, "localhost")
            .expect("start connecting")
            .await
            .expect("handshake with our server");
        let payload = pattern(ECHO_BYTES);
        let (mut send, mut recv) = conn.open_bi().await.expect("open bidi");
        send.write_all(&payload[..ECHO_BYTES / 2])
            .await
            .expect("write first half");
        let socket = std::net::UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind");
        let new_addr = socket.local_addr().expect("address");
        endpoint.rebind(socket).expect("quinn rebinds");
        send.write_all(&payload[ECHO_BYTES / 2..])
            .await
            .expect("write second half");
        send.finish().expect("finish");
        let echoed = recv.read_to_end(ECHO_BYTES + 1).await.expect("read echo");
        assert!(echoed == payload, "echoed bytes differ from what was sent");
        conn.close(quinn::VarInt::from_u32(CLOSE_CODE), b"done");
        let (remote, stats) = server_task.await.expect("server task");
        assert_eq!(remote, Some(new_addr), "our server did not follow quinn");
        let stats = stats.expect("stats");
        assert!(stats.migrations >= 1, "{stats:?}");
        endpoint.wait_idle().await;
    })
    .await;
}

/// Our client offering v2 first to quinn (v1 only): quinn answers with Version Negotiation
fn v2_first_client(cert: &TestCert, strict: bool) -> (driver::Endpoint, ClientConfig) {
    let crypto = our_client_crypto(cert);
    let endpoint = our_endpoint(
        EndpointConfig {
            supported_versions: vec![quic_stack::crypto::VERSION_2, quic_stack::crypto::VERSION_1],
            strict_version_negotiation: strict,
            ..EndpointConfig::default()
        },
        None,
    );
    let config = ClientConfig {
        version: quic_stack::crypto::VERSION_2,
        ..ClientConfig::new(Arc::new(crypto))
    };
    (endpoint, config)
}

#[tokio::test]
async fn version_negotiation_fallback_with_quinn() {
    with_timeout(async {
        let cert = test_cert();
        let server = quinn_server(&cert);
        let server_addr = server.local_addr().expect("quinn address");
        let server_task = tokio::spawn(quinn_echo_once(server));
        let (endpoint, config) = v2_first_client(&cert, false);
        let conn = endpoint
            .connect(config, server_addr, "localhost")
            .expect("start connecting");
        conn.handshake()
            .await
            .expect("handshake after falling back");
        let (mut send, mut recv) = conn.open_bi().await.expect("open bidi");
        send.write_all(b"after fallback").await.expect("write");
        send.finish().expect("finish");
        let echoed = recv.read_to_end(1024).await.expect("read echo");
        assert_eq!(echoed, b"after fallback");
        conn.close(0, b"");
        server_task.await.expect("server task");
    })
    .await;
}

#[tokio::test]
async fn strict_version_negotiation_refuses_quinn_without_version_information() {
    // quinn 0.11 sends no version_information, so after a fallback RFC 9368 §4 makes us close
    with_timeout(async {
        let cert = test_cert();
        let server = quinn_server(&cert);
        let server_addr = server.local_addr().expect("quinn address");
        tokio::spawn(async move {
            if let Some(incoming) = server.accept().await {
                let _ = incoming.await;
            }
        });
        let (endpoint, config) = v2_first_client(&cert, true);
        let conn = endpoint
            .connect(config, server_addr, "localhost")
            .expect("start connecting");
        match conn.handshake().await {
            Err(ConnectionError::TransportError(e)) => assert_eq!(
                e.code,
                quic_stack::TransportErrorCode::VERSION_NEGOTIATION_ERROR
            ),
            other => panic!("expected VERSION_NEGOTIATION_ERROR, got {other:?}"),
        }
    })
    .await;
}

#[tokio::test]
async fn ecn_validated_with_quinn_both_ways() {
    with_timeout(async {
        let cert = test_cert();
        // our client → quinn server
        let server = quinn_server(&cert);
        let server_addr = server.local_addr().expect("quinn address");
        let server_task = tokio::spawn(quinn_echo_once(server));
        let (endpoint, config) = our_client(&cert);
        let conn = endpoint
            .connect(config, server_addr, "localhost")
            .expect("start connecting");
        conn.handshake().await.expect("handshake with quinn");
        let payload = pattern(1 << 20);
        let (mut send, mut recv) = conn.open_bi().await.expect("open bidi");
        send.write_all(&payload).await.expect("write");
        send.finish().expect("finish");
        let echoed = recv.read_to_end(2 << 20).await.expect("read echo");
        assert!(echoed == payload);
        let stats = conn.stats().expect("stats");
        assert!(
            stats.ecn_capable,
            "quinn's ACK_ECN did not validate: {stats:?}"
        );
        conn.close(0, b"");
        server_task.await.expect("server task");

        // quinn client → our server
        let server = our_server(&cert);
        let server_addr = server.local_addr();
        let server_task = tokio::spawn(async move {
            let conn = server.accept().await.expect("incoming connection");
            conn.handshake().await.expect("handshake");
            let (mut send, mut recv) = conn.accept_bi().await.expect("accept bidi");
            let data = recv.read_to_end(2 << 20).await.expect("read bidi");
            send.write_all(&data).await.expect("echo");
            send.finish().expect("finish echo");
            let stats = conn.stats();
            conn.closed().await;
            stats
        });
        let (endpoint, config) = quinn_client(&cert);
        let conn = endpoint
            .connect_with(config, server_addr, "localhost")
            .expect("start connecting")
            .await
            .expect("handshake with our server");
        let (mut send, mut recv) = conn.open_bi().await.expect("open bidi");
        send.write_all(&payload).await.expect("write");
        send.finish().expect("finish");
        let echoed = recv.read_to_end(2 << 20).await.expect("read echo");
        assert!(echoed == payload);
        conn.close(quinn::VarInt::from_u32(0), b"");
        let stats = server_task.await.expect("server task").expect("stats");
        assert!(
            stats.ecn_capable,
            "quinn's ACK_ECN did not validate: {stats:?}"
        );
        endpoint.wait_idle().await;
    })
    .await;
}

#[tokio::test]
async fn qlog_files_written_by_the_driver() {
    with_timeout(async {
        let cert = test_cert();
        let server = quinn_server(&cert);
        let server_addr = server.local_addr().expect("quinn address");
        let server_task = tokio::spawn(quinn_echo_once(server));
        let dir = std::env::temp_dir().join(format!("quictun-qlog-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("qlog dir");
        let crypto = our_client_crypto(&cert);
        let endpoint = our_endpoint(
            EndpointConfig {
                qlog_dir: Some(dir.clone()),
                ..EndpointConfig::default()
            },
            None,
        );
        let conn = endpoint
            .connect(
                ClientConfig::new(Arc::new(crypto)),
                server_addr,
                "localhost",
            )
            .expect("start connecting");
        conn.handshake().await.expect("handshake with quinn");
        let (mut send, mut recv) = conn.open_bi().await.expect("open bidi");
        send.write_all(b"traced").await.expect("write");
        send.finish().expect("finish");
        assert_eq!(recv.read_to_end(64).await.expect("echo"), b"traced");
        conn.close(0, b"");
        server_task.await.expect("server task");
        drop(send);
        drop(recv);
        drop(conn);
        drop(endpoint);
        // The trace is flushed when the connection state is dropped after draining
        let mut text = String::new();
        for _ in 0..100 {
            tokio::time::sleep(Duration::from_millis(50)).await;
            let files: Vec<_> = std::fs::read_dir(&dir)
                .expect("read qlog dir")
                .flatten()
                .map(|e| e.path())
                .collect();
            if let Some(f) = files.first() {
                text = std::fs::read_to_string(f).unwrap_or_default();
                if text.contains("connection_closed") {
                    break;
                }
            }
        }
        let _ = std::fs::remove_dir_all(&dir);
        assert!(text.starts_with('\u{1e}'), "not JSON-SEQ: {text:.80}");
        assert!(text.contains("transport:packet_sent"));
        assert!(text.contains("connectivity:connection_closed"));
    })
    .await;
}
