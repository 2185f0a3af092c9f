//! `Db`: the embedded key-value store.
//!
//! Write path: validate -> WAL append (group commit, one record per batch) -> memtable ->
//! (when full) switch to a new memtable and WAL segment -> background flush to a level-0
//! SSTable -> manifest edit -> obsolete WAL segments deleted.
//!
//! Read path: memtable -> immutable memtables (newest first) -> SSTables (level 0 newest first,
//! then deeper levels), all through one pinned [`SuperVersion`].
//!
//! Invariants:
//! 1. A write is acknowledged only after its WAL record is handed to the OS, and, for a sync
//!    write, fsynced.
//! 2. Sequence numbers are assigned in commit order by the single group-commit leader, and
//!    `visible_seq` is published only after every write up to it is in the memtable.
//! 3. A WAL segment's first fsync happens only after every earlier segment is durable whole,
//!    and is preceded by a mark saying so; a switch itself neither fsyncs nor (with a spare
//!    ready) creates a file (see `segments`).
//! 4. A WAL segment is deleted only after a synced manifest edit says its data is in SSTables.
//! 5. Super versions are replaced under `sv_lock`; a reader loads `visible_seq` *before* the
//!    super version, so the view it gets always holds every write up to its sequence number.

mod backpressure;
pub use backpressure::{Pressure, WriteLimit};
mod compact;
mod flush;
mod output;
mod recovery;
mod segments;
mod write;

use std::collections::BTreeMap;
use std::fmt;
use std::ops::{Bound, RangeBounds};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;

use arc_swap::ArcSwap;
use bytes::Bytes;
use parking_lot::{Condvar, Mutex};

use crate::batch::WriteBatch;
use crate::cache::{BlockCache, CacheStats};
use crate::error::{Error, Result};
use crate::fs::{FileLock, FileSystem};
use crate::iter::db_iter::prefix_successor;
use crate::iter::{DbIter, InternalIterator};
use crate::key::{SeqNo, ValueKind};
use crate::manifest::ManifestWriter;
use crate::memtable::Memtable;
use crate::options::{Options, WriteOptions};
use crate::version::Version;
use crate::wal::LogWriter;

/// Everything a read needs, pinned together: the mutable memtable, the immutable memtables
/// waiting for flush (newest first) and the current version of the SSTables.
pub struct SuperVersion {
    pub mem: Arc<Memtable>,
    pub imms: Vec<Arc<Memtable>>,
    pub version: Arc<Version>,
}

impl SuperVersion {
    fn get(&self, key: &[u8], seq: SeqNo) -> Result<Option<Bytes>> {
        let found = match self.mem.get(key, seq) {
            Some(f) => Some(f),
            None => match self.imms.iter().find_map(|m| m.get(key, seq)) {
                Some(f) => Some(f),
                None => self.version.get(key, seq)?,
            },
        };
        let Some((ValueKind::Value, found_seq, value)) = found else {
            return Ok(None);
        };
        // A range tombstone newer than the version found hides it.
        if self.max_covering_tombstone(key, seq) > found_seq {
            return Ok(None);
        }
        Ok(Some(value))
    }

    /// Largest seq `<= seq` of a range tombstone covering `key` anywhere (0 if none).
    fn max_covering_tombstone(&self, key: &[u8], seq: SeqNo) -> SeqNo {
        let in_memory = std::iter::once(&self.mem)
            .chain(&self.imms)
            .map(|m| m.max_covering_tombstone(key, seq))
            .max()
            .unwrap_or(0);
        in_memory.max(crate::range_del::max_covering(
            self.version.range_dels.iter(),
            key,
            seq,
        ))
    }

    /// Every range tombstone visible at `seq`, fragmented for iteration.
    pub fn fragmented_range_dels(&self, seq: SeqNo) -> crate::range_del::FragmentedRangeDels {
        let mut all: Vec<crate::range_del::RangeTombstone> =
            self.version.range_dels.as_ref().clone();
        for m in std::iter::once(&self.mem).chain(&self.imms) {
            all.extend(m.range_tombstones());
        }
        crate::range_del::FragmentedRangeDels::new(&all, seq)
    }

    /// One cursor per memtable and table, newest source first.
    pub fn iterators(&self) -> Vec<Box<dyn InternalIterator>> {
        let mut out: Vec<Box<dyn InternalIterator>> = Vec::with_capacity(2 + self.imms.len());
        out.push(Box::new(self.mem.iter()));
        for m in &self.imms {
            out.push(Box::new(m.iter()));
        }
        self.version.iterators(&mut out);
        out
    }
}

/// The WAL writer and the sequence counter; owned by the group-commit leader.
struct LogState {
    writer: LogWriter,
    number: u64,
    /// Last sequence number assigned.
    last_seq: SeqNo,
    /// The delay the leader owes while writes are slowed down.
    delay: backpressure::DelayAccount,
    /// The pressure of the version the leader judged last.
    pressure: backpressure::PressureMemo,
}

/// The persistent state: the manifest and the counters it records.
pub(crate) struct VersionSet {
    manifest: ManifestWriter,
    log_number: u64,
    last_sequence: SeqNo,
    current: Arc<Version>,
}

/// A write waiting in the group-commit queue. `batch: None` asks for a memtable switch.
struct PendingWrite {
    batch: Mutex<Option<WriteBatch>>,
    switch_memtable: bool,
    sync: bool,
    /// Where the leader tells this writer that it leads now or that its write is done.
    state: Mutex<WriterState>,
    /// Signalled when `state` leaves `Waiting`; only this write's own thread waits on it.
    wake: Condvar,
}

/// What a queued writer is waiting for (see [`write`](self::write)).
enum WriterState {
    Waiting,
    /// It reached the front of the queue: it leads the next group.
    Leading,
    /// A leader committed it, with this result.
    Done(Result<()>),
}

#[derive(Default)]
struct BgState {
    shutdown: bool,
}

/// Counters shown by [`Db::stats`].
#[derive(Default)]
struct Counters {
    flushes: AtomicU64,
    flush_bytes: AtomicU64,
    wal_bytes: AtomicU64,
    write_groups: AtomicU64,
    writes: AtomicU64,
    stalls: AtomicU64,
    stall_micros: AtomicU64,
    /// Stalls by [`WriteLimit`] (its `index`).
    stalls_by_cause: [AtomicU64; 3],
    /// Sleeps of a write leader held to the delayed rate, by cause, and their total time.
    slowdowns: AtomicU64,
    slowdowns_by_cause: [AtomicU64; 3],
    slowdown_micros: AtomicU64,
    compactions: AtomicU64,
    trivial_moves: AtomicU64,
    compaction_read_bytes: AtomicU64,
    compaction_write_bytes: AtomicU64,
    tables_dropped_by_range_dels: AtomicU64,
    /// Compactions run because writes went idle (level 0 merged down, batched levels tidied).
    idle_compactions: AtomicU64,
    /// Key ranges merged by parallel subcompactions.
    subcompactions: AtomicU64,
    /// When the last write group committed ([`write::monotonic_micros`]); 0 before any.
    last_write_micros: AtomicU64,
    /// Memtable switches (each starts a WAL segment).
    wal_switches: AtomicU64,
    /// Switches that found no spare segment and created one while writers waited.
    segments_created_in_write_path: AtomicU64,
    /// Closed WAL segments fsynced after their switch.
    closed_segment_syncs: AtomicU64,
    /// Bytes written into each level by flushes (L0) and compactions.
    level_written: [AtomicU64; crate::manifest::NUM_LEVELS],
}

pub(crate) struct DbInner {
    dir: PathBuf,
    opts: Options,
    fs: Arc<dyn FileSystem>,
    lock: Mutex<Option<Box<dyn FileLock>>>,
    cache: Arc<BlockCache>,
    tables: Arc<crate::table_cache::TableCache>,

    super_version: ArcSwap<SuperVersion>,
    sv_lock: Mutex<()>,
    visible_seq: AtomicU64,

    write_queue: Mutex<std::collections::VecDeque<Arc<PendingWrite>>>,
    /// How long a sync leader waits for the writers of the last group to come back.
    commit_pacing: write::CommitPacing,
    log: Mutex<LogState>,
    /// WAL segments closed by switches and waiting for their fsync, and the spare segment.
    segments: segments::Segments,
    versions: Mutex<VersionSet>,
    /// Numbers the next manifest, WAL segment or table. Atomic so that no writer ever waits
    /// on the `versions` lock (held across manifest fsyncs) to name a new file.
    next_file_number: AtomicU64,

    bg_state: Mutex<BgState>,
    bg_cv: Condvar,
    /// The flush and compaction threads (empty without background work).
    bg_threads: Mutex<Vec<JoinHandle<()>>>,
    /// Per level, the largest user key of the last compaction there (round-robin picking).
    compact_cursor: Mutex<Vec<Vec<u8>>>,
    /// Held while a compaction runs: one at a time.
    compaction_lock: Mutex<()>,

    poisoned: AtomicBool,
    poison_reason: Mutex<Option<Error>>,
    closed: AtomicBool,
    snapshots: Mutex<BTreeMap<SeqNo, usize>>,
    counters: Counters,
}

impl DbInner {
    fn check_open(&self) -> Result<()> {
        if self.closed.load(Ordering::Acquire) {
            return Err(Error::Closed);
        }
        Ok(())
    }

    fn check_poisoned(&self) -> Result<()> {
        if self.poisoned.load(Ordering::Acquire) {
            let reason = self
                .poison_reason
                .lock()
                .as_ref()
                .map(|e| e.to_string())
                .unwrap_or_default();
            return Err(Error::Poisoned(reason));
        }
        Ok(())
    }

    /// Refuse further writes after `err` (a failed WAL append, fsync, flush or manifest write).
    fn poison(&self, err: &Error) {
        let mut reason = self.poison_reason.lock();
        if reason.is_none() {
            tracing::error!("refusing further writes to {}: {err}", self.dir.display());
            *reason = Some(err.duplicate());
        }
        self.poisoned.store(true, Ordering::Release);
        drop(reason);
        let _guard = self.bg_state.lock();
        self.bg_cv.notify_all();
    }

    /// A fresh file number.
    fn new_file_number(&self) -> u64 {
        self.next_file_number.fetch_add(1, Ordering::Relaxed)
    }

    fn read_view(&self) -> (SeqNo, Arc<SuperVersion>) {
        // Invariant 5: the sequence number first, then the super version.
        let seq = self.visible_seq.load(Ordering::Acquire);
        (seq, self.super_version.load_full())
    }

    fn install_super_version(&self, f: impl FnOnce(&SuperVersion) -> SuperVersion) {
        let _guard = self.sv_lock.lock();
        let current = self.super_version.load();
        let next = Arc::new(f(&current));
        // A flush drops an immutable memtable here: its budget goes back to the cache.
        self.lend_memtable_budget(&next);
        self.super_version.store(next);
    }

    /// With `Options::memtables_share_cache_budget`, lend the block cache's budget to the
    /// memtables of `sv` (called after each commit group and each new super version).
    fn lend_memtable_budget(&self, sv: &SuperVersion) {
        if self.opts.memtables_share_cache_budget {
            let memtables = sv.mem.approximate_size()
                + sv.imms.iter().map(|m| m.approximate_size()).sum::<usize>();
            self.cache.set_reserved(memtables);
        }
    }
}

/// Handle to an open database. Cheap to clone; all clones share one database, which closes
/// when the last clone is dropped (or on [`Db::close`]).
#[derive(Clone)]
pub struct Db {
    handle: Arc<DbHandle>,
}

/// Closes the database when the last `Db` clone goes away.
struct DbHandle {
    inner: Arc<DbInner>,
}

impl Drop for DbHandle {
    fn drop(&mut self) {
        // Errors cannot be reported from drop; call `Db::close` to see them.
        let _ = self.inner.close();
    }
}

impl fmt::Debug for Db {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Db")
            .field("dir", &self.inner().dir)
            .finish()
    }
}

impl Db {
    /// Open (creating if missing) the database in `path` with default options.
    pub fn open(path: impl AsRef<Path>) -> Result<Db> {
        Db::open_with(path, Options::default())
    }

    /// Open the database in `path` with `opts`.
    pub fn open_with(path: impl AsRef<Path>, opts: Options) -> Result<Db> {
        let inner = recovery::open(path.as_ref(), opts)?;
        let inner = Arc::new(inner);
        if inner.opts.background_flush {
            let spawn = |name: &str, work: fn(Arc<DbInner>)| {
                let worker = Arc::clone(&inner);
                std::thread::Builder::new()
                    .name(name.into())
                    .spawn(move || work(worker))
                    .map_err(|e| Error::io("starting a background thread", e))
            };
            let flush = spawn("strata-flush", DbInner::flush_loop)?;
            inner.bg_threads.lock().push(flush);
            let compaction = spawn("strata-compact", DbInner::compaction_loop)?;
            inner.bg_threads.lock().push(compaction);
        }
        Ok(Db {
            handle: Arc::new(DbHandle { inner }),
        })
    }

    fn inner(&self) -> &Arc<DbInner> {
        &self.handle.inner
    }

    /// The database directory.
    pub fn path(&self) -> &Path {
        &self.inner().dir
    }

    /// Set `key` to `value`.
    pub fn put(&self, key: impl AsRef<[u8]>, value: impl AsRef<[u8]>) -> Result<()> {
        let mut b = WriteBatch::new();
        b.put(key, value);
        self.write(b)
    }

    /// Remove `key`.
    pub fn delete(&self, key: impl AsRef<[u8]>) -> Result<()> {
        let mut b = WriteBatch::new();
        b.delete(key);
        self.write(b)
    }

    /// Remove every key in `[start, end)` with one range tombstone (O(1) to write, whatever
    /// the number of keys).
    pub fn delete_range(&self, start: impl AsRef<[u8]>, end: impl AsRef<[u8]>) -> Result<()> {
        let mut b = WriteBatch::new();
        b.delete_range(start, end);
        self.write(b)
    }

    /// Remove every key starting with `prefix` with one range tombstone.
    pub fn delete_prefix(&self, prefix: impl AsRef<[u8]>) -> Result<()> {
        let mut b = WriteBatch::new();
        b.delete_prefix(prefix);
        self.write(b)
    }

    /// Apply `batch` atomically with the database's default durability.
    pub fn write(&self, batch: WriteBatch) -> Result<()> {
        self.write_opt(batch, WriteOptions::default())
    }

    /// Apply `batch` atomically with explicit options.
    pub fn write_opt(&self, batch: WriteBatch, opts: WriteOptions) -> Result<()> {
        self.inner().write(batch, opts)
    }

    /// The current value of `key`.
    pub fn get(&self, key: impl AsRef<[u8]>) -> Result<Option<Bytes>> {
        let inner = self.inner();
        inner.check_open()?;
        let (seq, sv) = inner.read_view();
        sv.get(key.as_ref(), seq)
    }

    /// Iterate over the keys in `range`, in order (`.rev()` for reverse order).
    pub fn range<K: AsRef<[u8]>, R: RangeBounds<K>>(&self, range: R) -> DbIter {
        let (seq, sv) = self.inner().read_view();
        DbIter::new(
            sv,
            seq,
            owned_bound(range.start_bound()),
            owned_bound(range.end_bound()),
        )
    }

    /// Iterate over every key.
    pub fn iter(&self) -> DbIter {
        self.range::<&[u8], _>(..)
    }

    /// Iterate over the keys that start with `prefix`.
    pub fn prefix(&self, prefix: impl AsRef<[u8]>) -> DbIter {
        let (seq, sv) = self.inner().read_view();
        let (lower, upper) = prefix_bounds(prefix.as_ref());
        DbIter::new(sv, seq, lower, upper)
    }

    /// A consistent read view: later writes are invisible to it.
    pub fn snapshot(&self) -> Snapshot {
        let inner = self.inner();
        let (seq, _) = inner.read_view();
        *inner.snapshots.lock().entry(seq).or_insert(0) += 1;
        Snapshot {
            db: self.clone(),
            seq,
        }
    }

    /// Write the memtable to an SSTable now and wait until it is recorded in the manifest.
    pub fn flush(&self) -> Result<()> {
        self.inner().flush_now()
    }

    /// Flush, stop background work, fsync and release the directory lock. Later calls on any
    /// clone fail with [`Error::Closed`]. Dropping the last clone closes too, silently.
    pub fn close(self) -> Result<()> {
        self.inner().close()
    }

    /// Check the whole database: every block of every table against its checksum, each table
    /// against its manifest entry, the shape of the tree (levels 1 and deeper sorted and
    /// non-overlapping), and that every live file exists on disk.
    pub fn verify(&self) -> Result<()> {
        let inner = self.inner();
        inner.check_open()?;
        let (_, sv) = inner.read_view();
        sv.version.check_shape(&inner.dir)?;
        for (_, t) in sv.version.all_tables() {
            let table = t.table()?;
            if !inner.fs.exists(table.path()) {
                return Err(Error::corruption(
                    table.path(),
                    0,
                    "a live table is missing from disk",
                ));
            }
            let props = table.properties();
            if props.smallest_key != t.meta.smallest || props.largest_key != t.meta.largest {
                return Err(Error::corruption(
                    table.path(),
                    0,
                    "key range differs from the manifest",
                ));
            }
            table.verify()?;
        }
        Ok(())
    }

    /// Compact everything down to the last level now (waits for it), dropping every version
    /// and deletion no snapshot needs.
    pub fn compact(&self) -> Result<()> {
        self.flush()?;
        self.inner().compact_all()
    }

    /// Counters and sizes, for monitoring.
    pub fn stats(&self) -> DbStats {
        let inner = self.inner();
        let (seq, sv) = inner.read_view();
        let c = &inner.counters;
        DbStats {
            last_sequence: seq,
            memtable_bytes: sv.mem.approximate_size(),
            immutable_memtables: sv.imms.len(),
            immutable_bytes: sv.imms.iter().map(|m| m.approximate_size()).sum(),
            tables_per_level: sv.version.levels.iter().map(Vec::len).collect(),
            bytes_per_level: sv
                .version
                .levels
                .iter()
                .map(|l| l.iter().map(|t| t.meta.size).sum())
                .collect(),
            flushes: c.flushes.load(Ordering::Relaxed),
            flush_bytes: c.flush_bytes.load(Ordering::Relaxed),
            wal_bytes: c.wal_bytes.load(Ordering::Relaxed),
            writes: c.writes.load(Ordering::Relaxed),
            write_groups: c.write_groups.load(Ordering::Relaxed),
            pacing_waits: inner.commit_pacing.waits.load(Ordering::Relaxed),
            wal_switches: c.wal_switches.load(Ordering::Relaxed),
            segments_created_in_write_path: c
                .segments_created_in_write_path
                .load(Ordering::Relaxed),
            closed_segment_syncs: c.closed_segment_syncs.load(Ordering::Relaxed),
            stalls: c.stalls.load(Ordering::Relaxed),
            stalls_memtables: c.stalls_by_cause[WriteLimit::Memtables.index()]
                .load(Ordering::Relaxed),
            stalls_level0: c.stalls_by_cause[WriteLimit::Level0.index()].load(Ordering::Relaxed),
            stalls_pending_compaction: c.stalls_by_cause[WriteLimit::PendingCompaction.index()]
                .load(Ordering::Relaxed),
            slowdowns: c.slowdowns.load(Ordering::Relaxed),
            slowdown_micros: c.slowdown_micros.load(Ordering::Relaxed),
            slowdowns_level0: c.slowdowns_by_cause[WriteLimit::Level0.index()]
                .load(Ordering::Relaxed),
            slowdowns_pending_compaction: c.slowdowns_by_cause
                [WriteLimit::PendingCompaction.index()]
            .load(Ordering::Relaxed),
            write_pressure: if inner.opts.background_flush {
                backpressure::assess(&sv.version, &inner.opts)
            } else {
                Pressure::None
            },
            pending_compaction_bytes: crate::compaction::pending_compaction_bytes(
                &sv.version,
                &inner.opts,
            ),
            compactions: c.compactions.load(Ordering::Relaxed),
            trivial_moves: c.trivial_moves.load(Ordering::Relaxed),
            idle_compactions: c.idle_compactions.load(Ordering::Relaxed),
            subcompactions: c.subcompactions.load(Ordering::Relaxed),
            compaction_read_bytes: c.compaction_read_bytes.load(Ordering::Relaxed),
            compaction_write_bytes: c.compaction_write_bytes.load(Ordering::Relaxed),
            tables_dropped_by_range_dels: c.tables_dropped_by_range_dels.load(Ordering::Relaxed),
            written_per_level: c
                .level_written
                .iter()
                .map(|b| b.load(Ordering::Relaxed))
                .collect(),
            read_amplification: 1
                + sv.imms.len()
                + sv.version.levels[0].len()
                + sv.version
                    .levels
                    .iter()
                    .skip(1)
                    .filter(|l| !l.is_empty())
                    .count(),
            range_tombstones: sv.version.range_dels.len()
                + std::iter::once(&sv.mem)
                    .chain(&sv.imms)
                    .map(|m| m.range_tombstones().len())
                    .sum::<usize>(),
            stall_micros: c.stall_micros.load(Ordering::Relaxed),
            snapshots: inner.snapshots.lock().values().sum(),
            block_cache: inner.cache.stats(),
            table_cache: inner.tables.stats(),
        }
    }
}

fn owned_bound<K: AsRef<[u8]>>(b: Bound<&K>) -> Bound<Vec<u8>> {
    match b {
        Bound::Included(k) => Bound::Included(k.as_ref().to_vec()),
        Bound::Excluded(k) => Bound::Excluded(k.as_ref().to_vec()),
        Bound::Unbounded => Bound::Unbounded,
    }
}

fn prefix_bounds(prefix: &[u8]) -> (Bound<Vec<u8>>, Bound<Vec<u8>>) {
    let upper = match prefix_successor(prefix) {
        Some(s) => Bound::Excluded(s),
        None => Bound::Unbounded,
    };
    (Bound::Included(prefix.to_vec()), upper)
}

/// A consistent read view of the database at one sequence number.
pub struct Snapshot {
    db: Db,
    seq: SeqNo,
}

impl Snapshot {
    /// The sequence number this snapshot reads at.
    pub fn sequence(&self) -> SeqNo {
        self.seq
    }

    pub fn get(&self, key: impl AsRef<[u8]>) -> Result<Option<Bytes>> {
        let inner = self.db.inner();
        inner.check_open()?;
        let (_, sv) = inner.read_view();
        sv.get(key.as_ref(), self.seq)
    }

    pub fn range<K: AsRef<[u8]>, R: RangeBounds<K>>(&self, range: R) -> DbIter {
        let (_, sv) = self.db.inner().read_view();
        DbIter::new(
            sv,
            self.seq,
            owned_bound(range.start_bound()),
            owned_bound(range.end_bound()),
        )
    }

    pub fn iter(&self) -> DbIter {
        self.range::<&[u8], _>(..)
    }

    pub fn prefix(&self, prefix: impl AsRef<[u8]>) -> DbIter {
        let (_, sv) = self.db.inner().read_view();
        let (lower, upper) = prefix_bounds(prefix.as_ref());
        DbIter::new(sv, self.seq, lower, upper)
    }
}

impl Drop for Snapshot {
    fn drop(&mut self) {
        let mut snaps = self.db.inner().snapshots.lock();
        if let Some(n) = snaps.get_mut(&self.seq) {
            *n -= 1;
            if *n == 0 {
                snaps.remove(&self.seq);
            }
        }
    }
}

/// A point-in-time summary of the database, printed like a dashboard by `Display`.
#[derive(Debug, Clone)]
pub struct DbStats {
    pub last_sequence: SeqNo,
    pub memtable_bytes: usize,
    pub immutable_memtables: usize,
    pub immutable_bytes: usize,
    pub tables_per_level: Vec<usize>,
    pub bytes_per_level: Vec<u64>,
    pub flushes: u64,
    pub flush_bytes: u64,
    pub wal_bytes: u64,
    pub writes: u64,
    pub write_groups: u64,
    /// Times a sync leader waited for the writers of the previous group to come back
    /// (group-commit pacing).
    pub pacing_waits: u64,
    /// Memtable switches, each starting a new WAL segment.
    pub wal_switches: u64,
    /// Switches that found no spare segment ready and created one while writers waited.
    pub segments_created_in_write_path: u64,
    /// Closed WAL segments fsynced after their switch (off the write path unless a sync
    /// writer needed them first).
    pub closed_segment_syncs: u64,
    /// Times writers waited at a hard limit (see [`WriteLimit`]), and for how long in all.
    pub stalls: u64,
    pub stall_micros: u64,
    /// Stalls because the memtables were full (flush behind).
    pub stalls_memtables: u64,
    /// Stalls at `level0_stop_trigger`.
    pub stalls_level0: u64,
    /// Stalls at `hard_pending_compaction_bytes_limit`.
    pub stalls_pending_compaction: u64,
    /// Times the write leader slept to hold writes to the delayed rate (level 0 or pending
    /// compaction bytes past their soft limits), and for how long in all.
    pub slowdowns: u64,
    pub slowdown_micros: u64,
    /// Slowdowns because of level 0.
    pub slowdowns_level0: u64,
    /// Slowdowns because of pending compaction bytes.
    pub slowdowns_pending_compaction: u64,
    /// How the tree's shape presses on writes now.
    pub write_pressure: Pressure,
    /// Estimated bytes compaction must still rewrite to bring every level within target.
    pub pending_compaction_bytes: u64,
    pub compactions: u64,
    pub trivial_moves: u64,
    /// Compactions run because writes went idle (`Options::idle_compaction_delay`): level 0
    /// merged down, and levels batching had let grow past their targets brought back.
    pub idle_compactions: u64,
    /// Key ranges merged in parallel by split compactions (`Options::max_subcompactions`).
    pub subcompactions: u64,
    pub compaction_read_bytes: u64,
    pub compaction_write_bytes: u64,
    /// Tables deleted whole because a range tombstone covered them.
    pub tables_dropped_by_range_dels: u64,
    /// Live range tombstones (memtables and version).
    pub range_tombstones: usize,
    /// Sorted runs a point lookup may probe in the worst case: memtables, level-0 tables and
    /// non-empty deeper levels (bloom filters skip most of them).
    pub read_amplification: usize,
    /// Bytes written into each level (flushes into L0, compactions into the rest).
    pub written_per_level: Vec<u64>,
    pub snapshots: usize,
    pub block_cache: CacheStats,
    /// Open tables (bounded by `Options::max_open_tables`), opens and evictions.
    pub table_cache: crate::table_cache::TableCacheStats,
}

impl fmt::Display for DbStats {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mib = |b: u64| b as f64 / (1024.0 * 1024.0);
        writeln!(f, "last sequence      {}", self.last_sequence)?;
        writeln!(
            f,
            "memtable           {:.1} MiB  (+{} immutable, {:.1} MiB)",
            mib(self.memtable_bytes as u64),
            self.immutable_memtables,
            mib(self.immutable_bytes as u64)
        )?;
        writeln!(
            f,
            "level  tables       size    written  (read amplification {})",
            self.read_amplification
        )?;
        for level in 0..self.tables_per_level.len() {
            let n = self.tables_per_level[level];
            let written = self.written_per_level.get(level).copied().unwrap_or(0);
            if n > 0 || written > 0 {
                writeln!(
                    f,
                    "  L{level}   {n:>6}  {:>7.1} MiB  {:>7.1} MiB",
                    mib(self.bytes_per_level[level]),
                    mib(written)
                )?;
            }
        }
        writeln!(
            f,
            "writes             {} in {} groups ({:.1} per group, {} pacing waits)",
            self.writes,
            self.write_groups,
            self.writes as f64 / self.write_groups.max(1) as f64,
            self.pacing_waits
        )?;
        writeln!(
            f,
            "wal written        {:.1} MiB, {} segment switches ({} created in the write path, {} closed segments synced)",
            mib(self.wal_bytes),
            self.wal_switches,
            self.segments_created_in_write_path,
            self.closed_segment_syncs
        )?;
        writeln!(
            f,
            "flushes            {} ({:.1} MiB)",
            self.flushes,
            mib(self.flush_bytes)
        )?;
        writeln!(
            f,
            "stalls             {} ({} ms): {} memtables full, {} level 0, {} pending compaction",
            self.stalls,
            self.stall_micros / 1000,
            self.stalls_memtables,
            self.stalls_level0,
            self.stalls_pending_compaction
        )?;
        writeln!(
            f,
            "slowdowns          {} ({} ms): {} level 0, {} pending compaction",
            self.slowdowns,
            self.slowdown_micros / 1000,
            self.slowdowns_level0,
            self.slowdowns_pending_compaction
        )?;
        let pressure = match self.write_pressure {
            Pressure::None => "none".to_string(),
            Pressure::Slow {
                cause,
                bytes_per_sec,
            } => format!(
                "{cause}: writes held to {:.1} MiB/s",
                bytes_per_sec as f64 / (1 << 20) as f64
            ),
            Pressure::Stop(cause) => format!("{cause}: writes wait for compaction"),
        };
        writeln!(
            f,
            "write pressure     {pressure}, {:.1} MiB of compaction pending",
            mib(self.pending_compaction_bytes)
        )?;
        let user = self.wal_bytes.max(1) as f64;
        writeln!(
            f,
            "compactions        {} (+{} trivial moves, {} when idle, {} parallel ranges), read {:.1} MiB, wrote {:.1} MiB",
            self.compactions,
            self.trivial_moves,
            self.idle_compactions,
            self.subcompactions,
            mib(self.compaction_read_bytes),
            mib(self.compaction_write_bytes)
        )?;
        if self.wal_bytes > 0 {
            writeln!(
                f,
                "write amp          {:.2} (wal + flush + compaction bytes / wal bytes)",
                (self.wal_bytes + self.flush_bytes + self.compaction_write_bytes) as f64 / user
            )?;
        } else {
            // Nothing written since open (a reopened database compacting): no ratio.
            writeln!(f, "write amp          - (no writes since open)")?;
        }
        writeln!(f, "snapshots          {}", self.snapshots)?;
        writeln!(
            f,
            "range tombstones   {} live, {} tables dropped whole",
            self.range_tombstones, self.tables_dropped_by_range_dels
        )?;
        let c = &self.block_cache;
        let lookups = (c.hits + c.misses).max(1);
        writeln!(
            f,
            "block cache        {:.1}/{:.1} MiB (+{:.1} MiB indexes and filters), {} hits, {} \
             misses ({:.1}% hit)",
            mib(c.usage_bytes),
            mib(c.capacity_bytes),
            mib(c.table_metadata_bytes),
            c.hits,
            c.misses,
            100.0 * c.hits as f64 / lookups as f64
        )?;
        let t = &self.table_cache;
        write!(
            f,
            "open tables        {}/{}, {} opens, {} closed by the cache",
            t.open_tables, t.capacity, t.opens, t.evictions
        )
    }
}
