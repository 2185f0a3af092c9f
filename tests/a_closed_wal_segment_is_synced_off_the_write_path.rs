//! A memtable switch hands the old WAL segment to the flush thread for its fsync (when writes
//! are synced; otherwise the segment is deleted unsynced after its flush) and takes a spare
//! segment the flush thread created ahead of time, so writers never wait on either (DESIGN.md,
//! invariant 3). What that allows after a crash, and what it must still refuse:
//!
//! - the closed segment may have lost its unsynced end (torn, or cut at a record boundary)
//!   while the next segment's unsynced records reached the disk: recovery keeps the prefix
//!   and drops the later records, which nothing promised durable;
//! - once a sync write committed in the next segment, the closed one was synced whole before
//!   it, and the next segment says so: the same damage is then Corruption, never a silent cut.

mod common;

use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::contract::{sim_options, DIR};
use strata::fs::{CrashMode, FileLock, FileSystem, RandomAccessFile, RealFs, SimFs, WritableFile};
use strata::{Db, Durability, Error, Options, WriteBatch, WriteOptions};

fn put(db: &Db, key: &str, sync: bool) {
    let mut batch = WriteBatch::new();
    batch.put(key, "v".repeat(40));
    let opts = if sync {
        WriteOptions::sync()
    } else {
        WriteOptions::no_sync()
    };
    db.write_opt(batch, opts).unwrap();
}

/// The WAL segments of the simulated database, oldest first.
fn segments(fs: &SimFs) -> Vec<PathBuf> {
    let mut logs: Vec<String> = fs
        .names(Path::new(DIR))
        .into_iter()
        .filter(|n| n.ends_with(".log"))
        .collect();
    logs.sort();
    logs.into_iter().map(|n| Path::new(DIR).join(n)).collect()
}

/// A crashed image (everything handed to the OS kept): segment A holds `a0..a9`, then a switch,
/// then segment B holds `b0..b4`; if `sync_in_b`, `b2` was a sync write. No flush has run
/// (background threads off, room for two immutable memtables). Returns the image and A's path.
fn image(sync_in_b: bool) -> (SimFs, PathBuf) {
    let fs = SimFs::new(7);
    // A 1,200-byte memtable switches after about ten of these puts.
    let opts = sim_options(&fs).with_write_buffer_size(1200);
    let db = Db::open_with(DIR, opts).unwrap();
    let mut written = 0;
    while segments(&fs).len() < 2 {
        put(&db, &format!("a{written}"), false);
        written += 1;
        assert!(written < 100, "no memtable switch");
    }
    // The put that filled the memtable is in segment A; the switch happens at the next write.
    for i in 0..5 {
        put(&db, &format!("b{i}"), sync_in_b && i == 2);
    }
    assert_eq!(segments(&fs).len(), 2, "one switch only");
    let image = fs.fork();
    image.crash(CrashMode::KeepAll);
    drop(db);
    let first = segments(&image)[0].clone();
    (image, first)
}

fn reopen(fs: &SimFs) -> Result<Db, Error> {
    Db::open_with(DIR, sim_options(fs).with_create_if_missing(false))
}

fn present(db: &Db, prefix: &str, n: usize) -> Vec<bool> {
    (0..n)
        .map(|i| db.get(format!("{prefix}{i}")).unwrap().is_some())
        .collect()
}

/// Cut segment `path` to `len` bytes.
fn cut(fs: &SimFs, path: &Path, len: usize) {
    fs.modify(path, |c| c.truncate(len)).unwrap();
}

/// The end offsets of the records in a segment (record = 9-byte header + payload), up to the
/// zeros of its preallocated end (a type byte of 0).
fn record_ends(bytes: &[u8]) -> Vec<usize> {
    let mut ends = Vec::new();
    let mut pos = 0;
    while pos + 9 <= bytes.len() && bytes[pos + 8] != 0 {
        let len = u32::from_le_bytes(bytes[pos + 4..pos + 8].try_into().unwrap()) as usize;
        pos += 9 + len;
        ends.push(pos);
    }
    ends
}

#[test]
fn the_undamaged_image_recovers_both_segments() {
    for sync_in_b in [false, true] {
        let (fs, first) = image(sync_in_b);
        // Segment A was preallocated; the sync write in B synced it after giving its unused
        // zeros back. Without that sync, a process crash leaves A ending in zeros, which
        // recovery must read as its end, not as a torn tail that drops B.
        let bytes = fs.contents(&first).unwrap();
        let end = *record_ends(&bytes).last().unwrap();
        if sync_in_b {
            assert_eq!(
                bytes.len(),
                end,
                "a synced closed segment has no zeros left"
            );
        } else {
            assert!(bytes.len() > end && bytes[end..].iter().all(|&b| b == 0));
        }
        let db = reopen(&fs).unwrap();
        assert!(present(&db, "b", 5).iter().all(|p| *p));
        assert!(db.get("a0").unwrap().is_some());
    }
}

#[test]
fn a_torn_closed_segment_without_a_later_sync_keeps_the_prefix_and_drops_the_later_segment() {
    let (fs, first) = image(false);
    let bytes = fs.contents(&first).unwrap();
    let ends = record_ends(&bytes);
    let records = ends.len();
    // Tear the last record (lose its last 3 bytes), or cut cleanly after the one before it.
    for len in [ends[records - 1] - 3, ends[records - 2]] {
        let (fs, first) = image(false);
        cut(&fs, &first, len);
        let db = reopen(&fs).unwrap_or_else(|e| panic!("cut at {len}: {e}"));
        let a = present(&db, "a", records);
        assert_eq!(
            a.iter().filter(|p| **p).count(),
            records - 1,
            "every whole record of the closed segment before the cut: {a:?}"
        );
        assert!(a[..records - 1].iter().all(|p| *p), "{a:?}");
        assert_eq!(
            present(&db, "b", 5),
            vec![false; 5],
            "the later segment's unsynced writes are dropped with the lost tail"
        );
    }
}

#[test]
fn a_damaged_closed_segment_that_a_later_sync_vouches_for_is_corruption() {
    let (probe, first) = image(true);
    let bytes = probe.contents(&first).unwrap();
    let ends = record_ends(&bytes);
    for len in [ends[ends.len() - 1] - 3, ends[ends.len() - 2]] {
        let (fs, first) = image(true);
        cut(&fs, &first, len);
        match reopen(&fs) {
            Err(e @ Error::Corruption { .. }) => {
                assert!(e.to_string().contains(".log"), "{e}");
            }
            Err(e) => panic!("cut at {len}: not corruption: {e}"),
            Ok(db) => panic!(
                "cut at {len}: opened, b = {:?}: a synced write's earlier segment was damaged \
                 and nothing reported it",
                present(&db, "b", 5)
            ),
        }
    }
}

#[test]
fn a_missing_middle_segment_is_corruption() {
    let fs = SimFs::new(11);
    let opts = sim_options(&fs)
        .with_write_buffer_size(1200)
        .with_durability(Durability::NoSync);
    let db = Db::open_with(DIR, opts).unwrap();
    // Three segments, none flushed (room for two immutable memtables).
    let mut written = 0;
    while segments(&fs).len() < 3 {
        put(&db, &format!("k{written}"), false);
        written += 1;
        assert!(written < 200, "no memtable switches");
    }
    let image = fs.fork();
    image.crash(CrashMode::KeepAll);
    drop(db);
    let logs = segments(&image);
    assert_eq!(logs.len(), 3, "{logs:?}");
    image.remove_file(&logs[1]).unwrap();
    match reopen(&image) {
        Err(e @ Error::Corruption { .. }) => {
            let name = logs[2].file_name().unwrap().to_string_lossy().into_owned();
            assert!(e.to_string().contains(&name), "{e}");
        }
        Err(e) => panic!("not corruption: {e}"),
        Ok(db) => panic!(
            "opened without the middle segment: k0 = {:?}",
            db.get("k0").unwrap()
        ),
    }
}

/// (thread name, "sync" or "create", file name) of a WAL segment operation.
type Event = (String, &'static str, String);
/// Every WAL segment operation, in order.
type Events = Arc<Mutex<Vec<Event>>>;

/// A file system that records which thread fsyncs or creates each WAL segment.
#[derive(Debug, Default)]
struct Recording {
    real: RealFs,
    events: Events,
}

fn thread_name() -> String {
    std::thread::current().name().unwrap_or("?").to_string()
}

struct RecordingFile {
    inner: Box<dyn WritableFile>,
    name: String,
    events: Events,
}

impl WritableFile for RecordingFile {
    fn append(&mut self, data: &[u8]) -> io::Result<()> {
        self.inner.append(data)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
    fn sync(&mut self) -> io::Result<()> {
        if self.name.ends_with(".log") {
            self.events
                .lock()
                .unwrap()
                .push((thread_name(), "sync", self.name.clone()));
        }
        self.inner.sync()
    }
}

impl FileSystem for Recording {
    fn create_dir_all(&self, dir: &Path) -> io::Result<()> {
        self.real.create_dir_all(dir)
    }
    fn create(&self, path: &Path) -> io::Result<Box<dyn WritableFile>> {
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        if name.ends_with(".log") {
            self.events
                .lock()
                .unwrap()
                .push((thread_name(), "create", name.clone()));
        }
        Ok(Box::new(RecordingFile {
            inner: self.real.create(path)?,
            name,
            events: Arc::clone(&self.events),
        }))
    }
    fn open(&self, path: &Path) -> io::Result<Arc<dyn RandomAccessFile>> {
        self.real.open(path)
    }
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        self.real.rename(from, to)
    }
    fn remove_file(&self, path: &Path) -> io::Result<()> {
        self.real.remove_file(path)
    }
    fn list_dir(&self, dir: &Path) -> io::Result<Vec<String>> {
        self.real.list_dir(dir)
    }
    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        self.real.sync_dir(dir)
    }
    fn try_lock(&self, path: &Path) -> io::Result<Option<Box<dyn FileLock>>> {
        self.real.try_lock(path)
    }
    fn exists(&self, path: &Path) -> bool {
        self.real.exists(path)
    }
}

/// Five rounds of writes, each ending in a switch and a wait for its flush, under
/// `durability`; returns the stats and the WAL events after the open.
fn five_switches(durability: Durability) -> (strata::DbStats, Vec<Event>) {
    let dir = tempfile::tempdir().unwrap();
    let fs = Arc::new(Recording::default());
    let events = Arc::clone(&fs.events);
    let opts = Options::default().with_fs(fs).with_durability(durability);
    let db = Db::open_with(dir.path(), opts).unwrap();
    // Wait (bounded) for the flush thread's first spare segment.
    let deadline = Instant::now() + Duration::from_secs(20);
    while !events
        .lock()
        .unwrap()
        .iter()
        .any(|(thread, what, _)| thread == "strata-flush" && *what == "create")
    {
        assert!(Instant::now() < deadline, "no spare segment was prepared");
        std::thread::sleep(Duration::from_millis(5));
    }
    let opened = events.lock().unwrap().len();
    for round in 0..5 {
        for i in 0..200 {
            db.put(format!("k{round}-{i}"), "v").unwrap();
        }
        // A switch, then a wait for the flush (which prepares the next spare first).
        db.flush().unwrap();
    }
    let stats = db.stats();
    let seen: Vec<_> = events.lock().unwrap()[opened..].to_vec();
    db.close().unwrap();
    assert!(stats.wal_switches >= 5, "{stats}");
    assert_eq!(stats.segments_created_in_write_path, 0, "{stats}");
    let creates = seen
        .iter()
        .filter(|(t, what, _)| t == "strata-flush" && *what == "create")
        .count();
    assert!(creates >= 5, "{seen:?}");
    (stats, seen)
}

#[test]
fn writers_never_fsync_or_create_a_segment_at_a_switch() {
    // Writes without fsync: no WAL fsync at all, and segments made ahead by the flush thread.
    let (stats, seen) = five_switches(Durability::NoSync);
    let on_writers: Vec<_> = seen
        .iter()
        .filter(|(t, _, _)| t != "strata-flush")
        .collect();
    assert!(
        on_writers.is_empty(),
        "{} WAL fsyncs or creations on writer threads, the first: {:?}",
        on_writers.len(),
        on_writers.first()
    );
    // A closed segment of a database without sync writes is deleted unsynced once its
    // memtable is flushed: the kernel may drop its dirty pages instead of writing them.
    assert_eq!(stats.closed_segment_syncs, 0, "{stats}");
    assert!(!seen.iter().any(|(_, what, _)| *what == "sync"), "{seen:?}");
}

#[test]
fn the_flush_thread_syncs_closed_segments_of_a_synced_database() {
    // Sync writes fsync the segment they are in; every closed segment is synced by the flush
    // thread, after the switch, so the next sync write does not wait for it.
    let (stats, seen) = five_switches(Durability::Sync);
    assert!(stats.closed_segment_syncs >= 5, "{stats}");
    let flush_thread_syncs = seen
        .iter()
        .filter(|(t, what, _)| t == "strata-flush" && *what == "sync")
        .count();
    assert!(flush_thread_syncs >= 5, "{seen:?}");
    let writer_creates: Vec<_> = seen
        .iter()
        .filter(|(t, what, _)| t != "strata-flush" && *what == "create")
        .collect();
    assert!(writer_creates.is_empty(), "{writer_creates:?}");
}

#[test]
fn a_sync_write_after_a_switch_waits_for_the_closed_segment() {
    let dir = tempfile::tempdir().unwrap();
    let fs = Arc::new(Recording::default());
    let events = Arc::clone(&fs.events);
    // No background threads: only the sync writer can make the closed segment durable.
    let opts = Options::default()
        .with_fs(fs)
        .with_background_flush(false)
        .with_write_buffer_size(4096);
    let db = Db::open_with(dir.path(), opts).unwrap();
    let mut i = 0;
    while db.stats().wal_switches == 0 {
        db.write_opt(
            {
                let mut b = WriteBatch::new();
                b.put(format!("k{i}"), "v".repeat(100));
                b
            },
            WriteOptions::no_sync(),
        )
        .unwrap();
        i += 1;
    }
    let before = events.lock().unwrap().len();
    let mut b = WriteBatch::new();
    b.put("synced", "v");
    db.write_opt(b, WriteOptions::sync()).unwrap();
    let seen: Vec<_> = events.lock().unwrap()[before..].to_vec();
    let synced: Vec<&str> = seen
        .iter()
        .filter(|(_, what, _)| *what == "sync")
        .map(|(_, _, name)| name.as_str())
        .collect();
    assert_eq!(synced.len(), 2, "{seen:?}");
    assert!(
        synced[0] < synced[1],
        "the closed segment is fsynced before the new one: {synced:?}"
    );
    db.close().unwrap();
}
