//! Regression (found by the corruption sweep, `every_kind_of_damage_to_every_file_is_detected`):
//! a data block written at another block's offset of the same size, or copied from another
//! table at the same offset, kept its own valid checksum, so the table served the wrong
//! block's entries: a newer value hidden behind an older table's, or another table's old value.
//! Since table format 2 every block's checksum is bound to its table's file number and its own
//! offset, and such a block is `Corruption`.

mod common;

use std::path::Path;

use common::contract::{sim_options, DIR};
use common::corruption::{table_regions, Region};
use strata::fs::SimFs;
use strata::{Compression, Db, Error, Options};

/// Blocks of equal size: fixed-size keys and incompressible values, uncompressed, with a
/// restart at every entry (no shared key prefixes), so every full block holds the same number
/// of equal entries.
fn options(fs: &SimFs) -> Options {
    let mut o = sim_options(fs)
        .with_write_buffer_size(64 << 20)
        .with_compression(Compression::None);
    o.block_restart_interval = 1;
    o
}

fn key(i: u32) -> String {
    format!("key{i:04}")
}

fn value(round: u32, i: u32) -> String {
    // 40 bytes, different in each round.
    format!("{round}-{i:04}-{}", "x".repeat(33))
}

/// Two level-0 tables holding the same 100 keys, the newer with round 1's values.
fn two_tables() -> (SimFs, Vec<String>) {
    let fs = SimFs::new(11);
    let db = Db::open_with(DIR, options(&fs)).unwrap();
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
        .filter(|n| n.ends_with(".sst"))
        .collect();
    tables.sort();
    assert_eq!(tables.len(), 2, "{tables:?}");
    (fs, tables)
}

fn data_blocks(fs: &SimFs, table: &str) -> (Vec<u8>, Vec<std::ops::Range<usize>>) {
    let bytes = fs.contents(&Path::new(DIR).join(table)).unwrap();
    let blocks = table_regions(table, &bytes)
        .into_iter()
        .filter(|(r, _)| *r == Region::Data)
        .map(|(_, r)| r)
        .collect();
    (bytes, blocks)
}

/// Open and read everything: every read either fails with Corruption or returns round 1's
/// value. Returns whether any read reported the damage.
fn reads_never_serve_a_wrong_value(fs: &SimFs) -> bool {
    let opts = options(fs).with_create_if_missing(false);
    let db = match Db::open_with(DIR, opts) {
        Ok(db) => db,
        Err(e) => {
            assert!(e.is_corruption(), "{e}");
            return true;
        }
    };
    let mut detected = false;
    let mut check = |r: Result<(), Error>| match r {
        Ok(()) => {}
        Err(e) => {
            assert!(e.is_corruption(), "{e}");
            detected = true;
        }
    };
    for i in 0..100 {
        check(db.get(key(i)).map(|v| {
            assert_eq!(
                v.as_deref(),
                Some(value(1, i).as_bytes()),
                "get({}) served a wrong value",
                key(i)
            )
        }));
    }
    for item in db.iter() {
        check(item.map(|(k, v)| {
            let i: u32 = std::str::from_utf8(&k[3..]).unwrap().parse().unwrap();
            assert_eq!(
                &v[..],
                value(1, i).as_bytes(),
                "the scan served a wrong value"
            );
        }));
    }
    check(db.verify());
    detected
}

#[test]
fn a_block_copied_over_another_block_of_the_same_size_is_corruption() {
    let (fs, tables) = two_tables();
    let newer = &tables[1];
    let (bytes, blocks) = data_blocks(&fs, newer);
    // Every full block has the same size; copy the second over the third.
    let (from, to) = (blocks[1].clone(), blocks[2].clone());
    assert_eq!(from.len(), to.len(), "the test needs blocks of equal size");
    let damaged = fs.fork();
    damaged
        .modify(&Path::new(DIR).join(newer), |c| {
            c[to.clone()].copy_from_slice(&bytes[from.clone()])
        })
        .unwrap();
    assert!(
        reads_never_serve_a_wrong_value(&damaged),
        "the misplaced block went unnoticed"
    );
}

#[test]
fn a_block_copied_from_another_table_at_the_same_offset_is_corruption() {
    let (fs, tables) = two_tables();
    let (older, newer) = (&tables[0], &tables[1]);
    let (old_bytes, old_blocks) = data_blocks(&fs, older);
    let (_, new_blocks) = data_blocks(&fs, newer);
    for (a, b) in old_blocks.iter().zip(&new_blocks) {
        assert_eq!(a, b, "the two tables have the same block layout");
    }
    for block in &new_blocks {
        let damaged = fs.fork();
        damaged
            .modify(&Path::new(DIR).join(newer), |c| {
                c[block.clone()].copy_from_slice(&old_bytes[block.clone()])
            })
            .unwrap();
        assert!(
            reads_never_serve_a_wrong_value(&damaged),
            "the older table's block at {block:?} went unnoticed"
        );
    }
}

/// A bound checksum still reads an undamaged table (the copy above is the only change).
#[test]
fn the_undamaged_tables_read_back() {
    let (fs, _) = two_tables();
    assert!(!reads_never_serve_a_wrong_value(&fs.fork()));
}
