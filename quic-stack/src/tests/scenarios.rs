//! Longer scenarios: key updates while data flows, and a path MTU black hole mid-transfer

use std::time::{Duration, Instant};

use bytes::Bytes;

use super::util::{payload, Harness, Setup};
use crate::shared::Dir;
use crate::sim::LinkConfig;

/// Several key updates from both sides during a 4 MiB transfer (RFC 9001 §6): each side asks
/// for one in turn every 40 ms of virtual time, while the server keeps sending datagrams so
/// that its own updates have packets to ride on
#[test]
fn key_updates_both_sides_during_4_mib() {
    let seed = 41;
    let mut h = Harness::new(Setup {
        seed,
        link: LinkConfig {
            delay: Duration::from_millis(5),
            bandwidth: Some(8_000_000),
            queue_limit: 200_000,
            ..LinkConfig::default()
        },
        ..Setup::default()
    });
    h.handshake();
    let data = payload(4 << 20, seed);
    let mut next: Option<Instant> = None;
    let mut requests = [0u32; 2];
    let mut turn = 0usize;
    let got = h.transfer_with(Dir::Uni, &data, |p, ch, sh| {
        let now = p.net.now();
        let due = *next.get_or_insert(now + Duration::from_millis(40));
        if now < due {
            return;
        }
        next = Some(now + Duration::from_millis(40));
        if turn == 0 {
            p.client_mut().conn(ch).initiate_key_update();
        } else {
            let s = p.server_mut().conn(sh);
            s.initiate_key_update();
            let _ = s.send_datagram(Bytes::from_static(b"server traffic for its key update"));
        }
        requests[turn] += 1;
        turn ^= 1;
    });
    assert!(
        got == data,
        "seed {seed}: payload mismatch across key updates"
    );
    h.pair.drive().expect("settle");
    let (c, s) = (h.client_conn().stats(), h.server_conn().stats());
    eprintln!("requests {requests:?}; client {c:?}; server {s:?}");
    assert!(requests[0] >= 3 && requests[1] >= 3, "{requests:?}");
    // Every update is seen by both sides; requests that overlap an update in progress merge
    assert!(c.key_updates >= 5, "client saw {} updates", c.key_updates);
    assert_eq!(c.key_updates, s.key_updates);
    assert!(!h.client_conn().is_closed() && !h.server_conn().is_closed());
}

/// PMTUD raised the MTU, then the path starts dropping datagrams above 1280 bytes in the
/// middle of a transfer: the sender must notice, fall back, and finish the transfer
#[test]
fn mtu_black_hole_mid_transfer() {
    // Without loss, and with 1% random loss on top of the hole
    for (seed, loss) in [(43u64, 0.0), (44, 0.01), (45, 0.01)] {
        let link = LinkConfig {
            loss,
            delay: Duration::from_millis(10),
            bandwidth: Some(4_000_000),
            queue_limit: 200_000,
            ..LinkConfig::default()
        };
        let mut h = Harness::new(Setup {
            seed,
            link: link.clone(),
            ..Setup::default()
        });
        h.handshake();
        h.pair.drive().expect("settle");
        let raised = h.client_conn().current_mtu();
        assert!(raised > 1400, "seed {seed}: PMTUD ran: {raised}");
        let data = payload(3 << 20, seed);
        let start = h.now();
        let mut holed = false;
        let got = h.transfer_with(Dir::Uni, &data, |p, _, _| {
            if !holed && p.net.now() >= start + Duration::from_millis(300) {
                holed = true;
                p.set_links(LinkConfig {
                    mtu: 1280,
                    ..link.clone()
                });
            }
        });
        assert!(
            holed,
            "seed {seed}: the transfer ended before the black hole"
        );
        assert!(got == data, "seed {seed}: payload mismatch");
        let c = h.client_conn().stats();
        eprintln!("seed {seed}: {:?} after the hole: {c:?}", h.now() - start);
        assert!(c.mtu_black_holes >= 1, "seed {seed}: {c:?}");
        let mtu = h.client_conn().current_mtu();
        assert!((1200..=1280).contains(&mtu), "seed {seed}: mtu {mtu}");
        assert!(!h.client_conn().is_closed(), "seed {seed}");
    }
}
