//! Colour and hyperlinks for what cairn prints on a terminal.
//!
//! Decided once, for stdout: `--color always|never` wins, else `auto` asks anstream, which
//! follows `NO_COLOR`, `CLICOLOR_FORCE`, `CLICOLOR`, `TERM=dumb` and whether stdout is a
//! terminal. File references become OSC 8 hyperlinks (`file://HOST/PATH#LLINE`) only when
//! colour is on and the terminal is known to show them (`supports-hyperlinks`; `FORCE_HYPERLINK`
//! overrides). JSON output never goes through here. Everything styled is cairn's own text or
//! text already passed through `sanitize`, and the output reads the same with styling off.

use std::fmt::Write as _;
use std::path::Path;

use anstyle::{AnsiColor, Style};

/// `--color`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum ColorArg {
    // (No doc comments here: clap would turn them into a long list in every --help.)
    #[default]
    Auto,
    Always,
    Never,
}

/// How to style stdout.
#[derive(Clone, Copy, Debug, Default)]
pub struct Paint {
    color: bool,
    links: bool,
}

const MARKER: Style = AnsiColor::Cyan.on_default();
const UNSURE: Style = AnsiColor::Yellow.on_default().bold();
const HEADING: Style = Style::new().bold();
const SCORE: Style = Style::new().dimmed();
const GOOD: Style = AnsiColor::Green.on_default();
const BAD: Style = AnsiColor::Red.on_default().bold();
const WARN: Style = AnsiColor::Yellow.on_default();

impl Paint {
    /// The styling for stdout under `choice` and the environment.
    #[must_use]
    pub fn stdout(choice: ColorArg) -> Self {
        let color = match choice {
            ColorArg::Always => true,
            ColorArg::Never => false,
            ColorArg::Auto => !matches!(
                anstream::AutoStream::choice(&std::io::stdout()),
                anstream::ColorChoice::Never
            ),
        };
        Paint {
            color,
            links: color && supports_hyperlinks::on(supports_hyperlinks::Stream::Stdout),
        }
    }

    /// Explicit settings, for tests.
    #[cfg(test)]
    pub fn new(color: bool, links: bool) -> Self {
        Paint { color, links }
    }

    fn paint(self, style: Style, text: &str) -> String {
        if self.color && !text.is_empty() {
            format!("{}{text}{}", style.render(), style.render_reset())
        } else {
            text.to_owned()
        }
    }

    /// A heading such as `Sources:`.
    #[must_use]
    pub fn heading(self, text: &str) -> String {
        self.paint(HEADING, text)
    }

    /// A score or other secondary figure.
    #[must_use]
    pub fn score(self, text: &str) -> String {
        self.paint(SCORE, text)
    }

    /// A check that passed.
    #[must_use]
    pub fn good(self, text: &str) -> String {
        self.paint(GOOD, text)
    }

    /// A problem.
    #[must_use]
    pub fn bad(self, text: &str) -> String {
        self.paint(BAD, text)
    }

    /// A notice: not found, a hint.
    #[must_use]
    pub fn warn(self, text: &str) -> String {
        self.paint(WARN, text)
    }

    /// A citation marker: `[1]`, `[1,3]` or the unsupported `[?]`.
    #[must_use]
    pub fn marker(self, text: &str) -> String {
        self.paint(if text == "[?]" { UNSURE } else { MARKER }, text)
    }

    /// Answer text with its citation markers (`[1]`, `[2,3]`, `[?]`) styled.
    #[must_use]
    pub fn answer(self, text: &str) -> String {
        if !self.color {
            return text.to_owned();
        }
        let mut out = String::with_capacity(text.len() + 16);
        let mut rest = text;
        while let Some(open) = rest.find('[') {
            let (before, from) = rest.split_at(open);
            out.push_str(before);
            let marker_len = from.find(']').map(|close| close + 1).filter(|&n| {
                let inner = &from[1..n - 1];
                inner == "?"
                    || (!inner.is_empty()
                        && inner
                            .split(',')
                            .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit())))
            });
            if let Some(n) = marker_len {
                out.push_str(&self.marker(&from[..n]));
                rest = &from[n..];
            } else {
                out.push('[');
                rest = &from[1..];
            }
        }
        out.push_str(rest);
        out
    }

    /// `text` as a hyperlink to `file` at line `line` (`#L12`), or at page `page` of a PDF
    /// (`#page=3`), where links are on and the file is known; `text` must already be safe for
    /// the terminal.
    #[must_use]
    pub fn link(self, text: &str, file: Option<&Path>, page: Option<u32>, line: u32) -> String {
        match file {
            Some(f) if self.links => {
                let fragment = page.map_or_else(|| format!("L{line}"), |p| format!("page={p}"));
                format!(
                    "\x1b]8;;{}\x1b\\{text}\x1b]8;;\x1b\\",
                    file_url(f, &fragment)
                )
            }
            _ => text.to_owned(),
        }
    }
}

/// `file://HOST/PATH#FRAGMENT`, the path percent-encoded (every byte outside the unreserved set
/// and `/`), so that no byte of a file name reaches the terminal raw.
fn file_url(file: &Path, fragment: &str) -> String {
    let absolute = std::path::absolute(file).unwrap_or_else(|_| file.to_owned());
    let mut url = format!("file://{}", host());
    for &b in absolute.as_os_str().as_encoded_bytes() {
        if b.is_ascii_alphanumeric() || b"/-._~".contains(&b) {
            url.push(char::from(b));
        } else {
            let _ = write!(url, "%{b:02X}");
        }
    }
    url.push('#');
    url.push_str(fragment);
    url
}

/// This machine's name for `file://` URLs (terminals compare it to tell local files from remote
/// ones); empty, which means this machine, when unknown or unsafe.
fn host() -> String {
    let name = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .or_else(|_| std::fs::read_to_string("/etc/hostname"))
        .unwrap_or_default();
    let name = name.trim();
    if name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.')
    {
        name.to_owned()
    } else {
        String::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markers_are_styled_only_with_colour() {
        let text = "Prime it with 3 litres [1]. Seals [2,3] wear [?]. A [link] stays [x1].";
        assert_eq!(Paint::new(false, false).answer(text), text);
        let styled = Paint::new(true, false).answer(text);
        assert!(styled.contains("\x1b[36m[1]\x1b[0m"), "{styled:?}");
        assert!(styled.contains("\x1b[36m[2,3]\x1b[0m"), "{styled:?}");
        assert!(styled.contains("\x1b[1m\x1b[33m[?]\x1b[0m"), "{styled:?}");
        assert!(styled.contains(" [link] stays [x1]."), "{styled:?}");
        // Styling removed, the text is the same.
        assert_eq!(anstream::adapter::strip_str(&styled).to_string(), text);
    }

    #[test]
    fn links_only_when_on_and_names_cannot_escape_them() {
        let f = Path::new("/docs/a b\x1b]52;c;x\x07.md");
        assert_eq!(
            Paint::new(true, false).link("a.md L3", Some(f), None, 3),
            "a.md L3"
        );
        assert_eq!(
            Paint::new(true, true).link("a.md L3", None, None, 3),
            "a.md L3"
        );
        let pdf = Paint::new(true, true).link("a.pdf p.2", Some(Path::new("/d/a.pdf")), Some(2), 7);
        assert!(pdf.contains("/d/a.pdf#page=2\x1b\\"), "{pdf:?}");
        let link = Paint::new(true, true).link("a.md L3", Some(f), None, 3);
        let url = link
            .strip_prefix("\x1b]8;;")
            .and_then(|l| l.split_once("\x1b\\"))
            .unwrap()
            .0;
        assert!(url.starts_with("file://"), "{url}");
        assert!(
            url.ends_with("/docs/a%20b%1B%5D52%3Bc%3Bx%07.md#L3"),
            "{url}"
        );
        assert!(link.ends_with("a.md L3\x1b]8;;\x1b\\"));
    }
}
