//! Raw bytes as a version edit: decoding never panics, and what decodes re-encodes to an edit
//! that decodes to the same value.
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use strata::manifest::VersionEdit;

fuzz_target!(|data: &[u8]| {
    if let Ok(edit) = VersionEdit::decode(data, Path::new("MANIFEST-fuzz"), 0) {
        let again = VersionEdit::decode(&edit.encode(), Path::new("MANIFEST-fuzz"), 0).expect("re-encoded edit decodes");
        assert_eq!(edit, again);
    }
});
