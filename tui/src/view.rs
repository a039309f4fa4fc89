//! Drawing: `draw(&App)` reads the state and mutates nothing.

use std::time::Instant;

use cairn_engine::text::{location, sanitize, snippet};
use cairn_engine::Abstain;
use ratatui::layout::{Constraint, Layout, Position, Rect};
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, BorderType, Borders, Clear, Paragraph, Wrap};
use ratatui::Frame;
use unicode_width::{UnicodeWidthChar, UnicodeWidthStr};

use crate::app::{
    kb_label, mode_name, rates, App, AskMode, Focus, KbState, ModelState, SourceRow, TurnState,
};
use crate::keymap;

/// Where each pane is.
pub struct Areas {
    /// The conversation.
    pub answer: Rect,
    /// The sources.
    pub sources: Rect,
    /// The question box.
    pub input: Rect,
    /// The status line.
    pub status: Rect,
    /// Above the status line, a message too long for it (an error and its hint), whole; empty
    /// when there is none.
    pub message: Rect,
    /// That message ([`long_message`]).
    message_text: Option<String>,
}

/// Terminals narrower than this stack the panes.
const WIDE: u16 = 100;

/// The layout for the app's terminal size (also used by mouse handling).
pub fn areas(app: &App) -> Areas {
    let size = app.size;
    let inner = usize::from(size.width.saturating_sub(2)).max(1);
    let text = app.input_text();
    let rows = (UnicodeWidthStr::width(text.as_str()) / inner + 1).clamp(1, 4) as u16;
    let message_text = long_message(app);
    let message_rows = message_text.as_deref().map_or(0, |m| {
        let rows: usize = m
            .lines()
            .map(|l| UnicodeWidthStr::width(l).div_ceil(inner).max(1))
            .sum();
        rows.clamp(1, 4) as u16
    });
    let [main, message, input, status] = Layout::vertical([
        Constraint::Min(4),
        Constraint::Length(message_rows),
        Constraint::Length(rows + 2),
        Constraint::Length(1),
    ])
    .areas(size);
    let [answer, sources] = if size.width >= WIDE {
        let left = if size.width >= 140 { 58 } else { 50 };
        Layout::horizontal([
            Constraint::Percentage(left),
            Constraint::Percentage(100 - left),
        ])
        .areas(main)
    } else {
        Layout::vertical([Constraint::Percentage(55), Constraint::Percentage(45)]).areas(main)
    };
    Areas {
        answer,
        sources,
        input,
        status,
        message,
        message_text,
    }
}

/// The status message, when the status line cannot show it whole: more than one line (a hint
/// under an error), or wider than the room the line leaves it.
fn long_message(app: &App) -> Option<String> {
    let msg = sanitize(app.status.as_deref()?);
    let (left, right) = (status_left(app), status_right(app));
    let room = usize::from(app.size.width).saturating_sub(
        UnicodeWidthStr::width(left.as_str()) + UnicodeWidthStr::width(right.as_str()) + 2,
    );
    (msg.lines().count() > 1 || UnicodeWidthStr::width(msg.as_str()) + 2 > room).then_some(msg)
}

/// Styles, or none of their colours under NO_COLOR (bold, reverse and underline stay).
struct Theme {
    color: bool,
}

impl Theme {
    fn fg(&self, c: Color) -> Style {
        if self.color {
            Style::default().fg(c)
        } else {
            Style::default()
        }
    }
    fn dim(&self) -> Style {
        if self.color {
            Style::default().fg(Color::DarkGray)
        } else {
            Style::default().add_modifier(Modifier::DIM)
        }
    }
    fn marker(&self) -> Style {
        self.fg(Color::Cyan).add_modifier(Modifier::BOLD)
    }
    fn unsupported(&self) -> Style {
        if self.color {
            Style::default()
                .fg(Color::White)
                .bg(Color::Red)
                .add_modifier(Modifier::BOLD)
        } else {
            Style::default().add_modifier(Modifier::BOLD | Modifier::REVERSED)
        }
    }
    fn cited(&self) -> Style {
        if self.color {
            Style::default().fg(Color::Black).bg(Color::Yellow)
        } else {
            Style::default().add_modifier(Modifier::BOLD | Modifier::UNDERLINED)
        }
    }
    fn border(&self, focused: bool) -> Style {
        if focused {
            self.fg(Color::Cyan).add_modifier(Modifier::BOLD)
        } else {
            self.dim()
        }
    }
}

/// Draws the whole app.
pub fn draw(app: &App, f: &mut Frame) {
    let t = Theme { color: app.color };
    let a = areas(app);
    draw_conversation(app, &t, f, a.answer);
    draw_sources(app, &t, f, a.sources);
    draw_input(app, &t, f, a.input);
    draw_status(app, f, a.status, a.message_text.is_some());
    if let Some(m) = a.message_text {
        if a.message.height > 0 {
            f.render_widget(
                Paragraph::new(m)
                    .wrap(Wrap { trim: false })
                    .style(t.fg(Color::Yellow)),
                Rect {
                    x: a.message.x + 1,
                    width: a.message.width.saturating_sub(2),
                    ..a.message
                },
            );
        }
    }
    if app.doc.is_some() {
        draw_document(app, &t, f, app.size);
    }
    if app.help {
        draw_help(app, &t, f, app.size);
    }
}

fn block<'a>(title: impl Into<Line<'a>>, focused: bool, t: &Theme) -> Block<'a> {
    Block::default()
        .borders(Borders::ALL)
        .border_type(if focused {
            BorderType::Thick
        } else {
            BorderType::Plain
        })
        .border_style(t.border(focused))
        .title(title)
}

/// Word-wraps styled text to `width` cells: wide characters count two, words longer than the
/// line are split, `\n` breaks. A word may change style midway (`glycol [1].`): lines break
/// only at spaces.
#[must_use]
pub fn wrap(segments: &[(String, Style)], width: usize, indent: usize) -> Vec<Line<'static>> {
    enum Token {
        Word(Vec<(String, Style)>),
        Space(String, Style),
        Break,
    }
    // Words glued across segments.
    let mut tokens: Vec<Token> = Vec::new();
    for (text, style) in segments {
        let text = text.replace('\t', "    ");
        for piece in pieces(&text) {
            // A no-break space glues the words around it (it is a word character to
            // `pieces`) and is drawn as a space.
            let drawn = piece.replace('\u{a0}', " ");
            if piece == "\n" {
                tokens.push(Token::Break);
            } else if piece.starts_with('\u{200b}') {
                // A break opportunity of no width.
                tokens.push(Token::Space(String::new(), *style));
            } else if piece.starts_with(' ') {
                tokens.push(Token::Space(drawn, *style));
            } else if let Some(Token::Word(w)) = tokens.last_mut() {
                w.push((drawn, *style));
            } else {
                tokens.push(Token::Word(vec![(drawn, *style)]));
            }
        }
    }
    let width = width.max(indent + 8);
    let room = width - indent;
    let pad = " ".repeat(indent);
    let mut lines: Vec<Line<'static>> = Vec::new();
    let mut cur: Vec<Span<'static>> = Vec::new();
    let mut cur_w = 0;
    let flush =
        |lines: &mut Vec<Line<'static>>, cur: &mut Vec<Span<'static>>, cur_w: &mut usize| {
            // A line never ends in spaces it did not need.
            while cur.last().is_some_and(|s| s.content.trim().is_empty()) {
                cur.pop();
            }
            let mut spans = vec![Span::raw(pad.clone())];
            spans.append(cur);
            lines.push(Line::from(spans));
            *cur_w = 0;
        };
    for token in tokens {
        match token {
            Token::Break => flush(&mut lines, &mut cur, &mut cur_w),
            Token::Space(text, style) => {
                let w = UnicodeWidthStr::width(text.as_str());
                if cur_w + w <= room {
                    if cur_w > 0 {
                        cur.push(Span::styled(text, style));
                        cur_w += w;
                    }
                } else {
                    flush(&mut lines, &mut cur, &mut cur_w);
                }
            }
            Token::Word(parts) => {
                let w: usize = parts
                    .iter()
                    .map(|(t, _)| UnicodeWidthStr::width(t.as_str()))
                    .sum();
                if cur_w + w > room && cur_w > 0 {
                    flush(&mut lines, &mut cur, &mut cur_w);
                }
                for (text, style) in parts {
                    let pw = UnicodeWidthStr::width(text.as_str());
                    if cur_w + pw <= room {
                        cur.push(Span::styled(text, style));
                        cur_w += pw;
                        continue;
                    }
                    let mut chunk = String::new();
                    for c in text.chars() {
                        let cw = c.width().unwrap_or(0);
                        if cur_w + cw > room {
                            cur.push(Span::styled(std::mem::take(&mut chunk), style));
                            flush(&mut lines, &mut cur, &mut cur_w);
                        }
                        chunk.push(c);
                        cur_w += cw;
                    }
                    cur.push(Span::styled(chunk, style));
                }
            }
        }
    }
    if !cur.is_empty() {
        flush(&mut lines, &mut cur, &mut cur_w);
    }
    if lines.is_empty() {
        // An empty line still takes a row.
        lines.push(Line::raw(""));
    }
    lines
}

/// Splits text into words, runs of spaces and newlines.
fn pieces(text: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut start = 0;
    let mut kind = 0u8; // 0 none, 1 word, 2 space, 4 zero-width break
    for (i, c) in text.char_indices() {
        let k = match c {
            '\n' => 3,
            ' ' => 2,
            '\u{200b}' => 4,
            _ => 1,
        };
        if k == 3 {
            if i > start {
                out.push(&text[start..i]);
            }
            out.push("\n");
            start = i + 1;
            kind = 0;
            continue;
        }
        if kind != 0 && k != kind {
            out.push(&text[start..i]);
            start = i;
        }
        kind = k;
    }
    if start < text.len() {
        out.push(&text[start..]);
    }
    out
}

/// An answer's lines: prose wrapped with its styled citation markers; a fenced code block
/// line by line behind a gutter, in the code colour, without its fences, its indentation
/// kept and a line too long for the pane cut at its edge (not at words). The markers written
/// after a closing fence end the block's last line.
fn answer_lines(text: &str, t: &Theme, width: usize) -> Vec<Line<'static>> {
    let mut lines = Vec::new();
    let mut prose: Vec<&str> = Vec::new();
    let mut block: Option<Vec<&str>> = None;
    let flush_prose = |prose: &mut Vec<&str>, lines: &mut Vec<Line<'static>>| {
        if !prose.is_empty() {
            lines.extend(wrap(&marked(&prose.join("\n"), t), width, 2));
            prose.clear();
        }
    };
    for line in text.split('\n') {
        let trimmed = line.trim_start();
        match (block.as_mut(), cairn_engine::is_fence(line)) {
            (None, true) => {
                flush_prose(&mut prose, &mut lines);
                block = Some(Vec::new());
            }
            (Some(code), true) => {
                let after = trimmed.trim_start_matches(['`', '~']).trim();
                lines.extend(code_lines(code, after, t, width));
                block = None;
            }
            (Some(code), false) => code.push(line),
            (None, false) => prose.push(line),
        }
    }
    if let Some(code) = block {
        lines.extend(code_lines(&code, "", t, width));
    }
    flush_prose(&mut prose, &mut lines);
    lines
}

/// A code block's lines behind a gutter (see [`answer_lines`]), `after` (the citation markers
/// that followed its closing fence) at the end of the last.
fn code_lines(code: &[&str], after: &str, t: &Theme, width: usize) -> Vec<Line<'static>> {
    const GUTTER: &str = "  │ ";
    let room = width.saturating_sub(GUTTER.chars().count()).max(8);
    let style = t.fg(Color::Green);
    let mut lines = Vec::new();
    let last = code.len().saturating_sub(1);
    for (i, line) in code.iter().enumerate() {
        let line = line.replace('\t', "    ");
        let mut rows: Vec<String> = vec![String::new()];
        let mut w = 0;
        for c in line.chars() {
            let cw = c.width().unwrap_or(0);
            if w + cw > room {
                rows.push(String::new());
                w = 0;
            }
            rows.last_mut().expect("a row").push(c);
            w += cw;
        }
        let n = rows.len();
        for (j, row) in rows.into_iter().enumerate() {
            let mut spans = vec![Span::styled(GUTTER, t.dim()), Span::styled(row, style)];
            if i == last && j + 1 == n && !after.is_empty() {
                spans.extend(
                    marked(&format!(" {after}"), t)
                        .into_iter()
                        .filter(|(s, _)| !s.is_empty())
                        .map(|(s, st)| Span::styled(s.replace('\u{a0}', " "), st)),
                );
            }
            lines.push(Line::from(spans));
        }
    }
    if code.is_empty() && !after.is_empty() {
        lines.extend(wrap(&marked(after, t), width, 2));
    }
    lines
}

/// The answer text split into plain text and styled citation markers.
fn marked(text: &str, t: &Theme) -> Vec<(String, Style)> {
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(i) = rest.find(" [") {
        let after = &rest[i + 2..];
        let Some(j) = after.find(']') else { break };
        let inner = &after[..j];
        let is_marker = inner == "?"
            || (!inner.is_empty() && inner.split(',').all(|n| n.parse::<u32>().is_ok()));
        if !is_marker {
            out.push((rest[..i + 2].to_owned(), Style::default()));
            rest = &rest[i + 2..];
            continue;
        }
        out.push((rest[..i].to_owned(), Style::default()));
        // A no-break space: the marker stays on the line of the word it follows.
        out.push(("\u{a0}".to_owned(), Style::default()));
        let style = if inner == "?" {
            t.unsupported()
        } else {
            t.marker()
        };
        out.push((format!("[{inner}]"), style));
        rest = &after[j + 1..];
    }
    out.push((rest.to_owned(), Style::default()));
    out
}

/// Every line of the conversation pane at `width` (borders excluded).
pub fn conversation_lines(app: &App, width: u16) -> Vec<Line<'static>> {
    let t = Theme { color: app.color };
    let w = usize::from(width);
    let mut lines: Vec<Line<'static>> = Vec::new();
    if app.turns.is_empty() {
        lines.extend(welcome(app, &t, w));
    }
    for turn in &app.turns {
        let q_style = Style::default().add_modifier(Modifier::BOLD);
        let prefix = if turn.kind == AskMode::Search {
            "⌕ "
        } else {
            "› "
        };
        // The question with a hanging indent under its prompt mark.
        let mut q = wrap(&[(sanitize(&turn.question), q_style)], w, 2);
        if let Some(first) = q.first_mut().and_then(|l| l.spans.first_mut()) {
            *first = Span::styled(prefix, q_style);
        }
        lines.extend(q);
        if let Some(meant) = &turn.meant {
            lines.extend(wrap(
                &[(format!("taken as: {}", sanitize(meant)), t.dim())],
                w,
                2,
            ));
        }
        let spinner = ["⠋", "⠙", "⠹", "⠸", "⠼", "⠴", "⠦", "⠧", "⠇", "⠏"][(app.ticks % 10) as usize];
        match (&turn.state, turn.kind) {
            (TurnState::Waiting, AskMode::Search) => {
                lines.push(Line::styled(format!("  {spinner} searching…"), t.dim()));
            }
            (TurnState::Waiting, AskMode::Ask) => {
                let what = match (&turn.context, &app.model_state) {
                    (None, ModelState::Loading) => "waiting for the model to load…".to_owned(),
                    (None, _) => "retrieving…".to_owned(),
                    (Some(c), _) => format!("reading {} passage(s)…", c.sources.len()),
                };
                lines.push(Line::styled(format!("  {spinner} {what}"), t.dim()));
            }
            (TurnState::Failed(e), _) => {
                for (i, l) in e.lines().enumerate() {
                    let style = if i == 0 { t.fg(Color::Red) } else { t.dim() };
                    let text = if i == 0 {
                        format!("✗ {l}")
                    } else {
                        l.to_owned()
                    };
                    lines.extend(wrap(&[(text, style)], w, 2));
                }
            }
            (_, AskMode::Search) => {
                lines.push(Line::styled(
                    format!(
                        "  {} passage(s){} — details in the sources pane",
                        turn.hits.len(),
                        turn.search_ms
                            .map(|ms| format!(" in {ms:.0} ms"))
                            .unwrap_or_default()
                    ),
                    t.dim(),
                ));
                for h in turn.hits.iter().take(5) {
                    let c = &h.chunk;
                    lines.extend(wrap(
                        &[(
                            format!(
                                "{}. {}",
                                h.rank,
                                location(&c.doc, c.page, c.lines, &c.heading)
                            ),
                            t.fg(Color::Cyan),
                        )],
                        w,
                        2,
                    ));
                    lines.extend(wrap(&[(snippet(&c.text, 160), t.dim())], w, 5));
                    for e in &h.also {
                        let place = location(&e.doc, e.page, e.lines, &[]);
                        lines.extend(wrap(&[(format!("also in {place}"), t.dim())], w, 5));
                    }
                }
            }
            (state, AskMode::Ask) => {
                let abstained = turn.answer.as_ref().and_then(|a| a.abstained);
                if !turn.shown.is_empty() {
                    lines.extend(answer_lines(&turn.shown, &t, w));
                } else if *state == TurnState::Streaming {
                    // Nothing is shown before it is checked (it may yet be withheld).
                    lines.extend(wrap(
                        &[(
                            format!(
                                "{spinner} writing the answer, then checking it against the \
                                 sources…"
                            ),
                            t.dim(),
                        )],
                        w,
                        2,
                    ));
                }
                if *state == TurnState::Cancelled {
                    let what = if turn.shown.trim().is_empty() {
                        "⊘ cancelled"
                    } else {
                        "⊘ cancelled (the part above is what was written)"
                    };
                    lines.extend(wrap(&[(what.to_owned(), t.fg(Color::Yellow))], w, 2));
                } else if let (Some(reason), Some(a)) = (abstained, &turn.answer) {
                    let why = a.why_withheld().unwrap_or_default();
                    lines.extend(wrap(
                        &[(
                            format!("∅ Not found in the knowledge base ({why})."),
                            t.fg(Color::Yellow).add_modifier(Modifier::BOLD),
                        )],
                        w,
                        2,
                    ));
                    if reason == Abstain::Retrieval {
                        if let Some(g) = &turn.gates {
                            lines.extend(wrap(&[(gates_text(g), t.dim())], w, 4));
                        }
                    }
                    if !a.context.sources.is_empty() {
                        lines.push(Line::styled("  Closest passages:", t.dim()));
                    }
                    for s in a.context.sources.iter().take(3) {
                        lines.extend(wrap(
                            &[(
                                format!(
                                    "[{}] {}",
                                    s.number,
                                    location(&s.doc, s.page, s.lines, &s.heading)
                                ),
                                t.fg(Color::Cyan),
                            )],
                            w,
                            4,
                        ));
                    }
                }
                if let Some(a) = &turn.answer {
                    if abstained.is_none() && a.claims.iter().any(|c| !c.supported) {
                        lines.extend(wrap(
                            &[
                                ("[?]".into(), t.unsupported()),
                                (
                                    " marks a sentence no source supports: check it yourself."
                                        .into(),
                                    t.dim(),
                                ),
                            ],
                            w,
                            2,
                        ));
                    }
                    let tm = &a.timings;
                    if tm.answer_tokens > 0 {
                        lines.push(Line::styled(
                            format!(
                                "  {} · first token {:.1} s · {} token{} · {:.1} s",
                                turn.model,
                                tm.ttft_ms / 1e3,
                                tm.answer_tokens,
                                if tm.answer_tokens == 1 { "" } else { "s" },
                                tm.total_ms / 1e3
                            ),
                            t.dim(),
                        ));
                    }
                }
            }
        }
        lines.push(Line::raw(""));
    }
    lines
}

/// `value ≥ bar ✓` or `value < bar ✗` (each followed by `unit`), with `digits` decimals, or
/// more where fewer would show a failing value equal to its bar ("0.30 < 0.30").
fn against(value: f32, bar: f32, passed: bool, digits: usize, unit: &str) -> String {
    let mut d = digits;
    while d < digits + 3 && !passed && format!("{value:.d$}") == format!("{bar:.d$}") {
        d += 1;
    }
    let (sign, mark) = if passed { ("≥", "✓") } else { ("<", "✗") };
    format!("{value:.d$}{unit} {sign} {bar:.d$}{unit} {mark}")
}

fn gates_text(g: &cairn_engine::Gates) -> String {
    let mark = |ok: bool| if ok { "✓" } else { "✗" };
    let mut parts = Vec::new();
    if let Some(r) = g.relevance {
        parts.push(format!(
            "relevance {}",
            against(r, g.min_relevance, g.relevant(), 2, "")
        ));
    }
    parts.push(format!(
        "question words in one passage {}",
        against(
            g.coverage * 100.0,
            g.min_coverage * 100.0,
            g.coverage >= g.min_coverage,
            0,
            "%"
        )
    ));
    if !g.missing_names.is_empty() {
        parts.push(format!(
            "named but in no passage: {} (needs {:.0}% of the words) {}",
            sanitize(&g.missing_names.join(", ")),
            g.min_named_coverage * 100.0,
            mark(g.coverage >= g.min_named_coverage)
        ));
    }
    if let Some(r) = g.rare {
        parts.push(format!(
            "rare words held {:.0}% / {:.0}% (index / English), one ≥ {:.0}% {}",
            r.in_index * 100.0,
            r.in_english * 100.0,
            g.min_rare_coverage * 100.0,
            mark(g.rare_words_held())
        ));
    }
    if let Some(name) = &g.off_scope {
        parts.push(format!(
            "asks about {}: the answer's source is not about it ✗",
            sanitize(name)
        ));
    }
    if let Some((margin, bar)) = g.overruled {
        parts.push(format!(
            "answered all the same: the model's self-check {margin:.2} ≥ {bar:.2}"
        ));
    }
    format!("gates: {}", parts.join(" · "))
}

fn welcome(app: &App, t: &Theme, w: usize) -> Vec<Line<'static>> {
    let mut text: Vec<(String, Style)> = Vec::new();
    let kb = kb_label(&app.kb);
    match &app.kb_state {
        KbState::Missing => {
            text.push((
                format!("No knowledge base at {kb} yet.\n\n"),
                Style::default().add_modifier(Modifier::BOLD),
            ));
            text.push((
                "Add a folder of documents (Markdown, text, HTML, PDF, source code): type\n\n"
                    .into(),
                Style::default(),
            ));
            text.push(("    /add ~/notes\n\n".into(), t.fg(Color::Cyan)));
            text.push(("in the box below and press Enter, or run `cairn add PATH` in a shell. Folders are walked honouring .gitignore; nothing leaves this machine.".into(), Style::default()));
        }
        KbState::Failed(e) => {
            text.push((
                format!("The knowledge base at {kb} cannot be used:\n"),
                t.fg(Color::Red),
            ));
            text.push((format!("{e}\n"), Style::default()));
        }
        KbState::PacksOnly { documents, chunks } => {
            let packs = app.packs.join(", ");
            text.push((
                format!("No knowledge base of your own at {kb} yet: questions search the installed {} — {packs} ({documents} documents, {chunks} passages).\n\n",
                    if app.packs.len() == 1 { "pack" } else { "packs" }),
                Style::default(),
            ));
            text.push(("Ask a question below: the answer quotes the documents and cites document, page and lines for every sentence. To add your own documents, type ".into(), t.dim()));
            text.push(("/add ~/notes".into(), t.fg(Color::Cyan)));
            text.push((" and press Enter.".into(), t.dim()));
        }
        KbState::Opening => text.push((format!("Opening {kb}…"), t.dim())),
        KbState::Ready { documents, chunks } => {
            text.push((
                format!("{documents} documents, {chunks} passages in {kb}.\n\n"),
                Style::default(),
            ));
            text.push(("Ask a question below: the answer quotes your documents and cites document, page and lines for every sentence; [?] marks a sentence no source supports. Ctrl-T switches to search only. Tab moves between panes; ? (in a pane) or F1 shows every key.".into(), t.dim()));
        }
    }
    if let ModelState::Failed(e) = &app.model_state {
        text.push((
            format!(
                "\n\nThe model {} could not be loaded; search (Ctrl-T) still works:\n",
                app.model
            ),
            t.fg(Color::Red),
        ));
        text.push((e.clone(), Style::default()));
    }
    if let Some(i) = &app.ingest {
        text.push((
            format!(
                "\n\nAdding: {}/{} files, {} passages embedded… {}",
                i.done,
                i.total,
                i.embedded,
                sanitize(&i.current)
            ),
            t.fg(Color::Cyan),
        ));
    }
    wrap(&text, w, 1)
}

fn draw_conversation(app: &App, t: &Theme, f: &mut Frame, area: Rect) {
    let focused = app.focus == Focus::Answer;
    let lines = conversation_lines(app, area.width.saturating_sub(2));
    let height = usize::from(area.height.saturating_sub(2));
    let max = lines.len().saturating_sub(height);
    let top = app.answer_scroll.unwrap_or(max).min(max);
    let more = if top < max { " ↓ more " } else { "" };
    let title = Line::from(vec![Span::raw(" Answers "), Span::styled(more, t.dim())]);
    let shown: Vec<Line> = lines.into_iter().skip(top).take(height).collect();
    f.render_widget(Paragraph::new(shown).block(block(title, focused, t)), area);
}

/// A source's header lines: `▶ [1] doc p.3 L5–7 — Heading ● cited`, wrapped under the
/// location with a hanging indent.
fn source_header(r: &SourceRow, selected: bool, t: &Theme, width: usize) -> Vec<Line<'static>> {
    let cited = !r.cited.is_empty();
    let number = format!("[{}] ", r.number);
    let indent = 2 + number.chars().count();
    let mut body = vec![(
        // Paths may break after a slash.
        location(&r.doc, r.page, r.lines, &r.heading).replace('/', "/\u{200b}"),
        if selected {
            Style::default().add_modifier(Modifier::BOLD)
        } else {
            Style::default()
        },
    )];
    if cited {
        body.push((" ● cited".into(), t.fg(Color::Green)));
    }
    let mut lines = wrap(&body, width, indent);
    if let Some(first) = lines.first_mut() {
        first.spans[0] = Span::styled(if selected { "▶ " } else { "  " }, t.marker());
        let style = if cited {
            t.marker()
        } else {
            t.dim().add_modifier(Modifier::BOLD)
        };
        first.spans.insert(1, Span::styled(number, style));
    }
    lines
}

/// The retrieval legs behind a source. Each leg's words are held together by no-break spaces,
/// so a narrow pane breaks between legs, not inside one.
fn why_text(r: &SourceRow) -> String {
    let leg = |name: &str, l: Option<(usize, f32)>, fmt: &dyn Fn(f32) -> String| match l {
        Some((rank, s)) => format!("{name} #{rank} {}", fmt(s)),
        None => format!("{name} –"),
    };
    let mut text = vec![
        leg("BM25", r.bm25, &|s| format!("{s:.2}")),
        leg("dense", r.dense, &|s| format!("cos {s:.3}")),
        match r.fused {
            Some((rank, score)) => format!("fused #{rank} {score:.3}"),
            None => "not retrieved".to_owned(),
        },
    ];
    if let Some(why) = r.defines {
        text.push(why.into());
    }
    let text: Vec<String> = text.iter().map(|l| l.replace(' ', "\u{a0}")).collect();
    text.join(" · ")
}

/// Lines of the sources list at `width`: for each row its header, why, and gate; with the
/// row index each line belongs to.
fn source_list(
    app: &App,
    rows: &[SourceRow],
    width: usize,
    t: &Theme,
) -> Vec<(Option<usize>, Line<'static>)> {
    let mut out = Vec::new();
    if let Some(g) = app.turns.last().and_then(|x| x.gates.as_ref()) {
        for l in wrap(&[(gates_text(g), t.dim())], width, 0) {
            out.push((None, l));
        }
    }
    for (i, r) in rows.iter().enumerate() {
        for l in source_header(r, i == app.selected, t, width) {
            out.push((Some(i), l));
        }
        for l in wrap(&[(why_text(r), t.dim())], width, 4) {
            out.push((Some(i), l));
        }
        for l in wrap(&[(format!("gate: {}", r.gate), t.dim())], width, 4) {
            out.push((Some(i), l));
        }
        for e in &r.also {
            let place = location(&e.doc, e.page, e.lines, &[]);
            for l in wrap(&[(format!("also in {place}"), t.dim())], width, 4) {
                out.push((Some(i), l));
            }
        }
    }
    out
}

/// Which source row is at `at` in the sources pane `area`.
pub fn source_at(app: &App, area: Rect, at: Position) -> Option<usize> {
    let t = Theme { color: app.color };
    let rows = app.rows();
    let inner = area.inner(ratatui::layout::Margin::new(1, 1));
    if !inner.contains(at) {
        return None;
    }
    let list = source_list(app, &rows, usize::from(inner.width), &t);
    let (list_h, _) = split_heights(list.len(), inner.height);
    let offset = list_offset(app, &list, list_h);
    let y = usize::from(at.y - inner.y);
    if y >= usize::from(list_h) {
        return None;
    }
    list.get(offset + y).and_then(|(i, _)| *i)
}

fn split_heights(list_len: usize, height: u16) -> (u16, u16) {
    let list_h = (list_len as u16).min(height / 2).max(height.min(3));
    (list_h, height.saturating_sub(list_h))
}

/// The first list line shown, so that the selected row is visible.
fn list_offset(app: &App, list: &[(Option<usize>, Line<'static>)], height: u16) -> usize {
    let first = list
        .iter()
        .position(|(i, _)| *i == Some(app.selected))
        .unwrap_or(0);
    let last = list
        .iter()
        .rposition(|(i, _)| *i == Some(app.selected))
        .unwrap_or(0);
    let h = usize::from(height).max(1);
    if last < h {
        0
    } else {
        (last + 1 - h).min(first)
    }
}

fn draw_sources(app: &App, t: &Theme, f: &mut Frame, area: Rect) {
    let focused = app.focus == Focus::Sources;
    let rows = app.rows();
    let title = match app.turns.last() {
        Some(turn) if turn.kind == AskMode::Search => format!(" Search results ({}) ", rows.len()),
        Some(_) => format!(" Sources ({}) · why retrieved ", rows.len()),
        None => " Sources ".to_owned(),
    };
    let b = block(title, focused, t);
    let inner = b.inner(area);
    f.render_widget(b, area);
    if rows.is_empty() {
        let msg = match app.turns.last() {
            Some(turn) if matches!(turn.state, TurnState::Waiting) => "retrieving…",
            Some(_) => "no passages",
            None => "The passages behind each answer appear here, with why each was retrieved.",
        };
        f.render_widget(
            Paragraph::new(wrap(&[(msg.into(), t.dim())], usize::from(inner.width), 1)),
            inner,
        );
        return;
    }
    let list = source_list(app, &rows, usize::from(inner.width), t);
    let (list_h, passage_h) = split_heights(list.len(), inner.height);
    let offset = list_offset(app, &list, list_h);
    let shown: Vec<Line> = list
        .into_iter()
        .skip(offset)
        .take(usize::from(list_h))
        .map(|(_, l)| l)
        .collect();
    let [list_area, passage_area] =
        Layout::vertical([Constraint::Length(list_h), Constraint::Length(passage_h)]).areas(inner);
    f.render_widget(Paragraph::new(shown), list_area);
    if passage_h < 2 {
        return;
    }
    let Some(r) = rows.get(app.selected) else {
        return;
    };
    let mut lines = vec![Line::styled(
        format!(
            "─ [{}] passage · Enter: whole document · o: editor · Y: copy ",
            r.number
        ),
        t.dim(),
    )];
    let width = usize::from(passage_area.width);
    for (text, first) in &r.excerpts {
        for (k, l) in text.lines().enumerate() {
            let n = first + k as u32;
            let cited = r.is_cited(n);
            let gutter = format!("{n:>5} {}", if cited { "▌" } else { "│" });
            let style = if cited { t.cited() } else { Style::default() };
            let body = wrap(&[(sanitize(l), style)], width.saturating_sub(8).max(8), 0);
            for (j, b) in body.into_iter().enumerate() {
                let g = if j == 0 {
                    gutter.clone()
                } else {
                    format!("{:>5} {}", "", if cited { "▌" } else { "│" })
                };
                let mut spans = vec![Span::styled(
                    g + " ",
                    if cited { t.marker() } else { t.dim() },
                )];
                spans.extend(b.spans);
                lines.push(Line::from(spans));
            }
        }
        lines.push(Line::styled("      …", t.dim()));
    }
    lines.pop();
    let max = lines.len().saturating_sub(usize::from(passage_h));
    let top = app.passage_scroll.min(max);
    let shown: Vec<Line> = lines
        .into_iter()
        .skip(top)
        .take(usize::from(passage_h))
        .collect();
    f.render_widget(Paragraph::new(shown), passage_area);
}

fn draw_input(app: &App, t: &Theme, f: &mut Frame, area: Rect) {
    let focused = app.focus == Focus::Input;
    let mode = match app.ask_mode {
        AskMode::Ask => " Ask ",
        AskMode::Search => " Search ",
    };
    if let Some((q, at)) = &app.history_search {
        let found = at
            .and_then(|i| app.history.search(q, Some(i + 1)))
            .map(|(_, e)| sanitize(e))
            .unwrap_or_default();
        let title = format!(
            " history search: `{}` (Ctrl-R older · Enter take · Esc leave) ",
            sanitize(q)
        );
        let p = Paragraph::new(wrap(
            &[(found, Style::default())],
            usize::from(area.width.saturating_sub(2)),
            0,
        ))
        .block(block(title, true, t));
        f.render_widget(p, area);
        return;
    }
    let hint = Span::styled(" Enter · Ctrl-T ask/search · Tab panes · F1 help ", t.dim());
    let mut input = app.input.clone();
    input.set_block(block(
        Line::from(vec![
            Span::styled(mode, Style::default().add_modifier(Modifier::BOLD)),
            hint,
        ]),
        focused,
        t,
    ));
    if !focused {
        input.set_cursor_style(Style::default());
    }
    f.render_widget(&input, area);
}

/// The status line's left part: the knowledge base, the model, the mode.
fn status_left(app: &App) -> String {
    let kb = match &app.kb_state {
        KbState::Ready { documents, chunks } => {
            let packs = match app.packs.len() {
                0 => String::new(),
                1 => " + 1 pack".to_owned(),
                n => format!(" + {n} packs"),
            };
            format!(
                "{} · {documents} docs · {chunks} chunks{packs}",
                short_path(&app.kb)
            )
        }
        KbState::Missing => format!("{} · empty", short_path(&app.kb)),
        KbState::PacksOnly { documents, chunks } => {
            let packs = match app.packs.len() {
                1 => "1 pack".to_owned(),
                n => format!("{n} packs"),
            };
            format!(
                "{} · empty + {packs} · {documents} docs · {chunks} chunks",
                short_path(&app.kb)
            )
        }
        KbState::Opening => "opening…".to_owned(),
        KbState::Failed(_) => "knowledge base: error".to_owned(),
    };
    let spinner = ["◐", "◓", "◑", "◒"][(app.ticks % 4) as usize];
    let model = match &app.model_state {
        ModelState::Loading => format!("{spinner} loading {}", short(&app.model, 24)),
        ModelState::Ready(_) => short(&app.model, 24),
        ModelState::Failed(_) => format!("{} (failed)", short(&app.model, 20)),
    };
    let mode = format!(
        "{} · {}",
        mode_name(app.mode),
        match app.ask_mode {
            AskMode::Ask => "ask",
            AskMode::Search => "search",
        }
    );
    format!(" {kb} │ {model} │ {mode} ")
}

/// The status line's right part: the answer's speed, or the ingest's progress.
fn status_right(app: &App) -> String {
    let mut right = String::new();
    if let Some(turn) = app.turns.last() {
        // While an answer is written: its speed and its time to first token.
        if turn.kind == AskMode::Ask && turn.state == TurnState::Streaming {
            let (rate, ttft) = rates(turn, Instant::now());
            if let Some(tt) = ttft {
                right = format!("first token {:.1} s", tt.as_secs_f64());
            }
            if let Some(r) = rate {
                right = format!("{r:.1} tok/s · {right}");
            }
        }
    }
    if let Some(i) = &app.ingest {
        right = format!(
            "adding {}/{} files · {} embedded",
            i.done, i.total, i.embedded
        );
    }
    right
}

/// Draws the status line; `message_above`: the status message is shown whole above it.
fn draw_status(app: &App, f: &mut Frame, area: Rect, message_above: bool) {
    let mut right = status_right(app);
    // A message too long for the line is shown whole above it ([`long_message`]).
    let msg = app
        .status
        .as_deref()
        .filter(|_| !message_above)
        .map(|s| sanitize(s).lines().next().unwrap_or_default().to_owned())
        .or_else(|| match &app.model_state {
            ModelState::Failed(e) => {
                Some(format!("model: {}", e.lines().next().unwrap_or_default()))
            }
            _ => None,
        })
        .unwrap_or_default();
    let width = usize::from(area.width);
    let cells = |s: &str| UnicodeWidthStr::width(s);
    let mut left = status_left(app);
    // What gives way on a narrow terminal: the message first, then the rates, then the left.
    if cells(&left) + cells(&right) + 2 > width {
        right.clear();
    }
    if cells(&left) + 2 > width {
        left = short(&left, width.saturating_sub(2));
    }
    let room = width.saturating_sub(cells(&left) + cells(&right) + 2);
    let msg = if room >= 2 {
        short(&msg, room)
    } else {
        String::new()
    };
    let gap = room.saturating_sub(cells(&msg));
    let style = if app.color {
        Style::default().bg(Color::Blue).fg(Color::White)
    } else {
        Style::default().add_modifier(Modifier::REVERSED)
    };
    let line = Line::from(vec![
        Span::styled(left, style.add_modifier(Modifier::BOLD)),
        Span::styled(
            format!(" {msg}{} ", " ".repeat(gap)),
            if app.quit_armed {
                style.add_modifier(Modifier::BOLD)
            } else {
                style
            },
        ),
        Span::styled(right, style),
    ]);
    f.render_widget(Paragraph::new(line).style(style), area);
}

/// The last two components of a path (`cairn/kb`), for the status line.
fn short_path(p: &std::path::Path) -> String {
    let parts: Vec<String> = p
        .components()
        .rev()
        .take(2)
        .map(|c| sanitize(&c.as_os_str().to_string_lossy()))
        .collect();
    let s: Vec<&str> = parts.iter().rev().map(String::as_str).collect();
    short(&s.join("/"), 24)
}

/// Cuts text to `max` cells with `…`.
fn short(s: &str, max: usize) -> String {
    if UnicodeWidthStr::width(s) <= max {
        return s.to_owned();
    }
    let mut out = String::new();
    let mut w = 0;
    for c in s.chars() {
        let cw = c.width().unwrap_or(0);
        if w + cw + 1 > max {
            break;
        }
        out.push(c);
        w += cw;
    }
    out + "…"
}

fn popup(area: Rect, w: u16, h: u16) -> Rect {
    let w = w.min(area.width);
    let h = h.min(area.height);
    Rect::new(
        area.x + (area.width - w) / 2,
        area.y + (area.height - h) / 2,
        w,
        h,
    )
}

fn draw_document(app: &App, t: &Theme, f: &mut Frame, area: Rect) {
    let Some(doc) = &app.doc else { return };
    // The whole screen but the status line.
    let r = Rect::new(
        area.x,
        area.y,
        area.width,
        area.height.saturating_sub(1).max(3),
    );
    f.render_widget(Clear, r);
    let title = format!(
        " {} · Esc close · o editor ",
        short(&doc.title, usize::from(r.width).saturating_sub(24))
    );
    let b = block(title, true, t);
    let inner = b.inner(r);
    f.render_widget(b, r);
    let mut lines: Vec<Line> = Vec::new();
    if let Some(e) = &doc.error {
        lines.extend(wrap(
            &[(e.clone(), t.fg(Color::Yellow))],
            usize::from(inner.width),
            0,
        ));
    }
    match &doc.lines {
        None if doc.error.is_none() => lines.push(Line::styled("reading…", t.dim())),
        None => {}
        Some(dl) => {
            let width = usize::from(inner.width).saturating_sub(8).max(8);
            for (k, l) in dl.lines.iter().enumerate().skip(doc.scroll) {
                if lines.len() >= usize::from(inner.height) {
                    break;
                }
                let n = dl.first_line + k as u32;
                let cited = doc.highlight.iter().any(|&(a, b)| a <= n && n <= b);
                let in_passage = doc.passage.0 <= n && n <= doc.passage.1;
                let glyph = if cited {
                    "▌"
                } else if in_passage {
                    "┃"
                } else {
                    "│"
                };
                let style = if cited { t.cited() } else { Style::default() };
                for (j, b) in wrap(&[(l.clone(), style)], width, 0)
                    .into_iter()
                    .enumerate()
                {
                    let g = if j == 0 {
                        format!("{n:>5} {glyph} ")
                    } else {
                        format!("{:>5} {glyph} ", "")
                    };
                    let mut spans = vec![Span::styled(
                        g,
                        if cited || in_passage {
                            t.marker()
                        } else {
                            t.dim()
                        },
                    )];
                    spans.extend(b.spans);
                    lines.push(Line::from(spans));
                }
                if dl.lines.is_empty() {
                    break;
                }
            }
        }
    }
    lines.truncate(usize::from(inner.height));
    f.render_widget(Paragraph::new(lines), inner);
}

fn draw_help(app: &App, t: &Theme, f: &mut Frame, area: Rect) {
    let r = popup(area, 96, area.height.saturating_sub(2).max(10));
    f.render_widget(Clear, r);
    let b = block(
        " Keys · ↑/↓ PgUp/PgDn scroll · any other key closes ",
        true,
        t,
    );
    let inner = b.inner(r);
    f.render_widget(b, r);
    let width = usize::from(inner.width);
    let keys_w = 26.min(width / 2);
    let mut lines = Vec::new();
    for (title, rows) in keymap::sections() {
        lines.push(Line::styled(
            title,
            Style::default().add_modifier(Modifier::BOLD),
        ));
        for (keys, help) in rows {
            let k = short(&keys, keys_w);
            let pad = keys_w.saturating_sub(UnicodeWidthStr::width(k.as_str()));
            let body = wrap(
                &[(help.to_owned(), Style::default())],
                width.saturating_sub(keys_w + 2),
                0,
            );
            for (j, l) in body.into_iter().enumerate() {
                let mut spans = if j == 0 {
                    vec![Span::styled(
                        format!("  {k}{}", " ".repeat(pad)),
                        t.marker(),
                    )]
                } else {
                    vec![Span::raw(" ".repeat(keys_w + 2))]
                };
                spans.extend(l.spans);
                lines.push(Line::from(spans));
            }
        }
    }
    lines.push(Line::styled(
        "Type /add PATH in the box to add a file or folder.",
        t.dim(),
    ));
    let max = lines.len().saturating_sub(usize::from(inner.height));
    let shown: Vec<Line> = lines.into_iter().skip(app.help_scroll.min(max)).collect();
    f.render_widget(Paragraph::new(shown), inner);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(lines: &[Line]) -> Vec<String> {
        lines
            .iter()
            .map(|l| l.spans.iter().map(|s| s.content.as_ref()).collect())
            .collect()
    }

    #[test]
    fn a_value_against_its_bar_never_reads_as_equal_when_it_failed() {
        assert_eq!(against(0.12, 0.3, false, 2, ""), "0.12 < 0.30 ✗");
        assert_eq!(against(0.2996, 0.3, false, 2, ""), "0.2996 < 0.3000 ✗");
        assert_eq!(against(0.3, 0.3, true, 2, ""), "0.30 ≥ 0.30 ✓");
        assert_eq!(against(62.4, 25.0, true, 0, "%"), "62% ≥ 25% ✓");
        assert_eq!(against(24.8, 25.0, false, 0, "%"), "24.8% < 25.0% ✗");
    }

    #[test]
    fn wraps_words_wide_characters_and_long_words() {
        let plain = Style::default();
        let l = wrap(&[("the quick brown fox jumps".into(), plain)], 10, 0);
        assert_eq!(text(&l), ["the quick", "brown fox", "jumps"]);
        // Two cells per CJK character: four fit in eight cells.
        let l = wrap(&[("漢字漢字漢字 ok".into(), plain)], 8, 0);
        assert_eq!(text(&l), ["漢字漢字", "漢字 ok"]);
        for line in &l {
            assert!(line.width() <= 8);
        }
        let l = wrap(&[("abcdefghijkl".into(), plain)], 10, 2);
        assert_eq!(text(&l), ["  abcdefgh", "  ijkl"]);
        assert_eq!(
            text(&wrap(&[("a\n\nb".into(), plain)], 8, 0)),
            ["a", "", "b"]
        );
    }

    #[test]
    fn markers_are_styled_apart_from_bracketed_text() {
        let t = Theme { color: false };
        let m = marked("It is [not] blue [1,2]. Green [?].", &t);
        let styled: Vec<&str> = m
            .iter()
            .filter(|(_, s)| *s != Style::default())
            .map(|(x, _)| x.as_str())
            .collect();
        assert_eq!(styled, ["[1,2]", "[?]"]);
        let all: String = m.iter().map(|(x, _)| x.as_str()).collect();
        assert_eq!(all, "It is [not] blue\u{a0}[1,2]. Green\u{a0}[?].");
    }
}
