//! Searching several knowledge bases at once (the user's own and installed packs) into one
//! ranking.
//!
//! The dense leg's cosines are comparable across sources (one embedding model). BM25 scores are
//! not (each index has its own term statistics), so each source's BM25 list is scaled by its
//! best score before the lists are merged; the fused ranking then works as for one source. The
//! hits keep each leg's raw score for display. A chunk's id is tagged with its source in the top
//! 16 bits while the lists are merged, so ids never collide.

use std::collections::HashMap;

use cairn_index::{ChunkId, ChunkRecord, Embedder, Reader};

use crate::{collect_hits, fuse, Error, Hit, Mode, Result, Retriever, SearchOptions};

/// One source to search.
pub struct Shelf<'a> {
    /// How its citations are labelled (`pack:rust-book@1.2.0`); `None` for the user's own
    /// knowledge base, whose document keys are shown as they are.
    pub label: Option<String>,
    /// The snapshot.
    pub reader: &'a Reader,
    /// Search it by keywords only (a pack embedded with another model, when the user asks).
    pub bm25_only: bool,
}

const SHIFT: u32 = 48;
const MASK: u64 = (1 << SHIFT) - 1;

/// Searches `shelves` with one query embedding, merged into one ranking of `options.k` hits.
/// Hits from a labelled shelf have their document key prefixed with `[label] `.
pub fn search_shelves(
    shelves: &[Shelf<'_>],
    embedder: &dyn Embedder,
    query: &str,
    options: &SearchOptions,
) -> Result<Vec<Hit>> {
    search_shelves_with(shelves, embedder, query, None, options)
}

/// [`search_shelves`] with the query's vector already computed (benchmarks time the two apart).
pub fn search_shelves_with(
    shelves: &[Shelf<'_>],
    embedder: &dyn Embedder,
    query: &str,
    vector: Option<&[f32]>,
    options: &SearchOptions,
) -> Result<Vec<Hit>> {
    // One unlabelled source searched as it always was: the same hits, byte for byte.
    if let [only] = shelves {
        if only.label.is_none() && !only.bm25_only {
            let r = Retriever::new(only.reader, embedder);
            if vector.is_none() {
                return r.search(query, options);
            }
            let (bm25, dense) = r.legs(query, vector, options)?;
            return r.hits(query, &bm25, &dense, options);
        }
    }
    if shelves.len() >= 1 << 16 {
        return Err(Error::Embed("too many sources".into()));
    }
    let vector = if options.mode == Mode::Bm25 || shelves.iter().all(|s| s.bm25_only) {
        None
    } else if let Some(v) = vector {
        Some(v.to_vec())
    } else {
        Some(Retriever::new(shelves[0].reader, embedder).embed(query)?)
    };
    let mut bm25 = Vec::new();
    let mut dense = Vec::new();
    let mut raw_bm25: HashMap<ChunkId, f32> = HashMap::new();
    for (i, shelf) in shelves.iter().enumerate() {
        let mut o = *options;
        if shelf.bm25_only {
            o.mode = Mode::Bm25;
        }
        let r = Retriever::new(shelf.reader, embedder);
        let (b, d) = r.legs(query, vector.as_deref(), &o)?;
        let tag = |id: ChunkId| ChunkId(((i as u64) << SHIFT) | (id.0 & MASK));
        let best = b.iter().map(|x| x.1).fold(0.0f32, f32::max);
        for (id, s) in b {
            raw_bm25.insert(tag(id), s);
            bm25.push((tag(id), if best > 0.0 { s / best } else { 0.0 }));
        }
        dense.extend(d.into_iter().map(|(id, s)| (tag(id), s)));
    }
    let by_score = |a: &(ChunkId, f32), b: &(ChunkId, f32)| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0));
    bm25.sort_by(by_score);
    dense.sort_by(by_score);
    let fused = match options.mode {
        Mode::Bm25 => fuse(&bm25, &[], options.fusion, 0.0),
        Mode::Dense => fuse(&[], &dense, options.fusion, 1.0),
        Mode::Hybrid => fuse(&bm25, &dense, options.fusion, options.dense_weight),
    };
    collect_hits(query, fused, options, |f| {
        let shelf = &shelves[(f.id.0 >> SHIFT) as usize];
        let Some(mut chunk) = shelf.reader.chunk(ChunkId(f.id.0 & MASK))? else {
            return Ok(None);
        };
        if let (Some(leg), Some(&raw)) = (f.bm25.as_mut(), raw_bm25.get(&f.id)) {
            leg.score = raw;
        }
        if let Some(label) = &shelf.label {
            chunk.doc = format!("[{label}] {}", chunk.doc);
        }
        Ok(Some(chunk))
    })
}

/// The chunks that follow chunk `id` (numbered as [`search_shelves`] numbers its hits) in its
/// document, at most `n`, in text order, numbered and labelled as its hits would be.
pub fn following(
    shelves: &[Shelf<'_>],
    id: ChunkId,
    n: usize,
) -> Result<Vec<(ChunkId, ChunkRecord)>> {
    let i = (id.0 >> SHIFT) as usize;
    let Some(shelf) = shelves.get(i) else {
        return Ok(Vec::new());
    };
    let raw = id.0 & MASK;
    let Some(chunk) = shelf.reader.chunk(ChunkId(raw))? else {
        return Ok(Vec::new());
    };
    let Some(doc) = shelf.reader.document(&chunk.doc)? else {
        return Ok(Vec::new());
    };
    let Some(at) = doc.chunks.iter().position(|&c| c == raw) else {
        return Ok(Vec::new());
    };
    let mut out = Vec::new();
    for &next in doc.chunks[at + 1..].iter().take(n) {
        let Some(mut c) = shelf.reader.chunk(ChunkId(next))? else {
            break;
        };
        if let Some(label) = &shelf.label {
            c.doc = format!("[{label}] {}", c.doc);
        }
        out.push((ChunkId(((i as u64) << SHIFT) | next), c));
    }
    Ok(out)
}
