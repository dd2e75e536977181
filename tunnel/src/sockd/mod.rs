//! `quictun sockd`: the local service behind `libquic_sock.so` (the kernel QUIC socket API)
//!
//! Listens on an abstract `AF_UNIX` `SOCK_SEQPACKET` name (`@quictun-sockd`, or `QUICTUN_SOCKD`).
//! Linux scopes abstract names to the network namespace, so every namespace (container, test
//! host) has its own service and a program always reaches the one of its namespace.
//!
//! Each Unix connection is one QUIC socket (see `quic-sock/README.md`) and is served by its own
//! task ([`session`]); nothing is shared between sockets except the QUIC endpoint of a listener
//! and its accepted children, so a client that misbehaves or dies only ends its own sockets.
//! The request/response protocol, option rules and receive-queue order come from
//! `quic_stack::sockapi`.

mod session;
mod tickets;
mod unix;
mod watch;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use quic_stack::sockapi::msg;

pub use unix::{SeqListener, SeqPacket};

/// Resource limits of the service
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// QUIC sockets one uid may hold open at once (listeners and accepted sockets included)
    pub sockets_per_uid: usize,
    /// Bytes queued for the application per socket before the service stops reading from QUIC
    /// streams (flow control then slows the peer) and drops incoming datagrams
    pub rcvbuf: usize,
    /// Connections waiting in a listener's accept queue (upper bound of listen()'s backlog)
    pub max_backlog: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            sockets_per_uid: 1024,
            rcvbuf: 4 << 20,
            max_backlog: 128,
        }
    }
}

/// Errors that stop the service
#[derive(Debug, thiserror::Error)]
pub enum SockdError {
    /// The listening socket could not be created (name taken: another service runs here)
    #[error("listen on {name}: {source}")]
    Listen {
        /// The service name
        name: String,
        /// OS error
        source: std::io::Error,
    },
}

/// The running service's shared state
pub struct Service {
    limits: Limits,
    per_uid: Mutex<HashMap<u32, usize>>,
    /// Session tickets of client sockets, by the handle the application holds
    tickets: Arc<tickets::Vault>,
    /// Server sockets' default QUIC_SOCKOPT_SESSION_TICKET keys
    ticket_keys: tickets::ServerTicketKeys,
}

/// A socket's claim on its uid's socket budget; released on drop
pub(crate) struct Slot {
    svc: Arc<Service>,
    uid: u32,
}

impl Service {
    fn new(limits: Limits) -> Arc<Self> {
        Arc::new(Self {
            limits,
            per_uid: Mutex::new(HashMap::new()),
            tickets: Arc::new(tickets::Vault::default()),
            ticket_keys: tickets::ServerTicketKeys::new(),
        })
    }

    /// Take one socket slot for `uid`, or None at the limit
    pub(crate) fn claim(self: &Arc<Self>, uid: u32) -> Option<Slot> {
        let mut m = self.per_uid.lock().unwrap_or_else(|e| e.into_inner());
        let n = m.entry(uid).or_insert(0);
        if *n >= self.limits.sockets_per_uid {
            return None;
        }
        *n += 1;
        Some(Slot {
            svc: self.clone(),
            uid,
        })
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut m = self.svc.per_uid.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(n) = m.get_mut(&self.uid) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                m.remove(&self.uid);
            }
        }
    }
}

/// The service name from `QUICTUN_SOCKD` (`@name`/`name` abstract, `/path` filesystem)
pub fn service_name() -> String {
    match std::env::var(msg::SERVICE_ENV) {
        Ok(v) if !v.is_empty() => v.strip_prefix('@').unwrap_or(&v).to_string(),
        _ => msg::DEFAULT_SERVICE_NAME.to_string(),
    }
}

/// Bind the service's listening socket (separate from [`serve`] so callers can report a taken
/// name before going into the background)
pub fn bind(name: &str) -> Result<SeqListener, SockdError> {
    SeqListener::bind(name).map_err(|source| SockdError::Listen {
        name: name.to_string(),
        source,
    })
}

/// Serve clients until the future is dropped
pub async fn serve(listener: SeqListener, limits: Limits) {
    let svc = Service::new(limits);
    loop {
        match listener.accept().await {
            Ok(conn) => {
                let svc = svc.clone();
                tokio::spawn(async move { session::serve_new(svc, conn).await });
            }
            Err(e) => {
                // EMFILE and friends: back off instead of spinning; existing clients go on.
                tracing::warn!("sockd accept: {e}");
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn socket_slots_are_per_uid_and_returned() {
        let svc = Service::new(Limits {
            sockets_per_uid: 2,
            ..Limits::default()
        });
        let a = svc.claim(1).expect("first");
        let _b = svc.claim(1).expect("second");
        assert!(svc.claim(1).is_none(), "third for the same uid");
        let _other = svc.claim(2).expect("another uid is not affected");
        drop(a);
        assert!(svc.claim(1).is_some(), "a closed socket frees its slot");
    }
}
