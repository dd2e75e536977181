//! The seam to components owned by other modules: reassembly, send buffering, flow control
//! and STREAM/control frame encoding
//!
//! Everything the stream layer needs from outside goes through this one file: reassembly, the
//! send buffer, flow control and the frame encoders.

use crate::frame::Frame;
use crate::shared::{Dir, StreamId};

pub(crate) use crate::flow::{RecvFlow, SendFlow};
pub(crate) use crate::stream::assembler::Assembler;
pub(crate) use crate::stream::send_buf::SendBuffer;

pub(crate) use crate::frame::{
    datagram_header_len, encode_datagram_header, encode_stream_header, stream_header_len,
    stream_max_data_len,
};

/// A control frame the stream layer sends, in a compact `Copy` form kept in queues
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
    fn frame(self) -> Frame<'static> {
        match self {
            Self::MaxData(x) => Frame::MaxData(x),
            Self::MaxStreamData(id, max) => Frame::MaxStreamData { id, max },
            Self::MaxStreams(dir, count) => Frame::MaxStreams { dir, count },
            Self::ResetStream(id, error_code, final_size) => Frame::ResetStream {
                id,
                error_code,
                final_size,
            },
            Self::StopSending(id, error_code) => Frame::StopSending { id, error_code },
            Self::DataBlocked(x) => Frame::DataBlocked(x),
            Self::StreamDataBlocked(id, limit) => Frame::StreamDataBlocked { id, limit },
            Self::StreamsBlocked(dir, limit) => Frame::StreamsBlocked { dir, limit },
        }
    }

    /// Bytes the frame takes on the wire
    pub(crate) fn encoded_len(self) -> usize {
        self.frame().encoded_len()
    }

    /// Append the frame to `buf`
    pub(crate) fn encode(self, buf: &mut Vec<u8>) {
        self.frame().encode(buf)
    }
}
