//! The API's promises at its edges: locking, limits, closing, options.

use strata::{Db, Durability, Error, Options, WriteBatch, WriteOptions};

#[test]
fn a_second_open_of_the_same_directory_is_locked() {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open(dir.path()).unwrap();
    assert!(matches!(Db::open(dir.path()), Err(Error::Locked(_))));
    db.close().unwrap();
    // Closing releases the lock.
    Db::open(dir.path()).unwrap();
}

#[test]
fn empty_and_oversized_keys_and_values_are_invalid_arguments() {
    let dir = tempfile::tempdir().unwrap();
    let opts = Options {
        max_key_size: 16,
        max_value_size: 32,
        ..Options::default()
    };
    let db = Db::open_with(dir.path(), opts).unwrap();
    assert!(matches!(db.put("", "v"), Err(Error::InvalidArgument(_))));
    assert!(matches!(
        db.put([b'k'; 17], "v"),
        Err(Error::InvalidArgument(_))
    ));
    assert!(matches!(
        db.put("k", [0u8; 33]),
        Err(Error::InvalidArgument(_))
    ));
    db.put([b'k'; 16], [0u8; 32]).unwrap();
    // One bad op rejects the whole batch.
    let mut b = WriteBatch::new();
    b.put("good", "v").put([b'x'; 17], "v");
    assert!(db.write(b).is_err());
    assert_eq!(db.get("good").unwrap(), None);
    let msg = db.put("", "v").unwrap_err().to_string();
    assert!(msg.contains("empty"), "{msg}");
}

#[test]
fn every_call_after_close_fails_with_closed() {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open(dir.path()).unwrap();
    let other = db.clone();
    db.put("k", "v").unwrap();
    db.close().unwrap();
    assert!(matches!(other.put("k", "v"), Err(Error::Closed)));
    assert!(matches!(other.get("k"), Err(Error::Closed)));
    assert!(matches!(other.flush(), Err(Error::Closed)));
}

#[test]
fn close_leaves_a_clean_directory_that_reopens_with_everything() {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open(dir.path()).unwrap();
    for i in 0..1000 {
        db.put(format!("k{i:04}"), format!("v{i}")).unwrap();
    }
    db.close().unwrap();
    let mut names: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    assert!(names.iter().all(|n| !n.ends_with(".tmp")), "{names:?}");
    assert_eq!(
        names.iter().filter(|n| n.starts_with("MANIFEST-")).count(),
        1,
        "{names:?}"
    );
    assert!(
        names.iter().any(|n| n.ends_with(".sst")),
        "close flushed the memtable: {names:?}"
    );
    let db = Db::open(dir.path()).unwrap();
    assert_eq!(db.iter().count(), 1000);
    assert_eq!(db.get("k0999").unwrap().as_deref(), Some(&b"v999"[..]));
}

#[test]
fn options_create_if_missing_and_error_if_exists_are_honoured() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nothing-here");
    let err =
        Db::open_with(&missing, Options::default().with_create_if_missing(false)).unwrap_err();
    assert!(matches!(err, Error::InvalidArgument(_)), "{err}");
    Db::open(dir.path()).unwrap().close().unwrap();
    let err = Db::open_with(dir.path(), Options::default().with_error_if_exists(true)).unwrap_err();
    assert!(matches!(err, Error::InvalidArgument(_)), "{err}");
}

#[test]
fn per_write_durability_overrides_the_default() {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open_with(
        dir.path(),
        Options::default().with_durability(Durability::NoSync),
    )
    .unwrap();
    let mut b = WriteBatch::new();
    b.put("a", "1");
    db.write_opt(b, WriteOptions::sync()).unwrap();
    db.put("b", "2").unwrap();
    assert_eq!(db.get("a").unwrap().as_deref(), Some(&b"1"[..]));
    assert_eq!(db.get("b").unwrap().as_deref(), Some(&b"2"[..]));
}

#[test]
fn db_is_send_sync_and_cheap_to_clone() {
    fn assert_send_sync<T: Send + Sync + Clone>() {}
    assert_send_sync::<Db>();
    fn assert_send<T: Send>() {}
    assert_send::<strata::Snapshot>();
    assert_send::<strata::DbIter>();
}

#[test]
fn a_snapshot_does_not_see_later_writes_even_after_flush() {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open(dir.path()).unwrap();
    db.put("k", "old").unwrap();
    db.put("gone", "x").unwrap();
    let snap = db.snapshot();
    db.put("k", "new").unwrap();
    db.delete("gone").unwrap();
    db.put("later", "y").unwrap();
    db.flush().unwrap();
    assert_eq!(snap.get("k").unwrap().as_deref(), Some(&b"old"[..]));
    assert_eq!(snap.get("gone").unwrap().as_deref(), Some(&b"x"[..]));
    assert_eq!(snap.get("later").unwrap(), None);
    let keys: Vec<_> = snap.iter().map(|r| r.unwrap().0).collect();
    assert_eq!(
        keys,
        vec![bytes::Bytes::from("gone"), bytes::Bytes::from("k")]
    );
    assert_eq!(db.get("k").unwrap().as_deref(), Some(&b"new"[..]));
}

#[test]
fn iterators_meet_in_the_middle_when_both_ends_are_consumed() {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open(dir.path()).unwrap();
    for i in 0..10 {
        db.put(format!("k{i}"), "v").unwrap();
    }
    let mut it = db.iter();
    let mut seen = Vec::new();
    loop {
        match it.next() {
            Some(r) => seen.push(r.unwrap().0),
            None => break,
        }
        match it.next_back() {
            Some(r) => seen.push(r.unwrap().0),
            None => break,
        }
    }
    seen.sort();
    let want: Vec<_> = (0..10)
        .map(|i| bytes::Bytes::from(format!("k{i}")))
        .collect();
    assert_eq!(seen, want, "each key exactly once");
}
