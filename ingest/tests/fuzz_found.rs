//! Every input the fuzzers (`fuzz/`, RELIABILITY.md) found crashing or slow, kept here and read
//! again on every test run: `tests/fuzz-found/TARGET/NAME`, read as the target read it.

use std::path::Path;
use std::time::{Duration, Instant};

/// The checks of `fuzz/fuzz_targets/common.rs`: sections inside the text on character
/// boundaries, and an error that names the file.
fn check(name: &str, bytes: &[u8]) {
    let started = Instant::now();
    match cairn_ingest::read_bytes(Path::new(name), bytes) {
        Ok(r) => {
            let text = &r.document.text;
            let mut last = 0;
            for s in &r.document.sections {
                assert!(
                    s.range.start <= s.range.end && s.range.end <= text.len(),
                    "{name}"
                );
                assert!(text.is_char_boundary(s.range.start) && text.is_char_boundary(s.range.end));
                assert!(s.range.start >= last, "{name}: sections in order");
                last = s.range.start;
            }
        }
        Err(e) => assert!(e.to_string().contains(name), "{e}"),
    }
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "{name}: {:?}",
        started.elapsed()
    );
}

#[test]
fn inputs_the_fuzzers_found_are_read_without_a_panic() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fuzz-found");
    let mut n = 0;
    for target in std::fs::read_dir(&root).unwrap() {
        let target = target.unwrap();
        let as_name = match target.file_name().to_str().unwrap() {
            "read_html" => vec!["f.html"],
            "read_pdf" => vec!["f.pdf"],
            "read_markdown" | "chunk" => vec!["f.md"],
            "read_text" => vec!["f.txt", "f.rs", "f.unknown", "README"],
            other => panic!("no reader for fuzz target {other}"),
        };
        for file in std::fs::read_dir(target.path()).unwrap() {
            let path = file.unwrap().path();
            let bytes = std::fs::read(&path).unwrap();
            for name in &as_name {
                // On a thread of its own, so that an input that hangs the reader (a page tree
                // that loops did) fails the test instead of stalling it.
                let (tx, rx) = std::sync::mpsc::channel();
                let (name, bytes) = ((*name).to_owned(), bytes.clone());
                std::thread::spawn(move || {
                    check(&name, &bytes);
                    let _ = tx.send(());
                });
                match rx.recv_timeout(Duration::from_secs(60)) {
                    Ok(()) => {}
                    Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {
                        panic!("{}: still reading after 60 s", path.display())
                    }
                    Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => {
                        panic!("{}: the check failed (above)", path.display())
                    }
                }
                n += 1;
            }
        }
    }
    assert!(n > 0, "no inputs under {}", root.display());
}
