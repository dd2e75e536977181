//! The pieces of an application running TLS itself (rustls's QUIC API) over a service
//! socket: the traffic secrets rustls logs, and handing them to the socket

use std::sync::Mutex;

use quic_stack::sockapi::consts::*;
use quic_stack::sockapi::types::CryptoSecret;

use super::{Answer, Sock};

/// TLS 1.3 traffic secrets as rustls logs them (its QUIC API hands out only derived keys)
#[derive(Debug, Default)]
pub(crate) struct Secrets(Mutex<Vec<(String, Vec<u8>)>>);

impl Secrets {
    pub(crate) fn get(&self, label: &str) -> Option<Vec<u8>> {
        let all = self.0.lock().expect("lock");
        all.iter().find(|(l, _)| l == label).map(|(_, s)| s.clone())
    }

    /// The secret `label`, which must have been logged
    pub(crate) fn logged(&self, label: &str) -> Vec<u8> {
        self.get(label)
            .unwrap_or_else(|| panic!("{label} not logged"))
    }

    /// Forget every secret: a second connection's labels are the same
    pub(crate) fn clear(&self) {
        self.0.lock().expect("lock").clear();
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

/// The socket API's cipher number of a negotiated suite
pub(crate) fn cipher_of(suite: rustls::SupportedCipherSuite) -> u32 {
    use rustls::CipherSuite as C;
    match suite.suite() {
        C::TLS13_AES_128_GCM_SHA256 => TLS_CIPHER_AES_GCM_128,
        C::TLS13_AES_256_GCM_SHA384 => TLS_CIPHER_AES_GCM_256,
        C::TLS13_CHACHA20_POLY1305_SHA256 => TLS_CIPHER_CHACHA20_POLY1305,
        other => panic!("unexpected suite {other:?}"),
    }
}

/// setsockopt(CRYPTO_SECRET): one direction (`send` 1: ours) of `level`, which must succeed
pub(crate) async fn install(s: &mut Sock, cipher_type: u32, level: u8, send: u8, value: &[u8]) {
    let mut secret = [0u8; QUIC_CRYPTO_SECRET_BUFFER_SIZE];
    secret[..value.len()].copy_from_slice(value);
    let cs = CryptoSecret {
        send,
        level,
        cipher_type,
        secret,
    };
    let r = s.set(QUIC_SOCKOPT_CRYPTO_SECRET, &cs.encode()).await;
    assert!(
        matches!(r, Answer::Ok(0)),
        "secret level {level} send {send}: {r:?}"
    );
}

/// Both directions of `level`: our logged `tx` secret (send) and the peer's `rx` (receive)
pub(crate) async fn install_both(
    s: &mut Sock,
    cipher_type: u32,
    level: u8,
    secrets: &Secrets,
    tx: &str,
    rx: &str,
) {
    install(s, cipher_type, level, 1, &secrets.logged(tx)).await;
    install(s, cipher_type, level, 0, &secrets.logged(rx)).await;
}

/// Hands TLS's handshake bytes of `level` to the socket, which must take all of them
pub(crate) async fn send_all_handshake(s: &mut Sock, level: u8, buf: &[u8]) {
    let r = s.send_handshake(level, buf).await;
    assert!(matches!(r, Answer::Ok(n) if n == buf.len() as i64), "{r:?}");
}

/// One round of TLS output: what `write_hs` (rustls's) produces goes to the socket at
/// `level`; the key change it reported, and whether it wrote anything
pub(crate) async fn flush_tls(
    s: &mut Sock,
    level: u8,
    write_hs: impl FnOnce(&mut Vec<u8>) -> Option<rustls::quic::KeyChange>,
) -> (Option<rustls::quic::KeyChange>, bool) {
    let mut buf = Vec::new();
    let change = write_hs(&mut buf);
    if !buf.is_empty() {
        send_all_handshake(s, level, &buf).await;
    }
    (change, !buf.is_empty())
}
