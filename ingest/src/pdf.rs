//! PDF: text per page with pdf-extract (on lopdf), NFKC-normalised, every page its own section,
//! cut again where a heading of the file's outline (its bookmarks), else of its contents page,
//! begins: a section knows its heading path, which runs on over page turns until the next
//! heading.
//!
//! pdf-extract is known to panic on some files; every call into it runs under `catch_unwind`,
//! so one bad page costs that page and one bad file costs that file, never the run.

use std::cell::Cell;
use std::collections::{HashMap, HashSet};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::Path;
use std::sync::Once;

use pdf_extract::{output_doc_page, Document as Pdf, MediaBox, OutputDev, OutputError, Transform};
use unicode_normalization::UnicodeNormalization;

use crate::document::{DocKind, Document, Section};
use crate::error::{Error, Result};
use crate::pdf_outline;
use crate::read::{Notice, Read, ReadOptions};

fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic".to_owned())
}

thread_local! {
    /// Whether this thread is inside [`caught`].
    static QUIET: Cell<bool> = const { Cell::new(false) };
}

/// Installs the panic hook [`caught`] needs, once per process.
static QUIET_HOOK: Once = Once::new();

/// Runs `f` under `catch_unwind`, without the panic hook's report: pdf-extract panics on
/// some broken files, which is reported as a notice naming the file and page instead of a
/// "thread 'main' panicked at …" (and a backtrace) on the user's terminal. The hook put in
/// place hands every other panic to the one before it, so a panic anywhere else is reported
/// (or, under a fuzzer, aborts) as it would have been.
fn caught<T>(f: impl FnOnce() -> T) -> std::thread::Result<T> {
    QUIET_HOOK.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if !QUIET.with(Cell::get) {
                previous(info);
            }
        }));
    });
    let was = QUIET.with(|q| q.replace(true));
    let result = catch_unwind(AssertUnwindSafe(f));
    QUIET.with(|q| q.set(was));
    result
}

/// One page's text as pdf-extract lays its glyphs out: a line break where a glyph starts off
/// the line of the one before (two, a blank line, where it also goes back along the line by more
/// than a line's height), and a space where it starts further along that line than the one
/// before ended.
///
/// pdf-extract's own `PlainTextOutput` looks for gaps only at the first glyph each text operator
/// shows, so columns a table sets apart by character spacing inside one operator ran together
/// ("0" and "5,017" as "05,017"). Here every glyph is measured, along the direction its text
/// runs, so that text set sideways in a margin is not broken letter by letter instead.
struct PageText {
    text: String,
    /// Page space (origin at the top left) from PDF user space.
    flip: Transform,
    /// Where the last glyph ended, if one was shown on this page.
    end: Option<(f64, f64)>,
}

impl PageText {
    /// A gap along the line wider than this share of the font size is a space.
    const SPACE: f64 = 0.1;
    /// A step across the line wider than this share of the font size is a new line…
    const NEW_LINE: f64 = 1.5;
    /// …and so is a step across wider than this share that goes back along the line.
    const NEXT_LINE: f64 = 0.5;

    fn new() -> Self {
        PageText {
            text: String::new(),
            flip: Transform::identity(),
            end: None,
        }
    }
}

impl OutputDev for PageText {
    fn begin_page(
        &mut self,
        _page: u32,
        media_box: &MediaBox,
        _art_box: Option<(f64, f64, f64, f64)>,
    ) -> std::result::Result<(), OutputError> {
        self.flip = Transform::row_major(1., 0., 0., -1., 0., media_box.ury - media_box.lly);
        self.end = None;
        Ok(())
    }

    fn end_page(&mut self) -> std::result::Result<(), OutputError> {
        Ok(())
    }

    fn output_character(
        &mut self,
        trm: &Transform,
        width: f64,
        _spacing: f64,
        font_size: f64,
        glyph: &str,
    ) -> std::result::Result<(), OutputError> {
        let at = trm.post_transform(&self.flip);
        let (x, y) = (at.m31, at.m32);
        // The font's size on the page: the side of a square of the area an em square becomes.
        let size = font_size * (trm.m11 * trm.m22 - trm.m12 * trm.m21).abs().sqrt();
        // The direction the text runs in, on the page (whose y points down).
        let length = trm.m11.hypot(trm.m12).max(f64::MIN_POSITIVE);
        let (ux, uy) = (trm.m11 / length, -trm.m12 / length);
        if let Some((ex, ey)) = self.end {
            let (dx, dy) = (x - ex, y - ey);
            let along = dx * ux + dy * uy;
            let across = (dy * ux - dx * uy).abs();
            let far = across > size * Self::NEW_LINE;
            if far {
                self.text.push('\n');
            }
            // Both at once (a paragraph's spacing) leave a blank line.
            if along < 0.0 && across > size * Self::NEXT_LINE {
                self.text.push('\n');
            } else if !far
                && along > size * Self::SPACE
                && !self.text.ends_with(char::is_whitespace)
                && !glyph.starts_with(char::is_whitespace)
            {
                self.text.push(' ');
            }
        }
        self.text.push_str(glyph);
        let advance = width * size;
        self.end = Some((x + advance * ux, y + advance * uy));
        Ok(())
    }

    fn begin_word(&mut self) -> std::result::Result<(), OutputError> {
        Ok(())
    }

    fn end_word(&mut self) -> std::result::Result<(), OutputError> {
        Ok(())
    }

    fn end_line(&mut self) -> std::result::Result<(), OutputError> {
        Ok(())
    }
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

/// The bytes `pdf`'s Flate streams expand to, counting up to just past `limit` (images, which
/// text extraction never decodes, are not counted). Streams that do not inflate count as their
/// compressed size: the extractor reports them itself.
fn inflated_size(pdf: &Pdf, limit: u64) -> u64 {
    use std::io::Read as _;
    let mut total = 0u64;
    for object in pdf.objects.values() {
        let pdf_extract::Object::Stream(stream) = object else {
            continue;
        };
        let is_image = stream
            .dict
            .get(b"Subtype")
            .and_then(pdf_extract::Object::as_name)
            .is_ok_and(|n| n == b"Image");
        let flate = stream
            .filters()
            .is_ok_and(|f| f.first() == Some(&&b"FlateDecode"[..]));
        if is_image || !flate {
            continue;
        }
        let budget = limit.saturating_sub(total).saturating_add(1);
        let mut inflate = flate2::read::ZlibDecoder::new(stream.content.as_slice()).take(budget);
        let n = std::io::copy(&mut inflate, &mut std::io::sink())
            .unwrap_or(stream.content.len() as u64);
        total = total.saturating_add(n);
        if total > limit {
            break;
        }
    }
    total
}

pub(crate) fn read(path: &Path, bytes: &[u8], options: &ReadOptions) -> Result<Read> {
    let bad = |message: String| Error::BadPdf {
        path: path.to_owned(),
        message,
    };
    let mut pdf = match caught(|| Pdf::load_mem(bytes)) {
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
        let ok = caught(|| pdf.decrypt("")).is_ok_and(|r| r.is_ok());
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
    if inflated_size(&pdf, options.max_decompressed_bytes) > options.max_decompressed_bytes {
        return Err(Error::TooMuchDecompressed {
            path: path.to_owned(),
            limit: options.max_decompressed_bytes,
        });
    }
    let page_count = pdf.get_pages().len() as u32;
    let mut text = String::new();
    let mut sections = Vec::new();
    let mut notices = Vec::new();
    let read_pages = page_count.min(options.max_pdf_pages);
    if read_pages < page_count {
        notices.push(Notice {
            page: Some(read_pages + 1),
            message: format!(
                "pages {}–{page_count} skipped: over the limit of {} pages per PDF",
                read_pages + 1,
                options.max_pdf_pages
            ),
        });
    }
    let mut pages: Vec<(u32, String)> = Vec::new();
    let ids = pdf.get_pages();
    for page in 1..=read_pages {
        if ids.get(&page).is_some_and(|&id| parents_loop(&pdf, id)) {
            notices.push(Notice {
                page: Some(page),
                message: format!(
                    "page {page}: its page tree loops (a /Parent that leads back to itself, or \
                     runs over {MAX_PAGE_DEPTH} deep); page skipped"
                ),
            });
            continue;
        }
        let result = caught(|| {
            let mut out = PageText::new();
            output_doc_page(&pdf, &mut out, page).map(|()| out.text)
        });
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
        pages.push((page, page_text));
    }
    let texts: Vec<&str> = pages.iter().map(|(_, t)| t.as_str()).collect();
    let bodies = running_lines(&texts);
    // The outline's headings (else the contents page's), placed in the pages' text: where
    // each begins, a section does.
    let outline = caught(|| pdf_outline::entries(&pdf)).unwrap_or_default();
    let placed = {
        let kept: Vec<(u32, &str)> = pages
            .iter()
            .zip(&bodies)
            .map(|((n, t), body)| (*n, &t[body.clone()]))
            .collect();
        let placed = pdf_outline::place(&outline, &kept);
        if placed.is_empty() {
            let (listed, listing) = pdf_outline::contents(&kept);
            pdf_outline::place_in_order(&listed, &kept, &listing)
        } else {
            placed
        }
    };
    let mut placed = placed.into_iter().peekable();
    // The heading path so far: (level, title), outermost first; it runs on over page turns.
    let mut under: Vec<(usize, String)> = Vec::new();
    for (index, ((page, whole), body)) in pages.iter().zip(bodies).enumerate() {
        let page = *page;
        let page_text = &whole[body.clone()];
        if text.len() + page_text.len() + 2 > options.max_text_bytes {
            notices.push(Notice {
                page: Some(page),
                message: format!(
                    "pages {page}–{read_pages} skipped: the text would pass the limit of {} bytes per file",
                    options.max_text_bytes
                ),
            });
            break;
        }
        if !text.is_empty() {
            text.push_str("\n\n");
        }
        let start = text.len();
        text.push_str(page_text);
        // The running head cut off above is not counted out of the page's lines.
        let first_line = 1 + whole[..body.start].matches('\n').count() as u32;
        let mut cuts = vec![0];
        let mut heads = vec![None];
        while let Some((_, at, level, title)) = placed.next_if(|h| h.0 == index) {
            cuts.push(at);
            heads.push(Some((level, title)));
        }
        cuts.push(page_text.len());
        for (i, head) in heads.into_iter().enumerate() {
            if let Some((level, title)) = head {
                while under.last().is_some_and(|(l, _)| *l >= level) {
                    under.pop();
                }
                under.push((level, title));
            }
            let (from, to) = (cuts[i], cuts[i + 1]);
            if from == to && i == 0 {
                continue;
            }
            sections.push(Section {
                range: start + from..start + to,
                heading: under.iter().map(|(_, t)| t.clone()).collect(),
                page: Some(page),
                first_line: first_line + page_text[..from].matches('\n').count() as u32,
            });
        }
    }
    if sections.is_empty() {
        // A page the reader failed on is not a page without text: say what failed.
        let failed = notices.iter().find(|n| {
            ["could not be extracted", "panicked", "page tree loops"]
                .iter()
                .any(|m| n.message.contains(m))
        });
        if let Some(first) = failed {
            return Err(bad(format!(
                "{}, and no page has text",
                first.message.trim_end_matches("; page skipped")
            )));
        }
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

/// How deep a page may sit in its file's page tree.
const MAX_PAGE_DEPTH: usize = 256;

/// Whether a page's `/Parent` chain leads back to itself, or runs deeper than
/// [`MAX_PAGE_DEPTH`]: pdf-extract follows it without end to find the attributes a page
/// inherits (its media box, its resources), which would hang the run (found by the fuzzer).
fn parents_loop(pdf: &Pdf, page: pdf_extract::ObjectId) -> bool {
    let mut seen = HashSet::new();
    let mut at = page;
    loop {
        if !seen.insert(at) || seen.len() > MAX_PAGE_DEPTH {
            return true;
        }
        let Ok(dict) = pdf.get_dictionary(at) else {
            return false;
        };
        match dict.get(b"Parent") {
            Ok(pdf_extract::Object::Reference(id)) => at = *id,
            _ => return false,
        }
    }
}

/// Lines at a page's top or foot looked at for running heads and feet.
const RUNNING_LINES: usize = 3;

/// A line is running (a page head or foot repeated through the document, such as "NIST SP
/// 800-207 ZERO TRUST ARCHITECTURE" or "12 This publication is available free of charge…")
/// when, numbers aside, it stands among the first (or last) [`RUNNING_LINES`] lines of at least
/// half the pages, and of at least 3.
const RUNNING_SHARE: f64 = 0.5;

/// A line as compared for running heads and feet: spaces collapsed, and page numbers — digits,
/// and roman numerals standing alone (front matter) — made alike.
fn running_key(line: &str) -> String {
    let mut key = Vec::new();
    for word in line.split_whitespace() {
        let roman = word.len() <= 7
            && word.chars().all(|c| {
                matches!(
                    c.to_ascii_lowercase(),
                    'i' | 'v' | 'x' | 'l' | 'c' | 'd' | 'm'
                )
            });
        if roman {
            key.push("#".to_owned());
            continue;
        }
        let mut w = String::with_capacity(word.len());
        for c in word.chars() {
            if c.is_ascii_digit() {
                if !w.ends_with('#') {
                    w.push('#');
                }
            } else {
                w.push(c);
            }
        }
        key.push(w);
    }
    key.join(" ")
}

/// A page's non-blank line: its byte range (without the line break) and [`running_key`].
type Line = (std::ops::Range<usize>, String);

/// The keys found among the first (or, `from_foot`, the last) [`RUNNING_LINES`] lines of at
/// least `least` pages.
fn running_keys(pages: &[Vec<Line>], least: usize, from_foot: bool) -> HashSet<String> {
    let mut count: HashMap<&str, usize> = HashMap::new();
    for page in pages {
        let end: Vec<&Line> = if from_foot {
            page.iter().rev().take(RUNNING_LINES).collect()
        } else {
            page.iter().take(RUNNING_LINES).collect()
        };
        let keys: HashSet<&str> = end.iter().map(|l| l.1.as_str()).collect();
        for k in keys {
            *count.entry(k).or_default() += 1;
        }
    }
    count
        .into_iter()
        .filter(|&(_, n)| n >= least)
        .map(|(k, _)| k.to_owned())
        .collect()
}

/// The part of each page left once the running heads and feet are cut off: the byte range of
/// its text after the unbroken run of running lines at its top and before the one at its
/// foot. They say nothing about the page and, repeated on every chunk that starts or ends a
/// page, they crowd the words that do out of searches and out of the model's context. A page
/// that is nothing else is kept whole. Documents of fewer than 4 pages are left as they are.
fn running_lines(pages: &[&str]) -> Vec<std::ops::Range<usize>> {
    let whole: Vec<_> = pages.iter().map(|p| 0..p.len()).collect();
    if pages.len() < 4 {
        return whole;
    }
    // (byte range, key) of each non-blank line, in order.
    let lines: Vec<Vec<Line>> = pages
        .iter()
        .map(|p| {
            let mut out = Vec::new();
            let mut at = 0;
            for line in p.split_inclusive('\n') {
                let range = at..at + line.trim_end_matches('\n').len();
                at += line.len();
                if !line.trim().is_empty() {
                    out.push((range, running_key(line)));
                }
            }
            out
        })
        .collect();
    let least = ((pages.len() as f64 * RUNNING_SHARE).ceil() as usize).max(3);
    let heads = running_keys(&lines, least, false);
    let feet = running_keys(&lines, least, true);
    lines
        .iter()
        .zip(whole)
        .map(|(page, whole)| {
            let top = page
                .iter()
                .take(RUNNING_LINES)
                .take_while(|l| heads.contains(&l.1))
                .count();
            let foot = page[top..]
                .iter()
                .rev()
                .take(RUNNING_LINES)
                .take_while(|l| feet.contains(&l.1))
                .count();
            let kept = &page[top..page.len() - foot];
            match (kept.first(), kept.last()) {
                (Some(first), Some(last)) => first.0.start..last.0.end,
                _ => whole,
            }
        })
        .collect()
}

fn pdf_title(pdf: &Pdf) -> Option<String> {
    let info = pdf.trailer.get(b"Info").ok()?;
    let info = pdf.dereference(info).ok()?.1.as_dict().ok()?;
    let raw = info.get(b"Title").ok()?.as_str().ok()?;
    let title = pdf_outline::text_string(raw);
    let title = title.split_whitespace().collect::<Vec<_>>().join(" ");
    (!title.is_empty()).then_some(title)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Six pages made by `page(number, a word of its own)`.
    fn six_pages(page: impl Fn(usize, &str) -> String) -> Vec<String> {
        ["alpha", "beta", "gamma", "delta", "epsilon", "zeta"]
            .iter()
            .enumerate()
            .map(|(i, w)| page(i + 1, w))
            .collect()
    }

    /// What [`running_lines`] keeps of each page.
    fn kept(pages: &[String]) -> Vec<&str> {
        let texts: Vec<&str> = pages.iter().map(String::as_str).collect();
        running_lines(&texts)
            .into_iter()
            .zip(texts)
            .map(|(r, t)| &t[r])
            .collect()
    }

    #[test]
    fn running_heads_and_feet_are_cut_and_the_rest_kept() {
        let pages = six_pages(|n, w| {
            let body = if n == 3 {
                "Chapter two begins\nACME REPORT".to_owned()
            } else {
                format!("The {w} page.\nMore on {w}.")
            };
            format!("ACME REPORT\n{n} Available from https://example.org/r-{n}\n\n{body}\n\nPage {n} of 6")
        });
        let kept = kept(&pages);
        assert_eq!(kept[0], "The alpha page.\nMore on alpha.");
        // A running line inside the body (here at its end, before the foot) stays where it is
        // not part of the unbroken run at the page's top.
        assert_eq!(kept[2], "Chapter two begins\nACME REPORT");
        assert_eq!(kept[5], "The zeta page.\nMore on zeta.");

        // Roman page numbers are page numbers too.
        assert_eq!(
            running_key("iv Available from  x-12"),
            running_key("12 Available from x-3")
        );
        assert_ne!(
            running_key("Available from x"),
            running_key("Available to x")
        );
    }

    #[test]
    fn lines_on_few_pages_and_short_documents_are_left_alone() {
        // On 2 of 6 pages only: a heading that happens to repeat, not a running head.
        let pages = six_pages(|n, w| {
            let head = if n <= 2 {
                "Overview".to_owned()
            } else {
                format!("Part {w}")
            };
            format!("{head}\nOn {w} alone.")
        });
        assert_eq!(kept(&pages), pages);
        // Three pages: too few to tell a running head from a heading.
        let short = ["HEAD\nOne.", "HEAD\nTwo.", "HEAD\nThree."];
        for (r, t) in running_lines(&short).into_iter().zip(&short) {
            assert_eq!(&t[r], *t);
        }
        // A page of nothing but running lines is kept whole.
        let bare = ["HEAD\nA.", "HEAD\nB.", "HEAD\nC.", "HEAD"];
        let r = running_lines(&bare);
        assert_eq!(&bare[0][r[0].clone()], "A.");
        assert_eq!(&bare[3][r[3].clone()], "HEAD");
    }

    #[test]
    fn tidy_expands_ligatures_and_squeezes_blank_lines() {
        assert_eq!(tidy("a ﬁle  \n\n\n\nnext\u{c}\n"), "a file\n\nnext");
    }

    /// A page's content stream that shows `text` in 12-point Helvetica.
    fn shown(text: &str) -> String {
        format!("BT /F1 12 Tf 72 720 Td ({text}) Tj ET")
    }

    /// A PDF with one page per content stream (xref offsets exact), and an extra Flate stream
    /// that inflates to `inflating` zero bytes.
    fn pdf(pages: &[String], inflating: usize) -> Vec<u8> {
        pdf_with(pages, inflating, "", &[])
    }

    /// [`pdf`] with more entries in the catalog and more objects, numbered from `5 + 2 ×
    /// pages` (page `i`, from 0, is object `4 + 2i`).
    fn pdf_with(pages: &[String], inflating: usize, catalog: &str, extra: &[String]) -> Vec<u8> {
        use std::io::Write as _;
        let n = pages.len();
        let mut objects: Vec<Vec<u8>> = vec![
            format!("<< /Type /Catalog /Pages 2 0 R {catalog} >>").into_bytes(),
            format!(
                "<< /Type /Pages /Kids [{}] /Count {n} >>",
                (0..n)
                    .map(|i| format!("{} 0 R", 4 + 2 * i))
                    .collect::<Vec<_>>()
                    .join(" ")
            )
            .into_bytes(),
            b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>".to_vec(),
        ];
        for (i, stream) in pages.iter().enumerate() {
            objects.push(format!("<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Resources << /Font << /F1 3 0 R >> >> /Contents {} 0 R >>", 5 + 2 * i).into_bytes());
            objects.push(
                format!(
                    "<< /Length {} >>\nstream\n{stream}\nendstream",
                    stream.len()
                )
                .into_bytes(),
            );
        }
        let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::best());
        z.write_all(&vec![0u8; inflating]).unwrap();
        let packed = z.finish().unwrap();
        let mut bomb = format!(
            "<< /Length {} /Filter /FlateDecode >>\nstream\n",
            packed.len()
        )
        .into_bytes();
        bomb.extend(&packed);
        bomb.extend(b"\nendstream");
        objects.push(bomb);
        objects.extend(extra.iter().map(|o| o.clone().into_bytes()));
        let mut out = b"%PDF-1.4\n".to_vec();
        let mut offsets = Vec::new();
        for (i, o) in objects.iter().enumerate() {
            offsets.push(out.len());
            out.extend(format!("{} 0 obj\n", i + 1).bytes());
            out.extend(o);
            out.extend(b"\nendobj\n");
        }
        let xref = out.len();
        out.extend(format!("xref\n0 {}\n0000000000 65535 f \n", objects.len() + 1).bytes());
        for off in offsets {
            out.extend(format!("{off:010} 00000 n \n").bytes());
        }
        out.extend(
            format!(
                "trailer\n<< /Size {} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n",
                objects.len() + 1
            )
            .bytes(),
        );
        out
    }

    #[test]
    fn limits_skip_pages_or_the_file_with_a_message() {
        let f = Path::new("caps.pdf");
        let bytes = pdf(
            &["Alpha page one.", "Beta page two.", "Gamma page three."].map(shown),
            1 << 20,
        );
        let all = read(f, &bytes, &ReadOptions::default()).unwrap();
        assert_eq!(all.document.sections.len(), 3);

        let two = ReadOptions {
            max_pdf_pages: 2,
            ..ReadOptions::default()
        };
        let r = read(f, &bytes, &two).unwrap();
        assert_eq!(r.document.sections.len(), 2);
        assert!(!r.document.text.contains("Gamma"));
        assert!(
            r.notices.iter().any(|n| n.page == Some(3)
                && n.message == "pages 3–3 skipped: over the limit of 2 pages per PDF"),
            "{:?}",
            r.notices
        );

        let text = ReadOptions {
            max_text_bytes: 20,
            ..ReadOptions::default()
        };
        let r = read(f, &bytes, &text).unwrap();
        assert_eq!(r.document.sections.len(), 1);
        assert!(
            r.notices
                .iter()
                .any(|n| n.message.starts_with("pages 2–3 skipped: the text")),
            "{:?}",
            r.notices
        );

        let small = ReadOptions {
            max_decompressed_bytes: 512 << 10,
            ..ReadOptions::default()
        };
        let err = read(f, &bytes, &small).unwrap_err();
        assert_eq!(err.reason(), "decompression-limit");
        assert!(err.to_string().starts_with("caps.pdf: "), "{err}");
    }

    #[test]
    fn glyphs_set_apart_are_words_and_glyphs_set_close_are_not() {
        let page = [
            // A table's row: cells "0" and "5" set apart by character spacing inside one
            // operator (pdf-extract's own output read "05", as it read "05,017" in a real one).
            "BT /F1 12 Tf 72 720 Td (Wyoming) Tj 100 0 Td 3 Tc (05) Tj 0 Tc ET",
            // Kerned closer and set apart inside one array.
            "BT /F1 12 Tf 72 700 Td [(W) 80 (ord) -400 (next)] TJ ET",
            // Text set sideways in the margin, rising up the page.
            "BT /F1 12 Tf 0 1 -1 0 30 300 Tm (Printed sideways) Tj ET",
        ]
        .join("\n");
        let r = read(
            Path::new("t.pdf"),
            &pdf(&[page], 0),
            &ReadOptions::default(),
        )
        .unwrap();
        let lines: Vec<&str> = r.document.text.lines().collect();
        assert_eq!(
            lines,
            ["Wyoming 0 5", "", "Word next", "", "Printed sideways"],
            "{:?}",
            r.document.text
        );
    }

    /// A page's text stream: one line of text under the other.
    fn lines(lines: &[&str]) -> String {
        let shown: Vec<String> = lines.iter().map(|l| format!("({l}) Tj 0 -14 Td")).collect();
        format!("BT /F1 12 Tf 72 720 Td {} ET", shown.join(" "))
    }

    #[test]
    fn sections_begin_at_the_outline_s_headings_and_their_path_runs_over_a_page_turn() {
        let pages = [
            lines(&["Contents", "1 Introduction ..... 2", "2 Methods ..... 3"]),
            lines(&[
                "Preface words.",
                "1 Introduction",
                "Intro text.",
                "1.1 Scope",
                "Scope text.",
            ]),
            lines(&["More scope text.", "2 Methods", "Methods text."]),
        ];
        // Objects 11 on: the outline, its three entries (one found by a named destination),
        // and the name tree.
        let extra = [
            "<< /Type /Outlines /First 12 0 R /Last 14 0 R /Count 3 >>".to_owned(),
            "<< /Title (1 Introduction) /Parent 11 0 R /Next 14 0 R /First 13 0 R /Last 13 0 R \
             /Count 1 /Dest [6 0 R /XYZ 0 792 0] >>"
                .to_owned(),
            "<< /Title <FEFF0031002E0031002000530063006F00700065> /Parent 12 0 R \
             /Dest [6 0 R /Fit] >>"
                .to_owned(),
            "<< /Title (2 Methods) /Parent 11 0 R /Prev 12 0 R /A << /S /GoTo /D (methods) >> >>"
                .to_owned(),
            "<< /Names [(methods) << /D [8 0 R /Fit] >>] >>".to_owned(),
        ];
        let bytes = pdf_with(
            &pages,
            0,
            "/Outlines 11 0 R /Names << /Dests 15 0 R >>",
            &extra,
        );
        let r = read(Path::new("t.pdf"), &bytes, &ReadOptions::default()).unwrap();
        let doc = &r.document;
        let got: Vec<(Option<u32>, u32, String, &str)> = doc
            .sections
            .iter()
            .map(|s| {
                let first = doc.text[s.range.clone()].lines().next().unwrap_or("");
                (s.page, s.first_line, s.heading.join(" > "), first)
            })
            .collect();
        let want = [
            (Some(1), 1, "", "Contents"),
            (Some(2), 1, "", "Preface words."),
            (Some(2), 2, "1 Introduction", "1 Introduction"),
            (Some(2), 4, "1 Introduction > 1.1 Scope", "1.1 Scope"),
            (Some(3), 1, "1 Introduction > 1.1 Scope", "More scope text."),
            (Some(3), 2, "2 Methods", "2 Methods"),
        ];
        let want: Vec<_> = want
            .iter()
            .map(|(p, l, h, f)| (*p, *l, (*h).to_owned(), *f))
            .collect();
        assert_eq!(got, want, "{:?}", doc.text);
        // The sections still cover the text, in order.
        assert_eq!(doc.sections[0].range.start, 0);
        for pair in doc.sections.windows(2) {
            assert!(pair[0].range.end <= pair[1].range.start);
        }
    }

    #[test]
    fn an_outline_that_loops_costs_its_headings_not_the_file() {
        let pages = [lines(&["Intro", "Body text."])];
        // The entry is its own next sibling and its own first child.
        let extra = [
            "<< /Type /Outlines /First 8 0 R /Count 1 >>".to_owned(),
            "<< /Title (Intro) /Parent 7 0 R /Next 8 0 R /First 8 0 R /Dest [4 0 R /Fit] >>"
                .to_owned(),
        ];
        let bytes = pdf_with(&pages, 0, "/Outlines 7 0 R", &extra);
        let r = read(Path::new("t.pdf"), &bytes, &ReadOptions::default()).unwrap();
        let headings: Vec<String> = r
            .document
            .sections
            .iter()
            .map(|s| s.heading.join(" > "))
            .collect();
        assert_eq!(headings, ["Intro"]);
    }

    #[test]
    fn garbage_is_a_bad_pdf_not_a_panic() {
        let err = read(
            Path::new("x.pdf"),
            b"%PDF-1.4 garbage",
            &ReadOptions::default(),
        )
        .unwrap_err();
        assert_eq!(err.reason(), "bad-pdf");
        assert!(err.to_string().starts_with("x.pdf: "));
    }
}
