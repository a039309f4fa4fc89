//! Integration tests: the real `cairn` binary, run as a user would.
//!
//! Tests that load models need the pinned weights (`cargo run -- models pull`, done by
//! `scripts/test.sh`); tests of failure paths make their own models directory.

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
    for id in ["default", "tiny", "larger", "embedder", "embedder-onnx"] {
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
