//! `cairn ask`: the answer streamed to the terminal, then its sources.

use std::io::Write;
use std::ops::ControlFlow;

use cairn_engine::text::{location, sanitize, snippet};
use cairn_engine::{file_of, Answer, AnswerSink, AnswerStream, Context, KbSource};

use crate::style::Paint;

/// Streams an answer to the terminal with verified citation markers after each sentence
/// ([`AnswerStream`] decides what is shown; this writes what is new of it).
pub struct Printer<W: Write> {
    out: W,
    stream: AnswerStream,
    printed: String,
    pub error: Option<std::io::Error>,
    pub show_context: bool,
    paint: Paint,
}

impl<W: Write> Printer<W> {
    /// `quoted`: the answer is a quote, shown only once it is finished and checked.
    pub fn new(out: W, show_context: bool, quoted: bool, paint: Paint) -> Self {
        Printer {
            out,
            stream: if quoted {
                AnswerStream::quoted()
            } else {
                AnswerStream::new()
            },
            printed: String::new(),
            error: None,
            show_context,
            paint,
        }
    }

    fn emit(&mut self, finished: bool) {
        let shown = self.stream.shown(finished);
        if let Some(new) = shown.strip_prefix(self.printed.as_str()) {
            if !new.is_empty() {
                let new = new.to_owned();
                if let Err(e) = self
                    .out
                    .write_all(self.paint.answer(&new).as_bytes())
                    .and_then(|()| self.out.flush())
                {
                    self.error.get_or_insert(e);
                }
                self.printed.push_str(&new);
            }
        }
    }

    /// The engine's decision on the finished answer (before [`Printer::finish`]): a quote is
    /// shown as the engine checked and cited it.
    pub fn settle(&mut self, answer: &Answer) {
        self.stream.settle(answer);
    }

    /// Ends the answer: the last sentence's marker, or nothing more when the engine withheld
    /// the answer (nothing of it was shown).
    pub fn finish(&mut self, withheld: bool) {
        if self.stream.is_empty() {
            return;
        }
        if withheld {
            self.stream.withhold();
        }
        self.emit(true);
        if !self.printed.is_empty() {
            let _ = writeln!(self.out);
        }
    }
}

impl<W: Write> AnswerSink for Printer<W> {
    fn context(&mut self, context: &Context) {
        self.stream.set_context(context);
        if self.show_context {
            let heading = format!("Context ({} tokens):", context.tokens);
            let _ = writeln!(self.out, "{}", self.paint.heading(&heading));
            for s in &context.sources {
                let _ = writeln!(
                    self.out,
                    "[{}] {}",
                    s.number,
                    location(&s.doc, s.page, s.lines, &s.heading)
                );
                for line in sanitize(&s.text()).lines() {
                    let _ = writeln!(self.out, "    {line}");
                }
            }
            let _ = writeln!(self.out);
        }
    }

    fn token(&mut self, piece: &str) -> ControlFlow<()> {
        self.stream.push(piece);
        self.emit(false);
        if self.error.is_some() {
            ControlFlow::Break(())
        } else {
            ControlFlow::Continue(())
        }
    }
}

/// The source list and abstention notice printed after an answer; `files` are the knowledge
/// base's sources, for links to the documents.
pub fn print_sources(
    out: &mut dyn Write,
    a: &Answer,
    quote: bool,
    paint: Paint,
    files: &[KbSource],
) -> std::io::Result<()> {
    let at = |doc: &str, page, lines: (u32, u32), heading: &[String]| {
        paint.link(
            &location(doc, page, lines, heading),
            file_of(files, doc).as_deref(),
            page,
            lines.0,
        )
    };
    if let Some(why) = a.why_withheld() {
        let notice = format!("Not found in the knowledge base ({why}).");
        writeln!(out, "{}", paint.warn(&notice))?;
        if !a.context.sources.is_empty() {
            writeln!(out, "\n{}", paint.heading("Closest passages:"))?;
        }
        for s in a.context.sources.iter().take(3) {
            writeln!(
                out,
                "  {} {}",
                paint.marker(&format!("[{}]", s.number)),
                at(&s.doc, s.page, s.lines, &s.heading)
            )?;
            writeln!(out, "      {}", snippet(&s.text(), 200))?;
        }
    } else {
        writeln!(out, "\n{}", paint.heading("Sources:"))?;
        let cited = a.cited_sources();
        for s in a
            .context
            .sources
            .iter()
            .filter(|s| cited.contains(&s.number))
        {
            // The lines the answer actually rests on.
            let lines = a.cited_lines(s.number);
            let span = (
                lines.iter().map(|l| l.0).min().unwrap_or(s.lines.0),
                lines.iter().map(|l| l.1).max().unwrap_or(s.lines.1),
            );
            writeln!(
                out,
                "  {} {}",
                paint.marker(&format!("[{}]", s.number)),
                at(&s.doc, s.page, span, &s.heading)
            )?;
            for e in &s.also {
                writeln!(
                    out,
                    "      {} {}",
                    paint.score("also in"),
                    at(&e.doc, e.page, e.lines, &[])
                )?;
            }
            if quote {
                for text in cairn_engine::answer::cited_sentences(s, &lines) {
                    for line in sanitize(&text).lines() {
                        writeln!(out, "      > {line}")?;
                    }
                }
            }
        }
        if a.claims.iter().any(|c| !c.supported) {
            writeln!(
                out,
                "  {} marks a sentence no source supports: check it yourself.",
                paint.marker("[?]")
            )?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use cairn_retriever::{Excerpt, Source};

    fn context() -> Context {
        Context {
            sources: vec![Source {
                number: 1,
                doc: "docs/pump.md".into(),
                heading: vec![],
                page: None,
                lines: (3, 3),
                chunks: vec![],
                rank: 1,
                score: 1.0,
                bm25: None,
                dense: None,
                excerpts: vec![Excerpt {
                    text: "The pump needs 3 litres of glycol.".into(),
                    lines: (3, 3),
                }],
                whole: true,
                also: vec![],
            }],
            tokens: 10,
        }
    }

    fn stream(pieces: &[&str]) -> String {
        stream_as(false, false, pieces).0
    }

    /// What was printed after all the pieces, and what after each piece.
    fn stream_as(quoted: bool, withheld: bool, pieces: &[&str]) -> (String, Vec<String>) {
        let mut out = Vec::new();
        let mut seen = Vec::new();
        {
            let mut p = Printer::new(&mut out, false, quoted, Paint::default());
            p.context(&context());
            for piece in pieces {
                let _ = p.token(piece);
                seen.push(p.printed.clone());
            }
            p.finish(withheld);
        }
        (String::from_utf8(out).unwrap(), seen)
    }

    #[test]
    fn nothing_that_may_be_withheld_is_ever_printed() {
        // A free answer none of whose sentences is supported: the engine withholds it.
        assert_eq!(stream(&["It is", " blue", ".", " And", " cold."]), "");
        // An unsupported sentence waits for a supported one, then both show.
        let (out, seen) = stream_as(
            false,
            false,
            &["It is blue.", " The pump needs 3 litres", " of glycol."],
        );
        assert_eq!(seen[0], "");
        assert_eq!(
            out,
            "It is blue [?]. The pump needs 3 litres of glycol [1].\n"
        );
        // A quote shows only when finished, and not at all when withheld (the NIST case: a
        // quote the model was unsure of, from a passage about something else).
        let (out, seen) = stream_as(true, false, &["3 litres", " of glycol"]);
        assert!(seen.iter().all(String::is_empty), "{seen:?}");
        assert_eq!(out, "3 litres of glycol [1]\n");
        let (out, seen) = stream_as(true, true, &["3", " litres"]);
        assert!(seen.iter().all(String::is_empty), "{seen:?}");
        assert_eq!(out, "");
    }

    #[test]
    fn streamed_sentences_get_verified_markers() {
        let out = stream(&[
            "The pump",
            " needs 3",
            " litres",
            " of glycol",
            ".",
            " It is",
            " blue",
            ".",
        ]);
        assert_eq!(
            out,
            "The pump needs 3 litres of glycol [1]. It is blue [?].\n"
        );
    }

    #[test]
    fn model_markers_and_escapes_never_reach_the_terminal() {
        let out = stream(&[
            "The pump needs 3 litres [",
            "2",
            "] of glycol",
            "\u{1b}[31m",
            ".",
        ]);
        assert_eq!(out, "The pump needs 3 litres of glycol [1].\n");
    }

    #[test]
    fn a_refusal_is_not_streamed() {
        assert_eq!(stream(&["NOT", " FOUND"]), "");
        assert_eq!(
            stream(&["No", "w the pump needs 3 litres of glycol."]),
            "Now the pump needs 3 litres of glycol [1].\n"
        );
    }
}
