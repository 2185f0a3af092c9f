//! The crash contract of issue 4 and an independent model to check it against.
//!
//! A workload is a list of [`Step`]s (writes as batches of puts, deletes and range deletes,
//! reads, flushes, compactions, reopens). [`Runner`] executes it on a `Db` over a [`SimFs`]
//! and records in a [`History`] what each write returned. After a crash, [`check_recovered`]
//! reopens the database and checks the contract against the history:
//!
//! 1. every write acknowledged with sync (or followed by a successful flush, close or open) is
//!    present; after a process crash (`KeepAll`) every acknowledged write is;
//! 2. the state is that of a prefix of the commit order, with no holes;
//! 3. each batch is applied entirely or not at all (a batch is one step of the prefix);
//! 4. the database opens;
//! 5. `verify()` passes;
//! 6. `last_sequence` is at least the number of operations the recovered prefix holds, and a
//!    write after recovery is visible over every recovered key (a reused sequence number would
//!    hide it).
//!
//! The model never looks inside the engine: it only knows what each call returned. A write that
//! failed with an I/O error may or may not have landed ([`Outcome::Maybe`]); one refused as
//! `Poisoned` must not have. Values name the step that wrote them, so a value from the wrong
//! write is caught.
//!
//! A later layer (tables with index entries) plugs in by producing its own `Step::Write`s: a
//! row and its index entries in one batch are checked all-or-nothing like any batch.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::path::Path;
use std::sync::Arc;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use strata::filenames::{parse_file_name, FileKind};
use strata::fs::{CrashMode, SimFs};
use strata::{Db, Error, Options, WriteBatch, WriteOptions};

/// The database directory inside the simulated file system.
pub const DIR: &str = "/db";

pub type Key = Vec<u8>;
/// One operation of a write.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Op {
    Put(Key, Vec<u8>),
    Delete(Key),
    /// Every key in `[start, end)`; an empty `end` is unbounded (as `delete_prefix` of an
    /// all-0xff prefix writes it).
    DeleteRange(Key, Key),
}

impl Op {
    /// Add this operation to `batch`.
    pub fn add_to(&self, batch: &mut WriteBatch) {
        match self {
            Op::Put(k, v) => batch.put(k, v),
            Op::Delete(k) => batch.delete(k),
            Op::DeleteRange(start, end) => batch.delete_range(start, end),
        };
    }
}
/// A database's contents.
pub type State = BTreeMap<Key, Vec<u8>>;

/// One step of a workload.
#[derive(Clone, Debug)]
pub enum Step {
    /// An atomic batch (a single put or delete is a batch of one).
    Write { ops: Vec<Op>, sync: bool },
    /// A point read, checked against the model while the model is exact.
    Get(Key),
    /// `Db::flush`.
    Flush,
    /// `Db::compact`: flush, then compact every level.
    Compact,
    /// `Db::close` and `Db::open` again (a clean restart).
    Reopen,
}

/// The options every sweep uses: the simulated file system, no background threads (a run is
/// deterministic), and a memtable of 4 KiB (`STRATA_WRITE_BUFFER` overrides it) so switches,
/// flushes and compactions happen within a few dozen writes.
pub fn sim_options(fs: &SimFs) -> Options {
    Options::default()
        .with_fs(Arc::new(fs.clone()))
        .with_background_flush(false)
        .with_write_buffer_size(env_u64("STRATA_WRITE_BUFFER", 4096) as usize)
        .with_block_size(512)
}

/// Whether workloads include range deletes (`delete_range`, `delete_prefix`) by default
/// (`STRATA_RANGE_DELETES=1` or `0` overrides it).
///
/// KNOWN ENGINE BUG
/// (tests/a_deleted_key_stays_deleted_when_a_range_tombstone_rewrites_its_table.rs): with range
/// deletes on, the I/O-error sweep finds a deleted key resurrected by a level-0 rewrite; turn
/// this on once that is fixed.
pub const RANGE_DELETES: bool = true;

/// A random workload of `len` steps over `keys` keys (`STRATA_KEYS` overrides it), half of the
/// writes synced (`STRATA_SYNC_PERCENT` overrides it), with range deletes if
/// [`RANGE_DELETES`], deterministic from `seed`.
pub fn random_workload(seed: u64, len: usize, keys: u32) -> Vec<Step> {
    let range_deletes = env_u64("STRATA_RANGE_DELETES", u64::from(RANGE_DELETES)) != 0;
    let keys = env_u64("STRATA_KEYS", u64::from(keys)).clamp(1, 1_000_000) as u32;
    let sync_percent = env_u64("STRATA_SYNC_PERCENT", 50).min(100) as f64 / 100.0;
    let mut rng = StdRng::seed_from_u64(seed);
    let key = |rng: &mut StdRng| format!("k{:03}", rng.random_range(0..keys)).into_bytes();
    // A range of up to 8 keys, or every key of a ten-key prefix ("k01" for k010..k019).
    let range = |rng: &mut StdRng| {
        if rng.random_bool(0.5) {
            let start = rng.random_range(0..keys);
            let end = start + rng.random_range(1..=8);
            Op::DeleteRange(
                format!("k{start:03}").into_bytes(),
                format!("k{end:03}").into_bytes(),
            )
        } else {
            let prefix = format!("k{:02}", rng.random_range(0..keys.div_ceil(10)));
            let end =
                strata::iter::db_iter::prefix_successor(prefix.as_bytes()).unwrap_or_default();
            Op::DeleteRange(prefix.into_bytes(), end)
        }
    };
    let value = |rng: &mut StdRng, step: usize, key: &[u8]| {
        // Now and then a value larger than a file handle's 64 KiB buffer: it goes to the OS in
        // one write of its own, and spans many table blocks.
        let pad = if rng.random_bool(0.01) {
            70_000
        } else {
            rng.random_range(0..200)
        };
        let mut v = format!("{step}:{}:", String::from_utf8_lossy(key)).into_bytes();
        v.resize(v.len() + pad, b'.');
        v
    };
    (0..len)
        .map(|step| {
            let sync = rng.random_bool(sync_percent);
            match rng.random_range(0..100) {
                0..45 => {
                    let k = key(&mut rng);
                    let v = value(&mut rng, step, &k);
                    Step::Write {
                        ops: vec![Op::Put(k, v)],
                        sync,
                    }
                }
                45..52 => Step::Write {
                    ops: vec![Op::Delete(key(&mut rng))],
                    sync,
                },
                52..55 if range_deletes => Step::Write {
                    ops: vec![range(&mut rng)],
                    sync,
                },
                52..55 => Step::Write {
                    ops: vec![Op::Delete(key(&mut rng))],
                    sync,
                },
                55..72 => {
                    let n = rng.random_range(2..8);
                    let ops = (0..n)
                        .map(|_| {
                            let k = key(&mut rng);
                            match rng.random_range(0..20) {
                                0..4 => Op::Delete(k),
                                4 if range_deletes => range(&mut rng),
                                4 => Op::Delete(k),
                                _ => {
                                    let v = value(&mut rng, step, &k);
                                    Op::Put(k, v)
                                }
                            }
                        })
                        .collect();
                    Step::Write { ops, sync }
                }
                72..94 => Step::Get(key(&mut rng)),
                94..97 => Step::Flush,
                97..98 => Step::Compact,
                _ => Step::Reopen,
            }
        })
        .collect()
}

/// What a write call returned, as the model sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// `Ok`: it must be applied.
    Acked,
    /// An error other than `Poisoned`: it may or may not have been applied.
    Maybe,
    /// `Poisoned`: refused before any I/O; it must not be applied.
    Refused,
}

#[derive(Clone, Debug)]
struct Logged {
    step: usize,
    ops: Vec<Op>,
    outcome: Outcome,
}

/// What was acknowledged since the last successful open, on top of the state that open found.
#[derive(Clone, Debug, Default)]
pub struct History {
    /// The state found by the last successful open (durable: recovery syncs what it found).
    base: State,
    /// `last_sequence` after that open.
    base_seq: u64,
    writes: Vec<Logged>,
    /// `writes[..durable]` survive a power cut (a sync write, flush or close acknowledged them).
    durable: usize,
    /// The exact state, while no write of unknown outcome is outstanding.
    exact: Option<State>,
}

impl History {
    pub fn new() -> History {
        History {
            exact: Some(State::new()),
            ..History::default()
        }
    }

    /// Record a write's result; returns how the model classifies it.
    pub fn record(
        &mut self,
        step: usize,
        ops: &[Op],
        sync: bool,
        result: &strata::Result<()>,
    ) -> Outcome {
        let outcome = match result {
            Ok(()) => Outcome::Acked,
            Err(Error::Poisoned(_)) => Outcome::Refused,
            Err(_) => Outcome::Maybe,
        };
        self.writes.push(Logged {
            step,
            ops: ops.to_vec(),
            outcome,
        });
        if sync && outcome == Outcome::Acked {
            self.durable = self.writes.len();
        }
        match outcome {
            Outcome::Acked => {
                if let Some(state) = &mut self.exact {
                    apply(state, ops);
                }
            }
            Outcome::Maybe => self.exact = None,
            Outcome::Refused => {}
        }
        outcome
    }

    /// Everything acknowledged so far is durable (a flush or close returned `Ok`).
    pub fn mark_durable(&mut self) {
        self.durable = self.writes.len();
    }

    /// How many writes since the last open must survive a process crash: up to the last
    /// acknowledged one.
    pub fn acked_len(&self) -> usize {
        self.writes
            .iter()
            .rposition(|w| w.outcome == Outcome::Acked)
            .map_or(0, |i| i + 1)
    }

    /// How many writes since the last open must survive a power cut.
    pub fn durable_len(&self) -> usize {
        self.durable
    }

    /// The exact expected state, if no write of unknown outcome is outstanding.
    pub fn exact(&self) -> Option<&State> {
        self.exact.as_ref()
    }

    /// Find a prefix `p >= lower` of the writes (each `Maybe` write in it applied or not) whose
    /// state is `found`. Returns `p` and the fewest operations any matching choice holds.
    pub fn explain(&self, found: &State, lower: usize) -> Result<(usize, u64), String> {
        // Candidate states after each prefix, deduplicated; each with its operation count.
        let mut candidates: Vec<(State, u64)> = vec![(self.base.clone(), self.base_seq)];
        for p in 0..=self.writes.len() {
            if p >= lower {
                if let Some(seq) = candidates
                    .iter()
                    .filter(|(s, _)| s == found)
                    .map(|(_, n)| *n)
                    .min()
                {
                    return Ok((p, seq));
                }
            }
            let Some(w) = self.writes.get(p) else { break };
            let n = w.ops.len() as u64;
            match w.outcome {
                Outcome::Refused => {}
                Outcome::Acked => {
                    for (s, seq) in &mut candidates {
                        apply(s, &w.ops);
                        *seq += n;
                    }
                }
                Outcome::Maybe => {
                    let applied: Vec<(State, u64)> = candidates
                        .iter()
                        .map(|(s, seq)| {
                            let mut s = s.clone();
                            apply(&mut s, &w.ops);
                            (s, seq + n)
                        })
                        .collect();
                    candidates.extend(applied);
                    candidates.sort();
                    candidates.dedup_by(|a, b| a.0 == b.0);
                    assert!(
                        candidates.len() <= 256,
                        "too many writes of unknown outcome to check"
                    );
                }
            }
        }
        Err(self.describe_mismatch(found, lower))
    }

    fn describe_mismatch(&self, found: &State, lower: usize) -> String {
        let mut msg = format!(
            "the recovered state is not the state after any prefix of at least {lower} of the \
             {} writes since the last open (durable {}, acknowledged {}; last outcomes by \
             step {:?})\n",
            self.writes.len(),
            self.durable,
            self.acked_len(),
            self.writes
                .iter()
                .rev()
                .take(8)
                .rev()
                .map(|w| (w.step, w.outcome))
                .collect::<Vec<_>>()
        );
        // Show the difference from the closest prefix (Maybe writes skipped).
        let mut state = self.base.clone();
        let mut best: Option<(usize, usize, State)> = None;
        for p in 0..=self.writes.len() {
            let d = diff(&state, found).len();
            if p >= lower && best.as_ref().is_none_or(|b| d < b.1) {
                best = Some((p, d, state.clone()));
            }
            if let Some(w) = self.writes.get(p) {
                if w.outcome == Outcome::Acked {
                    apply(&mut state, &w.ops);
                }
            }
        }
        if let Some((p, _, expected)) = best {
            let _ = writeln!(
                msg,
                "closest prefix: {p} writes; differences (key: expected / found):"
            );
            for line in diff(&expected, found).into_iter().take(20) {
                let _ = writeln!(msg, "  {line}");
            }
        }
        msg
    }

    /// Start over from the state an open found.
    pub fn rebase(&mut self, found: State, last_sequence: u64) {
        *self = History {
            exact: Some(found.clone()),
            base: found,
            base_seq: last_sequence,
            ..History::default()
        };
    }
}

pub fn apply(state: &mut State, ops: &[Op]) {
    for op in ops {
        match op {
            Op::Put(k, v) => {
                state.insert(k.clone(), v.clone());
            }
            Op::Delete(k) => {
                state.remove(k);
            }
            Op::DeleteRange(start, end) => {
                state.retain(|k, _| k < start || (!end.is_empty() && k >= end));
            }
        }
    }
}

fn short(v: Option<&Vec<u8>>) -> String {
    match v {
        None => "-".into(),
        Some(v) => {
            let s = String::from_utf8_lossy(v);
            s.trim_end_matches('.').to_string()
        }
    }
}

fn diff(expected: &State, found: &State) -> Vec<String> {
    let keys: BTreeSet<&Key> = expected.keys().chain(found.keys()).collect();
    keys.into_iter()
        .filter(|k| expected.get(*k) != found.get(*k))
        .map(|k| {
            format!(
                "{}: {} / {}",
                String::from_utf8_lossy(k),
                short(expected.get(k)),
                short(found.get(k))
            )
        })
        .collect()
}

/// Every key and value of `db`.
pub fn scan(db: &Db) -> strata::Result<State> {
    db.iter()
        .map(|r| r.map(|(k, v)| (k.to_vec(), v.to_vec())))
        .collect()
}

/// The crash modes the sweeps check: all of them.
pub const SWEPT_MODES: [CrashMode; 6] = [
    CrashMode::DropUnsynced,
    CrashMode::KeepRandomPrefix,
    CrashMode::TearLastWrite,
    CrashMode::KeepAll,
    CrashMode::ZeroFilledTail,
    CrashMode::ReorderedPages,
];

/// Which promise a check holds the database to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Expect {
    /// After a power cut: the durable writes.
    Durable,
    /// After a process crash or a clean restart: every acknowledged write.
    Acknowledged,
}

impl Expect {
    pub fn after(mode: CrashMode) -> Expect {
        if mode.keeps_everything_handed_to_the_os() {
            Expect::Acknowledged
        } else {
            Expect::Durable
        }
    }
}

/// Open the database on `fs` and check the contract (see the module documentation) and that
/// no file leaked. The database is closed again unless `keep_open`.
pub fn check_recovered(fs: &SimFs, hist: &History, expect: Expect) -> Result<(), String> {
    let db = Db::open_with(DIR, sim_options(fs)).map_err(|e| format!("reopen failed: {e}"))?;
    let lower = match expect {
        Expect::Durable => hist.durable_len(),
        Expect::Acknowledged => hist.acked_len(),
    };
    check_open_db(fs, &db, hist, lower, true)?;
    // A write over every recovered key must win: a reused sequence number would lose.
    let state = scan(&db).map_err(|e| format!("scan: {e}"))?;
    let mut batch = WriteBatch::new();
    for k in state.keys() {
        batch.put(k, b"after-recovery");
    }
    batch.put(b"zz-after-recovery", b"1");
    db.write_opt(batch, WriteOptions::no_sync())
        .map_err(|e| format!("a write after recovery failed: {e}"))?;
    let after = scan(&db).map_err(|e| format!("scan: {e}"))?;
    if after.len() != state.len() + 1 || after.values().any(|v| v != b"after-recovery" && v != b"1")
    {
        return Err(format!(
            "a write after recovery is hidden by recovered data (sequence number reused?): {:?}",
            diff(&state, &after).into_iter().take(5).collect::<Vec<_>>()
        ));
    }
    db.close().map_err(|e| format!("close after recovery: {e}"))
}

/// Check an open database against `hist` (at least `lower` writes): verify, state, sequence,
/// and, if `leaks`, leaked files. Returns the state found.
pub fn check_open_db(
    fs: &SimFs,
    db: &Db,
    hist: &History,
    lower: usize,
    leaks: bool,
) -> Result<State, String> {
    db.verify().map_err(|e| format!("verify failed: {e}"))?;
    let found = scan(db).map_err(|e| format!("scan failed: {e}"))?;
    let (_, min_seq) = hist.explain(&found, lower)?;
    let last = db.stats().last_sequence;
    if last < min_seq {
        return Err(format!(
            "last_sequence is {last} but the recovered writes used {min_seq} sequence numbers"
        ));
    }
    if leaks {
        check_no_leaked_files(fs, Path::new(DIR))?;
    }
    Ok(found)
}

/// After an open, the directory holds only LOCK, CURRENT, the one manifest CURRENT names, WAL
/// segments the manifest still needs, and the tables it names.
pub fn check_no_leaked_files(fs: &SimFs, dir: &Path) -> Result<(), String> {
    let number = strata::manifest::read_current(fs, dir)
        .map_err(|e| format!("reading CURRENT: {e}"))?
        .ok_or("no CURRENT after open")?;
    let edits =
        strata::manifest::replay_manifest(fs, &strata::filenames::manifest_path(dir, number))
            .map_err(|e| format!("replaying the manifest: {e}"))?;
    let mut live = BTreeSet::new();
    let mut log_number = 0;
    for edit in edits {
        if let Some(n) = edit.log_number {
            log_number = n;
        }
        for (_, n) in edit.deleted_files {
            live.remove(&n);
        }
        for (_, meta) in edit.new_files {
            live.insert(meta.number);
        }
    }
    let mut leaked = Vec::new();
    let mut tables = BTreeSet::new();
    for name in fs.names(dir) {
        let ok = match parse_file_name(&name) {
            Some(FileKind::Lock | FileKind::Current) => true,
            Some(FileKind::Manifest(n)) => n == number,
            Some(FileKind::Wal(n)) => n >= log_number,
            Some(FileKind::Table(n)) => {
                tables.insert(n);
                live.contains(&n)
            }
            Some(FileKind::Temp) | None => false,
        };
        if !ok {
            leaked.push(name);
        }
    }
    if !leaked.is_empty() {
        return Err(format!(
            "files left behind after open: {leaked:?} (all: {:?})",
            fs.names(dir)
        ));
    }
    if let Some(missing) = live.difference(&tables).next() {
        return Err(format!(
            "the manifest names table {missing}, which is missing"
        ));
    }
    Ok(())
}

/// A check run at a durable point: returns a contract violation.
pub type DurableCheck = Box<dyn FnMut(&SimFs, &History) -> Result<(), String>>;

/// Executes a workload, recording outcomes, and checks what can be checked on the way.
pub struct Runner {
    pub fs: SimFs,
    pub db: Option<Db>,
    pub hist: History,
    /// Stop at the first error (the crash sweep: the disk died) or carry on (the I/O sweep).
    pub stop_on_error: bool,
    /// Faults pass (a second attempt to open must work); false for a full disk.
    pub transient_faults: bool,
    /// Called after each acknowledged sync write or flush once a fault has fired; returns a
    /// contract violation (the I/O sweep checks durability there with a power-cut fork).
    pub on_durable: Option<DurableCheck>,
    /// Errors the workload saw.
    pub errors: u64,
    /// Flushes and compactions (trivial moves included) the workload caused, summed over
    /// sessions: evidence that the sweep covers them.
    pub flushes: u64,
    pub compactions: u64,
    /// The session (since the last open) refused a write as poisoned.
    poisoned: bool,
    /// A write, flush or compaction of the session (since the last open) failed.
    session_failed: bool,
}

impl Runner {
    pub fn new(fs: &SimFs, stop_on_error: bool) -> Runner {
        Runner {
            fs: fs.clone(),
            db: None,
            hist: History::new(),
            stop_on_error,
            transient_faults: true,
            on_durable: None,
            errors: 0,
            flushes: 0,
            compactions: 0,
            poisoned: false,
            session_failed: false,
        }
    }

    /// An injected fault fired, the disk died or filled up: errors are explained.
    pub fn fault_fired(&self) -> bool {
        self.fs.injected_faults() > 0 || self.fs.is_dead() || self.fs.enospc_errors() > 0
    }

    /// An error the workload saw: a violation if no fault explains it.
    fn error(&mut self, what: &str, e: &Error) -> Result<(), String> {
        self.errors += 1;
        if !self.fault_fired() {
            return Err(format!("{what} failed with no fault injected: {e}"));
        }
        Ok(())
    }

    fn durable_point(&mut self) -> Result<(), String> {
        if self.fault_fired() {
            if let Some(check) = &mut self.on_durable {
                check(&self.fs, &self.hist)?;
            }
        }
        Ok(())
    }

    /// Open the database (the first step of every run, and the second half of `Reopen`).
    /// Returns false if it failed (an error the faults explain).
    fn open(&mut self) -> Result<bool, String> {
        let db = match Db::open_with(DIR, sim_options(&self.fs)) {
            Ok(db) => db,
            Err(e) => {
                self.error("open", &e)?;
                return Ok(false);
            }
        };
        // A clean restart keeps every acknowledged write. The check's own reads are not part
        // of the workload: they must not shift the operation count or meet a fault.
        // Garbage removal is best effort, so a fault may leave files for the next open.
        let lower = self.hist.acked_len();
        let fs = self.fs.clone();
        let leaks = !self.fault_fired();
        let found = fs
            .unobserved(|| check_open_db(&fs, &db, &self.hist, lower, leaks))
            .map_err(|e| format!("after a clean reopen: {e}"))?;
        self.hist.rebase(found, db.stats().last_sequence);
        self.db = Some(db);
        self.poisoned = false;
        self.session_failed = false;
        Ok(true)
    }

    /// Run `steps`; `Err` is a contract violation, `Ok` means the run ended (completed, or
    /// stopped at an error when `stop_on_error`).
    pub fn run(&mut self, steps: &[Step]) -> Result<(), String> {
        if !self.open_retrying()? && self.stop_on_error {
            return Ok(());
        }
        for (i, step) in steps.iter().enumerate() {
            let ok = self
                .step(i, step)
                .map_err(|e| format!("step {i} ({}): {e}", describe(step)))?;
            if !ok && self.stop_on_error {
                return Ok(());
            }
        }
        Ok(())
    }

    /// Open; if that fails and the run carries on after errors, try again: with transient
    /// faults, an attempt in which no new fault fired must work. (`run` starts with it; a
    /// caller driving [`Runner::step`] itself calls it first.)
    pub fn open_retrying(&mut self) -> Result<bool, String> {
        for _ in 0..8 {
            let injected = self.fs.injected_faults();
            if self.open()? {
                return Ok(true);
            }
            if self.stop_on_error {
                return Ok(false);
            }
            if !self.transient_faults {
                return Ok(false);
            }
            if self.fs.injected_faults() == injected {
                return Err("the database cannot be opened after a transient fault".into());
            }
        }
        Ok(false)
    }

    /// One step (`i` names it in values and reports); `Ok(false)` if it failed with an error
    /// the faults explain.
    pub fn step(&mut self, i: usize, step: &Step) -> Result<bool, String> {
        let Some(db) = self.db.clone() else {
            // The last open failed (a lasting fault): only a reopen step can go on.
            if matches!(step, Step::Reopen) {
                return self.open_retrying();
            }
            return Ok(false);
        };
        match step {
            Step::Write { ops, sync } => {
                let mut batch = WriteBatch::new();
                for op in ops {
                    op.add_to(&mut batch);
                }
                let opts = if *sync {
                    WriteOptions::sync()
                } else {
                    WriteOptions::no_sync()
                };
                let before = db.stats().last_sequence;
                let result = db.write_opt(batch, opts);
                let outcome = self.hist.record(i, ops, *sync, &result);
                match result {
                    Ok(()) => {
                        if self.poisoned {
                            return Err("a write was acknowledged after the database refused \
                                        one as poisoned"
                                .into());
                        }
                        let after = db.stats().last_sequence;
                        if after != before + ops.len() as u64 {
                            return Err(format!(
                                "last_sequence went from {before} to {after} for {} operations",
                                ops.len()
                            ));
                        }
                        if *sync {
                            self.durable_point()?;
                        }
                        Ok(true)
                    }
                    Err(e) => {
                        self.poisoned |= outcome == Outcome::Refused;
                        self.session_failed = true;
                        self.error("write", &e)?;
                        Ok(false)
                    }
                }
            }
            Step::Get(key) => match db.get(key) {
                Ok(found) => {
                    if let Some(model) = self.hist.exact() {
                        let expected = model.get(key);
                        if found.as_deref() != expected.map(Vec::as_slice) {
                            return Err(format!(
                                "get({}) returned {} but the model holds {}",
                                String::from_utf8_lossy(key),
                                short(found.map(|b| b.to_vec()).as_ref()),
                                short(expected)
                            ));
                        }
                    }
                    Ok(true)
                }
                Err(e) => {
                    self.error("get", &e)?;
                    Ok(false)
                }
            },
            Step::Flush | Step::Compact => {
                let (what, result) = match step {
                    Step::Flush => ("flush", db.flush()),
                    _ => ("compact", db.compact()),
                };
                match result {
                    Ok(()) => {
                        if self.poisoned {
                            return Err(format!("{what} succeeded on a poisoned database"));
                        }
                        self.hist.mark_durable();
                        self.durable_point()?;
                        Ok(true)
                    }
                    Err(e) => {
                        self.session_failed = true;
                        self.error(what, &e)?;
                        Ok(false)
                    }
                }
            }
            Step::Reopen => {
                self.db = None;
                self.count(&db);
                match db.close() {
                    Ok(()) if self.session_failed => {
                        // close() must report what poisoned the session, not promise
                        // durability (tests/closing_a_poisoned_database_reports_the_failure.rs).
                        return Err("close returned Ok after a failed write or flush".into());
                    }
                    Ok(()) => {
                        self.hist.mark_durable();
                        self.durable_point()?;
                    }
                    Err(e) => {
                        self.error("close", &e)?;
                        if self.stop_on_error {
                            return Ok(false);
                        }
                    }
                }
                self.open_retrying()
            }
        }
    }

    fn count(&mut self, db: &Db) {
        let stats = db.stats();
        self.flushes += stats.flushes;
        self.compactions += stats.compactions + stats.trivial_moves;
    }

    /// Close the database (ignoring errors) so the file system can be examined.
    pub fn finish(&mut self) {
        if let Some(db) = self.db.take() {
            self.count(&db);
            let _ = db.close();
        }
    }
}

pub fn describe(step: &Step) -> String {
    match step {
        Step::Write { ops, sync } => format!(
            "{} of {} ops{}",
            if ops.len() == 1 { "write" } else { "batch" },
            ops.len(),
            if *sync { ", sync" } else { "" }
        ),
        Step::Get(k) => format!("get {}", String::from_utf8_lossy(k)),
        Step::Flush => "flush".into(),
        Step::Compact => "compact".into(),
        Step::Reopen => "reopen".into(),
    }
}

/// An empty database, created once, for each run to fork: the sweeps start from a database
/// that exists (a crash while creating one is its own test).
pub fn created_db(seed: u64) -> SimFs {
    let fs = SimFs::new(seed);
    let db = Db::open_with(DIR, sim_options(&fs)).expect("create the database");
    db.close().expect("close the new database");
    fs
}

/// The trace of the operations of a failing run, around operation `k`, for the report.
pub fn trace_around(trace: &[String], k: u64, radius: usize) -> String {
    let k = k as usize;
    let start = k.saturating_sub(radius);
    let end = (k + radius).min(trace.len());
    trace
        .get(start..end)
        .unwrap_or_default()
        .iter()
        .map(|l| format!("    {l}\n"))
        .collect()
}

/// Reads a positive integer from the environment (for long runs), or `default`.
pub fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Aborts the test process if a sweep makes no progress for `limit`: a hang must fail, and
/// must name the points in flight when it hung.
pub struct Watchdog {
    /// A counter bumped on every start and end of a point, and the points in flight.
    progress: Arc<std::sync::Mutex<(u64, BTreeMap<u64, String>)>>,
    stop: Arc<std::sync::atomic::AtomicBool>,
}

/// A point in flight; it is done when dropped.
pub struct InFlight<'a> {
    watchdog: &'a Watchdog,
    id: u64,
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        if let Ok(mut g) = self.watchdog.progress.lock() {
            g.0 += 1;
            g.1.remove(&self.id);
        }
    }
}

impl Watchdog {
    pub fn start(limit: std::time::Duration) -> Watchdog {
        let progress = Arc::new(std::sync::Mutex::new((0u64, BTreeMap::new())));
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let (p, s) = (Arc::clone(&progress), Arc::clone(&stop));
        std::thread::spawn(move || {
            let mut last = (u64::MAX, std::time::Instant::now());
            while !s.load(std::sync::atomic::Ordering::Relaxed) {
                std::thread::sleep(std::time::Duration::from_millis(200));
                let (n, in_flight) = match p.lock() {
                    Ok(g) => (g.0, g.1.values().cloned().collect::<Vec<_>>()),
                    Err(_) => continue,
                };
                if n != last.0 {
                    last = (n, std::time::Instant::now());
                } else if last.1.elapsed() > limit {
                    eprintln!("HANG: no progress for {limit:?}; in flight: {in_flight:?}");
                    std::process::abort();
                }
            }
        });
        Watchdog { progress, stop }
    }

    /// Note that the sweep started on `what`; it is done when the result is dropped.
    pub fn enter(&self, what: impl Into<String>) -> InFlight<'_> {
        let mut g = self.progress.lock().unwrap_or_else(|e| e.into_inner());
        g.0 += 1;
        let id = g.0;
        g.1.insert(id, what.into());
        InFlight { watchdog: self, id }
    }
}

impl Drop for Watchdog {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
    }
}

/// Run `check` on every point, on as many threads as there are cores (each point is
/// independent and deterministic, so the result does not depend on the split). Returns the sum
/// of what the points returned (a count: crash states, injected errors) and the failures, by
/// point, in order. A panic is a failure.
pub fn parallel_sweep(
    points: &[u64],
    watchdog: &Watchdog,
    label: &str,
    check: impl Fn(u64) -> Result<u64, String> + Sync,
) -> (u64, Vec<(u64, String)>) {
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let next = std::sync::atomic::AtomicUsize::new(0);
    let results = std::sync::Mutex::new((0u64, Vec::new()));
    std::thread::scope(|scope| {
        for _ in 0..threads {
            scope.spawn(|| loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let Some(&point) = points.get(i) else { break };
                let _in_flight = watchdog.enter(format!("{label} {point}"));
                let result =
                    std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| check(point)))
                        .unwrap_or_else(|_| Err("panicked".into()));
                let mut r = results.lock().unwrap_or_else(|e| e.into_inner());
                match result {
                    Ok(n) => r.0 += n,
                    Err(e) => r.1.push((point, e)),
                }
            });
        }
    });
    let (hits, mut failures) = results.into_inner().unwrap_or_else(|e| e.into_inner());
    failures.sort_by_key(|(p, _)| *p);
    (hits, failures)
}
