//! cairn-pack: a knowledge base made into one verifiable, signed file, and back.
//!
//! A pack is a knowledge-base directory ([`cairn_index`]'s relocatable, read-only-openable
//! layout) stored as one file: a small header, a JSON [`Manifest`] naming every member with its
//! offset, size and BLAKE3 hash, then the members' bytes, each at a 4096-byte boundary so that
//! they can be read (or memory-mapped) in place. `docs/pack-format.md` is the format's full
//! description. [`build`] writes a pack from a knowledge base without re-embedding anything,
//! [`verify`] checks every member (and [`signature`] the minisign signature), and [`install`]
//! unpacks a verified pack into a directory the index opens as it is.
//!
//! The design decision to know: the pack is read with distrust. Every size, offset and path in a
//! manifest is checked against the file and against a whitelist before anything is read or
//! written, and installing writes only below a fresh directory that is renamed into place.

pub mod signature;

use std::fs::{self, File};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Component, Path, PathBuf};

use serde::{Deserialize, Serialize};

/// The first eight bytes of every pack.
pub const MAGIC: &[u8; 8] = b"CAIRNPAK";
/// The format version this cairn writes and reads.
pub const FORMAT_VERSION: u32 = 1;
/// Members start at multiples of this.
pub const ALIGN: u64 = 4096;
/// The largest manifest read.
pub const MAX_MANIFEST: u64 = 16 << 20;
/// The default largest member installed (its size is checked before a byte is written).
pub const DEFAULT_MAX_MEMBER: u64 = 16 << 30;

/// What can go wrong with a pack. Every message names the pack file.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Reading or writing failed.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        source: io::Error,
    },
    /// The file is not a pack, or is cut short, or its header is unreadable.
    #[error("{}: {what}", path.display())]
    Malformed {
        /// The pack.
        path: PathBuf,
        /// What is wrong.
        what: String,
    },
    /// The knowledge base to pack holds no document: a pack of nothing is refused.
    #[error("{}: no pack written: no document was read\nhint: check that the paths hold files cairn reads (`cairn extract FILE` shows what it reads)", path.display())]
    Empty {
        /// The pack that was not written.
        path: PathBuf,
    },
    /// A newer version of the pack is installed: going back is asked for explicitly.
    #[error("{}: {name}@{installed} is installed, newer than this pack's {offered}\nhint: --allow-downgrade installs the older version", path.display())]
    Downgrade {
        /// The pack file.
        path: PathBuf,
        /// The pack's name.
        name: String,
        /// The installed version.
        installed: String,
        /// The file's version.
        offered: String,
    },
    /// The pack was written by a newer cairn.
    #[error("{}: pack format {found} is newer than this cairn reads (format {FORMAT_VERSION})\nhint: upgrade cairn", path.display())]
    NewerFormat {
        /// The pack.
        path: PathBuf,
        /// Its format version.
        found: u32,
    },
    /// A member's bytes do not match the manifest's hash.
    #[error("{}: member {member} does not match its BLAKE3 hash (the pack is damaged or was altered)", path.display())]
    Corrupt {
        /// The pack.
        path: PathBuf,
        /// The member.
        member: String,
    },
    /// A manifest path that could write outside the pack's directory.
    #[error("{}: the manifest names an unsafe path {member:?} (only relative paths of letters, digits, `._-` and `/` are allowed)", path.display())]
    UnsafePath {
        /// The pack.
        path: PathBuf,
        /// The path as the manifest gives it (escaped when shown).
        member: String,
    },
    /// A member larger than the limit.
    #[error("{}: member {member} is {size} bytes, over the limit of {limit} bytes\nhint: --max-member-size raises the limit", path.display())]
    TooLarge {
        /// The pack.
        path: PathBuf,
        /// The member.
        member: String,
        /// Its size.
        size: u64,
        /// The limit.
        limit: u64,
    },
    /// The signature is missing, by another key, or does not verify.
    #[error("{0}")]
    Signature(String),
    /// The knowledge base to pack is not usable.
    #[error(transparent)]
    Index(#[from] cairn_index::Error),
}

/// `Result` with the pack [`Error`].
pub type Result<T> = std::result::Result<T, Error>;

fn io_at(path: &Path) -> impl FnOnce(io::Error) -> Error + '_ {
    move |source| Error::Io {
        path: path.to_owned(),
        source,
    }
}

/// One file of the knowledge base inside the pack.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Member {
    /// Path relative to the knowledge-base directory, `/`-separated.
    pub path: String,
    /// Byte offset in the pack file.
    pub offset: u64,
    /// Size in bytes.
    pub size: u64,
    /// BLAKE3 of the bytes, hex.
    pub blake3: String,
}

/// Who made the pack and what it holds, as the builder describes it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct About {
    /// Short name, used to install and select it (`rust-book`).
    pub name: String,
    /// Semantic version (`1.2.0`).
    pub version: String,
    /// One-line title.
    pub title: String,
    /// Longer description.
    pub description: String,
    /// SPDX license expression of the documents.
    pub license: String,
    /// Where the documents came from (URL or text).
    pub source: String,
    /// Language of the documents (BCP 47, `en`).
    pub language: String,
}

/// The pack's manifest.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    /// [`FORMAT_VERSION`] when written.
    pub format: u32,
    /// The builder's description.
    #[serde(flatten)]
    pub about: About,
    /// Unix time of the build (0 with `--reproducible`).
    pub created: u64,
    /// The embedding model the vectors come from.
    pub embedder: cairn_index::EmbedderId,
    /// How the documents were chunked.
    pub chunking: cairn_index::ChunkOptions,
    /// How hybrid search should fuse the legs for this pack.
    pub fusion: serde_json::Value,
    /// Documents in the pack.
    pub documents: u64,
    /// Chunks in the pack.
    pub chunks: u64,
    /// Every file of the knowledge base, in path order.
    pub members: Vec<Member>,
}

/// Checks a pack name: lowercase letters, digits and `-`, starting with a letter, ≤ 64.
pub fn check_name(name: &str) -> std::result::Result<(), String> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name.starts_with(|c: char| c.is_ascii_lowercase())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
    if ok {
        Ok(())
    } else {
        Err(format!(
            "pack name {name:?} must be lowercase letters, digits and `-`, starting with a letter (at most 64)"
        ))
    }
}

/// Checks a semantic version `MAJOR.MINOR.PATCH` (with an optional `-pre` part).
pub fn check_version(v: &str) -> std::result::Result<(), String> {
    let core = v.split_once('-').map_or(v, |(c, _)| c);
    let parts: Vec<&str> = core.split('.').collect();
    if parts.len() == 3
        && parts
            .iter()
            .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
    {
        Ok(())
    } else {
        Err(format!(
            "version {v:?} is not a semantic version such as 1.2.0"
        ))
    }
}

/// Whether a manifest path is one a pack may hold: relative, `/`-separated, made of letters,
/// digits and `._-`, with no empty, `.` or `..` component.
#[must_use]
pub fn safe_path(p: &str) -> bool {
    !p.is_empty()
        && p.len() <= 255
        && p.split('/').all(|c| {
            !c.is_empty()
                && c != "."
                && c != ".."
                && c.chars()
                    .all(|ch| ch.is_ascii_alphanumeric() || matches!(ch, '.' | '_' | '-'))
        })
}

/// The knowledge base's files to pack: everything but lock files, sorted by path.
fn kb_files(kb: &Path) -> Result<Vec<String>> {
    fn walk(root: &Path, dir: &Path, out: &mut Vec<String>) -> Result<()> {
        for entry in fs::read_dir(dir).map_err(io_at(dir))? {
            let entry = entry.map_err(io_at(dir))?;
            let path = entry.path();
            let kind = entry.file_type().map_err(io_at(&path))?;
            if kind.is_dir() {
                walk(root, &path, out)?;
            } else if kind.is_file() {
                let rel = path.strip_prefix(root).expect("below the root");
                let rel: Vec<String> = rel
                    .components()
                    .map(|c| c.as_os_str().to_string_lossy().into_owned())
                    .collect();
                let rel = rel.join("/");
                let name = rel.rsplit('/').next().unwrap_or_default();
                // Lock files are the index's own, named in lowercase.
                #[allow(clippy::case_sensitive_file_extension_comparisons)]
                let skip = name.ends_with(".lock") || name.starts_with(".tmp");
                // hnsw_rs's dump is what a writer reloads to extend the graph; a pack is only
                // read, and its readers map the flat layout of the same graph, so the dump
                // (which holds every vector a second time) stays out when the flat file is there.
                let dump = [".hnsw.graph", ".hnsw.data"].iter().find_map(|ext| {
                    name.strip_suffix(ext)
                        .filter(|base| path.with_file_name(format!("{base}.hnsw.flat")).is_file())
                });
                if skip || dump.is_some() {
                    continue;
                }
                out.push(rel);
            }
            // Links are not followed and not packed.
        }
        Ok(())
    }
    let mut out = Vec::new();
    walk(kb, kb, &mut out)?;
    out.sort();
    Ok(out)
}

fn pad_to(n: u64) -> u64 {
    n.div_ceil(ALIGN) * ALIGN
}

/// Writes a pack of the knowledge base at `kb` to `out`. The file appears under its name only
/// when complete (it is written aside and renamed).
///
/// What is packed is a canonical copy of the knowledge base ([`cairn_index::write_canonical`],
/// made beside `out` and removed afterwards): its last commit, without the builder's paths,
/// mtimes or commit times. With `reproducible`, the vector graph is rebuilt one vector at a
/// time, so that the same documents and `about` give the same bytes when `created` is the
/// same; otherwise the knowledge base's own graph is copied.
pub fn build(
    src: &Path,
    out: &Path,
    about: &About,
    created: u64,
    fusion: serde_json::Value,
    reproducible: bool,
) -> Result<Manifest> {
    check_name(&about.name).map_err(|what| Error::Malformed {
        path: out.to_owned(),
        what,
    })?;
    check_version(&about.version).map_err(|what| Error::Malformed {
        path: out.to_owned(),
        what,
    })?;
    let out_dir = out
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    sweep_stale(out_dir);
    let work = tempfile::Builder::new()
        .prefix(&format!(".cairnpack-{}-", std::process::id()))
        .tempdir_in(out_dir)
        .map_err(io_at(out_dir))?;
    let kb = work.path().join("kb");
    cairn_index::write_canonical(
        src,
        &kb,
        &cairn_index::CanonicalOptions {
            committed_at: created,
            deterministic_graph: reproducible,
        },
    )?;
    let reader = cairn_index::Reader::open(&kb)?;
    let status = reader.status()?;
    let index_manifest = reader.manifest().clone();
    drop(reader);
    if status.documents == 0 {
        return Err(Error::Empty {
            path: out.to_owned(),
        });
    }
    let files = kb_files(&kb)?;
    let manifest = Manifest {
        format: FORMAT_VERSION,
        about: about.clone(),
        created,
        embedder: index_manifest.embedder,
        chunking: index_manifest.chunking,
        fusion,
        documents: status.documents,
        chunks: status.chunks,
        members: Vec::new(),
    };
    write(&kb, &files, manifest, out)
}

/// Writes the files `files` (paths relative to `root`) as a pack with `manifest`'s description
/// (its `members` are filled in here). [`build`] calls it with a knowledge base's files.
///
/// # Panics
/// If a manifest cannot be serialized, which its types rule out.
pub fn write(
    root: &Path,
    files: &[String],
    mut manifest: Manifest,
    out: &Path,
) -> Result<Manifest> {
    // Hash first: the manifest, which holds the hashes, comes before the members.
    manifest.members.clear();
    for rel in files {
        let path = root.join(rel);
        let mut f = File::open(&path).map_err(io_at(&path))?;
        let mut hasher = blake3::Hasher::new();
        let size = io::copy(&mut f, &mut hasher).map_err(io_at(&path))?;
        manifest.members.push(Member {
            path: rel.clone(),
            offset: 0,
            size,
            blake3: hasher.finalize().to_hex().to_string(),
        });
    }
    // Offsets depend on the manifest's length, which depends on the offsets' digits: settle.
    let mut header_len = 0u64;
    loop {
        let mut at = pad_to(16 + header_len);
        for m in &mut manifest.members {
            m.offset = at;
            at = pad_to(at + m.size);
        }
        let json = serde_json::to_vec(&manifest).expect("a manifest serializes");
        if json.len() as u64 == header_len {
            break;
        }
        header_len = json.len() as u64;
    }
    let json = serde_json::to_vec(&manifest).expect("a manifest serializes");
    let dir = out
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let mut builder = tempfile::Builder::new();
    let prefix = format!(".cairnpack-{}-", std::process::id());
    builder.prefix(&prefix);
    // A pack is made to be handed on: created as any new file is (0666 less the umask), not
    // the owner-only 0600 of a temporary file.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        builder.permissions(fs::Permissions::from_mode(0o666));
    }
    let mut tmp = builder.tempfile_in(dir).map_err(io_at(dir))?;
    {
        // Everything written is hashed into the trailer as well.
        let mut w = Hashing {
            inner: io::BufWriter::new(tmp.as_file_mut()),
            hasher: blake3::Hasher::new(),
        };
        let mut head = Vec::with_capacity(16 + json.len());
        head.extend_from_slice(MAGIC);
        head.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
        head.extend_from_slice(&(json.len() as u32).to_le_bytes());
        head.extend_from_slice(&json);
        w.write_all(&head).map_err(io_at(out))?;
        let mut at = head.len() as u64;
        for m in &manifest.members {
            w.write_all(&vec![0u8; (pad_to(at) - at) as usize])
                .map_err(io_at(out))?;
            let path = root.join(&m.path);
            let mut f = File::open(&path).map_err(io_at(&path))?;
            let mut hasher = blake3::Hasher::new();
            let mut buf = vec![0u8; 1 << 20];
            let mut left = m.size;
            while left > 0 {
                let n = f
                    .read(&mut buf[..left.min(1 << 20) as usize])
                    .map_err(io_at(&path))?;
                if n == 0 {
                    break;
                }
                hasher.update(&buf[..n]);
                w.write_all(&buf[..n]).map_err(io_at(out))?;
                left -= n as u64;
            }
            if left > 0 || hasher.finalize().to_hex().as_str() != m.blake3 {
                return Err(Error::Malformed {
                    path: path.clone(),
                    what: "changed while it was packed; pack a knowledge base no one is writing to"
                        .into(),
                });
            }
            at = m.offset + m.size;
        }
        w.write_all(&vec![0u8; (pad_to(at) - at) as usize])
            .map_err(io_at(out))?;
        let sum = *w.hasher.finalize().as_bytes();
        w.inner.write_all(&sum).map_err(io_at(out))?;
        w.inner.flush().map_err(io_at(out))?;
    }
    tmp.as_file().sync_all().map_err(io_at(out))?;
    tmp.persist(out).map_err(|e| Error::Io {
        path: out.to_owned(),
        source: e.error,
    })?;
    Ok(manifest)
}

/// A writer that hashes what passes through it.
struct Hashing<W: Write> {
    inner: W,
    hasher: blake3::Hasher,
}

impl<W: Write> Write for Hashing<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// Reads and checks a pack's header and manifest (not the members' bytes): the magic, the
/// format version, the manifest's size, every member's path, offset and size against the file.
pub fn read_manifest(pack: &Path) -> Result<Manifest> {
    let malformed = |what: String| Error::Malformed {
        path: pack.to_owned(),
        what,
    };
    let mut f = File::open(pack).map_err(io_at(pack))?;
    let len = f.metadata().map_err(io_at(pack))?.len();
    let mut head = [0u8; 16];
    if len < 16 {
        return Err(malformed(format!(
            "{len} bytes is too short to be a pack (truncated?)"
        )));
    }
    f.read_exact(&mut head).map_err(io_at(pack))?;
    if &head[..8] != MAGIC {
        return Err(malformed("not a cairn pack (no CAIRNPAK header)".into()));
    }
    let version = u32::from_le_bytes([head[8], head[9], head[10], head[11]]);
    if version > FORMAT_VERSION {
        return Err(Error::NewerFormat {
            path: pack.to_owned(),
            found: version,
        });
    }
    if version == 0 {
        return Err(malformed("format version 0 does not exist".into()));
    }
    let n = u64::from(u32::from_le_bytes([head[12], head[13], head[14], head[15]]));
    if n > MAX_MANIFEST || 16 + n > len {
        return Err(malformed(format!(
            "the manifest claims {n} bytes; the file has {len} (truncated?)"
        )));
    }
    let mut json = vec![0u8; n as usize];
    f.read_exact(&mut json).map_err(io_at(pack))?;
    let manifest: Manifest = serde_json::from_slice(&json)
        .map_err(|e| malformed(format!("the manifest is not readable: {e}")))?;
    if manifest.format != version {
        return Err(malformed(format!(
            "the manifest says format {}, the header {version}",
            manifest.format
        )));
    }
    check_name(&manifest.about.name).map_err(malformed)?;
    check_version(&manifest.about.version).map_err(malformed)?;
    let mut end = pad_to(16 + n);
    let mut seen = std::collections::HashSet::new();
    for m in &manifest.members {
        if !safe_path(&m.path) || !seen.insert(m.path.as_str()) {
            return Err(Error::UnsafePath {
                path: pack.to_owned(),
                member: m.path.escape_debug().to_string(),
            });
        }
        if m.offset < end || m.offset % ALIGN != 0 {
            return Err(malformed(format!(
                "member {} starts at {}, inside what comes before it",
                m.path, m.offset
            )));
        }
        let stop = m
            .offset
            .checked_add(m.size)
            .ok_or_else(|| malformed(format!("member {} has an impossible size", m.path)))?;
        if stop > len {
            return Err(malformed(format!(
                "member {} ends at byte {stop}, past the end of the file ({len} bytes; truncated?)",
                m.path
            )));
        }
        end = pad_to(stop);
    }
    if len != end + 32 {
        return Err(malformed(format!(
            "the file has {len} bytes where its manifest accounts for {} (truncated, or bytes added)",
            end + 32
        )));
    }
    Ok(manifest)
}

/// Checks every member's hash; the first that differs is named.
///
/// Then the whole file against its trailing BLAKE3, which covers the header, the manifest and
/// the padding as well: no byte of a pack can change unnoticed.
pub fn verify(pack: &Path) -> Result<Manifest> {
    let manifest = read_manifest(pack)?;
    let mut f = File::open(pack).map_err(io_at(pack))?;
    for m in &manifest.members {
        f.seek(SeekFrom::Start(m.offset)).map_err(io_at(pack))?;
        let mut hasher = blake3::Hasher::new();
        io::copy(&mut (&mut f).take(m.size), &mut hasher).map_err(io_at(pack))?;
        if hasher.finalize().to_hex().as_str() != m.blake3 {
            return Err(Error::Corrupt {
                path: pack.to_owned(),
                member: m.path.clone(),
            });
        }
    }
    let len = f.metadata().map_err(io_at(pack))?.len();
    f.seek(SeekFrom::Start(0)).map_err(io_at(pack))?;
    let mut hasher = blake3::Hasher::new();
    io::copy(&mut (&mut f).take(len - 32), &mut hasher).map_err(io_at(pack))?;
    let mut trailer = [0u8; 32];
    f.read_exact(&mut trailer).map_err(io_at(pack))?;
    if hasher.finalize().as_bytes() != &trailer {
        return Err(Error::Corrupt {
            path: pack.to_owned(),
            member: "(the header, the manifest or the padding: the file's checksum)".into(),
        });
    }
    Ok(manifest)
}

/// How [`install`] treats a pack.
#[derive(Clone, Copy, Debug)]
pub struct InstallOptions {
    /// Refuse members larger than this many bytes.
    pub max_member: u64,
    /// Replace an installed pack of the same name with an older version (else refused: an old
    /// release, however well signed, may hold what a newer one corrected).
    pub allow_downgrade: bool,
}

impl Default for InstallOptions {
    fn default() -> Self {
        InstallOptions {
            max_member: DEFAULT_MAX_MEMBER,
            allow_downgrade: false,
        }
    }
}

/// What [`install`] did.
#[derive(Debug)]
pub struct Installed {
    /// The installed pack's manifest.
    pub manifest: Manifest,
    /// Where it was installed.
    pub path: PathBuf,
    /// The version it replaced, if one of the same name was installed.
    pub replaced: Option<String>,
}

/// Whether version `a` is older than `b` (semantic versions; `None` when either does not
/// parse, as a pack installed by an older cairn might not).
#[must_use]
pub fn older(a: &str, b: &str) -> Option<bool> {
    Some(semver::Version::parse(a).ok()? < semver::Version::parse(b).ok()?)
}

/// Unpacks a verified pack into `dir/<name>` (replacing an installed version, unless that one
/// is newer and [`InstallOptions::allow_downgrade`] is off), writing only below a fresh
/// directory that is then renamed into place.
///
/// # Panics
/// If a manifest cannot be serialized, which its types rule out.
pub fn install(pack: &Path, dir: &Path, options: &InstallOptions) -> Result<Installed> {
    let max_member = options.max_member;
    let manifest = verify(pack)?;
    let target = dir.join(&manifest.about.name);
    let replaced = fs::read(target.join("pack.json"))
        .ok()
        .and_then(|bytes| serde_json::from_slice::<Manifest>(&bytes).ok())
        .map(|m| m.about.version);
    if let Some(installed) = &replaced {
        if !options.allow_downgrade && older(&manifest.about.version, installed) == Some(true) {
            return Err(Error::Downgrade {
                path: pack.to_owned(),
                name: manifest.about.name.clone(),
                installed: installed.clone(),
                offered: manifest.about.version.clone(),
            });
        }
    }
    for m in &manifest.members {
        if m.size > max_member {
            return Err(Error::TooLarge {
                path: pack.to_owned(),
                member: m.path.clone(),
                size: m.size,
                limit: max_member,
            });
        }
    }
    fs::create_dir_all(dir).map_err(io_at(dir))?;
    sweep_stale(dir);
    let work = tempfile::Builder::new()
        .prefix(&format!(".install-{}-", std::process::id()))
        .tempdir_in(dir)
        .map_err(io_at(dir))?;
    let mut f = File::open(pack).map_err(io_at(pack))?;
    for m in &manifest.members {
        // `safe_path` was checked: only normal components, joined below the fresh directory.
        let rel: PathBuf = m.path.split('/').collect();
        debug_assert!(rel.components().all(|c| matches!(c, Component::Normal(_))));
        let dest = work.path().join(&rel);
        if let Some(parent) = dest.parent() {
            fs::create_dir_all(parent).map_err(io_at(parent))?;
        }
        let mut out = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&dest)
            .map_err(io_at(&dest))?;
        f.seek(SeekFrom::Start(m.offset)).map_err(io_at(pack))?;
        let mut hasher = blake3::Hasher::new();
        let mut reader = (&mut f).take(m.size);
        let mut buf = vec![0u8; 1 << 20];
        loop {
            let n = reader.read(&mut buf).map_err(io_at(pack))?;
            if n == 0 {
                break;
            }
            hasher.update(&buf[..n]);
            out.write_all(&buf[..n]).map_err(io_at(&dest))?;
        }
        // The file could have changed since `verify`: check what was written.
        if hasher.finalize().to_hex().as_str() != m.blake3 {
            return Err(Error::Corrupt {
                path: pack.to_owned(),
                member: m.path.clone(),
            });
        }
    }
    let json = serde_json::to_vec_pretty(&manifest).expect("a manifest serializes");
    let pack_json = work.path().join("pack.json");
    fs::write(&pack_json, json).map_err(io_at(&pack_json))?;
    let work = work.keep();
    if target.exists() {
        // One atomic step swaps the new pack in: there is never a moment without one.
        replace_dir(&work, &target)?;
        // `work` now holds the old pack; a kill here leaves only a hidden leftover.
        let _ = fs::remove_dir_all(&work);
    } else {
        fs::rename(&work, &target).map_err(io_at(&target))?;
    }
    Ok(Installed {
        manifest,
        path: target,
        replaced,
    })
}

/// Puts the directory `new` at `target`, which exists, in one step, leaving the old one at
/// `new`'s path.
#[cfg(target_os = "linux")]
fn replace_dir(new: &Path, target: &Path) -> Result<()> {
    rustix::fs::renameat_with(
        rustix::fs::CWD,
        new,
        rustix::fs::CWD,
        target,
        rustix::fs::RenameFlags::EXCHANGE,
    )
    .map_err(|e| Error::Io {
        path: target.to_owned(),
        source: e.into(),
    })
}

/// Puts the directory `new` at `target`, which exists, leaving the old one at `new`'s path:
/// two renames where the system has no exchange, with a short moment between them.
#[cfg(not(target_os = "linux"))]
fn replace_dir(new: &Path, target: &Path) -> Result<()> {
    let aside = new.with_extension("old");
    fs::rename(target, &aside).map_err(io_at(target))?;
    fs::rename(new, target).map_err(io_at(target))?;
    fs::rename(&aside, new).map_err(io_at(new))
}

/// The hidden working names in a packs folder or beside a pack being built: `.install-PID-…`,
/// `.removing-PID-…`, `.cairnpack-PID-…`.
const WORK_PREFIXES: [&str; 3] = [".install-", ".removing-", ".cairnpack-"];

/// Removes what runs that were killed left under their working names in `dir` (hidden, never
/// read as packs): entries whose process is gone. Only where `/proc` tells which processes run.
fn sweep_stale(dir: &Path) {
    if !Path::new("/proc/self").exists() {
        return;
    }
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(pid) = WORK_PREFIXES
            .iter()
            .find_map(|p| name.strip_prefix(p))
            .and_then(|rest| rest.split('-').next())
            .and_then(|pid| pid.parse::<u32>().ok())
        else {
            continue;
        };
        if pid == std::process::id() || Path::new(&format!("/proc/{pid}")).exists() {
            continue;
        }
        let path = entry.path();
        let _ = if entry.file_type().is_ok_and(|t| t.is_dir()) {
            fs::remove_dir_all(&path)
        } else {
            fs::remove_file(&path)
        };
    }
}

/// Checks an installed pack in place: every member its manifest names is there with the size
/// and BLAKE3 hash it was installed with. Returns the first member that differs, with why.
pub fn check_installed(dir: &Path, manifest: &Manifest) -> std::result::Result<(), String> {
    for m in &manifest.members {
        let path: PathBuf = m.path.split('/').fold(dir.to_owned(), |p, c| p.join(c));
        let mut f = File::open(&path).map_err(|e| format!("{}: {e}", m.path))?;
        let mut hasher = blake3::Hasher::new();
        let n = io::copy(&mut f, &mut hasher).map_err(|e| format!("{}: {e}", m.path))?;
        if n != m.size || hasher.finalize().to_hex().as_str() != m.blake3 {
            return Err(format!("{}: changed since it was installed", m.path));
        }
    }
    Ok(())
}

/// The packs installed in `dir`, with their manifests, by name.
pub fn installed(dir: &Path) -> Result<Vec<(Manifest, PathBuf)>> {
    let mut out = Vec::new();
    let Ok(entries) = fs::read_dir(dir) else {
        return Ok(out);
    };
    for entry in entries {
        let path = entry.map_err(io_at(dir))?.path();
        let json = path.join("pack.json");
        if path
            .file_name()
            .is_some_and(|n| n.to_string_lossy().starts_with('.'))
        {
            continue;
        }
        if let Ok(bytes) = fs::read(&json) {
            if let Ok(m) = serde_json::from_slice::<Manifest>(&bytes) {
                out.push((m, path));
            }
        }
    }
    out.sort_by(|a, b| a.0.about.name.cmp(&b.0.about.name));
    Ok(out)
}

/// Removes the installed pack `name` from `dir`; whether it was there.
pub fn remove(dir: &Path, name: &str) -> Result<bool> {
    check_name(name).map_err(|what| Error::Malformed {
        path: dir.join(name),
        what,
    })?;
    let target = dir.join(name);
    if !target.join("pack.json").is_file() {
        return Ok(false);
    }
    sweep_stale(dir);
    // Out of sight in one step first, so that a kill midway never leaves half a pack under
    // its name.
    let gone = dir.join(format!(".removing-{}-{name}", std::process::id()));
    fs::rename(&target, &gone).map_err(io_at(&target))?;
    fs::remove_dir_all(&gone).map_err(io_at(&gone))?;
    Ok(true)
}

/// Writes every chunk of the knowledge base at `dir` (an installed pack) as one JSON line:
/// `{"id", "vector", "payload": {"text", "doc", "heading", "page", "lines", "pack"}}` — the shape
/// of a Qdrant point, and one `jq` step from an OpenSearch bulk request. Returns the count.
pub fn export_jsonl(dir: &Path, pack: &str, out: &mut dyn Write) -> Result<usize> {
    let reader = cairn_index::Reader::open(dir)?;
    let mut n = 0;
    for doc in reader.documents()? {
        for &id in &doc.chunks {
            let id = cairn_index::ChunkId(id);
            let (Some(c), Some(v)) = (reader.chunk(id)?, reader.vector(id)?) else {
                continue;
            };
            let line = serde_json::json!({
                "id": id.0,
                "vector": v,
                "payload": {
                    "text": c.text,
                    "doc": c.doc,
                    "heading": c.heading,
                    "page": c.page,
                    "lines": [c.lines.0, c.lines.1],
                    "pack": pack,
                },
            });
            writeln!(out, "{line}").map_err(io_at(dir))?;
            n += 1;
        }
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_plain_relative_paths_are_safe() {
        for ok in [
            "meta.redb",
            "bm25/meta.json",
            "vectors/graph.hnsw.data",
            "a-b_c.d",
        ] {
            assert!(safe_path(ok), "{ok}");
        }
        for bad in [
            "",
            "/etc/passwd",
            "../x",
            "a/../../x",
            "a//b",
            "./a",
            "a/.",
            "a\\b",
            "c:x",
            "a\u{1b}[2J",
            "é",
        ] {
            assert!(!safe_path(bad), "{bad:?}");
        }
    }

    #[cfg(unix)]
    #[test]
    fn links_and_lock_files_in_a_knowledge_base_are_not_packed() {
        let dir = tempfile::tempdir().unwrap();
        let kb = dir.path();
        std::fs::create_dir_all(kb.join("bm25")).unwrap();
        std::fs::write(kb.join("meta.redb"), b"x").unwrap();
        std::fs::write(kb.join("bm25/seg.idx"), b"y").unwrap();
        std::fs::write(kb.join("bm25/.tantivy-meta.lock"), b"").unwrap();
        std::fs::write(kb.join("writer.lock"), b"1").unwrap();
        std::os::unix::fs::symlink("/etc/passwd", kb.join("bm25/evil")).unwrap();
        std::os::unix::fs::symlink("/etc", kb.join("etc")).unwrap();
        assert_eq!(kb_files(kb).unwrap(), ["bm25/seg.idx", "meta.redb"]);
    }

    #[test]
    fn the_graph_dump_is_packed_only_without_its_flat_layout() {
        let dir = tempfile::tempdir().unwrap();
        let kb = dir.path();
        std::fs::create_dir_all(kb.join("vectors")).unwrap();
        for f in [
            "g1.hnsw.graph",
            "g1.hnsw.data",
            "g1.hnsw.flat",
            "g0.hnsw.graph",
            "g0.hnsw.data",
        ] {
            std::fs::write(kb.join("vectors").join(f), b"x").unwrap();
        }
        assert_eq!(
            kb_files(kb).unwrap(),
            [
                "vectors/g0.hnsw.data",
                "vectors/g0.hnsw.graph",
                "vectors/g1.hnsw.flat"
            ]
        );
    }

    #[test]
    fn names_and_versions() {
        assert!(check_name("rust-book").is_ok());
        assert!(check_name("Rust").is_err());
        assert!(check_name("1x").is_err());
        assert!(check_name("a/b").is_err());
        assert!(check_version("1.2.0").is_ok());
        assert!(check_version("1.2.0-rc.1").is_ok());
        assert!(check_version("1.2").is_err());
        assert!(check_version("v1.2.0").is_err());
    }
}

#[cfg(test)]
mod version_tests {
    use super::older;

    #[test]
    fn versions_compare_as_semantic_versions() {
        assert_eq!(older("1.2.0", "1.10.0"), Some(true));
        assert_eq!(older("1.10.0", "1.2.0"), Some(false));
        assert_eq!(older("1.2.0", "1.2.0"), Some(false));
        assert_eq!(older("1.2.0-beta.1", "1.2.0"), Some(true));
        assert_eq!(older("1.2", "1.2.0"), None);
    }
}
