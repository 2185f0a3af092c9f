//! [`SimFs`]: an in-memory file system that models what survives a crash and injects faults.
//!
//! # What it models
//!
//! - A **file** is a byte string of which a prefix is *durable* (synced); the rest was handed to
//!   the OS but not synced. [`WritableFile::append`] buffers in the handle exactly as
//!   [`RealFs`](super::RealFs) does (64 KiB, larger appends go straight through), so bytes
//!   appended but never flushed are lost even by a process crash. Every hand-over to the OS is
//!   one *write* ([`OpKind::Write`]); [`WritableFile::sync`] flushes and makes the whole file
//!   durable.
//! - A **directory** is a durable `name -> file` map plus the operations (create, rename,
//!   remove) made since its last [`FileSystem::sync_dir`]; the current map is the durable map
//!   with those operations applied. `sync_dir` makes the current map durable.
//! - `create` of an existing name binds the name to a new, empty file (not an in-place
//!   truncation), so a crash before `sync_dir` brings the old file back. A removed file stays
//!   readable through handles opened before, as on Unix. `rename` works within one directory.
//! - Directories themselves are created durably by `create_dir_all` (not modelled further).
//! - `try_lock` behaves like `flock`: a second lock on a path fails (`Ok(None)`) until the
//!   first lock is dropped, whichever clone of the file system asks.
//!
//! # Crashes
//!
//! [`SimFs::crash`] turns the state into what a reboot would find, by [`CrashMode`]: a process
//! crash keeps everything handed to the OS; a power loss keeps the synced bytes and directory
//! entries and, of the rest, nothing, a random prefix, all but a torn last write, a prefix
//! ending in zeros, or pages written back out of order. Every file handle and lock taken before
//! the crash dies, and so does every *other* clone of the `SimFs` (the one a `Db` owns, say):
//! their operations fail from then on, so a database that is still open cannot write into the
//! post-crash state. The clone `crash` was called on stays usable; give the reopened database a
//! new clone of it. A crash also clears the injected faults and revives a dead disk (a reboot).
//! [`SimFs::fork`] copies the state first, so one run can be crashed in several modes.
//!
//! # Faults
//!
//! Every operation of the [`FileSystem`] trait and of its file handles is counted by
//! [`OpKind`] (`exists` and `RandomAccessFile::size` are not: they cannot fail on a real
//! disk). A [`Fault`] fails the n-th operation of a kind (or of any kind) with an
//! `io::Error`, once or as a dead disk (that operation and every later one fails). Counts start
//! at 0 when the file system is made (or forked), so a sweep runs a workload once, reads
//! [`SimFs::op_count`], and then replays it on fresh file systems failing each operation in
//! turn. [`SimFs::set_capacity`] makes writes fail with ENOSPC once the files would exceed a
//! byte budget (disk full); the bytes that fit are written, as a short `write(2)` would.
//!
//! # Determinism
//!
//! The file system's only randomness (which prefix a crash keeps) comes from a SplitMix64
//! generator seeded by [`SimFs::new`], so a run replays exactly from its seed. Nothing depends
//! on time, addresses or hash order.
//!
//! # Example
//!
//! ```
//! use std::sync::Arc;
//! use strata::fs::{CrashMode, SimFs};
//! use strata::{Db, Options, WriteBatch, WriteOptions};
//!
//! let fs = SimFs::new(42);
//! let options = |fs: &SimFs| Options::default().with_fs(Arc::new(fs.clone()));
//! let db = Db::open_with("/db", options(&fs))?;
//! db.put("synced", "1")?; // fsynced before it returns (the default durability)
//! let mut batch = WriteBatch::new();
//! batch.put("unsynced", "2");
//! db.write_opt(batch, WriteOptions::no_sync())?;
//!
//! fs.crash(CrashMode::DropUnsynced); // a power cut: the database's clone of `fs` is dead now
//! drop(db);
//! let db = Db::open_with("/db", options(&fs))?; // a fresh clone of the survivor
//! assert!(db.get("synced")?.is_some());
//! assert!(db.get("unsynced")?.is_none());
//! # Ok::<(), strata::Error>(())
//! ```
//!
//! [`FileSystem`]: crate::fs::FileSystem
//! [`FileSystem::sync_dir`]: crate::fs::FileSystem::sync_dir
//! [`WritableFile::append`]: crate::fs::WritableFile::append
//! [`WritableFile::sync`]: crate::fs::WritableFile::sync

mod handles;
mod kinds;
mod state;

use std::fmt;
use std::io;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use parking_lot::Mutex;

pub use kinds::{CrashMode, Fault, OpKind};
use state::{list, not_found, SplitMix64, State};

/// Appends are buffered in the handle up to this size, as [`RealFs`](super::RealFs) does.
const WRITE_BUFFER: usize = 64 * 1024;

/// ENOSPC on Linux: what a full disk returns.
const ENOSPC: i32 = 28;

/// The unit of write-back in [`CrashMode::ReorderedPages`].
const PAGE: usize = 4096;

/// An in-memory file system that keeps unsynced data apart, simulates crashes and injects
/// faults; see the [module documentation](self). Cheap to clone: clones share one state.
pub struct SimFs {
    state: Arc<Mutex<State>>,
    /// The crash epoch this clone lives in; it dies when another clone crashes the state.
    epoch: AtomicU64,
}

impl Clone for SimFs {
    fn clone(&self) -> SimFs {
        SimFs {
            state: Arc::clone(&self.state),
            epoch: AtomicU64::new(self.epoch.load(Ordering::Acquire)),
        }
    }
}

impl fmt::Debug for SimFs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let st = self.state.lock();
        f.debug_struct("SimFs")
            .field("seed", &st.seed)
            .field("epoch", &st.epoch)
            .field("operations", &st.total)
            .field("files", &st.inodes.len())
            .field("dead", &st.dead)
            .finish_non_exhaustive()
    }
}

impl Default for SimFs {
    fn default() -> SimFs {
        SimFs::new(0)
    }
}

impl SimFs {
    /// An empty file system (with the directories `/` and the relative root) whose crash
    /// randomness comes from `seed`.
    pub fn new(seed: u64) -> SimFs {
        SimFs {
            state: Arc::new(Mutex::new(State::new(seed))),
            epoch: AtomicU64::new(0),
        }
    }

    /// The seed given to [`SimFs::new`] (a fork keeps its parent's).
    pub fn seed(&self) -> u64 {
        self.state.lock().seed
    }

    /// Restart the crash randomness from `seed` (a sweep gives each forked run its own seed).
    pub fn reseed(&self, seed: u64) {
        let mut st = self.state.lock();
        st.seed = seed;
        st.rng = SplitMix64(seed);
    }

    /// An independent copy of the files and directories (durable and unsynced parts alike)
    /// and of the random generator, with no locks, no faults and zeroed counters: a crash
    /// clone, so one run can be crashed in several modes.
    pub fn fork(&self) -> SimFs {
        let st = self.state.lock();
        let mut copy = State::new(st.seed);
        copy.dirs = st.dirs.clone();
        copy.inodes = st.inodes.clone();
        copy.next_inode = st.next_inode;
        copy.last_write = st.last_write;
        copy.in_flight = st.in_flight.clone();
        copy.rng = st.rng.clone();
        SimFs {
            state: Arc::new(Mutex::new(copy)),
            epoch: AtomicU64::new(0),
        }
    }

    /// Simulate a crash and reboot (see [`CrashMode`]). Afterwards only this clone works: file
    /// handles, locks and every other clone from before are dead. Faults are cleared.
    pub fn crash(&self, mode: CrashMode) {
        let mut guard = self.state.lock();
        let st = &mut *guard;
        st.epoch += 1;
        self.epoch.store(st.epoch, Ordering::Release);
        st.locks.clear();
        st.faults.clear();
        st.dead = false;
        match mode {
            CrashMode::DropUnsynced => {
                for dir in st.dirs.values_mut() {
                    dir.current = dir.durable.clone();
                    dir.pending.clear();
                }
                for file in st.inodes.values_mut() {
                    file.truncate(file.durable);
                }
            }
            CrashMode::KeepRandomPrefix | CrashMode::ZeroFilledTail | CrashMode::ReorderedPages => {
                for dir in st.dirs.values_mut() {
                    let keep = st.rng.below(dir.pending.len() + 1);
                    for op in &dir.pending[..keep] {
                        op.apply(&mut dir.durable);
                    }
                    dir.current = dir.durable.clone();
                    dir.pending.clear();
                }
                for file in st.inodes.values_mut() {
                    let unsynced = file.data.len() - file.durable;
                    let keep = file.durable + st.rng.below(unsynced + 1);
                    file.truncate(keep);
                    let lost: Vec<std::ops::Range<usize>> = match mode {
                        CrashMode::ZeroFilledTail => {
                            let from = file.durable + st.rng.below(keep - file.durable + 1);
                            std::iter::once(from..keep).collect()
                        }
                        CrashMode::ReorderedPages => (file.durable / PAGE * PAGE..keep)
                            .step_by(PAGE)
                            .filter(|_| st.rng.below(2) == 0)
                            .map(|page| page.max(file.durable)..(page + PAGE).min(keep))
                            .collect(),
                        _ => Vec::new(),
                    };
                    file.zero(&lost);
                }
            }
            CrashMode::TearLastWrite => {
                if let Some((inode, bytes)) = st.in_flight.take() {
                    let keep = if bytes.len() > 1 {
                        1 + st.rng.below(bytes.len() - 1)
                    } else {
                        0
                    };
                    if let Some(file) = st.inodes.get_mut(&inode) {
                        file.extend(&bytes[..keep]);
                    }
                } else if let Some(last) = st.last_write {
                    if let Some(file) = st.inodes.get_mut(&last.inode) {
                        let start = last.offset.max(file.durable);
                        let end = (last.offset + last.len).min(file.data.len());
                        if start < end {
                            file.truncate(start + st.rng.below(end - start));
                        }
                    }
                }
                for dir in st.dirs.values_mut() {
                    dir.durable = dir.current.clone();
                    dir.pending.clear();
                }
            }
            CrashMode::KeepAll => {
                for dir in st.dirs.values_mut() {
                    dir.durable = dir.current.clone();
                    dir.pending.clear();
                }
            }
        }
        // A preallocation is metadata: a crash keeps the durable one, the latest, or (in the
        // modes that keep part of what was unsynced) either; its zeros then become bytes.
        for file in st.inodes.values_mut() {
            let reserved = match mode {
                CrashMode::DropUnsynced => file.reserved_durable,
                CrashMode::KeepAll | CrashMode::TearLastWrite => file.reserved,
                _ if file.reserved == file.reserved_durable => file.reserved,
                _ if st.rng.below(2) == 0 => file.reserved_durable,
                _ => file.reserved,
            };
            file.settle_reservation(reserved);
            file.durable = file.data.len();
        }
        st.in_flight = None;
        st.last_write = None;
        st.collect_garbage();
    }

    /// Arm a fault (several may be armed at once).
    pub fn inject(&self, fault: Fault) {
        self.state.lock().faults.push(fault);
    }

    /// Disarm every fault and revive a dead disk ("repair"); counters keep running.
    pub fn clear_faults(&self) {
        let mut st = self.state.lock();
        st.faults.clear();
        st.dead = false;
        // The write the dying disk refused did not happen; later writes are not torn by it.
        st.in_flight = None;
    }

    /// True once a [`Fault::dead`] fired (until [`SimFs::clear_faults`] or a crash).
    pub fn is_dead(&self) -> bool {
        self.state.lock().dead
    }

    /// Limit the bytes all named files may hold (`None`: unlimited). A write past the limit
    /// writes what fits and fails with ENOSPC (`io::ErrorKind::StorageFull`).
    pub fn set_capacity(&self, bytes: Option<u64>) {
        self.state.lock().capacity = bytes;
    }

    /// Bytes held by the files that have a name.
    pub fn used_bytes(&self) -> u64 {
        self.state.lock().used_bytes()
    }

    /// The most bytes the named files held after any write made while a capacity was set
    /// (set `u64::MAX` to measure a workload's peak without limiting it).
    pub fn peak_used_bytes(&self) -> u64 {
        self.state.lock().peak_used
    }

    /// Operations of `kind` (of every kind if `None`) attempted so far, failed ones included.
    pub fn op_count(&self, kind: Option<OpKind>) -> u64 {
        let st = self.state.lock();
        match kind {
            None => st.total,
            Some(k) => st.counts[k.index()],
        }
    }

    /// Operations failed by an armed [`Fault`] so far (not those refused by a dead disk).
    pub fn injected_faults(&self) -> u64 {
        self.state.lock().injected
    }

    /// Writes that hit the capacity limit so far.
    pub fn enospc_errors(&self) -> u64 {
        self.state.lock().enospc
    }

    /// Record a line per operation from now on (`#n kind path`), or stop and forget.
    pub fn set_tracing(&self, on: bool) {
        self.state.lock().trace = on.then(Vec::new);
    }

    /// The operations recorded since tracing was turned on.
    pub fn trace(&self) -> Vec<String> {
        self.state.lock().trace.clone().unwrap_or_default()
    }

    /// The bytes of `path` as a reader would see them now (durable and unsynced), without
    /// counting an operation.
    pub fn contents(&self, path: &Path) -> Option<Vec<u8>> {
        let st = self.state.lock();
        let inode = st.lookup(path).ok()?;
        st.inodes.get(&inode).and_then(|f| f.read(0..f.len()))
    }

    /// How many bytes of `path` are not durable yet.
    pub fn unsynced_len(&self, path: &Path) -> Option<usize> {
        let st = self.state.lock();
        let inode = st.lookup(path).ok()?;
        st.inodes.get(&inode).map(|f| f.data.len() - f.durable)
    }

    /// The current names in `dir` (files and subdirectories), sorted, without counting an
    /// operation.
    pub fn names(&self, dir: &Path) -> Vec<String> {
        let st = self.state.lock();
        list(&st, dir).unwrap_or_default()
    }

    /// Replace the contents of the existing file `path` by `f(contents)`, durably, without
    /// counting an operation: damage a file on purpose (a corruption test's bit flip).
    pub fn modify(&self, path: &Path, f: impl FnOnce(&mut Vec<u8>)) -> io::Result<()> {
        let mut st = self.state.lock();
        let inode = st.lookup(path)?;
        let file = st.inodes.get_mut(&inode).ok_or_else(|| not_found(path))?;
        let reserved = file.reserved;
        file.settle_reservation(reserved);
        f(Arc::make_mut(&mut file.data));
        file.durable = file.data.len();
        Ok(())
    }

    /// Run `f` with operation counting and fault injection off (a dead disk works again
    /// meanwhile): a test's own checks between workload steps then leave the operation count,
    /// and so every armed fault's position, unchanged.
    pub fn unobserved<T>(&self, f: impl FnOnce() -> T) -> T {
        struct Resume<'a>(&'a Mutex<State>);
        impl Drop for Resume<'_> {
            fn drop(&mut self) {
                self.0.lock().unobserved -= 1;
            }
        }
        self.state.lock().unobserved += 1;
        let _resume = Resume(&self.state);
        f()
    }

    fn epoch(&self) -> u64 {
        self.epoch.load(Ordering::Acquire)
    }
}

#[cfg(test)]
mod tests;
