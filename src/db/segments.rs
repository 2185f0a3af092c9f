//! WAL segment rotation off the write path.
//!
//! A memtable switch starts a new WAL segment. Done naively, the group-commit leader would
//! fsync the old segment (up to `write_buffer_size` of dirty pages) and create and name the new
//! one durably while every writer waits behind it. Instead:
//!
//! - **The new segment is made ahead of time.** The flush thread keeps one empty *spare*
//!   segment, created and named durably (directory fsync) off the write path; a switch takes
//!   it. Only when no spare is ready (no background threads, or the flush thread is behind)
//!   does the leader create one itself, counted in the stats.
//! - **The old segment is fsynced after the switch**, by the flush thread before it flushes
//!   that memtable, and writes go on into the new segment meanwhile. Only when the database's
//!   durability is `Sync`: under `NoSync` a closed segment is fsynced only if a sync write
//!   (`WriteOptions::sync`) needs it first (invariant 3), and otherwise is deleted unsynced
//!   once its memtable is flushed, so the kernel drops its dirty pages instead of writing
//!   back a log nobody will read (RocksDB's unsynced WAL files behave the same way). After a
//!   power loss a torn closed segment is then a crash point like a torn last one: recovery
//!   keeps the prefix before the tear and drops the later segments (see `recovery`).
//!
//! Invariant (DESIGN.md, invariant 3): a segment's first fsync happens only after every
//! earlier segment is durable whole, and is preceded in the segment by a
//! [`TYPE_EARLIER_SEGMENTS_SYNCED`](crate::wal::format::TYPE_EARLIER_SEGMENTS_SYNCED) mark.
//! So a sync write is never acknowledged while an earlier segment could still be torn, and at
//! recovery a torn closed segment is a crash (the later segments hold nothing durable and are
//! dropped) unless a later segment carries a mark, which makes it corruption.
//!
//! Spare numbers: a spare is numbered when it is created, so a spare older than the segment
//! in use (possible only if the leader created a segment itself while the flush thread was
//! making a spare) would sort before it at recovery. A switch therefore only takes a spare
//! numbered above the current segment, and deletes any other.

use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;

use parking_lot::{Condvar, Mutex};

use super::DbInner;
use crate::error::{Error, Result};
use crate::filenames::wal_path;
use crate::fs::FileSystem;
use crate::wal::LogWriter;

/// The WAL segments waiting for their fsync and the spare; part of [`DbInner`].
#[derive(Default)]
pub(super) struct Segments {
    closed: Mutex<ClosedSegments>,
    /// Signalled when a sync of closed segments completes.
    synced_cv: Condvar,
    spare: Mutex<Option<SpareSegment>>,
}

#[derive(Default)]
struct ClosedSegments {
    /// Segments closed by a switch and not yet fsynced, oldest first, with their numbers.
    pending: Vec<(u64, LogWriter)>,
    /// A thread is fsyncing segments taken from `pending`.
    syncing: bool,
    /// A sync failed: every later caller gets the error (the pages it dropped are gone).
    failed: Option<Error>,
}

/// An empty segment, created and durably named, waiting for the next switch.
pub(super) struct SpareSegment {
    number: u64,
    writer: LogWriter,
}

impl DbInner {
    /// Hand a segment a switch closed to whoever syncs next (the flush thread, or a sync leader
    /// that gets there first).
    pub(super) fn close_segment(&self, number: u64, writer: LogWriter) {
        self.segments.closed.lock().pending.push((number, writer));
    }

    /// Drop, without an fsync, the closed segments numbered below `log_number`: a flush made
    /// them obsolete (their memtables are in tables a durable manifest edit names) and is
    /// about to delete them. Without this an unsynced segment's pages would still be forced to
    /// disk by the next sync for nothing, and under `NoSync` the kernel would write back a
    /// log that is deleted anyway instead of dropping its dirty pages.
    pub(super) fn forget_flushed_segments(&self, log_number: u64) {
        self.segments
            .closed
            .lock()
            .pending
            .retain(|(number, _)| *number >= log_number);
    }

    /// Make every segment closed so far durable whole. Returns once that is true, whether this
    /// thread did the fsyncs or waited for another thread doing them.
    pub(super) fn sync_closed_segments(&self) -> Result<()> {
        let segments = &self.segments;
        let mut closed = segments.closed.lock();
        loop {
            if let Some(e) = &closed.failed {
                return Err(e.duplicate());
            }
            if closed.syncing {
                segments.synced_cv.wait(&mut closed);
                continue;
            }
            if closed.pending.is_empty() {
                return Ok(());
            }
            let mut batch = std::mem::take(&mut closed.pending);
            closed.syncing = true;
            drop(closed);
            // The list's lock is not held across the fsyncs: a switch may close another
            // segment meanwhile; it joins `pending` and the loop syncs it next.
            let result = batch
                .iter_mut()
                .try_for_each(|(_, w)| w.release_preallocation().and_then(|()| w.sync()));
            if result.is_ok() {
                self.counters
                    .closed_segment_syncs
                    .fetch_add(batch.len() as u64, Ordering::Relaxed);
            }
            closed = segments.closed.lock();
            closed.syncing = false;
            if let Err(e) = result {
                closed.failed = Some(e.duplicate());
            }
            segments.synced_cv.notify_all();
        }
    }

    /// Create the spare segment if there is none (flush thread). A failure is only logged: the
    /// next switch then creates its segment itself and reports the error to the writers.
    pub(super) fn prepare_spare_segment(&self) {
        if self.segments.spare.lock().is_some() {
            return;
        }
        // Created without holding the lock, so a switch never waits for this I/O; if the
        // switch finds no spare meanwhile it makes its own, and this one, numbered below it,
        // is deleted by the next switch (see the module docs).
        let number = self.new_file_number();
        match self.create_segment(number) {
            Ok(writer) => {
                let mut spare = self.segments.spare.lock();
                if spare.is_none() {
                    *spare = Some(SpareSegment { number, writer });
                }
            }
            Err(e) => tracing::warn!("could not prepare a spare WAL segment: {e}"),
        }
    }

    /// The segment that follows segment `current`: the spare if one is ready, else a segment
    /// created now. Called by the leader at a switch.
    pub(super) fn next_segment(&self, current: u64) -> Result<(u64, LogWriter)> {
        let spare = self.segments.spare.lock().take();
        match spare {
            Some(s) if s.number > current => return Ok((s.number, s.writer)),
            Some(stale) => {
                // Numbered before the current segment: it would replay out of order.
                drop(stale.writer);
                let _ = self.fs.remove_file(&wal_path(&self.dir, stale.number));
            }
            None => {}
        }
        self.counters
            .segments_created_in_write_path
            .fetch_add(1, Ordering::Relaxed);
        let number = self.new_file_number();
        Ok((number, self.create_segment(number)?))
    }

    /// Create an empty, preallocated segment and make its name durable.
    fn create_segment(&self, number: u64) -> Result<LogWriter> {
        create_wal_segment(self.fs.as_ref(), &self.dir, number, self.opts.mapped_wal)
    }
}

/// Create WAL segment `number` in `dir`, preallocated (see [`LogWriter::preallocated`]) and
/// `mapped` if asked (`Options::mapped_wal`), and make its name durable (directory fsync).
pub(super) fn create_wal_segment(
    fs: &dyn FileSystem,
    dir: &Path,
    number: u64,
    mapped: bool,
) -> Result<LogWriter> {
    let path: PathBuf = wal_path(dir, number);
    let file = if mapped {
        fs.create_mapped(&path)
    } else {
        fs.create(&path)
    };
    let file = file.map_err(|e| Error::io(format!("creating {}", path.display()), e))?;
    let writer = LogWriter::preallocated(file, path)?;
    fs.sync_dir(dir)
        .map_err(|e| Error::io("syncing the database directory", e))?;
    Ok(writer)
}
