//! The workloads, run inside one child process per engine (so that peak RSS and
//! `/proc/self/io` belong to that engine alone).
//!
//! A child prints machine-readable lines on stdout for the parent:
//! `@result WORKLOAD OPS SECONDS`, `@metric WORKLOAD NAME VALUE`, `@error WORKLOAD MESSAGE`,
//! and progress for people on stderr.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crate::engines::{self, Engine, R};
pub use crate::keys::KEY_LEN;
use crate::keys::{key, missing_key, Permutation, Rng};
use crate::sys;

/// Workload names, in the order a child runs them (db_bench names; `fillsync8` is fillsync
/// with 8 threads).
pub const WORKLOADS: &[&str] = &[
    "fillseq",
    "fillrandom",
    "overwrite",
    "fillsync",
    "fillsync8",
    "fillbatch",
    "readrandom",
    "readmissing",
    "readseq",
    "seekrandom",
    "readwhilewriting",
    "deleterandom",
];

/// What a row of the results table means.
pub fn describe(workload: &str) -> &'static str {
    match workload {
        "fillseq" => "fillseq",
        "fillrandom" => "fillrandom",
        "overwrite" => "overwrite",
        "fillsync" => "fillsync (1 thread, fsync each)",
        "fillsync8" => "fillsync (8 threads, fsync each)",
        "fillbatch" => "fillbatch (1,000 per batch, per put)",
        "readrandom" => "readrandom",
        "readmissing" => "readmissing",
        "readseq" => "readseq (entries/s)",
        "seekrandom" => "seekrandom (+10 next)",
        "readwhilewriting" => "readwhilewriting (reads/s)",
        "deleterandom" => "deleterandom",
        _ => "?",
    }
}

/// Entries read after each seek in seekrandom.
pub const SEEK_NEXTS: usize = 10;
/// How long a database's directory must stay unchanged to count as settled (`--settle`).
const SETTLED_AFTER: Duration = Duration::from_secs(5);
/// The longest `--settle` waits.
const SETTLE_LIMIT: Duration = Duration::from_secs(900);
/// Threads of fillsync8.
pub const SYNC_THREADS: usize = 8;

/// The sizes of a run; the same for every engine.
#[derive(Clone, Debug)]
pub struct Params {
    pub num: u64,
    pub reads: u64,
    pub value_size: usize,
    pub sync_num: u64,
    pub batch_size: usize,
    pub rww_threads: usize,
    /// Measure the overwritten database again once the engine's background work is done.
    pub settle: bool,
}

/// Random, incompressible values: slices of a 1 MiB random buffer (as db_bench does), so
/// producing a value costs nothing measurable.
pub struct Values {
    buf: Vec<u8>,
    size: usize,
}

const VALUE_POOL: usize = 1 << 20;

impl Values {
    pub fn new(size: usize) -> Values {
        let mut rng = Rng::new(0x5eed);
        let mut buf = Vec::with_capacity(VALUE_POOL + size + 8);
        while buf.len() < VALUE_POOL + size {
            buf.extend_from_slice(&rng.next_u64().to_le_bytes());
        }
        Values { buf, size }
    }
    /// Value for operation `i` of a workload salted with `salt`.
    pub fn get(&self, i: u64, salt: u64) -> &[u8] {
        let off = (i
            .wrapping_mul(7919)
            .wrapping_add(salt.wrapping_mul(104_729))
            % VALUE_POOL as u64) as usize;
        &self.buf[off..off + self.size]
    }
}

fn emit(line: std::fmt::Arguments<'_>) {
    let mut out = std::io::stdout().lock();
    let _ = out.write_fmt(line);
    let _ = out.write_all(b"\n");
    let _ = out.flush();
}

fn result(workload: &str, ops: u64, secs: f64) {
    emit(format_args!("@result {workload} {ops} {secs:.6}"));
}

fn metric(workload: &str, name: &str, value: f64) {
    emit(format_args!("@metric {workload} {name} {value}"));
}

/// One engine's run of the selected workloads.
struct Child<'a> {
    engine: &'a str,
    p: &'a Params,
    base: PathBuf,
    values: Values,
    /// The database that fillrandom/overwrite/reads/deleterandom share.
    main: Option<Box<dyn Engine>>,
    main_filled: bool,
    peak_rss: u64,
}

/// Run `workloads` (any order; they run in [`WORKLOADS`] order) for `engine` in `base`.
/// Returns the number of workloads that failed.
pub fn run_child(engine: &str, p: &Params, base: &Path, workloads: &[String]) -> usize {
    let mut c = Child {
        engine,
        p,
        base: base.to_path_buf(),
        values: Values::new(p.value_size),
        main: None,
        main_filled: false,
        peak_rss: 0,
    };
    // The harness's own memory before any engine opens (its code and value pool; key orders
    // are computed, not stored), so the report can show the engine's share.
    metric("_process", "rss_harness_bytes", sys::current_rss() as f64);
    if let Err(e) = std::fs::create_dir_all(base) {
        emit(format_args!(
            "@error _setup creating {}: {e}",
            base.display()
        ));
        return 1;
    }
    let mut failed = 0;
    for w in WORKLOADS
        .iter()
        .filter(|w| workloads.iter().any(|x| x == *w))
    {
        sys::reset_peak_rss();
        eprintln!("[{engine}] {w} ...");
        let t0 = Instant::now();
        let out = c.run(w);
        let peak = sys::peak_rss();
        c.peak_rss = c.peak_rss.max(peak);
        metric(w, "rss_peak_bytes", peak as f64);
        match out {
            Ok(()) => eprintln!("[{engine}] {w} done in {:.1?}", t0.elapsed()),
            Err(e) => {
                failed += 1;
                let msg = e.to_string().replace('\n', " ");
                emit(format_args!("@error {w} {msg}"));
                eprintln!("[{engine}] {w} FAILED: {msg}");
                // Start the next workload from a clean state.
                if let Some(db) = c.main.take() {
                    let _ = db.close();
                }
                c.main_filled = false;
            }
        }
    }
    if let Some(db) = c.main.take() {
        if let Err(e) = db.close() {
            emit(format_args!("@error _close {e}"));
            failed += 1;
        }
    }
    metric("_process", "rss_peak_bytes", c.peak_rss as f64);
    let _ = std::fs::remove_dir_all(base);
    failed
}

/// Measurements around a write workload: /proc/self/io from before open to after close.
struct WriteProbe {
    io: sys::Io,
}

impl WriteProbe {
    fn start() -> WriteProbe {
        WriteProbe { io: sys::io() }
    }
    fn finish(self, workload: &str, dir: &Path, user_bytes: u64) {
        let io = sys::io();
        let raw = io.write_bytes.saturating_sub(self.io.write_bytes);
        let cancelled = io
            .cancelled_write_bytes
            .saturating_sub(self.io.cancelled_write_bytes);
        let (allocated, apparent) = sys::dir_size(dir);
        metric(workload, "write_bytes_raw", raw as f64);
        metric(
            workload,
            "write_bytes",
            raw.saturating_sub(cancelled) as f64,
        );
        metric(workload, "user_bytes", user_bytes as f64);
        metric(workload, "size_bytes", allocated as f64);
        metric(workload, "apparent_bytes", apparent as f64);
    }
}

impl Child<'_> {
    fn main_dir(&self) -> PathBuf {
        self.base.join("main")
    }

    fn user_bytes(&self, ops: u64) -> u64 {
        ops * (KEY_LEN + self.p.value_size) as u64
    }

    fn run(&mut self, w: &str) -> R<()> {
        let p = self.p;
        match w {
            "fillseq" => {
                let dir = self.base.join("fillseq");
                let values = &self.values;
                self.write_workload(w, &dir, true, p.num, |db| {
                    for i in 0..p.num {
                        db.put(&key(i), values.get(i, 1))?;
                    }
                    Ok(())
                })?;
                std::fs::remove_dir_all(&dir)?;
            }
            "fillrandom" => self.fill_main(w)?,
            "overwrite" => {
                self.ensure_filled()?;
                self.close_main()?;
                let values = &self.values;
                let dir = self.main_dir();
                self.write_workload(w, &dir, false, p.num, |db| {
                    for (j, i) in Permutation::new(p.num, 2).enumerate() {
                        db.put(&key(i), values.get(j as u64, 2))?;
                    }
                    Ok(())
                })?;
                if p.settle {
                    self.settle(&dir)?;
                }
            }
            "fillsync" | "fillsync8" => {
                let threads = if w == "fillsync" { 1 } else { SYNC_THREADS };
                let per = (p.sync_num / threads as u64).max(1);
                let dir = self.base.join(w);
                let values = &self.values;
                self.write_workload(w, &dir, true, per * threads as u64, |db| {
                    std::thread::scope(|s| {
                        let handles: Vec<_> = (0..threads as u64)
                            .map(|t| {
                                s.spawn(move || -> R<()> {
                                    for j in 0..per {
                                        let n = t * per + j;
                                        db.put_sync(&key(n), values.get(n, 3))?;
                                    }
                                    Ok(())
                                })
                            })
                            .collect();
                        handles
                            .into_iter()
                            .try_for_each(|h| h.join().map_err(|_| "writer thread panicked")?)
                    })
                })?;
                std::fs::remove_dir_all(&dir)?;
            }
            "fillbatch" => {
                let dir = self.base.join("fillbatch");
                let values = &self.values;
                let bs = p.batch_size.max(1) as u64;
                self.write_workload(w, &dir, true, p.num, |db| {
                    let mut keys: Vec<[u8; KEY_LEN]> = Vec::with_capacity(bs as usize);
                    let mut start = 0;
                    while start < p.num {
                        let end = (start + bs).min(p.num);
                        keys.clear();
                        keys.extend((start..end).map(key));
                        let pairs: Vec<(&[u8], &[u8])> = keys
                            .iter()
                            .zip(start..end)
                            .map(|(k, i)| (&k[..], values.get(i, 4)))
                            .collect();
                        db.put_batch(&pairs)?;
                        start = end;
                    }
                    Ok(())
                })?;
                std::fs::remove_dir_all(&dir)?;
            }
            "readrandom" | "readmissing" => {
                let missing = w == "readmissing";
                self.open_main()?;
                let db = self.main.as_deref().expect("opened");
                let mut rng = Rng::new(if missing { 6 } else { 5 });
                let t0 = Instant::now();
                let mut found = 0u64;
                for _ in 0..p.reads {
                    let n = rng.below(p.num);
                    let len = if missing {
                        db.get(&missing_key(n))?
                    } else {
                        db.get(&key(n))?
                    };
                    found += u64::from(len.is_some());
                }
                let secs = t0.elapsed().as_secs_f64();
                let expected = if missing { 0 } else { p.reads };
                if found != expected {
                    return Err(
                        format!("found {found} keys of {} (expected {expected})", p.reads).into(),
                    );
                }
                result(w, p.reads, secs);
            }
            "readseq" => {
                self.open_main()?;
                let db = self.main.as_deref().expect("opened");
                let t0 = Instant::now();
                let (n, bytes) = db.scan()?;
                let secs = t0.elapsed().as_secs_f64();
                if n != p.num || bytes != self.user_bytes(p.num) {
                    return Err(format!(
                        "scan read {n} entries / {bytes} bytes (expected {} / {})",
                        p.num,
                        self.user_bytes(p.num)
                    )
                    .into());
                }
                result(w, n, secs);
            }
            "seekrandom" => {
                self.open_main()?;
                let db = self.main.as_deref().expect("opened");
                let mut rng = Rng::new(7);
                let t0 = Instant::now();
                let mut entries = 0u64;
                for _ in 0..p.reads {
                    entries += db.seek_next(&key(rng.below(p.num)), SEEK_NEXTS)? as u64;
                }
                let secs = t0.elapsed().as_secs_f64();
                // Seeks near the end read fewer entries; on average almost all 11.
                if entries < p.reads * (SEEK_NEXTS as u64 + 1) * 9 / 10 {
                    return Err(format!("seeks read only {entries} entries").into());
                }
                result(w, p.reads, secs);
            }
            "readwhilewriting" => {
                self.open_main()?;
                let db = self.main.as_deref().expect("opened");
                let readers = p.rww_threads.saturating_sub(1).max(1) as u64;
                let per = (p.reads / readers).max(1);
                let values = &self.values;
                let stop = AtomicBool::new(false);
                let writes = AtomicU64::new(0);
                let t0 = Instant::now();
                let missing = std::thread::scope(|s| -> R<u64> {
                    let writer = s.spawn(|| -> R<()> {
                        let mut rng = Rng::new(8);
                        let mut j = 0u64;
                        while !stop.load(Ordering::Relaxed) {
                            db.put(&key(rng.below(p.num)), values.get(j, 8))?;
                            j += 1;
                        }
                        writes.store(j, Ordering::Relaxed);
                        Ok(())
                    });
                    let handles: Vec<_> = (0..readers)
                        .map(|t| {
                            s.spawn(move || -> R<u64> {
                                let mut rng = Rng::new(100 + t);
                                let mut missing = 0;
                                for _ in 0..per {
                                    missing += u64::from(db.get(&key(rng.below(p.num)))?.is_none());
                                }
                                Ok(missing)
                            })
                        })
                        .collect();
                    let mut missing = 0;
                    let mut first_err = None;
                    for h in handles {
                        match h.join().map_err(|_| "reader thread panicked")? {
                            Ok(m) => missing += m,
                            Err(e) => first_err = first_err.or(Some(e)),
                        }
                    }
                    stop.store(true, Ordering::Relaxed);
                    writer.join().map_err(|_| "writer thread panicked")??;
                    match first_err {
                        Some(e) => Err(e),
                        None => Ok(missing),
                    }
                })?;
                let secs = t0.elapsed().as_secs_f64();
                if missing != 0 {
                    return Err(format!("{missing} reads missed a present key").into());
                }
                result(w, per * readers, secs);
                metric(
                    w,
                    "writes_per_sec",
                    writes.load(Ordering::Relaxed) as f64 / secs,
                );
            }
            "deleterandom" => {
                self.ensure_filled()?;
                self.close_main()?;
                let dir = self.main_dir();
                self.write_workload(w, &dir, false, p.num, |db| {
                    for i in Permutation::new(p.num, 9) {
                        db.delete(&key(i))?;
                    }
                    Ok(())
                })?;
                self.main_filled = false;
            }
            other => return Err(format!("unknown workload {other}").into()),
        }
        Ok(())
    }

    /// Open (`fresh`: create) the database in `dir`, time `body`, then flush and close it
    /// (timed separately), reporting ops/s, the flush and close times, bytes written to disk
    /// from open to close, and the size of the directory after close.
    fn write_workload(
        &self,
        w: &str,
        dir: &Path,
        fresh: bool,
        ops: u64,
        body: impl FnOnce(&dyn Engine) -> R<()>,
    ) -> R<()> {
        let probe = WriteProbe::start();
        let db = engines::open(self.engine, dir, fresh)?;
        let t0 = Instant::now();
        body(&*db)?;
        let secs = t0.elapsed().as_secs_f64();
        let t1 = Instant::now();
        db.flush()?;
        let flush_secs = t1.elapsed().as_secs_f64();
        let t2 = Instant::now();
        db.close()?;
        let close_secs = t2.elapsed().as_secs_f64();
        result(w, ops, secs);
        metric(w, "flush_secs", flush_secs);
        metric(w, "close_secs", close_secs);
        probe.finish(w, dir, self.user_bytes(ops));
        Ok(())
    }

    /// Reopen the database in `dir` and do nothing while the engine runs the background work
    /// its own policy still wants (compactions left pending by the writes, or an engine's
    /// idle-time work), until the directory's size has not changed for [`SETTLED_AFTER`]
    /// (polled each second; at most [`SETTLE_LIMIT`]). Then close it and report, as the
    /// `settle` metrics, the size after close, the bytes written from open to close, and how
    /// long the directory kept changing.
    fn settle(&self, dir: &Path) -> R<()> {
        const POLL: Duration = Duration::from_secs(1);
        let io = sys::io();
        let t0 = Instant::now();
        let db = engines::open(self.engine, dir, false)?;
        let mut last = sys::dir_size(dir);
        let mut last_change = Instant::now();
        while last_change.elapsed() < SETTLED_AFTER && t0.elapsed() < SETTLE_LIMIT {
            std::thread::sleep(POLL);
            let now = sys::dir_size(dir);
            if now != last {
                last = now;
                last_change = Instant::now();
            }
        }
        let busy_secs = last_change.duration_since(t0).as_secs_f64();
        db.close()?;
        let after = sys::io();
        let written = after
            .write_bytes
            .saturating_sub(io.write_bytes)
            .saturating_sub(
                after
                    .cancelled_write_bytes
                    .saturating_sub(io.cancelled_write_bytes),
            );
        metric("settle", "busy_secs", busy_secs);
        metric("settle", "write_bytes", written as f64);
        metric("settle", "size_bytes", sys::dir_size(dir).0 as f64);
        Ok(())
    }

    /// fillrandom into the shared database (also the untimed setup of workloads that need
    /// data when fillrandom was not selected).
    fn fill_main(&mut self, w: &str) -> R<()> {
        self.close_main()?;
        let values = &self.values;
        let dir = self.main_dir();
        self.write_workload(w, &dir, true, self.p.num, |db| {
            for (j, i) in Permutation::new(self.p.num, 1).enumerate() {
                db.put(&key(i), values.get(j as u64, 1))?;
            }
            Ok(())
        })?;
        self.main_filled = true;
        Ok(())
    }

    fn ensure_filled(&mut self) -> R<()> {
        if !self.main_filled {
            eprintln!("[{}] (setup: fillrandom, not reported)", self.engine);
            self.fill_main("_setup")?;
        }
        Ok(())
    }

    fn close_main(&mut self) -> R<()> {
        if let Some(db) = self.main.take() {
            db.close()?;
        }
        Ok(())
    }

    /// The shared database, filled and open (reopened after the last write workload closed
    /// it, so reads run after a reopen).
    fn open_main(&mut self) -> R<()> {
        self.ensure_filled()?;
        if self.main.is_none() {
            self.main = Some(engines::open(self.engine, &self.main_dir(), false)?);
        }
        Ok(())
    }
}
