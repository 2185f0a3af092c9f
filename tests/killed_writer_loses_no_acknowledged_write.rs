//! SIGKILL of a real writer process under load: a child (`strata write-loop`) writes and prints
//! each acknowledged key; the parent kills it at a random moment, reopens, and checks that every
//! acknowledged key is there, that the keys form a prefix of each writer's order (no holes),
//! that batches are atomic, that values are right and `verify()` passes; then it kills more
//! children on the recovered directory (some inside their recovery), so recovery's own output
//! must survive a kill. See `common/kill.rs` for the checks.
//!
//! The scenarios mix synced writes, synced batches, unsynced writes (a process kill keeps the
//! page cache, so those survive too), several writer threads in one child (group commit) and
//! small memtables and levels (kills land in flushes and compactions).
//!
//! `STRATA_KILL_SEED=n` replays one round; `STRATA_TORTURE_SECONDS=n` runs each scenario with
//! fresh seeds for n seconds (long mode, `common/torture.rs`).

mod common;
#[path = "common/kill.rs"]
mod kill;

use std::time::Duration;

use kill::{kill_family, Scenario};

/// Rounds of each scenario run side by side (plus the other test thread's).
const PARALLEL: usize = 2;

fn scenario(name: &'static str, args: &'static [&'static str]) -> Scenario {
    Scenario {
        name,
        args,
        threads: 1,
        batch: 1,
        power_cut: false,
        kills_per_round: 4,
        max_delay: Duration::from_millis(120),
    }
}

#[test]
fn killed_sync_writer_loses_no_acknowledged_write() {
    let s = scenario("sync writer", &["--sync"]);
    kill_family(&s, 100, 12, PARALLEL);
}

#[test]
fn killed_sync_batch_writer_applies_batches_atomically() {
    // An 8 KiB memtable: a flush every few batches, so kills land in them.
    let s = Scenario {
        batch: 7,
        ..scenario(
            "sync batches of 7, 8 KiB memtable",
            &["--sync", "--write-buffer-size", "8192"],
        )
    };
    kill_family(&s, 200, 12, PARALLEL);
}

#[test]
fn killed_no_sync_writer_keeps_what_reached_the_os() {
    // A process kill does not lose the page cache, so even unsynced acknowledged writes survive.
    let s = scenario("no-sync writer", &[]);
    kill_family(&s, 300, 12, PARALLEL);
}

#[test]
fn killed_writer_threads_lose_nothing_acknowledged() {
    // Four threads, every third batch of each synced: group commits of mixed durability.
    let s = Scenario {
        threads: 4,
        batch: 3,
        ..scenario(
            "4 writer threads, every 3rd batch synced, 32 KiB memtable",
            &["--sync-every", "3", "--write-buffer-size", "32768"],
        )
    };
    kill_family(&s, 400, 12, PARALLEL);
}

#[test]
fn killed_writer_with_small_memtables_survives_kills_in_flushes_and_compactions() {
    // A 16 KiB memtable and tiny levels: flushes every ~100 writes, compactions all the time.
    let s = Scenario {
        max_delay: Duration::from_millis(250),
        ..scenario(
            "no-sync writer, small memtable and levels",
            &["--write-buffer-size", "16384", "--small-tree"],
        )
    };
    kill_family(&s, 500, 14, PARALLEL);
}

#[test]
fn killed_sync_writer_threads_with_small_memtables_lose_nothing() {
    let s = Scenario {
        threads: 3,
        batch: 2,
        max_delay: Duration::from_millis(250),
        ..scenario(
            "3 sync writer threads, small memtable and levels",
            &["--sync", "--write-buffer-size", "8192", "--small-tree"],
        )
    };
    kill_family(&s, 600, 12, PARALLEL);
}
