#![no_main]
//! The chunker over documents the Markdown reader makes of arbitrary text, with options taken
//! from the first bytes: chunks lie inside their document, in order, on character boundaries,
//! trimmed, and within the token limit.

use std::path::Path;

use cairn_ingest::{chunk_document, ChunkOptions, TokenCounter, WordCounter};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let [a, b, c, rest @ ..] = data else { return };
    let options = ChunkOptions {
        max_tokens: usize::from(*a % 64) + 1,
        overlap_tokens: usize::from(*b % 32),
        min_section_tokens: usize::from(*c % 32),
    };
    let Ok(read) = cairn_ingest::read_bytes(Path::new("f.md"), rest) else {
        return;
    };
    let doc = &read.document;
    for chunk in chunk_document(doc, &WordCounter, &options) {
        let r = chunk.range.clone();
        assert!(r.start < r.end && r.end <= doc.text.len(), "{r:?}");
        assert!(doc.text.is_char_boundary(r.start) && doc.text.is_char_boundary(r.end));
        let piece = &doc.text[r];
        assert_eq!(piece.trim(), piece, "chunks are trimmed");
        // One overlong word may stand alone; otherwise the limit holds.
        let words = WordCounter.count(piece);
        assert!(words <= options.max_tokens || !piece.contains(char::is_whitespace));
    }
});
