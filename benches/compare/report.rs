//! Medians, ratios and the markdown: the results tables, and the whole BENCHMARKS.md.

use std::fmt::Write as _;
use std::path::Path;

use crate::workloads::{describe, Params, KEY_LEN, WORKLOADS};
use crate::{Args, Collected};

pub struct Report<'a> {
    args: &'a Args,
    p: Params,
    pub engines: Vec<String>,
    pub workloads: Vec<String>,
    c: &'a Collected,
}

pub fn median(v: &[f64]) -> Option<f64> {
    let mut v: Vec<f64> = v.iter().copied().filter(|x| x.is_finite()).collect();
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    let n = v.len();
    Some(if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    })
}

/// 1000000 -> "1,000,000".
pub fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// 483k, 1.36M, 9.6k, 950.
pub fn fmt_ops(x: f64) -> String {
    if x >= 1e6 {
        format!("{:.2}M", x / 1e6)
    } else if x >= 1e4 {
        format!("{:.0}k", x / 1e3)
    } else if x >= 1e3 {
        format!("{:.1}k", x / 1e3)
    } else {
        format!("{x:.0}")
    }
}

fn mib(x: f64) -> String {
    format!("{:.0}", x / (1024.0 * 1024.0))
}

fn opt(x: Option<f64>, f: impl Fn(f64) -> String) -> String {
    x.map(f).unwrap_or_else(|| "–".into())
}

/// Display name of an engine.
pub fn title(engine: &str) -> &str {
    match engine {
        "strata" => "Strata",
        "sqlite" => "SQLite",
        "rocksdb" => "RocksDB",
        other => other,
    }
}

impl<'a> Report<'a> {
    pub fn new(args: &'a Args, c: &'a Collected) -> Report<'a> {
        let workloads = args.workloads();
        Report {
            args,
            p: args.params(),
            // Without --engines: every engine that has results, in the usual order (a replay
            // may run in a build that lacks some of them).
            engines: match &args.engines {
                Some(_) => args.engines(),
                None => ["strata", "fjall", "redb", "sled", "sqlite", "rocksdb"]
                    .iter()
                    .filter(|e| c.ops.keys().any(|(x, _)| x == *e))
                    .map(|e| e.to_string())
                    .collect(),
            },
            workloads: WORKLOADS
                .iter()
                .filter(|w| workloads.iter().any(|x| x == *w))
                .map(|w| w.to_string())
                .collect(),
            c,
        }
    }

    fn machine(&self, key: &str) -> &str {
        self.c.machine.get(key).map(String::as_str).unwrap_or("?")
    }

    pub fn ops(&self, engine: &str, workload: &str) -> Option<f64> {
        self.c
            .ops
            .get(&(engine.to_string(), workload.to_string()))
            .and_then(|v| median(v))
    }

    fn metric(&self, engine: &str, workload: &str, name: &str) -> Option<f64> {
        self.c
            .metrics
            .get(&(engine.to_string(), workload.to_string(), name.to_string()))
            .and_then(|v| median(v))
    }

    fn peers(&self) -> Vec<&String> {
        self.engines.iter().filter(|e| *e != "strata").collect()
    }

    fn has_strata(&self) -> bool {
        self.engines.iter().any(|e| e == "strata")
    }

    fn best_peer(&self, workload: &str) -> Option<(&str, f64)> {
        self.peers()
            .into_iter()
            .filter_map(|e| self.ops(e, workload).map(|x| (e.as_str(), x)))
            .max_by(|a, b| a.1.total_cmp(&b.1))
    }

    fn live_bytes(&self) -> f64 {
        (self.p.num * (KEY_LEN + self.p.value_size) as u64) as f64
    }

    pub fn runs(&self) -> usize {
        self.args.runs.max(1)
    }

    #[cfg_attr(not(feature = "chart"), allow(dead_code))]
    pub fn num(&self) -> u64 {
        self.p.num
    }

    /// The medians table with the ratio column.
    fn medians_table(&self, out: &mut String) {
        let ratio = self.has_strata() && !self.peers().is_empty();
        let _ = write!(out, "| workload |");
        for e in &self.engines {
            let _ = write!(out, " {} |", title(e));
        }
        if ratio {
            let _ = write!(out, " best peer | Strata / best peer |");
        }
        out.push('\n');
        let _ = write!(out, "|---|");
        for _ in &self.engines {
            out.push_str("---:|");
        }
        if ratio {
            out.push_str("---|---:|");
        }
        out.push('\n');
        for w in &self.workloads {
            let _ = write!(out, "| {} |", describe(w));
            for e in &self.engines {
                let _ = write!(out, " {} |", opt(self.ops(e, w), fmt_ops));
            }
            if ratio {
                match (self.ops("strata", w), self.best_peer(w)) {
                    (Some(s), Some((name, best))) => {
                        let _ = write!(out, " {} | **{:.2}x** |", title(name), s / best);
                    }
                    _ => out.push_str(" – | – |"),
                }
            }
            out.push('\n');
        }
    }

    /// Strata divided by each peer.
    fn ratios_table(&self, out: &mut String) {
        let peers = self.peers();
        if !self.has_strata() || peers.is_empty() {
            return;
        }
        out.push_str("| workload |");
        for e in &peers {
            let _ = write!(out, " Strata / {} |", title(e));
        }
        out.push_str("\n|---|");
        for _ in &peers {
            out.push_str("---:|");
        }
        out.push('\n');
        for w in &self.workloads {
            let _ = write!(out, "| {} |", describe(w));
            for e in &peers {
                let cell = match (self.ops("strata", w), self.ops(e, w)) {
                    (Some(s), Some(x)) => format!("{:.2}x", s / x),
                    _ => "–".into(),
                };
                let _ = write!(out, " {cell} |");
            }
            out.push('\n');
        }
    }

    /// Every run's figure, to judge the noise.
    fn runs_table(&self, out: &mut String) {
        out.push_str("| workload |");
        for e in &self.engines {
            let _ = write!(out, " {} |", title(e));
        }
        out.push_str("\n|---|");
        for _ in &self.engines {
            out.push_str("---:|");
        }
        out.push('\n');
        for w in &self.workloads {
            let _ = write!(out, "| {} |", describe(w));
            for e in &self.engines {
                let cell = match self.c.ops.get(&(e.clone(), w.clone())) {
                    Some(v) => {
                        let mut cell = v
                            .iter()
                            .map(|x| fmt_ops(*x))
                            .collect::<Vec<_>>()
                            .join(" / ");
                        let (lo, hi) = v
                            .iter()
                            .fold((f64::MAX, 0f64), |(lo, hi), x| (lo.min(*x), hi.max(*x)));
                        if v.len() > 1 && lo > 0.0 {
                            let _ =
                                write!(cell, " (±{:.0}%)", 50.0 * (hi - lo) / ((hi + lo) / 2.0));
                        }
                        cell
                    }
                    None => "–".into(),
                };
                let _ = write!(out, " {cell} |");
            }
            out.push('\n');
        }
    }

    /// Write amplification, size on disk, peak RSS.
    fn resources_table(&self, out: &mut String) {
        let has = |w: &str| self.workloads.iter().any(|x| x == w);
        out.push_str(
            "| engine | write amp fillrandom | write amp overwrite | size after fillrandom (MiB) \
             | size after overwrite (MiB) | space amp after overwrite | peak RSS fillrandom (MiB) \
             | peak RSS overwrite (MiB) | peak RSS whole run (MiB) | whole run less the harness (MiB) |\n",
        );
        out.push_str("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n");
        let live = self.live_bytes();
        for e in &self.engines {
            let wamp = |w: &str| {
                if !has(w) {
                    return None;
                }
                let user = self.metric(e, w, "user_bytes")?;
                let net = self.metric(e, w, "write_bytes")? / user;
                let raw = self.metric(e, w, "write_bytes_raw")? / user;
                Some(if raw - net > 0.005 {
                    format!("{net:.2} ({raw:.2})")
                } else {
                    format!("{net:.2}")
                })
            };
            let size = |w: &str| {
                if has(w) {
                    self.metric(e, w, "size_bytes")
                } else {
                    None
                }
            };
            let rss = |w: &str| {
                if has(w) || w == "_process" {
                    self.metric(e, w, "rss_peak_bytes")
                } else {
                    None
                }
            };
            let engine_share = rss("_process").and_then(|peak| {
                let harness = self.metric(e, "_process", "rss_harness_bytes")?;
                Some(peak - harness)
            });
            let _ = writeln!(
                out,
                "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
                title(e),
                wamp("fillrandom").unwrap_or_else(|| "–".into()),
                wamp("overwrite").unwrap_or_else(|| "–".into()),
                opt(size("fillrandom"), mib),
                opt(size("overwrite"), mib),
                opt(size("overwrite"), |x| format!("{:.2}", x / live)),
                opt(rss("fillrandom"), mib),
                opt(rss("overwrite"), mib),
                opt(rss("_process"), mib),
                opt(engine_share, mib),
            );
        }
    }

    /// With `--settle`: the overwritten database once each engine's background work is done.
    fn settled_table(&self, out: &mut String) {
        if !self
            .engines
            .iter()
            .any(|e| self.metric(e, "settle", "size_bytes").is_some())
        {
            return;
        }
        out.push_str(
            "\n### Once settled\n\n\
             After overwrite's close (`--settle`), the harness reopened the database and did \
             nothing while the engine ran the background work its own policy still wanted \
             (compactions left pending, or idle-time work), until the directory had not changed \
             for 5 seconds; then it closed it and measured again. The write amplification here \
             adds the bytes written while settling to overwrite's. The reads that follow ran on \
             the settled database.\n\n\
             | engine | busy after reopen (s) | size settled (MiB) | space amp settled \
             | write amp overwrite incl. settling |\n\
             |---|---:|---:|---:|---:|\n",
        );
        let live = self.live_bytes();
        for e in &self.engines {
            let wamp = || {
                let user = self.metric(e, "overwrite", "user_bytes")?;
                let written = self.metric(e, "overwrite", "write_bytes")?
                    + self.metric(e, "settle", "write_bytes")?;
                Some(format!("{:.2}", written / user))
            };
            let size = self.metric(e, "settle", "size_bytes");
            let _ = writeln!(
                out,
                "| {} | {} | {} | {} | {} |",
                title(e),
                opt(self.metric(e, "settle", "busy_secs"), |x| format!("{x:.0}")),
                opt(size, mib),
                opt(size, |x| format!("{:.2}", x / live)),
                wamp().unwrap_or_else(|| "–".into()),
            );
        }
    }

    /// Work an engine defers past the timed loop: the flush after it and the close.
    fn deferred_table(&self, out: &mut String) {
        out.push_str(
            "| engine | fillrandom: flush (s) | fillrandom: close (s) | fillrandom incl. flush (ops/s) \
             | overwrite: flush (s) | overwrite incl. flush (ops/s) | readwhilewriting: writer puts/s |\n",
        );
        out.push_str("|---|---:|---:|---:|---:|---:|---:|\n");
        for e in &self.engines {
            let with_flush = |w: &str| {
                let r = self.ops(e, w)?;
                let f = self.metric(e, w, "flush_secs")?;
                let secs = self.p.num as f64 / r;
                Some(self.p.num as f64 / (secs + f))
            };
            let _ = writeln!(
                out,
                "| {} | {} | {} | {} | {} | {} | {} |",
                title(e),
                opt(self.metric(e, "fillrandom", "flush_secs"), |x| format!(
                    "{x:.2}"
                )),
                opt(self.metric(e, "fillrandom", "close_secs"), |x| format!(
                    "{x:.2}"
                )),
                opt(with_flush("fillrandom"), fmt_ops),
                opt(self.metric(e, "overwrite", "flush_secs"), |x| format!(
                    "{x:.2}"
                )),
                opt(with_flush("overwrite"), fmt_ops),
                opt(
                    self.metric(e, "readwhilewriting", "writes_per_sec"),
                    fmt_ops
                ),
            );
        }
    }

    fn errors(&self, out: &mut String) {
        if self.c.errors.is_empty() {
            return;
        }
        out.push_str("\n**Failures** (their cells are missing above):\n\n");
        for e in &self.c.errors {
            let _ = writeln!(out, "- {e}");
        }
    }

    /// The results alone (printed at the end of every run).
    pub fn results_markdown(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "ops/s, medians of {} run(s), {} keys, {}-byte values\n",
            self.runs(),
            thousands(self.p.num),
            self.p.value_size
        );
        self.medians_table(&mut out);
        if self.has_strata() && !self.peers().is_empty() {
            out.push('\n');
            self.ratios_table(&mut out);
        }
        out.push('\n');
        self.resources_table(&mut out);
        out.push('\n');
        self.deferred_table(&mut out);
        self.errors(&mut out);
        out
    }

    /// The command that reproduces this run.
    fn command(&self) -> String {
        let mut cmd = String::from("cargo bench --bench compare");
        if !self.c.features.is_empty() {
            let _ = write!(cmd, " --features {}", self.c.features.join(","));
        }
        if !self.c.argv.is_empty() {
            cmd.push_str(" --");
            for a in &self.c.argv {
                let _ = write!(cmd, " {a}");
            }
        }
        cmd
    }

    /// The command that re-renders this document from its saved raw results: the files this
    /// run saved to (or replayed from) and wrote.
    fn replay_command(&self) -> String {
        let shown = |p: &Option<std::path::PathBuf>, default: &str| {
            p.as_ref()
                .map_or_else(|| default.to_string(), |p| p.display().to_string())
        };
        let raw = shown(
            if self.args.replay.is_some() {
                &self.args.replay
            } else {
                &self.args.save
            },
            "target/compare-bench-results.tsv",
        );
        let mut cmd = format!(
            "cargo bench --bench compare --features chart -- --replay {raw} --markdown {}",
            shown(&self.args.markdown, "BENCHMARKS.md")
        );
        if let Some(svg) = &self.args.svg {
            let _ = write!(cmd, " --svg {}", svg.display());
        }
        cmd
    }

    /// The whole BENCHMARKS.md.
    pub fn document(&self) -> String {
        let mut d = String::new();
        let runs = self.runs();
        let date = self.machine("date");
        let commit = self.machine("commit");
        let dirty = self.machine("dirty") == "true";
        let _ = writeln!(d, "# Benchmarks: Strata side by side with its peers\n");
        let _ = writeln!(
            d,
            "Regenerate this file, the chart and the raw results with one command (about {:.0} \
             minutes on this machine; {}):\n",
            (self.c.elapsed_secs / 60.0).round(),
            if self.c.features.iter().any(|f| f == "rocksdb") {
                "the `rocksdb` feature needs libclang-dev and a long C++ build, see the end"
            } else {
                "add `rocksdb` to the features to include RocksDB, see the end"
            }
        );
        let _ = writeln!(d, "```sh\n{}\n```\n", self.command());
        let _ = writeln!(
            d,
            "Strata's numbers move with every change to the engine: re-run the command after \
             each one. Everything below was produced by that command (`benches/compare.rs`) on {date}, \
             from commit `{commit}`{}; nothing here is copied from elsewhere. To change only \
             the text around the figures, `{}` re-renders \
             them from the saved raw results without measuring again. Options: `--engines \
             strata,fjall`, `--benchmarks fillrandom,readrandom` (names: {}), `--num`, \
             `--reads`, `--runs`; `-- --help` lists them all.\n",
            if dirty {
                " plus uncommitted changes"
            } else {
                ""
            },
            self.replay_command(),
            WORKLOADS.join(", ")
        );

        // Machine.
        let _ = writeln!(d, "## Machine\n");
        let _ = writeln!(
            d,
            "- `nproc`: {} ({})",
            self.machine("nproc"),
            self.machine("cpu")
        );
        let _ = writeln!(
            d,
            "- kernel {}; databases on {}",
            self.machine("kernel"),
            self.machine("fs")
        );
        let _ = writeln!(d, "- {}", self.machine("rustc"));
        let (lo, hi) = self
            .c
            .loads
            .iter()
            .fold((f64::MAX, 0f64), |(lo, hi), x| (lo.min(*x), hi.max(*x)));
        if !self.c.loads.is_empty() {
            let _ = writeln!(
                d,
                "- 1-minute load average when each engine's process started: {lo:.2} to {hi:.2} \
                 (other work on the 2 cores shows up here)"
            );
        }
        let _ = writeln!(
            d,
            "- whole run: {:.0} minutes\n",
            self.c.elapsed_secs / 60.0
        );
        let _ = writeln!(d, "```\n$ free -g\n{}\n```\n", self.machine("free"));

        // Versions.
        let _ = writeln!(d, "## Engines\n");
        let _ = writeln!(d, "| engine | crate | notes |\n|---|---|---|");
        let ver = |name: &str| {
            self.c
                .machine
                .get(&format!("version {name}"))
                .cloned()
                .unwrap_or_else(|| "?".into())
        };
        let _ = writeln!(
            d,
            "| Strata | strata {} (this repository) | LSM tree |",
            ver("strata")
        );
        let _ = writeln!(
            d,
            "| fjall | fjall {} (lsm-tree {}) | LSM tree, Rust |",
            ver("fjall"),
            ver("lsm-tree")
        );
        let _ = writeln!(
            d,
            "| redb | redb {} | copy-on-write B-tree, Rust |",
            ver("redb")
        );
        let _ = writeln!(
            d,
            "| sled | sled {} | Bw-tree-like log-structured tree, Rust |",
            ver("sled")
        );
        let _ = writeln!(
            d,
            "| SQLite | rusqlite {} (libsqlite3-sys {}, bundled SQLite {}) | B-tree, C |",
            ver("rusqlite"),
            ver("libsqlite3-sys"),
            self.machine("sqlite")
        );
        let _ = writeln!(
            d,
            "| RocksDB | rocksdb {} (librocksdb-sys {}) | LSM tree, C++; {} |\n",
            ver("rocksdb"),
            ver("librocksdb-sys"),
            if self.engines.iter().any(|e| e == "rocksdb") {
                "measured here"
            } else {
                "**not in this run** (feature `rocksdb` off)"
            }
        );
        d.push_str(CONFIGURATION);
        let _ = writeln!(
            d,
            "\n## Workloads\n\n{} keys of {} bytes (16 decimal digits), values of {} random \
             (incompressible) bytes; {} operations for readrandom, readmissing, seekrandom and \
             readwhilewriting; fillsync writes {} keys with 1 thread and {} with 8 threads; \
             fillbatch puts {} keys per batch; readwhilewriting runs {} threads (one writer).\n",
            thousands(self.p.num),
            KEY_LEN,
            self.p.value_size,
            thousands(self.p.reads),
            thousands(self.p.sync_num),
            thousands(self.p.sync_num / 8 * 8),
            thousands(self.p.batch_size as u64),
            self.p.rww_threads,
        );
        d.push_str(WORKLOAD_TEXT);

        // Results.
        let _ = writeln!(
            d,
            "\n## Results: ops/s, medians of {runs} run{}\n",
            if runs == 1 { "" } else { "s" }
        );
        self.medians_table(&mut d);
        if let Some(svg) = &self.args.svg {
            let rel = relative_to_markdown(svg, self.args.markdown.as_deref());
            let _ = writeln!(d, "\n![Strata against the peers, ops/s, log scale]({rel})");
        }
        if self.has_strata() && !self.peers().is_empty() {
            d.push_str("\n### Strata / each peer (above 1 means Strata is faster)\n\n");
            self.ratios_table(&mut d);
        }
        d.push_str("\n### Every run (and half the spread between runs, ±)\n\n");
        self.runs_table(&mut d);
        d.push_str(
            "\n## Write amplification, size on disk, memory\n\n\
             Write amplification is the bytes the engine's process wrote to disk (`write_bytes` \
             minus `cancelled_write_bytes` of `/proc/self/io`, from before opening the database \
             to after closing it, flush included) divided by the bytes of keys and values the \
             workload put; in parentheses, when it differs, the same without subtracting \
             `cancelled_write_bytes` (pages written to the page cache for files deleted before \
             the kernel wrote them back, such as a WAL that was never fsynced). Size is what the database directory occupies on disk after close \
             (allocated blocks); space amplification divides it by the live data (every key \
             once). Peak RSS is VmHWM of the engine's own process, reset at the start of each \
             workload; the last column subtracts the process's RSS before the engine opened (the \
             harness's code and its 1 MiB value pool; the workloads compute their key orders as \
             they go, so no key list of the harness's sits in the engine's share).\n\n",
        );
        self.resources_table(&mut d);
        self.settled_table(&mut d);
        d.push_str(
            "\n### Work left after the timed loop\n\n\
             The write workloads time the operations alone (as db_bench does); then the harness \
             flushes (memtable to a table file, or dirty pages to the file, made durable) and \
             closes, timed separately. An engine that buffers more in memory looks faster in \
             the timed loop and pays here.\n\n",
        );
        self.deferred_table(&mut d);
        self.errors(&mut d);
        d.push_str(WHERE_STRATA_IS_BEHIND);
        d.push_str(CAVEATS);
        d
    }
}

fn relative_to_markdown(svg: &Path, markdown: Option<&Path>) -> String {
    let base = markdown
        .and_then(Path::parent)
        .filter(|p| !p.as_os_str().is_empty());
    match base.and_then(|b| svg.strip_prefix(b).ok()) {
        Some(rel) => rel.display().to_string(),
        None => svg.display().to_string(),
    }
}

const CONFIGURATION: &str = "## Configuration: the same meaning for every engine

Every engine runs in its own child process (the harness re-executes itself), so its peak RSS
and its `/proc/self/io` counters are its own. All engines get the same operations in the same
order (deterministic generators), through the same trait (`benches/compare/engines.rs`).

- **Durability.** No write is fsynced except in fillsync, where every write is fsynced before
  it returns:
  - Strata: `Durability::NoSync` (the WAL record is handed to the OS with `write`, no fsync);
    fillsync uses `WriteOptions::sync()` (fdatasync of the WAL, group commit across threads).
  - fjall: default writes (journal buffered, no fsync); fillsync calls
    `Database::persist(PersistMode::SyncData)` (fdatasync) after each insert.
  - redb: one write transaction per put or delete, committed with `Durability::None`;
    fillsync commits with `Durability::Immediate` (fdatasync). Its flush is an empty
    `Immediate` commit.
  - sled: default (`flush_every_ms` 500, no fsync per write); fillsync calls `Db::flush()`
    after each insert.
  - SQLite: WAL journal mode, one autocommit transaction per put or delete,
    `synchronous=OFF`; fillsync uses connections with `synchronous=FULL`. Its flush is
    `PRAGMA wal_checkpoint(TRUNCATE)`.
  - RocksDB: `WriteOptions::set_sync(false)`, WAL on; fillsync `set_sync(true)`.
- **Cache: 64 MiB** for everyone: Strata `block_cache_capacity`, fjall `cache_size`, redb
  `set_cache_size`, sled `cache_capacity`, SQLite `PRAGMA cache_size=-65536` (per
  connection), RocksDB an LRU block cache. Memtables keep their defaults (64 MiB for Strata,
  fjall and RocksDB).
- **Filters and compression.** Strata: its defaults, bloom filters of 10 bits per key and LZ4
  per block (a block that does not shrink by an eighth is stored raw, as these are).
  RocksDB: bloom filter of 10 bits per key, built without compression libraries
  (`default-features = false`, compression set to none). fjall: its defaults (4 KiB blocks,
  bloom filters at a 0.01% false-positive rate in L0 and 10 bits per key below, no
  compression in L0 and L1 and LZ4 below). The values are random and do not compress; the
  keys do a little.
- **Transactions.** redb and SQLite run one transaction per write outside fillbatch, where
  each batch of 1,000 puts is one transaction (Strata, fjall, sled and RocksDB use their
  atomic write batches).
- **Reads** go through each engine's normal read path with one read transaction (redb) or
  statement (SQLite) per operation; scans read every key and value.
- **Multi-threaded workloads** share one open database; SQLite, whose connections are not
  shareable, gives each thread its own connection (and so its own 64 MiB cache).
";

const WORKLOAD_TEXT: &str = "In the order a child runs them (db_bench names):

- **fillseq**: put every key in ascending order into a new database.
- **fillrandom**: put every key once, in a random order, into a new database (kept for the
  workloads below).
- **overwrite**: reopen it and put every key again in another random order.
- **fillsync**, **fillsync8**: put keys into a new database, fsyncing each write; 1 thread,
  then 8 threads (each its own keys): with group commit the 8-thread figure can be several
  times higher.
- **fillbatch**: put every key in ascending order, 1,000 puts per atomic batch; reported per
  put.
- **readrandom**: reopen the database of overwrite and get random keys (all present).
- **readmissing**: get random keys that are absent but sort among the present ones (the key
  with its last digit turned into a letter).
- **readseq**: scan the whole database in key order (ops = entries read).
- **seekrandom**: seek to a random key and read it and the 10 entries after it (ops = seeks).
- **readwhilewriting**: readers get random keys while one thread overwrites random keys
  as fast as it can; ops/s counts the reads.
- **deleterandom**: delete every key once, in a random order.

The write workloads time the operations only; the flush and the close after them are timed
separately (below). The reads run right after a reopen, so an LSM may still be compacting in
the background while they run, as it would in production. The data (a little over 100 MiB
per million keys) fits in the OS page cache, so the reads measure the engines' CPU work and
caching, not the disk.
";

const WHERE_STRATA_IS_BEHIND: &str = "
## Where Strata is behind, and why

What the profiles of Strata's own runs (`perf record` on `strata bench`, and the micro-benchmarks
of `cargo bench --bench engine`) show where a peer leads or Strata is short of its targets:

- **Writes without fsync** (fillseq, fillrandom, overwrite, deleterandom): a WAL record is
  now a `memcpy` into a shared mapping of the segment (`Options::mapped_wal`), not a `write`
  system call per commit group, which was a quarter of a fillrandom profile (ext4's
  buffered-write path plus the entry and exit); the bytes reach the page cache either way, so
  the promise on a process crash is unchanged. What is left is mostly the memtable insert, a
  skiplist search through a 64 MiB memtable whose forward moves miss the CPU cache. Links
  carry hints (the prefix a successor shares with its node and its next 7 bytes), so going
  down never loads the successor; about 19 loads remain at 500,000 entries. Ascending inserts
  (fillseq, fillbatch) start from the previous insert's position (a splice, as in RocksDB).
- **fillbatch** against RocksDB (1.28x in this run and the one before, 1.33x before that;
  Strata's three runs spread 1.8-3.3M, ±29%, RocksDB's ±5%): a batch of 1,000 puts is one WAL record of about 130 KB, which goes to the
  page cache with one `pwrite` rather than through the mapping (32 first-touch page faults of
  about 4 µs each cost a third of the throughput), then 1,000 ascending inserts that the
  skiplist's splice places without a search.
- **readrandom** (1.12x redb in this run, 1.13x and 1.22x in the two before; short of
  1.3x; at 10,000,000 keys on the settled database, 1.46x RocksDB): at 1,000,000 keys (111 MiB of tables) and a 64 MiB block cache, a third to a half of
  the lookups miss the cache and read their 4 KiB block with `pread` (a system call and a copy
  from the page cache), then insert it into the cache. With a cache holding every block
  (256 MiB, measured once, not the configuration of this table) the same run gives 459-475k,
  1.4x redb: the misses are the gap. A profile of the read phase: 28% of the time in the
  kernel's `pread` (15.8% copying the page), 14% in the cache (lookup, CLOCK eviction,
  insert). Blocks of 2 KiB halve the copy but gained nothing beyond the noise (330k against
  321k with 4 KiB, medians of 3 alternated runs) and cost a quarter of readseq. With every block cached a lookup still costs about
  1.4 µs, a chain of about ten dependent cache misses (table filter, index, cache slot, block
  restarts, block entries). The filter is blocked (one line per key), the index gives the
  block offset without decoding, and a block seek prefetches its restart entries; redb's
  B-tree reaches its leaf through pages that stay hot.
- **readwhilewriting and seekrandom** against redb: 1.69x and 1.20x in this run. The writer
  thread is not throttled: Strata's writes 217-249k puts/s beside the readers (redb's
  11-16k), and the faster the writer, the more of the two cores its flushes and
  compactions take from the readers. seekrandom moves by about 10% between runs on two
  shared cores.
- **fillsync with one thread** (0.74x fjall in this run: Strata 7.1-7.9k, fjall 8.5-10k;
  0.94x and 1.02x in the two before): Strata alone, this build alternated with the previous
  session's four times right after, gave 8.3-10.1k against 8.8-9.9k, so the run met a slow
  spell of the disk, not a change of the engine. WAL segments
  are allocated 1 MiB ahead (`fallocate` for a mapped segment, a sparse `ftruncate` otherwise),
  so an `fdatasync` rarely commits a size change (100 µs instead of 165 µs on
  this disk, measured in isolation); Strata's and fjall's `fdatasync` calls then take the same
  time, and what is left between them is run-to-run noise of the disk. sled's
  `sync_file_range` is a weaker promise (see below). Eight threads now reach 5-6x of one:
  queued writers wait on their own condition variables and yield their core for a bounded
  time before sleeping, since a sleeping thread's wake-up cost about 10 µs here and a group of
  8 paid it 8 times between two fsyncs.
- **Peak RSS** is within the budget: the engine's share of the whole run's peak (the
  last column) is about 182 MiB against a configured 256 MiB (3 x 64 MiB memtables and the
  64 MiB cache); it was 285-290 MiB while glibc's per-thread malloc arenas kept the memory of
  evicted blocks in the arena of the thread that had read them (after a one-reader and a
  four-reader phase malloc held 263 MB with 78 MB in use). Data blocks now take their buffers
  from a pool of size classes and give them back when dropped.
- **Write amplification and space at 10,000,000 keys** (`docs/bench-10m.md`, with
  `--settle`): overwrite 4.02 against RocksDB's 4.75, fillrandom 3.19 against 3.05 (2.98
  against 3.03 the day before: where each engine's pending compactions stand at close moves
  it by a few percent). Counting the work each engine still did after reopening until it
  settled, overwrite comes to 5.28 against 5.38. Space amplification after overwrite's close
  is 1.45 (RocksDB 1.37, fjall 1.34); once settled, **1.13** (RocksDB 1.20, fjall 1.28). The
  difference is the idle tidy: while writes come, a deep tree batches its compactions
  (`Options::deep_tree_batching`: level 0 waits for 8 tables instead of 4, the levels above
  the last hold twice their targets), which is what brought write amplification to RocksDB's
  (from 5.23 / 7.62, with not fsyncing closed WAL segments of a database without sync
  writes); once writes stop for a second, the batching is dropped and every level is
  compacted back within its plain target, so the overwritten versions waiting above the last
  level go (5 s of compaction here).
- **Peak RSS at 10,000,000 keys**: 198 MiB for the engine against the 256 MiB budget
  (RocksDB 147, fjall 223). The run before reported 282: the harness then built each
  workload's key order as a shuffled list of 8-byte numbers (76 MiB at 10M keys) inside the
  engine's process, charged to every engine alike; orders are now computed on the fly (a
  Feistel permutation). What Strata holds at the peak is three 64 MiB memtables, the open
  tables' indexes and filters (charged to the block cache's budget) and memory glibc keeps
  in the flush and compaction threads' malloc arenas.
- **Space after overwrite at 1,000,000 keys** (1.69): the size is taken right after the
  overwrite's flush, when the new versions still sit in two or three level-0 tables (fewer
  than the compaction trigger of four) above the old ones; once writes stop for a second, the
  idle level-0 compaction merges them down and the old versions go.
";

const CAVEATS: &str = "
## How to read these figures

- Two cores: background flushes and compactions compete with the foreground threads, and
  any other process on the machine shows in the load average above. Differences within the
  run-to-run spread are noise.
- fillsync measures the latency of an fsync on this virtual disk, and that latency depends on
  every other process's I/O on the same file system (ext4 commits one journal for all of
  them): expect its single-thread figures to vary several-fold between runs, and read the
  8-thread row against the 1-thread row of the same engine rather than across runs.
- The durability meanings match (no fsync per write), but not the guarantee on a *process*
  crash: Strata, SQLite and RocksDB hand every write to the OS, while fjall and sled buffer
  writes in their own memory for a while, and redb keeps `Durability::None` commits in its
  own memory until a durable commit, so those three can lose recent writes if the process
  dies. That makes their write paths cheaper than Strata's.
- The fsync in fillsync is not the same call everywhere: Strata, fjall (`SyncData`), redb
  and RocksDB use `fdatasync`; SQLite as bundled by libsqlite3-sys (built without
  `HAVE_FDATASYNC`) calls `fsync`, which also writes the file's metadata; sled 0.34 on Linux
  writes its log with `sync_file_range`, which waits for the data to reach the device but
  flushes neither the file's metadata nor the device's write cache: a weaker and cheaper
  promise than the others'.
- redb keeps every page of its last durable state until the next durable commit, so a long
  run of `Durability::None` commits over existing data (overwrite) holds old and new pages
  side by side and its file grows; committing durably now and then would shrink it, at
  the price of an fsync.
- sled's `insert` returns the previous value, so every put is also a read; redb and SQLite
  pay a full transaction per write by design: the comparison is of the engines as they are
  normally used, not of equal algorithms.
- The write-amplification counters see everything the process wrote, including the WAL or
  journal, and nothing that was still only in the page cache when a file was deleted.
  Linux counts a page when it becomes dirty: a page rewritten again and again before the
  kernel writes it back counts once. Append-only files (Strata's and fjall's logs and
  tables) are counted in full, while engines that rewrite pages in place without fsync
  (SQLite's reused WAL file and its B-tree, redb) are credited with what the page cache
  coalesces; with 24 GiB of memory and no fsync that is a lot, so their write
  amplification here is a lower bound. An engine that does not fsync its WAL before
  deleting it (RocksDB with `sync=false`, and Strata under `NoSync` since it stopped syncing
  closed segments) gets the WAL pages cancelled instead of written if the kernel had not
  written them back yet: the figure in parentheses counts them anyway. Compaction still pending at close is not counted
  (an engine that left more of it pending looks better); the deferred-work table shows the
  flush and close times.
- readwhilewriting uses more threads than there are cores: the writer and the readers
  compete for the CPU, so it measures read throughput under write pressure, not scaling.
- RocksDB needs `apt-get install -y libclang-dev` and a C++ build of 20 minutes or more on
  2 cores: `cargo bench --bench compare --features peers,rocksdb -- ...`. Give it its own
  target directory (`CARGO_TARGET_DIR=/some/dir cargo bench ...`) so that the long build
  does not hold the shared `target/` lock, and keep other work off the machine while
  measuring.
";
