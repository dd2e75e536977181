//! Header builders: append headers to a `Vec<u8>` and report the offsets protection needs

use bytes::BufMut;

use super::number::write_truncated;
use super::{LongType, FIXED_BIT, KEY_PHASE_BIT, LONG_HEADER_FORM, SPIN_BIT};
use crate::varint;

/// Where the parts of a long header just written are, for [`finish_long_header`] and packet
/// protection
#[derive(Debug, Copy, Clone, Eq, PartialEq)]
pub struct LongHeaderOffsets {
    /// Offset of the first byte
    pub header_start: usize,
    /// Offset of the 2-byte Length field
    pub length_offset: usize,
    /// Offset of the packet number (and end of the Length field)
    pub pn_offset: usize,
}

/// The Length field is reserved as a 2-byte varint so it can be filled in after the payload
const LENGTH_FIELD_LEN: usize = 2;

/// The first byte's fixed bit: RFC 9287 §3 lets a peer that advertised grease_quic_bit
/// receive it cleared
fn fixed_bit(grease_fixed_bit: bool) -> u8 {
    if grease_fixed_bit {
        0
    } else {
        FIXED_BIT
    }
}

fn put_cid(buf: &mut Vec<u8>, cid: &[u8]) {
    debug_assert!(cid.len() <= usize::from(u8::MAX));
    buf.put_u8(cid.len() as u8);
    buf.put_slice(cid);
}

/// Append an Initial, 0-RTT or Handshake header with packet number `pn` in `pn_len` bytes
///
/// `token` is written only for Initial (an absent token is written as an empty one). The
/// Length field is left for [`finish_long_header`] once the payload is written. Reserved bits
/// are 0 (RFC 9000 §17.2); the fixed bit is cleared only when `grease_fixed_bit` is asked for.
#[allow(clippy::too_many_arguments)]
pub fn write_long_header(
    buf: &mut Vec<u8>,
    ty: LongType,
    version: u32,
    dcid: &[u8],
    scid: &[u8],
    token: Option<&[u8]>,
    pn: u64,
    pn_len: usize,
    grease_fixed_bit: bool,
) -> LongHeaderOffsets {
    debug_assert!(ty != LongType::Retry, "use write_retry");
    debug_assert!((1..=4).contains(&pn_len));
    let pn_len = pn_len.clamp(1, 4);
    let header_start = buf.len();
    buf.put_u8(
        LONG_HEADER_FORM
            | fixed_bit(grease_fixed_bit)
            | ty.to_bits(version) << 4
            | (pn_len as u8 - 1),
    );
    buf.put_u32(version);
    put_cid(buf, dcid);
    put_cid(buf, scid);
    if ty == LongType::Initial {
        let token = token.unwrap_or_default();
        varint::write(token.len() as u64, buf);
        buf.put_slice(token);
    }
    let length_offset = buf.len();
    buf.put_u16(0x4000);
    let pn_offset = buf.len();
    write_truncated(buf, pn, pn_len);
    LongHeaderOffsets {
        header_start,
        length_offset,
        pn_offset,
    }
}

/// Fill in the Length field once the payload is in `buf`: the packet number and payload
/// bytes after the field, plus the AEAD tag still to be appended
///
/// A long header packet must stay below 16384 bytes after its Length field, which any UDP
/// datagram path MTU satisfies.
pub fn finish_long_header(buf: &mut [u8], offsets: &LongHeaderOffsets, tag_len: usize) {
    let after = offsets.length_offset + LENGTH_FIELD_LEN;
    let len = buf.len().saturating_sub(after) + tag_len;
    debug_assert!(len < 1 << 14, "long header packet too large");
    let field = 0x4000 | (len as u16 & 0x3fff);
    if let Some(slot) = buf.get_mut(offsets.length_offset..after) {
        slot.copy_from_slice(&field.to_be_bytes());
    }
}

/// Append a short (1-RTT) header; returns the packet number offset
///
/// Reserved bits are 0 (RFC 9000 §17.3.1); the fixed bit is cleared only when
/// `grease_fixed_bit` is asked for.
pub fn write_short_header(
    buf: &mut Vec<u8>,
    spin: bool,
    key_phase: bool,
    dcid: &[u8],
    pn: u64,
    pn_len: usize,
    grease_fixed_bit: bool,
) -> usize {
    debug_assert!((1..=4).contains(&pn_len));
    let pn_len = pn_len.clamp(1, 4);
    let mut first = fixed_bit(grease_fixed_bit) | (pn_len as u8 - 1);
    if spin {
        first |= SPIN_BIT;
    }
    if key_phase {
        first |= KEY_PHASE_BIT;
    }
    buf.put_u8(first);
    buf.put_slice(dcid);
    let pn_offset = buf.len();
    write_truncated(buf, pn, pn_len);
    pn_offset
}

/// Append a Version Negotiation packet (RFC 9000 §17.2.1)
///
/// `dcid`/`scid` are the client's SCID/DCID echoed back; the low 7 bits of `random_bits`
/// fill the unused first-byte bits, which the server sets to arbitrary values.
pub fn write_version_negotiation(
    buf: &mut Vec<u8>,
    random_bits: u8,
    dcid: &[u8],
    scid: &[u8],
    versions: &[u32],
) {
    buf.put_u8(LONG_HEADER_FORM | (random_bits & 0x7f));
    buf.put_u32(0);
    put_cid(buf, dcid);
    put_cid(buf, scid);
    for &version in versions {
        buf.put_u32(version);
    }
}

/// Append a Retry packet without its integrity tag, which the caller computes over these
/// bytes and appends (RFC 9001 §5.8)
pub fn write_retry(buf: &mut Vec<u8>, version: u32, dcid: &[u8], scid: &[u8], token: &[u8]) {
    buf.put_u8(LONG_HEADER_FORM | FIXED_BIT | LongType::Retry.to_bits(version) << 4);
    buf.put_u32(version);
    put_cid(buf, dcid);
    put_cid(buf, scid);
    buf.put_slice(token);
}
