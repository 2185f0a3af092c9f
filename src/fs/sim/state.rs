//! The simulated disk: files, directories, counters and faults, behind one mutex.

use std::collections::{BTreeMap, BTreeSet};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::{Fault, OpKind, ENOSPC};

/// SplitMix64: small, fast, and stable forever, so a seed printed today replays tomorrow.
#[derive(Debug, Clone)]
pub(super) struct SplitMix64(pub(super) u64);

impl SplitMix64 {
    pub(super) fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A number in `0..n`; 0 if `n` is 0.
    pub(super) fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            0
        } else {
            (self.next() % n as u64) as usize
        }
    }
}

/// A file's contents: `data[..durable]` is synced, the rest is in the OS only. The bytes are
/// shared copy-on-write, so a fork costs a pointer per file.
///
/// A preallocated file reads as `data` followed by zeros up to `reserved` (appends land at
/// `data.len()`, over the zeros); `reserved_durable` is the extension the last sync made
/// durable.
#[derive(Debug, Clone, Default)]
pub(super) struct Inode {
    pub(super) data: Arc<Vec<u8>>,
    pub(super) durable: usize,
    pub(super) reserved: usize,
    pub(super) reserved_durable: usize,
}

impl Inode {
    /// The file's size as a reader sees it.
    pub(super) fn len(&self) -> usize {
        self.data.len().max(self.reserved)
    }

    /// The bytes a reader sees in `range`; `None` if it runs past the end.
    pub(super) fn read(&self, range: std::ops::Range<usize>) -> Option<Vec<u8>> {
        if range.end > self.len() || range.start > range.end {
            return None;
        }
        let mut bytes = vec![0; range.len()];
        let from_data = range.start.min(self.data.len())..range.end.min(self.data.len());
        bytes[..from_data.len()].copy_from_slice(&self.data[from_data]);
        Some(bytes)
    }

    /// Turn the preallocated zeros up to `reserved` into ordinary bytes of the file.
    pub(super) fn settle_reservation(&mut self, reserved: usize) {
        if reserved > self.data.len() {
            Arc::make_mut(&mut self.data).resize(reserved, 0);
        }
        self.reserved = 0;
        self.reserved_durable = 0;
    }

    pub(super) fn truncate(&mut self, len: usize) {
        if len < self.data.len() {
            Arc::make_mut(&mut self.data).truncate(len);
        }
    }

    pub(super) fn extend(&mut self, bytes: &[u8]) {
        if !bytes.is_empty() {
            Arc::make_mut(&mut self.data).extend_from_slice(bytes);
        }
    }

    /// Zero the given ranges (within the file).
    pub(super) fn zero(&mut self, ranges: &[std::ops::Range<usize>]) {
        if ranges.iter().all(|r| r.is_empty()) {
            return;
        }
        let data = Arc::make_mut(&mut self.data);
        for r in ranges {
            if let Some(bytes) = data.get_mut(r.clone()) {
                bytes.fill(0);
            }
        }
    }
}

#[derive(Debug, Clone)]
pub(super) enum DirOp {
    Link(String, u64),
    Rename(String, String),
    Unlink(String),
}

impl DirOp {
    pub(super) fn apply(&self, names: &mut BTreeMap<String, u64>) {
        match self {
            DirOp::Link(name, inode) => {
                names.insert(name.clone(), *inode);
            }
            DirOp::Rename(from, to) => {
                if let Some(inode) = names.remove(from) {
                    names.insert(to.clone(), inode);
                }
            }
            DirOp::Unlink(name) => {
                names.remove(name);
            }
        }
    }
}

/// Invariant: `durable` with every op of `pending` applied in order equals `current`.
#[derive(Debug, Clone, Default)]
pub(super) struct Dir {
    pub(super) durable: BTreeMap<String, u64>,
    pub(super) current: BTreeMap<String, u64>,
    pub(super) pending: Vec<DirOp>,
}

/// The most recent write handed to the OS: `len` bytes at `offset` of `inode`.
#[derive(Debug, Clone, Copy)]
pub(super) struct LastWrite {
    pub(super) inode: u64,
    pub(super) offset: usize,
    pub(super) len: usize,
}

/// Why an operation was refused before it touched anything.
pub(super) struct Denial {
    pub(super) error: io::Error,
    /// This operation's fault killed the disk: it is the one in flight at the crash.
    pub(super) kills: bool,
}

impl From<Denial> for io::Error {
    fn from(d: Denial) -> io::Error {
        d.error
    }
}

#[derive(Debug)]
pub(super) struct State {
    /// Bumped by every crash; handles and `SimFs` clones of an older epoch are dead.
    pub(super) epoch: u64,
    pub(super) dirs: BTreeMap<PathBuf, Dir>,
    pub(super) inodes: BTreeMap<u64, Inode>,
    pub(super) next_inode: u64,
    /// Held locks: path -> lock id.
    pub(super) locks: BTreeMap<PathBuf, u64>,
    pub(super) next_lock: u64,
    pub(super) counts: [u64; OpKind::ALL.len()],
    pub(super) total: u64,
    pub(super) faults: Vec<Fault>,
    pub(super) dead: bool,
    pub(super) injected: u64,
    pub(super) capacity: Option<u64>,
    /// The most bytes the named files held after a write while a capacity was set.
    pub(super) peak_used: u64,
    pub(super) enospc: u64,
    pub(super) last_write: Option<LastWrite>,
    pub(super) in_flight: Option<(u64, Vec<u8>)>,
    pub(super) rng: SplitMix64,
    pub(super) seed: u64,
    pub(super) trace: Option<Vec<String>>,
    /// Inside [`SimFs::unobserved`](super::SimFs::unobserved): operations are neither counted
    /// nor failed.
    pub(super) unobserved: u32,
}

impl State {
    pub(super) fn new(seed: u64) -> State {
        let mut dirs = BTreeMap::new();
        dirs.insert(PathBuf::from("/"), Dir::default());
        dirs.insert(PathBuf::new(), Dir::default());
        State {
            epoch: 0,
            dirs,
            inodes: BTreeMap::new(),
            next_inode: 1,
            locks: BTreeMap::new(),
            next_lock: 1,
            counts: [0; OpKind::ALL.len()],
            total: 0,
            faults: Vec::new(),
            dead: false,
            injected: 0,
            capacity: None,
            peak_used: 0,
            enospc: 0,
            last_write: None,
            in_flight: None,
            rng: SplitMix64(seed),
            seed,
            trace: None,
            unobserved: 0,
        }
    }

    /// Count an operation and decide whether it may run.
    pub(super) fn begin(&mut self, epoch: u64, kind: OpKind, path: &Path) -> Result<(), Denial> {
        if epoch != self.epoch {
            return Err(Denial {
                error: io::Error::other(format!(
                    "{kind} {}: the handle was lost in a simulated crash",
                    path.display()
                )),
                kills: false,
            });
        }
        if self.unobserved > 0 {
            return Ok(());
        }
        let nth_of_kind = self.counts[kind.index()];
        let nth = self.total;
        self.counts[kind.index()] += 1;
        self.total += 1;
        if let Some(trace) = &mut self.trace {
            trace.push(format!("#{nth} {kind} {}", path.display()));
        }
        if self.dead {
            return Err(Denial {
                error: io::Error::other(format!(
                    "{kind} {}: the simulated disk is dead",
                    path.display()
                )),
                kills: false,
            });
        }
        let fired = self.faults.iter().find(|f| match f.kind {
            None => f.nth == nth,
            Some(k) => k == kind && f.nth == nth_of_kind,
        });
        if let Some(fault) = fired.copied() {
            self.injected += 1;
            self.dead |= fault.dead;
            return Err(Denial {
                error: io::Error::other(format!(
                    "injected fault: {kind} #{nth_of_kind} (operation #{nth}) on {}",
                    path.display()
                )),
                kills: fault.dead,
            });
        }
        Ok(())
    }

    pub(super) fn split(path: &Path) -> io::Result<(PathBuf, String)> {
        let name = path.file_name().and_then(|n| n.to_str()).ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("{} does not name a file", path.display()),
            )
        })?;
        let parent = path.parent().unwrap_or(Path::new("")).to_path_buf();
        Ok((parent, name.to_string()))
    }

    pub(super) fn dir_mut(&mut self, dir: &Path) -> io::Result<&mut Dir> {
        self.dirs.get_mut(dir).ok_or_else(|| not_found(dir))
    }

    pub(super) fn lookup(&self, path: &Path) -> io::Result<u64> {
        let (parent, name) = State::split(path)?;
        self.dirs
            .get(&parent)
            .and_then(|d| d.current.get(&name))
            .copied()
            .ok_or_else(|| not_found(path))
    }

    /// Bind `path` to a new empty file.
    pub(super) fn link_new(&mut self, path: &Path) -> io::Result<u64> {
        let (parent, name) = State::split(path)?;
        if self.dirs.contains_key(path) {
            return Err(io::Error::new(
                io::ErrorKind::IsADirectory,
                format!("{} is a directory", path.display()),
            ));
        }
        let inode = self.next_inode;
        let dir = self.dir_mut(&parent)?;
        dir.current.insert(name.clone(), inode);
        dir.pending.push(DirOp::Link(name, inode));
        self.next_inode += 1;
        self.inodes.insert(inode, Inode::default());
        Ok(inode)
    }

    /// Bytes held by the files that have a name.
    pub(super) fn used_bytes(&self) -> u64 {
        let live: BTreeSet<u64> = self
            .dirs
            .values()
            .flat_map(|d| d.current.values().copied())
            .collect();
        live.iter()
            .filter_map(|i| self.inodes.get(i))
            .map(|f| f.data.len() as u64)
            .sum()
    }

    /// Hand `data` to the OS as one write to `inode`.
    pub(super) fn write(
        &mut self,
        epoch: u64,
        inode: u64,
        path: &Path,
        data: &[u8],
    ) -> io::Result<()> {
        if let Err(denial) = self.begin(epoch, OpKind::Write, path) {
            if denial.kills {
                self.in_flight = Some((inode, data.to_vec()));
            }
            return Err(denial.error);
        }
        let mut len = data.len();
        let mut full = false;
        if let Some(capacity) = self.capacity {
            let used = self.used_bytes();
            let room = capacity.saturating_sub(used);
            if (len as u64) > room {
                // Fits in usize: room < len.
                len = room as usize;
                full = true;
            }
            self.peak_used = self.peak_used.max(used + len as u64);
        }
        let file = self
            .inodes
            .get_mut(&inode)
            .ok_or_else(|| io::Error::other(format!("{}: the file is gone", path.display())))?;
        let offset = file.data.len();
        file.extend(&data[..len]);
        if len > 0 {
            self.last_write = Some(LastWrite { inode, offset, len });
        }
        if full {
            self.enospc += 1;
            return Err(io::Error::from_raw_os_error(ENOSPC));
        }
        Ok(())
    }

    /// Unnamed files cannot come back after a crash: drop them.
    pub(super) fn collect_garbage(&mut self) {
        let live: BTreeSet<u64> = self
            .dirs
            .values()
            .flat_map(|d| d.current.values().copied())
            .collect();
        self.inodes.retain(|i, _| live.contains(i));
    }
}

pub(super) fn not_found(path: &Path) -> io::Error {
    io::Error::new(
        io::ErrorKind::NotFound,
        format!("{} does not exist", path.display()),
    )
}

pub(super) fn list(st: &State, dir: &Path) -> io::Result<Vec<String>> {
    let d = st.dirs.get(dir).ok_or_else(|| not_found(dir))?;
    let mut names: Vec<String> = d.current.keys().cloned().collect();
    for sub in st.dirs.keys() {
        if sub.parent() == Some(dir) {
            if let Some(name) = sub.file_name().and_then(|n| n.to_str()) {
                names.push(name.to_string());
            }
        }
    }
    names.sort();
    Ok(names)
}
