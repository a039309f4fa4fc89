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
use serde_json::{json, Map, Value};

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

/// One input line, parsed.
struct Item {
    /// 1-based line number in the input.
    line: usize,
    /// The caller's id (the line number when none was given).
    id: Value,
    parsed: std::result::Result<(String, AskOptions), LineError>,
}

#[derive(Clone, Debug)]
struct LineError {
    code: &'static str,
    message: String,
}

impl LineError {
    fn new(code: &'static str, message: impl Into<String>) -> Self {
        LineError {
            code,
            message: message.into(),
        }
    }
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

/// Reads a per-line override of type `T`, or the default.
fn field<T: serde::de::DeserializeOwned>(
    obj: &Map<String, Value>,
    key: &str,
    default: T,
) -> std::result::Result<T, LineError> {
    match obj.get(key) {
        None | Some(Value::Null) => Ok(default),
        Some(v) => serde_json::from_value(v.clone())
            .map_err(|e| LineError::new("bad_field", format!("`{key}`: {e}"))),
    }
}

/// Parses one non-blank line. `text_key` is `question` for ask, `query` for search (either is
/// accepted).
fn parse(line_no: usize, line: &str, base: &AskOptions) -> Item {
    let t = line.trim();
    let fallback_id = json!(line_no);
    if !t.starts_with('{') {
        return Item {
            line: line_no,
            id: fallback_id,
            parsed: Ok((t.to_owned(), base.clone())),
        };
    }
    let obj: Map<String, Value> = match serde_json::from_str::<Value>(t) {
        Ok(Value::Object(o)) => o,
        Ok(_) => unreachable!("text starting with '{{' parses as an object or not at all"),
        Err(e) => {
            return Item {
                line: line_no,
                id: fallback_id,
                parsed: Err(LineError::new("bad_json", e.to_string())),
            }
        }
    };
    let id = match obj.get("id") {
        None | Some(Value::Null) => fallback_id,
        Some(v @ (Value::String(_) | Value::Number(_))) => v.clone(),
        Some(_) => {
            return Item {
                line: line_no,
                id: fallback_id,
                parsed: Err(LineError::new(
                    "bad_field",
                    "`id` must be a string or a number",
                )),
            }
        }
    };
    let parsed = (|| {
        let question = obj
            .get("question")
            .or_else(|| obj.get("query"))
            .and_then(Value::as_str)
            .map(str::trim)
            .filter(|q| !q.is_empty())
            .ok_or_else(|| {
                LineError::new(
                    "missing_question",
                    "no non-empty `question` (or `query`) string",
                )
            })?
            .to_owned();
        let mut o = base.clone();
        o.k = field(&obj, "k", o.k)?;
        if !(1..=100).contains(&o.k) {
            return Err(LineError::new("bad_field", "`k` must be 1–100"));
        }
        o.mode = field(&obj, "mode", o.mode)?;
        o.max_tokens = field(&obj, "max_tokens", o.max_tokens)?;
        if !(1..=2048).contains(&o.max_tokens) {
            return Err(LineError::new("bad_field", "`max_tokens` must be 1–2048"));
        }
        o.budget = field(&obj, "budget", o.budget)?;
        o.seed = field(&obj, "seed", o.seed)?;
        o.temperature = field(&obj, "temperature", o.temperature)?;
        if !(0.0..=2.0).contains(&o.temperature) {
            return Err(LineError::new("bad_field", "`temperature` must be 0–2"));
        }
        o.min_relevance = field(&obj, "min_relevance", o.min_relevance)?;
        o.min_coverage = field(&obj, "min_coverage", o.min_coverage)?;
        o.min_named_coverage = field(&obj, "min_named_coverage", o.min_named_coverage)?;
        o.min_relative_score = field(&obj, "min_relative_score", o.min_relative_score)?;
        o.free = field(&obj, "free", o.free)?;
        Ok((question, o))
    })();
    Item {
        line: line_no,
        id,
        parsed,
    }
}

/// Reads the non-blank lines of the input (a file, or stdin for `-`).
fn items(input: &str, base: &AskOptions) -> Result<Vec<Item>> {
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
                out.push(Item {
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
        out.push(parse(i + 1, &line, base));
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
                    let e = LineError::new("failed", format!("{e:#}"));
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
                        let e = LineError::new("failed", format!("{e:#}"));
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
                    let e = LineError::new("failed", format!("{e:#}"));
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_parse_into_questions_overrides_or_errors() {
        let base = AskOptions::default();
        let plain = parse(3, "  What is a crate?  ", &base);
        assert_eq!(plain.id, json!(3));
        assert_eq!(plain.parsed.as_ref().unwrap().0, "What is a crate?");

        let obj = parse(
            1,
            r#"{"id": "q7", "question": "Why?", "k": 3, "mode": "bm25", "max_tokens": 50, "free": true, "min_relative_score": 0.5}"#,
            &base,
        );
        assert_eq!(obj.id, json!("q7"));
        let (q, o) = obj.parsed.unwrap();
        assert_eq!(q, "Why?");
        assert_eq!(
            (o.k, o.mode, o.max_tokens, o.free, o.min_relative_score),
            (3, cairn_retriever::Mode::Bm25, 50, true, 0.5)
        );

        for (line, code) in [
            (r#"{"id": 1, "question": "#, "bad_json"),
            (r#"{"id": 1}"#, "missing_question"),
            (r#"{"question": "x", "k": "many"}"#, "bad_field"),
            (r#"{"question": "x", "k": 0}"#, "bad_field"),
            (r#"{"question": "x", "mode": "psychic"}"#, "bad_field"),
            (r#"{"question": "x", "id": [1]}"#, "bad_field"),
            (r#"{"question": "x", "free": "yes"}"#, "bad_field"),
        ] {
            let item = parse(1, line, &base);
            assert_eq!(item.parsed.unwrap_err().code, code, "{line}");
        }
    }
}
