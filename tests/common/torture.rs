//! Long mode: `STRATA_TORTURE_SECONDS=N` makes each sweep family keep running with fresh seeds
//! until N seconds have passed (per family: each test that uses [`Torture`] runs that long).
//!
//! A family runs its usual seeds first (what `cargo test --release` runs), then, in long mode,
//! fresh seeds until its time is up. Every round prints a progress line; a failure prints its
//! seed and the environment that replays it, at once (a run of hours shows failures as they
//! happen), and the test fails at the end.
//!
//! Fresh seeds start at a random base (printed; `STRATA_TORTURE_BASE` fixes it, to repeat a
//! whole run) and count up, and stay below 2^48 so a family may add small offsets to them.
//!
//! ```ignore
//! let torture = Torture::new("crash-point sweep", [1, 2]);
//! for seed in torture.seeds() {
//!     let failures = sweep(seed);
//!     for f in &failures {
//!         torture.failure(seed, format!("STRATA_CRASH_SEED={seed} STRATA_CRASH_SEEDS=1"), f);
//!     }
//!     torture.progress(seed, format!("{} crash states", states));
//! }
//! torture.finish(); // panics if any failure was recorded
//! ```

use std::fmt::Display;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The environment variable that turns long mode on: seconds per family.
pub const SECONDS_VAR: &str = "STRATA_TORTURE_SECONDS";

/// Fixes the first fresh seed of a long run (otherwise random, and printed).
pub const BASE_VAR: &str = "STRATA_TORTURE_BASE";

/// How long each family runs in long mode, if it is on.
pub fn budget() -> Option<Duration> {
    std::env::var(SECONDS_VAR)
        .ok()
        .and_then(|v| v.trim().parse::<u64>().ok())
        .filter(|&s| s > 0)
        .map(Duration::from_secs)
}

/// True in long mode.
pub fn long_mode() -> bool {
    budget().is_some()
}

/// The seeds of one sweep family, its progress and its failures. Shared by reference between
/// worker threads: [`Torture::next_seed`] hands each seed out once.
pub struct Torture {
    family: String,
    start: Instant,
    budget: Option<Duration>,
    defaults: Vec<u64>,
    next: AtomicUsize,
    base: u64,
    rounds: AtomicU64,
    failures: Mutex<Vec<(u64, String)>>,
}

impl Torture {
    /// A family that runs `defaults` (in order), then fresh seeds in long mode.
    pub fn new(family: &str, defaults: impl IntoIterator<Item = u64>) -> Torture {
        let budget = budget();
        let base = std::env::var(BASE_VAR)
            .ok()
            .and_then(|v| v.trim().parse::<u64>().ok())
            .unwrap_or_else(random_base);
        let torture = Torture {
            family: family.to_string(),
            start: Instant::now(),
            budget,
            defaults: defaults.into_iter().collect(),
            next: AtomicUsize::new(0),
            base: base % (1 << 47),
            rounds: AtomicU64::new(0),
            failures: Mutex::new(Vec::new()),
        };
        if let Some(b) = budget {
            eprintln!(
                "[torture {family}] long mode: {}s, default seeds {:?}, then fresh seeds from {} \
                 ({BASE_VAR}={} repeats them)",
                b.as_secs(),
                torture.defaults,
                torture.base,
                torture.base
            );
        }
        torture
    }

    /// True in long mode.
    pub fn long_mode(&self) -> bool {
        self.budget.is_some()
    }

    /// True while a long run has time left (always false outside long mode).
    pub fn time_left(&self) -> bool {
        self.budget.is_some_and(|b| self.start.elapsed() < b)
    }

    /// The next seed to run: the defaults first, then, while a long run has time left, fresh
    /// ones; `None` when done. Thread-safe: each seed is handed out once.
    pub fn next_seed(&self) -> Option<u64> {
        let i = self.next.fetch_add(1, Ordering::Relaxed);
        if let Some(&seed) = self.defaults.get(i) {
            return Some(seed);
        }
        if !self.time_left() {
            return None;
        }
        Some(self.base + (i - self.defaults.len()) as u64)
    }

    /// [`Torture::next_seed`] as an iterator.
    pub fn seeds(&self) -> impl Iterator<Item = u64> + '_ {
        std::iter::from_fn(|| self.next_seed())
    }

    /// A round (one seed) finished: count it and, in long mode, print a progress line.
    pub fn progress(&self, seed: u64, summary: impl Display) {
        let rounds = self.rounds.fetch_add(1, Ordering::Relaxed) + 1;
        if let Some(b) = self.budget {
            let failures = self.failures.lock().map_or(0, |f| f.len());
            eprintln!(
                "[torture {}] round {rounds}, seed {seed}: {summary} ({:.0}s of {}s, {failures} \
                 failures so far)",
                self.family,
                self.start.elapsed().as_secs_f64(),
                b.as_secs()
            );
        }
    }

    /// Record a failure of `seed` and print it at once with the environment that replays it.
    pub fn failure(&self, seed: u64, replay: impl Display, error: impl Display) {
        let line = format!(
            "[torture {}] FAILED seed {seed} (replay: {replay}): {error}",
            self.family
        );
        eprintln!("{line}\n");
        if let Ok(mut f) = self.failures.lock() {
            f.push((seed, line));
        }
    }

    /// Rounds finished so far.
    pub fn rounds(&self) -> u64 {
        self.rounds.load(Ordering::Relaxed)
    }

    /// The seeds that failed so far, in the order they failed (a seed may repeat).
    pub fn failed_seeds(&self) -> Vec<u64> {
        self.failures
            .lock()
            .map(|f| f.iter().map(|(s, _)| *s).collect())
            .unwrap_or_default()
    }

    /// End a sweep: print its first failures, finish (as [`Torture::finish`]), and fail the
    /// test if any case broke the contract; `what` names the cases ("crash states", ...).
    pub fn conclude(&self, failures: &[String], what: &str) {
        for f in failures.iter().take(10) {
            eprintln!("FAILED: {f}\n");
        }
        self.finish();
        assert!(
            failures.is_empty(),
            "{} {what} broke the contract",
            failures.len()
        );
    }

    /// Print the summary and panic if any failure was recorded.
    pub fn finish(&self) {
        let failures = self.failures.lock().map(|f| f.clone()).unwrap_or_default();
        if self.long_mode() {
            eprintln!(
                "[torture {}] done: {} rounds in {:.0}s, {} failures{}",
                self.family,
                self.rounds(),
                self.start.elapsed().as_secs_f64(),
                failures.len(),
                if failures.is_empty() {
                    String::new()
                } else {
                    format!(
                        " (seeds {:?})",
                        failures.iter().map(|(s, _)| *s).collect::<Vec<_>>()
                    )
                }
            );
        }
        if let Some((_, first)) = failures.first() {
            panic!(
                "{} failures in the {} family; the first: {first}",
                failures.len(),
                self.family
            );
        }
    }
}

/// A seed base that differs from run to run (time and process id through SplitMix64).
fn random_base() -> u64 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    let mut z = nanos ^ (u64::from(std::process::id()) << 32) ^ 0x9E37_79B9_7F4A_7C15;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    // Not 0..2^20: keep fresh seeds clear of the small seeds the defaults use.
    (z ^ (z >> 31)) % ((1 << 47) - (1 << 20)) + (1 << 20)
}
