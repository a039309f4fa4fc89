//! Structure-aware chunking bounded by the embedder's token budget.
//!
//! A chunk never crosses a section (heading or page) boundary, except that a tiny section (a
//! heading with a line under it, a near-empty page) is glued to the one after it. Inside a
//! section, text is cut into units — sentences, or lines for code, lists and tables, or token
//! windows for a run-on line — and units are packed greedily up to the budget, preferring to end
//! a chunk at a paragraph break. Consecutive chunks of a section share up to `overlap_tokens`
//! tokens of whole units, so a sentence cut from its context still appears with it once.

use std::ops::Range;

use crate::document::{DocKind, Document};

/// Counts tokens the way the embedder will see them.
pub trait TokenCounter {
    /// Byte offsets in `text` at which each token ends, in order (so `len()` is the count and
    /// every offset is a char boundary).
    fn token_ends(&self, text: &str) -> Vec<usize>;

    /// The number of tokens in `text`.
    fn count(&self, text: &str) -> usize {
        self.token_ends(text).len()
    }
}

/// Counts whitespace-separated words: for tests and for callers without a tokenizer.
#[derive(Clone, Copy, Debug, Default)]
pub struct WordCounter;

impl TokenCounter for WordCounter {
    fn token_ends(&self, text: &str) -> Vec<usize> {
        let mut ends = Vec::new();
        let mut in_word = false;
        for (i, c) in text.char_indices() {
            if c.is_whitespace() {
                if in_word {
                    ends.push(i);
                }
                in_word = false;
            } else {
                in_word = true;
            }
        }
        if in_word {
            ends.push(text.len());
        }
        ends
    }
}

/// Chunking settings; part of an index's fingerprint.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ChunkOptions {
    /// Hard upper bound of tokens per chunk (without the embedder's special tokens).
    pub max_tokens: usize,
    /// Tokens of whole units repeated at the start of the next chunk of the same section.
    pub overlap_tokens: usize,
    /// Sections with fewer tokens are glued to the next section.
    pub min_section_tokens: usize,
}

impl Default for ChunkOptions {
    fn default() -> Self {
        ChunkOptions {
            max_tokens: 200,
            overlap_tokens: 32,
            min_section_tokens: 24,
        }
    }
}

/// A piece of a document small enough to embed, with where it came from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Chunk {
    /// Byte range in [`Document::text`]; starts and ends on non-whitespace.
    pub range: Range<usize>,
    /// The heading path of the section the chunk ends in, or, when it ends in a section that is
    /// not under the one it starts in, the headings the two share.
    pub heading: Vec<String>,
    /// The page the chunk starts on, for PDFs.
    pub page: Option<u32>,
    /// First and last line (1-based, inclusive; per page for PDFs).
    pub lines: (u32, u32),
    /// Tokens, as counted by the [`TokenCounter`].
    pub tokens: usize,
    /// The chunk begins inside a fenced code block (a long block cut between chunks), so that
    /// a reader of its text alone knows its first lines are code and its first fence closes.
    pub in_code: bool,
}

/// Whether a line opens or closes a fenced code block (```` ``` ```` or `~~~`, as Markdown
/// writes them and the HTML reader fences `<pre>`).
#[must_use]
pub fn is_fence(line: &str) -> bool {
    let t = line.trim_start();
    t.starts_with("```") || t.starts_with("~~~")
}

/// The byte offsets where `text`'s fence lines ([`is_fence`]) begin, ascending.
#[must_use]
pub fn fence_lines(text: &str) -> Vec<usize> {
    let mut at = 0;
    let mut out = Vec::new();
    for line in text.split('\n') {
        if is_fence(line) {
            out.push(at);
        }
        at += line.len() + 1;
    }
    out
}

#[derive(Clone, Debug)]
struct Unit {
    range: Range<usize>,
    tokens: usize,
    section: usize,
    /// The unit starts a paragraph.
    para_start: bool,
}

fn trim_range(text: &str, r: Range<usize>) -> Range<usize> {
    let s = &text[r.clone()];
    let start = r.start + (s.len() - s.trim_start().len());
    let end = r.start + s.trim_end().len();
    start..end.max(start)
}

/// Splits `r` at blank lines into paragraph ranges (trimmed, non-empty).
fn paragraphs(text: &str, r: Range<usize>) -> Vec<Range<usize>> {
    let mut out = Vec::new();
    let mut start = r.start;
    let mut line_start = r.start;
    let bytes = text.as_bytes();
    let mut i = r.start;
    while i < r.end {
        if bytes[i] == b'\n' {
            let line = &text[line_start..i];
            if line.trim().is_empty() && line_start > start {
                let p = trim_range(text, start..line_start);
                if !p.is_empty() {
                    out.push(p);
                }
                start = i + 1;
            }
            line_start = i + 1;
        }
        i += 1;
    }
    let p = trim_range(text, start..r.end);
    if !p.is_empty() {
        out.push(p);
    }
    out
}

fn looks_line_oriented(para: &str) -> bool {
    let mut lines = para.lines();
    let Some(_) = lines.next() else { return false };
    let rest: Vec<&str> = lines.collect();
    if rest.is_empty() {
        return false;
    }
    let structured = |l: &str| {
        let t = l.trim_start();
        t.starts_with(['-', '*', '+', '|', '>', '#'])
            || t.split_once(['.', ')']).is_some_and(|(n, _)| {
                !n.is_empty() && n.len() <= 3 && n.bytes().all(|b| b.is_ascii_digit())
            })
    };
    rest.iter().filter(|l| structured(l)).count() * 2 >= rest.len()
}

/// Splits text into sentence-like ranges: paragraphs at blank lines, then sentences, except
/// that line-oriented paragraphs (lists, tables, code) split at newlines. Each range is trimmed
/// and non-empty; together they cover every non-space byte, in order.
#[must_use]
pub fn sentence_ranges(text: &str) -> Vec<Range<usize>> {
    let mut out = Vec::new();
    for para in paragraphs(text, 0..text.len()) {
        if looks_line_oriented(&text[para.clone()]) {
            out.extend(lines_of(text, para));
        } else {
            out.extend(sentences(text, para));
        }
    }
    out
}

/// Cuts a paragraph into sentence ranges covering it (each trimmed).
fn sentences(text: &str, r: Range<usize>) -> Vec<Range<usize>> {
    let s = &text[r.clone()];
    let mut out = Vec::new();
    let mut start = 0;
    let mut chars = s.char_indices().peekable();
    while let Some((i, c)) = chars.next() {
        if matches!(c, '.' | '!' | '?' | '…' | '。') {
            // Closing quotes and brackets belong to the sentence.
            let mut end = i + c.len_utf8();
            while let Some(&(j, d)) = chars.peek() {
                if matches!(d, '"' | '\'' | ')' | ']' | '”' | '’' | '»') {
                    end = j + d.len_utf8();
                    chars.next();
                } else {
                    break;
                }
            }
            if chars.peek().is_some_and(|&(_, d)| d.is_whitespace()) && end - start > 1 {
                out.push(r.start + start..r.start + end);
                start = end;
            }
        }
    }
    if start < s.len() {
        out.push(r.start + start..r.end);
    }
    out.into_iter()
        .map(|x| trim_range(text, x))
        .filter(|x| !x.is_empty())
        .collect()
}

fn lines_of(text: &str, r: Range<usize>) -> Vec<Range<usize>> {
    let mut out = Vec::new();
    let mut start = r.start;
    for (i, _) in text[r.clone()].match_indices('\n') {
        out.push(start..r.start + i);
        start = r.start + i + 1;
    }
    out.push(start..r.end);
    out.into_iter()
        .map(|x| trim_range(text, x))
        .filter(|x| !x.is_empty())
        .collect()
}

/// Splits a range into pieces of at most `max` tokens: at newlines first, then token windows.
fn split_oversized(
    text: &str,
    r: Range<usize>,
    counter: &dyn TokenCounter,
    max: usize,
    out: &mut Vec<(Range<usize>, usize)>,
) {
    let ends = counter.token_ends(&text[r.clone()]);
    if ends.len() <= max {
        out.push((r, ends.len()));
        return;
    }
    let lines = lines_of(text, r.clone());
    if lines.len() > 1 {
        for l in lines {
            split_oversized(text, l, counter, max, out);
        }
        return;
    }
    let mut from = r.start;
    for window in ends.chunks(max) {
        let end = r.start + *window.last().expect("chunks are non-empty");
        let piece = trim_range(text, from..end);
        if !piece.is_empty() {
            out.push((piece, window.len()));
        }
        from = end;
    }
}

/// Cuts a document into chunks.
#[must_use]
pub fn chunk_document(
    doc: &Document,
    counter: &dyn TokenCounter,
    options: &ChunkOptions,
) -> Vec<Chunk> {
    let max = options.max_tokens.max(1);
    let text = doc.text.as_str();
    // Groups of section indices: a tiny section joins the next one.
    let mut groups: Vec<Vec<usize>> = Vec::new();
    let mut pending: Vec<usize> = Vec::new();
    for (i, s) in doc.sections.iter().enumerate() {
        if text[s.range.clone()].trim().is_empty() {
            continue;
        }
        pending.push(i);
        let tokens = counter.count(&text[s.range.clone()]);
        if tokens >= options.min_section_tokens {
            groups.push(std::mem::take(&mut pending));
        }
    }
    if !pending.is_empty() {
        // Trailing tiny sections join the previous group if it has room, else stand alone.
        match groups.last_mut() {
            Some(last)
                if pending
                    .iter()
                    .map(|&i| counter.count(&text[doc.sections[i].range.clone()]))
                    .sum::<usize>()
                    < options.min_section_tokens =>
            {
                last.extend(pending);
            }
            _ => groups.push(pending),
        }
    }

    let mut chunks = Vec::new();
    for group in groups {
        let mut units: Vec<Unit> = Vec::new();
        for &si in &group {
            let section = &doc.sections[si];
            for para in paragraphs(text, section.range.clone()) {
                let pieces: Vec<Range<usize>> =
                    if doc.kind == DocKind::Code || looks_line_oriented(&text[para.clone()]) {
                        // Whole if it fits (`split_oversized` below cuts it at lines if not).
                        if counter.count(&text[para.clone()]) <= max {
                            vec![para.clone()]
                        } else {
                            lines_of(text, para.clone())
                        }
                    } else {
                        sentences(text, para.clone())
                    };
                let mut split = Vec::new();
                for piece in pieces {
                    split_oversized(text, piece, counter, max, &mut split);
                }
                for (k, (range, tokens)) in split.into_iter().enumerate() {
                    units.push(Unit {
                        range,
                        tokens,
                        section: si,
                        para_start: k == 0,
                    });
                }
            }
        }
        pack(doc, counter, options, &units, &mut chunks);
    }
    // Source code is not fenced; other text is code between an odd and an even fence.
    if doc.kind != DocKind::Code {
        let fences = fence_lines(text);
        for c in &mut chunks {
            c.in_code = fences.partition_point(|&f| f < c.range.start) % 2 == 1;
        }
    }
    chunks
}

fn pack(
    doc: &Document,
    counter: &dyn TokenCounter,
    options: &ChunkOptions,
    units: &[Unit],
    chunks: &mut Vec<Chunk>,
) {
    let max = options.max_tokens.max(1);
    let text = doc.text.as_str();
    let mut a = 0;
    while a < units.len() {
        // Greedy fill of units[a..b].
        let mut b = a;
        let mut total = 0;
        while b < units.len() && total + units[b].tokens <= max {
            // Prefer a paragraph break once the chunk is half full and the paragraph won't fit.
            if b > a && units[b].para_start && total * 2 >= max {
                let para_tokens: usize = units[b..]
                    .iter()
                    .enumerate()
                    .take_while(|(k, u)| *k == 0 || !u.para_start)
                    .map(|(_, u)| u.tokens)
                    .sum();
                if total + para_tokens > max {
                    break;
                }
            }
            total += units[b].tokens;
            b += 1;
        }
        if b == a {
            b = a + 1; // a single unit is within budget by construction
        }
        // Joining can tokenize differently from the parts (a word cut by a token window): check.
        let mut tokens = counter.count(&text[units[a].range.start..units[b - 1].range.end]);
        while tokens > max && b - a > 1 {
            b -= 1;
            tokens = counter.count(&text[units[a].range.start..units[b - 1].range.end]);
        }
        let range = units[a].range.start..units[b - 1].range.end;
        let first = &doc.sections[units[a].section];
        let last = &doc.sections[units[b - 1].section];
        // A chunk that runs from a section into ones under it is headed by the deepest; one
        // that runs across sibling sections (glued tiny entries: `Dialect.delimiter`, then
        // `Dialect.doublequote`) by the headings they share, so that its path names no
        // section that only part of it is about.
        let spanned = &doc.sections[units[a].section..=units[b - 1].section];
        let mut heading = last.heading.clone();
        for s in spanned {
            if !heading.starts_with(&s.heading) {
                let shared = heading
                    .iter()
                    .zip(&s.heading)
                    .take_while(|(x, y)| x == y)
                    .count();
                heading.truncate(shared);
            }
        }
        chunks.push(Chunk {
            heading,
            page: first.page,
            lines: (
                doc.line_of(first, range.start),
                doc.line_of(last, range.end.saturating_sub(1).max(range.start)),
            ),
            range,
            tokens,
            in_code: false,
        });
        if b >= units.len() {
            break;
        }
        // Overlap: restart at the latest units (after `a`) that fit in the overlap budget.
        let mut next = b;
        let mut overlap = 0;
        while next > a + 1 && overlap + units[next - 1].tokens <= options.overlap_tokens {
            overlap += units[next - 1].tokens;
            next -= 1;
        }
        a = next;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::document::Section;
    use proptest::prelude::*;

    fn doc(kind: DocKind, text: &str, cuts: &[usize]) -> Document {
        let mut sections = Vec::new();
        let mut start = 0;
        for (i, &c) in cuts.iter().chain(std::iter::once(&text.len())).enumerate() {
            let c = c.min(text.len()).max(start);
            let c = (c..=text.len())
                .find(|&x| text.is_char_boundary(x))
                .unwrap();
            sections.push(Section {
                range: start..c,
                heading: vec![format!("h{i}")],
                page: None,
                first_line: text[..start].matches('\n').count() as u32 + 1,
            });
            start = c;
        }
        Document::new(kind, "t".into(), text.to_owned(), sections)
    }

    fn check(doc: &Document, options: &ChunkOptions) {
        let chunks = chunk_document(doc, &WordCounter, options);
        // None over budget; ranges exact and trimmed; lines right.
        for c in &chunks {
            let t = &doc.text[c.range.clone()];
            assert!(
                c.tokens <= options.max_tokens,
                "{} > {}",
                c.tokens,
                options.max_tokens
            );
            assert_eq!(WordCounter.count(t), c.tokens);
            assert_eq!(t.trim(), t);
            assert!(!t.is_empty());
            let first = doc.text[..c.range.start].matches('\n').count() as u32 + 1;
            let last = first + t.matches('\n').count() as u32;
            assert_eq!(c.lines, (first, last), "{t:?}");
        }
        // In order, and every non-space byte covered.
        for w in chunks.windows(2) {
            assert!(w[0].range.start < w[1].range.start);
            assert!(
                w[1].range.start <= w[0].range.end
                    || doc.text[w[0].range.end..w[1].range.start].trim().is_empty()
            );
        }
        let mut covered = vec![false; doc.text.len()];
        for c in &chunks {
            covered[c.range.clone()].iter_mut().for_each(|x| *x = true);
        }
        for (i, ch) in doc.text.char_indices() {
            assert!(
                ch.is_whitespace() || covered[i],
                "byte {i} ({ch:?}) not in any chunk"
            );
        }
    }

    fn words() -> impl Strategy<Value = String> {
        prop::collection::vec(
            prop_oneof![
                4 => "[a-zé]{1,9}",
                1 => Just(". ".to_owned()),
                1 => Just("\n".to_owned()),
                1 => Just("\n\n".to_owned()),
                1 => Just("- item\n".to_owned()),
                1 => Just("x".repeat(3)),
            ],
            0..400,
        )
        .prop_map(|v| v.join(" "))
    }

    proptest! {
        #[test]
        fn chunks_cover_in_order_within_budget(
            text in words(),
            cuts in prop::collection::vec(0usize..3000, 0..6),
            max in 3usize..60,
            overlap in 0usize..20,
            code in any::<bool>(),
        ) {
            let mut cuts = cuts;
            cuts.sort_unstable();
            let d = doc(if code { DocKind::Code } else { DocKind::Text }, &text, &cuts);
            check(&d, &ChunkOptions { max_tokens: max, overlap_tokens: overlap, min_section_tokens: 4 });
        }
    }

    #[test]
    fn a_chunk_cut_from_the_middle_of_a_code_block_knows_it() {
        let code = (0..40)
            .map(|i| format!("let x{i} = {i};"))
            .collect::<Vec<_>>()
            .join("\n\n");
        let text = format!("Run this:\n\n```rust\n{code}\n```\n\nThen it is done.");
        let d = doc(DocKind::Markdown, &text, &[]);
        let opts = ChunkOptions {
            max_tokens: 30,
            overlap_tokens: 0,
            min_section_tokens: 1,
        };
        let chunks = chunk_document(&d, &WordCounter, &opts);
        assert!(chunks.len() > 3, "{}", chunks.len());
        assert!(!chunks[0].in_code, "begins before the block");
        assert!(chunks[1..chunks.len() - 1].iter().all(|c| c.in_code));
        let last = chunks.last().unwrap();
        assert_eq!(last.in_code, !text[last.range.clone()].starts_with("Then"));
        // Source code is never "inside a block", whatever it holds.
        let d = doc(DocKind::Code, &text, &[]);
        assert!(chunk_document(&d, &WordCounter, &opts)
            .iter()
            .all(|c| !c.in_code));
    }

    #[test]
    fn run_on_line_is_cut_into_token_windows() {
        let text = "w ".repeat(50);
        let d = doc(DocKind::Text, &text, &[]);
        let chunks = chunk_document(
            &d,
            &WordCounter,
            &ChunkOptions {
                max_tokens: 8,
                overlap_tokens: 0,
                min_section_tokens: 1,
            },
        );
        assert!(chunks.iter().all(|c| c.tokens <= 8));
        assert_eq!(chunks.iter().map(|c| c.tokens).sum::<usize>(), 50);
    }

    #[test]
    fn chunks_do_not_cross_sections_but_tiny_ones_glue() {
        let text =
            "# A\n\none two three four five six.\n# B\n\nseven eight nine ten eleven twelve.";
        let d = doc(DocKind::Markdown, text, &[text.find("# B").unwrap()]);
        let opts = ChunkOptions {
            max_tokens: 100,
            overlap_tokens: 0,
            min_section_tokens: 3,
        };
        let chunks = chunk_document(&d, &WordCounter, &opts);
        assert_eq!(chunks.len(), 2);
        assert_eq!(chunks[1].heading, ["h1"]);
        let opts = ChunkOptions {
            min_section_tokens: 20,
            ..opts
        };
        let chunks = chunk_document(&d, &WordCounter, &opts);
        assert_eq!(chunks.len(), 1, "tiny sections glue");
        assert!(chunks[0].heading.is_empty(), "siblings share no heading");
    }

    #[test]
    fn a_glued_chunk_is_headed_by_the_deeper_section_or_by_what_siblings_share() {
        let text = "Ref\nIntro.\nx.a\nOne two three.\nx.b\nTwo words here.";
        let cut = |s: &str| text.find(s).unwrap();
        let section = |range: std::ops::Range<usize>, heading: &[&str]| Section {
            first_line: text[..range.start].matches('\n').count() as u32 + 1,
            range,
            heading: heading.iter().map(|h| (*h).to_owned()).collect(),
            page: None,
        };
        let sections = vec![
            section(0..cut("x.a"), &["Ref"]),
            section(cut("x.a")..cut("x.b"), &["Ref", "x.a"]),
            section(cut("x.b")..text.len(), &["Ref", "x.b"]),
        ];
        let d = Document::new(DocKind::Html, "t".into(), text.to_owned(), sections);
        let opts = |min| ChunkOptions {
            max_tokens: 100,
            overlap_tokens: 0,
            min_section_tokens: min,
        };
        // "Ref" glues into "x.a": the chunk is about x.a, under Ref.
        let chunks = chunk_document(&d, &WordCounter, &opts(3));
        let headings: Vec<_> = chunks.iter().map(|c| c.heading.join(" > ")).collect();
        assert_eq!(headings, ["Ref > x.a", "Ref > x.b"]);
        // "x.a" glues into its sibling "x.b": the chunk is headed by what they share.
        let chunks = chunk_document(&d, &WordCounter, &opts(7));
        let headings: Vec<_> = chunks.iter().map(|c| c.heading.join(" > ")).collect();
        assert_eq!(headings, ["Ref"]);
    }

    #[test]
    fn overlap_repeats_whole_sentences() {
        let text = "Alpha beta. Gamma delta. Epsilon zeta. Eta theta. Iota kappa.";
        let d = doc(DocKind::Text, text, &[]);
        let chunks = chunk_document(
            &d,
            &WordCounter,
            &ChunkOptions {
                max_tokens: 4,
                overlap_tokens: 2,
                min_section_tokens: 1,
            },
        );
        let texts: Vec<&str> = chunks.iter().map(|c| &text[c.range.clone()]).collect();
        assert_eq!(
            texts,
            [
                "Alpha beta. Gamma delta.",
                "Gamma delta. Epsilon zeta.",
                "Epsilon zeta. Eta theta.",
                "Eta theta. Iota kappa."
            ]
        );
    }
}
