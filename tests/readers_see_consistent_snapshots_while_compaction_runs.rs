//! Writers move money between accounts in atomic batches while flushes, compactions (split
//! into parallel subcompactions) and table-cache evictions run underneath; every reader view,
//! an iterator, a snapshot, or a scan in reverse, must see every group's total unchanged:
//! a view that mixed two points in time, or saw half a batch, would not add up.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use rand::{Rng, SeedableRng};
use strata::{Db, Durability, Options, WriteBatch};

const GROUPS: u64 = 2;
const ACCOUNTS: u64 = 50;
const START: i64 = 1_000;

fn key(group: u64, account: u64) -> String {
    format!("g{group}-acct{account:03}")
}

fn options() -> Options {
    Options {
        level0_compaction_trigger: 2,
        max_bytes_for_level_base: 64 << 10,
        max_bytes_for_level_multiplier: 4,
        target_file_size: 8 << 10,
        ..Options::default()
    }
    .with_write_buffer_size(16 << 10)
    .with_block_size(512)
    .with_durability(Durability::NoSync)
    .with_max_subcompactions(3)
    .with_max_open_tables(3)
}

/// Per-group totals of a view given as (key, balance) pairs; padding keys are skipped.
fn totals<'a>(entries: impl Iterator<Item = (&'a [u8], i64)>) -> Vec<i64> {
    let mut sums = vec![0i64; GROUPS as usize];
    let mut seen = 0;
    for (k, balance) in entries {
        let k = std::str::from_utf8(k).unwrap();
        let group: usize = k[1..2].parse().unwrap();
        sums[group] += balance;
        seen += 1;
    }
    assert_eq!(seen, GROUPS * ACCOUNTS, "every account is always present");
    sums
}

fn balance(v: &[u8]) -> i64 {
    std::str::from_utf8(v).unwrap().parse().unwrap()
}

#[test]
fn transfers_keep_every_total_in_every_view_while_compaction_runs() {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open_with(dir.path(), options()).unwrap();
    let mut init = WriteBatch::new();
    for g in 0..GROUPS {
        for a in 0..ACCOUNTS {
            init.put(key(g, a), START.to_string());
        }
    }
    db.write(init).unwrap();
    let expected = vec![START * ACCOUNTS as i64; GROUPS as usize];
    let stop = AtomicBool::new(false);
    let views = AtomicU64::new(0);

    std::thread::scope(|s| {
        // One writer per group: it owns its accounts, so it knows their balances.
        for g in 0..GROUPS {
            let db = db.clone();
            let stop = &stop;
            s.spawn(move || {
                let mut rng = rand::rngs::StdRng::seed_from_u64(g);
                let mut balances = vec![START; ACCOUNTS as usize];
                for i in 0..6_000u64 {
                    let from = rng.random_range(0..ACCOUNTS) as usize;
                    let to = rng.random_range(0..ACCOUNTS) as usize;
                    let amount = rng.random_range(0..100);
                    balances[from] -= amount;
                    balances[to] += amount;
                    let mut b = WriteBatch::new();
                    b.put(key(g, from as u64), balances[from].to_string())
                        .put(key(g, to as u64), balances[to].to_string())
                        // Padding outside the accounts' key range, so tables fill and roll.
                        .put(format!("pad{g}-{i:06}"), "x".repeat(60));
                    db.write(b).unwrap();
                }
                stop.store(true, Ordering::Release);
            });
        }
        for r in 0..2u64 {
            let db = db.clone();
            let (stop, views, expected) = (&stop, &views, &expected);
            s.spawn(move || {
                let mut round = 0u64;
                while !stop.load(Ordering::Acquire) || round < 5 {
                    round += 1;
                    fn accounts(
                        it: impl Iterator<Item = strata::Result<(bytes::Bytes, bytes::Bytes)>>,
                    ) -> Vec<(Vec<u8>, i64)> {
                        it.map(|e| e.unwrap())
                            .map(|(k, v)| (k.to_vec(), balance(&v)))
                            .collect()
                    }
                    // Forward or backward over the live view.
                    let view = if (round + r).is_multiple_of(2) {
                        accounts(db.prefix("g"))
                    } else {
                        let mut v = accounts(db.prefix("g").rev());
                        v.reverse();
                        v
                    };
                    assert_eq!(
                        totals(view.iter().map(|(k, b)| (k.as_slice(), *b))),
                        *expected,
                        "an iterator saw a mixed view"
                    );
                    // A snapshot: point reads and a scan in it agree, and add up.
                    let snap = db.snapshot();
                    let scanned = accounts(snap.prefix("g"));
                    for (k, b) in scanned.iter().step_by(7) {
                        let got = snap.get(k).unwrap().map(|v| balance(&v));
                        assert_eq!(got, Some(*b), "a snapshot read disagrees with its scan");
                    }
                    assert_eq!(
                        totals(scanned.iter().map(|(k, b)| (k.as_slice(), *b))),
                        *expected,
                        "a snapshot saw a mixed view"
                    );
                    views.fetch_add(2, Ordering::Relaxed);
                }
            });
        }
    });

    let stats = db.stats();
    assert!(stats.compactions > 0, "no compaction ran:\n{stats}");
    assert!(
        stats.table_cache.evictions > 0,
        "no table was closed:\n{stats}"
    );
    assert!(views.load(Ordering::Relaxed) >= 20);
    db.verify().unwrap();
    db.close().unwrap();
    let db = Db::open_with(dir.path(), options()).unwrap();
    let all: Vec<_> = db.prefix("g").map(|e| e.unwrap()).collect();
    assert_eq!(
        totals(all.iter().map(|(k, v)| (&k[..], balance(v)))),
        expected
    );
    db.close().unwrap();
}
