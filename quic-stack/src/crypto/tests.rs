//! Test vectors of RFC 9001 Appendix A (QUIC v1) and RFC 9369 Appendix A (QUIC v2), reproduced
//! byte for byte with our own keys, plus robustness checks
//!
//! Headers are built by hand here so these tests do not depend on the packet module.

use super::keys::{initial_secrets, KeyMaterial};
use super::*;

/// Decode hex, ignoring whitespace (the RFCs print packets in 16-byte groups)
fn h(s: &str) -> Vec<u8> {
    let clean: String = s.chars().filter(|c| !c.is_whitespace()).collect();
    hex::decode(clean).expect("valid hex in test vector")
}

const DCID: &str = "8394c8f03e515708";

/// RFC 9001 A.2 / RFC 9369 A.2: the client's CRYPTO frame (ClientHello)
const CLIENT_CRYPTO: &str = "
    060040f1010000ed0303ebf8fa56f12939b9584a3896472ec40bb863cfd3e868
    04fe3a47f06a2b69484c00000413011302010000c000000010000e00000b6578
    616d706c652e636f6dff01000100000a00080006001d00170018001000070005
    04616c706e000500050100000000003300260024001d00209370b2c9caa47fba
    baf4559fedba753de171fa71f50f1ce15d43e994ec74d748002b000302030400
    0d0010000e0403050306030203080408050806002d00020101001c0002400100
    3900320408ffffffffffffffff05048000ffff07048000ffff08011001048000
    75300901100f088394c8f03e51570806048000ffff";

/// RFC 9001 A.3 / RFC 9369 A.3: the server's ACK + CRYPTO (ServerHello) payload
const SERVER_PAYLOAD: &str = "
    02000000000600405a020000560303eefce7f7b37ba1d1632e96677825ddf739
    88cfc79825df566dc5430b9a045a1200130100002e00330024001d00209d3c94
    0d89690b84d08a60993c144eca684d1081287c834d5311bcf32bb9da1a002b00
    020304";

/// RFC 9001 A.5 / RFC 9369 A.5: the server's 1-RTT traffic secret
const CHACHA_SECRET: &str = "9ac312a7f877468ebe69422748ad00a15443f18203a07d6060f688f30f21632b";

/// Both Initial packets' headers put the packet number at byte 18:
/// first(1) version(4) dcid_len(1) dcid(8|0) scid_len(1) scid(0|8) token_len(1) length(2)
const INITIAL_PN_OFFSET: usize = 18;

struct InitialVector {
    version: u32,
    initial_secret: &'static str,
    client_secret: &'static str,
    client_key: &'static str,
    client_iv: &'static str,
    client_hp: &'static str,
    server_secret: &'static str,
    server_key: &'static str,
    server_iv: &'static str,
    server_hp: &'static str,
}

const V1_KEYS: InitialVector = InitialVector {
    version: VERSION_1,
    initial_secret: "7db5df06e7a69e432496adedb00851923595221596ae2ae9fb8115c1e9ed0a44",
    client_secret: "c00cf151ca5be075ed0ebfb5c80323c42d6b7db67881289af4008f1f6c357aea",
    client_key: "1f369613dd76d5467730efcbe3b1a22d",
    client_iv: "fa044b2f42a3fd3b46fb255c",
    client_hp: "9f50449e04a0e810283a1e9933adedd2",
    server_secret: "3c199828fd139efd216c155ad844cc81fb82fa8d7446fa7d78be803acdda951b",
    server_key: "cf3a5331653c364c88f0f379b6067e37",
    server_iv: "0ac1493ca1905853b0bba03e",
    server_hp: "c206b8d9b9f0f37644430b490eeaa314",
};

const V2_KEYS: InitialVector = InitialVector {
    version: VERSION_2,
    initial_secret: "2062e8b3cd8d52092614b8071d0aa1fb7c2e3ac193f78b280e72d8f5751f6aba",
    client_secret: "14ec9d6eb9fd7af83bf5a668bc17a7e283766aade7ecd0891f70f9ff7f4bf47b",
    client_key: "8b1a0bc121284290a29e0971b5cd045d",
    client_iv: "91f73e2351d8fa91660e909f",
    client_hp: "45b95e15235d6f45a6b19cbcb0294ba9",
    server_secret: "0263db1782731bf4588e7e4d93b7463907cb8cd8200b5da55a8bd488eafc37c1",
    server_key: "82db637861d55e1d011f19ea71d5d2a7",
    server_iv: "dd13c276499c0249d3310652",
    server_hp: "edf6d05c83121201b436e16877593c3a",
};

fn check_initial_keys(v: &InitialVector) {
    let (client, server) = initial_secrets(v.version, &h(DCID)).unwrap();
    assert_eq!(hex::encode(client), v.client_secret);
    assert_eq!(hex::encode(server), v.server_secret);

    let c = KeyMaterial::derive(v.version, Suite::Aes128Gcm, &client).unwrap();
    assert_eq!(hex::encode(c.key()), v.client_key);
    assert_eq!(hex::encode(c.iv), v.client_iv);
    assert_eq!(hex::encode(c.hp()), v.client_hp);
    let s = KeyMaterial::derive(v.version, Suite::Aes128Gcm, &server).unwrap();
    assert_eq!(hex::encode(s.key()), v.server_key);
    assert_eq!(hex::encode(s.iv), v.server_iv);
    assert_eq!(hex::encode(s.hp()), v.server_hp);
}

#[test]
fn rfc9001_a1_keys() {
    check_initial_keys(&V1_KEYS);
}

#[test]
fn rfc9369_a1_keys() {
    check_initial_keys(&V2_KEYS);
}

/// ring does not reveal the HKDF-Extract output, so check the RFC's initial_secret by expanding
/// it as a PRK into the RFC's server secret
#[test]
fn initial_secret_values() {
    for v in [&V1_KEYS, &V2_KEYS] {
        let prk = ring::hkdf::Prk::new_less_safe(ring::hkdf::HKDF_SHA256, &h(v.initial_secret));
        let mut server = [0u8; 32];
        hkdf_label::expand_label(&prk, b"server in", b"", &mut server).unwrap();
        assert_eq!(hex::encode(server), v.server_secret);
    }
}

/// Protect `header || payload` with `keys`' local side and compare with `expected`, then
/// unprotect `expected` with `peer`'s remote side and compare with the inputs
fn check_packet(
    keys: &Keys,
    peer: &Keys,
    header: &[u8],
    payload: &[u8],
    pn: u64,
    pn_offset: usize,
    expected: &[u8],
) {
    let tag_len = keys.packet.local.tag_len();
    let mut packet = Vec::with_capacity(header.len() + payload.len() + tag_len);
    packet.extend_from_slice(header);
    packet.extend_from_slice(payload);
    packet.resize(header.len() + payload.len() + tag_len, 0);
    let (hdr, body) = packet.split_at_mut(header.len());
    keys.packet.local.seal(pn, hdr, body);
    keys.header.local.encrypt(pn_offset, &mut packet).unwrap();
    assert_eq!(hex::encode(&packet), hex::encode(expected));

    // The reverse, as the receiver does it
    let mut received = expected.to_vec();
    peer.header
        .remote
        .decrypt(pn_offset, &mut received)
        .unwrap();
    let pn_len = usize::from(received[0] & 0x03) + 1;
    let header_len = pn_offset + pn_len;
    assert_eq!(header_len, header.len());
    assert_eq!(hex::encode(&received[..header_len]), hex::encode(header));
    let (hdr, body) = received.split_at_mut(header_len);
    let len = peer.packet.remote.open(pn, hdr, body).unwrap();
    assert_eq!(len, payload.len());
    assert_eq!(&body[..len], payload);
}

fn client_initial_payload() -> Vec<u8> {
    let mut payload = h(CLIENT_CRYPTO);
    // PADDING frames up to a 1162-byte payload
    payload.resize(1162, 0);
    payload
}

fn check_client_initial(version: u32, header: &str, expected: &str) {
    let client = initial_keys(version, &h(DCID), Side::Client).unwrap();
    let server = initial_keys(version, &h(DCID), Side::Server).unwrap();
    let expected = h(expected);
    assert_eq!(expected.len(), 1200);
    check_packet(
        &client,
        &server,
        &h(header),
        &client_initial_payload(),
        2,
        INITIAL_PN_OFFSET,
        &expected,
    );
}

fn check_server_initial(version: u32, header: &str, expected: &str) {
    let client = initial_keys(version, &h(DCID), Side::Client).unwrap();
    let server = initial_keys(version, &h(DCID), Side::Server).unwrap();
    let expected = h(expected);
    assert_eq!(expected.len(), 135);
    check_packet(
        &server,
        &client,
        &h(header),
        &h(SERVER_PAYLOAD),
        1,
        INITIAL_PN_OFFSET,
        &expected,
    );
}

#[test]
fn rfc9001_a2_client_initial() {
    check_client_initial(
        VERSION_1,
        // Initial, 4-byte PN; DCID 8394c8f03e515708; no SCID; no token; Length 1182; PN 2
        "c300000001088394c8f03e5157080000449e00000002",
        include_str!("testdata/rfc9001_client_initial.hex"),
    );
}

#[test]
fn rfc9369_a2_client_initial() {
    check_client_initial(
        VERSION_2,
        // v2 Initial is type 0b01: first byte 0xd3
        "d36b3343cf088394c8f03e5157080000449e00000002",
        include_str!("testdata/rfc9369_client_initial.hex"),
    );
}

#[test]
fn rfc9001_a3_server_initial() {
    check_server_initial(
        VERSION_1,
        // Initial, 2-byte PN; empty DCID; SCID f067a5502a4262b5; no token; Length 117; PN 1
        "c1000000010008f067a5502a4262b50040750001",
        "cf000000010008f067a5502a4262b5004075c0d95a482cd0991cd25b0aac406a
         5816b6394100f37a1c69797554780bb38cc5a99f5ede4cf73c3ec2493a1839b3
         dbcba3f6ea46c5b7684df3548e7ddeb9c3bf9c73cc3f3bded74b562bfb19fb84
         022f8ef4cdd93795d77d06edbb7aaf2f58891850abbdca3d20398c276456cbc4
         2158407dd074ee",
    );
}

#[test]
fn rfc9369_a3_server_initial() {
    check_server_initial(
        VERSION_2,
        "d16b3343cf0008f067a5502a4262b50040750001",
        "dc6b3343cf0008f067a5502a4262b5004075d92faaf16f05d8a4398c47089698
         baeea26b91eb761d9b89237bbf87263017915358230035f7fd3945d88965cf17
         f9af6e16886c61bfc703106fbaf3cb4cfa52382dd16a393e42757507698075b2
         c984c707f0a0812d8cd5a6881eaf21ceda98f4bd23f6fe1a3e2c43edd9ce7ca8
         4bed8521e2e140",
    );
}

fn check_retry(version: u32, packet: &str, other_version: u32) {
    let packet = h(packet);
    let odcid = h(DCID);
    let (without_tag, tag) = packet.split_at(packet.len() - RETRY_TAG_LEN);
    assert_eq!(retry_tag(version, &odcid, without_tag).as_slice(), tag);
    assert!(is_valid_retry(version, &odcid, &packet));
    // Any flipped bit, another ODCID or the other version's key must fail
    for i in 0..packet.len() {
        let mut bad = packet.clone();
        bad[i] ^= 0x01;
        assert!(!is_valid_retry(version, &odcid, &bad), "byte {i}");
    }
    assert!(!is_valid_retry(version, &odcid[1..], &packet));
    assert!(!is_valid_retry(other_version, &odcid, &packet));
    assert!(!is_valid_retry(0xff00_001d, &odcid, &packet));
    assert!(!is_valid_retry(version, &odcid, &packet[..15]));
    assert!(!is_valid_retry(version, &[0; 256], &packet));
}

#[test]
fn rfc9001_a4_retry() {
    // Retry (type 0b11), empty DCID, SCID f067a5502a4262b5, token "token", then the tag
    check_retry(
        VERSION_1,
        "ff000000010008f067a5502a4262b5746f6b656e04a265ba2eff4d829058fb3f0f2496ba",
        VERSION_2,
    );
}

#[test]
fn rfc9369_a4_retry() {
    // v2 Retry is type 0b00: first byte 0xcf
    check_retry(
        VERSION_2,
        "cf6b3343cf0008f067a5502a4262b5746f6b656ec8646ce8bfe33952d955543665dcc7b6",
        VERSION_1,
    );
}

#[test]
fn retry_tag_for_long_packets() {
    // Beyond the stack buffer the heap path must agree with itself and validate
    let odcid = h(DCID);
    let mut packet = vec![0xab; 3000];
    let tag = retry_tag(VERSION_1, &odcid, &packet);
    packet.extend_from_slice(&tag);
    assert!(is_valid_retry(VERSION_1, &odcid, &packet));
}

struct ChaChaVector {
    version: u32,
    key: &'static str,
    iv: &'static str,
    hp: &'static str,
    ku: &'static str,
    packet: &'static str,
}

fn check_chacha(v: &ChaChaVector) {
    let secret = h(CHACHA_SECRET);
    let material = KeyMaterial::derive(v.version, Suite::ChaCha20Poly1305, &secret).unwrap();
    assert_eq!(hex::encode(material.key()), v.key);
    assert_eq!(hex::encode(material.iv), v.iv);
    assert_eq!(hex::encode(material.hp()), v.hp);
    assert_eq!(
        hex::encode(next_secret(v.version, Suite::ChaCha20Poly1305, &secret)),
        v.ku
    );

    let (packet_key, header_key) = keys_from_secret(v.version, Suite::ChaCha20Poly1305, &secret);
    assert_eq!(header_key.sample_size(), 16);
    assert_eq!(packet_key.integrity_limit(), 1 << 36);
    // Short header, 3-byte PN, empty DCID; PN 654360564 encoded as 0x00bff4
    let header = h("4200bff4");
    let pn = 654_360_564;
    let mut packet = header.clone();
    packet.push(0x01); // PING
    packet.resize(packet.len() + 16, 0);
    let (hdr, body) = packet.split_at_mut(4);
    packet_key.seal(pn, hdr, body);
    header_key.encrypt(1, &mut packet).unwrap();
    assert_eq!(hex::encode(&packet), v.packet);

    let mut received = h(v.packet);
    header_key.decrypt(1, &mut received).unwrap();
    assert_eq!(received[..4], header[..]);
    let (hdr, body) = received.split_at_mut(4);
    assert_eq!(packet_key.open(pn, hdr, body), Ok(1));
    assert_eq!(body[0], 0x01);
}

#[test]
fn rfc9001_a5_chacha20_short_header() {
    check_chacha(&ChaChaVector {
        version: VERSION_1,
        key: "c6d98ff3441c3fe1b2182094f69caa2ed4b716b65488960a7a984979fb23e1c8",
        iv: "e0459b3474bdd0e44a41c144",
        hp: "25a282b9e82f06f21f488917a4fc8f1b73573685608597d0efcb076b0ab7a7a4",
        ku: "1223504755036d556342ee9361d253421a826c9ecdf3c7148684b36b714881f9",
        packet: "4cfe4189655e5cd55c41f69080575d7999c25a5bfb",
    });
}

#[test]
fn rfc9369_a5_chacha20_short_header() {
    check_chacha(&ChaChaVector {
        version: VERSION_2,
        key: "3bfcddd72bcf02541d7fa0dd1f5f9eeea817e09a6963a0e6c7df0f9a1bab90f2",
        iv: "a6b5bc6ab7dafce30ffff5dd",
        hp: "d659760d2ba434a226fd37b35c69e2da8211d10c4f12538787d65645d5d1b8e2",
        ku: "c69374c49e3d2a9466fa689e49d476db5d0dfbc87d32ceeaa6343fd0ae4c7d88",
        packet: "5558b1c60ae7b6b932bc27d786f4bc2bb20f2162ba",
    });
}

/// rustls's `key_update_test_vector` (AES-128-GCM, SHA-256, v1)
#[test]
fn key_update_secrets() {
    let cases = [
        (
            "b8767708f8772358a6ea9fc43e4add2c961b3f5287a6d1467ee0aeab33724dbf",
            "42cac8c91cd5eb40682e432edf2d2be9f41a52ca6b22d8e6cdb1e8aca9061fce",
        ),
        (
            "42dc972140e0f2e39845b767613439dc6758ca43259b878506824eb1e438d855",
            "eb7f5e2a123f407db499e361cae590d4d992e14b7ace03c244e0422115b6d38a",
        ),
    ];
    for (secret, next) in cases {
        assert_eq!(
            hex::encode(next_secret(VERSION_1, Suite::Aes128Gcm, &h(secret))),
            next
        );
    }
    // SHA-384 suites produce 48-byte secrets
    assert_eq!(next_secret(VERSION_1, Suite::Aes256Gcm, &[1; 48]).len(), 48);
}

#[test]
fn versions() {
    assert!(is_supported_version(VERSION_1));
    assert!(is_supported_version(VERSION_2));
    assert!(!is_supported_version(0));
    assert!(!is_supported_version(0xff00_001d));
    assert!(!is_supported_version(0x1a2a_3a4a));
    assert!(initial_keys(0x1a2a_3a4a, &h(DCID), Side::Client).is_err());
    assert!(initial_keys(0, &h(DCID), Side::Server).is_err());
}

#[test]
fn aead_limits() {
    for suite in [Suite::Aes128Gcm, Suite::Aes256Gcm] {
        let (key, _) = keys_from_secret(VERSION_1, suite, &[0; 48][..suite.secret_len()]);
        assert_eq!(key.confidentiality_limit(), 1 << 23);
        assert_eq!(key.integrity_limit(), 1 << 52);
        assert_eq!(key.tag_len(), 16);
    }
    let (key, _) = keys_from_secret(VERSION_1, Suite::ChaCha20Poly1305, &[0; 32]);
    assert_eq!(key.integrity_limit(), 1 << 36);
}

/// Seal/open and header protection round trips for every suite, in both header forms
#[test]
fn round_trip_every_suite() {
    for version in [VERSION_1, VERSION_2] {
        for suite in [Suite::Aes128Gcm, Suite::Aes256Gcm, Suite::ChaCha20Poly1305] {
            let secret = vec![0x5a; suite.secret_len()];
            let (pk, hk) = keys_from_secret(version, suite, &secret);
            for first in [0xc1u8, 0x41] {
                // A header with a 2-byte PN at offset 5
                let header = [first, 1, 2, 3, 4, 0x12, 0x34];
                let mut packet = header.to_vec();
                packet.extend_from_slice(&[0xee; 40]);
                packet.resize(packet.len() + pk.tag_len(), 0);
                let (hdr, body) = packet.split_at_mut(header.len());
                pk.seal(0x1234, hdr, body);
                hk.encrypt(5, &mut packet).unwrap();
                assert_ne!(packet[..header.len()], header[..]);
                // Bits outside the protected ones are untouched
                let unprotected = if first & 0x80 != 0 { 0xf0 } else { 0xe0 };
                assert_eq!(packet[0] & unprotected, first & unprotected);

                hk.decrypt(5, &mut packet).unwrap();
                assert_eq!(packet[..header.len()], header[..]);
                let (hdr, body) = packet.split_at_mut(header.len());
                let mut tampered = body.to_vec();
                assert_eq!(pk.open(0x1234, hdr, body), Ok(40));
                assert_eq!(body[..40], [0xee; 40]);
                // A different packet number or a flipped bit fails
                let mut copy = tampered.clone();
                assert_eq!(pk.open(0x1235, hdr, &mut copy), Err(CryptoError));
                tampered[3] ^= 1;
                assert_eq!(pk.open(0x1234, hdr, &mut tampered), Err(CryptoError));
            }
        }
    }
}

#[test]
fn header_protection_rejects_short_packets() {
    let (pk, hk) = keys_from_secret(VERSION_1, Suite::Aes128Gcm, &[1; 32]);
    // pn_offset + 4 + 16 bytes are needed
    let mut packet = vec![0x40; 20];
    assert_eq!(hk.decrypt(1, &mut packet), Err(CryptoError));
    assert_eq!(hk.encrypt(1, &mut packet), Err(CryptoError));
    let mut packet = vec![0x40; 21];
    assert!(hk.decrypt(1, &mut packet).is_ok());
    assert_eq!(hk.decrypt(0, &mut packet), Err(CryptoError));
    assert_eq!(hk.decrypt(usize::MAX, &mut packet), Err(CryptoError));
    // Opening less than a tag fails rather than panicking
    let mut short = [0u8; 15];
    assert_eq!(pk.open(0, &[], &mut short), Err(CryptoError));
    let mut empty = [0u8; 0];
    assert_eq!(pk.open(0, &[], &mut empty), Err(CryptoError));
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(64))]

    /// Unprotecting arbitrary bytes never panics, and protection always round-trips
    #[test]
    fn header_protection_any_input(
        mut packet in proptest::collection::vec(proptest::num::u8::ANY, 0..64),
        pn_offset in 0usize..40,
    ) {
        let (_, hk) = keys_from_secret(VERSION_2, Suite::ChaCha20Poly1305, &[9; 32]);
        let original = packet.clone();
        if hk.encrypt(pn_offset, &mut packet).is_ok() {
            hk.decrypt(pn_offset, &mut packet).unwrap();
            proptest::prop_assert_eq!(&packet, &original);
        } else {
            proptest::prop_assert_eq!(&packet, &original);
            proptest::prop_assert!(hk.decrypt(pn_offset, &mut packet).is_err());
        }
    }

    #[test]
    fn open_any_input(
        mut body in proptest::collection::vec(proptest::num::u8::ANY, 0..64),
        pn: u64,
    ) {
        let (pk, _) = keys_from_secret(VERSION_1, Suite::Aes256Gcm, &[3; 48]);
        proptest::prop_assert!(pk.open(pn, b"hdr", &mut body).is_err());
    }
}
