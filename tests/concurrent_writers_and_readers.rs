//! Several threads write and read at once (through memtable switches and flushes); afterwards
//! every acknowledged write is readable, and readers never see a value go backwards.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use strata::batch::WriteBatch;
use strata::db::Db;
use strata::{Durability, Options, WriteOptions};

#[test]
fn concurrent_writers_and_readers_see_every_acknowledged_write() {
    let dir = tempfile::tempdir().unwrap();
    let opts = Options::default()
        .with_write_buffer_size(64 * 1024)
        .with_durability(Durability::NoSync);
    let db = Db::open_with(dir.path(), opts.clone()).unwrap();
    let writers = 4u64;
    let per_writer = 3000u64;
    // Each writer publishes how far it got; readers check that everything up to there is visible.
    let progress: Arc<Vec<AtomicU64>> = Arc::new((0..writers).map(|_| AtomicU64::new(0)).collect());

    std::thread::scope(|s| {
        for w in 0..writers {
            let db = db.clone();
            let progress = Arc::clone(&progress);
            s.spawn(move || {
                for i in 0..per_writer {
                    if i % 10 == 0 {
                        let mut b = WriteBatch::new();
                        b.put(format!("w{w}-{i:06}"), format!("{i}"))
                            .put(format!("w{w}-last"), format!("{i}"));
                        db.write(b).unwrap();
                    } else {
                        db.put(format!("w{w}-{i:06}"), format!("{i}")).unwrap();
                        db.put(format!("w{w}-last"), format!("{i}")).unwrap();
                    }
                    progress[w as usize].store(i + 1, Ordering::Release);
                }
            });
        }
        for r in 0..2u64 {
            let db = db.clone();
            let progress = Arc::clone(&progress);
            s.spawn(move || {
                let mut last_seen = vec![0u64; writers as usize];
                for round in 0..400u64 {
                    let w = (round + r) % writers;
                    let done = progress[w as usize].load(Ordering::Acquire);
                    if done == 0 {
                        continue;
                    }
                    let i = (round * 7919) % done;
                    let v = db.get(format!("w{w}-{i:06}")).unwrap();
                    assert_eq!(
                        v.as_deref(),
                        Some(format!("{i}").as_bytes()),
                        "acknowledged write w{w}-{i} not visible"
                    );
                    let last: u64 =
                        String::from_utf8(db.get(format!("w{w}-last")).unwrap().unwrap().to_vec())
                            .unwrap()
                            .parse()
                            .unwrap();
                    assert!(
                        last + 1 >= done && last >= last_seen[w as usize],
                        "w{w}-last went backwards"
                    );
                    last_seen[w as usize] = last;
                    if round % 50 == 0 {
                        // A scan is a consistent view: within one writer's keys, no gaps below its "last".
                        let snap = db.snapshot();
                        let last: u64 = String::from_utf8(
                            snap.get(format!("w{w}-last")).unwrap().unwrap().to_vec(),
                        )
                        .unwrap()
                        .parse()
                        .unwrap();
                        let n = snap.prefix(format!("w{w}-0")).count() as u64;
                        assert!(n > last, "snapshot shows last={last} but only {n} keys");
                    }
                }
            });
        }
    });

    for w in 0..writers {
        for i in 0..per_writer {
            assert_eq!(
                db.get(format!("w{w}-{i:06}")).unwrap().as_deref(),
                Some(format!("{i}").as_bytes())
            );
        }
    }
    let stats = db.stats();
    assert!(
        stats.flushes > 0,
        "the test should exercise flushes:\n{stats}"
    );
    db.close().unwrap();

    let db = Db::open_with(dir.path(), opts).unwrap();
    assert_eq!(db.iter().count() as u64, writers * (per_writer + 1));
    db.verify().unwrap();
}

#[test]
fn concurrent_sync_writers_share_fsyncs() {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open(dir.path()).unwrap();
    std::thread::scope(|s| {
        for t in 0..8 {
            let db = db.clone();
            s.spawn(move || {
                for i in 0..100 {
                    db.put(format!("t{t}-{i}"), "v").unwrap();
                }
            });
        }
    });
    let stats = db.stats();
    assert_eq!(stats.writes, 800);
    assert_eq!(db.iter().count(), 800);
    // Group commit: fewer WAL appends (groups) than writes when eight threads sync at once.
    assert!(
        stats.write_groups < stats.writes,
        "no grouping happened:\n{stats}"
    );
}

/// Sync and no-sync writers and memtable switches (`flush`) share one queue: a no-sync leader
/// leaves sync writers for the next group and a switch always goes alone, so the lead passes
/// between every kind of writer. Every write must be acknowledged once and be readable.
#[test]
fn mixed_sync_nosync_writers_and_flushes_all_complete() {
    let dir = tempfile::tempdir().unwrap();
    let opts = Options::default().with_write_buffer_size(256 * 1024);
    let db = Db::open_with(dir.path(), opts.clone()).unwrap();
    let per_writer = 400u64;
    std::thread::scope(|s| {
        for t in 0..6u64 {
            let db = db.clone();
            s.spawn(move || {
                let durability = if t % 2 == 0 {
                    WriteOptions::sync()
                } else {
                    WriteOptions::no_sync()
                };
                for i in 0..per_writer {
                    let mut b = WriteBatch::new();
                    b.put(format!("t{t}-{i:04}"), format!("{i}"));
                    db.write_opt(b, durability).unwrap();
                }
            });
        }
        let db = db.clone();
        s.spawn(move || {
            for _ in 0..20 {
                db.flush().unwrap();
            }
        });
    });
    for t in 0..6u64 {
        for i in 0..per_writer {
            assert_eq!(
                db.get(format!("t{t}-{i:04}")).unwrap().as_deref(),
                Some(format!("{i}").as_bytes()),
                "t{t}-{i} lost"
            );
        }
    }
    assert_eq!(db.stats().writes, 6 * per_writer);
    db.close().unwrap();
    let db = Db::open_with(dir.path(), opts).unwrap();
    assert_eq!(db.iter().count() as u64, 6 * per_writer);
}
