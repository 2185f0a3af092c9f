//! Regression (found by the corruption sweep, `every_kind_of_damage_to_every_file_is_detected`):
//! recovery replayed any WAL record with a valid checksum. An older segment's bytes under the
//! live segment's name replayed writes the tables already hold over newer ones (and lost the
//! synced writes of the real segment); a later record copied over an earlier one in the
//! unsynced tail was replayed after a hole. Sequence numbers are consecutive in commit order,
//! so recovery now requires the replayed records to continue exactly where the manifest's
//! tables end, one after another: anything else is `Corruption`.

mod common;

use std::path::Path;

use common::contract::{sim_options, DIR};
use common::corruption::parse_log;
use strata::fs::{CrashMode, SimFs};
use strata::{Db, Error, Options, WriteBatch, WriteOptions};

fn options(fs: &SimFs) -> Options {
    sim_options(fs).with_write_buffer_size(64 << 20)
}

fn wal_name(fs: &SimFs) -> String {
    let logs: Vec<String> = fs
        .names(Path::new(DIR))
        .into_iter()
        .filter(|n| n.ends_with(".log"))
        .collect();
    assert_eq!(logs.len(), 1, "{logs:?}");
    logs[0].clone()
}

fn put(db: &Db, key: &str, value: &str, sync: bool) {
    let mut batch = WriteBatch::new();
    batch.put(key, value);
    let opts = if sync {
        WriteOptions::sync()
    } else {
        WriteOptions::no_sync()
    };
    db.write_opt(batch, opts).unwrap();
}

/// A database (as after a process crash) whose tables hold `k0..k9` = `old`, and whose WAL
/// holds `k0..k9` = `new` (synced), then `n1..n4` (not synced; `n3` long). Also returns the
/// bytes of the WAL segment that held the old values, since flushed and deleted.
fn image() -> (SimFs, Vec<u8>) {
    let fs = SimFs::new(3);
    let db = Db::open_with(DIR, options(&fs)).unwrap();
    for i in 0..10 {
        put(&db, &format!("k{i}"), "old", true);
    }
    let old_wal = fs.contents(&Path::new(DIR).join(wal_name(&fs))).unwrap();
    db.flush().unwrap();
    for i in 0..10 {
        put(&db, &format!("k{i}"), "new", true);
    }
    put(&db, "n1", "1", false);
    put(&db, "n2", &"2".repeat(10), false);
    put(&db, "n3", &"3".repeat(100), false);
    put(&db, "n4", "4", false);
    let image = fs.fork();
    image.crash(CrashMode::KeepAll);
    drop(db);
    (image, old_wal)
}

/// Open: must fail with Corruption; before the fix it opened and served wrong values.
fn assert_open_reports_corruption(fs: &SimFs, what: &str) {
    match Db::open_with(DIR, options(fs).with_create_if_missing(false)) {
        Err(e @ Error::Corruption { .. }) => {
            assert!(e.to_string().contains(".log"), "{what}: {e}");
        }
        Err(e) => panic!("{what}: not a corruption error: {e}"),
        Ok(db) => {
            let found: Vec<(String, String)> = db
                .iter()
                .map(|r| {
                    let (k, v) = r.unwrap();
                    (
                        String::from_utf8_lossy(&k).into_owned(),
                        String::from_utf8_lossy(&v).into_owned(),
                    )
                })
                .collect();
            panic!("{what} was replayed: the database holds {found:?}");
        }
    }
}

#[test]
fn the_undamaged_image_recovers_everything() {
    let (fs, _) = image();
    let db = Db::open_with(DIR, options(&fs)).unwrap();
    for i in 0..10 {
        assert_eq!(
            db.get(format!("k{i}")).unwrap().as_deref(),
            Some(&b"new"[..])
        );
    }
    assert_eq!(db.get("n4").unwrap().as_deref(), Some(&b"4"[..]));
}

#[test]
fn an_older_segment_under_the_live_segments_name_is_corruption() {
    let (fs, old_wal) = image();
    let path = Path::new(DIR).join(wal_name(&fs));
    fs.modify(&path, |c| *c = old_wal.clone()).unwrap();
    assert_open_reports_corruption(&fs, "an older WAL segment");
}

#[test]
fn a_later_record_copied_over_an_earlier_one_in_the_unsynced_tail_is_corruption() {
    let (fs, _) = image();
    let path = Path::new(DIR).join(wal_name(&fs));
    let bytes = fs.contents(&path).unwrap();
    let data: Vec<_> = parse_log(&bytes).into_iter().filter(|r| !r.mark).collect();
    assert_eq!(data.len(), 14);
    // n3 (long) over n1's place: it overwrites n1, n2 and the head of n3; n4 stays valid.
    let (n1, n3) = (data[10].range.clone(), data[12].range.clone());
    assert!(n3.len() > data[11].range.end - n1.start);
    fs.modify(&path, |c| {
        c[n1.start..n1.start + n3.len()].copy_from_slice(&bytes[n3.clone()])
    })
    .unwrap();
    assert_open_reports_corruption(&fs, "a record replayed after a hole");
}
