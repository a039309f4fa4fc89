//! `cairn pack` end to end with the real embedder: build, sign, verify (also with Debian's
//! `minisign`, which `.ci/run` installs), install, search the installed pack, and the refusals.

use std::path::Path;
use std::process::Command;

struct Env {
    dir: tempfile::TempDir,
}

impl Env {
    fn new() -> Env {
        let dir = tempfile::tempdir().unwrap();
        let docs = dir.path().join("docs");
        std::fs::create_dir_all(&docs).unwrap();
        std::fs::write(
            docs.join("pumps.md"),
            "# Orvane pump maintenance\n\nBefore its first start, the Orvane pump must be primed with 3 litres of glycol.\nIts seals are replaced every 400 running hours.\n",
        )
        .unwrap();
        std::fs::write(
            docs.join("garden.md"),
            "# Garden\n\nTomato plants need six hours of direct sun a day.\n",
        )
        .unwrap();
        Env { dir }
    }

    fn path(&self, p: &str) -> String {
        self.dir.path().join(p).display().to_string()
    }

    fn cairn(&self, args: &[&str]) -> (i32, String, String) {
        let out = Command::new(env!("CARGO_BIN_EXE_cairn"))
            .args(args)
            .env("CAIRN_PACKS_DIR", self.dir.path().join("packs"))
            .env("CAIRN_TRUST_DIR", self.dir.path().join("trusted"))
            .env("CAIRN_KB", self.dir.path().join("kb"))
            .env("XDG_CONFIG_HOME", self.dir.path().join("config"))
            .current_dir(self.dir.path())
            .output()
            .unwrap();
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    /// `cairn ask` the pump question with the tiny model, and `extra` flags.
    fn ask_glycol(&self, extra: &[&str]) -> (i32, String, String) {
        let mut args = vec![
            "ask",
            "How much glycol is needed to prime the Orvane pump?",
            "--model",
            "tiny",
        ];
        args.extend_from_slice(extra);
        self.cairn(&args)
    }

    fn ok(&self, args: &[&str]) -> String {
        let (code, out, err) = self.cairn(args);
        assert_eq!(code, 0, "cairn {args:?}: {out}{err}");
        out
    }
}

#[test]
fn build_sign_verify_install_and_search_a_pack() {
    let e = Env::new();
    let docs = e.path("docs");
    let out = e.ok(&[
        "pack",
        "build",
        &docs,
        "-o",
        "orvane.cairnpack",
        "--version",
        "1.2.0",
        "--title",
        "Orvane manuals",
        "--license",
        "CC0-1.0",
        "-q",
    ]);
    assert!(out.contains("2 documents"), "{out}");
    e.ok(&["pack", "keygen", "--out", "keys"]);
    e.ok(&[
        "pack",
        "sign",
        "orvane.cairnpack",
        "--key",
        "keys/cairn.key",
    ]);
    // Untrusted until the key is trusted.
    let (code, _, err) = e.cairn(&["pack", "install", "orvane.cairnpack"]);
    assert_eq!(code, 1);
    assert!(err.contains("which is not trusted"), "{err}");
    let out = e.ok(&[
        "pack",
        "verify",
        "orvane.cairnpack",
        "--trust",
        "keys/cairn.pub",
    ]);
    assert!(
        out.contains("all hashes match") && out.contains("good, by trusted key"),
        "{out}"
    );
    // The standard tool agrees.
    let status = Command::new("minisign")
        .args([
            "-Vm",
            &e.path("orvane.cairnpack"),
            "-p",
            &e.path("keys/cairn.pub"),
        ])
        .status()
        .expect("minisign is installed (.ci/run installs Debian's package)");
    assert!(status.success());
    e.ok(&["pack", "trust", "keys/cairn.pub"]);
    let out = e.ok(&["pack", "install", "orvane.cairnpack"]);
    assert!(out.contains("installed orvane@1.2.0"), "{out}");
    let out = e.ok(&["pack", "list"]);
    assert!(
        out.contains("orvane") && out.contains("1.2.0") && out.contains("Orvane manuals"),
        "{out}"
    );
    let v: serde_json::Value = serde_json::from_str(&e.ok(&["pack", "list", "--json"])).unwrap();
    let signature = &v["packs"][0]["signature"];
    assert_eq!(signature["trusted"], true, "{v}");
    assert_eq!(signature["key"].as_str().map(str::len), Some(16), "{v}");
    let out = e.ok(&["pack", "info", "orvane"]);
    assert!(
        out.contains("all-MiniLM-L6-v2") && out.contains("— installed"),
        "{out}"
    );
    assert!(out.contains("signature:   signed by trusted key "), "{out}");
    // Someone who installs a pack before adding any file of their own has no knowledge base:
    // the pack alone is searched and answers, as with --no-kb.
    assert!(!Path::new(&e.path("kb")).exists());
    let out = e.ok(&["search", "how much glycol to prime the pump", "-k", "1"]);
    assert!(out.contains("[pack:orvane@1.2.0] docs/pumps.md"), "{out}");
    let (code, out, err) = e.ask_glycol(&["--json"]);
    assert!(code == 0 || code == 3, "{out}{err}");
    let v: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(
        v["sources"][0]["doc"], "[pack:orvane@1.2.0] docs/pumps.md",
        "{v:#}"
    );
    let (code, _, err) = e.cairn(&["status"]);
    assert_eq!(code, 1);
    assert!(
        err.contains("questions search the installed packs alone"),
        "{err}"
    );
    let (_, out, _) = e.cairn(&["doctor"]);
    assert!(
        out.contains("ok      knowledge base: none yet at ")
            && out.contains("the installed packs are searched alone"),
        "{out}"
    );
    // Asked beside the user's own knowledge base (only the garden), the answer cites the pack.
    let garden = e.path("garden");
    std::fs::create_dir_all(&garden).unwrap();
    std::fs::write(
        Path::new(&garden).join("tomatoes.md"),
        "# Tomatoes\n\nTomato plants need six hours of direct sun a day.\n",
    )
    .unwrap();
    e.ok(&["add", &garden, "-q"]);
    let (code, out, err) = e.ask_glycol(&["--json"]);
    assert_eq!(code, 0, "{out}{err}");
    let v: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    let cited = v["sentences"][0]["citations"][0]["source"]
        .as_u64()
        .unwrap() as usize;
    assert_eq!(
        v["sources"][cited - 1]["doc"],
        "[pack:orvane@1.2.0] docs/pumps.md",
        "{v:#}"
    );
    let out = e.ok(&[
        "ask",
        "How much glycol is needed to prime the Orvane pump?",
        "--model",
        "tiny",
    ]);
    assert!(
        out.contains("[1] [pack:orvane@1.2.0] docs/pumps.md L3"),
        "{out}"
    );
    // One ranking over both; --pack and --no-kb choose.
    let out = e.ok(&["search", "tomato sun", "-k", "1"]);
    assert!(out.contains("garden/tomatoes.md"), "{out}");
    let out = e.ok(&["search", "tomato sun", "-k", "1", "--no-kb"]);
    assert!(out.contains("[pack:orvane@1.2.0]"), "{out}");
    let (code, _, err) = e.cairn(&["search", "x", "--pack", "nope"]);
    assert_eq!(code, 1);
    assert!(err.contains("no installed pack named nope"), "{err}");
    // The installed pack is a knowledge base that opens in place, without re-embedding.
    let installed = e.path("packs/orvane");
    let out = e.ok(&[
        "--kb",
        &installed,
        "search",
        "how much glycol to prime the pump",
        "-k",
        "1",
    ]);
    assert!(out.contains("docs/pumps.md"), "{out}");
    // Export: one Qdrant-shaped point per chunk, with its vector.
    let out = e.ok(&["pack", "export", "orvane", "--format", "jsonl"]);
    let lines: Vec<serde_json::Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert!(!lines.is_empty());
    for p in &lines {
        assert!(p["id"].is_u64(), "{p}");
        assert_eq!(p["vector"].as_array().unwrap().len(), 384);
        assert_eq!(p["payload"]["pack"], "orvane@1.2.0");
        assert!(p["payload"]["text"].is_string() && p["payload"]["lines"].is_array());
    }
    assert!(lines.iter().any(|p| p["payload"]["doc"] == "docs/pumps.md"));
    e.ok(&["pack", "remove", "orvane"]);
    assert!(!Path::new(&installed).exists());
}

#[test]
fn a_damaged_installed_pack_is_left_out_with_a_warning_unless_it_was_asked_for() {
    let e = Env::new();
    let docs = e.path("docs");
    e.ok(&["pack", "build", &docs, "-o", "orvane.cairnpack", "-q"]);
    e.ok(&["pack", "install", "orvane.cairnpack", "--allow-unsigned"]);
    // Someone's own knowledge base, and the pack's store overwritten behind cairn's back.
    let own = e.dir.path().join("own");
    std::fs::create_dir_all(&own).unwrap();
    std::fs::write(
        own.join("kiln.md"),
        "# Kilns\n\nThe kiln is fired to 1,240 degrees.\n",
    )
    .unwrap();
    e.ok(&["add", own.to_str().unwrap(), "-q"]);
    let store = e.dir.path().join("packs/orvane/meta.redb");
    std::fs::write(&store, vec![0x5a; 8192]).unwrap();

    let (code, out, err) = e.cairn(&["search", "How hot is the kiln fired?", "-k", "3"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("kiln.md"), "the own documents answer: {out}");
    assert!(
        err.contains("pack:orvane@") && err.contains("is left out") && err.contains("meta.redb"),
        "{err}"
    );
    // Asked for by name, it is an error that names the file.
    let (code, out, err) = e.cairn(&["search", "kiln", "--pack", "orvane"]);
    assert_eq!(code, 1, "{out}{err}");
    assert!(err.contains("meta.redb"), "{err}");
}

#[test]
fn reproducible_packs_of_the_same_documents_are_byte_identical_and_unsigned_ones_need_consent() {
    let e = Env::new();
    e.ok(&["add", &e.path("docs"), "-q"]);
    let kb = e.path("kb");
    for out in ["a.cairnpack", "b.cairnpack"] {
        e.ok(&[
            "pack",
            "build",
            "--from-kb",
            &kb,
            "-o",
            out,
            "--name",
            "orvane",
            "--reproducible",
        ]);
    }
    assert_eq!(
        std::fs::read(e.path("a.cairnpack")).unwrap(),
        std::fs::read(e.path("b.cairnpack")).unwrap()
    );
    // From the files, through a knowledge base of its own with another history: the same bytes.
    e.ok(&[
        "pack",
        "build",
        &e.path("docs"),
        "-o",
        "c.cairnpack",
        "--name",
        "orvane",
        "--reproducible",
        "-q",
    ]);
    assert!(
        std::fs::read(e.path("a.cairnpack")).unwrap()
            == std::fs::read(e.path("c.cairnpack")).unwrap(),
        "a pack built from the files differs from one built from a knowledge base of them"
    );
    let (code, _, err) = e.cairn(&["pack", "install", "a.cairnpack"]);
    assert_eq!(code, 1);
    assert!(
        err.contains("no signature") && err.contains("--allow-unsigned"),
        "{err}"
    );
    let (code, out, err) = e.cairn(&["pack", "install", "a.cairnpack", "--allow-unsigned"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("unsigned"), "{out}");
}

#[test]
fn a_title_with_escape_sequences_is_shown_escaped() {
    let e = Env::new();
    e.ok(&["add", &e.path("docs"), "-q"]);
    e.ok(&[
        "pack",
        "build",
        "--from-kb",
        &e.path("kb"),
        "-o",
        "evil.cairnpack",
        "--title",
        "Nice\u{1b}]0;pwned\u{7} title\u{1b}[2J",
        "--description",
        "line\u{202e}rev",
    ]);
    let out = e.ok(&["pack", "info", "evil.cairnpack"]);
    assert!(
        !out.contains('\u{1b}') && !out.contains('\u{7}') && !out.contains('\u{202e}'),
        "{out:?}"
    );
    assert!(
        out.contains("\\u{1b}]0;pwned\\u{7} title\\u{1b}[2J"),
        "{out}"
    );
}

#[test]
fn the_bundled_cargo_book_pack_is_built_signed_installed_and_answers_naming_the_pack() {
    let e = Env::new();
    let recipe = concat!(env!("CARGO_MANIFEST_DIR"), "/corpora/cargo-book.pack.json");
    let out = e.ok(&[
        "pack",
        "build",
        "--recipe",
        recipe,
        "-o",
        "cargo-book.cairnpack",
        "-q",
    ]);
    assert!(out.contains("22 documents"), "{out}");
    e.ok(&["pack", "keygen", "--out", "keys"]);
    e.ok(&[
        "pack",
        "sign",
        "cargo-book.cairnpack",
        "--key",
        "keys/cairn.key",
    ]);
    e.ok(&[
        "pack",
        "verify",
        "cargo-book.cairnpack",
        "--trust",
        "keys/cairn.pub",
    ]);
    e.ok(&[
        "pack",
        "install",
        "cargo-book.cairnpack",
        "--trust",
        "keys/cairn.pub",
    ]);
    let out = e.ok(&["pack", "info", "cargo-book"]);
    assert!(
        out.contains("MIT OR Apache-2.0") && out.contains("1.95.0"),
        "{out}"
    );
    // Search finds the place in the pack, named as the pack's…
    let question = "Where does cargo build --release put the resulting binary?";
    let out = e.ok(&["search", question, "--no-kb", "-k", "1"]);
    assert!(
        out.contains("[pack:cargo-book@1.95.0] cargo-book/guide/creating-a-new-project.html L"),
        "{out}"
    );
    // …and an answer from the pack cites it so (the tiny model: which passage it quotes is
    // its own choice).
    let out = e.ok(&["ask", question, "--no-kb", "--model", "tiny", "--quote"]);
    assert!(
        out.contains("] [pack:cargo-book@1.95.0] cargo-book/"),
        "{out}"
    );
}

#[test]
fn a_missing_path_or_nothing_readable_writes_no_pack() {
    let e = Env::new();
    let docs = e.path("docs");
    let missing = e.path("no-such-folder");
    // A path that is not there: a usage error, before anything is read, and no file.
    let (code, _, err) = e.cairn(&["pack", "build", &docs, &missing, "-o", "a.cairnpack"]);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains(&format!("no such file or folder: {missing}")),
        "{err}"
    );
    assert!(err.contains("no pack was written"), "{err}");
    assert!(!e.dir.path().join("a.cairnpack").exists());

    // Files, none of which cairn reads: an error naming the pack, and no file.
    let images = e.dir.path().join("images");
    std::fs::create_dir_all(&images).unwrap();
    std::fs::write(
        images.join("photo.png"),
        [0x89, b'P', b'N', b'G', 0, 1, 2, 3],
    )
    .unwrap();
    let (code, out, err) = e.cairn(&["pack", "build", &e.path("images"), "-o", "b.cairnpack"]);
    assert_eq!(code, 1, "{out}{err}");
    assert!(
        err.contains("b.cairnpack: no pack written: no document was read"),
        "{err}"
    );
    assert!(
        err.contains("photo.png"),
        "the skipped file is named: {err}"
    );
    assert!(!e.dir.path().join("b.cairnpack").exists());

    // --from-kb of a directory that holds no knowledge base says so.
    let (code, _, err) = e.cairn(&["pack", "build", "--from-kb", &missing, "-o", "c.cairnpack"]);
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains(&format!("no knowledge base at {missing}")),
        "{err}"
    );
    assert!(!e.dir.path().join("c.cairnpack").exists());

    // And no work directory is left beside the output.
    let left: Vec<_> = std::fs::read_dir(e.dir.path())
        .unwrap()
        .map(|d| d.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(".cairnpack"))
        .collect();
    assert!(left.is_empty(), "{left:?}");
}

#[test]
fn keygen_and_sign_default_to_the_signing_directory() {
    let e = Env::new();
    let docs = e.path("docs");
    e.ok(&["pack", "build", &docs, "-o", "orvane.cairnpack", "-q"]);
    // The pack is made to be handed on: readable as any new file is, not owner-only.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode();
        let plain = e.dir.path().join("plain");
        std::fs::write(&plain, "").unwrap();
        assert_eq!(
            mode(&e.dir.path().join("orvane.cairnpack")),
            mode(&plain),
            "a pack's mode"
        );
    }
    // No key yet: signing says where it looked and what to do.
    let (code, _, err) = e.cairn(&["pack", "sign", "orvane.cairnpack"]);
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains("no secret key at") && err.contains("cairn pack keygen"),
        "{err}"
    );

    let out = e.ok(&["pack", "keygen"]);
    let signing = e.dir.path().join("config/cairn/signing");
    assert!(
        out.contains(&signing.join("cairn.key").display().to_string()),
        "{out}"
    );
    // The maker's own key is trusted for the maker's own installs.
    assert!(out.contains("trusted key"), "{out}");
    assert!(signing.join("cairn.pub").exists());
    // A second keygen does not overwrite the first key.
    let (code, _, err) = e.cairn(&["pack", "keygen"]);
    assert_eq!(code, 1);
    assert!(err.contains("does not overwrite keys"), "{err}");

    let out = e.ok(&["pack", "sign", "orvane.cairnpack"]);
    assert!(out.contains("orvane.cairnpack.minisig"), "{out}");
    let public = signing.join("cairn.pub").display().to_string();
    let out = e.ok(&["pack", "verify", "orvane.cairnpack", "--trust", &public]);
    assert!(out.contains("signature: good"), "{out}");
    let out = e.ok(&["pack", "verify", "orvane.cairnpack"]);
    assert!(out.contains("signature: good, by trusted key"), "{out}");
    e.ok(&["pack", "install", "orvane.cairnpack"]);
}

#[test]
fn an_update_says_what_it_replaced_and_an_older_version_needs_consent() {
    let e = Env::new();
    let docs = e.path("docs");
    for v in ["1.0.0", "1.1.0"] {
        let file = format!("orvane-{v}.cairnpack");
        e.ok(&[
            "pack",
            "build",
            &docs,
            "-o",
            &file,
            "--name",
            "orvane",
            "--version",
            v,
            "-q",
        ]);
    }
    let install = |v: &str, extra: &[&str]| {
        let file = format!("orvane-{v}.cairnpack");
        let mut args = vec!["pack", "install", file.as_str(), "--allow-unsigned"];
        args.extend_from_slice(extra);
        e.cairn(&args)
    };
    let (code, out, err) = install("1.0.0", &[]);
    assert_eq!(code, 0, "{err}");
    assert!(out.starts_with("installed orvane@1.0.0"), "{out}");
    let (code, out, err) = install("1.1.0", &[]);
    assert_eq!(code, 0, "{err}");
    assert!(out.starts_with("updated orvane 1.0.0 → 1.1.0"), "{out}");
    let (code, out, err) = install("1.1.0", &[]);
    assert_eq!(code, 0, "{err}");
    assert!(out.starts_with("reinstalled orvane@1.1.0"), "{out}");

    // Going back is refused, and the newer pack stays installed.
    let (code, _, err) = install("1.0.0", &[]);
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains("orvane@1.1.0 is installed, newer than this pack's 1.0.0")
            && err.contains("--allow-downgrade"),
        "{err}"
    );
    assert!(e.ok(&["pack", "list"]).contains("1.1.0"));
    let (code, out, err) = install("1.0.0", &["--allow-downgrade"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.starts_with("downgraded orvane 1.1.0 → 1.0.0"), "{out}");
    assert!(e.ok(&["pack", "list"]).contains("1.0.0"));
    // For scripts: one JSON object, the pack as installed (unsigned here).
    let v: serde_json::Value = serde_json::from_str(&e.ok(&["pack", "list", "--json"])).unwrap();
    let packs = v["packs"].as_array().unwrap();
    assert_eq!(packs.len(), 1, "{v}");
    assert_eq!(packs[0]["name"], "orvane");
    assert_eq!(packs[0]["version"], "1.0.0");
    assert_eq!(packs[0]["documents"], 2);
    assert!(packs[0]["signature"].is_null(), "{v}");
    assert!(v["packs_dir"].as_str().unwrap().ends_with("packs"), "{v}");
}
