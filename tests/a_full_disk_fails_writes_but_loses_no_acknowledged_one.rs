//! Disk-full sweep: replay a workload on a simulated disk whose capacity runs out at each of
//! many points between the empty database and the workload's peak usage. Writes past the limit
//! fail with ENOSPC (the bytes that fit are written, as a short `write(2)` would). Whatever
//! fails, no acknowledged write may be lost: free the space, reopen, and check the contract and
//! that no file leaked; and after a power cut check the durable writes.
//!
//! Environment: `STRATA_ENOSPC_SEED` (default 1), `STRATA_ENOSPC_POINTS` (capacities, default
//! 1000), `STRATA_ENOSPC_STEPS` (workload length, default 500), `STRATA_TORTURE_SECONDS` (long
//! mode: after that seed, fresh ones until the time is up; `common/torture.rs`).

mod common;

use std::time::{Duration, Instant};

use common::contract::{
    check_recovered, created_db, env_u64, parallel_sweep, random_workload, Expect, Runner, Step,
    Watchdog,
};
use common::torture::Torture;
use strata::fs::{CrashMode, SimFs};

/// Run the workload with `capacity` bytes; `Ok(true)` if the disk filled up.
fn run_with_capacity(base: &SimFs, steps: &[Step], capacity: u64) -> Result<bool, String> {
    let fs = base.fork();
    fs.set_capacity(Some(capacity));
    let mut runner = Runner::new(&fs, false);
    runner.transient_faults = false;
    let result = runner.run(steps);
    runner.finish();
    result?;
    let filled = fs.enospc_errors() > 0;
    fs.set_capacity(None);
    check_recovered(&fs.fork(), &runner.hist, Expect::Acknowledged)
        .map_err(|e| format!("after freeing space and reopening: {e}"))?;
    let cut = fs.fork();
    cut.crash(CrashMode::DropUnsynced);
    check_recovered(&cut, &runner.hist, Expect::Durable)
        .map_err(|e| format!("after freeing space and a power cut: {e}"))?;
    Ok(filled)
}

/// Seed `seed`'s workload with `points` capacities; returns how many runs filled the disk and
/// the failures.
fn sweep(seed: u64, points: u64, watchdog: &Watchdog) -> (u64, Vec<String>) {
    let steps = random_workload(seed, env_u64("STRATA_ENOSPC_STEPS", 500) as usize, 40);
    let base = created_db(seed);

    // Measure the peak usage of a run without a limit.
    let probe = base.fork();
    probe.set_capacity(Some(u64::MAX));
    let mut runner = Runner::new(&probe, false);
    runner
        .run(&steps)
        .unwrap_or_else(|e| panic!("seed {seed}: without a limit: {e}"));
    runner.finish();
    let low = base.used_bytes();
    let peak = probe.peak_used_bytes();
    eprintln!("seed {seed}: usage from {low} to a peak of {peak} bytes");

    let capacities: Vec<u64> = (0..points)
        .map(|i| low + (peak - low) * i / points)
        .collect();
    let label = format!("seed {seed}, capacity");
    let (filled, failures) = parallel_sweep(&capacities, watchdog, &label, |capacity| {
        run_with_capacity(&base, &steps, capacity).map(u64::from)
    });
    let failures = failures
        .into_iter()
        .map(|(capacity, e)| {
            format!(
                "seed {seed}, capacity {capacity} bytes (replay: STRATA_ENOSPC_SEED={seed}): {e}"
            )
        })
        .collect();
    (filled, failures)
}

#[test]
fn a_full_disk_fails_writes_but_loses_no_acknowledged_one() {
    let start = Instant::now();
    let watchdog = Watchdog::start(Duration::from_secs(120));
    let points = env_u64("STRATA_ENOSPC_POINTS", 1000).max(1);
    let torture = Torture::new("full disk", [env_u64("STRATA_ENOSPC_SEED", 1)]);
    let (mut runs, mut filled) = (0, 0);
    let mut failures = Vec::new();
    for seed in torture.seeds() {
        let (n, f) = sweep(seed, points, &watchdog);
        if torture.long_mode() {
            for e in &f {
                torture.failure(seed, format!("STRATA_ENOSPC_SEED={seed}"), e);
            }
        }
        torture.progress(seed, format!("{n} of {points} runs filled the disk"));
        runs += points;
        filled += n;
        failures.extend(f);
    }
    eprintln!(
        "{runs} capacities, {filled} runs filled the disk, {} failures, in {:.1?}",
        failures.len(),
        start.elapsed()
    );
    torture.conclude(&failures, "capacities");
    assert!(
        filled >= runs * 9 / 10,
        "only {filled} runs filled the disk"
    );
}
