//! [`RealFs`]: the file-system trait over `std::fs`, buffering appends in user space (logs
//! made with `create_mapped` copy appends into a mapping instead: [`MappedLogFile`]).

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::Path;
use std::sync::Arc;

#[cfg(target_os = "linux")]
use super::MappedLogFile;
use super::{FileLock, FileSystem, RandomAccessFile, WritableFile};

/// The real file system (`std::fs`).
#[derive(Debug, Default, Clone, Copy)]
pub struct RealFs;

const WRITE_BUFFER: usize = 64 * 1024;

struct RealWritable {
    file: File,
    buf: Vec<u8>,
    /// Bytes appended (written or in `buf`).
    appended: u64,
    /// The size [`WritableFile::preallocate`] set, if it is above `appended`.
    preallocated: u64,
}

impl WritableFile for RealWritable {
    fn append(&mut self, data: &[u8]) -> io::Result<()> {
        self.appended += data.len() as u64;
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

    fn preallocate(&mut self, len: u64) -> io::Result<()> {
        // The file is not opened with O_APPEND: writes go to the file position, which
        // `set_len` leaves where it is, so appends overwrite the zeros.
        let size = len.max(self.appended);
        if size != self.preallocated.max(self.appended) {
            self.file.set_len(size)?;
        }
        self.preallocated = size;
        Ok(())
    }
}

struct RealRandomAccess {
    file: File,
}

impl RandomAccessFile for RealRandomAccess {
    /// `pread` into a buffer that is never zeroed first (zeroing a 4 KiB block buffer was 4%
    /// of a cache-missing read profile); a short read is `UnexpectedEof`, as with
    /// `read_exact_at`.
    fn read_at(&self, offset: u64, len: usize) -> io::Result<Vec<u8>> {
        let mut buf = Vec::new();
        self.read_at_into(offset, len, &mut buf)?;
        Ok(buf)
    }

    fn read_at_into(&self, offset: u64, len: usize, buf: &mut Vec<u8>) -> io::Result<()> {
        use std::os::fd::AsRawFd;
        buf.clear();
        buf.reserve(len);
        while buf.len() < len {
            let at = offset
                .checked_add(buf.len() as u64)
                .and_then(|at| libc::off_t::try_from(at).ok())
                .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "offset too large"))?;
            let filled = buf.len();
            let spare = &mut buf.spare_capacity_mut()[..len - filled];
            // SAFETY: `spare` is writable memory of `spare.len()` bytes owned by `buf`, and the
            // descriptor is open for as long as `self.file` lives.
            let n = unsafe {
                libc::pread(
                    self.file.as_raw_fd(),
                    spare.as_mut_ptr().cast(),
                    spare.len(),
                    at,
                )
            };
            match n {
                n if n < 0 => {
                    let e = io::Error::last_os_error();
                    if e.kind() != io::ErrorKind::Interrupted {
                        return Err(e);
                    }
                }
                0 => {
                    return Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "failed to fill whole buffer",
                    ))
                }
                // SAFETY: pread initialized the first `n` bytes of `spare` (n <= spare.len()).
                n => unsafe { buf.set_len(buf.len() + n as usize) },
            }
        }
        Ok(())
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
            appended: 0,
            preallocated: 0,
        }))
    }

    /// A [`MappedLogFile`] on a file system where stores into allocated space cannot fail
    /// (ext4, XFS, tmpfs: see [`mapped`](super::mapped)); elsewhere, or where `fallocate` or
    /// `mmap` is not supported, the buffered file of [`create`](FileSystem::create).
    #[cfg(target_os = "linux")]
    fn create_mapped(&self, path: &Path) -> io::Result<Box<dyn WritableFile>> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(path)?;
        if !super::mapped::maps_safely(&file)? {
            return self.create(path);
        }
        // A file only this database appends to, under its lock file: nothing truncates it.
        match MappedLogFile::new(file) {
            Ok(mapped) => Ok(Box::new(mapped)),
            Err(e)
                if matches!(
                    e.raw_os_error(),
                    Some(libc::EOPNOTSUPP | libc::ENOSYS | libc::ENODEV)
                ) =>
            {
                self.create(path)
            }
            Err(e) => Err(e),
        }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_return_exact_ranges_and_short_reads_are_unexpected_eof() {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let path = dir.path().join("f");
        let data: Vec<u8> = (0..10_000u32).map(|i| (i % 251) as u8).collect();
        std::fs::write(&path, &data).expect("write the file");
        let file = RealFs.open(&path).expect("open");
        for (offset, len) in [(0, 0), (0, 1), (17, 4096), (5_000, 5_000), (9_999, 1)] {
            let got = file
                .read_at(offset as u64, len)
                .expect("read inside the file");
            assert_eq!(got, &data[offset..offset + len], "range {offset}+{len}");
        }
        for (offset, len) in [(9_000, 1_001), (10_000, 1), (u64::MAX - 1, 4)] {
            let err = file.read_at(offset, len).expect_err("read past the end");
            assert!(
                matches!(
                    err.kind(),
                    io::ErrorKind::UnexpectedEof | io::ErrorKind::InvalidInput
                ),
                "{offset}+{len}: {err}"
            );
        }
    }
}
