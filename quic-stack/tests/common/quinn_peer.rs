//! Setup shared by the quinn interop tests: a self-signed "localhost" certificate, the TLS
//! configs and endpoints of both implementations over it, and a relay that records the wire
// Each interop test binary uses only some of it, and the driver tests none
#![allow(dead_code)]

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use quic_stack::config::{EndpointConfig, ServerConfig};
use quic_stack::driver;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use tokio::net::UdpSocket;

pub(crate) const ALPN: &[u8] = b"quictun-interop";

pub(crate) struct TestCert {
    pub(crate) chain: Vec<CertificateDer<'static>>,
    pub(crate) key: PrivatePkcs8KeyDer<'static>,
}

pub(crate) fn test_cert() -> TestCert {
    let certified = rcgen::generate_simple_self_signed(vec!["localhost".into()])
        .expect("rcgen generates a self-signed certificate");
    TestCert {
        chain: vec![certified.cert.der().clone()],
        key: PrivatePkcs8KeyDer::from(certified.key_pair.serialize_der()),
    }
}

pub(crate) fn roots(cert: &TestCert) -> rustls::RootCertStore {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(cert.chain[0].clone()).expect("valid root");
    roots
}

pub(crate) fn provider() -> rustls::crypto::CryptoProvider {
    rustls::crypto::ring::default_provider()
}

/// A provider offering TLS_CHACHA20_POLY1305_SHA256 only
pub(crate) fn chacha_provider() -> rustls::crypto::CryptoProvider {
    let mut p = provider();
    p.cipher_suites
        .retain(|s| s.suite() == rustls::CipherSuite::TLS13_CHACHA20_POLY1305_SHA256);
    p
}

/// Fails the test after `limit` instead of letting a protocol bug hang CI
pub(crate) async fn with_timeout<F: std::future::Future>(limit: Duration, f: F) -> F::Output {
    tokio::time::timeout(limit, f)
        .await
        .expect("interop test timed out")
}

// ---- quinn ----

/// quinn's server TLS: TLS 1.3 only, our certificate, the interop ALPN
pub(crate) fn quinn_server_crypto(cert: &TestCert) -> rustls::ServerConfig {
    let mut crypto = rustls::ServerConfig::builder_with_provider(Arc::new(provider()))
        .with_protocol_versions(&[&rustls::version::TLS13])
        .expect("TLS 1.3 is supported")
        .with_no_client_auth()
        .with_single_cert(
            cert.chain.clone(),
            PrivateKeyDer::Pkcs8(cert.key.clone_key()),
        )
        .expect("valid certificate");
    crypto.alpn_protocols = vec![ALPN.to_vec()];
    crypto
}

/// A quinn server on loopback over `crypto`, with quinn's default transport unless given one
pub(crate) fn quinn_server_endpoint(
    crypto: rustls::ServerConfig,
    transport: Option<quinn::TransportConfig>,
) -> quinn::Endpoint {
    let crypto = quinn::crypto::rustls::QuicServerConfig::try_from(crypto).expect("QUIC-capable");
    let mut config = quinn::ServerConfig::with_crypto(Arc::new(crypto));
    if let Some(transport) = transport {
        config.transport_config(Arc::new(transport));
    }
    quinn::Endpoint::server(config, (Ipv4Addr::LOCALHOST, 0).into()).expect("bind quinn server")
}

/// quinn's client TLS: TLS 1.3 only with `provider`'s suites, trusting `cert`, the interop ALPN
pub(crate) fn quinn_client_crypto(
    cert: &TestCert,
    provider: rustls::crypto::CryptoProvider,
) -> rustls::ClientConfig {
    let mut crypto = rustls::ClientConfig::builder_with_provider(Arc::new(provider))
        .with_protocol_versions(&[&rustls::version::TLS13])
        .expect("TLS 1.3 is supported")
        .with_root_certificates(roots(cert))
        .with_no_client_auth();
    crypto.alpn_protocols = vec![ALPN.to_vec()];
    crypto
}

/// A quinn client endpoint on loopback and the connection config over `crypto`
pub(crate) fn quinn_client_endpoint(
    crypto: quinn::crypto::rustls::QuicClientConfig,
) -> (quinn::Endpoint, quinn::ClientConfig) {
    let endpoint =
        quinn::Endpoint::client((Ipv4Addr::LOCALHOST, 0).into()).expect("bind quinn client");
    (endpoint, quinn::ClientConfig::new(Arc::new(crypto)))
}

// ---- ours ----

/// Our server TLS over `cert` with the interop ALPN; `early_data` lets tickets allow 0-RTT
pub(crate) fn our_server_crypto(cert: &TestCert, early_data: bool) -> rustls::ServerConfig {
    quic_stack::tls::server_config(
        cert.chain.clone(),
        PrivateKeyDer::Pkcs8(cert.key.clone_key()),
        vec![ALPN.to_vec()],
        None,
        early_data,
    )
    .expect("server TLS config")
}

/// Our client TLS trusting `cert`, with the interop ALPN
pub(crate) fn our_client_crypto(cert: &TestCert) -> rustls::ClientConfig {
    quic_stack::tls::client_config(roots(cert), vec![ALPN.to_vec()], None)
        .expect("client TLS config")
}

/// Our endpoint on loopback: a server with `server`, a client without
pub(crate) fn our_endpoint(
    config: EndpointConfig,
    server: Option<ServerConfig>,
) -> driver::Endpoint {
    let what = if server.is_some() {
        "bind our server"
    } else {
        "bind our client"
    };
    driver::Endpoint::new(SocketAddr::from((Ipv4Addr::LOCALHOST, 0)), config, server).expect(what)
}

// ---- a relay that watches the wire ----

/// One datagram as the relay forwarded it
#[derive(Clone)]
pub(crate) struct Seen {
    pub(crate) from_client: bool,
    pub(crate) data: Vec<u8>,
}

/// A UDP relay between one client and `server` that records every datagram
pub(crate) struct Relay {
    pub(crate) addr: SocketAddr,
    seen: Arc<Mutex<Vec<Seen>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Relay {
    pub(crate) async fn start(server: SocketAddr) -> Self {
        let front = Arc::new(
            UdpSocket::bind((Ipv4Addr::LOCALHOST, 0))
                .await
                .expect("bind relay"),
        );
        let back = Arc::new(
            UdpSocket::bind((Ipv4Addr::LOCALHOST, 0))
                .await
                .expect("bind relay upstream"),
        );
        back.connect(server).await.expect("connect upstream");
        let addr = front.local_addr().expect("relay address");
        let seen: Arc<Mutex<Vec<Seen>>> = Arc::default();
        let log = seen.clone();
        let task = tokio::spawn(async move {
            let mut client: Option<SocketAddr> = None;
            let (mut a, mut b) = (vec![0u8; 65536], vec![0u8; 65536]);
            loop {
                tokio::select! {
                    r = front.recv_from(&mut a) => {
                        let Ok((n, from)) = r else { continue };
                        client = Some(from);
                        log.lock().expect("lock").push(Seen { from_client: true, data: a[..n].to_vec() });
                        let _ = back.send(&a[..n]).await;
                    }
                    r = back.recv(&mut b) => {
                        let Ok(n) = r else { continue };
                        log.lock().expect("lock").push(Seen { from_client: false, data: b[..n].to_vec() });
                        if let Some(c) = client {
                            let _ = front.send_to(&b[..n], c).await;
                        }
                    }
                }
            }
        });
        Self { addr, seen, task }
    }

    pub(crate) fn seen(&self) -> Vec<Seen> {
        self.seen.lock().expect("lock").clone()
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.task.abort();
    }
}
