#![no_main]
//! The html reader on arbitrary bytes: no panic, no hang, sections inside the text.

mod common;

use std::path::Path;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let read = cairn_ingest::read_bytes(Path::new("f.html"), data);
    common::check(&read, "f.html");
});
