//! The corruption sweep (issue 4): every file of a small database (WAL, SSTable data blocks,
//! filter, properties, index and footer, manifest, CURRENT) damaged in every way: bit flips,
//! zeroed ranges, truncation, a block or record copied over another one's offset, a block
//! copied from another table, a stale copy (an older version of the file, or another file of
//! the same kind under its name). Each case reopens a fork of the image and reads everything
//! (see `common/corruption.rs`): the damage must be reported as `Corruption`, or be harmless
//! (everything read equals the model); in the WAL a damaged tail may cost unsynced records,
//! never synced ones, and never a hole. Never a panic, a hang or a wrong value.
//!
//! Environment (for long runs and replays):
//! - `STRATA_CORRUPT_SEED`: the first image's seed (default 1); `STRATA_CORRUPT_SEEDS`: how
//!   many consecutive seeds, each a different image (default 2).
//! - `STRATA_CORRUPT_STRIDE`: damage every k-th byte in the byte-by-byte families (default 1).
//! - `STRATA_CORRUPT_CASE`: only this case (its number is printed on failure).
//! - `STRATA_TORTURE_SECONDS`: long mode, after the default seeds fresh images until the time
//!   is up (`common/torture.rs`).

mod common;

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use common::contract::{env_u64, parallel_sweep, Watchdog};
use common::corruption::{build_image, cases, check_undamaged, run_case, Verdict};
use common::torture::Torture;

#[derive(Default, Clone, Copy)]
struct Counts {
    reopens: u64,
    detected: u64,
    named: u64,
    intact: u64,
    prefix: u64,
    lost_synced: u64,
}

#[test]
fn every_kind_of_damage_to_every_file_is_detected() {
    let start = Instant::now();
    let watchdog = Watchdog::start(Duration::from_secs(60));
    let first = env_u64("STRATA_CORRUPT_SEED", 1);
    let only = std::env::var("STRATA_CORRUPT_CASE")
        .ok()
        .and_then(|v| v.parse::<u64>().ok());
    // A replayed case names one image.
    let seeds = env_u64("STRATA_CORRUPT_SEEDS", if only.is_some() { 1 } else { 2 });
    let stride = env_u64("STRATA_CORRUPT_STRIDE", 1) as usize;
    let counts: Mutex<BTreeMap<(&str, &str), Counts>> = Mutex::new(BTreeMap::new());
    let mut failures = Vec::new();
    let mut failed_kinds: BTreeMap<(&str, &str), u64> = BTreeMap::new();
    let torture = Torture::new("corruption sweep", first..first + seeds);
    for seed in torture.seeds() {
        let image = build_image(seed);
        let all = cases(&image, stride);
        eprintln!(
            "seed {seed}: {} files ({} tables per level {:?}, WAL of {} records with {} synced, \
             manifest of {} records), {} cases",
            image.files.len(),
            image.tables.len(),
            image.shape,
            image.wal.records.iter().filter(|r| !r.mark).count(),
            image.wal.synced,
            image.manifest_records.len(),
            all.len()
        );
        // The undamaged image reads as the model.
        assert_eq!(
            check_undamaged(&image),
            Ok(Verdict::Intact),
            "seed {seed}: the undamaged image"
        );
        let ids: Vec<u64> = match only {
            Some(id) if id < all.len() as u64 => vec![id],
            Some(_) => Vec::new(),
            None => (0..all.len() as u64).collect(),
        };
        let label = format!("seed {seed}, corruption case");
        let (reopens, failed) = parallel_sweep(&ids, &watchdog, &label, |id| {
            let case = &all[id as usize];
            if only.is_some() {
                eprintln!(
                    "case {id}: {} {} ({}): {}",
                    case.file,
                    case.kind,
                    case.label,
                    case.damage.describe()
                );
            }
            let verdict = run_case(&image, case).map_err(|e| {
                format!(
                    "{}, {} in {} ({}): {e}",
                    case.file,
                    case.damage.describe(),
                    case.label,
                    case.kind
                )
            })?;
            if only.is_some() {
                eprintln!("case {id}: {verdict:?}");
            }
            if verdict == Verdict::Unchanged {
                return Ok(0);
            }
            let mut map = counts.lock().unwrap_or_else(|e| e.into_inner());
            let c = map.entry((case.label, case.kind)).or_default();
            c.reopens += 1;
            match verdict {
                Verdict::Detected { names_file } => {
                    c.detected += 1;
                    c.named += u64::from(names_file);
                }
                Verdict::Intact => c.intact += 1,
                Verdict::Prefix { lost_synced, .. } => {
                    c.prefix += 1;
                    c.lost_synced += u64::from(lost_synced);
                }
                Verdict::Unchanged => {}
            }
            Ok(1)
        });
        let replay_stride = if stride == 1 {
            String::new()
        } else {
            format!(" STRATA_CORRUPT_STRIDE={stride}")
        };
        for (i, (id, e)) in failed.iter().enumerate() {
            let case = &all[*id as usize];
            *failed_kinds.entry((case.label, case.kind)).or_default() += 1;
            let replay =
                format!("STRATA_CORRUPT_SEED={seed} STRATA_CORRUPT_CASE={id}{replay_stride}");
            // The first few of a seed at once (a long run shows them as they happen).
            if i < 5 {
                torture.failure(seed, &replay, e);
            }
            failures.push(format!("seed {seed}, case {id} (replay: {replay}): {e}"));
        }
        torture.progress(
            seed,
            format!("{reopens} corrupted reopens, {} failures", failed.len()),
        );
    }

    let counts = counts.into_inner().unwrap_or_else(|e| e.into_inner());
    let mut total = Counts::default();
    eprintln!(
        "{:<26} {:<40} {:>8} {:>9} {:>7} {:>8} {:>8}",
        "file", "damage", "reopens", "detected", "named", "harmless", "prefix"
    );
    for ((label, kind), c) in &counts {
        eprintln!(
            "{label:<26} {kind:<40} {:>8} {:>9} {:>7} {:>8} {:>8}",
            c.reopens, c.detected, c.named, c.intact, c.prefix
        );
        total.reopens += c.reopens;
        total.detected += c.detected;
        total.named += c.named;
        total.intact += c.intact;
        total.prefix += c.prefix;
        total.lost_synced += c.lost_synced;
    }
    eprintln!(
        "{} corrupted reopens: {} detected ({} naming the damaged file), {} harmless, {} WAL \
         prefixes ({} of them losing synced records to damage that reaches every sync mark, \
         undetectable by design); {} failures, in {:.1?}",
        total.reopens,
        total.detected,
        total.named,
        total.intact,
        total.prefix,
        total.lost_synced,
        failures.len(),
        start.elapsed()
    );
    for ((label, kind), n) in &failed_kinds {
        eprintln!("FAILURES: {n} in {label}, {kind}");
    }
    for f in failures.iter().take(20) {
        eprintln!("FAILED: {f}\n");
    }
    assert!(
        failures.is_empty(),
        "{} corrupted reopens broke the promise",
        failures.len()
    );
    torture.finish();
    if only.is_none() && stride == 1 {
        assert!(
            total.reopens >= 20_000,
            "only {} corrupted reopens",
            total.reopens
        );
    }
}
