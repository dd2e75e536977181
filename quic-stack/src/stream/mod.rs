//! Streams (RFC 9000 §2-§4): stream IDs and limits, send/receive state machines, flow control
//!
//! [`StreamsState`] is the whole stream layer of one connection. It is sans-IO: the connection
//! feeds it frames from the peer (`on_*`), the application drives it (`open`, `write`, `read`,
//! ...), and the packet builder pulls frames out with [`StreamsState::write_frames`], later
//! reporting each packet's fate with `on_acked`/`on_lost`. Rules a caller can rely on:
//! - no method panics on peer input; violations come back as a `TransportError`;
//! - `write` never buffers beyond the peer's stream and connection credit, so everything
//!   buffered can always be sent;
//! - stream state is freed once both halves are done, and peer streams freed this way return
//!   MAX_STREAMS credit.

pub mod assembler;
pub(crate) mod deps;
pub mod send_buf;
mod state;

pub use state::StreamsState;

use crate::shared::{Dir, StreamId};

/// Our local stream limits and windows
#[derive(Debug, Clone)]
pub struct StreamsConfig {
    /// Bidirectional streams the peer may have open at once
    pub max_concurrent_bidi: u64,
    /// Unidirectional streams the peer may have open at once
    pub max_concurrent_uni: u64,
    /// Initial per-stream receive window
    pub stream_receive_window: u64,
    /// Largest per-stream receive window auto-tuning may grow to
    pub max_stream_receive_window: u64,
    /// Initial connection receive window
    pub receive_window: u64,
    /// Largest connection receive window auto-tuning may grow to
    pub max_receive_window: u64,
    /// Most bytes buffered unacknowledged per connection
    pub send_window: u64,
}

impl Default for StreamsConfig {
    fn default() -> Self {
        Self {
            max_concurrent_bidi: 100,
            max_concurrent_uni: 100,
            stream_receive_window: 256 * 1024,
            max_stream_receive_window: 16 * 1024 * 1024,
            receive_window: 1024 * 1024,
            max_receive_window: 64 * 1024 * 1024,
            send_window: 8 * 1024 * 1024,
        }
    }
}

/// The stream-related transport parameters the peer sent (RFC 9000 §18.2)
#[derive(Debug, Clone, Copy, Default, Eq, PartialEq)]
pub struct PeerStreamParams {
    /// initial_max_data
    pub initial_max_data: u64,
    /// initial_max_stream_data_bidi_local: for bidi streams the peer opens
    pub initial_max_stream_data_bidi_local: u64,
    /// initial_max_stream_data_bidi_remote: for bidi streams we open
    pub initial_max_stream_data_bidi_remote: u64,
    /// initial_max_stream_data_uni: for uni streams we open
    pub initial_max_stream_data_uni: u64,
    /// initial_max_streams_bidi
    pub initial_max_streams_bidi: u64,
    /// initial_max_streams_uni
    pub initial_max_streams_uni: u64,
}

/// Outcome of a successful read
#[derive(Debug, Clone, Copy, Eq, PartialEq)]
pub struct ReadResult {
    /// Bytes copied into the caller's buffer
    pub len: usize,
    /// The stream's data has been read in full
    pub fin: bool,
}

/// Something the application may want to act on
#[derive(Debug, Clone, Copy, Eq, PartialEq)]
pub enum StreamEvent {
    /// The peer opened one or more streams; see `accept`
    Opened {
        /// Direction of the new streams
        dir: Dir,
    },
    /// Data (or FIN, or a reset) is waiting to be read
    Readable {
        /// The stream
        id: StreamId,
    },
    /// A write that was blocked can make progress
    Writable {
        /// The stream
        id: StreamId,
    },
    /// All our data, FIN included, was acknowledged
    Finished {
        /// The stream
        id: StreamId,
    },
    /// The peer asked us to stop sending (STOP_SENDING)
    Stopped {
        /// The stream
        id: StreamId,
        /// The peer's application error code
        error_code: u64,
    },
    /// The peer raised MAX_STREAMS: `open` may succeed again
    Available {
        /// Direction that gained credit
        dir: Dir,
    },
}

/// Why a write failed
#[derive(Debug, Clone, Copy, Eq, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum WriteError {
    /// No flow-control credit or send buffer space; wait for `Writable`
    #[error("blocked by flow control")]
    Blocked,
    /// The peer sent STOP_SENDING with this code
    #[error("stopped by peer: code {0}")]
    Stopped(u64),
    /// The stream does not exist, or its send half is finished or reset
    #[error("closed stream")]
    ClosedStream,
}

/// Why a read failed
#[derive(Debug, Clone, Copy, Eq, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum ReadError {
    /// The peer reset the stream with this code
    #[error("reset by peer: code {code}, final size {final_size}")]
    Reset {
        /// The application error code of RESET_STREAM
        code: u64,
        /// The stream's final size (RFC 9000 §4.5)
        final_size: u64,
    },
    /// The stream does not exist, or its receive half is done
    #[error("closed stream")]
    ClosedStream,
}

/// The stream does not exist or that half of it is already closed
#[derive(Debug, Clone, Copy, Eq, PartialEq, thiserror::Error)]
#[error("closed stream")]
pub struct ClosedStream;

/// One STREAM frame's worth of data in a packet
#[derive(Debug, Clone, Eq, PartialEq)]
pub(crate) struct StreamChunk {
    pub(crate) id: StreamId,
    pub(crate) offsets: std::ops::Range<u64>,
    pub(crate) fin: bool,
}

/// A stream-scoped control frame in a packet
#[derive(Debug, Clone, Copy, Eq, PartialEq)]
pub(crate) enum StreamControl {
    MaxStreamData(StreamId, u64),
    Reset(StreamId),
    StopSending(StreamId),
    StreamDataBlocked(StreamId, u64),
}

/// What one packet carried for the stream layer, handed back on ack or loss
///
/// Cheap to build: the common one or two STREAM frames are stored inline; only packets with
/// more frames (or per-stream control frames) touch the heap.
#[derive(Debug, Clone, Default)]
pub struct SentFrames {
    inline: [Option<StreamChunk>; 2],
    spill: Vec<StreamChunk>,
    control: Vec<StreamControl>,
    max_data: Option<u64>,
    max_streams: [Option<u64>; 2],
    data_blocked: Option<u64>,
    streams_blocked: [Option<u64>; 2],
}

impl SentFrames {
    /// Nothing from the stream layer was sent
    pub fn is_empty(&self) -> bool {
        self.inline[0].is_none()
            && self.spill.is_empty()
            && self.control.is_empty()
            && self.max_data.is_none()
            && self.max_streams.iter().all(Option::is_none)
            && self.data_blocked.is_none()
            && self.streams_blocked.iter().all(Option::is_none)
    }

    /// Whether the packet should be acknowledged promptly (it carries more than nothing)
    pub fn is_ack_eliciting(&self) -> bool {
        !self.is_empty()
    }

    fn push_chunk(&mut self, c: StreamChunk) {
        for slot in self.inline.iter_mut() {
            if slot.is_none() {
                *slot = Some(c);
                return;
            }
        }
        self.spill.push(c);
    }

    fn chunks(&self) -> impl Iterator<Item = &StreamChunk> {
        self.inline.iter().flatten().chain(self.spill.iter())
    }

    fn take_chunks(&mut self) -> impl Iterator<Item = StreamChunk> {
        let [a, b] = std::mem::take(&mut self.inline);
        a.into_iter()
            .chain(b)
            .chain(std::mem::take(&mut self.spill))
    }
}
