//! `quictun up`: wire a validated [`Config`] to a TUN device, QUIC connections and the data path
//!
//! Setup order (each step undone by drop guards if a later one fails, so a failed start leaves
//! nothing behind): TUN with addresses and MTU → extra addresses and routes → UDP endpoint(s)
//! → control socket → metrics. Then the data path ([`Daemon`]) and one supervisor per peer run
//! until the shutdown future resolves: clients connect and reconnect with capped, jittered
//! exponential backoff; the server accepts connections and maps each verified certificate to
//! its `[[peer]]` by common name. Teardown closes the connections, removes routes, addresses,
//! the control socket and the device.

use std::future::Future;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ipnet::IpNet;
use netdev::{LinuxTun, Netlink, NetlinkError, TunConfig, TunError};
use quic_stack::driver::Endpoint;
use quic_stack::{ClientConfig, EndpointConfig, ServerConfig, TransportConfig};

use crate::bypass::{self, BypassError, EndpointBypass};
use crate::cert::{self, CertError, TlsMaterial};
use crate::config::{Config, Congestion, Mtu, Role};
use crate::control::{self, ControlError, DatagramDrops, PeerState, Request, Response, Status};
use crate::daemon::{Daemon, DaemonError, DaemonOptions};
use crate::link::QuicLink;
use crate::router::Router;

/// Application error code: the client's certificate names no configured peer
pub const APP_UNKNOWN_PEER: u64 = 0x101;
/// Application error code: the daemon is shutting down
pub const APP_SHUTDOWN: u64 = 0x100;

/// Bytes a DATAGRAM adds to the inner packet inside a UDP payload: short header (1 + 8-byte
/// CID + up to 4 PN bytes), AEAD tag 16, frame type and length 3, rounded up
const DATAGRAM_OVERHEAD: u16 = 40;
/// Largest UDP payload on a 1500-byte underlay (IPv4: 1472; IPv6: 1452)
const MAX_UDP_PAYLOAD_V4: u16 = 1472;
const MAX_UDP_PAYLOAD_V6: u16 = 1452;

/// Reconnect backoff: first delay and cap
const BACKOFF_MIN: Duration = Duration::from_millis(200);
const BACKOFF_MAX: Duration = Duration::from_secs(15);
/// Longest wait for one handshake
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Why `up` failed; each message names the fix
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum UpError {
    /// Opening the TUN device failed (not root, no /dev/net/tun, name in use)
    #[error(transparent)]
    Tun(#[from] TunError),
    /// Addresses or routes could not be set
    #[error("{what}: {source}")]
    Netlink {
        /// What was being configured
        what: String,
        /// The kernel's answer
        source: NetlinkError,
    },
    /// The UDP port is taken
    #[error(
        "UDP {0} is already in use: stop the other quictun (or program) or change interface.listen"
    )]
    AddrInUse(SocketAddr),
    /// Other UDP socket failures
    #[error("UDP socket {addr}: {source}")]
    Udp {
        /// Address we tried to bind
        addr: SocketAddr,
        /// OS error
        source: std::io::Error,
    },
    /// TLS configuration could not be built
    #[error(transparent)]
    Cert(#[from] CertError),
    /// Control socket could not be bound
    #[error(transparent)]
    Control(#[from] ControlError),
    /// Metrics listener could not be bound
    #[error("metrics.listen {addr}: {source}: pick a free port or remove [metrics]")]
    Metrics {
        /// Listen address
        addr: SocketAddr,
        /// OS error
        source: std::io::Error,
    },
    /// The data path failed
    #[error(transparent)]
    Daemon(#[from] DaemonError),
    /// A full tunnel could not keep its endpoint routed outside the tunnel
    #[error(transparent)]
    Bypass(#[from] BypassError),
}

/// How often a full tunnel re-checks the underlay route to its endpoints without an event
const BYPASS_RECHECK: Duration = Duration::from_secs(2);

/// Per-peer connection state for status
#[derive(Debug, Clone, Copy)]
struct PeerRuntime {
    state: PeerState,
    last_handshake: Option<Instant>,
}

struct Shared {
    role: Role,
    iface: String,
    started: Instant,
    router: Arc<Mutex<Router>>,
    links: Vec<Arc<QuicLink>>,
    peers: Vec<Mutex<PeerRuntime>>,
    /// Client: the local side of each peer's path, in configuration order
    roamers: Vec<Option<Arc<Roamer>>>,
}

fn lock<X>(m: &Mutex<X>) -> std::sync::MutexGuard<'_, X> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Shared {
    fn set_state(&self, peer: usize, state: PeerState) {
        if let Some(p) = self.peers.get(peer) {
            let mut p = lock(p);
            p.state = state;
            if state == PeerState::Connected {
                p.last_handshake = Some(Instant::now());
            }
        }
    }

    fn status(&self) -> Status {
        let router = lock(&self.router);
        let role = match self.role {
            Role::Server => "server",
            Role::Client => "client",
        };
        let mut st = crate::daemon::status_from_router(
            &router,
            &self.iface,
            role,
            self.started.elapsed().as_secs(),
            |id| {
                self.peers
                    .get(id.0)
                    .map_or(PeerState::Waiting, |p| lock(p).state)
            },
        );
        drop(router);
        for (i, ps) in st.peers.iter_mut().enumerate() {
            let Some(link) = self.links.get(i) else {
                continue;
            };
            let rt = self.peers.get(i).map(|p| *lock(p));
            ps.last_handshake_secs = rt
                .and_then(|r| r.last_handshake)
                .map(|t| t.elapsed().as_secs());
            let d = &link.drops;
            let mut drops = DatagramDrops {
                too_large: d.too_large.load(Ordering::Relaxed),
                not_connected: d.not_connected.load(Ordering::Relaxed),
                unsupported: d.unsupported.load(Ordering::Relaxed),
                stream_errors: d.stream_errors.load(Ordering::Relaxed),
                queue_full: 0,
            };
            if let Some(conn) = link.connection() {
                ps.endpoint = conn.remote_address().map(|a| a.to_string());
                ps.max_datagram = conn.max_datagram_size().map(|m| m as u64);
                if let Some(s) = conn.stats() {
                    ps.rtt_ms = Some(s.rtt.as_secs_f64() * 1000.0);
                    ps.cwnd = Some(s.cwnd);
                    drops.queue_full = s.datagrams_dropped;
                    ps.migrations = s.migrations;
                    ps.path_validations_ok = s.path_validations_succeeded;
                    ps.path_validations_failed = s.path_validations_failed;
                }
            }
            if let Some(Some(r)) = self.roamers.get(i) {
                ps.local = Some(r.describe());
            }
            ps.datagram_drops = drops;
        }
        st
    }
}

/// Routes and addresses we added, removed again on drop (the device's own removal would take
/// them too; removing them explicitly keeps teardown correct if the device outlives us)
struct NetGuard {
    index: u32,
    routes: Vec<IpNet>,
    addresses: Vec<IpNet>,
    nl: Option<Netlink>,
    /// Full tunnel: host routes keeping peer endpoints on the underlay
    bypass: Option<Arc<tokio::sync::Mutex<EndpointBypass>>>,
    /// Moves those host routes when the underlay changes
    bypass_follower: Option<tokio::task::JoinHandle<()>>,
}

impl NetGuard {
    /// Keep the endpoint host routes on whatever underlay route reaches the endpoint now
    fn follow_underlay(&mut self) {
        let Some(bypass) = self.bypass.clone() else {
            return;
        };
        self.bypass_follower = Some(tokio::spawn(async move {
            let (Ok(nl), Ok(mut watcher)) = (Netlink::new(), netdev::NetWatcher::new()) else {
                tracing::warn!(
                    "full tunnel: cannot watch the underlay; endpoint routes stay as set"
                );
                return;
            };
            loop {
                // Route changes arrive as events; the periodic pass catches what a missed or
                // coalesced event would hide
                let _ = tokio::time::timeout(BYPASS_RECHECK, watcher.next()).await;
                bypass.lock().await.refresh(&nl).await;
            }
        }));
    }

    async fn teardown(&mut self) {
        if let Some(t) = self.bypass_follower.take() {
            t.abort();
        }
        let Some(nl) = self.nl.take() else { return };
        if let Some(b) = self.bypass.take() {
            b.lock().await.remove(&nl).await;
        }
        for r in self.routes.drain(..) {
            if let Err(e) = nl.del_route(r, self.index).await {
                tracing::debug!("removing route {r}: {e}");
            }
        }
        for a in self.addresses.drain(..) {
            if let Err(e) = nl.del_address(self.index, a).await {
                tracing::debug!("removing address {a}: {e}");
            }
        }
    }
}

/// Removes the control socket file on drop
struct SocketFile(PathBuf);

impl Drop for SocketFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

fn netlink_err(what: impl Into<String>) -> impl FnOnce(NetlinkError) -> UpError {
    let what = what.into();
    move |source| UpError::Netlink { what, source }
}

/// Inner packets waiting for the QUIC connection before the oldest is dropped
///
/// A bottleneck buffer of the tunnel whenever the connection sends slower than the TUN
/// delivers. Measured with one TCP stream through the benchmark's tunnel (docs/benchmarks.md,
/// 2026-11-28 latency section): 256 cut the ping under load (median ~5 to ~2 ms) but inner TCP
/// then saw ~5% loss and lost ~10% of its throughput; 1024 made no difference that the noise
/// let through. Under that load the delay sits mostly in the receiving daemon's UDP socket
/// buffer, which a loss-free connection's congestion window is free to fill, not here.
const DATAGRAM_SEND_QUEUE: usize = 4096;

/// The transport settings for this configuration (`keepalive`: the peer's, or the shortest
/// over all peers for the server)
fn transport(config: &Config, keepalive: Option<Duration>, v6: bool) -> TransportConfig {
    let inner = config.interface.mtu.initial();
    let max_udp = if v6 {
        MAX_UDP_PAYLOAD_V6
    } else {
        MAX_UDP_PAYLOAD_V4
    };
    TransportConfig {
        idle_timeout: Some(config.quic.idle_timeout),
        keep_alive_interval: keepalive,
        // A 1280-byte inner packet must fit one DATAGRAM from the first packet on: start at
        // the inner MTU plus overhead instead of QUIC's 1200 (a 1500-byte underlay carries it)
        initial_mtu: inner.saturating_add(DATAGRAM_OVERHEAD).clamp(1200, max_udp),
        max_udp_payload_size: max_udp,
        datagram_receive_buffer_size: Some(8 << 20),
        datagram_send_buffer_size: DATAGRAM_SEND_QUEUE,
        congestion: match config.quic.congestion {
            Congestion::Cubic => quic_stack::cc::Algorithm::Cubic,
            Congestion::NewReno => quic_stack::cc::Algorithm::NewReno,
            Congestion::Bbr => quic_stack::cc::Algorithm::Bbr,
        },
        ..TransportConfig::default()
    }
}

fn endpoint_config(material: &TlsMaterial) -> EndpointConfig {
    // Derive the stateless reset key from our private key: a restarted server then resets its
    // peers' stale connections at once instead of leaving them to the idle timeout
    let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
    ctx.update(b"quictun stateless reset v1");
    ctx.update(material.key.secret_der());
    let mut key = [0u8; 32];
    key.copy_from_slice(ctx.finish().as_ref());
    EndpointConfig {
        reset_key: Some(key),
        ..EndpointConfig::default()
    }
}

fn bind_endpoint(
    addr: SocketAddr,
    cfg: EndpointConfig,
    server: Option<ServerConfig>,
) -> Result<Endpoint, UpError> {
    Endpoint::new(addr, cfg, server).map_err(|source| {
        if source.kind() == std::io::ErrorKind::AddrInUse {
            UpError::AddrInUse(addr)
        } else {
            UpError::Udp { addr, source }
        }
    })
}

/// A uniformly random fraction in [0, 1) for backoff jitter
fn jitter() -> f64 {
    let mut b = [0u8; 4];
    let _ = ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut b);
    f64::from(u32::from_le_bytes(b)) / (f64::from(u32::MAX) + 1.0)
}

/// Run the tunnel described by `config` until `shutdown` resolves
pub async fn run(
    config: Config,
    material: TlsMaterial,
    shutdown: impl Future<Output = ()>,
) -> Result<(), UpError> {
    let role = config.role();
    let mtu = config.interface.mtu.initial();
    let v4: Vec<_> = config
        .interface
        .addresses
        .iter()
        .filter_map(|n| match n {
            IpNet::V4(n) => Some(*n),
            IpNet::V6(_) => None,
        })
        .collect();
    let v6: Vec<_> = config
        .interface
        .addresses
        .iter()
        .filter_map(|n| match n {
            IpNet::V6(n) => Some(*n),
            IpNet::V4(_) => None,
        })
        .collect();

    // Step 1: the device, with its first address of each family, up
    let tun = Arc::new(LinuxTun::open(&TunConfig {
        ipv4: v4.first().copied(),
        ipv6: v6.first().copied(),
        ..TunConfig::new(config.interface.name.clone(), mtu)
    })?);
    let index = tun.if_index()?;
    tracing::info!(
        "interface {} up: mtu {mtu}, addresses {:?}, offload {}",
        config.interface.name,
        config.interface.addresses,
        tun.offload()
    );

    // Step 2: further addresses and routes to the peers' allowed IPs
    let nl = Netlink::new().map_err(netlink_err("netlink"))?;
    let mut net = NetGuard {
        index,
        routes: Vec::new(),
        addresses: Vec::new(),
        nl: None,
        bypass: None,
        bypass_follower: None,
    };
    for a in v4
        .iter()
        .skip(1)
        .map(|n| IpNet::V4(*n))
        .chain(v6.iter().skip(1).map(|n| IpNet::V6(*n)))
    {
        nl.add_address(index, a)
            .await
            .map_err(netlink_err(format!("interface.address {a}")))?;
        net.addresses.push(a);
    }
    let on_link: Vec<IpNet> = config
        .interface
        .addresses
        .iter()
        .map(IpNet::trunc)
        .collect();
    for peer in &config.peers {
        for allowed in &peer.allowed_ips {
            // Prefixes inside the interface's own subnets are reached by the connected route
            if on_link.iter().any(|s| s.contains(allowed)) {
                continue;
            }
            for net_ in bypass::tunnel_routes(*allowed) {
                if let Err(e) = nl.add_route(net_, index).await {
                    net.nl = Some(nl);
                    net.teardown().await;
                    return Err(netlink_err(format!(
                        "route to {net_} (peer {} allowed_ips)",
                        peer.name
                    ))(e));
                }
                net.routes.push(net_);
            }
        }
    }
    // A full tunnel must not capture its own UDP packets to the server
    let captured = bypass::captured_endpoints(&config, &net.routes);
    if !captured.is_empty() {
        match EndpointBypass::install(&nl, index, &captured).await {
            Ok(b) => net.bypass = Some(Arc::new(tokio::sync::Mutex::new(b))),
            Err(e) => {
                net.nl = Some(nl);
                net.teardown().await;
                return Err(UpError::Bypass(e));
            }
        }
    }
    net.nl = Some(nl);
    net.follow_underlay();
    let result = run_with_device(config, material, tun, shutdown, role).await;
    net.teardown().await;
    result
}

async fn run_with_device(
    config: Config,
    material: TlsMaterial,
    tun: Arc<LinuxTun>,
    shutdown: impl Future<Output = ()>,
    role: Role,
) -> Result<(), UpError> {
    let mtu = usize::from(config.interface.mtu.initial());
    let ecfg = endpoint_config(&material);

    // Step 3: UDP endpoints
    let mut endpoints: Vec<Option<Endpoint>> = Vec::new();
    let mut server_ep = None;
    match role {
        Role::Server => {
            let listen = config
                .interface
                .listen
                .unwrap_or(SocketAddr::from((Ipv4Addr::UNSPECIFIED, 4433)));
            let keepalive = config.peers.iter().filter_map(|p| p.keepalive).min();
            let mut sc = ServerConfig::new(Arc::new(material.server_config()?));
            sc.transport = Arc::new(transport(&config, keepalive, listen.is_ipv6()));
            server_ep = Some(bind_endpoint(listen, ecfg.clone(), Some(sc))?);
            tracing::info!("listening on UDP {listen}");
        }
        Role::Client => {
            for p in &config.peers {
                let ep = match p.endpoint {
                    Some(remote) => {
                        let bind = if remote.is_ipv6() {
                            SocketAddr::from((Ipv6Addr::UNSPECIFIED, 0))
                        } else {
                            SocketAddr::from((Ipv4Addr::UNSPECIFIED, 0))
                        };
                        Some(bind_endpoint(bind, ecfg.clone(), None)?)
                    }
                    None => None,
                };
                endpoints.push(ep);
            }
        }
    }

    let roamers: Vec<Option<Arc<Roamer>>> = config
        .peers
        .iter()
        .zip(&endpoints)
        .map(|(p, ep)| match (p.endpoint, ep) {
            (Some(remote), Some(ep)) => Some(Arc::new(Roamer::new(ep.clone(), remote))),
            _ => None,
        })
        .collect();
    let links: Vec<Arc<QuicLink>> = config
        .peers
        .iter()
        .map(|_| Arc::new(QuicLink::new(config.quic.streams, mtu, mtu)))
        .collect();
    let daemon = Daemon::new(
        tun.clone(),
        config.router(),
        links.clone(),
        Arc::new(|orig: &[u8], mtu: u32, from: IpAddr| {
            netdev::icmp::packet_too_big(orig, from, mtu).ok()
        }),
        DaemonOptions::from_config(&config),
    );
    let shared = Arc::new(Shared {
        role,
        iface: config.interface.name.clone(),
        started: Instant::now(),
        router: daemon.router(),
        links: links.clone(),
        peers: config
            .peers
            .iter()
            .map(|_| {
                Mutex::new(PeerRuntime {
                    state: match role {
                        Role::Server => PeerState::Waiting,
                        Role::Client => PeerState::Connecting,
                    },
                    last_handshake: None,
                })
            })
            .collect(),
        roamers,
    });

    // Step 4: control socket and metrics
    let listener = control::bind(&config.control_socket)?;
    let _socket_file = SocketFile(config.control_socket.clone());
    let mut tasks = tokio::task::JoinSet::new();
    {
        let shared = shared.clone();
        let handler: control::Handler = Arc::new(move |req| match req {
            Request::Status => Response::status(shared.status()),
            Request::Migrate { to } => migrate_request(&shared, to),
        });
        tasks.spawn(control::serve(listener, handler));
    }
    if let Some(m) = &config.metrics {
        let l = tokio::net::TcpListener::bind(m.listen)
            .await
            .map_err(|source| UpError::Metrics {
                addr: m.listen,
                source,
            })?;
        let shared = shared.clone();
        tasks.spawn(crate::metrics::serve(l, Arc::new(move || shared.status())));
        tracing::info!("metrics on http://{}/metrics", m.listen);
    }

    // Step 5: data path, connection supervisors, and the client's uplink watcher
    let mut data = daemon.spawn();
    if config.interface.mtu == Mtu::Auto {
        let ipv6 = config
            .interface
            .addresses
            .iter()
            .any(|a| a.addr().is_ipv6());
        tasks.spawn(crate::mtu_auto::follow(
            links.clone(),
            shared.router.clone(),
            tun.if_index()?,
            ipv6,
            mtu,
        ));
    }
    if shared.roamers.iter().any(Option::is_some) {
        tasks.spawn(watch_uplinks(shared.clone()));
    }
    match (&server_ep, role) {
        (Some(ep), Role::Server) => {
            tasks.spawn(serve_peers(
                ep.clone(),
                config.peers.iter().map(|p| p.name.clone()).collect(),
                shared.clone(),
            ));
        }
        _ => {
            for (i, p) in config.peers.iter().enumerate() {
                let (Some(Some(ep)), Some(remote)) = (endpoints.get(i), p.endpoint) else {
                    tracing::warn!(
                        "peer {}: no endpoint configured; it cannot be reached",
                        p.name
                    );
                    continue;
                };
                let mut cc = ClientConfig::new(Arc::new(material.client_config()?));
                cc.transport = Arc::new(transport(&config, p.keepalive, remote.is_ipv6()));
                tasks.spawn(connect_peer(
                    ep.clone(),
                    cc,
                    remote,
                    p.name.clone(),
                    i,
                    shared.clone(),
                ));
            }
        }
    }
    tracing::info!("quictun up: {} peer(s)", config.peers.len());

    // Step 6: run until asked to stop or the TUN fails
    let result = tokio::select! {
        () = shutdown => {
            tracing::info!("shutting down");
            Ok(())
        }
        done = data.join_next() => match done {
            Some(Ok(Err(e))) => Err(UpError::Daemon(e)),
            _ => Ok(()),
        },
    };

    // Teardown: tell peers we are leaving (they reconnect or wait), then stop everything
    tasks.abort_all();
    data.abort_all();
    for link in &links {
        if let Some(conn) = link.connection() {
            conn.close(APP_SHUTDOWN, b"shutdown");
        }
        link.detach_all();
    }
    // Let the endpoint driver put CONNECTION_CLOSE on the wire
    tokio::time::sleep(Duration::from_millis(50)).await;
    while tasks.join_next().await.is_some() {}
    while data.join_next().await.is_some() {}
    result
}

/// Server: accept connections, identify each by its certificate, attach it to its peer's link
async fn serve_peers(ep: Endpoint, names: Vec<String>, shared: Arc<Shared>) {
    while let Some(conn) = ep.accept().await {
        let names = names.clone();
        let shared = shared.clone();
        tokio::spawn(async move {
            let remote = conn
                .remote_address()
                .map_or_else(|| "?".into(), |a| a.to_string());
            match tokio::time::timeout(HANDSHAKE_TIMEOUT, conn.handshake()).await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => {
                    tracing::warn!("handshake with {remote} failed: {e}");
                    return;
                }
                Err(_) => {
                    tracing::warn!("handshake with {remote} timed out");
                    conn.close(APP_UNKNOWN_PEER, b"handshake timeout");
                    return;
                }
            }
            // The TLS layer verified the chain (CA or pin); the name picks the [[peer]]
            let name = conn
                .peer_identity()
                .and_then(|chain| chain.first().and_then(|c| cert::common_name(c)));
            let Some(i) = name
                .as_deref()
                .and_then(|n| names.iter().position(|p| p == n))
            else {
                tracing::warn!(
                    "refusing {remote}: its certificate (CN {:?}) names no [[peer]] in the configuration",
                    name.unwrap_or_default()
                );
                conn.close(APP_UNKNOWN_PEER, b"unknown peer");
                return;
            };
            let Some(link) = shared.links.get(i) else {
                return;
            };
            tracing::info!(
                "peer {} connected from {remote} (max datagram {:?})",
                names[i],
                conn.max_datagram_size()
            );
            let generation = link.attach(conn.clone());
            shared.set_state(i, PeerState::Connected);
            let reason = conn.closed().await;
            // A newer connection of the same peer may have replaced this one already
            if link.detach(generation) {
                shared.set_state(i, PeerState::Waiting);
            }
            tracing::info!("peer {} ({remote}) disconnected: {reason}", names[i]);
        });
    }
}

/// Client: keep one connection to `remote` up, reconnecting with backoff
async fn connect_peer(
    ep: Endpoint,
    cc: ClientConfig,
    remote: SocketAddr,
    name: String,
    peer: usize,
    shared: Arc<Shared>,
) {
    let Some(link) = shared.links.get(peer).cloned() else {
        return;
    };
    let mut backoff = BACKOFF_MIN;
    loop {
        let attempt = async {
            let conn = ep
                .connect(cc.clone(), remote, &name)
                .map_err(|e| e.to_string())?;
            match tokio::time::timeout(HANDSHAKE_TIMEOUT, conn.handshake()).await {
                Ok(Ok(())) => Ok(conn),
                Ok(Err(e)) => Err(e.to_string()),
                Err(_) => Err("handshake timed out".into()),
            }
        };
        match attempt.await {
            Ok(conn) => {
                tracing::info!(
                    "connected to {name} at {remote} (max datagram {:?})",
                    conn.max_datagram_size()
                );
                backoff = BACKOFF_MIN;
                let generation = link.attach(conn.clone());
                shared.set_state(peer, PeerState::Connected);
                let reason = conn.closed().await;
                link.detach(generation);
                shared.set_state(peer, PeerState::Reconnecting);
                tracing::warn!("connection to {name} lost: {reason}; reconnecting");
            }
            Err(e) => {
                tracing::warn!(
                    "connecting to {name} at {remote}: {e}; retrying in {:.1}s",
                    backoff.as_secs_f64()
                );
            }
        }
        // Full jitter on the upper half, so restarted clients do not reconnect in lockstep
        let delay = backoff.mul_f64(0.5 + 0.5 * jitter());
        tokio::time::sleep(delay).await;
        backoff = (backoff * 2).min(BACKOFF_MAX);
    }
}

/// Client: which local address a peer's connection uses, and moving it (roaming, multi-homing)
///
/// The socket is bound to the wildcard address, so the kernel picks the source by route; when
/// an address or route change makes the route to the server leave from another address, the
/// endpoint moves to a fresh socket at once (active migration with a fresh connection ID; the
/// driver keeps the old socket until the new path validates). `quictun migrate --to ADDR` pins
/// the socket to ADDR until that address disappears or its link goes down.
struct Roamer {
    ep: Endpoint,
    remote: SocketAddr,
    state: Mutex<RoamState>,
}

#[derive(Debug, Clone, Copy)]
struct RoamState {
    /// Address chosen with `quictun migrate --to`, kept while it is usable
    pinned: Option<IpAddr>,
    /// The source address our packets to the peer leave from
    current: Option<IpAddr>,
}

impl Roamer {
    fn new(ep: Endpoint, remote: SocketAddr) -> Self {
        Self {
            ep,
            remote,
            state: Mutex::new(RoamState {
                pinned: None,
                current: route_source(remote),
            }),
        }
    }

    /// The roaming state, after noticing a pinned move the driver undid (the new path failed
    /// validation and the endpoint went back to its previous socket)
    fn state(&self) -> RoamState {
        let mut st = lock(&self.state);
        if let Some(p) = st.pinned {
            if self.ep.local_addr().ip() != p {
                tracing::warn!(
                    "the move to {p} was undone: the path from it failed validation; back on the previous uplink"
                );
                st.pinned = None;
                st.current = route_source(self.remote);
            }
        }
        *st
    }

    /// The local address for `quictun status`: source IP and socket port
    fn describe(&self) -> String {
        let st = self.state();
        let sock = self.ep.local_addr();
        let ip = st.pinned.or(st.current).unwrap_or(sock.ip());
        let pinned = if st.pinned.is_some() { " (pinned)" } else { "" };
        format!("{}{pinned}", SocketAddr::new(ip, sock.port()))
    }

    /// Move to a socket on `to` and stay there while it is usable
    fn pin(&self, to: IpAddr) -> std::io::Result<()> {
        self.ep.rebind(SocketAddr::new(to, 0))?;
        let mut st = lock(&self.state);
        st.pinned = Some(to);
        st.current = Some(to);
        Ok(())
    }

    /// After an address, link or route change: move if the path to the peer now leaves from
    /// another address, or the pinned address became unusable
    async fn reevaluate(&self, nl: &Netlink) {
        let st = self.state();
        if let Some(p) = st.pinned {
            match nl.address_usable(p).await {
                Ok(Some(true)) => return,
                Ok(Some(false)) => tracing::warn!(
                    "uplink {p} lost: its link is down; choosing another address by route"
                ),
                Ok(None) => tracing::warn!(
                    "uplink {p} lost: the address was removed; choosing another address by route"
                ),
                Err(e) => {
                    tracing::debug!("cannot check local address {p}: {e}");
                    return;
                }
            }
            lock(&self.state).pinned = None;
        } else if st.current.is_some() && st.current == route_source(self.remote) {
            return;
        }
        let Some(src) = route_source(self.remote) else {
            tracing::warn!(
                "no route to {} any more: waiting for the network to come back",
                self.remote
            );
            lock(&self.state).current = None;
            return;
        };
        let bind = if self.remote.is_ipv6() {
            SocketAddr::from((Ipv6Addr::UNSPECIFIED, 0))
        } else {
            SocketAddr::from((Ipv4Addr::UNSPECIFIED, 0))
        };
        match self.ep.rebind(bind) {
            Ok(()) => {
                tracing::info!(
                    "uplink changed: local address {} -> {src}; migrating the connection to {}",
                    st.current
                        .map_or_else(|| "none".to_string(), |a| a.to_string()),
                    self.remote
                );
                lock(&self.state).current = Some(src);
            }
            Err(e) => tracing::warn!("cannot open a new UDP socket to migrate: {e}"),
        }
    }
}

/// The source address the kernel picks for packets to `remote` (no packet is sent: connecting
/// a UDP socket only looks up the route)
fn route_source(remote: SocketAddr) -> Option<IpAddr> {
    let any = if remote.is_ipv6() {
        SocketAddr::from((Ipv6Addr::UNSPECIFIED, 0))
    } else {
        SocketAddr::from((Ipv4Addr::UNSPECIFIED, 0))
    };
    let s = std::net::UdpSocket::bind(any).ok()?;
    s.connect(remote).ok()?;
    s.local_addr().ok().map(|a| a.ip())
}

/// `quictun migrate --to ADDR` (control socket)
fn migrate_request(shared: &Shared, to: IpAddr) -> Response {
    if shared.role == Role::Server {
        return Response::error("only a client migrates; the server follows its clients");
    }
    let mut moved = Vec::new();
    for (i, r) in shared.roamers.iter().enumerate() {
        let Some(r) = r else { continue };
        if r.remote.is_ipv6() != to.is_ipv6() {
            continue;
        }
        if let Err(e) = r.pin(to) {
            return Response::error(format!(
                "cannot bind a UDP socket to {to}: {e} (is it an address of this host?)"
            ));
        }
        tracing::info!("control: migrating the connection to peer #{i} to local address {to}");
        moved.push(r.remote.to_string());
    }
    if moved.is_empty() {
        return Response::error(format!(
            "no peer is reached over the address family of {to}"
        ));
    }
    Response::message(format!(
        "migrating to {to} (toward {}); `quictun status` shows the path validations",
        moved.join(", ")
    ))
}

/// Client: follow address, link and route changes (netlink) and move connections as needed
async fn watch_uplinks(shared: Arc<Shared>) {
    let (mut watcher, nl) = match (netdev::NetWatcher::new(), Netlink::new()) {
        (Ok(w), Ok(n)) => (w, n),
        (Err(e), _) | (_, Err(e)) => {
            tracing::warn!("roaming disabled: cannot watch network changes: {e}");
            return;
        }
    };
    while let Some(event) = watcher.next().await {
        tracing::debug!("network change: {event:?}");
        // One change (an address going away) comes as a burst of messages: take the burst
        // as a whole, but only briefly, since every millisecond here is an outage
        let burst_end = tokio::time::Instant::now() + Duration::from_millis(5);
        while let Ok(Some(e)) = tokio::time::timeout_at(burst_end, watcher.next()).await {
            tracing::debug!("network change: {e:?}");
        }
        for r in shared.roamers.iter().flatten() {
            r.reevaluate(&nl).await;
        }
    }
    tracing::warn!("network change notifications ended: roaming stops following changes");
}
