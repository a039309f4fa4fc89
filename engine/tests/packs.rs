//! Packs searched beside a knowledge base: one ranking, hits naming their pack, and a pack made
//! with another embedding model refused unless it is to be searched by keywords only. Uses the
//! real embedder (the tests' models are fetched first).

mod common;

use std::path::Path;

use cairn_engine::{MiniLm, PackReader, SearchOptions};
use cairn_index::{Embedder, EmbedderId, TokenCounter};
use cairn_ingest::WordCounter;

/// Any other embedding model: a hashed bag of words.
struct Other;

impl Embedder for Other {
    fn id(&self) -> EmbedderId {
        EmbedderId {
            model: "other".into(),
            weights_sha256: "1".repeat(64),
            dim: 8,
        }
    }
    fn counter(&self) -> &dyn TokenCounter {
        &WordCounter
    }
    fn embed(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>, String> {
        Ok(texts
            .iter()
            .map(|t| {
                let mut v = vec![0.1f32; 8];
                v[t.len() % 8] = 1.0;
                v
            })
            .collect())
    }
}

fn kb(dir: &Path, name: &str, text: &str, embedder: &dyn Embedder) -> std::path::PathBuf {
    let docs = dir.join(format!("{name}-docs"));
    std::fs::create_dir_all(&docs).unwrap();
    std::fs::write(docs.join(format!("{name}.md")), text).unwrap();
    let kb = dir.join(name);
    common::add_folder(&docs, &kb, embedder);
    kb
}

/// The user's own knowledge base and one installed pack, searched together.
fn beside<'a>(
    reader: &'a cairn_index::Reader,
    pack: &'a PackReader,
) -> [cairn_engine::Shelf<'a>; 2] {
    [
        cairn_engine::Shelf {
            label: None,
            reader,
            bm25_only: false,
        },
        cairn_engine::Shelf {
            label: Some(pack.label.clone()),
            reader: &pack.reader,
            bm25_only: false,
        },
    ]
}

#[test]
fn packs_join_one_ranking_and_a_mismatched_one_is_refused_or_keyword_only() {
    let dir = tempfile::tempdir().unwrap();
    let minilm = MiniLm::load().unwrap();
    let mine = kb(
        dir.path(),
        "mine",
        "# Garden\n\nTomatoes need six hours of sun.\n",
        &minilm,
    );
    let pumps = kb(
        dir.path(),
        "pumps",
        "# Pumps\n\nThe Orvane pump must be primed with 3 litres of glycol.\n",
        &minilm,
    );
    let other = kb(
        dir.path(),
        "other",
        "# Glycol\n\nGlycol is an antifreeze.\n",
        &Other,
    );

    let reader = cairn_index::Reader::open(&mine).unwrap();
    let pack = PackReader::open("pack:pumps@1.0.0".into(), &pumps, &minilm, false).unwrap();
    assert!(!pack.bm25_only);
    let shelves = beside(&reader, &pack);
    let hits = cairn_engine::search_shelves(
        &shelves,
        &minilm,
        "how much glycol primes the pump",
        &SearchOptions {
            k: 2,
            ..SearchOptions::default()
        },
    )
    .unwrap();
    assert_eq!(
        hits[0].chunk.doc, "[pack:pumps@1.0.0] pumps-docs/pumps.md",
        "{hits:?}"
    );
    assert_eq!(hits[1].chunk.doc, "mine-docs/mine.md");
    assert_eq!((hits[0].rank, hits[1].rank), (1, 2));

    let e = PackReader::open("pack:other@1.0.0".into(), &other, &minilm, false)
        .err()
        .expect("refused");
    assert!(e.to_string().contains("--bm25-only-mismatched"), "{e}");
    let keywords = PackReader::open("pack:other@1.0.0".into(), &other, &minilm, true).unwrap();
    assert!(keywords.bm25_only);
    let hits = cairn_engine::search_shelves(
        &[cairn_engine::Shelf {
            label: Some(keywords.label.clone()),
            reader: &keywords.reader,
            bm25_only: true,
        }],
        &minilm,
        "glycol antifreeze",
        &SearchOptions::default(),
    )
    .unwrap();
    assert_eq!(hits[0].chunk.doc, "[pack:other@1.0.0] other-docs/other.md");
    assert!(hits[0].fused.dense.is_none(), "keywords only");
}

#[test]
fn the_same_text_in_a_pack_and_the_knowledge_base_is_one_hit_naming_both() {
    let dir = tempfile::tempdir().unwrap();
    let minilm = MiniLm::load().unwrap();
    let text = "The Orvane pump must be primed with 3 litres of glycol before its first start, \
        and again after every winter in which it stood dry for more than a month.";
    let mine = kb(
        dir.path(),
        "mine",
        &format!("# Notes\n\n{text}\n\n## Garden\n\nTomatoes need six hours of sun.\n"),
        &minilm,
    );
    // The pack's copy of the manual: its own heading and line breaks.
    let pumps = kb(
        dir.path(),
        "pumps",
        &format!("# Pump manual\n\n{}\n", text.replace(", and", ",\nand")),
        &minilm,
    );
    let reader = cairn_index::Reader::open(&mine).unwrap();
    let pack = PackReader::open("pack:pumps@1.0.0".into(), &pumps, &minilm, false).unwrap();
    let shelves = beside(&reader, &pack);
    let search = |fold: Option<f32>| {
        cairn_engine::search_shelves(
            &shelves,
            &minilm,
            "how much glycol primes the Orvane pump",
            &SearchOptions {
                k: 3,
                fold_duplicates: fold,
                ..SearchOptions::default()
            },
        )
        .unwrap()
    };
    let kept = search(None);
    let docs: Vec<&str> = kept.iter().map(|h| h.chunk.doc.as_str()).collect();
    assert!(
        docs.contains(&"[pack:pumps@1.0.0] pumps-docs/pumps.md"),
        "{docs:?}"
    );
    assert!(docs.contains(&"mine-docs/mine.md"), "{docs:?}");
    assert!(kept.iter().all(|h| h.also.is_empty()));

    let folded = search(Some(0.5));
    let glycol: Vec<_> = folded
        .iter()
        .filter(|h| h.chunk.text.contains("glycol"))
        .collect();
    assert_eq!(glycol.len(), 1, "{folded:?}");
    let other = if glycol[0].chunk.doc.starts_with("[pack:") {
        "mine-docs/mine.md"
    } else {
        "[pack:pumps@1.0.0] pumps-docs/pumps.md"
    };
    assert_eq!(glycol[0].also.len(), 1);
    assert_eq!(glycol[0].also[0].doc, other);
    assert_eq!(glycol[0].rank, 1);
}

#[test]
fn the_chunks_after_a_hit_come_from_its_own_shelf_in_text_order() {
    let dir = tempfile::tempdir().unwrap();
    let minilm = MiniLm::load().unwrap();
    let para = |i: usize| {
        format!("Step {i} of the pump manual. Check the seal number {i} before priming.\n\n")
    };
    let long: String = (1..=200).map(para).collect();
    let mine = kb(
        dir.path(),
        "mine",
        "# Garden\n\nTomatoes need sun.\n",
        &minilm,
    );
    let pumps = kb(dir.path(), "pumps", &format!("# Pumps\n\n{long}"), &minilm);
    let reader = cairn_index::Reader::open(&mine).unwrap();
    let pack = PackReader::open("pack:pumps@1.0.0".into(), &pumps, &minilm, false).unwrap();
    let shelves = beside(&reader, &pack);
    // The best keyword hit for a query, over both shelves.
    let best = |query: &str| {
        let options = SearchOptions {
            mode: cairn_engine::Mode::Bm25,
            k: 1,
            ..SearchOptions::default()
        };
        let mut hits = cairn_engine::search_shelves(&shelves, &minilm, query, &options).unwrap();
        hits.remove(0)
    };
    let hit = &best("seal number 7");
    assert!(hit.chunk.text.contains("seal number 7 "), "{hit:?}");
    let next = cairn_engine::following(&shelves, hit.fused.id, 2).unwrap();
    assert_eq!(next.len(), 2);
    let mut end = hit.chunk.range.1;
    for (id, chunk) in &next {
        assert_eq!(chunk.doc, hit.chunk.doc, "labelled as the hit");
        assert!(
            chunk.range.0 < end + 4 && chunk.range.1 > end,
            "{chunk:?} after {end}"
        );
        end = chunk.range.1;
        // Numbered as the search numbers that shelf's hits: the chunk can be followed on.
        assert_eq!(id.0 >> 48, hit.fused.id.0 >> 48);
    }
    let last = cairn_engine::following(&shelves, next[1].0, 1).unwrap();
    assert!(last[0].1.range.1 > end);
    // The user's own one-chunk document has nothing after it.
    let own = best("tomatoes");
    assert_eq!(own.chunk.doc, "mine-docs/mine.md");
    assert!(cairn_engine::following(&shelves, own.fused.id, 2)
        .unwrap()
        .is_empty());
}
