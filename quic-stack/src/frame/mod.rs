//! QUIC frames (RFC 9000 §19) and DATAGRAM (RFC 9221 §4)
//!
//! [`Iter`] walks a decrypted packet payload and yields [`Frame`]s that borrow from it: STREAM,
//! CRYPTO and DATAGRAM data are never copied here. Malformed input yields a [`FrameError`] and
//! ends the iteration; nothing here panics on any input. Encoders write at the end of a
//! `BufMut` and have a matching `*_len` function so the packet builder can check room first.
//! The hot-path helpers ([`encode_ack`], [`encode_stream_header`], [`encode_crypto_header`],
//! [`encode_datagram_header`]) write frame headers straight into the packet buffer without
//! building a [`Frame`].

mod decode;
mod encode;
#[cfg(test)]
mod tests;

pub use decode::{AckIter, Iter};
pub use encode::{
    ack_encoded_len, crypto_header_len, crypto_max_data_len, datagram_header_len, encode_ack,
    encode_crypto_header, encode_datagram_header, encode_stream_header, stream_header_len,
    stream_max_data_len,
};

use crate::error::TransportError;
use crate::packet::PacketType;
use crate::shared::{ConnectionId, Dir, StreamId};

/// Frame type codes
#[derive(Copy, Clone, Eq, PartialEq, Hash, Debug)]
pub struct FrameType(pub u64);

#[allow(missing_docs)]
impl FrameType {
    pub const PADDING: Self = Self(0x00);
    pub const PING: Self = Self(0x01);
    pub const ACK: Self = Self(0x02);
    pub const ACK_ECN: Self = Self(0x03);
    pub const RESET_STREAM: Self = Self(0x04);
    pub const STOP_SENDING: Self = Self(0x05);
    pub const CRYPTO: Self = Self(0x06);
    pub const NEW_TOKEN: Self = Self(0x07);
    /// 0x08..=0x0f: the low three bits are OFF, LEN, FIN
    pub const STREAM: Self = Self(0x08);
    pub const MAX_DATA: Self = Self(0x10);
    pub const MAX_STREAM_DATA: Self = Self(0x11);
    pub const MAX_STREAMS_BIDI: Self = Self(0x12);
    pub const MAX_STREAMS_UNI: Self = Self(0x13);
    pub const DATA_BLOCKED: Self = Self(0x14);
    pub const STREAM_DATA_BLOCKED: Self = Self(0x15);
    pub const STREAMS_BLOCKED_BIDI: Self = Self(0x16);
    pub const STREAMS_BLOCKED_UNI: Self = Self(0x17);
    pub const NEW_CONNECTION_ID: Self = Self(0x18);
    pub const RETIRE_CONNECTION_ID: Self = Self(0x19);
    pub const PATH_CHALLENGE: Self = Self(0x1a);
    pub const PATH_RESPONSE: Self = Self(0x1b);
    pub const CONNECTION_CLOSE: Self = Self(0x1c);
    pub const APPLICATION_CLOSE: Self = Self(0x1d);
    pub const HANDSHAKE_DONE: Self = Self(0x1e);
    /// DATAGRAM without a length field (RFC 9221)
    pub const DATAGRAM: Self = Self(0x30);
    /// DATAGRAM with a length field
    pub const DATAGRAM_LEN: Self = Self(0x31);
}

/// ECN counts carried by ACK_ECN
#[derive(Debug, Copy, Clone, Default, Eq, PartialEq)]
pub struct EcnCounts {
    #[allow(missing_docs)]
    pub ect0: u64,
    #[allow(missing_docs)]
    pub ect1: u64,
    #[allow(missing_docs)]
    pub ce: u64,
}

/// An ACK frame as received: ranges stay encoded until iterated
#[derive(Debug, Clone, Eq, PartialEq)]
pub struct Ack<'a> {
    /// Largest acknowledged packet number
    pub largest: u64,
    /// ACK Delay field, still scaled by the peer's ack_delay_exponent
    pub delay: u64,
    /// First ACK Range (count of packets below `largest` also acknowledged)
    pub first_range: u64,
    /// Number of (gap, range) pairs in `additional`
    pub range_count: u64,
    /// The encoded (gap, range) pairs, already checked to parse and stay above packet number 0
    pub additional: &'a [u8],
    /// Present for ACK_ECN
    pub ecn: Option<EcnCounts>,
}

/// A STREAM frame
#[derive(Debug, Clone, Eq, PartialEq)]
pub struct Stream<'a> {
    #[allow(missing_docs)]
    pub id: StreamId,
    #[allow(missing_docs)]
    pub offset: u64,
    #[allow(missing_docs)]
    pub fin: bool,
    #[allow(missing_docs)]
    pub data: &'a [u8],
}

/// A CONNECTION_CLOSE frame of either kind
#[derive(Debug, Clone, Eq, PartialEq)]
pub struct Close<'a> {
    /// True for 0x1d (application close)
    pub application: bool,
    /// Transport or application error code
    pub error_code: u64,
    /// Offending frame type (transport close only; 0 when unknown)
    pub frame_type: u64,
    /// Reason phrase bytes (should be UTF-8, not guaranteed)
    pub reason: &'a [u8],
}

/// A NEW_CONNECTION_ID frame
#[derive(Debug, Clone, Eq, PartialEq)]
pub struct NewConnectionId {
    #[allow(missing_docs)]
    pub sequence: u64,
    #[allow(missing_docs)]
    pub retire_prior_to: u64,
    #[allow(missing_docs)]
    pub id: ConnectionId,
    #[allow(missing_docs)]
    pub reset_token: [u8; 16],
}

/// One decoded frame, borrowing from the packet payload
#[derive(Debug, Clone, Eq, PartialEq)]
#[allow(missing_docs)]
pub enum Frame<'a> {
    /// One or more consecutive PADDING bytes folded together
    Padding(usize),
    Ping,
    Ack(Ack<'a>),
    ResetStream {
        id: StreamId,
        error_code: u64,
        final_size: u64,
    },
    StopSending {
        id: StreamId,
        error_code: u64,
    },
    Crypto {
        offset: u64,
        data: &'a [u8],
    },
    NewToken {
        token: &'a [u8],
    },
    Stream(Stream<'a>),
    MaxData(u64),
    MaxStreamData {
        id: StreamId,
        max: u64,
    },
    MaxStreams {
        dir: Dir,
        count: u64,
    },
    DataBlocked(u64),
    StreamDataBlocked {
        id: StreamId,
        limit: u64,
    },
    StreamsBlocked {
        dir: Dir,
        limit: u64,
    },
    NewConnectionId(NewConnectionId),
    RetireConnectionId {
        sequence: u64,
    },
    PathChallenge([u8; 8]),
    PathResponse([u8; 8]),
    Close(Close<'a>),
    HandshakeDone,
    Datagram {
        data: &'a [u8],
    },
}

/// Why a payload failed to parse; becomes FRAME_ENCODING_ERROR with `frame_type`
#[derive(Debug, Copy, Clone, Eq, PartialEq, thiserror::Error)]
#[error("malformed frame of type {frame_type:#x}: {reason}")]
pub struct FrameError {
    /// Type of the frame that failed (0 when the type itself did not parse)
    pub frame_type: u64,
    /// What was wrong
    pub reason: &'static str,
}

impl From<FrameError> for TransportError {
    fn from(e: FrameError) -> Self {
        // RFC 9000 §12.4: unknown types and malformed frames are both FRAME_ENCODING_ERROR
        Self::FRAME_ENCODING_ERROR(e.reason).with_frame(e.frame_type)
    }
}

impl FrameType {
    /// True for STREAM types 0x08..=0x0f
    pub fn is_stream(self) -> bool {
        self.0 & !0x07 == 0x08
    }

    /// Whether receiving this frame type obliges the peer to acknowledge (RFC 9002 §2)
    pub fn is_ack_eliciting(self) -> bool {
        !matches!(
            self,
            Self::PADDING
                | Self::ACK
                | Self::ACK_ECN
                | Self::CONNECTION_CLOSE
                | Self::APPLICATION_CLOSE
        )
    }

    /// Whether this frame type may appear in a packet of type `ty` (RFC 9000 §12.4, Table 3;
    /// RFC 9221 §4 for DATAGRAM). Unknown types are allowed nowhere.
    pub fn allowed_in(self, ty: PacketType) -> bool {
        // Bit set of the packet types each frame may appear in
        const I: u8 = 1;
        const H: u8 = 2;
        const Z: u8 = 4;
        const O: u8 = 8;
        let mask = match self {
            Self::PADDING | Self::PING => I | H | Z | O,
            Self::ACK | Self::ACK_ECN | Self::CRYPTO => I | H | O,
            Self::CONNECTION_CLOSE => I | H | Z | O,
            Self::NEW_TOKEN | Self::PATH_RESPONSE | Self::HANDSHAKE_DONE => O,
            Self::RETIRE_CONNECTION_ID => O,
            Self::RESET_STREAM
            | Self::STOP_SENDING
            | Self::MAX_DATA
            | Self::MAX_STREAM_DATA
            | Self::MAX_STREAMS_BIDI
            | Self::MAX_STREAMS_UNI
            | Self::DATA_BLOCKED
            | Self::STREAM_DATA_BLOCKED
            | Self::STREAMS_BLOCKED_BIDI
            | Self::STREAMS_BLOCKED_UNI
            | Self::NEW_CONNECTION_ID
            | Self::PATH_CHALLENGE
            | Self::APPLICATION_CLOSE
            | Self::DATAGRAM
            | Self::DATAGRAM_LEN => Z | O,
            t if t.is_stream() => Z | O,
            _ => 0,
        };
        let bit = match ty {
            PacketType::Initial => I,
            PacketType::Handshake => H,
            PacketType::ZeroRtt => Z,
            PacketType::OneRtt => O,
            PacketType::Retry => 0,
        };
        mask & bit != 0
    }
}

impl Frame<'_> {
    /// The type this frame has on the wire when written by [`Frame::encode`]
    pub fn ty(&self) -> FrameType {
        match self {
            Self::Padding(_) => FrameType::PADDING,
            Self::Ping => FrameType::PING,
            Self::Ack(ack) => {
                if ack.ecn.is_some() {
                    FrameType::ACK_ECN
                } else {
                    FrameType::ACK
                }
            }
            Self::ResetStream { .. } => FrameType::RESET_STREAM,
            Self::StopSending { .. } => FrameType::STOP_SENDING,
            Self::Crypto { .. } => FrameType::CRYPTO,
            Self::NewToken { .. } => FrameType::NEW_TOKEN,
            Self::Stream(s) => FrameType(encode::stream_type(s.offset, s.fin, true)),
            Self::MaxData(_) => FrameType::MAX_DATA,
            Self::MaxStreamData { .. } => FrameType::MAX_STREAM_DATA,
            Self::MaxStreams { dir: Dir::Bi, .. } => FrameType::MAX_STREAMS_BIDI,
            Self::MaxStreams { dir: Dir::Uni, .. } => FrameType::MAX_STREAMS_UNI,
            Self::DataBlocked(_) => FrameType::DATA_BLOCKED,
            Self::StreamDataBlocked { .. } => FrameType::STREAM_DATA_BLOCKED,
            Self::StreamsBlocked { dir: Dir::Bi, .. } => FrameType::STREAMS_BLOCKED_BIDI,
            Self::StreamsBlocked { dir: Dir::Uni, .. } => FrameType::STREAMS_BLOCKED_UNI,
            Self::NewConnectionId(_) => FrameType::NEW_CONNECTION_ID,
            Self::RetireConnectionId { .. } => FrameType::RETIRE_CONNECTION_ID,
            Self::PathChallenge(_) => FrameType::PATH_CHALLENGE,
            Self::PathResponse(_) => FrameType::PATH_RESPONSE,
            Self::Close(c) => {
                if c.application {
                    FrameType::APPLICATION_CLOSE
                } else {
                    FrameType::CONNECTION_CLOSE
                }
            }
            Self::HandshakeDone => FrameType::HANDSHAKE_DONE,
            Self::Datagram { .. } => FrameType::DATAGRAM_LEN,
        }
    }

    /// Whether this frame obliges the peer to acknowledge the packet (RFC 9002 §2)
    pub fn is_ack_eliciting(&self) -> bool {
        self.ty().is_ack_eliciting()
    }
}
