//! The app's state and the one place it changes: [`App::update`].

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use cairn_engine::text::{location, raised_because, sanitize, snippet};
use cairn_engine::{Answer, AnswerStream, AskOptions, Context, Gates, Hit, Mode, SearchOptions};
use ratatui::crossterm::event::{
    KeyCode, KeyEvent, KeyEventKind, KeyModifiers, MouseButton, MouseEvent, MouseEventKind,
};
use ratatui::layout::{Position, Rect};
use ratatui_textarea::{CursorMove, TextArea, WrapMode};

use crate::history::History;
use crate::keymap::{self, Command, Edit, Scope};
use crate::view;
use crate::worker::{Ingest, Msg, Request};

/// Everything that can happen to the app, merged into one stream.
#[derive(Debug)]
pub enum Event {
    /// A key was pressed.
    Key(KeyEvent),
    /// The mouse was used.
    Mouse(MouseEvent),
    /// Text was pasted (bracketed paste).
    Paste(String),
    /// The terminal was resized.
    Resize(u16, u16),
    /// Time passed (spinners, rates).
    Tick,
    /// The worker reported.
    Worker(Msg),
    /// A document asked for with [`Effect::LoadDocument`] was read (or not).
    Document(Result<cairn_engine::DocumentLines, String>),
    /// Something the run loop did for the app, to tell the user.
    Status(String),
}

impl From<Msg> for Event {
    fn from(m: Msg) -> Self {
        Event::Worker(m)
    }
}

/// What the app asks the run loop to do (the app itself does no I/O).
#[derive(Debug)]
pub enum Effect {
    /// Send a request to the worker.
    Send(Request),
    /// Stop the running answer.
    Cancel,
    /// Put text on the clipboard (OSC 52).
    Copy(String),
    /// Write the session to a file.
    Save(String),
    /// Read a document's lines for the document view.
    LoadDocument(PathBuf, Option<u32>),
    /// Open a document (file, PDF page) in `$EDITOR` (or `$PAGER`) at a line.
    OpenEditor(PathBuf, Option<u32>, u32),
}

/// Which pane has the keyboard.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Focus {
    /// The question box.
    Input,
    /// The conversation.
    Answer,
    /// The sources of the latest turn.
    Sources,
}

/// Ask the model, or search only.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AskMode {
    /// Answer with the model.
    Ask,
    /// Passages only, no model.
    Search,
}

/// The knowledge base, as far as the app knows.
#[derive(Clone, Debug, PartialEq)]
pub enum KbState {
    /// Being opened.
    Opening,
    /// Not made yet.
    Missing,
    /// Open.
    Ready {
        /// Documents.
        documents: u64,
        /// Chunks.
        chunks: u64,
    },
    /// Not made yet, but packs are installed: questions search them.
    PacksOnly {
        /// Documents in the packs.
        documents: u64,
        /// Chunks in the packs.
        chunks: u64,
    },
    /// Could not be opened.
    Failed(String),
}

/// The model, as far as the app knows.
#[derive(Clone, Debug, PartialEq)]
pub enum ModelState {
    /// Loading.
    Loading,
    /// Ready, with its own name.
    Ready(String),
    /// Could not be loaded.
    Failed(String),
}

/// How long the question box must stay unchanged before its question is read ahead: long
/// enough that a read-ahead is not started on every word, short enough to land in the pause
/// before Enter.
pub const READ_AHEAD_PAUSE: Duration = Duration::from_millis(600);

/// Where a turn stands.
#[derive(Clone, Debug, PartialEq)]
pub enum TurnState {
    /// Sent; nothing back yet.
    Waiting,
    /// The answer is being written.
    Streaming,
    /// Finished.
    Done,
    /// Cancelled by the user; the text written so far is kept.
    Cancelled,
    /// Failed, with the message.
    Failed(String),
}

/// One question and what came back.
pub struct Turn {
    /// The request id.
    pub id: u64,
    /// The question as typed.
    pub question: String,
    /// The question as it was taken, when it leaned on the one before ("What about Arc?" after
    /// "What is Rc?" is asked as "What is Arc?"): what was searched for and asked.
    pub meant: Option<String>,
    /// Ask or search.
    pub kind: AskMode,
    /// The model asked.
    pub model: String,
    /// Where it stands.
    pub state: TurnState,
    /// The answer's text with verified markers.
    pub stream: AnswerStream,
    /// What [`Turn::stream`] shows now.
    pub shown: String,
    /// The sources the model was given (and, once answered, any the engine read on to).
    pub context: Option<Context>,
    /// The hits (for an ask, those behind the context; for a search, the results).
    pub hits: Vec<Hit>,
    /// The checks the question went through.
    pub gates: Option<Gates>,
    /// The finished answer.
    pub answer: Option<Box<Answer>>,
    /// Answer tokens received.
    pub tokens: usize,
    /// When the question was sent.
    pub sent: Instant,
    /// When the first answer token arrived.
    pub first_token: Option<Instant>,
    /// When the last answer token arrived.
    pub last_token: Option<Instant>,
    /// How long the search took (search turns).
    pub search_ms: Option<f64>,
}

impl Turn {
    /// What was asked: [`Turn::meant`], or the question as typed.
    #[must_use]
    pub fn asked(&self) -> &str {
        self.meant.as_deref().unwrap_or(&self.question)
    }
}

/// One row of the sources pane.
pub struct SourceRow {
    /// The source number (ask) or rank (search).
    pub number: usize,
    /// Document key.
    pub doc: String,
    /// Page, for PDFs.
    pub page: Option<u32>,
    /// Lines of the passage.
    pub lines: (u32, u32),
    /// Heading path.
    pub heading: Vec<String>,
    /// The passage's excerpts: (text, first line).
    pub excerpts: Vec<(String, u32)>,
    /// The BM25 leg's rank and score.
    pub bm25: Option<(usize, f32)>,
    /// The dense leg's rank and cosine.
    pub dense: Option<(usize, f32)>,
    /// The fused rank and score; `None` for a passage no search found, which the engine read
    /// on to for an answer (a list's part on the next page of a PDF).
    pub fused: Option<(usize, f32)>,
    /// Asked what something is or does, this passage says so (and ranks higher for it): the
    /// words that tell it ("says what it is").
    pub defines: Option<&'static str>,
    /// Which gate it passed, in words.
    pub gate: String,
    /// Lines the answer cites.
    pub cited: Vec<(u32, u32)>,
    /// Other places holding mostly the same text, folded into this row by the search.
    pub also: Vec<cairn_engine::Elsewhere>,
}

impl SourceRow {
    /// Whether a line is cited.
    #[must_use]
    pub fn is_cited(&self, line: u32) -> bool {
        self.cited.iter().any(|&(a, b)| a <= line && line <= b)
    }
}

/// The full view of a document around a passage.
pub struct DocView {
    /// The document key and place.
    pub title: String,
    /// The file.
    pub path: PathBuf,
    /// The page, for PDFs.
    pub page: Option<u32>,
    /// Its lines, once read.
    pub lines: Option<cairn_engine::DocumentLines>,
    /// Why it could not be read.
    pub error: Option<String>,
    /// Lines to highlight.
    pub highlight: Vec<(u32, u32)>,
    /// The passage's lines.
    pub passage: (u32, u32),
    /// First line shown (index into `lines`).
    pub scroll: usize,
}

/// Ingest progress shown while a folder is added from the app.
#[derive(Default)]
pub struct IngestState {
    /// Files in all.
    pub total: usize,
    /// Files done.
    pub done: usize,
    /// Files skipped, with why.
    pub skipped: Vec<String>,
    /// The file last done.
    pub current: String,
    /// Chunks embedded.
    pub embedded: usize,
}

/// What the app starts with.
pub struct Options {
    /// The knowledge base directory.
    pub kb: PathBuf,
    /// The model id (or GGUF path).
    pub model: String,
    /// The retrieval mode.
    pub mode: Mode,
    /// The installed catalog models `m` cycles through.
    pub models: Vec<String>,
    /// Where history is kept (`None`: not kept).
    pub history: Option<PathBuf>,
    /// Whether to use colour (false under NO_COLOR).
    pub color: bool,
    /// The installed packs searched with the knowledge base.
    pub packs: crate::worker::PackChoice,
    /// The limits per file of `/add` (`cairn add`'s, from its flags, environment and config).
    pub read: cairn_engine::ReadOptions,
}

/// All of the app's state.
#[allow(clippy::struct_excessive_bools)] // independent facts about the screen
pub struct App {
    /// The knowledge base directory.
    pub kb: PathBuf,
    /// Its state.
    pub kb_state: KbState,
    /// Where its documents' files are.
    pub sources: Vec<cairn_engine::KbSource>,
    /// The packs searched with it (labels).
    pub packs: Vec<String>,
    /// The model id.
    pub model: String,
    /// Its state.
    pub model_state: ModelState,
    /// Installed catalog models.
    pub models: Vec<String>,
    /// Retrieval mode.
    pub mode: Mode,
    /// Ask or search.
    pub ask_mode: AskMode,
    /// The question box.
    pub input: TextArea<'static>,
    /// Question history.
    pub history: History,
    /// Ctrl-R search: the query and the index of the match shown.
    pub history_search: Option<(String, Option<usize>)>,
    /// The session's questions and answers.
    pub turns: Vec<Turn>,
    /// Focus.
    pub focus: Focus,
    /// First conversation line shown; `None` follows the end.
    pub answer_scroll: Option<usize>,
    /// Selected row of the sources pane.
    pub selected: usize,
    /// First passage line shown in the sources pane.
    pub passage_scroll: usize,
    /// The document view, when open.
    pub doc: Option<DocView>,
    /// Whether help is shown.
    pub help: bool,
    /// First help line shown.
    pub help_scroll: usize,
    /// A message for the status line.
    pub status: Option<String>,
    /// Ctrl-C was pressed once.
    pub quit_armed: bool,
    /// The app should end.
    pub quit: bool,
    /// Ingest in progress.
    pub ingest: Option<IngestState>,
    /// The terminal's size.
    pub size: Rect,
    /// Colours on.
    pub color: bool,
    /// Ticks seen (spinner).
    pub ticks: u64,
    /// The question box's text at the last tick, and since when it has been so.
    draft: (String, Instant),
    /// The last draft a read-ahead was asked for.
    read_ahead: String,
    next_id: u64,
    effects: Vec<Effect>,
}

impl App {
    /// A new app; the run loop starts the worker on the same knowledge base and model.
    #[must_use]
    pub fn new(o: Options) -> Self {
        let mut app = App {
            kb: o.kb,
            kb_state: KbState::Opening,
            sources: Vec::new(),
            packs: Vec::new(),
            model: o.model,
            model_state: ModelState::Loading,
            models: o.models,
            mode: o.mode,
            ask_mode: AskMode::Ask,
            input: TextArea::default(),
            history: History::load(o.history),
            history_search: None,
            turns: Vec::new(),
            focus: Focus::Input,
            answer_scroll: None,
            selected: 0,
            passage_scroll: 0,
            doc: None,
            help: false,
            help_scroll: 0,
            status: None,
            quit_armed: false,
            quit: false,
            ingest: None,
            size: Rect::new(0, 0, 80, 24),
            color: o.color,
            ticks: 0,
            draft: (String::new(), Instant::now()),
            read_ahead: String::new(),
            next_id: 0,
            effects: Vec::new(),
        };
        app.reset_input("");
        app
    }

    /// Takes what the run loop must do.
    pub fn take_effects(&mut self) -> Vec<Effect> {
        std::mem::take(&mut self.effects)
    }

    /// Whether an answer or search is running.
    pub fn running(&self) -> Option<&Turn> {
        self.turns
            .last()
            .filter(|t| matches!(t.state, TurnState::Waiting | TurnState::Streaming))
    }

    /// The question box's text.
    pub fn input_text(&self) -> String {
        self.input.lines().join("\n")
    }

    fn reset_input(&mut self, text: &str) {
        let mut t = TextArea::new(vec![text.to_owned()]);
        t.set_wrap_mode(WrapMode::WordOrGlyph);
        t.set_cursor_line_style(ratatui::style::Style::default());
        t.set_placeholder_text(match self.ask_mode {
            AskMode::Ask => {
                "Ask a question about your documents (Enter)  ·  /add PATH adds a folder"
            }
            AskMode::Search => "Search your documents (Enter)  ·  /add PATH adds a folder",
        });
        t.move_cursor(CursorMove::End);
        self.input = t;
    }

    /// Applies one event.
    pub fn update(&mut self, event: Event) {
        match event {
            Event::Key(k) if k.kind != KeyEventKind::Release => self.key(k),
            Event::Key(_) => {}
            Event::Mouse(m) => self.mouse(m),
            Event::Paste(text) => {
                if self.focus == Focus::Input && self.history_search.is_none() {
                    // One line: a pasted paragraph becomes one question.
                    let flat = sanitize(&text)
                        .split_whitespace()
                        .collect::<Vec<_>>()
                        .join(" ");
                    self.input.insert_str(flat);
                }
            }
            Event::Resize(w, h) => self.size = Rect::new(0, 0, w, h),
            Event::Tick => {
                self.ticks += 1;
                self.read_ahead_if_paused(Instant::now());
            }
            Event::Worker(m) => self.worker(m),
            Event::Document(result) => {
                if let Some(doc) = &mut self.doc {
                    match result {
                        Ok(lines) => {
                            let at = doc.highlight.first().map_or(doc.passage.0, |h| h.0);
                            doc.scroll =
                                at.saturating_sub(lines.first_line).saturating_sub(3) as usize;
                            doc.lines = Some(lines);
                        }
                        Err(e) => doc.error = Some(e),
                    }
                }
            }
            Event::Status(s) => self.status = Some(s),
        }
    }

    fn key(&mut self, k: KeyEvent) {
        let interrupt = keymap::lookup(Scope::Global, &k) == Some(Command::Interrupt);
        if !interrupt {
            self.quit_armed = false;
        }
        if self.help {
            // ↑/↓ and the page keys scroll the help; anything else closes it.
            match k.code {
                KeyCode::Up | KeyCode::Char('k') => {
                    self.help_scroll = self.help_scroll.saturating_sub(1);
                }
                KeyCode::Down | KeyCode::Char('j') => self.help_scroll += 1,
                KeyCode::PageUp => self.help_scroll = self.help_scroll.saturating_sub(10),
                KeyCode::PageDown => self.help_scroll += 10,
                _ => {
                    self.help = false;
                    if interrupt {
                        self.run(Command::Interrupt);
                    }
                }
            }
            return;
        }
        if self.doc.is_some() {
            if let Some(c) = keymap::lookup(Scope::Document, &k) {
                return self.run(c);
            }
            if let Some(c @ (Command::Interrupt | Command::PageUp | Command::PageDown)) =
                keymap::lookup(Scope::Global, &k)
            {
                self.run(c);
            }
            return;
        }
        if self.history_search.is_some() && self.focus == Focus::Input {
            return self.history_search_key(k);
        }
        if let Some(c) = keymap::lookup(Scope::Global, &k) {
            return self.run(c);
        }
        match self.focus {
            Focus::Input => {
                if let Some(c) = keymap::lookup(Scope::Input, &k) {
                    return self.run(c);
                }
                if let KeyCode::Char(c) = k.code {
                    if !c.is_control()
                        && !k
                            .modifiers
                            .intersects(KeyModifiers::CONTROL | KeyModifiers::ALT)
                    {
                        self.history.reset();
                        self.input.insert_char(c);
                    }
                }
            }
            Focus::Answer | Focus::Sources => {
                if self.focus == Focus::Sources {
                    if let Some(c) = keymap::lookup(Scope::Sources, &k) {
                        return self.run(c);
                    }
                }
                if let Some(c) = keymap::lookup(Scope::Panes, &k) {
                    return self.run(c);
                }
                // Typing in a pane goes to the question box.
                if let KeyCode::Char(c) = k.code {
                    if !c.is_control()
                        && !k
                            .modifiers
                            .intersects(KeyModifiers::CONTROL | KeyModifiers::ALT)
                    {
                        self.focus = Focus::Input;
                        self.input.insert_char(c);
                    }
                }
            }
        }
    }

    fn history_search_key(&mut self, k: KeyEvent) {
        let Some((query, at)) = self.history_search.clone() else {
            return;
        };
        match (k.code, keymap::lookup(Scope::Input, &k)) {
            (_, Some(Command::HistorySearch)) => {
                let found = self.history.search(&query, at).map(|(i, _)| i);
                match found {
                    Some(i) => self.history_search = Some((query, Some(i))),
                    None => self.status = Some("no older match in the history".into()),
                }
            }
            (KeyCode::Enter, _) => {
                let text = at
                    .and_then(|_| self.history.search(&query, at.map(|i| i + 1)))
                    .map(|(_, e)| e.to_owned());
                self.history_search = None;
                if let Some(t) = text {
                    self.reset_input(&t);
                }
            }
            (KeyCode::Esc, _) => self.history_search = None,
            (KeyCode::Backspace, _) => {
                let mut q = query;
                q.pop();
                let found = self.history.search(&q, None).map(|(i, _)| i);
                self.history_search = Some((q, found));
            }
            (KeyCode::Char(c), _)
                if !k
                    .modifiers
                    .intersects(KeyModifiers::CONTROL | KeyModifiers::ALT) =>
            {
                let q = query + &c.to_string();
                let found = self.history.search(&q, None).map(|(i, _)| i);
                self.history_search = Some((q, found));
            }
            _ => {
                if keymap::lookup(Scope::Global, &k) == Some(Command::Interrupt) {
                    self.history_search = None;
                    self.run(Command::Interrupt);
                }
            }
        }
    }

    /// Runs one command.
    pub fn run(&mut self, c: Command) {
        match c {
            Command::Submit => self.submit(),
            Command::ToggleAskSearch => {
                self.ask_mode = match self.ask_mode {
                    AskMode::Ask => AskMode::Search,
                    AskMode::Search => AskMode::Ask,
                };
                let text = self.input_text();
                self.reset_input(&text);
                self.status = Some(match self.ask_mode {
                    AskMode::Ask => "ask mode: questions are answered by the model".into(),
                    AskMode::Search => "search mode: passages only, no model".into(),
                });
            }
            Command::HistoryPrev => {
                let current = self.input_text();
                if let Some(e) = self.history.older(&current).map(str::to_owned) {
                    self.reset_input(&e);
                }
            }
            Command::HistoryNext => {
                if let Some(e) = self.history.newer().map(str::to_owned) {
                    self.reset_input(&e);
                }
            }
            Command::HistorySearch => {
                self.history_search = Some((String::new(), None));
            }
            Command::Edit(e) => self.edit(e),
            Command::FocusNext | Command::FocusPrev => {
                let order = [Focus::Input, Focus::Answer, Focus::Sources];
                let i = order.iter().position(|f| *f == self.focus).unwrap_or(0);
                let step = if c == Command::FocusNext { 1 } else { 2 };
                self.focus = order[(i + step) % 3];
            }
            Command::NextCitation | Command::PrevCitation => {
                self.step_citation(c == Command::NextCitation);
            }
            Command::CopyAnswer => match self.turns.last() {
                Some(t) if !t.shown.is_empty() || t.answer.is_some() || !t.hits.is_empty() => {
                    let md = turn_markdown(t);
                    self.status = Some(format!(
                        "copied the answer and its sources to the clipboard ({} bytes, OSC 52)",
                        md.len()
                    ));
                    self.effects.push(Effect::Copy(md));
                }
                _ => self.status = Some("nothing to copy yet".into()),
            },
            Command::CopyCode => {
                let answer = self
                    .turns
                    .last()
                    .and_then(|t| t.answer.as_deref())
                    .filter(|a| a.abstained.is_none());
                match answer.and_then(|a| code_of(&a.answer)) {
                    Some(code) => {
                        self.status = Some(format!(
                            "copied the answer's code to the clipboard ({} lines, OSC 52)",
                            code.lines().count()
                        ));
                        self.effects.push(Effect::Copy(code));
                    }
                    None if answer.is_some() => {
                        self.status = Some("the answer holds no code (y copies all of it)".into());
                    }
                    None => self.status = Some("nothing to copy yet".into()),
                }
            }
            Command::CopyPassage => {
                let rows = self.rows();
                match rows.get(self.selected) {
                    Some(r) => {
                        let text: Vec<&str> = r.excerpts.iter().map(|(t, _)| t.as_str()).collect();
                        let md = format!(
                            "> {}\n\n— {}\n",
                            text.join("\n…\n").replace('\n', "\n> "),
                            location(&r.doc, r.page, r.lines, &r.heading)
                        );
                        self.status = Some(format!(
                            "copied passage [{}] to the clipboard (OSC 52)",
                            r.number
                        ));
                        self.effects.push(Effect::Copy(md));
                    }
                    None => self.status = Some("no passage to copy".into()),
                }
            }
            Command::CycleModel => self.cycle_model(),
            Command::CycleMode => {
                self.mode = match self.mode {
                    Mode::Hybrid => Mode::Bm25,
                    Mode::Bm25 => Mode::Dense,
                    Mode::Dense => Mode::Hybrid,
                };
                self.status = Some(format!(
                    "retrieval mode: {} (r asks the last question again)",
                    mode_name(self.mode)
                ));
            }
            Command::Reask => match self.turns.last() {
                Some(t) => {
                    let (q, meant, kind) = (t.question.clone(), t.meant.clone(), t.kind);
                    self.send(q, meant, kind);
                }
                None => self.status = Some("no question to ask again".into()),
            },
            Command::ReaskAsTyped => match self.turns.last() {
                Some(t) if t.meant.is_some() => {
                    let (q, kind) = (t.question.clone(), t.kind);
                    self.send(q, None, kind);
                }
                Some(_) => self.status = Some("the last question was asked as typed".into()),
                None => self.status = Some("no question to ask again".into()),
            },
            Command::Save => {
                if self.turns.is_empty() {
                    self.status = Some("nothing to save yet".into());
                } else {
                    let md = session_markdown(&self.turns);
                    self.effects.push(Effect::Save(md));
                }
            }
            Command::Cancel => {
                if self.doc.is_some() {
                    self.doc = None;
                } else if self.history_search.is_some() {
                    self.history_search = None;
                } else if !self.cancel() {
                    self.focus = Focus::Input;
                }
            }
            Command::Interrupt => {
                if self.cancel() {
                    self.quit_armed = true;
                    self.status = Some("cancelled; Ctrl-C again quits".into());
                } else if self.quit_armed {
                    self.quit = true;
                } else {
                    self.quit_armed = true;
                    self.status = Some("press Ctrl-C again to quit".into());
                }
            }
            Command::Quit => {
                if self.input_text().trim().is_empty() {
                    self.quit = true;
                } else {
                    self.status = Some(
                        "the question box holds a draft: clear it, or press Ctrl-C twice, to quit"
                            .into(),
                    );
                }
            }
            Command::Help => {
                self.help = true;
                self.help_scroll = 0;
            }
            Command::OpenDocument => self.open_document(),
            Command::OpenEditor => self.open_editor(),
            Command::Up
            | Command::Down
            | Command::PageUp
            | Command::PageDown
            | Command::Top
            | Command::Bottom => {
                self.scroll(c);
            }
            Command::Close => self.doc = None,
        }
    }

    fn edit(&mut self, e: Edit) {
        self.history.reset();
        let t = &mut self.input;
        match e {
            Edit::Left => t.move_cursor(CursorMove::Back),
            Edit::Right => t.move_cursor(CursorMove::Forward),
            Edit::Home => t.move_cursor(CursorMove::Head),
            Edit::End => t.move_cursor(CursorMove::End),
            Edit::WordLeft => t.move_cursor(CursorMove::WordBack),
            Edit::WordRight => t.move_cursor(CursorMove::WordForward),
            Edit::DeleteBack => {
                t.delete_char();
            }
            Edit::DeleteForward => {
                t.delete_next_char();
            }
            Edit::DeleteWordBack => {
                t.delete_word();
            }
            Edit::DeleteWordForward => {
                t.delete_next_word();
            }
            Edit::KillToStart => {
                t.delete_line_by_head();
            }
            Edit::KillToEnd => {
                t.delete_line_by_end();
            }
            Edit::Yank => {
                t.paste();
            }
            Edit::Undo => {
                t.undo();
            }
        }
    }

    /// Cancels the running turn; whether there was one.
    fn cancel(&mut self) -> bool {
        let Some(t) = self.turns.last_mut() else {
            return false;
        };
        if !matches!(t.state, TurnState::Waiting | TurnState::Streaming) {
            return false;
        }
        t.state = TurnState::Cancelled;
        self.effects.push(Effect::Cancel);
        true
    }

    /// While a question is being written and the typing pauses, asks the worker to read its
    /// sources ahead ([`Request::ReadAhead`]), so that the answer comes sooner when it is sent.
    /// Only when the model is ready and nothing else runs; once per draft.
    fn read_ahead_if_paused(&mut self, now: Instant) {
        let text = self.input_text().trim().to_owned();
        if text != self.draft.0 {
            self.draft = (text, now);
            return;
        }
        let idle = self.running().is_none()
            && self.ingest.is_none()
            && matches!(self.model_state, ModelState::Ready(_))
            && matches!(
                self.kb_state,
                KbState::Ready { .. } | KbState::PacksOnly { .. }
            );
        if self.ask_mode != AskMode::Ask
            || !idle
            || now.duration_since(self.draft.1) < READ_AHEAD_PAUSE
            || text == self.read_ahead
            || text.starts_with('/')
            || text.split_whitespace().count() < 3
        {
            return;
        }
        self.read_ahead.clone_from(&text);
        let draft = self.leaning_on_the_last(&text).unwrap_or(text);
        self.effects.push(Effect::Send(Request::ReadAhead {
            draft,
            options: self.ask_options(),
        }));
    }

    /// The settings questions are asked with.
    fn ask_options(&self) -> AskOptions {
        AskOptions {
            mode: self.mode,
            ..AskOptions::default()
        }
    }

    fn submit(&mut self) {
        let text = self.input_text().trim().to_owned();
        if text.is_empty() {
            return;
        }
        if let Some(rest) = text.strip_prefix("/add") {
            let paths: Vec<PathBuf> = rest.split_whitespace().map(expand_home).collect();
            if paths.is_empty() {
                self.status = Some("/add needs a file or folder: /add ~/notes".into());
                return;
            }
            if self.ingest.is_some() {
                self.status = Some("an ingest is already running".into());
                return;
            }
            self.history.push(&text);
            self.reset_input("");
            self.ingest = Some(IngestState::default());
            self.status = Some(format!(
                "adding {}…",
                paths
                    .iter()
                    .map(|p| p.display().to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
            self.effects.push(Effect::Send(Request::Add(paths)));
            return;
        }
        self.history.push(&text);
        self.reset_input("");
        self.status = None;
        let meant = self.leaning_on_the_last(&text);
        self.send(text, meant, self.ask_mode);
    }

    /// `question` written out to stand on its own when it leans on the last question asked
    /// ("What about Arc?", "Is it thread safe?"): `None` when it stands on its own already.
    fn leaning_on_the_last(&self, question: &str) -> Option<String> {
        let last = self.turns.last()?;
        cairn_engine::follow_up(last.asked(), question)
    }

    /// Sends `question` (asked as `meant`, when given) as a new turn.
    fn send(&mut self, question: String, meant: Option<String>, kind: AskMode) {
        // A new question replaces a running one.
        self.cancel();
        self.next_id += 1;
        let id = self.next_id;
        let asked = meant.clone().unwrap_or_else(|| question.clone());
        let request = match kind {
            AskMode::Ask => Request::Ask {
                id,
                question: asked,
                options: self.ask_options(),
            },
            AskMode::Search => Request::Search {
                id,
                query: asked,
                options: SearchOptions {
                    mode: self.mode,
                    k: 10,
                    ..SearchOptions::default()
                },
            },
        };
        if kind == AskMode::Ask && self.model_state == ModelState::Loading {
            self.status = Some(
                "the model is still loading; the question will be answered when it is ready".into(),
            );
        }
        self.turns.push(Turn {
            id,
            question,
            meant,
            kind,
            model: self.model.clone(),
            state: TurnState::Waiting,
            // Asks quote their answer (`AskOptions::default()`): shown once checked.
            stream: if kind == AskMode::Ask {
                AnswerStream::quoted()
            } else {
                AnswerStream::new()
            },
            shown: String::new(),
            context: None,
            hits: Vec::new(),
            gates: None,
            answer: None,
            tokens: 0,
            sent: Instant::now(),
            first_token: None,
            last_token: None,
            search_ms: None,
        });
        self.answer_scroll = None;
        self.selected = 0;
        self.passage_scroll = 0;
        self.effects.push(Effect::Send(request));
    }

    fn cycle_model(&mut self) {
        if self.models.is_empty() {
            self.status = Some("no catalog model is installed\nhint: cairn models pull".into());
            return;
        }
        if self.model_state == ModelState::Loading {
            self.status = Some("a model is loading; wait for it".into());
            return;
        }
        let i = self.models.iter().position(|m| *m == self.model);
        let next = self.models[i.map_or(0, |i| (i + 1) % self.models.len())].clone();
        if next == self.model {
            self.status = Some(format!("{next} is the only installed model"));
            return;
        }
        self.model.clone_from(&next);
        self.model_state = ModelState::Loading;
        self.status = Some(format!("loading {next}… (r asks the last question again)"));
        self.effects.push(Effect::Send(Request::LoadModel(next)));
    }

    fn worker(&mut self, m: Msg) {
        match m {
            Msg::Opened {
                own,
                documents,
                chunks,
                sources,
                packs,
            } => {
                self.kb_state = if own {
                    KbState::Ready { documents, chunks }
                } else {
                    KbState::PacksOnly { documents, chunks }
                };
                self.sources = sources;
                self.packs = packs;
            }
            Msg::NoKnowledgeBase => self.kb_state = KbState::Missing,
            Msg::ModelLoading(id) => {
                self.model = id;
                self.model_state = ModelState::Loading;
            }
            Msg::ModelReady { id, name, secs } => {
                self.model = id;
                self.model_state = ModelState::Ready(name.clone());
                if self
                    .status
                    .as_deref()
                    .is_some_and(|s| s.starts_with("loading "))
                {
                    self.status = Some(format!("{name} loaded in {secs:.1} s"));
                }
            }
            Msg::Context { id, context } => {
                if let Some(t) = self.turn_mut(id) {
                    t.stream.set_context(&context);
                    t.context = Some(context);
                }
            }
            Msg::Retrieved { id, hits, gates } => {
                if let Some(t) = self.turn_mut(id) {
                    t.hits = hits;
                    t.gates = Some(gates);
                }
            }
            Msg::Token { id, piece } => {
                if let Some(t) = self.turn_mut(id) {
                    if t.state == TurnState::Cancelled {
                        return;
                    }
                    let now = Instant::now();
                    t.first_token.get_or_insert(now);
                    t.last_token = Some(now);
                    t.tokens += 1;
                    t.state = TurnState::Streaming;
                    t.stream.push(&piece);
                    t.shown = t.stream.shown(false);
                }
            }
            Msg::Answered { id, answer } => {
                if let Some(t) = self.turn_mut(id) {
                    if t.state != TurnState::Cancelled {
                        t.state = TurnState::Done;
                    }
                    // The answer's context is the last word: the engine may cite a source
                    // of its own (the part of a list on the next page of a PDF).
                    t.stream.set_context(&answer.context);
                    t.context = Some(answer.context.clone());
                    if t.state == TurnState::Done {
                        t.stream.settle(&answer);
                    }
                    // The gates as the answer left them (an overruling self-check is known
                    // only now).
                    t.gates = Some(answer.gates.clone());
                    t.shown = if answer.abstained.is_some() && t.state == TurnState::Done {
                        String::new()
                    } else {
                        t.stream.shown(true)
                    };
                    t.answer = Some(answer);
                }
                self.select_first_cited();
            }
            Msg::Found { id, hits, ms } => {
                if let Some(t) = self.turn_mut(id) {
                    t.hits = hits;
                    t.search_ms = Some(ms);
                    t.state = TurnState::Done;
                }
            }
            Msg::ModelFailed(error) => {
                self.model_state = ModelState::Failed(sanitize(&error));
                self.status = None;
            }
            Msg::OpenFailed(error) => self.kb_state = KbState::Failed(sanitize(&error)),
            Msg::Failed { id, error } => {
                let error = sanitize(&error);
                if let Some(t) = id.and_then(|id| self.turn_mut(id)) {
                    t.state = TurnState::Failed(error);
                } else {
                    self.ingest = None;
                    self.status = Some(error);
                }
            }
            Msg::Ingest(i) => {
                let state = self.ingest.get_or_insert_with(IngestState::default);
                match i {
                    Ingest::Files(n) => state.total = n,
                    Ingest::File(key, skipped) => {
                        state.done += 1;
                        state.current = sanitize(&key);
                        if let Some(s) = skipped {
                            state.skipped.push(sanitize(&s));
                        }
                    }
                    Ingest::Embedded(n) => state.embedded = n,
                    Ingest::Done(summary) => {
                        let skipped = state.skipped.len();
                        self.ingest = None;
                        self.status = Some(if skipped > 0 {
                            format!("{summary} (see `cairn status` for the skipped files)")
                        } else {
                            summary
                        });
                    }
                }
            }
        }
    }

    fn turn_mut(&mut self, id: u64) -> Option<&mut Turn> {
        self.turns.iter_mut().rev().find(|t| t.id == id)
    }

    /// The sources pane's rows for the latest turn.
    pub fn rows(&self) -> Vec<SourceRow> {
        self.turns.last().map(source_rows).unwrap_or_default()
    }

    fn select_first_cited(&mut self) {
        let rows = self.rows();
        if let Some(i) = rows.iter().position(|r| !r.cited.is_empty()) {
            self.selected = i;
            self.passage_scroll = 0;
        }
    }

    fn step_citation(&mut self, forward: bool) {
        let rows = self.rows();
        let cited: Vec<usize> = rows
            .iter()
            .enumerate()
            .filter(|(_, r)| !r.cited.is_empty())
            .map(|(i, _)| i)
            .collect();
        let pick = if forward {
            cited.iter().find(|&&i| i > self.selected).or(cited.first())
        } else {
            cited
                .iter()
                .rev()
                .find(|&&i| i < self.selected)
                .or(cited.last())
        };
        match pick {
            Some(&i) => {
                self.selected = i;
                self.passage_scroll = 0;
                self.focus = Focus::Sources;
                self.status = Some(format!("source [{}]", rows[i].number));
            }
            None => self.status = Some("the answer cites no source".into()),
        }
    }

    /// The file behind a document key, from the knowledge base's sources.
    pub fn resolve(&self, doc: &str) -> Option<PathBuf> {
        cairn_engine::file_of(&self.sources, doc)
    }

    fn open_document(&mut self) {
        let rows = self.rows();
        let Some(r) = rows.get(self.selected) else {
            self.status = Some("no source selected".into());
            return;
        };
        let title = location(&r.doc, r.page, r.lines, &r.heading);
        let path = self.resolve(&r.doc);
        let mut doc = DocView {
            title,
            path: path.clone().unwrap_or_default(),
            page: r.page,
            lines: None,
            error: None,
            highlight: r.cited.clone(),
            passage: r.lines,
            scroll: 0,
        };
        if let Some(p) = path {
            self.effects.push(Effect::LoadDocument(p, r.page));
        } else {
            // The file is gone or the knowledge base was moved: show the stored passage.
            doc.error = Some(format!(
                "{} is not on this disk (the knowledge base may have been moved); showing the stored passage",
                sanitize(&r.doc)
            ));
            let mut lines = Vec::new();
            let first = r.excerpts.first().map_or(r.lines.0, |e| e.1);
            for (text, _) in &r.excerpts {
                lines.extend(text.lines().map(|l| sanitize(&l.replace('\t', "    "))));
            }
            doc.lines = Some(cairn_engine::DocumentLines {
                lines,
                first_line: first,
            });
        }
        self.doc = Some(doc);
    }

    fn open_editor(&mut self) {
        let (path, page, line) = if let Some(d) = &self.doc {
            (
                Some(d.path.clone()).filter(|p| p.is_file()),
                d.page,
                d.highlight.first().map_or(d.passage.0, |h| h.0),
            )
        } else {
            let rows = self.rows();
            match rows.get(self.selected) {
                Some(r) => (
                    self.resolve(&r.doc),
                    r.page,
                    r.cited.first().map_or(r.lines.0, |c| c.0),
                ),
                None => (None, None, 1),
            }
        };
        match path {
            Some(p) => self.effects.push(Effect::OpenEditor(p, page, line)),
            None => self.status = Some("the file is not on this disk".into()),
        }
    }

    fn scroll(&mut self, c: Command) {
        let page = usize::from(self.size.height.saturating_sub(6)).max(1);
        if let Some(doc) = &mut self.doc {
            let max = doc
                .lines
                .as_ref()
                .map_or(0, |l| l.lines.len().saturating_sub(1));
            doc.scroll = step(doc.scroll, c, page, max);
            return;
        }
        match self.focus {
            Focus::Sources => {
                let n = self.rows().len();
                match c {
                    Command::Up | Command::Down | Command::Top | Command::Bottom => {
                        self.selected = step(self.selected, c, 1, n.saturating_sub(1));
                        self.passage_scroll = 0;
                    }
                    _ => self.passage_scroll = step(self.passage_scroll, c, page / 2, 10_000),
                }
            }
            Focus::Answer | Focus::Input => {
                let areas = view::areas(self);
                let total =
                    view::conversation_lines(self, areas.answer.width.saturating_sub(2)).len();
                let height = usize::from(areas.answer.height.saturating_sub(2));
                let max = total.saturating_sub(height);
                let at = self.answer_scroll.unwrap_or(max).min(max);
                let next = step(at, c, page, max);
                self.answer_scroll = (next < max).then_some(next);
            }
        }
    }

    fn mouse(&mut self, m: MouseEvent) {
        let areas = view::areas(self);
        let at = Position::new(m.column, m.row);
        let pane = if areas.answer.contains(at) {
            Some(Focus::Answer)
        } else if areas.sources.contains(at) {
            Some(Focus::Sources)
        } else if areas.input.contains(at) {
            Some(Focus::Input)
        } else {
            None
        };
        match m.kind {
            MouseEventKind::ScrollUp | MouseEventKind::ScrollDown => {
                let up = m.kind == MouseEventKind::ScrollUp;
                if self.doc.is_some() {
                    self.scroll(if up { Command::Up } else { Command::Down });
                    return;
                }
                let Some(p) = pane else { return };
                let saved = self.focus;
                self.focus = p;
                if p == Focus::Sources {
                    self.passage_scroll = step(
                        self.passage_scroll,
                        if up { Command::Up } else { Command::Down },
                        1,
                        10_000,
                    );
                } else {
                    for _ in 0..3 {
                        self.scroll(if up { Command::Up } else { Command::Down });
                    }
                }
                self.focus = saved;
            }
            MouseEventKind::Down(MouseButton::Left) => {
                if self.doc.is_some() || self.help {
                    return;
                }
                let Some(p) = pane else { return };
                self.focus = p;
                if p == Focus::Sources {
                    if let Some(i) = view::source_at(self, areas.sources, at) {
                        self.selected = i;
                        self.passage_scroll = 0;
                    }
                }
            }
            _ => {}
        }
    }
}

fn step(at: usize, c: Command, page: usize, max: usize) -> usize {
    match c {
        Command::Up => at.saturating_sub(1),
        Command::Down => (at + 1).min(max),
        Command::PageUp => at.saturating_sub(page),
        Command::PageDown => (at + page).min(max),
        Command::Top => 0,
        Command::Bottom => max,
        _ => at,
    }
}

fn expand_home(p: &str) -> PathBuf {
    match p.strip_prefix("~/") {
        Some(rest) => dirs::home_dir().map_or_else(|| PathBuf::from(p), |h| h.join(rest)),
        None if p == "~" => dirs::home_dir().unwrap_or_else(|| PathBuf::from(p)),
        None => PathBuf::from(p),
    }
}

/// The retrieval mode's name.
#[must_use]
pub fn mode_name(m: Mode) -> &'static str {
    match m {
        Mode::Hybrid => "hybrid",
        Mode::Bm25 => "bm25",
        Mode::Dense => "dense",
    }
}

/// The rows of a turn's sources pane: the numbered sources of an answer, or a search's hits.
#[must_use]
pub fn source_rows(t: &Turn) -> Vec<SourceRow> {
    let raised = |text: &str| raised_because(t.asked(), text);
    if t.kind == AskMode::Search {
        return t
            .hits
            .iter()
            .map(|h| {
                let c = &h.chunk;
                SourceRow {
                    number: h.rank,
                    doc: c.doc.clone(),
                    page: c.page,
                    lines: c.lines,
                    heading: c.heading.clone(),
                    excerpts: vec![(c.text.clone(), c.lines.0)],
                    bm25: h.fused.bm25.map(|l| (l.rank, l.score)),
                    dense: h.fused.dense.map(|l| (l.rank, l.score)),
                    fused: Some((h.rank, h.fused.score)),
                    defines: h.fused.defines.then(|| raised(&c.text)),
                    gate: "search result (no gates: the model is not asked)".into(),
                    cited: Vec::new(),
                    also: h.also.clone(),
                }
            })
            .collect();
    }
    let Some(context) = &t.context else {
        return Vec::new();
    };
    let best = context.sources.first().map_or(0.0, |s| s.score);
    context
        .sources
        .iter()
        .map(|s| {
            // The hit behind the passage: its legs' ranks and scores.
            let hit = t
                .hits
                .iter()
                .filter(|h| s.chunks.contains(&h.fused.id))
                .min_by_key(|h| h.rank);
            // A source behind no hit was read on to by the engine, after the model answered.
            let read_on = s.chunks.is_empty();
            let gate = if read_on {
                "read on for the list the answer cites, which goes on here; not given to the model"
                    .to_owned()
            } else if s.number == 1 {
                "best passage: given whole".to_owned()
            } else {
                let share = t.gates.as_ref().map_or(0.8, |g| g.min_relative_score);
                format!(
                    "score {:.3} ≥ {share:.2} × best {best:.3}: given{}",
                    s.score,
                    if s.whole {
                        " whole"
                    } else {
                        " in part (budget)"
                    }
                )
            };
            SourceRow {
                number: s.number,
                doc: s.doc.clone(),
                page: s.page,
                lines: s.lines,
                heading: s.heading.clone(),
                excerpts: s
                    .excerpts
                    .iter()
                    .map(|e| (e.text.clone(), e.lines.0))
                    .collect(),
                bm25: hit.and_then(|h| h.fused.bm25.map(|l| (l.rank, l.score))),
                dense: hit.and_then(|h| h.fused.dense.map(|l| (l.rank, l.score))),
                fused: (!read_on).then_some((s.rank, s.score)),
                defines: hit
                    .filter(|h| h.fused.defines)
                    .map(|h| raised(&h.chunk.text)),
                gate,
                cited: t
                    .answer
                    .as_ref()
                    .map(|a| a.cited_lines(s.number))
                    .unwrap_or_default(),
                also: s.also.clone(),
            }
        })
        .collect()
}

/// The code in an answer, to copy: the lines inside its fenced code blocks (of a shell
/// session, the commands alone: the lines after a `$ ` prompt, without it), else its inline
/// `code` spans, one a line. `None` when it has neither.
#[must_use]
pub fn code_of(answer: &str) -> Option<String> {
    let mut lines: Vec<&str> = Vec::new();
    let mut inside = false;
    for line in answer.lines() {
        if cairn_engine::is_fence(line) {
            inside = !inside;
        } else if inside {
            lines.push(line);
        }
    }
    if lines.iter().any(|l| l.starts_with("$ ")) {
        lines = lines.iter().filter_map(|l| l.strip_prefix("$ ")).collect();
    }
    if lines.is_empty() {
        // Inline spans: between pairs of single backticks.
        lines = answer
            .split('`')
            .skip(1)
            .step_by(2)
            .filter(|s| !s.trim().is_empty())
            .collect();
    }
    let code = lines.join("\n");
    (!code.trim().is_empty()).then_some(code)
}

/// One turn as Markdown: the question, the answer with its markers, the cited sources with
/// the cited sentences quoted.
#[must_use]
pub fn turn_markdown(t: &Turn) -> String {
    let mut md = format!("## {}\n\n", t.question.replace('\n', " "));
    if let Some(meant) = &t.meant {
        let _ = writeln!(md, "*Taken as:* {}\n", meant.replace('\n', " "));
    }
    match (&t.state, &t.answer) {
        (TurnState::Failed(e), _) => {
            let _ = writeln!(md, "*Failed:* {e}");
        }
        (_, Some(a)) if a.abstained.is_some() && t.state == TurnState::Done => {
            let _ = writeln!(
                md,
                "*Not found in the knowledge base* ({}).",
                a.why_withheld().unwrap_or_default()
            );
        }
        _ if t.kind == AskMode::Search => {
            for h in &t.hits {
                let c = &h.chunk;
                let _ = writeln!(
                    md,
                    "{}. {} — {}",
                    h.rank,
                    location(&c.doc, c.page, c.lines, &c.heading),
                    snippet(&c.text, 200)
                );
            }
        }
        _ => {
            md.push_str(&t.shown);
            if t.state == TurnState::Cancelled {
                md.push_str(" *(cancelled)*");
            }
            md.push('\n');
        }
    }
    if let Some(a) = &t.answer {
        let cited = a.cited_sources();
        let mut first = true;
        for s in a
            .context
            .sources
            .iter()
            .filter(|s| cited.contains(&s.number))
        {
            if first {
                md.push_str("\n**Sources**\n\n");
                first = false;
            }
            let lines = a.cited_lines(s.number);
            let _ = writeln!(
                md,
                "- [{}] {}",
                s.number,
                location(&s.doc, s.page, s.lines, &s.heading)
            );
            for q in cairn_engine::answer::cited_sentences(s, &lines) {
                for line in sanitize(&q).lines() {
                    let _ = writeln!(md, "  > {line}");
                }
            }
        }
    }
    md
}

/// The whole session as Markdown.
#[must_use]
pub fn session_markdown(turns: &[Turn]) -> String {
    let mut md = String::from("# cairn session\n\n");
    for t in turns {
        md.push_str(&turn_markdown(t));
        md.push('\n');
    }
    md
}

/// Tokens per second of a streaming turn, and its time to first token.
#[must_use]
pub fn rates(t: &Turn, now: Instant) -> (Option<f64>, Option<Duration>) {
    let ttft = t.first_token.map(|f| f.duration_since(t.sent));
    let rate = match (t.first_token, t.tokens) {
        (Some(f), n) if n > 1 => {
            let end = if t.state == TurnState::Streaming {
                now
            } else {
                t.last_token.unwrap_or(now)
            };
            let secs = end.duration_since(f).as_secs_f64();
            (secs > 0.0).then(|| (n - 1) as f64 / secs)
        }
        _ => None,
    };
    (rate, ttft)
}

/// The directory name of the knowledge base, for the status line.
#[must_use]
pub fn kb_label(kb: &Path) -> String {
    sanitize(&kb.display().to_string())
}
