//! Version negotiation scenarios (RFC 9000 §6, RFC 9368)

use super::util::{payload, Harness, Setup};
use crate::connection::ConnectionError;
use crate::crypto::{VERSION_1, VERSION_2};
use crate::error::TransportErrorCode;
use crate::packet;
use crate::shared::{Dir, RecvMeta};
use crate::sim::{Node, Verdict};

use std::cell::RefCell;
use std::rc::Rc;

#[test]
fn client_falls_back_to_a_version_the_server_lists() {
    // The client prefers v2; the server only speaks v1 and answers with Version Negotiation
    let mut h = Harness::new(Setup {
        version: VERSION_2,
        client_versions: Some(vec![VERSION_2, VERSION_1]),
        server_versions: Some(vec![VERSION_1]),
        ..Setup::default()
    });
    h.handshake();
    assert_eq!(h.client_conn().version(), VERSION_1);
    assert_eq!(h.server_conn().version(), VERSION_1);
    let data = payload(50_000, 1);
    assert_eq!(h.transfer(Dir::Bi, &data), data);
}

/// Drop the client's first Initial and answer it with a forged Version Negotiation packet
/// listing `versions`
fn forge_vn(h: &mut Harness, versions: &'static [u32]) {
    let captured: Rc<RefCell<Option<Vec<u8>>>> = Rc::new(RefCell::new(None));
    let slot = captured.clone();
    let client = h.pair.client;
    h.pair.net.set_interceptor(move |info, data| {
        if info.src == client && info.index == 0 {
            *slot.borrow_mut() = Some(data.clone());
            return Verdict::Drop;
        }
        Verdict::Deliver
    });
    let seed = h.pair.net.seed();
    h.pair
        .drive_until(|_| captured.borrow().is_some())
        .unwrap_or_else(|e| panic!("seed {seed}: no Initial: {e:?}"));
    let initial = captured.borrow_mut().take().expect("captured");
    let hdr = packet::parse_header(&initial, 8).expect("Initial parses");
    let mut vn = Vec::new();
    packet::write_version_negotiation(&mut vn, 0x40, &hdr.scid, &hdr.dcid, versions);
    let now = h.now();
    let remote = h.pair.server_addr();
    h.client().handle_datagram(
        now,
        RecvMeta {
            remote,
            local_ip: None,
            ecn: None,
        },
        &mut vn,
    );
}

#[test]
fn forged_version_negotiation_is_detected() {
    // Both sides speak v2, but an attacker's VN claims the server only has v1
    let mut h = Harness::new(Setup {
        version: VERSION_2,
        client_versions: Some(vec![VERSION_2, VERSION_1]),
        ..Setup::default()
    });
    forge_vn(&mut h, &[VERSION_1]);
    let ch = h.ch;
    let seed = h.pair.net.seed();
    h.pair
        .drive_until(|p| p.client().lost_reason(ch).is_some())
        .unwrap_or_else(|e| panic!("seed {seed}: the downgrade went unnoticed: {e:?}"));
    match h.client().lost_reason(ch) {
        Some(ConnectionError::TransportError(e)) => {
            assert_eq!(
                e.code,
                TransportErrorCode::VERSION_NEGOTIATION_ERROR,
                "{e:?}"
            )
        }
        other => panic!("seed {seed}: expected VERSION_NEGOTIATION_ERROR, got {other:?}"),
    }
}

#[test]
fn version_negotiation_listing_our_version_is_ignored() {
    let mut h = Harness::new(Setup::default());
    forge_vn(&mut h, &[VERSION_1, VERSION_2]);
    h.pair.net.clear_interceptor();
    h.handshake();
    assert_eq!(h.client_conn().version(), VERSION_1);
}
