//! Raw bytes as a data block: decoding and walking it both ways never panics.
#![no_main]

use std::path::Path;
use std::sync::Arc;

use libfuzzer_sys::fuzz_target;
use strata::iter::InternalIterator;
use strata::sstable::block::Block;

fuzz_target!(|data: &[u8]| {
    let path: Arc<Path> = Arc::from(Path::new("fuzz.sst"));
    let Ok(block) = Block::new(bytes::Bytes::copy_from_slice(data), path, 0) else { return };
    let block = Arc::new(block);
    let mut it = block.iter();
    let mut forward = 0usize;
    if it.seek_to_first().is_ok() {
        while it.valid() && forward < 100_000 {
            let _ = (it.key(), it.value());
            forward += 1;
            if it.next().is_err() {
                break;
            }
        }
    }
    if it.seek_to_last().is_ok() {
        let mut n = 0;
        while it.valid() && n < 100_000 {
            n += 1;
            if it.prev().is_err() {
                break;
            }
        }
    }
    let _ = it.seek(b"key\x00\x00\x00\x00\x00\x00\x00\x00");
    let _ = it.seek_for_prev(b"key\xff\xff\xff\xff\xff\xff\xff\xff");
});
