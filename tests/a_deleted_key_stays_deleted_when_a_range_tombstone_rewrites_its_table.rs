//! A point deletion must keep hiding older versions of its key when a range tombstone makes the
//! engine rewrite the table that holds the deletion.

mod common;

use common::contract::{sim_options, DIR};
use strata::fs::SimFs;
use strata::{Db, WriteBatch};

/// Regression test for a bug the I/O-error sweep found (seed 1, faults at operations 36 and
/// 108): a settled range tombstone made the engine rewrite one level-0 table in place and
/// treat the rewrite as bottommost, dropping point deletions whose older values still sat in
/// another level-0 table. Fixed in `db/compact.rs`: a level-0 rewrite is never bottommost.
#[test]
fn a_deleted_key_stays_deleted_when_a_range_tombstone_rewrites_its_table() {
    let fs = SimFs::new(1);
    let db = Db::open_with(DIR, sim_options(&fs)).unwrap();
    // An older level-0 table holds the value.
    db.put("k014", "old").unwrap();
    db.flush().unwrap();
    // A newer level-0 table holds its deletion, next to a key a range tombstone will cover.
    let mut batch = WriteBatch::new();
    batch.put("k001", "x").delete("k014");
    db.write(batch).unwrap();
    db.flush().unwrap();
    assert_eq!(db.get("k014").unwrap(), None);
    // The range tombstone makes the newer table worth rewriting.
    db.delete_range("k000", "k002").unwrap();
    db.flush().unwrap();
    assert_eq!(db.get("k001").unwrap(), None);
    assert_eq!(
        db.get("k014").unwrap(),
        None,
        "a deleted key came back (tables per level: {:?})",
        db.stats().tables_per_level
    );
    db.close().unwrap();
    let db = Db::open_with(DIR, sim_options(&fs)).unwrap();
    assert_eq!(db.get("k014").unwrap(), None);
}
