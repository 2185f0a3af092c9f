//! The names of the files in a database directory.
//!
//! ```text
//! LOCK                 advisory lock held while a process has the database open
//! CURRENT              names the live manifest (replaced atomically by rename)
//! MANIFEST-000007      log of version edits
//! 000012.log           write-ahead log segment
//! 000013.sst           sorted string table
//! *.tmp                a file being written; deleted at open
//! ```
//! All numbers come from one counter (`next_file_number` in the manifest), so a number names
//! exactly one file over the life of the database.

use std::path::{Path, PathBuf};

pub const LOCK: &str = "LOCK";
pub const CURRENT: &str = "CURRENT";

/// What a file in the database directory is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileKind {
    Lock,
    Current,
    Manifest(u64),
    Wal(u64),
    Table(u64),
    Temp,
}

pub fn wal_path(dir: &Path, number: u64) -> PathBuf {
    dir.join(format!("{number:06}.log"))
}

pub fn table_path(dir: &Path, number: u64) -> PathBuf {
    dir.join(format!("{number:06}.sst"))
}

pub fn manifest_name(number: u64) -> String {
    format!("MANIFEST-{number:06}")
}

pub fn manifest_path(dir: &Path, number: u64) -> PathBuf {
    dir.join(manifest_name(number))
}

pub fn current_path(dir: &Path) -> PathBuf {
    dir.join(CURRENT)
}

pub fn temp_path(dir: &Path, number: u64) -> PathBuf {
    dir.join(format!("{number:06}.tmp"))
}

/// Classify a directory entry; `None` for files Strata does not own.
pub fn parse_file_name(name: &str) -> Option<FileKind> {
    fn number(digits: &str) -> Option<u64> {
        if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        digits.parse().ok()
    }
    match name {
        LOCK => return Some(FileKind::Lock),
        CURRENT => return Some(FileKind::Current),
        _ => {}
    }
    if let Some(rest) = name.strip_prefix("MANIFEST-") {
        return number(rest).map(FileKind::Manifest);
    }
    if name.ends_with(".tmp") {
        return Some(FileKind::Temp);
    }
    if let Some(stem) = name.strip_suffix(".log") {
        return number(stem).map(FileKind::Wal);
    }
    if let Some(stem) = name.strip_suffix(".sst") {
        return number(stem).map(FileKind::Table);
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_through_the_parser() {
        let dir = Path::new("/db");
        let name = |p: PathBuf| p.file_name().unwrap().to_str().unwrap().to_string();
        assert_eq!(
            parse_file_name(&name(wal_path(dir, 12))),
            Some(FileKind::Wal(12))
        );
        assert_eq!(
            parse_file_name(&name(table_path(dir, 1_234_567))),
            Some(FileKind::Table(1_234_567))
        );
        assert_eq!(
            parse_file_name(&manifest_name(7)),
            Some(FileKind::Manifest(7))
        );
        assert_eq!(parse_file_name("CURRENT"), Some(FileKind::Current));
        assert_eq!(parse_file_name("notes.txt"), None);
        assert_eq!(parse_file_name("x1.log"), None);
    }
}
