use super::*;
use crate::error::TransportErrorCode;
use crate::frame::Frame;
use proptest::prelude::*;

fn cfg() -> StreamsConfig {
    StreamsConfig {
        max_concurrent_bidi: 4,
        max_concurrent_uni: 4,
        stream_receive_window: 1000,
        max_stream_receive_window: 4000,
        receive_window: 3000,
        max_receive_window: 12000,
        send_window: 100_000,
    }
}

fn params() -> PeerStreamParams {
    PeerStreamParams {
        initial_max_data: 3000,
        initial_max_stream_data_bidi_local: 1000,
        initial_max_stream_data_bidi_remote: 1000,
        initial_max_stream_data_uni: 1000,
        initial_max_streams_bidi: 4,
        initial_max_streams_uni: 4,
    }
}

fn pair() -> (StreamsState, StreamsState) {
    let mut c = StreamsState::new(Side::Client, &cfg());
    let mut s = StreamsState::new(Side::Server, &cfg());
    c.set_peer_params(&params());
    s.set_peer_params(&params());
    (c, s)
}

/// Decode a packet payload with the wire module's parser; everything we emit must parse
fn parse(b: &[u8]) -> Vec<Frame<'_>> {
    frame::Iter::new(b)
        .map(|f| f.expect("stream layer emitted a malformed frame"))
        .collect()
}

/// Feed one decoded frame to `s`
fn deliver(s: &mut StreamsState, f: &Frame<'_>) -> Result<(), TransportError> {
    match f {
        Frame::Stream(f) => s.on_stream_frame(f),
        Frame::ResetStream {
            id,
            error_code,
            final_size,
        } => s.on_reset_stream(*id, *error_code, *final_size),
        Frame::StopSending { id, error_code } => s.on_stop_sending(*id, *error_code),
        Frame::MaxData(m) => {
            s.on_max_data(*m);
            Ok(())
        }
        Frame::MaxStreamData { id, max } => s.on_max_stream_data(*id, *max),
        Frame::MaxStreams { dir, count } => s.on_max_streams(*dir, *count),
        Frame::DataBlocked(l) => {
            s.on_data_blocked(*l);
            Ok(())
        }
        Frame::StreamDataBlocked { id, limit } => s.on_stream_data_blocked(*id, *limit),
        Frame::StreamsBlocked { dir, limit } => s.on_streams_blocked(*dir, *limit),
        _ => unreachable!(),
    }
}

// Marked so the sans-IO check sees this clock read as test-only (this file is the test module).
#[cfg(test)]
fn now() -> Instant {
    // A fixed base instant; tests only need monotonic offsets from it.
    static BASE: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();
    *BASE.get_or_init(Instant::now)
}

const RTT: Duration = Duration::from_millis(10);

/// Build one packet of at most `max` bytes from `from`
fn packet(from: &mut StreamsState, max: usize) -> (Vec<u8>, SentFrames) {
    let mut buf = Vec::new();
    let mut sent = SentFrames::default();
    from.write_frames(&mut buf, max, now(), RTT, &mut sent);
    assert!(buf.len() <= max);
    (buf, sent)
}

/// Send packets from `a` to `b` until `a` has nothing left, acknowledging each
fn flush(a: &mut StreamsState, b: &mut StreamsState) {
    for _ in 0..10_000 {
        let (buf, sent) = packet(a, 1200);
        if buf.is_empty() {
            return;
        }
        for f in parse(&buf) {
            deliver(b, &f).expect("peer accepts");
        }
        a.on_acked(sent);
    }
    panic!("flush did not converge");
}

fn events(s: &mut StreamsState) -> Vec<StreamEvent> {
    std::iter::from_fn(|| s.poll_event()).collect()
}

fn stream(id: StreamId, offset: u64, data: &[u8], fin: bool) -> frame::Stream<'_> {
    frame::Stream {
        id,
        offset,
        fin,
        data,
    }
}

fn code(r: Result<(), TransportError>) -> TransportErrorCode {
    r.expect_err("expected a transport error").code
}

#[test]
fn open_write_read_finish() {
    let (mut c, mut s) = pair();
    let id = c.open(Dir::Bi).unwrap();
    assert_eq!(id, StreamId(0));
    assert_eq!(c.write(id, b"hello").unwrap(), 5);
    c.finish(id).unwrap();
    flush(&mut c, &mut s);
    assert_eq!(
        events(&mut s),
        [
            StreamEvent::Opened { dir: Dir::Bi },
            StreamEvent::Readable { id }
        ]
    );
    assert_eq!(s.accept(Dir::Bi), Some(id));
    assert_eq!(s.accept(Dir::Bi), None);
    let mut buf = [0; 16];
    assert_eq!(
        s.read(id, &mut buf).unwrap(),
        Some(ReadResult { len: 5, fin: true })
    );
    assert_eq!(&buf[..5], b"hello");
    assert_eq!(s.read(id, &mut buf), Err(ReadError::ClosedStream));
    // The client's send half finished once everything was acked.
    assert_eq!(events(&mut c), [StreamEvent::Finished { id }]);
    // Server still has its send half open; finishing it frees the stream on both sides.
    s.finish(id).unwrap();
    flush(&mut s, &mut c);
    assert_eq!(s.stream_count(), 0);
    assert_eq!(
        c.read(id, &mut buf).unwrap(),
        Some(ReadResult { len: 0, fin: true })
    );
    assert_eq!(c.stream_count(), 0);
}

#[test]
fn peer_opening_our_stream_is_stream_state_error() {
    let (_, mut s) = pair();
    // Server-initiated bidi stream 0 (id 1) that the server never opened.
    let r = s.on_stream_frame(&stream(
        StreamId::new(Side::Server, Dir::Bi, 0),
        0,
        b"x",
        false,
    ));
    assert_eq!(code(r), TransportErrorCode::STREAM_STATE_ERROR);
    let r = s.on_max_stream_data(StreamId::new(Side::Server, Dir::Uni, 0), 10);
    assert_eq!(code(r), TransportErrorCode::STREAM_STATE_ERROR);
}

#[test]
fn data_on_our_send_only_stream_is_stream_state_error() {
    let (mut c, _) = pair();
    let id = c.open(Dir::Uni).unwrap();
    assert_eq!(
        code(c.on_stream_frame(&stream(id, 0, b"x", false))),
        TransportErrorCode::STREAM_STATE_ERROR
    );
    assert_eq!(
        code(c.on_reset_stream(id, 0, 0)),
        TransportErrorCode::STREAM_STATE_ERROR
    );
    assert_eq!(
        code(c.on_stream_data_blocked(id, 0)),
        TransportErrorCode::STREAM_STATE_ERROR
    );
}

#[test]
fn send_side_frames_on_receive_only_stream_are_errors() {
    let (_, mut s) = pair();
    let peer_uni = StreamId::new(Side::Client, Dir::Uni, 0);
    assert_eq!(
        code(s.on_max_stream_data(peer_uni, 100)),
        TransportErrorCode::STREAM_STATE_ERROR
    );
    assert_eq!(
        code(s.on_stop_sending(peer_uni, 1)),
        TransportErrorCode::STREAM_STATE_ERROR
    );
}

#[test]
fn beyond_max_streams_is_stream_limit_error() {
    let (_, mut s) = pair();
    let id = StreamId::new(Side::Client, Dir::Bi, 4);
    assert_eq!(
        code(s.on_stream_frame(&stream(id, 0, b"x", false))),
        TransportErrorCode::STREAM_LIMIT_ERROR
    );
    assert_eq!(
        code(s.on_streams_blocked(Dir::Uni, (1 << 60) + 1)),
        TransportErrorCode::STREAM_LIMIT_ERROR
    );
    assert_eq!(
        code(s.on_max_streams(Dir::Bi, (1 << 60) + 1)),
        TransportErrorCode::FRAME_ENCODING_ERROR
    );
}

#[test]
fn implicit_open_of_lower_streams() {
    let (_, mut s) = pair();
    let id = StreamId::new(Side::Client, Dir::Uni, 2);
    s.on_stream_frame(&stream(id, 0, b"x", false)).unwrap();
    assert_eq!(s.stream_count(), 3);
    assert_eq!(events(&mut s)[0], StreamEvent::Opened { dir: Dir::Uni });
    for i in 0..3 {
        assert_eq!(
            s.accept(Dir::Uni),
            Some(StreamId::new(Side::Client, Dir::Uni, i))
        );
    }
    assert_eq!(s.accept(Dir::Uni), None);
}

#[test]
fn open_blocked_sends_streams_blocked_once() {
    let (mut c, mut s) = pair();
    for _ in 0..4 {
        c.open(Dir::Uni).unwrap();
    }
    assert_eq!(c.open(Dir::Uni), None);
    assert_eq!(c.open(Dir::Uni), None);
    let (buf, _) = packet(&mut c, 1200);
    assert_eq!(
        parse(&buf),
        [Frame::StreamsBlocked {
            dir: Dir::Uni,
            limit: 4
        }]
    );
    assert!(!c.has_pending());
    c.on_max_streams(Dir::Uni, 5).unwrap();
    assert!(c.open(Dir::Uni).is_some());
    let _ = &mut s;
}

#[test]
fn stream_flow_control_error() {
    let (_, mut s) = pair();
    let id = StreamId::new(Side::Client, Dir::Bi, 0);
    s.on_stream_frame(&stream(id, 0, &[0; 1000], false))
        .unwrap();
    assert_eq!(
        code(s.on_stream_frame(&stream(id, 1000, b"x", false))),
        TransportErrorCode::FLOW_CONTROL_ERROR
    );
}

#[test]
fn connection_flow_control_error() {
    let (_, mut s) = pair();
    for i in 0..3 {
        let id = StreamId::new(Side::Client, Dir::Bi, i);
        s.on_stream_frame(&stream(id, 0, &[0; 1000], false))
            .unwrap();
    }
    // Each stream is within its own limit, but the connection's 3000 is used up.
    let id = StreamId::new(Side::Client, Dir::Bi, 3);
    assert_eq!(
        code(s.on_stream_frame(&stream(id, 0, b"x", false))),
        TransportErrorCode::FLOW_CONTROL_ERROR
    );
    // A reset's final size counts too.
    assert_eq!(
        code(s.on_reset_stream(id, 0, 1)),
        TransportErrorCode::FLOW_CONTROL_ERROR
    );
}

#[test]
fn final_size_errors() {
    let (_, mut s) = pair();
    let id = StreamId::new(Side::Client, Dir::Bi, 0);
    s.on_stream_frame(&stream(id, 0, b"abcd", true)).unwrap();
    // Data beyond the final size.
    assert_eq!(
        code(s.on_stream_frame(&stream(id, 4, b"e", false))),
        TransportErrorCode::FINAL_SIZE_ERROR
    );
    // A different final size.
    assert_eq!(
        code(s.on_stream_frame(&stream(id, 0, b"abc", true))),
        TransportErrorCode::FINAL_SIZE_ERROR
    );
    assert_eq!(
        code(s.on_reset_stream(id, 7, 5)),
        TransportErrorCode::FINAL_SIZE_ERROR
    );
    // Retransmission of the same FIN is fine.
    s.on_stream_frame(&stream(id, 2, b"cd", true)).unwrap();
    s.on_reset_stream(id, 7, 4).unwrap();

    let id2 = StreamId::new(Side::Client, Dir::Bi, 1);
    s.on_stream_frame(&stream(id2, 0, b"abcd", false)).unwrap();
    // FIN below data already received.
    assert_eq!(
        code(s.on_stream_frame(&stream(id2, 0, b"ab", true))),
        TransportErrorCode::FINAL_SIZE_ERROR
    );
    assert_eq!(
        code(s.on_reset_stream(id2, 0, 3)),
        TransportErrorCode::FINAL_SIZE_ERROR
    );
}

#[test]
fn write_bounded_by_credit_and_blocked_frames_once() {
    let (mut c, mut s) = pair();
    let id = c.open(Dir::Bi).unwrap();
    assert_eq!(c.write(id, &[1; 1500]).unwrap(), 1000);
    assert_eq!(c.write(id, b"x"), Err(WriteError::Blocked));
    let (buf, sent) = packet(&mut c, 1200);
    let frames = parse(&buf);
    assert_eq!(frames[0], Frame::StreamDataBlocked { id, limit: 1000 });
    assert!(matches!(frames[1], Frame::Stream(ref f) if f.data.len() == 1000));
    for f in &frames {
        deliver(&mut s, f).unwrap();
    }
    c.on_acked(sent);
    // No second STREAM_DATA_BLOCKED at the same limit.
    assert_eq!(c.write(id, b"x"), Err(WriteError::Blocked));
    assert!(!c.has_pending());
    // The server reads, which opens the window: MAX_STREAM_DATA wakes the writer.
    let mut rbuf = [0; 2000];
    assert_eq!(s.read(id, &mut rbuf).unwrap().unwrap().len, 1000);
    flush(&mut s, &mut c);
    assert!(events(&mut c).contains(&StreamEvent::Writable { id }));
    assert!(c.write(id, b"more").unwrap() == 4);
}

#[test]
fn connection_credit_limits_writes_and_data_blocked() {
    let (mut c, mut s) = pair();
    let ids: Vec<_> = (0..4).map(|_| c.open(Dir::Uni).unwrap()).collect();
    for &id in &ids[..3] {
        assert_eq!(c.write(id, &[0; 1000]).unwrap(), 1000);
    }
    assert_eq!(c.write(ids[3], &[0; 10]), Err(WriteError::Blocked));
    let (buf, _) = packet(&mut c, 1200);
    assert_eq!(parse(&buf)[0], Frame::DataBlocked(3000));
    // MAX_DATA from the peer wakes the blocked stream.
    c.on_max_data(4000);
    assert_eq!(events(&mut c), [StreamEvent::Writable { id: ids[3] }]);
    assert_eq!(c.write(ids[3], &[0; 10]).unwrap(), 10);
    let _ = &mut s;
}

#[test]
fn send_window_bounds_unacked_bytes() {
    let mut config = cfg();
    config.send_window = 500;
    let mut c = StreamsState::new(Side::Client, &config);
    c.set_peer_params(&params());
    let id = c.open(Dir::Uni).unwrap();
    assert_eq!(c.write(id, &[0; 800]).unwrap(), 500);
    let (_, sent) = packet(&mut c, 1200);
    c.on_acked(sent);
    assert_eq!(events(&mut c), [StreamEvent::Writable { id }]);
    assert_eq!(c.write(id, &[0; 800]).unwrap(), 500);
}

#[test]
fn reset_stream_flow() {
    let (mut c, mut s) = pair();
    let id = c.open(Dir::Uni).unwrap();
    c.write(id, b"abc").unwrap();
    flush(&mut c, &mut s);
    c.reset(id, 42).unwrap();
    assert_eq!(c.write(id, b"x"), Err(WriteError::ClosedStream));
    let (buf, sent) = packet(&mut c, 1200);
    assert_eq!(
        parse(&buf),
        [Frame::ResetStream {
            id,
            error_code: 42,
            final_size: 3
        }]
    );
    // Lost: the RESET_STREAM goes again.
    c.on_lost(sent);
    let (buf, sent) = packet(&mut c, 1200);
    for f in parse(&buf) {
        deliver(&mut s, &f).unwrap();
    }
    c.on_acked(sent);
    assert_eq!(c.stream_count(), 0);
    let mut rbuf = [0; 8];
    assert_eq!(
        s.read(id, &mut rbuf),
        Err(ReadError::Reset {
            code: 42,
            final_size: 3
        })
    );
    assert_eq!(s.stream_count(), 0);
    // The freed peer stream returns MAX_STREAMS credit.
    let (buf, _) = packet(&mut s, 1200);
    assert!(parse(&buf).contains(&Frame::MaxStreams {
        dir: Dir::Uni,
        count: 5
    }));
}

#[test]
fn stop_sending_flow() {
    let (mut c, mut s) = pair();
    let id = c.open(Dir::Bi).unwrap();
    c.write(id, b"abc").unwrap();
    flush(&mut c, &mut s);
    s.stop_sending(id, 9).unwrap();
    assert_eq!(s.read(id, &mut [0; 4]), Err(ReadError::ClosedStream));
    let (buf, _) = packet(&mut s, 1200);
    assert_eq!(parse(&buf), [Frame::StopSending { id, error_code: 9 }]);
    for f in parse(&buf) {
        deliver(&mut c, &f).unwrap();
    }
    assert_eq!(events(&mut c), [StreamEvent::Stopped { id, error_code: 9 }]);
    assert_eq!(c.write(id, b"x"), Err(WriteError::Stopped(9)));
    // RFC 9000 §3.5: the reply is RESET_STREAM with the final size.
    let (buf, sent) = packet(&mut c, 1200);
    assert_eq!(
        parse(&buf),
        [Frame::ResetStream {
            id,
            error_code: 9,
            final_size: 3
        }]
    );
    for f in parse(&buf) {
        deliver(&mut s, &f).unwrap();
    }
    c.on_acked(sent);
    // The server's receive half is gone; its send half remains until finished.
    assert_eq!(s.read(id, &mut [0; 4]), Err(ReadError::ClosedStream));
    s.finish(id).unwrap();
    flush(&mut s, &mut c);
    assert_eq!(s.stream_count(), 0);
}

#[test]
fn max_streams_replenished_as_streams_close() {
    let (mut c, mut s) = pair();
    let mut rbuf = [0; 64];
    // 20 rounds through a limit of 4 concurrent streams.
    for round in 0..20u8 {
        let id = match c.open(Dir::Uni) {
            Some(id) => id,
            None => panic!("blocked at round {round}"),
        };
        c.write(id, &[round; 10]).unwrap();
        c.finish(id).unwrap();
        flush(&mut c, &mut s);
        let got = s.accept(Dir::Uni).unwrap();
        assert_eq!(got, id);
        let r = s.read(id, &mut rbuf).unwrap().unwrap();
        assert!(r.fin && r.len == 10 && rbuf[0] == round);
        flush(&mut s, &mut c);
    }
    assert_eq!(s.stream_count(), 0);
    assert_eq!(c.stream_count(), 0);
}

#[test]
fn max_data_sent_as_app_reads() {
    let (mut c, mut s) = pair();
    let id = c.open(Dir::Bi).unwrap();
    c.write(id, &[7; 1000]).unwrap();
    flush(&mut c, &mut s);
    assert!(!s.has_pending());
    let mut rbuf = [0; 1000];
    s.read(id, &mut rbuf).unwrap();
    let (buf, _) = packet(&mut s, 1200);
    let frames = parse(&buf);
    assert!(frames
        .iter()
        .any(|f| matches!(f, Frame::MaxStreamData { id: i, max } if *i == id && *max > 1000)));
}

#[test]
fn reading_to_fin_still_sends_max_data() {
    let (mut c, mut s) = pair();
    let ids: Vec<_> = (0..2).map(|_| c.open(Dir::Uni).unwrap()).collect();
    for &id in &ids {
        c.write(id, &[0; 1000]).unwrap();
        c.finish(id).unwrap();
    }
    flush(&mut c, &mut s);
    assert!(!s.has_pending());
    for &id in &ids {
        assert!(s.read(id, &mut [0; 1000]).unwrap().unwrap().fin);
    }
    // No stream needs credit any more, but the connection window does.
    assert!(s.has_pending());
    let (buf, _) = packet(&mut s, 1200);
    assert!(parse(&buf).iter().any(|f| matches!(f, Frame::MaxData(_))));
}

#[test]
fn lost_max_data_resent_only_if_newest() {
    let (mut c, mut s) = pair();
    let ids: Vec<_> = (0..3).map(|_| c.open(Dir::Uni).unwrap()).collect();
    for &id in &ids {
        c.write(id, &[0; 1000]).unwrap();
    }
    flush(&mut c, &mut s);
    let mut rbuf = [0; 1000];
    s.read(ids[0], &mut rbuf).unwrap();
    s.read(ids[1], &mut rbuf).unwrap();
    let (buf, sent) = packet(&mut s, 1200);
    let max = parse(&buf)
        .iter()
        .find_map(|f| match f {
            Frame::MaxData(m) => Some(*m),
            _ => None,
        })
        .expect("MAX_DATA after reading");
    s.on_lost(sent);
    let (buf, _) = packet(&mut s, 1200);
    assert!(parse(&buf).contains(&Frame::MaxData(max)));
}

#[test]
fn round_robin_fairness() {
    let mut config = cfg();
    config.stream_receive_window = 100_000;
    let mut c = StreamsState::new(Side::Client, &config);
    let mut p = params();
    p.initial_max_data = 1_000_000;
    p.initial_max_stream_data_uni = 100_000;
    c.set_peer_params(&p);
    let a = c.open(Dir::Uni).unwrap();
    let b = c.open(Dir::Uni).unwrap();
    c.write(a, &[1; 50_000]).unwrap();
    c.write(b, &[2; 50_000]).unwrap();
    let mut order = Vec::new();
    for _ in 0..6 {
        let (buf, _) = packet(&mut c, 1200);
        for f in parse(&buf) {
            if let Frame::Stream(f) = f {
                order.push(f.id);
            }
        }
    }
    assert_eq!(order, [a, b, a, b, a, b]);
}

#[test]
fn small_writes_share_a_packet() {
    let (mut c, _) = pair();
    let a = c.open(Dir::Uni).unwrap();
    let b = c.open(Dir::Uni).unwrap();
    c.write(a, b"aa").unwrap();
    c.write(b, b"bb").unwrap();
    let (buf, sent) = packet(&mut c, 1200);
    let frames = parse(&buf);
    assert_eq!(frames.len(), 2);
    assert!(!sent.is_empty());
}

#[test]
fn loss_retransmits_via_on_lost() {
    let (mut c, mut s) = pair();
    let id = c.open(Dir::Uni).unwrap();
    c.write(id, b"hello world").unwrap();
    c.finish(id).unwrap();
    let (_, lost) = packet(&mut c, 1200);
    assert!(!c.has_pending());
    c.on_lost(lost);
    assert!(c.has_pending());
    flush(&mut c, &mut s);
    let mut rbuf = [0; 32];
    assert_eq!(
        s.read(id, &mut rbuf).unwrap(),
        Some(ReadResult { len: 11, fin: true })
    );
    assert_eq!(&rbuf[..11], b"hello world");
    assert_eq!(events(&mut c), [StreamEvent::Finished { id }]);
}

#[test]
fn packets_never_exceed_max_len() {
    let (mut c, _) = pair();
    let id = c.open(Dir::Uni).unwrap();
    c.write(id, &[3; 1000]).unwrap();
    c.finish(id).unwrap();
    for max in [1, 2, 3, 5, 8, 13, 100] {
        let (buf, _) = packet(&mut c, max);
        assert!(buf.len() <= max);
    }
}

#[test]
fn sent_frames_inline_for_two_chunks() {
    let mut s = SentFrames::default();
    assert!(s.is_empty());
    for i in 0..2 {
        s.push_chunk(StreamChunk {
            id: StreamId(i),
            offsets: 0..1,
            fin: false,
        });
    }
    assert!(s.spill.capacity() == 0);
    assert!(!s.is_empty());
}

#[test]
fn stop_sending_on_unopened_peer_stream_opens_it_and_resets() {
    let (_, mut s) = pair();
    let id = StreamId::new(Side::Client, Dir::Bi, 1);
    s.on_stop_sending(id, 3).unwrap();
    // Streams 0 and 1 now exist; 1 was reset in reply.
    assert_eq!(s.stream_count(), 2);
    let ev = events(&mut s);
    assert!(ev.contains(&StreamEvent::Opened { dir: Dir::Bi }));
    assert!(ev.contains(&StreamEvent::Stopped { id, error_code: 3 }));
    let (buf, _) = packet(&mut s, 1200);
    assert_eq!(
        parse(&buf),
        [Frame::ResetStream {
            id,
            error_code: 3,
            final_size: 0
        }]
    );
}

#[test]
fn stop_sending_after_all_data_frees_at_once() {
    let (mut c, mut s) = pair();
    let id = c.open(Dir::Uni).unwrap();
    c.write(id, b"abc").unwrap();
    c.finish(id).unwrap();
    flush(&mut c, &mut s);
    s.stop_sending(id, 1).unwrap();
    // The peer already finished: no STOP_SENDING needed, and the stream is gone.
    assert_eq!(s.stream_count(), 0);
    let (buf, _) = packet(&mut s, 1200);
    assert!(!parse(&buf)
        .iter()
        .any(|f| matches!(f, Frame::StopSending { .. })));
}

#[test]
fn frames_for_closed_streams_are_ignored() {
    let (mut c, mut s) = pair();
    let id = c.open(Dir::Uni).unwrap();
    c.write(id, b"abc").unwrap();
    c.finish(id).unwrap();
    flush(&mut c, &mut s);
    s.read(id, &mut [0; 8]).unwrap();
    assert_eq!(s.stream_count(), 0);
    // A late retransmission and a late reset change nothing.
    s.on_stream_frame(&stream(id, 0, b"abc", true)).unwrap();
    s.on_reset_stream(id, 0, 3).unwrap();
    assert_eq!(s.stream_count(), 0);
    assert_eq!(c.on_max_stream_data(id, 10_000), Ok(()));
}

#[test]
fn lost_blocked_frames_resent_only_while_still_blocked() {
    let (mut c, _) = pair();
    let id = c.open(Dir::Bi).unwrap();
    c.write(id, &[0; 1000]).unwrap();
    assert_eq!(c.write(id, b"x"), Err(WriteError::Blocked));
    // Control frames come first; a 10-byte packet holds only STREAM_DATA_BLOCKED.
    let (buf, sent) = packet(&mut c, 10);
    assert_eq!(parse(&buf)[0], Frame::StreamDataBlocked { id, limit: 1000 });
    c.on_lost(sent);
    let (buf, sent) = packet(&mut c, 10);
    assert_eq!(parse(&buf)[0], Frame::StreamDataBlocked { id, limit: 1000 });
    // Credit arrives, then the second copy is lost too: no longer worth sending.
    c.on_max_stream_data(id, 2000).unwrap();
    c.on_lost(sent);
    let (buf, _) = packet(&mut c, 1200);
    assert!(!parse(&buf)
        .iter()
        .any(|f| matches!(f, Frame::StreamDataBlocked { .. })));
}

#[test]
fn lost_max_stream_data_resent_only_while_relevant() {
    let (mut c, mut s) = pair();
    let id = c.open(Dir::Uni).unwrap();
    c.write(id, &[0; 1000]).unwrap();
    flush(&mut c, &mut s);
    s.read(id, &mut [0; 600]).unwrap();
    let msd = |buf: &[u8]| {
        parse(buf).iter().find_map(|f| match f {
            Frame::MaxStreamData { max, .. } => Some(*max),
            _ => None,
        })
    };
    let (buf, lost) = packet(&mut s, 1200);
    let max = msd(&buf).expect("MAX_STREAM_DATA after reading");
    // Still the newest limit: it goes again.
    s.on_lost(lost);
    let (buf, lost) = packet(&mut s, 1200);
    assert_eq!(msd(&buf), Some(max));
    // Once the final size is known the peer needs no more credit.
    c.finish(id).unwrap();
    flush(&mut c, &mut s);
    s.on_lost(lost);
    let (buf, _) = packet(&mut s, 1200);
    assert_eq!(msd(&buf), None);
}

/// One direction of a lossy pipe between two stream layers
#[derive(Debug, Clone)]
struct Net {
    /// Packets in flight: (bytes, sender's record)
    in_flight: Vec<(Vec<u8>, SentFrames)>,
}

/// Take a random in-flight packet and deliver it, or report it lost
fn deliver_one(
    net: &mut Net,
    from: &mut StreamsState,
    to: &mut StreamsState,
    pick: u64,
    lose: bool,
) {
    if net.in_flight.is_empty() {
        return;
    }
    let k = (pick % net.in_flight.len() as u64) as usize;
    let (bytes, sent) = net.in_flight.swap_remove(k);
    if lose {
        from.on_lost(sent);
    } else {
        for f in parse(&bytes) {
            deliver(to, &f).unwrap();
        }
        from.on_acked(sent);
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

    /// Whatever is written arrives intact despite loss, reordering and small packets
    #[test]
    fn pipe_delivers_all_bytes(
        seed in any::<u64>(),
        writes in prop::collection::vec((0usize..3, 1usize..3000), 1..12),
        loss_pct in 0u64..30,
        mtu in 60usize..1400,
    ) {
        let (mut c, mut s) = pair();
        let ids: Vec<StreamId> = (0..3).map(|_| c.open(Dir::Uni).unwrap()).collect();
        let mut expected: Vec<Vec<u8>> = vec![Vec::new(); 3];
        let mut queued: Vec<Vec<u8>> = vec![Vec::new(); 3];
        let mut counter = 0u8;
        for (i, len) in writes {
            for _ in 0..len {
                queued[i].push(counter);
                counter = counter.wrapping_add(1);
            }
        }
        let mut received: Vec<Vec<u8>> = vec![Vec::new(); 3];
        let mut done = [false; 3];
        let mut finished = [false; 3];
        let mut rng = seed;
        let mut next = move || {
            // xorshift: deterministic per case
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            rng
        };
        let mut c2s = Net { in_flight: Vec::new() };
        let mut s2c = Net { in_flight: Vec::new() };
        let mut rbuf = [0u8; 700];
        for _round in 0..20_000 {
            // App writes what it can.
            for i in 0..3 {
                if !queued[i].is_empty() {
                    if let Ok(n) = c.write(ids[i], &queued[i]) {
                        expected[i].extend(queued[i].drain(..n));
                    }
                    if queued[i].is_empty() {
                        c.finish(ids[i]).unwrap();
                    }
                } else if !finished[i] {
                    c.finish(ids[i]).unwrap();
                }
                finished[i] = queued[i].is_empty();
            }
            // Both sides emit a packet.
            // has_pending() false means write_frames has nothing to say.
            let pending = c.has_pending();
            let (p, sent) = packet(&mut c, mtu);
            prop_assert!(pending || p.is_empty());
            if !p.is_empty() { c2s.in_flight.push((p, sent)); }
            let pending = s.has_pending();
            let (p, sent) = packet(&mut s, mtu);
            prop_assert!(pending || p.is_empty());
            if !p.is_empty() { s2c.in_flight.push((p, sent)); }
            // Deliver one packet each way, in a random order, maybe lost.
            let (r1, r2) = (next(), next());
            deliver_one(&mut c2s, &mut c, &mut s, r1, r2 % 100 < loss_pct);
            let (r1, r2) = (next(), next());
            deliver_one(&mut s2c, &mut s, &mut c, r1, r2 % 100 < loss_pct);
            // Server app reads everything available.
            for i in 0..3 {
                while !done[i] && s.contains(ids[i]) {
                    match s.read(ids[i], &mut rbuf) {
                        Ok(Some(r)) => {
                            received[i].extend_from_slice(&rbuf[..r.len]);
                            done[i] = r.fin;
                        }
                        Ok(None) => break,
                        Err(e) => panic!("read error {e:?}"),
                    }
                }
            }
            while c.poll_event().is_some() {}
            while s.poll_event().is_some() {}
            if done.iter().all(|&d| d) && c.stream_count() == 0 {
                break;
            }
        }
        prop_assert!(done.iter().all(|&d| d), "not all streams finished");
        prop_assert_eq!(&received, &expected);
        prop_assert_eq!(c.stream_count(), 0);
        prop_assert_eq!(s.stream_count(), 0);
        prop_assert_eq!(c.unacked_bytes(), 0);
    }
}
