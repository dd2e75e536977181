//! QUIC variable-length integers (RFC 9000 §16)
//!
//! A `VarInt` always holds a value below 2^62, so encoding it never fails.

use std::fmt;

use bytes::{Buf, BufMut};

use crate::coding::UnexpectedEnd;

/// An integer below 2^62, encodable as a QUIC varint
#[derive(Default, Copy, Clone, Eq, PartialEq, Ord, PartialOrd, Hash)]
pub struct VarInt(u64);

/// The value did not fit in 62 bits
#[derive(Debug, Copy, Clone, Eq, PartialEq, thiserror::Error)]
#[error("value too large for a QUIC varint")]
pub struct VarIntBoundsExceeded;

impl VarInt {
    /// The largest representable value, 2^62 - 1
    pub const MAX: Self = Self((1 << 62) - 1);
    /// The largest encoded size in bytes
    pub const MAX_SIZE: usize = 8;

    /// A varint from a u32, which always fits
    pub const fn from_u32(x: u32) -> Self {
        Self(x as u64)
    }

    /// A varint from a u64 known by the caller to be below 2^62
    pub fn from_u64(x: u64) -> Result<Self, VarIntBoundsExceeded> {
        if x <= Self::MAX.0 {
            Ok(Self(x))
        } else {
            Err(VarIntBoundsExceeded)
        }
    }

    /// The value
    pub const fn into_inner(self) -> u64 {
        self.0
    }

    /// Bytes needed to encode this value
    pub const fn size(self) -> usize {
        size(self.0)
    }

    /// Decode from the front of `buf`
    pub fn decode<B: Buf>(buf: &mut B) -> Result<Self, UnexpectedEnd> {
        read(buf).map(Self)
    }

    /// Encode at the end of `buf`
    pub fn encode<B: BufMut>(self, buf: &mut B) {
        write(self.0, buf)
    }
}

/// Bytes needed to encode `x` (which must be below 2^62)
pub const fn size(x: u64) -> usize {
    if x < 1 << 6 {
        1
    } else if x < 1 << 14 {
        2
    } else if x < 1 << 30 {
        4
    } else {
        8
    }
}

/// Read a varint from the front of `buf`
#[inline]
pub fn read<B: Buf>(buf: &mut B) -> Result<u64, UnexpectedEnd> {
    if !buf.has_remaining() {
        return Err(UnexpectedEnd);
    }
    let first = buf.chunk()[0];
    let len = 1usize << (first >> 6);
    if buf.remaining() < len {
        return Err(UnexpectedEnd);
    }
    Ok(match len {
        1 => u64::from(buf.get_u8() & 0x3f),
        2 => u64::from(buf.get_u16() & 0x3fff),
        4 => u64::from(buf.get_u32() & 0x3fff_ffff),
        _ => buf.get_u64() & 0x3fff_ffff_ffff_ffff,
    })
}

/// Write `x` (which must be below 2^62) as a varint of the minimal size
#[inline]
pub fn write<B: BufMut>(x: u64, buf: &mut B) {
    debug_assert!(x <= VarInt::MAX.0, "varint out of range");
    if x < 1 << 6 {
        buf.put_u8(x as u8);
    } else if x < 1 << 14 {
        buf.put_u16(0x4000 | x as u16);
    } else if x < 1 << 30 {
        buf.put_u32(0x8000_0000 | x as u32);
    } else {
        buf.put_u64(0xc000_0000_0000_0000 | x);
    }
}

/// Write `x` with exactly `len` bytes (1, 2, 4 or 8), e.g. to fill in a length field later
pub fn write_with_len<B: BufMut>(x: u64, len: usize, buf: &mut B) {
    debug_assert!(size(x) <= len);
    match len {
        1 => buf.put_u8(x as u8),
        2 => buf.put_u16(0x4000 | x as u16),
        4 => buf.put_u32(0x8000_0000 | x as u32),
        _ => buf.put_u64(0xc000_0000_0000_0000 | x),
    }
}

impl From<u8> for VarInt {
    fn from(x: u8) -> Self {
        Self(x.into())
    }
}

impl From<u16> for VarInt {
    fn from(x: u16) -> Self {
        Self(x.into())
    }
}

impl From<u32> for VarInt {
    fn from(x: u32) -> Self {
        Self(x.into())
    }
}

impl TryFrom<u64> for VarInt {
    type Error = VarIntBoundsExceeded;
    fn try_from(x: u64) -> Result<Self, Self::Error> {
        Self::from_u64(x)
    }
}

impl From<VarInt> for u64 {
    fn from(x: VarInt) -> Self {
        x.0
    }
}

impl fmt::Debug for VarInt {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl fmt::Display for VarInt {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode_hex(s: &str) -> u64 {
        let bytes = hex::decode(s).unwrap();
        let mut slice = &bytes[..];
        let v = read(&mut slice).unwrap();
        assert!(slice.is_empty());
        v
    }

    // RFC 9000 Appendix A.1 examples
    #[test]
    fn rfc9000_examples() {
        assert_eq!(decode_hex("c2197c5eff14e88c"), 151_288_809_941_952_652);
        assert_eq!(decode_hex("9d7f3e7d"), 494_878_333);
        assert_eq!(decode_hex("7bbd"), 15_293);
        assert_eq!(decode_hex("25"), 37);
        assert_eq!(decode_hex("4025"), 37);
    }

    #[test]
    fn boundaries_round_trip() {
        for &(x, len) in &[
            (0u64, 1usize),
            (63, 1),
            (64, 2),
            (16383, 2),
            (16384, 4),
            ((1 << 30) - 1, 4),
            (1 << 30, 8),
            (VarInt::MAX.0, 8),
        ] {
            let mut buf = Vec::new();
            write(x, &mut buf);
            assert_eq!(buf.len(), len, "size of {x}");
            assert_eq!(size(x), len);
            assert_eq!(read(&mut &buf[..]).unwrap(), x);
        }
        assert!(VarInt::from_u64(1 << 62).is_err());
    }

    #[test]
    fn truncated_is_an_error() {
        assert_eq!(read(&mut &[][..]), Err(UnexpectedEnd));
        assert_eq!(read(&mut &[0x40][..]), Err(UnexpectedEnd));
        assert_eq!(read(&mut &[0xc0, 0, 0, 0, 0, 0, 0][..]), Err(UnexpectedEnd));
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(256))]
        #[test]
        fn round_trip(x in 0u64..(1 << 62)) {
            let mut buf = Vec::new();
            write(x, &mut buf);
            proptest::prop_assert_eq!(read(&mut &buf[..]).unwrap(), x);
        }
    }
}
