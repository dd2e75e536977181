//! Self-tests of the `quic-interop` binary, the way the QUIC interop runner drives it
//!
//! Each test writes the runner's files for one TESTCASE (sizes scaled down where noted, to keep
//! the whole file well under a minute on two cores) into a temporary www directory, starts
//! `quic-interop server` on loopback with a self-signed certificate, runs `quic-interop client`
//! with `REQUESTS`, and compares the downloads byte for byte (no missing or extra files).
//!
//! The runner's ns-3 link impairments (delay, loss, corruption, blackhole, NAT rebinding, drop
//! lists) are replaced by [`Relay`], a small UDP relay between client and server that impairs
//! traffic from a seeded RNG and records a few of the runner's predicates from the wire
//! (ClientHello retransmission, Retry, the amplification budget).

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader};
use std::net::{SocketAddr, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_quic-interop");
const KIB: usize = 1024;
const MIB: usize = 1024 * 1024;
/// Longest any client run may take before the test fails (the runner allows 60 s)
const CLIENT_TIMEOUT: Duration = Duration::from_secs(60);

// ---- scaffolding ----

/// A directory under the system temp dir, removed on drop
struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> Self {
        static SEQ: AtomicU64 = AtomicU64::new(0);
        let dir = std::env::temp_dir().join(format!(
            "quic-interop-{tag}-{}-{}",
            std::process::id(),
            SEQ.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&dir).expect("create temp dir");
        Self(dir)
    }

    fn sub(&self, name: &str) -> PathBuf {
        let p = self.0.join(name);
        std::fs::create_dir_all(&p).expect("create sub dir");
        p
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// xorshift64*: deterministic file contents and impairment decisions
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn chance(&mut self, p: f64) -> bool {
        ((self.next() >> 11) as f64 / (1u64 << 53) as f64) < p
    }
}

/// Certificate chain (leaf first) and key in PEM, like the runner's /certs
fn write_certs(dir: &Path, chain_len: usize) -> (PathBuf, PathBuf) {
    use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair};
    // Root, then intermediates, each signed by the previous; the leaf is signed by the last
    let mut pem = Vec::new();
    let mut issuer: Option<(rcgen::Certificate, KeyPair)> = None;
    for i in 0..chain_len.saturating_sub(1) {
        let key = KeyPair::generate().expect("key");
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("params");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(DnType::CommonName, format!("interop CA {i}"));
        let cert = match &issuer {
            Some((ic, ik)) => params.signed_by(&key, ic, ik),
            None => params.self_signed(&key),
        }
        .expect("CA cert");
        pem.push(cert.pem());
        issuer = Some((cert, key));
    }
    let key = KeyPair::generate().expect("key");
    let params =
        CertificateParams::new(vec!["server4".into(), "localhost".into()]).expect("params");
    let leaf = match &issuer {
        Some((ic, ik)) => params.signed_by(&key, ic, ik),
        None => params.self_signed(&key),
    }
    .expect("leaf cert");
    pem.push(leaf.pem());
    pem.reverse();
    let cert_path = dir.join("cert.pem");
    let key_path = dir.join("priv.key");
    std::fs::write(&cert_path, pem.concat()).expect("write cert");
    std::fs::write(&key_path, key.serialize_pem()).expect("write key");
    (cert_path, key_path)
}

/// Random files in `www`; returns their names
fn write_files(www: &Path, sizes: &[usize], name_len: usize, seed: u64) -> Vec<String> {
    let mut rng = Rng(seed | 1);
    let alphabet = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
    sizes
        .iter()
        .map(|&size| {
            let name: String = (0..name_len)
                .map(|_| alphabet[(rng.next() % alphabet.len() as u64) as usize] as char)
                .collect();
            let data: Vec<u8> = (0..size).map(|_| rng.next() as u8).collect();
            std::fs::write(www.join(&name), data).expect("write www file");
            name
        })
        .collect()
}

/// A loopback UDP port that was free a moment ago
fn free_port(ip: &str) -> u16 {
    UdpSocket::bind((ip, 0))
        .and_then(|s| s.local_addr())
        .expect("probe a free port")
        .port()
}

/// `quic-interop server`, killed by PID on drop
struct Server {
    child: Child,
    addr: SocketAddr,
}

impl Server {
    fn start(testcase: &str, www: &Path, certs: (&Path, &Path), listen: SocketAddr) -> Self {
        Self::start_with_env(testcase, www, certs, listen, &[])
    }

    fn start_with_env(
        testcase: &str,
        www: &Path,
        certs: (&Path, &Path),
        listen: SocketAddr,
        env: &[(&str, &Path)],
    ) -> Self {
        let mut cmd = Command::new(BIN);
        cmd.arg("server")
            .arg("--www")
            .arg(www)
            .arg("--listen")
            .arg(listen.to_string())
            .arg("--cert")
            .arg(certs.0)
            .arg("--key")
            .arg(certs.1)
            .env("TESTCASE", testcase)
            .env_remove("SSLKEYLOGFILE")
            .env_remove("QLOGDIR")
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("spawn quic-interop server");
        let stderr = child.stderr.take().expect("server stderr");
        let (ready_tx, ready_rx) = mpsc::channel();
        // Forward the server's stderr into the test output and report readiness
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if line.contains("serving") {
                    let _ = ready_tx.send(());
                }
                eprintln!("[server] {line}");
            }
        });
        let server = Self {
            child,
            addr: listen,
        };
        ready_rx
            .recv_timeout(Duration::from_secs(10))
            .expect("server reports it is serving");
        server
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Run `quic-interop client` to completion (bounded); its exit status
fn run_client(
    testcase: &str,
    requests: &str,
    downloads: &Path,
    env: &[(&str, &Path)],
) -> ExitStatus {
    let mut cmd = Command::new(BIN);
    cmd.arg("client")
        .arg("--downloads")
        .arg(downloads)
        .env("TESTCASE", testcase)
        .env("REQUESTS", requests)
        .env_remove("SSLKEYLOGFILE")
        .env_remove("QLOGDIR")
        .stdout(Stdio::null());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().expect("spawn quic-interop client");
    let deadline = Instant::now() + CLIENT_TIMEOUT;
    loop {
        if let Some(status) = child.try_wait().expect("wait for client") {
            return status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("client timed out after {CLIENT_TIMEOUT:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn requests_for(addr: SocketAddr, names: &[String]) -> String {
    names
        .iter()
        .map(|n| format!("https://{addr}/{n}"))
        .collect::<Vec<_>>()
        .join(" ")
}

/// The runner's file check: every requested file, no extra ones, identical bytes
fn check_downloads(www: &Path, downloads: &Path, names: &[String]) {
    let got: BTreeSet<String> = std::fs::read_dir(downloads)
        .expect("read downloads")
        .map(|e| {
            e.expect("dir entry")
                .file_name()
                .to_string_lossy()
                .into_owned()
        })
        .collect();
    let want: BTreeSet<String> = names.iter().cloned().collect();
    assert_eq!(got, want, "downloaded file set differs");
    for name in names {
        let a = std::fs::read(www.join(name)).expect("read served file");
        let b = std::fs::read(downloads.join(name)).expect("read downloaded file");
        assert!(
            a == b,
            "{name}: {} bytes served, {} downloaded, contents differ",
            a.len(),
            b.len()
        );
    }
}

struct Setup {
    dir: TempDir,
    www: PathBuf,
    downloads: PathBuf,
    cert: PathBuf,
    key: PathBuf,
    names: Vec<String>,
}

fn setup(tag: &str, sizes: &[usize], name_len: usize, chain_len: usize) -> Setup {
    let dir = TempDir::new(tag);
    let www = dir.sub("www");
    let downloads = dir.sub("downloads");
    let certs = dir.sub("certs");
    let (cert, key) = write_certs(&certs, chain_len);
    let names = write_files(&www, sizes, name_len, tag.len() as u64 * 7919 + 17);
    Setup {
        dir,
        www,
        downloads,
        cert,
        key,
        names,
    }
}

/// One runner test case end to end: server (TESTCASE `server_case`), optional relay, client
/// (TESTCASE `client_case`), file check; returns the relay's observations
fn run_case(
    s: &Setup,
    server_case: &str,
    client_case: &str,
    relay: Option<RelayConfig>,
    env: &[(&str, &Path)],
) -> Option<Arc<RelayStats>> {
    let listen = SocketAddr::from(([127, 0, 0, 1], free_port("127.0.0.1")));
    let server = Server::start(server_case, &s.www, (&s.cert, &s.key), listen);
    let relay = relay.map(|c| Relay::start(server.addr, c));
    let target = relay.as_ref().map_or(server.addr, |r| r.addr);
    let started = Instant::now();
    let status = run_client(
        client_case,
        &requests_for(target, &s.names),
        &s.downloads,
        env,
    );
    eprintln!("{client_case}: client finished in {:?}", started.elapsed());
    assert!(status.success(), "client failed: {status}");
    check_downloads(&s.www, &s.downloads, &s.names);
    relay.map(|r| r.stats.clone())
}

// ---- the relay ----

/// Impairments between client and server; each direction impaired independently
#[derive(Clone, Default)]
struct RelayConfig {
    /// One-way delay in each direction
    delay: Duration,
    /// Fraction of datagrams dropped (or corrupted), in bursts of `burst`
    rate: f64,
    burst: u32,
    /// Corrupt one byte instead of dropping
    corrupt: bool,
    /// 1-based indices of client datagrams to drop (the runner's `droplist`)
    drops_to_server: Vec<u64>,
    /// Outages `[from, to)` after the client's first datagram, when everything is dropped (the
    /// runner's `blackhole`)
    blackhole: Vec<(Duration, Duration)>,
    /// Move the client side of the server-facing socket to a new port this often (NAT rebinding)
    rebind_every: Option<Duration>,
    /// Rebind to a new address (127.0.0.2, .3, ...) as well as a new port
    rebind_addr: bool,
    seed: u64,
}

/// What the relay saw on the wire
#[derive(Default)]
struct RelayStats {
    /// Client datagrams starting with an Initial before any server datagram reached the client
    client_initials_before_reply: AtomicU64,
    /// The server sent a Retry
    retry_seen: AtomicBool,
    /// The client sent a Handshake packet (ends the amplification accounting)
    client_handshake_seen: AtomicBool,
    /// Client bytes that reached the server before its first Handshake packet
    client_bytes_before_hs: AtomicU64,
    /// Bytes the server sent before the client's first Handshake packet
    server_bytes_before_hs: AtomicU64,
    server_reply_delivered: AtomicBool,
    /// Server datagrams that reached a rebound port (the server followed the new path)
    server_datagrams_after_rebind: AtomicU64,
    /// Datagrams swallowed by blackhole periods
    blackholed: AtomicU64,
    /// Client datagrams carrying a 0-RTT packet
    client_zero_rtt_datagrams: AtomicU64,
    /// Bytes of server datagrams carrying Handshake packets, per connection (by the client's
    /// CID) in order of appearance
    server_handshake_bytes: Mutex<Vec<(Vec<u8>, u64)>>,
    /// Every long-header packet as (from the client, type, version)
    long_headers: Mutex<Vec<(bool, u8, u32)>>,
}

struct Relay {
    addr: SocketAddr,
    stats: Arc<RelayStats>,
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<()>>,
}

/// Long-header packet types in a datagram (0 Initial, 1 0-RTT, 2 Handshake, 3 Retry), following
/// coalesced packets; stops at a short header or anything malformed
fn long_types(d: &[u8]) -> Vec<u8> {
    long_headers(d).into_iter().map(|(ty, _)| ty).collect()
}

/// QUIC v2 (RFC 9369), whose long header type bits are rotated
const VERSION_2: u32 = 0x6b33_43cf;

/// Long-header packets in a datagram as (type, version), types numbered as in v1 whatever the
/// version (RFC 9369 §3.2 moves them for v2)
fn long_headers(mut d: &[u8]) -> Vec<(u8, u32)> {
    fn varint(d: &[u8]) -> Option<(u64, usize)> {
        let first = *d.first()?;
        let len = 1usize << (first >> 6);
        let bytes = d.get(..len)?;
        let mut v = u64::from(first & 0x3f);
        for b in &bytes[1..] {
            v = (v << 8) | u64::from(*b);
        }
        Some((v, len))
    }
    let mut out = Vec::new();
    while let Some(&first) = d.first() {
        if first & 0x80 == 0 {
            break;
        }
        let Some(version) = d
            .get(1..5)
            .map(|v| u32::from_be_bytes([v[0], v[1], v[2], v[3]]))
        else {
            break;
        };
        let raw = (first >> 4) & 0x3;
        let ty = if version == VERSION_2 {
            (raw + 3) & 0x3
        } else {
            raw
        };
        out.push((ty, version));
        let parse = || -> Option<usize> {
            let mut i = 5;
            let dcid = usize::from(*d.get(i)?);
            i += 1 + dcid;
            let scid = usize::from(*d.get(i)?);
            i += 1 + scid;
            if ty == 3 {
                return None; // Retry runs to the end of the datagram
            }
            if ty == 0 {
                let (tl, n) = varint(d.get(i..)?)?;
                i += n + usize::try_from(tl).ok()?;
            }
            let (len, n) = varint(d.get(i..)?)?;
            Some(i + n + usize::try_from(len).ok()?)
        };
        match parse() {
            Some(end) if end <= d.len() => d = &d[end..],
            _ => break,
        }
    }
    out
}

fn record_long_headers(stats: &RelayStats, from_client: bool, d: &[u8]) {
    let mut seen = stats.long_headers.lock().expect("stats lock");
    seen.extend(
        long_headers(d)
            .into_iter()
            .map(|(ty, v)| (from_client, ty, v)),
    );
}

/// Drop/corrupt decisions with bursts: a burst starts with probability rate/burst
struct Impair {
    rng: Rng,
    rate: f64,
    burst: u32,
    left: u32,
}

impl Impair {
    fn hit(&mut self) -> bool {
        if self.left > 0 {
            self.left -= 1;
            return true;
        }
        let burst = self.burst.max(1);
        if self.rate > 0.0 && self.rng.chance(self.rate / f64::from(burst)) {
            self.left = burst - 1;
            return true;
        }
        false
    }
}

/// The server-facing socket and how many times it was replaced
type Upstream = Arc<Mutex<(Arc<UdpSocket>, u64)>>;

/// The relay's server-facing socket; the `n`th rebinding with `new_addr` moves to 127.0.0.(n+1)
fn bind_upstream(n: u64, new_addr: bool) -> Arc<UdpSocket> {
    let last = if new_addr { (n % 250 + 1) as u8 } else { 1 };
    let s = UdpSocket::bind((std::net::Ipv4Addr::new(127, 0, 0, last), 0))
        .expect("bind relay upstream");
    s.set_read_timeout(Some(Duration::from_millis(10)))
        .expect("read timeout");
    Arc::new(s)
}

impl Relay {
    fn start(server: SocketAddr, config: RelayConfig) -> Self {
        let listen = Arc::new(UdpSocket::bind("127.0.0.1:0").expect("bind relay"));
        listen
            .set_read_timeout(Some(Duration::from_millis(10)))
            .expect("read timeout");
        let addr = listen.local_addr().expect("relay address");
        let upstream: Upstream = Arc::new(Mutex::new((bind_upstream(0, false), 0)));
        let client: Arc<Mutex<Option<SocketAddr>>> = Arc::new(Mutex::new(None));
        let stats = Arc::new(RelayStats::default());
        let stop = Arc::new(AtomicBool::new(false));
        // Blackhole periods count from the client's first datagram, so that process start-up
        // time does not decide whether the handshake falls into an outage
        let epoch: Arc<std::sync::OnceLock<Instant>> = Arc::default();
        let blackholed = {
            let epoch = epoch.clone();
            move |now: Instant, c: &RelayConfig| {
                let since = now.saturating_duration_since(*epoch.get_or_init(|| now));
                c.blackhole
                    .iter()
                    .any(|&(from, to)| (from..to).contains(&since))
            }
        };
        let mut threads = Vec::new();

        // Delivery threads apply the delay; constant delay keeps each direction in order
        let (to_server, to_server_rx) = mpsc::channel::<(Instant, Vec<u8>)>();
        let (to_client, to_client_rx) = mpsc::channel::<(Instant, Vec<u8>)>();
        {
            let upstream = upstream.clone();
            threads.push(std::thread::spawn(move || {
                for (due, data) in to_server_rx {
                    std::thread::sleep(due.saturating_duration_since(Instant::now()));
                    let sock = upstream.lock().map(|s| s.0.clone()).expect("upstream lock");
                    let _ = sock.send_to(&data, server);
                }
            }));
        }
        {
            let listen = listen.clone();
            let client = client.clone();
            let stats = stats.clone();
            threads.push(std::thread::spawn(move || {
                for (due, data) in to_client_rx {
                    std::thread::sleep(due.saturating_duration_since(Instant::now()));
                    let dest = *client.lock().expect("client lock");
                    if let Some(dest) = dest {
                        stats.server_reply_delivered.store(true, Ordering::SeqCst);
                        let _ = listen.send_to(&data, dest);
                    }
                }
            }));
        }

        // client → server
        {
            let blackholed = blackholed.clone();
            let (listen, upstream, client, stats, stop, config) = (
                listen.clone(),
                upstream.clone(),
                client.clone(),
                stats.clone(),
                stop.clone(),
                config.clone(),
            );
            threads.push(std::thread::spawn(move || {
                let mut impair = Impair {
                    rng: Rng(config.seed | 1),
                    rate: config.rate,
                    burst: config.burst,
                    left: 0,
                };
                let mut buf = vec![0u8; 65536];
                let mut index = 0u64;
                // Rebinding counts from the client's first datagram, not from process start-up
                let mut next_rebind: Option<Instant> = None;
                while !stop.load(Ordering::Relaxed) {
                    if let (Some(at), Some(every)) = (next_rebind, config.rebind_every) {
                        if Instant::now() >= at {
                            let mut up = upstream.lock().expect("upstream lock");
                            *up = (bind_upstream(up.1 + 1, config.rebind_addr), up.1 + 1);
                            next_rebind = Some(Instant::now() + every);
                        }
                    }
                    let Ok((n, from)) = listen.recv_from(&mut buf) else {
                        continue;
                    };
                    *client.lock().expect("client lock") = Some(from);
                    index += 1;
                    if index == 1 {
                        next_rebind = config.rebind_every.map(|every| Instant::now() + every);
                    }
                    let mut data = buf[..n].to_vec();
                    let types = long_types(&data);
                    record_long_headers(&stats, true, &data);
                    if types.first() == Some(&0)
                        && !stats.server_reply_delivered.load(Ordering::SeqCst)
                    {
                        stats
                            .client_initials_before_reply
                            .fetch_add(1, Ordering::Relaxed);
                    }
                    if types.contains(&2) {
                        stats.client_handshake_seen.store(true, Ordering::SeqCst);
                    }
                    if types.contains(&1) {
                        stats
                            .client_zero_rtt_datagrams
                            .fetch_add(1, Ordering::Relaxed);
                    }
                    let now = Instant::now();
                    if config.drops_to_server.contains(&index) {
                        continue;
                    }
                    if blackholed(now, &config) {
                        stats.blackholed.fetch_add(1, Ordering::Relaxed);
                        continue;
                    }
                    if impair.hit() {
                        if !config.corrupt {
                            continue;
                        }
                        let at = (impair.rng.next() % n as u64) as usize;
                        data[at] ^= 1 << (impair.rng.next() % 8);
                    }
                    if !stats.client_handshake_seen.load(Ordering::SeqCst) {
                        stats
                            .client_bytes_before_hs
                            .fetch_add(n as u64, Ordering::Relaxed);
                    }
                    let _ = to_server.send((now + config.delay, data));
                }
            }));
        }

        // server → client
        {
            let (upstream, stats, stop, config) = (
                upstream.clone(),
                stats.clone(),
                stop.clone(),
                config.clone(),
            );
            threads.push(std::thread::spawn(move || {
                let mut impair = Impair {
                    rng: Rng(config.seed.rotate_left(17) | 1),
                    rate: config.rate,
                    burst: config.burst,
                    left: 0,
                };
                let mut buf = vec![0u8; 65536];
                while !stop.load(Ordering::Relaxed) {
                    // After a rebind, the old port is gone as with a real NAT
                    let (sock, generation) =
                        upstream.lock().map(|s| s.clone()).expect("upstream lock");
                    let Ok((n, _)) = sock.recv_from(&mut buf) else {
                        continue;
                    };
                    if generation > 0 {
                        stats
                            .server_datagrams_after_rebind
                            .fetch_add(1, Ordering::Relaxed);
                    }
                    let mut data = buf[..n].to_vec();
                    let types = long_types(&data);
                    record_long_headers(&stats, false, &data);
                    if types.first() == Some(&3) {
                        stats.retry_seen.store(true, Ordering::SeqCst);
                    }
                    if types.contains(&2) {
                        // Long headers carry the DCID at byte 6, its length at byte 5; the
                        // server's DCID is the client's SCID, one per connection
                        let dcid_len = usize::from(data.get(5).copied().unwrap_or(0));
                        let dcid = data.get(6..6 + dcid_len).unwrap_or_default().to_vec();
                        let mut per_conn = stats.server_handshake_bytes.lock().expect("stats lock");
                        match per_conn.iter_mut().find(|(c, _)| *c == dcid) {
                            Some((_, bytes)) => *bytes += n as u64,
                            None => per_conn.push((dcid, n as u64)),
                        }
                    }
                    if !stats.client_handshake_seen.load(Ordering::SeqCst) {
                        stats
                            .server_bytes_before_hs
                            .fetch_add(n as u64, Ordering::Relaxed);
                    }
                    let now = Instant::now();
                    if blackholed(now, &config) {
                        stats.blackholed.fetch_add(1, Ordering::Relaxed);
                        continue;
                    }
                    if impair.hit() {
                        if !config.corrupt {
                            continue;
                        }
                        let at = (impair.rng.next() % n as u64) as usize;
                        data[at] ^= 1 << (impair.rng.next() % 8);
                    }
                    let _ = to_client.send((now + config.delay, data));
                }
            }));
        }
        Self {
            addr,
            stats,
            stop,
            threads,
        }
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        // The receive threads exit within a read timeout and drop the delivery channels, which
        // ends the delivery threads once their queues are flushed
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

// ---- test cases ----

#[test]
fn handshake() {
    let s = setup("handshake", &[KIB], 10, 1);
    run_case(&s, "handshake", "handshake", None, &[]);
}

/// Runner sizes: 2 + 3 + 5 MiB
#[test]
fn transfer() {
    let s = setup("transfer", &[2 * MIB, 3 * MIB, 5 * MIB], 10, 1);
    run_case(&s, "transfer", "transfer", None, &[]);
}

/// 1999 × 32 B; the server allows fewer concurrent streams, so the client waits for MAX_STREAMS
#[test]
fn multiplexing() {
    let s = setup("multiplexing", &[32; 1999], 10, 1);
    run_case(&s, "transfer", "transfer", None, &[]);
}

/// 750 ms each way: the ClientHello must be retransmitted by the PTO before the server answers
#[test]
fn longrtt() {
    let s = setup("longrtt", &[KIB], 10, 1);
    let relay = RelayConfig {
        delay: Duration::from_millis(750),
        ..Default::default()
    };
    let stats = run_case(&s, "handshake", "handshake", Some(relay), &[]).expect("relay stats");
    let initials = stats.client_initials_before_reply.load(Ordering::Relaxed);
    assert!(
        initials >= 2,
        "ClientHello sent {initials} times before the reply"
    );
}

/// Runner size: 3 MiB
#[test]
fn chacha20() {
    let s = setup("chacha20", &[3 * MIB], 10, 1);
    run_case(&s, "chacha20", "chacha20", None, &[]);
}

#[test]
fn retry() {
    let s = setup("retry", &[10 * KIB], 10, 1);
    let stats =
        run_case(&s, "retry", "retry", Some(RelayConfig::default()), &[]).expect("relay stats");
    assert!(
        stats.retry_seen.load(Ordering::SeqCst),
        "server sent no Retry"
    );
}

/// Two connections, the second resuming the first's session: with a 9-certificate chain the
/// first server Handshake flight is large, the resumed one (no Certificate) small. Also checks
/// the client's qlog (one file per connection) and key log
#[test]
fn resumption() {
    let s = setup("resumption", &[5 * KIB, 10 * KIB], 10, 9);
    let qlog = s.dir.sub("qlog");
    let keylog = s.dir.0.join("keys.log");
    let stats = run_case(
        &s,
        "resumption",
        "resumption",
        Some(RelayConfig::default()),
        &[("QLOGDIR", &qlog), ("SSLKEYLOGFILE", &keylog)],
    )
    .expect("relay stats");
    let flights = stats
        .server_handshake_bytes
        .lock()
        .expect("stats lock")
        .clone();
    assert_eq!(flights.len(), 2, "two handshakes");
    assert!(
        flights[0].1 > 3000 && flights[1].1 < 2000,
        "second handshake should carry no certificate: {} then {} Handshake bytes",
        flights[0].1,
        flights[1].1
    );
    let traces = std::fs::read_dir(&qlog).expect("qlog dir").count();
    assert_eq!(traces, 2, "one qlog per connection");
    let keys = std::fs::read_to_string(&keylog).expect("key log written");
    assert!(
        keys.contains("CLIENT_TRAFFIC_SECRET_0"),
        "key log lacks 1-RTT secrets"
    );
}

/// Runner: 10 MiB, 2 s outages after every 5 s; loopback moves 10 MiB in well under 5 s, so
/// here one 2 s outage starts 20 ms into the connection, in the middle of the transfer
#[test]
fn blackhole() {
    let s = setup("blackhole", &[10 * MIB], 10, 1);
    let relay = RelayConfig {
        blackhole: vec![(Duration::from_millis(20), Duration::from_millis(2020))],
        ..Default::default()
    };
    let stats = run_case(&s, "transfer", "transfer", Some(relay), &[]).expect("relay stats");
    assert!(
        stats.blackholed.load(Ordering::Relaxed) > 0,
        "no outage hit the transfer"
    );
}

/// Runner: 2 MiB at 2 % loss both ways, bursts of 3
#[test]
fn transferloss() {
    let s = setup("transferloss", &[2 * MIB], 10, 1);
    let relay = RelayConfig {
        rate: 0.02,
        burst: 3,
        seed: 2,
        ..Default::default()
    };
    run_case(&s, "transfer", "transfer", Some(relay), &[]);
}

/// Runner: 2 MiB at 2 % corruption both ways, bursts of 3
#[test]
fn transfercorruption() {
    let s = setup("transfercorruption", &[2 * MIB], 10, 1);
    let relay = RelayConfig {
        rate: 0.02,
        burst: 3,
        corrupt: true,
        seed: 3,
        ..Default::default()
    };
    run_case(&s, "transfer", "transfer", Some(relay), &[]);
}

/// Runner: 50 × 1 KiB, one connection each, 30 % loss both ways in bursts of 3
#[test]
fn handshakeloss() {
    let s = setup("handshakeloss", &[KIB; 50], 10, 1);
    let relay = RelayConfig {
        rate: 0.3,
        burst: 3,
        seed: 4,
        ..Default::default()
    };
    run_case(&s, "multiconnect", "multiconnect", Some(relay), &[]);
}

/// Runner: 50 × 1 KiB, one connection each, 30 % corruption both ways in bursts of 3
#[test]
fn handshakecorruption() {
    let s = setup("handshakecorruption", &[KIB; 50], 10, 1);
    let relay = RelayConfig {
        rate: 0.3,
        burst: 3,
        corrupt: true,
        seed: 5,
        ..Default::default()
    };
    run_case(&s, "multiconnect", "multiconnect", Some(relay), &[]);
}

/// Chain of 9 certificates and client datagrams 2–7 dropped: the server must stay within 3×
/// what it received until the client's first Handshake packet
#[test]
fn amplificationlimit() {
    let s = setup("amplificationlimit", &[5 * KIB], 10, 9);
    let relay = RelayConfig {
        drops_to_server: (2..=7).collect(),
        ..Default::default()
    };
    let stats = run_case(&s, "transfer", "transfer", Some(relay), &[]).expect("relay stats");
    let received = stats.client_bytes_before_hs.load(Ordering::Relaxed);
    let sent = stats.server_bytes_before_hs.load(Ordering::Relaxed);
    assert!(
        sent <= 3 * received,
        "server sent {sent} bytes for {received} received before address validation"
    );
}

/// Runner: 5 + 10 KiB to `server6`; here to [::1], skipped when the host has no IPv6 loopback
#[test]
fn ipv6() {
    if UdpSocket::bind("[::1]:0").is_err() {
        eprintln!("no IPv6 loopback: skipped");
        return;
    }
    let s = setup("ipv6", &[5 * KIB, 10 * KIB], 10, 1);
    let listen = SocketAddr::from((std::net::Ipv6Addr::LOCALHOST, free_port("::1")));
    let _server = Server::start("transfer", &s.www, (&s.cert, &s.key), listen);
    let status = run_client(
        "transfer",
        &requests_for(listen, &s.names),
        &s.downloads,
        &[],
    );
    assert!(status.success(), "client failed: {status}");
    check_downloads(&s.www, &s.downloads, &s.names);
}

/// Runner: 10 MiB, the NAT moves the client port after 1 s and every 5 s; loopback is faster,
/// so here the port moves every 100 ms over the runner's default 15 ms link delay (without
/// the delay the transfer ends before the first rebind). The server must validate and follow
/// each new path
#[test]
fn rebind_port() {
    let s = setup("rebind-port", &[10 * MIB], 10, 1);
    let relay = RelayConfig {
        rebind_every: Some(Duration::from_millis(100)),
        delay: Duration::from_millis(15),
        ..Default::default()
    };
    let stats = run_case(&s, "transfer", "transfer", Some(relay), &[]).expect("relay stats");
    let followed = stats.server_datagrams_after_rebind.load(Ordering::Relaxed);
    assert!(followed > 0, "the server never sent to a rebound port");
}

/// Runner: like rebind-port, but the NAT gives the client a new address as well (here a new
/// loopback address, 127.0.0.2, .3, ...): the server must validate each new path, reset its
/// congestion state and follow
#[test]
fn rebind_addr() {
    let s = setup("rebind-addr", &[10 * MIB], 10, 1);
    let relay = RelayConfig {
        rebind_every: Some(Duration::from_millis(100)),
        rebind_addr: true,
        delay: Duration::from_millis(15),
        ..Default::default()
    };
    let stats = run_case(&s, "transfer", "transfer", Some(relay), &[]).expect("relay stats");
    let followed = stats.server_datagrams_after_rebind.load(Ordering::Relaxed);
    assert!(followed > 0, "the server never sent to a rebound address");
}

/// Runner: 3 MiB; the client updates keys early and the server answers. Both sides' qlog
/// summaries must count a key update (the runner looks for key phase 1 from both)
#[test]
fn keyupdate() {
    let s = setup("keyupdate", &[3 * MIB], 10, 1);
    let client_qlog = s.dir.sub("client-qlog");
    let server_qlog = s.dir.sub("server-qlog");
    let listen = SocketAddr::from(([127, 0, 0, 1], free_port("127.0.0.1")));
    let server = Server::start_with_env(
        "transfer",
        &s.www,
        (&s.cert, &s.key),
        listen,
        &[("QLOGDIR", &server_qlog)],
    );
    let status = run_client(
        "keyupdate",
        &requests_for(listen, &s.names),
        &s.downloads,
        &[("QLOGDIR", &client_qlog)],
    );
    assert!(status.success(), "client failed: {status}");
    check_downloads(&s.www, &s.downloads, &s.names);
    // The server writes its qlog when it sees the close; give it a moment
    let deadline = Instant::now() + Duration::from_secs(5);
    let updated = |dir: &Path| {
        std::fs::read_dir(dir).ok().into_iter().flatten().any(|e| {
            e.ok()
                .and_then(|e| std::fs::read_to_string(e.path()).ok())
                .is_some_and(|t| {
                    t.contains("connection_closed") && !t.contains("\"key_updates\":0")
                })
        })
    };
    while !updated(&server_qlog) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    drop(server);
    assert!(updated(&client_qlog), "client qlog shows no key update");
    assert!(updated(&server_qlog), "server qlog shows no key update");
}

/// The `connection_closed` summaries of every qlog in `dir`, waiting up to 5 s for `want`
/// of them (a server writes its summary when it sees the client's close)
fn qlog_summaries(dir: &Path, want: usize) -> Vec<String> {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let found: Vec<String> = std::fs::read_dir(dir)
            .ok()
            .into_iter()
            .flatten()
            .filter_map(|e| std::fs::read_to_string(e.ok()?.path()).ok())
            .filter_map(|t| {
                t.lines()
                    .find(|l| l.contains("connection_closed"))
                    .map(str::to_owned)
            })
            .collect();
        if found.len() >= want || Instant::now() > deadline {
            return found;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Runner: 100 KiB with ECN; it wants ECT-marked packets both ways and ACK frames with ECN
/// counts. The loopback path keeps the IP TOS byte, so each side validates ECN (RFC 9000
/// §13.4.2) only if the peer's ACKs count the ECT(0) marks it received: `ecn_capable` in both
/// qlog summaries proves marks and counts in both directions, and no CE was reported
#[test]
fn ecn() {
    let s = setup("ecn", &[100 * KIB], 10, 1);
    let client_qlog = s.dir.sub("client-qlog");
    let server_qlog = s.dir.sub("server-qlog");
    let listen = SocketAddr::from(([127, 0, 0, 1], free_port("127.0.0.1")));
    let server = Server::start_with_env(
        "ecn",
        &s.www,
        (&s.cert, &s.key),
        listen,
        &[("QLOGDIR", &server_qlog)],
    );
    let status = run_client(
        "ecn",
        &requests_for(listen, &s.names),
        &s.downloads,
        &[("QLOGDIR", &client_qlog)],
    );
    assert!(status.success(), "client failed: {status}");
    check_downloads(&s.www, &s.downloads, &s.names);
    let server_summary = qlog_summaries(&server_qlog, 1);
    drop(server);
    for (side, summary) in [
        ("client", qlog_summaries(&client_qlog, 1)),
        ("server", server_summary),
    ] {
        assert_eq!(summary.len(), 1, "{side}: {summary:?}");
        assert!(
            summary[0].contains("\"ecn_capable\":true"),
            "{side}: {summary:?}"
        );
        assert!(
            summary[0].contains("\"ecn_ce_reported\":0"),
            "{side}: {summary:?}"
        );
    }
}

/// Runner: the client starts in v1 offering v2 (version_information), the server upgrades:
/// client Initials include v1, server Initials are v2, every Handshake packet of both sides
/// is v2 (the relay sees the long headers)
#[test]
fn v2() {
    let s = setup("v2", &[KIB], 10, 1);
    let client_qlog = s.dir.sub("client-qlog");
    let env = [("QLOGDIR", client_qlog.as_path())];
    let stats = run_case(&s, "v2", "v2", Some(RelayConfig::default()), &env).expect("relay stats");
    let seen = stats.long_headers.lock().expect("stats lock").clone();
    let versions = |from_client: bool, ty: u8| -> Vec<u32> {
        let mut v: Vec<u32> = seen
            .iter()
            .filter(|&&(c, t, _)| c == from_client && t == ty)
            .map(|&(_, _, v)| v)
            .collect();
        v.dedup();
        v
    };
    let (initial, handshake) = (0, 2);
    assert_eq!(versions(true, initial).first(), Some(&1), "{seen:?}");
    assert_eq!(versions(false, initial), [VERSION_2], "{seen:?}");
    assert_eq!(versions(true, handshake), [VERSION_2], "{seen:?}");
    assert_eq!(versions(false, handshake), [VERSION_2], "{seen:?}");
    let summary = qlog_summaries(&client_qlog, 1);
    assert!(
        summary.iter().any(|l| l.contains("\"version_upgrades\":1")),
        "{summary:?}"
    );
}

/// The `v2` client against a server that does not prefer v2 (any other test case) stays in v1
#[test]
fn v2_client_stays_v1_with_a_v1_server() {
    let s = setup("v2-v1", &[KIB], 10, 1);
    let stats =
        run_case(&s, "handshake", "v2", Some(RelayConfig::default()), &[]).expect("relay stats");
    let seen = stats.long_headers.lock().expect("stats lock").clone();
    assert!(!seen.is_empty());
    assert!(seen.iter().all(|&(_, _, v)| v == 1), "{seen:?}");
}

/// The numbers a client qlog's closing event reports under `key`, one per connection
fn qlog_stat(dir: &Path, key: &str) -> Vec<u64> {
    let needle = format!("\"{key}\":");
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).expect("qlog dir") {
        let text = std::fs::read_to_string(entry.expect("qlog entry").path()).expect("read qlog");
        for (i, _) in text.match_indices(&needle) {
            let digits: String = text[i + needle.len()..]
                .chars()
                .take_while(char::is_ascii_digit)
                .collect();
            out.push(digits.parse().expect("number"));
        }
    }
    out
}

/// Runner: 40 × 32 B files with 250-character names. The first connection fetches one file
/// and gets a ticket; the second resumes and sends its requests in 0-RTT, which the server
/// accepts (the runner counts 0-RTT payload and caps the client's 1-RTT payload). The
/// runner's 15 ms link delay matters: on bare loopback the handshake can finish before the
/// client has written its requests, and they would rightly go in 1-RTT
#[test]
fn zerortt() {
    let s = setup("zerortt", &[32; 40], 250, 1);
    let qlog = s.dir.sub("qlog");
    let relay = RelayConfig {
        delay: Duration::from_millis(15),
        ..Default::default()
    };
    let stats = run_case(&s, "zerortt", "zerortt", Some(relay), &[("QLOGDIR", &qlog)])
        .expect("relay stats");
    let flights = stats
        .server_handshake_bytes
        .lock()
        .expect("stats lock")
        .clone();
    assert_eq!(flights.len(), 2, "two handshakes");
    let early = stats.client_zero_rtt_datagrams.load(Ordering::Relaxed);
    let sent = qlog_stat(&qlog, "zero_rtt_bytes_sent");
    let accepted = qlog_stat(&qlog, "zero_rtt_bytes_accepted");
    eprintln!("0-RTT bytes sent {sent:?}, accepted {accepted:?}, datagrams {early}, handshake bytes {flights:?}");
    assert!(early > 0, "no 0-RTT packet on the wire");
    assert_eq!(sent.len(), 2, "one qlog per connection: {sent:?}");
    assert!(
        accepted.iter().any(|&b| b > 4000),
        "the server accepted too little 0-RTT: sent {sent:?}, accepted {accepted:?}"
    );
}

/// Runner: 2 MiB; the server advertises a preferred address (its port + 1 here) and the client
/// moves there after the handshake: both qlogs would show one migration, the client's is read
#[test]
fn connectionmigration() {
    let s = setup("connectionmigration", &[2 * MIB], 10, 1);
    let qlog = s.dir.sub("qlog");
    // The preferred address is the next port, so both must be free
    let port = loop {
        let p = free_port("127.0.0.1");
        if p < u16::MAX && UdpSocket::bind(("127.0.0.1", p + 1)).is_ok() {
            break p;
        }
    };
    let listen = SocketAddr::from(([127, 0, 0, 1], port));
    let _server = Server::start("connectionmigration", &s.www, (&s.cert, &s.key), listen);
    let status = run_client(
        "transfer",
        &requests_for(listen, &s.names),
        &s.downloads,
        &[("QLOGDIR", &qlog)],
    );
    assert!(status.success(), "client failed: {status}");
    check_downloads(&s.www, &s.downloads, &s.names);
    assert_eq!(
        qlog_stat(&qlog, "migrations"),
        vec![1],
        "the client did not move to the preferred address"
    );
}

/// Unknown and unsupported test cases exit 127 on both sides, without touching the network
#[test]
fn unsupported_exit_127() {
    let dir = TempDir::new("unsupported");
    for testcase in ["no-such-test", "http3", "versionnegotiation"] {
        let status = run_client(testcase, "https://127.0.0.1:1/x", &dir.0, &[]);
        assert_eq!(status.code(), Some(127), "client, {testcase}");
        let status = Command::new(BIN)
            .args(["server", "--listen", "127.0.0.1:1"])
            .env("TESTCASE", testcase)
            .stderr(Stdio::null())
            .status()
            .expect("run server");
        assert_eq!(status.code(), Some(127), "server, {testcase}");
    }
}

/// A bad invocation fails with exit 1 and no hang: missing certificate
#[test]
fn missing_certificate_fails() {
    let dir = TempDir::new("nocert");
    let status = Command::new(BIN)
        .arg("server")
        .args(["--listen", "127.0.0.1:0", "--cert"])
        .arg(dir.0.join("absent.pem"))
        .arg("--key")
        .arg(dir.0.join("absent.key"))
        .env("TESTCASE", "handshake")
        .stderr(Stdio::null())
        .status()
        .expect("run server");
    assert_eq!(status.code(), Some(1));
}

// ---- against quinn, an independent implementation ----

/// A quinn HTTP/0.9 (`hq-interop`) file server on loopback, inside its own runtime
fn quinn_hq_server(www: PathBuf, cert: &Path, key: &Path) -> (tokio::runtime::Runtime, SocketAddr) {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let chain = CertificateDer::pem_file_iter(cert)
        .expect("cert PEM")
        .collect::<Result<Vec<_>, _>>()
        .expect("cert PEM");
    let key = PrivateKeyDer::from_pem_file(key).expect("key PEM");
    let mut crypto = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_protocol_versions(&[&rustls::version::TLS13])
    .expect("TLS 1.3")
    .with_no_client_auth()
    .with_single_cert(chain, key)
    .expect("server certificate");
    crypto.alpn_protocols = vec![b"hq-interop".to_vec()];
    let crypto = quinn::crypto::rustls::QuicServerConfig::try_from(crypto).expect("QUIC-capable");
    let config = quinn::ServerConfig::with_crypto(Arc::new(crypto));
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let endpoint = rt
        .block_on(async { quinn::Endpoint::server(config, ([127, 0, 0, 1], 0).into()) })
        .expect("bind quinn server");
    let addr = endpoint.local_addr().expect("quinn address");
    rt.spawn(async move {
        while let Some(incoming) = endpoint.accept().await {
            let www = www.clone();
            tokio::spawn(async move {
                let Ok(conn) = incoming.await else {
                    return;
                };
                while let Ok((mut send, mut recv)) = conn.accept_bi().await {
                    let www = www.clone();
                    tokio::spawn(async move {
                        let request = recv.read_to_end(1024).await.expect("request");
                        let line = String::from_utf8(request).expect("UTF-8 request");
                        let name = line.trim_end().strip_prefix("GET /").expect("GET line");
                        let data = std::fs::read(www.join(name)).expect("requested file");
                        send.write_all(&data).await.expect("response");
                        send.finish().expect("finish");
                    });
                }
            });
        }
    });
    (rt, addr)
}

/// Our client, in several of its test-case behaviours, downloads from a quinn server
#[test]
fn our_client_quinn_server() {
    let s = setup(
        "vs-quinn-server",
        &[3 * MIB, 5 * KIB, 32, 32, 32, 10 * KIB],
        10,
        1,
    );
    let (rt, addr) = quinn_hq_server(s.www.clone(), &s.cert, &s.key);
    for testcase in [
        "transfer",
        "chacha20",
        "multiconnect",
        "resumption",
        "keyupdate",
    ] {
        for entry in std::fs::read_dir(&s.downloads).expect("downloads") {
            std::fs::remove_file(entry.expect("entry").path()).expect("clear downloads");
        }
        let status = run_client(testcase, &requests_for(addr, &s.names), &s.downloads, &[]);
        assert!(
            status.success(),
            "{testcase}: client failed against quinn: {status}"
        );
        check_downloads(&s.www, &s.downloads, &s.names);
    }
    rt.shutdown_timeout(Duration::from_secs(1));
}

/// A quinn client downloads from our server, all files concurrently; also through a Retry
#[test]
fn quinn_client_our_server() {
    for testcase in ["transfer", "retry"] {
        quinn_client_download(testcase);
    }
}

fn quinn_client_download(server_case: &str) {
    let s = setup(
        "vs-quinn-client",
        &[3 * MIB, 5 * KIB, 32, 32, 10 * KIB],
        10,
        1,
    );
    let listen = SocketAddr::from(([127, 0, 0, 1], free_port("127.0.0.1")));
    let _server = Server::start(server_case, &s.www, (&s.cert, &s.key), listen);
    let cert = std::fs::read(&s.cert).expect("cert");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        use rustls::pki_types::pem::PemObject;
        let mut roots = rustls::RootCertStore::empty();
        roots
            .add(rustls::pki_types::CertificateDer::from_pem_slice(&cert).expect("cert PEM"))
            .expect("root");
        let mut crypto = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_protocol_versions(&[&rustls::version::TLS13])
        .expect("TLS 1.3")
        .with_root_certificates(roots)
        .with_no_client_auth();
        crypto.alpn_protocols = vec![b"hq-interop".to_vec()];
        let crypto =
            quinn::crypto::rustls::QuicClientConfig::try_from(crypto).expect("QUIC-capable");
        let endpoint =
            quinn::Endpoint::client(([127, 0, 0, 1], 0).into()).expect("bind quinn client");
        let conn = tokio::time::timeout(
            CLIENT_TIMEOUT,
            endpoint
                .connect_with(
                    quinn::ClientConfig::new(Arc::new(crypto)),
                    listen,
                    "localhost",
                )
                .expect("connect"),
        )
        .await
        .expect("handshake in time")
        .expect("handshake with our server");
        let mut tasks = Vec::new();
        for name in &s.names {
            let conn = conn.clone();
            let name = name.clone();
            tasks.push(tokio::spawn(async move {
                let (mut send, mut recv) = conn.open_bi().await.expect("open stream");
                send.write_all(format!("GET /{name}\r\n").as_bytes())
                    .await
                    .expect("request");
                send.finish().expect("finish request");
                (name, recv.read_to_end(usize::MAX).await.expect("response"))
            }));
        }
        for task in tasks {
            let (name, data) = tokio::time::timeout(CLIENT_TIMEOUT, task)
                .await
                .expect("download in time")
                .expect("download task");
            std::fs::write(s.downloads.join(name), data).expect("store download");
        }
        conn.close(0u32.into(), b"");
        let _ = tokio::time::timeout(Duration::from_secs(1), endpoint.wait_idle()).await;
    });
    check_downloads(&s.www, &s.downloads, &s.names);
}
