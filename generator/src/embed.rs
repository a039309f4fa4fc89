//! Sentence embeddings with a BERT encoder (all-MiniLM-L6-v2): mean pooling, L2 norm.
//!
//! The forward pass packs a batch: every linear layer runs once over all the batch's tokens
//! laid end to end (no padding rows at all), and only attention works per sequence. Padding to
//! the longest text of a batch wastes about half the work on texts of mixed length; packing
//! wastes none, so the batch order does not matter for speed.

use std::path::{Path, PathBuf};
use std::sync::{Mutex, PoisonError};

use rayon::prelude::*;

use crate::kv_cache::{exp, softmax_in_place};
use crate::sgemm::{sgemm, View};
use tokenizers::{Tokenizer, TruncationDirection, TruncationParams, TruncationStrategy};

use crate::error::{Error, Result};

/// The longest input, in tokens with `[CLS]` and `[SEP]`, all-MiniLM-L6-v2 was trained on.
/// The bundled `tokenizer.json` says 128; sentence-transformers uses 256 for this model.
pub const MAX_TOKENS: usize = 256;

/// Bytes of text tokenized at a time when counting tokens.
const TOKENIZE_WINDOW: usize = 16 << 10;

struct Layer {
    /// Weights are stored transposed, `[in, out]` row-major, so `x · W` reads them row by row.
    qkv: Vec<f32>,
    qkv_b: Vec<f32>,
    attn_out: Vec<f32>,
    attn_out_b: Vec<f32>,
    ln1: (Vec<f32>, Vec<f32>),
    up: Vec<f32>,
    up_b: Vec<f32>,
    down: Vec<f32>,
    down_b: Vec<f32>,
    ln2: (Vec<f32>, Vec<f32>),
}

/// The built-in encoder's weights.
struct Encoder {
    word: Vec<f32>,
    position: Vec<f32>,
    max_positions: usize,
    token_type0: Vec<f32>,
    ln: (Vec<f32>, Vec<f32>),
    layers: Vec<Layer>,
    heads: usize,
    eps: f32,
    dim: usize,
}

/// What runs the encoder.
enum Backend {
    /// cairn's own forward pass ([`Encoder::forward`]).
    BuiltIn(Encoder),
    /// ONNX Runtime, on the graph [`crate::onnx::bert_graph`] writes from the same weights.
    /// A session runs one batch at a time.
    Runtime(Mutex<Runtime>),
}

/// The ONNX Runtime engine: the library loaded, the session made when first needed.
enum Runtime {
    Pending {
        encoder: Encoder,
        environment: ort::environment::Environment,
        library: PathBuf,
        threads: usize,
    },
    Ready(ort::session::Session),
}

impl Runtime {
    /// The session, made from the weights on first use (which then drops them).
    fn session(&mut self) -> Result<&mut ort::session::Session> {
        if let Runtime::Pending {
            encoder,
            environment,
            library,
            threads,
        } = self
        {
            let graph = crate::onnx::bert_graph(&encoder.weights());
            let session = ort::session::Session::builder(environment)
                .and_then(|b| {
                    b.with_optimization_level(ort::session::builder::GraphOptimizationLevel::All)
                        .map_err(Into::into)
                })
                .and_then(|b| b.with_intra_threads(*threads).map_err(Into::into))
                .and_then(|b| b.with_inter_threads(1).map_err(Into::into))
                .and_then(|mut b| b.commit_from_memory(&graph))
                .map_err(|e| runtime_error(library, &e))?;
            *self = Runtime::Ready(session);
        }
        match self {
            Runtime::Ready(session) => Ok(session),
            Runtime::Pending { .. } => unreachable!("the session was just made"),
        }
    }
}

/// The environment variable with which ONNX Runtime (1.29 and later, on Linux and macOS) collects
/// and uploads nothing. Without it, creating an environment writes a device id and a queue of
/// "ProcessInfo" events (program name, OS, CPU, memory) under `~/.cache/Microsoft/DeveloperTools`,
/// which its 1DS client uploads when the machine is online. `DisableTelemetryEvents`, the API call
/// ([`ort::environment::EnvironmentBuilder::with_telemetry`]), comes too late: the runtime logs
/// that event while the environment is being created.
pub const RUNTIME_TELEMETRY_OFF: &str = "ORT_DISABLE_TELEMETRY";

/// Tells ONNX Runtime, before it is loaded, to collect and send nothing
/// ([`RUNTIME_TELEMETRY_OFF`]). The encoder calls it itself before loading the runtime; a
/// program calls it first thing in `main`, while it has one thread, because changing the
/// environment races with other threads reading it.
pub fn keep_runtime_offline() {
    if std::env::var_os(RUNTIME_TELEMETRY_OFF).is_none_or(|v| v != "1") {
        std::env::set_var(RUNTIME_TELEMETRY_OFF, "1");
    }
}

/// The process's ONNX Runtime environment, loaded from `runtime` by the first caller (ONNX
/// Runtime allows one per process; every encoder shares it). Loading the library is checked
/// (version, symbols) and fails as an error, not a panic. Telemetry is off before the library
/// loads ([`keep_runtime_offline`]) and again on the environment.
fn environment(runtime: &Path) -> Result<ort::environment::Environment> {
    static ENVIRONMENT: Mutex<Option<(PathBuf, ort::environment::Environment)>> = Mutex::new(None);
    let mut slot = ENVIRONMENT.lock().unwrap_or_else(PoisonError::into_inner);
    if let Some((library, environment)) = &*slot {
        return if library == runtime {
            Ok(environment.clone())
        } else {
            Err(runtime_error(
                runtime,
                &format!(
                    "this process already loaded ONNX Runtime from {}",
                    library.display()
                ),
            ))
        };
    }
    keep_runtime_offline();
    let environment = ort::init_from(runtime)
        .map_err(|e| runtime_error(runtime, &e))?
        .with_name("cairn")
        .with_telemetry(false)
        .build()
        .map_err(|e| runtime_error(runtime, &e))?;
    *slot = Some((runtime.to_owned(), environment.clone()));
    Ok(environment)
}

fn runtime_error(library: &Path, e: &dyn std::fmt::Display) -> Error {
    Error::Runtime {
        path: library.to_owned(),
        reason: e.to_string(),
    }
}

/// Texts per ONNX Runtime call. Texts go in by length, so padding to the longest of a batch
/// costs little.
const RUNTIME_BATCH: usize = 32;

/// Below this many tokens in one call, an encoder on ONNX Runtime whose session is not made yet
/// runs the call on the built-in encoder instead. Making the session (building and optimizing
/// the graph) costs about half a second, which a query of a dozen tokens would otherwise wait
/// for on every `cairn search` or `ask`: the built-in encoder embeds it in milliseconds, and
/// the two give the same vectors. Measured on the development machine, one query took 0.66 s
/// on ONNX Runtime and 0.14 s built-in (whole command); ONNX Runtime pays back its session
/// from about 6,000 tokens of chunks on. The first call with this many tokens makes the session,
/// and from then on every call runs on it.
pub const RUNTIME_MIN_TOKENS: usize = 2048;

/// A loaded BERT sentence encoder.
pub struct BertEmbedder {
    tokenizer: Tokenizer,
    counter: Tokenizer,
    dim: usize,
    backend: Backend,
    /// See [`RUNTIME_MIN_TOKENS`].
    runtime_min_tokens: usize,
    /// Whether a call has run on the built-in encoder while ONNX Runtime's session was pending.
    ran_built_in: std::sync::atomic::AtomicBool,
}

impl BertEmbedder {
    /// The vocabulary id of `token` as one whole token, if the tokenizer has it. WordPiece
    /// vocabularies list whole words roughly by their frequency in the text they were made
    /// from, so the id is a rough rank of the word in general English.
    #[must_use]
    pub fn token_id(&self, token: &str) -> Option<u32> {
        self.tokenizer.token_to_id(token)
    }

    /// Loads `model.safetensors`, `tokenizer.json` and `config.json` from `dir`, to run on
    /// cairn's built-in encoder.
    pub fn load(dir: &Path) -> Result<Self> {
        let (tokenizer, counter, encoder) = load_parts(dir)?;
        Ok(BertEmbedder {
            tokenizer,
            counter,
            dim: encoder.dim,
            backend: Backend::BuiltIn(encoder),
            runtime_min_tokens: RUNTIME_MIN_TOKENS,
            ran_built_in: false.into(),
        })
    }

    /// Like [`load`](Self::load), but runs the encoder on ONNX Runtime, loaded from the shared
    /// library `runtime` (`libonnxruntime.so`), with `threads` threads (0: as many as rayon's
    /// pool has, which `RAYON_NUM_THREADS` sets). Same weights, same vectors to float
    /// rounding; about twice the built-in encoder's speed on this model. Small calls run on the
    /// built-in encoder until a large one has made the session ([`RUNTIME_MIN_TOKENS`]).
    pub fn load_with_runtime(dir: &Path, runtime: &Path, threads: usize) -> Result<Self> {
        let (tokenizer, counter, encoder) = load_parts(dir)?;
        // The session itself is made on the first call that embeds something: a run that finds
        // nothing to embed (re-adding unchanged files) does not pay for building it.
        let environment = environment(runtime)?;
        Ok(BertEmbedder {
            tokenizer,
            counter,
            dim: encoder.dim,
            backend: Backend::Runtime(Mutex::new(Runtime::Pending {
                encoder,
                environment,
                library: runtime.to_owned(),
                threads: if threads == 0 {
                    rayon::current_num_threads()
                } else {
                    threads
                },
            })),
            runtime_min_tokens: RUNTIME_MIN_TOKENS,
            ran_built_in: false.into(),
        })
    }

    /// Sets the fewest tokens a call needs to make ONNX Runtime's session
    /// ([`RUNTIME_MIN_TOKENS`]); 0 runs every call on ONNX Runtime.
    #[must_use]
    pub fn with_runtime_min_tokens(mut self, tokens: usize) -> Self {
        self.runtime_min_tokens = tokens;
        self
    }

    /// Which engine runs large jobs: `"built-in"` or `"onnxruntime"`.
    #[must_use]
    pub fn backend(&self) -> &'static str {
        match self.backend {
            Backend::BuiltIn(_) => "built-in",
            Backend::Runtime(_) => "onnxruntime",
        }
    }

    /// Which engine has embedded so far: `"onnxruntime"` once its session ran, else
    /// `"built-in"` if a call ran on it, else the same as [`backend`](Self::backend).
    #[must_use]
    pub fn engine_used(&self) -> &'static str {
        match &self.backend {
            Backend::BuiltIn(_) => "built-in",
            Backend::Runtime(runtime) => {
                let ready = matches!(
                    *runtime.lock().unwrap_or_else(PoisonError::into_inner),
                    Runtime::Ready(_)
                );
                if !ready && self.ran_built_in.load(std::sync::atomic::Ordering::Relaxed) {
                    "built-in"
                } else {
                    "onnxruntime"
                }
            }
        }
    }
}

/// The tokenizer (truncating), the token counter (not truncating) and the encoder's weights.
/// `m` (`rows` × `cols`, row-major) transposed: `cols` × `rows`.
fn transposed(m: &[f32], rows: usize, cols: usize) -> Vec<f32> {
    let mut out = vec![0f32; m.len()];
    for (r, row) in m.chunks_exact(cols.max(1)).enumerate().take(rows) {
        for (c, &x) in row.iter().enumerate() {
            out[c * rows + r] = x;
        }
    }
    out
}

fn load_parts(dir: &Path) -> Result<(Tokenizer, Tokenizer, Encoder)> {
    let file = |name: &str| -> PathBuf { dir.join(name) };
    let format = |path: PathBuf, reason: String| Error::Format { path, reason };
    let raw = std::fs::read(file("config.json")).map_err(|source| Error::Io {
        path: file("config.json"),
        source,
    })?;
    let config: serde_json::Value =
        serde_json::from_slice(&raw).map_err(|e| format(file("config.json"), e.to_string()))?;
    let get = |k: &str| {
        config[k]
            .as_u64()
            .map(|v| v as usize)
            .ok_or_else(|| format(file("config.json"), format!("missing `{k}`")))
    };
    let (hidden, heads, n_layers) = (
        get("hidden_size")?,
        get("num_attention_heads")?,
        get("num_hidden_layers")?,
    );
    if heads == 0 || hidden % heads != 0 {
        return Err(format(
            file("config.json"),
            "hidden_size is not a multiple of num_attention_heads".into(),
        ));
    }
    let eps = config["layer_norm_eps"].as_f64().unwrap_or(1e-12) as f32;
    if config["hidden_act"].as_str().unwrap_or("gelu") != "gelu" {
        return Err(format(
            file("config.json"),
            "only `gelu` BERT models are supported".into(),
        ));
    }

    let mut tokenizer = Tokenizer::from_file(file("tokenizer.json"))
        .map_err(|e| Error::Tokenizer(format!("{}: {e}", file("tokenizer.json").display())))?;
    tokenizer.with_padding(None);
    let mut counter = tokenizer.clone();
    counter
        .with_truncation(None)
        .map_err(|e| Error::Tokenizer(e.to_string()))?;
    tokenizer
        .with_truncation(Some(TruncationParams {
            max_length: MAX_TOKENS,
            strategy: TruncationStrategy::LongestFirst,
            stride: 0,
            direction: TruncationDirection::Right,
        }))
        .map_err(|e| Error::Tokenizer(e.to_string()))?;

    let weights_path = file("model.safetensors");
    let io = |source| Error::Io {
        path: weights_path.clone(),
        source,
    };
    let weights_file = std::fs::File::open(&weights_path).map_err(io)?;
    // SAFETY: read-only, and model files are never written in place (as `GgufFile::open`).
    // Mapped, each weight is converted once from where it lies: reading the file and making
    // tensors of it first cost three copies of its 90 MB, a third of a one-question run.
    #[allow(unsafe_code)]
    let map = unsafe { memmap2::Mmap::map(&weights_file) }.map_err(io)?;
    let st = safetensors::SafeTensors::deserialize(&map)
        .map_err(|e| format(weights_path.clone(), e.to_string()))?;
    // A tensor's values in f32, in its stored order, and its shape.
    let tensor = |name: &str| -> Result<(Vec<f32>, Vec<usize>)> {
        let view = st
            .tensor(name)
            .or_else(|_| st.tensor(&format!("bert.{name}")))
            .map_err(|_| format(weights_path.clone(), format!("missing tensor `{name}`")))?;
        let bytes = view.data();
        let values = match view.dtype() {
            safetensors::Dtype::F32 => bytes
                .chunks_exact(4)
                .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                .collect(),
            safetensors::Dtype::F16 => bytes
                .chunks_exact(2)
                .map(|b| half::f16::from_le_bytes([b[0], b[1]]).to_f32())
                .collect(),
            safetensors::Dtype::BF16 => bytes
                .chunks_exact(2)
                .map(|b| half::bf16::from_le_bytes([b[0], b[1]]).to_f32())
                .collect(),
            other => {
                return Err(format(
                    weights_path.clone(),
                    format!("tensor `{name}` is {other:?}, not f32, f16 or bf16"),
                ))
            }
        };
        Ok((values, view.shape().to_vec()))
    };
    let take = |name: &str| tensor(name).map(|(v, _)| v);
    // Linear weights are stored [out, in] (several stacked: their rows one after the other);
    // keep them transposed ([in, out]).
    let lin = |names: &[&str]| -> Result<Vec<f32>> {
        let mut rows = Vec::new();
        let mut cols = 0;
        for name in names {
            let (v, shape) = tensor(name)?;
            match shape[..] {
                [_, c] if cols == 0 || c == cols => cols = c,
                _ => {
                    return Err(format(
                        weights_path.clone(),
                        format!("tensor `{name}` has shape {shape:?}, not [out, {cols}]"),
                    ))
                }
            }
            rows.extend(v);
        }
        Ok(transposed(&rows, rows.len() / cols.max(1), cols))
    };
    let word = take("embeddings.word_embeddings.weight")?;
    let position = take("embeddings.position_embeddings.weight")?;
    let max_positions = position.len() / hidden;
    let token_type0 = take("embeddings.token_type_embeddings.weight")?[..hidden].to_vec();
    let ln = (
        take("embeddings.LayerNorm.weight")?,
        take("embeddings.LayerNorm.bias")?,
    );
    let mut layers = Vec::with_capacity(n_layers);
    for i in 0..n_layers {
        let p = |n: &str| format!("encoder.layer.{i}.{n}");
        let t = |n: &str| take(&p(n));
        let qkv_b = [
            t("attention.self.query.bias")?,
            t("attention.self.key.bias")?,
            t("attention.self.value.bias")?,
        ]
        .concat();
        layers.push(Layer {
            qkv: lin(&[
                &p("attention.self.query.weight"),
                &p("attention.self.key.weight"),
                &p("attention.self.value.weight"),
            ])?,
            qkv_b,
            attn_out: lin(&[&p("attention.output.dense.weight")])?,
            attn_out_b: t("attention.output.dense.bias")?,
            ln1: (
                t("attention.output.LayerNorm.weight")?,
                t("attention.output.LayerNorm.bias")?,
            ),
            up: lin(&[&p("intermediate.dense.weight")])?,
            up_b: t("intermediate.dense.bias")?,
            down: lin(&[&p("output.dense.weight")])?,
            down_b: t("output.dense.bias")?,
            ln2: (t("output.LayerNorm.weight")?, t("output.LayerNorm.bias")?),
        });
    }
    let encoder = Encoder {
        word,
        position,
        max_positions,
        token_type0,
        ln,
        layers,
        heads,
        eps,
        dim: hidden,
    };
    Ok((tokenizer, counter, encoder))
}

impl BertEmbedder {
    /// The embedding dimension (384 for MiniLM-L6).
    #[must_use]
    pub fn dim(&self) -> usize {
        self.dim
    }

    /// Byte offsets where each token of `text` ends, without special tokens or truncation: the
    /// chunker's budget is counted in these.
    ///
    /// Long texts are tokenized a window at a time, cut at whitespace (where WordPiece cuts
    /// anyway), so that memory stays bounded: the tokenizer keeps about a hundred bytes per
    /// token, and a 50 MB line would otherwise take gigabytes.
    #[must_use]
    pub fn token_ends(&self, text: &str) -> Vec<usize> {
        self.token_ends_in_windows(text, TOKENIZE_WINDOW)
    }

    /// [`BertEmbedder::token_ends`] with windows of at most `window` bytes.
    #[must_use]
    pub fn token_ends_in_windows(&self, text: &str, window: usize) -> Vec<usize> {
        let mut ends = Vec::new();
        let mut from = 0;
        while from < text.len() {
            let mut to = text.len().min(from.saturating_add(window.max(1)));
            if to < text.len() {
                while !text.is_char_boundary(to) {
                    to -= 1;
                }
                if let Some(space) = text[from..to].rfind(char::is_whitespace) {
                    if space > 0 {
                        to = from + space;
                    }
                }
            }
            if let Ok(enc) = self.counter.encode(&text[from..to], false) {
                ends.extend(enc.get_offsets().iter().map(|&(_, e)| from + e));
            }
            from = to;
        }
        // Offsets are non-decreasing; make them strictly usable as cut points.
        ends.dedup();
        ends
    }

    /// Embeds texts (each truncated to [`MAX_TOKENS`]): unit-length vectors, in input order.
    pub fn embed(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>> {
        if texts.is_empty() {
            return Ok(Vec::new());
        }
        let encodings = self
            .tokenizer
            .encode_batch(texts.to_vec(), true)
            .map_err(|e| Error::Tokenizer(e.to_string()))?;
        let lens: Vec<usize> = encodings.iter().map(|e| e.get_ids().len()).collect();
        let ids: Vec<u32> = encodings
            .iter()
            .flat_map(|e| e.get_ids().iter().copied())
            .collect();
        let built_in = |encoder: &Encoder| {
            let positions: Vec<u32> = lens.iter().flat_map(|&l| 0..l as u32).collect();
            encoder.forward(&ids, &positions, &lens)
        };
        match &self.backend {
            Backend::BuiltIn(encoder) => Ok(built_in(encoder)),
            Backend::Runtime(runtime) => {
                let mut runtime = runtime.lock().unwrap_or_else(PoisonError::into_inner);
                if let Runtime::Pending { encoder, .. } = &*runtime {
                    if ids.len() < self.runtime_min_tokens {
                        self.ran_built_in
                            .store(true, std::sync::atomic::Ordering::Relaxed);
                        return Ok(built_in(encoder));
                    }
                }
                let texts: Vec<&[u32]> = encodings
                    .iter()
                    .map(tokenizers::Encoding::get_ids)
                    .collect();
                run_by_length(runtime.session()?, &texts, self.dim)
            }
        }
    }
}

/// Runs texts (token ids with `[CLS]` and `[SEP]`) through ONNX Runtime in batches of
/// similar length, padded to the longest of each batch; returns their pooled, unit-length
/// vectors in input order.
fn run_by_length(
    session: &mut ort::session::Session,
    texts: &[&[u32]],
    dim: usize,
) -> Result<Vec<Vec<f32>>> {
    let mut order: Vec<usize> = (0..texts.len()).collect();
    order.sort_by_key(|&i| texts[i].len());
    let mut out = vec![Vec::new(); texts.len()];
    for batch in order.chunks(RUNTIME_BATCH) {
        let width = batch.iter().map(|&i| texts[i].len()).max().unwrap_or(0);
        let mut ids = vec![0i64; batch.len() * width];
        let mut mask = vec![0i64; batch.len() * width];
        for (r, &i) in batch.iter().enumerate() {
            for (j, &id) in texts[i].iter().enumerate() {
                ids[r * width + j] = i64::from(id);
                mask[r * width + j] = 1;
            }
        }
        let shape = [batch.len(), width];
        let fail = |e: ort::Error| Error::Runtime {
            path: PathBuf::from("libonnxruntime"),
            reason: e.to_string(),
        };
        let ids = ort::value::Tensor::from_array((shape, ids)).map_err(fail)?;
        let mask = ort::value::Tensor::from_array((shape, mask)).map_err(fail)?;
        let outputs = session
            .run(ort::inputs!["input_ids" => ids, "attention_mask" => mask])
            .map_err(fail)?;
        let (_, hidden) = outputs["last_hidden_state"]
            .try_extract_tensor::<f32>()
            .map_err(fail)?;
        if hidden.len() != batch.len() * width * dim {
            return Err(Error::Runtime {
                path: PathBuf::from("libonnxruntime"),
                reason: format!(
                    "the encoder returned {} values for a {}×{width}×{dim} batch",
                    hidden.len(),
                    batch.len()
                ),
            });
        }
        for (r, &i) in batch.iter().enumerate() {
            let rows = &hidden[r * width * dim..(r * width + texts[i].len()) * dim];
            out[i] = mean_unit(rows, dim);
        }
    }
    Ok(out)
}

/// Mean of the rows (each `dim` wide), scaled to unit length: sentence-transformers' mean
/// pooling over every token (with `[CLS]` and `[SEP]`), then its normalisation.
fn mean_unit(rows: &[f32], dim: usize) -> Vec<f32> {
    let mut v = vec![0f32; dim];
    for row in rows.chunks_exact(dim) {
        for (a, b) in v.iter_mut().zip(row) {
            *a += b;
        }
    }
    let norm = v.iter().map(|a| a * a).sum::<f32>().sqrt().max(1e-12);
    for a in &mut v {
        *a /= norm;
    }
    v
}

impl Encoder {
    /// The weights as the ONNX graph writer takes them.
    fn weights(&self) -> crate::onnx::BertWeights<'_> {
        crate::onnx::BertWeights {
            hidden: self.dim,
            heads: self.heads,
            eps: self.eps,
            word: &self.word,
            position: &self.position,
            token_type0: &self.token_type0,
            ln: (&self.ln.0, &self.ln.1),
            layers: self
                .layers
                .iter()
                .map(|l| crate::onnx::LayerWeights {
                    qkv: &l.qkv,
                    qkv_b: &l.qkv_b,
                    attn_out: &l.attn_out,
                    attn_out_b: &l.attn_out_b,
                    ln1: (&l.ln1.0, &l.ln1.1),
                    up: &l.up,
                    up_b: &l.up_b,
                    down: &l.down,
                    down_b: &l.down_b,
                    ln2: (&l.ln2.0, &l.ln2.1),
                })
                .collect(),
        }
    }

    /// The encoder over a packed batch: `ids` of all texts end to end, `lens` per text.
    fn forward(&self, ids: &[u32], positions: &[u32], lens: &[usize]) -> Vec<Vec<f32>> {
        let h = self.dim;
        let t = ids.len();
        let vocab = self.word.len() / h;
        let threads = rayon::current_num_threads();
        let mut x = vec![0f32; t * h];
        for ((row, &id), &pos) in x.chunks_exact_mut(h).zip(ids).zip(positions) {
            let id = (id as usize).min(vocab - 1);
            let pos = (pos as usize).min(self.max_positions - 1);
            let w = &self.word[id * h..(id + 1) * h];
            let p = &self.position[pos * h..(pos + 1) * h];
            for i in 0..h {
                row[i] = w[i] + p[i] + self.token_type0[i];
            }
        }
        layer_norm_rows(&mut x, h, &self.ln, self.eps);
        let head_dim = h / self.heads;
        let scale = 1.0 / (head_dim as f32).sqrt();
        let inter = self.layers.first().map_or(0, |l| l.up_b.len());
        let mut qkv = vec![0f32; t * 3 * h];
        let mut ctx = vec![0f32; t * h];
        let mut y = vec![0f32; t * h];
        let mut u = vec![0f32; t * inter];
        for layer in &self.layers {
            // qkv = b + x·W
            fill_rows(&mut qkv, &layer.qkv_b);
            sgemm(
                View::rows(&x, t, h, h),
                View::rows(&layer.qkv, h, 3 * h, 3 * h),
                &mut qkv,
                3 * h,
                true,
                threads,
            );
            // Attention, one text per task; heads are read straight out of `qkv` by stride.
            let mut parts: Vec<(usize, &mut [f32])> = Vec::with_capacity(lens.len());
            let mut rest = ctx.as_mut_slice();
            let mut start = 0;
            for &len in lens {
                let (mine, tail) = rest.split_at_mut(len * h);
                parts.push((start, mine));
                rest = tail;
                start += len;
            }
            let qkv_all = &qkv;
            parts.into_par_iter().for_each(|(start, out)| {
                let len = out.len() / h;
                let mut scores = vec![0f32; len * len];
                let base = &qkv_all[start * 3 * h..(start + len) * 3 * h];
                for head in 0..self.heads {
                    let q = View::rows(&base[head * head_dim..], len, head_dim, 3 * h);
                    let k = View::rows(&base[h + head * head_dim..], len, head_dim, 3 * h);
                    let v = View::rows(&base[2 * h + head * head_dim..], len, head_dim, 3 * h);
                    sgemm(q, k.t(), &mut scores, len, false, 1);
                    for row in scores.chunks_exact_mut(len) {
                        for s in row.iter_mut() {
                            *s *= scale;
                        }
                        softmax_in_place(row);
                    }
                    sgemm(
                        View::rows(&scores, len, len, len),
                        v,
                        &mut out[head * head_dim..],
                        h,
                        false,
                        1,
                    );
                }
            });
            // x = LN(x + b + ctx·Wo)
            add_rows(&mut y, &x, &layer.attn_out_b);
            sgemm(
                View::rows(&ctx, t, h, h),
                View::rows(&layer.attn_out, h, h, h),
                &mut y,
                h,
                true,
                threads,
            );
            layer_norm_rows(&mut y, h, &layer.ln1, self.eps);
            std::mem::swap(&mut x, &mut y);
            // x = LN(x + b + gelu(b + x·Wup)·Wdown)
            fill_rows(&mut u, &layer.up_b);
            sgemm(
                View::rows(&x, t, h, h),
                View::rows(&layer.up, h, inter, inter),
                &mut u,
                inter,
                true,
                threads,
            );
            u.par_chunks_mut(16 * 1024)
                .for_each(|c| c.iter_mut().for_each(|v| *v = gelu(*v)));
            add_rows(&mut y, &x, &layer.down_b);
            sgemm(
                View::rows(&u, t, inter, inter),
                View::rows(&layer.down, inter, h, h),
                &mut y,
                h,
                true,
                threads,
            );
            layer_norm_rows(&mut y, h, &layer.ln2, self.eps);
            std::mem::swap(&mut x, &mut y);
        }
        // Mean pooling over every token (with [CLS] and [SEP], as sentence-transformers does),
        // then unit length.
        let mut out = Vec::with_capacity(lens.len());
        let mut start = 0;
        for &len in lens {
            out.push(mean_unit(&x[start * h..(start + len) * h], h));
            start += len;
        }
        out
    }
}

/// Every row of `m` (rows of `bias.len()`) set to `bias`.
fn fill_rows(m: &mut [f32], bias: &[f32]) {
    for row in m.chunks_exact_mut(bias.len()) {
        row.copy_from_slice(bias);
    }
}

/// `out = x + bias`, row by row.
fn add_rows(out: &mut [f32], x: &[f32], bias: &[f32]) {
    for (o, r) in out
        .chunks_exact_mut(bias.len())
        .zip(x.chunks_exact(bias.len()))
    {
        for i in 0..bias.len() {
            o[i] = r[i] + bias[i];
        }
    }
}

/// Layer normalisation of each row of width `h`, in parallel.
fn layer_norm_rows(m: &mut [f32], h: usize, (gamma, beta): &(Vec<f32>, Vec<f32>), eps: f32) {
    m.par_chunks_mut(h * 64).for_each(|block| {
        for row in block.chunks_exact_mut(h) {
            let mean = row.iter().sum::<f32>() / h as f32;
            let var = row.iter().map(|v| (v - mean) * (v - mean)).sum::<f32>() / h as f32;
            let inv = 1.0 / (var + eps).sqrt();
            for i in 0..h {
                row[i] = (row[i] - mean) * inv * gamma[i] + beta[i];
            }
        }
    });
}

/// `erf(x)` to 1.5e-7 absolute (Abramowitz & Stegun 7.1.26), branch-free so loops vectorize.
fn erf(x: f32) -> f32 {
    let a = x.abs();
    let t = 1.0 / (1.0 + 0.327_591_1 * a);
    let poly = t
        * (0.254_829_6
            + t * (-0.284_496_74 + t * (1.421_413_7 + t * (-1.453_152_1 + t * 1.061_405_4))));
    (1.0 - poly * exp(-a * a)).copysign(x)
}

/// BERT's GELU, `x · Φ(x)` with the exact (erf) normal CDF.
fn gelu(x: f32) -> f32 {
    0.5 * x * (1.0 + erf(x * std::f32::consts::FRAC_1_SQRT_2))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn erf_is_accurate() {
        for (x, want) in [
            (0.0f32, 0.0f32),
            (0.5, 0.520_499_9),
            (1.0, 0.842_700_8),
            (-1.5, -0.966_105_1),
            (2.5, 0.999_593_1),
            (-4.0, -0.999_999_98),
        ] {
            assert!(
                (erf(x) - want).abs() < 3e-7,
                "erf({x}) = {} want {want}",
                erf(x)
            );
        }
    }
}
