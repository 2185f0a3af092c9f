//! Regression (found by the corruption sweep, `every_kind_of_damage_to_every_file_is_detected`):
//! another table's bytes under a table's name (a stale copy, a misdirected restore) were
//! served as long as their size matched the manifest's: the only check at open. Now every
//! table's footer holds its own file number, and recovery checks it and the key range,
//! sequence range and counts against the manifest.

mod common;

use std::path::Path;

use common::contract::{sim_options, DIR};
use strata::fs::SimFs;
use strata::{Compression, Db, Error, Options};

fn options(fs: &SimFs) -> Options {
    sim_options(fs)
        .with_write_buffer_size(64 << 20)
        .with_compression(Compression::None)
}

fn key(i: u32) -> String {
    format!("key{i:04}")
}

fn value(round: u32, i: u32) -> String {
    format!("{round}-{i:04}-{}", "x".repeat(33))
}

#[test]
fn a_table_of_the_same_size_under_another_tables_name_is_corruption() {
    let fs = SimFs::new(5);
    let db = Db::open_with(DIR, options(&fs)).unwrap();
    // Sequence numbers of two bytes from here on, so both tables below have the same size.
    for _ in 0..150 {
        db.put("a", "filler").unwrap();
    }
    db.flush().unwrap();
    let before: Vec<String> = fs.names(Path::new(DIR));
    for round in 0..2 {
        for i in 0..100 {
            db.put(key(i), value(round, i)).unwrap();
        }
        db.flush().unwrap();
    }
    db.close().unwrap();
    let mut tables: Vec<String> = fs
        .names(Path::new(DIR))
        .into_iter()
        .filter(|n| n.ends_with(".sst") && !before.contains(n))
        .collect();
    tables.sort();
    let (older, newer) = (&tables[0], &tables[1]);
    let old_bytes = fs.contents(&Path::new(DIR).join(older)).unwrap();
    let new_len = fs.contents(&Path::new(DIR).join(newer)).unwrap().len();
    assert_eq!(
        old_bytes.len(),
        new_len,
        "the test needs tables of equal size"
    );

    fs.modify(&Path::new(DIR).join(newer), |c| *c = old_bytes.clone())
        .unwrap();
    let opts = options(&fs).with_create_if_missing(false);
    match Db::open_with(DIR, opts) {
        Err(e @ Error::Corruption { .. }) => {
            assert!(e.to_string().contains(newer.as_str()), "{e}");
        }
        Err(e) => panic!("not a corruption error: {e}"),
        Ok(db) => {
            for i in 0..100 {
                match db.get(key(i)) {
                    Ok(v) => assert_eq!(
                        v.as_deref(),
                        Some(value(1, i).as_bytes()),
                        "the older table's value was served for {}",
                        key(i)
                    ),
                    Err(e) => assert!(e.is_corruption(), "{e}"),
                }
            }
            panic!("another table's bytes under {newer} were accepted");
        }
    }
}
