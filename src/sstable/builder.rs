//! [`TableBuilder`]: writes a sorted stream of entries as one SSTable file.
//!
//! ```text
//! table := data_block* filter_block? properties_block index_block footer
//! ```
//!
//! The builder appends each block with its trailer as soon as it is complete, so memory use is
//! one data block, the index block and one hash per distinct user key (for the filter).
//!
//! Invariants:
//! - keys are encoded internal keys, strictly increasing in [`compare_internal`] order
//!   (checked against the previous key; `InvalidArgument` otherwise);
//! - data blocks are contiguous from offset 0, each cut once its *uncompressed* size reaches
//!   `block_size`, then compressed with `opts.compression` if that saves at least 1/8 (after
//!   a run of blocks that did not, only samples are tried: see `BlockCompressor`)
//!   (see [`crate::sstable::compress`]); metadata blocks are always stored raw;
//! - the index holds one entry per data block: its last key and its handle;
//! - `finish` syncs the file; the caller syncs the directory and renames if it wants atomicity;
//! - the table's file number is the one its name gives it (`NNNNNN.sst`, 0 for other names):
//!   it goes into the footer, and every block's crc is bound to it and to the block's offset
//!   (see [`crate::sstable::format`]).
//!
//! After an I/O error the builder refuses further work: the file's contents are unknown. A
//! builder dropped without `finish` leaves a partial file behind for the caller to delete.

use std::cmp::Ordering;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::fs::WritableFile;
use crate::key::{compare_internal, parse_internal_key, ValueKind};
use crate::sstable::block::BlockBuilder;
use crate::sstable::compress::BlockCompressor;
use crate::sstable::filter::FilterBuilder;
use crate::sstable::format::{
    block_trailer, display_name, file_number_of, BlockHandle, Footer, TableProperties,
    BLOCK_HANDLE_LEN, BLOCK_TRAILER_LEN, BLOCK_TYPE_UNCOMPRESSED, FOOTER_LEN,
};
use crate::sstable::TableOptions;

/// Writes one SSTable. See the module docs for the layout.
pub struct TableBuilder {
    file: Box<dyn WritableFile>,
    path: PathBuf,
    /// The table's number (from its file name): in the footer and in every block's crc.
    file_number: u64,
    opts: TableOptions,
    /// Bytes written so far.
    offset: u64,
    data_block: BlockBuilder,
    index_block: BlockBuilder,
    filter: Option<FilterBuilder>,
    compressor: BlockCompressor,
    last_key: Vec<u8>,
    props: TableProperties,
    /// Set by the first I/O error; every later call returns a copy.
    error: Option<Error>,
}

impl std::fmt::Debug for TableBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TableBuilder")
            .field("path", &self.path)
            .field("offset", &self.offset)
            .field("num_entries", &self.props.num_entries)
            .finish()
    }
}

impl TableBuilder {
    pub fn new(file: Box<dyn WritableFile>, path: PathBuf, opts: TableOptions) -> Self {
        let filter =
            (opts.bloom_bits_per_key > 0).then(|| FilterBuilder::new(opts.bloom_bits_per_key));
        TableBuilder {
            file,
            file_number: file_number_of(&path),
            path,
            opts,
            offset: 0,
            data_block: BlockBuilder::new(opts.restart_interval),
            index_block: BlockBuilder::new(1),
            filter,
            compressor: BlockCompressor::new(opts.compression),
            last_key: Vec::new(),
            props: TableProperties::default(),
            error: None,
        }
    }

    /// Append an entry. `internal_key` must sort strictly after the previous one.
    pub fn add(&mut self, internal_key: &[u8], value: &[u8]) -> Result<()> {
        if let Some(e) = &self.error {
            return Err(e.duplicate());
        }
        let parsed = parse_internal_key(internal_key).ok_or_else(|| {
            Error::InvalidArgument(format!(
                "{} is not an internal key (user key, then an 8-byte trailer with a known kind)",
                show_key(internal_key)
            ))
        })?;
        if self.props.num_entries > 0
            && compare_internal(internal_key, &self.last_key) != Ordering::Greater
        {
            return Err(Error::InvalidArgument(format!(
                "keys must be added to table {} in increasing order: {} after {}",
                display_name(&self.path),
                show_key(internal_key),
                show_key(&self.last_key)
            )));
        }
        if !self.data_block.fits(internal_key.len(), value.len()) {
            self.flush_data_block()?;
            if !self.data_block.fits(internal_key.len(), value.len()) {
                return Err(Error::InvalidArgument(format!(
                    "entry of {} bytes is too large for a table block",
                    internal_key.len() + value.len()
                )));
            }
        }
        if let Some(filter) = &mut self.filter {
            filter.add_key(parsed.user_key);
        }
        self.data_block.add(internal_key, value);

        let p = &mut self.props;
        if p.num_entries == 0 {
            p.smallest_key = internal_key.to_vec();
            p.min_seq = parsed.seq;
            p.max_seq = parsed.seq;
        }
        p.num_entries += 1;
        if parsed.kind == ValueKind::Deletion {
            p.num_deletions += 1;
        }
        p.raw_key_bytes += internal_key.len() as u64;
        p.raw_value_bytes += value.len() as u64;
        p.min_seq = p.min_seq.min(parsed.seq);
        p.max_seq = p.max_seq.max(parsed.seq);
        self.last_key.clear();
        self.last_key.extend_from_slice(internal_key);

        if self.data_block.current_size_estimate() >= self.opts.block_size {
            self.flush_data_block()?;
        }
        Ok(())
    }

    /// The size the file would have if the current data block were cut now (without the
    /// metadata blocks). Blocks already written count as stored (compressed); the current one
    /// at its uncompressed size.
    pub fn estimated_size(&self) -> u64 {
        self.offset + self.data_block.current_size_estimate() as u64
    }

    /// Entries added so far.
    pub fn num_entries(&self) -> u64 {
        self.props.num_entries
    }

    /// The path being written.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Write the last data block, the filter, properties and index blocks and the footer, then
    /// sync the file. Returns the table's properties (with `file_size`).
    pub fn finish(mut self) -> Result<TableProperties> {
        if let Some(e) = &self.error {
            return Err(e.duplicate());
        }
        self.flush_data_block()?;
        let filter_handle = match self.filter.take() {
            Some(filter) => self.write_raw_block(&filter.finish())?,
            None => BlockHandle::default(),
        };
        self.props.largest_key = std::mem::take(&mut self.last_key);
        let properties_handle = self.write_raw_block(&self.props.encode())?;
        let index = self.index_block.finish();
        let index_handle = self.write_raw_block(&index)?;
        let footer = Footer {
            index: index_handle,
            filter: filter_handle,
            properties: properties_handle,
            file_number: self.file_number,
        };
        self.append(&footer.encode())?;
        self.offset += FOOTER_LEN as u64;
        let name = display_name(&self.path);
        self.file
            .sync()
            .map_err(|e| Error::io(format!("syncing table {name}"), e))?;
        self.props.file_size = self.offset;
        self.props.file_number = self.file_number;
        Ok(self.props)
    }

    fn flush_data_block(&mut self) -> Result<()> {
        if self.data_block.is_empty() {
            return Ok(());
        }
        if !self.index_block.fits(self.last_key.len(), BLOCK_HANDLE_LEN) {
            return Err(Error::InvalidArgument(format!(
                "table {} is too large: its index block would exceed 4 GiB",
                display_name(&self.path)
            )));
        }
        let raw = self.data_block.finish();
        // Borrow the compressor's buffer and the file separately (disjoint fields).
        let (block_type, stored) = self.compressor.compress(&raw);
        let handle = write_block(
            &mut *self.file,
            &self.path,
            self.file_number,
            &mut self.offset,
            &mut self.error,
            stored,
            block_type,
        )?;
        self.index_block.add(&self.last_key, &handle.encode());
        self.props.data_blocks += 1;
        Ok(())
    }

    /// Append an uncompressed (metadata) block and its trailer.
    fn write_raw_block(&mut self, contents: &[u8]) -> Result<BlockHandle> {
        write_block(
            &mut *self.file,
            &self.path,
            self.file_number,
            &mut self.offset,
            &mut self.error,
            contents,
            BLOCK_TYPE_UNCOMPRESSED,
        )
    }

    fn append(&mut self, data: &[u8]) -> Result<()> {
        append(&mut *self.file, &self.path, &mut self.error, data)
    }
}

/// Append a block's stored contents and its trailer (its crc bound to `file_number` and the
/// offset) at `*offset`, advance `offset`, and return the block's handle. (A free function
/// over the builder's fields, so that `contents` may borrow the builder's compressor.)
fn write_block(
    file: &mut dyn WritableFile,
    path: &Path,
    file_number: u64,
    offset: &mut u64,
    error: &mut Option<Error>,
    contents: &[u8],
    block_type: u8,
) -> Result<BlockHandle> {
    let handle = BlockHandle::new(*offset, contents.len() as u64);
    append(file, path, error, contents)?;
    let trailer = block_trailer(contents, block_type, file_number, *offset);
    append(file, path, error, &trailer)?;
    *offset += (contents.len() + BLOCK_TRAILER_LEN) as u64;
    Ok(handle)
}

/// Append `data`; on failure remember the error so that the builder refuses further work.
fn append(
    file: &mut dyn WritableFile,
    path: &Path,
    error: &mut Option<Error>,
    data: &[u8],
) -> Result<()> {
    if let Err(e) = file.append(data) {
        let err = Error::io(format!("writing table {}", display_name(path)), e);
        *error = Some(err.duplicate());
        return Err(err);
    }
    Ok(())
}

/// An internal key for messages: `"user"#seq,KIND`, bytes escaped.
pub(crate) fn show_key(ikey: &[u8]) -> String {
    let escape = |b: &[u8]| b.escape_ascii().to_string();
    match parse_internal_key(ikey) {
        Some(p) => format!("\"{}\"#{},{:?}", escape(p.user_key), p.seq, p.kind),
        None => format!("<malformed key \"{}\">", escape(ikey)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fs::{FileSystem, RealFs};
    use crate::key::internal_key;
    use crate::sstable::Compression;

    fn builder(dir: &Path, opts: TableOptions) -> TableBuilder {
        let path = dir.join("000001.sst");
        TableBuilder::new(RealFs.create(&path).unwrap(), path, opts)
    }

    #[test]
    fn out_of_order_and_malformed_keys_are_rejected() {
        let dir = tempfile::tempdir().unwrap();
        let mut b = builder(dir.path(), TableOptions::default());
        b.add(&internal_key(b"b", 5, 1), b"v").unwrap();
        for bad in [
            internal_key(b"a", 9, 1),
            internal_key(b"b", 5, 1),
            internal_key(b"b", 6, 1),
        ] {
            assert!(matches!(b.add(&bad, b"v"), Err(Error::InvalidArgument(_))));
        }
        assert!(matches!(
            b.add(b"short", b"v"),
            Err(Error::InvalidArgument(_))
        ));
        b.add(&internal_key(b"b", 4, 0), b"").unwrap();
        assert_eq!(b.num_entries(), 2);
        let props = b.finish().unwrap();
        assert_eq!(
            (
                props.num_entries,
                props.num_deletions,
                props.min_seq,
                props.max_seq
            ),
            (2, 1, 4, 5)
        );
        assert_eq!(
            props.file_size,
            std::fs::metadata(dir.path().join("000001.sst"))
                .unwrap()
                .len()
        );
    }

    /// Blocks are cut by their uncompressed size, whatever the compression; compression only
    /// shrinks what is written.
    #[test]
    fn blocks_are_cut_at_block_size() {
        let dir = tempfile::tempdir().unwrap();
        let mut sizes = Vec::new();
        for compression in [Compression::None, Compression::Lz4, Compression::Zstd(3)] {
            let opts = TableOptions {
                block_size: 256,
                compression,
                ..TableOptions::default()
            };
            let mut b = builder(dir.path(), opts);
            for i in 0..1000u32 {
                b.add(
                    &internal_key(format!("{i:08}").as_bytes(), 1, 1),
                    &[7u8; 20],
                )
                .unwrap();
            }
            if compression == Compression::None {
                assert!(b.estimated_size() > 20_000);
            }
            let props = b.finish().unwrap();
            // About 8 entries of ~37 bytes fit in 256 bytes.
            assert!(
                props.data_blocks > 100 && props.data_blocks < 200,
                "{compression:?}: {}",
                props.data_blocks
            );
            sizes.push((props.data_blocks, props.file_size));
        }
        assert!(sizes.iter().all(|&(blocks, _)| blocks == sizes[0].0));
        assert!(
            sizes[1].1 < sizes[0].1 && sizes[2].1 < sizes[0].1,
            "{sizes:?}"
        );
    }

    #[test]
    fn keys_print_as_user_key_seq_kind() {
        assert_eq!(
            show_key(&internal_key(b"k\x01", 7, 0)),
            "\"k\\x01\"#7,Deletion"
        );
    }
}
