//! A document's lines as the index numbers them, for showing a passage in its place.

use std::path::Path;

use cairn_ingest::{DocKind, ReadOptions};

use crate::text::sanitize;
use crate::{Error, Result};

/// Whether an editor opened on the file at `path` sees the lines passages count (Markdown,
/// text and code), rather than markup or PDF bytes.
#[must_use]
pub fn lines_match_file(path: &Path) -> bool {
    !matches!(
        cairn_ingest::kind_of(path),
        Some(DocKind::Html | DocKind::Pdf)
    )
}

/// Consecutive lines of a document (or of one PDF page), safe for a terminal.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DocumentLines {
    /// The lines, sanitized, tabs expanded.
    pub lines: Vec<String>,
    /// The number of the first line (1-based, as passages' `lines` count).
    pub first_line: u32,
}

/// Reads the lines that passages' line numbers refer to: the text cairn reads from the file at
/// `path` (for Markdown, text and code the file itself; for HTML the text without markup), or
/// for a PDF the text of `page`.
pub fn document_lines(path: &Path, page: Option<u32>) -> Result<DocumentLines> {
    let clean = |text: &str| -> Vec<String> {
        text.lines()
            .map(|l| sanitize(&l.replace('\t', "    ")))
            .collect()
    };
    let read = cairn_ingest::read_file(path, &ReadOptions::default())
        .map_err(|e| Error::KnowledgeBase(e.to_string()))?;
    let doc = &read.document;
    if doc.kind != DocKind::Pdf {
        return Ok(DocumentLines {
            lines: clean(&doc.text),
            first_line: 1,
        });
    }
    let on_page: Vec<_> = doc.sections.iter().filter(|s| s.page == page).collect();
    let (Some(first), Some(last)) = (on_page.first(), on_page.last()) else {
        return Err(Error::KnowledgeBase(format!(
            "{}: page {} has no text now",
            path.display(),
            page.unwrap_or(0)
        )));
    };
    Ok(DocumentLines {
        lines: clean(&doc.text[first.range.start..last.range.end]),
        first_line: first.first_line,
    })
}
