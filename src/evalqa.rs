//! `cairn eval qa`: question answering on a SQuAD v1.1 file, through the real `ask` path.
//!
//! Every context paragraph becomes a document (`# Article title` then the paragraph) in a
//! throwaway knowledge base; `--remove-articles N` then removes N whole articles with
//! `cairn remove`'s code, which makes their questions unanswerable from the knowledge base.
//! Every question goes through [`Engine::ask`]: retrieval, context assembly, the model,
//! citations and abstention, exactly as `cairn ask` runs them.
//!
//! A question set over documents (`.jsonl`, such as `eval/docs-qa/questions.jsonl`) is read
//! the same way: the pages listed in `pages.txt` beside it are copied from `--root` into the
//! throwaway knowledge base (as `corpus/PAGE`), and questions about pages left out of it are
//! the unanswerable ones. Its halves are `calibration` (`--articles even`) and `check`
//! (`--articles odd`).

use std::collections::HashSet;
use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Context as _, Result};
use cairn_index::Reader;

use crate::eval::percentile;
use cairn_engine::MiniLm;
use cairn_engine::{Abstain, AskOptions, Engine, Quiet};

/// Which articles of the file to use: the even-numbered ones calibrate, the odd-numbered ones
/// check what was calibrated.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Articles {
    All,
    Even,
    Odd,
}

pub struct QaSettings {
    pub file: PathBuf,
    /// Where a `.jsonl` question set's pages are.
    pub root: Option<PathBuf>,
    pub model: String,
    pub articles: Articles,
    pub limit: Option<usize>,
    pub remove_articles: usize,
    pub retrieval_only: bool,
    pub json: bool,
    /// Write one JSON line per question here.
    pub dump: Option<PathBuf>,
    /// Give the model only the gold paragraph's passages (answerable questions).
    pub oracle: bool,
    pub options: AskOptions,
}

struct Qa {
    question: String,
    answers: Vec<String>,
    /// Document key of the gold paragraph.
    doc: String,
    article: usize,
    /// Whether the knowledge base holds the gold document.
    answerable: bool,
}

/// One line of a `.jsonl` question set.
#[derive(serde::Deserialize)]
struct DocsQuestion {
    question: String,
    answers: Vec<String>,
    /// The page that answers it, relative to `--root`.
    page: String,
    answerable: bool,
    /// `calibration` or `check`.
    split: String,
}

/// Reads a `.jsonl` question set and copies its knowledge base's pages into `corpus`.
fn docs_questions(s: &QaSettings, corpus: &std::path::Path) -> Result<Vec<Qa>> {
    let root = s.root.as_ref().with_context(|| {
        format!(
            "{}: a question set needs --root, the folder its pages are read from",
            s.file.display()
        )
    })?;
    let list = s
        .file
        .parent()
        .unwrap_or(std::path::Path::new("."))
        .join("pages.txt");
    let pages: HashSet<String> = std::fs::read_to_string(&list)
        .with_context(|| format!("reading {}", list.display()))?
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(str::to_owned)
        .collect();
    for page in &pages {
        let to = corpus.join(page);
        std::fs::create_dir_all(to.parent().unwrap_or(corpus))?;
        std::fs::copy(root.join(page), &to)
            .with_context(|| format!("{}: copying {page}", list.display()))?;
    }
    let raw = std::fs::read_to_string(&s.file)
        .with_context(|| format!("reading {}", s.file.display()))?;
    let mut qas = Vec::new();
    for (n, line) in raw
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
    {
        let q: DocsQuestion = serde_json::from_str(line)
            .with_context(|| format!("{}:{}: not a question", s.file.display(), n + 1))?;
        anyhow::ensure!(
            q.answerable == pages.contains(&q.page),
            "{}:{}: {} is {}in pages.txt, but the question is {}answerable",
            s.file.display(),
            n + 1,
            q.page,
            if pages.contains(&q.page) { "" } else { "not " },
            if q.answerable { "" } else { "un" }
        );
        let take = match s.articles {
            Articles::All => true,
            Articles::Even => q.split == "calibration",
            Articles::Odd => q.split == "check",
        };
        if take {
            qas.push(Qa {
                question: q.question,
                answers: q.answers,
                doc: format!("corpus/{}", q.page),
                article: 0,
                answerable: q.answerable,
            });
        }
    }
    Ok(qas)
}

/// SQuAD's answer normalisation: lowercase, no punctuation, no articles, single spaces.
fn normalize(s: &str) -> String {
    let lower: String = s
        .to_lowercase()
        .chars()
        .map(|c| if c.is_ascii_punctuation() { ' ' } else { c })
        .collect();
    lower
        .split_whitespace()
        .filter(|w| !matches!(*w, "a" | "an" | "the"))
        .collect::<Vec<_>>()
        .join(" ")
}

fn exact(pred: &str, gold: &str) -> f64 {
    f64::from(u8::from(normalize(pred) == normalize(gold)))
}

/// SQuAD token F1.
fn f1(pred: &str, gold: &str) -> f64 {
    let p = normalize(pred);
    let g = normalize(gold);
    let p: Vec<&str> = p.split_whitespace().collect();
    let g: Vec<&str> = g.split_whitespace().collect();
    if p.is_empty() || g.is_empty() {
        return f64::from(u8::from(p == g));
    }
    let mut counts: std::collections::HashMap<&str, i32> = std::collections::HashMap::new();
    for w in &g {
        *counts.entry(w).or_default() += 1;
    }
    let mut common = 0;
    for w in &p {
        if let Some(c) = counts.get_mut(w) {
            if *c > 0 {
                *c -= 1;
                common += 1;
            }
        }
    }
    if common == 0 {
        return 0.0;
    }
    let precision = f64::from(common) / p.len() as f64;
    let recall = f64::from(common) / g.len() as f64;
    2.0 * precision * recall / (precision + recall)
}

fn best(answers: &[String], f: impl Fn(&str) -> f64) -> f64 {
    answers.iter().map(|a| f(a)).fold(0.0, f64::max)
}

fn slug(title: &str) -> String {
    title
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect()
}

/// Evenly spaced picks of `n` out of `len`.
fn spread(len: usize, n: usize) -> Vec<usize> {
    let n = n.min(len);
    (0..n).map(|i| (2 * i + 1) * len / (2 * n)).collect()
}

pub fn qa(s: &QaSettings) -> Result<()> {
    let tmp = tempfile::tempdir()?;
    let corpus = tmp.path().join("corpus");
    let mut qas: Vec<Qa> = Vec::new();
    let mut kept_articles: Vec<(usize, String)> = Vec::new();
    let data: serde_json::Value;
    let articles: &[serde_json::Value] = if s.file.extension().is_some_and(|e| e == "jsonl") {
        qas = docs_questions(s, &corpus)?;
        &[]
    } else {
        let raw = std::fs::read_to_string(&s.file)
            .with_context(|| format!("reading {}", s.file.display()))?;
        data = serde_json::from_str(&raw)
            .with_context(|| format!("{}: not JSON", s.file.display()))?;
        data["data"]
            .as_array()
            .with_context(|| format!("{}: no `data` array (not SQuAD v1.1)", s.file.display()))?
    };
    for (ai, a) in articles.iter().enumerate() {
        let take = match s.articles {
            Articles::All => true,
            Articles::Even => ai % 2 == 0,
            Articles::Odd => ai % 2 == 1,
        };
        if !take {
            continue;
        }
        let title = a["title"].as_str().unwrap_or("untitled");
        let stem = format!("{ai:03}-{}", slug(title));
        let dir = corpus.join(&stem);
        std::fs::create_dir_all(&dir)?;
        for (pi, p) in a["paragraphs"].as_array().into_iter().flatten().enumerate() {
            let text = p["context"].as_str().unwrap_or("");
            let name = format!("p{pi:03}.md");
            std::fs::write(
                dir.join(&name),
                format!("# {}\n\n{text}\n", title.replace('_', " ")),
            )?;
            for q in p["qas"].as_array().into_iter().flatten() {
                qas.push(Qa {
                    question: q["question"].as_str().unwrap_or("").to_owned(),
                    answers: q["answers"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .filter_map(|x| x["text"].as_str().map(str::to_owned))
                        .collect(),
                    doc: format!("corpus/{stem}/{name}"),
                    article: ai,
                    answerable: true,
                });
            }
        }
        kept_articles.push((ai, stem));
    }
    anyhow::ensure!(!qas.is_empty(), "{}: no questions", s.file.display());
    let removed: HashSet<usize> = spread(kept_articles.len(), s.remove_articles)
        .into_iter()
        .map(|i| kept_articles[i].0)
        .collect();
    for q in &mut qas {
        q.answerable &= !removed.contains(&q.article);
    }

    let kb = tmp.path().join("kb");
    let t0 = Instant::now();
    {
        let embedder = MiniLm::load()?;
        let (mut writer, _) = crate::eval::index_folder(&corpus, &kb, &embedder)?;
        for (ai, stem) in &kept_articles {
            if removed.contains(ai) {
                let gone = writer.remove(&format!("corpus/{stem}"))?;
                anyhow::ensure!(!gone.is_empty(), "removing article {stem} removed nothing");
            }
        }
    }
    let index_secs = t0.elapsed().as_secs_f64();
    let chunks = Reader::open(&kb)?.status()?.chunks;

    let picked: Vec<usize> = match s.limit {
        Some(n) if n < qas.len() => spread(qas.len(), n),
        _ => (0..qas.len()).collect(),
    };
    let mut engine = Engine::open(&kb, &s.model)?;
    let mut dump = match &s.dump {
        Some(p) => Some(std::io::BufWriter::new(
            std::fs::File::create(p).with_context(|| format!("creating {}", p.display()))?,
        )),
        None => None,
    };
    let tty = std::io::stderr().is_terminal();
    let mut rows: Vec<Row> = Vec::with_capacity(picked.len());
    for (n, &qi) in picked.iter().enumerate() {
        let q = &qas[qi];
        let answerable = q.answerable;
        // Measured as the gates measure them: a question's form is not what it asks.
        let weights = engine
            .retrieval
            .reader
            .term_weights(&cairn_retriever::terms::asked(&q.question))?;
        // Each question is timed as a lone `ask`: nothing the previous one left in the cache
        // (the same paragraph's sources, often) is reused.
        engine.generator.forget_beyond_prefix();
        let (mut row, context) = if s.retrieval_only {
            let r = engine.retrieval.retrieve(&q.question, &s.options)?;
            let row = Row::retrieval(q, answerable, &r.hits, &r.context, &weights);
            (row, r.context)
        } else if s.oracle && answerable {
            let r = engine
                .retrieval
                .retrieve_where(&q.question, &s.options, &|h| h.chunk.doc == q.doc)?;
            let a = cairn_engine::answer(
                &mut engine.generator,
                &q.question,
                r,
                &s.options,
                &mut Quiet,
            )?;
            (Row::answered(q, answerable, &a, &weights), a.context)
        } else {
            let a = engine.ask(&q.question, &s.options, &mut Quiet)?;
            (Row::answered(q, answerable, &a, &weights), a.context)
        };
        row.words = cairn_engine::question_words(
            &|w| engine.retrieval.embedder.word_id(w),
            &q.question,
            &context,
        );
        if let Some(d) = &mut dump {
            writeln!(d, "{}", row.json(q))?;
        }
        if tty {
            eprint!("\r{}/{} questions", n + 1, picked.len());
        }
        rows.push(row);
    }
    if tty {
        eprintln!();
    }
    if let Some(d) = &mut dump {
        d.flush()?;
    }
    report(s, &rows, chunks, index_secs, engine.generator.name())
}

struct Row {
    answerable: bool,
    abstained: Option<Abstain>,
    em: f64,
    f1: f64,
    /// Whether the answer contains a gold answer (normalized as for EM).
    contains: bool,
    /// Some(whether a cited source contains a gold answer), None without citations.
    citation_ok: Option<bool>,
    recall: bool,
    /// The number of the first source drawn from the gold paragraph.
    gold_source: Option<usize>,
    /// The model's log-probabilities of its answer tokens.
    logprobs: Vec<f32>,
    quote_coverage: Option<f32>,
    /// The self-check's yes − no margin, when it ran.
    self_check: Option<f32>,
    /// What the question asks a member of, when the answer's sources were not about it.
    off_scope: Option<String>,
    /// For a quoted answer: log P(refusal), log P(best quote start) at the first token.
    start: Option<(f32, f32)>,
    /// Names in the question that no retrieved passage contains.
    missing_names: Vec<String>,
    /// Each source's fused score and best cosine, in order.
    source_scores: Vec<(f32, Option<f32>)>,
    best_dense: f32,
    /// Share of the question's content words found in its best-covered passage.
    coverage: f32,
    /// The same share weighted by each word's inverse document frequency in the index.
    term_coverage: f32,
    /// The question's index terms: each with its weight and whether some hit holds it.
    terms: Vec<(String, f32, bool)>,
    /// The question's words with their rank in general English (the embedder's vocabulary id
    /// of the whole word, `None` when it has none) and whether the best source holds them.
    words: Vec<(String, Option<u32>, bool)>,
    /// The sources the answer cites: number, document, heading path and text.
    cited: Vec<(usize, String, Vec<String>, String)>,
    ttft_ms: f64,
    /// The self-check's time beyond the prompt's pass, when it ran.
    check_ms: f64,
    total_ms: f64,
    context_tokens: usize,
    answer: String,
}

impl Row {
    fn retrieval(
        q: &Qa,
        answerable: bool,
        hits: &[cairn_retriever::Hit],
        context: &cairn_retriever::Context,
        weights: &[(String, f32)],
    ) -> Row {
        Row {
            answerable,
            abstained: None,
            em: 0.0,
            f1: 0.0,
            contains: false,
            citation_ok: None,
            recall: hits.iter().any(|h| h.chunk.doc == q.doc),
            gold_source: context
                .sources
                .iter()
                .find(|s| s.doc == q.doc)
                .map(|s| s.number),
            source_scores: context.sources.iter().map(|s| (s.score, s.dense)).collect(),
            logprobs: Vec::new(),
            quote_coverage: None,
            self_check: None,
            off_scope: None,
            start: None,
            missing_names: cairn_retriever::terms::missing_names(
                &q.question,
                hits.iter().map(|h| h.chunk.text.as_str()),
            ),
            best_dense: hits
                .iter()
                .filter_map(|h| h.fused.dense.map(|d| d.score))
                .fold(f32::NEG_INFINITY, f32::max),
            coverage: cairn_retriever::terms::coverage(
                &cairn_retriever::terms::asked(&q.question),
                hits.iter().map(|h| h.chunk.text.as_str()),
            ),
            terms: {
                let held: HashSet<String> = hits
                    .iter()
                    .flat_map(|h| Reader::analyse(&h.chunk.text))
                    .collect();
                weights
                    .iter()
                    .map(|(t, w)| (t.clone(), *w, held.contains(t)))
                    .collect()
            },
            words: Vec::new(),
            cited: Vec::new(),
            term_coverage: cairn_retriever::terms::weighted_coverage(
                weights,
                hits.iter().map(|h| h.chunk.text.as_str()),
                Reader::analyse,
            ),
            ttft_ms: 0.0,
            check_ms: 0.0,
            total_ms: 0.0,
            context_tokens: context.tokens,
            answer: String::new(),
        }
    }

    fn answered(
        q: &Qa,
        answerable: bool,
        a: &cairn_engine::Answer,
        weights: &[(String, f32)],
    ) -> Row {
        let mut row = Row::retrieval(q, answerable, &a.hits, &a.context, weights);
        row.abstained = a.abstained;
        row.logprobs.clone_from(&a.logprobs);
        row.quote_coverage = a.quote_coverage;
        row.self_check = a.self_check;
        row.off_scope.clone_from(&a.gates.off_scope);
        row.start = a.start.map(|c| (c.reply, c.other));
        row.answer.clone_from(&a.answer);
        row.ttft_ms = a.timings.ttft_ms;
        row.check_ms = a.timings.check_ms;
        row.total_ms = a.timings.total_ms;
        if a.abstained.is_none() {
            row.em = best(&q.answers, |g| exact(&a.answer, g));
            row.f1 = best(&q.answers, |g| f1(&a.answer, g));
            let said = format!(" {} ", normalize(&a.answer));
            row.contains = q.answers.iter().any(|g| {
                let g = normalize(g);
                !g.is_empty() && said.contains(&format!(" {g} "))
            });
            let cited: HashSet<usize> = a
                .claims
                .iter()
                .flat_map(|c| c.citations.iter().map(|x| x.source))
                .collect();
            row.cited = a
                .context
                .sources
                .iter()
                .filter(|s| cited.contains(&s.number))
                .map(|s| (s.number, s.doc.clone(), s.heading.clone(), s.text()))
                .collect();
            if !cited.is_empty() {
                let golds: Vec<String> = q.answers.iter().map(|g| normalize(g)).collect();
                row.citation_ok = Some(a.context.sources.iter().any(|s| {
                    cited.contains(&s.number) && {
                        let t = normalize(&s.text());
                        golds.iter().any(|g| t.contains(g.as_str()))
                    }
                }));
            }
        }
        row
    }

    fn json(&self, q: &Qa) -> serde_json::Value {
        serde_json::json!({
            "question": q.question,
            "gold": q.answers,
            "answerable": self.answerable,
            "answer": self.answer,
            "abstained": self.abstained,
            "em": self.em,
            "f1": self.f1,
            "contains_gold": self.contains,
            "citation_ok": self.citation_ok,
            "recall": self.recall,
            "gold_source": self.gold_source,
            "source_scores": self.source_scores,
            "logprobs": self.logprobs,
            "quote_coverage": self.quote_coverage,
            "self_check": self.self_check,
            "off_scope": self.off_scope,
            "start": self.start.map(|(r, o)| serde_json::json!({"reply": finite(r), "other": finite(o)})),
            "missing_names": self.missing_names,
            "term_coverage": self.term_coverage,
            "words": self.words,
            "terms": self.terms,
            "best_dense": self.best_dense,
            "coverage": self.coverage,
            "context_tokens": self.context_tokens,
            "cited": self.cited.iter().map(|(n, doc, heading, text)| serde_json::json!({
                "number": n, "doc": doc, "heading": heading, "text": text,
            })).collect::<Vec<_>>(),
            "ttft_ms": self.ttft_ms,
            "check_ms": self.check_ms,
        })
    }
}

/// JSON has no infinities: `None` stands for minus infinity.
fn finite(x: f32) -> Option<f32> {
    x.is_finite().then_some(x)
}

fn mean(xs: impl Iterator<Item = f64>) -> f64 {
    let (s, n) = xs.fold((0.0, 0usize), |(s, n), x| (s + x, n + 1));
    if n == 0 {
        0.0
    } else {
        s / n as f64
    }
}

fn report(s: &QaSettings, rows: &[Row], chunks: u64, index_secs: f64, model: &str) -> Result<()> {
    let ans: Vec<&Row> = rows.iter().filter(|r| r.answerable).collect();
    let unans: Vec<&Row> = rows.iter().filter(|r| !r.answerable).collect();
    let answered: Vec<&&Row> = ans.iter().filter(|r| r.abstained.is_none()).collect();
    let cited: Vec<bool> = answered.iter().filter_map(|r| r.citation_ok).collect();
    let rate = |v: &[&Row], f: &dyn Fn(&Row) -> bool| {
        if v.is_empty() {
            0.0
        } else {
            v.iter().filter(|r| f(r)).count() as f64 / v.len() as f64
        }
    };
    let mut ttft: Vec<f64> = rows
        .iter()
        .filter(|r| r.ttft_ms > 0.0)
        .map(|r| r.ttft_ms)
        .collect();
    let mut check: Vec<f64> = rows
        .iter()
        .filter(|r| r.check_ms > 0.0)
        .map(|r| r.check_ms)
        .collect();
    let mut total: Vec<f64> = rows.iter().map(|r| r.total_ms).collect();
    total.sort_by(f64::total_cmp);
    let by_reason = |why: Abstain| rows.iter().filter(|r| r.abstained == Some(why)).count();
    let v = serde_json::json!({
        "file": s.file.display().to_string(),
        "model": model,
        "articles": s.articles,
        "questions": rows.len(),
        "answerable": ans.len(),
        "unanswerable": unans.len(),
        "chunks": chunks,
        "index_s": index_secs,
        "budget": s.options.budget,
        "k": s.options.k,
        "min_relevance": s.options.min_relevance,
        "min_coverage": s.options.min_coverage,
        "free": s.options.free,
        "self_check_margin": s.options.self_check.margin(model, s.options.free),
        "stop_bias": s.options.stop_bias,
        "min_start_logprob": s.options.min_start_logprob,
        "min_quote_coverage": s.options.min_quote_coverage,
        "refusal_bias": s.options.refusal_bias,
        "min_relative_score": s.options.min_relative_score,
        "min_named_coverage": s.options.min_named_coverage,
        "min_rare_coverage": s.options.min_rare_coverage,
        "retrieval_only": s.retrieval_only,
        "exact_match": mean(ans.iter().map(|r| r.em)),
        "f1": mean(ans.iter().map(|r| r.f1)),
        "f1_answered": mean(answered.iter().map(|r| r.f1)),
        "contains_gold": rate(&ans, &|r| r.contains),
        "recall_at_k": rate(&ans, &|r| r.recall),
        "abstain_answerable": rate(&ans, &|r| r.abstained.is_some()),
        "abstain_unanswerable": rate(&unans, &|r| r.abstained.is_some()),
        "abstain_reasons": {
            "retrieval": by_reason(Abstain::Retrieval),
            "model": by_reason(Abstain::Model),
            "unsupported": by_reason(Abstain::Unsupported),
            "self_check": by_reason(Abstain::SelfCheck),
        },
        "citation_accuracy": if cited.is_empty() { 0.0 } else {
            cited.iter().filter(|&&b| b).count() as f64 / cited.len() as f64
        },
        "cited_answers": cited.len(),
        "ttft_ms_p50": if ttft.is_empty() { 0.0 } else { percentile(&mut ttft, 0.5) },
        "ttft_ms_p95": if ttft.is_empty() { 0.0 } else { percentile(&mut ttft, 0.95) },
        "self_checks": check.len(),
        "check_ms_p50": if check.is_empty() { 0.0 } else { percentile(&mut check, 0.5) },
        "check_ms_p95": if check.is_empty() { 0.0 } else { percentile(&mut check, 0.95) },
        "total_ms_mean": mean(total.iter().copied()),
        "context_tokens_mean": mean(rows.iter().map(|r| r.context_tokens as f64)),
    });
    let mut out = std::io::stdout().lock();
    if s.json {
        writeln!(out, "{v}")?;
        return Ok(());
    }
    let pct = |k: &str| 100.0 * v[k].as_f64().unwrap_or(0.0);
    writeln!(
        out,
        "{} questions ({} answerable, {} unanswerable) on {} chunks; model {model}; budget {} tokens, k {}",
        rows.len(),
        ans.len(),
        unans.len(),
        chunks,
        s.options.budget,
        s.options.k
    )?;
    writeln!(
        out,
        "recall@k of the gold paragraph  {:6.1}%",
        pct("recall_at_k")
    )?;
    if !s.retrieval_only {
        writeln!(
            out,
            "exact match                     {:6.1}%",
            pct("exact_match")
        )?;
        writeln!(out, "F1                              {:6.1}%", pct("f1"))?;
        writeln!(
            out,
            "F1 on answered                  {:6.1}%",
            pct("f1_answered")
        )?;
        writeln!(
            out,
            "answer contains a gold answer   {:6.1}%",
            pct("contains_gold")
        )?;
        writeln!(
            out,
            "citation accuracy               {:6.1}%  ({} cited answers)",
            pct("citation_accuracy"),
            cited.len()
        )?;
        writeln!(
            out,
            "abstained, answerable           {:6.1}%",
            pct("abstain_answerable")
        )?;
        if !unans.is_empty() {
            writeln!(
                out,
                "abstained, unanswerable         {:6.1}%",
                pct("abstain_unanswerable")
            )?;
        }
        writeln!(
            out,
            "abstentions by reason           retrieval {}, model {}, unsupported {}, self-check {}",
            by_reason(Abstain::Retrieval),
            by_reason(Abstain::Model),
            by_reason(Abstain::Unsupported),
            by_reason(Abstain::SelfCheck)
        )?;
        writeln!(
            out,
            "time to first token             p50 {:.2} s, p95 {:.2} s; {:.2} s per question",
            v["ttft_ms_p50"].as_f64().unwrap_or(0.0) / 1e3,
            v["ttft_ms_p95"].as_f64().unwrap_or(0.0) / 1e3,
            v["total_ms_mean"].as_f64().unwrap_or(0.0) / 1e3
        )?;
        if !check.is_empty() {
            writeln!(
                out,
                "self-check                      {} answers; beyond the prompt's pass p50 {:.2} s, p95 {:.2} s",
                check.len(),
                v["check_ms_p50"].as_f64().unwrap_or(0.0) / 1e3,
                v["check_ms_p95"].as_f64().unwrap_or(0.0) / 1e3
            )?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn squad_metrics() {
        assert_eq!(normalize("The  Panthers!"), "panthers");
        assert!((f1("the 308 points", "308") - 2.0 * 0.5 * 1.0 / 1.5).abs() < 1e-9);
        assert!((exact("308.", "308") - 1.0).abs() < 1e-12);
        assert!(f1("Denver", "Carolina").abs() < 1e-12);
    }

    #[test]
    fn spread_is_even_and_in_range() {
        assert_eq!(spread(24, 6), [2, 6, 10, 14, 18, 22]);
        assert_eq!(spread(3, 5), [0, 1, 2]);
        assert!(spread(10, 0).is_empty());
    }
}
