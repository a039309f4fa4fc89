//! cairn-index: tantivy BM25 + hnsw_rs vectors + a metadata store, with a writer/reader split.
//!
//! Planned (issue "Ingest and hybrid index"). Nothing is implemented here yet; the crate exists so
//! that the workspace has its final shape and dependency direction from the start.
