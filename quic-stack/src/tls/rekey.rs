//! Packet keys for a QUIC version other than the one a rustls session was created for
//!
//! rustls fixes the QUIC version (and with it the HKDF labels of every packet key) when a
//! session is created, but a client in compatible version negotiation (RFC 9368 §2.3) learns the
//! negotiated version only from the server's first Initial, after its ClientHello went out.
//! The TLS handshake itself is the same in v1 and v2 (RFC 9369 §4), so such a session captures
//! the traffic secrets through rustls's key log hook and, once told of a change, derives the
//! Handshake and 1-RTT keys and their key updates with the negotiated version's labels itself.

use std::sync::{Arc, Mutex, MutexGuard};

use rustls::KeyLog;

use crate::crypto::{self, KeyPair, Keys, PacketKey, Suite};
use crate::shared::Side;

/// TLS 1.3 traffic secrets of one connection, as the key log hook reports them
#[derive(Default)]
struct Captured {
    /// Set once the secrets can no longer be needed: stop keeping copies
    done: bool,
    client_handshake: Option<Vec<u8>>,
    server_handshake: Option<Vec<u8>>,
    client_traffic: Option<Vec<u8>>,
    server_traffic: Option<Vec<u8>>,
}

/// A key log that keeps one connection's secrets and passes every line on to the
/// configured key log (so SSLKEYLOGFILE keeps working)
pub(super) struct SecretCapture {
    inner: Arc<dyn KeyLog>,
    secrets: Mutex<Captured>,
}

impl SecretCapture {
    pub(super) fn new(inner: Arc<dyn KeyLog>) -> Self {
        Self {
            inner,
            secrets: Mutex::new(Captured::default()),
        }
    }

    /// Drop every copy kept and keep no more
    fn forget(&self) {
        *self.secrets() = Captured {
            done: true,
            ..Captured::default()
        };
    }

    fn secrets(&self) -> MutexGuard<'_, Captured> {
        // The data stays consistent even if a holder panicked: each field is written whole
        self.secrets.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl std::fmt::Debug for SecretCapture {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SecretCapture").finish_non_exhaustive()
    }
}

impl KeyLog for SecretCapture {
    fn log(&self, label: &str, client_random: &[u8], secret: &[u8]) {
        if self.inner.will_log(label) {
            self.inner.log(label, client_random, secret);
        }
        let mut s = self.secrets();
        if s.done {
            return;
        }
        let slot = match label {
            "CLIENT_HANDSHAKE_TRAFFIC_SECRET" => &mut s.client_handshake,
            "SERVER_HANDSHAKE_TRAFFIC_SECRET" => &mut s.server_handshake,
            "CLIENT_TRAFFIC_SECRET_0" => &mut s.client_traffic,
            "SERVER_TRAFFIC_SECRET_0" => &mut s.server_traffic,
            _ => return,
        };
        *slot = Some(secret.to_vec());
    }

    fn will_log(&self, _label: &str) -> bool {
        true
    }
}

/// Key derivation in a version rustls was not created for
pub(super) struct Rekey {
    capture: Arc<SecretCapture>,
    /// The version rustls derives keys for
    rustls_version: u32,
    /// The version the connection uses now
    version: u32,
    /// Current 1-RTT secrets (client, server), for key updates
    traffic: Option<(Suite, Vec<u8>, Vec<u8>)>,
}

impl Rekey {
    pub(super) fn new(capture: Arc<SecretCapture>, rustls_version: u32) -> Self {
        Self {
            capture,
            rustls_version,
            version: rustls_version,
            traffic: None,
        }
    }

    pub(super) fn set_version(&mut self, version: u32) {
        self.version = version;
    }

    /// Whether keys must come from here rather than from rustls
    pub(super) fn active(&self) -> bool {
        self.version != self.rustls_version
    }

    /// Handshake keys in the current version
    pub(super) fn handshake_keys(&self, suite: Suite, side: Side) -> Option<Keys> {
        let mut s = self.capture.secrets();
        let (client, server) = (s.client_handshake.take()?, s.server_handshake.take()?);
        Some(self.keys(suite, side, &client, &server))
    }

    /// The version can no longer change (1-RTT keys exist): forget the captured secrets
    pub(super) fn settle(&self) {
        self.capture.forget();
    }

    /// 1-RTT keys in the current version; remembers the secrets for key updates
    pub(super) fn one_rtt_keys(&mut self, suite: Suite, side: Side) -> Option<Keys> {
        let (client, server) = {
            let mut s = self.capture.secrets();
            (s.client_traffic.take()?, s.server_traffic.take()?)
        };
        let keys = self.keys(suite, side, &client, &server);
        self.traffic = Some((suite, client, server));
        Some(keys)
    }

    /// Packet keys of the next 1-RTT key phase (RFC 9001 §6; RFC 9369 §3.3.2 for v2's label)
    pub(super) fn next_1rtt_keys(&mut self, side: Side) -> Option<KeyPair<Box<dyn PacketKey>>> {
        let version = self.version;
        let (suite, client, server) = self.traffic.as_mut()?;
        *client = crypto::next_secret(version, *suite, client);
        *server = crypto::next_secret(version, *suite, server);
        let (c, _) = crypto::keys_from_secret(version, *suite, client);
        let (s, _) = crypto::keys_from_secret(version, *suite, server);
        Some(match side {
            Side::Client => KeyPair {
                local: c,
                remote: s,
            },
            Side::Server => KeyPair {
                local: s,
                remote: c,
            },
        })
    }

    fn keys(&self, suite: Suite, side: Side, client: &[u8], server: &[u8]) -> Keys {
        let (cp, ch) = crypto::keys_from_secret(self.version, suite, client);
        let (sp, sh) = crypto::keys_from_secret(self.version, suite, server);
        let ((lp, lh), (rp, rh)) = match side {
            Side::Client => ((cp, ch), (sp, sh)),
            Side::Server => ((sp, sh), (cp, ch)),
        };
        Keys {
            header: KeyPair {
                local: lh,
                remote: rh,
            },
            packet: KeyPair {
                local: lp,
                remote: rp,
            },
        }
    }
}
