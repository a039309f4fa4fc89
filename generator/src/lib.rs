//! cairn's language model: a quantized llama/qwen2 transformer run in-process on the CPU.
//!
//! [`Generator`] loads one GGUF file — weights, tokenizer ([`Tokenizer`]) and chat template
//! ([`ChatTemplate`]) all come from it — and answers prompts, streaming text to a
//! [`TokenSink`] that can stop generation between tokens.
//!
//! The design decision to know: the forward pass ([`model`]) is cairn's own, on candle's tensors
//! and quantized kernels, because the generic candle models grow their KV cache by copying on
//! every token. Here the cache is preallocated and written in place, prompts run as integer products
//! on weights re-laid in strips (or f32 products on weights dequantized on the fly, where no
//! integer kernel exists), and single tokens run as quantized dot products.
//! The KV cache of a prompt prefix shared with the previous call is reused.

pub mod block_strips;
pub mod chat;
pub mod constrain;
pub mod embed;
mod error;
pub mod gguf;
pub mod kernels;
pub mod kquants;
mod kv_cache;
pub mod model;
mod onnx;
mod parallel;
pub mod sampling;
mod sgemm;
mod strip_product;
mod swiglu;
pub mod tokenizer;

mod generate;

pub use chat::{ChatTemplate, Message, Role};
pub use constrain::{Constraint, Quote};
pub use embed::BertEmbedder;
pub use error::{Error, Result};
pub use generate::{
    Collect, FinishReason, GenerateOptions, Generation, Generator, LoadOptions, Proceed,
    StartChoice, TokenSink, READ_AHEAD_PIECE,
};
pub use gguf::{Arch, GgufFile, ModelConfig};
pub use sampling::{Sampler, Sampling};
pub use tokenizer::{StreamDecoder, Tokenizer};
