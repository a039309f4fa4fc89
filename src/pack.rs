//! `cairn pack …`: build, sign, verify, install, list, show and remove knowledge packs.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use cairn_engine::catalog;
use cairn_engine::text::human_size;
use cairn_pack::signature::{self, Signed};
use cairn_pack::{About, Manifest};

/// Where installed packs live: `CAIRN_PACKS_DIR`, else `<user data dir>/cairn/packs`.
pub fn packs_dir() -> Result<PathBuf> {
    if let Some(d) = std::env::var_os("CAIRN_PACKS_DIR") {
        return Ok(PathBuf::from(d));
    }
    let data = dirs::data_dir().context("no user data directory; set CAIRN_PACKS_DIR")?;
    Ok(data.join("cairn").join("packs"))
}

/// How many packs are installed (0 when the packs directory cannot be read).
pub fn installed_count() -> usize {
    packs_dir()
        .and_then(|d| Ok(cairn_pack::installed(&d)?.len()))
        .unwrap_or(0)
}

/// Where trusted public keys live: `CAIRN_TRUST_DIR`, else `<user config dir>/cairn/trusted`.
pub fn trust_dir() -> Result<PathBuf> {
    if let Some(d) = std::env::var_os("CAIRN_TRUST_DIR") {
        return Ok(PathBuf::from(d));
    }
    let config = dirs::config_dir().context("no user config directory; set CAIRN_TRUST_DIR")?;
    Ok(config.join("cairn").join("trusted"))
}

/// Where `pack keygen` writes a key pair and `pack sign` finds the secret key unless told:
/// `<user config dir>/cairn/signing`.
pub fn signing_dir() -> Result<PathBuf> {
    let config =
        dirs::config_dir().context("no user config directory\nhint: pass --out (or --key)")?;
    Ok(config.join("cairn").join("signing"))
}

/// The trusted keys: every `*.pub` in the trust directory, and `extra`.
fn trusted_keys(extra: &[PathBuf]) -> Result<Vec<signature::PublicKey>> {
    let mut keys = Vec::new();
    for p in extra {
        keys.push(signature::read_public_key(p)?);
    }
    if let Ok(entries) = std::fs::read_dir(trust_dir()?) {
        for e in entries.flatten() {
            let p = e.path();
            if p.extension().is_some_and(|x| x == "pub") {
                keys.push(signature::read_public_key(&p)?);
            }
        }
    }
    Ok(keys)
}

/// Text from a stranger's manifest, with control characters shown escaped.
fn shown(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_control()
                || matches!(c, '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
            {
                c.escape_unicode().to_string()
            } else {
                c.to_string()
            }
        })
        .collect()
}

/// Settings of `cairn pack build`.
pub struct BuildSettings {
    pub paths: Vec<PathBuf>,
    pub from_kb: Option<PathBuf>,
    pub out: PathBuf,
    pub about: About,
    pub reproducible: bool,
    pub quiet: bool,
}

/// `cairn pack build`.
pub fn build(s: &BuildSettings) -> Result<()> {
    cairn_pack::check_name(&s.about.name).map_err(anyhow::Error::msg)?;
    cairn_pack::check_version(&s.about.version).map_err(anyhow::Error::msg)?;
    let created = if s.reproducible {
        0
    } else if let Some(epoch) = std::env::var("SOURCE_DATE_EPOCH")
        .ok()
        .and_then(|v| v.parse().ok())
    {
        epoch
    } else {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs())
    };
    let fusion = serde_json::json!({"method": "score", "dense_weight": 0.4});
    let out_dir = s
        .out
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let (kb, _work) = if let Some(kb) = &s.from_kb {
        (kb.clone(), None)
    } else {
        if s.paths.is_empty() {
            bail!("nothing to pack\nhint: `cairn pack build PATH… -o NAME.cairnpack`, or --from-kb DIR");
        }
        // A pack is published as built: a path that is not there means the command (or the
        // recipe) is wrong, so nothing is read and nothing written.
        let missing: Vec<String> = s
            .paths
            .iter()
            .filter(|p| !p.exists())
            .map(|p| p.display().to_string())
            .collect();
        if !missing.is_empty() {
            return Err(crate::UsageError(format!(
                "no such file or folder: {}\nhint: no pack was written",
                missing.join(", ")
            ))
            .into());
        }
        // A knowledge base made for the pack beside the output, removed afterwards.
        let work = tempfile::Builder::new()
            .prefix(".cairnpack-kb-")
            .tempdir_in(out_dir)
            .with_context(|| format!("cannot make a work directory in {}", out_dir.display()))?;
        let kb = work.path().join("kb");
        crate::kb::add(
            &kb,
            &s.paths,
            &crate::kb::AddSettings {
                rebuild: false,
                read: cairn_ingest::ReadOptions::default(),
                json: false,
                quiet: s.quiet,
                commit_every: 512,
                watch: None,
            },
        )?;
        (kb, Some(work))
    };
    let m =
        cairn_pack::build(&kb, &s.out, &s.about, created, fusion, s.reproducible).map_err(|e| {
            match e {
                // It names the pack already.
                cairn_pack::Error::Empty { .. } => anyhow::Error::new(e),
                e => anyhow::Error::new(e).context(format!("building {}", s.out.display())),
            }
        })?;
    let size = std::fs::metadata(&s.out).map_or(0, |m| m.len());
    println!(
        "wrote {} ({}, {} documents, {} chunks, {} members)",
        s.out.display(),
        human_size(size),
        m.documents,
        m.chunks,
        m.members.len()
    );
    Ok(())
}

/// A pack recipe: the description and the paths to read, relative to the recipe file.
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct Recipe {
    #[serde(flatten)]
    about: About,
    paths: Vec<PathBuf>,
}

/// `cairn pack build --recipe FILE`.
pub fn build_recipe(recipe: &Path, out: PathBuf, reproducible: bool, quiet: bool) -> Result<()> {
    let text = std::fs::read_to_string(recipe)
        .with_context(|| format!("cannot read {}", recipe.display()))?;
    let r: Recipe = serde_json::from_str(&text)
        .with_context(|| format!("{} is not a pack recipe", recipe.display()))?;
    let base = recipe.parent().unwrap_or(Path::new("."));
    build(&BuildSettings {
        paths: r.paths.iter().map(|p| base.join(p)).collect(),
        from_kb: None,
        out,
        about: r.about,
        reproducible,
        quiet,
    })
}

/// `cairn pack keygen`.
pub fn keygen(out: Option<&Path>) -> Result<()> {
    let default = match out {
        Some(_) => None,
        None => Some(signing_dir()?),
    };
    let (sk, pk, id) = signature::keygen(out.or(default.as_deref()).expect("one of the two"))?;
    println!("secret key: {} (keep it private)", sk.display());
    println!(
        "public key: {} (give it to those who install your packs: `cairn pack trust cairn.pub`)",
        pk.display()
    );
    println!("key id:     {id}");
    if out.is_some() {
        println!("sign with:  cairn pack sign PACK --key {}", sk.display());
    } else {
        println!("sign with:  cairn pack sign PACK");
        // Your own key, where `pack sign` takes it from: the packs you sign install here as
        // anyone's would who trusts it.
        trust(&pk)?;
    }
    Ok(())
}

/// `cairn pack sign`.
pub fn sign(pack: &Path, key: Option<&Path>) -> Result<()> {
    let default;
    let key = if let Some(k) = key {
        k
    } else {
        default = signing_dir()?.join("cairn.key");
        if !default.exists() {
            bail!(
                "no secret key at {} (where `cairn pack keygen` writes one)\nhint: `cairn pack keygen`, or pass --key FILE",
                default.display()
            );
        }
        &default
    };
    let (sig, id) = signature::sign(pack, key)?;
    println!("wrote {} (key {id})", sig.display());
    Ok(())
}

/// `cairn pack verify`: every member's hash and the signature.
pub fn verify(pack: &Path, trust: &[PathBuf], allow_unsigned: bool) -> Result<()> {
    let m = cairn_pack::verify(pack)?;
    println!(
        "{}: {} members, all hashes match ({}@{})",
        pack.display(),
        m.members.len(),
        shown(&m.about.name),
        shown(&m.about.version)
    );
    let keys = trusted_keys(trust)?;
    match signature::check(pack, &keys, !allow_unsigned) {
        Ok(Signed::Trusted(id)) => println!("signature: good, by trusted key {id}"),
        Ok(Signed::Untrusted(id)) => {
            println!("signature: valid, by key {id}, which is not trusted");
        }
        Err(e) if allow_unsigned && e.to_string().contains("no signature") => {
            println!("signature: none");
        }
        Err(e) => return Err(e.into()),
    }
    Ok(())
}

/// `cairn pack install`.
pub fn install(
    pack: &Path,
    trust: &[PathBuf],
    allow_unsigned: bool,
    options: &cairn_pack::InstallOptions,
) -> Result<()> {
    // The signature first: an untrusted file is not even unpacked.
    let keys = trusted_keys(trust)?;
    let signed = match signature::check(pack, &keys, !allow_unsigned) {
        Ok(s) => Some(s),
        Err(e) if allow_unsigned => {
            let why = e.to_string();
            eprintln!(
                "warning: {} (installing anyway: --allow-unsigned)",
                why.lines().next().unwrap_or_default()
            );
            None
        }
        Err(e) => return Err(e.into()),
    };
    let dir = packs_dir()?;
    let cairn_pack::Installed {
        manifest: m,
        path: at,
        replaced,
    } = cairn_pack::install(pack, &dir, options)?;
    let how = match signed {
        Some(Signed::Trusted(id)) => format!("signed by trusted key {id}"),
        Some(Signed::Untrusted(id)) => format!("signed by untrusted key {id}"),
        None => "unsigned".into(),
    };
    // Who signed it, for `info` later.
    let signer = at.join("signer");
    std::fs::write(&signer, format!("{how}\n"))
        .with_context(|| format!("cannot write {}", signer.display()))?;
    let (name, version) = (shown(&m.about.name), shown(&m.about.version));
    let what = match replaced.as_deref() {
        None => format!("installed {name}@{version}"),
        Some(old) if old == m.about.version => format!("reinstalled {name}@{version}"),
        Some(old) => {
            let verb = if cairn_pack::older(&m.about.version, old) == Some(true) {
                "downgraded"
            } else {
                "updated"
            };
            format!("{verb} {name} {} → {version}", shown(old))
        }
    };
    println!(
        "{what} in {} ({how}; {} documents, {} chunks)",
        at.display(),
        m.documents,
        m.chunks
    );
    Ok(())
}

/// `cairn pack list`.
pub fn list(json: bool) -> Result<()> {
    let dir = packs_dir()?;
    let packs = cairn_pack::installed(&dir)?;
    let mut out = std::io::stdout().lock();
    if json {
        let packs: Vec<serde_json::Value> = packs
            .iter()
            .map(|(m, at)| {
                // As `install` wrote it: "signed by trusted key ID", "signed by untrusted key
                // ID" or "unsigned".
                let signer = std::fs::read_to_string(at.join("signer")).unwrap_or_default();
                let signature = signer
                    .trim()
                    .strip_prefix("signed by ")
                    .and_then(|rest| rest.split_once(" key "))
                    .map(|(trust, key)| serde_json::json!({"key": key, "trusted": trust == "trusted"}));
                serde_json::json!({
                    "name": m.about.name,
                    "version": m.about.version,
                    "title": m.about.title,
                    "description": m.about.description,
                    "license": m.about.license,
                    "source": m.about.source,
                    "language": m.about.language,
                    "documents": m.documents,
                    "chunks": m.chunks,
                    "created": m.created,
                    "signature": signature,
                    "path": at.display().to_string(),
                })
            })
            .collect();
        let v = serde_json::json!({ "packs_dir": dir.display().to_string(), "packs": packs });
        writeln!(out, "{v}")?;
        return Ok(());
    }
    if packs.is_empty() {
        writeln!(out, "no packs installed in {}", dir.display())?;
    }
    for (m, _) in packs {
        writeln!(
            out,
            "{:<24} {:<10} {:>6} docs {:>8} chunks  {}",
            shown(&m.about.name),
            shown(&m.about.version),
            m.documents,
            m.chunks,
            shown(&m.about.title)
        )?;
    }
    Ok(())
}

/// `cairn pack info NAME|FILE`.
pub fn info(target: &str) -> Result<()> {
    let file = Path::new(target);
    let (m, signed) = if file.is_file() {
        let m = cairn_pack::read_manifest(file)?;
        let signed = match signature::check(file, &trusted_keys(&[])?, false) {
            Ok(Signed::Trusted(id)) => format!("signed by trusted key {id}"),
            Ok(Signed::Untrusted(id)) => format!("signed by key {id} (not trusted)"),
            Err(e) => e.to_string().lines().next().unwrap_or_default().to_owned(),
        };
        (m, signed)
    } else {
        let dir = packs_dir()?;
        let Some((m, at)) = cairn_pack::installed(&dir)?
            .into_iter()
            .find(|(m, _)| m.about.name == target)
        else {
            bail!("no pack file or installed pack named {target}\nhint: `cairn pack list` shows the installed ones");
        };
        let signer = std::fs::read_to_string(at.join("signer")).unwrap_or_default();
        (m, format!("{} (verified when installed)", signer.trim()))
    };
    print_manifest(&m, &signed)
}

fn print_manifest(m: &Manifest, signed: &str) -> Result<()> {
    let mut out = std::io::stdout().lock();
    let a = &m.about;
    writeln!(out, "name:        {}", shown(&a.name))?;
    writeln!(out, "version:     {}", shown(&a.version))?;
    writeln!(out, "title:       {}", shown(&a.title))?;
    writeln!(out, "description: {}", shown(&a.description))?;
    writeln!(out, "license:     {}", shown(&a.license))?;
    writeln!(out, "source:      {}", shown(&a.source))?;
    writeln!(out, "language:    {}", shown(&a.language))?;
    writeln!(out, "format:      {}", m.format)?;
    writeln!(
        out,
        "created:     {}",
        if m.created == 0 {
            "unset (reproducible build)".to_owned()
        } else {
            cairn_engine::text::civil_time(m.created)
        }
    )?;
    writeln!(
        out,
        "contents:    {} documents, {} chunks, {} members",
        m.documents,
        m.chunks,
        m.members.len()
    )?;
    let ours = catalog::lookup("embedder")?.files[0].sha256;
    let embedder_state = if m.embedder.weights_sha256 != ours {
        "not the embedder cairn installs: this pack can be searched by keywords only"
    } else if catalog::is_installed("embedder") {
        "installed"
    } else {
        "not installed (hint: cairn models pull embedder)"
    };
    writeln!(
        out,
        "embedder:    {} (dim {}, weights sha256 {}) — {embedder_state}",
        shown(&m.embedder.model),
        m.embedder.dim,
        shown(&m.embedder.weights_sha256)
    )?;
    writeln!(
        out,
        "chunking:    ≤{} tokens, {} overlap",
        m.chunking.max_tokens, m.chunking.overlap_tokens
    )?;
    writeln!(out, "fusion:      {}", m.fusion)?;
    writeln!(out, "signature:   {}", shown(signed))?;
    Ok(())
}

/// `cairn pack remove`.
pub fn remove(name: &str) -> Result<()> {
    let dir = packs_dir()?;
    if !cairn_pack::remove(&dir, name)? {
        bail!("no installed pack named {name}\nhint: `cairn pack list` shows the installed ones");
    }
    println!("removed {name}");
    Ok(())
}

/// `cairn pack export NAME --format jsonl`.
pub fn export(name: &str) -> Result<()> {
    let dir = packs_dir()?;
    let Some((m, at)) = cairn_pack::installed(&dir)?
        .into_iter()
        .find(|(m, _)| m.about.name == name)
    else {
        bail!("no installed pack named {name}\nhint: `cairn pack list` shows the installed ones");
    };
    let label = format!("{}@{}", m.about.name, m.about.version);
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    let n = cairn_pack::export_jsonl(&at, &label, &mut out)?;
    out.flush()?;
    if std::io::IsTerminal::is_terminal(&std::io::stderr()) {
        eprintln!("{n} chunks");
    }
    Ok(())
}

/// `cairn pack trust KEY.pub`: adds a public key to the trusted keys.
pub fn trust(key: &Path) -> Result<()> {
    let pk = signature::read_public_key(key)?;
    let id = signature::key_id(&pk);
    let dir = trust_dir()?;
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let dest = dir.join(format!("{id}.pub"));
    std::fs::copy(key, &dest).with_context(|| format!("cannot write {}", dest.display()))?;
    println!("trusted key {id} ({})", dest.display());
    Ok(())
}

/// Which packs a query searches (`--pack`, `--no-kb`, `--bm25-only-mismatched`).
#[derive(Clone, Debug, Default)]
pub struct Selection {
    /// Only these packs (empty: every installed pack).
    pub names: Vec<String>,
    /// Leave the user's own knowledge base out.
    pub no_kb: bool,
    /// Search packs embedded with another model by keywords only, instead of refusing them.
    pub bm25_only_mismatched: bool,
}

/// What a query searches: a primary snapshot (the knowledge base, or with `--no-kb` the first
/// pack) and the other packs.
pub struct Sources {
    pub reader: cairn_index::Reader,
    pub label: Option<String>,
    pub bm25_only: bool,
    pub packs: Vec<cairn_engine::PackReader>,
    pub embedder: cairn_engine::MiniLm,
}

impl Sources {
    pub fn shelves(&self) -> Vec<cairn_engine::Shelf<'_>> {
        cairn_engine::shelves(
            &self.reader,
            self.label.as_deref(),
            self.bm25_only,
            &self.packs,
        )
    }

    /// Puts these sources into an engine's retrieval (its primary snapshot is already ours).
    pub fn into_engine(self, model: &str) -> Result<cairn_engine::Engine> {
        let Sources {
            reader,
            label,
            bm25_only,
            packs,
            embedder,
        } = self;
        let mut engine = cairn_engine::Engine::with_retrieval(reader, embedder, model)?;
        engine.retrieval.label = label;
        engine.retrieval.bm25_only = bm25_only;
        engine.retrieval.packs = packs;
        Ok(engine)
    }
}

/// The installed packs named (all of them when `names` is empty), as `(label, directory)`;
/// an unknown name is an error.
pub fn choose_installed(names: &[String]) -> Result<Vec<(String, PathBuf)>> {
    let installed = cairn_pack::installed(&packs_dir()?)?;
    for n in names {
        if !installed.iter().any(|(m, _)| &m.about.name == n) {
            bail!("no installed pack named {n}\nhint: `cairn pack list` shows the installed ones");
        }
    }
    Ok(installed
        .into_iter()
        .filter(|(m, _)| names.is_empty() || names.contains(&m.about.name))
        .map(|(m, dir)| (format!("pack:{}@{}", m.about.name, m.about.version), dir))
        .collect())
}

/// Opens the knowledge base (unless `--no-kb`, or there is none and packs are installed) and
/// the selected installed packs.
pub fn open_sources(kb: &Path, sel: &Selection) -> Result<Sources> {
    open_sources_with(kb, sel, crate::kb::load_embedder()?)
}

/// [`open_sources`] with the embedder already loaded.
pub fn open_sources_with(
    kb: &Path,
    sel: &Selection,
    embedder: cairn_engine::MiniLm,
) -> Result<Sources> {
    let chosen = choose_installed(&sel.names)?;
    let mut packs = Vec::new();
    for (label, dir) in chosen {
        let p = match cairn_engine::PackReader::open(
            label.clone(),
            &dir,
            &embedder,
            sel.bm25_only_mismatched,
        ) {
            Ok(p) => p,
            // A damaged pack that was not asked for by name costs only its own hits: the
            // question goes on with the rest, and says so.
            Err(e @ cairn_engine::Error::Index(_)) if sel.names.is_empty() => {
                eprintln!(
                    "warning: {label} is left out: {}
hint: `cairn doctor` checks the installed packs; reinstall this one",
                    crate::error_chain(&e)
                );
                continue;
            }
            Err(e) => return Err(e.into()),
        };
        if p.bm25_only {
            eprintln!(
                "warning: {} was embedded with another model; it is searched by keywords only",
                p.label
            );
        }
        packs.push(p);
    }
    // Someone who installed a pack and never added files of their own has no knowledge base:
    // the packs are what there is to search (`cairn ask` works on a fresh install + a pack).
    let kb_reader = if sel.no_kb {
        None
    } else {
        match cairn_index::Reader::open(kb) {
            Err(cairn_index::Error::NotFound(_)) if !packs.is_empty() => None,
            opened => Some(opened?),
        }
    };
    let Some(reader) = kb_reader else {
        if packs.is_empty() {
            bail!("--no-kb leaves nothing to search: no pack is installed or selected\nhint: `cairn pack install FILE`");
        }
        let first = packs.remove(0);
        return Ok(Sources {
            reader: first.reader,
            label: Some(first.label),
            bm25_only: first.bm25_only,
            packs,
            embedder,
        });
    };
    cairn_engine::check_embedder(&reader, &embedder)?;
    Ok(Sources {
        reader,
        label: None,
        bm25_only: false,
        packs,
        embedder,
    })
}
