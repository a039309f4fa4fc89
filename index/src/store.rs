//! The metadata store (redb): manifest, sources, documents, chunks and vectors.
//!
//! redb commits are atomic and durable, and a read transaction is a snapshot, so the store's
//! commit is the knowledge base's commit point: whatever BM25 or the vector graph hold beyond
//! it is ignored by readers and repaired by the next writer.

use std::path::{Path, PathBuf};

use redb::{ReadableTable, TableDefinition};
use serde::{de::DeserializeOwned, Deserialize, Serialize};

use crate::error::{Error, Result};

pub(crate) const MANIFEST: TableDefinition<&str, &str> = TableDefinition::new("manifest");
pub(crate) const SOURCES: TableDefinition<&str, &str> = TableDefinition::new("sources");
pub(crate) const DOCUMENTS: TableDefinition<&str, &str> = TableDefinition::new("documents");
pub(crate) const CHUNKS: TableDefinition<u64, &str> = TableDefinition::new("chunks");
pub(crate) const VECTORS: TableDefinition<u64, &[u8]> = TableDefinition::new("vectors");
pub(crate) const HASHES: TableDefinition<&str, u64> = TableDefinition::new("chunk_hashes");
pub(crate) const SKIPPED: TableDefinition<&str, &str> = TableDefinition::new("skipped");
/// Chunks deleted since the vector graph was built: still in the graph, skipped by searches.
pub(crate) const TOMBSTONES: TableDefinition<u64, ()> = TableDefinition::new("graph_tombstones");

/// The on-disk format version of a working knowledge base, which this build writes and reads.
pub const FORMAT_VERSION: u32 = 1;
/// The format of a canonical copy (what a pack holds) whose vectors are kept once, in its
/// mapped graph: its store holds only the vectors the graph lacks. This build reads it as it
/// reads [`FORMAT_VERSION`], and never writes to it ([`Error::ReadOnlyCopy`]); earlier builds
/// refuse it, rather than find no vectors in the store.
pub const GRAPH_VECTORS_FORMAT_VERSION: u32 = 2;

/// Identifies the embedding model whose vectors a knowledge base holds.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct EmbedderId {
    /// A readable model name, e.g. `all-MiniLM-L6-v2`.
    pub model: String,
    /// The sha256 of the weights: the fingerprint that decides whether vectors mix.
    pub weights_sha256: String,
    /// Vector dimension.
    pub dim: usize,
}

impl std::fmt::Display for EmbedderId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} (weights {}…, {} dims)",
            self.model,
            &self.weights_sha256[..self.weights_sha256.len().min(12)],
            self.dim
        )
    }
}

/// Where the persisted vector graph is and what it covers.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct GraphState {
    /// Basename of the hnsw_rs dump in `vectors/`.
    pub basename: String,
    /// Every live chunk with an id at or below this is in the graph.
    pub max_id: u64,
    /// Points in the graph, dead ones included.
    pub points: u64,
}

/// The knowledge base's manifest: format, model, chunker settings and commit state.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Manifest {
    /// [`FORMAT_VERSION`] of the writer.
    pub format_version: u32,
    /// The embedding model.
    pub embedder: EmbedderId,
    /// Chunker settings documents were cut with.
    pub chunking: cairn_ingest::ChunkOptions,
    /// Commit counter; BM25 commits carry it as their payload.
    pub generation: u64,
    /// The next chunk id to hand out (ids are never reused).
    pub next_chunk_id: u64,
    /// The vector graph, if one has been built.
    pub graph: Option<GraphState>,
    /// Unix time of the last commit, in seconds.
    pub committed_at: u64,
}

/// A folder or file the user added; documents are stored relative to it.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Source {
    /// The name documents are listed under (the folder's or file's name, made unique).
    pub name: String,
    /// Where it was on disk when added (only used to find it again on re-add; may go stale
    /// when a knowledge base is moved or shared, which is fine).
    pub path: PathBuf,
}

/// The file on this machine behind a document key (`SOURCE-NAME/relative/path`, or a source's
/// own name for a single file), if it is still there; `None` for packs' documents.
#[must_use]
pub fn file_of(sources: &[Source], doc: &str) -> Option<PathBuf> {
    // Names may hold folders ("rust-reference/src"); no name is a folder of another.
    let (root, rest) = sources.iter().find_map(|s| {
        let rest = doc.strip_prefix(s.name.as_str())?;
        (rest.is_empty() || rest.starts_with('/')).then(|| (&s.path, rest.trim_start_matches('/')))
    })?;
    let path = if rest.is_empty() {
        root.clone()
    } else {
        root.join(rest)
    };
    path.is_file().then_some(path)
}

/// One indexed document.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct DocRecord {
    /// `source/relative/path`, the document's key and display path.
    pub key: String,
    /// What it was read as.
    pub kind: cairn_ingest::DocKind,
    /// Its title.
    pub title: String,
    /// File size in bytes when read.
    pub size: u64,
    /// Modification time (ns since the epoch) when read; a quick "unchanged" check.
    pub mtime_ns: u128,
    /// sha256 of the file's bytes.
    pub sha256: String,
    /// Its chunks, in text order.
    pub chunks: Vec<u64>,
    /// Notices from reading (pages without text…).
    pub notices: Vec<String>,
    /// The version of the reader it was read with ([`cairn_ingest::DocKind::reader_version`]);
    /// absent, as in records from before versions, for 0.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub reader: u32,
}

#[allow(clippy::trivially_copy_pass_by_ref)] // serde's `skip_serializing_if` passes a reference
fn is_zero(v: &u32) -> bool {
    *v == 0
}

impl DocRecord {
    /// Whether it was read by the current reader of its kind (else `add` reads it again).
    #[must_use]
    pub fn read_by_current_reader(&self) -> bool {
        self.reader == self.kind.reader_version()
    }
}

/// One chunk with its text and where it came from.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct ChunkRecord {
    /// The document's key.
    pub doc: String,
    /// sha256 of the text.
    pub hash: String,
    /// The text.
    pub text: String,
    /// Heading path.
    pub heading: Vec<String>,
    /// Page (PDFs).
    pub page: Option<u32>,
    /// First and last line.
    pub lines: (u32, u32),
    /// Byte range in the document's text.
    pub range: (usize, usize),
    /// The chunk begins inside a fenced code block (`cairn_ingest::Chunk::in_code`); absent,
    /// and so false, in records written before it was kept.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub in_code: bool,
}

/// A file that could not be indexed, from the last run that saw it.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct SkipRecord {
    /// Short reason (`binary`, `too-large`, …).
    pub reason: String,
    /// The full message.
    pub message: String,
}

pub(crate) fn store_err(path: &Path) -> impl Fn(redb::Error) -> Error + '_ {
    move |e| Error::Store {
        path: path.to_owned(),
        message: e.to_string(),
    }
}

pub(crate) fn to_json<T: Serialize>(v: &T) -> String {
    serde_json::to_string(v).expect("records serialize")
}

pub(crate) fn from_json<T: DeserializeOwned>(path: &Path, s: &str) -> Result<T> {
    serde_json::from_str(s).map_err(|e| Error::Corrupt {
        path: path.to_owned(),
        message: e.to_string(),
    })
}

pub(crate) fn vector_bytes(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

pub(crate) fn bytes_vector(b: &[u8]) -> Vec<f32> {
    b.chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect()
}

/// Reads the manifest from a read transaction, if the store has one.
pub(crate) fn read_manifest(path: &Path, txn: &redb::ReadTransaction) -> Result<Option<Manifest>> {
    let table = match txn.open_table(MANIFEST) {
        Ok(t) => t,
        Err(redb::TableError::TableDoesNotExist(_)) => return Ok(None),
        Err(e) => return Err(store_err(path)(e.into())),
    };
    let Some(v) = table
        .get("manifest")
        .map_err(|e| store_err(path)(e.into()))?
    else {
        return Ok(None);
    };
    let raw: serde_json::Value = from_json(path, v.value())?;
    let version = raw["format_version"].as_u64().unwrap_or(0) as u32;
    if version != FORMAT_VERSION && version != GRAPH_VECTORS_FORMAT_VERSION {
        return Err(Error::FormatVersion {
            path: path.to_owned(),
            found: version,
            expected: FORMAT_VERSION,
        });
    }
    from_json(path, v.value()).map(Some)
}

/// Opens the store read-only, sharing it with a concurrent writer.
///
/// A store whose writer was killed needs redb's repair before a read-only open succeeds. If no
/// writer is running (the writer lock is free), the reader runs that repair itself — it only
/// rebuilds redb's allocator state, never touching committed data — and then opens read-only.
pub(crate) fn open_read_only(dir: &Path, path: &Path) -> Result<redb::ReadOnlyDatabase> {
    let open = || {
        redb::Builder::new()
            .set_concurrency_mode(redb::ConcurrencyMode::SingleWriter)
            .open_read_only(path)
    };
    match open() {
        Ok(db) => Ok(db),
        Err(redb::DatabaseError::RepairAborted) => {
            let lock_path = dir.join(crate::LOCK_FILE);
            let interrupted = || {
                Error::Store {
                path: path.to_owned(),
                message: "the last write was interrupted and the store needs a repair, which needs write access; run `cairn add` on it from a writable location".into(),
            }
            };
            let lock = std::fs::OpenOptions::new()
                .write(true)
                .open(&lock_path)
                .map_err(|_| interrupted())?;
            if lock.try_lock().is_ok() {
                drop(open_writable(path).map_err(|e| match e {
                    Error::Store { message, .. } if crate::error::says_disk_full(&message) => Error::Store {
                        path: path.to_owned(),
                        message: "the last write was cut short and the store needs a repair before it can be read, which needs a little free space, and the disk is full\nhint: free some space and try again; the last commit is intact".into(),
                    },
                    _ => interrupted(),
                })?);
                drop(lock);
            }
            open().map_err(|e| store_err(path)(e.into()))
        }
        Err(e) => Err(store_err(path)(e.into())),
    }
}

/// Opens (creating if needed) the store for writing; readers in other processes may share it.
pub(crate) fn open_writable(path: &Path) -> Result<redb::Database> {
    redb::Builder::new()
        .set_concurrency_mode(redb::ConcurrencyMode::SingleWriter)
        .create(path)
        .map_err(|e| store_err(path)(e.into()))
}

/// Reads every chunk id with its record.
pub(crate) fn all_chunk_ids<T: ReadableTable<u64, &'static str>>(
    path: &Path,
    table: &T,
) -> Result<Vec<u64>> {
    let mut ids = Vec::new();
    for row in table.iter().map_err(|e| store_err(path)(e.into()))? {
        let (k, _) = row.map_err(|e| store_err(path)(e.into()))?;
        ids.push(k.value());
    }
    Ok(ids)
}

/// The file name of the store inside a knowledge base directory.
pub const STORE_FILE: &str = "meta.redb";

pub(crate) fn store_path(dir: &Path) -> PathBuf {
    dir.join(STORE_FILE)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_record_from_before_reader_versions_is_read_again_only_where_its_reader_changed() {
        let old = |kind: &str| {
            format!(
                r#"{{"key":"s/a","kind":"{kind}","title":"A","size":1,"mtime_ns":2,"sha256":"x","chunks":[3],"notices":[]}}"#
            )
        };
        let pdf: DocRecord = serde_json::from_str(&old("pdf")).unwrap();
        assert_eq!(pdf.reader, 0);
        assert!(!pdf.read_by_current_reader());
        let html: DocRecord = serde_json::from_str(&old("html")).unwrap();
        assert!(!html.read_by_current_reader());
        let md: DocRecord = serde_json::from_str(&old("markdown")).unwrap();
        assert!(
            !md.read_by_current_reader(),
            "chunks know whether they begin in code"
        );
        let code: DocRecord = serde_json::from_str(&old("code")).unwrap();
        assert!(code.read_by_current_reader());
        // A version-0 record is written as before, so a canonical copy (and a pack's
        // signature over it) does not change for documents whose reader did not.
        assert_eq!(to_json(&code), old("code"));
        let new = DocRecord {
            reader: cairn_ingest::DocKind::Pdf.reader_version(),
            ..pdf
        };
        assert!(new.read_by_current_reader());
        let version = cairn_ingest::DocKind::Pdf.reader_version();
        assert!(version > 0);
        assert!(
            to_json(&new).ends_with(&format!(r#""reader":{version}}}"#)),
            "{}",
            to_json(&new)
        );
    }
}
