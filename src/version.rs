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
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use bytes::Bytes;

use crate::cache::BlockCache;
use crate::error::Result;
use crate::fs::FileSystem;
use crate::iter::InternalIterator;
use crate::key::{user_key, SeqNo, ValueKind};
use crate::manifest::{FileMeta, NUM_LEVELS};
use crate::sstable::Table;

/// An open SSTable and its manifest entry.
pub struct TableHandle {
    pub meta: FileMeta,
    pub table: Arc<Table>,
    obsolete: AtomicBool,
    fs: Arc<dyn FileSystem>,
    path: PathBuf,
    cache: Arc<BlockCache>,
}

impl TableHandle {
    pub fn new(
        meta: FileMeta,
        table: Arc<Table>,
        fs: Arc<dyn FileSystem>,
        path: PathBuf,
        cache: Arc<BlockCache>,
    ) -> Self {
        TableHandle {
            meta,
            table,
            obsolete: AtomicBool::new(false),
            fs,
            path,
            cache,
        }
    }

    /// Delete the file once no version holds this handle any more.
    pub fn mark_obsolete(&self) {
        self.obsolete.store(true, Ordering::Release);
    }

    fn covers(&self, key: &[u8]) -> bool {
        user_key(&self.meta.smallest) <= key && key <= user_key(&self.meta.largest)
    }
}

impl Drop for TableHandle {
    fn drop(&mut self) {
        if self.obsolete.load(Ordering::Acquire) {
            self.cache.remove_file(self.meta.number);
            // A failure leaves an orphan that the next open deletes.
            let _ = self.fs.remove_file(&self.path);
        }
    }
}

/// The live tables, per level.
#[derive(Clone, Default)]
pub struct Version {
    pub levels: Vec<Vec<Arc<TableHandle>>>,
}

impl Version {
    pub fn empty() -> Self {
        Version {
            levels: vec![Vec::new(); NUM_LEVELS],
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

    /// The newest entry for `key` at or below `seq` in any table.
    pub fn get(&self, key: &[u8], seq: SeqNo) -> Result<Option<(ValueKind, Bytes)>> {
        for (level, tables) in self.levels.iter().enumerate() {
            if level == 0 {
                // Overlapping and newest first, but a newer table may only hold versions above
                // `seq`, so keep looking until a table answers.
                for t in tables.iter().filter(|t| t.covers(key)) {
                    if let Some(found) = t.table.get(key, seq)? {
                        return Ok(Some(found));
                    }
                }
            } else {
                let i = tables.partition_point(|t| user_key(&t.meta.largest) < key);
                if let Some(t) = tables.get(i).filter(|t| t.covers(key)) {
                    if let Some(found) = t.table.get(key, seq)? {
                        return Ok(Some(found));
                    }
                }
            }
        }
        Ok(None)
    }

    /// One cursor per table.
    pub fn iterators(&self, out: &mut Vec<Box<dyn InternalIterator>>) {
        for tables in &self.levels {
            for t in tables {
                out.push(Box::new(t.table.iter()));
            }
        }
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
