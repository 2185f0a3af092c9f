//! The corruption sweep of issue 4: a small database image on [`SimFs`] with an exact model of
//! its contents, every kind of damage to every file of it, and the check of a damaged reopen.
//!
//! The image ([`build_image`]) has tables on several levels (level-0 flushes, compaction
//! outputs on the last level and, depending on the seed, on the level above it), range
//! tombstones in the manifest and in the WAL, a manifest with a snapshot and several edits
//! (flushes, compactions, a table rewritten for a range tombstone, tombstones retired), and one
//! WAL segment whose first records were synced and whose last ones were not. It is the state after a process crash (`KeepAll`) with nothing open, so
//! the expected contents are exact: every acknowledged write.
//!
//! A [`Case`] names a file and a [`Damage`]. [`run_case`] forks the image, damages the file
//! (`SimFs::modify`), reopens with `create_if_missing(false)`, reads every key with `get`,
//! scans forward and backward, and runs `verify()`. Each read must either fail with a typed
//! `Corruption` error naming a file of the database, or return exactly what the model holds.
//! After a damaged-but-served open, a second clean reopen must find the same state.
//!
//! The WAL is the one file where damage may legitimately lose data: its tail may be torn by a
//! crash. The engine accepts a damaged or incomplete record only where nothing after it proves
//! the bytes were fsynced (a valid later record that a sync mark vouches for). So for the WAL
//! the accepted states are the prefixes of its records (on top of the tables) that keep every
//! record wholly before the damage and every synced record, and damage to synced records that a
//! later sync mark vouches for must be reported (unless harmless); a Corruption error is always
//! accepted. One class is undetectable by design (DESIGN.md, "What damage cannot be
//! detected"): damage that reaches the end of the file, or destroys every sync mark after it,
//! leaves exactly what a torn write leaves, so the lost records cannot be told from unsynced
//! ones. For that class the recovered state must still be a prefix keeping every record before
//! the damage (no hole, no wrong value); the sweep counts how often synced records were lost.

use std::collections::{BTreeMap, BTreeSet};
use std::ops::{Range, RangeInclusive};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use strata::filenames::{parse_file_name, FileKind};
use strata::fs::{CrashMode, FileSystem, SimFs};
use strata::iter::InternalIterator;
use strata::sstable::block::Block;
use strata::sstable::format::{BlockHandle, Footer, BLOCK_TRAILER_LEN, FOOTER_LEN};
use strata::{Compression, Db, Error, Options, WriteBatch, WriteOptions};

use super::contract::{apply, created_db, sim_options, Key, Op, State, DIR};

/// The options of the image: the sweeps' options (no background threads, 512-byte blocks)
/// with memtables large enough that only the builder's explicit flushes cut them (the image
/// does not depend on how the memtable counts its bytes), small files and level targets, so
/// a few hundred writes make tables on two or three levels, and zstd on the last level so
/// both codecs (and raw blocks) appear.
pub fn image_options(fs: &SimFs) -> Options {
    let mut o = sim_options(fs).with_write_buffer_size(64 << 20);
    o.target_file_size = 2048;
    o.max_bytes_for_level_base = 4096;
    o.max_bytes_for_level_multiplier = 3;
    o.level0_compaction_trigger = 6;
    o.bottommost_compression = Some(Compression::Zstd(1));
    o
}

/// A part of a table file.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Region {
    Data,
    Filter,
    Properties,
    Index,
    Footer,
}

impl Region {
    pub fn label(self) -> &'static str {
        match self {
            Region::Data => "SSTable data block",
            Region::Filter => "SSTable filter block",
            Region::Properties => "SSTable properties block",
            Region::Index => "SSTable index block",
            Region::Footer => "SSTable footer",
        }
    }
}

/// One record of a log file (WAL or manifest).
#[derive(Clone, Debug)]
pub struct LogRecord {
    pub range: Range<usize>,
    /// A mark rather than data: a sync mark (record type 2) or an earlier-segments-synced
    /// mark (type 3).
    pub mark: bool,
    /// A sync mark, vouching for the bytes of its own file before the offset it names.
    pub sync_mark: bool,
}

/// The parsed WAL segment of the image.
#[derive(Clone, Debug)]
pub struct WalLayout {
    pub name: String,
    pub records: Vec<LogRecord>,
    /// Data records (batches) whose write was synced: the first `synced` of them.
    pub synced: usize,
    /// The end of the last synced data record.
    pub synced_end: usize,
}

/// The database image every case damages, and what it must read as.
pub struct Image {
    /// The image: a crash (`KeepAll`) of the database with nothing open.
    pub fs: SimFs,
    /// `prefixes[k]`: the state with the tables and the first `k` WAL records. The full,
    /// exact state is the last.
    pub prefixes: Vec<State>,
    /// Every key ever written, and a few never written.
    pub keys: Vec<Key>,
    /// The files of the image by name (LOCK left out).
    pub files: BTreeMap<String, Arc<Vec<u8>>>,
    pub wal: WalLayout,
    pub manifest: String,
    pub manifest_records: Vec<LogRecord>,
    /// For every table: its blocks (with trailers) and footer, in file order.
    pub tables: BTreeMap<String, Vec<(Region, Range<usize>)>>,
    /// Every distinct content each file name had while the image was built (the current
    /// content excluded): older versions, and files since deleted.
    pub history: BTreeMap<String, Vec<Arc<Vec<u8>>>>,
    /// Tables per level, for the report.
    pub shape: Vec<usize>,
}

impl Image {
    /// The exact expected state.
    pub fn model(&self) -> &State {
        self.prefixes.last().unwrap_or_else(|| unreachable!())
    }
}

/// Writes a deterministic workload and remembers every file version on the way.
struct Builder {
    fs: SimFs,
    db: Option<Db>,
    model: State,
    rng: StdRng,
    step: usize,
    keys: BTreeSet<Key>,
    snapshots: Vec<SimFs>,
}

impl Builder {
    fn db(&self) -> &Db {
        self.db.as_ref().unwrap()
    }

    fn write(&mut self, ops: Vec<Op>, sync: bool) {
        let mut batch = WriteBatch::new();
        for op in &ops {
            op.add_to(&mut batch);
            if let Op::Put(k, _) | Op::Delete(k) = op {
                self.keys.insert(k.clone());
            }
        }
        let opts = if sync {
            WriteOptions::sync()
        } else {
            WriteOptions::no_sync()
        };
        self.db().write_opt(batch, opts).unwrap();
        apply(&mut self.model, &ops);
        self.step += 1;
        self.snapshots.push(self.fs.fork());
    }

    fn key(&mut self, keys: Range<u32>) -> Key {
        format!("k{:03}", self.rng.random_range(keys)).into_bytes()
    }

    /// A value naming its step; a third are random bytes (incompressible, stored raw), the
    /// rest repetitive (compressed).
    fn value(&mut self, key: &[u8]) -> Vec<u8> {
        let mut v = format!("{}:{}:", self.step, String::from_utf8_lossy(key)).into_bytes();
        let pad = self.rng.random_range(0..160);
        if self.rng.random_bool(0.25) {
            // Fixed-size random values: raw blocks of equal sizes, which a block copied to
            // another block's offset must not pass for.
            v.extend((0..40).map(|_| self.rng.random_range(b'0'..=b'z')));
        } else if self.rng.random_bool(0.33) {
            v.extend((0..pad).map(|_| self.rng.random_range(b'0'..=b'z')));
        } else {
            v.resize(v.len() + pad, b'.');
        }
        v
    }

    /// A random write over `keys`: puts, deletes, batches and now and then a range delete.
    fn random_write(&mut self, keys: Range<u32>, sync: bool) {
        let ops = match self.rng.random_range(0..100) {
            0..65 => {
                let k = self.key(keys.clone());
                let v = self.value(&k);
                vec![Op::Put(k, v)]
            }
            65..75 => vec![Op::Delete(self.key(keys.clone()))],
            75..95 => {
                let n = self.rng.random_range(2..6);
                (0..n)
                    .map(|_| {
                        let k = self.key(keys.clone());
                        if self.rng.random_bool(0.2) {
                            Op::Delete(k)
                        } else {
                            let v = self.value(&k);
                            Op::Put(k, v)
                        }
                    })
                    .collect()
            }
            _ => vec![self.range_delete(keys.clone())],
        };
        self.write(ops, sync);
    }

    fn range_delete(&mut self, keys: Range<u32>) -> Op {
        let start = self.rng.random_range(keys);
        let end = start + self.rng.random_range(2..6);
        Op::DeleteRange(
            format!("k{start:03}").into_bytes(),
            format!("k{end:03}").into_bytes(),
        )
    }

    /// `n` random writes over `keys`, all synced, with a flush after every 20th.
    fn random_writes(&mut self, n: usize, keys: Range<u32>) {
        for i in 1..=n {
            self.random_write(keys.clone(), true);
            if i % 20 == 0 {
                self.flush();
            }
        }
    }

    fn flush(&mut self) {
        self.db().flush().unwrap();
        self.snapshots.push(self.fs.fork());
    }

    fn reopen(&mut self) {
        self.db.take().unwrap().close().unwrap();
        self.db = Some(Db::open_with(DIR, image_options(&self.fs)).unwrap());
        self.snapshots.push(self.fs.fork());
    }
}

/// Writes in the WAL of the image, and how many of them (the first) were synced.
const WAL_WRITES: usize = 12;
const WAL_SYNCED: usize = 8;

/// Build the image from `seed` (see the module docs).
pub fn build_image(seed: u64) -> Image {
    let fs = created_db(seed);
    let mut b = Builder {
        db: Some(Db::open_with(DIR, image_options(&fs)).unwrap()),
        fs,
        model: State::new(),
        rng: StdRng::seed_from_u64(seed),
        step: 0,
        keys: BTreeSet::new(),
        snapshots: Vec::new(),
    };
    // Session 1: enough writes for many flushes and compactions, a full compaction (the last
    // level, several files), then overwrites that level 0 compacts into the level above it,
    // and a range tombstone flushed into the manifest.
    b.random_writes(400, 0..300);
    b.db().compact().unwrap();
    b.snapshots.push(b.fs.fork());
    b.random_writes(120, 100..300);
    let rd = b.range_delete(150..160);
    b.write(vec![rd], true);
    b.flush();
    // Session 2 (a new manifest and CURRENT): level-0 flushes; the first ones' range
    // tombstones settle (a table rewritten, a compaction, tombstones retired), the last one's
    // stay live in the manifest under a snapshot.
    b.reopen();
    b.random_writes(40, 200..300);
    let snapshot = b.db().snapshot();
    b.random_writes(15, 0..300);
    let rd = b.range_delete(0..300);
    b.write(vec![rd], true);
    b.flush();
    // The WAL: synced writes, then writes without sync (a sync mark vouches for the former),
    // range deletes among them.
    let base = b.model.clone();
    for i in 0..WAL_WRITES {
        let sync = i < WAL_SYNCED;
        if i == 3 || i == 9 {
            let rd = b.range_delete(0..300);
            b.write(vec![rd], sync);
        } else {
            b.random_write(0..300, sync);
        }
    }
    let image = b.fs.fork();
    image.crash(CrashMode::KeepAll);
    // The WAL segment ends in the zeros of its preallocated MiB: keep 64 of them (damage
    // there is damage to the tail), so the byte-by-byte sweeps stay small.
    for name in image.names(Path::new(DIR)) {
        if matches!(parse_file_name(&name), Some(FileKind::Wal(_))) {
            let path = Path::new(DIR).join(&name);
            let end = super::log_records_end(&image.contents(&path).unwrap()) + 64;
            image.modify(&path, |c| c.truncate(end)).unwrap();
        }
    }
    let shape = b.db().stats().tables_per_level;
    drop(snapshot);
    drop(b.db.take());

    let dir = Path::new(DIR);
    let mut files = BTreeMap::new();
    for name in image.names(dir) {
        if name == "LOCK" {
            continue;
        }
        let bytes = image.contents(&dir.join(&name)).unwrap();
        files.insert(name, Arc::new(bytes));
    }
    let mut history: BTreeMap<String, Vec<Arc<Vec<u8>>>> = BTreeMap::new();
    for snap in &b.snapshots {
        for name in snap.names(dir) {
            if name == "LOCK" || matches!(parse_file_name(&name), Some(FileKind::Temp) | None) {
                continue;
            }
            let bytes = snap.contents(&dir.join(&name)).unwrap();
            let seen = history.entry(name.clone()).or_default();
            let current = files.get(&name).map(|c| c.as_slice());
            if current != Some(bytes.as_slice()) && !seen.iter().any(|s| **s == bytes) {
                seen.push(Arc::new(bytes));
            }
        }
    }

    let wal_names: Vec<&String> = files
        .keys()
        .filter(|n| matches!(parse_file_name(n), Some(FileKind::Wal(_))))
        .collect();
    assert_eq!(wal_names.len(), 1, "one WAL segment: {wal_names:?}");
    let wal_name = wal_names[0].clone();
    let records = parse_log(&files[&wal_name]);
    let data: Vec<&LogRecord> = records.iter().filter(|r| !r.mark).collect();
    assert_eq!(data.len(), WAL_WRITES, "one WAL record per write");
    let synced = WAL_SYNCED;
    let synced_end = data[synced - 1].range.end;
    let wal = WalLayout {
        name: wal_name,
        records: records.clone(),
        synced,
        synced_end,
    };

    // The prefix states: decode each WAL record's batch to know its ops.
    let mut prefixes = vec![base];
    for r in &data {
        let payload = &files[&wal.name][r.range.start + 9..r.range.end];
        let ops = decode_batch(payload);
        let mut s = prefixes.last().unwrap().clone();
        apply(&mut s, &ops);
        prefixes.push(s);
    }
    assert_eq!(
        prefixes.last().unwrap(),
        &b.model,
        "the WAL replays to the model"
    );

    let manifest = files
        .keys()
        .find(|n| matches!(parse_file_name(n), Some(FileKind::Manifest(_))))
        .unwrap()
        .clone();
    let manifest_records = parse_log(&files[&manifest]);
    let tables = files
        .iter()
        .filter(|(n, _)| matches!(parse_file_name(n), Some(FileKind::Table(_))))
        .map(|(n, bytes)| (n.clone(), table_regions(n, bytes)))
        .collect();

    let mut keys: Vec<Key> = b.keys.into_iter().collect();
    keys.extend([
        b"a".to_vec(),
        b"k".to_vec(),
        b"k0995".to_vec(),
        b"zzz".to_vec(),
    ]);
    Image {
        fs: image,
        prefixes,
        keys,
        files,
        wal,
        manifest,
        manifest_records,
        tables,
        history,
        shape,
    }
}

/// The records of a log file: `crc: fixed32 | length: fixed32 | type: u8 | payload`.
pub fn parse_log(bytes: &[u8]) -> Vec<LogRecord> {
    let mut out = Vec::new();
    let mut pos = 0;
    let end_of_records = super::log_records_end(bytes);
    while pos < end_of_records {
        let len = u32::from_le_bytes(bytes[pos + 4..pos + 8].try_into().unwrap()) as usize;
        let end = pos + 9 + len;
        assert!(end <= bytes.len(), "an undamaged log parses");
        out.push(LogRecord {
            range: pos..end,
            mark: bytes[pos + 8] != 1,
            sync_mark: bytes[pos + 8] == 2,
        });
        pos = end;
    }
    assert_eq!(pos, end_of_records, "an undamaged log parses");
    out
}

/// The ops of a WAL batch payload (DESIGN.md, "Write batch").
fn decode_batch(p: &[u8]) -> Vec<Op> {
    fn varint(p: &[u8], pos: &mut usize) -> usize {
        let mut v = 0usize;
        let mut shift = 0;
        loop {
            let b = p[*pos];
            *pos += 1;
            v |= usize::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return v;
            }
            shift += 7;
        }
    }
    fn bytes(p: &[u8], pos: &mut usize) -> Vec<u8> {
        let n = varint(p, pos);
        let out = p[*pos..*pos + n].to_vec();
        *pos += n;
        out
    }
    let count = u32::from_le_bytes(p[8..12].try_into().unwrap());
    let mut pos = 12;
    let ops = (0..count)
        .map(|_| {
            let kind = p[pos];
            pos += 1;
            let key = bytes(p, &mut pos);
            match kind {
                0 => Op::Delete(key),
                1 => Op::Put(key, bytes(p, &mut pos)),
                2 => Op::DeleteRange(key, bytes(p, &mut pos)),
                _ => panic!("unknown op kind {kind}"),
            }
        })
        .collect();
    assert_eq!(pos, p.len());
    ops
}

/// The blocks (with their trailers) and the footer of an undamaged table, in file order.
pub fn table_regions(name: &str, bytes: &[u8]) -> Vec<(Region, Range<usize>)> {
    let path = Path::new(DIR).join(name);
    let footer_at = bytes.len() - FOOTER_LEN;
    let footer = Footer::decode(&bytes[footer_at..], &path, footer_at as u64).unwrap();
    let block =
        |h: BlockHandle| h.offset as usize..(h.offset + h.size) as usize + BLOCK_TRAILER_LEN;
    let mut out = Vec::new();
    let index = Arc::new(
        Block::new(
            Bytes::copy_from_slice(
                &bytes[footer.index.offset as usize
                    ..(footer.index.offset + footer.index.size) as usize],
            ),
            Arc::from(path.as_path()),
            footer.index.offset,
        )
        .unwrap(),
    );
    let mut it = index.iter();
    it.seek_to_first().unwrap();
    while it.valid() {
        out.push((
            Region::Data,
            block(BlockHandle::decode(it.value_slice()).unwrap()),
        ));
        it.next().unwrap();
    }
    if footer.filter.size > 0 {
        out.push((Region::Filter, block(footer.filter)));
    }
    out.push((Region::Properties, block(footer.properties)));
    out.push((Region::Index, block(footer.index)));
    out.sort_by_key(|(_, r)| r.start);
    out.push((Region::Footer, footer_at..bytes.len()));
    // The regions tile the file.
    let mut pos = 0;
    for (_, r) in &out {
        assert_eq!(r.start, pos, "{name}: regions tile the file");
        pos = r.end;
    }
    assert_eq!(pos, bytes.len());
    out
}

/// A way to damage a file.
#[derive(Clone, Debug)]
pub enum Damage {
    /// Flip one bit.
    Flip { at: usize, bit: u8 },
    /// Overwrite `len` bytes with zeros (clipped at the end of the file).
    Zero { at: usize, len: usize },
    /// Cut the file to `len` bytes.
    Truncate { len: usize },
    /// Copy `from` of the file over the bytes at `to` (clipped at the end of the file): a
    /// block or record written at the wrong offset.
    Copy { from: Range<usize>, to: usize },
    /// Copy `from` of another file of the image over the same offset of this one.
    CopyFrom { file: String, from: Range<usize> },
    /// Replace the whole file by other bytes: an older version of it or another file of the
    /// same kind.
    Replace {
        contents: Arc<Vec<u8>>,
        what: String,
    },
    /// Replace CURRENT by an older version and put back the manifest it names (an older copy
    /// of both files).
    OldCurrentAndManifest {
        current: Arc<Vec<u8>>,
        manifest: String,
        contents: Arc<Vec<u8>>,
    },
}

impl Damage {
    pub fn describe(&self) -> String {
        match self {
            Damage::Flip { at, bit } => format!("bit {bit} of byte {at} flipped"),
            Damage::Zero { at, len } => format!("{len} bytes zeroed at {at}"),
            Damage::Truncate { len } => format!("truncated to {len} bytes"),
            Damage::Copy { from, to } => format!("bytes {from:?} copied to offset {to}"),
            Damage::CopyFrom { file, from } => {
                format!("bytes {from:?} of {file} copied to the same offset")
            }
            Damage::Replace { what, contents } => {
                format!("replaced by {what} ({} bytes)", contents.len())
            }
            Damage::OldCurrentAndManifest { manifest, .. } => {
                format!("an older CURRENT, naming {manifest}, which is put back")
            }
        }
    }
}

/// One damaged reopen.
#[derive(Clone, Debug)]
pub struct Case {
    /// The damaged file's name in the database directory.
    pub file: String,
    /// The file type, or for a table the part the damage starts in.
    pub label: &'static str,
    pub kind: &'static str,
    pub damage: Damage,
}

pub const FLIP: &str = "bit flip";
pub const ZERO: &str = "zeroed range";
pub const TRUNCATE: &str = "truncation";
pub const COPY: &str = "block/record copied from another offset";
pub const COPY_OTHER: &str = "block copied from another table";
pub const STALE: &str = "stale copy";

/// Zeroed range lengths.
const ZERO_LENS: [usize; 6] = [1, 3, 8, 32, 200, 4096];

/// Every case, in a fixed order (a case's index replays it). `stride` thins the byte-by-byte
/// families (1: every byte flipped, every length truncated).
pub fn cases(image: &Image, stride: usize) -> Vec<Case> {
    let stride = stride.max(1);
    let mut out = Vec::new();
    for (name, bytes) in &image.files {
        let len = bytes.len();
        let kind = parse_file_name(name);
        let label_at = |at: usize| -> &'static str {
            match kind {
                Some(FileKind::Table(_)) => image.tables[name]
                    .iter()
                    .find(|(_, r)| r.contains(&at))
                    .map_or(Region::Footer.label(), |(region, _)| region.label()),
                Some(FileKind::Wal(_)) => "WAL",
                Some(FileKind::Manifest(_)) => "MANIFEST",
                _ => "CURRENT",
            }
        };
        let push = |out: &mut Vec<Case>, at: usize, kind: &'static str, damage: Damage| {
            out.push(Case {
                file: name.clone(),
                label: label_at(at),
                kind,
                damage,
            })
        };
        for at in (0..len).step_by(stride) {
            push(
                &mut out,
                at,
                FLIP,
                Damage::Flip {
                    at,
                    bit: (at * 5 % 8) as u8,
                },
            );
        }
        for (i, &zlen) in ZERO_LENS.iter().enumerate() {
            // Short ranges everywhere, long ones at fewer places.
            let step = stride * [5, 7, 11, 13, 29, 97][i];
            for at in (i % 3..len).step_by(step) {
                push(&mut out, at, ZERO, Damage::Zero { at, len: zlen });
            }
        }
        // Every length of the logs, CURRENT and the tables' metadata; every 7th of data blocks.
        let data_end = match kind {
            Some(FileKind::Table(_)) => image.tables[name]
                .iter()
                .filter(|(r, _)| *r == Region::Data)
                .map(|(_, r)| r.end)
                .max()
                .unwrap_or(0),
            _ => 0,
        };
        for cut in 0..len {
            let every = if cut < data_end {
                cut % (7 * stride) == 0
            } else {
                (cut - data_end) % stride == 0
            };
            if every {
                push(&mut out, cut, TRUNCATE, Damage::Truncate { len: cut });
            }
        }
        // A block (table) or record (log) copied over another one's offset.
        let units: Vec<Range<usize>> = match kind {
            Some(FileKind::Table(_)) => image.tables[name].iter().map(|(_, r)| r.clone()).collect(),
            Some(FileKind::Wal(_)) => image.wal.records.iter().map(|r| r.range.clone()).collect(),
            Some(FileKind::Manifest(_)) => image
                .manifest_records
                .iter()
                .map(|r| r.range.clone())
                .collect(),
            _ => Vec::new(),
        };
        for from in &units {
            for to in &units {
                if from != to {
                    let damage = Damage::Copy {
                        from: from.clone(),
                        to: to.start,
                    };
                    push(&mut out, to.start, COPY, damage);
                }
            }
        }
        if let Some(FileKind::Table(_)) = kind {
            // Each block of every other live table, at the same offset of this one.
            for (other, regions) in &image.tables {
                if other == name {
                    continue;
                }
                for (_, r) in regions {
                    if r.start < len {
                        let damage = Damage::CopyFrom {
                            file: other.clone(),
                            from: r.clone(),
                        };
                        push(&mut out, r.start, COPY_OTHER, damage);
                    }
                }
            }
        }
        // Stale copies: older versions of this name, and other files of the same kind.
        let same_kind = |other: &str| {
            std::mem::discriminant(&parse_file_name(other).unwrap())
                == std::mem::discriminant(&kind.unwrap())
        };
        let mut stale: Vec<(String, Arc<Vec<u8>>)> = Vec::new();
        for (other, versions) in &image.history {
            if other == name {
                for (i, v) in versions.iter().enumerate() {
                    stale.push((format!("an older version ({}) of {name}", i + 1), v.clone()));
                }
            } else if same_kind(other) && kind != Some(FileKind::Current) {
                if let Some(v) = image.files.get(other).or_else(|| versions.last()) {
                    stale.push((format!("the bytes of {other}"), v.clone()));
                }
            }
        }
        for (other, v) in &image.files {
            if other != name && same_kind(other) && !image.history.contains_key(other) {
                stale.push((format!("the bytes of {other}"), v.clone()));
            }
        }
        for (what, contents) in stale {
            let label = match kind {
                Some(FileKind::Table(_)) => "SSTable (whole file)",
                _ => label_at(0),
            };
            out.push(Case {
                file: name.clone(),
                label,
                kind: STALE,
                damage: Damage::Replace { contents, what },
            });
        }
        if kind == Some(FileKind::Current) {
            for old in image.history.get(name).into_iter().flatten() {
                let named = String::from_utf8_lossy(old)
                    .lines()
                    .next()
                    .unwrap_or_default()
                    .to_string();
                if let Some(contents) = image.history.get(&named).and_then(|v| v.last()) {
                    out.push(Case {
                        file: name.clone(),
                        label: "CURRENT",
                        kind: STALE,
                        damage: Damage::OldCurrentAndManifest {
                            current: old.clone(),
                            manifest: named,
                            contents: contents.clone(),
                        },
                    });
                }
            }
        }
    }
    out
}

/// The damaged bytes of `original`.
fn damaged(image: &Image, original: &[u8], damage: &Damage) -> Vec<u8> {
    let mut out = original.to_vec();
    match damage {
        Damage::Flip { at, bit } => out[*at] ^= 1 << bit,
        Damage::Zero { at, len } => {
            let end = (at + len).min(out.len());
            out[*at..end].fill(0);
        }
        Damage::Truncate { len } => out.truncate(*len),
        Damage::Copy { from, to } => {
            let n = from.len().min(out.len() - to);
            out[*to..to + n].copy_from_slice(&original[from.start..from.start + n]);
        }
        Damage::CopyFrom { file, from } => {
            let n = from.len().min(out.len() - from.start);
            let src = &image.files[file];
            out[from.start..from.start + n].copy_from_slice(&src[from.start..from.start + n]);
        }
        Damage::Replace { contents, .. } => out = contents.to_vec(),
        Damage::OldCurrentAndManifest { current, .. } => out = current.to_vec(),
    }
    out
}

/// What a damaged reopen did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// The damage changed no byte: not a case.
    Unchanged,
    /// Open or a read failed with Corruption; `names_file`: the error names the damaged file.
    Detected { names_file: bool },
    /// Everything read equals the model.
    Intact,
    /// (WAL only) a prefix of the WAL's records was recovered: `k` of them; `lost_synced` if
    /// synced records were lost (only in the class that cannot be detected).
    Prefix { k: usize, lost_synced: bool },
}

/// Run one case on a fork of the image.
pub fn run_case(image: &Image, case: &Case) -> Result<Verdict, String> {
    let original = &image.files[&case.file];
    let bytes = damaged(image, original, &case.damage);
    let extra = matches!(case.damage, Damage::OldCurrentAndManifest { .. });
    if bytes == **original && !extra {
        return Ok(Verdict::Unchanged);
    }
    let fs = image.fs.fork();
    let dir = Path::new(DIR);
    let path = dir.join(&case.file);
    fs.modify(&path, |c| *c = bytes.clone())
        .map_err(|e| format!("modify: {e}"))?;
    if let Damage::OldCurrentAndManifest {
        manifest, contents, ..
    } = &case.damage
    {
        let mut f = fs.create(&dir.join(manifest)).unwrap();
        f.append(contents).unwrap();
        f.sync().unwrap();
        fs.sync_dir(dir).unwrap();
    }
    let n = image.prefixes.len() - 1;
    let wal = if case.file == image.wal.name {
        wal_accepts(image, original, &bytes)
    } else {
        WalRule {
            accept: n..=n,
            undetectable: false,
            must_detect: false,
        }
    };
    let verdict = check_db(image, &fs, wal.accept, &path, true)?;
    if wal.must_detect && matches!(verdict, Verdict::Prefix { .. }) {
        return Err(format!(
            "damage to synced WAL records, with a sync mark vouching for them after it, was \
             cut off as a tail ({verdict:?})"
        ));
    }
    Ok(match verdict {
        Verdict::Prefix { k, .. } => Verdict::Prefix {
            k,
            lost_synced: wal.undetectable && k < image.wal.synced,
        },
        v => v,
    })
}

/// What a damaged WAL may recover.
struct WalRule {
    /// The numbers of WAL records (a prefix) the recovered state may hold.
    accept: RangeInclusive<usize>,
    /// The damage reaches the end of the file or every sync mark after it, so it cannot be
    /// told from a torn tail (see the module docs).
    undetectable: bool,
    /// The damage starts in synced records and a sync mark after it vouches for them: it
    /// must be reported, unless it is harmless (a sync mark copied over another one changes
    /// no write).
    must_detect: bool,
}

/// Open a fork of the undamaged image and read everything: it must read as the model.
pub fn check_undamaged(image: &Image) -> Result<Verdict, String> {
    let n = image.prefixes.len() - 1;
    let fs = image.fs.fork();
    check_db(image, &fs, n..=n, &path_of("CURRENT"), true)
}

/// The WAL prefixes a damaged WAL may recover (see the module docs), and whether the damage
/// is of the class that cannot be told from a torn tail, or must be reported.
fn wal_accepts(image: &Image, original: &[u8], damaged: &[u8]) -> WalRule {
    let n = image.prefixes.len() - 1;
    let common = original.len().min(damaged.len());
    let a = (0..common)
        .find(|&i| original[i] != damaged[i])
        .unwrap_or(common);
    let b = if damaged.len() != original.len() {
        original.len().max(damaged.len())
    } else {
        (0..original.len())
            .rev()
            .find(|&i| original[i] != damaged[i])
            .map_or(a, |i| i + 1)
    };
    let records = &image.wal.records;
    let before = records
        .iter()
        .filter(|r| !r.mark && r.range.end <= a)
        .count();
    // Damage in synced records is undetectable if it reaches every sync mark after it (or
    // the end of the file): nothing left vouches for the damaged bytes.
    let undetectable = a < image.wal.synced_end
        && records
            .iter()
            .filter(|r| r.sync_mark && r.range.start >= a)
            .all(|r| r.range.start < b);
    let min = if undetectable {
        before
    } else {
        before.max(image.wal.synced)
    };
    WalRule {
        accept: min..=n,
        undetectable,
        must_detect: a < image.wal.synced_end && !undetectable,
    }
}

/// A read error: fine if it is Corruption naming a file of the database.
fn read_error(
    e: Error,
    what: &str,
    damaged: &Path,
    first: &mut Option<bool>,
) -> Result<(), String> {
    match &e {
        Error::Corruption { file, .. } if file.starts_with(DIR) => {
            first.get_or_insert(file == damaged);
            Ok(())
        }
        _ => Err(format!(
            "{what} failed with an error that is not Corruption in the database: {e}"
        )),
    }
}

fn show(v: Option<&[u8]>) -> String {
    match v {
        None => "nothing".into(),
        Some(v) => format!("{:?}", String::from_utf8_lossy(&v[..v.len().min(40)])),
    }
}

/// Open the damaged database and read everything; each read must fail with Corruption or
/// agree with one of the accepted prefixes (the same one for every read).
fn check_db(
    image: &Image,
    fs: &SimFs,
    accept: RangeInclusive<usize>,
    damaged: &Path,
    reopen: bool,
) -> Result<Verdict, String> {
    let opts = image_options(fs).with_create_if_missing(false);
    let mut detected: Option<bool> = None;
    let db = match Db::open_with(DIR, opts) {
        Ok(db) => db,
        Err(e) => {
            read_error(e, "open", damaged, &mut detected)?;
            return Ok(Verdict::Detected {
                names_file: detected == Some(true),
            });
        }
    };
    let mut candidates: Vec<usize> = accept.clone().collect();
    let describe = |candidates: &[usize], what: String| {
        format!(
            "{what} (accepted WAL prefixes {accept:?}, of which {candidates:?} were consistent \
             with the reads before)"
        )
    };
    for key in &image.keys {
        match db.get(key) {
            Ok(found) => {
                let before = candidates.clone();
                candidates
                    .retain(|&k| image.prefixes[k].get(key).map(Vec::as_slice) == found.as_deref());
                if candidates.is_empty() {
                    let k = *before.last().unwrap_or(accept.end());
                    return Err(describe(
                        &before,
                        format!(
                            "get({}) returned {} but the model holds {}",
                            String::from_utf8_lossy(key),
                            show(found.as_deref()),
                            show(image.prefixes[k].get(key).map(Vec::as_slice))
                        ),
                    ));
                }
            }
            Err(e) => read_error(e, "get", damaged, &mut detected)?,
        }
    }
    for backward in [false, true] {
        let limit = image.model().len() * 4 + 100;
        let mut items: Vec<(Vec<u8>, Vec<u8>)> = Vec::new();
        let mut failed = false;
        let it = db.iter();
        let it: Box<dyn Iterator<Item = strata::Result<(Bytes, Bytes)>>> = if backward {
            Box::new(it.rev())
        } else {
            Box::new(it)
        };
        for item in it {
            match item {
                Ok((k, v)) => items.push((k.to_vec(), v.to_vec())),
                Err(e) => {
                    read_error(e, "iteration", damaged, &mut detected)?;
                    failed = true;
                    break;
                }
            }
            if items.len() > limit {
                return Err("an iterator does not end".into());
            }
        }
        let direction = if backward { "backward" } else { "forward" };
        let before = candidates.clone();
        candidates.retain(|&k| {
            let state = &image.prefixes[k];
            let matches = |expected: &mut dyn Iterator<Item = (&Vec<u8>, &Vec<u8>)>| {
                let mut n = 0;
                for (i, (k, v)) in items.iter().enumerate() {
                    match expected.next() {
                        Some((ek, ev)) if ek == k && ev == v => n = i + 1,
                        _ => return false,
                    }
                }
                n == items.len() && (failed || expected.next().is_none())
            };
            if backward {
                matches(&mut state.iter().rev())
            } else {
                matches(&mut state.iter())
            }
        });
        if candidates.is_empty() {
            let k = *before.last().unwrap_or(accept.end());
            let state = &image.prefixes[k];
            let expected: Vec<(&Vec<u8>, &Vec<u8>)> = if backward {
                state.iter().rev().collect()
            } else {
                state.iter().collect()
            };
            let at = items
                .iter()
                .zip(&expected)
                .position(|(a, b)| a.0 != *b.0 || a.1 != *b.1)
                .unwrap_or(items.len().min(expected.len()));
            return Err(describe(
                &before,
                format!(
                    "the {direction} scan returned {} entries{} where the model (prefix {k}) \
                     holds {}; first difference at entry {at}: found {} = {}, expected {} = {}",
                    items.len(),
                    if failed { " before an error" } else { "" },
                    expected.len(),
                    show(items.get(at).map(|e| e.0.as_slice())),
                    show(items.get(at).map(|e| e.1.as_slice())),
                    show(expected.get(at).map(|e| e.0.as_slice())),
                    show(expected.get(at).map(|e| e.1.as_slice())),
                ),
            ));
        }
    }
    if let Err(e) = db.verify() {
        read_error(e, "verify", damaged, &mut detected)?;
    }
    if let Some(names_file) = detected {
        return Ok(Verdict::Detected { names_file });
    }
    let k = *candidates.last().unwrap_or_else(|| unreachable!());
    if reopen {
        // What was served must be what recovery made durable.
        db.close()
            .map_err(|e| format!("close after a served open: {e}"))?;
        let again = check_db(image, fs, k..=k, damaged, false)
            .map_err(|e| format!("after a second, clean reopen: {e}"))?;
        if let Verdict::Detected { .. } = again {
            return Err(format!(
                "the state served after the damage (prefix {k}) was reported as corrupt at \
                 the next reopen"
            ));
        }
    }
    let n = image.prefixes.len() - 1;
    Ok(if k == n {
        Verdict::Intact
    } else {
        Verdict::Prefix {
            k,
            lost_synced: false,
        }
    })
}

/// The path of a file of the image.
pub fn path_of(name: &str) -> PathBuf {
    Path::new(DIR).join(name)
}
