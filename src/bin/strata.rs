//! The `strata` command line: a demo, a db_bench-style benchmark, verification, and the
//! writer process that the crash tests kill.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::{Parser, Subcommand};
use rand::{Rng, SeedableRng};
use strata::batch::WriteBatch;
use strata::db::Db;
use strata::{Durability, Options};

#[derive(Parser)]
#[command(
    name = "strata",
    version,
    about = "Strata: an embedded LSM key-value store"
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Run a short key-value example on a data directory (the default command).
    Demo {
        /// Data directory.
        #[arg(long, default_value = "strata-data")]
        dir: PathBuf,
    },
    /// db_bench-style benchmark: fillseq, fillrandom, readrandom, readmissing, readseq, ...
    Bench {
        /// Number of keys.
        #[arg(long, default_value_t = 1_000_000)]
        num: u64,
        /// Comma-separated workloads.
        #[arg(
            long,
            default_value = "fillseq,fillrandom,overwrite,readrandom,readmissing,readseq,readreverse,seekrandom,fillsync"
        )]
        benchmarks: String,
        /// Directory for the benchmark databases (a fresh temporary directory if absent).
        #[arg(long)]
        dir: Option<PathBuf>,
        /// Value size in bytes.
        #[arg(long, default_value_t = 100)]
        value_size: usize,
        /// Writes for fillsync (each fsynced).
        #[arg(long, default_value_t = 10_000)]
        sync_num: u64,
    },
    /// Check every checksum of a database.
    Verify { dir: PathBuf },
    /// Print the database's statistics.
    Stats { dir: PathBuf },
    /// Write keys forever, printing each key once its write is acknowledged. The crash tests
    /// run this and kill it with SIGKILL.
    ///
    /// Writer thread `t` writes keys `w{t}-key{i:012}` (i = 0, 1, 2, ... in batches) with the
    /// value `value-{t}-{i}-` followed by `i % 200` x's, and prints `{t} {i}` once the write of
    /// key `i` returned, followed by ` sync` if that write was fsynced.
    WriteLoop {
        dir: PathBuf,
        /// fsync each write (otherwise writes stop at the OS page cache).
        #[arg(long)]
        sync: bool,
        /// fsync every N-th batch of each thread (the others are not synced); overrides --sync.
        #[arg(long, default_value_t = 0)]
        sync_every: u64,
        /// Small memtable, so flushes happen while the process is killed.
        #[arg(long, default_value_t = 256 * 1024)]
        write_buffer_size: usize,
        /// Tiny level sizes and a level-0 trigger of 2, so compactions run (and get killed) all
        /// the time.
        #[arg(long)]
        small_tree: bool,
        /// Write batches of this many keys.
        #[arg(long, default_value_t = 1)]
        batch: u64,
        /// Writer threads (sharing one database: group commit).
        #[arg(long, default_value_t = 1)]
        threads: u64,
        /// The first key of each writer thread (comma-separated, thread 0 first; threads not
        /// named start at 0): a restarted writer goes on after the keys that survived.
        #[arg(long, value_delimiter = ',')]
        first_key: Vec<u64>,
        /// Stop after this many keys per thread (0 = forever).
        #[arg(long, default_value_t = 0)]
        limit: u64,
        /// Hold appended bytes in memory until fsync (`HoldUnsyncedFs`), so a SIGKILL loses
        /// exactly what a power cut would lose of file data.
        #[arg(long)]
        power_cut: bool,
    },
}

fn main() -> ExitCode {
    // Engine events (recovery progress, damaged tails, poisoning) go to stderr; RUST_LOG
    // chooses how much, e.g. RUST_LOG=strata=debug for every flush and compaction.
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("strata=warn")),
        )
        .init();
    let cli = Cli::parse();
    let result = match cli.command.unwrap_or(Command::Demo {
        dir: PathBuf::from("strata-data"),
    }) {
        Command::Demo { dir } => demo(&dir),
        Command::Bench {
            num,
            benchmarks,
            dir,
            value_size,
            sync_num,
        } => bench(num, &benchmarks, dir, value_size, sync_num),
        Command::Verify { dir } => {
            Db::open_with(&dir, Options::default().with_create_if_missing(false)).and_then(|db| {
                db.verify()?;
                println!("{}: every checksum verified", dir.display());
                db.close()
            })
        }
        Command::Stats { dir } => {
            Db::open_with(&dir, Options::default().with_create_if_missing(false)).and_then(|db| {
                println!("{}", db.stats());
                db.close()
            })
        }
        Command::WriteLoop {
            dir,
            sync,
            sync_every,
            write_buffer_size,
            small_tree,
            batch,
            threads,
            first_key,
            limit,
            power_cut,
        } => write_loop(
            &dir,
            WriteLoop {
                sync_every: if sync_every > 0 {
                    sync_every
                } else if sync {
                    1
                } else {
                    0
                },
                write_buffer_size,
                small_tree,
                batch: batch.max(1),
                threads: threads.max(1),
                first_key,
                limit,
                power_cut,
            },
        ),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("strata: {e}");
            ExitCode::FAILURE
        }
    }
}

fn demo(dir: &Path) -> strata::Result<()> {
    println!("Strata demo on {}", dir.display());
    let db = Db::open(dir)?;
    let runs = db
        .get("demo:runs")?
        .map(|v| String::from_utf8_lossy(&v).parse::<u64>().unwrap_or(0))
        .unwrap_or(0);
    println!("this directory has run the demo {runs} time(s) before");

    let mut batch = WriteBatch::new();
    batch
        .put("user:1", "alice")
        .put("user:2", "bob")
        .put("user:3", "carol")
        .put("post:1", "hello, world");
    batch.put("demo:runs", (runs + 1).to_string());
    db.write(batch)?;
    println!("wrote 3 users and 1 post in one atomic batch (fsynced)");

    let snapshot = db.snapshot();
    db.delete("user:2")?;
    println!("deleted user:2; get -> {:?}", db.get("user:2")?);
    println!(
        "the snapshot taken before still sees user:2 = {:?}",
        snapshot.get("user:2")?.map(|v| v.to_vec())
    );
    drop(snapshot);

    print!("users, in order:");
    for item in db.prefix("user:") {
        let (k, v) = item?;
        print!(
            " {}={}",
            String::from_utf8_lossy(&k),
            String::from_utf8_lossy(&v)
        );
    }
    println!();
    print!("users, reversed:");
    for item in db.prefix("user:").rev() {
        let (k, _) = item?;
        print!(" {}", String::from_utf8_lossy(&k));
    }
    println!();

    let start = Instant::now();
    let mut batch = WriteBatch::new();
    for i in 0..100_000u32 {
        batch.put(format!("bulk:{i:08}"), i.to_le_bytes());
        if batch.len() == 1000 {
            db.write(std::mem::take(&mut batch))?;
        }
    }
    db.flush()?;
    println!(
        "wrote 100,000 keys in batches of 1,000 and flushed in {:.0?}",
        start.elapsed()
    );
    let count = db.prefix("bulk:").count();
    println!("scan counts {count} bulk keys");
    db.verify()?;
    println!("verify: every checksum ok\n\n{}", db.stats());
    db.close()?;
    println!("\nclosed cleanly; run again to see the data persist");
    Ok(())
}

/// What `write-loop` does (see `Command::WriteLoop`).
struct WriteLoop {
    /// fsync every this many batches (1: all, 0: none).
    sync_every: u64,
    write_buffer_size: usize,
    small_tree: bool,
    batch: u64,
    threads: u64,
    first_key: Vec<u64>,
    limit: u64,
    power_cut: bool,
}

fn write_loop(dir: &Path, w: WriteLoop) -> strata::Result<()> {
    let mut opts = Options::default()
        .with_durability(Durability::NoSync)
        .with_write_buffer_size(w.write_buffer_size);
    if w.small_tree {
        opts.level0_compaction_trigger = 2;
        opts.max_bytes_for_level_base = 64 << 10;
        opts.max_bytes_for_level_multiplier = 4;
        opts.target_file_size = 32 << 10;
        opts = opts.with_block_size(1024);
    }
    if w.power_cut {
        opts = opts.with_fs(std::sync::Arc::new(strata::fs::HoldUnsyncedFs::new()));
    }
    let db = Db::open_with(dir, opts)?;
    // Set when a writer fails, so the others stop too and the error is reported.
    let failed = std::sync::atomic::AtomicBool::new(false);
    let result = std::thread::scope(|scope| {
        let writers: Vec<_> = (0..w.threads)
            .map(|t| {
                let (db, w, failed) = (&db, &w, &failed);
                scope.spawn(move || {
                    let result = write_keys(db, t, w, failed);
                    if result.is_err() {
                        failed.store(true, std::sync::atomic::Ordering::Relaxed);
                    }
                    result
                })
            })
            .collect();
        writers
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
            })
            .collect::<strata::Result<Vec<()>>>()
    });
    result?;
    db.close()
}

/// One writer thread of `write-loop`.
fn write_keys(
    db: &Db,
    t: u64,
    w: &WriteLoop,
    failed: &std::sync::atomic::AtomicBool,
) -> strata::Result<()> {
    let first = w.first_key.get(t as usize).copied().unwrap_or(0);
    let mut i = first;
    let mut batches = 0u64;
    loop {
        let mut b = WriteBatch::new();
        for j in i..i + w.batch {
            b.put(
                format!("w{t}-key{j:012}"),
                format!("value-{t}-{j}-{}", "x".repeat((j % 200) as usize)),
            );
        }
        let sync = w.sync_every > 0 && batches % w.sync_every == w.sync_every - 1;
        let opts = if sync {
            strata::WriteOptions::sync()
        } else {
            strata::WriteOptions::no_sync()
        };
        db.write_opt(b, opts)?;
        // The keys are printed only after the write returned: they are acknowledged.
        let mut out = std::io::stdout().lock();
        for j in i..i + w.batch {
            let _ = writeln!(out, "{t} {j}{}", if sync { " sync" } else { "" });
        }
        let _ = out.flush();
        drop(out);
        i += w.batch;
        batches += 1;
        if (w.limit > 0 && i - first >= w.limit)
            || failed.load(std::sync::atomic::Ordering::Relaxed)
        {
            return Ok(());
        }
    }
}

/// Keys are 16 decimal digits, so a benchmark has at most this many.
const MAX_BENCH_KEYS: u64 = 10_000_000_000_000_000;

/// `n` (below [`MAX_BENCH_KEYS`]) as 16 zero-padded decimal digits, written without formatting machinery (the read
/// workloads call this inside their timed loops).
fn key_of(n: u64) -> [u8; 16] {
    let mut k = [b'0'; 16];
    let mut rest = n;
    for digit in k.iter_mut().rev() {
        *digit = b'0' + (rest % 10) as u8;
        rest /= 10;
    }
    k
}

struct Bench {
    dir: PathBuf,
    value_size: usize,
    rng: rand::rngs::StdRng,
}

impl Bench {
    fn value(&mut self) -> Vec<u8> {
        let mut v = vec![0u8; self.value_size];
        self.rng.fill(&mut v[..]);
        v
    }

    fn fresh(&self, name: &str) -> strata::Result<(Db, PathBuf)> {
        let path = self.dir.join(name);
        let _ = std::fs::remove_dir_all(&path);
        let db = Db::open_with(
            &path,
            Options::default().with_durability(Durability::NoSync),
        )?;
        Ok((db, path))
    }

    fn fill(&mut self, db: &Db, order: &[u64]) -> strata::Result<()> {
        for &n in order {
            let v = self.value();
            db.put(key_of(n), v)?;
        }
        Ok(())
    }
}

fn report(name: &str, ops: u64, elapsed: Duration, note: &str) {
    let secs = elapsed.as_secs_f64();
    println!(
        "{name:<14} {:>12.0} ops/s  {:>9.3} micros/op  {ops:>9} ops in {secs:.2}s {note}",
        ops as f64 / secs,
        secs * 1e6 / ops as f64
    );
}

/// Print the database's stats after a workload when `STRATA_BENCH_STATS` is set.
fn print_stats_if_asked(db: &Db) {
    if std::env::var_os("STRATA_BENCH_STATS").is_some() {
        println!("{}", db.stats());
    }
}

fn bench(
    num: u64,
    benchmarks: &str,
    dir: Option<PathBuf>,
    value_size: usize,
    sync_num: u64,
) -> strata::Result<()> {
    if num.max(sync_num) > MAX_BENCH_KEYS {
        return Err(strata::Error::InvalidArgument(format!(
            "at most {MAX_BENCH_KEYS} keys (16 decimal digits)"
        )));
    }
    let (dir, remove_dir_after) = match dir {
        Some(d) => (d, false),
        None => (
            std::env::temp_dir().join(format!("strata-bench-{}", std::process::id())),
            true,
        ),
    };
    std::fs::create_dir_all(&dir)
        .map_err(|e| strata::Error::io("creating the bench directory", e))?;
    let mut b = Bench {
        dir: dir.clone(),
        value_size,
        rng: rand::rngs::StdRng::seed_from_u64(301),
    };
    println!(
        "Strata bench: {num} keys of 16 bytes, values of {value_size} bytes, in {}",
        dir.display()
    );
    let mut random_order: Vec<u64> = (0..num).collect();
    {
        use rand::seq::SliceRandom;
        random_order.shuffle(&mut b.rng);
    }
    let mut filled: Option<PathBuf> = None;
    for name in benchmarks
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
    {
        match name {
            "fillseq" | "fillrandom" => {
                let (db, path) = b.fresh(name)?;
                let order: Vec<u64> = if name == "fillseq" {
                    (0..num).collect()
                } else {
                    random_order.clone()
                };
                let start = Instant::now();
                b.fill(&db, &order)?;
                db.flush()?;
                report(
                    name,
                    num,
                    start.elapsed(),
                    "(no fsync; includes the final flush)",
                );
                print_stats_if_asked(&db);
                db.close()?;
                if name == "fillrandom" || filled.is_none() {
                    filled = Some(path);
                }
            }
            "overwrite" => {
                let path = filled.clone().ok_or_else(|| {
                    strata::Error::InvalidArgument("overwrite needs a fill first".into())
                })?;
                let db = Db::open_with(
                    &path,
                    Options::default().with_durability(Durability::NoSync),
                )?;
                let start = Instant::now();
                b.fill(&db, &random_order.clone())?;
                db.flush()?;
                report(name, num, start.elapsed(), "");
                print_stats_if_asked(&db);
                db.close()?;
            }
            "fillsync" => {
                let (db, _) = b.fresh(name)?;
                let start = Instant::now();
                for n in 0..sync_num {
                    let v = b.value();
                    db.write_opt(
                        {
                            let mut w = WriteBatch::new();
                            w.put(key_of(n), v);
                            w
                        },
                        strata::WriteOptions::sync(),
                    )?;
                }
                report(
                    name,
                    sync_num,
                    start.elapsed(),
                    "(fsync per write, 1 thread)",
                );
                db.close()?;
            }
            "readrandom" | "readmissing" | "readseq" | "readreverse" | "seekrandom" => {
                let path = filled.clone().ok_or_else(|| {
                    strata::Error::InvalidArgument(format!("{name} needs a fill first"))
                })?;
                let db = Db::open(&path)?;
                let start = Instant::now();
                let mut found = 0u64;
                match name {
                    "readrandom" => {
                        for &n in &random_order {
                            found += u64::from(db.get(key_of(n))?.is_some());
                        }
                    }
                    "readmissing" => {
                        let mut k = [0u8; 17];
                        k[16] = b'.';
                        for &n in &random_order {
                            k[..16].copy_from_slice(&key_of(n));
                            found += u64::from(db.get(k)?.is_none());
                        }
                    }
                    "seekrandom" => {
                        // Seek, then read the entry found and the next 10 (db_bench's
                        // seekrandom with --seek_nexts=10).
                        for &n in &random_order {
                            for item in db.range(key_of(n).to_vec()..).take(11) {
                                item?;
                            }
                            found += 1;
                        }
                    }
                    "readseq" => {
                        for item in db.iter() {
                            item?;
                            found += 1;
                        }
                    }
                    _ => {
                        for item in db.iter().rev() {
                            item?;
                            found += 1;
                        }
                    }
                }
                report(
                    name,
                    num,
                    start.elapsed(),
                    &format!("({found} of {num} as expected)"),
                );
                print_stats_if_asked(&db);
                db.close()?;
            }
            other => println!("unknown benchmark {other}, skipped"),
        }
    }
    for name in ["fillseq", "fillrandom", "fillsync"] {
        let _ = std::fs::remove_dir_all(dir.join(name));
    }
    if remove_dir_after {
        let _ = std::fs::remove_dir_all(&dir);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bench_keys_are_sixteen_zero_padded_digits() {
        for n in [0, 7, 1234, 9_999_999_999_999_999, 4_000_000_000_000_001] {
            assert_eq!(&key_of(n), format!("{n:016}").as_bytes(), "key of {n}");
        }
    }
}
