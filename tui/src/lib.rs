//! cairn-tui: the terminal interface — ask, watch the answer stream with verified citations,
//! and see why each passage was retrieved.
//!
//! [`App`] holds all state; one [`Event`] enum merges keys, mouse, paste, resizes, ticks and
//! the worker's messages; [`App::update`] is the only place state changes, and
//! [`view::draw`] only reads it. Retrieval, generation and ingest run on the worker thread
//! ([`worker`]), which reports by channel, so the UI thread never waits on the model. The app
//! does no I/O itself: it returns [`Effect`]s (send a request, copy, save, open an editor)
//! that [`run`] carries out. Keys are one table ([`keymap::KEYMAP`]); help and the README's
//! key list are generated from it.
//!
//! The design decision to know: the app never holds the engine. It talks to it only through
//! [`worker::Request`] and [`worker::Msg`], so tests drive the real `App` with scripted
//! messages, and the engine knows nothing of screens.

pub mod app;
mod history;
pub mod keymap;
pub mod view;
pub mod worker;

use std::io::{self, Write};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::sync::Arc;
use std::time::{Duration, Instant};

pub use app::{App, Effect, Event, Options};
use base64::Engine as _;
use ratatui::crossterm::event::{
    self as ct, DisableBracketedPaste, DisableMouseCapture, EnableBracketedPaste,
    EnableMouseCapture,
};
use ratatui::crossterm::execute;
use ratatui::crossterm::terminal::{
    disable_raw_mode, enable_raw_mode, EnterAlternateScreen, LeaveAlternateScreen,
};
use ratatui::prelude::CrosstermBackend;
use ratatui::Terminal;

pub use history::History;

/// Puts the terminal back as it was: main screen, cooked mode, no mouse or paste reporting.
fn restore() {
    let _ = disable_raw_mode();
    let _ = execute!(
        io::stdout(),
        DisableBracketedPaste,
        DisableMouseCapture,
        LeaveAlternateScreen,
        ratatui::crossterm::cursor::Show
    );
}

/// Restores the terminal when dropped (on quit and on error).
struct Guard;

impl Guard {
    fn enter() -> io::Result<Self> {
        enable_raw_mode()?;
        let guard = Guard;
        execute!(
            io::stdout(),
            EnterAlternateScreen,
            EnableMouseCapture,
            EnableBracketedPaste
        )?;
        Ok(guard)
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        restore();
    }
}

/// Where `CAIRN_TUI_TRACE` asks frame and token timings to be written (benchmarks read it).
struct Trace {
    out: Option<std::fs::File>,
}

impl Trace {
    fn new() -> Self {
        let out = std::env::var_os("CAIRN_TUI_TRACE").and_then(|p| std::fs::File::create(p).ok());
        Trace { out }
    }
    fn line(&mut self, text: std::fmt::Arguments) {
        if let Some(f) = &mut self.out {
            let _ = writeln!(f, "{text}");
        }
    }
}

/// Opens the app on `options.kb` and runs it until the user quits. The terminal is restored
/// on the way out, on error and on panic. `start` is when the process began (the first
/// frame's time is measured from it).
pub fn run(options: Options, start: Instant) -> io::Result<()> {
    let previous = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        // The app's own thread: give the terminal back, then report as usual. A worker's
        // thread: its panic is caught and shown in the app, so the screen is left alone.
        if std::thread::current().name() == Some("main") {
            restore();
            previous(info);
        }
    }));
    let _guard = Guard::enter()?;
    let mut terminal = Terminal::new(CrosstermBackend::new(io::stdout()))?;
    let mut trace = Trace::new();
    let (tx, rx) = mpsc::channel::<Event>();
    let (kb, model, packs, read) = (
        options.kb.clone(),
        options.model.clone(),
        options.packs.clone(),
        options.read.clone(),
    );
    let mut app = App::new(options);
    let size = terminal.size()?;
    app.update(Event::Resize(size.width, size.height));
    // The first frame, before anything loads.
    terminal.draw(|f| view::draw(&app, f))?;
    trace.line(format_args!(
        "first_frame_ms {:.2}",
        start.elapsed().as_secs_f64() * 1e3
    ));

    let paused = Arc::new(AtomicBool::new(false));
    spawn_input(tx.clone(), Arc::clone(&paused));
    let worker = worker::spawn(kb, model, packs, read, tx.clone());
    let tick = Duration::from_millis(250);
    // At most one frame per 16 ms: a burst of tokens is drawn once.
    let frame = Duration::from_millis(16);
    let mut last_tick = Instant::now();
    let mut last_draw = Instant::now();
    let mut dirty = false;
    let mut shown_tokens = 0usize;
    let mut traced_answer = false;
    loop {
        let timeout = if dirty {
            frame.saturating_sub(last_draw.elapsed())
        } else {
            tick.saturating_sub(last_tick.elapsed())
        };
        match rx.recv_timeout(timeout) {
            Ok(ev) => {
                app.update(ev);
                dirty = true;
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {}
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
        }
        // Everything already waiting is applied before the next frame.
        while let Ok(ev) = rx.try_recv() {
            app.update(ev);
            dirty = true;
        }
        if last_tick.elapsed() >= tick {
            app.update(Event::Tick);
            last_tick = Instant::now();
            // Ticks only animate spinners. While the model reads a prompt a redraw would take
            // a core from it (two-core machines: both of its threads then wait), so a running
            // question is redrawn only when something arrives.
            if app.running().is_none() {
                dirty = true;
            }
        }
        for effect in app.take_effects() {
            match effect {
                Effect::Send(r) => worker.send(r),
                Effect::Cancel => worker.cancel(),
                Effect::Copy(text) => {
                    let b64 = base64::engine::general_purpose::STANDARD.encode(text);
                    let mut out = io::stdout();
                    let _ = write!(out, "\x1b]52;c;{b64}\x07");
                    let _ = out.flush();
                }
                Effect::Save(md) => app.update(Event::Status(save(&md))),
                Effect::LoadDocument(path, page) => {
                    let tx = tx.clone();
                    std::thread::spawn(move || {
                        let r =
                            cairn_engine::document_lines(&path, page).map_err(|e| e.to_string());
                        let _ = tx.send(Event::Document(r));
                    });
                }
                Effect::OpenEditor(path, page, line) => {
                    let msg = match editor_target(&path, page, line) {
                        Ok((file, line)) => open_editor(&mut terminal, &paused, &file, line),
                        Err(e) => e,
                    };
                    app.update(Event::Status(msg));
                }
            }
        }
        if app.quit {
            break;
        }
        if !dirty || last_draw.elapsed() < frame {
            continue;
        }
        let t0 = Instant::now();
        terminal.draw(|f| view::draw(&app, f))?;
        last_draw = Instant::now();
        dirty = false;
        let frame = t0.elapsed();
        if let Some(turn) = app.turns.last() {
            if turn.tokens > 0 && shown_tokens == 0 {
                trace.line(format_args!(
                    "first_token_on_screen_ms {:.2}",
                    turn.sent.elapsed().as_secs_f64() * 1e3
                ));
            }
            if turn.tokens > 0 && turn.state == app::TurnState::Streaming {
                trace.line(format_args!("frame_us {}", frame.as_micros()));
            }
            if let (Some(a), false) = (&turn.answer, traced_answer) {
                let t = &a.timings;
                trace.line(format_args!("engine_ttft_ms {:.2}", t.ttft_ms));
                trace.line(format_args!("engine_retrieve_ms {:.2}", t.retrieve_ms));
                trace.line(format_args!("engine_prefill_ms {:.2}", t.prefill_ms));
                traced_answer = true;
            }
            shown_tokens = turn.tokens;
        }
    }
    drop(terminal);
    Ok(())
}

/// Reads terminal events on a thread of its own; `paused` stops it while an editor runs.
fn spawn_input(tx: mpsc::Sender<Event>, paused: Arc<AtomicBool>) {
    std::thread::Builder::new()
        .name("cairn-input".into())
        .spawn(move || loop {
            if paused.load(Ordering::SeqCst) {
                std::thread::sleep(Duration::from_millis(20));
                continue;
            }
            match ct::poll(Duration::from_millis(50)) {
                Ok(true) => {}
                Ok(false) => continue,
                Err(_) => return,
            }
            if paused.load(Ordering::SeqCst) {
                continue;
            }
            let ev = match ct::read() {
                Ok(ct::Event::Key(k)) => Event::Key(k),
                Ok(ct::Event::Mouse(m)) => Event::Mouse(m),
                Ok(ct::Event::Paste(p)) => Event::Paste(p),
                Ok(ct::Event::Resize(w, h)) => Event::Resize(w, h),
                Ok(_) => continue,
                Err(_) => return,
            };
            if tx.send(ev).is_err() {
                return;
            }
        })
        .expect("a thread can be started");
}

/// Writes the session to `cairn-session-<date>-<time>.md` in the current directory (else the
/// user's data dir), and says where.
fn save(md: &str) -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let stamp: String = cairn_engine::text::civil_time(secs)
        .chars()
        .filter(char::is_ascii_digit)
        .collect();
    let name = format!("cairn-session-{}-{}.md", &stamp[..8], &stamp[8..14]);
    let mut tried = Vec::new();
    let dirs = [
        std::env::current_dir().ok(),
        dirs::data_dir().map(|d| d.join("cairn").join("sessions")),
    ];
    for dir in dirs.into_iter().flatten() {
        let _ = std::fs::create_dir_all(&dir);
        let path = dir.join(&name);
        match std::fs::write(&path, md) {
            Ok(()) => return format!("saved the session to {}", path.display()),
            Err(e) => tried.push(format!("{}: {e}", path.display())),
        }
    }
    format!("could not save the session ({})", tried.join("; "))
}

/// The file and line an editor should open: the file itself where its lines are the ones
/// passages count, else (HTML, PDF) the text cairn read from it, written to a temporary file.
fn editor_target(
    path: &std::path::Path,
    page: Option<u32>,
    line: u32,
) -> Result<(PathBuf, u32), String> {
    if cairn_engine::lines_match_file(path) {
        return Ok((path.to_owned(), line));
    }
    let dl = cairn_engine::document_lines(path, page).map_err(|e| e.to_string())?;
    let stem = path
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    let page = page.map(|p| format!("-p{p}")).unwrap_or_default();
    let file = std::env::temp_dir().join(format!("cairn-{stem}{page}.txt"));
    std::fs::write(&file, dl.lines.join("\n") + "\n")
        .map_err(|e| format!("cannot write {}: {e}", file.display()))?;
    Ok((file, line.saturating_sub(dl.first_line) + 1))
}

/// Suspends the app, runs `$EDITOR +LINE FILE` (else `$PAGER`, else `less`), and comes back.
fn open_editor(
    terminal: &mut Terminal<CrosstermBackend<io::Stdout>>,
    paused: &AtomicBool,
    path: &std::path::Path,
    line: u32,
) -> String {
    let program = ["EDITOR", "VISUAL", "PAGER"]
        .iter()
        .find_map(|v| std::env::var(v).ok().filter(|s| !s.trim().is_empty()))
        .unwrap_or_else(|| "less".into());
    let mut words = program.split_whitespace();
    let Some(cmd) = words.next() else {
        return "no editor".into();
    };
    paused.store(true, Ordering::SeqCst);
    std::thread::sleep(Duration::from_millis(60));
    restore();
    let status = std::process::Command::new(cmd)
        .args(words)
        .arg(format!("+{line}"))
        .arg(path)
        .status();
    let _ = enable_raw_mode();
    let _ = execute!(
        io::stdout(),
        EnterAlternateScreen,
        EnableMouseCapture,
        EnableBracketedPaste
    );
    let _ = terminal.clear();
    paused.store(false, Ordering::SeqCst);
    match status {
        Ok(s) if s.success() => format!("back from {cmd}"),
        Ok(s) => format!("{cmd} exited with {s}"),
        Err(e) => format!("could not run {cmd}: {e} (set $EDITOR)"),
    }
}

/// The knowledge base's directory, for callers that want the app's default.
#[must_use]
pub fn default_history() -> Option<PathBuf> {
    History::default_file()
}
