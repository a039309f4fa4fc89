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
use tantivy::query::{BooleanQuery, BoostQuery, DisjunctionMaxQuery, Occur, Query, TermQuery};
use tantivy::schema::{
    Field, IndexRecordOption, NumericOptions, Schema, TextFieldIndexing, TextOptions,
};
use tantivy::tokenizer::{
    Language, LowerCaser, RemoveLongFilter, SimpleTokenizer, Stemmer, StopWordFilter, TextAnalyzer,
    TokenStream,
};
use tantivy::{Index, IndexReader, IndexWriter, ReloadPolicy, TantivyDocument, Term};

use crate::error::{Error, Result};

const ANALYZER: &str = "cairn_en";

pub(crate) struct Fields {
    pub id: Field,
    pub text: Field,
    pub title: Field,
}

fn schema() -> (Schema, Fields) {
    let mut b = Schema::builder();
    let indexing = TextFieldIndexing::default()
        .set_tokenizer(ANALYZER)
        .set_index_option(IndexRecordOption::WithFreqsAndPositions);
    let text_opts = TextOptions::default().set_indexing_options(indexing);
    let id = b.add_u64_field(
        "chunk_id",
        NumericOptions::default()
            .set_indexed()
            .set_fast()
            .set_stored(),
    );
    let text = b.add_text_field("text", text_opts.clone());
    let title = b.add_text_field("title", text_opts);
    (b.build(), Fields { id, text, title })
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
        let (schema, fields) = schema();
        let dir = tantivy::directory::MmapDirectory::open(path).map_err(|e| Error::Bm25 {
            path: path.to_owned(),
            message: e.to_string(),
        })?;
        let index = Index::open_or_create(dir, schema).map_err(err(path))?;
        index.tokenizers().register(ANALYZER, analyzer());
        Ok(Bm25 {
            path: path.to_owned(),
            index,
            fields,
        })
    }

    pub fn open(path: &Path) -> Result<Self> {
        let index = Index::open_in_dir(path).map_err(err(path))?;
        index.tokenizers().register(ANALYZER, analyzer());
        let (_, fields) = schema();
        Ok(Bm25 {
            path: path.to_owned(),
            index,
            fields,
        })
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

    pub fn add(&self, writer: &IndexWriter, id: u64, title: &str, text: &str) -> Result<()> {
        let mut doc = TantivyDocument::default();
        doc.add_u64(self.fields.id, id);
        doc.add_text(self.fields.title, title);
        doc.add_text(self.fields.text, text);
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
        if terms.is_empty() || k == 0 {
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
        let query = BooleanQuery::new(clauses);
        let searcher = reader.searcher();
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
