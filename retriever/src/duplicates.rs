//! Folding near-duplicate passages into the first hit that holds them.
//!
//! Documentation trees often carry the same text twice: a book's chapters and the printed
//! edition made from them, a page copied into two versions of a manual, a pack installed beside
//! the user's own copy of the same files. Each copy is chunked at its own line breaks, so the
//! chunks differ in their edges and markup while holding the same sentences, and a search then
//! spends half its places (and an answer half its context) on text already shown.
//!
//! A later hit is a near-duplicate when most of its word 5-grams already appear in the hits kept
//! above it: then it adds little a reader has not seen. It is not dropped silently; the kept hit
//! that shares most of its text lists it under [`Hit::also`](crate::Hit::also). Chunks of one
//! document whose lines overlap are neighbours, not copies, and are never folded into each other.

use std::collections::HashSet;

use cairn_index::{ChunkId, ChunkRecord};

/// Words per shingle: long enough that two passages share one only by sharing a phrase.
const SHINGLE: usize = 5;

/// A hit whose shingles are at least this share already shown is folded. On the Markdown trees
/// of ../shared/eval/markdown (BENCHMARKS.md, session 20) the shares of later hits against
/// earlier ones cluster below 0.3 and above 0.6, alike in both halves of the question set; 0.5
/// sits in the gap.
pub const DEFAULT_THRESHOLD: f32 = 0.5;

/// Where else a hit's text was found.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Elsewhere {
    /// The folded chunk.
    pub chunk_id: ChunkId,
    /// Its document's key (prefixed with `[label] ` for a pack's, as hits are).
    pub doc: String,
    /// Its page (PDFs).
    pub page: Option<u32>,
    /// Its first and last line.
    pub lines: (u32, u32),
}

/// The hashed word 5-grams of a passage. A passage of fewer than five words is one shingle.
#[must_use]
pub fn shingles(text: &str) -> HashSet<u64> {
    let words: Vec<String> = text
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(str::to_lowercase)
        .collect();
    if words.is_empty() {
        return HashSet::new();
    }
    let n = SHINGLE.min(words.len());
    words.windows(n).map(fnv).collect()
}

/// FNV-1a over the words with a separator: stable across runs and platforms.
fn fnv(words: &[String]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for w in words {
        for b in w.bytes().chain(std::iter::once(0xff)) {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
    }
    h
}

/// The passages kept so far, to test later ones against: where each is, and its shingles.
#[derive(Default)]
pub struct Seen {
    kept: Vec<(Place, HashSet<u64>)>,
    all: HashSet<u64>,
}

/// Where a kept chunk is: what [`neighbours`] compares.
struct Place {
    doc: String,
    page: Option<u32>,
    lines: (u32, u32),
}

impl Seen {
    /// Nothing seen yet.
    #[must_use]
    pub fn new() -> Self {
        Seen::default()
    }

    /// Tests `chunk` against what was kept. When it is a near-duplicate (at least `threshold` of
    /// its shingles already shown, and at least one kept hit it may be folded into), returns the
    /// index of the kept hit that shares most of its text; otherwise keeps it and returns `None`.
    pub fn check(&mut self, chunk: &ChunkRecord, threshold: f32) -> Option<usize> {
        let own = shingles(&chunk.text);
        if !own.is_empty() && !self.kept.is_empty() {
            let shown = own.iter().filter(|s| self.all.contains(s)).count();
            #[allow(clippy::cast_precision_loss)] // shingle counts are far below 2^24
            let share = shown as f32 / own.len() as f32;
            if share >= threshold {
                let best = self
                    .kept
                    .iter()
                    .enumerate()
                    .filter(|(_, (k, _))| !neighbours(k, chunk))
                    .map(|(i, (_, s))| (i, own.intersection(s).count()))
                    .filter(|&(_, n)| n > 0)
                    .max_by_key(|&(i, n)| (n, std::cmp::Reverse(i)));
                if let Some((i, _)) = best {
                    return Some(i);
                }
            }
        }
        self.all.extend(own.iter().copied());
        let place = Place {
            doc: chunk.doc.clone(),
            page: chunk.page,
            lines: chunk.lines,
        };
        self.kept.push((place, own));
        None
    }
}

/// A kept chunk and a later one of one document whose lines (on one page) overlap: neighbours the
/// chunker cut with a shared edge, not copies.
fn neighbours(a: &Place, b: &ChunkRecord) -> bool {
    a.doc == b.doc && a.page == b.page && a.lines.0 <= b.lines.1 && b.lines.0 <= a.lines.1
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chunk(doc: &str, lines: (u32, u32), text: &str) -> ChunkRecord {
        ChunkRecord {
            doc: doc.into(),
            hash: String::new(),
            text: text.into(),
            heading: Vec::new(),
            page: None,
            lines,
            range: (0, text.len()),
            in_code: false,
        }
    }

    const VEC: &str = "To create a vector and then add elements to it, we can use the push \
        method. As with any variable, if we want to be able to change its value, we need to \
        make it mutable using the mut keyword.";

    #[test]
    fn a_copy_with_other_edges_and_markup_is_folded_into_the_first() {
        let mut seen = Seen::new();
        assert_eq!(seen.check(&chunk("src/ch08.md", (10, 14), VEC), 0.5), None);
        let other = chunk("other.md", (1, 3), "Hash maps store keys with values.");
        assert_eq!(seen.check(&other, 0.5), None);
        let copy = format!(
            "### Updating a Vector\n\n{}\n\n<span class=\"filename\">Filename: src/main.rs</span>",
            VEC.replace("push", "`push`")
        );
        assert_eq!(
            seen.check(&chunk("nostarch/chapter08.md", (200, 209), &copy), 0.5),
            Some(0)
        );
    }

    #[test]
    fn overlapping_neighbours_of_one_document_are_both_kept() {
        let mut seen = Seen::new();
        assert_eq!(seen.check(&chunk("a.md", (10, 20), VEC), 0.5), None);
        // The same text at overlapping lines of the same document is the chunker's shared edge.
        assert_eq!(seen.check(&chunk("a.md", (18, 30), VEC), 0.5), None);
        // At lines that do not overlap it is a repetition, and folded.
        assert_eq!(seen.check(&chunk("a.md", (40, 50), VEC), 0.5), Some(0));
    }

    #[test]
    fn a_passage_sharing_less_than_the_threshold_is_kept() {
        let mut seen = Seen::new();
        assert_eq!(seen.check(&chunk("a.md", (1, 4), VEC), 0.5), None);
        // The first sentence again, then as much new text: a share of shingles under a half.
        let half = "To create a vector and then add elements to it, we can use the push method. \
            Strings are stored as a collection of UTF-8 encoded bytes, and indexing into one by \
            an integer is not allowed because a byte index may fall inside a character.";
        assert_eq!(seen.check(&chunk("b.md", (1, 4), half), 0.5), None);
        // At a lower bar it is folded: 12 of its 42 5-grams (0.29) are the first sentence's.
        let mut seen = Seen::new();
        seen.check(&chunk("a.md", (1, 4), VEC), 0.2);
        assert_eq!(seen.check(&chunk("b.md", (1, 4), half), 0.2), Some(0));
    }

    #[test]
    fn the_kept_hit_sharing_most_of_the_text_gets_the_copy() {
        let mut seen = Seen::new();
        let first = "The push method adds an element. Unrelated words follow here to pad it out.";
        assert_eq!(seen.check(&chunk("a.md", (1, 2), first), 0.5), None);
        assert_eq!(seen.check(&chunk("b.md", (1, 4), VEC), 0.5), None);
        assert_eq!(seen.check(&chunk("c.md", (1, 4), VEC), 0.5), Some(1));
    }

    #[test]
    fn shingles_ignore_case_punctuation_and_short_passages_are_one() {
        assert_eq!(
            shingles("The `push` method, adds!"),
            shingles("the push METHOD adds")
        );
        assert_eq!(shingles("one two").len(), 1);
        assert!(shingles("  — ").is_empty());
        assert_eq!(shingles("a b c d e f").len(), 2);
    }
}
