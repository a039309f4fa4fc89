//! `cairn ask`: retrieval → context assembly → generation → citations checked by code.
//!
//! [`Engine`] holds what a question needs (the index snapshot, the embedder, the loaded model)
//! and answers many questions with them; `ask`, `ask --batch` and `eval qa` all go through
//! [`Engine::ask`], so what is measured is what users run.

use std::collections::HashMap;
use std::io::Write;
use std::ops::ControlFlow;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _, Result};
use cairn_generator::{Constraint, GenerateOptions, Generator, LoadOptions, Message, Quote};
use cairn_index::Reader;
use cairn_retriever::context::{user_prompt, EXAMPLES, REFUSAL, SYSTEM_PROMPT};
use cairn_retriever::ground::{ground_one, is_refusal, strip_markers};
use cairn_retriever::{
    assemble, ground, Claim, Context, ContextOptions, Fusion, Hit, Mode, Retriever, SearchOptions,
};

use crate::kb::{location, sanitize, snippet, MiniLm};

/// Version of the JSON an answer is written as (`ask --json`, `ask --batch`); raised whenever a
/// field changes meaning or goes away. `schema/answer.schema.json` describes it.
pub const ANSWER_SCHEMA_VERSION: u32 = 1;

/// Least cosine similarity between the question and its best passage for cairn to ask the model
/// at all. Calibrated with `cairn eval qa --articles even --remove-articles 6` (BENCHMARKS.md):
/// below it, the knowledge base almost never held the answer.
pub const MIN_RELEVANCE: f32 = 0.30;

/// Least share of the question's content words that one retrieved passage must contain for
/// cairn to ask the model: a knowledge base none of whose passages mentions most of what was
/// asked (the names, the things) does not hold the answer, however similar a passage sounds.
/// Calibrated on the even XQuAD articles (`eval qa --retrieval-only`, BENCHMARKS.md): the
/// largest round value that withholds at most 1% of the answerable questions there (0.7%),
/// leaving most of the 5% false-abstention budget to the other checks.
pub const MIN_COVERAGE: f32 = 0.25;

/// Per-question settings.
#[derive(Clone, Debug)]
pub struct AskOptions {
    pub k: usize,
    pub mode: Mode,
    pub fusion: Fusion,
    pub dense_weight: f32,
    /// Context budget in tokens.
    pub budget: usize,
    pub max_tokens: usize,
    pub temperature: f32,
    pub top_p: f32,
    pub seed: u64,
    /// Questions whose best passage is less similar than this are not sent to the model.
    pub min_relevance: f32,
    /// Questions no passage of which holds this share of the question's content words are not
    /// sent to the model.
    pub min_coverage: f32,
    /// When the question names something (a capitalised word past its first) that no retrieved
    /// passage contains, the model is asked only if one passage holds at least this share of
    /// the question's content words.
    pub min_named_coverage: f32,
    /// Passages after the best are given to the model only if their score is at least this
    /// share of the best one's.
    pub min_relative_score: f32,
    /// Added to the end-of-answer logit wherever a quoted span may end (above zero: shorter
    /// quotes).
    pub stop_bias: f32,
    /// A quoted answer must begin with a token the model gives at least this log-probability;
    /// otherwise the model is taken not to have found the answer.
    pub min_start_logprob: f32,
    /// A quoted answer the model was unsure how to begin is withheld when the sentences around
    /// it hold less than this share of the question's content words.
    pub min_quote_coverage: f32,
    /// Let the model word the answer itself instead of quoting a span of the sources.
    pub free: bool,
}

impl Default for AskOptions {
    fn default() -> Self {
        AskOptions {
            k: 8,
            mode: Mode::Hybrid,
            fusion: Fusion::Score,
            dense_weight: 0.4,
            budget: cairn_retriever::context::DEFAULT_BUDGET,
            max_tokens: 200,
            temperature: 0.0,
            top_p: 0.9,
            seed: 0,
            min_relevance: MIN_RELEVANCE,
            min_coverage: MIN_COVERAGE,
            min_named_coverage: MIN_NAMED_COVERAGE,
            min_relative_score: cairn_retriever::context::MIN_RELATIVE_SCORE,
            stop_bias: STOP_BIAS,
            min_start_logprob: MIN_START_LOGPROB,
            min_quote_coverage: MIN_QUOTE_COVERAGE,
            free: false,
        }
    }
}

/// The default [`AskOptions::min_named_coverage`]. Chosen with `eval qa --retrieval-only` on
/// the calibration half of XQuAD (BENCHMARKS.md): with it the retrieval checks together withhold
/// 3.5% of the answerable questions there (2.4% without); misspelt names in questions ("Ghandi")
/// are what it costs.
pub const MIN_NAMED_COVERAGE: f32 = 0.4;

/// The default [`AskOptions::stop_bias`], chosen with `cairn eval qa` on the calibration half
/// of XQuAD (BENCHMARKS.md).
pub const STOP_BIAS: f32 = 1.0;

/// The default [`AskOptions::min_start_logprob`]: a quote must begin with a token the model
/// gives at least e⁻⁴ ≈ 1.8%. Chosen with `cairn eval qa` on the calibration half of XQuAD with
/// the retrieval gates off (BENCHMARKS.md): the largest round value that withheld no more of
/// its answerable questions.
pub const MIN_START_LOGPROB: f32 = -4.0;

/// The default [`AskOptions::min_quote_coverage`], with [`UNSURE_START`]: chosen together on
/// the calibration half of XQuAD with the retrieval gates off (BENCHMARKS.md), as the pair that
/// withheld the most unanswerable questions while all abstentions, the gates' included, stayed
/// under 4.5% of the answerable ones.
pub const MIN_QUOTE_COVERAGE: f32 = 0.15;

/// A quote whose first token had a log-probability below this (p ≈ 22%) counts as one the
/// model was unsure how to begin.
pub const UNSURE_START: f32 = -1.5;

/// Why an answer was withheld.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Abstain {
    /// No passage was relevant enough; the model was not asked.
    Retrieval,
    /// The model said the sources do not answer, or no quote could begin with a token it gave
    /// enough probability.
    Model,
    /// No sentence of the model's answer is supported by the sources, or the answer is a quote
    /// the model was unsure of from a place that speaks of little of the question.
    Unsupported,
}

/// Time spent on one question.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct Timings {
    pub retrieve_ms: f64,
    pub assemble_ms: f64,
    /// From the question to the first answer token (retrieval and prefill included).
    pub ttft_ms: f64,
    pub prefill_ms: f64,
    pub decode_ms: f64,
    pub total_ms: f64,
    pub prompt_tokens: usize,
    /// Prompt tokens whose KV cache was reused from the previous question.
    pub reused_tokens: usize,
    pub answer_tokens: usize,
}

/// One answered (or abstained) question.
#[derive(Clone, Debug)]
#[allow(clippy::struct_field_names)] // `answer.answer` is the answer text, as in the JSON
pub struct Answer {
    pub question: String,
    /// The model's answer with its own citation markers removed (empty when the model was not asked).
    pub answer: String,
    pub abstained: Option<Abstain>,
    pub claims: Vec<Claim>,
    pub context: Context,
    /// The retrieval hits the context came from.
    pub hits: Vec<Hit>,
    /// The model's log-probability of each answer token (and of the stop token), before the
    /// quote constraint narrowed its choice; empty when the model was not asked.
    pub logprobs: Vec<f32>,
    /// For a quoted answer: the share of the question's words around the quote (see
    /// [`cairn_retriever::ground::quote_coverage`]).
    pub quote_coverage: Option<f32>,
    pub timings: Timings,
}

impl Answer {
    /// The answer as the schema describes it (`timings` is the only field that varies between
    /// identical runs).
    pub fn to_json(&self, model: &str, seed: u64) -> serde_json::Value {
        let sources: Vec<serde_json::Value> = self
            .context
            .sources
            .iter()
            .map(|s| {
                serde_json::json!({
                    "number": s.number,
                    "doc": s.doc,
                    "heading": s.heading,
                    "page": s.page,
                    "lines": [s.lines.0, s.lines.1],
                    "rank": s.rank,
                    "score": s.score,
                    "bm25": s.bm25,
                    "dense": s.dense,
                    "excerpts": s.excerpts.iter().map(|e| serde_json::json!({
                        "text": e.text,
                        "lines": [e.lines.0, e.lines.1],
                    })).collect::<Vec<_>>(),
                })
            })
            .collect();
        let sentences: Vec<serde_json::Value> = self
            .claims
            .iter()
            .map(|c| {
                serde_json::json!({
                    "text": c.text,
                    "supported": c.supported,
                    "citations": c.citations.iter().map(|x| serde_json::json!({
                        "source": x.source,
                        "lines": [x.lines.0, x.lines.1],
                        "support": x.support,
                    })).collect::<Vec<_>>(),
                    "quotes": c.quotes.iter().map(|(q, ok)| serde_json::json!({
                        "text": q, "verbatim": ok,
                    })).collect::<Vec<_>>(),
                })
            })
            .collect();
        serde_json::json!({
            "schema_version": ANSWER_SCHEMA_VERSION,
            "question": self.question,
            "answer": self.answer,
            "abstained": self.abstained.is_some(),
            "abstain_reason": self.abstained,
            "sentences": sentences,
            "sources": sources,
            "model": model,
            "seed": seed,
            "timings": self.timings,
        })
    }
}

/// What a question needs, loaded once.
pub struct Engine {
    pub retrieval: Retrieval,
    pub generator: Generator,
}

/// The retrieval half of an [`Engine`]: it shares nothing mutable with the generator, so a
/// batch can retrieve for the next questions on another thread while the model writes.
pub struct Retrieval {
    pub reader: Reader,
    pub embedder: MiniLm,
    /// The generator's tokenizer, to count the context budget in the model's tokens.
    tokenizer: cairn_generator::Tokenizer,
    window: usize,
    /// Prompt tokens besides the sources and the question.
    base_overhead: usize,
}

/// A question's retrieved passages and assembled context.
pub struct Retrieved {
    pub hits: Vec<Hit>,
    pub context: Context,
    pub retrieve_ms: f64,
    pub assemble_ms: f64,
}

/// Receives the answer as it is generated.
pub trait AnswerSink {
    /// The context is ready (before generation).
    fn context(&mut self, _context: &Context) {}
    /// A piece of the answer text.
    fn token(&mut self, _piece: &str) -> ControlFlow<()> {
        ControlFlow::Continue(())
    }
}

/// A sink that wants nothing.
pub struct Quiet;
impl AnswerSink for Quiet {}

impl Engine {
    /// Opens the knowledge base and loads the embedder and the model.
    pub fn open(kb: &Path, model: &str) -> Result<Self> {
        let (reader, embedder) = crate::kb::open_for_search(kb)?;
        let path = crate::model_path(model)?;
        let generator = Generator::load(&path, &LoadOptions { n_ctx: 4096 })
            .with_context(|| format!("loading {}", path.display()))?;
        let base_overhead = generator
            .chat_tokens(&messages("", &Context::default()))?
            .len();
        let mut engine = Engine {
            retrieval: Retrieval {
                reader,
                embedder,
                tokenizer: generator.tokenizer().clone(),
                window: generator.context_window(),
                base_overhead,
            },
            generator,
        };
        engine.prime(model, &path)?;
        Ok(engine)
    }

    /// The tokens every prompt starts with: instructions, examples, the opening of the turn.
    fn fixed_prefix(&self) -> Result<Vec<u32>> {
        let render = |text: &str| {
            let mut m = messages("", &Context::default());
            m.last_mut().expect("a user turn").content = text.into();
            self.generator.chat_tokens(&m)
        };
        let (a, b) = (render("a")?, render("b")?);
        Ok(a.iter()
            .zip(&b)
            .take_while(|(x, y)| x == y)
            .map(|(x, _)| *x)
            .collect())
    }

    /// Puts the fixed prefix's KV cache in place: read from the prompt cache when an earlier
    /// run saved it for this model file, else computed (and saved for the next run).
    fn prime(&mut self, model: &str, path: &Path) -> Result<()> {
        let prefix = self.fixed_prefix()?;
        let identity = if let Some(spec) = crate::models::find(model) {
            spec.files[0].sha256.to_owned()
        } else {
            let meta = std::fs::metadata(path)?;
            format!(
                "{}:{}:{:?}",
                path.display(),
                meta.len(),
                meta.modified().ok()
            )
        };
        let key = {
            let mut bytes =
                format!("cairn-kv1:{identity}:{}:", env!("CARGO_PKG_VERSION")).into_bytes();
            for t in &prefix {
                bytes.extend_from_slice(&t.to_le_bytes());
            }
            cairn_ingest::content_hash(&bytes)
        };
        let file = dirs::cache_dir().map(|d| {
            d.join("cairn")
                .join("prompt-cache")
                .join(format!("{key}.kv"))
        });
        if let Some(kv) = file.as_deref().and_then(|f| prompt_cache::read(f, &prefix)) {
            if self.generator.restore(&prefix, &kv).is_ok() {
                return Ok(());
            }
        }
        self.generator.prime(&prefix)?;
        if let Some(f) = file {
            let (tokens, kv) = self.generator.snapshot(prefix.len());
            // A cache that cannot be written costs the next run a few seconds, nothing more.
            let _ = prompt_cache::write(&f, &tokens, &kv);
        }
        Ok(())
    }

    /// Answers one question.
    pub fn ask(
        &mut self,
        question: &str,
        o: &AskOptions,
        sink: &mut dyn AnswerSink,
    ) -> Result<Answer> {
        let question = question.trim();
        if question.is_empty() {
            bail!("the question is empty");
        }
        let retrieved = self.retrieval.retrieve(question, o)?;
        answer(&mut self.generator, question, retrieved, o, sink)
    }
}

/// Answers a question from its retrieved context with `generator`.
pub fn answer(
    generator: &mut Generator,
    question: &str,
    retrieved: Retrieved,
    o: &AskOptions,
    sink: &mut dyn AnswerSink,
) -> Result<Answer> {
    let start = Instant::now();
    let Retrieved {
        hits,
        context,
        retrieve_ms,
        assemble_ms,
    } = retrieved;
    let before = retrieve_ms + assemble_ms;
    sink.context(&context);
    let mut timings = Timings {
        retrieve_ms,
        assemble_ms,
        ..Timings::default()
    };
    let best = hits
        .iter()
        .filter_map(|h| h.fused.dense.map(|d| d.score))
        .fold(f32::NEG_INFINITY, f32::max);
    let covered =
        cairn_retriever::terms::coverage(question, hits.iter().map(|h| h.chunk.text.as_str()));
    let unnamed = covered < o.min_named_coverage
        && !cairn_retriever::terms::missing_names(
            question,
            hits.iter().map(|h| h.chunk.text.as_str()),
        )
        .is_empty();
    let gate =
        (o.mode != Mode::Bm25 && best < o.min_relevance) || covered < o.min_coverage || unnamed;
    if context.sources.is_empty() || gate {
        timings.total_ms = before + ms(start.elapsed());
        return Ok(Answer {
            question: question.to_owned(),
            answer: String::new(),
            abstained: Some(Abstain::Retrieval),
            claims: Vec::new(),
            context,
            hits,
            logprobs: Vec::new(),
            quote_coverage: None,
            timings,
        });
    }
    let prompt = generator.chat_tokens(&messages(question, &context))?;
    let options = GenerateOptions {
        max_tokens: o.max_tokens,
        sampling: crate::sampling(o.temperature, o.top_p, o.seed),
        ignore_stop_tokens: false,
    };
    let before_generation = start.elapsed();
    let mut forward = |piece: &str| sink.token(piece);
    let mut quote = (!o.free).then(|| {
        let excerpts = context.sources.iter().flat_map(|s| &s.excerpts);
        Quote::new(excerpts.map(|e| e.text.as_str()), [REFUSAL])
            .with_stop_bias(o.stop_bias)
            .with_start_floor(o.min_start_logprob)
    });
    let g = generator.generate_constrained(
        &prompt,
        &options,
        quote.as_mut().map(|q| q as &mut dyn Constraint),
        &mut forward,
    )?;
    // A quote is shown as matched: whitespace runs of the source collapsed to one space.
    let text = quote.as_ref().map_or(g.text, Quote::text);
    let answer = strip_markers(&sanitize(&text));
    // A quoted answer is a refusal only when it is the refusal itself: a source may well
    // contain words such as "not found".
    let refused = if o.free {
        is_refusal(&answer)
    } else {
        answer.trim().is_empty() || answer.trim() == REFUSAL
    };
    let quote_coverage = if o.free || refused {
        None
    } else {
        cairn_retriever::ground::quote_coverage(question, &answer, &context)
    };
    // A quote the model was unsure how to begin, from a place that speaks of little of what
    // was asked, was most likely taken from the wrong passage.
    let misplaced = quote_coverage.is_some_and(|c| c < o.min_quote_coverage)
        && g.logprobs.first().is_some_and(|&l| l < UNSURE_START);
    let (claims, abstained) = if refused {
        (Vec::new(), Some(Abstain::Model))
    } else if misplaced {
        (ground(&answer, &context), Some(Abstain::Unsupported))
    } else {
        let claims = ground(&answer, &context);
        let any = claims
            .iter()
            .any(|c| c.supported && !c.citations.is_empty());
        (claims, (!any).then_some(Abstain::Unsupported))
    };
    timings.ttft_ms = before + ms(before_generation + g.time_to_first_token);
    timings.prefill_ms = ms(g.prefill);
    timings.decode_ms = ms(g.decode);
    timings.prompt_tokens = g.prompt_tokens;
    timings.reused_tokens = g.reused_tokens;
    timings.answer_tokens = g.tokens.len();
    timings.total_ms = before + ms(start.elapsed());
    Ok(Answer {
        question: question.to_owned(),
        answer,
        abstained,
        claims,
        context,
        hits,
        logprobs: g.logprobs,
        quote_coverage,
        timings,
    })
}

impl Retrieval {
    /// Retrieves and assembles the context for a question.
    pub fn retrieve(&self, question: &str, o: &AskOptions) -> Result<Retrieved> {
        self.retrieve_where(question, o, &|_| true)
    }

    /// [`Self::retrieve`], keeping only the hits `keep` accepts (evaluations use it to measure
    /// the model on a known context).
    pub fn retrieve_where(
        &self,
        question: &str,
        o: &AskOptions,
        keep: &dyn Fn(&Hit) -> bool,
    ) -> Result<Retrieved> {
        let t0 = Instant::now();
        let options = SearchOptions {
            mode: o.mode,
            fusion: o.fusion,
            dense_weight: o.dense_weight,
            k: o.k,
            candidates: 100.max(o.k),
        };
        let mut hits = Retriever::new(&self.reader, &self.embedder).search(question, &options)?;
        hits.retain(|h| keep(h));
        let retrieve_ms = ms(t0.elapsed());
        let t1 = Instant::now();
        let count = |s: &str| self.tokenizer.encode(s).map_or(s.len() / 3, |t| t.len());
        let overhead = self.base_overhead + count(question);
        let room = self.window.saturating_sub(overhead + o.max_tokens + 8);
        if room < 32 {
            bail!(
                "the question and --max-tokens {} leave no room for sources in the model's {}-token window",
                o.max_tokens,
                self.window
            );
        }
        let context = assemble(
            question,
            &hits,
            &count,
            &ContextOptions {
                budget: o.budget.min(room),
                max_passages: o.k,
                min_relative_score: o.min_relative_score,
            },
        );
        Ok(Retrieved {
            hits,
            context,
            retrieve_ms,
            assemble_ms: ms(t1.elapsed()),
        })
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// The chat for a question: fixed instructions first (their KV cache is reused), then the
/// sources and the question.
fn messages(question: &str, context: &Context) -> Vec<Message> {
    let mut m = vec![Message::system(SYSTEM_PROMPT)];
    for (user, assistant) in EXAMPLES {
        m.push(Message::user(*user));
        m.push(Message::assistant(*assistant));
    }
    m.push(Message::user(user_prompt(question, context)));
    m
}

/// Streams an answer to the terminal with verified citation markers after each sentence.
///
/// The model's own `[n]` markers are dropped, text that may still become "NOT FOUND" is held
/// back, and each sentence gets ` [n]` (the sources that support it) or ` [?]` once it is
/// complete. Everything printed is sanitized.
pub struct Printer<W: Write> {
    out: W,
    context: Option<Context>,
    full: String,
    printed: String,
    claims: HashMap<String, Claim>,
    pub error: Option<std::io::Error>,
    pub show_context: bool,
}

impl<W: Write> Printer<W> {
    pub fn new(out: W, show_context: bool) -> Self {
        Printer {
            out,
            context: None,
            full: String::new(),
            printed: String::new(),
            claims: HashMap::new(),
            error: None,
            show_context,
        }
    }

    fn marker(&mut self, sentence: &str) -> String {
        let Some(context) = &self.context else {
            return String::new();
        };
        let claim = self
            .claims
            .entry(sentence.to_owned())
            .or_insert_with(|| ground_one(sentence, context));
        marker(claim)
    }

    /// What should be on screen for the text so far.
    fn display(&mut self, finished: bool) -> String {
        let full = sanitize(&self.full);
        let trimmed = full.trim_start();
        if !finished && "NOT FOUND".starts_with(&trimmed.to_uppercase()) {
            return String::new();
        }
        if is_refusal(trimmed) && trimmed.to_uppercase().starts_with("NOT FOUND") {
            return String::new();
        }
        let ranges = cairn_ingest::sentence_ranges(&full);
        let mut shown = String::new();
        let mut at = 0;
        for (i, r) in ranges.iter().enumerate() {
            let last = i + 1 == ranges.len();
            shown.push_str(&full[at..r.start]);
            let sentence = &full[r.clone()];
            if last && !finished {
                // Hold back a marker that may still be open, and trailing spaces.
                let cut = sentence
                    .rfind('[')
                    .filter(|&i| !sentence[i..].contains(']'));
                let partial = strip_markers(&sentence[..cut.unwrap_or(sentence.len())]);
                // A final stop waits: the marker goes before it once the sentence is complete.
                shown.push_str(partial.trim_end_matches(['.', '!', '?']));
                at = r.end;
                break;
            }
            let clean = strip_markers(sentence);
            let m = self.marker(&clean);
            if let Some(stripped) = clean.strip_suffix(['.', '!', '?']) {
                // "…points [1]." reads better than "…points. [1]"; keep the stop after.
                let stop = &clean[stripped.len()..];
                shown.push_str(stripped);
                shown.push_str(&m);
                shown.push_str(stop);
            } else {
                shown.push_str(&clean);
                shown.push_str(&m);
            }
            at = r.end;
        }
        let _ = at;
        shown
    }

    fn emit(&mut self, finished: bool) {
        let shown = sanitize(&self.display(finished));
        if let Some(new) = shown.strip_prefix(self.printed.as_str()) {
            if !new.is_empty() {
                let new = new.to_owned();
                if let Err(e) = self
                    .out
                    .write_all(new.as_bytes())
                    .and_then(|()| self.out.flush())
                {
                    self.error.get_or_insert(e);
                }
                self.printed.push_str(&new);
            }
        }
    }

    /// Ends the answer: the last sentence's marker.
    pub fn finish(&mut self) {
        if self.full.trim().is_empty() {
            return;
        }
        self.emit(true);
        if !self.printed.is_empty() {
            let _ = writeln!(self.out);
        }
    }
}

/// ` [1]`, ` [1,2]` or ` [?]` for a claim.
pub fn marker(claim: &Claim) -> String {
    if claim.citations.is_empty() {
        if claim.supported {
            String::new()
        } else {
            " [?]".into()
        }
    } else {
        let n: Vec<String> = claim
            .citations
            .iter()
            .map(|c| c.source.to_string())
            .collect();
        format!(" [{}]", n.join(","))
    }
}

impl<W: Write> AnswerSink for Printer<W> {
    fn context(&mut self, context: &Context) {
        self.context = Some(context.clone());
        if self.show_context {
            let _ = writeln!(self.out, "Context ({} tokens):", context.tokens);
            for s in &context.sources {
                let _ = writeln!(
                    self.out,
                    "[{}] {}",
                    s.number,
                    location(&s.doc, s.page, s.lines, &s.heading)
                );
                for line in sanitize(&s.text()).lines() {
                    let _ = writeln!(self.out, "    {line}");
                }
            }
            let _ = writeln!(self.out);
        }
    }

    fn token(&mut self, piece: &str) -> ControlFlow<()> {
        self.full.push_str(piece);
        self.emit(false);
        if self.error.is_some() {
            ControlFlow::Break(())
        } else {
            ControlFlow::Continue(())
        }
    }
}

/// The source list and abstention notice printed after an answer.
pub fn print_sources(out: &mut dyn Write, a: &Answer, quote: bool) -> std::io::Result<()> {
    if let Some(reason) = a.abstained {
        let why = match reason {
            Abstain::Retrieval => {
                "no passage is relevant enough, or none mentions most of what was asked"
            }
            Abstain::Model => "the model found no answer in the closest passages",
            Abstain::Unsupported => {
                "the model's answer is not supported by a passage that speaks of the question"
            }
        };
        writeln!(out, "Not found in the knowledge base ({why}).")?;
        if !a.context.sources.is_empty() {
            writeln!(out, "\nClosest passages:")?;
        }
        for s in a.context.sources.iter().take(3) {
            writeln!(
                out,
                "  [{}] {}",
                s.number,
                location(&s.doc, s.page, s.lines, &s.heading)
            )?;
            writeln!(out, "      {}", snippet(&s.text(), 200))?;
        }
    } else {
        let cited: Vec<usize> = {
            let mut v: Vec<usize> = a
                .claims
                .iter()
                .flat_map(|c| c.citations.iter().map(|x| x.source))
                .collect();
            v.sort_unstable();
            v.dedup();
            v
        };
        writeln!(out, "\nSources:")?;
        for s in a
            .context
            .sources
            .iter()
            .filter(|s| cited.contains(&s.number))
        {
            // The lines the answer actually rests on.
            let mut lines: Vec<(u32, u32)> = a
                .claims
                .iter()
                .flat_map(|c| c.citations.iter())
                .filter(|x| x.source == s.number)
                .map(|x| x.lines)
                .collect();
            lines.sort_unstable();
            lines.dedup();
            let span = (
                lines.iter().map(|l| l.0).min().unwrap_or(s.lines.0),
                lines.iter().map(|l| l.1).max().unwrap_or(s.lines.1),
            );
            writeln!(
                out,
                "  [{}] {}",
                s.number,
                location(&s.doc, s.page, span, &s.heading)
            )?;
            if quote {
                for text in quoted_lines(s, &lines) {
                    writeln!(out, "      > {}", sanitize(&text))?;
                }
            }
        }
        if a.claims.iter().any(|c| !c.supported) {
            writeln!(
                out,
                "  [?] marks a sentence no source supports: check it yourself."
            )?;
        }
    }
    Ok(())
}

/// The sentences of a source on the given lines.
fn quoted_lines(s: &cairn_retriever::Source, lines: &[(u32, u32)]) -> Vec<String> {
    let mut out = Vec::new();
    for e in &s.excerpts {
        for r in cairn_ingest::sentence_ranges(&e.text) {
            let first = e.lines.0 + e.text[..r.start].matches('\n').count() as u32;
            let last = e.lines.0 + e.text[..r.end].matches('\n').count() as u32;
            if lines.iter().any(|&(a, b)| first <= b && a <= last) {
                out.push(e.text[r].split_whitespace().collect::<Vec<_>>().join(" "));
            }
        }
    }
    out
}

/// The saved KV cache of the fixed prompt prefix: `CAIRNKV1`, token count and tokens, float
/// count and floats (little-endian), then the SHA-256 of all of that. A file that fails any
/// check is ignored and recomputed.
mod prompt_cache {
    use std::path::Path;

    use sha2::{Digest, Sha256};

    const MAGIC: &[u8; 8] = b"CAIRNKV1";

    pub fn read(path: &Path, tokens: &[u32]) -> Option<Vec<f32>> {
        let bytes = std::fs::read(path).ok()?;
        let (body, sum) = bytes.split_at(bytes.len().checked_sub(32)?);
        if Sha256::digest(body).as_slice() != sum || !body.starts_with(MAGIC) {
            return None;
        }
        let mut at = MAGIC.len();
        let u64_at = |at: &mut usize| -> Option<usize> {
            let v = u64::from_le_bytes(body.get(*at..*at + 8)?.try_into().ok()?);
            *at += 8;
            usize::try_from(v).ok()
        };
        let n = u64_at(&mut at)?;
        let stored: Vec<u32> = body
            .get(at..at.checked_add(n.checked_mul(4)?)?)?
            .chunks_exact(4)
            .map(|c| u32::from_le_bytes(c.try_into().expect("4 bytes")))
            .collect();
        if stored != tokens {
            return None;
        }
        at += n * 4;
        let m = u64_at(&mut at)?;
        let floats = body.get(at..at.checked_add(m.checked_mul(4)?)?)?;
        if at + m * 4 != body.len() {
            return None;
        }
        Some(
            floats
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes(c.try_into().expect("4 bytes")))
                .collect(),
        )
    }

    pub fn write(path: &Path, tokens: &[u32], kv: &[f32]) -> std::io::Result<()> {
        let mut body = Vec::with_capacity(24 + tokens.len() * 4 + kv.len() * 4 + 32);
        body.extend_from_slice(MAGIC);
        body.extend_from_slice(&(tokens.len() as u64).to_le_bytes());
        for t in tokens {
            body.extend_from_slice(&t.to_le_bytes());
        }
        body.extend_from_slice(&(kv.len() as u64).to_le_bytes());
        for v in kv {
            body.extend_from_slice(&v.to_le_bytes());
        }
        let sum = Sha256::digest(&body);
        body.extend_from_slice(&sum);
        let dir = path.parent().expect("a cache file lives in a folder");
        std::fs::create_dir_all(dir)?;
        // Written aside and renamed: a reader never sees half a file.
        let tmp = dir.join(format!(".{}.tmp", std::process::id()));
        std::fs::write(&tmp, &body)?;
        std::fs::rename(&tmp, path)
    }

    #[cfg(test)]
    mod tests {
        #[test]
        fn round_trip_and_rejects() {
            let dir = tempfile::tempdir().unwrap();
            let f = dir.path().join("x.kv");
            super::write(&f, &[1, 2, 3], &[0.5, -1.0]).unwrap();
            assert_eq!(super::read(&f, &[1, 2, 3]), Some(vec![0.5, -1.0]));
            assert_eq!(super::read(&f, &[1, 2]), None, "other tokens");
            let mut bytes = std::fs::read(&f).unwrap();
            bytes[30] ^= 1;
            std::fs::write(&f, bytes).unwrap();
            assert_eq!(super::read(&f, &[1, 2, 3]), None, "corrupted");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cairn_retriever::{Excerpt, Source};

    fn context() -> Context {
        Context {
            sources: vec![Source {
                number: 1,
                doc: "docs/pump.md".into(),
                heading: vec![],
                page: None,
                lines: (3, 3),
                chunks: vec![],
                rank: 1,
                score: 1.0,
                bm25: None,
                dense: None,
                excerpts: vec![Excerpt {
                    text: "The pump needs 3 litres of glycol.".into(),
                    lines: (3, 3),
                }],
                whole: true,
            }],
            tokens: 10,
        }
    }

    fn stream(pieces: &[&str]) -> String {
        let mut out = Vec::new();
        {
            let mut p = Printer::new(&mut out, false);
            p.context(&context());
            for piece in pieces {
                let _ = p.token(piece);
            }
            p.finish();
        }
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn streamed_sentences_get_verified_markers() {
        let out = stream(&[
            "The pump",
            " needs 3",
            " litres",
            " of glycol",
            ".",
            " It is",
            " blue",
            ".",
        ]);
        assert_eq!(
            out,
            "The pump needs 3 litres of glycol [1]. It is blue [?].\n"
        );
    }

    #[test]
    fn model_markers_and_escapes_never_reach_the_terminal() {
        let out = stream(&[
            "The pump needs 3 litres [",
            "2",
            "] of glycol",
            "\u{1b}[31m",
            ".",
        ]);
        assert_eq!(out, "The pump needs 3 litres of glycol [1].\n");
    }

    #[test]
    fn a_refusal_is_not_streamed() {
        assert_eq!(stream(&["NOT", " FOUND"]), "");
        assert_eq!(
            stream(&["No", "vember is cold."]),
            "November is cold [?].\n"
        );
    }
}
