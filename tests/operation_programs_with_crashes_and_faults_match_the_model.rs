//! Random operation programs (`common/program.rs`): writes, batches, range deletes, gets, scans
//! both ways, snapshots, flushes, compactions, reopens, crashes in every mode and I/O faults at
//! the n-th next operation, on `SimFs`, checked step by step against the sweeps' model. The
//! fuzz target `db_program` runs the same programs decoded from fuzzer input; this test runs
//! random ones in the stable suite, and keeps the programs the fuzzer found as regressions.
//!
//! Environment: `STRATA_PROGRAM_SEED` (first seed, default 1), `STRATA_PROGRAMS` (how many,
//! default 2000), `STRATA_PROGRAM_LEN` (actions, default 64, at most `program::MAX_ACTIONS`),
//! `STRATA_TORTURE_SECONDS` (long mode: batches of fresh seeds until the time is up),
//! `STRATA_PROGRAM` (run and print only the program of this seed, as a failure names it).

mod common;
#[path = "common/program.rs"]
mod program;

use std::time::{Duration, Instant};

// `program.rs` reaches the model as `super::contract`.
use common::contract::{self, created_db, env_u64, parallel_sweep, Watchdog};
use common::torture::Torture;

#[test]
fn random_operation_programs_with_crashes_and_faults_match_the_model() {
    let start = Instant::now();
    let watchdog = Watchdog::start(Duration::from_secs(120));
    let base = created_db(0);
    let first = env_u64("STRATA_PROGRAM_SEED", 1);
    let count = env_u64("STRATA_PROGRAMS", 2000);
    let len = env_u64("STRATA_PROGRAM_LEN", 64) as usize;
    // A round is a batch of `count` programs; long mode runs more batches with fresh seeds.
    let torture = Torture::new("operation programs", [first]);
    let (mut programs, mut crashes, mut faults) = (0, 0, 0);
    let mut failures = Vec::new();
    for round in torture.seeds() {
        let seeds: Vec<u64> = (0..count)
            .map(|i| round.wrapping_mul(1 << 20) + i)
            .collect();
        let stats = std::sync::Mutex::new((0u64, 0u64));
        let (n, f) = parallel_sweep(&seeds, &watchdog, "program seed", |seed| {
            let program = program::random_program(seed, len);
            let s = program::run(&base, &program)?;
            let mut g = stats.lock().unwrap_or_else(|e| e.into_inner());
            g.0 += s.crashes;
            g.1 += s.faults_fired;
            Ok(1)
        });
        let (c, fl) = stats.into_inner().unwrap_or_else(|e| e.into_inner());
        programs += n;
        crashes += c;
        faults += fl;
        for (seed, e) in &f {
            let e = format!("program seed {seed}: {e}");
            torture.failure(
                round,
                format!("STRATA_PROGRAM_SEED={round} (program {seed})"),
                &e,
            );
            failures.push(e);
        }
        torture.progress(
            round,
            format!("{n} programs, {c} crashes, {fl} faults fired"),
        );
    }
    eprintln!(
        "{programs} programs of {len} actions, {crashes} crashes checked, {faults} faults fired, \
         {} failures, in {:.1?}",
        failures.len(),
        start.elapsed()
    );
    torture.finish();
    assert!(programs >= count, "only {programs} programs ran");
}

#[test]
fn one_program_replays_from_its_seed() {
    // STRATA_PROGRAM=n runs (and prints) the one program a failure named.
    let Some(seed) = std::env::var("STRATA_PROGRAM")
        .ok()
        .and_then(|v| v.parse::<u64>().ok())
    else {
        return;
    };
    let len = env_u64("STRATA_PROGRAM_LEN", 64) as usize;
    let program = program::random_program(seed, len);
    eprintln!("{program:#?}");
    if let Err(e) = program::run(&created_db(0), &program) {
        panic!("program seed {seed}: {e}");
    }
}
