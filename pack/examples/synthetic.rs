//! The synthetic scale benchmark of issue #13, clearly synthetic: a knowledge base of N chunks of
//! generated text with pseudo-random unit vectors (no embedding model), built through the real
//! `Writer`, packed with the real pack writer, installed, then opened and queried through the
//! real `Reader` from the installed directory.
//!
//! ```sh
//! cargo run -p cairn-pack --example synthetic -- 1000000 /tmp/synthetic spectrum
//! ```
//!
//! Two kinds of vectors:
//! - `uniform`: uniformly random on the sphere in 384 dimensions, the worst case for a graph
//!   (no structure at all); queries are stored vectors plus noise.
//! - `spectrum`: Gaussian with a power-law spectrum (the variance of coordinate j falls as
//!   1/(j+1)), the shape of real sentence embeddings, whose variance is concentrated in their
//!   first principal components; queries are fresh draws from the same distribution, so their
//!   nearest neighbours are not near-copies of them.
//!
//! Prints the build, pack and install times and the pack's size, the time to open (mount), the
//! RSS after opening, the dense query latency p50/p95 over 200 queries, and recall@10 of the graph
//! against an exact scan of every vector (50 queries).

use std::fmt::Write as _;
use std::time::Instant;

use cairn_index::{
    AddOptions, ChunkId, ChunkOptions, Embedder, EmbedderId, NoProgress, Reader, TokenCounter,
    Writer,
};
use cairn_ingest::{ReadOptions, WordCounter};

const DIM: usize = 384;
const SECTIONS_PER_FILE: usize = 100;

/// A deterministic pseudo-random generator (splitmix64).
fn mix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

/// Which vectors to generate (see the module docs).
#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Uniform,
    Spectrum,
}

static KIND: std::sync::OnceLock<Kind> = std::sync::OnceLock::new();

fn uniform01(seed: u64, i: u64) -> f64 {
    ((mix(seed.wrapping_mul(1_000_003).wrapping_add(i)) >> 11) as f64 + 0.5) / (1u64 << 53) as f64
}

fn unit(seed: u64) -> Vec<f32> {
    let mut v: Vec<f32> = match KIND.get().copied().unwrap_or(Kind::Uniform) {
        Kind::Uniform => (0..DIM as u64)
            .map(|i| {
                (mix(seed.wrapping_mul(1_000_003).wrapping_add(i)) >> 40) as f32
                    / (1u64 << 24) as f32
                    - 0.5
            })
            .collect(),
        // Box–Muller normals, coordinate j scaled by 1/sqrt(j+1).
        Kind::Spectrum => (0..DIM as u64)
            .map(|j| {
                let (u1, u2) = (uniform01(seed, 2 * j), uniform01(seed, 2 * j + 1));
                let g = (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos();
                (g / ((j + 1) as f64).sqrt()) as f32
            })
            .collect(),
    };
    let n = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    for x in &mut v {
        *x /= n;
    }
    v
}

/// Vectors from the text's hash: the same text, the same vector.
struct Synthetic;

impl Embedder for Synthetic {
    fn id(&self) -> EmbedderId {
        EmbedderId {
            model: "synthetic".into(),
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
            .map(|t| unit(t.bytes().fold(7u64, |h, b| mix(h ^ u64::from(b)))))
            .collect())
    }
}

fn rss_mib() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok())
        })
        .map_or(0.0, |kib| kib / 1024.0)
}

fn percentile(xs: &mut [f64], q: f64) -> f64 {
    xs.sort_by(f64::total_cmp);
    xs[((xs.len() - 1) as f64 * q).round() as usize]
}

fn main() {
    let mut args = std::env::args().skip(1);
    let n: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(100_000);
    let dir = std::path::PathBuf::from(args.next().unwrap_or_else(|| "/tmp/synthetic".into()));
    let kind = match args.next().as_deref() {
        None | Some("uniform") => Kind::Uniform,
        Some("spectrum") => Kind::Spectrum,
        Some(other) => panic!("unknown kind {other:?}: uniform or spectrum"),
    };
    KIND.set(kind).ok();
    let docs = dir.join("docs");
    let built = dir.join("kb");
    let pack_file = dir.join("synthetic.cairnpack");
    let packs = dir.join("packs");
    if !built.exists() {
        let t0 = Instant::now();
        std::fs::create_dir_all(&docs).unwrap();
        let files = n.div_ceil(SECTIONS_PER_FILE);
        for f in 0..files {
            let mut text = String::new();
            for s in 0..SECTIONS_PER_FILE {
                let i = (f * SECTIONS_PER_FILE + s) as u64;
                let _ = write!(text, "# Section {i}\n\n");
                for w in 0..24 {
                    let _ = write!(text, "w{} ", mix(i * 31 + w) % 20_000);
                }
                text.push_str("\n\n");
            }
            std::fs::write(docs.join(format!("f{f:06}.md")), text).unwrap();
        }
        eprintln!(
            "generated {files} files in {:.1} s",
            t0.elapsed().as_secs_f64()
        );
        let t1 = Instant::now();
        let options = ChunkOptions {
            max_tokens: 200,
            overlap_tokens: 0,
            min_section_tokens: 1,
        };
        let mut w = Writer::open(&built, &Synthetic.id(), &options).unwrap();
        let cancel = || false;
        let report = w
            .add(
                std::slice::from_ref(&docs),
                &AddOptions {
                    embedder: &Synthetic,
                    read: ReadOptions::default(),
                    commit_every: 50_000,
                    batch: 4096,
                    cancel: &cancel,
                },
                &mut NoProgress,
            )
            .unwrap();
        println!(
            "built: {} chunks in {:.1} s (no embedding model; graph included)",
            report.chunks_written,
            t1.elapsed().as_secs_f64()
        );
    }
    if !pack_file.exists() {
        let t = Instant::now();
        let about = cairn_pack::About {
            name: "synthetic".into(),
            version: "1.0.0".into(),
            title: "Synthetic scale benchmark".into(),
            ..Default::default()
        };
        cairn_pack::build(
            &built,
            &pack_file,
            &about,
            0,
            serde_json::Value::Null,
            false,
        )
        .unwrap();
        let size = std::fs::metadata(&pack_file).unwrap().len();
        println!(
            "pack built from the knowledge base in {:.1} s: {:.0} MiB",
            t.elapsed().as_secs_f64(),
            size as f64 / f64::from(1 << 20)
        );
    }
    let t = Instant::now();
    let kb = cairn_pack::install(&pack_file, &packs, &no_limit())
        .unwrap()
        .path;
    println!(
        "installed (verified, then copied out) in {:.1} s",
        t.elapsed().as_secs_f64()
    );
    let before = rss_mib();
    let t = Instant::now();
    let reader = Reader::open(&kb).unwrap();
    let open_ms = t.elapsed().as_secs_f64() * 1e3;
    let after = rss_mib();
    let status = reader.status().unwrap();
    println!(
        "synthetic knowledge base: {} chunks, {:.0} MiB on disk",
        status.chunks,
        status.bytes as f64 / f64::from(1 << 20)
    );
    println!("open (mount): {open_ms:.1} ms; RSS {before:.0} MiB before, {after:.0} MiB after");
    // Every vector, for the exact answers.
    let mut all: Vec<(u64, Vec<f32>)> = Vec::new();
    for d in reader.documents().unwrap() {
        for id in d.chunks {
            if let Some(v) = reader.vector(ChunkId(id)).unwrap() {
                all.push((id, v));
            }
        }
    }
    let queries: Vec<Vec<f32>> = (0..200u64)
        .map(|q| {
            if kind == Kind::Spectrum {
                return unit(2_000_000_011 + q);
            }
            let base = &all[(mix(q) as usize) % all.len()].1;
            let noise = unit(1_000_000_007 + q);
            let mut v: Vec<f32> = base.iter().zip(&noise).map(|(a, b)| a + 0.5 * b).collect();
            let n = v.iter().map(|x| x * x).sum::<f32>().sqrt();
            for x in &mut v {
                *x /= n;
            }
            v
        })
        .collect();
    let mut times = Vec::new();
    let mut found = 0usize;
    for (i, q) in queries.iter().enumerate() {
        let t = Instant::now();
        let hits = reader.dense(q, 10).unwrap();
        times.push(t.elapsed().as_secs_f64() * 1e3);
        if i < 50 {
            let mut exact: Vec<(u64, f32)> = all
                .iter()
                .map(|(id, v)| (*id, v.iter().zip(q).map(|(a, b)| a * b).sum::<f32>()))
                .collect();
            exact.sort_by(|a, b| b.1.total_cmp(&a.1));
            let top: Vec<u64> = exact.iter().take(10).map(|x| x.0).collect();
            found += hits.iter().filter(|h| top.contains(&h.0 .0)).count();
        }
    }
    println!(
        "dense query (the graph, 200 queries): p50 {:.2} ms, p95 {:.2} ms; recall@10 against an exact scan (50 queries): {:.3}",
        percentile(&mut times.clone(), 0.5),
        percentile(&mut times, 0.95),
        found as f64 / 500.0
    );
}

fn no_limit() -> cairn_pack::InstallOptions {
    cairn_pack::InstallOptions {
        max_member: u64::MAX,
        ..Default::default()
    }
}
