//! Reading ahead for a question still being written: the sources' part of the prompt is in the
//! model's cache when the question comes, and the answer is exactly the one without it. Uses
//! the real embedder and the tiny model (fetched before the tests).

mod common;

use cairn_engine::{AskOptions, Engine, MiniLm, Quiet};

fn knowledge_base(dir: &std::path::Path) -> std::path::PathBuf {
    let docs = dir.join("docs");
    std::fs::create_dir_all(&docs).unwrap();
    std::fs::write(
        docs.join("pumps.md"),
        "# Orvane pump maintenance\n\n\
         Before its first start, the Orvane pump must be primed with 3 litres of glycol. \
         Its seals are replaced every 400 running hours, and the filter every 90 days. \
         The pump was designed in Tallinn by the engineer Mirjam Kask, and it is serviced \
         from the panel on its left side.\n\n\
         ## Alarms\n\n\
         A red lamp on the Orvane panel means the glycol level is low; a blinking amber lamp \
         means a seal is leaking and the pump must be stopped within the hour.\n",
    )
    .unwrap();
    std::fs::write(
        docs.join("garden.md"),
        "# Garden\n\nTomato plants need six hours of direct sun a day and deep watering twice a week.\n",
    )
    .unwrap();
    let kb = dir.join("kb");
    common::add_folder(&docs, &kb, &MiniLm::load().unwrap());
    kb
}

#[test]
fn a_question_read_ahead_computes_only_itself_and_answers_the_same() {
    let tmp = tempfile::tempdir().unwrap();
    let kb = knowledge_base(tmp.path());
    let mut engine = Engine::open(&kb, "tiny").unwrap();
    let o = AskOptions::default();
    let question = "How many litres of glycol does the Orvane pump need before its first start?";

    let alone = engine.ask(question, &o, &mut Quiet).unwrap();
    assert!(!alone.context.sources.is_empty(), "{alone:?}");
    let primed = alone.timings.reused_tokens;

    // While the question is being written: its last word is not there yet.
    let draft = question.trim_end_matches("start?");
    let never = || false;
    let ready = engine.read_ahead(draft, &o, &never).unwrap();
    assert!(
        ready > primed + 16,
        "read ahead {ready} tokens, {primed} primed"
    );
    let after = engine.ask(question, &o, &mut Quiet).unwrap();
    assert_eq!(after.context.sources.len(), alone.context.sources.len());
    assert!(
        after.timings.reused_tokens > primed,
        "reused {} of {} tokens",
        after.timings.reused_tokens,
        after.timings.prompt_tokens
    );
    assert!(after.timings.prompt_tokens - after.timings.reused_tokens < 64);
    assert_eq!(after.answer, alone.answer);
    assert_eq!(after.logprobs, alone.logprobs, "bit for bit");
    assert_eq!(after.self_check, alone.self_check);

    // A read-ahead that is told to stop does nothing, and a draft about nothing in the
    // knowledge base reads nothing ahead.
    let stop = || true;
    assert_eq!(engine.read_ahead(question, &o, &stop).unwrap(), 0);
    let elsewhere = engine
        .read_ahead("Which opera did Verdi write in 1851", &o, &never)
        .unwrap();
    assert_eq!(elsewhere, 0);
}

#[test]
fn a_question_of_a_kind_with_its_own_example_is_read_ahead_with_it() {
    let tmp = tempfile::tempdir().unwrap();
    let kb = knowledge_base(tmp.path());
    let mut engine = Engine::open(&kb, "tiny").unwrap();
    let o = AskOptions::default();
    let never = || false;
    // What it is, why, how: each kind brings a worked example before the question's turn,
    // and the draft must be read ahead with it.
    for (question, draft) in [
        ("What is the Orvane pump?", "What is the Orvane"),
        (
            "Why must the Orvane pump be stopped when the amber lamp blinks?",
            "Why must the Orvane pump be stopped when the amber",
        ),
        ("How is the Orvane pump serviced?", "How is the Orvane pump"),
    ] {
        let alone = engine.ask(question, &o, &mut Quiet).unwrap();
        assert!(!alone.context.sources.is_empty(), "{question}: {alone:?}");
        // Another question, about other sources, leaves only the fixed prefix in the cache.
        let other = engine
            .ask("How often do tomato plants need watering?", &o, &mut Quiet)
            .unwrap();
        assert!(!other.context.sources.is_empty(), "{other:?}");
        let ready = engine.read_ahead(draft, &o, &never).unwrap();
        assert!(ready > 0, "{question}: nothing read ahead");
        let after = engine.ask(question, &o, &mut Quiet).unwrap();
        let computed = after.timings.prompt_tokens - after.timings.reused_tokens;
        assert!(
            computed < 40,
            "{question}: {computed} of {} tokens computed after reading ahead",
            after.timings.prompt_tokens
        );
        assert_eq!(after.answer, alone.answer, "{question}");
    }
}
