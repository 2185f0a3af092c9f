use std::collections::BTreeSet;
use std::io;
use std::path::PathBuf;

use super::*;
use crate::fs::{FileSystem, WritableFile};

fn p(s: &str) -> PathBuf {
    PathBuf::from(s)
}

/// A file system with `/db` and a durable empty directory.
fn fs() -> SimFs {
    let fs = SimFs::new(7);
    fs.create_dir_all(&p("/db")).unwrap();
    fs
}

fn write_file(fs: &SimFs, path: &str, data: &[u8], sync: bool) -> Box<dyn WritableFile> {
    let mut f = fs.create(&p(path)).unwrap();
    f.append(data).unwrap();
    if sync {
        f.sync().unwrap();
    } else {
        f.flush().unwrap();
    }
    f
}

fn read(fs: &SimFs, path: &str) -> Option<Vec<u8>> {
    match fs.read_all(&p(path)) {
        Ok(data) => Some(data),
        Err(e) if e.kind() == io::ErrorKind::NotFound => None,
        Err(e) => panic!("reading {path}: {e}"),
    }
}

#[test]
fn appended_bytes_are_readable_only_after_a_flush() {
    let fs = fs();
    let mut f = fs.create(&p("/db/a")).unwrap();
    f.append(b"hello").unwrap();
    assert_eq!(read(&fs, "/db/a").unwrap(), b"");
    f.flush().unwrap();
    assert_eq!(read(&fs, "/db/a").unwrap(), b"hello");
    assert_eq!(fs.unsynced_len(&p("/db/a")), Some(5));
    f.sync().unwrap();
    assert_eq!(fs.unsynced_len(&p("/db/a")), Some(0));
}

#[test]
fn large_appends_and_full_buffers_reach_the_os_without_a_flush() {
    let fs = fs();
    let mut f = fs.create(&p("/db/a")).unwrap();
    f.append(&vec![1; WRITE_BUFFER]).unwrap();
    assert_eq!(read(&fs, "/db/a").unwrap().len(), WRITE_BUFFER);
    f.append(&vec![2; WRITE_BUFFER - 1]).unwrap();
    f.append(&[3; 2]).unwrap();
    assert_eq!(read(&fs, "/db/a").unwrap().len(), 2 * WRITE_BUFFER - 1);
}

#[test]
fn drop_unsynced_keeps_synced_bytes_and_durable_names_only() {
    let fs = fs();
    let mut f = write_file(&fs, "/db/a", b"synced", true);
    fs.sync_dir(&p("/db")).unwrap();
    f.append(b"+more").unwrap();
    f.flush().unwrap();
    // Created and synced, but its name was never made durable.
    write_file(&fs, "/db/b", b"lost", true);
    fs.crash(CrashMode::DropUnsynced);
    assert_eq!(read(&fs, "/db/a").unwrap(), b"synced");
    assert_eq!(read(&fs, "/db/b"), None);
    assert_eq!(fs.names(&p("/db")), vec!["a".to_string()]);
}

#[test]
fn keep_all_keeps_what_reached_the_os_but_not_handle_buffers() {
    let fs = fs();
    let mut f = write_file(&fs, "/db/a", b"flushed", false);
    f.append(b"+buffered").unwrap();
    fs.rename(&p("/db/a"), &p("/db/c")).unwrap();
    fs.crash(CrashMode::KeepAll);
    assert_eq!(read(&fs, "/db/a"), None);
    assert_eq!(read(&fs, "/db/c").unwrap(), b"flushed");
}

#[test]
fn unsynced_directory_operations_are_undone_in_a_power_cut() {
    let fs = fs();
    write_file(&fs, "/db/old", b"1", true);
    write_file(&fs, "/db/gone", b"2", true);
    fs.sync_dir(&p("/db")).unwrap();
    write_file(&fs, "/db/tmp", b"3", true);
    fs.rename(&p("/db/tmp"), &p("/db/old")).unwrap();
    fs.remove_file(&p("/db/gone")).unwrap();
    assert_eq!(read(&fs, "/db/old").unwrap(), b"3");
    fs.crash(CrashMode::DropUnsynced);
    assert_eq!(read(&fs, "/db/old").unwrap(), b"1");
    assert_eq!(read(&fs, "/db/gone").unwrap(), b"2");
    assert_eq!(read(&fs, "/db/tmp"), None);
}

#[test]
fn create_over_an_existing_name_brings_the_old_file_back_if_not_synced() {
    let fs = fs();
    write_file(&fs, "/db/a", b"old", true);
    fs.sync_dir(&p("/db")).unwrap();
    write_file(&fs, "/db/a", b"new", true);
    fs.crash(CrashMode::DropUnsynced);
    assert_eq!(read(&fs, "/db/a").unwrap(), b"old");
}

#[test]
fn keep_random_prefix_keeps_a_prefix_of_each_file_and_of_the_directory_log() {
    let mut seen_lengths = BTreeSet::new();
    let mut seen_names = BTreeSet::new();
    for seed in 0..200 {
        let fs = SimFs::new(seed);
        fs.create_dir_all(&p("/db")).unwrap();
        let mut f = write_file(&fs, "/db/a", b"0123", true);
        fs.sync_dir(&p("/db")).unwrap();
        for chunk in [&b"45"[..], b"678", b"9"] {
            f.append(chunk).unwrap();
            f.flush().unwrap();
        }
        write_file(&fs, "/db/b", b"x", true);
        write_file(&fs, "/db/c", b"y", true);
        fs.remove_file(&p("/db/b")).unwrap();
        fs.crash(CrashMode::KeepRandomPrefix);
        let a = read(&fs, "/db/a").unwrap();
        assert_eq!(a[..], b"0123456789"[..a.len()], "seed {seed}");
        assert!(a.len() >= 4, "synced bytes are kept (seed {seed})");
        seen_lengths.insert(a.len());
        let names = fs.names(&p("/db"));
        // Directory operations land in order: c's creation implies b's.
        let expected = [
            vec!["a"],
            vec!["a", "b"],
            vec!["a", "b", "c"],
            vec!["a", "c"],
        ];
        assert!(expected.iter().any(|e| *e == names), "{names:?}");
        seen_names.insert(names);
    }
    assert_eq!(seen_lengths.len(), 7, "every prefix length shows up");
    assert_eq!(
        seen_names.len(),
        4,
        "every prefix of the directory log shows up"
    );
}

#[test]
fn a_crash_replays_exactly_from_its_seed() {
    let run = |seed| {
        let fs = SimFs::new(seed);
        fs.create_dir_all(&p("/db")).unwrap();
        let mut files: Vec<_> = (0..8)
            .map(|i| write_file(&fs, &format!("/db/{i}"), b"", true))
            .collect();
        fs.sync_dir(&p("/db")).unwrap();
        for f in &mut files {
            f.append(&[9; 100]).unwrap();
            f.flush().unwrap();
        }
        fs.crash(CrashMode::KeepRandomPrefix);
        (0..8)
            .map(|i| read(&fs, &format!("/db/{i}")).unwrap().len())
            .collect::<Vec<_>>()
    };
    assert_eq!(run(42), run(42));
    assert_ne!(run(42), run(43));
}

#[test]
fn tear_last_write_cuts_only_the_last_write() {
    let mut lengths = BTreeSet::new();
    for seed in 0..100 {
        let fs = SimFs::new(seed);
        fs.create_dir_all(&p("/db")).unwrap();
        let mut a = write_file(&fs, "/db/a", b"aaaa", false);
        let mut b = write_file(&fs, "/db/b", b"bbbb", false);
        b.append(b"BBBB").unwrap();
        b.flush().unwrap();
        a.append(b"AAAA").unwrap();
        a.flush().unwrap();
        fs.crash(CrashMode::TearLastWrite);
        assert_eq!(read(&fs, "/db/b").unwrap(), b"bbbbBBBB");
        let a = read(&fs, "/db/a").unwrap();
        assert!(a.len() >= 4 && a.len() < 8, "{a:?}");
        assert_eq!(a[..], b"aaaaAAAA"[..a.len()]);
        lengths.insert(a.len());
    }
    assert_eq!(lengths.len(), 4);
}

#[test]
fn tear_last_write_lands_part_of_the_write_in_flight_when_the_disk_died() {
    for seed in 0..50 {
        let fs = SimFs::new(seed);
        fs.create_dir_all(&p("/db")).unwrap();
        let mut f = write_file(&fs, "/db/a", b"head", true);
        f.append(b"0123456789").unwrap();
        fs.inject(Fault::dead(
            Some(OpKind::Write),
            fs.op_count(Some(OpKind::Write)),
        ));
        assert!(f.flush().is_err());
        assert!(fs.is_dead());
        fs.crash(CrashMode::TearLastWrite);
        let a = read(&fs, "/db/a").unwrap();
        assert!(a.len() > 4 && a.len() < 14, "seed {seed}: {a:?}");
        assert_eq!(a[..], b"head0123456789"[..a.len()]);
    }
}

#[test]
fn handles_and_other_clones_die_in_a_crash() {
    let fs = fs();
    let db_side = fs.clone();
    let mut w = db_side.create(&p("/db/a")).unwrap();
    w.append(b"x").unwrap();
    w.sync().unwrap();
    db_side.sync_dir(&p("/db")).unwrap();
    let r = db_side.open(&p("/db/a")).unwrap();
    fs.crash(CrashMode::KeepAll);
    assert!(w.append(b"y").is_err());
    assert!(w.sync().is_err());
    assert!(r.read_at(0, 1).is_err());
    assert!(r.size().is_err());
    assert!(db_side.create(&p("/db/b")).is_err());
    assert!(db_side.list_dir(&p("/db")).is_err());
    assert!(!db_side.exists(&p("/db/a")));
    // The clone that crashed the state works, and so do its new clones.
    assert!(fs.exists(&p("/db/a")));
    assert_eq!(fs.clone().read_all(&p("/db/a")).unwrap(), b"x");
}

#[test]
fn the_nth_operation_of_a_kind_fails_once() {
    let fs = fs();
    fs.inject(Fault::nth(Some(OpKind::Sync), 1));
    let mut f = fs.create(&p("/db/a")).unwrap();
    f.append(b"1").unwrap();
    f.sync().unwrap();
    f.append(b"2").unwrap();
    let err = f.sync().unwrap_err();
    assert!(err.to_string().contains("injected fault: sync #1"), "{err}");
    f.sync().unwrap();
    assert_eq!(fs.injected_faults(), 1);
    assert_eq!(fs.op_count(Some(OpKind::Sync)), 3);
    assert_eq!(fs.op_count(Some(OpKind::Append)), 2);
    // Two writes: the first sync's and the failed sync's (the buffer is gone after it).
    assert_eq!(fs.op_count(Some(OpKind::Write)), 2);
    assert!(!fs.is_dead());
}

#[test]
fn a_dead_disk_fails_every_later_operation_until_repaired() {
    let fs = fs();
    let start = fs.op_count(None);
    fs.inject(Fault::dead(None, start + 1));
    let mut f = fs.create(&p("/db/a")).unwrap();
    assert!(f.append(b"x").is_err());
    assert!(fs.list_dir(&p("/db")).is_err());
    assert!(fs.sync_dir(&p("/db")).is_err());
    assert!(fs.open(&p("/db/a")).is_err());
    assert_eq!(fs.injected_faults(), 1);
    assert_eq!(fs.op_count(None), start + 5);
    fs.clear_faults();
    f.append(b"y").unwrap();
    f.flush().unwrap();
    assert_eq!(read(&fs, "/db/a").unwrap(), b"y");
}

#[test]
fn every_kind_of_operation_can_be_failed() {
    for kind in OpKind::ALL {
        let fs = SimFs::new(1);
        fs.inject(Fault::nth(Some(kind), 0));
        let dir = p("/db");
        let path = p("/db/a");
        let mut failed = 0;
        failed += fs.create_dir_all(&dir).is_err() as usize;
        fs.create_dir_all(&dir).unwrap();
        let mut f = loop {
            match fs.create(&path) {
                Ok(f) => break f,
                Err(_) => failed += 1,
            }
        };
        failed += f.append(b"data").is_err() as usize;
        f.append(b"data").unwrap();
        failed += f.flush().is_err() as usize;
        f.append(b"more").unwrap();
        failed += f.preallocate(4096).is_err() as usize;
        failed += f.sync().is_err() as usize;
        f.sync().unwrap();
        failed += fs.sync_dir(&dir).is_err() as usize;
        let r = loop {
            match fs.open(&path) {
                Ok(r) => break r,
                Err(_) => failed += 1,
            }
        };
        failed += r.read_at(0, 1).is_err() as usize;
        failed += fs.list_dir(&dir).is_err() as usize;
        failed += fs.try_lock(&p("/db/LOCK")).is_err() as usize;
        while fs.rename(&path, &p("/db/b")).is_err() {
            failed += 1;
        }
        failed += fs.remove_file(&p("/db/b")).is_err() as usize;
        assert_eq!(failed, 1, "{kind}");
        assert_eq!(fs.injected_faults(), 1, "{kind}");
    }
}

#[test]
fn a_fault_on_any_kind_counts_every_operation() {
    let fs = fs();
    let n = fs.op_count(None);
    fs.inject(Fault::nth(None, n + 2));
    fs.create(&p("/db/a")).unwrap();
    fs.list_dir(&p("/db")).unwrap();
    assert!(fs.sync_dir(&p("/db")).is_err());
    fs.sync_dir(&p("/db")).unwrap();
}

#[test]
fn a_full_disk_writes_what_fits_then_fails_with_enospc() {
    let fs = fs();
    write_file(&fs, "/db/a", &[0; 60], true);
    fs.set_capacity(Some(100));
    let mut f = fs.create(&p("/db/b")).unwrap();
    f.append(&[1; 30]).unwrap();
    f.flush().unwrap();
    f.append(&[2; 30]).unwrap();
    let err = f.sync().unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::StorageFull);
    assert_eq!(read(&fs, "/db/b").unwrap().len(), 40);
    assert_eq!(fs.used_bytes(), 100);
    assert_eq!(fs.peak_used_bytes(), 100);
    assert_eq!(fs.enospc_errors(), 1);
    // Removing a file frees its space.
    fs.remove_file(&p("/db/a")).unwrap();
    f.append(&[3; 30]).unwrap();
    f.sync().unwrap();
    assert_eq!(read(&fs, "/db/b").unwrap().len(), 70);
}

#[test]
fn a_lock_is_exclusive_until_its_handle_drops_or_a_crash() {
    let fs = fs();
    let lock_path = p("/db/LOCK");
    let first = fs.try_lock(&lock_path).unwrap().unwrap();
    assert!(fs.exists(&lock_path));
    assert!(fs.clone().try_lock(&lock_path).unwrap().is_none());
    drop(first);
    let second = fs.try_lock(&lock_path).unwrap().unwrap();
    fs.crash(CrashMode::KeepAll);
    let third = fs.try_lock(&lock_path).unwrap().unwrap();
    // The stale handle's drop must not release the new lock.
    drop(second);
    assert!(fs.try_lock(&lock_path).unwrap().is_none());
    drop(third);
    assert!(fs.try_lock(&lock_path).unwrap().is_some());
}

#[test]
fn a_removed_file_stays_readable_through_an_open_handle() {
    let fs = fs();
    write_file(&fs, "/db/a", b"abc", true);
    let r = fs.open(&p("/db/a")).unwrap();
    fs.remove_file(&p("/db/a")).unwrap();
    assert!(!fs.exists(&p("/db/a")));
    assert_eq!(r.read_at(1, 2).unwrap(), b"bc");
    assert_eq!(
        r.read_at(2, 2).unwrap_err().kind(),
        io::ErrorKind::UnexpectedEof
    );
}

#[test]
fn fork_copies_files_but_not_faults_locks_or_counters() {
    let fs = fs();
    let _lock = fs.try_lock(&p("/db/LOCK")).unwrap().unwrap();
    let mut f = write_file(&fs, "/db/a", b"synced", true);
    fs.sync_dir(&p("/db")).unwrap();
    f.append(b"+os").unwrap();
    f.flush().unwrap();
    fs.inject(Fault::dead(None, fs.op_count(None)));
    let copy = fs.fork();
    assert_eq!(copy.op_count(None), 0);
    assert!(copy.try_lock(&p("/db/LOCK")).unwrap().is_some());
    assert_eq!(read(&copy, "/db/a").unwrap(), b"synced+os");
    copy.crash(CrashMode::DropUnsynced);
    assert_eq!(read(&copy, "/db/a").unwrap(), b"synced");
    // The original is untouched by the fork's crash, and its fault is armed.
    assert_eq!(fs.contents(&p("/db/a")).unwrap(), b"synced+os");
    assert!(fs.list_dir(&p("/db")).is_err());
}

#[test]
fn errors_name_the_missing_file() {
    let fs = fs();
    let err = match fs.open(&p("/db/nope")) {
        Err(e) => e,
        Ok(_) => panic!("opened a missing file"),
    };
    assert_eq!(err.kind(), io::ErrorKind::NotFound);
    assert!(err.to_string().contains("/db/nope"));
    assert_eq!(
        fs.remove_file(&p("/db/nope")).unwrap_err().kind(),
        io::ErrorKind::NotFound
    );
    assert!(fs.create(&p("/missing/a")).is_err());
    assert_eq!(fs.list_dir(&p("/")).unwrap(), vec!["db".to_string()]);
}

#[test]
fn modify_damages_a_file_durably_without_counting() {
    let fs = fs();
    write_file(&fs, "/db/a", b"abc", false);
    let n = fs.op_count(None);
    fs.modify(&p("/db/a"), |d| d[0] = b'X').unwrap();
    assert_eq!(fs.op_count(None), n);
    fs.sync_dir(&p("/db")).unwrap();
    fs.crash(CrashMode::DropUnsynced);
    assert_eq!(read(&fs, "/db/a").unwrap(), b"Xbc");
}

#[test]
fn tracing_records_each_operation() {
    let fs = fs();
    fs.set_tracing(true);
    write_file(&fs, "/db/a", b"x", true);
    assert_eq!(
        fs.trace(),
        vec![
            "#1 create /db/a",
            "#2 append /db/a",
            "#3 write /db/a",
            "#4 sync /db/a"
        ]
    );
}

#[test]
fn unobserved_operations_are_not_counted_or_failed() {
    let fs = fs();
    let n = fs.op_count(None);
    fs.inject(Fault::dead(None, n));
    let data = fs.unobserved(|| {
        write_file(&fs, "/db/a", b"abc", true);
        fs.read_all(&p("/db/a")).unwrap()
    });
    assert_eq!(data, b"abc");
    assert_eq!(fs.op_count(None), n);
    assert!(fs.list_dir(&p("/db")).is_err());
    assert!(fs.is_dead());
}

/// Unsynced bytes after a crash in `mode`, for a file with 4 synced bytes and 3 pages and a bit
/// of unsynced ones, over many seeds.
fn unsynced_after(mode: CrashMode, seed: u64) -> Vec<u8> {
    let fs = SimFs::new(seed);
    fs.create_dir_all(&p("/db")).unwrap();
    let mut f = write_file(&fs, "/db/a", b"sync", true);
    fs.sync_dir(&p("/db")).unwrap();
    let unsynced: Vec<u8> = (0..3 * PAGE + 100).map(|i| (i % 251 + 1) as u8).collect();
    f.append(&unsynced).unwrap();
    f.flush().unwrap();
    fs.crash(mode);
    let data = read(&fs, "/db/a").unwrap();
    assert_eq!(
        &data[..4],
        b"sync",
        "synced bytes survive ({mode:?}, seed {seed})"
    );
    for (i, &b) in data[4..].iter().enumerate() {
        assert!(
            b == 0 || b == unsynced[i],
            "byte {i} is neither kept nor zero"
        );
    }
    data[4..].to_vec()
}

#[test]
fn zero_filled_tail_keeps_data_then_zeros_to_the_end() {
    let mut zero_tails = 0;
    for seed in 0..100 {
        let tail = unsynced_after(CrashMode::ZeroFilledTail, seed);
        let first_zero = tail.iter().position(|&b| b == 0).unwrap_or(tail.len());
        assert!(tail[first_zero..].iter().all(|&b| b == 0), "seed {seed}");
        zero_tails += usize::from(first_zero < tail.len());
    }
    assert!(zero_tails > 50, "most runs end in zeros: {zero_tails}");
}

#[test]
fn reordered_pages_can_lose_a_page_and_keep_a_later_one() {
    let mut holes = 0;
    for seed in 0..100 {
        let tail = unsynced_after(CrashMode::ReorderedPages, seed);
        // Pages are aligned in the file, so the first one holds PAGE - 4 unsynced bytes.
        let pages: Vec<&[u8]> = std::iter::once(&tail[..(PAGE - 4).min(tail.len())])
            .chain(tail.get(PAGE - 4..).unwrap_or_default().chunks(PAGE))
            .collect();
        for page in &pages {
            assert!(
                page.iter().all(|&b| b == 0) || page.iter().all(|&b| b != 0),
                "a page survives or is lost whole (seed {seed})"
            );
        }
        let lost = |p: &&[u8]| p.iter().all(|&b| b == 0);
        if let Some(first_lost) = pages.iter().position(lost) {
            holes += usize::from(pages[first_lost..].iter().any(|p| !lost(p)));
        }
    }
    assert!(holes > 10, "a lost page followed by a kept one: {holes}");
}

/// A file durably named, holding "abc" synced and preallocated to 8 bytes (synced too).
fn preallocated_file(fs: &SimFs) -> Box<dyn WritableFile> {
    let mut f = write_file(fs, "/db/log", b"abc", true);
    f.preallocate(8).unwrap();
    f.sync().unwrap();
    fs.sync_dir(&p("/db")).unwrap();
    f
}

#[test]
fn a_preallocated_file_reads_as_its_bytes_then_zeros_and_appends_overwrite_them() {
    let fs = fs();
    let mut f = preallocated_file(&fs);
    assert_eq!(read(&fs, "/db/log").unwrap(), b"abc\0\0\0\0\0");
    f.append(b"de").unwrap();
    f.flush().unwrap();
    assert_eq!(read(&fs, "/db/log").unwrap(), b"abcde\0\0\0");
    // Appends past the preallocated end grow the file as usual.
    f.append(b"fghij").unwrap();
    f.flush().unwrap();
    assert_eq!(read(&fs, "/db/log").unwrap(), b"abcdefghij");
}

#[test]
fn preallocating_zero_gives_the_zeros_back_but_never_appended_bytes() {
    let fs = fs();
    let mut f = preallocated_file(&fs);
    f.append(b"de").unwrap();
    f.flush().unwrap();
    f.preallocate(0).unwrap();
    assert_eq!(read(&fs, "/db/log").unwrap(), b"abcde");
}

#[test]
fn a_crash_keeps_the_synced_preallocation_or_the_latest_as_the_mode_says() {
    // The extension to 8 bytes is synced; a later one to 16 and the append "de" are not.
    let image = || {
        let fs = fs();
        let mut f = preallocated_file(&fs);
        f.append(b"de").unwrap();
        f.flush().unwrap();
        f.preallocate(16).unwrap();
        fs
    };
    let fs = image();
    fs.crash(CrashMode::DropUnsynced);
    assert_eq!(read(&fs, "/db/log").unwrap(), b"abc\0\0\0\0\0");
    let fs = image();
    fs.crash(CrashMode::KeepAll);
    let mut expected = b"abcde".to_vec();
    expected.resize(16, 0);
    assert_eq!(read(&fs, "/db/log").unwrap(), expected);
    // The zeros became ordinary bytes: a reader after the crash sees no difference.
    let mut seen = BTreeSet::new();
    for seed in 0..40 {
        let fs = image();
        fs.reseed(seed);
        fs.crash(CrashMode::KeepRandomPrefix);
        let bytes = read(&fs, "/db/log").unwrap();
        assert!(bytes.starts_with(b"abc"), "{bytes:?}");
        assert!(bytes[3..].iter().all(|&b| b == 0 || b"de".contains(&b)));
        seen.insert(bytes.len());
    }
    assert_eq!(
        seen,
        BTreeSet::from([8, 16]),
        "either extension survives a crash"
    );
}
