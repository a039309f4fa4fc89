#![no_main]
//! The prompt-cache file: anything but a whole file written by cairn is refused, and what is
//! accepted has exactly the sizes its header claims. Each input is tried as it is and with its
//! SHA-256 appended, so that the body's parsing is reached past the checksum.

use cairn_engine::prompt_cache::parse;
use libfuzzer_sys::fuzz_target;
use sha2::{Digest, Sha256};

fuzz_target!(|data: &[u8]| {
    let mut summed = data.to_vec();
    summed.extend_from_slice(&Sha256::digest(data));
    for bytes in [data, &summed[..]] {
        if let Some((tokens, floats)) = parse(bytes) {
            assert_eq!(
                bytes.len(),
                8 + 8 + tokens.len() * 4 + 8 + floats.len() * 4 + 32
            );
        }
    }
});
