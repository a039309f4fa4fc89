//! `cairn eval beir`: retrieval quality on a BEIR-format dataset, through the real ingest path.

use std::collections::HashMap;
use std::io::{BufRead, IsTerminal, Write};
use std::path::Path;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use cairn_index::{AddOptions, ChunkId, Embedder, NoProgress, Reader, Writer};
use cairn_ingest::ReadOptions;
use cairn_retriever::metrics::{mrr_at, ndcg_at, recall_at};
use cairn_retriever::{fuse, Fusion};

use cairn_engine::{chunk_options, MiniLm};

/// A fused-list recipe evaluated side by side with the legs.
#[derive(Clone, Copy)]
struct Method {
    name: &'static str,
    fusion: Option<Fusion>,
    /// 0 = BM25 only, 1 = dense only.
    weight: f32,
}

const METHODS: &[Method] = &[
    Method {
        name: "bm25",
        fusion: None,
        weight: 0.0,
    },
    Method {
        name: "dense",
        fusion: None,
        weight: 1.0,
    },
    Method {
        name: "rrf w=0.3",
        fusion: Some(Fusion::Rrf { k: 60.0 }),
        weight: 0.3,
    },
    Method {
        name: "rrf w=0.5",
        fusion: Some(Fusion::Rrf { k: 60.0 }),
        weight: 0.5,
    },
    Method {
        name: "rrf w=0.7",
        fusion: Some(Fusion::Rrf { k: 60.0 }),
        weight: 0.7,
    },
    Method {
        name: "score w=0.3",
        fusion: Some(Fusion::Score),
        weight: 0.3,
    },
    Method {
        name: "score w=0.4",
        fusion: Some(Fusion::Score),
        weight: 0.4,
    },
    Method {
        name: "score w=0.5",
        fusion: Some(Fusion::Score),
        weight: 0.5,
    },
    Method {
        name: "score w=0.6",
        fusion: Some(Fusion::Score),
        weight: 0.6,
    },
    Method {
        name: "score w=0.7",
        fusion: Some(Fusion::Score),
        weight: 0.7,
    },
];

#[derive(Clone, Copy, Default)]
struct Scores {
    ndcg10: f64,
    recall10: f64,
    recall100: f64,
    mrr10: f64,
}

fn read_jsonl(path: &Path) -> Result<Vec<serde_json::Value>> {
    let f = std::fs::File::open(path).with_context(|| format!("opening {}", path.display()))?;
    let mut out = Vec::new();
    for (i, line) in std::io::BufReader::new(f).lines().enumerate() {
        let line = line.with_context(|| format!("reading {}", path.display()))?;
        if line.trim().is_empty() {
            continue;
        }
        out.push(
            serde_json::from_str(&line)
                .with_context(|| format!("{}:{}: not JSON", path.display(), i + 1))?,
        );
    }
    Ok(out)
}

/// Characters safe in a file name; other characters become `_` plus their code.
fn file_stem(id: &str) -> String {
    id.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '.' {
                c.to_string()
            } else {
                format!("_{:x}", c as u32)
            }
        })
        .collect()
}

pub fn beir(
    dir: &Path,
    split: &str,
    limit: Option<usize>,
    json: bool,
    keep: Option<&Path>,
) -> Result<()> {
    let corpus = read_jsonl(&dir.join("corpus.jsonl"))?;
    let queries = read_jsonl(&dir.join("queries.jsonl"))?;
    let qrels_path = dir.join("qrels").join(format!("{split}.tsv"));
    let qrels_text = std::fs::read_to_string(&qrels_path)
        .with_context(|| format!("reading {}", qrels_path.display()))?;
    let mut qrels: HashMap<String, HashMap<String, u32>> = HashMap::new();
    for line in qrels_text.lines().skip(1) {
        let cols: Vec<&str> = line.split('\t').collect();
        if cols.len() >= 3 {
            qrels
                .entry(cols[0].to_owned())
                .or_default()
                .insert(cols[1].to_owned(), cols[2].trim().parse().unwrap_or(0));
        }
    }
    let mut qs: Vec<(String, String)> = queries
        .iter()
        .filter_map(|q| {
            Some((
                q["_id"].as_str()?.to_owned(),
                q["text"].as_str()?.to_owned(),
            ))
        })
        .filter(|(id, _)| qrels.contains_key(id))
        .collect();
    if let Some(n) = limit {
        qs.truncate(n);
    }
    if qs.is_empty() {
        bail!(
            "no queries of {} have judgements in {}",
            dir.display(),
            qrels_path.display()
        );
    }

    let tmp = tempfile::tempdir()?;
    let work = keep.unwrap_or(tmp.path());
    let docs_dir = work.join("corpus");
    std::fs::create_dir_all(&docs_dir)?;
    let mut by_key: HashMap<String, String> = HashMap::new();
    for d in &corpus {
        let id = d["_id"].as_str().context("corpus line without _id")?;
        let title = d["title"].as_str().unwrap_or("").trim();
        let text = d["text"].as_str().unwrap_or("");
        let stem = file_stem(id);
        let body = if title.is_empty() {
            format!("{text}\n")
        } else {
            format!("# {title}\n\n{text}\n")
        };
        std::fs::write(docs_dir.join(format!("{stem}.md")), body)?;
        by_key.insert(format!("corpus/{stem}.md"), id.to_owned());
    }
    let embedder = MiniLm::load()?;
    let kb = work.join("kb");
    let t0 = Instant::now();
    {
        if std::io::stderr().is_terminal() {
            eprintln!("indexing {} documents…", corpus.len());
        }
        let (_writer, report) = index_folder(&docs_dir, &kb, &embedder)?;
        if !report.skipped.is_empty() {
            eprintln!(
                "warning: {} corpus documents skipped (first: {})",
                report.skipped.len(),
                report.skipped[0].2
            );
        }
    }
    let index_secs = t0.elapsed().as_secs_f64();
    let reader = Reader::open(&kb)?;
    let chunks = reader.status()?.chunks;

    let t1 = Instant::now();
    let texts: Vec<&str> = qs.iter().map(|(_, t)| t.as_str()).collect();
    let mut vectors = Vec::with_capacity(texts.len());
    for batch in texts.chunks(32) {
        vectors.extend(embedder.embed(batch).map_err(anyhow::Error::msg)?);
    }
    let embed_secs = t1.elapsed().as_secs_f64();

    let candidates = 300;
    // Chunk → corpus document id, read from the store once per chunk for the whole run.
    let mut docs: HashMap<ChunkId, String> = HashMap::new();
    // per method, per query
    let mut per_query: Vec<Vec<Scores>> = vec![Vec::with_capacity(qs.len()); METHODS.len()];
    let mut latencies = Vec::with_capacity(qs.len());
    for ((qid, text), vector) in qs.iter().zip(&vectors) {
        let t = Instant::now();
        let bm25 = reader.bm25(text, candidates)?;
        let dense = reader.dense(vector, candidates)?;
        latencies.push(t.elapsed().as_secs_f64() * 1e3);
        let rel = &qrels[qid];
        for &(id, _) in bm25.iter().chain(&dense) {
            if let std::collections::hash_map::Entry::Vacant(e) = docs.entry(id) {
                let c = reader.chunk(id)?.context("a hit without its chunk")?;
                e.insert(by_key.get(&c.doc).cloned().unwrap_or(c.doc));
            }
        }
        for (mi, m) in METHODS.iter().enumerate() {
            let fused = match m.fusion {
                None if m.weight == 0.0 => fuse(&bm25, &[], Fusion::Score, 0.0),
                None => fuse(&[], &dense, Fusion::Score, 1.0),
                Some(f) => fuse(&bm25, &dense, f, m.weight),
            };
            // Chunks to documents: a document ranks where its best chunk does.
            let mut ranked: Vec<String> = Vec::with_capacity(100);
            for f in fused {
                let d = &docs[&f.id];
                if !ranked.contains(d) {
                    ranked.push(d.clone());
                    if ranked.len() == 100 {
                        break;
                    }
                }
            }
            per_query[mi].push(Scores {
                ndcg10: ndcg_at(&ranked, rel, 10),
                recall10: recall_at(&ranked, rel, 10),
                recall100: recall_at(&ranked, rel, 100),
                mrr10: mrr_at(&ranked, rel, 10),
            });
        }
    }
    let mean = |v: &[Scores], pick: &dyn Fn(usize) -> bool| {
        let sel: Vec<&Scores> = v
            .iter()
            .enumerate()
            .filter(|(i, _)| pick(*i))
            .map(|(_, s)| s)
            .collect();
        let n = sel.len().max(1) as f64;
        Scores {
            ndcg10: sel.iter().map(|s| s.ndcg10).sum::<f64>() / n,
            recall10: sel.iter().map(|s| s.recall10).sum::<f64>() / n,
            recall100: sel.iter().map(|s| s.recall100).sum::<f64>() / n,
            mrr10: sel.iter().map(|s| s.mrr10).sum::<f64>() / n,
        }
    };
    let all: Vec<Scores> = per_query.iter().map(|v| mean(v, &|_| true)).collect();
    let calib: Vec<Scores> = per_query.iter().map(|v| mean(v, &|i| i % 2 == 0)).collect();
    let check: Vec<Scores> = per_query.iter().map(|v| mean(v, &|i| i % 2 == 1)).collect();
    let best = (2..METHODS.len())
        .max_by(|&a, &b| calib[a].ndcg10.total_cmp(&calib[b].ndcg10))
        .expect("fusion methods exist");
    let (lat50, lat95) = (
        percentile(&mut latencies, 0.5),
        percentile(&mut latencies, 0.95),
    );

    let mut out = std::io::stdout().lock();
    if json {
        let rows: Vec<_> = METHODS
            .iter()
            .enumerate()
            .map(|(i, m)| {
                serde_json::json!({"method": m.name, "ndcg@10": all[i].ndcg10, "recall@10": all[i].recall10, "recall@100": all[i].recall100, "mrr@10": all[i].mrr10,
                    "calibration_ndcg@10": calib[i].ndcg10, "check_ndcg@10": check[i].ndcg10})
            })
            .collect();
        let v = serde_json::json!({
            "dataset": dir, "split": split, "queries": qs.len(), "documents": corpus.len(), "chunks": chunks,
            "index_seconds": index_secs, "query_embed_seconds": embed_secs,
            "search_ms_p50": lat50, "search_ms_p95": lat95,
            "methods": rows, "picked": METHODS[best].name,
        });
        writeln!(out, "{v}")?;
        return Ok(());
    }
    writeln!(
        out,
        "{}: {} documents ({chunks} chunks, indexed in {index_secs:.0} s), {} queries ({split})",
        dir.display(),
        corpus.len(),
        qs.len()
    )?;
    writeln!(
        out,
        "{:<12} {:>8} {:>9} {:>10} {:>7}   {:>11} {:>9}",
        "method", "nDCG@10", "Recall@10", "Recall@100", "MRR@10", "nDCG@10 cal", "nDCG@10 chk"
    )?;
    for (i, m) in METHODS.iter().enumerate() {
        writeln!(
            out,
            "{:<12} {:>8.4} {:>9.4} {:>10.4} {:>7.4}   {:>11.4} {:>9.4}{}",
            m.name,
            all[i].ndcg10,
            all[i].recall10,
            all[i].recall100,
            all[i].mrr10,
            calib[i].ndcg10,
            check[i].ndcg10,
            if i == best {
                "  ← picked on the calibration half"
            } else {
                ""
            }
        )?;
    }
    writeln!(
        out,
        "calibration half = even-numbered queries, check half = odd-numbered"
    )?;
    writeln!(out, "search latency (both legs, query already embedded): p50 {:.1} ms, p95 {:.1} ms; query embedding {:.1} ms each", lat50, lat95, embed_secs * 1e3 / qs.len() as f64)?;
    Ok(())
}

/// `cairn eval latency QUERIES`: search latency on the current knowledge base, in-process, one
/// query at a time (the model loaded once), with and without the query embedding.
pub fn latency(
    kb: &Path,
    queries: &Path,
    k: usize,
    json: bool,
    packs: &crate::pack::Selection,
) -> Result<()> {
    let text = std::fs::read_to_string(queries)
        .with_context(|| format!("reading {}", queries.display()))?;
    let qs: Vec<&str> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    if qs.is_empty() {
        bail!("{}: no queries (one per line)", queries.display());
    }
    // Opening the sources (the knowledge base and the chosen packs) is "mounting" them; the
    // embedder is loaded first so that its load is not counted.
    let embedder = MiniLm::load()?;
    let t_open = Instant::now();
    let sources = crate::pack::open_sources_with(kb, packs, embedder)?;
    let open_ms = t_open.elapsed().as_secs_f64() * 1e3;
    let shelves = sources.shelves();
    let embedder = &sources.embedder;
    let options = cairn_retriever::SearchOptions {
        k,
        ..Default::default()
    };
    // One warm-up query: page cache and allocator, as a long-running TUI would be.
    cairn_engine::search_shelves(&shelves, embedder, qs[0], &options)?;
    let retriever = cairn_retriever::Retriever::new(&sources.reader, embedder);
    let (mut with_embed, mut without) = (Vec::new(), Vec::new());
    for q in &qs {
        let t0 = Instant::now();
        let v = retriever.embed(q)?;
        let t1 = Instant::now();
        let hits = cairn_engine::search_shelves_with(&shelves, embedder, q, Some(&v), &options)?;
        let done = t1.elapsed().as_secs_f64() * 1e3;
        with_embed.push(t0.elapsed().as_secs_f64() * 1e3);
        without.push(done);
        std::hint::black_box(hits);
    }
    let (p50, p95) = (
        percentile(&mut without, 0.5),
        percentile(&mut without, 0.95),
    );
    let (e50, e95) = (
        percentile(&mut with_embed, 0.5),
        percentile(&mut with_embed, 0.95),
    );
    let mut chunks = 0;
    for s in &shelves {
        chunks += s.reader.status()?.chunks;
    }
    let mut out = std::io::stdout().lock();
    if json {
        writeln!(
            out,
            "{}",
            serde_json::json!({"queries": qs.len(), "chunks": chunks, "k": k, "sources": shelves.len(), "open_ms": open_ms,
            "search_ms_p50": p50, "search_ms_p95": p95, "with_embedding_ms_p50": e50, "with_embedding_ms_p95": e95})
        )?;
    } else {
        writeln!(out, "{} queries over {chunks} chunks in {} source(s) (opened in {open_ms:.0} ms), hybrid, k={k}: search p50 {p50:.1} ms, p95 {p95:.1} ms; with query embedding p50 {e50:.1} ms, p95 {e95:.1} ms", qs.len(), shelves.len())?;
    }
    Ok(())
}

/// Indexes one folder into a new knowledge base for an evaluation (large commits, no progress);
/// returns the writer, still holding the lock, for further changes.
pub(crate) fn index_folder(
    docs: &Path,
    kb: &Path,
    embedder: &MiniLm,
) -> Result<(Writer, cairn_index::AddReport)> {
    let mut writer = Writer::open(kb, &embedder.id(), &chunk_options())?;
    // The same figures on every run: a graph built in parallel found a different passage for
    // one question of 80 between two runs of the documentation set (session 32).
    writer.set_deterministic_graph(true);
    let never = || false;
    let options = AddOptions {
        embedder,
        read: ReadOptions::default(),
        commit_every: 4096,
        batch: 32,
        cancel: &never,
    };
    let report = writer.add(&[docs.to_owned()], &options, &mut NoProgress)?;
    Ok((writer, report))
}

/// The `p`-quantile (nearest rank) of non-empty samples; sorts them.
pub(crate) fn percentile(v: &mut [f64], p: f64) -> f64 {
    v.sort_by(f64::total_cmp);
    v[((v.len() - 1) as f64 * p).round() as usize]
}
