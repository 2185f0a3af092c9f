//! Choosing the next compaction from a version's shape.

use std::sync::Arc;

use crate::key::user_key;
use crate::manifest::NUM_LEVELS;
use crate::options::Options;
use crate::version::{TableHandle, Version};

/// Target sizes per level and the base level (the one level 0 compacts into).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LevelTargets {
    pub base_level: usize,
    /// Target bytes per level; 0 for level 0 and for levels above the base.
    pub target: [u64; NUM_LEVELS],
}

/// Dynamic level targets: the last level's actual size sets the scale.
pub fn level_targets(version: &Version, opts: &Options) -> LevelTargets {
    let last = NUM_LEVELS - 1;
    let base = opts.max_bytes_for_level_base.max(1);
    let mult = opts.max_bytes_for_level_multiplier.max(2);
    let mut target = [0u64; NUM_LEVELS];
    target[last] = version.level_bytes(last).max(base);
    let mut level = last;
    while level > 1 && target[level] > base {
        target[level - 1] = target[level] / mult;
        level -= 1;
    }
    LevelTargets {
        base_level: level,
        target,
    }
}

/// A compaction to run: `inputs` from `level` merge with `next_inputs` from `output_level`.
#[derive(Clone)]
pub struct Compaction {
    pub level: usize,
    pub output_level: usize,
    pub inputs: Vec<Arc<TableHandle>>,
    pub next_inputs: Vec<Arc<TableHandle>>,
    /// Move the single input file down without rewriting it.
    pub trivial_move: bool,
    /// Whether no level below `output_level` overlaps the inputs' key range, so tombstones
    /// may be dropped.
    pub bottommost: bool,
    pub score: f64,
}

impl Compaction {
    pub fn input_bytes(&self) -> u64 {
        self.inputs
            .iter()
            .chain(&self.next_inputs)
            .map(|t| t.meta.size)
            .sum()
    }
}

fn key_range(tables: &[Arc<TableHandle>]) -> Option<(Vec<u8>, Vec<u8>)> {
    let smallest = tables.iter().map(|t| user_key(&t.meta.smallest)).min()?;
    let largest = tables.iter().map(|t| user_key(&t.meta.largest)).max()?;
    Some((smallest.to_vec(), largest.to_vec()))
}

/// How much work the compaction thread takes on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Urgency {
    /// Writes are coming: a deep tree batches its compactions (`Options::deep_tree_batching`).
    Busy,
    /// Writes have gone idle: every level is brought within its plain target, so the versions
    /// that batching left above the last level (space) and the level-0 tables (reads) go.
    Idle,
}

/// A deep tree batches level 0 and the intermediate levels while writes come
/// (`Options::deep_tree_batching`): the factor their triggers are multiplied by.
fn batching(targets: &LevelTargets, opts: &Options, urgency: Urgency) -> usize {
    if urgency == Urgency::Busy && targets.base_level < NUM_LEVELS - 1 {
        opts.deep_tree_batching.max(1)
    } else {
        1
    }
}

/// Level-0 tables at which level 0 is compacted, with `batching`; never more than
/// `level0_stop_trigger` (when on), so that writes stopped by level 0 always find a level-0
/// compaction due to end the stall. (Slowed writes go on until the trigger is reached.)
fn level0_trigger(opts: &Options, batching: usize) -> usize {
    let batched = opts
        .level0_compaction_trigger
        .max(1)
        .saturating_mul(batching);
    match opts.level0_stop_trigger {
        0 => batched,
        stop => batched.min(stop),
    }
}

/// An estimate of the bytes compaction must still rewrite before every level is within its
/// target as the write path sees it (batched targets), after RocksDB's
/// `estimated_pending_compaction_bytes`: level 0 at its trigger counts its bytes plus the
/// base level's (a level-0 merge rewrites the overlapping base files, most of the level for
/// random keys); a deeper level over its target counts the excess, plus what flows into it
/// from above, times `1 + multiplier` (each byte pushed down is merged with about
/// `multiplier` bytes of the next level). It is positive only while [`pick_compaction`] finds
/// a level due, so writes held back on it resume once compaction has caught up.
pub fn pending_compaction_bytes(version: &Version, opts: &Options) -> u64 {
    let targets = level_targets(version, opts);
    let batching = batching(&targets, opts, Urgency::Busy);
    let fanout = opts.max_bytes_for_level_multiplier.max(2).saturating_add(1);
    let mut pending = 0u64;
    let mut incoming = 0u64;
    if version.levels[0].len() >= level0_trigger(opts, batching) {
        incoming = version.level_bytes(0);
        pending += incoming + version.level_bytes(targets.base_level);
    }
    for level in 1..NUM_LEVELS - 1 {
        let bytes = version.level_bytes(level);
        if level < targets.base_level {
            // Left above the base level: all of it goes down.
            pending = pending.saturating_add(bytes.saturating_mul(fanout));
            continue;
        }
        let target = targets.target[level].saturating_mul(batching as u64).max(1);
        let excess = bytes.saturating_add(incoming).saturating_sub(target);
        if bytes > target {
            pending = pending.saturating_add(excess.saturating_mul(fanout));
        }
        incoming = excess;
    }
    pending
}

/// The most urgent compaction, if any level is over its target. `cursor[level]` is the
/// largest user key compacted last time at that level (round-robin).
pub fn pick_compaction(
    version: &Version,
    opts: &Options,
    cursor: &[Vec<u8>],
    urgency: Urgency,
) -> Option<Compaction> {
    let targets = level_targets(version, opts);
    let mut best: Option<(f64, usize)> = None;
    let mut consider = |score: f64, level: usize| {
        if score >= 1.0 && best.is_none_or(|(s, _)| score > s) {
            best = Some((score, level));
        }
    };
    let batching = batching(&targets, opts, urgency);
    let l0 = version.levels[0].len();
    consider(l0 as f64 / level0_trigger(opts, batching) as f64, 0);
    for level in 1..NUM_LEVELS - 1 {
        let bytes = version.level_bytes(level);
        if bytes == 0 {
            continue;
        }
        if level < targets.base_level {
            // Left above the base level when the base moved: push it down first.
            consider(1e9, level);
        } else {
            let target = targets.target[level].saturating_mul(batching as u64).max(1);
            consider(bytes as f64 / target as f64, level);
        }
    }
    let (score, level) = best?;
    if level == 0 {
        return level0_compaction(version, &targets, score);
    }

    let (inputs, output_level) = {
        let files = &version.levels[level];
        let after = cursor.get(level).map(Vec::as_slice).unwrap_or(&[]);
        let pick = files
            .iter()
            .find(|t| after.is_empty() || user_key(&t.meta.smallest) > after)
            .or_else(|| files.first())?;
        (vec![Arc::clone(pick)], level + 1)
    };
    compaction_of(version, level, inputs, output_level, score)
}

/// All of level 0 into the base level, whatever the file count: the compaction thread runs it
/// when writes have gone idle (`Options::idle_compaction_delay`) and level 0 holds two tables
/// or more.
pub fn pick_idle_level0(version: &Version, opts: &Options) -> Option<Compaction> {
    if version.levels[0].len() < 2 {
        return None;
    }
    level0_compaction(version, &level_targets(version, opts), 0.0)
}

fn level0_compaction(version: &Version, targets: &LevelTargets, score: f64) -> Option<Compaction> {
    compaction_of(
        version,
        0,
        version.levels[0].clone(),
        targets.base_level,
        score,
    )
}

fn compaction_of(
    version: &Version,
    level: usize,
    inputs: Vec<Arc<TableHandle>>,
    output_level: usize,
    score: f64,
) -> Option<Compaction> {
    let (smallest, largest) = key_range(&inputs)?;
    let next_inputs = version.overlapping(output_level, &smallest, &largest);
    let bottommost = (output_level + 1..NUM_LEVELS)
        .all(|l| version.overlapping(l, &smallest, &largest).is_empty());
    let trivial_move = inputs.len() == 1 && next_inputs.is_empty();
    Some(Compaction {
        level,
        output_level,
        inputs,
        next_inputs,
        trivial_move,
        bottommost,
        score,
    })
}

/// A table at least a quarter tombstones (with enough entries to matter) is compacted early, even if
/// its level is within target: pushed to the next level, or at the last level rewritten in place
/// once every tombstone in it is visible to all readers (then they all go). Only when nothing
/// else is due.
pub fn pick_tombstone_dense(
    version: &Version,
    oldest_visible: crate::key::SeqNo,
) -> Option<Compaction> {
    const MIN_ENTRIES: u64 = 64;
    let last = NUM_LEVELS - 1;
    for level in 1..NUM_LEVELS {
        for t in &version.levels[level] {
            let dense =
                t.meta.num_entries >= MIN_ENTRIES && t.meta.num_deletions * 4 >= t.meta.num_entries;
            if !dense || (level == last && t.meta.max_seq > oldest_visible) {
                continue;
            }
            let (smallest, largest) = (user_key(&t.meta.smallest), user_key(&t.meta.largest));
            let output_level = if level == last { last } else { level + 1 };
            let next_inputs = if output_level == level {
                Vec::new()
            } else {
                version.overlapping(output_level, smallest, largest)
            };
            let bottommost = (output_level + 1..NUM_LEVELS)
                .all(|l| version.overlapping(l, smallest, largest).is_empty());
            return Some(Compaction {
                level,
                output_level,
                inputs: vec![Arc::clone(t)],
                trivial_move: output_level != level && next_inputs.is_empty(),
                next_inputs,
                bottommost,
                score: 0.0,
            });
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn level0_is_compacted_by_the_stop_trigger_at_the_latest() {
        let opts = |trigger, stop| Options {
            level0_compaction_trigger: trigger,
            level0_stop_trigger: stop,
            ..Options::default()
        };
        assert_eq!(level0_trigger(&opts(4, 36), 2), 8);
        // A stop trigger below the batched trigger: compaction is due where writes stop.
        assert_eq!(level0_trigger(&opts(4, 6), 2), 6);
        assert_eq!(level0_trigger(&opts(4, 3), 1), 3);
        // Stop trigger off.
        assert_eq!(level0_trigger(&opts(4, 0), 2), 8);
        assert_eq!(level0_trigger(&opts(0, 0), 1), 1);
    }
}
