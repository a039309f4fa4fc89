//! `cairn mcp`: the knowledge base as a Model Context Protocol server, for coding agents and
//! scripts.
//!
//! Tools: `search` (hits with document, section, page, lines, scores and text), `ask` (a
//! grounded answer: sentences with their citations, the sources, or the abstention and its
//! reason), `get` (lines of a document, as cairn indexed it) and `status`. Every document is
//! also a resource, `cairn://doc/KEY` (packs' documents: `cairn://pack/NAME/KEY`).
//!
//! The engine (index, embedder, model) is loaded once by the caller and kept across calls.
//! Searches run beside each other; answers take the model one at a time. An answer streams its
//! text as progress notifications when the client asks for progress, and a cancellation
//! notification stops the model at its next token.
//!
//! Built on `rmcp`, the official Rust SDK: this crate holds no JSON-RPC of its own.

use std::collections::BTreeMap;
use std::ops::ControlFlow;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock, RwLockReadGuard};

use cairn_engine::{AnswerSink, AnswerStream, AskOptions, Context, Engine, Hit, Mode, Retrieval};
use rmcp::handler::server::router::tool::ToolRouter;
use rmcp::handler::server::wrapper::{Json, Parameters};
use rmcp::model::{
    Implementation, ListResourcesResult, PaginatedRequestParams, ProgressNotificationParam,
    ReadResourceRequestParams, ReadResourceResponse, ReadResourceResult, Resource,
    ResourceContents, ServerCapabilities, ServerConfig,
};
use rmcp::service::RequestContext;
use rmcp::{tool, tool_handler, tool_router, ErrorData, RoleServer, ServerHandler, ServiceExt};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// `question` written out in full when it leans on `after`, the question asked before it
/// ([`cairn_engine::follow_up`]); `None` when it stands alone.
fn taken_as(after: Option<&str>, question: &str) -> Option<String> {
    after.and_then(|earlier| cairn_engine::follow_up(earlier, question))
}

/// Most hits one `search` returns.
pub const MAX_K: usize = 50;
/// Resources listed per page.
const PAGE: usize = 200;

/// Arguments of `search`.
#[derive(Debug, Deserialize, JsonSchema)]
pub struct SearchArgs {
    /// What to look for: words or a question.
    pub query: String,
    /// How many hits (default 8, at most 50).
    #[serde(default)]
    pub k: Option<usize>,
    /// `hybrid` (default: keywords and meaning, fused), `bm25` (keywords) or `dense` (meaning).
    #[serde(default)]
    pub mode: Option<String>,
    /// Search only these: `kb` for the user's own knowledge base, or installed pack names.
    /// Default: everything the server was started with.
    #[serde(default)]
    pub packs: Option<Vec<String>>,
    /// The question asked just before this one, when this one leans on it ("And in the
    /// Reference?" after "In the Rust Book, what is a crate?"): the query is then written out in
    /// full first, as `taken_as` says.
    #[serde(default)]
    pub after: Option<String>,
}

/// One search hit.
#[derive(Debug, Serialize, JsonSchema)]
pub struct SearchHit {
    /// 1-based rank.
    pub rank: usize,
    /// The document key (`[pack:NAME@VERSION] key` for a pack's documents).
    pub doc: String,
    /// The section's heading path.
    pub section: Vec<String>,
    /// The PDF page, if any.
    pub page: Option<u32>,
    /// First and last line of the passage.
    pub lines: [u32; 2],
    /// The fused score (about 1 for the best hit; more for a passage that says what the
    /// question asks about, which earns a bonus: see `defines`).
    pub score: f32,
    /// The BM25 score, when the keyword search found it.
    pub bm25: Option<f32>,
    /// The cosine similarity, when the vector search found it.
    pub dense: Option<f32>,
    /// Asked what something is ("What is a closure?") or does ("What does the move keyword
    /// do?"), this passage says so (it sets the term off, names it, begins a sentence saying
    /// what it is or does, or opens the section titled with it), and ranks higher for it.
    pub defines: bool,
    /// The passage.
    pub text: String,
    /// Other places holding mostly the same text (the same passage in another file), folded
    /// into this hit instead of taking places of their own.
    pub also: Vec<Place>,
}

/// A place in a document.
#[derive(Debug, Serialize, JsonSchema)]
pub struct Place {
    /// The document key.
    pub doc: String,
    /// The PDF page, if any.
    pub page: Option<u32>,
    /// First and last line.
    pub lines: [u32; 2],
}

impl From<&cairn_engine::Elsewhere> for Place {
    fn from(e: &cairn_engine::Elsewhere) -> Self {
        Place {
            doc: e.doc.clone(),
            page: e.page,
            lines: [e.lines.0, e.lines.1],
        }
    }
}

/// What `search` returns.
#[derive(Debug, Serialize, JsonSchema)]
pub struct SearchResult {
    /// The query as searched, when `after` made it a question of its own (else absent).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub taken_as: Option<String>,
    /// Hits, best first.
    pub hits: Vec<SearchHit>,
}

/// Arguments of `ask`.
#[derive(Debug, Deserialize, JsonSchema)]
pub struct AskArgs {
    /// The question.
    pub question: String,
    /// Passages to retrieve (default 8).
    #[serde(default)]
    pub k: Option<usize>,
    /// The question asked just before this one, when this one leans on it ("How do I create
    /// one?" after "What is a trait object?"): the question is then written out in full before
    /// it is asked, as `taken_as` says.
    #[serde(default)]
    pub after: Option<String>,
}

/// A citation of a sentence.
#[derive(Debug, Serialize, JsonSchema)]
pub struct AskCitation {
    /// The source's number in `sources`.
    pub source: usize,
    /// The document key.
    pub doc: String,
    /// The lines of the document that support the sentence.
    pub lines: [u32; 2],
}

/// A sentence of the answer.
#[derive(Debug, Serialize, JsonSchema)]
pub struct AskSentence {
    /// The sentence.
    pub text: String,
    /// Whether a source supports it (checked by code, not taken from the model).
    pub supported: bool,
    /// Where.
    pub citations: Vec<AskCitation>,
}

/// A source the model was given, or one the engine read on to for the answer (where a list
/// goes on, on the next page of a PDF).
#[derive(Debug, Serialize, JsonSchema)]
pub struct AskSource {
    /// Its number, as citations refer to it.
    pub number: usize,
    /// The document key.
    pub doc: String,
    /// The section's heading path.
    pub section: Vec<String>,
    /// The PDF page, if any.
    pub page: Option<u32>,
    /// First and last line.
    pub lines: [u32; 2],
    /// Other places holding mostly the same text, left out of the model's context.
    pub also: Vec<Place>,
}

/// What `ask` returns.
#[derive(Debug, Serialize, JsonSchema)]
pub struct AskResult {
    /// The question as asked, when `after` made it a question of its own (else absent).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub taken_as: Option<String>,
    /// The answer (empty when withheld).
    pub answer: String,
    /// Whether the answer was withheld because the documents do not hold it.
    pub abstained: bool,
    /// Why: `retrieval` (nothing relevant was found), `model` (the model found no answer in
    /// the sources), `unsupported` (no source supports what it wrote, or its source is about
    /// something else than what was asked) or `self_check` (asked whether the sources state
    /// the answer, the model was not sure enough).
    pub abstain_reason: Option<String>,
    /// The reason in words, when withheld.
    pub abstain_message: Option<String>,
    /// The answer's sentences with their citations (none when withheld).
    pub sentences: Vec<AskSentence>,
    /// The sources the model was given, then any the engine read on to for the answer.
    pub sources: Vec<AskSource>,
}

/// Arguments of `get`.
#[derive(Debug, Deserialize, JsonSchema)]
pub struct GetArgs {
    /// The document key, as `search` and `ask` give it.
    pub doc: String,
    /// First line (1-based; default 1).
    #[serde(default)]
    pub from: Option<u32>,
    /// Last line (default: the end).
    #[serde(default)]
    pub to: Option<u32>,
}

/// What `get` returns.
#[derive(Debug, Serialize, JsonSchema)]
pub struct GetResult {
    /// The document key.
    pub doc: String,
    /// The first line returned.
    pub from: u32,
    /// The last line returned.
    pub to: u32,
    /// The text of those lines, as cairn indexed them (for HTML and PDF, the extracted text).
    pub text: String,
}

/// One searched source in `status`.
#[derive(Debug, Serialize, JsonSchema)]
pub struct StatusSource {
    /// `kb` for the user's knowledge base, else `pack:NAME@VERSION`.
    pub name: String,
    /// Documents in it.
    pub documents: u64,
    /// Chunks in it.
    pub chunks: u64,
    /// Whether it is searched by keywords only (its vectors come from another model).
    pub bm25_only: bool,
}

/// What `status` returns.
#[derive(Debug, Serialize, JsonSchema)]
pub struct StatusResult {
    /// The answering model.
    pub model: String,
    /// The embedding model.
    pub embedder: String,
    /// What is searched.
    pub sources: Vec<StatusSource>,
}

/// The server: the engine, split so that searches need no lock and answers take the model.
#[derive(Clone)]
pub struct Server {
    /// Swapped for a new snapshot when a writer commits (see [`Server::follow_commits`]).
    retrieval: Arc<RwLock<Retrieval>>,
    generator: Arc<Mutex<cairn_generator::Generator>>,
    model: String,
    options: AskOptions,
    #[allow(dead_code)] // read by the code `tool_handler` generates
    tool_router: ToolRouter<Server>,
}

fn error(e: impl std::fmt::Display) -> ErrorData {
    ErrorData::internal_error(e.to_string(), None)
}

fn invalid(message: impl Into<String>) -> ErrorData {
    ErrorData::invalid_params(message.into(), None)
}

/// `[pack:NAME@VERSION] key` → (`pack:NAME@VERSION`, key); a plain key → (None, key).
fn split_label(doc: &str) -> (Option<&str>, &str) {
    if let Some(rest) = doc.strip_prefix('[') {
        if let Some((label, key)) = rest.split_once("] ") {
            return (Some(label), key);
        }
    }
    (None, doc)
}

/// The lines of a document rebuilt from its stored chunks (which carry their line numbers),
/// so that packs, whose files are not on this machine, are read the same way.
fn document_text(
    reader: &cairn_engine::Reader,
    key: &str,
) -> Result<BTreeMap<u32, String>, String> {
    let doc = reader
        .document(key)
        .map_err(|e| e.to_string())?
        .ok_or_else(|| format!("no document {key:?}"))?;
    let mut lines = BTreeMap::new();
    for id in doc.chunks {
        if let Some(c) = reader
            .chunk(cairn_engine::ChunkId(id))
            .map_err(|e| e.to_string())?
        {
            for (i, line) in c.text.split('\n').enumerate() {
                lines
                    .entry(c.lines.0 + i as u32)
                    .or_insert_with(|| line.to_owned());
            }
        }
    }
    Ok(lines)
}

/// Lines `from..=to` of [`document_text`]'s map, joined (a line no chunk holds is empty).
fn join_lines(lines: &BTreeMap<u32, String>, from: u32, to: u32) -> String {
    (from..=to)
        .map(|n| lines.get(&n).map_or("", String::as_str))
        .collect::<Vec<_>>()
        .join("\n")
}

#[tool_router]
impl Server {
    /// A server over `engine`, answering with `options` (k and mode may be set per call).
    #[must_use]
    pub fn new(engine: Engine, model: &str, options: AskOptions) -> Self {
        let Engine {
            retrieval,
            generator,
        } = engine;
        Server {
            retrieval: Arc::new(RwLock::new(retrieval)),
            generator: Arc::new(Mutex::new(generator)),
            model: model.to_owned(),
            options,
            tool_router: Self::tool_router(),
        }
    }

    /// The engine's retrieval half, after taking a new snapshot of the knowledge base if another
    /// process (a `cairn add`) has committed since the last one.
    fn retrieval(&self) -> RwLockReadGuard<'_, Retrieval> {
        follow_commits(&self.retrieval);
        self.retrieval
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The reader behind a label (`None`: the primary snapshot).
    fn reader<'a>(r: &'a Retrieval, label: Option<&str>) -> Option<&'a cairn_engine::Reader> {
        match label {
            l if l == r.label.as_deref() => Some(&r.reader),
            Some(l) => r.packs.iter().find(|p| p.label == l).map(|p| &p.reader),
            None => None,
        }
    }

    #[tool(
        name = "search",
        description = "Search the user's documents (and installed knowledge packs) for passages. Returns hits with document key, section, page, line range, scores and text, best first."
    )]
    async fn search(
        &self,
        Parameters(args): Parameters<SearchArgs>,
    ) -> Result<Json<SearchResult>, ErrorData> {
        let mode = match args.mode.as_deref() {
            None | Some("hybrid") => Mode::Hybrid,
            Some("bm25") => Mode::Bm25,
            Some("dense") => Mode::Dense,
            Some(other) => return Err(invalid(format!("mode {other:?}: hybrid, bm25 or dense"))),
        };
        let k = args.k.unwrap_or(8).clamp(1, MAX_K);
        let taken_as = taken_as(args.after.as_deref(), &args.query);
        let query = taken_as.clone().unwrap_or(args.query);
        let options = AskOptions {
            k,
            mode,
            ..self.options.clone()
        }
        .search_options();
        let retrieval = self.retrieval.clone();
        let hits = tokio::task::spawn_blocking(move || -> Result<Vec<Hit>, ErrorData> {
            follow_commits(&retrieval);
            let retrieval = retrieval
                .read()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            let mut shelves = retrieval.shelves();
            if let Some(names) = &args.packs {
                shelves.retain(|s| {
                    names.iter().any(|n| match &s.label {
                        None => n == "kb",
                        Some(l) => {
                            let name = l.trim_start_matches("pack:");
                            name == n || name.split('@').next() == Some(n.as_str())
                        }
                    })
                });
                if shelves.is_empty() {
                    return Err(invalid(format!(
                        "none of {names:?} is searched here (`kb`, or an installed pack's name)"
                    )));
                }
            }
            cairn_engine::search_shelves(&shelves, &retrieval.embedder, &query, &options)
                .map_err(error)
        })
        .await
        .map_err(error)??;
        Ok(Json(SearchResult {
            taken_as,
            hits: hits
                .into_iter()
                .map(|h| SearchHit {
                    rank: h.rank,
                    doc: h.chunk.doc,
                    section: h.chunk.heading,
                    page: h.chunk.page,
                    lines: [h.chunk.lines.0, h.chunk.lines.1],
                    score: h.fused.score,
                    bm25: h.fused.bm25.map(|l| l.score),
                    dense: h.fused.dense.map(|l| l.score),
                    defines: h.fused.defines,
                    text: h.chunk.text,
                    also: h.also.iter().map(Place::from).collect(),
                })
                .collect(),
        }))
    }

    #[tool(
        name = "ask",
        description = "Answer a question from the user's documents with a small local model. Every sentence carries the document and lines that support it; when the documents do not hold the answer, it says so (abstained, with the reason) instead of guessing. Streams the answer as progress notifications when a progress token is given."
    )]
    async fn ask(
        &self,
        Parameters(args): Parameters<AskArgs>,
        context: RequestContext<RoleServer>,
    ) -> Result<Json<AskResult>, ErrorData> {
        let typed = args.question.trim();
        if typed.is_empty() {
            return Err(invalid("the question is empty"));
        }
        let taken_as = taken_as(args.after.as_deref(), typed);
        let question = taken_as.clone().unwrap_or_else(|| typed.to_owned());
        let mut options = self.options.clone();
        if let Some(k) = args.k {
            options.k = k.clamp(1, MAX_K);
        }
        let stop = Arc::new(AtomicBool::new(false));
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<String>();
        let work = {
            let (retrieval, generator, stop) =
                (self.retrieval.clone(), self.generator.clone(), stop.clone());
            tokio::task::spawn_blocking(move || {
                follow_commits(&retrieval);
                let retrieved = retrieval
                    .read()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .retrieve(&question, &options)?;
                let mut generator = generator
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
                let mut sink = Streaming {
                    tx,
                    stop,
                    stream: if options.free {
                        AnswerStream::new()
                    } else {
                        AnswerStream::quoted()
                    },
                };
                cairn_engine::answer(&mut generator, &question, retrieved, &options, &mut sink)
            })
        };
        let token = context.meta.get_progress_token();
        let mut step = 0u32;
        let watch_cancel = context.ct.clone();
        let mut work = std::pin::pin!(work);
        let answer = loop {
            tokio::select! {
                done = &mut work => break done.map_err(error)?.map_err(error)?,
                shown = rx.recv() => {
                    if let (Some(shown), Some(token)) = (shown, &token) {
                        step += 1;
                        // The answer as far as it is checked; a quote is checked only whole.
                        let message = if shown.is_empty() {
                            format!("writing the answer ({step} tokens); it is shown once checked")
                        } else {
                            shown
                        };
                        let _ = context
                            .peer
                            .notify_progress(
                                ProgressNotificationParam::new(token.clone(), f64::from(step))
                                    .with_message(message),
                            )
                            .await;
                    }
                }
                () = watch_cancel.cancelled(), if !stop.load(Ordering::Relaxed) => {
                    stop.store(true, Ordering::Relaxed);
                }
            }
        };
        let doc_of = |n: usize| {
            answer
                .context
                .sources
                .iter()
                .find(|s| s.number == n)
                .map(|s| s.doc.clone())
                .unwrap_or_default()
        };
        let (shown, claims) = answer.shown();
        Ok(Json(AskResult {
            taken_as,
            answer: shown.to_owned(),
            abstained: answer.abstained.is_some(),
            abstain_reason: answer.abstained.map(|a| {
                serde_json::to_value(a)
                    .ok()
                    .and_then(|v| v.as_str().map(str::to_owned))
                    .unwrap_or_default()
            }),
            abstain_message: answer.why_withheld(),
            sentences: claims
                .iter()
                .map(|c| AskSentence {
                    text: c.text.clone(),
                    supported: c.supported,
                    citations: c
                        .citations
                        .iter()
                        .map(|x| AskCitation {
                            source: x.source,
                            doc: doc_of(x.source),
                            lines: [x.lines.0, x.lines.1],
                        })
                        .collect(),
                })
                .collect(),
            sources: answer
                .context
                .sources
                .iter()
                .map(|s| AskSource {
                    number: s.number,
                    doc: s.doc.clone(),
                    section: s.heading.clone(),
                    page: s.page,
                    lines: [s.lines.0, s.lines.1],
                    also: s.also.iter().map(Place::from).collect(),
                })
                .collect(),
        }))
    }

    #[tool(
        name = "get",
        description = "Read lines of a document by its key (as search and ask give it), as cairn indexed it: for HTML and PDF, the extracted text. Lines are 1-based and inclusive."
    )]
    async fn get(
        &self,
        Parameters(args): Parameters<GetArgs>,
    ) -> Result<Json<GetResult>, ErrorData> {
        let (label, key) = split_label(&args.doc);
        let r = self.retrieval();
        let reader = Self::reader(&r, label)
            .ok_or_else(|| invalid(format!("no source {label:?} is searched here")))?;
        let lines = document_text(reader, key).map_err(invalid)?;
        let last = lines.keys().next_back().copied().unwrap_or(0);
        let from = args.from.unwrap_or(1).max(1);
        let to = args.to.unwrap_or(last).min(last);
        if from > to {
            return Err(invalid(format!(
                "lines {from}–{to}: the document has {last} lines"
            )));
        }
        let text = join_lines(&lines, from, to);
        Ok(Json(GetResult {
            doc: args.doc.clone(),
            from,
            to,
            text,
        }))
    }

    #[tool(
        name = "status",
        description = "What this server searches (the knowledge base and packs, with their document and chunk counts) and which models it uses."
    )]
    async fn status(&self) -> Result<Json<StatusResult>, ErrorData> {
        let r = self.retrieval();
        let mut sources = Vec::new();
        let primary = r.reader.status().map_err(error)?;
        sources.push(StatusSource {
            name: r.label.clone().unwrap_or_else(|| "kb".into()),
            documents: primary.documents,
            chunks: primary.chunks,
            bm25_only: r.bm25_only,
        });
        for p in &r.packs {
            let s = p.reader.status().map_err(error)?;
            sources.push(StatusSource {
                name: p.label.clone(),
                documents: s.documents,
                chunks: s.chunks,
                bm25_only: p.bm25_only,
            });
        }
        Ok(Json(StatusResult {
            model: self.model.clone(),
            embedder: r.reader.manifest().embedder.to_string(),
            sources,
        }))
    }
}

/// Sends what may be shown of the answer so far ([`AnswerStream`]: nothing that could still be
/// withheld) to the request's task after each token, and stops the model once the request is
/// cancelled.
struct Streaming {
    tx: tokio::sync::mpsc::UnboundedSender<String>,
    stop: Arc<AtomicBool>,
    stream: AnswerStream,
}

impl AnswerSink for Streaming {
    fn context(&mut self, context: &Context) {
        self.stream.set_context(context);
    }

    fn token(&mut self, piece: &str) -> ControlFlow<()> {
        self.stream.push(piece);
        let _ = self.tx.send(self.stream.shown(false));
        if self.stop.load(Ordering::Relaxed) {
            ControlFlow::Break(())
        } else {
            ControlFlow::Continue(())
        }
    }
}

/// `cairn://doc/KEY` for the knowledge base's documents, `cairn://pack/NAME@VERSION/KEY` for a
/// pack's.
fn resource_uri(label: Option<&str>, key: &str) -> String {
    match label {
        None => format!("cairn://doc/{key}"),
        Some(l) => format!("cairn://{}/{key}", l.replacen(':', "/", 1)),
    }
}

#[tool_handler]
impl ServerHandler for Server {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(
            ServerCapabilities::builder()
                .enable_tools()
                .enable_resources()
                .build(),
        )
        .with_server_info(Implementation::new("cairn", env!("CARGO_PKG_VERSION")))
        .with_instructions(
            "cairn searches and answers from the user's own documents, offline. Use `search` to find passages, `get` to read more of a document around a hit, and `ask` for a grounded answer with line-level citations; an abstained answer means the documents do not say.",
        )
    }

    async fn list_resources(
        &self,
        request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListResourcesResult, ErrorData> {
        let start: usize = request
            .and_then(|r| r.cursor)
            .map_or(Ok(0), |c| c.parse())
            .map_err(|_| invalid("bad cursor"))?;
        let r = self.retrieval();
        let mut all = Vec::new();
        let mut shelves = vec![(r.label.as_deref(), &r.reader)];
        shelves.extend(r.packs.iter().map(|p| (Some(p.label.as_str()), &p.reader)));
        for (label, reader) in shelves {
            for d in reader.documents().map_err(error)? {
                all.push(
                    Resource::new(resource_uri(label, &d.key), d.key.clone())
                        .with_title(d.title.clone())
                        .with_mime_type("text/plain"),
                );
            }
        }
        let page: Vec<Resource> = all.iter().skip(start).take(PAGE).cloned().collect();
        let mut result = ListResourcesResult::with_all_items(page);
        if start + PAGE < all.len() {
            result.next_cursor = Some((start + PAGE).to_string());
        }
        Ok(result)
    }

    async fn read_resource(
        &self,
        request: ReadResourceRequestParams,
        _context: RequestContext<RoleServer>,
    ) -> Result<ReadResourceResponse, ErrorData> {
        let uri = request.uri;
        let (label, key) = if let Some(key) = uri.strip_prefix("cairn://doc/") {
            (None, key.to_owned())
        } else if let Some(rest) = uri.strip_prefix("cairn://pack/") {
            let (pack, key) = rest
                .split_once('/')
                .ok_or_else(|| invalid(format!("no document in {uri}")))?;
            (Some(format!("pack:{pack}")), key.to_owned())
        } else {
            return Err(invalid(format!("not a cairn document: {uri}")));
        };
        let r = self.retrieval();
        let label = match (label, &r.label) {
            (None, Some(_)) => return Err(invalid("the knowledge base is not searched here")),
            (l, _) => l,
        };
        let reader = Self::reader(&r, label.as_deref())
            .ok_or_else(|| invalid(format!("no source for {uri}")))?;
        let lines = document_text(reader, &key).map_err(invalid)?;
        let last = lines.keys().next_back().copied().unwrap_or(0);
        let text = join_lines(&lines, 1, last);
        Ok(ReadResourceResult::new(vec![ResourceContents::text(text, uri)]).into())
    }
}

/// The server's runtime: two workers, as the machine cairn is built for has two cores.
fn runtime() -> Result<tokio::runtime::Runtime, String> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| e.to_string())
}

/// Serves MCP on stdin and stdout until the client closes them.
///
/// # Errors
/// If the runtime cannot start or the connection fails.
pub fn serve_stdio(server: Server) -> Result<(), String> {
    let runtime = runtime()?;
    runtime.block_on(async move {
        let service = server
            .serve(rmcp::transport::stdio())
            .await
            .map_err(|e| e.to_string())?;
        service.waiting().await.map_err(|e| e.to_string())?;
        Ok(())
    })
}

/// Where a client of [`serve_http`] posts: `http://ADDR/mcp`.
pub const HTTP_PATH: &str = "/mcp";

/// Serves MCP over streamable HTTP at `http://ADDR/mcp` until interrupted (Ctrl-C or SIGTERM).
///
/// Loopback only: `addr` must be a loopback address. Against DNS rebinding, as the MCP
/// specification asks, a request is refused (403) unless its `Host` is this server's own loopback
/// name and port, and unless its `Origin`, when it has one (browsers send it), is a loopback page;
/// clients that are not browsers send no `Origin`. `ready` is called with the bound address
/// (port 0 picks a free one) once connections are accepted.
///
/// # Errors
/// If `addr` is not loopback, the port cannot be bound, or the runtime cannot start.
pub fn serve_http(
    server: Server,
    addr: std::net::SocketAddr,
    ready: impl FnOnce(std::net::SocketAddr),
) -> Result<(), String> {
    use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
    use rmcp::transport::streamable_http_server::{
        StreamableHttpServerConfig, StreamableHttpService,
    };

    if !addr.ip().is_loopback() {
        return Err(format!(
            "{addr} is not a loopback address: cairn serves MCP over HTTP to this machine only \
             (use 127.0.0.1 or [::1])"
        ));
    }
    let runtime = runtime()?;
    runtime.block_on(async move {
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .map_err(|e| format!("cannot listen on {addr}: {e}"))?;
        let bound = listener.local_addr().map_err(|e| e.to_string())?;
        let port = bound.port();
        let stop = tokio_util::sync::CancellationToken::new();
        let config = StreamableHttpServerConfig::default()
            .with_allowed_hosts([
                format!("localhost:{port}"),
                format!("127.0.0.1:{port}"),
                format!("[::1]:{port}"),
            ])
            .with_allowed_origins(["http://localhost:*", "http://127.0.0.1:*", "http://[::1]:*"])
            .with_cancellation_token(stop.child_token());
        let service = StreamableHttpService::new(
            move || Ok(server.clone()),
            Arc::new(LocalSessionManager::default()),
            config,
        );
        let router = axum::Router::new().nest_service(HTTP_PATH, service);
        ready(bound);
        axum::serve(listener, router)
            .with_graceful_shutdown(async move {
                shutdown_signal().await;
                stop.cancel();
            })
            .await
            .map_err(|e| e.to_string())
    })
}

async fn shutdown_signal() {
    let interrupt = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
        let terminate = async {
            match term.as_mut() {
                Some(t) => {
                    t.recv().await;
                }
                None => std::future::pending::<()>().await,
            }
        };
        tokio::select! {
            _ = interrupt => {}
            () = terminate => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = interrupt.await;
    }
}

/// Takes a new snapshot of the knowledge base into `retrieval` when a writer has committed since
/// the one it holds (a pack standing in for the knowledge base does not change). The old
/// snapshot stays if the new one cannot be opened.
fn follow_commits(retrieval: &RwLock<Retrieval>) {
    let dir = {
        let r = retrieval
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if r.label.is_some() || !r.reader.changed_on_disk() {
            return;
        }
        r.reader.dir().to_owned()
    };
    if let Ok(reader) = cairn_engine::Reader::open(&dir) {
        retrieval
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .reader = reader;
    }
}
