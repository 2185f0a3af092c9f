//! At most `max_open_tables` tables are open at once: reads through many more tables stay
//! correct, tables closed by the cache are opened again on demand (and checked again), and the
//! process holds no more table file descriptors than the bound allows.

use std::path::Path;

use strata::{Db, Options};

fn many_tables(dir: &Path, max_open: usize) -> Db {
    let opts = Options::default()
        .with_background_flush(false)
        .with_max_open_tables(max_open)
        .with_idle_compaction_delay(None);
    let db = Db::open_with(dir, opts).unwrap();
    // Twelve flushes of disjoint key ranges; compaction merges level 0 down as it fills,
    // which leaves several tables.
    for t in 0..12u32 {
        for i in 0..200u32 {
            db.put(format!("t{t:02}-{i:04}"), format!("v{t}-{i}"))
                .unwrap();
        }
        db.flush().unwrap();
    }
    db
}

/// Open file descriptors of this process that point at `.sst` files under `dir`.
fn open_table_fds(dir: &Path) -> usize {
    let dir = std::fs::canonicalize(dir).unwrap();
    std::fs::read_dir("/proc/self/fd")
        .unwrap()
        .filter_map(|e| std::fs::read_link(e.unwrap().path()).ok())
        .filter(|p| p.starts_with(&dir) && p.extension().is_some_and(|x| x == "sst"))
        .count()
}

#[test]
fn reads_through_more_tables_than_may_be_open_are_correct() {
    let dir = tempfile::tempdir().unwrap();
    let db = many_tables(dir.path(), 2);
    let tables: usize = db.stats().tables_per_level.iter().sum();
    assert!(
        tables > 2,
        "the workload must make more tables than may be open: {tables}"
    );
    for round in 0..3 {
        for t in 0..12u32 {
            for i in (0..200u32).step_by(41) {
                let v = db.get(format!("t{t:02}-{i:04}")).unwrap();
                assert_eq!(
                    v.as_deref(),
                    Some(format!("v{t}-{i}").as_bytes()),
                    "round {round}"
                );
            }
        }
        assert!(
            open_table_fds(dir.path()) <= 2,
            "{} table files open",
            open_table_fds(dir.path())
        );
    }
    assert_eq!(db.iter().count(), 12 * 200);
    let stats = db.stats();
    assert!(stats.table_cache.open_tables <= 2, "{stats}");
    assert!(stats.table_cache.evictions > 0, "{stats}");
    assert!(
        stats.table_cache.opens > tables as u64,
        "tables were reopened: {stats}"
    );
    db.verify().unwrap();
    db.close().unwrap();

    // Reopened with the bound, the database opens every table once to check it.
    let db = Db::open_with(dir.path(), Options::default().with_max_open_tables(3)).unwrap();
    assert!(open_table_fds(dir.path()) <= 3);
    assert_eq!(db.iter().count(), 12 * 200);
    db.close().unwrap();
}

#[test]
fn a_table_damaged_while_closed_is_reported_when_opened_again() {
    let dir = tempfile::tempdir().unwrap();
    let db = many_tables(dir.path(), 1);
    // At most one table is open; damage every table's footer on disk. Reading everything
    // must reopen a closed one, which must be reported, not served.
    let ssts: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "sst"))
        .collect();
    assert!(ssts.len() > 1);
    for sst in &ssts {
        let mut bytes = std::fs::read(sst).unwrap();
        let n = bytes.len();
        bytes[n - 10] ^= 0x55;
        std::fs::write(sst, bytes).unwrap();
    }
    let read_all = db
        .iter()
        .map(|r| r.map(drop))
        .collect::<Result<Vec<()>, _>>();
    let err = read_all.expect_err("a damaged footer must not be read as valid");
    assert!(err.is_corruption(), "{err}");
}
