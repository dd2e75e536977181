//! The tokio endpoint driver and the async handles over it
//!
//! One task per endpoint owns the UDP socket and loops:
//! 1. receive a GRO batch and feed each datagram to the sans-IO [`proto::Endpoint`];
//! 2. wake the handles whose connections produced events;
//! 3. drain `poll_transmit` into GSO batches and send them;
//! 4. sleep until `poll_timeout`, a datagram, or a command from a handle.
//!
//! Handles ([`Endpoint`], [`Connection`], [`SendStream`], [`RecvStream`]) lock the shared state
//! for the duration of one call into the core and never across an `.await`. A handle that would
//! block waits on its connection's `Notify`, which the driver fires on every event of that
//! connection; the waiter registers before it checks, so no wake-up is lost.

use std::collections::{HashMap, VecDeque};
use std::io;
use std::net::SocketAddr;
use std::pin::pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::Poll;
use std::time::Instant;

use bytes::Bytes;
use tokio::sync::Notify;

use super::socket::{RecvInfo, UdpSocket};
use crate::config::{ClientConfig, EndpointConfig, ServerConfig};
use crate::connection::{
    self as proto_conn, ConnectionError, ConnectionStats, Event, PreferredAddressError,
};
use crate::datagram::SendDatagramError;
use crate::endpoint::{self as proto, ConnectError, ConnectionHandle};
use crate::stream::{ReadError, WriteError};
use crate::{Dir, RecvMeta, StreamId};

/// Most datagrams handed to the kernel in one GSO send
const MAX_GSO_SEGMENTS: usize = 64;
/// GRO batches read per wake-up
const RECV_BATCHES: usize = 8;

struct ConnWaker {
    notify: Arc<Notify>,
}

/// A socket bound for per-connection preferred addresses (see
/// [`Connection::advertise_preferred_address`]), shared by the connections advertising it
struct PreferredSocket {
    socket: Arc<UdpSocket>,
    /// Connections advertising this address; at zero the socket closes
    users: usize,
    /// Feeds what arrives on the socket to the core
    task: tokio::task::JoinHandle<()>,
}

struct State {
    proto: proto::Endpoint,
    conns: HashMap<ConnectionHandle, ConnWaker>,
    incoming: VecDeque<ConnectionHandle>,
    /// Live `Endpoint` handles; at zero (and with no connections left) the driver stops
    endpoint_handles: usize,
    /// Live `Connection` handles per connection identity; at zero the connection is closed
    conn_handles: HashMap<u64, usize>,
    /// The identity of the connection a handle currently names: the core reuses handles
    /// after a connection is drained, so a stale `Connection` must not reach its successor
    ids: HashMap<ConnectionHandle, u64>,
    next_id: u64,
    /// Why each drained connection ended, by identity, while `Connection` handles to it live
    /// (the core forgets it together with the connection)
    ended: HashMap<u64, ConnectionError>,
    /// Client connections probing the path of the newest socket after [`Endpoint::rebind`]
    migrating: Vec<ConnectionHandle>,
    /// How probing the newest socket's path ended: `Some(true)` once a connection validated
    /// it, `Some(false)` once one failed; the driver then closes or returns to the old socket
    path_verdict: Option<bool>,
    /// Sockets on per-connection preferred addresses, by address
    preferred: HashMap<SocketAddr, PreferredSocket>,
    /// The per-connection preferred addresses each connection advertises
    preferred_users: HashMap<ConnectionHandle, Vec<SocketAddr>>,
}

impl State {
    /// Register a connection that `Connection` handles will name
    fn register(&mut self, handle: ConnectionHandle) -> u64 {
        *self.ids.entry(handle).or_insert_with(|| {
            self.next_id += 1;
            self.next_id
        })
    }

    /// The core connection `id` still names, if it is alive
    fn conn_mut(
        &mut self,
        handle: ConnectionHandle,
        id: u64,
    ) -> Option<&mut proto_conn::Connection> {
        if self.ids.get(&handle) != Some(&id) {
            return None;
        }
        self.proto.connection_mut(handle)
    }

    /// Why the connection `id` ended, once the core forgot it
    fn end_reason(&self, id: u64) -> ConnectionError {
        self.ended
            .get(&id)
            .cloned()
            .unwrap_or(ConnectionError::LocallyClosed)
    }

    /// `handle` no longer advertises `addr`; the last user closes the socket
    fn release_preferred(&mut self, handle: ConnectionHandle, addr: SocketAddr) {
        if let Some(addrs) = self.preferred_users.get_mut(&handle) {
            addrs.retain(|a| *a != addr);
            if addrs.is_empty() {
                self.preferred_users.remove(&handle);
            }
        }
        let Some(p) = self.preferred.get_mut(&addr) else {
            return;
        };
        p.users = p.users.saturating_sub(1);
        if p.users == 0 {
            if let Some(p) = self.preferred.remove(&addr) {
                p.task.abort();
                tracing::debug!(%addr, "preferred-address socket closed");
            }
        }
    }

    /// A drained connection gives up its preferred-address sockets
    fn release_all_preferred(&mut self, handle: ConnectionHandle) {
        let addrs = self
            .preferred_users
            .get(&handle)
            .cloned()
            .unwrap_or_default();
        for addr in addrs {
            self.release_preferred(handle, addr);
        }
    }

    /// The preferred-address socket of connection `handle` on `ip`, if it advertises one
    fn preferred_socket_for(
        &self,
        handle: ConnectionHandle,
        ip: std::net::IpAddr,
    ) -> Option<Arc<UdpSocket>> {
        let addr = self
            .preferred_users
            .get(&handle)?
            .iter()
            .find(|a| a.ip() == ip)?;
        self.preferred.get(addr).map(|p| p.socket.clone())
    }
}

struct Shared {
    state: Mutex<State>,
    /// Wakes the driver after a handle changed the core's state
    wake_driver: Notify,
    /// Wakes `accept` callers
    incoming: Notify,
    /// The current socket's address (changes on [`Endpoint::rebind`])
    local_addr: Mutex<SocketAddr>,
    /// A socket from [`Endpoint::rebind`] waiting for the driver to switch to it
    new_socket: Mutex<Option<UdpSocket>>,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock leaves the core in an unknown state; continuing with
        // the inner value is still better than poisoning every other connection.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// A QUIC endpoint bound to one UDP socket, driven by a background tokio task
pub struct Endpoint {
    shared: Arc<Shared>,
}

impl Endpoint {
    /// An endpoint on `bind` that can connect out and, with `server`, accept connections
    ///
    /// Must be called inside a tokio runtime.
    ///
    /// A server that advertises a preferred address (RFC 9000 §9.6) also binds a second socket
    /// on it, of the family of `bind` when it has one of each: clients move there after the
    /// handshake, and packets for them leave from it.
    pub fn new(
        bind: SocketAddr,
        config: EndpointConfig,
        server: Option<ServerConfig>,
    ) -> io::Result<Self> {
        let socket = UdpSocket::bind(bind)?;
        let preferred = server.as_ref().and_then(|s| {
            let v4 = s.preferred_address_v4.map(SocketAddr::V4);
            let v6 = s.preferred_address_v6.map(SocketAddr::V6);
            if bind.is_ipv4() {
                v4.or(v6)
            } else {
                v6.or(v4)
            }
        });
        let second = preferred.map(UdpSocket::bind).transpose()?;
        Self::start(socket, second, config, server)
    }

    /// An endpoint over an already bound socket
    pub fn with_socket(
        socket: UdpSocket,
        config: EndpointConfig,
        server: Option<ServerConfig>,
    ) -> io::Result<Self> {
        Self::start(socket, None, config, server)
    }

    fn start(
        socket: UdpSocket,
        second: Option<UdpSocket>,
        config: EndpointConfig,
        server: Option<ServerConfig>,
    ) -> io::Result<Self> {
        let local_addr = socket.local_addr();
        let mut seed = [0u8; 32];
        rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut seed);
        let server = server.map(with_env_key_log_server);
        let proto = proto::Endpoint::new(Arc::new(config), server.map(Arc::new), seed);
        let shared = Arc::new(Shared {
            state: Mutex::new(State {
                proto,
                conns: HashMap::new(),
                incoming: VecDeque::new(),
                endpoint_handles: 1,
                conn_handles: HashMap::new(),
                ids: HashMap::new(),
                next_id: 0,
                ended: HashMap::new(),
                migrating: Vec::new(),
                path_verdict: None,
                preferred: HashMap::new(),
                preferred_users: HashMap::new(),
            }),
            wake_driver: Notify::new(),
            incoming: Notify::new(),
            local_addr: Mutex::new(local_addr),
            new_socket: Mutex::new(None),
        });
        tokio::spawn(drive(shared.clone(), socket, second));
        Ok(Self { shared })
    }

    /// The socket's local address
    pub fn local_addr(&self) -> SocketAddr {
        *self
            .shared
            .local_addr
            .lock()
            .unwrap_or_else(|e| e.into_inner())
    }

    /// Move to a new UDP socket bound to `new_bind` (a roaming client's new address or port)
    ///
    /// Every client connection migrates to the new path at once (RFC 9000 §9.2): a fresh
    /// connection ID, a PATH_CHALLENGE sent right away, and congestion state reset unless only
    /// the port changed. Make-before-break: the old socket keeps receiving (packets already on
    /// their way to the old address still count) until the new path validates; if validation
    /// fails and the old address still exists, the connections go back to the old socket.
    pub fn rebind(&self, new_bind: SocketAddr) -> io::Result<()> {
        let socket = UdpSocket::bind(new_bind)?;
        let addr = socket.local_addr();
        *self
            .shared
            .new_socket
            .lock()
            .unwrap_or_else(|e| e.into_inner()) = Some(socket);
        *self
            .shared
            .local_addr
            .lock()
            .unwrap_or_else(|e| e.into_inner()) = addr;
        self.shared.wake_driver.notify_one();
        Ok(())
    }

    /// Start a connection to `remote`; await [`Connection::handshake`] for it to complete
    pub fn connect(
        &self,
        config: ClientConfig,
        remote: SocketAddr,
        server_name: &str,
    ) -> Result<Connection, ConnectError> {
        let mut state = self.shared.lock();
        let config = with_env_key_log_client(config);
        let handle = state
            .proto
            .connect(Instant::now(), config, remote, server_name)?;
        install_qlog(&mut state.proto, handle);
        let notify = Arc::new(Notify::new());
        state.conns.insert(
            handle,
            ConnWaker {
                notify: notify.clone(),
            },
        );
        let id = state.register(handle);
        *state.conn_handles.entry(id).or_insert(0) += 1;
        drop(state);
        self.shared.wake_driver.notify_one();
        Ok(Connection {
            shared: self.shared.clone(),
            handle,
            id,
            notify,
        })
    }

    /// The next incoming connection (still handshaking); `None` once the endpoint shuts down
    pub async fn accept(&self) -> Option<Connection> {
        loop {
            let mut notified = pin!(self.shared.incoming.notified());
            notified.as_mut().enable();
            {
                let mut state = self.shared.lock();
                while let Some(handle) = state.incoming.pop_front() {
                    let Some(waker) = state.conns.get(&handle) else {
                        continue;
                    };
                    let notify = waker.notify.clone();
                    let id = state.register(handle);
                    *state.conn_handles.entry(id).or_insert(0) += 1;
                    return Some(Connection {
                        shared: self.shared.clone(),
                        handle,
                        id,
                        notify,
                    });
                }
            }
            notified.await;
        }
    }

    /// Replace the server configuration (e.g. after a certificate reload)
    pub fn set_server_config(&self, server: Option<ServerConfig>) {
        self.shared
            .lock()
            .proto
            .set_server_config(server.map(with_env_key_log_server).map(Arc::new));
    }
}

impl Clone for Endpoint {
    fn clone(&self) -> Self {
        self.shared.lock().endpoint_handles += 1;
        Self {
            shared: self.shared.clone(),
        }
    }
}

impl Drop for Endpoint {
    fn drop(&mut self) {
        self.shared.lock().endpoint_handles -= 1;
        self.shared.wake_driver.notify_one();
    }
}

/// The background task: the only place that touches the socket
///
/// `second` is a server's socket on its preferred address: it only receives, and sends what
/// the core marks with a source address (the paths of clients that moved there).
async fn drive(shared: Arc<Shared>, mut socket: UdpSocket, second: Option<UdpSocket>) {
    // The last socket whose path was in use before a rebind, until the new path validates
    let mut old_socket: Option<UdpSocket> = None;
    let mut old_rx = vec![0u8; 64 * 1024];
    // One GRO batch is at most 64 KiB; a few of them per wake-up amortise the lock.
    let mut rx = recv_buffers();
    let mut rx2: Vec<Vec<u8>> = match second {
        Some(_) => recv_buffers(),
        None => Vec::new(),
    };
    let mut infos = recv_infos(socket.local_addr());
    let mut infos2 = infos;
    let mut tx = Vec::with_capacity(MAX_GSO_SEGMENTS * 1500);
    let mut max_segments = socket.max_gso_segments().clamp(1, MAX_GSO_SEGMENTS);
    loop {
        let timeout = {
            let mut state = shared.lock();
            if state.endpoint_handles == 0 && state.conns.is_empty() {
                return;
            }
            state.proto.poll_timeout()
        };
        let sleep = async {
            match timeout {
                Some(t) => tokio::time::sleep_until(t.into()).await,
                None => std::future::pending().await,
            }
        };
        let mut bufs: Vec<&mut [u8]> = rx.iter_mut().map(|b| b.as_mut_slice()).collect();
        let mut bufs2: Vec<&mut [u8]> = rx2.iter_mut().map(|b| b.as_mut_slice()).collect();
        let second_recv = async {
            match &second {
                Some(s) => s.recv_many(&mut bufs2, &mut infos2).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            received = socket.recv_many(&mut bufs, &mut infos) => {
                feed(&shared, received, &mut bufs, &infos);
            }
            received = second_recv => {
                feed(&shared, received, &mut bufs2, &infos2);
            }
            received = recv_old(old_socket.as_ref(), &mut old_rx) => {
                match received {
                    Ok(info) => {
                        let now = Instant::now();
                        let mut state = shared.lock();
                        let stride = info.stride.max(1);
                        for datagram in old_rx[..info.len].chunks_mut(stride) {
                            state.proto.handle_datagram(now, info.meta, datagram);
                        }
                    }
                    Err(e) => tracing::debug!("udp receive error on the previous socket: {e}"),
                }
            }
            _ = shared.wake_driver.notified() => {}
            _ = sleep => {
                shared.lock().proto.handle_timeout(Instant::now());
            }
        }
        let new_socket = shared
            .new_socket
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        if let Some(new_socket) = new_socket {
            let previous = std::mem::replace(&mut socket, new_socket);
            // Keep the last socket that was in use before probing began: a socket that was
            // itself still being probed has nothing validated to fall back to
            if old_socket.is_none() {
                old_socket = Some(previous);
            }
            max_segments = socket.max_gso_segments().clamp(1, MAX_GSO_SEGMENTS);
            migrate_all(&shared, socket.local_addr());
        }
        dispatch_events(&shared);
        let verdict = shared.lock().path_verdict.take();
        match (verdict, old_socket.take()) {
            (Some(true), Some(old)) => {
                tracing::debug!(
                    "path from {} validated; closing the socket on {}",
                    socket.local_addr(),
                    old.local_addr()
                );
            }
            (Some(false), Some(old)) => {
                let failed = socket.local_addr();
                if still_local(old.local_addr()) {
                    tracing::warn!(
                        "path from {failed} abandoned: it failed validation; returning to {}",
                        old.local_addr()
                    );
                    socket = old;
                    max_segments = socket.max_gso_segments().clamp(1, MAX_GSO_SEGMENTS);
                    *shared.local_addr.lock().unwrap_or_else(|e| e.into_inner()) =
                        socket.local_addr();
                    migrate_all(&shared, socket.local_addr());
                    dispatch_events(&shared);
                } else {
                    tracing::warn!(
                        "path from {failed} failed validation, but {} is gone: staying on the new path",
                        old.local_addr()
                    );
                }
            }
            (_, old) => old_socket = old,
        }
        transmit(&shared, &socket, second.as_ref(), &mut tx, max_segments).await;
    }
}

/// Room for one receive call: `RECV_BATCHES` GRO batches of at most 64 KiB each
fn recv_buffers() -> Vec<Vec<u8>> {
    (0..RECV_BATCHES).map(|_| vec![0u8; 64 * 1024]).collect()
}

/// Blank metadata slots for one receive call on a socket bound to `local`
fn recv_infos(local: SocketAddr) -> [RecvInfo; RECV_BATCHES] {
    [RecvInfo {
        meta: RecvMeta {
            remote: local,
            local_ip: None,
            ecn: None,
        },
        len: 0,
        stride: 0,
    }; RECV_BATCHES]
}

/// Receive on a per-connection preferred-address socket until the last connection using it
/// is gone (the task is aborted then); the driver sends what the core answers
async fn recv_preferred(shared: Arc<Shared>, socket: Arc<UdpSocket>) {
    let mut rx = recv_buffers();
    let mut infos = recv_infos(socket.local_addr());
    loop {
        let mut bufs: Vec<&mut [u8]> = rx.iter_mut().map(|b| b.as_mut_slice()).collect();
        let received = socket.recv_many(&mut bufs, &mut infos).await;
        feed(&shared, received, &mut bufs, &infos);
        shared.wake_driver.notify_one();
    }
}

/// Hand a received batch to the core
fn feed(shared: &Shared, received: io::Result<usize>, bufs: &mut [&mut [u8]], infos: &[RecvInfo]) {
    match received {
        Ok(count) => {
            let now = Instant::now();
            let mut state = shared.lock();
            for (buf, info) in bufs.iter_mut().zip(infos).take(count) {
                let stride = info.stride.max(1);
                for datagram in buf[..info.len].chunks_mut(stride) {
                    state.proto.handle_datagram(now, info.meta, datagram);
                }
            }
        }
        Err(e) => {
            // ICMP errors surface here as ECONNREFUSED and the like; they never concern the
            // other connections on this socket.
            tracing::debug!("udp receive error: {e}");
        }
    }
}

/// Give a new connection a qlog file when [`EndpointConfig::qlog_dir`] is set
fn install_qlog(proto: &mut proto::Endpoint, handle: ConnectionHandle) {
    let Some(dir) = proto.config().qlog_dir.clone() else {
        return;
    };
    let Some(conn) = proto.connection_mut(handle) else {
        return;
    };
    let side = conn.side();
    let odcid = conn.original_dcid();
    let role = if side.is_client() { "client" } else { "server" };
    let path = dir.join(format!("{odcid}-{role}.sqlog"));
    match std::fs::File::create(&path) {
        Ok(file) => {
            let writer =
                crate::qlog::QlogWriter::new(io::BufWriter::new(file), side, odcid, "quic-stack");
            conn.set_qlog(Instant::now(), Box::new(writer));
        }
        Err(e) => tracing::warn!("cannot create qlog file {}: {e}", path.display()),
    }
}

/// Log TLS secrets to the file named by `SSLKEYLOGFILE`, when set (for Wireshark)
fn key_log_wanted() -> bool {
    std::env::var_os("SSLKEYLOGFILE").is_some()
}

fn with_env_key_log_client(mut config: ClientConfig) -> ClientConfig {
    if key_log_wanted() {
        let mut crypto = (*config.crypto).clone();
        crypto.key_log = crate::tls::key_log(true);
        config.crypto = Arc::new(crypto);
    }
    config
}

fn with_env_key_log_server(mut config: ServerConfig) -> ServerConfig {
    if key_log_wanted() {
        let mut crypto = (*config.crypto).clone();
        crypto.key_log = crate::tls::key_log(true);
        config.crypto = Arc::new(crypto);
    }
    config
}

/// Tell every client connection that its local address changed
fn migrate_all(shared: &Shared, local: SocketAddr) {
    let now = Instant::now();
    let mut state = shared.lock();
    let handles: Vec<_> = state.proto.connection_handles().collect();
    state.migrating.clear();
    state.path_verdict = None;
    for h in handles {
        if let Some(conn) = state.proto.connection_mut(h) {
            if conn.side().is_client() {
                // A wildcard socket sends from whatever address the route picks: tell the
                // connection that address, so a changed IP resets congestion state and only a
                // changed port keeps it (RFC 9000 §9.4)
                let local = if local.ip().is_unspecified() {
                    route_source(conn.remote_address())
                        .map_or(local, |ip| SocketAddr::new(ip, local.port()))
                } else {
                    local
                };
                match conn.migrate(now, Some(local)) {
                    Ok(()) => state.migrating.push(h),
                    Err(e) => tracing::debug!("connection {h:?} cannot migrate: {e}"),
                }
            }
        }
    }
    if state.migrating.is_empty() {
        // Nothing probes the new path, so nothing would ever release the old socket
        state.path_verdict = Some(true);
    }
}

/// Receive one GRO batch on the socket left over from a rebind; never ready without one
async fn recv_old(socket: Option<&UdpSocket>, buf: &mut [u8]) -> io::Result<RecvInfo> {
    match socket {
        Some(s) => s.recv(buf).await,
        None => std::future::pending().await,
    }
}

/// The source address the kernel picks toward `remote` (connecting a UDP socket sends nothing)
fn route_source(remote: SocketAddr) -> Option<std::net::IpAddr> {
    let any: SocketAddr = if remote.is_ipv6() {
        (std::net::Ipv6Addr::UNSPECIFIED, 0).into()
    } else {
        (std::net::Ipv4Addr::UNSPECIFIED, 0).into()
    };
    let probe = std::net::UdpSocket::bind(any).ok()?;
    probe.connect(remote).ok()?;
    probe.local_addr().ok().map(|a| a.ip())
}

/// The address of a socket is still assigned to this host: a wildcard socket always is, a
/// specific one only while binding another socket to the same IP succeeds
fn still_local(addr: SocketAddr) -> bool {
    addr.ip().is_unspecified() || std::net::UdpSocket::bind(SocketAddr::new(addr.ip(), 0)).is_ok()
}

/// A migrating client connection finished probing the newest socket's path
fn path_outcome(state: &mut State, handle: ConnectionHandle, event: &Event) {
    let Some(pos) = state.migrating.iter().position(|h| *h == handle) else {
        return;
    };
    state.migrating.swap_remove(pos);
    let validated = matches!(event, Event::PathValidated { .. });
    // One validated connection proves the socket works; fall back only if none did
    state.path_verdict = Some(state.path_verdict.unwrap_or(false) || validated);
}

/// Wake the handles of every connection that produced events, and queue new connections
fn dispatch_events(shared: &Shared) {
    let mut state = shared.lock();
    let mut new_incoming = false;
    while let Some((handle, event)) = state.proto.poll_event() {
        state
            .conns
            .entry(handle)
            .or_insert_with(|| ConnWaker {
                notify: Arc::new(Notify::new()),
            })
            .notify
            .notify_waiters();
        match event {
            Event::ConnectionLost { reason } => {
                // Kept for the handles: the core forgets the reason when the connection drains
                if let Some(&id) = state.ids.get(&handle) {
                    if state.conn_handles.contains_key(&id) {
                        state.ended.insert(id, reason);
                    }
                }
            }
            Event::Drained => {
                state.conns.remove(&handle);
                state.ids.remove(&handle);
                state.migrating.retain(|h| *h != handle);
                state.release_all_preferred(handle);
            }
            Event::PathValidated { .. } | Event::PathFailed { .. } => {
                path_outcome(&mut state, handle, &event);
            }
            _ => {}
        }
    }
    while let Some(handle) = state.proto.accept() {
        install_qlog(&mut state.proto, handle);
        state.conns.entry(handle).or_insert_with(|| ConnWaker {
            notify: Arc::new(Notify::new()),
        });
        state.incoming.push_back(handle);
        new_incoming = true;
    }
    drop(state);
    if new_incoming {
        shared.incoming.notify_waiters();
    }
}

/// Send everything the core has ready, releasing the lock while the kernel takes each batch
///
/// The core names a source address only for paths through a server's preferred address, so
/// those go out of that connection's preferred-address socket, or else `second`.
async fn transmit(
    shared: &Shared,
    socket: &UdpSocket,
    second: Option<&UdpSocket>,
    tx: &mut Vec<u8>,
    max_segments: usize,
) {
    loop {
        let (transmit, own) = {
            let mut state = shared.lock();
            let polled = state
                .proto
                .poll_transmit_from(Instant::now(), max_segments, tx);
            let own = polled.as_ref().and_then(|(h, t)| {
                let ip = t.src_ip?;
                state.preferred_socket_for((*h)?, ip)
            });
            (polled.map(|(_, t)| t), own)
        };
        let Some(transmit) = transmit else {
            return;
        };
        let out = match (own.as_deref(), second, transmit.src_ip) {
            (Some(s), _, _) => s,
            (None, Some(s), Some(_)) => s,
            _ => socket,
        };
        if let Err(e) = out.send(&transmit, &tx[..transmit.size]).await {
            // A lost datagram is recovered by QUIC; a broken route shows up as a timeout.
            tracing::debug!("udp send to {} failed: {e}", transmit.destination);
        }
    }
}

/// An established or handshaking connection
pub struct Connection {
    shared: Arc<Shared>,
    handle: ConnectionHandle,
    /// Which connection `handle` meant when this handle was made (handles are reused)
    id: u64,
    notify: Arc<Notify>,
}

impl Clone for Connection {
    fn clone(&self) -> Self {
        *self.shared.lock().conn_handles.entry(self.id).or_insert(0) += 1;
        Self {
            shared: self.shared.clone(),
            handle: self.handle,
            id: self.id,
            notify: self.notify.clone(),
        }
    }
}

impl Drop for Connection {
    fn drop(&mut self) {
        let mut state = self.shared.lock();
        let remaining = match state.conn_handles.get_mut(&self.id) {
            Some(count) => {
                *count = count.saturating_sub(1);
                *count
            }
            None => return,
        };
        if remaining == 0 {
            // Nobody can use the connection any more: close it rather than leak it until the
            // idle timeout.
            state.conn_handles.remove(&self.id);
            state.ended.remove(&self.id);
            if let Some(conn) = state.conn_mut(self.handle, self.id) {
                if !conn.is_closed() {
                    conn.close(Instant::now(), 0, b"");
                }
            }
        }
        drop(state);
        self.shared.wake_driver.notify_one();
    }
}

/// Errors of the async handles
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum StreamError {
    /// The connection ended
    #[error("connection lost: {0}")]
    ConnectionLost(ConnectionError),
    /// The peer asked us to stop sending (STOP_SENDING)
    #[error("stream stopped by peer with code {0}")]
    Stopped(u64),
    /// The peer abandoned the stream (RESET_STREAM)
    #[error("stream reset by peer with code {code}")]
    Reset {
        /// The application error code of RESET_STREAM
        code: u64,
        /// The stream's final size (RFC 9000 §4.5)
        final_size: u64,
    },
    /// The stream was already finished, reset or never existed
    #[error("stream closed")]
    ClosedStream,
}

impl Connection {
    /// Run `op` against the core connection until it is ready, sleeping between events
    async fn wait<T>(
        &self,
        op: impl FnMut(&mut proto_conn::Connection) -> Poll<Result<T, StreamError>>,
    ) -> Result<T, StreamError> {
        self.wait_then(op, true).await
    }

    /// [`Self::wait`], waking the driver afterwards only with `wake_driver` (an operation that
    /// cannot have given the core anything to send need not cost the driver a loop)
    async fn wait_then<T>(
        &self,
        mut op: impl FnMut(&mut proto_conn::Connection) -> Poll<Result<T, StreamError>>,
        wake_driver: bool,
    ) -> Result<T, StreamError> {
        loop {
            let mut notified = pin!(self.notify.notified());
            notified.as_mut().enable();
            {
                let mut state = self.shared.lock();
                let Some(conn) = state.conn_mut(self.handle, self.id) else {
                    return Err(StreamError::ConnectionLost(state.end_reason(self.id)));
                };
                let result = op(conn);
                if let Poll::Ready(result) = result {
                    drop(state);
                    if wake_driver {
                        self.shared.wake_driver.notify_one();
                    }
                    return result;
                }
                if let Some(reason) = conn.close_reason() {
                    return Err(StreamError::ConnectionLost(reason));
                }
            }
            notified.await;
        }
    }

    /// Run a non-blocking command against the core connection and wake the driver
    fn with<T>(&self, op: impl FnOnce(&mut proto_conn::Connection) -> T) -> Option<T> {
        let mut state = self.shared.lock();
        let result = state.conn_mut(self.handle, self.id).map(op);
        drop(state);
        self.shared.wake_driver.notify_one();
        result
    }

    /// Why the connection ended, for a handle whose connection the core has forgotten
    fn gone(&self) -> ConnectionError {
        self.shared.lock().end_reason(self.id)
    }

    /// Wait for the handshake to complete and be confirmed
    ///
    /// A client completes its side before the server has checked the client certificate;
    /// waiting for confirmation (HANDSHAKE_DONE) means a refused client never looks connected.
    pub async fn handshake(&self) -> Result<(), ConnectionError> {
        self.wait(|conn| {
            if let Some(reason) = conn.close_reason() {
                Poll::Ready(Err(StreamError::ConnectionLost(reason)))
            } else if conn.handshake_completed() && conn.is_handshake_confirmed() {
                Poll::Ready(Ok(()))
            } else {
                Poll::Pending
            }
        })
        .await
        .map_err(into_connection_error)
    }

    /// Open a bidirectional stream, waiting for stream credit
    pub async fn open_bi(&self) -> Result<(SendStream, RecvStream), ConnectionError> {
        let id = self.open(Dir::Bi).await?;
        Ok((self.send_stream(id), self.recv_stream(id)))
    }

    /// Open a unidirectional stream, waiting for stream credit
    pub async fn open_uni(&self) -> Result<SendStream, ConnectionError> {
        let id = self.open(Dir::Uni).await?;
        Ok(self.send_stream(id))
    }

    async fn open(&self, dir: Dir) -> Result<StreamId, ConnectionError> {
        self.wait(|conn| match conn.open(dir) {
            Some(id) => Poll::Ready(Ok(id)),
            None => Poll::Pending,
        })
        .await
        .map_err(into_connection_error)
    }

    /// Wait for the peer to open a bidirectional stream
    pub async fn accept_bi(&self) -> Result<(SendStream, RecvStream), ConnectionError> {
        let id = self.accept(Dir::Bi).await?;
        Ok((self.send_stream(id), self.recv_stream(id)))
    }

    /// Wait for the peer to open a unidirectional stream
    pub async fn accept_uni(&self) -> Result<RecvStream, ConnectionError> {
        let id = self.accept(Dir::Uni).await?;
        Ok(self.recv_stream(id))
    }

    async fn accept(&self, dir: Dir) -> Result<StreamId, ConnectionError> {
        self.wait(|conn| match conn.accept(dir) {
            Some(id) => Poll::Ready(Ok(id)),
            None => Poll::Pending,
        })
        .await
        .map_err(into_connection_error)
    }

    fn send_stream(&self, id: StreamId) -> SendStream {
        SendStream {
            conn: self.clone(),
            id,
        }
    }

    fn recv_stream(&self, id: StreamId) -> RecvStream {
        RecvStream {
            conn: self.clone(),
            id,
            finished: false,
        }
    }

    /// Queue an unreliable datagram (RFC 9221); the oldest queued one is dropped when full
    pub fn send_datagram(&self, data: Bytes) -> Result<(), DatagramError> {
        match self.with(|conn| {
            conn.close_reason().map_or_else(
                || conn.send_datagram(data).map_err(DatagramError::Send),
                |r| Err(DatagramError::ConnectionLost(r)),
            )
        }) {
            Some(result) => result,
            None => Err(DatagramError::ConnectionLost(self.gone())),
        }
    }

    /// Queue several datagrams under one lock and wake the driver once, so a burst becomes
    /// GSO batches instead of one wake-up per datagram; `on_error` hears about each datagram the
    /// connection refused (index, reason) while the rest are still queued
    pub fn send_datagrams(
        &self,
        data: impl IntoIterator<Item = Bytes>,
        mut on_error: impl FnMut(usize, SendDatagramError),
    ) -> Result<(), DatagramError> {
        match self.with(|conn| {
            if let Some(r) = conn.close_reason() {
                return Err(DatagramError::ConnectionLost(r));
            }
            for (i, d) in data.into_iter().enumerate() {
                if let Err(e) = conn.send_datagram(d) {
                    on_error(i, e);
                }
            }
            Ok(())
        }) {
            Some(result) => result,
            None => Err(DatagramError::ConnectionLost(self.gone())),
        }
    }

    /// Wait for at least one datagram, then take up to `max` of those already received
    pub async fn read_datagrams(
        &self,
        out: &mut Vec<Bytes>,
        max: usize,
    ) -> Result<(), ConnectionError> {
        let start = out.len();
        let max = max.max(1);
        // Datagrams are outside flow control: taking them frees no credit and queues nothing,
        // so the driver is not woken for it (that wake-up cost a loop per received batch)
        self.wait_then(
            |conn| {
                while out.len() - start < max {
                    match conn.recv_datagram() {
                        Some(data) => out.push(data),
                        None => break,
                    }
                }
                if out.len() > start {
                    Poll::Ready(Ok(()))
                } else {
                    Poll::Pending
                }
            },
            false,
        )
        .await
        .map_err(into_connection_error)
    }

    /// Wait for the next datagram from the peer
    pub async fn read_datagram(&self) -> Result<Bytes, ConnectionError> {
        self.wait(|conn| match conn.recv_datagram() {
            Some(data) => Poll::Ready(Ok(data)),
            None => Poll::Pending,
        })
        .await
        .map_err(into_connection_error)
    }

    /// Largest datagram payload the peer and the path accept right now
    pub fn max_datagram_size(&self) -> Option<usize> {
        // A getter, asked before every batch a tunnel sends: no driver wake-up
        let mut state = self.shared.lock();
        state
            .proto
            .connection_mut(self.handle)
            .and_then(|conn| conn.max_datagram_size())
    }

    /// Close with an application error code and reason
    pub fn close(&self, error_code: u64, reason: &[u8]) {
        self.with(|conn| conn.close(Instant::now(), error_code, reason));
    }

    /// Wait until the connection is closed, by either side or a timeout
    pub async fn closed(&self) -> ConnectionError {
        match self
            .wait(|conn| match conn.close_reason() {
                Some(reason) => Poll::Ready(Ok(reason)),
                None => Poll::Pending,
            })
            .await
        {
            Ok(reason) => reason,
            Err(e) => into_connection_error(e),
        }
    }

    /// Update the 1-RTT keys as soon as the protocol allows (RFC 9001 §6); see
    /// [`proto_conn::Connection::initiate_key_update`]
    pub fn initiate_key_update(&self) {
        self.with(|conn| conn.initiate_key_update());
    }

    /// Counters and path estimates
    pub fn stats(&self) -> Option<ConnectionStats> {
        self.with(|conn| conn.stats())
    }

    /// The peer's current address (`None` once the connection is gone)
    pub fn remote_address(&self) -> Option<SocketAddr> {
        self.with(|conn| conn.remote_address())
    }

    /// The reason the connection closed, if it has (kept after the connection drained)
    pub fn close_reason(&self) -> Option<ConnectionError> {
        match self.with(|conn| conn.close_reason()) {
            Some(reason) => reason,
            None => Some(self.gone()),
        }
    }

    /// The peer's certificate chain (DER), after the handshake
    pub fn peer_identity(&self) -> Option<Vec<Vec<u8>>> {
        self.with(|conn| conn.peer_identity()).flatten()
    }

    /// A resumed client with 0-RTT enabled: streams opened and datagrams sent now travel in
    /// 0-RTT packets, before [`Connection::handshake`] completes (see
    /// [`crate::config::TransportConfig::zero_rtt`])
    pub fn is_zero_rtt_available(&self) -> bool {
        self.with(|conn| conn.is_zero_rtt_available())
            .unwrap_or(false)
    }

    /// Whether the server accepted 0-RTT, once the handshake told (`None`: not attempted)
    pub fn zero_rtt_accepted(&self) -> Option<bool> {
        self.with(|conn| conn.zero_rtt_accepted()).flatten()
    }

    /// Client: whether the connection moved to the server's preferred address (`None`: none
    /// offered for our address family, or validation still running)
    pub fn preferred_address_outcome(&self) -> Option<bool> {
        self.with(|conn| conn.preferred_address_outcome()).flatten()
    }
}

/// Why a datagram could not be queued
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum DatagramError {
    /// The connection ended
    #[error("connection lost: {0}")]
    ConnectionLost(ConnectionError),
    /// The connection refused it (unsupported by the peer, too large, queue full)
    #[error(transparent)]
    Send(SendDatagramError),
}

fn into_connection_error(e: StreamError) -> ConnectionError {
    match e {
        StreamError::ConnectionLost(reason) => reason,
        _ => ConnectionError::LocallyClosed,
    }
}

fn map_write_error(e: WriteError) -> Poll<Result<usize, StreamError>> {
    match e {
        WriteError::Blocked => Poll::Pending,
        WriteError::Stopped(code) => Poll::Ready(Err(StreamError::Stopped(code))),
        _ => Poll::Ready(Err(StreamError::ClosedStream)),
    }
}

/// The sending half of a stream
pub struct SendStream {
    conn: Connection,
    id: StreamId,
}

impl SendStream {
    /// The stream's ID
    pub fn id(&self) -> StreamId {
        self.id
    }

    /// Write some bytes, waiting for flow-control credit; returns how many were taken
    pub async fn write(&mut self, data: &[u8]) -> Result<usize, StreamError> {
        let id = self.id;
        self.conn
            .wait(|conn| match conn.write(id, data) {
                Ok(0) if !data.is_empty() => Poll::Pending,
                Ok(n) => Poll::Ready(Ok(n)),
                Err(e) => map_write_error(e),
            })
            .await
    }

    /// Write all of `data`
    pub async fn write_all(&mut self, mut data: &[u8]) -> Result<(), StreamError> {
        while !data.is_empty() {
            let n = self.write(data).await?;
            data = &data[n..];
        }
        Ok(())
    }

    /// Mark the end of the stream (FIN)
    pub fn finish(&mut self) -> Result<(), StreamError> {
        let id = self.id;
        match self.conn.with(|conn| conn.finish(id)) {
            Some(Ok(())) => Ok(()),
            Some(Err(_)) => Err(StreamError::ClosedStream),
            None => Err(StreamError::ConnectionLost(self.conn.gone())),
        }
    }

    /// Abandon the stream with an error code (RESET_STREAM)
    pub fn reset(&mut self, error_code: u64) -> Result<(), StreamError> {
        let id = self.id;
        match self.conn.with(|conn| conn.reset(id, error_code)) {
            Some(Ok(())) => Ok(()),
            Some(Err(_)) => Err(StreamError::ClosedStream),
            None => Err(StreamError::ConnectionLost(self.conn.gone())),
        }
    }
}

/// The receiving half of a stream
pub struct RecvStream {
    conn: Connection,
    id: StreamId,
    /// The FIN was delivered with the last read; the core has already freed the stream
    finished: bool,
}

impl RecvStream {
    /// The stream's ID
    pub fn id(&self) -> StreamId {
        self.id
    }

    /// Read into `buf`; `Ok(None)` at the end of the stream
    pub async fn read(&mut self, buf: &mut [u8]) -> Result<Option<usize>, StreamError> {
        if self.finished {
            return Ok(None);
        }
        let id = self.id;
        let (len, fin) = self
            .conn
            .wait(|conn| match conn.read(id, buf) {
                Ok(Some(r)) if r.len == 0 && !r.fin => Poll::Pending,
                Ok(Some(r)) => Poll::Ready(Ok((r.len, r.fin))),
                Ok(None) => Poll::Pending,
                Err(ReadError::Reset { code, final_size }) => {
                    Poll::Ready(Err(StreamError::Reset { code, final_size }))
                }
                Err(_) => Poll::Ready(Err(StreamError::ClosedStream)),
            })
            .await?;
        self.finished = fin;
        Ok(if len == 0 { None } else { Some(len) })
    }

    /// Read until the end of the stream, failing beyond `limit` bytes
    pub async fn read_to_end(&mut self, limit: usize) -> Result<Vec<u8>, StreamError> {
        let mut out = Vec::new();
        let mut buf = vec![0u8; 64 * 1024];
        while let Some(n) = self.read(&mut buf).await? {
            if out.len() + n > limit {
                return Err(StreamError::ClosedStream);
            }
            out.extend_from_slice(&buf[..n]);
        }
        Ok(out)
    }

    /// Ask the peer to stop sending (STOP_SENDING)
    pub fn stop(&mut self, error_code: u64) -> Result<(), StreamError> {
        let id = self.id;
        match self.conn.with(|conn| conn.stop_sending(id, error_code)) {
            Some(Ok(())) => Ok(()),
            Some(Err(_)) => Err(StreamError::ClosedStream),
            None => Err(StreamError::ConnectionLost(self.conn.gone())),
        }
    }
}

impl Connection {
    /// Server, still establishing: advertise `addr` as this connection's preferred address
    /// (RFC 9000 §9.6; the kernel's QUIC_SOCKOPT_CONNECTION_MIGRATION before the handshake)
    ///
    /// Binds a UDP socket on `addr` (or shares the one another connection bound there) whose
    /// datagrams go to the endpoint's connections, and from which this connection sends once
    /// the client moved there; the socket closes when the last connection advertising it is
    /// gone. One address per family; a second call for a family replaces the first. The
    /// family may differ from the connection's (a client only moves within its own). Must be
    /// called inside a tokio runtime, with external TLS before the application took the
    /// transport parameters ([`proto_conn::Connection::external_local_params`]).
    ///
    /// Errors carry the errno the kernel would give: `EINVAL` for port 0, an unspecified or
    /// multicast IP, a client connection, zero-length CIDs, or parameters already sent;
    /// `EPIPE` once the connection is closed or gone; bind errors as they come (`EADDRINUSE`
    /// when another program holds the address, `EADDRNOTAVAIL` when no interface has it).
    pub fn advertise_preferred_address(&self, addr: SocketAddr) -> io::Result<()> {
        use nix::errno::Errno;
        if addr.port() == 0 || addr.ip().is_unspecified() || addr.ip().is_multicast() {
            return Err(Errno::EINVAL.into());
        }
        let mut guard = self.shared.lock();
        let state = &mut *guard;
        let conn = state
            .conn_mut(self.handle, self.id)
            .ok_or(io::Error::from(Errno::EPIPE))?;
        if conn.side().is_client() {
            return Err(Errno::EINVAL.into());
        }
        let known = state
            .preferred_users
            .get(&self.handle)
            .is_some_and(|a| a.contains(&addr));
        // Bind before touching the connection, so a refused address changes nothing
        let fresh = match state.preferred.get(&addr) {
            Some(_) => None,
            None => Some(Arc::new(UdpSocket::bind(addr)?)),
        };
        let conn = state
            .conn_mut(self.handle, self.id)
            .ok_or(io::Error::from(Errno::EPIPE))?;
        conn.advertise_preferred_address(addr)
            .map_err(|e| match e {
                PreferredAddressError::Closed => io::Error::from(Errno::EPIPE),
                _ => io::Error::from(Errno::EINVAL),
            })?;
        if let Some(socket) = fresh {
            let task = tokio::spawn(recv_preferred(self.shared.clone(), socket.clone()));
            state.preferred.insert(
                addr,
                PreferredSocket {
                    socket,
                    users: 0,
                    task,
                },
            );
            tracing::debug!(%addr, "preferred-address socket bound");
        }
        if !known {
            // The core replaced an earlier address of the same family
            let replaced: Vec<SocketAddr> = state
                .preferred_users
                .get(&self.handle)
                .map(|a| {
                    a.iter()
                        .filter(|a| a.is_ipv4() == addr.is_ipv4())
                        .copied()
                        .collect()
                })
                .unwrap_or_default();
            for old in replaced {
                state.release_preferred(self.handle, old);
            }
            if let Some(p) = state.preferred.get_mut(&addr) {
                p.users += 1;
            }
            state
                .preferred_users
                .entry(self.handle)
                .or_default()
                .push(addr);
        }
        drop(guard);
        self.shared.wake_driver.notify_one();
        Ok(())
    }

    /// Server: the local address this connection sends from because its client moved to the
    /// preferred address (`None` before that)
    pub fn preferred_local_address(&self) -> Option<SocketAddr> {
        self.with(|conn| conn.preferred_local_address()).flatten()
    }
}

/// Escape hatches for services that need controls the handles above don't offer (the SOL_QUIC
/// socket service: key update, CID retirement, NEW_TOKEN, the peer's limits)
impl Connection {
    /// Run `op` on the core connection (with the current time) and wake the driver so that
    /// whatever it queued goes out; `None` once the connection is gone
    pub fn with_core<T>(
        &self,
        op: impl FnOnce(&mut proto_conn::Connection, Instant) -> T,
    ) -> Option<T> {
        self.with(|conn| op(conn, Instant::now()))
    }

    /// Re-run `op` on the core connection after each of its events until it returns `Some`;
    /// fails once the connection is closed. The check runs after registering for the wake-up,
    /// so a change between two checks is never missed.
    pub async fn wait_core<T>(
        &self,
        mut op: impl FnMut(&mut proto_conn::Connection) -> Option<T>,
    ) -> Result<T, ConnectionError> {
        self.wait(|conn| match op(conn) {
            Some(v) => Poll::Ready(Ok(v)),
            None => Poll::Pending,
        })
        .await
        .map_err(into_connection_error)
    }
}

impl Endpoint {
    /// Run `op` on the sans-IO endpoint (e.g. its NEW_TOKEN store) and wake the driver
    pub fn with_proto<T>(&self, op: impl FnOnce(&mut proto::Endpoint) -> T) -> T {
        let result = op(&mut self.shared.lock().proto);
        self.shared.wake_driver.notify_one();
        result
    }
}
