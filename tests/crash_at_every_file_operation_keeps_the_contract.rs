//! Crash-point sweep: run a deterministic workload (puts, deletes, range deletes, batches, sync
//! and no-sync writes, reads, flushes, compactions, reopens) on a simulated file system, count
//! its file operations, then for every k-th operation replay the workload with the disk dying
//! at that operation, crash in each mode of `SWEPT_MODES`, reopen, and check the contract (see
//! `common/contract.rs`) against what the workload saw acknowledged.
//!
//! Environment (for long runs and replays):
//! - `STRATA_CRASH_SEED`: the workload and crash seed (default 1); `STRATA_CRASH_SEEDS`: how
//!   many consecutive seeds to sweep (default 2).
//! - `STRATA_CRASH_STEPS`: workload length (default 500).
//! - `STRATA_CRASH_STRIDE`: crash at every k-th operation (default 1: every operation).
//! - `STRATA_CRASH_POINT`: only this operation, with a trace of the operations around it.
//! - `STRATA_TORTURE_SECONDS`: long mode, after those seeds sweep fresh ones until the time is
//!   up (`common/torture.rs`).

mod common;

use std::time::{Duration, Instant};

use common::contract::{
    check_recovered, created_db, env_u64, parallel_sweep, random_workload, trace_around, Expect,
    Runner, Step, Watchdog, SWEPT_MODES,
};
use common::torture::Torture;
use strata::fs::{Fault, SimFs};

/// Replay the workload with the disk dying at operation `k`, then crash and check each mode.
fn crash_at(base: &SimFs, steps: &[Step], seed: u64, k: u64, trace: bool) -> Result<(), String> {
    let fs = base.fork();
    fs.reseed(seed ^ k.wrapping_mul(0x9E37_79B9_7F4A_7C15));
    fs.set_tracing(trace);
    fs.inject(Fault::dead(None, k));
    let mut runner = Runner::new(&fs, true);
    let result = runner.run(steps);
    runner.finish();
    if trace {
        eprintln!(
            "operations around {k}:\n{}",
            trace_around(&fs.trace(), k, 40)
        );
    }
    result.map_err(|e| format!("before the crash: {e}"))?;
    if !fs.is_dead() {
        return Err(format!("operation {k} never happened"));
    }
    for mode in SWEPT_MODES {
        let after = fs.fork();
        after.crash(mode);
        check_recovered(&after, &runner.hist, Expect::after(mode))
            .map_err(|e| format!("after a {mode:?} crash: {e}"))?;
    }
    Ok(())
}

fn sweep(seed: u64, steps_len: usize, watchdog: &Watchdog) -> (u64, u64, Vec<String>) {
    let steps = random_workload(seed, steps_len, 40);
    let base = created_db(seed);

    // A full run without faults: it must pass, and it tells how many operations there are.
    let full = base.fork();
    let mut runner = Runner::new(&full, true);
    runner
        .run(&steps)
        .unwrap_or_else(|e| panic!("seed {seed}: without faults: {e}"));
    runner.finish();
    let (flushes, compactions) = (runner.flushes, runner.compactions);
    let total = full.op_count(None);
    let stride = env_u64("STRATA_CRASH_STRIDE", 1).max(1);
    let only = std::env::var("STRATA_CRASH_POINT")
        .ok()
        .and_then(|v| v.parse::<u64>().ok());
    let writes = steps
        .iter()
        .filter(|s| matches!(s, Step::Write { .. }))
        .count();
    eprintln!(
        "seed {seed}: {} steps ({writes} writes, {flushes} flushes, {compactions} compactions), \
         {total} file operations, crash at every {stride}",
        steps.len()
    );

    let ks: Vec<u64> = match only {
        Some(k) => vec![k],
        None => (0..total).step_by(stride as usize).collect(),
    };
    let label = format!("seed {seed}, crash point");
    let (points, failures) = parallel_sweep(&ks, watchdog, &label, |k| {
        crash_at(&base, &steps, seed, k, only.is_some()).map(|()| 1)
    });
    let failures = failures
        .into_iter()
        .map(|(k, e)| {
            format!(
                "seed {seed}, crash at operation {k} (replay: STRATA_CRASH_SEED={seed} \
                 STRATA_CRASH_POINT={k}): {e}"
            )
        })
        .collect();
    (points, total, failures)
}

#[test]
fn crash_at_every_file_operation_keeps_the_contract() {
    let start = Instant::now();
    let watchdog = Watchdog::start(Duration::from_secs(120));
    let first = env_u64("STRATA_CRASH_SEED", 1);
    let seeds = env_u64("STRATA_CRASH_SEEDS", 2);
    let steps = env_u64("STRATA_CRASH_STEPS", 500) as usize;
    let mut points = 0;
    let mut failures = Vec::new();
    let torture = Torture::new("crash-point sweep", first..first + seeds);
    for seed in torture.seeds() {
        let (p, _, f) = sweep(seed, steps, &watchdog);
        points += p;
        if torture.long_mode() {
            for e in &f {
                torture.failure(
                    seed,
                    format!("STRATA_CRASH_SEED={seed} STRATA_CRASH_SEEDS=1"),
                    e,
                );
            }
        }
        torture.progress(
            seed,
            format!("{} crash states", p * SWEPT_MODES.len() as u64),
        );
        failures.extend(f);
    }
    let states = points * SWEPT_MODES.len() as u64;
    eprintln!(
        "{points} crash points, {states} crash states, {} failures, in {:.1?}",
        failures.len(),
        start.elapsed()
    );
    torture.conclude(&failures, "crash states");
    if std::env::var("STRATA_CRASH_POINT").is_err() {
        assert!(states >= 5_000, "only {states} crash states");
    }
}
