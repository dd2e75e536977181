//! Socket-API events the connection state produces: QUIC_EVENT_STREAM_UPDATE with
//! RECV_SIZE_KNOWN when a stream's FIN arrives ahead of a gap

use std::cell::Cell;
use std::rc::Rc;

use super::util::{payload, Harness, Setup};
use crate::shared::Dir;
use crate::sim::Verdict;
use crate::sockapi::consts::stream_state;
use crate::sockapi::events::{recv_size_known, Event};

#[test]
fn fin_ahead_of_a_gap_reports_size_known() {
    let mut h = Harness::new(Setup::default());
    h.handshake();
    h.pair.drive().expect("settle");
    let client = h.pair.client;
    // Lose the stream's first packet once: its later packets, FIN included, get there first
    let dropped = Rc::new(Cell::new(false));
    let d = dropped.clone();
    h.pair.net.set_interceptor(move |info, data| {
        if info.src == client && !d.get() && data.len() > 1000 {
            d.set(true);
            return Verdict::Drop;
        }
        Verdict::Deliver
    });
    let data = payload(3_000, 81);
    let c = h.client_conn();
    let id = c.open(Dir::Uni).expect("open");
    assert_eq!(c.write(id, &data).expect("write"), data.len());
    c.finish(id).expect("finish");

    let sh = h.sh.expect("server");
    let mut size_known = None;
    let seed = h.pair.net.seed();
    h.pair
        .drive_until(|p| {
            let s = p.server_mut().conn(sh);
            if s.accept(Dir::Uni).is_some_and(|got| got != id) {
                panic!("unexpected stream");
            }
            size_known = recv_size_known(s, id.0);
            size_known.is_some()
        })
        .unwrap_or_else(|e| panic!("seed {seed}: no SIZE_KNOWN: {e:?}"));
    assert!(dropped.get());
    match size_known {
        Some(Event::StreamUpdate(u)) => {
            assert_eq!(u.id, id.0 as i64);
            assert_eq!(u.state, stream_state::RECV_SIZE_KNOWN);
            assert_eq!(u.finalsz, data.len() as u64);
        }
        other => panic!("{other:?}"),
    }
    // Once the retransmission fills the gap the state is RECVD: no SIZE_KNOWN any more
    let mut got = Vec::new();
    let mut buf = vec![0u8; 4096];
    h.pair
        .drive_until(|p| {
            let s = p.server_mut().conn(sh);
            if recv_size_known(s, id.0).is_some() {
                return false;
            }
            while let Ok(Some(r)) = s.read(id, &mut buf) {
                got.extend_from_slice(&buf[..r.len]);
                if r.fin || r.len == 0 {
                    return r.fin;
                }
            }
            false
        })
        .unwrap_or_else(|e| panic!("seed {seed}: gap never filled: {e:?}"));
    assert!(got == data, "stream data intact");
}

#[test]
fn in_order_fin_is_not_size_known() {
    let mut h = Harness::new(Setup::default());
    h.handshake();
    let data = payload(500, 82);
    let c = h.client_conn();
    let id = c.open(Dir::Uni).expect("open");
    c.write(id, &data).expect("write");
    c.finish(id).expect("finish");
    let sh = h.sh.expect("server");
    let mut seen = false;
    h.pair
        .drive_until(|p| {
            let s = p.server_mut().conn(sh);
            seen |= recv_size_known(s, id.0).is_some();
            s.stream_recv_final_size(id).is_some()
        })
        .expect("FIN arrives");
    assert_eq!(
        h.server_conn().stream_recv_final_size(id),
        Some((500, true))
    );
    assert!(!seen, "all data came with the FIN: RECVD, never SIZE_KNOWN");
}
