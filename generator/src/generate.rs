//! The generator: one loaded model, reused across questions, streaming tokens to a sink.

use std::ops::ControlFlow;
use std::path::Path;
use std::time::{Duration, Instant};

use crate::chat::{ChatTemplate, Message};
use crate::constrain::Constraint;
use crate::error::{Error, Result};
use crate::gguf::{GgufFile, ModelConfig};
use crate::model::{argmax_rows, Transformer, PREFILL_CHUNK, SAME_ROWS_FROM};
use crate::sampling::{Sampler, Sampling};
use crate::tokenizer::{StreamDecoder, Tokenizer};

/// Receives generated text as it is produced.
///
/// Return [`ControlFlow::Break`] to stop generation before the next token is computed: a
/// cancelled question frees the model at once.
pub trait TokenSink {
    /// Called with each new piece of text (possibly several characters, never half of one).
    fn token(&mut self, piece: &str) -> ControlFlow<()>;
}

impl<F: FnMut(&str) -> ControlFlow<()>> TokenSink for F {
    fn token(&mut self, piece: &str) -> ControlFlow<()> {
        self(piece)
    }
}

/// A sink that keeps the whole text.
#[derive(Debug, Default)]
pub struct Collect(pub String);

impl TokenSink for Collect {
    fn token(&mut self, piece: &str) -> ControlFlow<()> {
        self.0.push_str(piece);
        ControlFlow::Continue(())
    }
}

/// How to load a model.
#[derive(Debug, Clone)]
pub struct LoadOptions {
    /// Context window to allocate, in tokens; capped at the model's trained length.
    pub n_ctx: usize,
}

impl Default for LoadOptions {
    fn default() -> Self {
        Self { n_ctx: 4096 }
    }
}

/// How to generate one answer.
#[derive(Debug, Clone)]
pub struct GenerateOptions {
    /// Most tokens to generate.
    pub max_tokens: usize,
    /// Token choice.
    pub sampling: Sampling,
    /// Keep going past end-of-turn tokens (benchmarks that need a fixed token count).
    pub ignore_stop_tokens: bool,
}

impl Default for GenerateOptions {
    fn default() -> Self {
        Self {
            max_tokens: 256,
            sampling: Sampling::Greedy,
            ignore_stop_tokens: false,
        }
    }
}

/// Told the probe's logits before the first token: whether the generation goes on
/// ([`Generator::generate_probed`]).
pub type Proceed<'a> = dyn FnMut(&[f32]) -> bool + 'a;

/// Why generation ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FinishReason {
    /// The model produced an end-of-turn token.
    Stop,
    /// `max_tokens` were generated.
    Length,
    /// The sink asked to stop.
    Cancelled,
    /// The probe's logits, from the prompt's own pass, stopped it before the first token
    /// ([`Generator::generate_probed`]).
    Withheld,
}

/// What one generation did, and how fast.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Generation {
    /// The generated token ids (without the stop token).
    pub tokens: Vec<u32>,
    /// The log-probability the model gave each chosen token, before any constraint narrowed
    /// the choice; the stop token's is last when generation ended on one.
    pub logprobs: Vec<f32>,
    /// The generated text.
    pub text: String,
    /// With a constraint: how the model weighed the ways to begin, before the constraint chose.
    pub start: Option<StartChoice>,
    /// Why it ended.
    pub finish: FinishReason,
    /// Prompt length in tokens.
    pub prompt_tokens: usize,
    /// Prompt tokens whose KV cache was reused from the previous call.
    pub reused_tokens: usize,
    /// Time to run the new prompt tokens.
    pub prefill: Duration,
    /// Time from the call to the first generated token.
    pub time_to_first_token: Duration,
    /// Time spent producing tokens after the first.
    pub decode: Duration,
}

/// The model's own weighing of its first token under a [`Constraint`] with fixed replies.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct StartChoice {
    /// Log of the probability the model gave, together, to the tokens that begin a fixed reply
    /// and nothing else (for a quote: the refusal); minus infinity when no token does.
    pub reply: f32,
    /// Log-probability of the likeliest token that may begin anything else (a quote, perhaps
    /// also a reply); minus infinity when none may.
    pub other: f32,
}

impl Generation {
    /// Prompt tokens processed per second (reused tokens excluded).
    #[must_use]
    pub fn prefill_tokens_per_second(&self) -> f64 {
        (self.prompt_tokens - self.reused_tokens) as f64 / self.prefill.as_secs_f64().max(1e-9)
    }

    /// Tokens generated per second after the first.
    #[must_use]
    pub fn decode_tokens_per_second(&self) -> f64 {
        self.tokens.len().saturating_sub(1) as f64 / self.decode.as_secs_f64().max(1e-9)
    }
}

/// `ln Σ exp(x)`, computed stably.
fn log_sum_exp(xs: &[f32]) -> f32 {
    let max = xs.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let sum: f32 = xs.iter().map(|&x| (x - max).exp()).sum();
    max + sum.ln()
}

/// Every token id, the [`FIRST`] likeliest first (in no particular order), and how many
/// those are: a constraint is tried on them before the rest of the vocabulary.
fn best_first(logits: &[f32]) -> (Vec<u32>, usize) {
    let mut order: Vec<u32> = (0..logits.len() as u32).collect();
    let n = FIRST.min(order.len());
    if n < order.len() {
        order.select_nth_unstable_by(n, |&a, &b| {
            logits[b as usize].total_cmp(&logits[a as usize])
        });
    }
    (order, n)
}

/// How many of the likeliest tokens a constraint is tried on first.
const FIRST: usize = 256;

/// A loaded model: weights, tokenizer, chat template and KV cache.
pub struct Generator {
    name: String,
    model: Transformer,
    tokenizer: Tokenizer,
    template: ChatTemplate,
    /// The tokens whose keys and values are in the cache, in order from position 0.
    cached: Vec<u32>,
    /// The length of the prefix put in place by [`Generator::prime`] or
    /// [`Generator::restore`]: later prompts reuse this much of the cache, and beyond it only
    /// what [`exact`](Self::exact) allows.
    pinned: Option<usize>,
    /// The length of the cache's prefix that was computed in passes of at least
    /// [`SAME_ROWS_FROM`] rows (or primed, or restored): a prompt that shares it, with as many
    /// rows left to compute, gets exactly what one pass over the whole prompt would give.
    exact: usize,
    /// What the model file is, for caches of its prompts kept by the caller
    /// ([`Self::set_cache_identity`]).
    cache_identity: Option<String>,
    load_time: Duration,
}

/// Tokens per pass of [`Generator::read_ahead`]: between passes it checks whether to stop, so
/// this bounds how long a question asked meanwhile waits (about 1.9 s for the 1.5B on two AVX2
/// cores), while each pass rebuilds the weights' strips once (about 0.2 s there).
pub const READ_AHEAD_PIECE: usize = 128;

impl Generator {
    /// Loads a GGUF model file.
    pub fn load(path: &Path, options: &LoadOptions) -> Result<Self> {
        let start = Instant::now();
        let file = GgufFile::open(path)?;
        let cfg = file.config()?;
        let tokenizer = Tokenizer::from_gguf(&file)?;
        let token_text = |id: Option<u32>| {
            id.and_then(|id| tokenizer.token_text(id))
                .unwrap_or_default()
        };
        let template = ChatTemplate::new(
            file.chat_template(),
            &token_text(tokenizer.bos_id()),
            &token_text(tokenizer.eos_id()),
        )?;
        let n_ctx = options.n_ctx.clamp(16, cfg.train_ctx.max(16));
        let mut model = Transformer::load(&file, &cfg, n_ctx)?;
        // One token through every layer: candle repacks some weight types and starts its
        // worker threads on first use, which would otherwise land on the first question.
        let warm_up = tokenizer.bos_id().or(tokenizer.eos_id()).unwrap_or(0);
        model.forward(&[warm_up], 0, false)?;
        Ok(Self {
            name: file.name(),
            model,
            tokenizer,
            template,
            cached: Vec::new(),
            pinned: None,
            exact: 0,
            cache_identity: None,
            load_time: start.elapsed(),
        })
    }

    /// Names the model file (its checksum, or its path, size and time) for the caches of its
    /// prompts that the caller keeps on disk: a saved cache is only ever put back into the
    /// model it was taken from.
    pub fn set_cache_identity(&mut self, identity: String) {
        self.cache_identity = Some(identity);
    }

    /// What [`Self::set_cache_identity`] named the model file, if anything.
    #[must_use]
    pub fn cache_identity(&self) -> Option<&str> {
        self.cache_identity.as_deref()
    }

    /// The model's name from its metadata.
    #[must_use]
    pub fn name(&self) -> &str {
        &self.name
    }

    /// How long loading took.
    #[must_use]
    pub fn load_time(&self) -> Duration {
        self.load_time
    }

    /// The context window in tokens.
    #[must_use]
    pub fn context_window(&self) -> usize {
        self.model.n_ctx()
    }

    /// The model's hyper-parameters.
    #[must_use]
    pub fn config(&self) -> &ModelConfig {
        self.model.config()
    }

    /// The tokenizer.
    #[must_use]
    pub fn tokenizer(&self) -> &Tokenizer {
        &self.tokenizer
    }

    /// Renders `messages` with the model's chat template and tokenizes the result.
    ///
    /// Special-token texts inside message contents are neutralised: what a document says cannot
    /// open or close a chat turn.
    pub fn chat_tokens(&self, messages: &[Message]) -> Result<Vec<u32>> {
        let safe: Vec<Message> = messages
            .iter()
            .map(|m| Message {
                role: m.role,
                content: self.tokenizer.neutralize_specials(&m.content),
            })
            .collect();
        let text = self.template.render(&safe)?;
        self.tokenizer.encode(&text)
    }

    /// Answers a chat, streaming the reply to `sink`.
    pub fn chat(
        &mut self,
        messages: &[Message],
        options: &GenerateOptions,
        sink: &mut dyn TokenSink,
    ) -> Result<Generation> {
        let prompt = self.chat_tokens(messages)?;
        self.generate(&prompt, options, sink)
    }

    /// Continues `prompt` (token ids), streaming the text to `sink`.
    ///
    /// The KV cache of the longest prefix shared with the previous call is reused, so a fixed
    /// instruction prefix is computed once across many questions. After [`Self::prime`] or
    /// [`Self::restore`], at most that prefix is reused: the prompt past it is always computed
    /// afresh, so the output does not depend on which prompts came before (float sums split at
    /// another place round differently, and greedy decoding can follow the difference).
    pub fn generate(
        &mut self,
        prompt: &[u32],
        options: &GenerateOptions,
        sink: &mut dyn TokenSink,
    ) -> Result<Generation> {
        self.generate_constrained(prompt, options, None, sink)
    }

    /// [`Self::generate`], choosing each token only among those `constraint` allows (stop
    /// tokens only where it may stop). Sampling, if any, is over the allowed tokens.
    pub fn generate_constrained(
        &mut self,
        prompt: &[u32],
        options: &GenerateOptions,
        constraint: Option<&mut dyn Constraint>,
        sink: &mut dyn TokenSink,
    ) -> Result<Generation> {
        Ok(self
            .generate_inner(prompt, None, options, constraint, sink)?
            .0)
    }

    /// [`Self::generate_constrained`], scoring `probe` as well: another continuation of the
    /// prompt's start (a follow-up question where the prompt's tail would be, sharing all that
    /// comes before it). Returns the generation and the next-token logits after `probe`.
    ///
    /// Where `probe` branches off within the part of the prompt that is computed afresh, it
    /// runs in the same pass as the prompt ([`Transformer::forward_fork`]), for little more
    /// than its rows' share of the prompt's products; otherwise it runs after the generation,
    /// on the cache of what it shares with the prompt ([`Self::follow_up_logits`]).
    ///
    /// When the probe rides along, `proceed` sees its logits before the first token is chosen,
    /// and returning false ends the generation there, with nothing generated
    /// ([`FinishReason::Withheld`]): an answer the probe's verdict would withhold is never
    /// written. Otherwise the generation runs whole and `proceed` is not called.
    pub fn generate_probed(
        &mut self,
        prompt: &[u32],
        probe: &[u32],
        options: &GenerateOptions,
        constraint: Option<&mut dyn Constraint>,
        sink: &mut dyn TokenSink,
        proceed: &mut Proceed<'_>,
    ) -> Result<(Generation, Vec<f32>)> {
        if probe.is_empty() {
            return Err(Error::EmptyPrompt);
        }
        let (g, logits) =
            self.generate_inner(prompt, Some((probe, proceed)), options, constraint, sink)?;
        let logits = match logits {
            Some(l) => l,
            None => self.follow_up_logits(probe)?,
        };
        Ok((g, logits))
    }

    /// Generation, with `probe` run in the prompt's pass where it can be (its logits then
    /// come back, after its `proceed` saw them; `None` when it could not).
    fn generate_inner(
        &mut self,
        prompt: &[u32],
        probe: Option<(&[u32], &mut Proceed<'_>)>,
        options: &GenerateOptions,
        mut constraint: Option<&mut dyn Constraint>,
        sink: &mut dyn TokenSink,
    ) -> Result<(Generation, Option<Vec<f32>>)> {
        let start = Instant::now();
        if prompt.is_empty() {
            return Err(Error::EmptyPrompt);
        }
        let window = self.model.n_ctx();
        if prompt.len() + options.max_tokens > window {
            return Err(Error::ContextOverflow {
                prompt_tokens: prompt.len(),
                max_tokens: options.max_tokens,
                window,
            });
        }
        // At least the last prompt token is run again, to get the logits that follow it.
        let shared = common_prefix(&self.cached, prompt).min(prompt.len() - 1);
        let reused = match self.pinned {
            None => shared,
            // Beyond the primed prefix, only a part computed in passes of SAME_ROWS_FROM rows or
            // more, and only when as many rows are left: then the answer is the one a single
            // pass gives, whatever came before it.
            Some(pinned) => shared.min(pinned).max(
                shared
                    .min(self.exact)
                    .min(prompt.len().saturating_sub(SAME_ROWS_FROM)),
            ),
        };
        self.cached.truncate(reused);
        self.exact = self.exact.min(reused);
        // The probe branches off where it stops sharing the prompt; it rides along when that
        // is within the part computed now, and both fit in the window.
        let fork = probe.map(|(p, proceed)| (common_prefix(prompt, p), p, proceed));
        let (logits, probe_logits, proceed) = match fork {
            Some((at, p, proceed))
                if at >= reused
                    && at < p.len()
                    && prompt.len() + (p.len() - at) <= window
                    && prompt.len() - reused + (p.len() - at) <= PREFILL_CHUNK =>
            {
                let (main, side) =
                    self.model
                        .forward_fork(&prompt[reused..], reused, at, &p[at..])?;
                (main, Some(side.to_vec1::<f32>()?), Some(proceed))
            }
            _ => (
                self.model.forward(&prompt[reused..], reused, false)?,
                None,
                None,
            ),
        };
        self.cached.extend_from_slice(&prompt[reused..]);
        if prompt.len() - reused >= SAME_ROWS_FROM {
            self.exact = prompt.len();
        }
        let prefill = start.elapsed();

        let mut sampler = Sampler::new(options.sampling);
        let mut decoder = StreamDecoder::default();
        let mut tokens = Vec::new();
        let mut logprobs = Vec::new();
        let mut text = String::new();
        let mut logits = logits.to_vec1::<f32>()?;
        let mut time_to_first_token = None;
        let mut decode_start = Instant::now();
        let start_choice = constraint.as_deref().map(|c| self.start_choice(&logits, c));
        let withheld = match (proceed, &probe_logits) {
            (Some(proceed), Some(l)) => !proceed(l),
            _ => false,
        };
        let finish = loop {
            if withheld {
                break FinishReason::Withheld;
            }
            if tokens.len() >= options.max_tokens {
                break FinishReason::Length;
            }
            let lse = log_sum_exp(&logits);
            let raw = constraint.is_some().then(|| logits.clone());
            if let Some(c) = constraint.as_deref_mut() {
                if !self.restrict(&mut logits, lse, &*c) {
                    // Nothing may follow and the text may not end: stop where it is.
                    break FinishReason::Stop;
                }
            }
            let next = sampler.sample(&logits);
            logprobs.push(raw.as_ref().unwrap_or(&logits)[next as usize] - lse);
            if let Some(c) = constraint.as_deref_mut() {
                if !self.tokenizer.stop_ids().contains(&next) {
                    c.advance(self.tokenizer.token_bytes(next));
                }
            }
            if time_to_first_token.is_none() {
                time_to_first_token = Some(start.elapsed());
                decode_start = Instant::now();
            }
            if !options.ignore_stop_tokens && self.tokenizer.stop_ids().contains(&next) {
                break FinishReason::Stop;
            }
            tokens.push(next);
            let piece = decoder.push(&self.tokenizer, next);
            text.push_str(&piece);
            if !piece.is_empty() && sink.token(&piece).is_break() {
                break FinishReason::Cancelled;
            }
            if tokens.len() >= options.max_tokens {
                break FinishReason::Length;
            }
            let pos = self.cached.len();
            logits = self.model.forward(&[next], pos, false)?.to_vec1::<f32>()?;
            self.cached.push(next);
        };
        let rest = decoder.finish();
        if !rest.is_empty() {
            text.push_str(&rest);
            // Generation is over either way; a sink that asks to stop here changes nothing.
            let _ = sink.token(&rest);
        }
        let g = Generation {
            tokens,
            logprobs,
            text,
            start: start_choice,
            finish,
            prompt_tokens: prompt.len(),
            reused_tokens: reused,
            prefill,
            time_to_first_token: time_to_first_token.unwrap_or(prefill),
            decode: decode_start.elapsed(),
        };
        Ok((g, probe_logits))
    }

    /// How the unconstrained `logits` of the first token split between the fixed replies of
    /// `constraint` and everything else it allows. The best few hundred tokens are weighed,
    /// as in [`Self::restrict`]; the rest of the vocabulary only when none of them may begin
    /// anything but a reply.
    fn start_choice(&self, logits: &[f32], constraint: &dyn Constraint) -> StartChoice {
        let lse = log_sum_exp(logits);
        let stops = self.tokenizer.stop_ids();
        let usable = |id: u32| !stops.contains(&id) && !self.tokenizer.is_control(id);
        let (order, n) = best_first(logits);
        let (mut reply, mut other) = (Vec::new(), f32::NEG_INFINITY);
        for &id in order[..n].iter().filter(|&&id| usable(id)) {
            let piece = self.tokenizer.token_bytes(id);
            if constraint.begins_only_reply(piece) {
                reply.push(logits[id as usize]);
            } else if constraint.allows(piece) {
                other = other.max(logits[id as usize]);
            }
        }
        if other == f32::NEG_INFINITY {
            for &id in order[n..].iter().filter(|&&id| usable(id)) {
                let piece = self.tokenizer.token_bytes(id);
                if logits[id as usize] > other
                    && !constraint.begins_only_reply(piece)
                    && constraint.allows(piece)
                {
                    other = logits[id as usize];
                }
            }
        }
        let reply = if reply.is_empty() {
            f32::NEG_INFINITY
        } else {
            log_sum_exp(&reply) - lse
        };
        StartChoice {
            reply,
            other: other - lse,
        }
    }

    /// Sets the logits of every token `constraint` does not allow to minus infinity. Returns
    /// false when no token is allowed. `lse` is the log-sum-exp of the unconstrained logits.
    ///
    /// The best few hundred tokens are tried first; only when none of them is allowed is the
    /// whole vocabulary searched.
    fn restrict(&self, logits: &mut [f32], lse: f32, constraint: &dyn Constraint) -> bool {
        let stops = self.tokenizer.stop_ids();
        let allowed = |id: u32| {
            !stops.contains(&id)
                && !self.tokenizer.is_control(id)
                && constraint.allows(self.tokenizer.token_bytes(id))
        };
        let (order, n) = best_first(logits);
        let mut keep: Vec<(u32, f32)> = order[..n]
            .iter()
            .filter(|&&id| allowed(id))
            .map(|&id| (id, logits[id as usize]))
            .collect();
        if keep.is_empty() {
            keep = order[n..]
                .iter()
                .filter(|&&id| allowed(id))
                .map(|&id| (id, logits[id as usize]))
                .collect();
        }
        if let Some(floor) = constraint.start_floor() {
            // Too unlikely a start means the model did not find what it wanted: only a fixed
            // reply may begin the text then.
            let sure = |&(id, l): &(u32, f32)| {
                l - lse >= floor || constraint.begins_reply(self.tokenizer.token_bytes(id))
            };
            keep.retain(sure);
            if keep.is_empty() {
                keep = (0..logits.len() as u32)
                    .filter(|&id| allowed(id))
                    .map(|id| (id, logits[id as usize]))
                    .filter(sure)
                    .collect();
            }
        }
        let bias = constraint.reply_bias();
        if bias != 0.0 {
            for (id, l) in &mut keep {
                if constraint.begins_only_reply(self.tokenizer.token_bytes(*id)) {
                    *l += bias;
                }
            }
        }
        // Stop tokens are weighed wherever the text may end, however unlikely.
        if constraint.may_stop() {
            let bias = constraint.stop_bias();
            keep.extend(stops.iter().map(|&id| (id, logits[id as usize] + bias)));
        }
        if keep.is_empty() {
            return false;
        }
        logits.fill(f32::NEG_INFINITY);
        for (id, l) in keep {
            logits[id as usize] = l;
        }
        true
    }

    /// The next-token logits after `tokens`, reusing all of the KV cache that `tokens` shares
    /// with what it holds — not only the pinned prefix, as [`Self::generate`] does: for scoring a
    /// short follow-up to the text just generated (a yes/no question about the answer).
    pub fn follow_up_logits(&mut self, tokens: &[u32]) -> Result<Vec<f32>> {
        if tokens.is_empty() {
            return Err(Error::EmptyPrompt);
        }
        let reused = common_prefix(&self.cached, tokens).min(tokens.len() - 1);
        self.cached.truncate(reused);
        self.exact = self.exact.min(reused);
        let logits = self.model.forward(&tokens[reused..], reused, false)?;
        self.cached.extend_from_slice(&tokens[reused..]);
        Ok(logits.to_vec1::<f32>()?)
    }

    /// Teacher forcing: the most likely next token after every prefix of `tokens`.
    ///
    /// Element `i` is the model's top-1 prediction for position `i + 1`.
    pub fn top1_predictions(&mut self, tokens: &[u32]) -> Result<Vec<u32>> {
        argmax_rows(&self.teacher_force(tokens, true)?)
    }

    /// Teacher forcing: the next-token logits after the whole of `tokens` (`vocab` values).
    pub fn next_token_logits(&mut self, tokens: &[u32]) -> Result<Vec<f32>> {
        let logits = self.teacher_force(tokens, false)?;
        Ok(logits.to_dtype(candle_core::DType::F32)?.to_vec1::<f32>()?)
    }

    /// Runs all of `tokens` from position 0, leaving them in the cache.
    fn teacher_force(&mut self, tokens: &[u32], all_logits: bool) -> Result<candle_core::Tensor> {
        self.cached.clear();
        self.exact = 0;
        let logits = self.model.forward(tokens, 0, all_logits)?;
        self.cached.extend_from_slice(tokens);
        Ok(logits)
    }

    /// Runs `prefix` through the model so that every later prompt starting with it reuses its
    /// KV cache (a fixed instruction prefix, computed before the first question arrives), and
    /// only its cache: see [`Self::generate`].
    pub fn prime(&mut self, prefix: &[u32]) -> Result<()> {
        if prefix.is_empty() {
            return Ok(());
        }
        let reused = common_prefix(&self.cached, prefix).min(self.pinned.unwrap_or(usize::MAX));
        if reused < prefix.len() {
            self.cached.truncate(reused);
            self.model.forward(&prefix[reused..], reused, false)?;
            self.cached.extend_from_slice(&prefix[reused..]);
        }
        self.pinned = Some(prefix.len());
        self.exact = prefix.len();
        Ok(())
    }

    /// Computes `tokens` into the cache ahead of a prompt that will start with them (the
    /// instructions and sources of a question still being written), so that the prompt, when
    /// it comes, computes only the rest. What the cache already holds reusably is not computed
    /// again. Runs in passes of [`READ_AHEAD_PIECE`] tokens and returns early, keeping what is
    /// done, when `stop` says so between passes. No pass is shorter than [`SAME_ROWS_FROM`]
    /// rows (a shorter remainder is left for the prompt), so the prompt's answer is exactly
    /// the one it gets without reading ahead. Returns how many of `tokens` the cache now holds
    /// reusably.
    pub fn read_ahead(&mut self, tokens: &[u32], stop: &dyn Fn() -> bool) -> Result<usize> {
        if tokens.len() > self.model.n_ctx() {
            return Err(Error::ContextOverflow {
                prompt_tokens: tokens.len(),
                max_tokens: 0,
                window: self.model.n_ctx(),
            });
        }
        let reusable = self.exact.max(self.pinned.unwrap_or(0));
        let mut done = common_prefix(&self.cached, tokens).min(reusable);
        while tokens.len() - done >= SAME_ROWS_FROM && !stop() {
            let mut end = (done + READ_AHEAD_PIECE).min(tokens.len());
            if tokens.len() - end < SAME_ROWS_FROM {
                end = tokens.len();
            }
            self.cached.truncate(done);
            self.exact = self.exact.min(done);
            self.model.forward(&tokens[done..end], done, false)?;
            self.cached.extend_from_slice(&tokens[done..end]);
            self.exact = end;
            done = end;
        }
        Ok(done)
    }

    /// The tokens in the KV cache and the cache itself, to save with [`Self::restore`].
    #[must_use]
    pub fn snapshot(&self, tokens: usize) -> (Vec<u32>, Vec<f32>) {
        let n = tokens.min(self.cached.len());
        (self.cached[..n].to_vec(), self.model.export_cache(n))
    }

    /// Restores a KV cache from [`Self::snapshot`] of the same model file. A cache of the
    /// wrong size is refused and the current cache kept.
    pub fn restore(&mut self, tokens: &[u32], kv: &[f32]) -> Result<()> {
        self.model.import_cache(tokens.len(), kv)?;
        self.cached = tokens.to_vec();
        self.pinned = Some(tokens.len());
        self.exact = tokens.len();
        Ok(())
    }

    /// How many tokens the primed (or restored) prefix holds.
    #[must_use]
    pub fn primed_len(&self) -> usize {
        self.pinned.unwrap_or(0)
    }

    /// Whether the cache holds all of `tokens` as a prompt that starts with them reuses them:
    /// primed, or computed in passes of at least [`SAME_ROWS_FROM`] rows (so that the prompt
    /// gets exactly what one pass over it gives).
    #[must_use]
    pub fn holds(&self, tokens: &[u32]) -> bool {
        common_prefix(&self.cached, tokens) == tokens.len()
            && self.exact.max(self.pinned.unwrap_or(0)) >= tokens.len()
    }

    /// The tokens the cache holds from the end of the primed prefix up to `end`, and their KV
    /// cache, to save and put back after the same prefix with [`Self::restore_after_prefix`];
    /// `None` unless the cache [`holds`](Self::holds) them.
    #[must_use]
    pub fn snapshot_after_prefix(&self, end: usize) -> Option<(Vec<u32>, Vec<f32>)> {
        let from = self.pinned.unwrap_or(0);
        (from < end && end <= self.cached.len() && self.holds(&self.cached[..end])).then(|| {
            (
                self.cached[from..end].to_vec(),
                self.model.export_cache_range(from..end),
            )
        })
    }

    /// Puts back a [`snapshot_after_prefix`](Self::snapshot_after_prefix): `tokens` are the
    /// whole prompt prefix, starting with the primed one, and `kv` the cache of the part after
    /// it. Whatever the cache held beyond the primed prefix is forgotten. Refused, changing
    /// nothing, when `tokens` do not start with the primed prefix or `kv` does not fit.
    pub fn restore_after_prefix(&mut self, tokens: &[u32], kv: &[f32]) -> Result<()> {
        let from = self.pinned.unwrap_or(0);
        if tokens.len() <= from || self.cached.get(..from) != tokens.get(..from) {
            return Err(Error::BadCache(
                "the tokens do not continue the primed prefix".into(),
            ));
        }
        self.model.import_cache_range(from..tokens.len(), kv)?;
        self.cached = tokens.to_vec();
        self.exact = tokens.len();
        Ok(())
    }

    /// Forgets what the cache holds beyond the primed prefix, so that the next prompt is timed
    /// as the first after priming would be (evaluations time every question as a lone `ask`).
    pub fn forget_beyond_prefix(&mut self) {
        let keep = self.pinned.unwrap_or(0).min(self.cached.len());
        self.cached.truncate(keep);
        self.exact = self.exact.min(keep);
    }

    /// Forgets the KV cache and any primed prefix (the next call computes its whole prompt).
    pub fn reset(&mut self) {
        self.cached.clear();
        self.pinned = None;
        self.exact = 0;
    }
}

fn common_prefix(a: &[u32], b: &[u32]) -> usize {
    a.iter().zip(b).take_while(|(x, y)| x == y).count()
}

#[cfg(test)]
mod tests {
    use super::common_prefix;

    #[test]
    fn common_prefix_counts_shared_tokens() {
        assert_eq!(common_prefix(&[1, 2, 3], &[1, 2, 4]), 2);
        assert_eq!(common_prefix(&[], &[1]), 0);
        assert_eq!(common_prefix(&[1, 2], &[1, 2, 3]), 2);
    }
}
