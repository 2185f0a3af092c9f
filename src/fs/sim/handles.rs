//! File handles and the [`FileSystem`] implementation of [`SimFs`].

use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use parking_lot::Mutex;

use super::state::{list, not_found, DirOp, State};
use super::{OpKind, SimFs, WRITE_BUFFER};
use crate::fs::{FileLock, FileSystem, RandomAccessFile, WritableFile};

struct SimWritable {
    state: Arc<Mutex<State>>,
    epoch: u64,
    inode: u64,
    path: PathBuf,
    buf: Vec<u8>,
}

impl SimWritable {
    fn flush_buffer(&mut self, st: &mut State) -> io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        // As RealFs: the buffer is gone whether or not the write succeeded.
        let buf = std::mem::take(&mut self.buf);
        st.write(self.epoch, self.inode, &self.path, &buf)
    }
}

impl WritableFile for SimWritable {
    fn append(&mut self, data: &[u8]) -> io::Result<()> {
        let state = Arc::clone(&self.state);
        let mut st = state.lock();
        st.begin(self.epoch, OpKind::Append, &self.path)?;
        if self.buf.len() + data.len() > WRITE_BUFFER {
            self.flush_buffer(&mut st)?;
        }
        if data.len() >= WRITE_BUFFER {
            st.write(self.epoch, self.inode, &self.path, data)
        } else {
            self.buf.extend_from_slice(data);
            Ok(())
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        let state = Arc::clone(&self.state);
        let mut st = state.lock();
        if st.epoch != self.epoch {
            return Err(io::Error::other(format!(
                "flush {}: the handle was lost in a simulated crash",
                self.path.display()
            )));
        }
        self.flush_buffer(&mut st)
    }

    fn sync(&mut self) -> io::Result<()> {
        let state = Arc::clone(&self.state);
        let mut st = state.lock();
        self.flush_buffer(&mut st)?;
        st.begin(self.epoch, OpKind::Sync, &self.path)?;
        let file = st
            .inodes
            .get_mut(&self.inode)
            .ok_or_else(|| not_found(&self.path))?;
        file.durable = file.data.len();
        file.reserved_durable = file.reserved;
        Ok(())
    }

    fn preallocate(&mut self, len: u64) -> io::Result<()> {
        let state = Arc::clone(&self.state);
        let mut st = state.lock();
        st.begin(self.epoch, OpKind::Preallocate, &self.path)?;
        let len = usize::try_from(len)
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "file too large"))?;
        let file = st
            .inodes
            .get_mut(&self.inode)
            .ok_or_else(|| not_found(&self.path))?;
        file.reserved = len;
        Ok(())
    }
}

struct SimRandomAccess {
    state: Arc<Mutex<State>>,
    epoch: u64,
    inode: u64,
    path: PathBuf,
}

impl RandomAccessFile for SimRandomAccess {
    fn read_at(&self, offset: u64, len: usize) -> io::Result<Vec<u8>> {
        let mut st = self.state.lock();
        st.begin(self.epoch, OpKind::Read, &self.path)?;
        let file = st.inodes.get(&self.inode);
        let bytes = usize::try_from(offset)
            .ok()
            .and_then(|start| Some(start..start.checked_add(len)?))
            .and_then(|r| file?.read(r));
        bytes.ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!(
                    "read of {len} bytes at {offset} past the end of {} ({} bytes)",
                    self.path.display(),
                    file.map_or(0, |f| f.len())
                ),
            )
        })
    }

    fn size(&self) -> io::Result<u64> {
        let st = self.state.lock();
        if st.epoch != self.epoch {
            return Err(io::Error::other(format!(
                "size {}: the handle was lost in a simulated crash",
                self.path.display()
            )));
        }
        Ok(st.inodes.get(&self.inode).map_or(0, |f| f.len() as u64))
    }
}

struct SimLock {
    state: Arc<Mutex<State>>,
    path: PathBuf,
    id: u64,
}

impl FileLock for SimLock {}

impl Drop for SimLock {
    fn drop(&mut self) {
        let mut st = self.state.lock();
        // A crash released it already, and someone may hold a newer lock on the path.
        if st.locks.get(&self.path) == Some(&self.id) {
            st.locks.remove(&self.path);
        }
    }
}

impl FileSystem for SimFs {
    fn create_dir_all(&self, dir: &Path) -> io::Result<()> {
        let mut st = self.state.lock();
        st.begin(self.epoch(), OpKind::CreateDir, dir)?;
        for ancestor in dir.ancestors() {
            if let Ok((parent, name)) = State::split(ancestor) {
                let is_file = st
                    .dirs
                    .get(&parent)
                    .is_some_and(|d| d.current.contains_key(&name));
                if is_file {
                    return Err(io::Error::new(
                        io::ErrorKind::AlreadyExists,
                        format!("{} is a file", ancestor.display()),
                    ));
                }
            }
            st.dirs.entry(ancestor.to_path_buf()).or_default();
        }
        Ok(())
    }

    fn create(&self, path: &Path) -> io::Result<Box<dyn WritableFile>> {
        let mut st = self.state.lock();
        st.begin(self.epoch(), OpKind::Create, path)?;
        let inode = st.link_new(path)?;
        Ok(Box::new(SimWritable {
            state: Arc::clone(&self.state),
            epoch: st.epoch,
            inode,
            path: path.to_path_buf(),
            buf: Vec::new(),
        }))
    }

    fn open(&self, path: &Path) -> io::Result<Arc<dyn RandomAccessFile>> {
        let mut st = self.state.lock();
        st.begin(self.epoch(), OpKind::Open, path)?;
        let inode = st.lookup(path)?;
        Ok(Arc::new(SimRandomAccess {
            state: Arc::clone(&self.state),
            epoch: st.epoch,
            inode,
            path: path.to_path_buf(),
        }))
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        let mut st = self.state.lock();
        st.begin(self.epoch(), OpKind::Rename, from)?;
        let (dir, from_name) = State::split(from)?;
        let (to_dir, to_name) = State::split(to)?;
        if dir != to_dir {
            return Err(io::Error::new(
                io::ErrorKind::Unsupported,
                "SimFs renames only within one directory",
            ));
        }
        let d = st.dir_mut(&dir)?;
        let inode = d
            .current
            .remove(&from_name)
            .ok_or_else(|| not_found(from))?;
        d.current.insert(to_name.clone(), inode);
        d.pending.push(DirOp::Rename(from_name, to_name));
        Ok(())
    }

    fn remove_file(&self, path: &Path) -> io::Result<()> {
        let mut st = self.state.lock();
        st.begin(self.epoch(), OpKind::Remove, path)?;
        let (dir, name) = State::split(path)?;
        let d = st.dir_mut(&dir)?;
        d.current.remove(&name).ok_or_else(|| not_found(path))?;
        d.pending.push(DirOp::Unlink(name));
        Ok(())
    }

    fn list_dir(&self, dir: &Path) -> io::Result<Vec<String>> {
        let mut st = self.state.lock();
        st.begin(self.epoch(), OpKind::List, dir)?;
        list(&st, dir)
    }

    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        let mut st = self.state.lock();
        st.begin(self.epoch(), OpKind::SyncDir, dir)?;
        let d = st.dir_mut(dir)?;
        d.durable = d.current.clone();
        d.pending.clear();
        Ok(())
    }

    fn try_lock(&self, path: &Path) -> io::Result<Option<Box<dyn FileLock>>> {
        let mut st = self.state.lock();
        st.begin(self.epoch(), OpKind::Lock, path)?;
        if st.lookup(path).is_err() {
            st.link_new(path)?;
        }
        if st.locks.contains_key(path) {
            return Ok(None);
        }
        let id = st.next_lock;
        st.next_lock += 1;
        st.locks.insert(path.to_path_buf(), id);
        Ok(Some(Box::new(SimLock {
            state: Arc::clone(&self.state),
            path: path.to_path_buf(),
            id,
        })))
    }

    fn exists(&self, path: &Path) -> bool {
        let st = self.state.lock();
        if st.epoch != self.epoch() {
            return false;
        }
        st.dirs.contains_key(path) || st.lookup(path).is_ok()
    }
}
