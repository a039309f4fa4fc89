//! Knowledge-base behaviour with a fake embedder (hashed bag of words): incremental adds,
//! removals, model fingerprints, snapshots, read-only opening. The real model is tested in the
//! binary's tests.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

use cairn_index::{
    AddOptions, ChunkOptions, Embedder, EmbedderId, Error, NoProgress, Reader, TokenCounter, Writer,
};
use cairn_ingest::{ReadOptions, WordCounter};

struct Fake {
    calls: AtomicUsize,
    texts: AtomicUsize,
    sha: String,
}

impl Fake {
    fn new(sha: &str) -> Self {
        Fake {
            calls: AtomicUsize::new(0),
            texts: AtomicUsize::new(0),
            sha: sha.into(),
        }
    }
}

impl Embedder for Fake {
    fn id(&self) -> EmbedderId {
        EmbedderId {
            model: "fake".into(),
            weights_sha256: self.sha.clone(),
            dim: 16,
        }
    }
    fn counter(&self) -> &dyn TokenCounter {
        &WordCounter
    }
    fn embed(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>, String> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        self.texts.fetch_add(texts.len(), Ordering::SeqCst);
        Ok(texts
            .iter()
            .map(|t| {
                let mut v = vec![0f32; 16];
                for w in t.split_whitespace() {
                    let h = w.bytes().fold(7u32, |h, b| {
                        h.wrapping_mul(31)
                            .wrapping_add(u32::from(b.to_ascii_lowercase()))
                    });
                    v[(h % 16) as usize] += 1.0;
                }
                let n = v.iter().map(|x| x * x).sum::<f32>().sqrt().max(1e-6);
                for x in &mut v {
                    *x /= n;
                }
                v
            })
            .collect())
    }
}

/// A writer with small chunks, so that a few sentences make several.
fn open_writer(kb: &Path, e: &Fake) -> Writer {
    Writer::open(
        kb,
        &e.id(),
        &ChunkOptions {
            max_tokens: 12,
            overlap_tokens: 0,
            min_section_tokens: 2,
        },
    )
    .unwrap()
}

fn add(kb: &Path, e: &Fake, paths: &[PathBuf]) -> cairn_index::AddReport {
    add_with(&mut open_writer(kb, e), e, paths, 4, 3)
}

/// Adds `paths` with a commit every `commit_every` chunks and `batch` texts per embedding call.
fn add_with(
    w: &mut Writer,
    e: &Fake,
    paths: &[PathBuf],
    commit_every: usize,
    batch: usize,
) -> cairn_index::AddReport {
    let never = || false;
    let opts = AddOptions {
        embedder: e,
        read: ReadOptions::default(),
        commit_every,
        batch,
        cancel: &never,
    };
    w.add(paths, &opts, &mut NoProgress).unwrap()
}

fn corpus(dir: &Path) -> PathBuf {
    let docs = dir.join("docs");
    std::fs::create_dir_all(docs.join("sub")).unwrap();
    std::fs::write(docs.join("a.md"), "# Alpha\n\nThe quick brown fox jumps over the lazy dog.\n\n## Beta\n\nPacked lunches are eaten at noon by the river.\n").unwrap();
    std::fs::write(
        docs.join("sub/b.txt"),
        "Zebras graze in the savanna. Lions rest in the shade of acacia trees.",
    )
    .unwrap();
    std::fs::write(docs.join("c.bin"), b"\0\0\0binary").unwrap();
    docs
}

#[test]
fn incremental_add_embeds_only_what_changed() {
    let tmp = tempfile::tempdir().unwrap();
    let docs = corpus(tmp.path());
    let kb = tmp.path().join("kb");
    let e = Fake::new("aaaa");
    let r1 = add(&kb, &e, std::slice::from_ref(&docs));
    assert_eq!((r1.added, r1.updated, r1.unchanged), (2, 0, 0));
    assert_eq!(r1.skipped.len(), 1, "{:?}", r1.skipped);
    assert!(
        r1.skipped[0].2.contains("docs/c.bin") && r1.skipped[0].1 == "unsupported",
        "{:?}",
        r1.skipped
    );
    let first = e.texts.load(Ordering::SeqCst);
    assert!(first >= 3);

    // Nothing changed: nothing embedded.
    let r2 = add(&kb, &e, std::slice::from_ref(&docs));
    assert_eq!(
        (r2.added, r2.updated, r2.unchanged, r2.chunks_embedded),
        (0, 0, 2, 0)
    );
    assert_eq!(e.texts.load(Ordering::SeqCst), first);

    // Edit one section of a.md: only the new text is embedded.
    std::fs::write(docs.join("a.md"), "# Alpha\n\nThe quick brown fox jumps over the lazy dog.\n\n## Beta\n\nPacked dinners are eaten at dusk by the sea.\n").unwrap();
    let r3 = add(&kb, &e, std::slice::from_ref(&docs));
    assert_eq!((r3.updated, r3.unchanged), (1, 1));
    assert_eq!(r3.chunks_embedded, 1, "only the changed chunk: {r3:?}");

    // Delete a file: it leaves the index.
    std::fs::remove_file(docs.join("sub/b.txt")).unwrap();
    let r4 = add(&kb, &e, std::slice::from_ref(&docs));
    assert_eq!(r4.removed, 1);
    let reader = Reader::open(&kb).unwrap();
    let keys: Vec<String> = reader
        .documents()
        .unwrap()
        .into_iter()
        .map(|d| d.key)
        .collect();
    assert_eq!(keys, ["docs/a.md"]);
    let hits = reader.bm25("zebras savanna", 5).unwrap();
    assert!(hits.is_empty(), "deleted text is not found: {hits:?}");
    let hits = reader.bm25("dinners dusk", 5).unwrap();
    let top = reader.chunk(hits[0].0).unwrap().unwrap();
    assert_eq!(top.doc, "docs/a.md");
    assert_eq!(top.heading, ["Alpha", "Beta"]);
    assert_eq!(top.lines, (5, 7), "from the heading line to the sentence");
    assert!(top.text.starts_with("## Beta"));
    let status = reader.status().unwrap();
    assert_eq!(status.skipped.len(), 1);
    assert!(status.bm25_in_sync);
}

#[test]
fn a_knowledge_base_inside_an_added_folder_is_not_indexed() {
    let tmp = tempfile::tempdir().unwrap();
    let docs = corpus(tmp.path());
    let kb = docs.join("kb");
    let e = Fake::new("aaaa");
    add(&kb, &e, std::slice::from_ref(&docs));
    // Again, now that the folder holds the store, the BM25 files and the lock file.
    let r = add(&kb, &e, std::slice::from_ref(&docs));
    assert_eq!((r.added, r.updated, r.unchanged), (0, 0, 2), "{r:?}");
    assert_eq!(r.skipped.len(), 1, "only c.bin: {:?}", r.skipped);
    let keys: Vec<String> = Reader::open(&kb)
        .unwrap()
        .documents()
        .unwrap()
        .into_iter()
        .map(|d| d.key)
        .collect();
    assert_eq!(keys, ["docs/a.md", "docs/sub/b.txt"]);
}

#[test]
fn a_word_and_its_short_form_find_each_other() {
    let tmp = tempfile::tempdir().unwrap();
    let docs = pages(
        tmp.path(),
        &[
            (
                "env.md",
                "Set CARGO_TARGET_DIR to move artifacts elsewhere.\n",
            ),
            ("out.md", "Artifacts land in the output directory.\n"),
            ("cfg.md", "The configuration file lists profiles.\n"),
        ],
    );
    let kb = tmp.path().join("kb");
    let e = Fake::new("aaaa");
    add(&kb, &e, std::slice::from_ref(&docs));
    let docs_for = |query: &str| bm25_docs(&kb, query);
    // "directory" finds the variable named with "DIR"; the passage with the word itself first.
    assert_eq!(docs_for("which directory"), ["docs/out.md", "docs/env.md"]);
    // And the other way round.
    assert_eq!(docs_for("target dir"), ["docs/env.md", "docs/out.md"]);
    assert_eq!(docs_for("config"), ["docs/cfg.md"]);
    // A short form does not stand for a word it merely begins.
    assert_eq!(docs_for("direct"), Vec::<String>::new());
}

#[test]
fn another_model_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let docs = corpus(tmp.path());
    let kb = tmp.path().join("kb");
    add(&kb, &Fake::new("aaaa"), std::slice::from_ref(&docs));
    let err = Writer::open(&kb, &Fake::new("bbbb").id(), &ChunkOptions::default())
        .err()
        .expect("must refuse");
    assert!(matches!(err, Error::EmbedderMismatch { .. }), "{err}");
    assert!(err.to_string().contains("rebuild"), "{err}");
}

#[test]
fn one_writer_at_a_time() {
    let tmp = tempfile::tempdir().unwrap();
    let e = Fake::new("aaaa");
    let kb = tmp.path().join("kb");
    let _w = Writer::open(&kb, &e.id(), &ChunkOptions::default()).unwrap();
    let err = Writer::open(&kb, &e.id(), &ChunkOptions::default())
        .err()
        .expect("locked");
    assert!(matches!(err, Error::Locked { .. }), "{err}");
    assert!(err.to_string().contains("pid"), "{err}");
}

#[test]
fn dense_search_finds_the_same_text_and_remove_forgets_it() {
    let tmp = tempfile::tempdir().unwrap();
    let docs = corpus(tmp.path());
    let kb = tmp.path().join("kb");
    let e = Fake::new("aaaa");
    add(&kb, &e, std::slice::from_ref(&docs));
    let q = e
        .embed(&["Zebras graze in the savanna."])
        .unwrap()
        .remove(0);
    {
        let reader = Reader::open(&kb).unwrap();
        let hits = reader.dense(&q, 3).unwrap();
        assert_eq!(
            reader.chunk(hits[0].0).unwrap().unwrap().doc,
            "docs/sub/b.txt"
        );
        assert!(hits[0].1 > 0.99);
    }
    let mut w = Writer::open(&kb, &e.id(), &ChunkOptions::default()).unwrap();
    let removed = w.remove("docs/sub").unwrap();
    assert_eq!(removed, ["docs/sub/b.txt"]);
    drop(w);
    let reader = Reader::open(&kb).unwrap();
    let hits = reader.dense(&q, 3).unwrap();
    assert!(hits
        .iter()
        .all(|h| reader.chunk(h.0).unwrap().unwrap().doc != "docs/sub/b.txt"));
}

#[test]
fn a_copied_knowledge_base_opens_read_only() {
    let tmp = tempfile::tempdir().unwrap();
    let docs = corpus(tmp.path());
    let kb = tmp.path().join("kb");
    add(&kb, &Fake::new("aaaa"), std::slice::from_ref(&docs));
    // Move it and make it read-only: it still answers.
    let moved = tmp.path().join("moved");
    std::fs::rename(&kb, &moved).unwrap();
    let mut stack = vec![moved.clone()];
    while let Some(p) = stack.pop() {
        if p.is_dir() {
            stack.extend(std::fs::read_dir(&p).unwrap().map(|e| e.unwrap().path()));
        }
        let mut perm = std::fs::metadata(&p).unwrap().permissions();
        perm.set_readonly(true);
        std::fs::set_permissions(&p, perm).unwrap();
    }
    let before = listing(&moved);
    let reader = Reader::open(&moved).unwrap();
    assert_eq!(reader.documents().unwrap().len(), 2);
    assert!(!reader.bm25("zebras", 3).unwrap().is_empty());
    drop(reader);
    assert_eq!(before, listing(&moved), "a reader writes nothing");
    // Let the temp dir clean up.
    let mut stack = vec![moved];
    while let Some(p) = stack.pop() {
        let mut perm = std::fs::metadata(&p).unwrap().permissions();
        #[allow(clippy::permissions_set_readonly_false)]
        perm.set_readonly(false);
        std::fs::set_permissions(&p, perm).unwrap();
        if p.is_dir() {
            stack.extend(std::fs::read_dir(&p).unwrap().map(|e| e.unwrap().path()));
        }
    }
}

/// Every file under `dir` with its size and modification time.
fn listing(dir: &Path) -> Vec<(PathBuf, u64, std::time::SystemTime)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_owned()];
    while let Some(p) = stack.pop() {
        let m = std::fs::metadata(&p).unwrap();
        if m.is_dir() {
            stack.extend(std::fs::read_dir(&p).unwrap().map(|e| e.unwrap().path()));
        } else {
            out.push((p, m.len(), m.modified().unwrap()));
        }
    }
    out.sort();
    out
}

#[test]
fn the_vector_graph_skips_removed_chunks_and_survives_reopening() {
    let tmp = tempfile::tempdir().unwrap();
    let docs = tmp.path().join("many");
    std::fs::create_dir_all(&docs).unwrap();
    // Three files of 1,100 one-paragraph chunks: enough for a graph (2,048+ vectors).
    for f in 0..3 {
        let mut text = String::new();
        for i in 0..1100 {
            let _ = write!(
                text,
                "w{f}x{i} a{} b{} c{} d e f g.\n\n",
                i % 37,
                i % 41,
                (i * 7 + f) % 43
            );
        }
        std::fs::write(docs.join(format!("f{f}.txt")), text).unwrap();
    }
    let kb = tmp.path().join("kb");
    let e = Fake::new("aaaa");
    add(&kb, &e, std::slice::from_ref(&docs));
    let probe = e.embed(&["w1x500 a19 b8 c1."]).unwrap().remove(0);
    {
        let reader = Reader::open(&kb).unwrap();
        let status = reader.status().unwrap();
        assert_eq!(status.chunks, 3300);
        assert!(reader.manifest().graph.is_some(), "a graph is built");
        let hits = reader.dense(&probe, 10).unwrap();
        assert!(hits
            .iter()
            .any(|h| reader.chunk(h.0).unwrap().unwrap().doc == "many/f1.txt"));
    }
    let mut w = Writer::open(&kb, &e.id(), &ChunkOptions::default()).unwrap();
    assert_eq!(w.remove("many/f1.txt").unwrap(), ["many/f1.txt"]);
    drop(w);
    let reader = Reader::open(&kb).unwrap();
    let graph = reader.manifest().graph.clone().expect("still a graph");
    assert_eq!(
        graph.points, 3300,
        "extended, not rebuilt: removed chunks are tombstones"
    );
    for q in ["w1x500 a19 b8 c1.", "w1x7 a7 b7 c8.", "w0x3 a3 b3 c21."] {
        let v = e.embed(&[q]).unwrap().remove(0);
        let hits = reader.dense(&v, 20).unwrap();
        assert_eq!(hits.len(), 20);
        for h in hits {
            let c = reader
                .chunk(h.0)
                .unwrap()
                .expect("every hit is a live chunk");
            assert_ne!(c.doc, "many/f1.txt");
        }
    }
}

#[test]
fn another_format_version_fails_with_a_rebuild_hint() {
    let tmp = tempfile::tempdir().unwrap();
    let docs = corpus(tmp.path());
    let kb = tmp.path().join("kb");
    add(&kb, &Fake::new("aaaa"), std::slice::from_ref(&docs));
    // Rewrite the manifest as a future version would.
    {
        let db = redb::Builder::new()
            .set_concurrency_mode(redb::ConcurrencyMode::SingleWriter)
            .open(kb.join("meta.redb"))
            .unwrap();
        let table: redb::TableDefinition<&str, &str> = redb::TableDefinition::new("manifest");
        let txn = db.begin_write().unwrap();
        {
            let mut t = txn.open_table(table).unwrap();
            let raw = redb::ReadableTable::get(&t, "manifest")
                .unwrap()
                .unwrap()
                .value()
                .to_owned();
            let mut m: serde_json::Value = serde_json::from_str(&raw).unwrap();
            m["format_version"] = serde_json::json!(cairn_index::GRAPH_VECTORS_FORMAT_VERSION + 1);
            t.insert("manifest", m.to_string().as_str()).unwrap();
        }
        txn.commit().unwrap();
    }
    let err = Reader::open(&kb)
        .err()
        .expect("a newer format must not be read");
    assert!(matches!(err, Error::FormatVersion { .. }), "{err}");
    assert!(err.to_string().contains("rebuild"), "{err}");
    let err = Writer::open(&kb, &Fake::new("aaaa").id(), &ChunkOptions::default())
        .err()
        .expect("nor written");
    assert!(matches!(err, Error::FormatVersion { .. }), "{err}");
}

/// Every file below `dir`, relative path and bytes, sorted (lock files left out).
fn tree(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_owned()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else if !p.to_string_lossy().ends_with(".lock") {
                let rel = p.strip_prefix(dir).unwrap().to_string_lossy().into_owned();
                out.push((rel, std::fs::read(&p).unwrap()));
            }
        }
    }
    out.sort();
    out
}

/// Documents enough for a vector graph (above `GRAPH_MIN_POINTS`): 220 files of 11 parts.
fn many_documents(docs: &Path) {
    std::fs::create_dir_all(docs).unwrap();
    for f in 0..220 {
        let mut text = String::new();
        for p in 0..11 {
            let _ = write!(text, "# Part {p}\n\n");
            for w in 0..9 {
                let _ = write!(text, "word{} ", (f * 131 + p * 17 + w * 7) % 997);
            }
            text.push_str("\n\n");
        }
        std::fs::write(docs.join(format!("f{f:03}.md")), text).unwrap();
    }
}

#[test]
fn a_deterministic_graph_is_the_same_graph_every_time() {
    let tmp = tempfile::tempdir().unwrap();
    let docs = tmp.path().join("docs");
    many_documents(&docs);
    let e = Fake::new("dddd");
    let graphs: Vec<Vec<(String, Vec<u8>)>> = (0..2)
        .map(|i| {
            let kb = tmp.path().join(format!("kb{i}"));
            let mut w = open_writer(&kb, &e);
            w.set_deterministic_graph(true);
            add_with(&mut w, &e, std::slice::from_ref(&docs), 4096, 64);
            drop(w);
            tree(&kb.join("vectors"))
                .into_iter()
                .filter(|f| f.0.contains(".hnsw."))
                .collect()
        })
        .collect();
    assert!(
        graphs[0].iter().any(|f| f.0.ends_with(".hnsw.graph")),
        "a graph was built: {:?}",
        graphs[0].iter().map(|f| &f.0).collect::<Vec<_>>()
    );
    assert_eq!(graphs[0].len(), graphs[1].len());
    for (x, y) in graphs[0].iter().zip(&graphs[1]) {
        assert_eq!(x.0, y.0);
        assert!(x.1 == y.1, "{} differs between two builds", x.0);
    }
}

#[test]
fn canonical_copies_of_the_same_documents_are_byte_identical() {
    let tmp = tempfile::tempdir().unwrap();
    let docs = tmp.path().join("docs");
    many_documents(&docs);
    let e = Fake::new("cccc");
    let options = ChunkOptions {
        max_tokens: 12,
        overlap_tokens: 0,
        min_section_tokens: 2,
    };
    // Two knowledge bases of the same documents with different histories: commits of
    // different sizes, and the second one's files touched in between.
    let mut kbs = Vec::new();
    for (i, commit_every) in [(0, 700), (1, 300)] {
        let kb = tmp.path().join(format!("kb{i}"));
        let mut w = Writer::open(&kb, &e.id(), &options).unwrap();
        add_with(&mut w, &e, std::slice::from_ref(&docs), commit_every, 64);
        drop(w);
        std::thread::sleep(std::time::Duration::from_millis(1100));
        for f in 0..5 {
            let p = docs.join(format!("f{f:03}.md"));
            let text = std::fs::read(&p).unwrap();
            std::fs::write(&p, text).unwrap();
        }
        kbs.push(kb);
    }
    let status = Reader::open(&kbs[0]).unwrap().status().unwrap();
    assert!(
        status.chunks as usize > cairn_index::GRAPH_MIN_POINTS,
        "{status:?}"
    );

    let copies: Vec<PathBuf> = kbs
        .iter()
        .enumerate()
        .map(|(i, kb)| {
            let out = tmp.path().join(format!("canonical{i}"));
            cairn_index::write_canonical(
                kb,
                &out,
                &cairn_index::CanonicalOptions {
                    committed_at: 0,
                    deterministic_graph: true,
                },
            )
            .unwrap();
            out
        })
        .collect();
    let (a, b) = (tree(&copies[0]), tree(&copies[1]));
    assert_eq!(
        a.iter().map(|f| &f.0).collect::<Vec<_>>(),
        b.iter().map(|f| &f.0).collect::<Vec<_>>()
    );
    assert!(
        a.iter().any(|f| f.0.ends_with(".hnsw.flat")),
        "a graph was built"
    );
    for (x, y) in a.iter().zip(&b) {
        assert!(x.1 == y.1, "{} differs between the two copies", x.0);
    }
    // The working knowledge bases themselves differ (commit times, segment names).
    assert_ne!(tree(&kbs[0]), tree(&kbs[1]));

    // The copy answers as its source does, and keeps no builder's path.
    let src = Reader::open(&kbs[0]).unwrap();
    let copy = Reader::open(&copies[0]).unwrap();
    assert_eq!(copy.status().unwrap().chunks, status.chunks);
    let q = e.embed(&["word5 word12 word19"]).unwrap().remove(0);
    assert!(
        (src.dense(&q, 5).unwrap()[0].1 - copy.dense(&q, 5).unwrap()[0].1).abs() < 1e-6,
        "the same best cosine"
    );
    // BM25 scores are the same; ties may come in another order (another segmentation).
    let (a, b) = (
        src.bm25("word5 word12", 5).unwrap(),
        copy.bm25("word5 word12", 5).unwrap(),
    );
    let scores = |hits: &[(cairn_index::ChunkId, f32)]| -> Vec<f32> {
        hits.iter().map(|h| (h.1 * 1e4).round()).collect()
    };
    assert_eq!(scores(&a), scores(&b));
    let store = std::fs::read(copies[0].join("meta.redb")).unwrap();
    let builder_path = tmp.path().to_string_lossy().into_owned();
    assert!(
        !store
            .windows(builder_path.len())
            .any(|w| w == builder_path.as_bytes()),
        "the builder's path is not in the copy"
    );

    // Without the deterministic graph, the source's mapped graph is copied as it is.
    let fast = tmp.path().join("fast");
    cairn_index::write_canonical(&kbs[0], &fast, &cairn_index::CanonicalOptions::default())
        .unwrap();
    let q = e.embed(&["word7 word8"]).unwrap().remove(0);
    assert_eq!(
        Reader::open(&fast).unwrap().dense(&q, 10).unwrap(),
        src.dense(&q, 10).unwrap()
    );

    // Each vector is kept once: in the copy's graph, not in its store as well. Every chunk's
    // vector is still there, as the source holds it.
    let store_bytes = |dir: &Path| std::fs::metadata(dir.join("meta.redb")).unwrap().len();
    let vector_bytes = status.chunks * 4 * e.id().dim as u64;
    for dir in [&copies[0], &fast] {
        let copy = Reader::open(dir).unwrap();
        assert_eq!(
            copy.manifest().format_version,
            cairn_index::GRAPH_VECTORS_FORMAT_VERSION
        );
        assert!(
            store_bytes(dir) + vector_bytes / 2 < store_bytes(&kbs[0]),
            "store {} bytes, the source's {}, vectors {vector_bytes}",
            store_bytes(dir),
            store_bytes(&kbs[0])
        );
        for doc in src.documents().unwrap() {
            for &id in &doc.chunks {
                let id = cairn_index::ChunkId(id);
                assert_eq!(copy.vector(id).unwrap(), src.vector(id).unwrap(), "{id:?}");
            }
        }
        // Nothing writes to it.
        let err = Writer::open(dir, &e.id(), &options).err().expect("refused");
        assert!(matches!(err, Error::ReadOnlyCopy { .. }), "{err}");
    }
    // A copy of such a copy (a pack made from an installed pack) takes the vectors from its
    // graph, and is the same copy again.
    let again = tmp.path().join("again");
    cairn_index::write_canonical(
        &copies[0],
        &again,
        &cairn_index::CanonicalOptions {
            committed_at: 0,
            deterministic_graph: true,
        },
    )
    .unwrap();
    assert!(
        tree(&again) == tree(&copies[0]),
        "a copy of the copy differs"
    );
}

#[test]
fn term_weights_are_rarer_for_words_fewer_chunks_hold() {
    let tmp = tempfile::tempdir().unwrap();
    let docs = corpus(tmp.path());
    let kb = tmp.path().join("kb");
    add(&kb, &Fake::new("aaaa"), std::slice::from_ref(&docs));
    let reader = Reader::open(&kb).unwrap();
    let weights = reader
        .term_weights("Zebras and the river, nowhere")
        .unwrap();
    let w = |t: &str| {
        weights
            .iter()
            .find(|(term, _)| term == t)
            .unwrap_or_else(|| panic!("{t} in {weights:?}"))
            .1
    };
    // Analysed as the index analyses: lowercased, stemmed, stop words out.
    assert_eq!(Reader::analyse("Zebras graze"), ["zebra", "graze"]);
    assert!(
        weights.iter().all(|(t, _)| t != "and" && t != "the"),
        "{weights:?}"
    );
    // A word no chunk holds weighs most; one chunk's word more than a common one would.
    assert!(w("nowher") > w("zebra"), "{weights:?}");
    assert!(w("zebra") > 0.0 && w("river") > 0.0);
}

/// Readers query while a writer commits in a loop (adding and changing files, a commit every 4
/// chunks): every snapshot a reader opens is whole — each hit's chunk is there, each chunk's
/// document lists it, and the documents' chunk counts add up to the status — and no query fails.
#[test]
fn readers_see_whole_commits_while_a_writer_commits_in_a_loop() {
    use std::sync::atomic::AtomicBool;

    let tmp = tempfile::tempdir().unwrap();
    let docs = tmp.path().join("docs");
    std::fs::create_dir_all(&docs).unwrap();
    std::fs::write(
        docs.join("seed.md"),
        "# Seed\n\nZebras graze in the savanna.\n",
    )
    .unwrap();
    let kb = tmp.path().join("kb");
    let e = Fake::new("aaaa");
    add(&kb, &e, std::slice::from_ref(&docs));

    let done = AtomicBool::new(false);
    let snapshots = AtomicUsize::new(0);
    std::thread::scope(|s| {
        s.spawn(|| {
            for round in 0..25 {
                let mut text = String::new();
                for i in 0..30 {
                    let _ = write!(text, "Round {round} line {i} zebras lions acacia. ");
                }
                std::fs::write(docs.join(format!("r{}.txt", round % 7)), &text).unwrap();
                add(&kb, &e, std::slice::from_ref(&docs));
            }
            done.store(true, Ordering::SeqCst);
        });
        for _ in 0..2 {
            s.spawn(|| {
                let q = e.embed(&["zebras lions acacia"]).unwrap().remove(0);
                while !done.load(Ordering::SeqCst) {
                    let reader = Reader::open(&kb).expect("a reader opens during commits");
                    let status = reader.status().unwrap();
                    let documents = reader.documents().unwrap();
                    let listed: usize = documents.iter().map(|d| d.chunks.len()).sum();
                    assert_eq!(
                        listed as u64, status.chunks as u64,
                        "documents and chunks agree"
                    );
                    let hits = reader.bm25("zebras lions", 10).unwrap();
                    let dense = reader.dense(&q, 10).unwrap();
                    for (id, _) in hits.iter().chain(&dense) {
                        let chunk = reader
                            .chunk(*id)
                            .unwrap()
                            .unwrap_or_else(|| panic!("hit {id:?} has no chunk: a torn read"));
                        let doc = reader.document(&chunk.doc).unwrap().expect("its document");
                        assert!(doc.chunks.contains(&id.0), "{} lists its chunk", chunk.doc);
                    }
                    snapshots.fetch_add(1, Ordering::SeqCst);
                }
            });
        }
    });
    assert!(
        snapshots.load(Ordering::SeqCst) > 10,
        "readers ran during the commits"
    );
}

#[test]
fn folders_of_one_name_are_told_apart_by_the_folders_above_them() {
    let tmp = tempfile::tempdir().unwrap();
    let mut dirs = Vec::new();
    for project in ["book", "reference", "guide"] {
        let src = tmp.path().join(project).join("src");
        std::fs::create_dir_all(&src).unwrap();
        std::fs::write(
            src.join(format!("{project}.md")),
            format!("# {project}\n\nAbout the {project}.\n"),
        )
        .unwrap();
        dirs.push(src);
    }
    let kb = tmp.path().join("kb");
    let e = Fake::new("aaaa");
    // Two added together are both named by their folders (one of them given twice); a third
    // later likewise.
    add(
        &kb,
        &e,
        &[dirs[0].clone(), dirs[1].clone(), dirs[0].clone()],
    );
    add(&kb, &e, &dirs[2..]);
    // The third, added alone, is not plain "src": that is how the other two names end.
    let w = open_writer(&kb, &e);
    let mut names: Vec<String> = w.sources().unwrap().into_iter().map(|s| s.name).collect();
    names.sort();
    assert_eq!(names, ["book/src", "guide/src", "reference/src"]);
    let sources = w.sources().unwrap();
    drop(w);
    let keys = doc_keys(&kb);
    assert_eq!(
        keys,
        [
            "book/src/book.md",
            "guide/src/guide.md",
            "reference/src/reference.md"
        ]
    );
    // Each key leads back to its file, and `remove` by key takes only its own.
    for (key, dir) in keys.iter().zip([&dirs[0], &dirs[2], &dirs[1]]) {
        let file = cairn_index::file_of(&sources, key).unwrap();
        assert!(
            file.starts_with(std::fs::canonicalize(dir).unwrap()),
            "{key}: {file:?}"
        );
    }
    let mut w = open_writer(&kb, &e);
    assert_eq!(w.remove("guide/src").unwrap(), ["guide/src/guide.md"]);
}

#[test]
fn a_name_that_is_taken_gets_the_folder_above_it() {
    let tmp = tempfile::tempdir().unwrap();
    let one = tmp.path().join("one/docs");
    let two = tmp.path().join("two/docs");
    for d in [&one, &two] {
        std::fs::create_dir_all(d).unwrap();
        std::fs::write(d.join("x.md"), "# X\n\nSome words here.\n").unwrap();
    }
    let kb = tmp.path().join("kb");
    let e = Fake::new("aaaa");
    // Given twice, a folder is not its own twin.
    add(&kb, &e, &[one.clone(), one.clone()]);
    add(&kb, &e, std::slice::from_ref(&two));
    let keys = doc_keys(&kb);
    assert_eq!(keys, ["docs/x.md", "two/docs/x.md"]);
}

#[test]
fn files_read_by_an_older_reader_are_read_again_and_counted_so() {
    use redb::ReadableTable as _;
    let tmp = tempfile::tempdir().unwrap();
    let docs = corpus(tmp.path());
    let kb = tmp.path().join("kb");
    let e = Fake::new("aaaa");
    add(&kb, &e, std::slice::from_ref(&docs));
    // As a knowledge base written before the Markdown reader changed holds them.
    {
        let db = redb::Database::open(kb.join(cairn_index::STORE_FILE)).unwrap();
        let table: redb::TableDefinition<&str, &str> = redb::TableDefinition::new("documents");
        let tx = db.begin_write().unwrap();
        {
            let mut t = tx.open_table(table).unwrap();
            let records: Vec<(String, String)> = t
                .iter()
                .unwrap()
                .map(|r| {
                    let (k, v) = r.unwrap();
                    (k.value().to_owned(), v.value().to_owned())
                })
                .collect();
            for (key, json) in records {
                let mut v: serde_json::Value = serde_json::from_str(&json).unwrap();
                if v["kind"] == "markdown" {
                    v["reader"] = serde_json::json!(1);
                    t.insert(key.as_str(), v.to_string().as_str()).unwrap();
                }
            }
        }
        tx.commit().unwrap();
    }
    let again = add(&kb, &e, std::slice::from_ref(&docs));
    assert_eq!(
        (again.updated, again.reread, again.unchanged),
        (1, 1, 1),
        "the Markdown file is read again, the text file is not"
    );
    // Read by the current reader now: nothing more to do.
    let third = add(&kb, &e, std::slice::from_ref(&docs));
    assert_eq!((third.updated, third.reread, third.unchanged), (0, 0, 2));
    // A changed file is updated, not counted as read again.
    std::fs::write(docs.join("a.md"), "# Alpha\n\nNew words entirely.\n").unwrap();
    let fourth = add(&kb, &e, std::slice::from_ref(&docs));
    assert_eq!((fourth.updated, fourth.reread), (1, 0));
}

/// The keys of a knowledge base's documents, sorted.
fn doc_keys(kb: &Path) -> Vec<String> {
    let mut keys: Vec<String> = Reader::open(kb)
        .unwrap()
        .documents()
        .unwrap()
        .into_iter()
        .map(|d| d.key)
        .collect();
    keys.sort();
    keys
}

/// A folder `docs` in `dir` holding `files` (name, text).
fn pages(dir: &Path, files: &[(&str, &str)]) -> PathBuf {
    let docs = dir.join("docs");
    std::fs::create_dir_all(&docs).unwrap();
    for (name, text) in files {
        std::fs::write(docs.join(name), text).unwrap();
    }
    docs
}

/// A knowledge base of three pages, two of which speak of operators by their symbols.
fn operators(dir: &Path) -> PathBuf {
    pages(
        dir,
        &[
            (
                "errors.md",
                "# Errors\n\nThe `?` operator returns the error early from the function.\n",
            ),
            (
                "never.md",
                "# Never\n\nThe `!` type has no values; the operator of a function that never \
                 returns.\n",
            ),
            (
                "ops.md",
                "# Operators\n\nAn operator computes on its operands.\n",
            ),
        ],
    )
}

fn bm25_docs(kb: &Path, query: &str) -> Vec<String> {
    let reader = Reader::open(kb).unwrap();
    reader
        .bm25(query, 5)
        .unwrap()
        .into_iter()
        .map(|(id, _)| reader.chunk(id).unwrap().unwrap().doc)
        .collect()
}

#[test]
fn an_operator_is_found_by_its_symbol() {
    let tmp = tempfile::tempdir().unwrap();
    let docs = operators(tmp.path());
    let kb = tmp.path().join("kb");
    let e = Fake::new("aaaa");
    add(&kb, &e, std::slice::from_ref(&docs));
    assert_eq!(
        bm25_docs(&kb, "What does the ? operator do?")[0],
        "docs/errors.md"
    );
    assert_eq!(
        bm25_docs(&kb, "What is the ! operator?")[0],
        "docs/never.md"
    );
    // Without a symbol of its own, the question's last mark is not one.
    assert_eq!(bm25_docs(&kb, "Which operator computes?")[0], "docs/ops.md");
}

#[test]
fn an_index_made_before_symbols_is_made_again_by_the_next_writer() {
    let tmp = tempfile::tempdir().unwrap();
    let docs = operators(tmp.path());
    let kb = tmp.path().join("kb");
    let e = Fake::new("aaaa");
    add(&kb, &e, std::slice::from_ref(&docs));
    // As an older cairn left it: the same fields but symbols, and (here) empty.
    let bm25 = kb.join("bm25");
    std::fs::remove_dir_all(&bm25).unwrap();
    std::fs::create_dir_all(&bm25).unwrap();
    {
        use tantivy::schema::{IndexRecordOption, NumericOptions, TextFieldIndexing, TextOptions};
        let mut b = tantivy::schema::Schema::builder();
        let text = TextOptions::default().set_indexing_options(
            TextFieldIndexing::default()
                .set_tokenizer("default")
                .set_index_option(IndexRecordOption::WithFreqsAndPositions),
        );
        b.add_u64_field(
            "chunk_id",
            NumericOptions::default()
                .set_indexed()
                .set_fast()
                .set_stored(),
        );
        b.add_text_field("text", text.clone());
        b.add_text_field("title", text);
        let index = tantivy::Index::create_in_dir(&bm25, b.build()).unwrap();
        let mut w: tantivy::IndexWriter = index.writer(15 << 20).unwrap();
        w.commit().unwrap();
    }
    // A reader opens it as it is: no symbols, nothing found by one.
    assert!(bm25_docs(&kb, "What does the ? operator do?").is_empty());
    // The next writer makes it again from the stored chunks, symbols and all.
    drop(open_writer(&kb, &e));
    assert_eq!(
        bm25_docs(&kb, "What does the ? operator do?")[0],
        "docs/errors.md"
    );
    assert_eq!(bm25_docs(&kb, "computes"), ["docs/ops.md"]);
    assert!(!kb.join("bm25.new").exists() && !kb.join("bm25.old").exists());
}
