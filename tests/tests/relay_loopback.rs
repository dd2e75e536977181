//! The impairment relay over loopback (no root needed): delay, loss, duplication, reordering
//! and NAT rebinding as seen by a real UDP client and server

use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

use quictun_tests::relay::{Impairment, Relay, RelayConfig};
use quictun_tests::traffic::{udp_echo_server, udp_ping};

fn any() -> SocketAddr {
    "127.0.0.1:0".parse().expect("addr")
}

fn relay_to(upstream: SocketAddr, imp: Impairment, seed: u64) -> quictun_tests::relay::RelayHandle {
    let mut cfg = RelayConfig::new(any(), upstream);
    cfg.impairment = imp;
    cfg.seed = seed;
    Relay::spawn(cfg).expect("spawn relay")
}

#[test]
fn delay_is_applied_each_way() {
    let echo = udp_echo_server(None, any()).expect("echo");
    let relay = relay_to(
        echo.local_addr(),
        Impairment {
            delay: Duration::from_millis(20),
            ..Impairment::default()
        },
        1,
    );
    let r = udp_ping(
        None,
        relay.local_addr(),
        20,
        Duration::from_millis(5),
        Duration::from_secs(1),
    )
    .expect("ping");
    assert_eq!(r.received, 20);
    let (min, avg) = (r.rtt_min.expect("rtt"), r.rtt_avg.expect("rtt"));
    // 20 ms each way; allow scheduling slack on a busy 2-core VM.
    assert!(min >= Duration::from_millis(40), "min rtt {min:?}");
    assert!(avg >= min, "avg rtt {avg:?} below min {min:?}");
    let c = relay.stop();
    assert_eq!((c.from_client, c.to_server, c.to_client), (20, 20, 20));
}

#[test]
fn loss_rate_within_tolerance() {
    let echo = udp_echo_server(None, any()).expect("echo");
    let relay = relay_to(
        echo.local_addr(),
        Impairment {
            loss: 0.2,
            ..Impairment::default()
        },
        2,
    );
    let r = udp_ping(
        None,
        relay.local_addr(),
        1000,
        Duration::from_micros(200),
        Duration::from_millis(500),
    )
    .expect("ping");
    // Loss applies in both directions: P(answer) = 0.8 * 0.8 = 0.64.
    let rate = f64::from(r.received) / f64::from(r.sent);
    assert!(
        (0.57..=0.71).contains(&rate),
        "answered {rate:.3}, expected ~0.64"
    );
    let c = relay.stop();
    assert!(c.dropped > 0);
}

#[test]
fn duplication_is_visible() {
    let echo = udp_echo_server(None, any()).expect("echo");
    let relay = relay_to(
        echo.local_addr(),
        Impairment {
            duplicate: 0.1,
            ..Impairment::default()
        },
        3,
    );
    let r = udp_ping(
        None,
        relay.local_addr(),
        500,
        Duration::from_micros(200),
        Duration::from_millis(500),
    )
    .expect("ping");
    assert_eq!(r.received, 500);
    // Each direction duplicates 10%; a request duplicate is echoed twice and may be duplicated
    // again on the way back, so expect roughly 20% extra answers.
    assert!(
        (50..=160).contains(&r.duplicates),
        "duplicates {}",
        r.duplicates
    );
    assert!(relay.stop().duplicated > 0);
}

#[test]
fn jitter_reorders() {
    let echo = udp_echo_server(None, any()).expect("echo");
    let relay = relay_to(
        echo.local_addr(),
        Impairment {
            delay: Duration::from_millis(10),
            jitter: Duration::from_millis(5),
            ..Impairment::default()
        },
        4,
    );
    let r = udp_ping(
        None,
        relay.local_addr(),
        300,
        Duration::from_micros(300),
        Duration::from_secs(1),
    )
    .expect("ping");
    assert_eq!(r.received, 300);
    assert!(r.reordered > 10, "only {} reordered", r.reordered);
    let (min, max) = (r.rtt_min.expect("rtt"), r.rtt_max.expect("rtt"));
    assert!(min >= Duration::from_millis(10), "min {min:?}");
    assert!(
        max >= Duration::from_millis(24),
        "max {max:?}: no jitter visible"
    );
}

#[test]
fn rebinding_changes_upstream_source_port() {
    // The "server" records which source addresses it sees and answers each datagram.
    let server = UdpSocket::bind(any()).expect("server");
    server
        .set_read_timeout(Some(Duration::from_millis(50)))
        .expect("timeout");
    let mut cfg = RelayConfig::new(any(), server.local_addr().expect("addr"));
    cfg.rebind_every = Some(Duration::from_millis(200));
    let relay = Relay::spawn(cfg).expect("relay");

    let client = UdpSocket::bind(any()).expect("client");
    client
        .set_read_timeout(Some(Duration::from_millis(50)))
        .expect("timeout");
    let mut sources = Vec::new();
    let mut answers = 0;
    let mut buf = [0u8; 64];
    let end = Instant::now() + Duration::from_millis(1100);
    while Instant::now() < end {
        client.send_to(b"hello", relay.local_addr()).expect("send");
        if let Ok((n, from)) = server.recv_from(&mut buf) {
            if !sources.contains(&from) {
                sources.push(from);
            }
            server.send_to(&buf[..n], from).expect("answer");
        }
        // The client always hears back from the same relay address.
        if let Ok((_, from)) = client.recv_from(&mut buf) {
            assert_eq!(from, relay.local_addr());
            answers += 1;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let c = relay.stop();
    assert!(sources.len() >= 4, "server saw only {sources:?}");
    assert!(sources.iter().all(|s| s.ip() == sources[0].ip()));
    assert!(c.rebinds >= 4, "rebinds {}", c.rebinds);
    assert!(answers > 20, "answers {answers}");
}
