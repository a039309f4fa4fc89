//! The config file: precedence (flags, environment, file, defaults), `config show`, and clear
//! errors for a malformed file.

use std::path::Path;
use std::process::{Command, Output};

fn cairn(args: &[&str], config: &Path) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_cairn"));
    cmd.args(args)
        .env("CAIRN_CONFIG", config)
        .env_remove("CAIRN_KB");
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

const CONFIG: &str = r#"# a user's settings
model = "fast"
k = 5
packs = ["rust-docs"]
kb = "notes-kb"

[gates]
min_coverage = 0.3
"#;

#[test]
fn config_show_names_where_each_setting_comes_from() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("cairn.toml");
    std::fs::write(&file, CONFIG).unwrap();
    let (code, out, err) = run(&mut cairn(&["config", "show"], &file));
    assert_eq!(code, 0, "{err}");
    let out = out.replace(&dir.path().display().to_string(), "[DIR]");
    // Columns are padded to the longest value, which holds the temporary path.
    insta::with_settings!({ filters => vec![(r" +\(", "  (")] }, {
        insta::assert_snapshot!("config_show_file", out);
    });

    // The environment beats the file, a flag beats both.
    let (_, out, _) = run(cairn(&["config", "show"], &file).env("CAIRN_KB", "/env/kb"));
    assert!(
        out.contains("/env/kb") && out.contains("(environment)"),
        "{out}"
    );
    let (_, out, _) =
        run(cairn(&["config", "show", "--kb", "/flag/kb"], &file).env("CAIRN_KB", "/env/kb"));
    assert!(
        out.contains("/flag/kb") && out.contains("(command line)"),
        "{out}"
    );

    let (code, out, _) = run(&mut cairn(&["config", "show", "--json"], &file));
    assert_eq!(code, 0);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["settings"]["k"]["value"], "5");
    assert_eq!(v["settings"]["k"]["source"], "config");
    assert_eq!(v["settings"]["mode"]["source"], "default");
    assert_eq!(v["settings"]["gates.min_coverage"]["value"], "0.3");
    assert_eq!(v["config_file_exists"], true);
}

#[test]
fn the_files_values_reach_the_commands_and_flags_still_win() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("cairn.toml");
    std::fs::write(&file, "model = \"no-such-model\"\n").unwrap();
    let docs = dir.path().join("docs");
    std::fs::create_dir(&docs).unwrap();
    std::fs::write(docs.join("note.md"), "# Note\n\nThe glimmerwick is blue.\n").unwrap();
    let kb = dir.path().join("kb");
    let kb = kb.to_str().unwrap();
    let (code, _, err) = run(&mut cairn(
        &["add", docs.to_str().unwrap(), "--kb", kb, "-q"],
        &file,
    ));
    assert_eq!(code, 0, "{err}");
    // The model named by the file is the one `ask` looks for…
    let (code, _, err) = run(&mut cairn(&["ask", "anything", "--kb", kb], &file));
    assert_ne!(code, 0);
    assert!(err.contains("no-such-model"), "{err}");
    // …unless a flag names another.
    let (_, _, err) = run(&mut cairn(
        &["ask", "anything", "--kb", kb, "--model", "tiny"],
        &file,
    ));
    assert!(!err.contains("no-such-model"), "{err}");
}

#[test]
fn a_malformed_config_file_is_named_with_its_line_and_key() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("cairn.toml");
    for (text, expect) in [
        ("model = \"fast\"\nk = \"five\"\n", ["line 2", "five"]),
        (
            "model = \"fast\"\n\n[gates]\nmin_coverag = 0.3\n",
            ["line 4", "min_coverag"],
        ),
        ("mode = \"fuzzy\"\n", ["line 1", "fuzzy"]),
        ("k = 0\n", ["k must be at least 1", "cairn.toml"]),
    ] {
        std::fs::write(&file, text).unwrap();
        let (code, _, err) = run(&mut cairn(&["config", "show"], &file));
        assert_eq!(code, 2, "{text}: {err}");
        assert!(err.contains(&file.display().to_string()), "{err}");
        for e in expect {
            assert!(err.contains(e), "{text}: {e} missing from {err}");
        }
    }
    // A config file named by CAIRN_CONFIG must exist.
    let missing = dir.path().join("missing.toml");
    let (code, _, err) = run(&mut cairn(&["status"], &missing));
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("missing.toml"), "{err}");
}

#[test]
fn limits_come_from_the_config_file_unless_a_flag_or_the_environment_says_otherwise() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("cairn.toml");
    std::fs::write(&config, "[limits]\nmax_text = 0\nmax_pdf_pages = 10\n").unwrap();
    let docs = dir.path().join("docs");
    std::fs::create_dir_all(&docs).unwrap();
    std::fs::write(docs.join("a.md"), "# Pumps\n\nPrime the pump.\n").unwrap();
    let kb = dir.path().join("kb").display().to_string();
    let docs = docs.display().to_string();

    // No text at all is allowed per file: the file is skipped, named, with the reason.
    let (code, out, err) =
        run(cairn(&["--kb", &kb, "add", &docs, "--json"], &config).env_remove("CAIRN_MAX_TEXT"));
    assert_eq!(code, 0, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["added"], 0, "{out}");
    assert!(out.contains("too-much-text"), "{out}");

    // The environment overrides the file.
    let (code, out, err) =
        run(cairn(&["--kb", &kb, "add", &docs, "--json"], &config).env("CAIRN_MAX_TEXT", "1"));
    assert_eq!(code, 0, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["added"], 1, "{out}");
}
