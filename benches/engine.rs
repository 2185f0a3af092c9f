//! Micro-benchmarks of the engine's hot paths, one thread, no I/O: `cargo bench --bench engine`.
//!
//! - memtable insert and get with 500,000 entries (the size of a full 64 MiB memtable of
//!   100-byte values), random and decimal 16-byte keys, and appends in ascending order: the
//!   unsynced write path's largest cost;
//! - a point seek in a 4 KiB data block, and a point read through the whole read path of a
//!   compacted database with every block cached.
//!
//! The workload-level comparison with other engines is `benches/compare.rs` (BENCHMARKS.md).

use std::path::Path;
use std::sync::Arc;

use bytes::Bytes;
use criterion::{black_box, criterion_group, criterion_main, Criterion};
use rand::{Rng, SeedableRng};
use strata::iter::InternalIterator;
use strata::key::{internal_key, ValueKind, KIND_SEEK};
use strata::memtable::Memtable;
use strata::sstable::block::{Block, BlockBuilder};

const ENTRIES: usize = 500_000;

fn random_keys(n: usize, seed: u64) -> Vec<[u8; 16]> {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    (0..n).map(|_| rng.random()).collect()
}

/// `n` distinct keys as the side-by-side benchmark writes them: 16 decimal digits, zero-padded
/// (`0000000000123456`), in random order; keys `n..2n` as the extra ones.
fn decimal_keys(n: usize, seed: u64) -> Vec<[u8; 16]> {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let mut ids: Vec<u64> = (0..n as u64).collect();
    for i in (1..ids.len()).rev() {
        ids.swap(i, rng.random_range(0..=i));
    }
    ids.into_iter()
        .map(|id| {
            let mut k = [0u8; 16];
            k.copy_from_slice(format!("{id:016}").as_bytes());
            k
        })
        .collect()
}

fn memtable(c: &mut Criterion) {
    let value = [7u8; 100];
    let mut group = c.benchmark_group("memtable");
    group.sample_size(10);
    for (name, keys, extra) in [
        (
            "random keys",
            random_keys(ENTRIES, 1),
            random_keys(1 << 20, 2),
        ),
        (
            "decimal keys",
            {
                let all = decimal_keys(2 * ENTRIES, 1);
                all[..ENTRIES].to_vec()
            },
            decimal_keys(2 * ENTRIES, 1)[ENTRIES..].to_vec(),
        ),
    ] {
        // Each sample inserts into a fresh memtable holding ENTRIES entries (built untimed),
        // so every measured insert sees the same depth.
        group.bench_function(format!("insert (500k entries, {name})"), |b| {
            b.iter_custom(|iters| {
                let mem = Memtable::new(1);
                for (i, k) in keys.iter().enumerate() {
                    mem.insert_entry(k, i as u64 + 1, ValueKind::Value, &value);
                }
                let start = std::time::Instant::now();
                for i in 0..iters as usize {
                    let seq = (ENTRIES + 1 + i) as u64;
                    mem.insert_entry(&extra[i % extra.len()], seq, ValueKind::Value, &value);
                }
                start.elapsed()
            })
        });
        // Appends: keys above every key present, in ascending order (a bulk load, auto-increment
        // ids): each insert starts from the previous one's position.
        group.bench_function(format!("insert ascending (500k entries, {name})"), |b| {
            b.iter_custom(|iters| {
                let mem = Memtable::new(1);
                for (i, k) in keys.iter().enumerate() {
                    mem.insert_entry(k, i as u64 + 1, ValueKind::Value, &value);
                }
                let appended: Vec<[u8; 16]> = (0..iters as usize)
                    .map(|i| {
                        let mut k = [0xffu8; 16];
                        k[8..].copy_from_slice(&(i as u64).to_be_bytes());
                        k
                    })
                    .collect();
                let start = std::time::Instant::now();
                for (i, k) in appended.iter().enumerate() {
                    let seq = (ENTRIES + 1 + i) as u64;
                    mem.insert_entry(k, seq, ValueKind::Value, &value);
                }
                start.elapsed()
            })
        });
        let full = Memtable::new(1);
        for (i, k) in keys.iter().enumerate() {
            full.insert_entry(k, i as u64 + 1, ValueKind::Value, &value);
        }
        let mut i = 0usize;
        group.bench_function(format!("get hit (500k entries, {name})"), |b| {
            b.iter(|| {
                i = (i + 7919) % keys.len();
                black_box(full.get(&keys[i], u64::MAX >> 8))
            })
        });
    }
    group.finish();
}

fn block_seek(c: &mut Criterion) {
    let mut keys = random_keys(30, 3);
    keys.sort();
    let mut builder = BlockBuilder::new(16);
    let value = [9u8; 100];
    for (i, k) in keys.iter().enumerate() {
        builder.add(&internal_key(k, i as u64 + 1, 1), &value);
    }
    let data = Bytes::from(builder.finish());
    let file: Arc<Path> = Arc::from(Path::new("bench.sst"));
    let block = Arc::new(Block::new(data, file, 0).expect("a block just built decodes"));
    let targets: Vec<Vec<u8>> = keys
        .iter()
        .map(|k| internal_key(k, u64::MAX >> 8, KIND_SEEK))
        .collect();
    let mut i = 0usize;
    c.bench_function("block seek (4 KiB block, 30 entries)", |b| {
        b.iter(|| {
            i = (i + 1) % targets.len();
            let mut it = block.iter();
            it.seek(&targets[i]).expect("in-memory block");
            black_box(it.valid())
        })
    });
}

/// A point read through the whole read path (super version, memtable, bloom filters, index
/// and data blocks) of a compacted database whose blocks are all in the cache.
fn db_get(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let opts = strata::Options::default()
        .with_durability(strata::Durability::NoSync)
        .with_block_cache_capacity(256 << 20);
    let db = strata::Db::open_with(dir.path(), opts).expect("open");
    let keys = random_keys(300_000, 4);
    let value = [5u8; 100];
    for k in &keys {
        db.put(k, value).expect("put");
    }
    db.compact().expect("compact");
    for k in &keys {
        black_box(db.get(k).expect("get"));
    }
    let mut i = 0usize;
    c.bench_function("db get hit (300k keys, compacted, all cached)", |b| {
        b.iter(|| {
            i = (i + 7919) % keys.len();
            black_box(db.get(keys[i]).expect("get"))
        })
    });
    let missing = random_keys(1 << 16, 5);
    c.bench_function("db get miss (300k keys, compacted)", |b| {
        b.iter(|| {
            i = (i + 1) % missing.len();
            black_box(db.get(missing[i]).expect("get"))
        })
    });
}

criterion_group!(benches, memtable, block_seek, db_get);
criterion_main!(benches);
