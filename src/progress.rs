//! Progress bars on stderr for the engine's long steps (hashing and assembling model files).

use indicatif::{ProgressBar, ProgressStyle};

/// Draws a bar for each step over 16 MiB, and prints notes, unless quiet.
pub struct Bars {
    quiet: bool,
    bar: Option<ProgressBar>,
}

impl Bars {
    pub fn new(quiet: bool) -> Self {
        Bars { quiet, bar: None }
    }
}

impl cairn_engine::catalog::Progress for Bars {
    fn start(&mut self, label: &str, total: u64) {
        if self.quiet || total < 1 << 24 {
            return;
        }
        let bar = ProgressBar::new(total);
        bar.set_style(
            ProgressStyle::with_template(
                "{msg} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} eta {eta}",
            )
            .expect("valid template")
            .progress_chars("=> "),
        );
        bar.set_message(label.to_owned());
        self.bar = Some(bar);
    }
    fn advance(&mut self, n: u64) {
        if let Some(bar) = &self.bar {
            bar.inc(n);
        }
    }
    fn finish(&mut self) {
        if let Some(bar) = self.bar.take() {
            bar.finish_and_clear();
        }
    }
    fn note(&mut self, message: &str) {
        if !self.quiet {
            eprintln!("{message}");
        }
    }
}
