//! A crash at any file operation of the very first `Db::open` (which creates the database)
//! must leave a directory that opens, empty, in every crash mode: nothing was ever acknowledged,
//! so there is nothing to lose, and nothing that justifies refusing to open.

mod common;

use common::contract::{check_recovered, sim_options, Expect, History, DIR};
use strata::fs::{CrashMode, Fault, SimFs};
use strata::Db;

/// Every operation of the creating open, crashed in every mode; returns the failures.
fn sweep_creation() -> (u64, Vec<String>) {
    let probe = SimFs::new(0);
    Db::open_with(DIR, sim_options(&probe))
        .expect("create")
        .close()
        .expect("close");
    let total = probe.op_count(None);
    let mut failures = Vec::new();
    let mut states = 0;
    for k in 0..total {
        let fs = SimFs::new(k);
        fs.inject(Fault::dead(None, k));
        fs.set_tracing(true);
        let opened = Db::open_with(DIR, sim_options(&fs));
        let failed_at = fs
            .trace()
            .get(k as usize)
            .cloned()
            .unwrap_or_else(|| format!("#{k} (close)"));
        drop(opened);
        for mode in CrashMode::ALL {
            let after = fs.fork();
            after.crash(mode);
            states += 1;
            if let Err(e) = check_recovered(&after, &History::new(), Expect::after(mode)) {
                failures.push(format!("crash at {failed_at}, {mode:?}: {e}"));
            }
        }
    }
    (states, failures)
}

/// Regression test for a bug the crash sweep found: a crash during the very first open left a
/// WAL segment but no CURRENT, and every later open refused the directory. Fixed in
/// `db/recovery.rs`: without CURRENT, a directory holding only empty WAL segments, manifests and
/// temp files is an interrupted creation and starts over.
#[test]
fn crash_while_creating_a_database_leaves_it_openable() {
    let (states, failures) = sweep_creation();
    for f in failures.iter().take(10) {
        eprintln!("FAILED: {f}");
    }
    assert!(
        failures.is_empty(),
        "{} of {states} crash states of a database creation do not open",
        failures.len()
    );
}
