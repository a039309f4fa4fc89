//! Grounding: citations made by code, not trusted from the model.
//!
//! Every sentence of an answer is compared with the sentences of the numbered sources: the share
//! of its content words (numbers must match exactly) found in one sentence, or two adjacent
//! ones, of a source is its support there. A sentence is cited to its best sources, with the
//! lines of the supporting sentences; one no source supports is marked unsupported. Text the
//! answer puts in quotation marks must appear verbatim in a source.

use std::collections::HashSet;
use std::ops::Range;

use crate::context::{Context, Excerpt};
use crate::terms::{coverage, is_number, terms};

/// Least share of a sentence's content words a source must hold to support it.
pub const MIN_SUPPORT: f32 = 0.5;

/// One citation of a source for a claim.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct Citation {
    /// The source number.
    pub source: usize,
    /// The lines of the supporting text in the document.
    pub lines: (u32, u32),
    /// Share of the claim's content words found there, 0–1.
    pub support: f32,
}

/// One sentence of an answer and what supports it.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct Claim {
    /// The sentence.
    pub text: String,
    /// Its byte range in the answer.
    pub range: (usize, usize),
    /// Supporting sources, best first (empty when unsupported or when nothing needs support).
    pub citations: Vec<Citation>,
    /// False when no source supports the sentence or a quotation in it is not verbatim.
    pub supported: bool,
    /// For each quotation in the sentence: whether it appears verbatim in a source.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub quotes: Vec<(String, bool)>,
}

/// A source sentence (or excerpt line) with its place.
struct Unit<'a> {
    source: usize,
    terms: HashSet<String>,
    lines: (u32, u32),
    text: &'a str,
}

fn units(context: &Context) -> Vec<Vec<Unit<'_>>> {
    context
        .sources
        .iter()
        .map(|s| {
            s.excerpts
                .iter()
                .flat_map(|e: &Excerpt| {
                    cairn_ingest::sentence_ranges(&e.text).into_iter().map(
                        move |r: Range<usize>| {
                            let text = &e.text[r.clone()];
                            let line = |at: usize| {
                                e.lines.0
                                    + e.text[..at].bytes().filter(|&b| b == b'\n').count() as u32
                            };
                            Unit {
                                source: s.number,
                                terms: terms(text).into_iter().collect(),
                                lines: (line(r.start), line(r.end)),
                                text,
                            }
                        },
                    )
                })
                .collect()
        })
        .collect()
}

/// Removes citation markers the model wrote itself (`[1]`, `[1, 2]`, `[Source 1]`): cairn
/// attaches its own.
#[must_use]
pub fn strip_markers(answer: &str) -> String {
    let mut out = String::with_capacity(answer.len());
    let mut rest = answer;
    while let Some(i) = rest.find('[') {
        out.push_str(&rest[..i]);
        let after = &rest[i + 1..];
        match after.find(']') {
            Some(j)
                if j <= 24
                    && after[..j].chars().any(|c| c.is_ascii_digit())
                    && after[..j].chars().all(|c| {
                        c.is_ascii_digit() || c == ',' || c == ' ' || c == '-' || c.is_alphabetic()
                    })
                    && after[..j]
                        .split(|c: char| !c.is_alphabetic())
                        .all(|w| w.is_empty() || w.eq_ignore_ascii_case("source")) =>
            {
                // Drop a space left before the marker.
                if out.ends_with(' ') {
                    out.pop();
                }
                rest = &after[j + 1..];
            }
            _ => {
                out.push('[');
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out.trim().to_owned()
}

/// Phrases with which models say the sources do not answer.
const REFUSALS: &[&str] = &[
    "sources do not contain",
    "sources don't contain",
    "sources do not provide",
    "sources don't provide",
    "sources do not mention",
    "sources don't mention",
    "sources do not say",
    "sources don't say",
    "not mentioned in the sources",
    "not provided in the sources",
    "no information about",
    "no information on",
    "cannot be determined from",
    "can't be determined from",
    "i don't know",
    "i do not know",
];

/// Whether the model said the sources do not hold the answer.
#[must_use]
pub fn is_refusal(answer: &str) -> bool {
    let a: String = answer
        .to_lowercase()
        .chars()
        .map(|c| {
            if c.is_alphanumeric() || c == '\'' {
                c
            } else {
                ' '
            }
        })
        .collect();
    let a = a.split_whitespace().collect::<Vec<_>>().join(" ");
    if a.is_empty() || a.starts_with("not found") {
        return true;
    }
    REFUSALS.iter().any(|p| a.contains(p))
}

/// Quotations (straight or curly double quotes) of at least three words.
fn quotations(sentence: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut open: Option<usize> = None;
    for (i, c) in sentence.char_indices() {
        match (c, open) {
            ('"' | '“', None) => open = Some(i + c.len_utf8()),
            ('"' | '”', Some(s)) => {
                let q = sentence[s..i].trim();
                if q.split_whitespace().count() >= 3 {
                    out.push(q.to_owned());
                }
                open = None;
            }
            _ => {}
        }
    }
    out
}

fn squash(text: &str) -> String {
    text.split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .replace(['’', '‘'], "'")
        .replace(['“', '”'], "\"")
}

/// [`squash`], and for each byte of its output the byte of `text` it came from.
fn squash_mapped(text: &str) -> (String, Vec<usize>) {
    let (mut out, mut from) = (String::with_capacity(text.len()), Vec::new());
    let mut space: Option<usize> = None;
    for (i, c) in text.char_indices() {
        if c.is_whitespace() {
            space.get_or_insert(i);
            continue;
        }
        if let Some(at) = space.take() {
            if !out.is_empty() {
                out.push(' ');
                from.push(at);
            }
        }
        let c = match c {
            '’' | '‘' => '\'',
            '“' | '”' => '"',
            c => c,
        };
        out.push(c);
        from.extend(std::iter::repeat_n(i, c.len_utf8()));
    }
    (out, from)
}

/// Narrows each citation of a quoted answer to the lines the quote itself occupies in its
/// source, where it lies within the cited lines: a sentence the quote came from may run over
/// many lines (a code block is one), and the quote of one command is on one of them.
pub fn narrow_to_quotes(claims: &mut [Claim], context: &Context) {
    for claim in claims {
        let needle = squash(&claim.text);
        if needle.is_empty() {
            continue;
        }
        for citation in &mut claim.citations {
            let Some(source) = context.sources.iter().find(|s| s.number == citation.source) else {
                continue;
            };
            let (a, b) = citation.lines;
            let found = source.excerpts.iter().find_map(|e| {
                let (text, from) = squash_mapped(&e.text);
                let line = |at: usize| {
                    e.lines.0 + e.text[..at].bytes().filter(|&x| x == b'\n').count() as u32
                };
                text.match_indices(&needle)
                    .map(|(at, _)| (line(from[at]), line(from[at + needle.len() - 1])))
                    .find(|&(first, last)| a <= first && last <= b)
            });
            if let Some(lines) = found {
                citation.lines = lines;
            }
        }
    }
}

/// Grounds one answer sentence in the sources.
fn ground_sentence(text: &str, range: (usize, usize), units: &[Vec<Unit<'_>>]) -> Claim {
    let quotes: Vec<(String, bool)> = quotations(text)
        .into_iter()
        .map(|q| {
            let needle = squash(&q);
            let found = units
                .iter()
                .flatten()
                .any(|u| squash(u.text).contains(&needle));
            // A quotation may span sentences: also look in whole sources.
            let found = found || {
                let mut by_source: Vec<String> = vec![String::new(); units.len()];
                for (i, us) in units.iter().enumerate() {
                    by_source[i] = us.iter().map(|u| u.text).collect::<Vec<_>>().join(" ");
                }
                by_source.iter().any(|s| squash(s).contains(&needle))
            };
            (q, found)
        })
        .collect();
    let claim_terms: Vec<String> = {
        let mut seen = HashSet::new();
        terms(text)
            .into_iter()
            .filter(|t| seen.insert(t.clone()))
            .collect()
    };
    let quotes_ok = quotes.iter().all(|(_, ok)| *ok);
    if claim_terms.is_empty() {
        return Claim {
            text: text.to_owned(),
            range,
            citations: Vec::new(),
            supported: quotes_ok,
            quotes,
        };
    }
    let weight = |t: &str| if is_number(t) { 2.0 } else { 1.0 };
    let total: f32 = claim_terms.iter().map(|t| weight(t)).sum();
    let mut best: Vec<Citation> = Vec::new();
    for us in units {
        let mut top: Option<Citation> = None;
        // Single sentences first: a pair is cited only when it supports more than any one.
        for width in 0..2 {
            for i in 0..us.len().saturating_sub(width) {
                let j = i + width;
                let has = |t: &str| us[i..=j].iter().any(|u| u.terms.contains(t));
                let numbers_ok = claim_terms.iter().filter(|t| is_number(t)).all(|t| has(t));
                let found: f32 = claim_terms
                    .iter()
                    .filter(|t| has(t))
                    .map(|t| weight(t))
                    .sum();
                let mut support = found / total;
                if !numbers_ok {
                    support = support.min(MIN_SUPPORT * 0.99);
                }
                let better = top.as_ref().is_none_or(|c| support > c.support + 1e-6);
                if better {
                    top = Some(Citation {
                        source: us[i].source,
                        lines: (us[i].lines.0, us[j].lines.1),
                        support,
                    });
                }
            }
        }
        if let Some(c) = top {
            best.push(c);
        }
    }
    best.sort_by(|a, b| {
        b.support
            .total_cmp(&a.support)
            .then(a.source.cmp(&b.source))
    });
    let top = best.first().map_or(0.0, |c| c.support);
    let citations: Vec<Citation> = best
        .into_iter()
        .filter(|c| c.support >= MIN_SUPPORT && c.support >= top * 0.9)
        .take(2)
        .collect();
    Claim {
        text: text.to_owned(),
        range,
        supported: !citations.is_empty() && quotes_ok,
        citations,
        quotes,
    }
}

/// Grounds every sentence of `answer` (markers already stripped) in `context`.
#[must_use]
pub fn ground(answer: &str, context: &Context) -> Vec<Claim> {
    let units = units(context);
    cairn_ingest::sentence_ranges(answer)
        .into_iter()
        .map(|r| ground_sentence(&answer[r.clone()], (r.start, r.end), &units))
        .collect()
}

/// Grounds one sentence (for streaming: each sentence as it completes).
#[must_use]
pub fn ground_one(sentence: &str, context: &Context) -> Claim {
    let units = units(context);
    ground_sentence(sentence, (0, sentence.len()), &units)
}

/// For an answer quoted from the sources: the largest share of the question's content words
/// found in the sentence the quote lies in and its two neighbours, over every place the quote
/// occurs. A question is most often asked in the words of the passage that answers it, so a
/// quote from a place that shares few of them was most likely picked from the wrong place.
/// `None` when the answer occurs in no source.
#[must_use]
pub fn quote_coverage(question: &str, answer: &str, context: &Context) -> Option<f32> {
    locate_quote(question, answer, context).map(|(_, share)| share)
}

/// For an answer quoted from the sources, the place it was most likely quoted from: of every
/// sentence (or run of sentences) that holds it, the one whose surroundings — the sentence and
/// its two neighbours — share the largest part of the question's content words, the
/// better-ranked source on a tie. Returns that place as a citation (of support 1: the quote
/// is there verbatim) and that share. `None` when the answer occurs in no source.
#[must_use]
pub fn locate_quote(question: &str, answer: &str, context: &Context) -> Option<(Citation, f32)> {
    let needle = squash(answer);
    if needle.is_empty() {
        return None;
    }
    let mut best: Option<(Citation, f32)> = None;
    for source in &context.sources {
        for excerpt in &source.excerpts {
            let text = &excerpt.text;
            if !squash(text).contains(&needle) {
                continue;
            }
            let ranges = cairn_ingest::sentence_ranges(text);
            let sentences: Vec<String> = ranges.iter().map(|r| squash(&text[r.clone()])).collect();
            // The sentences the quote lies in: one that holds it, else the run it spans.
            let mut places: Vec<Range<usize>> = (0..sentences.len())
                .filter(|&i| sentences[i].contains(&needle))
                .map(|i| i..i + 1)
                .collect();
            if places.is_empty() {
                places.push(0..sentences.len());
            }
            let line = |at: usize| {
                excerpt.lines.0 + text[..at].bytes().filter(|&b| b == b'\n').count() as u32
            };
            // A sentence with no word ("1.", a list's number split off its item) is no
            // neighbour: the one past it is.
            let wordless = |i: usize| !sentences[i].chars().any(char::is_alphabetic);
            for place in places {
                let mut from = place.start.saturating_sub(1);
                while from > 0 && wordless(from) {
                    from -= 1;
                }
                let mut to = (place.end + 1).min(sentences.len());
                while to < sentences.len() && wordless(to - 1) {
                    to += 1;
                }
                let around = sentences[from..to].join(" ");
                let share = coverage(question, [around.as_str()]);
                if best.as_ref().is_none_or(|(_, b)| share > *b) {
                    let lines = match (ranges.get(place.start), place.end.checked_sub(1)) {
                        (Some(first), Some(last)) => (line(first.start), line(ranges[last].end)),
                        _ => excerpt.lines,
                    };
                    let citation = Citation {
                        source: source.number,
                        lines,
                        support: 1.0,
                    };
                    best = Some((citation, share));
                }
            }
        }
    }
    best
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A context of one source, `a.md`, of one excerpt: `text` at `lines`.
    fn one_source(text: &str, lines: (u32, u32)) -> Context {
        Context {
            sources: vec![crate::context::Source {
                number: 1,
                doc: "a.md".into(),
                heading: Vec::new(),
                page: None,
                lines,
                chunks: Vec::new(),
                rank: 1,
                score: 1.0,
                bm25: None,
                dense: None,
                excerpts: vec![Excerpt {
                    text: text.into(),
                    lines,
                }],
                whole: true,
                also: Vec::new(),
            }],
            tokens: 0,
        }
    }

    #[test]
    fn a_quoted_citation_is_narrowed_to_the_quote_s_own_lines() {
        let text = "To install it, run:\n\n```sh\ngit clone https://example.org/tool\nmake \
                    install\n```\n\nThe tool’s name\nis “tally”.";
        let ctx = one_source(text, (10, 19));
        let claim = |text: &str, lines: (u32, u32)| Claim {
            text: text.into(),
            range: (0, text.len()),
            citations: vec![Citation {
                source: 1,
                lines,
                support: 1.0,
            }],
            supported: true,
            quotes: Vec::new(),
        };
        let mut claims = vec![
            claim("make install", (12, 15)),
            claim("git clone https://example.org/tool\nmake install", (12, 15)),
            claim("The tool's name is \"tally\".", (17, 18)),
            // Outside the cited lines: left as it was.
            claim("make install", (17, 18)),
        ];
        narrow_to_quotes(&mut claims, &ctx);
        let lines: Vec<(u32, u32)> = claims.iter().map(|c| c.citations[0].lines).collect();
        assert_eq!(lines, [(14, 14), (13, 14), (17, 18), (17, 18)]);
    }

    #[test]
    fn a_quote_is_weighed_by_the_question_words_around_it() {
        let text = "The pump was built in Oslo. It weighs nine tonnes.\n\nThe garden has roses. \
                    Roses bloom in June. Bees like them.";
        let ctx = one_source(text, (1, 3));
        let q = "Where was the pump built?";
        // "pump" and "built" (2 of 2 content words) are next to "Oslo".
        assert_eq!(quote_coverage(q, "Oslo", &ctx), Some(1.0));
        // Neither is anywhere near "June".
        assert_eq!(quote_coverage(q, "June", &ctx), Some(0.0));
        assert_eq!(quote_coverage(q, "Paris", &ctx), None);
    }

    #[test]
    fn a_list_number_is_no_neighbour_of_its_item() {
        // A PDF's numbered list: "1." is a sentence of its own, between the lead-in that
        // speaks of what was asked and the item quoted.
        let text = "The architecture follows these basic tenets:\n\n1. All data sources are \
                    considered resources. A network may have many devices.";
        let ctx = one_source(text, (1, 3));
        let q = "What are the basic tenets of the architecture?";
        assert_eq!(
            quote_coverage(q, "All data sources are considered resources", &ctx),
            Some(1.0)
        );
    }

    #[test]
    fn a_quote_is_located_where_its_surroundings_match_the_question() {
        // `?` occurs in both sources; the second speaks of what was asked.
        let ctx = context(&[
            ("Is it done? Nobody knows.", (1, 1)),
            (
                "Errors are common.\nThe ? operator propagates errors to the caller.\nIt returns early.",
                (10, 12),
            ),
        ]);
        let (citation, share) =
            locate_quote("Which operator propagates errors?", "?", &ctx).unwrap();
        assert_eq!((citation.source, citation.lines), (2, (11, 11)));
        assert!((citation.support - 1.0).abs() < 1e-6, "verbatim");
        assert!(share > 0.9, "{share}");
        assert!(locate_quote("Which operator?", "..=", &ctx).is_none());
    }
    use crate::context::Source;

    fn context(texts: &[(&str, (u32, u32))]) -> Context {
        Context {
            sources: texts
                .iter()
                .enumerate()
                .map(|(i, (t, lines))| Source {
                    number: i + 1,
                    doc: format!("d{i}.md"),
                    heading: vec![],
                    page: None,
                    lines: *lines,
                    chunks: vec![],
                    rank: i + 1,
                    score: 1.0,
                    bm25: None,
                    dense: None,
                    excerpts: vec![Excerpt {
                        text: (*t).into(),
                        lines: *lines,
                    }],
                    whole: true,
                    also: vec![],
                })
                .collect(),
            tokens: 0,
        }
    }

    #[test]
    fn a_supported_sentence_cites_the_right_source_and_line() {
        let ctx = context(&[
            ("Cats sleep a lot.\nThe reactor uses molten salt.", (4, 5)),
            ("Panthers gave up 308 points in 2015.", (9, 9)),
        ]);
        let claims = ground(
            "The Panthers gave up 308 points. Reactors use molten salt.",
            &ctx,
        );
        assert_eq!(claims.len(), 2);
        assert!(claims[0].supported);
        assert_eq!(claims[0].citations[0].source, 2);
        assert_eq!(claims[0].citations[0].lines, (9, 9));
        assert_eq!(claims[1].citations[0].source, 1);
        assert_eq!(claims[1].citations[0].lines, (5, 5));
    }

    #[test]
    fn a_wrong_number_is_not_supported() {
        let ctx = context(&[("The Panthers gave up 308 points.", (1, 1))]);
        let claims = ground("The Panthers gave up 309 points.", &ctx);
        assert!(!claims[0].supported);
        assert!(claims[0].citations.is_empty());
    }

    #[test]
    fn an_unrelated_sentence_is_flagged() {
        let ctx = context(&[("The Panthers gave up 308 points.", (1, 1))]);
        let claims = ground("Paris is the capital of France.", &ctx);
        assert!(!claims[0].supported);
    }

    #[test]
    fn quotations_must_be_verbatim() {
        let ctx = context(&[("The manual says to restart the pump twice.", (1, 1))]);
        let ok = ground("It says \"restart the pump twice\".", &ctx);
        assert_eq!(ok[0].quotes, [("restart the pump twice".to_owned(), true)]);
        assert!(ok[0].supported);
        let bad = ground("It says \"restart the pump three times\".", &ctx);
        assert!(!bad[0].quotes[0].1);
        assert!(!bad[0].supported);
    }

    #[test]
    fn model_markers_are_stripped() {
        assert_eq!(
            strip_markers("It is 308 [1]. Also [2, 3] this."),
            "It is 308. Also this."
        );
        assert_eq!(strip_markers("See [Source 2]."), "See.");
        assert_eq!(strip_markers("An array [a] stays."), "An array [a] stays.");
    }

    #[test]
    fn refusals_are_recognised() {
        assert!(is_refusal("NOT FOUND"));
        assert!(is_refusal("Not found."));
        assert!(is_refusal("The sources do not contain this information."));
        assert!(!is_refusal("The Panthers gave up 308 points."));
        assert!(!is_refusal("It was found not far from Denver."));
    }
}
