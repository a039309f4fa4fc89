//! Whole screens drawn by the real `App` after injected events, with a scripted generator
//! (the worker's messages) standing in for the model.

use std::path::{Path, PathBuf};

use cairn_engine::{
    ground, Abstain, Answer, ChunkId, ChunkRecord, Context, Excerpt, Fused, Gates, Hit, LegHit,
    Mode, RareWords, Source, Timings,
};
use cairn_tui::app::{AskMode, Effect, Focus, TurnState};
use cairn_tui::worker::{Ingest, Msg, Request};
use cairn_tui::{view, App, Event, Options};
use ratatui::backend::TestBackend;
use ratatui::crossterm::event::{KeyCode, KeyEvent, KeyModifiers, MouseEvent, MouseEventKind};
use ratatui::Terminal;

const MANUAL: &str = "# Pump manual\n\n## Maintenance\n\nThe pump needs 3 litres of glycol.\nCheck the seal every spring.\nReplace the filter yearly.\n\n## Colour\n\nThe pump is painted blue.\n";

fn app(w: u16, h: u16) -> App {
    let mut app = App::new(Options {
        kb: PathBuf::from("/home/ana/.local/share/cairn/kb"),
        model: "tiny".into(),
        mode: Mode::Hybrid,
        models: vec!["tiny".into(), "default".into()],
        history: None,
        color: false,
        packs: cairn_tui::worker::PackChoice::default(),
        read: cairn_engine::ReadOptions::default(),
    });
    app.update(Event::Resize(w, h));
    app
}

fn screen(app: &App) -> String {
    let mut t = Terminal::new(TestBackend::new(app.size.width, app.size.height)).unwrap();
    t.draw(|f| view::draw(app, f)).unwrap();
    t.backend().to_string()
}

/// Snapshots with the live rates (tokens/s, time to first token) filtered out.
macro_rules! snap {
    ($name:expr, $app:expr) => {{
        let mut s = insta::Settings::clone_current();
        s.add_filter(r" *[0-9.]+ tok/s · first token [0-9.]+ s", " [rates]");
        s.add_filter(r" *first token [0-9.]+ s\s*│", " [ttft]│");
        s.bind(|| insta::assert_snapshot!($name, screen(&$app)));
    }};
}

fn key(app: &mut App, code: KeyCode) {
    app.update(Event::Key(KeyEvent::new(code, KeyModifiers::NONE)));
}

fn ctrl(app: &mut App, c: char) {
    app.update(Event::Key(KeyEvent::new(
        KeyCode::Char(c),
        KeyModifiers::CONTROL,
    )));
}

fn type_text(app: &mut App, text: &str) {
    for c in text.chars() {
        key(app, KeyCode::Char(c));
    }
}

fn opened(app: &mut App, root: &Path) {
    app.update(Event::Worker(Msg::Opened {
        own: true,
        documents: 2,
        chunks: 5,
        sources: vec![cairn_engine::KbSource {
            name: "pump".into(),
            path: root.to_owned(),
        }],
        packs: Vec::new(),
    }));
}

fn ready(app: &mut App) {
    app.update(Event::Worker(Msg::ModelReady {
        id: "tiny".into(),
        name: "SmolLM2-135M-Instruct".into(),
        secs: 0.4,
    }));
}

#[allow(clippy::too_many_arguments)] // one hit, every field spelled out
fn hit(
    id: u64,
    rank: usize,
    doc: &str,
    text: &str,
    lines: (u32, u32),
    bm25: Option<(usize, f32)>,
    dense: Option<(usize, f32)>,
    score: f32,
) -> Hit {
    Hit {
        rank,
        fused: Fused {
            id: ChunkId(id),
            score,
            bm25: bm25.map(|(rank, score)| LegHit { rank, score }),
            dense: dense.map(|(rank, score)| LegHit { rank, score }),
            defines: false,
        },
        chunk: ChunkRecord {
            doc: doc.into(),
            hash: String::new(),
            text: text.into(),
            heading: vec!["Pump manual".into(), "Maintenance".into()],
            page: None,
            lines,
            range: (0, text.len()),
            in_code: false,
        },
        also: Vec::new(),
    }
}

fn retrieval() -> (Context, Vec<Hit>) {
    let t1 = "The pump needs 3 litres of glycol.\nCheck the seal every spring.\nReplace the filter yearly.";
    let t2 = "The pump is painted blue.";
    let hits = vec![
        hit(
            1,
            1,
            "pump/manual.md",
            t1,
            (5, 7),
            Some((2, 7.31)),
            Some((1, 0.712)),
            1.0,
        ),
        hit(
            2,
            2,
            "pump/manual.md",
            t2,
            (11, 11),
            Some((1, 8.02)),
            None,
            0.83,
        ),
    ];
    let source = |number: usize, h: &Hit, whole: bool| Source {
        number,
        doc: h.chunk.doc.clone(),
        heading: h.chunk.heading.clone(),
        page: None,
        lines: h.chunk.lines,
        chunks: vec![h.fused.id],
        rank: h.rank,
        score: h.fused.score,
        bm25: h.fused.bm25.map(|l| l.score),
        dense: h.fused.dense.map(|l| l.score),
        excerpts: vec![Excerpt {
            text: h.chunk.text.clone(),
            lines: h.chunk.lines,
        }],
        whole,
        also: Vec::new(),
    };
    let context = Context {
        sources: vec![source(1, &hits[0], true), source(2, &hits[1], true)],
        tokens: 40,
    };
    (context, hits)
}

fn gates(relevance: f32, coverage: f32) -> Gates {
    Gates {
        relevance: Some(relevance),
        min_relevance: 0.3,
        coverage,
        min_coverage: 0.25,
        missing_names: Vec::new(),
        min_named_coverage: 0.4,
        min_relative_score: 0.8,
        rare: Some(RareWords {
            in_index: 0.8,
            in_english: 0.6,
        }),
        min_rare_coverage: 0.5,
        overruled: None,
        off_scope: None,
    }
}

fn answer(
    question: &str,
    text: &str,
    context: &Context,
    hits: &[Hit],
    abstained: Option<Abstain>,
    g: Gates,
) -> Box<Answer> {
    Box::new(Answer {
        question: question.into(),
        answer: text.into(),
        abstained,
        claims: if abstained.is_some() {
            Vec::new()
        } else {
            ground(text, context)
        },
        context: context.clone(),
        hits: hits.to_vec(),
        logprobs: Vec::new(),
        quote_coverage: None,
        self_check: None,
        start: None,
        verdict: None,
        gates: g,
        timings: Timings {
            ttft_ms: 812.0,
            total_ms: 1900.0,
            answer_tokens: if text.is_empty() { 0 } else { 9 },
            ..Timings::default()
        },
    })
}

fn sent(app: &mut App) -> u64 {
    let effects = app.take_effects();
    effects
        .iter()
        .find_map(|e| match e {
            Effect::Send(Request::Ask { id, .. } | Request::Search { id, .. }) => Some(*id),
            _ => None,
        })
        .expect("a question was sent")
}

/// Switches to search mode, searches for `query` and gives the worker's `hits` back.
fn search(app: &mut App, query: &str, hits: Vec<Hit>) {
    ctrl(app, 't');
    type_text(app, query);
    key(app, KeyCode::Enter);
    let effects = app.take_effects();
    let Some(Effect::Send(Request::Search {
        id, query: sent, ..
    })) = effects.first()
    else {
        panic!("{effects:?}")
    };
    assert_eq!(sent, query);
    app.update(Event::Worker(Msg::Found {
        id: *id,
        hits,
        ms: 4.0,
    }));
}

/// Asks `question` and streams `pieces` as the scripted model's answer.
fn ask(app: &mut App, question: &str, pieces: &[&str]) -> u64 {
    type_text(app, question);
    key(app, KeyCode::Enter);
    let id = sent(app);
    let (context, hits) = retrieval();
    app.update(Event::Worker(Msg::Context { id, context }));
    app.update(Event::Worker(Msg::Retrieved {
        id,
        hits,
        gates: gates(0.71, 1.0),
    }));
    for p in pieces {
        app.update(Event::Worker(Msg::Token {
            id,
            piece: (*p).into(),
        }));
    }
    id
}

fn finish(app: &mut App, id: u64, question: &str, text: &str) {
    let (context, hits) = retrieval();
    let a = answer(question, text, &context, &hits, None, gates(0.71, 1.0));
    app.update(Event::Worker(Msg::Answered { id, answer: a }));
}

const Q: &str = "How much glycol does the pump need?";
const PIECES: &[&str] = &[
    "The pump",
    " needs 3",
    " litres of",
    " glycol.",
    " It is",
    " green.",
];

fn answered(w: u16, h: u16) -> App {
    let dir = tempfile::tempdir().unwrap();
    let mut a = app(w, h);
    opened(&mut a, dir.path());
    ready(&mut a);
    let id = ask(&mut a, Q, PIECES);
    finish(&mut a, id, Q, &PIECES.concat());
    a
}

#[test]
fn first_frame_while_the_model_loads() {
    let mut a = app(100, 30);
    snap!("first_frame_opening", a);
    opened(&mut a, Path::new("/nowhere"));
    a.update(Event::Worker(Msg::ModelLoading("tiny".into())));
    let s = screen(&a);
    assert!(s.contains("loading tiny"), "{s}");
    assert!(s.contains("2 docs · 5 chunks"), "{s}");
    snap!("first_frame_model_loading", a);
}

#[test]
fn no_knowledge_base_says_how_to_make_one_and_adds_a_folder() {
    let mut a = app(100, 30);
    a.update(Event::Worker(Msg::NoKnowledgeBase));
    snap!("no_knowledge_base", a);
    type_text(&mut a, "/add /tmp/notes");
    key(&mut a, KeyCode::Enter);
    let effects = a.take_effects();
    assert!(
        matches!(&effects[..], [Effect::Send(Request::Add(p))] if p == &[PathBuf::from("/tmp/notes")]),
        "{effects:?}"
    );
    a.update(Event::Worker(Msg::Ingest(Ingest::Files(40))));
    for i in 0..12 {
        a.update(Event::Worker(Msg::Ingest(Ingest::File(
            format!("notes/{i}.md"),
            None,
        ))));
    }
    a.update(Event::Worker(Msg::Ingest(Ingest::Embedded(96))));
    let s = screen(&a);
    assert!(s.contains("adding 12/40 files · 96 embedded"), "{s}");
    snap!("ingest_progress", a);
}

#[test]
fn with_no_knowledge_base_the_installed_packs_are_searched() {
    let mut a = app(100, 30);
    a.update(Event::Worker(Msg::Opened {
        own: false,
        documents: 22,
        chunks: 300,
        sources: Vec::new(),
        packs: vec!["pack:cargo-book@1.95.0".into()],
    }));
    let s = screen(&a);
    assert!(
        s.contains("empty + 1 pack · 22 docs · 300 chunks"),
        "the status bar:\n{s}"
    );
    assert!(s.contains("No knowledge base of your own"), "{s}");
    snap!("packs_only", a);
}

#[test]
fn a_typed_question() {
    let mut a = app(100, 30);
    opened(&mut a, Path::new("/nowhere"));
    ready(&mut a);
    type_text(&mut a, "How much glycol does the pump nxed");
    key(&mut a, KeyCode::Left);
    key(&mut a, KeyCode::Left);
    key(&mut a, KeyCode::Backspace);
    type_text(&mut a, "e");
    key(&mut a, KeyCode::End);
    type_text(&mut a, "?");
    assert_eq!(a.input_text(), Q);
    // Ctrl-W deletes a word, Ctrl-U everything before the cursor, Alt-B moves a word back.
    ctrl(&mut a, 'w');
    assert_eq!(a.input_text(), "How much glycol does the pump need");
    a.update(Event::Key(KeyEvent::new(
        KeyCode::Char('b'),
        KeyModifiers::ALT,
    )));
    ctrl(&mut a, 'k');
    assert_eq!(a.input_text(), "How much glycol does the pump ");
    ctrl(&mut a, 'u');
    assert_eq!(a.input_text(), "");
    type_text(&mut a, Q);
    snap!("question_typed", a);
}

#[test]
fn an_answer_streams_with_verified_markers() {
    let dir = tempfile::tempdir().unwrap();
    let mut a = app(100, 30);
    opened(&mut a, dir.path());
    ready(&mut a);
    let id = ask(&mut a, Q, &PIECES[..3]);
    // An ask quotes its answer, and a quote is shown only once it is finished and checked:
    // nothing of it may appear while it streams, in case it is withheld.
    assert!(!screen(&a).contains("│  The pump needs"), "{}", screen(&a));
    snap!("answer_streaming", a);
    for p in &PIECES[3..] {
        a.update(Event::Worker(Msg::Token {
            id,
            piece: (*p).into(),
        }));
    }
    let s = screen(&a);
    assert!(!s.contains("│  The pump needs"), "{s}");
    finish(&mut a, id, Q, &PIECES.concat());
    let s = screen(&a);
    assert!(s.contains("glycol [1]."), "{s}");
    assert!(s.contains("green [?]."), "{s}");
    assert!(
        s.contains("BM25 #2 7.31 · dense #1 cos 0.712 ·") && s.contains("fused #1 1.000"),
        "{s}"
    );
    snap!("answer_done", a);
}

/// The screen's rows with the left border and the spaces around them taken off.
fn rows(s: &str) -> Vec<&str> {
    s.lines()
        .map(|l| l.trim_matches('"').trim_start_matches('│').trim())
        .collect()
}

#[test]
fn a_quoted_code_block_keeps_its_lines() {
    let dir = tempfile::tempdir().unwrap();
    let mut a = app(100, 30);
    opened(&mut a, dir.path());
    ready(&mut a);
    let id = ask(&mut a, "How do I fill the pump?", &[]);
    let text = "Fill it with glycol:\n```console\n$ pumpctl fill --litres 3\n$ pumpctl start\n```";
    finish(&mut a, id, "How do I fill the pump?", text);
    let s = screen(&a);
    let lines = rows(&s);
    // Each line of code on a row of its own behind the gutter, and no fence drawn.
    for line in ["│ $ pumpctl fill --litres 3", "│ $ pumpctl start"] {
        assert!(
            lines.iter().any(|l| l.starts_with(line)),
            "{line} on a line of its own:\n{s}"
        );
    }
    assert!(!s.contains("```"), "{s}");
    assert!(
        lines.iter().any(|l| l.starts_with("Fill it with glycol:")),
        "{s}"
    );
    // c copies the commands, ready to paste into a shell.
    a.take_effects();
    key(&mut a, KeyCode::Tab);
    key(&mut a, KeyCode::Char('c'));
    let copied: Vec<String> = a
        .take_effects()
        .into_iter()
        .filter_map(|e| match e {
            Effect::Copy(text) => Some(text),
            _ => None,
        })
        .collect();
    assert_eq!(copied, ["pumpctl fill --litres 3\npumpctl start"]);
    assert!(
        screen(&a).contains("copied the answer's code"),
        "{}",
        screen(&a)
    );
    // Indentation is kept, and the markers after the closing fence end the last line.
    let id = ask(&mut a, "How does main greet?", &[]);
    let text = "```rust\nfn main() {\n    greet();\n}\n``` [1]";
    finish(&mut a, id, "How does main greet?", text);
    let s = screen(&a);
    let lines = rows(&s);
    assert!(lines.iter().any(|l| l.starts_with("│     greet();")), "{s}");
    assert!(lines.iter().any(|l| l.starts_with("│ } [1]")), "{s}");
}

#[test]
fn the_code_of_an_answer_is_its_block_or_its_code_spans() {
    use cairn_tui::app::code_of;
    assert_eq!(
        code_of("Add it:\n```toml\n[dependencies]\nregex = \"1\"\n```").as_deref(),
        Some("[dependencies]\nregex = \"1\"")
    );
    // A shell session: the commands, not their output.
    assert_eq!(
        code_of("```console\n$ cargo new hello\n     Created `hello` package\n$ cd hello\n```")
            .as_deref(),
        Some("cargo new hello\ncd hello")
    );
    assert_eq!(
        code_of("Run `cargo test -- --test-threads=1` or `cargo nextest run`.").as_deref(),
        Some("cargo test -- --test-threads=1\ncargo nextest run")
    );
    assert_eq!(code_of("The pump needs 3 litres of glycol."), None);
}

#[test]
fn the_unsupported_marker_has_colour_and_a_glyph() {
    let dir = tempfile::tempdir().unwrap();
    let mut a = app(100, 30);
    a.color = true;
    opened(&mut a, dir.path());
    let id = ask(&mut a, Q, PIECES);
    finish(&mut a, id, Q, &PIECES.concat());
    let mut t = Terminal::new(TestBackend::new(100, 30)).unwrap();
    t.draw(|f| view::draw(&a, f)).unwrap();
    let buf = t.backend().buffer().clone();
    let mut found = false;
    for y in 0..30 {
        for x in 0..98 {
            if buf[(x, y)].symbol() == "[" && buf[(x + 1, y)].symbol() == "?" {
                assert_eq!(buf[(x + 1, y)].bg, ratatui::style::Color::Red);
                found = true;
            }
        }
    }
    assert!(found, "[?] is on screen");
}

#[test]
fn a_source_opens_at_its_cited_lines() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("manual.md"), MANUAL).unwrap();
    let mut a = app(100, 30);
    opened(&mut a, dir.path());
    ready(&mut a);
    let id = ask(&mut a, Q, PIECES);
    finish(&mut a, id, Q, &PIECES.concat());
    key(&mut a, KeyCode::Tab);
    key(&mut a, KeyCode::Tab);
    assert_eq!(a.focus, Focus::Sources);
    key(&mut a, KeyCode::Char('n'));
    snap!("source_selected", a);
    key(&mut a, KeyCode::Enter);
    let effects = a.take_effects();
    let Some(Effect::LoadDocument(path, page)) = effects.first() else {
        panic!("{effects:?}")
    };
    assert_eq!(path, &dir.path().join("manual.md"));
    let lines = cairn_engine::document_lines(path, *page).map_err(|e| e.to_string());
    a.update(Event::Document(lines));
    let s = screen(&a);
    assert!(s.contains("5 ▌ The pump needs 3 litres of glycol."), "{s}");
    snap!("document_view", a);
    key(&mut a, KeyCode::Char('o'));
    assert!(matches!(a.take_effects().as_slice(), [Effect::OpenEditor(p, None, 5)] if p == path));
    key(&mut a, KeyCode::Esc);
    assert!(a.doc.is_none());
}

#[test]
fn an_abstention_shows_its_reason_and_the_closest_passages() {
    let mut a = app(100, 30);
    opened(&mut a, Path::new("/nowhere"));
    ready(&mut a);
    let q = "Who painted the Mona Lisa?";
    type_text(&mut a, q);
    key(&mut a, KeyCode::Enter);
    let id = sent(&mut a);
    let (context, hits) = retrieval();
    let g = gates(0.12, 0.0);
    a.update(Event::Worker(Msg::Context {
        id,
        context: context.clone(),
    }));
    a.update(Event::Worker(Msg::Retrieved {
        id,
        hits: hits.clone(),
        gates: g.clone(),
    }));
    a.update(Event::Worker(Msg::Answered {
        id,
        answer: answer(q, "", &context, &hits, Some(Abstain::Retrieval), g),
    }));
    let s = screen(&a);
    assert!(s.contains("Not found in the knowledge base"), "{s}");
    assert!(s.contains("relevance 0.12 < 0.30 ✗"), "{s}");
    snap!("abstention", a);
}

#[test]
fn an_answer_the_self_check_let_past_the_word_gates_says_so() {
    let mut a = app(100, 30);
    opened(&mut a, Path::new("/nowhere"));
    ready(&mut a);
    let id = ask(&mut a, Q, PIECES);
    // The gates as retrieval left them: too few of the question's words in one passage.
    let mut g = gates(0.71, 0.2);
    a.update(Event::Worker(Msg::Retrieved {
        id,
        hits: retrieval().1,
        gates: g.clone(),
    }));
    let s = screen(&a);
    assert!(s.contains("20% < 25% ✗"), "{s}");
    assert!(!s.contains("all the same"), "{s}");
    // The answer comes with the self-check's margin that overruled them.
    g.overruled = Some((2.1, 1.7));
    let (context, hits) = retrieval();
    let answer = answer(Q, &PIECES.concat(), &context, &hits, None, g);
    a.update(Event::Worker(Msg::Answered { id, answer }));
    let s = screen(&a);
    // (Wrapped at this width after "answered".)
    assert!(
        s.contains("all the same: the model's self-check 2.10 ≥ 1.70"),
        "{s}"
    );
}

#[test]
fn an_answer_from_a_source_about_something_else_says_so() {
    let mut a = app(100, 30);
    opened(&mut a, Path::new("/nowhere"));
    ready(&mut a);
    let id = ask(&mut a, Q, PIECES);
    let mut g = gates(0.71, 0.8);
    a.update(Event::Worker(Msg::Retrieved {
        id,
        hits: retrieval().1,
        gates: g.clone(),
    }));
    assert!(!screen(&a).contains("asks about"));
    // The question asked for a member of something no cited source is about, and the model
    // was sure enough of its answer all the same.
    g.off_scope = Some("tarfile".into());
    g.overruled = Some((1.92, 1.7));
    let (context, hits) = retrieval();
    let answer = answer(Q, &PIECES.concat(), &context, &hits, None, g);
    a.update(Event::Worker(Msg::Answered { id, answer }));
    let s = screen(&a);
    // (Wrapped at this width after "asks".)
    assert!(
        s.contains("about tarfile: the answer's source is not about"),
        "{s}"
    );
    assert!(s.contains("self-check 1.92 ≥ 1.70"), "{s}");
}

#[test]
fn a_source_the_engine_read_on_to_is_listed_as_not_retrieved() {
    let mut a = app(100, 50);
    opened(&mut a, Path::new("/nowhere"));
    ready(&mut a);
    let id = ask(&mut a, Q, PIECES);
    // The answer's context holds a third source, behind no hit: where the list the answer
    // cites goes on (the next page of a PDF). The context sent before the answer had two.
    let (mut context, hits) = retrieval();
    let mut next = context.sources[0].clone();
    (next.number, next.chunks, next.lines) = (3, Vec::new(), (1, 4));
    next.excerpts[0].text = "Drain the pump in autumn.".into();
    context.sources.push(next);
    let answer = answer(Q, &PIECES.concat(), &context, &hits, None, gates(0.71, 1.0));
    a.update(Event::Worker(Msg::Answered { id, answer }));
    let s = screen(&a);
    assert!(s.contains("Sources (3)"), "{s}");
    assert!(s.contains("not retrieved"), "{s}");
    assert!(s.contains("read on for the list the answer cites"), "{s}");
    // The retrieved ones keep their legs.
    assert!(s.contains("fused #1 1.000"), "{s}");
}

#[test]
fn an_error_too_long_for_the_status_line_is_shown_whole_above_it() {
    let mut a = app(100, 30);
    opened(&mut a, Path::new("/nowhere"));
    let error = "another cairn process is writing to the knowledge base at /home/ada/.local/share/cairn/kb \
                 (pid 4242); wait for it to finish (a `cairn add --watch` writes until it is stopped)";
    a.update(Event::Worker(Msg::Failed {
        id: None,
        error: error.into(),
    }));
    let s = screen(&a);
    assert!(s.contains("another cairn process is writing"), "{s}");
    assert!(s.contains("4242); wait for it to finish"), "{s}");
    assert!(s.contains("writes until it is stopped)"), "{s}");
    // A short one stays on the status line, with no row of its own.
    a.update(Event::Worker(Msg::Failed {
        id: None,
        error: "disk full".into(),
    }));
    let s = screen(&a);
    let last = s.lines().last().unwrap();
    assert!(last.contains("disk full"), "{s}");
    assert_eq!(s.matches("disk full").count(), 1, "{s}");
}

#[test]
fn esc_cancels_at_once_and_keeps_the_partial_answer() {
    let dir = tempfile::tempdir().unwrap();
    let mut a = app(100, 30);
    opened(&mut a, dir.path());
    ready(&mut a);
    let id = ask(&mut a, Q, &PIECES[..4]);
    key(&mut a, KeyCode::Esc);
    assert!(matches!(a.take_effects().as_slice(), [Effect::Cancel]));
    assert_eq!(a.turns[0].state, TurnState::Cancelled);
    // Tokens already on their way are dropped; the worker's final answer keeps the mark.
    a.update(Event::Worker(Msg::Token {
        id,
        piece: " It".into(),
    }));
    finish(&mut a, id, Q, &PIECES[..4].concat());
    assert_eq!(a.turns[0].state, TurnState::Cancelled);
    snap!("cancelled", a);
    // A new question while one runs replaces it.
    let id2 = ask(&mut a, "What colour is the pump?", &["The pump"]);
    type_text(&mut a, "Is it loud?");
    key(&mut a, KeyCode::Enter);
    let effects = a.take_effects();
    assert!(
        matches!(effects.first(), Some(Effect::Cancel)),
        "{effects:?}"
    );
    assert!(a
        .turns
        .iter()
        .any(|t| t.id == id2 && t.state == TurnState::Cancelled));
}

#[test]
fn ctrl_c_twice_quits_and_q_quits_from_a_pane_with_an_empty_box() {
    let mut a = app(80, 24);
    ctrl(&mut a, 'c');
    assert!(!a.quit);
    assert!(screen(&a).contains("press Ctrl-C again to quit"));
    ctrl(&mut a, 'c');
    assert!(a.quit);

    let mut a = app(80, 24);
    type_text(&mut a, "q");
    assert!(!a.quit, "q types in the box");
    key(&mut a, KeyCode::Tab);
    key(&mut a, KeyCode::Char('q'));
    assert!(!a.quit, "the box holds a draft");
    key(&mut a, KeyCode::BackTab);
    key(&mut a, KeyCode::Backspace);
    key(&mut a, KeyCode::Tab);
    key(&mut a, KeyCode::Char('q'));
    assert!(a.quit);
}

#[test]
fn help_is_drawn_from_the_keymap() {
    let mut a = app(100, 64);
    key(&mut a, KeyCode::F(1));
    let s = screen(&a);
    for b in cairn_tui::keymap::KEYMAP {
        assert!(
            s.contains(&b.help[..b.help.len().min(30)]),
            "{} missing:\n{s}",
            b.help
        );
    }
    snap!("help", a);
    key(&mut a, KeyCode::Char('x'));
    assert!(!a.help);
}

#[test]
fn search_mode_lists_hits_without_the_model() {
    let mut a = app(100, 30);
    opened(&mut a, Path::new("/nowhere"));
    let (_, hits) = retrieval();
    search(&mut a, "glycol", hits);
    assert_eq!(a.ask_mode, AskMode::Search);
    snap!("search_mode", a);
}

#[test]
fn a_hit_that_says_what_was_asked_about_is_marked() {
    for (question, why) in [
        ("What is glycol?", "says what it is"),
        ("What does glycol do?", "says what it does"),
    ] {
        let mut a = app(100, 30);
        opened(&mut a, Path::new("/nowhere"));
        let (_, mut hits) = retrieval();
        hits[1].fused.defines = true;
        search(&mut a, question, hits);
        let s = screen(&a);
        let rows: Vec<&str> = s.lines().collect();
        let marked: Vec<usize> = (0..rows.len())
            .filter(|&i| rows[i].contains("says what it"))
            .collect();
        let second = rows.iter().position(|r| r.contains("fused #2")).unwrap();
        // On the second hit's line of legs (or the line it wraps onto), and nowhere else, in
        // the words of what was asked.
        assert!(
            matches!(marked[..], [i] if (i == second || i == second + 1) && rows[i].contains(why)),
            "{s}"
        );
    }
}

#[test]
fn a_hit_found_in_another_file_too_says_where() {
    let mut a = app(100, 30);
    opened(&mut a, Path::new("/nowhere"));
    let (_, mut hits) = retrieval();
    hits[0].also.push(cairn_engine::Elsewhere {
        chunk_id: ChunkId(9),
        doc: "print/pump-manual.md".into(),
        page: None,
        lines: (40, 42),
    });
    search(&mut a, "glycol", hits);
    let s = screen(&a);
    // Under the first hit in both panes, and nowhere else.
    let rows: Vec<&str> = s.lines().collect();
    let row_of = |needle: &str| rows.iter().position(|r| r.contains(needle));
    let also: Vec<usize> = rows
        .iter()
        .enumerate()
        .filter(|(_, r)| r.contains("also in print/pump-manual.md L40–42"))
        .map(|(i, _)| i)
        .collect();
    let (first, second) = (row_of("[1] pump/manual.md"), row_of("[2] pump/manual.md"));
    let (left_first, left_second) = (row_of("1. pump/manual.md"), row_of("2. pump/manual.md"));
    let place = |at: usize| s.lines().nth(at).unwrap().find("also in").unwrap();
    let in_right = also.iter().filter(|&&i| place(i) > 50).count();
    let in_left = also.len() - in_right;
    assert!(in_right == 1 && in_left == 1, "once in each pane:\n{s}");
    for &i in &also {
        let (a, b) = if place(i) > 50 {
            (first, second)
        } else {
            (left_first, left_second)
        };
        assert!(
            a.is_some_and(|a| a < i) && b.is_some_and(|b| i < b),
            "the copy belongs under the first hit:\n{s}"
        );
    }
}

#[test]
fn small_and_narrow_terminals_stack_the_panes() {
    let a = answered(80, 24);
    snap!("answer_80x24", a);
    let a = answered(60, 30);
    snap!("answer_narrow_60x30", a);
    let a = answered(40, 12);
    let s = screen(&a);
    assert_eq!(s.lines().count(), 12);
}

#[test]
fn escape_sequences_from_documents_never_reach_the_terminal() {
    let mut a = app(100, 30);
    opened(&mut a, Path::new("/nowhere"));
    ready(&mut a);
    let evil = "Red \u{1b}[31malert\u{1b}[0m \u{1b}]0;pwned\u{7}title \u{1b}]52;c;ZXZpbA==\u{7}clip\rreturn \u{202e}txet desrever 漢字テスト 😀 שלום עולם.";
    type_text(&mut a, "evil \u{1b}[2J question?");
    key(&mut a, KeyCode::Enter);
    let id = sent(&mut a);
    let mut h = hit(
        9,
        1,
        "evil/\u{1b}[2Jname.md",
        evil,
        (1, 1),
        Some((1, 3.0)),
        Some((1, 0.9)),
        1.0,
    );
    h.chunk.heading = vec!["Head\u{1b}[1mline".into()];
    let context = Context {
        sources: vec![Source {
            number: 1,
            doc: h.chunk.doc.clone(),
            heading: h.chunk.heading.clone(),
            page: Some(2),
            lines: (1, 1),
            chunks: vec![h.fused.id],
            rank: 1,
            score: 1.0,
            bm25: Some(3.0),
            dense: Some(0.9),
            excerpts: vec![Excerpt {
                text: evil.into(),
                lines: (1, 1),
            }],
            whole: true,
            also: Vec::new(),
        }],
        tokens: 30,
    };
    a.update(Event::Worker(Msg::Context {
        id,
        context: context.clone(),
    }));
    a.update(Event::Worker(Msg::Retrieved {
        id,
        hits: vec![h.clone()],
        gates: gates(0.9, 1.0),
    }));
    a.update(Event::Worker(Msg::Token {
        id,
        piece: evil.into(),
    }));
    a.update(Event::Worker(Msg::Answered {
        id,
        answer: answer("q", evil, &context, &[h], None, gates(0.9, 1.0)),
    }));
    let s = screen(&a);
    assert!(
        !s.contains('\u{1b}') && !s.contains('\u{7}') && !s.contains('\r'),
        "{s:?}"
    );
    assert!(!s.contains('\u{202e}'));
    assert!(s.contains("漢字テスト"), "{s}");
    snap!("escape_sequences", a);
    // Every row still fits the terminal.
    let mut t = Terminal::new(TestBackend::new(100, 30)).unwrap();
    t.draw(|f| view::draw(&a, f)).unwrap();
    assert_eq!(t.backend().buffer().area.width, 100);
}

#[test]
fn mouse_wheel_scrolls_and_a_click_selects_a_source() {
    let dir = tempfile::tempdir().unwrap();
    let mut a = app(100, 30);
    opened(&mut a, dir.path());
    for i in 0..6 {
        let id = ask(&mut a, &format!("{Q} ({i})"), PIECES);
        finish(&mut a, id, Q, &PIECES.concat());
    }
    assert_eq!(a.answer_scroll, None, "follows the end");
    let wheel = |kind, column, row| {
        Event::Mouse(MouseEvent {
            kind,
            column,
            row,
            modifiers: KeyModifiers::NONE,
        })
    };
    a.update(wheel(MouseEventKind::ScrollUp, 10, 10));
    assert!(a.answer_scroll.is_some(), "scrolled up");
    a.update(wheel(MouseEventKind::ScrollDown, 10, 10));
    a.update(wheel(MouseEventKind::ScrollDown, 10, 10));
    assert_eq!(a.answer_scroll, None, "back at the end");
    // Click on the second source's header, wherever it was drawn.
    let areas = view::areas(&a);
    let y = screen(&a)
        .lines()
        .position(|l| l.contains("[2] pump/manual.md"))
        .expect("the second source is listed") as u16;
    a.update(wheel(
        MouseEventKind::Down(ratatui::crossterm::event::MouseButton::Left),
        areas.sources.x + 4,
        y,
    ));
    assert_eq!(a.focus, Focus::Sources);
    assert_eq!(a.selected, 1, "{}", screen(&a));
}

#[test]
fn y_copies_the_answer_with_its_sources_as_markdown() {
    let mut a = answered(100, 30);
    key(&mut a, KeyCode::Tab);
    key(&mut a, KeyCode::Char('y'));
    let effects = a.take_effects();
    let Some(Effect::Copy(md)) = effects.first() else {
        panic!("{effects:?}")
    };
    assert!(
        md.starts_with(&format!(
            "## {Q}\n\nThe pump needs 3 litres of glycol [1]. It is green [?]."
        )),
        "{md}"
    );
    assert!(md.contains("- [1] pump/manual.md L5–7 — Pump manual > Maintenance\n  > The pump needs 3 litres of glycol."), "{md}");
    let s = screen(&a);
    assert!(s.contains("copied the answer"), "{s}");
    key(&mut a, KeyCode::Char('s'));
    assert!(
        matches!(a.take_effects().as_slice(), [Effect::Save(md)] if md.starts_with("# cairn session"))
    );
}

#[test]
fn a_model_that_fails_to_load_is_shown_with_its_hint_and_search_goes_on() {
    let mut a = app(100, 30);
    opened(&mut a, Path::new("/nowhere"));
    a.update(Event::Worker(Msg::ModelFailed(
        "model `larger` is not installed (/m/qwen.gguf is missing)\nhint: run `cairn models pull larger`".into(),
    )));
    let s = screen(&a);
    assert!(s.contains("could not be loaded"), "{s}");
    assert!(s.contains("hint: run `cairn models pull larger`"), "{s}");
    assert!(s.contains("tiny (failed)"), "{s}");
    snap!("model_failed", a);
    // The app keeps running: a search is still sent.
    ctrl(&mut a, 't');
    type_text(&mut a, "glycol");
    key(&mut a, KeyCode::Enter);
    assert!(matches!(
        a.take_effects().as_slice(),
        [Effect::Send(Request::Search { .. })]
    ));
}

fn read_aheads(app: &mut App) -> Vec<String> {
    app.take_effects()
        .into_iter()
        .filter_map(|e| match e {
            Effect::Send(Request::ReadAhead { draft, .. }) => Some(draft),
            _ => None,
        })
        .collect()
}

#[test]
fn a_question_is_read_ahead_once_when_the_typing_pauses() {
    let pause = cairn_tui::app::READ_AHEAD_PAUSE + std::time::Duration::from_millis(50);
    let mut a = app(100, 30);
    opened(&mut a, Path::new("/tmp/pump"));
    // Not while the model loads.
    type_text(&mut a, "How much glycol does the pump need");
    a.update(Event::Tick);
    std::thread::sleep(pause);
    a.update(Event::Tick);
    assert!(read_aheads(&mut a).is_empty(), "the model is not ready");
    ready(&mut a);
    a.update(Event::Tick);
    assert_eq!(read_aheads(&mut a), ["How much glycol does the pump need"]);
    // Once per draft; typing again waits for the next pause.
    a.update(Event::Tick);
    assert!(read_aheads(&mut a).is_empty());
    type_text(&mut a, " before its first start?");
    a.update(Event::Tick);
    assert!(read_aheads(&mut a).is_empty(), "the text just changed");
    std::thread::sleep(pause);
    a.update(Event::Tick);
    assert_eq!(
        read_aheads(&mut a),
        ["How much glycol does the pump need before its first start?"]
    );
    // Commands, short drafts and searches are not read ahead.
    for text in ["/add ~/notes and more", "glycol level"] {
        key(&mut a, KeyCode::Esc);
        while !a.input_text().is_empty() {
            key(&mut a, KeyCode::Backspace);
        }
        type_text(&mut a, text);
        a.update(Event::Tick);
        std::thread::sleep(pause);
        a.update(Event::Tick);
        assert!(read_aheads(&mut a).is_empty(), "{text}");
    }
    ctrl(&mut a, 't');
    assert_eq!(a.ask_mode, AskMode::Search);
    type_text(&mut a, " in the tank");
    a.update(Event::Tick);
    std::thread::sleep(pause);
    a.update(Event::Tick);
    assert!(read_aheads(&mut a).is_empty(), "search mode");
}

#[test]
fn a_question_leaning_on_the_last_is_asked_as_it_was_taken() {
    let mut a = answered(100, 30);
    let q = "What does the pump do?";
    let id = ask(&mut a, q, PIECES);
    finish(&mut a, id, q, &PIECES.concat());
    type_text(&mut a, "Is it green?");
    key(&mut a, KeyCode::Enter);
    let effects = a.take_effects();
    let asked = effects.iter().find_map(|e| match e {
        Effect::Send(Request::Ask { question, .. }) => Some(question.clone()),
        _ => None,
    });
    // The pronoun stands for what the last question asked about: "the pump".
    assert_eq!(asked.as_deref(), Some("Is the pump green?"));
    let s = screen(&a);
    assert!(s.contains("› Is it green?"), "{s}");
    assert!(s.contains("taken as: Is the pump green?"), "{s}");
    // Asked again, it is asked as it was taken; a question that stands alone is asked as typed.
    key(&mut a, KeyCode::Esc);
    key(&mut a, KeyCode::Tab);
    key(&mut a, KeyCode::Char('r'));
    let again = a.take_effects();
    assert!(
        again.iter().any(|e| matches!(e,
            Effect::Send(Request::Ask { question, .. }) if question == "Is the pump green?")),
        "{again:?}"
    );
    // `R` asks it as typed instead, and the new turn says nothing of a follow-up.
    key(&mut a, KeyCode::Char('R'));
    let typed = a.take_effects();
    assert!(
        typed.iter().any(|e| matches!(e,
            Effect::Send(Request::Ask { question, .. }) if question == "Is it green?")),
        "{typed:?}"
    );
    assert_eq!(a.turns.last().unwrap().meant, None);
    key(&mut a, KeyCode::Char('R'));
    assert!(a.take_effects().is_empty(), "asked as typed already");
    assert_eq!(
        a.status.as_deref(),
        Some("the last question was asked as typed")
    );
    key(&mut a, KeyCode::Esc);
    key(&mut a, KeyCode::Esc);
    type_text(&mut a, "How much water does the tank hold?");
    key(&mut a, KeyCode::Enter);
    let alone = a.take_effects();
    assert!(
        alone.iter().any(|e| matches!(e,
            Effect::Send(Request::Ask { question, .. })
                if question == "How much water does the tank hold?")),
        "{alone:?}"
    );
    insta::assert_snapshot!(screen(&a));
}
