//! Lines of a batch (`cairn ask --batch`, `cairn search --batch`): one question per line, plain
//! text or a JSON object with per-line settings. Parsing never fails as a whole: a bad line
//! becomes a [`LineError`] with a stable code, so that a batch answers every other line.

use serde_json::{json, Map, Value};

use crate::AskOptions;

/// One input line, parsed.
pub struct BatchLine {
    /// 1-based line number in the input.
    pub line: usize,
    /// The caller's id (the line number when none was given).
    pub id: Value,
    /// The question and its settings, or why the line cannot be asked.
    pub parsed: std::result::Result<(String, AskOptions), LineError>,
}

/// Why one line of a batch was not asked.
#[derive(Clone, Debug)]
pub struct LineError {
    /// A stable code: `bad_json`, `bad_field`, `missing_question`, `bad_utf8` or `failed`.
    pub code: &'static str,
    /// What was wrong, for a person.
    pub message: String,
}

impl LineError {
    /// A line error with its code and message.
    #[must_use]
    pub fn new(code: &'static str, message: impl Into<String>) -> Self {
        LineError {
            code,
            message: message.into(),
        }
    }
}

/// Reads a per-line override of type `T`, or the default.
fn field<T: serde::de::DeserializeOwned>(
    obj: &Map<String, Value>,
    key: &str,
    default: T,
) -> std::result::Result<T, LineError> {
    match obj.get(key) {
        None | Some(Value::Null) => Ok(default),
        Some(v) => serde_json::from_value(v.clone())
            .map_err(|e| LineError::new("bad_field", format!("`{key}`: {e}"))),
    }
}

/// Parses one non-blank line: plain text is the question itself; a JSON object holds `question`
/// (or `query`), an optional `id` and per-line overrides of `base`, each checked.
#[must_use]
pub fn parse_line(line_no: usize, line: &str, base: &AskOptions) -> BatchLine {
    let t = line.trim();
    let fallback_id = json!(line_no);
    if !t.starts_with('{') {
        return BatchLine {
            line: line_no,
            id: fallback_id,
            parsed: Ok((t.to_owned(), base.clone())),
        };
    }
    let obj: Map<String, Value> = match serde_json::from_str::<Value>(t) {
        Ok(Value::Object(o)) => o,
        Ok(_) => unreachable!("text starting with '{{' parses as an object or not at all"),
        Err(e) => {
            return BatchLine {
                line: line_no,
                id: fallback_id,
                parsed: Err(LineError::new("bad_json", e.to_string())),
            }
        }
    };
    let id = match obj.get("id") {
        None | Some(Value::Null) => fallback_id,
        Some(v @ (Value::String(_) | Value::Number(_))) => v.clone(),
        Some(_) => {
            return BatchLine {
                line: line_no,
                id: fallback_id,
                parsed: Err(LineError::new(
                    "bad_field",
                    "`id` must be a string or a number",
                )),
            }
        }
    };
    let parsed = (|| {
        let question = obj
            .get("question")
            .or_else(|| obj.get("query"))
            .and_then(Value::as_str)
            .map(str::trim)
            .filter(|q| !q.is_empty())
            .ok_or_else(|| {
                LineError::new(
                    "missing_question",
                    "no non-empty `question` (or `query`) string",
                )
            })?
            .to_owned();
        // A question leaning on the one before it, written out to stand alone.
        let question = match obj.get("after") {
            None | Some(Value::Null) => question,
            Some(Value::String(earlier)) => {
                crate::follow_up(earlier, &question).unwrap_or(question)
            }
            Some(_) => return Err(LineError::new("bad_field", "`after` must be a string")),
        };
        let mut o = base.clone();
        o.k = field(&obj, "k", o.k)?;
        if !(1..=100).contains(&o.k) {
            return Err(LineError::new("bad_field", "`k` must be 1–100"));
        }
        o.mode = field(&obj, "mode", o.mode)?;
        o.max_tokens = field(&obj, "max_tokens", o.max_tokens)?;
        if !(1..=2048).contains(&o.max_tokens) {
            return Err(LineError::new("bad_field", "`max_tokens` must be 1–2048"));
        }
        o.budget = field(&obj, "budget", o.budget)?;
        o.seed = field(&obj, "seed", o.seed)?;
        o.temperature = field(&obj, "temperature", o.temperature)?;
        if !(0.0..=2.0).contains(&o.temperature) {
            return Err(LineError::new("bad_field", "`temperature` must be 0–2"));
        }
        o.min_relevance = field(&obj, "min_relevance", o.min_relevance)?;
        o.min_coverage = field(&obj, "min_coverage", o.min_coverage)?;
        o.min_named_coverage = field(&obj, "min_named_coverage", o.min_named_coverage)?;
        o.min_rare_coverage = field(&obj, "min_rare_coverage", o.min_rare_coverage)?;
        o.min_relative_score = field(&obj, "min_relative_score", o.min_relative_score)?;
        o.free = field(&obj, "free", o.free)?;
        Ok((question, o))
    })();
    BatchLine {
        line: line_no,
        id,
        parsed,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn lines_parse_into_questions_overrides_or_errors() {
        let base = AskOptions::default();
        let plain = parse_line(3, "  What is a crate?  ", &base);
        assert_eq!(plain.id, json!(3));
        assert_eq!(plain.parsed.as_ref().unwrap().0, "What is a crate?");

        let obj = parse_line(
            1,
            r#"{"id": "q7", "question": "Why?", "k": 3, "mode": "bm25", "max_tokens": 50, "free": true, "min_relative_score": 0.5}"#,
            &base,
        );
        assert_eq!(obj.id, json!("q7"));
        let (q, o) = obj.parsed.unwrap();
        assert_eq!(q, "Why?");
        assert_eq!(
            (o.k, o.mode, o.max_tokens, o.free, o.min_relative_score),
            (3, cairn_retriever::Mode::Bm25, 50, true, 0.5)
        );

        let after = parse_line(
            2,
            r#"{"question": "Is it thread safe?", "after": "What is Rc<T>?"}"#,
            &base,
        );
        assert_eq!(after.parsed.unwrap().0, "Is Rc<T> thread safe?");

        for (line, code) in [
            (r#"{"id": 1, "question": "#, "bad_json"),
            (r#"{"id": 1}"#, "missing_question"),
            (r#"{"question": "x", "k": "many"}"#, "bad_field"),
            (r#"{"question": "x", "k": 0}"#, "bad_field"),
            (r#"{"question": "x", "mode": "psychic"}"#, "bad_field"),
            (r#"{"question": "x", "id": [1]}"#, "bad_field"),
            (r#"{"question": "x", "free": "yes"}"#, "bad_field"),
            (r#"{"question": "x", "after": 3}"#, "bad_field"),
        ] {
            let item = parse_line(1, line, &base);
            assert_eq!(item.parsed.unwrap_err().code, code, "{line}");
        }
    }
}
