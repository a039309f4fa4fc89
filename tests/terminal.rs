//! No byte from a document, a file name, a pack manifest or the model's output reaches the
//! terminal as a control or escape sequence: every output surface, through the real binary, on
//! a document (and a file name, and a pack's manifest) full of OSC 52 (clipboard), OSC 2
//! (window title), OSC 8 (links), CSI 2J (clear screen), C1 controls and bidi overrides.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

/// Text that would drive a terminal: each sequence carries a marker that must never be seen.
const HOSTILE: &str = "\u{1b}]52;c;cGFzdGU=\u{7} \u{1b}]2;PWNED\u{7} \u{1b}[2J \
    \u{1b}]8;;http://evil.example/\u{1b}\\here\u{1b}]8;;\u{1b}\\ \u{202e}desrever\u{202c} \
    \u{9b}31m \u{7}\u{8}\r";

/// The markers inside [`HOSTILE`]'s sequences.
const MARKERS: [&str; 3] = ["cGFzdGU=", "PWNED", "evil.example"];

fn run(kb: &Path, args: &[&str], env: &[(&str, &Path)]) -> (i32, String) {
    let mut c = Command::new(env!("CARGO_BIN_EXE_cairn"));
    c.args(args).env("CAIRN_KB", kb).env_remove("NO_COLOR");
    for (k, v) in env {
        c.env(k, v);
    }
    let out = c.output().unwrap();
    let all = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.code().unwrap_or(-1), all)
}

/// Fails if `out` holds a control character (but newline), a bidi control, or a marker.
fn assert_inert(surface: &str, out: &str) {
    for (i, c) in out.chars().enumerate() {
        let bidi = matches!(c, '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}');
        assert!(
            !(bidi || c.is_control() && c != '\n'),
            "{surface}: {c:?} at char {i}:\n{out:?}"
        );
    }
    // A marker may show only where the sequence around it is spelled out, inert (`\u{1b}]2;…`,
    // as `pack info` shows a stranger's manifest).
    for m in MARKERS {
        for (at, _) in out.match_indices(m) {
            let before: String = out[..at]
                .chars()
                .rev()
                .take(24)
                .collect::<Vec<_>>()
                .into_iter()
                .rev()
                .collect();
            assert!(
                before.contains("\\u{1b}"),
                "{surface}: {m:?} reached the output:\n{out}"
            );
        }
    }
}

/// Removes cairn's own styling (SGR `ESC [ … m`) and its file links (OSC 8 to a `file://`
/// URL), so that what is left can be checked like plain output.
fn without_own_styling(out: &str) -> String {
    let mut s = String::new();
    let mut rest = out;
    while let Some(i) = rest.find('\u{1b}') {
        s.push_str(&rest[..i]);
        let tail = &rest[i..];
        if let Some(sgr) = tail.strip_prefix("\u{1b}[") {
            let end = sgr.find('m').expect("an SGR sequence");
            assert!(
                sgr[..end].chars().all(|c| c.is_ascii_digit() || c == ';'),
                "{tail:?}"
            );
            rest = &sgr[end + 1..];
        } else if let Some(link) = tail.strip_prefix("\u{1b}]8;;") {
            let end = link.find("\u{1b}\\").expect("an OSC 8 sequence");
            let url = &link[..end];
            assert!(url.is_empty() || url.starts_with("file://"), "{url:?}");
            assert!(url.chars().all(|c| c.is_ascii_graphic()), "{url:?}");
            rest = &link[end + 2..];
        } else {
            panic!("an escape that is not cairn's styling: {tail:?}");
        }
    }
    s.push_str(rest);
    s
}

#[test]
#[allow(clippy::too_many_lines)] // one walk through every surface
fn no_document_name_manifest_or_answer_drives_the_terminal() {
    let tmp = tempfile::tempdir().unwrap();
    let docs = tmp.path().join("docs");
    std::fs::create_dir_all(&docs).unwrap();
    let body = format!(
        "# Lighthouse {HOSTILE} schedule\n\n\
         The lighthouse keeper {HOSTILE} rings the bell at dusk every evening.\n\n\
         ## Lamps {HOSTILE}\n\nThe lamp is lit {HOSTILE} at nine o'clock.\n"
    );
    let name = format!("keeper{}.md", "\u{1b}]2;PWNED\u{7}\u{1b}[2J");
    std::fs::write(docs.join(&name), &body).unwrap();
    // Skipped, so that its name is in a message too.
    std::fs::write(
        docs.join(format!("empty{}.md", "\u{1b}]52;c;cGFzdGU=\u{7}")),
        "",
    )
    .unwrap();
    let kb = tmp.path().join("kb");
    let packs = tmp.path().join("packs");
    let env = [("CAIRN_PACKS_DIR", packs.as_path())];

    let (code, out) = run(&kb, &["add", docs.to_str().unwrap()], &env);
    assert_eq!(code, 0, "{out}");
    assert_inert("add", &out);

    let q = "lighthouse keeper rings the bell at dusk";
    for args in [
        vec!["search", q],
        vec!["search", q, "--mode", "bm25"],
        vec!["status", "--documents"],
        vec!["ask", q, "--model", "tiny", "--quote"],
        vec!["ask", q, "--model", "tiny", "--show-context"],
        vec!["ask", q, "--model", "tiny", "--free", "--max-tokens", "48"],
        // Errors that name what they were given.
        vec!["remove", "docs/\u{1b}]2;PWNED\u{7}x"],
        vec!["add", "/nowhere/\u{1b}]52;c;cGFzdGU=\u{7}"],
        // A usage error quoting the bad value.
        vec!["search", q, "--mode", "\u{1b}]2;PWNED\u{7}"],
    ] {
        let (_, out) = run(&kb, &args, &env);
        assert_inert(&format!("{args:?}"), &out);
    }
    // With colour and links forced on, the only escapes are cairn's own.
    let (code, out) = run(
        &kb,
        &["--color", "always", "search", q],
        &[("FORCE_HYPERLINK", Path::new("1"))],
    );
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("\u{1b}]8;;file://"), "links are on: {out:?}");
    assert_inert("search --color always", &without_own_styling(&out));
    let (_, out) = run(
        &kb,
        &["--color", "always", "ask", q, "--model", "tiny", "--quote"],
        &[],
    );
    assert_inert("ask --color always", &without_own_styling(&out));

    // A pack whose manifest is full of them.
    let pack = tmp.path().join("lh.cairnpack");
    let (code, out) = run(
        &kb,
        &[
            "pack",
            "build",
            "--from-kb",
            kb.to_str().unwrap(),
            "-o",
            pack.to_str().unwrap(),
            "--name",
            "lh",
            "--title",
            HOSTILE,
            "--description",
            HOSTILE,
            "--source",
            HOSTILE,
            "--license",
            HOSTILE,
        ],
        &env,
    );
    assert_eq!(code, 0, "{out}");
    assert_inert("pack build", &out);
    for args in [
        vec!["pack", "info", pack.to_str().unwrap()],
        vec!["pack", "verify", pack.to_str().unwrap(), "--allow-unsigned"],
        vec![
            "pack",
            "install",
            pack.to_str().unwrap(),
            "--allow-unsigned",
        ],
        vec!["pack", "list"],
        vec!["search", q, "--no-kb"],
        vec!["doctor"],
    ] {
        let (_, out) = run(&kb, &args, &env);
        assert_inert(&format!("{args:?}"), &out);
    }

    // The terminal app: every byte it writes to the terminal is recorded (tmux pipe-pane)
    // while it searches and answers over the document.
    let socket = format!("cairn-term-{}", std::process::id());
    let tmux = |args: &[&str]| {
        Command::new("tmux")
            .args(["-L", &socket])
            .args(args)
            .output()
            .expect("tmux is installed (.ci/run installs it)")
    };
    let raw = tmp.path().join("raw");
    let script = format!(
        "'{}' --kb '{}' tui --model tiny; sleep 30",
        env!("CARGO_BIN_EXE_cairn"),
        kb.display()
    );
    assert!(tmux(&[
        "-f",
        "/dev/null",
        "new-session",
        "-d",
        "-s",
        "t",
        "-x",
        "100",
        "-y",
        "30",
        "sh",
        "-c",
        &script
    ])
    .status
    .success());
    assert!(tmux(&[
        "pipe-pane",
        "-o",
        "-t",
        "t",
        &format!("cat >> '{}'", raw.display())
    ])
    .status
    .success());
    let wait = |what: &str, ok: &dyn Fn(&str) -> bool| {
        let end = Instant::now() + Duration::from_secs(90);
        loop {
            let screen = String::from_utf8_lossy(&tmux(&["capture-pane", "-p", "-t", "t"]).stdout)
                .into_owned();
            if ok(&screen) {
                return screen;
            }
            assert!(Instant::now() < end, "waited for {what}:\n{screen}");
            std::thread::sleep(Duration::from_millis(100));
        }
    };
    wait("the app", &|s| {
        s.contains(" docs · ") && s.contains("│ tiny │")
    });
    tmux(&["send-keys", "-t", "t", "-l", q]);
    tmux(&["send-keys", "-t", "t", "Enter"]);
    wait("an answer", &|s| {
        s.contains("tiny · first token") || s.contains("Not found")
    });
    tmux(&["send-keys", "-t", "t", "C-t"]);
    tmux(&["send-keys", "-t", "t", "-l", "lamp lit nine"]);
    tmux(&["send-keys", "-t", "t", "Enter"]);
    let screen = wait("search results", &|s| s.contains("Search results ("));
    assert!(screen.contains("keeper"), "{screen}");
    let title = String::from_utf8_lossy(
        &tmux(&["display-message", "-p", "-t", "t", "#{pane_title}"]).stdout,
    )
    .into_owned();
    tmux(&["send-keys", "-t", "t", "C-c", "C-c"]);
    std::thread::sleep(Duration::from_millis(500));
    tmux(&["kill-server"]);
    assert!(
        !title.contains("PWNED"),
        "the window title was set: {title}"
    );
    let bytes = std::fs::read(&raw).unwrap();
    assert!(bytes.len() > 1000, "the app's output was recorded");
    let text = String::from_utf8_lossy(&bytes);
    for m in MARKERS {
        assert!(!text.contains(m), "the app wrote {m:?} to the terminal");
    }
    for c in ['\u{202e}', '\u{202c}', '\u{9b}'] {
        assert!(!text.contains(c), "the app wrote {c:?} to the terminal");
    }
    assert!(!screen.contains('\u{202e}'), "{screen}");
}
