//! A preferred address set on one server connection (the kernel's
//! QUIC_SOCKOPT_CONNECTION_MIGRATION on a socket still establishing), with the server's TLS run
//! by the application: the client moves there after the handshake, or stays where it was when
//! the address does not answer

use std::cell::Cell;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};
use std::rc::Rc;

use super::app_tls::{app_server, server_tls_config};
use super::util::{payload, Harness, Setup};
use crate::connection::{Event, PreferredAddressError};
use crate::endpoint::ConnectionHandle;
use crate::shared::Dir;
use crate::sim::Verdict;

/// This connection's own preferred address (the simulator's benchmarking range)
const PREFERRED: SocketAddrV4 = SocketAddrV4::new(Ipv4Addr::new(198, 18, 0, 9), 7443);

/// Datagrams to and from the preferred address, counted
#[derive(Default, Clone)]
struct Counts {
    to_preferred: Rc<Cell<u64>>,
    from_preferred: Rc<Cell<u64>>,
}

/// A client on built-in TLS against a server whose TLS the test runs; `blackhole` drops
/// everything sent to the preferred address
fn harness(seed: u64, blackhole: bool) -> (Harness, Counts) {
    let mut h = Harness::new(Setup {
        seed,
        server_external_tls: true,
        ..Setup::default()
    });
    let server = h.pair.server;
    h.pair.net.add_alias(server, PREFERRED.into());
    let counts = Counts::default();
    let c = counts.clone();
    let pa = SocketAddr::V4(PREFERRED);
    h.pair.net.set_interceptor(move |info, _| {
        if info.to == pa {
            c.to_preferred.set(c.to_preferred.get() + 1);
            if blackhole {
                return Verdict::Drop;
            }
        }
        if info.from == pa {
            c.from_preferred.set(c.from_preferred.get() + 1);
        }
        Verdict::Deliver
    });
    (h, counts)
}

/// Wait for the server to accept the connection; nothing has left it yet but its Initial ACKs
fn accepted(h: &mut Harness) -> ConnectionHandle {
    h.pair
        .drive_until(|p| !p.server().accepted.is_empty())
        .expect("accept");
    h.server().accepted[0]
}

/// Advertise `pa` on the accepted connection while it is still establishing, then run the
/// server application's TLS over its parameters until both sides are connected
fn advertise_and_handshake(h: &mut Harness, pa: SocketAddr) {
    let sh = accepted(h);
    let s = h.server().conn(sh);
    s.advertise_preferred_address(pa)
        .expect("server connection still establishing");
    let params = s.external_local_params().expect("external TLS").to_vec();
    let config = server_tls_config(&h.cert_key, false);
    let mut app = app_server(&config, params, false);
    let ch = h.ch;
    let seed = h.pair.net.seed();
    h.pair
        .drive_until(|p| {
            let now = p.net.now();
            app.pump(p.server_mut().conn(sh), now);
            p.server().has_event(sh, |e| *e == Event::Connected)
                && p.client().has_event(ch, |e| *e == Event::Connected)
        })
        .unwrap_or_else(|e| panic!("seed {seed}: handshake: {e:?}"));
    h.sh = Some(sh);
}

/// Set the preferred address on the accepted connection, then hand its parameters to TLS
fn handshake_with_preferred(h: &mut Harness) {
    advertise_and_handshake(h, SocketAddr::V4(PREFERRED));
    let ch = h.ch;
    // The parameter the client saw names this connection's own address and CID
    let pa = h
        .client()
        .conn(ch)
        .peer_params()
        .and_then(|p| p.preferred_address);
    let ours = h.server_conn().advertised_preferred_address();
    assert!(pa.is_some() && pa == ours, "{pa:?} vs {ours:?}");
}

#[test]
fn client_moves_to_the_connections_preferred_address() {
    let (mut h, counts) = harness(91, false);
    let original = h.pair.server_addr();
    handshake_with_preferred(&mut h);
    assert_eq!(h.preferred_address_outcome(), Some(true));
    assert_eq!(h.client_conn().remote_address(), SocketAddr::V4(PREFERRED));
    // Data flows over the new path both ways: the client drops anything from the original
    // address, so the server sends from the preferred one
    let before_to = counts.to_preferred.get();
    let before_from = counts.from_preferred.get();
    let data = payload(200_000, 91);
    assert_eq!(h.transfer(Dir::Bi, &data), data);
    assert!(counts.to_preferred.get() > before_to + 50);
    assert!(counts.from_preferred.get() > before_from);
    assert_eq!(
        h.server_conn().preferred_local_address(),
        Some(SocketAddr::V4(PREFERRED))
    );
    assert_ne!(h.client_conn().remote_address(), original);
    assert_eq!(h.client_conn().stats().migrations, 1);
    assert_eq!(h.server_conn().stats().migrations, 1);
    assert!(!h.client_conn().is_closed() && !h.server_conn().is_closed());
}

#[test]
fn unreachable_connection_preferred_address_keeps_the_original() {
    let (mut h, counts) = harness(92, true);
    let original = h.pair.server_addr();
    handshake_with_preferred(&mut h);
    assert_eq!(h.preferred_address_outcome(), Some(false));
    let ch = h.ch;
    assert!(h.client().has_event(ch, |e| *e
        == Event::PathFailed {
            remote: SocketAddr::V4(PREFERRED)
        }));
    assert!(counts.to_preferred.get() >= 2, "the probe was retried");
    assert_eq!(h.client_conn().remote_address(), original);
    let data = payload(100_000, 92);
    assert_eq!(h.transfer(Dir::Bi, &data), data);
    assert_eq!(counts.from_preferred.get(), 0);
    assert_eq!(h.server_conn().preferred_local_address(), None);
    assert_eq!(h.server_conn().stats().migrations, 0);
}

#[test]
fn other_family_only_leaves_the_client_in_place() {
    // The family may differ from the connection's (kernel rule); an IPv4 client has nowhere
    // to go when only an IPv6 address is offered
    let (mut h, counts) = harness(93, false);
    let v6 = SocketAddrV6::new(Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, 9), 7443, 0, 0);
    advertise_and_handshake(&mut h, SocketAddr::V6(v6));
    let pa = h
        .client_conn()
        .peer_params()
        .and_then(|p| p.preferred_address);
    assert_eq!(pa.and_then(|pa| pa.address_v6), Some(v6));
    assert_eq!(pa.and_then(|pa| pa.address_v4), None);
    let data = payload(30_000, 93);
    assert_eq!(h.transfer(Dir::Bi, &data), data);
    assert_eq!(h.client_conn().preferred_address_outcome(), None);
    assert_eq!(counts.to_preferred.get(), 0);
}

#[test]
fn preferred_address_only_before_the_parameters_leave() {
    let (mut h, _) = harness(94, false);
    let pa = SocketAddr::V4(PREFERRED);
    let ch = h.ch;
    assert_eq!(
        h.client().conn(ch).advertise_preferred_address(pa),
        Err(PreferredAddressError::NotServer)
    );
    let sh = accepted(&mut h);
    let s = h.server().conn(sh);
    let zero_port = SocketAddr::new(pa.ip(), 0);
    assert_eq!(
        s.advertise_preferred_address(zero_port),
        Err(PreferredAddressError::InvalidAddress(zero_port))
    );
    let params = s.external_local_params().expect("external TLS").to_vec();
    assert_eq!(
        s.advertise_preferred_address(pa),
        Err(PreferredAddressError::ParamsSent)
    );
    // Nothing changed: the parameters TLS took carry no preferred address
    let decoded =
        crate::transport_params::TransportParameters::decode(crate::shared::Side::Server, &params)
            .expect("our parameters");
    assert_eq!(decoded.preferred_address, None);
    // A built-in TLS server handed its parameters to rustls when the connection was created
    let mut builtin = Harness::new(Setup {
        seed: 95,
        ..Setup::default()
    });
    builtin
        .pair
        .drive_until(|p| !p.server().accepted.is_empty())
        .expect("accept");
    let bh = builtin.server().accepted[0];
    assert_eq!(
        builtin.server().conn(bh).advertise_preferred_address(pa),
        Err(PreferredAddressError::ParamsSent)
    );
}
