//! Frame tests: fixed byte images, validation errors, and round trips of every kind

use proptest::prelude::*;

use super::*;
use crate::error::TransportErrorCode;
use crate::packet::PacketType;

fn parse_all(bytes: &[u8]) -> Vec<Result<Frame<'_>, FrameError>> {
    Iter::new(bytes).collect()
}

fn encode(frame: &Frame<'_>) -> Vec<u8> {
    let mut buf = Vec::new();
    frame.encode(&mut buf);
    assert_eq!(buf.len(), frame.encoded_len(), "encoded_len of {frame:?}");
    buf
}

/// Encode, check the length, parse back to exactly the same single frame
fn assert_round_trip(frame: &Frame<'_>) {
    let buf = encode(frame);
    let parsed = parse_all(&buf);
    assert_eq!(parsed.len(), 1, "{frame:?} -> {parsed:?}");
    assert_eq!(parsed[0].as_ref(), Ok(frame));
    assert_eq!(parsed[0].as_ref().unwrap().ty(), frame.ty());
}

#[test]
fn padding_folds_and_ping_splits() {
    let payload = [0, 0, 0, 1, 0, 1];
    let frames: Vec<_> = parse_all(&payload)
        .into_iter()
        .map(Result::unwrap)
        .collect();
    assert_eq!(
        frames,
        [
            Frame::Padding(3),
            Frame::Ping,
            Frame::Padding(1),
            Frame::Ping
        ]
    );
    assert_eq!(encode(&Frame::Padding(3)), [0, 0, 0]);
}

#[test]
fn rfc9001_server_initial_payload() {
    // RFC 9001 Appendix A.3: ACK of packet 0 then CRYPTO(ServerHello)
    let payload = hex::decode(
        "02000000000600405a020000560303eefce7f7b37ba1d1632e96677825ddf73988cfc79825df566dc543\
         0b9a045a1200130100002e00330024001d00209d3c940d89690b84d08a60993c144eca684d1081287c83\
         4d5311bcf32bb9da1a002b00020304",
    )
    .unwrap();
    let frames: Vec<_> = parse_all(&payload)
        .into_iter()
        .map(Result::unwrap)
        .collect();
    assert_eq!(frames.len(), 2);
    let Frame::Ack(ack) = &frames[0] else {
        panic!("not an ACK: {:?}", frames[0]);
    };
    assert_eq!(ack.iter().collect::<Vec<_>>(), [0..=0]);
    assert!(!frames[0].is_ack_eliciting());
    let Frame::Crypto { offset: 0, data } = frames[1] else {
        panic!("not CRYPTO at 0: {:?}", frames[1]);
    };
    assert_eq!(data.len(), 90);
    assert!(frames[1].is_ack_eliciting());
    // Re-encoding reproduces the payload byte for byte
    let mut out = Vec::new();
    for f in &frames {
        f.encode(&mut out);
    }
    assert_eq!(out, payload);
}

#[test]
fn ack_ranges_descend_and_validate() {
    // largest 10, delay 0, 2 more ranges, first range 2: 8..=10; gap 1 len 0: 5..=5;
    // gap 0 len 2: 1..=3
    let bytes = [0x02, 10, 0, 2, 2, 1, 0, 0, 2];
    let frames = parse_all(&bytes);
    let Ok(Frame::Ack(ack)) = &frames[0] else {
        panic!("{frames:?}");
    };
    assert_eq!(ack.iter().collect::<Vec<_>>(), [8..=10, 5..=5, 1..=3]);
    // The same ranges through the hot-path encoder, half-open and largest first
    let ranges = [8..11u64, 5..6, 1..4];
    let mut buf = Vec::new();
    encode_ack(&mut buf, ranges.iter().cloned(), 0, None);
    assert_eq!(buf, bytes);
    assert_eq!(
        ack_encoded_len(ranges.iter().cloned(), 0, None),
        bytes.len()
    );

    // A last range one below 0 is FRAME_ENCODING_ERROR
    let below = [0x02, 10, 0, 2, 2, 1, 0, 0, 4];
    assert_eq!(
        parse_all(&below)[0],
        Err(FrameError {
            frame_type: 0x02,
            reason: "ACK range below 0"
        })
    );
    // First range larger than largest
    assert!(parse_all(&[0x02, 3, 0, 0, 4])[0].is_err());
    // Gap reaching exactly -1
    assert!(parse_all(&[0x02, 3, 0, 1, 0, 2, 0])[0].is_err());
    // Huge range count on a short input fails fast
    assert!(parse_all(&[0x02, 3, 0, 0x80, 0xff, 0xff, 0xff, 0])[0].is_err());
}

#[test]
fn ack_ecn_counts() {
    let ecn = EcnCounts {
        ect0: 5,
        ect1: 1,
        ce: 300,
    };
    let mut buf = Vec::new();
    encode_ack(&mut buf, std::iter::once(100..200u64), 7, Some(&ecn));
    assert_eq!(
        buf.len(),
        ack_encoded_len(std::iter::once(100..200u64), 7, Some(&ecn))
    );
    let frames = parse_all(&buf);
    let Ok(Frame::Ack(ack)) = &frames[0] else {
        panic!("{frames:?}");
    };
    assert_eq!(ack.ecn, Some(ecn));
    assert_eq!(ack.delay, 7);
    assert_eq!(ack.delay_micros(3), 56);
    assert_eq!(ack.delay_micros(70), u64::MAX);
    assert_eq!(ack.iter().collect::<Vec<_>>(), [100..=199]);
    assert_eq!(frames[0].as_ref().unwrap().ty(), FrameType::ACK_ECN);
}

#[test]
fn empty_ack_writes_nothing() {
    let mut buf = Vec::new();
    encode_ack(&mut buf, std::iter::empty(), 0, None);
    assert!(buf.is_empty());
    assert_eq!(ack_encoded_len(std::iter::empty(), 0, None), 0);
}

#[test]
fn malformed_frames_error_and_stop() {
    let cases: &[(&[u8], u64)] = &[
        // Unknown type
        (&[0x1f], 0x1f),
        // Non-minimal type encoding
        (&[0x40, 0x01], 0x01),
        // Truncated RESET_STREAM
        (&[0x04, 0x01, 0x02], 0x04),
        // Empty NEW_TOKEN
        (&[0x07, 0x00], 0x07),
        // CRYPTO length beyond packet
        (&[0x06, 0x00, 0x05, 1, 2], 0x06),
        // MAX_STREAMS above 2^60
        (&[0x12, 0xd0, 0, 0, 0, 0, 0, 0, 1], 0x12),
        // STREAMS_BLOCKED above 2^60
        (&[0x17, 0xd0, 0, 0, 0, 0, 0, 0, 1], 0x17),
        // NEW_CONNECTION_ID with a zero-length CID
        (&[0x18, 1, 0, 0], 0x18),
        // NEW_CONNECTION_ID with retire_prior_to > sequence
        (&[0x18, 1, 2, 1, 0xaa], 0x18),
        // NEW_CONNECTION_ID with a 21-byte CID
        (&[0x18, 1, 0, 21], 0x18),
        // STREAM with offset + length beyond 2^62-1
        (
            &[
                0x0e, 0, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 1, 0,
            ],
            0x0e,
        ),
        // PATH_CHALLENGE short
        (&[0x1a, 1, 2, 3], 0x1a),
        // DATAGRAM_LEN short
        (&[0x31, 4, 1], 0x31),
    ];
    for &(bytes, ty) in cases {
        let frames: Vec<_> = parse_all(bytes)
            .into_iter()
            .map(|f| f.map_err(|e| e.frame_type))
            .collect();
        assert_eq!(frames[..], [Err(ty)], "{bytes:02x?} -> {frames:?}",);
    }
    // Nothing is yielded after an error, even when valid frames follow
    assert_eq!(parse_all(&[0x01, 0x1f, 0x01, 0x01]).len(), 2);
}

#[test]
fn frame_error_maps_to_transport_error() {
    let e = TransportError::from(FrameError {
        frame_type: 0x18,
        reason: "bad",
    });
    assert_eq!(e.code, TransportErrorCode::FRAME_ENCODING_ERROR);
    assert_eq!(e.frame_type, Some(0x18));
}

#[test]
fn stream_without_len_takes_the_rest() {
    let mut buf = Vec::new();
    let id = StreamId(4);
    encode_stream_header(&mut buf, id, 1000, 3, true, false);
    assert_eq!(buf.len(), stream_header_len(id, 1000, 3, false));
    buf.extend_from_slice(b"abc");
    let frames = parse_all(&buf);
    assert_eq!(
        frames,
        [Ok(Frame::Stream(Stream {
            id,
            offset: 1000,
            fin: true,
            data: b"abc"
        }))]
    );
    // OFF bit clear when the offset is 0
    let mut buf = Vec::new();
    encode_stream_header(&mut buf, id, 0, 3, false, true);
    assert_eq!(buf, [0x0a, 4, 3]);
}

#[test]
fn stream_max_data_len_fills_exactly() {
    let id = StreamId(8);
    for space in 0..20_000usize {
        for &offset in &[0u64, 1, 70_000] {
            for with_len in [false, true] {
                let n = stream_max_data_len(id, offset, space, with_len);
                let total = stream_header_len(id, offset, n, with_len) + n;
                if n > 0 {
                    assert!(total <= space, "space {space} n {n}");
                    // One more byte would not fit
                    let more = stream_header_len(id, offset, n + 1, with_len) + n + 1;
                    assert!(more > space, "space {space} n {n} not maximal");
                }
            }
        }
    }
    // Near the 2^62 offset cap
    let top = crate::VarInt::MAX.into_inner() - 5;
    assert_eq!(stream_max_data_len(id, top, 1000, true), 5);
}

#[test]
fn crypto_and_datagram_headers() {
    let mut buf = Vec::new();
    encode_crypto_header(&mut buf, 70, 2);
    assert_eq!(buf.len(), crypto_header_len(70, 2));
    buf.extend_from_slice(&[9, 9]);
    assert_eq!(
        parse_all(&buf),
        [Ok(Frame::Crypto {
            offset: 70,
            data: &[9, 9]
        })]
    );
    let n = crypto_max_data_len(70, 100);
    assert_eq!(crypto_header_len(70, n) + n, 100);

    let mut buf = Vec::new();
    encode_datagram_header(&mut buf, 3, false);
    assert_eq!(buf.len(), datagram_header_len(3, false));
    buf.extend_from_slice(b"xyz");
    encode_datagram_header(&mut buf, 0, true);
    assert_eq!(
        parse_all(&buf),
        // Without a length, the first DATAGRAM swallows the rest of the packet
        [Ok(Frame::Datagram {
            data: b"xyz\x31\x00"
        })]
    );
}

#[test]
fn table3_packet_types() {
    use PacketType::*;
    let only_1rtt = [
        FrameType::NEW_TOKEN,
        FrameType::HANDSHAKE_DONE,
        FrameType::PATH_RESPONSE,
        FrameType::RETIRE_CONNECTION_ID,
    ];
    for ty in only_1rtt {
        assert!(ty.allowed_in(OneRtt));
        for p in [Initial, Handshake, ZeroRtt] {
            assert!(!ty.allowed_in(p), "{ty:?} in {p:?}");
        }
    }
    for ty in [FrameType::ACK, FrameType::ACK_ECN, FrameType::CRYPTO] {
        assert!(ty.allowed_in(Initial) && ty.allowed_in(Handshake) && ty.allowed_in(OneRtt));
        assert!(!ty.allowed_in(ZeroRtt));
    }
    for ty in [
        FrameType::PADDING,
        FrameType::PING,
        FrameType::CONNECTION_CLOSE,
    ] {
        for p in [Initial, Handshake, ZeroRtt, OneRtt] {
            assert!(ty.allowed_in(p));
        }
    }
    for ty in [
        FrameType::STREAM,
        FrameType(0x0f),
        FrameType::APPLICATION_CLOSE,
        FrameType::MAX_DATA,
        FrameType::NEW_CONNECTION_ID,
        FrameType::PATH_CHALLENGE,
        FrameType::DATAGRAM,
        FrameType::DATAGRAM_LEN,
    ] {
        assert!(ty.allowed_in(ZeroRtt) && ty.allowed_in(OneRtt));
        assert!(!ty.allowed_in(Initial) && !ty.allowed_in(Handshake));
    }
    assert!(!FrameType(0x1f).allowed_in(OneRtt));
    assert!(!FrameType::PING.allowed_in(Retry));
}

/// Raw material for one frame of each kind; the frame borrows `data`
#[derive(Debug, Clone)]
struct Raw {
    kind: u8,
    a: u64,
    b: u64,
    c: u64,
    flag: bool,
    data: Vec<u8>,
    cid: Vec<u8>,
    token: [u8; 16],
}

const V62: u64 = (1 << 62) - 1;

fn raw() -> impl Strategy<Value = Raw> {
    (
        0u8..20,
        0..=V62,
        0..=V62,
        0..=V62,
        any::<bool>(),
        proptest::collection::vec(any::<u8>(), 0..64),
        proptest::collection::vec(any::<u8>(), 1..=20),
        any::<[u8; 16]>(),
    )
        .prop_map(|(kind, a, b, c, flag, data, cid, token)| Raw {
            kind,
            a,
            b,
            c,
            flag,
            data,
            cid,
            token,
        })
}

fn dir(flag: bool) -> Dir {
    if flag {
        Dir::Uni
    } else {
        Dir::Bi
    }
}

fn build(r: &Raw) -> Frame<'_> {
    let data = &r.data[..];
    let room = V62 - data.len() as u64;
    match r.kind {
        0 => Frame::Padding(data.len() + 1),
        1 => Frame::Ping,
        2 => Frame::ResetStream {
            id: StreamId(r.a),
            error_code: r.b,
            final_size: r.c,
        },
        3 => Frame::StopSending {
            id: StreamId(r.a),
            error_code: r.b,
        },
        4 => Frame::Crypto {
            offset: r.a.min(room),
            data,
        },
        5 => Frame::NewToken {
            token: if data.is_empty() { b"t" } else { data },
        },
        6 => Frame::Stream(Stream {
            id: StreamId(r.a),
            offset: if r.flag { 0 } else { r.b.min(room) },
            fin: r.c & 1 == 1,
            data,
        }),
        7 => Frame::MaxData(r.a),
        8 => Frame::MaxStreamData {
            id: StreamId(r.a),
            max: r.b,
        },
        9 => Frame::MaxStreams {
            dir: dir(r.flag),
            count: r.a >> 2,
        },
        10 => Frame::DataBlocked(r.a),
        11 => Frame::StreamDataBlocked {
            id: StreamId(r.a),
            limit: r.b,
        },
        12 => Frame::StreamsBlocked {
            dir: dir(r.flag),
            limit: r.a >> 2,
        },
        13 => Frame::NewConnectionId(NewConnectionId {
            sequence: r.a.max(r.b),
            retire_prior_to: r.a.min(r.b),
            id: ConnectionId::new(&r.cid).unwrap(),
            reset_token: r.token,
        }),
        14 => Frame::RetireConnectionId { sequence: r.a },
        15 => Frame::PathChallenge(r.a.to_be_bytes()),
        16 => Frame::PathResponse(r.b.to_be_bytes()),
        17 => Frame::Close(Close {
            application: r.flag,
            error_code: r.a,
            frame_type: if r.flag { 0 } else { r.b },
            reason: data,
        }),
        18 => Frame::HandshakeDone,
        _ => Frame::Datagram { data },
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn every_frame_kind_round_trips(r in raw()) {
        assert_round_trip(&build(&r));
    }

    #[test]
    fn frame_sequences_round_trip(raws in proptest::collection::vec(raw(), 1..8)) {
        let frames: Vec<_> = raws.iter().map(build).collect();
        let mut buf = Vec::new();
        for f in &frames {
            f.encode(&mut buf);
        }
        let parsed: Vec<_> = Iter::new(&buf).map(Result::unwrap).collect();
        // Adjacent PADDING frames fold into one on the way back
        let mut expected: Vec<Frame<'_>> = Vec::new();
        for f in frames {
            match (expected.last_mut(), &f) {
                (Some(Frame::Padding(n)), Frame::Padding(m)) => *n += m,
                _ => expected.push(f),
            }
        }
        prop_assert_eq!(parsed, expected);
    }

    #[test]
    fn ack_ranges_round_trip(
        largest in 0u64..(1 << 40),
        steps in proptest::collection::vec((1u64..1000, 1u64..1000), 1..16),
        delay in 0..=V62,
        ecn in proptest::option::of(any::<(u32, u32, u32)>()),
    ) {
        // Build disjoint, non-adjacent half-open ranges going down from `largest`
        let mut ranges = Vec::new();
        let mut end = largest + 1;
        for (len, gap) in steps {
            let len = len.min(end);
            if len == 0 {
                break;
            }
            let start = end - len;
            ranges.push(start..end);
            let Some(next_end) = start.checked_sub(gap) else { break };
            end = next_end;
        }
        prop_assert!(!ranges.is_empty());
        let ecn = ecn.map(|(a, b, c)| EcnCounts { ect0: a.into(), ect1: b.into(), ce: c.into() });
        let mut buf = Vec::new();
        encode_ack(&mut buf, ranges.iter().cloned(), delay, ecn.as_ref());
        prop_assert_eq!(buf.len(), ack_encoded_len(ranges.iter().cloned(), delay, ecn.as_ref()));
        let frames = parse_all(&buf);
        prop_assert_eq!(frames.len(), 1);
        let Ok(Frame::Ack(ack)) = &frames[0] else { panic!("{frames:?}") };
        let got: Vec<_> = ack.iter().collect();
        let want: Vec<_> = ranges.iter().map(|r| r.start..=r.end - 1).collect();
        prop_assert_eq!(got, want);
        prop_assert_eq!(ack.ecn, ecn);
        prop_assert_eq!(ack.delay, delay);
        assert_round_trip(&frames[0].clone().unwrap());
    }

    #[test]
    fn stream_header_helpers_match_frame(
        id in 0..=V62, offset in 0u64..(1 << 40), len in 0usize..20_000, fin: bool, with_len: bool,
    ) {
        let data = vec![7u8; len];
        let mut buf = Vec::new();
        encode_stream_header(&mut buf, StreamId(id), offset, len, fin, with_len);
        prop_assert_eq!(buf.len(), stream_header_len(StreamId(id), offset, len, with_len));
        buf.extend_from_slice(&data);
        let frames = parse_all(&buf);
        prop_assert_eq!(
            &frames[..],
            &[Ok(Frame::Stream(Stream { id: StreamId(id), offset, fin, data: &data }))][..]
        );
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..128)) {
        let mut errors = 0;
        for f in Iter::new(&bytes) {
            match f {
                Ok(f) => {
                    let _ = f.encoded_len();
                    if let Frame::Ack(a) = &f {
                        prop_assert!(a.iter().count() as u64 == a.range_count + 1);
                    }
                }
                Err(_) => errors += 1,
            }
        }
        prop_assert!(errors <= 1);
    }
}
