//! Flip a byte in a data block, the index block, the footer, a manifest record and a WAL record
//! in the middle: each gives a Corruption error (or a clean recovery where the format allows),
//! never a panic and never a wrong value.

mod common;

use std::path::Path;

use common::{
    copy_db_dir, files_with_suffix, key, log_records_end, manifest_of, value, wal_with_records,
};
use strata::db::Db;
use strata::{Error, Options};

fn flip(path: &Path, offset: u64) {
    let mut bytes = std::fs::read(path).unwrap();
    bytes[offset as usize] ^= 0x5a;
    std::fs::write(path, bytes).unwrap();
}

fn read_footer_handles(sst: &Path) -> (u64, u64, u64, u64) {
    let bytes = std::fs::read(sst).unwrap();
    let f = &bytes[bytes.len() - strata::sstable::format::FOOTER_LEN..];
    let u = |i: usize| u64::from_le_bytes(f[i..i + 8].try_into().unwrap());
    // index (offset, size), filter (offset, size)
    (u(0), u(8), u(16), u(24))
}

/// A closed database with one table of 2,000 keys.
fn one_table_db(dir: &Path) {
    let db = Db::open(dir).unwrap();
    for i in 0..2000 {
        db.put(key(i), value(i)).unwrap();
    }
    db.close().unwrap();
}

/// Read everything back; Ok only if every value is right, Err if corruption was reported.
fn read_all(dir: &Path) -> Result<(), Error> {
    let db = Db::open_with(dir, Options::default().with_create_if_missing(false))?;
    for i in 0..2000 {
        match db.get(key(i))? {
            Some(v) => assert_eq!(
                v,
                value(i).as_bytes(),
                "a wrong value was served for {}",
                key(i)
            ),
            None => panic!("{} vanished without an error", key(i)),
        }
    }
    let mut n = 0;
    for item in db.iter() {
        let (k, v) = item?;
        assert_eq!(
            v,
            value(k[3..].iter().fold(0, |a, d| a * 10 + u64::from(d - b'0'))).as_bytes()
        );
        n += 1;
    }
    assert_eq!(n, 2000);
    db.verify()
}

#[test]
fn a_flipped_byte_in_a_data_block_is_a_corruption_error() {
    let dir = tempfile::tempdir().unwrap();
    one_table_db(dir.path());
    let sst = files_with_suffix(dir.path(), ".sst").pop().unwrap();
    flip(&sst, 100);
    let err = read_all(dir.path()).unwrap_err();
    assert!(err.is_corruption(), "{err}");
    assert!(
        err.to_string().contains(".sst"),
        "the error names the file: {err}"
    );
}

#[test]
fn a_flipped_byte_in_the_index_block_is_a_corruption_error() {
    let dir = tempfile::tempdir().unwrap();
    one_table_db(dir.path());
    let sst = files_with_suffix(dir.path(), ".sst").pop().unwrap();
    let (index_offset, index_size, _, _) = read_footer_handles(&sst);
    flip(&sst, index_offset + index_size / 2);
    assert!(read_all(dir.path()).unwrap_err().is_corruption());
}

#[test]
fn a_flipped_byte_in_the_filter_block_is_a_corruption_error() {
    let dir = tempfile::tempdir().unwrap();
    one_table_db(dir.path());
    let sst = files_with_suffix(dir.path(), ".sst").pop().unwrap();
    let (_, _, filter_offset, filter_size) = read_footer_handles(&sst);
    assert!(filter_size > 0);
    flip(&sst, filter_offset + filter_size / 2);
    assert!(read_all(dir.path()).unwrap_err().is_corruption());
}

#[test]
fn a_flipped_byte_in_the_footer_is_a_corruption_error() {
    let dir = tempfile::tempdir().unwrap();
    one_table_db(dir.path());
    let sst = files_with_suffix(dir.path(), ".sst").pop().unwrap();
    let len = std::fs::metadata(&sst).unwrap().len();
    for back in [1u64, 5, 20, 40, 64] {
        let trial = tempfile::tempdir().unwrap();
        copy_db_dir(dir.path(), trial.path());
        let sst = trial.path().join(sst.file_name().unwrap());
        flip(&sst, len - back);
        let err = read_all(trial.path()).unwrap_err();
        assert!(err.is_corruption(), "footer byte -{back}: {err}");
    }
}

#[test]
fn a_flipped_byte_in_a_middle_manifest_record_is_a_corruption_error() {
    let dir = tempfile::tempdir().unwrap();
    let image_root = tempfile::tempdir().unwrap();
    let image = image_root.path().join("image");
    {
        let db = Db::open(dir.path()).unwrap();
        for round in 0..4 {
            for i in 0..100 {
                db.put(key(round * 100 + i), value(i)).unwrap();
            }
            db.flush().unwrap();
        }
        // Copy while open: the manifest holds the snapshot record plus one edit per flush.
        copy_db_dir(dir.path(), &image);
    }
    let manifest = manifest_of(&image);
    let len = std::fs::metadata(&manifest).unwrap().len();
    flip(&manifest, len / 2);
    let err = Db::open(&image).unwrap_err();
    assert!(err.is_corruption(), "{err}");
}

#[test]
fn a_damaged_current_file_is_a_corruption_error() {
    let dir = tempfile::tempdir().unwrap();
    one_table_db(dir.path());
    flip(&dir.path().join("CURRENT"), 3);
    assert!(Db::open(dir.path()).unwrap_err().is_corruption());
}

#[test]
fn a_missing_current_with_data_present_is_a_corruption_error() {
    let dir = tempfile::tempdir().unwrap();
    one_table_db(dir.path());
    std::fs::remove_file(dir.path().join("CURRENT")).unwrap();
    assert!(Db::open(dir.path()).unwrap_err().is_corruption());
}

#[test]
fn a_missing_table_is_a_corruption_error() {
    let dir = tempfile::tempdir().unwrap();
    one_table_db(dir.path());
    for sst in files_with_suffix(dir.path(), ".sst") {
        std::fs::remove_file(sst).unwrap();
    }
    assert!(Db::open(dir.path()).unwrap_err().is_corruption());
}

#[test]
fn a_flipped_byte_in_a_middle_wal_record_is_a_corruption_error() {
    let root = tempfile::tempdir().unwrap();
    let live = root.path().join("live");
    let db = Db::open(&live).unwrap();
    for i in 0..100 {
        db.put(key(i), value(i)).unwrap();
    }
    let image = root.path().join("image");
    copy_db_dir(&live, &image);
    drop(db);
    let wal = wal_with_records(&image);
    let len = log_records_end(&std::fs::read(&wal).unwrap()) as u64;
    flip(&wal, len / 2);
    let err = Db::open(&image).unwrap_err();
    assert!(err.is_corruption(), "{err}");
    assert!(err.to_string().contains(".log"), "{err}");
}

#[test]
fn a_flipped_byte_in_the_last_wal_record_is_a_torn_tail_and_recovery_continues() {
    let root = tempfile::tempdir().unwrap();
    let live = root.path().join("live");
    let db = Db::open(&live).unwrap();
    for i in 0..100 {
        db.put(key(i), value(i)).unwrap();
    }
    let image = root.path().join("image");
    copy_db_dir(&live, &image);
    drop(db);
    let wal = wal_with_records(&image);
    let len = log_records_end(&std::fs::read(&wal).unwrap()) as u64;
    flip(&wal, len - 3);
    let db = Db::open(&image).unwrap();
    for i in 0..99 {
        assert_eq!(db.get(key(i)).unwrap().unwrap(), value(i).as_bytes());
    }
    assert_eq!(
        db.get(key(99)).unwrap(),
        None,
        "the damaged last record is dropped"
    );
}

#[test]
fn every_single_byte_flip_in_a_table_is_detected_or_harmless() {
    let dir = tempfile::tempdir().unwrap();
    {
        let db = Db::open(dir.path()).unwrap();
        for i in 0..60 {
            db.put(key(i), value(i)).unwrap();
        }
        db.close().unwrap();
    }
    let sst = files_with_suffix(dir.path(), ".sst").pop().unwrap();
    let original = std::fs::read(&sst).unwrap();
    let mut detected = 0;
    for offset in 0..original.len() {
        let mut bytes = original.clone();
        bytes[offset] ^= 0x01;
        std::fs::write(&sst, &bytes).unwrap();
        let outcome = (|| -> Result<(), Error> {
            let db = Db::open(dir.path())?;
            for i in 0..60 {
                let v = db.get(key(i))?;
                assert_eq!(
                    v.as_deref(),
                    Some(value(i).as_bytes()),
                    "flip at {offset}: wrong value for {}",
                    key(i)
                );
            }
            assert_eq!(db.iter().collect::<Result<Vec<_>, _>>()?.len(), 60);
            db.verify()
        })();
        if outcome.is_err() {
            detected += 1;
        }
        std::fs::write(&sst, &original).unwrap();
    }
    // Every byte is covered by a checksum.
    assert_eq!(detected, original.len(), "some flips went unnoticed");
}
