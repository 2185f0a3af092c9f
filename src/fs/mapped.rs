//! [`MappedLogFile`]: a log file whose appends are copies into a shared memory mapping of the
//! file, not `write` system calls.
//!
//! A small write-ahead log record appended with `write` costs a system call (about a quarter
//! of a one-thread random-insert profile: `ext4_da_write_begin`, `generic_perform_write` and
//! the entry and exit). A shared mapping of the file puts the bytes in the same page cache
//! pages with a `memcpy`: they survive a crash of the process exactly as written bytes do (the
//! kernel owns the pages), and `fdatasync` on the file writes them back like any dirty page.
//! RocksDB's `allow_mmap_writes` is the same idea.
//!
//! The file is mapped one [`WINDOW`] at a time: when appends pass the end of a window it is
//! unmapped and the next one mapped, so the process's resident memory holds at most one window
//! of the log whatever the segment's size (the pages stay in the page cache).
//!
//! Invariants:
//! - Every byte of the mapped window lies inside the file and is allocated with `fallocate`
//!   before the window is mapped. A store into a mapped page past the end of its file, or one
//!   the file system cannot find space for, is a `SIGBUS` that kills the process; allocating
//!   first turns a full disk into an `ENOSPC` error from `fallocate`, returned before any
//!   record that needed the space is acknowledged.
//! - The file is created by this process and only appended through this value; nothing
//!   truncates it while it is mapped (`preallocate(0)` unmaps first). Another process
//!   truncating a database's live WAL segment is outside the contract (the database holds
//!   its lock file).
//! - The bytes past the last append read as zeros (fallocated space), which readers of the
//!   log take as its end.
//!
//! Only file systems where a store into allocated space cannot fail get a mapped file: ext2/3/4,
//! XFS and tmpfs ([`maps_safely`]). On a copy-on-write file system (btrfs, ZFS) a store into a
//! page whose extent a snapshot shares must find new space, and on a network file system the
//! server may refuse it, so there `RealFs::create_mapped` gives the plain buffered file, as it
//! does where `fallocate` or `mmap` is not supported.
//!
//! Each open segment keeps one window mapped: the current segment, and under `NoSync` the
//! closed segments waiting for their flush (at most `max_immutable_memtables` more).

use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::fs::FileExt;

use memmap2::{MmapMut, MmapOptions};

use super::WritableFile;

/// Bytes mapped at a time, and the step in which the file is allocated ahead of the appends.
/// A multiple of every page size Linux uses for file mappings.
pub const WINDOW: u64 = 1 << 20;

/// Whether `file` lies on a file system where stores into space allocated with `fallocate`
/// cannot fail (see the module docs): ext2/3/4, XFS or tmpfs.
pub(super) fn maps_safely(file: &File) -> io::Result<bool> {
    // SAFETY: an all-zero `statfs` is a valid value of this plain C struct.
    let mut st: libc::statfs = unsafe { std::mem::zeroed() };
    // SAFETY: fstatfs writes into `st`, which lives for the call, about a descriptor this
    // `File` keeps open.
    if unsafe { libc::fstatfs(file.as_raw_fd(), &mut st) } != 0 {
        return Err(io::Error::last_os_error());
    }
    // `f_type`'s integer type differs between architectures; the magic numbers fit in 32 bits.
    let kind = st.f_type as u64 & 0xffff_ffff;
    Ok([
        libc::EXT4_SUPER_MAGIC as u64,
        libc::XFS_SUPER_MAGIC as u64,
        libc::TMPFS_MAGIC as u64,
    ]
    .contains(&kind))
}

/// Appends at least this long are written with `pwrite` instead of copied into the mapping.
/// The first store into each page of the mapping is a page fault, which cost about 4 µs on
/// this machine's ext4 (page allocation and zeroing, `ext4_page_mkwrite`): nothing for a
/// 130-byte record (a fault per 30 of them, against a system call each), but a 130 KB batch
/// of 1,000 puts paid 32 faults where one `pwrite` copies it (fillbatch 3.0-3.8M -> 2.1-2.6M
/// puts/s through the mapping alone).
pub const DIRECT_WRITE_MIN: usize = 4096;

/// Allocate `[from, to)` of `file` with `fallocate` (mode 0: the file grows to `to` if shorter).
fn allocate(file: &File, from: u64, to: u64) -> io::Result<()> {
    let offset = libc::off_t::try_from(from)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "offset too large"))?;
    let len = libc::off_t::try_from(to.saturating_sub(from))
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "length too large"))?;
    if len == 0 {
        return Ok(());
    }
    loop {
        // SAFETY: fallocate takes a descriptor this `File` keeps open, and plain integers.
        let rc = unsafe { libc::fallocate(file.as_raw_fd(), 0, offset, len) };
        if rc == 0 {
            return Ok(());
        }
        let e = io::Error::last_os_error();
        if e.kind() != io::ErrorKind::Interrupted {
            return Err(e);
        }
    }
}

/// A log file appended through a shared mapping (see the module docs).
pub struct MappedLogFile {
    file: File,
    /// The mapped window, `[window_start, window_start + WINDOW)`, if any.
    window: Option<MmapMut>,
    window_start: u64,
    /// Bytes appended so far: the append position.
    appended: u64,
    /// The file's size: every byte below it is allocated.
    allocated: u64,
}

impl MappedLogFile {
    /// Wrap `file`, a new empty file opened for reading and writing, and allocate and map its
    /// first window, so that a file system that cannot `fallocate` or `mmap` fails here, where
    /// the caller can still fall back to `write`. The caller promises that nothing else
    /// truncates the file while this value lives (the module invariants).
    pub(crate) fn new(file: File) -> io::Result<MappedLogFile> {
        let mut log = MappedLogFile {
            file,
            window: None,
            window_start: 0,
            appended: 0,
            allocated: 0,
        };
        log.map_window_at(0)?;
        Ok(log)
    }

    /// Map the window holding offset `at`, allocating it first.
    fn map_window_at(&mut self, at: u64) -> io::Result<()> {
        // Unmap the old window first: its dirty pages stay in the page cache.
        self.window = None;
        let start = at - at % WINDOW;
        let end = start + WINDOW;
        if self.allocated < end {
            allocate(&self.file, self.allocated, end)?;
            self.allocated = end;
        }
        // SAFETY: `[start, end)` lies inside the file and is allocated (above), and nothing
        // truncates the file while the window is mapped (module invariants), so no access to
        // the mapping can fault with SIGBUS. The mapping is only written through `append`,
        // which never hands out references into it.
        let map = unsafe {
            MmapOptions::new()
                .offset(start)
                .len(WINDOW as usize)
                .map_mut(&self.file)?
        };
        self.window = Some(map);
        self.window_start = start;
        Ok(())
    }
}

impl WritableFile for MappedLogFile {
    /// Copies `data` into the mapping, or writes it with `pwrite` if it is [`DIRECT_WRITE_MIN`]
    /// bytes or more (both land in the same page cache).
    fn append(&mut self, data: &[u8]) -> io::Result<()> {
        if data.len() >= DIRECT_WRITE_MIN {
            // A system call writes through the file, not the mapping: no store can fault.
            self.file.write_all_at(data, self.appended)?;
            self.appended += data.len() as u64;
            self.allocated = self.allocated.max(self.appended);
            return Ok(());
        }
        let mut rest = data;
        while !rest.is_empty() {
            let in_window = self.appended - self.window_start;
            let window = match self.window.as_mut() {
                Some(w) if in_window < WINDOW => w,
                _ => {
                    self.map_window_at(self.appended)?;
                    continue;
                }
            };
            let at = in_window as usize;
            let n = rest.len().min(window.len() - at);
            window[at..at + n].copy_from_slice(&rest[..n]);
            self.appended += n as u64;
            rest = &rest[n..];
        }
        Ok(())
    }

    /// Nothing to do: appended bytes are in the page cache already.
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }

    /// `fdatasync` writes back the pages dirtied through the mapping like any others.
    fn sync(&mut self) -> io::Result<()> {
        self.file.sync_data()
    }

    /// Unlike the buffered file, a mapped file never shrinks to a nonzero `len` (its space is
    /// allocated a window at a time anyway), and appends after `preallocate(0)` allocate up to
    /// the end of their window again, leaving zeros after the last byte (a clean end for
    /// readers of the log).
    fn preallocate(&mut self, len: u64) -> io::Result<()> {
        if len == 0 {
            // Give back the zeros: unmap, then cut the file at the last append.
            self.window = None;
            self.file.set_len(self.appended)?;
            self.allocated = self.appended;
        } else if len > self.allocated {
            allocate(&self.file, self.allocated, len)?;
            self.allocated = len;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs::OpenOptions;

    fn new_file(path: &std::path::Path) -> MappedLogFile {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(path)
            .expect("create the file");
        MappedLogFile::new(file).expect("fallocate works on the test file system")
    }

    #[test]
    fn only_file_systems_that_back_every_allocated_store_map() {
        let proc_file = File::open("/proc/self/status").expect("procfs is mounted");
        assert!(!maps_safely(&proc_file).expect("fstatfs"), "procfs");
        // /dev/shm is a tmpfs wherever it exists (containers included).
        if let Ok(shm) = File::open("/dev/shm") {
            assert!(maps_safely(&shm).expect("fstatfs"), "tmpfs");
        }
    }

    #[test]
    fn appends_across_windows_read_back_followed_by_zeros_until_released() {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let path = dir.path().join("log");
        let mut log = new_file(&path);
        let mut expected = Vec::new();
        // Small records, one crossing the first window's end, and one larger than a window.
        let mut i = 0u32;
        while expected.len() < WINDOW as usize + 1000 {
            let record: Vec<u8> = (0..97).map(|j| (i * 7 + j) as u8).collect();
            log.append(&record).expect("append");
            expected.extend_from_slice(&record);
            i += 1;
        }
        let big: Vec<u8> = (0..(WINDOW as usize * 2 + 5))
            .map(|j| (j % 251) as u8)
            .collect();
        log.append(&big)
            .expect("append a record larger than a window");
        expected.extend_from_slice(&big);
        // Records just under the direct-write size, through the mapping, across a window end.
        while expected.len() < 4 * WINDOW as usize + 9000 {
            let record: Vec<u8> = (0..DIRECT_WRITE_MIN - 1)
                .map(|j| (expected.len() + j) as u8)
                .collect();
            log.append(&record).expect("append");
            expected.extend_from_slice(&record);
        }
        log.flush().expect("flush");
        log.sync().expect("sync");

        let on_disk = std::fs::read(&path).expect("read the file");
        assert!(
            on_disk.len() > expected.len(),
            "allocated ahead of the appends"
        );
        assert_eq!(on_disk.len() as u64 % WINDOW, 0);
        assert_eq!(&on_disk[..expected.len()], &expected[..]);
        assert!(on_disk[expected.len()..].iter().all(|&b| b == 0));

        log.preallocate(0).expect("release");
        assert_eq!(std::fs::read(&path).expect("read"), expected);
        // Appends after a release grow the file again.
        log.append(b"after").expect("append after release");
        expected.extend_from_slice(b"after");
        drop(log);
        let on_disk = std::fs::read(&path).expect("read");
        assert_eq!(&on_disk[..expected.len()], &expected[..]);
        assert!(on_disk[expected.len()..].iter().all(|&b| b == 0));
    }

    #[test]
    fn preallocate_allocates_ahead_and_never_shrinks_above_zero() {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let path = dir.path().join("log");
        let mut log = new_file(&path);
        log.append(b"abc").expect("append");
        log.preallocate(3 * WINDOW).expect("preallocate");
        assert_eq!(std::fs::metadata(&path).expect("stat").len(), 3 * WINDOW);
        log.preallocate(WINDOW)
            .expect("a smaller preallocation is a no-op");
        assert_eq!(std::fs::metadata(&path).expect("stat").len(), 3 * WINDOW);
        log.preallocate(0).expect("release");
        assert_eq!(std::fs::read(&path).expect("read"), b"abc");
    }
}
