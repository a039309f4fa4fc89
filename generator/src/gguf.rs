//! Reading a GGUF file: hyper-parameters, tokenizer tables and chat template.

use std::collections::HashMap;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use candle_core::quantized::gguf_file::{Content, Value};
use candle_core::quantized::{ggml_file, GgmlDType, QTensor};
use candle_core::{Device, Tensor};
use memmap2::Mmap;

use crate::error::{Error, Result};

/// The model families cairn runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Arch {
    /// Llama and its descendants (`SmolLM2`): rotary embedding on adjacent pairs, no attention bias.
    Llama,
    /// Qwen2 / Qwen2.5: rotary embedding on split halves (`NeoX` style), bias on Q, K and V.
    Qwen2,
}

impl Arch {
    /// The name GGUF uses for this architecture.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Arch::Llama => "llama",
            Arch::Qwen2 => "qwen2",
        }
    }
}

/// The hyper-parameters of a transformer, read from GGUF metadata.
#[derive(Debug, Clone)]
pub struct ModelConfig {
    /// The architecture family.
    pub arch: Arch,
    /// Number of transformer blocks.
    pub n_layer: usize,
    /// Width of the residual stream.
    pub n_embd: usize,
    /// Width of the feed-forward layer.
    pub n_ff: usize,
    /// Number of query heads.
    pub n_head: usize,
    /// Number of key/value heads (grouped-query attention when below `n_head`).
    pub n_head_kv: usize,
    /// Width of one attention head.
    pub head_dim: usize,
    /// Rotary embedding base frequency.
    pub rope_theta: f32,
    /// Epsilon of the RMS norms.
    pub rms_eps: f32,
    /// The context length the model was trained for.
    pub train_ctx: usize,
    /// Vocabulary size.
    pub vocab_size: usize,
}

/// A GGUF file opened for reading: its metadata and tensor directory, and the file mapped into
/// memory.
///
/// The weights of the block types cairn multiplies with its own kernels are used where they lie
/// in the mapping, so loading a model neither reads it into fresh memory (which
/// the kernel must first zero) nor copies it; the pages are shared with the page cache and with
/// every other process that has the same model open. The file must not be rewritten while it is
/// open: `cairn models pull` writes a new file and renames it over the old one, which leaves the
/// mapped file intact.
pub struct GgufFile {
    pub(crate) path: PathBuf,
    pub(crate) content: Content,
    map: Arc<Mmap>,
}

/// A tensor's bytes where they lie in a mapped GGUF file, with its type and shape.
#[derive(Clone)]
pub(crate) struct RawTensor {
    map: Arc<Mmap>,
    start: usize,
    len: usize,
    pub(crate) dtype: GgmlDType,
    /// Row-major dimensions, outermost first (`[n_out, k]` for a matrix).
    dims: Vec<usize>,
}

impl RawTensor {
    /// The tensor's blocks, as stored.
    pub(crate) fn bytes(&self) -> &[u8] {
        &self.map[self.start..self.start + self.len]
    }

    /// (rows, columns) of a matrix.
    pub(crate) fn dims2(&self) -> Result<(usize, usize)> {
        match self.dims[..] {
            [rows, cols] => Ok((rows, cols)),
            _ => Err(Error::Candle(candle_core::Error::Msg(format!(
                "expected a matrix, found a tensor of shape {:?}",
                self.dims
            )))),
        }
    }

    /// A copy as candle's quantized tensor (for the types candle multiplies, and vectors).
    pub(crate) fn to_qtensor(&self) -> Result<QTensor> {
        Ok(ggml_file::qtensor_from_ggml(
            self.dtype,
            self.bytes(),
            self.dims.clone(),
            &Device::Cpu,
        )?)
    }

    /// The rows `ids` of a matrix, dequantized to f32: (`ids.len()`, columns). Each row is
    /// dequantized by candle, exactly as its quantized embedding lookup does.
    pub(crate) fn rows(&self, ids: &[u32]) -> Result<Tensor> {
        let (n_rows, cols) = self.dims2()?;
        let row_bytes = self.len / n_rows.max(1);
        let mut out = Vec::with_capacity(ids.len() * cols);
        for &id in ids {
            let id = id as usize;
            if id >= n_rows {
                return Err(Error::Candle(candle_core::Error::Msg(format!(
                    "row {id} is out of range for {n_rows} rows"
                ))));
            }
            let bytes = &self.bytes()[id * row_bytes..(id + 1) * row_bytes];
            let row = ggml_file::qtensor_from_ggml(self.dtype, bytes, vec![cols], &Device::Cpu)?
                .dequantize(&Device::Cpu)?;
            out.extend(row.to_vec1::<f32>()?);
        }
        Ok(Tensor::from_vec(out, (ids.len(), cols), &Device::Cpu)?)
    }
}

impl GgufFile {
    /// Opens `path`, maps it and reads its header and metadata (tensors are used later, where
    /// they lie).
    pub fn open(path: &Path) -> Result<Self> {
        let io = |source| Error::Io {
            path: path.to_owned(),
            source,
        };
        let file = File::open(path).map_err(io)?;
        // SAFETY: the mapping is read-only and the model files are never written in place
        // (see the type's documentation); a file truncated under a running process is the one
        // case this cannot guard against, as for any program that maps its inputs.
        #[allow(unsafe_code)]
        let map = unsafe { Mmap::map(&file) }.map_err(io)?;
        #[cfg(unix)]
        {
            // Start reading the whole file in the background: every weight is used by the
            // first forward pass. Only a hint, so a refusal changes nothing.
            let _ = map.advise(memmap2::Advice::WillNeed);
        }
        let mut reader = std::io::Cursor::new(&map[..]);
        let content = Content::read(&mut reader).map_err(|e| Error::Format {
            path: path.to_owned(),
            reason: format!(
                "not a readable GGUF file ({})",
                crate::error::candle_message(&e)
            ),
        })?;
        Ok(Self {
            path: path.to_owned(),
            content,
            map: Arc::new(map),
        })
    }

    /// The raw metadata table.
    #[must_use]
    pub fn metadata(&self) -> &HashMap<String, Value> {
        &self.content.metadata
    }

    fn format_err(&self, reason: impl Into<String>) -> Error {
        Error::Format {
            path: self.path.clone(),
            reason: reason.into(),
        }
    }

    pub(crate) fn get(&self, key: &str) -> Result<&Value> {
        self.content
            .metadata
            .get(key)
            .ok_or_else(|| self.format_err(format!("metadata key `{key}` is missing")))
    }

    pub(crate) fn get_usize(&self, key: &str) -> Result<usize> {
        let value = self.get(key)?;
        // GGUF writers disagree on integer widths; accept any unsigned or non-negative one.
        let n = match value {
            Value::U8(v) => u64::from(*v),
            Value::U16(v) => u64::from(*v),
            Value::U32(v) => u64::from(*v),
            Value::U64(v) => *v,
            Value::I32(v) if *v >= 0 => *v as u64,
            Value::I64(v) if *v >= 0 => *v as u64,
            other => {
                return Err(self.format_err(format!(
                    "metadata key `{key}` should be an integer, found {:?}",
                    other.value_type()
                )))
            }
        };
        Ok(n as usize)
    }

    pub(crate) fn get_f32(&self, key: &str) -> Result<f32> {
        match self.get(key)? {
            Value::F32(v) => Ok(*v),
            Value::F64(v) => Ok(*v as f32),
            other => Err(self.format_err(format!(
                "metadata key `{key}` should be a float, found {:?}",
                other.value_type()
            ))),
        }
    }

    pub(crate) fn get_str(&self, key: &str) -> Result<&str> {
        self.get(key)?
            .to_string()
            .map(String::as_str)
            .map_err(|_| self.format_err(format!("metadata key `{key}` should be a string")))
    }

    pub(crate) fn get_opt_str(&self, key: &str) -> Option<&str> {
        self.content
            .metadata
            .get(key)
            .and_then(|v| v.to_string().ok())
            .map(String::as_str)
    }

    pub(crate) fn get_opt_u32(&self, key: &str) -> Option<u32> {
        self.content.metadata.get(key).and_then(|v| match v {
            Value::U32(x) => Some(*x),
            Value::I32(x) => u32::try_from(*x).ok(),
            Value::U64(x) => u32::try_from(*x).ok(),
            _ => None,
        })
    }

    pub(crate) fn get_array(&self, key: &str) -> Result<&Vec<Value>> {
        self.get(key)?
            .to_vec()
            .map_err(|_| self.format_err(format!("metadata key `{key}` should be an array")))
    }

    /// Reads the hyper-parameters.
    pub fn config(&self) -> Result<ModelConfig> {
        let arch_name = self.get_str("general.architecture")?;
        let arch = match arch_name {
            "llama" => Arch::Llama,
            "qwen2" => Arch::Qwen2,
            other => {
                return Err(Error::UnsupportedArchitecture {
                    path: self.path.clone(),
                    arch: other.to_owned(),
                })
            }
        };
        let key = |k: &str| format!("{arch_name}.{k}");
        let n_embd = self.get_usize(&key("embedding_length"))?;
        let n_head = self.get_usize(&key("attention.head_count"))?;
        let n_head_kv = self
            .get_usize(&key("attention.head_count_kv"))
            .unwrap_or(n_head);
        if n_head == 0 || n_embd % n_head != 0 || n_head_kv == 0 || n_head % n_head_kv != 0 {
            return Err(self.format_err(format!(
                "inconsistent attention shape: {n_embd} wide, {n_head} heads, {n_head_kv} kv heads"
            )));
        }
        let head_dim = n_embd / n_head;
        let rope_dim = self
            .get_usize(&key("rope.dimension_count"))
            .unwrap_or(head_dim);
        if rope_dim != head_dim {
            return Err(self.format_err(format!(
                "partial rotary embeddings ({rope_dim} of {head_dim}) are not supported"
            )));
        }
        let vocab_size = self.get_array("tokenizer.ggml.tokens")?.len();
        Ok(ModelConfig {
            arch,
            n_layer: self.get_usize(&key("block_count"))?,
            n_embd,
            n_ff: self.get_usize(&key("feed_forward_length"))?,
            n_head,
            n_head_kv,
            head_dim,
            rope_theta: self.get_f32(&key("rope.freq_base")).unwrap_or(10_000.0),
            rms_eps: self.get_f32(&key("attention.layer_norm_rms_epsilon"))?,
            train_ctx: self.get_usize(&key("context_length"))?,
            vocab_size,
        })
    }

    /// The chat template stored in the file, if any.
    #[must_use]
    pub fn chat_template(&self) -> Option<&str> {
        self.get_opt_str("tokenizer.chat_template")
    }

    /// A short human name for the model (`general.name`, else the file name).
    #[must_use]
    pub fn name(&self) -> String {
        self.get_opt_str("general.name").map_or_else(
            || {
                self.path
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default()
            },
            str::to_owned,
        )
    }

    /// The tensor `name` where it lies in the file. Fails, naming the file, when the tensor is
    /// missing, its shape does not divide into blocks or its bytes run past the end.
    pub(crate) fn raw(&self, name: &str) -> Result<RawTensor> {
        let bad = |reason: String| Error::Format {
            path: self.path.clone(),
            reason: format!("tensor `{name}`: {reason}"),
        };
        let info = self
            .content
            .tensor_infos
            .get(name)
            .ok_or_else(|| bad("missing".into()))?;
        let elems = info.shape.elem_count();
        let block = info.ggml_dtype.block_size();
        if !elems.is_multiple_of(block) {
            return Err(bad(format!(
                "{elems} values do not divide into blocks of {block}"
            )));
        }
        let len = elems / block * info.ggml_dtype.type_size();
        let start = self.content.tensor_data_offset.saturating_add(info.offset);
        let end = start.saturating_add(len as u64);
        if end > self.map.len() as u64 {
            return Err(bad(format!(
                "needs bytes {start}..{end}, but the file has {} (truncated?)",
                self.map.len()
            )));
        }
        Ok(RawTensor {
            map: Arc::clone(&self.map),
            start: start as usize,
            len,
            dtype: info.ggml_dtype,
            dims: info.shape.dims().to_vec(),
        })
    }

    /// A copy of the tensor `name` as candle's quantized tensor.
    pub(crate) fn tensor(&self, name: &str) -> Result<QTensor> {
        self.raw(name)?.to_qtensor().map_err(|e| Error::Format {
            path: self.path.clone(),
            reason: format!("tensor `{name}`: {e}"),
        })
    }

    pub(crate) fn has_tensor(&self, name: &str) -> bool {
        self.content.tensor_infos.contains_key(name)
    }
}
