//! `cairn ask --batch` and `cairn search --batch`: JSONL in, JSONL out, for scripts.
//!
//! Input: one question per line, either a JSON object (`{"id": …, "question": …}` plus optional
//! per-line settings) or plain text. Blank lines are skipped. Output: one JSON object per
//! non-blank input line, in input order, shaped as `schema/answer.schema.json` (or
//! `schema/search.schema.json`) describes. A line that cannot be parsed or answered gets an
//! `error` object and the batch goes on. The index and the model are loaded once; for `ask`,
//! retrieval for the next questions runs on a second thread while the model writes.

use std::io::{BufRead, IsTerminal, Write};
use std::sync::mpsc;

use anyhow::Result;
use serde_json::{json, Value};

use cairn_engine::batch::{parse_line, BatchLine, LineError};
use cairn_engine::{self as ask, AskOptions, Engine, Quiet, ANSWER_SCHEMA_VERSION};

/// Version of `schema/search.schema.json`.
pub const SEARCH_SCHEMA_VERSION: u32 = 1;

/// How a batch ended, for the exit code.
#[derive(Debug, Default, Clone, Copy)]
pub struct Tally {
    pub lines: usize,
    pub answered: usize,
    pub abstained: usize,
    pub failed: usize,
}

/// The output line of a line that failed; `key` names the text field (`question` or `query`).
fn error_json(
    line: usize,
    id: &Value,
    key: &str,
    text: Option<&str>,
    e: &LineError,
    schema: u32,
) -> Value {
    let mut v = json!({
        "schema_version": schema,
        "id": id,
        "line": line,
        "error": {"code": e.code, "message": e.message},
    });
    v[key] = json!(text);
    v
}

/// Reads the non-blank lines of the input (a file, or stdin for `-`).
fn items(input: &str, base: &AskOptions) -> Result<Vec<BatchLine>> {
    let reader: Box<dyn BufRead> = if input == "-" {
        Box::new(std::io::stdin().lock())
    } else {
        let f = std::fs::File::open(input)
            .map_err(|e| anyhow::anyhow!("cannot open batch file {input}: {e}"))?;
        Box::new(std::io::BufReader::new(f))
    };
    let mut out = Vec::new();
    for (i, line) in reader.lines().enumerate() {
        let line = match line {
            Ok(l) => l,
            Err(e) if e.kind() == std::io::ErrorKind::InvalidData => {
                out.push(BatchLine {
                    line: i + 1,
                    id: json!(i + 1),
                    parsed: Err(LineError::new("bad_utf8", "the line is not UTF-8")),
                });
                continue;
            }
            Err(e) => return Err(anyhow::anyhow!("reading {input}: {e}")),
        };
        if line.trim().is_empty() {
            continue;
        }
        out.push(parse_line(i + 1, &line, base));
    }
    Ok(out)
}

struct Progress {
    on: bool,
    total: usize,
}

impl Progress {
    fn show(&self, t: &Tally) {
        if self.on {
            eprint!(
                "\r{}/{} lines · {} answered · {} not found · {} failed",
                t.lines, self.total, t.answered, t.abstained, t.failed
            );
        }
    }
    fn done(&self) {
        if self.on {
            eprintln!();
        }
    }
}

/// `cairn ask --batch`.
pub fn ask(engine: &mut Engine, input: &str, base: &AskOptions, model: &str) -> Result<Tally> {
    let items = items(input, base)?;
    let progress = Progress {
        on: std::io::stderr().is_terminal(),
        total: items.len(),
    };
    let mut tally = Tally::default();
    let mut out = std::io::stdout().lock();
    let Engine {
        retrieval,
        generator,
    } = engine;
    let retrieval = &*retrieval;
    std::thread::scope(|scope| -> Result<()> {
        // Retrieval runs ahead of the model by a few questions.
        let (tx, rx) = mpsc::sync_channel(4);
        let items_ref = &items;
        scope.spawn(move || {
            for (i, item) in items_ref.iter().enumerate() {
                let r = match &item.parsed {
                    Ok((q, o)) => Some(retrieval.retrieve(q, o)),
                    Err(_) => None,
                };
                if tx.send((i, r)).is_err() {
                    break; // the writer stopped (closed pipe)
                }
            }
        });
        for (i, retrieved) in rx {
            let item = &items[i];
            let v = match (&item.parsed, retrieved) {
                (Err(e), _) => {
                    tally.failed += 1;
                    error_json(
                        item.line,
                        &item.id,
                        "question",
                        None,
                        e,
                        ANSWER_SCHEMA_VERSION,
                    )
                }
                (Ok((q, _)), Some(Err(e))) => {
                    tally.failed += 1;
                    let e = LineError::new("failed", crate::error_chain(&e));
                    error_json(
                        item.line,
                        &item.id,
                        "question",
                        Some(q),
                        &e,
                        ANSWER_SCHEMA_VERSION,
                    )
                }
                (Ok((q, o)), Some(Ok(r))) => match ask::answer(generator, q, r, o, &mut Quiet) {
                    Ok(a) => {
                        if a.abstained.is_some() {
                            tally.abstained += 1;
                        } else {
                            tally.answered += 1;
                        }
                        let mut v = a.to_json(model, o.seed);
                        v["id"] = item.id.clone();
                        v["line"] = json!(item.line);
                        v
                    }
                    Err(e) => {
                        tally.failed += 1;
                        let e = LineError::new("failed", crate::error_chain(&e));
                        error_json(
                            item.line,
                            &item.id,
                            "question",
                            Some(q),
                            &e,
                            ANSWER_SCHEMA_VERSION,
                        )
                    }
                },
                (Ok(_), None) => unreachable!("parsed lines are retrieved"),
            };
            tally.lines += 1;
            writeln!(out, "{v}")?;
            out.flush()?;
            progress.show(&tally);
        }
        Ok(())
    })?;
    progress.done();
    Ok(tally)
}

/// `cairn search --batch`.
pub fn search(
    shelves: &[cairn_engine::Shelf<'_>],
    embedder: &cairn_engine::MiniLm,
    input: &str,
    base: &AskOptions,
) -> Result<Tally> {
    let items = items(input, base)?;
    let progress = Progress {
        on: std::io::stderr().is_terminal(),
        total: items.len(),
    };
    let mut tally = Tally::default();
    let mut out = std::io::stdout().lock();
    for item in &items {
        let v = match &item.parsed {
            Err(e) => {
                tally.failed += 1;
                error_json(item.line, &item.id, "query", None, e, SEARCH_SCHEMA_VERSION)
            }
            Ok((q, o)) => match search_one(shelves, embedder, q, o) {
                Ok((hits, ms)) => {
                    tally.answered += 1;
                    json!({
                        "schema_version": SEARCH_SCHEMA_VERSION,
                        "id": item.id,
                        "line": item.line,
                        "query": q,
                        "mode": o.mode,
                        "hits": hits.iter().map(crate::kb::hit_json).collect::<Vec<_>>(),
                        "timings": {"search_ms": ms},
                    })
                }
                Err(e) => {
                    tally.failed += 1;
                    let e = LineError::new("failed", crate::error_chain(&*e));
                    error_json(
                        item.line,
                        &item.id,
                        "query",
                        Some(q),
                        &e,
                        SEARCH_SCHEMA_VERSION,
                    )
                }
            },
        };
        tally.lines += 1;
        writeln!(out, "{v}")?;
        out.flush()?;
        progress.show(&tally);
    }
    progress.done();
    Ok(tally)
}

fn search_one(
    shelves: &[cairn_engine::Shelf<'_>],
    embedder: &cairn_engine::MiniLm,
    q: &str,
    o: &AskOptions,
) -> Result<(Vec<cairn_retriever::Hit>, f64)> {
    let t = std::time::Instant::now();
    let options = o.search_options();
    let hits = cairn_engine::search_shelves(shelves, embedder, q, &options)?;
    Ok((hits, t.elapsed().as_secs_f64() * 1e3))
}
