//! Options: every tunable in one place, each with its default and why.

use std::sync::Arc;
use std::time::Duration;

use crate::fs::{FileSystem, RealFs};
use crate::sstable::Compression;

/// When a write counts as acknowledged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Durability {
    /// fsync the write-ahead log before acknowledging: nothing acknowledged is ever lost, even
    /// on power loss. Concurrent writers share one fsync (group commit).
    Sync,
    /// Hand the log record to the operating system and acknowledge: survives a process crash;
    /// after a power loss the database holds a prefix of the acknowledged writes, never a hole.
    NoSync,
}

/// Options for opening a database. Build with [`Options::default`] and the `with_*` methods.
#[derive(Debug, Clone)]
pub struct Options {
    /// Create the directory and an empty database if none exists. Default: true.
    pub create_if_missing: bool,
    /// Fail if a database already exists. Default: false.
    pub error_if_exists: bool,
    /// Default durability of writes (each write may override it). Default: `Sync`.
    pub durability: Durability,
    /// Memtable size that triggers a switch to a new memtable and a flush. Default: 64 MiB, as
    /// RocksDB: large enough that flushes write big sequential files.
    pub write_buffer_size: usize,
    /// Immutable memtables that may wait for flush before writers stall. Default: 2.
    pub max_immutable_memtables: usize,
    /// Uncompressed size of an SSTable data block. Default: 4 KiB, one page.
    pub block_size: usize,
    /// Keys between restart points in a data block (prefix compression vs. seek cost).
    /// Default: 4. A point lookup binary-searches the restart points and then scans at most
    /// this many entries; with 100-byte values, 16 (LevelDB's default) made that scan the
    /// largest cost of a cached read (`cargo bench --bench engine`: 1.44 µs at 16, 1.17 at 4,
    /// 1.35 at 2), for under 1% more space than 16 with random keys.
    pub block_restart_interval: usize,
    /// Bloom filter bits per key; 10 gives about 1% false positives. 0 disables filters.
    pub bloom_bits_per_key: usize,
    /// Compression of SSTable data blocks (on every level unless `bottommost_compression`
    /// says otherwise). Default: `Lz4`, fast enough to decompress that a cache miss barely
    /// notices it, while repetitive data shrinks a lot (values of half random, half repeated
    /// bytes: to 57% of the file); a block that does not shrink by at least 1/8 is stored raw.
    pub compression: Compression,
    /// Compression of the last level, where about 90% of the data rests with dynamic level
    /// sizes and is rewritten least often, so a stronger codec such as `Some(Zstd(3))` saves
    /// the most space for the least extra work (as RocksDB users set it). Default: `None`,
    /// the same as `compression`. One override rather than a per-level list: the choice that
    /// matters is hot levels vs. the bottom, and it cannot disagree with the number of levels.
    pub bottommost_compression: Option<Compression>,
    /// Bytes of decoded blocks kept in the block cache. Default: 64 MiB.
    pub block_cache_capacity: usize,
    /// Make `block_cache_capacity` one budget shared by the block cache and the memtables:
    /// memtable bytes are lent out of the cache (up to 7/8 of it), as RocksDB's write buffer
    /// manager charges memtables to the block cache. Default: false.
    pub memtables_share_cache_budget: bool,
    /// Largest accepted key. Default: 64 KiB.
    pub max_key_size: usize,
    /// Largest accepted value. Default: 64 MiB.
    pub max_value_size: usize,
    /// Run flushes and compactions on background threads. Default: true. When false they run
    /// on the writing thread (after a memtable switch), which makes a run deterministic:
    /// the crash and fault-injection tests use it.
    pub background_flush: bool,
    /// Cap on the bytes of live WAL segments (the current one plus those of memtables waiting
    /// for flush); past it the memtable is switched and flushed early, so recovery never
    /// replays more than this. Default: 256 MiB (RocksDB's `max_total_wal_size` idea).
    pub max_total_wal_size: u64,
    /// Append to WAL segments through a shared memory mapping of the file (`memcpy` into the
    /// page cache) instead of a `write` system call per commit group; see
    /// [`MappedLogFile`](crate::fs::MappedLogFile). Same promise: an acknowledged write
    /// survives a crash of the process either way, and a power cut only once synced. The
    /// segment's space is allocated (`fallocate`) a MiB ahead, so a full disk is an error
    /// before a write is acknowledged, not a signal. Only ext2/3/4, XFS and tmpfs are mapped:
    /// on copy-on-write or network file systems a store into allocated space can still fail,
    /// which in a mapping kills the process, so they get `write` whatever this says. Default:
    /// true.
    pub mapped_wal: bool,
    /// Level-0 files that trigger a compaction into the base level. Default: 4 (RocksDB).
    pub level0_compaction_trigger: usize,
    /// Once the tree is deep (level 0 compacts into a level above the last one, because the
    /// last level outgrew `max_bytes_for_level_base`), level 0 waits for this many times
    /// `level0_compaction_trigger` files, and each level between the base and the last for
    /// this many times its target size, before they are compacted down. Larger batches mean
    /// the last level, the largest, is rewritten less often: at 10,000,000 random keys a
    /// factor of 2 cut the bytes flushes and compactions write by about a fifth (a third on
    /// overwrite), at the price of more data above the last level (space amplification after
    /// overwrite about 1.4 instead of 1.2) and more level-0 tables for reads to check while
    /// writes keep coming. 1 compacts each level as soon as it is over. Once writes go idle
    /// (`idle_compaction_delay`) the batching is dropped and each level is brought within its
    /// plain target. Default: 2.
    pub deep_tree_batching: usize,
    /// When no write has arrived for this long, the compaction thread tidies the tree: level
    /// 0 (two tables or more) is merged into the base level, so that a database loaded and
    /// then read serves each scan from one sorted run per level rather than one per level-0
    /// table, and each level that `deep_tree_batching` let grow past its target is brought
    /// back within it, so the space of overwritten versions waiting above the last level is
    /// reclaimed (space amplification back near 1.1). It spends idle time only: while writes
    /// keep coming, the count triggers and batched targets alone decide. Default: 1 s;
    /// `None` turns it off.
    pub idle_compaction_delay: Option<Duration>,
    /// Level-0 files at which writes start to slow down, so compaction can catch up: between
    /// this and `level0_stop_trigger` the write rate is held to `delayed_write_rate`, falling
    /// linearly to 1/16 of it as level 0 grows. 0 turns it off. Default: 20 (RocksDB).
    pub level0_slowdown_trigger: usize,
    /// Level-0 files at which writes wait for compaction. Level 0 is compacted at this count
    /// at the latest (whatever `level0_compaction_trigger` and batching say), so a stall
    /// always has a compaction to wait for. 0 turns it off. Default: 36 (RocksDB).
    pub level0_stop_trigger: usize,
    /// Estimated bytes compaction still has to rewrite (`DbStats::pending_compaction_bytes`)
    /// at which writes start to slow down, as for `level0_slowdown_trigger`. 0 turns it off.
    /// Default: 64 GiB (RocksDB).
    pub soft_pending_compaction_bytes_limit: u64,
    /// Estimated pending compaction bytes at which writes wait for compaction. 0 turns it
    /// off. Default: 256 GiB (RocksDB).
    pub hard_pending_compaction_bytes_limit: u64,
    /// The rate, in bytes per second, that writes are held to at the soft limits (a writer
    /// already slower is not delayed); it falls linearly to 1/16 of this at the hard limits.
    /// Default: 64 MiB/s.
    pub delayed_write_rate: u64,
    /// Target size of the base level (the level level-0 compacts into). Default: 256 MiB, the
    /// size of four level-0 files, so an L0 compaction merges inputs of similar size.
    pub max_bytes_for_level_base: u64,
    /// Each level's target is this many times the one above it. Default: 10.
    pub max_bytes_for_level_multiplier: u64,
    /// Compaction output files are cut near this size. Default: 32 MiB: small enough that a
    /// compaction of one file into the next level rewrites little, large enough to keep the
    /// file count and open-file cost low.
    pub target_file_size: u64,
    /// A compaction of at least twice `target_file_size` is split by user key into up to this
    /// many ranges merged on parallel threads (RocksDB's subcompactions). Default: the number
    /// of CPUs, at most 4; 1 merges every compaction on the compaction thread alone. Without
    /// `background_flush` compactions always run on one thread (a deterministic run).
    pub max_subcompactions: usize,
    /// At most this many tables are open at once (each holds a file descriptor, its index and
    /// its bloom filter); the least recently used ones are closed and reopened on demand.
    /// Default: 1000 (LevelDB's `max_open_files`).
    pub max_open_tables: usize,
    /// The file system; tests substitute a fault-injecting one.
    pub fs: Arc<dyn FileSystem>,
}

/// The number of CPUs, asked once per process (it reads cgroup files, which showed up in the
/// profile of tests that open thousands of databases).
fn cpus() -> usize {
    static CPUS: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    *CPUS.get_or_init(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
}

impl Default for Options {
    fn default() -> Self {
        Options {
            create_if_missing: true,
            error_if_exists: false,
            durability: Durability::Sync,
            write_buffer_size: 64 << 20,
            max_immutable_memtables: 2,
            block_size: 4096,
            block_restart_interval: 4,
            bloom_bits_per_key: 10,
            compression: Compression::Lz4,
            bottommost_compression: None,
            block_cache_capacity: 64 << 20,
            memtables_share_cache_budget: false,
            max_key_size: 64 << 10,
            max_value_size: 64 << 20,
            background_flush: true,
            max_total_wal_size: 256 << 20,
            mapped_wal: true,
            level0_compaction_trigger: 4,
            deep_tree_batching: 2,
            idle_compaction_delay: Some(Duration::from_secs(1)),
            level0_slowdown_trigger: 20,
            level0_stop_trigger: 36,
            soft_pending_compaction_bytes_limit: 64 << 30,
            hard_pending_compaction_bytes_limit: 256 << 30,
            delayed_write_rate: 64 << 20,
            max_bytes_for_level_base: 256 << 20,
            max_bytes_for_level_multiplier: 10,
            target_file_size: 32 << 20,
            max_subcompactions: cpus().min(4),
            max_open_tables: 1000,
            fs: Arc::new(RealFs),
        }
    }
}

impl Options {
    pub fn with_durability(mut self, d: Durability) -> Self {
        self.durability = d;
        self
    }
    pub fn with_write_buffer_size(mut self, bytes: usize) -> Self {
        self.write_buffer_size = bytes;
        self
    }
    pub fn with_block_size(mut self, bytes: usize) -> Self {
        self.block_size = bytes;
        self
    }
    pub fn with_block_cache_capacity(mut self, bytes: usize) -> Self {
        self.block_cache_capacity = bytes;
        self
    }
    pub fn with_bloom_bits_per_key(mut self, bits: usize) -> Self {
        self.bloom_bits_per_key = bits;
        self
    }
    pub fn with_compression(mut self, c: Compression) -> Self {
        self.compression = c;
        self
    }
    pub fn with_bottommost_compression(mut self, c: Option<Compression>) -> Self {
        self.bottommost_compression = c;
        self
    }
    pub fn with_create_if_missing(mut self, yes: bool) -> Self {
        self.create_if_missing = yes;
        self
    }
    pub fn with_error_if_exists(mut self, yes: bool) -> Self {
        self.error_if_exists = yes;
        self
    }
    pub fn with_background_flush(mut self, yes: bool) -> Self {
        self.background_flush = yes;
        self
    }
    pub fn with_idle_compaction_delay(mut self, delay: Option<Duration>) -> Self {
        self.idle_compaction_delay = delay;
        self
    }
    pub fn with_memtables_share_cache_budget(mut self, yes: bool) -> Self {
        self.memtables_share_cache_budget = yes;
        self
    }
    pub fn with_mapped_wal(mut self, yes: bool) -> Self {
        self.mapped_wal = yes;
        self
    }
    pub fn with_deep_tree_batching(mut self, factor: usize) -> Self {
        self.deep_tree_batching = factor;
        self
    }
    pub fn with_max_subcompactions(mut self, ways: usize) -> Self {
        self.max_subcompactions = ways;
        self
    }
    pub fn with_max_open_tables(mut self, tables: usize) -> Self {
        self.max_open_tables = tables;
        self
    }
    pub fn with_fs(mut self, fs: Arc<dyn FileSystem>) -> Self {
        self.fs = fs;
        self
    }
}

/// Per-write options.
#[derive(Debug, Clone, Copy, Default)]
pub struct WriteOptions {
    /// Override the database's durability for this write; `None` uses `Options::durability`.
    pub durability: Option<Durability>,
}

impl WriteOptions {
    pub fn sync() -> Self {
        WriteOptions {
            durability: Some(Durability::Sync),
        }
    }
    pub fn no_sync() -> Self {
        WriteOptions {
            durability: Some(Durability::NoSync),
        }
    }
}
