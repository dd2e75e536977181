//! Roaming end-to-end tests (issue #5): the tunnel survives address changes (root only; skip
//! otherwise)
//!
//! Each test runs `quictun up` in-process in a server and a client namespace, keeps a TCP
//! transfer running through the tunnel whose bytes are checked by SHA-256, and changes the
//! client's underlay under it: its address (a), the NAT binding (b, through the impair relay),
//! its uplink (c, two veth pairs), or an attacker races the client's packets from another
//! address (d). The interruption is the longest gap in received bytes; it is printed, and
//! docs/roaming.md records the measured values. Run with:
//!   sudo -E cargo test -p quictun-tests --test netns_roaming -- --nocapture --test-threads=1

use std::net::{IpAddr, Ipv4Addr, SocketAddr, UdpSocket};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use quictun_tests::daemon::{certs, Daemon, TempDir};
use quictun_tests::relay::{Relay, RelayConfig};
use quictun_tests::testnet::{self, Host, TestNet};
use quictun_tests::traffic::{tcp_transfer_with, TransferOptions, TransferReport};
use tunnel::control::{self, PeerState, PeerStatus, Request};

const SERVER_TUN: Ipv4Addr = Ipv4Addr::new(198, 19, 0, 1);
const CLIENT_TUN: Ipv4Addr = Ipv4Addr::new(198, 19, 0, 2);
/// The server's service address on its loopback (test c: reachable over both uplinks)
const SERVER_SVC: Ipv4Addr = Ipv4Addr::new(198, 18, 9, 1);

fn server_config(dir: &Path, listen: SocketAddr) -> String {
    format!(
        r#"[interface]
name = "qt0"
address = ["{SERVER_TUN}/24"]
listen = "{listen}"
[tls]
cert = "server.crt"
key = "server.key"
ca = "ca.crt"
[[peer]]
name = "client"
allowed_ips = ["{CLIENT_TUN}/32"]
[quic]
idle_timeout = "10s"
[control]
socket = "{dir}/server.sock"
"#,
        dir = dir.display()
    )
}

fn client_config(dir: &Path, endpoint: SocketAddr) -> String {
    format!(
        r#"[interface]
name = "qt0"
address = ["{CLIENT_TUN}/24"]
mtu = 1280
[tls]
cert = "client.crt"
key = "client.key"
ca = "ca.crt"
[[peer]]
name = "server"
endpoint = "{endpoint}"
allowed_ips = ["198.19.0.0/24"]
keepalive = "1s"
[quic]
idle_timeout = "10s"
[control]
socket = "{dir}/client.sock"
"#,
        dir = dir.display()
    )
}

/// Start the server on `listen` and a client whose peer endpoint is `endpoint`; both connected
fn start_pair(
    server_host: &Host,
    client_host: &Host,
    dir: &Path,
    listen: SocketAddr,
    endpoint: SocketAddr,
) -> (Daemon, Daemon) {
    let server = Daemon::start(server_host, dir, "server", &server_config(dir, listen));
    let t0 = Instant::now();
    while server.status().is_none() && t0.elapsed() < Duration::from_secs(5) {
        std::thread::sleep(Duration::from_millis(20));
    }
    let client = Daemon::start(client_host, dir, "client", &client_config(dir, endpoint));
    assert!(
        client
            .wait_for(Duration::from_secs(10), |p| p.state == PeerState::Connected)
            .is_some(),
        "no tunnel"
    );
    (server, client)
}

/// A rate-limited transfer through the tunnel on its own thread: the test changes the network
/// while it runs
fn start_transfer(
    server_host: &Host,
    client_host: &Host,
    bytes: u64,
    rate: u64,
    timeout: Duration,
) -> JoinHandle<anyhow::Result<TransferReport>> {
    let (s, c) = (server_host.clone(), client_host.clone());
    let opts = TransferOptions {
        server_addr: SocketAddr::new(IpAddr::V4(SERVER_TUN), 5001),
        bytes,
        timeout,
        rate: Some(rate),
        seed: 5,
    };
    std::thread::spawn(move || tcp_transfer_with(&s, &c, &opts))
}

fn finish(t: JoinHandle<anyhow::Result<TransferReport>>, what: &str) -> TransferReport {
    let r = t.join().expect("transfer thread").expect("transfer setup");
    eprintln!(
        "{what}: {} bytes in {:.1}s, interruption (longest gap in received bytes) {} ms, resets {}",
        r.bytes,
        r.duration.as_secs_f64(),
        r.max_stall.as_millis(),
        r.resets
    );
    assert!(
        r.sha256_match && !r.timed_out && !r.resets,
        "{what}: transfer broken: {r:?}"
    );
    r
}

fn endpoint_ip(p: &PeerStatus) -> Option<IpAddr> {
    p.endpoint
        .as_deref()
        .and_then(|e| e.parse::<SocketAddr>().ok())
        .map(|a| a.ip())
}

/// (a) The client's underlay address changes mid-transfer: the old address is removed, a new
/// one added; the client migrates at once and the inner TCP connection carries on
#[test]
fn address_change_mid_transfer() {
    if !testnet::require_root() {
        return;
    }
    let net = TestNet::new().expect("testnet");
    let sh = net.host("s").expect("host s");
    let ch = net.host("c").expect("host c");
    let link = net.link(&sh, &ch, None).expect("link");
    let dir = TempDir::new("quictun-roam", "addr");
    certs(&dir.0, link.a.v4, &["client"]);
    let listen = SocketAddr::new(IpAddr::V4(link.a.v4), 4433);
    let (server, client) = start_pair(&sh, &ch, &dir.0, listen, listen);
    let old = IpAddr::V4(link.b.v4);
    assert_eq!(server.peer().as_ref().and_then(endpoint_ip), Some(old));

    // 6 MB at 1 MB/s: the change lands in the middle
    let t = start_transfer(&sh, &ch, 6_000_000, 1_000_000, Duration::from_secs(30));
    std::thread::sleep(Duration::from_secs(2));
    let new = Ipv4Addr::new(198, 18, link.subnet.addr().octets()[2], 77);
    let prefix = link.subnet.prefix_len();
    ch.del_address(
        &link.b.ifname,
        format!("{old}/{prefix}").parse().expect("net"),
    )
    .expect("remove old address");
    ch.add_address(
        &link.b.ifname,
        format!("{new}/{prefix}").parse().expect("net"),
    )
    .expect("add new address");
    let moved = server.wait_for(Duration::from_secs(5), |p| {
        endpoint_ip(p) == Some(IpAddr::V4(new)) && p.path_validations_ok >= 1
    });
    assert!(moved.is_some(), "the server did not follow to {new}");
    let r = finish(t, "address change");
    let c = client.peer().expect("client status");
    assert!(c.migrations >= 1, "{c:?}");
    assert!(
        c.local
            .as_deref()
            .is_some_and(|l| l.starts_with(&new.to_string())),
        "{c:?}"
    );
    assert!(
        r.max_stall < Duration::from_secs(3),
        "interruption {:?}",
        r.max_stall
    );
}

/// (b) NAT rebinding: the impair relay moves the client's source port every 2 s for 20 s; the
/// server validates and follows every new path
#[test]
fn nat_rebinding_every_two_seconds() {
    if !testnet::require_root() {
        return;
    }
    let net = TestNet::new().expect("testnet");
    let sh = net.host("s").expect("host s");
    let ch = net.host("c").expect("host c");
    let link = net.link(&sh, &ch, None).expect("link");
    let dir = TempDir::new("quictun-roam", "nat");
    certs(&dir.0, link.a.v4, &["client"]);
    let listen = SocketAddr::new(IpAddr::V4(link.a.v4), 4433);
    // The NAT sits in the server's host: clients send to it, it forwards from a port that
    // changes every 2 s
    let mut rc = RelayConfig::new(SocketAddr::new(IpAddr::V4(link.a.v4), 0), listen);
    rc.rebind_every = Some(Duration::from_secs(2));
    rc.seed = 11;
    let relay = sh.run(|| Relay::spawn(rc)).expect("netns").expect("relay");
    let (server, _client) = start_pair(&sh, &ch, &dir.0, listen, relay.local_addr());
    let before = relay.counters().rebinds;

    // 22 s at 500 kB/s: the transfer spans ten rebindings
    let t = start_transfer(&sh, &ch, 11_000_000, 500_000, Duration::from_secs(35));
    let r = finish(t, "NAT rebinding every 2 s");
    let rebinds = relay.counters().rebinds - before;
    let s = server.peer().expect("server status");
    eprintln!(
        "relay rebinds during the transfer: {rebinds}; server: migrations {}, validations ok {} failed {}",
        s.migrations, s.path_validations_ok, s.path_validations_failed
    );
    assert!(rebinds >= 9, "only {rebinds} rebinds");
    // Same connection throughout (a reconnect would reset the counters)
    assert!(s.migrations >= 9 && s.path_validations_ok >= 9, "{s:?}");
    drop(relay);
    assert!(r.duration >= Duration::from_secs(18), "{r:?}");
}

/// Client and server joined by two veth pairs (as Wi-Fi and LTE); the server's service
/// address is reached over either, the first preferred
struct TwoUplinks {
    _net: TestNet,
    sh: Host,
    ch: Host,
    l1: testnet::Link,
    l2: testnet::Link,
}

fn two_uplinks() -> TwoUplinks {
    let net = TestNet::new().expect("testnet");
    let sh = net.host("s").expect("host s");
    let ch = net.host("c").expect("host c");
    let l1 = net.link(&sh, &ch, None).expect("link 1");
    let l2 = net.link(&sh, &ch, None).expect("link 2");
    sh.ip(&["addr", "add", &format!("{SERVER_SVC}/32"), "dev", "lo"])
        .expect("service address");
    for (metric, l) in [("10", &l1), ("20", &l2)] {
        ch.ip(&[
            "route",
            "add",
            &format!("{SERVER_SVC}/32"),
            "via",
            &l.a.v4.to_string(),
            "metric",
            metric,
        ])
        .expect("route to the service address");
    }
    // A client pinned to one uplink's address may leave over the other one's route: loose
    // reverse-path filtering on both sides
    for (h, ifs) in [
        (&sh, [&l1.a.ifname, &l2.a.ifname]),
        (&ch, [&l1.b.ifname, &l2.b.ifname]),
    ] {
        for i in ["all", "default", ifs[0], ifs[1]] {
            h.sysctl(&format!("net/ipv4/conf/{i}/rp_filter"), "0")
                .expect("rp_filter");
        }
    }
    TwoUplinks {
        _net: net,
        sh,
        ch,
        l1,
        l2,
    }
}

/// (c) Uplink switch between two veth pairs: first `quictun migrate --to` (control socket)
/// moves the client to the second uplink, then that link goes down and the client moves back
/// by itself
#[test]
fn uplink_switch_by_command_and_link_down() {
    if !testnet::require_root() {
        return;
    }
    let u = two_uplinks();
    let dir = TempDir::new("quictun-roam", "uplink");
    certs(&dir.0, SERVER_SVC, &["client"]);
    let svc = SocketAddr::new(IpAddr::V4(SERVER_SVC), 4433);
    let (server, client) = start_pair(&u.sh, &u.ch, &dir.0, svc, svc);
    let (a1, a2) = (IpAddr::V4(u.l1.b.v4), IpAddr::V4(u.l2.b.v4));
    assert_eq!(server.peer().as_ref().and_then(endpoint_ip), Some(a1));

    let t = start_transfer(&u.sh, &u.ch, 9_000_000, 1_000_000, Duration::from_secs(30));
    std::thread::sleep(Duration::from_secs(2));
    let reply = control::query(
        client.control_socket(),
        &Request::Migrate { to: a2 },
        Duration::from_secs(2),
    )
    .expect("migrate request");
    assert!(reply.ok, "{reply:?}");
    assert!(
        server
            .wait_for(Duration::from_secs(5), |p| endpoint_ip(p) == Some(a2))
            .is_some(),
        "the server did not follow the client to {a2}"
    );
    std::thread::sleep(Duration::from_secs(2));
    // The active uplink fails: the client must fall back to the first one by itself
    u.l2.set_down().expect("link 2 down");
    assert!(
        server
            .wait_for(Duration::from_secs(5), |p| endpoint_ip(p) == Some(a1))
            .is_some(),
        "the client did not move back to {a1} when its uplink went down"
    );
    let r = finish(t, "uplink switch (migrate --to, then link down)");
    let c = client.peer().expect("client status");
    assert!(c.migrations >= 2, "{c:?}");
    assert!(
        c.local
            .as_deref()
            .is_some_and(|l| l.starts_with(&a1.to_string())),
        "{c:?}"
    );
    assert!(
        r.max_stall < Duration::from_secs(5),
        "interruption {:?}",
        r.max_stall
    );
}

/// (e) Make-before-break: a move to an uplink whose return path is dead fails validation and
/// the client goes back to its previous socket by itself
#[test]
fn failed_validation_returns_to_the_old_path() {
    if !testnet::require_root() {
        return;
    }
    let u = two_uplinks();
    let dir = TempDir::new("quictun-roam", "fallback");
    certs(&dir.0, SERVER_SVC, &["client"]);
    // An address of the client that the server has no route back to
    let dead = Ipv4Addr::new(198, 18, 50, 2);
    u.ch.ip(&["addr", "add", &format!("{dead}/32"), "dev", "lo"])
        .expect("dead-end address");
    let svc = SocketAddr::new(IpAddr::V4(SERVER_SVC), 4433);
    let (server, client) = start_pair(&u.sh, &u.ch, &dir.0, svc, svc);
    let a1 = IpAddr::V4(u.l1.b.v4);

    let t = start_transfer(&u.sh, &u.ch, 10_000_000, 1_000_000, Duration::from_secs(30));
    std::thread::sleep(Duration::from_secs(2));
    let reply = control::query(
        client.control_socket(),
        &Request::Migrate {
            to: IpAddr::V4(dead),
        },
        Duration::from_secs(2),
    )
    .expect("migrate request");
    assert!(reply.ok, "{reply:?}");
    let back = client.wait_for(Duration::from_secs(10), |p| {
        p.path_validations_failed >= 1
            && p.local
                .as_deref()
                .is_some_and(|l| l.starts_with(&a1.to_string()))
    });
    assert!(back.is_some(), "the client did not return to {a1}");
    assert!(
        server
            .wait_for(Duration::from_secs(5), |p| endpoint_ip(p) == Some(a1))
            .is_some(),
        "the server did not return to {a1}"
    );
    let r = finish(t, "failed validation, back to the old socket");
    let c = client.peer().expect("client status");
    assert!(c.path_validations_ok >= 1, "{c:?}");
    assert!(
        r.max_stall < Duration::from_secs(8),
        "interruption {:?}",
        r.max_stall
    );
}

/// What the attacker forwarder did
#[derive(Default)]
struct AttackCounters {
    /// Bytes the attacker sent to the server from the spoofed address
    spoofed_sent: AtomicU64,
    /// Bytes the server sent to the spoofed address (dropped by the attacker)
    to_spoofed: AtomicU64,
}

/// An on-path attacker between client and server: it forwards the client's packets from a
/// fixed address, and while `attack` is set it races a copy of each one from the spoofed
/// address ahead of the original (RFC 9000 §9.3.3). It cannot answer PATH_CHALLENGEs sent to
/// the spoofed address: it never forwards them to the client.
fn attacker(
    front: UdpSocket,
    real: UdpSocket,
    spoof: UdpSocket,
    server: SocketAddr,
    attack: Arc<AtomicBool>,
    stop: Arc<AtomicBool>,
    counters: Arc<AttackCounters>,
) -> JoinHandle<()> {
    std::thread::spawn(move || {
        for s in [&front, &real, &spoof] {
            let _ = s.set_nonblocking(true);
        }
        let mut client: Option<SocketAddr> = None;
        let mut buf = vec![0u8; 65536];
        let mut delayed: std::collections::VecDeque<(Instant, Vec<u8>)> = Default::default();
        // Bounded by the stop flag (set by the test, also on failure through Drop)
        while !stop.load(Ordering::Relaxed) {
            let mut busy = false;
            // Up to 64 datagrams per socket and round, so no direction starves another
            for _ in 0..64 {
                let Ok((n, from)) = front.recv_from(&mut buf) else {
                    break;
                };
                busy = true;
                client = Some(from);
                if attack.load(Ordering::Relaxed) {
                    let _ = spoof.send_to(&buf[..n], server);
                    counters.spoofed_sent.fetch_add(n as u64, Ordering::Relaxed);
                    delayed.push_back((
                        Instant::now() + Duration::from_millis(20),
                        buf[..n].to_vec(),
                    ));
                } else {
                    let _ = real.send_to(&buf[..n], server);
                }
            }
            let now = Instant::now();
            while delayed.front().is_some_and(|(at, _)| *at <= now) {
                if let Some((_, d)) = delayed.pop_front() {
                    let _ = real.send_to(&d, server);
                }
            }
            for _ in 0..64 {
                let Ok((n, _)) = real.recv_from(&mut buf) else {
                    break;
                };
                busy = true;
                if let Some(c) = client {
                    let _ = front.send_to(&buf[..n], c);
                }
            }
            for _ in 0..64 {
                let Ok((n, _)) = spoof.recv_from(&mut buf) else {
                    break;
                };
                busy = true;
                counters.to_spoofed.fetch_add(n as u64, Ordering::Relaxed);
            }
            if !busy {
                std::thread::sleep(Duration::from_micros(200));
            }
        }
    })
}

struct StopOnDrop(Arc<AtomicBool>, Option<JoinHandle<()>>);

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
        if let Some(t) = self.1.take() {
            let _ = t.join();
        }
    }
}

/// (d) An attacker races the client's packets from another address: the server probes that
/// address, validation fails, it returns to the client's real address, and the anti-
/// amplification limit bounds what it sent to the spoofed one
#[test]
fn spoofed_address_cannot_move_the_connection() {
    if !testnet::require_root() {
        return;
    }
    let net = TestNet::new().expect("testnet");
    let sh = net.host("s").expect("host s");
    let ch = net.host("c").expect("host c");
    let link = net.link(&sh, &ch, None).expect("link");
    let dir = TempDir::new("quictun-roam", "spoof");
    certs(&dir.0, link.a.v4, &["client"]);
    let spoofed = Ipv4Addr::new(198, 18, 200, 9);
    sh.ip(&["addr", "add", &format!("{spoofed}/32"), "dev", "lo"])
        .expect("spoofed address");
    let listen = SocketAddr::new(IpAddr::V4(link.a.v4), 4433);
    let (front, real, spoof) = sh
        .run(|| {
            (
                UdpSocket::bind(SocketAddr::new(IpAddr::V4(link.a.v4), 0)),
                UdpSocket::bind(SocketAddr::new(IpAddr::V4(link.a.v4), 0)),
                UdpSocket::bind(SocketAddr::new(IpAddr::V4(spoofed), 0)),
            )
        })
        .expect("netns");
    let (front, real, spoof) = (
        front.expect("front"),
        real.expect("real"),
        spoof.expect("spoof"),
    );
    let front_addr = front.local_addr().expect("addr");
    let real_addr = real.local_addr().expect("addr");
    let attack = Arc::new(AtomicBool::new(false));
    let stop = Arc::new(AtomicBool::new(false));
    let counters = Arc::new(AttackCounters::default());
    let _guard = StopOnDrop(
        stop.clone(),
        Some(attacker(
            front,
            real,
            spoof,
            listen,
            attack.clone(),
            stop,
            counters.clone(),
        )),
    );
    let (server, _client) = start_pair(&sh, &ch, &dir.0, listen, front_addr);
    assert_eq!(
        server.peer().and_then(|p| p.endpoint),
        Some(real_addr.to_string())
    );

    let t = start_transfer(&sh, &ch, 8_000_000, 1_000_000, Duration::from_secs(30));
    std::thread::sleep(Duration::from_secs(1));
    // Race long enough for the server's validation of the spoofed address to time out
    attack.store(true, Ordering::Relaxed);
    let failed = server.wait_for(Duration::from_secs(8), |p| p.path_validations_failed >= 1);
    attack.store(false, Ordering::Relaxed);
    assert!(
        failed.is_some(),
        "validation of the spoofed address never failed"
    );
    let back = server.wait_for(Duration::from_secs(3), |p| {
        p.endpoint.as_deref() == Some(&real_addr.to_string())
    });
    assert!(
        back.is_some(),
        "traffic did not return to the client's address"
    );
    let r = finish(t, "spoofed-address attack");
    let s = server.peer().expect("server status");
    assert_eq!(s.endpoint, Some(real_addr.to_string()), "{s:?}");
    let (sent, got) = (
        counters.spoofed_sent.load(Ordering::Relaxed),
        counters.to_spoofed.load(Ordering::Relaxed),
    );
    eprintln!(
        "attacker sent {sent} B from {spoofed}; the server sent {got} B there; validations failed {}",
        s.path_validations_failed
    );
    // RFC 9000 §8.1: at most three times what arrived from the unvalidated address
    assert!(got <= 3 * sent, "amplification: {got} B for {sent} B");
    assert!(r.bytes == 8_000_000);
}
