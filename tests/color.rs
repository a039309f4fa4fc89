//! Colour and file links on stdout (`--color`, `NO_COLOR`, `CLICOLOR_FORCE`,
//! `FORCE_HYPERLINK`), and `cairn doctor` as a user reads it: insta snapshots of coloured and
//! plain output, with paths, the host name and figures that vary filtered out.

use std::path::Path;
use std::process::Command;

fn cairn(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> String {
    let mut c = Command::new(env!("CARGO_BIN_EXE_cairn"));
    c.arg("--kb")
        .arg(dir.join("kb"))
        .args(args)
        .current_dir(dir);
    for v in ["NO_COLOR", "CLICOLOR_FORCE", "CLICOLOR", "FORCE_HYPERLINK"] {
        c.env_remove(v);
    }
    c.envs(env.iter().copied());
    let out = c.output().unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Escapes shown as text, so that a snapshot shows where colour and links are.
fn visible(s: &str) -> String {
    s.replace('\x1b', "⎋")
}

fn filters(dir: &Path) -> Vec<(String, String)> {
    vec![
        (r"file://[A-Za-z0-9.-]*/".into(), "file://[HOST]/".into()),
        (regex_escape(&dir.display().to_string()), "[TMP]".into()),
        (r"\d+\.\d{3}".into(), "[SCORE]".into()),
        (r"#\d+ ".into(), "#[RANK] ".into()),
    ]
}

fn regex_escape(s: &str) -> String {
    s.chars()
        .flat_map(|c| {
            if "\\.+*?()|[]{}^$".contains(c) {
                vec!['\\', c]
            } else {
                vec![c]
            }
        })
        .collect()
}

#[test]
fn search_output_is_coloured_and_linked_only_when_asked() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    std::fs::create_dir_all(dir.join("docs")).unwrap();
    std::fs::write(
        dir.join("docs/pumps.md"),
        "# Pumps\n\nThe Orvane pump is primed with 3 litres of glycol.\n",
    )
    .unwrap();
    cairn(dir, &["add", "docs", "-q"], &[]);
    let search = ["search", "primed glycol", "-k", "1", "--mode", "bm25"];

    let plain = cairn(dir, &search, &[]);
    assert!(!plain.contains('\x1b'), "a pipe gets no escapes: {plain:?}");
    for (why, env, flag) in [
        ("--color never", vec![("CLICOLOR_FORCE", "1")], "never"),
        ("NO_COLOR", vec![("NO_COLOR", "1")], "auto"),
    ] {
        let out = cairn(dir, &[&["--color", flag][..], &search[..]].concat(), &env);
        assert_eq!(out, plain, "{why}");
    }
    let forced = cairn(dir, &search, &[("CLICOLOR_FORCE", "1")]);
    assert!(forced.contains("\x1b["), "CLICOLOR_FORCE: {forced:?}");
    assert!(
        !forced.contains("\x1b]8;"),
        "no link unless the terminal shows them"
    );

    let linked = cairn(
        dir,
        &[&["--color", "always"][..], &search[..]].concat(),
        &[("FORCE_HYPERLINK", "1")],
    );
    let json = cairn(
        dir,
        &[&["--color", "always"][..], &search[..], &["--json"][..]].concat(),
        &[("FORCE_HYPERLINK", "1")],
    );
    assert!(!json.contains('\x1b'), "JSON is never styled: {json:?}");
    let f = filters(dir);
    let f: Vec<(&str, &str)> = f.iter().map(|(a, b)| (a.as_str(), b.as_str())).collect();
    insta::with_settings!({ filters => f }, {
        insta::assert_snapshot!("search_plain", plain);
        insta::assert_snapshot!("search_coloured_linked", visible(&linked));
    });
}

#[test]
fn doctor_snapshot_plain_and_coloured() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    std::fs::create_dir_all(dir.join("models")).unwrap();
    let models = dir.join("models").display().to_string();
    let packs = dir.join("packs").display().to_string();
    let cache = dir.join("cache").display().to_string();
    let env = [
        ("CAIRN_MODELS_DIR", models.as_str()),
        ("CAIRN_PACKS_DIR", packs.as_str()),
        ("XDG_CACHE_HOME", cache.as_str()),
    ];
    let plain = cairn(dir, &["doctor"], &env);
    let coloured = cairn(dir, &["doctor", "--color", "always"], &env);
    assert_eq!(
        anstream::adapter::strip_str(&coloured).to_string(),
        plain,
        "the same text without its styling"
    );
    let mut f = filters(dir);
    f.push((
        r"\d+(\.\d+)? [KMGT]?i?B free of \d+(\.\d+)? [KMGT]?i?B at [^\n⎋]*".into(),
        "[N] free of [N] at [DIR]".into(),
    ));
    let f: Vec<(&str, &str)> = f.iter().map(|(a, b)| (a.as_str(), b.as_str())).collect();
    insta::with_settings!({ filters => f }, {
        insta::assert_snapshot!("doctor_plain", plain);
        insta::assert_snapshot!("doctor_coloured", visible(&coloured));
    });
}
