//! A canonical copy of a knowledge base, which packs are made from.
//!
//! A working knowledge base carries its history: the time of each commit, the files' mtimes,
//! where on the builder's disk each source was, BM25 segments as commits and merges left them
//! (under random names), and a vector graph built by threads racing each other. None of that is
//! content, and all of it makes two builds of the same documents differ. The copy keeps the
//! content — every table, the same chunk ids, the same vectors — and writes the rest in one
//! fixed way: one store transaction in key order, source paths reduced to their names, mtimes
//! zeroed, one BM25 segment under a name derived from its position, and (when asked) a graph
//! built by inserting the vectors one at a time in id order.

use std::path::{Path, PathBuf};

use redb::{ReadableDatabase, ReadableTable, ReadableTableMetadata};

use crate::bm25::Bm25;
use crate::error::{Error, Result};
use crate::flat::FlatGraph;
use crate::store::{
    self, from_json, store_err, to_json, DocRecord, GraphState, Source, CHUNKS, DOCUMENTS, HASHES,
    MANIFEST, SKIPPED, SOURCES, TOMBSTONES, VECTORS,
};
use crate::vectors::{Graph, GRAPH_MIN_POINTS};
use crate::writer::title_field;
use crate::{BM25_DIR, VECTORS_DIR};

/// How [`write_canonical`] writes what is not content.
#[derive(Clone, Copy, Debug, Default)]
pub struct CanonicalOptions {
    /// The commit time written in the manifest (Unix seconds; 0 for a reproducible build).
    pub committed_at: u64,
    /// Rebuild the vector graph by inserting vectors one at a time in id order, so that the
    /// same vectors give the same graph (slower: one core). Otherwise the source's graph is
    /// copied when it has the mapped layout, and built on every core when it has not.
    pub deterministic_graph: bool,
}

/// The copy's one commit.
const GENERATION: u64 = 1;
/// The copy's graph files, `vectors/g1.hnsw.flat`.
const BASENAME: &str = "g1";

fn io_at(path: &Path) -> impl FnOnce(std::io::Error) -> Error + '_ {
    move |source| Error::Io {
        path: path.to_owned(),
        source,
    }
}

/// Writes a canonical copy of the knowledge base at `src` into `dst`, which must not exist
/// yet. `src` is only read (it may be in use by a writer: the copy is of its last commit).
///
/// # Errors
/// If `src` cannot be read or `dst` cannot be written.
pub fn write_canonical(src: &Path, dst: &Path, options: &CanonicalOptions) -> Result<()> {
    let src_store = store::store_path(src);
    if !src_store.exists() {
        return Err(Error::NotFound(src.to_owned()));
    }
    let serr = store_err(&src_store);
    let db = store::open_read_only(src, &src_store)?;
    let txn = db.begin_read().map_err(|e| serr(e.into()))?;
    let mut manifest = store::read_manifest(&src_store, &txn)?.ok_or_else(|| Error::Corrupt {
        path: src_store.clone(),
        message: "no manifest: not a knowledge base".into(),
    })?;

    std::fs::create_dir(dst).map_err(io_at(dst))?;
    std::fs::create_dir(dst.join(VECTORS_DIR)).map_err(io_at(dst))?;
    let dst_store = store::store_path(dst);
    let derr = store_err(&dst_store);
    let out = store::open_writable(&dst_store)?;
    let w = out.begin_write().map_err(|e| derr(e.into()))?;

    // Documents (mtimes zeroed) and their titles, which BM25 indexes with each chunk.
    let mut titles = std::collections::HashMap::new();
    {
        let mut t = w.open_table(DOCUMENTS).map_err(|e| derr(e.into()))?;
        for row in txn
            .open_table(DOCUMENTS)
            .map_err(|e| serr(e.into()))?
            .iter()
            .map_err(|e| serr(e.into()))?
        {
            let (k, v) = row.map_err(|e| serr(e.into()))?;
            let mut doc: DocRecord = from_json(&src_store, v.value())?;
            doc.mtime_ns = 0;
            titles.insert(doc.key.clone(), doc.title.clone());
            t.insert(k.value(), to_json(&doc).as_str())
                .map_err(|e| derr(e.into()))?;
        }
    }
    // Sources: where they were on the builder's disk is neither content nor anyone's business.
    {
        let mut t = w.open_table(SOURCES).map_err(|e| derr(e.into()))?;
        for row in txn
            .open_table(SOURCES)
            .map_err(|e| serr(e.into()))?
            .iter()
            .map_err(|e| serr(e.into()))?
        {
            let (k, v) = row.map_err(|e| serr(e.into()))?;
            let mut source: Source = from_json(&src_store, v.value())?;
            source.path = PathBuf::from(&source.name);
            t.insert(k.value(), to_json(&source).as_str())
                .map_err(|e| derr(e.into()))?;
        }
    }
    copy_str_table(&txn, &w, SKIPPED, &src_store, &dst_store)?;
    {
        let mut t = w.open_table(HASHES).map_err(|e| derr(e.into()))?;
        for row in txn
            .open_table(HASHES)
            .map_err(|e| serr(e.into()))?
            .iter()
            .map_err(|e| serr(e.into()))?
        {
            let (k, v) = row.map_err(|e| serr(e.into()))?;
            t.insert(k.value(), v.value()).map_err(|e| derr(e.into()))?;
        }
    }

    // Chunks, also into BM25 in id order.
    let bm25 = Bm25::open_or_create(&dst.join(BM25_DIR))?;
    let mut indexer = bm25.canonical_writer()?;
    {
        let mut t = w.open_table(CHUNKS).map_err(|e| derr(e.into()))?;
        for row in txn
            .open_table(CHUNKS)
            .map_err(|e| serr(e.into()))?
            .iter()
            .map_err(|e| serr(e.into()))?
        {
            let (k, v) = row.map_err(|e| serr(e.into()))?;
            let rec: store::ChunkRecord = from_json(&src_store, v.value())?;
            let title = titles.get(&rec.doc).map_or("", String::as_str);
            bm25.add(
                &indexer,
                k.value(),
                &title_field(title, &rec.heading),
                &rec.text,
                rec.in_code,
            )?;
            t.insert(k.value(), v.value()).map_err(|e| derr(e.into()))?;
        }
    }
    bm25.commit(&mut indexer, GENERATION)?;
    bm25.merge_into_one_segment(indexer)?;

    // Vectors, and the graph over them: the source's mapped graph copied, or a new one fed
    // every live vector in id order. The copy's store keeps only the vectors its graph lacks
    // (none, or those newer than a copied graph), so that a pack carries each vector once.
    // A source that is itself such a copy gives the vectors its graph holds from there.
    let src_vectors = txn.open_table(VECTORS).map_err(|e| serr(e.into()))?;
    let held = graph_held(src, &manifest, &txn)?;
    let live = src_vectors.len().map_err(|e| serr(e.into()))? as usize
        + held.as_ref().map_or(0, |(_, nodes)| nodes.len());
    let graph_dir = dst.join(VECTORS_DIR);
    let copied = match (&manifest.graph, options.deterministic_graph) {
        (Some(g), false) => {
            let flat = src
                .join(VECTORS_DIR)
                .join(format!("{}.hnsw.flat", g.basename));
            if flat.is_file() {
                let to = graph_dir.join(format!("{BASENAME}.hnsw.flat"));
                std::fs::copy(&flat, &to).map_err(io_at(&to))?;
                Some(GraphState {
                    basename: BASENAME.into(),
                    ..g.clone()
                })
            } else {
                None
            }
        }
        _ => None,
    };
    let tombstones_kept = copied.is_some();
    let graph = (copied.is_none() && live >= GRAPH_MIN_POINTS).then(|| Graph::new(live));
    // The ids a graph of the copy holds: up to the copied graph's last, or all; with no graph
    // (too few live vectors, even when the source kept them in its graph), none, and the
    // store keeps every vector.
    let in_graph = |id: u64| match (&copied, &graph) {
        (Some(g), _) => id <= g.max_id,
        (None, Some(_)) => true,
        (None, None) => false,
    };
    let mut max_id = 0;
    {
        let mut t = w.open_table(VECTORS).map_err(|e| derr(e.into()))?;
        let mut batch = Vec::with_capacity(1024);
        // A copied graph holds all that the source's graph does: those need no copy.
        let from_graph = held
            .iter()
            .filter(|_| copied.is_none())
            .flat_map(|(flat, nodes)| {
                nodes
                    .iter()
                    .map(|&(id, node)| Ok((id, flat.node_vector(node))))
            });
        let from_store = src_vectors.iter().map_err(|e| serr(e.into()))?.map(|row| {
            let (k, v) = row.map_err(|e| serr(e.into()))?;
            Ok((k.value(), store::bytes_vector(v.value())))
        });
        for item in from_graph.chain(from_store) {
            let (id, v): (u64, Vec<f32>) = item?;
            if !in_graph(id) {
                t.insert(id, store::vector_bytes(&v).as_slice())
                    .map_err(|e| derr(e.into()))?;
            }
            if let Some(graph) = &graph {
                max_id = id;
                batch.push((id, v));
                if batch.len() == 1024 {
                    graph.insert_in(&batch, options.deterministic_graph);
                    batch.clear();
                }
            }
        }
        if let Some(graph) = &graph {
            graph.insert_in(&batch, options.deterministic_graph);
        }
    }
    manifest.graph = match graph {
        Some(graph) => {
            graph.dump_flat(&graph_dir, BASENAME)?;
            Some(GraphState {
                basename: BASENAME.into(),
                max_id,
                points: graph.points() as u64,
            })
        }
        None => copied,
    };
    manifest.format_version = if manifest.graph.is_some() {
        store::GRAPH_VECTORS_FORMAT_VERSION
    } else {
        store::FORMAT_VERSION
    };
    {
        // Deleted chunks still in a copied graph stay marked; a new graph has none.
        let mut t = w.open_table(TOMBSTONES).map_err(|e| derr(e.into()))?;
        if tombstones_kept {
            for row in txn
                .open_table(TOMBSTONES)
                .map_err(|e| serr(e.into()))?
                .iter()
                .map_err(|e| serr(e.into()))?
            {
                let (k, _) = row.map_err(|e| serr(e.into()))?;
                t.insert(k.value(), ()).map_err(|e| derr(e.into()))?;
            }
        }
    }
    manifest.generation = GENERATION;
    manifest.committed_at = options.committed_at;
    w.open_table(MANIFEST)
        .map_err(|e| derr(e.into()))?
        .insert("manifest", to_json(&manifest).as_str())
        .map_err(|e| derr(e.into()))?;
    w.commit().map_err(|e| derr(e.into()))?;
    Ok(())
}

fn copy_str_table(
    from: &redb::ReadTransaction,
    to: &redb::WriteTransaction,
    table: redb::TableDefinition<&str, &str>,
    src: &Path,
    dst: &Path,
) -> Result<()> {
    let mut t = to.open_table(table).map_err(|e| store_err(dst)(e.into()))?;
    for row in from
        .open_table(table)
        .map_err(|e| store_err(src)(e.into()))?
        .iter()
        .map_err(|e| store_err(src)(e.into()))?
    {
        let (k, v) = row.map_err(|e| store_err(src)(e.into()))?;
        t.insert(k.value(), v.value())
            .map_err(|e| store_err(dst)(e.into()))?;
    }
    Ok(())
}

/// A source's mapped graph, and its live nodes as (chunk id, node), by id.
type Held = (FlatGraph, Vec<(u64, usize)>);

/// For a source that keeps its vectors in its graph ([`store::GRAPH_VECTORS_FORMAT_VERSION`]):
/// the mapped graph, and its live nodes as (chunk id, node), by id.
fn graph_held(
    src: &Path,
    manifest: &store::Manifest,
    txn: &redb::ReadTransaction,
) -> Result<Option<Held>> {
    let Some(g) = manifest
        .graph
        .as_ref()
        .filter(|_| manifest.format_version == store::GRAPH_VECTORS_FORMAT_VERSION)
    else {
        return Ok(None);
    };
    let src_store = store::store_path(src);
    let serr = store_err(&src_store);
    let flat = FlatGraph::open(
        &src.join(VECTORS_DIR)
            .join(format!("{}.hnsw.flat", g.basename)),
    )?;
    let mut dead = std::collections::HashSet::new();
    if let Ok(table) = txn.open_table(TOMBSTONES) {
        for row in table.iter().map_err(|e| serr(e.into()))? {
            let (k, _) = row.map_err(|e| serr(e.into()))?;
            dead.insert(k.value());
        }
    }
    let mut nodes: Vec<(u64, usize)> = flat
        .ids()
        .enumerate()
        .filter(|&(_, id)| id <= g.max_id && !dead.contains(&id))
        .map(|(node, id)| (id, node))
        .collect();
    nodes.sort_unstable();
    Ok(Some((flat, nodes)))
}
