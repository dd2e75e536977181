//! Receive-side reassembly of stream and CRYPTO data
//!
//! Rules a caller can rely on:
//! - in-order bytes are copied once, into a reused ring buffer, and once more out of it by
//!   [`Assembler::read`]; out-of-order bytes wait in `Bytes` fragments and move into the ring
//!   when the gap below them fills. Bytes already buffered or already read are never copied
//!   again, so the first copy of a duplicated byte wins (RFC 9000 §2.2 lets a receiver assume
//!   retransmitted data is identical);
//! - reads return bytes in order from [`Assembler::bytes_read`] and never skip a gap;
//! - offsets saturate at `u64::MAX`, so no peer-supplied offset can panic. Limits on how much
//!   may be buffered are flow control's job ([`crate::flow::RecvFlow`]); the ring keeps its
//!   capacity (at most the stream's receive window) until the stream is freed, so steady
//!   transfers allocate nothing per packet.

use std::collections::{BTreeMap, VecDeque};

use bytes::Bytes;

/// Reorders and deduplicates `(offset, bytes)` fragments into an in-order byte stream
#[derive(Debug, Default, Clone)]
pub struct Assembler {
    /// The bytes contiguous from `read`: offsets `read..read + ring.len()`
    ring: VecDeque<u8>,
    /// Disjoint out-of-order fragments, all above the end of `ring`, keyed by offset
    chunks: BTreeMap<u64, Bytes>,
    /// Offset of the next byte to hand to the application
    read: u64,
    /// Highest end offset ever received
    highest: u64,
    /// Bytes held in `chunks`
    chunk_bytes: u64,
}

impl Assembler {
    /// An empty assembler at offset 0
    pub fn new() -> Self {
        Self::default()
    }

    /// End of the data contiguous from the read offset
    fn contiguous_end(&self) -> u64 {
        self.read + self.ring.len() as u64
    }

    /// Adds a fragment; only bytes neither buffered nor already read are copied
    pub fn insert(&mut self, offset: u64, data: &[u8]) {
        // Clip the fragment so that its end fits in a u64.
        let len = (data.len() as u64).min(u64::MAX - offset);
        let end = offset + len;
        self.highest = self.highest.max(end);
        let mut cursor = offset.max(self.contiguous_end());
        if cursor >= end {
            return;
        }
        // 1. Fast path: the fragment continues the contiguous data; append up to the first
        //    out-of-order fragment.
        if cursor == self.contiguous_end() {
            let first = self.chunks.keys().next().copied().unwrap_or(u64::MAX);
            let to = end.min(first);
            self.ring
                .extend(&data[(cursor - offset) as usize..(to - offset) as usize]);
            cursor = to;
        }
        // 2. Out of order: fill each gap between fragments inside [cursor, end).
        if cursor < end {
            if let Some((&s, c)) = self.chunks.range(..=cursor).next_back() {
                cursor = cursor.max(s + c.len() as u64);
            }
        }
        while cursor < end {
            let next = self
                .chunks
                .range(cursor..end)
                .next()
                .map(|(&s, c)| (s, s + c.len() as u64));
            let gap_end = next.map_or(end, |(s, _)| s);
            if gap_end > cursor {
                let from = (cursor - offset) as usize;
                let to = (gap_end - offset) as usize;
                self.chunks
                    .insert(cursor, Bytes::copy_from_slice(&data[from..to]));
                self.chunk_bytes += gap_end - cursor;
            }
            match next {
                Some((_, e)) => cursor = e,
                None => break,
            }
        }
        // 3. Move fragments that now continue the contiguous data into the ring.
        let mut contiguous_end = self.contiguous_end();
        while let Some(entry) = self.chunks.first_entry() {
            let start = *entry.key();
            if start > contiguous_end {
                break;
            }
            let chunk = entry.remove();
            self.chunk_bytes -= chunk.len() as u64;
            let skip = ((contiguous_end - start) as usize).min(chunk.len());
            self.ring.extend(&chunk[skip..]);
            contiguous_end = self.contiguous_end();
        }
    }

    /// Copies contiguous bytes from the read offset into `buf`; returns how many
    pub fn read(&mut self, buf: &mut [u8]) -> usize {
        let n = buf.len().min(self.ring.len());
        if n == 0 {
            return 0;
        }
        let (a, b) = self.ring.as_slices();
        let from_a = n.min(a.len());
        buf[..from_a].copy_from_slice(&a[..from_a]);
        buf[from_a..n].copy_from_slice(&b[..n - from_a]);
        self.consume(n);
        n
    }

    /// The next contiguous chunk of at most `max` bytes
    pub fn read_chunk(&mut self, max: usize) -> Option<Bytes> {
        let n = max.min(self.ring.len());
        if n == 0 {
            return None;
        }
        let (a, _) = self.ring.as_slices();
        let n = n.min(a.len());
        let chunk = Bytes::copy_from_slice(&a[..n]);
        self.consume(n);
        Some(chunk)
    }

    fn consume(&mut self, n: usize) {
        self.ring.drain(..n);
        self.read += n as u64;
    }

    /// Bytes handed to the application so far (the read offset)
    pub fn bytes_read(&self) -> u64 {
        self.read
    }

    /// Bytes readable now, contiguous from the read offset
    pub fn readable(&self) -> u64 {
        self.ring.len() as u64
    }

    /// Highest end offset received (buffered, read or discarded)
    pub fn highest_received(&self) -> u64 {
        self.highest
    }

    /// Bytes held, contiguous or not
    pub fn buffered_bytes(&self) -> u64 {
        self.ring.len() as u64 + self.chunk_bytes
    }

    /// Number of disjoint chunks held (a fragmentation measure): the contiguous run counts as
    /// one
    pub fn chunk_count(&self) -> usize {
        self.chunks.len() + usize::from(!self.ring.is_empty())
    }

    /// Drops all buffered bytes (e.g. after STOP_SENDING); offsets are kept, and bytes at or
    /// above the read offset may be inserted again
    pub fn clear(&mut self) {
        self.ring = VecDeque::new();
        self.chunks.clear();
        self.chunk_bytes = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn in_order_and_out_of_order() {
        let mut a = Assembler::new();
        a.insert(5, b"fghij");
        assert_eq!(a.readable(), 0);
        assert_eq!(a.read_chunk(100), None);
        a.insert(0, b"abcde");
        assert_eq!(a.readable(), 10);
        let mut buf = [0; 3];
        assert_eq!(a.read(&mut buf), 3);
        assert_eq!(&buf, b"abc");
        assert_eq!(a.read_chunk(2).as_deref(), Some(&b"de"[..]));
        assert_eq!(a.read_chunk(2).as_deref(), Some(&b"fg"[..]));
        assert_eq!(a.bytes_read(), 7);
        assert_eq!(a.buffered_bytes(), 3);
        assert_eq!(a.highest_received(), 10);
    }

    #[test]
    fn overlaps_copy_only_new_bytes() {
        let mut a = Assembler::new();
        a.insert(2, b"cd");
        a.insert(6, b"gh");
        a.insert(0, b"ABCDEFGHIJ");
        // Existing bytes win; gaps are filled from the new fragment.
        assert_eq!(a.buffered_bytes(), 10);
        assert_eq!(a.chunk_count(), 1);
        let mut buf = [0; 16];
        assert_eq!(a.read(&mut buf), 10);
        assert_eq!(&buf[..10], b"ABcdEFghIJ");
        // Already read: ignored.
        a.insert(0, b"xxxxxxxxxx");
        assert_eq!(a.buffered_bytes(), 0);
        a.insert(8, b"xxKL");
        assert_eq!(a.read(&mut buf), 2);
        assert_eq!(&buf[..2], b"KL");
    }

    #[test]
    fn extreme_offsets_and_clear() {
        let mut a = Assembler::new();
        a.insert(u64::MAX - 2, b"abcdef");
        assert_eq!(a.buffered_bytes(), 2);
        assert_eq!(a.highest_received(), u64::MAX);
        a.insert(u64::MAX, b"z");
        a.insert(3, b"");
        a.clear();
        assert_eq!(a.buffered_bytes(), 0);
        a.insert(0, b"a");
        assert_eq!(a.readable(), 1);
    }

    #[derive(Debug, Clone)]
    enum Op {
        Insert(u64, Vec<u8>),
        Read(usize),
        ReadChunk(usize),
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            3 => (0u64..300, prop::collection::vec(any::<u8>(), 0..40))
                .prop_map(|(o, d)| Op::Insert(o, d)),
            1 => (0usize..50).prop_map(Op::Read),
            1 => (0usize..50).prop_map(Op::ReadChunk),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]
        #[test]
        fn model(ops in prop::collection::vec(op(), 1..60)) {
            let mut a = Assembler::new();
            let mut model: Vec<Option<u8>> = vec![None; 400];
            let mut read = 0usize;
            let mut highest = 0u64;
            for op in ops {
                match op {
                    Op::Insert(o, d) => {
                        a.insert(o, &d);
                        for (i, b) in d.iter().enumerate() {
                            let at = o as usize + i;
                            if at >= read && model[at].is_none() {
                                model[at] = Some(*b);
                            }
                        }
                        highest = highest.max(o + d.len() as u64);
                    }
                    Op::Read(n) => {
                        let mut buf = vec![0; n];
                        let got = a.read(&mut buf);
                        let want: Vec<u8> = model[read..].iter().take(n)
                            .map_while(|b| *b).collect();
                        prop_assert_eq!(&buf[..got], &want[..]);
                        read += got;
                    }
                    Op::ReadChunk(n) => {
                        let got = a.read_chunk(n).unwrap_or_default();
                        prop_assert!(got.len() <= n);
                        let want: Vec<u8> = model[read..].iter().take(got.len())
                            .map_while(|b| *b).collect();
                        prop_assert_eq!(&got[..], &want[..]);
                        if n > 0 && model[read].is_some() {
                            prop_assert!(!got.is_empty());
                        }
                        read += got.len();
                    }
                }
                let contiguous = model[read..].iter().take_while(|b| b.is_some()).count();
                let buffered = model[read..].iter().filter(|b| b.is_some()).count();
                prop_assert_eq!(a.bytes_read(), read as u64);
                prop_assert_eq!(a.readable(), contiguous as u64);
                prop_assert_eq!(a.buffered_bytes(), buffered as u64);
                prop_assert_eq!(a.highest_received(), highest);
            }
        }
    }
}
