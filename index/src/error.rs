use std::path::PathBuf;

/// Everything that can go wrong opening, writing or reading a knowledge base.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A file of the knowledge base could not be read or written.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// There is no knowledge base at this path.
    #[error("no knowledge base at {} (create one with `cairn add`)", .0.display())]
    NotFound(PathBuf),
    /// Another process is writing to this knowledge base.
    #[error("another cairn process is writing to the knowledge base at {} ({holder}); wait for it to finish", path.display())]
    Locked {
        /// The knowledge base.
        path: PathBuf,
        /// Who holds the lock, as recorded in the lock file.
        holder: String,
    },
    /// The knowledge base was written by another format version.
    #[error("the knowledge base at {} has format version {found}, this cairn reads version {expected}; rebuild it (`cairn add --rebuild`)", path.display())]
    FormatVersion {
        /// The knowledge base.
        path: PathBuf,
        /// The version on disk.
        found: u32,
        /// The version this build reads and writes.
        expected: u32,
    },
    /// The vectors in the knowledge base come from another embedding model.
    #[error("the knowledge base at {} was embedded with {found}, not {expected}; vectors from different models cannot be mixed — rebuild it with `cairn add --rebuild`", path.display())]
    EmbedderMismatch {
        /// The knowledge base.
        path: PathBuf,
        /// The model id and weights hash on disk.
        found: String,
        /// The model id and weights hash in use.
        expected: String,
    },
    /// The embedding model failed.
    #[error("embedding failed: {0}")]
    Embed(String),
    /// The metadata store failed.
    #[error("metadata store {}: {message}", path.display())]
    Store {
        /// The store file.
        path: PathBuf,
        /// What redb said.
        message: String,
    },
    /// The BM25 index failed.
    #[error("BM25 index {}: {message}", path.display())]
    Bm25 {
        /// The index directory.
        path: PathBuf,
        /// What tantivy said.
        message: String,
    },
    /// A stored record could not be decoded: the store is damaged.
    #[error("damaged record in {}: {message}", path.display())]
    Corrupt {
        /// The store file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// The run was cancelled by the caller.
    #[error("cancelled")]
    Cancelled,
}

/// `Result` with this crate's [`Error`].
pub type Result<T> = std::result::Result<T, Error>;
