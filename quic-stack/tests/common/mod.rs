//! Setup shared by the driver integration tests: a fresh self-signed "localhost" certificate,
//! both TLS sides over it, and the application's TLS for external-TLS connections; the quinn
//! interop tests' setup is in `quinn_peer`
// Each test binary uses only some of it
#![allow(dead_code)]

use std::sync::Arc;
use std::time::Duration;

use quic_stack::config::ClientConfig;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

pub(crate) mod app_tls;
pub(crate) mod quinn_peer;

/// The stack as the shared application-TLS driver names it
mod stack {
    pub(crate) use quic_stack::crypto::external::Direction;
    pub(crate) use quic_stack::crypto::Suite;
    pub(crate) use quic_stack::{Connection, Side, SpaceId};
}

/// The server's rustls config (the caller decides built-in or external TLS) and a client
/// config trusting exactly that certificate, both offering `alpn`
pub(crate) fn self_signed_tls(alpn: &[u8]) -> (rustls::ServerConfig, ClientConfig) {
    let certified = rcgen::generate_simple_self_signed(vec!["localhost".into()])
        .expect("rcgen generates a self-signed certificate");
    let cert: CertificateDer<'static> = certified.cert.der().clone();
    let key = PrivatePkcs8KeyDer::from(certified.key_pair.serialize_der());
    let server = quic_stack::tls::server_config(
        vec![cert.clone()],
        PrivateKeyDer::Pkcs8(key),
        vec![alpn.to_vec()],
        None,
        false,
    )
    .expect("server TLS config");
    let mut roots = rustls::RootCertStore::empty();
    roots.add(cert).expect("valid root");
    let client = quic_stack::tls::client_config(roots, vec![alpn.to_vec()], None)
        .expect("client TLS config");
    (server, ClientConfig::new(Arc::new(client)))
}

/// Poll `done` every 10 ms, at most 500 times (5 s), for state the driver changes in the
/// background; panics with `what` if it never holds
pub(crate) async fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    for _ in 0..500 {
        if done() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("{what}");
}
