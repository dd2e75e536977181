//! A small codec trait over `bytes::Buf`/`BufMut`
//!
//! Decoding reports only [`UnexpectedEnd`]: the wire types built on top decide what a short
//! buffer means for them (usually FRAME_ENCODING_ERROR or a dropped packet).

use bytes::{Buf, BufMut};

use crate::varint;

/// The input ended before the value was complete
#[derive(Debug, Copy, Clone, Eq, PartialEq, thiserror::Error)]
#[error("unexpected end of buffer")]
pub struct UnexpectedEnd;

/// Result of a decode
pub type Result<T> = std::result::Result<T, UnexpectedEnd>;

/// A value with a fixed wire encoding
pub trait Codec: Sized {
    /// Decode from the front of `buf`
    fn decode<B: Buf>(buf: &mut B) -> Result<Self>;
    /// Encode at the end of `buf`
    fn encode<B: BufMut>(&self, buf: &mut B);
}

macro_rules! impl_int_codec {
    ($ty:ty, $get:ident, $put:ident) => {
        impl Codec for $ty {
            fn decode<B: Buf>(buf: &mut B) -> Result<Self> {
                if buf.remaining() < std::mem::size_of::<$ty>() {
                    return Err(UnexpectedEnd);
                }
                Ok(buf.$get())
            }
            fn encode<B: BufMut>(&self, buf: &mut B) {
                buf.$put(*self);
            }
        }
    };
}

impl_int_codec!(u8, get_u8, put_u8);
impl_int_codec!(u16, get_u16, put_u16);
impl_int_codec!(u32, get_u32, put_u32);
impl_int_codec!(u64, get_u64, put_u64);

/// Reading helpers on any `Buf`
pub trait BufExt {
    /// A fixed-width value
    fn get<T: Codec>(&mut self) -> Result<T>;
    /// A varint as u64
    fn get_var(&mut self) -> Result<u64>;
}

impl<B: Buf> BufExt for B {
    fn get<T: Codec>(&mut self) -> Result<T> {
        T::decode(self)
    }
    fn get_var(&mut self) -> Result<u64> {
        varint::read(self)
    }
}

/// Writing helpers on any `BufMut`
pub trait BufMutExt {
    /// A fixed-width value
    fn write<T: Codec>(&mut self, x: T);
    /// A varint; `x` must be below 2^62
    fn write_var(&mut self, x: u64);
}

impl<B: BufMut> BufMutExt for B {
    fn write<T: Codec>(&mut self, x: T) {
        x.encode(self)
    }
    fn write_var(&mut self, x: u64) {
        varint::write(x, self)
    }
}

/// Split `len` bytes off the front of a byte slice
#[inline]
pub fn take<'a>(buf: &mut &'a [u8], len: usize) -> Result<&'a [u8]> {
    if buf.len() < len {
        return Err(UnexpectedEnd);
    }
    let (head, tail) = buf.split_at(len);
    *buf = tail;
    Ok(head)
}
