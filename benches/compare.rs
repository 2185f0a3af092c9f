//! Strata side by side with its peers: db_bench-style workloads run through one trait for
//! every engine, each engine in its own child process, medians over `--runs`.
//!
//! ```sh
//! # Strata only (no extra dependencies):
//! cargo bench --bench compare -- --num 100000
//! # With fjall, redb, sled and SQLite, regenerating BENCHMARKS.md and the chart:
//! cargo bench --bench compare --features peers -- --runs 2 --markdown BENCHMARKS.md --svg docs/bench.svg
//! # RocksDB too (a ~20-minute C++ build; needs `apt-get install -y libclang-dev`):
//! cargo bench --bench compare --features peers,rocksdb -- --runs 2
//! ```
//!
//! Run without arguments (as `cargo test --benches` does) it is a smoke test: a few thousand
//! keys through every workload and every compiled engine.

#[path = "compare/chart.rs"]
mod chart;
#[path = "compare/engines.rs"]
mod engines;
#[path = "compare/keys.rs"]
mod keys;
#[path = "compare/report.rs"]
mod report;
#[path = "compare/results.rs"]
mod results;
#[path = "compare/sys.rs"]
mod sys;
#[path = "compare/workloads.rs"]
mod workloads;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

use clap::Parser;

use workloads::{Params, WORKLOADS};

#[derive(Parser, Debug, Clone)]
#[command(
    name = "compare",
    about = "Strata side by side with fjall, redb, sled, SQLite and RocksDB"
)]
struct Args {
    /// Number of keys.
    #[arg(long, default_value_t = 1_000_000)]
    num: u64,
    /// Operations of readrandom, readmissing, seekrandom and readwhilewriting (default: --num).
    #[arg(long)]
    reads: Option<u64>,
    /// Value size in bytes.
    #[arg(long, default_value_t = 100)]
    value_size: usize,
    /// Writes of fillsync and of fillsync8 (split over its 8 threads).
    #[arg(long, default_value_t = 10_000)]
    sync_num: u64,
    /// Puts per batch in fillbatch.
    #[arg(long, default_value_t = 1000)]
    batch_size: usize,
    /// Threads of readwhilewriting: one writer, the others read.
    #[arg(long, default_value_t = 4)]
    rww_threads: usize,
    /// After overwrite, reopen its database and let the engine do whatever background work
    /// it still wants, with no operations, until the directory stops changing; report the
    /// size then (space amplification once settled) and the bytes that work wrote. The reads
    /// that follow then run on the settled database.
    #[arg(long)]
    settle: bool,
    /// Comma-separated engines (default: every compiled one).
    #[arg(long)]
    engines: Option<String>,
    /// Comma-separated workloads (default: all).
    #[arg(long)]
    benchmarks: Option<String>,
    /// Repeat everything this many times and report medians.
    #[arg(long, default_value_t = 1)]
    runs: usize,
    /// Directory for the databases (default: target/compare-bench).
    #[arg(long)]
    dir: Option<PathBuf>,
    /// Write BENCHMARKS.md-style results to this file.
    #[arg(long)]
    markdown: Option<PathBuf>,
    /// Write the chart (SVG) to this file (needs the `chart` feature, on with `peers`).
    #[arg(long)]
    svg: Option<PathBuf>,
    /// Save the raw results (and the machine's description) to this file (default:
    /// target/compare-bench-results.tsv).
    #[arg(long)]
    save: Option<PathBuf>,
    /// Measure nothing: regenerate the tables, --markdown and --svg from a file written by
    /// an earlier run (--save).
    #[arg(long)]
    replay: Option<PathBuf>,
    /// Kill an engine's child process after this many seconds.
    #[arg(long, default_value_t = 3600)]
    timeout: u64,
    /// Internal: run the workloads for one engine (the parent re-executes itself with this).
    #[arg(long, hide = true)]
    child: Option<String>,
    /// Passed by `cargo bench`; ignored.
    #[arg(long, hide = true)]
    bench: bool,
}

impl Args {
    fn params(&self) -> Params {
        Params {
            num: self.num,
            reads: self.reads.unwrap_or(self.num),
            value_size: self.value_size,
            sync_num: self.sync_num,
            batch_size: self.batch_size,
            rww_threads: self.rww_threads,
            settle: self.settle,
        }
    }

    fn engines(&self) -> Vec<String> {
        match &self.engines {
            Some(list) => split_list(list),
            None => engines::compiled_engines()
                .into_iter()
                .map(String::from)
                .collect(),
        }
    }

    fn workloads(&self) -> Vec<String> {
        match &self.benchmarks {
            Some(list) => split_list(list),
            None => WORKLOADS.iter().map(|w| w.to_string()).collect(),
        }
    }

    fn dir(&self) -> PathBuf {
        self.dir
            .clone()
            .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("target/compare-bench"))
    }
}

fn split_list(s: &str) -> Vec<String> {
    s.split(',')
        .map(str::trim)
        .filter(|x| !x.is_empty())
        .map(String::from)
        .collect()
}

fn main() -> ExitCode {
    // No arguments at all: `cargo test --benches` runs the bench binary; keep it a smoke test.
    if std::env::args_os().len() == 1 {
        return smoke();
    }
    let args = Args::parse();
    if let Some(engine) = &args.child {
        let failed = workloads::run_child(engine, &args.params(), &args.dir(), &args.workloads());
        return if failed == 0 {
            ExitCode::SUCCESS
        } else {
            ExitCode::FAILURE
        };
    }
    let outcome = match &args.replay {
        Some(file) => replay(&args, file),
        None => parent(&args),
    };
    match outcome {
        Ok(all_ok) if all_ok => ExitCode::SUCCESS,
        Ok(_) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("compare: {e}");
            ExitCode::FAILURE
        }
    }
}

fn smoke() -> ExitCode {
    let dir = std::env::temp_dir().join(format!("strata-compare-smoke-{}", std::process::id()));
    let args = Args::parse_from([
        "compare",
        "--num",
        "3000",
        "--sync-num",
        "80",
        "--batch-size",
        "100",
        "--dir",
        dir.to_str().expect("temp dir is UTF-8"),
    ]);
    let outcome = parent(&args);
    let _ = std::fs::remove_dir_all(&dir);
    match outcome {
        Ok(true) => {
            println!("compare smoke test: 1 passed, 0 failed");
            ExitCode::SUCCESS
        }
        Ok(false) => {
            println!("compare smoke test: 0 passed, 1 failed");
            ExitCode::FAILURE
        }
        Err(e) => {
            eprintln!("compare: {e}");
            println!("compare smoke test: 0 passed, 1 failed");
            ExitCode::FAILURE
        }
    }
}

use results::Collected;

fn parent(args: &Args) -> Result<bool, engines::BoxError> {
    let engines = args.engines();
    let workloads = args.workloads();
    for w in &workloads {
        if !WORKLOADS.contains(&w.as_str()) {
            return Err(format!("unknown workload {w}; known: {}", WORKLOADS.join(",")).into());
        }
    }
    let compiled = engines::compiled_engines();
    for e in &engines {
        if !compiled.contains(&e.as_str()) {
            return Err(format!(
                "engine {e} is not in this build (compiled: {}; add --features peers or rocksdb)",
                compiled.join(",")
            )
            .into());
        }
    }
    let p = args.params();
    let dir = args.dir();
    std::fs::create_dir_all(&dir)?;
    let mut c = Collected {
        argv: std::env::args()
            .skip(1)
            .filter(|a| a != "--bench")
            .collect(),
        features: results::build_features(),
        ..Collected::default()
    };
    c.describe_machine(&dir);
    eprintln!(
        "compare: {} keys, {}-byte values, engines {}, workloads {}, {} run(s), in {}",
        p.num,
        p.value_size,
        engines.join(","),
        workloads.join(","),
        args.runs,
        dir.display()
    );
    let exe = std::env::current_exe()?;
    let started = Instant::now();
    for run in 0..args.runs.max(1) {
        // Rotate the engine order each run so that drift (other load, the disk's state)
        // does not always favour the same engine.
        let n = engines.len();
        for k in 0..n {
            let engine = &engines[(k + run) % n];
            c.loads.push(sys::loadavg());
            eprintln!("== run {} of {}: {engine}", run + 1, args.runs.max(1));
            run_one_child(&exe, args, &p, engine, &dir.join(engine), &mut c, run + 1)?;
        }
    }
    let _ = std::fs::remove_dir(&dir);
    c.elapsed_secs = started.elapsed().as_secs_f64();
    let save = args.save.clone().unwrap_or_else(|| {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("target/compare-bench-results.tsv")
    });
    c.save(&save)?;
    eprintln!("compare: raw results in {}", save.display());
    render(args, &c)?;
    if !c.errors.is_empty() {
        eprintln!("compare: {} failure(s):", c.errors.len());
        for e in &c.errors {
            eprintln!("  {e}");
        }
    }
    Ok(c.errors.is_empty())
}

/// Regenerate the report of an earlier run from its saved results.
fn replay(args: &Args, file: &Path) -> Result<bool, engines::BoxError> {
    let c = Collected::load(file)?;
    let mut run_args =
        Args::try_parse_from(std::iter::once("compare".to_string()).chain(c.argv.clone()))?;
    run_args.markdown = args.markdown.clone();
    run_args.svg = args.svg.clone();
    render(&run_args, &c)?;
    Ok(true)
}

/// Print the tables; write the markdown and the chart if asked.
fn render(args: &Args, c: &Collected) -> Result<(), engines::BoxError> {
    let rep = report::Report::new(args, c);
    println!("{}", rep.results_markdown());
    if let Some(path) = &args.markdown {
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent)?;
        }
        std::fs::write(path, rep.document())?;
        eprintln!("compare: wrote {}", path.display());
    }
    if let Some(path) = &args.svg {
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent)?;
        }
        chart::write_svg(path, &rep)?;
        eprintln!("compare: wrote {}", path.display());
    }
    Ok(())
}

fn run_one_child(
    exe: &Path,
    args: &Args,
    p: &Params,
    engine: &str,
    base: &Path,
    c: &mut Collected,
    run: usize,
) -> Result<(), engines::BoxError> {
    let mut cmd = Command::new(exe);
    cmd.arg("--child")
        .arg(engine)
        .arg("--num")
        .arg(p.num.to_string())
        .arg("--reads")
        .arg(p.reads.to_string())
        .arg("--value-size")
        .arg(p.value_size.to_string())
        .arg("--sync-num")
        .arg(p.sync_num.to_string())
        .arg("--batch-size")
        .arg(p.batch_size.to_string())
        .arg("--rww-threads")
        .arg(p.rww_threads.to_string())
        .args(p.settle.then_some("--settle"))
        .arg("--benchmarks")
        .arg(args.workloads().join(","))
        .arg("--dir")
        .arg(base)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
    let mut child = cmd.spawn()?;
    let stdout = child.stdout.take().expect("piped stdout");
    let reader = std::thread::spawn(move || {
        BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
            .collect::<Vec<String>>()
    });
    let deadline = Instant::now() + Duration::from_secs(args.timeout);
    let status = loop {
        if let Some(s) = child.try_wait()? {
            break Some(s);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let lines = reader.join().map_err(|_| "reader thread panicked")?;
    for line in lines {
        let mut parts = line.splitn(4, ' ');
        match (parts.next(), parts.next(), parts.next(), parts.next()) {
            (Some("@result"), Some(w), Some(ops), Some(secs)) if !w.starts_with('_') => {
                let ops: f64 = ops.parse()?;
                let secs: f64 = secs.parse()?;
                c.ops
                    .entry((engine.to_string(), w.to_string()))
                    .or_default()
                    .push(ops / secs.max(1e-9));
            }
            (Some("@metric"), Some(w), Some(name), Some(v)) => {
                c.metrics
                    .entry((engine.to_string(), w.to_string(), name.to_string()))
                    .or_default()
                    .push(v.parse()?);
            }
            (Some("@error"), Some(w), rest1, rest2) => {
                let msg = [rest1.unwrap_or(""), rest2.unwrap_or("")].join(" ");
                c.errors
                    .push(format!("{engine} run {run} {w}: {}", msg.trim()));
            }
            _ => {}
        }
    }
    match status {
        None => c.errors.push(format!(
            "{engine} run {run}: killed after the {} s timeout",
            args.timeout
        )),
        Some(s)
            if !s.success()
                && !c
                    .errors
                    .iter()
                    .any(|e| e.starts_with(&format!("{engine} run {run} "))) =>
        {
            c.errors
                .push(format!("{engine} run {run}: child exited with {s}"))
        }
        _ => {}
    }
    Ok(())
}
