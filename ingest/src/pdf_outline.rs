//! A PDF's headings: its outline (its bookmarks), each entry with its depth and the page it
//! opens, else the titles its contents pages list; and where each heading stands in the text.
//!
//! The outline is a linked tree of dictionaries in the file, so it is walked here with every
//! node visited once and a cap on how many are read: an outline that loops, or one of a million
//! entries, costs its headings, never the file.

use std::collections::{HashMap, HashSet};

use pdf_extract::{Dictionary, Document as Pdf, Object, ObjectId};
use unicode_normalization::UnicodeNormalization;

/// Outline entries read at most (a book's outline has hundreds).
const MAX_ENTRIES: usize = 5_000;
/// Name-tree nodes read at most when looking up named destinations.
const MAX_NAME_NODES: usize = 20_000;

/// One outline entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Entry {
    /// 1 for a top-level entry.
    pub level: usize,
    pub title: String,
    /// The 1-based page it opens.
    pub page: u32,
}

/// A text string of the file (PDF 32000-1 §7.9.2.2): UTF-16BE or UTF-8 after their byte-order
/// marks, else PDFDocEncoding.
pub(crate) fn text_string(raw: &[u8]) -> String {
    let utf16 = |bytes: &[u8], unit: fn([u8; 2]) -> u16| {
        let units: Vec<u16> = bytes.chunks_exact(2).map(|p| unit([p[0], p[1]])).collect();
        String::from_utf16_lossy(&units)
    };
    if let Some(be) = raw.strip_prefix(&[0xFE, 0xFF]) {
        return utf16(be, u16::from_be_bytes);
    }
    if let Some(le) = raw.strip_prefix(&[0xFF, 0xFE]) {
        // Not in the standard, but written by some producers.
        return utf16(le, u16::from_le_bytes);
    }
    if let Some(utf8) = raw.strip_prefix(&[0xEF, 0xBB, 0xBF]) {
        return String::from_utf8_lossy(utf8).into_owned();
    }
    raw.iter().map(|&b| pdf_doc_char(b)).collect()
}

/// A byte of PDFDocEncoding (PDF 32000-1 Annex D): Latin-1 but for 0x80–0x9F and 0xA0.
fn pdf_doc_char(b: u8) -> char {
    const HIGH: [char; 32] = [
        '•', '†', '‡', '…', '—', '–', 'ƒ', '⁄', '‹', '›', '−', '‰', '„', '“', '”', '‘', '’', '‚',
        '™', 'ﬁ', 'ﬂ', 'Ł', 'Œ', 'Š', 'Ÿ', 'Ž', 'ı', 'ł', 'œ', 'š', 'ž', '\u{FFFD}',
    ];
    match b {
        0x80..=0x9F => HIGH[usize::from(b - 0x80)],
        0xA0 => '€',
        _ => char::from(b),
    }
}

/// The outline's entries in its own order (depth first); none when the file has no outline or
/// it cannot be read.
pub(crate) fn entries(pdf: &Pdf) -> Vec<Entry> {
    let Ok(catalog) = pdf.catalog() else {
        return Vec::new();
    };
    let Some(root) = catalog
        .get(b"Outlines")
        .ok()
        .and_then(|o| resolve(pdf, o).as_dict().ok())
    else {
        return Vec::new();
    };
    let pages: HashMap<ObjectId, u32> =
        pdf.get_pages().into_iter().map(|(n, id)| (id, n)).collect();
    let mut names = None;
    let mut out = Vec::new();
    let first = root.get(b"First").map(|f| (f, 1)).into_iter().collect();
    walk(pdf, first, MAX_ENTRIES, |node, level, stack| {
        // Depth first: a node, then its children, then its next sibling.
        if let Ok(next) = node.get(b"Next") {
            stack.push((next, level));
        }
        if let Ok(first) = node.get(b"First") {
            stack.push((first, level + 1));
        }
        let title = node
            .get(b"Title")
            .ok()
            .and_then(|t| resolve(pdf, t).as_str().ok())
            .map(text_string);
        let page = destination(pdf, node, &mut names).and_then(|d| page_of(d, &pages));
        if let (Some(title), Some(page)) = (title, page) {
            let title = title.split_whitespace().collect::<Vec<_>>().join(" ");
            if !title.is_empty() {
                out.push(Entry { level, title, page });
            }
        }
    });
    out
}

/// Visits the dictionaries of a tree in the file from `stack`, each `(node, what it carries)`:
/// `visit` is given each and pushes what to visit next. A node referred to twice is visited
/// once, and at most `cap` are taken off the stack, so a tree that loops ends.
fn walk<'a, T>(
    pdf: &'a Pdf,
    mut stack: Vec<(&'a Object, T)>,
    cap: usize,
    mut visit: impl FnMut(&'a Dictionary, T, &mut Vec<(&'a Object, T)>),
) {
    let mut seen: HashSet<ObjectId> = HashSet::new();
    let mut taken = 0;
    while let Some((node, carried)) = stack.pop() {
        taken += 1;
        if taken > cap {
            break;
        }
        if let Object::Reference(id) = node {
            if !seen.insert(*id) {
                continue;
            }
        }
        if let Ok(node) = resolve(pdf, node).as_dict() {
            visit(node, carried, &mut stack);
        }
    }
}

/// An object, or the one a reference points to (itself when the reference is dangling).
fn resolve<'a>(pdf: &'a Pdf, o: &'a Object) -> &'a Object {
    match o {
        Object::Reference(id) => pdf.get_object(*id).unwrap_or(o),
        _ => o,
    }
}

/// The destination an outline node opens: its `/Dest`, or its `/A` go-to action's `/D`, named
/// destinations looked up.
fn destination<'a>(
    pdf: &'a Pdf,
    node: &'a Dictionary,
    names: &mut Option<HashMap<Vec<u8>, &'a Object>>,
) -> Option<&'a Object> {
    let dest = if let Ok(d) = node.get(b"Dest") {
        d
    } else {
        let action = resolve(pdf, node.get(b"A").ok()?).as_dict().ok()?;
        if action.get(b"S").ok()?.as_name().ok()? != b"GoTo" {
            return None;
        }
        action.get(b"D").ok()?
    };
    let dest = resolve(pdf, dest);
    let name = match dest {
        Object::Name(n) => n.as_slice(),
        Object::String(s, _) => s.as_slice(),
        _ => return Some(dest),
    };
    let names = names.get_or_insert_with(|| named_destinations(pdf));
    let found = resolve(pdf, names.get(name)?);
    // A named destination is an array, or a dictionary holding it as `/D`.
    match found {
        Object::Dictionary(d) => d.get(b"D").ok().map(|d| resolve(pdf, d)),
        other => Some(other),
    }
}

/// The document's named destinations: the catalog's `/Dests` dictionary (PDF 1.1) and its
/// `/Names` `/Dests` name tree.
fn named_destinations(pdf: &Pdf) -> HashMap<Vec<u8>, &Object> {
    let mut out = HashMap::new();
    let Ok(catalog) = pdf.catalog() else {
        return out;
    };
    if let Some(dests) = catalog
        .get(b"Dests")
        .ok()
        .and_then(|d| resolve(pdf, d).as_dict().ok())
    {
        for (k, v) in dests {
            out.insert(k.clone(), v);
        }
    }
    let Some(tree) = catalog
        .get(b"Names")
        .ok()
        .and_then(|n| resolve(pdf, n).as_dict().ok())
        .and_then(|n| n.get(b"Dests").ok())
    else {
        return out;
    };
    walk(pdf, vec![(tree, ())], MAX_NAME_NODES, |node, (), stack| {
        if let Some(Object::Array(pairs)) = node.get(b"Names").ok().map(|n| resolve(pdf, n)) {
            for pair in pairs.chunks_exact(2) {
                if let Ok(key) = resolve(pdf, &pair[0]).as_str() {
                    out.insert(key.to_vec(), &pair[1]);
                }
            }
        }
        if let Some(Object::Array(kids)) = node.get(b"Kids").ok().map(|k| resolve(pdf, k)) {
            stack.extend(kids.iter().map(|k| (k, ())));
        }
    });
    out
}

/// The page a destination array (`[page /XYZ …]`) opens.
fn page_of(dest: &Object, pages: &HashMap<ObjectId, u32>) -> Option<u32> {
    let Object::Array(a) = dest else {
        return None;
    };
    match a.first()? {
        Object::Reference(id) => pages.get(id).copied(),
        // Some producers give the 0-based page number instead.
        Object::Integer(i) => u32::try_from(*i)
            .ok()
            .map(|i| i + 1)
            .filter(|p| *p as usize <= pages.len()),
        _ => None,
    }
}

/// A heading's text as compared with a line of the page: letters and digits only, lowercased,
/// after NFKC (the page's text is normalised so), without a leading section number
/// ("3.4.1", "12.", "B.2", "A.", "IV."), which an outline may give where the page does not, or
/// the other way round.
fn key(text: &str) -> String {
    let text: String = text.nfkc().collect();
    let mut words = text.split_whitespace().peekable();
    let numbered = |word: &str| {
        let w = word.trim_end_matches(['.', ')', ':']);
        let marked = w.len() < word.len() || w.contains('.');
        let letters = w.chars().filter(char::is_ascii_alphabetic).count();
        let digits = w.chars().filter(char::is_ascii_digit).count();
        !w.is_empty()
            && w.chars().all(|c| c.is_ascii_alphanumeric() || c == '.')
            && (digits > 0 && letters <= 1
                // "A." or "IV." only with their mark: "A View", "CLI Commands" are words.
                || marked && letters == 1 && digits == 0 && w.len() == 1
                || marked && w.chars().all(|c| "IVXLC".contains(c)))
    };
    if words.peek().is_some_and(|w| numbered(w)) && text.split_whitespace().count() > 1 {
        words.next();
    }
    words
        .flat_map(str::chars)
        .map(str_key)
        .collect::<Vec<_>>()
        .concat()
}

/// A line's letters and digits, lowercased, number and all (a wrapped title's later lines).
fn raw_key(text: &str) -> String {
    text.nfkc().map(str_key).collect::<Vec<_>>().concat()
}

fn str_key(c: char) -> String {
    if c.is_alphanumeric() {
        c.to_lowercase().collect()
    } else {
        String::new()
    }
}

/// A title after its label ("Appendix A—", "Chapter 3:"), which a page may set apart from
/// the heading or leave out: the words after the first dash or colon, when one to three words
/// come before it.
fn unlabelled(title: &str) -> Option<&str> {
    let at = title.find(['—', '–', ':'])?;
    let (label, rest) = (&title[..at], &title[at..]);
    let rest = rest.trim_start_matches(['—', '–', ':']).trim();
    let words = label.split_whitespace().count();
    ((1..=3).contains(&words) && !rest.is_empty()).then_some(rest)
}

/// Lines a wrapped title may run over.
const WRAP: usize = 3;

/// A page's lines as headings are compared with them: `(byte offset, key, raw key)`.
type Lines = Vec<(usize, String, String)>;

fn page_lines(text: &str) -> Lines {
    let mut at = 0;
    text.split_inclusive('\n')
        .map(|l| {
            let start = at;
            at += l.len();
            (start, key(l), raw_key(l))
        })
        .collect()
}

/// The keys a heading's title may be found by, as it is (`strict`: its number too) or without
/// its section number; none for a title of a number, or of a word or two letters, which would
/// be found by accident.
fn wants(title: &str, strict: bool) -> Vec<String> {
    let key = if strict { raw_key } else { key };
    std::iter::once(key(title))
        .chain(unlabelled(title).map(key))
        .filter(|w| w.chars().count() >= 4 && w.chars().any(char::is_alphabetic))
        .collect()
}

/// Whether the title begins at line `i`: that line (or a run of up to [`WRAP`], for a title
/// that wraps) reads as it.
fn begins_at(lines: &Lines, i: usize, wants: &[String], strict: bool) -> bool {
    wants.iter().any(|want| {
        let mut joined = String::new();
        for (j, (_, k, raw)) in lines.iter().skip(i).take(WRAP).enumerate() {
            // A wrapped title's later lines keep any number they begin with.
            joined.push_str(if j == 0 && !strict { k } else { raw });
            if joined == *want {
                return true;
            }
            if !want.starts_with(&joined) || joined.is_empty() {
                return false;
            }
        }
        false
    })
}

/// A placed heading: `(page index, byte offset in the page's text, level, title)`.
pub(crate) type Placed = (usize, usize, usize, String);

/// Where each entry's heading begins in the text of its page, in page and text order. `pages`
/// are `(page number, text)`, in order. A heading is the first line (or run of lines, for a
/// title that wraps) at or after the last heading found on that page whose text is the
/// entry's title; an entry whose title is no line of its page (a document's own title, say) is
/// left out.
pub(crate) fn place(entries: &[Entry], pages: &[(u32, &str)]) -> Vec<Placed> {
    let index: HashMap<u32, usize> = pages
        .iter()
        .enumerate()
        .map(|(i, (n, _))| (*n, i))
        .collect();
    // Per page, computed once a page is needed.
    let mut lines: HashMap<usize, Lines> = HashMap::new();
    let mut cursor: HashMap<usize, usize> = HashMap::new();
    let mut out = Vec::new();
    for entry in entries {
        let Some(&p) = index.get(&entry.page) else {
            continue;
        };
        let page = lines.entry(p).or_insert_with(|| page_lines(pages[p].1));
        let from = cursor.get(&p).copied().unwrap_or(0);
        // The title as it is (its number too), else without its number.
        let found = [true, false].into_iter().find_map(|strict| {
            let wants = wants(&entry.title, strict);
            (from..page.len()).find(|&i| begins_at(page, i, &wants, strict))
        });
        if let Some(i) = found {
            cursor.insert(p, i + 1);
            out.push((p, page[i].0, entry.level, entry.title.clone()));
        }
    }
    out.sort_by_key(|&(p, at, ..)| (p, at));
    out
}

/// Contents lines a page needs to be a contents page.
const CONTENTS_LINES: usize = 5;

/// A PDF without an outline: the headings its contents pages list, `(level, title)` in order,
/// and the indices of the contents pages. A contents line is a title followed by leader dots
/// and (mostly) a page number ("3.4.1 Network Requirements to Support ZTA ....... 21"), a
/// line before it joined when the title wraps; the level is the depth of the title's section
/// number ("3.4.1" is 3, "B.2" 2, none 1). The lists of figures and tables are left out.
pub(crate) fn contents(pages: &[(u32, &str)]) -> (Vec<(usize, String)>, Vec<usize>) {
    let mut out = Vec::new();
    let mut listing = Vec::new();
    for (p, (_, text)) in pages.iter().enumerate() {
        let lines: Vec<&str> = text.lines().collect();
        let mut titled: Vec<Option<&str>> = lines.iter().map(|l| before_leaders(l)).collect();
        if titled.iter().flatten().count() < CONTENTS_LINES {
            continue;
        }
        listing.push(p);
        // On a contents page, a numbered title may also lack its leaders ("B.2.1 Lack of
        // Common Terms … Procurement 47"), or have its page number on the line below.
        for i in 0..lines.len() {
            let line = lines[i].trim();
            if titled[i].is_some() || section_depth(line).is_none() {
                continue;
            }
            let below = lines.get(i + 1).map(|l| l.trim());
            if let Some((title, _)) = line.rsplit_once(' ').filter(|(_, n)| page_number(n)) {
                titled[i] = Some(title.trim_end_matches(['.', ' ', '\u{2026}']));
            } else if below.is_some_and(page_number) {
                titled[i] = Some(line.trim_end_matches(['.', ' ', '\u{2026}']));
            }
        }
        for (i, title) in titled.iter().enumerate() {
            let Some(title) = title else {
                continue;
            };
            // "6 Zero Trust Architecture and … Existing Federal" / "Guidance ……": a line
            // right above that is no contents line itself, when this one has no number of
            // its own.
            let mut title = (*title).to_owned();
            if i > 0 && titled[i - 1].is_none() && section_depth(&title).is_none() {
                let above = lines[i - 1].trim();
                if !above.is_empty() && section_depth(above).is_some() {
                    title = format!("{above} {title}");
                }
            }
            let first = title.split_whitespace().next().unwrap_or("");
            let captioned = ["Table", "Figure", "Fig.", "Listing", "Exhibit", "Chart"]
                .contains(&first)
                && title
                    .split_whitespace()
                    .nth(1)
                    .is_some_and(|w| w.starts_with(|c: char| c.is_ascii_digit()));
            if captioned {
                continue;
            }
            out.push((section_depth(&title).unwrap_or(1), title));
        }
    }
    (out, listing)
}

/// A contents line's title: the line before its leader dots (four or more, spaced or not) and
/// the page number after them, if it has them.
fn before_leaders(line: &str) -> Option<&str> {
    let line = line.trim();
    // The page number: digits, or a roman numeral (front matter); it may be missing.
    let mut rest = line;
    if let Some((head, last)) = line.rsplit_once(char::is_whitespace) {
        if page_number(last) {
            rest = head;
        }
    }
    let title = rest.trim_end_matches(['.', ' ', '\u{2026}']);
    let leaders = &rest[title.len()..];
    let dots = leaders.chars().filter(|&c| c == '.').count()
        + 3 * leaders.chars().filter(|&c| c == '\u{2026}').count();
    let title = title.trim();
    (dots >= 4 && title.chars().any(char::is_alphabetic)).then_some(title)
}

/// A page number as a contents page gives it: digits, or a roman numeral (front matter).
fn page_number(word: &str) -> bool {
    !word.is_empty()
        && word.len() <= 6
        && (word.chars().all(|c| c.is_ascii_digit())
            || word.chars().all(|c| "ivxlcIVXLC".contains(c)))
}

/// The depth of the section number a title begins with ("3.4.1" is 3, "B.2" 2, "1" 1), if it
/// begins with one.
fn section_depth(title: &str) -> Option<usize> {
    let first = title.split_whitespace().next()?.trim_end_matches('.');
    let parts: Vec<&str> = first.split('.').collect();
    let numbered = parts.iter().enumerate().all(|(i, p)| {
        !p.is_empty()
            && (p.chars().all(|c| c.is_ascii_digit())
                || i == 0
                    && parts.len() > 1
                    && p.len() == 1
                    && p.chars().all(|c| c.is_ascii_uppercase()))
    });
    (numbered && title.split_whitespace().count() > 1).then_some(parts.len())
}

/// Where the contents' headings begin in the pages but the contents pages (`listing`), in
/// order: each is looked for after the one before, so that a title the body also uses as an
/// ordinary line before its heading is not taken for it; a title not found is left out. (The
/// contents may come after some of the headings they list: an executive summary's.)
pub(crate) fn place_in_order(
    headings: &[(usize, String)],
    pages: &[(u32, &str)],
    listing: &[usize],
) -> Vec<Placed> {
    let lines: Vec<Lines> = pages
        .iter()
        .enumerate()
        .map(|(p, (_, t))| {
            if listing.contains(&p) {
                Vec::new()
            } else {
                page_lines(t)
            }
        })
        .collect();
    let mut at = (0, 0);
    let mut out = Vec::new();
    for (level, title) in headings {
        // The title as it is (its number too), else without its number.
        let found = [true, false].into_iter().find_map(|strict| {
            let wants = wants(title, strict);
            (at.0..pages.len()).find_map(|p| {
                let start = if p == at.0 { at.1 } else { 0 };
                (start..lines[p].len())
                    .find(|&i| begins_at(&lines[p], i, &wants, strict))
                    .map(|i| (p, i))
            })
        });
        if let Some((p, i)) = found {
            out.push((p, lines[p][i].0, *level, title.clone()));
            at = (p, i + 1);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_strings_are_decoded_by_their_marks_else_as_pdf_doc_encoding() {
        assert_eq!(text_string(b"\xFE\xFF\x00A\x20\x14\x00B"), "A—B");
        assert_eq!(text_string(b"\xEF\xBB\xBFA\xE2\x80\x94B"), "A—B");
        assert_eq!(
            text_string(b"Appendix A\x84Acronyms"),
            "Appendix A—Acronyms"
        );
        assert_eq!(text_string(b"caf\xE9 \x93le"), "café ﬁle");
    }

    #[test]
    fn a_heading_key_drops_its_section_number_and_everything_but_letters_and_digits() {
        assert_eq!(
            key("3.4.1 Network Requirements to Support ZTA"),
            "networkrequirementstosupportzta"
        );
        assert_eq!(
            key("Network Requirements  to Support ZTA\n"),
            "networkrequirementstosupportzta"
        );
        assert_eq!(key("Appendix A—Acronyms"), "appendixaacronyms");
        assert_eq!(key("B.2.1 Lack of Common Terms"), "lackofcommonterms");
        assert_eq!(key("IV. Results"), "results");
        assert_eq!(key("A. Scope"), "scope");
        assert_eq!(key("2.2 A Zero Trust View"), key("A Zero Trust View"));
        assert_eq!(key("CLI Commands"), "clicommands");
        // Not a section number: a word, or a number alone.
        assert_eq!(key("Zero Trust Basics"), "zerotrustbasics");
        assert_eq!(key("2026"), "2026");
        assert_eq!(
            key("ZTA Using Micro-Segmentation"),
            "ztausingmicrosegmentation"
        );
    }

    fn entry(level: usize, title: &str, page: u32) -> Entry {
        Entry {
            level,
            title: title.to_owned(),
            page,
        }
    }

    #[test]
    fn headings_are_found_on_their_page_as_whole_lines_or_wrapped_in_order() {
        let p1 = "Contents\n2 Basics ........ 4\n2.1 Tenets of Zero Trust ..... 6\n";
        let p4 = "a line before\n2 Basics\nZero trust is a paradigm. Basics matter.\n\
                  2.1 Tenets of Zero\nTrust\nThe tenets are:\n";
        let p5 = "Basics\nmore text\n";
        let pages = [(1, p1), (4, p4), (5, p5)];
        let entries = [
            entry(1, "2 Basics", 4),
            entry(2, "2.1 Tenets of Zero Trust", 4),
            // Not on its page: left out.
            entry(2, "2.2 A View", 5),
            // Its page is not among those read.
            entry(1, "3 Components", 9),
            // Too short to find by its text.
            entry(1, "1", 5),
        ];
        let placed = place(&entries, &pages);
        let at = |s: &str| p4.find(s).unwrap();
        assert_eq!(
            placed,
            [
                (1, at("2 Basics"), 1, "2 Basics".to_owned()),
                (
                    1,
                    at("2.1 Tenets"),
                    2,
                    "2.1 Tenets of Zero Trust".to_owned()
                ),
            ]
        );
    }

    #[test]
    fn a_labelled_title_is_found_without_its_label() {
        assert_eq!(unlabelled("Appendix A— Acronyms"), Some("Acronyms"));
        assert_eq!(unlabelled("Chapter 3: Results"), Some("Results"));
        assert_eq!(
            unlabelled("6.5 ZTA and EINSTEIN (NCPS – National System)"),
            None
        );
        let page = "Some words\nThe SSDF and Executive Order 14028\nText.\n";
        let placed = place(
            &[entry(
                1,
                "Appendix A—The SSDF and Executive Order 14028",
                33,
            )],
            &[(33, page)],
        );
        assert_eq!(placed.len(), 1);
        assert_eq!(placed[0].1, page.find("The SSDF").unwrap());
    }

    #[test]
    fn a_contents_line_is_a_title_before_leader_dots_and_a_page_number() {
        assert_eq!(
            before_leaders("3.4.1 Network Requirements to Support ZTA ........ 21"),
            Some("3.4.1 Network Requirements to Support ZTA")
        );
        assert_eq!(
            before_leaders("Executive Summary . . . . . . vi"),
            Some("Executive Summary")
        );
        assert_eq!(before_leaders("Guidance ..........."), Some("Guidance"));
        assert_eq!(
            before_leaders("References\u{2026}\u{2026} 20"),
            Some("References")
        );
        assert_eq!(before_leaders("It ends so... 4"), None);
        assert_eq!(before_leaders(".......... 12"), None);
        assert_eq!(before_leaders("An ordinary line."), None);
        assert_eq!(section_depth("3.4.1 Network"), Some(3));
        assert_eq!(section_depth("B.2 Gaps"), Some(2));
        assert_eq!(section_depth("7. Steps"), Some(1));
        assert_eq!(section_depth("References"), None);
        assert_eq!(section_depth("2026"), None);
        assert_eq!(section_depth("A. Scope"), None);
    }

    #[test]
    fn a_contents_page_lists_the_headings_with_their_depth() {
        let listing = "Table of Contents\n\
            Executive Summary ........ iv\n\
            1 Introduction ........ 1\n\
            1.1 Scope ........ 2\n\
            2 Methods and Results in One Long Title That the\n\
            Page Wraps ........ 5\n\
            2.1 Measured Without Leaders 7\n\
            2.2 Number on the Line Below\n\
            9\n\
            Appendix A—Terms ........ 12\n\
            Figure 1: A Chart ........ 3\n";
        let body = "Some body text........ with dots 3\n";
        let (headings, pages) = contents(&[(1, body), (2, listing), (3, body)]);
        assert_eq!(pages, [1]);
        let want: Vec<(usize, String)> = [
            (1, "Executive Summary"),
            (1, "1 Introduction"),
            (2, "1.1 Scope"),
            (
                1,
                "2 Methods and Results in One Long Title That the Page Wraps",
            ),
            (2, "2.1 Measured Without Leaders"),
            (2, "2.2 Number on the Line Below"),
            (1, "Appendix A—Terms"),
        ]
        .iter()
        .map(|(l, t)| (*l, (*t).to_owned()))
        .collect();
        assert_eq!(headings, want);
    }

    #[test]
    fn contents_headings_are_found_in_order_past_the_contents_pages() {
        let headings: Vec<(usize, String)> =
            [(1, "Summary"), (1, "1 Introduction"), (2, "1.1 Scope")]
                .iter()
                .map(|(l, t)| (*l, (*t).to_owned()))
                .collect();
        let before = "Summary\nThe summary comes before the contents.\n";
        let listing = "Summary .... i\n1 Introduction .... 1\n1.1 Scope .... 2\n";
        // "Scope" as a line of its own before its heading is not the heading: order is kept.
        let body = "1 Introduction\nText.\nScope\n1.1 Scope\nMore.\n";
        let placed = place_in_order(&headings, &[(1, before), (2, listing), (3, body)], &[1]);
        let got: Vec<(usize, usize, usize)> = placed.iter().map(|p| (p.0, p.1, p.2)).collect();
        assert_eq!(
            got,
            [
                (0, 0, 1),
                (2, 0, 1),
                (2, body.find("1.1 Scope").unwrap(), 2)
            ]
        );
    }

    #[test]
    fn two_entries_with_one_title_on_a_page_take_its_lines_in_turn() {
        let page = "Example\nfirst\nExample\nsecond\n";
        let placed = place(
            &[
                entry(2, "Example", 3),
                entry(2, "Example", 3),
                entry(2, "Example", 3),
            ],
            &[(3, page)],
        );
        let offsets: Vec<usize> = placed.iter().map(|p| p.1).collect();
        assert_eq!(offsets, [0, page.find("Example\nsecond").unwrap()]);
    }
}
