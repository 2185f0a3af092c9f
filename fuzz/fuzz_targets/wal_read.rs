//! Raw bytes as a record log under every tail policy: never a panic, and what is returned is
//! consistent (records in order, inside the valid prefix).
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use strata::wal::{read_log, TailPolicy};

fuzz_target!(|data: &[u8]| {
    for policy in [TailPolicy::Strict, TailPolicy::TruncatedTailOk, TailPolicy::DamagedTailOk] {
        if let Ok(contents) = read_log(data, Path::new("fuzz.log"), policy) {
            assert!(contents.valid_len as usize <= data.len());
            let mut end = 0u64;
            for r in &contents.records {
                assert!(r.offset >= end, "records overlap");
                end = r.offset + 9 + r.payload.len() as u64;
            }
            // Marks (sync, earlier-segments-synced, previous-segment) are not records, so
            // the valid prefix may end with marks after the last record.
            assert!(end <= contents.valid_len, "a record past the valid prefix");
            if policy == TailPolicy::Strict {
                assert_eq!(contents.valid_len as usize, data.len());
            }
        }
    }
});
