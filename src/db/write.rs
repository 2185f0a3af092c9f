//! The write path: group commit, memtable switches, `flush` and `close`.
//!
//! Writers queue up; the writer at the front is the leader. It takes the batches of the
//! writers behind it (up to `MAX_GROUP_BYTES`), appends them to the WAL as one record each in
//! one buffered write, fsyncs once if any of them asked for it, applies them to the memtable,
//! publishes the new sequence number, hands the lead to the next writer in the queue and wakes
//! each of its followers (on the follower's own condition variable) with the shared result. The WAL and
//! the memtable are therefore only ever touched by one thread at a time.
//!
//! A sync leader paces itself ([`CommitPacing`]) so that writers returning together from one
//! fsync share the next one instead of alternating groups of one and of all the others.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::{Condvar, MutexGuard};

use bytes::Bytes;

use super::backpressure::{self, Pressure, WriteLimit};
use super::{DbInner, LogState, PendingWrite, SuperVersion, WriterState};
use crate::batch::WriteBatch;
use crate::error::{Error, Result};
use crate::filenames::wal_path;
use crate::key::{SeqNo, ValueKind, MAX_SEQ};
use crate::memtable::Memtable;
use crate::options::{Durability, WriteOptions};

/// Upper bound on the bytes one leader commits for its followers: keeps the latency of the
/// leader's own write bounded.
const MAX_GROUP_BYTES: usize = 1 << 20;

/// Microseconds on a process-wide monotonic clock (never 0).
pub(super) fn monotonic_micros() -> u64 {
    static START: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();
    let start = *START.get_or_init(Instant::now);
    start.elapsed().as_micros().min(u128::from(u64::MAX - 1)) as u64 + 1
}

/// The longest a sync leader waits for the writers of the previous group.
const MAX_PACING_WAIT: Duration = Duration::from_millis(2);

/// The longest a pacing leader yields its core (instead of sleeping) while it waits.
const MAX_GATHER_SPIN: Duration = Duration::from_micros(200);

/// How long a follower of a sync group yields its core before it sleeps, as a multiple of
/// the recent fsync time, and bounds for it.
const SYNC_FOLLOWER_SPIN_FSYNCS: u32 = 2;
const MIN_FOLLOWER_SPIN: Duration = Duration::from_micros(20);
const MAX_FOLLOWER_SPIN: Duration = Duration::from_millis(1);

/// How long a follower of a group without fsync yields before it sleeps: such a group takes
/// a buffered write and memtable inserts, a few microseconds per batch.
const FOLLOWER_SPIN: Duration = Duration::from_micros(50);

/// Adaptive group-commit pacing.
///
/// With N writers that each wait for their fsync, a plain leader queue alternates groups of
/// one and of N-1: when a group completes, all its writers return at once, the first to come
/// back finds the queue empty and fsyncs alone while the others queue up behind it. So a sync
/// leader that finds fewer writers queued than the last synced group held waits for them, at
/// most half the recent fsync time (PostgreSQL's `commit_delay`, made adaptive). A lone
/// writer never waits (its last group held one), and a writer that stops coming back costs one
/// bounded wait, after which the expected group shrinks to what actually arrived.
///
/// Waiting writers first yield their core in a loop for a bounded time and only then sleep
/// (RocksDB's adaptive yield, `max_yield_usec`): a sleeping thread's wake-up (a futex wake,
/// and on a virtual machine an interrupt to an idle CPU) costs about 10 µs here, and a group
/// of 8 paid it 8 times between two fsyncs (measured: 80 µs of gap between fsyncs of 120 µs;
/// 8 sync writers went from 35k to 55k writes/s when they yield).
#[derive(Default)]
pub(super) struct CommitPacing {
    /// Signalled by each writer that joins the queue; only a pacing leader waits on it.
    arrival_cv: Condvar,
    /// Writers in the last group that fsynced.
    last_sync_group: AtomicUsize,
    /// Moving average of the WAL fsync time, in microseconds.
    sync_micros: AtomicU64,
    /// Times a leader waited (for the stats).
    pub(super) waits: AtomicU64,
    /// The queue length a pacing leader is waiting for (0: none is waiting). Read and written
    /// under the queue lock, so an arrival wakes the leader once, when the group is complete.
    gather_target: AtomicUsize,
}

impl CommitPacing {
    /// Called by a sync leader at the front of `queue`: wait until the queue holds as many
    /// writers as the last synced group, or the time budget is spent.
    fn gather(&self, queue: &mut MutexGuard<'_, VecDeque<Arc<PendingWrite>>>) {
        let expected = self.last_sync_group.load(Ordering::Relaxed);
        if expected <= 1 || queue.len() >= expected {
            return;
        }
        let budget = Duration::from_micros(self.sync_micros.load(Ordering::Relaxed) / 2)
            .min(MAX_PACING_WAIT);
        let deadline = Instant::now() + budget;
        let spin_until = Instant::now() + budget.min(MAX_GATHER_SPIN);
        while queue.len() < expected && Instant::now() < spin_until {
            MutexGuard::unlocked(queue, std::thread::yield_now);
        }
        self.gather_target.store(expected, Ordering::Relaxed);
        while queue.len() < expected {
            if self.arrival_cv.wait_until(queue, deadline).timed_out() {
                break;
            }
        }
        self.gather_target.store(0, Ordering::Relaxed);
        self.waits.fetch_add(1, Ordering::Relaxed);
    }

    /// Called, under the queue lock, by a writer that joined a queue of `queue_len` writers:
    /// wakes a pacing leader if this arrival completes the group it waits for.
    fn arrived(&self, queue_len: usize) {
        let target = self.gather_target.load(Ordering::Relaxed);
        if target != 0 && queue_len >= target {
            self.arrival_cv.notify_one();
        }
    }

    /// How long a follower yields before it sleeps (see above).
    fn follower_spin(&self, sync: bool) -> Duration {
        if !sync {
            return FOLLOWER_SPIN;
        }
        let fsync = Duration::from_micros(self.sync_micros.load(Ordering::Relaxed));
        (fsync * SYNC_FOLLOWER_SPIN_FSYNCS).clamp(MIN_FOLLOWER_SPIN, MAX_FOLLOWER_SPIN)
    }

    /// Record a completed fsync of a group of `writers`.
    fn synced(&self, writers: usize, took: Duration) {
        self.last_sync_group.store(writers, Ordering::Relaxed);
        let sample = took.as_micros().min(u128::from(u32::MAX)) as u64;
        let old = self.sync_micros.load(Ordering::Relaxed);
        let avg = if old == 0 {
            sample
        } else {
            (old * 3 + sample) / 4
        };
        self.sync_micros.store(avg, Ordering::Relaxed);
    }
}

impl PendingWrite {
    /// A write of `batch`, or a memtable switch if there is none.
    fn new(batch: Option<WriteBatch>, sync: bool) -> Self {
        PendingWrite {
            switch_memtable: batch.is_none(),
            batch: parking_lot::Mutex::new(batch),
            sync,
            state: parking_lot::Mutex::new(WriterState::Waiting),
            wake: Condvar::new(),
        }
    }

    /// Tell this waiting writer to lead, or that its write is done.
    fn wake_with(&self, state: WriterState) {
        *self.state.lock() = state;
        self.wake.notify_one();
    }
}

impl DbInner {
    pub(super) fn write(&self, batch: WriteBatch, opts: WriteOptions) -> Result<()> {
        self.check_open()?;
        batch.validate(self.opts.max_key_size, self.opts.max_value_size)?;
        if batch.is_empty() {
            return Ok(());
        }
        let sync = opts.durability.unwrap_or(self.opts.durability) == Durability::Sync;
        self.enqueue(PendingWrite::new(Some(batch), sync))
    }

    /// Wait in the queue until this write is done by a leader, or lead a group.
    fn enqueue(&self, write: PendingWrite) -> Result<()> {
        let me = Arc::new(write);
        let mut queue = self.write_queue.lock();
        queue.push_back(Arc::clone(&me));
        if queue.len() > 1 {
            self.commit_pacing.arrived(queue.len());
            drop(queue);
            let spin_until = Instant::now() + self.commit_pacing.follower_spin(me.sync);
            while matches!(*me.state.lock(), WriterState::Waiting) && Instant::now() < spin_until {
                std::thread::yield_now();
            }
            {
                let mut state = me.state.lock();
                loop {
                    match std::mem::replace(&mut *state, WriterState::Waiting) {
                        WriterState::Waiting => me.wake.wait(&mut state),
                        WriterState::Leading => break,
                        WriterState::Done(result) => return result,
                    }
                }
            }
            queue = self.write_queue.lock();
        }
        debug_assert!(queue.front().is_some_and(|w| Arc::ptr_eq(w, &me)));

        // Leader: gather the group while holding the queue lock, then release it for the I/O.
        if me.sync && !me.switch_memtable {
            self.commit_pacing.gather(&mut queue);
        }
        let group: Vec<Arc<PendingWrite>> = if me.switch_memtable {
            vec![Arc::clone(&me)]
        } else {
            let mut bytes = 0;
            queue
                .iter()
                .take_while(|w| {
                    if w.switch_memtable || (w.sync && !me.sync) {
                        // A no-sync leader does not make a sync writer wait for it; it goes next.
                        return false;
                    }
                    let len = w.batch.lock().as_ref().map_or(0, WriteBatch::encoded_len);
                    let fits = bytes == 0 || bytes + len <= MAX_GROUP_BYTES;
                    bytes += len;
                    fits
                })
                .cloned()
                .collect()
        };
        drop(queue);

        let result = if me.switch_memtable {
            self.switch_memtable_now()
        } else {
            self.commit_group(&group)
        };

        let mut queue = self.write_queue.lock();
        for w in &group {
            let front = queue.pop_front();
            debug_assert!(front.is_some_and(|f| Arc::ptr_eq(&f, w)));
        }
        if let Some(next) = queue.front() {
            // Only the front's own leadership pops it, so it is still waiting: hand it the lead.
            next.wake_with(WriterState::Leading);
        }
        drop(queue);
        // Each follower is woken on its own condition variable: no herd on the queue lock.
        for w in group.iter().filter(|w| !Arc::ptr_eq(w, &me)) {
            w.wake_with(WriterState::Done(match &result {
                Ok(()) => Ok(()),
                Err(e) => Err(e.duplicate()),
            }));
        }
        result
    }

    fn commit_group(&self, group: &[Arc<PendingWrite>]) -> Result<()> {
        self.check_poisoned()?;
        let mut log = self.log.lock();
        self.make_room(&mut log)?;
        let sync = group.iter().any(|w| w.sync);

        if sync && !log.writer.earlier_segments_marked() {
            // Invariant 3: this segment's first fsync waits until the segments before it are
            // durable whole, and a mark ahead of its records says so.
            let marked = self
                .sync_closed_segments()
                .and_then(|()| log.writer.mark_earlier_segments_synced());
            if let Err(e) = marked {
                self.poison(&e);
                return Err(e);
            }
        }

        let mut batches: Vec<(WriteBatch, SeqNo)> = Vec::with_capacity(group.len());
        let mut seq = log.last_seq;
        let mut appended = 0u64;
        for w in group {
            let Some(mut batch) = w.batch.lock().take() else {
                continue;
            };
            let first = seq + 1;
            seq += batch.len() as u64;
            if seq > MAX_SEQ {
                return Err(Error::InvalidArgument(
                    "sequence numbers are exhausted".into(),
                ));
            }
            let payload = batch.encode_with_sequence(first);
            appended += payload.len() as u64;
            if let Err(e) = log.writer.add_record(payload) {
                self.poison(&e);
                return Err(e);
            }
            batches.push((batch, first));
        }
        let durable = if sync {
            let start = Instant::now();
            let synced = log.writer.sync();
            self.commit_pacing.synced(group.len(), start.elapsed());
            synced
        } else {
            log.writer.flush()
        };
        if let Err(e) = durable {
            // The log's state on disk is unknown: refuse further writes (fsyncgate).
            self.poison(&e);
            return Err(e);
        }

        let mem = Arc::clone(&self.super_version.load().mem);
        let mut writes = 0u64;
        for (batch, first) in &batches {
            let whole = batch.for_each_op(*first, |seq, kind, key, value| {
                if kind == ValueKind::RangeDeletion {
                    mem.insert(
                        Bytes::copy_from_slice(key),
                        seq,
                        kind,
                        Bytes::copy_from_slice(value),
                    );
                } else {
                    mem.insert_entry(key, seq, kind, value);
                }
                writes += 1;
            });
            if !whole {
                // Cannot happen (WriteBatch only writes its encoding well formed), but if it
                // did the memtable would now lack part of a logged batch: stop writing.
                let e = Error::Corruption {
                    file: wal_path(&self.dir, log.number),
                    offset: 0,
                    reason: "a write batch could not be applied to the memtable".into(),
                };
                self.poison(&e);
                return Err(e);
            }
        }
        log.last_seq = seq;
        self.visible_seq.store(seq, Ordering::Release);
        if self.opts.memtables_share_cache_budget {
            self.lend_memtable_budget(&self.super_version.load());
        }
        log.delay.appended(appended);
        self.counters
            .wal_bytes
            .fetch_add(appended, Ordering::Relaxed);
        self.counters.writes.fetch_add(writes, Ordering::Relaxed);
        self.counters.write_groups.fetch_add(1, Ordering::Relaxed);
        self.counters
            .last_write_micros
            .store(monotonic_micros(), Ordering::Relaxed);
        Ok(())
    }

    /// Before a group commits: hold writes to the delayed rate while compaction is behind
    /// (`backpressure`), switch to a new memtable if the current one is full, and stall while
    /// a hard limit holds (too many immutable memtables, level-0 tables or pending compaction
    /// bytes).
    fn make_room(&self, log: &mut LogState) -> Result<()> {
        let background = self.opts.background_flush;
        let mut stall: Option<Instant> = None;
        let mut paced = false;
        loop {
            self.check_poisoned()?;
            let sv = self.super_version.load_full();
            // Compaction debt holds writes back only when compaction has its own thread to
            // catch up on; inline compaction runs in the write path anyway.
            let pressure = if background {
                log.pressure.assess(&sv.version, &self.opts)
            } else {
                Pressure::None
            };
            if !paced {
                paced = true;
                let delay = log.delay.delay_for(pressure, Instant::now);
                if let (Pressure::Slow { cause, .. }, false) = (pressure, delay.is_zero()) {
                    self.counters.slowdowns.fetch_add(1, Ordering::Relaxed);
                    self.counters.slowdowns_by_cause[cause.index()].fetch_add(1, Ordering::Relaxed);
                    self.counters
                        .slowdown_micros
                        .fetch_add(delay.as_micros() as u64, Ordering::Relaxed);
                    self.sleep_for_slowdown(delay)?;
                    continue;
                }
            }
            let cause = match pressure {
                Pressure::Stop(cause) => cause,
                Pressure::None | Pressure::Slow { .. } => {
                    let live_wal =
                        log.writer.size() + sv.imms.iter().map(|m| m.wal_bytes()).sum::<u64>();
                    let wal_full = live_wal >= self.opts.max_total_wal_size && !sv.mem.is_empty();
                    if sv.mem.approximate_size() < self.opts.write_buffer_size && !wal_full {
                        break;
                    }
                    if sv.imms.len() < self.opts.max_immutable_memtables {
                        self.switch_memtable(log)?;
                        break;
                    }
                    if !background {
                        self.flush_all_immutable()?;
                        continue;
                    }
                    WriteLimit::Memtables
                }
            };
            if stall.is_none() {
                stall = Some(Instant::now());
                self.counters.stalls.fetch_add(1, Ordering::Relaxed);
                self.counters.stalls_by_cause[cause.index()].fetch_add(1, Ordering::Relaxed);
            }
            let mut st = self.bg_state.lock();
            // Look again under the lock that flushes and compactions notify under, so a
            // wake-up between the look and the wait cannot be missed.
            let sv = self.super_version.load();
            let still_blocked = match cause {
                WriteLimit::Memtables => sv.imms.len() >= self.opts.max_immutable_memtables,
                WriteLimit::Level0 | WriteLimit::PendingCompaction => matches!(
                    backpressure::assess(&sv.version, &self.opts),
                    Pressure::Stop(_)
                ),
            };
            if st.shutdown {
                // Closing: the background threads that would end the stall are stopping.
                return Err(Error::Closed);
            }
            if still_blocked && !self.poisoned.load(Ordering::Acquire) {
                self.bg_cv.wait(&mut st);
            }
        }
        if let Some(start) = stall {
            self.counters
                .stall_micros
                .fetch_add(start.elapsed().as_micros() as u64, Ordering::Relaxed);
        }
        Ok(())
    }

    /// Sleep `delay` (a slowdown) in slices, so a close or a failure is not kept waiting
    /// behind a long delay, and marking each slice as write activity, so the compaction
    /// thread does not take a slowed-down load for idle time (`Options::idle_compaction_delay`).
    fn sleep_for_slowdown(&self, delay: Duration) -> Result<()> {
        const SLICE: Duration = Duration::from_millis(10);
        let until = Instant::now() + delay;
        loop {
            self.check_poisoned()?;
            if self.bg_state.lock().shutdown {
                return Err(Error::Closed);
            }
            self.counters
                .last_write_micros
                .store(monotonic_micros(), Ordering::Relaxed);
            let left = until.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Ok(());
            }
            std::thread::sleep(left.min(SLICE));
        }
    }

    /// Make the memtable immutable and start a new memtable and WAL segment.
    fn switch_memtable(&self, log: &mut LogState) -> Result<()> {
        let result = self.switch_memtable_inner(log);
        if let Err(e) = &result {
            self.poison(e);
        }
        result
    }

    fn switch_memtable_inner(&self, log: &mut LogState) -> Result<()> {
        // No fsync and, with a spare ready, no file creation here (see `segments`): the old
        // segment is handed to the OS now and fsynced after the switch, before any fsync of
        // the new one (invariant 3).
        log.writer.flush()?;
        let (number, writer) = self.next_segment(log.number)?;
        self.super_version
            .load()
            .mem
            .set_wal_bytes(log.writer.size());
        let old = std::mem::replace(&mut log.writer, writer);
        let old_number = std::mem::replace(&mut log.number, number);
        log.writer.mark_previous_segment(old_number)?;
        self.close_segment(old_number, old);
        self.counters.wal_switches.fetch_add(1, Ordering::Relaxed);
        let mem = Arc::new(Memtable::for_write_buffer(
            number,
            self.opts.write_buffer_size,
        ));
        self.install_super_version(|sv| {
            let mut imms = Vec::with_capacity(sv.imms.len() + 1);
            imms.push(Arc::clone(&sv.mem));
            imms.extend(sv.imms.iter().cloned());
            SuperVersion {
                mem,
                imms,
                version: Arc::clone(&sv.version),
            }
        });
        let _guard = self.bg_state.lock();
        self.bg_cv.notify_all();
        Ok(())
    }

    /// Leader-only: switch now if the memtable holds anything.
    fn switch_memtable_now(&self) -> Result<()> {
        self.check_poisoned()?;
        let mut log = self.log.lock();
        if self.super_version.load().mem.is_empty() {
            return Ok(());
        }
        // Respect the immutable limit as a write would.
        while self.super_version.load().imms.len() >= self.opts.max_immutable_memtables {
            if !self.opts.background_flush {
                self.flush_all_immutable()?;
            } else {
                self.wait_for_flushes(self.opts.max_immutable_memtables - 1)?;
            }
        }
        self.switch_memtable(&mut log)
    }

    /// Block until at most `remaining` immutable memtables wait for flush.
    fn wait_for_flushes(&self, remaining: usize) -> Result<()> {
        let mut st = self.bg_state.lock();
        loop {
            self.check_poisoned()?;
            if self.super_version.load().imms.len() <= remaining {
                return Ok(());
            }
            if self.bg_threads.lock().is_empty() {
                drop(st);
                self.flush_all_immutable()?;
                st = self.bg_state.lock();
                continue;
            }
            self.bg_cv.wait(&mut st);
        }
    }

    pub(super) fn flush_now(&self) -> Result<()> {
        self.check_open()?;
        self.enqueue(PendingWrite::new(None, true))?;
        if !self.bg_threads.lock().is_empty() {
            self.wait_for_flushes(0)
        } else {
            self.flush_all_immutable()
        }
    }

    pub(super) fn close(&self) -> Result<()> {
        if self.closed.load(Ordering::Acquire) {
            return Ok(());
        }
        // Flush what is buffered so the next open replays nothing; skip it if poisoned.
        let flushed = if self.poisoned.load(Ordering::Acquire) {
            Ok(())
        } else {
            self.flush_now()
        };
        self.closed.store(true, Ordering::Release);
        {
            let mut st = self.bg_state.lock();
            st.shutdown = true;
            self.bg_cv.notify_all();
        }
        let threads = std::mem::take(&mut *self.bg_threads.lock());
        for t in threads {
            let _ = t.join();
        }
        let synced = if self.poisoned.load(Ordering::Acquire) {
            Ok(())
        } else {
            let mut log = self.log.lock();
            self.sync_closed_segments()
                .and_then(|()| log.writer.release_preallocation())
                .and_then(|()| log.writer.sync())
        };
        self.lock.lock().take();
        // A poisoned database could not flush or fsync: saying Ok would promise durability
        // that was not achieved.
        flushed.and(synced).and(self.check_poisoned())
    }
}
