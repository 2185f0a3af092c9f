//! A child process writes with sync on and prints each acknowledged key; the parent kills it
//! with SIGKILL at a random moment, reopens, and checks that every acknowledged key is there,
//! that the keys form a prefix of the write order (no holes), and that batches are atomic.

mod common;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use rand::{Rng, SeedableRng};
use strata::db::Db;

/// Run the writer in `dir`, kill it after `after`, and return the acknowledged count.
fn run_and_kill(dir: &Path, args: &[&str], after: Duration) -> u64 {
    let mut child = Command::new(env!("CARGO_BIN_EXE_strata"))
        .arg("write-loop")
        .arg(dir)
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn the writer");
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    let reader = std::thread::spawn(move || {
        let mut acked = 0u64;
        for line in BufReader::new(stdout).lines() {
            // Only whole lines count: a line cut by the kill was never fully acknowledged.
            let Ok(line) = line else { break };
            let n: u64 = line.trim().parse().expect("the writer prints numbers");
            assert_eq!(n, acked, "the writer acknowledges keys in order");
            acked += 1;
            if acked == 1 {
                let _ = tx.send(());
            }
        }
        acked
    });
    // Make sure the writer got going before the clock starts, so every kill lands mid-write.
    rx.recv_timeout(Duration::from_secs(60))
        .expect("the writer acknowledged nothing within 60 s");
    std::thread::sleep(after);
    child.kill().expect("SIGKILL the writer");
    let status = child.wait().unwrap();
    assert!(!status.success(), "the writer was killed, not finished");
    reader.join().unwrap()
}

fn check(dir: &Path, acked: u64, batch: u64) -> u64 {
    let db = Db::open(dir).unwrap_or_else(|e| panic!("reopen after kill: {e}"));
    let mut present = 0u64;
    while db.get(format!("key{present:012}")).unwrap().is_some() {
        present += 1;
    }
    assert!(
        present >= acked,
        "{acked} writes were acknowledged but only {present} survived"
    );
    // No holes: nothing after the first missing key.
    let total = db.iter().count() as u64;
    assert_eq!(total, present, "keys after a hole");
    assert_eq!(
        present % batch,
        0,
        "a batch of {batch} was applied partially: {present} keys"
    );
    let v = db
        .get(format!("key{:012}", present.saturating_sub(1)))
        .unwrap();
    if present > 0 {
        let i = present - 1;
        assert_eq!(
            v.unwrap(),
            format!("value-{i}-{}", "x".repeat((i % 200) as usize)).as_bytes()
        );
    }
    db.verify().unwrap();
    db.close().unwrap();
    present
}

fn kill_rounds(seed: u64, rounds: usize, args: &[&str], batch: u64) {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    for round in 0..rounds {
        let dir = tempfile::tempdir().unwrap();
        let after = Duration::from_millis(rng.random_range(5..300));
        let acked = run_and_kill(dir.path(), args, after);
        let present = check(dir.path(), acked, batch);
        // Kill again on the recovered directory: recovery output must itself be recoverable.
        let acked2 = run_and_kill(
            dir.path(),
            args,
            Duration::from_millis(rng.random_range(5..100)),
        );
        let present2 = check(dir.path(), acked2.max(present), batch);
        eprintln!("round {round}: killed after {after:?}: {acked} acked, {present} present; second kill {acked2} acked, {present2} present");
    }
}

#[test]
fn killed_sync_writer_loses_no_acknowledged_write() {
    kill_rounds(1, 6, &["--sync"], 1);
}

#[test]
fn killed_sync_batch_writer_applies_batches_atomically() {
    kill_rounds(2, 4, &["--sync", "--batch", "7"], 7);
}

#[test]
fn killed_no_sync_writer_keeps_what_reached_the_os() {
    // A process kill does not lose the page cache, so even unsynced acknowledged writes survive.
    kill_rounds(3, 4, &[], 1);
}
