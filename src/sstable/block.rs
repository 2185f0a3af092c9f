//! Blocks: sorted runs of key-value entries with prefix-compressed keys.
//!
//! ```text
//! block       := entry* restarts: fixed32[num_restarts] num_restarts: fixed32
//! entry       := shared: varint, unshared: varint, value_len: varint,
//!                key_delta[unshared], value[value_len]
//!                key = previous_key[..shared] ++ key_delta
//! ```
//!
//! Every `restart_interval`-th entry is a restart point: it stores its whole key (`shared = 0`)
//! and its offset is listed in `restarts`, so a seek binary-searches the restart points and then
//! scans at most `restart_interval` entries. Data blocks and the index block use this format;
//! their keys are encoded internal keys in [`compare_internal`] order.
//!
//! Invariants the builder keeps and [`Block::new`] / [`BlockIter`] check (a damaged block is a
//! `Corruption` error, never a panic or a wrong key):
//! - `4 * num_restarts + 4 <= block size`;
//! - an empty block has `num_restarts = 0`; otherwise `restarts[0] = 0` and the restart offsets
//!   strictly increase and point inside the entry area;
//! - in each entry, `shared` is at most the previous key's length (0 at a restart point), and
//!   the key delta and value lie inside the entry area;
//! - a whole block stays below 4 GiB (offsets are fixed32); [`BlockBuilder::fits`] tells the
//!   table builder when to cut a block or refuse an entry.
//!
//! A block is built and decoded uncompressed; compression wraps whole blocks on their way to
//! and from the file (`compress.rs`). Not done: hash indexes inside a block, and shortened
//! separator keys in the index.

use std::cmp::Ordering;
use std::fmt;
use std::path::Path;
use std::sync::Arc;

use bytes::Bytes;

use crate::coding::{get_u32, put_varint, Decoder};
use crate::error::{Error, Result};
use crate::iter::InternalIterator;
use crate::key::compare_internal;

/// A seek in a block with at most this many restart points (a data block: 4 KiB of entries
/// with a restart every 4) prefetches all of them first; larger blocks (the index) are
/// searched without.
const PREFETCHED_RESTARTS: usize = 16;

/// Largest possible entry header: three 10-byte varints.
const MAX_ENTRY_HEADER: usize = 30;

/// Builds one block. Keys must be added in increasing order (the table builder checks).
#[derive(Debug)]
pub struct BlockBuilder {
    buf: Vec<u8>,
    restarts: Vec<u32>,
    restart_interval: usize,
    /// Entries since the last restart point.
    counter: usize,
    last_key: Vec<u8>,
    num_entries: usize,
}

impl BlockBuilder {
    /// A builder with a restart point every `restart_interval` entries (0 is taken as 1).
    pub fn new(restart_interval: usize) -> Self {
        BlockBuilder {
            buf: Vec::new(),
            restarts: Vec::new(),
            restart_interval: restart_interval.max(1),
            counter: 0,
            last_key: Vec::new(),
            num_entries: 0,
        }
    }

    /// True if an entry of these sizes can be added while keeping the block below 4 GiB.
    pub fn fits(&self, key_len: usize, value_len: usize) -> bool {
        let after = self
            .current_size_estimate()
            .checked_add(key_len)
            .and_then(|n| n.checked_add(value_len))
            .and_then(|n| n.checked_add(MAX_ENTRY_HEADER + 4));
        after.is_some_and(|n| n <= u32::MAX as usize)
    }

    /// Append an entry. Precondition: `key` sorts after the previous key and
    /// `self.fits(key.len(), value.len())`.
    pub fn add(&mut self, key: &[u8], value: &[u8]) {
        debug_assert!(self.fits(key.len(), value.len()));
        let shared = if self.counter < self.restart_interval && self.num_entries > 0 {
            self.last_key
                .iter()
                .zip(key)
                .take_while(|(a, b)| a == b)
                .count()
        } else {
            // `fits` keeps the block, and so this offset, below 4 GiB.
            self.restarts.push(self.buf.len() as u32);
            self.counter = 0;
            0
        };
        put_varint(&mut self.buf, shared as u64);
        put_varint(&mut self.buf, (key.len() - shared) as u64);
        put_varint(&mut self.buf, value.len() as u64);
        self.buf.extend_from_slice(&key[shared..]);
        self.buf.extend_from_slice(value);
        self.last_key.clear();
        self.last_key.extend_from_slice(key);
        self.counter += 1;
        self.num_entries += 1;
    }

    /// The size of the block if it were finished now.
    pub fn current_size_estimate(&self) -> usize {
        self.buf.len() + 4 * self.restarts.len() + 4
    }

    pub fn is_empty(&self) -> bool {
        self.num_entries == 0
    }

    pub fn num_entries(&self) -> usize {
        self.num_entries
    }

    /// The last key added (empty if none).
    pub fn last_key(&self) -> &[u8] {
        &self.last_key
    }

    /// Return the finished block contents and reset the builder for the next block.
    pub fn finish(&mut self) -> Vec<u8> {
        let mut out = std::mem::take(&mut self.buf);
        for r in &self.restarts {
            out.extend_from_slice(&r.to_le_bytes());
        }
        out.extend_from_slice(&(self.restarts.len() as u32).to_le_bytes());
        self.restarts.clear();
        self.counter = 0;
        self.last_key.clear();
        self.num_entries = 0;
        out
    }
}

/// An entry's header, decoded: offsets are within the block contents.
struct RawEntry {
    /// Bytes taken from the previous key (not yet checked against its length).
    shared: usize,
    key_delta: (usize, usize),
    value: (usize, usize),
}

/// A decoded, validated block. Immutable and shared (through `Arc`) by the cache and iterators.
pub struct Block {
    data: Bytes,
    /// End of the entry area, start of the restart array.
    restarts_offset: usize,
    num_restarts: usize,
    /// Where the block came from, for error messages.
    file: Arc<Path>,
    offset: u64,
}

impl fmt::Debug for Block {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Block")
            .field("file", &self.file)
            .field("offset", &self.offset)
            .field("size", &self.data.len())
            .field("num_restarts", &self.num_restarts)
            .finish()
    }
}

impl Block {
    /// Validate the restart array of `data`, the contents of the block at `offset` of `file`.
    pub fn new(data: Bytes, file: Arc<Path>, offset: u64) -> Result<Block> {
        let bad =
            |pos: usize, reason: String| Error::corruption(&*file, offset + pos as u64, reason);
        let len = data.len();
        let count_pos = len.checked_sub(4).ok_or_else(|| {
            bad(
                0,
                format!("block of {len} bytes is too small to hold a restart count"),
            )
        })?;
        let num_restarts = get_u32(&data, count_pos).unwrap_or_default() as usize;
        if num_restarts > count_pos / 4 {
            return Err(bad(
                count_pos,
                format!("{num_restarts} restart points do not fit in a block of {len} bytes"),
            ));
        }
        let restarts_offset = count_pos - 4 * num_restarts;
        if (restarts_offset == 0) != (num_restarts == 0) {
            return Err(bad(
                count_pos,
                "restart count disagrees with the entry area".into(),
            ));
        }
        let mut prev: Option<usize> = None;
        for i in 0..num_restarts {
            let pos = restarts_offset + 4 * i;
            let r = get_u32(&data, pos).unwrap_or(u32::MAX) as usize;
            let ok = match prev {
                None => r == 0,
                Some(p) => r > p && r < restarts_offset,
            };
            if !ok {
                return Err(bad(pos, format!("restart point {i} has a bad offset {r}")));
            }
            prev = Some(r);
        }
        Ok(Block {
            data,
            restarts_offset,
            num_restarts,
            file,
            offset,
        })
    }

    /// Size of the block contents in bytes (its charge in the block cache).
    pub fn size(&self) -> usize {
        self.data.len()
    }

    /// File offset of the block.
    pub fn offset(&self) -> u64 {
        self.offset
    }

    /// Number of restart points (entries storing their whole key).
    pub fn num_restarts(&self) -> usize {
        self.num_restarts
    }

    /// True if the block holds no entries.
    pub fn is_empty(&self) -> bool {
        self.num_restarts == 0
    }

    /// An unpositioned cursor over the block.
    pub fn iter(self: &Arc<Self>) -> BlockIter {
        BlockIter {
            block: Arc::clone(self),
            current: self.restarts_offset,
            next: self.restarts_offset,
            restart_index: 0,
            key: Vec::new(),
            value: (0, 0),
            valid: false,
        }
    }

    fn restart_point(&self, i: usize) -> usize {
        // `new` checked every restart for i < num_restarts; callers only ask for those, so the
        // fallback (end of entries: the cursor just becomes invalid) is never taken.
        match get_u32(&self.data, self.restarts_offset + 4 * i) {
            Some(r) if i < self.num_restarts => r as usize,
            _ => self.restarts_offset,
        }
    }

    fn corruption(&self, pos: usize, reason: impl Into<String>) -> Error {
        Error::corruption(&*self.file, self.offset + pos as u64, reason)
    }

    /// The entry at `pos`, its key delta and value checked to lie inside the entry area.
    fn decode_entry(&self, pos: usize) -> Result<RawEntry> {
        let area = self.data.get(pos..self.restarts_offset).unwrap_or_default();
        let (shared, unshared, value_len, header_len) = match area {
            // Fast path (LevelDB's): all three lengths fit in one byte each, as they do for
            // keys and values under 128 bytes.
            [s, u, v, ..] if (s | u | v) < 0x80 => (u64::from(*s), u64::from(*u), u64::from(*v), 3),
            _ => {
                let mut d = Decoder::new(area);
                let header = |d: &mut Decoder<'_>| Some((d.varint()?, d.varint()?, d.varint()?));
                let (s, u, v) =
                    header(&mut d).ok_or_else(|| self.corruption(pos, "truncated entry header"))?;
                (s, u, v, d.position())
            }
        };
        let remaining = (area.len() - header_len) as u64;
        if unshared > remaining || value_len > remaining - unshared {
            return Err(self.corruption(pos, "entry runs past the end of the block"));
        }
        // Both are at most `remaining`, a usize; `shared` is checked by the caller.
        let key_start = pos + header_len;
        let key_end = key_start + unshared as usize;
        let value_end = key_end + value_len as usize;
        let shared = usize::try_from(shared).unwrap_or(usize::MAX);
        Ok(RawEntry {
            shared,
            key_delta: (key_start, key_end),
            value: (key_end, value_end),
        })
    }

    /// The full key stored at restart point `i`.
    fn restart_key(&self, i: usize) -> Result<&[u8]> {
        let pos = self.restart_point(i);
        let RawEntry {
            shared,
            key_delta: (ks, ke),
            ..
        } = self.decode_entry(pos)?;
        if shared != 0 {
            return Err(self.corruption(pos, "entry at a restart point shares a key prefix"));
        }
        Ok(self.data.get(ks..ke).unwrap_or_default())
    }
}

/// A cursor over one block, implementing [`InternalIterator`].
pub struct BlockIter {
    block: Arc<Block>,
    /// Offset of the current entry.
    current: usize,
    /// Offset just past the current entry.
    next: usize,
    /// The restart point at or before `current`.
    restart_index: usize,
    key: Vec<u8>,
    value: (usize, usize),
    valid: bool,
}

impl fmt::Debug for BlockIter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BlockIter")
            .field("block", &self.block)
            .field("current", &self.current)
            .field("valid", &self.valid)
            .finish()
    }
}

impl BlockIter {
    /// The block being iterated.
    pub fn block(&self) -> &Arc<Block> {
        &self.block
    }

    /// File offset of the current entry (for error messages).
    pub fn entry_offset(&self) -> u64 {
        self.block.offset + self.current as u64
    }

    /// The current value as a borrowed slice (no reference count).
    pub fn value_slice(&self) -> &[u8] {
        if !self.valid {
            return &[];
        }
        self.block
            .data
            .get(self.value.0..self.value.1)
            .unwrap_or_default()
    }

    /// Position at the entry stored at restart point `i`; invalid if there is no such point.
    pub fn seek_to_restart_entry(&mut self, i: usize) -> Result<()> {
        if i >= self.block.num_restarts {
            self.invalidate();
            return Ok(());
        }
        self.seek_to_restart(i);
        self.parse_next().map(drop)
    }

    fn invalidate(&mut self) {
        self.valid = false;
        self.current = self.block.restarts_offset;
        self.next = self.block.restarts_offset;
        self.key.clear();
    }

    fn seek_to_restart(&mut self, i: usize) {
        self.key.clear();
        self.restart_index = i;
        self.next = self.block.restart_point(i);
        self.valid = false;
    }

    /// Decode the entry at `self.next`; `Ok(false)` (and invalid) at the end of the block.
    fn parse_next(&mut self) -> Result<bool> {
        let pos = self.next;
        let r = self.decode_at(pos);
        if r.is_err() {
            self.invalidate();
        }
        r
    }

    fn decode_at(&mut self, pos: usize) -> Result<bool> {
        let block = &*self.block;
        if pos >= block.restarts_offset {
            self.invalidate();
            return Ok(false);
        }
        while self.restart_index + 1 < block.num_restarts
            && block.restart_point(self.restart_index + 1) <= pos
        {
            self.restart_index += 1;
        }
        let RawEntry {
            shared,
            key_delta: (ks, ke),
            value,
        } = block.decode_entry(pos)?;
        if block.restart_point(self.restart_index) == pos && shared != 0 {
            return Err(block.corruption(pos, "entry at a restart point shares a key prefix"));
        }
        if shared > self.key.len() {
            return Err(block.corruption(
                pos,
                format!(
                    "entry shares {shared} bytes with a previous key of {}",
                    self.key.len()
                ),
            ));
        }
        self.key.truncate(shared);
        self.key
            .extend_from_slice(block.data.get(ks..ke).unwrap_or_default());
        self.current = pos;
        self.next = value.1;
        self.value = value;
        self.valid = true;
        Ok(true)
    }

    fn seek_inner(&mut self, target: &[u8]) -> Result<()> {
        let n = self.block.num_restarts;
        if n == 0 {
            self.invalidate();
            return Ok(());
        }
        if n <= PREFETCHED_RESTARTS {
            // Start loading every entry the binary search may probe, so that their cache
            // misses overlap instead of following one another.
            for i in 0..n {
                let at = self.block.restart_point(i);
                crate::cpu::prefetch(self.block.data.as_ptr().wrapping_add(at));
            }
        }
        // Find the last restart point whose key is < target; the answer is at or after it.
        let (mut left, mut right) = (0, n - 1);
        while left < right {
            let mid = left + (right - left).div_ceil(2);
            if compare_internal(self.block.restart_key(mid)?, target) == Ordering::Less {
                left = mid;
            } else {
                right = mid - 1;
            }
        }
        self.seek_to_restart(left);
        while self.parse_next()? {
            if compare_internal(&self.key, target) != Ordering::Less {
                break;
            }
        }
        Ok(())
    }
}

impl InternalIterator for BlockIter {
    fn valid(&self) -> bool {
        self.valid
    }

    fn seek_to_first(&mut self) -> Result<()> {
        if self.block.num_restarts == 0 {
            self.invalidate();
            return Ok(());
        }
        self.seek_to_restart(0);
        self.parse_next().map(drop)
    }

    fn seek_to_last(&mut self) -> Result<()> {
        let n = self.block.num_restarts;
        if n == 0 {
            self.invalidate();
            return Ok(());
        }
        self.seek_to_restart(n - 1);
        while self.parse_next()? {
            if self.next >= self.block.restarts_offset {
                break;
            }
        }
        Ok(())
    }

    fn seek(&mut self, target: &[u8]) -> Result<()> {
        let r = self.seek_inner(target);
        if r.is_err() {
            self.invalidate();
        }
        r
    }

    fn seek_for_prev(&mut self, target: &[u8]) -> Result<()> {
        self.seek(target)?;
        if !self.valid {
            return self.seek_to_last();
        }
        if compare_internal(&self.key, target) == Ordering::Greater {
            self.prev()?;
        }
        Ok(())
    }

    fn next(&mut self) -> Result<()> {
        if !self.valid {
            return Ok(());
        }
        self.parse_next().map(drop)
    }

    fn prev(&mut self) -> Result<()> {
        if !self.valid {
            return Ok(());
        }
        let original = self.current;
        // Back up to the last restart point before the current entry, then scan forward to the
        // entry that ends where the current one starts.
        while self.block.restart_point(self.restart_index) >= original {
            if self.restart_index == 0 {
                self.invalidate();
                return Ok(());
            }
            self.restart_index -= 1;
        }
        self.seek_to_restart(self.restart_index);
        while self.parse_next()? {
            if self.next >= original {
                break;
            }
        }
        Ok(())
    }

    fn key(&self) -> &[u8] {
        &self.key
    }

    fn value(&self) -> Bytes {
        if !self.valid {
            return Bytes::new();
        }
        self.block.data.slice(self.value.0..self.value.1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::key::{internal_key, ValueKind};
    use proptest::prelude::*;

    fn test_path() -> Arc<Path> {
        Arc::from(Path::new("test.sst"))
    }

    fn entries(n: usize) -> Vec<(Vec<u8>, Vec<u8>)> {
        (0..n)
            .map(|i| {
                let user = format!("key{:05}", i / 2);
                let seq = 1000 - i as u64;
                (
                    internal_key(user.as_bytes(), seq, ValueKind::Value as u8),
                    format!("v{i}").into_bytes(),
                )
            })
            .collect()
    }

    fn build(entries: &[(Vec<u8>, Vec<u8>)], restart_interval: usize) -> Arc<Block> {
        let mut b = BlockBuilder::new(restart_interval);
        for (k, v) in entries {
            b.add(k, v);
        }
        Arc::new(Block::new(Bytes::from(b.finish()), test_path(), 0).unwrap())
    }

    #[test]
    fn iterates_both_ways_and_seeks_at_every_restart_interval() {
        let es = entries(100);
        for interval in [1, 2, 3, 16, 200] {
            let block = build(&es, interval);
            let mut it = block.iter();
            it.seek_to_first().unwrap();
            for (k, v) in &es {
                assert!(it.valid());
                assert_eq!((it.key(), &it.value()[..]), (&k[..], &v[..]));
                it.next().unwrap();
            }
            assert!(!it.valid());
            it.seek_to_last().unwrap();
            for (k, _) in es.iter().rev() {
                assert_eq!(it.key(), &k[..]);
                it.prev().unwrap();
            }
            assert!(!it.valid());
            for (i, (k, _)) in es.iter().enumerate() {
                it.seek(k).unwrap();
                assert_eq!(it.key(), &k[..]);
                it.seek_for_prev(k).unwrap();
                assert_eq!(it.key(), &k[..]);
                // Switching direction mid-block.
                if i + 1 < es.len() {
                    it.next().unwrap();
                    it.prev().unwrap();
                    assert_eq!(it.key(), &k[..], "interval {interval} entry {i}");
                }
            }
            it.seek(&internal_key(b"zzz", 1, 1)).unwrap();
            assert!(!it.valid());
            it.seek_for_prev(&internal_key(b"a", 1, 1)).unwrap();
            assert!(!it.valid());
        }
    }

    #[test]
    fn empty_block_has_no_entries() {
        let block = build(&[], 16);
        assert!(block.is_empty());
        let mut it = block.iter();
        it.seek_to_first().unwrap();
        assert!(!it.valid());
        it.seek_to_last().unwrap();
        assert!(!it.valid());
        it.seek(b"anything").unwrap();
        assert!(!it.valid());
    }

    #[test]
    fn bad_restart_arrays_are_corruption() {
        for data in [
            vec![],
            vec![1, 0, 0],
            vec![5, 0, 0, 0],
            vec![9, 9, 9, 9, 0, 0, 0, 0],
        ] {
            assert!(Block::new(Bytes::from(data), test_path(), 0)
                .unwrap_err()
                .is_corruption());
        }
        // A restart point that is not increasing.
        let mut b = BlockBuilder::new(1);
        b.add(b"a", b"1");
        b.add(b"b", b"2");
        let mut data = b.finish();
        let n = data.len();
        data[n - 8..n - 4].copy_from_slice(&0u32.to_le_bytes());
        assert!(Block::new(Bytes::from(data), test_path(), 0).is_err());
    }

    #[test]
    fn shared_longer_than_previous_key_is_corruption() {
        // One restart at 0, two entries; the second claims to share 5 bytes of a 1-byte key.
        let mut data = vec![0, 1, 1, b'a', b'x', 5, 0, 0];
        data.extend_from_slice(&0u32.to_le_bytes());
        data.extend_from_slice(&1u32.to_le_bytes());
        let block = Arc::new(Block::new(Bytes::from(data), test_path(), 0).unwrap());
        let mut it = block.iter();
        it.seek_to_first().unwrap();
        assert!(it.next().unwrap_err().is_corruption());
        assert!(!it.valid());
        assert!(it.seek_to_last().unwrap_err().is_corruption());
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(data in proptest::collection::vec(any::<u8>(), 0..200),
                                       target in proptest::collection::vec(any::<u8>(), 0..12)) {
            if let Ok(block) = Block::new(Bytes::from(data), test_path(), 0) {
                let block = Arc::new(block);
                let mut it = block.iter();
                let mut steps = 0;
                if it.seek_to_first().is_ok() {
                    while it.valid() && it.next().is_ok() { steps += 1; prop_assert!(steps < 200); }
                }
                if it.seek_to_last().is_ok() {
                    while it.valid() && it.prev().is_ok() { steps += 1; prop_assert!(steps < 400); }
                }
                let _ = it.seek(&target);
                let _ = it.seek_for_prev(&target);
                let _ = it.value();
            }
        }
    }
}
