//! Markdown: the file's text as a reader sees it ([`plain`]: markup that is not shown is taken
//! out, every line kept where it was), cut at headings (ATX and setext) into sections whose
//! heading path is the chain of enclosing headings.

use std::ops::Range;

use pulldown_cmark::{BrokenLink, CowStr, Event, HeadingLevel, Options, Parser, Tag, TagEnd};

use crate::document::{sections_from_headings, DocKind, Document};

const OPTIONS: Options = Options::ENABLE_TABLES
    .union(Options::ENABLE_FOOTNOTES)
    .union(Options::ENABLE_STRIKETHROUGH)
    .union(Options::ENABLE_YAML_STYLE_METADATA_BLOCKS);

pub(crate) fn read(text: String, file_name: &str) -> Document {
    let text = plain(&text).unwrap_or(text);
    let options = OPTIONS;
    // (start offset, level, heading text)
    let mut headings: Vec<(usize, HeadingLevel, String)> = Vec::new();
    let mut current: Option<(usize, HeadingLevel, String)> = None;
    let mut front_title = None;
    let mut in_metadata = false;
    for (event, range) in Parser::new_ext(&text, options).into_offset_iter() {
        match event {
            Event::Start(Tag::Heading { level, .. }) => {
                current = Some((range.start, level, String::new()));
            }
            Event::End(TagEnd::Heading(_)) => {
                if let Some((start, level, title)) = current.take() {
                    headings.push((
                        start,
                        level,
                        title.split_whitespace().collect::<Vec<_>>().join(" "),
                    ));
                }
            }
            Event::Start(Tag::MetadataBlock(_)) => in_metadata = true,
            Event::End(TagEnd::MetadataBlock(_)) => in_metadata = false,
            Event::Text(t) | Event::Code(t) if in_metadata => {
                front_title = t.lines().find_map(|l| {
                    l.strip_prefix("title:")
                        .map(|v| v.trim().trim_matches(['"', '\'']).to_owned())
                        .filter(|v| !v.is_empty())
                });
            }
            Event::Text(t) | Event::Code(t) => {
                if let Some((_, _, title)) = current.as_mut() {
                    title.push_str(&t);
                }
            }
            Event::SoftBreak | Event::HardBreak => {
                if let Some((_, _, title)) = current.as_mut() {
                    title.push(' ');
                }
            }
            _ => {}
        }
    }

    let title = front_title
        .or_else(|| {
            headings
                .iter()
                .find(|h| h.1 == HeadingLevel::H1 && !h.2.is_empty())
                .map(|h| h.2.clone())
        })
        .unwrap_or_else(|| file_name.to_owned());

    let levels: Vec<(usize, usize, String)> = headings
        .into_iter()
        .map(|(start, level, heading)| (start, level as usize, heading))
        .collect();
    let sections = sections_from_headings(&text, &levels);
    Document::new(DocKind::Markdown, title, text, sections)
}

/// The text with the markup a rendered page does not show taken out: HTML comments and tags
/// (of HTML's own elements: `Vec<T>` stays), link targets (`[text](url)`, `[text][ref]` and
/// `<url>` keep their text), the definitions of link references and mdbook-spec rule names (a
/// line `r[items.fn.intro]`) and the backslashes of escapes (`\\*`). Code, inline and fenced, is
/// left as written, and so are headings, lists, tables and emphasis (`_ownership_` marks where
/// a term is defined: `cairn_retriever::terms::introduction` looks for it). Only characters
/// within lines go: every newline stays, so line numbers still point into the file. `None` when
/// nothing goes.
///
/// The model reads fewer tokens of markup, and an answer quoted from the text reads as the
/// page does ("see the rustc book", not "see [the rustc book](https://…)").
pub(crate) fn plain(text: &str) -> Option<String> {
    // Ranges to take out, each with what (if anything) stands in its place.
    let mut cuts: Vec<(Range<usize>, &'static str)> = Vec::new();
    let mut code: Vec<Range<usize>> = Vec::new();
    // Open links and images: their range, and the first and last byte of what they hold.
    let mut open: Vec<(Range<usize>, Option<usize>, usize)> = Vec::new();
    // A reference to code with no definition (`[`Box<T>`]`) is a link all the same: mdbook-spec
    // and rustdoc link such names themselves. Other undefined references stay as written.
    let code_reference = |link: BrokenLink<'_>| {
        let inner = link.reference.strip_prefix('`')?.strip_suffix('`')?;
        (!inner.contains('`')).then(|| (CowStr::from(""), CowStr::from("")))
    };
    let parser = Parser::new_with_broken_link_callback(text, OPTIONS, Some(code_reference));
    for def in parser.reference_definitions().iter().map(|(_, d)| &d.span) {
        cuts.push((def.clone(), ""));
    }
    let mut in_metadata = false;
    // Where the last piece of inline text (or code, or HTML) ended.
    let mut inline_end = 0;
    for (event, range) in parser.into_offset_iter() {
        let unwraps = |tag: &Tag<'_>| matches!(tag, Tag::Link { .. } | Tag::Image { .. });
        let ends = matches!(&event, Event::End(TagEnd::Link | TagEnd::Image));
        if ends {
            if let Some((whole, first, last)) = open.pop() {
                match first {
                    Some(first) => {
                        cuts.push((whole.start..first, ""));
                        cuts.push((last..whole.end, ""));
                    }
                    None => cuts.push((whole.clone(), "")),
                }
                if let Some(parent) = open.last_mut() {
                    parent.1.get_or_insert(whole.start);
                    parent.2 = whole.end;
                }
            }
            continue;
        }
        if let Some(parent) = open.last_mut() {
            parent.1.get_or_insert(range.start);
            parent.2 = parent.2.max(range.end);
        }
        // Whether this piece begins past the end of the one before (a backslash between them).
        let apart = range.start > inline_end;
        if !matches!(event, Event::Start(_) | Event::End(_)) {
            inline_end = inline_end.max(range.end);
        }
        match event {
            Event::Start(tag) if unwraps(&tag) => open.push((range.clone(), None, range.start)),
            Event::Start(Tag::CodeBlock(_)) => {
                // A block that only includes a file (mdbook's listings) shows the file, which
                // is not here: the block goes, fences and all.
                let inner = text[range.clone()].lines().filter(|l| !is_fence_line(l));
                if inner.clone().all(|l| l.trim().is_empty() || directive(l))
                    && inner.clone().any(directive)
                {
                    cuts.push((range.clone(), ""));
                }
                code.push(range);
            }
            Event::Code(_) => code.push(range),
            Event::Start(Tag::MetadataBlock(_)) => in_metadata = true,
            Event::End(TagEnd::MetadataBlock(_)) => in_metadata = false,
            // A backslash escape ("\\*"): the backslash lies between two pieces of text. Not
            // one that opens a line: the text is read again for its headings, and "\\# 1" or
            // "\\* note" would begin a heading or a list there.
            Event::Text(_)
                if apart
                    && text[..range.start].ends_with('\\')
                    && !text[..range.start - 1]
                        .rsplit('\n')
                        .next()
                        .is_some_and(|l| l.trim().is_empty()) =>
            {
                cuts.push((range.start - 1..range.start, ""));
            }
            // (An HTML block's lines come as `Html` events inside it.)
            Event::Start(Tag::HtmlBlock) | Event::InlineHtml(_) if !in_metadata => {
                html_cuts(text, range, &mut cuts);
            }
            _ => {}
        }
    }
    // mdbook-spec's rule names, each on a line of its own outside code.
    let mut at = 0;
    for line in text.split_inclusive('\n') {
        let name = line.trim();
        if let Some(id) = name.strip_prefix("r[").and_then(|n| n.strip_suffix(']')) {
            if !id.is_empty()
                && id
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
                && !code.iter().any(|c| c.contains(&at))
            {
                cuts.push((at..at + line.trim_end().len(), ""));
            }
        }
        at += line.len();
    }
    // mdbook's directives (`{{#include …}}`) and the Rust Book's `<Listing>` element, each on a
    // line of its own: the page shows the file included, and "Listing 8-20: caption".
    let mut at = 0;
    for line in text.split_inclusive('\n') {
        let content = line.trim_end();
        if directive(content) {
            cuts.push((at..at + content.len(), ""));
        } else if let Some(cut) = listing(content) {
            cuts.extend(cut.into_iter().map(|(r, s)| (at + r.start..at + r.end, s)));
        }
        at += line.len();
    }
    if cuts.is_empty() {
        return None;
    }
    cuts.sort_by_key(|(r, _)| (r.start, r.end));
    let mut out = String::with_capacity(text.len());
    let mut kept = 0;
    for (range, stand_in) in cuts {
        if range.end <= kept {
            continue;
        }
        let start = range.start.max(kept);
        out.push_str(&text[kept..start]);
        // Newlines stay, so lines keep their numbers.
        let gone = &text[start..range.end];
        if gone.contains('\n') {
            out.extend(gone.chars().filter(|&c| c == '\n'));
        } else if !stand_in.is_empty()
            && out.chars().last().is_some_and(|c| !c.is_whitespace())
            && text[range.end..]
                .chars()
                .next()
                .is_some_and(|c| !c.is_whitespace())
        {
            out.push_str(stand_in);
        }
        kept = range.end;
    }
    out.push_str(&text[kept..]);
    Some(out)
}

/// Whether a line opens or closes a fenced code block.
fn is_fence_line(line: &str) -> bool {
    let t = line.trim_start();
    t.starts_with("```") || t.starts_with("~~~")
}

/// Whether a line is only an mdbook directive: `{{#include file}}`, `{{#rustdoc_include …}}`,
/// `{{#playground …}}`, `{{#title …}}`.
fn directive(line: &str) -> bool {
    let t = line.trim();
    t.strip_prefix("{{#")
        .and_then(|d| d.strip_suffix("}}"))
        .is_some_and(|d| {
            let name: String = d
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            matches!(
                name.as_str(),
                "include" | "rustdoc_include" | "playground" | "rust" | "title"
            ) && !d.contains("}}")
        })
}

/// The cuts that make a line holding only the Rust Book's `<Listing number="8-20"
/// caption="…">` read "Listing 8-20: …" (with no number, the caption alone), and take a line
/// holding only `</Listing>` out; `None` for any other line. Ranges are within the line.
fn listing(line: &str) -> Option<Vec<(Range<usize>, &'static str)>> {
    let start = line.len() - line.trim_start().len();
    let t = line.trim();
    if t == "</Listing>" {
        return Some(vec![(start..start + t.len(), "")]);
    }
    let attrs = t.strip_prefix("<Listing")?.strip_suffix('>')?;
    if !(attrs.is_empty() || attrs.starts_with(char::is_whitespace)) {
        return None;
    }
    let base = start + "<Listing".len();
    // The value of `name="…"` in the tag, as a range of the line.
    let value = |name: &str| -> Option<Range<usize>> {
        let key = format!("{name}=\"");
        let from = attrs.find(&key)? + key.len();
        let len = attrs[from..].find('"')?;
        Some(base + from..base + from + len)
    };
    let end = start + t.len();
    let mut cuts = Vec::new();
    let (number, caption) = (value("number"), value("caption"));
    match (number, caption) {
        (Some(n), Some(c)) if n.end < c.start => {
            // "<" out, "Listing" kept, up to the number out, the number kept, up to the
            // caption out (": " in its place), the caption kept, the rest out.
            cuts.push((start..start + 1, ""));
            cuts.push((start + 1 + "Listing".len()..n.start, " "));
            cuts.push((n.end..c.start, ": "));
            cuts.push((c.end..end, ""));
        }
        (_, Some(c)) => {
            cuts.push((start..c.start, ""));
            cuts.push((c.end..end, ""));
        }
        _ => cuts.push((start..end, "")),
    }
    Some(cuts)
}

/// HTML elements whose tags a page does not show; the ones that set text apart (a line break,
/// a paragraph, a table cell) leave a space between the words on either side.
const HTML_INLINE: &[&str] = &[
    "a", "abbr", "b", "code", "del", "em", "font", "i", "img", "ins", "kbd", "mark", "q", "s",
    "samp", "small", "span", "strong", "sub", "sup", "u", "var",
];
const HTML_BLOCK: &[&str] = &[
    "br",
    "dd",
    "details",
    "div",
    "dl",
    "dt",
    "figcaption",
    "figure",
    "hr",
    "li",
    "ol",
    "p",
    "section",
    "summary",
    "table",
    "tbody",
    "td",
    "th",
    "thead",
    "tr",
    "ul",
];

/// The comments and the tags of [`HTML_INLINE`] and [`HTML_BLOCK`] elements in `range` of the
/// text (an HTML block or a piece of inline HTML), as cuts. A comment runs to its `-->`, even
/// past the range (inline HTML comes in pieces).
fn html_cuts(text: &str, range: Range<usize>, cuts: &mut Vec<(Range<usize>, &'static str)>) {
    let mut at = range.start;
    while let Some(found) = text[at..range.end].find('<') {
        let start = at + found;
        let rest = &text[start..];
        if let Some(comment) = rest.strip_prefix("<!--") {
            let end = comment
                .find("-->")
                .map_or(text.len(), |e| start + 4 + e + 3);
            cuts.push((start..end, ""));
            at = end.min(range.end).max(start + 1);
            continue;
        }
        let name_at = if rest.starts_with("</") { 2 } else { 1 };
        let name: String = rest[name_at..]
            .chars()
            .take_while(char::is_ascii_alphanumeric)
            .collect::<String>()
            .to_ascii_lowercase();
        let stand_in = if HTML_INLINE.contains(&name.as_str()) {
            Some("")
        } else if HTML_BLOCK.contains(&name.as_str()) {
            Some(" ")
        } else {
            None
        };
        let after = &rest[name_at + name.len()..];
        let closes = after.starts_with(['>', ' ', '\t', '\n', '/']);
        match (stand_in, closes, tag_end(rest)) {
            (Some(stand_in), true, Some(len)) => {
                cuts.push((start..start + len, stand_in));
                at = start + len;
            }
            _ => at = start + 1,
        }
    }
}

/// The length of the tag that `text` starts with, to its `>` (not one inside a quoted
/// attribute value).
fn tag_end(text: &str) -> Option<usize> {
    let mut quote = None;
    for (i, c) in text.char_indices().skip(1) {
        match (quote, c) {
            (None, '"' | '\'') => quote = Some(c),
            (Some(q), c) if c == q => quote = None,
            (None, '>') => return Some(i + 1),
            (None, '<') => return None,
            _ => {}
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headings_become_paths_and_lines() {
        let text = "intro\n\n# Guide\n\ntext\n\n## Install\n\nsteps\n\nSetext\n------\n\nmore\n\n# Other\nx\n";
        let doc = read(text.to_owned(), "f.md");
        assert_eq!(doc.title, "Guide");
        let paths: Vec<_> = doc
            .sections
            .iter()
            .map(|s| (s.heading.join(" > "), s.first_line))
            .collect();
        assert_eq!(
            paths,
            [
                (String::new(), 1),
                ("Guide".into(), 3),
                ("Guide > Install".into(), 7),
                ("Guide > Setext".into(), 11),
                ("Other".into(), 16)
            ]
        );
        assert!(doc.text[doc.sections[2].range.clone()].starts_with("## Install"));
    }

    #[test]
    fn hash_in_code_block_is_not_a_heading() {
        let doc = read("# A\n\n```sh\n# comment\n```\n".to_owned(), "f.md");
        assert_eq!(doc.sections.len(), 1);
    }

    #[test]
    fn front_matter_title_wins() {
        let doc = read("---\ntitle: \"Nice\"\n---\n\n# H\n".to_owned(), "f.md");
        assert_eq!(doc.title, "Nice");
    }

    #[test]
    fn markup_a_page_does_not_show_is_taken_out_and_lines_stay() {
        let text = "\
r[ownership.rules]
# Ownership

<a id=\"old-anchor\"></a>

Each value has an _owner_, see [the book][book] and [`Rc<T>`](rc.html).<!-- ignore -->
[`Box<T>`] is linked, [an undefined reference] is not. \\* is a star, `\\*` code.
\\# Not a heading, \\# here either.
A **bold** claim about Vec<T> and <https://example.org>.
Line one<br>line two, <kbd>Ctrl</kbd>-C.
<!-- An editor's note
over two lines -->

```rust
// r[not.a.rule] _kept_ [kept](x) <!-- kept -->
r[also.kept]
```

Inline `_code_ [x](y)` stays.

[book]: https://doc.rust-lang.org/book/
";
        let out = plain(text).expect("there is markup");
        assert_eq!(out.lines().count(), text.lines().count());
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines[0], "");
        assert_eq!(lines[1], "# Ownership");
        assert_eq!(lines[3].trim(), "");
        assert_eq!(
            lines[5],
            "Each value has an _owner_, see the book and `Rc<T>`."
        );
        assert_eq!(
            lines[6],
            "`Box<T>` is linked, [an undefined reference] is not. * is a star, `\\*` code."
        );
        assert_eq!(lines[7], "\\# Not a heading, # here either.");
        assert_eq!(
            lines[8],
            "A **bold** claim about Vec<T> and https://example.org."
        );
        assert_eq!(lines[9], "Line one line two, Ctrl-C.");
        assert_eq!((lines[10], lines[11]), ("", ""));
        assert_eq!(lines[14], "// r[not.a.rule] _kept_ [kept](x) <!-- kept -->");
        assert_eq!(lines[15], "r[also.kept]");
        assert_eq!(lines[18], "Inline `_code_ [x](y)` stays.");
        assert_eq!(lines[20], "");
        // Sections and their lines are those of the file.
        let doc = read(text.to_owned(), "f.md");
        assert_eq!(doc.sections[0].heading, ["Ownership"]);
        assert_eq!(doc.sections[0].first_line, 2);
        assert!(doc.text.contains("has an _owner_, see the book"));
    }

    #[test]
    fn mdbook_listings_read_as_their_page_shows_them() {
        let text = "Prose.\n\n<Listing number=\"8-20\" file-name=\"src/main.rs\" caption=\"Creating a new hash map\">\n\n```rust\n{{#rustdoc_include ../listings/ch08/listing-08-20/src/main.rs:here}}\n```\n\n</Listing>\n\n```rust\nfn main() {}\n{{#include ../listings/x.rs}}\n```\n";
        let out = plain(text).unwrap();
        assert_eq!(out.matches('\n').count(), text.matches('\n').count());
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines[2], "Listing 8-20: Creating a new hash map");
        // A block that only includes a file goes, fences and all; in one with code of its
        // own, only the directive's line.
        assert!(lines[4..=6].iter().all(|l| l.is_empty()), "{out:?}");
        assert_eq!(lines[8], "");
        assert_eq!(lines[10..=13], ["```rust", "fn main() {}", "", "```"]);
        let captioned = plain("<Listing caption=\"Only a caption\">\n").unwrap();
        assert_eq!(captioned, "Only a caption\n");
        // Not a directive: text around it, or another name.
        assert_eq!(plain("See {{#include x.rs}} here.\n{{#unknown x}}\n"), None);
    }

    #[test]
    fn plain_markdown_is_left_alone() {
        assert_eq!(plain("# A\n\nJust text, `code` and snake_case.\n"), None);
    }

    #[test]
    fn any_mix_of_markup_keeps_every_line_and_takes_only_what_was_there() {
        const PIECES: &[&str] = &[
            "<",
            ">",
            "<!--",
            "-->",
            "<a href=\"x\">",
            "</a>",
            "<br>",
            "<T>",
            "[",
            "]",
            "(",
            ")",
            "[x]: y\n",
            "![",
            "_",
            "*",
            "**",
            "~~",
            "`",
            "```\n",
            "r[a.b]",
            "\n",
            "\n\n",
            "# ",
            "- ",
            "1. ",
            "> ",
            "|",
            "é",
            "→",
            " ",
            "word",
            "\\",
            "{{",
            "}}",
            "&amp;",
            "{{#include x.rs}}",
            "<Listing caption=\"c\">",
            "</Listing>",
        ];
        let mut state = 0x2545_f491_u32;
        let mut next = || {
            state ^= state << 13;
            state ^= state >> 17;
            state ^= state << 5;
            state as usize
        };
        let mut cases = 0;
        for _ in 0..3000 {
            let mut text = String::new();
            for _ in 0..next() % 40 {
                text.push_str(PIECES[next() % PIECES.len()]);
            }
            let Some(out) = plain(&text) else { continue };
            cases += 1;
            assert_eq!(
                out.matches('\n').count(),
                text.matches('\n').count(),
                "{text:?}"
            );
            // What is left is the text with some characters taken out (and the odd space put
            // where a tag stood).
            let mut left = text.chars();
            assert!(
                out.chars()
                    .filter(|&c| c != ' ')
                    .all(|c| left.any(|t| t == c)),
                "{text:?} gave {out:?}"
            );
        }
        assert!(cases > 1000, "{cases} texts with markup taken out");
    }
}
