//! Sentence embeddings with a BERT encoder (all-MiniLM-L6-v2): mean pooling, L2 norm.
//!
//! The forward pass packs a batch: every linear layer runs once over all the batch's tokens
//! laid end to end (no padding rows at all), and only attention works per sequence. Padding to
//! the longest text of a batch wastes about half the work on texts of mixed length; packing
//! wastes none, so the batch order does not matter for speed.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor};
use tokenizers::{Tokenizer, TruncationDirection, TruncationParams, TruncationStrategy};

use crate::error::{Error, Result};

/// The longest input, in tokens with `[CLS]` and `[SEP]`, all-MiniLM-L6-v2 was trained on.
/// The bundled `tokenizer.json` says 128; sentence-transformers uses 256 for this model.
pub const MAX_TOKENS: usize = 256;

struct Layer {
    qkv: Tensor,
    qkv_b: Tensor,
    attn_out: Tensor,
    attn_out_b: Tensor,
    ln1: (Tensor, Tensor),
    up: Tensor,
    up_b: Tensor,
    down: Tensor,
    down_b: Tensor,
    ln2: (Tensor, Tensor),
}

/// A loaded BERT sentence encoder.
pub struct BertEmbedder {
    tokenizer: Tokenizer,
    counter: Tokenizer,
    word: Tensor,
    position: Tensor,
    token_type0: Tensor,
    ln: (Tensor, Tensor),
    layers: Vec<Layer>,
    heads: usize,
    eps: f32,
    dim: usize,
}

fn cerr(e: candle_core::Error) -> Error {
    Error::Candle(e)
}

impl BertEmbedder {
    /// Loads `model.safetensors`, `tokenizer.json` and `config.json` from `dir`.
    pub fn load(dir: &Path) -> Result<Self> {
        let file = |name: &str| -> PathBuf { dir.join(name) };
        let format = |path: PathBuf, reason: String| Error::Format { path, reason };
        let config: serde_json::Value =
            serde_json::from_slice(&std::fs::read(file("config.json")).map_err(|source| {
                Error::Io {
                    path: file("config.json"),
                    source,
                }
            })?)
            .map_err(|e| format(file("config.json"), e.to_string()))?;
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

        let dev = Device::Cpu;
        let weights_path = file("model.safetensors");
        let mut w: HashMap<String, Tensor> = candle_core::safetensors::load(&weights_path, &dev)
            .map_err(|e| format(weights_path.clone(), e.to_string()))?;
        let mut take = |name: &str| -> Result<Tensor> {
            let t = w
                .remove(name)
                .or_else(|| w.remove(&format!("bert.{name}")))
                .ok_or_else(|| format(weights_path.clone(), format!("missing tensor `{name}`")))?;
            t.to_dtype(DType::F32).map_err(cerr)
        };
        // Linear weights are stored [out, in]; keep them transposed, contiguous, for x·Wᵀ.
        let lin = |t: Tensor| t.t().and_then(|t| t.contiguous()).map_err(cerr);
        let word = take("embeddings.word_embeddings.weight")?;
        let position = take("embeddings.position_embeddings.weight")?;
        let token_type0 = take("embeddings.token_type_embeddings.weight")?
            .get(0)
            .map_err(cerr)?;
        let ln = (
            take("embeddings.LayerNorm.weight")?,
            take("embeddings.LayerNorm.bias")?,
        );
        let mut layers = Vec::with_capacity(n_layers);
        for i in 0..n_layers {
            let p = format!("encoder.layer.{i}");
            let q = take(&format!("{p}.attention.self.query.weight"))?;
            let k = take(&format!("{p}.attention.self.key.weight"))?;
            let v = take(&format!("{p}.attention.self.value.weight"))?;
            let qb = take(&format!("{p}.attention.self.query.bias"))?;
            let kb = take(&format!("{p}.attention.self.key.bias"))?;
            let vb = take(&format!("{p}.attention.self.value.bias"))?;
            layers.push(Layer {
                qkv: lin(Tensor::cat(&[&q, &k, &v], 0).map_err(cerr)?)?,
                qkv_b: Tensor::cat(&[&qb, &kb, &vb], 0).map_err(cerr)?,
                attn_out: lin(take(&format!("{p}.attention.output.dense.weight"))?)?,
                attn_out_b: take(&format!("{p}.attention.output.dense.bias"))?,
                ln1: (
                    take(&format!("{p}.attention.output.LayerNorm.weight"))?,
                    take(&format!("{p}.attention.output.LayerNorm.bias"))?,
                ),
                up: lin(take(&format!("{p}.intermediate.dense.weight"))?)?,
                up_b: take(&format!("{p}.intermediate.dense.bias"))?,
                down: lin(take(&format!("{p}.output.dense.weight"))?)?,
                down_b: take(&format!("{p}.output.dense.bias"))?,
                ln2: (
                    take(&format!("{p}.output.LayerNorm.weight"))?,
                    take(&format!("{p}.output.LayerNorm.bias"))?,
                ),
            });
        }
        Ok(BertEmbedder {
            tokenizer,
            counter,
            word,
            position,
            token_type0,
            ln,
            layers,
            heads,
            eps,
            dim: hidden,
        })
    }

    /// The embedding dimension (384 for MiniLM-L6).
    #[must_use]
    pub fn dim(&self) -> usize {
        self.dim
    }

    /// Byte offsets where each token of `text` ends, without special tokens or truncation: the
    /// chunker's budget is counted in these.
    #[must_use]
    pub fn token_ends(&self, text: &str) -> Vec<usize> {
        match self.counter.encode(text, false) {
            Ok(enc) => {
                let mut ends: Vec<usize> = enc.get_offsets().iter().map(|&(_, e)| e).collect();
                // Offsets are non-decreasing; make them strictly usable as cut points.
                ends.dedup();
                ends
            }
            Err(_) => Vec::new(),
        }
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
        let positions: Vec<u32> = lens.iter().flat_map(|&l| 0..l as u32).collect();
        self.forward(&ids, &positions, &lens).map_err(cerr)
    }

    fn forward(
        &self,
        ids: &[u32],
        positions: &[u32],
        lens: &[usize],
    ) -> candle_core::Result<Vec<Vec<f32>>> {
        let dev = Device::Cpu;
        let total = ids.len();
        let ids = Tensor::from_slice(ids, total, &dev)?;
        let pos = Tensor::from_slice(positions, total, &dev)?;
        let mut x = self
            .word
            .embedding(&ids)?
            .add(&self.position.embedding(&pos)?)?
            .broadcast_add(&self.token_type0)?;
        x = candle_nn::ops::layer_norm(&x, &self.ln.0, &self.ln.1, self.eps)?;
        let head_dim = self.dim / self.heads;
        let scale = 1.0 / (head_dim as f64).sqrt();
        for layer in &self.layers {
            let qkv = x.matmul(&layer.qkv)?.broadcast_add(&layer.qkv_b)?;
            let mut contexts = Vec::with_capacity(lens.len());
            let mut start = 0;
            for &len in lens {
                let part = qkv.narrow(0, start, len)?;
                let split = |i: usize| -> candle_core::Result<Tensor> {
                    part.narrow(1, i * self.dim, self.dim)?
                        .reshape((len, self.heads, head_dim))?
                        .transpose(0, 1)?
                        .contiguous()
                };
                let (q, k, v) = (split(0)?, split(1)?, split(2)?);
                let scores = (q.matmul(&k.t()?)? * scale)?;
                let probs = candle_nn::ops::softmax_last_dim(&scores)?;
                let ctx = probs
                    .matmul(&v)?
                    .transpose(0, 1)?
                    .reshape((len, self.dim))?;
                contexts.push(ctx);
                start += len;
            }
            let ctx = Tensor::cat(&contexts, 0)?;
            let attn = ctx
                .matmul(&layer.attn_out)?
                .broadcast_add(&layer.attn_out_b)?;
            x = candle_nn::ops::layer_norm(&(attn + &x)?, &layer.ln1.0, &layer.ln1.1, self.eps)?;
            let h = x
                .matmul(&layer.up)?
                .broadcast_add(&layer.up_b)?
                .gelu_erf()?;
            let h = h.matmul(&layer.down)?.broadcast_add(&layer.down_b)?;
            x = candle_nn::ops::layer_norm(&(h + &x)?, &layer.ln2.0, &layer.ln2.1, self.eps)?;
        }
        let x: Vec<f32> = x.flatten_all()?.to_vec1()?;
        let mut out = Vec::with_capacity(lens.len());
        let mut start = 0;
        for &len in lens {
            let mut v = vec![0f32; self.dim];
            for row in x[start * self.dim..(start + len) * self.dim].chunks_exact(self.dim) {
                for (a, b) in v.iter_mut().zip(row) {
                    *a += b;
                }
            }
            let norm = v.iter().map(|a| a * a).sum::<f32>().sqrt().max(1e-12);
            v.iter_mut().for_each(|a| *a /= norm);
            out.push(v);
            start += len;
        }
        Ok(out)
    }
}
