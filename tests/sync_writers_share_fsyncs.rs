//! Group commit: writers that each ask for an fsync share one fsync per group, and after the
//! first groups the leader paces itself so that the writers released by one fsync join the
//! next one together.

use std::sync::Arc;

use strata::{Db, Durability, Options};

#[test]
fn eight_sync_writers_share_their_fsyncs() {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open_with(
        dir.path(),
        Options::default().with_durability(Durability::Sync),
    )
    .unwrap();
    let threads = 8;
    let per_thread = 200;
    let barrier = Arc::new(std::sync::Barrier::new(threads));
    let handles: Vec<_> = (0..threads)
        .map(|t| {
            let db = db.clone();
            let barrier = Arc::clone(&barrier);
            std::thread::spawn(move || {
                barrier.wait();
                for i in 0..per_thread {
                    db.put(format!("t{t}-{i:05}"), format!("v{i}")).unwrap();
                }
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
    let stats = db.stats();
    let writes = (threads * per_thread) as u64;
    assert_eq!(stats.writes, writes);
    // Every write waited for an fsync, yet the writers shared them: far fewer groups than
    // writes (a group per write would mean no sharing at all).
    assert!(
        stats.write_groups * 2 <= writes,
        "{} groups for {writes} sync writes",
        stats.write_groups
    );
    assert!(
        stats.pacing_waits > 0,
        "the leader never waited for the group"
    );
    for t in 0..threads {
        for i in (0..per_thread).step_by(37) {
            assert_eq!(
                db.get(format!("t{t}-{i:05}")).unwrap().unwrap(),
                format!("v{i}").as_bytes()
            );
        }
    }
    db.close().unwrap();
}

#[test]
fn a_lone_sync_writer_never_waits_for_company() {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open(dir.path()).unwrap();
    for i in 0..200 {
        db.put(format!("k{i:05}"), "v").unwrap();
    }
    let stats = db.stats();
    assert_eq!(stats.write_groups, 200, "one group per write");
    assert_eq!(
        stats.pacing_waits, 0,
        "a single writer has nobody to wait for"
    );
    db.close().unwrap();
}
