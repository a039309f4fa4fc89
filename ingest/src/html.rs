//! HTML: visible text without scripts, styles and navigation; `<h1>`…`<h6>` start sections.

use scraper::{Html, Node};
use unicode_normalization::UnicodeNormalization;

use crate::document::{sections_from_headings, DocKind, Document};

/// Elements whose content is never document text.
const DROP: &[&str] = &[
    "script", "style", "noscript", "template", "svg", "canvas", "iframe", "object", "nav",
    "button", "select", "form", "head", "aside", "footer", "dialog",
];
/// Fragments of `id`/`class` values that mark page furniture rather than content (menus, sidebars,
/// pop-ups), which sites hide or place with CSS that a text extractor does not see.
const FURNITURE: &[&str] = &[
    "sidebar",
    "menu",
    "navbar",
    "breadcrumb",
    "popup",
    "modal",
    "cookie",
    "toolbar",
    "skip-link",
    "help-container",
];

fn is_furniture(el: &scraper::node::Element) -> bool {
    let id = el.attr("id").unwrap_or("").to_ascii_lowercase();
    let class = el.attr("class").unwrap_or("").to_ascii_lowercase();
    FURNITURE
        .iter()
        .any(|f| id.contains(f) || class.split_whitespace().any(|c| c.contains(f)))
}

/// Elements that end a line of text.
const BLOCK: &[&str] = &[
    "p",
    "div",
    "section",
    "article",
    "main",
    "li",
    "ul",
    "ol",
    "dl",
    "dt",
    "dd",
    "tr",
    "table",
    "thead",
    "tbody",
    "blockquote",
    "pre",
    "figure",
    "figcaption",
    "details",
    "summary",
    "br",
    "hr",
    "address",
    "h1",
    "h2",
    "h3",
    "h4",
    "h5",
    "h6",
    "header",
    "caption",
    "td",
    "th",
];

struct Builder {
    text: String,
    /// (offset where the heading starts, level, heading text)
    headings: Vec<(usize, usize, String)>,
    pre: usize,
    /// Open heading elements: a heading inside one is not a heading of its own.
    in_heading: usize,
}

impl Builder {
    fn newline(&mut self) {
        while self.text.ends_with(' ') {
            self.text.pop();
        }
        if !self.text.is_empty() && !self.text.ends_with('\n') {
            self.text.push('\n');
        }
    }

    fn push_text(&mut self, s: &str) {
        if self.pre > 0 {
            self.text.push_str(s);
            return;
        }
        for (i, word) in s.split_whitespace().enumerate() {
            // Words of one text node are separated by a space; the first word of a node only if
            // the node starts with whitespace (`<code>dev</code>, release` keeps "dev,").
            let sep = i > 0 || s.starts_with(char::is_whitespace);
            if sep && !self.text.is_empty() && !self.text.ends_with(['\n', ' ']) {
                self.text.push(' ');
            }
            self.text.push_str(word);
        }
        // Whitespace at the end of a text node separates it from the next inline element.
        if s.ends_with(char::is_whitespace)
            && !self.text.is_empty()
            && !self.text.ends_with(['\n', ' '])
        {
            self.text.push(' ');
        }
    }

    /// Walks the tree in document order with a stack of its own, not the call stack: a page
    /// nested 100,000 elements deep is read like any other.
    fn walk(&mut self, root: ego_tree::NodeRef<'_, Node>, in_main: bool) {
        enum Step<'a> {
            Enter(ego_tree::NodeRef<'a, Node>, bool),
            /// The end of an element: whether it was `pre`, its heading level, where its text
            /// started, and whether it is a block.
            Leave(bool, usize, usize, bool),
        }
        let mut stack = vec![Step::Enter(root, in_main)];
        while let Some(step) = stack.pop() {
            let (node, in_main) = match step {
                Step::Enter(node, in_main) => (node, in_main),
                Step::Leave(pre, level, start, block) => {
                    if pre {
                        self.pre -= 1;
                    }
                    if level > 0 {
                        self.in_heading -= 1;
                        let heading: String = self.text[start..]
                            .split_whitespace()
                            .collect::<Vec<_>>()
                            .join(" ");
                        if !heading.is_empty() {
                            self.headings.push((start, level, heading));
                        }
                    }
                    if block {
                        self.newline();
                    }
                    continue;
                }
            };
            let in_main = match node.value() {
                Node::Text(t) => {
                    self.push_text(&t.text);
                    continue;
                }
                Node::Element(el) => {
                    let name = el.name();
                    let role = el.attr("role").unwrap_or("");
                    let hidden =
                        el.attr("hidden").is_some() || el.attr("aria-hidden") == Some("true");
                    if DROP.contains(&name)
                        || hidden
                        || matches!(role, "navigation" | "banner" | "contentinfo" | "search")
                        || (name == "header" && !in_main)
                        || is_furniture(el)
                    {
                        continue;
                    }
                    let in_main = in_main || matches!(name, "main" | "article");
                    let block = BLOCK.contains(&name);
                    let level = match name {
                        // A heading inside a heading (which only broken markup makes) is
                        // part of the outer one's text.
                        _ if self.in_heading > 0 => 0,
                        "h1" => 1,
                        "h2" => 2,
                        "h3" => 3,
                        "h4" => 4,
                        "h5" => 5,
                        "h6" => 6,
                        _ => 0,
                    };
                    if level > 0 {
                        self.in_heading += 1;
                    }
                    if block {
                        self.newline();
                        if matches!(name, "p" | "pre" | "table" | "blockquote") || level > 0 {
                            // A blank line between paragraphs, as in Markdown, marks a
                            // paragraph end.
                            if !self.text.is_empty() && !self.text.ends_with("\n\n") {
                                self.text.push('\n');
                            }
                        }
                    }
                    let start = self.text.len();
                    if name == "pre" {
                        self.pre += 1;
                    }
                    if matches!(name, "td" | "th") && !self.text.ends_with(['\n', ' ']) {
                        self.text.push(' ');
                    }
                    stack.push(Step::Leave(name == "pre", level, start, block));
                    in_main
                }
                Node::Document | Node::Fragment => in_main,
                _ => continue,
            };
            // Children in reverse, so that the first is taken first.
            let first = stack.len();
            stack.extend(node.children().map(|child| Step::Enter(child, in_main)));
            stack[first..].reverse();
        }
    }
}

/// Pages nested deeper than this are not read (real pages stay in the tens).
pub(crate) const MAX_DEPTH: usize = 4096;

/// Elements that never nest: void elements, and those whose end tag may be left out (a new
/// `<li>` or `<p>` closes the last), which would otherwise count once per item.
const FLAT: &[&str] = &[
    "area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "param", "source",
    "track", "wbr", "li", "p", "dt", "dd", "tr", "td", "th", "option", "optgroup", "thead",
    "tbody", "tfoot", "colgroup", "rp", "rt", "caption",
];

/// The deepest nesting of start tags in `source`, by a quick scan of its tags (not a parse):
/// enough to refuse a page that would keep the parser busy for minutes.
pub(crate) fn nesting_depth(source: &str) -> usize {
    let bytes = source.as_bytes();
    let (mut depth, mut max) = (0usize, 0usize);
    let mut i = 0;
    while let Some(at) = bytes[i..].iter().position(|&b| b == b'<') {
        i += at + 1;
        let closing = bytes.get(i) == Some(&b'/');
        let name_start = i + usize::from(closing);
        let name_len = bytes[name_start..]
            .iter()
            .take_while(|b| b.is_ascii_alphanumeric())
            .count();
        if name_len == 0 || !bytes[name_start].is_ascii_alphabetic() {
            continue;
        }
        let name = &source[name_start..name_start + name_len];
        if FLAT.iter().any(|f| f.eq_ignore_ascii_case(name)) {
            continue;
        }
        if closing {
            depth = depth.saturating_sub(1);
        } else {
            let end = bytes[name_start..]
                .iter()
                .position(|&b| b == b'>')
                .map_or(bytes.len(), |p| name_start + p);
            if end > 0 && bytes[end - 1] == b'/' {
                continue; // <x/>
            }
            depth += 1;
            max = max.max(depth);
        }
    }
    max
}

pub(crate) fn read(source: &str, file_name: &str) -> Document {
    let html = Html::parse_document(source);
    let title = html
        .select(&scraper::Selector::parse("title").expect("static selector"))
        .next()
        .map(|t| {
            t.text()
                .collect::<String>()
                .split_whitespace()
                .collect::<Vec<_>>()
                .join(" ")
        })
        .filter(|t| !t.is_empty());
    let mut b = Builder {
        text: String::new(),
        headings: Vec::new(),
        pre: 0,
        in_heading: 0,
    };
    if let Some(body) = html
        .select(&scraper::Selector::parse("body").expect("static selector"))
        .next()
    {
        b.walk(*body, false);
    } else {
        b.walk(html.tree.root(), false);
    }
    // NFKC per piece keeps heading offsets valid: normalise the text between boundaries.
    let mut text = String::with_capacity(b.text.len());
    let mut headings = Vec::with_capacity(b.headings.len());
    let mut last = 0;
    for (start, level, heading) in b.headings {
        if start < last {
            continue; // headings are recorded in document order; never cut backwards
        }
        text.extend(b.text[last..start].nfkc());
        headings.push((text.len(), level, heading.nfkc().collect::<String>()));
        last = start;
    }
    text.extend(b.text[last..].nfkc());

    let title = title
        .or_else(|| headings.iter().find(|h| h.1 == 1).map(|h| h.2.clone()))
        .unwrap_or_else(|| file_name.to_owned());
    let sections = sections_from_headings(&text, &headings);
    Document::new(DocKind::Html, title, text, sections)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nesting_depth_counts_nested_elements_only() {
        assert_eq!(
            nesting_depth("<html><body><div><p>a<p>b<br>c</div></body></html>"),
            3
        );
        assert_eq!(nesting_depth("<ul><li>a<li>b<li>c</ul>"), 1);
        assert_eq!(nesting_depth("<div/><div />< div>a < b<span>x</span>"), 1);
        let deep = format!("{}x{}", "<div>".repeat(5000), "</div>".repeat(5000));
        assert_eq!(nesting_depth(&deep), 5000);
        let siblings = "<div>x</div>".repeat(10_000);
        assert_eq!(nesting_depth(&siblings), 1);
    }

    #[test]
    fn a_page_at_the_depth_limit_is_read_without_recursion() {
        // On a 2 MiB thread, so that a recursive walk would overflow here too.
        let page = format!(
            "<body>{}deep words{}</body>",
            "<div>".repeat(MAX_DEPTH - 1),
            "</div>".repeat(MAX_DEPTH - 1)
        );
        let doc = std::thread::Builder::new()
            .stack_size(256 << 10)
            .spawn(move || read(&page, "deep.html"))
            .unwrap()
            .join()
            .unwrap();
        assert_eq!(doc.text.trim(), "deep words");
    }

    #[test]
    fn drops_noise_and_keeps_headings() {
        let src = r#"<html><head><title>T</title><style>p{}</style></head><body>
            <nav><a href="/">Home</a></nav>
            <header>Site banner</header>
            <div id="menu-bar"><h1 class="menu-title">Site</h1></div>
            <main><h1>Big <em>Title</em></h1><p>Run <code>dev</code>, then go. First  para
            text.</p><script>var x = 1;</script>
            <h2>Sub</h2><p>Second ﬁle para.</p><pre>a  b
c</pre></main><footer>(c) 2024</footer></body></html>"#;
        let doc = read(src, "x.html");
        assert_eq!(doc.title, "T");
        assert!(!doc.text.contains("Home") && !doc.text.contains("banner"));
        assert!(!doc.text.contains("var x") && !doc.text.contains("(c)"));
        assert!(
            doc.text.contains("Run dev, then go. First para text."),
            "{:?}",
            doc.text
        );
        assert!(!doc.text.contains("Site"), "{:?}", doc.text);
        assert!(
            doc.text.contains("Second file para."),
            "NFKC: {:?}",
            doc.text
        );
        assert!(doc.text.contains("a  b\nc"), "pre kept: {:?}", doc.text);
        let paths: Vec<_> = doc.sections.iter().map(|s| s.heading.join(" > ")).collect();
        assert_eq!(paths, ["Big Title", "Big Title > Sub"]);
        assert!(doc.text[doc.sections[1].range.clone()].starts_with("Sub\n"));
    }
}
