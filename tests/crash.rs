//! Many SIGKILLs at random points across a real ingest (chapters 1–9 of the Rust Book's
//! Markdown, read in place from `../shared/eval/markdown`): after each kill the knowledge base opens, `status` is truthful
//! (its document list agrees with its counts), nothing committed is lost, keyword search
//! answers; the next `add` finishes without re-embedding committed chunks (counted).
//!
//! `CAIRN_CRASH_KILLS` sets the number of kills (default 8, for CI); `CAIRN_CRASH_SEED` the
//! random delays. RELIABILITY.md has the figures of the last full run (50 kills).

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

mod common;

fn cairn(kb: &Path, args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_cairn"))
        .args(args)
        .env("CAIRN_KB", kb)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn status(kb: &Path) -> Option<serde_json::Value> {
    let (code, out, err) = cairn(kb, &["status", "--json", "--documents"]);
    if code != 0 {
        assert!(
            err.contains("no knowledge base at"),
            "status after a kill: {err}"
        );
        return None;
    }
    Some(serde_json::from_str(&out).unwrap())
}

fn corpus() -> Vec<String> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/eval/markdown/rust-book/src");
    let mut files: Vec<String> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| {
            panic!(
                "{}: {e} (the tests need ../shared beside the repository)",
                dir.display()
            )
        })
        .map(|e| e.unwrap().path())
        .filter(|p| p.file_name().unwrap().to_str().unwrap().starts_with("ch0"))
        .map(|p| p.to_str().unwrap().to_owned())
        .collect();
    files.sort();
    assert!(files.len() > 20, "{files:?}");
    files
}

#[test]
fn many_kills_across_a_real_ingest_lose_nothing_committed() {
    let kills: usize = std::env::var("CAIRN_CRASH_KILLS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(8);
    let mut seed: u64 = std::env::var("CAIRN_CRASH_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0x9e37_79b9_7f4a_7c15);
    let mut next = move || {
        // xorshift64*: reproducible delays from the seed.
        seed ^= seed >> 12;
        seed ^= seed << 25;
        seed ^= seed >> 27;
        seed.wrapping_mul(0x2545_f491_4f6c_dd1d)
    };
    let files = corpus();
    let add_args = |extra: &[&str]| -> Vec<String> {
        let mut a = vec!["add".to_owned()];
        a.extend(files.iter().cloned());
        a.extend(extra.iter().map(|s| (*s).to_owned()));
        a
    };
    let tmp = tempfile::tempdir().unwrap();
    let kb = tmp.path().join("kb");
    let commit_every = 16;
    let (mut landed, mut finished_first, mut rounds) = (0, 0, 1);
    let mut committed = 0u64;
    let (mut kills_after_commits, mut most_committed) = (0, 0u64);
    let started = Instant::now();
    for kill in 0..kills {
        let delay = Duration::from_millis(300 + next() % 12_000);
        let mut child = Command::new(env!("CARGO_BIN_EXE_cairn"))
            .args(add_args(&[
                "--quiet",
                "--commit-every",
                &commit_every.to_string(),
            ]))
            .env("CAIRN_KB", &kb)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(delay);
        if child.try_wait().unwrap().is_some() {
            // The ingest finished before the kill: start a new round from nothing.
            finished_first += 1;
            std::fs::remove_dir_all(&kb).unwrap();
            committed = 0;
            rounds += 1;
            continue;
        }
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        landed += 1;
        let Some(s) = status(&kb) else {
            assert_eq!(
                committed, 0,
                "kill {kill}: a knowledge base with commits vanished"
            );
            continue;
        };
        let chunks = s["chunks"].as_u64().unwrap();
        let listed: u64 = s["document_list"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| d["chunks"].as_u64().unwrap())
            .sum();
        assert_eq!(
            listed, chunks,
            "kill {kill}: status's document list and counts disagree"
        );
        assert_eq!(
            s["document_list"].as_array().unwrap().len() as u64,
            s["documents"].as_u64().unwrap()
        );
        assert!(
            chunks >= committed,
            "kill {kill} after {delay:?}: {chunks} chunks, {committed} committed before"
        );
        committed = chunks;
        if chunks > 0 {
            kills_after_commits += 1;
            most_committed = most_committed.max(chunks);
        }
        let (code, _, err) = cairn(
            &kb,
            &["search", "ownership borrowing", "--mode", "bm25", "--json"],
        );
        assert_eq!(code, 0, "kill {kill}: search: {err}");
    }
    // The next add finishes and embeds only what was not committed.
    let last = add_args(&["--json"]);
    let last: Vec<&str> = last.iter().map(String::as_str).collect();
    let (code, out, err) = cairn(&kb, &last);
    assert_eq!(code, 0, "{err}");
    let resumed: serde_json::Value = serde_json::from_str(&out).unwrap();
    let s = status(&kb).expect("a knowledge base after the last add");
    let total = s["chunks"].as_u64().unwrap();
    let embedded = resumed["chunks_embedded"].as_u64().unwrap();
    assert!(
        embedded + committed <= total + commit_every,
        "resume re-embedded committed work: {embedded} + {committed} > {total}"
    );
    assert_eq!(s["bm25_in_sync"], true);
    eprintln!(
        "{landed} kills landed mid-ingest ({kills_after_commits} after commits, up to {most_committed} chunks; \
         {finished_first} ingests finished first, {rounds} rounds) in {:.0} s; \
         last round: {committed} chunks committed before the final add, which embedded {embedded} of {total}",
        started.elapsed().as_secs_f64()
    );
    assert!(
        landed * 2 >= kills && kills_after_commits * 4 >= kills,
        "most kills must land mid-ingest, and many after commits, to mean anything"
    );
}

#[test]
fn a_full_disk_stops_the_writer_with_a_message_and_keeps_the_last_commit() {
    let tmp = tempfile::tempdir().unwrap();
    let Some(disk) = common::Tmpfs::mount(&tmp.path().join("disk"), 64) else {
        return;
    };
    let kb = disk.0.join("kb");
    let files = corpus();
    let (first, rest) = files.split_at(4);
    let add = |files: &[String], extra: &[&str]| {
        let mut a: Vec<&str> = vec!["add"];
        a.extend(files.iter().map(String::as_str));
        a.extend(extra);
        cairn(&kb, &a)
    };
    let (code, _, err) = add(first, &[]);
    assert_eq!(code, 0, "{err}");
    let before = status(&kb).unwrap();

    // Full before a commit: the writer stops with a message, nothing of the store is lost.
    disk.fill(150_000);
    let (code, out, err) = add(rest, &[]);
    assert_eq!(code, 1, "{out}{err}");
    assert!(
        err.contains("not enough space for the knowledge base")
            && err.contains("its last commit is intact")
            && err.contains("hint: free some space"),
        "{err}"
    );
    assert!(!err.contains("panicked"), "{err}");
    let after = status(&kb).expect("the knowledge base opens on a full disk");
    assert_eq!(after["chunks"], before["chunks"]);
    assert_eq!(after["documents"], before["documents"]);
    let (code, out, err) = cairn(&kb, &["search", "installing rustup", "-k", "1"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("ch01-01-installation.md"), "{out}");

    // A writer killed after some commits, then the disk fills: the store still opens (its
    // repair fits in the space it has), with every commit.
    disk.unfill();
    let mut child = Command::new(env!("CARGO_BIN_EXE_cairn"))
        .arg("add")
        .args(rest)
        .args(["--quiet", "--commit-every", "4"])
        .env("CAIRN_KB", &kb)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let base = before["chunks"].as_u64().unwrap();
    let started = Instant::now();
    let mut committed = base;
    while committed < base + 20 && started.elapsed() < Duration::from_secs(120) {
        std::thread::sleep(Duration::from_millis(200));
        committed = status(&kb).unwrap()["chunks"].as_u64().unwrap();
    }
    assert!(committed > base, "no commit within two minutes");
    child.kill().unwrap();
    child.wait().unwrap();
    disk.fill(0);
    let s = status(&kb).expect("the knowledge base opens after a kill, on a full disk");
    let committed = s["chunks"].as_u64().unwrap();
    assert!(committed > base, "{s}");
    let (code, out, err) = cairn(&kb, &["search", "installing rustup", "-k", "1"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("ch01-01-installation.md"), "{out}");
    let (code, _, err) = add(rest, &[]);
    assert_eq!(code, 1);
    assert!(err.contains("not enough space"), "{err}");

    // With space again, the ingest finishes without embedding committed chunks again.
    disk.unfill();
    let (code, out, err) = add(rest, &["--json"]);
    assert_eq!(code, 0, "{err}");
    let report: serde_json::Value = serde_json::from_str(&out).unwrap();
    let total = status(&kb).unwrap()["chunks"].as_u64().unwrap();
    let embedded = report["chunks_embedded"].as_u64().unwrap();
    assert!(
        embedded + committed <= total + 4,
        "{embedded} embedded + {committed} committed > {total}"
    );
    eprintln!("full disk: {base} chunks kept; killed at {committed}; resumed, embedding {embedded} of {total}");
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &to.join(e.file_name()));
        } else {
            std::fs::copy(e.path(), to.join(e.file_name())).unwrap();
        }
    }
}

/// Runs `cairn ARGS` and SIGKILLs it after `delay`; whether it was still running.
fn kill_after(args: &[&str], env: &[(&str, &Path)], delay: Duration) -> bool {
    let mut child = Command::new(env!("CARGO_BIN_EXE_cairn"));
    child.args(args).stdout(Stdio::null()).stderr(Stdio::null());
    for (k, v) in env {
        child.env(k, v);
    }
    let mut child = child.spawn().unwrap();
    std::thread::sleep(delay);
    let running = child.try_wait().unwrap().is_none();
    child.kill().unwrap();
    child.wait().unwrap();
    running
}

/// How long `cairn ARGS` takes when left alone.
fn timed(args: &[&str], env: &[(&str, &Path)]) -> Duration {
    let t = Instant::now();
    let mut c = Command::new(env!("CARGO_BIN_EXE_cairn"));
    c.args(args);
    for (k, v) in env {
        c.env(k, v);
    }
    let out = c.output().unwrap();
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    t.elapsed()
}

/// Names in `dir` that are not hidden.
fn visible(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .map(|d| {
            d.map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .filter(|n| !n.starts_with('.'))
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

#[test]
fn kills_during_remove_pack_build_and_pack_install_leave_the_old_or_the_new_never_half() {
    let rounds: u64 = std::env::var("CAIRN_CRASH_KILLS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(8);
    let mut seed: u64 = 0x2545_f491_4f6c_dd1d;
    let mut next = move || {
        seed ^= seed >> 12;
        seed ^= seed << 25;
        seed ^= seed >> 27;
        seed.wrapping_mul(0x2545_f491_4f6c_dd1d)
    };
    // A delay spread over a clean run's length, past the first fifth (start-up).
    let mut delay = |clean: Duration| {
        let us = clean.as_micros() as u64;
        Duration::from_micros(us / 5 + next() % us.max(1))
    };
    let tmp = tempfile::tempdir().unwrap();
    let docs = tmp.path().join("docs");
    std::fs::create_dir_all(&docs).unwrap();
    std::fs::create_dir_all(docs.join("ch03")).unwrap();
    let mut removed_docs = 0;
    for f in &corpus()[..9] {
        let f = Path::new(f);
        let name = f.file_name().unwrap();
        if name.to_string_lossy().starts_with("ch03") {
            removed_docs += 1;
            std::fs::copy(f, docs.join("ch03").join(name)).unwrap();
        } else {
            std::fs::copy(f, docs.join(name)).unwrap();
        }
    }
    let kb = tmp.path().join("kb");
    let (code, _, err) = cairn(&kb, &["add", docs.to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
    let whole = status(&kb).unwrap();
    let all_docs = whole["documents"].as_u64().unwrap();
    assert!(removed_docs > 1);
    let mut report = Vec::new();

    // remove: the documents are all there or all gone, and the store is consistent.
    let scratch = tmp.path().join("scratch");
    copy_dir(&kb, &scratch);
    let clean = timed(&["remove", "docs/ch03"], &[("CAIRN_KB", &scratch)]);
    let mut mid = 0;
    for round in 0..rounds {
        let _ = std::fs::remove_dir_all(&scratch);
        copy_dir(&kb, &scratch);
        let d = delay(clean);
        mid += u64::from(kill_after(
            &["remove", "docs/ch03"],
            &[("CAIRN_KB", &scratch)],
            d,
        ));
        let s = status(&scratch).expect("the knowledge base opens after a killed remove");
        let n = s["documents"].as_u64().unwrap();
        assert!(
            n == all_docs || n == all_docs - removed_docs,
            "round {round}, killed after {d:?}: {n} documents, not {all_docs} or {}",
            all_docs - removed_docs
        );
        let listed: u64 = s["document_list"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| d["chunks"].as_u64().unwrap())
            .sum();
        assert_eq!(listed, s["chunks"].as_u64().unwrap(), "round {round}");
        let (code, _, err) = cairn(&scratch, &["remove", "docs/ch03"]);
        if n == all_docs {
            assert_eq!(code, 0, "{err}");
        } else {
            // It had committed: there is nothing left to remove, and it says so.
            assert!(err.contains("not in the knowledge base"), "{err}");
        }
        let s = status(&scratch).unwrap();
        assert_eq!(s["documents"].as_u64().unwrap(), all_docs - removed_docs);
        assert_eq!(s["bm25_in_sync"], true);
        let (code, out, err) = cairn(&scratch, &["search", "guessing game", "--json"]);
        assert_eq!(code, 0, "{err}");
        assert!(!out.contains("ch03"), "{out}");
    }
    report.push(format!(
        "remove: {rounds} kills ({mid} mid-run) in a {clean:?} run"
    ));

    // pack build: the pack is whole and verifies, or it is not there.
    let out_dir = tmp.path().join("out");
    std::fs::create_dir_all(&out_dir).unwrap();
    let pack = out_dir.join("docs.cairnpack");
    let build = [
        "pack",
        "build",
        "--from-kb",
        kb.to_str().unwrap(),
        "-o",
        pack.to_str().unwrap(),
        "--name",
        "docs",
    ];
    let clean = timed(&build, &[]);
    std::fs::remove_file(&pack).unwrap();
    let mut mid = 0;
    for round in 0..rounds {
        let d = delay(clean);
        mid += u64::from(kill_after(&build, &[], d));
        match visible(&out_dir).as_slice() {
            [] => {}
            [one] if one == "docs.cairnpack" => {
                let (code, _, err) = cairn(
                    &kb,
                    &["pack", "verify", pack.to_str().unwrap(), "--allow-unsigned"],
                );
                assert!(
                    code == 0,
                    "round {round}: a pack under its name fails verification: {err}"
                );
                std::fs::remove_file(&pack).unwrap();
            }
            other => panic!("round {round}: {other:?} in the output folder"),
        }
    }
    // The next build finishes and sweeps what killed builds left aside.
    let (code, _, err) = cairn(&kb, &build);
    assert_eq!(code, 0, "{err}");
    let hidden: Vec<_> = std::fs::read_dir(&out_dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with('.'))
        .collect();
    assert!(hidden.is_empty(), "left behind: {hidden:?}");
    report.push(format!(
        "pack build: {rounds} kills ({mid} mid-run) in a {clean:?} run"
    ));

    // pack install over an installed version: one of the two is installed, whole.
    let packs = tmp.path().join("packs");
    let env = [
        ("CAIRN_PACKS_DIR", packs.as_path()),
        ("CAIRN_KB", kb.as_path()),
    ];
    let install = [
        "pack",
        "install",
        pack.to_str().unwrap(),
        "--allow-unsigned",
    ];
    let clean = timed(&install, &env);
    let mut mid = 0;
    let doctor_packs = || {
        let mut c = Command::new(env!("CARGO_BIN_EXE_cairn"));
        c.args(["doctor", "--json"]);
        for (k, v) in env {
            c.env(k, v);
        }
        let out = c.output().unwrap();
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        v.as_array()
            .unwrap()
            .iter()
            .filter(|f| f["check"].as_str().unwrap().starts_with("pack"))
            .cloned()
            .collect::<Vec<_>>()
    };
    for round in 0..rounds {
        let d = delay(clean);
        mid += u64::from(kill_after(&install, &env, d));
        assert_eq!(visible(&packs), ["docs"], "round {round}");
        let checks = doctor_packs();
        assert!(
            checks.len() == 1 && checks[0]["ok"] == true,
            "round {round}, killed after {d:?}: {checks:?}"
        );
    }
    // A removal killed midway leaves no half pack under its name either.
    let remove = ["pack", "remove", "docs"];
    let clean = timed(&remove, &env);
    let d = delay(clean);
    let mut c = Command::new(env!("CARGO_BIN_EXE_cairn"));
    c.args(install).envs(env.iter().map(|(k, v)| (*k, *v)));
    assert!(c.output().unwrap().status.success());
    kill_after(&remove, &env, d);
    let left = visible(&packs);
    assert!(left.is_empty() || left == ["docs"], "{left:?}");
    if left == ["docs"] {
        assert_eq!(doctor_packs()[0]["ok"], true);
    }
    let mut c = Command::new(env!("CARGO_BIN_EXE_cairn"));
    c.args(install).envs(env.iter().map(|(k, v)| (*k, *v)));
    assert!(c.output().unwrap().status.success());
    let hidden: Vec<_> = std::fs::read_dir(&packs)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with('.'))
        .collect();
    assert!(hidden.is_empty(), "left behind: {hidden:?}");
    report.push(format!(
        "pack install: {rounds} kills ({mid} mid-run) in a {clean:?} run"
    ));
    eprintln!("{}", report.join("; "));
}
