//! The memtable: an ordered map from internal key to value that readers search while the
//! group-commit leader inserts.
//!
//! Backed by an arena skiplist ([`skiplist`]): one writer at a time (the leader, or recovery),
//! lock-free readers, keys and values copied into the node, memory freed all at once when the
//! memtable is dropped after its flush. Range tombstones are kept apart in a short list.
//!
//! Invariants:
//! - Entries are never removed or overwritten: every write has a fresh sequence number, so each
//!   `(user key, seq)` is inserted at most once.
//! - A memtable belongs to exactly one WAL segment (`wal_number`), which holds every entry in it;
//!   the segment may be deleted once the memtable is in an SSTable recorded in the manifest.

pub mod filter;
pub mod skiplist;

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;

use bytes::Bytes;

use crate::error::Result;
use crate::iter::InternalIterator;
use crate::key::{encode_internal_key, pack_trailer, SeqNo, ValueKind, KIND_SEEK, TRAILER_LEN};
use crate::range_del::RangeTombstone;
use filter::MemtableFilter;
use skiplist::{Cursor, SkipList, Target};

/// A memtable's key filter gets one byte per this many bytes of `write_buffer_size` (1 MiB
/// for the default 64 MiB; about 17 bits per 100-byte entry).
pub const FILTER_FRACTION: usize = 64;

/// Bytes charged per range tombstone beyond its keys.
const RANGE_DEL_OVERHEAD: usize = 64;

pub struct Memtable {
    list: SkipList,
    /// Which user keys were inserted, for point reads (none in a replay memtable).
    filter: Option<MemtableFilter>,
    /// Bytes charged to range tombstones (the list's arena is measured directly).
    range_del_bytes: AtomicUsize,
    max_seq: AtomicU64,
    wal_number: u64,
    /// Size of the WAL segment once it is closed (set at the memtable switch).
    wal_bytes: AtomicU64,
    /// Range tombstones, in insertion order (few; see `range_del`).
    range_dels: parking_lot::RwLock<Vec<RangeTombstone>>,
}

impl Memtable {
    /// A memtable without a key filter (recovery's replay memtable, which nobody reads).
    pub fn new(wal_number: u64) -> Self {
        Memtable::with_filter_bytes(wal_number, 0)
    }

    /// A memtable with a key filter sized for a memtable of `write_buffer_size` bytes.
    pub fn for_write_buffer(wal_number: u64, write_buffer_size: usize) -> Self {
        Memtable::with_filter_bytes(wal_number, (write_buffer_size / FILTER_FRACTION).max(1))
    }

    fn with_filter_bytes(wal_number: u64, filter_bytes: usize) -> Self {
        Memtable {
            list: SkipList::new(),
            filter: if filter_bytes > 0 {
                MemtableFilter::new(filter_bytes)
            } else {
                None
            },
            range_del_bytes: AtomicUsize::new(0),
            max_seq: AtomicU64::new(0),
            wal_number,
            wal_bytes: AtomicU64::new(0),
            range_dels: parking_lot::RwLock::new(Vec::new()),
        }
    }

    /// The WAL segment that holds this memtable's writes.
    pub fn wal_number(&self) -> u64 {
        self.wal_number
    }

    /// Insert a write. A `RangeDeletion` goes to the tombstone list: `user_key` is its start
    /// and `value` its end.
    pub fn insert(&self, user_key: Bytes, seq: SeqNo, kind: ValueKind, value: Bytes) {
        if kind == ValueKind::RangeDeletion {
            let charge = user_key.len() + value.len() + TRAILER_LEN + RANGE_DEL_OVERHEAD;
            self.range_dels.write().push(RangeTombstone {
                start: user_key,
                end: value,
                seq,
            });
            self.range_del_bytes.fetch_add(charge, Ordering::Relaxed);
            self.max_seq.fetch_max(seq, Ordering::Relaxed);
            return;
        }
        self.insert_entry(&user_key, seq, kind, &value);
    }

    /// Insert a point entry (a value or a point deletion) from borrowed bytes.
    pub fn insert_entry(&self, user_key: &[u8], seq: SeqNo, kind: ValueKind, value: &[u8]) {
        debug_assert!(kind != ValueKind::RangeDeletion);
        // The filter's word is loaded now and its bits set after the skiplist insert, so the
        // two cache misses overlap; both happen before the leader publishes the sequence
        // number (see the filter's invariants).
        let pending = self.filter.as_ref().map(|f| f.start_insert(user_key));
        let mut ikey = [0u8; 64];
        let len = user_key.len() + TRAILER_LEN;
        if len <= ikey.len() {
            ikey[..user_key.len()].copy_from_slice(user_key);
            ikey[user_key.len()..len].copy_from_slice(&pack_trailer(seq, kind as u8).to_le_bytes());
            self.list.insert(&ikey[..len], value);
        } else {
            let mut long = Vec::with_capacity(len);
            encode_internal_key(&mut long, user_key, seq, kind as u8);
            self.list.insert(&long, value);
        }
        if let Some(pending) = pending {
            pending.finish();
        }
        self.max_seq.fetch_max(seq, Ordering::Relaxed);
    }

    /// The newest entry for `user_key` with sequence `<= seq`: its kind, sequence and value.
    pub fn get(&self, user_key: &[u8], seq: SeqNo) -> Option<(ValueKind, SeqNo, Bytes)> {
        if self
            .filter
            .as_ref()
            .is_some_and(|f| !f.may_contain(user_key))
        {
            return None;
        }
        let target = Target::new(user_key, pack_trailer(seq, KIND_SEEK));
        let c = self.list.seek(&target);
        if !c.is_valid() {
            return None;
        }
        let found = Target::of(self.list.key(c));
        if found.user_key != user_key {
            return None;
        }
        // Only validated writes are inserted, so the kind is known; an unknown one would read
        // as a deletion rather than serve bytes of unknown meaning.
        let kind = ValueKind::from_u8((found.trailer & 0xff) as u8).unwrap_or(ValueKind::Deletion);
        Some((
            kind,
            found.trailer >> 8,
            Bytes::copy_from_slice(self.list.value(c)),
        ))
    }

    /// The range tombstones written to this memtable.
    pub fn range_tombstones(&self) -> Vec<RangeTombstone> {
        self.range_dels.read().clone()
    }

    /// Largest seq `<= read_seq` of a tombstone here covering `key` (0 if none).
    pub fn max_covering_tombstone(&self, key: &[u8], read_seq: SeqNo) -> SeqNo {
        let dels = self.range_dels.read();
        if dels.is_empty() {
            return 0;
        }
        crate::range_del::max_covering(dels.iter(), key, read_seq)
    }

    /// Record the final size of this memtable's WAL segment.
    pub fn set_wal_bytes(&self, bytes: u64) {
        self.wal_bytes.store(bytes, Ordering::Relaxed);
    }

    /// The final size of this memtable's WAL segment (0 while it is the active one).
    pub fn wal_bytes(&self) -> u64 {
        self.wal_bytes.load(Ordering::Relaxed)
    }

    /// Bytes held: the skiplist's arena, the range tombstones and the key filter.
    pub fn approximate_size(&self) -> usize {
        self.list.memory()
            + self.range_del_bytes.load(Ordering::Relaxed)
            + self.filter.as_ref().map_or(0, MemtableFilter::memory)
    }

    pub fn len(&self) -> usize {
        self.list.len()
    }

    pub fn is_empty(&self) -> bool {
        self.list.is_empty() && self.range_dels.read().is_empty()
    }

    /// Largest sequence number inserted (0 if empty).
    pub fn max_seq(&self) -> SeqNo {
        self.max_seq.load(Ordering::Relaxed)
    }

    pub fn iter(self: &Arc<Self>) -> MemtableIter {
        MemtableIter {
            mem: Arc::clone(self),
            at: Cursor::default(),
        }
    }
}

/// A cursor over a memtable; it holds the memtable (and so the nodes it points at) alive.
pub struct MemtableIter {
    mem: Arc<Memtable>,
    at: Cursor,
}

impl InternalIterator for MemtableIter {
    fn valid(&self) -> bool {
        self.at.is_valid()
    }

    fn seek_to_first(&mut self) -> Result<()> {
        self.at = self.mem.list.first();
        Ok(())
    }

    fn seek_to_last(&mut self) -> Result<()> {
        self.at = self.mem.list.last();
        Ok(())
    }

    fn seek(&mut self, target: &[u8]) -> Result<()> {
        self.at = self.mem.list.seek(&Target::of(target));
        Ok(())
    }

    fn seek_for_prev(&mut self, target: &[u8]) -> Result<()> {
        self.at = self.mem.list.seek_for_prev(&Target::of(target));
        Ok(())
    }

    fn next(&mut self) -> Result<()> {
        if self.at.is_valid() {
            self.at = self.mem.list.next(self.at);
        }
        Ok(())
    }

    fn prev(&mut self) -> Result<()> {
        if self.at.is_valid() {
            self.at = self.mem.list.prev(self.at);
        }
        Ok(())
    }

    fn key(&self) -> &[u8] {
        if self.at.is_valid() {
            self.mem.list.key(self.at)
        } else {
            &[]
        }
    }

    fn value(&self) -> Bytes {
        if self.at.is_valid() {
            Bytes::copy_from_slice(self.mem.list.value(self.at))
        } else {
            Bytes::new()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::key::{internal_key, MAX_SEQ};

    fn b(s: &str) -> Bytes {
        Bytes::copy_from_slice(s.as_bytes())
    }

    #[test]
    fn get_sees_the_newest_version_at_or_below_the_snapshot() {
        let m = Memtable::new(1);
        m.insert(b("k"), 1, ValueKind::Value, b("v1"));
        m.insert(b("k"), 3, ValueKind::Deletion, Bytes::new());
        m.insert(b("k"), 5, ValueKind::Value, b("v5"));
        assert_eq!(m.get(b"k", 0), None);
        assert_eq!(m.get(b"k", 2), Some((ValueKind::Value, 1, b("v1"))));
        assert_eq!(
            m.get(b"k", 4).map(|(k, s, _)| (k, s)),
            Some((ValueKind::Deletion, 3))
        );
        assert_eq!(m.get(b"k", MAX_SEQ), Some((ValueKind::Value, 5, b("v5"))));
        assert_eq!(m.get(b"j", MAX_SEQ), None);
        assert_eq!(m.max_seq(), 5);
    }

    #[test]
    fn a_filtered_memtable_finds_values_and_deletions_and_skips_absent_keys() {
        // A small filter (4 KiB) under 2,000 keys: false positives happen, and must still
        // read as absent.
        let m = Memtable::for_write_buffer(1, 4096 * FILTER_FRACTION);
        for i in 0..2000u64 {
            let kind = if i % 3 == 0 {
                ValueKind::Deletion
            } else {
                ValueKind::Value
            };
            m.insert(b(&format!("k{i}")), i + 1, kind, b("v"));
        }
        for i in 0..2000u64 {
            let found = m
                .get(format!("k{i}").as_bytes(), MAX_SEQ)
                .map(|(k, s, _)| (k, s));
            let kind = if i % 3 == 0 {
                ValueKind::Deletion
            } else {
                ValueKind::Value
            };
            assert_eq!(found, Some((kind, i + 1)), "k{i}");
        }
        assert!((2000..12000).all(|i| m.get(format!("k{i}").as_bytes(), MAX_SEQ).is_none()));
        assert!(
            m.approximate_size() >= 4096,
            "the filter is charged to the memtable"
        );
    }

    #[test]
    fn the_iterator_walks_both_ways_and_seeks() {
        let m = Arc::new(Memtable::new(1));
        let n = 300;
        for i in 0..n {
            m.insert(
                b(&format!("k{i:04}")),
                i as u64 + 1,
                ValueKind::Value,
                b("v"),
            );
        }
        let mut it = m.iter();
        it.seek_to_first().unwrap();
        let mut forward = Vec::new();
        while it.valid() {
            forward.push(it.key().to_vec());
            it.next().unwrap();
        }
        assert_eq!(forward.len(), n);
        it.seek_to_last().unwrap();
        let mut backward = Vec::new();
        while it.valid() {
            backward.push(it.key().to_vec());
            it.prev().unwrap();
        }
        backward.reverse();
        assert_eq!(forward, backward);

        it.seek(&internal_key(b"k0100", MAX_SEQ, KIND_SEEK))
            .unwrap();
        assert_eq!(crate::key::user_key(it.key()), b"k0100");
        it.prev().unwrap();
        assert_eq!(crate::key::user_key(it.key()), b"k0099");
        it.next().unwrap();
        assert_eq!(crate::key::user_key(it.key()), b"k0100");
        it.seek_for_prev(&internal_key(b"k0100x", MAX_SEQ, KIND_SEEK))
            .unwrap();
        assert_eq!(crate::key::user_key(it.key()), b"k0100");
    }
}
