//! Self-test of the namespace harness (root only; skips otherwise): hosts, links, ping, a TCP
//! transfer with hash check, a link down/up cycle seen as a stall, the impairment relay between
//! two hosts, and cleanup of every namespace.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use quictun_tests::relay::{Impairment, Relay, RelayConfig};
use quictun_tests::testnet::{self, namespaces_with_prefix, TestNet};
use quictun_tests::traffic::{
    ping, tcp_transfer, tcp_transfer_with, udp_echo_server, udp_ping, TransferOptions,
};

#[test]
fn two_hosts_ping_and_transfer() {
    if !testnet::require_root() {
        return;
    }
    let prefix;
    {
        let net = TestNet::new().expect("testnet");
        prefix = net.prefix();
        let a = net.host("a").expect("host a");
        let b = net.host("b").expect("host b");
        let link = net.link(&a, &b, None).expect("link");
        assert!(link.subnet.contains(&link.a.v4) && link.subnet.contains(&link.b.v4));
        assert_eq!(namespaces_with_prefix(&prefix).len(), 2);

        let p = ping(&a, IpAddr::V4(link.b.v4), 3).expect("ping v4");
        assert_eq!(p.received, 3, "{p:?}");
        assert!(p.rtt_avg.is_some());
        let p6 = ping(&b, IpAddr::V6(link.a.v6), 2).expect("ping v6");
        assert_eq!(p6.received, 2, "{p6:?}");

        let r = tcp_transfer(
            &b,
            &a,
            SocketAddr::new(IpAddr::V4(link.b.v4), 5001),
            16 << 20,
            Duration::from_secs(30),
        )
        .expect("transfer");
        assert!(r.sha256_match && !r.resets && !r.timed_out, "{r:?}");
        assert_eq!(r.bytes, 16 << 20);
        eprintln!(
            "16 MiB over veth: {:?}, {:.2} Gbit/s, max stall {:?}",
            r.duration,
            r.bits_per_sec() / 1e9,
            r.max_stall
        );

        // Extra address add/remove on a link end.
        let extra = "198.18.1.77/24".parse().expect("net");
        a.add_address(&link.a.ifname, extra).expect("add");
        assert!(a.addresses(&link.a.ifname).expect("list").contains(&extra));
        assert_eq!(
            ping(&b, "198.18.1.77".parse().expect("ip"), 1)
                .expect("ping")
                .received,
            1
        );
        a.del_address(&link.a.ifname, extra).expect("del");
        assert!(a
            .add_address(&link.a.ifname, "203.0.113.1/24".parse().expect("net"))
            .is_err());
    }
    assert!(
        namespaces_with_prefix(&prefix).is_empty(),
        "namespaces left behind"
    );
}

#[test]
fn link_down_up_shows_as_stall() {
    if !testnet::require_root() {
        return;
    }
    let net = TestNet::new().expect("testnet");
    let prefix = net.prefix();
    let a = net.host("a").expect("host a");
    let b = net.host("b").expect("host b");
    let link = net.link(&a, &b, None).expect("link");
    let opts = TransferOptions {
        server_addr: SocketAddr::new(IpAddr::V6(link.b.v6), 5002),
        bytes: 8 << 20,
        timeout: Duration::from_secs(30),
        // 4 MiB/s: a 2 s transfer, long enough for a 1 s outage in its middle.
        rate: Some(4 << 20),
        seed: 9,
    };
    let report = std::thread::scope(|s| {
        let t = s.spawn(|| tcp_transfer_with(&b, &a, &opts));
        std::thread::sleep(Duration::from_millis(500));
        link.set_down().expect("down");
        std::thread::sleep(Duration::from_millis(1000));
        link.set_up().expect("up");
        t.join().expect("transfer thread")
    })
    .expect("transfer");
    eprintln!(
        "outage of 1 s seen as {:?} stall; {report:?}",
        report.max_stall
    );
    assert!(report.sha256_match && !report.resets, "{report:?}");
    assert!(report.max_stall >= Duration::from_millis(800), "{report:?}");
    assert!(report.max_stall < Duration::from_secs(10), "{report:?}");
    // The link works normally again afterwards.
    assert_eq!(
        ping(&a, IpAddr::V4(link.b.v4), 2).expect("ping").received,
        2
    );
    drop(net);
    assert!(namespaces_with_prefix(&prefix).is_empty());
}

#[test]
fn relay_between_hosts_adds_delay() {
    if !testnet::require_root() {
        return;
    }
    let net = TestNet::new().expect("testnet");
    let prefix = net.prefix();
    // client -- relay host -- server, the relay forwarding between its two links.
    let client = net.host("client").expect("client");
    let middle = net.host("relay").expect("relay");
    let server = net.host("server").expect("server");
    let l1 = net.link(&client, &middle, None).expect("link 1");
    let l2 = net.link(&middle, &server, None).expect("link 2");

    let echo =
        udp_echo_server(Some(&server), SocketAddr::new(IpAddr::V4(l2.b.v4), 7)).expect("echo");
    let base = udp_ping(
        Some(&client),
        SocketAddr::new(IpAddr::V4(l2.b.v4), 7),
        10,
        Duration::from_millis(5),
        Duration::from_millis(500),
    );
    // No routes through the relay host: without the relay the server is unreachable.
    assert!(base.is_err() || base.as_ref().is_ok_and(|r| r.received == 0));

    let mut cfg = RelayConfig::new(
        SocketAddr::new(IpAddr::V4(l1.b.v4), 5000),
        echo.local_addr(),
    );
    cfg.impairment = Impairment {
        delay: Duration::from_millis(10),
        ..Impairment::default()
    };
    cfg.rebind_every = Some(Duration::from_millis(300));
    let relay = middle
        .run(|| Relay::spawn(cfg))
        .expect("enter")
        .expect("relay");
    let r = udp_ping(
        Some(&client),
        relay.local_addr(),
        50,
        Duration::from_millis(20),
        Duration::from_secs(1),
    )
    .expect("udp ping");
    eprintln!("via relay: {r:?}");
    // A reply in flight to the old port at a rebind is lost, as behind a real NAT.
    assert!(r.received >= 45, "{r:?}");
    let (min, avg) = (r.rtt_min.expect("rtt"), r.rtt_avg.expect("rtt"));
    assert!(
        min >= Duration::from_millis(20),
        "min rtt {min:?} < 2 x 10 ms"
    );
    assert!(avg >= min, "avg rtt {avg:?} below min {min:?}");
    assert_eq!(r.reply_sources, vec![relay.local_addr()]);
    let c = relay.stop();
    assert!(c.rebinds >= 2, "{c:?}");
    drop(echo);
    drop(net);
    assert!(namespaces_with_prefix(&prefix).is_empty());
}

#[test]
fn cleanup_on_panic() {
    if !testnet::require_root() {
        return;
    }
    let prefix = std::sync::Mutex::new(String::new());
    let res = std::panic::catch_unwind(|| {
        let net = TestNet::new().expect("testnet");
        *prefix.lock().expect("lock") = net.prefix();
        let a = net.host("a").expect("a");
        let b = net.host("b").expect("b");
        let _link = net.link(&a, &b, None).expect("link");
        let _child = a
            .spawn(std::process::Command::new("sleep").arg("30"))
            .expect("spawn");
        panic!("deliberate");
    });
    assert!(res.is_err());
    let prefix = prefix.into_inner().expect("lock");
    assert!(!prefix.is_empty());
    assert!(namespaces_with_prefix(&prefix).is_empty());
}

#[test]
fn relay_rotates_source_addresses() {
    if !testnet::require_root() {
        return;
    }
    let net = TestNet::new().expect("testnet");
    let client = net.host("c").expect("client");
    let middle = net.host("m").expect("relay");
    let server = net.host("s").expect("server");
    let l1 = net.link(&client, &middle, None).expect("link 1");
    let l2 = net.link(&middle, &server, None).expect("link 2");
    let second: std::net::Ipv4Addr = {
        let o = l2.a.v4.octets();
        [o[0], o[1], o[2], 100].into()
    };
    middle
        .add_address(
            &l2.a.ifname,
            ipnet::IpNet::new(IpAddr::V4(second), 24).expect("net"),
        )
        .expect("second address");

    // The server records the source of every datagram and answers it.
    let sock = server
        .run(|| std::net::UdpSocket::bind(SocketAddr::new(IpAddr::V4(l2.b.v4), 4433)))
        .expect("enter")
        .expect("bind");
    sock.set_read_timeout(Some(Duration::from_millis(20)))
        .expect("timeout");
    let mut cfg = RelayConfig::new(
        SocketAddr::new(IpAddr::V4(l1.b.v4), 5000),
        sock.local_addr().expect("addr"),
    );
    cfg.rebind_every = Some(Duration::from_millis(150));
    cfg.rebind_addrs = vec![IpAddr::V4(l2.a.v4), IpAddr::V4(second)];
    let relay = middle
        .run(|| Relay::spawn(cfg))
        .expect("enter")
        .expect("relay");
    let cli = client
        .run(|| std::net::UdpSocket::bind("0.0.0.0:0"))
        .expect("enter")
        .expect("bind");
    cli.set_read_timeout(Some(Duration::from_millis(20)))
        .expect("timeout");
    let mut sources = Vec::new();
    let mut answered = 0;
    let mut buf = [0u8; 64];
    // Long enough for several rebind periods; bounded in time and count.
    let end = std::time::Instant::now() + Duration::from_millis(800);
    for _ in 0..200 {
        if std::time::Instant::now() >= end {
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
        cli.send_to(b"probe", relay.local_addr()).expect("send");
        if let Ok((n, from)) = sock.recv_from(&mut buf) {
            if !sources.contains(&from) {
                sources.push(from);
            }
            let _ = sock.send_to(&buf[..n], from);
        }
        if let Ok((_, from)) = cli.recv_from(&mut buf) {
            assert_eq!(from, relay.local_addr());
            answered += 1;
        }
    }
    drop(relay);
    let ips: Vec<IpAddr> = sources.iter().map(SocketAddr::ip).collect();
    assert!(ips.contains(&IpAddr::V4(l2.a.v4)), "{sources:?}");
    assert!(ips.contains(&IpAddr::V4(second)), "{sources:?}");
    assert!(sources.len() >= 3, "{sources:?}");
    assert!(answered >= 20, "answered {answered}");
}
