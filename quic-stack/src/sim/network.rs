//! The N-node network: virtual clock, event queue, routing, impairments and tracing

use std::cmp::{Ordering, Reverse};
use std::collections::{BTreeMap, BinaryHeap};
use std::fmt;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::link::{DropReason, Link, LinkConfig, LinkStats};
use super::Node;
use crate::shared::{EcnCodepoint, RecvMeta, Transmit};

/// Environment variable that overrides a test's default seed (see [`seed_from_env`])
pub const SEED_ENV: &str = "QUICTUN_SIM_SEED";

/// The seed to use: `QUICTUN_SIM_SEED` when set and valid, else `default`
///
/// Lets a failing run be replayed without editing the test.
pub fn seed_from_env(default: u64) -> u64 {
    std::env::var(SEED_ENV)
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(default)
}

/// Index of a node in a [`Network`]
#[derive(Debug, Copy, Clone, Eq, PartialEq, Ord, PartialOrd, Hash)]
pub struct NodeId(pub usize);

/// What an interceptor learns about a datagram before the link sees it
#[derive(Debug, Copy, Clone, Eq, PartialEq)]
pub struct PacketInfo {
    /// Source address as the receiver will see it (after NAT)
    pub from: SocketAddr,
    /// Destination address
    pub to: SocketAddr,
    /// Sending node
    pub src: NodeId,
    /// Receiving node
    pub dst: NodeId,
    /// Virtual time of sending
    pub time: Instant,
    /// 0-based count of datagrams this sender has put on the wire (GSO segments count singly)
    pub index: u64,
}

/// An interceptor's decision
#[derive(Debug, Copy, Clone, Eq, PartialEq)]
pub enum Verdict {
    /// Let the datagram continue through the link model
    Deliver,
    /// Discard it (counted as [`DropReason::Interceptor`])
    Drop,
}

type Interceptor = Box<dyn FnMut(&PacketInfo, &mut Vec<u8>) -> Verdict>;

/// Kind of a recorded event
#[derive(Debug, Copy, Clone, Eq, PartialEq)]
pub enum TraceKind {
    /// A datagram left `node` towards `peer`
    Sent,
    /// A datagram from `peer` reached `node`
    Delivered,
    /// A datagram from `node` to `peer` was discarded
    Dropped(DropReason),
    /// `node`'s timer fired
    Timeout,
}

/// One entry of the event trace, used to prove determinism
#[derive(Debug, Copy, Clone, Eq, PartialEq)]
pub struct TraceEvent {
    /// Virtual time since the start of the run
    pub at: Duration,
    /// What happened
    pub kind: TraceKind,
    /// The node it happened at
    pub node: NodeId,
    /// The other address involved, if any
    pub peer: Option<SocketAddr>,
    /// Datagram length (0 for timeouts)
    pub len: usize,
    /// FNV-1a digest of the datagram bytes (0 for timeouts)
    pub digest: u64,
}

/// Why a run stopped without reaching its goal
#[derive(Debug, Clone, Eq, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum SimError {
    /// Nothing is left to happen but the predicate is still false
    #[error("simulation went idle after {elapsed:?} with the goal unmet (seed {seed})")]
    Idle {
        /// Seed of the run
        seed: u64,
        /// Virtual time elapsed
        elapsed: Duration,
    },
    /// The virtual time budget ran out
    #[error("virtual time limit reached at {elapsed:?} (seed {seed})")]
    TimeLimit {
        /// Seed of the run
        seed: u64,
        /// Virtual time elapsed
        elapsed: Duration,
    },
    /// Too many steps: something livelocks without advancing time
    #[error("step cap of {steps} reached at {elapsed:?}: livelock? (seed {seed})")]
    StepLimit {
        /// Seed of the run
        seed: u64,
        /// Steps taken
        steps: u64,
        /// Virtual time elapsed
        elapsed: Duration,
    },
    /// A node kept producing transmits at one instant
    #[error("node {node} produced more than {limit} transmits at {elapsed:?} (seed {seed})")]
    TransmitLimit {
        /// Seed of the run
        seed: u64,
        /// Offending node index
        node: usize,
        /// The cap
        limit: usize,
        /// Virtual time elapsed
        elapsed: Duration,
    },
}

/// Prints the seed if the test panics while the network is alive
struct SeedGuard(u64);

impl Drop for SeedGuard {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!(
                "sim: this run used seed {0}; replay with {SEED_ENV}={0}",
                self.0
            );
        }
    }
}

enum Event {
    Deliver {
        src: usize,
        dst: usize,
        to: SocketAddr,
        meta: RecvMeta,
        data: Vec<u8>,
    },
    Rebind {
        node: usize,
        external: SocketAddr,
    },
}

struct Scheduled {
    at: Instant,
    seq: u64,
    event: Event,
}

// Ordered by (time, insertion order) only: ties resolve in FIFO order, deterministically
impl PartialEq for Scheduled {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}
impl Eq for Scheduled {}
impl PartialOrd for Scheduled {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Scheduled {
    fn cmp(&self, other: &Self) -> Ordering {
        (self.at, self.seq).cmp(&(other.at, other.seq))
    }
}

struct Slot<N> {
    node: N,
    /// Address the node is bound to (reported as `RecvMeta::local_ip`)
    addr: SocketAddr,
    /// Address its datagrams appear to come from (differs from `addr` behind a NAT)
    external: SocketAddr,
    /// Further addresses the node listens on (a server's second socket)
    aliases: Vec<SocketAddr>,
    sent_index: u64,
}

/// Outcome of one [`Network::advance`]
#[derive(Debug, Copy, Clone, Eq, PartialEq)]
pub(crate) enum Advance {
    Progressed,
    Idle,
    Beyond,
}

/// A set of nodes joined by per-direction links, driven on a virtual clock
pub struct Network<N> {
    seed: u64,
    rng: ChaCha8Rng,
    base: Instant,
    now: Instant,
    nodes: Vec<Slot<N>>,
    links: BTreeMap<(usize, usize), Link>,
    default_link: LinkConfig,
    queue: BinaryHeap<Reverse<Scheduled>>,
    next_seq: u64,
    /// Deliveries in `queue` (the rest are scheduled rebindings)
    in_flight: usize,
    interceptor: Option<Interceptor>,
    trace: Option<Vec<TraceEvent>>,
    unroutable: u64,
    steps: u64,
    buf: Vec<u8>,
    /// Step cap across the whole run; reaching it fails with [`SimError::StepLimit`]
    pub max_steps: u64,
    /// Cap on transmits one node may produce at one instant
    pub max_transmits_per_step: usize,
    /// `max_datagrams` passed to [`Node::poll_transmit`] (GSO batch size)
    pub max_datagrams: usize,
    _guard: SeedGuard,
}

impl<N: Node> Network<N> {
    /// An empty network whose randomness comes only from `seed`
    pub fn new(seed: u64) -> Self {
        // The only real clock read: everything after is a virtual offset from here
        let base = Instant::now();
        Self {
            seed,
            rng: ChaCha8Rng::seed_from_u64(seed),
            base,
            now: base,
            nodes: Vec::new(),
            links: BTreeMap::new(),
            default_link: LinkConfig::default(),
            queue: BinaryHeap::new(),
            next_seq: 0,
            in_flight: 0,
            interceptor: None,
            trace: None,
            unroutable: 0,
            steps: 0,
            buf: Vec::with_capacity(64 * 1024),
            max_steps: 10_000_000,
            max_transmits_per_step: 100_000,
            max_datagrams: 10,
            _guard: SeedGuard(seed),
        }
    }

    /// The seed of this run
    pub fn seed(&self) -> u64 {
        self.seed
    }
    /// The current virtual time
    pub fn now(&self) -> Instant {
        self.now
    }
    /// The virtual time at which the run started
    pub fn start(&self) -> Instant {
        self.base
    }
    /// Virtual time elapsed since the start
    pub fn elapsed(&self) -> Duration {
        self.now - self.base
    }
    /// The shared RNG, for tests that need randomness tied to the seed
    pub fn rng(&mut self) -> &mut ChaCha8Rng {
        &mut self.rng
    }

    /// Add a node bound to `addr`
    pub fn add_node(&mut self, node: N, addr: SocketAddr) -> NodeId {
        self.nodes.push(Slot {
            node,
            addr,
            external: addr,
            aliases: Vec::new(),
            sent_index: 0,
        });
        NodeId(self.nodes.len() - 1)
    }
    /// Number of nodes
    pub fn len(&self) -> usize {
        self.nodes.len()
    }
    /// True without nodes
    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }
    /// A node (panics on an id this network did not hand out: a test bug)
    pub fn node(&self, id: NodeId) -> &N {
        &self.nodes[id.0].node
    }
    /// A node, mutably
    pub fn node_mut(&mut self, id: NodeId) -> &mut N {
        &mut self.nodes[id.0].node
    }
    /// The address a node is bound to
    pub fn addr(&self, id: NodeId) -> SocketAddr {
        self.nodes[id.0].addr
    }
    /// The address a node's datagrams appear to come from
    pub fn external_addr(&self, id: NodeId) -> SocketAddr {
        self.nodes[id.0].external
    }

    /// Move a node to a new address (it re-binds; peers see the new one)
    pub fn set_addr(&mut self, id: NodeId, addr: SocketAddr) {
        let slot = &mut self.nodes[id.0];
        slot.addr = addr;
        slot.external = addr;
    }
    /// The node also listens on `addr`, as a server with a second socket (e.g. on its
    /// preferred address); a transmit whose `src_ip` is that address's IP leaves from it
    pub fn add_alias(&mut self, id: NodeId, addr: SocketAddr) {
        self.nodes[id.0].aliases.push(addr);
    }

    /// NAT rebinding now: the node's datagrams appear to come from `external`
    ///
    /// The old mapping stops routing, so datagrams sent to it are dropped as
    /// [`DropReason::NoRoute`].
    pub fn rebind(&mut self, id: NodeId, external: SocketAddr) {
        self.nodes[id.0].external = external;
    }
    /// NAT rebinding at virtual time `at` (applied before deliveries due at that time)
    pub fn rebind_at(&mut self, id: NodeId, at: Instant, external: SocketAddr) {
        self.schedule(
            at,
            Event::Rebind {
                node: id.0,
                external,
            },
        );
    }

    /// Configuration used for links not configured explicitly
    pub fn set_default_link(&mut self, config: LinkConfig) {
        self.default_link = config;
    }
    /// The link carrying datagrams from `from` to `to` (created from the default if new)
    pub fn link_mut(&mut self, from: NodeId, to: NodeId) -> &mut Link {
        let default = &self.default_link;
        self.links
            .entry((from.0, to.0))
            .or_insert_with(|| Link::new(default.clone()))
    }
    /// Configure the link from `from` to `to`
    pub fn set_link(&mut self, from: NodeId, to: NodeId, config: LinkConfig) {
        self.link_mut(from, to).config = config;
    }
    /// Configure both directions between `a` and `b` alike
    pub fn set_path(&mut self, a: NodeId, b: NodeId, config: LinkConfig) {
        self.set_link(a, b, config.clone());
        self.set_link(b, a, config);
    }
    /// Counters of the link from `from` to `to` (zero if it never carried anything)
    pub fn stats(&self, from: NodeId, to: NodeId) -> LinkStats {
        self.links
            .get(&(from.0, to.0))
            .map(|l| l.stats.clone())
            .unwrap_or_default()
    }
    /// Datagrams addressed to no node (or to a stale NAT mapping)
    pub fn unroutable(&self) -> u64 {
        self.unroutable
    }
    /// Datagrams currently in flight
    pub fn in_flight(&self) -> usize {
        self.in_flight
    }

    /// Install an interceptor that sees (and may modify or drop) every routed datagram
    pub fn set_interceptor<F>(&mut self, f: F)
    where
        F: FnMut(&PacketInfo, &mut Vec<u8>) -> Verdict + 'static,
    {
        self.interceptor = Some(Box::new(f));
    }
    /// Remove the interceptor
    pub fn clear_interceptor(&mut self) {
        self.interceptor = None;
    }

    /// Start recording a [`TraceEvent`] for every send, delivery, drop and timeout
    pub fn enable_trace(&mut self) {
        self.trace.get_or_insert_with(Vec::new);
    }
    /// The recorded trace (empty unless enabled)
    pub fn trace(&self) -> &[TraceEvent] {
        self.trace.as_deref().unwrap_or(&[])
    }

    /// The earliest pending event: a delivery, a rebinding or a node timeout
    pub fn next_event_time(&mut self) -> Option<Instant> {
        let queued = self.queue.peek().map(|s| s.0.at);
        let timers = self.nodes.iter_mut().filter_map(|s| s.node.poll_timeout());
        queued.into_iter().chain(timers).min()
    }

    /// Run until `pred` holds, for at most `limit` of virtual time
    pub fn run_until<F>(&mut self, mut pred: F, limit: Duration) -> Result<(), SimError>
    where
        F: FnMut(&mut Self) -> bool,
    {
        let deadline = self.now + limit;
        loop {
            if pred(self) {
                return Ok(());
            }
            match self.advance(deadline)? {
                Advance::Progressed => {}
                Advance::Idle => return Err(self.idle_error()),
                Advance::Beyond => return Err(self.time_limit_error()),
            }
        }
    }

    /// Run until nothing is in flight and no timer is due within `quiet`, or fail after `limit`
    ///
    /// Long-term timers (idle timeouts, keep-alives) beyond `quiet` do not keep the run going.
    pub fn drive(&mut self, quiet: Duration, limit: Duration) -> Result<(), SimError> {
        let deadline = self.now + limit;
        loop {
            self.flush()?;
            // Scheduled rebindings alone do not keep the run going
            let quiescent =
                self.in_flight == 0 && self.next_event_time().is_none_or(|t| t > self.now + quiet);
            if quiescent {
                return Ok(());
            }
            match self.advance(deadline)? {
                Advance::Progressed => {}
                Advance::Idle => return Ok(()),
                Advance::Beyond => return Err(self.time_limit_error()),
            }
        }
    }

    /// Process every event due by `at`, then move the clock to `at`
    pub fn run_to(&mut self, at: Instant) -> Result<(), SimError> {
        while self.advance(at)? == Advance::Progressed {}
        self.now = self.now.max(at);
        Ok(())
    }

    /// One step: send what nodes have queued, jump to the next event, process everything due
    ///
    /// Never moves the clock past `horizon`; returns [`Advance::Beyond`] instead.
    pub(crate) fn advance(&mut self, horizon: Instant) -> Result<Advance, SimError> {
        self.steps += 1;
        if self.steps > self.max_steps {
            return Err(SimError::StepLimit {
                seed: self.seed,
                steps: self.max_steps,
                elapsed: self.elapsed(),
            });
        }
        // 1. Outputs first: a node's transmits leave at the time they were produced.
        self.flush()?;
        // 2. Jump the clock to the earliest event; it never runs backwards.
        let Some(next) = self.next_event_time() else {
            return Ok(Advance::Idle);
        };
        if next > horizon {
            return Ok(Advance::Beyond);
        }
        self.now = self.now.max(next);
        // 3. Deliveries and rebindings due by now, in (time, insertion) order.
        while self.queue.peek().is_some_and(|s| s.0.at <= self.now) {
            if let Some(Reverse(s)) = self.queue.pop() {
                if matches!(s.event, Event::Deliver { .. }) {
                    self.in_flight -= 1;
                }
                self.process(s.event);
            }
        }
        // 4. Timers, in node order, so ties resolve identically every run.
        for i in 0..self.nodes.len() {
            let slot = &mut self.nodes[i];
            if slot.node.poll_timeout().is_some_and(|t| t <= self.now) {
                slot.node.handle_timeout(self.now);
                self.record(TraceKind::Timeout, i, None, &[]);
            }
        }
        Ok(Advance::Progressed)
    }

    /// Drain every node's transmits at the current time onto the links
    fn flush(&mut self) -> Result<(), SimError> {
        let mut buf = std::mem::take(&mut self.buf);
        for i in 0..self.nodes.len() {
            let mut count = 0;
            while let Some(t) =
                self.nodes[i]
                    .node
                    .poll_transmit(self.now, self.max_datagrams, &mut buf)
            {
                count += 1;
                if count > self.max_transmits_per_step {
                    self.buf = buf;
                    return Err(SimError::TransmitLimit {
                        seed: self.seed,
                        node: i,
                        limit: self.max_transmits_per_step,
                        elapsed: self.elapsed(),
                    });
                }
                self.send_transmit(i, &t, &buf);
            }
        }
        self.buf = buf;
        Ok(())
    }

    /// Split a (possibly GSO) transmit into wire datagrams
    fn send_transmit(&mut self, src: usize, t: &Transmit, buf: &[u8]) {
        let payload = &buf[..t.size.min(buf.len())];
        let segment = match t.segment_size {
            Some(s) if s > 0 => s,
            _ => payload.len().max(1),
        };
        for datagram in payload.chunks(segment) {
            self.send_datagram(src, t.destination, t.src_ip, t.ecn, datagram);
        }
    }

    /// Route one datagram and apply the link model, in the order a real path would
    fn send_datagram(
        &mut self,
        src: usize,
        to: SocketAddr,
        src_ip: Option<std::net::IpAddr>,
        ecn: Option<EcnCodepoint>,
        bytes: &[u8],
    ) {
        let slot = &self.nodes[src];
        let from = src_ip
            .and_then(|ip| slot.aliases.iter().find(|a| a.ip() == ip).copied())
            .unwrap_or(slot.external);
        let index = self.nodes[src].sent_index;
        self.nodes[src].sent_index += 1;
        self.record(TraceKind::Sent, src, Some(to), bytes);
        let Some(dst) = self.route(to) else {
            self.unroutable += 1;
            self.record(
                TraceKind::Dropped(DropReason::NoRoute),
                src,
                Some(to),
                bytes,
            );
            return;
        };
        let mut data = bytes.to_vec();
        let now = self.now;
        let at = now - self.base;
        let default = &self.default_link;
        let link = self
            .links
            .entry((src, dst))
            .or_insert_with(|| Link::new(default.clone()));
        link.stats.sent += 1;
        link.stats.sent_bytes += data.len() as u64;

        // Interceptor first: it sees the datagram exactly as the sender produced it.
        let mut verdict = Verdict::Deliver;
        if let Some(f) = self.interceptor.as_mut() {
            let info = PacketInfo {
                from,
                to,
                src: NodeId(src),
                dst: NodeId(dst),
                time: now,
                index,
            };
            verdict = f(&info, &mut data);
        }
        let rng = &mut self.rng;
        let cfg = &link.config;
        let drop = if verdict == Verdict::Drop {
            Some(DropReason::Interceptor)
        } else if cfg.blackhole {
            Some(DropReason::Blackhole)
        } else if data.len() > cfg.mtu {
            Some(DropReason::Mtu)
        } else if chance(rng, cfg.loss) {
            Some(DropReason::Loss)
        } else {
            None
        };
        // The bottleneck queue: only datagrams that survived so far occupy it.
        let departed = match drop {
            None => link.enqueue(now, data.len()),
            Some(_) => None,
        };
        let departed = match (drop, departed) {
            (None, Some(t)) => t,
            (reason, _) => {
                // Without another reason, the queue refused it
                let reason = reason.unwrap_or(DropReason::QueueFull);
                link.stats.count_drop(reason);
                push_trace(
                    &mut self.trace,
                    at,
                    TraceKind::Dropped(reason),
                    src,
                    Some(to),
                    &data,
                );
                return;
            }
        };
        let cfg = &link.config;
        if !data.is_empty() && chance(rng, cfg.corrupt) {
            let i = rng.gen_range(0..data.len());
            data[i] ^= rng.gen_range(1..=255u8);
            link.stats.corrupted += 1;
        }
        let mut ecn = ecn;
        if matches!(ecn, Some(EcnCodepoint::Ect0 | EcnCodepoint::Ect1)) && chance(rng, cfg.ce_mark)
        {
            ecn = Some(EcnCodepoint::Ce);
            link.stats.ce_marked += 1;
        }
        let copies = if chance(rng, cfg.duplicate) {
            link.stats.duplicated += 1;
            2
        } else {
            1
        };
        let (delay, jitter) = (cfg.delay, cfg.jitter);
        let meta = RecvMeta {
            remote: from,
            local_ip: None, // filled in on delivery: the receiver may move meanwhile
            ecn,
        };
        for copy in 0..copies {
            let extra = if jitter.is_zero() {
                Duration::ZERO
            } else {
                let max = u64::try_from(jitter.as_nanos()).unwrap_or(u64::MAX);
                Duration::from_nanos(self.rng.gen_range(0..=max))
            };
            let data = if copy + 1 == copies {
                std::mem::take(&mut data)
            } else {
                data.clone()
            };
            self.schedule(
                departed + delay + extra,
                Event::Deliver {
                    src,
                    dst,
                    to,
                    meta,
                    data,
                },
            );
        }
    }

    fn process(&mut self, event: Event) {
        match event {
            Event::Rebind { node, external } => {
                if let Some(slot) = self.nodes.get_mut(node) {
                    slot.external = external;
                }
            }
            Event::Deliver {
                src,
                dst,
                to,
                mut meta,
                mut data,
            } => {
                // Re-route on arrival: a receiver that moved (or a NAT mapping that changed)
                // while the datagram was in flight no longer gets it.
                if self.route(to) != Some(dst) {
                    if let Some(link) = self.links.get_mut(&(src, dst)) {
                        link.stats.count_drop(DropReason::NoRoute);
                    }
                    self.record(
                        TraceKind::Dropped(DropReason::NoRoute),
                        src,
                        Some(to),
                        &data,
                    );
                    return;
                }
                if let Some(link) = self.links.get_mut(&(src, dst)) {
                    link.stats.delivered += 1;
                    link.stats.delivered_bytes += data.len() as u64;
                }
                self.record(TraceKind::Delivered, dst, Some(meta.remote), &data);
                let slot = &mut self.nodes[dst];
                meta.local_ip = Some(if slot.aliases.contains(&to) {
                    to.ip()
                } else {
                    slot.addr.ip()
                });
                slot.node.handle_datagram(self.now, meta, &mut data);
            }
        }
    }

    /// The node reachable at `to`: its current public mapping (its bound address unless NATed)
    ///
    /// A NATed node's bound address is private, so it is not reachable directly.
    fn route(&self, to: SocketAddr) -> Option<usize> {
        self.nodes
            .iter()
            .position(|s| s.external == to || s.aliases.contains(&to))
    }

    fn schedule(&mut self, at: Instant, event: Event) {
        if matches!(event, Event::Deliver { .. }) {
            self.in_flight += 1;
        }
        let seq = self.next_seq;
        self.next_seq += 1;
        self.queue.push(Reverse(Scheduled { at, seq, event }));
    }

    fn record(&mut self, kind: TraceKind, node: usize, peer: Option<SocketAddr>, data: &[u8]) {
        let at = self.now - self.base;
        push_trace(&mut self.trace, at, kind, node, peer, data);
    }

    pub(crate) fn idle_error(&self) -> SimError {
        SimError::Idle {
            seed: self.seed,
            elapsed: self.elapsed(),
        }
    }

    pub(crate) fn time_limit_error(&self) -> SimError {
        SimError::TimeLimit {
            seed: self.seed,
            elapsed: self.elapsed(),
        }
    }
}

impl<N> fmt::Debug for Network<N> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Network")
            .field("seed", &self.seed)
            .field("elapsed", &(self.now - self.base))
            .field("nodes", &self.nodes.len())
            .field("queued", &self.queue.len())
            .field("steps", &self.steps)
            .finish()
    }
}

/// True with probability `p`; out-of-range and NaN probabilities are clamped, never panic
fn chance(rng: &mut ChaCha8Rng, p: f64) -> bool {
    // Draw only when p > 0 so a lossless link consumes no randomness: enabling one impairment
    // then does not perturb the others' random sequence more than necessary.
    p > 0.0 && rng.gen::<f64>() < p
}

/// Append to the trace if tracing is on (a free function so callers can hold other fields)
fn push_trace(
    trace: &mut Option<Vec<TraceEvent>>,
    at: Duration,
    kind: TraceKind,
    node: usize,
    peer: Option<SocketAddr>,
    data: &[u8],
) {
    if let Some(trace) = trace.as_mut() {
        trace.push(TraceEvent {
            at,
            kind,
            node: NodeId(node),
            peer,
            len: data.len(),
            digest: fnv1a(data),
        });
    }
}

fn fnv1a(data: &[u8]) -> u64 {
    data.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}
