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
    "footer",
    "tooltip",
];

/// Whether `el` is an `<aside>` holding footnotes, which are text of the page.
fn is_footnote(el: &scraper::node::Element) -> bool {
    el.name() == "aside"
        && el
            .attr("class")
            .is_some_and(|c| c.split_whitespace().any(|c| c.starts_with("footnote")))
}

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
    /// Open `<dl>` lists, innermost last: the heading in effect where each opened, and whether
    /// it held named entries (which end with it).
    lists: Vec<List>,
}

/// An open `<dl>`.
struct List {
    /// The heading in effect where the list opened.
    outer: Option<(usize, String)>,
    /// Whether one of its terms became a heading.
    entries: bool,
}

/// Whether `el` is a link that is not text: a link to a place on its own page that shows only a
/// mark (`¶`, `§`, `#`, an icon), the permalink that documentation generators put after every
/// heading and entry; or a `javascript:` link.
fn is_furniture_link(node: ego_tree::NodeRef<'_, Node>, el: &scraper::node::Element) -> bool {
    let Some(href) = el.attr("href").filter(|_| el.name() == "a") else {
        return false;
    };
    // A script's button dressed as a link ("[−]", "collapse all docs") is never text.
    if href
        .trim_start()
        .to_ascii_lowercase()
        .starts_with("javascript:")
    {
        return true;
    }
    if !href.starts_with('#') {
        return false;
    }
    let mut marks = 0;
    for d in node.descendants() {
        if let Node::Text(t) = d.value() {
            for c in t.text.chars().filter(|c| !c.is_whitespace()) {
                if c.is_alphanumeric() {
                    return false;
                }
                marks += 1;
            }
        }
    }
    marks <= 2
}

/// Whether `node` is a list of links and nothing else, at least four of them: a site's menu,
/// a page's table of contents, "previous / next" — furniture that a page which does not mark
/// it (`<nav>`, `role`) repeats on every page, where it would match every question naming a
/// neighbouring page. Only asked outside the page's marked content (`<main>`, `<article>`,
/// `role="main"`): inside it, such a list is as likely to be content ("one of the following
/// flags:").
fn is_link_list(node: ego_tree::NodeRef<'_, Node>, el: &scraper::node::Element) -> bool {
    if !matches!(el.name(), "ul" | "ol") {
        return false;
    }
    // One pass over the list, counting the links it is inside: linear in the list's size, so a
    // hostile page of thousands of nested lists costs no more than reading it.
    let (mut links, mut open) = (0, 0usize);
    for edge in node.traverse() {
        match edge {
            ego_tree::iter::Edge::Open(d) => match d.value() {
                Node::Element(e) if e.name() == "a" => {
                    links += 1;
                    open += 1;
                }
                Node::Text(t) if open == 0 && !t.text.trim().is_empty() => return false,
                _ => {}
            },
            ego_tree::iter::Edge::Close(d) => {
                if matches!(d.value(), Node::Element(e) if e.name() == "a") {
                    open -= 1;
                }
            }
        }
    }
    links >= 4
}

/// The name a heading gives its section: a signature up to its parameters
/// (`json.dumps(obj, *, skipkeys=False, …)` → `json.dumps`, `pub fn push<T>(&mut self, …)` →
/// `pub fn push<T>`), at most 100 characters. Prose keeps its brackets ("Examples (advanced)").
fn section_name(heading: &str) -> String {
    let call = heading.char_indices().find(|&(i, c)| {
        c == '('
            && heading[..i]
                .chars()
                .next_back()
                .is_some_and(|p| p.is_alphanumeric() || p == '_' || p == '>')
    });
    // Empty brackets are part of a name when words follow ("The add_argument() method"), but
    // not before a return type ("pub fn new() -> Vec<T>").
    let name = match call {
        Some((i, _)) => {
            let rest = &heading[i + 1..];
            let empty = rest.starts_with(')');
            if empty && !rest[1..].trim_start().starts_with("->") {
                heading
            } else {
                &heading[..i]
            }
        }
        None => heading,
    };
    match name.char_indices().nth(100) {
        Some((i, _)) => format!("{}…", &name[..i]),
        None => name.to_owned(),
    }
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
            /// The end of an element.
            Leave(Leave),
        }
        struct Leave {
            kind: Kind,
            /// Its heading level (0: not a heading).
            level: usize,
            /// Where its text started.
            start: usize,
            block: bool,
        }
        #[derive(PartialEq)]
        enum Kind {
            Pre,
            /// A named entry's term, whose heading is its name.
            Entry,
            /// A `<dl>`.
            List,
            Other,
        }
        let mut stack = vec![Step::Enter(root, in_main)];
        while let Some(step) = stack.pop() {
            let (node, in_main) = match step {
                Step::Enter(node, in_main) => (node, in_main),
                Step::Leave(leave) => {
                    if leave.kind == Kind::Pre {
                        self.pre -= 1;
                        // The block's closing fence, on a line of its own.
                        if !self.text.ends_with('\n') {
                            self.text.push('\n');
                        }
                        self.text.push_str("```");
                    }
                    if leave.level > 0 {
                        self.in_heading -= 1;
                        let heading = section_name(
                            &self.text[leave.start..]
                                .split_whitespace()
                                .collect::<Vec<_>>()
                                .join(" "),
                        );
                        if !heading.is_empty() {
                            self.headings.push((leave.start, leave.level, heading));
                            let entry = leave.kind == Kind::Entry;
                            if let Some(list) = self.lists.last_mut().filter(|_| entry) {
                                list.entries = true;
                            }
                        }
                    }
                    if leave.block {
                        self.newline();
                    }
                    if leave.kind == Kind::List {
                        // The text after a list of entries belongs to the heading before it.
                        let list = self.lists.pop().expect("a list was opened");
                        if let (true, Some((level, heading))) = (list.entries, list.outer) {
                            self.headings.push((self.text.len(), level, heading));
                        }
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
                    if (DROP.contains(&name) && !is_footnote(el))
                        || hidden
                        || matches!(role, "navigation" | "banner" | "contentinfo" | "search")
                        || (name == "header" && !in_main)
                        || is_furniture(el)
                        || is_furniture_link(node, el)
                        || (!in_main && is_link_list(node, el))
                    {
                        continue;
                    }
                    let in_main = in_main || matches!(name, "main" | "article") || role == "main";
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
                        // A term with an anchor of its own in a definition list names an entry
                        // of a reference page (a function, a class, an option, a glossary term):
                        // it heads a section below the page's headings.
                        "dt" if el.attr("id").is_some_and(|id| !id.is_empty()) => {
                            6 + self.lists.len()
                        }
                        _ => 0,
                    };
                    if name == "dl" {
                        let outer = self.headings.last().map(|h| (h.1, h.2.clone()));
                        self.lists.push(List {
                            outer,
                            entries: false,
                        });
                    }
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
                        // Preformatted text is a code block, fenced as Markdown fences it: the
                        // model reads it as code, and a quote that announces it goes on into it.
                        self.text.push_str("```\n");
                        self.pre += 1;
                    }
                    if matches!(name, "td" | "th") && !self.text.ends_with(['\n', ' ']) {
                        self.text.push(' ');
                    }
                    let kind = match name {
                        "pre" => Kind::Pre,
                        "dt" if level > 0 => Kind::Entry,
                        "dl" => Kind::List,
                        _ => Kind::Other,
                    };
                    stack.push(Step::Leave(Leave {
                        kind,
                        level,
                        start,
                        block,
                    }));
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
        lists: Vec::new(),
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
        assert!(
            doc.text.contains("```\na  b\nc\n```"),
            "pre kept, fenced: {:?}",
            doc.text
        );
        let paths: Vec<_> = doc.sections.iter().map(|s| s.heading.join(" > ")).collect();
        assert_eq!(paths, ["Big Title", "Big Title > Sub"]);
        assert!(doc.text[doc.sections[1].range.clone()].starts_with("Sub\n"));
    }

    #[test]
    fn permalinks_are_dropped_and_named_entries_head_sections() {
        // The shape Sphinx gives a reference page (Python's documentation among many).
        let src = r##"<body>
            <ul><li><a href="csv.html">csv</a></li><li><a href="re.html">re</a>
            <ul><li><a href="#a">Flags</a></li></ul></li><li><a href="io.html">io</a></li></ul>
            <ul><li><a href="a.html">one</a></li><li><a href="b.html">two</a></li></ul>
            <ul><li><a href="c.html">three</a>, the third</li><li><a href="d.html">four</a></li>
            <li><a href="e.html">five</a></li><li><a href="f.html">six</a></li></ul>
            <div class="body" role="main">
            <h1>json — JSON<a class="headerlink" href="#module-json">¶</a></h1>
            <p>Intro text of the module.</p>
            <h2>Basic Usage<a class="headerlink" href="#basic-usage">¶</a></h2>
            <dl class="py function"><dt class="sig" id="json.dumps"><span>json.</span><span>dumps</span>(<em>obj</em>, <em>*</em>, <em>indent=None</em>)<a class="headerlink" href="#json.dumps">¶</a></dt>
            <dd><p>Serialize obj to a JSON formatted str.</p></dd></dl>
            <dl class="py class"><dt id="json.JSONEncoder"><em>class </em>json.JSONEncoder(<em>*</em>)</dt>
            <dd><p>Extensible JSON encoder.</p>
              <dl class="py method"><dt id="json.JSONEncoder.default">default(<em>o</em>)</dt>
              <dd><p>Implement this method in a subclass.</p></dd></dl>
              <p>More about the encoder.</p></dd></dl>
            <p>Text after the entries.</p>
            <dl><dt>plain term</dt><dd>not an entry</dd></dl>
            <p>See <a href="#json.dumps">dumps()</a> and <a href="#x">§ 2</a>.<a href="javascript:void(0)">[−]</a></p>
            <p>One of these flags:</p><ul><li><a href="#F1">F1</a></li><li><a href="#F2">F2</a></li>
            <li><a href="#F3">F3</a></li><li><a href="#F4">F4</a></li></ul>
            <aside class="footnote-list"><aside class="footnote" role="note"><p>A footnote.</p>
            </aside></aside></div><div class="footer">© Copyright 2024.</div></body>"##;
        let doc = read(src, "json.html");
        for kept in [
            "json.dumps(obj, *, indent=None)\n",
            "See dumps() and § 2.\n",
            "A footnote.",
            "one\ntwo",
            "three, the third\nfour",
            "F1\nF2\nF3\nF4",
        ] {
            assert!(doc.text.contains(kept), "{kept:?} kept: {:?}", doc.text);
        }
        for dropped in ["¶", "csv", "Flags", "Copyright"] {
            assert!(
                !doc.text.contains(dropped),
                "{dropped:?} dropped: {:?}",
                doc.text
            );
        }
        let sections: Vec<_> = doc
            .sections
            .iter()
            .map(|s| {
                (
                    s.heading.join(" > "),
                    doc.text[s.range.clone()]
                        .trim()
                        .lines()
                        .next()
                        .unwrap_or(""),
                )
            })
            .collect();
        assert_eq!(
            sections,
            [
                (String::new(), "one"),
                ("json — JSON".to_owned(), "json — JSON"),
                ("json — JSON > Basic Usage".to_owned(), "Basic Usage"),
                (
                    "json — JSON > Basic Usage > json.dumps".to_owned(),
                    "json.dumps(obj, *, indent=None)"
                ),
                (
                    "json — JSON > Basic Usage > class json.JSONEncoder".to_owned(),
                    "class json.JSONEncoder(*)"
                ),
                (
                    "json — JSON > Basic Usage > class json.JSONEncoder > default".to_owned(),
                    "default(o)"
                ),
                (
                    "json — JSON > Basic Usage > class json.JSONEncoder".to_owned(),
                    "More about the encoder."
                ),
                (
                    "json — JSON > Basic Usage".to_owned(),
                    "Text after the entries."
                ),
            ]
        );
    }

    #[test]
    fn a_section_is_named_by_its_signature_up_to_the_parameters() {
        assert_eq!(
            section_name("json.dumps(obj, *, skipkeys=False)"),
            "json.dumps"
        );
        assert_eq!(
            section_name("pub fn push<T>(&mut self, value: T)"),
            "pub fn push<T>"
        );
        assert_eq!(section_name("--indent, --tab"), "--indent, --tab");
        assert_eq!(section_name("pub fn new() -> Vec<T>"), "pub fn new");
        assert_eq!(
            section_name("The add_argument() method"),
            "The add_argument() method"
        );
        assert_eq!(section_name("time.monotonic()"), "time.monotonic()");
        assert_eq!(section_name("(weird)"), "(weird)");
        assert_eq!(section_name("Examples (advanced)"), "Examples (advanced)");
        let long = "x".repeat(150);
        assert_eq!(section_name(&long).chars().count(), 101);
    }
}
