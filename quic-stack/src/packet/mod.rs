//! Packet headers: long/short views, packet numbers, coalescing, version negotiation
//!
//! [`parse_header`] reads the parts of the first packet of a datagram that header protection
//! leaves readable and says where that packet ends, so the caller can split coalesced packets
//! (RFC 9000 §12.2), remove header protection at `pn_offset`, decrypt, and move on to
//! `packet_len`. The header is returned as offsets and inline connection IDs, with no borrow of
//! the datagram, so the caller can then decrypt the datagram in place. Nothing here panics on
//! any input.
//!
//! Builders append to a `Vec<u8>` and return the offsets packet protection needs.

mod build;
mod number;
#[cfg(test)]
mod tests;

use std::ops::Range;

pub use build::{
    finish_long_header, write_long_header, write_retry, write_short_header,
    write_version_negotiation, LongHeaderOffsets,
};
pub use number::{decode_packet_number, encode_packet_number_len};

use crate::coding::{take, BufExt, Codec, UnexpectedEnd};
use crate::crypto::{VERSION_1, VERSION_2};
use crate::shared::ConnectionId;
use crate::varint;

/// First-byte bit marking a long header (RFC 9000 §17.2)
pub const LONG_HEADER_FORM: u8 = 0x80;
/// First-byte "fixed bit", 1 in every v1/v2 packet unless greased (RFC 9287)
pub const FIXED_BIT: u8 = 0x40;
/// Short header spin bit (RFC 9000 §17.4)
pub const SPIN_BIT: u8 = 0x20;
/// Short header key phase bit (RFC 9000 §17.3.1)
pub const KEY_PHASE_BIT: u8 = 0x04;
/// Length of the Retry integrity tag (RFC 9001 §5.8)
pub const RETRY_TAG_LEN: usize = 16;
/// Length of a stateless reset token (RFC 9000 §10.3)
pub const RESET_TOKEN_LEN: usize = 16;
/// Smallest datagram that can be a stateless reset (RFC 9000 §10.3)
pub const MIN_STATELESS_RESET_LEN: usize = 21;
/// Smallest UDP payload carrying an Initial packet a server may accept (RFC 9000 §14.1)
pub const MIN_INITIAL_DATAGRAM_LEN: usize = 1200;
/// Bytes after the packet number offset that header protection needs: a 4-byte packet number
/// is assumed and 16 bytes are sampled after it (RFC 9001 §5.4.2)
pub const HP_SAMPLE_SPAN: usize = 4 + 16;

/// The type of a long header packet
#[derive(Debug, Copy, Clone, Eq, PartialEq, Hash)]
pub enum LongType {
    /// Initial (RFC 9000 §17.2.2)
    Initial,
    /// 0-RTT (RFC 9000 §17.2.3)
    ZeroRtt,
    /// Handshake (RFC 9000 §17.2.4)
    Handshake,
    /// Retry (RFC 9000 §17.2.5)
    Retry,
}

impl LongType {
    /// From the two type bits (already shifted down to 0..=3) of a packet of `version`
    ///
    /// RFC 9369 §3.2: v2 rotates the codes; every other version is read with the v1 codes.
    pub fn from_bits(version: u32, bits: u8) -> Self {
        let v1_bits = if version == VERSION_2 {
            bits.wrapping_sub(1) & 0b11
        } else {
            bits & 0b11
        };
        match v1_bits {
            0b00 => Self::Initial,
            0b01 => Self::ZeroRtt,
            0b10 => Self::Handshake,
            _ => Self::Retry,
        }
    }

    /// The two type bits (not yet shifted into place) for a packet of `version`
    pub fn to_bits(self, version: u32) -> u8 {
        let v1_bits = match self {
            Self::Initial => 0b00,
            Self::ZeroRtt => 0b01,
            Self::Handshake => 0b10,
            Self::Retry => 0b11,
        };
        if version == VERSION_2 {
            (v1_bits + 1) & 0b11
        } else {
            v1_bits
        }
    }
}

/// A packet type, as far as frames are concerned (RFC 9000 §12.4, Table 3)
#[derive(Debug, Copy, Clone, Eq, PartialEq, Hash)]
pub enum PacketType {
    /// Initial
    Initial,
    /// 0-RTT
    ZeroRtt,
    /// Handshake
    Handshake,
    /// Retry (carries no frames)
    Retry,
    /// 1-RTT (short header)
    OneRtt,
}

impl From<LongType> for PacketType {
    fn from(ty: LongType) -> Self {
        match ty {
            LongType::Initial => Self::Initial,
            LongType::ZeroRtt => Self::ZeroRtt,
            LongType::Handshake => Self::Handshake,
            LongType::Retry => Self::Retry,
        }
    }
}

/// What the first packet of a datagram turned out to be
#[derive(Debug, Copy, Clone, Eq, PartialEq, Hash)]
pub enum HeaderKind {
    /// A long header packet of QUIC v1 or v2
    Long(LongType),
    /// A short header (1-RTT) packet
    Short,
    /// Version Negotiation (version 0, RFC 9000 §17.2.1); `ProtectedHeader::versions` holds the
    /// list
    VersionNegotiation,
    /// A long header of a version we do not speak: only the version-independent fields
    /// (RFC 8999 §5.1) are valid, enough to answer with Version Negotiation
    UnsupportedVersion,
}

/// The readable parts of a packet header, before header protection is removed
///
/// Offsets are from the start of the slice given to [`parse_header`].
#[derive(Debug, Clone, Eq, PartialEq)]
pub struct ProtectedHeader {
    /// What kind of packet this is
    pub kind: HeaderKind,
    /// The first byte, still protected: only the form, fixed and long type bits are readable
    pub first_byte: u8,
    /// Version of a long header; `None` for a short header
    pub version: Option<u32>,
    /// Destination connection ID (empty for an unsupported version whose DCID exceeds 20
    /// bytes: use `dcid_range` then)
    pub dcid: ConnectionId,
    /// Source connection ID (empty for short headers; see `dcid` for unsupported versions)
    pub scid: ConnectionId,
    /// Where the DCID bytes are
    pub dcid_range: Range<usize>,
    /// Where the SCID bytes are (empty for short headers)
    pub scid_range: Range<usize>,
    /// Initial: the token; Retry: the Retry token (tag excluded); empty otherwise
    pub token: Range<usize>,
    /// Version Negotiation: the supported versions list (a multiple of 4 bytes); empty otherwise
    pub versions: Range<usize>,
    /// Offset of the (protected) packet number; 0 for Retry, Version Negotiation and
    /// unsupported versions
    pub pn_offset: usize,
    /// Offset just past the end of this packet: the next coalesced packet starts here
    pub packet_len: usize,
}

impl ProtectedHeader {
    /// The packet type for frame rules, when this packet carries a protected payload or is Retry
    pub fn packet_type(&self) -> Option<PacketType> {
        match self.kind {
            HeaderKind::Long(ty) => Some(ty.into()),
            HeaderKind::Short => Some(PacketType::OneRtt),
            HeaderKind::VersionNegotiation | HeaderKind::UnsupportedVersion => None,
        }
    }

    /// Whether the (unprotected) fixed bit is set; 0 is valid only when we advertised
    /// grease_quic_bit (RFC 9287 §3), otherwise the packet MUST be discarded (RFC 9000 §17.2)
    pub fn fixed_bit(&self) -> bool {
        self.first_byte & FIXED_BIT != 0
    }

    /// The Retry integrity tag: the last 16 bytes of a Retry packet
    pub fn retry_tag<'a>(&self, datagram: &'a [u8]) -> Option<&'a [u8]> {
        if self.kind != HeaderKind::Long(LongType::Retry) {
            return None;
        }
        datagram.get(self.packet_len.checked_sub(RETRY_TAG_LEN)?..self.packet_len)
    }

    /// The versions listed in a Version Negotiation packet (empty for other kinds)
    pub fn supported_versions<'a>(&self, datagram: &'a [u8]) -> SupportedVersions<'a> {
        SupportedVersions {
            rest: datagram.get(self.versions.clone()).unwrap_or_default(),
        }
    }
}

/// The version list of a Version Negotiation packet
#[derive(Debug, Clone)]
pub struct SupportedVersions<'a> {
    rest: &'a [u8],
}

impl Iterator for SupportedVersions<'_> {
    type Item = u32;
    fn next(&mut self) -> Option<u32> {
        u32::decode(&mut self.rest).ok()
    }
}

/// Why a packet header could not be read; the datagram (or its remainder) is dropped
#[derive(Debug, Copy, Clone, Eq, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum PacketDecodeError {
    /// The header ended early
    #[error("packet header truncated")]
    UnexpectedEnd,
    /// RFC 9000 §17.2: a v1/v2 connection ID longer than 20 bytes MUST cause a drop
    #[error("connection ID longer than 20 bytes")]
    CidTooLong,
    /// The Length field points past the end of the datagram
    #[error("packet length beyond the end of the datagram")]
    LengthBeyondDatagram,
    /// Too few bytes after the packet number offset to sample for header protection
    /// (RFC 9001 §5.4.2)
    #[error("packet too short for header protection")]
    TooShort,
    /// A Retry packet too short to hold its integrity tag
    #[error("retry packet without an integrity tag")]
    RetryTooShort,
    /// A Version Negotiation version list that is empty or not a multiple of 4 bytes
    #[error("malformed version negotiation list")]
    BadVersionList,
}

impl From<UnexpectedEnd> for PacketDecodeError {
    fn from(_: UnexpectedEnd) -> Self {
        Self::UnexpectedEnd
    }
}

/// Whether `version` is one this module can parse past the invariant fields
pub fn is_supported_version(version: u32) -> bool {
    version == VERSION_1 || version == VERSION_2
}

/// Read the unprotected parts of the first packet in `datagram`
///
/// `local_cid_len` is the length of the connection IDs we issue, which short headers do not
/// encode. Split coalesced packets with `&datagram[header.packet_len..]`.
pub fn parse_header(
    datagram: &[u8],
    local_cid_len: usize,
) -> Result<ProtectedHeader, PacketDecodeError> {
    let first_byte = *datagram.first().ok_or(PacketDecodeError::UnexpectedEnd)?;
    if first_byte & LONG_HEADER_FORM == 0 {
        return parse_short(datagram, first_byte, local_cid_len);
    }
    let mut buf = datagram.get(1..).unwrap_or_default();
    let version = u32::decode(&mut buf)?;
    let supported = is_supported_version(version);
    let dcid_range = read_cid(&mut buf, datagram.len(), supported || version == 0)?;
    let scid_range = read_cid(&mut buf, datagram.len(), supported || version == 0)?;
    let cid = |r: &Range<usize>| {
        datagram
            .get(r.clone())
            .and_then(ConnectionId::new)
            .unwrap_or_default()
    };
    let mut header = ProtectedHeader {
        kind: HeaderKind::UnsupportedVersion,
        first_byte,
        version: Some(version),
        dcid: cid(&dcid_range),
        scid: cid(&scid_range),
        dcid_range,
        scid_range,
        token: 0..0,
        versions: 0..0,
        pn_offset: 0,
        packet_len: datagram.len(),
    };
    let pos = |buf: &[u8]| datagram.len() - buf.len();
    if version == 0 {
        // RFC 9000 §17.2.1: the rest of the datagram is a list of 32-bit versions
        if buf.is_empty() || buf.len() % 4 != 0 {
            return Err(PacketDecodeError::BadVersionList);
        }
        header.kind = HeaderKind::VersionNegotiation;
        header.versions = pos(buf)..datagram.len();
        return Ok(header);
    }
    if !supported {
        return Ok(header);
    }
    let ty = LongType::from_bits(version, (first_byte >> 4) & 0b11);
    header.kind = HeaderKind::Long(ty);
    if ty == LongType::Retry {
        // RFC 9000 §17.2.5: a Retry fills the rest of the datagram, ending with its tag
        let token_len = buf
            .len()
            .checked_sub(RETRY_TAG_LEN)
            .ok_or(PacketDecodeError::RetryTooShort)?;
        let start = pos(buf);
        header.token = start..start + token_len;
        return Ok(header);
    }
    if ty == LongType::Initial {
        let len = buf.get_var()?;
        let len = usize::try_from(len).map_err(|_| PacketDecodeError::UnexpectedEnd)?;
        let start = pos(buf);
        take(&mut buf, len)?;
        header.token = start..start + len;
    }
    let len = varint::read(&mut buf)?;
    header.pn_offset = pos(buf);
    let len = usize::try_from(len).map_err(|_| PacketDecodeError::LengthBeyondDatagram)?;
    if len > buf.len() {
        return Err(PacketDecodeError::LengthBeyondDatagram);
    }
    if len < HP_SAMPLE_SPAN {
        return Err(PacketDecodeError::TooShort);
    }
    header.packet_len = header.pn_offset + len;
    Ok(header)
}

fn parse_short(
    datagram: &[u8],
    first_byte: u8,
    local_cid_len: usize,
) -> Result<ProtectedHeader, PacketDecodeError> {
    let dcid_range = 1..1usize.saturating_add(local_cid_len);
    let dcid = datagram
        .get(dcid_range.clone())
        .ok_or(PacketDecodeError::UnexpectedEnd)?;
    let dcid = ConnectionId::new(dcid).ok_or(PacketDecodeError::CidTooLong)?;
    let pn_offset = dcid_range.end;
    if datagram.len() - pn_offset < HP_SAMPLE_SPAN {
        return Err(PacketDecodeError::TooShort);
    }
    Ok(ProtectedHeader {
        kind: HeaderKind::Short,
        first_byte,
        version: None,
        dcid,
        scid: ConnectionId::default(),
        scid_range: pn_offset..pn_offset,
        dcid_range,
        token: 0..0,
        versions: 0..0,
        pn_offset,
        packet_len: datagram.len(),
    })
}

/// Read a length-prefixed connection ID, returning where its bytes are
fn read_cid(
    buf: &mut &[u8],
    datagram_len: usize,
    limit_to_v1: bool,
) -> Result<Range<usize>, PacketDecodeError> {
    let len = usize::from(u8::decode(buf)?);
    // RFC 9000 §17.2: v1 (and v2) CIDs are at most 20 bytes; other versions may use up to 255
    // (RFC 8999 §5.1)
    if limit_to_v1 && len > ConnectionId::MAX_LEN {
        return Err(PacketDecodeError::CidTooLong);
    }
    let start = datagram_len - buf.len();
    take(buf, len)?;
    Ok(start..start + len)
}

/// The destination connection ID of any packet, for demultiplexing, without parsing more
///
/// Short headers carry `local_cid_len` bytes of it; long headers their own length.
pub fn peek_dcid(datagram: &[u8], local_cid_len: usize) -> Option<&[u8]> {
    let first = *datagram.first()?;
    if first & LONG_HEADER_FORM == 0 {
        return short_header_dcid(datagram, local_cid_len);
    }
    let len = usize::from(*datagram.get(5)?);
    datagram.get(6..6 + len)
}

/// The destination connection ID of a short header packet (`None` if it is not one or is
/// truncated)
pub fn short_header_dcid(datagram: &[u8], local_cid_len: usize) -> Option<&[u8]> {
    if datagram.first()? & LONG_HEADER_FORM != 0 {
        return None;
    }
    datagram.get(1..1usize.checked_add(local_cid_len)?)
}

/// Whether a datagram could be a stateless reset: short header form, at least 21 bytes
/// (RFC 9000 §10.3)
pub fn is_stateless_reset_candidate(datagram: &[u8]) -> bool {
    datagram.len() >= MIN_STATELESS_RESET_LEN
        && datagram.first().is_some_and(|b| b & LONG_HEADER_FORM == 0)
}

/// The last 16 bytes of a stateless reset candidate, to compare (in constant time) against the
/// peer's reset tokens (RFC 9000 §10.3.1)
pub fn stateless_reset_token(datagram: &[u8]) -> Option<[u8; RESET_TOKEN_LEN]> {
    if !is_stateless_reset_candidate(datagram) {
        return None;
    }
    let tail = datagram.get(datagram.len() - RESET_TOKEN_LEN..)?;
    tail.try_into().ok()
}

/// Facts read from a first byte once header protection is removed (RFC 9001 §5.4.1)
#[derive(Debug, Copy, Clone, Eq, PartialEq)]
pub struct UnprotectedFirstByte(pub u8);

impl UnprotectedFirstByte {
    /// Bytes of packet number that follow `pn_offset` (1..=4)
    pub fn pn_len(self) -> usize {
        usize::from(self.0 & 0x03) + 1
    }

    /// Whether the reserved bits are zero; RFC 9000 §17.2 and §17.3.1: after removing
    /// protection, nonzero reserved bits MUST be a PROTOCOL_VIOLATION
    pub fn reserved_bits_valid(self) -> bool {
        let reserved = if self.0 & LONG_HEADER_FORM != 0 {
            0x0c
        } else {
            0x18
        };
        self.0 & reserved == 0
    }

    /// The key phase bit of a short header (RFC 9000 §17.3.1)
    pub fn key_phase(self) -> bool {
        self.0 & LONG_HEADER_FORM == 0 && self.0 & KEY_PHASE_BIT != 0
    }

    /// The spin bit of a short header (RFC 9000 §17.4)
    pub fn spin(self) -> bool {
        self.0 & LONG_HEADER_FORM == 0 && self.0 & SPIN_BIT != 0
    }
}

/// The truncated packet number at `pn_offset`, once header protection is removed; `None`
/// when the packet is too short
pub fn read_truncated_pn(packet: &[u8], pn_offset: usize, pn_len: usize) -> Option<u64> {
    let bytes = packet.get(pn_offset..pn_offset.checked_add(pn_len)?)?;
    Some(bytes.iter().fold(0, |acc, &b| acc << 8 | u64::from(b)))
}
