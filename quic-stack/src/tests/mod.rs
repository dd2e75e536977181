//! Scenario tests: two endpoints over the deterministic simulator
//!
//! Every failure message carries the simulator seed; rerun with `QUIC_SIM_SEED` (see
//! [`crate::sim::SEED_ENV`]) to reproduce.

use std::time::Duration;

use bytes::Bytes;

use crate::config::TransportConfig;
use crate::connection::{ConnectionError, Event};
use crate::crypto;
use crate::shared::{Dir, RecvMeta};
use crate::sim::{LinkConfig, Verdict};

mod app_tls;
mod bbr;
mod deferred_tls;
mod ecn;
mod external_tls;
mod external_zero_rtt;
mod grease;
mod migration;
mod preferred_address;
mod preferred_per_conn;
mod qlog;
mod scenarios;
mod sockapi_events;
mod sockapi_hooks;
mod stress;
mod token;
mod util;
mod versions;
mod zero_rtt;

use util::{payload, Harness, Setup};

#[test]
fn handshake_v1() {
    let mut h = Harness::new(Setup::default());
    h.handshake();
    assert!(!h.client_conn().is_handshaking());
    assert!(!h.server_conn().is_handshaking());
    assert_eq!(h.client_conn().version(), crypto::VERSION_1);
    let hd = h.server_conn().handshake_data().expect("handshake data");
    assert_eq!(hd.alpn.as_deref(), Some(util::ALPN));
    // RFC 9000 §14.1: the client's first datagram carries a padded Initial
    assert!(
        h.client().sent_sizes[0] >= 1200,
        "{:?}",
        h.client().sent_sizes
    );
    // Let HANDSHAKE_DONE and the ACKs settle, then everything must be quiet and alive.
    h.pair.drive().expect("drive");
    assert!(!h.client_conn().is_closed());
    assert!(h.client_conn().stats().rtt > Duration::ZERO);
}

#[test]
fn handshake_v2() {
    // The server's preference decides (RFC 9368 §2.3): a v1-first server would move the
    // client to v1 (tests::versions)
    let mut h = Harness::new(Setup {
        version: crypto::VERSION_2,
        server_versions: Some(vec![crypto::VERSION_2, crypto::VERSION_1]),
        ..Setup::default()
    });
    h.handshake();
    assert_eq!(h.client_conn().version(), crypto::VERSION_2);
    assert_eq!(h.client_conn().stats().version_upgrades, 0);
    assert_eq!(h.server_conn().version(), crypto::VERSION_2);
    let data = payload(10_000, 2);
    assert_eq!(h.transfer(Dir::Bi, &data), data);
}

#[test]
fn one_mib_stream() {
    let mut h = Harness::new(Setup::default());
    h.handshake();
    let data = payload(1 << 20, 3);
    let start = h.now();
    let got = h.transfer(Dir::Uni, &data);
    assert_eq!(got.len(), data.len());
    assert!(got == data, "payload mismatch");
    let elapsed = h.now() - start;
    let stats = h.client_conn().stats();
    eprintln!("1 MiB in {elapsed:?}: {stats:?}");
    // 10 ms each way, no loss: slow start should get there within a few dozen RTTs
    assert!(elapsed < Duration::from_secs(2), "{elapsed:?}");
    assert_eq!(stats.packets_lost, 0);
}

#[test]
fn several_streams() {
    let mut h = Harness::new(Setup::default());
    h.handshake();
    for i in 0..5u64 {
        let data = payload(50_000 + i as usize * 1000, 10 + i);
        let dir = if i % 2 == 0 { Dir::Bi } else { Dir::Uni };
        assert_eq!(h.transfer(dir, &data), data, "stream {i}");
    }
}

#[test]
fn datagrams_both_ways() {
    let mut h = Harness::new(Setup::default());
    h.handshake();
    assert!(h
        .client_conn()
        .max_datagram_size()
        .is_some_and(|s| s > 1000));
    h.client_datagram(b"ping from client");
    h.server_conn()
        .send_datagram(Bytes::from_static(b"pong from server"))
        .expect("server datagram");
    let (ch, sh) = (h.ch, h.sh.unwrap());
    h.pair
        .drive_until(|p| {
            p.client().has_event(ch, |e| *e == Event::DatagramReceived)
                && p.server().has_event(sh, |e| *e == Event::DatagramReceived)
        })
        .expect("datagrams delivered");
    assert_eq!(
        h.server_conn().recv_datagram().as_deref(),
        Some(&b"ping from client"[..])
    );
    assert_eq!(
        h.client_conn().recv_datagram().as_deref(),
        Some(&b"pong from server"[..])
    );
    assert_eq!(h.client_conn().recv_datagram(), None);
}

#[test]
fn close_with_application_error() {
    let mut h = Harness::new(Setup::default());
    h.handshake();
    let now = h.now();
    h.client_conn().close(now, 42, b"bye");
    let sh = h.sh.unwrap();
    h.pair
        .drive_until(|p| p.server().lost_reason(sh).is_some())
        .expect("server sees close");
    assert_eq!(
        h.server().lost_reason(sh),
        Some(ConnectionError::ApplicationClosed {
            error_code: 42,
            reason: Bytes::from_static(b"bye"),
        })
    );
    // Both sides drain and the endpoints forget the connections
    let ch = h.ch;
    h.pair
        .drive_until(|p| {
            p.client().has_event(ch, |e| *e == Event::Drained)
                && p.server().has_event(sh, |e| *e == Event::Drained)
        })
        .expect("drained");
    assert_eq!(h.client().ep.open_connections(), 0);
    assert_eq!(h.server().ep.open_connections(), 0);
}

#[test]
fn idle_timeout() {
    let mut h = Harness::new(Setup {
        transport: TransportConfig {
            idle_timeout: Some(Duration::from_secs(5)),
            ..TransportConfig::default()
        },
        ..Setup::default()
    });
    h.handshake();
    let start = h.now();
    let (ch, sh) = (h.ch, h.sh.unwrap());
    h.pair
        .drive_until(|p| {
            p.client().lost_reason(ch).is_some() && p.server().lost_reason(sh).is_some()
        })
        .expect("both time out");
    assert_eq!(h.client().lost_reason(ch), Some(ConnectionError::TimedOut));
    assert_eq!(h.server().lost_reason(sh), Some(ConnectionError::TimedOut));
    let elapsed = h.now() - start;
    assert!(
        elapsed >= Duration::from_secs(5) && elapsed < Duration::from_secs(7),
        "{elapsed:?}"
    );
}

#[test]
fn keep_alive_prevents_idle_timeout() {
    let mut h = Harness::new(Setup {
        transport: TransportConfig {
            idle_timeout: Some(Duration::from_secs(2)),
            keep_alive_interval: Some(Duration::from_millis(500)),
            ..TransportConfig::default()
        },
        ..Setup::default()
    });
    h.handshake();
    let until = h.now() + Duration::from_secs(10);
    h.pair.net.run_to(until).expect("run");
    assert!(!h.client_conn().is_closed());
    assert!(!h.server_conn().is_closed());
}

fn lossy(loss: f64, seed: u64, size: usize) {
    let mut h = Harness::new(Setup {
        seed,
        link: LinkConfig {
            loss,
            delay: Duration::from_millis(20),
            ..LinkConfig::default()
        },
        ..Setup::default()
    });
    h.handshake();
    let start = h.now();
    let data = payload(size, seed);
    let got = h.transfer(Dir::Bi, &data);
    assert!(
        got == data,
        "seed {seed}: payload mismatch ({} of {} bytes)",
        got.len(),
        data.len()
    );
    let dropped =
        h.pair.to_server().stats.dropped_total() + h.pair.to_client().stats.dropped_total();
    assert!(dropped > 0, "seed {seed}: the link dropped nothing");
    let stats = h.client_conn().stats();
    assert!(stats.packets_lost > 0, "seed {seed}: {stats:?}");
    eprintln!(
        "loss {loss} seed {seed}: {size} bytes in {:?}, link dropped {dropped}, {stats:?}",
        h.now() - start
    );
}

#[test]
fn transfer_under_10_percent_loss() {
    for seed in 100..104 {
        lossy(0.10, seed, 200_000);
    }
}

#[test]
fn transfer_under_30_percent_loss() {
    for seed in 200..203 {
        lossy(0.30, seed, 50_000);
    }
}

#[test]
fn junk_datagrams_are_ignored() {
    let mut h = Harness::new(Setup::default());
    h.handshake();
    let now = h.now();
    let meta = RecvMeta {
        remote: h.pair.client_addr(),
        local_ip: None,
        ecn: None,
    };
    let mut rng_data = payload(4000, 9);
    for len in [0usize, 1, 5, 20, 100, 1200, 1500, 4000] {
        for first in [0x00u8, 0x40, 0x80, 0xc0, 0xff] {
            let d = &mut rng_data[..len];
            if let Some(b) = d.first_mut() {
                *b = first;
            }
            let mut copy = d.to_vec();
            h.server().ep.handle_datagram(now, meta, &mut copy);
            let mut copy = d.to_vec();
            h.client().ep.handle_datagram(now, meta, &mut copy);
        }
    }
    // The real connection is unaffected
    let data = payload(5000, 4);
    assert_eq!(h.transfer(Dir::Bi, &data), data);
}

#[test]
fn server_respects_amplification_limit() {
    let mut h = Harness::new(Setup::default());
    let client_id = h.pair.client;
    // Only the client's first datagram reaches the server: its address stays unvalidated
    h.pair.net.set_interceptor(move |info, _| {
        if info.src == client_id && info.index > 0 {
            Verdict::Drop
        } else {
            Verdict::Deliver
        }
    });
    let until = h.now() + Duration::from_secs(3);
    h.pair.net.run_to(until).expect("run");
    let first = h.client().sent_sizes[0];
    let server_sent: usize = h.server().sent_sizes.iter().sum();
    assert!(server_sent > 0);
    // RFC 9000 §8.1: at most three times what was received
    assert!(
        server_sent <= 3 * first,
        "server sent {server_sent} for {first} received"
    );
    // Once the client gets through again, the handshake completes
    h.pair.net.clear_interceptor();
    h.handshake();
}

#[test]
fn version_negotiation_reports_mismatch() {
    let mut h = Harness::new(Setup {
        server_versions: Some(vec![crypto::VERSION_2]),
        client_versions: Some(vec![crypto::VERSION_1]),
        ..Setup::default()
    });
    let ch = h.ch;
    h.pair
        .drive_until(|p| p.client().lost_reason(ch).is_some())
        .expect("client gives up");
    assert_eq!(
        h.client().lost_reason(ch),
        Some(ConnectionError::VersionMismatch)
    );
    assert_eq!(h.server().ep.open_connections(), 0);
}

#[test]
fn gso_batches_full_size_datagrams() {
    let mut h = Harness::new(Setup::default());
    h.handshake();
    h.pair.drive().expect("settle");
    let c = h.client_conn();
    let id = c.open(Dir::Uni).expect("open");
    let data = payload(100_000, 5);
    let n = c.write(id, &data).expect("write");
    assert!(n > 10_000);
    let now = h.now();
    let mut buf = Vec::new();
    let t = h
        .client()
        .ep
        .poll_transmit(now, 8, &mut buf)
        .expect("transmit");
    assert_eq!(t.size, buf.len());
    let seg = t
        .segment_size
        .unwrap_or_else(|| panic!("not batched: {t:?}"));
    assert_eq!(seg, usize::from(h.client_conn().current_mtu()));
    assert!(t.size > seg && t.size <= 8 * seg, "{t:?}");
}

#[test]
fn gso_batches_tunnel_sized_datagrams_below_the_mtu() {
    let mut h = Harness::new(Setup::default());
    h.handshake();
    h.pair.drive().expect("settle");
    let mtu = usize::from(h.client_conn().current_mtu());
    // One datagram per packet, each well over half the MTU but leaving room that no second
    // datagram fits into: what a tunnel with an inner MTU below the path MTU sends
    let len = mtu * 3 / 4;
    assert!(h
        .client_conn()
        .max_datagram_size()
        .is_some_and(|m| m >= len));
    for i in 0..6u8 {
        h.client_conn()
            .send_datagram(Bytes::from(vec![i; len]))
            .expect("queue datagram");
    }
    let now = h.now();
    let mut buf = Vec::new();
    let t = h
        .client()
        .ep
        .poll_transmit(now, 8, &mut buf)
        .expect("transmit");
    let seg = t
        .segment_size
        .unwrap_or_else(|| panic!("not batched: {t:?}"));
    assert!(
        seg > len && seg < mtu,
        "segment {seg}, datagram {len}, mtu {mtu}"
    );
    assert_eq!(t.size, 6 * seg, "{t:?}");
    // Every segment is a whole packet: the server gets all six datagrams intact
    let meta = RecvMeta {
        remote: h.server_conn().remote_address(),
        local_ip: None,
        ecn: None,
    };
    for segment in buf.chunks_mut(seg) {
        h.server().ep.handle_datagram(now, meta, segment);
    }
    for i in 0..6u8 {
        assert_eq!(
            h.server_conn().recv_datagram().as_deref(),
            Some(&vec![i; len][..])
        );
    }
}

#[test]
fn connection_ids_are_issued() {
    let mut h = Harness::new(Setup::default());
    h.handshake();
    h.pair.drive().expect("settle");
    // The initial CID plus NEW_CONNECTION_IDs up to the peer's limit (4)
    assert_eq!(h.server().ep.routed_cids(), 4);
    assert_eq!(h.client().ep.routed_cids(), 4);
    let data = payload(3000, 6);
    assert_eq!(h.transfer(Dir::Bi, &data), data);
}

#[test]
fn server_follows_nat_rebinding() {
    let mut h = Harness::new(Setup::default());
    h.handshake();
    h.pair.drive().expect("settle");
    let new_addr: std::net::SocketAddr = "198.18.0.2:50001".parse().unwrap();
    h.pair.rebind_client(new_addr);
    let data = payload(100_000, 7);
    assert_eq!(h.transfer(Dir::Bi, &data), data);
    assert_eq!(h.server_conn().remote_address(), new_addr);
    h.pair.drive().expect("settle");
    assert!(!h.server_conn().is_closed());
}

#[test]
fn key_updates_both_ways() {
    let mut h = Harness::new(Setup::default());
    h.handshake();
    let data = payload(50_000, 8);
    assert_eq!(h.transfer(Dir::Bi, &data), data);
    h.client_conn().initiate_key_update();
    assert_eq!(h.transfer(Dir::Bi, &data), data);
    assert_eq!(h.client_conn().stats().key_updates, 1);
    assert_eq!(h.server_conn().stats().key_updates, 1);
    h.server_conn().initiate_key_update();
    // The server needs something to send to carry the update
    h.server_conn()
        .send_datagram(Bytes::from_static(b"after update"))
        .expect("datagram");
    assert_eq!(h.transfer(Dir::Uni, &data), data);
    h.pair.drive().expect("settle");
    assert_eq!(h.client_conn().stats().key_updates, 2);
    assert_eq!(h.server_conn().stats().key_updates, 2);
    assert!(!h.client_conn().is_closed() && !h.server_conn().is_closed());
}

#[test]
fn stateless_reset_after_server_restart() {
    let mut h = Harness::new(Setup::default());
    h.handshake();
    h.pair.drive().expect("settle");
    // The server loses all state but keeps its reset key
    let fresh = crate::endpoint::Endpoint::new(
        h.server_endpoint_config.clone(),
        Some(h.server_config.clone()),
        [9; 32],
    );
    h.server().ep = fresh;
    h.client_datagram(b"anyone there?");
    let ch = h.ch;
    let before = h.server().sent_sizes.len();
    h.pair
        .drive_until(|p| p.client().lost_reason(ch).is_some())
        .expect("client learns of the reset");
    let sizes = h.server().sent_sizes[before..].to_vec();
    let stats = h.client_conn_stats();
    assert_eq!(
        h.client().lost_reason(ch),
        Some(ConnectionError::Reset),
        "server sent {sizes:?}, client {stats:?}"
    );
}

#[test]
fn mtu_discovery_finds_path_limit() {
    let mut h = Harness::new(Setup {
        link: LinkConfig {
            mtu: 1400,
            ..LinkConfig::default()
        },
        ..Setup::default()
    });
    h.handshake();
    h.pair.drive().expect("settle");
    for mtu in [h.client_conn().current_mtu(), h.server_conn().current_mtu()] {
        assert!((1384..=1400).contains(&mtu), "mtu {mtu}");
    }
    // Lost probes are not congestion
    assert_eq!(h.client_conn().stats().congestion_events, 0);
    let data = payload(200_000, 12);
    assert_eq!(h.transfer(Dir::Bi, &data), data);
    assert!(h
        .client_conn()
        .max_datagram_size()
        .is_some_and(|s| s > 1300));
}

#[test]
fn mtu_discovery_default_reaches_max_payload() {
    let mut h = Harness::new(Setup::default());
    h.handshake();
    h.pair.drive().expect("settle");
    assert_eq!(h.client_conn().current_mtu(), 1472);
    assert_eq!(h.server_conn().current_mtu(), 1472);
}

#[test]
fn impaired_links_many_seeds() {
    // Loss, reordering (jitter) and duplication together, in both directions
    for seed in 300..312u64 {
        let loss = 0.02 * (seed % 10) as f64;
        let mut h = Harness::new(Setup {
            seed,
            link: LinkConfig {
                loss,
                delay: Duration::from_millis(15),
                jitter: Duration::from_millis(10),
                duplicate: 0.05,
                ..LinkConfig::default()
            },
            ..Setup::default()
        });
        h.handshake();
        let data = payload(120_000, seed);
        let got = h.transfer(Dir::Bi, &data);
        assert!(got == data, "seed {seed} loss {loss}: payload mismatch");
        h.client_datagram(b"still alive");
        let sh = h.sh.unwrap();
        // Datagrams may be lost; the connection must stay healthy either way
        let until = h.now() + Duration::from_secs(2);
        h.pair.net.run_to(until).expect("run");
        assert!(!h.client_conn().is_closed(), "seed {seed}");
        assert!(!h.server().conn(sh).is_closed(), "seed {seed}");
    }
}

#[test]
fn server_initiated_stream_and_echo() {
    let mut h = Harness::new(Setup::default());
    h.handshake();
    let sid = h.server_conn().open(Dir::Bi).expect("server opens");
    assert_eq!(h.server_conn().write(sid, b"hello client").unwrap(), 12);
    h.server_conn().finish(sid).unwrap();
    let ch = h.ch;
    let mut got = Vec::new();
    let mut buf = [0u8; 100];
    let mut accepted = None;
    h.pair
        .drive_until(|p| {
            let c = p.client_mut().conn(ch);
            if accepted.is_none() {
                accepted = c.accept(Dir::Bi);
            }
            let Some(id) = accepted else {
                return false;
            };
            assert_eq!(id, sid);
            while let Ok(Some(r)) = c.read(id, &mut buf) {
                got.extend_from_slice(&buf[..r.len]);
                if r.fin {
                    return true;
                }
            }
            false
        })
        .expect("client reads");
    assert_eq!(got, b"hello client");
}

#[test]
fn retry_handshake() {
    for version in [crypto::VERSION_1, crypto::VERSION_2] {
        let mut h = Harness::new(Setup {
            retry: true,
            version,
            ..Setup::default()
        });
        h.handshake();
        // The server's first datagram was the Retry: small, and no connection state yet
        let first = h.server().sent_sizes[0];
        assert!(first < 200, "first server datagram {first} bytes");
        assert_eq!(h.server().ep.open_connections(), 1);
        let data = payload(30_000, 13);
        assert_eq!(h.transfer(Dir::Bi, &data), data);
    }
}

#[test]
fn retry_handshake_under_loss() {
    for seed in 400..406 {
        let mut h = Harness::new(Setup {
            seed,
            retry: true,
            link: LinkConfig {
                loss: 0.2,
                ..LinkConfig::default()
            },
            ..Setup::default()
        });
        h.handshake();
        let data = payload(20_000, seed);
        assert_eq!(h.transfer(Dir::Bi, &data), data, "seed {seed}");
    }
}

#[test]
fn client_initial_datagrams_always_padded() {
    use std::cell::Cell;
    use std::rc::Rc;
    for seed in 500..506 {
        let mut h = Harness::new(Setup {
            seed,
            link: LinkConfig {
                loss: 0.25,
                ..LinkConfig::default()
            },
            ..Setup::default()
        });
        let client_id = h.pair.client;
        let short = Rc::new(Cell::new(0u32));
        let seen = short.clone();
        h.pair.net.set_interceptor(move |info, data| {
            // A v1 long header with type Initial (RFC 9000 §17.2.2)
            let initial = data.first().is_some_and(|b| b & 0xb0 == 0x80);
            if info.src == client_id && initial && data.len() < 1200 {
                seen.set(seen.get() + 1);
            }
            Verdict::Deliver
        });
        h.handshake();
        let data = payload(10_000, seed);
        assert_eq!(h.transfer(Dir::Bi, &data), data, "seed {seed}");
        assert_eq!(
            short.get(),
            0,
            "seed {seed}: short client Initial datagrams"
        );
    }
}

/// A 20 MiB bulk transfer over a clean 5 ms link arrives intact (0.2 s of CPU in virtual time;
/// throughput itself is measured by `cargo bench -p quic-stack --bench bulk`, not here)
#[test]
fn twenty_mib_bulk_transfer_arrives_intact() {
    let mut h = Harness::new(Setup {
        link: LinkConfig {
            delay: Duration::from_millis(5),
            ..LinkConfig::default()
        },
        ..Setup::default()
    });
    h.handshake();
    let data = payload(20 << 20, 1);
    let got = h.transfer(Dir::Uni, &data);
    assert!(got == data, "20 MiB corrupted or truncated");
}

#[test]
fn bad_certificate_closes_both_sides() {
    let mut h = Harness::new(Setup {
        server_name: "example.com",
        ..Setup::default()
    });
    let ch = h.ch;
    h.pair
        .drive_until(|p| {
            let s = p.server();
            p.client().lost_reason(ch).is_some()
                && s.accepted
                    .first()
                    .is_some_and(|&sh| s.lost_reason(sh).is_some())
        })
        .expect("both sides see the failure");
    let client = h.client().lost_reason(ch).unwrap();
    let code = match &client {
        ConnectionError::TransportError(e) => e.code.0,
        other => panic!("client: {other:?}"),
    };
    // RFC 9001 §4.8: TLS alerts map to CRYPTO_ERROR (0x100 + alert)
    assert_eq!(code & !0xff, 0x100, "{client:?}");
    let sh = h.server().accepted[0];
    match h.server().lost_reason(sh).unwrap() {
        ConnectionError::ConnectionClosed { error_code, .. } => assert_eq!(error_code, code),
        other => panic!("server: {other:?}"),
    }
}

#[test]
fn connect_rejects_bad_input() {
    use crate::endpoint::ConnectError;
    let mut h = Harness::new(Setup::default());
    let now = h.now();
    let (cert, _) = util::cert();
    let config = crate::config::ClientConfig::new(util::tls_client(cert));
    let addr = h.pair.server_addr();
    let ep = &mut h.client().ep;
    assert!(matches!(
        ep.connect(now, config.clone(), addr, "not a valid name!"),
        Err(ConnectError::InvalidServerName(_))
    ));
    let v = crate::config::ClientConfig {
        version: 0x0a0a_0a0a,
        ..config.clone()
    };
    assert!(matches!(
        ep.connect(now, v, addr, "localhost"),
        Err(ConnectError::UnsupportedVersion(_))
    ));
    let zero = std::net::SocketAddr::new(addr.ip(), 0);
    assert!(matches!(
        ep.connect(now, config, zero, "localhost"),
        Err(ConnectError::InvalidRemoteAddress(_))
    ));
}
