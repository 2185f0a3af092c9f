//! What the harness reads from Linux: /proc/self/io, peak RSS, directory sizes, the machine.

use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::process::Command;

/// Counters of /proc/self/io (the whole process, all threads, including exited ones).
#[derive(Clone, Copy, Debug, Default)]
pub struct Io {
    /// Bytes this process caused to be sent to the storage layer (counted when a page is
    /// dirtied).
    pub write_bytes: u64,
    /// Bytes of those that never reached storage (the file was truncated or deleted first).
    pub cancelled_write_bytes: u64,
}

pub fn io() -> Io {
    let mut out = Io::default();
    if let Ok(text) = std::fs::read_to_string("/proc/self/io") {
        for line in text.lines() {
            let mut parts = line.split(':');
            let (Some(k), Some(v)) = (parts.next(), parts.next()) else {
                continue;
            };
            let v: u64 = v.trim().parse().unwrap_or(0);
            match k {
                "write_bytes" => out.write_bytes = v,
                "cancelled_write_bytes" => out.cancelled_write_bytes = v,
                _ => {}
            }
        }
    }
    out
}

/// Reset the peak resident set size (VmHWM) to the current RSS (Linux 4.0+).
pub fn reset_peak_rss() {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

/// Resident set size now, in bytes.
pub fn current_rss() -> u64 {
    status_kib("VmRSS:") * 1024
}

/// Peak resident set size since the start or the last reset, in bytes.
pub fn peak_rss() -> u64 {
    status_kib("VmHWM:") * 1024
}

fn status_kib(field: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(field))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

/// (allocated bytes, apparent bytes) of every file under `dir`.
pub fn dir_size(dir: &Path) -> (u64, u64) {
    let mut allocated = 0;
    let mut apparent = 0;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries.flatten() {
            let Ok(m) = e.metadata() else { continue };
            if m.is_dir() {
                stack.push(e.path());
            } else {
                allocated += m.blocks() * 512;
                apparent += m.len();
            }
        }
    }
    (allocated, apparent)
}

/// The 1-minute load average.
pub fn loadavg() -> f64 {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|s| s.split_whitespace().next().and_then(|v| v.parse().ok()))
        .unwrap_or(f64::NAN)
}

/// Output of a command, trimmed; empty if it failed.
pub fn command(program: &str, args: &[&str]) -> String {
    Command::new(program)
        .args(args)
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim_end().to_string())
        .unwrap_or_default()
}

/// CPU model name from /proc/cpuinfo.
pub fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|v| v.trim().to_string())
        })
        .unwrap_or_else(|| "unknown".into())
}
