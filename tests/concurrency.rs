//! Readers while a writer commits, through the real binary: `search`, `ask` and `ask --batch`
//! (tiny model) keep answering, without an error or a torn read, while `cairn add` rewrites and
//! commits files in a loop; and a 1,000-line batch with bad lines in between gives exactly one
//! output line per line that is not blank.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;

fn cairn(kb: &Path, args: &[&str], stdin: Option<&[u8]>) -> (i32, String, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_cairn"))
        .args(args)
        .env("CAIRN_KB", kb)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut input = child.stdin.take().unwrap();
    if let Some(bytes) = stdin {
        input.write_all(bytes).unwrap();
    }
    drop(input);
    let out = child.wait_with_output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Facts that never change, and a folder the writer rewrites.
fn setup(dir: &Path) -> (PathBuf, PathBuf) {
    let docs = dir.join("docs");
    std::fs::create_dir_all(docs.join("churn")).unwrap();
    std::fs::write(
        docs.join("pumps.md"),
        "# Orvane pump\n\nThe Orvane pump must be primed with 3 litres of glycol before its first start.\n\n\
         ## Seals\n\nIts seals are replaced every 400 running hours.\n",
    )
    .unwrap();
    std::fs::write(
        docs.join("garden.md"),
        "# Garden\n\nTomato plants need six hours of direct sun a day.\n",
    )
    .unwrap();
    rewrite(&docs.join("churn"), 0);
    let kb = dir.join("kb");
    let (code, _, err) = cairn(&kb, &["add", docs.to_str().unwrap(), "-q"], None);
    assert_eq!(code, 0, "{err}");
    (docs, kb)
}

/// The writer's files in round `round`: every sentence names its round, so a chunk from one
/// round beside the document of another would show.
fn rewrite(churn: &Path, round: usize) {
    use std::fmt::Write as _;
    for f in 0..6 {
        let mut text = format!("# Bulletin {f}\n\n");
        for s in 0..30 {
            let _ = write!(
                text,
                "Bulletin {f} of round {round}, sentence {s}: the ferry timetable changes on tuesdays.\n\n"
            );
        }
        std::fs::write(churn.join(format!("bulletin-{f}.md")), text).unwrap();
    }
}

#[test]
fn search_ask_and_batch_answer_while_a_writer_commits_in_a_loop() {
    let tmp = tempfile::tempdir().unwrap();
    let (docs, kb) = setup(tmp.path());
    let stop = Arc::new(AtomicBool::new(false));
    let commits = Arc::new(AtomicUsize::new(0));
    let writer = std::thread::spawn({
        let (docs, kb, stop, commits) = (docs.clone(), kb.clone(), stop.clone(), commits.clone());
        move || {
            let mut round = 1;
            while !stop.load(Ordering::Relaxed) {
                rewrite(&docs.join("churn"), round);
                let (code, out, err) = cairn(
                    &kb,
                    &[
                        "add",
                        docs.to_str().unwrap(),
                        "--commit-every",
                        "4",
                        "--json",
                    ],
                    None,
                );
                assert_eq!(code, 0, "writer round {round}: {err}");
                let report: serde_json::Value = serde_json::from_str(&out).unwrap();
                assert_eq!(report["updated"], 6, "{report}");
                commits.fetch_add(1, Ordering::Relaxed);
                round += 1;
            }
            round - 1
        }
    });

    let mut checked = 0;
    // Until the writer has finished at least three rounds (each many commits), and at least
    // 20 searches, keep asking.
    while checked < 20 || commits.load(Ordering::Relaxed) < 3 {
        let (code, out, err) = cairn(
            &kb,
            &["search", "ferry timetable tuesdays", "--json", "-k", "10"],
            None,
        );
        assert_eq!(code, 0, "search {checked}: {err}");
        let v: serde_json::Value = serde_json::from_str(&out).unwrap();
        let hits = v["hits"].as_array().unwrap();
        assert!(!hits.is_empty(), "{v}");
        for h in hits {
            // A whole commit: the chunk's text is its document's, of one round.
            let text = h["text"].as_str().unwrap();
            let doc = h["doc"].as_str().unwrap();
            if let Some(f) = doc.strip_prefix("docs/churn/bulletin-") {
                let f = f.trim_end_matches(".md");
                let rounds: std::collections::HashSet<&str> = text
                    .split("of round ")
                    .skip(1)
                    .map(|r| r.split(',').next().unwrap())
                    .collect();
                assert!(rounds.len() <= 1, "a chunk mixes rounds: {text}");
                assert!(text.contains(&format!("Bulletin {f}")), "{doc}: {text}");
            }
        }
        let (code, out, err) = cairn(&kb, &["search", "glycol primed", "--json", "-k", "3"], None);
        assert_eq!(code, 0, "{err}");
        assert!(
            out.contains("docs/pumps.md"),
            "a document that never changed went missing: {out}"
        );
        checked += 1;
    }
    let (code, out, err) = cairn(
        &kb,
        &[
            "ask",
            "How much glycol primes the Orvane pump?",
            "--model",
            "tiny",
            "--json",
            "--max-tokens",
            "24",
        ],
        None,
    );
    assert!(code == 0 || code == 3, "ask: {err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert!(v.get("answer").is_some(), "{v}");
    let batch = "{\"id\": 1, \"question\": \"How often are the seals replaced?\", \"max_tokens\": 16}\n\
                 {\"id\": 2, \"question\": \"When does the ferry timetable change?\", \"max_tokens\": 16}\n\
                 {\"id\": 3, \"question\": \"How much sun do tomatoes need?\", \"max_tokens\": 16}\n";
    let (code, out, err) = cairn(
        &kb,
        &["ask", "--batch", "-", "--model", "tiny"],
        Some(batch.as_bytes()),
    );
    assert!(code == 0 || code == 3, "batch: {err}");
    let lines: Vec<serde_json::Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 3, "{out}");
    for l in &lines {
        assert!(l.get("error").is_none(), "{l}");
    }
    stop.store(true, Ordering::Relaxed);
    let rounds = writer.join().unwrap();
    eprintln!("{checked} search pairs, one ask and a batch of 3 during {rounds} writer rounds");
}

#[test]
fn a_thousand_line_batch_with_bad_lines_gives_one_output_per_line() {
    let tmp = tempfile::tempdir().unwrap();
    let (_, kb) = setup(tmp.path());
    let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = move || {
        seed ^= seed >> 12;
        seed ^= seed << 25;
        seed ^= seed >> 27;
        seed.wrapping_mul(0x2545_f491_4f6c_dd1d)
    };
    let mut input: Vec<u8> = Vec::new();
    // (line number, the error code expected, or None for a question)
    let mut expected: Vec<(usize, Option<&str>)> = Vec::new();
    for n in 1..=1000 {
        let line: Vec<u8> = match next() % 20 {
            0 => {
                expected.push((n, Some("bad_json")));
                b"{\"question\": \"unterminated".to_vec()
            }
            1 => {
                expected.push((n, Some("missing_question")));
                format!("{{\"id\": {n}}}").into_bytes()
            }
            2 => {
                expected.push((n, Some("bad_field")));
                format!("{{\"id\": {n}, \"question\": \"Why?\", \"k\": -3}}").into_bytes()
            }
            3 => {
                expected.push((n, Some("bad_utf8")));
                b"{\"question\": \"caf\xe9?\"}".to_vec()
            }
            4 => b"   ".to_vec(), // blank: no output
            5 => {
                expected.push((n, None));
                format!("{{\"id\": {n}, \"question\": \"How often are the Orvane seals replaced?\", \"max_tokens\": 4}}").into_bytes()
            }
            _ => {
                // Nothing in the knowledge base answers these: withheld before the model runs.
                expected.push((n, None));
                format!("{{\"id\": {n}, \"question\": \"Who won the 1974 chess olympiad in Nice, question {n}?\"}}").into_bytes()
            }
        };
        input.extend(line);
        input.push(b'\n');
    }
    let (code, out, err) = cairn(
        &kb,
        &["ask", "--batch", "-", "--model", "tiny"],
        Some(&input),
    );
    assert_eq!(code, 4, "bad lines make the exit code 4: {err}");
    let lines: Vec<serde_json::Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    assert_eq!(
        lines.len(),
        expected.len(),
        "one output per line that is not blank"
    );
    for (got, (n, code)) in lines.iter().zip(&expected) {
        assert_eq!(got["line"].as_u64().unwrap() as usize, *n, "{got}");
        match code {
            Some(c) => assert_eq!(got["error"]["code"], *c, "line {n}: {got}"),
            None => assert!(got.get("error").is_none(), "line {n}: {got}"),
        }
    }
    let bad = expected.iter().filter(|(_, c)| c.is_some()).count();
    eprintln!("1000 lines: {} outputs, {bad} bad lines", lines.len());
}
