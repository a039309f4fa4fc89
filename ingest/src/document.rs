//! The text of one document, cut into sections that know their heading path, page and lines.

use std::ops::Range;

/// What a file was read as.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DocKind {
    /// Plain text (also reStructuredText, AsciiDoc and unknown text files).
    Text,
    /// Markdown; headings become section paths.
    Markdown,
    /// HTML; scripts, styles and navigation are dropped, headings kept.
    Html,
    /// PDF; every section knows its page.
    Pdf,
    /// Source code; split at blank lines and definitions, never inside a line.
    Code,
}

impl DocKind {
    /// The lowercase name used in output and in the index.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            DocKind::Text => "text",
            DocKind::Markdown => "markdown",
            DocKind::Html => "html",
            DocKind::Pdf => "pdf",
            DocKind::Code => "code",
        }
    }

    /// Which version of the reader of this kind a document was read with. It goes up when
    /// reading changes what a file of the kind yields (PDFs: 1 cuts running heads and feet, 2
    /// spaces glyphs set apart within one text operator, such as a table's cells, 3 cuts
    /// sections at the headings of the file's outline, each with its heading path;
    /// HTML: 1 drops permalinks, link-list menus and footers, and gives reference entries
    /// sections of their own, 2 fences `<pre>` blocks as Markdown code blocks; HTML 3,
    /// Markdown and text 1: a chunk knows whether it begins inside a code block,
    /// `Chunk::in_code`; Markdown 2 takes out markup a page does not show, such as comments
    /// and link targets, 3 mdbook's `{{#include …}}` directives and blocks of nothing else,
    /// and reads the Rust Book's `<Listing caption>` as "Listing N: caption"), so that `add`
    /// reads such files again, unchanged as they are.
    #[must_use]
    pub fn reader_version(self) -> u32 {
        match self {
            DocKind::Html | DocKind::Markdown | DocKind::Pdf => 3,
            DocKind::Text => 1,
            DocKind::Code => 0,
        }
    }
}

/// A run of a document's text under one heading path (and, for PDFs, on one page).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Section {
    /// Byte range in [`Document::text`].
    pub range: Range<usize>,
    /// Headings from the outermost to the innermost; empty before the first heading.
    pub heading: Vec<String>,
    /// 1-based page number, for PDFs.
    pub page: Option<u32>,
    /// 1-based line number, in the file (or the page, for PDFs), of `range.start`.
    pub first_line: u32,
}

/// Sections of a text cut at headings: `(offset, level, text)` in text order, level 1 outermost.
/// Text before the first heading is a section without a heading path (if it is not blank).
pub(crate) fn sections_from_headings(
    text: &str,
    headings: &[(usize, usize, String)],
) -> Vec<Section> {
    let mut sections = Vec::new();
    let first = headings.first().map_or(text.len(), |h| h.0);
    if !text[..first].trim().is_empty() {
        sections.push(Section {
            range: 0..first,
            heading: Vec::new(),
            page: None,
            first_line: 1,
        });
    }
    let mut stack: Vec<(usize, &str)> = Vec::new();
    let mut line = 1u32;
    let mut counted = 0;
    for (i, (start, level, heading)) in headings.iter().enumerate() {
        while stack.last().is_some_and(|(l, _)| l >= level) {
            stack.pop();
        }
        stack.push((*level, heading));
        line += text.as_bytes()[counted..*start]
            .iter()
            .fold(0, |n, &b| n + u32::from(b == b'\n'));
        counted = *start;
        let end = headings.get(i + 1).map_or(text.len(), |h| h.0);
        if text[*start..end].trim().is_empty() {
            // A heading with nothing under it, not even itself, makes no section: the one
            // before keeps its blank lines.
            if let Some(before) = sections.last_mut() {
                before.range.end = end;
            }
            continue;
        }
        sections.push(Section {
            range: *start..end,
            heading: stack.iter().map(|(_, h)| (*h).to_owned()).collect(),
            page: None,
            first_line: line,
        });
    }
    sections
}

/// A document as read: its text and the sections that cover it, in order.
///
/// For text and code, `text` is the file itself (decoded), so byte offsets and line numbers
/// point into the file; for Markdown, the file without the markup a page does not show, line
/// for line, so line numbers point into the file. For HTML and PDF, `text` is the extracted text and line numbers
/// count its lines (per page, for PDFs).
#[derive(Clone, Debug)]
pub struct Document {
    /// What the file was read as.
    pub kind: DocKind,
    /// A title: the first H1 or `<title>`, the PDF's title, else the file name.
    pub title: String,
    /// The whole text.
    pub text: String,
    /// Non-overlapping sections in text order; gaps between them hold no content.
    pub sections: Vec<Section>,
    line_starts: Vec<usize>,
}

impl Document {
    /// Builds a document and indexes its line starts.
    ///
    /// # Panics
    /// If a section range is out of bounds, not on a char boundary or out of order: a reader bug.
    #[must_use]
    pub fn new(kind: DocKind, title: String, text: String, sections: Vec<Section>) -> Self {
        let mut last = 0;
        for s in &sections {
            assert!(
                s.range.start >= last
                    && s.range.start <= s.range.end
                    && s.range.end <= text.len()
                    && text.is_char_boundary(s.range.start)
                    && text.is_char_boundary(s.range.end),
                "section {:?} out of order or bounds",
                s.range
            );
            last = s.range.end;
        }
        let line_starts = std::iter::once(0)
            .chain(text.match_indices('\n').map(|(i, _)| i + 1))
            .collect();
        Document {
            kind,
            title,
            text,
            sections,
            line_starts,
        }
    }

    /// 0-based index of the line holding byte `offset` of the whole text.
    fn line_index(&self, offset: usize) -> usize {
        self.line_starts.partition_point(|&s| s <= offset) - 1
    }

    /// The 1-based line of byte `offset`, counted the way the section counts (per page for PDFs).
    #[must_use]
    pub fn line_of(&self, section: &Section, offset: usize) -> u32 {
        let from = self.line_index(section.range.start);
        let at = self.line_index(offset);
        section.first_line + (at - from) as u32
    }
}
