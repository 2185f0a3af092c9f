//! [`HoldUnsyncedFs`]: the real file system, except that appended bytes stay in process memory
//! until `sync`, so killing the process loses exactly the file data a power cut would lose.
//!
//! A `SIGKILL` of a process on [`RealFs`](super::RealFs) loses nothing the process handed to the
//! OS: the page cache survives. That tests a process crash, not a power cut. A writer running on
//! `HoldUnsyncedFs` keeps every appended byte in its own memory until
//! [`WritableFile::sync`] and only then writes it to the real file and fsyncs it, so a kill drops
//! everything not synced, as the worst power cut would (`CrashMode::DropUnsynced` of
//! [`SimFs`](super::SimFs), for file data). The kill tests run the `strata write-loop` child with
//! `--power-cut` and hold the database to the power-cut contract: every write acknowledged with
//! sync survives, the rest is a prefix of the commit order.
//!
//! # What it models
//!
//! - **Appends are held until sync.** `append` and `flush` put bytes in a per-file buffer in
//!   memory; `sync` writes the buffer to the file (one `write(2)`) and fsyncs (`fdatasync`). A
//!   kill during `sync` may keep all, part or none of that write: a power cut during an fsync
//!   may too, and nothing was acknowledged on it yet.
//! - **Read-your-writes inside the process.** A file opened for reading while its writer holds
//!   bytes (or after the writer was dropped holding bytes) reads them, and its size counts them:
//!   the process sees what it would see through the page cache. The held bytes are kept per
//!   file (by device and inode), so they follow the file through `rename` and vanish with it
//!   when it is removed.
//! - **A handle dropped without `sync`** leaves its bytes held in memory (readable by this
//!   process, lost by a kill), as unsynced data the page cache never wrote back.
//!
//! # What it does not model
//!
//! - **Directory operations are immediate and durable.** `create`, `rename` and `remove_file`
//!   go straight to the real file system, so a kill keeps every one of them, as if each
//!   directory were fsynced after every change. A power cut can undo creations, renames and
//!   removals not followed by `sync_dir`: the [`SimFs`](super::SimFs) sweeps cover that (every
//!   crash mode undoes some or all unsynced directory operations).
//! - **Partial survival of unsynced data.** A kill drops all held bytes; a real power cut may
//!   keep a prefix, tear the last write, zero a tail or write pages back out of order. `SimFs`
//!   covers those (`KeepRandomPrefix`, `TearLastWrite`, `ZeroFilledTail`, `ReorderedPages`).
//! - **File sizes and metadata.** A file created and never synced exists with length 0 after a
//!   kill (its name is kept, its data is not), never with a size ahead of its data.
//! - **Truncation.** `create` of an existing name truncates it at once, on disk; a power cut
//!   could bring the old contents back with the old name.
//! - **Several writers of one file**, or one file written through two names: the engine never
//!   does either (a file is written once, through one handle, then only read).
//! - **Other processes** reading the files see only the synced bytes.
//!
//! # Example
//!
//! ```
//! use std::sync::Arc;
//! use strata::fs::{FileSystem, HoldUnsyncedFs};
//!
//! let dir = tempfile::tempdir()?;
//! let fs = HoldUnsyncedFs::new();
//! let path = dir.path().join("f");
//! let mut file = fs.create(&path)?;
//! file.append(b"held")?;
//! file.flush()?;
//! assert_eq!(fs.read_all(&path)?, b"held"); // this process reads its writes
//! assert_eq!(std::fs::read(&path)?, b""); // the disk has none of them: a kill loses them
//! file.sync()?;
//! assert_eq!(std::fs::read(&path)?, b"held");
//! # Ok::<(), std::io::Error>(())
//! ```

use std::collections::HashMap;
use std::fmt;
use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::Path;
use std::sync::Arc;

use parking_lot::Mutex;

use super::{FileLock, FileSystem, RandomAccessFile, RealFs, WritableFile};

/// A file's identity, which follows it through renames: (device, inode).
type FileId = (u64, u64);

fn file_id(meta: &std::fs::Metadata) -> FileId {
    (meta.dev(), meta.ino())
}

/// A file with bytes appended since its last sync (or a writer that may still append).
struct Held {
    /// The write handle; while the entry exists it also keeps the inode from being reused.
    file: File,
    /// Bytes written to the real file (all of them synced, or being synced).
    written: u64,
    /// Bytes appended and not synced: in this process's memory only.
    pending: Vec<u8>,
    /// The length `preallocate` extended the real file to (at once: it is not held).
    preallocated: u64,
    /// The `WritableFile` handle is still alive.
    writer_alive: bool,
}

type Table = Arc<Mutex<HashMap<FileId, Arc<Mutex<Held>>>>>;

/// [`RealFs`] with appended bytes held in memory until `sync`; see the
/// [module documentation](self). Cheap to clone: clones share the held bytes.
#[derive(Clone, Default)]
pub struct HoldUnsyncedFs {
    inner: RealFs,
    held: Table,
}

impl fmt::Debug for HoldUnsyncedFs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HoldUnsyncedFs")
            .field("files_with_held_bytes", &self.held.lock().len())
            .field("held_bytes", &self.held_bytes())
            .finish()
    }
}

impl HoldUnsyncedFs {
    /// A wrapper around the real file system holding nothing yet.
    pub fn new() -> HoldUnsyncedFs {
        HoldUnsyncedFs::default()
    }

    /// Bytes appended and not synced, over every file: what a kill would lose now.
    pub fn held_bytes(&self) -> u64 {
        let table = self.held.lock();
        table.values().map(|h| h.lock().pending.len() as u64).sum()
    }

    /// Forget the held bytes of the file `id` if it has no writer left (it was removed, or a
    /// rename replaced it).
    fn forget_if_unlinked(&self, id: Option<FileId>) {
        let Some(id) = id else { return };
        let mut table = self.held.lock();
        let orphan = table.get(&id).is_some_and(|h| !h.lock().writer_alive);
        if orphan {
            table.remove(&id);
        }
    }
}

struct HeldWritable {
    id: FileId,
    held: Arc<Mutex<Held>>,
    table: Table,
}

impl WritableFile for HeldWritable {
    fn append(&mut self, data: &[u8]) -> io::Result<()> {
        self.held.lock().pending.extend_from_slice(data);
        Ok(())
    }

    /// Nothing is handed to the OS before `sync`: the bytes stay held.
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }

    fn sync(&mut self) -> io::Result<()> {
        let mut guard = self.held.lock();
        let held = &mut *guard;
        if !held.pending.is_empty() {
            let result = held.file.write_all(&held.pending);
            // As RealFs: the buffer is gone whether or not the write succeeded.
            let len = std::mem::take(&mut held.pending).len() as u64;
            match result {
                Ok(()) => held.written += len,
                Err(e) => {
                    // Part of it may have landed: the file holds what it holds (unknowable
                    // once preallocated; the writer fails for good after an error anyway).
                    if let Ok(meta) = held.file.metadata() {
                        if held.preallocated == 0 {
                            held.written = meta.len();
                        }
                    }
                    return Err(e);
                }
            }
        }
        // Held across the fsync: readers of this one file wait; nothing else does.
        held.file.sync_data()
    }

    /// Not held: the real file is extended now, as a kill keeps it.
    fn preallocate(&mut self, len: u64) -> io::Result<()> {
        let mut held = self.held.lock();
        let appended = held.written + held.pending.len() as u64;
        let size = len.max(appended);
        if size != held.preallocated.max(appended) {
            // Zeros past `written` up to `size`; held bytes will be written over them.
            held.file.set_len(size.max(held.written))?;
        }
        held.preallocated = size;
        Ok(())
    }
}

impl Drop for HeldWritable {
    fn drop(&mut self) {
        let mut table = self.table.lock();
        let forget = {
            let mut held = self.held.lock();
            held.writer_alive = false;
            // Keep held bytes readable by this process unless the file is gone.
            held.pending.is_empty() || !held.file.metadata().is_ok_and(|m| m.nlink() > 0)
        };
        if forget
            && table
                .get(&self.id)
                .is_some_and(|h| Arc::ptr_eq(h, &self.held))
        {
            table.remove(&self.id);
        }
    }
}

struct HeldReader {
    file: File,
    /// The file's held bytes, if it had any writer or held bytes when it was opened.
    held: Option<Arc<Mutex<Held>>>,
}

impl RandomAccessFile for HeldReader {
    fn read_at(&self, offset: u64, len: usize) -> io::Result<Vec<u8>> {
        let Some(held) = &self.held else {
            let mut buf = vec![0; len];
            self.file.read_exact_at(&mut buf, offset)?;
            return Ok(buf);
        };
        let held = held.lock();
        let appended = held.written + held.pending.len() as u64;
        let total = appended.max(held.preallocated);
        let end = offset
            .checked_add(len as u64)
            .filter(|&end| end <= total)
            .ok_or_else(|| {
                io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    format!("read of {len} bytes at {offset} past the end ({total} bytes)"),
                )
            })?;
        let mut buf = vec![0; len];
        // The real file holds [0, written) and the preallocated zeros; the held bytes lie over
        // [written, appended).
        let on_disk_end = end.min(held.written.max(held.preallocated));
        if on_disk_end > offset {
            self.file
                .read_exact_at(&mut buf[..(on_disk_end - offset) as usize], offset)?;
        }
        let (from, to) = (offset.max(held.written), end.min(appended));
        if from < to {
            // Within `pending`: `held.written <= from < to <= appended`.
            let (pending_from, pending_to) = (from - held.written, to - held.written);
            buf[(from - offset) as usize..(to - offset) as usize]
                .copy_from_slice(&held.pending[pending_from as usize..pending_to as usize]);
        }
        Ok(buf)
    }

    fn size(&self) -> io::Result<u64> {
        match &self.held {
            Some(held) => {
                let held = held.lock();
                Ok((held.written + held.pending.len() as u64).max(held.preallocated))
            }
            None => Ok(self.file.metadata()?.len()),
        }
    }
}

impl FileSystem for HoldUnsyncedFs {
    fn create_dir_all(&self, dir: &Path) -> io::Result<()> {
        self.inner.create_dir_all(dir)
    }

    fn create(&self, path: &Path) -> io::Result<Box<dyn WritableFile>> {
        let file = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .open(path)?;
        let id = file_id(&file.metadata()?);
        let held = Arc::new(Mutex::new(Held {
            file,
            written: 0,
            pending: Vec::new(),
            preallocated: 0,
            writer_alive: true,
        }));
        // A truncated file's earlier held bytes are gone with its contents.
        self.held.lock().insert(id, Arc::clone(&held));
        Ok(Box::new(HeldWritable {
            id,
            held,
            table: Arc::clone(&self.held),
        }))
    }

    fn open(&self, path: &Path) -> io::Result<Arc<dyn RandomAccessFile>> {
        let file = File::open(path)?;
        let id = file_id(&file.metadata()?);
        let held = self.held.lock().get(&id).cloned();
        Ok(Arc::new(HeldReader { file, held }))
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        let from_id = std::fs::symlink_metadata(from).ok().map(|m| file_id(&m));
        let replaced = std::fs::symlink_metadata(to)
            .ok()
            .map(|m| file_id(&m))
            .filter(|&id| Some(id) != from_id);
        self.inner.rename(from, to)?;
        self.forget_if_unlinked(replaced);
        Ok(())
    }

    fn remove_file(&self, path: &Path) -> io::Result<()> {
        let id = std::fs::symlink_metadata(path).ok().map(|m| file_id(&m));
        self.inner.remove_file(path)?;
        self.forget_if_unlinked(id);
        Ok(())
    }

    fn list_dir(&self, dir: &Path) -> io::Result<Vec<String>> {
        self.inner.list_dir(dir)
    }

    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        self.inner.sync_dir(dir)
    }

    fn try_lock(&self, path: &Path) -> io::Result<Option<Box<dyn FileLock>>> {
        self.inner.try_lock(path)
    }

    fn exists(&self, path: &Path) -> bool {
        self.inner.exists(path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn appended_bytes_reach_the_disk_only_at_sync_and_are_readable_before() {
        let dir = tempfile::tempdir().unwrap();
        let fs = HoldUnsyncedFs::new();
        let path = dir.path().join("f");
        let mut w = fs.create(&path).unwrap();
        w.append(b"hello ").unwrap();
        w.flush().unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"");
        assert_eq!(fs.held_bytes(), 6);
        let r = fs.open(&path).unwrap();
        assert_eq!(r.size().unwrap(), 6);
        assert_eq!(r.read_at(0, 6).unwrap(), b"hello ");
        w.sync().unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"hello ");
        assert_eq!(fs.held_bytes(), 0);
        w.append(b"world").unwrap();
        // A read spanning the synced part and the held part, through a reader opened before.
        assert_eq!(r.size().unwrap(), 11);
        assert_eq!(r.read_at(3, 8).unwrap(), b"lo world");
        assert_eq!(r.read_at(6, 5).unwrap(), b"world");
        assert_eq!(r.read_at(0, 0).unwrap(), b"");
        let past = r.read_at(8, 4).unwrap_err();
        assert_eq!(past.kind(), io::ErrorKind::UnexpectedEof);
        assert!(r.read_at(u64::MAX, 2).is_err());
        assert_eq!(fs.read_all(&path).unwrap(), b"hello world");
        assert_eq!(std::fs::read(&path).unwrap(), b"hello ");
        w.sync().unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"hello world");
    }

    #[test]
    fn held_bytes_follow_a_rename_and_vanish_with_a_remove() {
        let dir = tempfile::tempdir().unwrap();
        let fs = HoldUnsyncedFs::new();
        let (a, b) = (dir.path().join("a"), dir.path().join("b"));
        let mut w = fs.create(&a).unwrap();
        w.append(b"x").unwrap();
        drop(w);
        // Dropped unsynced: held for this process, not on disk.
        assert_eq!(fs.read_all(&a).unwrap(), b"x");
        assert_eq!(std::fs::read(&a).unwrap(), b"");
        fs.rename(&a, &b).unwrap();
        assert!(!fs.exists(&a));
        assert_eq!(fs.read_all(&b).unwrap(), b"x");
        fs.remove_file(&b).unwrap();
        assert_eq!(fs.held_bytes(), 0);
        assert!(fs.open(&b).is_err());
    }

    #[test]
    fn a_rename_over_a_file_with_held_bytes_forgets_them() {
        let dir = tempfile::tempdir().unwrap();
        let fs = HoldUnsyncedFs::new();
        let (a, b) = (dir.path().join("a"), dir.path().join("b"));
        let mut old = fs.create(&b).unwrap();
        old.append(b"old").unwrap();
        drop(old);
        let mut new = fs.create(&a).unwrap();
        new.append(b"new").unwrap();
        new.sync().unwrap();
        drop(new);
        fs.rename(&a, &b).unwrap();
        assert_eq!(fs.read_all(&b).unwrap(), b"new");
        assert_eq!(fs.held_bytes(), 0);
    }

    #[test]
    fn create_over_a_file_starts_empty() {
        let dir = tempfile::tempdir().unwrap();
        let fs = HoldUnsyncedFs::new();
        let path = dir.path().join("f");
        let mut w = fs.create(&path).unwrap();
        w.append(b"first").unwrap();
        w.sync().unwrap();
        w.append(b" held").unwrap();
        drop(w);
        let mut w = fs.create(&path).unwrap();
        assert_eq!(fs.read_all(&path).unwrap(), b"");
        w.append(b"second").unwrap();
        assert_eq!(fs.read_all(&path).unwrap(), b"second");
        w.sync().unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"second");
    }

    #[test]
    fn a_database_on_it_loses_unsynced_writes_when_the_process_state_is_lost() {
        use crate::{Db, Durability, Options, WriteBatch, WriteOptions};
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db");
        let opts = |fs: HoldUnsyncedFs| {
            Options::default()
                .with_fs(Arc::new(fs))
                .with_durability(Durability::NoSync)
        };
        let fs = HoldUnsyncedFs::new();
        let db = Db::open_with(&path, opts(fs.clone())).unwrap();
        let mut b = WriteBatch::new();
        b.put("synced", "1");
        db.write_opt(b, WriteOptions::sync()).unwrap();
        db.put("held", "2").unwrap();
        // The process reads its own unsynced write.
        assert_eq!(db.get("held").unwrap().as_deref(), Some(&b"2"[..]));
        assert!(fs.held_bytes() > 0);
        // What a kill leaves: the disk without the held bytes. Copy it before close syncs.
        let copy = dir.path().join("copy");
        std::fs::create_dir_all(&copy).unwrap();
        for entry in std::fs::read_dir(&path).unwrap() {
            let entry = entry.unwrap();
            if entry.file_name() != "LOCK" {
                std::fs::copy(entry.path(), copy.join(entry.file_name())).unwrap();
            }
        }
        drop(db);
        let db = Db::open(&copy).unwrap();
        assert_eq!(db.get("synced").unwrap().as_deref(), Some(&b"1"[..]));
        assert_eq!(db.get("held").unwrap(), None);
        db.close().unwrap();
    }
}
