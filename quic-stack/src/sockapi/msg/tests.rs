use super::*;
use crate::sockapi::types::StreamInfo;
use proptest::prelude::*;

fn all_requests() -> Vec<Request<'static>> {
    let a = RawAddr::from_socket_addr(&"127.0.0.1:4433".parse().unwrap());
    let a6 = RawAddr::from_socket_addr(&"[::1]:443".parse().unwrap());
    vec![
        Request::Socket {
            family: 2,
            sock_type: 2,
            protocol: 261,
        },
        Request::Bind(a),
        Request::Listen { backlog: 16 },
        Request::Accept { flags: 0o4000 },
        Request::Connect(a6),
        Request::SendMsg {
            flags: 0x400,
            stream_info: Some(StreamInfo {
                stream_id: -1,
                stream_flags: 0x200,
            }),
            handshake_level: None,
            payload: b"hello",
        },
        Request::SendMsg {
            flags: 0,
            stream_info: None,
            handshake_level: Some(1),
            payload: b"client hello",
        },
        Request::RecvMsg {
            flags: 0x40,
            max_len: 4096,
        },
        Request::SetSockOpt {
            level: 288,
            optname: 9,
            optval: &[1, 2, 3],
        },
        Request::GetSockOpt {
            level: 288,
            optname: 8,
            optlen: 56,
            input: &[1],
        },
        Request::GetSockName,
        Request::GetPeerName,
        Request::Shutdown { how: 2 },
        Request::Close,
        Request::Handshake(HandshakeArgs {
            server: false,
            hostname: Some(b"example.com"),
            alpns: Some(b"h3,sample"),
            pkey: None,
            cert: None,
        }),
    ]
}

fn all_responses() -> Vec<Response<'static>> {
    vec![
        Response::Ok(-5),
        Response::Err(22),
        Response::Addr(RawAddr::from_socket_addr(&"198.18.2.3:9".parse().unwrap())),
        Response::Recv {
            msg_flags: 0x80,
            stream_info: Some(StreamInfo {
                stream_id: 4,
                stream_flags: 0x200,
            }),
            handshake_level: None,
            payload: b"data",
        },
        Response::Recv {
            msg_flags: 0x8080,
            stream_info: None,
            handshake_level: None,
            payload: &[1, 0, 0],
        },
        Response::OptVal(&[9; 56]),
        Response::Accepted(RawAddr::new(&[]).unwrap()),
        Response::Notify(ready::IN | ready::OUT),
    ]
}

#[test]
fn requests_round_trip() {
    for (i, r) in all_requests().into_iter().enumerate() {
        let seq = i as u32 + 7;
        let b = r.encode(seq);
        assert_eq!(Request::decode(&b), Ok((seq, r.clone())), "{r:?}");
        // Zero-copy form: head then payload gives the same bytes.
        let mut head = Vec::new();
        r.encode_head(seq, &mut head);
        if !matches!(r, Request::Handshake(_)) {
            head.extend_from_slice(r.payload());
            assert_eq!(head, b);
        }
    }
}

#[test]
fn responses_round_trip() {
    for r in all_responses() {
        let b = r.encode(3);
        assert_eq!(Response::decode(&b), Ok((3, r.clone())), "{r:?}");
    }
}

#[test]
fn header_layout() {
    let b = Request::Listen { backlog: 1 }.encode(0x01020304);
    assert_eq!(
        &b[..16],
        &[b'Q', b'S', 1, 3, 4, 3, 2, 1, 4, 0, 0, 0, 0, 0, 0, 0]
    );
    assert_eq!(b.len(), 20);
}

#[test]
fn rejects_malformed() {
    let good = Request::Close.encode(1);
    assert_eq!(Request::decode(&good[..10]), Err(DecodeError::Truncated));
    let mut m = good.clone();
    m[0] = b'X';
    assert_eq!(Request::decode(&m), Err(DecodeError::BadMagic));
    let mut m = good.clone();
    m[2] = 2;
    assert_eq!(Request::decode(&m), Err(DecodeError::Version(2)));
    let mut m = good.clone();
    m[3] = 0x7f;
    assert_eq!(Request::decode(&m), Err(DecodeError::UnknownOp(0x7f)));
    let mut m = good.clone();
    m.push(0);
    assert_eq!(Request::decode(&m), Err(DecodeError::Length));
    // A payload on an op without one.
    let mut m = good.clone();
    m[12] = 1;
    m.push(0);
    assert_eq!(Request::decode(&m), Err(DecodeError::Length));
    // Responses are not requests.
    assert!(Request::decode(&Response::Ok(0).encode(0)).is_err());
    // Bad address length.
    let mut m = Request::Bind(RawAddr::new(&[2, 0]).unwrap()).encode(0);
    m[HEADER_LEN] = 29;
    assert_eq!(Request::decode(&m), Err(DecodeError::Field));
}

#[test]
fn short_and_long_bodies_are_tolerated() {
    // An older peer's shorter SendMsg body (no stream_flags) zero-fills.
    let full = Request::SendMsg {
        flags: 1,
        stream_info: Some(StreamInfo {
            stream_id: 8,
            stream_flags: 0x200,
        }),
        handshake_level: None,
        payload: b"x",
    }
    .encode(0);
    let mut short = full[..HEADER_LEN + 16].to_vec();
    short[8] = 16;
    short.push(b'x');
    let (_, r) = Request::decode(&short).unwrap();
    assert_eq!(
        r,
        Request::SendMsg {
            flags: 1,
            stream_info: Some(StreamInfo {
                stream_id: 8,
                stream_flags: 0
            }),
            handshake_level: None,
            payload: b"x"
        }
    );
    // A newer peer's longer Listen body is cut.
    let mut long = Request::Listen { backlog: 4 }.encode(0);
    long[8] = 8;
    long.extend_from_slice(&[9, 9, 9, 9]);
    assert_eq!(
        Request::decode(&long),
        Ok((0, Request::Listen { backlog: 4 }))
    );
}

#[test]
fn handshake_tlv_skips_unknown_and_rejects_overrun() {
    let args = HandshakeArgs {
        server: true,
        pkey: Some(b"KEY"),
        cert: Some(b"CERT"),
        ..HandshakeArgs::default()
    };
    let mut p = args.encode_payload();
    p.extend_from_slice(&[99, 1, 0, 0, 0, b'z']);
    assert_eq!(HandshakeArgs::decode_payload(true, &p), Ok(args));
    p.extend_from_slice(&[1, 200, 0, 0, 0]);
    assert_eq!(
        HandshakeArgs::decode_payload(true, &p),
        Err(DecodeError::Length)
    );
}

#[test]
fn corpus_replay() {
    for r in all_requests() {
        let b = r.encode(1);
        fuzz_sockapi_msg(&b);
        for cut in 0..b.len() {
            fuzz_sockapi_msg(&b[..cut]);
        }
    }
    for r in all_responses() {
        fuzz_sockapi_msg(&r.encode(1));
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn random_bytes_never_panic(data in proptest::collection::vec(any::<u8>(), 0..200)) {
        fuzz_sockapi_msg(&data);
    }

    #[test]
    fn random_bodies_with_valid_header_never_panic(
        op in 0u8..=0x90,
        body in proptest::collection::vec(any::<u8>(), 0..64),
        payload in proptest::collection::vec(any::<u8>(), 0..64),
    ) {
        let mut m = Vec::new();
        Header::write(op, 1, &body, payload.len(), &mut m);
        m.extend_from_slice(&payload);
        fuzz_sockapi_msg(&m);
    }

    #[test]
    fn structs_decode_any_length(data in proptest::collection::vec(any::<u8>(), 0..100)) {
        use crate::sockapi::types::*;
        let tp = TransportParam::decode(&data);
        prop_assert_eq!(TransportParam::decode(&tp.encode()), tp);
        let c = Config::decode(&data);
        prop_assert_eq!(Config::decode(&c.encode()), c);
        let _ = ConnectionClose::decode(&data);
        let _ = CryptoSecret::decode(&data);
        let _ = sockaddr_decode(&data);
    }
}
