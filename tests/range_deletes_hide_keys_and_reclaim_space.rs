//! `delete_range` / `delete_prefix`: one tombstone hides a whole range for reads, iterators
//! and snapshots, survives flush, compaction, reopen and crash, and lets compaction drop
//! covered tables whole and then retire the tombstone.

mod common;

use strata::{Db, Durability, Options, WriteBatch};

fn opts() -> Options {
    Options {
        level0_compaction_trigger: 3,
        max_bytes_for_level_base: 64 << 10,
        max_bytes_for_level_multiplier: 4,
        target_file_size: 16 << 10,
        ..Options::default()
    }
    .with_write_buffer_size(16 << 10)
    .with_background_flush(false)
    .with_durability(Durability::NoSync)
}

fn keys(db: &Db) -> Vec<String> {
    db.iter()
        .map(|r| String::from_utf8(r.unwrap().0.to_vec()).unwrap())
        .collect()
}

#[test]
fn a_range_delete_hides_exactly_its_range_everywhere() {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open_with(dir.path(), opts()).unwrap();
    for i in 0..100 {
        db.put(format!("k{i:03}"), "v").unwrap();
    }
    db.flush().unwrap(); // half the keys in a table, the tombstone and the rest in memory
    let before = db.snapshot();
    db.delete_range("k010", "k020").unwrap();
    for i in 100..110 {
        db.put(format!("k{i:03}"), "v").unwrap();
    }
    // Written after the tombstone: not hidden by it.
    db.put("k015", "again").unwrap();

    assert_eq!(db.get("k009").unwrap().as_deref(), Some(&b"v"[..]));
    assert_eq!(db.get("k010").unwrap(), None);
    assert_eq!(db.get("k019").unwrap(), None);
    assert_eq!(db.get("k020").unwrap().as_deref(), Some(&b"v"[..]));
    assert_eq!(db.get("k015").unwrap().as_deref(), Some(&b"again"[..]));
    let expect: Vec<String> = (0..110)
        .filter(|i| !(10..20).contains(i) || *i == 15)
        .map(|i| format!("k{i:03}"))
        .collect();
    assert_eq!(keys(&db), expect);
    let mut back: Vec<String> = db
        .iter()
        .rev()
        .map(|r| String::from_utf8(r.unwrap().0.to_vec()).unwrap())
        .collect();
    back.reverse();
    assert_eq!(back, expect);
    // The snapshot taken before the tombstone still sees the range.
    assert_eq!(before.get("k012").unwrap().as_deref(), Some(&b"v"[..]));
    assert_eq!(before.iter().count(), 100);

    for step in ["flush", "compact", "reopen"] {
        match step {
            "flush" => db.flush().unwrap(),
            "compact" => db.compact().unwrap(),
            _ => {}
        }
        assert_eq!(keys(&db), expect, "after {step}");
        assert_eq!(
            before.get("k012").unwrap().as_deref(),
            Some(&b"v"[..]),
            "after {step}"
        );
    }
    drop(before);
    db.close().unwrap();
    let db = Db::open_with(dir.path(), opts()).unwrap();
    assert_eq!(keys(&db), expect, "after reopen");
    db.verify().unwrap();
}

#[test]
fn a_range_delete_survives_a_crash_through_the_wal() {
    let root = tempfile::tempdir().unwrap();
    let live = root.path().join("live");
    let db = Db::open_with(&live, Options::default()).unwrap();
    for i in 0..50 {
        db.put(format!("k{i:03}"), "v").unwrap();
    }
    db.flush().unwrap();
    db.delete_range("k000", "k025").unwrap();
    let image = root.path().join("image");
    common::copy_db_dir(&live, &image);
    drop(db);
    let db = Db::open(&image).unwrap();
    assert_eq!(db.iter().count(), 25);
    assert_eq!(db.get("k024").unwrap(), None);
    assert_eq!(db.get("k025").unwrap().as_deref(), Some(&b"v"[..]));
}

#[test]
fn covered_tables_are_dropped_whole_and_the_tombstone_is_retired() {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open_with(dir.path(), opts()).unwrap();
    for i in 0..20_000 {
        db.put(format!("t1:{i:06}"), "some table row payload")
            .unwrap();
    }
    db.put("t2:000001", "another table").unwrap();
    db.compact().unwrap();
    let tables_before: usize = db.stats().tables_per_level.iter().sum();
    assert!(tables_before > 3, "{}", db.stats());

    db.delete_prefix("t1:").unwrap();
    db.compact().unwrap();
    let stats = db.stats();
    assert!(
        stats.tables_dropped_by_range_dels > 0,
        "no table was dropped whole:\n{stats}"
    );
    assert_eq!(
        stats.range_tombstones, 0,
        "the tombstone was not retired:\n{stats}"
    );
    assert!(
        stats.bytes_per_level.iter().sum::<u64>() < 10_000,
        "space not reclaimed:\n{stats}"
    );
    assert_eq!(keys(&db), vec!["t2:000001".to_string()]);
    db.verify().unwrap();
    db.close().unwrap();
    let db = Db::open_with(dir.path(), opts()).unwrap();
    assert_eq!(keys(&db), vec!["t2:000001".to_string()]);
}

#[test]
fn a_prefix_of_0xff_bytes_deletes_to_the_end_of_the_key_space() {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open_with(dir.path(), opts()).unwrap();
    db.put([0xfe], "a").unwrap();
    db.put([0xff], "b").unwrap();
    db.put([0xff, 0xff, 0x01], "c").unwrap();
    db.delete_prefix([0xff]).unwrap();
    assert_eq!(db.iter().count(), 1);
    assert_eq!(db.get([0xff, 0xff, 0x01]).unwrap(), None);
}

#[test]
fn empty_or_backwards_ranges_are_invalid_arguments() {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open_with(dir.path(), opts()).unwrap();
    assert!(matches!(
        db.delete_range("b", "a"),
        Err(strata::Error::InvalidArgument(_))
    ));
    assert!(matches!(
        db.delete_range("a", "a"),
        Err(strata::Error::InvalidArgument(_))
    ));
    assert!(matches!(
        db.delete_range("", "a"),
        Err(strata::Error::InvalidArgument(_))
    ));
    let mut b = WriteBatch::new();
    b.put("x", "1").delete_range("a", "c");
    db.write(b).unwrap();
    assert_eq!(db.get("x").unwrap().as_deref(), Some(&b"1"[..]));
}
