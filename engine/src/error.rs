//! The engine's one error type.

use std::path::PathBuf;

/// What can go wrong opening a knowledge base, loading a model or answering. Messages name the
/// file involved and, where there is one, end with a `hint:` line saying what to do.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The knowledge base could not be opened or read.
    #[error(transparent)]
    Index(#[from] cairn_index::Error),
    /// Retrieval failed.
    #[error(transparent)]
    Retriever(#[from] cairn_retriever::Error),
    /// The generator failed while answering.
    #[error(transparent)]
    Generator(#[from] cairn_generator::Error),
    /// A model (or the embedder) could not be loaded.
    #[error("loading {what}: {source}")]
    Load {
        /// What was being loaded, with its path.
        what: String,
        /// Why it failed.
        source: cairn_generator::Error,
    },
    /// A file could not be read or written.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A model is unknown, not installed, corrupt, or could not be fetched.
    #[error("{0}")]
    Model(String),
    /// The knowledge base cannot serve this engine (built with another embedder, say).
    #[error("{0}")]
    KnowledgeBase(String),
    /// The question cannot be asked as given (empty, or no room left in the model's window).
    #[error("{0}")]
    Question(String),
}

/// `Result` with the engine's [`Error`].
pub type Result<T> = std::result::Result<T, Error>;
