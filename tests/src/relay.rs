//! A userspace UDP impairment relay: delay, jitter (reordering), loss, duplication, a rate limit
//! and NAT rebinding, for a kernel without `netem`
//!
//! Two layers:
//! - sans-IO: [`Scheduler`] decides, from `(now, datagram)`, which copies of a datagram leave and
//!   when; [`RebindSchedule`] decides when the relay's upstream-facing address changes. Both are
//!   seeded/deterministic and unit-tested without sockets or clocks.
//! - I/O: [`Relay::spawn`] runs a small tokio loop on its own thread. Clients talk to one listen
//!   address; each client gets its own upstream socket (like a NAT mapping), which a rebind
//!   replaces with a fresh one on a new port (and, if configured, the next local address).
//!
//! Sockets are created in the network namespace of the thread calling [`Relay::spawn`] (the
//! relay thread inherits it), so `host.run(|| Relay::spawn(cfg))` puts the relay in `host`.

use std::cmp::{Ordering, Reverse};
use std::collections::{BinaryHeap, HashMap};
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering as AtomicOrdering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use tokio::net::UdpSocket;
use tokio::sync::{mpsc, oneshot};

/// Which way a datagram travels through the relay
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Direction {
    /// From a client towards the upstream server
    ToServer,
    /// From the upstream server back to a client
    ToClient,
}

impl Direction {
    fn index(self) -> usize {
        match self {
            Self::ToServer => 0,
            Self::ToClient => 1,
        }
    }
}

/// What the relay does to every datagram (applied independently in each direction)
#[derive(Debug, Clone, PartialEq)]
pub struct Impairment {
    /// Base one-way delay
    pub delay: Duration,
    /// Each copy's delay is drawn uniformly from `delay ± jitter` (clamped at zero); independent
    /// draws are what reorder packets
    pub jitter: Duration,
    /// Probability in [0, 1] that a datagram is dropped on arrival
    pub loss: f64,
    /// Probability in [0, 1] that a forwarded datagram is sent twice
    pub duplicate: f64,
    /// Optional bottleneck rate in bytes per second (per direction); `None` = unlimited
    pub rate: Option<u64>,
    /// With a rate limit: the longest a datagram may wait for the bottleneck before it is
    /// tail-dropped (the queue size, in time)
    pub queue_limit: Duration,
}

impl Default for Impairment {
    fn default() -> Self {
        Self {
            delay: Duration::ZERO,
            jitter: Duration::ZERO,
            loss: 0.0,
            duplicate: 0.0,
            rate: None,
            queue_limit: Duration::from_millis(100),
        }
    }
}

/// Counters of the sans-IO scheduler
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SchedulerStats {
    /// Datagrams pushed in
    pub received: u64,
    /// Dropped by random loss
    pub lost: u64,
    /// Dropped because the rate-limited queue was full
    pub queue_dropped: u64,
    /// Extra copies scheduled by duplication
    pub duplicated: u64,
    /// Copies handed out by [`Scheduler::poll`]
    pub emitted: u64,
}

#[derive(Debug)]
struct Pending<P> {
    at: Instant,
    // Tie-breaker: equal deadlines leave in arrival order, which keeps a jitter-free relay FIFO.
    seq: u64,
    dir: Direction,
    payload: P,
}

impl<P> PartialEq for Pending<P> {
    fn eq(&self, other: &Self) -> bool {
        self.at == other.at && self.seq == other.seq
    }
}
impl<P> Eq for Pending<P> {}
impl<P> PartialOrd for Pending<P> {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl<P> Ord for Pending<P> {
    fn cmp(&self, other: &Self) -> Ordering {
        (self.at, self.seq).cmp(&(other.at, other.seq))
    }
}

/// Sans-IO impairment schedule: push datagrams with their arrival time, poll out the copies that
/// are due
///
/// Deterministic for a given seed and input sequence.
#[derive(Debug)]
pub struct Scheduler<P> {
    imp: Impairment,
    rng: ChaCha8Rng,
    queue: BinaryHeap<Reverse<Pending<P>>>,
    seq: u64,
    // When each direction's bottleneck finishes sending what is queued (rate limit only).
    link_free: [Option<Instant>; 2],
    stats: SchedulerStats,
}

impl<P: Clone> Scheduler<P> {
    /// A scheduler applying `imp`, with its random choices drawn from `seed`
    pub fn new(imp: Impairment, seed: u64) -> Self {
        Self {
            imp,
            rng: ChaCha8Rng::seed_from_u64(seed),
            queue: BinaryHeap::new(),
            seq: 0,
            link_free: [None; 2],
            stats: SchedulerStats::default(),
        }
    }

    /// A datagram of `len` bytes arrived at `now`; returns the times its copies will leave
    /// (empty when dropped, two entries when duplicated)
    pub fn push(&mut self, now: Instant, dir: Direction, payload: P, len: usize) -> Vec<Instant> {
        self.stats.received += 1;
        // Always draw both numbers so one datagram's fate does not shift the random stream of
        // the following ones differently depending on the outcome.
        let lost = self.rng.gen_bool(self.imp.loss.clamp(0.0, 1.0));
        let dup = self.rng.gen_bool(self.imp.duplicate.clamp(0.0, 1.0));
        if lost {
            self.stats.lost += 1;
            return Vec::new();
        }
        let departure = match self.imp.rate {
            Some(rate) if rate > 0 => {
                let free = self.link_free[dir.index()].map_or(now, |f| f.max(now));
                if free.saturating_duration_since(now) > self.imp.queue_limit {
                    self.stats.queue_dropped += 1;
                    return Vec::new();
                }
                let tx = Duration::from_secs_f64(len as f64 / rate as f64);
                let done = free + tx;
                self.link_free[dir.index()] = Some(done);
                done
            }
            _ => now,
        };
        let copies = if dup { 2 } else { 1 };
        let mut times = Vec::with_capacity(copies);
        for _ in 0..copies {
            let at = departure + self.sample_delay();
            let payload = payload.clone();
            self.seq += 1;
            self.queue.push(Reverse(Pending {
                at,
                seq: self.seq,
                dir,
                payload,
            }));
            times.push(at);
        }
        if dup {
            self.stats.duplicated += 1;
        }
        times
    }

    fn sample_delay(&mut self) -> Duration {
        let base = self.imp.delay.as_secs_f64();
        let j = self.imp.jitter.as_secs_f64();
        let d = if j > 0.0 {
            base + self.rng.gen_range(-j..=j)
        } else {
            base
        };
        Duration::from_secs_f64(d.max(0.0))
    }

    /// When the next copy is due, if any is queued
    pub fn next_deadline(&self) -> Option<Instant> {
        self.queue.peek().map(|Reverse(p)| p.at)
    }

    /// The next copy due at or before `now`
    pub fn poll(&mut self, now: Instant) -> Option<(Direction, P)> {
        if self.next_deadline()? > now {
            return None;
        }
        let Reverse(p) = self.queue.pop()?;
        self.stats.emitted += 1;
        Some((p.dir, p.payload))
    }

    /// Datagram copies waiting
    pub fn queued(&self) -> usize {
        self.queue.len()
    }

    /// Counters so far
    pub fn stats(&self) -> SchedulerStats {
        self.stats
    }
}

/// Sans-IO NAT rebinding clock: every `every`, a new epoch starts and the relay must use a new
/// upstream source port (and the next local address)
#[derive(Debug, Clone)]
pub struct RebindSchedule {
    every: Option<Duration>,
    next: Option<Instant>,
    epoch: u64,
}

impl RebindSchedule {
    /// Rebind every `every` starting from `start`; `None` never rebinds
    pub fn new(every: Option<Duration>, start: Instant) -> Self {
        let every = every.filter(|d| !d.is_zero());
        Self {
            every,
            next: every.map(|d| start + d),
            epoch: 0,
        }
    }

    /// When the next rebind is due
    pub fn next_deadline(&self) -> Option<Instant> {
        self.next
    }

    /// Current epoch (0 before the first rebind)
    pub fn epoch(&self) -> u64 {
        self.epoch
    }

    /// If a rebind is due at `now`, start the next epoch and return it
    ///
    /// A relay that fell behind by several periods rebinds once, not in a burst.
    pub fn poll(&mut self, now: Instant) -> Option<u64> {
        let (every, next) = (self.every?, self.next?);
        if now < next {
            return None;
        }
        self.epoch += 1;
        let mut n = next + every;
        if n <= now {
            n = now + every;
        }
        self.next = Some(n);
        Some(self.epoch)
    }

    /// The local address to use in `epoch`, rotating through `addrs`; `None` when empty
    pub fn local_addr(addrs: &[IpAddr], epoch: u64) -> Option<IpAddr> {
        if addrs.is_empty() {
            return None;
        }
        addrs.get((epoch % addrs.len() as u64) as usize).copied()
    }
}

/// Relay configuration
#[derive(Debug, Clone)]
pub struct RelayConfig {
    /// Where clients send to (port 0 picks one; see [`RelayHandle::local_addr`])
    pub listen: SocketAddr,
    /// The server datagrams are forwarded to
    pub upstream: SocketAddr,
    /// Applied in both directions
    pub impairment: Impairment,
    /// RNG seed; the same seed and input give the same decisions
    pub seed: u64,
    /// Switch the upstream source port (and address) this often; `None` = never
    pub rebind_every: Option<Duration>,
    /// Local addresses to rotate through on rebind; empty = the unspecified address
    pub rebind_addrs: Vec<IpAddr>,
    /// Most client sessions kept at once (bounds sockets and tasks)
    pub max_sessions: usize,
}

impl RelayConfig {
    /// Plain forwarding from `listen` to `upstream`, no impairment, seed 0
    pub fn new(listen: SocketAddr, upstream: SocketAddr) -> Self {
        Self {
            listen,
            upstream,
            impairment: Impairment::default(),
            seed: 0,
            rebind_every: None,
            rebind_addrs: Vec::new(),
            max_sessions: 256,
        }
    }
}

/// Live counters of a running relay
#[derive(Debug, Default)]
pub struct RelayCounters {
    /// Datagrams received from clients
    pub from_client: AtomicU64,
    /// Datagrams received from the upstream server
    pub from_server: AtomicU64,
    /// Datagrams sent to the server
    pub to_server: AtomicU64,
    /// Datagrams sent to clients
    pub to_client: AtomicU64,
    /// Datagrams dropped (random loss or full queue)
    pub dropped: AtomicU64,
    /// Extra copies sent by duplication
    pub duplicated: AtomicU64,
    /// Rebinds performed (per session)
    pub rebinds: AtomicU64,
    /// Client sessions created
    pub sessions: AtomicU64,
    /// Send or socket errors (the datagram is dropped)
    pub errors: AtomicU64,
}

/// A copy of [`RelayCounters`] at one moment
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[allow(missing_docs)]
pub struct CounterSnapshot {
    pub from_client: u64,
    pub from_server: u64,
    pub to_server: u64,
    pub to_client: u64,
    pub dropped: u64,
    pub duplicated: u64,
    pub rebinds: u64,
    pub sessions: u64,
    pub errors: u64,
}

impl RelayCounters {
    /// Read all counters
    pub fn snapshot(&self) -> CounterSnapshot {
        let g = |a: &AtomicU64| a.load(AtomicOrdering::Relaxed);
        CounterSnapshot {
            from_client: g(&self.from_client),
            from_server: g(&self.from_server),
            to_server: g(&self.to_server),
            to_client: g(&self.to_client),
            dropped: g(&self.dropped),
            duplicated: g(&self.duplicated),
            rebinds: g(&self.rebinds),
            sessions: g(&self.sessions),
            errors: g(&self.errors),
        }
    }
}

fn bump(a: &AtomicU64) {
    a.fetch_add(1, AtomicOrdering::Relaxed);
}

/// The relay entry point
#[derive(Debug)]
pub struct Relay;

/// A running relay; stops (and joins its thread) on [`RelayHandle::stop`] or drop
#[derive(Debug)]
pub struct RelayHandle {
    local_addr: SocketAddr,
    counters: Arc<RelayCounters>,
    stop: Option<oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl RelayHandle {
    /// The address clients send to
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Current counters
    pub fn counters(&self) -> CounterSnapshot {
        self.counters.snapshot()
    }

    /// Stop the relay, wait for its thread, and return the final counters
    pub fn stop(mut self) -> CounterSnapshot {
        self.shutdown();
        self.counters.snapshot()
    }

    fn shutdown(&mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for RelayHandle {
    fn drop(&mut self) {
        self.shutdown();
    }
}

impl Relay {
    /// Bind the listen socket in the calling thread's namespace and run the relay on its own
    /// thread (with its own tokio runtime, so no runtime is needed by the caller)
    pub fn spawn(config: RelayConfig) -> io::Result<RelayHandle> {
        let listen = std::net::UdpSocket::bind(config.listen)?;
        listen.set_nonblocking(true)?;
        let local_addr = listen.local_addr()?;
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let counters = Arc::new(RelayCounters::default());
        let (stop_tx, stop_rx) = oneshot::channel();
        let c = Arc::clone(&counters);
        let thread = std::thread::Builder::new()
            .name("impair-relay".into())
            .spawn(move || {
                rt.block_on(async move {
                    match UdpSocket::from_std(listen) {
                        Ok(listen) => run(listen, config, c, stop_rx).await,
                        Err(e) => eprintln!("impair-relay: listen socket: {e}"),
                    }
                });
            })?;
        Ok(RelayHandle {
            local_addr,
            counters,
            stop: Some(stop_tx),
            thread: Some(thread),
        })
    }
}

/// One client's upstream mapping: the socket the relay uses towards the server for it
struct Session {
    sock: Arc<UdpSocket>,
    reader: tokio::task::JoinHandle<()>,
}

impl Drop for Session {
    fn drop(&mut self) {
        // Dropping the mapping must stop its reader, or the old port would keep delivering.
        self.reader.abort();
    }
}

type Datagram = (SocketAddr, Vec<u8>);

fn open_session(
    config: &RelayConfig,
    epoch: u64,
    client: SocketAddr,
    tx: &mpsc::Sender<Datagram>,
    counters: &Arc<RelayCounters>,
) -> io::Result<Session> {
    let ip =
        RebindSchedule::local_addr(&config.rebind_addrs, epoch).unwrap_or(match config.upstream {
            SocketAddr::V4(_) => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            SocketAddr::V6(_) => IpAddr::V6(Ipv6Addr::UNSPECIFIED),
        });
    let std_sock = std::net::UdpSocket::bind(SocketAddr::new(ip, 0))?;
    std_sock.set_nonblocking(true)?;
    let sock = Arc::new(UdpSocket::from_std(std_sock)?);
    let reader_sock = Arc::clone(&sock);
    let upstream = config.upstream;
    let tx = tx.clone();
    let counters = Arc::clone(counters);
    let reader = tokio::spawn(async move {
        let mut buf = vec![0u8; 65536];
        loop {
            match reader_sock.recv_from(&mut buf).await {
                // Like a NAT mapping: only the server may answer through it.
                Ok((n, from)) if from == upstream => {
                    bump(&counters.from_server);
                    let Some(data) = buf.get(..n) else { continue };
                    if tx.send((client, data.to_vec())).await.is_err() {
                        return;
                    }
                }
                Ok(_) => {}
                Err(_) => {
                    // ICMP errors (e.g. port unreachable) surface here; keep the mapping.
                    bump(&counters.errors);
                    tokio::time::sleep(Duration::from_millis(1)).await;
                }
            }
        }
    });
    Ok(Session { sock, reader })
}

async fn run(
    listen: UdpSocket,
    config: RelayConfig,
    counters: Arc<RelayCounters>,
    mut stop: oneshot::Receiver<()>,
) {
    let (tx, mut rx) = mpsc::channel::<Datagram>(4096);
    let mut sessions: HashMap<SocketAddr, Session> = HashMap::new();
    let mut sched: Scheduler<Datagram> = Scheduler::new(config.impairment.clone(), config.seed);
    let mut rebind = RebindSchedule::new(config.rebind_every, Instant::now());
    let mut buf = vec![0u8; 65536];
    let mut last_stats = SchedulerStats::default();

    loop {
        let now = Instant::now();
        while let Some((dir, (client, data))) = sched.poll(now) {
            let sent = match dir {
                Direction::ToServer => match sessions.get(&client) {
                    Some(s) => s.sock.send_to(&data, config.upstream).await.map(|_| ()),
                    None => Err(io::Error::other("session gone")),
                },
                Direction::ToClient => listen.send_to(&data, client).await.map(|_| ()),
            };
            match (sent, dir) {
                (Ok(()), Direction::ToServer) => bump(&counters.to_server),
                (Ok(()), Direction::ToClient) => bump(&counters.to_client),
                (Err(_), _) => bump(&counters.errors),
            }
        }
        if let Some(epoch) = rebind.poll(now) {
            // Replace every mapping: the new socket is bound before the old one closes, so the
            // kernel cannot hand out the same port again.
            let clients: Vec<SocketAddr> = sessions.keys().copied().collect();
            for client in clients {
                match open_session(&config, epoch, client, &tx, &counters) {
                    Ok(s) => {
                        sessions.insert(client, s);
                        bump(&counters.rebinds);
                    }
                    Err(_) => bump(&counters.errors),
                }
            }
        }
        let stats = sched.stats();
        let dropped =
            (stats.lost + stats.queue_dropped) - (last_stats.lost + last_stats.queue_dropped);
        counters.dropped.fetch_add(dropped, AtomicOrdering::Relaxed);
        counters.duplicated.fetch_add(
            stats.duplicated - last_stats.duplicated,
            AtomicOrdering::Relaxed,
        );
        last_stats = stats;

        let deadline = match (sched.next_deadline(), rebind.next_deadline()) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        let sleep = async {
            match deadline {
                Some(d) => tokio::time::sleep_until(d.into()).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            _ = &mut stop => break,
            r = listen.recv_from(&mut buf) => {
                let Ok((n, client)) = r else {
                    bump(&counters.errors);
                    continue;
                };
                bump(&counters.from_client);
                if !sessions.contains_key(&client) {
                    if sessions.len() >= config.max_sessions {
                        bump(&counters.errors);
                        continue;
                    }
                    match open_session(&config, rebind.epoch(), client, &tx, &counters) {
                        Ok(s) => {
                            sessions.insert(client, s);
                            bump(&counters.sessions);
                        }
                        Err(_) => {
                            bump(&counters.errors);
                            continue;
                        }
                    }
                }
                let Some(data) = buf.get(..n) else { continue };
                sched.push(Instant::now(), Direction::ToServer, (client, data.to_vec()), n);
            }
            Some((client, data)) = rx.recv() => {
                let n = data.len();
                sched.push(Instant::now(), Direction::ToClient, (client, data), n);
            }
            _ = sleep => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    fn drain(s: &mut Scheduler<u32>, until: Instant) -> Vec<(Instant, u32)> {
        let mut out = Vec::new();
        while let Some(at) = s.next_deadline() {
            if at > until {
                break;
            }
            let Some((_, p)) = s.poll(at) else { break };
            out.push((at, p));
        }
        out
    }

    #[test]
    fn plain_delay_is_fifo_and_exact() {
        let t0 = Instant::now();
        let imp = Impairment {
            delay: ms(20),
            ..Impairment::default()
        };
        let mut s = Scheduler::new(imp, 1);
        for i in 0..10u32 {
            let at = s.push(t0 + ms(u64::from(i)), Direction::ToServer, i, 100);
            assert_eq!(at, vec![t0 + ms(u64::from(i) + 20)]);
        }
        assert!(
            s.poll(t0 + ms(19)).is_none(),
            "nothing due before the delay"
        );
        let out = drain(&mut s, t0 + ms(100));
        let order: Vec<u32> = out.iter().map(|(_, p)| *p).collect();
        assert_eq!(order, (0..10).collect::<Vec<_>>());
    }

    #[test]
    fn loss_rate_matches_probability() {
        let t0 = Instant::now();
        let imp = Impairment {
            loss: 0.1,
            ..Impairment::default()
        };
        let mut s = Scheduler::new(imp, 7);
        for i in 0..10_000u32 {
            s.push(t0, Direction::ToServer, i, 100);
        }
        let lost = s.stats().lost;
        assert!(
            (850..=1150).contains(&lost),
            "lost {lost} of 10000 at p=0.1"
        );
        assert_eq!(s.queued() as u64, 10_000 - lost);
    }

    #[test]
    fn duplication_emits_two_copies() {
        let t0 = Instant::now();
        let imp = Impairment {
            duplicate: 0.2,
            ..Impairment::default()
        };
        let mut s = Scheduler::new(imp, 3);
        for i in 0..5_000u32 {
            s.push(t0, Direction::ToClient, i, 100);
        }
        let dup = s.stats().duplicated;
        assert!(
            (850..=1150).contains(&dup),
            "duplicated {dup} of 5000 at p=0.2"
        );
        assert_eq!(s.queued() as u64, 5_000 + dup);
        let out = drain(&mut s, t0);
        assert_eq!(out.len() as u64, 5_000 + dup);
    }

    #[test]
    fn jitter_reorders_within_bounds() {
        let t0 = Instant::now();
        let imp = Impairment {
            delay: ms(10),
            jitter: ms(5),
            ..Impairment::default()
        };
        let mut s = Scheduler::new(imp, 11);
        for i in 0..1_000u32 {
            // One packet every 0.5 ms: much closer than the jitter, so some must overtake.
            let now = t0 + Duration::from_micros(500 * u64::from(i));
            for at in s.push(now, Direction::ToServer, i, 100) {
                let d = at - now;
                assert!(d >= ms(5) && d <= ms(15), "delay {d:?} outside 10±5 ms");
            }
        }
        let out = drain(&mut s, t0 + Duration::from_secs(10));
        assert_eq!(out.len(), 1_000);
        let inversions = out.windows(2).filter(|w| w[1].1 < w[0].1).count();
        assert!(inversions > 50, "only {inversions} reorderings");
        assert!(
            out.windows(2).all(|w| w[0].0 <= w[1].0),
            "emitted out of time order"
        );
    }

    #[test]
    fn same_seed_same_decisions() {
        let t0 = Instant::now();
        let imp = Impairment {
            delay: ms(3),
            jitter: ms(2),
            loss: 0.3,
            duplicate: 0.2,
            ..Impairment::default()
        };
        let run = |seed| {
            let mut s = Scheduler::new(imp.clone(), seed);
            (0..500u32)
                .map(|i| s.push(t0 + ms(u64::from(i)), Direction::ToServer, i, 50))
                .collect::<Vec<_>>()
        };
        assert_eq!(run(5), run(5));
        assert_ne!(run(5), run(6));
    }

    #[test]
    fn rate_limit_paces_and_tail_drops() {
        let t0 = Instant::now();
        // 1000 bytes per ms; 10 ms of queue.
        let imp = Impairment {
            rate: Some(1_000_000),
            queue_limit: ms(10),
            ..Impairment::default()
        };
        let mut s = Scheduler::new(imp, 0);
        let mut times = Vec::new();
        for i in 0..50u32 {
            times.extend(s.push(t0, Direction::ToServer, i, 1000));
        }
        // Packet k leaves after (k+1) ms; those that would wait more than 10 ms are dropped.
        assert_eq!(times.len(), 11);
        for (k, at) in times.iter().enumerate() {
            let want = ms(k as u64 + 1);
            let got = *at - t0;
            assert!(
                got.abs_diff(want) < Duration::from_micros(10),
                "{k}: {got:?}"
            );
        }
        assert_eq!(s.stats().queue_dropped, 39);
        // The other direction has its own bottleneck.
        assert_eq!(s.push(t0, Direction::ToClient, 99, 1000), vec![t0 + ms(1)]);
    }

    #[test]
    fn rebind_schedule_ticks_and_rotates_addresses() {
        let t0 = Instant::now();
        let mut r = RebindSchedule::new(Some(ms(100)), t0);
        assert_eq!(r.poll(t0 + ms(99)), None);
        assert_eq!(r.poll(t0 + ms(100)), Some(1));
        assert_eq!(r.poll(t0 + ms(150)), None);
        assert_eq!(r.next_deadline(), Some(t0 + ms(200)));
        // Far behind: one rebind, then the next period starts from now.
        assert_eq!(r.poll(t0 + ms(1000)), Some(2));
        assert_eq!(r.next_deadline(), Some(t0 + ms(1100)));
        let mut never = RebindSchedule::new(None, t0);
        assert_eq!(never.poll(t0 + Duration::from_secs(100)), None);

        let addrs: Vec<IpAddr> = vec![
            "198.18.0.1".parse().expect("ip"),
            "198.18.0.5".parse().expect("ip"),
        ];
        assert_eq!(RebindSchedule::local_addr(&addrs, 0), Some(addrs[0]));
        assert_eq!(RebindSchedule::local_addr(&addrs, 1), Some(addrs[1]));
        assert_eq!(RebindSchedule::local_addr(&addrs, 2), Some(addrs[0]));
        assert_eq!(RebindSchedule::local_addr(&[], 3), None);
    }
}
