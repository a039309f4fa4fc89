//! cairn-retriever: hybrid search, fusion and context assembly for the generator.
//!
//! Planned (issues "Ingest and hybrid index" and "Grounded answers"). Nothing is implemented here
//! yet; the crate exists so that the workspace has its final shape from the start.
