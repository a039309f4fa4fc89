//! cairn-ingest: reading documents and cutting them into chunks.
//!
//! [`read_file`] turns a file — text, Markdown, HTML, PDF or source code — into a [`Document`]:
//! its text and the [`Section`]s that cover it, each knowing its heading path, page and first
//! line. [`chunk_document`] cuts a document into [`Chunk`]s no larger than the embedder's token
//! budget, counted by a [`TokenCounter`] the caller supplies (the embedder's own tokenizer).
//! [`walk`] lists the files under a directory the way git would; [`Watch`] says when some of
//! them change.
//!
//! The design decision to know: for text, Markdown and code a document's text *is* the file, so
//! a chunk's byte range and line numbers point into the file exactly; HTML and PDF are read into
//! extracted text (NFKC-normalised), and their line numbers count lines of that text (per page
//! for PDFs). Every failure names its file (and page) and costs only that file or page.

mod chunk;
mod document;
mod error;
mod html;
mod markdown;
mod pdf;
mod pdf_outline;
mod read;
mod walk;
mod watch;

pub use chunk::{
    chunk_document, fence_lines, is_fence, sentence_ranges, Chunk, ChunkOptions, TokenCounter,
    WordCounter,
};
pub use document::{DocKind, Document, Section};
pub use error::{Error, Result};
pub use read::{kind_of, read_bytes, read_bytes_with, read_file, Notice, Read, ReadOptions};
pub use walk::{walk, Found};
pub use watch::{Changes, Watch};

/// The sha256 of some bytes, as lowercase hex: the content hash of files and chunks.
#[must_use]
pub fn content_hash(bytes: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(bytes))
}

/// A chunk's id in a knowledge base: assigned when the chunk is stored, never reused.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
#[serde(transparent)]
pub struct ChunkId(pub u64);

impl std::fmt::Display for ChunkId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0)
    }
}
