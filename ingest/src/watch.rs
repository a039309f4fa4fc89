//! Watching added paths for changes (`cairn add --watch`): the operating system's file events
//! (inotify on Linux), gathered until the paths have been quiet for a moment, so that an editor's
//! save or a `git checkout` of many files becomes one batch.
//!
//! A batch only says *that* something under the roots changed, and where; what changed is for the
//! caller to find out again (an incremental `add` of the same roots costs a `stat` per unchanged
//! file), so a lost or merged event never leaves the index behind.

use std::path::{Path, PathBuf};
use std::sync::mpsc::{channel, Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

use notify::{EventKind, RecommendedWatcher, RecursiveMode, Watcher};

use crate::error::{Error, Result};

/// How often a wait looks at its `stop` callback.
const POLL: Duration = Duration::from_millis(200);

/// File events under some roots, in batches.
pub struct Watch {
    // Dropping the watcher ends the watches.
    _watcher: RecommendedWatcher,
    events: Receiver<notify::Result<notify::Event>>,
    roots: Vec<PathBuf>,
    outside: Vec<PathBuf>,
}

/// One batch of changes.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Changes {
    /// The paths events named (sorted, each once).
    pub paths: Vec<PathBuf>,
    /// Some events may have been lost (the operating system's queue overflowed): everything
    /// under the roots should be looked at again.
    pub rescan: bool,
}

impl Watch {
    /// Watches `roots` (folders recursively; a file through its folder, so that an editor
    /// saving by rename is seen), leaving out events under `outside` (the knowledge base itself,
    /// when it lives inside a watched folder: its own commits must not count as changes).
    pub fn new(roots: &[PathBuf], outside: &[PathBuf]) -> Result<Watch> {
        let (tx, events) = channel();
        let failed = |path: &Path, e: notify::Error| Error::Watch {
            path: path.to_owned(),
            message: watch_message(&e),
        };
        let mut watcher = notify::recommended_watcher(tx).map_err(|e| failed(Path::new("."), e))?;
        let mut absolute = Vec::new();
        for root in roots {
            let abs = std::fs::canonicalize(root).map_err(|e| Error::Io {
                path: root.clone(),
                source: e,
            })?;
            let (target, mode) = if abs.is_dir() {
                (abs.clone(), RecursiveMode::Recursive)
            } else {
                let parent = abs.parent().map_or_else(|| abs.clone(), Path::to_owned);
                (parent, RecursiveMode::NonRecursive)
            };
            watcher
                .watch(&target, mode)
                .map_err(|e| failed(&target, e))?;
            absolute.push(abs);
        }
        let outside = outside
            .iter()
            .map(|p| std::fs::canonicalize(p).unwrap_or_else(|_| p.clone()))
            .collect();
        Ok(Watch {
            _watcher: watcher,
            events,
            roots: absolute,
            outside,
        })
    }

    /// Whether an event at `path` is a change to what was added: under a root (a file root is
    /// that file alone), not under an excluded path, and not hidden (the walk skips hidden
    /// files, and editors keep their swap files hidden).
    fn counts(&self, path: &Path) -> bool {
        if self.outside.iter().any(|o| path.starts_with(o)) {
            return false;
        }
        self.roots.iter().any(|root| {
            if root.is_file() || !root.exists() {
                return path == root;
            }
            path.strip_prefix(root).is_ok_and(|rel| {
                !rel.components()
                    .any(|c| c.as_os_str().to_string_lossy().starts_with('.'))
            })
        })
    }

    /// Waits for the next batch: the first change, then more until none has come for `quiet`
    /// (or `longest` has passed since the first, so that a steady stream of writes is still
    /// indexed now and then). `None` once `stop` returns `true` or the watcher has ended.
    pub fn next(
        &self,
        quiet: Duration,
        longest: Duration,
        stop: &dyn Fn() -> bool,
    ) -> Option<Changes> {
        let mut changes = Changes::default();
        let mut first: Option<Instant> = None;
        let mut last = Instant::now();
        loop {
            if stop() {
                return None;
            }
            if let Some(start) = first {
                if last.elapsed() >= quiet || start.elapsed() >= longest {
                    changes.paths.sort();
                    changes.paths.dedup();
                    return Some(changes);
                }
            }
            let wait = match first {
                Some(_) => POLL.min(quiet.saturating_sub(last.elapsed())),
                None => POLL,
            };
            match self.events.recv_timeout(wait) {
                Ok(Ok(event)) => {
                    if event.need_rescan() {
                        changes.rescan = true;
                    } else if matches!(event.kind, EventKind::Access(_)) {
                        continue;
                    }
                    let mut any = changes.rescan;
                    for p in event.paths {
                        if self.counts(&p) {
                            changes.paths.push(p);
                            any = true;
                        }
                    }
                    if any {
                        first.get_or_insert_with(Instant::now);
                        last = Instant::now();
                    }
                }
                // An error from the watcher (a queue overflow, a watch lost): look again at
                // everything.
                Ok(Err(_)) => {
                    changes.rescan = true;
                    first.get_or_insert_with(Instant::now);
                    last = Instant::now();
                }
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => return None,
            }
        }
    }
}

/// What went wrong setting up a watch, with what to do about the usual cause.
fn watch_message(e: &notify::Error) -> String {
    match e.kind {
        notify::ErrorKind::MaxFilesWatch => format!(
            "{e}: too many folders for the system's file watches\nhint: raise \
             fs.inotify.max_user_watches (sysctl), or watch fewer folders"
        ),
        _ => e.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wait(w: &Watch) -> Changes {
        let start = Instant::now();
        let stop = move || start.elapsed() > Duration::from_secs(20);
        w.next(Duration::from_millis(300), Duration::from_secs(5), &stop)
            .expect("a change within 20 s")
    }

    #[test]
    fn a_batch_names_the_changed_files_and_leaves_out_hidden_and_excluded_ones() {
        let dir = tempfile::tempdir().unwrap();
        let root = std::fs::canonicalize(dir.path()).unwrap();
        std::fs::create_dir(root.join("kb")).unwrap();
        std::fs::create_dir(root.join("notes")).unwrap();
        let w = Watch::new(std::slice::from_ref(&root), &[root.join("kb")]).unwrap();
        std::fs::write(root.join("kb/store.redb"), "x").unwrap();
        std::fs::write(root.join(".swap.md"), "x").unwrap();
        std::fs::write(root.join("notes/a.md"), "one").unwrap();
        std::fs::write(root.join("b.md"), "two").unwrap();
        let changes = wait(&w);
        assert_eq!(
            changes.paths,
            [root.join("b.md"), root.join("notes/a.md")],
            "{changes:?}"
        );
        assert!(!changes.rescan);
        // Nothing else comes: the batch took every event.
        let quick = Instant::now();
        let stop = move || quick.elapsed() > Duration::from_millis(800);
        assert_eq!(
            w.next(Duration::from_millis(300), Duration::from_secs(5), &stop),
            None
        );
        std::fs::remove_file(root.join("b.md")).unwrap();
        assert_eq!(wait(&w).paths, [root.join("b.md")]);
    }

    #[test]
    fn a_file_root_sees_a_save_by_rename_and_nothing_beside_it() {
        let dir = tempfile::tempdir().unwrap();
        let root = std::fs::canonicalize(dir.path()).unwrap();
        let file = root.join("notes.md");
        std::fs::write(&file, "old").unwrap();
        let w = Watch::new(std::slice::from_ref(&file), &[]).unwrap();
        std::fs::write(root.join("other.md"), "x").unwrap();
        // As editors save: write a new file, then rename it over the old one.
        std::fs::write(root.join("notes.md.new"), "new").unwrap();
        std::fs::rename(root.join("notes.md.new"), &file).unwrap();
        assert_eq!(wait(&w).paths, std::slice::from_ref(&file));
        std::fs::write(&file, "again").unwrap();
        assert_eq!(wait(&w).paths, [file]);
    }

    #[test]
    fn a_missing_root_is_an_error_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("nowhere");
        let err = Watch::new(std::slice::from_ref(&missing), &[])
            .err()
            .expect("an error");
        assert!(err.to_string().contains("nowhere"), "{err}");
    }
}
