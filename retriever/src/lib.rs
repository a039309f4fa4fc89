//! cairn-retriever: hybrid search over a knowledge base — a BM25 leg and a dense leg, fused.
//!
//! [`Retriever::search`] runs the legs a [`Mode`] asks for, fuses them ([`Fusion`]: reciprocal
//! rank or min-max score fusion, with a weight) and returns [`Hit`]s that carry each leg's rank
//! and score beside the fused one, so callers can show why a passage ranked where it did.
//! [`context`] turns hits into numbered sources that fit a generator's token budget, and
//! [`mod@ground`] attaches citations to an answer's sentences by checking them against those
//! sources. [`metrics`] has the BEIR measures (nDCG, recall, MRR) the evaluation uses.
//!
//! The design decision to know: each leg fetches more candidates than asked (`candidates`), and
//! fusion ranks the union; a chunk missing from one leg gets that leg's minimum, not a guess.

pub mod context;
pub mod duplicates;
pub mod followup;
mod fusion;
pub mod ground;
pub mod metrics;
pub mod scope;
mod shelves;
pub mod terms;

use std::collections::HashMap;

use cairn_index::{ChunkId, ChunkRecord, Embedder, Reader};

pub use context::{assemble, Context, ContextOptions, Excerpt, Source};
pub use duplicates::Elsewhere;
pub use followup::follow_up;
pub use fusion::{fuse, Fused, Fusion, LegHit};
pub use ground::{ground, Citation, Claim};
pub use shelves::{following, search_shelves, search_shelves_asked, search_shelves_with, Shelf};

/// A best-first list of chunks with one leg's scores.
pub type Ranked = Vec<(ChunkId, f32)>;

/// Which legs to run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// Keywords only.
    Bm25,
    /// Embeddings only.
    Dense,
    /// Both, fused.
    Hybrid,
}

/// Search settings.
#[derive(Clone, Copy, Debug)]
pub struct SearchOptions {
    /// Legs to run.
    pub mode: Mode,
    /// Fusion method for hybrid mode.
    pub fusion: Fusion,
    /// Weight of the dense leg in [0, 1].
    pub dense_weight: f32,
    /// Results wanted.
    pub k: usize,
    /// Candidates fetched from each leg before fusion.
    pub candidates: usize,
    /// Fold a hit into an earlier one when at least this share of its text is already shown
    /// (the same passage in another file: [`duplicates`]); the earlier hit lists it in
    /// [`Hit::also`] and the next candidate takes its place. `None` keeps every hit.
    pub fold_duplicates: Option<f32>,
}

impl Default for SearchOptions {
    /// Defaults chosen on SciFact (`cairn eval beir`, BENCHMARKS.md): min-max score fusion with
    /// weight 0.4 on the dense leg scored best on the calibration half of the queries, and beat
    /// both legs and RRF on the other half.
    fn default() -> Self {
        SearchOptions {
            mode: Mode::Hybrid,
            fusion: Fusion::Score,
            dense_weight: 0.4,
            k: 10,
            candidates: 100,
            fold_duplicates: Some(duplicates::DEFAULT_THRESHOLD),
        }
    }
}

/// Why a search failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The index failed.
    #[error(transparent)]
    Index(#[from] cairn_index::Error),
    /// The query could not be embedded.
    #[error("embedding the query failed: {0}")]
    Embed(String),
}

/// `Result` with this crate's [`Error`].
pub type Result<T> = std::result::Result<T, Error>;

/// One search result with its chunk.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Hit {
    /// 1-based fused rank.
    pub rank: usize,
    /// Scores and ranks.
    #[serde(flatten)]
    pub fused: Fused,
    /// The chunk.
    #[serde(skip)]
    pub chunk: ChunkRecord,
    /// Near-duplicates of this chunk found further down and folded into it, best first.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub also: Vec<Elsewhere>,
}

/// How many of the best fused candidates are read to find the passages that say what a
/// question asks about ([`terms::introduction`], [`terms::titled`]). Raised, such a passage
/// also raises the bar other passages must clear to join the context (`min_relative_score` of
/// the best), so fewer neighbours come with it.
const DEFINITION_POOL: usize = 20;

/// How many are read when the question asks what an abbreviation is or stands for ("What is
/// ZTA?"): a document that spells it out once may use it on every page after, and the
/// passages that only use it rank as high as the one that spells it out.
const ABBREVIATION_POOL: usize = 200;

/// What a passage that opens the section titled with the term asked about gains, as a share of
/// the best fused score, on top of [`definition_bonus`].
const TITLED: f32 = 0.4;

/// What a passage that says what the question asks about gains, as a share of the best fused
/// score. Asked what a term is, a term set off or named where it is introduced gains more than
/// a sentence that merely begins with it; asked what it does, a sentence that begins with it and
/// goes on with a verb ("The `inline` attribute suggests…") is how such a thing is described,
/// and gains almost as much. An abbreviation spelled out gains the whole best score, rising
/// above every passage that only uses it: what the letters stand for is said there alone.
/// These and [`TITLED`] were chosen on the calibration halves of
/// `eval/definitions` and `eval/purposes` (BENCHMARKS.md).
fn definition_bonus(how: terms::Introduction, asks: terms::Asks) -> f32 {
    match (how, asks) {
        (terms::Introduction::SpelledOut { defines }, _) => 2.0 + if defines { 0.2 } else { 0.0 },
        (terms::Introduction::Marked, _) => 0.6,
        (terms::Introduction::Begins, terms::Asks::Is) => 0.2,
        (terms::Introduction::Begins, terms::Asks::Does) => 0.5,
    }
}

/// Takes fused results best first until `k` hits are kept, fetching each one's chunk with
/// `fetch` (which may adjust the result, and returns `None` for a chunk that is gone), and
/// folding near-duplicates into the hit above them that shares most of their text.
pub(crate) fn collect_hits(
    query: &str,
    mut fused: Vec<Fused>,
    options: &SearchOptions,
    mut fetch: impl FnMut(&mut Fused) -> Result<Option<ChunkRecord>>,
) -> Result<Vec<Hit>> {
    let mut fetched: HashMap<ChunkId, Option<ChunkRecord>> = HashMap::new();
    // Asked what something is, the passages that say what it is rise among the best.
    if let (Some(subject), Some(top)) = (terms::subject(query), fused.first()) {
        let best = top.score;
        // An abbreviation is often used on every page of the document that spells it out once.
        let reach = if terms::abbreviation(query, &subject.term) {
            ABBREVIATION_POOL
        } else {
            DEFINITION_POOL
        };
        let pool = fused.len().min(reach.max(options.k));
        for f in &mut fused[..pool] {
            let chunk = fetch(f)?;
            if let Some(c) = &chunk {
                let how = terms::introduction(&subject.term, subject.asks, &c.text);
                let titled = terms::titled(&subject.term, &c.heading, &c.text);
                let bonus = how.map_or(0.0, |how| definition_bonus(how, subject.asks))
                    + if titled { TITLED } else { 0.0 };
                if how.is_some() || titled {
                    f.score += bonus * best;
                    f.defines = true;
                }
            }
            fetched.insert(f.id, chunk);
        }
        fused[..pool].sort_by(|a, b| b.score.total_cmp(&a.score).then(a.id.cmp(&b.id)));
    }
    let mut hits: Vec<Hit> = Vec::with_capacity(options.k);
    let mut seen = duplicates::Seen::new();
    for mut f in fused {
        if hits.len() == options.k {
            break;
        }
        let chunk = match fetched.remove(&f.id) {
            Some(chunk) => chunk,
            None => fetch(&mut f)?,
        };
        let Some(chunk) = chunk else {
            continue;
        };
        if let Some(share) = options.fold_duplicates {
            if let Some(i) = seen.check(&chunk, share) {
                hits[i].also.push(Elsewhere {
                    chunk_id: f.id,
                    doc: chunk.doc,
                    page: chunk.page,
                    lines: chunk.lines,
                });
                continue;
            }
        }
        hits.push(Hit {
            rank: hits.len() + 1,
            fused: f,
            chunk,
            also: Vec::new(),
        });
    }
    Ok(hits)
}

/// Searches one knowledge-base snapshot with one query embedder.
pub struct Retriever<'a> {
    reader: &'a Reader,
    embedder: &'a dyn Embedder,
}

impl<'a> Retriever<'a> {
    /// A retriever over `reader`, embedding queries with `embedder` (which must be the
    /// knowledge base's model; the caller checks the fingerprint).
    #[must_use]
    pub fn new(reader: &'a Reader, embedder: &'a dyn Embedder) -> Self {
        Retriever { reader, embedder }
    }

    /// Embeds a query.
    pub fn embed(&self, query: &str) -> Result<Vec<f32>> {
        let mut v = self.embedder.embed(&[query]).map_err(Error::Embed)?;
        v.pop()
            .ok_or_else(|| Error::Embed("no vector returned".into()))
    }

    /// The two legs' raw lists (empty for a leg the mode does not run).
    pub fn legs(
        &self,
        query: &str,
        vector: Option<&[f32]>,
        options: &SearchOptions,
    ) -> Result<(Ranked, Ranked)> {
        let n = options.candidates.max(options.k);
        let bm25 = if options.mode == Mode::Dense {
            Vec::new()
        } else {
            self.reader.bm25(query, n)?
        };
        let dense = if options.mode == Mode::Bm25 {
            Vec::new()
        } else {
            let v = match vector {
                Some(v) => v.to_vec(),
                None => self.embed(query)?,
            };
            self.reader.dense(&v, n)?
        };
        Ok((bm25, dense))
    }

    /// Runs a search.
    pub fn search(&self, query: &str, options: &SearchOptions) -> Result<Vec<Hit>> {
        let (bm25, dense) = self.legs(query, None, options)?;
        self.hits(query, &bm25, &dense, options)
    }

    /// Fuses two legs' lists for `query` into hits with their chunks.
    pub fn hits(
        &self,
        query: &str,
        bm25: &[(ChunkId, f32)],
        dense: &[(ChunkId, f32)],
        options: &SearchOptions,
    ) -> Result<Vec<Hit>> {
        let fused = match options.mode {
            Mode::Bm25 => fuse(bm25, &[], options.fusion, 0.0),
            Mode::Dense => fuse(&[], dense, options.fusion, 1.0),
            Mode::Hybrid => fuse(bm25, dense, options.fusion, options.dense_weight),
        };
        collect_hits(query, fused, options, |f| Ok(self.reader.chunk(f.id)?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fused(id: u64, score: f32) -> Fused {
        Fused {
            id: ChunkId(id),
            score,
            bm25: None,
            dense: None,
            defines: false,
        }
    }

    fn chunk(text: &str) -> ChunkRecord {
        ChunkRecord {
            doc: "closures.md".into(),
            hash: String::new(),
            text: text.into(),
            heading: Vec::new(),
            page: None,
            lines: (1, 1),
            range: (0, text.len()),
            in_code: false,
        }
    }

    fn ranked(query: &str) -> Vec<(u64, bool)> {
        let texts = [
            "### Moving Captured Values Out of Closures\n\nOnce a closure has captured a value",
            "Closures can capture values from their environment in three ways",
            "## Closures\n\nRust’s _closures_ are anonymous functions you can save in a variable",
        ];
        let list = vec![fused(0, 1.0), fused(1, 0.8), fused(2, 0.5)];
        let options = SearchOptions {
            k: 3,
            fold_duplicates: None,
            ..SearchOptions::default()
        };
        let hits = collect_hits(query, list, &options, |f| {
            Ok(Some(chunk(texts[f.id.0 as usize])))
        })
        .unwrap();
        hits.iter()
            .map(|h| (h.fused.id.0, h.fused.defines))
            .collect()
    }

    #[test]
    fn asked_what_something_is_the_passage_that_says_it_rises() {
        assert_eq!(
            ranked("What is a closure?"),
            [(2, true), (0, false), (1, false)]
        );
        assert_eq!(
            ranked("How do closures capture values?"),
            [(0, false), (1, false), (2, false)],
            "only a question asking what something is"
        );
    }
}
