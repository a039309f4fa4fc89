//! What the engine's tests share.

use std::path::Path;

use cairn_index::{AddOptions, Embedder, NoProgress, Writer};
use cairn_ingest::ReadOptions;

/// Makes a knowledge base at `kb` from the files in `docs`, embedded with `embedder`.
pub fn add_folder(docs: &Path, kb: &Path, embedder: &dyn Embedder) {
    let mut w = Writer::open(kb, &embedder.id(), &cairn_engine::chunk_options()).unwrap();
    let cancel = || false;
    w.add(
        &[docs.to_path_buf()],
        &AddOptions {
            embedder,
            read: ReadOptions::default(),
            commit_every: 64,
            batch: 16,
            cancel: &cancel,
        },
        &mut NoProgress,
    )
    .unwrap();
}
