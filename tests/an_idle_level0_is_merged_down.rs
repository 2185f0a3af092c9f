//! When writes go idle and level 0 holds several overlapping tables (fewer than the count
//! trigger), the compaction thread merges them into the base level, so scans read one sorted
//! run per level. With the idle delay turned off they stay.

use std::time::{Duration, Instant};

use strata::{Db, Options};

/// A database closed with three overlapping level-0 tables, reopened with `opts`. The tables
/// are made with idle compaction off, so a pause on a loaded machine cannot merge them early.
fn three_level0_tables(opts: Options) -> (tempfile::TempDir, Db) {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open_with(
        dir.path(),
        Options::default().with_idle_compaction_delay(None),
    )
    .unwrap();
    for round in 0..3u32 {
        for i in 0..500u32 {
            // Every round covers the whole key range, so the tables overlap.
            db.put(
                format!("key{:05}", i * 3 + round % 3),
                format!("r{round}-{i}"),
            )
            .unwrap();
        }
        db.flush().unwrap();
    }
    assert_eq!(db.stats().tables_per_level[0], 3);
    db.close().unwrap();
    let db = Db::open_with(dir.path(), opts).unwrap();
    (dir, db)
}

fn check_contents(db: &Db) {
    let all: Vec<_> = db.iter().map(|r| r.unwrap()).collect();
    assert_eq!(all.len(), 1500);
    for (k, v) in all.iter().step_by(97) {
        let key = std::str::from_utf8(k).unwrap();
        let n: u32 = key[3..].parse().unwrap();
        assert_eq!(v, format!("r{}-{}", n % 3, n / 3).as_bytes(), "{key}");
    }
}

#[test]
fn level0_is_merged_into_the_base_level_once_writes_go_idle() {
    let (_dir, db) = three_level0_tables(
        Options::default().with_idle_compaction_delay(Some(Duration::from_millis(50))),
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    while db.stats().tables_per_level[0] > 0 {
        assert!(
            Instant::now() < deadline,
            "level 0 never merged: {}",
            db.stats()
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    let stats = db.stats();
    assert_eq!(stats.idle_compactions, 1, "{stats}");
    assert_eq!(stats.read_amplification, 2, "memtable + one level: {stats}");
    check_contents(&db);
    db.close().unwrap();
}

#[test]
fn without_an_idle_delay_level0_waits_for_the_count_trigger() {
    let (_dir, db) = three_level0_tables(Options::default().with_idle_compaction_delay(None));
    std::thread::sleep(Duration::from_millis(300));
    let stats = db.stats();
    assert_eq!(stats.tables_per_level[0], 3, "{stats}");
    assert_eq!(stats.idle_compactions, 0);
    check_contents(&db);
    db.close().unwrap();
}
