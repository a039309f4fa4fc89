//! Reading a knowledge base: a snapshot of the store, BM25 and the vector graph.

use std::path::{Path, PathBuf};

use cairn_ingest::ChunkId;
use redb::{ReadableDatabase, ReadableTable, ReadableTableMetadata};

use crate::bm25::Bm25;
use crate::error::{Error, Result};
use crate::store::TOMBSTONES;
use std::collections::HashSet;

use crate::store::{
    self, from_json, store_err, ChunkRecord, DocRecord, Manifest, SkipRecord, Source, CHUNKS,
    DOCUMENTS, SKIPPED, SOURCES, VECTORS,
};
use crate::vectors::{flat_top_k, Graph};
use crate::{BM25_DIR, VECTORS_DIR};

/// A read-only view of a knowledge base as of one commit.
///
/// Opening takes a snapshot: commits made by a writer afterwards are not seen until the reader
/// is reopened. A reader never writes, so a knowledge base opens from a read-only location.
pub struct Reader {
    dir: PathBuf,
    store_path: PathBuf,
    txn: redb::ReadTransaction,
    manifest: Manifest,
    bm25: Bm25,
    searcher_handle: tantivy::IndexReader,
    bm25_in_sync: bool,
    graph: Option<OpenGraph>,
    /// Ids at or below this are searched in the graph; above it, by exact scan.
    graph_max_id: u64,
    /// Chunks deleted since the graph was built (still in it).
    tombstones: HashSet<u64>,
    graph_error: Option<String>,
    /// The store file's size and modification time when this snapshot was taken.
    stamp: Option<(u64, std::time::SystemTime)>,
}

/// The store file's size and modification time: a commit changes them.
fn store_stamp(dir: &Path) -> Option<(u64, std::time::SystemTime)> {
    let m = std::fs::metadata(store::store_path(dir)).ok()?;
    Some((m.len(), m.modified().ok()?))
}

/// A graph as a reader holds it: mapped in place (`NAME.hnsw.flat`), or, for a knowledge base
/// written before that layout, hnsw_rs's dump read into memory.
enum OpenGraph {
    Flat(crate::flat::FlatGraph),
    Hnsw(Graph),
}

impl OpenGraph {
    fn open(dir: &Path, basename: &str) -> Result<Self> {
        let flat = dir.join(format!("{basename}.hnsw.flat"));
        if flat.is_file() {
            return crate::flat::FlatGraph::open(&flat).map(OpenGraph::Flat);
        }
        Graph::load(dir, basename).map(OpenGraph::Hnsw)
    }

    fn search(
        &self,
        query: &[f32],
        k: usize,
        ef: usize,
        live: &dyn Fn(u64) -> bool,
    ) -> Vec<(u64, f32)> {
        match self {
            // The mapped search is several times cheaper per visited point than hnsw_rs's, so
            // it affords a wide beam: 256, and 512 from 200,000 points. Recall@10 against an
            // exact scan (`cargo run -p cairn-pack --example synthetic`, BENCHMARKS.md): 20,000
            // uniformly random vectors (the hard case) 0.970 at 256, where hnsw_rs's own search
            // gets 0.934; 1,000,000 power-law vectors 0.918 at 256, 0.952 at 512 (p50 9.3 ms),
            // 0.986 at 1024 (p50 16.3 ms).
            OpenGraph::Flat(g) => {
                let beam = if g.points() >= 200_000 { 512 } else { 256 };
                g.search(query, k, ef.max(beam), live)
            }
            OpenGraph::Hnsw(g) => g.search(query, k, ef, live),
        }
    }
}

/// Counts and facts for `cairn status`.
#[derive(Clone, Debug)]
pub struct Status {
    /// The manifest.
    pub manifest: Manifest,
    /// Documents stored.
    pub documents: u64,
    /// Chunks stored.
    pub chunks: u64,
    /// Files skipped in the last runs that saw them: (key, record).
    pub skipped: Vec<(String, SkipRecord)>,
    /// Sources added.
    pub sources: Vec<Source>,
    /// Bytes on disk.
    pub bytes: u64,
    /// BM25 holds what the store holds (false after an interrupted run until the next `add`).
    pub bm25_in_sync: bool,
    /// Why the vector graph could not be used, if it could not (search falls back to a scan).
    pub graph_error: Option<String>,
}

fn dir_size(p: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(p) else {
        return 0;
    };
    entries
        .flatten()
        .map(|e| match e.file_type() {
            Ok(t) if t.is_dir() => dir_size(&e.path()),
            _ => e.metadata().map_or(0, |m| m.len()),
        })
        .sum()
}

/// The store's last commit: its path, a read transaction on it, and its manifest.
fn snapshot(dir: &Path) -> Result<(PathBuf, redb::ReadTransaction, Manifest)> {
    let store_path = store::store_path(dir);
    if !store_path.exists() {
        return Err(Error::NotFound(dir.to_owned()));
    }
    let db = store::open_read_only(dir, &store_path)?;
    let txn = db
        .begin_read()
        .map_err(|e| store_err(&store_path)(e.into()))?;
    let manifest =
        store::read_manifest(&store_path, &txn)?.ok_or_else(|| Error::NotFound(dir.to_owned()))?;
    Ok((store_path, txn, manifest))
}

/// The manifest of the knowledge base at `dir`, without opening BM25 or loading the vector graph.
pub fn read_manifest(dir: &Path) -> Result<Manifest> {
    snapshot(dir).map(|(_, _, manifest)| manifest)
}

impl Reader {
    /// Opens the knowledge base at `dir` read-only.
    pub fn open(dir: &Path) -> Result<Self> {
        // Taken first: a commit landing during the open makes the snapshot look stale, never
        // the reverse.
        let stamp = store_stamp(dir);
        let (store_path, txn, manifest) = snapshot(dir)?;
        let bm25 = Bm25::open(&dir.join(BM25_DIR))?;
        let searcher_handle = bm25.reader()?;
        let bm25_in_sync = bm25.committed_generation()?.unwrap_or(0) == manifest.generation;
        let (graph, graph_max_id, graph_error) = match &manifest.graph {
            Some(g) => match OpenGraph::open(&dir.join(VECTORS_DIR), &g.basename) {
                Ok(graph) => (Some(graph), g.max_id, None),
                // A pack's copy keeps its vectors in the graph only: without it no scan could
                // stand in.
                Err(e) if manifest.format_version == store::GRAPH_VECTORS_FORMAT_VERSION => {
                    return Err(e)
                }
                Err(e) => (None, 0, Some(e.to_string())),
            },
            None => (None, 0, None),
        };
        let mut tombstones = HashSet::new();
        if let Ok(table) = txn.open_table(TOMBSTONES) {
            for row in table.iter().map_err(|e| store_err(&store_path)(e.into()))? {
                let (k, _) = row.map_err(|e| store_err(&store_path)(e.into()))?;
                tombstones.insert(k.value());
            }
        }
        Ok(Reader {
            stamp,
            tombstones,
            dir: dir.to_owned(),
            store_path,
            txn,
            manifest,
            bm25,
            searcher_handle,
            bm25_in_sync,
            graph,
            graph_max_id,
            graph_error,
        })
    }

    /// Whether a writer has committed since this snapshot was taken (the store file's size or
    /// time changed): a long-lived reader reopens to see the new commit.
    #[must_use]
    pub fn changed_on_disk(&self) -> bool {
        self.stamp.is_none() || store_stamp(&self.dir) != self.stamp
    }

    /// The knowledge base's directory.
    #[must_use]
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The manifest of this snapshot.
    #[must_use]
    pub fn manifest(&self) -> &Manifest {
        &self.manifest
    }

    fn serr(&self) -> impl Fn(redb::Error) -> Error + '_ {
        store_err(&self.store_path)
    }

    /// Whether a chunk is in the snapshot.
    fn is_live(chunks: &redb::ReadOnlyTable<u64, &str>, id: u64) -> bool {
        chunks.get(id).ok().flatten().is_some()
    }

    /// The terms of `text` as the BM25 index analyses them (lowercased, stemmed, stop words
    /// out), each with its weight in this snapshot: BM25's inverse document frequency,
    /// `ln(1 + (N − n + ½) / (n + ½))` for `n` of `N` chunks holding it.
    pub fn term_weights(&self, text: &str) -> Result<Vec<(String, f32)>> {
        let terms = Bm25::terms(text);
        let (total, freqs) = self.bm25.doc_freqs(&self.searcher_handle, &terms)?;
        Ok(terms
            .into_iter()
            .zip(freqs)
            .map(|(t, n)| {
                let (total, n) = (total as f64, n as f64);
                let idf = (1.0 + (total - n + 0.5) / (n + 0.5)).ln();
                (t, idf as f32)
            })
            .collect())
    }

    /// The terms of `text` as the BM25 index analyses them.
    #[must_use]
    pub fn analyse(text: &str) -> Vec<String> {
        Bm25::terms(text)
    }

    /// BM25 hits: (chunk, score), best first.
    pub fn bm25(&self, query: &str, k: usize) -> Result<Vec<(ChunkId, f32)>> {
        let chunks = self
            .txn
            .open_table(CHUNKS)
            .map_err(|e| self.serr()(e.into()))?;
        // Ask for a few more: ids the snapshot does not know (a later or interrupted commit)
        // are dropped.
        let hits = self
            .bm25
            .search(&self.searcher_handle, query, k + 16, 0.5)?;
        Ok(hits
            .into_iter()
            .filter(|(id, _)| Self::is_live(&chunks, *id))
            .take(k)
            .map(|(id, s)| (ChunkId(id), s))
            .collect())
    }

    /// Nearest chunks to a unit query vector: (chunk, cosine), best first.
    pub fn dense(&self, query: &[f32], k: usize) -> Result<Vec<(ChunkId, f32)>> {
        if query.len() != self.manifest.embedder.dim {
            return Err(Error::Embed(format!(
                "query vector has {} dimensions, the knowledge base {}",
                query.len(),
                self.manifest.embedder.dim
            )));
        }
        let vectors = self
            .txn
            .open_table(VECTORS)
            .map_err(|e| self.serr()(e.into()))?;
        let mut hits = Vec::new();
        let scan_from = if let Some(graph) = &self.graph {
            let live = |id: u64| id <= self.graph_max_id && !self.tombstones.contains(&id);
            hits = graph.search(query, k, (2 * k).max(64), &live);
            self.graph_max_id + 1
        } else {
            0
        };
        let rows = vectors
            .range(scan_from..)
            .map_err(|e| self.serr()(e.into()))?;
        let tail = rows
            .filter_map(std::result::Result::ok)
            .map(|(k, v)| (k.value(), store::bytes_vector(v.value())));
        hits.extend(flat_top_k(query, tail, k));
        hits.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        hits.truncate(k);
        Ok(hits.into_iter().map(|(id, s)| (ChunkId(id), s)).collect())
    }

    /// A chunk's record.
    pub fn chunk(&self, id: ChunkId) -> Result<Option<ChunkRecord>> {
        let chunks = self
            .txn
            .open_table(CHUNKS)
            .map_err(|e| self.serr()(e.into()))?;
        match chunks.get(id.0).map_err(|e| self.serr()(e.into()))? {
            Some(v) => Ok(Some(from_json(&self.store_path, v.value())?)),
            None => Ok(None),
        }
    }

    /// A chunk's vector (unit length), as stored: in the store, or, in a pack's copy
    /// ([`crate::GRAPH_VECTORS_FORMAT_VERSION`]), in its graph.
    pub fn vector(&self, id: ChunkId) -> Result<Option<Vec<f32>>> {
        let vectors = self
            .txn
            .open_table(VECTORS)
            .map_err(|e| self.serr()(e.into()))?;
        if let Some(v) = vectors.get(id.0).map_err(|e| self.serr()(e.into()))? {
            return Ok(Some(store::bytes_vector(v.value())));
        }
        let in_graph = self.manifest.format_version == store::GRAPH_VECTORS_FORMAT_VERSION
            && id.0 <= self.graph_max_id
            && !self.tombstones.contains(&id.0);
        match &self.graph {
            Some(OpenGraph::Flat(g)) if in_graph => Ok(g.vector_of(id.0)),
            _ => Ok(None),
        }
    }

    /// A document's record by key.
    pub fn document(&self, key: &str) -> Result<Option<DocRecord>> {
        let docs = self
            .txn
            .open_table(DOCUMENTS)
            .map_err(|e| self.serr()(e.into()))?;
        match docs.get(key).map_err(|e| self.serr()(e.into()))? {
            Some(v) => Ok(Some(from_json(&self.store_path, v.value())?)),
            None => Ok(None),
        }
    }

    /// Every document, in key order.
    pub fn documents(&self) -> Result<Vec<DocRecord>> {
        let docs = self
            .txn
            .open_table(DOCUMENTS)
            .map_err(|e| self.serr()(e.into()))?;
        let mut out = Vec::new();
        for row in docs.iter().map_err(|e| self.serr()(e.into()))? {
            let (_, v) = row.map_err(|e| self.serr()(e.into()))?;
            out.push(from_json(&self.store_path, v.value())?);
        }
        Ok(out)
    }

    /// The folders and files added, by the names their documents are listed under.
    pub fn sources(&self) -> Result<Vec<Source>> {
        let table = self
            .txn
            .open_table(SOURCES)
            .map_err(|e| self.serr()(e.into()))?;
        let mut sources = Vec::new();
        for row in table.iter().map_err(|e| self.serr()(e.into()))? {
            let (_, v) = row.map_err(|e| self.serr()(e.into()))?;
            sources.push(from_json(&self.store_path, v.value())?);
        }
        Ok(sources)
    }

    /// Counts and facts about the knowledge base.
    pub fn status(&self) -> Result<Status> {
        let docs = self
            .txn
            .open_table(DOCUMENTS)
            .map_err(|e| self.serr()(e.into()))?;
        let chunks = self
            .txn
            .open_table(CHUNKS)
            .map_err(|e| self.serr()(e.into()))?;
        let skipped_t = self
            .txn
            .open_table(SKIPPED)
            .map_err(|e| self.serr()(e.into()))?;
        let mut skipped = Vec::new();
        for row in skipped_t.iter().map_err(|e| self.serr()(e.into()))? {
            let (k, v) = row.map_err(|e| self.serr()(e.into()))?;
            skipped.push((
                k.value().to_owned(),
                from_json(&self.store_path, v.value())?,
            ));
        }
        let sources = self.sources()?;
        Ok(Status {
            manifest: self.manifest.clone(),
            documents: docs.len().map_err(|e| self.serr()(e.into()))?,
            chunks: chunks.len().map_err(|e| self.serr()(e.into()))?,
            skipped,
            sources,
            bytes: dir_size(&self.dir),
            bm25_in_sync: self.bm25_in_sync,
            graph_error: self.graph_error.clone(),
        })
    }
}
