//! `Db::close` promises to flush and fsync. On a database poisoned by an I/O error it can do
//! neither, so it must say so: an `Ok` would tell the caller that every acknowledged write is
//! durable, and a power cut right after would prove it wrong.

mod common;

use common::contract::{sim_options, DIR};
use strata::fs::{CrashMode, Fault, OpKind, SimFs};
use strata::{Db, Error, WriteOptions};

/// Regression test for a bug the full-disk test found: `close` on a poisoned database skipped
/// the flush and fsync and still returned `Ok`. Fixed in `db/write.rs`: it returns the
/// `Poisoned` error.
#[test]
fn closing_a_poisoned_database_reports_the_failure() {
    let fs = SimFs::new(1);
    let db = Db::open_with(DIR, sim_options(&fs)).unwrap();
    db.write_opt(put("a"), WriteOptions::no_sync()).unwrap();
    // The next hand-over to the OS fails: the write is refused and the database poisoned.
    fs.inject(Fault::nth(
        Some(OpKind::Write),
        fs.op_count(Some(OpKind::Write)),
    ));
    assert!(db.write_opt(put("b"), WriteOptions::no_sync()).is_err());
    assert!(matches!(db.put("c", "v"), Err(Error::Poisoned(_))));

    let closed = db.close();
    // What an Ok would have promised: "a" durable. A power cut shows it is not.
    let after = fs.fork();
    after.crash(CrashMode::DropUnsynced);
    let reopened = Db::open_with(DIR, sim_options(&after)).unwrap();
    let a_survived = reopened.get("a").unwrap().is_some();
    assert!(
        matches!(closed, Err(Error::Poisoned(_))),
        "close of a poisoned database returned {closed:?}; a power cut then kept \"a\": \
         {a_survived}"
    );
}

fn put(key: &str) -> strata::WriteBatch {
    let mut b = strata::WriteBatch::new();
    b.put(key, "value");
    b
}

/// The part that holds today: the database refuses writes once poisoned, and releases its lock
/// on close so it can be reopened, with every acknowledged write.
#[test]
fn a_poisoned_database_refuses_writes_and_reopens_with_what_was_acknowledged() {
    let fs = SimFs::new(2);
    let db = Db::open_with(DIR, sim_options(&fs)).unwrap();
    db.put("a", "1").unwrap();
    fs.inject(Fault::nth(
        Some(OpKind::Sync),
        fs.op_count(Some(OpKind::Sync)),
    ));
    let err = db.put("b", "2").unwrap_err();
    assert!(matches!(err, Error::Io { .. }), "{err}");
    let err = db.put("c", "3").unwrap_err();
    assert!(err.to_string().contains("refuses writes"), "{err}");
    assert_eq!(db.get("a").unwrap().as_deref(), Some(&b"1"[..]));
    let _ = db.close();
    let db = Db::open_with(DIR, sim_options(&fs)).unwrap();
    assert_eq!(db.get("a").unwrap().as_deref(), Some(&b"1"[..]));
    // "b" failed at its fsync, after its record reached the OS: it may be back; "c" never is.
    assert_eq!(db.get("c").unwrap(), None);
    db.put("d", "4").unwrap();
    db.close().unwrap();
}
