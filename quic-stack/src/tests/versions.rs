//! Version negotiation scenarios (RFC 9000 §6, RFC 9368)

use super::util::{payload, Harness, Setup};
use crate::connection::{ConnectionError, Event};
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

/// Long-header packets seen on the wire: (from the client, long type, version)
type Seen = Rc<RefCell<Vec<(bool, packet::LongType, u32)>>>;

/// Record the type and version of every long-header packet, coalesced ones included
fn record_long_headers(h: &mut Harness) -> Seen {
    let seen: Seen = Rc::new(RefCell::new(Vec::new()));
    let log = seen.clone();
    let client = h.pair.client;
    h.pair.net.set_interceptor(move |info, data| {
        let mut offset = 0;
        while offset < data.len() {
            let Ok(hdr) = packet::parse_header(&data[offset..], 8) else {
                break;
            };
            if let (packet::HeaderKind::Long(ty), Some(v)) = (hdr.kind, hdr.version) {
                log.borrow_mut().push((info.src == client, ty, v));
            }
            if hdr.packet_len == 0 {
                break;
            }
            offset += hdr.packet_len;
        }
        Verdict::Deliver
    });
    seen
}

#[test]
fn v2_preferring_server_upgrades_a_v1_client() {
    let mut h = Harness::new(Setup {
        version: VERSION_1,
        client_versions: Some(vec![VERSION_1, VERSION_2]),
        server_versions: Some(vec![VERSION_2, VERSION_1]),
        ..Setup::default()
    });
    let seen = record_long_headers(&mut h);
    h.handshake();
    let data = payload(100_000, 2);
    assert_eq!(h.transfer(Dir::Bi, &data), data);
    for server in [false, true] {
        let side = if server {
            h.server_conn()
        } else {
            h.client_conn()
        };
        assert_eq!(side.version(), VERSION_2, "server {server}");
        assert_eq!(side.original_version(), VERSION_1, "server {server}");
        assert_eq!(side.stats().version_upgrades, 1, "server {server}");
    }
    // 1-RTT key updates derive with v2's "quicv2 ku" label on both sides (the client's keys
    // are derived outside rustls after the switch)
    h.client_conn().initiate_key_update();
    assert_eq!(h.transfer(Dir::Bi, &data), data);
    h.server_conn().initiate_key_update();
    assert_eq!(h.transfer(Dir::Bi, &data), data);
    assert_eq!(h.client_conn().stats().key_updates, 2);
    assert_eq!(h.server_conn().stats().key_updates, 2);
    let seen = seen.borrow();
    use packet::LongType::{Handshake, Initial};
    // What the interop runner's v2 test checks: the client starts in v1, the server's
    // Initials and every Handshake packet are v2
    assert_eq!(seen.first(), Some(&(true, Initial, VERSION_1)));
    assert!(seen
        .iter()
        .filter(|(from_client, ty, _)| !from_client && *ty == Initial)
        .all(|&(_, _, v)| v == VERSION_2));
    let handshakes: Vec<_> = seen.iter().filter(|(_, ty, _)| *ty == Handshake).collect();
    assert!(handshakes.iter().any(|(c, _, _)| *c) && handshakes.iter().any(|(c, _, _)| !c));
    assert!(
        handshakes.iter().all(|&&(_, _, v)| v == VERSION_2),
        "{seen:?}"
    );
}

#[test]
fn upgraded_connection_survives_loss_of_the_first_flights() {
    // Losing client Initials makes the server read v1 Initials after it switched, and
    // losing server Initials makes the client retransmit in v1 before it learns of v2
    for seed in 40..46 {
        let mut h = Harness::new(Setup {
            seed,
            version: VERSION_1,
            server_versions: Some(vec![VERSION_2, VERSION_1]),
            link: crate::sim::LinkConfig {
                loss: 0.3,
                ..crate::sim::LinkConfig::default()
            },
            ..Setup::default()
        });
        h.handshake();
        assert_eq!(h.client_conn().version(), VERSION_2, "seed {seed}");
        assert_eq!(h.server_conn().version(), VERSION_2, "seed {seed}");
    }
}

#[test]
fn no_upgrade_when_the_server_prefers_v1() {
    let mut h = Harness::new(Setup {
        version: VERSION_1,
        client_versions: Some(vec![VERSION_1, VERSION_2]),
        server_versions: Some(vec![VERSION_1, VERSION_2]),
        ..Setup::default()
    });
    let seen = record_long_headers(&mut h);
    h.handshake();
    for server in [false, true] {
        let side = if server {
            h.server_conn()
        } else {
            h.client_conn()
        };
        assert_eq!(side.version(), VERSION_1, "server {server}");
        assert_eq!(side.stats().version_upgrades, 0, "server {server}");
    }
    assert!(seen.borrow().iter().all(|&(_, _, v)| v == VERSION_1));
}

#[test]
fn no_upgrade_when_the_client_does_not_offer_v2() {
    let mut h = Harness::new(Setup {
        version: VERSION_1,
        client_versions: Some(vec![VERSION_1]),
        server_versions: Some(vec![VERSION_2, VERSION_1]),
        ..Setup::default()
    });
    h.handshake();
    assert_eq!(h.client_conn().version(), VERSION_1);
    assert_eq!(h.server_conn().version(), VERSION_1);
}

#[test]
fn v2_first_client_falls_back_to_a_v1_only_server_without_upgrade() {
    let mut h = Harness::new(Setup {
        version: VERSION_2,
        client_versions: Some(vec![VERSION_2, VERSION_1]),
        server_versions: Some(vec![VERSION_1]),
        ..Setup::default()
    });
    let seen = record_long_headers(&mut h);
    h.handshake();
    assert_eq!(h.client_conn().version(), VERSION_1);
    assert_eq!(h.client_conn().stats().version_upgrades, 0);
    // The first attempt was v2, answered by Version Negotiation; the second is v1 throughout
    let seen = seen.borrow();
    assert_eq!(
        seen.first(),
        Some(&(true, packet::LongType::Initial, VERSION_2))
    );
    assert!(
        seen.iter().skip(1).all(|&(_, _, v)| v == VERSION_1),
        "{seen:?}"
    );
}

/// An on-path attacker can remove and re-apply Initial protection (its keys derive from the
/// visible DCID): replace `from` with `to` in the plaintext of the client's first Initial
fn rewrite_client_initial(data: &mut [u8], from: &[u8], to: &[u8]) -> bool {
    use crate::crypto::initial_keys;
    use crate::shared::Side;
    let Ok(hdr) = packet::parse_header(data, 8) else {
        return false;
    };
    let end = hdr.packet_len.min(data.len());
    let pkt = &mut data[..end];
    let Ok(open) = initial_keys(VERSION_1, &hdr.dcid, Side::Server) else {
        return false;
    };
    let Ok(seal) = initial_keys(VERSION_1, &hdr.dcid, Side::Client) else {
        return false;
    };
    if open.header.remote.decrypt(hdr.pn_offset, pkt).is_err() {
        return false;
    }
    let header_len = hdr.pn_offset + usize::from(pkt[0] & 0x03) + 1;
    let pn = pkt[hdr.pn_offset..header_len]
        .iter()
        .fold(0u64, |a, &b| (a << 8) | u64::from(b));
    let (header, payload) = pkt.split_at_mut(header_len);
    let Ok(len) = open.packet.remote.open(pn, header, payload) else {
        return false;
    };
    let Some(at) = payload[..len].windows(from.len()).position(|w| w == from) else {
        return false;
    };
    payload[at..at + to.len()].copy_from_slice(to);
    seal.packet.local.seal(pn, header, payload);
    seal.header.local.encrypt(hdr.pn_offset, pkt).is_ok()
}

#[test]
fn rewritten_version_information_cannot_downgrade() {
    // The server prefers v2 and the client offers it: the only way to keep them in v1 is to
    // hide the client's offer. TLS authenticates the ClientHello (the transport parameters
    // are part of the transcript), so the handshake cannot complete in the downgraded version.
    let mut h = Harness::new(Setup {
        version: VERSION_1,
        server_versions: Some(vec![VERSION_2, VERSION_1]),
        ..Setup::default()
    });
    let client = h.pair.client;
    let rewritten = Rc::new(RefCell::new(false));
    let flag = rewritten.clone();
    h.pair.net.set_interceptor(move |info, data| {
        if info.src == client && info.index == 0 {
            // Hide v2 from the client's Available Versions behind a reserved version
            *flag.borrow_mut() = rewrite_client_initial(data, &VERSION_2.to_be_bytes(), &[0x0a; 4]);
        }
        Verdict::Deliver
    });
    let ch = h.ch;
    let seed = h.pair.net.seed();
    h.pair
        .drive_until(|p| p.client().lost_reason(ch).is_some())
        .unwrap_or_else(|e| panic!("seed {seed}: the client never gave up: {e:?}"));
    assert!(*rewritten.borrow(), "the attack did not apply");
    // Handshake keys derive from the transcript, so the client cannot even read the server's
    // Handshake packets: the attempt times out instead of completing in v1
    assert!(
        matches!(h.client().lost_reason(ch), Some(ConnectionError::TimedOut)),
        "{:?}",
        h.client().lost_reason(ch)
    );
    assert!(!h.client().has_event(ch, |e| *e == Event::Connected));
    let server = h.server();
    assert!(server
        .accepted
        .iter()
        .all(|&s| !server.has_event(s, |e| *e == Event::Connected)));
}

#[test]
fn v1_preferring_server_converts_a_v2_client() {
    // Compatible negotiation goes both ways: the server's preference order decides
    let mut h = Harness::new(Setup {
        version: VERSION_2,
        client_versions: Some(vec![VERSION_2, VERSION_1]),
        server_versions: Some(vec![VERSION_1, VERSION_2]),
        ..Setup::default()
    });
    h.handshake();
    assert_eq!(h.client_conn().version(), VERSION_1);
    assert_eq!(h.client_conn().original_version(), VERSION_2);
    assert_eq!(h.server_conn().version(), VERSION_1);
    let data = payload(20_000, 5);
    assert_eq!(h.transfer(Dir::Bi, &data), data);
}

#[test]
fn server_refuses_a_chosen_version_that_is_not_the_initials() {
    // RFC 9368 §4: the client's Chosen Version must be the version of its first Initial. An
    // attacker rewriting it is caught by the server before TLS would notice the transcript
    let mut h = Harness::new(Setup {
        version: VERSION_1,
        client_versions: Some(vec![VERSION_1, VERSION_2]),
        ..Setup::default()
    });
    let client = h.pair.client;
    let rewritten = Rc::new(RefCell::new(false));
    let flag = rewritten.clone();
    // version_information (id 0x11, 12 bytes): chosen v1, available v1 and v2
    let mut from = vec![0x11, 0x0c];
    for v in [VERSION_1, VERSION_1, VERSION_2] {
        from.extend_from_slice(&v.to_be_bytes());
    }
    let mut to = from.clone();
    to[2..6].copy_from_slice(&[0x0a; 4]);
    h.pair.net.set_interceptor(move |info, data| {
        if info.src == client && info.index == 0 {
            *flag.borrow_mut() = rewrite_client_initial(data, &from, &to);
        }
        Verdict::Deliver
    });
    let ch = h.ch;
    let seed = h.pair.net.seed();
    h.pair
        .drive_until(|p| p.client().lost_reason(ch).is_some())
        .unwrap_or_else(|e| panic!("seed {seed}: the client never gave up: {e:?}"));
    assert!(*rewritten.borrow(), "the attack did not apply");
    match h.client().lost_reason(ch) {
        Some(ConnectionError::ConnectionClosed { error_code, .. }) => assert_eq!(
            error_code,
            TransportErrorCode::VERSION_NEGOTIATION_ERROR.0,
            "{error_code:#x}"
        ),
        other => {
            panic!("seed {seed}: expected the server's VERSION_NEGOTIATION_ERROR, got {other:?}")
        }
    }
}

#[test]
fn upgrade_after_retry() {
    // After a Retry the Initial keys derive from the Retry's SCID (RFC 9001 §5.2); both the
    // server's choice and the client's switch must use those
    let mut h = Harness::new(Setup {
        version: VERSION_1,
        server_versions: Some(vec![VERSION_2, VERSION_1]),
        retry: true,
        ..Setup::default()
    });
    h.handshake();
    assert_eq!(h.client_conn().version(), VERSION_2);
    assert_eq!(h.server_conn().version(), VERSION_2);
    assert_eq!(h.server_conn().original_version(), VERSION_1);
    let data = payload(30_000, 6);
    assert_eq!(h.transfer(Dir::Bi, &data), data);
}
