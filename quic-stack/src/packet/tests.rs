//! Packet header tests against the RFC 9001 / RFC 9369 vectors, plus builder round trips

use proptest::prelude::*;

use super::*;

fn h(s: &str) -> Vec<u8> {
    hex::decode(s).unwrap()
}

/// RFC 9001 A.3 server Initial, protected (v1)
const SERVER_INITIAL_V1: &str = "cf000000010008f067a5502a4262b5004075c0d95a482cd0991cd25b0aac406a5816b6394100f37a1c69797554780bb38cc5a99f5ede4cf73c3ec2493a1839b3dbcba3f6ea46c5b7684df3548e7ddeb9c3bf9c73cc3f3bded74b562bfb19fb84022f8ef4cdd93795d77d06edbb7aaf2f58891850abbdca3d20398c276456cbc42158407dd074ee";
/// RFC 9369 A.3 server Initial, protected (v2)
const SERVER_INITIAL_V2: &str = "dc6b3343cf0008f067a5502a4262b5004075d92faaf16f05d8a4398c47089698baeea26b91eb761d9b89237bbf87263017915358230035f7fd3945d88965cf17f9af6e16886c61bfc703106fbaf3cb4cfa52382dd16a393e42757507698075b2c984c707f0a0812d8cd5a6881eaf21ceda98f4bd23f6fe1a3e2c43edd9ce7ca84bed8521e2e140";

#[test]
fn long_type_bits_per_version() {
    let all = [
        LongType::Initial,
        LongType::ZeroRtt,
        LongType::Handshake,
        LongType::Retry,
    ];
    let v1 = all.map(|t| t.to_bits(VERSION_1));
    let v2 = all.map(|t| t.to_bits(VERSION_2));
    assert_eq!(v1, [0b00, 0b01, 0b10, 0b11]);
    assert_eq!(v2, [0b01, 0b10, 0b11, 0b00]);
    for t in all {
        assert_eq!(LongType::from_bits(VERSION_1, t.to_bits(VERSION_1)), t);
        assert_eq!(LongType::from_bits(VERSION_2, t.to_bits(VERSION_2)), t);
    }
}

#[test]
fn server_initial_vectors() {
    for (hex, version) in [
        (SERVER_INITIAL_V1, VERSION_1),
        (SERVER_INITIAL_V2, VERSION_2),
    ] {
        let d = h(hex);
        let hdr = parse_header(&d, 8).unwrap();
        assert_eq!(hdr.kind, HeaderKind::Long(LongType::Initial));
        assert_eq!(hdr.version, Some(version));
        assert!(hdr.dcid.is_empty());
        assert_eq!(&hdr.scid[..], &h("f067a5502a4262b5")[..]);
        assert!(hdr.token.is_empty());
        // 1 + 4 + 1 + 0 + 1 + 8 + token len 1 + Length 2 = 18; Length 0x75 = 117
        assert_eq!(hdr.pn_offset, 18);
        assert_eq!(hdr.packet_len, 18 + 117);
        assert_eq!(hdr.packet_len, d.len());
        assert_eq!(hdr.packet_type(), Some(PacketType::Initial));
    }
}

#[test]
fn client_initial_header_vectors() {
    // RFC 9001 A.2 / RFC 9369 A.2 unprotected headers; the packets are 1200 bytes
    for (hex, version) in [
        ("c300000001088394c8f03e5157080000449e00000002", VERSION_1),
        ("d36b3343cf088394c8f03e5157080000449e00000002", VERSION_2),
    ] {
        let mut d = h(hex);
        d.resize(1200, 0);
        let hdr = parse_header(&d, 0).unwrap();
        assert_eq!(hdr.kind, HeaderKind::Long(LongType::Initial));
        assert_eq!(&hdr.dcid[..], &h("8394c8f03e515708")[..]);
        assert_eq!(hdr.pn_offset, 18);
        assert_eq!(hdr.packet_len, 1200);
        assert_eq!(peek_dcid(&d, 0), Some(&h("8394c8f03e515708")[..]));

        // The builder reproduces the header; Length covers 4 PN + 1162 payload + 16 tag
        let mut buf = Vec::new();
        let offsets = write_long_header(
            &mut buf,
            LongType::Initial,
            version,
            &h("8394c8f03e515708"),
            &[],
            None,
            2,
            4,
            false,
        );
        assert_eq!(offsets.pn_offset, 18);
        buf.resize(offsets.pn_offset + 4 + 1162, 0);
        finish_long_header(&mut buf, &offsets, 16);
        assert_eq!(&buf[..22], &h(hex)[..]);
    }
}

#[test]
fn retry_vectors() {
    for (hex, version) in [
        (
            "ff000000010008f067a5502a4262b5746f6b656e04a265ba2eff4d829058fb3f0f2496ba",
            VERSION_1,
        ),
        (
            "cf6b3343cf0008f067a5502a4262b5746f6b656ec8646ce8bfe33952d955543665dcc7b6",
            VERSION_2,
        ),
    ] {
        let d = h(hex);
        let hdr = parse_header(&d, 8).unwrap();
        assert_eq!(hdr.kind, HeaderKind::Long(LongType::Retry));
        assert_eq!(&d[hdr.token.clone()], b"token");
        assert_eq!(hdr.retry_tag(&d).unwrap(), &d[d.len() - 16..]);
        assert_eq!(hdr.packet_len, d.len());

        let mut buf = Vec::new();
        write_retry(&mut buf, version, &[], &h("f067a5502a4262b5"), b"token");
        // The low four bits of a Retry's first byte are unused: the vector sets them
        assert_eq!(buf[0], d[0] & 0xf0);
        assert_eq!(&buf[1..], &d[1..d.len() - 16]);
    }
    // Too short for the tag
    let d = h("ff000000010008f067a5502a4262b5746f6b656e04a2");
    assert_eq!(parse_header(&d, 8), Err(PacketDecodeError::RetryTooShort));
}

#[test]
fn short_header_vector() {
    // RFC 9001 A.5: empty DCID, the minimum 21-byte packet
    let d = h("4cfe4189655e5cd55c41f69080575d7999c25a5bfb");
    let hdr = parse_header(&d, 0).unwrap();
    assert_eq!(hdr.kind, HeaderKind::Short);
    assert_eq!(hdr.version, None);
    assert_eq!(hdr.pn_offset, 1);
    assert_eq!(hdr.packet_len, 21);
    assert_eq!(hdr.packet_type(), Some(PacketType::OneRtt));
    // One byte less cannot be sampled
    assert_eq!(parse_header(&d[..20], 0), Err(PacketDecodeError::TooShort));
    assert!(is_stateless_reset_candidate(&d));
    assert_eq!(stateless_reset_token(&d).unwrap()[..], d[5..]);
    assert_eq!(stateless_reset_token(&d[..20]), None);
    // The builder reproduces the unprotected header 4200bff4
    let mut buf = Vec::new();
    let pn_offset = write_short_header(&mut buf, false, false, &[], 654_360_564, 3, false);
    assert_eq!(pn_offset, 1);
    assert_eq!(buf, h("4200bff4"));
}

#[test]
fn short_header_bits_and_dcid() {
    let dcid = [1, 2, 3, 4, 5, 6, 7, 8];
    let mut buf = Vec::new();
    let pn_offset = write_short_header(&mut buf, true, true, &dcid, 7, 1, true);
    assert_eq!(buf[0], SPIN_BIT | KEY_PHASE_BIT);
    assert_eq!(pn_offset, 9);
    buf.resize(40, 0xee);
    let hdr = parse_header(&buf, 8).unwrap();
    assert_eq!(&hdr.dcid[..], &dcid);
    assert!(!hdr.fixed_bit());
    assert_eq!(short_header_dcid(&buf, 8), Some(&dcid[..]));
    assert_eq!(peek_dcid(&buf, 8), Some(&dcid[..]));
    assert_eq!(short_header_dcid(&buf[..5], 8), None);
}

#[test]
fn coalesced_packets_split() {
    let mut d = Vec::new();
    let a = write_long_header(
        &mut d,
        LongType::Initial,
        VERSION_2,
        b"dcid",
        b"scid",
        Some(b"tok"),
        0,
        1,
        false,
    );
    d.resize(d.len() + 30, 0);
    finish_long_header(&mut d, &a, 16);
    d.resize(d.len() + 16, 0xaa);
    let first_len = d.len();
    let b = write_long_header(
        &mut d,
        LongType::Handshake,
        VERSION_2,
        b"dcid",
        b"scid",
        None,
        300,
        2,
        false,
    );
    assert_eq!(b.header_start, first_len);
    d.resize(d.len() + 20, 0);
    finish_long_header(&mut d, &b, 16);
    d.resize(d.len() + 16, 0xbb);
    let second_end = d.len();
    write_short_header(&mut d, false, false, b"dcid", 9, 2, false);
    d.resize(d.len() + 30, 0);

    let first = parse_header(&d, 4).unwrap();
    assert_eq!(first.kind, HeaderKind::Long(LongType::Initial));
    assert_eq!(&d[first.token.clone()], b"tok");
    assert_eq!(first.pn_offset, a.pn_offset);
    assert_eq!(first.packet_len, first_len);
    let rest = &d[first.packet_len..];
    let second = parse_header(rest, 4).unwrap();
    assert_eq!(second.kind, HeaderKind::Long(LongType::Handshake));
    assert_eq!(second.pn_offset, b.pn_offset - first_len);
    assert_eq!(first_len + second.packet_len, second_end);
    let third = parse_header(&d[second_end..], 4).unwrap();
    assert_eq!(third.kind, HeaderKind::Short);
    assert_eq!(second_end + third.packet_len, d.len());
}

#[test]
fn long_header_errors() {
    let mut d = Vec::new();
    let o = write_long_header(
        &mut d,
        LongType::Handshake,
        VERSION_1,
        b"d",
        b"s",
        None,
        0,
        4,
        false,
    );
    d.resize(d.len() + 30, 0);
    finish_long_header(&mut d, &o, 16);
    // Length says 16 more bytes than are there
    assert_eq!(
        parse_header(&d, 0),
        Err(PacketDecodeError::LengthBeyondDatagram)
    );
    d.resize(d.len() + 16, 0);
    assert!(parse_header(&d, 0).is_ok());
    // Length too small to sample for header protection
    let mut small = Vec::new();
    let o = write_long_header(
        &mut small,
        LongType::ZeroRtt,
        VERSION_1,
        b"d",
        b"s",
        None,
        0,
        1,
        false,
    );
    small.resize(small.len() + 10, 0);
    finish_long_header(&mut small, &o, 0);
    assert_eq!(parse_header(&small, 0), Err(PacketDecodeError::TooShort));
    // 21-byte DCID in v1
    let mut d = vec![0xc0, 0, 0, 0, 1, 21];
    d.resize(80, 0);
    assert_eq!(parse_header(&d, 0), Err(PacketDecodeError::CidTooLong));
    // Truncated everywhere
    for n in 0..6 {
        assert_eq!(
            parse_header(&d[..n], 0),
            Err(PacketDecodeError::UnexpectedEnd)
        );
    }
}

#[test]
fn unsupported_version_keeps_invariants() {
    // RFC 8999 allows 255-byte CIDs for other versions
    let mut d = vec![0xc0, 0x1a, 0x2a, 0x3a, 0x4a, 30];
    d.extend_from_slice(&[7; 30]);
    d.push(2);
    d.extend_from_slice(&[9, 9]);
    d.extend_from_slice(&[0; 100]);
    let hdr = parse_header(&d, 8).unwrap();
    assert_eq!(hdr.kind, HeaderKind::UnsupportedVersion);
    assert_eq!(hdr.version, Some(0x1a2a_3a4a));
    assert_eq!(&d[hdr.dcid_range.clone()], &[7; 30]);
    assert!(hdr.dcid.is_empty());
    assert_eq!(&hdr.scid[..], &[9, 9]);
    assert_eq!(hdr.packet_len, d.len());
    assert!(!is_supported_version(0x1a2a_3a4a));
}

#[test]
fn version_negotiation_round_trip() {
    let mut d = Vec::new();
    write_version_negotiation(
        &mut d,
        0xff,
        b"abc",
        b"de",
        &[VERSION_2, VERSION_1, 0x0a0a_0a0a],
    );
    assert_eq!(d[0], 0xff);
    let hdr = parse_header(&d, 0).unwrap();
    assert_eq!(hdr.kind, HeaderKind::VersionNegotiation);
    assert_eq!(hdr.version, Some(0));
    assert_eq!(&hdr.dcid[..], b"abc");
    assert_eq!(&hdr.scid[..], b"de");
    assert_eq!(hdr.packet_type(), None);
    let versions: Vec<_> = hdr.supported_versions(&d).collect();
    assert_eq!(versions, [VERSION_2, VERSION_1, 0x0a0a_0a0a]);
    // Empty or ragged lists are malformed
    let mut empty = Vec::new();
    write_version_negotiation(&mut empty, 0, b"abc", b"de", &[]);
    assert_eq!(
        parse_header(&empty, 0),
        Err(PacketDecodeError::BadVersionList)
    );
    d.pop();
    assert_eq!(parse_header(&d, 0), Err(PacketDecodeError::BadVersionList));
}

#[test]
fn long_header_reserved_and_fixed_bits() {
    let mut d = Vec::new();
    write_long_header(
        &mut d,
        LongType::Handshake,
        VERSION_1,
        b"",
        b"",
        None,
        0,
        3,
        true,
    );
    // Long form, fixed bit greased off, type 0b10, reserved 0, pn_len - 1 = 2
    assert_eq!(d[0], 0x80 | 0b10 << 4 | 2);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn long_header_round_trip(
        ty in prop_oneof![Just(LongType::Initial), Just(LongType::ZeroRtt), Just(LongType::Handshake)],
        v2: bool,
        dcid in proptest::collection::vec(any::<u8>(), 0..=20),
        scid in proptest::collection::vec(any::<u8>(), 0..=20),
        token in proptest::collection::vec(any::<u8>(), 0..100),
        pn in 0u64..(1 << 32),
        pn_len in 1usize..=4,
        payload in 16usize..1200,
    ) {
        let version = if v2 { VERSION_2 } else { VERSION_1 };
        let mut d = Vec::new();
        let o = write_long_header(&mut d, ty, version, &dcid, &scid, Some(&token), pn, pn_len, false);
        d.resize(d.len() + payload, 0);
        finish_long_header(&mut d, &o, 16);
        d.resize(d.len() + 16, 0);
        let hdr = parse_header(&d, 0).unwrap();
        prop_assert_eq!(hdr.kind, HeaderKind::Long(ty));
        prop_assert_eq!(hdr.version, Some(version));
        prop_assert_eq!(&hdr.dcid[..], &dcid[..]);
        prop_assert_eq!(&hdr.scid[..], &scid[..]);
        prop_assert_eq!(hdr.pn_offset, o.pn_offset);
        prop_assert_eq!(hdr.packet_len, d.len());
        if ty == LongType::Initial {
            prop_assert_eq!(&d[hdr.token.clone()], &token[..]);
        } else {
            prop_assert!(hdr.token.is_empty());
        }
        // The packet number bytes hold the truncated number
        let mut raw = 0u64;
        for &b in &d[o.pn_offset..o.pn_offset + pn_len] {
            raw = raw << 8 | u64::from(b);
        }
        prop_assert_eq!(raw, pn & ((1u64 << (8 * pn_len)) - 1));
        prop_assert_eq!(usize::from(d[0] & 0x03) + 1, pn_len);
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..256), cid_len in 0usize..24) {
        if let Ok(hdr) = parse_header(&bytes, cid_len) {
            prop_assert!(hdr.packet_len <= bytes.len());
            prop_assert!(hdr.pn_offset <= hdr.packet_len);
            prop_assert!(hdr.token.end <= bytes.len());
        }
        let _ = peek_dcid(&bytes, cid_len);
        let _ = stateless_reset_token(&bytes);
    }
}

#[test]
fn unprotected_first_byte() {
    // RFC 9001 A.2: unprotected Initial first byte 0xc3 has a 4-byte packet number 2
    let header = h("c300000001088394c8f03e5157080000449e00000002");
    let b = UnprotectedFirstByte(header[0]);
    assert_eq!(b.pn_len(), 4);
    assert!(b.reserved_bits_valid());
    assert_eq!(read_truncated_pn(&header, 18, 4), Some(2));
    assert_eq!(read_truncated_pn(&header, 19, 4), None);
    assert!(!UnprotectedFirstByte(0xc3 | 0x08).reserved_bits_valid());
    // Short header: 0x42 | key phase | spin
    let s = UnprotectedFirstByte(0x42 | KEY_PHASE_BIT | SPIN_BIT);
    assert!(s.key_phase() && s.spin() && s.reserved_bits_valid());
    assert_eq!(s.pn_len(), 3);
    assert!(!UnprotectedFirstByte(0x40 | 0x10).reserved_bits_valid());
}
