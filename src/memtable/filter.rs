//! A bloom filter over the user keys of one memtable, so that a point read skips the skiplist
//! search (a dozen or more cache misses in a full 64 MiB memtable) of every memtable that does
//! not hold its key. It pays off whenever reads run alongside writes: most keys read are not
//! in the memtables (RocksDB's `memtable_whole_key_filtering`).
//!
//! Layout: `words` 64-bit words (a power of two). A key sets [`PROBES`] bits of one word
//! chosen by its hash (a register-blocked bloom filter), so an insert is one load and at most
//! one atomic `or`, and a lookup one load: the leader inserts into the memtable on the write
//! path, where a filter with bits spread over a cache line cost fillbatch a fifth of its rate.
//! The memory is an anonymous map: zero pages until written, returned to the kernel with the
//! memtable.
//!
//! Invariants:
//! - Bits are only ever set, never cleared: a key inserted is reported present forever.
//! - The leader sets a key's bits (right after its skiplist insert) before it publishes the
//!   write's sequence number (release); a reader loads the visible sequence number (acquire)
//!   before it checks the filter, so it sees the bits of every write it may see. A reader
//!   that finds no bits for a key being inserted reads older sources, which is what its
//!   sequence number lets it see anyway. `Relaxed` suffices for the bit operations themselves.
//! - Bits are only ever set (`fetch_or`), never cleared.

use std::sync::atomic::{AtomicU64, Ordering};

use xxhash_rust::xxh3::xxh3_64;

/// Bits set per key, all inside one 64-bit word. With the default sizing (one filter byte per
/// 64 memtable bytes, about 17 bits per 100-byte entry) the false-positive rate is about 1%;
/// with 20-byte entries (5 bits per key) about 15%.
pub const PROBES: u32 = 5;

/// The filter of one memtable. See the module docs.
pub struct MemtableFilter {
    /// Owns the words; `words` points into it.
    _map: memmap2::MmapMut,
    words: *const AtomicU64,
    /// Number of words minus one (the count is a power of two).
    word_mask: usize,
}

// SAFETY: `words` points into `_map`, which the filter owns and never unmaps before drop; all
// access is through atomics.
unsafe impl Send for MemtableFilter {}
unsafe impl Sync for MemtableFilter {}

impl MemtableFilter {
    /// A filter of about `bytes` bytes (rounded down to a power of two of words, at least
    /// one). `None` if the memory cannot be mapped: the memtable then works without a filter.
    pub fn new(bytes: usize) -> Option<MemtableFilter> {
        let words = (bytes / 8).max(1);
        // The largest power of two not above `words`.
        let words = 1usize << (usize::BITS - 1 - words.leading_zeros());
        let mut map = memmap2::MmapMut::map_anon(words * 8).ok()?;
        // A page-aligned map of zero bytes is a valid array of zeroed `AtomicU64`s (same size
        // and alignment as `u64`).
        let ptr = map.as_mut_ptr() as *const AtomicU64;
        Some(MemtableFilter {
            _map: map,
            words: ptr,
            word_mask: words - 1,
        })
    }

    /// The filter's size in bytes.
    pub fn memory(&self) -> usize {
        (self.word_mask + 1) * 8
    }

    /// Start recording `user_key`: prefetches its word now, so that the cache miss overlaps
    /// with the skiplist insert that follows; [`PendingInsert::finish`] sets the bits. (A plain
    /// insert cost fillbatch a fifth of its rate, nearly all of it that miss.)
    pub fn start_insert(&self, user_key: &[u8]) -> PendingInsert<'_> {
        let (word, mask) = self.locate(user_key);
        crate::cpu::prefetch(word);
        PendingInsert { word, mask }
    }

    /// Record `user_key`.
    pub fn insert(&self, user_key: &[u8]) {
        self.start_insert(user_key).finish();
    }

    /// False only if `user_key` was never inserted.
    pub fn may_contain(&self, user_key: &[u8]) -> bool {
        let (word, mask) = self.locate(user_key);
        word.load(Ordering::Relaxed) & mask == mask
    }

    /// The word of `user_key` and the bits it sets in it.
    fn locate(&self, user_key: &[u8]) -> (&AtomicU64, u64) {
        let h = xxh3_64(user_key);
        let index = (h as usize) & self.word_mask;
        // Bit positions from the high half, 6 bits each.
        let mut mask = 0u64;
        for i in 0..PROBES {
            mask |= 1 << ((h >> (32 + 6 * i)) & 63);
        }
        // SAFETY: index <= word_mask, so it is inside the map of word_mask + 1 words, which
        // lives as long as `self`.
        (unsafe { &*self.words.add(index) }, mask)
    }
}

/// A key's bits, to be set by [`finish`](Self::finish) before the leader publishes the
/// write's sequence number.
pub struct PendingInsert<'a> {
    word: &'a AtomicU64,
    mask: u64,
}

impl PendingInsert<'_> {
    pub fn finish(self) {
        // Most keys of an overwrite are there already: skip the write then.
        if self.word.load(Ordering::Relaxed) & self.mask != self.mask {
            self.word.fetch_or(self.mask, Ordering::Relaxed);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_inserted_key_is_reported_present() {
        let f = MemtableFilter::new(4096).unwrap();
        let keys: Vec<Vec<u8>> = (0..2000u32).map(|i| i.to_be_bytes().repeat(4)).collect();
        for k in &keys {
            f.insert(k);
        }
        assert!(keys.iter().all(|k| f.may_contain(k)));
    }

    #[test]
    fn absent_keys_are_mostly_rejected_at_the_intended_density() {
        // 16 bits per key, as a default-sized filter holds 100-byte entries.
        let f = MemtableFilter::new(32 * 1024).unwrap();
        // (register-blocked: about 1% false positives at this density)
        for i in 0..16_000u64 {
            f.insert(&i.to_le_bytes());
        }
        let false_positives = (1_000_000..1_100_000u64)
            .filter(|i| f.may_contain(&i.to_le_bytes()))
            .count();
        assert!(
            false_positives < 2_500,
            "{false_positives} false positives in 100,000"
        );
    }

    #[test]
    fn sizes_round_down_to_a_power_of_two_of_words_and_never_to_zero() {
        assert_eq!(MemtableFilter::new(0).unwrap().memory(), 8);
        assert_eq!(MemtableFilter::new(100).unwrap().memory(), 64);
        assert_eq!(MemtableFilter::new(8 * 5).unwrap().memory(), 8 * 4);
        assert_eq!(MemtableFilter::new(1 << 20).unwrap().memory(), 1 << 20);
    }

    #[test]
    fn an_empty_filter_holds_nothing() {
        let f = MemtableFilter::new(1024).unwrap();
        assert!(!(0..1000u32).any(|i| f.may_contain(&i.to_le_bytes())));
    }
}
