//! A runtime library that does not load is an error, not a panic. A test binary of its own:
//! ONNX Runtime is loaded once per process, so no other test may have loaded the real one.

use std::path::PathBuf;

use cairn_generator::BertEmbedder;

fn models_dir() -> PathBuf {
    std::env::var_os("CAIRN_MODELS_DIR").map_or_else(
        || {
            dirs::cache_dir()
                .expect("a cache directory")
                .join("cairn")
                .join("models")
        },
        PathBuf::from,
    )
}

fn installed(rel: &str) -> PathBuf {
    let path = models_dir().join(rel);
    assert!(
        path.exists(),
        "{} is missing: run `cargo run -- models pull` first",
        path.display()
    );
    path
}

#[test]
fn a_library_that_is_not_onnx_runtime_is_an_error_not_a_panic() {
    let dir = installed("all-minilm-l6-v2");
    let bogus = std::env::temp_dir().join(format!("cairn-not-a-lib-{}.so", std::process::id()));
    std::fs::write(&bogus, b"not a shared library").unwrap();
    let result = BertEmbedder::load_with_runtime(&dir, &bogus, 1);
    std::fs::remove_file(&bogus).unwrap();
    let err = result.err().expect("loading garbage must fail").to_string();
    assert!(err.contains("ONNX Runtime"), "{err}");
}
