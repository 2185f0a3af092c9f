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

use std::fmt::Debug;
use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::Arc;

/// A file opened for appending.
pub trait WritableFile: Send + Sync {
    /// Append bytes (possibly buffered in user space).
    fn append(&mut self, data: &[u8]) -> io::Result<()>;
    /// Hand buffered bytes to the operating system.
    fn flush(&mut self) -> io::Result<()>;
    /// Flush, then make the file's contents durable (fdatasync).
    fn sync(&mut self) -> io::Result<()>;
}

/// A file opened for positional reads. Shared between threads.
pub trait RandomAccessFile: Send + Sync {
    /// Read exactly `len` bytes at `offset`; a short read is an `UnexpectedEof` error.
    fn read_at(&self, offset: u64, len: usize) -> io::Result<Vec<u8>>;
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

/// The real file system (`std::fs`).
#[derive(Debug, Default, Clone, Copy)]
pub struct RealFs;

const WRITE_BUFFER: usize = 64 * 1024;

struct RealWritable {
    file: File,
    buf: Vec<u8>,
}

impl WritableFile for RealWritable {
    fn append(&mut self, data: &[u8]) -> io::Result<()> {
        if self.buf.len() + data.len() > WRITE_BUFFER {
            self.flush()?;
        }
        if data.len() >= WRITE_BUFFER {
            self.file.write_all(data)
        } else {
            self.buf.extend_from_slice(data);
            Ok(())
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        if !self.buf.is_empty() {
            let result = self.file.write_all(&self.buf);
            self.buf.clear();
            result?;
        }
        Ok(())
    }

    fn sync(&mut self) -> io::Result<()> {
        self.flush()?;
        self.file.sync_data()
    }
}

struct RealRandomAccess {
    file: File,
}

impl RandomAccessFile for RealRandomAccess {
    fn read_at(&self, offset: u64, len: usize) -> io::Result<Vec<u8>> {
        let mut buf = vec![0; len];
        self.file.read_exact_at(&mut buf, offset)?;
        Ok(buf)
    }

    fn size(&self) -> io::Result<u64> {
        Ok(self.file.metadata()?.len())
    }
}

struct RealLock {
    _file: File,
}

impl FileLock for RealLock {}

impl FileSystem for RealFs {
    fn create_dir_all(&self, dir: &Path) -> io::Result<()> {
        std::fs::create_dir_all(dir)
    }

    fn create(&self, path: &Path) -> io::Result<Box<dyn WritableFile>> {
        let file = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .open(path)?;
        Ok(Box::new(RealWritable {
            file,
            buf: Vec::with_capacity(WRITE_BUFFER),
        }))
    }

    fn open(&self, path: &Path) -> io::Result<Arc<dyn RandomAccessFile>> {
        Ok(Arc::new(RealRandomAccess {
            file: File::open(path)?,
        }))
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        std::fs::rename(from, to)
    }

    fn remove_file(&self, path: &Path) -> io::Result<()> {
        std::fs::remove_file(path)
    }

    fn list_dir(&self, dir: &Path) -> io::Result<Vec<String>> {
        let mut names = Vec::new();
        for entry in std::fs::read_dir(dir)? {
            if let Some(name) = entry?.file_name().to_str() {
                names.push(name.to_string());
            }
        }
        Ok(names)
    }

    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        File::open(dir)?.sync_all()
    }

    fn try_lock(&self, path: &Path) -> io::Result<Option<Box<dyn FileLock>>> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)?;
        match file.try_lock() {
            Ok(()) => Ok(Some(Box::new(RealLock { _file: file }))),
            Err(std::fs::TryLockError::WouldBlock) => Ok(None),
            Err(std::fs::TryLockError::Error(e)) => Err(e),
        }
    }

    fn exists(&self, path: &Path) -> bool {
        path.exists()
    }
}
