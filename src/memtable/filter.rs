//! A bloom filter over the user keys of one memtable, so that a point read skips the skiplist
//! search (a dozen or more cache misses in a full 64 MiB memtable) of every memtable that does
//! not hold its key. It pays off whenever reads run alongside writes: most keys read are not
//! in the memtables (RocksDB's `memtable_whole_key_filtering`).
//!
//! Layout: `blocks` 64-byte blocks (a power of two), each 8 `AtomicU64` words. A key sets
//! [`PROBES`] bits inside one block chosen by its hash, so an insert or a lookup touches one
//! cache line. The memory is an anonymous map: zero pages until written, returned to the
//! kernel with the memtable.
//!
//! Invariants:
//! - Bits are only ever set, never cleared: a key inserted is reported present forever.
//! - The leader sets a key's bits before inserting it into the skiplist, and publishes the
//!   write's sequence number (release) after both; a reader loads the visible sequence number
//!   (acquire) before it checks the filter, so it sees the bits of every write it may see.
//!   `Relaxed` suffices for the bit operations themselves.

use std::sync::atomic::{AtomicU64, Ordering};

use xxhash_rust::xxh3::xxh3_64;

/// Bits set per key, all inside one 512-bit block. With the default sizing (one filter byte
/// per 64 memtable bytes, about 17 bits per 100-byte entry) the false-positive rate is about
/// 0.2%; with 20-byte entries (5 bits per key) about 8%.
pub const PROBES: u32 = 6;

const WORDS_PER_BLOCK: usize = 8;
const BLOCK_BYTES: usize = WORDS_PER_BLOCK * 8;

/// The filter of one memtable. See the module docs.
pub struct MemtableFilter {
    /// Owns the words; `words` points into it.
    _map: memmap2::MmapMut,
    words: *const AtomicU64,
    /// Number of blocks minus one (the count is a power of two).
    block_mask: usize,
}

// SAFETY: `words` points into `_map`, which the filter owns and never unmaps before drop; all
// access is through atomics.
unsafe impl Send for MemtableFilter {}
unsafe impl Sync for MemtableFilter {}

impl MemtableFilter {
    /// A filter of about `bytes` bytes (rounded down to a power of two of 64-byte blocks, at
    /// least one block). `None` if the memory cannot be mapped: the memtable then works
    /// without a filter.
    pub fn new(bytes: usize) -> Option<MemtableFilter> {
        let blocks = (bytes / BLOCK_BYTES).max(1);
        // The largest power of two not above `blocks`.
        let blocks = 1usize << (usize::BITS - 1 - blocks.leading_zeros());
        let mut map = memmap2::MmapMut::map_anon(blocks * BLOCK_BYTES).ok()?;
        // A page-aligned map of zero bytes is a valid array of zeroed `AtomicU64`s (same size
        // and alignment as `u64`).
        let words = map.as_mut_ptr() as *const AtomicU64;
        Some(MemtableFilter {
            _map: map,
            words,
            block_mask: blocks - 1,
        })
    }

    /// The filter's size in bytes.
    pub fn memory(&self) -> usize {
        (self.block_mask + 1) * BLOCK_BYTES
    }

    /// Record `user_key` (before it is inserted into the skiplist).
    pub fn insert(&self, user_key: &[u8]) {
        let (block, bits) = self.locate(user_key);
        for (i, mask) in bits.iter().enumerate() {
            if *mask != 0 {
                let word = self.word(block, i);
                // Most keys of an overwrite are there already: skip the write then.
                if word.load(Ordering::Relaxed) & mask != *mask {
                    word.fetch_or(*mask, Ordering::Relaxed);
                }
            }
        }
    }

    /// False only if `user_key` was never inserted.
    pub fn may_contain(&self, user_key: &[u8]) -> bool {
        let (block, bits) = self.locate(user_key);
        bits.iter().enumerate().all(|(i, mask)| {
            *mask == 0 || self.word(block, i).load(Ordering::Relaxed) & mask == *mask
        })
    }

    /// The block of `user_key` and the bits it sets in each of the block's words.
    fn locate(&self, user_key: &[u8]) -> (usize, [u64; WORDS_PER_BLOCK]) {
        let h = xxh3_64(user_key);
        let block = (h as usize) & self.block_mask;
        // Bit positions from the high half, by double hashing (Kirsch and Mitzenmacher).
        let mut probe = (h >> 32) as u32;
        let delta = probe.rotate_right(17) | 1;
        let mut bits = [0u64; WORDS_PER_BLOCK];
        for _ in 0..PROBES {
            let bit = probe % 512;
            bits[(bit / 64) as usize] |= 1 << (bit % 64);
            probe = probe.wrapping_add(delta);
        }
        (block, bits)
    }

    fn word(&self, block: usize, i: usize) -> &AtomicU64 {
        // SAFETY: block <= block_mask and i < WORDS_PER_BLOCK, so the index is inside the map
        // of (block_mask + 1) * WORDS_PER_BLOCK words, which lives as long as `self`.
        unsafe { &*self.words.add(block * WORDS_PER_BLOCK + i) }
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
        for i in 0..16_000u64 {
            f.insert(&i.to_le_bytes());
        }
        let false_positives = (1_000_000..1_100_000u64)
            .filter(|i| f.may_contain(&i.to_le_bytes()))
            .count();
        assert!(
            false_positives < 1_000,
            "{false_positives} false positives in 100,000"
        );
    }

    #[test]
    fn sizes_round_down_to_a_power_of_two_of_blocks_and_never_to_zero() {
        assert_eq!(MemtableFilter::new(0).unwrap().memory(), 64);
        assert_eq!(MemtableFilter::new(100).unwrap().memory(), 64);
        assert_eq!(MemtableFilter::new(64 * 5).unwrap().memory(), 64 * 4);
        assert_eq!(MemtableFilter::new(1 << 20).unwrap().memory(), 1 << 20);
    }

    #[test]
    fn an_empty_filter_holds_nothing() {
        let f = MemtableFilter::new(1024).unwrap();
        assert!(!(0..1000u32).any(|i| f.may_contain(&i.to_le_bytes())));
    }
}
