//! The terminal app end to end: the real binary in tmux with the real tiny model and the real
//! embedder, driven by `send-keys` and read with `capture-pane`, as a user would.
//!
//! `.ci/run` installs tmux; without it these tests fail and say so.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// Runs the real binary with `args` and the `env` variables; its standard output, once it has
/// succeeded.
fn cairn(args: &[&str], env: &[(&str, &Path)]) -> Vec<u8> {
    let out = Command::new(env!("CARGO_BIN_EXE_cairn"))
        .args(args)
        .envs(env.iter().copied())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// A knowledge base of the bundled Cargo Book, built once for this file.
fn kb() -> &'static Path {
    static KB: OnceLock<(tempfile::TempDir, PathBuf)> = OnceLock::new();
    &KB.get_or_init(|| {
        let tmp = tempfile::tempdir().unwrap();
        let kb = tmp.path().join("kb");
        let corpus = Path::new(env!("CARGO_MANIFEST_DIR")).join("corpora/cargo-book");
        let (kb_arg, corpus) = (kb.to_str().unwrap(), corpus.to_str().unwrap());
        cairn(&["--kb", kb_arg, "add", corpus, "-q"], &[]);
        (tmp, kb)
    })
    .1
}

/// One tmux server of our own, running `cairn` in a shell that records `stty -a` before and
/// after and the exit status.
struct Session {
    socket: String,
    dir: tempfile::TempDir,
}

impl Session {
    fn start(kb: &Path, width: u16, height: u16) -> Session {
        Self::start_with(kb, width, height, "tiny")
    }

    fn start_with(kb: &Path, width: u16, height: u16, model: &str) -> Session {
        Self::start_env(kb, width, height, model, "")
    }

    /// `env`: `NAME='value' ` assignments put before the command.
    fn start_env(kb: &Path, width: u16, height: u16, model: &str, env: &str) -> Session {
        let dir = tempfile::tempdir().unwrap();
        let socket = format!(
            "cairn-test-{}-{}",
            std::process::id(),
            dir.path().file_name().unwrap().to_string_lossy()
        );
        let d = dir.path().display();
        let script = format!(
            "stty -a > {d}/before; XDG_DATA_HOME={d}/data {env}'{bin}' --kb '{kb}' tui --model '{model}'; \
             echo $? > {d}/exit; stty -a > {d}/after; sleep 60",
            bin = env!("CARGO_BIN_EXE_cairn"),
            kb = kb.display(),
        );
        let s = Session { socket, dir };
        let status = Command::new("tmux")
            .args([
                "-L",
                &s.socket,
                "-f",
                "/dev/null",
                "new-session",
                "-d",
                "-s",
                "t",
            ])
            .args(["-x", &width.to_string(), "-y", &height.to_string()])
            .args(["sh", "-c", &script])
            .status()
            .expect("tmux is installed (.ci/run installs it)");
        assert!(status.success());
        s
    }

    fn keys(&self, keys: &[&str]) {
        let status = Command::new("tmux")
            .args(["-L", &self.socket, "send-keys", "-t", "t"])
            .args(keys)
            .status()
            .unwrap();
        assert!(status.success());
    }

    /// Types text literally.
    fn type_text(&self, text: &str) {
        self.keys(&["-l", text]);
    }

    fn screen(&self) -> String {
        let out = Command::new("tmux")
            .args(["-L", &self.socket, "capture-pane", "-p", "-t", "t"])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Waits until `ok` holds for the screen, or fails with the screen.
    fn wait(&self, what: &str, secs: u64, ok: impl Fn(&str) -> bool) -> String {
        let end = Instant::now() + Duration::from_secs(secs);
        loop {
            let s = self.screen();
            if ok(&s) {
                return s;
            }
            assert!(
                Instant::now() < end,
                "waited {secs} s for {what}; the screen:\n{s}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn file(&self, name: &str) -> Option<String> {
        std::fs::read_to_string(self.dir.path().join(name)).ok()
    }

    /// Waits for the app to have exited, and returns its status.
    fn exit_status(&self) -> String {
        let end = Instant::now() + Duration::from_secs(10);
        while Instant::now() < end {
            // The shell creates each file before it writes into it: wait for the text.
            if let (Some(code), Some(after)) = (self.file("exit"), self.file("after")) {
                if !after.is_empty() && !code.trim().is_empty() {
                    return code.trim().to_owned();
                }
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!("the app did not exit; the screen:\n{}", self.screen());
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        let _ = Command::new("tmux")
            .args(["-L", &self.socket, "kill-server"])
            .status();
    }
}

/// What `cairn ask` prints for `question` with the tiny model (its `--json`): the answer's
/// opening words and the citation of its first sentence, with the document it names. The app
/// runs the same engine, so it must show the same answer; which passage the 135M model quotes
/// is its own affair, and these tests do not depend on it.
struct Expected {
    opening: String,
    citation: String,
    doc: String,
}

fn expected(kb: &Path, env: &[(&str, &Path)], args: &[&str], question: &str) -> Expected {
    let mut all = vec!["--kb", kb.to_str().unwrap(), "ask", question];
    all.extend(["--model", "tiny", "--json"]);
    all.extend(args);
    let v: serde_json::Value = serde_json::from_slice(&cairn(&all, env)).unwrap();
    assert_eq!(v["abstained"], false, "the tiny model answers: {v}");
    // The first words of its first line that is not a code fence (the app draws a block's
    // lines without their fences), short enough for the first line of the pane.
    let mut opening = String::new();
    let first = v["answer"]
        .as_str()
        .unwrap()
        .lines()
        .find(|l| !l.trim().is_empty() && !l.trim_start().starts_with("```"))
        .unwrap_or_default();
    for w in first.split_whitespace() {
        if !opening.is_empty() && opening.len() + 1 + w.len() > 24 {
            break;
        }
        if !opening.is_empty() {
            opening.push(' ');
        }
        opening.push_str(w);
    }
    let source = &v["sentences"][0]["citations"][0]["source"];
    let number = source.as_u64().expect("the first sentence is cited");
    let doc = v["sources"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["number"] == *source)
        .expect("the cited source is listed")["doc"]
        .as_str()
        .unwrap()
        .to_owned();
    Expected {
        opening,
        citation: format!("[{number}]"),
        doc,
    }
}

fn ready(s: &Session) {
    s.wait("the knowledge base and the model", 60, |t| {
        t.contains(" docs · ") && t.contains("│ tiny │")
    });
}

#[test]
fn ask_see_the_answer_and_its_source_then_quit_with_ctrl_c_twice() {
    let s = Session::start(kb(), 120, 36);
    // The first frame is drawn before anything has loaded.
    s.wait("the first frame", 10, |t| {
        t.contains("Answers") && t.contains("Sources")
    });
    ready(&s);
    let question = "Where does cargo build --release put the resulting binary?";
    let e = expected(kb(), &[], &[], question);
    s.type_text(question);
    s.keys(&["Enter"]);
    let screen = s.wait("the answer with its citation and footer", 60, |t| {
        t.contains(&e.opening) && t.contains(&e.citation) && t.contains("tiny · first token")
    });
    assert!(screen.contains(&e.doc), "{screen}");
    assert!(screen.contains("why retrieved"), "{screen}");
    assert!(screen.contains("BM25 #"), "{screen}");
    assert!(screen.contains("gate: best passage"), "{screen}");
    s.keys(&["C-c"]);
    s.wait("the quit prompt", 5, |t| {
        t.contains("press Ctrl-C again to quit")
    });
    s.keys(&["C-c"]);
    assert_eq!(s.exit_status(), "0");
    assert_eq!(
        s.file("before"),
        s.file("after"),
        "the terminal modes are restored"
    );
    // The main screen is back: the app's panes are gone.
    let after = s.screen();
    assert!(!after.contains("why retrieved"), "{after}");
}

#[test]
fn esc_cancels_a_running_answer_and_the_next_question_is_answered() {
    let s = Session::start(kb(), 100, 30);
    ready(&s);
    let question = "How do I get debug info in a release build?";
    let first = expected(kb(), &[], &[], question);
    let question2 = "Where does cargo build --release put the resulting binary?";
    let second = expected(kb(), &[], &[], question2);
    s.type_text(question);
    s.keys(&["Enter"]);
    // Esc as soon as the answer begins to stream.
    s.wait("the answer to start", 60, |t| t.contains(&first.opening));
    s.keys(&["Escape"]);
    let screen = s.wait("the cancel mark", 10, |t| t.contains("⊘ cancelled"));
    assert!(
        !screen.contains("tiny · first token"),
        "no finished footer:\n{screen}"
    );
    // The model is free at once for the next question.
    s.type_text(question2);
    s.keys(&["Enter"]);
    s.wait("the second answer", 60, |t| {
        t.contains(&second.opening) && t.contains("tiny · first token")
    });
    // q quits from a pane when the box is empty.
    s.keys(&["Tab", "q"]);
    assert_eq!(s.exit_status(), "0");
    assert_eq!(s.file("before"), s.file("after"));
}

#[test]
fn search_mode_works_and_the_layout_holds_at_80_by_24() {
    let s = Session::start(kb(), 80, 24);
    s.wait("the knowledge base", 60, |t| t.contains(" docs · "));
    s.keys(&["C-t"]);
    s.type_text("build-override");
    s.keys(&["Enter"]);
    let screen = s.wait("search results", 30, |t| t.contains("Search results (10)"));
    assert!(screen.contains("profiles.html"), "{screen}");
    for line in screen.lines() {
        assert!(line.chars().count() <= 80, "{line}");
    }
    s.keys(&["C-c", "C-c"]);
    assert_eq!(s.exit_status(), "0");
}

#[test]
fn a_model_that_cannot_load_is_reported_in_the_app_which_keeps_running() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("broken.gguf");
    std::fs::write(&bad, b"GGUF but not really a model").unwrap();
    let s = Session::start_with(kb(), 100, 30, bad.to_str().unwrap());
    let screen = s.wait("the load failure", 60, |t| t.contains("not a readable"));
    assert!(screen.contains("broken.gguf"), "{screen}");
    assert!(screen.contains("(failed)"), "{screen}");
    // Asking says why it cannot answer; searching still works.
    s.type_text("Where does cargo build --release put the resulting binary?");
    s.keys(&["Enter"]);
    s.wait("the failed question", 30, |t| {
        t.contains("✗ the model did not load")
    });
    s.keys(&["C-t"]);
    s.type_text("build-override");
    s.keys(&["Enter"]);
    s.wait("search results", 30, |t| t.contains("Search results (10)"));
    s.keys(&["C-c", "C-c"]);
    assert_eq!(s.exit_status(), "0");
}

#[test]
fn with_no_knowledge_base_the_installed_packs_answer_until_files_are_added() {
    let tmp = tempfile::tempdir().unwrap();
    let packs = tmp.path().join("packs");
    let cairn = |args: &[&str]| {
        cairn(args, &[("CAIRN_PACKS_DIR", &packs)]);
    };
    let file = tmp.path().join("cargo.cairnpack");
    let file = file.to_str().unwrap();
    let from = kb().to_str().unwrap();
    cairn(&[
        "pack",
        "build",
        "--from-kb",
        from,
        "-o",
        file,
        "--name",
        "cargo",
        "-q",
    ]);
    cairn(&["pack", "install", file, "--allow-unsigned"]);
    let own = tmp.path().join("kb");
    let env = format!("CAIRN_PACKS_DIR='{}' ", packs.display());
    let s = Session::start_env(&own, 100, 30, "tiny", &env);
    let screen = s.wait("the pack standing in for the knowledge base", 60, |t| {
        t.contains("empty + 1 pack · ") && t.contains("│ tiny │")
    });
    assert!(screen.contains("No knowledge base of your own"), "{screen}");
    let question = "Where does cargo build --release put the resulting binary?";
    let e = expected(&own, &[("CAIRN_PACKS_DIR", &packs)], &["--no-kb"], question);
    s.type_text(question);
    s.keys(&["Enter"]);
    let screen = s.wait("the answer from the pack", 60, |t| {
        t.contains(&e.opening) && t.contains("tiny · first token")
    });
    assert!(screen.contains("[pack:cargo@0.1.0]"), "{screen}");
    // Adding files makes the knowledge base; the pack is searched beside it.
    let notes = tmp.path().join("notes");
    std::fs::create_dir_all(&notes).unwrap();
    std::fs::write(
        notes.join("team.md"),
        "# Team notes\n\nOur staging server is called heron-7.\n",
    )
    .unwrap();
    s.type_text(&format!("/add {}", notes.display()));
    s.keys(&["Enter"]);
    s.wait("the knowledge base and the pack", 60, |t| {
        t.contains("1 docs · 1 chunks + 1 pack")
    });
    s.keys(&["C-t"]);
    s.type_text("staging server heron-7");
    s.keys(&["Enter"]);
    // The pane's title shows as soon as the search is sent; wait for its hits.
    let screen = s.wait("search results from both", 60, |t| {
        t.contains("Search results (") && !t.contains("retrieving…")
    });
    assert!(screen.contains("notes/team.md"), "{screen}");
    assert!(screen.contains("[pack:cargo@0.1.0]"), "{screen}");
    s.keys(&["C-c", "C-c"]);
    assert_eq!(s.exit_status(), "0");
}

/// Four files whose every sentence names `round`.
fn bulletins(docs: &Path, round: usize) {
    use std::fmt::Write as _;
    for f in 0..4 {
        let mut text = format!("# Bulletin {f}\n\n");
        for s in 0..20 {
            let _ = write!(
                text,
                "Bulletin {f} of round {round}, sentence {s}: the ferry timetable changes on tuesdays.\n\n"
            );
        }
        std::fs::write(docs.join(format!("bulletin-{f}.md")), text).unwrap();
    }
}

#[test]
fn the_app_answers_and_searches_while_a_writer_commits_in_a_loop() {
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
    use std::sync::Arc;
    let tmp = tempfile::tempdir().unwrap();
    let docs = tmp.path().join("docs");
    std::fs::create_dir_all(&docs).unwrap();
    std::fs::write(
        docs.join("pumps.md"),
        "# Orvane pump\n\nThe Orvane pump must be primed with 3 litres of glycol before its first start.\n",
    )
    .unwrap();
    bulletins(&docs, 0);
    let kb = tmp.path().join("kb");
    let add = |kb: &Path, docs: &Path| {
        Command::new(env!("CARGO_BIN_EXE_cairn"))
            .args([
                "--kb",
                kb.to_str().unwrap(),
                "add",
                docs.to_str().unwrap(),
                "-q",
                "--commit-every",
                "4",
            ])
            .output()
            .unwrap()
    };
    assert!(add(&kb, &docs).status.success());
    let s = Session::start(&kb, 100, 30);
    ready(&s);
    let stop = Arc::new(AtomicBool::new(false));
    let rounds = Arc::new(AtomicUsize::new(0));
    let writer = std::thread::spawn({
        let (kb, docs, stop, rounds) = (kb.clone(), docs.clone(), stop.clone(), rounds.clone());
        move || {
            let mut round = 1;
            while !stop.load(Ordering::Relaxed) {
                bulletins(&docs, round);
                let out = add(&kb, &docs);
                assert!(
                    out.status.success(),
                    "{}",
                    String::from_utf8_lossy(&out.stderr)
                );
                rounds.fetch_add(1, Ordering::Relaxed);
                round += 1;
            }
        }
    });
    s.type_text("How much glycol primes the Orvane pump?");
    s.keys(&["Enter"]);
    let screen = s.wait("an answer", 90, |t| {
        t.contains("tiny · first token") || t.contains("Not found")
    });
    assert!(!screen.to_lowercase().contains("error"), "{screen}");
    s.keys(&["C-t"]);
    // Each search after a writer round sees that round's files (the app follows commits), and
    // none shows an error; between them, the writer keeps committing.
    for i in 0..3 {
        let seen = rounds.load(Ordering::Relaxed);
        while rounds.load(Ordering::Relaxed) == seen {
            std::thread::sleep(Duration::from_millis(50));
        }
        s.type_text(&format!("ferry timetable {i}"));
        s.keys(&["Enter"]);
        let screen = s.wait("search results of a later round", 30, |t| {
            t.contains("Search results (")
                && (seen + 1..seen + 30).any(|r| t.contains(&format!("of round {r},")))
        });
        assert!(
            !screen.to_lowercase().contains("error"),
            "search {i}: {screen}"
        );
    }
    stop.store(true, Ordering::Relaxed);
    writer.join().unwrap();
    s.keys(&["C-c", "C-c"]);
    assert_eq!(s.exit_status(), "0");
}
