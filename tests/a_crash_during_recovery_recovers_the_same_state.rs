//! Crash during recovery: take crash states of a workload (every k-th operation, each crash
//! mode), then crash again at every operation of the recovery that follows, in a rotating crash
//! mode. After a crash everything on disk is durable and nothing new was acknowledged, so every
//! later recovery must find exactly the state an uninterrupted recovery finds, pass `verify()`,
//! keep `last_sequence`, and leave no leaked file.
//!
//! Environment: `STRATA_RECOVERY_SEED` (default 1), `STRATA_RECOVERY_STEPS` (workload length,
//! default 500), `STRATA_RECOVERY_POINTS` (first crash points, default 100),
//! `STRATA_TORTURE_SECONDS` (long mode: after that seed, fresh ones until the time is up;
//! `common/torture.rs`).

mod common;

use std::time::{Duration, Instant};

use common::contract::{
    check_no_leaked_files, created_db, env_u64, parallel_sweep, random_workload, scan, sim_options,
    Runner, Step, Watchdog, DIR, SWEPT_MODES,
};
use common::torture::Torture;
use strata::fs::{CrashMode, Fault, SimFs};
use strata::Db;

const MODES: u64 = SWEPT_MODES.len() as u64;

/// The state after the first crash at operation `k` in `mode`.
fn first_crash(base: &SimFs, steps: &[Step], seed: u64, k: u64, mode: CrashMode) -> SimFs {
    let fs = base.fork();
    fs.reseed(seed ^ k);
    fs.inject(Fault::dead(None, k));
    let mut runner = Runner::new(&fs, true);
    // A contract violation here is the crash sweep's to report; this test is about recovery.
    let _ = runner.run(steps);
    runner.finish();
    fs.crash(mode);
    fs
}

/// Open, read everything, and check the directory; returns the state and `last_sequence`.
fn recover(fs: &SimFs) -> Result<(common::contract::State, u64), String> {
    let db = Db::open_with(DIR, sim_options(fs)).map_err(|e| format!("open failed: {e}"))?;
    db.verify().map_err(|e| format!("verify failed: {e}"))?;
    let state = scan(&db).map_err(|e| format!("scan failed: {e}"))?;
    let seq = db.stats().last_sequence;
    check_no_leaked_files(fs, std::path::Path::new(DIR))?;
    db.close().map_err(|e| format!("close failed: {e}"))?;
    Ok((state, seq))
}

/// Every crash point of the recovery of `crashed`; returns how many crash states were checked.
fn crash_during_recovery(crashed: &SimFs, seed: u64) -> Result<u64, String> {
    let reference = crashed.fork();
    let (expected, expected_seq) =
        recover(&reference).map_err(|e| format!("the first recovery: {e}"))?;
    let probe = crashed.fork();
    drop(Db::open_with(DIR, sim_options(&probe)).map_err(|e| e.to_string())?);
    let ops = probe.op_count(None);
    for j in 0..ops {
        let fs = crashed.fork();
        fs.reseed(seed ^ (j << 32));
        fs.inject(Fault::dead(None, j));
        drop(Db::open_with(DIR, sim_options(&fs)));
        let mode = SWEPT_MODES[j as usize % SWEPT_MODES.len()];
        fs.crash(mode);
        let (found, seq) = recover(&fs)
            .map_err(|e| format!("recovery crashed at operation {j}, {mode:?}: {e}"))?;
        if found != expected {
            return Err(format!(
                "recovery crashed at operation {j}, {mode:?}: found {} keys, expected {} \
                 (first difference at key {:?})",
                found.len(),
                expected.len(),
                expected
                    .iter()
                    .zip(found.iter())
                    .find(|(a, b)| a != b)
                    .map(|(a, _)| String::from_utf8_lossy(a.0).into_owned())
            ));
        }
        if seq < expected_seq {
            return Err(format!(
                "recovery crashed at operation {j}, {mode:?}: last_sequence {seq} < {expected_seq}"
            ));
        }
    }
    Ok(ops)
}

/// First crash states of seed `seed`'s workload, and a crash at every operation of each one's
/// recovery. Returns the first crash states, the crash states during recoveries, and failures.
fn sweep(seed: u64, watchdog: &Watchdog) -> (u64, u64, Vec<String>) {
    let steps = random_workload(seed, env_u64("STRATA_RECOVERY_STEPS", 500) as usize, 40);
    let wanted = env_u64("STRATA_RECOVERY_POINTS", 100).max(1);
    let base = created_db(seed);
    let full = base.fork();
    let mut runner = Runner::new(&full, true);
    runner
        .run(&steps)
        .unwrap_or_else(|e| panic!("seed {seed}: without faults: {e}"));
    runner.finish();
    let total = full.op_count(None);
    let stride = (total / wanted).max(1);
    // One entry per (first crash point, mode).
    let cases: Vec<u64> = (0..total)
        .step_by(stride as usize)
        .flat_map(|k| (0..SWEPT_MODES.len() as u64).map(move |m| k * MODES + m))
        .collect();
    let states = std::sync::atomic::AtomicU64::new(0);
    let label = format!("seed {seed}, case");
    let (_, failures) = parallel_sweep(&cases, watchdog, &label, |case| {
        let (k, mode) = (case / MODES, SWEPT_MODES[(case % MODES) as usize]);
        let crashed = first_crash(&base, &steps, seed, k, mode);
        let n = crash_during_recovery(&crashed, seed ^ case)
            .map_err(|e| format!("first crash at operation {k}, {mode:?}: {e}"))?;
        states.fetch_add(n, std::sync::atomic::Ordering::Relaxed);
        Ok(1)
    });
    let failures = failures
        .into_iter()
        .map(|(_, f)| format!("seed {seed} (replay: STRATA_RECOVERY_SEED={seed}): {f}"))
        .collect();
    (cases.len() as u64, states.into_inner(), failures)
}

#[test]
fn a_crash_during_recovery_recovers_the_same_state() {
    let start = Instant::now();
    let watchdog = Watchdog::start(Duration::from_secs(120));
    let torture = Torture::new(
        "crash during recovery",
        [env_u64("STRATA_RECOVERY_SEED", 1)],
    );
    let (mut first_states, mut states) = (0, 0);
    let mut failures = Vec::new();
    for seed in torture.seeds() {
        let (c, n, f) = sweep(seed, &watchdog);
        eprintln!(
            "seed {seed}: {c} first crash states, {n} crash states during their recoveries, {} \
             failures",
            f.len()
        );
        if torture.long_mode() {
            for e in &f {
                torture.failure(seed, format!("STRATA_RECOVERY_SEED={seed}"), e);
            }
        }
        torture.progress(seed, format!("{n} crash states during recoveries"));
        first_states += c;
        states += n;
        failures.extend(f);
    }
    eprintln!(
        "{first_states} first crash states, {states} crash states during their recoveries, {} \
         failures, in {:.1?}",
        failures.len(),
        start.elapsed()
    );
    torture.conclude(&failures, "recovery crash cases");
}
