//! Document text made safe and short for a terminal: escape sequences removed, provenance
//! written the one way users read it.

use std::fmt::Write as _;

/// Removes control characters and escape sequences so that document text cannot drive the
/// terminal; tabs and newlines stay. Bidirectional overrides go too.
#[must_use]
pub fn sanitize(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            // Skip an escape sequence: ESC [ ... final byte, or ESC ] ... BEL/ST, or ESC x.
            match chars.peek() {
                Some('[') => {
                    chars.next();
                    while let Some(&d) = chars.peek() {
                        chars.next();
                        if ('@'..='~').contains(&d) {
                            break;
                        }
                    }
                }
                Some(']') => {
                    chars.next();
                    while let Some(d) = chars.next() {
                        if d == '\u{7}' || (d == '\u{1b}' && chars.peek() == Some(&'\\')) {
                            if d == '\u{1b}' {
                                chars.next();
                            }
                            break;
                        }
                    }
                }
                Some(_) => {
                    chars.next();
                }
                None => {}
            }
        } else if c == '\n'
            || c == '\t'
            || !(c.is_control()
                || matches!(c, '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}'))
        {
            out.push(c);
        }
    }
    out
}

/// A name (a document key, a file name) for one line of terminal output: [`sanitize`]d, with
/// line breaks and tabs shown as `\n`, `\r` and `\t` so that a file named with a newline
/// cannot start a line of its own.
#[must_use]
pub fn one_line(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    for c in sanitize(name).chars() {
        match c {
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c => out.push(c),
        }
    }
    out
}

/// Why a passage was raised for `question` (its `defines` flag), as users read it: "spells it
/// out" for "What does ZTA stand for?" where `text` gives the words behind the letters, "says
/// what it is" for "What is a closure?", "says what it does" for "What does the move keyword
/// do?".
#[must_use]
pub fn raised_because(question: &str, text: &str) -> &'static str {
    use cairn_retriever::terms::{introduction, subject, Asks, Introduction};
    let Some(s) = subject(question) else {
        return "says what it is";
    };
    match (introduction(&s.term, s.asks, text), s.asks) {
        (Some(Introduction::SpelledOut { .. }), _) => "spells it out",
        (_, Asks::Does) => "says what it does",
        (_, Asks::Is) => "says what it is",
    }
}

/// Where a passage came from, as users read it: `path p.3 L5–7 — Heading > Sub`.
#[must_use]
pub fn location(doc: &str, page: Option<u32>, lines: (u32, u32), heading: &[String]) -> String {
    let mut s = one_line(doc);
    if let Some(p) = page {
        let _ = write!(s, " p.{p}");
    }
    if lines.0 == lines.1 {
        let _ = write!(s, " L{}", lines.0);
    } else {
        let _ = write!(s, " L{}–{}", lines.0, lines.1);
    }
    if !heading.is_empty() {
        s.push_str(" — ");
        s.push_str(&one_line(&heading.join(" > ")));
    }
    s
}

/// Document text on one line for the terminal: sanitized, whitespace collapsed, cut to `max`
/// characters with `…`.
#[must_use]
pub fn snippet(text: &str, max: usize) -> String {
    let flat = sanitize(text)
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ");
    if flat.chars().count() > max {
        flat.chars().take(max).chain(std::iter::once('…')).collect()
    } else {
        flat
    }
}

/// Human-readable byte size.
#[must_use]
pub fn human_size(bytes: u64) -> String {
    const UNITS: [&str; 4] = ["B", "KiB", "MiB", "GiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

/// A Unix time as a UTC date and time: `2025-11-25 12:00:00 UTC`.
#[must_use]
pub fn civil_time(unix: u64) -> String {
    // Civil date from days since the epoch (Howard Hinnant's algorithm), UTC.
    let days = (unix / 86_400) as i64;
    let secs = unix % 86_400;
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02} UTC",
        secs / 3600,
        secs / 60 % 60,
        secs % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_stay_on_one_line_without_escape_sequences() {
        assert_eq!(
            location("docs/esc\u{1b}[2J\nname\t.md", None, (1, 3), &[]),
            "docs/esc\\nname\\t.md L1–3"
        );
    }

    #[test]
    fn sanitize_strips_escapes_and_controls() {
        assert_eq!(
            sanitize("a\u{1b}[31mred\u{1b}[0m b\u{7}\u{1b}]0;title\u{7}c\r\n\td"),
            "ared bc\n\td"
        );
        assert_eq!(sanitize("x\u{202e}y"), "xy");
    }

    #[test]
    fn a_raised_passage_says_why_as_the_question_asks() {
        let spelled = "Zero trust architecture (ZTA) is an enterprise's cybersecurity plan.";
        assert_eq!(
            raised_because("What does ZTA stand for?", spelled),
            "spells it out"
        );
        assert_eq!(
            raised_because("What is a closure?", "A closure is a function."),
            "says what it is"
        );
        assert_eq!(
            raised_because("What does the move keyword do?", "The move keyword forces…"),
            "says what it does"
        );
    }

    #[test]
    fn dates_are_civil() {
        assert_eq!(civil_time(0), "1970-01-01 00:00:00 UTC");
        assert_eq!(civil_time(1_764_072_000), "2025-11-25 12:00:00 UTC");
    }

    #[test]
    fn locations_read_as_path_page_lines_heading() {
        assert_eq!(
            location("a.pdf", Some(3), (5, 7), &["A".into(), "B".into()]),
            "a.pdf p.3 L5–7 — A > B"
        );
        assert_eq!(location("a.md", None, (4, 4), &[]), "a.md L4");
        assert_eq!(snippet("a\n  b\u{1b}[2Jc", 3), "a b…");
    }
}
