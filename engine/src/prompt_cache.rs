//! The saved KV caches of prompt prefixes (the fixed one, and each kind's worked example after
//! it): `CAIRNKV1`, token count and tokens, float count and floats (little-endian), then the
//! SHA-256 of all of that. A file that fails any check is ignored and recomputed. A file is
//! touched when it is read, and files unused for [`UNUSED_FOR`] are removed when a new one is
//! written: those of models, prompts or versions of cairn no longer in use.

use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

const MAGIC: &[u8; 8] = b"CAIRNKV1";

/// How long a cache file may go unread before writing another one removes it.
pub const UNUSED_FOR: std::time::Duration = std::time::Duration::from_secs(30 * 24 * 3600);

/// Where the cache of the prompt prefix `tokens` of the model file named `identity` is kept
/// (in the user's cache folder; `None` when there is none). The name is a hash of both and of
/// cairn's version, so a file is only found for exactly that prefix of exactly that model.
#[must_use]
pub fn file(identity: &str, tokens: &[u32]) -> Option<PathBuf> {
    let mut bytes = format!("cairn-kv1:{identity}:{}:", env!("CARGO_PKG_VERSION")).into_bytes();
    for t in tokens {
        bytes.extend_from_slice(&t.to_le_bytes());
    }
    let key = cairn_ingest::content_hash(&bytes);
    dirs::cache_dir().map(|d| {
        d.join("cairn")
            .join("prompt-cache")
            .join(format!("{key}.kv"))
    })
}

/// The cached floats of `path`, if the file is whole and was made for exactly `tokens`.
#[must_use]
pub fn read(path: &Path, tokens: &[u32]) -> Option<Vec<f32>> {
    let bytes = std::fs::read(path).ok()?;
    let (stored, floats) = parse(&bytes)?;
    if stored != tokens {
        return None;
    }
    // Still in use: not to be pruned (best effort; a read-only cache is read all the same).
    if let Ok(f) = std::fs::File::options().append(true).open(path) {
        let _ = f.set_modified(std::time::SystemTime::now());
    }
    Some(floats)
}

/// Removes the cache files of `dir` that were not written or read for `unused_for`, but for
/// `keep`. Errors are ignored: it is only tidying.
pub fn prune(dir: &Path, unused_for: std::time::Duration, keep: &Path) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    let now = std::time::SystemTime::now();
    for e in entries.flatten() {
        let path = e.path();
        let stale = e
            .metadata()
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| now.duration_since(t).ok())
            .is_some_and(|age| age > unused_for);
        if stale && path != keep && path.extension().is_some_and(|x| x == "kv") {
            let _ = std::fs::remove_file(&path);
        }
    }
}

/// Splits a cache file's bytes into its tokens and floats; `None` for anything but a whole,
/// well-formed file.
#[must_use]
pub fn parse(bytes: &[u8]) -> Option<(Vec<u32>, Vec<f32>)> {
    let (body, sum) = bytes.split_at(bytes.len().checked_sub(32)?);
    if Sha256::digest(body).as_slice() != sum || !body.starts_with(MAGIC) {
        return None;
    }
    let mut at = MAGIC.len();
    let u64_at = |at: &mut usize| -> Option<usize> {
        let v = u64::from_le_bytes(body.get(*at..*at + 8)?.try_into().ok()?);
        *at += 8;
        usize::try_from(v).ok()
    };
    let n = u64_at(&mut at)?;
    let stored: Vec<u32> = body
        .get(at..at.checked_add(n.checked_mul(4)?)?)?
        .chunks_exact(4)
        .map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect();
    at += n * 4;
    let m = u64_at(&mut at)?;
    let floats = body.get(at..at.checked_add(m.checked_mul(4)?)?)?;
    if at + m * 4 != body.len() {
        return None;
    }
    Some((
        stored,
        floats
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect(),
    ))
}

/// Writes the cache file for `tokens` (aside, then renamed into place).
///
/// # Errors
/// If the folder or the file cannot be written.
///
/// # Panics
/// If `path` has no parent folder.
pub fn write(path: &Path, tokens: &[u32], kv: &[f32]) -> std::io::Result<()> {
    let mut body = Vec::with_capacity(24 + tokens.len() * 4 + kv.len() * 4 + 32);
    body.extend_from_slice(MAGIC);
    body.extend_from_slice(&(tokens.len() as u64).to_le_bytes());
    for t in tokens {
        body.extend_from_slice(&t.to_le_bytes());
    }
    body.extend_from_slice(&(kv.len() as u64).to_le_bytes());
    for v in kv {
        body.extend_from_slice(&v.to_le_bytes());
    }
    let sum = Sha256::digest(&body);
    body.extend_from_slice(&sum);
    let dir = path.parent().expect("a cache file lives in a folder");
    std::fs::create_dir_all(dir)?;
    // Written aside and renamed: a reader never sees half a file.
    let tmp = dir.join(format!(".{}.tmp", std::process::id()));
    std::fs::write(&tmp, &body)?;
    std::fs::rename(&tmp, path)?;
    prune(dir, UNUSED_FOR, path);
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn round_trip_and_rejects() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("x.kv");
        super::write(&f, &[1, 2, 3], &[0.5, -1.0]).unwrap();
        assert_eq!(super::read(&f, &[1, 2, 3]), Some(vec![0.5, -1.0]));
        assert_eq!(super::read(&f, &[1, 2]), None, "other tokens");
        let mut bytes = std::fs::read(&f).unwrap();
        bytes[30] ^= 1;
        std::fs::write(&f, bytes).unwrap();
        assert_eq!(super::read(&f, &[1, 2, 3]), None, "corrupted");
    }

    #[test]
    fn files_unused_for_a_month_go_when_another_is_written_and_reading_keeps_one() {
        use std::time::{Duration, SystemTime};
        let dir = tempfile::tempdir().unwrap();
        let month_ago = SystemTime::now() - Duration::from_secs(31 * 24 * 3600);
        let age = |name: &str| {
            let f = std::fs::File::options()
                .append(true)
                .open(dir.path().join(name))
                .unwrap();
            f.set_modified(month_ago).unwrap();
        };
        for name in ["old.kv", "used.kv"] {
            super::write(&dir.path().join(name), &[1], &[0.5]).unwrap();
            age(name);
        }
        std::fs::write(dir.path().join("notes.txt"), "mine").unwrap();
        age("notes.txt");
        // Read: in use again.
        assert!(super::read(&dir.path().join("used.kv"), &[1]).is_some());
        super::write(&dir.path().join("new.kv"), &[2], &[1.0]).unwrap();
        let mut left: Vec<String> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        left.sort();
        assert_eq!(left, ["new.kv", "notes.txt", "used.kv"]);
    }
}
