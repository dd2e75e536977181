//! Sent-packet tracking for one packet number space (RFC 9002 §A.1)
//!
//! Packets live in a `VecDeque<Option<_>>` indexed by `pn - base`. Our own packet numbers only
//! grow (RFC 9000 §12.3), so inserting is a push at the back; acked and lost packets leave a
//! `None` hole that is trimmed once it reaches either end. Lookups are O(1), and once the deque
//! has grown to the flight size no packet allocates.

use std::collections::VecDeque;
use std::ops::RangeInclusive;
use std::time::{Duration, Instant};

use super::loss::K_PACKET_THRESHOLD;

/// Largest gap of skipped packet numbers [`SentPackets::insert`] accepts: each skipped number
/// costs one empty slot
const MAX_PN_GAP: u64 = 1 << 16;

/// What recovery remembers about one sent packet (RFC 9002 §A.1.1)
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SentPacket<T> {
    /// When it was sent
    pub time_sent: Instant,
    /// UDP payload bytes it occupied
    pub size: u16,
    /// It carried a frame other than ACK, PADDING or CONNECTION_CLOSE
    pub ack_eliciting: bool,
    /// It counts toward bytes in flight (RFC 9002 §2: ack-eliciting or PADDING)
    pub in_flight: bool,
    /// Whatever the caller needs to retransmit its frames
    pub payload: T,
}

/// The outstanding packets of one packet number space, by packet number
#[derive(Debug, Clone)]
pub struct SentPackets<T> {
    /// Packet number of `packets[0]`
    base: u64,
    packets: VecDeque<Option<SentPacket<T>>>,
    /// Number of `Some` slots
    count: usize,
    /// Largest packet number ever inserted; later inserts must exceed it
    largest_inserted: Option<u64>,
    ack_eliciting_in_flight: u64,
    bytes_in_flight: u64,
}

impl<T> Default for SentPackets<T> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T> SentPackets<T> {
    /// An empty map
    pub fn new() -> Self {
        Self {
            base: 0,
            packets: VecDeque::new(),
            count: 0,
            largest_inserted: None,
            ack_eliciting_in_flight: 0,
            bytes_in_flight: 0,
        }
    }

    /// Records a sent packet; false (and nothing stored) unless `pn` exceeds every packet
    /// number inserted before and skips at most 65536 numbers
    #[must_use]
    pub fn insert(&mut self, pn: u64, packet: SentPacket<T>) -> bool {
        if self.largest_inserted.is_some_and(|l| pn <= l) {
            return false;
        }
        if self.packets.is_empty() {
            self.base = pn;
        } else {
            // pn > largest_inserted >= base + len - 1, so this does not underflow.
            let gap = pn - (self.base + self.packets.len() as u64);
            if gap > MAX_PN_GAP {
                return false;
            }
            // RFC 9000 §21.4: skipped numbers (optimistic-ACK defence) become holes.
            self.packets.extend((0..gap).map(|_| None));
        }
        self.largest_inserted = Some(pn);
        self.account(&packet, true);
        self.packets.push_back(Some(packet));
        self.count += 1;
        true
    }

    /// The packet with number `pn`, if outstanding
    pub fn get(&self, pn: u64) -> Option<&SentPacket<T>> {
        let i = self.index(pn)?;
        self.packets[i].as_ref()
    }

    /// Mutable access to the packet with number `pn` (its size and flags must not change)
    pub fn get_payload_mut(&mut self, pn: u64) -> Option<&mut T> {
        let i = self.index(pn)?;
        self.packets[i].as_mut().map(|p| &mut p.payload)
    }

    /// Removes and returns the packet with number `pn`
    pub fn remove(&mut self, pn: u64) -> Option<SentPacket<T>> {
        let i = self.index(pn)?;
        let p = self.take(i)?;
        self.trim();
        Some(p)
    }

    /// Number of outstanding packets
    pub fn len(&self) -> usize {
        self.count
    }

    /// True when no packet is outstanding
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Outstanding packets, ascending by packet number
    pub fn iter(&self) -> impl DoubleEndedIterator<Item = (u64, &SentPacket<T>)> + '_ {
        let base = self.base;
        self.packets
            .iter()
            .enumerate()
            .filter_map(move |(i, p)| p.as_ref().map(|p| (base + i as u64, p)))
    }

    /// Largest outstanding packet number
    pub fn largest(&self) -> Option<u64> {
        // `trim` keeps both ends occupied.
        (!self.packets.is_empty()).then(|| self.base + self.packets.len() as u64 - 1)
    }

    /// Smallest outstanding packet number
    pub fn smallest(&self) -> Option<u64> {
        (!self.packets.is_empty()).then_some(self.base)
    }

    /// Largest packet number ever inserted, outstanding or not
    pub fn largest_sent(&self) -> Option<u64> {
        self.largest_inserted
    }

    /// Number of outstanding packets that are both ack-eliciting and in flight (RFC 9002 §A.2
    /// ack_eliciting_in_flight)
    pub fn ack_eliciting_in_flight(&self) -> u64 {
        self.ack_eliciting_in_flight
    }

    /// Sum of the sizes of outstanding in-flight packets (RFC 9002 §B.2 bytes_in_flight)
    pub fn bytes_in_flight(&self) -> u64 {
        self.bytes_in_flight
    }

    /// Removes the packets newly acknowledged by `ranges_desc` and hands each to `f`
    ///
    /// `ranges_desc` are the ACK frame's ranges, largest first (any order works). Ranges are
    /// clipped to the outstanding window first, so a peer cannot make this loop over numbers we
    /// never sent. The cost is the size of the clipped ranges: newly acked packets plus holes
    /// (skipped numbers, packets acked out of order). Loss detection clears everything more than
    /// kPacketThreshold below the largest acked, so holes stay few and the cost is O(acked).
    pub fn on_ack(
        &mut self,
        ranges_desc: impl Iterator<Item = RangeInclusive<u64>>,
        mut f: impl FnMut(u64, SentPacket<T>),
    ) {
        for range in ranges_desc {
            let Some(largest) = self.largest() else {
                break;
            };
            let lo = (*range.start()).max(self.base);
            let hi = (*range.end()).min(largest);
            if lo > hi {
                continue;
            }
            // Descending, so that `largest` shrinks as the back is trimmed.
            for pn in (lo..=hi).rev() {
                let i = (pn - self.base) as usize;
                if let Some(p) = self.take(i) {
                    f(pn, p);
                }
            }
            self.trim();
        }
    }

    /// Declares lost the packets at or below `largest_acked` that meet either loss threshold,
    /// hands each to `f`, and returns when the next one would cross the time threshold
    ///
    /// RFC 9002 §6.1: a packet is lost if `largest_acked >= pn + kPacketThreshold`, or if it was
    /// sent at least `loss_delay` before `now` (see [`super::loss::loss_delay`]). The returned
    /// instant is the earliest `time_sent + loss_delay` of the packets still outstanding below
    /// `largest_acked`, for the loss-detection timer (RFC 9002 §A.10).
    pub fn detect_lost(
        &mut self,
        now: Instant,
        largest_acked: u64,
        loss_delay: Duration,
        mut f: impl FnMut(u64, SentPacket<T>),
    ) -> Option<Instant> {
        let lost_send_time = now.checked_sub(loss_delay);
        let mut loss_time: Option<Instant> = None;
        let largest = self.largest()?;
        let end = largest_acked.min(largest);
        if end < self.base {
            return None;
        }
        let base = self.base;
        for i in 0..=(end - base) as usize {
            let pn = base + i as u64;
            let Some(p) = &self.packets[i] else {
                continue;
            };
            let by_time = lost_send_time.is_some_and(|t| p.time_sent <= t);
            let by_count = largest_acked >= pn.saturating_add(K_PACKET_THRESHOLD);
            if by_time || by_count {
                if let Some(p) = self.take(i) {
                    f(pn, p);
                }
            } else {
                let t = p.time_sent.checked_add(loss_delay);
                loss_time = match (loss_time, t) {
                    (Some(a), Some(b)) => Some(a.min(b)),
                    (a, b) => a.or(b),
                };
            }
        }
        self.trim();
        loss_time
    }

    /// Removes every packet, handing each to `f` (e.g. when a space's keys are discarded,
    /// RFC 9002 §6.4)
    pub fn drain(&mut self, mut f: impl FnMut(u64, SentPacket<T>)) {
        let base = self.base;
        for (i, slot) in self.packets.drain(..).enumerate() {
            if let Some(p) = slot {
                f(base + i as u64, p);
            }
        }
        self.count = 0;
        self.ack_eliciting_in_flight = 0;
        self.bytes_in_flight = 0;
    }

    fn index(&self, pn: u64) -> Option<usize> {
        let i = pn.checked_sub(self.base)?;
        (i < self.packets.len() as u64).then_some(i as usize)
    }

    /// Empties slot `i`, keeping the counters right; does not trim
    fn take(&mut self, i: usize) -> Option<SentPacket<T>> {
        let p = self.packets.get_mut(i)?.take()?;
        self.count -= 1;
        self.account(&p, false);
        Some(p)
    }

    fn account(&mut self, p: &SentPacket<T>, add: bool) {
        if !p.in_flight {
            return;
        }
        let eliciting = u64::from(p.ack_eliciting);
        let size = u64::from(p.size);
        if add {
            self.ack_eliciting_in_flight += eliciting;
            self.bytes_in_flight += size;
        } else {
            self.ack_eliciting_in_flight -= eliciting;
            self.bytes_in_flight -= size;
        }
    }

    /// Drops empty slots at both ends so that `largest`/`smallest` stay O(1)
    fn trim(&mut self) {
        while let Some(None) = self.packets.front() {
            self.packets.pop_front();
            self.base += 1;
        }
        while let Some(None) = self.packets.back() {
            self.packets.pop_back();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::BTreeMap;

    const MS: Duration = Duration::from_millis(1);

    fn pkt(t: Instant, size: u16, eliciting: bool) -> SentPacket<u64> {
        SentPacket {
            time_sent: t,
            size,
            ack_eliciting: eliciting,
            in_flight: true,
            payload: 0,
        }
    }

    #[test]
    fn insert_order_and_gaps() {
        let t = Instant::now();
        let mut s = SentPackets::new();
        assert!(s.insert(5, pkt(t, 100, true)));
        assert!(!s.insert(5, pkt(t, 100, true)));
        assert!(!s.insert(4, pkt(t, 100, true)));
        assert!(s.insert(8, pkt(t, 50, false)));
        assert!(!s.insert(8 + MAX_PN_GAP + 2, pkt(t, 50, false)));
        assert_eq!(s.len(), 2);
        assert_eq!(s.largest(), Some(8));
        assert_eq!(s.smallest(), Some(5));
        assert!(s.get(6).is_none());
        assert_eq!(s.bytes_in_flight(), 150);
        assert_eq!(s.ack_eliciting_in_flight(), 1);
        assert_eq!(s.remove(8).map(|p| p.size), Some(50));
        assert_eq!(s.largest(), Some(5));
        // Still must exceed 8, the largest ever inserted.
        assert!(!s.insert(7, pkt(t, 1, true)));
        assert!(s.insert(9, pkt(t, 1, true)));
        assert_eq!(s.iter().map(|(pn, _)| pn).collect::<Vec<_>>(), vec![5, 9]);
    }

    #[test]
    fn ack_ranges() {
        let t = Instant::now();
        let mut s = SentPackets::new();
        for pn in 0..10 {
            assert!(s.insert(pn, pkt(t, 10, true)));
        }
        let mut acked = vec![];
        s.on_ack([7..=u64::MAX, 2..=4].into_iter(), |pn, _| acked.push(pn));
        assert_eq!(acked, vec![9, 8, 7, 4, 3, 2]);
        assert_eq!(s.len(), 4);
        assert_eq!(s.largest(), Some(6));
        assert_eq!(s.bytes_in_flight(), 40);
        // Duplicate ack: nothing new.
        acked.clear();
        s.on_ack([0..=u64::MAX].into_iter(), |pn, _| acked.push(pn));
        assert_eq!(acked, vec![6, 5, 1, 0]);
        assert!(s.is_empty());
        assert_eq!(s.bytes_in_flight(), 0);
        assert_eq!(s.largest(), None);
    }

    #[test]
    fn loss_thresholds() {
        let t0 = Instant::now();
        let mut s = SentPackets::new();
        for pn in 0..6 {
            assert!(s.insert(pn, pkt(t0 + MS * (pn as u32 * 10), 10, true)));
        }
        s.on_ack([5..=5].into_iter(), |_, _| {});
        // At t0+55ms with loss_delay 30ms: pn 0,1,2 lost by count (5 >= pn+3), pn 3 (sent 30ms)
        // not lost by time (55-30 = 25 < 30); pn 4 sent at 40.
        let mut lost = vec![];
        let next = s.detect_lost(t0 + 55 * MS, 5, 30 * MS, |pn, _| lost.push(pn));
        assert_eq!(lost, vec![0, 1, 2]);
        assert_eq!(next, Some(t0 + 60 * MS));
        lost.clear();
        let next = s.detect_lost(t0 + 60 * MS, 5, 30 * MS, |pn, _| lost.push(pn));
        assert_eq!(lost, vec![3]);
        assert_eq!(next, Some(t0 + 70 * MS));
        assert_eq!(s.len(), 1);
        // Nothing at or below largest_acked: no timer.
        assert_eq!(s.detect_lost(t0, 1, 30 * MS, |_, _| panic!()), None);
    }

    #[test]
    fn drain_all() {
        let t = Instant::now();
        let mut s = SentPackets::new();
        assert!(s.insert(1, pkt(t, 10, true)));
        assert!(s.insert(3, pkt(t, 10, true)));
        let mut n = 0;
        s.drain(|_, _| n += 1);
        assert_eq!(n, 2);
        assert!(s.is_empty());
        assert_eq!(s.bytes_in_flight(), 0);
        assert!(s.insert(4, pkt(t, 10, true)));
    }

    #[derive(Debug, Clone)]
    enum Op {
        Send {
            skip: u64,
            size: u16,
            eliciting: bool,
            in_flight: bool,
        },
        Ack(Vec<(u64, u64)>),
        Lose {
            largest_acked: u64,
            advance_ms: u64,
        },
        Remove(u64),
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            3 => (0u64..3, 1u16..1500, any::<bool>(), any::<bool>()).prop_map(
                |(skip, size, eliciting, in_flight)| Op::Send { skip, size, eliciting, in_flight }
            ),
            1 => prop::collection::vec((0u64..120, 0u64..8), 0..4).prop_map(Op::Ack),
            1 => (0u64..120, 0u64..50)
                .prop_map(|(largest_acked, advance_ms)| Op::Lose { largest_acked, advance_ms }),
            1 => (0u64..120).prop_map(Op::Remove),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]
        #[test]
        fn model(ops in prop::collection::vec(op(), 1..80)) {
            let t0 = Instant::now();
            let mut now = t0;
            let mut next_pn = 0u64;
            let mut s = SentPackets::new();
            let mut model: BTreeMap<u64, SentPacket<u64>> = BTreeMap::new();
            for op in ops {
                match op {
                    Op::Send { skip, size, eliciting, in_flight } => {
                        next_pn += skip;
                        let p = SentPacket {
                            time_sent: now, size, ack_eliciting: eliciting, in_flight,
                            payload: next_pn,
                        };
                        prop_assert!(s.insert(next_pn, p.clone()));
                        model.insert(next_pn, p);
                        next_pn += 1;
                        now += MS;
                    }
                    Op::Ack(ranges) => {
                        let mut ranges: Vec<_> =
                            ranges.into_iter().map(|(a, l)| a..=a + l).collect();
                        ranges.sort_by_key(|r| std::cmp::Reverse(*r.start()));
                        let mut got = vec![];
                        s.on_ack(ranges.clone().into_iter(), |pn, p| {
                            assert_eq!(p.payload, pn);
                            got.push(pn);
                        });
                        got.sort_unstable();
                        let mut want: Vec<u64> = model.keys().copied()
                            .filter(|pn| ranges.iter().any(|r| r.contains(pn))).collect();
                        want.sort_unstable();
                        for pn in &want { model.remove(pn); }
                        prop_assert_eq!(got, want);
                    }
                    Op::Lose { largest_acked, advance_ms } => {
                        now += MS * advance_ms as u32;
                        let delay = 20 * MS;
                        let mut got = vec![];
                        let next = s.detect_lost(now, largest_acked, delay, |pn, _| got.push(pn));
                        let mut want = vec![];
                        let mut want_next: Option<Instant> = None;
                        for (&pn, p) in model.range(..=largest_acked) {
                            if now - p.time_sent >= delay || largest_acked >= pn + 3 {
                                want.push(pn);
                            } else {
                                let t = p.time_sent + delay;
                                want_next = Some(want_next.map_or(t, |w| w.min(t)));
                            }
                        }
                        for pn in &want { model.remove(pn); }
                        prop_assert_eq!(got, want);
                        prop_assert_eq!(next, want_next);
                    }
                    Op::Remove(pn) => {
                        prop_assert_eq!(s.remove(pn), model.remove(&pn));
                    }
                }
                prop_assert_eq!(s.len(), model.len());
                prop_assert_eq!(s.largest(), model.keys().next_back().copied());
                prop_assert_eq!(s.smallest(), model.keys().next().copied());
                let bytes: u64 = model.values().filter(|p| p.in_flight)
                    .map(|p| u64::from(p.size)).sum();
                let elic = model.values().filter(|p| p.in_flight && p.ack_eliciting).count();
                prop_assert_eq!(s.bytes_in_flight(), bytes);
                prop_assert_eq!(s.ack_eliciting_in_flight(), elic as u64);
                let keys: Vec<u64> = s.iter().map(|(pn, _)| pn).collect();
                prop_assert_eq!(keys, model.keys().copied().collect::<Vec<_>>());
            }
        }
    }
}
