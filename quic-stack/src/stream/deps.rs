//! The seam to components owned by other modules: reassembly, send buffering, flow control
//! and STREAM/control frame encoding
//!
//! Everything the stream layer needs from outside goes through this one file. Reassembly, the
//! send buffer and flow control are the real modules; the frame encoders below are stand-ins
//! with the agreed `frame` signatures until the wire module provides them.

use bytes::BufMut;

use crate::shared::{Dir, StreamId};
use crate::varint;

pub(crate) use crate::flow::{RecvFlow, SendFlow};
pub(crate) use crate::stream::assembler::Assembler;
pub(crate) use crate::stream::send_buf::SendBuffer;

// Frame encoders (stand-ins for the `frame` module's)

/// Size of a STREAM frame header
pub(crate) fn stream_header_len(
    id: StreamId,
    offset: u64,
    data_len: usize,
    with_len: bool,
) -> usize {
    1 + varint::size(id.0)
        + if offset > 0 { varint::size(offset) } else { 0 }
        + if with_len {
            varint::size(data_len as u64)
        } else {
            0
        }
}

/// Write a STREAM frame header; the data follows
pub(crate) fn encode_stream_header(
    buf: &mut Vec<u8>,
    id: StreamId,
    offset: u64,
    data_len: usize,
    fin: bool,
    with_len: bool,
) {
    let ty = 0x08 | u8::from(offset > 0) << 2 | u8::from(with_len) << 1 | u8::from(fin);
    buf.put_u8(ty);
    varint::write(id.0, buf);
    if offset > 0 {
        varint::write(offset, buf);
    }
    if with_len {
        varint::write(data_len as u64, buf);
    }
}

/// Largest STREAM payload that fits in `space` bytes together with its header
pub(crate) fn stream_max_data_len(
    id: StreamId,
    offset: u64,
    space: usize,
    with_len: bool,
) -> usize {
    let base = stream_header_len(id, offset, 0, false);
    if space <= base {
        return 0;
    }
    let mut n = space - base;
    if with_len {
        // The length field shrinks as the data shrinks; pick the largest that fits.
        while n > 0 && base + varint::size(n as u64) + n > space {
            n -= 1;
        }
    }
    n
}

/// A control frame the stream layer sends
#[derive(Debug, Copy, Clone, Eq, PartialEq)]
pub(crate) enum Control {
    MaxData(u64),
    MaxStreamData(StreamId, u64),
    MaxStreams(Dir, u64),
    ResetStream(StreamId, u64, u64),
    StopSending(StreamId, u64),
    DataBlocked(u64),
    StreamDataBlocked(StreamId, u64),
    StreamsBlocked(Dir, u64),
}

impl Control {
    fn parts(&self) -> (u64, [u64; 3], usize) {
        match *self {
            Self::MaxData(x) => (0x10, [x, 0, 0], 1),
            Self::MaxStreamData(id, x) => (0x11, [id.0, x, 0], 2),
            Self::MaxStreams(d, x) => (0x12 + d as u64, [x, 0, 0], 1),
            Self::ResetStream(id, c, f) => (0x04, [id.0, c, f], 3),
            Self::StopSending(id, c) => (0x05, [id.0, c, 0], 2),
            Self::DataBlocked(x) => (0x14, [x, 0, 0], 1),
            Self::StreamDataBlocked(id, x) => (0x15, [id.0, x, 0], 2),
            Self::StreamsBlocked(d, x) => (0x16 + d as u64, [x, 0, 0], 1),
        }
    }
    pub(crate) fn encoded_len(&self) -> usize {
        let (ty, f, n) = self.parts();
        varint::size(ty) + f[..n].iter().map(|&x| varint::size(x)).sum::<usize>()
    }
    pub(crate) fn encode(&self, buf: &mut Vec<u8>) {
        let (ty, f, n) = self.parts();
        varint::write(ty, buf);
        for &x in &f[..n] {
            varint::write(x, buf);
        }
    }
}

/// Size of a DATAGRAM frame header
pub(crate) fn datagram_header_len(len: usize, with_len: bool) -> usize {
    1 + if with_len {
        varint::size(len as u64)
    } else {
        0
    }
}

/// Write a DATAGRAM frame header; the data follows
pub(crate) fn encode_datagram_header(buf: &mut Vec<u8>, len: usize, with_len: bool) {
    buf.put_u8(if with_len { 0x31 } else { 0x30 });
    if with_len {
        varint::write(len as u64, buf);
    }
}
