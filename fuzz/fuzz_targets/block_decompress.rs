//! Raw bytes as a compressed block behind a valid checksum: decompression never panics and
//! never allocates past the format's bound; whatever it returns has the claimed size.
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use strata::sstable::compress::decompress_block;

fuzz_target!(|data: &[u8]| {
    let Some((&block_type, stored)) = data.split_first() else { return };
    if let Ok(raw) = decompress_block(block_type % 3, stored.to_vec(), Path::new("fuzz.sst"), 0) {
        assert!(raw.len() <= (65 << 20), "decompressed past the bound");
    }
});
