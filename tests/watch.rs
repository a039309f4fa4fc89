//! `cairn add --watch`: files created, changed and deleted under a watched folder reach the
//! knowledge base, each run says what it changed, and the knowledge base's own commits (it lives
//! inside the watched folder here) are not taken for changes.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{channel, Receiver};
use std::time::Duration;

mod common;
use common::cairn;

/// The lines a child writes to one of its pipes, as they come.
fn lines(pipe: impl std::io::Read + Send + 'static) -> Receiver<String> {
    let (tx, rx) = channel();
    std::thread::spawn(move || {
        for line in BufReader::new(pipe).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    rx
}

/// Ends the watcher however the test ends.
struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn next_run(out: &Receiver<String>, what: &str) -> serde_json::Value {
    let line = out
        .recv_timeout(Duration::from_secs(90))
        .unwrap_or_else(|e| panic!("no run reported after {what}: {e}"));
    serde_json::from_str(&line).unwrap_or_else(|e| panic!("{e}: {line}"))
}

fn counts(run: &serde_json::Value) -> (u64, u64, u64) {
    (
        run["added"].as_u64().unwrap(),
        run["updated"].as_u64().unwrap(),
        run["removed"].as_u64().unwrap(),
    )
}

fn top_doc(kb: &Path, query: &str) -> String {
    let (code, out, err) = cairn(kb, &["search", query, "--json", "-k", "1"]);
    assert_eq!(code, 0, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    v["hits"][0]["doc"].as_str().unwrap_or("").to_owned()
}

/// Starts `cairn add DOCS --watch --json` on `kb`: its stdout and stderr lines, and the child.
fn watch_json(docs: &Path, kb: &Path) -> (Receiver<String>, Receiver<String>, Killed) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_cairn"))
        .args(["add", docs.to_str().unwrap(), "--watch", "--json"])
        .env("CAIRN_KB", kb)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("cairn runs");
    let out = lines(child.stdout.take().unwrap());
    let err = lines(child.stderr.take().unwrap());
    (out, err, Killed(child))
}

fn write_ferry(docs: &Path) {
    std::fs::write(
        docs.join("ferry.md"),
        "# Ferry\n\nThe Vardø ferry leaves at 07:15 on weekdays.\n",
    )
    .unwrap();
}

#[test]
fn add_watch_indexes_what_changes_and_says_so() {
    let tmp = tempfile::tempdir().unwrap();
    let docs = tmp.path().join("notes");
    std::fs::create_dir(&docs).unwrap();
    write_ferry(&docs);
    let kb = docs.join("kb");
    let (out, err, _child) = watch_json(&docs, &kb);

    let first = next_run(&out, "the first add");
    assert_eq!(counts(&first), (1, 0, 0), "{first}");
    let said = err
        .recv_timeout(Duration::from_secs(30))
        .expect("the watch is announced");
    assert!(said.starts_with("watching "), "{said}");

    std::fs::write(
        docs.join("bus.md"),
        "# Bus\n\nThe airport bus leaves every 20 minutes from stop B.\n",
    )
    .unwrap();
    let run = next_run(&out, "a new file");
    assert_eq!(counts(&run), (1, 0, 0), "{run}");
    assert_eq!(top_doc(&kb, "airport bus stop"), "notes/bus.md");

    let mut ferry = std::fs::read_to_string(docs.join("ferry.md")).unwrap();
    ferry.push_str("\nOn Sundays the ferry leaves at 09:40.\n");
    std::fs::write(docs.join("ferry.md"), ferry).unwrap();
    let run = next_run(&out, "a changed file");
    assert_eq!(counts(&run), (0, 1, 0), "{run}");

    std::fs::remove_file(docs.join("bus.md")).unwrap();
    let run = next_run(&out, "a deleted file");
    assert_eq!(counts(&run), (0, 0, 1), "{run}");
    assert_eq!(top_doc(&kb, "airport bus stop"), "notes/ferry.md");

    // A file that cannot be read is said once, not again at each change that leaves it bad.
    std::fs::write(docs.join("broken.md"), b"\0\x01binary").unwrap();
    let run = next_run(&out, "a binary file");
    let skipped = run["skipped"].as_array().unwrap();
    assert_eq!(skipped.len(), 1, "{run}");
    assert_eq!(skipped[0]["path"], "notes/broken.md");
    assert_eq!(skipped[0]["reason"], "binary");
    std::fs::write(docs.join("broken.md"), b"\0\x02still binary").unwrap();
    // Nothing more: neither that second write nor the knowledge base's own commits.
    assert!(
        out.recv_timeout(Duration::from_secs(5)).is_err(),
        "a run that changed nothing was reported"
    );

    // The watcher holds the writer lock: another add is told so.
    let (code, _, stderr) = cairn(&kb, &["add", docs.to_str().unwrap()]);
    assert_eq!(code, 1);
    assert!(stderr.contains("another cairn process"), "{stderr}");
}

#[test]
fn watching_only_paths_that_do_not_exist_is_a_usage_error() {
    let tmp = tempfile::tempdir().unwrap();
    let missing = tmp.path().join("nowhere");
    let (code, _, stderr) = cairn(
        &tmp.path().join("kb"),
        &["add", missing.to_str().unwrap(), "--watch"],
    );
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("nothing to watch"), "{stderr}");
}

#[test]
fn a_watch_outlives_a_full_disk_and_catches_up() {
    let tmp = tempfile::tempdir().unwrap();
    let Some(disk) = common::Tmpfs::mount(&tmp.path().join("disk"), 64) else {
        return;
    };
    let docs = tmp.path().join("notes");
    std::fs::create_dir(&docs).unwrap();
    write_ferry(&docs);
    let kb = disk.0.join("kb");
    let (out, err, mut child) = watch_json(&docs, &kb);
    assert_eq!(counts(&next_run(&out, "the first run")), (1, 0, 0));

    // The disk fills up: the run that a new file starts fails, says why, and the watch goes on.
    disk.fill(150_000);
    std::fs::write(
        docs.join("bus.md"),
        "# Bus\n\nThe airport bus leaves every 20 minutes.\n",
    )
    .unwrap();
    let failed = next_run(&out, "a change on a full disk");
    let message = failed["error"].as_str().unwrap_or_default();
    assert!(
        message.contains("not enough space for the knowledge base"),
        "{failed}"
    );
    assert_eq!(failed["retry_seconds"], 30, "{failed}");
    std::thread::sleep(Duration::from_secs(2));
    let said: Vec<String> = err.try_iter().collect();
    let said = said.join("\n");
    assert!(
        said.contains("error: not enough space") && said.contains("still watching"),
        "{said}"
    );
    assert!(
        child.0.try_wait().unwrap().is_none(),
        "the watch ended with the failed run"
    );
    // Space again, and the next change brings both files in.
    disk.unfill();
    std::fs::write(
        docs.join("tram.md"),
        "# Tram\n\nThe harbour tram runs until midnight.\n",
    )
    .unwrap();
    assert_eq!(
        counts(&next_run(&out, "a change with space again")),
        (2, 0, 0)
    );
    assert_eq!(top_doc(&kb, "airport bus"), "notes/bus.md");
    assert_eq!(top_doc(&kb, "harbour tram"), "notes/tram.md");
}
