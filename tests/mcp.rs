//! `cairn mcp` driven by a client nobody here wrote: the official MCP Inspector in CLI mode
//! (npm's `@modelcontextprotocol/inspector`, which `.ci/run` installs; `CAIRN_MCP_INSPECTOR`
//! names its `mcp-inspector` program, else `~/.cache/cairn-ci/mcp-inspector` holds it). It
//! lists the tools and calls `search` and `ask` against the real binary with the tiny model.

use std::path::PathBuf;
use std::process::Command;

fn inspector() -> PathBuf {
    let path = std::env::var_os("CAIRN_MCP_INSPECTOR").map_or_else(
        || {
            dirs::cache_dir()
                .expect("a cache directory")
                .join("cairn-ci/mcp-inspector/node_modules/.bin/mcp-inspector")
        },
        PathBuf::from,
    );
    assert!(
        path.exists(),
        "{} is missing: .ci/run installs the MCP Inspector (npm install @modelcontextprotocol/inspector)",
        path.display()
    );
    path
}

fn inspect(kb: &std::path::Path, args: &[&str]) -> serde_json::Value {
    let out = Command::new(inspector())
        .arg("--cli")
        .arg(env!("CARGO_BIN_EXE_cairn"))
        .args(["--kb", kb.to_str().unwrap(), "mcp", "--model", "tiny"])
        .args(args)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "inspector {args:?}: {stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("{e}: {stdout}"))
}

#[test]
fn the_mcp_inspector_lists_the_tools_and_calls_search_and_ask() {
    let dir = tempfile::tempdir().unwrap();
    let docs = dir.path().join("docs");
    std::fs::create_dir_all(&docs).unwrap();
    std::fs::write(
        docs.join("pumps.md"),
        "# Orvane pump maintenance\n\nBefore its first start, the Orvane pump must be primed with 3 litres of glycol.\nIts seals are replaced every 400 running hours.\n",
    )
    .unwrap();
    let kb = dir.path().join("kb");
    let added = Command::new(env!("CARGO_BIN_EXE_cairn"))
        .args([
            "--kb",
            kb.to_str().unwrap(),
            "add",
            docs.to_str().unwrap(),
            "-q",
        ])
        .status()
        .unwrap();
    assert!(added.success());

    let tools = inspect(&kb, &["--method", "tools/list"]);
    let mut names: Vec<&str> = tools["tools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    names.sort_unstable();
    assert_eq!(names, ["ask", "get", "search", "status"]);

    let search = inspect(
        &kb,
        &[
            "--method",
            "tools/call",
            "--tool-name",
            "search",
            "--tool-arg",
            "query=seals running hours",
        ],
    );
    let hit = &search["structuredContent"]["hits"][0];
    assert_eq!(hit["doc"], "docs/pumps.md", "{search}");
    assert_eq!(hit["lines"], serde_json::json!([1, 4]), "{search}");

    let ask = inspect(
        &kb,
        &[
            "--method",
            "tools/call",
            "--tool-name",
            "ask",
            "--tool-arg",
            "question=How many litres of glycol does the Orvane pump need to be primed?",
        ],
    );
    let answer = &ask["structuredContent"];
    assert_eq!(answer["abstained"], false, "{ask}");
    assert!(answer["answer"].as_str().unwrap().contains('3'), "{ask}");
    let cited = &answer["sentences"][0]["citations"][0];
    assert_eq!(cited["doc"], "docs/pumps.md", "{ask}");
    assert_eq!(cited["lines"], serde_json::json!([3, 3]), "{ask}");
}
