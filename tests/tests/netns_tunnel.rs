//! End-to-end tests of the quictun daemon in network namespaces (root only; skip otherwise)
//!
//! Each test builds two hosts joined by veth, creates certificates in a temp dir and runs
//! `tunnel::up::run` in-process on a thread inside each host's namespace (the TUN and the UDP
//! socket belong to that namespace). Status comes from the daemons' control sockets.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use quictun_tests::daemon::{certs, Daemon, TempDir};
use quictun_tests::testnet::{self, Host, Link, TestNet};
use quictun_tests::traffic::{ping, tcp_transfer, udp_echo_server, udp_ping};
use tunnel::cert::{generate_ca, generate_peer, PeerCertRequest};
use tunnel::control::PeerState;

const SERVER_TUN: Ipv4Addr = Ipv4Addr::new(198, 19, 0, 1);
const CLIENT_TUN: Ipv4Addr = Ipv4Addr::new(198, 19, 0, 2);
const SERVER_TUN6: Ipv6Addr = Ipv6Addr::new(0xfd00, 0x19, 0, 0, 0, 0, 0, 1);
const CLIENT_TUN6: Ipv6Addr = Ipv6Addr::new(0xfd00, 0x19, 0, 0, 0, 0, 0, 2);

struct Opts<'a> {
    carriage: &'a str,
    client_mtu: u16,
    /// Client certificate file stem
    client_cert: &'a str,
    /// CA file the client presents a certificate from (its own trust anchor stays ca.crt)
    client_dir: Option<&'a Path>,
    /// The client's allowed_ips for the server, as TOML array items
    client_allowed: &'a str,
}

impl Default for Opts<'_> {
    fn default() -> Self {
        Self {
            carriage: "datagram",
            client_mtu: 1280,
            client_cert: "client",
            client_dir: None,
            client_allowed: r#""198.19.0.0/24", "fd00:19::/64""#,
        }
    }
}

fn server_config(dir: &Path, listen: SocketAddr, o: &Opts<'_>) -> String {
    format!(
        r#"[interface]
name = "qt0"
address = ["{SERVER_TUN}/24", "{SERVER_TUN6}/64"]
listen = "{listen}"
[tls]
cert = "server.crt"
key = "server.key"
ca = "ca.crt"
[[peer]]
name = "client"
allowed_ips = ["{CLIENT_TUN}/32", "{CLIENT_TUN6}/128"]
carriage = "{carriage}"
[quic]
idle_timeout = "10s"
[control]
socket = "{dir}/server.sock"
"#,
        carriage = o.carriage,
        dir = dir.display()
    )
}

fn client_config(dir: &Path, endpoint: SocketAddr, o: &Opts<'_>) -> String {
    let cert_dir = o.client_dir.unwrap_or(dir);
    format!(
        r#"[interface]
name = "qt0"
address = ["{CLIENT_TUN}/24", "{CLIENT_TUN6}/64"]
mtu = {mtu}
[tls]
cert = "{cd}/{name}.crt"
key = "{cd}/{name}.key"
ca = "{dir}/ca.crt"
[[peer]]
name = "server"
endpoint = "{endpoint}"
allowed_ips = [{allowed}]
carriage = "{carriage}"
keepalive = "2s"
[quic]
idle_timeout = "10s"
[control]
socket = "{dir}/client.sock"
"#,
        mtu = o.client_mtu,
        allowed = o.client_allowed,
        cd = cert_dir.display(),
        name = o.client_cert,
        carriage = o.carriage,
        dir = dir.display()
    )
}

struct Setup {
    _net: TestNet,
    server_host: Host,
    client_host: Host,
    link: Link,
    dir: TempDir,
}

fn setup(tag: &str) -> Setup {
    let net = TestNet::new().expect("testnet");
    let server_host = net.host("s").expect("host s");
    let client_host = net.host("c").expect("host c");
    let link = net
        .link(&server_host, &client_host, None)
        .expect("veth link");
    let dir = TempDir::new("quictun-e2e", tag);
    certs(&dir.0, link.a.v4, &["client", "mallory"]);
    Setup {
        _net: net,
        server_host,
        client_host,
        link,
        dir,
    }
}

fn start_pair(s: &Setup, o: &Opts<'_>) -> (Daemon, Daemon) {
    let listen = SocketAddr::new(IpAddr::V4(s.link.a.v4), 4433);
    let server = Daemon::start(
        &s.server_host,
        &s.dir.0,
        "server",
        &server_config(&s.dir.0, listen, o),
    );
    // The server must be bound before the client's first Initial, or the first try is lost
    let t0 = Instant::now();
    while server.status().is_none() && t0.elapsed() < Duration::from_secs(5) {
        std::thread::sleep(Duration::from_millis(20));
    }
    let client = Daemon::start(
        &s.client_host,
        &s.dir.0,
        "client",
        &client_config(&s.dir.0, listen, o),
    );
    (server, client)
}

#[test]
fn datagram_ping_tcp_udp_and_spoofing() {
    if !testnet::require_root() {
        return;
    }
    let s = setup("dgram");
    let (server, client) = start_pair(&s, &Opts::default());
    assert!(client.wait_connected(Duration::from_secs(10)), "no tunnel");

    let p = ping(&s.client_host, IpAddr::V4(SERVER_TUN), 3).expect("ping v4");
    assert_eq!(p.received, 3, "{p:?}");
    let p6 = ping(&s.server_host, IpAddr::V6(CLIENT_TUN6), 3).expect("ping v6");
    assert_eq!(p6.received, 3, "{p6:?}");

    let r = tcp_transfer(
        &s.server_host,
        &s.client_host,
        SocketAddr::new(IpAddr::V4(SERVER_TUN), 5001),
        64 << 20,
        Duration::from_secs(30),
    )
    .expect("transfer");
    assert!(r.sha256_match && !r.timed_out, "{r:?}");
    eprintln!(
        "64 MiB through the datagram tunnel: {:.0} Mbit/s",
        r.bits_per_sec() / 1e6
    );

    let echo = udp_echo_server(
        Some(&s.server_host),
        SocketAddr::new(IpAddr::V4(SERVER_TUN), 7000),
    )
    .expect("echo");
    let u = udp_ping(
        Some(&s.client_host),
        echo.local_addr(),
        50,
        Duration::from_millis(5),
        // Returns once all replies are in; a long margin only helps a loaded machine
        Duration::from_secs(5),
    )
    .expect("udp ping");
    assert!(u.received >= 48, "{u:?}");

    // Counters: the client sent at least what the server delivered
    let st = client.status().expect("client status");
    let peer = &st.peers[0];
    assert!(peer.tx_packets > 40_000 && peer.rtt_ms.is_some() && peer.cwnd.is_some());
    assert!(peer.max_datagram.unwrap_or(0) >= 1280, "{peer:?}");

    // A spoofed inner source: the client host sends from an address the server does not
    // accept from this peer; the server drops and counts it
    s.client_host
        .ip(&["addr", "add", "198.19.0.77/32", "dev", "qt0"])
        .expect("extra address");
    let _ = s.client_host.command(Command::new("ping").args([
        "-n",
        "-c",
        "3",
        "-i",
        "0.2",
        "-W",
        "1",
        "-I",
        "198.19.0.77",
        "198.19.0.1",
    ]));
    let st = server.status().expect("server status");
    assert!(st.peers[0].drops.spoofed_source >= 3, "{st:?}");
    assert!(st.drops.spoofed_source >= 3);
}

#[test]
fn stream_carriage() {
    if !testnet::require_root() {
        return;
    }
    let s = setup("stream");
    let o = Opts {
        carriage: "stream",
        ..Opts::default()
    };
    let (_server, client) = start_pair(&s, &o);
    assert!(client.wait_connected(Duration::from_secs(10)), "no tunnel");
    let p = ping(&s.client_host, IpAddr::V4(SERVER_TUN), 3).expect("ping");
    assert_eq!(p.received, 3, "{p:?}");
    let r = tcp_transfer(
        &s.server_host,
        &s.client_host,
        SocketAddr::new(IpAddr::V4(SERVER_TUN), 5001),
        16 << 20,
        Duration::from_secs(30),
    )
    .expect("transfer");
    assert!(r.sha256_match && !r.timed_out, "{r:?}");
    let st = client.status().expect("status");
    assert!(st.peers[0].tx_packets > 1000);
}

#[test]
fn oversize_packet_gets_packet_too_big() {
    if !testnet::require_root() {
        return;
    }
    let s = setup("ptb");
    // The client's TUN claims 1500 bytes, more than a datagram carries on a 1500-byte underlay:
    // the tunnel must answer big packets with Packet Too Big instead of black-holing them
    let o = Opts {
        client_mtu: 1500,
        ..Opts::default()
    };
    let (_server, client) = start_pair(&s, &o);
    assert!(client.wait_connected(Duration::from_secs(10)), "no tunnel");
    let out = s
        .client_host
        .command(Command::new("ping").args([
            "-n",
            "-c",
            "2",
            "-i",
            "0.2",
            "-W",
            "1",
            "-M",
            "do",
            "-s",
            "1472",
            "198.19.0.1",
        ]))
        .expect("ping");
    let text =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    let st = client.status().expect("status");
    assert!(st.ptb_sent >= 1, "{st:?}\n{text}");
    // PMTUD then works: a transfer with full-size segments completes
    let r = tcp_transfer(
        &s.server_host,
        &s.client_host,
        SocketAddr::new(IpAddr::V4(SERVER_TUN), 5001),
        4 << 20,
        Duration::from_secs(20),
    )
    .expect("transfer");
    assert!(r.sha256_match && !r.timed_out, "{r:?}");
}

#[test]
fn server_restart_client_reconnects() {
    if !testnet::require_root() {
        return;
    }
    let s = setup("restart");
    let o = Opts::default();
    let (server, client) = start_pair(&s, &o);
    assert!(client.wait_connected(Duration::from_secs(10)), "no tunnel");
    assert_eq!(
        ping(&s.client_host, IpAddr::V4(SERVER_TUN), 2)
            .expect("ping")
            .received,
        2
    );
    drop(server);
    let listen = SocketAddr::new(IpAddr::V4(s.link.a.v4), 4433);
    let _server = Daemon::start(
        &s.server_host,
        &s.dir.0,
        "server",
        &server_config(&s.dir.0, listen, &o),
    );
    // Traffic resumes once the client has reconnected (the TUN stayed up meanwhile)
    let t0 = Instant::now();
    let mut ok = false;
    while t0.elapsed() < Duration::from_secs(15) {
        if ping(&s.client_host, IpAddr::V4(SERVER_TUN), 1).is_ok_and(|p| p.received == 1) {
            ok = true;
            break;
        }
    }
    assert!(ok, "no traffic after server restart: {:?}", client.status());
    eprintln!("reconnected after {:.1} s", t0.elapsed().as_secs_f64());
}

#[test]
fn foreign_ca_and_unknown_peer_are_refused() {
    if !testnet::require_root() {
        return;
    }
    let s = setup("refuse");
    // A client certificate from another CA
    let other = TempDir::new("quictun-e2e", "other-ca");
    generate_ca(&other.0, true).expect("other ca");
    generate_peer(
        &other.0,
        &other.0,
        &PeerCertRequest {
            name: "client".into(),
            dns: vec![],
            ips: vec![],
        },
        true,
    )
    .expect("cert");
    let o = Opts {
        client_dir: Some(&other.0),
        ..Opts::default()
    };
    {
        let (server, client) = start_pair(&s, &o);
        assert!(!client.wait_connected(Duration::from_secs(2)));
        let st = server.status().expect("status");
        assert_eq!(st.peers[0].state, PeerState::Waiting);
    }
    // A certificate from the right CA whose name is no configured peer
    let o = Opts {
        client_cert: "mallory",
        ..Opts::default()
    };
    let (server, _client) = start_pair(&s, &o);
    // The name is checked after the TLS handshake, so the client may look connected for a
    // moment before the server's close arrives; the server is the authority here.
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(
        server.status().expect("status").peers[0].state,
        PeerState::Waiting
    );
}

#[test]
fn full_tunnel_keeps_its_endpoint_outside() {
    if !testnet::require_root() {
        return;
    }
    let s = setup("full");
    // The server listens behind the client's default route, as a server on the internet would;
    // a second address there is reachable only through the tunnel's /1 routes
    let far = Ipv4Addr::new(198, 18, 200, 1);
    let beyond = Ipv4Addr::new(198, 18, 201, 1);
    for a in [far, beyond] {
        s.server_host
            .ip(&["addr", "add", &format!("{a}/32"), "dev", "lo"])
            .expect("server address");
    }
    let gateway = s.link.a.v4.to_string();
    s.client_host
        .ip(&["route", "add", "default", "via", &gateway])
        .expect("client default route");
    let o = Opts {
        client_allowed: r#""0.0.0.0/0", "::/0""#,
        ..Opts::default()
    };
    let listen = SocketAddr::new(IpAddr::V4(far), 4433);
    let server = Daemon::start(
        &s.server_host,
        &s.dir.0,
        "server",
        &server_config(&s.dir.0, listen, &o),
    );
    let t0 = Instant::now();
    while server.status().is_none() && t0.elapsed() < Duration::from_secs(5) {
        std::thread::sleep(Duration::from_millis(20));
    }
    let client = Daemon::start(
        &s.client_host,
        &s.dir.0,
        "client",
        &client_config(&s.dir.0, listen, &o),
    );
    assert!(
        client.wait_connected(Duration::from_secs(10)),
        "full tunnel never connected (routing loop?)"
    );
    let host_route = s
        .client_host
        .ip(&["route", "show", &format!("{far}/32")])
        .expect("ip route");
    assert!(
        host_route.contains(&format!("via {gateway}")),
        "no endpoint host route: {host_route:?}"
    );
    let routes = s.client_host.ip(&["route", "show"]).expect("ip route");
    assert!(routes.contains("0.0.0.0/1 dev qt0"), "{routes}");
    assert!(routes.contains("128.0.0.0/1 dev qt0"), "{routes}");
    assert!(
        routes.contains(&format!("default via {gateway}")),
        "{routes}"
    );

    let p = ping(&s.client_host, IpAddr::V4(beyond), 3).expect("ping beyond");
    assert_eq!(
        p.received, 3,
        "address behind the server through the tunnel: {p:?}"
    );
    let r = tcp_transfer(
        &s.server_host,
        &s.client_host,
        SocketAddr::new(IpAddr::V4(SERVER_TUN), 5001),
        8 << 20,
        Duration::from_secs(30),
    )
    .expect("transfer");
    assert!(r.sha256_match && !r.timed_out, "{r:?}");
    let st = client.status().expect("status");
    assert!(st.peers[0].rx_packets > 100, "{:?}", st.peers[0]);

    drop(client);
    let after = s.client_host.ip(&["route", "show"]).expect("ip route");
    assert!(
        !after.contains(&far.to_string()) && !after.contains("0.0.0.0/1"),
        "routes left behind: {after}"
    );
    assert!(after.contains(&format!("default via {gateway}")), "{after}");
}

/// The interface MTU of `qt0` in `host`
fn tun_mtu(host: &Host) -> Option<usize> {
    let out = host.ip(&["link", "show", "qt0"]).ok()?;
    let after = out.split(" mtu ").nth(1)?;
    after.split_whitespace().next()?.parse().ok()
}

#[test]
fn mtu_auto_follows_the_path() {
    if !testnet::require_root() {
        return;
    }
    let s = setup("mtuauto");
    let o = Opts::default();
    let listen = SocketAddr::new(IpAddr::V4(s.link.a.v4), 4433);
    let auto =
        |text: String| text.replacen("name = \"qt0\"\n", "name = \"qt0\"\nmtu = \"auto\"\n", 1);
    let client_text = auto(client_config(&s.dir.0, listen, &o).replacen("mtu = 1280\n", "", 1));
    let server = Daemon::start(
        &s.server_host,
        &s.dir.0,
        "server",
        &auto(server_config(&s.dir.0, listen, &o)),
    );
    let t0 = Instant::now();
    while server.status().is_none() && t0.elapsed() < Duration::from_secs(5) {
        std::thread::sleep(Duration::from_millis(20));
    }
    let client = Daemon::start(&s.client_host, &s.dir.0, "client", &client_text);
    assert!(client.wait_connected(Duration::from_secs(10)), "no tunnel");
    // It starts at 1280 but PMTUD may already have raised it by now: never below, though
    assert!(tun_mtu(&s.client_host).is_some_and(|m| m >= 1280));
    // PMTUD over the 1500-byte veth finds room for larger datagrams; the interfaces follow
    let t0 = Instant::now();
    let mut mtu = 1280;
    while t0.elapsed() < Duration::from_secs(20) {
        mtu = tun_mtu(&s.client_host).unwrap_or(0);
        if mtu > 1280 && tun_mtu(&s.server_host).unwrap_or(0) > 1280 {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(mtu > 1280 && mtu <= 1472, "client MTU stayed at {mtu}");
    let max = client.status().expect("status").peers[0].max_datagram;
    assert_eq!(max, Some(mtu as u64), "the MTU is the datagram limit");
    // A packet of exactly the new MTU, unfragmented, crosses the tunnel
    let size = (mtu - 28).to_string();
    let out = s
        .client_host
        .command(Command::new("ping").args([
            "-c",
            "2",
            "-W",
            "2",
            "-M",
            "do",
            "-s",
            &size,
            &SERVER_TUN.to_string(),
        ]))
        .expect("ping");
    assert!(
        out.status.success(),
        "full-size ping failed: {}",
        String::from_utf8_lossy(&out.stdout)
    );
}
