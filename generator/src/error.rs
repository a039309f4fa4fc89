//! The generator's one error type.

use std::path::PathBuf;

/// Everything that can go wrong while loading or running a model.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The model file could not be opened or read.
    #[error("cannot read model file {path}")]
    Io {
        /// The file involved.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// The file is not a GGUF file cairn can use: a missing key, a wrong type, an unknown
    /// architecture.
    #[error("{path}: {reason}")]
    Format {
        /// The file involved.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// The model's architecture is not one cairn implements.
    #[error("{path}: architecture `{arch}` is not supported (supported: llama, qwen2)")]
    UnsupportedArchitecture {
        /// The file involved.
        path: PathBuf,
        /// The architecture named in the file.
        arch: String,
    },
    /// The tokenizer embedded in the GGUF could not be built.
    #[error("tokenizer: {0}")]
    Tokenizer(String),
    /// The chat template embedded in the GGUF could not be rendered.
    #[error("chat template: {0}")]
    Template(String),
    /// The prompt and the requested answer do not fit in the context window.
    #[error(
        "the prompt has {prompt_tokens} tokens and {max_tokens} more were requested for the answer, \
         but the context window holds {window} tokens"
    )]
    ContextOverflow {
        /// Tokens in the prompt.
        prompt_tokens: usize,
        /// Tokens reserved for the answer.
        max_tokens: usize,
        /// The context window in tokens.
        window: usize,
    },
    /// An empty prompt was given; a model needs at least one token to continue from.
    #[error("the prompt is empty")]
    EmptyPrompt,
    /// A token id outside the vocabulary was given.
    #[error("token id {id} is outside the vocabulary of {vocab} tokens")]
    BadToken {
        /// The offending id.
        id: u32,
        /// The vocabulary size.
        vocab: usize,
    },
    /// A branch was asked to start outside the tokens being run with it (a caller's mistake).
    #[error("a branch from position {fork} cannot run with {tokens} tokens from position {pos}")]
    BadFork {
        /// Where the tokens start.
        pos: usize,
        /// How many tokens there are.
        tokens: usize,
        /// Where the branch was to start.
        fork: usize,
    },
    /// A saved KV cache does not fit the loaded model.
    #[error("saved prompt cache: {0}")]
    BadCache(String),
    /// ONNX Runtime could not be loaded or failed to run the encoder.
    #[error("ONNX Runtime ({path}): {reason}")]
    Runtime {
        /// The runtime library involved.
        path: PathBuf,
        /// What went wrong.
        reason: String,
    },
    /// An error from the tensor library.
    #[error("tensor computation failed: {}", candle_message(.0))]
    Candle(#[from] candle_core::Error),
}

/// A tensor-library error as one message: candle appends a backtrace when `RUST_BACKTRACE` is
/// set, which belongs in a bug report, not in a message to the user.
pub(crate) fn candle_message(e: &candle_core::Error) -> String {
    let text = e.to_string();
    let frame = |l: &str| {
        let t = l.trim_start();
        t.split_once(": ")
            .is_some_and(|(n, _)| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
            && l.starts_with(' ')
    };
    let kept: Vec<&str> = text.lines().take_while(|l| !frame(l)).collect();
    kept.join("\n").trim_end().to_owned()
}

/// The generator's result type.
pub type Result<T> = std::result::Result<T, Error>;

#[cfg(test)]
mod tests {
    #[test]
    fn backtraces_are_cut_from_candle_messages() {
        let e = candle_core::Error::Msg("unsupported magic".into());
        assert_eq!(super::candle_message(&e), "unsupported magic");
        let with = candle_core::Error::WithBacktrace {
            inner: Box::new(candle_core::Error::Msg("unsupported magic".into())),
            backtrace: Box::new(std::backtrace::Backtrace::force_capture()),
        };
        assert_eq!(super::candle_message(&with), "unsupported magic");
    }
}
