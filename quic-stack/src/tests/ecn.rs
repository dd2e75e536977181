//! ECN scenarios (RFC 9000 §13.4, RFC 9002 §7.1)

use std::time::Duration;

use super::util::{payload, Harness, Setup};
use crate::config::TransportConfig;
use crate::shared::Dir;
use crate::sim::LinkConfig;

#[test]
fn ecn_is_validated_on_a_clean_path() {
    let mut h = Harness::new(Setup::default());
    h.handshake();
    let data = payload(300_000, 2);
    assert_eq!(h.transfer(Dir::Bi, &data), data);
    h.pair.drive().expect("settle");
    let cs = h.client_conn().stats();
    let ss = h.server_conn().stats();
    assert!(cs.ecn_capable, "client: {cs:?}");
    assert!(ss.ecn_capable, "server: {ss:?}");
    assert_eq!(cs.ecn_ce_reported, 0);
    assert_eq!(cs.congestion_events, 0);
}

#[test]
fn ce_marks_are_congestion_events_without_loss() {
    let seed = 41;
    let mut h = Harness::new(Setup {
        seed,
        link: LinkConfig {
            delay: Duration::from_millis(10),
            ce_mark: 0.02,
            ..LinkConfig::default()
        },
        ..Setup::default()
    });
    h.handshake();
    let data = payload(1 << 20, seed);
    assert!(
        h.transfer(Dir::Bi, &data) == data,
        "seed {seed}: payload mismatch"
    );
    let marked = h.pair.to_server().stats.ce_marked;
    let cs = h.client_conn().stats();
    assert!(marked > 0, "seed {seed}: the link marked nothing");
    assert!(cs.ecn_ce_reported > 0, "seed {seed}: {cs:?}");
    assert!(cs.congestion_events > 0, "seed {seed}: {cs:?}");
    assert_eq!(cs.packets_lost, 0, "seed {seed}: {cs:?}");
    assert!(
        cs.ecn_capable,
        "seed {seed}: CE marks must not fail validation"
    );
}

#[test]
fn ecn_off_sends_not_ect() {
    let mut h = Harness::new(Setup {
        transport: TransportConfig {
            ecn: false,
            ..TransportConfig::default()
        },
        link: LinkConfig {
            ce_mark: 1.0,
            ..LinkConfig::default()
        },
        ..Setup::default()
    });
    h.handshake();
    let data = payload(100_000, 3);
    assert_eq!(h.transfer(Dir::Bi, &data), data);
    assert_eq!(h.pair.to_server().stats.ce_marked, 0);
    let cs = h.client_conn().stats();
    assert!(!cs.ecn_capable);
    assert_eq!(cs.ecn_ce_reported, 0);
}
