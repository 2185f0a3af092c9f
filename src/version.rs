//! `Version`: the set of live SSTables, level by level, at one point in time.
//!
//! A version is immutable; a flush or compaction makes a new one from the old plus a
//! [`VersionEdit`](crate::manifest::VersionEdit). Readers hold an `Arc<Version>` (through a
//! super version) for as long as they read, which keeps every table in it open.
//!
//! Invariants:
//! - Level 0 tables may overlap; they are kept newest first (by largest sequence number), so a
//!   point lookup can stop at the first table that knows the key.
//! - Tables of levels 1 and deeper do not overlap and are kept in key order.
//! - A table removed from the live set is deleted from disk only when the last version that
//!   holds it is dropped ([`TableHandle`]'s `Drop`), so no reader ever loses a file under it.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use bytes::Bytes;

use crate::cache::BlockCache;
use crate::error::{Error, Result};
use crate::fs::FileSystem;
use crate::iter::InternalIterator;
use crate::key::{user_key, SeqNo, ValueKind};
use crate::manifest::{FileMeta, NUM_LEVELS};
use crate::range_del::RangeTombstone;
use crate::sstable::Table;
use crate::table_cache::TableCache;
use parking_lot::RwLock;

/// A live SSTable: its manifest entry, and the table itself while it is open (see
/// [`TableCache`]: at most `max_open_tables` are).
pub struct TableHandle {
    pub meta: FileMeta,
    /// The open table, or `None` while closed by the table cache.
    slot: RwLock<Option<Arc<Table>>>,
    /// Set on each use; the table cache's CLOCK sweep clears it.
    referenced: AtomicBool,
    obsolete: AtomicBool,
    /// Every flushed range tombstone with a sequence number up to this was applied when the
    /// table was written: it holds nothing they cover. In memory only (0 after a reopen).
    clean_through: AtomicU64,
    fs: Arc<dyn FileSystem>,
    path: PathBuf,
    cache: Arc<BlockCache>,
    tables: Arc<TableCache>,
}

impl TableHandle {
    /// The handle of a table just opened (and checked against `meta`), registered with the
    /// table cache.
    pub fn new(
        meta: FileMeta,
        table: Arc<Table>,
        fs: Arc<dyn FileSystem>,
        path: PathBuf,
        cache: Arc<BlockCache>,
        tables: Arc<TableCache>,
    ) -> Arc<Self> {
        let handle = Arc::new(TableHandle {
            meta,
            slot: RwLock::new(Some(table)),
            referenced: AtomicBool::new(true),
            obsolete: AtomicBool::new(false),
            clean_through: AtomicU64::new(0),
            fs,
            path,
            cache,
            tables,
        });
        handle.tables.admit(&handle);
        handle
    }

    /// A closed handle for `number` with `size` bytes over the whole key space, for tests of
    /// policies that look only at a version's shape.
    #[cfg(test)]
    pub(crate) fn for_test(number: u64, size: u64) -> Arc<Self> {
        let meta = FileMeta {
            number,
            size,
            smallest: crate::key::internal_key(b"", 1, ValueKind::Value as u8),
            largest: crate::key::internal_key(&[0xff; 8], 1, ValueKind::Value as u8),
            min_seq: 0,
            max_seq: 0,
            num_entries: 0,
            num_deletions: 0,
        };
        Arc::new(TableHandle {
            meta,
            slot: RwLock::new(None),
            referenced: AtomicBool::new(false),
            obsolete: AtomicBool::new(false),
            clean_through: AtomicU64::new(0),
            fs: Arc::new(crate::fs::RealFs),
            path: PathBuf::from(format!("/nonexistent/{number}.sst")),
            cache: Arc::new(BlockCache::new(0)),
            tables: TableCache::new(1),
        })
    }

    /// The table, opened again (and checked against the manifest entry) if the table cache
    /// closed it.
    pub fn table(self: &Arc<Self>) -> Result<Arc<Table>> {
        self.mark_used();
        if let Some(t) = self.slot.read().as_ref() {
            return Ok(Arc::clone(t));
        }
        let mut slot = self.slot.write();
        if let Some(t) = slot.as_ref() {
            return Ok(Arc::clone(t));
        }
        let table = open_table(&self.fs, &self.path, &self.meta, &self.cache)?;
        *slot = Some(Arc::clone(&table));
        drop(slot);
        self.tables.admit(self);
        Ok(table)
    }

    /// A point lookup in the table (see [`Table::get`]): on the hot path, so it reads through
    /// the slot without cloning the `Arc` when the table is open.
    pub fn get(
        self: &Arc<Self>,
        key: &[u8],
        seq: SeqNo,
    ) -> Result<Option<(ValueKind, SeqNo, Bytes)>> {
        self.mark_used();
        if let Some(t) = self.slot.read().as_ref() {
            return t.get(key, seq);
        }
        self.table()?.get(key, seq)
    }

    /// Set the use mark, writing the shared flag only when it is clear.
    fn mark_used(&self) {
        if !self.referenced.load(Ordering::Relaxed) {
            self.referenced.store(true, Ordering::Relaxed);
        }
    }

    /// Whether the table was used since the last call (and clear the mark).
    pub(crate) fn take_reference(&self) -> bool {
        self.referenced.swap(false, Ordering::Relaxed)
    }

    /// Close the table (readers holding it finish first); false if it was not open.
    pub(crate) fn close_table(&self) -> bool {
        self.slot.write().take().is_some()
    }

    /// Record that range tombstones up to `seq` were applied when this table was written.
    pub fn set_clean_through(&self, seq: SeqNo) {
        self.clean_through.store(seq, Ordering::Relaxed);
    }

    /// Whether this table can hold entries that tombstone `t` covers.
    pub fn may_hold_covered_by(&self, t: &RangeTombstone) -> bool {
        self.meta.min_seq < t.seq
            && self.clean_through.load(Ordering::Relaxed) < t.seq
            && t.overlaps(user_key(&self.meta.smallest), user_key(&self.meta.largest))
    }

    /// Whether tombstone `t` hides every entry of this table.
    pub fn wholly_covered_by(&self, t: &RangeTombstone) -> bool {
        self.meta.max_seq < t.seq
            && t.covers_range(user_key(&self.meta.smallest), user_key(&self.meta.largest))
    }

    /// Delete the file once no version holds this handle any more.
    pub fn mark_obsolete(&self) {
        self.obsolete.store(true, Ordering::Release);
    }

    fn covers(&self, key: &[u8]) -> bool {
        user_key(&self.meta.smallest) <= key && key <= user_key(&self.meta.largest)
    }
}

/// Open the table at `path` and check that it is the one `meta` describes.
pub fn open_table(
    fs: &Arc<dyn FileSystem>,
    path: &std::path::Path,
    meta: &FileMeta,
    cache: &Arc<BlockCache>,
) -> Result<Arc<Table>> {
    let reader = fs.open(path).map_err(|e| {
        if e.kind() == std::io::ErrorKind::NotFound {
            Error::corruption(path, 0, "a table named in the manifest is missing")
        } else {
            Error::io(format!("opening {}", path.display()), e)
        }
    })?;
    let table = Table::open(reader, path.to_path_buf(), meta.number, Arc::clone(cache))?;
    check_table_identity(table.properties(), meta, path)?;
    Ok(table)
}

/// Check that the table opened under `meta`'s name is the one the manifest describes: its
/// footer names the same file number (so another table's bytes under this name are caught,
/// even one of the same size), and its size, key range, sequence range and counts agree.
fn check_table_identity(
    props: &crate::sstable::TableProperties,
    meta: &FileMeta,
    path: &std::path::Path,
) -> Result<()> {
    let bad = |reason: String| Err(Error::corruption(path, 0, reason));
    if props.file_number != meta.number {
        return bad(format!(
            "the table's footer says it is table {}, but it is named as table {}: another \
             table's bytes under this name",
            props.file_number, meta.number
        ));
    }
    if props.file_size != meta.size {
        return bad(format!(
            "size is {} bytes but the manifest says {}",
            props.file_size, meta.size
        ));
    }
    let same = props.smallest_key == meta.smallest
        && props.largest_key == meta.largest
        && props.min_seq == meta.min_seq
        && props.max_seq == meta.max_seq
        && props.num_entries == meta.num_entries
        && props.num_deletions == meta.num_deletions;
    if !same {
        return bad(
            "the table's key range, sequence range or counts differ from the manifest's".into(),
        );
    }
    Ok(())
}

impl Drop for TableHandle {
    fn drop(&mut self) {
        if self.slot.get_mut().is_some() {
            self.tables.closed();
        }
        if self.obsolete.load(Ordering::Acquire) {
            self.cache.remove_file(self.meta.number);
            // A failure leaves an orphan that the next open deletes.
            let _ = self.fs.remove_file(&self.path);
        }
    }
}

/// The live tables, per level, and the range tombstones that apply to them.
#[derive(Clone)]
pub struct Version {
    pub levels: Vec<Vec<Arc<TableHandle>>>,
    /// Flushed range tombstones still needed (see `range_del`), in sequence order.
    pub range_dels: Arc<Vec<RangeTombstone>>,
}

/// The empty version: every level present, with no tables (as [`Version::empty`]).
impl Default for Version {
    fn default() -> Self {
        Version::empty()
    }
}

impl Version {
    pub fn empty() -> Self {
        Version {
            levels: vec![Vec::new(); NUM_LEVELS],
            range_dels: Arc::new(Vec::new()),
        }
    }

    /// A copy of this version with `table` added to level 0.
    pub fn with_l0_table(&self, table: Arc<TableHandle>) -> Version {
        let mut v = self.clone();
        v.levels[0].insert(0, table);
        v.sort_levels();
        v
    }

    /// Restore the ordering invariants after edits.
    pub fn sort_levels(&mut self) {
        if let Some(l0) = self.levels.first_mut() {
            l0.sort_by(|a, b| {
                b.meta
                    .max_seq
                    .cmp(&a.meta.max_seq)
                    .then(b.meta.number.cmp(&a.meta.number))
            });
        }
        for level in self.levels.iter_mut().skip(1) {
            level.sort_by(|a, b| crate::key::compare_internal(&a.meta.smallest, &b.meta.smallest));
        }
    }

    /// A copy with tombstones added and the ones with the `retired` sequence numbers removed.
    pub fn with_range_dels(&self, added: &[RangeTombstone], retired: &[SeqNo]) -> Version {
        if added.is_empty() && retired.is_empty() {
            return self.clone();
        }
        let mut v = self.clone();
        let mut dels: Vec<RangeTombstone> = v
            .range_dels
            .iter()
            .filter(|t| !retired.contains(&t.seq))
            .cloned()
            .collect();
        dels.extend(added.iter().cloned());
        dels.sort_by_key(|t| t.seq);
        v.range_dels = Arc::new(dels);
        v
    }

    /// The newest entry for `key` at or below `seq` in any table: kind, sequence, value.
    pub fn get(&self, key: &[u8], seq: SeqNo) -> Result<Option<(ValueKind, SeqNo, Bytes)>> {
        for (level, tables) in self.levels.iter().enumerate() {
            if level == 0 {
                // Overlapping and newest first, but a newer table may only hold versions above
                // `seq`, so keep looking until a table answers.
                for t in tables.iter().filter(|t| t.covers(key)) {
                    if let Some(found) = t.get(key, seq)? {
                        return Ok(Some(found));
                    }
                }
            } else {
                let i = tables.partition_point(|t| user_key(&t.meta.largest) < key);
                if let Some(t) = tables.get(i).filter(|t| t.covers(key)) {
                    if let Some(found) = t.get(key, seq)? {
                        return Ok(Some(found));
                    }
                }
            }
        }
        Ok(None)
    }

    /// One cursor per level-0 table and one per deeper level.
    pub fn iterators(&self, out: &mut Vec<Box<dyn InternalIterator>>) {
        for (level, tables) in self.levels.iter().enumerate() {
            if level == 0 {
                for t in tables {
                    // One table per cursor: it opens the table at its first seek.
                    out.push(Box::new(LevelIter::new(vec![Arc::clone(t)])));
                }
            } else if !tables.is_empty() {
                out.push(Box::new(LevelIter::new(tables.clone())));
            }
        }
    }

    /// A new version: this one with `deleted` (level, number) removed and `added` inserted.
    pub fn apply(&self, deleted: &[(usize, u64)], added: &[(usize, Arc<TableHandle>)]) -> Version {
        let mut v = self.clone();
        for &(level, number) in deleted {
            v.levels[level].retain(|t| t.meta.number != number);
        }
        for (level, t) in added {
            v.levels[*level].push(Arc::clone(t));
        }
        v.sort_levels();
        v
    }

    /// Check the ordering invariants: level 0 newest first; deeper levels sorted by key with
    /// no user key in two files.
    pub fn check_shape(&self, dir: &std::path::Path) -> Result<()> {
        let bad = |reason: String| crate::error::Error::corruption(dir, 0, reason);
        for pair in self.levels[0].windows(2) {
            if pair[0].meta.max_seq < pair[1].meta.max_seq {
                return Err(bad("level 0 is not ordered newest first".into()));
            }
        }
        for (level, tables) in self.levels.iter().enumerate().skip(1) {
            for t in tables {
                if crate::key::compare_internal(&t.meta.smallest, &t.meta.largest).is_gt() {
                    return Err(bad(format!(
                        "table {} has smallest > largest",
                        t.meta.number
                    )));
                }
            }
            for pair in tables.windows(2) {
                if user_key(&pair[0].meta.largest) >= user_key(&pair[1].meta.smallest) {
                    return Err(bad(format!(
                        "tables {} and {} overlap at level {level}",
                        pair[0].meta.number, pair[1].meta.number
                    )));
                }
            }
        }
        Ok(())
    }

    /// Total file bytes in `level`.
    pub fn level_bytes(&self, level: usize) -> u64 {
        self.levels[level].iter().map(|t| t.meta.size).sum()
    }

    /// The tables of `level` whose user-key range intersects `[smallest, largest]` (user keys).
    pub fn overlapping(
        &self,
        level: usize,
        smallest: &[u8],
        largest: &[u8],
    ) -> Vec<Arc<TableHandle>> {
        self.levels[level]
            .iter()
            .filter(|t| {
                user_key(&t.meta.largest) >= smallest && user_key(&t.meta.smallest) <= largest
            })
            .cloned()
            .collect()
    }

    pub fn all_tables(&self) -> impl Iterator<Item = (usize, &Arc<TableHandle>)> {
        self.levels
            .iter()
            .enumerate()
            .flat_map(|(l, ts)| ts.iter().map(move |t| (l, t)))
    }

    pub fn num_tables(&self) -> usize {
        self.levels.iter().map(Vec::len).sum()
    }
}

/// A cursor over the tables of one level >= 1: they do not overlap and are in key order, so
/// the level reads as one sorted run. Tables are entered lazily, one at a time.
pub struct LevelIter {
    tables: Vec<Arc<TableHandle>>,
    index: usize,
    current: Option<crate::sstable::TableIter>,
    /// Whether blocks read from the files are added to the block cache.
    fill_cache: bool,
}

impl LevelIter {
    pub fn new(tables: Vec<Arc<TableHandle>>) -> Self {
        LevelIter {
            tables,
            index: 0,
            current: None,
            fill_cache: true,
        }
    }

    /// A cursor for compaction: blocks it reads from the files are not added to the block
    /// cache (see `Table::iter_without_filling_cache`).
    pub fn for_compaction(tables: Vec<Arc<TableHandle>>) -> Self {
        LevelIter {
            fill_cache: false,
            ..LevelIter::new(tables)
        }
    }

    fn open(&mut self, index: usize) -> Result<&mut crate::sstable::TableIter> {
        // If the open fails the cursor is left invalid, not on the previous table.
        self.current = None;
        self.index = index;
        let table = self.tables[index].table()?;
        let cursor = if self.fill_cache {
            table.iter()
        } else {
            table.iter_without_filling_cache()
        };
        Ok(self.current.insert(cursor))
    }

    /// Move forward through empty tails until a valid entry or the end.
    fn skip_forward(&mut self) -> Result<()> {
        while self.current.as_ref().is_some_and(|c| !c.valid()) {
            if self.index + 1 >= self.tables.len() {
                self.current = None;
                return Ok(());
            }
            let next = self.index + 1;
            self.open(next)?.seek_to_first()?;
        }
        Ok(())
    }

    fn skip_backward(&mut self) -> Result<()> {
        while self.current.as_ref().is_some_and(|c| !c.valid()) {
            if self.index == 0 {
                self.current = None;
                return Ok(());
            }
            let prev = self.index - 1;
            self.open(prev)?.seek_to_last()?;
        }
        Ok(())
    }
}

impl InternalIterator for LevelIter {
    fn valid(&self) -> bool {
        self.current.as_ref().is_some_and(|c| c.valid())
    }

    fn seek_to_first(&mut self) -> Result<()> {
        if self.tables.is_empty() {
            self.current = None;
            return Ok(());
        }
        self.open(0)?.seek_to_first()?;
        self.skip_forward()
    }

    fn seek_to_last(&mut self) -> Result<()> {
        if self.tables.is_empty() {
            self.current = None;
            return Ok(());
        }
        let last = self.tables.len() - 1;
        self.open(last)?.seek_to_last()?;
        self.skip_backward()
    }

    fn seek(&mut self, target: &[u8]) -> Result<()> {
        // The first table whose largest key is >= target.
        let i = self
            .tables
            .partition_point(|t| crate::key::compare_internal(&t.meta.largest, target).is_lt());
        if i >= self.tables.len() {
            self.current = None;
            return Ok(());
        }
        self.open(i)?.seek(target)?;
        self.skip_forward()
    }

    fn seek_for_prev(&mut self, target: &[u8]) -> Result<()> {
        // The last table whose smallest key is <= target.
        let i = self
            .tables
            .partition_point(|t| crate::key::compare_internal(&t.meta.smallest, target).is_le());
        if i == 0 {
            self.current = None;
            return Ok(());
        }
        self.open(i - 1)?.seek_for_prev(target)?;
        self.skip_backward()
    }

    fn next(&mut self) -> Result<()> {
        if let Some(c) = self.current.as_mut() {
            c.next()?;
        }
        self.skip_forward()
    }

    fn prev(&mut self) -> Result<()> {
        if let Some(c) = self.current.as_mut() {
            c.prev()?;
        }
        self.skip_backward()
    }

    fn key(&self) -> &[u8] {
        self.current.as_ref().map_or(&[], |c| c.key())
    }

    fn value(&self) -> Bytes {
        self.current.as_ref().map_or_else(Bytes::new, |c| c.value())
    }
}
