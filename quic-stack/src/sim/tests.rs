//! Simulator tests with a toy ping/echo node
//!
//! Every scenario takes its seed from `seed_from_env`, and the `Network` prints it if a test
//! panics, so a failure can be replayed with `QUICTUN_SIM_SEED=<seed>`.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use super::*;
use crate::shared::EcnCodepoint;

/// A datagram the toy node received
#[derive(Debug, Clone)]
struct Rx {
    seq: u64,
    from: SocketAddr,
    at: Instant,
    len: usize,
    ecn: Option<EcnCodepoint>,
    local_ip: Option<std::net::IpAddr>,
    intact: bool,
}

/// Sends numbered pings on a timer, optionally echoes what it receives, and has a one-shot alarm
#[derive(Debug, Default)]
struct Toy {
    peer: Option<SocketAddr>,
    echo: bool,
    to_send: u64,
    sent: u64,
    interval: Duration,
    next_send: Option<Instant>,
    payload: usize,
    /// Send pings in GSO batches, the last segment of each batch `short` bytes shorter
    gso: bool,
    short: usize,
    ecn: Option<EcnCodepoint>,
    outq: VecDeque<(SocketAddr, Vec<u8>, Option<EcnCodepoint>)>,
    received: Vec<Rx>,
    alarm: Option<Instant>,
    alarm_fired: Option<Instant>,
}

impl Toy {
    fn echo() -> Self {
        Self {
            echo: true,
            ..Self::default()
        }
    }
    fn sink() -> Self {
        Self::default()
    }
    fn pinger(start: Instant, peer: SocketAddr, count: u64, interval: Duration) -> Self {
        Self {
            peer: Some(peer),
            to_send: count,
            interval,
            next_send: Some(start),
            payload: 100,
            ..Self::default()
        }
    }
    fn seqs(&self) -> Vec<u64> {
        self.received.iter().map(|r| r.seq).collect()
    }
}

/// Body: 8-byte sequence number and filler; trailer: FNV-1a of the body, to detect corruption
fn ping(seq: u64, len: usize) -> Vec<u8> {
    let len = len.max(16);
    let mut v = seq.to_be_bytes().to_vec();
    v.extend((8..len - 8).map(|i| i as u8));
    let h = fnv(&v);
    v.extend_from_slice(&h.to_be_bytes());
    v
}

fn fnv(data: &[u8]) -> u64 {
    data.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

fn parse(data: &[u8]) -> (u64, bool) {
    if data.len() < 16 {
        return (u64::MAX, false);
    }
    let (body, trailer) = data.split_at(data.len() - 8);
    let seq = u64::from_be_bytes(body[..8].try_into().unwrap_or([0xff; 8]));
    let intact = trailer == fnv(body).to_be_bytes();
    (seq, intact)
}

impl Node for Toy {
    fn handle_datagram(&mut self, now: Instant, meta: RecvMeta, data: &mut [u8]) {
        let (seq, intact) = parse(data);
        self.received.push(Rx {
            seq,
            from: meta.remote,
            at: now,
            len: data.len(),
            ecn: meta.ecn,
            local_ip: meta.local_ip,
            intact,
        });
        if self.echo {
            self.outq.push_back((meta.remote, data.to_vec(), meta.ecn));
        }
    }

    fn handle_timeout(&mut self, now: Instant) {
        if self.alarm.is_some_and(|t| t <= now) {
            self.alarm = None;
            self.alarm_fired = Some(now);
        }
    }

    fn poll_transmit(
        &mut self,
        now: Instant,
        max_datagrams: usize,
        buf: &mut Vec<u8>,
    ) -> Option<Transmit> {
        buf.clear();
        if let Some((to, data, ecn)) = self.outq.pop_front() {
            buf.extend_from_slice(&data);
            return Some(transmit(to, buf.len(), ecn, None));
        }
        let peer = self.peer?;
        if self.to_send == 0 || self.next_send? > now {
            return None;
        }
        let batch = if self.gso {
            (max_datagrams as u64).min(self.to_send)
        } else {
            1
        };
        for i in 0..batch {
            let len = if self.gso && i + 1 == batch {
                self.payload - self.short
            } else {
                self.payload
            };
            buf.extend_from_slice(&ping(self.sent, len));
            self.sent += 1;
            self.to_send -= 1;
        }
        self.next_send = Some(now + self.interval);
        let segment = self.gso.then_some(self.payload);
        Some(transmit(peer, buf.len(), self.ecn, segment))
    }

    fn poll_timeout(&mut self) -> Option<Instant> {
        let send = self.next_send.filter(|_| self.to_send > 0);
        send.into_iter().chain(self.alarm).min()
    }
}

fn transmit(
    destination: SocketAddr,
    size: usize,
    ecn: Option<EcnCodepoint>,
    segment_size: Option<usize>,
) -> Transmit {
    Transmit {
        destination,
        size,
        ecn,
        segment_size,
        src_ip: None,
    }
}

const LIMIT: Duration = Duration::from_secs(3600);

/// Client pings `count` times every `interval`; server echoes; both links use `link`
fn ping_pair(seed: u64, count: u64, interval: Duration, link: LinkConfig) -> Pair<Toy> {
    // The pinger needs the network's start time, so it replaces a placeholder
    let mut pair = Pair::new(seed, Toy::default(), Toy::echo());
    let begin = pair.start();
    *pair.client_mut() = Toy::pinger(begin, SERVER_V4, count, interval);
    pair.set_links(link);
    pair
}

#[test]
fn determinism_same_seed_same_trace() {
    let run = |seed: u64| {
        let link = LinkConfig {
            delay: Duration::from_millis(5),
            jitter: Duration::from_millis(4),
            loss: 0.1,
            duplicate: 0.05,
            corrupt: 0.05,
            ce_mark: 0.1,
            ..LinkConfig::default()
        };
        let mut pair = ping_pair(seed, 300, Duration::from_micros(500), link);
        pair.client_mut().ecn = Some(EcnCodepoint::Ect0);
        pair.enable_trace();
        pair.drive().expect("drive");
        let trace = pair.trace().to_vec();
        (trace, pair.client().seqs())
    };
    let seed = seed_from_env(7);
    let (a, a_seqs) = run(seed);
    let (b, b_seqs) = run(seed);
    assert!(a.len() > 600, "seed {seed}: trace too short: {}", a.len());
    assert_eq!(a, b, "seed {seed}: same seed gave different traces");
    assert_eq!(a_seqs, b_seqs, "seed {seed}");
    let (c, _) = run(seed.wrapping_add(1));
    assert_ne!(a, c, "seeds {seed} and {}: identical traces", seed + 1);
}

#[test]
fn fixed_delay_gives_exact_rtt() {
    let seed = seed_from_env(1);
    let link = LinkConfig {
        delay: Duration::from_millis(25),
        ..LinkConfig::ideal()
    };
    let mut pair = ping_pair(seed, 1, Duration::ZERO, link);
    let start = pair.start();
    pair.drive().expect("drive");
    let server_rx = &pair.server().received;
    assert_eq!(server_rx.len(), 1, "seed {seed}");
    assert_eq!(server_rx[0].at - start, Duration::from_millis(25));
    assert_eq!(server_rx[0].from, CLIENT_V4);
    assert_eq!(server_rx[0].local_ip, Some(SERVER_V4.ip()));
    let rx = &pair.client().received;
    assert_eq!(rx.len(), 1, "seed {seed}");
    assert_eq!(rx[0].at - start, Duration::from_millis(50), "seed {seed}");
}

fn inversions(seqs: &[u64]) -> usize {
    seqs.windows(2).filter(|w| w[1] < w[0]).count()
}

#[test]
fn jitter_reorders_and_no_jitter_keeps_order() {
    let seed = seed_from_env(2);
    let jittery = LinkConfig {
        delay: Duration::from_millis(10),
        jitter: Duration::from_millis(20),
        ..LinkConfig::default()
    };
    let mut pair = ping_pair(seed, 200, Duration::from_millis(1), jittery);
    pair.drive().expect("drive");
    let seqs = pair.server().seqs();
    assert_eq!(seqs.len(), 200, "seed {seed}");
    assert!(inversions(&seqs) > 10, "seed {seed}: no reordering seen");

    let steady = LinkConfig {
        delay: Duration::from_millis(10),
        ..LinkConfig::default()
    };
    let mut pair = ping_pair(seed, 200, Duration::from_millis(1), steady);
    pair.drive().expect("drive");
    assert_eq!(pair.server().seqs(), (0..200).collect::<Vec<_>>());
}

#[test]
fn loss_rate_within_tolerance_over_10k() {
    let seed = seed_from_env(3);
    let link = LinkConfig {
        loss: 0.1,
        ..LinkConfig::default()
    };
    let mut pair = ping_pair(seed, 10_000, Duration::ZERO, link);
    *pair.server_mut() = Toy::sink();
    pair.drive().expect("drive");
    let got = pair.server().received.len() as i64;
    // Binomial(10000, 0.9): sigma = 30, so +-150 is 5 sigma
    assert!((got - 9_000).abs() <= 150, "seed {seed}: received {got}");
    let (c, s) = (pair.client, pair.server);
    let st = pair.stats(c, s);
    assert_eq!(st.sent, 10_000);
    assert_eq!(st.delivered as i64, got);
    assert_eq!(st.dropped(DropReason::Loss), st.sent - st.delivered);
    assert_eq!(st.dropped_total(), st.dropped(DropReason::Loss));
}

#[test]
fn duplication_delivers_extra_copies() {
    let seed = seed_from_env(4);
    let link = LinkConfig {
        duplicate: 0.1,
        jitter: Duration::from_millis(1),
        ..LinkConfig::default()
    };
    let mut pair = ping_pair(seed, 10_000, Duration::ZERO, link);
    *pair.server_mut() = Toy::sink();
    pair.drive().expect("drive");
    let (c, s) = (pair.client, pair.server);
    let st = pair.stats(c, s);
    let got = pair.server().received.len() as u64;
    assert_eq!(got, st.delivered);
    assert_eq!(got, 10_000 + st.duplicated, "seed {seed}");
    assert!(
        (st.duplicated as i64 - 1_000).abs() <= 150,
        "seed {seed}: {st:?}"
    );
    let mut seqs = pair.server().seqs();
    seqs.sort_unstable();
    seqs.dedup();
    assert_eq!(seqs.len(), 10_000, "seed {seed}: a datagram went missing");
}

#[test]
fn corruption_flips_exactly_the_counted_datagrams() {
    let seed = seed_from_env(5);
    let link = LinkConfig {
        corrupt: 0.2,
        ..LinkConfig::default()
    };
    let mut pair = ping_pair(seed, 2_000, Duration::ZERO, link);
    *pair.server_mut() = Toy::sink();
    pair.drive().expect("drive");
    let (c, s) = (pair.client, pair.server);
    let st = pair.stats(c, s);
    let damaged = pair.server().received.iter().filter(|r| !r.intact).count() as u64;
    assert_eq!(damaged, st.corrupted, "seed {seed}");
    assert!((300..=500).contains(&damaged), "seed {seed}: {damaged}");
    assert_eq!(st.delivered, 2_000);
}

#[test]
fn mtu_drops_oversized_datagrams() {
    let seed = seed_from_env(6);
    let link = LinkConfig {
        mtu: 1200,
        ..LinkConfig::default()
    };
    for (payload, expect) in [(1201, 0), (1200, 10)] {
        let mut pair = ping_pair(seed, 10, Duration::ZERO, link.clone());
        pair.client_mut().payload = payload;
        *pair.server_mut() = Toy::sink();
        pair.drive().expect("drive");
        let (c, s) = (pair.client, pair.server);
        let st = pair.stats(c, s);
        assert_eq!(pair.server().received.len(), expect, "payload {payload}");
        assert_eq!(st.dropped(DropReason::Mtu), 10 - expect as u64);
    }
}

#[test]
fn bandwidth_limit_shapes_throughput() {
    let seed = seed_from_env(8);
    let rate = 1_000_000; // 1 MB/s
    let link = LinkConfig {
        delay: Duration::from_millis(20),
        bandwidth: Some(rate),
        queue_limit: 4 << 20,
        ..LinkConfig::default()
    };
    let mut pair = ping_pair(seed, 2_000, Duration::ZERO, link);
    pair.client_mut().payload = 1_000;
    *pair.server_mut() = Toy::sink();
    let start = pair.start();
    pair.drive().expect("drive");
    let rx = &pair.server().received;
    assert_eq!(rx.len(), 2_000);
    let last = rx.iter().map(|r| r.at).max().expect("received") - start;
    // 2 MB at 1 MB/s is 2 s, plus the 20 ms propagation delay
    let expect = Duration::from_millis(2_020);
    let err = last.abs_diff(expect);
    assert!(err < Duration::from_millis(5), "seed {seed}: took {last:?}");
    // Datagrams arrive spaced by their serialisation time (1 ms per 1000 bytes)
    let gap = rx[1].at - rx[0].at;
    assert_eq!(gap, Duration::from_millis(1));
}

#[test]
fn bounded_queue_tail_drops_bursts() {
    let seed = seed_from_env(9);
    let link = LinkConfig {
        bandwidth: Some(1_000_000),
        queue_limit: 100_000,
        ..LinkConfig::default()
    };
    let mut pair = ping_pair(seed, 1_000, Duration::ZERO, link);
    pair.client_mut().payload = 1_000;
    *pair.server_mut() = Toy::sink();
    pair.drive().expect("drive");
    let (c, s) = (pair.client, pair.server);
    let st = pair.stats(c, s);
    let got = pair.server().received.len() as u64;
    // The queue holds 100 datagrams behind the one being serialised
    assert!((95..=105).contains(&got), "seed {seed}: {got}");
    assert_eq!(st.dropped(DropReason::QueueFull), 1_000 - got);
}

#[test]
fn blackhole_on_and_off() {
    let seed = seed_from_env(10);
    let mut pair = ping_pair(seed, 10, Duration::from_millis(1), LinkConfig::default());
    pair.to_server().config.blackhole = true;
    pair.drive().expect("drive");
    assert!(pair.server().received.is_empty());
    assert!(pair.client().received.is_empty());
    let (c, s) = (pair.client, pair.server);
    assert_eq!(pair.stats(c, s).dropped(DropReason::Blackhole), 10);

    pair.to_server().config.blackhole = false;
    let now = pair.now();
    let client = pair.client_mut();
    client.to_send = 10;
    client.next_send = Some(now);
    pair.drive().expect("drive");
    assert_eq!(pair.server().seqs(), (10..20).collect::<Vec<_>>());
    assert_eq!(pair.client().received.len(), 10);
}

#[test]
fn nat_rebinding_changes_observed_source() {
    let seed = seed_from_env(11);
    let link = LinkConfig {
        delay: Duration::from_millis(10),
        ..LinkConfig::default()
    };
    let mut pair = ping_pair(seed, 20, Duration::from_millis(1), link);
    let nat: SocketAddr = "198.18.7.7:61000".parse().expect("addr");
    let at = pair.start() + Duration::from_micros(9_500);
    pair.rebind_client_at(at, nat);
    pair.drive().expect("drive");
    let froms: Vec<SocketAddr> = pair.server().received.iter().map(|r| r.from).collect();
    assert_eq!(froms.len(), 20);
    // Pings leave every 1 ms; those sent before 9.5 ms keep the old mapping
    assert!(froms[..10].iter().all(|&a| a == CLIENT_V4), "{froms:?}");
    assert!(froms[10..].iter().all(|&a| a == nat), "{froms:?}");
    // Echoes of the first pings are sent to the expired mapping and are lost
    assert_eq!(pair.client().received.len(), 10);
    assert_eq!(pair.unroutable(), 10);
    // The client still sees its own bound address as the local IP
    assert!(pair
        .client()
        .received
        .iter()
        .all(|r| r.local_ip == Some(CLIENT_V4.ip())));

    // On-demand rebinding takes effect for the next datagram
    let other: SocketAddr = "198.18.8.8:62000".parse().expect("addr");
    pair.rebind_client(other);
    let now = pair.now();
    let client = pair.client_mut();
    client.to_send = 1;
    client.next_send = Some(now);
    pair.drive().expect("drive");
    assert_eq!(pair.server().received.last().map(|r| r.from), Some(other));
    assert_eq!(pair.client().received.len(), 11);
}

#[test]
fn mapping_change_drops_datagrams_in_flight() {
    let seed = seed_from_env(26);
    let link = LinkConfig {
        delay: Duration::from_millis(10),
        ..LinkConfig::default()
    };
    let mut pair = ping_pair(seed, 1, Duration::ZERO, link);
    // The echo leaves the server at 10 ms and would arrive at 20 ms; the mapping changes at 15 ms
    let at = pair.start() + Duration::from_millis(15);
    pair.rebind_client_at(at, "198.18.7.7:61000".parse().expect("addr"));
    pair.drive().expect("drive");
    assert!(pair.client().received.is_empty());
    let (c, s) = (pair.client, pair.server);
    assert_eq!(pair.stats(s, c).dropped(DropReason::NoRoute), 1);
    assert_eq!(pair.stats(s, c).delivered, 0);
}

#[test]
fn address_change_moves_node() {
    let seed = seed_from_env(12);
    let mut pair = ping_pair(seed, 1, Duration::ZERO, LinkConfig::default());
    let moved: SocketAddr = "198.18.0.9:50001".parse().expect("addr");
    let c = pair.client;
    pair.set_addr(c, moved);
    pair.drive().expect("drive");
    assert_eq!(pair.server().received[0].from, moved);
    assert_eq!(pair.client().received[0].local_ip, Some(moved.ip()));
    assert_eq!(pair.client_addr(), moved);
}

#[test]
fn interceptor_drops_exactly_the_chosen_datagram() {
    let seed = seed_from_env(13);
    let mut pair = ping_pair(seed, 5, Duration::from_millis(1), LinkConfig::default());
    let server = pair.server;
    pair.set_interceptor(move |info, _data| {
        if info.src == server && info.index == 1 {
            Verdict::Drop
        } else {
            Verdict::Deliver
        }
    });
    pair.drive().expect("drive");
    assert_eq!(pair.server().seqs(), vec![0, 1, 2, 3, 4]);
    assert_eq!(pair.client().seqs(), vec![0, 2, 3, 4], "seed {seed}");
    let (c, s) = (pair.client, pair.server);
    assert_eq!(pair.stats(s, c).dropped(DropReason::Interceptor), 1);
    assert_eq!(pair.stats(c, s).dropped_total(), 0);
}

#[test]
fn interceptor_can_rewrite() {
    let seed = seed_from_env(14);
    let mut pair = ping_pair(seed, 3, Duration::ZERO, LinkConfig::default());
    pair.set_interceptor(|info, data| {
        if info.index == 0 {
            data.truncate(10);
        }
        Verdict::Deliver
    });
    pair.drive().expect("drive");
    assert_eq!(pair.server().received[0].len, 10);
    assert!(!pair.server().received[0].intact);
}

#[test]
fn thirty_second_timer_fires_without_waiting() {
    let seed = seed_from_env(15);
    let real = Instant::now();
    let mut pair = Pair::new(seed, Toy::sink(), Toy::sink());
    let at = pair.start() + Duration::from_secs(30);
    pair.client_mut().alarm = Some(at);
    pair.drive_until(|p| p.client().alarm_fired.is_some())
        .expect("alarm");
    assert_eq!(pair.client().alarm_fired, Some(at));
    assert_eq!(pair.elapsed(), Duration::from_secs(30));
    assert!(real.elapsed() < Duration::from_secs(2), "took real time");
}

#[test]
fn drive_ignores_far_timers_and_run_to_reaches_them() {
    let seed = seed_from_env(16);
    let mut pair = Pair::new(seed, Toy::sink(), Toy::sink());
    let at = pair.start() + Duration::from_secs(30);
    pair.client_mut().alarm = Some(at);
    pair.drive().expect("drive");
    assert_eq!(pair.client().alarm_fired, None);
    pair.drive_to(at).expect("run_to");
    assert_eq!(pair.client().alarm_fired, Some(at));
    assert_eq!(pair.now(), at);
}

#[test]
fn drive_is_not_kept_going_by_far_rebindings() {
    let seed = seed_from_env(27);
    let mut pair = ping_pair(seed, 1, Duration::ZERO, LinkConfig::default());
    let later = pair.start() + Duration::from_secs(3600);
    pair.rebind_client_at(later, "198.18.7.7:61000".parse().expect("addr"));
    pair.drive().expect("drive");
    assert_eq!(pair.client().received.len(), 1);
    assert!(
        pair.elapsed() < Duration::from_secs(1),
        "{:?}",
        pair.elapsed()
    );
    assert_eq!(pair.in_flight(), 0);
}

#[test]
fn gso_transmits_split_into_datagrams() {
    let seed = seed_from_env(17);
    let mut pair = ping_pair(seed, 10, Duration::ZERO, LinkConfig::default());
    *pair.server_mut() = Toy::sink();
    let client = pair.client_mut();
    client.gso = true;
    client.payload = 1200;
    client.short = 200;
    pair.drive().expect("drive");
    let rx = &pair.server().received;
    assert_eq!(rx.len(), 10);
    assert!(rx.iter().all(|r| r.intact));
    let lens: Vec<usize> = rx.iter().map(|r| r.len).collect();
    assert_eq!(lens[..9], [1200; 9]);
    assert_eq!(lens[9], 1000);
    let (c, s) = (pair.client, pair.server);
    assert_eq!(pair.stats(c, s).sent, 10);
    assert_eq!(pair.stats(c, s).sent_bytes, 9 * 1200 + 1000);
}

#[test]
fn ce_marking_only_touches_ect() {
    let seed = seed_from_env(18);
    let link = LinkConfig {
        ce_mark: 1.0,
        ..LinkConfig::default()
    };
    let mut pair = ping_pair(seed, 5, Duration::ZERO, link.clone());
    pair.client_mut().ecn = Some(EcnCodepoint::Ect0);
    *pair.server_mut() = Toy::sink();
    pair.drive().expect("drive");
    assert!(pair
        .server()
        .received
        .iter()
        .all(|r| r.ecn == Some(EcnCodepoint::Ce)));
    let (c, s) = (pair.client, pair.server);
    assert_eq!(pair.stats(c, s).ce_marked, 5);

    let mut pair = ping_pair(seed, 5, Duration::ZERO, link);
    *pair.server_mut() = Toy::sink();
    pair.drive().expect("drive");
    assert!(pair.server().received.iter().all(|r| r.ecn.is_none()));
}

#[test]
fn out_of_range_probabilities_do_not_panic() {
    let seed = seed_from_env(19);
    let link = LinkConfig {
        loss: f64::NAN,
        duplicate: -1.0,
        corrupt: 7.0,
        ce_mark: f64::INFINITY,
        bandwidth: Some(0),
        ..LinkConfig::default()
    };
    let mut pair = ping_pair(seed, 5, Duration::ZERO, link);
    pair.drive().expect("drive");
    assert_eq!(pair.server().received.len(), 5);
    assert!(pair.server().received.iter().all(|r| !r.intact));
}

/// A broken node whose timer never moves forward
struct Stuck {
    at: Instant,
    spam: bool,
}

impl Node for Stuck {
    fn handle_datagram(&mut self, _: Instant, _: RecvMeta, _: &mut [u8]) {}
    fn handle_timeout(&mut self, _: Instant) {}
    fn poll_transmit(&mut self, _: Instant, _: usize, buf: &mut Vec<u8>) -> Option<Transmit> {
        buf.clear();
        buf.push(0);
        self.spam.then(|| transmit(SERVER_V4, 1, None, None))
    }
    fn poll_timeout(&mut self) -> Option<Instant> {
        Some(self.at)
    }
}

#[test]
fn livelock_fails_with_step_cap() {
    let seed = seed_from_env(20);
    let mut net = Network::new(seed);
    let at = net.start();
    net.add_node(Stuck { at, spam: false }, CLIENT_V4);
    net.max_steps = 1_000;
    let err = net
        .run_until(|_| false, Duration::from_secs(1))
        .expect_err("must fail");
    assert!(matches!(err, SimError::StepLimit { .. }), "{err}");
    assert!(err.to_string().contains(&format!("seed {seed}")), "{err}");
}

#[test]
fn transmit_spam_fails_with_transmit_cap() {
    let seed = seed_from_env(21);
    let mut net = Network::new(seed);
    let at = net.start() + Duration::from_secs(1);
    net.add_node(Stuck { at, spam: true }, CLIENT_V4);
    net.max_transmits_per_step = 50;
    let err = net
        .run_until(|_| false, Duration::from_secs(1))
        .expect_err("must fail");
    assert!(
        matches!(err, SimError::TransmitLimit { node: 0, .. }),
        "{err}"
    );
}

#[test]
fn idle_and_time_limit_errors() {
    let seed = seed_from_env(22);
    let mut net: Network<Toy> = Network::new(seed);
    net.add_node(Toy::sink(), CLIENT_V4);
    let err = net
        .run_until(|_| false, Duration::from_secs(1))
        .expect_err("idle");
    assert!(matches!(err, SimError::Idle { .. }), "{err}");

    let mut pair = Pair::new(seed, Toy::sink(), Toy::sink());
    let at = pair.start() + Duration::from_secs(100);
    pair.client_mut().alarm = Some(at);
    pair.time_limit = Duration::from_secs(10);
    let err = pair
        .drive_until(|p| p.client().alarm_fired.is_some())
        .expect_err("time limit");
    assert!(matches!(err, SimError::TimeLimit { .. }), "{err}");
    // The clock never jumps past the budget
    assert!(pair.elapsed() <= Duration::from_secs(10));
}

#[test]
fn unroutable_destinations_are_counted() {
    let seed = seed_from_env(23);
    let mut pair = Pair::new(seed, Toy::sink(), Toy::sink());
    let start = pair.start();
    let nowhere: SocketAddr = "198.18.99.99:9".parse().expect("addr");
    *pair.client_mut() = Toy::pinger(start, nowhere, 3, Duration::ZERO);
    pair.drive().expect("drive");
    assert_eq!(pair.unroutable(), 3);
    assert!(pair.server().received.is_empty());
}

#[test]
fn n_node_network_over_ipv6() {
    let seed = seed_from_env(24);
    let mut net: Network<Toy> = Network::new(seed);
    let start = net.start();
    let server = net.add_node(Toy::echo(), SERVER_V6);
    let a_addr: SocketAddr = "[fd00::a]:1000".parse().expect("addr");
    let b_addr: SocketAddr = "[fd00::b]:1000".parse().expect("addr");
    let a = net.add_node(
        Toy::pinger(start, SERVER_V6, 5, Duration::from_millis(1)),
        a_addr,
    );
    let b = net.add_node(
        Toy::pinger(start, SERVER_V6, 7, Duration::from_millis(1)),
        b_addr,
    );
    net.set_link(
        b,
        server,
        LinkConfig {
            delay: Duration::from_millis(40),
            ..LinkConfig::default()
        },
    );
    net.run_until(
        |n| n.node(a).received.len() == 5 && n.node(b).received.len() == 7,
        LIMIT,
    )
    .expect("both answered");
    assert!(net.node(a).received.iter().all(|r| r.from == SERVER_V6));
    assert_eq!(net.node(server).received.len(), 12);
    // b's path is slower: its first echo comes back 40 ms + 10 ms after sending
    assert_eq!(
        net.node(b).received[0].at - start,
        Duration::from_millis(50)
    );
    assert_eq!(net.stats(a, server).delivered, 5);
    assert_eq!(net.stats(server, b).delivered, 7);
}

#[test]
fn boxed_nodes_mix_types() {
    let seed = seed_from_env(25);
    let mut pair: Pair<Box<dyn Node>> = Pair::new(
        seed,
        Box::new(Toy::sink()),
        Box::new(Stuck {
            at: Instant::now() + Duration::from_secs(3600),
            spam: false,
        }),
    );
    pair.drive().expect("drive");
}
