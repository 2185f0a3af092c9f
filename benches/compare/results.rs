//! Everything a run measured, with the machine it ran on, saved as text so that the markdown
//! and the chart can be regenerated without measuring again (`--replay FILE`).
//!
//! Format: one record per line, tab-separated fields, with `\\`, `\t` and `\n` escaped.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;

use crate::engines::R;
use crate::sys;

#[derive(Default, Debug)]
pub struct Collected {
    /// The run's arguments (as given to the bench binary, without `--bench`).
    pub argv: Vec<String>,
    /// Cargo features of the build that measured.
    pub features: Vec<String>,
    /// The machine and the source, as `key -> value` (see [`Collected::describe_machine`]).
    pub machine: BTreeMap<String, String>,
    /// Wall time of the whole run.
    pub elapsed_secs: f64,
    /// (engine, workload) -> ops/s of each run.
    pub ops: BTreeMap<(String, String), Vec<f64>>,
    /// (engine, workload, metric) -> value of each run.
    pub metrics: BTreeMap<(String, String, String), Vec<f64>>,
    /// Failures, as "engine run N workload: message".
    pub errors: Vec<String>,
    /// 1-minute load average before each child started.
    pub loads: Vec<f64>,
}

fn escape(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('\t', "\\t")
        .replace('\n', "\\n")
}

fn unescape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            match chars.next() {
                Some('t') => out.push('\t'),
                Some('n') => out.push('\n'),
                Some(other) => out.push(other),
                None => out.push('\\'),
            }
        } else {
            out.push(c);
        }
    }
    out
}

fn floats(v: &[f64]) -> String {
    v.iter()
        .map(|x| format!("{x}"))
        .collect::<Vec<_>>()
        .join(",")
}

fn parse_floats(s: &str) -> R<Vec<f64>> {
    if s.is_empty() {
        return Ok(Vec::new());
    }
    s.split(',')
        .map(|x| x.parse::<f64>().map_err(Into::into))
        .collect()
}

impl Collected {
    /// Record the machine and the source tree the measurements come from.
    pub fn describe_machine(&mut self, db_dir: &Path) {
        let m = &mut self.machine;
        let mut put = |k: &str, v: String| {
            m.insert(k.to_string(), v);
        };
        put("date", sys::command("date", &["-u", "+%Y-%m-%d %H:%M UTC"]));
        put(
            "commit",
            sys::command("git", &["rev-parse", "--short", "HEAD"]),
        );
        put(
            "dirty",
            (!sys::command("git", &["status", "--porcelain", "--", "src", "Cargo.toml"])
                .is_empty())
            .to_string(),
        );
        put(
            "nproc",
            std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(0)
                .to_string(),
        );
        put("cpu", sys::cpu_model());
        put(
            "kernel",
            std::fs::read_to_string("/proc/sys/kernel/osrelease")
                .unwrap_or_default()
                .trim()
                .to_string(),
        );
        let df = sys::command("df", &["-T", &db_dir.to_string_lossy()]);
        let fields: Vec<&str> = df.lines().nth(1).unwrap_or("").split_whitespace().collect();
        put("fs", fields.get(1).unwrap_or(&"?").to_string());
        put("rustc", sys::command("rustc", &["--version"]));
        put("free", sys::command("free", &["-g"]));
        put("sqlite", sqlite_version());
        let lock =
            std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("Cargo.lock"))
                .unwrap_or_default();
        for name in [
            "strata",
            "fjall",
            "lsm-tree",
            "redb",
            "sled",
            "rusqlite",
            "libsqlite3-sys",
            "rocksdb",
            "librocksdb-sys",
        ] {
            if let Some(v) = lock_version(&lock, name) {
                put(&format!("version {name}"), v);
            }
        }
    }

    pub fn save(&self, path: &Path) -> R<()> {
        let mut s =
            String::from("# benches/compare.rs results; regenerate the report with --replay\n");
        let _ = writeln!(
            s,
            "argv\t{}",
            self.argv
                .iter()
                .map(|a| escape(a))
                .collect::<Vec<_>>()
                .join("\t")
        );
        let _ = writeln!(s, "features\t{}", self.features.join("\t"));
        for (k, v) in &self.machine {
            let _ = writeln!(s, "machine\t{}\t{}", escape(k), escape(v));
        }
        let _ = writeln!(s, "elapsed\t{}", self.elapsed_secs);
        let _ = writeln!(s, "loads\t{}", floats(&self.loads));
        for ((e, w), v) in &self.ops {
            let _ = writeln!(s, "ops\t{e}\t{w}\t{}", floats(v));
        }
        for ((e, w, n), v) in &self.metrics {
            let _ = writeln!(s, "metric\t{e}\t{w}\t{n}\t{}", floats(v));
        }
        for e in &self.errors {
            let _ = writeln!(s, "error\t{}", escape(e));
        }
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent)?;
        }
        std::fs::write(path, s)?;
        Ok(())
    }

    pub fn load(path: &Path) -> R<Collected> {
        let text = std::fs::read_to_string(path)?;
        let mut c = Collected::default();
        for (i, line) in text.lines().enumerate() {
            if line.starts_with('#') || line.is_empty() {
                continue;
            }
            let f: Vec<&str> = line.split('\t').collect();
            let bad = || format!("{}:{}: cannot read {line:?}", path.display(), i + 1);
            match f[0] {
                "argv" => c.argv = f[1..].iter().map(|a| unescape(a)).collect(),
                "features" => c.features = f[1..].iter().map(|a| a.to_string()).collect(),
                "machine" if f.len() == 3 => {
                    c.machine.insert(unescape(f[1]), unescape(f[2]));
                }
                "elapsed" if f.len() == 2 => c.elapsed_secs = f[1].parse()?,
                "loads" if f.len() == 2 => c.loads = parse_floats(f[1])?,
                "ops" if f.len() == 4 => {
                    c.ops
                        .insert((f[1].into(), f[2].into()), parse_floats(f[3])?);
                }
                "metric" if f.len() == 5 => {
                    c.metrics
                        .insert((f[1].into(), f[2].into(), f[3].into()), parse_floats(f[4])?);
                }
                "error" if f.len() == 2 => c.errors.push(unescape(f[1])),
                _ => return Err(bad().into()),
            }
        }
        Ok(c)
    }
}

fn sqlite_version() -> String {
    #[cfg(feature = "peers")]
    {
        rusqlite::version().to_string()
    }
    #[cfg(not(feature = "peers"))]
    {
        "?".to_string()
    }
}

/// The cargo features of this build that matter to the harness.
pub fn build_features() -> Vec<String> {
    let mut f = Vec::new();
    if cfg!(feature = "peers") {
        f.push("peers".to_string());
    }
    if cfg!(feature = "rocksdb") {
        f.push("rocksdb".to_string());
    }
    if cfg!(feature = "chart") && f.is_empty() {
        f.push("chart".to_string());
    }
    f
}

/// Version of `name` in Cargo.lock.
fn lock_version(lock: &str, name: &str) -> Option<String> {
    let needle = format!("name = \"{name}\"\nversion = \"");
    let at = lock.find(&needle)? + needle.len();
    let end = lock[at..].find('"')?;
    Some(lock[at..at + end].to_string())
}
