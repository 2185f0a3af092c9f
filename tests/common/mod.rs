//! Helpers shared by the integration tests.
#![allow(dead_code)]

pub mod contract;
pub mod corruption;
pub mod torture;

use std::path::{Path, PathBuf};

/// Copy every file of a database directory except LOCK: the state a crash would leave if
/// everything handed to the OS survived.
pub fn copy_db_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let name = entry.file_name();
        if name == "LOCK" {
            continue;
        }
        match std::fs::copy(entry.path(), to.join(&name)) {
            Ok(_) => {}
            // Deleted since the listing by a flush or compaction of the open database: as if
            // the deletion came first.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => panic!("copying {}: {e}", entry.path().display()),
        }
    }
}

/// The files of `dir` whose name ends with `suffix`, sorted.
pub fn files_with_suffix(dir: &Path, suffix: &str) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.file_name().unwrap().to_str().unwrap().ends_with(suffix))
        .collect();
    v.sort();
    v
}

/// The one WAL segment of `dir` that holds records. The others hold only zeros: a spare
/// segment the flush thread prepared (and preallocated) for the next memtable switch.
pub fn wal_with_records(dir: &Path) -> PathBuf {
    let mut with_records: Vec<PathBuf> = files_with_suffix(dir, ".log")
        .into_iter()
        .filter(|p| std::fs::read(p).unwrap().iter().any(|&b| b != 0))
        .collect();
    assert_eq!(with_records.len(), 1, "{with_records:?}");
    with_records.pop().unwrap()
}

/// Where the records of a log end: a WAL segment is preallocated, so its records are followed
/// by zeros (a header whose type byte is 0, never a valid type).
pub fn log_records_end(bytes: &[u8]) -> usize {
    let mut pos = 0;
    while pos + 9 <= bytes.len() && bytes[pos + 8] != 0 {
        let len = u32::from_le_bytes(bytes[pos + 4..pos + 8].try_into().unwrap()) as usize;
        pos += 9 + len;
    }
    assert!(pos <= bytes.len(), "an undamaged log parses");
    assert!(
        bytes[pos..].iter().all(|&b| b == 0),
        "only zeros after the records"
    );
    pos
}

/// The live manifest of `dir`.
pub fn manifest_of(dir: &Path) -> PathBuf {
    let v: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            p.file_name()
                .unwrap()
                .to_str()
                .unwrap()
                .starts_with("MANIFEST-")
        })
        .collect();
    assert_eq!(v.len(), 1, "expected one manifest in {}", dir.display());
    v[0].clone()
}

pub fn key(i: u64) -> String {
    format!("key{i:06}")
}

pub fn value(i: u64) -> String {
    format!("value-{i}-{}", "v".repeat((i % 37) as usize))
}
