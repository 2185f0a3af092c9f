//! Raw bytes as a logged write batch: decoding never panics and never returns more ops than
//! the bytes can hold.
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use strata::batch::WriteBatch;

fuzz_target!(|data: &[u8]| {
    if let Ok(batch) = WriteBatch::decode(bytes::Bytes::copy_from_slice(data), Path::new("fuzz.log"), 0) {
        // Each op takes at least two bytes (kind, key length).
        assert!(batch.ops.len() * 2 <= data.len().saturating_sub(12));
    }
});
