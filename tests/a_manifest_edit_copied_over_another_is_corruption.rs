//! Regression (found by the corruption sweep, `every_kind_of_damage_to_every_file_is_detected`):
//! a manifest edit copied over another edit of the same length (or over a later part of the
//! manifest, the rest cut off as a damaged tail) kept its valid checksum, so replay applied it
//! twice or out of order and silently lost the edits it overwrote: a flushed table vanished
//! with its keys. Now every edit after the snapshot carries its position (manifest number and
//! index), the manifest's layout (each edit right after a sync mark) is checked, a table added
//! twice is refused, and the counters may not go back.

mod common;

use std::path::Path;

use common::contract::{sim_options, DIR};
use common::corruption::parse_log;
use strata::fs::{CrashMode, SimFs};
use strata::{Db, Error, Options};

fn options(fs: &SimFs) -> Options {
    sim_options(fs).with_write_buffer_size(64 << 20)
}

/// Three flushes of ten keys each (`r0-*`, `r1-*`, `r2-*`): a manifest of a snapshot and
/// three flush edits of the same length, as after a process crash.
fn image() -> (SimFs, String) {
    let fs = SimFs::new(9);
    let db = Db::open_with(DIR, options(&fs)).unwrap();
    for round in 0..3 {
        for i in 0..10 {
            db.put(format!("r{round}-{i}"), format!("value {round} {i}"))
                .unwrap();
        }
        db.flush().unwrap();
    }
    let image = fs.fork();
    image.crash(CrashMode::KeepAll);
    drop(db);
    let manifest = image
        .names(Path::new(DIR))
        .into_iter()
        .find(|n| n.starts_with("MANIFEST-"))
        .unwrap();
    (image, manifest)
}

/// The manifest's edits (sync marks left out) as byte ranges.
fn manifest_edits(fs: &SimFs, manifest: &str) -> (Vec<u8>, Vec<std::ops::Range<usize>>) {
    let bytes = fs.contents(&Path::new(DIR).join(manifest)).unwrap();
    let edits = parse_log(&bytes)
        .into_iter()
        .filter(|r| !r.mark)
        .map(|r| r.range)
        .collect();
    (bytes, edits)
}

fn assert_open_reports_corruption(fs: &SimFs, what: &str) {
    match Db::open_with(DIR, options(fs).with_create_if_missing(false)) {
        Err(e @ Error::Corruption { .. }) => assert!(e.to_string().contains("MANIFEST"), "{e}"),
        Err(e) => panic!("{what}: not a corruption error: {e}"),
        Ok(db) => {
            let missing: Vec<String> = (0..3)
                .flat_map(|r| (0..10).map(move |i| format!("r{r}-{i}")))
                .filter(|k| !matches!(db.get(k), Ok(Some(_)) | Err(_)))
                .collect();
            panic!("{what} was accepted; keys lost: {missing:?}");
        }
    }
}

#[test]
fn the_undamaged_manifest_replays() {
    let (fs, _) = image();
    let db = Db::open_with(DIR, options(&fs)).unwrap();
    for r in 0..3 {
        for i in 0..10 {
            assert!(db.get(format!("r{r}-{i}")).unwrap().is_some());
        }
    }
}

#[test]
fn an_edit_copied_over_the_next_edit_is_corruption() {
    let (fs, manifest) = image();
    let (bytes, edits) = manifest_edits(&fs, &manifest);
    assert_eq!(edits.len(), 4);
    let (first, second) = (edits[1].clone(), edits[2].clone());
    assert_eq!(first.len(), second.len(), "flush edits of equal length");
    fs.modify(&Path::new(DIR).join(&manifest), |c| {
        c[second.clone()].copy_from_slice(&bytes[first.clone()])
    })
    .unwrap();
    assert_open_reports_corruption(&fs, "a flush edit applied twice");
}

#[test]
fn the_last_edit_copied_over_an_earlier_one_is_corruption() {
    let (fs, manifest) = image();
    let (bytes, edits) = manifest_edits(&fs, &manifest);
    let (earlier, last) = (edits[2].clone(), edits[3].clone());
    assert_eq!(earlier.len(), last.len());
    fs.modify(&Path::new(DIR).join(&manifest), |c| {
        c[earlier.clone()].copy_from_slice(&bytes[last.clone()])
    })
    .unwrap();
    assert_open_reports_corruption(&fs, "the last edit in an earlier one's place");
    // The same, with everything after the copy cut off as if it were a damaged tail.
    let (fs, manifest) = image();
    let (bytes, edits) = manifest_edits(&fs, &manifest);
    let (earlier, last) = (edits[2].clone(), edits[3].clone());
    fs.modify(&Path::new(DIR).join(&manifest), |c| {
        c[earlier.clone()].copy_from_slice(&bytes[last.clone()]);
        c.truncate(earlier.end + 3);
    })
    .unwrap();
    assert_open_reports_corruption(&fs, "the last edit in an earlier one's place, tail cut");
}
