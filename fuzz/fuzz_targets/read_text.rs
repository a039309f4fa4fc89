#![no_main]
//! Encoding detection and plain-text reading, for a known text extension, a known code extension
//! and an unknown one (which sniffs for binary).

mod common;

use std::path::Path;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    for name in ["f.txt", "f.rs", "f.unknown", "README"] {
        let read = cairn_ingest::read_bytes(Path::new(name), data);
        common::check(&read, name);
    }
});
