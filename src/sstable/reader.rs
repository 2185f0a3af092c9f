//! [`Table`]: an open SSTable, and [`TableIter`], a two-level cursor over it.
//!
//! Opening reads the footer, then the index, filter and properties blocks, verifies their
//! checksums and keeps them resident in the `Table` (not in the block cache: they are needed by
//! every lookup). Data blocks are read on demand, verified, decompressed (as each block's type
//! byte says), and cached in the shared [`BlockCache`] under `(file_number, block offset)`
//! with their *decompressed* size as the charge, so a cache hit never decompresses.
//!
//! What `open` checks before serving anything (a failure is `Corruption`):
//! - the file holds at least a footer, and the footer's magic, version and crc are right;
//! - every metadata handle lies before the footer, and every metadata block's crc matches
//!   (crcs are bound to the file number in the footer and the block's offset, so a block
//!   from another offset or table fails here and, for data blocks, when read);
//! - the index keys are valid internal keys in strictly increasing order, its handles are 16
//!   bytes, and the data blocks they describe are contiguous from offset 0 up to the first
//!   metadata block;
//! - the index has `data_blocks` entries and its last key is the table's largest key.
//!
//! Damaged data blocks are found when they are read: `get` and the iterator return the
//! `Corruption` error from the call that moved into the block. [`Table::verify`] reads them all.

use std::cmp::Ordering;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;

use crate::cache::BlockCache;
use crate::error::{Error, Result};
use crate::fs::RandomAccessFile;
use crate::iter::InternalIterator;
use crate::key::{
    compare_internal, internal_key, key_prefix, parse_internal_key, user_key, SeqNo, ValueKind,
    KIND_SEEK, MAX_SEQ,
};
use crate::sstable::block::{Block, BlockIter};
use crate::sstable::filter::BloomFilter;
use crate::sstable::format::{
    display_name, read_block, read_block_pooled, BlockHandle, Footer, TableProperties,
    BLOCK_TRAILER_LEN, FOOTER_LEN,
};

/// What a point lookup in a table finds: the newest visible version's kind, sequence number
/// and value, or nothing.
pub type Found = Option<(ValueKind, SeqNo, Bytes)>;

/// An open, immutable SSTable. Shared between readers through `Arc`.
pub struct Table {
    file: Arc<dyn RandomAccessFile>,
    path: PathBuf,
    /// The same path, shared with every block for error messages.
    block_path: Arc<Path>,
    file_number: u64,
    cache: Arc<BlockCache>,
    index: Arc<Block>,
    /// Key prefixes of the index entries, for point lookups; `None` if the index does not
    /// store every key whole.
    index_prefixes: Option<IndexPrefixes>,
    filter: Option<BloomFilter>,
    props: TableProperties,
    /// End of the data blocks (start of the first metadata block).
    data_end: u64,
    /// Bytes this open table keeps in memory outside the block cache (index, index prefixes,
    /// filter), charged to the cache's budget while it is open.
    resident_bytes: usize,
}

impl Drop for Table {
    fn drop(&mut self) {
        self.cache.release_table_metadata(self.resident_bytes);
    }
}

impl fmt::Debug for Table {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Table")
            .field("path", &self.path)
            .field("file_number", &self.file_number)
            .field("properties", &self.props)
            .finish()
    }
}

impl Table {
    /// Open the table in `file` (named `path`, number `file_number`) and verify its metadata.
    pub fn open(
        file: Arc<dyn RandomAccessFile>,
        path: PathBuf,
        file_number: u64,
        cache: Arc<BlockCache>,
    ) -> Result<Arc<Table>> {
        let io = |e| Error::io(format!("reading table {}", display_name(&path)), e);
        let file_size = file.size().map_err(io)?;
        if file_size < FOOTER_LEN as u64 {
            return Err(Error::corruption(
                &path,
                0,
                format!(
                    "file of {file_size} bytes is too short to hold the {FOOTER_LEN}-byte footer"
                ),
            ));
        }
        let footer_offset = file_size - FOOTER_LEN as u64;
        let footer_bytes = file.read_at(footer_offset, FOOTER_LEN).map_err(io)?;
        let footer = Footer::decode(&footer_bytes, &path, footer_offset)?;

        // Every block's crc is bound to the table's number in the footer and to its offset.
        let number = footer.file_number;
        let props_bytes = read_block(&*file, &path, footer.properties, footer_offset, number)?;
        let mut props = TableProperties::decode(&props_bytes, &path, footer.properties.offset)?;
        props.file_size = file_size;
        props.file_number = number;

        let filter = if footer.filter.size == 0 {
            None
        } else {
            let contents = read_block(&*file, &path, footer.filter, footer_offset, number)?;
            Some(BloomFilter::decode(contents, &path, footer.filter.offset)?)
        };

        let block_path: Arc<Path> = Arc::from(path.as_path());
        let index_bytes = read_block(&*file, &path, footer.index, footer_offset, number)?;
        let index = Arc::new(Block::new(
            index_bytes,
            Arc::clone(&block_path),
            footer.index.offset,
        )?);

        let mut data_end = footer.index.offset.min(footer.properties.offset);
        if filter.is_some() {
            data_end = data_end.min(footer.filter.offset);
        }
        let index_prefixes = check_index(&index, data_end, &props, &path)?;
        let resident_bytes = index.size()
            + filter.as_ref().map_or(0, BloomFilter::size)
            + index_prefixes.as_ref().map_or(0, IndexPrefixes::memory);
        cache.charge_table_metadata(resident_bytes);

        Ok(Arc::new(Table {
            file,
            path,
            block_path,
            file_number,
            cache,
            index,
            index_prefixes,
            filter,
            props,
            data_end,
            resident_bytes,
        }))
    }

    pub fn properties(&self) -> &TableProperties {
        &self.props
    }

    pub fn file_number(&self) -> u64 {
        self.file_number
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// False if the bloom filter rules `user_key` out; true if it may be present (or the table
    /// has no filter).
    pub fn may_contain(&self, user_key: &[u8]) -> bool {
        self.filter.as_ref().is_none_or(|f| f.may_contain(user_key))
    }

    /// The newest version of `user_key` with sequence number `<= seq`, if the table has one.
    /// A deletion is returned as `(ValueKind::Deletion, empty)`.
    pub fn get(&self, user_key: &[u8], seq: SeqNo) -> Result<Found> {
        if !self.may_contain(user_key) {
            return Ok(None);
        }
        let target = internal_key(user_key, seq.min(MAX_SEQ), KIND_SEEK);
        let Some(prefixes) = &self.index_prefixes else {
            let mut index = self.index.iter();
            index.seek(&target)?;
            // The first block whose last key is >= target holds the answer; the loop only
            // moves on if that block unexpectedly has no such key.
            while index.valid() {
                let block = self.data_block(self.handle_at(&index)?, true)?;
                if let Some(found) = self.get_in_block(&block, &target, user_key)? {
                    return Ok(found);
                }
                index.next()?;
            }
            return Ok(None);
        };
        // The same with the resident entries: a binary search over 8-byte numbers in one
        // array, whole keys compared (in the index block, whose cursor is made only then) only
        // among entries whose numbers tie with the target's; the block's offset comes from the
        // array beside it.
        let (mut lo, mut hi) = prefixes.candidates(user_key);
        let mut index = None;
        // Entries before `lo` are below the target, entries from `hi` on above it.
        while lo < hi {
            let index = index.get_or_insert_with(|| self.index.iter());
            let mid = lo + (hi - lo) / 2;
            index.seek_to_restart_entry(mid)?;
            if !index.valid() {
                return Err(Error::corruption(
                    &self.path,
                    self.index.offset(),
                    "index: an entry counted at open is missing",
                ));
            }
            if compare_internal(index.key(), &target) == Ordering::Less {
                lo = mid + 1;
            } else {
                hi = mid;
            }
        }
        for i in lo..prefixes.len() {
            let block = self.data_block(prefixes.handle(i, self.data_end), true)?;
            if let Some(found) = self.get_in_block(&block, &target, user_key)? {
                return Ok(found);
            }
        }
        Ok(None)
    }

    /// The answer to a point lookup of `target` (whose user key is `user_key`) in `block`:
    /// `Some(None)` if the first entry at or after `target` is of another user key, `None` if
    /// the block has no entry at or after `target` (the answer, if any, is in a later block).
    fn get_in_block(
        &self,
        block: &Arc<Block>,
        target: &[u8],
        user_key: &[u8],
    ) -> Result<Option<Found>> {
        let mut it = block.iter();
        it.seek(target)?;
        if !it.valid() {
            return Ok(None);
        }
        let parsed = parse_internal_key(it.key()).ok_or_else(|| bad_key(&self.path, &it))?;
        if parsed.user_key != user_key {
            return Ok(Some(None));
        }
        Ok(Some(Some((parsed.kind, parsed.seq, it.value()))))
    }

    /// The user keys of the table's index entries (one per data block, so they split the
    /// table into pieces of about one block each): where subcompactions cut a key range.
    pub fn block_boundaries(&self) -> Result<Vec<Vec<u8>>> {
        let mut out = Vec::new();
        let mut index = self.index.iter();
        index.seek_to_first()?;
        while index.valid() {
            out.push(crate::key::user_key(index.key()).to_vec());
            index.next()?;
        }
        Ok(out)
    }

    /// An unpositioned cursor over the whole table.
    pub fn iter(self: &Arc<Self>) -> TableIter {
        TableIter {
            table: Arc::clone(self),
            index: self.index.iter(),
            data: None,
            fill_cache: true,
        }
    }

    /// A cursor that uses cached blocks but does not add the blocks it reads from the file
    /// to the cache (RocksDB's `fill_cache = false`): for compaction, which reads each block
    /// once and would otherwise evict the blocks readers come back to.
    pub fn iter_without_filling_cache(self: &Arc<Self>) -> TableIter {
        TableIter {
            fill_cache: false,
            ..self.iter()
        }
    }

    /// Read and decompress every data block through its checksum (bypassing the cache) and
    /// check that the keys are valid internal keys, strictly increasing, and agree with the
    /// index, filter and properties.
    pub fn verify(&self) -> Result<()> {
        let mut index = self.index.iter();
        index.seek_to_first()?;
        let mut prev: Vec<u8> = Vec::new();
        let mut entries = 0u64;
        while index.valid() {
            let handle = self.handle_at(&index)?;
            let number = self.props.file_number;
            let contents = read_block(&*self.file, &self.path, handle, self.data_end, number)?;
            let block = Arc::new(Block::new(
                contents,
                Arc::clone(&self.block_path),
                handle.offset,
            )?);
            let mut it = block.iter();
            it.seek_to_first()?;
            if !it.valid() {
                return Err(Error::corruption(
                    &self.path,
                    handle.offset,
                    "empty data block",
                ));
            }
            while it.valid() {
                let parsed =
                    parse_internal_key(it.key()).ok_or_else(|| bad_key(&self.path, &it))?;
                if entries == 0 && it.key() != self.props.smallest_key.as_slice() {
                    return Err(Error::corruption(
                        &self.path,
                        it.entry_offset(),
                        "first key differs from the smallest key in the properties",
                    ));
                }
                if entries > 0 && compare_internal(&prev, it.key()) != Ordering::Less {
                    return Err(Error::corruption(
                        &self.path,
                        it.entry_offset(),
                        "keys out of order",
                    ));
                }
                if !self.may_contain(parsed.user_key) {
                    return Err(Error::corruption(
                        &self.path,
                        it.entry_offset(),
                        "bloom filter rules out a key the table holds",
                    ));
                }
                prev.clear();
                prev.extend_from_slice(it.key());
                entries += 1;
                it.next()?;
            }
            if index.key() != prev.as_slice() {
                return Err(Error::corruption(
                    &self.path,
                    index.entry_offset(),
                    "index key differs from the last key of its data block",
                ));
            }
            index.next()?;
        }
        if entries != self.props.num_entries {
            return Err(Error::corruption(
                &self.path,
                0,
                format!(
                    "table holds {entries} entries, properties say {}",
                    self.props.num_entries
                ),
            ));
        }
        Ok(())
    }

    fn handle_at(&self, index: &BlockIter) -> Result<BlockHandle> {
        BlockHandle::decode(index.value_slice()).ok_or_else(|| {
            Error::corruption(
                &self.path,
                index.entry_offset(),
                "index value is not a block handle",
            )
        })
    }

    /// The data block at `handle`, from the cache or the file (then added to the cache if
    /// `fill_cache`).
    fn data_block(&self, handle: BlockHandle, fill_cache: bool) -> Result<Arc<Block>> {
        if let Some(block) = self.cache.get(self.file_number, handle.offset) {
            return Ok(block);
        }
        let number = self.props.file_number;
        let contents = read_block_pooled(
            &*self.file,
            &self.path,
            handle,
            self.data_end,
            number,
            self.cache.buffers(),
        )?;
        let block = Arc::new(Block::new(
            contents,
            Arc::clone(&self.block_path),
            handle.offset,
        )?);
        if fill_cache {
            self.cache.insert(
                self.file_number,
                handle.offset,
                Arc::clone(&block),
                block.size(),
            );
        }
        Ok(block)
    }
}

fn bad_key(path: &Path, it: &BlockIter) -> Error {
    Error::corruption(
        path,
        it.entry_offset(),
        "entry key is not a valid internal key",
    )
}

/// Check the resident index against the data area and the properties (see the module docs),
/// and build its [`IndexPrefixes`] if every entry is a restart point.
fn check_index(
    index: &Arc<Block>,
    data_end: u64,
    props: &TableProperties,
    path: &Path,
) -> Result<Option<IndexPrefixes>> {
    let mut it = index.iter();
    it.seek_to_first()?;
    let mut expected_offset = 0u64;
    let mut count = 0u64;
    let mut prev: Vec<u8> = Vec::new();
    // The shared prefix of all index keys is that of the first and the last (they are sorted).
    let first_user_key = {
        let mut first = index.iter();
        first.seek_to_first()?;
        first.valid().then(|| user_key(first.key()).to_vec())
    };
    let shared = first_user_key.as_deref().map_or(0, |first| {
        let last = user_key(&props.largest_key);
        first.iter().zip(last).take_while(|(a, b)| a == b).count()
    });
    let mut prefixes = Vec::with_capacity(index.num_restarts());
    let mut offsets = Vec::with_capacity(index.num_restarts());
    while it.valid() {
        let bad =
            |reason: String| Error::corruption(path, it.entry_offset(), format!("index: {reason}"));
        if parse_internal_key(it.key()).is_none() {
            return Err(bad("key is not a valid internal key".into()));
        }
        if count > 0 && compare_internal(&prev, it.key()) != Ordering::Less {
            return Err(bad("keys are not strictly increasing".into()));
        }
        let handle = BlockHandle::decode(it.value_slice())
            .ok_or_else(|| bad("value is not a 16-byte block handle".into()))?;
        if handle.offset != expected_offset {
            return Err(bad(format!(
                "data block at {} does not follow the previous one, which ends at {expected_offset}",
                handle.offset
            )));
        }
        expected_offset = handle.end().filter(|&end| end <= data_end).ok_or_else(|| {
            bad(format!(
                "data block at {} runs into the metadata at {data_end}",
                handle.offset
            ))
        })?;
        count += 1;
        prefixes.push(key_prefix(
            user_key(it.key()).get(shared..).unwrap_or_default(),
        ));
        offsets.push(handle.offset);
        prev.clear();
        prev.extend_from_slice(it.key());
        it.next()?;
    }
    let bad = |reason: String| Error::corruption(path, index.offset(), format!("index: {reason}"));
    if expected_offset != data_end {
        return Err(bad(format!(
            "data blocks end at {expected_offset} but metadata starts at {data_end}"
        )));
    }
    if count != props.data_blocks {
        return Err(bad(format!(
            "{count} data blocks, but the properties say {}",
            props.data_blocks
        )));
    }
    if prev != props.largest_key {
        return Err(bad(
            "last key differs from the largest key in the properties".into(),
        ));
    }
    // Every entry a restart point (the builder writes the index so): entry i is restart i.
    let every_entry_restarts = index.num_restarts() as u64 == count;
    Ok(every_entry_restarts.then(|| IndexPrefixes {
        shared: first_user_key
            .map(|k| k[..shared].to_vec())
            .unwrap_or_default(),
        prefixes,
        offsets,
    }))
}

/// For each index entry, the 8 bytes of its user key that follow the prefix all the entries
/// share, as a number ([`key_prefix`]), beside the offset of its data block. Keys ordered by
/// user key have ordered prefixes, so a binary search over these numbers narrows a point
/// lookup to the entries whose prefixes tie with the target's (usually none), and the entry it
/// lands on gives the block without decoding the index block (two cache misses fewer).
struct IndexPrefixes {
    /// The user-key prefix every index key starts with.
    shared: Vec<u8>,
    /// In index order.
    prefixes: Vec<u64>,
    /// The data blocks' offsets, in index order. Data blocks are contiguous from offset 0
    /// (checked at open), so a block ends where the next one starts. (A separate array: the
    /// binary search touches half as many cache lines as over prefix-offset pairs.)
    offsets: Vec<u64>,
}

impl IndexPrefixes {
    /// Bytes held (the arrays' capacities).
    fn memory(&self) -> usize {
        self.shared.capacity() + (self.prefixes.capacity() + self.offsets.capacity()) * 8
    }

    fn len(&self) -> usize {
        self.prefixes.len()
    }

    /// `(lo, hi)`: every entry before `lo` is below any internal key of `user_key`, every
    /// entry from `hi` on is above it; the entries between need a whole-key comparison.
    fn candidates(&self, user_key: &[u8]) -> (usize, usize) {
        let n = self.prefixes.len();
        let Some(rest) = user_key.strip_prefix(self.shared.as_slice()) else {
            // Not starting with the shared prefix: below every entry or above every entry.
            return if user_key < self.shared.as_slice() {
                (0, 0)
            } else {
                (n, n)
            };
        };
        let target = key_prefix(rest);
        let lo = self.prefixes.partition_point(|&p| p < target);
        (lo, lo + run_length(&self.prefixes[lo..], target))
    }

    /// The handle of data block `i` (`i < len()`), whose successor starts at the next entry's
    /// offset, or at `data_end` for the last block.
    fn handle(&self, i: usize, data_end: u64) -> BlockHandle {
        let offset = self.offsets[i];
        let end = self.offsets.get(i + 1).copied().unwrap_or(data_end);
        // `check_index` verified that each block (with its trailer) ends where the next one
        // starts, so `end - offset` is at least a trailer.
        BlockHandle::new(offset, end - offset - BLOCK_TRAILER_LEN as u64)
    }
}

/// How many of the first entries of `sorted` equal `x`, by galloping: a run of length r costs
/// about 2 log r probes near its start (usually r = 0: one probe), where a binary search over
/// all of `sorted` would probe entries far away, each a cache miss.
fn run_length(sorted: &[u64], x: u64) -> usize {
    let mut step = 1;
    // Invariant: sorted[..known] all equal x.
    let mut known = 0;
    while known + step <= sorted.len() && sorted[known + step - 1] == x {
        known += step;
        step *= 2;
    }
    let window = &sorted[known..(known + step).min(sorted.len())];
    known + window.partition_point(|&p| p == x)
}

/// A cursor over a whole table: an index cursor picks the data block, a block cursor walks it.
///
/// Invariant: when `data` is `Some` and valid, it iterates the block the index cursor points at.
pub struct TableIter {
    table: Arc<Table>,
    index: BlockIter,
    data: Option<BlockIter>,
    /// Whether blocks read from the file are added to the block cache.
    fill_cache: bool,
}

impl fmt::Debug for TableIter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TableIter")
            .field("table", &self.table.path)
            .field("valid", &self.valid())
            .finish()
    }
}

impl TableIter {
    /// Point `data` at the block under the index cursor (unpositioned); `false` if the index
    /// cursor is exhausted.
    fn load_block(&mut self) -> Result<bool> {
        if !self.index.valid() {
            self.data = None;
            return Ok(false);
        }
        let handle = self.table.handle_at(&self.index)?;
        let reusable = self
            .data
            .as_ref()
            .is_some_and(|d| d.block().offset() == handle.offset);
        if !reusable {
            let block = self.table.data_block(handle, self.fill_cache)?;
            self.data = Some(block.iter());
        }
        Ok(true)
    }

    fn data_valid(&self) -> bool {
        self.data.as_ref().is_some_and(|d| d.valid())
    }

    /// Move forward over blocks until the cursor rests on an entry or the table ends.
    fn skip_forward(&mut self) -> Result<()> {
        while !self.data_valid() {
            if !self.index.valid() {
                self.data = None;
                return Ok(());
            }
            self.index.next()?;
            if !self.load_block()? {
                return Ok(());
            }
            if let Some(d) = &mut self.data {
                d.seek_to_first()?;
            }
        }
        Ok(())
    }

    /// Move backward over blocks until the cursor rests on an entry or the table ends.
    fn skip_backward(&mut self) -> Result<()> {
        while !self.data_valid() {
            if !self.index.valid() {
                self.data = None;
                return Ok(());
            }
            self.index.prev()?;
            if !self.load_block()? {
                return Ok(());
            }
            if let Some(d) = &mut self.data {
                d.seek_to_last()?;
            }
        }
        Ok(())
    }

    /// Common tail of every move: check the key, and leave the cursor invalid on error.
    fn settle(&mut self, r: Result<()>) -> Result<()> {
        let r = r.and_then(|()| match &self.data {
            Some(d) if d.valid() && parse_internal_key(d.key()).is_none() => {
                Err(bad_key(&self.table.path, d))
            }
            _ => Ok(()),
        });
        if r.is_err() {
            self.data = None;
        }
        r
    }

    fn seek_to_first_inner(&mut self) -> Result<()> {
        self.index.seek_to_first()?;
        if self.load_block()? {
            if let Some(d) = &mut self.data {
                d.seek_to_first()?;
            }
        }
        self.skip_forward()
    }

    fn seek_to_last_inner(&mut self) -> Result<()> {
        self.index.seek_to_last()?;
        if self.load_block()? {
            if let Some(d) = &mut self.data {
                d.seek_to_last()?;
            }
        }
        self.skip_backward()
    }

    fn seek_inner(&mut self, target: &[u8]) -> Result<()> {
        // The first block whose last key is >= target.
        self.index.seek(target)?;
        if self.load_block()? {
            if let Some(d) = &mut self.data {
                d.seek(target)?;
            }
        }
        self.skip_forward()
    }

    fn seek_for_prev_inner(&mut self, target: &[u8]) -> Result<()> {
        self.index.seek(target)?;
        if !self.index.valid() {
            // Every key is < target.
            return self.seek_to_last_inner();
        }
        if self.load_block()? {
            if let Some(d) = &mut self.data {
                d.seek_for_prev(target)?;
            }
        }
        self.skip_backward()
    }
}

impl InternalIterator for TableIter {
    fn valid(&self) -> bool {
        self.data_valid()
    }

    fn seek_to_first(&mut self) -> Result<()> {
        let r = self.seek_to_first_inner();
        self.settle(r)
    }

    fn seek_to_last(&mut self) -> Result<()> {
        let r = self.seek_to_last_inner();
        self.settle(r)
    }

    fn seek(&mut self, target: &[u8]) -> Result<()> {
        let r = self.seek_inner(target);
        self.settle(r)
    }

    fn seek_for_prev(&mut self, target: &[u8]) -> Result<()> {
        let r = self.seek_for_prev_inner(target);
        self.settle(r)
    }

    fn next(&mut self) -> Result<()> {
        let r = match &mut self.data {
            Some(d) if d.valid() => d.next().and_then(|()| self.skip_forward()),
            _ => Ok(()),
        };
        self.settle(r)
    }

    fn prev(&mut self) -> Result<()> {
        let r = match &mut self.data {
            Some(d) if d.valid() => d.prev().and_then(|()| self.skip_backward()),
            _ => Ok(()),
        };
        self.settle(r)
    }

    fn key(&self) -> &[u8] {
        match &self.data {
            Some(d) => d.key(),
            None => &[],
        }
    }

    fn value(&self) -> Bytes {
        match &self.data {
            Some(d) => d.value(),
            None => Bytes::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn run_length_counts_the_leading_equal_entries(
            mut sorted in proptest::collection::vec(0u64..6, 0..80),
            x in 0u64..6,
        ) {
            sorted.sort();
            let start = sorted.partition_point(|&p| p < x);
            let expected = sorted[start..].iter().take_while(|&&p| p == x).count();
            prop_assert_eq!(run_length(&sorted[start..], x), expected);
        }
    }
}
