//! `cairn ask --batch` and `cairn search --batch` with the real models: output in input order,
//! every line valid against the JSON Schema in `schema/`, a bad line costs only itself, exit
//! codes, determinism, and a closed pipe is not an error.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use common::{cairn, cairn_with_stdin, kb};
use serde_json::Value;

/// Checks `v` against the part of JSON Schema (2020-12) that cairn's schemas use: `type`,
/// `const`, `enum`, `required`, `properties`, `additionalProperties: false`, `items`,
/// `minItems`/`maxItems`, `minimum`/`maximum`, `oneOf` and local `$ref`s. Returns the first
/// violation with its JSON path.
fn check(schema: &Value, root: &Value, v: &Value, path: &str) -> Result<(), String> {
    if let Some(r) = schema.get("$ref").and_then(Value::as_str) {
        let name = r.strip_prefix("#/$defs/").expect("local refs only");
        return check(&root["$defs"][name], root, v, path);
    }
    if let Some(options) = schema.get("oneOf").and_then(Value::as_array) {
        let ok: Vec<_> = options.iter().map(|s| check(s, root, v, path)).collect();
        let passing = ok.iter().filter(|r| r.is_ok()).count();
        if passing != 1 {
            return Err(format!("{path}: matches {passing} of oneOf ({ok:?})"));
        }
        return Ok(());
    }
    if let Some(t) = schema.get("type") {
        let types: Vec<&str> = match t {
            Value::String(s) => vec![s.as_str()],
            Value::Array(a) => a.iter().filter_map(Value::as_str).collect(),
            _ => panic!("bad type in schema"),
        };
        let fits = |t: &str| match t {
            "object" => v.is_object(),
            "array" => v.is_array(),
            "string" => v.is_string(),
            "integer" => v.is_u64() || v.is_i64(),
            "number" => v.is_number(),
            "boolean" => v.is_boolean(),
            "null" => v.is_null(),
            other => panic!("unknown type {other}"),
        };
        if !types.iter().any(|t| fits(t)) {
            return Err(format!("{path}: {v} is not {types:?}"));
        }
    }
    if let Some(c) = schema.get("const") {
        if c != v {
            return Err(format!("{path}: {v} is not {c}"));
        }
    }
    if let Some(e) = schema.get("enum").and_then(Value::as_array) {
        if !e.contains(v) {
            return Err(format!("{path}: {v} not in {e:?}"));
        }
    }
    if let Some(n) = v.as_f64() {
        if schema
            .get("minimum")
            .and_then(Value::as_f64)
            .is_some_and(|m| n < m)
        {
            return Err(format!("{path}: {n} below minimum"));
        }
        if schema
            .get("maximum")
            .and_then(Value::as_f64)
            .is_some_and(|m| n > m)
        {
            return Err(format!("{path}: {n} above maximum"));
        }
    }
    if let Some(obj) = v.as_object() {
        for key in schema
            .get("required")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let key = key.as_str().unwrap();
            if !obj.contains_key(key) {
                return Err(format!("{path}: missing `{key}`"));
            }
        }
        let props = schema.get("properties").and_then(Value::as_object);
        for (k, val) in obj {
            match props.and_then(|p| p.get(k)) {
                Some(s) => check(s, root, val, &format!("{path}.{k}"))?,
                None if schema.get("additionalProperties") == Some(&Value::Bool(false)) => {
                    return Err(format!("{path}: unexpected `{k}`"));
                }
                None => {}
            }
        }
    }
    if let Some(items) = v.as_array() {
        if let Some(s) = schema.get("items") {
            for (i, item) in items.iter().enumerate() {
                check(s, root, item, &format!("{path}[{i}]"))?;
            }
        }
        let n = items.len() as u64;
        if schema
            .get("minItems")
            .and_then(Value::as_u64)
            .is_some_and(|m| n < m)
        {
            return Err(format!("{path}: fewer than minItems"));
        }
        if schema
            .get("maxItems")
            .and_then(Value::as_u64)
            .is_some_and(|m| n > m)
        {
            return Err(format!("{path}: more than maxItems"));
        }
    }
    Ok(())
}

fn schema(name: &str) -> Value {
    let path = format!("{}/schema/{name}", env!("CARGO_MANIFEST_DIR"));
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn validate(schema: &Value, line: &str) -> Value {
    let v: Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
    if let Err(e) = check(schema, schema, &v, "$") {
        panic!("schema violation: {e}\n{line}");
    }
    v
}

#[test]
fn the_checker_rejects_what_the_schema_forbids() {
    let s = schema("answer.schema.json");
    let good = r#"{"schema_version":1,"id":"a","line":1,"question":"q","error":{"code":"bad_json","message":"m"}}"#;
    validate(&s, good);
    for bad in [
        r#"{"schema_version":2,"id":"a","line":1,"question":"q","error":{"code":"bad_json","message":"m"}}"#,
        r#"{"schema_version":1,"id":"a","line":0,"question":"q","error":{"code":"bad_json","message":"m"}}"#,
        r#"{"schema_version":1,"id":"a","line":1,"question":"q","error":{"code":"oops","message":"m"}}"#,
        r#"{"schema_version":1,"id":"a","line":1,"question":"q","error":{"code":"bad_json","message":"m"},"extra":1}"#,
        r#"{"schema_version":1,"id":[1],"line":1,"question":"q","error":{"code":"bad_json","message":"m"}}"#,
    ] {
        let v: Value = serde_json::from_str(bad).unwrap();
        assert!(check(&s, &s, &v, "$").is_err(), "accepted: {bad}");
    }
}

const INPUT: &str = r#"{"id": "glycol", "question": "How much glycol is needed to prime the Orvane pump?"}
Where was the Orvane pump designed?

{"id": "broken", "question":
{"id": "empty", "question": "   "}
{"id": 7, "question": "Which country won the 1998 FIFA World Cup?", "max_tokens": 40}
{"id": "typo", "question": "How often are the seals replaced?", "k": "eight"}
"#;

#[test]
fn a_batch_answers_in_order_validates_and_isolates_bad_lines() {
    let s = schema("answer.schema.json");
    let (code, out, err) = cairn_with_stdin(&["ask", "--batch", "-"], INPUT);
    let lines: Vec<Value> = out.lines().map(|l| validate(&s, l)).collect();
    assert_eq!(
        lines.len(),
        6,
        "one output per non-blank line:\n{out}\n{err}"
    );
    // Some lines failed: that exit code wins over "some not found".
    assert_eq!(code, 4, "{err}");
    assert!(
        err.is_empty() || !err.contains('\r'),
        "no progress when stderr is not a terminal"
    );

    let ids: Vec<&Value> = lines.iter().map(|v| &v["id"]).collect();
    assert_eq!(
        ids,
        [
            &Value::from("glycol"),
            &Value::from(2),
            // A line that is not JSON has no readable id: its line number stands in.
            &Value::from(4),
            &Value::from("empty"),
            &Value::from(7),
            &Value::from("typo")
        ]
    );
    let input_lines: Vec<u64> = lines.iter().map(|v| v["line"].as_u64().unwrap()).collect();
    assert_eq!(input_lines, [1, 2, 4, 5, 6, 7]);

    assert_eq!(lines[0]["abstained"], false, "{}", lines[0]);
    assert!(lines[0]["answer"].as_str().unwrap().contains('3'));
    assert!(
        lines[1]["answer"].as_str().unwrap().contains("Tallinn"),
        "{}",
        lines[1]
    );
    assert_eq!(lines[2]["error"]["code"], "bad_json");
    assert_eq!(lines[3]["error"]["code"], "missing_question");
    assert_eq!(lines[4]["abstained"], true, "{}", lines[4]);
    assert_eq!(lines[5]["error"]["code"], "bad_field");
    // The model was loaded once: the fixed prefix is reused from the second question on.
    assert!(
        lines[1]["timings"]["reused_tokens"].as_u64().unwrap() > 100,
        "{}",
        lines[1]
    );
}

fn without_timings(out: &str) -> Vec<Value> {
    out.lines()
        .map(|l| {
            let mut v: Value = serde_json::from_str(l).unwrap();
            v.as_object_mut().unwrap().remove("timings");
            v
        })
        .collect()
}

#[test]
fn the_same_batch_twice_gives_the_same_output_but_timings() {
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("q.jsonl");
    std::fs::write(
        &file,
        "Where was the Orvane pump designed?\n\
         {\"id\": \"s\", \"question\": \"What does a red lamp on the Orvane panel mean?\", \"temperature\": 0.8, \"seed\": 11}\n",
    )
    .unwrap();
    let run = || {
        let (code, out, err) = cairn(kb(), &["ask", "--batch", file.to_str().unwrap()]);
        assert_eq!(code, 0, "{out}{err}");
        out
    };
    let (a, b) = (run(), run());
    assert_eq!(without_timings(&a), without_timings(&b));
    assert_eq!(a.lines().count(), 2);
}

#[test]
fn only_abstentions_exit_3() {
    let (code, out, _) = cairn_with_stdin(
        &["ask", "--batch", "-"],
        "Which country won the 1998 FIFA World Cup?\n",
    );
    assert_eq!(code, 3, "{out}");
}

#[test]
fn search_batch_validates_and_a_closed_pipe_is_not_an_error() {
    let s = schema("search.schema.json");
    let input = "glycol priming\n{\"id\": \"t\", \"query\": \"tomato sun\", \"k\": 2, \"mode\": \"bm25\"}\n{\"k\": 2}\n";
    let (code, out, err) = cairn_with_stdin(&["search", "--batch", "-"], input);
    assert_eq!(code, 4, "{err}");
    let lines: Vec<Value> = out.lines().map(|l| validate(&s, l)).collect();
    assert_eq!(lines.len(), 3);
    // BM25 finds only the one document with these words; `k` caps the list.
    assert_eq!(lines[1]["hits"].as_array().unwrap().len(), 1);
    assert_eq!(lines[0]["hits"][0]["doc"], "docs/pumps.md", "{}", lines[0]);
    assert_eq!(lines[1]["hits"][0]["doc"], "docs/garden.md");
    assert_eq!(lines[2]["error"]["code"], "missing_question");

    // Many queries into a reader that leaves after one line.
    let many = "glycol question\n".repeat(400);
    let mut child = Command::new(env!("CARGO_BIN_EXE_cairn"))
        .args(["search", "--batch", "-"])
        .env("CAIRN_KB", kb())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    std::thread::spawn(move || {
        use std::io::Write;
        let _ = stdin.write_all(many.as_bytes());
    });
    let mut first = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut first)
        .unwrap();
    validate(&s, first.trim());
    // stdout is closed here (the reader was dropped).
    let out = child.wait_with_output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn ask_without_a_question_or_batch_is_a_usage_error() {
    let (code, _, err) = cairn(kb(), &["ask"]);
    assert_eq!(code, 2, "{err}");
}
