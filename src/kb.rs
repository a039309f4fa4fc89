//! `cairn add | remove | status | search`: the knowledge-base commands.

use std::collections::HashSet;
use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use cairn_engine::text::{civil_time, human_size, location, one_line, sanitize, snippet};
use cairn_engine::{chunk_options, MiniLm};
use cairn_index::{
    AddOptions, AddProgress, AddReport, Embedder, EmbedderId, FileOutcome, Reader, Writer,
};
use cairn_ingest::{ReadOptions, Watch};
use cairn_retriever::{Fusion, Hit, Mode};
use indicatif::{ProgressBar, ProgressStyle};

use crate::style::Paint;

/// The knowledge base directory: `--kb`/`CAIRN_KB`, else `<data dir>/cairn/kb`.
pub fn kb_dir(kb: Option<&Path>) -> Result<PathBuf> {
    if let Some(p) = kb {
        return Ok(p.to_owned());
    }
    let data = dirs::data_dir().context("no user data directory; pass --kb DIR or set CAIRN_KB")?;
    Ok(data.join("cairn").join("kb"))
}

struct CliProgress {
    bar: ProgressBar,
    quiet: bool,
    notices: Vec<String>,
    /// The skipped files' messages printed as they came.
    said: HashSet<String>,
}

impl AddProgress for CliProgress {
    fn files(&mut self, total: usize) {
        self.bar.set_length(total as u64);
    }
    fn file(&mut self, key: &str, outcome: &FileOutcome) {
        self.bar.inc(1);
        self.bar.set_message(key.to_owned());
        if let FileOutcome::Skipped { message, .. } = outcome {
            if !self.quiet {
                self.bar
                    .suspend(|| eprintln!("skipped: {}", sanitize(message)));
                self.said.insert(message.clone());
            }
        }
    }
    fn notice(&mut self, key: &str, message: &str) {
        self.notices.push(format!("{key}: {message}"));
    }
    fn embedded(&mut self, chunks: usize) {
        self.bar.set_prefix(format!("{chunks} chunks embedded"));
    }
    fn phase(&mut self, name: &str) {
        if name == "graph" {
            self.bar.set_message("updating the vector graph");
        }
    }
}

/// Settings of `cairn add`.
pub struct AddSettings {
    pub rebuild: bool,
    pub read: ReadOptions,
    pub json: bool,
    pub quiet: bool,
    pub commit_every: usize,
    /// Keep watching the paths and add them again when something under them changes and has
    /// then been quiet this long.
    pub watch: Option<Duration>,
}

/// `cairn add`.
pub fn add(kb: &Path, paths: &[PathBuf], settings: &AddSettings) -> Result<()> {
    let &AddSettings {
        rebuild,
        ref read,
        json,
        quiet,
        commit_every,
        watch,
    } = settings;
    if paths.is_empty() {
        bail!("nothing to add\nhint: `cairn add PATH…` with files or folders");
    }
    let t0 = Instant::now();
    let embedder = load_embedder()?;
    if rebuild {
        Writer::wipe(kb)?;
    }
    let mut writer = Writer::open(kb, &embedder.id(), &chunk_options())?;
    let hidden = quiet || json || !std::io::stderr().is_terminal();
    let bar = if hidden {
        ProgressBar::hidden()
    } else {
        let b = ProgressBar::new(0);
        b.set_style(
            ProgressStyle::with_template("{spinner} [{elapsed_precise}] {bar:30} {pos}/{len} files ({per_sec}, ETA {eta}) {prefix} {wide_msg}")
                .expect("static template"),
        );
        b
    };
    // Skipped files are named on stderr as they come; the summary names them again unless it
    // goes to the same terminal.
    let mut progress = CliProgress {
        bar,
        quiet: quiet || json,
        notices: Vec::new(),
        said: HashSet::new(),
    };
    let same_terminal = !hidden && std::io::stdout().is_terminal();
    // Ctrl-C simply ends the process: everything committed stays, and the next run resumes.
    let cancel = || false;
    let options = AddOptions {
        embedder: &embedder,
        read: read.clone(),
        commit_every: commit_every.max(1),
        // The built-in encoder packs a batch without padding, so order and size barely matter;
        // ONNX Runtime pads, so it gets more texts per call to sort into batches by length.
        batch: if embedder.backend() == "onnxruntime" {
            256
        } else {
            32
        },
        cancel: &cancel,
    };
    let report = writer.add(paths, &options, &mut progress)?;
    progress.bar.finish_and_clear();
    let mut out = std::io::stdout().lock();
    let none = HashSet::new();
    let above = if same_terminal { &progress.said } else { &none };
    print_report(&mut out, kb, &report, &writer, &embedder, t0, json, above)?;
    for n in &progress.notices {
        if !json {
            writeln!(out, "note: {}", sanitize(n))?;
        }
    }
    drop(out);
    if watch.is_some() {
        watch_paths(kb, paths, writer, &options, &embedder, settings, &report)?;
    }
    Ok(())
}

/// Prints what one `add` run did: a summary line and the files skipped (but those already
/// named `above` it on the same terminal), or one JSON object.
#[allow(clippy::too_many_arguments)] // one call per output form; a struct would only rename them
fn print_report(
    out: &mut impl Write,
    kb: &Path,
    report: &AddReport,
    writer: &Writer,
    embedder: &MiniLm,
    t0: Instant,
    json: bool,
    above: &HashSet<String>,
) -> Result<()> {
    let secs = t0.elapsed().as_secs_f64();
    if json {
        let skipped: Vec<_> = report
            .skipped
            .iter()
            .map(|(path, reason, message)| serde_json::json!({"path": path, "reason": reason, "message": message}))
            .collect();
        let v = serde_json::json!({
            "kb": kb,
            "added": report.added,
            "updated": report.updated,
            "reread": report.reread,
            "unchanged": report.unchanged,
            "removed": report.removed,
            "skipped": skipped,
            "chunks_written": report.chunks_written,
            "chunks_embedded": report.chunks_embedded,
            "embedding_engine": embedder.engine_used(),
            "commits": report.commits,
            "generation": writer.manifest().generation,
            "seconds": secs,
        });
        writeln!(out, "{v}")?;
        return Ok(());
    }
    writeln!(
        out,
        "{} added, {} updated, {} unchanged, {} removed, {} skipped; {} chunks written, {} embedded ({}), in {secs:.1} s",
        report.added,
        report.updated,
        report.unchanged,
        report.removed,
        report.skipped.len(),
        report.chunks_written,
        report.chunks_embedded,
        embedder.engine_used()
    )?;
    if report.reread > 0 {
        writeln!(
            out,
            "{} of the updated files had not changed: read again, as cairn reads files of their kind better than when they were added",
            report.reread
        )?;
    }
    if !report.skipped.is_empty() {
        let mut reasons: Vec<(&str, usize)> = Vec::new();
        for (_, r, _) in &report.skipped {
            match reasons.iter_mut().find(|(x, _)| x == r) {
                Some(e) => e.1 += 1,
                None => reasons.push((r, 1)),
            }
        }
        let summary: Vec<String> = reasons.iter().map(|(r, n)| format!("{n} {r}")).collect();
        let unsaid: Vec<&String> = report
            .skipped
            .iter()
            .map(|s| &s.2)
            .filter(|m| !above.contains(*m))
            .collect();
        let said = report.skipped.len() - unsaid.len();
        if said > 0 {
            writeln!(out, "skipped: {} ({said} named above)", summary.join(", "))?;
        } else {
            writeln!(out, "skipped: {}", summary.join(", "))?;
        }
        for message in unsaid.iter().take(20) {
            writeln!(out, "  {}", sanitize(message))?;
        }
        if unsaid.len() > 20 {
            writeln!(
                out,
                "  … and {} more (`cairn status` lists them all)",
                unsaid.len() - 20
            )?;
        }
    }
    Ok(())
}

/// How long a steady stream of writes may put off indexing what changed.
const WATCH_LONGEST: Duration = Duration::from_secs(30);

/// How long the added paths must be quiet before a batch of changes is indexed.
pub const WATCH_QUIET: Duration = Duration::from_secs(1);

/// After a run that failed (a full disk, say), how long until it is tried again if nothing
/// changes before.
const WATCH_RETRY: Duration = Duration::from_secs(30);

/// `cairn add --watch`: after the first run, add the same paths again whenever something under
/// them changes, printing what each run changed (runs that change nothing print nothing). A run
/// that fails is reported and tried again at the next change or after [`WATCH_RETRY`], with
/// the knowledge base opened afresh: the watch goes on, and what was committed stays.
fn watch_paths(
    kb: &Path,
    paths: &[PathBuf],
    writer: Writer,
    options: &AddOptions<'_>,
    embedder: &MiniLm,
    settings: &AddSettings,
    first: &AddReport,
) -> Result<()> {
    let quiet = settings.watch.unwrap_or(WATCH_QUIET);
    let existing: Vec<PathBuf> = paths.iter().filter(|p| p.exists()).cloned().collect();
    if existing.is_empty() {
        bail!("nothing to watch: none of the paths exists");
    }
    let watch = Watch::new(&existing, &[kb.to_owned()])?;
    if !settings.quiet {
        eprintln!(
            "watching {} for changes (Ctrl-C stops; every change indexed so far stays)",
            existing
                .iter()
                .map(|p| p.display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    // A file that keeps failing is said once, not at every run.
    let mut said: HashSet<String> = first.skipped.iter().map(|s| s.2.clone()).collect();
    let mut writer = Some(writer);
    let mut retry_at: Option<Instant> = None;
    let mut last_error: Option<String> = None;
    loop {
        let due = move || retry_at.is_some_and(|at| Instant::now() >= at);
        if watch.next(quiet, WATCH_LONGEST, &due).is_none() && !due() {
            break;
        }
        let t0 = Instant::now();
        let mut progress = CliProgress {
            bar: ProgressBar::hidden(),
            quiet: true,
            notices: Vec::new(),
            said: HashSet::new(),
        };
        let run = match writer.take() {
            Some(w) => Ok(w),
            None => Writer::open(kb, &embedder.id(), &chunk_options()),
        }
        .and_then(|mut w| {
            let report = w.add(&existing, options, &mut progress);
            // A writer whose run failed is dropped: the next run opens the knowledge base
            // afresh, from its last commit.
            if report.is_ok() {
                writer = Some(w);
            }
            report
        });
        let mut report = match run {
            Ok(report) => report,
            Err(e) => {
                retry_at = Some(Instant::now() + WATCH_RETRY);
                // The same failure again is not said again.
                let message = sanitize(&e.to_string());
                if last_error.as_ref() != Some(&message) {
                    report_watch_error(kb, &message, settings.json)?;
                    last_error = Some(message);
                }
                continue;
            }
        };
        retry_at = None;
        last_error = None;
        let failing: HashSet<String> = report.skipped.iter().map(|s| s.2.clone()).collect();
        report.skipped.retain(|s| !said.contains(&s.2));
        // A file that failed, then was mended, may fail again later: said again then.
        said.retain(|m| failing.contains(m));
        said.extend(report.skipped.iter().map(|s| s.2.clone()));
        if report.added + report.updated + report.removed == 0 && report.skipped.is_empty() {
            continue;
        }
        let Some(w) = writer.as_ref() else { continue };
        let mut out = std::io::stdout().lock();
        if !settings.json {
            write!(out, "{}  ", clock())?;
        }
        print_report(
            &mut out,
            kb,
            &report,
            w,
            embedder,
            t0,
            settings.json,
            &HashSet::new(),
        )?;
        for n in &progress.notices {
            if !settings.json {
                writeln!(out, "note: {}", sanitize(n))?;
            }
        }
        out.flush()?;
    }
    Ok(())
}

/// The time of day, `HH:MM:SS` (UTC), that begins a watch's lines.
fn clock() -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    civil_time(now)[11..19].to_owned()
}

/// Says that a watch's run failed and will be tried again: on stderr, and with `--json` also as
/// an object `{"kb", "error", "retry_seconds"}` on stdout, in the stream of runs.
fn report_watch_error(kb: &Path, message: &str, json: bool) -> Result<()> {
    let retry = WATCH_RETRY.as_secs();
    eprintln!(
        "{}  error: {message}\n          (still watching: tried again at the next change or in {retry} s)",
        clock()
    );
    if json {
        let mut out = std::io::stdout().lock();
        writeln!(
            out,
            "{}",
            serde_json::json!({"kb": kb, "error": message, "retry_seconds": retry})
        )?;
        out.flush()?;
    }
    Ok(())
}

/// `cairn remove`.
pub fn remove(kb: &Path, targets: &[String]) -> Result<()> {
    let embedder_id = open_id(kb)?;
    let mut writer = Writer::open(kb, &embedder_id, &chunk_options())?;
    let mut out = std::io::stdout().lock();
    let mut missing = Vec::new();
    for t in targets {
        let removed = writer.remove(t)?;
        if removed.is_empty() {
            missing.push(t.clone());
        }
        for k in removed {
            writeln!(out, "removed {}", sanitize(&k))?;
        }
    }
    if !missing.is_empty() {
        bail!(
            "not in the knowledge base: {}\nhint: `cairn status --documents` lists what is",
            missing.join(", ")
        );
    }
    Ok(())
}

/// The embedder id a knowledge base was built with (so `remove` needs no model).
fn open_id(kb: &Path) -> Result<EmbedderId> {
    Ok(cairn_index::read_manifest(kb)?.embedder)
}

/// `cairn status`.
pub fn status(kb: &Path, json: bool, documents: bool, paint: Paint) -> Result<()> {
    let reader = match Reader::open(kb) {
        Err(e @ cairn_index::Error::NotFound(_)) => {
            if crate::pack::installed_count() == 0 {
                return Err(e.into());
            }
            anyhow::bail!(
                "{e}\nnote: until then, questions search the installed packs alone (`cairn pack list`)"
            );
        }
        r => r?,
    };
    let s = reader.status()?;
    let m = &s.manifest;
    let mut out = std::io::stdout().lock();
    let docs = if documents {
        reader.documents()?
    } else {
        Vec::new()
    };
    if json {
        let v = serde_json::json!({
            "kb": kb,
            "format_version": m.format_version,
            "generation": m.generation,
            "committed_at": m.committed_at,
            "embedder": m.embedder,
            "chunking": m.chunking,
            "documents": s.documents,
            "chunks": s.chunks,
            "bytes": s.bytes,
            "bm25_in_sync": s.bm25_in_sync,
            "vector_graph": m.graph,
            "graph_error": s.graph_error,
            "sources": s.sources.iter().map(|x| serde_json::json!({"name": x.name, "path": x.path})).collect::<Vec<_>>(),
            "skipped": s.skipped.iter().map(|(k, r)| serde_json::json!({"path": k, "reason": r.reason, "message": r.message})).collect::<Vec<_>>(),
            "document_list": docs.iter().map(|d| serde_json::json!({"key": d.key, "kind": d.kind, "title": d.title, "chunks": d.chunks.len(), "bytes": d.size})).collect::<Vec<_>>(),
        });
        writeln!(out, "{v}")?;
        return Ok(());
    }
    writeln!(
        out,
        "knowledge base: {}",
        one_line(&kb.display().to_string())
    )?;
    writeln!(out, "documents:      {}", s.documents)?;
    writeln!(out, "chunks:         {}", s.chunks)?;
    writeln!(out, "skipped files:  {}", s.skipped.len())?;
    writeln!(out, "model:          {}", m.embedder)?;
    writeln!(
        out,
        "chunking:       ≤{} tokens, {} overlap",
        m.chunking.max_tokens, m.chunking.overlap_tokens
    )?;
    writeln!(out, "size on disk:   {}", human_size(s.bytes))?;
    writeln!(
        out,
        "last commit:    #{} at {}",
        m.generation,
        civil_time(m.committed_at)
    )?;
    writeln!(
        out,
        "vector search:  {}",
        match (&m.graph, &s.graph_error) {
            (_, Some(e)) => format!("exact scan (graph unusable: {e}; `cairn add` rebuilds it)"),
            (Some(g), None) => format!(
                "HNSW graph of {} points + exact scan of newer chunks",
                g.points
            ),
            (None, None) => "exact scan".into(),
        }
    )?;
    if !s.bm25_in_sync {
        writeln!(
            out,
            "{}\nhint: run `cairn add` again to finish it",
            paint.warn(
                "warning: the last run was interrupted; keyword search may miss recent changes"
            )
        )?;
    }
    for src in &s.sources {
        writeln!(
            out,
            "source:         {} ← {}",
            one_line(&src.name),
            one_line(&src.path.display().to_string())
        )?;
    }
    for (k, r) in &s.skipped {
        writeln!(
            out,
            "  skipped {} ({}): {}",
            one_line(k),
            r.reason,
            sanitize(&r.message)
        )?;
    }
    for d in &docs {
        writeln!(
            out,
            "  {:<60} {:>5} chunks  {}",
            one_line(&d.key),
            d.chunks.len(),
            sanitize(&d.title)
        )?;
    }
    Ok(())
}

/// Settings of `cairn search`.
pub struct SearchSettings {
    pub packs: crate::pack::Selection,
    pub k: usize,
    pub mode: Mode,
    pub fusion: Fusion,
    pub dense_weight: f32,
    pub fold_duplicates: Option<f32>,
    pub json: bool,
    pub paint: Paint,
}

pub fn hit_json(hit: &Hit) -> serde_json::Value {
    let c = &hit.chunk;
    serde_json::json!({
        "rank": hit.rank,
        "chunk_id": hit.fused.id,
        "doc": c.doc,
        "heading": c.heading,
        "page": c.page,
        "lines": [c.lines.0, c.lines.1],
        "score": hit.fused.score,
        "bm25": hit.fused.bm25,
        "dense": hit.fused.dense,
        "defines": hit.fused.defines,
        "text": c.text,
        "also": hit.also.iter().map(|e| serde_json::json!({
            "chunk_id": e.chunk_id,
            "doc": e.doc,
            "page": e.page,
            "lines": [e.lines.0, e.lines.1],
        })).collect::<Vec<_>>(),
    })
}

/// Loads the embedder, saying on stderr when it fell back to the built-in encoder.
pub fn load_embedder() -> Result<MiniLm> {
    let embedder = MiniLm::load()?;
    if let Some(note) = embedder.note() {
        eprintln!("note: {note}");
    }
    Ok(embedder)
}

/// `cairn search`.
pub fn search(kb: &Path, query: &str, settings: &SearchSettings) -> Result<()> {
    let t0 = Instant::now();
    let sources = crate::pack::open_sources(kb, &settings.packs)?;
    let load_secs = t0.elapsed().as_secs_f64();
    let options = cairn_engine::AskOptions {
        mode: settings.mode,
        fusion: settings.fusion,
        dense_weight: settings.dense_weight,
        k: settings.k,
        fold_duplicates: settings.fold_duplicates,
        ..cairn_engine::AskOptions::default()
    }
    .search_options();
    let t1 = Instant::now();
    let hits =
        cairn_engine::search_shelves(&sources.shelves(), &sources.embedder, query, &options)?;
    let search_ms = t1.elapsed().as_secs_f64() * 1e3;
    let mut out = std::io::stdout().lock();
    if settings.json {
        let v = serde_json::json!({
            "query": query,
            "mode": settings.mode,
            "fusion": settings.fusion,
            "dense_weight": settings.dense_weight,
            "hits": hits.iter().map(hit_json).collect::<Vec<_>>(),
            "timings": {"load_s": load_secs, "search_ms": search_ms},
        });
        writeln!(out, "{v}")?;
        return Ok(());
    }
    if hits.is_empty() {
        writeln!(out, "no matches")?;
    }
    let files = sources.reader.sources().unwrap_or_default();
    let paint = settings.paint;
    for h in &hits {
        let c = &h.chunk;
        let mut legs = [("bm25", h.fused.bm25), ("dense", h.fused.dense)]
            .iter()
            .filter_map(|(name, l)| l.map(|l| format!("{name} #{} {:.3}", l.rank, l.score)))
            .collect::<Vec<_>>();
        if h.fused.defines {
            legs.push(cairn_engine::text::raised_because(query, &c.text).to_owned());
        }
        let legs = legs.join(" · ");
        let scores = format!(
            "[{:.3}{}{}]",
            h.fused.score,
            if legs.is_empty() { "" } else { " · " },
            legs
        );
        writeln!(
            out,
            "{}. {}  {}",
            h.rank,
            paint.link(
                &paint.heading(&location(&c.doc, c.page, c.lines, &c.heading)),
                cairn_engine::file_of(&files, &c.doc).as_deref(),
                c.page,
                c.lines.0
            ),
            paint.score(&scores)
        )?;
        writeln!(out, "   {}", snippet(&c.text, 240))?;
        for e in &h.also {
            writeln!(
                out,
                "   {} {}",
                paint.score("also in"),
                paint.link(
                    &location(&e.doc, e.page, e.lines, &[]),
                    cairn_engine::file_of(&files, &e.doc).as_deref(),
                    e.page,
                    e.lines.0
                )
            )?;
        }
    }
    Ok(())
}

/// `cairn extract`: the text a file is read as.
pub fn extract(file: &Path, sections: bool) -> Result<()> {
    let read = cairn_ingest::read_file(file, &ReadOptions::default())?;
    let doc = &read.document;
    let mut out = std::io::stdout().lock();
    for n in &read.notices {
        eprintln!("note: {}: {}", file.display(), n.message);
    }
    if !sections {
        writeln!(out, "{}", sanitize(&doc.text))?;
        return Ok(());
    }
    writeln!(
        out,
        "# kind: {}  title: {}",
        doc.kind.as_str(),
        sanitize(&doc.title)
    )?;
    for s in &doc.sections {
        let page = s.page.map(|p| format!(" p.{p}")).unwrap_or_default();
        writeln!(
            out,
            "--- section{page} L{} {}",
            s.first_line,
            sanitize(&s.heading.join(" > "))
        )?;
        writeln!(out, "{}", sanitize(&doc.text[s.range.clone()]))?;
    }
    Ok(())
}
