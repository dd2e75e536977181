//! Transport parameter tests: a real blob, each validation rule, and round trips

use proptest::prelude::*;

use super::*;
use crate::error::TransportErrorCode;

/// The transport parameters of the RFC 9001 Appendix A.2 client Initial
const RFC9001_CLIENT_PARAMS: &str =
    "0408ffffffffffffffff05048000ffff07048000ffff0801100104800075300901100f088394c8f03e51570806048000ffff";

fn h(s: &str) -> Vec<u8> {
    hex::decode(s).unwrap()
}

#[test]
fn rfc9001_client_blob() {
    let p = TransportParameters::decode(Side::Client, &h(RFC9001_CLIENT_PARAMS)).unwrap();
    assert_eq!(p.initial_max_data, (1 << 62) - 1);
    assert_eq!(p.initial_max_stream_data_bidi_local, 65535);
    assert_eq!(p.initial_max_stream_data_bidi_remote, 65535);
    assert_eq!(p.initial_max_stream_data_uni, 65535);
    assert_eq!(p.initial_max_streams_bidi, 16);
    assert_eq!(p.initial_max_streams_uni, 16);
    assert_eq!(p.max_idle_timeout, 30_000);
    assert_eq!(
        p.initial_source_connection_id.as_deref(),
        Some(&h("8394c8f03e515708")[..])
    );
    // Everything else keeps its default
    assert_eq!(p.max_udp_payload_size, 65527);
    assert_eq!(p.ack_delay_exponent, 3);
    assert_eq!(p.max_ack_delay, 25);
    assert_eq!(p.active_connection_id_limit, 2);
    let mut out = Vec::new();
    p.encode(&mut out);
    assert_eq!(TransportParameters::decode(Side::Client, &out).unwrap(), p);
}

#[test]
fn empty_is_all_defaults() {
    let p = TransportParameters::decode(Side::Server, &[]).unwrap();
    assert_eq!(p, TransportParameters::default());
    let mut out = Vec::new();
    p.encode(&mut out);
    assert!(out.is_empty());
}

fn decode(sender: Side, bytes: &[u8]) -> Result<TransportParameters, TransportParamsError> {
    TransportParameters::decode(sender, bytes)
}

#[test]
fn value_limits() {
    use TransportParamsError::*;
    let cases: &[(&[u8], TransportParamsError)] = &[
        // max_udp_payload_size 1199
        (&[0x03, 0x02, 0x44, 0xaf], InvalidValue(0x03)),
        // ack_delay_exponent 21
        (&[0x0a, 0x01, 21], InvalidValue(0x0a)),
        // max_ack_delay 2^14
        (&[0x0b, 0x04, 0x80, 0x00, 0x40, 0x00], InvalidValue(0x0b)),
        // active_connection_id_limit 1
        (&[0x0e, 0x01, 1], InvalidValue(0x0e)),
        // initial_max_streams_bidi 2^60 + 1
        (&[0x08, 0x08, 0xd0, 0, 0, 0, 0, 0, 0, 1], InvalidValue(0x08)),
        // Integer with trailing bytes
        (&[0x04, 0x02, 0x01, 0x01], Malformed(0x04)),
        // Integer with a truncated varint
        (&[0x04, 0x01, 0x40], Malformed(0x04)),
        // Flag with a value
        (&[0x0c, 0x01, 0x00], Malformed(0x0c)),
        // CID of 21 bytes
        (
            &[
                0x0f, 21, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
            ],
            Malformed(0x0f),
        ),
        // Length beyond the end
        (&[0x04, 0x05, 0x01], Truncated),
        // Duplicate
        (&[0x04, 0x01, 0x01, 0x04, 0x01, 0x02], Duplicate(0x04)),
        // version_information not a multiple of 4
        (&[0x11, 0x03, 0, 0, 1], Malformed(0x11)),
        // version_information with chosen version 0
        (&[0x11, 0x04, 0, 0, 0, 0], Malformed(0x11)),
        // grease_quic_bit with a value
        (&[0x80, 0x00, 0x2a, 0xb2, 0x01, 0x00], Malformed(0x2ab2)),
    ];
    for (bytes, want) in cases {
        assert_eq!(decode(Side::Server, bytes), Err(*want), "{bytes:02x?}");
    }
    // Boundaries that are fine
    assert!(decode(Side::Server, &[0x03, 0x02, 0x44, 0xb0]).is_ok());
    assert!(decode(Side::Server, &[0x0a, 0x01, 20]).is_ok());
    assert!(decode(Side::Server, &[0x0b, 0x02, 0x7f, 0xff]).is_ok());
    assert!(decode(Side::Server, &[0x0e, 0x01, 2]).is_ok());
}

#[test]
fn server_only_params_from_client() {
    let mut p = TransportParameters {
        stateless_reset_token: Some([1; 16]),
        ..Default::default()
    };
    let mut out = Vec::new();
    p.encode(&mut out);
    assert_eq!(
        decode(Side::Client, &out),
        Err(TransportParamsError::ServerOnly(0x02))
    );
    assert_eq!(decode(Side::Server, &out).unwrap(), p);
    p.stateless_reset_token = None;
    for (param, bytes) in [
        (0x00u64, vec![0x00, 0x01, 0xaa]),
        (0x10, vec![0x10, 0x01, 0xaa]),
        (0x0d, {
            let mut b = Vec::new();
            TransportParameters {
                preferred_address: Some(PreferredAddress {
                    address_v4: Some(SocketAddrV4::new(Ipv4Addr::new(10, 0, 0, 1), 443)),
                    address_v6: None,
                    connection_id: ConnectionId::new(&[5; 8]).unwrap(),
                    stateless_reset_token: [6; 16],
                }),
                ..Default::default()
            }
            .encode(&mut b);
            b
        }),
    ] {
        assert_eq!(
            decode(Side::Client, &bytes),
            Err(TransportParamsError::ServerOnly(param))
        );
        assert!(decode(Side::Server, &bytes).is_ok());
    }
}

#[test]
fn unknown_and_grease_skipped() {
    let p = TransportParameters {
        initial_max_data: 1000,
        grease_quic_bit: true,
        ..Default::default()
    };
    let mut out = Vec::new();
    p.encode_with_grease(&mut out, 5, b"junk");
    // 31 * 5 + 27 = 182, a 2-byte varint
    assert!(out.windows(2).any(|w| w == [0x40, 182]));
    assert_eq!(decode(Side::Client, &out).unwrap(), p);
    // Huge N is folded down rather than overflowing the varint
    let mut out = Vec::new();
    p.encode_with_grease(&mut out, u64::MAX, b"");
    assert_eq!(decode(Side::Client, &out).unwrap(), p);
}

#[test]
fn error_maps_to_transport_error() {
    let e = TransportError::from(TransportParamsError::Duplicate(4));
    assert_eq!(e.code, TransportErrorCode::TRANSPORT_PARAMETER_ERROR);
}

fn cid() -> impl Strategy<Value = ConnectionId> {
    proptest::collection::vec(any::<u8>(), 0..=20).prop_map(|b| ConnectionId::new(&b).unwrap())
}

fn params() -> impl Strategy<Value = TransportParameters> {
    const V62: u64 = (1 << 62) - 1;
    let ints = (
        0..=V62,
        1200..=V62,
        proptest::array::uniform5(0..=V62),
        0..=(1u64 << 60),
        0..=(1u64 << 60),
        0..=20u64,
        0..(1u64 << 14),
        2..=V62,
    );
    let preferred = (
        proptest::option::of((1u32.., any::<u16>())),
        proptest::option::of((1u128.., any::<u16>())),
        proptest::collection::vec(any::<u8>(), 1..=20),
        any::<[u8; 16]>(),
    )
        .prop_map(|(v4, v6, cid, token)| PreferredAddress {
            address_v4: v4.map(|(ip, port)| SocketAddrV4::new(ip.into(), port)),
            address_v6: v6.map(|(ip, port)| SocketAddrV6::new(ip.into(), port, 0, 0)),
            connection_id: ConnectionId::new(&cid).unwrap(),
            stateless_reset_token: token,
        });
    let rest = (
        proptest::option::of(cid()),
        proptest::option::of(any::<[u8; 16]>()),
        any::<bool>(),
        proptest::option::of(preferred),
        proptest::option::of(cid()),
        proptest::option::of(cid()),
        proptest::option::of(0..=V62),
        any::<bool>(),
        proptest::option::of((1u32.., proptest::collection::vec(1u32.., 0..5))),
    );
    (ints, rest).prop_map(|(i, r)| TransportParameters {
        max_idle_timeout: i.0,
        max_udp_payload_size: i.1,
        initial_max_data: i.2[0],
        initial_max_stream_data_bidi_local: i.2[1],
        initial_max_stream_data_bidi_remote: i.2[2],
        initial_max_stream_data_uni: i.2[3],
        initial_max_streams_bidi: i.3,
        initial_max_streams_uni: i.4,
        ack_delay_exponent: i.5,
        max_ack_delay: i.6,
        active_connection_id_limit: i.7,
        original_destination_connection_id: r.0,
        stateless_reset_token: r.1,
        disable_active_migration: r.2,
        preferred_address: r.3,
        initial_source_connection_id: r.4,
        retry_source_connection_id: r.5,
        max_datagram_frame_size: r.6,
        grease_quic_bit: r.7,
        version_information: r
            .8
            .map(|(chosen, available)| VersionInformation { chosen, available }),
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn round_trip(p in params()) {
        let mut out = Vec::new();
        p.encode(&mut out);
        prop_assert_eq!(&TransportParameters::decode(Side::Server, &out).unwrap(), &p);
        let mut greased = Vec::new();
        p.encode_with_grease(&mut greased, 3, &out[..out.len().min(8)]);
        prop_assert_eq!(&TransportParameters::decode(Side::Server, &greased).unwrap(), &p);
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..128)) {
        for side in [Side::Client, Side::Server] {
            if let Ok(p) = TransportParameters::decode(side, &bytes) {
                let mut out = Vec::new();
                p.encode(&mut out);
                prop_assert_eq!(TransportParameters::decode(side, &out), Ok(p));
            }
        }
    }
}
