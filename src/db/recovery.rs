//! Opening a database: lock, read CURRENT, replay the manifest, open the tables, replay the
//! WAL segments, flush what they held, and start a fresh WAL and manifest.
//!
//! Recovery rules:
//! - No CURRENT but Strata files present: Corruption (never silently start an empty database
//!   over existing data).
//! - The manifest may end in an incomplete record (a crash mid-append); anything else wrong in
//!   it is Corruption.
//! - WAL segments at or above the manifest's `log_number` are replayed in order. A damaged or
//!   incomplete tail of a segment (see `TailPolicy::DamagedTailOk`), or records missing at the
//!   start of a later segment, is the lost unsynced end of the log: replay stops there and the
//!   later segments' records are dropped, unless one of them carries a mark saying the earlier
//!   segments were synced whole (invariant 3), which makes it Corruption.
//! - The recovered memtable is written to a level-0 table before the new manifest is written,
//!   so the damaged tail of an old segment is never followed by new writes.
//! - Files not referenced by the new manifest (orphan tables from a crashed flush, obsolete WAL
//!   segments, old manifests, temp files) are deleted last.

use std::collections::BTreeMap;
use std::collections::VecDeque;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64};
use std::sync::Arc;

use arc_swap::ArcSwap;
use bytes::Bytes;
use parking_lot::{Condvar, Mutex};

use super::flush::write_level0_table;
use super::segments::create_wal_segment;
use super::{BgState, Counters, DbInner, LogState, SuperVersion, VersionSet};
use crate::batch::WriteBatch;
use crate::cache::BlockCache;
use crate::error::{Error, Result};
use crate::filenames::{self, parse_file_name, table_path, wal_path, FileKind};
use crate::manifest::{self, FileMeta, ManifestWriter, VersionEdit, NUM_LEVELS};
use crate::memtable::Memtable;
use crate::options::Options;
use crate::range_del::RangeTombstone;
use crate::table_cache::TableCache;
use crate::version::{open_table, TableHandle, Version};
use crate::wal::{read_log_file, TailPolicy};

/// State rebuilt from the manifest.
struct Recovered {
    files: BTreeMap<u64, (u32, FileMeta)>,
    /// Live range tombstones by sequence number.
    range_dels: BTreeMap<u64, RangeTombstone>,
    log_number: u64,
    next_file_number: u64,
    last_sequence: u64,
}

pub(super) fn open(dir: &Path, opts: Options) -> Result<DbInner> {
    let fs = Arc::clone(&opts.fs);
    if opts.create_if_missing {
        fs.create_dir_all(dir)
            .map_err(|e| Error::io(format!("creating {}", dir.display()), e))?;
    } else if !fs.exists(dir) {
        return Err(Error::InvalidArgument(format!(
            "no database at {}",
            dir.display()
        )));
    }
    let lock_path = dir.join(filenames::LOCK);
    let lock = fs
        .try_lock(&lock_path)
        .map_err(|e| Error::io(format!("locking {}", lock_path.display()), e))?
        .ok_or_else(|| Error::Locked(dir.to_path_buf()))?;

    let names = fs
        .list_dir(dir)
        .map_err(|e| Error::io(format!("listing {}", dir.display()), e))?;
    let kinds: Vec<FileKind> = names.iter().filter_map(|n| parse_file_name(n)).collect();

    let mut state = match manifest::read_current(fs.as_ref(), dir)? {
        Some(number) => {
            if opts.error_if_exists {
                return Err(Error::InvalidArgument(format!(
                    "a database already exists at {}",
                    dir.display()
                )));
            }
            replay_manifest(fs.as_ref(), dir, number)?
        }
        None => {
            // CURRENT is written last when a database is created, and only ever replaced
            // atomically after that. Without it, a directory holding nothing but empty WAL
            // segments, manifests and temp files is a creation that crashed before `open`
            // returned: nothing was ever acknowledged, so it is safe to start over. Anything
            // else (a table, a WAL segment with a non-zero byte in it) is data we must not
            // discard. (A new segment is preallocated: zeros, no records.)
            let interrupted_creation = kinds.iter().all(|k| match k {
                FileKind::Table(_) => false,
                FileKind::Wal(n) => fs
                    .read_all(&wal_path(dir, *n))
                    .is_ok_and(|bytes| bytes.iter().all(|&b| b == 0)),
                _ => true,
            });
            let has_data = kinds.iter().any(|k| {
                matches!(
                    k,
                    FileKind::Manifest(_) | FileKind::Table(_) | FileKind::Wal(_)
                )
            });
            if has_data && !interrupted_creation {
                return Err(Error::corruption(
                    filenames::current_path(dir),
                    0,
                    "CURRENT is missing but the directory holds database files",
                ));
            }
            if !opts.create_if_missing {
                return Err(Error::InvalidArgument(format!(
                    "no database at {}",
                    dir.display()
                )));
            }
            Recovered {
                files: BTreeMap::new(),
                range_dels: BTreeMap::new(),
                log_number: 0,
                next_file_number: 1,
                last_sequence: 0,
            }
        }
    };

    // Never reuse a number seen on disk, even of an orphan.
    let max_on_disk = kinds
        .iter()
        .filter_map(|k| match k {
            FileKind::Manifest(n) | FileKind::Wal(n) | FileKind::Table(n) => Some(*n),
            _ => None,
        })
        .max()
        .unwrap_or(0);
    state.next_file_number = state.next_file_number.max(max_on_disk + 1);

    let cache = Arc::new(BlockCache::new(opts.block_cache_capacity));
    let tables = TableCache::new(opts.max_open_tables);
    let mut version = Version::empty();
    for (number, (level, meta)) in &state.files {
        // Every table is opened and checked once here, even beyond `max_open_tables` (the
        // cache closes the least used again), so damage is found at open.
        let path = table_path(dir, *number);
        let table = open_table(&fs, &path, meta, &cache)?;
        let handle = TableHandle::new(
            meta.clone(),
            table,
            Arc::clone(&fs),
            path,
            Arc::clone(&cache),
            Arc::clone(&tables),
        );
        version.levels[*level as usize].push(handle);
    }
    version.sort_levels();

    // Replay the WAL segments the manifest still needs.
    let mut wals: Vec<u64> = kinds
        .iter()
        .filter_map(|k| match k {
            FileKind::Wal(n) if *n >= state.log_number => Some(*n),
            _ => None,
        })
        .collect();
    wals.sort_unstable();
    if state.log_number > 0 && !wals.contains(&state.log_number) {
        return Err(Error::corruption(
            wal_path(dir, state.log_number),
            0,
            "the write-ahead log segment named by the manifest is missing",
        ));
    }
    let mem = Arc::new(Memtable::new(0));
    let mut max_seq = state.last_sequence;
    // Set when replay stops early at the lost or torn unsynced tail of a segment: the error
    // to report if a later segment says the earlier ones were synced whole after all.
    let mut cut: Option<Error> = None;
    let mut dropped_records = 0usize;
    let replay_start = std::time::Instant::now();
    let (mut replayed_batches, mut replayed_bytes) = (0u64, 0u64);
    let mut last_replayed: Option<u64> = None;
    for (i, &number) in wals.iter().enumerate() {
        let path = wal_path(dir, number);
        let contents = read_log_file(fs.as_ref(), &path, TailPolicy::DamagedTailOk)?;
        tracing::info!(
            "replaying WAL segment {} of {}: {} ({} records, {} bytes)",
            i + 1,
            wals.len(),
            path.display(),
            contents.records.len(),
            contents.valid_len
        );
        if let Some(previous) = contents.previous_segment {
            // A switch wrote the number of the segment it closed; that segment is deleted
            // only once a manifest edit moves `log_number` past it.
            let present = if i == 0 {
                previous < state.log_number
            } else {
                wals[..i].contains(&previous)
            };
            if !present {
                return Err(Error::corruption(
                    &path,
                    0,
                    format!(
                        "this segment follows WAL segment {previous}, which is missing (or not \
                         before it)"
                    ),
                ));
            }
        }
        if let Some(err) = &cut {
            // Invariant 3: a segment is fsynced only after every earlier one is durable whole,
            // behind a mark saying so. Without a mark, nothing in it was durable.
            if contents.vouches_for_earlier_segments {
                return Err(err.duplicate());
            }
            dropped_records += contents.records.len();
            continue;
        }
        replayed_bytes += contents.valid_len;
        let record_count = contents.records.len();
        for (j, record) in contents.records.into_iter().enumerate() {
            let payload = Bytes::from(record.payload);
            let batch = WriteBatch::decode(payload, &path, record.offset)?;
            let expected = last_replayed
                .unwrap_or(state.last_sequence)
                .saturating_add(1);
            if i > 0
                && j == 0
                && batch.first_seq > expected
                && !contents.vouches_for_earlier_segments
            {
                // The earlier segment lost its unsynced last records whole (a crash before the
                // fsync that follows a switch), while some of this one's unsynced records
                // reached the disk: cut here as at a torn tail.
                cut = Some(Error::corruption(
                    &path,
                    record.offset,
                    format!(
                        "records {expected} to {} are missing before this segment, and a later \
                         segment records the earlier ones as synced whole",
                        batch.first_seq - 1
                    ),
                ));
                tracing::warn!(
                    "{}: sequence numbers {expected} to {} were lost with the unsynced end of \
                     the previous segment; dropping this segment's unsynced records",
                    path.display(),
                    batch.first_seq - 1
                );
                dropped_records += record_count;
                break;
            }
            check_sequence(
                &batch,
                last_replayed,
                state.last_sequence,
                &path,
                record.offset,
            )?;
            replayed_batches += 1;
            for (k, op) in batch.ops.into_iter().enumerate() {
                let seq = batch.first_seq + k as u64;
                mem.insert(op.key, seq, op.kind, op.value);
                max_seq = max_seq.max(seq);
                last_replayed = Some(seq);
            }
        }
        if let Some(tail) = contents.tail {
            tracing::warn!(
                "cut a damaged tail off {} at offset {}: {}",
                path.display(),
                tail.offset,
                tail.reason
            );
            if cut.is_none() {
                cut = Some(Error::corruption(
                    &path,
                    tail.offset,
                    format!(
                        "damaged record in a segment that a later segment records as synced \
                         whole: {}",
                        tail.reason
                    ),
                ));
            }
        }
    }
    if dropped_records > 0 {
        tracing::warn!(
            "dropped {dropped_records} unsynced write batches of WAL segments written after a \
             segment's lost unsynced tail"
        );
    }
    if !wals.is_empty() {
        tracing::info!(
            "recovered {replayed_batches} write batches ({replayed_bytes} bytes of WAL) in {:.0?}",
            replay_start.elapsed()
        );
    }

    // Write the recovered writes to a table, so the old segments can go.
    let mut next_number = state.next_file_number;
    let mut new_number = || {
        next_number += 1;
        next_number - 1
    };
    let recovered = write_level0_table(
        &fs,
        dir,
        &opts,
        &cache,
        &tables,
        &mem,
        max_seq,
        &mut new_number,
    )?;
    state.next_file_number = next_number;
    if let Some(handle) = recovered {
        state
            .files
            .insert(handle.meta.number, (0, handle.meta.clone()));
        version = version.with_l0_table(handle);
    }
    let recovered_range_dels: Vec<RangeTombstone> = state
        .range_dels
        .values()
        .cloned()
        .chain(mem.range_tombstones())
        .collect();
    version = version.with_range_dels(&recovered_range_dels, &[]);

    // A fresh WAL segment and a fresh manifest holding the whole state.
    let log_number = state.next_file_number;
    let manifest_number = state.next_file_number + 1;
    state.next_file_number += 2;
    let wal_writer = create_wal_segment(fs.as_ref(), dir, log_number, opts.mapped_wal)?;
    let snapshot = VersionEdit {
        log_number: Some(log_number),
        next_file_number: Some(state.next_file_number),
        last_sequence: Some(max_seq),
        deleted_files: Vec::new(),
        new_files: version
            .all_tables()
            .map(|(level, t)| (level as u32, t.meta.clone()))
            .collect(),
        new_range_dels: version.range_dels.as_ref().clone(),
        deleted_range_dels: Vec::new(),
        position: None,
    };
    let manifest = ManifestWriter::create(fs.as_ref(), dir, manifest_number, &snapshot)?;
    manifest::write_current(fs.as_ref(), dir, manifest_number)?;

    // Everything not in the new state is now garbage.
    let live_tables: std::collections::HashSet<u64> =
        version.all_tables().map(|(_, t)| t.meta.number).collect();
    let names = fs
        .list_dir(dir)
        .map_err(|e| Error::io(format!("listing {}", dir.display()), e))?;
    for name in names {
        let garbage = match parse_file_name(&name) {
            Some(FileKind::Wal(n)) => n != log_number,
            Some(FileKind::Manifest(n)) => n != manifest_number,
            Some(FileKind::Table(n)) => !live_tables.contains(&n),
            Some(FileKind::Temp) => true,
            _ => false,
        };
        if garbage {
            // A failure only leaves garbage for the next open.
            let _ = fs.remove_file(&dir.join(name));
        }
    }

    let versions = VersionSet {
        manifest,
        log_number,
        last_sequence: max_seq,
        current: Arc::new(version),
    };
    let sv = SuperVersion {
        mem: Arc::new(Memtable::for_write_buffer(
            log_number,
            opts.write_buffer_size,
        )),
        imms: Vec::new(),
        version: Arc::clone(&versions.current),
    };
    Ok(DbInner {
        dir: dir.to_path_buf(),
        fs,
        lock: Mutex::new(Some(lock)),
        cache,
        tables,
        super_version: ArcSwap::from_pointee(sv),
        sv_lock: Mutex::new(()),
        visible_seq: AtomicU64::new(max_seq),
        write_queue: Mutex::new(VecDeque::new()),
        commit_pacing: Default::default(),
        segments: Default::default(),
        log: Mutex::new(LogState {
            writer: wal_writer,
            number: log_number,
            last_seq: max_seq,
            delay: Default::default(),
            pressure: Default::default(),
        }),
        versions: Mutex::new(versions),
        next_file_number: AtomicU64::new(state.next_file_number),
        bg_state: Mutex::new(BgState::default()),
        bg_cv: Condvar::new(),
        bg_threads: Mutex::new(Vec::new()),
        compact_cursor: Mutex::new(Vec::new()),
        compaction_lock: Mutex::new(()),
        poisoned: AtomicBool::new(false),
        poison_reason: Mutex::new(None),
        closed: AtomicBool::new(false),
        snapshots: Mutex::new(BTreeMap::new()),
        counters: Counters::default(),
        opts,
    })
}

/// Check that a WAL batch continues the sequence: its first number is one past the last
/// replayed one, or, for the first batch, one past `last_sequence`, the newest number the
/// manifest's tables hold.
///
/// Sequence numbers are consecutive in commit order (each op takes the next one, and every
/// committed batch is one WAL record), and a flush records in the manifest the largest number
/// of what it wrote while raising `log_number` past that memtable's segment, so the replayed
/// records must continue exactly where the tables end. A record of an older segment under a
/// live segment's name, a record copied over another one, or records lost before a later one
/// (a truncated or stale older segment followed by a newer one) all break the run: they would
/// otherwise replay old values over newer ones or leave a hole in the commit order.
fn check_sequence(
    batch: &crate::batch::DecodedBatch,
    last_replayed: Option<u64>,
    last_sequence: u64,
    path: &Path,
    offset: u64,
) -> Result<()> {
    let (expected, after) = match last_replayed {
        Some(last) => (last.saturating_add(1), "the previous record"),
        None => (
            last_sequence.saturating_add(1),
            "the tables (the manifest's last sequence number)",
        ),
    };
    if batch.first_seq == expected {
        return Ok(());
    }
    let what = if batch.first_seq < expected {
        "goes back to"
    } else {
        "jumps to"
    };
    Err(Error::corruption(
        path,
        offset,
        format!(
            "the record's sequence number {what} {} after {after}, which ends at {}: a stale, \
             misplaced or missing record",
            batch.first_seq,
            expected - 1
        ),
    ))
}

fn replay_manifest(fs: &dyn crate::fs::FileSystem, dir: &Path, number: u64) -> Result<Recovered> {
    let path = filenames::manifest_path(dir, number);
    if !fs.exists(&path) {
        return Err(Error::corruption(
            &path,
            0,
            "the manifest named by CURRENT is missing",
        ));
    }
    let edits = manifest::replay_manifest(fs, &path)?;
    let mut r = Recovered {
        files: BTreeMap::new(),
        range_dels: BTreeMap::new(),
        log_number: 0,
        next_file_number: 1,
        last_sequence: 0,
    };
    let bad = |reason: String| Err(Error::corruption(&path, 0, reason));
    // The first edit is the snapshot written when this manifest was created, with all three
    // counters, and its number was taken from the counter before the snapshot was written:
    // another (older) manifest's bytes under this name fail here.
    match edits.first() {
        Some(VersionEdit {
            log_number: Some(_),
            next_file_number: Some(next),
            last_sequence: Some(_),
            ..
        }) if *next > number => {}
        _ => {
            return bad(format!(
                "the first edit is not the snapshot of manifest {number} (all three counters, \
                 the next file number above {number})"
            ))
        }
    }
    for edit in edits {
        // The counters never go back: an edit replayed twice or out of order would move them.
        let counters = [
            ("log number", edit.log_number, &mut r.log_number),
            (
                "next file number",
                edit.next_file_number,
                &mut r.next_file_number,
            ),
            ("last sequence", edit.last_sequence, &mut r.last_sequence),
        ];
        for (name, value, slot) in counters {
            if let Some(v) = value {
                if v < *slot {
                    return bad(format!("the {name} goes back from {} to {v}", *slot));
                }
                *slot = v;
            }
        }
        for (level, number) in edit.deleted_files {
            r.files.remove(&number).filter(|(l, _)| *l == level).ok_or_else(|| {
                Error::corruption(&path, 0, format!("the manifest deletes table {number} at level {level}, which is not live"))
            })?;
        }
        for (level, meta) in edit.new_files {
            if level as usize >= NUM_LEVELS {
                return Err(Error::corruption(
                    &path,
                    0,
                    format!("level {level} is out of range"),
                ));
            }
            let number = meta.number;
            if r.files.insert(number, (level, meta)).is_some() {
                return bad(format!(
                    "the manifest adds table {number}, which is already live"
                ));
            }
        }
        for seq in edit.deleted_range_dels {
            r.range_dels.remove(&seq).ok_or_else(|| {
                Error::corruption(
                    &path,
                    0,
                    format!("the manifest retires range tombstone {seq}, which is not live"),
                )
            })?;
        }
        for t in edit.new_range_dels {
            let seq = t.seq;
            if r.range_dels.insert(seq, t).is_some() {
                return bad(format!(
                    "the manifest adds range tombstone {seq}, which is already live"
                ));
            }
        }
    }
    Ok(r)
}
