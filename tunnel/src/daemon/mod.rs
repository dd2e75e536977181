//! Data path skeleton: moves packets between a [`TunDevice`] and per-peer [`PacketLink`]s, with
//! every decision made by the sans-IO [`Router`]
//!
//! Tasks:
//! - one TUN reader (the TUN is shared by all peers, so reading it per peer would race): read a
//!   batch, route each packet, hand it to its peer's link, write Packet Too Big replies back into
//!   the TUN;
//! - one link reader per peer: receive a batch from the link, check each packet's source
//!   against the peer's allowed IPs, write the accepted ones into the TUN as a batch.
//!
//! The integrator supplies the QUIC connection as a `PacketLink` (datagrams, or streams through
//! [`PacketLink::send_on_stream`]) and netdev's ICMP synthesis as a [`PtbBuilder`]. Reconnecting
//! a dead link is the link's business: a closed link ends only its own reader task, and the TUN
//! stays up so applications see a pause rather than an interface flap.

use std::future::Future;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use bytes::Bytes;
use netdev::TunDevice;
use tokio::task::JoinSet;

use crate::carriage::{flow_stream_index, Carriage};
use crate::control::{PeerState, PeerStatus, Status};
use crate::router::{Inbound, Outbound, PeerId, Router};

/// Errors of a [`PacketLink`]
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum LinkError {
    /// The connection is closed for good (the reader task for this peer ends)
    #[error("link closed")]
    Closed,
    /// The packet exceeds the link's current limit
    #[error("packet of {len} bytes exceeds the link limit of {max}")]
    TooLarge {
        /// Packet length
        len: usize,
        /// Current limit
        max: usize,
    },
    /// This link cannot carry packets on streams
    #[error("stream carriage not supported by this link")]
    StreamsUnsupported,
    /// Transient failure; the packet is lost but the link lives on
    #[error("link: {0}")]
    Other(String),
}

/// A bidirectional packet pipe to one peer (in production: a QUIC connection)
///
/// Implementations are shared by a sending and a receiving task at once.
pub trait PacketLink: Send + Sync + 'static {
    /// Send one inner IP packet as a datagram
    fn send(&self, packet: Bytes) -> impl Future<Output = Result<(), LinkError>> + Send;
    /// Receive one inner IP packet
    fn recv(&self) -> impl Future<Output = Result<Bytes, LinkError>> + Send;
    /// Current largest packet [`send`](Self::send) accepts (the connection's max datagram
    /// payload, which PMTUD and migration may change); 0 when datagrams are unavailable
    fn max_packet_size(&self) -> usize;
    /// Send one packet framed on stream number `stream` (see [`crate::carriage`])
    fn send_on_stream(
        &self,
        packet: Bytes,
        stream: usize,
    ) -> impl Future<Output = Result<(), LinkError>> + Send {
        let _ = (packet, stream);
        async { Err(LinkError::StreamsUnsupported) }
    }
    /// Batching hook: send several datagrams at once, draining `packets` (default: one by one).
    /// Returns how many the link refused; the others are on their way.
    fn send_batch(&self, packets: &mut Vec<Bytes>) -> impl Future<Output = usize> + Send {
        async move {
            let mut failed = 0;
            for p in packets.drain(..) {
                if self.send(p).await.is_err() {
                    failed += 1;
                }
            }
            failed
        }
    }
    /// Batching hook: receive one or more packets into `out` (default: exactly one)
    fn recv_batch(
        &self,
        out: &mut Vec<Bytes>,
        max: usize,
    ) -> impl Future<Output = Result<(), LinkError>> + Send {
        let _ = max;
        async move {
            out.push(self.recv().await?);
            Ok(())
        }
    }
}

/// Builds an ICMP/ICMPv6 Packet Too Big reply to `original`, announcing `mtu`, sent from `from`
///
/// netdev provides `netdev::icmp::packet_too_big`; any `Fn` of the same shape works.
pub trait PtbBuilder: Send + Sync + 'static {
    /// The reply packet, or `None` when none should be sent (e.g. `original` is itself ICMP error)
    fn packet_too_big(&self, original: &[u8], mtu: u32, from: IpAddr) -> Option<Vec<u8>>;
}

impl<F> PtbBuilder for F
where
    F: Fn(&[u8], u32, IpAddr) -> Option<Vec<u8>> + Send + Sync + 'static,
{
    fn packet_too_big(&self, original: &[u8], mtu: u32, from: IpAddr) -> Option<Vec<u8>> {
        self(original, mtu, from)
    }
}

/// Errors that end the data path
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DaemonError {
    /// Reading or writing the TUN failed
    #[error("tun {iface}: {source}")]
    Tun {
        /// Interface name
        iface: String,
        /// OS error
        source: std::io::Error,
    },
}

/// Tuning and addressing for the data path
#[derive(Debug, Clone)]
pub struct DaemonOptions {
    /// Packets per TUN read batch
    pub batch: usize,
    /// Buffer size per packet (at least the TUN MTU; more with offload)
    pub buf_size: usize,
    /// Our IPv4 tunnel address, the source of ICMP Packet Too Big
    pub local_v4: Option<IpAddr>,
    /// Our IPv6 tunnel address, the source of ICMPv6 Packet Too Big
    pub local_v6: Option<IpAddr>,
    /// Streams per peer for stream carriage
    pub streams: usize,
}

impl Default for DaemonOptions {
    fn default() -> Self {
        Self {
            // As many buffers as an offloaded TUN splits a super-packet into, each large
            // enough for any packet: netdev then splits straight into them (one copy fewer)
            batch: netdev::RECV_BATCH,
            buf_size: netdev::RECV_BUF_SIZE,
            local_v4: None,
            local_v6: None,
            streams: 4,
        }
    }
}

impl DaemonOptions {
    /// Options from a validated configuration: ICMP sources are the first tunnel address of
    /// each family; buffers fit the largest packet the MTU allows
    pub fn from_config(config: &crate::config::Config) -> Self {
        let first = |v4: bool| {
            config
                .interface
                .addresses
                .iter()
                .find(|n| n.addr().is_ipv4() == v4)
                .map(|n| n.addr())
        };
        Self {
            local_v4: first(true),
            local_v6: first(false),
            streams: config.quic.streams,
            ..Self::default()
        }
    }
}

/// Link-level counters kept by the daemon (the router counts routing decisions)
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct LinkCounters {
    /// Packets the link refused to send
    pub send_errors: u64,
    /// Packet Too Big replies the builder declined to produce
    pub ptb_unbuilt: u64,
}

/// Shared state of a running data path
struct Shared<T> {
    tun: Arc<T>,
    router: Arc<Mutex<Router>>,
    ptb: Arc<dyn PtbBuilder>,
    opts: DaemonOptions,
    counters: Mutex<LinkCounters>,
}

fn lock<X>(m: &Mutex<X>) -> MutexGuard<'_, X> {
    // A panic in another task must not wedge the data path: counters stay usable
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// The data path of one tunnel interface
pub struct Daemon<T: TunDevice, L: PacketLink> {
    shared: Arc<Shared<T>>,
    links: Arc<Vec<Arc<L>>>,
}

impl<T: TunDevice, L: PacketLink> Daemon<T, L> {
    /// A data path over `tun` with `links[i]` carrying the router's peer `i`
    pub fn new(
        tun: Arc<T>,
        router: Router,
        links: Vec<Arc<L>>,
        ptb: Arc<dyn PtbBuilder>,
        opts: DaemonOptions,
    ) -> Self {
        Self {
            shared: Arc::new(Shared {
                tun,
                router: Arc::new(Mutex::new(router)),
                ptb,
                opts,
                counters: Mutex::new(LinkCounters::default()),
            }),
            links: Arc::new(links),
        }
    }

    /// The router, for status and for following MTU changes
    pub fn router(&self) -> Arc<Mutex<Router>> {
        self.shared.router.clone()
    }

    /// Link-level counters so far
    pub fn link_counters(&self) -> LinkCounters {
        *lock(&self.shared.counters)
    }

    /// Spawn the TUN reader and one reader per link; the set ends when the TUN fails or is
    /// aborted (dropping the set stops everything)
    pub fn spawn(&self) -> JoinSet<Result<(), DaemonError>> {
        let mut set = JoinSet::new();
        set.spawn(tun_to_links(self.shared.clone(), self.links.clone()));
        for (i, link) in self.links.iter().enumerate() {
            set.spawn(link_to_tun(self.shared.clone(), PeerId(i), link.clone()));
        }
        set
    }

    /// Run until the TUN fails
    pub async fn run(&self) -> Result<(), DaemonError> {
        let mut set = self.spawn();
        while let Some(done) = set.join_next().await {
            if let Ok(Err(e)) = done {
                return Err(e);
            }
        }
        Ok(())
    }
}

async fn tun_to_links<T: TunDevice, L: PacketLink>(
    shared: Arc<Shared<T>>,
    links: Arc<Vec<Arc<L>>>,
) -> Result<(), DaemonError> {
    let batch = shared.opts.batch.max(1);
    let mut bufs = vec![vec![0u8; shared.opts.buf_size]; batch];
    let mut sizes = vec![0usize; batch];
    let mut pool = bytes::BytesMut::new();
    let mut per_peer: Vec<Vec<Bytes>> = links.iter().map(|_| Vec::with_capacity(batch)).collect();
    let tun_err = |source| DaemonError::Tun {
        iface: shared.tun.name().to_string(),
        source,
    };
    loop {
        // Step 1: one batch from the TUN
        let n = shared
            .tun
            .recv_batch(&mut bufs, &mut sizes)
            .await
            .map_err(tun_err)?;
        // Step 2: decide for the whole batch under one lock, with fresh datagram limits
        let now = Instant::now();
        let decisions: Vec<Outbound> = {
            let mut router = lock(&shared.router);
            for (i, link) in links.iter().enumerate() {
                let max = link.max_packet_size();
                router.set_max_datagram(PeerId(i), (max > 0).then_some(max));
            }
            (0..n)
                .map(|i| router.route_outbound(&bufs[i][..sizes[i]], now))
                .collect()
        };
        // Step 3: act: queue datagrams per peer (sent as one batch below), write stream
        // packets, answer with Packet Too Big, or nothing (already counted). All packets of
        // the batch are copied into one shared buffer: one allocation per batch, not per packet.
        let total: usize = sizes[..n].iter().sum();
        pool.reserve(total);
        let mut replies: Vec<Vec<u8>> = Vec::new();
        for (i, decision) in decisions.into_iter().enumerate() {
            let packet = &bufs[i][..sizes[i]];
            match decision {
                Outbound::Send { peer, carriage } => {
                    let Some(link) = links.get(peer.0) else {
                        continue;
                    };
                    pool.extend_from_slice(packet);
                    let bytes = pool.split().freeze();
                    match carriage {
                        Carriage::Datagram => {
                            if let Some(q) = per_peer.get_mut(peer.0) {
                                q.push(bytes);
                            }
                        }
                        Carriage::Stream => {
                            let s = flow_stream_index(packet, shared.opts.streams);
                            if let Err(e) = link.send_on_stream(bytes, s).await {
                                lock(&shared.counters).send_errors += 1;
                                tracing::trace!(peer = peer.0, "send failed: {e}");
                            }
                        }
                    }
                }
                Outbound::TooBig { mtu } => {
                    let from = match packet.first().map(|b| b >> 4) {
                        Some(4) => shared.opts.local_v4,
                        _ => shared.opts.local_v6,
                    };
                    match from.and_then(|f| shared.ptb.packet_too_big(packet, mtu, f)) {
                        Some(reply) => replies.push(reply),
                        None => lock(&shared.counters).ptb_unbuilt += 1,
                    }
                }
                Outbound::Drop(_) => {}
            }
        }
        for (link, q) in links.iter().zip(per_peer.iter_mut()) {
            if !q.is_empty() {
                let failed = link.send_batch(q).await;
                q.clear();
                if failed > 0 {
                    lock(&shared.counters).send_errors += failed as u64;
                }
            }
        }
        if !replies.is_empty() {
            let refs: Vec<&[u8]> = replies.iter().map(Vec::as_slice).collect();
            shared.tun.send_batch(&refs).await.map_err(tun_err)?;
        }
    }
}

async fn link_to_tun<T: TunDevice, L: PacketLink>(
    shared: Arc<Shared<T>>,
    peer: PeerId,
    link: Arc<L>,
) -> Result<(), DaemonError> {
    let batch = shared.opts.batch.max(1);
    let mut got: Vec<Bytes> = Vec::with_capacity(batch);
    loop {
        got.clear();
        match link.recv_batch(&mut got, batch).await {
            Ok(()) => {}
            Err(LinkError::Closed) => return Ok(()),
            Err(e) => {
                tracing::trace!(peer = peer.0, "recv failed: {e}");
                continue;
            }
        }
        let accepted: Vec<&[u8]> = {
            let mut router = lock(&shared.router);
            got.iter()
                .filter(|p| router.accept_inbound(peer, p) == Inbound::Deliver)
                .map(|p| &p[..])
                .collect()
        };
        if !accepted.is_empty() {
            shared
                .tun
                .send_batch(&accepted)
                .await
                .map_err(|source| DaemonError::Tun {
                    iface: shared.tun.name().to_string(),
                    source,
                })?;
        }
    }
}

/// Status from the router's counters; the integrator fills in connection details (endpoint,
/// RTT, cwnd, migrations, handshake age) from the QUIC connections
pub fn status_from_router(
    router: &Router,
    interface: &str,
    role: &str,
    uptime_secs: u64,
    state: impl Fn(PeerId) -> PeerState,
) -> Status {
    let stats = router.stats();
    let peers = (0..router.peer_count())
        .filter_map(|i| {
            let spec = router.peer(PeerId(i))?;
            let c = stats.peers.get(i).copied().unwrap_or_default();
            Some(PeerStatus::from_counters(&spec.name, state(PeerId(i)), &c))
        })
        .collect();
    Status {
        interface: interface.to_string(),
        role: role.to_string(),
        mtu: router.tunnel_mtu() as u64,
        uptime_secs,
        peers,
        drops: stats.drops,
        ptb_sent: stats.ptb_sent,
        ptb_rate_limited: stats.ptb_rate_limited,
    }
}

#[cfg(test)]
mod tests;
