//! The kill harness: run `strata write-loop` as a child process under load, SIGKILL it at a
//! random moment, reopen the database in this process and check what survived against what
//! the child acknowledged.
//!
//! The child's writer thread `t` writes keys `w{t}-key{i:012}` in order, in batches, from the
//! first key the last check did not find (`--first-key`), and prints `{t} {i}` (plus ` sync`
//! for a synced write) after the write of key `i` returned. So per thread the parent knows that
//! keys `0..acked` were acknowledged (those before the child's first key by an earlier check),
//! and `0..synced` through the last synced acknowledgment. After a kill it checks, per thread:
//!
//! - the keys present are exactly `0..present`: a prefix of the thread's writes, no holes
//!   (a thread's writes commit in its order, so a prefix of the commit order gives one);
//! - `present` is a multiple of the batch size: batches are atomic;
//! - `present >= acked` after a process kill (the page cache survives one), or
//!   `present >= synced` after a kill that acts as a power cut (`--power-cut`); both are at
//!   least what the last check found, which that check made durable;
//! - `present <= acked + batch`: nothing appears that was never written (at most one batch per
//!   thread was in flight);
//! - every value is the one written for its key, through both an iterator and `get`;
//! - `verify()` passes, and the database closes cleanly.
//!
//! Each round kills several children in turn in one directory: the later ones start on the
//! recovered database and some are killed before they acknowledged anything (often inside
//! recovery), so the recovery's own output must survive a kill too.

use std::io::{BufRead, BufReader, Read};
use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use strata::db::Db;

use crate::common::torture::Torture;

/// Held for writing while a child is spawned and for reading while this process has a database
/// open. A child spawned by one thread while another has a `Db` open inherits that `Db`'s LOCK
/// file descriptor (with its `flock`) until it execs: close-on-exec closes it only then. If the
/// other thread closes its `Db` and starts the next writer meanwhile, that writer finds the
/// database locked. `spawn` returns after the exec, so no child ever holds a LOCK of ours.
static SPAWN: std::sync::RwLock<()> = std::sync::RwLock::new(());

/// Run `f`, which opens and closes a database of ours, with no child being spawned meanwhile
/// (see [`SPAWN`]). Only the power-cut test file uses it.
#[allow(dead_code)]
pub fn without_spawns<T>(f: impl FnOnce() -> T) -> T {
    let _no_spawn_now = SPAWN.read().unwrap_or_else(|e| e.into_inner());
    f()
}

/// One kind of child writer.
#[derive(Clone, Debug)]
pub struct Scenario {
    /// A short name, for reports.
    pub name: &'static str,
    /// Extra `write-loop` arguments (durability, memtable size, `--small-tree`).
    pub args: &'static [&'static str],
    /// Writer threads in the child.
    pub threads: u64,
    /// Keys per batch.
    pub batch: u64,
    /// The child holds unsynced bytes in memory (`--power-cut`): the power-cut contract.
    pub power_cut: bool,
    /// Kills per round (per database directory).
    pub kills_per_round: usize,
    /// Longest wait after the first acknowledgment before a kill.
    pub max_delay: Duration,
}

/// What is acknowledged, per thread, after a child was killed.
#[derive(Clone, Debug, Default)]
pub struct Acks {
    /// Keys `0..acked` are acknowledged (by this child, or durable before it started).
    pub acked: Vec<u64>,
    /// Keys `0..synced` must survive a power cut: up to the last one this child acknowledged
    /// by a synced write, or the ones durable before it started.
    pub synced: Vec<u64>,
    /// The keys this child acknowledged, over all threads.
    pub new: u64,
}

/// Totals over rounds.
#[derive(Clone, Debug, Default)]
pub struct KillStats {
    pub rounds: u64,
    pub kills: u64,
    /// Kills that landed before the child acknowledged anything (often inside recovery).
    pub early_kills: u64,
    /// Writes acknowledged over all kills.
    pub acked: u64,
    /// Kills after which some acknowledged (unsynced) write was gone: expected now and then
    /// with a power cut, a failure otherwise.
    pub lost_unsynced: u64,
    /// Acknowledged writes lost that way, in total.
    pub lost_writes: u64,
    /// Kills that left tables the manifest does not name: a flush or compaction was writing
    /// its output, or had not deleted its inputs yet.
    pub in_flush_or_compaction: u64,
    /// The most tables a killed database held.
    pub max_tables: u64,
}

impl KillStats {
    pub fn add(&mut self, other: &KillStats) {
        self.rounds += other.rounds;
        self.kills += other.kills;
        self.early_kills += other.early_kills;
        self.acked += other.acked;
        self.lost_unsynced += other.lost_unsynced;
        self.lost_writes += other.lost_writes;
        self.in_flush_or_compaction += other.in_flush_or_compaction;
        self.max_tables = self.max_tables.max(other.max_tables);
    }
}

pub fn key(t: u64, i: u64) -> String {
    format!("w{t}-key{i:012}")
}

pub fn value(t: u64, i: u64) -> String {
    format!("value-{t}-{i}-{}", "x".repeat((i % 200) as usize))
}

/// When to kill the child.
#[derive(Clone, Copy, Debug)]
enum When {
    /// This long after its first acknowledgment.
    AfterFirstAck(Duration),
    /// This long after it was started, acknowledged or not.
    AfterStart(Duration),
}

/// Run the writer in `dir`, its threads starting at the keys `durable` (which the last check
/// found), and kill it; returns what is acknowledged.
fn run_and_kill(dir: &Path, s: &Scenario, durable: &[u64], when: When) -> Result<Acks, String> {
    let threads = s.threads.to_string();
    let batch = s.batch.to_string();
    let first: Vec<String> = durable.iter().map(u64::to_string).collect();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_strata"));
    cmd.arg("write-loop")
        .arg(dir)
        .args(["--threads", &threads, "--batch", &batch])
        .args(["--first-key", &first.join(",")])
        .args(s.args);
    if s.power_cut {
        cmd.arg("--power-cut");
    }
    let spawned = {
        let _no_db_open_here = SPAWN.write().unwrap_or_else(|e| e.into_inner());
        cmd.stdout(Stdio::piped()).stderr(Stdio::piped()).spawn()
    };
    let mut child = spawned.map_err(|e| format!("spawning the writer: {e}"))?;
    let stdout = child.stdout.take().ok_or("no stdout")?;
    let mut stderr = child.stderr.take().ok_or("no stderr")?;
    // Drain stderr, so a chatty child never blocks on a full pipe.
    let err_reader = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = stderr.read_to_string(&mut text);
        text
    });
    let (tx, rx) = mpsc::channel();
    let n = s.threads as usize;
    let durable = durable.to_vec();
    let out_reader = std::thread::spawn(move || -> Result<Acks, String> {
        let mut acks = Acks {
            acked: durable.clone(),
            synced: durable,
            new: 0,
        };
        for line in BufReader::new(stdout).lines() {
            // Only whole lines count: a line cut by the kill was never fully acknowledged.
            let Ok(line) = line else { break };
            let mut words = line.split_whitespace();
            let (Some(t), Some(i)) = (
                words.next().and_then(|w| w.parse::<usize>().ok()),
                words.next().and_then(|w| w.parse::<u64>().ok()),
            ) else {
                return Err(format!("the writer printed {line:?}"));
            };
            if t >= n || i != acks.acked[t] {
                return Err(format!(
                    "thread {t} acknowledged key {i} out of order (expected {})",
                    acks.acked.get(t).copied().unwrap_or(0)
                ));
            }
            acks.acked[t] += 1;
            acks.new += 1;
            if words.next() == Some("sync") {
                acks.synced[t] = acks.acked[t];
            }
            if acks.new == 1 {
                let _ = tx.send(());
            }
        }
        Ok(acks)
    });
    let waited = match when {
        When::AfterFirstAck(delay) => {
            // The clock starts at the first acknowledgment, so the kill lands mid-write.
            let got = rx.recv_timeout(Duration::from_secs(60)).is_ok();
            if got {
                std::thread::sleep(delay);
            }
            got
        }
        When::AfterStart(delay) => {
            std::thread::sleep(delay);
            true
        }
    };
    let _ = child.kill();
    let status = child
        .wait()
        .map_err(|e| format!("waiting for the writer: {e}"))?;
    let acks = out_reader
        .join()
        .map_err(|_| "the stdout reader panicked".to_string())??;
    let err = err_reader.join().unwrap_or_default();
    if status.signal() != Some(9) {
        return Err(format!(
            "the writer was not killed but exited ({status}); stderr: {err}"
        ));
    }
    if !waited {
        return Err(format!(
            "the writer acknowledged nothing within 60 s; stderr: {err}"
        ));
    }
    Ok(acks)
}

/// The tables in `dir` and how many of them the live manifest does not name, as a kill left
/// them (before anything reopens the database).
fn count_tables(dir: &Path) -> Result<(u64, u64), String> {
    use strata::filenames::{manifest_path, parse_file_name, FileKind};
    let fs = strata::fs::RealFs;
    let Some(number) =
        strata::manifest::read_current(&fs, dir).map_err(|e| format!("reading CURRENT: {e}"))?
    else {
        return Ok((0, 0));
    };
    let edits = strata::manifest::replay_manifest(&fs, &manifest_path(dir, number))
        .map_err(|e| format!("replaying the manifest: {e}"))?;
    let mut live = std::collections::BTreeSet::new();
    for edit in edits {
        for (_, n) in edit.deleted_files {
            live.remove(&n);
        }
        for (_, meta) in edit.new_files {
            live.insert(meta.number);
        }
    }
    let (mut tables, mut unnamed) = (0, 0);
    for entry in std::fs::read_dir(dir).map_err(|e| e.to_string())? {
        let name = entry.map_err(|e| e.to_string())?.file_name();
        if let Some(FileKind::Table(n)) = name.to_str().and_then(parse_file_name) {
            tables += 1;
            unnamed += u64::from(!live.contains(&n));
        }
    }
    Ok((tables, unnamed))
}

/// Reopen `dir` after a kill and check it (see the module documentation). Returns what is
/// present.
pub fn check(dir: &Path, s: &Scenario, acks: &Acks) -> Result<Vec<u64>, String> {
    // Declared before `db`, so released after it is closed or dropped.
    let _no_spawn_now = SPAWN.read().unwrap_or_else(|e| e.into_inner());
    let db = Db::open(dir).map_err(|e| format!("reopen after the kill: {e}"))?;
    let n = s.threads as usize;
    let mut present = vec![0u64; n];
    for item in db.iter() {
        let (k, v) = item.map_err(|e| format!("iterating: {e}"))?;
        let k = String::from_utf8_lossy(&k).into_owned();
        let parsed = k
            .strip_prefix('w')
            .and_then(|rest| rest.split_once("-key"))
            .and_then(|(t, i)| Some((t.parse::<usize>().ok()?, i.parse::<u64>().ok()?)))
            .filter(|&(t, _)| t < n);
        let Some((t, i)) = parsed else {
            return Err(format!("a key nobody wrote: {k:?}"));
        };
        if i != present[t] {
            return Err(format!(
                "a hole: thread {t} has key {i} but not key {} ({:?} acknowledged)",
                present[t], acks.acked
            ));
        }
        if v != value(t as u64, i).as_bytes() {
            return Err(format!(
                "wrong value for {k}: {:?}",
                String::from_utf8_lossy(&v)
            ));
        }
        present[t] += 1;
    }
    for (t, &p) in present.iter().enumerate() {
        let (acked, synced) = (acks.acked[t], acks.synced[t]);
        let must = if s.power_cut { synced } else { acked };
        if p < must {
            return Err(format!(
                "thread {t}: keys up to {acked} acknowledged (up to {synced} durable), but only \
                 {p} survived"
            ));
        }
        if p > acked + s.batch {
            return Err(format!(
                "thread {t}: {p} keys present, but only {acked} were acknowledged and one \
                 batch of {} can be in flight",
                s.batch
            ));
        }
        if p % s.batch != 0 {
            return Err(format!(
                "thread {t}: a batch of {} was applied partially: {p} keys",
                s.batch
            ));
        }
        // The point-read path agrees with the scan.
        let t = t as u64;
        if p > 0 {
            let got = db.get(key(t, p - 1)).map_err(|e| format!("get: {e}"))?;
            if got.as_deref() != Some(value(t, p - 1).as_bytes()) {
                return Err(format!(
                    "get of the last key of thread {t} returned {got:?}"
                ));
            }
        }
        if db
            .get(key(t, p))
            .map_err(|e| format!("get: {e}"))?
            .is_some()
        {
            return Err(format!(
                "get finds key {p} of thread {t}, the scan does not"
            ));
        }
    }
    db.verify().map_err(|e| format!("verify: {e}"))?;
    db.close().map_err(|e| format!("close: {e}"))?;
    Ok(present)
}

/// One round: a fresh directory, `kills_per_round` children killed in turn.
pub fn kill_round(s: &Scenario, seed: u64) -> Result<KillStats, String> {
    let mut rng = StdRng::seed_from_u64(seed);
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let mut present = vec![0u64; s.threads as usize];
    let mut stats = KillStats {
        rounds: 1,
        ..KillStats::default()
    };
    let max = s.max_delay.as_micros().max(20) as u64;
    for kill in 0..s.kills_per_round {
        // Mostly short waits (the kill lands in the first writes, the first flush, recovery
        // leftovers), sometimes long ones (compactions, a larger tree).
        let delay = Duration::from_micros(match rng.random_range(0..10) {
            0..3 => rng.random_range(0..max / 10),
            3..8 => rng.random_range(0..max / 2),
            _ => rng.random_range(0..max),
        });
        let when = if kill > 0 && rng.random_bool(0.3) {
            When::AfterStart(Duration::from_micros(rng.random_range(0..30_000)))
        } else {
            When::AfterFirstAck(delay)
        };
        let acks = run_and_kill(dir.path(), s, &present, when)
            .map_err(|e| format!("kill {kill} ({when:?}): {e}"))?;
        // A statistic only: damage is the reopen's to report.
        let (tables, unnamed) = count_tables(dir.path()).unwrap_or((0, 0));
        stats.max_tables = stats.max_tables.max(tables);
        stats.in_flush_or_compaction += u64::from(unnamed > 0);
        let found = check(dir.path(), s, &acks)
            .map_err(|e| format!("after kill {kill} ({when:?}): {e}"))?;
        stats.kills += 1;
        stats.acked += acks.new;
        if acks.new == 0 {
            stats.early_kills += 1;
        }
        let lost: u64 = (0..present.len())
            .map(|t| acks.acked[t].saturating_sub(found[t]))
            .sum();
        if lost > 0 {
            stats.lost_unsynced += 1;
            stats.lost_writes += lost;
        }
        present = found;
    }
    Ok(stats)
}

/// Run rounds of `s` with seeds from `seed0` on, `parallel` at a time: `rounds` of them, or in
/// long mode ([`Torture`]) fresh ones until the time is up. Panics on a failure, with the seed.
/// `STRATA_KILL_SEED` runs just that seed.
pub fn kill_family(s: &Scenario, seed0: u64, rounds: u64, parallel: usize) -> KillStats {
    let start = Instant::now();
    let defaults: Vec<u64> = match std::env::var("STRATA_KILL_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
    {
        Some(seed) => vec![seed],
        None => (seed0..seed0 + rounds).collect(),
    };
    let parallel = std::env::var("STRATA_KILL_PARALLEL")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(parallel);
    let torture = Torture::new(&format!("kills: {}", s.name), defaults);
    let total = std::sync::Mutex::new(KillStats::default());
    std::thread::scope(|scope| {
        for _ in 0..parallel.max(1) {
            scope.spawn(|| {
                while let Some(seed) = torture.next_seed() {
                    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                        kill_round(s, seed)
                    }))
                    .unwrap_or_else(|_| Err("panicked".into()));
                    match result {
                        Ok(stats) => {
                            torture.progress(
                                seed,
                                format!(
                                    "{} kills, {} writes acknowledged, {} kills lost unsynced \
                                     writes",
                                    stats.kills, stats.acked, stats.lost_unsynced
                                ),
                            );
                            total.lock().unwrap_or_else(|e| e.into_inner()).add(&stats);
                        }
                        Err(e) => torture.failure(
                            seed,
                            format!("STRATA_KILL_SEED={seed}, scenario {:?}", s.name),
                            e,
                        ),
                    }
                }
            });
        }
    });
    let total = total.into_inner().unwrap_or_else(|e| e.into_inner());
    eprintln!(
        "{}: {} rounds, {} kills ({} before any acknowledgment, {} inside a flush or \
         compaction, up to {} tables), {} writes acknowledged, {} kills lost acknowledged \
         unsynced writes ({} writes), in {:.1?}",
        s.name,
        total.rounds,
        total.kills,
        total.early_kills,
        total.in_flush_or_compaction,
        total.max_tables,
        total.acked,
        total.lost_unsynced,
        total.lost_writes,
        start.elapsed()
    );
    torture.finish();
    total
}
