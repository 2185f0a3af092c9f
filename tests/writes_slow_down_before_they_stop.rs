//! Backpressure: as level 0 or the compaction debt grows past its soft limit, writes are held
//! to a falling rate (the write leader sleeps); at the hard limit they wait for compaction and
//! go on once it has caught up. `Db::stats` says which limit held them and for how long.

use std::sync::mpsc;
use std::time::Duration;

use strata::db::{Pressure, WriteLimit};
use strata::{Db, Options};

fn value(i: u32) -> Vec<u8> {
    // Not compressible, so tables are as large as the data.
    let mut x = u64::from(i).wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    (0..100)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

/// Run `body` on its own thread and fail, rather than hang, if it takes over a minute.
fn within_a_minute<T: Send + 'static>(body: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(body());
    });
    rx.recv_timeout(Duration::from_secs(60))
        .expect("writes never finished: backpressure did not let go")
}

#[test]
fn a_growing_level0_slows_writes_to_the_delayed_rate_without_stalling() {
    const WRITE_BUFFER: usize = 32 << 10;
    // Well below what one writer does unhindered here (about 1 MB/s with a memtable switch
    // every 280 puts: about half a second for these writes), so the limit sets the pace.
    const RATE: u64 = 128 << 10;
    const KEYS: u32 = 3000;
    let dir = tempfile::tempdir().unwrap();
    let opts = Options {
        write_buffer_size: WRITE_BUFFER,
        // Level 0 is never compacted here: it only grows.
        level0_compaction_trigger: 1000,
        level0_slowdown_trigger: 2,
        level0_stop_trigger: 10_000,
        delayed_write_rate: RATE,
        ..Options::default().with_idle_compaction_delay(None)
    };
    let db = Db::open_with(dir.path(), opts).unwrap();
    let (stats, elapsed) = within_a_minute({
        let db = db.clone();
        move || {
            let start = std::time::Instant::now();
            for i in 0..KEYS {
                db.put(format!("key{i:06}"), value(i)).unwrap();
            }
            (db.stats(), start.elapsed())
        }
    });
    assert!(stats.tables_per_level[0] >= 5, "{stats}");
    assert!(stats.slowdowns > 0, "{stats}");
    assert_eq!(stats.slowdowns_level0, stats.slowdowns, "{stats}");
    assert_eq!(stats.slowdowns_pending_compaction, 0, "{stats}");
    assert_eq!(
        stats.stalls_level0 + stats.stalls_pending_compaction,
        0,
        "{stats}"
    );
    assert!(
        matches!(
            stats.write_pressure,
            Pressure::Slow { cause: WriteLimit::Level0, bytes_per_sec } if bytes_per_sec < RATE
        ),
        "{stats}"
    );
    // Held to at most RATE bytes/s once level 0 had two tables, which happens before the
    // writes fill six memtables (two flushed, two immutable, one active, one spare): the rest
    // of the bytes took at least their time at RATE, less the last millisecond owed. (A lower
    // bound only: sleeping guarantees it, however loaded the machine.)
    let pressed = stats.wal_bytes.saturating_sub(6 * WRITE_BUFFER as u64);
    let least = Duration::from_micros((pressed * 1_000_000 / RATE).saturating_sub(1000));
    assert!(
        elapsed >= least,
        "{elapsed:?} for the writes, at least {least:?} expected: {stats}"
    );
    // Nothing was lost on the way.
    for i in (0..KEYS).step_by(97) {
        assert_eq!(db.get(format!("key{i:06}")).unwrap().unwrap(), value(i));
    }
    db.close().unwrap();
}

#[test]
fn compaction_debt_at_the_hard_limit_stops_writes_until_compaction_catches_up() {
    let dir = tempfile::tempdir().unwrap();
    let opts = Options {
        write_buffer_size: 64 << 10,
        level0_compaction_trigger: 2,
        soft_pending_compaction_bytes_limit: 128 << 10,
        hard_pending_compaction_bytes_limit: 256 << 10,
        delayed_write_rate: 64 << 20,
        ..Options::default().with_idle_compaction_delay(None)
    };
    let db = Db::open_with(dir.path(), opts).unwrap();
    let stats = within_a_minute({
        let db = db.clone();
        move || {
            for i in 0..20_000u32 {
                db.put(format!("key{:06}", (i * 7919) % 20_000), value(i))
                    .unwrap();
            }
            db.stats()
        }
    });
    assert!(stats.stalls_pending_compaction > 0, "{stats}");
    assert!(stats.stall_micros > 0, "{stats}");
    assert!(stats.compactions > 0, "{stats}");
    for i in (0..20_000u32).step_by(1009) {
        assert_eq!(
            db.get(format!("key{:06}", (i * 7919) % 20_000))
                .unwrap()
                .unwrap(),
            value(i)
        );
    }
    db.close().unwrap();
}
