//! Server's preferred address (RFC 9000 §9.6): the client validates it after the handshake
//! and moves there, or stays on the original address if validation fails

use std::cell::Cell;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::rc::Rc;

use super::util::{payload, Harness, Setup};
use crate::connection::Event;
use crate::shared::Dir;
use crate::sim::{LinkConfig, Verdict};

/// The server's second address (same benchmarking range as the simulator's defaults)
const PREFERRED: SocketAddrV4 = SocketAddrV4::new(Ipv4Addr::new(198, 18, 0, 3), 4443);

/// Datagrams to and from the preferred address, counted (or dropped when `blackhole`)
struct Counts {
    to_preferred: Rc<Cell<u64>>,
    from_preferred: Rc<Cell<u64>>,
}

fn harness(seed: u64, loss: f64, blackhole: bool) -> (Harness, Counts) {
    let mut h = Harness::new(Setup {
        seed,
        server_preferred_v4: Some(PREFERRED),
        link: LinkConfig {
            loss,
            ..LinkConfig::default()
        },
        ..Setup::default()
    });
    let counts = Counts {
        to_preferred: Rc::default(),
        from_preferred: Rc::default(),
    };
    let (to, from) = (counts.to_preferred.clone(), counts.from_preferred.clone());
    let pa = SocketAddr::V4(PREFERRED);
    h.pair.net.set_interceptor(move |info, _| {
        if info.to == pa {
            to.set(to.get() + 1);
            if blackhole {
                return Verdict::Drop;
            }
        }
        if info.from == pa {
            from.set(from.get() + 1);
        }
        Verdict::Deliver
    });
    (h, counts)
}

fn migrate(seed: u64, loss: f64) {
    let (mut h, counts) = harness(seed, loss, false);
    let original = h.pair.server_addr();
    h.handshake();
    let ch = h.ch;
    assert_eq!(h.preferred_address_outcome(), Some(true));
    assert_eq!(h.client_conn().remote_address(), SocketAddr::V4(PREFERRED));
    assert!(h.client().has_event(ch, |e| *e
        == Event::PathChanged {
            remote: SocketAddr::V4(PREFERRED)
        }));
    // Traffic now flows both ways over the preferred address: the client drops anything
    // from the original address, so the server must send from its second address
    let data = payload(300_000, seed);
    let before_to = counts.to_preferred.get();
    let before_from = counts.from_preferred.get();
    assert_eq!(h.transfer(Dir::Bi, &data), data);
    assert!(counts.to_preferred.get() > before_to + 100);
    assert!(counts.from_preferred.get() > before_from);
    assert_ne!(h.client_conn().remote_address(), original);
    assert_eq!(h.client_conn().stats().migrations, 1);
    assert_eq!(h.server_conn().stats().migrations, 1);
    // The server probed the new path from its side too, and the client answered (the probe is
    // not retransmitted, so only a lossless run is sure to see the answer)
    if loss == 0.0 {
        assert_eq!(h.server_conn().stats().path_validations_succeeded, 1);
    }
    assert!(!h.client_conn().is_closed() && !h.server_conn().is_closed());
}

#[test]
fn client_moves_to_preferred_address() {
    migrate(81, 0.0);
}

#[test]
fn client_moves_to_preferred_address_under_loss() {
    for seed in 82..86 {
        migrate(seed, 0.05);
    }
}

#[test]
fn unreachable_preferred_address_keeps_the_original() {
    let (mut h, counts) = harness(87, 0.0, true);
    let original = h.pair.server_addr();
    h.handshake();
    let ch = h.ch;
    // Validation gives up
    assert_eq!(h.preferred_address_outcome(), Some(false));
    assert!(h.client().has_event(ch, |e| *e
        == Event::PathFailed {
            remote: SocketAddr::V4(PREFERRED)
        }));
    // The probe was retried before giving up
    assert!(
        counts.to_preferred.get() >= 2,
        "{}",
        counts.to_preferred.get()
    );
    assert_eq!(h.client_conn().remote_address(), original);
    let data = payload(100_000, 87);
    assert_eq!(h.transfer(Dir::Bi, &data), data);
    assert_eq!(counts.from_preferred.get(), 0);
    assert_eq!(h.server_conn().stats().migrations, 0);
}
