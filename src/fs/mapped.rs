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
//! A file system that does not support `fallocate` gets the plain buffered file instead (see
//! [`RealFs::create_mapped`](super::RealFs)).

use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;

use memmap2::{MmapMut, MmapOptions};

use super::WritableFile;

/// Bytes mapped at a time, and the step in which the file is allocated ahead of the appends.
/// A multiple of every page size Linux uses for file mappings.
pub const WINDOW: u64 = 1 << 20;

/// Allocate `[from, to)` of `file` with `fallocate` (mode 0: the file grows to `to` if shorter).
pub(super) fn allocate(file: &File, from: u64, to: u64) -> io::Result<()> {
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
    /// Wrap `file`, a new empty file opened for reading and writing, and allocate its first
    /// window. Fails (and the caller falls back to `write`) if the file system cannot
    /// `fallocate`.
    pub fn new(file: File) -> io::Result<MappedLogFile> {
        allocate(&file, 0, WINDOW)?;
        Ok(MappedLogFile {
            file,
            window: None,
            window_start: 0,
            appended: 0,
            allocated: WINDOW,
        })
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
    fn append(&mut self, data: &[u8]) -> io::Result<()> {
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
