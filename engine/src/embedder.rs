//! The pinned embedding model behind the index's [`Embedder`], and opening a knowledge base
//! with it.

use std::path::Path;

use cairn_generator::BertEmbedder;
use cairn_index::{ChunkOptions, Embedder, EmbedderId, Reader, TokenCounter};

use crate::{catalog, Error, Result};

/// The pinned embedding model (all-MiniLM-L6-v2), adapted to the index's [`Embedder`].
pub struct MiniLm {
    inner: BertEmbedder,
    id: EmbedderId,
    note: Option<String>,
}

impl MiniLm {
    /// Loads the verified `embedder` model from the models directory.
    ///
    /// The encoder runs on ONNX Runtime when its pinned library is installed (`cairn models
    /// pull` fetches it on Linux x86-64), else on the built-in forward pass: same weights, same
    /// vectors to float rounding, so one knowledge base takes either. `CAIRN_EMBED_RUNTIME`
    /// chooses: `auto` (the default), `onnxruntime` (required; an error without it) or
    /// `built-in`.
    pub fn load() -> Result<Self> {
        let weights = catalog::resolve_verified("embedder")?;
        let dir = weights.parent().unwrap_or(Path::new("."));
        let choice = std::env::var("CAIRN_EMBED_RUNTIME").unwrap_or_default();
        let mut note = None;
        let inner = match choice.as_str() {
            "built-in" | "builtin" => BertEmbedder::load(dir),
            "onnxruntime" => {
                let lib = catalog::resolve_verified("onnxruntime")?;
                BertEmbedder::load_with_runtime(dir, &lib, 0)
            }
            "" | "auto" => match catalog::resolve_verified("onnxruntime") {
                Ok(lib) => BertEmbedder::load_with_runtime(dir, &lib, 0).or_else(|e| {
                    note = Some(format!(
                        "ONNX Runtime did not load ({e}); using the built-in encoder"
                    ));
                    BertEmbedder::load(dir)
                }),
                Err(_) => BertEmbedder::load(dir),
            },
            other => {
                return Err(Error::Model(format!(
                    "CAIRN_EMBED_RUNTIME={other} is not one of auto, onnxruntime, built-in"
                )))
            }
        }
        .map_err(|source| Error::Load {
            what: format!("the embedder from {}", dir.display()),
            source,
        })?;
        let sha = catalog::lookup("embedder")?.files[0].sha256;
        Ok(MiniLm {
            id: EmbedderId {
                model: "all-MiniLM-L6-v2".into(),
                weights_sha256: sha.into(),
                dim: inner.dim(),
            },
            inner,
            note,
        })
    }

    /// The vocabulary id of `word` as one whole token (see [`BertEmbedder::token_id`]).
    #[must_use]
    pub fn word_id(&self, word: &str) -> Option<u32> {
        self.inner.token_id(word)
    }

    /// Which engine runs large jobs: `"built-in"` or `"onnxruntime"`.
    pub fn backend(&self) -> &'static str {
        self.inner.backend()
    }

    /// Which engine has embedded so far (see [`BertEmbedder::engine_used`]).
    pub fn engine_used(&self) -> &'static str {
        self.inner.engine_used()
    }

    /// Why the preferred runtime was not used, when it was not.
    pub fn note(&self) -> Option<&str> {
        self.note.as_deref()
    }
}

impl TokenCounter for MiniLm {
    fn token_ends(&self, text: &str) -> Vec<usize> {
        self.inner.token_ends(text)
    }
}

impl Embedder for MiniLm {
    fn id(&self) -> EmbedderId {
        self.id.clone()
    }
    fn counter(&self) -> &dyn TokenCounter {
        self
    }
    fn embed(&self, texts: &[&str]) -> std::result::Result<Vec<Vec<f32>>, String> {
        self.inner.embed(texts).map_err(|e| e.to_string())
    }
}

/// Chunker settings for new knowledge bases (the embedder takes 256 tokens with `[CLS]` and `[SEP]`).
#[must_use]
pub fn chunk_options() -> ChunkOptions {
    ChunkOptions {
        max_tokens: 200,
        overlap_tokens: 32,
        min_section_tokens: 24,
    }
}

/// Opens a knowledge base and loads its embedding model (checked to be the one it was built with).
pub fn open_for_search(kb: &Path) -> Result<(Reader, MiniLm)> {
    let reader = Reader::open(kb)?;
    let embedder = MiniLm::load()?;
    check_embedder(&reader, &embedder)?;
    Ok((reader, embedder))
}

/// Fails when `reader`'s knowledge base was embedded with another model than `embedder`.
pub fn check_embedder(reader: &Reader, embedder: &MiniLm) -> Result<()> {
    if reader.manifest().embedder != embedder.id() {
        return Err(Error::KnowledgeBase(format!(
            "the knowledge base was embedded with {}, the installed embedder is {}\nhint: rebuild it with `cairn add --rebuild PATH…`",
            reader.manifest().embedder,
            embedder.id()
        )));
    }
    Ok(())
}
