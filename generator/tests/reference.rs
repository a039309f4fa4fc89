//! Agreement with llama.cpp on the same GGUF files, from fixtures made by
//! `tests/fixtures/make_reference.py` (commands in `tests/fixtures/README.md`).
//!
//! These tests need the real weights: `cairn models pull` puts them in the models directory
//! (`CAIRN_MODELS_DIR`, else the user's cache directory).

use std::path::PathBuf;

use cairn_generator::{Collect, GenerateOptions, Generator, LoadOptions};
use serde_json::Value;

/// Logit gap under which two evaluations of the same sequence can pick different tokens.
///
/// llama.cpp's own one-batch and token-by-token evaluations disagreed at gaps of 0.004 to 0.13
/// on these fixtures (made on an AVX2 machine). On an AVX-512 machine the f32 products sum in
/// another order, and with activations rounded to 8 bits that moves logits by up to ~0.2
/// (perturbing the embeddings by one part in a million moved SmolLM2's by 0.1–0.2): a tie is
/// a tie only when both sides see one, so the test also measures our own gap.
const TIE_MARGIN: f64 = 0.15;

/// Our own gap allowed at a position llama.cpp itself sees as a tie ([`TIE_MARGIN`]).
///
/// Rounding moves logits by up to ~0.2 (above), so where llama.cpp's two candidates are within
/// its own inconsistency, ours may lean the other way by as much. Measured: the 1.5B model's
/// integer k-quant kernels, one prompt, token 13 — llama.cpp 0.127 for one token, ours 0.211
/// for the other, with 317 of 320 teacher-forced tokens agreeing. A real error shows as a
/// divergence where llama.cpp is sure, or as teacher-forced agreement under 95%.
const OUR_TIE_MARGIN: f64 = 0.25;

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

fn model_path(file: &str) -> PathBuf {
    let path = models_dir().join(file);
    assert!(
        path.is_file(),
        "{} is missing: run `cargo run -- models pull` first",
        path.display()
    );
    path
}

fn load(model_file: &str) -> Generator {
    Generator::load(&model_path(model_file), &LoadOptions::default()).unwrap()
}

fn fixture(name: &str) -> Value {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name);
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn ids(v: &Value) -> Vec<u32> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| u32::try_from(x.as_u64().unwrap()).unwrap())
        .collect()
}

/// Checks tokenizer, teacher-forced top-1 and greedy generation against one fixture.
fn check_against_llama_cpp(model_file: &str, fixture_file: &str) {
    let fx = fixture(fixture_file);
    let mut generator = load(model_file);

    for case in fx["tokenizer_cases"].as_array().unwrap() {
        let text = case["text"].as_str().unwrap();
        assert_eq!(
            generator.tokenizer().encode(text).unwrap(),
            ids(&case["ids"]),
            "tokenization of {text:?}"
        );
    }

    let (mut agree, mut total) = (0usize, 0usize);
    let mut greedy_failures = Vec::new();
    let mut ties = Vec::new();
    for prompt in fx["prompts"].as_array().unwrap() {
        let prompt_ids = ids(&prompt["prompt_ids"]);
        assert_eq!(
            generator
                .tokenizer()
                .encode(prompt["text"].as_str().unwrap())
                .unwrap(),
            prompt_ids,
            "prompt tokenization"
        );
        let greedy = ids(&prompt["greedy_ids"]);
        let reference_top1 = ids(&prompt["top1_ids"]);
        let mut sequence = prompt_ids.clone();
        sequence.extend_from_slice(&greedy);
        let ours = generator.top1_predictions(&sequence).unwrap();
        // Positions whose prediction is a continuation token: the last prompt token onwards.
        let from = prompt_ids.len() - 1;
        let to = from + greedy.len();
        for i in from..to {
            total += 1;
            agree += usize::from(ours[i] == reference_top1[i]);
        }

        // Greedy generation, token by token through the KV cache.
        generator.reset();
        let options = GenerateOptions {
            max_tokens: 16,
            ..GenerateOptions::default()
        };
        let out = generator
            .generate(&prompt_ids, &options, &mut Collect::default())
            .unwrap();
        let stop = greedy
            .iter()
            .position(|t| generator.tokenizer().stop_ids().contains(t))
            .unwrap_or(greedy.len())
            .min(16);
        let margins: Vec<f64> = prompt["top1_margin"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m.as_f64().unwrap())
            .collect();
        let same = out
            .tokens
            .iter()
            .zip(&greedy)
            .take_while(|(a, b)| a == b)
            .count();
        if same < stop {
            // A divergence is forgiven only where llama.cpp contradicts itself: where its
            // one-batch evaluation picks our token, or its best two logits are closer than its
            // own batch and token-by-token evaluations were seen to differ.
            let margin = margins[from + same];
            let ours_is_llama_batch_choice = out.tokens[same] == reference_top1[from + same];
            // Our own gap between the two tokens, after the text both sides agree on.
            let mut agreed = prompt_ids.clone();
            agreed.extend_from_slice(&greedy[..same]);
            let logits = generator.next_token_logits(&agreed).unwrap();
            let our_gap = f64::from(
                (logits[out.tokens[same] as usize] - logits[greedy[same] as usize]).abs(),
            );
            if (margin < TIE_MARGIN && our_gap < OUR_TIE_MARGIN) || ours_is_llama_batch_choice {
                ties.push(format!(
                    "token {same} (llama.cpp margin {margin:.4}, ours {our_gap:.4})"
                ));
            } else {
                greedy_failures.push(format!(
                    "prompt {:?}: first {same} greedy tokens agree, {stop} required (llama.cpp margin there {margin:.4}, ours {our_gap:.4})\n  ours:      {:?}\n  llama.cpp: {:?}",
                    prompt["text"].as_str().unwrap().lines().nth(3).unwrap_or_default(),
                    &out.tokens,
                    &greedy[..stop]
                ));
            }
        }
    }
    let rate = agree as f64 / total as f64;
    eprintln!(
        "{model_file}: top-1 agreement with llama.cpp {agree}/{total} = {rate:.4}; \
         greedy diverged only at llama.cpp near-ties: {ties:?}"
    );
    assert!(greedy_failures.is_empty(), "{}", greedy_failures.join("\n"));
    assert!(
        rate >= 0.95,
        "top-1 agreement {agree}/{total} = {rate:.4} is below 0.95"
    );
}

#[test]
fn qwen2_fast_model_agrees_with_llama_cpp() {
    check_against_llama_cpp("qwen2.5-coder-0.5b-instruct-q4_k_m.gguf", "qwen05.json");
}

#[test]
fn qwen2_default_model_agrees_with_llama_cpp() {
    // Q4_K and Q6_K weights: the integer kernels of `kquants` where the build has AVX-512 VNNI.
    check_against_llama_cpp("qwen2.5-coder-1.5b-instruct-q4_k_m.gguf", "qwen15.json");
}

#[test]
fn llama_tiny_model_agrees_with_llama_cpp() {
    check_against_llama_cpp("smollm2-135m-instruct-q4_1.gguf", "smollm2.json");
}

#[test]
fn a_sink_can_stop_generation_between_tokens() {
    let mut generator = load("smollm2-135m-instruct-q4_1.gguf");
    let mut pieces = 0;
    let mut sink = |_: &str| {
        pieces += 1;
        if pieces == 3 {
            std::ops::ControlFlow::Break(())
        } else {
            std::ops::ControlFlow::Continue(())
        }
    };
    let options = GenerateOptions {
        max_tokens: 64,
        ignore_stop_tokens: true,
        ..GenerateOptions::default()
    };
    let prompt = generator.tokenizer().encode("Once upon a time").unwrap();
    let out = generator.generate(&prompt, &options, &mut sink).unwrap();
    assert_eq!(out.finish, cairn_generator::FinishReason::Cancelled);
    assert!(
        out.tokens.len() <= 4,
        "{} tokens after cancel",
        out.tokens.len()
    );

    // The model is reusable at once, and a shared prompt prefix is not recomputed.
    let again = generator
        .generate(&prompt, &options, &mut Collect::default())
        .unwrap();
    assert_eq!(again.reused_tokens, prompt.len() - 1);
    assert_eq!(again.tokens.len(), 64);
    // Reusing the cache gives the tokens of computing from scratch, up to a near-tie: the two
    // runs take different kernels for the last prompt row (decode against prompt kernels,
    // logits up to 0.4 apart), so where they part, each chose a token about as likely as the
    // other's choice was in the other run (measured: 1315 at -2.118 against 23324 at -2.148).
    generator.reset();
    let fresh = generator
        .generate(&prompt, &options, &mut Collect::default())
        .unwrap();
    assert_eq!(fresh.reused_tokens, 0);
    let parted = fresh
        .tokens
        .iter()
        .zip(&again.tokens)
        .position(|(a, b)| a != b);
    if let Some(i) = parted {
        assert!(
            i >= 2,
            "parted at token {i}: {:?} against {:?}",
            fresh.tokens,
            again.tokens
        );
        let (a, b) = (fresh.logprobs[i], again.logprobs[i]);
        assert!(
            (a - b).abs() < 0.1 && a < -0.7 && b < -0.7,
            "parted at token {i} without a near-tie: log-probabilities {a} and {b}"
        );
    }
}

#[test]
fn after_priming_only_the_primed_prefix_is_reused() {
    let mut generator = load("smollm2-135m-instruct-q4_1.gguf");
    let options = GenerateOptions {
        max_tokens: 24,
        ignore_stop_tokens: true,
        ..GenerateOptions::default()
    };
    let tokenizer = generator.tokenizer().clone();
    let prefix = tokenizer
        .encode("You answer questions about gardens.")
        .unwrap();
    let with = |rest: &str| {
        let mut t = prefix.clone();
        t.extend(tokenizer.encode(rest).unwrap());
        t
    };
    let (first, second) = (
        with(" Roses need sun and water every day. Tulips"),
        with(" Roses need sun and water every day."),
    );
    assert!(first[..prefix.len() + 3] == second[..prefix.len() + 3]);

    generator.prime(&prefix).unwrap();
    let alone = generator
        .generate(&second, &options, &mut Collect::default())
        .unwrap();
    assert_eq!(alone.reused_tokens, prefix.len());

    // After another prompt that shares more than the prefix with it, the same prompt still
    // reuses only the prefix, and so continues exactly as it did alone.
    generator
        .generate(&first, &options, &mut Collect::default())
        .unwrap();
    let after = generator
        .generate(&second, &options, &mut Collect::default())
        .unwrap();
    assert_eq!(after.reused_tokens, prefix.len());
    assert_eq!(after.tokens, alone.tokens);

    // Without a primed prefix, everything shared is reused.
    generator.reset();
    generator
        .generate(&first, &options, &mut Collect::default())
        .unwrap();
    let unpinned = generator
        .generate(&second, &options, &mut Collect::default())
        .unwrap();
    assert!(unpinned.reused_tokens >= prefix.len() + 3);
}

/// Reads `prompt` ahead up to `ahead` tokens (after priming `primed`), then generates; returns
/// the generation and what the read-ahead reported.
fn read_ahead_then_generate(
    generator: &mut Generator,
    primed: &[u32],
    prompt: &[u32],
    ahead: usize,
    stop_after: usize,
) -> (cairn_generator::Generation, usize) {
    let options = GenerateOptions {
        max_tokens: 8,
        ignore_stop_tokens: true,
        ..GenerateOptions::default()
    };
    generator.reset();
    generator.prime(primed).unwrap();
    let passes = std::cell::Cell::new(0);
    let stop = || {
        passes.set(passes.get() + 1);
        passes.get() > stop_after
    };
    let done = generator.read_ahead(&prompt[..ahead], &stop).unwrap();
    let g = generator
        .generate(prompt, &options, &mut Collect::default())
        .unwrap();
    (g, done)
}

fn check_read_ahead(model_file: &str) {
    use cairn_generator::model::SAME_ROWS_FROM;
    use cairn_generator::READ_AHEAD_PIECE;
    let mut generator = load(model_file);
    // Longer than 512 tokens, so that attention sums over more keys than gemm sums in one
    // block.
    let text = "Before its first start, the Orvane pump must be primed with 3 litres of glycol. \
                Its seals are replaced every 400 running hours; a red lamp means the level is low. "
        .repeat(25);
    let n = 630;
    let prompt = generator.tokenizer().encode(&text).unwrap()[..n].to_vec();
    let primed = &prompt[..40];
    // Alone: the primed prefix reused, the rest in one pass.
    let (alone, _) = read_ahead_then_generate(&mut generator, primed, &prompt, 40, 0);
    assert_eq!(alone.reused_tokens, 40);
    // Read ahead to 600 in passes of READ_AHEAD_PIECE: the prompt computes only its last 30
    // tokens, and every token and its log-probability are those of the one pass.
    let (ahead, done) = read_ahead_then_generate(&mut generator, primed, &prompt, 600, usize::MAX);
    assert_eq!(done, 600);
    assert_eq!(ahead.reused_tokens, 600, "{model_file}");
    assert_eq!(ahead.tokens, alone.tokens, "{model_file}");
    assert_eq!(ahead.logprobs, alone.logprobs, "{model_file}: bit for bit");
    // Stopped after one pass: what was done is reused, and the answer is the same.
    let (stopped, done) = read_ahead_then_generate(&mut generator, primed, &prompt, 600, 1);
    assert_eq!(done, 40 + READ_AHEAD_PIECE);
    assert_eq!(stopped.reused_tokens, done);
    assert_eq!(stopped.logprobs, alone.logprobs, "{model_file}");
    // Read ahead to within a few tokens of the end: the prompt still computes SAME_ROWS_FROM
    // rows (fewer would take the decode kernels, which round differently).
    let (close, done) =
        read_ahead_then_generate(&mut generator, primed, &prompt, n - 4, usize::MAX);
    assert_eq!(done, n - 4);
    assert_eq!(close.reused_tokens, n - SAME_ROWS_FROM);
    assert_eq!(close.logprobs, alone.logprobs, "{model_file}");
    // A part after the primed prefix, saved and put back in another "run": the prompt reuses
    // it and gets, bit for bit, the answer of one pass.
    let (tokens, kv) = generator
        .snapshot_after_prefix(300)
        .expect("the cache holds the prompt exactly");
    assert_eq!(tokens, prompt[40..300]);
    generator.reset();
    generator.prime(primed).unwrap();
    assert!(
        generator
            .restore_after_prefix(&prompt[1..300], &kv)
            .is_err(),
        "not after the primed prefix"
    );
    assert!(
        generator.restore_after_prefix(&prompt[..299], &kv).is_err(),
        "the wrong size"
    );
    generator.restore_after_prefix(&prompt[..300], &kv).unwrap();
    assert!(generator.holds(&prompt[..300]));
    let options = GenerateOptions {
        max_tokens: 8,
        ignore_stop_tokens: true,
        ..GenerateOptions::default()
    };
    let restored = generator
        .generate(&prompt, &options, &mut Collect::default())
        .unwrap();
    assert_eq!(restored.reused_tokens, 300);
    assert_eq!(
        restored.logprobs, alone.logprobs,
        "{model_file}: bit for bit"
    );
    // What the decode kernels computed is not offered for saving.
    assert!(generator.snapshot_after_prefix(n + 4).is_none());
}

#[test]
fn reading_a_prompt_ahead_gives_exactly_the_answer_of_one_pass_tiny() {
    check_read_ahead("smollm2-135m-instruct-q4_1.gguf");
}

#[test]
fn forgetting_beyond_the_prefix_leaves_only_the_primed_prefix_to_reuse() {
    let mut generator = load("smollm2-135m-instruct-q4_1.gguf");
    let text =
        "The Orvane pump is primed with 3 litres of glycol before its first start. ".repeat(8);
    let prompt = generator.tokenizer().encode(&text).unwrap();
    let options = GenerateOptions {
        max_tokens: 2,
        ..GenerateOptions::default()
    };
    generator.prime(&prompt[..20]).unwrap();
    let never = || false;
    assert_eq!(
        generator.read_ahead(&prompt[..60], &never).unwrap(),
        60,
        "read ahead"
    );
    generator.forget_beyond_prefix();
    let g = generator
        .generate(&prompt, &options, &mut Collect::default())
        .unwrap();
    assert_eq!(g.reused_tokens, 20);
}

#[test]
fn reading_a_prompt_ahead_gives_exactly_the_answer_of_one_pass_fast() {
    check_read_ahead("qwen2.5-coder-0.5b-instruct-q4_k_m.gguf");
}

#[test]
fn reading_a_prompt_ahead_gives_exactly_the_answer_of_one_pass_default() {
    check_read_ahead("qwen2.5-coder-1.5b-instruct-q4_k_m.gguf");
}

#[test]
fn a_quote_records_how_the_model_weighed_refusing_and_the_bias_moves_it() {
    use cairn_generator::{Message, Quote};
    let mut generator = load("qwen2.5-coder-0.5b-instruct-q4_k_m.gguf");
    let source = "The Orvane pump is primed with 3 litres of glycol before its first start.";
    let prompt = generator
        .chat_tokens(&[
            Message::system(
                "Answer with a short exact quote from the source, or reply NOT FOUND when the \
                 source does not answer.",
            ),
            Message::user(format!(
                "Source: {source}\n\nQuestion: How much glycol primes the Orvane pump?"
            )),
        ])
        .unwrap();
    let options = GenerateOptions {
        max_tokens: 16,
        ..GenerateOptions::default()
    };
    let mut run = |bias: f32| {
        generator.reset();
        let mut quote = Quote::new([source], ["NOT FOUND"]).with_reply_bias(bias);
        let g = generator
            .generate_constrained(&prompt, &options, Some(&mut quote), &mut Collect::default())
            .unwrap();
        (
            quote.text(),
            g.start.expect("a constrained generation records its start"),
        )
    };
    let (text, start) = run(0.0);
    assert!(text.contains('3'), "{text:?}");
    // Two disjoint sets of tokens: their probabilities sum to at most one.
    assert!(
        start.other.is_finite() && start.other > start.reply,
        "{start:?}"
    );
    assert!(
        start.reply.exp() + start.other.exp() <= 1.0 + 1e-4,
        "{start:?}"
    );
    // A bias past the gap between the two turns the same model to the refusal, and it does
    // not change what is recorded: the model's own distribution. (Each run computes the whole
    // prompt afresh: the last token re-run on a cached prefix goes through the one-token
    // kernels, whose rounding moves these log-probabilities by up to ~0.1.)
    let gap = start.other - start.reply;
    let (text, again) = run(gap + 1.0);
    assert_eq!(text, "NOT FOUND");
    assert!(
        (again.reply - start.reply).abs() < 1e-4 && (again.other - start.other).abs() < 1e-4,
        "{again:?} against {start:?}"
    );
    let (text, _) = run(gap - 1.0);
    assert!(text.contains('3'), "{text:?}");
}

/// Largest difference between two logit vectors.
fn max_gap(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

/// The same top token, and every logit within 0.3.
fn assert_close(got: &[f32], want: &[f32], what: &str) {
    use cairn_generator::model::argmax;
    assert_eq!(argmax(got), argmax(want), "{what}");
    assert!(max_gap(got, want) < 0.3, "{what}: {}", max_gap(got, want));
}

/// A branch run in the prompt's pass sees what it would see alone, the prompt is left as if
/// the branch had never run, and the cache continues the prompt, on both architectures.
fn check_fork(model_file: &str) {
    use cairn_generator::model::{argmax, Transformer};
    use cairn_generator::GgufFile;
    let file = GgufFile::open(&model_path(model_file)).unwrap();
    let cfg = file.config().unwrap();
    let tokenizer = cairn_generator::Tokenizer::from_gguf(&file).unwrap();
    let mut model = Transformer::load(&file, &cfg, 512).unwrap();
    let encode = |s: &str| tokenizer.encode(s).unwrap();
    let head = encode(
        "The Orvane pump is primed with 3 litres of glycol before its first start. \
         Its filter is changed every 400 hours, and its seals every 2,000 hours of running.",
    );
    // The prompt goes on past the fork point, and the branch is long enough for the
    // prompt path's many-row products (16 rows and more).
    let tail = encode(" Question: how often is the filter changed? Answer:");
    let branch = encode(
        " Question: is the pump primed with water, or with something else entirely? \
         Reply yes or no. Answer:",
    );
    let seq = |a: &[u32], b: &[u32]| -> Vec<u32> { a.iter().chain(b).copied().collect() };
    let alone = |model: &mut Transformer, tokens: &[u32]| -> Vec<f32> {
        model.forward(tokens, 0, false).unwrap().to_vec1().unwrap()
    };
    let prompt_ref = alone(&mut model, &seq(&head, &tail));
    let next = argmax(&prompt_ref);
    // The token after the prompt, decoded as generation decodes it (one row on the cache).
    let after_ref: Vec<f32> = model
        .forward(&[next], head.len() + tail.len(), false)
        .unwrap()
        .to_vec1()
        .unwrap();
    let branch_ref = alone(&mut model, &seq(&head, &branch));

    // From the fork on; then with part of the head in the same pass, before the fork.
    for cached in [head.len(), head.len() / 2] {
        model.forward(&head[..cached], 0, false).unwrap();
        let rows = seq(&head[cached..], &tail);
        let (main, side) = model
            .forward_fork(&rows, cached, head.len(), &branch)
            .unwrap();
        let (main, side): (Vec<f32>, Vec<f32>) = (main.to_vec1().unwrap(), side.to_vec1().unwrap());
        let what = format!("{model_file}, {cached} cached");
        assert_close(&main, &prompt_ref, &what);
        assert_close(&side, &branch_ref, &what);
        // The next token continues the prompt, not the branch written after it.
        let after: Vec<f32> = model
            .forward(&[next], head.len() + tail.len(), false)
            .unwrap()
            .to_vec1()
            .unwrap();
        assert_close(&after, &after_ref, &what);
    }
    // A branch that starts outside the tokens it runs with is refused.
    assert!(model
        .forward_fork(&tail, head.len(), head.len() - 1, &branch)
        .is_err());
}

#[test]
fn a_branch_run_in_the_prompts_pass_scores_as_it_would_alone() {
    check_fork("smollm2-135m-instruct-q4_1.gguf");
    check_fork("qwen2.5-coder-0.5b-instruct-q4_k_m.gguf");
}

/// Twelve greedy tokens, stop tokens ignored.
fn twelve_tokens() -> GenerateOptions {
    GenerateOptions {
        max_tokens: 12,
        ignore_stop_tokens: true,
        ..GenerateOptions::default()
    }
}

/// The pump question on `source` as a prompt, and as a probe asking whether it is answered.
fn pump_question(generator: &cairn_generator::Generator, source: &str) -> (Vec<u32>, Vec<u32>) {
    let turn = |extra: &str| {
        generator
            .chat_tokens(&[cairn_generator::Message::user(format!(
                "{source}\n\nQuestion: What is the pump primed with?{extra}"
            ))])
            .unwrap()
    };
    (
        turn(""),
        turn("\n\nIs the answer stated above? Reply Yes or No."),
    )
}

#[test]
fn a_probed_generation_writes_what_a_plain_one_does_and_scores_the_probe_either_way() {
    let mut generator = load("smollm2-135m-instruct-q4_1.gguf");
    let options = twelve_tokens();
    let (prompt, probe) = pump_question(
        &generator,
        "The Orvane pump is primed with 3 litres of glycol before its first start.",
    );
    let plain = generator
        .generate(&prompt, &options, &mut Collect::default())
        .unwrap();
    generator.reset();
    let probe_ref = generator.next_token_logits(&probe).unwrap();

    // In the prompt's pass (nothing cached), then after it (the whole prompt cached, so the
    // probe branches off before what is computed afresh).
    for _ in 0..2 {
        let (g, logits) = generator
            .generate_probed(
                &prompt,
                &probe,
                &options,
                None,
                &mut Collect::default(),
                &mut |_| true,
            )
            .unwrap();
        assert_eq!(g.tokens, plain.tokens);
        assert!(
            max_gap(&logits, &probe_ref) < 0.3,
            "{}",
            max_gap(&logits, &probe_ref)
        );
    }
}

#[test]
fn a_probe_that_rides_along_can_stop_the_answer_before_its_first_token() {
    use cairn_generator::FinishReason;
    let mut generator = load("smollm2-135m-instruct-q4_1.gguf");
    let options = twelve_tokens();
    let (prompt, probe) = pump_question(
        &generator,
        "The Orvane pump is primed with 3 litres of glycol.",
    );
    let plain = generator
        .generate(&prompt, &options, &mut Collect::default())
        .unwrap();
    generator.reset();

    // Refused: nothing is generated or streamed, and `proceed` saw the logits returned.
    let mut seen = Vec::new();
    let mut sink = Collect::default();
    let (g, logits) = generator
        .generate_probed(&prompt, &probe, &options, None, &mut sink, &mut |l| {
            seen = l.to_vec();
            false
        })
        .unwrap();
    assert_eq!(g.finish, FinishReason::Withheld);
    assert!(g.tokens.is_empty() && g.text.is_empty() && sink.0.is_empty());
    assert_eq!(seen, logits);

    // The prompt stays cached, so the probe can no longer ride along: `proceed` is not
    // asked, and the answer is written whole. (Its last prompt token is run again alone,
    // which may round differently from the pass: the answer's start is compared.)
    let mut asked = false;
    let (g, _) = generator
        .generate_probed(
            &prompt,
            &probe,
            &options,
            None,
            &mut Collect::default(),
            &mut |_| {
                asked = true;
                false
            },
        )
        .unwrap();
    assert!(!asked);
    assert_eq!(g.finish, FinishReason::Length);
    assert_eq!(g.tokens[..4], plain.tokens[..4]);

    // Allowed, from nothing cached: the plain answer.
    generator.reset();
    let (g, _) = generator
        .generate_probed(
            &prompt,
            &probe,
            &options,
            None,
            &mut Collect::default(),
            &mut |_| true,
        )
        .unwrap();
    assert_eq!(g.finish, FinishReason::Length);
    assert_eq!(g.tokens, plain.tokens);
}
