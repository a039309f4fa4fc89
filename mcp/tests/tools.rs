//! Each tool and the resources, in process, through rmcp's own client over an in-memory pipe,
//! with the real embedder and the real tiny model (the tests' models are fetched first).

use cairn_engine::{AskOptions, Engine, MiniLm};
use cairn_index::{AddOptions, Embedder, NoProgress, Writer};
use cairn_ingest::ReadOptions;
use rmcp::model::{CallToolRequestParams, ReadResourceRequestParams, ResourceContents};
use rmcp::service::RunningService;
use rmcp::{RoleClient, ServiceExt};
use serde_json::{json, Value};

fn knowledge_base(dir: &std::path::Path) -> std::path::PathBuf {
    let docs = dir.join("docs");
    std::fs::create_dir_all(&docs).unwrap();
    std::fs::write(
        docs.join("pumps.md"),
        "# Orvane pump maintenance\n\nBefore its first start, the Orvane pump must be primed with 3 litres of glycol.\nIts seals are replaced every 400 running hours.\n",
    )
    .unwrap();
    std::fs::write(
        docs.join("garden.md"),
        "# Garden\n\nTomato plants need six hours of direct sun a day.\n",
    )
    .unwrap();
    let kb = dir.join("kb");
    add(&kb, docs);
    kb
}

/// Adds a folder to the knowledge base at `kb` (creating it), as `cairn add` would.
fn add(kb: &std::path::Path, folder: std::path::PathBuf) {
    let embedder = MiniLm::load().unwrap();
    let mut w = Writer::open(kb, &embedder.id(), &cairn_engine::chunk_options()).unwrap();
    let cancel = || false;
    w.add(
        &[folder],
        &AddOptions {
            embedder: &embedder,
            read: ReadOptions::default(),
            commit_every: 64,
            batch: 16,
            cancel: &cancel,
        },
        &mut NoProgress,
    )
    .unwrap();
}

async fn connect(kb: &std::path::Path) -> RunningService<RoleClient, ()> {
    let engine = Engine::open(kb, "tiny").unwrap();
    let server = cairn_mcp::Server::new(engine, "tiny", AskOptions::default());
    let (a, b) = tokio::io::duplex(1 << 16);
    tokio::spawn(async move {
        let running = server.serve(a).await.unwrap();
        let _ = running.waiting().await;
    });
    ().serve(b).await.unwrap()
}

async fn call(client: &RunningService<RoleClient, ()>, tool: &'static str, args: Value) -> Value {
    let result = client
        .call_tool(
            CallToolRequestParams::new(tool)
                .with_arguments(args.as_object().cloned().unwrap_or_default()),
        )
        .await
        .unwrap();
    assert_ne!(result.is_error, Some(true), "{tool}: {result:?}");
    result.structured_content.expect("structured output")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_tool_and_the_resources_answer() {
    let dir = tempfile::tempdir().unwrap();
    let kb = knowledge_base(dir.path());
    let client = connect(&kb).await;

    let tools = client.list_tools(None).await.unwrap().tools;
    let mut names: Vec<&str> = tools.iter().map(|t| t.name.as_ref()).collect();
    names.sort_unstable();
    assert_eq!(names, ["ask", "get", "search", "status"]);
    for t in &tools {
        assert!(t.output_schema.is_some(), "{} has an output schema", t.name);
        assert!(!t.input_schema.is_empty(), "{} has an input schema", t.name);
    }

    let found = call(
        &client,
        "search",
        json!({"query": "glycol pump priming", "k": 2}),
    )
    .await;
    let hit = &found["hits"][0];
    assert_eq!(hit["doc"], "docs/pumps.md", "{found}");
    assert_eq!(hit["section"], json!(["Orvane pump maintenance"]));
    assert!(hit["text"].as_str().unwrap().contains("3 litres of glycol"));
    assert!(hit["bm25"].as_f64().unwrap() > 0.0);
    assert_eq!(
        hit["defines"], false,
        "not a question asking what something is"
    );
    let bm25_only = call(
        &client,
        "search",
        json!({"query": "tomato", "mode": "bm25"}),
    )
    .await;
    assert_eq!(bm25_only["hits"][0]["doc"], "docs/garden.md");
    assert!(bm25_only["hits"][0]["dense"].is_null());

    let got = call(
        &client,
        "get",
        json!({"doc": "docs/pumps.md", "from": 3, "to": 4}),
    )
    .await;
    assert_eq!(
        got["text"],
        "Before its first start, the Orvane pump must be primed with 3 litres of glycol.\nIts seals are replaced every 400 running hours."
    );

    let status = call(&client, "status", json!({})).await;
    assert_eq!(status["sources"][0]["name"], "kb");
    assert_eq!(status["sources"][0]["documents"], 2);
    assert_eq!(status["model"], "tiny");

    let answer = call(
        &client,
        "ask",
        json!({"question": "How many litres of glycol does the Orvane pump need to be primed?"}),
    )
    .await;
    assert_eq!(answer["abstained"], false, "{answer}");
    assert!(answer["answer"].as_str().unwrap().contains('3'), "{answer}");
    let cited = &answer["sentences"][0]["citations"][0];
    assert_eq!(cited["doc"], "docs/pumps.md", "{answer}");
    let unknown = call(
        &client,
        "ask",
        json!({"question": "What is the capital of Mongolia's airline hub?"}),
    )
    .await;
    assert_eq!(unknown["abstained"], true, "{unknown}");
    assert_eq!(unknown["abstain_reason"], "retrieval", "{unknown}");

    let resources = client.list_resources(None).await.unwrap().resources;
    let uris: Vec<&str> = resources.iter().map(|r| r.uri.as_str()).collect();
    assert_eq!(
        uris,
        ["cairn://doc/docs/garden.md", "cairn://doc/docs/pumps.md"]
    );
    let read = client
        .read_resource(ReadResourceRequestParams::new("cairn://doc/docs/garden.md"))
        .await
        .unwrap();
    match &read.contents[0] {
        ResourceContents::TextResourceContents { text, .. } => {
            assert!(text.contains("six hours of direct sun"), "{text}");
        }
        other => panic!("{other:?}"),
    }
    // Bad calls are errors, not crashes.
    let bad = client
        .call_tool(
            CallToolRequestParams::new("get")
                .with_arguments(json!({"doc": "docs/none.md"}).as_object().cloned().unwrap()),
        )
        .await;
    assert!(
        bad.is_err() || bad.as_ref().unwrap().is_error == Some(true),
        "{bad:?}"
    );
    client.cancel().await.unwrap();
}

/// Counts the tokens a request's progress notifications report (one step per token written).
#[derive(Clone, Default)]
struct Steps(std::sync::Arc<std::sync::atomic::AtomicU64>);

impl Steps {
    fn get(&self) -> u64 {
        self.0.load(std::sync::atomic::Ordering::SeqCst)
    }
}

impl rmcp::ClientHandler for Steps {
    fn on_progress(
        &self,
        params: rmcp::model::ProgressNotificationParam,
        _: rmcp::service::NotificationContext<RoleClient>,
    ) -> impl std::future::Future<Output = ()> + Send + '_ {
        self.0
            .fetch_max(params.progress as u64, std::sync::atomic::Ordering::SeqCst);
        std::future::ready(())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancelled_answer_stops_the_model_and_the_next_one_is_answered() {
    use rmcp::model::{ClientRequest, NumberOrString, ProgressToken, Request, RequestMetaObject};
    use rmcp::service::PeerRequestOptions;

    let dir = tempfile::tempdir().unwrap();
    let kb = knowledge_base(dir.path());
    // Free wording, no gates and a long limit: an answer that would run for many tokens.
    let engine = Engine::open(&kb, "tiny").unwrap();
    let long = AskOptions {
        free: true,
        max_tokens: 2000,
        min_relevance: 0.0,
        min_coverage: 0.0,
        ..AskOptions::default()
    };
    let server = cairn_mcp::Server::new(engine, "tiny", long);
    let (a, b) = tokio::io::duplex(1 << 16);
    tokio::spawn(async move {
        let running = server.serve(a).await.unwrap();
        let _ = running.waiting().await;
    });
    let steps = Steps::default();
    let client = steps.clone().serve(b).await.unwrap();
    let ask = |q: &str| {
        ClientRequest::CallToolRequest(Request::new(
            CallToolRequestParams::new("ask")
                .with_arguments(json!({ "question": q }).as_object().cloned().unwrap()),
        ))
    };
    // Only the long answer asks for progress: its steps count the tokens it has written.
    let mut options = PeerRequestOptions::no_options();
    options.meta = Some(RequestMetaObject::with_progress_token(ProgressToken(
        NumberOrString::String("long".into()),
    )));
    let handle = client
        .send_cancellable_request(
            ask("Write a very long essay about pumps, glycol, seals and gardens."),
            options,
        )
        .await
        .unwrap();
    // Counted in tokens, not seconds, so that a busy machine cannot fail it: wait until the
    // answer is well under way, then cancel it.
    let waited = std::time::Instant::now();
    while steps.get() < 20 {
        assert!(
            waited.elapsed() < std::time::Duration::from_secs(120),
            "the long answer wrote {} tokens in two minutes",
            steps.get()
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let at_cancel = steps.get();
    handle.cancel(Some("enough".into())).await.unwrap();
    // The model is free again: the next question is answered (it waits for the model, so for
    // the first answer to stop) ...
    let next = client
        .call_tool(
            CallToolRequestParams::new("ask").with_arguments(
                json!({"question": "How many litres of glycol does the Orvane pump need?"})
                    .as_object()
                    .cloned()
                    .unwrap(),
            ),
        )
        .await
        .unwrap();
    assert_ne!(next.is_error, Some(true), "{next:?}");
    // ... and the first answer stopped within a few tokens of the cancellation, not at its end
    // of 2,000 tokens (or wherever the model would have stopped by itself).
    let at_end = steps.get();
    assert!(
        at_end <= at_cancel + 16,
        "cancelled at {at_cancel} tokens, the answer went on to {at_end}"
    );
    client.cancel().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_server_sees_what_a_writer_commits_after_it_started() {
    let dir = tempfile::tempdir().unwrap();
    let kb = knowledge_base(dir.path());
    let client = connect(&kb).await;
    let before = call(&client, "status", json!({})).await;
    assert_eq!(before["sources"][0]["documents"], 2, "{before}");

    // Another writer (as a `cairn add` in another terminal would) commits a new file.
    let more = dir.path().join("more");
    std::fs::create_dir_all(&more).unwrap();
    std::fs::write(
        more.join("ferry.md"),
        "# Ferry\n\nThe Vardø ferry leaves at 07:40 on weekdays.\n",
    )
    .unwrap();
    add(&kb, more);

    let after = call(&client, "status", json!({})).await;
    assert_eq!(after["sources"][0]["documents"], 3, "{after}");
    let found = call(
        &client,
        "search",
        json!({"query": "Vardø ferry weekdays", "k": 1}),
    )
    .await;
    assert_eq!(found["hits"][0]["doc"], "more/ferry.md", "{found}");
    let got = call(&client, "get", json!({"doc": "more/ferry.md"})).await;
    assert!(got["text"].as_str().unwrap().contains("07:40"), "{got}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_question_leaning_on_the_one_before_is_written_out_and_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let kb = knowledge_base(dir.path());
    let client = connect(&kb).await;

    let found = call(
        &client,
        "search",
        json!({"query": "How often are its seals replaced?", "after": "What is the Orvane pump?", "k": 1}),
    )
    .await;
    assert_eq!(
        found["taken_as"], "How often are the Orvane pump's seals replaced?",
        "{found}"
    );
    assert_eq!(found["hits"][0]["doc"], "docs/pumps.md", "{found}");

    // A question that stands alone is searched as typed, and says nothing of it.
    let alone = call(
        &client,
        "search",
        json!({"query": "How many hours of sun do tomato plants need?", "after": "What is the Orvane pump?"}),
    )
    .await;
    assert!(alone.get("taken_as").is_none(), "{alone}");
    assert_eq!(alone["hits"][0]["doc"], "docs/garden.md", "{alone}");

    let answer = call(
        &client,
        "ask",
        json!({"question": "How often are its seals replaced?", "after": "What is the Orvane pump?"}),
    )
    .await;
    assert_eq!(
        answer["taken_as"], "How often are the Orvane pump's seals replaced?",
        "{answer}"
    );
    // The tiny model's reading is not what is tested here: the question as asked found the
    // pump's page.
    assert_eq!(answer["sources"][0]["doc"], "docs/pumps.md", "{answer}");
}
