//! The memtable: a concurrent ordered map from internal key to value.
//!
//! Writes land here after the write-ahead log. Backed by `crossbeam_skiplist::SkipMap`, so
//! readers never block the (single, group-committing) writer and vice versa.
//!
//! Invariants:
//! - Entries are never removed or overwritten: every write has a fresh sequence number, so each
//!   `(user key, seq)` is inserted at most once.
//! - A memtable belongs to exactly one WAL segment (`wal_number`), which holds every entry in it;
//!   the segment may be deleted once the memtable is in an SSTable recorded in the manifest.

use std::ops::Bound;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use crossbeam_skiplist::SkipMap;

use crate::error::Result;
use crate::iter::InternalIterator;
use crate::key::{parse_internal_key, MemKey, SeqNo, ValueKind, KIND_SEEK, TRAILER_LEN};
use crate::range_del::RangeTombstone;

/// Per-entry overhead charged to the memtable size (skiplist node, pointers, Bytes headers).
const ENTRY_OVERHEAD: usize = 64;

pub struct Memtable {
    map: SkipMap<MemKey, Bytes>,
    approximate_bytes: AtomicUsize,
    max_seq: AtomicU64,
    wal_number: u64,
    /// Size of the WAL segment once it is closed (set at the memtable switch).
    wal_bytes: AtomicU64,
    /// Range tombstones, in insertion order (few; see `range_del`).
    range_dels: parking_lot::RwLock<Vec<RangeTombstone>>,
}

impl Memtable {
    pub fn new(wal_number: u64) -> Self {
        Memtable {
            map: SkipMap::new(),
            approximate_bytes: AtomicUsize::new(0),
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
        let charge = user_key.len() + value.len() + TRAILER_LEN + ENTRY_OVERHEAD;
        if kind == ValueKind::RangeDeletion {
            self.range_dels.write().push(RangeTombstone {
                start: user_key,
                end: value,
                seq,
            });
            self.approximate_bytes.fetch_add(charge, Ordering::Relaxed);
            self.max_seq.fetch_max(seq, Ordering::Relaxed);
            return;
        }
        self.map
            .insert(MemKey::new(user_key, seq, kind as u8), value);
        self.approximate_bytes.fetch_add(charge, Ordering::Relaxed);
        self.max_seq.fetch_max(seq, Ordering::Relaxed);
    }

    /// The newest entry for `user_key` with sequence `<= seq`: its kind, sequence and value.
    pub fn get(&self, user_key: &[u8], seq: SeqNo) -> Option<(ValueKind, SeqNo, Bytes)> {
        let seek = MemKey::new(Bytes::copy_from_slice(user_key), seq, KIND_SEEK);
        let entry = self.map.lower_bound(Bound::Included(&seek))?;
        if entry.key().user_key.as_ref() != user_key {
            return None;
        }
        Some((entry.key().kind(), entry.key().seq(), entry.value().clone()))
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

    /// Bytes charged so far (keys, values and per-entry overhead).
    pub fn approximate_size(&self) -> usize {
        self.approximate_bytes.load(Ordering::Relaxed)
    }

    pub fn len(&self) -> usize {
        self.map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.map.is_empty() && self.range_dels.read().is_empty()
    }

    /// Largest sequence number inserted (0 if empty).
    pub fn max_seq(&self) -> SeqNo {
        self.max_seq.load(Ordering::Relaxed)
    }

    pub fn iter(self: &Arc<Self>) -> MemtableIter {
        MemtableIter {
            mem: Arc::clone(self),
            buf: Vec::new(),
            pos: 0,
            forward: true,
            key: Vec::new(),
            chunk: FIRST_CHUNK,
        }
    }
}

/// How many entries a memtable iterator copies out of the skiplist per refill: each refill is
/// one O(log n) skiplist seek, amortized over the chunk. The first refill after a seek is
/// small (a seek is often followed by a few steps only); each refill in the same direction
/// doubles up to the maximum, so a long scan pays one skiplist seek per `CHUNK` entries.
const FIRST_CHUNK: usize = 8;
const CHUNK: usize = 64;

/// A cursor over a memtable. It holds the memtable alive and reads it in chunks, so it needs
/// no borrow of the skiplist between calls.
pub struct MemtableIter {
    mem: Arc<Memtable>,
    /// Entries in the direction of travel; `buf[pos]` is current.
    buf: Vec<(MemKey, Bytes)>,
    pos: usize,
    forward: bool,
    /// Encoded internal key of the current entry.
    key: Vec<u8>,
    /// Entries to copy at the next refill.
    chunk: usize,
}

impl MemtableIter {
    /// Refill with the entries after `from`; `seek` restarts the chunk size.
    fn fill_forward(&mut self, from: Bound<&MemKey>, seek: bool) {
        self.chunk = if self.forward && !seek {
            (self.chunk * 2).min(CHUNK)
        } else {
            FIRST_CHUNK
        };
        self.buf.clear();
        self.pos = 0;
        self.forward = true;
        let range = self.mem.map.range((from, Bound::Unbounded));
        self.buf.extend(
            range
                .take(self.chunk)
                .map(|e| (e.key().clone(), e.value().clone())),
        );
        self.update_key();
    }

    fn fill_backward(&mut self, from: Bound<&MemKey>, seek: bool) {
        self.chunk = if !self.forward && !seek {
            (self.chunk * 2).min(CHUNK)
        } else {
            FIRST_CHUNK
        };
        self.buf.clear();
        self.pos = 0;
        self.forward = false;
        let range = self.mem.map.range((Bound::Unbounded, from));
        self.buf.extend(
            range
                .rev()
                .take(self.chunk)
                .map(|e| (e.key().clone(), e.value().clone())),
        );
        self.update_key();
    }

    fn update_key(&mut self) {
        self.key.clear();
        if let Some((k, _)) = self.buf.get(self.pos) {
            self.key.extend_from_slice(&k.user_key);
            self.key.extend_from_slice(&k.trailer.to_le_bytes());
        }
    }

    fn current(&self) -> Option<&MemKey> {
        self.buf.get(self.pos).map(|(k, _)| k)
    }
}

/// The memtable key for an encoded internal key (a seek target).
fn memkey_of(target: &[u8]) -> MemKey {
    match parse_internal_key(target) {
        Some(p) => MemKey::new(Bytes::copy_from_slice(p.user_key), p.seq, p.kind as u8),
        None => {
            // Seek targets carry KIND_SEEK, which parse_internal_key rejects: split by hand.
            let split = target.len().saturating_sub(TRAILER_LEN);
            let mut t = [0u8; 8];
            t[..target.len() - split].copy_from_slice(&target[split..]);
            MemKey::with_trailer(
                Bytes::copy_from_slice(&target[..split]),
                u64::from_le_bytes(t),
            )
        }
    }
}

impl InternalIterator for MemtableIter {
    fn valid(&self) -> bool {
        self.pos < self.buf.len()
    }

    fn seek_to_first(&mut self) -> Result<()> {
        self.fill_forward(Bound::Unbounded, true);
        Ok(())
    }

    fn seek_to_last(&mut self) -> Result<()> {
        self.fill_backward(Bound::Unbounded, true);
        Ok(())
    }

    fn seek(&mut self, target: &[u8]) -> Result<()> {
        let k = memkey_of(target);
        self.fill_forward(Bound::Included(&k), true);
        Ok(())
    }

    fn seek_for_prev(&mut self, target: &[u8]) -> Result<()> {
        let k = memkey_of(target);
        self.fill_backward(Bound::Included(&k), true);
        Ok(())
    }

    fn next(&mut self) -> Result<()> {
        let Some(cur) = self.current().cloned() else {
            return Ok(());
        };
        if self.forward && self.pos + 1 < self.buf.len() {
            self.pos += 1;
            self.update_key();
        } else {
            self.fill_forward(Bound::Excluded(&cur), false);
        }
        Ok(())
    }

    fn prev(&mut self) -> Result<()> {
        let Some(cur) = self.current().cloned() else {
            return Ok(());
        };
        if !self.forward && self.pos + 1 < self.buf.len() {
            self.pos += 1;
            self.update_key();
        } else {
            self.fill_backward(Bound::Excluded(&cur), false);
        }
        Ok(())
    }

    fn key(&self) -> &[u8] {
        &self.key
    }

    fn value(&self) -> Bytes {
        self.buf
            .get(self.pos)
            .map(|(_, v)| v.clone())
            .unwrap_or_default()
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
    fn the_iterator_walks_both_ways_across_chunk_boundaries() {
        let m = Arc::new(Memtable::new(1));
        let n = CHUNK * 3 + 5;
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
