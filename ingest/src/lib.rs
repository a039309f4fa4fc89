//! cairn-ingest: document readers and chunking; owns `Document`, `Chunk` and `ChunkId`.
//!
//! Planned (issue "Ingest and hybrid index"): readers for text, Markdown, HTML, PDF (with page
//! numbers) and source code; structure-aware chunking bounded by the embedder's token limit.
//! Nothing is implemented here yet; the crate exists so that the workspace has its final shape
//! and dependency direction from the start.
