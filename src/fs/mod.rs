//! The file-system layer: every byte Strata reads or writes goes through [`FileSystem`].
//!
//! The engine never touches `std::fs` directly, so tests can swap in a file system that
//! injects I/O errors, drops unsynced data or tears the last write (the reliability suite).
//!
//! Contract the engine relies on (and that the real implementation provides on Linux):
//! - `WritableFile::append` buffers; `flush` hands the bytes to the OS (they survive a process
//!   crash); `sync` makes them durable (they survive a power cut).
//! - Creating, renaming or removing a file is durable only after `sync_dir` on its directory.
//! - `rename` replaces the target atomically.
//! - `WritableFile::preallocate` extends a file with zeros that appends then overwrite; the
//!   extension may survive a crash that loses the appends (a zero-filled tail).
//!
//! Three implementations: [`RealFs`] over `std::fs` (the default); [`SimFs`], an in-memory file
//! system for tests that keeps unsynced data apart, so it can simulate a crash (dropping,
//! keeping part of or tearing what was not synced) and fail any chosen operation; and
//! [`HoldUnsyncedFs`], `RealFs` holding appended bytes in process memory until `sync`, so that
//! killing the process acts as a power cut (the kill tests).

#[cfg(target_os = "linux")]
pub mod mapped;
pub mod power_cut;
mod real;
pub mod sim;

use std::fmt::Debug;
use std::io;
use std::path::Path;
use std::sync::Arc;

#[cfg(target_os = "linux")]
pub use mapped::MappedLogFile;
pub use power_cut::HoldUnsyncedFs;
pub use real::RealFs;
pub use sim::{CrashMode, Fault, OpKind, SimFs};

/// A file opened for appending.
pub trait WritableFile: Send + Sync {
    /// Append bytes (possibly buffered in user space).
    fn append(&mut self, data: &[u8]) -> io::Result<()>;
    /// Hand buffered bytes to the operating system.
    fn flush(&mut self) -> io::Result<()>;
    /// Flush, then make the file's contents durable (fdatasync).
    fn sync(&mut self) -> io::Result<()>;
    /// Set the file's size to `len` bytes, or to the bytes appended so far if that is more,
    /// without moving the append position: the space past the appended bytes reads as zeros,
    /// and later appends overwrite them in place. Extended this way (a sparse `ftruncate` for
    /// the buffered file; allocated space for a [`MappedLogFile`], which never shrinks to a
    /// nonzero `len`), the file's size does not change at each append, so an fdatasync after
    /// an append has no size change to commit (a third faster on ext4). `preallocate(0)` gives
    /// the zeros back. The
    /// new size is made durable by the next `sync`; a crash may leave zeros after the last byte
    /// appended, so readers of a preallocated file must treat a zero-filled tail as its end.
    /// The default does nothing (a hint).
    fn preallocate(&mut self, len: u64) -> io::Result<()> {
        let _ = len;
        Ok(())
    }
}

/// A file opened for positional reads. Shared between threads.
pub trait RandomAccessFile: Send + Sync {
    /// Read exactly `len` bytes at `offset`; a short read is an `UnexpectedEof` error.
    fn read_at(&self, offset: u64, len: usize) -> io::Result<Vec<u8>>;
    /// [`read_at`](Self::read_at) into `buf` (emptied first), so the caller can reuse a
    /// buffer. The default reads into a new buffer and copies.
    fn read_at_into(&self, offset: u64, len: usize, buf: &mut Vec<u8>) -> io::Result<()> {
        let bytes = self.read_at(offset, len)?;
        buf.clear();
        buf.extend_from_slice(&bytes);
        Ok(())
    }
    /// The file's size in bytes.
    fn size(&self) -> io::Result<u64>;
}

/// An exclusive lock on a file, released on drop.
pub trait FileLock: Send + Sync {}

/// The operations Strata needs from a file system.
pub trait FileSystem: Send + Sync + Debug {
    /// Create a directory and its parents if missing.
    fn create_dir_all(&self, dir: &Path) -> io::Result<()>;
    /// Create (or truncate) a file for appending.
    fn create(&self, path: &Path) -> io::Result<Box<dyn WritableFile>>;
    /// Create a new file for a log of small appends, like [`create`](Self::create), except that
    /// an implementation may copy appends into a shared mapping of the file instead of making
    /// a system call each ([`RealFs`] does, see [`MappedLogFile`]). `flush` then has nothing
    /// to do: appended bytes are in the operating system's page cache when `append` returns.
    /// The default is `create`.
    fn create_mapped(&self, path: &Path) -> io::Result<Box<dyn WritableFile>> {
        self.create(path)
    }
    /// Open an existing file for positional reads.
    fn open(&self, path: &Path) -> io::Result<Arc<dyn RandomAccessFile>>;
    /// Read a whole file.
    fn read_all(&self, path: &Path) -> io::Result<Vec<u8>> {
        let file = self.open(path)?;
        let len = usize::try_from(file.size()?)
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidData, "file too large"))?;
        file.read_at(0, len)
    }
    /// Atomically rename `from` to `to`, replacing `to`.
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()>;
    /// Remove a file.
    fn remove_file(&self, path: &Path) -> io::Result<()>;
    /// The names of the entries in a directory.
    fn list_dir(&self, dir: &Path) -> io::Result<Vec<String>>;
    /// Make creations, renames and removals in `dir` durable.
    fn sync_dir(&self, dir: &Path) -> io::Result<()>;
    /// Take an exclusive lock on `path` (created if missing); `Ok(None)` if someone holds it.
    fn try_lock(&self, path: &Path) -> io::Result<Option<Box<dyn FileLock>>>;
    /// True if `path` exists.
    fn exists(&self, path: &Path) -> bool;
}
