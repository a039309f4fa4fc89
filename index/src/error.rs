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
    #[error("another cairn process is writing to the knowledge base at {} ({holder}); wait for it to finish (a `cairn add --watch` writes until it is stopped)", path.display())]
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
    /// The knowledge base is a pack's canonical copy, whose vectors are in its graph only.
    #[error("the knowledge base at {} is a pack's copy (its vectors are kept in its graph only), which cairn does not write to\nhint: add the documents to a knowledge base of your own, or install the pack and search it beside yours", path.display())]
    ReadOnlyCopy {
        /// The knowledge base.
        path: PathBuf,
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
    /// The file system holding the knowledge base is (nearly) full. Nothing after the last
    /// commit was written; the knowledge base keeps that commit.
    #[error("{}", disk_full_message(path, *available, *needed))]
    DiskFull {
        /// The knowledge base.
        path: PathBuf,
        /// Bytes free on its file system.
        available: u64,
        /// About what the write would have needed, when it was checked before writing.
        needed: Option<u64>,
    },
    /// The run was cancelled by the caller.
    #[error("cancelled")]
    Cancelled,
}

/// `Result` with this crate's [`Error`].
pub type Result<T> = std::result::Result<T, Error>;

fn mib(bytes: u64) -> String {
    format!("{:.1} MiB", bytes as f64 / f64::from(1u32 << 20))
}

fn disk_full_message(path: &std::path::Path, available: u64, needed: Option<u64>) -> String {
    let what = match needed {
        Some(n) => format!(
            "{} free, and the next commit needs about {}: stopped before writing it",
            mib(available),
            mib(n)
        ),
        None => format!(
            "the disk is full ({} free): the write was abandoned",
            mib(available)
        ),
    };
    format!(
        "not enough space for the knowledge base at {}: {what}; its last commit is intact\nhint: free some space and run `cairn add` again (committed files are not read again)",
        path.display()
    )
}

/// Whether an error's text is the operating system's "no space left on device" (ENOSPC,
/// `os error 28`), as redb and tantivy pass it on.
pub(crate) fn says_disk_full(message: &str) -> bool {
    message.contains("os error 28") || message.contains("No space left on device")
}
