//! Writing merged entries to new SSTables: shared by flush, recovery and compaction.
//!
//! Output files are cut near `target_size`, but never between two versions of one user key,
//! so the files of a level never share a user key. Each file is fsynced by the table builder;
//! `finish` fsyncs the directory once for all of them before they are opened and returned.
//! On error or abort, `abandon` removes every file this writer created.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::cache::BlockCache;
use crate::error::{Error, Result};
use crate::filenames::table_path;
use crate::fs::FileSystem;
use crate::key::user_key;
use crate::manifest::FileMeta;
use crate::options::Options;
use crate::sstable::{Table, TableBuilder, TableOptions, TableProperties};
use crate::table_cache::TableCache;
use crate::version::TableHandle;

pub(crate) struct OutputTables<'a> {
    fs: &'a Arc<dyn FileSystem>,
    dir: &'a Path,
    opts: &'a Options,
    cache: &'a Arc<BlockCache>,
    tables: &'a Arc<TableCache>,
    /// The level the outputs go to: it picks their compression.
    level: usize,
    target_size: u64,
    current: Option<(TableBuilder, u64)>,
    last_user_key: Vec<u8>,
    written: Vec<(u64, TableProperties)>,
    created: Vec<PathBuf>,
}

impl<'a> OutputTables<'a> {
    pub fn new(
        fs: &'a Arc<dyn FileSystem>,
        dir: &'a Path,
        opts: &'a Options,
        cache: &'a Arc<BlockCache>,
        tables: &'a Arc<TableCache>,
        level: usize,
        target_size: u64,
    ) -> Self {
        OutputTables {
            fs,
            dir,
            opts,
            cache,
            tables,
            level,
            target_size,
            current: None,
            last_user_key: Vec::new(),
            written: Vec::new(),
            created: Vec::new(),
        }
    }

    /// Add the next entry (internal-key order). `new_number` is called when a file starts.
    pub fn add(
        &mut self,
        ikey: &[u8],
        value: &[u8],
        new_number: &mut dyn FnMut() -> u64,
    ) -> Result<()> {
        let uk = user_key(ikey);
        let cut = self.current.as_ref().is_some_and(|(b, _)| {
            b.estimated_size() >= self.target_size && uk != self.last_user_key.as_slice()
        });
        if cut {
            self.finish_current()?;
        }
        if self.current.is_none() {
            let number = new_number();
            let path = table_path(self.dir, number);
            let file = self
                .fs
                .create(&path)
                .map_err(|e| Error::io(format!("creating {}", path.display()), e))?;
            self.created.push(path.clone());
            self.current = Some((
                TableBuilder::new(file, path, TableOptions::for_level(self.opts, self.level)),
                number,
            ));
        }
        if let Some((builder, _)) = self.current.as_mut() {
            builder.add(ikey, value)?;
        }
        self.last_user_key.clear();
        self.last_user_key.extend_from_slice(uk);
        Ok(())
    }

    fn finish_current(&mut self) -> Result<()> {
        if let Some((builder, number)) = self.current.take() {
            let props = builder.finish()?;
            self.written.push((number, props));
        }
        Ok(())
    }

    /// Finish the last file, fsync the directory, and open every output.
    pub fn finish(mut self) -> Result<Vec<Arc<TableHandle>>> {
        let result = self.finish_inner();
        if result.is_err() {
            self.abandon();
        }
        result
    }

    fn finish_inner(&mut self) -> Result<Vec<Arc<TableHandle>>> {
        self.finish_current()?;
        if self.written.is_empty() {
            return Ok(Vec::new());
        }
        self.fs
            .sync_dir(self.dir)
            .map_err(|e| Error::io("syncing the database directory", e))?;
        let mut out = Vec::with_capacity(self.written.len());
        for (number, props) in &self.written {
            // Opened below; from here on the files are the caller's to keep or discard.
            let path = table_path(self.dir, *number);
            let reader = self
                .fs
                .open(&path)
                .map_err(|e| Error::io(format!("opening {}", path.display()), e))?;
            let table = Table::open(reader, path.clone(), *number, Arc::clone(self.cache))?;
            let meta = FileMeta {
                number: *number,
                size: props.file_size,
                smallest: props.smallest_key.clone(),
                largest: props.largest_key.clone(),
                min_seq: props.min_seq,
                max_seq: props.max_seq,
                num_entries: props.num_entries,
                num_deletions: props.num_deletions,
            };
            out.push(TableHandle::new(
                meta,
                table,
                Arc::clone(self.fs),
                path,
                Arc::clone(self.cache),
                Arc::clone(self.tables),
            ));
        }
        self.created.clear();
        Ok(out)
    }

    /// Remove every file created so far (after an error or an abort).
    pub fn abandon(&mut self) {
        self.current = None;
        for path in self.created.drain(..) {
            // A failure leaves an orphan that the next open deletes.
            let _ = self.fs.remove_file(&path);
        }
    }
}

impl Drop for OutputTables<'_> {
    fn drop(&mut self) {
        // Unfinished output (an error part-way) is garbage.
        self.abandon();
    }
}
