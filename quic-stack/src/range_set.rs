//! Sets of disjoint u64 ranges: received packet numbers, received stream offsets
//!
//! Rules a caller can rely on:
//! - ranges are half-open, non-empty, disjoint and never adjacent (adjacent ranges are merged);
//! - iteration is ascending, `.rev()` is descending;
//! - inserting at or just above the current maximum (the common case for packet numbers) touches
//!   only the last entry, so it is O(1) and allocates nothing when it extends that entry.

use std::collections::btree_map;
use std::collections::BTreeMap;
use std::ops::Range;

/// A set of `u64`s stored as sorted, disjoint, non-adjacent half-open ranges
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct RangeSet {
    /// start → end (exclusive)
    map: BTreeMap<u64, u64>,
}

impl RangeSet {
    /// An empty set
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds `range`; true if any value in it was not already present
    pub fn insert(&mut self, range: Range<u64>) -> bool {
        let Range { mut start, mut end } = range;
        if start >= end {
            return false;
        }
        // Fast path: at or above the top range (packet numbers mostly increase).
        if let Some(mut last) = self.map.last_entry() {
            let (last_start, last_end) = (*last.key(), *last.get());
            if start >= last_start {
                if start > last_end {
                    self.map.insert(start, end);
                    return true;
                }
                // Overlaps or touches the last range.
                if end <= last_end {
                    return false;
                }
                *last.get_mut() = end;
                return true;
            }
        } else {
            self.map.insert(start, end);
            return true;
        }

        // General path: find the range starting at or before `start`.
        if let Some((&s, &e)) = self.map.range(..=start).next_back() {
            if e >= end {
                return false; // fully contained
            }
            if e >= start {
                // Overlaps or touches: absorb it.
                self.map.remove(&s);
                start = s;
            }
        }
        // Absorb every range starting inside [start, end].
        while let Some((&s, &e)) = self.map.range(start..=end).next() {
            self.map.remove(&s);
            end = end.max(e);
        }
        self.map.insert(start, end);
        true
    }

    /// Adds one value; true if it was not already present
    pub fn insert_one(&mut self, x: u64) -> bool {
        match x.checked_add(1) {
            Some(end) => self.insert(x..end),
            // u64::MAX cannot be represented in a half-open range; packet numbers and offsets
            // stay below 2^62, so refusing it is harmless.
            None => false,
        }
    }

    /// True if `x` is in the set
    pub fn contains(&self, x: u64) -> bool {
        self.map
            .range(..=x)
            .next_back()
            .is_some_and(|(_, &end)| x < end)
    }

    /// Removes every value in `range`
    pub fn remove(&mut self, range: Range<u64>) {
        let Range { start, end } = range;
        if start >= end {
            return;
        }
        // A range starting before `start` may reach into [start, end): trim it, keeping any tail.
        if let Some((&s, &e)) = self.map.range(..start).next_back() {
            if e > start {
                self.map.insert(s, start);
                if e > end {
                    self.map.insert(end, e);
                    return;
                }
            }
        }
        // Ranges starting inside [start, end): drop them, keeping any tail beyond `end`.
        while let Some((&s, &e)) = self.map.range(start..end).next() {
            self.map.remove(&s);
            if e > end {
                self.map.insert(end, e);
                break;
            }
        }
    }

    /// Removes every value present in `other`
    pub fn subtract(&mut self, other: &Self) {
        for r in other.iter() {
            self.remove(r);
        }
    }

    /// Smallest value, if any
    pub fn min(&self) -> Option<u64> {
        self.map.first_key_value().map(|(&s, _)| s)
    }

    /// Largest value, if any
    pub fn max(&self) -> Option<u64> {
        self.map.last_key_value().map(|(_, &e)| e - 1)
    }

    /// Number of disjoint ranges (not values)
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// True when the set holds no value
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// Removes and returns the lowest range
    pub fn pop_min(&mut self) -> Option<Range<u64>> {
        self.map.pop_first().map(|(s, e)| s..e)
    }

    /// Removes everything
    pub fn clear(&mut self) {
        self.map.clear();
    }

    /// The parts of the set inside `range`, ascending, each clipped to `range`
    pub fn iter_within(&self, range: Range<u64>) -> impl Iterator<Item = Range<u64>> + '_ {
        let Range { start, end } = range;
        // A range starting before `start` may reach into it.
        let before = self
            .map
            .range(..start)
            .next_back()
            .filter(|&(_, &e)| e > start && start < end)
            .map(|(_, &e)| start..e.min(end));
        let inside = self
            .map
            .range(start..end.max(start))
            .map(move |(&s, &e)| s..e.min(end));
        before.into_iter().chain(inside)
    }

    /// The ranges, ascending; `.rev()` for descending (as ACK frames list them)
    pub fn iter(&self) -> Iter<'_> {
        Iter(self.map.iter())
    }
}

impl<'a> IntoIterator for &'a RangeSet {
    type Item = Range<u64>;
    type IntoIter = Iter<'a>;
    fn into_iter(self) -> Iter<'a> {
        self.iter()
    }
}

/// Iterator over the ranges of a [`RangeSet`]
#[derive(Debug, Clone)]
pub struct Iter<'a>(btree_map::Iter<'a, u64, u64>);

impl Iterator for Iter<'_> {
    type Item = Range<u64>;
    fn next(&mut self) -> Option<Range<u64>> {
        self.0.next().map(|(&s, &e)| s..e)
    }
    fn size_hint(&self) -> (usize, Option<usize>) {
        self.0.size_hint()
    }
}

impl DoubleEndedIterator for Iter<'_> {
    fn next_back(&mut self) -> Option<Range<u64>> {
        self.0.next_back().map(|(&s, &e)| s..e)
    }
}

impl ExactSizeIterator for Iter<'_> {}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::BTreeSet;

    fn ranges(s: &RangeSet) -> Vec<Range<u64>> {
        s.iter().collect()
    }

    #[test]
    fn append_fast_path() {
        let mut s = RangeSet::new();
        assert!(s.insert_one(0));
        assert!(s.insert_one(1));
        assert!(!s.insert_one(1));
        assert!(s.insert_one(3));
        assert_eq!(ranges(&s), vec![0..2, 3..4]);
        assert!(s.insert_one(2));
        assert_eq!(ranges(&s), vec![0..4]);
        assert_eq!(s.min(), Some(0));
        assert_eq!(s.max(), Some(3));
    }

    #[test]
    fn merge_many() {
        let mut s = RangeSet::new();
        for i in (0..20).step_by(2) {
            s.insert(i..i + 1);
        }
        assert_eq!(s.len(), 10);
        assert!(s.insert(1..17));
        assert_eq!(ranges(&s), vec![0..17, 18..19]);
        assert!(!s.insert(3..9));
        assert!(!s.insert(5..5));
    }

    #[test]
    fn remove_splits() {
        let mut s = RangeSet::new();
        s.insert(0..10);
        s.remove(3..5);
        assert_eq!(ranges(&s), vec![0..3, 5..10]);
        s.remove(0..1);
        s.remove(9..100);
        assert_eq!(ranges(&s), vec![1..3, 5..9]);
        assert_eq!(s.iter().rev().collect::<Vec<_>>(), vec![5..9, 1..3]);
        assert_eq!(s.pop_min(), Some(1..3));
        assert_eq!(s.len(), 1);
        s.clear();
        assert!(s.is_empty());
        assert_eq!(s.min(), None);
        assert_eq!(s.max(), None);
    }

    #[test]
    fn max_value() {
        let mut s = RangeSet::new();
        assert!(!s.insert_one(u64::MAX));
        assert!(s.insert(u64::MAX - 1..u64::MAX));
        assert!(s.contains(u64::MAX - 1));
    }

    #[derive(Debug, Clone)]
    enum Op {
        Insert(u64, u64),
        InsertOne(u64),
        Remove(u64, u64),
        Subtract(Vec<(u64, u64)>),
        PopMin,
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            (0u64..200, 0u64..20).prop_map(|(s, l)| Op::Insert(s, s + l)),
            (0u64..200).prop_map(Op::InsertOne),
            (0u64..200, 0u64..30).prop_map(|(s, l)| Op::Remove(s, s + l)),
            prop::collection::vec((0u64..200, 0u64..10), 0..4).prop_map(Op::Subtract),
            Just(Op::PopMin),
        ]
    }

    fn check(set: &RangeSet, model: &BTreeSet<u64>) {
        let v = ranges(set);
        for w in v.windows(2) {
            // Sorted, disjoint and not adjacent.
            assert!(w[0].end < w[1].start, "{v:?}");
        }
        assert!(v.iter().all(|r| r.start < r.end));
        let flat: Vec<u64> = v.iter().flat_map(|r| r.clone()).collect();
        assert_eq!(flat, model.iter().copied().collect::<Vec<_>>());
        assert_eq!(set.min(), model.first().copied());
        assert_eq!(set.max(), model.last().copied());
        assert_eq!(set.is_empty(), model.is_empty());
        let mut rev: Vec<_> = set.iter().rev().collect();
        rev.reverse();
        assert_eq!(rev, v);
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]
        #[test]
        fn model(ops in prop::collection::vec(op(), 1..60)) {
            let mut set = RangeSet::new();
            let mut model = BTreeSet::new();
            for op in ops {
                match op {
                    Op::Insert(s, e) => {
                        let new = (s..e).any(|x| !model.contains(&x));
                        model.extend(s..e);
                        prop_assert_eq!(set.insert(s..e), new);
                    }
                    Op::InsertOne(x) => {
                        prop_assert_eq!(set.insert_one(x), model.insert(x));
                    }
                    Op::Remove(s, e) => {
                        set.remove(s..e);
                        for x in s..e { model.remove(&x); }
                    }
                    Op::Subtract(rs) => {
                        let mut other = RangeSet::new();
                        for (s, l) in rs {
                            other.insert(s..s + l);
                            for x in s..s + l { model.remove(&x); }
                        }
                        set.subtract(&other);
                    }
                    Op::PopMin => {
                        let r = set.pop_min();
                        let expect_start = model.first().copied();
                        prop_assert_eq!(r.as_ref().map(|r| r.start), expect_start);
                        if let Some(r) = r {
                            for x in r.clone() { prop_assert!(model.remove(&x)); }
                            prop_assert!(!model.contains(&r.end));
                        }
                    }
                }
                check(&set, &model);
                let within: Vec<u64> = set.iter_within(50..150).flatten().collect();
                prop_assert_eq!(within, model.range(50..150).copied().collect::<Vec<_>>());
                prop_assert_eq!(set.iter_within(60..60).count(), 0);
                for x in 0..240 {
                    prop_assert_eq!(set.contains(x), model.contains(&x));
                }
            }
        }
    }
}
