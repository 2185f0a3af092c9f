//! The fixed parts of an SSTable: block handles, the block trailer, the properties block and the
//! footer. Every constant in this file is written to disk.
//!
//! ```text
//! block_handle := offset: fixed64, size: fixed64                           (16 bytes)
//!                 size counts the block contents only, not its trailer
//! block        := contents[size] trailer
//! trailer      := type: u8, crc: fixed32                                   (5 bytes)
//!                 type 0 = uncompressed, 1 = lz4, 2 = zstd (see compress.rs for the
//!                 layout of compressed contents);
//!                 crc = crc32(contents ++ type ++ file_number: fixed64 ++ offset: fixed64),
//!                 over the contents as stored (compressed), bound to the table's file
//!                 number (from the footer) and the block's own offset
//! properties   := num_entries: varint, num_deletions: varint,
//!                 raw_key_bytes: varint, raw_value_bytes: varint,
//!                 data_blocks: varint, min_seq: varint, max_seq: varint,
//!                 smallest_key_len: varint, smallest_key[smallest_key_len],
//!                 largest_key_len: varint, largest_key[largest_key_len]
//! footer       := index_handle: block_handle, filter_handle: block_handle,
//!                 properties_handle: block_handle, file_number: fixed64,
//!                 format_version: fixed32 (= 3),
//!                 magic: fixed64 (= 0x5354_5241_5441_5353, "SSATARTS" little-endian),
//!                 footer_crc: fixed32                                      (72 bytes)
//!                 footer_crc = crc32(the first 68 bytes of the footer)
//! ```
//!
//! `file_number` is the table's own number (the `NNNNNN` of `NNNNNN.sst`): the manifest checks
//! it at open, so another table's bytes under this name are caught, and every block's crc is
//! bound to it and to the block's offset, so a block written at the wrong offset, or copied
//! from another table, fails its checksum even though its bytes are intact. (RocksDB's
//! "block-based table checksum with context" and unique table ids do the same.) A block moved
//! within its table, or copied to the same offset of another table, is always caught: for
//! offsets and numbers below 2^32 the two contexts differ within 32 consecutive bits, and
//! CRC-32 detects every such error.
//!
//! Older versions are not read any more: version 1 (64-byte footer, crcs over contents and
//! type only) and version 2 (a bloom filter whose probes spread over the whole filter, not one
//! cache line). The version and magic sit at the same distance from the end of the file in
//! every version, so such a table is reported as an unsupported version.
//!
//! Invariants a reader checks before trusting anything:
//! - the footer's magic, version and crc are right;
//! - a handle lies entirely before the footer (`offset + size + 5 <= file_size - 72`), so a
//!   damaged handle can never make the reader allocate more than the file holds;
//! - a block's crc (with its context) matches before its contents are decoded (or
//!   decompressed), and a compressed block's uncompressed length is at most
//!   [`MAX_UNCOMPRESSED_BLOCK_LEN`] before anything is allocated from it;
//! - the properties block decodes exactly, with no trailing bytes, and its numbers agree with
//!   each other (deletions <= entries, min_seq <= max_seq, smallest <= largest key).
//!
//! `file_size` and `file_number` in [`TableProperties`] are not stored in the properties
//! block: the reader fills them from the file and its footer.

use std::cmp::Ordering;
use std::path::Path;
use std::sync::Arc;

use bytes::Bytes;

use crate::buffer_pool::BufferPool;
use crate::coding::{get_u32, get_u64, put_length_prefixed, put_varint, Decoder};
use crate::error::{Error, Result};
use crate::fs::RandomAccessFile;
use crate::key::{compare_internal, parse_internal_key, SeqNo};
use crate::sstable::compress::decompress_block_with;

// Written to disk, never renumber.
/// Block type byte: contents stored as they are.
pub const BLOCK_TYPE_UNCOMPRESSED: u8 = 0;
/// Block type byte: `uncompressed_len: varint` then one LZ4 block.
pub const BLOCK_TYPE_LZ4: u8 = 1;
/// Block type byte: `uncompressed_len: varint` then one zstd frame.
pub const BLOCK_TYPE_ZSTD: u8 = 2;
/// The largest uncompressed size a compressed block may claim: 64 MiB (the default largest
/// value) plus 1 MiB of slack for its key and block overhead. Writers store larger blocks raw;
/// readers reject a larger claim as corruption before allocating anything for it.
pub const MAX_UNCOMPRESSED_BLOCK_LEN: usize = (64 << 20) + (1 << 20);
/// The table format this code writes and the only one it reads (2: block checksums bound to
/// the file number and offset, the file number in the footer).
pub const FORMAT_VERSION: u32 = 3;
/// The last eight bytes before the footer crc: "STRATASS" read as a big-endian number.
pub const TABLE_MAGIC: u64 = 0x5354_5241_5441_5353;

/// Bytes after every block: type (1) and crc (4).
pub const BLOCK_TRAILER_LEN: usize = 5;
/// An encoded [`BlockHandle`]: two fixed64.
pub const BLOCK_HANDLE_LEN: usize = 16;
/// The footer at the end of every table.
pub const FOOTER_LEN: usize = 72;
/// Where the footer's fields start.
const FOOTER_FILE_NUMBER_AT: usize = 48;
const FOOTER_VERSION_AT: usize = 56;
const FOOTER_MAGIC_AT: usize = 60;
const FOOTER_CRC_AT: usize = 68;

/// Where a block lives in the file. `size` excludes the 5-byte trailer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct BlockHandle {
    pub offset: u64,
    pub size: u64,
}

impl BlockHandle {
    pub fn new(offset: u64, size: u64) -> Self {
        BlockHandle { offset, size }
    }

    /// Append the 16-byte encoding.
    pub fn encode_to(&self, dst: &mut Vec<u8>) {
        dst.extend_from_slice(&self.offset.to_le_bytes());
        dst.extend_from_slice(&self.size.to_le_bytes());
    }

    /// The 16-byte encoding.
    pub fn encode(&self) -> [u8; BLOCK_HANDLE_LEN] {
        let mut out = [0u8; BLOCK_HANDLE_LEN];
        out[..8].copy_from_slice(&self.offset.to_le_bytes());
        out[8..].copy_from_slice(&self.size.to_le_bytes());
        out
    }

    /// Decode a handle from exactly 16 bytes.
    pub fn decode(src: &[u8]) -> Option<BlockHandle> {
        if src.len() != BLOCK_HANDLE_LEN {
            return None;
        }
        Some(BlockHandle {
            offset: get_u64(src, 0)?,
            size: get_u64(src, 8)?,
        })
    }

    /// The offset just past the block's trailer; `None` on overflow.
    pub fn end(&self) -> Option<u64> {
        self.offset
            .checked_add(self.size)?
            .checked_add(BLOCK_TRAILER_LEN as u64)
    }
}

/// The crc stored in a block trailer: over the stored contents and the type byte, bound to
/// the block's context, the number of its table (`file_number`, as in the footer) and its
/// `offset` in the file.
pub fn block_crc(contents: &[u8], block_type: u8, file_number: u64, offset: u64) -> u32 {
    let mut hasher = crc32fast::Hasher::new();
    hasher.update(contents);
    hasher.update(&[block_type]);
    hasher.update(&file_number.to_le_bytes());
    hasher.update(&offset.to_le_bytes());
    hasher.finalize()
}

/// The 5-byte trailer for a block of `block_type` with these stored contents, written at
/// `offset` of table `file_number`.
pub fn block_trailer(
    contents: &[u8],
    block_type: u8,
    file_number: u64,
    offset: u64,
) -> [u8; BLOCK_TRAILER_LEN] {
    let mut out = [0u8; BLOCK_TRAILER_LEN];
    out[0] = block_type;
    let crc = block_crc(contents, block_type, file_number, offset);
    out[1..].copy_from_slice(&crc.to_le_bytes());
    out
}

/// The number a table file's name gives it (`NNNNNN.sst`), 0 for any other name: the number
/// a [`TableBuilder`](crate::sstable::TableBuilder) writes into the table it creates.
pub fn file_number_of(path: &Path) -> u64 {
    match path
        .file_name()
        .and_then(|n| n.to_str())
        .and_then(crate::filenames::parse_file_name)
    {
        Some(crate::filenames::FileKind::Table(n)) => n,
        _ => 0,
    }
}

/// The file name for error messages ("000012.sst"), or the whole path if it has none.
pub(crate) fn display_name(path: &Path) -> String {
    match path.file_name() {
        Some(name) => name.to_string_lossy().into_owned(),
        None => path.display().to_string(),
    }
}

/// Read the block at `handle` of table `file_number` (the number in its footer), check that it
/// ends at or before `limit`, verify its trailer and return its contents, decompressed as its
/// type byte says (any block may be compressed as far as the reader is concerned; the writer
/// compresses only data blocks).
pub fn read_block(
    file: &dyn RandomAccessFile,
    path: &Path,
    handle: BlockHandle,
    limit: u64,
    file_number: u64,
) -> Result<Bytes> {
    read_block_with(file, path, handle, limit, file_number, None)
}

/// [`read_block`] into a buffer of `pool`, returned as `Bytes` that give it back to the pool
/// (see [`buffer_pool`](crate::buffer_pool)): for data blocks, which the cache holds and
/// evicts.
pub fn read_block_pooled(
    file: &dyn RandomAccessFile,
    path: &Path,
    handle: BlockHandle,
    limit: u64,
    file_number: u64,
    pool: &Arc<BufferPool>,
) -> Result<Bytes> {
    read_block_with(file, path, handle, limit, file_number, Some(pool))
}

fn read_block_with(
    file: &dyn RandomAccessFile,
    path: &Path,
    handle: BlockHandle,
    limit: u64,
    file_number: u64,
    pool: Option<&Arc<BufferPool>>,
) -> Result<Bytes> {
    let out_of_range = || {
        Error::corruption(
            path,
            handle.offset,
            format!(
                "block handle (offset {}, size {}) reaches past the end of the block area at {limit}",
                handle.offset, handle.size
            ),
        )
    };
    let end = handle.end().ok_or_else(out_of_range)?;
    if end > limit {
        return Err(out_of_range());
    }
    // `end <= limit <= file size`, and the file was readable, so the length fits in memory as
    // far as the file system is concerned; `try_from` guards 32-bit targets.
    let size = usize::try_from(handle.size).map_err(|_| out_of_range())?;
    let len = size
        .checked_add(BLOCK_TRAILER_LEN)
        .ok_or_else(out_of_range)?;
    let mut buf = pool.map_or_else(Vec::new, |p| p.take(len));
    let read = file.read_at_into(handle.offset, len, &mut buf);
    let checked = read
        .map_err(|e| Error::io(format!("reading table {}", display_name(path)), e))
        .and_then(|()| {
            let short = || Error::corruption(path, handle.offset, "short read of a block");
            let block_type = *buf.get(size).ok_or_else(short)?;
            let stored_crc = get_u32(&buf, size + 1).ok_or_else(short)?;
            let contents = buf.get(..size).ok_or_else(short)?;
            if block_crc(contents, block_type, file_number, handle.offset) != stored_crc {
                return Err(Error::corruption(
                    path,
                    handle.offset,
                    "block checksum mismatch (damaged, or a block of another offset or table)",
                ));
            }
            Ok(block_type)
        });
    match checked {
        Ok(block_type) => {
            buf.truncate(size);
            decompress_block_with(block_type, buf, path, handle.offset, pool)
        }
        Err(e) => {
            if let Some(pool) = pool {
                pool.give_back(buf);
            }
            Err(e)
        }
    }
}

/// The last 72 bytes of a table: where its metadata blocks are, and its file number.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Footer {
    pub index: BlockHandle,
    /// `size == 0` when the table has no filter.
    pub filter: BlockHandle,
    pub properties: BlockHandle,
    /// The table's own file number; every block's crc is bound to it.
    pub file_number: u64,
}

impl Footer {
    pub fn encode(&self) -> [u8; FOOTER_LEN] {
        let mut buf = Vec::with_capacity(FOOTER_LEN);
        self.index.encode_to(&mut buf);
        self.filter.encode_to(&mut buf);
        self.properties.encode_to(&mut buf);
        buf.extend_from_slice(&self.file_number.to_le_bytes());
        buf.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
        buf.extend_from_slice(&TABLE_MAGIC.to_le_bytes());
        let crc = crc32fast::hash(&buf);
        buf.extend_from_slice(&crc.to_le_bytes());
        let mut out = [0u8; FOOTER_LEN];
        out.copy_from_slice(&buf);
        out
    }

    /// Decode the footer read from `offset` of `path` (the last 72 bytes of the file).
    pub fn decode(buf: &[u8], path: &Path, offset: u64) -> Result<Footer> {
        let bad = |reason: String| Error::corruption(path, offset, reason);
        if buf.len() != FOOTER_LEN {
            return Err(bad(format!(
                "footer is {} bytes, expected {FOOTER_LEN}",
                buf.len()
            )));
        }
        let field = |pos: usize| get_u64(buf, pos).unwrap_or_default();
        let magic = field(FOOTER_MAGIC_AT);
        if magic != TABLE_MAGIC {
            return Err(bad(format!(
                "bad magic number {magic:#018x}: not a Strata table"
            )));
        }
        // The version sits at the same distance from the end in every format, so an old
        // table is reported as such rather than as a checksum mismatch.
        let version = get_u32(buf, FOOTER_VERSION_AT).unwrap_or_default();
        if version != FORMAT_VERSION {
            return Err(bad(format!(
                "unsupported table format version {version} (this build reads {FORMAT_VERSION})"
            )));
        }
        let stored_crc = get_u32(buf, FOOTER_CRC_AT).unwrap_or_default();
        if crc32fast::hash(&buf[..FOOTER_CRC_AT]) != stored_crc {
            return Err(bad("footer checksum mismatch".into()));
        }
        Ok(Footer {
            index: BlockHandle::new(field(0), field(8)),
            filter: BlockHandle::new(field(16), field(24)),
            properties: BlockHandle::new(field(32), field(40)),
            file_number: field(FOOTER_FILE_NUMBER_AT),
        })
    }
}

/// Facts about a table, stored in its properties block (all but `file_size`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TableProperties {
    pub num_entries: u64,
    /// Entries of kind `Deletion`.
    pub num_deletions: u64,
    /// Sum of the encoded internal key lengths.
    pub raw_key_bytes: u64,
    pub raw_value_bytes: u64,
    pub data_blocks: u64,
    /// Smallest and largest sequence numbers; both 0 in an empty table.
    pub min_seq: SeqNo,
    pub max_seq: SeqNo,
    /// First and last encoded internal keys; empty in an empty table.
    pub smallest_key: Vec<u8>,
    pub largest_key: Vec<u8>,
    /// The size of the file; not stored, filled in from the file when it is opened.
    pub file_size: u64,
    /// The table's own file number; not stored here, filled in from the footer.
    pub file_number: u64,
}

impl TableProperties {
    /// The properties block contents (see the module grammar).
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(64 + self.smallest_key.len() + self.largest_key.len());
        for v in [
            self.num_entries,
            self.num_deletions,
            self.raw_key_bytes,
            self.raw_value_bytes,
            self.data_blocks,
            self.min_seq,
            self.max_seq,
        ] {
            put_varint(&mut out, v);
        }
        put_length_prefixed(&mut out, &self.smallest_key);
        put_length_prefixed(&mut out, &self.largest_key);
        out
    }

    /// Decode and sanity-check a properties block read from `offset` of `path`.
    pub fn decode(buf: &[u8], path: &Path, offset: u64) -> Result<TableProperties> {
        let mut d = Decoder::new(buf);
        let bad = |pos: usize, reason: &str| {
            Error::corruption(
                path,
                offset + pos as u64,
                format!("properties block: {reason}"),
            )
        };
        let mut nums = [0u64; 7];
        for n in nums.iter_mut() {
            *n = d
                .varint()
                .ok_or_else(|| bad(d.position(), "truncated or malformed varint"))?;
        }
        let smallest = d
            .length_prefixed()
            .ok_or_else(|| bad(d.position(), "truncated key"))?;
        let largest = d
            .length_prefixed()
            .ok_or_else(|| bad(d.position(), "truncated key"))?;
        if !d.is_empty() {
            return Err(bad(d.position(), "trailing bytes"));
        }
        let [num_entries, num_deletions, raw_key_bytes, raw_value_bytes, data_blocks, min_seq, max_seq] =
            nums;
        let props = TableProperties {
            num_entries,
            num_deletions,
            raw_key_bytes,
            raw_value_bytes,
            data_blocks,
            min_seq,
            max_seq,
            smallest_key: smallest.to_vec(),
            largest_key: largest.to_vec(),
            file_size: 0,
            file_number: 0,
        };
        let consistent = if num_entries == 0 {
            num_deletions == 0
                && data_blocks == 0
                && smallest.is_empty()
                && largest.is_empty()
                && raw_key_bytes == 0
                && raw_value_bytes == 0
        } else {
            num_deletions <= num_entries
                && data_blocks >= 1
                && data_blocks <= num_entries
                && min_seq <= max_seq
                && parse_internal_key(smallest).is_some()
                && parse_internal_key(largest).is_some()
                && compare_internal(smallest, largest) != Ordering::Greater
        };
        if !consistent {
            return Err(bad(0, "fields contradict each other"));
        }
        Ok(props)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::key::internal_key;

    #[test]
    fn footer_round_trips_and_rejects_every_damaged_byte() {
        let footer = Footer {
            index: BlockHandle::new(1000, 200),
            filter: BlockHandle::new(10, 30),
            properties: BlockHandle::new(45, 60),
            file_number: 12,
        };
        let bytes = footer.encode();
        let path = Path::new("t.sst");
        assert_eq!(Footer::decode(&bytes, path, 0).unwrap(), footer);
        for i in 0..FOOTER_LEN {
            let mut damaged = bytes;
            damaged[i] ^= 0x40;
            assert!(
                Footer::decode(&damaged, path, 0)
                    .unwrap_err()
                    .is_corruption(),
                "byte {i}"
            );
        }
    }

    #[test]
    fn a_block_crc_is_bound_to_its_table_and_offset() {
        let contents = b"the stored contents of a block";
        let crc = block_crc(contents, BLOCK_TYPE_UNCOMPRESSED, 12, 4096);
        assert_ne!(crc, block_crc(contents, BLOCK_TYPE_UNCOMPRESSED, 13, 4096));
        assert_ne!(crc, block_crc(contents, BLOCK_TYPE_UNCOMPRESSED, 12, 4097));
        assert_ne!(crc, block_crc(contents, BLOCK_TYPE_LZ4, 12, 4096));
        // Moved anywhere within its table, or to the same offset of any other table: always a
        // different crc (the contexts differ within 32 consecutive bits).
        let moved: std::collections::HashSet<u32> = (0..20_000u64)
            .map(|offset| block_crc(contents, BLOCK_TYPE_UNCOMPRESSED, 12, offset))
            .collect();
        assert_eq!(moved.len(), 20_000);
        let other_tables: std::collections::HashSet<u32> = (0..20_000u64)
            .map(|number| block_crc(contents, BLOCK_TYPE_UNCOMPRESSED, number, 4096))
            .collect();
        assert_eq!(other_tables.len(), 20_000);
        let trailer = block_trailer(contents, BLOCK_TYPE_LZ4, 12, 4096);
        assert_eq!(trailer[0], BLOCK_TYPE_LZ4);
        assert_eq!(
            trailer[1..],
            block_crc(contents, BLOCK_TYPE_LZ4, 12, 4096).to_le_bytes()
        );
    }

    #[test]
    fn a_version_1_footer_is_reported_as_an_unsupported_version() {
        // Version 1: three handles, version, magic, crc over the first 60 bytes (64 bytes),
        // here as the last 72 bytes of a file.
        let mut v1 = Vec::new();
        for h in [1000u64, 200, 10, 30, 45, 60] {
            v1.extend_from_slice(&h.to_le_bytes());
        }
        v1.extend_from_slice(&1u32.to_le_bytes());
        v1.extend_from_slice(&TABLE_MAGIC.to_le_bytes());
        let crc = crc32fast::hash(&v1);
        v1.extend_from_slice(&crc.to_le_bytes());
        let mut last = vec![7u8; FOOTER_LEN - v1.len()];
        last.extend_from_slice(&v1);
        let err = Footer::decode(&last, Path::new("t.sst"), 0).unwrap_err();
        assert!(
            err.to_string()
                .contains("unsupported table format version 1"),
            "{err}"
        );
    }

    #[test]
    fn the_number_a_table_name_gives() {
        assert_eq!(file_number_of(Path::new("/db/000123.sst")), 123);
        assert_eq!(file_number_of(Path::new("000007.sst")), 7);
        assert_eq!(file_number_of(Path::new("fuzz.sst")), 0);
        assert_eq!(file_number_of(Path::new("/db/000123.log")), 0);
    }

    #[test]
    fn handles_are_sixteen_little_endian_bytes() {
        let h = BlockHandle::new(0x0102, 0x0304);
        let e = h.encode();
        assert_eq!(&e[..3], &[0x02, 0x01, 0]);
        assert_eq!(BlockHandle::decode(&e), Some(h));
        assert_eq!(BlockHandle::decode(&e[..15]), None);
        assert_eq!(BlockHandle::new(u64::MAX, 1).end(), None);
    }

    #[test]
    fn properties_round_trip_and_reject_contradictions() {
        let props = TableProperties {
            num_entries: 3,
            num_deletions: 1,
            raw_key_bytes: 30,
            raw_value_bytes: 7,
            data_blocks: 1,
            min_seq: 4,
            max_seq: 9,
            smallest_key: internal_key(b"a", 9, 1),
            largest_key: internal_key(b"c", 4, 0),
            file_size: 0,
            file_number: 0,
        };
        let path = Path::new("t.sst");
        assert_eq!(
            TableProperties::decode(&props.encode(), path, 0).unwrap(),
            props
        );
        let swapped = TableProperties {
            smallest_key: props.largest_key.clone(),
            largest_key: props.smallest_key.clone(),
            ..props.clone()
        };
        assert!(TableProperties::decode(&swapped.encode(), path, 0).is_err());
        let mut trailing = props.encode();
        trailing.push(0);
        assert!(TableProperties::decode(&trailing, path, 0).is_err());
        let empty = TableProperties::default();
        assert_eq!(
            TableProperties::decode(&empty.encode(), path, 0).unwrap(),
            empty
        );
    }
}
