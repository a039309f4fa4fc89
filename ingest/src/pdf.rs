//! PDF: text per page with pdf-extract (on lopdf), NFKC-normalised, every page its own section.
//!
//! pdf-extract is known to panic on some files; every call into it runs under `catch_unwind`,
//! so one bad page costs that page and one bad file costs that file, never the run.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::Path;

use pdf_extract::{output_doc_page, Document as Pdf, PlainTextOutput};
use unicode_normalization::UnicodeNormalization;

use crate::document::{DocKind, Document, Section};
use crate::error::{Error, Result};
use crate::read::{Notice, Read};

fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic".to_owned())
}

/// Tidies one page's extracted text: NFKC (ligatures like `ﬁ` become `fi`), no trailing spaces,
/// at most one blank line in a row, no form feeds.
fn tidy(page: &str) -> String {
    let normalized: String = page.nfkc().collect();
    let mut out = String::with_capacity(normalized.len());
    let mut blank = 0;
    for line in normalized.lines() {
        let line = line.replace('\u{c}', "");
        let line = line.trim_end();
        if line.trim().is_empty() {
            blank += 1;
            continue;
        }
        if !out.is_empty() {
            out.push_str(if blank > 0 { "\n\n" } else { "\n" });
        }
        blank = 0;
        out.push_str(line);
    }
    out
}

pub(crate) fn read(path: &Path, bytes: &[u8]) -> Result<Read> {
    let bad = |message: String| Error::BadPdf {
        path: path.to_owned(),
        message,
    };
    let mut pdf = match catch_unwind(|| Pdf::load_mem(bytes)) {
        Ok(Ok(pdf)) => pdf,
        Ok(Err(e)) => return Err(bad(e.to_string())),
        Err(panic) => {
            return Err(bad(format!(
                "the parser panicked: {}",
                panic_message(&*panic)
            )))
        }
    };
    if pdf.is_encrypted() {
        // Many PDFs are "encrypted" with an empty user password only; those open fine.
        let ok = catch_unwind(AssertUnwindSafe(|| pdf.decrypt(""))).is_ok_and(|r| r.is_ok());
        if !ok {
            return Err(Error::Encrypted {
                path: path.to_owned(),
            });
        }
    }
    let title = pdf_title(&pdf).unwrap_or_else(|| {
        path.file_name()
            .map_or_else(String::new, |n| n.to_string_lossy().into_owned())
    });
    let page_count = pdf.get_pages().len() as u32;
    let mut text = String::new();
    let mut sections = Vec::new();
    let mut notices = Vec::new();
    for page in 1..=page_count {
        let result = catch_unwind(AssertUnwindSafe(|| {
            let mut s = String::new();
            let mut out = PlainTextOutput::new(&mut s);
            output_doc_page(&pdf, &mut out, page).map(|()| s)
        }));
        let page_text = match result {
            Ok(Ok(s)) => tidy(&s),
            Ok(Err(e)) => {
                notices.push(Notice {
                    page: Some(page),
                    message: format!("page {page}: text could not be extracted: {e}"),
                });
                continue;
            }
            Err(panic) => {
                notices.push(Notice {
                    page: Some(page),
                    message: format!(
                        "page {page}: the PDF reader panicked ({}); page skipped",
                        panic_message(&*panic)
                    ),
                });
                continue;
            }
        };
        if page_text.trim().is_empty() {
            notices.push(Notice {
                page: Some(page),
                message: format!("page {page}: no text (empty, or a scanned image)"),
            });
            continue;
        }
        if !text.is_empty() {
            text.push_str("\n\n");
        }
        let start = text.len();
        text.push_str(&page_text);
        sections.push(Section {
            range: start..text.len(),
            heading: Vec::new(),
            page: Some(page),
            first_line: 1,
        });
    }
    if sections.is_empty() {
        return Err(Error::NoText {
            path: path.to_owned(),
            pages: page_count,
        });
    }
    Ok(Read {
        document: Document::new(DocKind::Pdf, title, text, sections),
        notices,
    })
}

fn pdf_title(pdf: &Pdf) -> Option<String> {
    let info = pdf.trailer.get(b"Info").ok()?;
    let info = pdf.dereference(info).ok()?.1.as_dict().ok()?;
    let raw = info.get(b"Title").ok()?.as_str().ok()?;
    let title = if raw.starts_with(&[0xFE, 0xFF]) {
        let units: Vec<u16> = raw[2..]
            .chunks_exact(2)
            .map(|p| u16::from_be_bytes([p[0], p[1]]))
            .collect();
        String::from_utf16_lossy(&units)
    } else {
        raw.iter().map(|&b| char::from(b)).collect()
    };
    let title = title.split_whitespace().collect::<Vec<_>>().join(" ");
    (!title.is_empty()).then_some(title)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tidy_expands_ligatures_and_squeezes_blank_lines() {
        assert_eq!(tidy("a ﬁle  \n\n\n\nnext\u{c}\n"), "a file\n\nnext");
    }

    #[test]
    fn garbage_is_a_bad_pdf_not_a_panic() {
        let err = read(Path::new("x.pdf"), b"%PDF-1.4 garbage").unwrap_err();
        assert_eq!(err.reason(), "bad-pdf");
        assert!(err.to_string().starts_with("x.pdf: "));
    }
}
