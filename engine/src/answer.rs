//! Answering: retrieval → gates → context assembly → generation → citations checked by code.
//!
//! [`Engine`] holds what a question needs (the index snapshot, the embedder, the loaded model)
//! and answers many questions with them; `ask`, `ask --batch`, `eval qa` and the TUI all go
//! through [`Engine::ask`], so what is measured is what users run.

use std::ops::ControlFlow;
use std::path::Path;
use std::time::{Duration, Instant};

use cairn_generator::{
    Constraint, FinishReason, GenerateOptions, Generator, LoadOptions, Message, Quote, Sampling,
};
use cairn_index::{ChunkRecord, Reader};
use cairn_retriever::context::{
    assemble_following, stops_short, user_prompt, DEFINITION_EXAMPLE, DIFFERENCE_EXAMPLE, EXAMPLES,
    FOLLOWING_CHUNKS, POLAR_ASK, POLAR_EXAMPLE, PURPOSE_EXAMPLE, REASON_EXAMPLE, REFUSAL,
    SYSTEM_PROMPT, TASK_EXAMPLE, WAY_EXAMPLE,
};
use cairn_retriever::ground::{is_refusal, strip_markers};
use cairn_retriever::terms::{restatement, Restatement};
use cairn_retriever::{
    following, ground, search_shelves, search_shelves_asked, Claim, Context, ContextOptions,
    Fusion, Hit, Mode, SearchOptions, Shelf,
};

use crate::text::sanitize;
use crate::{catalog, open_for_search, prompt_cache, Error, MiniLm, Result};

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

/// The default [`AskOptions::min_rare_coverage`]. Calibrated on the calibration halves of
/// XQuAD (even articles) and of the documentation set (`eval/docs-qa`, even pages) together,
/// `eval qa --retrieval-only --dump` (BENCHMARKS.md): of the questions the other checks let
/// through, it withheld 8 of 16 unanswerable documentation questions and none of the 58
/// answerable ones, and 5 of 116 answerable XQuAD questions (0.5 and 0.5 for the two shares;
/// searched over 0.45–0.6 each).
pub const MIN_RARE_COVERAGE: f32 = 0.5;

/// Words at least this common in general English (their rank in the embedder's vocabulary) weigh
/// nothing in [`RareWords`]' English-weighted share; rarer ones weigh the log of how much rarer.
const COMMON_RANK: f32 = 1000.0;

/// Per-question settings.
#[derive(Clone, Debug)]
pub struct AskOptions {
    /// Passages to retrieve.
    pub k: usize,
    /// Which retrieval legs to run.
    pub mode: Mode,
    /// How hybrid mode fuses the legs.
    pub fusion: Fusion,
    /// Weight of the dense leg in hybrid mode.
    pub dense_weight: f32,
    /// Fold a passage into an earlier one when at least this share of its text is already
    /// there (the same text in another file); `None` keeps every passage
    /// ([`SearchOptions::fold_duplicates`]).
    pub fold_duplicates: Option<f32>,
    /// Context budget in tokens.
    pub budget: usize,
    /// Most tokens in the answer.
    pub max_tokens: usize,
    /// Sampling temperature (0: greedy).
    pub temperature: f32,
    /// Nucleus sampling mass.
    pub top_p: f32,
    /// Sampling seed.
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
    /// The model is not asked when both shares of the question's words that the best passage
    /// holds — weighted by their rarity in the knowledge base (BM25's IDF) and by their rarity
    /// in general English — are under this. It catches a question about something the
    /// knowledge base leaves out, whose common words a neighbouring page shares.
    pub min_rare_coverage: f32,
    /// Added to the end-of-answer logit wherever a quoted span may end (above zero: shorter
    /// quotes).
    pub stop_bias: f32,
    /// A quoted answer must begin with a token the model gives at least this log-probability;
    /// otherwise the model is taken not to have found the answer.
    pub min_start_logprob: f32,
    /// A quoted answer the model was unsure how to begin is withheld when the sentences around
    /// it hold less than this share of the question's content words.
    pub min_quote_coverage: f32,
    /// Added to the logits of the refusal's first tokens where a quoted answer begins (below
    /// zero: the model must lean further towards the refusal to give it).
    pub refusal_bias: f32,
    /// Let the model word the answer itself instead of quoting a span of the sources.
    pub free: bool,
    /// Ask the model, on the sources and question already in its cache, whether the sources
    /// state the answer ([`SELF_CHECK`]), and withhold its answer when "Yes" does not lead
    /// "No" by enough.
    pub self_check: SelfCheck,
}

/// The self-check's question, put to the model after the question it was asked (in the same
/// user turn, so all of the sources' KV cache is reused), without its answer: asked after the
/// answer, the model says "Yes" to its own answer whatever the page (BENCHMARKS.md).
pub const SELF_CHECK: &str =
    "Is the answer to this question stated in the sources? Reply Yes or No.";

/// The self-check put to the model after a yes-or-no question ([`cairn_retriever::terms::polar`])
/// in place of [`SELF_CHECK`], whose "Yes" or "No" it would take for the question's own: it is
/// asked to answer the question, or to say it cannot. "Yes" and "No" together against
/// "Unknown" is the check ([`calibrated_polar_check`]); "Yes" against "No" the reply
/// ([`Verdict`]).
pub const POLAR_CHECK: &str = "Going by the sources, answer the question with Yes or No, or \
reply Unknown if they do not say.";

/// The least words of a quote answering a yes-or-no question (the refusal aside).
const POLAR_QUOTE_WORDS: usize = 3;

/// Whether to run the self-check ([`AskOptions::self_check`]), and how far "Yes" must lead.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub enum SelfCheck {
    /// With the margin calibrated for the loaded model ([`calibrated_self_check`]), on quoted
    /// answers; off for a model without one and for free answers, which stream as they are
    /// written and so cannot be withheld after.
    #[default]
    Calibrated,
    /// Never.
    Off,
    /// Withhold when `log P(Yes) − log P(No)` is under this margin (a very low margin scores
    /// without withholding).
    Margin(f32),
}

impl SelfCheck {
    /// The margin that applies to an answer of `model` (its GGUF name), quoted or `free`, to
    /// a question that asks for a fact (for one that asks why or how something works:
    /// [`Self::margin_for`]).
    #[must_use]
    pub fn margin(self, model: &str, free: bool) -> Option<f32> {
        match self {
            SelfCheck::Calibrated if !free => calibrated_self_check(model),
            SelfCheck::Calibrated | SelfCheck::Off => None,
            SelfCheck::Margin(m) => Some(m),
        }
    }

    /// The margin that applies to an answer of `model` to `question`: calibrated, a question
    /// asking why, how or how two things differ has its own
    /// ([`calibrated_explanation_check`]); a margin given applies to every question.
    #[must_use]
    pub fn margin_for(self, model: &str, free: bool, question: &str) -> Option<f32> {
        match self {
            SelfCheck::Calibrated if !free && Kind::explains(question) => {
                calibrated_explanation_check(model)
            }
            SelfCheck::Calibrated if !free && Kind::yes_or_no(question) => {
                calibrated_polar_check(model)
            }
            _ => self.margin(model, free),
        }
    }

    /// The self-check margin that lets a quote of `model` through failing word-coverage gates
    /// ([`calibrated_overrule`]): calibrated, for a question asking for a fact or how to do
    /// something (not why or how something works, nor yes or no, whose margins run
    /// otherwise); never with a margin given or no check.
    #[must_use]
    pub fn overrule_for(self, model: &str, free: bool, question: &str) -> Option<f32> {
        match self {
            SelfCheck::Calibrated
                if !free && !Kind::yes_or_no(question) && !Kind::explains(question) =>
            {
                calibrated_overrule(model)
            }
            _ => None,
        }
    }
}

/// The self-check margin at which a quote of `model` (its GGUF name) is shown although the
/// question's words are short in the passages (the coverage, named-coverage and rare-word gates;
/// never the relevance floor), or `None`. Those gates, failing, withhold the answer outright
/// when the model has no such margin; with one, they raise the bar of the self-check to it
/// instead. The 1.5B's: on the calibration halves of XQuAD and the documentation set, the
/// unanswerable questions those gates withheld and the model answered anyway had margins up
/// to 1.58, the answerable ones from 1.74 up (most of them right, on passages that say the
/// answer in other words): the next multiple of 0.1 above the former, plus one step of
/// headroom (BENCHMARKS.md, session 33).
#[must_use]
pub fn calibrated_overrule(model: &str) -> Option<f32> {
    match model {
        "Qwen2.5 Coder 1.5B Instruct GGUF" => Some(1.7),
        _ => None,
    }
}

/// The self-check margin calibrated for a model's answers to questions asking why, how, or
/// how two things differ ([`cairn_retriever::terms::explains`]), or `None` where the model has
/// none. The model's "Yes" leads further for the sentences such questions are answered with,
/// right or wrong. The 1.5B's: on the calibration half of `eval/explanations`, asked on its
/// own knowledge base and on another one that does not hold the answers (BENCHMARKS.md,
/// session 26), the largest round margin that withheld no more answerable questions than the
/// general margin (then 1.2) did.
#[must_use]
pub fn calibrated_explanation_check(model: &str) -> Option<f32> {
    match model {
        "Qwen2.5 Coder 1.5B Instruct GGUF" => Some(1.5),
        _ => None,
    }
}

/// The self-check margin calibrated for a model, by its GGUF name (`general.name`), or `None`
/// for a model not calibrated. The 1.5B's: on the calibration halves of XQuAD and the
/// documentation set together, with the other gates at their defaults, the round margin (a
/// multiple of 0.05) that withholds at least 90% of the unanswerable questions of both halves
/// for the fewest answerable ones (BENCHMARKS.md, session 31: the forward pass of session 30
/// moved the margins by up to ±0.25 from where session 15 set 1.2).
#[must_use]
pub fn calibrated_self_check(model: &str) -> Option<f32> {
    match model {
        "Qwen2.5 Coder 1.5B Instruct GGUF" => Some(1.15),
        _ => None,
    }
}

impl AskOptions {
    /// The search these options ask for: `k` hits, each leg fetching at least 100 candidates.
    #[must_use]
    pub fn search_options(&self) -> SearchOptions {
        SearchOptions {
            mode: self.mode,
            fusion: self.fusion,
            dense_weight: self.dense_weight,
            k: self.k,
            candidates: 100.max(self.k),
            fold_duplicates: self.fold_duplicates,
        }
    }
}

impl Default for AskOptions {
    fn default() -> Self {
        AskOptions {
            k: 8,
            mode: Mode::Hybrid,
            fusion: Fusion::Score,
            dense_weight: 0.4,
            fold_duplicates: Some(cairn_retriever::duplicates::DEFAULT_THRESHOLD),
            budget: cairn_retriever::context::DEFAULT_BUDGET,
            max_tokens: 200,
            temperature: 0.0,
            top_p: 0.9,
            seed: 0,
            min_relevance: MIN_RELEVANCE,
            min_coverage: MIN_COVERAGE,
            min_named_coverage: MIN_NAMED_COVERAGE,
            min_relative_score: cairn_retriever::context::MIN_RELATIVE_SCORE,
            min_rare_coverage: MIN_RARE_COVERAGE,
            stop_bias: STOP_BIAS,
            min_start_logprob: MIN_START_LOGPROB,
            min_quote_coverage: MIN_QUOTE_COVERAGE,
            refusal_bias: REFUSAL_BIAS,
            free: false,
            self_check: SelfCheck::Calibrated,
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

/// The default [`AskOptions::refusal_bias`]: the model refuses only when the refusal leads
/// the likeliest quote by more than 0.75 logits. Chosen with `cairn eval qa` on the
/// calibration halves of both domains (BENCHMARKS.md): the largest round step that turned
/// none of their unanswerable questions into answers; it answered 2 more of XQuAD's 81
/// answerable ones.
pub const REFUSAL_BIAS: f32 = -0.75;

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
    /// the model was unsure of from a place that speaks of little of the question, or, asked
    /// what something is, a quote that names it and then goes on to something else
    /// ([`cairn_retriever::terms::Restatement`]), or, asked what something is called, a quote
    /// of the question's own words ([`cairn_retriever::terms::echoes`]), or, asked for a
    /// member of something ([`cairn_retriever::scope`]), a quote that only names it, or one
    /// from sources not about it that the self-check was not sure enough of
    /// ([`Gates::off_scope`]).
    Unsupported,
    /// Asked whether the sources state the answer to the question, the model's "Yes" did not
    /// lead its "No" by the margin ([`AskOptions::self_check`]).
    SelfCheck,
}

impl Abstain {
    /// Why, in words a user reads.
    #[must_use]
    pub fn describe(self) -> &'static str {
        match self {
            Abstain::Retrieval => {
                "no passage is relevant enough, or none mentions most of what was asked"
            }
            Abstain::Model => "the model found no answer in the closest passages",
            Abstain::Unsupported => {
                "the model's answer is not supported by a passage that speaks of the question"
            }
            Abstain::SelfCheck => {
                "asked whether the sources state the answer, the model was not sure enough"
            }
        }
    }
}

/// Time spent on one question.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct Timings {
    /// Searching the index.
    pub retrieve_ms: f64,
    /// Choosing the passages and sentences the model is given.
    pub assemble_ms: f64,
    /// From the question to the first answer token (retrieval and prefill included).
    pub ttft_ms: f64,
    /// Reading the prompt.
    pub prefill_ms: f64,
    /// Writing the answer.
    pub decode_ms: f64,
    /// The self-check ([`AskOptions::self_check`]), when it ran: what it took beyond the
    /// prompt's pass, in which its question is scored alongside (its rows' share of that pass
    /// is in `prefill_ms`).
    pub check_ms: f64,
    /// The whole question.
    pub total_ms: f64,
    /// Tokens in the prompt.
    pub prompt_tokens: usize,
    /// Prompt tokens whose KV cache was reused from the previous question.
    pub reused_tokens: usize,
    /// Tokens in the answer.
    pub answer_tokens: usize,
}

/// The model's yes or no to a yes-or-no question ([`cairn_retriever::terms::polar`]): its
/// self-check for such a question ([`POLAR_CHECK`]) asks it to answer the question itself with
/// "Yes", "No" or "Unknown", in the prompt's pass, before it quotes the sentence that settles
/// it.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Verdict {
    /// `log P(Yes) − log P(No)` of the check's next token.
    pub margin: f32,
    /// The reply the answer begins with: `Some(true)` for "Yes", `Some(false)` for "No";
    /// `None` when the margin lies between the model's two bounds ([`calibrated_verdict`]),
    /// or it has none: the quote is then given alone.
    pub reply: Option<bool>,
}

/// The bounds on a model's [`Verdict::margin`] (by its GGUF name): at or under the first the
/// answer is "No", at or over the second "Yes", between them neither; `None` for a model not
/// calibrated. The 1.5B leans towards "Yes" (a margin near 1 is its undecided point): bounds
/// chosen on the calibration half of `eval/polar`, the round ones with no wrong verdict and
/// the fewest answers left without one (BENCHMARKS.md, session 29).
#[must_use]
pub fn calibrated_verdict(model: &str) -> Option<(f32, f32)> {
    match model {
        "Qwen2.5 Coder 1.5B Instruct GGUF" => Some((1.0, 1.5)),
        _ => None,
    }
}

/// The self-check margin calibrated for a model's answers to yes-or-no questions, on
/// `log P(Yes or No) − log P(Unknown)` of [`POLAR_CHECK`] (such a question's own "Yes" or
/// "No" would be taken for the check's: [`SELF_CHECK`] withheld nearly every answer that is
/// "no"); `None` where the model has none. The 1.5B's: on the calibration half of `eval/polar`
/// with every retrieval gate off, a round margin under every answerable question's there (the
/// least was 0.73; BENCHMARKS.md, session 29).
#[must_use]
pub fn calibrated_polar_check(model: &str) -> Option<f32> {
    match model {
        "Qwen2.5 Coder 1.5B Instruct GGUF" => Some(0.5),
        _ => None,
    }
}

/// One answered (or abstained) question.
#[derive(Clone, Debug)]
#[allow(clippy::struct_field_names)] // `answer.answer` is the answer text, as in the JSON
pub struct Answer {
    /// The question, trimmed.
    pub question: String,
    /// The model's answer with its own citation markers removed (empty when the model was not asked).
    pub answer: String,
    /// Why the answer was withheld, if it was.
    pub abstained: Option<Abstain>,
    /// The answer's sentences with the citations that support them.
    pub claims: Vec<Claim>,
    /// The numbered sources the model was given, then any the engine read on to for the
    /// answer (the part of a list on the next page of a PDF: a source with no chunks).
    pub context: Context,
    /// The retrieval hits the context came from.
    pub hits: Vec<Hit>,
    /// The model's log-probability of each answer token (and of the stop token), before the
    /// quote constraint narrowed its choice; empty when the model was not asked.
    pub logprobs: Vec<f32>,
    /// For a quoted answer: the share of the question's words around the quote (see
    /// [`cairn_retriever::ground::quote_coverage`]).
    pub quote_coverage: Option<f32>,
    /// With [`AskOptions::self_check`]: the model's "yes" logit minus its "no" logit when asked
    /// whether the sources give its answer.
    pub self_check: Option<f32>,
    /// For a quoted answer: how the model weighed beginning the refusal against beginning a
    /// quote, at its first token.
    pub start: Option<cairn_generator::StartChoice>,
    /// For a quoted answer to a yes-or-no question: the model's own yes or no, from its
    /// self-check's pass ([`Verdict`]).
    pub verdict: Option<Verdict>,
    /// The retrieval checks the question went through.
    pub gates: Gates,
    /// Where the time went.
    pub timings: Timings,
}

/// The "is it in there at all" checks made on a question's hits before the model is asked,
/// with what each measured, so a face can show why a question was (or was not) answered.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Gates {
    /// The best cosine similarity of a hit (`None` when the dense leg did not run).
    pub relevance: Option<f32>,
    /// Its floor ([`AskOptions::min_relevance`]).
    pub min_relevance: f32,
    /// The largest share of the question's content words in one hit.
    pub coverage: f32,
    /// Its floor ([`AskOptions::min_coverage`]).
    pub min_coverage: f32,
    /// Names in the question that no hit contains.
    pub missing_names: Vec<String>,
    /// The coverage needed when a name is missing ([`AskOptions::min_named_coverage`]).
    pub min_named_coverage: f32,
    /// Passages after the best are kept at this share of the best one's score.
    pub min_relative_score: f32,
    /// How much of the question's rare words the best passage holds (`None`: not measured).
    pub rare: Option<RareWords>,
    /// Their floor ([`AskOptions::min_rare_coverage`]).
    pub min_rare_coverage: f32,
    /// When the word-coverage gates failed, or the answer's sources were not about what the
    /// question asks a member of (`off_scope`), and the model's self-check margin reached
    /// [`SelfCheck::overrule_for`]'s: that margin and the bar, and the answer was shown.
    pub overruled: Option<(f32, f32)>,
    /// Asked for a member of something ("Which tarfile mode…", [`cairn_retriever::scope`]),
    /// the name when no source the answer cites is about it: neither its document, nor its
    /// headings, nor the answer names it. Measured on the answer, after the model wrote it.
    pub off_scope: Option<String>,
}

/// The shares of a question's words that the passages hold, weighted by rarity.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct RareWords {
    /// Weighted by each term's inverse document frequency in the knowledge base, in the
    /// passage that holds the most.
    pub in_index: f32,
    /// Weighted by each word's rarity in general English, in the first source.
    pub in_english: f32,
}

impl RareWords {
    /// Measures the passages of `hits` and `context` for `question`; `word_rank` is a word's
    /// rank in general English, if known (the embedder's vocabulary id).
    pub fn measure(
        reader: &Reader,
        word_rank: &dyn Fn(&str) -> Option<u32>,
        question: &str,
        hits: &[Hit],
        context: &Context,
    ) -> Result<Self> {
        let weights = reader.term_weights(&cairn_retriever::terms::asked(question))?;
        let in_index = cairn_retriever::terms::weighted_coverage(
            &weights,
            hits.iter().map(|h| h.chunk.text.as_str()),
            Reader::analyse,
        );
        let (mut held, mut total) = (0.0f32, 0.0f32);
        for (_, id, is_held) in question_words(word_rank, question, context) {
            // WordPiece vocabularies start their whole words at 1996 ("the"), roughly by
            // frequency; a word without an entry of its own is rarer than all of them.
            #[allow(clippy::cast_precision_loss)] // ranks are below 2^24
            let rank = id
                .filter(|&id| id >= 1996)
                .map_or(30_000.0, |id| (id - 1995) as f32);
            let weight = (rank / COMMON_RANK).ln().max(0.0);
            total += weight;
            if is_held {
                held += weight;
            }
        }
        Ok(RareWords {
            in_index,
            in_english: if total > 0.0 { held / total } else { 1.0 },
        })
    }
}

/// The question's content words (of what it asks: [`cairn_retriever::terms::asked`]), each
/// with its vocabulary id from `word_rank` and whether
/// the context's first source holds it (as [`RareWords`] weighs them).
pub fn question_words(
    word_rank: &dyn Fn(&str) -> Option<u32>,
    question: &str,
    context: &Context,
) -> Vec<(String, Option<u32>, bool)> {
    let first: std::collections::HashSet<String> = context
        .sources
        .first()
        .map(|s| {
            cairn_retriever::terms::terms(&s.text())
                .into_iter()
                .collect()
        })
        .unwrap_or_default();
    cairn_retriever::terms::asked(question)
        .split(|c: char| !c.is_alphanumeric() && c != '_')
        .map(str::to_lowercase)
        .filter(|w| !w.is_empty() && !cairn_retriever::terms::is_stopword(w))
        .map(|w| {
            let id = word_rank(&w);
            let held = cairn_retriever::terms::terms(&w)
                .first()
                .is_some_and(|t| first.contains(t));
            (w, id, held)
        })
        .collect()
}

impl Gates {
    /// Measures `hits` for `question`.
    pub fn measure(question: &str, hits: &[Hit], rare: Option<RareWords>, o: &AskOptions) -> Self {
        let best = hits
            .iter()
            .filter_map(|h| h.fused.dense.map(|d| d.score))
            .fold(f32::NEG_INFINITY, f32::max);
        let texts = || hits.iter().map(|h| h.chunk.text.as_str());
        let coverage =
            cairn_retriever::terms::coverage(&cairn_retriever::terms::asked(question), texts());
        let missing_names = if coverage < o.min_named_coverage {
            cairn_retriever::terms::missing_names(question, texts())
        } else {
            Vec::new()
        };
        Gates {
            relevance: (o.mode != Mode::Bm25).then_some(best),
            min_relevance: o.min_relevance,
            coverage,
            min_coverage: o.min_coverage,
            missing_names,
            min_named_coverage: o.min_named_coverage,
            min_relative_score: o.min_relative_score,
            rare,
            min_rare_coverage: o.min_rare_coverage,
            overruled: None,
            off_scope: None,
        }
    }

    /// Whether the best passage holds enough of the question's rare words (or it was not
    /// measured).
    #[must_use]
    pub fn rare_words_held(&self) -> bool {
        self.rare.is_none_or(|r| {
            r.in_index >= self.min_rare_coverage || r.in_english >= self.min_rare_coverage
        })
    }

    /// Whether the relevance check passed (or did not apply).
    #[must_use]
    pub fn relevant(&self) -> bool {
        self.relevance.is_none_or(|r| r >= self.min_relevance)
    }

    /// Whether the model may be asked: every check passed, or only the word-coverage ones
    /// failed and the self-check can overrule them (`overrule`, [`SelfCheck::overrule_for`]).
    #[must_use]
    pub fn may_ask(&self, overrule: Option<f32>) -> bool {
        self.passed() || (overrule.is_some() && self.relevant())
    }

    /// Whether the question passed every check.
    #[must_use]
    pub fn passed(&self) -> bool {
        self.relevant()
            && self.coverage >= self.min_coverage
            && (self.missing_names.is_empty() || self.coverage >= self.min_named_coverage)
            && self.rare_words_held()
    }
}

impl Answer {
    /// Why the answer was withheld, in words a user reads (`None` when it was not): the
    /// reason's own words ([`Abstain::describe`]), or, for an answer whose sources were about
    /// something other than what the question asks a member of, that.
    #[must_use]
    pub fn why_withheld(&self) -> Option<String> {
        let reason = self.abstained?;
        let scope = cairn_retriever::scope::scope(&self.question);
        Some(match (&self.gates.off_scope, reason, scope) {
            (Some(name), Abstain::Unsupported, _) => format!(
                "the model's answer comes from a passage that is not about {}",
                sanitize(name)
            ),
            (None, Abstain::Unsupported, Some(scope))
                if cairn_retriever::scope::names_only(&scope, &self.answer) =>
            {
                format!(
                    "the model's answer names {} itself, not what the question asks of it",
                    sanitize(&scope.name)
                )
            }
            (None, Abstain::Unsupported, _)
                if cairn_retriever::terms::asks_how_many(&self.question)
                    && !cairn_retriever::terms::gives_amount(&self.answer) =>
            {
                "the model's answer gives no number".to_owned()
            }
            _ => reason.describe().to_owned(),
        })
    }

    /// The answer as a reader may see it — its text and its checked sentences — or nothing,
    /// when it was withheld. (`answer` and `claims` keep what the model wrote and how it was
    /// grounded, for `--json`'s diagnostics; a face shows this.)
    #[must_use]
    pub fn shown(&self) -> (&str, &[Claim]) {
        if self.abstained.is_some() {
            ("", &[])
        } else {
            (&self.answer, &self.claims)
        }
    }

    /// The numbers of the sources some sentence cites, ascending; none for an answer that
    /// was withheld, which is not shown and so cites nothing.
    #[must_use]
    pub fn cited_sources(&self) -> Vec<usize> {
        if self.abstained.is_some() {
            return Vec::new();
        }
        let mut v: Vec<usize> = self
            .claims
            .iter()
            .flat_map(|c| c.citations.iter().map(|x| x.source))
            .collect();
        v.sort_unstable();
        v.dedup();
        v
    }

    /// The line ranges of source `number` that the answer's sentences cite, sorted; none for
    /// an answer that was withheld.
    #[must_use]
    pub fn cited_lines(&self, number: usize) -> Vec<(u32, u32)> {
        if self.abstained.is_some() {
            return Vec::new();
        }
        let mut lines: Vec<(u32, u32)> = self
            .claims
            .iter()
            .flat_map(|c| c.citations.iter())
            .filter(|x| x.source == number)
            .map(|x| x.lines)
            .collect();
        lines.sort_unstable();
        lines.dedup();
        lines
    }

    /// The answer as the schema describes it (`timings` is the only field that varies between
    /// identical runs). Like a face, it shows a withheld answer nowhere a reader takes an
    /// answer from: `answer` is empty and `sentences` none; what the model wrote is kept apart,
    /// in `withheld`, for whoever audits the gates.
    #[must_use]
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
                    "also": s.also.iter().map(|e| serde_json::json!({
                        "doc": e.doc,
                        "page": e.page,
                        "lines": [e.lines.0, e.lines.1],
                    })).collect::<Vec<_>>(),
                })
            })
            .collect();
        let (shown, claims) = self.shown();
        let sentences: Vec<serde_json::Value> = claims
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
            "answer": shown,
            "withheld": self.abstained.map(|_| self.answer.as_str()).filter(|a| !a.is_empty()),
            "abstained": self.abstained.is_some(),
            "abstain_reason": self.abstained,
            "self_check": self.self_check,
            "overruled": self.gates.overruled.map(|(_, bar)| bar),
            "off_scope": self.gates.off_scope,
            "verdict": self.verdict.map(|v| serde_json::json!({
                "reply": v.reply.map(|yes| if yes { "yes" } else { "no" }),
                "margin": v.margin,
            })),
            "sentences": sentences,
            "sources": sources,
            "model": model,
            "seed": seed,
            "timings": self.timings,
        })
    }
}

/// A generator loaded from the catalog or a file, not yet joined to a knowledge base: loading
/// takes seconds, so a face can do it on another thread while search already works.
pub struct LoadedModel {
    /// The model.
    pub generator: Generator,
    /// The id (or path) it was asked for by.
    pub id: String,
    /// The file it was loaded from.
    pub path: std::path::PathBuf,
}

impl LoadedModel {
    /// Loads `model`: a catalog id (verified first) or a path to a GGUF file.
    pub fn load(model: &str) -> Result<Self> {
        let path = catalog::model_path(model)?;
        let generator =
            Generator::load(&path, &LoadOptions { n_ctx: 4096 }).map_err(|source| Error::Load {
                what: path.display().to_string(),
                source,
            })?;
        Ok(LoadedModel {
            generator,
            id: model.to_owned(),
            path,
        })
    }
}

/// What a question needs, loaded once.
pub struct Engine {
    /// Retrieval and context assembly.
    pub retrieval: Retrieval,
    /// The loaded model, its fixed prompt prefix primed.
    pub generator: Generator,
}

/// The retrieval half of an [`Engine`]: it shares nothing mutable with the generator, so a
/// batch can retrieve for the next questions on another thread while the model writes.
pub struct Retrieval {
    /// The primary snapshot: the user's knowledge base (or, with `--no-kb`, the first pack).
    pub reader: Reader,
    /// How the primary snapshot's citations are labelled (`None`: the user's own documents).
    pub label: Option<String>,
    /// Search the primary snapshot by keywords only.
    pub bm25_only: bool,
    /// Installed packs searched with it, into one ranking.
    pub packs: Vec<PackReader>,
    /// The query embedder.
    pub embedder: MiniLm,
    /// The generator's tokenizer, to count the context budget in the model's tokens.
    tokenizer: cairn_generator::Tokenizer,
    window: usize,
    /// Prompt tokens besides the sources and the question.
    base_overhead: usize,
}

/// The sources a query searches: the primary snapshot (labelled when it is a pack standing in
/// for the knowledge base), then the packs.
pub fn shelves<'a>(
    primary: &'a Reader,
    label: Option<&str>,
    bm25_only: bool,
    packs: &'a [PackReader],
) -> Vec<Shelf<'a>> {
    let mut v = vec![Shelf {
        label: label.map(str::to_owned),
        reader: primary,
        bm25_only,
    }];
    v.extend(packs.iter().map(|p| Shelf {
        label: Some(p.label.clone()),
        reader: &p.reader,
        bm25_only: p.bm25_only,
    }));
    v
}

/// An installed pack opened for searching beside the knowledge base.
pub struct PackReader {
    /// `pack:NAME@VERSION`, shown before its documents' keys.
    pub label: String,
    /// Its snapshot, opened in place.
    pub reader: Reader,
    /// Searched by keywords only: its vectors come from another embedding model.
    pub bm25_only: bool,
}

impl PackReader {
    /// Opens the installed pack at `dir`. A pack embedded with another model than `embedder`
    /// is refused, unless `bm25_only_mismatched`, when it is searched by keywords only.
    pub fn open(
        label: String,
        dir: &Path,
        embedder: &MiniLm,
        bm25_only_mismatched: bool,
    ) -> Result<Self> {
        let reader = Reader::open(dir)?;
        let mismatched = crate::check_embedder(&reader, embedder).is_err();
        if mismatched && !bm25_only_mismatched {
            return Err(Error::KnowledgeBase(format!(
                "{label} was embedded with {}, not the installed {}; its vectors cannot be searched\nhint: --bm25-only-mismatched searches it by keywords only",
                reader.manifest().embedder,
                cairn_index::Embedder::id(embedder)
            )));
        }
        Ok(PackReader {
            label,
            reader,
            bm25_only: mismatched,
        })
    }
}

/// A question's retrieved passages and assembled context.
pub struct Retrieved {
    /// The fused hits, best first.
    pub hits: Vec<Hit>,
    /// The sources given to the model.
    pub context: Context,
    /// Time spent searching.
    pub retrieve_ms: f64,
    /// Time spent assembling the context.
    pub assemble_ms: f64,
    /// How much of the question's rare words the passages hold.
    pub rare: Option<RareWords>,
    /// Asked for several things ([`cairn_retriever::terms::asks_for_several`]), the chunk after
    /// each hit that ends in a list ([`cairn_retriever::context::ends_in_list`]): where the list
    /// goes on, should the answer be one of its items.
    pub read_on: Vec<ChunkRecord>,
    /// The question as it was asked of the sources, when it named one of them ("In the Rust
    /// Book, what is a crate?" searched the Book alone for "what is a crate?"): the answer is
    /// sought for it.
    pub asked: Option<String>,
}

/// Receives the answer as it is generated.
pub trait AnswerSink {
    /// The context is ready (before generation).
    fn context(&mut self, _context: &Context) {}
    /// The hits the context came from and the checks they went through (right after
    /// [`AnswerSink::context`]).
    fn retrieved(&mut self, _hits: &[Hit], _gates: &Gates) {}
    /// A piece of the answer text.
    fn token(&mut self, _piece: &str) -> ControlFlow<()> {
        ControlFlow::Continue(())
    }
}

/// A sink that wants nothing.
pub struct Quiet;
impl AnswerSink for Quiet {}

impl Engine {
    /// Opens the knowledge base and loads the embedder and the model (a catalog id, verified
    /// before loading, or a path to a GGUF file).
    pub fn open(kb: &Path, model: &str) -> Result<Self> {
        let (reader, embedder) = open_for_search(kb)?;
        Self::with_retrieval(reader, embedder, model)
    }

    /// Loads `model` beside an already open knowledge base and embedder (the TUI opens those
    /// first, so that search works while the model loads, and keeps them when it switches
    /// models).
    pub fn with_retrieval(reader: Reader, embedder: MiniLm, model: &str) -> Result<Self> {
        let loaded = LoadedModel::load(model)?;
        Self::new(reader, embedder, loaded)
    }

    /// Puts an engine together from an open knowledge base, its embedder and a loaded model,
    /// and primes the model's fixed prompt prefix.
    pub fn new(reader: Reader, embedder: MiniLm, model: LoadedModel) -> Result<Self> {
        let LoadedModel {
            generator,
            id,
            path,
        } = model;
        let base_overhead = generator
            .chat_tokens(&messages("", &Context::default()))?
            .len();
        let mut engine = Engine {
            retrieval: Retrieval {
                reader,
                label: None,
                bm25_only: false,
                packs: Vec::new(),
                embedder,
                tokenizer: generator.tokenizer().clone(),
                window: generator.context_window(),
                base_overhead,
            },
            generator,
        };
        engine.prime(&id, &path)?;
        Ok(engine)
    }

    /// Takes the model out, giving back the knowledge base and the embedder (to put another
    /// model in with [`Engine::new`]).
    pub fn into_parts(self) -> (Reader, MiniLm) {
        (self.retrieval.reader, self.retrieval.embedder)
    }

    /// The tokens every prompt starts with: instructions, examples, the opening of the turn.
    fn fixed_prefix(&self) -> Result<Vec<u32>> {
        let render = |text: &str| {
            let mut m = messages("", &Context::default());
            m.last_mut().expect("a user turn").content = text.into();
            self.generator.chat_tokens(&m)
        };
        let (mut a, b) = (render("a")?, render("b")?);
        a.truncate(shared_len(&a, &b));
        Ok(a)
    }

    /// Puts the fixed prefix's KV cache in place: read from the prompt cache when an earlier
    /// run saved it for this model file, else computed (and saved for the next run).
    fn prime(&mut self, model: &str, path: &Path) -> Result<()> {
        let prefix = self.fixed_prefix()?;
        let identity = if let Some(spec) = catalog::find(model) {
            spec.files[0].sha256.to_owned()
        } else {
            let meta = std::fs::metadata(path).map_err(|source| Error::Io {
                path: path.to_owned(),
                source,
            })?;
            format!(
                "{}:{}:{:?}",
                path.display(),
                meta.len(),
                meta.modified().ok()
            )
        };
        let file = prompt_cache::file(&identity, &prefix);
        self.generator.set_cache_identity(identity);
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
            return Err(Error::Question("the question is empty".into()));
        }
        let retrieved = self.retrieval.retrieve(question, o)?;
        answer(&mut self.generator, question, retrieved, o, sink)
    }

    /// Reads ahead for a question still being written (`draft`): retrieves its sources as
    /// [`Self::ask`] would and, when its checks pass, computes the prompt up to where the
    /// question begins into the model's cache ([`Generator::read_ahead`]), stopping between
    /// passes when `stop` says so. A question asked next whose sources come out the same then
    /// computes little more than itself, and its answer is exactly the one it gets without
    /// this. Returns how many prompt tokens are ready (0 when the draft has no sources or fails
    /// the checks, which the question would most likely fail too).
    pub fn read_ahead(
        &mut self,
        draft: &str,
        o: &AskOptions,
        stop: &dyn Fn() -> bool,
    ) -> Result<usize> {
        let draft = draft.trim();
        if draft.is_empty() || stop() {
            return Ok(0);
        }
        let retrieved = self.retrieval.retrieve(draft, o)?;
        let asked = retrieved.asked.clone();
        let draft = asked.as_deref().unwrap_or(draft);
        let gates = Gates::measure(draft, &retrieved.hits, retrieved.rare, o);
        let overrule = o
            .self_check
            .overrule_for(self.generator.name(), o.free, draft);
        if retrieved.context.sources.is_empty() || !gates.may_ask(overrule) {
            return Ok(0);
        }
        // The prompt's tokens up to where the question's own begin: what two questions of the
        // draft's kind share (a question of a kind brings its worked example).
        let render = |q: &str| self.generator.chat_tokens(&messages(q, &retrieved.context));
        let (a, b) = kind_pair(draft);
        let (a, b) = (render(a)?, render(b)?);
        let kind = kind_prefix(&self.generator, draft, o.free)?;
        let unsaved = kind
            .as_ref()
            .is_some_and(|p| !restore_kind_prefix(&mut self.generator, p));
        let ready = self.generator.read_ahead(&a[..shared_len(&a, &b)], stop)?;
        if let (true, Some(p)) = (unsaved, &kind) {
            save_kind_prefix(&self.generator, p);
        }
        Ok(ready)
    }
}

/// Whether a source that `claims` cite is about `scope`: its document path, its headings or
/// the answer (which may carry the name itself: `git shortlog`) name it.
fn cites_source_about(
    scope: &cairn_retriever::scope::Scope,
    claims: &[Claim],
    context: &Context,
    answer: &str,
) -> bool {
    claims
        .iter()
        .flat_map(|c| &c.citations)
        .filter_map(|x| context.sources.iter().find(|s| s.number == x.source))
        .any(|s| {
            let texts = std::iter::once(s.doc.as_str())
                .chain(s.heading.iter().map(String::as_str))
                .chain(std::iter::once(answer));
            cairn_retriever::scope::is_about(scope, texts)
        })
}

impl Answer {
    /// An answer the model was not asked for: withheld for the retrieval gates, with nothing
    /// of the model's (the caller may put in an answer of its own).
    fn unasked(
        question: &str,
        gates: Gates,
        context: Context,
        hits: Vec<Hit>,
        timings: Timings,
    ) -> Self {
        Answer {
            question: question.to_owned(),
            answer: String::new(),
            abstained: Some(Abstain::Retrieval),
            gates,
            claims: Vec::new(),
            context,
            hits,
            logprobs: Vec::new(),
            quote_coverage: None,
            self_check: None,
            start: None,
            verdict: None,
            timings,
        }
    }
}

/// Answers a question from its retrieved context with `generator`.
pub fn answer(
    generator: &mut Generator,
    question: &str,
    mut retrieved: Retrieved,
    o: &AskOptions,
    sink: &mut dyn AnswerSink,
) -> Result<Answer> {
    let Some(asked) = retrieved.asked.take() else {
        return answer_asked(generator, question, retrieved, o, sink);
    };
    let mut answer = answer_asked(generator, &asked, retrieved, o, sink)?;
    question.clone_into(&mut answer.question);
    Ok(answer)
}

/// [`answer`], for `question` as it is asked of the sources.
fn answer_asked(
    generator: &mut Generator,
    question: &str,
    retrieved: Retrieved,
    o: &AskOptions,
    sink: &mut dyn AnswerSink,
) -> Result<Answer> {
    let start = Instant::now();
    let Retrieved {
        hits,
        mut context,
        retrieve_ms,
        assemble_ms,
        rare,
        read_on,
        asked: _,
    } = retrieved;
    let before = retrieve_ms + assemble_ms;
    let mut gates = Gates::measure(question, &hits, rare, o);
    sink.context(&context);
    sink.retrieved(&hits, &gates);
    let mut timings = Timings {
        retrieve_ms,
        assemble_ms,
        ..Timings::default()
    };
    // Asked what an abbreviation stands for, a source that spells it out holds the answer
    // word for word: it is given as the source writes it, the model not asked.
    let expansion = (!o.free)
        .then(|| cairn_retriever::terms::expansion_asked(question))
        .flatten();
    if let Some(claim) = expansion.and_then(|term| spelled_out(&term, &context)) {
        let answer = claim.text.clone();
        let _ = sink.token(&answer);
        timings.ttft_ms = before + ms(start.elapsed());
        timings.total_ms = timings.ttft_ms;
        return Ok(Answer {
            answer,
            abstained: None,
            claims: vec![claim],
            ..Answer::unasked(question, gates, context, hits, timings)
        });
    }
    // Failing only on the question's words, the answer may still be shown if the model is
    // sure enough of it: the self-check's bar is raised to `overrule`.
    let overrule = (!gates.passed())
        .then(|| {
            o.self_check
                .overrule_for(generator.name(), o.free, question)
        })
        .flatten();
    if context.sources.is_empty() || !gates.may_ask(overrule) {
        timings.total_ms = before + ms(start.elapsed());
        return Ok(Answer::unasked(question, gates, context, hits, timings));
    }
    let prompt = generator.chat_tokens(&messages_for(question, &context, o.free))?;
    // The worked example of the question's kind, from the prompt cache when an earlier
    // question of its kind saved it.
    let kind = kind_prefix(generator, question, o.free)?;
    let unsaved = kind
        .as_ref()
        .is_some_and(|p| !restore_kind_prefix(generator, p));
    let options = GenerateOptions {
        max_tokens: o.max_tokens,
        sampling: sampling(o.temperature, o.top_p, o.seed),
        ignore_stop_tokens: false,
    };
    let before_generation = start.elapsed();
    let mut forward = |piece: &str| sink.token(piece);
    let polar = Kind::yes_or_no(question);
    let mut quote = (!o.free).then(|| {
        let excerpts = context.sources.iter().flat_map(|s| &s.excerpts);
        quote_constraint(question, excerpts.map(|e| e.text.as_str()), o)
    });
    // The self-check's question rides along in the prompt's own pass (a branch after the
    // question), so it costs its rows' share of the prompt's products, not a pass of its own.
    let least = o.self_check.margin_for(generator.name(), o.free, question);
    let least = match (least, overrule) {
        (Some(least), Some(bar)) => Some(least.max(bar)),
        (least, _) => least,
    };
    let check_start = Instant::now();
    let probe = match least {
        Some(_) => Some(generator.chat_tokens(&check_messages(question, &context))?),
        None => None,
    };
    let yes_no = match least {
        Some(_) => Some(YesNo::of(generator)?),
        None => None,
    };
    let mut check_time = check_start.elapsed();
    let constraint = quote.as_mut().map(|q| q as &mut dyn Constraint);
    let generation_start = Instant::now();
    // When the check is scored in the prompt's pass, an answer it would withhold is not
    // written at all: the abstention comes as soon as the first token would have.
    let mut early_margin = None;
    let mut proceed = |logits: &[f32]| match (&yes_no, least) {
        (Some(yes_no), Some(least)) => {
            let margin = yes_no.check(logits, polar);
            early_margin = Some(margin);
            margin >= least
        }
        _ => true,
    };
    let (g, probe_logits) = match &probe {
        Some(probe) => {
            let (g, logits) = generator.generate_probed(
                &prompt,
                probe,
                &options,
                constraint,
                &mut forward,
                &mut proceed,
            )?;
            // Whatever the call took beyond the generation: the probe's own pass, when it
            // could not ride along.
            check_time += generation_start
                .elapsed()
                .saturating_sub(g.prefill + g.decode);
            (g, Some(logits))
        }
        None => (
            generator.generate_constrained(&prompt, &options, constraint, &mut forward)?,
            None,
        ),
    };
    if let (true, Some(p)) = (unsaved, &kind) {
        save_kind_prefix(generator, p);
    }
    // A quote is shown as its source has it, whitespace runs collapsed to one space but for
    // the lines of fenced code (`Quote::text`).
    let withheld = g.finish == FinishReason::Withheld;
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
    // Asked what something is, a quote that names it and goes on to something else (or, out
    // of tokens, names it only) says nothing of what it is.
    let restated = !o.free
        && !refused
        && matches!(
            restatement(question, &answer),
            Restatement::Whole | Restatement::Aside
        );
    // Asked what something is called, the words the question already uses are not its name:
    // the sources most likely do not give one.
    let echoed = !o.free
        && !refused
        && cairn_retriever::terms::asks_for_name(question)
        && cairn_retriever::terms::echoes(question, &answer);
    // Asked how many, a quote that gives no amount ("many") does not answer.
    let amountless = !o.free
        && !refused
        && cairn_retriever::terms::asks_how_many(question)
        && !cairn_retriever::terms::gives_amount(&answer);
    let (mut claims, mut abstained) = if withheld {
        (Vec::new(), Some(Abstain::SelfCheck))
    } else if refused {
        (Vec::new(), Some(Abstain::Model))
    } else if misplaced || restated || echoed || amountless {
        (ground(&answer, &context), Some(Abstain::Unsupported))
    } else {
        let claims = ground(&answer, &context);
        let any = claims
            .iter()
            .any(|c| c.supported && !c.citations.is_empty());
        match literal_quote(o.free, question, &answer, &context) {
            Some(claim) if !any => (vec![claim], None),
            _ => (claims, (!any).then_some(Abstain::Unsupported)),
        }
    };
    // A quote is cited at its own lines, where its sentence runs over more.
    if !o.free {
        cairn_retriever::ground::narrow_to_quotes(&mut claims, &context);
    }
    // Asked for a member of something ("Which tarfile mode…"), a quote from passages none of
    // which is about it most likely answers for a neighbour (gzip's modes): it is shown only
    // if the model is as sure of it as of an answer the word gates doubt, and withheld where
    // the model has no such bar.
    if !o.free && !polar && abstained.is_none() {
        if let Some(scope) = cairn_retriever::scope::scope(question) {
            if cairn_retriever::scope::names_only(&scope, &answer) {
                // "Punycode" for "Which punycode method…": the owner, not a member of it.
                abstained = Some(Abstain::Unsupported);
            } else if !cites_source_about(&scope, &claims, &context, &answer) {
                gates.off_scope = Some(scope.name);
            }
        }
    }
    let scope_bar = gates.off_scope.as_ref().and(o.self_check.overrule_for(
        generator.name(),
        o.free,
        question,
    ));
    let mut self_check = None;
    if gates.off_scope.is_some() && scope_bar.is_none() {
        abstained = Some(Abstain::Unsupported);
    }
    // The model's own second opinion, scored on the same sources and question.
    if let (Some(least), Some(yes_no), Some(logits)) = (least, &yes_no, &probe_logits) {
        if abstained.is_none() || withheld {
            let margin_start = Instant::now();
            // Scored already when the check rode along in the prompt's pass.
            let margin = early_margin.unwrap_or_else(|| yes_no.check(logits, polar));
            timings.check_ms = ms(check_time + margin_start.elapsed());
            self_check = Some(margin);
            if margin < least {
                abstained = Some(Abstain::SelfCheck);
            } else if scope_bar.is_some_and(|bar| margin < bar) {
                abstained = Some(Abstain::Unsupported);
            } else if let (None, Some(bar)) = (abstained, overrule.or(scope_bar)) {
                gates.overruled = Some((margin, bar));
            }
        }
    }
    // The gates failed and nothing overruled them (the raised bar was not reached, or the
    // model refused): withheld for the gates' reason.
    if overrule.is_some() && gates.overruled.is_none() && abstained.is_some() {
        abstained = Some(Abstain::Retrieval);
        claims.clear();
    }
    let mut answer = answer;
    // Asked what an abbreviation is, an answer that spells out another one (the next row of a
    // glossary, the other abbreviation of a sentence) answers for a neighbour; that, or no
    // answer from the model, gives way to the words a source spells it out with.
    if let Some(term) = (!o.free && !polar)
        .then(|| cairn_retriever::terms::abbreviation_asked(question))
        .flatten()
    {
        let neighbour = abstained.is_none()
            && context
                .sources
                .iter()
                .flat_map(|s| &s.excerpts)
                .any(|e| cairn_retriever::terms::spells_out_another(&answer, &term, &e.text));
        let unanswered = matches!(
            abstained,
            Some(Abstain::SelfCheck | Abstain::Model | Abstain::Unsupported)
        );
        if neighbour || unanswered {
            if let Some(claim) = spelled_out(&term, &context) {
                answer.clone_from(&claim.text);
                claims = vec![claim];
                abstained = None;
            } else if neighbour {
                abstained = Some(Abstain::Unsupported);
            }
        }
    }
    // Asked for several things, a quote of one item of a list answers for part of it: the
    // answer is the list.
    if !o.free
        && !polar
        && abstained.is_none()
        && cairn_retriever::terms::asks_for_several(question)
    {
        if let Some((claim, added)) = whole_list(&answer, &claims, &context, &hits, &read_on) {
            answer.clone_from(&claim.text);
            claims = vec![claim];
            context.sources.extend(added);
        }
    }
    // Asked yes or no, the quote is the evidence and the check's own "Yes" or "No" the reply.
    let mut verdict = None;
    if let (true, None, Some(yes_no), Some(logits)) = (polar, abstained, &yes_no, &probe_logits) {
        let margin = yes_no.margin(logits);
        let reply = calibrated_verdict(generator.name()).and_then(|(no, yes)| {
            if margin >= yes {
                Some(true)
            } else if margin <= no {
                Some(false)
            } else {
                None
            }
        });
        if let Some(yes) = reply {
            let lead = if yes { "Yes: " } else { "No: " };
            answer.insert_str(0, lead);
            for c in &mut claims {
                c.range = (c.range.0 + lead.len(), c.range.1 + lead.len());
            }
        }
        verdict = Some(Verdict { margin, reply });
    }
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
        gates,
        claims,
        context,
        hits,
        logprobs: g.logprobs,
        quote_coverage,
        self_check,
        start: g.start,
        verdict,
        timings,
    })
}

/// The first tokens of the words a "Yes", a "No" or an "Unknown" reply begins with.
struct YesNo {
    yes: Vec<usize>,
    no: Vec<usize>,
    unknown: Vec<usize>,
}

impl YesNo {
    fn of(generator: &Generator) -> Result<Self> {
        let ids = |words: &[&str]| -> Result<Vec<usize>> {
            let mut ids = Vec::new();
            for w in words {
                if let Some(&id) = generator.tokenizer().encode(w)?.first() {
                    if !ids.contains(&(id as usize)) {
                        ids.push(id as usize);
                    }
                }
            }
            Ok(ids)
        };
        Ok(YesNo {
            yes: ids(&["Yes", "yes", " Yes", " yes"])?,
            no: ids(&["No", "no", " No", " no"])?,
            unknown: ids(&["Unknown", "unknown", " Unknown", " unknown"])?,
        })
    }

    /// The self-check's margin on the next-token `logits`: [`Self::margin`], or for a
    /// yes-or-no question ([`POLAR_CHECK`]) how far "Yes" and "No" together lead "Unknown".
    fn check(&self, logits: &[f32], polar: bool) -> f32 {
        if polar {
            let known: Vec<usize> = self.yes.iter().chain(&self.no).copied().collect();
            log_sum_exp_of(logits, &known) - log_sum_exp_of(logits, &self.unknown)
        } else {
            self.margin(logits)
        }
    }

    /// `log Σ exp(yes tokens) − log Σ exp(no tokens)` of the next-token `logits`.
    fn margin(&self, logits: &[f32]) -> f32 {
        log_sum_exp_of(logits, &self.yes) - log_sum_exp_of(logits, &self.no)
    }
}

/// `log Σ exp(logits[i])` over the token ids `ids` (those within the vocabulary).
fn log_sum_exp_of(logits: &[f32], ids: &[usize]) -> f32 {
    let ids: Vec<usize> = ids.iter().copied().filter(|&i| i < logits.len()).collect();
    let max = ids
        .iter()
        .map(|&i| logits[i])
        .fold(f32::NEG_INFINITY, f32::max);
    max + ids
        .iter()
        .map(|&i| (logits[i] - max).exp())
        .sum::<f32>()
        .ln()
}

impl Retrieval {
    /// The sources searched: the primary snapshot, then the packs.
    pub fn shelves(&self) -> Vec<Shelf<'_>> {
        shelves(
            &self.reader,
            self.label.as_deref(),
            self.bm25_only,
            &self.packs,
        )
    }

    /// Searches every source into one ranking (hits from packs name their pack).
    pub fn search(&self, query: &str, options: &SearchOptions) -> Result<Vec<Hit>> {
        Ok(search_shelves(
            &self.shelves(),
            &self.embedder,
            query,
            options,
        )?)
    }

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
        let options = o.search_options();
        // One set of shelves for the search and for reading on after its best passage.
        let shelves = self.shelves();
        // Naming a source, the question searched it alone without the words that name it; the
        // rest of the way, it is that question.
        let (mut hits, asked) = search_shelves_asked(&shelves, &self.embedder, question, &options)?;
        hits.retain(|h| keep(h));
        let question = asked.as_deref().unwrap_or(question);
        let retrieve_ms = ms(t0.elapsed());
        let t1 = Instant::now();
        let count = |s: &str| self.tokenizer.encode(s).map_or(s.len() / 3, |t| t.len());
        let overhead = self.base_overhead + count(question);
        let room = self.window.saturating_sub(overhead + o.max_tokens + 8);
        if room < 32 {
            return Err(Error::Question(format!(
                "the question and --max-tokens {} leave no room for sources in the model's {}-token window",
                o.max_tokens,
                self.window
            )));
        }
        // The text after a best passage that ends with a lead-in, from the shelf it came from;
        // the first store error is reported after assembling.
        let failed = std::cell::RefCell::new(None);
        let follow = |id| {
            following(&shelves, id, FOLLOWING_CHUNKS).unwrap_or_else(|e| {
                failed.borrow_mut().get_or_insert(e);
                Vec::new()
            })
        };
        let read_on = if cairn_retriever::terms::asks_for_several(question) {
            hits.iter()
                .take(o.k)
                .filter(|h| cairn_retriever::context::ends_in_list(&h.chunk.text))
                .flat_map(|h| {
                    following(&shelves, h.fused.id, LIST_READ_ON).unwrap_or_else(|e| {
                        failed.borrow_mut().get_or_insert(e);
                        Vec::new()
                    })
                })
                .map(|(_, chunk)| chunk)
                .collect()
        } else {
            Vec::new()
        };
        let context = assemble_following(
            question,
            &hits,
            &count,
            &follow,
            &ContextOptions {
                budget: o.budget.min(room),
                max_passages: o.k,
                min_relative_score: o.min_relative_score,
            },
        );
        if let Some(e) = failed.into_inner() {
            return Err(e.into());
        }
        let rare = RareWords::measure(
            &self.reader,
            &|w| self.embedder.word_id(w),
            question,
            &hits,
            &context,
        )?;
        Ok(Retrieved {
            hits,
            context,
            retrieve_ms,
            assemble_ms: ms(t1.elapsed()),
            rare: Some(rare),
            read_on,
            asked,
        })
    }
}

/// How many tokens two prompts share from the start (rendered with two stand-in questions:
/// the part every question shares).
fn shared_len(a: &[u32], b: &[u32]) -> usize {
    a.iter().zip(b).take_while(|(x, y)| x == y).count()
}

/// Greedy at temperature 0, else seeded nucleus sampling.
#[must_use]
pub fn sampling(temperature: f32, top_p: f32, seed: u64) -> Sampling {
    if temperature > 0.0 {
        Sampling::TopP {
            temperature,
            top_p,
            seed,
        }
    } else {
        Sampling::Greedy
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// The chat for a question: fixed instructions first (their KV cache is reused), then the
/// sources and the question.
/// [`messages`] with the self-check's question after the question ([`SELF_CHECK`]).
fn check_messages(question: &str, context: &Context) -> Vec<Message> {
    let mut m = messages(question, context);
    if let Some(turn) = m.last_mut() {
        turn.content.push_str("\n\n");
        turn.content.push_str(if Kind::yes_or_no(question) {
            POLAR_CHECK
        } else {
            SELF_CHECK
        });
    }
    m
}

/// The prompt's tokens up to where a question of `question`'s kind begins, when its kind
/// brings a worked example ([`messages_for`]): the fixed prefix, the example, and the opening
/// of the question's turn. `None` for a question without one.
fn kind_prefix(generator: &Generator, question: &str, free: bool) -> Result<Option<Vec<u32>>> {
    let base = messages_for("", &Context::default(), free).len();
    let mut m = messages_for(question, &Context::default(), free);
    if m.len() == base {
        return Ok(None);
    }
    let mut render = |text: &str| {
        m.last_mut().expect("a user turn").content = text.into();
        generator.chat_tokens(&m)
    };
    let (mut a, b) = (render("a")?, render("b")?);
    a.truncate(shared_len(&a, &b));
    Ok(Some(a))
}

/// Puts the KV cache of a kind's prefix ([`kind_prefix`]) in place from the prompt cache, if
/// the model does not hold it already. Returns `false` when it is not in place and could be
/// saved: the prompt computes it, and [`save_kind_prefix`] keeps it for the next question of
/// the kind. What is put back is what the prompt's own pass would have computed: the prefix
/// was saved from a pass of that many rows or more ([`Generator::holds`]).
fn restore_kind_prefix(generator: &mut Generator, prefix: &[u32]) -> bool {
    if generator.holds(prefix) {
        return true;
    }
    let start = generator.primed_len().min(prefix.len());
    let Some(file) = generator
        .cache_identity()
        .and_then(|id| prompt_cache::file(id, prefix))
    else {
        return true;
    };
    prompt_cache::read(&file, &prefix[start..])
        .is_some_and(|kv| generator.restore_after_prefix(prefix, &kv).is_ok())
}

/// Saves the KV cache of a kind's prefix past the primed one, when the model holds it, for the
/// next question of the kind (in this run or another). A cache that cannot be written costs
/// the next question a fraction of a second, nothing more.
fn save_kind_prefix(generator: &Generator, prefix: &[u32]) {
    let Some(file) = generator
        .cache_identity()
        .and_then(|id| prompt_cache::file(id, prefix))
    else {
        return;
    };
    if let Some((tokens, kv)) = generator.snapshot_after_prefix(prefix.len()) {
        let _ = prompt_cache::write(&file, &tokens, &kv);
    }
}

/// The chat for a quoted answer ([`messages_for`]).
fn messages(question: &str, context: &Context) -> Vec<Message> {
    messages_for(question, context, false)
}

/// The chat for a question; `free` for an answer in the model's own words, which says "yes"
/// or "no" itself, so a yes-or-no question is asked as it was put.
fn messages_for(question: &str, context: &Context, free: bool) -> Vec<Message> {
    let mut m = vec![Message::system(SYSTEM_PROMPT)];
    for (user, assistant) in EXAMPLES {
        m.push(Message::user(*user));
        m.push(Message::assistant(*assistant));
    }
    let yes_or_no = Kind::yes_or_no(question);
    let polar = yes_or_no && !free;
    // Only for a question of one of those kinds (what, what for, why, how, how they differ,
    // yes or no): every other prompt stays as it was.
    if let Some(example) = kind_example(question).filter(|_| polar || !yes_or_no) {
        m.push(Message::user(example.0));
        m.push(Message::assistant(example.1));
    }
    // Asked yes or no, the model is asked for the sentence that answers: it cannot quote
    // "yes" from the sources, and said NOT FOUND instead.
    let asked = if polar {
        format!("{} {POLAR_ASK}", question.trim())
    } else {
        question.to_owned()
    };
    m.push(Message::user(user_prompt(&asked, context)));
    m
}

/// A kind of question that gets a worked example of its own after [`EXAMPLES`] (and, asked
/// why or how something works, its own self-check margin).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    /// What something is ([`cairn_retriever::terms::Asks::Is`]).
    Is,
    /// What something does ([`cairn_retriever::terms::Asks::Does`]).
    Does,
    /// Why, how, or how two things differ.
    Explains(cairn_retriever::terms::Explains),
    /// Yes or no ([`cairn_retriever::terms::polar`]).
    Polar,
}

impl Kind {
    /// The kind of `question`, if it has one: a subject first, then an explanation.
    fn of(question: &str) -> Option<Kind> {
        use cairn_retriever::terms::{explains, subject, Asks};
        match subject(question).map(|s| s.asks) {
            Some(Asks::Is) => Some(Kind::Is),
            Some(Asks::Does) => Some(Kind::Does),
            None => explains(question)
                .map(Kind::Explains)
                .or_else(|| cairn_retriever::terms::polar(question).then_some(Kind::Polar)),
        }
    }

    /// Whether `question` is to be answered yes or no ([`Kind::Polar`]).
    fn yes_or_no(question: &str) -> bool {
        Kind::of(question) == Some(Kind::Polar)
    }

    /// Whether `question` asks why, how something works, or how two things differ: answered
    /// by a sentence, whose self-check runs otherwise ([`calibrated_explanation_check`]). Not
    /// a task ("How do I…?"): that is answered by a command or a setting, checked as a fact.
    fn explains(question: &str) -> bool {
        use cairn_retriever::terms::Explains;
        matches!(
            Kind::of(question),
            Some(Kind::Explains(
                Explains::Why | Explains::How | Explains::Difference
            ))
        )
    }

    /// Its worked example: [`DEFINITION_EXAMPLE`] asked what something is,
    /// [`PURPOSE_EXAMPLE`] what it does, [`REASON_EXAMPLE`] why, [`WAY_EXAMPLE`] how,
    /// [`TASK_EXAMPLE`] how to do something and [`DIFFERENCE_EXAMPLE`] how two things differ.
    fn example(self) -> (&'static str, &'static str) {
        use cairn_retriever::terms::Explains;
        match self {
            Kind::Is => DEFINITION_EXAMPLE,
            Kind::Does => PURPOSE_EXAMPLE,
            Kind::Explains(Explains::Why) => REASON_EXAMPLE,
            Kind::Explains(Explains::How) => WAY_EXAMPLE,
            Kind::Explains(Explains::Task) => TASK_EXAMPLE,
            Kind::Explains(Explains::Difference) => DIFFERENCE_EXAMPLE,
            Kind::Polar => POLAR_EXAMPLE,
        }
    }

    /// Two questions of this kind that differ only in their last words. Not "a": "What is a?"
    /// asks about nothing once its article is dropped.
    fn pair(self) -> (&'static str, &'static str) {
        use cairn_retriever::terms::Explains;
        match self {
            Kind::Is => ("What is x?", "What is y?"),
            Kind::Does => ("What does x do?", "What does y do?"),
            Kind::Explains(Explains::Why) => ("Why x?", "Why y?"),
            Kind::Explains(Explains::How) => ("How x?", "How y?"),
            Kind::Explains(Explains::Task) => ("How do I x?", "How do I y?"),
            Kind::Explains(Explains::Difference) => (
                "What is the difference between x and z?",
                "What is the difference between y and z?",
            ),
            Kind::Polar => ("Is it x?", "Is it y?"),
        }
    }
}

/// The worked example a question of its kind gets after [`EXAMPLES`] ([`Kind::example`]);
/// none for other questions.
fn kind_example(question: &str) -> Option<(&'static str, &'static str)> {
    Kind::of(question).map(Kind::example)
}

/// Two questions of `draft`'s kind ([`kind_example`]) that differ only in their last words.
fn kind_pair(draft: &str) -> (&'static str, &'static str) {
    Kind::of(draft).map_or(("x", "y"), Kind::pair)
}

/// What a quoted answer to `question` may be: a span of `texts` or the refusal, which does not
/// stop where it says nothing yet.
fn quote_constraint<'a>(
    question: &str,
    texts: impl IntoIterator<Item = &'a str>,
    o: &AskOptions,
) -> Quote {
    // "What is a closure?" is not answered by "a closure", nor "What is a policy enforcement
    // point?" by "PEP": such a quote must go on to say what the thing is.
    let asked = question.to_owned();
    // Asked yes or no, the quote is the evidence: a sentence, or a clause of one, not a word
    // or two.
    let least_words = if Kind::yes_or_no(question) {
        POLAR_QUOTE_WORDS
    } else {
        0
    };
    Quote::new(texts, [REFUSAL])
        .with_unfinished(move |out| {
            restatement(&asked, out) == Restatement::Whole
                || (out.trim() != REFUSAL && out.split_whitespace().count() < least_words)
                // "…run the following:" goes on into the command it announces.
                || stops_short(out)
                // "a set of" says nothing yet.
                || cairn_retriever::context::dangles(out)
        })
        // "the same layout" goes on "as the value…" where its source does.
        .with_unfinished_before(cairn_retriever::context::compares_on)
        .with_stop_bias(o.stop_bias)
        .with_start_floor(o.min_start_logprob)
        .with_reply_bias(o.refusal_bias)
}

/// ` [1]`, ` [1,2]` or ` [?]` for a claim.
#[must_use]
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

/// The words the best source that spells out the abbreviation `term` gives, as it writes them
/// (whitespace collapsed), cited at their lines: the answer to what `term` stands for. `None`
/// when no source spells it out.
fn spelled_out(term: &str, context: &Context) -> Option<Claim> {
    context.sources.iter().find_map(|source| {
        source.excerpts.iter().find_map(|e| {
            let words = cairn_retriever::terms::spelled_out_words(term, &e.text)?;
            let line = |at: usize| e.lines.0 + e.text[..at].matches('\n').count() as u32;
            let text = e.text[words.clone()]
                .split_whitespace()
                .collect::<Vec<_>>()
                .join(" ");
            Some(Claim {
                range: (0, text.len()),
                text,
                citations: vec![cairn_retriever::Citation {
                    source: source.number,
                    lines: (line(words.start), line(words.end)),
                    support: 1.0,
                }],
                supported: true,
                quotes: Vec::new(),
            })
        })
    })
}

/// The most words a list given whole as an answer ([`whole_list`]) may have: a longer one is
/// left to the quote the model chose (the sources show the rest).
const LIST_WORDS: usize = 150;

/// Chunks read past a passage that ends in a list, for the rest of the list (a PDF's four
/// practice groups, each a paragraph, run over two chunks after their lead-in; NIST SP 800-207's
/// seven tenets over six, and onto the next page). Reading them is a few store lookups.
const LIST_READ_ON: usize = 12;

/// Where a passage read for a list runs onto the next page of its PDF ([`whole_list`]).
struct PageTurn {
    /// Where the next page's text begins in the joined text.
    at: usize,
    /// The next page.
    page: u32,
    /// The lines of the next page read (first, last).
    lines: (u32, u32),
    /// The heading path of its first passage.
    heading: Vec<String>,
}

/// A passage read for a list: its text, its lines on its own page, and where it runs onto the
/// next page, if it does.
struct ReadFor<'a> {
    text: std::borrow::Cow<'a, str>,
    lines: (u32, u32),
    turn: Option<PageTurn>,
}

/// The list that the quote `claims` cite stands in, when it is cited at one or some of its
/// items: every item, each on a line of its own as its source writes it (whitespace collapsed
/// but for the lines of fenced code), cited at the list's lines; or, when `quote` is from the
/// paragraph that introduces a list ([`cairn_retriever::context::list_after`]), the quote and
/// then the list. The list is read from the stored passage the quote's lines are in (`hits`),
/// where the excerpt given to the model may have left items out, with the passages after it
/// where it ends in the list (`read_on`), over a PDF's page turn if the list goes on at the top
/// of the next page; else from the excerpt. The part on the next page is cited at a source of
/// its own: one of the context's when it holds those lines, else a new one, returned to be
/// added to the context. `None` when the quote is not within a list of two items or more
/// ([`cairn_retriever::context::list_around`]), already spans all of it, or the list has more
/// than [`LIST_WORDS`] words even with each item cut to its first sentence.
fn whole_list(
    quote: &str,
    claims: &[Claim],
    context: &Context,
    hits: &[Hit],
    read_on: &[ChunkRecord],
) -> Option<(Claim, Option<cairn_retriever::Source>)> {
    let first = claims.iter().flat_map(|c| &c.citations).next()?;
    let last = claims
        .iter()
        .flat_map(|c| &c.citations)
        .filter(|c| c.source == first.source)
        .map(|c| c.lines.1)
        .max()?;
    let source = context.sources.iter().find(|s| s.number == first.source)?;
    let holds = |lines: (u32, u32)| lines.0 <= first.lines.0 && last <= lines.1;
    let ours = |c: &&ChunkRecord| c.doc == source.doc && c.page == source.page;
    let whole = |c: &ChunkRecord| c.text.len() == c.range.1 - c.range.0;
    // A passage and those after it (`read_on`), where the list may go on: the text of the
    // document from the one's start to the last's end (chunks overlap, or leave out the
    // whitespace between them), at most one page turn on.
    let joined: Vec<ReadFor<'_>> = hits
        .iter()
        .map(|h| &h.chunk)
        .filter(|c| ours(c) && holds(c.lines) && whole(c))
        .filter_map(|c| {
            let (mut text, mut end, lines) = (c.text.clone(), c.range.1, c.lines);
            let (mut last_start, mut last_line) = (c.range.0, c.lines.1);
            let mut turn: Option<PageTurn> = None;
            // The next chunk of the document: on the page read so far, overlapping the text
            // or starting on its last line, the next, or after one blank line; or the first of
            // the next page.
            while let Some(next) = read_on
                .iter()
                .filter(|n| n.doc == source.doc && n.range.0 > last_start && n.range.1 > end)
                .min_by_key(|n| n.range.0)
                .filter(|n| whole(n))
            {
                let page = turn.as_ref().map_or(source.page, |t| Some(t.page));
                if next.page == page && next.lines.0 <= last_line + 2 {
                    if next.range.0 <= end {
                        text.push_str(next.text.get(end - next.range.0..)?);
                    } else {
                        let breaks = next.lines.0.checked_sub(last_line)? as usize;
                        if breaks == 0 {
                            text.push(' ');
                        } else {
                            text.push_str(&"\n".repeat(breaks));
                        }
                        text.push_str(&next.text);
                    }
                } else if turn.is_none()
                    && page.is_some_and(|p| next.page == Some(p + 1))
                    && next.range.0 >= end
                {
                    // The page's footnotes, between its text and the next page's, are no
                    // part of the list; then a line break, not a paragraph's: an item may go
                    // on over the turn.
                    text.truncate(before_footnotes(&text));
                    text.push('\n');
                    turn = Some(PageTurn {
                        at: text.len(),
                        page: next.page?,
                        lines: next.lines,
                        heading: next.heading.clone(),
                    });
                    text.push_str(&next.text);
                } else {
                    break;
                }
                if let Some(t) = &mut turn {
                    t.lines.1 = next.lines.1;
                }
                (last_start, end, last_line) = (next.range.0, next.range.1, next.lines.1);
            }
            (end > c.range.1).then(|| ReadFor {
                text: text.into(),
                lines,
                turn,
            })
        })
        .collect();
    let passages = joined
        .into_iter()
        .chain(
            hits.iter()
                .map(|h| &h.chunk)
                .filter(|c| ours(c) && holds(c.lines))
                .map(|c| ReadFor {
                    text: c.text.as_str().into(),
                    lines: c.lines,
                    turn: None,
                }),
        )
        .chain(
            source
                .excerpts
                .iter()
                .filter(|e| holds(e.lines))
                .map(|e| ReadFor {
                    text: e.text.as_str().into(),
                    lines: e.lines,
                    turn: None,
                }),
        );
    let lists = passages.filter_map(|read| {
        let text = &read.text;
        let lines = read.lines;
        // Where line `n` of the document starts in the text, and where it ends.
        let starts: Vec<usize> = std::iter::once(0)
            .chain(text.match_indices('\n').map(|(i, _)| i + 1))
            .collect();
        let start_of = |n: u32| starts.get((n - lines.0) as usize).copied();
        let end_of = |n: u32| {
            starts
                .get((n - lines.0) as usize + 1)
                .map_or(text.len(), |&next| next - 1)
        };
        let quoted = start_of(first.lines.0)?..end_of(last);
        let (items, lead_in) = match cairn_retriever::context::list_around(text, quoted.clone()) {
            Some(items) => (items, false),
            None => (cairn_retriever::context::list_after(text, quoted)?, true),
        };
        Some((items, lead_in, read))
    });
    let (items, lead_in, read) = lists.max_by_key(|(items, _, _)| items.len())?;
    let text = read.text.as_ref();
    // The page (0: the source's, 1: the next) and line of a place in the text.
    let line = |at: usize| match &read.turn {
        Some(t) if at >= t.at => (1, t.lines.0 + text[t.at..at].matches('\n').count() as u32),
        _ => (0, read.lines.0 + text[..at].matches('\n').count() as u32),
    };
    let (mut from, to) = (line(items[0].start), line(items[items.len() - 1].end));
    if from.0 == 0 && to.0 == 0 && first.lines.0 <= from.1 && to.1 <= last {
        return None;
    }
    let whole: Vec<&str> = items.iter().map(|r| &text[r.clone()]).collect();
    // Too long whole, each item by its first sentence ("1. All data sources and computing
    // services are considered resources.").
    let lead: Vec<&str> = whole
        .iter()
        .map(|item| {
            // After the marker, which would be a sentence of its own ("1.").
            let body = item.find(char::is_whitespace).unwrap_or(item.len());
            cairn_ingest::sentence_ranges(&item[body..])
                .first()
                .map_or(*item, |s| &item[..body + s.end])
        })
        .collect();
    let list = |items: &[&str]| {
        counted(items)
            .iter()
            .map(|item| cairn_generator::constrain::collapse_whitespace(item))
            .collect::<Vec<_>>()
            .join("\n")
    };
    let short = |answer: &String| answer.split_whitespace().count() <= LIST_WORDS;
    // A quote of the paragraph that introduces the list goes before it.
    let introduced = |list: String| {
        if lead_in {
            format!("{quote}\n{list}")
        } else {
            list
        }
    };
    let answer = Some(introduced(list(&whole)))
        .filter(short)
        .or_else(|| Some(introduced(list(&lead))).filter(short))?;
    if lead_in {
        from = (0, first.lines.0);
    }
    let cite = |source: usize, lines: (u32, u32)| cairn_retriever::Citation {
        source,
        lines,
        support: 1.0,
    };
    let mut added = None;
    let citations = match (&read.turn, from.0, to.0) {
        (Some(turn), 0, 1) => {
            // Up to the page's last line read, then the next page's part: at a source that
            // holds it, else one of its own.
            let before = line(turn.at - 1).1;
            let after = (turn.lines.0, to.1);
            let next = Some(turn.page);
            let held = context.sources.iter().find(|s| {
                s.doc == source.doc
                    && s.page == next
                    && s.lines.0 <= after.0
                    && after.1 <= s.lines.1
            });
            let number = if let Some(s) = held {
                s.number
            } else {
                let number = context.sources.iter().map(|s| s.number).max().unwrap_or(0) + 1;
                added = Some(cairn_retriever::Source {
                    number,
                    doc: source.doc.clone(),
                    heading: turn.heading.clone(),
                    page: next,
                    lines: turn.lines,
                    chunks: Vec::new(),
                    rank: source.rank,
                    score: source.score,
                    bm25: None,
                    dense: None,
                    excerpts: vec![cairn_retriever::Excerpt {
                        text: text[turn.at..].to_owned(),
                        lines: turn.lines,
                    }],
                    whole: false,
                    also: Vec::new(),
                });
                number
            };
            vec![cite(source.number, (from.1, before)), cite(number, after)]
        }
        // Both ends on the source's page (the list ended before the turn); a list that
        // starts past the turn is not around the quote.
        (_, 0, 0) => vec![cite(source.number, (from.1, to.1))],
        _ => return None,
    };
    Some((
        Claim {
            range: (0, answer.len()),
            text: answer,
            citations,
            supported: true,
            quotes: Vec::new(),
        },
        added,
    ))
}

/// Where the footnotes at the end of a PDF page's text begin (the text's length when it ends
/// in none): the trailing paragraphs whose first line starts with a bare note number and a
/// word ("2  The SSDF practices may…"), not a list's number ("2. Protect…", "2) …").
fn before_footnotes(page: &str) -> usize {
    let note = |paragraph: &str| {
        let line = paragraph.trim_start();
        let digits = line.len() - line.trim_start_matches(|c: char| c.is_ascii_digit()).len();
        let rest = &line[digits..];
        (1..=3).contains(&digits)
            && rest.starts_with(char::is_whitespace)
            && rest.trim_start().starts_with(char::is_alphabetic)
    };
    let mut end = page.trim_end().len();
    while let Some(at) = page[..end].rfind("\n\n") {
        if !note(&page[at..end]) {
            break;
        }
        end = page[..at].trim_end().len();
    }
    end
}

/// A numbered list's items as a page shows them: Markdown numbers an ordered list from its
/// first item's number whatever the others say, and lists are often written "1. 1. 1.". Items
/// numbered one after the other, and bulleted ones, are as written.
fn counted<'a>(items: &[&'a str]) -> Vec<std::borrow::Cow<'a, str>> {
    let number = |item: &str| {
        let marker = item.split_whitespace().next()?;
        marker
            .strip_suffix(['.', ')'])
            .filter(|n| (1..=3).contains(&n.len()))?
            .parse::<u32>()
            .ok()
    };
    let numbers: Option<Vec<u32>> = items.iter().map(|i| number(i)).collect();
    match numbers {
        Some(numbers) if numbers.windows(2).any(|w| w[1] != w[0] + 1) => items
            .iter()
            .zip(numbers[0]..)
            .map(|(item, n)| {
                let marker = item.find(char::is_whitespace).unwrap_or(item.len());
                let close = &item[marker - 1..marker];
                format!("{n}{close}{}", &item[marker..]).into()
            })
            .collect(),
        _ => items.iter().map(|&i| i.into()).collect(),
    }
}

/// A quoted answer with no words to ground — an operator, a sigil, a number (`?`, `..=`,
/// `one`) — is cited where the quote was taken from: the constraint made it verbatim, and the
/// place whose surroundings share most of the question's words is where the model read it.
/// `None` for free answers and for quotes of mere function words (`It`), which stay
/// unsupported.
fn literal_quote(free: bool, question: &str, answer: &str, context: &Context) -> Option<Claim> {
    if free || !cairn_retriever::terms::is_literal(answer) {
        return None;
    }
    let (citation, _) = cairn_retriever::ground::locate_quote(question, answer, context)?;
    Some(Claim {
        text: answer.to_owned(),
        range: (0, answer.len()),
        citations: vec![citation],
        supported: true,
        quotes: Vec::new(),
    })
}

/// The sentences of a source's excerpts that touch the given lines, whitespace collapsed but
/// for the lines of fenced code ([`cairn_generator::constrain::collapse_whitespace`]).
#[must_use]
pub fn cited_sentences(s: &cairn_retriever::Source, lines: &[(u32, u32)]) -> Vec<String> {
    let mut out = Vec::new();
    for e in &s.excerpts {
        for r in cairn_ingest::sentence_ranges(&e.text) {
            let first = e.lines.0 + e.text[..r.start].matches('\n').count() as u32;
            let last = e.lines.0 + e.text[..r.end].matches('\n').count() as u32;
            if !lines.iter().any(|&(a, b)| first <= b && a <= last) {
                continue;
            }
            let sentence = &e.text[r];
            // A code block is one sentence: of it, the lines cited (one command of several).
            let cited: Vec<&str> = sentence
                .lines()
                .zip(first..)
                .filter(|&(_, n)| lines.iter().any(|&(a, b)| a <= n && n <= b))
                .map(|(l, _)| l)
                .collect();
            let code = sentence.lines().any(cairn_generator::constrain::is_fence);
            if code && !cited.is_empty() && cited.len() < sentence.lines().count() {
                out.extend(cited.iter().map(|l| l.trim_end().to_owned()));
            } else {
                out.push(cairn_generator::constrain::collapse_whitespace(sentence));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use cairn_retriever::{Excerpt, Source};

    use super::*;
    use crate::AnswerStream;

    fn context() -> Context {
        let source = |number: usize, text: &str, first: u32| Source {
            number,
            doc: format!("d{number}.md"),
            heading: Vec::new(),
            page: None,
            lines: (first, first + 2),
            chunks: Vec::new(),
            rank: number,
            score: 1.0,
            bm25: None,
            dense: None,
            excerpts: vec![Excerpt {
                text: text.into(),
                lines: (first, first + 2),
            }],
            whole: true,
            also: Vec::new(),
        };
        Context {
            sources: vec![
                source(1, "Is it done? It is. Nobody knows.", 1),
                source(
                    2,
                    "Errors are common.\nThe ? operator propagates errors.\nIt returns.",
                    20,
                ),
            ],
            tokens: 0,
        }
    }

    #[test]
    fn cited_sentences_keep_the_lines_of_code_and_join_those_of_prose() {
        let mut ctx = context();
        let s = &mut ctx.sources[0];
        s.excerpts[0].text = "To build it,\nrun the following:\n\n```sh\n$ make\n$ make   \
                              install\n```\n\nIt takes a minute."
            .into();
        s.excerpts[0].lines = (1, 10);
        assert_eq!(
            cited_sentences(s, &[(2, 7)]),
            [
                "To build it, run the following:",
                "```sh\n$ make\n$ make install\n```"
            ]
        );
        assert_eq!(cited_sentences(s, &[(9, 9)]), ["It takes a minute."]);
        // One command of the block: its line alone.
        assert_eq!(cited_sentences(s, &[(6, 6)]), ["$ make   install"]);
        // A block cut off by a blank line inside it is closed.
        s.excerpts[0].text = "```toml\n[a]\nx = 1\n\n[b]\ny = 2\n```".into();
        s.excerpts[0].lines = (1, 7);
        assert_eq!(
            cited_sentences(s, &[(1, 7)]),
            ["```toml\n[a]\nx = 1\n```", "```\n[b]\ny = 2\n```"]
        );
        s.excerpts[0].text = "Then run this:\n```\n$ make\n\n$ make install\n```".into();
        s.excerpts[0].lines = (1, 6);
        assert_eq!(
            cited_sentences(s, &[(1, 6)]),
            [
                "Then run this:\n```\n$ make\n```",
                "```\n$ make install\n```"
            ]
        );
    }

    /// A quoted answer shown as `claim`, from `ctx`.
    fn quoted(question: &str, text: &str, claim: Claim, ctx: &Context) -> Answer {
        Answer {
            question: question.into(),
            answer: text.into(),
            abstained: None,
            claims: vec![claim],
            context: ctx.clone(),
            hits: Vec::new(),
            logprobs: Vec::new(),
            quote_coverage: None,
            self_check: None,
            start: None,
            verdict: None,
            gates: Gates::default(),
            timings: Timings::default(),
        }
    }

    #[test]
    fn an_abbreviation_is_answered_with_the_words_a_source_spells_it_out_with() {
        let mut ctx = context();
        ctx.sources[1].excerpts[0].text =
            "Access goes through a policy decision point (PDP) and a\ncorresponding \
             *policy   enforcement point* (PEP).\nIt returns."
                .into();
        let claim = spelled_out("pep", &ctx).expect("spelled out in source 2");
        assert_eq!(claim.text, "policy enforcement point");
        assert_eq!(claim.range, (0, claim.text.len()));
        assert!(claim.supported);
        assert_eq!(
            (claim.citations[0].source, claim.citations[0].lines),
            (2, (21, 21))
        );
        assert!(spelled_out("zta", &ctx).is_none());
        // Settled with no word from the model, the stream shows the engine's answer.
        let answer = quoted("What is the PEP?", &claim.text.clone(), claim, &ctx);
        let mut stream = AnswerStream::quoted();
        stream.set_context(&ctx);
        assert!(stream.is_empty());
        stream.settle(&answer);
        assert!(!stream.is_empty());
        assert_eq!(stream.shown(true), "policy enforcement point [2]");
    }

    /// A stored chunk of `d2.md` (source 2 of [`context`]) at `lines`, from byte `at`.
    fn chunk(text: &str, lines: (u32, u32), at: usize) -> ChunkRecord {
        ChunkRecord {
            doc: "d2.md".into(),
            hash: String::new(),
            text: text.into(),
            heading: Vec::new(),
            page: None,
            lines,
            range: (at, at + text.len()),
            in_code: false,
        }
    }

    #[test]
    fn a_list_numbered_one_one_one_is_counted_as_a_page_shows_it() {
        let shown = |items: &[&str]| counted(items).join("|");
        assert_eq!(
            shown(&["1. Install it.", "1. Run it.", "1. Stop it."]),
            "1. Install it.|2. Run it.|3. Stop it."
        );
        assert_eq!(shown(&["3) Three", "3) Four"]), "3) Three|4) Four");
        assert_eq!(shown(&["1. One", "2. Two"]), "1. One|2. Two");
        assert_eq!(shown(&["- One", "- Two"]), "- One|- Two");
    }

    /// The best hit of a search, for `chunk`.
    fn hit_of(chunk: ChunkRecord) -> Hit {
        Hit {
            rank: 1,
            fused: cairn_retriever::Fused {
                id: cairn_index::ChunkId(7),
                score: 1.0,
                bm25: None,
                dense: None,
                defines: false,
            },
            chunk,
            also: Vec::new(),
        }
    }

    /// [`whole_list`] where the list is all on the source's page: no source is added.
    fn list_of(
        quote: &str,
        claims: &[Claim],
        ctx: &Context,
        hits: &[Hit],
        read_on: &[ChunkRecord],
    ) -> Option<Claim> {
        whole_list(quote, claims, ctx, hits, read_on).map(|(claim, added)| {
            assert!(added.is_none(), "{added:?}");
            claim
        })
    }

    #[test]
    fn a_quote_of_one_item_is_answered_with_the_whole_list() {
        let mut ctx = context();
        // The model was given the list up to its second item.
        let given = "The rules:\n- Each value has an owner.\n- There can only be one owner.";
        ctx.sources[1].excerpts[0].text = given.into();
        let cited = |lines: (u32, u32)| {
            vec![Claim {
                text: "Each value has an owner".into(),
                range: (0, 23),
                citations: vec![cairn_retriever::Citation {
                    source: 2,
                    lines,
                    support: 1.0,
                }],
                supported: true,
                quotes: Vec::new(),
            }]
        };
        let two = list_of("q", &cited((21, 21)), &ctx, &[], &[]).expect("a list of two");
        assert_eq!(
            two.text,
            "- Each value has an owner.\n- There can only be one owner."
        );
        assert_eq!(two.citations[0].lines, (21, 22));
        // The stored passage and the one after it (overlapping it by a line) hold the rest.
        let stored = chunk(given, (20, 22), 100);
        let at = 100 + given.find("- There").unwrap();
        let next = chunk(
            "- There can only be one owner.\n- When the owner goes out of scope, the\n  value \
             is dropped.\n\nMore prose.",
            (22, 26),
            at,
        );
        let hit = hit_of(stored);
        // A chunk further on (from another hit) is not the one after it.
        let far = chunk("- Unrelated item.\n- Another.", (40, 41), 900);
        let (hits, later) = (std::slice::from_ref(&hit), std::slice::from_ref(&far));
        let alone = list_of("q", &cited((21, 21)), &ctx, hits, later);
        assert_eq!(alone.unwrap().citations[0].lines, (21, 22));
        let three = list_of("q", &cited((21, 21)), &ctx, hits, &[far, next]).unwrap();
        assert_eq!(
            three.text,
            "- Each value has an owner.\n- There can only be one owner.\n- When the owner goes \
             out of scope, the value is dropped."
        );
        assert_eq!(
            (three.citations[0].source, three.citations[0].lines),
            (2, (21, 24))
        );
        // A list that goes on past the chunk after it: chunks are read on while they join.
        let second = "- There can only be one owner.\n- Rule three.";
        let third_at = at + second.find("- Rule three").unwrap();
        let four = list_of(
            "q",
            &cited((21, 21)),
            &ctx,
            hits,
            &[
                chunk(
                    "- Rule three.\n- Rule four.\n\nMore prose.",
                    (23, 26),
                    third_at,
                ),
                chunk(second, (22, 23), at),
            ],
        )
        .unwrap();
        assert_eq!(
            four.text,
            "- Each value has an owner.\n- There can only be one owner.\n- Rule three.\n- Rule \
             four."
        );
        assert_eq!(four.citations[0].lines, (21, 24));
        // Not from a list or its lead-in, or already all of it: the model's quote stands.
        let mut elsewhere = cited((1, 1));
        elsewhere[0].citations[0].source = 1;
        assert!(list_of("q", &elsewhere, &ctx, &[], &[]).is_none());
        // The lead-in, with the list it introduces.
        let led = list_of("The rules:", &cited((20, 20)), &ctx, &[], &[]).unwrap();
        assert_eq!(
            led.text,
            "The rules:\n- Each value has an owner.\n- There can only be one owner."
        );
        assert!(list_of("q", &cited((21, 22)), &ctx, &[], &[]).is_none());
        // Too long whole, each item by its first sentence; too long even so, the quote.
        let more = " It goes on.".repeat(LIST_WORDS / 6);
        ctx.sources[1].excerpts[0].text = format!("Steps:\n1. Install it.{more}\n2. Run it.{more}");
        let leads = list_of("q", &cited((21, 21)), &ctx, &[], &[]).unwrap();
        assert_eq!(leads.text, "1. Install it.\n2. Run it.");
        ctx.sources[1].excerpts[0].text = format!(
            "Steps:\n{}",
            (1..=LIST_WORDS / 2)
                .map(|n| format!("{n}. Step {n}."))
                .collect::<Vec<_>>()
                .join("\n")
        );
        assert!(list_of("q", &cited((21, 21)), &ctx, &[], &[]).is_none());
        // A quote of the paragraph that introduces a list, then the list.
        ctx.sources[1].excerpts[0].text =
            "Panic when the state is bad,\nplus one of the following:\n- It is unexpected.\n\
             - Code relies on it.\n\nMore."
                .into();
        let introduced = list_of("when the state is bad", &cited((20, 20)), &ctx, &[], &[]);
        let introduced = introduced.expect("the list after the lead-in");
        assert_eq!(
            introduced.text,
            "when the state is bad\n- It is unexpected.\n- Code relies on it."
        );
        assert_eq!(introduced.citations[0].lines, (20, 23));
    }

    #[test]
    fn a_list_that_goes_on_over_a_page_turn_is_read_on_and_cited_on_both_pages() {
        // Source 2 is page 15 of a PDF, its list's lead-in and first item; the rest is on
        // page 16, after a blank line on page 15 and the turn.
        let mut ctx = context();
        let page = |n: u32| Some(n);
        let given = "The tenets are:\n\n1. All data is a resource. A network may be large.";
        let src = &mut ctx.sources[1];
        (src.doc, src.page, src.lines) = ("z.pdf".into(), page(15), (20, 22));
        src.excerpts[0] = Excerpt {
            text: given.into(),
            lines: (20, 22),
        };
        let on = |text: &str, page: u32, lines: (u32, u32), at: usize| ChunkRecord {
            doc: "z.pdf".into(),
            page: Some(page),
            ..chunk(text, lines, at)
        };
        let hit = hit_of(on(given, 15, (20, 22), 100));
        // After one blank line (line 23), item 2 ends the page mid-sentence; page 16 goes on
        // with it, then item 3 and prose.
        let second = "2. All communication is secured. Location does not\nimply trust";
        let at2 = 100 + given.len() + 2;
        let turned = "alone at all.\n\n3. Access is granted per session.\n\nThe tenets apply.";
        let at3 = at2 + second.len() + 40;
        let read_on = [on(turned, 16, (3, 7), at3), on(second, 15, (24, 25), at2)];
        let cited = vec![Claim {
            text: "All data is a resource".into(),
            range: (0, 22),
            citations: vec![cairn_retriever::Citation {
                source: 2,
                lines: (22, 22),
                support: 1.0,
            }],
            supported: true,
            quotes: Vec::new(),
        }];
        let (claim, added) =
            whole_list("q", &cited, &ctx, std::slice::from_ref(&hit), &read_on).unwrap();
        assert_eq!(
            claim.text,
            "1. All data is a resource. A network may be large.\n2. All communication is \
             secured. Location does not imply trust alone at all.\n3. Access is granted per \
             session."
        );
        // Page 15 from the list's first line to the last read; page 16 at a source of its own,
        // numbered after the context's.
        let at = |c: &cairn_retriever::Citation| (c.source, c.lines);
        let cites: Vec<_> = claim.citations.iter().map(at).collect();
        assert_eq!(cites, [(2, (22, 25)), (3, (3, 5))]);
        let added = added.expect("a source for page 16");
        assert_eq!((added.number, added.page), (3, page(16)));
        assert_eq!(added.doc, "z.pdf");
        assert_eq!(added.excerpts[0].text, turned);
        // A source of the context that holds those lines of page 16 is cited instead.
        let mut held = ctx.sources[1].clone();
        (held.number, held.page, held.lines) = (5, page(16), (1, 9));
        ctx.sources.push(held);
        let (claim, added) =
            whole_list("q", &cited, &ctx, std::slice::from_ref(&hit), &read_on).unwrap();
        assert!(added.is_none());
        assert_eq!(
            claim.citations.iter().map(at).collect::<Vec<_>>(),
            [(2, (22, 25)), (5, (3, 5))]
        );
        // Two pages on is not the list going on; nor is a Markdown file's next chunk a page.
        let far = [on(turned, 17, (3, 7), at3), on(second, 15, (24, 25), at2)];
        let (claim, added) =
            whole_list("q", &cited, &ctx, std::slice::from_ref(&hit), &far).unwrap();
        assert!(added.is_none());
        assert_eq!(
            claim.citations.iter().map(at).collect::<Vec<_>>(),
            [(2, (22, 25))]
        );
    }

    #[test]
    fn a_page_s_footnotes_are_found_at_its_end_and_list_numbers_are_not_notes() {
        let body = "• Software acquirers that want fewer vulnerabilities)3";
        let notes = "\n\n2  The practices may help support the Framework.\n3  Future work may \
                     provide guidance.\n\n14 More notes on the page.\n";
        assert_eq!(before_footnotes(&format!("{body}{notes}")), body.len());
        assert_eq!(before_footnotes(body), body.len());
        // A numbered item, a year, a lone number: no notes.
        for end in [
            "\n\n2. Protect the Software.",
            "\n\n2) Protect it.",
            "\n\n2020 was late.",
        ] {
            let page = format!("{body}{end}");
            assert_eq!(before_footnotes(&page), page.len(), "{page}");
        }
        // Only trailing ones: a note-like paragraph before the page's last text stays.
        let page = format!("{body}\n\n2  Not at the end.\n\nThe end.");
        assert_eq!(before_footnotes(&page), page.len());
    }

    #[test]
    fn a_quoted_operator_is_cited_where_it_was_quoted_from() {
        let ctx = context();
        let q = "Which operator propagates errors?";
        let claim = literal_quote(false, q, "?", &ctx).expect("a literal quote");
        assert!(claim.supported);
        assert_eq!(claim.citations.len(), 1);
        assert_eq!(
            (claim.citations[0].source, claim.citations[0].lines),
            (2, (21, 21))
        );
        // Free answers are grounded by their words only; a quote of function words says
        // nothing that can be checked.
        assert!(literal_quote(true, q, "?", &ctx).is_none());
        assert!(literal_quote(false, q, "It", &ctx).is_none());
        assert!(
            literal_quote(false, q, "..=", &ctx).is_none(),
            "in no source"
        );

        // The stream shows the quote as the engine settled it, marker after a lone stop.
        let answer = quoted(q, "?", claim, &ctx);
        let mut stream = AnswerStream::quoted();
        stream.set_context(&ctx);
        stream.push("?");
        assert_eq!(stream.shown(false), "");
        assert_eq!(
            stream.shown(true),
            "",
            "grounded by words alone, `?` is unsupported"
        );
        stream.settle(&answer);
        assert_eq!(stream.shown(true), "? [2]");
        assert_eq!(answer.cited_sources(), vec![2]);
        // A withheld answer is not shown, so it cites nothing, whatever it was grounded to.
        let unshown = Answer {
            abstained: Some(Abstain::Unsupported),
            ..answer.clone()
        };
        assert!(unshown.cited_sources().is_empty());
        assert_eq!(unshown.shown(), ("", &[][..]));
        assert_eq!(
            unshown.why_withheld().as_deref(),
            Some(Abstain::Unsupported.describe())
        );
        assert_eq!(answer.why_withheld(), None);
        let owner = Answer {
            question: "Which cargo command builds the documentation?".into(),
            answer: "Cargo".into(),
            ..unshown.clone()
        };
        assert_eq!(
            owner.why_withheld().as_deref(),
            Some("the model's answer names cargo itself, not what the question asks of it")
        );
        let vague = Answer {
            question: "How many lanes are there?".into(),
            answer: "many".into(),
            ..unshown.clone()
        };
        assert_eq!(
            vague.why_withheld().as_deref(),
            Some("the model's answer gives no number")
        );
        let mut off = owner.clone();
        off.answer = "rb".into();
        off.gates.off_scope = Some("cargo".into());
        assert_eq!(
            off.why_withheld().as_deref(),
            Some("the model's answer comes from a passage that is not about cargo")
        );
        assert_eq!(answer.shown(), ("?", &answer.claims[..]));
        assert!(unshown.cited_lines(2).is_empty());
        let mut withheld = AnswerStream::quoted();
        withheld.push("?");
        withheld.settle(&Answer {
            abstained: Some(Abstain::Unsupported),
            claims: Vec::new(),
            ..answer
        });
        assert_eq!(withheld.shown(true), "");
    }

    #[test]
    fn only_a_question_of_a_kind_gets_its_kind_of_example() {
        let plain = messages("Which keyword creates an infinite loop?", &context());
        let defining = messages("What is a closure?", &context());
        assert_eq!(defining.len(), plain.len() + 2);
        let same = |a: &Message, b: &Message| a.role == b.role && a.content == b.content;
        // Everything before the question's own turn is the cached prefix, unchanged.
        assert!(plain[..plain.len() - 1]
            .iter()
            .zip(&defining)
            .all(|(a, b)| same(a, b)));
        let example = &defining[(plain.len() - 1)..=plain.len()];
        assert_eq!(example[0].content, DEFINITION_EXAMPLE.0);
        assert_eq!(example[1].content, DEFINITION_EXAMPLE.1);
        assert!(defining
            .last()
            .unwrap()
            .content
            .ends_with("Question: What is a closure?"));
        let purpose = messages("What does the move keyword do?", &context());
        assert_eq!(purpose.len(), plain.len() + 2);
        assert_eq!(purpose[plain.len() - 1].content, PURPOSE_EXAMPLE.0);
        assert_eq!(purpose[plain.len()].content, PURPOSE_EXAMPLE.1);
        for (question, example) in [
            ("Why are iterator adapters lazy?", REASON_EXAMPLE),
            ("How does deref coercion work?", WAY_EXAMPLE),
            ("How do I run only the ignored tests?", TASK_EXAMPLE),
            (
                "What is the difference between iter and into_iter?",
                DIFFERENCE_EXAMPLE,
            ),
            ("Is a data race undefined behavior?", POLAR_EXAMPLE),
        ] {
            let m = messages(question, &context());
            assert_eq!(m.len(), plain.len() + 2, "{question}");
            assert_eq!(m[plain.len() - 1].content, example.0, "{question}");
            assert_eq!(m[plain.len()].content, example.1, "{question}");
        }
        // Asked yes or no, the question and its example's are followed by the same request for
        // a sentence; no other question is.
        let polar = messages("Is a data race undefined behavior?", &context());
        assert!(polar
            .last()
            .unwrap()
            .content
            .ends_with(&format!("undefined behavior? {POLAR_ASK}")));
        assert!(POLAR_EXAMPLE.0.ends_with(POLAR_ASK));
        // In the model's own words it says yes or no itself: asked as it was put, no example.
        let free = messages_for("Is a data race undefined behavior?", &context(), true);
        assert_eq!(free.len(), plain.len());
        assert!(free
            .last()
            .unwrap()
            .content
            .ends_with("Question: Is a data race undefined behavior?"));
        // Other kinds keep their examples either way.
        assert_eq!(
            messages_for("What is a closure?", &context(), true).len(),
            defining.len()
        );
        assert!(!defining.last().unwrap().content.contains(POLAR_ASK));
        // An amount is a fact: no example.
        assert_eq!(
            messages("How many lanes are there?", &context()).len(),
            plain.len()
        );
    }

    #[test]
    fn reading_ahead_renders_a_question_of_the_drafts_kind() {
        for draft in [
            "Which keyword creates an infinite loop?",
            "What is a closure?",
            "What does the move keyword do?",
            "Why are iterator adapters lazy?",
            "How does deref coercion work?",
            "How is shadowing different from mut?",
            "How many lanes are there?",
            "Is a data race undefined behavior?",
        ] {
            let (a, b) = kind_pair(draft);
            assert_ne!(a, b);
            assert_eq!(kind_example(a), kind_example(draft), "{draft}");
            assert_eq!(kind_example(b), kind_example(draft), "{draft}");
        }
    }

    #[test]
    fn a_quote_does_not_stop_before_the_command_it_announces() {
        let page = "Go back to your seasons directory. Then, on any operating system, run the \
                    following:\n\n```console\n$ tally new spring\n$ cd spring\n```\n\nThe first \
                    command creates a directory.";
        let mut q = quote_constraint("How do I start a season?", [page], &AskOptions::default());
        let write = |q: &mut Quote, piece: &str| {
            assert!(q.allows(piece.as_bytes()), "{piece:?}");
            q.advance(piece.as_bytes());
        };
        write(&mut q, "Then, on any operating system, run the following:");
        assert!(
            !q.may_stop(),
            "the words before the command are not the answer"
        );
        write(&mut q, " ``");
        assert!(!q.may_stop(), "nor the first backticks of its block");
        write(&mut q, "`console $ tally new spring");
        assert!(!q.may_stop(), "nor half of its block");
        write(&mut q, " $ cd spring ```");
        assert!(q.may_stop());
        // Elsewhere a quote stops where it likes.
        let mut q = quote_constraint("How do I start a season?", [page], &AskOptions::default());
        write(&mut q, "Go back to your seasons directory.");
        assert!(q.may_stop());
    }

    #[test]
    fn the_self_check_runs_where_a_margin_was_calibrated_or_given() {
        let calibrated = "Qwen2.5 Coder 1.5B Instruct GGUF";
        let check = SelfCheck::default();
        assert_eq!(check.margin(calibrated, false), Some(1.15));
        // A free answer streams as it is written: it cannot be withheld after.
        assert_eq!(check.margin(calibrated, true), None);
        assert_eq!(check.margin("SmolLM2 135M Instruct", false), None);
        assert_eq!(SelfCheck::Off.margin(calibrated, false), None);
        assert_eq!(SelfCheck::Margin(-3.0).margin("any", true), Some(-3.0));
        // Asked why or how, its own margin; a margin given holds for every question.
        let why = "Why are iterator adapters lazy?";
        assert_eq!(check.margin_for(calibrated, false, why), Some(1.5));
        assert_eq!(check.margin_for(calibrated, true, why), None);
        assert_eq!(
            check.margin_for(calibrated, false, "Which keyword loops?"),
            Some(1.15)
        );
        assert_eq!(check.margin_for("SmolLM2 135M Instruct", false, why), None);
        // Asked how to do something, the answer is a command or a setting: checked as a fact,
        // and a sure check lets it through failing word gates as it does a fact.
        let task = "How do I run only the ignored tests?";
        assert_eq!(check.margin_for(calibrated, false, task), Some(1.15));
        assert_eq!(check.overrule_for(calibrated, false, task), Some(1.7));
        assert_eq!(check.overrule_for(calibrated, false, why), None);
        // Asked yes or no, the check is another question with a margin of its own.
        let polar = "Is a data race undefined behavior?";
        assert_eq!(check.margin_for(calibrated, false, polar), Some(0.5));
        assert_eq!(
            check.margin_for("SmolLM2 135M Instruct", false, polar),
            None
        );
        assert_eq!(
            SelfCheck::Margin(0.5).margin_for(calibrated, false, why),
            Some(0.5)
        );
    }

    #[test]
    fn a_sure_self_check_overrules_the_word_gates_but_not_the_relevance_floor() {
        let calibrated = "Qwen2.5 Coder 1.5B Instruct GGUF";
        let check = SelfCheck::default();
        let fact = "What form of oxygen do marine animals take up when it is cold?";
        assert_eq!(check.overrule_for(calibrated, false, fact), Some(1.7));
        // Not for questions whose margins run otherwise, free answers, other models, or a
        // margin given by hand.
        for other in [
            "Why are iterator adapters lazy?",
            "Is a data race undefined behavior?",
        ] {
            assert_eq!(
                check.overrule_for(calibrated, false, other),
                None,
                "{other}"
            );
        }
        assert_eq!(check.overrule_for(calibrated, true, fact), None);
        assert_eq!(
            check.overrule_for("SmolLM2 135M Instruct", false, fact),
            None
        );
        assert_eq!(
            SelfCheck::Margin(1.0).overrule_for(calibrated, false, fact),
            None
        );
        assert_eq!(SelfCheck::Off.overrule_for(calibrated, false, fact), None);

        let gates = |relevance: f32, coverage: f32| Gates {
            relevance: Some(relevance),
            min_relevance: 0.3,
            coverage,
            min_coverage: 0.25,
            min_named_coverage: 0.4,
            min_rare_coverage: 0.5,
            ..Gates::default()
        };
        assert!(gates(0.6, 0.5).may_ask(None), "every gate passed");
        assert!(
            !gates(0.6, 0.1).may_ask(None),
            "words short, nothing to overrule"
        );
        assert!(gates(0.6, 0.1).may_ask(Some(1.7)), "words short, overruled");
        assert!(
            !gates(0.2, 0.5).may_ask(Some(1.7)),
            "the relevance floor holds"
        );
    }
}
