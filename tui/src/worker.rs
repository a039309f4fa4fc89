//! The worker thread: opens the knowledge base, loads models (on a thread of their own, so
//! search works meanwhile), retrieves, answers and ingests, and reports by message. The UI
//! thread never waits on it.

use std::ops::ControlFlow;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::Arc;
use std::time::Instant;

use cairn_engine::{
    chunk_options, search_shelves, AddOptions, AddProgress, Answer, AnswerSink, AskOptions,
    Context, Engine, FileOutcome, Gates, Hit, LoadedModel, MiniLm, PackReader, Reader,
    SearchOptions, Writer,
};

/// What the app asks of the worker.
#[derive(Debug)]
pub enum Request {
    /// Answer a question with the model.
    Ask {
        /// The question's id (a newer id replaces it).
        id: u64,
        /// The question.
        question: String,
        /// Its settings.
        options: AskOptions,
    },
    /// Search only.
    Search {
        /// The query's id.
        id: u64,
        /// The query.
        query: String,
        /// Its settings.
        options: SearchOptions,
    },
    /// Read ahead for a question still being written: its sources' part of the prompt is
    /// computed into the model's cache, so that asking it soon after answers sooner (exactly
    /// the same answer). Any later request stops it between passes.
    ReadAhead {
        /// The question box's text.
        draft: String,
        /// The settings the question will be asked with.
        options: AskOptions,
    },
    /// Load another model.
    LoadModel(String),
    /// Add files or folders to the knowledge base.
    Add(Vec<PathBuf>),
}

/// What the worker reports.
#[derive(Debug)]
pub enum Msg {
    /// The knowledge base is open and searchable (or, while there is none, the installed packs).
    Opened {
        /// Whether this is the user's own knowledge base; `false`: there is none yet, and the
        /// counts are the packs'.
        own: bool,
        /// Documents in it.
        documents: u64,
        /// Chunks in it.
        chunks: u64,
        /// Where its documents came from: (source name, path on disk).
        sources: Vec<cairn_engine::KbSource>,
        /// The packs searched with it.
        packs: Vec<String>,
    },
    /// There is no knowledge base at the chosen directory yet.
    NoKnowledgeBase,
    /// A model began to load.
    ModelLoading(String),
    /// The model is ready to answer.
    ModelReady {
        /// The id it was asked for by.
        id: String,
        /// The model's own name.
        name: String,
        /// Seconds it took.
        secs: f64,
    },
    /// The model could not be loaded (the message may end with a `hint:` line); search goes on.
    ModelFailed(String),
    /// The knowledge base or the embedder could not be opened.
    OpenFailed(String),
    /// The passages given to the model for question `id`.
    Context {
        /// The question.
        id: u64,
        /// The sources.
        context: Context,
    },
    /// The hits and checks behind question `id`'s context.
    Retrieved {
        /// The question.
        id: u64,
        /// The hits.
        hits: Vec<Hit>,
        /// The checks.
        gates: Gates,
    },
    /// A piece of question `id`'s answer.
    Token {
        /// The question.
        id: u64,
        /// The text.
        piece: String,
    },
    /// Question `id` is answered (or withheld, or cut short by a cancel).
    Answered {
        /// The question.
        id: u64,
        /// The answer.
        answer: Box<Answer>,
    },
    /// Search `id`'s hits.
    Found {
        /// The query.
        id: u64,
        /// The hits, best first.
        hits: Vec<Hit>,
        /// Milliseconds the search took.
        ms: f64,
    },
    /// Something failed; the message may end with a `hint:` line.
    Failed {
        /// The question it concerns, if any.
        id: Option<u64>,
        /// What failed.
        error: String,
    },
    /// Ingest progress.
    Ingest(Ingest),
}

/// Progress of adding files from inside the app.
#[derive(Debug, Clone, PartialEq)]
pub enum Ingest {
    /// Files to look at.
    Files(usize),
    /// One more file done (its key; why it was skipped, if it was).
    File(String, Option<String>),
    /// Chunks embedded so far.
    Embedded(usize),
    /// Done: a summary line.
    Done(String),
}

/// The installed packs to search beside the knowledge base: `(label, directory)`, and whether
/// one embedded with another model is searched by keywords only (else it is left out, with a
/// message).
#[derive(Clone, Debug, Default)]
pub struct PackChoice {
    /// `pack:NAME@VERSION` and the installed directory of each.
    pub packs: Vec<(String, PathBuf)>,
    /// Search a mismatched pack by keywords only.
    pub bm25_only_mismatched: bool,
}

/// The app's side of the worker.
pub struct Handle {
    tx: Sender<Request>,
    /// The question that may run; a cancel or a newer question changes it.
    current: Arc<AtomicU64>,
}

impl Handle {
    /// Sends a request; a question or search becomes the current one.
    pub fn send(&self, request: Request) {
        if let Request::Ask { id, .. } | Request::Search { id, .. } = &request {
            self.current.store(*id, Ordering::SeqCst);
        }
        // A worker that is gone has reported why; nothing to add here.
        let _ = self.tx.send(request);
    }

    /// Stops the running answer at its next token.
    pub fn cancel(&self) {
        self.current.store(0, Ordering::SeqCst);
    }
}

/// Starts the worker on `kb` with `model`; it reports through `report`.
///
/// # Panics
/// When the system cannot start a thread.
#[must_use]
pub fn spawn<E: From<Msg> + Send + 'static>(
    kb: PathBuf,
    model: String,
    packs: PackChoice,
    read: cairn_engine::ReadOptions,
    report: Sender<E>,
) -> Handle {
    let (tx, rx) = mpsc::channel();
    let current = Arc::new(AtomicU64::new(0));
    let handle = Handle {
        tx,
        current: Arc::clone(&current),
    };
    let report = move |m: Msg| {
        let _ = report.send(E::from(m));
    };
    std::thread::Builder::new()
        .name("cairn-worker".into())
        .spawn(move || {
            let mut w = Worker {
                kb,
                read,
                report: Box::new(report),
                current,
                arrivals: Arc::new(AtomicU64::new(0)),
                reader: None,
                embedder: None,
                pack_choice: packs,
                packs: Vec::new(),
                primary_pack: None,
                engine: None,
                model: None,
                waiting: None,
                model_error: None,
                loading: Arc::new(AtomicBool::new(false)),
            };
            w.run(rx, model);
        })
        .expect("a thread can be started");
    handle
}

/// What the worker thread holds.
struct Worker {
    kb: PathBuf,
    /// The limits per file of an add.
    read: cairn_engine::ReadOptions,
    report: Box<dyn Fn(Msg) + Send>,
    current: Arc<AtomicU64>,
    /// Requests relayed from the app so far ([`Inner::App`]).
    arrivals: Arc<AtomicU64>,
    reader: Option<Reader>,
    embedder: Option<MiniLm>,
    /// Which installed packs to search beside the knowledge base.
    pack_choice: PackChoice,
    /// The open packs, while no engine holds them.
    packs: Vec<PackReader>,
    /// While there is no knowledge base, the pack whose snapshot stands in for it (the primary
    /// reader): its label, and whether it is searched by keywords only.
    primary_pack: Option<(String, bool)>,
    engine: Option<Engine>,
    /// A loaded model waiting for a knowledge base.
    model: Option<LoadedModel>,
    /// A question asked before the model was ready.
    waiting: Option<Request>,
    /// Why the last model did not load.
    model_error: Option<String>,
    loading: Arc<AtomicBool>,
}

/// Internal: a model loaded on the loader thread, passed back as a request.
enum Inner {
    /// A request from the app, and its number in the order they came.
    App(Request, u64),
    Loaded(String, Result<Box<LoadedModel>, String>, f64),
}

impl Worker {
    fn run(&mut self, rx: Receiver<Request>, model: String) {
        // The model loads on its own thread from the start; the index opens here meanwhile.
        let (itx, irx) = mpsc::channel::<Inner>();
        self.start_loading(&itx, model);
        self.open();
        // Requests from the app are relayed into the one queue the loader also reports to.
        let relay = itx.clone();
        let arrivals = Arc::clone(&self.arrivals);
        std::thread::Builder::new()
            .name("cairn-relay".into())
            .spawn(move || {
                while let Ok(r) = rx.recv() {
                    // Counted as it comes, while the worker may be busy: a read-ahead stops when
                    // anything came after it.
                    let n = arrivals.fetch_add(1, Ordering::SeqCst) + 1;
                    if relay.send(Inner::App(r, n)).is_err() {
                        break;
                    }
                }
            })
            .expect("a thread can be started");
        while let Ok(item) = irx.recv() {
            match item {
                Inner::App(Request::LoadModel(m), _) => self.start_loading(&itx, m),
                Inner::App(Request::ReadAhead { draft, options }, n) => {
                    // A failed read-ahead costs only the time it saves: nothing is reported.
                    let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                        self.read_ahead(&draft, &options, n);
                    }));
                }
                Inner::App(r, _) => {
                    let id = match &r {
                        Request::Ask { id, .. } | Request::Search { id, .. } => Some(*id),
                        _ => None,
                    };
                    // A bug must not take the app down: the question fails, the app goes on.
                    let run = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                        self.handle(r);
                    }));
                    if let Err(p) = run {
                        (self.report)(Msg::Failed {
                            id,
                            error: crashed("answering", &*p),
                        });
                    }
                }
                Inner::Loaded(id, result, secs) => self.loaded(id, result, secs),
            }
        }
    }

    fn start_loading(&mut self, itx: &Sender<Inner>, model: String) {
        if self.loading.swap(true, Ordering::SeqCst) {
            (self.report)(Msg::Failed {
                id: None,
                error: "a model is already loading; try again when it is ready".into(),
            });
            return;
        }
        (self.report)(Msg::ModelLoading(model.clone()));
        let itx = itx.clone();
        let loading = Arc::clone(&self.loading);
        std::thread::Builder::new()
            .name("cairn-model".into())
            .spawn(move || {
                let t0 = Instant::now();
                let result = std::panic::catch_unwind(|| LoadedModel::load(&model))
                    .map_err(|p| crashed("loading the model", &*p))
                    .and_then(|r| r.map(Box::new).map_err(|e| e.to_string()));
                let _ = itx.send(Inner::Loaded(model, result, t0.elapsed().as_secs_f64()));
                loading.store(false, Ordering::SeqCst);
            })
            .expect("a thread can be started");
    }

    fn loaded(&mut self, id: String, result: Result<Box<LoadedModel>, String>, secs: f64) {
        match result {
            Err(error) => {
                self.model_error = Some(error.clone());
                (self.report)(Msg::ModelFailed(error));
                self.fail_waiting();
            }
            Ok(model) => {
                self.model_error = None;
                let name = model.generator.name().to_owned();
                // The previous model goes; its knowledge base and embedder stay.
                if let Some(mut engine) = self.engine.take() {
                    self.packs = std::mem::take(&mut engine.retrieval.packs);
                    let (reader, embedder) = engine.into_parts();
                    self.reader = Some(reader);
                    self.embedder = Some(embedder);
                }
                self.model = Some(*model);
                self.assemble();
                if self.engine.is_some() || self.model.is_some() {
                    (self.report)(Msg::ModelReady { id, name, secs });
                }
                if self.engine.is_some() {
                    if let Some(r) = self.waiting.take() {
                        self.handle(r);
                    }
                } else {
                    self.fail_waiting();
                }
            }
        }
    }

    /// Joins the knowledge base, the embedder and a loaded model into an engine when all three
    /// are there.
    fn assemble(&mut self) {
        if self.reader.is_none() || self.embedder.is_none() || self.model.is_none() {
            return;
        }
        let (reader, embedder, model) = (
            self.reader.take().expect("checked"),
            self.embedder.take().expect("checked"),
            self.model.take().expect("checked"),
        );
        // Priming can fail only on a broken model; then search keeps working without it.
        let reopen = self.kb.clone();
        match Engine::new(reader, embedder, model) {
            Ok(mut engine) => {
                engine.retrieval.packs = std::mem::take(&mut self.packs);
                if let Some((label, bm25_only)) = &self.primary_pack {
                    engine.retrieval.label = Some(label.clone());
                    engine.retrieval.bm25_only = *bm25_only;
                }
                self.engine = Some(engine);
            }
            Err(e) => {
                self.model_error = Some(e.to_string());
                (self.report)(Msg::ModelFailed(e.to_string()));
                self.embedder = MiniLm::load().ok();
                if self.primary_pack.take().is_some() {
                    // The packs were consumed with the engine; open them again.
                    self.packs.clear();
                    self.open();
                } else {
                    self.reader = Reader::open(&reopen).ok();
                }
            }
        }
    }

    /// Loads the embedder and opens the knowledge base.
    fn open(&mut self) {
        if self.embedder.is_none() && self.engine.is_none() {
            match MiniLm::load() {
                Ok(e) => self.embedder = Some(e),
                Err(e) => {
                    (self.report)(Msg::OpenFailed(e.to_string()));
                    return;
                }
            }
        }
        if !cairn_engine_has_kb(&self.kb) {
            if self.pack_choice.packs.is_empty() {
                (self.report)(Msg::NoKnowledgeBase);
            } else if self.primary_pack.is_none() {
                self.open_packs_alone();
            }
            return;
        }
        if self.primary_pack.take().is_some() {
            // The knowledge base exists now: it becomes the primary snapshot, and the pack that
            // stood in for it goes back among the packs (all are opened again below).
            if let Some(engine) = &mut self.engine {
                engine.retrieval.packs.clear();
                engine.retrieval.label = None;
                engine.retrieval.bm25_only = false;
            } else {
                self.packs.clear();
                self.reader = None;
            }
        }
        match Reader::open(&self.kb) {
            Ok(reader) => {
                if let Some(embedder) = &self.embedder {
                    if let Err(e) = cairn_engine::check_embedder(&reader, embedder) {
                        (self.report)(Msg::OpenFailed(e.to_string()));
                        return;
                    }
                }
                self.open_packs();
                self.report_opened(&reader);
                if let Some(engine) = &mut self.engine {
                    engine.retrieval.reader = reader;
                } else {
                    self.reader = Some(reader);
                    self.assemble();
                }
            }
            Err(e) => (self.report)(Msg::OpenFailed(e.to_string())),
        }
    }

    /// Takes a new snapshot of the knowledge base when another process (a `cairn add` in
    /// another terminal) has committed since the last one, so that questions see its files.
    /// The snapshot in use stays if the new one cannot be opened. While a pack stands in for
    /// a knowledge base that did not exist, one created since is opened.
    fn follow_commits(&mut self) {
        if self.primary_pack.is_some() {
            if cairn_engine_has_kb(&self.kb) {
                self.open();
            }
            return;
        }
        let stale = self.retrieval().is_some_and(|(r, _)| r.changed_on_disk());
        if !stale {
            return;
        }
        if let Ok(reader) = Reader::open(&self.kb) {
            self.report_opened(&reader);
            if let Some(engine) = &mut self.engine {
                engine.retrieval.reader = reader;
            } else {
                self.reader = Some(reader);
            }
        }
    }

    /// Fails a question that waited for a model that will not come (or for a knowledge base
    /// that is not there).
    fn fail_waiting(&mut self) {
        if let Some(Request::Ask { id, .. }) = self.waiting.take() {
            let error = self.why_no_engine();
            (self.report)(Msg::Failed {
                id: Some(id),
                error,
            });
        }
    }

    fn why_no_engine(&self) -> String {
        if let Some(e) = &self.model_error {
            format!("the model did not load: {e}\nhint: m switches to another installed model")
        } else if self.retrieval().is_none() {
            "there is no knowledge base to answer from\nhint: type /add PATH to add a folder".into()
        } else {
            "the model is not loaded\nhint: m loads one".into()
        }
    }

    /// With no knowledge base yet, searches the installed packs alone: the first stands in for
    /// the knowledge base until files are added.
    fn open_packs_alone(&mut self) {
        self.open_packs();
        let packs = match &mut self.engine {
            Some(engine) => &mut engine.retrieval.packs,
            None => &mut self.packs,
        };
        if packs.is_empty() {
            // Each pack that could not be opened has been reported.
            (self.report)(Msg::NoKnowledgeBase);
            return;
        }
        let first = packs.remove(0);
        self.primary_pack = Some((first.label.clone(), first.bm25_only));
        self.report_opened(&first.reader);
        if let Some(engine) = &mut self.engine {
            engine.retrieval.reader = first.reader;
            engine.retrieval.label = Some(first.label);
            engine.retrieval.bm25_only = first.bm25_only;
        } else {
            self.reader = Some(first.reader);
            self.assemble();
        }
    }

    /// Opens the chosen packs (once); one that cannot be used is reported and left out.
    fn open_packs(&mut self) {
        let Some(embedder) = self
            .embedder
            .as_ref()
            .or(self.engine.as_ref().map(|e| &e.retrieval.embedder))
        else {
            return;
        };
        let held = self
            .engine
            .as_ref()
            .map_or(self.packs.len(), |e| e.retrieval.packs.len());
        if held > 0 {
            return;
        }
        let mut packs = Vec::new();
        for (label, dir) in &self.pack_choice.packs {
            match PackReader::open(
                label.clone(),
                dir,
                embedder,
                self.pack_choice.bm25_only_mismatched,
            ) {
                Ok(p) => packs.push(p),
                Err(e) => (self.report)(Msg::Failed {
                    id: None,
                    error: format!("{label} is left out: {e}"),
                }),
            }
        }
        match &mut self.engine {
            Some(engine) => engine.retrieval.packs = packs,
            None => self.packs = packs,
        }
    }

    fn open_pack_readers(&self) -> &[PackReader] {
        self.engine
            .as_ref()
            .map_or(&self.packs, |e| &e.retrieval.packs)
    }

    /// The labels of the packs searched, the one standing in for the knowledge base first.
    fn pack_labels(&self) -> Vec<String> {
        let label = |name: &str, bm25_only: bool| {
            if bm25_only {
                format!("{name} (keywords only)")
            } else {
                name.to_owned()
            }
        };
        let primary = self.primary_pack.iter().map(|(l, b)| label(l, *b));
        primary
            .chain(
                self.open_pack_readers()
                    .iter()
                    .map(|p| label(&p.label, p.bm25_only)),
            )
            .collect()
    }

    /// Reports what `reader` (the primary snapshot) holds; while a pack stands in for the
    /// knowledge base, what all the packs hold.
    fn report_opened(&self, reader: &Reader) {
        let (mut documents, mut chunks, sources) = reader
            .status()
            .map(|s| (s.documents, s.chunks, s.sources))
            .unwrap_or_default();
        let own = self.primary_pack.is_none();
        if !own {
            for s in self
                .open_pack_readers()
                .iter()
                .filter_map(|p| p.reader.status().ok())
            {
                documents += s.documents;
                chunks += s.chunks;
            }
        }
        (self.report)(Msg::Opened {
            own,
            documents,
            chunks,
            sources: if own { sources } else { Vec::new() },
            packs: self.pack_labels(),
        });
    }

    fn retrieval(&self) -> Option<(&Reader, &MiniLm)> {
        if let Some(e) = &self.engine {
            return Some((&e.retrieval.reader, &e.retrieval.embedder));
        }
        Some((self.reader.as_ref()?, self.embedder.as_ref()?))
    }

    /// Reads ahead for `draft` (request number `n`) unless something came after it.
    fn read_ahead(&mut self, draft: &str, options: &AskOptions, n: u64) {
        let arrivals = Arc::clone(&self.arrivals);
        let stop = move || arrivals.load(Ordering::SeqCst) != n;
        if stop() || self.engine.is_none() {
            return;
        }
        self.follow_commits();
        if let Some(engine) = &mut self.engine {
            let _ = engine.read_ahead(draft, options, &stop);
        }
    }

    fn handle(&mut self, request: Request) {
        if matches!(request, Request::Search { .. } | Request::Ask { .. }) {
            self.follow_commits();
        }
        match request {
            Request::Search { id, query, options } => {
                if self.current.load(Ordering::SeqCst) != id {
                    return;
                }
                let Some((reader, embedder)) = self.retrieval() else {
                    (self.report)(Msg::Failed {
                        id: Some(id),
                        error: "the knowledge base is not open".into(),
                    });
                    return;
                };
                let (label, bm25_only) = self
                    .primary_pack
                    .as_ref()
                    .map_or((None, false), |(l, b)| (Some(l.as_str()), *b));
                let shelves =
                    cairn_engine::shelves(reader, label, bm25_only, self.open_pack_readers());
                let t0 = Instant::now();
                match search_shelves(&shelves, embedder, &query, &options) {
                    Ok(hits) => (self.report)(Msg::Found {
                        id,
                        hits,
                        ms: t0.elapsed().as_secs_f64() * 1e3,
                    }),
                    Err(e) => (self.report)(Msg::Failed {
                        id: Some(id),
                        error: e.to_string(),
                    }),
                }
            }
            Request::Ask {
                id,
                ref question,
                ref options,
            } => {
                if self.current.load(Ordering::SeqCst) != id {
                    return;
                }
                let Some(engine) = &mut self.engine else {
                    if self.loading.load(Ordering::SeqCst) {
                        // Answered when the model is ready.
                        self.waiting = Some(request);
                    } else {
                        let error = self.why_no_engine();
                        (self.report)(Msg::Failed {
                            id: Some(id),
                            error,
                        });
                    }
                    return;
                };
                let mut sink = Forward {
                    id,
                    report: &*self.report,
                    current: &self.current,
                };
                match engine.ask(question, options, &mut sink) {
                    Ok(answer) => (self.report)(Msg::Answered {
                        id,
                        answer: Box::new(answer),
                    }),
                    Err(e) => (self.report)(Msg::Failed {
                        id: Some(id),
                        error: e.to_string(),
                    }),
                }
            }
            Request::Add(paths) => self.add(&paths),
            Request::LoadModel(_) | Request::ReadAhead { .. } => {
                unreachable!("handled by the loop")
            }
        }
    }

    fn add(&mut self, paths: &[PathBuf]) {
        let embedder = match (&self.engine, &self.embedder) {
            (Some(e), _) => &e.retrieval.embedder,
            (None, Some(e)) => e,
            (None, None) => {
                (self.report)(Msg::Failed {
                    id: None,
                    error: "the embedder is not loaded\nhint: run `cairn models pull`".into(),
                });
                return;
            }
        };
        let mut progress = IngestProgress {
            report: &*self.report,
        };
        let result = Writer::open(
            &self.kb,
            &cairn_engine::Embedder::id(embedder),
            &chunk_options(),
        )
        .and_then(|mut writer| {
            let cancel = || false;
            writer.add(
                paths,
                &AddOptions {
                    embedder,
                    read: self.read.clone(),
                    commit_every: 512,
                    batch: if embedder.backend() == "onnxruntime" {
                        256
                    } else {
                        32
                    },
                    cancel: &cancel,
                },
                &mut progress,
            )
        });
        match result {
            Ok(r) => {
                let reread = if r.reread > 0 {
                    format!(" ({} unchanged but read better now)", r.reread)
                } else {
                    String::new()
                };
                (self.report)(Msg::Ingest(Ingest::Done(format!(
                    "{} added, {} updated{reread}, {} unchanged, {} skipped; {} chunks",
                    r.added,
                    r.updated,
                    r.unchanged,
                    r.skipped.len(),
                    r.chunks_written
                ))));
                self.open();
            }
            Err(e) => (self.report)(Msg::Failed {
                id: None,
                error: e.to_string(),
            }),
        }
    }
}

/// A caught panic as a message.
fn crashed(what: &str, payload: &(dyn std::any::Any + Send)) -> String {
    let why = payload
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "no message".into());
    format!("cairn crashed while {what}: {why}\nhint: this is a bug; please report it with the question asked")
}

fn cairn_engine_has_kb(kb: &Path) -> bool {
    cairn_engine::read_manifest(kb).is_ok()
}

/// Forwards an answer's pieces as messages, and stops when the question is no longer current.
struct Forward<'a> {
    id: u64,
    report: &'a (dyn Fn(Msg) + Send),
    current: &'a AtomicU64,
}

impl AnswerSink for Forward<'_> {
    fn context(&mut self, context: &Context) {
        (self.report)(Msg::Context {
            id: self.id,
            context: context.clone(),
        });
    }
    fn retrieved(&mut self, hits: &[Hit], gates: &Gates) {
        (self.report)(Msg::Retrieved {
            id: self.id,
            hits: hits.to_vec(),
            gates: gates.clone(),
        });
    }
    fn token(&mut self, piece: &str) -> ControlFlow<()> {
        if self.current.load(Ordering::SeqCst) != self.id {
            return ControlFlow::Break(());
        }
        (self.report)(Msg::Token {
            id: self.id,
            piece: piece.to_owned(),
        });
        ControlFlow::Continue(())
    }
}

struct IngestProgress<'a> {
    report: &'a (dyn Fn(Msg) + Send),
}

impl AddProgress for IngestProgress<'_> {
    fn files(&mut self, total: usize) {
        (self.report)(Msg::Ingest(Ingest::Files(total)));
    }
    fn file(&mut self, key: &str, outcome: &FileOutcome) {
        let skipped = match outcome {
            FileOutcome::Skipped { message, .. } => Some(message.clone()),
            _ => None,
        };
        (self.report)(Msg::Ingest(Ingest::File(key.to_owned(), skipped)));
    }
    fn embedded(&mut self, chunks: usize) {
        (self.report)(Msg::Ingest(Ingest::Embedded(chunks)));
    }
}
