//! SSTables: immutable sorted files of internal keys and values.
//!
//! ```text
//! table            := data_block* filter_block? properties_block index_block footer
//! data_block       := block (see block.rs), keys are internal keys, restart_interval from options
//! filter_block     := bloom filter over the user keys of the whole table (see filter.rs)
//! properties_block := counts, sequence range and key range (see format.rs)
//! index_block      := block with restart_interval 1: for each data block, in order,
//!                     key = last internal key of the block, value = block_handle (16 bytes)
//! footer           := 64 bytes: index, filter and properties handles, version, magic, crc
//! ```
//!
//! Every block is followed by a 5-byte trailer (type byte, crc32 of contents and type), and a
//! [`format::BlockHandle`] `(offset, size)` names it with `size` excluding the trailer. The type
//! byte says how the stored contents are compressed (0 none, 1 lz4, 2 zstd; see [`compress`]):
//! data blocks are compressed when that saves at least 1/8, metadata blocks never. All
//! integers are little-endian; varints are LEB128 ([`crate::coding`]). A table without a filter
//! (`bloom_bits_per_key = 0`) has a filter handle of size 0.
//!
//! Module map: [`format`](mod@format) (handles, trailer, properties, footer), [`compress`] (`Compression`,
//! compressed block layout), [`block`] (`BlockBuilder`, `Block`, `BlockIter`), [`filter`]
//! (bloom filter), [`builder`] (`TableBuilder`), [`reader`] (`Table`, `TableIter`).
//!
//! Invariants: keys are strictly increasing in [`crate::key::compare_internal`] order across the
//! whole table; data blocks are contiguous from offset 0; nothing read from the file is trusted
//! before its checksum is verified and its lengths are checked against the bytes that hold them.
//!
//! Not done (deliberately, for now): compression dictionaries, per-block or partitioned
//! filters, shortened index separators, prefix bloom filters.

pub mod block;
pub mod builder;
pub mod compress;
pub mod filter;
pub mod format;
pub mod reader;

pub use builder::TableBuilder;
pub use compress::Compression;
pub use format::{BlockHandle, Footer, TableProperties};
pub use reader::{Table, TableIter};

/// The options that shape a table file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TableOptions {
    /// A data block is cut once its size reaches this many bytes.
    pub block_size: usize,
    /// Keys between restart points in a data block (0 is taken as 1).
    pub restart_interval: usize,
    /// Bloom filter bits per user key; 0 writes no filter.
    pub bloom_bits_per_key: usize,
    /// Compression of the data blocks (the reader needs no setting: each block's trailer says).
    pub compression: Compression,
}

impl Default for TableOptions {
    /// The options of a level-0 table under default engine options.
    fn default() -> Self {
        TableOptions::for_level(&crate::options::Options::default(), 0)
    }
}

impl TableOptions {
    /// The options for a table written to `level`: the last level
    /// ([`crate::manifest::NUM_LEVELS`]` - 1`, where about 90% of the data rests with dynamic
    /// level sizes) uses `bottommost_compression` if set, every other level `compression`.
    pub fn for_level(o: &crate::options::Options, level: usize) -> Self {
        let last = level + 1 >= crate::manifest::NUM_LEVELS;
        let compression = match o.bottommost_compression {
            Some(c) if last => c,
            _ => o.compression,
        };
        TableOptions {
            block_size: o.block_size,
            restart_interval: o.block_restart_interval,
            bloom_bits_per_key: o.bloom_bits_per_key,
            compression,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::cmp::Ordering;
    use std::collections::BTreeMap;
    use std::path::Path;
    use std::sync::Arc;

    use proptest::prelude::*;

    use super::*;
    use crate::buffer_pool::MAX_FREE_PER_CLASS;
    use crate::cache::BlockCache;
    use crate::error::Result;
    use crate::fs::{FileSystem, RealFs};
    use crate::iter::InternalIterator;
    use crate::key::{compare_internal, internal_key, parse_internal_key, ValueKind, KIND_SEEK};

    type Model = Vec<(Vec<u8>, Vec<u8>)>;

    /// Sort `(user_key, seq) -> (kind, value)` into table order.
    fn model_from(map: BTreeMap<(Vec<u8>, u64), (ValueKind, Vec<u8>)>) -> Model {
        let mut m: Model = map
            .into_iter()
            .map(|((uk, seq), (kind, v))| (internal_key(&uk, seq, kind as u8), v))
            .collect();
        m.sort_by(|a, b| compare_internal(&a.0, &b.0));
        m
    }

    /// 300 user keys with 1 to 3 versions each, some of them deletions.
    fn sample_model() -> Model {
        let mut map = BTreeMap::new();
        for i in 0..300u64 {
            let uk = format!("user{:04}", i * 3).into_bytes();
            for v in 0..=(i % 3) {
                let seq = 10 + i * 7 + v * 2;
                let kind = if (i + v) % 5 == 0 {
                    ValueKind::Deletion
                } else {
                    ValueKind::Value
                };
                let value = if kind == ValueKind::Deletion {
                    vec![]
                } else {
                    format!("value-{i}-{v}").into_bytes()
                };
                map.insert((uk.clone(), seq), (kind, value));
            }
        }
        model_from(map)
    }

    fn write_table(path: &Path, model: &Model, opts: TableOptions) -> TableProperties {
        let mut b = TableBuilder::new(RealFs.create(path).unwrap(), path.to_path_buf(), opts);
        for (k, v) in model {
            b.add(k, v).unwrap();
        }
        b.finish().unwrap()
    }

    fn open(path: &Path, cache: Arc<BlockCache>) -> Result<Arc<Table>> {
        Table::open(RealFs.open(path).unwrap(), path.to_path_buf(), 7, cache)
    }

    fn small_opts() -> TableOptions {
        TableOptions {
            block_size: 256,
            restart_interval: 4,
            bloom_bits_per_key: 10,
            compression: Compression::None,
        }
    }

    const COMPRESSIONS: [Compression; 4] = [
        Compression::None,
        Compression::Lz4,
        Compression::Zstd(3),
        Compression::Zstd(-3),
    ];

    /// The trailer type byte of every data block of the table at `path`, in order.
    fn data_block_types(path: &Path) -> Vec<u8> {
        let bytes = std::fs::read(path).unwrap();
        data_block_handles(path)
            .iter()
            .map(|h| bytes[(h.offset + h.size) as usize])
            .collect()
    }

    /// The handles of the data blocks of the table at `path`, in order.
    fn data_block_handles(path: &Path) -> Vec<BlockHandle> {
        use crate::sstable::block::Block;
        use crate::sstable::format::{read_block, FOOTER_LEN};
        let bytes = std::fs::read(path).unwrap();
        let footer_at = bytes.len() - FOOTER_LEN;
        let footer = Footer::decode(&bytes[footer_at..], path, footer_at as u64).unwrap();
        let file = RealFs.open(path).unwrap();
        let index = read_block(
            &*file,
            path,
            footer.index,
            footer_at as u64,
            footer.file_number,
        )
        .unwrap();
        let index = Arc::new(Block::new(index, Arc::from(path), footer.index.offset).unwrap());
        let mut it = index.iter();
        it.seek_to_first().unwrap();
        let mut handles = Vec::new();
        while it.valid() {
            handles.push(BlockHandle::decode(it.value_slice()).unwrap());
            it.next().unwrap();
        }
        handles
    }

    /// The model's answer to `get(user_key, seq)`.
    fn model_get(model: &Model, user_key: &[u8], seq: u64) -> Option<(ValueKind, Vec<u8>)> {
        model.iter().find_map(|(k, v)| {
            let p = parse_internal_key(k).unwrap();
            (p.user_key == user_key && p.seq <= seq).then(|| (p.kind, v.clone()))
        })
    }

    fn model_seek(model: &Model, target: &[u8]) -> Option<usize> {
        model
            .iter()
            .position(|(k, _)| compare_internal(k, target) != Ordering::Less)
    }

    fn model_seek_for_prev(model: &Model, target: &[u8]) -> Option<usize> {
        model
            .iter()
            .rposition(|(k, _)| compare_internal(k, target) != Ordering::Greater)
    }

    fn at(it: &TableIter, model: &Model, pos: Option<usize>) -> std::result::Result<(), String> {
        match pos {
            None if it.valid() => Err(format!("iterator at {:?}, model exhausted", it.key())),
            None => Ok(()),
            Some(i) if !it.valid() => Err(format!("iterator exhausted, model at {i}")),
            Some(i) if it.key() != model[i].0.as_slice() || it.value() != model[i].1 => Err(
                format!("iterator at {:?}, model at {i} {:?}", it.key(), model[i].0),
            ),
            Some(_) => Ok(()),
        }
    }

    /// Compare everything a table serves with the model.
    fn check_against_model(table: &Arc<Table>, model: &Model) {
        let mut it = table.iter();
        it.seek_to_first().unwrap();
        for i in 0..model.len() {
            at(&it, model, Some(i)).unwrap();
            it.next().unwrap();
        }
        at(&it, model, None).unwrap();
        it.seek_to_last().unwrap();
        for i in (0..model.len()).rev() {
            at(&it, model, Some(i)).unwrap();
            it.prev().unwrap();
        }
        at(&it, model, None).unwrap();
        for (i, (k, _)) in model.iter().enumerate() {
            it.seek(k).unwrap();
            at(&it, model, Some(i)).unwrap();
            it.seek_for_prev(k).unwrap();
            at(&it, model, Some(i)).unwrap();
            let p = parse_internal_key(k).unwrap();
            for seq in [p.seq.saturating_sub(1), p.seq, p.seq + 1, u64::MAX] {
                let got = table
                    .get(p.user_key, seq)
                    .unwrap()
                    .map(|(kind, _, v)| (kind, v.to_vec()));
                assert_eq!(
                    got,
                    model_get(model, p.user_key, seq),
                    "get({:?}, {seq})",
                    p.user_key
                );
            }
            // Targets between keys.
            let target = internal_key(p.user_key, p.seq, KIND_SEEK);
            it.seek(&target).unwrap();
            at(&it, model, model_seek(model, &target)).unwrap();
            let mut after = p.user_key.to_vec();
            after.push(0);
            let target = internal_key(&after, 0, 0);
            it.seek_for_prev(&target).unwrap();
            at(&it, model, model_seek_for_prev(model, &target)).unwrap();
        }
        table.verify().unwrap();
    }

    #[test]
    fn round_trip_with_versions_and_deletions() {
        let dir = tempfile::tempdir().unwrap();
        let model = sample_model();
        let shapes = [
            small_opts(),
            TableOptions::default(),
            TableOptions {
                bloom_bits_per_key: 0,
                ..small_opts()
            },
        ];
        let all = shapes.into_iter().flat_map(|shape| {
            COMPRESSIONS.map(|compression| TableOptions {
                compression,
                ..shape
            })
        });
        for opts in all {
            let path = dir.path().join("000007.sst");
            let built = write_table(&path, &model, opts);
            let cache = Arc::new(BlockCache::new(1 << 20));
            let table = open(&path, Arc::clone(&cache)).unwrap();
            assert_eq!(table.properties(), &built);
            assert_eq!(built.num_entries, model.len() as u64);
            assert_eq!(built.smallest_key, model[0].0);
            assert_eq!(built.largest_key, model[model.len() - 1].0);
            assert_eq!((table.file_number(), table.path()), (7, path.as_path()));
            check_against_model(&table, &model);
            // Absent keys, between and outside the stored ones.
            for absent in ["user0001", "a", "zzz", "user"] {
                assert_eq!(table.get(absent.as_bytes(), u64::MAX).unwrap(), None);
            }
            assert!(cache.stats().hits > 0);
        }
    }

    #[test]
    fn an_open_table_charges_its_index_and_filter_to_the_cache_until_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("000007.sst");
        write_table(&path, &sample_model(), small_opts());
        let cache = Arc::new(BlockCache::new(1 << 20));
        let table = open(&path, Arc::clone(&cache)).unwrap();
        let charged = cache.stats().table_metadata_bytes;
        // At least the filter: 10 bits per key in small_opts.
        let filter_bits = table.properties().num_entries * 10;
        assert!(charged >= filter_bits / 8, "charged {charged}");
        let again = open(&path, Arc::clone(&cache)).unwrap();
        assert_eq!(cache.stats().table_metadata_bytes, 2 * charged);
        drop((table, again));
        assert_eq!(cache.stats().table_metadata_bytes, 0);
    }

    #[test]
    fn empty_table_opens_and_iterates_as_empty() {
        let dir = tempfile::tempdir().unwrap();
        for opts in [
            small_opts(),
            TableOptions {
                bloom_bits_per_key: 0,
                ..small_opts()
            },
        ] {
            let path = dir.path().join("000001.sst");
            let props = write_table(&path, &Vec::new(), opts);
            assert_eq!((props.num_entries, props.data_blocks), (0, 0));
            let table = open(&path, Arc::new(BlockCache::new(0))).unwrap();
            check_against_model(&table, &Vec::new());
            assert_eq!(table.get(b"k", 5).unwrap(), None);
            let mut it = table.iter();
            it.seek(&internal_key(b"k", 1, 1)).unwrap();
            assert!(!it.valid());
            it.seek_for_prev(&internal_key(b"k", 1, 1)).unwrap();
            assert!(!it.valid());
        }
    }

    #[test]
    fn values_larger_than_a_block_get_their_own_block() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("000002.sst");
        let mut map = BTreeMap::new();
        for i in 0..20u8 {
            map.insert(
                (vec![b'k', i], 1),
                (ValueKind::Value, vec![i; 1000 * usize::from(i % 4)]),
            );
        }
        let model = model_from(map);
        write_table(&path, &model, small_opts());
        check_against_model(
            &open(&path, Arc::new(BlockCache::new(1 << 20))).unwrap(),
            &model,
        );
    }

    #[test]
    fn direction_switches_across_block_boundaries() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("000003.sst");
        let model = sample_model();
        let opts = TableOptions {
            block_size: 64,
            ..small_opts()
        };
        write_table(&path, &model, opts);
        let table = open(&path, Arc::new(BlockCache::new(1 << 20))).unwrap();
        let mut it = table.iter();
        it.seek_to_first().unwrap();
        let mut pos = 0usize;
        // Zig-zag: two steps forward, one back, all the way through.
        while pos + 2 < model.len() {
            it.next().unwrap();
            it.next().unwrap();
            it.prev().unwrap();
            pos += 1;
            at(&it, &model, Some(pos)).unwrap();
        }
        it.seek_to_first().unwrap();
        it.prev().unwrap();
        assert!(!it.valid());
    }

    /// Every byte of a small table flipped in turn, uncompressed and with each compression:
    /// opening or verifying must fail (every byte is under a checksum), and whatever is served
    /// before that must be right.
    #[test]
    fn a_flipped_byte_anywhere_is_an_error_never_a_wrong_answer() {
        let model: Model = sample_model()
            .into_iter()
            .take(40)
            .map(|(k, v)| {
                // Values that compress, so the compressed runs hold compressed blocks.
                let v = if v.is_empty() { v } else { v.repeat(4) };
                (k, v)
            })
            .collect();
        for compression in [Compression::None, Compression::Lz4, Compression::Zstd(3)] {
            flip_every_byte(&model, compression);
        }
    }

    fn flip_every_byte(model: &Model, compression: Compression) {
        let model = model.clone();
        let dir = tempfile::tempdir().unwrap();
        let good = dir.path().join("000004.sst");
        write_table(
            &good,
            &model,
            TableOptions {
                block_size: 128,
                compression,
                ..small_opts()
            },
        );
        let types = data_block_types(&good);
        assert!(
            types.iter().all(|&t| t == compression.block_type()),
            "{compression:?}: {types:?}"
        );
        let bytes = std::fs::read(&good).unwrap();
        let bad = dir.path().join("000005.sst");
        for offset in 0..bytes.len() {
            let mut damaged = bytes.clone();
            damaged[offset] ^= 0x21;
            std::fs::write(&bad, &damaged).unwrap();
            let table = match open(&bad, Arc::new(BlockCache::new(1 << 20))) {
                Ok(t) => t,
                Err(e) => {
                    assert!(e.is_corruption(), "{compression:?} offset {offset}: {e}");
                    continue;
                }
            };
            assert!(
                table.verify().unwrap_err().is_corruption(),
                "{compression:?}: offset {offset} went unnoticed"
            );
            for (k, _) in &model {
                let p = parse_internal_key(k).unwrap();
                if let Ok(got) = table.get(p.user_key, p.seq) {
                    let got = got.map(|(kind, _, v)| (kind, v.to_vec()));
                    assert_eq!(got, model_get(&model, p.user_key, p.seq), "offset {offset}");
                }
            }
            assert!(!matches!(table.get(b"absent", u64::MAX), Ok(Some(_))));
            let mut it = table.iter();
            let mut i = 0;
            let mut r = it.seek_to_first();
            while r.is_ok() && it.valid() {
                at(&it, &model, Some(i)).unwrap();
                i += 1;
                r = it.next();
            }
            if r.is_ok() {
                assert_eq!(i, model.len());
            }
            let mut i = model.len();
            let mut r = it.seek_to_last();
            while r.is_ok() && it.valid() {
                i -= 1;
                at(&it, &model, Some(i)).unwrap();
                r = it.prev();
            }
            assert!(r.is_err() || i == 0);
        }
    }

    #[test]
    fn a_damaged_data_block_surfaces_as_corruption_from_get_and_iter() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("000006.sst");
        let model = sample_model();
        write_table(&path, &model, small_opts());
        let mut bytes = std::fs::read(&path).unwrap();
        bytes[10] ^= 1; // inside the first data block
        std::fs::write(&path, &bytes).unwrap();
        let table = open(&path, Arc::new(BlockCache::new(1 << 20))).unwrap();
        let first = parse_internal_key(&model[0].0).unwrap();
        assert!(table
            .get(first.user_key, u64::MAX)
            .unwrap_err()
            .is_corruption());
        let mut it = table.iter();
        assert!(it.seek_to_first().unwrap_err().is_corruption());
        assert!(!it.valid());
        // The rest of the table is still readable.
        it.seek(&model[model.len() - 1].0).unwrap();
        assert!(it.valid());
    }

    #[test]
    fn every_truncation_is_corruption_on_open() {
        let dir = tempfile::tempdir().unwrap();
        let good = dir.path().join("000008.sst");
        let model: Model = sample_model().into_iter().take(30).collect();
        write_table(&good, &model, small_opts());
        let bytes = std::fs::read(&good).unwrap();
        let bad = dir.path().join("000009.sst");
        for len in 0..bytes.len() {
            std::fs::write(&bad, &bytes[..len]).unwrap();
            let err = open(&bad, Arc::new(BlockCache::new(0))).unwrap_err();
            assert!(err.is_corruption(), "length {len}: {err}");
        }
    }

    #[test]
    fn blocks_evicted_from_a_small_cache_recycle_their_buffers() {
        let dir = tempfile::tempdir().unwrap();
        let model = sample_model();
        for c in COMPRESSIONS {
            let path = dir.path().join(format!("{c:?}.sst"));
            write_table(
                &path,
                &model,
                TableOptions {
                    compression: c,
                    ..small_opts()
                },
            );
            // Room for a few 256-byte blocks: nearly every read evicts another block.
            let cache = Arc::new(BlockCache::new(2048));
            let table = open(&path, Arc::clone(&cache)).unwrap();
            check_against_model(&table, &model);
            check_against_model(&table, &model);
            let (reused, allocated) = cache.buffers().counts();
            assert!(
                reused > allocated,
                "{c:?}: {reused} reads took a recycled buffer, {allocated} a new one"
            );
            assert!(cache.buffers().free_buffers() <= MAX_FREE_PER_CLASS * 4);
        }
    }

    #[test]
    fn tables_and_caches_are_shareable_between_threads() {
        fn send_sync<T: Send + Sync>() {}
        fn send<T: Send>() {}
        send_sync::<Table>();
        send_sync::<BlockCache>();
        send::<TableIter>();
    }

    #[derive(Debug, Clone)]
    enum Op {
        First,
        Last,
        Next,
        Prev,
        Seek(Vec<u8>, u64, u8),
        SeekForPrev(Vec<u8>, u64, u8),
    }

    fn user_key() -> impl Strategy<Value = Vec<u8>> {
        proptest::collection::vec(0u8..4, 0..4)
    }

    fn op() -> impl Strategy<Value = Op> {
        let kind = prop_oneof![Just(0u8), Just(1u8), Just(KIND_SEEK)];
        prop_oneof![
            1 => Just(Op::First),
            1 => Just(Op::Last),
            4 => Just(Op::Next),
            4 => Just(Op::Prev),
            1 => (user_key(), 0u64..40, kind.clone()).prop_map(|(k, s, t)| Op::Seek(k, s, t)),
            1 => (user_key(), 0u64..40, kind).prop_map(|(k, s, t)| Op::SeekForPrev(k, s, t)),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(128))]

        #[test]
        fn table_behaves_like_a_sorted_vec(
            entries in proptest::collection::btree_map(
                (user_key(), 1u64..40),
                (any::<bool>(), proptest::collection::vec(any::<u8>(), 0..40)),
                0..200,
            ),
            block_size in 16usize..512,
            restart_interval in 1usize..8,
            bloom_bits_per_key in 0usize..12,
            compression in prop_oneof![
                Just(Compression::None),
                Just(Compression::Lz4),
                Just(Compression::Zstd(1)),
            ],
            ops in proptest::collection::vec(op(), 0..100),
        ) {
            let map = entries
                .into_iter()
                .map(|(k, (del, v))| (k, if del { (ValueKind::Deletion, vec![]) } else { (ValueKind::Value, v) }))
                .collect();
            let model = model_from(map);
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("000010.sst");
            write_table(&path, &model, TableOptions { block_size, restart_interval, bloom_bits_per_key, compression });
            let table = open(&path, Arc::new(BlockCache::new(4096))).unwrap();
            check_against_model(&table, &model);

            let mut it = table.iter();
            let mut pos: Option<usize> = None;
            for op in ops {
                match op {
                    Op::First => { it.seek_to_first().unwrap(); pos = (!model.is_empty()).then_some(0); }
                    Op::Last => { it.seek_to_last().unwrap(); pos = model.len().checked_sub(1); }
                    Op::Next => {
                        it.next().unwrap();
                        pos = pos.and_then(|p| (p + 1 < model.len()).then_some(p + 1));
                    }
                    Op::Prev => { it.prev().unwrap(); pos = pos.and_then(|p| p.checked_sub(1)); }
                    Op::Seek(k, s, t) => {
                        let target = internal_key(&k, s, t);
                        it.seek(&target).unwrap();
                        pos = model_seek(&model, &target);
                    }
                    Op::SeekForPrev(k, s, t) => {
                        let target = internal_key(&k, s, t);
                        it.seek_for_prev(&target).unwrap();
                        pos = model_seek_for_prev(&model, &target);
                    }
                }
                if let Err(e) = at(&it, &model, pos) {
                    prop_assert!(false, "{}", e);
                }
            }
        }
    }

    #[test]
    fn options_map_from_engine_options() {
        let mut o = crate::options::Options::default()
            .with_block_size(8192)
            .with_bloom_bits_per_key(0);
        o.block_restart_interval = 7;
        let t = TableOptions::for_level(&o, 0);
        assert_eq!(
            (t.block_size, t.restart_interval, t.bloom_bits_per_key),
            (8192, 7, 0)
        );
    }

    #[test]
    fn compression_is_chosen_per_level() {
        let last = crate::manifest::NUM_LEVELS - 1;
        let o = crate::options::Options::default();
        assert_eq!(TableOptions::default().compression, Compression::Lz4);
        for level in 0..=last {
            assert_eq!(
                TableOptions::for_level(&o, level).compression,
                Compression::Lz4
            );
        }
        let o = o
            .with_compression(Compression::None)
            .with_bottommost_compression(Some(Compression::Zstd(3)));
        for level in 0..last {
            assert_eq!(
                TableOptions::for_level(&o, level).compression,
                Compression::None
            );
        }
        assert_eq!(
            TableOptions::for_level(&o, last).compression,
            Compression::Zstd(3)
        );
    }

    /// `n` entries of distinct 16-byte user keys whose values are made by `value(i)`.
    fn model_of(n: usize, value: impl Fn(usize) -> Vec<u8>) -> Model {
        (0..n)
            .map(|i| {
                let uk = format!("key{:013}", i * 7);
                (internal_key(uk.as_bytes(), 1, 1), value(i))
            })
            .collect()
    }

    /// A deterministic pseudo-random byte stream (xorshift).
    fn random_bytes(len: usize, seed: u64) -> Vec<u8> {
        let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
        (0..len)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                (x >> 24) as u8
            })
            .collect()
    }

    /// Where `sizes_with_each_compression` writes the table of `COMPRESSIONS[i]`: the same
    /// name (so the same file number, which the table holds) in a directory per compression.
    fn compression_path(dir: &Path, i: usize) -> std::path::PathBuf {
        let sub = dir.join(format!("c{i}"));
        std::fs::create_dir_all(&sub).unwrap();
        sub.join("000100.sst")
    }

    /// Write `model` with every compression; the file sizes, in `COMPRESSIONS` order, after
    /// checking each table against the model.
    fn sizes_with_each_compression(dir: &Path, model: &Model) -> Vec<u64> {
        COMPRESSIONS
            .iter()
            .enumerate()
            .map(|(i, &compression)| {
                let path = compression_path(dir, i);
                let opts = TableOptions {
                    compression,
                    ..TableOptions::default()
                };
                let props = write_table(&path, model, opts);
                let table = open(&path, Arc::new(BlockCache::new(1 << 20))).unwrap();
                // A linear check (`check_against_model` is quadratic): a full scan, then `get`
                // of every 97th key.
                table.verify().unwrap();
                let mut it = table.iter();
                it.seek_to_first().unwrap();
                for (k, v) in model {
                    assert_eq!((it.key(), &it.value()[..]), (&k[..], &v[..]));
                    it.next().unwrap();
                }
                assert!(!it.valid());
                for (k, v) in model.iter().step_by(97) {
                    let p = parse_internal_key(k).unwrap();
                    let got = table.get(p.user_key, u64::MAX).unwrap().unwrap();
                    assert_eq!(&got.2[..], &v[..]);
                }
                props.file_size
            })
            .collect()
    }

    #[test]
    fn incompressible_blocks_are_stored_raw() {
        let dir = tempfile::tempdir().unwrap();
        let model = model_of(500, |i| random_bytes(100, i as u64));
        let sizes = sizes_with_each_compression(dir.path(), &model);
        // Every compression falls back to raw blocks: the files are the uncompressed file.
        let raw = std::fs::read(compression_path(dir.path(), 0)).unwrap();
        for (i, c) in COMPRESSIONS.iter().enumerate().skip(1) {
            let path = compression_path(dir.path(), i);
            assert!(data_block_types(&path).iter().all(|&t| t == 0));
            assert_eq!(std::fs::read(&path).unwrap(), raw, "{c:?}");
        }
        assert!(sizes.iter().all(|&s| s == sizes[0]), "{sizes:?}");
    }

    #[test]
    fn compressible_blocks_make_a_smaller_file() {
        let dir = tempfile::tempdir().unwrap();
        let model = model_of(2000, |i| vec![b'a' + (i % 26) as u8; 100]);
        let sizes = sizes_with_each_compression(dir.path(), &model);
        for (i, c) in COMPRESSIONS.iter().enumerate().skip(1) {
            let path = compression_path(dir.path(), i);
            assert!(data_block_types(&path).iter().all(|&t| t == c.block_type()));
            assert!(sizes[i] * 4 < sizes[0], "{c:?}: {sizes:?}");
        }
    }

    /// A table's compression is read from its blocks: the reader takes no compression option,
    /// and tables written with different compressions are served side by side by one cache.
    #[test]
    fn the_block_type_byte_decides_how_a_block_is_read() {
        let dir = tempfile::tempdir().unwrap();
        let model = model_of(1000, |i| {
            let mut v = random_bytes(50, i as u64);
            v.extend_from_slice(&[b'x'; 50]);
            v
        });
        let cache = Arc::new(BlockCache::new(1 << 20));
        let mut tables = Vec::new();
        for (i, &compression) in COMPRESSIONS.iter().enumerate() {
            let path = dir.path().join(format!("{:06}.sst", 200 + i));
            let opts = TableOptions {
                compression,
                ..TableOptions::default()
            };
            write_table(&path, &model, opts);
            assert!(data_block_types(&path)
                .iter()
                .all(|&t| t == compression.block_type()));
            let file = RealFs.open(&path).unwrap();
            let number = 200 + i as u64;
            tables.push(Table::open(file, path, number, Arc::clone(&cache)).unwrap());
        }
        for table in &tables {
            check_against_model(table, &model);
        }
        // The cache holds decompressed blocks, charged at their decompressed size.
        let stats = cache.stats();
        assert!(stats.hits > 0);
        assert!(stats.usage_bytes as usize >= 4096, "{stats:?}");
    }

    /// Damage inside a compressed data block with its crc recomputed, so the decompressor (not
    /// the checksum) meets it: an error is always `Corruption`, never a panic, and a damaged
    /// length header is always caught.
    #[test]
    fn damaged_compressed_blocks_behind_a_valid_crc_are_corruption() {
        use crate::sstable::format::{block_crc, BLOCK_TRAILER_LEN};
        let dir = tempfile::tempdir().unwrap();
        let model: Model = sample_model()
            .into_iter()
            .map(|(k, v)| {
                let v = v.repeat(5);
                (k, v)
            })
            .collect();
        for compression in [Compression::Lz4, Compression::Zstd(3)] {
            let good = dir.path().join("000011.sst");
            write_table(
                &good,
                &model,
                TableOptions {
                    compression,
                    ..small_opts()
                },
            );
            let bytes = std::fs::read(&good).unwrap();
            // The first data block: offset 0, its size from the index.
            let first = data_block_handles(&good)[0];
            let size = first.size as usize;
            assert_eq!(bytes[size], compression.block_type());
            let bad = dir.path().join("000012.sst");
            let mut errors = 0;
            for pos in 0..size {
                for x in [0x01u8, 0x80, 0xff] {
                    let mut damaged = bytes.clone();
                    damaged[pos] ^= x;
                    // Bound to the table's number (11, in its footer) and the offset (0).
                    let crc = block_crc(&damaged[..size], compression.block_type(), 11, 0);
                    damaged[size + 1..size + BLOCK_TRAILER_LEN].copy_from_slice(&crc.to_le_bytes());
                    std::fs::write(&bad, &damaged).unwrap();
                    let table = open(&bad, Arc::new(BlockCache::new(0))).unwrap();
                    match table.verify() {
                        Ok(()) => assert!(pos > 0, "{compression:?}: length header damage unseen"),
                        Err(e) => {
                            assert!(e.is_corruption(), "{compression:?} {pos}: {e}");
                            errors += 1;
                        }
                    }
                    let mut it = table.iter();
                    if let Err(e) = it.seek_to_first() {
                        assert!(e.is_corruption());
                    }
                }
            }
            assert!(
                errors > size,
                "{compression:?}: {errors} errors for {size} bytes"
            );
        }
    }

    /// A compressed block whose header claims a huge uncompressed size, behind a valid crc:
    /// `Corruption` from open-time reads, `get`, iteration and `verify`, without allocating it.
    #[test]
    fn a_block_claiming_a_huge_uncompressed_size_is_corruption() {
        use crate::coding::put_varint;
        use crate::sstable::format::{block_trailer, BLOCK_TYPE_LZ4, MAX_UNCOMPRESSED_BLOCK_LEN};
        let dir = tempfile::tempdir().unwrap();
        let model = sample_model();
        let good = dir.path().join("000013.sst");
        write_table(
            &good,
            &model,
            TableOptions {
                compression: Compression::Lz4,
                ..small_opts()
            },
        );
        let bytes = std::fs::read(&good).unwrap();
        let first = data_block_handles(&good)[0];
        let size = first.size as usize;
        for claimed in [(MAX_UNCOMPRESSED_BLOCK_LEN as u64) + 1, 1 << 42, u64::MAX] {
            // Same stored size, so the rest of the file stays where the index says: a claimed
            // length, then filler up to the block's size.
            let mut contents = Vec::new();
            put_varint(&mut contents, claimed);
            contents.resize(size, 0);
            let mut damaged = bytes.clone();
            damaged[..size].copy_from_slice(&contents);
            // Bound to the table's number (13, in its footer) and the offset (0).
            let trailer = block_trailer(&contents, BLOCK_TYPE_LZ4, 13, 0);
            damaged[size..size + 5].copy_from_slice(&trailer);
            let bad = dir.path().join("000014.sst");
            std::fs::write(&bad, &damaged).unwrap();
            let table = open(&bad, Arc::new(BlockCache::new(1 << 20))).unwrap();
            let err = table.verify().unwrap_err();
            assert!(err.is_corruption(), "{err}");
            assert!(err.to_string().contains("more than the limit"), "{err}");
            let p = parse_internal_key(&model[0].0).unwrap();
            assert!(table.get(p.user_key, u64::MAX).unwrap_err().is_corruption());
            assert!(table.iter().seek_to_first().unwrap_err().is_corruption());
        }
    }

    /// The measurement quoted in the report: 100,000 entries of 16-byte user keys and 100-byte
    /// values, each value 50 random bytes then 50 copies of one byte. Prints the file sizes.
    #[test]
    fn file_size_with_half_random_values() {
        let dir = tempfile::tempdir().unwrap();
        let model = model_of(100_000, |i| {
            let mut v = random_bytes(50, i as u64);
            v.extend_from_slice(&[b'a' + (i % 26) as u8; 50]);
            v
        });
        let sizes = sizes_with_each_compression(dir.path(), &model);
        for (c, s) in COMPRESSIONS.iter().zip(&sizes) {
            println!(
                "{c:?}: {s} bytes ({:.1}% of uncompressed)",
                100.0 * *s as f64 / sizes[0] as f64
            );
        }
        for s in &sizes[1..] {
            assert!(s * 10 < sizes[0] * 8, "{sizes:?}");
        }
    }
}
