//! Frame parsing: a borrowing iterator over a decrypted payload

use std::ops::RangeInclusive;

use super::{Ack, Close, EcnCounts, Frame, FrameError, FrameType, NewConnectionId, Stream};
use crate::coding::{take, UnexpectedEnd};
use crate::shared::{ConnectionId, Dir, StreamId};
use crate::varint::{self, VarInt};

/// Iterates over the frames of a decrypted packet payload
///
/// Yields at most one error, after which it ends: a malformed frame leaves no way to find the
/// start of the next one.
#[derive(Debug, Clone)]
pub struct Iter<'a> {
    buf: &'a [u8],
}

impl<'a> Iter<'a> {
    /// Iterate over `payload`
    pub fn new(payload: &'a [u8]) -> Self {
        Self { buf: payload }
    }
}

impl<'a> Iterator for Iter<'a> {
    type Item = Result<Frame<'a>, FrameError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.buf.is_empty() {
            return None;
        }
        let result = parse_frame(&mut self.buf);
        if result.is_err() {
            // Fuse: nothing after a malformed frame can be trusted
            self.buf = &[];
        }
        Some(result)
    }
}

impl std::iter::FusedIterator for Iter<'_> {}

/// Shorthand for the error of a frame of type `ty`
fn err(ty: u64, reason: &'static str) -> FrameError {
    FrameError {
        frame_type: ty,
        reason,
    }
}

/// Reads fields of one frame, tagging every failure with its type
struct Reader<'a, 'b> {
    buf: &'b mut &'a [u8],
    ty: u64,
}

impl<'a> Reader<'a, '_> {
    fn var(&mut self) -> Result<u64, FrameError> {
        varint::read(self.buf).map_err(|UnexpectedEnd| err(self.ty, "truncated varint"))
    }

    fn bytes(&mut self, len: u64) -> Result<&'a [u8], FrameError> {
        let len = usize::try_from(len).map_err(|_| err(self.ty, "length too large"))?;
        take(self.buf, len).map_err(|UnexpectedEnd| err(self.ty, "length beyond end of packet"))
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], FrameError> {
        let bytes = self.bytes(N as u64)?;
        let mut out = [0; N];
        out.copy_from_slice(bytes);
        Ok(out)
    }

    fn rest(&mut self) -> &'a [u8] {
        std::mem::take(self.buf)
    }
}

/// The largest stream count a MAX_STREAMS or STREAMS_BLOCKED frame may carry
const MAX_STREAM_COUNT: u64 = 1 << 60;

fn parse_frame<'a>(buf: &mut &'a [u8]) -> Result<Frame<'a>, FrameError> {
    let before = buf.len();
    let ty = varint::read(buf).map_err(|UnexpectedEnd| err(0, "truncated frame type"))?;
    // RFC 9000 §12.4: types use the shortest encoding; a longer one MAY be rejected, and doing
    // so keeps every frame's byte image canonical
    if before - buf.len() != varint::size(ty) {
        return Err(err(ty, "frame type not minimally encoded"));
    }
    let mut r = Reader { buf, ty };
    let frame = match FrameType(ty) {
        FrameType::PADDING => {
            let zeros = r.buf.iter().take_while(|&&b| b == 0).count();
            *r.buf = r.buf.get(zeros..).unwrap_or_default();
            Frame::Padding(zeros + 1)
        }
        FrameType::PING => Frame::Ping,
        FrameType::ACK | FrameType::ACK_ECN => Frame::Ack(parse_ack(&mut r)?),
        FrameType::RESET_STREAM => Frame::ResetStream {
            id: StreamId(r.var()?),
            error_code: r.var()?,
            final_size: r.var()?,
        },
        FrameType::STOP_SENDING => Frame::StopSending {
            id: StreamId(r.var()?),
            error_code: r.var()?,
        },
        FrameType::CRYPTO => {
            let offset = r.var()?;
            let len = r.var()?;
            check_final_offset(ty, offset, len)?;
            Frame::Crypto {
                offset,
                data: r.bytes(len)?,
            }
        }
        FrameType::NEW_TOKEN => {
            let len = r.var()?;
            // RFC 9000 §19.7: an empty token MUST be treated as FRAME_ENCODING_ERROR
            if len == 0 {
                return Err(err(ty, "empty token"));
            }
            Frame::NewToken {
                token: r.bytes(len)?,
            }
        }
        t if t.is_stream() => {
            let id = StreamId(r.var()?);
            let offset = if ty & 0x04 != 0 { r.var()? } else { 0 };
            let data = if ty & 0x02 != 0 {
                let len = r.var()?;
                r.bytes(len)?
            } else {
                r.rest()
            };
            check_final_offset(ty, offset, data.len() as u64)?;
            Frame::Stream(Stream {
                id,
                offset,
                fin: ty & 0x01 != 0,
                data,
            })
        }
        FrameType::MAX_DATA => Frame::MaxData(r.var()?),
        FrameType::MAX_STREAM_DATA => Frame::MaxStreamData {
            id: StreamId(r.var()?),
            max: r.var()?,
        },
        FrameType::MAX_STREAMS_BIDI | FrameType::MAX_STREAMS_UNI => {
            let count = r.var()?;
            // RFC 9000 §19.11: a count above 2^60 MUST be FRAME_ENCODING_ERROR
            if count > MAX_STREAM_COUNT {
                return Err(err(ty, "stream count above 2^60"));
            }
            Frame::MaxStreams {
                dir: dir_of(ty),
                count,
            }
        }
        FrameType::DATA_BLOCKED => Frame::DataBlocked(r.var()?),
        FrameType::STREAM_DATA_BLOCKED => Frame::StreamDataBlocked {
            id: StreamId(r.var()?),
            limit: r.var()?,
        },
        FrameType::STREAMS_BLOCKED_BIDI | FrameType::STREAMS_BLOCKED_UNI => {
            let limit = r.var()?;
            // RFC 9000 §19.14: a limit above 2^60 MUST be an error
            if limit > MAX_STREAM_COUNT {
                return Err(err(ty, "stream limit above 2^60"));
            }
            Frame::StreamsBlocked {
                dir: dir_of(ty),
                limit,
            }
        }
        FrameType::NEW_CONNECTION_ID => {
            let sequence = r.var()?;
            let retire_prior_to = r.var()?;
            // RFC 9000 §19.15: Retire Prior To above Sequence Number MUST be FRAME_ENCODING_ERROR
            if retire_prior_to > sequence {
                return Err(err(ty, "retire_prior_to above sequence number"));
            }
            let [len] = r.array::<1>()?;
            // RFC 9000 §19.15: a length outside 1..=20 MUST be FRAME_ENCODING_ERROR
            if len == 0 || usize::from(len) > ConnectionId::MAX_LEN {
                return Err(err(ty, "connection ID length outside 1..=20"));
            }
            let id = ConnectionId::new(r.bytes(len.into())?)
                .ok_or_else(|| err(ty, "connection ID too long"))?;
            Frame::NewConnectionId(NewConnectionId {
                sequence,
                retire_prior_to,
                id,
                reset_token: r.array()?,
            })
        }
        FrameType::RETIRE_CONNECTION_ID => Frame::RetireConnectionId { sequence: r.var()? },
        FrameType::PATH_CHALLENGE => Frame::PathChallenge(r.array()?),
        FrameType::PATH_RESPONSE => Frame::PathResponse(r.array()?),
        FrameType::CONNECTION_CLOSE | FrameType::APPLICATION_CLOSE => {
            let application = ty == FrameType::APPLICATION_CLOSE.0;
            let error_code = r.var()?;
            let frame_type = if application { 0 } else { r.var()? };
            let len = r.var()?;
            Frame::Close(Close {
                application,
                error_code,
                frame_type,
                reason: r.bytes(len)?,
            })
        }
        FrameType::HANDSHAKE_DONE => Frame::HandshakeDone,
        FrameType::DATAGRAM => Frame::Datagram { data: r.rest() },
        FrameType::DATAGRAM_LEN => {
            let len = r.var()?;
            Frame::Datagram {
                data: r.bytes(len)?,
            }
        }
        _ => return Err(err(ty, "unknown frame type")),
    };
    Ok(frame)
}

fn dir_of(ty: u64) -> Dir {
    if ty & 1 == 0 {
        Dir::Bi
    } else {
        Dir::Uni
    }
}

/// RFC 9000 §19.6, §19.8: offset + length above 2^62-1 MUST be an error
fn check_final_offset(ty: u64, offset: u64, len: u64) -> Result<(), FrameError> {
    match offset.checked_add(len) {
        Some(end) if end <= VarInt::MAX.into_inner() => Ok(()),
        _ => Err(err(ty, "data ends beyond 2^62-1")),
    }
}

fn parse_ack<'a>(r: &mut Reader<'a, '_>) -> Result<Ack<'a>, FrameError> {
    let largest = r.var()?;
    let delay = r.var()?;
    let range_count = r.var()?;
    let first_range = r.var()?;
    // RFC 9000 §19.3.1: a range reaching below packet number 0 MUST be FRAME_ENCODING_ERROR
    let mut smallest = largest
        .checked_sub(first_range)
        .ok_or_else(|| err(r.ty, "first ACK range below 0"))?;
    let start: &'a [u8] = r.buf;
    // Each pair takes at least two bytes, so a huge range_count fails on the input length
    // instead of looping for long
    for _ in 0..range_count {
        let gap = r.var()?;
        let len = r.var()?;
        smallest = next_range(smallest, gap, len)
            .ok_or_else(|| err(r.ty, "ACK range below 0"))?
            .0;
    }
    let used = start.len() - r.buf.len();
    let additional = start.get(..used).unwrap_or_default();
    let ecn = if r.ty == FrameType::ACK_ECN.0 {
        Some(EcnCounts {
            ect0: r.var()?,
            ect1: r.var()?,
            ce: r.var()?,
        })
    } else {
        None
    };
    Ok(Ack {
        largest,
        delay,
        first_range,
        range_count,
        additional,
        ecn,
    })
}

/// Given the smallest packet number of the previous range and a (gap, length) pair, the
/// (smallest, largest) of the next range; `None` when it would reach below 0
fn next_range(prev_smallest: u64, gap: u64, len: u64) -> Option<(u64, u64)> {
    // RFC 9000 §19.3.1: largest = previous smallest - gap - 2; smallest = largest - length
    let largest = prev_smallest.checked_sub(gap)?.checked_sub(2)?;
    let smallest = largest.checked_sub(len)?;
    Some((smallest, largest))
}

/// The acknowledged ranges of an [`Ack`], largest first
#[derive(Debug, Clone)]
pub struct AckIter<'a> {
    /// Range to yield next, if any
    next: Option<RangeInclusive<u64>>,
    /// Undecoded (gap, length) pairs
    rest: &'a [u8],
    /// Pairs left to decode
    left: u64,
}

impl Iterator for AckIter<'_> {
    type Item = RangeInclusive<u64>;

    fn next(&mut self) -> Option<Self::Item> {
        let current = self.next.take()?;
        if self.left > 0 {
            self.left -= 1;
            // The parser already validated these bytes; a hand-built Ack that does not parse
            // just ends the iteration early
            let pair = varint::read(&mut self.rest)
                .and_then(|gap| Ok((gap, varint::read(&mut self.rest)?)))
                .ok();
            self.next = pair
                .and_then(|(gap, len)| next_range(*current.start(), gap, len))
                .map(|(lo, hi)| lo..=hi);
        }
        Some(current)
    }
}

impl<'a> Ack<'a> {
    /// The ACK Delay in microseconds, given the sender's ack_delay_exponent (RFC 9000 §19.3)
    pub fn delay_micros(&self, ack_delay_exponent: u64) -> u64 {
        let shift = u32::try_from(ack_delay_exponent).unwrap_or(u32::MAX);
        self.delay
            .checked_shl(shift)
            .filter(|v| v >> shift == self.delay)
            .unwrap_or(u64::MAX)
    }

    /// The acknowledged packet number ranges, largest first
    pub fn iter(&self) -> AckIter<'a> {
        AckIter {
            next: self
                .largest
                .checked_sub(self.first_range)
                .map(|lo| lo..=self.largest),
            rest: self.additional,
            left: self.range_count,
        }
    }
}

impl<'a> IntoIterator for &Ack<'a> {
    type Item = RangeInclusive<u64>;
    type IntoIter = AckIter<'a>;
    fn into_iter(self) -> AckIter<'a> {
        self.iter()
    }
}
