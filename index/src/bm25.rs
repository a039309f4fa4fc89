//! BM25 over chunk text and titles with tantivy.
//!
//! Text is analysed the way Lucene's English analyser (and so Pyserini) does it: split on
//! non-alphanumerics, lowercase, drop English stop words, Porter-stem. Queries go through the
//! same analyser and become an OR of term queries on the text and title fields, so no query
//! syntax can make a search fail. A query word with a usual short form in technical writing
//! ([`SHORT_FORMS`]: "directory" and `dir`, as in `CARGO_TARGET_DIR`) matches either form.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::LazyLock;

use tantivy::collector::TopDocs;
use tantivy::query::{
    BooleanQuery, BoostQuery, ConstScoreQuery, DisjunctionMaxQuery, Occur, Query, TermQuery,
};
use tantivy::schema::{
    Field, IndexRecordOption, NumericOptions, Schema, TextFieldIndexing, TextOptions,
};
use tantivy::tokenizer::{
    Language, LowerCaser, RemoveLongFilter, SimpleTokenizer, Stemmer, StopWordFilter, TextAnalyzer,
    Token, TokenStream, Tokenizer,
};
use tantivy::{Index, IndexReader, IndexWriter, ReloadPolicy, TantivyDocument, Term};

use crate::error::{Error, Result};

const ANALYZER: &str = "cairn_en";
const SYMBOLS_ANALYZER: &str = "cairn_symbols";

pub(crate) struct Fields {
    pub id: Field,
    pub text: Field,
    pub title: Field,
    /// The operators and other symbols written on their own (`?`, `..=`, `@`), from the
    /// heading path and the text; `None` in an index made before it was added.
    pub symbols: Option<Field>,
}

fn schema() -> Schema {
    let mut b = Schema::builder();
    let indexing = TextFieldIndexing::default()
        .set_tokenizer(ANALYZER)
        .set_index_option(IndexRecordOption::WithFreqsAndPositions);
    let text_opts = TextOptions::default().set_indexing_options(indexing);
    b.add_u64_field(
        "chunk_id",
        NumericOptions::default()
            .set_indexed()
            .set_fast()
            .set_stored(),
    );
    b.add_text_field("text", text_opts.clone());
    b.add_text_field("title", text_opts);
    let symbols = TextFieldIndexing::default()
        .set_tokenizer(SYMBOLS_ANALYZER)
        .set_index_option(IndexRecordOption::WithFreqs);
    b.add_text_field(
        "symbols",
        TextOptions::default().set_indexing_options(symbols),
    );
    b.build()
}

/// The fields of an index's own schema (an older one has no `symbols`).
fn fields(schema: &Schema, path: &Path) -> Result<Fields> {
    let field = |name: &str| {
        schema.get_field(name).map_err(|e| Error::Bm25 {
            path: path.to_owned(),
            message: e.to_string(),
        })
    };
    Ok(Fields {
        id: field("chunk_id")?,
        text: field("text")?,
        title: field("title")?,
        symbols: schema.get_field("symbols").ok(),
    })
}

/// Symbols on their own in `text`: runs of one to three ASCII punctuation marks that stand
/// between spaces, line ends, backticks or quotes (`` the `?` operator ``, "the unary - (minus)
/// operator", "‘%’"), so that a question about an operator finds the passages that speak of it
/// ("What does the ? operator do?"). Words are not; a symbol touching a word or a number is
/// part of code (`x?;`, `-1`) and is not either.
pub(crate) fn symbols(text: &str) -> Vec<(usize, usize)> {
    // What may stand after a symbol, given what stands before it: a code span or a quotation
    // closes as it opened; a symbol set apart by spaces ends at a space or a clause's end.
    let stands_alone = |before: Option<char>, after: Option<char>| match before {
        Some('`') => after == Some('`'),
        Some('\'' | '"') => after == before,
        Some('‘') => after == Some('’'),
        Some('“') => after == Some('”'),
        Some(c) if !c.is_whitespace() && c != '(' => false,
        _ => after.is_none_or(|c| c.is_whitespace() || matches!(c, ')' | ',' | ':' | ';')),
    };
    let symbol = |c: char| c.is_ascii_punctuation() && !matches!(c, '`' | '\'' | '"');
    let mut out = Vec::new();
    let mut before: Option<char> = None;
    let mut chars = text.char_indices().peekable();
    while let Some((at, c)) = chars.next() {
        if !symbol(c) {
            before = Some(c);
            continue;
        }
        let mut end = at + c.len_utf8();
        while let Some(&(i, n)) = chars.peek() {
            if !symbol(n) {
                break;
            }
            end = i + n.len_utf8();
            chars.next();
        }
        let after = text[end..].chars().next();
        // Markdown's own marks are not symbols spoken of: a bullet, a heading's or a quote's
        // mark opening a line, a table's rules and bars.
        let line = &text[text[..at].rfind('\n').map_or(0, |n| n + 1)..];
        let run = &text[at..end];
        let opens_line = line[..at - (text.len() - line.len())].trim().is_empty();
        let markup = (opens_line
            && (matches!(run, "-" | "*" | "+" | ">") || run.chars().all(|c| c == '#')))
            || (line.trim_start().starts_with('|')
                && run.chars().all(|c| matches!(c, '|' | '-' | ':')));
        if end - at <= 3 && stands_alone(before, after) && !markup {
            out.push((at, end));
        }
        before = text[..end].chars().next_back();
    }
    out
}

/// The text outside code blocks (their lines left empty), where [`symbols`] are spoken of: in
/// code, `->`, `=>` or `^` (under a compiler error's column) stand on their own on every other
/// line, and would tell a passage about them from none.
fn prose(text: &str, mut in_code: bool) -> String {
    let mut out = String::with_capacity(text.len());
    for line in text.split_inclusive('\n') {
        let fence = cairn_ingest::is_fence(line);
        if !in_code && !fence {
            out.push_str(line);
        } else if line.ends_with('\n') {
            out.push('\n');
        }
        in_code ^= fence;
    }
    out
}

/// A tokenizer of [`symbols`] alone.
#[derive(Clone, Default)]
struct SymbolTokenizer {
    token: Token,
}

struct SymbolStream<'a> {
    text: &'a str,
    at: std::vec::IntoIter<(usize, usize)>,
    token: &'a mut Token,
}

impl Tokenizer for SymbolTokenizer {
    type TokenStream<'a> = SymbolStream<'a>;
    fn token_stream<'a>(&'a mut self, text: &'a str) -> SymbolStream<'a> {
        self.token.reset();
        SymbolStream {
            text,
            at: symbols(text).into_iter(),
            token: &mut self.token,
        }
    }
}

impl TokenStream for SymbolStream<'_> {
    fn advance(&mut self) -> bool {
        let Some((from, to)) = self.at.next() else {
            return false;
        };
        self.token.text.clear();
        self.token.text.push_str(&self.text[from..to]);
        self.token.offset_from = from;
        self.token.offset_to = to;
        self.token.position = self.token.position.wrapping_add(1);
        true
    }

    fn token(&self) -> &Token {
        self.token
    }

    fn token_mut(&mut self) -> &mut Token {
        self.token
    }
}

fn register(index: &Index) {
    index.tokenizers().register(ANALYZER, analyzer());
    index.tokenizers().register(
        SYMBOLS_ANALYZER,
        TextAnalyzer::from(SymbolTokenizer::default()),
    );
}

fn analyzer() -> TextAnalyzer {
    TextAnalyzer::builder(SimpleTokenizer::default())
        .filter(RemoveLongFilter::limit(40))
        .filter(LowerCaser)
        .filter(StopWordFilter::new(Language::English).expect("English stop words are built in"))
        .filter(Stemmer::new(Language::English))
        .build()
}

/// Words and the short forms technical writing uses for them, in identifiers (`CARGO_TARGET_DIR`,
/// `RUST_LIB_BACKTRACE`, `--config`) and prose alike. A query with either form also finds the
/// other. Only pairs whose stems mean nothing else are here: "init" (Porter-stemmed
/// "initial" too), "spec" ("specific"), "exe" ("execute"), "dev" ("developer"), "src",
/// "ref", "str" and "impl" (common code words) are left out.
const SHORT_FORMS: &[(&str, &str)] = &[
    ("directory", "dir"),
    ("configuration", "config"),
    ("environment", "env"),
    ("argument", "arg"),
    ("variable", "var"),
    ("repository", "repo"),
    ("library", "lib"),
    ("parameter", "param"),
    ("attribute", "attr"),
    ("temporary", "tmp"),
    ("maximum", "max"),
    ("minimum", "min"),
    ("package", "pkg"),
    ("command", "cmd"),
    ("information", "info"),
    ("authentication", "auth"),
    ("database", "db"),
    ("synchronous", "sync"),
    ("asynchronous", "async"),
    ("previous", "prev"),
    ("miscellaneous", "misc"),
    ("administrator", "admin"),
    ("distribution", "dist"),
    ("certificate", "cert"),
];

/// How much a short form's match counts against the word the query used: less, so that
/// among passages otherwise alike the one with the user's own word comes first.
const SHORT_FORM_BOOST: f32 = 0.8;

/// Each analysed form of [`SHORT_FORMS`] with the analysed forms it stands for.
static OTHER_FORMS: LazyLock<HashMap<String, Vec<String>>> = LazyLock::new(|| {
    let mut map: HashMap<String, Vec<String>> = HashMap::new();
    for (long, short) in SHORT_FORMS {
        let (Some(long), Some(short)) = (one_term(long), one_term(short)) else {
            continue;
        };
        if long == short {
            continue;
        }
        map.entry(long.clone()).or_default().push(short.clone());
        map.entry(short).or_default().push(long);
    }
    map
});

/// The one term a word analyses to (none for a stop word).
fn one_term(word: &str) -> Option<String> {
    let mut terms = Bm25::terms(word);
    (terms.len() == 1).then(|| terms.remove(0))
}

/// The other forms of an analysed query term (see [`SHORT_FORMS`]).
fn other_forms(term: &str) -> &'static [String] {
    OTHER_FORMS.get(term).map_or(&[], Vec::as_slice)
}

fn err(path: &Path) -> impl Fn(tantivy::TantivyError) -> Error + '_ {
    move |e| Error::Bm25 {
        path: path.to_owned(),
        message: e.to_string(),
    }
}

/// The BM25 index of a knowledge base.
pub(crate) struct Bm25 {
    path: PathBuf,
    index: Index,
    pub fields: Fields,
}

impl Bm25 {
    pub fn open_or_create(path: &Path) -> Result<Self> {
        std::fs::create_dir_all(path).map_err(|source| Error::Io {
            path: path.to_owned(),
            source,
        })?;
        let dir = tantivy::directory::MmapDirectory::open(path).map_err(|e| Error::Bm25 {
            path: path.to_owned(),
            message: e.to_string(),
        })?;
        // An index made before the symbols field keeps its own schema (the writer makes it
        // again: [`Bm25::has_symbols`]).
        let index = if Index::exists(&dir).map_err(|e| Error::Bm25 {
            path: path.to_owned(),
            message: e.to_string(),
        })? {
            Index::open(dir).map_err(err(path))?
        } else {
            Index::create(dir, schema(), tantivy::IndexSettings::default()).map_err(err(path))?
        };
        register(&index);
        Ok(Bm25 {
            path: path.to_owned(),
            fields: fields(&index.schema(), path)?,
            index,
        })
    }

    pub fn open(path: &Path) -> Result<Self> {
        let index = Index::open_in_dir(path).map_err(err(path))?;
        register(&index);
        Ok(Bm25 {
            path: path.to_owned(),
            fields: fields(&index.schema(), path)?,
            index,
        })
    }

    /// Whether the index has the symbols field (one made before it has not, and finds no
    /// operator by its symbol).
    pub fn has_symbols(&self) -> bool {
        self.fields.symbols.is_some()
    }

    /// The generation the last BM25 commit was made for (its payload).
    pub fn committed_generation(&self) -> Result<Option<u64>> {
        let metas = self.index.load_metas().map_err(err(&self.path))?;
        Ok(metas.payload.and_then(|p| p.parse().ok()))
    }

    pub fn writer(&self) -> Result<IndexWriter> {
        let writer = self
            .index
            .writer_with_num_threads(1, 64 << 20)
            .map_err(err(&self.path))?;
        // A writer killed in the middle of a commit leaves files no commit names (a segment's
        // `.del` file with the next opstamp, say); the next commit would need those names
        // again and fail with "FileAlreadyExists". They go first.
        writer
            .garbage_collect_files()
            .wait()
            .map_err(err(&self.path))?;
        Ok(writer)
    }

    /// A writer for a canonical copy: one thread and no merges until [`Bm25::merge_into_one_segment`].
    pub fn canonical_writer(&self) -> Result<IndexWriter> {
        let w = self.writer()?;
        w.set_merge_policy(Box::new(tantivy::indexer::NoMergePolicy));
        Ok(w)
    }

    /// Merges every segment into one, then renames it `00000000000040008000000000000001`, so
    /// that the same documents give the same files (tantivy names segments at random).
    pub fn merge_into_one_segment(&self, mut writer: IndexWriter) -> Result<()> {
        let ids = self
            .index
            .searchable_segment_ids()
            .map_err(err(&self.path))?;
        if ids.len() > 1 {
            writer.merge(&ids).wait().map_err(err(&self.path))?;
        }
        let _ = writer.garbage_collect_files().wait();
        writer.wait_merging_threads().map_err(err(&self.path))?;
        let metas = self.index.load_metas().map_err(err(&self.path))?;
        let [segment] = metas.segments.as_slice() else {
            return Ok(()); // no documents: no segment to name
        };
        let old = segment.id().uuid_string();
        let new = "00000000000040008000000000000001";
        let io = |path: &Path| {
            let path = path.to_owned();
            move |source| Error::Io { path, source }
        };
        for entry in std::fs::read_dir(&self.path).map_err(io(&self.path))? {
            let entry = entry.map_err(io(&self.path))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            if let Some(rest) = name.strip_prefix(&old) {
                let to = self.path.join(format!("{new}{rest}"));
                std::fs::rename(entry.path(), &to).map_err(io(&to))?;
            }
        }
        // meta.json names the segment (as a hyphenated UUID); .managed.json lists the files
        // tantivy made, from a hash set: both are rewritten, the list sorted.
        let hyphenated = |s: &str| {
            format!(
                "{}-{}-{}-{}-{}",
                &s[..8],
                &s[8..12],
                &s[12..16],
                &s[16..20],
                &s[20..]
            )
        };
        let meta = self.path.join("meta.json");
        let text = std::fs::read_to_string(&meta).map_err(io(&meta))?;
        let text = text
            .replace(&hyphenated(&old), &hyphenated(new))
            .replace(&old, new);
        std::fs::write(&meta, text).map_err(io(&meta))?;
        let managed = self.path.join(".managed.json");
        if let Ok(text) = std::fs::read_to_string(&managed) {
            let mut files: Vec<String> = serde_json::from_str(&text).unwrap_or_default();
            for f in &mut files {
                *f = f.replace(&old, new);
            }
            files.sort();
            let json = serde_json::to_string(&files).expect("strings serialize");
            std::fs::write(&managed, json).map_err(io(&managed))?;
        }
        Ok(())
    }

    /// Indexes a chunk; `in_code` when its text begins inside a code block.
    pub fn add(
        &self,
        writer: &IndexWriter,
        id: u64,
        title: &str,
        text: &str,
        in_code: bool,
    ) -> Result<()> {
        let mut doc = TantivyDocument::default();
        doc.add_u64(self.fields.id, id);
        doc.add_text(self.fields.title, title);
        doc.add_text(self.fields.text, text);
        if let Some(symbols) = self.fields.symbols {
            doc.add_text(symbols, title);
            doc.add_text(symbols, prose(text, in_code));
        }
        writer.add_document(doc).map_err(err(&self.path))?;
        Ok(())
    }

    pub fn delete(&self, writer: &IndexWriter, id: u64) {
        writer.delete_term(Term::from_field_u64(self.fields.id, id));
    }

    pub fn commit(&self, writer: &mut IndexWriter, generation: u64) -> Result<()> {
        let mut prepared = writer.prepare_commit().map_err(err(&self.path))?;
        prepared.set_payload(&generation.to_string());
        prepared.commit().map_err(err(&self.path))?;
        Ok(())
    }

    pub fn reader(&self) -> Result<IndexReader> {
        self.index
            .reader_builder()
            .reload_policy(ReloadPolicy::Manual)
            .try_into()
            .map_err(err(&self.path))
    }

    /// All chunk ids in the index (for repairs after a crash).
    pub fn all_ids(&self) -> Result<Vec<u64>> {
        let reader = self.reader()?;
        let searcher = reader.searcher();
        let mut ids = Vec::new();
        for segment in searcher.segment_readers() {
            let column = segment
                .fast_fields()
                .u64("chunk_id")
                .map_err(err(&self.path))?;
            for doc in segment.doc_ids_alive() {
                ids.extend(column.values_for_doc(doc));
            }
        }
        ids.sort_unstable();
        Ok(ids)
    }

    /// The symbols a query asks about ([`symbols`]), deduplicated; not the question mark that
    /// ends it.
    pub fn query_symbols(query: &str) -> Vec<String> {
        let query = query.trim_end();
        let query = query.strip_suffix('?').unwrap_or(query);
        let mut out: Vec<String> = Vec::new();
        for (from, to) in symbols(query) {
            if !out.iter().any(|s| *s == query[from..to]) {
                out.push(query[from..to].to_owned());
            }
        }
        out
    }

    /// Query terms after analysis (lowercased, stemmed, stop words dropped), deduplicated.
    pub fn terms(query: &str) -> Vec<String> {
        let mut a = analyzer();
        let mut stream = a.token_stream(query);
        let mut out: Vec<String> = Vec::new();
        while let Some(t) = stream.next() {
            if !out.contains(&t.text) {
                out.push(t.text.clone());
            }
        }
        out
    }

    /// How many indexed chunks hold each of `terms` (analysed terms, as [`Self::terms`]
    /// gives), and how many chunks there are.
    pub fn doc_freqs(&self, reader: &IndexReader, terms: &[String]) -> Result<(u64, Vec<u64>)> {
        let searcher = reader.searcher();
        let mut out = Vec::with_capacity(terms.len());
        for t in terms {
            let term = Term::from_field_text(self.fields.text, t);
            out.push(searcher.doc_freq(&term).map_err(err(&self.path))?);
        }
        Ok((searcher.num_docs(), out))
    }

    /// BM25 search: chunk ids with scores, best first.
    pub fn search(
        &self,
        reader: &IndexReader,
        query: &str,
        k: usize,
        title_boost: f32,
    ) -> Result<Vec<(u64, f32)>> {
        let terms = Self::terms(query);
        let symbols = match self.fields.symbols {
            Some(field) => Self::query_symbols(query)
                .into_iter()
                .map(|s| (field, s))
                .collect(),
            None => Vec::new(),
        };
        if (terms.is_empty() && symbols.is_empty()) || k == 0 {
            return Ok(Vec::new());
        }
        // A word and its short forms are one word of the query: the better match counts, not
        // both.
        let word =
            |field: Field, t: &str| -> Box<dyn Query> {
                let query = |text: &str| -> Box<dyn Query> {
                    Box::new(TermQuery::new(
                        Term::from_field_text(field, text),
                        IndexRecordOption::WithFreqs,
                    ))
                };
                let others = other_forms(t);
                if others.is_empty() {
                    return query(t);
                }
                let mut forms = vec![query(t)];
                forms.extend(others.iter().map(|o| {
                    Box::new(BoostQuery::new(query(o), SHORT_FORM_BOOST)) as Box<dyn Query>
                }));
                Box::new(DisjunctionMaxQuery::new(forms))
            };
        let mut clauses: Vec<(Occur, Box<dyn Query>)> = Vec::new();
        for t in &terms {
            clauses.push((Occur::Should, word(self.fields.text, t)));
            if title_boost > 0.0 {
                clauses.push((
                    Occur::Should,
                    Box::new(BoostQuery::new(word(self.fields.title, t), title_boost)),
                ));
            }
        }
        let searcher = reader.searcher();
        // A symbol counts its inverse document frequency, as a word found once in a passage of
        // the usual length does: most passages hold no symbol, so the field's lengths are
        // near nothing, and BM25's length norm would count a passage with a few symbols down.
        let chunks = searcher.num_docs() as f32;
        for (field, symbol) in &symbols {
            let term = Term::from_field_text(*field, symbol);
            let holding = searcher.doc_freq(&term).map_err(err(&self.path))? as f32;
            if holding == 0.0 {
                continue;
            }
            let idf = (1.0 + (chunks - holding + 0.5) / (holding + 0.5)).ln();
            clauses.push((
                Occur::Should,
                Box::new(ConstScoreQuery::new(
                    Box::new(TermQuery::new(term, IndexRecordOption::Basic)),
                    idf,
                )),
            ));
        }
        let query = BooleanQuery::new(clauses);
        let top = searcher
            .search(&query, &TopDocs::with_limit(k).order_by_score())
            .map_err(err(&self.path))?;
        // Chunk ids come from the fast-field column, not the document store (no decompression).
        let mut columns = Vec::with_capacity(searcher.segment_readers().len());
        for segment in searcher.segment_readers() {
            columns.push(
                segment
                    .fast_fields()
                    .u64("chunk_id")
                    .map_err(err(&self.path))?,
            );
        }
        let mut out = Vec::with_capacity(top.len());
        for (score, addr) in top {
            if let Some(id) = columns[addr.segment_ord as usize].first(addr.doc_id) {
                out.push((id, score));
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn found(text: &str) -> Vec<&str> {
        symbols(text)
            .into_iter()
            .map(|(a, b)| &text[a..b])
            .collect()
    }

    #[test]
    fn symbols_on_their_own_are_found_and_code_is_not_split() {
        assert_eq!(
            found("The `?` operator and the ? shortcut; `..=` and `@`."),
            ["?", "?", "..=", "@"]
        );
        assert_eq!(found("The unary - (minus) operator, and ‘%’."), ["-", "%"]);
        assert_eq!(found("let x = f()?; y.z(-1) // é → `a`"), ["=", "//"]);
        assert_eq!(
            found("Four or more: `....` is not one."),
            Vec::<&str>::new()
        );
        // Markdown's marks are not.
        assert_eq!(
            found("* item\n  - nested * here\n## Head\n> quote\n| a | `|` |\n|---|---|\n"),
            ["*"]
        );
    }

    #[test]
    fn symbols_are_read_from_prose_not_code() {
        let text = "Use `->` for the type.\n```rust\nfn f() -> u8 { 1 }\n```\nAfter `=>`.\n";
        assert_eq!(found(&prose(text, false)), ["->", "=>"]);
        // A chunk that begins inside a block.
        assert_eq!(found(&prose("x => y\n```\nThe `?` one.\n", true)), ["?"]);
    }

    #[test]
    fn a_query_asks_for_its_symbols_not_its_question_mark() {
        assert_eq!(Bm25::query_symbols("What does the ? operator do?"), ["?"]);
        assert_eq!(Bm25::query_symbols("What is the ! type ?"), ["!"]);
        assert_eq!(
            Bm25::query_symbols("What is a closure?"),
            Vec::<String>::new()
        );
    }
}
