//! Retry packet integrity (RFC 9001 §5.8, RFC 9369 §3.3.3)
//!
//! The tag is AES-128-GCM over an empty plaintext, with a fixed key and nonce per version and
//! the Retry pseudo-packet (ODCID length, ODCID, Retry packet without its tag) as associated
//! data.

use std::sync::OnceLock;

use ring::aead;

use super::{VERSION_1, VERSION_2};

/// Length of the Retry Integrity Tag
pub const RETRY_TAG_LEN: usize = 16;

/// RFC 9001 §5.8: the v1 Retry integrity key
const KEY_V1: [u8; 16] = [
    0xbe, 0x0c, 0x69, 0x0b, 0x9f, 0x66, 0x57, 0x5a, 0x1d, 0x76, 0x6b, 0x54, 0xe3, 0x68, 0xc8, 0x4e,
];
/// RFC 9001 §5.8: the v1 Retry integrity nonce
const NONCE_V1: [u8; 12] = [
    0x46, 0x15, 0x99, 0xd3, 0x5d, 0x63, 0x2b, 0xf2, 0x23, 0x98, 0x25, 0xbb,
];
/// RFC 9369 §3.3.3: the v2 Retry integrity key
const KEY_V2: [u8; 16] = [
    0x8f, 0xb4, 0xb0, 0x1b, 0x56, 0xac, 0x48, 0xe2, 0x60, 0xfb, 0xcb, 0xce, 0xad, 0x7c, 0xcc, 0x92,
];
/// RFC 9369 §3.3.3: the v2 Retry integrity nonce
const NONCE_V2: [u8; 12] = [
    0xd8, 0x69, 0x69, 0xbc, 0x2d, 0x7c, 0x6d, 0x99, 0x90, 0xef, 0xb0, 0x4a,
];

/// Pseudo-packets up to this size are assembled on the stack; a Retry fits in one datagram, so
/// only oversized input takes the heap path
const STACK_PSEUDO_PACKET: usize = 1536;

/// The AEAD key and nonce for `version`; `None` for versions without a Retry key
fn key_and_nonce(version: u32) -> Option<(&'static aead::LessSafeKey, [u8; 12])> {
    static V1: OnceLock<aead::LessSafeKey> = OnceLock::new();
    static V2: OnceLock<aead::LessSafeKey> = OnceLock::new();
    let (cell, key, nonce) = match version {
        VERSION_1 => (&V1, &KEY_V1, NONCE_V1),
        VERSION_2 => (&V2, &KEY_V2, NONCE_V2),
        _ => return None,
    };
    let key = cell.get_or_init(|| {
        // A 16-byte key is always valid for AES-128-GCM
        let unbound = aead::UnboundKey::new(&aead::AES_128_GCM, key)
            .expect("16-byte key is valid for AES-128-GCM");
        aead::LessSafeKey::new(unbound)
    });
    Some((key, nonce))
}

/// Run `f` on the Retry pseudo-packet (RFC 9001 §5.8): ODCID length, ODCID, Retry packet
fn with_pseudo_packet<R>(orig_dcid: &[u8], retry: &[u8], f: impl FnOnce(&[u8]) -> R) -> R {
    let len = 1 + orig_dcid.len() + retry.len();
    // A connection ID is at most 255 bytes by construction of its length byte; longer input is
    // truncated in the length byte and so can never validate
    let odcid_len = u8::try_from(orig_dcid.len()).unwrap_or(u8::MAX);
    let fill = |buf: &mut [u8]| {
        buf[0] = odcid_len;
        buf[1..1 + orig_dcid.len()].copy_from_slice(orig_dcid);
        buf[1 + orig_dcid.len()..].copy_from_slice(retry);
    };
    if len <= STACK_PSEUDO_PACKET {
        let mut stack = [0u8; STACK_PSEUDO_PACKET];
        fill(&mut stack[..len]);
        f(&stack[..len])
    } else {
        let mut heap = vec![0u8; len];
        fill(&mut heap);
        f(&heap)
    }
}

/// The Retry Integrity Tag for a Retry packet (everything but the tag) sent in reply to a client
/// Initial whose Destination Connection ID was `orig_dcid` (RFC 9001 §5.8, RFC 9369 §3.3.3)
///
/// An unsupported version gets the v1 tag; servers only send Retry in versions they support.
pub fn retry_tag(version: u32, orig_dcid: &[u8], retry_without_tag: &[u8]) -> [u8; RETRY_TAG_LEN] {
    let (key, nonce) = key_and_nonce(version)
        .or_else(|| key_and_nonce(VERSION_1))
        .expect("v1 always has a Retry key");
    let mut tag = [0u8; RETRY_TAG_LEN];
    with_pseudo_packet(orig_dcid, retry_without_tag, |aad| {
        // Sealing an empty plaintext only fails for inputs beyond AES-GCM's limits (gigabytes)
        if let Ok(t) = key.seal_in_place_separate_tag(
            aead::Nonce::assume_unique_for_key(nonce),
            aead::Aad::from(aad),
            &mut [],
        ) {
            tag.copy_from_slice(t.as_ref());
        }
    });
    tag
}

/// Whether a received Retry packet carries a valid integrity tag for our original Destination
/// Connection ID (RFC 9001 §5.8: a client MUST discard a Retry that fails this check)
///
/// False for unsupported versions and packets shorter than the tag. The comparison is done by
/// the AEAD, in constant time.
pub fn is_valid_retry(version: u32, orig_dcid: &[u8], retry_with_tag: &[u8]) -> bool {
    let Some((key, nonce)) = key_and_nonce(version) else {
        return false;
    };
    let Some(split) = retry_with_tag.len().checked_sub(RETRY_TAG_LEN) else {
        return false;
    };
    if orig_dcid.len() > usize::from(u8::MAX) {
        return false;
    }
    let (packet, tag) = retry_with_tag.split_at(split);
    let mut tag_copy = [0u8; RETRY_TAG_LEN];
    tag_copy.copy_from_slice(tag);
    with_pseudo_packet(orig_dcid, packet, |aad| {
        key.open_in_place(
            aead::Nonce::assume_unique_for_key(nonce),
            aead::Aad::from(aad),
            &mut tag_copy,
        )
        .is_ok()
    })
}
