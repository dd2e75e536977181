//! NEW_TOKEN address validation tokens (RFC 9000 §8.1.3)

use std::net::SocketAddr;

use super::util::{payload, Harness, Setup};
use crate::connection::Event;
use crate::endpoint::ConnectionHandle;
use crate::shared::Dir;

fn retry_server() -> Harness {
    let mut h = Harness::new(Setup {
        retry: true,
        ..Setup::default()
    });
    h.handshake();
    h.pair.drive().expect("settle");
    h
}

/// Open a second connection from the client endpoint and wait until it is up; returns its
/// handle and the size of the server's first datagram for it
fn second_connection(h: &mut Harness) -> (ConnectionHandle, usize) {
    let sent_before = h.server().sent_sizes.len();
    let ch2 = h.connect_again();
    let seed = h.pair.net.seed();
    h.pair
        .drive_until(|p| p.client().has_event(ch2, |e| *e == Event::Connected))
        .unwrap_or_else(|e| panic!("seed {seed}: second connection failed: {e:?}"));
    let first = h.server().sent_sizes[sent_before];
    (ch2, first)
}

#[test]
fn resumed_second_connection_without_retry() {
    // The second connection resumes the TLS session: the client must not mistake the
    // parameters remembered with the ticket for the server's new ones
    let mut h = Harness::new(Setup::default());
    h.handshake();
    h.pair.drive().expect("settle");
    let (ch2, _) = second_connection(&mut h);
    assert!(!h.client().conn(ch2).is_closed());
}

#[test]
fn new_token_lets_the_next_connection_skip_retry() {
    let mut h = retry_server();
    assert!(h.client().ep.has_token("localhost"), "no NEW_TOKEN arrived");
    let (ch2, first) = second_connection(&mut h);
    // No Retry this time: the server's first datagram is its padded Initial
    assert!(
        first >= 1200,
        "server answered with a {first}-byte datagram (Retry?)"
    );
    // RFC 9000 §8.1.3: a token is used once; the new connection brings a fresh one
    h.pair.drive().expect("settle");
    assert!(h.client().ep.has_token("localhost"));
    let data = payload(20_000, 8);
    let id = h.client().conn(ch2).open(Dir::Uni).expect("open");
    assert_eq!(
        h.client().conn(ch2).write(id, &data).expect("write"),
        data.len()
    );
    assert_eq!(h.server().ep.open_connections(), 2);
}

#[test]
fn token_from_another_address_means_retry() {
    let mut h = retry_server();
    assert!(h.client().ep.has_token("localhost"));
    let c = h.pair.client;
    let moved: SocketAddr = "198.18.44.2:50000".parse().expect("address");
    h.pair.net.set_addr(c, moved);
    let (_, first) = second_connection(&mut h);
    assert!(
        first < 200,
        "the server skipped Retry for a token bound to another address"
    );
}
