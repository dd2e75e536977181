//! Resumption and 0-RTT against quinn, over loopback UDP
//!
//! Each test makes a first connection that leaves a session ticket behind, then a second one
//! that resumes it; with 0-RTT the second connection's request travels before the handshake
//! completes and the peer must accept it. Resumption is proven on the server side by a
//! counting session store (a resumed TLS 1.3 handshake looks its ticket up), 0-RTT by both
//! sides reporting it accepted.

mod common;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::quinn_peer::{
    our_client_crypto, our_endpoint, our_server_crypto, provider, quinn_client_crypto,
    quinn_client_endpoint, quinn_server_crypto, quinn_server_endpoint, test_cert, TestCert,
};
use quic_stack::config::{ClientConfig, EndpointConfig, ServerConfig, TransportConfig};
use quic_stack::driver;

/// Bounds every test so a protocol bug fails instead of hanging CI
const TEST_TIMEOUT: Duration = Duration::from_secs(30);
/// The request the second connection sends in 0-RTT
const EARLY_REQUEST: &[u8] = b"GET /early (sent before the handshake completed)";

async fn with_timeout<F: std::future::Future>(f: F) -> F::Output {
    common::quinn_peer::with_timeout(TEST_TIMEOUT, f).await
}

/// A server session cache that counts successful ticket look-ups (resumptions)
#[derive(Debug)]
struct CountingStore {
    inner: Arc<dyn rustls::server::StoresServerSessions>,
    resumed: AtomicUsize,
}

impl CountingStore {
    fn new() -> Arc<Self> {
        Arc::new(Self {
            inner: rustls::server::ServerSessionMemoryCache::new(64),
            resumed: AtomicUsize::new(0),
        })
    }

    fn resumed(&self) -> usize {
        self.resumed.load(Ordering::SeqCst)
    }
}

impl rustls::server::StoresServerSessions for CountingStore {
    fn put(&self, key: Vec<u8>, value: Vec<u8>) -> bool {
        self.inner.put(key, value)
    }
    fn get(&self, key: &[u8]) -> Option<Vec<u8>> {
        let v = self.inner.get(key);
        if v.is_some() {
            self.resumed.fetch_add(1, Ordering::SeqCst);
        }
        v
    }
    fn take(&self, key: &[u8]) -> Option<Vec<u8>> {
        let v = self.inner.take(key);
        if v.is_some() {
            self.resumed.fetch_add(1, Ordering::SeqCst);
        }
        v
    }
    fn can_cache(&self) -> bool {
        self.inner.can_cache()
    }
}

fn quinn_server(cert: &TestCert, store: Arc<CountingStore>, early_data: bool) -> quinn::Endpoint {
    let mut crypto = quinn_server_crypto(cert);
    crypto.session_storage = store;
    // RFC 9001 §4.6.1: a QUIC server accepting early data advertises 0xffffffff
    crypto.max_early_data_size = if early_data { u32::MAX } else { 0 };
    quinn_server_endpoint(crypto, None)
}

fn quinn_client(cert: &TestCert) -> (quinn::Endpoint, quinn::ClientConfig) {
    let mut crypto = quinn_client_crypto(cert, provider());
    crypto.enable_early_data = true;
    quinn_client_endpoint(
        quinn::crypto::rustls::QuicClientConfig::try_from(crypto).expect("QUIC-capable"),
    )
}

fn our_server(cert: &TestCert, store: Arc<CountingStore>) -> driver::Endpoint {
    let mut crypto = our_server_crypto(cert, true);
    crypto.session_storage = store;
    let server = ServerConfig {
        transport: Arc::new(TransportConfig {
            zero_rtt: true,
            ..TransportConfig::default()
        }),
        ..ServerConfig::new(Arc::new(crypto))
    };
    our_endpoint(EndpointConfig::default(), Some(server))
}

fn our_client(cert: &TestCert, zero_rtt: bool) -> (driver::Endpoint, ClientConfig) {
    let crypto = our_client_crypto(cert);
    let endpoint = our_endpoint(EndpointConfig::default(), None);
    let config = ClientConfig {
        transport: Arc::new(TransportConfig {
            zero_rtt,
            ..TransportConfig::default()
        }),
        ..ClientConfig::new(Arc::new(crypto))
    };
    (endpoint, config)
}

/// quinn serves: echo one bidirectional stream per connection, answering as early as quinn
/// allows (quinn does not tell a server whether it accepted 0-RTT, so our client reports it)
async fn quinn_echo_server(endpoint: quinn::Endpoint, connections: usize) -> usize {
    let mut served = 0;
    for _ in 0..connections {
        let incoming = endpoint.accept().await.expect("an incoming connection");
        let connecting = incoming.accept().expect("accept");
        // A server may always use the connection early (0.5-RTT), which lets it read 0-RTT
        // requests before the handshake completes
        let conn = match connecting.into_0rtt() {
            Ok((conn, _)) => conn,
            Err(connecting) => connecting.await.expect("quinn handshake"),
        };
        let (mut send, mut recv) = conn.accept_bi().await.expect("a request stream");
        let data = recv.read_to_end(64 * 1024).await.expect("read request");
        send.write_all(&data).await.expect("echo");
        send.finish().expect("finish echo");
        // Wait for the client to close so the echo is not cut off
        let _ = conn.closed().await;
        served += 1;
    }
    served
}

/// One request/echo exchange on our client; returns 0-RTT accepted and bytes accepted
async fn our_request(
    endpoint: &driver::Endpoint,
    config: &ClientConfig,
    server: SocketAddr,
    expect_early: bool,
) -> (Option<bool>, u64) {
    let conn = endpoint
        .connect(config.clone(), server, "localhost")
        .expect("connect");
    assert_eq!(
        conn.is_zero_rtt_available(),
        expect_early,
        "0-RTT availability right after connect"
    );
    let (mut send, mut recv) = conn.open_bi().await.expect("open");
    send.write_all(EARLY_REQUEST).await.expect("write request");
    send.finish().expect("finish");
    let echo = recv.read_to_end(64 * 1024).await.expect("read echo");
    assert_eq!(echo, EARLY_REQUEST);
    conn.handshake().await.expect("handshake");
    // Give the session tickets (sent with HANDSHAKE_DONE) a moment before closing
    tokio::time::sleep(Duration::from_millis(50)).await;
    let accepted = conn.zero_rtt_accepted();
    let stats = conn.stats().expect("stats");
    conn.close(0, b"done");
    tokio::time::sleep(Duration::from_millis(20)).await;
    (accepted, stats.zero_rtt_bytes_accepted)
}

#[tokio::test]
async fn our_client_zero_rtt_to_quinn() {
    with_timeout(async {
        let cert = test_cert();
        let store = CountingStore::new();
        let server = quinn_server(&cert, store.clone(), true);
        let addr = server.local_addr().expect("quinn address");
        let served = tokio::spawn(quinn_echo_server(server, 2));
        let (endpoint, config) = our_client(&cert, true);
        let (first, _) = our_request(&endpoint, &config, addr, false).await;
        assert_eq!(first, None, "no ticket yet, no 0-RTT");
        let (second, bytes) = our_request(&endpoint, &config, addr, true).await;
        assert_eq!(second, Some(true), "quinn accepted our 0-RTT");
        assert!(bytes > EARLY_REQUEST.len() as u64, "0-RTT bytes {bytes}");
        assert_eq!(served.await.expect("quinn task"), 2);
        assert_eq!(store.resumed(), 1, "the second handshake resumed");
    })
    .await;
}

#[tokio::test]
async fn our_client_resumes_with_quinn_without_early_data() {
    with_timeout(async {
        let cert = test_cert();
        let store = CountingStore::new();
        // The ticket allows no early data: resumption only
        let server = quinn_server(&cert, store.clone(), false);
        let addr = server.local_addr().expect("quinn address");
        let served = tokio::spawn(quinn_echo_server(server, 2));
        let (endpoint, config) = our_client(&cert, true);
        let (first, _) = our_request(&endpoint, &config, addr, false).await;
        assert_eq!(first, None);
        let (second, bytes) = our_request(&endpoint, &config, addr, false).await;
        assert_eq!(second, None, "the ticket did not allow 0-RTT");
        assert_eq!(bytes, 0);
        assert_eq!(served.await.expect("quinn task"), 2);
        assert_eq!(store.resumed(), 1, "the second handshake resumed");
    })
    .await;
}

/// Our server echoes one request per connection; returns per connection whether it accepted
/// 0-RTT and how many 0-RTT bytes it processed
async fn our_echo_server(
    endpoint: driver::Endpoint,
    connections: usize,
) -> Vec<(Option<bool>, u64)> {
    let mut outcomes = Vec::new();
    for _ in 0..connections {
        let conn = endpoint.accept().await.expect("incoming connection");
        let (mut send, mut recv) = conn.accept_bi().await.expect("a request stream");
        let data = recv.read_to_end(64 * 1024).await.expect("read request");
        send.write_all(&data).await.expect("echo");
        send.finish().expect("finish echo");
        conn.handshake().await.expect("handshake");
        let stats = conn.stats().expect("stats");
        outcomes.push((conn.zero_rtt_accepted(), stats.zero_rtt_bytes_accepted));
        let _ = conn.closed().await;
    }
    outcomes
}

/// One request/echo exchange on a quinn client; returns whether 0-RTT was used and accepted
async fn quinn_request(
    endpoint: &quinn::Endpoint,
    config: &quinn::ClientConfig,
    server: SocketAddr,
) -> Option<bool> {
    let connecting = endpoint
        .connect_with(config.clone(), server, "localhost")
        .expect("connect");
    let (conn, accepted) = match connecting.into_0rtt() {
        Ok((conn, accepted)) => (conn, Some(accepted)),
        Err(connecting) => (connecting.await.expect("handshake"), None),
    };
    let (mut send, mut recv) = conn.open_bi().await.expect("open");
    send.write_all(EARLY_REQUEST).await.expect("write request");
    send.finish().expect("finish");
    let echo = recv.read_to_end(64 * 1024).await.expect("read echo");
    assert_eq!(echo, EARLY_REQUEST);
    let outcome = match accepted {
        Some(a) => Some(a.await),
        None => None,
    };
    // Give the session tickets a moment before closing
    tokio::time::sleep(Duration::from_millis(50)).await;
    conn.close(0u32.into(), b"done");
    endpoint.wait_idle().await;
    outcome
}

#[tokio::test]
async fn quinn_client_zero_rtt_to_our_server() {
    with_timeout(async {
        let cert = test_cert();
        let store = CountingStore::new();
        let server = our_server(&cert, store.clone());
        let addr = server.local_addr();
        let served = tokio::spawn(our_echo_server(server, 2));
        let (endpoint, config) = quinn_client(&cert);
        assert_eq!(quinn_request(&endpoint, &config, addr).await, None);
        assert_eq!(
            quinn_request(&endpoint, &config, addr).await,
            Some(true),
            "our server accepted quinn's 0-RTT"
        );
        let outcomes = served.await.expect("server task");
        assert_eq!(outcomes[0], (None, 0));
        assert_eq!(outcomes[1].0, Some(true));
        assert!(
            outcomes[1].1 > EARLY_REQUEST.len() as u64,
            "0-RTT bytes processed: {}",
            outcomes[1].1
        );
        assert_eq!(store.resumed(), 1, "the second handshake resumed");
    })
    .await;
}
