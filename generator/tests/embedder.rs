//! The sentence encoder on its two engines, with the real pinned weights (`cairn models pull`
//! puts them, and the ONNX Runtime library, in the models directory: `CAIRN_MODELS_DIR`, else
//! the user's cache directory).

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

fn cosine(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

#[test]
fn onnx_runtime_and_the_built_in_encoder_give_the_same_vectors() {
    let dir = installed("all-minilm-l6-v2");
    let lib = installed("onnxruntime-1.32.0/libonnxruntime.so");
    let built_in = BertEmbedder::load(&dir).unwrap();
    // Every call on ONNX Runtime, however small: this test compares the two engines.
    let runtime = BertEmbedder::load_with_runtime(&dir, &lib, 2)
        .unwrap()
        .with_runtime_min_tokens(0);
    assert_eq!(built_in.backend(), "built-in");
    assert_eq!(runtime.backend(), "onnxruntime");

    // Lengths from one token to past the 256-token limit, out of length order, so that the
    // runtime's sorting, padding and putting back in order are all exercised.
    let long = "The pump's seals are checked every spring before the first watering. ".repeat(40);
    let texts = [
        "Where is the spare key kept?",
        long.as_str(),
        "",
        "Cairn builds a hybrid index: BM25 over the text, and vectors from a small encoder.",
        "x",
        "Two sentences here. The second one talks about something else entirely, like rivers.",
    ];
    let a = built_in.embed(&texts).unwrap();
    let b = runtime.embed(&texts).unwrap();
    assert_eq!(a.len(), texts.len());
    assert_eq!(b.len(), texts.len());
    for (i, (x, y)) in a.iter().zip(&b).enumerate() {
        assert_eq!(y.len(), 384);
        let norm = cosine(y, y).sqrt();
        assert!((norm - 1.0).abs() < 1e-4, "text {i}: norm {norm}");
        let c = cosine(x, y);
        assert!(c > 0.99999, "text {i}: cosine {c} between the engines");
    }
    // Different texts stay different (the order was put back).
    assert!(cosine(&b[0], &b[3]) < 0.9);

    // One text alone gets the vector it gets in a batch.
    let alone = runtime.embed(&texts[3..4]).unwrap();
    assert!(cosine(&alone[0], &b[3]) > 0.99999);

    // A second encoder in the same process shares the runtime (ONNX Runtime allows one
    // environment per process) and gives the same vectors.
    let second = BertEmbedder::load_with_runtime(&dir, &lib, 1)
        .unwrap()
        .with_runtime_min_tokens(0);
    let again = second.embed(&texts[3..4]).unwrap();
    assert!(cosine(&again[0], &b[3]) > 0.99999);
}

#[test]
fn a_short_call_runs_built_in_until_a_large_one_makes_the_runtime_session() {
    let dir = installed("all-minilm-l6-v2");
    let lib = installed("onnxruntime-1.32.0/libonnxruntime.so");
    let reference = BertEmbedder::load(&dir).unwrap();
    let e = BertEmbedder::load_with_runtime(&dir, &lib, 2).unwrap();
    assert_eq!(e.backend(), "onnxruntime");
    let query = ["Where is the spare key kept?"];
    let v = e.embed(&query).unwrap();
    assert_eq!(
        e.engine_used(),
        "built-in",
        "a query does not wait for the session"
    );
    assert!(cosine(&v[0], &reference.embed(&query).unwrap()[0]) > 0.99999);

    // A batch of chunks, more than RUNTIME_MIN_TOKENS tokens, makes the session and runs on it.
    let chunk = "The pump's seals are checked every spring before the first watering. ".repeat(20);
    let chunks = vec![chunk.as_str(); 12];
    let vs = e.embed(&chunks).unwrap();
    assert_eq!(e.engine_used(), "onnxruntime");
    assert!(cosine(&vs[0], &reference.embed(&chunks[..1]).unwrap()[0]) > 0.99999);
    // From then on, queries too: the session exists, and it gives the same vector.
    let again = e.embed(&query).unwrap();
    assert_eq!(e.engine_used(), "onnxruntime");
    assert!(cosine(&again[0], &v[0]) > 0.99999);
}

#[test]
fn long_texts_are_counted_a_window_at_a_time_with_the_same_cuts() {
    let dir = installed("all-minilm-l6-v2");
    let e = BertEmbedder::load(&dir).unwrap();
    // Mixed text over several 16 KiB windows: words, punctuation, accents, CJK.
    let mut text = String::new();
    let mut i = 0u32;
    while text.len() < 70_000 {
        text.push_str(match i % 7 {
            0 => "The quick brown fox, ",
            1 => "jumps over (the) lazy dog. ",
            2 => "Ça coûte 12,50 € — déjà vu?\n",
            3 => "unbelievably-hyphenated_word ",
            4 => "東京は日本の首都です。",
            5 => "\n\n## Heading\n",
            _ => "x=1;y=[2,3] ",
        });
        i += 1;
    }
    let whole = e.token_ends_in_windows(&text, usize::MAX);
    let windowed = e.token_ends(&text);
    assert!(whole.len() > 10_000, "{}", whole.len());
    assert_eq!(windowed, whole);
}
