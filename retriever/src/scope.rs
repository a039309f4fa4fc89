//! What a question asks a member of, and whether a passage is about it.
//!
//! Reference documentation is laid out by what things belong to: a page per module, a section
//! per class. "Which tarfile mode opens an archive for reading with gzip compression?" asks for
//! a mode *of tarfile*; a knowledge base without `tarfile`'s page still has `gzip`'s, whose
//! `gzip.open` takes a mode `'rb'`, and a small model quotes it. The passage speaks of most of
//! the question's words and the model is sure of its quote; what gives it away is that neither
//! the document nor its headings are about `tarfile`.

use crate::terms::is_stopword;

/// The kinds of thing a question asks for by what they belong to ("Which tarfile *mode*…",
/// "Which Buffer *method*…", "What os *constant*…"), singular and plural, sorted.
const MEMBER_KINDS: &[&str] = &[
    "argument",
    "arguments",
    "attribute",
    "attributes",
    "class",
    "classes",
    "command",
    "commands",
    "constant",
    "constants",
    "decorator",
    "decorators",
    "directive",
    "directives",
    "enum",
    "enums",
    "event",
    "events",
    "exception",
    "exceptions",
    "field",
    "fields",
    "flag",
    "flags",
    "function",
    "functions",
    "interface",
    "interfaces",
    "keyword",
    "keywords",
    "lint",
    "lints",
    "macro",
    "macros",
    "method",
    "methods",
    "mode",
    "modes",
    "module",
    "modules",
    "operator",
    "operators",
    "option",
    "options",
    "parameter",
    "parameters",
    "properties",
    "property",
    "setting",
    "settings",
    "specifier",
    "specifiers",
    "struct",
    "structs",
    "subcommand",
    "subcommands",
    "trait",
    "traits",
    "type",
    "types",
    "variable",
    "variables",
];

/// Words that, before a kind, say which one or what sort rather than whose ("Which other
/// methods…", "Which built-in function…", "What default mode…"), sorted.
const DESCRIBING: &[&str] = &[
    "basic",
    "best",
    "built-in",
    "builtin",
    "common",
    "correct",
    "default",
    "different",
    "first",
    "following",
    "generic",
    "given",
    "last",
    "main",
    "new",
    "next",
    "optional",
    "preferred",
    "previous",
    "private",
    "public",
    "recommended",
    "required",
    "right",
    "second",
    "simple",
    "single",
    "special",
    "specific",
    "standard",
    "typical",
    "usual",
    "wrong",
];

/// What a question asks a member of ([`scope`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Scope {
    /// The name as the question writes it: `tarfile`, `AsyncLocalStorage`, `dgram` (of
    /// `dgram.Socket`).
    pub name: String,
    /// Its words, lowercase: `child_process` is `child` and `process`.
    pub words: Vec<String>,
}

/// What a question asks a member of: the name between "Which" (or "What") and the kind of
/// thing asked for — "Which **tarfile** mode…", "Which **AsyncLocalStorage** method…", "What
/// **os** constant…" — or after it — "Which method of the **Buffer** class…", "Which function
/// in **shutil**…". A dotted name is scoped by its first part (`dgram.Socket` by `dgram`,
/// `Cargo.toml` by `Cargo`). `None` for any other question, and where the word before the kind
/// describes rather than names ("Which other method…", "Which three traits…").
#[must_use]
pub fn scope(question: &str) -> Option<Scope> {
    let words: Vec<&str> = question
        .split_whitespace()
        .map(|w| {
            w.trim_matches(|c: char| {
                matches!(
                    c,
                    '`' | '"' | '\'' | '“' | '”' | '‘' | '’' | ',' | '?' | '(' | ')'
                )
            })
        })
        .filter(|w| !w.is_empty())
        .collect();
    let lower = |i: usize| words.get(i).map(|w| w.to_lowercase());
    let is_kind = |w: &str| MEMBER_KINDS.binary_search(&w).is_ok();
    if !lower(0).is_some_and(|w| w == "which" || w == "what") {
        return None;
    }
    let written = if lower(2).is_some_and(|w| is_kind(&w)) {
        // "Which tarfile mode…"
        words[1]
    } else if lower(1).is_some_and(|w| is_kind(&w) && w != "type" && w != "types")
        && lower(2).is_some_and(|w| matches!(w.as_str(), "of" | "in" | "from"))
    {
        // "Which method of Buffer…", "Which function in the os module…" (not "What type of…",
        // which asks what sort).
        let article = lower(3).is_some_and(|w| matches!(w.as_str(), "the" | "a" | "an"));
        words.get(if article { 4 } else { 3 })?
    } else {
        return None;
    };
    let name = written.to_lowercase();
    if is_stopword(&name)
        || DESCRIBING.binary_search(&name.as_str()).is_ok()
        || is_kind(&name)
        || crate::terms::is_number_word(&name)
        || name.chars().any(|c| c.is_ascii_digit()) && !name.chars().any(char::is_alphabetic)
    {
        return None;
    }
    let head = written.split('.').find(|p| !p.is_empty())?;
    let words: Vec<String> = identifier_words(head).collect();
    (!words.is_empty()).then(|| Scope {
        name: head.to_owned(),
        words,
    })
}

/// The words of `text`, lowercase, as identifiers are written: `child_process` and
/// `ERR_CRYPTO_ECDH` are one word each (outer underscores dropped), `tarfile.open` two.
fn identifier_words(text: &str) -> impl Iterator<Item = String> + '_ {
    text.split(|c: char| !(c.is_alphanumeric() || c == '_'))
        .map(|w| w.trim_matches('_'))
        .filter(|w| !w.is_empty())
        .map(str::to_lowercase)
}

/// Whether `texts` — a passage's document path, its headings, the answer quoted from it — are
/// about `scope` ([`scope`]): each of its words begins a word of theirs, written with or
/// without its underscores, or two of them run together (`vec` is in "Vectors", `path` in
/// `pathlib`, `hashmap` in `hash_map` and in `hash-maps`); a name of one or two letters (`os`,
/// `fs`, `re`) must be a whole word. A name inside another identifier is not there: `signal`
/// is not in `Popen.send_signal`, `crypto` not in `ERR_CRYPTO_ECDH`.
#[must_use]
pub fn is_about<'a>(scope: &Scope, texts: impl IntoIterator<Item = &'a str>) -> bool {
    let mut words: Vec<String> = Vec::new();
    for text in texts {
        let these: Vec<String> = identifier_words(text).collect();
        let joined: Vec<String> = these.windows(2).map(<[String]>::concat).collect();
        let unbroken: Vec<String> = these
            .iter()
            .filter(|w| w.contains('_'))
            .map(|w| w.replace('_', ""))
            .collect();
        words.extend(these);
        words.extend(joined);
        words.extend(unbroken);
    }
    scope.words.iter().all(|s| {
        words
            .iter()
            .any(|w| w == s || (s.chars().count() >= 3 && w.starts_with(s.as_str())))
    })
}

/// Whether `answer` only names what the question asks a member of — "Punycode" for "Which
/// punycode method converts…?" — and so names no member.
#[must_use]
pub fn names_only(scope: &Scope, answer: &str) -> bool {
    let mut words = identifier_words(answer).peekable();
    words.peek().is_some() && words.all(|w| scope.words.contains(&w))
}

/// A work a question names among the sources searched ("In the Rust Book, what is a crate?",
/// "What does the Reference say about the never type?"): which source, and the question
/// without the words that name it, for searching.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Named {
    /// The index of the source in the names given to [`source_named`].
    pub source: usize,
    /// The question without the words naming the source ("What is a crate?").
    pub question: String,
}

/// Words of a source's name that tell nothing of what it is (`src`, `docs`), nor its version.
const GENERIC: &[&str] = &[
    "content",
    "contents",
    "doc",
    "docs",
    "documentation",
    "en",
    "html",
    "main",
    "master",
    "md",
    "pack",
    "pages",
    "site",
    "source",
    "sources",
    "src",
    "txt",
];

/// The words of a source's name that may name it: lowercase, generic words and numbers out
/// (`rust-book/src` → `rust`, `book`; `pack:python-docs@3.12` → `python`).
fn name_words(name: &str) -> Vec<String> {
    name.split(|c: char| !c.is_alphanumeric())
        .map(str::to_lowercase)
        .filter(|w| !w.is_empty() && !GENERIC.contains(&w.as_str()))
        .filter(|w| !w.chars().all(|c| c.is_ascii_digit()))
        .collect()
}

/// The source `question` names, when it names exactly one of `names` (the names documents are
/// listed under, or packs' labels), as the place to look: "in the Rust Book", "according to the
/// Reference", "what does the rustc dev guide say…", "the Book's". A source is named by all the
/// words of its name in a row ("rust book"), or by a word of its name that no other source's
/// name has, written with a capital ("the Book", "the Reference"). Not a question about the
/// work itself ("What is the Rust Reference?"), nor one of a single source.
#[must_use]
pub fn source_named(question: &str, names: &[String]) -> Option<Named> {
    if names.len() < 2 {
        return None;
    }
    let words: Vec<Vec<String>> = names.iter().map(|n| name_words(n)).collect();
    let tokens = spanned(question);
    let lower: Vec<&str> = tokens.iter().map(|(w, _)| w.as_str()).collect();
    let mut found: Vec<(usize, std::ops::Range<usize>)> = Vec::new();
    for (i, name) in words.iter().enumerate() {
        if name.is_empty() {
            continue;
        }
        let others = |w: &String| {
            words
                .iter()
                .enumerate()
                .any(|(j, o)| j != i && o.contains(w))
        };
        // All its words in a row, or one of its own written with a capital mid-question.
        let whole = (name.len() >= 2)
            .then(|| {
                lower
                    .windows(name.len())
                    .position(|w| w.iter().zip(name).all(|(a, b)| a == b))
                    .map(|at| at..at + name.len())
            })
            .flatten();
        let capital = || {
            tokens.iter().enumerate().skip(1).find_map(|(at, (w, r))| {
                let written = &question[r.clone()];
                (name.contains(w)
                    && !others(w)
                    && written.starts_with(char::is_uppercase)
                    && !is_stopword(w)
                    && !in_a_name(question, r.clone()))
                .then_some(at..at + 1)
            })
        };
        if let Some(span) = whole.or_else(capital) {
            found.push((i, span));
        }
    }
    let [(source, span)] = found.as_slice() else {
        return None;
    };
    let (source, span) = (*source, span.clone());
    // How it is named: as the place to look, not as what is asked about.
    let mut from = span.start;
    if from > 0 && lower[from - 1] == "the" {
        from -= 1;
    }
    let before = &lower[..from];
    let after = &lower[span.end..];
    let place = matches!(before, [.., "in" | "from" | "per" | "of" | "by"])
        || matches!(before, [.., "according", "to"]);
    let says = matches!(
        after,
        [
            "say"
                | "says"
                | "said"
                | "tell"
                | "tells"
                | "explain"
                | "explains"
                | "describe"
                | "describes"
                | "define"
                | "defines"
                | "mean"
                | "means",
            ..
        ]
    );
    let owns = question[tokens[span.end - 1].1.clone()].ends_with("'s")
        || question[tokens[span.end - 1].1.end..].starts_with("'s")
        || question[tokens[span.end - 1].1.end..].starts_with("’s");
    if !(place || says || owns) {
        return None;
    }
    if place {
        from -= if matches!(before, [.., "according", "to"]) {
            2
        } else {
            1
        };
    }
    let start = tokens[from].1.start;
    let mut end = tokens[span.end - 1].1.end;
    // The owner's "'s" and the comma after "In the Rust Book," go with it.
    for mark in ["'s", "’s"] {
        if question[end..].starts_with(mark) {
            end += mark.len();
        }
    }
    let rest = &question[end..];
    if let Some(stripped) = rest.strip_prefix(',') {
        end += rest.len() - stripped.len();
    }
    let mut out = format!("{}{}", &question[..start], &question[end..]);
    out = out
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .replace(" ?", "?")
        .replace(" ,", ",")
        .replace(" .", ".");
    let out = crate::followup::capitalized(out.trim_start_matches([',', ' ']));
    Some(Named {
        source,
        question: out,
    })
}

/// Whether the word at `range` of `s` is part of a longer name: a file's ("Cargo.toml"), a
/// path's or code's ("cargo::core", "rust_book").
fn in_a_name(s: &str, range: std::ops::Range<usize>) -> bool {
    let joined = |mark: Option<char>, next: Option<char>| {
        mark.is_some_and(|c| matches!(c, '.' | ':' | '_' | '/' | '-' | '<' | '@'))
            && next.is_some_and(char::is_alphanumeric)
    };
    let mut after = s[range.end..].chars();
    let mut before = s[..range.start].chars().rev();
    joined(after.next(), after.next()) || joined(before.next(), before.next())
}

/// The words of `s` (runs of letters and digits) lowercase, with their byte ranges: "rust-book"
/// is two, as a source's name is.
fn spanned(s: &str) -> Vec<(String, std::ops::Range<usize>)> {
    crate::terms::spanned_by(s, char::is_alphanumeric)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| (*s).to_owned()).collect()
    }

    fn scope_words(question: &str) -> Option<Vec<String>> {
        scope(question).map(|s| s.words)
    }

    #[test]
    fn the_lists_are_sorted() {
        for list in [MEMBER_KINDS, DESCRIBING] {
            assert!(list.windows(2).all(|w| w[0] < w[1]), "{list:?}");
        }
    }

    #[test]
    fn a_question_for_a_member_names_what_it_belongs_to() {
        let cases = [
            (
                "Which tarfile mode opens an archive for reading with gzip compression?",
                Some(words(&["tarfile"])),
            ),
            (
                "Which AsyncLocalStorage method disables the instance?",
                Some(words(&["asynclocalstorage"])),
            ),
            (
                "What os constant is the end-of-line marker?",
                Some(words(&["os"])),
            ),
            (
                "Which dgram.Socket method tells the kernel to join a multicast group?",
                Some(words(&["dgram"])),
            ),
            (
                "Which `child_process` method spawns a new process?",
                Some(words(&["child_process"])),
            ),
            (
                "Which Cargo.toml key sets the edition?",
                None, // "key" is not a kind of member
            ),
            (
                "Which Cargo.toml field sets the edition?",
                Some(words(&["cargo"])),
            ),
            ("Which keyword declares a constant in Rust?", None),
            (
                "Which method of the Buffer class allocates zero-filled bytes?",
                Some(words(&["buffer"])),
            ),
            (
                "Which function in the os module returns the temporary directory?",
                Some(words(&["os"])),
            ),
            (
                "Which function from std::mem drops a value early?",
                Some(words(&["std", "mem"])),
            ),
            (
                "Which argument of json.dumps gives the most compact representation?",
                Some(words(&["json"])),
            ),
            ("What type of value does it return?", None),
            ("Which function in the standard library sorts?", None),
            ("Which field of a struct is private?", None),
            ("Which other methods does Vec have?", None),
            ("Which three Fn traits can closures implement?", None),
            ("Which built-in function returns the length?", None),
            ("What is the type of a string literal?", None),
            ("How does the tarfile mode work?", None),
            ("Which function?", None),
        ];
        for (question, want) in cases {
            assert_eq!(scope_words(question), want, "{question}");
        }
    }

    #[test]
    fn a_passage_is_about_a_name_its_document_or_headings_begin_with() {
        let s = scope("Which tarfile mode opens an archive?").unwrap();
        assert_eq!(s.name, "tarfile");
        assert_eq!(
            scope("Which dgram.Socket method joins?").unwrap().name,
            "dgram"
        );
        assert!(is_about(&s, ["library/tarfile.html", "tarfile.open"]));
        assert!(!is_about(
            &s,
            [
                "library/gzip.html",
                "gzip — Support for gzip files",
                "gzip.open",
                "rb"
            ]
        ));
        let vec = scope("Which Vec method removes the last element?").unwrap();
        assert!(is_about(
            &vec,
            [
                "rust-book/src/ch08-01-vectors.md",
                "Storing Lists of Values with Vectors"
            ]
        ));
        // Short names are whole words: `os` is not in "cosmos" nor in "osx".
        let os = scope("Which os method returns the temporary directory?").unwrap();
        assert!(is_about(&os, ["api/os.html", "os.tmpdir()"]));
        assert!(!is_about(&os, ["api/cosmos.html", "osx notes"]));
        // Every word of the name.
        let cp = scope("Which child_process function forks?").unwrap();
        assert!(is_about(&cp, ["api/child_process.html"]));
        assert!(!is_about(&cp, ["api/process.html"]));
        // A name written as one word is found in two: `HashMap` in `hash-maps`.
        let map = scope("Which HashMap method inserts a value only if the key is absent?").unwrap();
        assert!(is_about(&map, ["rust-book/src/ch08-03-hash-maps.md"]));
        assert!(!is_about(
            &map,
            ["rust-book/src/ch08-01-vectors.md", "hash of a map"]
        ));
        // An answer that is the name alone names no member.
        let puny = scope("Which punycode method converts a Punycode string?").unwrap();
        assert!(names_only(&puny, "Punycode"));
        assert!(names_only(&puny, "`punycode`"));
        assert!(!names_only(&puny, "punycode.decode"));
        assert!(!names_only(&puny, ""));
        // A name inside another identifier is not there; one written with underscores is.
        let signal = scope("Which signal function sets the handler for a signal?").unwrap();
        assert!(!is_about(
            &signal,
            ["library/subprocess.html", "Popen.send_signal"]
        ));
        assert!(is_about(&signal, ["library/signal.html", "signal.signal"]));
        let crypto = scope("Which crypto method creates an ECDH key exchange object?").unwrap();
        assert!(!is_about(
            &crypto,
            ["api/errors.html", "ERR_CRYPTO_ECDH_INVALID_PUBLIC_KEY"]
        ));
        assert!(is_about(&map, ["std/collections/hash_map/index.html"]));
        // The answer itself may carry the name: `git shortlog`.
        let git = scope("Which git command shows who has committed to a directory?").unwrap();
        assert!(is_about(
            &git,
            ["getting-started.md", "Experts", "git shortlog"]
        ));
    }

    #[test]
    fn a_question_naming_a_work_is_scoped_to_it() {
        let names: Vec<String> = ["rust-book/src", "rust-reference/src", "rustc-dev-guide/src"]
            .map(String::from)
            .to_vec();
        let named = |q: &str| source_named(q, &names).map(|n| (n.source, n.question));
        assert_eq!(
            named("In the Rust Book, what is a crate?"),
            Some((0, "What is a crate?".into()))
        );
        assert_eq!(
            named("What is a crate according to the Reference?"),
            Some((1, "What is a crate?".into()))
        );
        assert_eq!(
            named("What does the Reference say about the never type?"),
            Some((1, "What does say about the never type?".into()))
        );
        assert_eq!(
            named("How is a query defined in the rustc dev guide?"),
            Some((2, "How is a query defined?".into()))
        );
        assert_eq!(
            named("What is the Book's definition of a slice?"),
            Some((0, "What is definition of a slice?".into()))
        );
        // Not as the place to look, not a word shared by two names, not lowercase.
        for q in [
            "What is the Rust Reference?",
            "What is Rust?",
            "What is a reference?",
            "Where is the reference to a value stored?",
            "Which book explains ownership?",
            "What is the purpose of the Rust.lock file in the Reference_Guide?",
        ] {
            assert_eq!(named(q), None, "{q}");
        }
        assert_eq!(
            source_named("In the Book, what is a crate?", &names[..1]),
            None
        );
    }

    #[test]
    fn no_question_of_the_sets_names_a_source() {
        // Their documents' sources, and others; the questions name none as the place to look
        // ("Cargo.toml" is a file, not the Cargo Book).
        let names: Vec<String> = [
            "rust-book/src",
            "rust-reference/src",
            "rustc-dev-guide/src",
            "cargo-book",
            "python3.11/html",
            "nodejs",
        ]
        .map(String::from)
        .to_vec();
        let root = concat!(env!("CARGO_MANIFEST_DIR"), "/../eval");
        let mut asked = 0;
        for set in std::fs::read_dir(root).unwrap() {
            let path = set.unwrap().path().join("questions.jsonl");
            let Ok(text) = std::fs::read_to_string(&path) else {
                continue;
            };
            for line in text.lines() {
                let v: serde_json::Value = serde_json::from_str(line).unwrap();
                let q = v["question"].as_str().unwrap();
                asked += 1;
                assert_eq!(source_named(q, &names), None, "{q}");
            }
        }
        assert!(asked > 700, "{asked}");
    }
}
