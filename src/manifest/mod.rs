//! The manifest: a log of version edits that says which SSTables make up the database.
//!
//! ```text
//! manifest := record(edit)+        records in the wal format, one VersionEdit each
//! ```
//!
//! The first edit of a manifest is a snapshot of the whole version (every live file and every
//! counter); each later edit is a change to it. Replaying all edits in order rebuilds the
//! version. A new manifest is started (with a fresh snapshot) at open and when the old one grows
//! large, and [`write_current`] then points CURRENT at it; until CURRENT is replaced, the old
//! manifest stays authoritative.
//!
//! Durability: [`ManifestWriter::create`] and [`ManifestWriter::append`] sync before they
//! return, so an edit that returned `Ok` survives a power cut, and nothing acts on an edit
//! before that. A power cut during an append can leave its record incomplete, or complete in
//! length but zero-filled or torn (the file's new size reached the disk before its data), so
//! replay cuts off a damaged last record as long as no valid record follows it
//! (`TailPolicy::DamagedTailOk`, as for the write-ahead log); any other damage is
//! `Corruption`.
//!
//! Layout: since each edit is fsynced before the next is appended, and the log writer puts a
//! sync mark ahead of the first record after an fsync, every manifest is laid out the same
//! way: the snapshot edit at offset 0, then each later edit right after a sync mark that
//! claims exactly the mark's own offset. And every edit after the snapshot carries its
//! position (this manifest's number and its index, [`EditPosition`]). Replay checks both
//! ([`replay_manifest`]): an edit anywhere else was copied over another record or written to
//! the wrong offset, and replaying it would apply a change twice or out of order, or hide the
//! loss of the edits it overwrote.
//!
//! Deliberately left out of this module: applying edits to a version (the version set does).

pub mod current;
pub mod edit;

use std::path::Path;

pub use current::{read_current, write_current};
pub use edit::{EditPosition, FileMeta, VersionEdit};

use crate::error::{Error, Result};
use crate::filenames;
use crate::fs::FileSystem;
use crate::wal::format::HEADER_LEN;
use crate::wal::{read_log, LogWriter, Record, TailPolicy};

/// The number of levels in the LSM tree, 0 to 6. Written to disk (edits name levels): never
/// lower it.
pub const NUM_LEVELS: usize = 7;

/// Appends version edits to a manifest file.
#[derive(Debug)]
pub struct ManifestWriter {
    log: LogWriter,
    number: u64,
    /// Edits appended so far (the next edit's index).
    edits: u64,
}

impl ManifestWriter {
    /// Create manifest `number` in `dir` holding `snapshot` as its first edit, durably (file
    /// and directory synced). The caller then calls [`write_current`] to make it live.
    pub fn create(
        fs: &dyn FileSystem,
        dir: &Path,
        number: u64,
        snapshot: &VersionEdit,
    ) -> Result<ManifestWriter> {
        let path = filenames::manifest_path(dir, number);
        let file = fs
            .create(&path)
            .map_err(|e| Error::io(format!("creating the manifest {}", path.display()), e))?;
        let mut writer = ManifestWriter {
            log: LogWriter::new(file, path),
            number,
            edits: 0,
        };
        writer.append(snapshot)?;
        fs.sync_dir(dir)
            .map_err(|e| Error::io(format!("syncing the directory {}", dir.display()), e))?;
        Ok(writer)
    }

    /// Append `edit` and sync: when this returns `Ok`, the edit is durable. Every edit after
    /// the first (the snapshot) is written with its position (see the module docs).
    pub fn append(&mut self, edit: &VersionEdit) -> Result<()> {
        let index = self.edits;
        let position = (index > 0).then_some(EditPosition {
            manifest: self.number,
            index,
        });
        let payload = if edit.position == position {
            edit.encode()
        } else {
            VersionEdit {
                position,
                ..edit.clone()
            }
            .encode()
        };
        self.log.add_record(&payload)?;
        // Counted once written: after a failed append or sync the writer refuses further
        // work, so no later edit can take this index.
        self.edits += 1;
        self.log.sync()
    }

    /// Bytes written to the manifest so far.
    pub fn size(&self) -> u64 {
        self.log.size()
    }

    /// The manifest's file number.
    pub fn number(&self) -> u64 {
        self.number
    }

    /// The manifest's path.
    pub fn path(&self) -> &Path {
        self.log.path()
    }
}

/// Read every edit of the manifest at `path`, in order. A damaged or incomplete last record
/// (an append a crash interrupted, never acknowledged) is cut off; any other damage, a
/// manifest with no edits, and an edit out of place (see the module docs on the layout) is
/// `Corruption`.
pub fn replay_manifest(fs: &dyn FileSystem, path: &Path) -> Result<Vec<VersionEdit>> {
    let data = fs
        .read_all(path)
        .map_err(|e| Error::io(format!("reading the manifest {}", path.display()), e))?;
    let contents = read_log(&data, path, TailPolicy::DamagedTailOk)?;
    if contents.records.is_empty() {
        let reason = match &contents.tail {
            Some(tail) => format!(
                "the manifest holds no complete version edit ({})",
                tail.reason
            ),
            None => "the manifest holds no version edit".to_string(),
        };
        return Err(Error::corruption(path, 0, reason));
    }
    check_layout(&data, &contents.records, path)?;
    let number = match path
        .file_name()
        .and_then(|n| n.to_str())
        .and_then(filenames::parse_file_name)
    {
        Some(filenames::FileKind::Manifest(n)) => Some(n),
        _ => None,
    };
    let mut edits = Vec::with_capacity(contents.records.len());
    for (index, record) in contents.records.iter().enumerate() {
        let mut edit = VersionEdit::decode(&record.payload, path, record.offset)?;
        let index = index as u64;
        let in_place = match edit.position.take() {
            None => index == 0,
            Some(p) => index > 0 && p.index == index && number.is_none_or(|n| n == p.manifest),
        };
        if !in_place {
            return Err(Error::corruption(
                path,
                record.offset,
                format!(
                    "edit {index} of the manifest carries the position of another edit or \
                     manifest: a record copied or written to the wrong place"
                ),
            ));
        }
        edits.push(edit);
    }
    Ok(edits)
}

/// A sync mark: a header and an 8-byte claim.
const SYNC_MARK_LEN: u64 = HEADER_LEN as u64 + 8;

/// Check the layout of a manifest's valid records (see the module docs): the first at offset
/// 0, each later one right after a sync mark claiming the mark's own offset.
///
/// `records` are the data records `read_log` accepted, in order; it walks the log from the
/// start and stops at the first damage, so the bytes between two of them are valid sync
/// marks, and a gap of exactly one mark's length is one mark. An edit copied over a sync mark,
/// or over an edit of another length, breaks the layout even though its own checksum is
/// right (one copied over an edit of the same length is caught by its position).
fn check_layout(data: &[u8], records: &[Record], path: &Path) -> Result<()> {
    // Where the previous record ends.
    let mut end = 0u64;
    for (i, record) in records.iter().enumerate() {
        let in_place = if i == 0 {
            record.offset == 0
        } else {
            let claim = usize::try_from(end)
                .ok()
                .and_then(|at| crate::coding::get_u64(data, at + HEADER_LEN));
            record.offset == end + SYNC_MARK_LEN && claim == Some(end)
        };
        if !in_place {
            return Err(Error::corruption(
                path,
                record.offset,
                format!(
                    "an edit out of place (the previous record ends at {end}; each edit follows \
                     a sync mark vouching for everything before it): a record copied or \
                     written to the wrong offset"
                ),
            ));
        }
        end = record.offset + (HEADER_LEN + record.payload.len()) as u64;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fs::RealFs;
    use crate::key::internal_key;

    fn meta(number: u64) -> FileMeta {
        FileMeta {
            number,
            size: 1000 + number,
            smallest: internal_key(b"a", number, 1),
            largest: internal_key(b"z", number + 10, 1),
            min_seq: number,
            max_seq: number + 10,
            num_entries: 11,
            num_deletions: 0,
        }
    }

    fn edits() -> Vec<VersionEdit> {
        let snapshot = VersionEdit {
            log_number: Some(2),
            next_file_number: Some(10),
            last_sequence: Some(0),
            new_files: vec![(0, meta(5)), (6, meta(6))],
            ..Default::default()
        };
        let flush = VersionEdit {
            log_number: Some(11),
            next_file_number: Some(13),
            last_sequence: Some(500),
            new_files: vec![(0, meta(12))],
            ..Default::default()
        };
        let compaction = VersionEdit {
            next_file_number: Some(14),
            deleted_files: vec![(0, 5), (0, 12)],
            new_files: vec![(1, meta(13))],
            ..Default::default()
        };
        vec![snapshot, flush, compaction]
    }

    fn write_manifest(dir: &Path, number: u64, edits: &[VersionEdit]) -> ManifestWriter {
        let mut writer = ManifestWriter::create(&RealFs, dir, number, &edits[0]).unwrap();
        for edit in &edits[1..] {
            writer.append(edit).unwrap();
        }
        writer
    }

    #[test]
    fn edits_replay_in_the_order_they_were_appended() {
        let dir = tempfile::tempdir().unwrap();
        let edits = edits();
        let writer = write_manifest(dir.path(), 9, &edits);
        let path = filenames::manifest_path(dir.path(), 9);
        assert_eq!(writer.number(), 9);
        assert_eq!(writer.path(), path.as_path());
        assert_eq!(writer.size(), std::fs::metadata(&path).unwrap().len());
        write_current(&RealFs, dir.path(), writer.number()).unwrap();
        let number = read_current(&RealFs, dir.path()).unwrap().unwrap();
        let replayed =
            replay_manifest(&RealFs, &filenames::manifest_path(dir.path(), number)).unwrap();
        assert_eq!(replayed, edits);
    }

    #[test]
    fn a_manifest_cut_mid_record_replays_the_edits_before_the_cut() {
        let dir = tempfile::tempdir().unwrap();
        let edits = edits();
        let mut ends = Vec::new();
        let mut writer = ManifestWriter::create(&RealFs, dir.path(), 3, &edits[0]).unwrap();
        ends.push(writer.size());
        for edit in &edits[1..] {
            writer.append(edit).unwrap();
            ends.push(writer.size());
        }
        drop(writer);
        let path = filenames::manifest_path(dir.path(), 3);
        let full = std::fs::read(&path).unwrap();
        for cut in 1..full.len() {
            std::fs::write(&path, &full[..cut]).unwrap();
            let whole = ends.iter().filter(|&&end| end <= cut as u64).count();
            let result = replay_manifest(&RealFs, &path);
            if whole == 0 {
                assert!(result.unwrap_err().is_corruption(), "cut at {cut}");
            } else {
                assert_eq!(result.unwrap(), edits[..whole], "cut at {cut}");
            }
        }
    }

    /// Regression (found by the crash sweep's `ZeroFilledTail` mode): a power cut during an
    /// append can leave the record's full length on disk but zeros (or garbage) in place of
    /// its bytes. That edit was never acknowledged; replay must cut it off, not refuse.
    #[test]
    fn a_zero_filled_or_torn_last_edit_is_cut_off() {
        let dir = tempfile::tempdir().unwrap();
        let edits = edits();
        drop(write_manifest(dir.path(), 5, &edits));
        let path = filenames::manifest_path(dir.path(), 5);
        let full = std::fs::read(&path).unwrap();
        let offsets: Vec<usize> = read_log(&full, &path, TailPolicy::Strict)
            .unwrap()
            .records
            .iter()
            .map(|r| r.offset as usize)
            .collect();
        assert_eq!(offsets.len(), 3);
        // Damage from any byte of the last edit to the end of the file (whatever follows the
        // edit, such as a sync mark, goes with it).
        let last_end = offsets[2] + crate::wal::format::HEADER_LEN + edits[2].encode().len();
        for from in offsets[2]..last_end {
            for fill in [0x00, 0xA5] {
                let mut damaged = full.clone();
                damaged[from..].fill(fill);
                if damaged == full {
                    continue;
                }
                std::fs::write(&path, &damaged).unwrap();
                assert_eq!(
                    replay_manifest(&RealFs, &path).unwrap(),
                    edits[..2],
                    "last record filled with {fill:#x} from byte {from}"
                );
            }
        }
        // The same damage to the middle edit, with a valid edit after it, is corruption.
        let mut damaged = full.clone();
        damaged[offsets[1] + 3..offsets[1] + 20].fill(0);
        std::fs::write(&path, &damaged).unwrap();
        assert!(replay_manifest(&RealFs, &path).unwrap_err().is_corruption());
    }

    #[test]
    fn an_empty_manifest_is_corruption() {
        let dir = tempfile::tempdir().unwrap();
        let path = filenames::manifest_path(dir.path(), 1);
        std::fs::write(&path, b"").unwrap();
        let err = replay_manifest(&RealFs, &path).unwrap_err();
        assert!(
            matches!(&err, Error::Corruption { file, offset: 0, .. } if *file == path),
            "{err}"
        );
    }

    #[test]
    fn damage_in_a_middle_edit_is_corruption_at_its_record() {
        let dir = tempfile::tempdir().unwrap();
        let edits = edits();
        let writer = write_manifest(dir.path(), 4, &edits);
        drop(writer);
        let path = filenames::manifest_path(dir.path(), 4);
        let mut bytes = std::fs::read(&path).unwrap();
        let second = edits[0].encode().len() + crate::wal::format::HEADER_LEN;
        bytes[second + 12] ^= 0x20;
        std::fs::write(&path, &bytes).unwrap();
        let err = replay_manifest(&RealFs, &path).unwrap_err();
        assert!(
            matches!(&err, Error::Corruption { offset, .. } if *offset == second as u64),
            "{err}"
        );
    }

    #[test]
    fn a_record_that_is_not_an_edit_is_corruption_naming_its_offset() {
        let dir = tempfile::tempdir().unwrap();
        let path = filenames::manifest_path(dir.path(), 2);
        let mut log = LogWriter::new(RealFs.create(&path).unwrap(), path.clone());
        log.add_record(&edits()[0].encode()).unwrap();
        let second = log.size();
        log.add_record(&[99, 1]).unwrap();
        log.sync().unwrap();
        let err = replay_manifest(&RealFs, &path).unwrap_err();
        assert!(
            matches!(&err, Error::Corruption { file, offset, .. }
                if *file == path && *offset == second),
            "{err}"
        );
    }

    #[test]
    fn every_edit_after_the_snapshot_carries_its_position() {
        let dir = tempfile::tempdir().unwrap();
        let edits = edits();
        drop(write_manifest(dir.path(), 6, &edits));
        let path = filenames::manifest_path(dir.path(), 6);
        let data = std::fs::read(&path).unwrap();
        let records = read_log(&data, &path, TailPolicy::Strict).unwrap().records;
        let positions: Vec<Option<EditPosition>> = records
            .iter()
            .map(|r| {
                VersionEdit::decode(&r.payload, &path, r.offset)
                    .unwrap()
                    .position
            })
            .collect();
        assert_eq!(
            positions,
            vec![
                None,
                Some(EditPosition {
                    manifest: 6,
                    index: 1
                }),
                Some(EditPosition {
                    manifest: 6,
                    index: 2
                }),
            ]
        );
        // Replay checks and clears them.
        assert_eq!(replay_manifest(&RealFs, &path).unwrap(), edits);
    }

    /// A manifest written record by record, each edit synced, so the layout is right and only
    /// the positions are under test.
    fn manifest_with_positions(path: &Path, positions: &[Option<EditPosition>]) {
        let mut log = LogWriter::new(RealFs.create(path).unwrap(), path.to_path_buf());
        for (edit, position) in edits().into_iter().zip(positions) {
            let edit = VersionEdit {
                position: *position,
                ..edit
            };
            log.add_record(&edit.encode()).unwrap();
            log.sync().unwrap();
        }
    }

    #[test]
    fn an_edit_with_the_position_of_another_edit_or_manifest_is_corruption() {
        let dir = tempfile::tempdir().unwrap();
        let path = filenames::manifest_path(dir.path(), 6);
        let at = |manifest, index| Some(EditPosition { manifest, index });
        manifest_with_positions(&path, &[None, at(6, 1), at(6, 2)]);
        assert_eq!(replay_manifest(&RealFs, &path).unwrap(), edits());
        for bad in [
            [None, at(6, 2), at(6, 2)],
            [None, at(6, 1), at(6, 1)],
            [None, at(5, 1), at(6, 2)],
            [None, None, at(6, 2)],
            [at(6, 0), at(6, 1), at(6, 2)],
        ] {
            manifest_with_positions(&path, &bad);
            let err = replay_manifest(&RealFs, &path).unwrap_err();
            assert!(
                err.is_corruption() && err.to_string().contains("position"),
                "{bad:?}: {err}"
            );
        }
    }

    #[test]
    fn an_edit_that_does_not_follow_a_sync_mark_is_corruption() {
        let dir = tempfile::tempdir().unwrap();
        let path = filenames::manifest_path(dir.path(), 6);
        let mut log = LogWriter::new(RealFs.create(&path).unwrap(), path.clone());
        let edits = edits();
        log.add_record(&edits[0].encode()).unwrap();
        let second = log.size();
        // No sync in between: no sync mark ahead of the second edit.
        let next = VersionEdit {
            position: Some(EditPosition {
                manifest: 6,
                index: 1,
            }),
            ..edits[1].clone()
        };
        log.add_record(&next.encode()).unwrap();
        log.sync().unwrap();
        let err = replay_manifest(&RealFs, &path).unwrap_err();
        assert!(
            matches!(&err, Error::Corruption { offset, .. } if *offset == second)
                && err.to_string().contains("out of place"),
            "{err}"
        );
    }

    #[test]
    fn a_missing_manifest_is_an_io_error() {
        let dir = tempfile::tempdir().unwrap();
        let err = replay_manifest(&RealFs, &filenames::manifest_path(dir.path(), 8)).unwrap_err();
        assert!(matches!(err, Error::Io { .. }), "{err}");
    }
}
