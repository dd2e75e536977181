//! The views and controls the SOL_QUIC socket service uses (connection/sockapi_hooks.rs)

use super::util::{payload, Harness, Setup};
use crate::shared::Dir;

fn established() -> Harness {
    let mut h = Harness::new(Setup::default());
    h.handshake();
    h.pair.drive().expect("settle");
    h
}

#[test]
fn key_update_flips_the_phase_on_both_sides_and_data_flows() {
    let mut h = established();
    assert!(!h.client_conn().key_phase() && !h.server_conn().key_phase());
    h.client_conn().initiate_key_update();
    assert!(h.client_conn().key_update_pending());
    // Still unfinished once the client switched, until the server answers in the new phase
    // (a unidirectional nudge: the transfers below read bidirectional streams)
    let id = h.client_conn().open(Dir::Uni).expect("stream");
    h.client_conn().write(id, b"x").expect("write");
    h.client_conn().finish(id).expect("finish");
    let (ch, seed) = (h.ch, h.pair.net.seed());
    h.pair
        .drive_until(|p| p.client_mut().conn(ch).key_phase())
        .unwrap_or_else(|e| panic!("seed {seed}: {e:?}"));
    assert!(
        h.client_conn().key_update_pending(),
        "the server has not answered yet"
    );
    assert!(
        !h.server_conn().key_update_pending(),
        "nothing pending on the server"
    );
    let data = payload(20_000, 3);
    assert_eq!(h.transfer(Dir::Bi, &data), data);
    h.pair.drive().expect("settle");
    assert!(!h.client_conn().key_update_pending());
    assert!(h.client_conn().key_phase(), "client in the new phase");
    assert!(h.server_conn().key_phase(), "server followed");
    assert_eq!(h.transfer(Dir::Bi, &data), data, "data after the update");
}

#[test]
fn retiring_peer_cids_moves_the_peer_past_them() {
    let mut h = established();
    let (active, lo) = h.client_conn().connection_id_numbers(true);
    assert_eq!((active, lo), (0, 0));
    // Out of range: at or below the lowest live number, or beyond the highest.
    assert!(h.client_conn().retire_connection_ids(true, 0, 0).is_err());
    assert!(h.client_conn().retire_connection_ids(true, 99, 0).is_err());
    h.client_conn()
        .retire_connection_ids(true, 1, 0)
        .expect("retire seq 0");
    assert_eq!(h.client_conn().connection_id_numbers(true), (1, 1));
    h.pair.drive().expect("settle");
    // The server saw RETIRE_CONNECTION_ID(0) and replaced the CID.
    let (_, server_lo) = h.server_conn().connection_id_numbers(false);
    assert_eq!(server_lo, 1);
    let data = payload(5_000, 4);
    assert_eq!(h.transfer(Dir::Bi, &data), data);
}

#[test]
fn retiring_our_own_cids_makes_the_peer_drop_them() {
    let mut h = established();
    let (_, lo) = h.server_conn().connection_id_numbers(false);
    assert_eq!(lo, 0);
    h.server_conn()
        .retire_connection_ids(false, 2, 0)
        .expect("retire below 2");
    h.pair.drive().expect("settle");
    let (active, lo) = h.client_conn().connection_id_numbers(true);
    assert!(
        lo >= 2 && active >= 2,
        "client moved on: active {active}, lowest {lo}"
    );
    assert_eq!(h.server_conn().connection_id_numbers(false).1, 2);
    let data = payload(5_000, 5);
    assert_eq!(h.transfer(Dir::Bi, &data), data, "the new CIDs route");
}

#[test]
fn peer_limits_and_new_token_on_demand() {
    let mut h = established();
    let bidi = h.client_conn().peer_max_streams(Dir::Bi);
    assert!(bidi > 0);
    let id = h.client_conn().open(Dir::Bi).expect("open");
    assert!(h
        .client_conn()
        .stream_send_max_data(id)
        .is_some_and(|m| m > 0));
    assert!(
        !h.client_conn().request_new_token(),
        "clients don't issue tokens"
    );
    h.pair.drive().expect("settle");
    let first = h.client().ep.new_token("localhost").map(<[u8]>::to_vec);
    assert!(
        first.as_ref().is_some_and(|t| !t.is_empty()),
        "token after the handshake"
    );
    assert!(h.server_conn().request_new_token());
    h.pair.drive().expect("settle");
    let second = h.client().ep.new_token("localhost").map(<[u8]>::to_vec);
    assert!(second.is_some_and(|t| !t.is_empty() && Some(&t) != first.as_ref()));
}
