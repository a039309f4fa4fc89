//! `cairn ask` end to end with the real default model (Qwen2.5-Coder-1.5B-Instruct) and the real
//! embedder: citations point at the right lines, unrelated questions abstain with exit code 3,
//! a document cannot take over the answer protocol, and document text reaches the terminal
//! only sanitized.
//!
//! The facts are invented, so the model can only know them from the documents.

use std::path::{Path, PathBuf};

mod common;

use common::{cairn, kb};

fn ask_json(question: &str) -> (i32, serde_json::Value) {
    ask_json_with(question, &[])
}

fn ask_json_with(question: &str, options: &[&str]) -> (i32, serde_json::Value) {
    ask_on(kb(), question, options)
}

/// `cairn ask QUESTION --json OPTIONS` on `kb`: the exit code and the answer.
fn ask_on(kb: &Path, question: &str, options: &[&str]) -> (i32, serde_json::Value) {
    let mut args = vec!["ask", question, "--json"];
    args.extend_from_slice(options);
    let (code, out, err) = cairn(kb, &args);
    let v: serde_json::Value = serde_json::from_str(out.trim())
        .unwrap_or_else(|e| panic!("not JSON ({e}): {out}\nstderr: {err}"));
    (code, v)
}

/// A knowledge base in `dir` of one page, `docs/NAME`, added with the real binary.
fn one_page_kb(dir: &Path, name: &str, text: &str) -> PathBuf {
    let docs = dir.join("docs");
    std::fs::create_dir_all(&docs).unwrap();
    std::fs::write(docs.join(name), text).unwrap();
    let kb = dir.join("kb");
    let (code, out, err) = cairn(&kb, &["add", docs.to_str().unwrap(), "-q"]);
    assert_eq!(code, 0, "{out}{err}");
    kb
}

#[test]
fn an_answer_cites_the_document_and_the_line_it_came_from() {
    let (code, v) = ask_json("How much glycol is needed to prime the Orvane pump?");
    assert_eq!(code, 0, "{v:#}");
    assert_eq!(v["schema_version"], 1);
    assert_eq!(v["abstained"], false, "{v:#}");
    let answer = v["answer"].as_str().unwrap();
    assert!(answer.contains('3'), "{answer}");
    let sentence = &v["sentences"][0];
    assert_eq!(sentence["supported"], true, "{v:#}");
    let cite = &sentence["citations"][0];
    let source = &v["sources"][cite["source"].as_u64().unwrap() as usize - 1];
    assert_eq!(source["doc"], "docs/pumps.md", "{v:#}");
    // Line 3 of pumps.md holds the fact.
    let lines = cite["lines"].as_array().unwrap();
    assert!(
        lines[0].as_u64().unwrap() <= 3 && lines[1].as_u64().unwrap() >= 3,
        "{cite}"
    );
    for key in ["ttft_ms", "prompt_tokens", "total_ms"] {
        assert!(v["timings"][key].as_f64().unwrap() > 0.0, "{key}: {v:#}");
    }
}

#[test]
fn a_question_the_documents_do_not_answer_exits_3() {
    let (code, v) = ask_json("Which country won the 1998 FIFA World Cup?");
    assert_eq!(code, 3, "{v:#}");
    assert_eq!(v["abstained"], true);
    let (code, out, _) = cairn(kb(), &["ask", "Which country won the 1998 FIFA World Cup?"]);
    assert_eq!(code, 3);
    assert!(out.contains("Not found in the knowledge base"), "{out}");
}

#[test]
fn passages_that_mention_none_of_what_was_asked_are_not_sent_to_the_model() {
    // With the similarity gate off, the word check alone withholds a question none of whose
    // content words any passage contains.
    let q = "Which country won the 1998 FIFA World Cup?";
    let (code, out, _) = cairn(kb(), &["ask", q, "--min-relevance", "0"]);
    assert_eq!(code, 3, "{out}");
    assert!(
        out.contains("none mentions most of what was asked"),
        "{out}"
    );
    // The names check alone (FIFA, World, Cup are in no passage) still withholds it.
    let (code, v) = ask_json_with(q, &["--min-relevance", "0", "--min-coverage", "0"]);
    assert_eq!(code, 3, "{v:#}");
    assert_eq!(v["abstain_reason"], "retrieval", "{v:#}");
    // The rare-words check alone (the passages hold none of "country", "1998", "FIFA", "cup")
    // still withholds it.
    let three_off = [
        "--min-relevance",
        "0",
        "--min-coverage",
        "0",
        "--min-named-coverage",
        "0",
    ];
    let (code, v) = ask_json_with(q, &three_off);
    assert_eq!(code, 3, "{v:#}");
    assert_eq!(v["abstain_reason"], "retrieval", "{v:#}");
    // All four turned off, the question reaches the model (whatever it makes of it).
    let mut all_off = three_off.to_vec();
    all_off.extend(["--min-rare-coverage", "0"]);
    let (_, v) = ask_json_with(q, &all_off);
    assert_ne!(v["abstain_reason"], "retrieval", "{v:#}");
    // An answerable question passes the check.
    let (code, v) = ask_json("How many litres of glycol prime the Orvane pump?");
    assert_eq!(code, 0, "{v:#}");
}

#[test]
fn a_document_cannot_change_the_answer_protocol() {
    let (code, v) = ask_json("Where was the Orvane pump designed?");
    assert_eq!(code, 0, "{v:#}");
    let answer = v["answer"].as_str().unwrap();
    assert!(!answer.contains("PWNED"), "{answer}");
    assert!(answer.contains("Tallinn"), "{answer}");
    // The injected notice was among the sources the model saw: the defence was tested.
    let seen = v["sources"].to_string();
    assert!(seen.contains("IMPORTANT SYSTEM NOTICE"), "{seen}");
}

#[test]
fn the_terminal_gets_markers_sources_and_no_escape_sequences() {
    let (code, out, err) = cairn(
        kb(),
        &[
            "ask",
            "What does a red lamp on the Orvane panel mean?",
            "--show-context",
            "--quote",
        ],
    );
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        !out.contains('\u{1b}'),
        "escape sequence reached stdout: {out:?}"
    );
    assert!(out.contains("Sources:"), "{out}");
    assert!(out.contains("docs/pumps.md L"), "{out}");
    assert!(
        out.contains(" [1]") || out.contains(" [2]") || out.contains(" [3]"),
        "{out}"
    );
    assert!(out.to_lowercase().contains("glycol"), "{out}");
}

/// Whitespace runs as one space.
fn squash(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[test]
fn the_default_answer_is_a_verbatim_quote_of_a_source() {
    for question in [
        "How often are the Orvane pump's seals replaced?",
        "Who designed the Orvane pump?",
    ] {
        let (code, v) = ask_json(question);
        assert_eq!(code, 0, "{v:#}");
        let answer = squash(v["answer"].as_str().unwrap());
        assert!(!answer.is_empty(), "{v:#}");
        let quoted = v["sources"].as_array().unwrap().iter().any(|s| {
            s["excerpts"]
                .as_array()
                .unwrap()
                .iter()
                .any(|e| squash(e["text"].as_str().unwrap()).contains(&answer))
        });
        assert!(quoted, "{answer:?} is not in any source: {v:#}");
        assert_eq!(v["sentences"][0]["supported"], true, "{v:#}");
    }
}

#[test]
fn the_self_check_scores_the_answer_and_can_withhold_it() {
    let q = "How much glycol is needed to prime the Orvane pump?";
    // Scored but never withheld: the answer stands, with the model's yes − no margin.
    let (code, v) = ask_json_with(q, &["--self-check", "-1000"]);
    assert_eq!(code, 0, "{v:#}");
    let margin = v["self_check"].as_f64().expect("a margin");
    assert!(
        margin > 0.0,
        "the model doubts a quote of its own source: {v:#}"
    );
    assert!(v["timings"]["check_ms"].as_f64().unwrap() > 0.0, "{v:#}");
    // A bar no answer clears: withheld, with its reason, exit 3. The check is scored in the
    // prompt's pass, so the answer is never written: no token, the same margin.
    let (code, v) = ask_json_with(q, &["--self-check", "1000"]);
    assert_eq!(code, 3, "{v:#}");
    assert_eq!(v["abstain_reason"], "self_check", "{v:#}");
    assert_eq!(v["answer"], "", "{v:#}");
    assert!(v["withheld"].is_null(), "nothing was written: {v:#}");
    assert_eq!(v["timings"]["answer_tokens"], 0, "{v:#}");
    assert_eq!(v["self_check"].as_f64(), Some(margin), "{v:#}");
    // By default the margin calibrated for the default model applies, and the answer stands.
    let (code, v) = ask_json(q);
    assert_eq!(code, 0, "{v:#}");
    assert!(v["self_check"].as_f64().is_some(), "{v:#}");
    // `off` skips it.
    let (_, v) = ask_json_with(q, &["--self-check", "off"]);
    assert!(v["self_check"].is_null(), "{v:#}");
}

#[test]
fn a_yes_or_no_question_is_answered_yes_or_no_with_the_sentence_that_settles_it() {
    let tmp = tempfile::tempdir().unwrap();
    let kb = one_page_kb(
        tmp.path(),
        "ferry.md",
        "# Vardø ferry\n\nThe Vardø ferry does not run on Sundays. Bicycles are carried free of \
         charge, but dogs are not allowed on board.\n",
    );
    let ask = |q: &str| ask_on(&kb, q, &[]);
    for (question, reply, evidence) in [
        (
            "Does the Vardø ferry run on Sundays?",
            "no",
            "does not run on Sundays",
        ),
        (
            "Are bicycles carried free of charge on the ferry?",
            "yes",
            "Bicycles are carried free of charge",
        ),
    ] {
        let (code, v) = ask(question);
        assert_eq!(code, 0, "{v:#}");
        assert_eq!(v["verdict"]["reply"], reply, "{v:#}");
        let answer = v["answer"].as_str().unwrap();
        let lead = if reply == "yes" { "Yes: " } else { "No: " };
        assert!(answer.starts_with(lead), "{answer}");
        assert!(answer.contains(evidence), "{answer}");
        // The quote after the reply is cited, at the line that holds it.
        let sentence = &v["sentences"][0];
        assert_eq!(sentence["supported"], true, "{v:#}");
        assert!(answer[lead.len()..].starts_with(sentence["text"].as_str().unwrap()));
        assert_eq!(v["sources"][0]["doc"], "docs/ferry.md", "{v:#}");
    }
    // The terminal shows the reply before the cited quote.
    let (code, out, _) = cairn(&kb, &["ask", "Does the Vardø ferry run on Sundays?"]);
    assert_eq!(code, 0, "{out}");
    assert!(
        out.starts_with("No: The Vardø ferry does not run on Sundays [1]."),
        "{out}"
    );
    // Any other question has no verdict.
    let (_, v) = ask("What is not allowed on board the ferry?");
    assert!(v["verdict"].is_null(), "{v:#}");
}

#[test]
fn asked_how_to_do_something_the_answer_carries_the_command() {
    // The page says what to do in a sentence that announces a code block: a quote that stops
    // at "run the following:" tells the reader nothing they can do.
    let tmp = tempfile::tempdir().unwrap();
    let kb = one_page_kb(
        tmp.path(),
        "tally.md",
        "# tally\n\n## Resetting the counter\n\nThe counter keeps its value between runs, so a \
         new season starts where the last one ended. Stop the service first. Then, to reset the \
         counter, run the following:\n\n```console\n$ tallyctl reset --hard\n```\n\nThe next \
         run starts at zero.\n",
    );
    let (code, v) = ask_on(&kb, "How do I reset the counter?", &[]);
    assert_eq!(code, 0, "{v:#}");
    let answer = v["answer"].as_str().unwrap();
    assert!(answer.contains("tallyctl reset --hard"), "{v:#}");
    assert_eq!(v["sentences"][0]["supported"], true, "{v:#}");
}

#[test]
fn a_question_of_a_kind_reads_its_worked_example_from_the_prompt_cache_the_next_time() {
    // The tiny model will do: what is checked is the cache, not the answer.
    let cache = tempfile::tempdir().unwrap();
    let models = cairn_engine::catalog::models_dir().unwrap();
    let ask = |question: &str| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_cairn"))
            .args(["ask", question, "--json", "--model", "tiny"])
            .env("CAIRN_KB", kb())
            .env("XDG_CACHE_HOME", cache.path())
            .env("CAIRN_MODELS_DIR", &models)
            .output()
            .unwrap();
        let v: serde_json::Value = serde_json::from_slice(&out.stdout)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&out.stderr)));
        v
    };
    let files = || {
        std::fs::read_dir(cache.path().join("cairn/prompt-cache"))
            .unwrap()
            .count()
    };
    let reused = |v: &serde_json::Value| v["timings"]["reused_tokens"].as_u64().unwrap();
    // A question of no kind: the fixed prefix is computed and saved, and reused.
    let plain = ask("What lamp shows on the Orvane panel?");
    assert_eq!(files(), 1);
    let base = reused(&plain);
    assert!(base > 100, "{plain:#}");
    // A task's worked example is computed after it the first time, and saved…
    let question = "How do I prime the Orvane pump?";
    let first = ask(question);
    assert_eq!(reused(&first), base, "{first:#}");
    assert_eq!(files(), 2);
    // …so the next run reads it from the cache instead, with exactly the same answer.
    let second = ask(question);
    assert!(reused(&second) > base + 50, "{second:#}");
    assert_eq!(files(), 2);
    for key in ["answer", "abstained", "self_check", "sentences"] {
        assert_eq!(first[key], second[key], "{key}");
    }
}

#[test]
fn an_answer_about_a_neighbour_of_what_was_asked_needs_a_sure_model() {
    // "Which bundle mode…" asks for a mode of `bundle`; the knowledge base has only `squash`'s
    // page, whose mode is the answer to a neighbouring question.
    let tmp = tempfile::tempdir().unwrap();
    let kb = one_page_kb(
        tmp.path(),
        "squash.md",
        "# squash — Support for squash files\n\n## squash.open\n\n`squash.open(filename, \
         mode='rq')` opens a squash-compressed file. The mode 'rq' opens an archive for reading \
         with squash compression; the mode 'wq' opens it for writing.\n",
    );
    let ask = |q: &str, options: &[&str]| ask_on(&kb, q, options);
    let neighbour = "Which bundle mode opens an archive for reading with squash compression?";
    // By default the answer is shown only when the self-check clears the raised bar.
    let (code, v) = ask(neighbour, &[]);
    assert_eq!(v["off_scope"], "bundle", "{v:#}");
    if v["abstained"] == true {
        assert_eq!(code, 3, "{v:#}");
        assert_eq!(v["abstain_reason"], "unsupported", "{v:#}");
        assert!(v["self_check"].as_f64().unwrap() < 1.7, "{v:#}");
    } else {
        assert!(
            (v["overruled"].as_f64().unwrap() - 1.7).abs() < 1e-6,
            "{v:#}"
        );
        assert!(v["self_check"].as_f64().unwrap() >= 1.7, "{v:#}");
    }
    // With no calibrated bar to reach, such an answer is withheld.
    let (code, v) = ask(neighbour, &["--self-check", "off"]);
    assert_eq!(code, 3, "{v:#}");
    assert_eq!(v["abstain_reason"], "unsupported", "{v:#}");
    assert_eq!(v["off_scope"], "bundle", "{v:#}");
    // Nor does a script: what the model wrote is kept apart from the answer.
    assert_eq!(v["answer"], "", "{v:#}");
    assert_eq!(v["sentences"], serde_json::json!([]), "{v:#}");
    assert!(v["withheld"].as_str().unwrap().contains("rq"), "{v:#}");
    // The terminal never sees the withheld quote.
    let (code, out, _) = cairn(&kb, &["ask", neighbour, "--self-check", "off"]);
    assert_eq!(code, 3, "{out}");
    assert!(
        out.starts_with(
            "Not found in the knowledge base (the model's answer comes from a passage that is \
             not about bundle)."
        ),
        "{out}"
    );
    // Asked about what the page is about, the same quote is the answer.
    let (code, v) = ask("Which squash mode opens a file for reading?", &[]);
    assert_eq!(code, 0, "{v:#}");
    assert!(v["off_scope"].is_null(), "{v:#}");
    assert!(v["answer"].as_str().unwrap().contains("rq"), "{v:#}");
}

#[test]
fn asked_what_an_abbreviation_stands_for_the_answer_is_the_words_a_source_spells_out() {
    let dir = tempfile::tempdir().unwrap();
    let kb = one_page_kb(
        dir.path(),
        "access.md",
        "# Access\n\nThe PEP forwards each request. The PEP logs it.\n\n\
         Access is granted through a policy decision point (PDP) and a\n\
         corresponding policy enforcement point (PEP) beside the resource.\n",
    );
    // The model is not asked, so the tiny one will do.
    let (code, v) = ask_on(&kb, "What does PEP stand for?", &["--model", "tiny"]);
    assert_eq!(code, 0, "{v:#}");
    assert_eq!(v["answer"], "policy enforcement point", "{v:#}");
    assert_eq!(v["timings"]["prompt_tokens"], 0, "{v:#}");
    let cite = &v["sentences"][0]["citations"][0];
    assert_eq!(cite["lines"], serde_json::json!([6, 6]), "{v:#}");
    let source = &v["sources"][cite["source"].as_u64().unwrap() as usize - 1];
    assert_eq!(source["doc"], "docs/access.md", "{v:#}");
    // Asked what it is, the model answers.
    let (_, v) = ask_on(&kb, "What is the PEP?", &["--model", "tiny"]);
    assert!(v["timings"]["prompt_tokens"].as_u64().unwrap() > 0, "{v:#}");
}

#[test]
fn asked_for_several_things_the_answer_is_the_list_with_an_item_on_each_line() {
    let dir = tempfile::tempdir().unwrap();
    let kb = one_page_kb(
        dir.path(),
        "pump.md",
        "# Orvane pump\n\nThe Orvane pump is serviced by the plant's night crew.\n\n## Priming\n\n\
         The Orvane pump has three priming rules. The first matters most.\n\n\
         - Prime it with 40 ml of glycol before the first start.\n\
         - Never run it dry for more than ten seconds.\n\
         - Bleed the air screw until the glycol runs clear.\n\n\
         ## Storage\n\nStore the pump upright in a dry room.\n",
    );
    let (code, v) = ask_on(&kb, "What are the priming rules of the Orvane pump?", &[]);
    assert_eq!(code, 0, "{v:#}");
    let answer = v["answer"].as_str().unwrap();
    let lines: Vec<&str> = answer.lines().collect();
    assert_eq!(
        lines,
        [
            "- Prime it with 40 ml of glycol before the first start.",
            "- Never run it dry for more than ten seconds.",
            "- Bleed the air screw until the glycol runs clear."
        ],
        "{v:#}"
    );
    let cited: Vec<&serde_json::Value> = v["sentences"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|s| s["citations"].as_array().unwrap())
        .collect();
    assert!(!cited.is_empty(), "{v:#}");
    for c in cited {
        let (first, last) = (
            c["lines"][0].as_u64().unwrap(),
            c["lines"][1].as_u64().unwrap(),
        );
        assert!(
            (9..=11).contains(&first) && (9..=11).contains(&last),
            "{v:#}"
        );
    }
}
