//! Session resumption for client sockets: QUIC_SOCKOPT_SESSION_TICKET and
//! QUIC_EVENT_NEW_SESSION_TICKET
//!
//! TLS runs inside the service (rustls), whose resumption state cannot be exported as bytes.
//! So the application gets a handle instead of the raw NewSessionTicket message: 64 random
//! bytes (the kernel's minimum ticket length) naming the ticket in the service's vault. Setting
//! the handle on a new socket before its handshake resumes that session; a handle works once
//! (TLS 1.3 tickets are single-use) and only for the uid that received it.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use ring::rand::{SecureRandom, SystemRandom};
use rustls::client::{ClientSessionStore, Tls12ClientSessionValue, Tls13ClientSessionValue};
use rustls::pki_types::ServerName;
use rustls::NamedGroup;

/// Length of a ticket handle
pub(super) const HANDLE_LEN: usize = 64;
/// Tickets kept service-wide; the oldest go first (the memory bound of the vault)
const VAULT_CAP: usize = 1024;

type Handle = [u8; HANDLE_LEN];

/// Tickets of every client socket of the service, by handle
#[derive(Default)]
pub(crate) struct Vault {
    tickets: Mutex<VecDeque<(Handle, u32, Tls13ClientSessionValue)>>,
}

impl Vault {
    /// Keep `ticket`; its handle, unless the system has no randomness to make one
    fn put(&self, uid: u32, ticket: Tls13ClientSessionValue) -> Option<Handle> {
        let mut h = [0u8; HANDLE_LEN];
        // Unguessable: a handle is all it takes to resume the session.
        SystemRandom::new().fill(&mut h).ok()?;
        let mut t = self.tickets.lock().unwrap_or_else(|e| e.into_inner());
        if t.len() >= VAULT_CAP {
            t.pop_front();
        }
        t.push_back((h, uid, ticket));
        Some(h)
    }

    /// The ticket named by `handle`, removed; only for the uid it was issued to
    pub(super) fn take(&self, uid: u32, handle: &[u8]) -> Option<Tls13ClientSessionValue> {
        let mut t = self.tickets.lock().unwrap_or_else(|e| e.into_inner());
        let i = t
            .iter()
            .position(|(h, u, _)| *u == uid && h.as_slice() == handle)?;
        t.remove(i).map(|(_, _, v)| v)
    }
}

/// The rustls session store of one client socket
pub(super) struct SocketStore {
    vault: Arc<Vault>,
    uid: u32,
    /// The ticket to resume with (from QUIC_SOCKOPT_SESSION_TICKET)
    resume: Mutex<Option<Tls13ClientSessionValue>>,
    kx_hint: Mutex<Option<NamedGroup>>,
    /// Tells the socket about a new ticket's handle
    on_ticket: Box<dyn Fn(Vec<u8>) + Send + Sync>,
}

impl SocketStore {
    pub(super) fn new(
        vault: Arc<Vault>,
        uid: u32,
        resume: Option<Tls13ClientSessionValue>,
        on_ticket: impl Fn(Vec<u8>) + Send + Sync + 'static,
    ) -> Self {
        Self {
            vault,
            uid,
            resume: Mutex::new(resume),
            kx_hint: Mutex::new(None),
            on_ticket: Box::new(on_ticket),
        }
    }
}

impl std::fmt::Debug for SocketStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SocketStore")
            .field("uid", &self.uid)
            .finish_non_exhaustive()
    }
}

impl ClientSessionStore for SocketStore {
    fn set_kx_hint(&self, _server_name: ServerName<'static>, group: NamedGroup) {
        *self.kx_hint.lock().unwrap_or_else(|e| e.into_inner()) = Some(group);
    }

    fn kx_hint(&self, _server_name: &ServerName<'_>) -> Option<NamedGroup> {
        *self.kx_hint.lock().unwrap_or_else(|e| e.into_inner())
    }

    // QUIC is TLS 1.3 only.
    fn set_tls12_session(&self, _: ServerName<'static>, _: Tls12ClientSessionValue) {}

    fn tls12_session(&self, _: &ServerName<'_>) -> Option<Tls12ClientSessionValue> {
        None
    }

    fn remove_tls12_session(&self, _: &ServerName<'static>) {}

    fn insert_tls13_ticket(
        &self,
        _server_name: ServerName<'static>,
        value: Tls13ClientSessionValue,
    ) {
        if let Some(h) = self.vault.put(self.uid, value) {
            (self.on_ticket)(h.to_vec());
        }
    }

    fn take_tls13_ticket(
        &self,
        _server_name: &ServerName<'static>,
    ) -> Option<Tls13ClientSessionValue> {
        self.resume.lock().unwrap_or_else(|e| e.into_inner()).take()
    }
}
/// Server sockets' QUIC_SOCKOPT_SESSION_TICKET value when the application set none: a
/// 64-byte key per peer address (reference §1.5 #12; a GnuTLS server feeds it to
/// gnutls_session_ticket_enable_server), HKDF-derived with the label "session_ticket" from a
/// secret drawn when the service starts, so a client keeps resuming with the same server
/// process while nobody can predict the key
pub(crate) struct ServerTicketKeys {
    prk: Option<ring::hkdf::Prk>,
}

/// Output length for ring's HKDF
struct KeyLen;

impl ring::hkdf::KeyType for KeyLen {
    fn len(&self) -> usize {
        HANDLE_LEN
    }
}

impl ServerTicketKeys {
    pub(crate) fn new() -> Self {
        let mut secret = [0u8; 32];
        // Without randomness there is no safe key; getsockopt then fails (see `key_for`).
        let prk = SystemRandom::new().fill(&mut secret).ok().map(|()| {
            ring::hkdf::Salt::new(ring::hkdf::HKDF_SHA256, b"quictun sockd").extract(&secret)
        });
        Self { prk }
    }

    /// The key for a peer at `ip` (IPv4-mapped IPv6 counts as IPv4, as the kernel stores it)
    pub(crate) fn key_for(&self, ip: std::net::IpAddr) -> Option<[u8; HANDLE_LEN]> {
        let octets = match ip.to_canonical() {
            std::net::IpAddr::V4(a) => a.octets().to_vec(),
            std::net::IpAddr::V6(a) => a.octets().to_vec(),
        };
        let info: [&[u8]; 2] = [b"session_ticket", &octets];
        let mut key = [0u8; HANDLE_LEN];
        self.prk
            .as_ref()?
            .expand(&info, KeyLen)
            .ok()?
            .fill(&mut key)
            .ok()?;
        Some(key)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{IpAddr, Ipv4Addr};

    #[test]
    fn server_ticket_keys_follow_the_peer_address() {
        let keys = ServerTicketKeys::new();
        let a = IpAddr::V4(Ipv4Addr::new(198, 18, 0, 1));
        let b = IpAddr::V4(Ipv4Addr::new(198, 18, 0, 2));
        let ka = keys.key_for(a).expect("key");
        assert_eq!(keys.key_for(a), Some(ka), "same peer, same key");
        assert_ne!(keys.key_for(b), Some(ka), "another peer, another key");
        let mapped = IpAddr::V6(Ipv4Addr::new(198, 18, 0, 1).to_ipv6_mapped());
        assert_eq!(keys.key_for(mapped), Some(ka), "v4-mapped is the same peer");
        assert_ne!(
            ServerTicketKeys::new().key_for(a),
            Some(ka),
            "another service run, another secret"
        );
    }
}
