//! Running compactions: the background thread, the merge, and installing the result.
//!
//! Order of durable steps: output tables (each fsynced, then the directory) -> manifest edit
//! removing the inputs and adding the outputs (fsynced) -> inputs marked obsolete, deleted from
//! disk when the last version holding them is dropped. A crash before the edit leaves orphan
//! outputs that the next open deletes; the inputs are still live.
//!
//! Only one compaction runs at a time, and flushes only add level-0 files, so a compaction's
//! inputs are still live when it installs its edit.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use super::output::OutputTables;
use super::{DbInner, SuperVersion};
use crate::compaction::{pick_compaction, Compaction, Retention};
use crate::error::{Error, Result};
use crate::iter::merge::MergingIterator;
use crate::iter::InternalIterator;
use crate::key::{parse_internal_key, user_key, SeqNo};
use crate::manifest::{VersionEdit, NUM_LEVELS};
use crate::version::LevelIter;

/// Entries merged between checks for shutdown.
const ABORT_CHECK_INTERVAL: u64 = 4096;

impl DbInner {
    /// Versions at or below this sequence number are visible to every reader.
    pub(super) fn oldest_visible_sequence(&self) -> SeqNo {
        let visible = self.visible_seq.load(Ordering::Acquire);
        let oldest_snapshot = self.snapshots.lock().keys().next().copied();
        oldest_snapshot.map_or(visible, |s| s.min(visible))
    }

    fn next_compaction(&self) -> Option<Compaction> {
        let version = Arc::clone(&self.versions.lock().current);
        let cursor = self.compact_cursor.lock().clone();
        pick_compaction(&version, &self.opts, &cursor)
    }

    /// The background compaction thread.
    pub(super) fn compaction_loop(self: Arc<Self>) {
        loop {
            let job = {
                let mut st = self.bg_state.lock();
                loop {
                    if st.shutdown || self.poisoned.load(Ordering::Acquire) {
                        return;
                    }
                    if let Some(c) = self.next_compaction() {
                        break c;
                    }
                    self.bg_cv.wait(&mut st);
                }
            };
            if let Err(e) = self.run_compaction(job) {
                self.poison(&e);
                return;
            }
            let _guard = self.bg_state.lock();
            self.bg_cv.notify_all();
        }
    }

    /// Run compactions on this thread until none is needed (no background threads).
    pub(super) fn compact_inline(&self) -> Result<()> {
        while let Some(c) = self.next_compaction() {
            if let Err(e) = self.run_compaction(c) {
                self.poison(&e);
                return Err(e);
            }
        }
        Ok(())
    }

    /// Compact every level into the one below until all data is in the last level, then
    /// rewrite the last level.
    pub(super) fn compact_all(&self) -> Result<()> {
        let last = NUM_LEVELS - 1;
        for level in 0..last {
            let version = Arc::clone(&self.versions.lock().current);
            if version.levels[level].is_empty() {
                continue;
            }
            // Jump over empty levels: the next level with files, or the last.
            let output_level = (level + 1..last)
                .find(|&l| !version.levels[l].is_empty())
                .unwrap_or(last);
            let inputs = version.levels[level].clone();
            let smallest = inputs
                .iter()
                .map(|t| user_key(&t.meta.smallest))
                .min()
                .unwrap_or_default();
            let largest = inputs
                .iter()
                .map(|t| user_key(&t.meta.largest))
                .max()
                .unwrap_or_default();
            let next_inputs = version.overlapping(output_level, smallest, largest);
            let bottommost = (output_level + 1..NUM_LEVELS)
                .all(|l| version.overlapping(l, smallest, largest).is_empty());
            let c = Compaction {
                level,
                output_level,
                trivial_move: false,
                bottommost,
                score: 0.0,
                inputs,
                next_inputs,
            };
            if let Err(e) = self.run_compaction(c) {
                self.poison(&e);
                return Err(e);
            }
        }
        // Finally the last level into itself: drops what no snapshot needs any more, even in
        // files the passes above did not touch.
        let version = Arc::clone(&self.versions.lock().current);
        if !version.levels[last].is_empty() {
            let c = Compaction {
                level: last,
                output_level: last,
                inputs: version.levels[last].clone(),
                next_inputs: Vec::new(),
                trivial_move: false,
                bottommost: true,
                score: 0.0,
            };
            if let Err(e) = self.run_compaction(c) {
                self.poison(&e);
                return Err(e);
            }
        }
        let _guard = self.bg_state.lock();
        self.bg_cv.notify_all();
        Ok(())
    }

    fn run_compaction(&self, c: Compaction) -> Result<()> {
        // One compaction at a time: the background thread and manual compactions take turns.
        let _turn = self.compaction_lock.lock();
        self.check_poisoned()?;
        // The inputs must still be live (another compaction may have run while this one was
        // being picked).
        {
            let current = Arc::clone(&self.versions.lock().current);
            let live = |level: usize, t: &Arc<crate::version::TableHandle>| {
                current.levels[level].iter().any(|x| Arc::ptr_eq(x, t))
            };
            if !c.inputs.iter().all(|t| live(c.level, t))
                || !c.next_inputs.iter().all(|t| live(c.output_level, t))
            {
                return Ok(());
            }
        }
        let largest = c
            .inputs
            .iter()
            .map(|t| user_key(&t.meta.largest))
            .max()
            .unwrap_or_default()
            .to_vec();
        if c.trivial_move {
            let t = &c.inputs[0];
            let edit = VersionEdit {
                deleted_files: vec![(c.level as u32, t.meta.number)],
                new_files: vec![(c.output_level as u32, t.meta.clone())],
                ..VersionEdit::default()
            };
            self.install_compaction(
                &edit,
                &[(c.level, t.meta.number)],
                &[(c.output_level, Arc::clone(t))],
                &[],
            )?;
            self.counters.trivial_moves.fetch_add(1, Ordering::Relaxed);
        } else {
            let Some(outputs) = self.merge(&c)? else {
                return Ok(());
            };
            let deleted: Vec<(usize, u64)> = c
                .inputs
                .iter()
                .map(|t| (c.level, t.meta.number))
                .chain(
                    c.next_inputs
                        .iter()
                        .map(|t| (c.output_level, t.meta.number)),
                )
                .collect();
            let added: Vec<(usize, Arc<_>)> = outputs
                .iter()
                .map(|t| (c.output_level, Arc::clone(t)))
                .collect();
            let edit = VersionEdit {
                deleted_files: deleted.iter().map(|&(l, n)| (l as u32, n)).collect(),
                new_files: added
                    .iter()
                    .map(|(l, t)| (*l as u32, t.meta.clone()))
                    .collect(),
                ..VersionEdit::default()
            };
            let obsolete: Vec<_> = c.inputs.iter().chain(&c.next_inputs).cloned().collect();
            self.install_compaction(&edit, &deleted, &added, &obsolete)?;
            let written: u64 = outputs.iter().map(|t| t.meta.size).sum();
            self.counters.compactions.fetch_add(1, Ordering::Relaxed);
            self.counters
                .compaction_read_bytes
                .fetch_add(c.input_bytes(), Ordering::Relaxed);
            self.counters
                .compaction_write_bytes
                .fetch_add(written, Ordering::Relaxed);
        }
        if c.level > 0 {
            let mut cursor = self.compact_cursor.lock();
            if cursor.len() <= c.level {
                cursor.resize(c.level + 1, Vec::new());
            }
            cursor[c.level] = largest;
        }
        Ok(())
    }

    /// Merge the inputs into new tables of the output level. `None` if aborted by shutdown.
    fn merge(&self, c: &Compaction) -> Result<Option<Vec<Arc<crate::version::TableHandle>>>> {
        let mut children: Vec<Box<dyn InternalIterator>> = Vec::new();
        if c.level == 0 {
            for t in &c.inputs {
                children.push(Box::new(t.table.iter()));
            }
        } else {
            children.push(Box::new(LevelIter::new(c.inputs.clone())));
        }
        if !c.next_inputs.is_empty() {
            children.push(Box::new(LevelIter::new(c.next_inputs.clone())));
        }
        let mut merged = MergingIterator::new(children);
        merged.seek_to_first()?;

        let mut retention = Retention::new(self.oldest_visible_sequence(), c.bottommost);
        let mut out = OutputTables::new(
            &self.fs,
            &self.dir,
            &self.opts,
            &self.cache,
            self.opts.target_file_size,
        );
        let mut new_number = || self.versions.lock().new_file_number();
        let mut merged_entries = 0u64;
        while merged.valid() {
            merged_entries += 1;
            if merged_entries.is_multiple_of(ABORT_CHECK_INTERVAL) && self.bg_state.lock().shutdown {
                out.abandon();
                return Ok(None);
            }
            let key = merged.key();
            let parsed = parse_internal_key(key).ok_or_else(|| {
                Error::corruption(&self.dir, 0, "malformed key in a compaction input")
            })?;
            if retention.keep(&parsed) {
                out.add(key, &merged.value(), &mut new_number)?;
            }
            merged.step()?;
        }
        out.finish().map(Some)
    }

    fn install_compaction(
        &self,
        edit: &VersionEdit,
        deleted: &[(usize, u64)],
        added: &[(usize, Arc<crate::version::TableHandle>)],
        obsolete: &[Arc<crate::version::TableHandle>],
    ) -> Result<()> {
        let mut vs = self.versions.lock();
        let mut edit = edit.clone();
        edit.next_file_number = Some(vs.next_file_number);
        vs.manifest.append(&edit)?;
        vs.current = Arc::new(vs.current.apply(deleted, added));
        let version = Arc::clone(&vs.current);
        self.install_super_version(|sv| SuperVersion {
            mem: Arc::clone(&sv.mem),
            imms: sv.imms.clone(),
            version,
        });
        drop(vs);
        for t in obsolete {
            t.mark_obsolete();
        }
        Ok(())
    }
}
