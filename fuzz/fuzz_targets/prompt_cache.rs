#![no_main]
//! The prompt-cache file: anything but a whole file written by cairn is refused, and what is
//! accepted has exactly the sizes its header claims.

use cairn_engine::prompt_cache::parse;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Some((tokens, floats)) = parse(data) {
        assert_eq!(
            data.len(),
            8 + 8 + tokens.len() * 4 + 8 + floats.len() * 4 + 32
        );
    }
});
