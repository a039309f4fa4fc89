//! Settings resolved once: the command line, then the environment, then the config file, then
//! the defaults. The rest of the binary reads the parsed arguments, into which the config file's
//! values have been written where neither a flag nor the environment gave one.
//!
//! The config file is `CAIRN_CONFIG`, else `<user config dir>/cairn/cairn.toml`; when it does not
//! exist there is no config. Every key is optional:
//!
//! ```toml
//! kb = "~/notes-kb"      # the knowledge base (relative paths: from this file's folder)
//! model = "fast"         # default, fast, tiny, or a path to a GGUF file
//! mode = "hybrid"        # bm25, dense or hybrid
//! k = 8                  # passages retrieved to answer a question
//! budget = 400           # tokens of sources given to the model
//! packs = ["rust-docs"]  # installed packs searched beside the knowledge base (default: all)
//!
//! [gates]                # when the model is asked at all (see `cairn ask --help`)
//! min_relevance = 0.30
//! min_coverage = 0.25
//! min_named_coverage = 0.4
//! min_rare_coverage = 0.5
//! min_relative_score = 0.8
//!
//! [limits]               # per file read by `cairn add` (see `cairn add --help`)
//! max_file_size = 64     # MiB on disk
//! max_pdf_pages = 2000
//! max_text = 64          # MiB of text once read
//! max_decompressed = 512 # MiB a PDF's compressed streams may expand to
//! ```

use std::fmt::{self, Write as _};
use std::path::{Path, PathBuf};

use clap::parser::ValueSource;
use clap::ArgMatches;

use crate::{AskArgs, Cli, Command, LimitArgs, McpArgs, ModeArg, SearchArgs, TuiArgs};

/// The environment variable that names the config file.
pub const CONFIG_ENV: &str = "CAIRN_CONFIG";

/// `cairn.toml`, as written.
#[derive(Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfigFile {
    kb: Option<PathBuf>,
    model: Option<String>,
    mode: Option<ModeArg>,
    k: Option<usize>,
    budget: Option<usize>,
    packs: Option<Vec<String>>,
    #[serde(default)]
    gates: GatesFile,
    #[serde(default)]
    limits: LimitsFile,
}

/// The `[limits]` table.
#[derive(Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(clippy::struct_field_names)] // the keys users write, as `cairn add`'s flags name them
struct LimitsFile {
    max_file_size: Option<u64>,
    max_pdf_pages: Option<u32>,
    max_text: Option<u64>,
    max_decompressed: Option<u64>,
}

/// The `[gates]` table.
#[derive(Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(clippy::struct_field_names)] // the keys users write, as `cairn ask`'s flags name them
struct GatesFile {
    min_relevance: Option<f32>,
    min_coverage: Option<f32>,
    min_named_coverage: Option<f32>,
    min_rare_coverage: Option<f32>,
    min_relative_score: Option<f32>,
}

/// The config file found (or not) and what it holds.
#[derive(Debug, Default)]
pub struct Config {
    /// Where it is, or would be.
    pub path: Option<PathBuf>,
    /// Whether it exists.
    pub exists: bool,
    file: ConfigFile,
}

/// Where a setting's value came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Origin {
    /// A flag on the command line.
    Flag,
    /// An environment variable.
    Env,
    /// The config file.
    Config,
    /// cairn's default.
    Default,
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Origin::Flag => "command line",
            Origin::Env => "environment",
            Origin::Config => "config file",
            Origin::Default => "default",
        })
    }
}

/// One resolved setting, for `cairn config show`.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Entry {
    /// Its key in the config file.
    pub key: &'static str,
    /// Its value, as text.
    pub value: String,
    /// Where the value came from.
    pub origin: Origin,
}

/// Reads the config file: `CAIRN_CONFIG` if set, else the user config dir's `cairn/cairn.toml`.
///
/// # Errors
/// A message naming the file (and, for a malformed file, the line, column and key), for the
/// caller to print with exit status 2.
pub fn load() -> Result<Config, String> {
    let (path, named) = match std::env::var_os(CONFIG_ENV).filter(|p| !p.is_empty()) {
        Some(p) => (Some(PathBuf::from(p)), true),
        None => (
            dirs::config_dir().map(|d| d.join("cairn").join("cairn.toml")),
            false,
        ),
    };
    let Some(path) = path else {
        return Ok(Config::default());
    };
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && !named => {
            return Ok(Config {
                path: Some(path),
                exists: false,
                file: ConfigFile::default(),
            })
        }
        Err(e) => return Err(format!("config file {}: {e}", path.display())),
    };
    let mut file: ConfigFile = toml::from_str(&text).map_err(|e| {
        format!(
            "config file {}: {}",
            path.display(),
            e.to_string().trim_end()
        )
    })?;
    if file.k == Some(0) {
        return Err(format!(
            "config file {}: k must be at least 1",
            path.display()
        ));
    }
    if let Some(kb) = file.kb.take() {
        file.kb = Some(resolve_path(&kb, &path));
    }
    Ok(Config {
        path: Some(path),
        exists: true,
        file,
    })
}

/// `~/…` from the home directory, a relative path from the config file's folder.
fn resolve_path(p: &Path, config: &Path) -> PathBuf {
    if let Ok(rest) = p.strip_prefix("~") {
        if let Some(home) = dirs::home_dir() {
            return home.join(rest);
        }
    }
    if p.is_relative() {
        if let Some(dir) = config.parent() {
            return dir.join(p);
        }
    }
    p.to_owned()
}

/// Collects the resolved settings while writing the config file's values into the arguments.
struct Resolver<'a> {
    matches: Option<&'a ArgMatches>,
    entries: Vec<Entry>,
}

impl Resolver<'_> {
    fn origin(&self, id: &str) -> Option<Origin> {
        match self.matches?.value_source(id)? {
            ValueSource::CommandLine => Some(Origin::Flag),
            ValueSource::EnvVariable => Some(Origin::Env),
            _ => None,
        }
    }

    /// `current` keeps a flag's or the environment's value, else takes the config file's.
    fn pick<T: Clone>(
        &mut self,
        key: &'static str,
        id: &str,
        current: &mut T,
        config: Option<&T>,
        show: impl Fn(&T) -> String,
    ) {
        let origin = match (self.origin(id), config) {
            (Some(o), _) => o,
            (None, Some(c)) => {
                current.clone_from(c);
                Origin::Config
            }
            (None, None) => Origin::Default,
        };
        self.entries.push(Entry {
            key,
            value: show(current),
            origin,
        });
    }
}

#[allow(clippy::trivially_copy_pass_by_ref)] // the shape `Resolver::pick` calls
fn mode_name(m: &ModeArg) -> String {
    clap::ValueEnum::to_possible_value(m).map_or_else(String::new, |v| v.get_name().to_owned())
}

#[allow(clippy::ptr_arg)] // the shape `Resolver::pick` calls
fn packs_text(p: &Vec<String>) -> String {
    if p.is_empty() {
        "all installed".to_owned()
    } else {
        p.join(", ")
    }
}

/// Writes the config file's values into `cli` wherever neither a flag nor the environment set
/// one, and returns every setting the command uses with where its value came from.
pub fn apply(cli: &mut Cli, matches: &ArgMatches, config: &Config) -> Vec<Entry> {
    let c = &config.file;
    let g = &c.gates;
    let mut r = Resolver {
        matches: Some(matches),
        entries: Vec::new(),
    };
    r.pick(
        "kb",
        "kb",
        &mut cli.kb,
        c.kb.as_ref().map(|p| Some(p.clone())).as_ref(),
        |kb| {
            crate::kb::kb_dir(kb.as_deref())
                .map_or_else(|e| e.to_string(), |p| p.display().to_string())
        },
    );
    let name = matches.subcommand_name().unwrap_or_default().to_owned();
    r.matches = matches.subcommand_matches(&name);
    match &mut cli.command {
        Some(Command::Ask(a)) => ask(&mut r, a, c, g),
        Some(Command::Search(a)) => search(&mut r, a, c),
        Some(Command::Tui(a)) => tui(&mut r, a, c),
        Some(Command::Mcp(a)) => mcp(&mut r, a, c),
        Some(Command::Add { limits, .. }) => limits_of(&mut r, limits, c),
        Some(Command::Config(_)) => {
            // `config show` reports what `ask` would use.
            let mut a = AskArgs::defaults();
            r.matches = None;
            ask(&mut r, &mut a, c, g);
        }
        Some(_) | None => {}
    }
    r.entries
}

impl Resolver<'_> {
    fn model(&mut self, v: &mut String, c: &ConfigFile) {
        self.pick("model", "model", v, c.model.as_ref(), Clone::clone);
    }

    fn mode(&mut self, v: &mut ModeArg, c: &ConfigFile) {
        self.pick("mode", "mode", v, c.mode.as_ref(), mode_name);
    }

    fn packs(&mut self, v: &mut Vec<String>, c: &ConfigFile) {
        self.pick("packs", "packs", v, c.packs.as_ref(), packs_text);
    }

    fn count(&mut self, key: &'static str, v: &mut usize, c: Option<&usize>) {
        self.pick(key, key, v, c, ToString::to_string);
    }

    /// A `[gates]` key, whose flag is the key without the table's name.
    fn gate(&mut self, key: &'static str, v: &mut f32, c: Option<&f32>) {
        let id = key.trim_start_matches("gates.");
        self.pick(key, id, v, c, |v| format!("{v}"));
    }
}

fn ask(r: &mut Resolver, a: &mut AskArgs, c: &ConfigFile, g: &GatesFile) {
    r.model(&mut a.model, c);
    r.mode(&mut a.mode, c);
    r.count("k", &mut a.k, c.k.as_ref());
    r.count("budget", &mut a.budget, c.budget.as_ref());
    r.packs(&mut a.packs.packs, c);
    r.gate(
        "gates.min_relevance",
        &mut a.min_relevance,
        g.min_relevance.as_ref(),
    );
    r.gate(
        "gates.min_coverage",
        &mut a.min_coverage,
        g.min_coverage.as_ref(),
    );
    r.gate(
        "gates.min_named_coverage",
        &mut a.min_named_coverage,
        g.min_named_coverage.as_ref(),
    );
    r.gate(
        "gates.min_rare_coverage",
        &mut a.min_rare_coverage,
        g.min_rare_coverage.as_ref(),
    );
    r.gate(
        "gates.min_relative_score",
        &mut a.min_relative_score,
        g.min_relative_score.as_ref(),
    );
}

fn search(r: &mut Resolver, a: &mut SearchArgs, c: &ConfigFile) {
    r.mode(&mut a.mode, c);
    r.packs(&mut a.packs.packs, c);
}

fn limits_of(r: &mut Resolver, l: &mut LimitArgs, c: &ConfigFile) {
    let f = &c.limits;
    let show = |v: &u64| v.to_string();
    r.pick(
        "limits.max_file_size",
        "max_file_size",
        &mut l.max_file_size,
        f.max_file_size.as_ref(),
        show,
    );
    r.pick(
        "limits.max_pdf_pages",
        "max_pdf_pages",
        &mut l.max_pdf_pages,
        f.max_pdf_pages.as_ref(),
        ToString::to_string,
    );
    r.pick(
        "limits.max_text",
        "max_text",
        &mut l.max_text,
        f.max_text.as_ref(),
        show,
    );
    r.pick(
        "limits.max_decompressed",
        "max_decompressed",
        &mut l.max_decompressed,
        f.max_decompressed.as_ref(),
        show,
    );
}

fn tui(r: &mut Resolver, a: &mut TuiArgs, c: &ConfigFile) {
    limits_of(r, &mut a.limits, c);
    r.model(&mut a.model, c);
    r.mode(&mut a.mode, c);
    r.packs(&mut a.packs, c);
}

fn mcp(r: &mut Resolver, a: &mut McpArgs, c: &ConfigFile) {
    r.model(&mut a.model, c);
    r.mode(&mut a.mode, c);
    r.count("k", &mut a.k, c.k.as_ref());
    r.packs(&mut a.packs.packs, c);
}

/// `cairn config show`.
pub fn show(config: &Config, entries: &[Entry], json: bool) -> String {
    let file = config.path.as_ref().map(|p| p.display().to_string());
    if json {
        let settings: serde_json::Map<String, serde_json::Value> = entries
            .iter()
            .map(|e| {
                (
                    e.key.to_owned(),
                    serde_json::json!({ "value": e.value, "source": e.origin }),
                )
            })
            .collect();
        return serde_json::json!({
            "config_file": file,
            "config_file_exists": config.exists,
            "settings": settings,
        })
        .to_string();
    }
    let mut out = match (&file, config.exists) {
        (Some(f), true) => format!("config file: {f}\n"),
        (Some(f), false) => format!("config file: {f} (none there; defaults apply)\n"),
        (None, _) => "config file: none (no user config directory)\n".to_owned(),
    };
    let width = entries.iter().map(|e| e.key.len()).max().unwrap_or(0);
    let values: Vec<String> = entries
        .iter()
        .map(|e| cairn_engine::text::sanitize(&e.value))
        .collect();
    let value_width = values.iter().map(|v| v.chars().count()).max().unwrap_or(0);
    for (e, v) in entries.iter().zip(&values) {
        let _ = writeln!(out, "{:width$}  {v:value_width$}  ({})", e.key, e.origin);
    }
    out
}
