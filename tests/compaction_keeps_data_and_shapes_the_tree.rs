//! Compaction merges level 0 into deeper levels, keeps every live key, honours snapshots, and
//! reclaims the space of overwritten and deleted data.

use std::collections::BTreeMap;

use rand::{Rng, SeedableRng};
use strata::{Db, Options};

fn small_levels(background: bool) -> Options {
    Options {
        level0_compaction_trigger: 3,
        max_bytes_for_level_base: 64 << 10,
        max_bytes_for_level_multiplier: 4,
        target_file_size: 16 << 10,
        ..Options::default()
    }
    .with_write_buffer_size(16 << 10)
    .with_block_size(1024)
    .with_background_flush(background)
    .with_durability(strata::Durability::NoSync)
    // Compactions of 32 KiB and more are split three ways (with background threads).
    .with_max_subcompactions(3)
}

/// Write keys `k00000..k02000`, `rounds` times over, each value naming its round.
fn overwrite_in_rounds(db: &Db, rounds: usize) {
    for round in 0..rounds {
        for i in 0..2000 {
            db.put(
                format!("k{i:05}"),
                format!("round{round}-{}", "y".repeat(50)),
            )
            .unwrap();
        }
    }
}

fn total_bytes(db: &Db) -> u64 {
    db.stats().bytes_per_level.iter().sum()
}

fn run_random_workload(background: bool) {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open_with(dir.path(), small_levels(background)).unwrap();
    let mut rng = rand::rngs::StdRng::seed_from_u64(7);
    let mut model = BTreeMap::new();
    for i in 0..30_000u32 {
        let k = format!("key{:05}", rng.random_range(0..5000u32));
        if rng.random_range(0..10) == 0 {
            db.delete(&k).unwrap();
            model.remove(&k);
        } else {
            let v = format!("value-{i}-{}", "x".repeat(rng.random_range(0..80)));
            db.put(&k, &v).unwrap();
            model.insert(k, v);
        }
    }
    db.flush().unwrap();
    let stats = db.stats();
    assert!(stats.compactions > 0, "no compaction ran:\n{stats}");
    let deeper: usize = stats.tables_per_level[1..].iter().sum();
    assert!(deeper > 0, "nothing below level 0:\n{stats}");
    if background {
        assert!(
            stats.subcompactions > 0,
            "no compaction was split:\n{stats}"
        );
    } else {
        assert_eq!(stats.subcompactions, 0, "an inline run stays on one thread");
    }
    db.verify().unwrap();

    let got: Vec<(String, String)> = db
        .iter()
        .map(|r| {
            let (k, v) = r.unwrap();
            (
                String::from_utf8(k.to_vec()).unwrap(),
                String::from_utf8(v.to_vec()).unwrap(),
            )
        })
        .collect();
    let want: Vec<(String, String)> = model.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
    assert_eq!(got, want);
    for (k, v) in model.iter().step_by(7) {
        assert_eq!(db.get(k).unwrap().as_deref(), Some(v.as_bytes()));
    }
    db.close().unwrap();

    let db = Db::open_with(dir.path(), small_levels(background)).unwrap();
    assert_eq!(db.iter().count(), model.len());
    db.verify().unwrap();
}

#[test]
fn a_random_workload_survives_compactions_at_every_level_inline() {
    run_random_workload(false);
}

#[test]
fn a_random_workload_survives_compactions_at_every_level_in_the_background() {
    run_random_workload(true);
}

#[test]
fn full_compaction_drops_deleted_and_overwritten_data() {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open_with(dir.path(), small_levels(false)).unwrap();
    overwrite_in_rounds(&db, 5);
    db.compact().unwrap();
    let after_overwrites = total_bytes(&db);
    // One live version of 2,000 keys of ~70 bytes is ~150 KB; five versions would be 5x.
    assert!(
        after_overwrites < 300_000,
        "overwritten versions kept: {after_overwrites} bytes\n{}",
        db.stats()
    );
    for i in 0..2000 {
        db.delete(format!("k{i:05}")).unwrap();
    }
    db.compact().unwrap();
    assert_eq!(db.iter().count(), 0);
    let after_deletes = total_bytes(&db);
    assert!(
        after_deletes < 10_000,
        "tombstones kept at the bottom: {after_deletes} bytes\n{}",
        db.stats()
    );
    db.verify().unwrap();
}

#[test]
fn compaction_keeps_what_a_snapshot_sees() {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open_with(dir.path(), small_levels(false)).unwrap();
    for i in 0..3000 {
        db.put(format!("k{i:05}"), "old").unwrap();
    }
    let snap = db.snapshot();
    for i in 0..3000 {
        if i % 2 == 0 {
            db.delete(format!("k{i:05}")).unwrap();
        } else {
            db.put(format!("k{i:05}"), "new").unwrap();
        }
    }
    db.compact().unwrap();
    assert_eq!(snap.iter().count(), 3000);
    assert_eq!(snap.get("k00000").unwrap().as_deref(), Some(&b"old"[..]));
    assert_eq!(snap.get("k00001").unwrap().as_deref(), Some(&b"old"[..]));
    assert_eq!(db.get("k00000").unwrap(), None);
    assert_eq!(db.get("k00001").unwrap().as_deref(), Some(&b"new"[..]));
    drop(snap);
    // With the snapshot gone, the old versions and the tombstones can go.
    let before = total_bytes(&db);
    db.compact().unwrap();
    assert!(
        total_bytes(&db) < before,
        "nothing reclaimed after the snapshot was released"
    );
    assert_eq!(db.iter().count(), 1500);
}

#[test]
fn readers_keep_their_files_while_compaction_replaces_them() {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open_with(dir.path(), small_levels(false)).unwrap();
    for i in 0..4000 {
        db.put(format!("k{i:05}"), format!("v{i}")).unwrap();
    }
    db.flush().unwrap();
    let mut it = db.iter();
    let first = it.next().unwrap().unwrap();
    assert_eq!(&first.0[..], b"k00000");
    // Rewrite everything and compact: the iterator's tables become obsolete.
    for i in 0..4000 {
        db.put(format!("k{i:05}"), "replaced").unwrap();
    }
    db.compact().unwrap();
    let rest: Vec<_> = it.map(|r| r.unwrap()).collect();
    assert_eq!(rest.len(), 3999);
    assert!(
        rest.iter().all(|(_, v)| v.starts_with(b"v")),
        "the iterator saw later writes"
    );
}

#[test]
fn tombstone_dense_tables_are_compacted_once_no_snapshot_needs_them() {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open_with(dir.path(), small_levels(false)).unwrap();
    for i in 0..3000 {
        db.put(format!("k{i:05}"), "some value that takes space")
            .unwrap();
    }
    db.compact().unwrap();
    let snap = db.snapshot();
    for i in 0..3000 {
        db.delete(format!("k{i:05}")).unwrap();
    }
    db.compact().unwrap();
    let held = total_bytes(&db);
    assert!(held > 50_000, "the snapshot keeps the data: {held}");
    assert_eq!(snap.iter().count(), 3000);
    drop(snap);
    // No manual compaction: the next flush lets background work notice the dense tables.
    db.put("trigger", "x").unwrap();
    db.flush().unwrap();
    let after = total_bytes(&db);
    assert!(
        after < 5_000,
        "tombstone-dense tables were left alone: {after} bytes\n{}",
        db.stats()
    );
    assert_eq!(db.iter().count(), 1);
}

/// Compaction reads every block of its inputs once: it must not push the blocks readers use
/// out of the cache by filling it with them. Reads do fill it.
#[test]
fn compaction_does_not_fill_the_block_cache() {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open_with(dir.path(), small_levels(false)).unwrap();
    overwrite_in_rounds(&db, 3);
    db.flush().unwrap();
    let before = db.stats().block_cache;
    db.compact().unwrap();
    let after = db.stats().block_cache;
    assert!(
        after.misses > before.misses + 50,
        "compaction read few blocks: {before:?} -> {after:?}"
    );
    assert_eq!(after.inserts, before.inserts, "compaction filled the cache");
    for i in 0..2000 {
        assert!(db.get(format!("k{i:05}")).unwrap().is_some());
    }
    assert!(
        db.stats().block_cache.inserts > after.inserts,
        "reads fill the cache"
    );
}

/// Random overwrites with inline compaction under `deep_tree_batching = batching`: the most
/// level-0 tables seen once the tree was deep, and the bytes compactions wrote.
fn deep_tree_run(batching: usize) -> (usize, u64) {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open_with(
        dir.path(),
        small_levels(false).with_deep_tree_batching(batching),
    )
    .unwrap();
    let mut rng = rand::rngs::StdRng::seed_from_u64(11);
    let mut most_l0_when_deep = 0;
    for i in 0..60_000u32 {
        let k = format!("key{:05}", rng.random_range(0..20_000u32));
        db.put(&k, format!("value-{i}-{}", "x".repeat(40))).unwrap();
        if i % 100 == 0 {
            let stats = db.stats();
            let last = stats.bytes_per_level.len() - 1;
            let deep = stats.bytes_per_level[1..last].iter().any(|&b| b > 0);
            if deep {
                most_l0_when_deep = most_l0_when_deep.max(stats.tables_per_level[0]);
            }
        }
    }
    let stats = db.stats();
    for i in (0..20_000u32).step_by(997) {
        // Every key read goes through the levels compaction shaped (value or absent).
        db.get(format!("key{i:05}")).unwrap();
    }
    (most_l0_when_deep, stats.compaction_write_bytes)
}

#[test]
fn a_deep_tree_batches_level_zero_and_writes_less() {
    let trigger = small_levels(false).level0_compaction_trigger;
    let (l0_eager, written_eager) = deep_tree_run(1);
    let (l0_batched, written_batched) = deep_tree_run(2);
    assert!(l0_eager > 0, "the tree never became deep");
    assert!(
        l0_eager <= trigger,
        "without batching level 0 is compacted at {trigger} tables, saw {l0_eager}"
    );
    assert!(
        l0_batched > trigger && l0_batched <= 2 * trigger,
        "with batching 2 level 0 should wait for {} tables, saw {l0_batched}",
        2 * trigger
    );
    assert!(
        written_batched < written_eager,
        "batching should write less: {written_batched} bytes against {written_eager}"
    );
}
