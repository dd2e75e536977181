//! Receive-side reassembly of stream and CRYPTO data
//!
//! Rules a caller can rely on:
//! - every received byte is copied once, into a `Bytes` chunk; bytes already buffered or
//!   already read are never copied again, so the first copy of a duplicated byte wins
//!   (RFC 9000 §2.2 lets a receiver assume retransmitted data is identical);
//! - chunks are disjoint and keyed by offset; reads return bytes in order from
//!   [`Assembler::bytes_read`] and never skip a gap;
//! - offsets saturate at `u64::MAX`, so no peer-supplied offset can panic. Limits on how much
//!   may be buffered are flow control's job ([`crate::flow::RecvFlow`]).

use std::collections::BTreeMap;

use bytes::Bytes;

/// Reorders and deduplicates `(offset, bytes)` fragments into an in-order byte stream
#[derive(Debug, Default, Clone)]
pub struct Assembler {
    /// Disjoint chunks at offsets >= `read`, keyed by offset
    chunks: BTreeMap<u64, Bytes>,
    /// Offset of the next byte to hand to the application
    read: u64,
    /// End of the data contiguous from `read`
    contiguous_end: u64,
    /// Highest end offset ever received
    highest: u64,
    /// Bytes held in `chunks`
    buffered: u64,
}

impl Assembler {
    /// An empty assembler at offset 0
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a fragment; only bytes neither buffered nor already read are copied
    pub fn insert(&mut self, offset: u64, data: &[u8]) {
        // Clip the fragment so that its end fits in a u64.
        let len = (data.len() as u64).min(u64::MAX - offset);
        let end = offset + len;
        self.highest = self.highest.max(end);
        let mut cursor = offset.max(self.read);
        if cursor >= end {
            return;
        }
        // Skip the part covered by a chunk starting at or before the cursor.
        if let Some((&s, c)) = self.chunks.range(..=cursor).next_back() {
            cursor = cursor.max(s + c.len() as u64);
        }
        // Fill each gap between existing chunks inside [cursor, end).
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
                self.buffered += gap_end - cursor;
            }
            match next {
                Some((_, e)) => cursor = e,
                None => break,
            }
        }
        self.advance_contiguous();
    }

    /// Copies contiguous bytes from the read offset into `buf`; returns how many
    pub fn read(&mut self, buf: &mut [u8]) -> usize {
        let mut n = 0;
        while n < buf.len() {
            let Some(chunk) = self.read_chunk(buf.len() - n) else {
                break;
            };
            buf[n..n + chunk.len()].copy_from_slice(&chunk);
            n += chunk.len();
        }
        n
    }

    /// The next contiguous chunk of at most `max` bytes, without copying
    pub fn read_chunk(&mut self, max: usize) -> Option<Bytes> {
        if max == 0 {
            return None;
        }
        let entry = self.chunks.first_entry()?;
        if *entry.key() != self.read {
            return None; // a gap at the read offset
        }
        let mut chunk = entry.remove();
        if chunk.len() > max {
            let rest = chunk.split_off(max);
            self.chunks.insert(self.read + max as u64, rest);
        }
        self.read += chunk.len() as u64;
        self.buffered -= chunk.len() as u64;
        Some(chunk)
    }

    /// Bytes handed to the application so far (the read offset)
    pub fn bytes_read(&self) -> u64 {
        self.read
    }

    /// Bytes readable now, contiguous from the read offset
    pub fn readable(&self) -> u64 {
        self.contiguous_end - self.read
    }

    /// Highest end offset received (buffered, read or discarded)
    pub fn highest_received(&self) -> u64 {
        self.highest
    }

    /// Bytes held, contiguous or not
    pub fn buffered_bytes(&self) -> u64 {
        self.buffered
    }

    /// Number of disjoint chunks held (a fragmentation measure)
    pub fn chunk_count(&self) -> usize {
        self.chunks.len()
    }

    /// Drops all buffered bytes (e.g. after STOP_SENDING); offsets are kept, and bytes at or
    /// above the read offset may be inserted again
    pub fn clear(&mut self) {
        self.chunks.clear();
        self.buffered = 0;
        self.contiguous_end = self.read;
    }

    fn advance_contiguous(&mut self) {
        // Each chunk is walked over once, so this is amortised O(1) per insert.
        while let Some(c) = self.chunks.get(&self.contiguous_end) {
            self.contiguous_end += c.len() as u64;
        }
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
        assert_eq!(a.read_chunk(100).as_deref(), Some(&b"de"[..]));
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
        assert_eq!(a.chunk_count(), 5);
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
