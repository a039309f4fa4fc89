//! Questions asked before, kept across runs: one JSON string per line in
//! `<user data dir>/cairn/history`, newest last.

use std::io::Write;
use std::path::PathBuf;

/// At most this many questions are kept.
const LIMIT: usize = 1000;

/// The question history and where the ↑/↓ walk through it stands.
#[derive(Default)]
pub struct History {
    entries: Vec<String>,
    file: Option<PathBuf>,
    /// Index into `entries` while walking with ↑/↓ (`None`: at the draft).
    cursor: Option<usize>,
    /// What was in the box before the walk began.
    draft: String,
}

impl History {
    /// Loads the history from `file` (missing or unreadable: empty). `None` keeps it in memory.
    #[must_use]
    pub fn load(file: Option<PathBuf>) -> Self {
        let entries = file
            .as_deref()
            .and_then(|f| std::fs::read_to_string(f).ok())
            .map(|text| {
                text.lines()
                    .filter_map(|l| serde_json::from_str::<String>(l).ok())
                    .collect()
            })
            .unwrap_or_default();
        History {
            entries,
            file,
            cursor: None,
            draft: String::new(),
        }
    }

    /// The default file: `<user data dir>/cairn/history`.
    #[must_use]
    pub fn default_file() -> Option<PathBuf> {
        dirs::data_dir().map(|d| d.join("cairn").join("history"))
    }

    /// Records a question (a repeat of the last one is not added twice) and appends it to the
    /// file. A file that cannot be written costs only the history.
    pub fn push(&mut self, question: &str) {
        self.cursor = None;
        let q = question.trim();
        if q.is_empty() || self.entries.last().is_some_and(|l| l == q) {
            return;
        }
        self.entries.push(q.to_owned());
        if let Some(file) = &self.file {
            if let Some(dir) = file.parent() {
                let _ = std::fs::create_dir_all(dir);
            }
            if self.entries.len() > LIMIT + LIMIT / 4 {
                self.entries.drain(..self.entries.len() - LIMIT);
                let text: String = self
                    .entries
                    .iter()
                    .map(|e| serde_json::to_string(e).unwrap_or_default() + "\n")
                    .collect();
                let _ = std::fs::write(file, text);
            } else if let Ok(mut f) = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(file)
            {
                let _ = writeln!(f, "{}", serde_json::to_string(q).unwrap_or_default());
            }
        }
    }

    /// The entry before the current one (`current` is the box's text, kept as the draft).
    pub fn older(&mut self, current: &str) -> Option<&str> {
        let at = match self.cursor {
            None => {
                current.clone_into(&mut self.draft);
                self.entries.len().checked_sub(1)?
            }
            Some(i) => i.checked_sub(1)?,
        };
        self.cursor = Some(at);
        Some(&self.entries[at])
    }

    /// The entry after the current one, or the draft past the newest.
    pub fn newer(&mut self) -> Option<&str> {
        let i = self.cursor?;
        if i + 1 < self.entries.len() {
            self.cursor = Some(i + 1);
            Some(&self.entries[i + 1])
        } else {
            self.cursor = None;
            Some(&self.draft)
        }
    }

    /// The newest entry before `before` (exclusive; `None`: from the newest) containing
    /// `query`, case-insensitively, with its index.
    #[must_use]
    pub fn search(&self, query: &str, before: Option<usize>) -> Option<(usize, &str)> {
        let q = query.to_lowercase();
        let end = before.unwrap_or(self.entries.len()).min(self.entries.len());
        self.entries[..end]
            .iter()
            .enumerate()
            .rev()
            .find(|(_, e)| e.to_lowercase().contains(&q))
            .map(|(i, e)| (i, e.as_str()))
    }

    /// Leaves the ↑/↓ walk.
    pub fn reset(&mut self) {
        self.cursor = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kept_across_runs_and_walked_with_the_draft_last() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("sub").join("history");
        let mut h = History::load(Some(file.clone()));
        h.push("first question");
        h.push("a second\none");
        h.push("a second\none");
        let mut h = History::load(Some(file));
        assert_eq!(h.older("draft"), Some("a second\none"));
        assert_eq!(h.older("ignored"), Some("first question"));
        assert_eq!(h.older("ignored"), None);
        assert_eq!(h.newer(), Some("a second\none"));
        assert_eq!(h.newer(), Some("draft"));
        assert_eq!(h.newer(), None);
        assert_eq!(h.search("FIRST", None), Some((0, "first question")));
        assert_eq!(h.search("question", Some(0)), None);
    }
}
