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
use std::time::Duration;

use super::output::OutputTables;
use super::write::monotonic_micros;
use super::{DbInner, SuperVersion};
use crate::compaction::{
    pick_compaction, pick_idle_level0, pick_tombstone_dense, Compaction, Retention, Urgency,
};
use crate::error::{Error, Result};
use crate::iter::merge::MergingIterator;
use crate::iter::InternalIterator;
use crate::key::{internal_key, parse_internal_key, user_key, SeqNo, KIND_SEEK, MAX_SEQ};
use crate::manifest::{VersionEdit, NUM_LEVELS};
use crate::range_del::RangeTombstone;
use crate::version::{LevelIter, TableHandle, Version};

/// The outputs of all subcompactions in key order; if any failed or was aborted, the others'
/// finished outputs are marked obsolete (deleted once dropped) and the failure is returned.
fn combine_ranges(
    results: Vec<Result<Option<Vec<Arc<TableHandle>>>>>,
) -> Result<Option<Vec<Arc<TableHandle>>>> {
    let complete = results.iter().all(|r| matches!(r, Ok(Some(_))));
    let mut all = Vec::new();
    let mut failure: Option<Error> = None;
    for r in results {
        match r {
            Ok(Some(tables)) if complete => all.extend(tables),
            Ok(Some(tables)) => tables.iter().for_each(|t| t.mark_obsolete()),
            Ok(None) => {}
            Err(e) => {
                failure.get_or_insert(e);
            }
        }
    }
    match failure {
        Some(e) => Err(e),
        None if complete => Ok(Some(all)),
        None => Ok(None),
    }
}

/// Whether writes have been quiet long enough for the idle work (`Options::idle_compaction_delay`).
enum IdleState {
    /// Turned off.
    Off,
    /// Writes have been idle long enough.
    Due,
    /// Look again after this long.
    In(Duration),
}

/// A compaction that cleans a table still holding data under a settled range tombstone (one
/// every reader sees), so the tombstone can be retired. Only when nothing else is due.
fn pick_range_del_compaction(version: &Version, oldest_visible: SeqNo) -> Option<Compaction> {
    let last = NUM_LEVELS - 1;
    for t in version
        .range_dels
        .iter()
        .filter(|t| t.seq <= oldest_visible)
    {
        for (level, table) in version.all_tables() {
            if !table.may_hold_covered_by(t) {
                continue;
            }
            let inputs = vec![Arc::clone(table)];
            let (smallest, largest) = (
                user_key(&table.meta.smallest),
                user_key(&table.meta.largest),
            );
            // Level 0 and the last level rewrite in place; others merge into the next level.
            let output_level = if level == 0 || level == last {
                level
            } else {
                level + 1
            };
            let next_inputs = if output_level == level {
                Vec::new()
            } else {
                version.overlapping(output_level, smallest, largest)
            };
            // A level-0 table rewritten alone is never bottommost: older level-0 tables may
            // hold values its point deletions hide (found by the I/O-error sweep).
            let bottommost = output_level != 0
                && (output_level + 1..NUM_LEVELS)
                    .all(|l| version.overlapping(l, smallest, largest).is_empty());
            return Some(Compaction {
                level,
                output_level,
                inputs,
                next_inputs,
                trivial_move: false,
                bottommost,
                score: 0.0,
            });
        }
    }
    None
}

/// How a compaction's merge is cut: groups of segments, each group merged on its own thread,
/// its segments in key order. A group is its bounds in key order (`None` = unbounded); its
/// segments are the windows of two, and consecutive groups share their boundary bound.
struct MergePlan {
    groups: Vec<Vec<Option<Vec<u8>>>>,
}

impl MergePlan {
    /// One segment, one thread.
    fn whole() -> Self {
        MergePlan {
            groups: vec![vec![None, None]],
        }
    }
}

/// Whether `index` is not yet among the sorted group ends (quantiles can land on one cut).
fn cuts_key_is_new(ends: &[usize], index: usize) -> bool {
    ends.last().is_none_or(|&last| index > last)
}

/// Entries merged between checks for shutdown.
const ABORT_CHECK_INTERVAL: u64 = 4096;

impl DbInner {
    /// Versions at or below this sequence number are visible to every reader.
    pub(super) fn oldest_visible_sequence(&self) -> SeqNo {
        let visible = self.visible_seq.load(Ordering::Acquire);
        let oldest_snapshot = self.snapshots.lock().keys().next().copied();
        oldest_snapshot.map_or(visible, |s| s.min(visible))
    }

    /// Whether writes have been quiet for `Options::idle_compaction_delay`.
    fn idle_state(&self) -> IdleState {
        let Some(delay) = self.opts.idle_compaction_delay else {
            return IdleState::Off;
        };
        let now = monotonic_micros();
        // No write since open counts as idle since the compaction thread first looked.
        let last = match self.counters.last_write_micros.load(Ordering::Relaxed) {
            0 => {
                let _ = self.counters.last_write_micros.compare_exchange(
                    0,
                    now,
                    Ordering::Relaxed,
                    Ordering::Relaxed,
                );
                now
            }
            t => t,
        };
        let idle = Duration::from_micros(now.saturating_sub(last));
        if idle >= delay {
            IdleState::Due
        } else {
            IdleState::In(delay - idle)
        }
    }

    fn next_compaction(&self, urgency: Urgency) -> Option<Compaction> {
        let version = Arc::clone(&self.versions.lock().current);
        let cursor = self.compact_cursor.lock().clone();
        let idle_level0 = || match urgency {
            Urgency::Idle => pick_idle_level0(&version, &self.opts),
            Urgency::Busy => None,
        };
        pick_compaction(&version, &self.opts, &cursor, Urgency::Busy)
            .or_else(idle_level0)
            .or_else(|| match urgency {
                Urgency::Idle => pick_compaction(&version, &self.opts, &cursor, Urgency::Idle),
                Urgency::Busy => None,
            })
            .or_else(|| pick_range_del_compaction(&version, self.oldest_visible_sequence()))
            .or_else(|| pick_tombstone_dense(&version, self.oldest_visible_sequence()))
    }

    /// Apply what range tombstones allow without reading data: drop tables they cover whole,
    /// and retire tombstones that no table can need any more. Returns whether it changed
    /// anything.
    pub(super) fn retire_range_dels(&self) -> Result<bool> {
        let _turn = self.compaction_lock.lock();
        let oldest_visible = self.oldest_visible_sequence();
        let version = Arc::clone(&self.versions.lock().current);
        let settled: Vec<&RangeTombstone> = version
            .range_dels
            .iter()
            .filter(|t| t.seq <= oldest_visible)
            .collect();
        if settled.is_empty() {
            return Ok(false);
        }
        let dropped: Vec<(usize, Arc<TableHandle>)> = version
            .all_tables()
            .filter(|(_, t)| settled.iter().any(|r| t.wholly_covered_by(r)))
            .map(|(l, t)| (l, Arc::clone(t)))
            .collect();
        let kept = |t: &Arc<TableHandle>| !dropped.iter().any(|(_, d)| Arc::ptr_eq(d, t));
        let retired: Vec<SeqNo> = settled
            .iter()
            .filter(|r| {
                !version
                    .all_tables()
                    .any(|(_, t)| kept(t) && t.may_hold_covered_by(r))
            })
            .map(|r| r.seq)
            .collect();
        if dropped.is_empty() && retired.is_empty() {
            return Ok(false);
        }
        let deleted: Vec<(usize, u64)> = dropped.iter().map(|(l, t)| (*l, t.meta.number)).collect();
        let edit = VersionEdit {
            deleted_files: deleted.iter().map(|&(l, n)| (l as u32, n)).collect(),
            deleted_range_dels: retired.clone(),
            ..VersionEdit::default()
        };
        let obsolete: Vec<Arc<TableHandle>> = dropped.into_iter().map(|(_, t)| t).collect();
        tracing::debug!(
            "range tombstones: dropped {} covered tables, retired {} tombstones",
            obsolete.len(),
            retired.len()
        );
        self.install_edit(&edit, &deleted, &[], &retired, &obsolete)?;
        self.counters
            .tables_dropped_by_range_dels
            .fetch_add(obsolete.len() as u64, Ordering::Relaxed);
        Ok(true)
    }

    /// The background compaction thread.
    pub(super) fn compaction_loop(self: Arc<Self>) {
        loop {
            if let Err(e) = self.retire_range_dels() {
                self.poison(&e);
                return;
            }
            let job = {
                let mut st = self.bg_state.lock();
                loop {
                    if st.shutdown || self.poisoned.load(Ordering::Acquire) {
                        return;
                    }
                    if let Some(c) = self.next_compaction(Urgency::Busy) {
                        break c;
                    }
                    // Nothing is due while writes come. Once they have gone quiet, tidy up:
                    // what batching left above the last level, and level 0.
                    let idle_work = || self.next_compaction(Urgency::Idle);
                    match self.idle_state() {
                        IdleState::Due => {
                            if let Some(c) = idle_work() {
                                self.counters
                                    .idle_compactions
                                    .fetch_add(1, Ordering::Relaxed);
                                break c;
                            }
                            self.bg_cv.wait(&mut st);
                        }
                        // Set a timer only when there will be something to do.
                        IdleState::In(wait) if idle_work().is_some() => {
                            self.bg_cv.wait_for(&mut st, wait);
                        }
                        IdleState::In(_) | IdleState::Off => self.bg_cv.wait(&mut st),
                    }
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
        let result = self.compact_inline_inner();
        if let Err(e) = &result {
            self.poison(e);
        }
        result
    }

    fn compact_inline_inner(&self) -> Result<()> {
        loop {
            self.retire_range_dels()?;
            let Some(c) = self.next_compaction(Urgency::Busy) else {
                return Ok(());
            };
            self.run_compaction(c)?;
        }
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
        if let Err(e) = self.retire_range_dels() {
            self.poison(&e);
            return Err(e);
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
            self.install_edit(
                &edit,
                &[(c.level, t.meta.number)],
                &[(c.output_level, Arc::clone(t))],
                &[],
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
            self.install_edit(&edit, &deleted, &added, &[], &obsolete)?;
            let written: u64 = outputs.iter().map(|t| t.meta.size).sum();
            tracing::debug!(
                "compacted {} + {} tables of L{} and L{} ({} bytes) into {} tables ({} bytes)",
                c.inputs.len(),
                c.next_inputs.len(),
                c.level,
                c.output_level,
                c.input_bytes(),
                outputs.len(),
                written
            );
            self.counters.compactions.fetch_add(1, Ordering::Relaxed);
            self.counters
                .compaction_read_bytes
                .fetch_add(c.input_bytes(), Ordering::Relaxed);
            self.counters
                .compaction_write_bytes
                .fetch_add(written, Ordering::Relaxed);
            self.counters.level_written[c.output_level].fetch_add(written, Ordering::Relaxed);
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
    ///
    /// The merge is cut by user key into segments (see [`MergePlan`]): each segment writes its
    /// own tables, so no output table spans a cut. Cuts sit at the boundaries of the files of
    /// the level below the output, so that an output table later pushed down overlaps whole
    /// files there rather than straddling one more (RocksDB cuts its outputs at "grandparent"
    /// boundaries for the same reason). A large compaction is also split into up to
    /// `max_subcompactions` groups of segments merged on parallel threads; outputs never
    /// overlap (a user key belongs to one segment) and are installed together.
    fn merge(&self, c: &Compaction) -> Result<Option<Vec<Arc<TableHandle>>>> {
        let oldest_visible = self.oldest_visible_sequence();
        let range_dels = Arc::clone(&self.versions.lock().current.range_dels);
        let applied = range_dels
            .iter()
            .filter(|t| t.seq <= oldest_visible)
            .map(|t| t.seq)
            .max()
            .unwrap_or(0);
        let plan = self.merge_plan(c)?;
        // Segments of one group run in key order on one thread; a failure or an abort stops
        // the group, and `combine_ranges` discards what the group had finished.
        let run_group = |group: &[Option<Vec<u8>>]| {
            let mut results = Vec::new();
            for w in group.windows(2) {
                let r = self.merge_range(
                    c,
                    w[0].as_deref(),
                    w[1].as_deref(),
                    oldest_visible,
                    &range_dels,
                );
                let stop = !matches!(r, Ok(Some(_)));
                results.push(r);
                if stop {
                    break;
                }
            }
            combine_ranges(results)
        };
        let merged = if plan.groups.len() == 1 {
            run_group(&plan.groups[0])
        } else {
            let results: Vec<Result<Option<Vec<Arc<TableHandle>>>>> = std::thread::scope(|s| {
                let workers: Vec<_> = plan
                    .groups
                    .iter()
                    .map(|g| {
                        let run_group = &run_group;
                        s.spawn(move || run_group(g))
                    })
                    .collect();
                workers
                    .into_iter()
                    .map(|w| w.join().unwrap_or_else(|p| std::panic::resume_unwind(p)))
                    .collect()
            });
            self.counters
                .subcompactions
                .fetch_add(results.len() as u64, Ordering::Relaxed);
            combine_ranges(results)
        };
        let Some(outputs) = merged? else {
            return Ok(None);
        };
        for t in &outputs {
            t.set_clean_through(applied);
        }
        Ok(Some(outputs))
    }

    /// How to cut `c`'s merge: output-table cuts at the boundaries of the files of the level
    /// below the output (none when the output is the last level), kept only where each
    /// segment holds about half a target file of input or more, so alignment never makes
    /// small tables; and, for a compaction of at least twice `target_file_size` with
    /// background threads, up to `max_subcompactions` groups of about equal input size,
    /// split at one of those cuts when there are any.
    ///
    /// Every data block of every input has an index entry, so the sorted block boundaries
    /// measure the input bytes between two keys.
    fn merge_plan(&self, c: &Compaction) -> Result<MergePlan> {
        // Without background threads a run is meant to be deterministic (the fault-injection
        // sweeps replay file operations by count), so it merges on one thread.
        let ways = if self.opts.background_flush {
            self.opts.max_subcompactions.max(1)
        } else {
            1
        };
        let split = ways > 1 && c.input_bytes() >= 2 * self.opts.target_file_size;
        let grandparents: Vec<Vec<u8>> =
            if c.output_level + 1 < NUM_LEVELS && c.output_level > c.level {
                let current = Arc::clone(&self.versions.lock().current);
                current.levels[c.output_level + 1]
                    .iter()
                    .skip(1)
                    .map(|t| user_key(&t.meta.smallest).to_vec())
                    .collect()
            } else {
                Vec::new()
            };
        if !split && grandparents.is_empty() {
            return Ok(MergePlan::whole());
        }
        let mut keys = Vec::new();
        for t in c.inputs.iter().chain(&c.next_inputs) {
            keys.extend(t.table()?.block_boundaries()?);
        }
        keys.sort_unstable();
        if keys.is_empty() {
            return Ok(MergePlan::whole());
        }
        let block_bytes = (c.input_bytes() / keys.len() as u64).max(1);
        let min_blocks = (self.opts.target_file_size / 2 / block_bytes).max(1) as usize;
        // Output cuts: positions in `keys` (blocks before the cut) and the cut key.
        let mut cuts: Vec<(usize, Vec<u8>)> = Vec::new();
        let mut last = 0usize;
        for g in grandparents {
            let at = keys.partition_point(|k| *k < g);
            if at - last >= min_blocks && keys.len() - at >= min_blocks / 2 {
                last = at;
                cuts.push((at, g));
            }
        }
        // Group boundaries: the cut nearest each quantile, or the quantile key itself.
        let mut group_ends: Vec<usize> = Vec::new();
        if split {
            for i in 1..ways {
                let q = i * keys.len() / ways;
                if cuts.is_empty() {
                    let prev = group_ends.last().map_or(&keys[0], |&p| &keys[p]);
                    if keys[q] != *prev {
                        group_ends.push(q);
                    }
                } else {
                    let nearest = cuts
                        .iter()
                        .enumerate()
                        .min_by_key(|(_, (at, _))| at.abs_diff(q))
                        .map(|(j, _)| j);
                    if let Some(j) = nearest {
                        if cuts_key_is_new(&group_ends, j) {
                            group_ends.push(j);
                        }
                    }
                }
            }
        }
        let bounds: Vec<Option<Vec<u8>>> = if cuts.is_empty() {
            // Only group boundaries, at quantile keys.
            std::iter::once(None)
                .chain(group_ends.iter().map(|&q| Some(keys[q].clone())))
                .chain(std::iter::once(None))
                .collect()
        } else {
            std::iter::once(None)
                .chain(cuts.iter().map(|(_, k)| Some(k.clone())))
                .chain(std::iter::once(None))
                .collect()
        };
        // With alignment cuts, group ends index into `cuts` (bound j + 1); otherwise every
        // bound is a group end.
        let ends: Vec<usize> = if cuts.is_empty() {
            (1..bounds.len() - 1).collect()
        } else {
            group_ends.iter().map(|&j| j + 1).collect()
        };
        let mut groups = Vec::new();
        let mut from = 0;
        for &e in ends.iter().chain(std::iter::once(&(bounds.len() - 1))) {
            if e > from {
                groups.push(bounds[from..=e].to_vec());
                from = e;
            }
        }
        Ok(MergePlan { groups })
    }

    /// Merge the entries of user keys in `[lo, hi)` (unbounded where `None`).
    fn merge_range(
        &self,
        c: &Compaction,
        lo: Option<&[u8]>,
        hi: Option<&[u8]>,
        oldest_visible: SeqNo,
        range_dels: &[RangeTombstone],
    ) -> Result<Option<Vec<Arc<TableHandle>>>> {
        let mut children: Vec<Box<dyn InternalIterator>> = Vec::new();
        // Compaction reads each block once: it does not fill the block cache with them.
        if c.level == 0 {
            for t in &c.inputs {
                children.push(Box::new(LevelIter::for_compaction(vec![Arc::clone(t)])));
            }
        } else {
            children.push(Box::new(LevelIter::for_compaction(c.inputs.clone())));
        }
        if !c.next_inputs.is_empty() {
            children.push(Box::new(LevelIter::for_compaction(c.next_inputs.clone())));
        }
        let mut merged = MergingIterator::new(children);
        match lo {
            Some(lo) => merged.seek(&internal_key(lo, MAX_SEQ, KIND_SEEK))?,
            None => merged.seek_to_first()?,
        }

        let mut retention =
            Retention::new(oldest_visible, c.bottommost).with_range_dels(range_dels);
        let mut out = OutputTables::new(
            &self.fs,
            &self.dir,
            &self.opts,
            &self.cache,
            &self.tables,
            c.output_level,
            self.opts.target_file_size,
        );
        let mut new_number = || self.new_file_number();
        let mut merged_entries = 0u64;
        while merged.valid() {
            merged_entries += 1;
            if merged_entries.is_multiple_of(ABORT_CHECK_INTERVAL) && self.bg_state.lock().shutdown
            {
                out.abandon();
                return Ok(None);
            }
            let key = merged.key();
            let parsed = parse_internal_key(key).ok_or_else(|| {
                Error::corruption(&self.dir, 0, "malformed key in a compaction input")
            })?;
            if hi.is_some_and(|hi| parsed.user_key >= hi) {
                break;
            }
            if retention.keep(&parsed) {
                out.add(key, &merged.value(), &mut new_number)?;
            }
            merged.step()?;
        }
        out.finish().map(Some)
    }

    /// Make `edit` durable and install the version it describes; `obsolete` tables are
    /// deleted once no reader holds them.
    fn install_edit(
        &self,
        edit: &VersionEdit,
        deleted: &[(usize, u64)],
        added: &[(usize, Arc<TableHandle>)],
        retired_range_dels: &[SeqNo],
        obsolete: &[Arc<TableHandle>],
    ) -> Result<()> {
        let mut vs = self.versions.lock();
        let mut edit = edit.clone();
        edit.next_file_number = Some(self.next_file_number.load(Ordering::Relaxed));
        vs.manifest.append(&edit)?;
        vs.current = Arc::new(
            vs.current
                .apply(deleted, added)
                .with_range_dels(&[], retired_range_dels),
        );
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
