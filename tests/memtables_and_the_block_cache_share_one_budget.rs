//! With `Options::memtables_share_cache_budget`, `block_cache_capacity` covers the block cache
//! and the memtables together: memtable bytes are lent out of the cache as writes fill them
//! (the cache gives up blocks at once, even when no read comes to evict them), and a flush
//! gives the loan back so reads can fill the cache again.

use strata::{Db, Options};

const MIB: usize = 1 << 20;
const CAPACITY: usize = 16 * MIB;
const VALUE: usize = 1024;

fn key(i: usize) -> String {
    format!("key{i:08}")
}

fn read_all(db: &Db, n: usize) {
    for i in 0..n {
        let v = db.get(key(i)).unwrap().expect("a written key");
        assert_eq!(v.len(), VALUE);
    }
}

#[test]
fn memtables_borrow_from_the_cache_and_a_flush_gives_it_back() {
    let dir = tempfile::tempdir().unwrap();
    let opts = Options::default()
        .with_block_cache_capacity(CAPACITY)
        .with_memtables_share_cache_budget(true)
        .with_write_buffer_size(8 * MIB)
        .with_idle_compaction_delay(None);
    let db = Db::open_with(dir.path(), opts).unwrap();
    let value = vec![7u8; VALUE];

    // 12 MiB in tables, read back: the cache fills (the memtable is empty, nothing is lent).
    let loaded = 12 * MIB / VALUE;
    for i in 0..loaded {
        db.put(key(i), &value).unwrap();
    }
    db.flush().unwrap();
    read_all(&db, loaded);
    let before = db.stats().block_cache.usage_bytes as usize;
    assert!(
        before > 10 * MIB,
        "cache holds {before} bytes after reading 12 MiB"
    );

    // 6 MiB of writes and no reads: the cache shrinks as the memtable grows, so both together
    // stay within the budget (to within the MiB step of the loan).
    let more = 6 * MIB / VALUE;
    for i in loaded..loaded + more {
        db.put(key(i), &value).unwrap();
    }
    let stats = db.stats();
    let cache = stats.block_cache.usage_bytes as usize;
    let memtables = stats.memtable_bytes + stats.immutable_bytes;
    assert!(memtables > 5 * MIB, "memtables hold {memtables} bytes");
    assert!(
        cache + memtables <= CAPACITY + MIB,
        "cache {cache} + memtables {memtables} over the budget of {CAPACITY}"
    );

    // The flush gives the loan back: reads fill the cache past what it was allowed above.
    db.flush().unwrap();
    read_all(&db, loaded + more);
    let after = db.stats().block_cache.usage_bytes as usize;
    assert!(
        after > CAPACITY - memtables + MIB,
        "cache holds {after} bytes after the flush; the loan was {memtables}"
    );
    db.close().unwrap();
}
