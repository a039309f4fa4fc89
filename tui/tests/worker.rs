//! The worker with the real embedder and the tiny model (fetched before the tests): a question
//! read ahead while it was written is answered from the sources already in the model's cache.

use std::path::Path;
use std::sync::mpsc::{self, Receiver};
use std::time::Duration;

use cairn_engine::{Answer, AskOptions};
use cairn_tui::worker::{self, Msg, PackChoice, Request};

fn next(rx: &Receiver<Msg>) -> Msg {
    rx.recv_timeout(Duration::from_secs(120))
        .expect("the worker reports within two minutes")
}

fn answered(rx: &Receiver<Msg>, want: u64) -> Answer {
    loop {
        match next(rx) {
            Msg::Answered { id, answer } if id == want => return *answer,
            Msg::Failed { error, .. } => panic!("failed: {error}"),
            _ => {}
        }
    }
}

fn docs(dir: &Path) -> std::path::PathBuf {
    let docs = dir.join("docs");
    std::fs::create_dir_all(&docs).unwrap();
    std::fs::write(
        docs.join("pumps.md"),
        "# Orvane pump maintenance\n\n\
         Before its first start, the Orvane pump must be primed with 3 litres of glycol. \
         Its seals are replaced every 400 running hours, and the filter every 90 days.\n\n\
         ## Alarms\n\n\
         A red lamp on the Orvane panel means the glycol level is low; a blinking amber lamp \
         means a seal is leaking and the pump must be stopped within the hour.\n",
    )
    .unwrap();
    std::fs::write(
        docs.join("garden.md"),
        "# Garden\n\nTomato plants need six hours of direct sun a day and deep watering \
         twice a week. Basil is sown in April, indoors, and planted out in late May.\n",
    )
    .unwrap();
    docs
}

#[test]
fn a_question_read_ahead_is_answered_from_the_sources_already_read() {
    let tmp = tempfile::tempdir().unwrap();
    let (tx, rx) = mpsc::channel::<Msg>();
    let handle = worker::spawn(
        tmp.path().join("kb"),
        "tiny".into(),
        PackChoice::default(),
        cairn_engine::ReadOptions::default(),
        tx,
    );
    handle.send(Request::Add(vec![docs(tmp.path())]));
    let (mut opened, mut ready) = (false, false);
    while !(opened && ready) {
        match next(&rx) {
            Msg::Opened { own: true, .. } => opened = true,
            Msg::ModelReady { .. } => ready = true,
            Msg::ModelFailed(e) | Msg::OpenFailed(e) => panic!("{e}"),
            _ => {}
        }
    }
    let options = AskOptions::default();
    let ask = |id: u64, question: &str| {
        handle.send(Request::Ask {
            id,
            question: question.into(),
            options: options.clone(),
        });
        answered(&rx, id)
    };
    // Another question first: the cache then holds other sources.
    let other = ask(
        1,
        "How many hours of direct sun do tomato plants need a day?",
    );
    let primed = other.timings.reused_tokens;

    let question = "How many litres of glycol must the Orvane pump be primed with?";
    handle.send(Request::ReadAhead {
        draft: question.trim_end_matches(" with?").into(),
        options: options.clone(),
    });
    // The read-ahead runs until something else comes; the tiny model reads it in well under
    // this.
    std::thread::sleep(Duration::from_secs(3));
    let read = ask(2, question);
    assert!(
        read.timings.reused_tokens > primed + 32,
        "reused {} of {} prompt tokens ({primed} primed)",
        read.timings.reused_tokens,
        read.timings.prompt_tokens
    );
    assert!(!read.context.sources.is_empty());

    // A question sent right after a read-ahead of something else is answered all the same.
    handle.send(Request::ReadAhead {
        draft: "When is basil sown and planted out".into(),
        options: options.clone(),
    });
    let again = ask(3, question);
    assert_eq!(again.answer, read.answer);
    assert_eq!(again.logprobs, read.logprobs);
}
