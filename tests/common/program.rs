//! Operation programs with crash and fault steps, run on `SimFs` against the model of
//! `contract.rs`: the fuzz target `db_program` decodes its input into a [`Program`], and a
//! regression test writes the program it found out as code and runs it with [`run`].
//!
//! Include it next to `contract.rs` (it uses `super::contract`):
//! `#[path = "common/program.rs"] mod program;` with `use common::contract;` in a test, or both
//! files by path in the fuzz crate.
//!
//! What a program checks, on top of everything `Runner` checks at each write, read, flush,
//! compaction and reopen (see `contract.rs`):
//! - scans (ranges and prefixes, mixing `next` and `next_back`) and snapshot reads against the
//!   model whenever the model is exact (no write of unknown outcome outstanding);
//! - after each crash (any `CrashMode`, with the database open), the contract on reopen;
//! - faults armed at the n-th next operation (of one kind or any), once or as a dead disk: every
//!   error must be explained by a fault, and after a dead disk nothing works until a crash;
//! - at the end, with faults cleared: the contract after a clean reopen and after a power cut.

use std::ops::Bound;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use strata::fs::{CrashMode, Fault, OpKind, SimFs};
use strata::{Db, Snapshot};

use super::contract::{
    check_recovered, scan, sim_options, DurableCheck, Expect, Op, Runner, State, Step, DIR,
};

/// Keys are `k000` to `k015`.
pub const KEYS: u8 = 16;
/// At most this many faults are armed per program (each may leave a write of unknown outcome,
/// and the model tries every combination of those).
pub const MAX_FAULTS: usize = 3;
/// A program is cut to this many actions.
pub const MAX_ACTIONS: usize = 64;

/// One operation of a write.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum WriteOp {
    /// A put of key `key`; the value names the action and key, padded to `len` bytes.
    Put {
        key: u8,
        len: u32,
    },
    Delete(u8),
    /// Keys from `start` up to `end` (exclusive; `None`: past every key). Bounds are put in
    /// order, and an empty range widened by one key, so the range is never refused. (An empty,
    /// unbounded end is only for `delete_prefix` of an all-0xff prefix, which covers no key
    /// here.)
    DeleteRange {
        start: u8,
        end: Option<u8>,
    },
}

/// Which keys a scan covers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ScanRange {
    /// `[start, end)`, either side unbounded if `None` (swapped if out of order).
    Range(Option<u8>, Option<u8>),
    /// One of [`PREFIXES`].
    Prefix(u8),
}

/// The prefixes a [`ScanRange::Prefix`] chooses from (the last matches nothing).
pub const PREFIXES: [&str; 6] = ["k", "k0", "k00", "k01", "k005", "k1"];

/// One step of a program.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    /// An atomic batch (at least one operation is written: an empty list writes a delete of
    /// key 0).
    Write {
        ops: Vec<WriteOp>,
        sync: bool,
    },
    Get(u8),
    /// Up to `len` steps over `range`: step `j` calls `next_back` if bit `j` of `back` is set,
    /// else `next`.
    Scan {
        range: ScanRange,
        back: u32,
        len: u8,
    },
    /// Take a snapshot (kept until the next reopen, crash or fault).
    TakeSnapshot,
    /// Read snapshot `i` (modulo the number held) in full, both ways, and a few keys.
    ReadSnapshot(u8),
    Flush,
    Compact,
    /// Close and open again.
    Reopen,
    /// Crash with the database open, check the contract, and go on with the recovered state.
    Crash(CrashMode),
    /// Fail the `after`-th next operation of `kind` (of any kind if `None`), once or as a dead
    /// disk (until the next crash).
    Fault {
        after: u16,
        kind: Option<OpKind>,
        dead: bool,
    },
}

/// A program: the crash randomness seed and the actions.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Program {
    pub seed: u64,
    pub actions: Vec<Action>,
}

/// What a program exercised.
#[derive(Clone, Debug, Default)]
pub struct Summary {
    pub crashes: u64,
    pub faults_fired: u64,
    pub errors: u64,
}

pub fn key(k: u8) -> Vec<u8> {
    format!("k{:03}", k % KEYS).into_bytes()
}

/// The value action `i` writes to `key`: names the action, so a value from the wrong write is
/// caught.
fn value(i: usize, key: &[u8], len: u32) -> Vec<u8> {
    let mut v = format!("{i}:{}:", String::from_utf8_lossy(key)).into_bytes();
    let len = (len as usize).min(1 << 20);
    if v.len() < len {
        v.resize(len, b'.');
    }
    v
}

fn write_ops(i: usize, ops: &[WriteOp]) -> Vec<Op> {
    let mut out: Vec<Op> = ops
        .iter()
        .take(16)
        .map(|op| match op {
            WriteOp::Put { key: k, len } => {
                let k = key(*k);
                let v = value(i, &k, *len);
                Op::Put(k, v)
            }
            WriteOp::Delete(k) => Op::Delete(key(*k)),
            WriteOp::DeleteRange { start, end } => {
                let start = start % KEYS;
                match end {
                    None => Op::DeleteRange(key(start), b"l".to_vec()),
                    Some(end) => {
                        let (lo, hi) = (start.min(end % KEYS), start.max(end % KEYS));
                        // `k016` sorts after every key: a range to the end, bounded.
                        let hi = format!("k{:03}", hi.max(lo + 1));
                        Op::DeleteRange(key(lo), hi.into_bytes())
                    }
                }
            }
        })
        .collect();
    if out.is_empty() {
        out.push(Op::Delete(key(0)));
    }
    out
}

type Entry = (Vec<u8>, Vec<u8>);

fn bounds(range: &ScanRange) -> (Bound<Vec<u8>>, Bound<Vec<u8>>) {
    match range {
        ScanRange::Range(a, b) => {
            let (a, b) = match (a, b) {
                (Some(a), Some(b)) if a % KEYS > b % KEYS => (Some(*b), Some(*a)),
                _ => (*a, *b),
            };
            (
                a.map_or(Bound::Unbounded, |a| Bound::Included(key(a))),
                b.map_or(Bound::Unbounded, |b| Bound::Excluded(key(b))),
            )
        }
        ScanRange::Prefix(p) => {
            let prefix = PREFIXES[*p as usize % PREFIXES.len()].as_bytes().to_vec();
            let end = strata::iter::db_iter::prefix_successor(&prefix)
                .map_or(Bound::Unbounded, Bound::Excluded);
            (Bound::Included(prefix), end)
        }
    }
}

/// Walk `it` as `back` and `len` say and compare with `expected`; `Ok(false)` if a read failed
/// and `explained()` (asked after the failure: the fault may fire during the walk) allows it.
fn check_walk(
    what: &str,
    mut it: strata::DbIter,
    expected: &[Entry],
    back: u32,
    len: u8,
    explained: &dyn Fn() -> bool,
) -> Result<bool, String> {
    let (mut front, mut rear) = (Vec::new(), Vec::new());
    let mut ended = false;
    for j in 0..u32::from(len.min(40)) {
        let from_back = back >> (j % 32) & 1 == 1;
        let item = if from_back { it.next_back() } else { it.next() };
        match item {
            None => ended = true,
            Some(Err(_)) if explained() => return Ok(false),
            Some(Err(e)) => return Err(format!("{what}: read failed with no fault: {e}")),
            Some(Ok(_)) if ended => {
                return Err(format!("{what}: an entry after the iterator ended"));
            }
            Some(Ok((k, v))) => {
                let entry = (k.to_vec(), v.to_vec());
                if from_back {
                    rear.push(entry);
                } else {
                    front.push(entry);
                }
            }
        }
    }
    let taken = front.len() + rear.len();
    let want_front = expected.get(..front.len());
    let want_rear: Vec<Entry> = expected.iter().rev().take(rear.len()).cloned().collect();
    if taken > expected.len()
        || want_front != Some(&front[..])
        || want_rear != rear
        || (ended && taken != expected.len())
    {
        let show = |v: &[Entry]| {
            v.iter()
                .map(|(k, v)| {
                    format!(
                        "{}={}",
                        String::from_utf8_lossy(k),
                        String::from_utf8_lossy(v).trim_end_matches('.')
                    )
                })
                .collect::<Vec<_>>()
        };
        return Err(format!(
            "{what}: from the front {:?}, from the back {:?}{}, but the model holds {:?}",
            show(&front),
            show(&rear),
            if ended { " (then the end)" } else { "" },
            show(expected)
        ));
    }
    Ok(true)
}

fn model_range(model: &State, (lo, hi): &(Bound<Vec<u8>>, Bound<Vec<u8>>)) -> Vec<Entry> {
    model
        .iter()
        .filter(|(k, _)| {
            let above = match lo {
                Bound::Included(a) => *k >= a,
                Bound::Excluded(a) => *k > a,
                Bound::Unbounded => true,
            };
            let below = match hi {
                Bound::Included(b) => *k <= b,
                Bound::Excluded(b) => *k < b,
                Bound::Unbounded => true,
            };
            above && below
        })
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

/// True once a fault fires after this call (or the disk is dead): a read that fails must have
/// met a fault of its own, not one an earlier step met.
fn fired_since(fs: &SimFs) -> impl Fn() -> bool + '_ {
    let before = fs.injected_faults();
    move || fs.injected_faults() > before || fs.is_dead()
}

/// After a fault, the first durable points (an acknowledged sync write, flush, compaction or
/// close) get a power-cut check: a false `Ok` would lose a durable write there.
fn power_cut_check() -> DurableCheck {
    let mut left = 2u32;
    Box::new(move |fs, hist| {
        if left == 0 {
            return Ok(());
        }
        left -= 1;
        let copy = fs.fork();
        copy.crash(CrashMode::DropUnsynced);
        check_recovered(&copy, hist, Expect::Durable)
            .map_err(|e| format!("a power cut right after a durable point: {e}"))
    })
}

/// A runner on `fs` (with the power-cut check) and its model empty.
fn new_runner(fs: &SimFs) -> Runner {
    let mut runner = Runner::new(fs, false);
    runner.on_durable = Some(power_cut_check());
    runner
}

/// A runner on `fs` whose model starts from the database as it is now (after a crash, which
/// `check_recovered` checked on a copy).
fn fresh_runner(fs: &SimFs) -> Result<Runner, String> {
    let db = Db::open_with(DIR, sim_options(fs)).map_err(|e| format!("open after check: {e}"))?;
    let state = scan(&db).map_err(|e| format!("scan after check: {e}"))?;
    let seq = db.stats().last_sequence;
    db.close().map_err(|e| format!("close after check: {e}"))?;
    let mut runner = new_runner(fs);
    runner.hist.rebase(state, seq);
    if !runner.open_retrying()? {
        return Err("the database does not open after a crash and check".into());
    }
    Ok(runner)
}

/// Run `program` on a fork of `base` (an empty database, `contract::created_db`): `Err` is a
/// contract violation, with the action that broke it.
pub fn run(base: &SimFs, program: &Program) -> Result<Summary, String> {
    let mut fs = base.fork();
    fs.reseed(program.seed);
    let mut summary = Summary::default();
    let mut runner = new_runner(&fs);
    runner.open_retrying()?;
    let mut snapshots: Vec<(Snapshot, State)> = Vec::new();
    let mut faults = 0usize;
    for (i, action) in program.actions.iter().take(MAX_ACTIONS).enumerate() {
        let at = |e: String| format!("action {i} ({action:?}): {e}");
        // A snapshot holds the database open; a fault may fail its reads for good.
        if matches!(action, Action::Reopen | Action::Crash(_)) || runner.fault_fired() {
            snapshots.clear();
        }
        match action {
            Action::Write { ops, sync } => {
                let step = Step::Write {
                    ops: write_ops(i, ops),
                    sync: *sync,
                };
                runner.step(i, &step).map_err(at)?;
            }
            Action::Get(k) => {
                runner.step(i, &Step::Get(key(*k))).map_err(at)?;
            }
            Action::Flush => {
                runner.step(i, &Step::Flush).map_err(at)?;
            }
            Action::Compact => {
                runner.step(i, &Step::Compact).map_err(at)?;
            }
            Action::Reopen => {
                runner.step(i, &Step::Reopen).map_err(at)?;
            }
            Action::Scan { range, back, len } => {
                let (Some(db), Some(model)) = (&runner.db, runner.hist.exact()) else {
                    continue;
                };
                let b = bounds(range);
                let expected = model_range(model, &b);
                let it = match range {
                    ScanRange::Prefix(p) => db.prefix(PREFIXES[*p as usize % PREFIXES.len()]),
                    ScanRange::Range(..) => db.range(b),
                };
                let explained = fired_since(&fs);
                check_walk("scan", it, &expected, *back, *len, &explained).map_err(at)?;
            }
            Action::TakeSnapshot => {
                if let (Some(db), Some(model)) = (&runner.db, runner.hist.exact()) {
                    if snapshots.len() < 4 {
                        snapshots.push((db.snapshot(), model.clone()));
                    }
                }
            }
            Action::ReadSnapshot(n) => {
                if snapshots.is_empty() {
                    continue;
                }
                let (snap, frozen) = &snapshots[*n as usize % snapshots.len()];
                let all: Vec<Entry> = frozen.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
                let explained = fired_since(&fs);
                let whole = |back: u32| {
                    check_walk(
                        "snapshot scan",
                        snap.iter(),
                        &all,
                        back,
                        u8::MAX,
                        &explained,
                    )
                };
                if !whole(0).map_err(at)? || !whole(u32::MAX).map_err(at)? {
                    continue;
                }
                for k in (*n % 4..KEYS).step_by(4) {
                    match snap.get(key(k)) {
                        Ok(got) if got.as_deref() == frozen.get(&key(k)).map(Vec::as_slice) => {}
                        Ok(got) => {
                            return Err(at(format!(
                                "snapshot get(k{k:03}) returned {got:?}, the snapshot's model \
                                 holds {:?}",
                                frozen.get(&key(k)).map(|v| String::from_utf8_lossy(v))
                            )))
                        }
                        Err(_) if explained() => break,
                        Err(e) => return Err(at(format!("snapshot get failed: {e}"))),
                    }
                }
            }
            Action::Crash(mode) => {
                fs.crash(*mode);
                runner.finish();
                // The check writes over every key: run it on a copy, and go on from the crashed
                // state itself.
                check_recovered(&fs.fork(), &runner.hist, Expect::after(*mode))
                    .map_err(|e| at(format!("after the crash: {e}")))?;
                summary.crashes += 1;
                summary.faults_fired += fs.injected_faults();
                summary.errors += runner.errors;
                // A copy's counters start at zero, so an error after the crash is not taken as
                // explained by a fault that fired before it.
                fs = fs.fork();
                faults = 0;
                runner = fresh_runner(&fs).map_err(at)?;
            }
            Action::Fault { after, kind, dead } => {
                if faults == MAX_FAULTS {
                    continue;
                }
                faults += 1;
                let nth = fs.op_count(*kind) + u64::from(*after % 512);
                if *dead {
                    fs.inject(Fault::dead(*kind, nth));
                    // A dead disk stays dead until a crash: opening cannot succeed meanwhile.
                    runner.transient_faults = false;
                } else {
                    fs.inject(Fault::nth(*kind, nth));
                }
            }
        }
    }
    snapshots.clear();
    runner.finish();
    summary.faults_fired += fs.injected_faults();
    summary.errors += runner.errors;
    fs.clear_faults();
    check_recovered(&fs.fork(), &runner.hist, Expect::Acknowledged)
        .map_err(|e| format!("at the end, after a clean reopen: {e}"))?;
    let cut = fs.fork();
    cut.crash(CrashMode::DropUnsynced);
    check_recovered(&cut, &runner.hist, Expect::Durable)
        .map_err(|e| format!("at the end, after a power cut: {e}"))?;
    Ok(summary)
}

/// A random program of `len` actions, deterministic from `seed`, with about the mix of actions
/// the fuzz target decodes (for the stable test suite, which has no fuzzer).
pub fn random_program(seed: u64, len: usize) -> Program {
    let mut rng = StdRng::seed_from_u64(seed);
    let write_op = |rng: &mut StdRng| match rng.random_range(0..10) {
        0..6 => WriteOp::Put {
            key: rng.random(),
            len: if rng.random_bool(0.01) {
                70_000
            } else {
                rng.random_range(0..510)
            },
        },
        6..9 => WriteOp::Delete(rng.random()),
        _ => WriteOp::DeleteRange {
            start: rng.random(),
            end: rng.random_bool(0.8).then(|| rng.random()),
        },
    };
    let actions = (0..len)
        .map(|_| match rng.random_range(0..100) {
            0..30 => Action::Write {
                ops: vec![write_op(&mut rng)],
                sync: rng.random(),
            },
            30..42 => {
                let n = rng.random_range(1..=8);
                Action::Write {
                    ops: (0..n).map(|_| write_op(&mut rng)).collect(),
                    sync: rng.random(),
                }
            }
            42..52 => Action::Get(rng.random()),
            52..62 => Action::Scan {
                range: if rng.random() {
                    ScanRange::Prefix(rng.random())
                } else {
                    ScanRange::Range(
                        rng.random_bool(0.8).then(|| rng.random()),
                        rng.random_bool(0.8).then(|| rng.random()),
                    )
                },
                back: rng.random(),
                len: rng.random_range(0..=24),
            },
            62..65 => Action::TakeSnapshot,
            65..69 => Action::ReadSnapshot(rng.random()),
            69..76 => Action::Flush,
            76..79 => Action::Compact,
            79..84 => Action::Reopen,
            84..92 => Action::Crash(CrashMode::ALL[rng.random_range(0..CrashMode::ALL.len())]),
            _ => Action::Fault {
                after: rng.random_range(0..400),
                kind: rng
                    .random_bool(0.5)
                    .then(|| OpKind::ALL[rng.random_range(0..OpKind::ALL.len())]),
                dead: rng.random(),
            },
        })
        .collect();
    Program { seed, actions }
}
