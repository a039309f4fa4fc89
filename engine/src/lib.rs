//! cairn-engine: the one answer engine that the CLI, batch mode, `eval qa` and the TUI call.
//!
//! [`Engine`] holds what a question needs — the knowledge base snapshot, the embedder and the
//! loaded generator — and [`Engine::ask`] runs retrieval, the abstention gates, context
//! assembly, (quoted) generation and citation checking, pushing the answer as it is written to
//! an [`AnswerSink`]. [`AnswerStream`] turns those pieces into the text a user should see, with
//! verified citation markers after each finished sentence. [`catalog`] is the pinned model
//! catalog: ids, files, hashes, fetching and verifying.
//!
//! The design decision to know: the engine never formats for a screen and never prints. It
//! returns data ([`Answer`], with `to_json` for the stable schema) and calls a sink; the
//! binary writes text, the TUI turns the same calls into events.

pub mod answer;
pub mod batch;
pub mod catalog;
mod document;
mod embedder;
mod error;
pub mod prompt_cache;
pub mod stream;
pub mod text;

pub use answer::{
    answer, calibrated_self_check, marker, question_words, sampling, shelves, Abstain, Answer,
    AnswerSink, AskOptions, Engine, Gates, LoadedModel, PackReader, Quiet, RareWords, Retrieval,
    Retrieved, SelfCheck, Timings, ANSWER_SCHEMA_VERSION, MIN_COVERAGE, MIN_NAMED_COVERAGE,
    MIN_QUOTE_COVERAGE, MIN_RARE_COVERAGE, MIN_RELEVANCE, MIN_START_LOGPROB, REFUSAL_BIAS,
    SELF_CHECK, STOP_BIAS, UNSURE_START,
};
pub use document::{document_lines, lines_match_file, DocumentLines};
pub use embedder::{check_embedder, chunk_options, open_for_search, MiniLm};
pub use error::{Error, Result};
pub use stream::AnswerStream;

// The types an engine user meets, so that a face (the TUI) needs no lower crate of its own.
pub use cairn_index::{file_of, ChunkId, ChunkRecord, Source as KbSource};
pub use cairn_index::{
    read_manifest, AddOptions, AddProgress, AddReport, Embedder, FileOutcome, Reader, Writer,
};
pub use cairn_ingest::{is_fence, ReadOptions};
pub use cairn_retriever::{
    follow_up, following, ground, search_shelves, search_shelves_with, Citation, Claim, Context,
    Elsewhere, Excerpt, Fused, Fusion, Hit, LegHit, Mode, Retriever, SearchOptions, Shelf, Source,
};
