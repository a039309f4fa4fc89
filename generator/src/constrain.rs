//! Constrained decoding: which tokens may come next.
//!
//! A small model paraphrases, converts "six" to "6", adds units the question did not ask for
//! and, now and then, names something the sources never mention. [`Quote`] removes all of these
//! at the root: the answer can only be a span copied from the sources (or one of a few fixed
//! replies such as `NOT FOUND`), so every answer is verbatim and can be cited exactly. The model
//! still chooses which span, where it starts and where it ends; the constraint only removes the
//! tokens that would leave the sources.

/// Decides, token by token, which continuations are allowed.
pub trait Constraint {
    /// Whether a token with these bytes may come next.
    fn allows(&self, piece: &[u8]) -> bool;
    /// Whether the text may end here.
    fn may_stop(&self) -> bool;
    /// Records the chosen token.
    fn advance(&mut self, piece: &[u8]);
    /// Added to the stop tokens' logits where stopping is allowed: above zero favours
    /// shorter output.
    fn stop_bias(&self) -> f32 {
        0.0
    }
    /// While nothing has been written: the least log-probability (under the model's own,
    /// unconstrained distribution) a token needs to begin the text, unless it begins one of
    /// the fixed replies. `None`: no floor.
    fn start_floor(&self) -> Option<f32> {
        None
    }
    /// While nothing has been written: added to the logits of the tokens that begin a fixed
    /// reply and nothing else (below zero: the model must lean further towards the reply to
    /// give it).
    fn reply_bias(&self) -> f32 {
        0.0
    }
    /// Whether `piece` begins one of the fixed replies (only asked while nothing is written).
    fn begins_reply(&self, piece: &[u8]) -> bool {
        let _ = piece;
        false
    }
    /// Whether `piece` begins one of the fixed replies and nothing else (only asked while
    /// nothing is written): "N" may begin "NOT FOUND" and a quote of "NFC" alike.
    fn begins_only_reply(&self, piece: &[u8]) -> bool {
        let _ = piece;
        false
    }
}

/// Output must be a span of one of the texts, starting and ending at word boundaries, or
/// exactly one of the fixed replies.
///
/// Whitespace is compared loosely: any run of whitespace in a text matches any run in the
/// output, and leading whitespace of the output is ignored. A span's first letter may be
/// written in lower case where the source has a capital (a model lowercases a sentence's first
/// word as it quotes it into its own); [`Quote::text`] gives it as the source has it. Not the
/// other way: a capital "The" would otherwise start a span at every "the" of the sources.
/// Everything else is compared byte for byte, case included, so the answer is the text as
/// written.
#[derive(Clone, Debug)]
pub struct Quote {
    /// Output that may not be the whole answer, though a longer one may begin with it.
    unfinished: Option<Unfinished>,
    /// The same test at one place a span may end, also given the text that follows there.
    unfinished_before: Option<UnfinishedBefore>,
    /// Normalized texts; the fixed replies come after the first `spans` of them.
    texts: Vec<Vec<u8>>,
    /// Where each span text's lines of fenced code are.
    code: Vec<CodeLines>,
    spans: usize,
    /// The output so far, normalized.
    out: Vec<u8>,
    /// `(text, start)` of every place the output matches.
    live: Vec<(usize, usize)>,
    stop_bias: f32,
    start_floor: Option<f32>,
    reply_bias: f32,
}

/// A test of the output so far: `true` when it may not end there ([`Quote::with_unfinished`]).
#[derive(Clone)]
struct Unfinished(std::sync::Arc<dyn Fn(&str) -> bool + Send + Sync>);

impl std::fmt::Debug for Unfinished {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Unfinished(..)")
    }
}

/// A test of the output so far and of the text after it at one place in a source: `true` when
/// it may not end there ([`Quote::with_unfinished_before`]).
#[derive(Clone)]
struct UnfinishedBefore(std::sync::Arc<BeforeTest>);

/// [`UnfinishedBefore`]'s test: the output so far, the text after it.
type BeforeTest = dyn Fn(&str, &str) -> bool + Send + Sync;

impl std::fmt::Debug for UnfinishedBefore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("UnfinishedBefore(..)")
    }
}

/// How much of the text after a place [`Quote::with_unfinished_before`]'s test is given.
const AFTER: usize = 32;

/// Letters, digits and every byte of a non-ASCII character count as word characters.
fn is_word(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b >= 0x80
}

/// Whether `at` (> 0) is inside a run of code-mark characters (a fence's ```` ``` ````, a
/// ``` `` ``` mark): a span neither begins nor ends there, so that a quote of a block carries
/// its whole fences.
fn mid_run(t: &[u8], at: usize) -> bool {
    matches!(t[at], b'`' | b'~') && t[at - 1] == t[at]
}

/// Collapses whitespace runs to one space and trims the ends.
fn normalize(text: &str) -> Vec<u8> {
    normalize_keeping_code_lines(text).0
}

/// Text as a quote of it reads ([`Quote::text`]): whitespace runs collapsed to one space, but
/// the line breaks before, within and after a fenced code block kept, and those before a list
/// item; and a block cut off at either end (an odd number of fence lines) gets its missing
/// fence.
#[must_use]
pub fn collapse_whitespace(text: &str) -> String {
    let collapse = |text: &str| {
        let (mut out, lines) = normalize_keeping_code_lines(text);
        for b in lines.breaks {
            out[b] = b'\n';
        }
        String::from_utf8_lossy(&out).into_owned()
    };
    let lines: Vec<&str> = text.trim().lines().collect();
    let fences = lines.iter().filter(|l| is_fence(l)).count();
    let Some(first) = lines.iter().position(|l| is_fence(l)) else {
        return collapse(text);
    };
    // The first fence opens a block when it names a language, begins the text, or follows
    // the words that announce it; else it closes one the text began inside.
    let opens = first == 0
        || !lines[first].trim_start()[3..].trim().is_empty()
        || lines[first - 1].trim_end().ends_with(':');
    if fences % 2 == 0 {
        collapse(text)
    } else if opens {
        collapse(text) + "\n```"
    } else {
        // Its lines up to the fence are code too.
        collapse(&format!("```\n{text}"))
    }
}

/// Whether a line begins an item of a list: a bullet (`-`, `*`, `+`, `•`…) or up to three
/// digits closed by `.` or `)`, then a space. A quote keeps the line break before it.
fn begins_item(line: &str) -> bool {
    let Some((marker, rest)) = line.trim_start().split_once([' ', '\t']) else {
        return false;
    };
    let numbered = marker
        .strip_suffix(['.', ')'])
        .is_some_and(|n| (1..=3).contains(&n.len()) && n.bytes().all(|b| b.is_ascii_digit()));
    !rest.trim().is_empty()
        && (numbered || matches!(marker, "-" | "*" | "+" | "•" | "◦" | "▪" | "‣" | "–"))
}

/// Whether a line opens or closes a fenced code block (```` ``` ```` or `~~~`).
#[must_use]
pub fn is_fence(line: &str) -> bool {
    let t = line.trim_start();
    t.starts_with("```") || t.starts_with("~~~")
}

/// Where the lines of fenced code are in a normalized text ([`normalize`]).
#[derive(Clone, Debug, Default)]
struct CodeLines {
    /// The spaces that stand for a line break next to a line of a fenced code block (the
    /// fence lines included), ascending.
    breaks: Vec<usize>,
    /// The blocks' insides (their lines between the fences), ascending.
    blocks: Vec<std::ops::Range<usize>>,
}

impl CodeLines {
    /// The block whose inside holds `at`, counting its end (a span may end there).
    fn block_at(&self, at: usize) -> Option<usize> {
        self.blocks
            .iter()
            .position(|b| (b.start < at && at <= b.end) || (b.start == at && at < b.end))
    }
}

/// [`normalize`], and where its lines of fenced code are: code is read line by line, so a
/// quote of it keeps its lines ([`Quote::text`]); prose, wrapped wherever its author's editor
/// wrapped it, does not.
fn normalize_keeping_code_lines(text: &str) -> (Vec<u8>, CodeLines) {
    // Which lines are code, which are inside a block, and which begin a list item.
    let (mut code, mut inside, mut item) = (Vec::new(), Vec::new(), Vec::new());
    let mut fenced = false;
    for line in text.split('\n') {
        let fence = is_fence(line);
        item.push(!fenced && begins_item(line));
        code.push(fenced || fence);
        inside.push(fenced && !fence);
        if fence {
            fenced = !fenced;
        }
    }
    let mut out = Vec::with_capacity(text.len());
    let mut lines = CodeLines::default();
    let trimmed = text.trim();
    let mut line = text[..text.len() - text.trim_start().len()]
        .matches('\n')
        .count();
    // The whitespace run being read: the line it began on, and whether it breaks the line.
    let mut run: Option<(usize, bool)> = None;
    // Whether the last byte written was inside a block.
    let mut was_inside = false;
    for b in trimmed.bytes() {
        if b.is_ascii_whitespace() {
            let (_, newline) = run.get_or_insert((line, false));
            if b == b'\n' {
                *newline = true;
            }
        } else {
            if let Some((from, newline)) = run.take() {
                if !out.is_empty() {
                    if newline && (code[from] || code[line] || item[line]) {
                        lines.breaks.push(out.len());
                    }
                    out.push(b' ');
                }
            }
            if inside[line] {
                match lines.blocks.last_mut() {
                    Some(block) if was_inside => block.end = out.len() + 1,
                    _ => lines.blocks.push(out.len()..out.len() + 1),
                }
            }
            was_inside = inside[line];
            out.push(b);
        }
        if b == b'\n' {
            line += 1;
        }
    }
    (out, lines)
}

/// Gives `span`, found at `text[at..]`, the mark it left out where it begins inside a code
/// mark (or ends inside one), or begins inside emphasis: only where the span holds the mark's
/// other half an odd number of times, so `into_iter` and balanced spans stay as they are.
/// Returns how many bytes it put before the span.
fn balance(span: &mut Vec<u8>, text: &[u8], at: usize) -> usize {
    let mut before = 0;
    let odd = |span: &[u8], mark: u8| span.iter().fold(false, |odd, &b| odd ^ (b == mark));
    if odd(span, b'`') {
        if at > 0 && text[at - 1] == b'`' {
            span.insert(0, b'`');
            before += 1;
        } else if text.get(at + span.len()) == Some(&b'`') {
            span.push(b'`');
        }
    }
    for mark in [b'_', b'*'] {
        // Emphasis closes where the mark is not followed by a word character.
        let closes = span
            .iter()
            .enumerate()
            .any(|(j, &b)| b == mark && span.get(j + 1).is_none_or(|&n| !is_word(n) && n != mark));
        if odd(span, mark) && closes && at > 0 && text[at - 1] == mark {
            span.insert(0, mark);
            before += 1;
        }
    }
    before
}

impl Quote {
    /// Spans of `texts`, or exactly one of `replies`.
    #[must_use]
    pub fn new<'a>(
        texts: impl IntoIterator<Item = &'a str>,
        replies: impl IntoIterator<Item = &'a str>,
    ) -> Self {
        let (mut all, code): (Vec<Vec<u8>>, Vec<CodeLines>) =
            texts.into_iter().map(normalize_keeping_code_lines).unzip();
        let spans = all.len();
        all.extend(replies.into_iter().map(normalize));
        let mut live = Vec::new();
        for (i, t) in all.iter().enumerate() {
            if i >= spans {
                if !t.is_empty() {
                    live.push((i, 0));
                }
                continue;
            }
            for p in 0..t.len() {
                let starts_word =
                    t[p] != b' ' && (p == 0 || !is_word(t[p - 1])) && !(p > 0 && mid_run(t, p));
                // Not inside a character: a UTF-8 continuation byte never starts a span.
                if starts_word && (t[p] & 0xC0) != 0x80 {
                    live.push((i, p));
                }
            }
        }
        Quote {
            unfinished: None,
            unfinished_before: None,
            texts: all,
            code,
            spans,
            out: Vec::new(),
            live,
            stop_bias: 0.0,
            start_floor: None,
            reply_bias: 0.0,
        }
    }

    /// A span may begin only with a token the model itself gives at least this
    /// log-probability; when none does, the only way left is a fixed reply (the refusal).
    #[must_use]
    pub fn with_start_floor(mut self, floor: f32) -> Self {
        self.start_floor = Some(floor);
        self
    }

    /// Adds `bias` to the logits of the tokens that would begin a fixed reply (the refusal)
    /// rather than a span, at the first token only.
    #[must_use]
    pub fn with_reply_bias(mut self, bias: f32) -> Self {
        self.reply_bias = bias;
        self
    }

    /// A span may not end where `unfinished` says of the output so far (whitespace
    /// normalized, case as written) that it is not yet an answer, such as a quote that only
    /// names what the question asks about; it may go on, or another span may be chosen. The
    /// fixed replies are not asked about.
    #[must_use]
    pub fn with_unfinished(
        mut self,
        unfinished: impl Fn(&str) -> bool + Send + Sync + 'static,
    ) -> Self {
        self.unfinished = Some(Unfinished(std::sync::Arc::new(unfinished)));
        self
    }

    /// A span may not end at a place where `unfinished` says so of the output so far and of
    /// the source's text after that place (normalized, up to 32 bytes): "the same layout"
    /// where the source goes on "as the value…". Other places the output matches may still
    /// end it.
    #[must_use]
    pub fn with_unfinished_before(
        mut self,
        unfinished: impl Fn(&str, &str) -> bool + Send + Sync + 'static,
    ) -> Self {
        self.unfinished_before = Some(UnfinishedBefore(std::sync::Arc::new(unfinished)));
        self
    }

    /// Adds `bias` to the stop tokens' logits wherever the span may end.
    #[must_use]
    pub fn with_stop_bias(mut self, bias: f32) -> Self {
        self.stop_bias = bias;
        self
    }

    /// The output so far, with whitespace normalized and its first letter as the source it
    /// matches has it. A span that begins or ends inside a code mark or emphasis gets the mark
    /// it left out, so that it is balanced: "`iter` method" where the model began at "iter",
    /// "_Inner attributes_ apply" where it began at "Inner". The lines of a fenced code block
    /// stay lines: a space between two of them, or between a line of code and the prose
    /// around it, is the source's line break; and a span that goes into a block or out of
    /// one from inside gets the fence it left out, so that the block is closed (a span inside
    /// one block is code on one line, and stays as it is). A list's items each begin a line.
    #[must_use]
    pub fn text(&self) -> String {
        let mut out = self.out.clone();
        // A span as written, else one whose capital was lowercased.
        let spans = || self.live.iter().filter(|l| l.0 < self.spans);
        let exact = spans().find(|&&(i, p)| Some(&self.texts[i][p]) == out.first());
        if let Some(&(i, p)) = exact.or_else(|| spans().next()) {
            if let Some(first) = out.first_mut() {
                *first = self.texts[i][p];
            }
            let before = balance(&mut out, &self.texts[i], p);
            let code = &self.code[i];
            let end = p + self.out.len();
            let from = code.breaks.partition_point(|&b| b < p);
            for &b in code.breaks[from..].iter().take_while(|&&b| b < end) {
                out[b - p + before] = b'\n';
            }
            let (first, last) = (code.block_at(p), code.block_at(end));
            if first.is_some() && first != last {
                out.splice(0..0, *b"```\n");
            }
            if last.is_some() && first != last {
                out.extend_from_slice(b"\n```");
            }
        }
        String::from_utf8_lossy(&out).into_owned()
    }

    /// The bytes `piece` adds to the normalized output.
    fn extension(&self, piece: &[u8]) -> Vec<u8> {
        let mut ext = Vec::with_capacity(piece.len());
        let mut last = self.out.last().copied();
        for &b in piece {
            if b.is_ascii_whitespace() {
                if last.is_some() && last != Some(b' ') {
                    ext.push(b' ');
                    last = Some(b' ');
                }
            } else {
                ext.push(b);
                last = Some(b);
            }
        }
        ext
    }

    fn matches(&self, (i, p): (usize, usize), ext: &[u8]) -> bool {
        let t = &self.texts[i];
        let at = p + self.out.len();
        if t.len() < at + ext.len() {
            return false;
        }
        let src = &t[at..at + ext.len()];
        match (src.split_first(), ext.split_first()) {
            // A span's first letter, lowercased (not a fixed reply's).
            (Some((a, src)), Some((b, ext))) if self.out.is_empty() && i < self.spans => {
                (a == b || (a.is_ascii_uppercase() && a.to_ascii_lowercase() == *b)) && src == ext
            }
            _ => src == ext,
        }
    }
}

impl Constraint for Quote {
    fn allows(&self, piece: &[u8]) -> bool {
        let ext = self.extension(piece);
        // A piece that adds nothing (whitespace before the answer starts) is not allowed:
        // it would let the model idle.
        !ext.is_empty() && self.live.iter().any(|&l| self.matches(l, &ext))
    }

    fn may_stop(&self) -> bool {
        if self.out.is_empty() || self.out.last() == Some(&b' ') {
            return false;
        }
        let out = String::from_utf8_lossy(&self.out);
        let unfinished = self.unfinished.as_ref().is_some_and(|u| (u.0)(&out));
        let goes_on = |t: &[u8], end: usize| {
            self.unfinished_before.as_ref().is_some_and(|u| {
                let after = &t[end..t.len().min(end + AFTER)];
                (u.0)(&out, &String::from_utf8_lossy(after))
            })
        };
        self.live.iter().any(|&(i, p)| {
            let t = &self.texts[i];
            let end = p + self.out.len();
            if i >= self.spans {
                end == t.len()
            } else {
                !unfinished
                    && (end == t.len() || !is_word(t[end]) && !mid_run(t, end))
                    && !goes_on(t, end)
            }
        })
    }

    fn advance(&mut self, piece: &[u8]) {
        let ext = self.extension(piece);
        let live: Vec<_> = self
            .live
            .iter()
            .copied()
            .filter(|&l| self.matches(l, &ext))
            .collect();
        self.live = live;
        self.out.extend_from_slice(&ext);
    }

    fn stop_bias(&self) -> f32 {
        self.stop_bias
    }

    fn start_floor(&self) -> Option<f32> {
        self.start_floor.filter(|_| self.out.is_empty())
    }

    fn reply_bias(&self) -> f32 {
        if self.out.is_empty() {
            self.reply_bias
        } else {
            0.0
        }
    }

    fn begins_reply(&self, piece: &[u8]) -> bool {
        let ext = self.extension(piece);
        !ext.is_empty()
            && self
                .live
                .iter()
                .any(|&l| l.0 >= self.spans && self.matches(l, &ext))
    }

    fn begins_only_reply(&self, piece: &[u8]) -> bool {
        let ext = self.extension(piece);
        let (mut reply, mut span) = (false, false);
        for &l in &self.live {
            if self.matches(l, &ext) {
                if l.0 >= self.spans {
                    reply = true;
                } else {
                    span = true;
                    break;
                }
            }
        }
        !ext.is_empty() && reply && !span
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn step(q: &mut Quote, piece: &str) -> bool {
        let ok = q.allows(piece.as_bytes());
        if ok {
            q.advance(piece.as_bytes());
        }
        ok
    }

    #[test]
    fn an_unfinished_span_goes_on_or_gives_way() {
        let source = "A closure is a function that captures its scope. Call a closure twice.";
        let mut q = Quote::new([source], ["NOT FOUND"])
            .with_unfinished(|out: &str| out.eq_ignore_ascii_case("a closure"));
        assert!(step(&mut q, "a"));
        assert!(step(&mut q, " closure"));
        assert!(!q.may_stop(), "only the subject again");
        assert!(step(&mut q, " is"));
        assert!(step(&mut q, " a"));
        assert!(step(&mut q, " function"));
        assert!(q.may_stop());
        assert_eq!(q.text(), "A closure is a function");
        // The fixed reply is never held back.
        let mut r = Quote::new([source], ["NOT FOUND"]).with_unfinished(|_| true);
        assert!(step(&mut r, "NOT"));
        assert!(step(&mut r, " FOUND"));
        assert!(r.may_stop());
    }

    #[test]
    fn a_span_may_not_end_where_the_text_after_it_says_it_goes_on() {
        let sources = [
            "Trait objects have the same layout as the value they are of.",
            "Slices share the same layout.",
        ];
        let goes_on = |out: &str, after: &str| out.ends_with("layout") && after.starts_with(" as");
        let mut q = Quote::new(sources, ["NOT FOUND"]).with_unfinished_before(goes_on);
        assert!(step(&mut q, "Trait"));
        for piece in [" objects", " have", " the", " same", " layout"] {
            assert!(step(&mut q, piece));
        }
        assert!(!q.may_stop(), "its source goes on with \"as\"");
        assert!(step(&mut q, " as"));
        assert!(step(&mut q, " the"));
        assert!(step(&mut q, " value"));
        assert!(q.may_stop());
        // Where another place the output matches ends there, it may end.
        let mut r = Quote::new(sources, ["NOT FOUND"]).with_unfinished_before(goes_on);
        for piece in ["the", " same", " layout"] {
            assert!(step(&mut r, piece));
        }
        assert!(r.may_stop(), "the second source ends the sentence there");
    }

    #[test]
    fn spans_start_at_words_and_follow_the_text() {
        let mut q = Quote::new(
            ["The bridge opened in\n1932 after  eight years."],
            ["NOT FOUND"],
        );
        assert!(!q.may_stop());
        assert!(!q.allows(b"ridge"), "not from inside a word");
        assert!(!q.allows(b" "), "whitespace alone does not start an answer");
        assert!(step(&mut q, " opened"));
        assert!(step(&mut q, " in"));
        assert!(q.may_stop());
        assert!(step(&mut q, " 19"));
        assert!(!q.may_stop(), "not in the middle of a number");
        assert!(!q.allows(b"33"));
        assert!(step(&mut q, "32 after eight"));
        assert_eq!(q.text(), "opened in 1932 after eight");
        assert!(step(&mut q, " years."));
        assert!(q.may_stop());
        assert!(!q.allows(b" More"), "past the end of the text");
    }

    #[test]
    fn a_quote_of_code_keeps_its_lines_and_prose_does_not() {
        let source = "To create a project,\nrun the following:\n\n```console\n$ cargo new \
                      hello\n$ cd   hello\n```\n\nThen build\nit.";
        let mut q = Quote::new([source], ["NOT FOUND"]);
        for piece in [
            "run",
            " the",
            " following",
            ":",
            " ```",
            "console",
            " $",
            " cargo",
        ] {
            assert!(step(&mut q, piece), "{piece:?}");
        }
        // The block the quote goes into is closed.
        assert_eq!(q.text(), "run the following:\n```console\n$ cargo\n```");
        for piece in [
            " new", " hello", " $", " cd", " hello", " ```", " Then", " build",
        ] {
            assert!(step(&mut q, piece), "{piece:?}");
        }
        // Spaces within a line of code stay collapsed; the prose around it is joined again
        // where only the author's editor wrapped it.
        assert_eq!(
            q.text(),
            "run the following:\n```console\n$ cargo new hello\n$ cd hello\n```\nThen build"
        );
        let mut q = Quote::new([source], []);
        for piece in ["To", " create", " a", " project", ",", " run"] {
            assert!(step(&mut q, piece), "{piece:?}");
        }
        assert_eq!(q.text(), "To create a project, run");
        // A span that begins inside the block and a span lowercased at its start.
        let mut q = Quote::new([source], []);
        for piece in ["cargo", " new", " hello", " $"] {
            assert!(step(&mut q, piece), "{piece:?}");
        }
        assert_eq!(q.text(), "cargo new hello\n$", "within one block: as it is");
        let mut q = Quote::new([source], []);
        for piece in ["cd", " hello", " ```", " Then"] {
            assert!(step(&mut q, piece), "{piece:?}");
        }
        assert_eq!(
            q.text(),
            "```\ncd hello\n```\nThen",
            "the block left is opened"
        );
        // Not begun nor ended inside a fence: a block quoted whole carries both fences.
        let mut q = Quote::new([source], []);
        assert!(!q.allows(b"`console"), "begun at a fence's last backtick");
        for piece in [
            "```", "console", " $", " cargo", " new", " hello", " $", " cd", " hello", " `",
        ] {
            assert!(step(&mut q, piece), "{piece:?}");
        }
        assert!(!q.may_stop(), "ended at a fence's first backtick");
        assert!(step(&mut q, "``"));
        assert!(q.may_stop());
        assert_eq!(q.text(), "```console\n$ cargo new hello\n$ cd hello\n```");
        let mut q = Quote::new([source], []);
        for piece in ["then", " build", " it", "."] {
            assert!(step(&mut q, piece), "{piece:?}");
        }
        assert_eq!(q.text(), "Then build it.");
    }

    #[test]
    fn a_quote_of_a_list_keeps_its_items_on_lines_of_their_own() {
        let source = "Keep these rules\nin mind:\n\n- Prime it with\n  glycol.\n- Never run it \
                      dry.\n\n1. Bleed the screw.\n2) Close it.\n-5 degrees is\ntoo cold.";
        let mut q = Quote::new([source], []);
        for piece in [
            "Keep", " these", " rules", " in", " mind", ":", " -", " Prime", " it", " with",
            " glycol", ".", " -", " Never", " run", " it", " dry", ".", " 1", ".", " Bleed",
            " the", " screw", ".", " 2", ")", " Close", " it", ".", " -", "5", " degrees", " is",
            " too",
        ] {
            assert!(step(&mut q, piece), "{piece:?}");
        }
        assert_eq!(
            q.text(),
            "Keep these rules in mind:\n- Prime it with glycol.\n- Never run it dry.\n\
             1. Bleed the screw.\n2) Close it. -5 degrees is too"
        );
        assert_eq!(collapse_whitespace(source), q.text() + " cold.");
    }

    #[test]
    fn a_span_begun_inside_a_code_mark_or_emphasis_gets_the_mark_back() {
        let text = |source: &str, pieces: &[&str]| {
            let mut q = Quote::new([source], []);
            for piece in pieces {
                assert!(step(&mut q, piece), "{piece:?} in {source:?}");
            }
            q.text()
        };
        let source = "The `iter` method produces an iterator. _Inner attributes_ apply within.";
        assert_eq!(
            text(source, &["iter", "` method", " produces"]),
            "`iter` method produces"
        );
        assert_eq!(text(source, &["The", " `", "iter"]), "The `iter`");
        assert_eq!(
            text(source, &["Inner", " attributes", "_ apply"]),
            "_Inner attributes_ apply"
        );
        // Balanced, or a mark inside a word: as it is.
        assert_eq!(text(source, &["iter"]), "iter");
        let source = "Call `into_iter` or *iter* here.";
        assert_eq!(text(source, &["into", "_iter"]), "into_iter");
        assert_eq!(text(source, &["into"]), "into");
        assert_eq!(text(source, &["iter", "* here"]), "*iter* here");
    }

    #[test]
    fn case_and_words_are_exact_but_for_a_lowercased_first_letter() {
        let q = Quote::new(["It has six lanes."], []);
        assert!(q.allows(b"six"));
        assert!(
            !q.allows(b"Six"),
            "a capital starts no span at a lowercase word"
        );
        assert!(!q.allows(b"sIx"));
        assert!(!q.allows(b"6"));
        let mut q = Quote::new(["All data sources are resources."], ["NOT FOUND"]);
        assert!(
            step(&mut q, "all data"),
            "a sentence's first word, lowercased"
        );
        assert!(!q.allows(b" Sources"), "only the first letter");
        assert!(step(&mut q, " sources"));
        assert_eq!(q.text(), "All data sources", "as the source has it");
        // Written as one place has it, it stays so, whatever the other places.
        let mut q = Quote::new(["Const items.", "The const keyword."], []);
        assert!(step(&mut q, "const"));
        assert_eq!(q.text(), "const");
        let mut q = Quote::new(["Const items."], []);
        assert!(step(&mut q, "const"));
        assert_eq!(q.text(), "Const");
        // Fixed replies are exact.
        let q = Quote::new(["Nothing here."], ["NOT FOUND"]);
        assert!(!q.allows(b"not FOUND"));
        let mut q = Quote::new(["bitstrings are strings"], []);
        assert!(step(&mut q, "bitstring"));
        assert!(!q.may_stop(), "a span ends where a word ends");
        assert!(step(&mut q, "s"));
        assert!(q.may_stop());
    }

    #[test]
    fn the_start_floor_applies_before_the_first_token_only() {
        let mut q = Quote::new(["Nothing here."], ["NOT FOUND"]).with_start_floor(-4.0);
        assert_eq!(q.start_floor(), Some(-4.0));
        assert!(q.begins_reply(b"NOT"));
        assert!(!q.begins_reply(b"Nothing"));
        assert!(step(&mut q, "Nothing"));
        assert_eq!(q.start_floor(), None);
    }

    #[test]
    fn the_reply_bias_applies_to_the_first_token_of_a_reply_alone() {
        let mut q = Quote::new(["NFC is the form used."], ["NOT FOUND"]).with_reply_bias(-2.0);
        assert_eq!(q.reply_bias().to_bits(), (-2.0f32).to_bits());
        assert!(q.begins_only_reply(b"NOT"));
        // "N" begins the refusal and a quote of "NFC" alike: not the refusal alone.
        assert!(q.begins_reply(b"N") && !q.begins_only_reply(b"N"));
        assert!(!q.begins_only_reply(b"NFC"));
        assert!(step(&mut q, "NFC"));
        assert_eq!(q.reply_bias().to_bits(), 0f32.to_bits());
    }

    #[test]
    fn fixed_replies_must_be_whole() {
        let mut q = Quote::new(["Nothing here."], ["NOT FOUND"]);
        assert!(step(&mut q, "NOT"));
        assert!(!q.may_stop());
        assert!(step(&mut q, " FOUND"));
        assert!(q.may_stop());
        assert!(!q.allows(b"."));
    }

    #[test]
    fn several_texts_keep_every_match_alive() {
        let mut q = Quote::new(["the red fox", "the red hen"], []);
        assert!(step(&mut q, "the red"));
        assert!(q.allows(b" hen"));
        assert!(q.allows(b" fox"));
        assert!(step(&mut q, " hen"));
        assert!(!q.allows(b" fox"));
    }

    #[test]
    fn multibyte_text_is_matched_by_bytes() {
        let mut q = Quote::new(["Battle of Bạch Đằng (1288)"], []);
        let word = "Bạch".as_bytes();
        // A token may end inside a character; the rest follows in the next token.
        assert!(step(&mut q, "Battle of "));
        assert!(q.allows(&word[..2]));
        q.advance(&word[..2]);
        assert!(q.allows(&word[2..]));
        assert!(!q.allows(b"x"));
    }
}
