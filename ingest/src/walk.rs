//! Walking the paths a user adds: directories recursively, honouring `.gitignore`, `.ignore` and
//! `.cairnignore` files (also outside git repositories), skipping hidden files, in sorted order.

use std::path::{Path, PathBuf};

/// One entry found while walking.
#[derive(Debug)]
pub enum Found {
    /// A regular file to read.
    File(PathBuf),
    /// A path that could not be walked (permission denied, a broken link…), with why.
    Error(PathBuf, String),
    /// A symbolic link inside an added folder: not followed, so that a folder never reaches
    /// outside itself or loops (add the link's target to index what it points to).
    Link(PathBuf),
}

/// Lists the files under `root` (or `root` itself, if it is a file) in a stable order.
#[must_use]
pub fn walk(root: &Path) -> Vec<Found> {
    if root.is_file() {
        return vec![Found::File(root.to_owned())];
    }
    let mut out = Vec::new();
    let walker = ignore::WalkBuilder::new(root)
        .hidden(true)
        .git_ignore(true)
        .git_global(false)
        .git_exclude(true)
        .require_git(false)
        .add_custom_ignore_filename(".cairnignore")
        .sort_by_file_path(Ord::cmp)
        .build();
    for entry in walker {
        match entry {
            Ok(e) if e.file_type().is_some_and(|t| t.is_file()) => {
                out.push(Found::File(e.into_path()));
            }
            Ok(e) if e.path_is_symlink() => out.push(Found::Link(e.into_path())),
            Ok(_) => {}
            Err(err) => {
                let path = match &err {
                    ignore::Error::WithPath { path, .. } => path.clone(),
                    _ => root.to_owned(),
                };
                out.push(Found::Error(path, err.to_string()));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn honours_ignore_files_without_git() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path();
        std::fs::write(p.join(".gitignore"), "build/\n*.log\n").unwrap();
        std::fs::write(p.join(".cairnignore"), "secret.md\n").unwrap();
        std::fs::create_dir(p.join("build")).unwrap();
        std::fs::write(p.join("build/x.md"), "x").unwrap();
        std::fs::write(p.join("a.log"), "x").unwrap();
        std::fs::write(p.join("secret.md"), "x").unwrap();
        std::fs::write(p.join(".hidden.md"), "x").unwrap();
        std::fs::write(p.join("b.md"), "x").unwrap();
        std::fs::write(p.join("a.md"), "x").unwrap();
        let files: Vec<String> = walk(p)
            .into_iter()
            .map(|f| match f {
                Found::File(f) => f.strip_prefix(p).unwrap().display().to_string(),
                Found::Error(p, e) => panic!("{}: {e}", p.display()),
                Found::Link(p) => panic!("{}: a link", p.display()),
            })
            .collect();
        assert_eq!(files, ["a.md", "b.md"]);
    }

    #[cfg(unix)]
    #[test]
    fn links_are_listed_and_not_followed() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path();
        std::fs::create_dir(p.join("sub")).unwrap();
        std::fs::write(p.join("a.md"), "x").unwrap();
        std::os::unix::fs::symlink("loop2", p.join("loop1")).unwrap();
        std::os::unix::fs::symlink("loop1", p.join("loop2")).unwrap();
        std::os::unix::fs::symlink("..", p.join("sub/up")).unwrap();
        std::os::unix::fs::symlink("/etc/hostname", p.join("outside.txt")).unwrap();
        let found: Vec<String> = walk(p)
            .into_iter()
            .map(|f| match f {
                Found::File(f) => format!("file {}", f.strip_prefix(p).unwrap().display()),
                Found::Link(f) => format!("link {}", f.strip_prefix(p).unwrap().display()),
                Found::Error(p, e) => format!("error {}: {e}", p.display()),
            })
            .collect();
        assert_eq!(
            found,
            [
                "file a.md",
                "link loop1",
                "link loop2",
                "link outside.txt",
                "link sub/up"
            ]
        );
    }
}
