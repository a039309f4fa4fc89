//! A pack large enough for a vector graph carries each vector once, in the graph, and an
//! installed pack still gives every chunk's vector: to search, to read, to export.

use std::fmt::Write as _;
use std::path::Path;

use cairn_index::{
    AddOptions, ChunkId, ChunkOptions, Embedder, EmbedderId, NoProgress, Reader, TokenCounter,
    Writer,
};
use cairn_ingest::{ReadOptions, WordCounter};

const DIM: usize = 16;

/// A vector from the text's bytes: the same text, the same vector.
struct Hashed;

impl Embedder for Hashed {
    fn id(&self) -> EmbedderId {
        EmbedderId {
            model: "hashed".into(),
            weights_sha256: "0".repeat(64),
            dim: DIM,
        }
    }
    fn counter(&self) -> &dyn TokenCounter {
        &WordCounter
    }
    fn embed(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>, String> {
        Ok(texts
            .iter()
            .map(|t| {
                let mut h = 0xcbf2_9ce4_8422_2325_u64;
                let mut v: Vec<f32> = (0..DIM)
                    .map(|_| {
                        for b in t.bytes() {
                            h = (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3);
                        }
                        (h >> 40) as f32 / (1u64 << 24) as f32 - 0.5
                    })
                    .collect();
                let n = v.iter().map(|x| x * x).sum::<f32>().sqrt();
                for x in &mut v {
                    *x /= n;
                }
                v
            })
            .collect())
    }
}

/// A knowledge base of `files` × 100 one-section chunks.
fn knowledge_base(dir: &Path, files: usize) -> std::path::PathBuf {
    let docs = dir.join("docs");
    std::fs::create_dir_all(&docs).unwrap();
    for f in 0..files {
        let mut text = String::new();
        for s in 0..100 {
            let i = f * 100 + s;
            let _ = write!(
                text,
                "# Section {i}\n\nword{} word{} word{}\n\n",
                i % 97,
                i % 13,
                i
            );
        }
        std::fs::write(docs.join(format!("f{f:03}.md")), text).unwrap();
    }
    let kb = dir.join("kb");
    let options = ChunkOptions {
        max_tokens: 200,
        overlap_tokens: 0,
        min_section_tokens: 1,
    };
    let mut w = Writer::open(&kb, &Hashed.id(), &options).unwrap();
    let cancel = || false;
    w.add(
        &[docs],
        &AddOptions {
            embedder: &Hashed,
            read: ReadOptions::default(),
            commit_every: 1000,
            batch: 256,
            cancel: &cancel,
        },
        &mut NoProgress,
    )
    .unwrap();
    kb
}

#[test]
fn an_installed_pack_gives_every_vector_from_its_graph_alone() {
    let tmp = tempfile::tempdir().unwrap();
    let kb = knowledge_base(tmp.path(), 22);
    let src = Reader::open(&kb).unwrap();
    let chunks = src.status().unwrap().chunks;
    assert!(chunks as usize > cairn_index::GRAPH_MIN_POINTS, "{chunks}");

    let file = tmp.path().join("big.cairnpack");
    let about = cairn_pack::About {
        name: "big".into(),
        version: "1.0.0".into(),
        title: "Big".into(),
        ..Default::default()
    };
    cairn_pack::build(&kb, &file, &about, 0, serde_json::Value::Null, false).unwrap();
    let installed = cairn_pack::install(
        &file,
        &tmp.path().join("packs"),
        &cairn_pack::InstallOptions {
            max_member: u64::MAX,
            allow_downgrade: false,
        },
    )
    .unwrap()
    .path;

    let pack = Reader::open(&installed).unwrap();
    assert_eq!(
        pack.manifest().format_version,
        cairn_index::GRAPH_VECTORS_FORMAT_VERSION
    );
    // The store's vectors would take chunks × DIM × 4 bytes and more: the pack has less
    // than the source's store and graph file together by at least that.
    let size = |dir: &Path| -> u64 {
        ["meta.redb", "vectors"]
            .iter()
            .map(|f| {
                let p = dir.join(f);
                if p.is_dir() {
                    std::fs::read_dir(&p)
                        .unwrap()
                        .filter_map(Result::ok)
                        .filter(|e| e.file_name().to_string_lossy().ends_with(".flat"))
                        .map(|e| e.metadata().unwrap().len())
                        .sum()
                } else {
                    std::fs::metadata(&p).unwrap().len()
                }
            })
            .sum()
    };
    assert!(
        size(&installed) + chunks * DIM as u64 * 4 <= size(&kb),
        "pack {} bytes, source {}",
        size(&installed),
        size(&kb)
    );

    // Every vector, as the source holds it; the same nearest chunks.
    for doc in src.documents().unwrap() {
        for &id in &doc.chunks {
            let id = ChunkId(id);
            let v = src.vector(id).unwrap().expect("the source has it");
            assert_eq!(pack.vector(id).unwrap(), Some(v), "{id:?}");
        }
    }
    let q = Hashed.embed(&["word5 word7 word42"]).unwrap().remove(0);
    assert_eq!(pack.dense(&q, 10).unwrap(), src.dense(&q, 10).unwrap());

    // Exported with its vectors, every chunk.
    let mut out = Vec::new();
    let n = cairn_pack::export_jsonl(&installed, "big", &mut out).unwrap();
    assert_eq!(n as u64, chunks);
    let first: serde_json::Value =
        serde_json::from_slice(out.split(|&b| b == b'\n').next().unwrap()).unwrap();
    let id = ChunkId(first["id"].as_u64().unwrap());
    let exported: Vec<f32> = serde_json::from_value(first["vector"].clone()).unwrap();
    assert_eq!(Some(exported), src.vector(id).unwrap());
}
