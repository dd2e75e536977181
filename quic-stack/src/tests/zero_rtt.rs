//! 0-RTT (RFC 9001 §4.6): a resumed client sends stream data and datagrams before the
//! handshake completes; rejection and Retry make it resend that data in 1-RTT packets

use std::sync::Arc;

use bytes::Bytes;

use super::util::{payload, write_early, Harness, Setup, StreamReader};
use crate::config::{EndpointConfig, ServerConfig, TransportConfig};
use crate::connection::Event;
use crate::endpoint::{ConnectionHandle, Endpoint};
use crate::shared::{Dir, StreamId};

fn zero_rtt_setup(seed: u64, retry: bool) -> Setup {
    Setup {
        seed,
        retry,
        transport: TransportConfig {
            zero_rtt: true,
            ..TransportConfig::default()
        },
        server_early_data: true,
        ..Setup::default()
    }
}

/// A first, full handshake that leaves a session ticket in the client's TLS config
fn first_connection(setup: Setup) -> Harness {
    let mut h = Harness::new(setup);
    assert!(
        !h.client_conn().is_zero_rtt_available(),
        "no ticket yet, no 0-RTT"
    );
    h.handshake();
    h.pair.drive().expect("settle: the ticket arrives");
    assert_eq!(h.client_conn().zero_rtt_accepted(), None);
    h
}

/// What the server saw of a resumed connection
struct Resumed {
    ch: ConnectionHandle,
    sh: ConnectionHandle,
    received: Vec<u8>,
    /// The server read stream data while its handshake was still running
    read_during_handshake: bool,
    datagram: Option<Bytes>,
}

/// Connect again and, before a single packet left, write `data` on a stream and queue a
/// datagram; drive until the server has read the whole stream
fn resumed_transfer(h: &mut Harness, data: &[u8]) -> Resumed {
    let accepted_before = h.server().accepted.len();
    let ch = h.connect_again();
    let c = h.client().conn(ch);
    assert!(c.is_zero_rtt_available(), "the ticket allows 0-RTT");
    let id = c
        .open(Dir::Bi)
        .expect("remembered stream limit allows a stream");
    write_early(c, id, data);

    let mut reader = StreamReader::new();
    let mut server_stream: Option<StreamId> = None;
    let mut datagram = None;
    let seed = h.pair.net.seed();
    h.pair
        .drive_until(|p| {
            let Some(&sh) = p.server().accepted.get(accepted_before) else {
                return false;
            };
            let s = p.server_mut().conn(sh);
            if datagram.is_none() {
                datagram = s.recv_datagram();
            }
            if server_stream.is_none() {
                server_stream = s.accept(Dir::Bi);
            }
            let Some(sid) = server_stream else {
                return false;
            };
            reader.read(s, sid)
        })
        .unwrap_or_else(|e| panic!("seed {seed}: resumed transfer stalled: {e:?}"));
    let sh = h.server().accepted[accepted_before];
    // Let the handshake finish on both sides
    h.pair
        .drive_until(|p| {
            p.client()
                .has_event(ch, |e| *e == Event::HandshakeConfirmed)
                && p.server().has_event(sh, |e| *e == Event::Connected)
        })
        .unwrap_or_else(|e| panic!("seed {seed}: resumed handshake: {e:?}"));
    if datagram.is_none() {
        datagram = h.server().conn(sh).recv_datagram();
    }
    Resumed {
        ch,
        sh,
        received: reader.received,
        read_during_handshake: reader.read_during_handshake,
        datagram,
    }
}

#[test]
fn zero_rtt_data_arrives_before_the_handshake_completes() {
    let mut h = first_connection(zero_rtt_setup(61, false));
    let data = payload(20_000, 61);
    let r = resumed_transfer(&mut h, &data);
    assert!(r.received == data, "payload mismatch");
    assert!(
        r.read_during_handshake,
        "the server must deliver 0-RTT data before its handshake completes"
    );
    assert_eq!(r.datagram.as_deref(), Some(&b"early datagram"[..]));
    let c = h.client().conn(r.ch);
    assert_eq!(c.zero_rtt_accepted(), Some(true));
    let cs = c.stats();
    assert!(cs.zero_rtt_packets_sent >= 2, "{cs:?}");
    assert_eq!(cs.zero_rtt_bytes_accepted, cs.zero_rtt_bytes_sent);
    assert_eq!(cs.zero_rtt_packets_resent, 0);
    let s = h.server().conn(r.sh);
    assert_eq!(s.zero_rtt_accepted(), Some(true));
    // Lossless link: the server processed every 0-RTT packet (the initial window bounds how
    // much of the stream fits in them; the rest follows in 1-RTT)
    let ss = s.stats();
    assert_eq!(ss.zero_rtt_bytes_accepted, cs.zero_rtt_bytes_sent, "{ss:?}");
    // The connection works on after the handshake
    let more = payload(50_000, 62);
    h.ch = r.ch;
    h.sh = Some(r.sh);
    assert_eq!(h.transfer(Dir::Uni, &more), more);
}

#[test]
fn zero_rtt_rejected_data_is_resent_in_1rtt() {
    let mut h = first_connection(zero_rtt_setup(63, false));
    // The server's operator turns 0-RTT off: the ticket still resumes, early data is refused
    let strict = ServerConfig {
        transport: Arc::new(TransportConfig::default()),
        ..(*h.server_config).clone()
    };
    h.server().ep.set_server_config(Some(Arc::new(strict)));
    let data = payload(30_000, 63);
    let r = resumed_transfer(&mut h, &data);
    assert!(r.received == data, "payload mismatch after rejection");
    assert!(
        !r.read_during_handshake,
        "rejected 0-RTT data was delivered"
    );
    let c = h.client().conn(r.ch);
    assert_eq!(c.zero_rtt_accepted(), Some(false));
    let cs = c.stats();
    assert!(cs.zero_rtt_packets_sent >= 2, "{cs:?}");
    // Every 0-RTT packet was taken back and its frames resent, without a congestion signal
    assert_eq!(
        cs.zero_rtt_packets_resent, cs.zero_rtt_packets_sent,
        "{cs:?}"
    );
    assert_eq!(cs.zero_rtt_bytes_accepted, 0);
    assert_eq!(cs.congestion_events, 0, "{cs:?}");
    let s = h.server().conn(r.sh);
    assert_eq!(s.zero_rtt_accepted(), None);
    let ss = s.stats();
    assert_eq!(ss.zero_rtt_bytes_accepted, 0);
    assert!(ss.packets_dropped >= cs.zero_rtt_packets_sent, "{ss:?}");
}

#[test]
fn retry_then_zero_rtt() {
    let mut h = first_connection(zero_rtt_setup(65, true));
    // A fresh client endpoint has no NEW_TOKEN token, so the server answers with Retry; the
    // TLS session cache lives in the shared client TLS config, so 0-RTT is still possible
    h.client().ep = Endpoint::new(Arc::new(EndpointConfig::default()), None, [0x65; 32]);
    let server_sent_before = h.server().sent_sizes.len();
    let data = payload(8_000, 65);
    let r = resumed_transfer(&mut h, &data);
    assert!(r.received == data, "payload mismatch");
    let first_reply = h.server().sent_sizes[server_sent_before];
    assert!(
        first_reply < 1200,
        "expected a Retry, got a {first_reply}-byte datagram"
    );
    let c = h.client().conn(r.ch);
    assert_eq!(c.zero_rtt_accepted(), Some(true));
    let cs = c.stats();
    // The 0-RTT packets that went with the first Initial were dropped with it and resent
    assert!(cs.zero_rtt_packets_resent >= 1, "{cs:?}");
    assert!(
        cs.zero_rtt_packets_sent > cs.zero_rtt_packets_resent,
        "{cs:?}"
    );
    assert!(r.read_during_handshake);
    // RFC 9221 §5: datagrams are never retransmitted, so the one in the dropped packet is gone
    assert_eq!(r.datagram, None);
}

#[test]
fn zero_rtt_off_by_default() {
    // Same tickets, but neither side asked for 0-RTT in its transport config
    let mut h = first_connection(Setup {
        seed: 67,
        server_early_data: true,
        ..Setup::default()
    });
    let ch = h.connect_again();
    let c = h.client().conn(ch);
    assert!(!c.is_zero_rtt_available());
    assert_eq!(
        c.open(Dir::Bi),
        None,
        "no stream credit before the handshake"
    );
    h.pair
        .drive_until(|p| p.client().has_event(ch, |e| *e == Event::Connected))
        .expect("resumed handshake");
    let c = h.client().conn(ch);
    assert_eq!(c.zero_rtt_accepted(), None);
    assert_eq!(c.stats().zero_rtt_packets_sent, 0);
}

#[test]
fn zero_rtt_under_loss() {
    // Lost 0-RTT packets are detected like any Data-space packet and their data resent
    for seed in 68..74u64 {
        let mut setup = zero_rtt_setup(seed, false);
        setup.link = crate::sim::LinkConfig {
            loss: 0.15,
            ..crate::sim::LinkConfig::default()
        };
        let mut h = first_connection(setup);
        let data = payload(40_000, seed);
        let r = resumed_transfer(&mut h, &data);
        assert!(r.received == data, "seed {seed}: payload mismatch");
        let c = h.client().conn(r.ch);
        assert_eq!(c.zero_rtt_accepted(), Some(true), "seed {seed}");
        assert!(c.stats().zero_rtt_packets_sent > 0, "seed {seed}");
    }
}

#[test]
fn server_that_lowers_its_limits_while_accepting_zero_rtt_is_refused() {
    let mut h = first_connection(zero_rtt_setup(75, false));
    // Same ticket and still accepting 0-RTT, but fewer streams than the client was promised
    // (RFC 9000 §7.4.1 forbids that)
    let stingy = ServerConfig {
        transport: Arc::new(TransportConfig {
            zero_rtt: true,
            max_concurrent_bidi_streams: 10,
            ..TransportConfig::default()
        }),
        ..(*h.server_config).clone()
    };
    h.server().ep.set_server_config(Some(Arc::new(stingy)));
    let ch = h.connect_again();
    assert!(h.client().conn(ch).is_zero_rtt_available());
    h.pair
        .drive_until(|p| p.client().lost_reason(ch).is_some())
        .expect("the client gives up on the connection");
    match h.client().lost_reason(ch) {
        Some(crate::connection::ConnectionError::TransportError(e)) => {
            assert_eq!(e.code, crate::error::TransportErrorCode::PROTOCOL_VIOLATION);
        }
        other => panic!("unexpected outcome {other:?}"),
    }
}

/// A writer into a shared buffer, for the qlog check
#[derive(Clone, Default)]
struct SharedBuf(Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for SharedBuf {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().expect("lock").extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[test]
fn qlog_names_zero_rtt_packets() {
    let mut h = first_connection(zero_rtt_setup(77, false));
    let now = h.now();
    let ch = h.connect_again();
    let out = SharedBuf::default();
    let c = h.client().conn(ch);
    let writer = crate::qlog::QlogWriter::new(
        out.clone(),
        crate::shared::Side::Client,
        c.original_dcid(),
        "test",
    );
    c.set_qlog(now, Box::new(writer));
    c.send_datagram(Bytes::from_static(b"early"))
        .expect("0-RTT datagram");
    h.pair
        .drive_until(|p| p.client().has_event(ch, |e| *e == Event::Connected))
        .expect("resumed handshake");
    h.pair.drive().expect("settle");
    let text = String::from_utf8(out.0.lock().expect("lock").clone()).expect("UTF-8 qlog");
    assert!(text.contains("\"0RTT\""), "no 0-RTT packet in the trace");
    assert!(text.contains("\"1RTT\""));
}
