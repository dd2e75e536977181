//! Frame encoding, plus header-only helpers for the packet builder's hot path

use std::ops::Range;

use bytes::BufMut;

use super::{Ack, Close, EcnCounts, Frame, FrameType, Stream};
use crate::shared::{Dir, StreamId};
use crate::varint::{self, VarInt};

/// Type byte of a STREAM frame with the given flags
pub(super) fn stream_type(offset: u64, fin: bool, with_len: bool) -> u64 {
    let mut ty = FrameType::STREAM.0;
    if offset != 0 {
        ty |= 0x04;
    }
    if with_len {
        ty |= 0x02;
    }
    if fin {
        ty |= 0x01;
    }
    ty
}

/// Bytes of a STREAM frame before its data
///
/// The OFF bit is used only when `offset` is not 0; the LEN field only when `with_len` (a frame
/// without it must be the last in its packet).
pub fn stream_header_len(id: StreamId, offset: u64, data_len: usize, with_len: bool) -> usize {
    1 + varint::size(id.0)
        + if offset != 0 { varint::size(offset) } else { 0 }
        + if with_len {
            varint::size(data_len as u64)
        } else {
            0
        }
}

/// Write a STREAM frame header; the caller appends `data_len` bytes of data right after
pub fn encode_stream_header<B: BufMut>(
    buf: &mut B,
    id: StreamId,
    offset: u64,
    data_len: usize,
    fin: bool,
    with_len: bool,
) {
    varint::write(stream_type(offset, fin, with_len), buf);
    varint::write(id.0, buf);
    if offset != 0 {
        varint::write(offset, buf);
    }
    if with_len {
        varint::write(data_len as u64, buf);
    }
}

/// How many data bytes a STREAM frame can carry in `space` bytes (header included)
///
/// Also keeps offset + length within 2^62-1 (RFC 9000 §19.8). Returns 0 when not even the
/// header fits; the caller decides whether an empty (FIN-only) frame is worth sending.
pub fn stream_max_data_len(id: StreamId, offset: u64, space: usize, with_len: bool) -> usize {
    let fixed = stream_header_len(id, offset, 0, false);
    let limit = VarInt::MAX.into_inner().saturating_sub(offset);
    let limit = usize::try_from(limit).unwrap_or(usize::MAX);
    max_payload(space.saturating_sub(fixed), with_len).min(limit)
}

/// Largest `n` with `n` (+ its varint length when `with_len`) fitting in `avail` bytes
fn max_payload(avail: usize, with_len: bool) -> usize {
    if !with_len {
        return avail;
    }
    // For each length-field size, the data is capped both by the room left and by what that
    // field size can express; the best of the four is the answer
    [
        (1usize, 63u64),
        (2, 16_383),
        (4, (1 << 30) - 1),
        (8, VarInt::MAX.into_inner()),
    ]
    .iter()
    .filter(|(size, _)| *size <= avail)
    .map(|&(size, max)| {
        let room = avail - size;
        usize::try_from(max).map_or(room, |max| room.min(max))
    })
    .max()
    .unwrap_or(0)
}

/// Bytes of a CRYPTO frame before its data
pub fn crypto_header_len(offset: u64, data_len: usize) -> usize {
    1 + varint::size(offset) + varint::size(data_len as u64)
}

/// Write a CRYPTO frame header; the caller appends `data_len` bytes of data right after
pub fn encode_crypto_header<B: BufMut>(buf: &mut B, offset: u64, data_len: usize) {
    varint::write(FrameType::CRYPTO.0, buf);
    varint::write(offset, buf);
    varint::write(data_len as u64, buf);
}

/// How many data bytes a CRYPTO frame can carry in `space` bytes (header included)
pub fn crypto_max_data_len(offset: u64, space: usize) -> usize {
    let fixed = 1 + varint::size(offset);
    max_payload(space.saturating_sub(fixed), true)
}

/// Bytes of a DATAGRAM frame before its data
pub fn datagram_header_len(data_len: usize, with_len: bool) -> usize {
    1 + if with_len {
        varint::size(data_len as u64)
    } else {
        0
    }
}

/// Write a DATAGRAM frame header (RFC 9221 §4); without a length the data must end the packet
pub fn encode_datagram_header<B: BufMut>(buf: &mut B, data_len: usize, with_len: bool) {
    if with_len {
        varint::write(FrameType::DATAGRAM_LEN.0, buf);
        varint::write(data_len as u64, buf);
    } else {
        varint::write(FrameType::DATAGRAM.0, buf);
    }
}

/// Converts half-open ranges, largest first, into the ACK encoding's numbers
///
/// Yields (gap, length) pairs after the first range; ranges that overlap, touch or are out of
/// order cannot be encoded and are skipped (a caller bug, caught in debug builds).
fn ack_pairs<I: Iterator<Item = Range<u64>>>(
    mut ranges: I,
) -> Option<(u64, u64, impl Iterator<Item = (u64, u64)>)> {
    let first = ranges.find(|r| !r.is_empty())?;
    let largest = first.end - 1;
    let first_range = largest - first.start;
    let mut prev_smallest = first.start;
    let pairs = ranges.filter_map(move |r| {
        if r.is_empty() {
            return None;
        }
        // RFC 9000 §19.3.1: gap = previous smallest - this largest - 2, with largest = end - 1
        let gap = prev_smallest.checked_sub(r.end)?.checked_sub(1);
        debug_assert!(
            gap.is_some(),
            "ACK ranges must be disjoint, apart and descending"
        );
        let gap = gap?;
        prev_smallest = r.start;
        Some((gap, r.end - 1 - r.start))
    });
    Some((largest, first_range, pairs))
}

/// Bytes [`encode_ack`] writes for the same arguments (0 when there are no ranges)
pub fn ack_encoded_len<I>(ranges_desc: I, delay: u64, ecn: Option<&EcnCounts>) -> usize
where
    I: Iterator<Item = Range<u64>>,
{
    let Some((largest, first_range, pairs)) = ack_pairs(ranges_desc) else {
        return 0;
    };
    let (count, pair_bytes) = pairs.fold((0u64, 0usize), |(n, bytes), (gap, len)| {
        (n + 1, bytes + varint::size(gap) + varint::size(len))
    });
    1 + varint::size(largest)
        + varint::size(delay)
        + varint::size(count)
        + varint::size(first_range)
        + pair_bytes
        + ecn.map_or(0, ecn_len)
}

/// Write an ACK (or ACK_ECN when `ecn` is given) frame for half-open packet number ranges,
/// largest first, which must be disjoint and not adjacent; writes nothing when there are none
///
/// `delay` is already scaled by our ack_delay_exponent. The iterator is walked twice (once to
/// count the ranges, which precede them on the wire), hence `Clone`.
pub fn encode_ack<B, I>(buf: &mut B, ranges_desc: I, delay: u64, ecn: Option<&EcnCounts>)
where
    B: BufMut,
    I: Iterator<Item = Range<u64>> + Clone,
{
    let count = match ack_pairs(ranges_desc.clone()) {
        Some((_, _, pairs)) => pairs.count() as u64,
        None => return,
    };
    let Some((largest, first_range, pairs)) = ack_pairs(ranges_desc) else {
        return;
    };
    let ty = if ecn.is_some() {
        FrameType::ACK_ECN
    } else {
        FrameType::ACK
    };
    varint::write(ty.0, buf);
    varint::write(largest, buf);
    varint::write(delay, buf);
    varint::write(count, buf);
    varint::write(first_range, buf);
    for (gap, len) in pairs {
        varint::write(gap, buf);
        varint::write(len, buf);
    }
    if let Some(ecn) = ecn {
        encode_ecn(buf, ecn);
    }
}

fn ecn_len(ecn: &EcnCounts) -> usize {
    varint::size(ecn.ect0) + varint::size(ecn.ect1) + varint::size(ecn.ce)
}

fn encode_ecn<B: BufMut>(buf: &mut B, ecn: &EcnCounts) {
    // RFC 9000 §19.3.2: ECT(0), ECT(1), then ECN-CE
    varint::write(ecn.ect0, buf);
    varint::write(ecn.ect1, buf);
    varint::write(ecn.ce, buf);
}

fn dir_bit(dir: Dir) -> u64 {
    match dir {
        Dir::Bi => 0,
        Dir::Uni => 1,
    }
}

impl Frame<'_> {
    /// Bytes [`Frame::encode`] writes
    pub fn encoded_len(&self) -> usize {
        let v = varint::size;
        let ty = v(self.ty().0);
        match self {
            Self::Padding(n) => *n,
            Self::Ping | Self::HandshakeDone => ty,
            Self::Ack(ack) => ack_len(ack),
            Self::ResetStream {
                id,
                error_code,
                final_size,
            } => ty + v(id.0) + v(*error_code) + v(*final_size),
            Self::StopSending { id, error_code } => ty + v(id.0) + v(*error_code),
            Self::Crypto { offset, data } => crypto_header_len(*offset, data.len()) + data.len(),
            Self::NewToken { token } => ty + v(token.len() as u64) + token.len(),
            Self::Stream(s) => stream_header_len(s.id, s.offset, s.data.len(), true) + s.data.len(),
            Self::MaxData(x) | Self::DataBlocked(x) => ty + v(*x),
            Self::MaxStreamData { id, max: x } | Self::StreamDataBlocked { id, limit: x } => {
                ty + v(id.0) + v(*x)
            }
            Self::MaxStreams { count: x, .. } | Self::StreamsBlocked { limit: x, .. } => ty + v(*x),
            Self::NewConnectionId(n) => {
                ty + v(n.sequence) + v(n.retire_prior_to) + 1 + n.id.len() + 16
            }
            Self::RetireConnectionId { sequence } => ty + v(*sequence),
            Self::PathChallenge(_) | Self::PathResponse(_) => ty + 8,
            Self::Close(c) => close_len(c),
            Self::Datagram { data } => datagram_header_len(data.len(), true) + data.len(),
        }
    }

    /// Write this frame at the end of `buf`
    ///
    /// STREAM frames always get a length field here (the frame may be followed by others);
    /// use [`encode_stream_header`] to omit it for the last frame of a packet.
    pub fn encode<B: BufMut>(&self, buf: &mut B) {
        let ty = self.ty().0;
        let w = |x: u64, buf: &mut B| varint::write(x, buf);
        match self {
            Self::Padding(n) => buf.put_bytes(0, *n),
            Self::Ping | Self::HandshakeDone => w(ty, buf),
            Self::Ack(ack) => encode_parsed_ack(buf, ack),
            Self::ResetStream {
                id,
                error_code,
                final_size,
            } => {
                w(ty, buf);
                w(id.0, buf);
                w(*error_code, buf);
                w(*final_size, buf);
            }
            Self::StopSending { id, error_code } => {
                w(ty, buf);
                w(id.0, buf);
                w(*error_code, buf);
            }
            Self::Crypto { offset, data } => {
                encode_crypto_header(buf, *offset, data.len());
                buf.put_slice(data);
            }
            Self::NewToken { token } => {
                w(ty, buf);
                w(token.len() as u64, buf);
                buf.put_slice(token);
            }
            Self::Stream(Stream {
                id,
                offset,
                fin,
                data,
            }) => {
                encode_stream_header(buf, *id, *offset, data.len(), *fin, true);
                buf.put_slice(data);
            }
            Self::MaxData(x) | Self::DataBlocked(x) => {
                w(ty, buf);
                w(*x, buf);
            }
            Self::MaxStreamData { id, max: x } | Self::StreamDataBlocked { id, limit: x } => {
                w(ty, buf);
                w(id.0, buf);
                w(*x, buf);
            }
            Self::MaxStreams { dir, count: x } | Self::StreamsBlocked { dir, limit: x } => {
                debug_assert_eq!(ty & 1, dir_bit(*dir));
                w(ty, buf);
                w(*x, buf);
            }
            Self::NewConnectionId(n) => {
                w(ty, buf);
                w(n.sequence, buf);
                w(n.retire_prior_to, buf);
                buf.put_u8(n.id.len() as u8);
                buf.put_slice(&n.id);
                buf.put_slice(&n.reset_token);
            }
            Self::RetireConnectionId { sequence } => {
                w(ty, buf);
                w(*sequence, buf);
            }
            Self::PathChallenge(data) | Self::PathResponse(data) => {
                w(ty, buf);
                buf.put_slice(data);
            }
            Self::Close(c) => {
                w(ty, buf);
                w(c.error_code, buf);
                if !c.application {
                    w(c.frame_type, buf);
                }
                w(c.reason.len() as u64, buf);
                buf.put_slice(c.reason);
            }
            Self::Datagram { data } => {
                encode_datagram_header(buf, data.len(), true);
                buf.put_slice(data);
            }
        }
    }
}

fn ack_len(ack: &Ack<'_>) -> usize {
    let v = varint::size;
    1 + v(ack.largest)
        + v(ack.delay)
        + v(ack.range_count)
        + v(ack.first_range)
        + ack.additional.len()
        + ack.ecn.as_ref().map_or(0, ecn_len)
}

fn encode_parsed_ack<B: BufMut>(buf: &mut B, ack: &Ack<'_>) {
    let ty = if ack.ecn.is_some() {
        FrameType::ACK_ECN
    } else {
        FrameType::ACK
    };
    varint::write(ty.0, buf);
    varint::write(ack.largest, buf);
    varint::write(ack.delay, buf);
    varint::write(ack.range_count, buf);
    varint::write(ack.first_range, buf);
    // The pairs stay in their received encoding: re-encoding a parsed ACK reproduces it exactly
    buf.put_slice(ack.additional);
    if let Some(ecn) = &ack.ecn {
        encode_ecn(buf, ecn);
    }
}

fn close_len(c: &Close<'_>) -> usize {
    let v = varint::size;
    1 + v(c.error_code)
        + if c.application { 0 } else { v(c.frame_type) }
        + v(c.reason.len() as u64)
        + c.reason.len()
}
