//! `cairn doctor` with the real models: all well, then a damaged pack and a missing knowledge
//! base, each reported as a problem with a hint and exit status 1.

use std::process::Command;

fn cairn(dir: &std::path::Path, kb: &str, args: &[&str]) -> (i32, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_cairn"))
        .arg("--kb")
        .arg(dir.join(kb))
        .args(args)
        .env("CAIRN_PACKS_DIR", dir.join("packs"))
        .current_dir(dir)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

fn checks(out: &str) -> Vec<serde_json::Value> {
    let start = out.find('[').expect("a JSON array");
    serde_json::from_str::<Vec<serde_json::Value>>(&out[start..]).unwrap()
}

#[test]
fn doctor_reports_what_is_well_and_what_is_not() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    std::fs::create_dir_all(dir.join("docs")).unwrap();
    std::fs::write(
        dir.join("docs/pumps.md"),
        "# Pumps\n\nThe Orvane pump is primed with 3 litres of glycol.\n",
    )
    .unwrap();
    assert_eq!(cairn(dir, "kb", &["add", "docs", "-q"]).0, 0);
    let (code, out) = cairn(
        dir,
        "kb",
        &[
            "pack",
            "build",
            "--from-kb",
            "kb",
            "-o",
            "p.cairnpack",
            "--name",
            "orvane",
        ],
    );
    assert_eq!(code, 0, "{out}");
    let (code, out) = cairn(
        dir,
        "kb",
        &["pack", "install", "p.cairnpack", "--allow-unsigned"],
    );
    assert_eq!(code, 0, "{out}");

    let (code, out) = cairn(dir, "kb", &["doctor", "--json"]);
    assert_eq!(code, 0, "{out}");
    let all = checks(&out);
    for name in [
        "model default",
        "model tiny",
        "model embedder",
        "embedder",
        "knowledge base",
        "pack orvane@0.1.0",
    ] {
        let c = all
            .iter()
            .find(|c| c["check"] == name)
            .unwrap_or_else(|| panic!("no {name} check: {out}"));
        assert_eq!(c["ok"], true, "{c}");
    }

    // A member of the installed pack changes: named, with what to do.
    let member = dir.join("packs/orvane/meta.redb");
    let mut bytes = std::fs::read(&member).unwrap();
    bytes[100] ^= 1;
    std::fs::write(&member, bytes).unwrap();
    let (code, out) = cairn(dir, "kb", &["doctor"]);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("problem pack orvane@0.1.0: meta.redb: changed since it was installed")
            && out.contains("hint: cairn pack remove orvane"),
        "{out}"
    );

    // No knowledge base where it is looked for, but a pack installed: that is a setup that
    // works (the pack is searched alone), not a problem.
    let (_, out) = cairn(dir, "elsewhere", &["doctor"]);
    assert!(
        out.contains("ok      knowledge base: none yet at")
            && out.contains("the installed packs are searched alone"),
        "{out}"
    );
    // No knowledge base and no pack: nothing to search.
    let (code, out) = cairn(dir, "kb", &["pack", "remove", "orvane"]);
    assert_eq!(code, 0, "{out}");
    let (code, out) = cairn(dir, "elsewhere", &["doctor"]);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("problem knowledge base: none at") && out.contains("hint: cairn add PATH"),
        "{out}"
    );
}
