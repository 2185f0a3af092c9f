//! Write N records to the WAL, then truncate a copy of the log at every byte offset and reopen:
//! the database opens and holds exactly the records wholly before the cut.

mod common;

use common::{copy_db_dir, key, log_records_end, value, wal_with_records};
use strata::db::Db;
use strata::Options;

#[test]
fn wal_truncated_at_every_offset_recovers_a_prefix() {
    let root = tempfile::tempdir().unwrap();
    let live = root.path().join("live");
    let db = Db::open(&live).unwrap();
    let n = 40u64;
    for i in 0..n {
        db.put(key(i), value(i)).unwrap();
    }
    // Snapshot the directory while the database is open: the WAL holds all 40 records.
    let image = root.path().join("image");
    copy_db_dir(&live, &image);
    drop(db);

    let wal = wal_with_records(&image);
    let mut wal_bytes = std::fs::read(&wal).unwrap();
    // The records, without the zeros of the segment's preallocated end.
    wal_bytes.truncate(log_records_end(&wal_bytes));
    let wal_name = wal.file_name().unwrap().to_owned();
    assert!(wal_bytes.len() > 40 * 20, "the WAL holds the records");

    let mut recovered_counts = Vec::new();
    for cut in 0..=wal_bytes.len() {
        let trial = root.path().join(format!("cut{cut}"));
        copy_db_dir(&image, &trial);
        std::fs::write(trial.join(&wal_name), &wal_bytes[..cut]).unwrap();

        let db = Db::open_with(&trial, Options::default())
            .unwrap_or_else(|e| panic!("cut at {cut}: {e}"));
        let present: Vec<bool> = (0..n).map(|i| db.get(key(i)).unwrap().is_some()).collect();
        let m = present.iter().take_while(|p| **p).count();
        assert!(
            present[m..].iter().all(|p| !p),
            "cut at {cut}: a hole after {m} records"
        );
        for i in 0..m as u64 {
            assert_eq!(
                db.get(key(i)).unwrap().unwrap(),
                value(i).as_bytes(),
                "cut at {cut}"
            );
        }
        assert_eq!(
            db.iter().count(),
            m,
            "cut at {cut}: the iterator agrees with get"
        );
        db.verify().unwrap();
        recovered_counts.push(m);
        drop(db);
        std::fs::remove_dir_all(&trial).unwrap();
    }
    // Monotone in the cut, from nothing to everything.
    assert!(recovered_counts.windows(2).all(|w| w[0] <= w[1]));
    assert_eq!(recovered_counts[0], 0);
    assert_eq!(*recovered_counts.last().unwrap(), n as usize);
}
