//! The block cache: decoded SSTable data blocks shared by all readers, bounded in bytes.
//!
//! Policy: CLOCK (second-chance FIFO), split into shards by a hash of the key so that readers
//! of different blocks rarely touch the same lock.
//! - A lookup takes only its shard's *read* lock and sets the entry's reference bit (an
//!   `AtomicBool`), so concurrent readers of hot blocks never serialize on a write lock.
//! - An insert appends the entry to its shard's FIFO with the bit clear, then evicts from the
//!   front until the shard is within its capacity: an entry whose bit is set gets a second
//!   chance (bit cleared, moved to the back); an entry whose bit is clear is dropped. Blocks read
//!   once by a scan therefore leave before blocks that are read again and again.
//!
//! Invariants:
//! - every key in a shard's FIFO is in its map and vice versa, once;
//! - a shard's `usage` is the sum of its entries' charges, and is at most the shard capacity
//!   whenever its lock is released (a block larger than a shard is simply not cached);
//! - capacity 0 caches nothing.
//!
//! Shards: up to 16, but each gets at least 1 MiB of capacity, so a small cache is not cut into
//! slivers that could not hold a block (a cache under 2 MiB is a single shard).
//!
//! Cached blocks are reference-counted: eviction only drops the cache's reference, so an
//! iterator holding a block keeps it alive. Memory for a block counts against the cache only
//! while the cache holds it. `remove_file` is O(entries in the cache) and meant for deleted files.

use std::collections::hash_map::Entry as MapEntry;
use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;

use parking_lot::RwLock;

use crate::buffer_pool::BufferPool;
use crate::sstable::block::Block;

/// The most shards a cache is split into.
const MAX_SHARDS: usize = 16;
/// The least capacity of one shard (when the cache has more than one).
const MIN_SHARD_CAPACITY: usize = 1 << 20;
/// A loan to the memtables growing across a multiple of this evicts at once (see
/// [`BlockCache::set_reserved`]): the write leader calls it after every group, and the
/// eviction pass locks every shard.
const SHRINK_STEP: usize = 1 << 20;

type Key = (u64, u64);

/// Hasher for [`Key`]s: two integers chosen by the engine, not by an attacker, so a
/// multiply-rotate mix (FxHash's) replaces SipHash, which showed up in the read profile.
#[derive(Default, Clone, Copy)]
struct KeyHasher(u64);

const MIX: u64 = 0x517c_c1b7_2722_0a95;

impl std::hash::Hasher for KeyHasher {
    fn write(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(8) {
            let mut word = [0u8; 8];
            word[..chunk.len()].copy_from_slice(chunk);
            self.write_u64(u64::from_le_bytes(word));
        }
    }

    fn write_u64(&mut self, v: u64) {
        self.0 = (self.0.rotate_left(5) ^ v).wrapping_mul(MIX);
    }

    fn finish(&self) -> u64 {
        // Fold the well-mixed high bits down: hashbrown takes its bucket from the low bits
        // and its tag from the top seven.
        self.0 ^ (self.0 >> 29)
    }
}

type KeyMap<V> = HashMap<Key, V, std::hash::BuildHasherDefault<KeyHasher>>;

/// Which shard holds `key`.
fn shard_hash(key: Key) -> u64 {
    use std::hash::Hasher;
    let mut h = KeyHasher::default();
    h.write_u64(key.0);
    h.write_u64(key.1);
    // A different fold from the map's, so the keys of one shard still spread in its map.
    h.0 >> 32
}

struct Entry {
    block: Arc<Block>,
    charge: usize,
    referenced: AtomicBool,
}

#[derive(Default)]
struct Shard {
    map: KeyMap<Entry>,
    /// Clock order: the front is the next candidate for eviction.
    fifo: VecDeque<Key>,
    usage: usize,
}

/// Counters of a [`BlockCache`], read with [`BlockCache::stats`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct CacheStats {
    pub hits: u64,
    pub misses: u64,
    pub inserts: u64,
    pub evictions: u64,
    pub usage_bytes: u64,
    pub capacity_bytes: u64,
    /// Open tables' indexes and filters, charged to the capacity beside the blocks.
    pub table_metadata_bytes: u64,
}

/// A sharded CLOCK cache of data blocks keyed by `(file number, block offset)`.
pub struct BlockCache {
    shards: Box<[RwLock<Shard>]>,
    shard_capacity: usize,
    capacity: usize,
    /// Bytes of the budget lent to others (the memtables, when they share one budget with the
    /// cache); blocks may use only `capacity - reserved`. At most 7/8 of the capacity.
    reserved: AtomicUsize,
    /// Bytes that open tables keep outside the cache (indexes, filters), charged to its budget
    /// (as RocksDB can charge table readers to its cache); see [`Self::shard_limit`].
    table_metadata: AtomicUsize,
    hits: AtomicU64,
    misses: AtomicU64,
    inserts: AtomicU64,
    evictions: AtomicU64,
    /// Buffers of the data blocks read through this cache, recycled when blocks are dropped.
    buffers: Arc<BufferPool>,
}

impl fmt::Debug for BlockCache {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BlockCache")
            .field("shards", &self.shards.len())
            .field("stats", &self.stats())
            .finish()
    }
}

impl BlockCache {
    /// A cache holding at most `capacity_bytes` of block charges (0 caches nothing).
    pub fn new(capacity_bytes: usize) -> Self {
        let shards = (capacity_bytes / MIN_SHARD_CAPACITY).clamp(1, MAX_SHARDS);
        BlockCache {
            shards: (0..shards).map(|_| RwLock::new(Shard::default())).collect(),
            shard_capacity: capacity_bytes / shards,
            capacity: capacity_bytes,
            reserved: AtomicUsize::new(0),
            table_metadata: AtomicUsize::new(0),
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
            inserts: AtomicU64::new(0),
            evictions: AtomicU64::new(0),
            buffers: Arc::new(BufferPool::default()),
        }
    }

    /// The pool that data blocks read for this cache take their buffers from.
    pub fn buffers(&self) -> &Arc<BufferPool> {
        &self.buffers
    }

    /// Lend `bytes` of the budget to memory outside the cache (memtables). At most 7/8 of the
    /// capacity can be lent, so reads always keep some cache. When the loan grows across a
    /// [`SHRINK_STEP`] boundary the cache evicts down to its new limit at once (a cache left
    /// full by reads would otherwise hold its blocks through a phase of writes alone, and
    /// cache plus memtables would pass the budget); between boundaries, and when the loan
    /// shrinks, inserts adjust it as they go.
    pub fn set_reserved(&self, bytes: usize) {
        let new = bytes.min(self.capacity / 8 * 7);
        let old = self.reserved.swap(new, Ordering::Relaxed);
        self.evict_if_grown_across_a_step(old, new);
    }

    /// After a charge against the budget went from `old` to `new` bytes: evict down to the
    /// new limit at once if it grew across a [`SHRINK_STEP`] boundary (between boundaries,
    /// inserts adjust the cache as they go).
    fn evict_if_grown_across_a_step(&self, old: usize, new: usize) {
        if new > old && new / SHRINK_STEP != old / SHRINK_STEP {
            self.evict_to_limit();
        }
    }

    /// Evict from every shard down to what it may hold now.
    fn evict_to_limit(&self) {
        for shard in self.shards.iter() {
            let mut guard = shard.write();
            self.evict_over_limit(&mut guard);
        }
    }

    /// CLOCK eviction in `shard` until its usage is within the limit. Each pass over an entry
    /// either drops it or clears its bit, so this ends within two rounds of the FIFO (or
    /// empties it, if lending shrank the limit below one block).
    fn evict_over_limit(&self, shard: &mut Shard) {
        let limit = self.shard_limit();
        while shard.usage > limit {
            let Some(victim) = shard.fifo.pop_front() else {
                break;
            };
            // One hash lookup per victim (the entry API), whichever way it goes.
            if let MapEntry::Occupied(e) = shard.map.entry(victim) {
                if e.get().referenced.swap(false, Ordering::Relaxed) {
                    shard.fifo.push_back(victim);
                } else {
                    shard.usage -= e.remove().charge;
                    self.evictions.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
    }

    /// Charge `bytes` that an opened table keeps resident outside the cache (its index and
    /// filter) to the cache's budget: the cache's blocks make room for them, so the memory of
    /// cache and open tables together stays within the capacity (down to the floor of
    /// [`Self::shard_limit`]). Evicts at once when the charge crosses a [`SHRINK_STEP`].
    pub fn charge_table_metadata(&self, bytes: usize) {
        let old = self.table_metadata.fetch_add(bytes, Ordering::Relaxed);
        self.evict_if_grown_across_a_step(old, old + bytes);
    }

    /// Undo [`charge_table_metadata`](Self::charge_table_metadata) (the table was closed).
    pub fn release_table_metadata(&self, bytes: usize) {
        self.table_metadata.fetch_sub(bytes, Ordering::Relaxed);
    }

    /// What one shard may hold now: the capacity less the memtables' loan and the open tables'
    /// metadata, but never less than 1/8 of it, so reads always keep some cache (a database
    /// whose indexes and filters alone pass the capacity goes over the budget by them).
    fn shard_limit(&self) -> usize {
        let lent =
            self.reserved.load(Ordering::Relaxed) + self.table_metadata.load(Ordering::Relaxed);
        self.capacity.saturating_sub(lent).max(self.capacity / 8) / self.shards.len()
    }

    fn shard(&self, key: Key) -> &RwLock<Shard> {
        let h = shard_hash(key);
        // `shards` is never empty (at least 1), so the index is in bounds.
        &self.shards[(h % self.shards.len() as u64) as usize]
    }

    /// The cached block at `offset` of table `file`, marking it recently used.
    pub fn get(&self, file: u64, offset: u64) -> Option<Arc<Block>> {
        let shard = self.shard((file, offset)).read();
        match shard.map.get(&(file, offset)) {
            Some(entry) => {
                entry.referenced.store(true, Ordering::Relaxed);
                self.hits.fetch_add(1, Ordering::Relaxed);
                Some(Arc::clone(&entry.block))
            }
            None => {
                self.misses.fetch_add(1, Ordering::Relaxed);
                None
            }
        }
    }

    /// Cache `block` under `(file, offset)`, charged `charge` bytes, evicting as needed.
    /// A block larger than a shard's capacity is not cached.
    pub fn insert(&self, file: u64, offset: u64, block: Arc<Block>, charge: usize) {
        if self.capacity == 0 || charge > self.shard_capacity {
            return;
        }
        let key = (file, offset);
        let mut guard = self.shard(key).write();
        let shard = &mut *guard;
        self.inserts.fetch_add(1, Ordering::Relaxed);
        let fresh = Entry {
            block,
            charge,
            referenced: AtomicBool::new(false),
        };
        match shard.map.insert(key, fresh) {
            // Replaced in place: the key keeps its place in the FIFO.
            Some(old) => shard.usage -= old.charge,
            None => shard.fifo.push_back(key),
        }
        shard.usage += charge;
        self.evict_over_limit(shard);
    }

    /// Drop every block of table `file` (after the file is deleted).
    pub fn remove_file(&self, file: u64) {
        for shard in self.shards.iter() {
            let mut guard = shard.write();
            let shard = &mut *guard;
            if !shard.fifo.iter().any(|k| k.0 == file) {
                continue;
            }
            shard.fifo.retain(|k| k.0 != file);
            let mut freed = 0;
            shard.map.retain(|k, e| {
                let keep = k.0 != file;
                if !keep {
                    freed += e.charge;
                }
                keep
            });
            shard.usage -= freed;
        }
    }

    /// A snapshot of the counters and the current usage.
    pub fn stats(&self) -> CacheStats {
        let usage: usize = self.shards.iter().map(|s| s.read().usage).sum();
        CacheStats {
            hits: self.hits.load(Ordering::Relaxed),
            misses: self.misses.load(Ordering::Relaxed),
            inserts: self.inserts.load(Ordering::Relaxed),
            evictions: self.evictions.load(Ordering::Relaxed),
            usage_bytes: usage as u64,
            capacity_bytes: self.capacity as u64,
            table_metadata_bytes: self.table_metadata.load(Ordering::Relaxed) as u64,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lending_budget_to_memtables_shrinks_the_cache() {
        let cache = BlockCache::new(4 << 20);
        for i in 0..4096u64 {
            cache.insert(1, i * 1024, block(), 1024);
        }
        assert!(cache.stats().usage_bytes > 3 << 20);
        // The loan takes effect at once, without waiting for inserts: a phase of writes alone
        // must not hold cache and memtables over the budget.
        cache.set_reserved(3 << 20);
        let usage = cache.stats().usage_bytes;
        assert!(
            usage <= 1 << 20,
            "usage {usage} above the unlent part of the budget before any insert"
        );
        for i in 0..64u64 {
            cache.insert(2, i * 1024, block(), 1024);
        }
        let usage = cache.stats().usage_bytes;
        assert!(
            usage <= 1 << 20,
            "usage {usage} above the unlent part of the budget"
        );
        // A loan paid back lets the cache grow again.
        cache.set_reserved(0);
        for i in 0..2048u64 {
            cache.insert(4, i * 1024, block(), 1024);
        }
        assert!(cache.stats().usage_bytes > 1 << 20);
        // Never lends everything.
        cache.set_reserved(usize::MAX);
        cache.insert(3, 0, block(), 1024);
        assert!(cache.get(3, 0).is_some());
    }
    use bytes::Bytes;
    use std::path::Path;

    #[test]
    fn open_tables_metadata_takes_its_room_from_the_blocks_down_to_a_floor() {
        let cache = BlockCache::new(4 << 20);
        let fill = |file: u64| {
            for i in 0..4096u64 {
                cache.insert(file, i * 1024, block(), 1024);
            }
        };
        fill(1);
        assert!(cache.stats().usage_bytes > 3 << 20);
        // Charged at once, without waiting for an insert.
        cache.charge_table_metadata(2 << 20);
        let stats = cache.stats();
        assert_eq!(stats.table_metadata_bytes, 2 << 20);
        assert!(
            stats.usage_bytes + stats.table_metadata_bytes <= 4 << 20,
            "{stats:?}"
        );
        // More metadata than the capacity: blocks keep an eighth of it.
        cache.charge_table_metadata(8 << 20);
        fill(2);
        let usage = cache.stats().usage_bytes;
        assert!(usage > 0 && usage <= (4 << 20) / 8, "usage {usage}");
        // Closed tables give their charge back.
        cache.release_table_metadata(10 << 20);
        assert_eq!(cache.stats().table_metadata_bytes, 0);
        fill(3);
        assert!(cache.stats().usage_bytes > 3 << 20);
    }

    fn block() -> Arc<Block> {
        let empty = Bytes::from_static(&[0, 0, 0, 0]);
        Arc::new(Block::new(empty, Arc::from(Path::new("t.sst")), 0).unwrap())
    }

    #[test]
    fn usage_stays_within_capacity_under_many_inserts() {
        for capacity in [10_000, 3 << 20, 64 << 20] {
            let cache = BlockCache::new(capacity);
            let b = block();
            for i in 0..20_000u64 {
                cache.insert(i % 7, i * 4096, Arc::clone(&b), 4096);
                if i % 3 == 0 {
                    cache.get(i % 7, (i / 2) * 4096);
                }
                assert!(cache.stats().usage_bytes <= capacity as u64);
            }
            let s = cache.stats();
            assert_eq!(s.inserts, 20_000);
            assert!(
                s.usage_bytes > capacity as u64 / 2,
                "cache should fill: {s:?}"
            );
            assert_eq!(s.evictions, 20_000 - s.usage_bytes / 4096);
        }
    }

    #[test]
    fn hot_blocks_survive_a_scan_of_cold_ones() {
        // One shard of ten 100-byte blocks; blocks 0..4 are read between every few cold inserts.
        let cache = BlockCache::new(1000);
        let b = block();
        for hot in 0..4 {
            cache.insert(1, hot, Arc::clone(&b), 100);
        }
        for cold in 100..1100 {
            cache.insert(2, cold, Arc::clone(&b), 100);
            if cold % 4 == 0 {
                for hot in 0..4 {
                    assert!(
                        cache.get(1, hot).is_some(),
                        "hot block {hot} evicted at {cold}"
                    );
                }
            }
        }
        assert!(cache.get(2, 100).is_none());
        assert!(cache.get(2, 1099).is_some());
    }

    #[test]
    fn remove_file_drops_only_that_file() {
        let cache = BlockCache::new(64 << 20);
        let b = block();
        for off in 0..100 {
            cache.insert(1, off, Arc::clone(&b), 10);
            cache.insert(2, off, Arc::clone(&b), 10);
        }
        assert_eq!(cache.stats().usage_bytes, 2000);
        cache.remove_file(1);
        assert_eq!(cache.stats().usage_bytes, 1000);
        assert!((0..100).all(|off| cache.get(1, off).is_none() && cache.get(2, off).is_some()));
        let s = cache.stats();
        assert_eq!((s.hits, s.misses), (100, 100));
    }

    #[test]
    fn capacity_zero_caches_nothing() {
        let cache = BlockCache::new(0);
        cache.insert(1, 0, block(), 1);
        cache.insert(1, 8, block(), 0);
        assert!(cache.get(1, 0).is_none());
        assert!(cache.get(1, 8).is_none());
        assert_eq!(cache.stats().usage_bytes, 0);
        assert_eq!(cache.stats().capacity_bytes, 0);
    }

    #[test]
    fn reinserting_a_key_replaces_its_charge() {
        let cache = BlockCache::new(1000);
        cache.insert(1, 0, block(), 300);
        cache.insert(1, 0, block(), 200);
        assert_eq!(cache.stats().usage_bytes, 200);
    }
}
