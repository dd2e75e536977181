//! Greasing the QUIC bit (RFC 9287)

use std::cell::Cell;
use std::rc::Rc;

use super::util::{payload, Harness, Setup};
use crate::packet::FIXED_BIT;
use crate::shared::Dir;
use crate::sim::Verdict;

/// Count datagrams per direction whose first packet has the QUIC bit cleared
fn count_cleared(h: &mut Harness) -> (Rc<Cell<u64>>, Rc<Cell<u64>>) {
    let (to_server, to_client) = (Rc::new(Cell::new(0)), Rc::new(Cell::new(0)));
    let (a, b) = (to_server.clone(), to_client.clone());
    let client = h.pair.client;
    h.pair.net.set_interceptor(move |info, data| {
        if data.first().is_some_and(|f| f & FIXED_BIT == 0) {
            let c = if info.src == client { &a } else { &b };
            c.set(c.get() + 1);
        }
        Verdict::Deliver
    });
    (to_server, to_client)
}

#[test]
fn both_sides_grease_when_both_advertise() {
    let mut h = Harness::new(Setup::default());
    let (to_server, to_client) = count_cleared(&mut h);
    h.handshake();
    let data = payload(300_000, 4);
    assert_eq!(h.transfer(Dir::Bi, &data), data);
    assert!(to_server.get() > 0, "the client never greased");
    assert!(to_client.get() > 0, "the server never greased");
    assert_eq!(h.server_conn().stats().packets_dropped, 0);
    assert_eq!(h.client_conn().stats().packets_dropped, 0);
}

#[test]
fn no_grease_towards_a_peer_that_did_not_advertise() {
    let mut h = Harness::new(Setup {
        server_grease_quic_bit: false,
        ..Setup::default()
    });
    let (to_server, to_client) = count_cleared(&mut h);
    h.handshake();
    let data = payload(100_000, 5);
    assert_eq!(h.transfer(Dir::Bi, &data), data);
    assert_eq!(to_server.get(), 0, "the client greased without permission");
    assert!(
        to_client.get() > 0,
        "the server may grease towards the client"
    );
}

#[test]
fn cleared_bit_dropped_when_not_advertised() {
    let mut h = Harness::new(Setup {
        server_grease_quic_bit: false,
        ..Setup::default()
    });
    h.handshake();
    h.pair.drive().expect("settle");
    let client = h.pair.client;
    h.pair.net.set_interceptor(move |info, data| {
        if info.src == client {
            if let Some(f) = data.first_mut() {
                *f &= !FIXED_BIT;
            }
        }
        Verdict::Deliver
    });
    h.client_datagram(b"cleared");
    h.pair.drive().expect("settle");
    assert!(h.server_conn().stats().packets_dropped > 0);
    assert_eq!(h.server_conn().recv_datagram(), None);
}
