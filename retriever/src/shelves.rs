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
    // A question naming one of the sources ("In the Rust Book, …") searches it alone, without
    // the words that name it.
    let scope = scoped(shelves, query)?;
    search_scoped(shelves, embedder, query, scope.as_ref(), vector, options)
}

/// [`search_shelves`], also giving the question as it was searched when it named one of the
/// sources ([`crate::scope::source_named`]): without the words that name it.
pub fn search_shelves_asked(
    shelves: &[Shelf<'_>],
    embedder: &dyn Embedder,
    query: &str,
    options: &SearchOptions,
) -> Result<(Vec<Hit>, Option<String>)> {
    let scope = scoped(shelves, query)?;
    let asked = scope.as_ref().map(|s| s.question.clone());
    let hits = search_scoped(shelves, embedder, query, scope.as_ref(), None, options)?;
    Ok((hits, asked))
}

/// [`search_shelves_with`], the source `query` names already found. Where one of the best hits
/// spells out an abbreviation in words the question uses ("zero trust architecture (ZTA)"),
/// both legs also search the question with the abbreviation in their place
/// ([`crate::terms::abbreviated_query`]), for the passages that use it alone, and each passage
/// keeps the better of its two scores in each leg. The hits are then the question's (what they
/// say of it, how their passages are ranked as defining what it asks about).
fn search_scoped(
    shelves: &[Shelf<'_>],
    embedder: &dyn Embedder,
    query: &str,
    scope: Option<&Scoped>,
    vector: Option<&[f32]>,
    options: &SearchOptions,
) -> Result<Vec<Hit>> {
    let hits = search_terms(shelves, embedder, query, None, scope, vector, options)?;
    if options.mode == Mode::Dense {
        return Ok(hits);
    }
    let asked = scope.as_ref().map_or(query, |s| s.question.as_str());
    let Some(variant) = hits
        .iter()
        .take(options.k)
        .find_map(|h| crate::terms::abbreviated_query(asked, &h.chunk.text))
    else {
        return Ok(hits);
    };
    search_terms(
        shelves,
        embedder,
        query,
        Some(&variant),
        scope,
        vector,
        options,
    )
}

/// Two rankings of one leg as one: each passage at the better of its scores, `variant`'s
/// (keyword scores, which are not comparable from one query to another) `scaled` so that its
/// best equals `question`'s best; best first.
fn better_of(
    question: Vec<(ChunkId, f32)>,
    variant: Vec<(ChunkId, f32)>,
    scaled: bool,
) -> Vec<(ChunkId, f32)> {
    let top = |l: &[(ChunkId, f32)]| l.iter().map(|x| x.1).fold(0.0f32, f32::max);
    let scale = match (top(&question), top(&variant)) {
        (q, v) if scaled && q > 0.0 && v > 0.0 => q / v,
        _ => 1.0,
    };
    let mut best: HashMap<ChunkId, f32> = question.into_iter().collect();
    for (id, s) in variant {
        let s = s * scale;
        best.entry(id).and_modify(|b| *b = b.max(s)).or_insert(s);
    }
    let mut out: Vec<(ChunkId, f32)> = best.into_iter().collect();
    out.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
    out
}

/// [`search_scoped`] once, each leg searching the question and, given one, its `variant` too,
/// a passage scored by the better of the two ([`better_of`]).
fn search_terms(
    shelves: &[Shelf<'_>],
    embedder: &dyn Embedder,
    query: &str,
    variant: Option<&str>,
    scope: Option<&Scoped>,
    vector: Option<&[f32]>,
    options: &SearchOptions,
) -> Result<Vec<Hit>> {
    let query = scope.as_ref().map_or(query, |s| s.question.as_str());
    let mut options = *options;
    if scope.is_some() {
        options.candidates = options.candidates.max(SCOPED_CANDIDATES);
    }
    let options = &options;
    // One unlabelled source searched as it always was: the same hits, byte for byte.
    if let (None, [only]) = (&scope, shelves) {
        if only.label.is_none() && !only.bm25_only {
            let r = Retriever::new(only.reader, embedder);
            if vector.is_none() && variant.is_none() {
                return r.search(query, options);
            }
            let (mut bm25, mut dense) = r.legs(query, vector, options)?;
            if let Some(v) = variant {
                let (b, d) = r.legs(v, None, options)?;
                (bm25, dense) = (better_of(bm25, b, true), better_of(dense, d, false));
            }
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
    let variant_vector = match (variant, &vector) {
        (Some(v), Some(_)) => Some(Retriever::new(shelves[0].reader, embedder).embed(v)?),
        _ => None,
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
        let (mut b, mut d) = r.legs(query, vector.as_deref(), &o)?;
        if let Some(v) = variant {
            let (vb, vd) = r.legs(v, variant_vector.as_deref(), &o)?;
            (b, d) = (better_of(b, vb, true), better_of(d, vd, false));
        }
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
        if let Some(s) = &scope {
            let within = s.shelf == (f.id.0 >> SHIFT) as usize
                && s.prefix.as_ref().is_none_or(|p| {
                    chunk.doc == *p
                        || chunk
                            .doc
                            .strip_prefix(p.as_str())
                            .is_some_and(|r| r.starts_with('/'))
                });
            if !within {
                return Ok(None);
            }
        }
        if let (Some(leg), Some(&raw)) = (f.bm25.as_mut(), raw_bm25.get(&f.id)) {
            leg.score = raw;
        }
        if let Some(label) = &shelf.label {
            chunk.doc = format!("[{label}] {}", chunk.doc);
        }
        Ok(Some(chunk))
    })
}

/// Candidates fetched from each leg when a question names a source: most of a leg's best may
/// be from the others.
const SCOPED_CANDIDATES: usize = 300;

/// The source a query names among the shelves' ([`crate::scope::source_named`]).
struct Scoped {
    /// The query without the words naming it.
    question: String,
    /// The shelf it is on.
    shelf: usize,
    /// Its name, the prefix of its documents' keys; `None` for a pack (the whole shelf).
    prefix: Option<String>,
}

/// What [`Scoped`] source `query` names, if one: the packs by their labels (`rust-book@1.2.0`),
/// the knowledge base's own sources by their names.
fn scoped(shelves: &[Shelf<'_>], query: &str) -> Result<Option<Scoped>> {
    let mut targets: Vec<(usize, Option<String>)> = Vec::new();
    let mut names: Vec<String> = Vec::new();
    for (i, shelf) in shelves.iter().enumerate() {
        if let Some(label) = &shelf.label {
            targets.push((i, None));
            names.push(label.split('@').next().unwrap_or(label).to_owned());
        } else {
            for source in shelf.reader.sources()? {
                targets.push((i, Some(source.name.clone())));
                names.push(source.name);
            }
        }
    }
    Ok(crate::scope::source_named(query, &names).map(|n| Scoped {
        question: n.question,
        shelf: targets[n.source].0,
        prefix: targets[n.source].1.clone(),
    }))
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn two_rankings_keep_each_passage_s_better_score() {
        let ids = |l: &[(ChunkId, f32)]| l.iter().map(|x| (x.0 .0, x.1)).collect::<Vec<_>>();
        let question = vec![(ChunkId(1), 10.0), (ChunkId(2), 6.0)];
        let variant = vec![(ChunkId(3), 5.0), (ChunkId(2), 4.0)];
        // Keyword scores: the variant's best becomes the question's best.
        assert_eq!(
            ids(&better_of(question.clone(), variant.clone(), true)),
            [(1, 10.0), (3, 10.0), (2, 8.0)]
        );
        // Cosines compare as they are.
        assert_eq!(
            ids(&better_of(question, variant, false)),
            [(1, 10.0), (2, 6.0), (3, 5.0)]
        );
    }
}
