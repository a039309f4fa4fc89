//! `cairn mcp` driven by a client nobody here wrote: the official MCP Inspector in CLI mode
//! (npm's `@modelcontextprotocol/inspector`, which `.ci/run` installs; `CAIRN_MCP_INSPECTOR`
//! names its `mcp-inspector` program, else `~/.cache/cairn-ci/mcp-inspector` holds it). It
//! lists the tools and calls `search` and `ask` against the real binary with the tiny model,
//! over stdio and over streamable HTTP; and the HTTP server's DNS-rebinding checks.

use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

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

/// How the Inspector reaches cairn: it starts `cairn mcp` itself (stdio), or a URL.
enum Target<'a> {
    Stdio(&'a Path),
    Http(&'a str),
}

fn inspect(target: &Target, args: &[&str]) -> serde_json::Value {
    let mut command = Command::new(inspector());
    command.arg("--cli");
    match target {
        Target::Stdio(kb) => {
            command.arg(env!("CARGO_BIN_EXE_cairn")).args([
                "--kb",
                kb.to_str().unwrap(),
                "mcp",
                "--model",
                "tiny",
            ]);
        }
        Target::Http(url) => {
            command.arg(url);
        }
    }
    let out = command.args(args).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "inspector {args:?}: {stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("{e}: {stdout}"))
}

/// A knowledge base of one small page, added with the real binary.
fn pump_kb(dir: &Path) -> PathBuf {
    let docs = dir.join("docs");
    std::fs::create_dir_all(&docs).unwrap();
    std::fs::write(
        docs.join("pumps.md"),
        "# Orvane pump maintenance\n\nBefore its first start, the Orvane pump must be primed with 3 litres of glycol.\nIts seals are replaced every 400 running hours.\n",
    )
    .unwrap();
    let kb = dir.join("kb");
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
    kb
}

/// Lists the tools and calls `search` and `ask` through the Inspector.
fn check_tools(target: &Target) {
    let tools = inspect(target, &["--method", "tools/list"]);
    let mut names: Vec<&str> = tools["tools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    names.sort_unstable();
    assert_eq!(names, ["ask", "get", "search", "status"]);

    let search = inspect(
        target,
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
        target,
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

#[test]
fn the_mcp_inspector_lists_the_tools_and_calls_search_and_ask() {
    let dir = tempfile::tempdir().unwrap();
    let kb = pump_kb(dir.path());
    check_tools(&Target::Stdio(&kb));
}

/// `cairn mcp --http`, killed when the test ends.
struct HttpServer(Child);

impl Drop for HttpServer {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts `cairn mcp --http 127.0.0.1:0` and reads the address it bound from its first line.
fn serve_http(kb: &Path) -> (HttpServer, std::net::SocketAddr) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_cairn"))
        .args(["--kb", kb.to_str().unwrap(), "mcp", "--model", "tiny"])
        .args(["--http", "127.0.0.1:0"])
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let server = HttpServer(child);
    let line = lines.next().expect("a line on stderr").unwrap();
    let url = line
        .split_once("at http://")
        .unwrap_or_else(|| panic!("no address in {line:?}"))
        .1;
    let addr = url.strip_suffix("/mcp").unwrap().parse().unwrap();
    // Keep reading stderr so that the server never blocks on a full pipe.
    std::thread::spawn(move || lines.for_each(drop));
    (server, addr)
}

/// The status line of a raw `initialize` POST with these extra headers.
fn post_status(addr: std::net::SocketAddr, host: &str, extra: &str) -> String {
    let body = r#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"t","version":"1"}}}"#;
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(std::time::Duration::from_secs(30)))
        .unwrap();
    write!(
        s,
        "POST /mcp HTTP/1.1\r\nHost: {host}\r\n{extra}Content-Type: application/json\r\nAccept: application/json, text/event-stream\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut head = [0u8; 64];
    let n = s.read(&mut head).unwrap();
    String::from_utf8_lossy(&head[..n])
        .lines()
        .next()
        .unwrap_or_default()
        .to_owned()
}

#[test]
fn mcp_over_http_serves_the_inspector_and_refuses_other_hosts_and_origins() {
    let dir = tempfile::tempdir().unwrap();
    let kb = pump_kb(dir.path());
    let (_server, addr) = serve_http(&kb);
    let url = format!("http://{addr}/mcp");
    check_tools(&Target::Http(&url));

    let own = format!("127.0.0.1:{}", addr.port());
    assert!(post_status(addr, &own, "").contains(" 200 "), "own host");
    assert!(
        post_status(addr, &own, "Origin: http://localhost:5173\r\n").contains(" 200 "),
        "a loopback page"
    );
    // DNS rebinding: a page of another site whose name now points at 127.0.0.1.
    for (host, extra) in [
        ("evil.example:80", ""),
        (own.as_str(), "Origin: https://evil.example\r\n"),
        (own.as_str(), "Origin: null\r\n"),
    ] {
        let status = post_status(addr, host, extra);
        assert!(status.contains(" 403 "), "{host} {extra:?}: {status}");
    }
}

#[test]
fn mcp_over_http_refuses_an_address_off_this_machine() {
    let out = Command::new(env!("CARGO_BIN_EXE_cairn"))
        .args(["--kb", "/nonexistent", "mcp", "--model", "tiny"])
        .args(["--http", "0.0.0.0:0"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("0.0.0.0:0") && err.contains("loopback"),
        "{err}"
    );
}
