//! Content words for lexical overlap: lowercase, stopwords out, a light plural stem.
//!
//! Used to score sentences against a question (context assembly) and answer sentences against
//! sources (citations). Deliberately simple and predictable: a claim is supported when the words
//! that carry its content appear in a passage.

/// English function words that carry no content of their own.
const STOPWORDS: &[&str] = &[
    "a", "about", "after", "all", "also", "an", "and", "any", "are", "as", "at", "be", "been",
    "before", "being", "but", "by", "can", "could", "did", "do", "does", "doing", "done", "during",
    "each", "for", "from", "had", "has", "have", "having", "he", "her", "here", "hers", "him",
    "his", "how", "i", "if", "in", "into", "is", "it", "its", "itself", "just", "may", "me",
    "might", "more", "most", "much", "must", "my", "no", "nor", "not", "of", "off", "on", "once",
    "one", "only", "or", "other", "our", "out", "over", "own", "same", "shall", "she", "should",
    "so", "some", "such", "than", "that", "the", "their", "theirs", "them", "then", "there",
    "these", "they", "this", "those", "through", "to", "too", "under", "until", "up", "upon", "us",
    "very", "was", "we", "were", "what", "when", "where", "which", "while", "who", "whom", "whose",
    "why", "will", "with", "would", "you", "your", "yours",
];

/// Whether a lowercase word is a stopword.
#[must_use]
pub fn is_stopword(word: &str) -> bool {
    STOPWORDS.binary_search(&word).is_ok()
}

/// Number words, as digits: `six` and `6` are the same claim.
const NUMBER_WORDS: &[&str] = &[
    "zero",
    "one",
    "two",
    "three",
    "four",
    "five",
    "six",
    "seven",
    "eight",
    "nine",
    "ten",
    "eleven",
    "twelve",
    "thirteen",
    "fourteen",
    "fifteen",
    "sixteen",
    "seventeen",
    "eighteen",
    "nineteen",
    "twenty",
];

/// Whether `question` asks for a time: it begins "When…", or asks what year, date or month
/// ("In what year…", "On which date…"). Not "When many people are arrested, what…" (a clause,
/// then the question).
#[must_use]
pub fn asks_when(question: &str) -> bool {
    let words: Vec<String> = spanned_words(question)
        .into_iter()
        .map(|(w, _)| w)
        .collect();
    let first_clause = question.split(',').next().unwrap_or(question);
    let begins =
        words.first().is_some_and(|w| w == "when") && first_clause.trim_end().ends_with('?');
    begins
        || words.windows(2).any(|w| {
            matches!(w[0].as_str(), "what" | "which")
                && matches!(
                    w[1].as_str(),
                    "year" | "date" | "month" | "day" | "century" | "decade"
                )
        })
}

/// Whether `text` holds a date: a year (1000–2099) or a month's name before or after a number
/// ("August 2020", "May 18, 1756", "18 May").
#[must_use]
pub fn has_date(text: &str) -> bool {
    const MONTHS: &[&str] = &[
        "january",
        "february",
        "march",
        "april",
        "may",
        "june",
        "july",
        "august",
        "september",
        "october",
        "november",
        "december",
    ];
    let words = spanned_words(text);
    let year = |w: &str| w.len() == 4 && w.parse::<u32>().is_ok_and(|y| (1000..2100).contains(&y));
    let number = |w: &str| w.chars().all(|c| c.is_ascii_digit()) && !w.is_empty();
    words.iter().enumerate().any(|(i, (w, _))| {
        year(w)
            || (MONTHS.contains(&w.as_str())
                && [i.checked_sub(1), Some(i + 1)]
                    .into_iter()
                    .flatten()
                    .any(|j| words.get(j).is_some_and(|(n, _)| number(n))))
    })
}

/// Whether `question` asks for a count ("How many lanes are there?", "…took how many teams…").
#[must_use]
pub fn asks_how_many(question: &str) -> bool {
    let words: Vec<String> = spanned_words(question)
        .into_iter()
        .map(|(w, _)| w)
        .collect();
    words.windows(2).any(|w| w[0] == "how" && w[1] == "many")
}

/// Whether `question` asks for several things, which a list may answer whole: "What are the
/// rules of ownership?", "Who are the authors…?", "Which traits does a closure implement…?",
/// "What three kinds of…", "List the…". Not "What are closures?" (what one thing is, in the
/// plural), nor a count ([`asks_how_many`]) or a name ([`asks_for_name`]).
#[must_use]
pub fn asks_for_several(question: &str) -> bool {
    // Words that end in s without being plural nouns.
    const NOT_PLURAL: &[&str] = &[
        "is",
        "was",
        "has",
        "does",
        "this",
        "its",
        "his",
        "hers",
        "yours",
        "ours",
        "theirs",
        "always",
        "sometimes",
        "perhaps",
        "unless",
        "whereas",
        "thus",
        "plus",
        "versus",
        "less",
        "across",
        "status",
        "bus",
        "process",
        "class",
        "access",
        "address",
        "alias",
        "analysis",
        "basis",
        "series",
        "species",
    ];
    // Verbs that may follow "what" and end in neither -s nor -ed.
    const AUXILIARIES: &[&str] = &[
        "do", "did", "can", "could", "should", "must", "will", "would", "may", "might", "shall",
        "have", "had", "are", "were", "make", "made", "cause", "happen", "went", "came", "took",
        "gave", "led", "kept", "let", "set", "put", "got", "became", "began", "brought", "caught",
        "drove", "felt", "found", "held", "left", "lost", "meant", "met", "paid", "ran", "said",
        "saw", "sent", "sold", "stood", "told", "thought", "won", "wrote", "built", "knew",
    ];
    // What follows a plural noun rather than a verb.
    const FOLLOWS_A_NOUN: &[&str] = &[
        "do", "does", "did", "are", "were", "can", "could", "should", "must", "will", "would",
        "may", "might", "have", "has", "of", "that",
    ];
    // What follows a verb rather than a plural noun.
    const FOLLOWS_A_VERB: &[&str] = &[
        "the", "a", "an", "more", "less", "most", "least", "fewer", "better", "best", "this",
        "that", "these", "those", "it", "its", "their", "no", "any", "all", "every", "each",
        "both", "in", "on", "at", "to", "from", "up", "out", "first", "faster", "with", "for",
        "by", "into", "over", "about",
    ];
    if asks_how_many(question) || asks_for_name(question) {
        return false;
    }
    let q = question.trim().trim_end_matches('?').trim().to_lowercase();
    let mut words: Vec<&str> = q
        .split_whitespace()
        .map(|w| w.trim_matches(|c: char| !c.is_alphanumeric()))
        .collect();
    // "In which situations…", "For what reasons…".
    if let Some("in" | "on" | "for" | "at" | "under" | "from" | "with" | "to" | "by") =
        words.first().copied()
    {
        words.remove(0);
    }
    let plural = |w: &str| {
        w.len() > 3
            && w.ends_with('s')
            && !w.ends_with("ss")
            && !w.ends_with("us")
            && !w.ends_with("is")
            && !w.ends_with('\'')
            && !NOT_PLURAL.contains(&w)
    };
    let counted = |w: &str| NUMBER_WORDS.contains(&w) || w.parse::<u32>().is_ok();
    // A word between "what" and a plural noun that is not a verb: a verb there ends in -s or
    // -ed, or is an auxiliary.
    let modifies = |w: &str| {
        w.chars().all(char::is_alphabetic)
            && !w.ends_with('s')
            && !w.ends_with("ed")
            && !AUXILIARIES.contains(&w)
    };
    match words.as_slice() {
        // "List the…"; "What are the rules…", "Who were the authors…", "Which are some…": the
        // article (or a count) is what tells a list from "What are closures?".
        ["list" | "name" | "enumerate", "the" | "all", ..]
        | ["what" | "which" | "who", "are" | "were", "the" | "some" | "all" | "its" | "their", ..] => {
            true
        }
        ["what" | "which" | "who", "are" | "were", n, ..] if counted(n) => true,
        // "Which traits does…", "What kinds of…", "Which two methods are…", "What file
        // formats does…": a plural noun, then what follows a noun rather than a verb ("What
        // happens when…"); the word before it a count or a modifier, not a verb ("What
        // causes errors that…", "What can files do…"), and after a modifier not "that" or "of",
        // which follow a verb in -s as well ("Which attribute checks that…").
        ["what" | "which", w, next, ..] | ["what" | "which", _, w, next, ..]
            if plural(w) && FOLLOWS_A_NOUN.contains(next) =>
        {
            words[1] == *w
                || counted(words[1])
                || (modifies(words[1]) && !matches!(*next, "that" | "of"))
        }
        // "Which types implement the…", "Which crates depend on…": a verb seldom follows
        // "which" ("What makes…" is a verb, hence the word after the noun above); a plural
        // noun's verb does not end in -s, nor is it a word that follows a verb ("Which uses
        // more memory…"), and what follows it does ("Which collections type is…", "Which
        // statistics function returns…" name one thing).
        ["which", w, verb, after, ..]
            if plural(w)
                && !verb.ends_with('s')
                && !FOLLOWS_A_VERB.contains(verb)
                && FOLLOWS_A_VERB.contains(after) =>
        {
            true
        }
        _ => false,
    }
}

/// Whether `answer` gives an amount, as an answer to [`asks_how_many`] must: a digit, a number
/// word ("three", "thirty", "a dozen", "hundreds"), or none at all ("none", "no", "zero"). "Many"
/// or "several" do not.
#[must_use]
pub fn gives_amount(answer: &str) -> bool {
    const AMOUNTS: &[&str] = &[
        "no",
        "none",
        "single",
        "once",
        "twice",
        "thrice",
        "both",
        "pair",
        "couple",
        "half",
        "dozen",
        "dozens",
        "thirty",
        "forty",
        "fifty",
        "sixty",
        "seventy",
        "eighty",
        "ninety",
        "hundred",
        "hundreds",
        "thousand",
        "thousands",
        "million",
        "millions",
        "billion",
        "billions",
        "infinite",
        "unlimited",
        "any",
    ];
    answer.chars().any(|c| c.is_ascii_digit())
        || spanned_words(answer)
            .iter()
            .any(|(w, _)| NUMBER_WORDS.contains(&w.as_str()) || AMOUNTS.contains(&w.as_str()))
}

/// Whether a lowercase word is a number word (`three`) or an ordinal one (`third`).
#[must_use]
pub fn is_number_word(word: &str) -> bool {
    NUMBER_WORDS.contains(&word) || ORDINAL_WORDS.contains(&word)
}

/// Ordinal words, first to twentieth, read as `1st` … `20th` so that they match the written
/// form: "nineteenth century" supports "19th century".
const ORDINAL_WORDS: [&str; 20] = [
    "first",
    "second",
    "third",
    "fourth",
    "fifth",
    "sixth",
    "seventh",
    "eighth",
    "ninth",
    "tenth",
    "eleventh",
    "twelfth",
    "thirteenth",
    "fourteenth",
    "fifteenth",
    "sixteenth",
    "seventeenth",
    "eighteenth",
    "nineteenth",
    "twentieth",
];

/// Longest prefix kept of a word: a crude stem under which `climate`/`climatic`,
/// `condition`/`conditions` and `acquire`/`acquired` meet.
const STEM_CHARS: usize = 6;

/// A light stem: possessive and plural endings off, number words as digits, then at most
/// [`STEM_CHARS`] characters. Numbers are kept whole.
fn stem(word: &str) -> String {
    let w = word.strip_suffix("'s").unwrap_or(word);
    if w.bytes().any(|b| b.is_ascii_digit()) {
        return w.to_owned();
    }
    if let Some(n) = NUMBER_WORDS.iter().position(|n| *n == w) {
        return n.to_string();
    }
    if let Some(i) = ORDINAL_WORDS.iter().position(|o| *o == w) {
        let n = i + 1;
        let suffix = match n {
            1 => "st",
            2 => "nd",
            3 => "rd",
            _ => "th",
        };
        return format!("{n}{suffix}");
    }
    let plural = plural_stem(w);
    match plural.char_indices().nth(STEM_CHARS) {
        Some((at, _)) => plural[..at].to_owned(),
        None => plural,
    }
}

fn plural_stem(w: &str) -> String {
    if let Some(s) = w.strip_suffix("ies") {
        if s.len() >= 2 {
            return format!("{s}y");
        }
    }
    if let Some(s) = w.strip_suffix("es") {
        if s.len() >= 3 && (s.ends_with("ch") || s.ends_with("sh") || s.ends_with('x')) {
            return s.to_owned();
        }
    }
    if let Some(s) = w.strip_suffix('s') {
        if s.len() >= 3 && !s.ends_with('s') && !s.ends_with('u') && !s.ends_with('i') {
            return s.to_owned();
        }
    }
    w.to_owned()
}

/// The content terms of a text, in order (duplicates kept).
///
/// Words are runs of letters and digits (an apostrophe inside a word is kept); numbers lose
/// their thousands separators, so `1,500` and `1500` match.
#[must_use]
pub fn terms(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut word = String::new();
    let chars: Vec<char> = text.chars().collect();
    let flush = |word: &mut String, out: &mut Vec<String>| {
        if !word.is_empty() {
            let w = word.trim_matches('\'').to_lowercase();
            if !w.is_empty() && !is_stopword(&w) {
                out.push(stem(&w));
            }
            word.clear();
        }
    };
    for (i, &c) in chars.iter().enumerate() {
        let between = |pred: fn(char) -> bool| {
            i > 0 && i + 1 < chars.len() && pred(chars[i - 1]) && pred(chars[i + 1])
        };
        if c.is_alphanumeric() {
            word.push(c);
        } else if (c == '\'' || c == '’') && between(char::is_alphanumeric) {
            word.push('\'');
        } else if (c == ',' || c == '.') && between(|d| d.is_ascii_digit()) {
            // 1,500 → 1500; 3.5 stays one number.
            if c == '.' {
                word.push('.');
            }
        } else {
            flush(&mut word, &mut out);
        }
    }
    flush(&mut word, &mut out);
    out
}

/// The largest share of the question's distinct content terms that one of `texts` contains
/// (0 when the question has none): how much of what was asked any one passage talks about.
#[must_use]
pub fn coverage<'a>(question: &str, texts: impl IntoIterator<Item = &'a str>) -> f32 {
    let asked: std::collections::HashSet<String> = terms(question).into_iter().collect();
    if asked.is_empty() {
        return 0.0;
    }
    texts
        .into_iter()
        .map(|text| {
            let there: std::collections::HashSet<String> = terms(text).into_iter().collect();
            asked.iter().filter(|t| there.contains(*t)).count() as f32 / asked.len() as f32
        })
        .fold(0.0, f32::max)
}

/// The names in a question — capitalised words other than its first — that none of `texts`
/// contains (compared as [`terms`]). A knowledge base none of whose closest passages names
/// what the question names is unlikely to hold the answer, however close the rest of the
/// wording.
#[must_use]
pub fn missing_names<'a>(question: &str, texts: impl IntoIterator<Item = &'a str>) -> Vec<String> {
    let names: Vec<String> = question
        .split(|c: char| c.is_whitespace() || c == '"' || c == '(' || c == ')')
        .skip(1)
        .filter(|w| w.chars().next().is_some_and(char::is_uppercase))
        .flat_map(terms)
        .filter(|t| t.chars().count() >= 3 && !is_number(t))
        .collect();
    if names.is_empty() {
        return names;
    }
    let mut seen = std::collections::HashSet::new();
    for text in texts {
        seen.extend(terms(text));
    }
    let mut missing: Vec<String> = names.into_iter().filter(|n| !seen.contains(n)).collect();
    missing.dedup();
    missing
}

/// Whether a term is a number (its digits must match exactly to count as support).
#[must_use]
pub fn is_number(term: &str) -> bool {
    term.bytes().any(|b| b.is_ascii_digit())
}

/// Whether a text with no content words still states something checkable: a symbol or
/// a number (`?`, `..=`, `#!`), or a number word the stop list drops (`one`). Technical
/// documentation answers in operators and sigils; a quote of those is an answer, where a quote
/// of only function words (`It`, `Some`) is not. Backticks and quotation marks around the text
/// are formatting, not symbols.
#[must_use]
pub fn is_literal(text: &str) -> bool {
    let t = text
        .trim()
        .trim_matches(|c: char| c == '`' || c == '"' || c == '“' || c == '”' || c.is_whitespace());
    if t.is_empty() || !terms(t).is_empty() {
        return false;
    }
    t.chars().any(|c| !c.is_alphabetic() && !c.is_whitespace())
        || NUMBER_WORDS.contains(&t.to_lowercase().as_str())
}

/// What a question asks of the term it is about ([`Subject`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Asks {
    /// What it is: "What is a closure?", "What does MIR stand for?", "Define shadowing".
    Is,
    /// What it does or is for: "What does the move keyword do?", "What is pub use used
    /// for?", "What is the purpose of the Cargo.lock file?".
    Does,
}

/// The term a question asks about and what it asks of it ([`subject`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Subject {
    /// The term, lowercase and without its article: "smart pointer", "move keyword".
    pub term: String,
    /// What the question asks of it.
    pub asks: Asks,
}

/// The term a question asks about, when it asks what the term is (`What is a smart pointer?`,
/// `What are closures?`, `What's a slice?`, `What does MIR stand for?` (or `What is MIR short
/// for?`), `What does PEP mean?`,
/// `Define shadowing`) or what it does (`What does the move keyword do?`, `What is pub use used
/// for?`, `What is the purpose of Cargo.lock?`, `What is the inline attribute for?`): `None` for
/// any other question. Kept to short subjects (at most six words), which is how such questions
/// are asked; not "What is X called?", which asks for a name.
#[must_use]
pub fn subject(question: &str) -> Option<Subject> {
    let q = question.trim().trim_end_matches('?').trim().to_lowercase();
    let mut words: Vec<&str> = q.split_whitespace().collect();
    // "What's a closure?" as typed.
    if let Some("what's" | "what’s" | "whats") = words.first().copied() {
        words.splice(0..1, ["what", "is"]);
    }
    let (subject, asks): (&[&str], Asks) = match words.as_slice() {
        ["what", "is" | "are", "the", "purpose" | "point" | "role" | "job", "of", rest @ ..] => {
            (rest, Asks::Does)
        }
        // "What is MIR short for?" asks what the letters stand for.
        ["what", "is" | "are", rest @ .., "short", "for"] => (rest, Asks::Is),
        // "What is the keyword used for declaring constants?" asks for a name.
        ["what", "is" | "are", rest @ ..] if names_a_use(rest) => return None,
        ["what", "is" | "are", rest @ ..] if used_for(rest).is_some() => {
            (used_for(rest).unwrap_or(rest), Asks::Does)
        }
        ["what", "does" | "do", rest @ .., "do"] => (rest, Asks::Does),
        ["define", rest @ ..]
        | ["what", "is" | "are" | "was" | "were", rest @ ..]
        | ["what", "does" | "do", rest @ .., "stand", "for"]
        | ["what", "does" | "do", rest @ .., "mean"] => (rest, Asks::Is),
        _ => return None,
    };
    let subject = match subject {
        // "What is X called?" asks for a name, not what X is; "What is the difference
        // between X and Y?" how they differ ([`explains`]), and "What is the reason for X?" why.
        s if ends_naming(s) => return None,
        ["the", "difference" | "differences" | "reason" | "reasons", ..]
        | ["difference" | "differences" | "reason" | "reasons", ..] => return None,
        ["a" | "an" | "the", rest @ ..] => rest,
        s => s,
    };
    (1..=6).contains(&subject.len()).then(|| Subject {
        term: subject.join(" "),
        asks,
    })
}

/// The subject of a question asking what something is for, up to "used for" (or a closing
/// "for": "What is Cargo.lock for?"); the words after "used for" ("… used for in a use
/// declaration") narrow the question, not the subject. `None` when `rest` does not say "for".
fn used_for<'a, 'b>(rest: &'b [&'a str]) -> Option<&'b [&'a str]> {
    if let Some(at) = rest.windows(2).position(|w| w == ["used", "for"]) {
        return Some(&rest[..at]);
    }
    match rest {
        [subject @ .., "for"] if !subject.is_empty() => Some(subject),
        _ => None,
    }
}

/// Whether "used for" goes on with what the thing is used for ("the keyword used for declaring
/// constants"), as a question for a name does, rather than where ("… used for in a use
/// declaration").
fn names_a_use(rest: &[&str]) -> bool {
    rest.windows(3).any(|w| {
        w[..2] == ["used", "for"]
            && !matches!(
                w[2],
                "in" | "on" | "with" | "within" | "inside" | "by" | "when"
            )
    })
}

/// The words of `question` that say what it is about, for measuring how much of it a passage
/// holds: for a question in a form [`subject`] knows that has words of its own ("What does
/// NLL stand for?", "What is the purpose of the Cargo.lock file?"), its subject ("nll",
/// "cargo.lock file"), since the form's words ("stand", "purpose") are not what a passage
/// about it must say; otherwise, a plain "What is X?" among them, the whole question.
#[must_use]
pub fn asked(question: &str) -> std::borrow::Cow<'_, str> {
    const PLAIN: &[&str] = &[
        "what", "what's", "what’s", "whats", "is", "are", "was", "were", "a", "an", "the",
    ];
    let Some(s) = subject(question) else {
        return std::borrow::Cow::Borrowed(question);
    };
    let lower = question.trim().trim_end_matches('?').to_lowercase();
    let form: Vec<&str> = lower
        .split_whitespace()
        .filter(|w| !PLAIN.contains(w))
        .collect();
    let term: Vec<&str> = s
        .term
        .split_whitespace()
        .filter(|w| !PLAIN.contains(w))
        .collect();
    if form == term {
        std::borrow::Cow::Borrowed(question)
    } else {
        std::borrow::Cow::Owned(s.term)
    }
}

/// The term a question asking what something is asks about ([`subject`] with [`Asks::Is`]),
/// lowercase and without its article: `None` for any other question.
#[must_use]
pub fn defined_subject(question: &str) -> Option<String> {
    subject(question)
        .filter(|s| s.asks == Asks::Is)
        .map(|s| s.term)
}

/// What a question asks to have explained ([`explains`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Explains {
    /// A reason: "Why are variables immutable by default?", "What is the reason for X?".
    Why,
    /// A way or a mechanism: "How does deref coercion work?", "How is a trait object laid
    /// out?"; not an amount ("How many…", "How long…").
    How,
    /// A task the asker wants to carry out: "How do I run one test?", "How can we see the
    /// output?", "How to vendor dependencies?". Answered by what to do: a command, a setting,
    /// the code to write.
    Task,
    /// How two things differ: "What is the difference between iter and into_iter?", "How is
    /// shadowing different from mut?", "How do inner and outer attributes differ?".
    Difference,
}

/// The verb after "how" in a question asking how to do something ("How can I…").
const TASK_VERBS: &[&str] = &[
    "do", "can", "could", "should", "would", "may", "might", "shall",
];

/// Who asks how to do something: "How do *I*…", "How can *we*…".
const TASK_ASKERS: &[&str] = &["i", "you", "we", "one"];

/// Words after "how" that ask for an amount, not a way.
const HOW_AMOUNT: &[&str] = &[
    "big",
    "deep",
    "early",
    "far",
    "fast",
    "few",
    "frequently",
    "heavy",
    "high",
    "large",
    "late",
    "long",
    "many",
    "much",
    "often",
    "old",
    "short",
    "small",
    "soon",
    "tall",
    "wide",
];

/// A question lowercased, its typographic apostrophes made plain ("why’s" → "why's"), for
/// [`question_words_of`].
fn lowered(question: &str) -> String {
    question.trim().to_lowercase().replace('’', "'")
}

/// The words of a [`lowered`] question: letters, digits and apostrophes ("doesn't" is one).
fn question_words_of(q: &str) -> Vec<&str> {
    q.split(|c: char| !(c.is_alphanumeric() || c == '\''))
        .filter(|w| !w.is_empty())
        .collect()
}

/// What a question asks to have explained — a reason, a way, a task or a difference — or
/// `None` for a question that asks for a fact, a name or an amount. Such questions are answered by a
/// sentence, not a name, and a quote of the question's own words ("lazy" for "Why are
/// iterator adapters lazy?") answers none of them ([`restatement`]).
#[must_use]
pub fn explains(question: &str) -> Option<Explains> {
    let q = lowered(question);
    let words = question_words_of(&q);
    let differs = words.windows(2).any(|w| {
        matches!(
            w,
            ["difference" | "differences", "between"]
                | ["differ" | "differs" | "different" | "differently", "from"]
        )
    }) || matches!(words.last(), Some(&("differ" | "different")));
    let reason = words.first().is_some_and(|w| w.starts_with("what"))
        && words.windows(2).any(|w| {
            matches!(
                w,
                ["reason" | "reasons", "for" | "why" | "that"] | ["what", "reason"]
            )
        });
    match words.as_slice() {
        _ if differs => Some(Explains::Difference),
        _ if reason => Some(Explains::Why),
        ["why" | "why's", ..] | ["how", "come", ..] => Some(Explains::Why),
        ["how", "to", ..] => Some(Explains::Task),
        ["how", verb, asker, ..] if TASK_VERBS.contains(verb) && TASK_ASKERS.contains(asker) => {
            Some(Explains::Task)
        }
        ["how", next, ..] if !HOW_AMOUNT.contains(next) => Some(Explains::How),
        _ => None,
    }
}

/// Verbs a yes-or-no question begins with ([`polar`]).
const AUXILIARIES: &[&str] = &[
    "am",
    "are",
    "aren't",
    "can",
    "can't",
    "cannot",
    "could",
    "couldn't",
    "did",
    "didn't",
    "do",
    "does",
    "doesn't",
    "don't",
    "had",
    "has",
    "hasn't",
    "have",
    "haven't",
    "is",
    "isn't",
    "may",
    "might",
    "must",
    "should",
    "shouldn't",
    "was",
    "wasn't",
    "were",
    "weren't",
    "will",
    "won't",
    "would",
    "wouldn't",
];

/// Whether a question asks to be answered yes or no: it begins with an auxiliary verb ("Is a
/// data race undefined behavior?", "Can main return a Result?", "Does Rust have exceptions?")
/// and offers no choice ("Is union a strict keyword or a weak keyword?" is answered by naming
/// one, so it is not: an "or" among its last five words, or one that begins a second
/// question).
#[must_use]
pub fn polar(question: &str) -> bool {
    let q = lowered(question);
    let words = question_words_of(&q);
    // A choice offers its last option in the question's last few words ("… or a weak
    // keyword?"); "or" earlier joins words inside the question ("Is reading from or writing to
    // a mutable static unsafe?"), and "or not" asks yes or no all the same.
    // So does an "or" that begins a second question ("… or did they remain black and white?").
    let choice = words.iter().enumerate().any(|(i, &w)| {
        let next = words.get(i + 1);
        (w == "or"
            && next != Some(&"not")
            && (words.len() - i <= 5 || next.is_some_and(|n| AUXILIARIES.contains(n))))
            || w == "whether"
    });
    words.len() > 2 && AUXILIARIES.contains(&words[0]) && !choice
}

/// Whether an answer is made of the question's own words and nothing else (function words,
/// words of one or two letters and punctuation aside): "unit tests and integration tests" for
/// "What is the difference between unit tests and integration tests?", "future" for "What do
/// other languages sometimes call a future?".
#[must_use]
pub fn echoes(question: &str, answer: &str) -> bool {
    let asked = word_tokens(question);
    let answer = word_tokens(answer);
    let mut words = words_of(&answer)
        .filter(|w| w.chars().count() > 2 && !is_stopword(w))
        .peekable();
    words.peek().is_some()
        && words.all(|w| {
            asked
                .iter()
                .any(|a| singular(a) == singular(w) || same_word(a, w))
        })
}

/// How an answer to a question asking what something is or does ([`subject`]) begins.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Restatement {
    /// It does not begin with the subject (or the question is not of that kind).
    No,
    /// It is the subject again and nothing else (its article, markup, case, a plural `s` and
    /// an abbreviation in brackets aside; asked what it does, its kind too: "The `rustfmt`
    /// tool"), some of the subject's words and nothing else ("move" for "the move keyword",
    /// "expansion" for "macro expansion"), or the subject's initials (`PEP` for "policy
    /// enforcement point"): it names the thing asked about instead of saying what it is.
    /// Asked why, how or how two things differ: the question's own words again ("lazy" for
    /// "Why are iterator adapters lazy?").
    Whole,
    /// The subject, then what it is: `is`, `are`, `means`, `refers to`…, a colon or a dash, or
    /// a comma and an apposition ("Closures, a function-like construct…", "…, which is…");
    /// asked what it does, the subject and anything at all after it.
    Defines,
    /// The subject, then something else ("a closure that moves captured values…"): a quote
    /// from a place that mentions the thing, not one that says what it is.
    Aside,
}

/// Words that, right after the subject, begin saying what it is.
const DEFINING: &[&str] = &[
    "is",
    "are",
    "was",
    "were",
    "means",
    "mean",
    "refers",
    "refer",
    "denotes",
    "describes",
    "represents",
    "stands",
];

/// The kinds of thing a question about a tool or a language's feature names after it ("the
/// `inline` attribute", "the `rustfmt` tool"): a passage may name the kind where the question
/// did not.
const KINDS: &[&str] = &[
    "annotation",
    "attribute",
    "command",
    "crate",
    "flag",
    "function",
    "keyword",
    "macro",
    "method",
    "module",
    "operator",
    "option",
    "tool",
    "trait",
    "type",
];

/// Whether a word names a kind of thing ([`KINDS`]), plurals aside.
pub(crate) fn is_kind(word: &str) -> bool {
    KINDS.contains(&singular(word))
}

/// Whether a term's last word names its kind ([`KINDS`]): "move keyword".
fn ends_in_kind(term: &[String]) -> bool {
    term.last().is_some_and(|w| is_kind(w))
}

/// Words that, after the subject and a comma, begin saying what it is.
const APPOSITIVE: &[&str] = &["a", "an", "the", "which", "also", "or", "short", "one"];

/// Words (letters, digits, `-`, `'`) and punctuation marks of `s`, lowercase; markup (`_`,
/// backticks, `*`, quotation marks) and whitespace dropped.
fn word_tokens(s: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    let mut word = String::new();
    for c in s.to_lowercase().chars() {
        if c.is_alphanumeric() || c == '-' || c == '\'' {
            word.push(c);
            continue;
        }
        if !word.is_empty() {
            out.push(std::mem::take(&mut word));
        }
        if !c.is_whitespace() && !matches!(c, '_' | '`' | '*' | '"' | '“' | '”') {
            out.push(c.to_string());
        }
    }
    if !word.is_empty() {
        out.push(word);
    }
    out
}

/// A word without a plural `s` (kept on words of three letters or fewer: `is`, `was`).
fn singular(w: &str) -> &str {
    w.strip_suffix('s').filter(|r| r.len() > 2).unwrap_or(w)
}

/// Whether words end by asking for a name: "… called", "… named", "… termed", "… known as".
fn ends_naming(words: &[&str]) -> bool {
    matches!(
        words,
        [.., "called" | "named" | "termed"] | [.., "known", "as"]
    )
}

/// Whether a question asks what something is called: "What is a set of packages that share
/// one Cargo.lock called?", "What do other languages call a future?", "What is the term for…",
/// "What is the name of…". Its answer is a name the question does not already use
/// ([`echoes`]). Not "Which functions may be called from const contexts?", where "called" is
/// about calls.
#[must_use]
pub fn asks_for_name(question: &str) -> bool {
    let q = question.trim().trim_end_matches('?').trim().to_lowercase();
    let words: Vec<&str> = q.split_whitespace().collect();
    let ends_naming = ends_naming(&words);
    let asks_what_they_call = matches!(
        words.as_slice(),
        ["what", "do" | "does" | "did" | "would" | "should", ..]
    ) && words.contains(&"call");
    let term_for = words.windows(2).any(|w| {
        matches!(
            w,
            ["term" | "name" | "word", "for"] | ["name", "of"] | ["is", "called"]
        )
    });
    ends_naming || asks_what_they_call || term_for
}

/// How `answer` begins, for a question asking what something is or does ([`Restatement`]);
/// for one asking why, how, or how two things differ ([`explains`]), whether it is only the
/// question's own words again (`Whole`, else `No`).
#[must_use]
pub fn restatement(question: &str, answer: &str) -> Restatement {
    let Some(Subject { term, asks }) = subject(question) else {
        // Asked for a reason, a way or a difference, the question's own words are no answer.
        if explains(question).is_some() && echoes(question, answer) {
            return Restatement::Whole;
        }
        return Restatement::No;
    };
    let subject = word_tokens(&term);
    let answer = word_tokens(answer);
    let mut rest: &[String] = match answer.first().map(String::as_str) {
        Some("a" | "an" | "the") => &answer[1..],
        _ => &answer,
    };
    // Some of the term's own words and nothing else: "expansion" for "macro expansion".
    let mut words = words_of(rest).peekable();
    if words.peek().is_some()
        && words
            .all(|w| w.chars().count() > 2 && subject.iter().any(|s| singular(s) == singular(w)))
    {
        return Restatement::Whole;
    }
    let initials: String = subject
        .iter()
        .flat_map(|w| w.split('-'))
        .filter_map(|w| w.chars().next())
        .collect();
    let begins_with = |term: &[String], rest: &[String]| {
        rest.len() >= term.len()
            && rest
                .iter()
                .zip(term)
                .all(|(a, s)| singular(a) == singular(s))
    };
    if begins_with(&subject, rest) {
        rest = &rest[subject.len()..];
    } else if initials.chars().count() >= 2 && rest.first().is_some_and(|w| singular(w) == initials)
    {
        rest = &rest[1..];
    } else {
        return Restatement::No;
    }
    // An abbreviation in brackets: "trust algorithm (TA)".
    if rest.first().is_some_and(|t| t == "(") {
        rest = match rest.iter().position(|t| t == ")") {
            Some(close) => &rest[close + 1..],
            None => &[],
        };
    }
    if asks == Asks::Does {
        // What kind of thing it is, when the question did not say: "The `rustfmt` tool".
        if rest.first().is_some_and(|w| is_kind(w)) && !ends_in_kind(&subject) {
            rest = &rest[1..];
        }
        // Asked what it does, whatever follows the name says something of it.
        return match rest {
            [] => Restatement::Whole,
            [p] if p == "." || p == ";" => Restatement::Whole,
            _ => Restatement::Defines,
        };
    }
    match rest.first().map(String::as_str) {
        None => Restatement::Whole,
        Some("." | ";") if rest.len() == 1 => Restatement::Whole,
        Some(":" | "—" | "–" | "-") => Restatement::Defines,
        // "Closures, a function-like construct…" says what they are; "raw pointers, immutable
        // means…" (from "With raw pointers, …") goes on to something else.
        Some(",") => match rest.get(1).map(String::as_str) {
            Some(w) if APPOSITIVE.contains(&w) => Restatement::Defines,
            _ => Restatement::Aside,
        },
        Some(w) if DEFINING.contains(&w) => Restatement::Defines,
        _ => Restatement::Aside,
    }
}

/// Whether the words right before `tokens[at]` introduce what follows by name ("…are called
/// associated functions", "a pattern known as interior mutability", "referred to as"), with
/// nothing but spaces and markup between.
fn naming(text: &str, tokens: &[(String, std::ops::Range<usize>)], at: usize) -> bool {
    let word = |i: usize| tokens[i].0.as_str();
    let named = match word(at - 1) {
        "called" | "named" | "termed" => true,
        "as" => at >= 2 && matches!(word(at - 2), "known" | "to"),
        _ => false,
    };
    let between = &text[tokens[at - 1].1.end..tokens[at].1.start];
    named
        && between
            .chars()
            .all(|c| c.is_whitespace() || matches!(c, '_' | '*'))
}

/// Whether a name ends where `rest` begins: at the end, at punctuation or markup, or before a
/// function word ("…called associated functions because…"), not before more of a longer name
/// ("called the *closure parameters*").
fn ends_phrase(rest: &str) -> bool {
    let rest = rest.trim_start_matches(['_', '*', '`']).trim_start();
    let next: String = rest
        .chars()
        .take_while(|c| c.is_alphanumeric())
        .collect::<String>()
        .to_lowercase();
    next.is_empty() || is_stopword(&next) || matches!(next.as_str(), "because" | "since")
}

/// How a passage introduces a term ([`introduction`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Introduction {
    /// A sentence (or a line) begins with it and says what it is: "A channel is…", "Rust's
    /// closures are…", "Policy enforcement point (PEP): …". Such a sentence may also only say
    /// something of it ("Closures are typically short").
    Begins,
    /// Set off as it is introduced (`_closures_`, `*trait object*`, `**Supertraits**`), or
    /// named by the sentence that says what it is ("…are called associated functions", "This
    /// set is called the prelude", "known as"): how documents mark the place a term is
    /// defined.
    Marked,
    /// An abbreviation spelled out ([`abbreviation`]): "Secure Software Development Framework
    /// (SSDF)", or "SSDF Secure Software Development Framework" in a list of abbreviations.
    /// The one place that says what the letters stand for, in a document that may use them on
    /// every page. `defines` when the sentence begins with the words spelled out and goes on
    /// to say what it is ("Policy enforcement point (PEP): This system…").
    SpelledOut {
        /// Whether the sentence goes on to say what it is.
        defines: bool,
    },
}

/// Whether and how `text` says what `subject` (a [`Subject`]'s term) is, or, asked what it
/// does, what it does ([`Introduction`]), the clearest way if it does in more than one place.
/// Plurals aside. A passage that only mentions the term ("Moving Captured Values Out of
/// Closures") gives `None`. Asked what it does, a sentence that begins with the term (and its
/// kind, "The `inline` attribute", when the question did not name it) and goes on with a verb
/// ("…suggests", "…can", "…lets") `Begins`; a term that is only its kind ("the `?` operator"
/// has no word but "operator") is never introduced.
#[must_use]
pub fn introduction(subject: &str, asks: Asks, text: &str) -> Option<Introduction> {
    let all = word_tokens(subject);
    let symbol = all.len() > words_of(&all).count();
    let subject: Vec<String> = words_of(&all).cloned().collect();
    if subject.is_empty() || (symbol && subject.iter().all(|w| is_kind(w))) {
        return None;
    }
    let kind_may_follow = asks == Asks::Does && !ends_in_kind(&subject);
    let tokens = spanned_words(text);
    let n = subject.len();
    (0..tokens.len().saturating_sub(n - 1))
        .filter(|&at| {
            tokens[at..at + n]
                .iter()
                .zip(&subject)
                .all(|((w, _), s)| same_word(w, s))
        })
        .filter_map(|at| {
            let mut to = at + n;
            if kind_may_follow && tokens.get(to).is_some_and(|(w, _)| is_kind(w)) {
                to += 1;
            }
            introduced(text, &tokens, at, to, asks)
        })
        .max()
}

/// Whether a passage opens a section titled with `subject` itself (as [`defined_subject`] gives
/// it): its last heading is the subject (an article, case, markup and plurals aside), and its
/// text begins with that heading, as the section's first passage does ("## Closures" and what
/// follows, for "What are closures?").
#[must_use]
pub fn titled(subject: &str, heading: &[String], text: &str) -> bool {
    let unarticled = |s: &str| -> Vec<String> {
        let mut w = words(s);
        if let Some("a" | "an" | "the") = w.first().map(String::as_str) {
            w.remove(0);
        }
        w
    };
    let Some(title) = heading.last() else {
        return false;
    };
    let (subject, title_words) = (unarticled(subject), unarticled(title));
    let same = !subject.is_empty()
        && subject.len() == title_words.len()
        && subject
            .iter()
            .zip(&title_words)
            .all(|(a, b)| same_word(a, b));
    let opens = text
        .trim_start_matches(|c: char| c == '#' || c.is_whitespace())
        .starts_with(title.trim());
    same && opens
}

/// The words of `s` as [`word_tokens`] gives them, punctuation marks left out.
fn words(s: &str) -> Vec<String> {
    words_of(&word_tokens(s)).cloned().collect()
}

/// The words among `tokens` ([`word_tokens`]), punctuation marks left out.
fn words_of(tokens: &[String]) -> impl Iterator<Item = &String> {
    tokens
        .iter()
        .filter(|w| w.chars().any(char::is_alphanumeric))
}

/// Whether two lowercase words are one, plurals aside (`box`/`boxes`, `library`/`libraries`).
fn same_word(a: &str, b: &str) -> bool {
    let stem = |w: &str| -> String {
        if let Some(r) = w.strip_suffix("ies").filter(|r| r.len() > 2) {
            format!("{r}y")
        } else if let Some(r) = w
            .strip_suffix("es")
            .filter(|r| r.ends_with(['x', 's', 'z']) || r.ends_with("ch") || r.ends_with("sh"))
        {
            r.to_owned()
        } else {
            singular(w).to_owned()
        }
    };
    a == b || stem(a) == stem(b)
}

/// How the subject at `tokens[from..to]` of `text` is introduced there, if it is.
fn introduced(
    text: &str,
    tokens: &[(String, std::ops::Range<usize>)],
    from: usize,
    to: usize,
    asks: Asks,
) -> Option<Introduction> {
    let (start, end) = (tokens[from].1.start, tokens[to - 1].1.end);
    if to == from + 1 {
        if let Some((defines, _)) = spelled_out(text, tokens, from) {
            return Some(Introduction::SpelledOut { defines });
        }
    }
    // Set off by emphasis on both sides, the opening mark not inside a word (`snake_case_name`).
    // Code marks and a link may stand inside the emphasis: "The *`inline` [attribute]*".
    let opening = text[..start].trim_end_matches(['`', '[']);
    let before = opening.chars().next_back();
    let after = after_link(text[end..].trim_start_matches(['`', ']']))
        .chars()
        .next();
    let mark = |c: Option<char>| matches!(c, Some('_' | '*'));
    if mark(before) && mark(after) {
        let outside = opening
            .trim_end_matches(['_', '*', '`'])
            .chars()
            .next_back();
        if !outside.is_some_and(char::is_alphanumeric) {
            return Some(Introduction::Marked);
        }
    }
    // An article or one possessive word may stand before it.
    let mut first = from;
    if first > 0 {
        let w = tokens[first - 1].0.as_str();
        if matches!(w, "a" | "an" | "the") || w.ends_with("'s") || w.ends_with("’s") {
            first -= 1;
        }
    }
    if first > 0 && naming(text, tokens, first) && ends_phrase(&text[end..]) {
        return Some(Introduction::Marked);
    }
    // Named, then said what it is in a clause of its own: "the Rust type `Rc<T>`, which is an
    // abbreviation for reference counting".
    let clause = text[end..].trim_start_matches(['`', '_', '*', '>', ']', ')']);
    if [
        ", which is ",
        ", which are ",
        ", which means ",
        ", which stands ",
    ]
    .iter()
    .any(|c| clause.starts_with(c))
    {
        return Some(Introduction::Marked);
    }
    // The start of a sentence or a line (a list's bullet and markup aside), with a capital
    // letter or a name in code ("`cargo check` builds…")…
    let head = &text[..tokens[first].1.start];
    let gap = head.trim_end_matches([' ', '\t', '_', '*', '"', '“', '•', '-', '+', '`', '[']);
    let starts = gap.is_empty() || gap.ends_with(['.', '!', '?', ':', '\n', '#', '>']);
    let capital = head.ends_with('`')
        || text[tokens[first].1.start..]
            .trim_start_matches(['_', '*'])
            .starts_with(char::is_uppercase);
    if !(starts && capital) {
        return None;
    }
    // …then what it is, after an abbreviation in brackets if one is given.
    let rest = text[end..].trim_start_matches('`');
    // "[MIR]: ./mir/index.md" is where a link's target is given, not a definition.
    if rest.starts_with("]:") {
        return None;
    }
    let mut rest = after_link(rest.trim_start_matches(']'))
        .trim_start_matches(['_', '*'])
        .trim_start();
    if rest.starts_with('(') {
        rest = rest.find(')').map_or("", |i| rest[i + 1..].trim_start());
    }
    if rest.starts_with([':', '—', '–']) {
        return Some(Introduction::Begins);
    }
    let next: String = rest
        .chars()
        .take_while(|c| c.is_alphabetic())
        .collect::<String>()
        .to_lowercase();
    let says = DEFINING.contains(&next.as_str()) || (asks == Asks::Does && acts(&next));
    says.then_some(Introduction::Begins)
}

/// Whether the abbreviation at `tokens[at]` of `text` (two to ten letters, two or more of them
/// capitals as written) is spelled out there: after the words whose initials it takes, in
/// brackets ("Secure Software Development Framework (SSDF)"), or before them, as a list of
/// abbreviations gives it ("SSDF Secure Software Development Framework", "PEP: policy
/// enforcement point"). Function words may stand between ("Department of Defense (DoD)") and a
/// hyphenated word gives the initial of each part ("Zero-Trust Architecture (ZTA)").
/// `Some(true)` when the sentence also begins with the words spelled out and goes on to say
/// what it is ("Policy enforcement point (PEP): This system is responsible…").
/// Also gives the byte range of the words spelled out.
fn spelled_out(
    text: &str,
    tokens: &[(String, std::ops::Range<usize>)],
    at: usize,
) -> Option<(bool, std::ops::Range<usize>)> {
    if !abbreviated(&text[tokens[at].1.clone()]) {
        return None;
    }
    // "ADTs", "ICEs": the plural's s is not an initial.
    let written = &text[tokens[at].1.clone()];
    let mut letters: Vec<char> = tokens[at].0.chars().collect();
    if written.ends_with('s') && written.len() > 2 {
        letters.pop();
    }
    let reach = 2 * letters.len() + 2;
    // The parts of hyphenated words, each with its word's index and whether the word is itself
    // an abbreviation ("IR" in "High-level IR (HIR)").
    let parts = |words: &mut dyn Iterator<Item = usize>, backwards: bool| {
        let mut out: Vec<(String, usize, bool)> = Vec::new();
        for i in words.take(reach) {
            let abbreviation = abbreviated(&text[tokens[i].1.clone()]);
            let mut p: Vec<(String, usize, bool)> = tokens[i]
                .0
                .split('-')
                .filter(|p| !p.is_empty())
                .map(|p| (p.to_owned(), i, abbreviation))
                .collect();
            if backwards {
                p.reverse();
            }
            out.extend(p);
        }
        out
    };
    // The index of the last word spelling out `wanted` (in the order the words are read:
    // backwards, the last letter first) if `parts` (nearest first) begin with words whose
    // initials are `wanted`: the nearest word gives one, an abbreviation gives its letters,
    // function words that give none are passed over, and so may be one other word ("High
    // Level Intermediate Representation (HIR)").
    let spells = |parts: &[(String, usize, bool)], wanted: &[char], backwards: bool| {
        let (mut at, mut passed, mut last) = (0, false, None);
        for (i, (part, word, abbreviation)) in parts.iter().enumerate() {
            let Some(&letter) = wanted.get(at) else {
                break;
            };
            let mut own: Vec<char> = part.chars().collect();
            if backwards {
                own.reverse();
            }
            if *abbreviation && own.len() < wanted.len() && wanted[at..].starts_with(&own) {
                at += own.len();
            } else if part.starts_with(letter) {
                at += 1;
            } else if i > 0 && is_stopword(part) {
                continue;
            } else if i > 0 && !passed {
                passed = true;
                continue;
            } else {
                return None;
            }
            last = Some(*word);
        }
        if at < wanted.len() {
            return None;
        }
        last
    };
    let backwards: Vec<char> = letters.iter().rev().copied().collect();
    let before = text[..tokens[at].1.start].trim_end();
    let after = text[tokens[at].1.end..].trim_start();
    if before.ends_with('(') && after.starts_with([')', ',', ';']) {
        let nearest = parts(&mut (0..at).rev(), true);
        if let Some(first) = spells(&nearest, &backwards, true) {
            let start = tokens[first].1.start;
            let head =
                text[..start].trim_end_matches([' ', '\t', '_', '*', '"', '“', '•', '-', '+']);
            let begins = (head.is_empty() || head.ends_with(['.', '!', '?', ':', '\n', '#', '>']))
                && text[start..].starts_with(char::is_uppercase);
            let rest = after.find(')').map_or("", |i| after[i + 1..].trim_start());
            let next: String = rest
                .chars()
                .take_while(|c| c.is_alphabetic())
                .collect::<String>()
                .to_lowercase();
            let says = rest.starts_with([':', '—', '–']) || DEFINING.contains(&next.as_str());
            return Some((begins && says, start..tokens[at - 1].1.end));
        }
    }
    // After it: a list's separator, a table's column, an HTML tag closing around it
    // (`<span id="lto">LTO</span> | Short for *link-time optimizations*`), "short for" or
    // "stands for".
    let mut next = at + 1;
    let word = |i: usize| tokens.get(i).map(|(w, _)| w.as_str());
    if word(next) == Some("span") && text[tokens[at].1.end..tokens[next].1.start].contains("</") {
        next += 1;
    }
    for phrase in [
        &["is", "short", "for"][..],
        &["short", "for"],
        &["stands", "for"],
    ] {
        if (0..phrase.len()).all(|i| word(next + i) == Some(phrase[i])) {
            next += phrase.len();
            break;
        }
    }
    if let Some("a" | "an" | "the") = word(next) {
        next += 1;
    }
    // What stands between the words, the words skipped left out.
    let between = |from: usize, to: usize| -> String {
        (from..to)
            .map(|i| &text[tokens[i].1.end..tokens.get(i + 1).map_or(text.len(), |t| t.1.start)])
            .collect()
    };
    let separated = between(at, next).chars().all(|c| {
        c.is_whitespace()
            || matches!(
                c,
                ':' | '—'
                    | '–'
                    | '='
                    | ','
                    | '|'
                    | '('
                    | '['
                    | '*'
                    | '_'
                    | '`'
                    | '"'
                    | '“'
                    | '<'
                    | '/'
                    | '>'
            )
    });
    if !separated {
        return None;
    }
    let last = spells(&parts(&mut (next..tokens.len()), false), &letters, false)?;
    Some((false, tokens[next].1.start..tokens[last].1.end))
}

/// The abbreviation a question asks the letters of ("What does SSDF stand for?", "What is MIR
/// short for?", "What is PEP an abbreviation for?", "What does PEP mean?"), lowercase, when
/// the question writes it as one ([`abbreviation`]). `None` for any other question, "What is
/// SSDF?" among them: that may ask for more than the words.
#[must_use]
pub fn expansion_asked(question: &str) -> Option<String> {
    let q = question.trim().trim_end_matches('?').trim().to_lowercase();
    let words: Vec<&str> = q.split_whitespace().collect();
    let term = match words.as_slice() {
        ["what", "does" | "do", "the" | "a" | "an", term, "stand", "for"]
        | ["what", "does" | "do", term, "stand", "for"]
        | ["what", "does" | "do", "the" | "a" | "an", term, "mean"]
        | ["what", "does" | "do", term, "mean"]
        | ["what", "is" | "are", "the" | "a" | "an", term, "short", "for"]
        | ["what", "is" | "are", term, "short", "for"]
        | ["what", "is" | "are", term, "an", "abbreviation" | "acronym", "for" | "of"] => *term,
        _ => return None,
    };
    abbreviation(question, term).then(|| term.to_owned())
}

/// The abbreviation a question asks what it is or stands for ("What is an ICE?", "What does
/// SSDF stand for?"): a [`Subject`] asked with [`Asks::Is`] that is an [`abbreviation`],
/// lowercase.
#[must_use]
pub fn abbreviation_asked(question: &str) -> Option<String> {
    let subject = subject(question)?;
    (subject.asks == Asks::Is && abbreviation(question, &subject.term)).then_some(subject.term)
}

/// Whether `answer` is the words `text` spells out another abbreviation than `term` with
/// ("policy decision point" in "…policy decision point (PDP) and policy enforcement point
/// (PEP)", asked about PEP): case, whitespace, markup and a leading article aside.
#[must_use]
pub fn spells_out_another(answer: &str, term: &str, text: &str) -> bool {
    let plain = |s: &str| -> String {
        s.chars()
            .filter(|c| !matches!(c, '*' | '_' | '`' | '[' | ']'))
            .collect::<String>()
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ")
            .to_lowercase()
    };
    let answer = plain(answer);
    let answer = ["a ", "an ", "the "]
        .iter()
        .find_map(|article| answer.strip_prefix(article))
        .unwrap_or(&answer);
    let tokens = spanned_words(text);
    !answer.is_empty()
        && (0..tokens.len()).any(|at| {
            !same_word(&tokens[at].0, term)
                && spelled_out(text, &tokens, at)
                    .is_some_and(|(_, words)| plain(&text[words]) == answer)
        })
}

/// `query` in the abbreviations `text` spells out in words the query uses ("What are the
/// network requirements to support a ZTA" for "…a zero trust architecture?", where the text
/// says "zero trust architecture (ZTA)"), lowercase, without punctuation, the longest phrase
/// first; `None` when the text spells out none of them. Documents often spell a term out once
/// and use its abbreviation after: a search may look for both.
#[must_use]
pub fn abbreviated_query(query: &str, text: &str) -> Option<String> {
    // Lowercase alphanumeric runs, one space apart ("zero-trust" is "zero trust").
    let plain = |s: &str| -> String {
        spanned_by(s, char::is_alphanumeric)
            .into_iter()
            .map(|(w, _)| w)
            .collect::<Vec<_>>()
            .join(" ")
    };
    let tokens = spanned_words(text);
    let mut found: Vec<(String, String)> = (0..tokens.len())
        .filter_map(|at| {
            let (_, words) = spelled_out(text, &tokens, at)?;
            Some((
                plain(&text[words]),
                text[tokens[at].1.clone()].to_lowercase(),
            ))
        })
        // Two words or more: one is no phrase to tell a spelling-out by.
        .filter(|(phrase, _)| phrase.contains(' '))
        .collect();
    found.sort_by_key(|(phrase, _)| std::cmp::Reverse(phrase.len()));
    let mut asked = format!(" {} ", plain(query));
    let mut changed = false;
    for (phrase, abbreviation) in found {
        let spelled = format!(" {phrase} ");
        if asked.contains(&spelled) {
            asked = asked.replace(&spelled, &format!(" {abbreviation} "));
            changed = true;
        }
    }
    changed.then(|| asked.trim().to_owned())
}

/// Where `text` first spells out the abbreviation `term` ([`Introduction::SpelledOut`]): the
/// byte range of the words spelled out ("Secure Software Development Framework" of
/// "…Secure Software Development Framework (SSDF)…").
#[must_use]
pub fn spelled_out_words(term: &str, text: &str) -> Option<std::ops::Range<usize>> {
    let tokens = spanned_words(text);
    (0..tokens.len())
        .filter(|&at| same_word(&tokens[at].0, term))
        .find_map(|at| spelled_out(text, &tokens, at).map(|(_, words)| words))
}

/// Whether `term` (a [`Subject`]'s) is an abbreviation as `question` writes it: one word of two
/// to ten letters, two or more of them capitals ("ZTA", "DoD"), or any case when the question
/// asks what it stands for or is short for ("what does ssdf stand for").
#[must_use]
pub fn abbreviation(question: &str, term: &str) -> bool {
    let q = question.to_lowercase();
    let letters = [
        "stand for",
        "stands for",
        "short for",
        "abbreviation",
        "acronym",
    ]
    .iter()
    .any(|form| q.contains(form));
    !term.contains(' ')
        && spanned_words(question).iter().any(|(w, r)| {
            let written = &question[r.clone()];
            w == term
                && (abbreviated(written)
                    || (letters
                        && (2..=10).contains(&written.len())
                        && written.chars().all(|c| c.is_ascii_alphabetic())))
        })
}

/// Whether a word as written may be an abbreviation: two to ten letters, two or more of them
/// capitals.
fn abbreviated(written: &str) -> bool {
    (2..=10).contains(&written.chars().count())
        && written.chars().all(|c| c.is_ascii_alphabetic())
        && written.chars().filter(char::is_ascii_uppercase).count() >= 2
}

/// `rest` after the target of a link that ends where it begins (`[attributes]`, `(url)`), or
/// `rest` itself.
fn after_link(rest: &str) -> &str {
    let close = match rest.chars().next() {
        Some('[') => ']',
        Some('(') => ')',
        _ => return rest,
    };
    rest.find(close).map_or(rest, |i| &rest[i + 1..])
}

/// Whether a word after a sentence's subject begins saying what the subject does: a verb in
/// the third person ("suggests", "marks", "lets") or "can" and "will"; not "may" and "must",
/// which begin the rules about where it may be used.
fn acts(word: &str) -> bool {
    matches!(word, "can" | "will" | "lets")
        || (word.len() >= 4
            && word.ends_with('s')
            && !word.ends_with("ss")
            && !word.ends_with("us")
            && !is_stopword(word))
}

/// The words of `s` (letters, digits, `-`, `'`, `’`), lowercase, with their byte ranges.
fn spanned_words(s: &str) -> Vec<(String, std::ops::Range<usize>)> {
    spanned_by(s, |c| c.is_alphanumeric() || matches!(c, '-' | '\'' | '’'))
}

/// The runs of `s` whose characters `is_word` accepts, lowercase, with their byte ranges.
pub(crate) fn spanned_by(
    s: &str,
    is_word: impl Fn(char) -> bool,
) -> Vec<(String, std::ops::Range<usize>)> {
    let mut out = Vec::new();
    let mut start = None;
    for (i, c) in s.char_indices().chain(std::iter::once((s.len(), ' '))) {
        match (is_word(c), start) {
            (true, None) => start = Some(i),
            (false, Some(b)) => {
                out.push((s[b..i].to_lowercase(), b..i));
                start = None;
            }
            _ => {}
        }
    }
    out
}

/// The largest share, by weight, of `weights`' terms that one of `texts` contains, a text's
/// terms being what `analyse` gives (the index's own analysis, so that the two meet). With
/// inverse document frequencies as weights, a question whose rarest words no passage holds
/// scores low even when its common words are all there.
#[must_use]
pub fn weighted_coverage<'a>(
    weights: &[(String, f32)],
    texts: impl IntoIterator<Item = &'a str>,
    analyse: impl Fn(&str) -> Vec<String>,
) -> f32 {
    let total: f32 = weights.iter().map(|(_, w)| w).sum();
    if total <= 0.0 {
        return 0.0;
    }
    texts
        .into_iter()
        .map(|text| {
            let terms: std::collections::HashSet<String> = analyse(text).into_iter().collect();
            weights
                .iter()
                .filter(|(t, _)| terms.contains(t))
                .map(|(_, w)| w)
                .sum::<f32>()
                / total
        })
        .fold(0.0, f32::max)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_question_that_begins_with_an_auxiliary_and_offers_no_choice_is_polar() {
        for q in [
            "Is a data race undefined behavior in Rust?",
            "Can main return a Result?",
            "Does Rust have exceptions?",
            "Doesn't the ? operator need a Result?",
            "Are iterators lazy in Rust?",
            "Must a match cover every case?",
            "  was it stable in 2018",
            "Is reading from or writing to a mutable static variable unsafe?",
            "Is a data race undefined behavior or not?",
        ] {
            assert!(polar(q), "{q}");
        }
        for q in [
            "Is union a strict keyword or a weak keyword?",
            "Which keyword declares a constant?",
            "What is a closure?",
            "How does deref coercion work?",
            "Is it?",
            "Dose the pump need glycol?",
            "Does anyone know whether it compiles?",
            "Does Rust use a garbage collector or reference counting?",
            "Were the tapes restored in colour or did they remain black and white?",
        ] {
            assert!(!polar(q), "{q}");
        }
    }

    #[test]
    fn a_quote_that_names_what_was_asked_about_does_not_say_what_it_is() {
        use Restatement::{Aside, Defines, Whole};
        assert_eq!(
            defined_subject("What is a smart pointer?").as_deref(),
            Some("smart pointer")
        );
        assert_eq!(
            defined_subject("What does MIR stand for?").as_deref(),
            Some("mir")
        );
        assert_eq!(
            defined_subject("What is MIR short for?").as_deref(),
            Some("mir")
        );
        assert_eq!(
            defined_subject("What’s a string slice?").as_deref(),
            Some("string slice")
        );
        assert_eq!(
            defined_subject("define shadowing").as_deref(),
            Some("shadowing")
        );
        assert_eq!(defined_subject("Which keyword creates a loop?"), None);
        assert_eq!(
            defined_subject("Who is the chair of the IPCC?"),
            None,
            "a name"
        );
        assert_eq!(
            defined_subject("What is the action of creating a reference called?"),
            None,
            "a question for a name"
        );
        assert_eq!(
            defined_subject("What is the name of the struct whose drop method prints a message?"),
            None,
            "a long subject is a question about something else"
        );

        let does = |term: &str| {
            Some(Subject {
                term: term.to_owned(),
                asks: Asks::Does,
            })
        };
        assert_eq!(
            subject("What does the move keyword do?"),
            does("move keyword")
        );
        assert_eq!(subject("What is pub use used for?"), does("pub use"));
        assert_eq!(
            subject("What is the as keyword used for in a use declaration?"),
            does("as keyword")
        );
        assert_eq!(
            subject("What is the purpose of the Cargo.lock file?"),
            does("cargo.lock file")
        );
        assert_eq!(subject("What's Cargo.lock for?"), does("cargo.lock"));
        assert_eq!(
            subject("What is the keyword used for declaring constants?"),
            None,
            "a question for a name"
        );
        assert_eq!(defined_subject("What does the move keyword do?"), None);
        assert_eq!(defined_subject("What is pub use used for?"), None);

        let r = restatement;
        assert_eq!(r("What does the move keyword do?", "move"), Whole);
        assert_eq!(r("What does macro expansion do?", "expansion."), Whole);
        assert_eq!(r("What is a trait object?", "`trait`"), Whole);
        assert_eq!(r("What does rustfmt do?", "The `rustfmt` tool"), Whole);
        assert_eq!(
            r(
                "What does rustfmt do?",
                "The `rustfmt` tool reformats your code"
            ),
            Defines
        );
        assert_eq!(
            r("What does rustfmt do?", "rustfmt, a formatter"),
            Defines,
            "asked what it does, whatever follows the name says something of it"
        );
        assert_eq!(
            r(
                "What does the move keyword do?",
                "forces the closure to take ownership"
            ),
            Restatement::No
        );
        assert_eq!(r("What is a closure?", "a closure"), Whole);
        assert_eq!(r("What are closures?", "_Closures_"), Whole);
        assert_eq!(
            r("What is the trust algorithm?", "trust algorithm (TA)"),
            Whole
        );
        assert_eq!(r("What is a policy enforcement point?", "PEP"), Whole);
        assert_eq!(r("What does SSDF stand for?", "SSDF"), Whole);
        assert_eq!(
            r("What is micro-segmentation?", "micro-segmentation."),
            Whole
        );
        assert_eq!(
            r(
                "What is the trust algorithm?",
                "The trust algorithm (TA) is the process used by the policy engine"
            ),
            Defines
        );
        assert_eq!(
            r(
                "What is a policy enforcement point?",
                "Policy enforcement point (PEP): This system is responsible for enabling"
            ),
            Defines
        );
        assert_eq!(
            r(
                "What is a closure?",
                "A closure that moves captured values out of its body"
            ),
            Aside
        );
        assert_eq!(
            r("What does SSDF stand for?", "SSDF does not prescribe how"),
            Aside
        );
        assert_eq!(
            r(
                "What are closures?",
                "_Closures_, a function-like construct"
            ),
            Defines
        );
        assert_eq!(
            r(
                "What are raw pointers?",
                "raw pointers, _immutable_ means that the pointer can’t be"
            ),
            Aside
        );
        assert_eq!(
            r("What is a closure?", "an anonymous function"),
            Restatement::No
        );
        assert_eq!(
            r("What does MIR stand for?", "mid-level IR"),
            Restatement::No
        );
        assert_eq!(
            r("What is HIR?", "High-Level Intermediate Representation"),
            Restatement::No
        );
        // Only for questions asking what something is: a keyword may well share its name.
        assert_eq!(
            r("Which keyword creates an infinite loop?", "loop"),
            Restatement::No
        );
    }

    #[test]
    fn symbols_and_numbers_without_words_are_literal_answers() {
        for literal in ["?", "`..=`", "#!", "`'_`", "one", " One "] {
            assert!(is_literal(literal), "{literal:?}");
        }
        // Function words say nothing checkable; content words are grounded as words.
        for not in ["It", "`Some`", "", "``", "the pump", "3 litres", "r#ident"] {
            assert!(!is_literal(not), "{not:?}");
        }
    }

    #[test]
    fn names_the_passages_do_not_mention_are_missing() {
        let texts = [
            "The Huguenots settled in Virginia.",
            "Louis XIV revoked the edict.",
        ];
        assert!(missing_names("Where did the Huguenots settle?", texts).is_empty());
        assert_eq!(
            missing_names("How many settled in Manakintown under Louis?", texts),
            ["manaki"],
            "names are compared as stems"
        );
        assert!(
            missing_names("Who revoked the edict?", texts).is_empty(),
            "first word"
        );
    }

    #[test]
    fn ordinal_words_meet_their_written_form() {
        assert_eq!(terms("the nineteenth century"), terms("the 19th century"));
        assert_eq!(terms("First and third"), ["1st", "3rd"]);
    }

    #[test]
    fn a_question_is_about_its_subject_not_its_form() {
        assert_eq!(asked("What does NLL stand for?"), "nll");
        assert_eq!(
            asked("What is the purpose of the Cargo.lock file?"),
            "cargo.lock file"
        );
        assert_eq!(asked("What does the move keyword do?"), "move keyword");
        // A plain "What is X?" has no words of its own to leave out.
        for same in ["Which keyword declares a constant?", "What is a closure?"] {
            assert_eq!(asked(same), same);
        }
        // A passage that spells out the acronym holds all of what was asked.
        let passage = "Using the MIR enables non-lexical lifetimes (NLL).";
        assert!(coverage("What does NLL stand for?", [passage]) < 1.0);
        assert!((coverage(&asked("What does NLL stand for?"), [passage]) - 1.0).abs() < 1e-6);
    }

    #[test]
    fn coverage_is_the_best_passage_share_of_question_terms() {
        let q = "When was the Velmora Bridge opened to traffic?";
        let texts = [
            "The bridge over the river was repainted.",
            "Velmora Bridge opened in 1911; traffic crossed it the same day.",
        ];
        // Question terms: velmora, bridge, open(ed), traffic → all four in the second text.
        assert!((coverage(q, texts) - 1.0).abs() < 1e-6);
        assert!((coverage(q, texts[..1].iter().copied()) - 0.25).abs() < 1e-6);
        assert!(coverage("the of and", texts).abs() < 1e-6);
        assert!(coverage(q, std::iter::empty()).abs() < 1e-6);
    }

    #[test]
    fn stopwords_are_sorted_for_binary_search() {
        assert!(STOPWORDS.windows(2).all(|w| w[0] < w[1]));
    }

    #[test]
    fn terms_drop_function_words_and_stem_plurals() {
        assert_eq!(
            terms("How many points did the Panthers' defenses give up?"),
            ["many", "point", "panthe", "defens", "give"]
        );
        assert_eq!(terms("It cost $1,500 in 2015."), ["cost", "1500", "2015"]);
        assert_eq!(terms("the team's policies"), ["team", "policy"]);
        assert_eq!(terms("3.5 GHz"), ["3.5", "ghz"]);
        assert_eq!(terms("Six Grammys"), terms("6 grammy"));
        assert_eq!(terms("climatic conditions"), terms("climate condition"));
        assert!(terms("").is_empty());
    }

    #[test]
    fn weighted_coverage_counts_rare_words_more() {
        let split = |t: &str| t.split_whitespace().map(str::to_owned).collect::<Vec<_>>();
        let weights = vec![
            ("sanitizer".to_owned(), 6.0),
            ("data".to_owned(), 1.0),
            ("races".to_owned(), 1.0),
        ];
        let texts = ["data races are undefined", "a sanitizer finds data races"];
        let c = weighted_coverage(&weights, texts, split);
        assert!((c - 1.0).abs() < 1e-6, "{c}");
        let c = weighted_coverage(&weights, ["data races are undefined"], split);
        assert!((c - 0.25).abs() < 1e-6, "{c}");
        assert!(weighted_coverage(&[], texts, split).abs() < f32::EPSILON);
    }

    #[test]
    fn a_passage_that_introduces_a_term_defines_it_and_one_that_mentions_it_does_not() {
        let introduced = [
            // Set off as it is introduced.
            (
                "box",
                "The simplest is a box. _Boxes_ allow you to store data",
            ),
            ("trait object", "A *trait object* is an opaque value"),
            ("supertrait", "**Supertraits** are traits that are required"),
            // Named by the sentence that says what it is.
            (
                "associated function",
                "are called associated functions because",
            ),
            ("prelude", "This set is called the prelude, and"),
            (
                "interior mutability",
                "a pattern known as interior mutability.",
            ),
            // Beginning a sentence or a line that says what it is.
            (
                "closure",
                "## Closures\n\nRust’s closures are anonymous functions",
            ),
            (
                "channel",
                "concurrency. A channel is a general programming concept",
            ),
            ("mutex", "Mutex is an abbreviation for mutual exclusion"),
            (
                "policy enforcement point",
                "• Policy enforcement point (PEP): This system is responsible",
            ),
            ("crate", "* Crates: A tree of modules"),
            // Set off with code marks and a link inside the emphasis, as the Reference does.
            (
                "inline attribute",
                "r[attributes.codegen.inline.intro]\nThe *`inline` [attribute]* suggests",
            ),
            ("trait", "### Trait\n\nA trait is a language item"),
            // Named, then said what it is in a clause of its own.
            (
                "rc<t>",
                "by using the Rust type `Rc<T>`, which is an abbreviation for",
            ),
        ];
        for (subject, text) in introduced {
            assert!(
                introduction(subject, Asks::Is, text).is_some(),
                "{subject}: {text}"
            );
        }
        let mentioned = [
            (
                "closure",
                "### Moving Captured Values Out of Closures\n\nOnce a closure has",
                "a title",
            ),
            (
                "closure",
                "Once a closure is defined",
                "no capital: mid-sentence",
            ),
            ("closure", "the way closures are typed", "mid-sentence"),
            (
                "case",
                "written in snake_case_ form",
                "a mark inside a word",
            ),
            (
                "closure",
                "Closures capture values",
                "a sentence not saying what it is",
            ),
            ("", "A closure is", "no subject"),
            (
                "closure",
                "a closure, which it then calls",
                "a clause not saying what it is",
            ),
            (
                "closure",
                "called the *closure parameters* each",
                "a longer name",
            ),
            (
                "closure",
                "can be called. A closure that moves",
                "another sentence",
            ),
            (
                "closure",
                "characteristics as a closure. It captures",
                "as, not known as",
            ),
        ];
        for (subject, text, why) in mentioned {
            assert!(
                introduction(subject, Asks::Is, text).is_none(),
                "{why}: {text}"
            );
        }
        assert_eq!(
            introduction("mir", Asks::Is, "[MIR]: ./mir/index.md"),
            None,
            "a link's target"
        );
    }

    #[test]
    fn a_question_for_a_time_and_the_sentences_that_give_one() {
        for q in [
            "When was SP 800-207 published?",
            "In what year did Priestley recognize oxygen?",
            "On which date did the war end?",
        ] {
            assert!(asks_when(q), "{q}");
        }
        for q in [
            "When many people are arrested, what is a common tactic?",
            "What happens when a value is dropped?",
            "Which year's report is it?",
        ] {
            assert!(!asks_when(q), "{q}");
        }
        for t in ["August 2020", "on May 18, 1756.", "in 1774", "18 May"] {
            assert!(has_date(t), "{t}");
        }
        for t in [
            "SP 800-207",
            "10.6028/NIST.SP.800-207",
            "page 12",
            "12,345 checks",
        ] {
            assert!(!has_date(t), "{t}");
        }
    }

    #[test]
    fn several_things_are_asked_for_by_an_article_a_count_or_a_plural_noun() {
        for q in [
            "What are the rules of ownership?",
            "Who are the authors of the zero trust architecture publication?",
            "What were the three main causes of the war?",
            "Which traits does a closure implement depending on how it handles captured values?",
            "What kinds of projects can Cargo create?",
            "In which situations would you use a Box most often?",
            "Which two methods are required by the Iterator trait?",
            "List the tenets of zero trust.",
            "Which types implement the Copy trait?",
            "Which crates depend on serde?",
            "What file formats does cairn read?",
            "Which closure traits does it implement?",
            "What other topics can civil disobedience pertain to?",
        ] {
            assert!(asks_for_several(q), "{q}");
        }
        for q in [
            "What are closures?",
            "What is the rule of ownership?",
            "What happens when a value goes out of scope?",
            "What does the borrow checker do?",
            "How many rules of ownership are there?",
            "What are the places where implicit coercions happen called?",
            "Which trait is implemented by closures that move values out?",
            "What class does the decoder belong to?",
            "What makes closures different from functions?",
            "Which uses more memory, a Vec or an array?",
            "Which process handles the request?",
            "Which collections type is a list-like container?",
            "Which statistics function returns the median?",
            "Which Panthers player got a penalty?",
            "Which attribute checks that a test function panics?",
            "What conjecture holds that there are infinitely many twin primes?",
            "What can files do?",
            "What caused errors that nobody saw?",
            "What made programs do that?",
        ] {
            assert!(!asks_for_several(q), "{q}");
        }
    }

    #[test]
    fn a_count_is_answered_with_an_amount() {
        assert!(asks_how_many("How many lanes are there?"));
        assert!(asks_how_many(
            "Peyton Manning took how many teams to the Super Bowl?"
        ));
        assert!(!asks_how_many("How much glycol is needed?"));
        assert!(!asks_how_many("What are the many uses of Box?"));
        for answer in [
            "19",
            "three",
            "Six",
            "a dozen",
            "none",
            "no more than one",
            "2,236,457",
        ] {
            assert!(gives_amount(answer), "{answer}");
        }
        for answer in ["many", "several practices", "a large number", ""] {
            assert!(!gives_amount(answer), "{answer}");
        }
    }

    #[test]
    fn a_question_for_the_letters_and_the_words_that_answer_it() {
        for q in [
            "What does SSDF stand for?",
            "what does the SSDF stand for",
            "What is SSDF short for?",
            "What is SSDF an acronym for?",
            "What does SSDF mean?",
            "What are SSDFs short for?",
        ] {
            assert!(expansion_asked(q).is_some(), "{q}");
        }
        assert_eq!(
            expansion_asked("What does DoD stand for?").as_deref(),
            Some("dod")
        );
        assert_eq!(
            expansion_asked("what does ssdf stand for").as_deref(),
            Some("ssdf"),
            "asked for the letters, any case"
        );
        assert_eq!(expansion_asked("What does ssdf mean?"), None);
        for q in [
            "What is SSDF?",
            "What does the keyword mean?",
            "What does the SSDF require?",
        ] {
            assert_eq!(expansion_asked(q), None, "{q}");
        }
        let text = "the practices, called the\nSecure Software Development Framework (SSDF), are";
        let words = spelled_out_words("ssdf", text).unwrap();
        assert_eq!(&text[words], "Secure Software Development Framework");
        let text = "<span id=\"nll\">NLL</span> | Short for [non-lexical lifetimes](../nll.md)";
        let words = spelled_out_words("nll", text).unwrap();
        assert_eq!(&text[words], "non-lexical lifetimes");
        assert_eq!(
            spelled_out_words("ssdf", "The SSDF does not prescribe"),
            None
        );
        let two = "through a policy decision point (PDP) and a\npolicy enforcement point (PEP).";
        assert!(spells_out_another("a policy decision point", "pep", two));
        assert!(!spells_out_another("policy enforcement point", "pep", two));
        assert!(
            !spells_out_another("policy decision", "pep", two),
            "only the words whole"
        );
        assert_eq!(
            abbreviation_asked("What is an ICE?").as_deref(),
            Some("ice")
        );
        assert_eq!(
            abbreviation_asked("What does SSDF stand for?").as_deref(),
            Some("ssdf")
        );
        assert_eq!(abbreviation_asked("What is a closure?"), None);
        assert_eq!(
            abbreviation_asked("What does the PEP do?"),
            None,
            "what it does"
        );
    }

    #[test]
    fn a_question_is_searched_again_in_the_abbreviations_a_passage_spells_out() {
        let text = "Zero trust (ZT) is a paradigm. A zero trust architecture (ZTA) uses zero \
                    trust principles; a policy\nenforcement point (PEP) enforces them.";
        let q = "What are the network requirements of a zero-trust architecture?";
        // The longest phrase first: "zero trust" is within "zero trust architecture".
        assert_eq!(
            abbreviated_query(q, text).as_deref(),
            Some("what are the network requirements of a zta")
        );
        assert_eq!(
            abbreviated_query(
                "What does a Policy Enforcement Point do with zero trust?",
                text
            )
            .as_deref(),
            Some("what does a pep do with zt")
        );
        // Asked with the abbreviation already, or about none of the phrases: no variant.
        assert_eq!(abbreviated_query("What does the ZTA require?", text), None);
        assert_eq!(abbreviated_query("What is a policy?", text), None);
        // One word is no phrase ("Rust (R)" is not taken for a spelling-out of "R").
        assert_eq!(
            abbreviated_query("Why is Rust fast?", "Rust (R) is fast."),
            None
        );
    }

    #[test]
    fn an_abbreviation_is_introduced_where_it_is_spelled_out() {
        let spelled = [
            "practices called the Secure Software Development Framework (SSDF). Organizations",
            "SOAR State-of-the-Art Resources\nSSDF Secure Software Development Framework\nChange Log",
            "SSDF: secure software development framework",
            "<span id=\"ssdf\">SSDF</span>  |  Short for *secure software development framework*",
            "SSDF (short for secure software development framework)",
            "SSDF stands for Secure Software Development Framework",
            "the Department of Defense (DoD, 2019)",
            "many Secure Software Development Frameworks (SSDFs) exist",
        ];
        let only = Some(Introduction::SpelledOut { defines: false });
        for text in spelled {
            let term = if text.contains("DoD") { "dod" } else { "ssdf" };
            assert_eq!(introduction(term, Asks::Is, text), only, "{text}");
        }
        assert_eq!(
            introduction("zta", Asks::Is, "a Zero-Trust Architecture (ZTA) plan"),
            only,
            "a hyphenated word gives each part's initial"
        );
        for (term, text) in [
            ("hir", "- High-level IR (HIR) is"),
            ("hir", "The High Level Intermediate Representation (HIR)"),
            (
                "adt",
                "The term `ADT` stands for \"Algebraic data type\", in rust",
            ),
            (
                "nll",
                "<span id=\"nll\">NLL</span> | Short for [non-lexical lifetimes](../nll.md)",
            ),
            (
                "gat",
                "<span id=\"gat\">GAT</span> | A _generic associated type_, an",
            ),
        ] {
            assert!(
                matches!(
                    introduction(term, Asks::Is, text),
                    Some(Introduction::SpelledOut { .. })
                ),
                "{text}"
            );
        }
        // Spelled out where a sentence begins that says what it is.
        let defines = Some(Introduction::SpelledOut { defines: true });
        for text in [
            "•  Policy enforcement point (PEP): This system is responsible",
            "component. Policy enforcement point (PEP) is the system that",
        ] {
            assert_eq!(introduction("pep", Asks::Is, text), defines, "{text}");
        }
        assert_eq!(
            introduction(
                "pep",
                Asks::Is,
                "Access is granted through a policy decision point (PDP) and \
                 corresponding policy enforcement point (PEP).3"
            ),
            only,
            "mid-sentence, saying nothing more"
        );
        let mentioned = [
            (
                "ssdf",
                "The SSDF does not prescribe how to implement",
                "a mention",
            ),
            (
                "ast",
                "## The AST\n\nThe AST mirrors the structure",
                "itself",
            ),
            (
                "ssdf",
                "the Secure Development Framework (SSDF)",
                "a letter short",
            ),
            (
                "ssdf",
                "Secure Software and Development Framework Kit (SSDF)",
                "the nearest word gives none",
            ),
            (
                "ssdf",
                "Secure Software Framework Development Systems Framework (SSDF)",
                "two words passed over",
            ),
            (
                "ssdf",
                "the Secure Software Development Framework (ssdf)",
                "not capitals",
            ),
            (
                "ssdf",
                "Secure Development Software Framework (SSDF)",
                "out of order",
            ),
            (
                "ssdf",
                "SSDF Secure Software Development",
                "a letter short after it",
            ),
            (
                "ssdf",
                "for the Secure Software Development Framework of (SSDF)",
                "the nearest word gives none",
            ),
        ];
        for (term, text, why) in mentioned {
            assert_eq!(introduction(term, Asks::Is, text), None, "{why}: {text}");
        }
    }

    #[test]
    fn asked_what_a_thing_does_a_sentence_beginning_with_it_and_a_verb_introduces_it() {
        let does = [
            ("rustfmt", "The `rustfmt` tool reformats your code"),
            (
                "cargo install command",
                "The `cargo install` command allows you",
            ),
            ("move keyword", "`move` keyword forces"),
            ("clippy", "The Clippy tool can catch common mistakes"),
            (
                "process::exit",
                "The `process::exit` function will stop the program",
            ),
        ];
        for (subject, text) in does {
            assert_eq!(
                introduction(subject, Asks::Does, text),
                Some(Introduction::Begins),
                "{subject}: {text}"
            );
        }
        let not = [
            (
                "should_panic attribute",
                "The `should_panic` attribute may only be applied to functions",
                "a rule about where it may be used",
            ),
            (
                "? operator",
                "The `?` operator can be used in functions",
                "only its kind is left of the term",
            ),
            (
                "rustfmt",
                "The `rustfmt` tool reformats your code",
                "asked what it is: a sentence that says what it does is not that",
            ),
            ("rustfmt", "Run rustfmt to reformat", "mid-sentence"),
        ];
        for (subject, text, why) in not {
            let asks = if why.starts_with("asked what it is") {
                Asks::Is
            } else {
                Asks::Does
            };
            assert_eq!(introduction(subject, asks, text), None, "{why}: {text}");
        }
    }

    #[test]
    fn a_question_asking_why_how_or_how_things_differ_asks_for_an_explanation() {
        let cases = [
            (
                "Why are variables immutable by default?",
                Some(Explains::Why),
            ),
            ("why's it slow", Some(Explains::Why)),
            ("How come the test fails?", Some(Explains::Why)),
            (
                "What is the reason for the orphan rule?",
                Some(Explains::Why),
            ),
            ("How does deref coercion work?", Some(Explains::How)),
            (
                "How do you run the tests one at a time?",
                Some(Explains::Task),
            ),
            (
                "How can I see what passing tests printed?",
                Some(Explains::Task),
            ),
            ("how to vendor dependencies", Some(Explains::Task)),
            ("How should we name constants?", Some(Explains::Task)),
            (
                "How does a closure capture its environment?",
                Some(Explains::How),
            ),
            (
                "What is the difference between iter and into_iter?",
                Some(Explains::Difference),
            ),
            (
                "How is shadowing different from making a variable mutable?",
                Some(Explains::Difference),
            ),
            (
                "How do inner attributes differ from outer attributes?",
                Some(Explains::Difference),
            ),
            ("How do Rc and Arc differ?", Some(Explains::Difference)),
            // An amount, a name or a fact.
            ("How many bytes is a char?", None),
            ("How long did the build take?", None),
            ("What is a closure?", None),
            ("Which keyword declares a constant?", None),
            ("What happens when different threads share data?", None),
        ];
        for (question, kind) in cases {
            assert_eq!(explains(question), kind, "{question}");
        }
        // "What is the difference…" is not asking what "the difference" is.
        assert_eq!(
            subject("What is the difference between iter and into_iter?"),
            None
        );
        assert_eq!(subject("What is the reason for the orphan rule?"), None);
    }

    #[test]
    fn a_question_asking_what_something_is_called_asks_for_a_name() {
        for question in [
            "What is a set of packages that share the same Cargo.lock called?",
            "What do other languages sometimes call a future?",
            "What is the term for code that writes code?",
            "What is the name of the example struct?",
            "What is a pattern like this known as?",
        ] {
            assert!(asks_for_name(question), "{question}");
        }
        for question in [
            "Which functions may be called from const contexts?",
            "What does the move keyword do?",
            "How do you call a method on a trait object?",
        ] {
            assert!(!asks_for_name(question), "{question}");
        }
        assert!(echoes(
            "What do other languages sometimes call a future?",
            "futures"
        ));
        assert!(!echoes(
            "What do other languages sometimes call a future?",
            "promise"
        ));
    }

    #[test]
    fn asked_for_an_explanation_the_questions_own_words_are_no_answer() {
        let whole = [
            ("Why are iterator adapters lazy?", "lazy"),
            ("Why doesn't Rust have null?", "Rust does not have nulls"),
            (
                "What is the difference between unit tests and integration tests?",
                "unit tests and integration tests",
            ),
            ("How do libraries get built?", "Libraries are built"),
        ];
        for (question, answer) in whole {
            assert_eq!(
                restatement(question, answer),
                Restatement::Whole,
                "{question} → {answer}"
            );
        }
        let answers = [
            (
                "Why are iterator adapters lazy?",
                "they have no effect until consumed",
            ),
            (
                "How does RefCell<T> enforce the borrowing rules?",
                "at runtime",
            ),
            (
                "How do you run one test?",
                "`cargo test` and the test's name",
            ),
            // Not an explanation: a name may well be in the question.
            ("Which attribute marks a test?", "test"),
        ];
        for (question, answer) in answers {
            assert_eq!(
                restatement(question, answer),
                Restatement::No,
                "{question} → {answer}"
            );
        }
    }

    #[test]
    fn only_the_opening_of_the_section_titled_with_the_term_is_titled() {
        let heading = |h: &[&str]| h.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
        let closures = heading(&["Closures"]);
        assert!(titled(
            "closure",
            &closures,
            "## Closures\n\nRust’s closures are"
        ));
        assert!(titled(
            "the borrow checker",
            &heading(&["MIR", "The Borrow Checker"]),
            "### The Borrow Checker\n\nIt checks"
        ));
        assert!(
            !titled(
                "closure",
                &closures,
                "You can create the closure in one place"
            ),
            "not the section's opening"
        );
        assert!(
            !titled(
                "closure",
                &heading(&["Closures", "Moving Captured Values Out of Closures"]),
                "### Moving Captured Values Out of Closures"
            ),
            "a title that mentions the term"
        );
        assert!(!titled("closure", &[], "## Closures"), "no heading");
    }

    proptest::proptest! {
        #[test]
        fn reading_for_an_introduction_never_fails(
            subject in "[a-zA-Z’'_* -]{0,12}",
            text in "[a-zA-Z’'_*#:().,\n é漢-]{0,80}",
            heading in "[a-zA-Z# ]{0,12}",
        ) {
            // Any text, any subject: an answer, never a panic on a character boundary; and a
            // passage introduces only a term it holds.
            let held = words(&subject).first().is_some_and(|first| {
                spanned_words(&text).iter().any(|(w, _)| same_word(w, first))
            });
            if introduction(&subject, Asks::Is, &text).is_some() {
                proptest::prop_assert!(held);
            }
            let _ = titled(&subject, &[heading], &text);
        }
    }
}
