//! The transformer forward pass for the llama and qwen2 families.
//!
//! Written for a small CPU: the KV cache grows as positions are written and is written in place;
//! grouped-query attention folds the query heads that share a KV head into one product over
//! the cache instead of copying keys and values per head (`KvCache::attend_rows`); prompts
//! (many rows) run as integer products on strips ([`crate::kquants`], [`crate::block_strips`])
//! or, for other types, as f32 matrix products on weights dequantized on the fly, which is
//! compute-bound and fast, while decoding (one row) runs quantized dot products, which is
//! memory-bound and fast.

use std::sync::Arc;

use candle_core::quantized::{GgmlDType, QMatMul, QTensor};
use candle_core::{DType, Device, Module, Tensor};

use crate::block_strips;
use crate::error::{Error, Result};
use crate::gguf::{Arch, GgufFile, ModelConfig, RawTensor};
use crate::kernels::{self, BlockType};
use crate::kquants::{self, KType};
use crate::kv_cache::KvCache;
use crate::parallel::fill_chunks;
use crate::swiglu::{self, SiluGate};

/// From this many rows on, a linear layer dequantizes its weight and runs an f32 matrix product.
///
/// Dequantizing costs one pass over the whole weight, which a long prompt repays many times
/// over. For short prompts the quantized kernels are faster (measured on the development
/// machine, Qwen2.5 0.5B: 114 tokens at 66 tok/s against 51 for the f32 path; 376 tokens at 65
/// against 77), but with them SmolLM2's first answer token on one reference prompt no longer
/// matched llama.cpp's (a 0.3-logit near-tie), so the f32 path, which matches on every
/// fixture, starts early. Moving this threshold is open work (see BENCHMARKS.md).
const DEQUANT_MIN_ROWS: usize = 8;

/// From this many rows on, every linear layer takes its prompt path, whose result for a row does
/// not depend on the other rows of the pass: the integer strips work row by row on activations
/// quantized per row, and the f32 path's products sum each row in the same order. So a prompt
/// run in pieces of at least this many rows leaves exactly the cache, and gives exactly the
/// logits, that it does in one pass. Fewer rows take the decode kernels, which round
/// differently (measured: logits up to 0.4 apart; `tests/reference.rs` checks both).
pub const SAME_ROWS_FROM: usize = {
    let mut n = DEQUANT_MIN_ROWS;
    if block_strips::MIN_ROWS > n {
        n = block_strips::MIN_ROWS;
    }
    if kquants::STRIP_MIN_ROWS > n {
        n = kquants::STRIP_MIN_ROWS;
    }
    n
};

/// Prompts longer than this are processed in chunks, bounding the activations.
pub(crate) const PREFILL_CHUNK: usize = 4096;

/// A weight matrix with an optional bias.
struct Linear {
    weight: Weight,
    bias: Option<Tensor>,
}

enum Weight {
    /// Quantized, in a block type with one of candle's SIMD dot products.
    Quantized { q: Arc<QTensor>, mm: QMatMul },
    /// Quantized, in a block type with one of our own kernels ([`crate::kernels`]), used where
    /// it lies in the mapped file.
    Own {
        q: RawTensor,
        ty: BlockType,
        /// Per-block minima (`n_out × k/32`) of types that have one, for the prompt path.
        mins: Option<Tensor>,
    },
    /// A k-quant (Q4_K, Q6_K) multiplied by the integer kernel of [`crate::kquants`], used
    /// where it lies in the mapped file.
    KQuant { q: RawTensor, ty: KType },
    /// Stored as f32 (files that keep some matrices unquantized).
    Dense(Tensor),
}

/// K-quant types that run on [`crate::kquants`]'s integer kernel in this build.
fn kquant_kernel(dtype: GgmlDType) -> Option<KType> {
    if !kquants::FAST {
        return None;
    }
    match dtype {
        GgmlDType::Q4K => Some(KType::Q4K),
        GgmlDType::Q6K => Some(KType::Q6K),
        _ => None,
    }
}

/// Block types for which candle has only scalar dot products (or, for Q8_0 on AVX-512 VNNI, a
/// slower one), and we have our own.
fn own_kernel(dtype: GgmlDType) -> Option<BlockType> {
    match dtype {
        GgmlDType::Q4_1 => Some(BlockType::Q4_1),
        GgmlDType::Q5_0 => Some(BlockType::Q5_0),
        GgmlDType::Q5_1 => Some(BlockType::Q5_1),
        // The output layer of small models; candle's AVX2 kernel is slower than VNNI's.
        GgmlDType::Q8_0 if kernels::FAST_Q8_0 => Some(BlockType::Q8_0),
        _ => None,
    }
}

/// The block type the quantized kernels convert activations to for a weight type.
fn activation_type(weight: GgmlDType) -> GgmlDType {
    match weight {
        GgmlDType::Q2K | GgmlDType::Q3K | GgmlDType::Q4K | GgmlDType::Q5K | GgmlDType::Q6K => {
            GgmlDType::Q8K
        }
        _ => GgmlDType::Q8_0,
    }
}

/// `x · Wᵀ` in f32 with `W` dequantized on the fly.
fn dequantized_product(x: &Tensor, q: &QTensor) -> Result<Tensor> {
    // The quantized kernels see activations rounded to 8 bits (Q8_0, or Q8_K for k-quants);
    // rounding them the same way here keeps prompt and decode numerics equal to each other and
    // to llama.cpp's.
    let x = QTensor::quantize(x, activation_type(q.dtype()))?.dequantize(&Device::Cpu)?;
    let w = q.dequantize(&Device::Cpu)?;
    Ok(x.matmul(&w.t()?)?)
}

/// The f16 minimum of every block, for Q4_1/Q5_1 (`None` for types without one).
fn block_minima(q: &RawTensor, ty: BlockType) -> Result<Option<Tensor>> {
    if !matches!(ty, BlockType::Q4_1 | BlockType::Q5_1) {
        return Ok(None);
    }
    let (n_out, k) = q.dims2()?;
    let mins: Vec<f32> = q
        .bytes()
        .chunks_exact(ty.block_bytes())
        .map(|b| half::f16::from_bits(u16::from_le_bytes([b[2], b[3]])).to_f32())
        .collect();
    Ok(Some(Tensor::from_vec(
        mins,
        (n_out, k / kernels::BLOCK),
        &Device::Cpu,
    )?))
}

/// The prompt path for our own block types: the same numbers as [`kernels::matmul`], as an f32
/// matrix product.
///
/// Activations are rounded exactly as [`kernels::quantize_q8`] rounds them. For types with a
/// block minimum, llama.cpp multiplies the minimum by an f16-rounded block sum of the
/// activations; the difference from the exact sum is added back as a small second product.
fn own_dequantized_product(x: &Tensor, q: &RawTensor, mins: Option<&Tensor>) -> Result<Tensor> {
    let (rows, k) = x.dims2()?;
    let xs = x.flatten_all()?.to_vec1::<f32>()?;
    let mut rounded = Vec::with_capacity(rows * k);
    let mut sum_error = Vec::with_capacity(rows * k / kernels::BLOCK);
    let mut blocks = Vec::with_capacity(k / kernels::BLOCK);
    for row in xs.chunks_exact(k) {
        kernels::quantize_q8(row, &mut blocks);
        for b in &blocks {
            rounded.extend(b.qs.iter().map(|&v| f32::from(v) * b.d));
            sum_error.push(b.s - b.d * b.sum as f32);
        }
    }
    let xq = Tensor::from_vec(rounded, (rows, k), &Device::Cpu)?;
    let w = q.to_qtensor()?.dequantize(&Device::Cpu)?;
    let y = xq.matmul(&w.t()?)?;
    Ok(match mins {
        Some(mins) => {
            let err = Tensor::from_vec(sum_error, (rows, k / kernels::BLOCK), &Device::Cpu)?;
            (y + err.matmul(&mins.t()?)?)?
        }
        None => y,
    })
}

impl Linear {
    fn from_raw(q: RawTensor, bias: Option<Tensor>) -> Result<Self> {
        let weight = match q.dtype {
            GgmlDType::F32 | GgmlDType::F16 | GgmlDType::BF16 => {
                Weight::Dense(q.to_qtensor()?.dequantize(&Device::Cpu)?)
            }
            dtype => {
                if let Some(ty) = own_kernel(dtype) {
                    let mins = block_minima(&q, ty)?;
                    Weight::Own { q, ty, mins }
                } else if let Some(ty) = kquant_kernel(dtype) {
                    Weight::KQuant { q, ty }
                } else {
                    let q = Arc::new(q.to_qtensor()?);
                    Weight::Quantized {
                        mm: QMatMul::from_arc(q.clone())?,
                        q,
                    }
                }
            }
        };
        Ok(Self { weight, bias })
    }

    /// `x` is (rows, in); returns (rows, out).
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let rows = x.dim(0)?;
        let y = match &self.weight {
            Weight::Dense(w) => x.matmul(&w.t()?)?,
            Weight::Quantized { q, mm } => {
                if rows >= DEQUANT_MIN_ROWS {
                    dequantized_product(x, q)?
                } else {
                    mm.forward(x)?
                }
            }
            Weight::KQuant { q, ty } => {
                let k = q.dims2()?.1;
                let acts = with_values(x, |x| kquants::quantize_rows(x, k))?;
                return self.forward_quantized(*ty, q, &acts, rows);
            }
            Weight::Own { q, ty, mins } => {
                if rows >= block_strips::MIN_ROWS
                    && block_strips::FAST
                    && block_strips::supported(*ty)
                {
                    let (n_out, k) = q.dims2()?;
                    let out = with_values(x, |xs| {
                        block_strips::matmul_vec(*ty, q.bytes(), n_out, k, xs)
                    })?;
                    Tensor::from_vec(out, (rows, n_out), &Device::Cpu)?
                } else if rows >= DEQUANT_MIN_ROWS {
                    own_dequantized_product(x, q, mins.as_ref())?
                } else {
                    let (n_out, k) = q.dims2()?;
                    let mut out = vec![0f32; rows * n_out];
                    with_values(x, |xs| {
                        kernels::matmul(*ty, q.bytes(), n_out, k, xs, &mut out);
                    })?;
                    Tensor::from_vec(out, (rows, n_out), &Device::Cpu)?
                }
            }
        };
        Ok(match &self.bias {
            Some(b) => y.broadcast_add(b)?,
            None => y,
        })
    }

    /// A k-quant layer's product with activations already quantized (bias added).
    fn forward_quantized(
        &self,
        ty: KType,
        q: &RawTensor,
        acts: &[kquants::Q8KBlock],
        rows: usize,
    ) -> Result<Tensor> {
        let (n_out, k) = q.dims2()?;
        let out = kquants::matmul_quantized_vec(ty, q.bytes(), n_out, k, acts);
        let y = Tensor::from_vec(out, (rows, n_out), &Device::Cpu)?;
        Ok(match &self.bias {
            Some(b) => y.broadcast_add(b)?,
            None => y,
        })
    }

    /// The layer over `silu(gate) · up` (the feed-forward's down projection): a k-quant layer
    /// quantizes the gated values as they are made ([`swiglu::quantized_gated`]), the same
    /// bits as through the f32 tensor of [`SiluGate`], which other layers still take.
    fn forward_gated(&self, gate: &Tensor, up: &Tensor) -> Result<Tensor> {
        if let Weight::KQuant { q, ty } = &self.weight {
            let (rows, k) = (gate.dim(0)?, q.dims2()?.1);
            if gate.dims() == up.dims() && gate.dims2()?.1 == k {
                let acts = with_values(gate, |g| {
                    with_values(up, |u| swiglu::quantized_gated(g, u, k))
                })??;
                return self.forward_quantized(*ty, q, &acts, rows);
            }
        }
        self.forward(&gate.apply_op2_no_bwd(up, &SiluGate)?)
    }

    /// Several layers over the same input (Q, K, V; gate and up): when all are k-quants, the
    /// input is quantized once for all of them.
    fn forward_all<const N: usize>(layers: [&Linear; N], x: &Tensor) -> Result<[Tensor; N]> {
        let all_kquant = layers
            .iter()
            .all(|l| matches!(l.weight, Weight::KQuant { .. }));
        let rows = x.dim(0)?;
        let acts = if all_kquant {
            let k = x.dim(1)?;
            Some(with_values(x, |x| kquants::quantize_rows(x, k))?)
        } else {
            None
        };
        let mut out = Vec::with_capacity(N);
        for l in layers {
            out.push(match (&l.weight, &acts) {
                (Weight::KQuant { q, ty }, Some(acts)) => {
                    l.forward_quantized(*ty, q, acts, rows)?
                }
                _ => l.forward(x)?,
            });
        }
        Ok(out
            .try_into()
            .unwrap_or_else(|_| unreachable!("one output per layer")))
    }
}

struct Layer {
    attn_norm: Tensor,
    q: Linear,
    k: Linear,
    v: Linear,
    o: Linear,
    ffn_norm: Tensor,
    gate: Linear,
    up: Linear,
    down: Linear,
    cache: KvCache,
}

/// A loaded transformer with its KV cache.
pub struct Transformer {
    cfg: ModelConfig,
    n_ctx: usize,
    /// The token embedding table, rows looked up where they lie in the file.
    embed: RawTensor,
    layers: Vec<Layer>,
    norm: Tensor,
    output: Linear,
    cos: Tensor,
    sin: Tensor,
}

fn load_linear(file: &GgufFile, prefix: &str, with_bias: bool) -> Result<Linear> {
    let q = file.raw(&format!("{prefix}.weight"))?;
    let bias_name = format!("{prefix}.bias");
    let bias = if with_bias && file.has_tensor(&bias_name) {
        Some(file.tensor(&bias_name)?.dequantize(&Device::Cpu)?)
    } else {
        None
    };
    Linear::from_raw(q, bias)
}

fn load_vector(file: &GgufFile, name: &str) -> Result<Tensor> {
    Ok(file.tensor(name)?.dequantize(&Device::Cpu)?)
}

impl Transformer {
    /// Loads the weights of `file` and allocates a KV cache for `n_ctx` tokens.
    pub fn load(file: &GgufFile, cfg: &ModelConfig, n_ctx: usize) -> Result<Self> {
        let with_bias = cfg.arch == Arch::Qwen2;
        let mut layers = Vec::with_capacity(cfg.n_layer);
        for i in 0..cfg.n_layer {
            let p = format!("blk.{i}");
            layers.push(Layer {
                attn_norm: load_vector(file, &format!("{p}.attn_norm.weight"))?,
                q: load_linear(file, &format!("{p}.attn_q"), with_bias)?,
                k: load_linear(file, &format!("{p}.attn_k"), with_bias)?,
                v: load_linear(file, &format!("{p}.attn_v"), with_bias)?,
                o: load_linear(file, &format!("{p}.attn_output"), false)?,
                ffn_norm: load_vector(file, &format!("{p}.ffn_norm.weight"))?,
                gate: load_linear(file, &format!("{p}.ffn_gate"), false)?,
                up: load_linear(file, &format!("{p}.ffn_up"), false)?,
                down: load_linear(file, &format!("{p}.ffn_down"), false)?,
                cache: KvCache::new(cfg.n_head_kv, n_ctx, cfg.head_dim),
            });
        }
        let embed = file.raw("token_embd.weight")?;
        // Tied embeddings: small models reuse the input table as the output projection.
        let output_name = if file.has_tensor("output.weight") {
            "output.weight"
        } else {
            "token_embd.weight"
        };
        let output = Linear::from_raw(file.raw(output_name)?, None)?;
        let norm = load_vector(file, "output_norm.weight")?;

        let half = cfg.head_dim / 2;
        let inv_freq: Vec<f32> = (0..half)
            .map(|i| 1.0 / cfg.rope_theta.powf(2.0 * i as f32 / cfg.head_dim as f32))
            .collect();
        let mut cos = Vec::with_capacity(n_ctx * half);
        let mut sin = Vec::with_capacity(n_ctx * half);
        for pos in 0..n_ctx {
            for f in &inv_freq {
                let angle = pos as f32 * f;
                cos.push(angle.cos());
                sin.push(angle.sin());
            }
        }
        Ok(Self {
            cfg: cfg.clone(),
            n_ctx,
            embed,
            layers,
            norm,
            output,
            cos: Tensor::from_vec(cos, (n_ctx, half), &Device::Cpu)?,
            sin: Tensor::from_vec(sin, (n_ctx, half), &Device::Cpu)?,
        })
    }

    /// The context window this instance was allocated for.
    #[must_use]
    pub fn n_ctx(&self) -> usize {
        self.n_ctx
    }

    /// The model's hyper-parameters.
    #[must_use]
    pub fn config(&self) -> &ModelConfig {
        &self.cfg
    }

    /// Runs `tokens` at positions `pos..pos + tokens.len()`, filling the KV cache.
    ///
    /// Returns the logits of the last position as (`vocab`), or of every position as
    /// (`tokens.len()`, `vocab`) when `all_logits` is set. Positions from `pos` on are
    /// overwritten, so rewinding is just calling again with a smaller `pos`.
    pub fn forward(&mut self, tokens: &[u32], pos: usize, all_logits: bool) -> Result<Tensor> {
        if tokens.is_empty() {
            return Err(Error::EmptyPrompt);
        }
        if pos + tokens.len() > self.n_ctx {
            return Err(Error::ContextOverflow {
                prompt_tokens: pos + tokens.len(),
                max_tokens: 0,
                window: self.n_ctx,
            });
        }
        if let Some(&id) = tokens.iter().find(|&&t| t as usize >= self.cfg.vocab_size) {
            return Err(Error::BadToken {
                id,
                vocab: self.cfg.vocab_size,
            });
        }
        let mut outputs = Vec::new();
        let mut start = 0;
        while start < tokens.len() {
            let end = (start + PREFILL_CHUNK).min(tokens.len());
            let hidden = self.forward_chunk(&tokens[start..end], pos + start)?;
            let last = end == tokens.len();
            if all_logits {
                outputs.push(self.logits(&hidden)?);
            } else if last {
                let rows = hidden.dim(0)?;
                let h = hidden.narrow(0, rows - 1, 1)?;
                // (vocab): one chunk, so the concatenation below is just this tensor.
                outputs.push(self.logits(&h)?.squeeze(0)?);
            }
            start = end;
        }
        Ok(Tensor::cat(&outputs, 0)?)
    }

    /// The KV cache of positions `0..total`, every layer's keys then values.
    #[must_use]
    pub fn export_cache(&self, total: usize) -> Vec<f32> {
        self.export_cache_range(0..total)
    }

    /// The KV cache of `positions`, every layer's keys then values.
    #[must_use]
    pub fn export_cache_range(&self, positions: std::ops::Range<usize>) -> Vec<f32> {
        let positions = positions.start.min(self.n_ctx)..positions.end.min(self.n_ctx);
        let mut out = Vec::with_capacity(
            self.layers
                .iter()
                .map(|l| l.cache.exported_len(positions.len()))
                .sum(),
        );
        for layer in &self.layers {
            layer.cache.export(positions.clone(), &mut out);
        }
        out
    }

    /// Restores a KV cache written by [`export_cache`](Self::export_cache) for `total`
    /// positions. Fails, changing nothing, when the size does not fit this model.
    pub fn import_cache(&mut self, total: usize, data: &[f32]) -> Result<()> {
        self.import_cache_range(0..total, data)
    }

    /// Restores the KV cache of `positions` written by
    /// [`export_cache_range`](Self::export_cache_range), keeping the positions before them.
    /// Fails, changing nothing, when the size does not fit this model.
    pub fn import_cache_range(
        &mut self,
        positions: std::ops::Range<usize>,
        data: &[f32],
    ) -> Result<()> {
        let want: usize = self
            .layers
            .iter()
            .map(|l| l.cache.exported_len(positions.len()))
            .sum();
        if positions.end > self.n_ctx || data.len() != want {
            return Err(Error::BadCache(format!(
                "{} values for positions {positions:?}, this model needs {want}",
                data.len()
            )));
        }
        let mut at = 0;
        for layer in &mut self.layers {
            let n = layer.cache.exported_len(positions.len());
            layer.cache.import(positions.clone(), &data[at..at + n]);
            at += n;
        }
        Ok(())
    }

    fn logits(&self, hidden: &Tensor) -> Result<Tensor> {
        let h = candle_nn::ops::rms_norm(hidden, &self.norm, self.cfg.rms_eps)?;
        self.output.forward(&h)
    }

    /// Runs `tokens` from position `pos` and, in the same pass, `branch`: another continuation
    /// of the positions before `fork` (`pos <= fork <= pos + tokens.len()`), such as a question
    /// put where the prompt's tail would be. Every linear layer multiplies the rows of both at
    /// once, so a short branch costs little more than its share of one large product; the
    /// branch's rows see the positions before `fork` and each other, never the rows of `tokens`
    /// past `fork`. Returns the next-token logits after `tokens` and after `branch` (each
    /// `vocab`). The cache then holds `tokens` at `pos..`; the branch's keys and values sit in
    /// the slots after them, which the next call overwrites.
    ///
    /// # Errors
    /// If either is empty, `fork` is out of that range, or the two do not fit in one chunk of
    /// the window.
    pub fn forward_fork(
        &mut self,
        tokens: &[u32],
        pos: usize,
        fork: usize,
        branch: &[u32],
    ) -> Result<(Tensor, Tensor)> {
        if tokens.is_empty() || branch.is_empty() {
            return Err(Error::EmptyPrompt);
        }
        let rows = tokens.len() + branch.len();
        if !(pos..=pos + tokens.len()).contains(&fork) || rows > PREFILL_CHUNK {
            return Err(Error::BadFork {
                pos,
                tokens: tokens.len(),
                fork,
            });
        }
        if pos + rows > self.n_ctx {
            return Err(Error::ContextOverflow {
                prompt_tokens: pos + rows,
                max_tokens: 0,
                window: self.n_ctx,
            });
        }
        if let Some(&id) = tokens
            .iter()
            .chain(branch)
            .find(|&&t| t as usize >= self.cfg.vocab_size)
        {
            return Err(Error::BadToken {
                id,
                vocab: self.cfg.vocab_size,
            });
        }
        let all: Vec<u32> = tokens.iter().chain(branch).copied().collect();
        let hidden = self.forward_rows(&all, pos, Some((fork, branch.len())))?;
        let last = |row: usize| -> Result<Tensor> {
            Ok(self.logits(&hidden.narrow(0, row, 1)?)?.squeeze(0)?)
        };
        Ok((last(tokens.len() - 1)?, last(rows - 1)?))
    }

    /// Runs one chunk through every layer; returns the final hidden states (rows, `n_embd`).
    fn forward_chunk(&mut self, tokens: &[u32], pos: usize) -> Result<Tensor> {
        self.forward_rows(tokens, pos, None)
    }

    /// [`Self::forward_chunk`], where the last `b` rows of `tokens` may be a branch from
    /// position `fork` (`branch = Some((fork, b))`): see [`Self::forward_fork`].
    fn forward_rows(
        &mut self,
        tokens: &[u32],
        pos: usize,
        branch: Option<(usize, usize)>,
    ) -> Result<Tensor> {
        let seq = tokens.len();
        let mut x = self.embed.rows(tokens)?;
        let (cos, sin) = match branch {
            None => (self.cos.narrow(0, pos, seq)?, self.sin.narrow(0, pos, seq)?),
            Some((fork, b)) => {
                // The branch's rows take the positions that follow the fork.
                let a = seq - b;
                let at = |t: &Tensor| -> candle_core::Result<Tensor> {
                    Tensor::cat(&[t.narrow(0, pos, a)?, t.narrow(0, fork, b)?], 0)
                };
                (at(&self.cos)?, at(&self.sin)?)
            }
        };
        let cfg = &self.cfg;
        for layer in &mut self.layers {
            let h = candle_nn::ops::rms_norm(&x, &layer.attn_norm, cfg.rms_eps)?;
            let attn = attention(cfg, layer, &h, pos, branch, &cos, &sin)?;
            x = (x + attn)?;
            let h = candle_nn::ops::rms_norm(&x, &layer.ffn_norm, cfg.rms_eps)?;
            let [gate, up] = Linear::forward_all([&layer.gate, &layer.up], &h)?;
            let ffn = layer.down.forward_gated(&gate, &up)?;
            x = (x + ffn)?;
        }
        Ok(x)
    }
}

/// Self-attention of rows `x` whose keys and values go to the cache from `pos` on; the last
/// `b` rows may be a branch from position `fork` (`branch = Some((fork, b))`), which attends
/// to the positions before `fork` and to itself only.
fn attention(
    cfg: &ModelConfig,
    layer: &mut Layer,
    x: &Tensor,
    pos: usize,
    branch: Option<(usize, usize)>,
    cos: &Tensor,
    sin: &Tensor,
) -> Result<Tensor> {
    let seq = x.dim(0)?;
    let (n_head, hd) = (cfg.n_head, cfg.head_dim);
    let [q, k, v] = Linear::forward_all([&layer.q, &layer.k, &layer.v], x)?;
    let q = prepare_qkv(cfg, &mut layer.cache, [&q, &k, &v], [cos, sin], pos)?;
    let out = if seq == 1 && branch.is_none() {
        // One token: attend straight over the cache, no copies.
        layer.cache.attend_one(&q, n_head, pos + 1)
    } else {
        layer.cache.attend_rows(&q, n_head, seq, pos, branch)
    };
    let out = Tensor::from_vec(out, (seq, n_head * hd), &Device::Cpu)?;
    layer.o.forward(&out)
}

/// The f32 values of a tensor, borrowed if it is contiguous (a copy if not).
fn with_values<R>(t: &Tensor, f: impl FnOnce(&[f32]) -> R) -> Result<R> {
    let t = t.contiguous()?;
    let (storage, layout) = t.storage_and_layout();
    let candle_core::Storage::Cpu(candle_core::CpuStorage::F32(data)) = &*storage else {
        return Err(Error::Candle(candle_core::Error::Msg(
            "expected f32 values on the CPU".into(),
        )));
    };
    let (from, to) = layout
        .contiguous_offsets()
        .expect("a contiguous tensor has contiguous offsets");
    Ok(f(&data[from..to]))
}

/// Q, K and V of a pass (each `rows × heads·head_dim`) as attention wants them, in one walk
/// over each: RoPE on Q and K with `cos`/`sin` (`rows × head_dim/2`), all three rounded to f16
/// as llama.cpp's cache keeps them (and as it rounds Q for the K·Q product, so that near-ties
/// break the same way), K and V stored in the cache at `pos..`, Q scaled by 1/√`head_dim` and
/// returned as (`n_head`, rows, `head_dim`).
///
/// The arithmetic is candle's `rope`/`rope_i`, `to_dtype` and `affine` to the bit, without
/// their transposes and intermediate tensors (about 17 passes over Q before, session 30).
fn prepare_qkv(
    cfg: &ModelConfig,
    cache: &mut KvCache,
    [q, k, v]: [&Tensor; 3],
    [cos, sin]: [&Tensor; 2],
    pos: usize,
) -> Result<Vec<f32>> {
    let (n_head, n_kv, hd) = (cfg.n_head, cfg.n_head_kv, cfg.head_dim);
    let seq = q.dim(0)?;
    let half = hd / 2;
    // candle's `q * scale` is `affine(scale, 0)`: v · (scale as f32) + 0.
    let scale = (1.0 / (hd as f64).sqrt()) as f32;
    let cos = cos.to_dtype(DType::F32)?.flatten_all()?.to_vec1::<f32>()?;
    let sin = sin.to_dtype(DType::F32)?.flatten_all()?.to_vec1::<f32>()?;
    let arch = cfg.arch;
    // One head of one row: rotated into `out`, then rounded to f16 and back.
    let rotate = |x: &[f32], t: usize, out: &mut [f32]| {
        let (c, s) = (
            &cos[t * half..(t + 1) * half],
            &sin[t * half..(t + 1) * half],
        );
        match arch {
            // GGUF conversion permutes llama's Q/K so that adjacent pairs rotate together.
            Arch::Llama => {
                for i in 0..half {
                    let (a, b) = (x[2 * i], x[2 * i + 1]);
                    out[2 * i] = a * c[i] - b * s[i];
                    out[2 * i + 1] = a * s[i] + b * c[i];
                }
            }
            Arch::Qwen2 => {
                for i in 0..half {
                    let (a, b) = (x[i], x[i + half]);
                    out[i] = a * c[i] - b * s[i];
                    out[i + half] = a * s[i] + b * c[i];
                }
            }
        }
        round_to_f16(out);
    };
    let mut q_out = vec![0f32; n_head * seq * hd];
    with_values(q, |q| {
        let prepare_head = |h: usize, head: &mut [f32]| {
            for (t, out) in head.chunks_exact_mut(hd).enumerate() {
                rotate(&q[(t * n_head + h) * hd..(t * n_head + h + 1) * hd], t, out);
                for v in out.iter_mut() {
                    *v = *v * scale + 0.0;
                }
            }
        };
        // A token's few heads are not worth waking the pool for.
        if seq < 16 {
            for (h, head) in q_out.chunks_exact_mut(seq * hd).enumerate() {
                prepare_head(h, head);
            }
        } else {
            fill_chunks(&mut q_out, seq * hd, prepare_head);
        }
    })?;
    let mut keys = vec![0f32; seq * n_kv * hd];
    with_values(k, |k| {
        for (t, (row, out)) in k
            .chunks_exact(n_kv * hd)
            .zip(keys.chunks_exact_mut(n_kv * hd))
            .enumerate()
        {
            for (x, out) in row.chunks_exact(hd).zip(out.chunks_exact_mut(hd)) {
                rotate(x, t, out);
            }
        }
    })?;
    with_values(v, |values| cache.store(&keys, values, seq, pos))?;
    Ok(q_out)
}

/// Rounds each value to the nearest f16 (ties to even), in place.
fn round_to_f16(x: &mut [f32]) {
    use half::slice::HalfFloatSliceExt;
    let mut narrow = [half::f16::ZERO; 256];
    for piece in x.chunks_mut(256) {
        let narrow = &mut narrow[..piece.len()];
        narrow.convert_from_f32_slice(piece);
        narrow.convert_to_f32_slice(piece);
    }
}

/// Index of the largest logit (the lowest index among ties, as llama.cpp's greedy sampler).
#[must_use]
pub fn argmax(logits: &[f32]) -> u32 {
    let mut best = 0;
    for (i, &v) in logits.iter().enumerate() {
        if v > logits[best] {
            best = i;
        }
    }
    best as u32
}

/// Index of the largest logit in every row of (rows, vocab) logits.
pub fn argmax_rows(logits: &Tensor) -> Result<Vec<u32>> {
    let rows = logits.to_dtype(DType::F32)?.to_vec2::<f32>()?;
    Ok(rows.iter().map(|r| argmax(r)).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What `prepare_qkv` replaced: candle's RoPE, `to_dtype` round trip and `affine`, with the
    /// transposes between them.
    fn candle_chain(
        cfg: &ModelConfig,
        x: [&Tensor; 3],
        cos: &Tensor,
        sin: &Tensor,
    ) -> [Vec<f32>; 3] {
        let seq = x[0].dim(0).unwrap();
        let hd = cfg.head_dim;
        let heads = |t: &Tensor, n: usize| {
            t.reshape((1, seq, n, hd))
                .unwrap()
                .transpose(1, 2)
                .unwrap()
                .contiguous()
                .unwrap()
        };
        let rope = |t: &Tensor| match cfg.arch {
            Arch::Llama => candle_nn::rotary_emb::rope_i(t, cos, sin).unwrap(),
            Arch::Qwen2 => candle_nn::rotary_emb::rope(t, cos, sin).unwrap(),
        };
        let to_f16 = |t: Tensor| {
            t.to_dtype(DType::F16)
                .unwrap()
                .to_dtype(DType::F32)
                .unwrap()
        };
        let values = |t: Tensor| t.flatten_all().unwrap().to_vec1::<f32>().unwrap();
        let q = to_f16(rope(&heads(x[0], cfg.n_head)));
        let k = to_f16(rope(&heads(x[1], cfg.n_head_kv)));
        let v = to_f16(heads(x[2], cfg.n_head_kv));
        let scale = 1.0 / (hd as f64).sqrt();
        [values((q * scale).unwrap()), values(k), values(v)]
    }

    #[test]
    fn q_k_and_v_are_prepared_as_candle_prepared_them_to_the_bit() {
        for arch in [Arch::Llama, Arch::Qwen2] {
            let cfg = ModelConfig {
                arch,
                n_layer: 1,
                n_embd: 48,
                n_ff: 96,
                n_head: 6,
                n_head_kv: 2,
                head_dim: 8,
                rope_theta: 10_000.0,
                rms_eps: 1e-6,
                train_ctx: 64,
                vocab_size: 10,
            };
            let (seq, pos, hd) = (5, 3, cfg.head_dim);
            let made_up = |seed: f32, n: usize| -> Vec<f32> {
                (0..n)
                    .map(|i| (i as f32 * 0.37 + seed).sin() * 3.0)
                    .collect()
            };
            let tensor = |seed, heads: usize| {
                Tensor::from_vec(
                    made_up(seed, seq * heads * hd),
                    (seq, heads * hd),
                    &Device::Cpu,
                )
                .unwrap()
            };
            let (q, k, v) = (tensor(0.1, 6), tensor(0.5, 2), tensor(0.9, 2));
            let angles = |f: fn(f32) -> f32| {
                let a: Vec<f32> = (0..seq * hd / 2)
                    .map(|i| f((pos + i / (hd / 2)) as f32 * 0.3 / (1 + i % (hd / 2)) as f32))
                    .collect();
                Tensor::from_vec(a, (seq, hd / 2), &Device::Cpu).unwrap()
            };
            let (cos, sin) = (angles(f32::cos), angles(f32::sin));
            let mut cache = KvCache::new(2, 16, hd);
            let prepared = prepare_qkv(&cfg, &mut cache, [&q, &k, &v], [&cos, &sin], pos).unwrap();
            let [want_q, want_k, want_v] = candle_chain(&cfg, [&q, &k, &v], &cos, &sin);
            let bits = |x: &[f32]| x.iter().map(|v| v.to_bits()).collect::<Vec<_>>();
            assert_eq!(bits(&prepared), bits(&want_q), "{arch:?}: Q");
            let stored = |t: Tensor| t.flatten_all().unwrap().to_vec1::<f32>().unwrap();
            let keys = stored(cache.keys(pos + seq).unwrap());
            let values = stored(cache.values(pos + seq).unwrap());
            for h in 0..2 {
                let at = |t: usize| (h * (pos + seq) + pos + t) * hd;
                for t in 0..seq {
                    let want = (h * seq + t) * hd;
                    assert_eq!(
                        bits(&keys[at(t)..at(t) + hd]),
                        bits(&want_k[want..want + hd])
                    );
                    assert_eq!(
                        bits(&values[at(t)..at(t) + hd]),
                        bits(&want_v[want..want + hd])
                    );
                }
            }
        }
    }
}
