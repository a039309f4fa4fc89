//! What a user should see of an answer while it is being written.
//!
//! The model's own `[n]` markers are dropped, text that may still become "NOT FOUND" is held
//! back, and each sentence gets ` [n]` (the sources that support it, checked by code) or
//! ` [?]` once it is complete. The CLI prints what is new of [`AnswerStream::shown`] after each
//! token; the TUI redraws it. Both therefore show the same markers.
//!
//! Nothing is shown that may still be withheld, because a reader cannot unsee it: a free
//! answer is held back until one of its sentences is supported by a source (an answer with
//! none is withheld), and a quoted answer — a few words, whose checks need the whole quote —
//! until it is complete and the engine has decided ([`AnswerStream::withhold`]).

use std::collections::HashMap;

use cairn_retriever::ground::{ground_one, is_refusal, strip_markers};
use cairn_retriever::{Claim, Context};

use crate::answer::{marker, Answer};
use crate::text::sanitize;

/// The answer so far and the claims checked for its finished sentences.
#[derive(Default)]
pub struct AnswerStream {
    context: Option<Context>,
    full: String,
    claims: HashMap<String, Claim>,
    /// The answer is a quote: nothing is shown before it is finished.
    quoted: bool,
    /// The engine withheld the answer: nothing is shown.
    withheld: bool,
    /// A quote as the engine checked it: its text and claims, shown instead of the stream.
    settled: Option<(String, Vec<Claim>)>,
}

impl AnswerStream {
    /// A stream with no text yet.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// A stream for a quoted answer (the default `ask`), which shows nothing until the answer
    /// is finished and checked.
    #[must_use]
    pub fn quoted() -> Self {
        AnswerStream {
            quoted: true,
            ..Self::default()
        }
    }

    /// The engine withheld the answer: from now on nothing is shown.
    pub fn withhold(&mut self) {
        self.withheld = true;
    }

    /// The engine's decision on the finished answer: withheld, or — for a quote — the claims
    /// it was checked into, which are then what is shown (the engine may cite a quote that has
    /// no words to match, such as an operator, where it was quoted from).
    pub fn settle(&mut self, answer: &Answer) {
        if answer.abstained.is_some() {
            self.withheld = true;
        }
        if self.quoted {
            self.settled = Some((answer.answer.clone(), answer.claims.clone()));
        }
    }

    /// The sources the answer is checked against (before any token).
    pub fn set_context(&mut self, context: &Context) {
        self.context = Some(context.clone());
    }

    /// The context, once set.
    #[must_use]
    pub fn context(&self) -> Option<&Context> {
        self.context.as_ref()
    }

    /// Appends a piece of the model's text.
    pub fn push(&mut self, piece: &str) {
        self.full.push_str(piece);
    }

    /// Whether there is nothing to show: the model has written nothing but whitespace, and
    /// the engine settled on no text of its own (it may answer where the model did not: the
    /// words that spell out an abbreviation).
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.full.trim().is_empty()
            && self
                .settled
                .as_ref()
                .is_none_or(|(text, _)| text.trim().is_empty())
    }

    /// The sentence's marker, and whether a source supports it.
    fn marker(&mut self, sentence: &str) -> (String, bool) {
        let Some(context) = &self.context else {
            return (String::new(), false);
        };
        let claim = self
            .claims
            .entry(sentence.to_owned())
            .or_insert_with(|| ground_one(sentence, context));
        (
            marker(claim),
            claim.supported && !claim.citations.is_empty(),
        )
    }

    /// What should be on screen for the text so far, sanitized: finished sentences with their
    /// markers, the sentence being written without its final stop. With `finished`, the last
    /// sentence is complete too.
    pub fn shown(&mut self, finished: bool) -> String {
        if self.withheld || (self.quoted && !finished) {
            return String::new();
        }
        if let Some((text, claims)) = &self.settled {
            let mut shown = String::new();
            let mut at = 0;
            for c in claims {
                if c.range.0 < at || c.range.1 > text.len() {
                    continue;
                }
                shown.push_str(&text[at..c.range.0]);
                push_marked(&mut shown, &c.text, &marker(c));
                at = c.range.1;
            }
            shown.push_str(&text[at..]);
            return sanitize(&shown);
        }
        let full = sanitize(&self.full);
        let trimmed = full.trim_start();
        if !finished && "NOT FOUND".starts_with(&trimmed.to_uppercase()) {
            return String::new();
        }
        if is_refusal(trimmed) && trimmed.to_uppercase().starts_with("NOT FOUND") {
            return String::new();
        }
        let ranges = cairn_ingest::sentence_ranges(&full);
        let mut shown = String::new();
        let mut at = 0;
        let mut supported = false;
        for (i, r) in ranges.iter().enumerate() {
            let last = i + 1 == ranges.len();
            shown.push_str(&full[at..r.start]);
            let sentence = &full[r.clone()];
            if last && !finished {
                // Hold back a marker that may still be open, and trailing spaces.
                let cut = sentence
                    .rfind('[')
                    .filter(|&i| !sentence[i..].contains(']'));
                let partial = strip_markers(&sentence[..cut.unwrap_or(sentence.len())]);
                // A final stop waits: the marker goes before it once the sentence is complete.
                shown.push_str(partial.trim_end_matches(['.', '!', '?']));
                break;
            }
            let clean = strip_markers(sentence);
            let (m, ok) = self.marker(&clean);
            supported |= ok;
            push_marked(&mut shown, &clean, &m);
            at = r.end;
        }
        // An answer no sentence of which is supported is withheld: show nothing of it yet.
        if self.context.is_some() && !supported {
            return String::new();
        }
        sanitize(&shown)
    }
}
/// Appends a sentence with its marker: "…points [1]." reads better than "…points. [1]", so
/// the marker goes before a final stop — unless the stop is all there is (a quoted `?`), or is
/// code: a `!` or `?` right after a name or a call (`vec!`, `read()?`) belongs to it.
fn push_marked(shown: &mut String, sentence: &str, marker: &str) {
    match sentence.strip_suffix(['.', '!', '?']) {
        Some(stripped) if !stripped.trim().is_empty() && !ends_code(sentence) => {
            shown.push_str(stripped);
            shown.push_str(marker);
            shown.push_str(&sentence[stripped.len()..]);
        }
        _ => {
            shown.push_str(sentence);
            shown.push_str(marker);
        }
    }
}

/// Whether a sentence's final `!` or `?` is part of code: a `!` right after a word character
/// (a macro's name), or either right after a closing bracket (Rust's `?` operator after a call).
/// A `!` ending prose ("It works!") then keeps its marker after it, which reads well enough.
fn ends_code(sentence: &str) -> bool {
    let mut end = sentence.chars().rev();
    match (end.next(), end.next()) {
        (Some('!'), Some(c)) => c.is_alphanumeric() || matches!(c, '_' | ')' | ']' | '>'),
        (Some('?'), Some(c)) => matches!(c, ')' | ']' | '>'),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::push_marked;

    fn marked(sentence: &str) -> String {
        let mut s = String::new();
        push_marked(&mut s, sentence, " [1]");
        s
    }

    #[test]
    fn the_marker_goes_before_a_sentence_stop_but_not_into_code() {
        assert_eq!(
            marked("The pump needs glycol."),
            "The pump needs glycol [1]."
        );
        assert_eq!(marked("Does it?"), "Does it [1]?");
        assert_eq!(marked("It works!"), "It works! [1]");
        // A macro's name, the `?` operator after a call, a generic's closing bracket.
        assert_eq!(marked("vec!"), "vec! [1]");
        assert_eq!(marked("Use println!"), "Use println! [1]");
        assert_eq!(marked("file.read()?"), "file.read()? [1]");
        assert_eq!(marked("Option<T>?"), "Option<T>? [1]");
        // A stop alone is the answer itself.
        assert_eq!(marked("?"), "? [1]");
    }
}
