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
//! Deliberately left out of this module: applying edits to a version (the version set does).

pub mod current;
pub mod edit;

use std::path::Path;

pub use current::{read_current, write_current};
pub use edit::{FileMeta, VersionEdit};

use crate::error::{Error, Result};
use crate::filenames;
use crate::fs::FileSystem;
use crate::wal::{read_log, LogWriter, TailPolicy};

/// The number of levels in the LSM tree, 0 to 6. Written to disk (edits name levels): never
/// lower it.
pub const NUM_LEVELS: usize = 7;

/// Appends version edits to a manifest file.
#[derive(Debug)]
pub struct ManifestWriter {
    log: LogWriter,
    number: u64,
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
        };
        writer.append(snapshot)?;
        fs.sync_dir(dir)
            .map_err(|e| Error::io(format!("syncing the directory {}", dir.display()), e))?;
        Ok(writer)
    }

    /// Append `edit` and sync: when this returns `Ok`, the edit is durable.
    pub fn append(&mut self, edit: &VersionEdit) -> Result<()> {
        self.log.add_record(&edit.encode())?;
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
/// (an append a crash interrupted, never acknowledged) is cut off; any other damage, and a
/// manifest with no edits, is `Corruption`.
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
    contents
        .records
        .iter()
        .map(|record| VersionEdit::decode(&record.payload, path, record.offset))
        .collect()
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
    fn a_missing_manifest_is_an_io_error() {
        let dir = tempfile::tempdir().unwrap();
        let err = replay_manifest(&RealFs, &filenames::manifest_path(dir.path(), 8)).unwrap_err();
        assert!(matches!(err, Error::Io { .. }), "{err}");
    }
}
