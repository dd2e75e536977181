//! Connection migration scenarios (RFC 9000 §9): active client migration, NAT rebinding and
//! spoofed addresses

use std::cell::RefCell;
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::Duration;

use super::util::{payload, Harness, Setup};
use crate::connection::{Event, MigrateError};
use crate::shared::{Dir, RecvMeta};
use crate::sim::{LinkConfig, Node, Verdict};

fn addr(s: &str) -> SocketAddr {
    s.parse().expect("address")
}

/// Move the client to `new` (as after a socket rebind) and tell its connection
fn move_client(h: &mut Harness, new: SocketAddr) {
    let c = h.pair.client;
    h.pair.net.set_addr(c, new);
    let now = h.now();
    h.client_conn().migrate(now, Some(new)).expect("migrate");
}

fn migrate_mid_transfer(seed: u64, loss: f64, new: SocketAddr) {
    let mut h = Harness::new(Setup {
        seed,
        link: LinkConfig {
            loss,
            delay: Duration::from_millis(15),
            bandwidth: Some(2_000_000),
            queue_limit: 200_000,
            ..LinkConfig::default()
        },
        ..Setup::default()
    });
    h.handshake();
    h.pair.drive().expect("settle");
    let data = payload(2 << 20, seed);
    let at = h.now() + Duration::from_millis(300);
    let mut moved = false;
    let got = h.transfer_with(Dir::Bi, &data, |p, ch, _| {
        if !moved && p.net.now() >= at {
            moved = true;
            let c = p.client;
            p.net.set_addr(c, new);
            let now = p.net.now();
            p.client_mut()
                .conn(ch)
                .migrate(now, Some(new))
                .expect("migrate");
        }
    });
    assert!(moved, "seed {seed}: transfer finished before the migration");
    assert!(got == data, "seed {seed}: payload mismatch");
    h.pair.drive().expect("settle");
    let ch = h.ch;
    let sh = h.sh.expect("server");
    assert_eq!(h.server_conn().remote_address(), new, "seed {seed}");
    let cs = h.client_conn().stats();
    let ss = h.server_conn().stats();
    assert_eq!(cs.migrations, 1, "seed {seed}: {cs:?}");
    assert!(cs.path_validations_succeeded >= 1, "seed {seed}: {cs:?}");
    assert!(ss.path_validations_succeeded >= 1, "seed {seed}: {ss:?}");
    assert!(h
        .client()
        .has_event(ch, |e| matches!(e, Event::PathValidated { .. })));
    assert!(h
        .server()
        .has_event(sh, |e| *e == Event::PathChanged { remote: new }));
    assert!(h.client_conn().path_validated(), "seed {seed}");
    assert!(h.server_conn().path_validated(), "seed {seed}");
}

#[test]
fn client_migrates_mid_transfer() {
    migrate_mid_transfer(11, 0.0, addr("198.18.7.9:40000"));
}

#[test]
fn client_migrates_port_only() {
    migrate_mid_transfer(12, 0.0, addr("198.18.0.2:50077"));
}

#[test]
fn client_migration_under_loss() {
    for seed in 300..304 {
        migrate_mid_transfer(seed, 0.05, addr("198.18.9.1:41000"));
    }
}

#[test]
fn migrate_refused_before_confirmation_and_on_server() {
    let mut h = Harness::new(Setup::default());
    let now = h.now();
    assert_eq!(
        h.client_conn().migrate(now, None),
        Err(MigrateError::NotConfirmed)
    );
    h.handshake();
    h.pair.drive().expect("settle");
    let now = h.now();
    assert_eq!(
        h.server_conn().migrate(now, None),
        Err(MigrateError::NotClient)
    );
}

#[test]
fn client_migrates_twice_while_idle() {
    let mut h = Harness::new(Setup::default());
    h.handshake();
    h.pair.drive().expect("settle");
    for (i, a) in ["198.18.1.1:1000", "198.18.1.2:2000"].iter().enumerate() {
        move_client(&mut h, addr(a));
        h.pair.drive().expect("settle");
        assert_eq!(h.server_conn().remote_address(), addr(a), "migration {i}");
        assert!(h.server_conn().path_validated());
    }
    let data = payload(100_000, 5);
    assert_eq!(h.transfer(Dir::Bi, &data), data);
    assert_eq!(h.client_conn().stats().migrations, 2);
    assert_eq!(h.client_conn().stats().path_validations_failed, 0);
}

#[test]
fn nat_rebinding_every_second_during_10_mib() {
    let seed = 21;
    let mut h = Harness::new(Setup {
        seed,
        link: LinkConfig {
            delay: Duration::from_millis(10),
            bandwidth: Some(2_000_000),
            queue_limit: 200_000,
            ..LinkConfig::default()
        },
        ..Setup::default()
    });
    h.handshake();
    let data = payload(10 << 20, seed);
    let start = h.now();
    let mut rebinds = 0u16;
    let got = h.transfer_with(Dir::Bi, &data, |p, _, _| {
        let due = start + Duration::from_secs(u64::from(rebinds) + 1);
        if p.net.now() >= due {
            rebinds += 1;
            let external = SocketAddr::new(addr("198.18.0.2:1").ip(), 20_000 + rebinds);
            p.rebind_client(external);
        }
    });
    let elapsed = h.now() - start;
    assert!(got == data, "seed {seed}: payload mismatch");
    assert!(
        rebinds >= 4,
        "seed {seed}: only {rebinds} rebindings in {elapsed:?}"
    );
    h.pair.drive().expect("settle");
    let ss = h.server_conn().stats();
    eprintln!("10 MiB with {rebinds} rebindings in {elapsed:?}: {ss:?}");
    assert_eq!(ss.migrations, u64::from(rebinds), "seed {seed}");
    assert_eq!(ss.path_validations_failed, 0, "seed {seed}");
    assert!(h.server_conn().path_validated(), "seed {seed}");
}

/// Capture (and drop) the next datagram from the client and hand it back
fn capture_next_client_datagram(h: &mut Harness) -> Rc<RefCell<Option<Vec<u8>>>> {
    let captured = Rc::new(RefCell::new(None));
    let slot = captured.clone();
    let client = h.pair.client;
    h.pair.net.set_interceptor(move |info, data| {
        if info.src == client && slot.borrow().is_none() {
            *slot.borrow_mut() = Some(data.clone());
            return Verdict::Drop;
        }
        Verdict::Deliver
    });
    captured
}

/// An on-path attacker forwards a copy of a genuine packet from a spoofed address; returns
/// the spoofed address
fn inject_spoofed_copy(h: &mut Harness) -> SocketAddr {
    let captured = capture_next_client_datagram(h);
    h.client_datagram(b"ping through the attacker");
    let seed = h.pair.net.seed();
    h.pair
        .drive_until(|_| captured.borrow().is_some())
        .unwrap_or_else(|e| panic!("seed {seed}: nothing captured: {e:?}"));
    h.pair.net.clear_interceptor();
    let mut bytes = captured.borrow_mut().take().expect("captured");
    let spoofed = addr("203.0.113.66:6666");
    let now = h.now();
    h.server().handle_datagram(
        now,
        RecvMeta {
            remote: spoofed,
            local_ip: None,
            ecn: None,
        },
        &mut bytes,
    );
    spoofed
}

#[test]
fn spoofed_copy_cannot_steal_the_connection() {
    let mut h = Harness::new(Setup::default());
    h.handshake();
    h.pair.drive().expect("settle");
    let genuine = h.pair.net.external_addr(h.pair.client);
    let spoofed = inject_spoofed_copy(&mut h);
    // The server may follow the authenticated copy, but only until the genuine client's next
    // packet: it never validates the spoofed address
    assert_eq!(h.server_conn().remote_address(), spoofed);
    assert!(!h.server_conn().path_validated());
    let data = payload(200_000, 9);
    assert_eq!(h.transfer(Dir::Bi, &data), data);
    h.pair.drive().expect("settle");
    assert_eq!(h.server_conn().remote_address(), genuine);
    assert!(h.server_conn().path_validated());
    assert_eq!(h.server_conn().stats().path_validations_succeeded, 0);
}

#[test]
fn server_falls_back_when_validation_fails() {
    let mut h = Harness::new(Setup::default());
    h.handshake();
    h.pair.drive().expect("settle");
    let genuine = h.pair.net.external_addr(h.pair.client);
    let spoofed = inject_spoofed_copy(&mut h);
    // The genuine client goes quiet long enough for validation of the spoofed address to fail
    h.pair.to_server().config.blackhole = true;
    let t = h.now() + Duration::from_secs(8);
    h.pair.net.run_to(t).expect("run");
    let sh = h.sh.expect("server");
    assert!(h
        .server()
        .has_event(sh, |e| *e == Event::PathFailed { remote: spoofed }));
    assert_eq!(h.server_conn().remote_address(), genuine);
    assert_eq!(h.server_conn().stats().path_validations_failed, 1);
    h.pair.to_server().config.blackhole = false;
    let data = payload(100_000, 10);
    assert_eq!(h.transfer(Dir::Bi, &data), data);
    assert!(!h.server_conn().is_closed());
}

/// A download (the client only acknowledges) while a NAT rebinds the client every 100 ms, as
/// the interop runner's rebind-port case does: the server must follow every new port without
/// falling back to a dead one while the client has nothing of its own to send
fn download_through_fast_rebinding(seed: u64) {
    let mut h = Harness::new(Setup {
        seed,
        link: LinkConfig {
            delay: Duration::from_millis(15),
            bandwidth: Some(4_000_000),
            queue_limit: 200_000,
            ..LinkConfig::default()
        },
        ..Setup::default()
    });
    h.handshake();
    h.pair.drive().expect("settle");
    let data = payload(3 << 20, seed);
    let sh = h.sh.expect("server");
    let ch = h.ch;
    let sid = h.server_conn().open(Dir::Uni).expect("server stream");
    let start = h.now();
    let mut rebinds = 0u16;
    let mut sent = 0;
    let mut finished = false;
    let mut received = Vec::new();
    let mut client_stream = None;
    let mut buf = vec![0u8; 64 * 1024];
    let result = h.pair.drive_until(|p| {
        // The mapping in force is the one of the current 100 ms period (no catching up
        // after a quiet stretch: that would rebind on every event)
        let period = ((p.net.now() - start).as_millis() / 100) as u16;
        if period > rebinds {
            rebinds = period;
            p.rebind_client(SocketAddr::new(addr("198.18.0.2:1").ip(), 20_000 + rebinds));
        }
        if p.server_mut().ep.connection(sh).is_none() || p.client_mut().ep.connection(ch).is_none()
        {
            return true;
        }
        let s = p.server_mut().conn(sh);
        while sent < data.len() {
            match s.write(sid, &data[sent..]) {
                Ok(n) if n > 0 => sent += n,
                _ => break,
            }
        }
        if sent == data.len() && !finished {
            s.finish(sid).expect("finish");
            finished = true;
        }
        let c = p.client_mut().conn(ch);
        if client_stream.is_none() {
            client_stream = c.accept(Dir::Uni);
        }
        let mut fin = false;
        if let Some(id) = client_stream {
            while let Ok(Some(r)) = c.read(id, &mut buf) {
                received.extend_from_slice(&buf[..r.len]);
                if r.fin {
                    fin = true;
                    break;
                }
                if r.len == 0 {
                    break;
                }
            }
        }
        fin || c.is_closed()
    });
    let lost = (h.server().lost_reason(sh), h.client().lost_reason(ch));
    let events: Vec<_> = h
        .server()
        .events
        .iter()
        .filter(|(eh, _)| *eh == sh)
        .map(|(_, e)| format!("{e:?}"))
        .filter(|e| e.starts_with("Path") || e.starts_with("Conn"))
        .collect();
    let ss = h.server().ep.connection(sh).map(|c| c.stats());
    let elapsed = h.now() - start;
    assert!(
        result.is_ok() && received == data,
        "seed {seed}: {} of {} bytes after {elapsed:?} and {rebinds} rebinds ({result:?}); lost {lost:?}; server {ss:?}; server path events {events:?}",
        received.len(),
        data.len()
    );
    assert!(rebinds >= 5, "seed {seed}: only {rebinds} rebinds");
    let ss = ss.expect("server connection");
    assert!(ss.path_validations_succeeded >= 1, "seed {seed}: {ss:?}");
}

#[test]
fn download_while_nat_rebinds_every_100ms() {
    for seed in 400..412 {
        download_through_fast_rebinding(seed);
    }
}
