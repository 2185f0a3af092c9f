//! A model test: random sequences of put / delete / batch / get / range / snapshot / flush /
//! reopen / crash-reopen, checked step by step against a `BTreeMap`.
//!
//! Long mode (`STRATA_TORTURE_SECONDS`, `common/torture.rs`): the last test runs 16 cases of
//! each flavour per fresh seed until the time is up and prints a failing seed, which
//! `STRATA_MODEL_SEED=n` replays (shrinking included).

mod common;

use std::collections::BTreeMap;
use std::ops::Bound;
use std::path::{Path, PathBuf};

use proptest::prelude::*;
use strata::batch::WriteBatch;
use strata::db::Db;
use strata::Options;

type Model = BTreeMap<Vec<u8>, Vec<u8>>;

#[derive(Debug, Clone)]
enum Op {
    Put(u8, u16),
    Delete(u8),
    DeleteRange(u8, u8),
    DeletePrefix(u8),
    Batch(Vec<(u8, Option<u16>)>),
    Get(u8),
    Range(u8, u8, bool, bool, bool),
    Prefix(u8, bool),
    TakeSnapshot,
    CheckSnapshot(usize),
    Flush,
    Compact,
    Reopen,
    CrashReopen,
}

fn key(k: u8) -> Vec<u8> {
    // Two-level keys so prefixes group several keys; some keys are prefixes of others.
    if k.is_multiple_of(7) {
        format!("k{}", k / 10).into_bytes()
    } else {
        format!("k{}{}", k / 10, k % 10).into_bytes()
    }
}

fn value(v: u16) -> Vec<u8> {
    let mut out = format!("v{v}-").into_bytes();
    out.resize(5 + (v as usize % 300), b'.');
    out
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        30 => (any::<u8>(), any::<u16>()).prop_map(|(k, v)| Op::Put(k % 60, v)),
        10 => any::<u8>().prop_map(|k| Op::Delete(k % 60)),
        2 => (any::<u8>(), any::<u8>()).prop_map(|(a, b)| Op::DeleteRange(a % 60, b % 60)),
        1 => any::<u8>().prop_map(|p| Op::DeletePrefix(p % 6)),
        6 => prop::collection::vec((any::<u8>(), prop::option::of(any::<u16>())), 0..12)
            .prop_map(|ops| Op::Batch(ops.into_iter().map(|(k, v)| (k % 60, v)).collect())),
        15 => any::<u8>().prop_map(|k| Op::Get(k % 60)),
        6 => (any::<u8>(), any::<u8>(), any::<bool>(), any::<bool>(), any::<bool>())
            .prop_map(|(a, b, ai, bi, rev)| Op::Range(a % 60, b % 60, ai, bi, rev)),
        3 => (any::<u8>(), any::<bool>()).prop_map(|(p, rev)| Op::Prefix(p % 6, rev)),
        3 => Just(Op::TakeSnapshot),
        4 => any::<usize>().prop_map(Op::CheckSnapshot),
        3 => Just(Op::Flush),
        1 => Just(Op::Compact),
        2 => Just(Op::Reopen),
        2 => Just(Op::CrashReopen),
    ]
}

fn options(background: bool) -> Options {
    // A tiny memtable and tiny levels so switches, flushes and compactions at every level
    // (including trivial moves and tombstone dropping at the bottom) happen inside short runs.
    Options {
        level0_compaction_trigger: 2,
        max_bytes_for_level_base: 4096,
        max_bytes_for_level_multiplier: 2,
        target_file_size: 1024,
        ..Options::default()
    }
    .with_write_buffer_size(2048)
    .with_background_flush(background)
    .with_block_size(256)
}

fn collect(
    it: impl Iterator<Item = strata::Result<(bytes::Bytes, bytes::Bytes)>>,
) -> Vec<(Vec<u8>, Vec<u8>)> {
    it.map(|r| r.map(|(k, v)| (k.to_vec(), v.to_vec())).unwrap())
        .collect()
}

fn bound(k: Vec<u8>, inclusive: bool) -> Bound<Vec<u8>> {
    if inclusive {
        Bound::Included(k)
    } else {
        Bound::Excluded(k)
    }
}

fn check_all(db: &Db, model: &Model) {
    let got = collect(db.iter());
    let want: Vec<_> = model.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
    assert_eq!(got, want, "full scan differs from the model");
    let mut back = collect(db.iter().rev());
    back.reverse();
    assert_eq!(back, want, "reverse scan differs from the model");
}

fn run(ops: Vec<Op>, background: bool) {
    let root = tempfile::tempdir().unwrap();
    let mut generation = 0;
    let mut dir: PathBuf = root.path().join("g0");
    let mut db = Db::open_with(&dir, options(background)).unwrap();
    let mut model = Model::new();
    let mut snapshots: Vec<(strata::db::Snapshot, Model)> = Vec::new();

    for op in ops {
        match op {
            Op::Put(k, v) => {
                db.put(key(k), value(v)).unwrap();
                model.insert(key(k), value(v));
            }
            Op::Delete(k) => {
                db.delete(key(k)).unwrap();
                model.remove(&key(k));
            }
            Op::DeleteRange(a, b) => {
                let (start, end) = (key(a), key(b));
                if start < end {
                    db.delete_range(&start, &end).unwrap();
                    model.retain(|k, _| *k < start || *k >= end);
                } else {
                    assert!(
                        db.delete_range(&start, &end).is_err(),
                        "an empty range is refused"
                    );
                }
            }
            Op::DeletePrefix(p) => {
                let prefix = format!("k{p}").into_bytes();
                db.delete_prefix(&prefix).unwrap();
                model.retain(|k, _| !k.starts_with(&prefix));
            }
            Op::Batch(ops) => {
                let mut b = WriteBatch::new();
                for (k, v) in &ops {
                    match v {
                        Some(v) => {
                            b.put(key(*k), value(*v));
                            model.insert(key(*k), value(*v));
                        }
                        None => {
                            b.delete(key(*k));
                            model.remove(&key(*k));
                        }
                    }
                }
                db.write(b).unwrap();
            }
            Op::Get(k) => {
                assert_eq!(
                    db.get(key(k)).unwrap().map(|v| v.to_vec()),
                    model.get(&key(k)).cloned()
                );
            }
            Op::Range(a, b, ai, bi, rev) => {
                let (lo, hi) = (bound(key(a), ai), bound(key(b), bi));
                let valid = match (&lo, &hi) {
                    (
                        Bound::Included(x) | Bound::Excluded(x),
                        Bound::Included(y) | Bound::Excluded(y),
                    ) => x < y || (x == y && ai && bi),
                    _ => true,
                };
                let want: Vec<_> = if valid {
                    model
                        .range((lo.clone(), hi.clone()))
                        .map(|(k, v)| (k.clone(), v.clone()))
                        .collect()
                } else {
                    Vec::new()
                };
                let it = db.range::<Vec<u8>, _>((lo, hi));
                let mut got = if rev { collect(it.rev()) } else { collect(it) };
                if rev {
                    got.reverse();
                }
                assert_eq!(got, want);
            }
            Op::Prefix(p, rev) => {
                let prefix = format!("k{p}").into_bytes();
                let want: Vec<_> = model
                    .iter()
                    .filter(|(k, _)| k.starts_with(&prefix))
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect();
                let mut got = if rev {
                    collect(db.prefix(&prefix).rev())
                } else {
                    collect(db.prefix(&prefix))
                };
                if rev {
                    got.reverse();
                }
                assert_eq!(got, want);
            }
            Op::TakeSnapshot => snapshots.push((db.snapshot(), model.clone())),
            Op::CheckSnapshot(i) => {
                if !snapshots.is_empty() {
                    let (snap, frozen) = &snapshots[i % snapshots.len()];
                    let got = collect(snap.iter());
                    let want: Vec<_> = frozen.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
                    assert_eq!(got, want, "a snapshot changed");
                    for k in 0..60 {
                        assert_eq!(
                            snap.get(key(k)).unwrap().map(|v| v.to_vec()),
                            frozen.get(&key(k)).cloned()
                        );
                    }
                }
            }
            Op::Flush => db.flush().unwrap(),
            Op::Compact => db.compact().unwrap(),
            Op::Reopen => {
                snapshots.clear();
                db.close().unwrap();
                db = Db::open_with(&dir, options(background)).unwrap();
                check_all(&db, &model);
            }
            Op::CrashReopen if background => {
                // A copy taken while the flush thread deletes files is not a state any crash
                // could leave; the kill tests cover crashes with background work running.
                snapshots.clear();
                db.close().unwrap();
                db = Db::open_with(&dir, options(background)).unwrap();
                check_all(&db, &model);
            }
            Op::CrashReopen => {
                // Every write was fsynced and nothing runs in the background: a copy of the
                // open directory is exactly what a crash would leave.
                snapshots.clear();
                generation += 1;
                let next = root.path().join(format!("g{generation}"));
                common::copy_db_dir(&dir, &next);
                drop(db);
                dir = next;
                db = Db::open_with(&dir, options(background)).unwrap();
                check_all(&db, &model);
            }
        }
    }
    check_all(&db, &model);
    drop(snapshots);
    db.verify().unwrap();
    db.close().unwrap();
    let _ = Path::new(&dir);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, max_shrink_iters: 2000, ..ProptestConfig::default() })]

    #[test]
    fn model_matches_btreemap_with_inline_flushes(ops in prop::collection::vec(op(), 1..120)) {
        run(ops, false);
    }

    #[test]
    fn model_matches_btreemap_with_background_flushes(ops in prop::collection::vec(op(), 1..120)) {
        run(ops, true);
    }
}

/// The proptest generator for `seed`.
fn rng_for(seed: u64) -> proptest::test_runner::TestRng {
    let mut bytes = [0u8; 32];
    bytes[..8].copy_from_slice(&seed.to_le_bytes());
    proptest::test_runner::TestRng::from_seed(proptest::test_runner::RngAlgorithm::ChaCha, &bytes)
}

#[test]
fn model_matches_btreemap_with_fresh_seeds_in_long_mode() {
    // Outside long mode this runs nothing, unless STRATA_MODEL_SEED asks for a replay.
    let replay: Vec<u64> = std::env::var("STRATA_MODEL_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .into_iter()
        .collect();
    let torture = common::torture::Torture::new("model proptest", replay);
    for seed in torture.seeds() {
        for background in [false, true] {
            let config = ProptestConfig {
                cases: 16,
                max_shrink_iters: 2000,
                failure_persistence: None,
                ..ProptestConfig::default()
            };
            let mut runner = proptest::test_runner::TestRunner::new_with_rng(config, rng_for(seed));
            let result = runner.run(&prop::collection::vec(op(), 1..120), |ops| {
                run(ops, background);
                Ok(())
            });
            if let Err(e) = result {
                torture.failure(
                    seed,
                    format!("STRATA_MODEL_SEED={seed}"),
                    format!("background flushes {background}: {e}"),
                );
            }
        }
        torture.progress(seed, "16 cases with inline and 16 with background flushes");
    }
    torture.finish();
}
