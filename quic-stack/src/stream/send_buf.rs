//! Send-side stream buffer: unsent, in flight, acknowledged, retransmit
//!
//! Rules a caller can rely on:
//! - bytes are numbered by stream offset from 0; [`SendBuffer::offset`] is the total written;
//! - [`SendBuffer::poll_transmit`] hands out lost ranges first (lowest offset first), then
//!   never-sent data, and never a range beyond what was written;
//! - written bytes are copied once into a ring buffer that keeps its capacity (bounded by
//!   flow control) until the stream is freed, so steady writes allocate nothing;
//! - bytes are dropped as the acknowledged prefix grows; bytes above it stay available to
//!   [`SendBuffer::get`] until acknowledged;
//! - acks and loss reports may name any range (peer-derived, duplicated, out of order): parts
//!   already acknowledged or never sent are ignored.

use std::collections::VecDeque;
use std::ops::Range;

use crate::range_set::RangeSet;

/// Outgoing stream data awaiting transmission and acknowledgement
#[derive(Debug, Default, Clone)]
pub struct SendBuffer {
    /// Written data not yet freed: offsets `acked_prefix..offset`
    data: VecDeque<u8>,
    /// Total bytes written
    offset: u64,
    /// First byte never transmitted
    unsent: u64,
    /// Every byte below this is acknowledged
    acked_prefix: u64,
    /// Acknowledged ranges above `acked_prefix`
    acked: RangeSet,
    /// Lost ranges awaiting retransmission (never acknowledged parts)
    retransmits: RangeSet,
}

impl SendBuffer {
    /// An empty buffer at offset 0
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends data at the current offset
    pub fn write(&mut self, data: &[u8]) {
        self.data.extend(data);
        self.offset += data.len() as u64;
    }

    /// The next range to send, at most `max_len` bytes: a lost range if any, else unsent data
    pub fn poll_transmit(&mut self, max_len: usize) -> Option<Range<u64>> {
        if max_len == 0 {
            return None;
        }
        let max_len = max_len as u64;
        if let Some(lost) = self.retransmits.iter().next() {
            // RFC 9000 §13.3: lost STREAM data is sent again; lowest offset first keeps the
            // peer's reassembly buffer small.
            let r = lost.start..lost.end.min(lost.start.saturating_add(max_len));
            self.retransmits.remove(r.clone());
            return Some(r);
        }
        if self.unsent < self.offset {
            let r = self.unsent..self.offset.min(self.unsent.saturating_add(max_len));
            self.unsent = r.end;
            return Some(r);
        }
        None
    }

    /// The bytes starting at `range.start`, up to `range.end`
    ///
    /// The slice may end early (where the ring buffer wraps), so callers loop, advancing
    /// `range.start` by the returned length. Bytes already acknowledged and freed, or never
    /// written, yield an empty slice.
    pub fn get(&self, range: Range<u64>) -> &[u8] {
        if range.start >= range.end || range.start < self.acked_prefix {
            return &[];
        }
        let from = range.start - self.acked_prefix;
        if from >= self.data.len() as u64 {
            return &[];
        }
        let len = (range.end - range.start).min(self.data.len() as u64 - from) as usize;
        let from = from as usize;
        let (a, b) = self.data.as_slices();
        if from < a.len() {
            &a[from..(from + len).min(a.len())]
        } else {
            let from = from - a.len();
            &b[from..from + len]
        }
    }

    /// The peer acknowledged `range`
    pub fn ack(&mut self, range: Range<u64>) {
        // Only data we have sent can be acknowledged.
        let range = range.start.max(self.acked_prefix)..range.end.min(self.unsent);
        if range.start >= range.end {
            return;
        }
        self.retransmits.remove(range.clone());
        self.acked.insert(range);
        let old_prefix = self.acked_prefix;
        while self.acked.min() == Some(self.acked_prefix) {
            if let Some(r) = self.acked.pop_min() {
                self.acked_prefix = r.end;
            }
        }
        // Free what the prefix covers.
        let freed = (self.acked_prefix - old_prefix) as usize;
        self.data.drain(..freed.min(self.data.len()));
    }

    /// The packet carrying `range` was lost: queue the unacknowledged parts again
    pub fn retransmit(&mut self, range: Range<u64>) {
        let range = range.start.max(self.acked_prefix)..range.end.min(self.unsent);
        if range.start >= range.end {
            return;
        }
        // Insert the gaps between acknowledged ranges.
        let mut cursor = range.start;
        for acked in self.acked.iter_within(range.clone()) {
            if acked.start > cursor {
                self.retransmits.insert(cursor..acked.start);
            }
            cursor = acked.end;
        }
        if cursor < range.end {
            self.retransmits.insert(cursor..range.end);
        }
    }

    /// True when everything written has been acknowledged
    pub fn is_fully_acked(&self) -> bool {
        self.acked_prefix == self.offset
    }

    /// Bytes written but not yet acknowledged in order (including acked bytes above a gap)
    pub fn unacked_len(&self) -> u64 {
        self.offset - self.acked_prefix
    }

    /// Total bytes written (the offset the next write starts at)
    pub fn offset(&self) -> u64 {
        self.offset
    }

    /// True if [`Self::poll_transmit`] has something to send: new data or lost data
    pub fn has_unsent(&self) -> bool {
        self.unsent < self.offset || !self.retransmits.is_empty()
    }

    /// True if lost data awaits retransmission
    pub fn has_retransmits(&self) -> bool {
        !self.retransmits.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stream::assembler::Assembler;
    use proptest::prelude::*;

    fn collect(b: &SendBuffer, r: Range<u64>) -> Vec<u8> {
        let mut out = vec![];
        let mut start = r.start;
        while start < r.end {
            let s = b.get(start..r.end);
            assert!(!s.is_empty());
            out.extend_from_slice(s);
            start += s.len() as u64;
        }
        out
    }

    #[test]
    fn send_ack_free() {
        let mut b = SendBuffer::new();
        b.write(b"hello ");
        b.write(b"world");
        assert_eq!(b.offset(), 11);
        assert!(b.has_unsent());
        assert_eq!(b.poll_transmit(4), Some(0..4));
        assert_eq!(b.poll_transmit(100), Some(4..11));
        assert_eq!(b.poll_transmit(100), None);
        assert!(!b.has_unsent());
        assert_eq!(b.get(4..11), b"o world");
        assert_eq!(collect(&b, 4..11), b"o world");
        b.ack(4..11);
        assert_eq!(b.unacked_len(), 11);
        b.ack(0..2);
        assert_eq!(b.unacked_len(), 9);
        assert_eq!(b.get(0..2), b"");
        assert_eq!(b.get(2..4), b"ll");
        b.ack(2..4);
        assert!(b.is_fully_acked());
        assert!(b.data.is_empty());
    }

    #[test]
    fn retransmit_skips_acked() {
        let mut b = SendBuffer::new();
        b.write(&[7u8; 100]);
        assert_eq!(b.poll_transmit(100), Some(0..100));
        b.ack(20..30);
        b.ack(50..60);
        b.retransmit(0..100);
        // Unsent data is not queued by a loss report.
        b.retransmit(100..200);
        assert_eq!(b.poll_transmit(15), Some(0..15));
        assert_eq!(b.poll_transmit(15), Some(15..20));
        assert_eq!(b.poll_transmit(100), Some(30..50));
        b.ack(70..80);
        assert_eq!(b.poll_transmit(100), Some(60..70));
        assert_eq!(b.poll_transmit(100), Some(80..100));
        assert_eq!(b.poll_transmit(100), None);
        // Lost data goes before new data.
        b.write(&[8u8; 10]);
        b.retransmit(0..5);
        assert_eq!(b.poll_transmit(100), Some(0..5));
        assert_eq!(b.poll_transmit(100), Some(100..110));
        assert_eq!(b.get(105..200), &[8u8; 5]);
        assert_eq!(b.get(200..300), b"");
        b.retransmit(0..10);
        assert_eq!(b.poll_transmit(usize::MAX), Some(0..10));
        assert_eq!(b.poll_transmit(usize::MAX), None);
        b.ack(0..u64::MAX);
        assert!(b.is_fully_acked());
    }

    #[derive(Debug, Clone)]
    enum Op {
        Write(usize),
        Transmit(usize),
        Ack(usize),
        Lose(usize),
        Duplicate(usize),
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            (1usize..60).prop_map(Op::Write),
            (1usize..50).prop_map(Op::Transmit),
            any::<usize>().prop_map(Op::Ack),
            any::<usize>().prop_map(Op::Lose),
            any::<usize>().prop_map(Op::Duplicate),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]
        #[test]
        fn delivers_everything_exactly(ops in prop::collection::vec(op(), 1..100)) {
            let mut b = SendBuffer::new();
            let mut written: Vec<u8> = vec![];
            let mut in_flight: Vec<(Range<u64>, Vec<u8>)> = vec![];
            let mut acked: Vec<Range<u64>> = vec![];
            let mut rx = Assembler::new();
            let transmit = |b: &mut SendBuffer, n: usize,
                            in_flight: &mut Vec<(Range<u64>, Vec<u8>)>,
                            written: &[u8]| -> bool {
                let Some(r) = b.poll_transmit(n) else { return false };
                assert!(r.end - r.start <= n as u64 && r.end <= b.offset());
                let data = collect(b, r.clone());
                assert_eq!(&data[..], &written[r.start as usize..r.end as usize]);
                in_flight.push((r, data));
                true
            };
            for op in ops {
                match op {
                    Op::Write(n) => {
                        let data: Vec<u8> =
                            (written.len()..written.len() + n).map(|i| (i * 7 % 251) as u8).collect();
                        written.extend_from_slice(&data);
                        b.write(&data);
                    }
                    Op::Transmit(n) => { transmit(&mut b, n, &mut in_flight, &written); }
                    Op::Ack(i) if !in_flight.is_empty() => {
                        let (r, data) = in_flight.swap_remove(i % in_flight.len());
                        rx.insert(r.start, &data);
                        b.ack(r.clone());
                        acked.push(r);
                    }
                    Op::Lose(i) if !in_flight.is_empty() => {
                        let (r, _) = in_flight.swap_remove(i % in_flight.len());
                        b.retransmit(r);
                    }
                    Op::Duplicate(i) if !acked.is_empty() => {
                        // Duplicate acks and spurious loss reports of acked data do nothing.
                        let r = acked[i % acked.len()].clone();
                        let before = b.unacked_len();
                        b.ack(r.clone());
                        b.retransmit(r);
                        prop_assert_eq!(before, b.unacked_len());
                    }
                    _ => {}
                }
                prop_assert_eq!(b.offset(), written.len() as u64);
            }
            // Drain: everything in flight is lost, then send and ack until done.
            for (r, _) in in_flight.drain(..) {
                b.retransmit(r);
            }
            while transmit(&mut b, 30, &mut in_flight, &written) {}
            for (r, data) in in_flight.drain(..) {
                rx.insert(r.start, &data);
                b.ack(r);
            }
            prop_assert!(b.is_fully_acked());
            prop_assert!(!b.has_unsent());
            prop_assert_eq!(b.unacked_len(), 0);
            let mut out = vec![0; written.len() + 10];
            let n = rx.read(&mut out);
            prop_assert_eq!(&out[..n], &written[..]);
        }
    }
}
