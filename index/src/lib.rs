//! cairn-index: a knowledge base on disk — BM25 (tantivy), vectors (hnsw_rs) and a metadata
//! store (redb) — with one [`Writer`] and any number of [`Reader`]s.
//!
//! A knowledge base is a directory:
//!
//! ```text
//! meta.redb        manifest, sources, documents, chunks (with text), vectors, skipped files
//! bm25/            tantivy index of chunk text and titles
//! vectors/         hnsw_rs graph dump (g<generation>.hnsw.graph/.data)
//! writer.lock      held by the one writer
//! ```
//!
//! Nothing inside holds an absolute path that queries need: documents are keyed
//! `source/relative/path`, so a knowledge base can be moved, copied or shipped, and opens
//! read-only from a read-only location.
//!
//! The design decision to know: the redb commit is the commit point. BM25 commits first and may
//! run ahead; readers only trust chunk ids the store knows, and the next writer re-syncs BM25
//! from the stored texts. Vectors live in the store too; the graph is a rebuildable cache over
//! them (see [`writer`] for the whole contract).

mod bm25;
mod canonical;
mod error;
mod flat;
mod reader;
mod store;
mod vectors;
pub mod writer;

pub use cairn_ingest::{ChunkId, ChunkOptions, TokenCounter};
pub use canonical::{write_canonical, CanonicalOptions};
pub use error::{Error, Result};
pub use reader::{read_manifest, Reader, Status};
pub use store::{
    file_of, ChunkRecord, DocRecord, EmbedderId, GraphState, Manifest, SkipRecord, Source,
    FORMAT_VERSION, GRAPH_VECTORS_FORMAT_VERSION, STORE_FILE,
};
pub use vectors::GRAPH_MIN_POINTS;
pub use writer::{
    writer_holder, AddOptions, AddProgress, AddReport, FileOutcome, NoProgress, Writer,
};

pub(crate) const BM25_DIR: &str = "bm25";
pub(crate) const VECTORS_DIR: &str = "vectors";
pub(crate) const LOCK_FILE: &str = "writer.lock";

/// Turns text into unit vectors; the knowledge base stores what it returns.
///
/// Defined here, where chunks are embedded; the binary supplies the real model.
pub trait Embedder: Send + Sync {
    /// Which model, with its weights hash: vectors of different ids never mix.
    fn id(&self) -> EmbedderId;
    /// The model's tokenizer as a token counter, for the chunker's budget.
    fn counter(&self) -> &dyn TokenCounter;
    /// One unit vector per text, in order.
    fn embed(&self, texts: &[&str]) -> std::result::Result<Vec<Vec<f32>>, String>;
}
