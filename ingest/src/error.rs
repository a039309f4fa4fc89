use std::path::PathBuf;

/// Why a file (or a whole run) could not be read. Every message names the file.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A path to watch could not be watched (`cairn add --watch`).
    #[error("{}: cannot watch for changes: {message}", path.display())]
    Watch {
        /// The path.
        path: PathBuf,
        /// What the operating system said, with a hint.
        message: String,
    },
    /// The file could not be opened or read.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// The file is larger than the configured limit.
    #[error("{}: {size} bytes is over the {limit}-byte limit for one file", path.display())]
    TooLarge {
        /// The file.
        path: PathBuf,
        /// Its size.
        size: u64,
        /// The limit.
        limit: u64,
    },
    /// The file's text, once read, is over the configured limit.
    #[error("{}: {size} bytes of text is over the {limit}-byte limit of text per file", path.display())]
    TooMuchText {
        /// The file.
        path: PathBuf,
        /// Its text's size.
        size: usize,
        /// The limit.
        limit: usize,
    },
    /// A PDF's compressed streams expand past the configured limit (a "zip bomb").
    #[error("{}: its compressed streams expand to more than {limit} bytes, the limit per PDF", path.display())]
    TooMuchDecompressed {
        /// The file.
        path: PathBuf,
        /// The limit.
        limit: u64,
    },
    /// The file holds binary data (NUL bytes), not text.
    #[error("{}: binary file (not text)", path.display())]
    Binary {
        /// The file.
        path: PathBuf,
    },
    /// A type cairn does not read (images, archives, office files…).
    #[error("{}: unsupported file type{}", path.display(), if ext.is_empty() { String::new() } else { format!(" (.{ext})") })]
    Unsupported {
        /// The file.
        path: PathBuf,
        /// Its extension, lowercase.
        ext: String,
    },
    /// The PDF is encrypted and does not open with an empty password.
    #[error("{}: encrypted PDF (a password is needed)", path.display())]
    Encrypted {
        /// The file.
        path: PathBuf,
    },
    /// The PDF could not be parsed at all.
    #[error("{}: not a readable PDF: {message}", path.display())]
    BadPdf {
        /// The file.
        path: PathBuf,
        /// What the parser said.
        message: String,
    },
    /// The HTML nests elements deeper than the limit (an HTML parser's work grows with the
    /// square of the depth: 100,000 levels take it half a minute).
    #[error("{}: HTML nested {depth} elements deep, over the limit of {limit}", path.display())]
    TooDeep {
        /// The file.
        path: PathBuf,
        /// The depth found (counting start and end tags).
        depth: usize,
        /// The limit.
        limit: usize,
    },
    /// Nothing to index: the file is empty, or every PDF page is empty or image-only.
    #[error("{}: no text{}", path.display(), if *pages > 0 { format!(" on any of its {pages} pages (scanned or image-only?)") } else { String::new() })]
    NoText {
        /// The file.
        path: PathBuf,
        /// The number of PDF pages, 0 for other files.
        pages: u32,
    },
}

impl Error {
    /// A short, stable name of the reason, for summaries and JSON (`binary`, `too-large`, …).
    #[must_use]
    pub fn reason(&self) -> &'static str {
        match self {
            Error::Io { .. } => "unreadable",
            Error::Watch { .. } => "unwatchable",
            Error::TooLarge { .. } => "too-large",
            Error::TooMuchText { .. } => "too-much-text",
            Error::TooMuchDecompressed { .. } => "decompression-limit",
            Error::Binary { .. } => "binary",
            Error::Unsupported { .. } => "unsupported",
            Error::Encrypted { .. } => "encrypted",
            Error::BadPdf { .. } => "bad-pdf",
            Error::TooDeep { .. } => "too-deep",
            Error::NoText { .. } => "no-text",
        }
    }
}

/// `Result` with this crate's [`Error`].
pub type Result<T> = std::result::Result<T, Error>;
