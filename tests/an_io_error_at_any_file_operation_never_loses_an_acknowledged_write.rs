//! I/O-error sweep: for every operation N of a workload, replay it with operation N failing
//! once (an `io::Error`, then the disk works again) and carry on to the end of the workload:
//!
//! - no panic and no hang (a watchdog aborts and names the point);
//! - an error only where the fault explains it, and after a write fails the session's later
//!   writes either fail (`Poisoned`) or are honestly durable;
//! - no false `Ok`: right after each of the first acknowledged sync writes, flushes and
//!   compactions following the fault, a power-cut copy of the file system must hold every
//!   durable write;
//! - every clean reopen in the workload finds every acknowledged write;
//! - at the end the disk is repaired (no more faults) and the database reopened as left, and
//!   after a power cut: the contract holds (see `common/contract.rs`) and the directory holds
//!   no leaked file (only LOCK, CURRENT, one manifest, needed WAL segments, live tables).
//!
//! Every 4th operation also gets a run with a second fault a few hundred operations later,
//! which often lands in the recovery from the first.
//!
//! Environment: `STRATA_IO_SEED` (default 1), `STRATA_IO_SEEDS` (default 1),
//! `STRATA_IO_STEPS` (default 500), `STRATA_IO_POINT` (only that operation, traced; with
//! `STRATA_IO_SECOND=1`, its double-fault run). `STRATA_TORTURE_SECONDS`: long mode, after
//! those seeds sweep fresh ones until the time is up (`common/torture.rs`).

mod common;

use std::time::{Duration, Instant};

use common::contract::{
    check_recovered, created_db, env_u64, parallel_sweep, random_workload, trace_around,
    DurableCheck, Expect, Runner, Step, Watchdog,
};
use common::torture::Torture;
use strata::fs::{CrashMode, Fault, SimFs};

/// How many durable points after the fault get an immediate power-cut check.
const POWER_CUT_CHECKS: u32 = 3;

/// A check for `Runner::on_durable`: a power cut now must keep every durable write.
fn power_cut_check() -> DurableCheck {
    let mut left = POWER_CUT_CHECKS;
    Box::new(move |fs, hist| {
        if left == 0 {
            return Ok(());
        }
        left -= 1;
        let copy = fs.fork();
        copy.crash(CrashMode::DropUnsynced);
        check_recovered(&copy, hist, Expect::Durable)
            .map_err(|e| format!("a power cut right after an acknowledged durable point: {e}"))
    })
}

/// Replay the workload with each operation of `ops` failing once; returns how many faults
/// fired.
fn fail_at(base: &SimFs, steps: &[Step], ops: &[u64], trace: bool) -> Result<u64, String> {
    let fs = base.fork();
    fs.set_tracing(trace);
    for &n in ops {
        fs.inject(Fault::nth(None, n));
    }
    let mut runner = Runner::new(&fs, false);
    runner.on_durable = Some(power_cut_check());
    let result = runner.run(steps);
    runner.finish();
    if trace {
        for &n in ops {
            eprintln!(
                "operations around {n}:\n{}",
                trace_around(&fs.trace(), n, 40)
            );
        }
    }
    result?;
    let fired = fs.injected_faults();
    fs.clear_faults();
    check_recovered(&fs.fork(), &runner.hist, Expect::Acknowledged)
        .map_err(|e| format!("after repair and reopen: {e}"))?;
    let cut = fs.fork();
    cut.crash(CrashMode::DropUnsynced);
    check_recovered(&cut, &runner.hist, Expect::Durable)
        .map_err(|e| format!("after repair and a power cut: {e}"))?;
    Ok(fired)
}

/// The operation a double-fault run fails second: a deterministic few hundred operations
/// after the first, so it often lands in the recovery from the first.
fn second_fault(n: u64) -> u64 {
    let mut z = n.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    n + 1 + (z ^ (z >> 31)) % DOUBLE_FAULT_SPAN
}

/// The second fault of a double-fault run lands within this many operations of the first.
const DOUBLE_FAULT_SPAN: u64 = 300;

/// Every how many operations a run also gets a second fault.
const DOUBLE_FAULT_STRIDE: u64 = 4;

fn sweep(seed: u64, steps_len: usize, watchdog: &Watchdog) -> (u64, Vec<String>) {
    let steps = random_workload(seed, steps_len, 40);
    let base = created_db(seed);
    let full = base.fork();
    let mut runner = Runner::new(&full, false);
    runner
        .run(&steps)
        .unwrap_or_else(|e| panic!("seed {seed}: without faults: {e}"));
    runner.finish();
    let total = full.op_count(None);
    eprintln!(
        "seed {seed}: {} steps, {} flushes, {} compactions, {total} file operations",
        steps.len(),
        runner.flushes,
        runner.compactions
    );
    // A run is `n * 2` (operation n fails) or `n * 2 + 1` (n and `second_fault(n)` fail).
    let only = std::env::var("STRATA_IO_POINT")
        .ok()
        .and_then(|v| v.parse::<u64>().ok());
    let second = std::env::var("STRATA_IO_SECOND").is_ok();
    let runs: Vec<u64> = match only {
        Some(n) => vec![n * 2 + u64::from(second)],
        None => (0..total)
            .map(|n| n * 2)
            .chain(
                (0..total)
                    .step_by(DOUBLE_FAULT_STRIDE as usize)
                    .map(|n| n * 2 + 1),
            )
            .collect(),
    };
    let ops = |run: u64| {
        let n = run / 2;
        if run.is_multiple_of(2) {
            vec![n]
        } else {
            vec![n, second_fault(n)]
        }
    };
    let label = format!("seed {seed}, failing operations of run");
    let (injected, failures) = parallel_sweep(&runs, watchdog, &label, |run| {
        fail_at(&base, &steps, &ops(run), only.is_some())
    });
    let failures = failures
        .into_iter()
        .map(|(run, e)| {
            let ops = ops(run);
            format!(
                "seed {seed}, operations {ops:?} fail (replay: STRATA_IO_SEED={seed} \
                 STRATA_IO_POINT={}{}): {e}",
                ops[0],
                if ops.len() > 1 {
                    " STRATA_IO_SECOND=1"
                } else {
                    ""
                }
            )
        })
        .collect();
    (injected, failures)
}

#[test]
fn an_io_error_at_any_file_operation_never_loses_an_acknowledged_write() {
    let start = Instant::now();
    let watchdog = Watchdog::start(Duration::from_secs(120));
    let first = env_u64("STRATA_IO_SEED", 1);
    let seeds = env_u64("STRATA_IO_SEEDS", 1);
    let steps = env_u64("STRATA_IO_STEPS", 500) as usize;
    let mut injected = 0;
    let mut failures = Vec::new();
    let torture = Torture::new("I/O-error sweep", first..first + seeds);
    for seed in torture.seeds() {
        let (i, f) = sweep(seed, steps, &watchdog);
        injected += i;
        if torture.long_mode() {
            for e in &f {
                torture.failure(seed, format!("STRATA_IO_SEED={seed} STRATA_IO_SEEDS=1"), e);
            }
        }
        torture.progress(seed, format!("{i} injected I/O errors"));
        failures.extend(f);
    }
    eprintln!(
        "{injected} injected I/O errors, {} failures, in {:.1?}",
        failures.len(),
        start.elapsed()
    );
    torture.conclude(&failures, "injected errors");
    if std::env::var("STRATA_IO_POINT").is_err() {
        assert!(injected >= 3_000, "only {injected} injected errors");
    }
}
