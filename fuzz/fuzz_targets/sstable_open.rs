//! Raw bytes as an SSTable file: open, get, iterate and verify never panic.
#![no_main]

use std::io;
use std::path::PathBuf;
use std::sync::Arc;

use libfuzzer_sys::fuzz_target;
use strata::cache::BlockCache;
use strata::fs::RandomAccessFile;
use strata::iter::InternalIterator;
use strata::sstable::Table;

struct Mem(Vec<u8>);

impl RandomAccessFile for Mem {
    fn read_at(&self, offset: u64, len: usize) -> io::Result<Vec<u8>> {
        let start = usize::try_from(offset).map_err(|_| io::ErrorKind::UnexpectedEof)?;
        let end = start.checked_add(len).ok_or(io::ErrorKind::UnexpectedEof)?;
        self.0.get(start..end).map(<[u8]>::to_vec).ok_or_else(|| io::ErrorKind::UnexpectedEof.into())
    }
    fn size(&self) -> io::Result<u64> {
        Ok(self.0.len() as u64)
    }
}

fuzz_target!(|data: &[u8]| {
    let cache = Arc::new(BlockCache::new(1 << 20));
    let file = Arc::new(Mem(data.to_vec()));
    let Ok(table) = Table::open(file, PathBuf::from("fuzz.sst"), 1, cache) else { return };
    let _ = table.get(b"key", u64::MAX >> 8);
    let mut it = table.iter();
    if it.seek_to_first().is_ok() {
        let mut n = 0;
        while it.valid() && n < 100_000 {
            n += 1;
            if it.next().is_err() {
                break;
            }
        }
    }
    let _ = table.verify();
});
