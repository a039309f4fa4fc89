//! `cairn doctor`: checks what cairn needs, one line each, ok or a problem with a hint.

use std::path::Path;

use anyhow::Result;
use cairn_engine::catalog::{self, FileState};

/// One check's outcome.
#[derive(serde::Serialize)]
pub struct Finding {
    /// What was checked.
    pub check: String,
    /// Whether it is fine.
    pub ok: bool,
    /// What was found.
    pub detail: String,
    /// What to do about a problem.
    pub hint: Option<String>,
}

fn ok(check: impl Into<String>, detail: impl Into<String>) -> Finding {
    Finding {
        check: check.into(),
        ok: true,
        detail: detail.into(),
        hint: None,
    }
}

fn problem(
    check: impl Into<String>,
    detail: impl Into<String>,
    hint: impl Into<String>,
) -> Finding {
    Finding {
        check: check.into(),
        ok: false,
        detail: detail.into(),
        hint: Some(hint.into()),
    }
}

fn models(deep: bool, out: &mut Vec<Finding>) {
    let dir = match catalog::models_dir() {
        Ok(d) => d,
        Err(e) => {
            out.push(problem(
                "models",
                e.to_string(),
                "set CAIRN_MODELS_DIR to a writable directory",
            ));
            return;
        }
    };
    for spec in catalog::CATALOG {
        let name = format!("model {}", spec.id);
        let mut states = Vec::new();
        for f in spec.files {
            match catalog::check_file(&dir, f, deep, &mut catalog::Silent) {
                Ok(s) => states.push(s),
                Err(e) => {
                    states.push(FileState::Corrupt);
                    out.push(problem(
                        &name,
                        e.to_string(),
                        "check the file's permissions",
                    ));
                }
            }
        }
        let size: u64 = spec.files.iter().map(|f| f.size).sum();
        if states.iter().all(|s| *s == FileState::Verified) {
            out.push(ok(
                &name,
                format!(
                    "{} ({}) verified{}",
                    spec.name,
                    cairn_engine::text::human_size(size),
                    if deep { " by hashing every file" } else { "" }
                ),
            ));
        } else if states.contains(&FileState::Corrupt) {
            out.push(problem(
                &name,
                format!("{}: a file does not match its pinned SHA-256", spec.name),
                format!("cairn models pull {} (fetches it again)", spec.id),
            ));
        } else if spec.default_pull {
            out.push(problem(
                &name,
                format!("{}: not installed", spec.name),
                format!("cairn models pull {}", spec.id),
            ));
        } else {
            out.push(ok(
                &name,
                format!("{}: not installed (optional)", spec.name),
            ));
        }
    }
    match cairn_engine::MiniLm::load() {
        Ok(e) => match e.note() {
            None => out.push(ok("embedder", "loads, on ONNX Runtime")),
            Some(note) => out.push(problem(
                "embedder",
                format!("loads, on the built-in encoder: {note}"),
                "cairn models pull (fetches the ONNX Runtime library); the built-in encoder gives the same vectors, slower",
            )),
        },
        Err(e) => out.push(problem("embedder", first_line(&e), "cairn models pull")),
    }
}

fn knowledge_base(kb: &Path, out: &mut Vec<Finding>) {
    let name = "knowledge base";
    if !kb.join(cairn_index::STORE_FILE).exists() {
        if crate::pack::installed_count() > 0 {
            // Installed packs are searched alone until there is a knowledge base.
            out.push(ok(
                name,
                format!(
                    "none yet at {}: the installed packs are searched alone (cairn add PATH makes one)",
                    kb.display()
                ),
            ));
            return;
        }
        out.push(problem(
            name,
            format!("none at {}", kb.display()),
            "cairn add PATH (or --kb / CAIRN_KB to use another)",
        ));
        return;
    }
    match cairn_index::Reader::open(kb).and_then(|r| Ok((r.status()?, r))) {
        Ok((status, reader)) => {
            let m = reader.manifest();
            out.push(ok(
                name,
                format!(
                    "{}: {} documents, {} chunks, format {}, {}",
                    kb.display(),
                    status.documents,
                    status.chunks,
                    m.format_version,
                    cairn_engine::text::human_size(status.bytes)
                ),
            ));
            match (&status.graph_error, &m.graph) {
                (Some(e), _) => out.push(problem(
                    "vector graph",
                    e.clone(),
                    "cairn add PATH rebuilds it; searches use an exact scan meanwhile",
                )),
                (None, Some(g)) => out.push(ok(
                    "vector graph",
                    format!("{} points, mapped in place", g.points),
                )),
                (None, None) => out.push(ok("vector graph", "none needed (exact scan)")),
            }
            if !status.bm25_in_sync {
                out.push(problem(
                    "keyword index",
                    "behind the last commit",
                    "the next `cairn add` brings it up to date",
                ));
            }
        }
        Err(e) => out.push(problem(
            name,
            format!("{}: {e}", kb.display()),
            "if it is damaged, `cairn add --rebuild PATH` makes it again",
        )),
    }
    // Who writes to it now: the lock file holds the writer's pid while it runs.
    match cairn_index::writer_holder(kb) {
        Some(holder) => out.push(ok(
            "writer lock",
            format!("held by {holder} (an ingest is running)"),
        )),
        None => out.push(ok("writer lock", "free")),
    }
}

fn packs(out: &mut Vec<Finding>) {
    let dir = match crate::pack::packs_dir() {
        Ok(d) => d,
        Err(e) => {
            out.push(problem("packs", e.to_string(), "set CAIRN_PACKS_DIR"));
            return;
        }
    };
    match cairn_pack::installed(&dir) {
        Ok(list) if list.is_empty() => out.push(ok("packs", "none installed")),
        Ok(list) => {
            for (m, path) in list {
                let name = format!("pack {}@{}", m.about.name, m.about.version);
                match cairn_pack::check_installed(&path, &m) {
                    Ok(()) => out.push(ok(
                        &name,
                        format!(
                            "{} documents, {} chunks, every member's hash matches",
                            m.documents, m.chunks
                        ),
                    )),
                    Err(e) => out.push(problem(
                        &name,
                        e,
                        format!("cairn pack remove {0}, then install it again", m.about.name),
                    )),
                }
            }
        }
        Err(e) => out.push(problem("packs", e.to_string(), "check the packs directory")),
    }
}

fn prompt_cache(out: &mut Vec<Finding>) {
    let Some(dir) = dirs::cache_dir().map(|d| d.join("cairn").join("prompt-cache")) else {
        return;
    };
    let (mut files, mut bytes) = (0u64, 0u64);
    if let Ok(entries) = std::fs::read_dir(&dir) {
        for e in entries.flatten() {
            if let Ok(m) = e.metadata() {
                files += 1;
                bytes += m.len();
            }
        }
    }
    out.push(ok(
        "prompt cache",
        format!(
            "{}: {files} files, {} (safe to delete)",
            dir.display(),
            cairn_engine::text::human_size(bytes)
        ),
    ));
}

/// Runs every check.
pub fn run(kb: &Path, deep: bool) -> Vec<Finding> {
    let mut out = Vec::new();
    models(deep, &mut out);
    knowledge_base(kb, &mut out);
    packs(&mut out);
    prompt_cache(&mut out);
    disk_space(kb, &mut out);
    out
}

/// An error's message without the `hint:` lines some errors carry (a finding has its own).
fn first_line(e: &dyn std::fmt::Display) -> String {
    let text = e.to_string();
    text.lines().next().unwrap_or_default().to_owned()
}

/// Below this much free space where cairn writes, an `add` or a `models pull` may fail.
const LOW_SPACE: u64 = 2 << 30;

/// Free space on the file systems of the knowledge base and the models (each reported once).
fn disk_space(kb: &Path, out: &mut Vec<Finding>) {
    let mut places = vec![("knowledge base", kb.to_owned())];
    if let Ok(models) = catalog::models_dir() {
        places.push(("models", models));
    }
    let mut seen = Vec::new();
    for (what, path) in places {
        // The folder may not exist yet: its nearest existing parent is where it will be made.
        let Some(existing) = path.ancestors().find(|p| p.exists()) else {
            continue;
        };
        let name = format!("disk space ({what})");
        match fs4::statvfs(existing) {
            Ok(stats) => {
                let key = (stats.total_space(), stats.free_space());
                if seen.contains(&key) {
                    continue; // the same file system as a place above
                }
                seen.push(key);
                let free = stats.available_space();
                let detail = format!(
                    "{} free of {} at {}",
                    cairn_engine::text::human_size(free),
                    cairn_engine::text::human_size(stats.total_space()),
                    existing.display()
                );
                if free < LOW_SPACE {
                    out.push(problem(
                        name,
                        detail,
                        "free some space: adding documents and pulling models need room (the 1.5B model is 1 GiB)",
                    ));
                } else {
                    out.push(ok(name, detail));
                }
            }
            Err(e) => out.push(problem(
                name,
                format!("cannot read the free space at {}: {e}", existing.display()),
                "check that the folder is readable",
            )),
        }
    }
}

/// Prints the checks; `Ok(false)` when one is a problem.
pub fn print(checks: &[Finding], json: bool, paint: crate::style::Paint) -> Result<bool> {
    if json {
        println!("{}", serde_json::to_string_pretty(checks)?);
    } else {
        for c in checks {
            let mark = if c.ok {
                paint.good("ok     ")
            } else {
                paint.bad("problem")
            };
            println!(
                "{mark} {}: {}",
                c.check,
                cairn_engine::text::one_line(&c.detail)
            );
            if let Some(h) = &c.hint {
                println!("        {} {h}", paint.warn("hint:"));
            }
        }
    }
    Ok(checks.iter().all(|c| c.ok))
}
