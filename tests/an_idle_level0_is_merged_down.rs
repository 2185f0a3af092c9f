//! When writes go idle and level 0 holds several overlapping tables (fewer than the count
//! trigger), the compaction thread merges them into the base level, so scans read one sorted
//! run per level. With the idle delay turned off they stay. In a deep tree, the levels that
//! batching (`Options::deep_tree_batching`) let grow past their targets while writes came are
//! brought back within them once writes stop, and the overwritten versions' space goes.

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

/// Options for a small deep tree: tiny memtables and level targets, batching by 4.
fn deep_tree_options(idle_delay: Option<Duration>) -> Options {
    Options {
        write_buffer_size: 32 << 10,
        target_file_size: 32 << 10,
        max_bytes_for_level_base: 64 << 10,
        max_bytes_for_level_multiplier: 4,
        deep_tree_batching: 4,
        ..Options::default().with_idle_compaction_delay(idle_delay)
    }
}

/// Levels (1 and below) over their plain targets, computed as the engine does: the last
/// level's size sets the scale, each level above a `multiplier`-th of the one below, down to
/// the first level whose target the base size covers. Level 0 counts if it holds two tables
/// or more (a single one is never merged down for idleness alone).
fn levels_over_target(stats: &strata::DbStats, opts: &Options) -> Vec<usize> {
    let bytes = &stats.bytes_per_level;
    let last = bytes.len() - 1;
    let mut target = vec![0u64; bytes.len()];
    target[last] = bytes[last].max(opts.max_bytes_for_level_base);
    let mut level = last;
    while level > 1 && target[level] > opts.max_bytes_for_level_base {
        target[level - 1] = target[level] / opts.max_bytes_for_level_multiplier;
        level -= 1;
    }
    let base = level;
    (0..last)
        .filter(|&l| match l {
            0 => stats.tables_per_level[0] > 1,
            l if l < base => bytes[l] > 0,
            l => bytes[l] > target[l],
        })
        .collect()
}

fn total_bytes(stats: &strata::DbStats) -> u64 {
    stats.bytes_per_level.iter().sum()
}

#[test]
fn a_deep_tree_brings_every_level_within_its_target_once_idle() {
    let dir = tempfile::tempdir().unwrap();
    const KEYS: u32 = 3000;
    const PASSES: u32 = 4;
    // Values that do not compress, so sizes on disk follow the data.
    let value = |pass: u32, i: u32| {
        let mut x = u64::from(pass) << 32 | u64::from(i);
        let mut v = format!("pass{pass}-{i:05}-");
        for _ in 0..6 {
            x = x.wrapping_mul(0x9e37_79b9_7f4a_7c15).rotate_left(29) ^ 0xbf58_476d_1ce4_e5b9;
            v.push_str(&format!("{x:016x}"));
        }
        v
    };
    // Load with no idle work, so the batched shape is what the writes left.
    let db = Db::open_with(dir.path(), deep_tree_options(None)).unwrap();
    for pass in 0..PASSES {
        for j in 0..KEYS {
            // A different order each pass, every key once.
            let i = (j * 1_609 + pass * 7) % KEYS;
            db.put(format!("key{i:05}"), value(pass, i)).unwrap();
        }
    }
    db.flush().unwrap();
    db.close().unwrap();

    let db = Db::open_with(dir.path(), deep_tree_options(None)).unwrap();
    let busy = db.stats();
    let over = levels_over_target(&busy, &deep_tree_options(None));
    assert!(
        !over.is_empty() && busy.bytes_per_level.iter().filter(|&&b| b > 0).count() >= 3,
        "the load should leave a deep tree with levels over their plain targets: {busy}"
    );
    db.close().unwrap();

    let opts = deep_tree_options(Some(Duration::from_millis(50)));
    let db = Db::open_with(dir.path(), opts.clone()).unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let stats = db.stats();
        if levels_over_target(&stats, &opts).is_empty() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "levels {:?} never came within target: {stats}",
            levels_over_target(&stats, &opts)
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    let idle = db.stats();
    assert!(idle.idle_compactions >= 1, "{idle}");
    // Every key's older versions above the last level are gone: the tree shrank.
    assert!(
        total_bytes(&idle) < total_bytes(&busy),
        "before: {busy}\nafter: {idle}"
    );
    let all: Vec<_> = db.iter().map(|r| r.unwrap()).collect();
    assert_eq!(all.len(), KEYS as usize);
    for (k, v) in &all {
        let i: u32 = std::str::from_utf8(&k[3..]).unwrap().parse().unwrap();
        assert_eq!(v, value(PASSES - 1, i).as_bytes());
    }
    db.close().unwrap();
}
