//! The seam to components owned by other modules: reassembly, send buffering, flow control
//! and STREAM/control frame encoding
//!
//! Everything the stream layer needs from outside goes through this one file, so it can switch
//! from the stand-ins below to the real `stream::assembler`, `stream::send_buf`, `flow` and
//! `frame` encoders by changing only these definitions. The stand-ins keep the agreed
//! signatures and are deliberately simple (correct, not fast).

use std::collections::BTreeMap;
use std::ops::Range;
use std::time::{Duration, Instant};

use bytes::{BufMut, Bytes};

use crate::shared::{Dir, StreamId};
use crate::varint;

/// Receive-side reassembly (stand-in for `stream::assembler::Assembler`)
#[derive(Debug, Default)]
pub(crate) struct Assembler {
    /// Non-overlapping chunks keyed by offset, all at or after `read`
    chunks: BTreeMap<u64, Bytes>,
    read: u64,
    highest: u64,
    buffered: usize,
}

impl Assembler {
    /// Store `data` at `offset`, dropping bytes already held or already read
    pub(crate) fn insert(&mut self, offset: u64, data: &[u8]) {
        let end = offset + data.len() as u64;
        self.highest = self.highest.max(end);
        let mut cur = offset.max(self.read);
        while cur < end {
            // Skip over any chunk covering `cur`.
            if let Some((&o, c)) = self.chunks.range(..=cur).next_back() {
                let ce = o + c.len() as u64;
                if ce > cur {
                    cur = ce;
                    continue;
                }
            }
            // Fill up to the next chunk start.
            let next = self
                .chunks
                .range(cur..)
                .next()
                .map_or(end, |(&o, _)| o.min(end));
            let piece = &data[(cur - offset) as usize..(next - offset) as usize];
            if !piece.is_empty() {
                self.buffered += piece.len();
                self.chunks.insert(cur, Bytes::copy_from_slice(piece));
            }
            cur = next;
        }
    }

    /// Copy contiguous data into `buf`
    pub(crate) fn read(&mut self, buf: &mut [u8]) -> usize {
        let mut n = 0;
        while n < buf.len() {
            match self.read_chunk(buf.len() - n) {
                Some(c) => {
                    buf[n..n + c.len()].copy_from_slice(&c);
                    n += c.len();
                }
                None => break,
            }
        }
        n
    }

    /// Take up to `max` contiguous bytes
    pub(crate) fn read_chunk(&mut self, max: usize) -> Option<Bytes> {
        let mut c = self.chunks.remove(&self.read)?;
        if c.len() > max {
            let rest = c.split_off(max);
            self.chunks.insert(self.read + max as u64, rest);
        }
        self.read += c.len() as u64;
        self.buffered -= c.len();
        Some(c)
    }

    /// Bytes handed to the reader so far
    pub(crate) fn bytes_read(&self) -> u64 {
        self.read
    }

    /// Whether contiguous data is waiting
    pub(crate) fn readable(&self) -> bool {
        self.chunks.contains_key(&self.read)
    }
}

/// Send-side buffer (stand-in for `stream::send_buf::SendBuffer`)
#[derive(Debug, Default)]
pub(crate) struct SendBuffer {
    /// Data not yet acknowledged, starting at `acked_prefix`
    data: std::collections::VecDeque<u8>,
    acked_prefix: u64,
    /// Offset of the next never-sent byte
    unsent: u64,
    offset: u64,
    /// Ranges acknowledged above `acked_prefix`
    acked: BTreeMap<u64, u64>,
    /// Ranges to send again
    retransmits: BTreeMap<u64, u64>,
}

impl SendBuffer {
    /// Append application data
    pub(crate) fn write(&mut self, data: Bytes) {
        self.data.extend(&data[..]);
        self.offset += data.len() as u64;
    }

    /// The next range to put on the wire, retransmissions first
    pub(crate) fn poll_transmit(&mut self, max_len: usize) -> Option<Range<u64>> {
        let max_len = max_len as u64;
        if max_len == 0 {
            return None;
        }
        if let Some((&s, &e)) = self.retransmits.iter().next() {
            self.retransmits.remove(&s);
            let end = e.min(s + max_len);
            if end < e {
                self.retransmits.insert(end, e);
            }
            return Some(s..end);
        }
        if self.unsent < self.offset {
            let s = self.unsent;
            let end = self.offset.min(s + max_len);
            self.unsent = end;
            return Some(s..end);
        }
        None
    }

    /// Bytes of an unacknowledged range (contiguous prefix; may be shorter)
    pub(crate) fn get(&self, range: Range<u64>) -> &[u8] {
        let start = (range.start.max(self.acked_prefix) - self.acked_prefix) as usize;
        let end =
            ((range.end.max(self.acked_prefix) - self.acked_prefix) as usize).min(self.data.len());
        let (a, b) = self.data.as_slices();
        if start >= end {
            &[]
        } else if end <= a.len() {
            &a[start..end]
        } else if start >= a.len() {
            &b[start - a.len()..end - a.len()]
        } else {
            &a[start..]
        }
    }

    /// Mark a range acknowledged
    pub(crate) fn ack(&mut self, range: Range<u64>) {
        if range.end <= self.acked_prefix {
            return;
        }
        let mut s = range.start.max(self.acked_prefix);
        let mut e = range.end;
        // Merge with overlapping acked ranges.
        let overlapping: Vec<(u64, u64)> = self
            .acked
            .range(..=e)
            .filter(|&(_, &ae)| ae >= s)
            .map(|(&a, &b)| (a, b))
            .collect();
        for (a, b) in overlapping {
            self.acked.remove(&a);
            s = s.min(a);
            e = e.max(b);
        }
        self.acked.insert(s, e);
        if let Some((&a, &b)) = self.acked.iter().next() {
            if a <= self.acked_prefix {
                self.acked.remove(&a);
                let n = (b - self.acked_prefix) as usize;
                self.data.drain(..n.min(self.data.len()));
                self.acked_prefix = b;
            }
        }
    }

    /// Queue a lost range for retransmission
    pub(crate) fn retransmit(&mut self, range: Range<u64>) {
        // Only bytes not yet acknowledged need to go again.
        let mut cur = range.start.max(self.acked_prefix);
        while cur < range.end {
            if let Some((_, &ae)) = self
                .acked
                .range(..=cur)
                .next_back()
                .filter(|(_, &ae)| ae > cur)
            {
                cur = ae;
                continue;
            }
            let next = self
                .acked
                .range(cur..)
                .next()
                .map_or(range.end, |(&a, _)| a.min(range.end));
            if cur < next {
                self.retransmits.insert(cur, next);
            }
            cur = next;
        }
    }

    /// Everything written has been acknowledged
    pub(crate) fn is_fully_acked(&self) -> bool {
        self.acked_prefix == self.offset
    }

    /// Bytes written but not yet acknowledged
    pub(crate) fn unacked_len(&self) -> u64 {
        self.offset - self.acked_prefix - self.acked.iter().map(|(a, b)| b - a).sum::<u64>()
    }

    /// Total bytes written
    pub(crate) fn offset(&self) -> u64 {
        self.offset
    }

    /// Whether anything is waiting to be sent
    pub(crate) fn has_unsent(&self) -> bool {
        self.unsent < self.offset || !self.retransmits.is_empty()
    }
}

/// Receive flow control with window auto-tuning (stand-in for `flow::RecvFlow`)
#[derive(Debug)]
pub(crate) struct RecvFlow {
    window: u64,
    max_window: u64,
    max: u64,
    consumed: u64,
    last_update: Option<Instant>,
}

/// The peer sent beyond the limit we advertised
#[derive(Debug, Copy, Clone)]
pub(crate) struct FlowControlExceeded;

impl RecvFlow {
    pub(crate) fn new(initial: u64, max: u64) -> Self {
        Self {
            window: initial,
            max_window: max.max(initial),
            max: initial,
            consumed: 0,
            last_update: None,
        }
    }
    pub(crate) fn on_data(&mut self, end_offset: u64) -> Result<(), FlowControlExceeded> {
        if end_offset > self.max {
            Err(FlowControlExceeded)
        } else {
            Ok(())
        }
    }
    pub(crate) fn on_consumed(&mut self, n: u64) {
        self.consumed += n;
    }
    pub(crate) fn poll_update(&mut self, now: Instant, rtt: Duration) -> Option<u64> {
        // Send an update once half the window is used, so the peer never stalls.
        if self.max - self.consumed > self.window / 2 {
            return None;
        }
        // Auto-tune: a second update within 2 RTTs means the window limits throughput.
        if let Some(t) = self.last_update {
            if now.saturating_duration_since(t) < rtt * 2 {
                self.window = (self.window * 2).min(self.max_window);
            }
        }
        self.last_update = Some(now);
        self.max = self.consumed + self.window;
        Some(self.max)
    }
    pub(crate) fn max(&self) -> u64 {
        self.max
    }
}

/// Send flow control credit (stand-in for `flow::SendFlow`)
#[derive(Debug)]
pub(crate) struct SendFlow {
    max: u64,
    sent: u64,
}

impl SendFlow {
    pub(crate) fn new(max: u64) -> Self {
        Self { max, sent: 0 }
    }
    pub(crate) fn credit(&self) -> u64 {
        self.max.saturating_sub(self.sent)
    }
    pub(crate) fn on_sent(&mut self, n: u64) {
        self.sent += n;
    }
    pub(crate) fn update_max(&mut self, new: u64) -> bool {
        if new > self.max {
            self.max = new;
            true
        } else {
            false
        }
    }
    pub(crate) fn max(&self) -> u64 {
        self.max
    }
}

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
