//! Per-block compression: [`Compression`] (what the writer is asked for), [`BlockCompressor`]
//! (the writer's side) and [`decompress_block`] (the reader's side).
//!
//! ```text
//! block         := contents[size] trailer
//! trailer       := type: u8, crc: fixed32         crc = crc32(contents ++ type)
//! type 0 (none) : contents = the block as built
//! type 1 (lz4)  : contents = raw_len: varint, lz4_block[...]
//!                 lz4_block is one LZ4 *block* (no frame, no size header) that decodes to
//!                 exactly raw_len bytes
//! type 2 (zstd) : contents = raw_len: varint, zstd_frame[...]
//!                 one zstd frame (it carries its own content size too; the reader relies
//!                 only on raw_len) that decodes to exactly raw_len bytes
//! ```
//!
//! Rules the writer keeps:
//! - only data blocks are compressed; index, filter and properties blocks are always type 0
//!   (they are read once at open and stay resident, so compressing them saves little and costs
//!   every open);
//! - a block is stored compressed only if its stored contents are at most 7/8 of its raw size
//!   (at least 1/8 smaller); otherwise it is stored raw, type 0, so incompressible data costs
//!   nothing on reads;
//! - a block larger than [`MAX_UNCOMPRESSED_BLOCK_LEN`] is stored raw.
//!
//! What the reader checks (after the crc, before trusting anything; a failure is `Corruption`):
//! - the type is 0, 1 or 2;
//! - `raw_len` is a well-formed varint no larger than [`MAX_UNCOMPRESSED_BLOCK_LEN`], so a
//!   damaged or hostile length can never make it allocate more than that;
//! - the decompressor succeeds and produces exactly `raw_len` bytes.
//!
//! The reader takes the compression from each block's type byte, never from options: a table
//! written with any compression (or a mix, block by block) is read by any reader.

use std::cell::RefCell;
use std::path::Path;
use std::sync::Arc;

use bytes::Bytes;

use crate::buffer_pool::{BufferPool, MAX_POOLED_BYTES};
use crate::coding::{put_varint, Decoder};
use crate::error::{Error, Result};
use crate::sstable::format::{
    BLOCK_TYPE_LZ4, BLOCK_TYPE_UNCOMPRESSED, BLOCK_TYPE_ZSTD, MAX_UNCOMPRESSED_BLOCK_LEN,
};

/// How the data blocks of a table are compressed. The reader needs no setting: every block
/// names its own compression in its trailer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    /// Blocks are stored as built.
    None,
    /// LZ4 (the `lz4_flex` crate, pure Rust): about 2-4 GB/s to decompress, so a block-cache
    /// miss pays little for it; the default for every level.
    Lz4,
    /// Zstandard at the given level: 1..=22 trade speed for size, negative levels are faster
    /// and compress less, 0 means zstd's default (3); zstd clamps a level outside its range
    /// (-131072..=22) rather than refusing it. Smaller files than LZ4 for slower writes and
    /// somewhat slower reads: meant for the last level.
    Zstd(i32),
}

impl Compression {
    /// The trailer type byte this compression writes when a block shrinks enough.
    pub fn block_type(self) -> u8 {
        match self {
            Compression::None => BLOCK_TYPE_UNCOMPRESSED,
            Compression::Lz4 => BLOCK_TYPE_LZ4,
            Compression::Zstd(_) => BLOCK_TYPE_ZSTD,
        }
    }
}

/// Compresses the data blocks of one table, reusing its buffers (and zstd context) from block
/// to block.
/// After this many blocks in a row that did not shrink by 1/8, a compressor only tries every
/// [`SAMPLE_EVERY`]-th block: incompressible data (random values, already compressed payloads)
/// then costs almost no compression CPU; a block that shrinks makes it try every block again.
const GIVE_UP_AFTER: u32 = 8;
const SAMPLE_EVERY: u32 = 16;

pub struct BlockCompressor {
    compression: Compression,
    /// Blocks in a row that were tried and did not shrink enough.
    failures: u32,
    /// Blocks stored raw untried since the last try.
    untried: u32,
    /// Created on the first zstd block; `None` also if zstd could not allocate its context
    /// (then blocks are stored raw).
    zstd: Option<zstd::bulk::Compressor<'static>>,
    /// The stored contents of the last compressed block.
    buf: Vec<u8>,
}

impl std::fmt::Debug for BlockCompressor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BlockCompressor")
            .field("compression", &self.compression)
            .finish()
    }
}

impl BlockCompressor {
    pub fn new(compression: Compression) -> Self {
        BlockCompressor {
            compression,
            failures: 0,
            untried: 0,
            zstd: None,
            buf: Vec::new(),
        }
    }

    /// The type byte and stored contents for a block whose built form is `raw`: compressed if
    /// that saves at least 1/8, otherwise `raw` itself with type 0. After
    /// [`GIVE_UP_AFTER`] failures in a row, most blocks are stored raw without trying.
    pub fn compress<'a>(&'a mut self, raw: &'a [u8]) -> (u8, &'a [u8]) {
        if self.compression == Compression::None {
            return (BLOCK_TYPE_UNCOMPRESSED, raw);
        }
        if self.failures >= GIVE_UP_AFTER && self.untried + 1 < SAMPLE_EVERY {
            self.untried += 1;
            return (BLOCK_TYPE_UNCOMPRESSED, raw);
        }
        self.untried = 0;
        let stored = if raw.len() > MAX_UNCOMPRESSED_BLOCK_LEN {
            None
        } else {
            match self.compression {
                Compression::None => None,
                Compression::Lz4 => self.lz4(raw),
                Compression::Zstd(level) => self.zstd(raw, level),
            }
        };
        match stored {
            // At least 1/8 smaller: stored * 8 <= raw * 7 (u64: no overflow for any block).
            Some(n) if (n as u64) * 8 <= (raw.len() as u64) * 7 => {
                self.failures = 0;
                (self.compression.block_type(), &self.buf[..n])
            }
            _ => {
                self.failures = self.failures.saturating_add(1);
                (BLOCK_TYPE_UNCOMPRESSED, raw)
            }
        }
    }

    /// Write `raw_len` and the LZ4 block into `buf`; the stored length.
    fn lz4(&mut self, raw: &[u8]) -> Option<usize> {
        self.buf.clear();
        put_varint(&mut self.buf, raw.len() as u64);
        let prefix = self.buf.len();
        self.buf.resize(
            prefix + lz4_flex::block::get_maximum_output_size(raw.len()),
            0,
        );
        let n = lz4_flex::block::compress_into(raw, &mut self.buf[prefix..]).ok()?;
        Some(prefix + n)
    }

    /// Write `raw_len` and the zstd frame into `buf`; the stored length, `None` if zstd failed
    /// (it only fails to allocate), and then the block is stored raw.
    fn zstd(&mut self, raw: &[u8], level: i32) -> Option<usize> {
        if self.zstd.is_none() {
            self.zstd = zstd::bulk::Compressor::new(level).ok();
        }
        let compressor = self.zstd.as_mut()?;
        self.buf.clear();
        put_varint(&mut self.buf, raw.len() as u64);
        let prefix = self.buf.len();
        self.buf
            .resize(prefix + zstd::zstd_safe::compress_bound(raw.len()), 0);
        let n = compressor
            .compress_to_buffer(raw, &mut self.buf[prefix..])
            .ok()?;
        Some(prefix + n)
    }
}

thread_local! {
    /// One zstd decompression context per thread, reused across blocks (creating one costs an
    /// allocation of about 100 KiB).
    static ZSTD_DCTX: RefCell<Option<zstd::bulk::Decompressor<'static>>> =
        const { RefCell::new(None) };
}

/// The block contents for a block of `block_type` whose stored contents (crc already checked)
/// are `stored`; `path` and `offset` name the block for errors. Takes `stored` by value so a
/// raw block is returned without a copy.
pub fn decompress_block(
    block_type: u8,
    stored: Vec<u8>,
    path: &Path,
    offset: u64,
) -> Result<Bytes> {
    decompress_block_with(block_type, stored, path, offset, None)
}

/// [`decompress_block`], with the result in a buffer of `pool` if there is one (and `stored`
/// given back to it when it is not the result).
pub fn decompress_block_with(
    block_type: u8,
    stored: Vec<u8>,
    path: &Path,
    offset: u64,
    pool: Option<&Arc<BufferPool>>,
) -> Result<Bytes> {
    if block_type == BLOCK_TYPE_UNCOMPRESSED {
        return Ok(match pool {
            Some(pool) => pool.share(stored),
            None => Bytes::from(stored),
        });
    }
    let result = decompress_into(block_type, &stored, path, offset, pool);
    if let Some(pool) = pool {
        pool.give_back(stored);
    }
    result
}

/// Decompress a compressed block's `stored` contents into a new buffer (from `pool` when
/// there is one and the length is in its classes).
fn decompress_into(
    block_type: u8,
    stored: &[u8],
    path: &Path,
    offset: u64,
    pool: Option<&Arc<BufferPool>>,
) -> Result<Bytes> {
    let bad = |reason: String| Error::corruption(path, offset, reason);
    let name = match block_type {
        BLOCK_TYPE_LZ4 => "lz4",
        BLOCK_TYPE_ZSTD => "zstd",
        other => return Err(bad(format!("unknown block type {other}"))),
    };
    let mut d = Decoder::new(stored);
    let raw_len = d.varint().ok_or_else(|| {
        bad(format!(
            "{name} block: truncated or malformed uncompressed length"
        ))
    })?;
    // Bounded before anything is allocated from it.
    let raw_len = usize::try_from(raw_len)
        .ok()
        .filter(|&n| n <= MAX_UNCOMPRESSED_BLOCK_LEN)
        .ok_or_else(|| {
            bad(format!(
                "{name} block claims {raw_len} uncompressed bytes, more than the limit of \
                 {MAX_UNCOMPRESSED_BLOCK_LEN}"
            ))
        })?;
    let payload = stored.get(d.position()..).unwrap_or_default();
    // A buffer of the right class now that the length is known (the one passed in is empty).
    // Lengths past the pool's classes (only a damaged or hostile block claims them) get a
    // fresh allocation: `vec![0; n]` asks for zeroed memory, which costs nothing until touched.
    let mut out = match pool {
        Some(pool) if raw_len <= MAX_POOLED_BYTES => pool.take(raw_len),
        _ => Vec::new(),
    };
    let decompressed = match block_type {
        BLOCK_TYPE_LZ4 => {
            if out.capacity() >= raw_len && raw_len <= MAX_POOLED_BYTES {
                out.resize(raw_len, 0);
            } else {
                out = vec![0u8; raw_len];
            }
            lz4_flex::block::decompress_into(payload, &mut out)
                .map_err(|e| bad(format!("lz4 block does not decompress: {e}")))
        }
        _ => zstd_decompress(payload, raw_len, &mut out)
            .map_err(|e| bad(format!("zstd block does not decompress: {e}"))),
    };
    let checked = decompressed.and_then(|n| {
        if n == raw_len {
            Ok(n)
        } else {
            Err(bad(format!(
                "{name} block decompresses to {n} bytes, its header says {raw_len}"
            )))
        }
    });
    match (checked, pool) {
        (Ok(n), pool) => {
            out.truncate(n);
            Ok(match pool {
                Some(pool) => pool.share(out),
                None => Bytes::from(out),
            })
        }
        (Err(e), Some(pool)) => {
            pool.give_back(out);
            Err(e)
        }
        (Err(e), None) => Err(e),
    }
}

/// Decompress one zstd payload into `out` (emptied, with room for `raw_len` bytes made): the
/// number of bytes written.
fn zstd_decompress(payload: &[u8], raw_len: usize, out: &mut Vec<u8>) -> std::io::Result<usize> {
    type Dctx = zstd::bulk::Decompressor<'static>;
    out.clear();
    out.reserve_exact(raw_len);
    // A `Vec` destination is filled up to its capacity (`raw_len`, or the pool class just
    // above it) and never reallocated; a payload that fills more than `raw_len` is refused by
    // the caller's length check.
    let run = |dctx: &mut Dctx, out: &mut Vec<u8>| dctx.decompress_to_buffer(payload, out);
    // The thread's context, if it can be had: not during thread teardown, not reentrantly, and
    // not if zstd cannot allocate one; otherwise a fresh context (no panics either way).
    let cached = ZSTD_DCTX.try_with(|cell| {
        let mut slot = cell.try_borrow_mut().ok()?;
        if slot.is_none() {
            *slot = Dctx::new().ok();
        }
        Some(run(slot.as_mut()?, out))
    });
    match cached {
        Ok(Some(result)) => result,
        _ => run(&mut Dctx::new()?, out),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn compressible(len: usize) -> Vec<u8> {
        (0..len).map(|i| b"abcdefgh"[(i / 7) % 8]).collect()
    }

    fn random(len: usize, seed: u64) -> Vec<u8> {
        let mut x = seed | 1;
        (0..len)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect()
    }

    /// Out-of-range zstd levels are clamped by zstd, not refused.
    const ALL: [Compression; 6] = [
        Compression::None,
        Compression::Lz4,
        Compression::Zstd(3),
        Compression::Zstd(-5),
        Compression::Zstd(i32::MAX),
        Compression::Zstd(i32::MIN),
    ];

    #[test]
    fn blocks_round_trip_and_shrink_only_when_worth_it() {
        let path = Path::new("t.sst");
        for c in ALL {
            let mut comp = BlockCompressor::new(c);
            for raw in [
                compressible(4096),
                random(4096, 7),
                vec![],
                vec![1],
                compressible(100_000),
            ] {
                let (ty, stored) = comp.compress(&raw);
                let stored = stored.to_vec();
                if c == Compression::None || raw.len() < 8 {
                    assert_eq!((ty, &stored), (BLOCK_TYPE_UNCOMPRESSED, &raw));
                }
                if ty != BLOCK_TYPE_UNCOMPRESSED {
                    assert_eq!(ty, c.block_type());
                    assert!(stored.len() * 8 <= raw.len() * 7);
                }
                let back = decompress_block(ty, stored, path, 0).unwrap();
                assert_eq!(back, raw, "{c:?}");
            }
            let text = compressible(4096);
            let random = random(4096, 9);
            assert_eq!(comp.compress(&random).0, BLOCK_TYPE_UNCOMPRESSED, "{c:?}");
            // The lowest zstd level (what i32::MIN is clamped to) hardly compresses at all.
            if c != Compression::None && c != Compression::Zstd(i32::MIN) {
                let (ty, stored) = comp.compress(&text);
                assert_eq!(ty, c.block_type(), "{c:?}");
                assert!(stored.len() < 1024, "{c:?}: {}", stored.len());
            }
        }
    }

    #[test]
    fn after_a_run_of_incompressible_blocks_only_samples_are_tried_until_one_shrinks() {
        let text = compressible(4096);
        for c in [Compression::Lz4, Compression::Zstd(3)] {
            let mut comp = BlockCompressor::new(c);
            for i in 0..GIVE_UP_AFTER {
                let _ = comp.compress(&random(4096, u64::from(i) + 1));
            }
            // Given up: compressible blocks are stored raw, except every SAMPLE_EVERY-th,
            // which is tried, shrinks, and makes every block tried again.
            let stored: Vec<u8> = (0..SAMPLE_EVERY).map(|_| comp.compress(&text).0).collect();
            let tried = stored.iter().filter(|&&t| t == c.block_type()).count();
            assert_eq!(tried, 1, "{c:?}: {stored:?}");
            assert_eq!(stored.last(), Some(&c.block_type()), "{c:?}");
            for _ in 0..4 {
                assert_eq!(comp.compress(&text).0, c.block_type(), "{c:?}");
            }
        }
    }

    #[test]
    fn a_huge_claimed_uncompressed_size_is_corruption_without_allocating_it() {
        let path = Path::new("t.sst");
        for ty in [BLOCK_TYPE_LZ4, BLOCK_TYPE_ZSTD] {
            for claimed in [(MAX_UNCOMPRESSED_BLOCK_LEN as u64) + 1, 1 << 40, u64::MAX] {
                let mut stored = Vec::new();
                put_varint(&mut stored, claimed);
                stored.extend_from_slice(&[0x10, b'a', 0, 0]);
                let err = decompress_block(ty, stored, path, 4096).unwrap_err();
                assert!(err.is_corruption(), "{err}");
                assert!(err.to_string().contains("more than the limit"), "{err}");
            }
            // A claim at the limit is allowed to allocate, and then must be met exactly.
            let mut comp = BlockCompressor::new(if ty == BLOCK_TYPE_LZ4 {
                Compression::Lz4
            } else {
                Compression::Zstd(1)
            });
            let raw = compressible(5000);
            let (got_ty, real) = comp.compress(&raw);
            assert_eq!(got_ty, ty);
            let mut d = Decoder::new(real);
            d.varint().unwrap();
            let payload = real[d.position()..].to_vec();
            for claimed in [MAX_UNCOMPRESSED_BLOCK_LEN as u64, 4999, 5001, 0] {
                let mut stored = Vec::new();
                put_varint(&mut stored, claimed);
                stored.extend_from_slice(&payload);
                let err = decompress_block(ty, stored, path, 0).unwrap_err();
                assert!(err.is_corruption(), "{err}");
            }
        }
    }

    #[test]
    fn malformed_headers_and_unknown_types_are_corruption() {
        let path = Path::new("t.sst");
        for ty in [BLOCK_TYPE_LZ4, BLOCK_TYPE_ZSTD] {
            for stored in [vec![], vec![0x80], vec![0xff; 11]] {
                assert!(decompress_block(ty, stored, path, 0)
                    .unwrap_err()
                    .is_corruption());
            }
        }
        for ty in 3..=255u8 {
            assert!(decompress_block(ty, vec![0, 1, 2], path, 0)
                .unwrap_err()
                .is_corruption());
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        /// Whatever bytes a block holds, decompressing is an answer of the claimed length or a
        /// `Corruption` error, never a panic.
        #[test]
        fn arbitrary_stored_bytes_never_panic(
            ty in 1u8..=2,
            raw_len in 0u64..20_000,
            payload in proptest::collection::vec(any::<u8>(), 0..300),
        ) {
            let mut stored = Vec::new();
            put_varint(&mut stored, raw_len);
            stored.extend_from_slice(&payload);
            match decompress_block(ty, stored, Path::new("t.sst"), 0) {
                Ok(out) => prop_assert_eq!(out.len() as u64, raw_len),
                Err(e) => prop_assert!(e.is_corruption()),
            }
        }

        /// Damage to a real compressed block: an error is `Corruption`, never a panic.
        #[test]
        fn damaged_compressed_blocks_never_panic(
            zstd in any::<bool>(),
            flips in proptest::collection::vec((any::<prop::sample::Index>(), 1u8..=255), 1..4),
        ) {
            let c = if zstd { Compression::Zstd(3) } else { Compression::Lz4 };
            let raw: Vec<u8> = compressible(3000).into_iter().chain(random(1000, 3)).collect();
            let mut comp = BlockCompressor::new(c);
            let (ty, stored) = comp.compress(&raw);
            prop_assert_eq!(ty, c.block_type());
            let mut stored = stored.to_vec();
            for (i, x) in flips {
                let i = i.index(stored.len());
                stored[i] ^= x;
            }
            match decompress_block(ty, stored, Path::new("t.sst"), 0) {
                Ok(out) => prop_assert_eq!(out.len(), raw.len()),
                Err(e) => prop_assert!(e.is_corruption()),
            }
        }
    }
}
