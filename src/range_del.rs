//! Range tombstones: `delete_range(start..end)` as one entry instead of one per key.
//!
//! A range tombstone `[start, end) @ seq` hides every version of every key in the range whose
//! sequence number is below `seq`, for readers at or above `seq`. An empty `end` means
//! "to the end of the key space" (keys are never empty, so the empty string is free).
//!
//! Where they live: in the memtable (beside the skiplist) until flushed, then in the
//! *version* — recorded in the manifest with the level-0 table of the same flush — never in
//! SSTables. Reads and iterators consult all of them; compaction drops the point entries they
//! cover once every reader sees the tombstone, and a tombstone is retired (manifest edit) once
//! no table can hold anything it covers. Tables whose every entry is covered are dropped whole.
//!
//! Deliberately not done: SSTable range-deletion blocks (RocksDB's design). Keeping tombstones
//! in the version is simpler and exact; its cost is memory and manifest space per tombstone,
//! which suits the intended uses (dropping a table, an index or a prefix), not millions of
//! tiny ranges.

use std::collections::BTreeMap;

use bytes::Bytes;

use crate::key::SeqNo;

/// `[start, end) @ seq`; an empty `end` is unbounded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RangeTombstone {
    pub start: Bytes,
    pub end: Bytes,
    pub seq: SeqNo,
}

impl RangeTombstone {
    pub fn covers(&self, key: &[u8]) -> bool {
        key >= self.start.as_ref() && (self.end.is_empty() || key < self.end.as_ref())
    }

    /// Whether `[smallest, largest]` (user keys, inclusive) lies wholly inside the range.
    pub fn covers_range(&self, smallest: &[u8], largest: &[u8]) -> bool {
        self.covers(smallest) && self.covers(largest)
    }

    /// Whether the range intersects `[smallest, largest]` (user keys, inclusive).
    pub fn overlaps(&self, smallest: &[u8], largest: &[u8]) -> bool {
        largest >= self.start.as_ref() && (self.end.is_empty() || smallest < self.end.as_ref())
    }
}

/// The largest sequence number, at or below `read_seq`, of a tombstone covering `key`
/// (0 if none). A version of `key` with a smaller sequence number is deleted.
pub fn max_covering<'a>(
    tombstones: impl IntoIterator<Item = &'a RangeTombstone>,
    key: &[u8],
    read_seq: SeqNo,
) -> SeqNo {
    tombstones
        .into_iter()
        .filter(|t| t.seq <= read_seq && t.covers(key))
        .map(|t| t.seq)
        .max()
        .unwrap_or(0)
}

/// Tombstones visible at one sequence number, cut into non-overlapping fragments that each
/// carry the largest covering sequence number: a lookup is one binary search. Iterators
/// build one when they start.
#[derive(Debug, Default)]
pub struct FragmentedRangeDels {
    /// `(start, seq)`: from `start` up to the next fragment's start, versions below `seq`
    /// are deleted (seq 0: nothing is).
    fragments: Vec<(Bytes, SeqNo)>,
}

impl FragmentedRangeDels {
    pub fn new<'a>(
        tombstones: impl IntoIterator<Item = &'a RangeTombstone>,
        read_seq: SeqNo,
    ) -> Self {
        // Sweep the boundaries in order, keeping the multiset of open tombstones' seqs.
        let mut events: BTreeMap<Bytes, (Vec<SeqNo>, Vec<SeqNo>)> = BTreeMap::new();
        for t in tombstones.into_iter().filter(|t| t.seq <= read_seq) {
            events.entry(t.start.clone()).or_default().0.push(t.seq);
            if !t.end.is_empty() {
                events.entry(t.end.clone()).or_default().1.push(t.seq);
            }
        }
        let mut open: BTreeMap<SeqNo, usize> = BTreeMap::new();
        let mut fragments = Vec::with_capacity(events.len());
        for (at, (starts, ends)) in events {
            for s in starts {
                *open.entry(s).or_insert(0) += 1;
            }
            for s in ends {
                if let Some(n) = open.get_mut(&s) {
                    *n -= 1;
                    if *n == 0 {
                        open.remove(&s);
                    }
                }
            }
            let max = open.keys().next_back().copied().unwrap_or(0);
            if fragments.last().is_none_or(|(_, prev)| *prev != max) {
                fragments.push((at, max));
            }
        }
        FragmentedRangeDels { fragments }
    }

    pub fn is_empty(&self) -> bool {
        self.fragments.iter().all(|(_, s)| *s == 0)
    }

    /// Largest seq of a visible tombstone covering `key` (0 if none).
    pub fn max_covering(&self, key: &[u8]) -> SeqNo {
        let i = self
            .fragments
            .partition_point(|(start, _)| start.as_ref() <= key);
        if i == 0 {
            0
        } else {
            self.fragments[i - 1].1
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(start: &str, end: &str, seq: SeqNo) -> RangeTombstone {
        RangeTombstone {
            start: Bytes::copy_from_slice(start.as_bytes()),
            end: Bytes::copy_from_slice(end.as_bytes()),
            seq,
        }
    }

    #[test]
    fn fragments_agree_with_a_linear_scan() {
        let ts = vec![
            t("b", "f", 5),
            t("d", "k", 9),
            t("m", "", 3),
            t("a", "c", 7),
            t("e", "e\0", 11),
        ];
        let keys = [
            "", "a", "b", "bb", "c", "d", "e", "e\0", "f", "j", "k", "l", "m", "z", "zzz",
        ];
        for read_seq in [0, 4, 5, 8, 9, 100] {
            let f = FragmentedRangeDels::new(&ts, read_seq);
            for k in keys {
                assert_eq!(
                    f.max_covering(k.as_bytes()),
                    max_covering(&ts, k.as_bytes(), read_seq),
                    "key {k:?} at {read_seq}"
                );
            }
        }
    }

    #[test]
    fn an_empty_end_reaches_to_the_end_of_the_key_space() {
        let x = t("m", "", 3);
        assert!(x.covers(b"m") && x.covers(b"\xff\xff\xff") && !x.covers(b"l"));
        assert!(x.overlaps(b"a", b"m") && !x.overlaps(b"a", b"l"));
        assert!(x.covers_range(b"n", b"zz"));
    }
}
