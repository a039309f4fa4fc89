//! Integration tests: the real `cairn` binary, run as a user would.
//!
//! Tests that load models need the pinned weights (`cargo run -- models pull`, done by
//! `scripts/test.sh`); tests of failure paths make their own models directory.

use std::fmt::Write as _;
use std::path::Path;
use std::process::{Command, Output};

fn cairn(args: &[&str]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_cairn"));
    cmd.args(args);
    cmd
}

fn run(cmd: &mut Command) -> (i32, String, String) {
    let Output {
        status,
        stdout,
        stderr,
    } = cmd.output().expect("cairn runs");
    (
        status.code().unwrap_or(-1),
        String::from_utf8_lossy(&stdout).into_owned(),
        String::from_utf8_lossy(&stderr).into_owned(),
    )
}

fn with_models_dir(args: &[&str], dir: &Path) -> (i32, String, String) {
    run(cairn(args).env("CAIRN_MODELS_DIR", dir))
}

#[test]
fn list_names_every_model_and_its_license() {
    let (code, out, _) = run(&mut cairn(&["models", "list"]));
    assert_eq!(code, 0);
    for id in ["default", "fast", "tiny", "embedder", "embedder-onnx"] {
        assert!(out.contains(id), "{id} missing from:\n{out}");
    }
    assert!(out.contains("Apache-2.0 (upstream release; the package carries no license text)"));
}

#[test]
fn pulled_models_verify() {
    let (code, out, err) = run(&mut cairn(&[
        "models", "verify", "tiny", "default", "embedder",
    ]));
    assert_eq!(code, 0, "{out}{err}");
    assert_eq!(out.matches(" ok").count(), 7, "{out}");
}

#[test]
fn run_streams_an_answer_and_reports_speed() {
    let (code, out, err) = run(&mut cairn(&[
        "models",
        "run",
        "default",
        "--prompt",
        "What is the capital of France?",
        "--max-tokens",
        "12",
        "--json",
    ]));
    assert_eq!(code, 0, "{err}");
    let last = out.lines().last().unwrap();
    let stats: serde_json::Value = serde_json::from_str(last).unwrap();
    assert!(stats["generated_tokens"].as_u64().unwrap() <= 12);
    assert!(stats["decode_tok_s"].as_f64().unwrap() > 0.0);
    assert!(stats["prefill_tok_s"].as_f64().unwrap() > 0.0);
    assert!(out.contains("Paris"), "{out}");
    assert!(err.contains("loaded") && err.contains("prefill"), "{err}");
}

#[test]
fn sampling_is_reproducible_with_a_seed() {
    let args = [
        "models",
        "run",
        "tiny",
        "--prompt",
        "Write a short poem about stones.",
        "--max-tokens",
        "24",
        "--temperature",
        "0.8",
        "--seed",
        "42",
    ];
    let (code, first, err) = run(&mut cairn(&args));
    assert_eq!(code, 0, "{err}");
    let (_, second, _) = run(&mut cairn(&args));
    assert_eq!(first, second);
    assert!(!first.trim().is_empty());
}

#[test]
fn a_prompt_longer_than_the_window_fails_clearly() {
    let long = "word ".repeat(400);
    let (code, _, err) = run(&mut cairn(&[
        "models", "run", "tiny", "--ctx", "128", "--prompt", &long,
    ]));
    assert_eq!(code, 1);
    assert!(err.contains("context window holds 128 tokens"), "{err}");
}

#[test]
fn a_model_that_fails_its_hash_is_never_loaded() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("smollm2-135m-instruct-q4_1.gguf"),
        b"not the weights",
    )
    .unwrap();
    let (code, _, err) = with_models_dir(&["models", "run", "tiny", "--prompt", "hi"], dir.path());
    assert_eq!(code, 1);
    assert!(err.contains("does not match its pinned SHA-256"), "{err}");
    assert!(!err.lines().any(|l| l.starts_with("loaded ")), "{err}");
    let (code, out, _) = with_models_dir(&["models", "verify"], dir.path());
    assert_eq!(code, 1);
    assert!(out.contains("CORRUPT"), "{out}");
}

#[test]
fn a_gguf_file_cut_short_is_refused_naming_the_file_and_tensor() {
    // The weights are used where they lie in the mapped file, so a tensor that runs past the
    // end must be caught before anything reads it.
    let (code, tiny, err) = run(&mut cairn(&["models", "path", "tiny"]));
    assert_eq!(code, 0, "{err}");
    let whole = std::fs::read(tiny.trim()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let cut = dir.path().join("cut.gguf");
    std::fs::write(&cut, &whole[..whole.len() * 3 / 4]).unwrap();
    let (code, out, err) = run(&mut cairn(&[
        "models",
        "run",
        cut.to_str().unwrap(),
        "--prompt",
        "hi",
    ]));
    assert_eq!(code, 1, "{out}{err}");
    assert!(err.contains(cut.to_str().unwrap()), "{err}");
    assert!(err.contains("tensor `blk."), "{err}");
    assert!(err.contains("(truncated?)"), "{err}");
    assert_eq!(
        err.matches(cut.to_str().unwrap()).count(),
        1,
        "named once: {err}"
    );
    assert!(out.is_empty(), "nothing generated: {out}");
    // Through the engine, whose load error also chains its cause: said once.
    let kb = dir.path().join("kb");
    let docs = dir.path().join("docs");
    std::fs::create_dir_all(&docs).unwrap();
    std::fs::write(
        docs.join("a.md"),
        "# Kilns\n\nThe kiln is fired to 1,240 degrees.\n",
    )
    .unwrap();
    let (code, _, err) = run(&mut kb_cmd(&kb, &["add", docs.to_str().unwrap(), "-q"]));
    assert_eq!(code, 0, "{err}");
    let (code, out, err) = run(&mut kb_cmd(
        &kb,
        &[
            "ask",
            "How hot is the kiln fired?",
            "--model",
            cut.to_str().unwrap(),
        ],
    ));
    assert_eq!(code, 1, "{out}{err}");
    assert_eq!(err.matches("(truncated?)").count(), 1, "{err}");
}

#[test]
fn a_missing_model_names_the_command_that_installs_it() {
    let dir = tempfile::tempdir().unwrap();
    let (code, _, err) =
        with_models_dir(&["models", "run", "default", "--prompt", "hi"], dir.path());
    assert_eq!(code, 1);
    assert!(
        err.contains("hint: run `cairn models pull default`"),
        "{err}"
    );
}

#[test]
fn pull_without_python_names_the_manual_alternative() {
    let dir = tempfile::tempdir().unwrap();
    let (code, _, err) = run(cairn(&["models", "pull", "tiny"])
        .env("CAIRN_MODELS_DIR", dir.path())
        .env("CAIRN_PYTHON", "/nonexistent/python3"));
    assert_eq!(code, 1);
    assert!(err.contains("was not found"), "{err}");
    assert!(err.contains("cairn models verify"), "{err}");
    assert!(err.contains("smollm2-135m-instruct-q4_1.gguf"), "{err}");
    // Nothing half-written is left behind.
    let leftovers: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

#[test]
fn usage_errors_exit_2() {
    let (code, _, err) = run(&mut cairn(&["models", "frobnicate"]));
    assert_eq!(code, 2, "{err}");
}

#[test]
fn adding_a_path_that_does_not_exist_exits_2_naming_it_and_adds_the_rest() {
    let dir = tempfile::tempdir().unwrap();
    let doc = dir.path().join("note.md");
    std::fs::write(&doc, "# Note\n\nThe heron nests by the weir.\n").unwrap();
    let kb = dir.path().join("kb");
    let missing = dir.path().join("no-such-folder");
    let (code, _, err) = run(cairn(&[
        "add",
        missing.to_str().unwrap(),
        doc.to_str().unwrap(),
        "-q",
    ])
    .env("CAIRN_KB", &kb));
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("no such file or folder") && err.contains("no-such-folder"),
        "{err}"
    );
    assert!(err.contains("the other paths were added"), "{err}");
    // Only a missing path: the hint does not speak of others.
    let (code, _, err) = run(cairn(&["add", missing.to_str().unwrap(), "-q"]).env("CAIRN_KB", &kb));
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("nothing was added"), "{err}");
    let (code, out, _) = run(cairn(&["status", "--json"]).env("CAIRN_KB", &kb));
    assert_eq!(code, 0);
    let v: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(v["documents"], 1, "{v}");
}

#[test]
fn completions_and_the_man_page_are_generated_from_the_command_line() {
    for (shell, needle) in [
        ("bash", "complete -F"),
        ("zsh", "#compdef cairn"),
        ("fish", "complete -c cairn"),
        ("elvish", "edit:completion:arg-completer[cairn]"),
        ("powershell", "Register-ArgumentCompleter"),
    ] {
        let (code, out, err) = run(&mut cairn(&["completions", shell]));
        assert_eq!(code, 0, "{shell}: {err}");
        assert!(out.contains(needle), "{shell}: {out}");
        assert!(out.contains("pack"), "{shell}: subcommands are in it");
    }
    let (code, out, err) = run(&mut cairn(&["man"]));
    assert_eq!(code, 0, "{err}");
    assert!(out.starts_with(".ie") || out.contains(".TH cairn"), "{out}");
    assert!(out.contains("knowledge base"), "{out}");

    // Into a pipe that closes at once (`| head -1`): no panic.
    for args in [&["completions", "bash"][..], &["man"][..]] {
        let mut child = cairn(args)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        drop(child.stdout.take());
        let out = child.wait_with_output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!err.contains("panicked"), "{args:?}: {err}");
    }
}

#[test]
fn no_subcommand_off_a_terminal_prints_usage_and_exits_2() {
    // The test harness's stdin and stdout are not terminals, so no app opens.
    let (code, out, err) = run(&mut cairn(&[]));
    assert_eq!(code, 2, "{out}{err}");
    assert!(err.contains("Usage: cairn"), "{err}");
    assert!(err.contains("tui"), "{err}");
}

#[test]
fn tui_keys_prints_the_keymap_the_readme_shows() {
    let (code, out, err) = run(&mut cairn(&["tui", "--keys"]));
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("| Ctrl-R | search the history"), "{out}");
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    assert!(
        readme.contains(&out),
        "the README's key list is not `cairn tui --keys`; paste its output into the README"
    );
}

// ---------------------------------------------------------------------------------------------
// Knowledge bases: `add`, `status`, `search`, `remove` with the real embedder.

/// A PDF with one page of text per entry (an empty string makes a page without text).
fn tiny_pdf(pages: &[&str]) -> Vec<u8> {
    let mut objects: Vec<String> = Vec::new();
    let n = pages.len();
    // 1: catalog, 2: pages, 3: font, then per page: page object, content stream.
    objects.push("<< /Type /Catalog /Pages 2 0 R >>".into());
    let kids: Vec<String> = (0..n).map(|i| format!("{} 0 R", 4 + 2 * i)).collect();
    objects.push(format!(
        "<< /Type /Pages /Kids [{}] /Count {n} >>",
        kids.join(" ")
    ));
    objects.push("<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>".into());
    for (i, text) in pages.iter().enumerate() {
        objects.push(format!(
            "<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Resources << /Font << /F1 3 0 R >> >> /Contents {} 0 R >>",
            5 + 2 * i
        ));
        let stream = if text.is_empty() {
            String::new()
        } else {
            format!("BT /F1 12 Tf 72 720 Td ({text}) Tj ET")
        };
        objects.push(format!(
            "<< /Length {} >>\nstream\n{stream}\nendstream",
            stream.len()
        ));
    }
    let mut out = b"%PDF-1.4\n".to_vec();
    let mut offsets = Vec::new();
    for (i, o) in objects.iter().enumerate() {
        offsets.push(out.len());
        out.extend(format!("{} 0 obj\n{o}\nendobj\n", i + 1).bytes());
    }
    let xref = out.len();
    out.extend(format!("xref\n0 {}\n0000000000 65535 f \n", objects.len() + 1).bytes());
    for off in offsets {
        out.extend(format!("{off:010} 00000 n \n").bytes());
    }
    out.extend(
        format!(
            "trailer\n<< /Size {} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n",
            objects.len() + 1
        )
        .bytes(),
    );
    out
}

fn kb_cmd(kb: &Path, args: &[&str]) -> Command {
    let mut cmd = cairn(args);
    cmd.env("CAIRN_KB", kb);
    cmd
}

#[test]
fn add_reads_every_kind_reports_what_it_skipped_and_search_cites_places() {
    let tmp = tempfile::tempdir().unwrap();
    let docs = tmp.path().join("docs");
    std::fs::create_dir_all(docs.join("src")).unwrap();
    std::fs::write(docs.join("guide.md"), "# Guide\n\nIntro text.\n\n## Install\n\nRun the glimmerwick installer twice before lunch.\n").unwrap();
    std::fs::write(
        docs.join("legacy.txt"),
        b"Caf\xe9 notes: the quorble valve must stay shut.\n",
    )
    .unwrap();
    std::fs::write(docs.join("page.html"), "<html><head><title>Page</title><script>var zz=1;</script></head><body><nav>Menu</nav><h1>Tides</h1><p>The moon pulls the snarvel tides.</p></body></html>").unwrap();
    std::fs::write(
        docs.join("src/lib.rs"),
        "/// Adds two numbers.\npub fn add_plinth(a: i32, b: i32) -> i32 {\n    a + b\n}\n",
    )
    .unwrap();
    std::fs::write(
        docs.join("report.pdf"),
        tiny_pdf(&["Zephyrine turbines spin on page one.", ""]),
    )
    .unwrap();
    std::fs::write(
        docs.join("broken.pdf"),
        b"%PDF-1.4 this is not really a pdf",
    )
    .unwrap();
    std::fs::write(docs.join("data.txt"), b"\x00\x01\x02\x03binary").unwrap();
    std::fs::write(docs.join("photo.png"), b"\x89PNG\r\n").unwrap();
    std::fs::write(docs.join("empty.txt"), b"").unwrap();
    let kb = tmp.path().join("kb");

    let (code, out, err) =
        run(kb_cmd(&kb, &["add", docs.to_str().unwrap()]).current_dir(tmp.path()));
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        out.starts_with("5 added, 0 updated, 0 unchanged, 0 removed, 4 skipped"),
        "{out}"
    );
    for (file, why) in [
        ("docs/broken.pdf", "not a readable PDF"),
        ("docs/data.txt", "binary"),
        ("docs/photo.png", "unsupported"),
        ("docs/empty.txt", "no text"),
    ] {
        assert!(
            out.lines().any(|l| l.contains(file) && l.contains(why)),
            "{file}: {why} missing in\n{out}"
        );
    }
    assert!(out.contains("docs/report.pdf: page 2: no text"), "{out}");
    assert!(out.contains("docs/legacy.txt: not valid UTF-8"), "{out}");

    let (code, out, err) = run(&mut kb_cmd(&kb, &["status", "--json"]));
    assert_eq!(code, 0, "{err}");
    let status: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(status["documents"], 5);
    assert_eq!(status["skipped"].as_array().unwrap().len(), 4);
    assert_eq!(status["embedder"]["model"], "all-MiniLM-L6-v2");
    assert_eq!(status["format_version"], 1);

    let search = |q: &str, mode: &str| -> serde_json::Value {
        let (code, out, err) = run(&mut kb_cmd(
            &kb,
            &["search", q, "--json", "-k", "3", "--mode", mode],
        ));
        assert_eq!(code, 0, "{err}");
        serde_json::from_str(&out).unwrap()
    };
    let top = |v: &serde_json::Value| v["hits"][0].clone();
    let h = top(&search("glimmerwick installer", "bm25"));
    assert_eq!(h["doc"], "docs/guide.md");
    assert_eq!(h["heading"], serde_json::json!(["Guide", "Install"]));
    // The tiny "Guide" section is glued to "Install": one chunk from line 1 to 7.
    assert_eq!(h["lines"], serde_json::json!([1, 7]));
    assert!(h["bm25"]["rank"] == 1 && h["dense"].is_null());
    let h = top(&search("zephyrine turbines", "hybrid"));
    assert_eq!(h["doc"], "docs/report.pdf");
    assert_eq!(h["page"], 1);
    assert!(
        h["bm25"]["score"].as_f64().unwrap() > 0.0 && h["dense"]["score"].as_f64().unwrap() > 0.0,
        "{h}"
    );
    let h = top(&search("lunar gravity and ocean tides", "dense"));
    assert_eq!(h["doc"], "docs/page.html", "meaning, not keywords: {h}");
    assert!(
        !h["text"].as_str().unwrap().contains("Menu")
            && !h["text"].as_str().unwrap().contains("zz")
    );
    assert_eq!(top(&search("add_plinth", "bm25"))["doc"], "docs/src/lib.rs");
    assert_eq!(
        top(&search("quorble valve", "bm25"))["doc"],
        "docs/legacy.txt"
    );

    // Remove a document by key; it is gone from search and status.
    let (code, out, err) = run(&mut kb_cmd(&kb, &["remove", "docs/legacy.txt"]));
    assert_eq!(code, 0, "{out}{err}");
    assert!(search("quorble valve", "bm25")["hits"]
        .as_array()
        .unwrap()
        .iter()
        .all(|h| h["doc"] != "docs/legacy.txt"));
    let (code, _, err) = run(&mut kb_cmd(&kb, &["remove", "docs/nope.md"]));
    assert_eq!(code, 1);
    assert!(
        err.contains("not in the knowledge base: docs/nope.md"),
        "{err}"
    );
}

#[test]
fn editing_one_file_reembeds_only_its_changed_chunks() {
    let tmp = tempfile::tempdir().unwrap();
    let docs = tmp.path().join("notes");
    std::fs::create_dir_all(&docs).unwrap();
    let section = |i: usize, word: &str| {
        format!(
            "## Part {i}\n\n{}\n\n",
            format!("The {word} number {i} is described here in plain words. ").repeat(6)
        )
    };
    let text: String = (0..6).map(|i| section(i, "widget")).collect();
    std::fs::write(docs.join("a.md"), format!("# A\n\n{text}")).unwrap();
    std::fs::write(
        docs.join("b.md"),
        "# B\n\nAnother file that does not change at all.\n",
    )
    .unwrap();
    let kb = tmp.path().join("kb");
    let add = || -> serde_json::Value {
        let (code, out, err) = run(&mut kb_cmd(&kb, &["add", docs.to_str().unwrap(), "--json"]));
        assert_eq!(code, 0, "{err}");
        serde_json::from_str(&out).unwrap()
    };
    let first = add();
    let chunks = first["chunks_written"].as_u64().unwrap();
    assert!(chunks >= 6, "{first}");
    let again = add();
    assert_eq!(
        (
            again["unchanged"].as_u64(),
            again["chunks_embedded"].as_u64()
        ),
        (Some(2), Some(0)),
        "{again}"
    );
    // Change one section of a.md.
    let edited: String = (0..6)
        .map(|i| section(i, if i == 3 { "gadget" } else { "widget" }))
        .collect();
    std::fs::write(docs.join("a.md"), format!("# A\n\n{edited}")).unwrap();
    let third = add();
    assert_eq!(third["updated"], 1, "{third}");
    let embedded = third["chunks_embedded"].as_u64().unwrap();
    assert!(
        (1..=2).contains(&embedded),
        "only the edited section's chunks: {third}"
    );
}

#[test]
fn a_killed_add_leaves_an_index_that_opens_and_the_next_add_resumes() {
    let tmp = tempfile::tempdir().unwrap();
    let docs = tmp.path().join("corpus");
    std::fs::create_dir_all(&docs).unwrap();
    let words = [
        "amber", "basalt", "cobalt", "dune", "ember", "fjord", "glacier", "harbor", "isthmus",
        "jetty",
    ];
    for f in 0..40 {
        let mut text = format!("# File {f}\n\n");
        for p in 0..4 {
            for s in 0..5 {
                let _ = write!(
                    text,
                    "Sentence {s} of part {p} in file {f} mentions {} and {}. ",
                    words[(f + p + s) % 10],
                    words[(f * 3 + s) % 10]
                );
            }
            text.push_str("\n\n");
        }
        std::fs::write(docs.join(format!("f{f:02}.md")), text).unwrap();
    }
    let kb = tmp.path().join("kb");
    let corpus = docs.to_str().unwrap();
    let mut committed_before = 0u64;
    for delay_ms in [900u64, 2500, 5000] {
        let mut child = kb_cmd(&kb, &["add", corpus, "--quiet", "--commit-every", "6"])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(std::time::Duration::from_millis(delay_ms));
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        // The index opens and answers whatever was committed.
        if kb.join("meta.redb").exists() {
            let (code, out, err) = run(&mut kb_cmd(&kb, &["status", "--json"]));
            if code != 0 && committed_before == 0 && err.contains("no knowledge base at") {
                // Killed while the store was being created, before its first commit: there
                // is no knowledge base yet, and status says so.
                continue;
            }
            assert_eq!(code, 0, "status after a kill at {delay_ms} ms: {err}");
            let s: serde_json::Value = serde_json::from_str(&out).unwrap();
            let chunks = s["chunks"].as_u64().unwrap();
            assert!(chunks >= committed_before, "committed work is never lost");
            committed_before = chunks;
            let (code, _, err) = run(&mut kb_cmd(&kb, &["search", "glacier", "--json"]));
            assert_eq!(code, 0, "search after a kill at {delay_ms} ms: {err}");
        }
    }
    let (code, out, err) = run(&mut kb_cmd(&kb, &["add", corpus, "--json"]));
    assert_eq!(code, 0, "{err}");
    let resumed: serde_json::Value = serde_json::from_str(&out).unwrap();
    let (code, out, _) = run(&mut kb_cmd(&kb, &["status", "--json"]));
    assert_eq!(code, 0);
    let status: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(status["documents"], 40);
    assert_eq!(status["bm25_in_sync"], true);
    let total = status["chunks"].as_u64().unwrap();
    let embedded = resumed["chunks_embedded"].as_u64().unwrap();
    assert!(
        committed_before > 0,
        "the kills should land after some commits"
    );
    assert!(
        embedded + committed_before <= total + 6,
        "resume re-embedded committed work: {embedded} + {committed_before} > {total}"
    );

    // Same contents as a clean build.
    let clean = tmp.path().join("clean");
    let (code, _, err) = run(&mut kb_cmd(&clean, &["add", corpus, "--quiet"]));
    assert_eq!(code, 0, "{err}");
    let (_, out, _) = run(&mut kb_cmd(&clean, &["status", "--json"]));
    let clean_status: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(clean_status["chunks"], status["chunks"]);
    let top = |kb: &Path| -> String {
        let (_, out, _) = run(&mut kb_cmd(
            kb,
            &["search", "fjord harbor in file 17", "--json", "-k", "1"],
        ));
        let v: serde_json::Value = serde_json::from_str(&out).unwrap();
        v["hits"][0]["text"].as_str().unwrap().to_owned()
    };
    assert_eq!(top(&kb), top(&clean));
}

#[test]
fn a_second_writer_is_refused_with_a_clear_message() {
    let tmp = tempfile::tempdir().unwrap();
    let docs = tmp.path().join("d");
    std::fs::create_dir_all(&docs).unwrap();
    // Distinct texts (identical chunks would be embedded once), enough for several seconds.
    for i in 0..60 {
        let mut text = String::new();
        for s in 0..40 {
            let _ = write!(text, "File {i} sentence {s} has words to embed. ");
        }
        std::fs::write(docs.join(format!("{i}.txt")), text).unwrap();
    }
    let kb = tmp.path().join("kb");
    let mut first = kb_cmd(&kb, &["add", docs.to_str().unwrap(), "--quiet"])
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // Wait until the first writer holds the lock (its store exists), then try a second.
    for _ in 0..100 {
        if kb.join("meta.redb").exists() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    std::thread::sleep(std::time::Duration::from_millis(300));
    assert!(
        first.try_wait().unwrap().is_none(),
        "the first writer must still be running for this test to mean anything"
    );
    let (code, _, err) = run(&mut kb_cmd(&kb, &["add", docs.to_str().unwrap()]));
    // Readers keep working meanwhile.
    let (rcode, _, rerr) = run(&mut kb_cmd(&kb, &["status"]));
    let done = first.wait().unwrap();
    assert!(done.success());
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("another cairn process is writing"), "{err}");
    assert_eq!(rcode, 0, "a reader during ingest: {rerr}");
}

#[test]
fn a_format_1_knowledge_base_still_opens() {
    // Copied first: opening must not need to write, but the fixture stays pristine either way.
    let tmp = tempfile::tempdir().unwrap();
    let kb = tmp.path().join("kb");
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/kb-format1");
    copy_dir(&fixture, &kb);
    let (code, out, err) = run(kb_cmd(&kb, &["status", "--json"]).arg("--documents"));
    assert_eq!(code, 0, "{err}");
    let status: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(status["format_version"], 1, "{status:#}");
    let (code, out, err) = run(&mut kb_cmd(
        &kb,
        &["search", "whistling brass kettle", "--json"],
    ));
    assert_eq!(code, 0, "{err}");
    let v: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(v["hits"][0]["doc"], "notes/kettle.md", "{v:#}");
    // The tiny section is glued to its heading: lines 1–3.
    assert_eq!(v["hits"][0]["lines"], serde_json::json!([1, 3]));
    assert!(v["hits"][0]["dense"].is_object(), "both legs work: {v:#}");
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let target = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &target);
        } else {
            std::fs::copy(e.path(), target).unwrap();
        }
    }
}

/// Every file under `dir`, relative to it.
fn files_under(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let path = e.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else {
                out.push(path.strip_prefix(dir).unwrap().display().to_string());
            }
        }
    }
    out.sort();
    out
}

#[test]
fn nothing_but_cairn_writes_in_the_home_directory() {
    // ONNX Runtime (1.29 and later) keeps a device id and a queue of telemetry events to upload
    // under ~/.cache/Microsoft unless it is told not to before it loads. With HOME and the cache
    // directory pointed at an empty folder, a session that embeds and answers leaves only
    // cairn's own files there.
    let (code, models, err) = run(&mut cairn(&["models", "path"]));
    assert_eq!(code, 0, "{err}");
    let tmp = tempfile::tempdir().unwrap();
    let home = tmp.path().join("home");
    std::fs::create_dir_all(&home).unwrap();
    let docs = tmp.path().join("docs");
    std::fs::create_dir_all(&docs).unwrap();
    std::fs::write(
        docs.join("kiln.md"),
        "# Kiln\n\nThe Harwick kiln is fired to 1,240 degrees for stoneware.\n",
    )
    .unwrap();
    let kb = tmp.path().join("kb");
    let session = |args: &[&str]| {
        let mut cmd = kb_cmd(&kb, args);
        cmd.env("HOME", &home)
            .env("XDG_CACHE_HOME", home.join(".cache"))
            .env("XDG_DATA_HOME", home.join(".local/share"))
            .env("XDG_CONFIG_HOME", home.join(".config"))
            .env("CAIRN_MODELS_DIR", models.trim())
            .env_remove("ORT_DISABLE_TELEMETRY");
        // ONNX Runtime also stays quiet under CI; the test must see what a user's shell sees.
        for var in [
            "CI",
            "TF_BUILD",
            "GITHUB_ACTIONS",
            "GITLAB_CI",
            "BUILD_ID",
            "JENKINS_URL",
        ] {
            cmd.env_remove(var);
        }
        let (code, out, err) = run(&mut cmd);
        assert_eq!(code, 0, "{args:?}: {out}{err}");
    };
    session(&["add", docs.to_str().unwrap(), "-q"]);
    session(&["search", "kiln temperature"]);
    session(&[
        "ask",
        "How hot is the Harwick kiln fired?",
        "--model",
        "tiny",
    ]);
    let foreign: Vec<String> = files_under(&home)
        .into_iter()
        .filter(|f| !f.starts_with(".cache/cairn/"))
        .collect();
    assert!(
        foreign.is_empty(),
        "files written outside cairn's own directories: {foreign:?}"
    );
}

#[test]
fn a_question_in_words_a_document_abbreviates_finds_the_abbreviation_s_passages() {
    // The documents spell "zero trust architecture (ZTA)" out once; the page that answers
    // uses "ZTA" alone.
    let tmp = tempfile::tempdir().unwrap();
    let docs = tmp.path().join("docs");
    std::fs::create_dir_all(&docs).unwrap();
    let files = [
        ("intro.md", "# Introduction\n\nA zero trust architecture (ZTA) is an enterprise security architecture built on zero trust principles.\nA zero trust architecture assumes no implicit trust in any network, and every zero trust architecture\nevaluates each access request.\n"),
        ("history.md", "# History of zero trust\n\nThe zero trust architecture idea grew from work on perimeterless networks. Many zero trust\narchitecture designs were published before the term became common, and zero trust architecture\nnow appears in federal guidance.\n"),
        ("goals.md", "# Goals\n\nThe goals of a zero trust architecture are to prevent unauthorized access to data and services and\nto make access control enforcement as granular as possible. A zero trust architecture network is\nbuilt around these goals.\n"),
        ("planes.md", "# Requirements of a ZTA\n\nAssets have basic connectivity, and the enterprise can observe all traffic. Resources are not\nreachable without a PEP. The data plane and control plane are logically separate.\n"),
    ];
    for (name, text) in files {
        std::fs::write(docs.join(name), text).unwrap();
    }
    let kb = tmp.path().join("kb");
    let (code, out, err) = run(&mut kb_cmd(&kb, &["add", docs.to_str().unwrap()]));
    assert_eq!(code, 0, "{out}{err}");
    let q = "What are the network requirements of a zero trust architecture?";
    let (code, out, err) = run(&mut kb_cmd(&kb, &["search", q, "--json", "-k", "2"]));
    assert_eq!(code, 0, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    let found: Vec<&str> = v["hits"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["doc"].as_str().unwrap())
        .collect();
    assert!(found.contains(&"docs/planes.md"), "{found:?}");
}

#[test]
fn search_folds_a_passage_copied_into_another_file_and_says_where() {
    let tmp = tempfile::tempdir().unwrap();
    let docs = tmp.path().join("docs");
    std::fs::create_dir_all(docs.join("print")).unwrap();
    let prose = "To create a vector and then add elements to it, we can use the push method. \
        As with any variable, if we want to be able to change its value, we need to make it \
        mutable using the mut keyword. The numbers we place inside are all of type i32, and \
        Rust infers this from the data, so we do not need the annotation.";
    std::fs::write(
        docs.join("vectors.md"),
        format!("# Vectors\n\n## Updating a Vector\n\n{prose}\n"),
    )
    .unwrap();
    // The printed edition: other headings, other line breaks, other markup, same sentences.
    let printed = prose.replace(". ", ".\n").replace("push", "`push`");
    std::fs::write(
        docs.join("print/chapter08.md"),
        format!("# Common Collections\n\nSome front matter first.\n\n### Updating a Vector\n\n{printed}\n"),
    )
    .unwrap();
    std::fs::write(
        docs.join("maps.md"),
        "# Hash Maps\n\nA hash map stores keys with values; insert adds a pair to the map.\n",
    )
    .unwrap();
    let kb = tmp.path().join("kb");
    let (code, out, err) =
        run(kb_cmd(&kb, &["add", docs.to_str().unwrap()]).current_dir(tmp.path()));
    assert_eq!(code, 0, "{out}{err}");

    let query = "which method adds elements to a vector";
    let search = |extra: &[&str]| -> serde_json::Value {
        let mut args = vec!["search", query, "--json", "-k", "3"];
        args.extend_from_slice(extra);
        let (code, out, err) = run(&mut kb_cmd(&kb, &args));
        assert_eq!(code, 0, "{err}");
        serde_json::from_str(&out).unwrap()
    };
    let docs_of = |v: &serde_json::Value| -> Vec<String> {
        v["hits"]
            .as_array()
            .unwrap()
            .iter()
            .map(|h| h["doc"].as_str().unwrap().to_owned())
            .collect()
    };
    let folded = search(&[]);
    let kept = search(&["--keep-duplicates"]);
    // Without folding both copies take a place; with it the second is listed under the first
    // and the next distinct passage moves up.
    let copies = |d: &[String]| {
        d.iter()
            .filter(|d| d.ends_with("vectors.md") || d.ends_with("chapter08.md"))
            .count()
    };
    assert_eq!(copies(&docs_of(&kept)), 2, "{kept}");
    assert_eq!(copies(&docs_of(&folded)), 1, "{folded}");
    assert!(
        docs_of(&folded).contains(&"docs/maps.md".to_owned()),
        "{folded}"
    );
    let first = &folded["hits"][0];
    let also = first["also"].as_array().unwrap();
    assert_eq!(also.len(), 1, "{folded}");
    let other = if first["doc"] == "docs/vectors.md" {
        "docs/print/chapter08.md"
    } else {
        "docs/vectors.md"
    };
    assert_eq!(also[0]["doc"], other, "{folded}");
    assert!(kept["hits"]
        .as_array()
        .unwrap()
        .iter()
        .all(|h| h["also"] == serde_json::json!([])));
    // Ranks stay 1, 2, … over the hits shown.
    let ranks: Vec<u64> = folded["hits"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["rank"].as_u64().unwrap())
        .collect();
    assert_eq!(ranks, (1..=ranks.len() as u64).collect::<Vec<_>>());

    // A batch of queries folds the same way, and keeps every copy when asked.
    let queries = tmp.path().join("queries.txt");
    std::fs::write(&queries, format!("{query}\n")).unwrap();
    for (extra, copies_wanted) in [(None, 1), (Some("--keep-duplicates"), 2)] {
        let mut args = vec!["search", "--batch", queries.to_str().unwrap(), "-k", "3"];
        args.extend(extra);
        let (code, out, err) = run(&mut kb_cmd(&kb, &args));
        assert_eq!(code, 0, "{err}");
        let line: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
        assert_eq!(copies(&docs_of(&line)), copies_wanted, "{extra:?}: {line}");
    }

    // An answer's sources carry the copies too, and the model reads the passage once.
    let ask = |extra: Option<&str>| -> serde_json::Value {
        let mut args = vec![
            "ask",
            "Which method adds elements to a vector?",
            "--json",
            "--model",
            "tiny",
        ];
        args.extend(extra);
        let (code, out, err) = run(&mut kb_cmd(&kb, &args));
        assert!(code == 0 || code == 3, "{out}{err}");
        serde_json::from_str(out.trim()).unwrap()
    };
    let folded = ask(None);
    let sources = folded["sources"].as_array().unwrap();
    assert_eq!(
        copies(
            &sources
                .iter()
                .map(|s| s["doc"].as_str().unwrap().to_owned())
                .collect::<Vec<_>>()
        ),
        1,
        "{folded}"
    );
    assert_eq!(sources[0]["also"][0]["doc"], other, "{folded}");
    let kept = ask(Some("--keep-duplicates"));
    assert!(
        kept["sources"]
            .as_array()
            .unwrap()
            .iter()
            .all(|s| s["also"] == serde_json::json!([])),
        "{kept}"
    );

    // The text output says where else the passage is.
    let (code, out, err) = run(&mut kb_cmd(
        &kb,
        &["search", query, "-k", "3", "--color", "never"],
    ));
    assert_eq!(code, 0, "{err}");
    assert!(
        out.lines()
            .any(|l| l.trim_start().starts_with("also in ") && l.contains(other)),
        "{out}"
    );
}

#[test]
fn a_question_after_another_is_searched_as_it_stands_alone_and_says_so() {
    let tmp = tempfile::tempdir().unwrap();
    let docs = tmp.path().join("docs");
    std::fs::create_dir_all(&docs).unwrap();
    std::fs::write(
        docs.join("gizmo.md"),
        "# Gizmo\n\nA gizmo is a small brass clamp. Gizmos are safe to share between threads.\n",
    )
    .unwrap();
    std::fs::write(
        docs.join("sprocket.md"),
        "# Sprocket\n\nA sprocket is a wooden lever. Sprockets are never safe to share between \
         threads.\n",
    )
    .unwrap();
    let kb = tmp.path().join("kb");
    let (code, out, err) = run(&mut kb_cmd(&kb, &["add", docs.to_str().unwrap()]));
    assert_eq!(code, 0, "{out}{err}");
    let search = |after: &str, question: &str| {
        let (code, out, err) = run(&mut kb_cmd(
            &kb,
            &["search", question, "--after", after, "--json", "-k", "1"],
        ));
        assert_eq!(code, 0, "{err}");
        let v: serde_json::Value = serde_json::from_str(&out).unwrap();
        (
            v["query"].as_str().unwrap().to_owned(),
            v["hits"][0]["doc"].as_str().unwrap().to_owned(),
            err,
        )
    };
    for (after, doc) in [
        ("What is a sprocket?", "sprocket.md"),
        ("What is a gizmo?", "gizmo.md"),
    ] {
        let (query, hit, err) = search(after, "Can it be shared between threads?");
        let subject = after.trim_start_matches("What is ").trim_end_matches('?');
        assert_eq!(query, format!("Can {subject} be shared between threads?"));
        assert!(err.contains(&format!("taken as: {query}")), "{err}");
        assert!(hit.ends_with(doc), "{hit}");
    }
    // A question that stands alone is searched as typed, and nothing is said.
    let (query, hit, err) = search("What is a gizmo?", "What is a sprocket made of?");
    assert_eq!(query, "What is a sprocket made of?");
    assert!(!err.contains("taken as"), "{err}");
    assert!(hit.ends_with("sprocket.md"), "{hit}");
}

#[test]
fn a_question_naming_one_of_the_sources_searches_it_alone() {
    let tmp = tempfile::tempdir().unwrap();
    for (folder, text) in [
        (
            "alpha-guide",
            "# Widgets\n\nA widget is a brass lever that opens the sluice gate.\n",
        ),
        (
            "beta-manual",
            "# Widgets\n\nA widget is a paper form that orders more glue.\n",
        ),
    ] {
        let dir = tmp.path().join(folder);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("widgets.md"), text).unwrap();
    }
    let kb = tmp.path().join("kb");
    for folder in ["alpha-guide", "beta-manual"] {
        let (code, out, err) = run(&mut kb_cmd(
            &kb,
            &["add", tmp.path().join(folder).to_str().unwrap()],
        ));
        assert_eq!(code, 0, "{out}{err}");
    }
    let docs = |q: &str| -> Vec<String> {
        let (code, out, err) = run(&mut kb_cmd(&kb, &["search", q, "--json", "-k", "5"]));
        assert_eq!(code, 0, "{err}");
        let v: serde_json::Value = serde_json::from_str(&out).unwrap();
        v["hits"]
            .as_array()
            .unwrap()
            .iter()
            .map(|h| h["doc"].as_str().unwrap().to_owned())
            .collect()
    };
    assert_eq!(
        docs("In the Beta Manual, what is a widget?"),
        ["beta-manual/widgets.md"]
    );
    assert_eq!(
        docs("What is a widget according to the alpha guide?"),
        ["alpha-guide/widgets.md"]
    );
    assert_eq!(docs("What is a widget?").len(), 2);
}
