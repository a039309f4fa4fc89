//! The single writer of a knowledge base: adding and removing documents, committing.
//!
//! # Durability contract
//!
//! A commit first commits BM25 (tantivy, its payload = the new generation), then commits the
//! metadata store (documents, chunks, vectors, manifest) in one redb transaction. The redb commit
//! is the commit point. A crash before it leaves BM25 ahead of the store: readers ignore chunk ids
//! the store does not know, and the next writer sees the generation mismatch and re-syncs BM25
//! from the stored chunk texts (no re-embedding). Documents are stored only in the commit that
//! stores all their chunks and vectors, so an interrupted run resumes at the first document not
//! yet committed. Ingest commits every [`AddOptions::commit_every`] chunks.

use std::collections::{HashMap, HashSet};
use std::fs::File;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use cairn_ingest::{chunk_document, content_hash, walk, ChunkOptions, Found, ReadOptions};
use redb::{ReadableDatabase, ReadableTable, ReadableTableMetadata};

use crate::bm25::Bm25;
use crate::error::{Error, Result};
use crate::store::TOMBSTONES;
use crate::store::{
    self, from_json, store_err, to_json, ChunkRecord, DocRecord, EmbedderId, GraphState, Manifest,
    SkipRecord, Source, CHUNKS, DOCUMENTS, HASHES, MANIFEST, SKIPPED, SOURCES, VECTORS,
};
use crate::vectors::{Graph, GRAPH_MIN_POINTS};
use crate::{Embedder, BM25_DIR, LOCK_FILE, VECTORS_DIR};

/// Settings for one `add` run.
pub struct AddOptions<'a> {
    /// The embedding model (also the chunker's token counter).
    pub embedder: &'a dyn Embedder,
    /// Limits for reading files.
    pub read: ReadOptions,
    /// Commit after this many new chunks (a crash loses at most this much work).
    pub commit_every: usize,
    /// Texts per embedding call.
    pub batch: usize,
    /// Checked between files and batches; `true` stops the run after a final commit.
    pub cancel: &'a dyn Fn() -> bool,
}

/// What happened to one file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FileOutcome {
    /// New document, with its chunk count.
    Added(usize),
    /// Changed document re-read: chunks, and how many of them needed embedding.
    Updated {
        /// Chunks in the new version.
        chunks: usize,
        /// Chunks whose text was new (the others reused stored vectors).
        embedded: usize,
    },
    /// Unchanged since the last run.
    Unchanged,
    /// Not indexed; the message names the file and why.
    Skipped {
        /// Short reason.
        reason: String,
        /// Full message.
        message: String,
    },
}

/// Receives progress from [`Writer::add`]; the CLI draws bars, tests collect.
pub trait AddProgress {
    /// Files to look at, once the walk is done.
    fn files(&mut self, _total: usize) {}
    /// One file done.
    fn file(&mut self, _key: &str, _outcome: &FileOutcome) {}
    /// A notice about a file that was still indexed (a page without text…).
    fn notice(&mut self, _key: &str, _message: &str) {}
    /// Chunks embedded so far in this run.
    fn embedded(&mut self, _chunks: usize) {}
    /// A commit was made.
    fn committed(&mut self, _generation: u64) {}
    /// A phase started (`"graph"` when the vector graph is updated).
    fn phase(&mut self, _name: &str) {}
}

/// A progress sink that ignores everything.
pub struct NoProgress;
impl AddProgress for NoProgress {}

/// Totals of an `add` run.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AddReport {
    /// New documents.
    pub added: usize,
    /// Changed documents.
    pub updated: usize,
    /// Of `updated`, documents whose file had not changed: read again because the reader of
    /// their kind has changed since (`DocKind::reader_version`).
    pub reread: usize,
    /// Unchanged documents.
    pub unchanged: usize,
    /// Documents removed because their file is gone (or now unreadable).
    pub removed: usize,
    /// Files not indexed: (path, reason, message).
    pub skipped: Vec<(String, String, String)>,
    /// Chunks written.
    pub chunks_written: usize,
    /// Chunks that needed the embedding model.
    pub chunks_embedded: usize,
    /// Commits made.
    pub commits: usize,
    /// The run was cancelled part-way (everything before the last commit is kept).
    pub cancelled: bool,
}

#[derive(Default)]
struct Pending {
    docs: Vec<DocRecord>,
    chunks: Vec<(u64, ChunkRecord)>,
    vectors: HashMap<u64, Vec<f32>>,
    /// (id, text) still to embed.
    queue: Vec<(u64, String)>,
    /// hash → id of a chunk in this batch (to reuse its vector).
    hashes: HashMap<String, u64>,
    /// Ids whose vector is copied from another pending id once embedded.
    copies: Vec<(u64, u64)>,
    removed_docs: Vec<String>,
    removed_chunks: Vec<u64>,
    skipped: Vec<(String, SkipRecord)>,
    unskipped: Vec<String>,
    sources: Vec<Source>,
}

impl Pending {
    fn is_empty(&self) -> bool {
        self.docs.is_empty()
            && self.removed_docs.is_empty()
            && self.skipped.is_empty()
            && self.unskipped.is_empty()
            && self.sources.is_empty()
    }
}

/// The writer of a knowledge base. Holds the writer lock while alive.
pub struct Writer {
    dir: PathBuf,
    db: redb::Database,
    bm25: Bm25,
    bm25_indexer: tantivy::IndexWriter,
    manifest: Manifest,
    /// Whether the vector graph is built one vector at a time in id order
    /// ([`Writer::set_deterministic_graph`]).
    deterministic_graph: bool,
    _lock: File,
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

fn io_err(path: &Path) -> impl Fn(std::io::Error) -> Error + '_ {
    move |source| Error::Io {
        path: path.to_owned(),
        source,
    }
}

/// How many times a file that changes while it is read is read again before it is skipped.
const READ_TRIES: u32 = 3;

enum Unsteady {
    Io(std::io::Error),
    Changing,
}

/// Reads a file whose stamp (size and modification time) is the same before and after the
/// read, so that the bytes are one version of it and not a mix of two writes; the stamp goes
/// with them. A file over `max_bytes` is not read (`None`). A file that is replaced by a rename
/// while it is read is no problem: the open handle keeps the version it opened.
fn read_steady(
    file: &Path,
    max_bytes: u64,
) -> std::result::Result<(std::fs::Metadata, Option<Vec<u8>>), Unsteady> {
    use std::io::Read as _;
    for attempt in 0..READ_TRIES {
        if attempt > 0 {
            std::thread::sleep(std::time::Duration::from_millis(50 << attempt));
        }
        let mut f = std::fs::File::open(file).map_err(Unsteady::Io)?;
        let before = f.metadata().map_err(Unsteady::Io)?;
        if before.len() > max_bytes {
            return Ok((before, None));
        }
        // One byte more than the stamp says, to see a file that grew.
        let mut bytes = Vec::with_capacity(usize::try_from(before.len()).unwrap_or(0));
        (&mut f)
            .take(before.len() + 1)
            .read_to_end(&mut bytes)
            .map_err(Unsteady::Io)?;
        let after = f.metadata().map_err(Unsteady::Io)?;
        if bytes.len() as u64 == before.len()
            && after.len() == before.len()
            && mtime_ns(&after) == mtime_ns(&before)
        {
            return Ok((after, Some(bytes)));
        }
    }
    Err(Unsteady::Changing)
}

fn mtime_ns(meta: &std::fs::Metadata) -> u128 {
    meta.modified()
        .ok()
        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_nanos())
}

impl Writer {
    /// Opens the knowledge base at `dir` for writing, creating it if needed.
    ///
    /// Takes the writer lock (failing with [`Error::Locked`] if another process holds it),
    /// checks the format version and that `embedder` is the model the stored vectors came from,
    /// and repairs BM25 if the last run was interrupted between its two commits.
    pub fn open(dir: &Path, embedder: &EmbedderId, chunking: &ChunkOptions) -> Result<Self> {
        // A pack's copy is refused before anything is opened for writing: its files are
        // checked against the pack's hashes.
        if store::store_path(dir).is_file() {
            if let Ok(m) = crate::reader::read_manifest(dir) {
                if m.format_version == store::GRAPH_VECTORS_FORMAT_VERSION {
                    return Err(Error::ReadOnlyCopy {
                        path: dir.to_owned(),
                    });
                }
            }
        }
        std::fs::create_dir_all(dir).map_err(io_err(dir))?;
        let lock = take_lock(dir)?;

        let store_path = store::store_path(dir);
        let db = store::open_writable(&store_path)?;
        let existing = {
            let txn = db
                .begin_read()
                .map_err(|e| store_err(&store_path)(e.into()))?;
            store::read_manifest(&store_path, &txn)?
        };
        let manifest = match existing {
            Some(m) => {
                if m.embedder != *embedder {
                    return Err(Error::EmbedderMismatch {
                        path: dir.to_owned(),
                        found: m.embedder.to_string(),
                        expected: embedder.to_string(),
                    });
                }
                m
            }
            None => Manifest {
                format_version: store::FORMAT_VERSION,
                embedder: embedder.clone(),
                chunking: chunking.clone(),
                generation: 0,
                next_chunk_id: 1,
                graph: None,
                committed_at: now_secs(),
            },
        };
        let mut bm25 = Bm25::open_or_create(&dir.join(BM25_DIR))?;
        if !bm25.has_symbols() {
            drop(bm25);
            remake_bm25(dir, &db, manifest.generation)?;
            bm25 = Bm25::open_or_create(&dir.join(BM25_DIR))?;
        }
        let bm25_indexer = bm25.writer()?;
        std::fs::create_dir_all(dir.join(VECTORS_DIR)).map_err(io_err(dir))?;
        let mut w = Writer {
            dir: dir.to_owned(),
            db,
            bm25,
            bm25_indexer,
            manifest,
            deterministic_graph: false,
            _lock: lock,
        };
        if existing_generation_mismatch(&w)? {
            w.resync_bm25()?;
        }
        if w.manifest.generation == 0 {
            // Write the manifest of a new knowledge base at once, so that it opens read-only.
            w.commit(Pending::default())?;
        }
        w.remove_orphan_graph_files();
        Ok(w)
    }

    /// Deletes a knowledge base's contents (for a rebuild with another model or settings).
    /// Takes the writer lock first, so a running writer is never pulled from under.
    pub fn wipe(dir: &Path) -> Result<()> {
        if !dir.join(store::STORE_FILE).exists() {
            return Ok(());
        }
        let _lock = take_lock(dir)?;
        for name in [store::STORE_FILE, BM25_DIR, VECTORS_DIR] {
            let p = dir.join(name);
            let r = if p.is_dir() {
                std::fs::remove_dir_all(&p)
            } else {
                std::fs::remove_file(&p)
            };
            match r {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(io_err(&p)(e)),
            }
        }
        Ok(())
    }

    /// The manifest as of the last commit.
    #[must_use]
    pub fn manifest(&self) -> &Manifest {
        &self.manifest
    }

    fn store_path(&self) -> PathBuf {
        store::store_path(&self.dir)
    }

    /// Makes BM25 hold exactly the stored chunks: after a crash between the two commits.
    fn resync_bm25(&mut self) -> Result<()> {
        let path = self.store_path();
        sync_bm25(
            &self.db,
            &path,
            &self.bm25,
            &mut self.bm25_indexer,
            self.manifest.generation,
        )
    }

    fn remove_orphan_graph_files(&self) {
        let keep = self.manifest.graph.as_ref().map(|g| g.basename.clone());
        let Ok(entries) = std::fs::read_dir(self.dir.join(VECTORS_DIR)) else {
            return;
        };
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            let base = name.split(".hnsw.").next().unwrap_or("");
            if keep.as_deref() != Some(base) {
                let _ = std::fs::remove_file(e.path());
            }
        }
    }

    /// A table of the last committed state, for reading.
    fn read_table<K: redb::Key + 'static, V: redb::Value + 'static>(
        &self,
        table: redb::TableDefinition<K, V>,
    ) -> Result<redb::ReadOnlyTable<K, V>> {
        read_table(&self.db, &self.store_path(), table)
    }

    fn read_doc(&self, key: &str) -> Result<Option<DocRecord>> {
        let path = self.store_path();
        let table = self.read_table(DOCUMENTS)?;
        match table.get(key).map_err(|e| store_err(&path)(e.into()))? {
            Some(v) => Ok(Some(from_json(&path, v.value())?)),
            None => Ok(None),
        }
    }

    /// All sources.
    pub fn sources(&self) -> Result<Vec<Source>> {
        let path = self.store_path();
        let table = self.read_table(SOURCES)?;
        let mut out = Vec::new();
        for row in table.iter().map_err(|e| store_err(&path)(e.into()))? {
            let (_, v) = row.map_err(|e| store_err(&path)(e.into()))?;
            out.push(from_json(&path, v.value())?);
        }
        Ok(out)
    }

    fn doc_keys_under(&self, prefix: &str) -> Result<Vec<String>> {
        let path = self.store_path();
        let table = self.read_table(DOCUMENTS)?;
        let mut out = Vec::new();
        for row in table
            .range(prefix..)
            .map_err(|e| store_err(&path)(e.into()))?
        {
            let (k, _) = row.map_err(|e| store_err(&path)(e.into()))?;
            let k = k.value();
            if !k.starts_with(prefix) {
                break;
            }
            if k.len() == prefix.len()
                || prefix.ends_with('/')
                || k[prefix.len()..].starts_with('/')
            {
                out.push(k.to_owned());
            }
        }
        Ok(out)
    }

    /// Finds (or makes) the source an absolute path belongs to, and the path's key prefix. A
    /// new source is named as [`source_name`] says; `twin` when another path of the same `add`
    /// has the same file name.
    fn source_for(
        &self,
        abs: &Path,
        pending: &mut Pending,
        twin: bool,
    ) -> Result<(Source, String)> {
        let mut sources = self.sources()?;
        sources.extend(pending.sources.iter().cloned());
        // The deepest source containing the path.
        if let Some(s) = sources
            .iter()
            .filter(|s| abs.starts_with(&s.path))
            .max_by_key(|s| s.path.components().count())
        {
            let rel = abs.strip_prefix(&s.path).expect("checked by starts_with");
            let mut key = s.name.clone();
            for c in rel.components() {
                key.push('/');
                key.push_str(&c.as_os_str().to_string_lossy());
            }
            return Ok((s.clone(), key));
        }
        let name = source_name(abs, &sources, twin);
        let source = Source {
            name: name.clone(),
            path: abs.to_owned(),
        };
        pending.sources.push(source.clone());
        Ok((source, name))
    }

    /// Adds files and folders (recursively): new and changed files are read, chunked, embedded
    /// and stored; unchanged ones cost a `stat`; files gone from an added folder leave the index.
    pub fn add(
        &mut self,
        paths: &[PathBuf],
        options: &AddOptions<'_>,
        progress: &mut dyn AddProgress,
    ) -> Result<AddReport> {
        // A disk that is already full is said before anything is read or embedded.
        self.ensure_space(0)?;
        let mut report = AddReport::default();
        let mut pending = Pending::default();
        let mut plan: Vec<(PathBuf, String)> = Vec::new();
        let mut walked_prefixes: Vec<(String, HashSet<String>)> = Vec::new();
        // The knowledge base's own files are never documents, even inside an added folder.
        let own = std::fs::canonicalize(&self.dir).unwrap_or_else(|_| self.dir.clone());
        // Paths of this `add` with the same file name ("docs" of two projects) are named by
        // their folders alike, not one "docs" and one "docs-2".
        let distinct: HashSet<PathBuf> = paths
            .iter()
            .filter_map(|p| std::fs::canonicalize(p).ok())
            .collect();
        let names: Vec<_> = distinct
            .iter()
            .map(|p| p.file_name().map(std::ffi::OsStr::to_owned))
            .collect();
        for p in paths {
            let abs = match std::fs::canonicalize(p) {
                Ok(a) => a,
                Err(e) => {
                    report.skipped.push((
                        p.display().to_string(),
                        "not-found".into(),
                        format!("{}: {e}", p.display()),
                    ));
                    continue;
                }
            };
            let name = abs.file_name().map(std::ffi::OsStr::to_owned);
            let twin = names.iter().filter(|n| **n == name).count() > 1;
            let (source, prefix) = self.source_for(&abs, &mut pending, twin)?;
            let mut seen = HashSet::new();
            // `source/relative/path`: a document's key, and how a skipped link is named.
            let key_of = |path: &Path| {
                let rel = path.strip_prefix(&source.path).unwrap_or(path);
                let mut key = source.name.clone();
                for c in rel.components() {
                    key.push('/');
                    key.push_str(&c.as_os_str().to_string_lossy());
                }
                key
            };
            for found in walk(&abs) {
                match found {
                    Found::File(f) if f.starts_with(&own) => {}
                    Found::Link(l) if l.starts_with(&own) => {}
                    Found::File(f) => {
                        let key = key_of(&f);
                        if seen.insert(key.clone()) {
                            plan.push((f, key));
                        }
                    }
                    Found::Error(path, message) => {
                        report.skipped.push((
                            path.display().to_string(),
                            "unreadable".into(),
                            message,
                        ));
                    }
                    Found::Link(path) => {
                        let shown = key_of(&path);
                        report.skipped.push((
                            shown.clone(),
                            "link".into(),
                            format!(
                                "{shown}: symbolic link, not followed (add its target to index it)"
                            ),
                        ));
                    }
                }
            }
            if abs.is_dir() {
                walked_prefixes.push((prefix, seen));
            }
        }
        progress.files(plan.len());

        // Files gone from an added folder leave the index.
        for (prefix, seen) in &walked_prefixes {
            for key in self.doc_keys_under(prefix)? {
                if !seen.contains(&key) {
                    self.plan_removal(&key, &mut pending)?;
                    report.removed += 1;
                }
            }
        }

        let mut since_commit = 0usize;
        let mut last_commit = Instant::now();
        let mut embedded_total = 0usize;
        for (file, key) in plan {
            if (options.cancel)() {
                report.cancelled = true;
                break;
            }
            let outcome = self.plan_file(&file, &key, options, &mut pending, &mut report)?;
            if matches!(outcome, FileOutcome::Added(_) | FileOutcome::Updated { .. }) {
                if let Some(doc) = pending.docs.last() {
                    for n in &doc.notices {
                        progress.notice(&key, n);
                    }
                }
            }
            if let FileOutcome::Added(n) | FileOutcome::Updated { chunks: n, .. } = outcome {
                since_commit += n;
            }
            progress.file(&key, &outcome);
            if pending.queue.len() >= options.batch {
                embedded_total += self.embed_queue(options, &mut pending)?;
                progress.embedded(embedded_total);
            }
            if since_commit >= options.commit_every
                || (since_commit > 0 && last_commit.elapsed().as_secs() >= 60)
            {
                embedded_total += self.embed_queue(options, &mut pending)?;
                progress.embedded(embedded_total);
                let generation = self.commit(std::mem::take(&mut pending))?;
                report.commits += 1;
                progress.committed(generation);
                since_commit = 0;
                last_commit = Instant::now();
            }
        }
        embedded_total += self.embed_queue(options, &mut pending)?;
        progress.embedded(embedded_total);
        if !pending.is_empty() {
            let generation = self.commit(pending)?;
            report.commits += 1;
            progress.committed(generation);
        }
        report.chunks_embedded = embedded_total;
        if !report.cancelled {
            progress.phase("graph");
            self.update_graph()?;
        }
        Ok(report)
    }

    fn plan_removal(&self, key: &str, pending: &mut Pending) -> Result<()> {
        if let Some(old) = self.read_doc(key)? {
            pending.removed_chunks.extend(&old.chunks);
            pending.removed_docs.push(key.to_owned());
        }
        pending.unskipped.push(key.to_owned());
        Ok(())
    }

    fn plan_file(
        &mut self,
        file: &Path,
        key: &str,
        options: &AddOptions<'_>,
        pending: &mut Pending,
        report: &mut AddReport,
    ) -> Result<FileOutcome> {
        let skip =
            |reason: &str, message: String, pending: &mut Pending, report: &mut AddReport| {
                pending.skipped.push((
                    key.to_owned(),
                    SkipRecord {
                        reason: reason.to_owned(),
                        message: message.clone(),
                    },
                ));
                report
                    .skipped
                    .push((key.to_owned(), reason.to_owned(), message.clone()));
                FileOutcome::Skipped {
                    reason: reason.to_owned(),
                    message,
                }
            };
        let existing = self.read_doc(key)?;
        let meta = match std::fs::metadata(file) {
            Ok(m) => m,
            Err(e) => {
                let (reason, message) = if e.kind() == std::io::ErrorKind::NotFound {
                    // Listed by the walk, gone before it could be read: it was removed, so
                    // its old version must not go on answering either.
                    if existing.is_some() {
                        self.plan_removal(key, pending)?;
                        report.removed += 1;
                    }
                    (
                        "vanished",
                        format!("{}: removed while being added", file.display()),
                    )
                } else {
                    ("unreadable", format!("{}: {e}", file.display()))
                };
                return Ok(skip(reason, message, pending, report));
            }
        };
        if let Some(old) = &existing {
            if old.size == meta.len()
                && old.mtime_ns == mtime_ns(&meta)
                && old.read_by_current_reader()
            {
                report.unchanged += 1;
                return Ok(FileOutcome::Unchanged);
            }
        }
        let (meta, bytes) = match read_steady(file, options.read.max_bytes) {
            Ok(read) => read,
            Err(Unsteady::Io(e)) => {
                return Ok(skip(
                    "unreadable",
                    format!("{}: {e}", file.display()),
                    pending,
                    report,
                ))
            }
            Err(Unsteady::Changing) => {
                // Whatever is stored stays: it was a whole version of the file, and the next
                // `add` sees the new stamp and reads the file again.
                return Ok(skip(
                    "changing",
                    format!(
                        "{}: changed while being read, {READ_TRIES} times; run `add` again once it is written",
                        file.display()
                    ),
                    pending,
                    report,
                ));
            }
        };
        let mtime = mtime_ns(&meta);
        let sha = bytes.as_deref().map(content_hash);
        if let (Some(old), Some(sha)) = (&existing, &sha) {
            if old.sha256 == *sha && old.read_by_current_reader() {
                // Same bytes, new mtime (a touch, a checkout): remember the new stamp only.
                let mut doc = old.clone();
                doc.mtime_ns = mtime;
                doc.size = meta.len();
                pending.docs.push(doc);
                report.unchanged += 1;
                return Ok(FileOutcome::Unchanged);
            }
        }
        // Read under the document's key, so that messages name the file as the index lists it.
        let shown = Path::new(key);
        let read = match bytes {
            None => Err(cairn_ingest::Error::TooLarge {
                path: shown.to_owned(),
                size: meta.len(),
                limit: options.read.max_bytes,
            }),
            Some(b) => cairn_ingest::read_bytes_with(shown, &b, &options.read),
        };
        let read = match read {
            Ok(r) => r,
            Err(e) => {
                // An unreadable new version must not leave the old one answering questions.
                if existing.is_some() {
                    self.plan_removal(key, pending)?;
                    report.removed += 1;
                }
                return Ok(skip(e.reason(), e.to_string(), pending, report));
            }
        };
        let chunks = chunk_document(
            &read.document,
            options.embedder.counter(),
            &self.manifest.chunking,
        );
        if let Some(old) = &existing {
            pending.removed_chunks.extend(&old.chunks);
        }
        // One look at the stored hashes and vectors for the whole file.
        let (hashes, vectors) = (self.read_table(HASHES)?, self.read_table(VECTORS)?);
        let mut ids = Vec::with_capacity(chunks.len());
        let mut embedded = 0;
        for c in &chunks {
            let text = read.document.text[c.range.clone()].to_owned();
            let hash = content_hash(text.as_bytes());
            let id = self.manifest.next_chunk_id;
            self.manifest.next_chunk_id += 1;
            if let Some(&other) = pending.hashes.get(&hash) {
                pending.copies.push((id, other));
            } else if let Some(v) = self.stored_vector_for_hash(&hashes, &vectors, &hash)? {
                pending.vectors.insert(id, v);
                pending.hashes.insert(hash.clone(), id);
            } else {
                pending.queue.push((id, text.clone()));
                pending.hashes.insert(hash.clone(), id);
                embedded += 1;
            }
            pending.chunks.push((
                id,
                ChunkRecord {
                    doc: key.to_owned(),
                    hash,
                    text,
                    heading: c.heading.clone(),
                    page: c.page,
                    lines: c.lines,
                    range: (c.range.start, c.range.end),
                    in_code: c.in_code,
                },
            ));
            ids.push(id);
        }
        let same_bytes = existing
            .as_ref()
            .zip(sha.as_ref())
            .is_some_and(|(old, sha)| old.sha256 == *sha);
        pending.docs.push(DocRecord {
            key: key.to_owned(),
            kind: read.document.kind,
            title: read.document.title.clone(),
            size: meta.len(),
            mtime_ns: mtime,
            sha256: sha.unwrap_or_default(),
            chunks: ids,
            notices: read.notices.iter().map(|n| n.message.clone()).collect(),
            reader: read.document.kind.reader_version(),
        });
        pending.unskipped.push(key.to_owned());
        report.chunks_written += chunks.len();
        Ok(if existing.is_some() {
            report.updated += 1;
            if same_bytes {
                report.reread += 1;
            }
            FileOutcome::Updated {
                chunks: chunks.len(),
                embedded,
            }
        } else {
            report.added += 1;
            FileOutcome::Added(chunks.len())
        })
    }

    fn stored_vector_for_hash(
        &self,
        hashes: &redb::ReadOnlyTable<&'static str, u64>,
        vectors: &redb::ReadOnlyTable<u64, &'static [u8]>,
        hash: &str,
    ) -> Result<Option<Vec<f32>>> {
        let path = self.store_path();
        let Some(id) = hashes
            .get(hash)
            .map_err(|e| store_err(&path)(e.into()))?
            .map(|v| v.value())
        else {
            return Ok(None);
        };
        Ok(vectors
            .get(id)
            .map_err(|e| store_err(&path)(e.into()))?
            .map(|v| store::bytes_vector(v.value())))
    }

    fn embed_queue(&self, options: &AddOptions<'_>, pending: &mut Pending) -> Result<usize> {
        let queue = std::mem::take(&mut pending.queue);
        let mut done = 0;
        for batch in queue.chunks(options.batch.max(1)) {
            let texts: Vec<&str> = batch.iter().map(|(_, t)| t.as_str()).collect();
            let vectors = options.embedder.embed(&texts).map_err(Error::Embed)?;
            if vectors.len() != texts.len()
                || vectors
                    .iter()
                    .any(|v| v.len() != self.manifest.embedder.dim)
            {
                return Err(Error::Embed(format!(
                    "the model returned {} vectors for {} texts (expected {} dimensions)",
                    vectors.len(),
                    texts.len(),
                    self.manifest.embedder.dim
                )));
            }
            for ((id, _), v) in batch.iter().zip(vectors) {
                pending.vectors.insert(*id, v);
            }
            done += batch.len();
        }
        for (id, from) in std::mem::take(&mut pending.copies) {
            let v = pending
                .vectors
                .get(&from)
                .cloned()
                .expect("the source chunk was embedded first");
            pending.vectors.insert(id, v);
        }
        Ok(done)
    }

    /// Commits pending changes: BM25 first, then the store (the commit point).
    fn commit(&mut self, pending: Pending) -> Result<u64> {
        // What this commit writes, about: each chunk's text in BM25 and the store, its vector,
        // and redb's copy-on-write pages, with room for the store to grow a region.
        let bytes: u64 = pending
            .chunks
            .iter()
            .map(|(_, c)| c.text.len() as u64 + 256)
            .sum::<u64>()
            + (pending.vectors.len() * self.manifest.embedder.dim * 4) as u64;
        self.ensure_space(4 * bytes)?;
        self.commit_unchecked(pending)
            .map_err(|e| self.disk_full_or(e))
    }

    /// Fails with [`Error::DiskFull`], before anything is written, unless the knowledge base's
    /// file system has room for `bytes` more, plus a reserve (16 MiB and a sixteenth of the
    /// store, which redb may grow by at once).
    fn ensure_space(&self, bytes: u64) -> Result<()> {
        let store = std::fs::metadata(self.store_path()).map_or(0, |m| m.len());
        let needed = bytes + (16 << 20) + store / 16;
        match fs4::available_space(&self.dir) {
            Ok(available) if available < needed => Err(Error::DiskFull {
                path: self.dir.clone(),
                available,
                needed: Some(needed),
            }),
            _ => Ok(()),
        }
    }

    /// A write that failed because the disk filled up anyway (another process wrote first)
    /// says so; other errors pass.
    fn disk_full_or(&self, e: Error) -> Error {
        let full = match &e {
            Error::Store { message, .. } | Error::Bm25 { message, .. } => {
                crate::error::says_disk_full(message)
            }
            Error::Io { source, .. } => source.raw_os_error() == Some(28),
            _ => false,
        };
        if full {
            Error::DiskFull {
                path: self.dir.clone(),
                available: fs4::available_space(&self.dir).unwrap_or(0),
                needed: None,
            }
        } else {
            e
        }
    }

    #[allow(clippy::needless_pass_by_value)] // a batch is committed once and dropped
    fn commit_unchecked(&mut self, pending: Pending) -> Result<u64> {
        let path = self.store_path();
        let serr = store_err(&path);
        let generation = self.manifest.generation + 1;
        let titles: HashMap<&str, &str> = pending
            .docs
            .iter()
            .map(|d| (d.key.as_str(), d.title.as_str()))
            .collect();
        for id in &pending.removed_chunks {
            self.bm25.delete(&self.bm25_indexer, *id);
        }
        for (id, c) in &pending.chunks {
            self.bm25.add(
                &self.bm25_indexer,
                *id,
                &title_field(
                    titles.get(c.doc.as_str()).copied().unwrap_or(""),
                    &c.heading,
                ),
                &c.text,
                c.in_code,
            )?;
        }
        self.bm25.commit(&mut self.bm25_indexer, generation)?;

        let txn = self.db.begin_write().map_err(|e| serr(e.into()))?;
        {
            let mut docs = txn.open_table(DOCUMENTS).map_err(|e| serr(e.into()))?;
            let mut chunks = txn.open_table(CHUNKS).map_err(|e| serr(e.into()))?;
            let mut vectors = txn.open_table(VECTORS).map_err(|e| serr(e.into()))?;
            let mut hashes = txn.open_table(HASHES).map_err(|e| serr(e.into()))?;
            let mut skipped = txn.open_table(SKIPPED).map_err(|e| serr(e.into()))?;
            let mut sources = txn.open_table(SOURCES).map_err(|e| serr(e.into()))?;
            let mut manifest = txn.open_table(MANIFEST).map_err(|e| serr(e.into()))?;
            let mut tombstones = txn.open_table(TOMBSTONES).map_err(|e| serr(e.into()))?;
            if let Some(graph) = &self.manifest.graph {
                for id in pending
                    .removed_chunks
                    .iter()
                    .filter(|&&id| id <= graph.max_id)
                {
                    tombstones.insert(*id, ()).map_err(|e| serr(e.into()))?;
                }
            }
            for key in &pending.removed_docs {
                docs.remove(key.as_str()).map_err(|e| serr(e.into()))?;
            }
            for id in &pending.removed_chunks {
                let old = chunks
                    .remove(*id)
                    .map_err(|e| serr(e.into()))?
                    .map(|v| v.value().to_owned());
                vectors.remove(*id).map_err(|e| serr(e.into()))?;
                if let Some(old) = old {
                    let rec: ChunkRecord = from_json(&path, &old)?;
                    let points_here = hashes
                        .get(rec.hash.as_str())
                        .map_err(|e| serr(e.into()))?
                        .is_some_and(|v| v.value() == *id);
                    if points_here {
                        hashes
                            .remove(rec.hash.as_str())
                            .map_err(|e| serr(e.into()))?;
                    }
                }
            }
            for d in &pending.docs {
                docs.insert(d.key.as_str(), to_json(d).as_str())
                    .map_err(|e| serr(e.into()))?;
            }
            for (id, c) in &pending.chunks {
                chunks
                    .insert(*id, to_json(c).as_str())
                    .map_err(|e| serr(e.into()))?;
                let v = pending
                    .vectors
                    .get(id)
                    .expect("every pending chunk has a vector before commit");
                vectors
                    .insert(*id, store::vector_bytes(v).as_slice())
                    .map_err(|e| serr(e.into()))?;
                hashes
                    .insert(c.hash.as_str(), *id)
                    .map_err(|e| serr(e.into()))?;
            }
            for key in &pending.unskipped {
                skipped.remove(key.as_str()).map_err(|e| serr(e.into()))?;
            }
            for (key, rec) in &pending.skipped {
                skipped
                    .insert(key.as_str(), to_json(rec).as_str())
                    .map_err(|e| serr(e.into()))?;
            }
            for s in &pending.sources {
                sources
                    .insert(s.name.as_str(), to_json(s).as_str())
                    .map_err(|e| serr(e.into()))?;
            }
            let mut m = self.manifest.clone();
            m.generation = generation;
            m.committed_at = now_secs();
            manifest
                .insert("manifest", to_json(&m).as_str())
                .map_err(|e| serr(e.into()))?;
        }
        txn.commit().map_err(|e| serr(e.into()))?;
        self.manifest.generation = generation;
        self.manifest.committed_at = now_secs();
        Ok(generation)
    }

    /// Removes documents: `target` is a path on disk (a file or a folder that was added) or a
    /// document key or key prefix as `cairn status` lists them. Returns the removed keys.
    ///
    /// # Panics
    /// Never in practice: a source's path is checked to be a prefix before it is stripped.
    pub fn remove(&mut self, target: &str) -> Result<Vec<String>> {
        let mut pending = Pending::default();
        let mut prefix = target.trim_end_matches('/').to_owned();
        if let Ok(abs) = std::fs::canonicalize(target) {
            if let Some(s) = self
                .sources()?
                .into_iter()
                .filter(|s| abs.starts_with(&s.path))
                .max_by_key(|s| s.path.components().count())
            {
                let rel = abs.strip_prefix(&s.path).expect("checked");
                prefix.clone_from(&s.name);
                for c in rel.components() {
                    prefix.push('/');
                    prefix.push_str(&c.as_os_str().to_string_lossy());
                }
            }
        }
        let keys = self.doc_keys_under(&prefix)?;
        for key in &keys {
            self.plan_removal(key, &mut pending)?;
        }
        // Skipped-file records under the prefix go too.
        let path = self.store_path();
        {
            let txn = self
                .db
                .begin_read()
                .map_err(|e| store_err(&path)(e.into()))?;
            let skipped = txn
                .open_table(SKIPPED)
                .map_err(|e| store_err(&path)(e.into()))?;
            for row in skipped
                .range(prefix.as_str()..)
                .map_err(|e| store_err(&path)(e.into()))?
            {
                let (k, _) = row.map_err(|e| store_err(&path)(e.into()))?;
                if !k.value().starts_with(&prefix) {
                    break;
                }
                pending.unskipped.push(k.value().to_owned());
            }
        }
        if keys.is_empty() && pending.unskipped.is_empty() {
            return Ok(Vec::new());
        }
        self.commit(pending)?;
        // A whole source removed: forget the source too.
        if !prefix.contains('/') {
            let txn = self
                .db
                .begin_write()
                .map_err(|e| store_err(&path)(e.into()))?;
            {
                let mut sources = txn
                    .open_table(SOURCES)
                    .map_err(|e| store_err(&path)(e.into()))?;
                sources
                    .remove(prefix.as_str())
                    .map_err(|e| store_err(&path)(e.into()))?;
            }
            txn.commit().map_err(|e| store_err(&path)(e.into()))?;
        }
        self.update_graph()?;
        Ok(keys)
    }

    /// Builds the vector graph one vector at a time in id order from now on, instead of on
    /// every core: slower, but the same documents added the same way give the same graph, so
    /// the same searches find the same passages (evaluations are repeatable; hnsw_rs draws
    /// levels from a fixed seed, and parallel insertion links nodes in whatever order the
    /// threads reach them).
    pub fn set_deterministic_graph(&mut self, on: bool) {
        self.deterministic_graph = on;
    }

    /// Brings the persisted vector graph up to date with the committed vectors.
    ///
    /// # Panics
    /// Never in practice: an incremental update is only chosen when a graph exists.
    pub fn update_graph(&mut self) -> Result<()> {
        // The graph is written beside the old one before it replaces it: room for two.
        let graph: u64 = std::fs::read_dir(self.dir.join(VECTORS_DIR)).map_or(0, |d| {
            d.flatten()
                .filter_map(|e| e.metadata().ok())
                .map(|m| m.len())
                .sum()
        });
        self.ensure_space(2 * graph)?;
        self.update_graph_unchecked()
            .map_err(|e| self.disk_full_or(e))
    }

    fn update_graph_unchecked(&mut self) -> Result<()> {
        let path = self.store_path();
        let serr = store_err(&path);
        let txn = self.db.begin_read().map_err(|e| serr(e.into()))?;
        let vectors = txn.open_table(VECTORS).map_err(|e| serr(e.into()))?;
        let live = vectors.len().map_err(|e| serr(e.into()))? as usize;
        let old = self.manifest.graph.clone();
        let mut rebuilt = true;
        let new_state = if live < GRAPH_MIN_POINTS {
            None
        } else {
            let covered_live = match &old {
                Some(g) => vectors
                    .range(..=g.max_id)
                    .map_err(|e| serr(e.into()))?
                    .count() as u64,
                None => 0,
            };
            let rebuild = old
                .as_ref()
                .is_none_or(|g| (g.points - covered_live) * 3 > g.points);
            if let (false, Some(g)) = (rebuild, &old) {
                // Nothing stored since the graph was built (an `add` that found every file
                // unchanged, as `add --watch` runs often): the graph stays, unread.
                let nothing_new = vectors
                    .range(g.max_id + 1..)
                    .map_err(|e| serr(e.into()))?
                    .next()
                    .is_none();
                let flat = self
                    .dir
                    .join(VECTORS_DIR)
                    .join(format!("{}.hnsw.flat", g.basename));
                if nothing_new && flat.is_file() {
                    return Ok(());
                }
            }
            let (graph, from) = if rebuild {
                (Graph::new(live), 0)
            } else {
                let g = old.as_ref().expect("not a rebuild");
                match Graph::load(&self.dir.join(VECTORS_DIR), &g.basename) {
                    Ok(graph) => {
                        rebuilt = false;
                        (graph, g.max_id + 1)
                    }
                    Err(_) => (Graph::new(live), 0),
                }
            };
            let mut batch = Vec::with_capacity(1024);
            let mut max_id = old.as_ref().map_or(0, |g| g.max_id);
            let mut added = 0usize;
            for row in vectors.range(from..).map_err(|e| serr(e.into()))? {
                let (k, v) = row.map_err(|e| serr(e.into()))?;
                batch.push((k.value(), store::bytes_vector(v.value())));
                max_id = max_id.max(k.value());
                if batch.len() == 1024 {
                    graph.insert_in(&batch, self.deterministic_graph);
                    added += batch.len();
                    batch.clear();
                }
            }
            added += batch.len();
            graph.insert_in(&batch, self.deterministic_graph);
            if added == 0 && !rebuild {
                // A graph saved before the flat layout existed gets it now, once.
                if let Some(g) = &old {
                    let dir = self.dir.join(VECTORS_DIR);
                    if !dir.join(format!("{}.hnsw.flat", g.basename)).is_file() {
                        graph.dump_flat(&dir, &g.basename)?;
                    }
                }
                return Ok(());
            }
            let basename = graph.dump(
                &self.dir.join(VECTORS_DIR),
                &format!("g{}", self.manifest.generation),
            )?;
            Some(GraphState {
                basename,
                max_id,
                points: graph.points() as u64,
            })
        };
        drop(vectors);
        drop(txn);
        if new_state == old {
            return Ok(());
        }
        let txn = self.db.begin_write().map_err(|e| serr(e.into()))?;
        {
            let mut manifest = txn.open_table(MANIFEST).map_err(|e| serr(e.into()))?;
            // A new graph (or none) holds no deleted chunks; an extended one keeps its tombstones.
            if rebuilt {
                let mut tombstones = txn.open_table(TOMBSTONES).map_err(|e| serr(e.into()))?;
                tombstones
                    .retain(|_, ()| false)
                    .map_err(|e| serr(e.into()))?;
            }
            let mut m = self.manifest.clone();
            m.graph.clone_from(&new_state);
            manifest
                .insert("manifest", to_json(&m).as_str())
                .map_err(|e| serr(e.into()))?;
        }
        txn.commit().map_err(|e| serr(e.into()))?;
        self.manifest.graph = new_state;
        self.remove_orphan_graph_files();
        Ok(())
    }
}

/// Takes the writer lock of `dir` and writes our pid into it; fails with [`Error::Locked`],
/// naming the holder, if another process has it.
/// Who holds the writer lock of the knowledge base at `dir` (`pid N`, as the holder wrote it),
/// or `None` when no writer is running.
#[must_use]
pub fn writer_holder(dir: &Path) -> Option<String> {
    let lock_path = dir.join(LOCK_FILE);
    let lock = std::fs::OpenOptions::new()
        .write(true)
        .open(&lock_path)
        .ok()?;
    if lock.try_lock().is_ok() {
        return None;
    }
    let holder = std::fs::read_to_string(&lock_path).unwrap_or_default();
    Some(if holder.trim().is_empty() {
        "unknown process".into()
    } else {
        holder.trim().to_owned()
    })
}

fn take_lock(dir: &Path) -> Result<File> {
    let lock_path = dir.join(LOCK_FILE);
    let mut lock = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .read(true)
        .write(true)
        .open(&lock_path)
        .map_err(io_err(&lock_path))?;
    if lock.try_lock().is_err() {
        let holder = std::fs::read_to_string(&lock_path).unwrap_or_default();
        return Err(Error::Locked {
            path: dir.to_owned(),
            holder: if holder.trim().is_empty() {
                "unknown process".into()
            } else {
                holder.trim().to_owned()
            },
        });
    }
    lock.set_len(0).map_err(io_err(&lock_path))?;
    let _ = write!(lock, "pid {}", std::process::id());
    Ok(lock)
}

fn read_table<K: redb::Key + 'static, V: redb::Value + 'static>(
    db: &redb::Database,
    path: &Path,
    table: redb::TableDefinition<K, V>,
) -> Result<redb::ReadOnlyTable<K, V>> {
    let txn = db.begin_read().map_err(|e| store_err(path)(e.into()))?;
    txn.open_table(table).map_err(|e| store_err(path)(e.into()))
}

/// Makes `bm25` hold exactly the chunks of the store at `path`, and commits it for
/// `generation`.
fn sync_bm25(
    db: &redb::Database,
    path: &Path,
    bm25: &Bm25,
    indexer: &mut tantivy::IndexWriter,
    generation: u64,
) -> Result<()> {
    let in_bm25: HashSet<u64> = bm25.all_ids()?.into_iter().collect();
    let chunks = read_table(db, path, CHUNKS)?;
    let docs = read_table(db, path, DOCUMENTS)?;
    let stored: HashSet<u64> = store::all_chunk_ids(path, &chunks)?.into_iter().collect();
    for id in in_bm25.difference(&stored) {
        bm25.delete(indexer, *id);
    }
    let mut titles: HashMap<String, String> = HashMap::new();
    for id in stored.difference(&in_bm25) {
        let raw = chunks
            .get(*id)
            .map_err(|e| store_err(path)(e.into()))?
            .expect("listed above");
        let rec: ChunkRecord = from_json(path, raw.value())?;
        if !titles.contains_key(&rec.doc) {
            let title = match docs
                .get(rec.doc.as_str())
                .map_err(|e| store_err(path)(e.into()))?
            {
                Some(d) => from_json::<DocRecord>(path, d.value())?.title,
                None => String::new(),
            };
            titles.insert(rec.doc.clone(), title);
        }
        bm25.add(
            indexer,
            *id,
            &title_field(&titles[&rec.doc], &rec.heading),
            &rec.text,
            rec.in_code,
        )?;
    }
    bm25.commit(indexer, generation)
}

/// Makes the BM25 index of the knowledge base at `dir` again from its stored chunks, beside the
/// one in use, then puts it in its place: for an index made before symbols were indexed
/// ([`Bm25::has_symbols`]). Killed part-way, the next writer finds a BM25 index that is not at
/// the store's generation (or none) and fills it from the store again.
fn remake_bm25(dir: &Path, db: &redb::Database, generation: u64) -> Result<()> {
    let live = dir.join(BM25_DIR);
    let fresh = dir.join(format!("{BM25_DIR}.new"));
    let old = dir.join(format!("{BM25_DIR}.old"));
    for stale in [&fresh, &old] {
        match std::fs::remove_dir_all(stale) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(io_err(stale)(e)),
        }
    }
    {
        let bm25 = Bm25::open_or_create(&fresh)?;
        let mut indexer = bm25.writer()?;
        sync_bm25(db, &store::store_path(dir), &bm25, &mut indexer, generation)?;
        indexer.wait_merging_threads().map_err(|e| Error::Bm25 {
            path: fresh.clone(),
            message: e.to_string(),
        })?;
    }
    std::fs::rename(&live, &old).map_err(io_err(&live))?;
    std::fs::rename(&fresh, &live).map_err(io_err(&fresh))?;
    std::fs::remove_dir_all(&old).map_err(io_err(&old))
}

fn existing_generation_mismatch(w: &Writer) -> Result<bool> {
    Ok(w.bm25.committed_generation()?.unwrap_or(0) != w.manifest.generation)
}

/// The text BM25 indexes as a chunk's title: the document title and its heading path.
pub(crate) fn title_field(title: &str, heading: &[String]) -> String {
    let mut s = title.to_owned();
    for h in heading {
        if *h != title {
            s.push_str(" / ");
            s.push_str(h);
        }
    }
    s
}

/// The name a new source's documents are listed under: its file name ("src"), unless another
/// source has it, or `twin` (another path added with it has the same file name); then the
/// file name with as many folders above it as tell it apart ("rust-reference/src"); else a
/// number ("src-2"). No name is another's, nor a folder of another (`a` and `a/src` would give
/// keys that could be either's), nor the end of another ("src" beside "book/src").
fn source_name(abs: &Path, sources: &[Source], twin: bool) -> String {
    let clash = |name: &str| {
        sources.iter().any(|s| {
            s.name == name
                || s.name
                    .strip_prefix(name)
                    .is_some_and(|r| r.starts_with('/'))
                || s.name.strip_suffix(name).is_some_and(|r| r.ends_with('/'))
                || name
                    .strip_prefix(s.name.as_str())
                    .is_some_and(|r| r.starts_with('/'))
        })
    };
    let parts: Vec<String> = abs
        .components()
        .filter_map(|c| match c {
            std::path::Component::Normal(n) => Some(n.to_string_lossy().replace('/', "_")),
            _ => None,
        })
        .collect();
    let Some(base) = parts.last() else {
        return "root".to_owned();
    };
    let mut name = base.clone();
    if !twin && !clash(&name) {
        return name;
    }
    for folder in parts.iter().rev().skip(1).take(3) {
        name = format!("{folder}/{name}");
        if !clash(&name) {
            return name;
        }
    }
    let mut n = 2;
    loop {
        let name = format!("{base}-{n}");
        if !clash(&name) {
            return name;
        }
        n += 1;
    }
}
