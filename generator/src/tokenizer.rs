//! The tokenizer, built from the tables embedded in the GGUF so that one file is the whole model.
//!
//! Encoding uses the `tokenizers` crate's BPE with the pre-tokenizer llama.cpp applies for the
//! file's `tokenizer.ggml.pre`. Decoding is our own: each token maps to its exact bytes, and a
//! [`StreamDecoder`] turns a stream of tokens into text without ever splitting a UTF-8 character.

use std::collections::HashMap;

use candle_core::quantized::gguf_file::Value;
use tokenizers::models::bpe::BPE;
use tokenizers::pre_tokenizers::byte_level::ByteLevel;
use tokenizers::pre_tokenizers::digits::Digits;
use tokenizers::pre_tokenizers::sequence::Sequence;
use tokenizers::pre_tokenizers::split::{Split, SplitPattern};
use tokenizers::pre_tokenizers::PreTokenizerWrapper;
use tokenizers::{AddedToken, SplitDelimiterBehavior};

use crate::error::{Error, Result};
use crate::gguf::GgufFile;

/// llama.cpp's pre-tokenizer regex for `tokenizer.ggml.pre = "qwen2"`.
const QWEN2_PATTERN: &str = r"(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";

/// GGUF token types (llama.cpp `llama_token_type`).
const TOKEN_TYPE_CONTROL: i32 = 3;
const TOKEN_TYPE_USER_DEFINED: i32 = 4;

/// Token texts that end a turn in the chat formats we know, when the file marks them as control.
const TURN_END_TOKENS: &[&str] = &[
    "<|im_end|>",
    "<|endoftext|>",
    "<|eot_id|>",
    "<|end|>",
    "</s>",
];

/// A byte-level BPE tokenizer read from a GGUF file.
#[derive(Clone)]
pub struct Tokenizer {
    inner: tokenizers::Tokenizer,
    /// The exact bytes of every token id.
    token_bytes: Vec<Vec<u8>>,
    /// Ids of control tokens (never printed).
    control: Vec<bool>,
    /// Ids that end generation.
    stop_ids: Vec<u32>,
    /// Texts of special tokens, for neutralising them in untrusted text.
    special_texts: Vec<String>,
    bos_id: Option<u32>,
    eos_id: Option<u32>,
}

/// GPT-2's reversible map from bytes to printable characters, inverted.
fn unicode_to_byte() -> HashMap<char, u8> {
    let mut map = HashMap::with_capacity(256);
    let mut extra = 0u32;
    for b in 0u32..=255 {
        let printable =
            (33..=126).contains(&b) || (161..=172).contains(&b) || (174..=255).contains(&b);
        let ch = if printable {
            char::from_u32(b)
        } else {
            extra += 1;
            char::from_u32(255 + extra)
        };
        map.insert(ch.expect("valid code point"), b as u8);
    }
    map
}

/// The pre-tokenizer llama.cpp applies for `tokenizer.ggml.pre = name`.
fn pre_tokenizer(name: &str) -> Result<PreTokenizerWrapper> {
    Ok(match name {
        "qwen2" => {
            let split = Split::new(
                SplitPattern::Regex(QWEN2_PATTERN.to_owned()),
                SplitDelimiterBehavior::Isolated,
                false,
            )
            .map_err(|e| Error::Tokenizer(format!("pre-tokenizer regex: {e}")))?;
            Sequence::new(vec![
                split.into(),
                ByteLevel::new(false, false, false).into(),
            ])
            .into()
        }
        // llama.cpp splits every digit on its own, then applies the GPT-2 regex.
        "smollm" => Sequence::new(vec![
            Digits::new(true).into(),
            ByteLevel::new(false, false, true).into(),
        ])
        .into(),
        "gpt2" | "default" => ByteLevel::new(false, false, true).into(),
        other => {
            return Err(Error::Tokenizer(format!(
                "pre-tokenizer `{other}` is not supported (supported: qwen2, smollm, gpt2)"
            )))
        }
    })
}

/// The exact bytes of every token: special tokens are their text, the others go through
/// GPT-2's byte table.
fn token_bytes(tokens: &[String], types: &[i32]) -> Vec<Vec<u8>> {
    let table = unicode_to_byte();
    tokens
        .iter()
        .zip(types)
        .map(|(t, ty)| {
            if *ty == TOKEN_TYPE_CONTROL || *ty == TOKEN_TYPE_USER_DEFINED {
                return t.as_bytes().to_vec();
            }
            // A character outside the byte table cannot come from byte-level BPE; keep it as
            // UTF-8 rather than failing, as llama.cpp does.
            let mut out = Vec::with_capacity(t.len());
            for ch in t.chars() {
                if let Some(b) = table.get(&ch) {
                    out.push(*b);
                } else {
                    let mut buf = [0u8; 4];
                    out.extend_from_slice(ch.encode_utf8(&mut buf).as_bytes());
                }
            }
            out
        })
        .collect()
}

impl Tokenizer {
    /// Builds the tokenizer described by `tokenizer.ggml.*` in `file`.
    pub fn from_gguf(file: &GgufFile) -> Result<Self> {
        let model = file.get_str("tokenizer.ggml.model")?;
        if model != "gpt2" {
            return Err(Error::Tokenizer(format!(
                "tokenizer model `{model}` is not supported (only byte-level BPE, `gpt2`)"
            )));
        }
        let tokens: Vec<String> = file
            .get_array("tokenizer.ggml.tokens")?
            .iter()
            .map(|v| v.to_string().cloned())
            .collect::<std::result::Result<_, _>>()
            .map_err(|e| Error::Tokenizer(format!("token table: {e}")))?;
        let types: Vec<i32> = match file.metadata().get("tokenizer.ggml.token_type") {
            Some(Value::Array(values)) => values.iter().map(|v| v.to_i32().unwrap_or(1)).collect(),
            _ => vec![1; tokens.len()],
        };
        let merges: Vec<(String, String)> = file
            .get_array("tokenizer.ggml.merges")?
            .iter()
            .map(|v| {
                let s = v
                    .to_string()
                    .map_err(|e| Error::Tokenizer(format!("merge table: {e}")))?;
                s.split_once(' ')
                    .map(|(a, b)| (a.to_owned(), b.to_owned()))
                    .ok_or_else(|| Error::Tokenizer(format!("malformed merge `{s}`")))
            })
            .collect::<Result<_>>()?;

        let vocab: tokenizers::models::bpe::Vocab = tokens
            .iter()
            .enumerate()
            .map(|(id, t)| (t.clone(), id as u32))
            .collect();
        let bpe = BPE::builder()
            .vocab_and_merges(vocab, merges)
            .build()
            .map_err(|e| Error::Tokenizer(format!("BPE: {e}")))?;
        let mut inner = tokenizers::Tokenizer::new(bpe);

        let pre = file.get_opt_str("tokenizer.ggml.pre").unwrap_or("default");
        let pre_tokenizer = pre_tokenizer(pre)?;
        inner.with_pre_tokenizer(Some(pre_tokenizer));

        let mut specials = Vec::new();
        let mut control = vec![false; tokens.len()];
        let mut special_texts = Vec::new();
        for (id, (text, ty)) in tokens.iter().zip(&types).enumerate() {
            if *ty == TOKEN_TYPE_CONTROL || *ty == TOKEN_TYPE_USER_DEFINED {
                control[id] = *ty == TOKEN_TYPE_CONTROL;
                specials.push(
                    AddedToken::from(text.clone(), *ty == TOKEN_TYPE_CONTROL).normalized(false),
                );
                if text.len() > 1 {
                    special_texts.push(text.clone());
                }
            }
        }
        inner.add_special_tokens(&specials);

        let token_bytes = token_bytes(&tokens, &types);

        let eos_id = file.get_opt_u32("tokenizer.ggml.eos_token_id");
        let bos_id = file.get_opt_u32("tokenizer.ggml.bos_token_id");
        let mut stop_ids: Vec<u32> = eos_id.into_iter().collect();
        if let Some(eot) = file.get_opt_u32("tokenizer.ggml.eot_token_id") {
            stop_ids.push(eot);
        }
        for (id, text) in tokens.iter().enumerate() {
            if control[id] && TURN_END_TOKENS.contains(&text.as_str()) {
                stop_ids.push(id as u32);
            }
        }
        stop_ids.sort_unstable();
        stop_ids.dedup();

        Ok(Self {
            inner,
            token_bytes,
            control,
            stop_ids,
            special_texts,
            bos_id,
            eos_id,
        })
    }

    /// Encodes `text`, recognising special-token texts such as `<|im_start|>` as single tokens.
    ///
    /// Only use this on text cairn itself produced (a rendered chat template); untrusted text
    /// should pass through [`Tokenizer::neutralize_specials`] first.
    pub fn encode(&self, text: &str) -> Result<Vec<u32>> {
        let encoding = self
            .inner
            .encode_fast(text, false)
            .map_err(|e| Error::Tokenizer(format!("encode: {e}")))?;
        Ok(encoding.get_ids().to_vec())
    }

    /// Breaks every special-token text inside `text` so that it encodes as plain characters.
    ///
    /// A document that contains `<|im_start|>system` must not open a new chat turn.
    #[must_use]
    pub fn neutralize_specials(&self, text: &str) -> String {
        if !text.contains('<') && !text.contains('[') {
            return text.to_owned();
        }
        let mut out = text.to_owned();
        for special in &self.special_texts {
            if out.contains(special.as_str()) {
                let mut chars = special.chars();
                let first = chars.next().unwrap_or_default();
                // U+2060 WORD JOINER: invisible, and no special token contains it.
                let broken = format!("{first}\u{2060}{}", chars.as_str());
                out = out.replace(special.as_str(), &broken);
            }
        }
        out
    }

    /// The bytes of one token (control tokens yield their text).
    #[must_use]
    pub fn token_bytes(&self, id: u32) -> &[u8] {
        self.token_bytes
            .get(id as usize)
            .map_or(&[][..], Vec::as_slice)
    }

    /// Decodes a sequence of tokens to text, leaving out control tokens.
    #[must_use]
    pub fn decode(&self, ids: &[u32]) -> String {
        let mut bytes = Vec::new();
        for &id in ids {
            if !self.is_control(id) {
                bytes.extend_from_slice(self.token_bytes(id));
            }
        }
        String::from_utf8_lossy(&bytes).into_owned()
    }

    /// True for control tokens such as `<|im_end|>`.
    #[must_use]
    pub fn is_control(&self, id: u32) -> bool {
        self.control.get(id as usize).copied().unwrap_or(false)
    }

    /// The ids that end generation (end of text, end of turn).
    #[must_use]
    pub fn stop_ids(&self) -> &[u32] {
        &self.stop_ids
    }

    /// The beginning-of-sequence token, if the file names one.
    #[must_use]
    pub fn bos_id(&self) -> Option<u32> {
        self.bos_id
    }

    /// The end-of-sequence token, if the file names one.
    #[must_use]
    pub fn eos_id(&self) -> Option<u32> {
        self.eos_id
    }

    /// The text of a token as stored in the vocabulary.
    #[must_use]
    pub fn token_text(&self, id: u32) -> Option<String> {
        self.inner.id_to_token(id)
    }

    /// The number of tokens in the vocabulary.
    #[must_use]
    pub fn vocab_size(&self) -> usize {
        self.token_bytes.len()
    }
}

/// Turns a stream of token ids into text pieces, holding back bytes of an incomplete character.
#[derive(Default)]
pub struct StreamDecoder {
    pending: Vec<u8>,
}

impl StreamDecoder {
    /// Adds one token; returns the text that became complete (possibly empty).
    pub fn push(&mut self, tokenizer: &Tokenizer, id: u32) -> String {
        if tokenizer.is_control(id) {
            return String::new();
        }
        self.pending.extend_from_slice(tokenizer.token_bytes(id));
        self.take_complete()
    }

    fn take_complete(&mut self) -> String {
        match std::str::from_utf8(&self.pending) {
            Ok(s) => {
                let out = s.to_owned();
                self.pending.clear();
                out
            }
            Err(e) => {
                let valid = e.valid_up_to();
                if e.error_len().is_none() {
                    // The tail is the start of a character whose other bytes have not come yet.
                    let out = String::from_utf8_lossy(&self.pending[..valid]).into_owned();
                    self.pending.drain(..valid);
                    out
                } else {
                    // Invalid bytes will never become valid: replace them and move on.
                    let out = String::from_utf8_lossy(&self.pending).into_owned();
                    self.pending.clear();
                    out
                }
            }
        }
    }

    /// Whatever is left at the end of generation, with invalid bytes replaced.
    pub fn finish(&mut self) -> String {
        let out = String::from_utf8_lossy(&self.pending).into_owned();
        self.pending.clear();
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn byte_table_is_a_bijection() {
        let table = unicode_to_byte();
        assert_eq!(table.len(), 256);
        let mut seen = [false; 256];
        for b in table.values() {
            seen[*b as usize] = true;
        }
        assert!(seen.iter().all(|s| *s));
        assert_eq!(table[&'Ġ'], b' ');
        assert_eq!(table[&'Ċ'], b'\n');
        assert_eq!(table[&'a'], b'a');
    }

    #[test]
    fn stream_decoder_holds_back_split_characters() {
        let mut d = StreamDecoder::default();
        // "é" is C3 A9; feed the bytes one at a time.
        d.pending.push(0xC3);
        assert_eq!(d.take_complete(), "");
        d.pending.push(0xA9);
        assert_eq!(d.take_complete(), "é");
        d.pending.extend_from_slice(b"ok\xff");
        assert_eq!(d.take_complete(), "ok\u{fffd}");
    }
}
