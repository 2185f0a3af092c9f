//! Flush: immutable memtable -> level-0 SSTable -> manifest edit -> obsolete WAL deleted.
//!
//! Order of durable steps (each fsynced before the next):
//! 1. the table file, then the directory (the new name);
//! 2. the manifest edit adding the table and raising `log_number` past the memtable's WAL;
//! 3. only then the WAL segments below `log_number` are deleted.
//!
//! A crash between 1 and 2 leaves an orphan table (deleted at the next open, its data replayed
//! from the WAL); a crash between 2 and 3 leaves obsolete WAL segments (deleted at the next open).

use std::path::Path;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use super::output::OutputTables;
use super::{DbInner, SuperVersion};
use crate::cache::BlockCache;
use crate::compaction::Retention;
use crate::error::{Error, Result};
use crate::filenames::wal_path;
use crate::fs::FileSystem;
use crate::iter::InternalIterator;
use crate::key::{parse_internal_key, SeqNo};
use crate::manifest::VersionEdit;
use crate::memtable::Memtable;
use crate::options::{Durability, Options};
use crate::table_cache::TableCache;
use crate::version::TableHandle;

/// Write the entries of `mem` that a reader at or above `oldest_visible` could need to one
/// new level-0 table, fsync it and its directory, and open it. `None` if nothing is left.
// The database's file context (fs, dir, options, both caches) plus the flush's own inputs;
// recovery calls it before a `DbInner` exists, so it cannot take `&self`.
#[allow(clippy::too_many_arguments)]
pub(crate) fn write_level0_table(
    fs: &Arc<dyn FileSystem>,
    dir: &Path,
    opts: &Options,
    cache: &Arc<BlockCache>,
    tables: &Arc<TableCache>,
    mem: &Arc<Memtable>,
    oldest_visible: SeqNo,
    new_number: &mut dyn FnMut() -> u64,
) -> Result<Option<Arc<TableHandle>>> {
    let mut out = OutputTables::new(fs, dir, opts, cache, tables, 0, u64::MAX);
    // The memtable's own range tombstones become durable in the same manifest edit as this
    // table, so what they cover need not be written.
    let mut retention =
        Retention::new(oldest_visible, false).with_range_dels(&mem.range_tombstones());
    let mut it = mem.iter();
    it.seek_to_first()?;
    while it.valid() {
        let parsed = parse_internal_key(it.key())
            .ok_or_else(|| Error::corruption(dir, 0, "malformed key in the memtable"))?;
        if retention.keep(&parsed) {
            out.add(it.key(), &it.value(), new_number)?;
        }
        it.next()?;
    }
    Ok(out.finish()?.pop())
}

impl DbInner {
    /// The background flush thread.
    pub(super) fn flush_loop(self: Arc<Self>) {
        self.prepare_spare_segment();
        loop {
            {
                let mut st = self.bg_state.lock();
                loop {
                    let pending = !self.super_version.load().imms.is_empty();
                    if self.poisoned.load(Ordering::Acquire) || (st.shutdown && !pending) {
                        return;
                    }
                    if pending {
                        break;
                    }
                    self.bg_cv.wait(&mut st);
                }
            }
            // The switch that queued this memtable closed its WAL segment and took the spare:
            // sync the one if writes are synced (the next sync write would otherwise wait for
            // it; see `segments`) and make the other.
            if self.opts.durability == Durability::Sync {
                if let Err(e) = self.sync_closed_segments() {
                    self.poison(&e);
                    return;
                }
            }
            self.prepare_spare_segment();
            if let Err(e) = self.flush_oldest_immutable() {
                self.poison(&e);
                return;
            }
            let _guard = self.bg_state.lock();
            self.bg_cv.notify_all();
        }
    }

    /// Flush every immutable memtable on this thread (no background thread, or `flush`).
    pub(super) fn flush_all_immutable(&self) -> Result<()> {
        while self.flush_oldest_immutable()? {}
        if !self.opts.background_flush {
            self.compact_inline()?;
        }
        let _guard = self.bg_state.lock();
        self.bg_cv.notify_all();
        Ok(())
    }

    /// Flush the oldest immutable memtable; `false` if there was none.
    fn flush_oldest_immutable(&self) -> Result<bool> {
        self.check_poisoned()?;
        let Some(imm) = self.super_version.load().imms.last().cloned() else {
            return Ok(false);
        };
        // Not needed for the flush itself (the table will hold the data); without background
        // threads, this is where a synced database syncs its closed segments ahead of the
        // next sync write, as the flush thread would.
        let result = if self.opts.durability == Durability::Sync {
            self.sync_closed_segments()
        } else {
            Ok(())
        }
        .and_then(|()| self.flush_memtable(&imm));
        if let Err(e) = &result {
            self.poison(e);
        }
        result.map(|()| true)
    }

    fn flush_memtable(&self, imm: &Arc<Memtable>) -> Result<()> {
        let oldest_visible = self.oldest_visible_sequence();
        let mut new_number = || self.new_file_number();
        let handle = write_level0_table(
            &self.fs,
            &self.dir,
            &self.opts,
            &self.cache,
            &self.tables,
            imm,
            oldest_visible,
            &mut new_number,
        )?;

        let mut vs = self.versions.lock();
        // The oldest memtable that stays after this one; its WAL is the oldest still needed.
        let next_log = {
            let sv = self.super_version.load();
            let pos = sv.imms.iter().position(|m| Arc::ptr_eq(m, imm));
            match pos {
                Some(p) if p > 0 => sv.imms[p - 1].wal_number(),
                _ => sv.mem.wal_number(),
            }
        };
        let mut edit = VersionEdit {
            log_number: Some(next_log),
            next_file_number: Some(self.next_file_number.load(Ordering::Relaxed)),
            last_sequence: Some(vs.last_sequence.max(imm.max_seq())),
            ..VersionEdit::default()
        };
        if let Some(h) = &handle {
            edit.new_files.push((0, h.meta.clone()));
        }
        edit.new_range_dels = imm.range_tombstones();
        vs.manifest.append(&edit)?;
        let old_log = vs.log_number;
        vs.log_number = next_log;
        vs.last_sequence = vs.last_sequence.max(imm.max_seq());
        if let Some(h) = &handle {
            tracing::debug!(
                "flushed a memtable to table {} ({} bytes)",
                h.meta.number,
                h.meta.size
            );
            vs.current = Arc::new(vs.current.with_l0_table(Arc::clone(h)));
        }
        if !edit.new_range_dels.is_empty() {
            vs.current = Arc::new(vs.current.with_range_dels(&edit.new_range_dels, &[]));
        }
        if let Some(h) = &handle {
            self.counters.flushes.fetch_add(1, Ordering::Relaxed);
            self.counters.level_written[0].fetch_add(h.meta.size, Ordering::Relaxed);
            self.counters
                .flush_bytes
                .fetch_add(h.meta.size, Ordering::Relaxed);
        }
        let version = Arc::clone(&vs.current);
        self.install_super_version(|sv| SuperVersion {
            mem: Arc::clone(&sv.mem),
            imms: sv
                .imms
                .iter()
                .filter(|m| !Arc::ptr_eq(m, imm))
                .cloned()
                .collect(),
            version,
        });
        drop(vs);

        // Invariant 4: the edit is durable, so these segments hold nothing that is needed.
        self.forget_flushed_segments(next_log);
        for n in old_log..next_log {
            let path = wal_path(&self.dir, n);
            if self.fs.exists(&path) {
                // A failure leaves an obsolete segment that the next open deletes.
                let _ = self.fs.remove_file(&path);
            }
        }
        Ok(())
    }
}
