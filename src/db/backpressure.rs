//! Write backpressure: how hard the write path holds back while flushes or compaction are
//! behind.
//!
//! Three kinds of debt, each with a hard limit where writers wait (a *stall*):
//! - memtables: the memtable is full and `max_immutable_memtables` wait for their flush;
//! - level 0: `level0_stop_trigger` tables;
//! - pending compaction: `hard_pending_compaction_bytes_limit` estimated bytes still to rewrite
//!   ([`pending_compaction_bytes`]).
//!
//! The last two also have a soft limit (`level0_slowdown_trigger`,
//! `soft_pending_compaction_bytes_limit`) where writes start to *slow down*: between soft and
//! hard limit the write rate is held to `delayed_write_rate`, falling linearly to 1/16 of it
//! as the debt nears the hard limit, so writes slow gradually as debt grows instead of running
//! flat out into a stall. The group-commit leader enforces the rate: it counts the bytes the
//! groups appended while under pressure and sleeps once the delay they owe reaches a
//! millisecond (no I/O and no lock but the log's while it sleeps, as RocksDB's `DelayWrite`).
//!
//! Every stall and slowdown is counted by its cause in `Db::stats`, with the time it took, and
//! the stats show the current pressure and rate.

use std::fmt;
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use crate::compaction::pending_compaction_bytes;
use crate::options::Options;
use crate::version::Version;

/// Why writes are held back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WriteLimit {
    /// The memtable is full and the immutable memtables wait for their flush.
    Memtables,
    /// Level 0 holds too many tables.
    Level0,
    /// Compaction is too far behind in bytes.
    PendingCompaction,
}

impl WriteLimit {
    /// Index into per-cause counters (arrays of 3: the variants in declaration order).
    pub(super) fn index(self) -> usize {
        self as usize
    }
}

impl fmt::Display for WriteLimit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            WriteLimit::Memtables => "memtables full",
            WriteLimit::Level0 => "level 0",
            WriteLimit::PendingCompaction => "pending compaction",
        })
    }
}

/// How hard the tree's shape presses on writes.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Pressure {
    /// Below every soft limit.
    None,
    /// Between a soft and a hard limit: writes may go at `bytes_per_sec`.
    Slow {
        cause: WriteLimit,
        bytes_per_sec: u64,
    },
    /// At a hard limit: writes wait for compaction.
    Stop(WriteLimit),
}

/// The slowest rate, as a fraction of `delayed_write_rate`, just short of a hard limit.
const SLOWEST: f64 = 1.0 / 16.0;

/// Where `value` sits between the `soft` and `hard` limits: 1.0 at `hard` or above, `None`
/// below `soft`, else the fraction of the way from one to the other (0.0 when the hard limit
/// is off or not above the soft one). A limit of 0 is off.
fn fraction(value: u64, soft: u64, hard: u64) -> Option<f64> {
    if hard > 0 && value >= hard {
        Some(1.0)
    } else if soft == 0 || value < soft {
        None
    } else if hard <= soft {
        Some(0.0)
    } else {
        Some((value - soft) as f64 / (hard - soft) as f64)
    }
}

/// The pressure of level 0 and pending compaction in `version` (memtables are the write
/// path's own business). The worse of the two decides.
pub fn assess(version: &Version, opts: &Options) -> Pressure {
    let level0 = fraction(
        version.levels[0].len() as u64,
        opts.level0_slowdown_trigger as u64,
        opts.level0_stop_trigger as u64,
    )
    .map(|f| (f, WriteLimit::Level0));
    let pending = fraction(
        pending_compaction_bytes(version, opts),
        opts.soft_pending_compaction_bytes_limit,
        opts.hard_pending_compaction_bytes_limit,
    )
    .map(|f| (f, WriteLimit::PendingCompaction));
    let worst = match (level0, pending) {
        (Some(a), Some(b)) => Some(if b.0 > a.0 { b } else { a }),
        (a, b) => a.or(b),
    };
    match worst {
        None => Pressure::None,
        Some((f, cause)) if f >= 1.0 => Pressure::Stop(cause),
        Some((f, cause)) => {
            let share = 1.0 - f * (1.0 - SLOWEST);
            Pressure::Slow {
                cause,
                bytes_per_sec: ((opts.delayed_write_rate.max(1) as f64 * share) as u64).max(1),
            }
        }
    }
}

/// The pressure of the version the write leader saw last, so that it judges each version
/// once rather than once per commit group (the estimate walks every level). Holds the
/// version weakly: a write path that goes quiet must not keep compacted tables alive, and
/// while the weak reference lives the address cannot be reused by another version.
#[derive(Debug, Default)]
pub(super) struct PressureMemo {
    seen: Option<(Weak<Version>, Pressure)>,
}

impl PressureMemo {
    /// [`assess`] of `version`, from the memo when it is the version seen last.
    pub(super) fn assess(&mut self, version: &Arc<Version>, opts: &Options) -> Pressure {
        if let Some((seen, pressure)) = &self.seen {
            if std::ptr::eq(seen.as_ptr(), Arc::as_ptr(version)) {
                return *pressure;
            }
        }
        let pressure = assess(version, opts);
        self.seen = Some((Arc::downgrade(version), pressure));
        pressure
    }
}

/// The write leader's account of the delay it owes while writes are slowed down: a token
/// bucket in time. Each group's bytes cost `bytes / rate`; the time that passes between
/// groups pays it off, so a writer already slower than the rate is never delayed, and one
/// faster than it is held to it.
#[derive(Debug, Default)]
pub(super) struct DelayAccount {
    /// Bytes appended since the last look (by the groups before this one).
    unaccounted_bytes: u64,
    /// Delay owed and not yet slept or paid off by time passing, in nanoseconds.
    owed_nanos: u128,
    /// When the account was last settled (`None`: not under pressure then).
    settled_at: Option<Instant>,
}

/// The leader sleeps once it owes this much: shorter sleeps cost more than they hold back.
pub(super) const MIN_SLEEP: Duration = Duration::from_millis(1);

impl DelayAccount {
    /// A group appended `bytes` to the log.
    pub(super) fn appended(&mut self, bytes: u64) {
        self.unaccounted_bytes = self.unaccounted_bytes.saturating_add(bytes);
    }

    /// Under `pressure` at `now()` (read only under pressure), how long to sleep before the
    /// next group (zero: go on). Without pressure the account is cleared: writes before the
    /// slowdown owe nothing.
    pub(super) fn delay_for(
        &mut self,
        pressure: Pressure,
        now: impl FnOnce() -> Instant,
    ) -> Duration {
        let bytes = std::mem::take(&mut self.unaccounted_bytes);
        let Pressure::Slow { bytes_per_sec, .. } = pressure else {
            self.owed_nanos = 0;
            self.settled_at = None;
            return Duration::ZERO;
        };
        let now = now();
        let cost = u128::from(bytes) * 1_000_000_000 / u128::from(bytes_per_sec.max(1));
        let paid = self
            .settled_at
            .map_or(0, |t| now.saturating_duration_since(t).as_nanos());
        self.owed_nanos = (self.owed_nanos + cost).saturating_sub(paid);
        self.settled_at = Some(now);
        if self.owed_nanos < MIN_SLEEP.as_nanos() {
            return Duration::ZERO;
        }
        let sleep = Duration::from_nanos(u64::try_from(self.owed_nanos).unwrap_or(u64::MAX));
        // The sleep pays the debt; time after it pays for what comes next.
        self.owed_nanos = 0;
        self.settled_at = now.checked_add(sleep);
        sleep
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fraction_runs_from_the_soft_to_the_hard_limit() {
        assert_eq!(fraction(19, 20, 36), None);
        assert_eq!(fraction(20, 20, 36), Some(0.0));
        assert_eq!(fraction(28, 20, 36), Some(0.5));
        assert_eq!(fraction(36, 20, 36), Some(1.0));
        assert_eq!(fraction(50, 20, 36), Some(1.0));
        // The hard limit holds whatever the soft one says (set above it, or off).
        assert_eq!(fraction(12, 20, 12), Some(1.0));
        assert_eq!(fraction(11, 20, 12), None);
        assert_eq!(fraction(12, 0, 12), Some(1.0));
        // A limit of 0 is off: no stop, and with the soft one off, no slowdown.
        assert_eq!(fraction(0, 0, 0), None);
        assert_eq!(fraction(1 << 40, 0, 0), None);
        assert_eq!(fraction(1 << 40, 64, 0), Some(0.0));
    }

    #[test]
    fn the_rate_falls_linearly_to_a_sixteenth_at_the_hard_limit() {
        let opts = Options {
            level0_slowdown_trigger: 2,
            level0_stop_trigger: 4,
            delayed_write_rate: 16 << 20,
            ..Options::default()
        };
        let version = |l0: usize| shape(&[(0, l0, 1 << 20)]);
        assert_eq!(assess(&version(1), &opts), Pressure::None);
        assert_eq!(
            assess(&version(2), &opts),
            Pressure::Slow {
                cause: WriteLimit::Level0,
                bytes_per_sec: 16 << 20
            }
        );
        assert_eq!(
            assess(&version(3), &opts),
            Pressure::Slow {
                cause: WriteLimit::Level0,
                // Half way: 1 - 0.5 * 15/16 = 17/32 of the rate.
                bytes_per_sec: (16 << 20) / 32 * 17
            }
        );
        assert_eq!(
            assess(&version(4), &opts),
            Pressure::Stop(WriteLimit::Level0)
        );
    }

    /// A version with `count` tables of `size` bytes at each `(level, count, size)`.
    fn shape(levels: &[(usize, usize, u64)]) -> Version {
        let mut v = Version::empty();
        let mut number = 0;
        for &(level, count, size) in levels {
            for _ in 0..count {
                number += 1;
                v.levels[level].push(crate::version::TableHandle::for_test(number, size));
            }
        }
        v
    }

    #[test]
    fn pending_compaction_bytes_slow_writes_then_stop_them() {
        let opts = Options {
            level0_compaction_trigger: 4,
            soft_pending_compaction_bytes_limit: 1 << 20,
            hard_pending_compaction_bytes_limit: 3 << 20,
            delayed_write_rate: 16 << 20,
            ..Options::default()
        };
        // Three level-0 tables: below the compaction trigger, nothing is pending.
        let below = shape(&[(0, 3, 256 << 10), (6, 4, 256 << 10)]);
        assert_eq!(pending_compaction_bytes(&below, &opts), 0);
        assert_eq!(assess(&below, &opts), Pressure::None);
        // Four: level 0 (1 MiB) merges with the base level (the last, 1 MiB): 2 MiB pending,
        // half way from the soft to the hard limit.
        let due = shape(&[(0, 4, 256 << 10), (6, 4, 256 << 10)]);
        assert_eq!(pending_compaction_bytes(&due, &opts), 2 << 20);
        assert_eq!(
            assess(&due, &opts),
            Pressure::Slow {
                cause: WriteLimit::PendingCompaction,
                bytes_per_sec: (16 << 20) / 32 * 17
            }
        );
        let far_behind = shape(&[(0, 8, 256 << 10), (6, 4, 256 << 10)]);
        assert_eq!(
            assess(&far_behind, &opts),
            Pressure::Stop(WriteLimit::PendingCompaction)
        );
    }

    #[test]
    fn the_memo_judges_each_version_once_and_keeps_none_alive() {
        let opts = Options {
            level0_slowdown_trigger: 2,
            level0_stop_trigger: 4,
            ..Options::default()
        };
        let mut memo = PressureMemo::default();
        let calm = Arc::new(shape(&[(0, 1, 1 << 20)]));
        assert_eq!(memo.assess(&calm, &opts), Pressure::None);
        assert_eq!(
            Arc::strong_count(&calm),
            1,
            "the memo must not hold the version"
        );
        let full = Arc::new(shape(&[(0, 4, 1 << 20)]));
        assert_eq!(
            memo.assess(&full, &opts),
            Pressure::Stop(WriteLimit::Level0)
        );
        // The same version again: the memo answers (with other options it would differ, so
        // this shows it did not judge again).
        let lenient = Options {
            level0_stop_trigger: 100,
            ..opts.clone()
        };
        assert_eq!(
            memo.assess(&full, &lenient),
            Pressure::Stop(WriteLimit::Level0)
        );
        assert_ne!(assess(&full, &lenient), Pressure::Stop(WriteLimit::Level0));
    }

    #[test]
    fn the_leader_is_held_to_the_rate_and_credited_for_time_passed() {
        let slow = Pressure::Slow {
            cause: WriteLimit::Level0,
            bytes_per_sec: 1_000_000,
        };
        let t0 = Instant::now();
        let at = |micros: u64| t0 + Duration::from_micros(micros);
        let mut account = DelayAccount::default();
        // 500 bytes at 1 MB/s: 500 µs owed, not yet worth a sleep.
        account.appended(500);
        assert_eq!(account.delay_for(slow, || at(0)), Duration::ZERO);
        // 700 more with no time passed: 1,200 µs owed, slept at once.
        account.appended(700);
        assert_eq!(
            account.delay_for(slow, || at(0)),
            Duration::from_micros(1200)
        );
        // A writer slower than the rate owes nothing: 100 bytes (100 µs) every 200 µs, with the
        // sleep of 1,200 µs not counted as time that pays.
        for step in 0..20 {
            account.appended(100);
            let now = at(1200 + 200 * (step + 1));
            assert_eq!(
                account.delay_for(slow, || now),
                Duration::ZERO,
                "step {step}"
            );
        }
        // Fractions of a microsecond add up: at 3 MB/s a byte costs a third of one, and a
        // millisecond is owed after about 3,000 one-byte groups.
        let fast = Pressure::Slow {
            cause: WriteLimit::Level0,
            bytes_per_sec: 3_000_000,
        };
        let mut small = DelayAccount::default();
        let groups = (1..10_000)
            .find(|_| {
                small.appended(1);
                small.delay_for(fast, || at(0)) > Duration::ZERO
            })
            .unwrap();
        assert!((3000..3010).contains(&groups), "{groups}");
        // Pressure gone: what was owed is forgiven.
        small.appended(900);
        assert_eq!(small.delay_for(Pressure::None, || at(0)), Duration::ZERO);
        small.appended(900);
        assert_eq!(
            small.delay_for(slow, || at(0)),
            Duration::ZERO,
            "only 900 µs owed since the pressure came back"
        );
    }
}
