//! `cairn`: a private, offline knowledge base for the terminal.
//!
//! The binary only translates: command-line arguments and environment into the libraries'
//! options, results into text on stdout, errors into messages and exit codes.

use std::io::{self, Write};
use std::ops::ControlFlow;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use cairn_engine::catalog as models;
use cairn_engine::{answer as engine, text::human_size, text::sanitize};
use cairn_generator::{GenerateOptions, Generator, LoadOptions, Message};
use clap::{Args, CommandFactory, FromArgMatches, Parser, Subcommand};

/// mimalloc keeps freed large blocks for reuse: the prompt path allocates and frees tens of
/// megabytes per matrix product, and glibc returns each to the kernel, which then zeroes fresh
/// pages for the next (a fifth of the 1.5B model's prefill time in a profile).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// mimalloc's `purge_delay` option: its place in `mi_option_e` (mimalloc.h, v3), which
/// libmimalloc-sys names the neighbours of but not this one. A test checks its default.
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

/// Freed memory goes back to the kernel after this long unused, not mimalloc's 1 s: a prompt's
/// pass takes seconds, so its later layers found the first layers' buffers returned and the
/// kernel zeroing fresh pages for them (a third more page faults, and 4–14% of a question's
/// first-token time on the Xeon, BENCHMARKS.md). Ten seconds keeps them for the whole answer;
/// an idle TUI or MCP server still gives them back.
const PURGE_DELAY_MS: std::ffi::c_long = 10_000;

/// Sets [`PURGE_DELAY_MS`]; called first thing, before any other thread exists (mimalloc's
/// option setters are not thread-safe).
fn keep_freed_memory_for_reuse() {
    #[allow(unsafe_code)]
    // SAFETY: mi_option_set stores a value in mimalloc's option table; no other thread is
    // running yet, and the option index is checked by a test against mimalloc's default.
    unsafe {
        libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, PURGE_DELAY_MS);
    }
}

mod ask;
mod batch;
mod doctor;
mod eval;
mod evalqa;
mod kb;
mod pack;
mod progress;
mod settings;
mod style;

/// Exit codes, documented in `--help` and the README.
const EXIT_ERROR: u8 = 1;
const EXIT_USAGE: u8 = 2;
const EXIT_NOT_FOUND: u8 = 3;
const EXIT_LINES_FAILED: u8 = 4;

const AFTER_HELP: &str = "\
Exit status:
  0  success
  1  error (the message says what failed and, where it can, what to do)
  2  usage or configuration error
  3  ask: not found in the knowledge base (with --batch: some questions were not found)
  4  --batch: some lines failed (each has an `error` object in the output)

Environment:
  CAIRN_CONFIG      the config file (default: <user config dir>/cairn/cairn.toml; `cairn config show`)
  CAIRN_KB          the knowledge base directory (default: <user data dir>/cairn/kb)
  CAIRN_MODELS_DIR  where model weights live (default: <user cache dir>/cairn/models)
  CAIRN_PYTHON      the Python used for `pip download` (default: python3)
  CAIRN_PACKS_DIR   where packs are installed (default: <user data dir>/cairn/packs)
  CAIRN_TRUST_DIR   the public keys trusted to sign packs (default: <user config dir>/cairn/trusted)
  NO_COLOR          no colour, in the terminal app or on stdout (see --color)
  CLICOLOR_FORCE    colour on stdout even into a pipe
  FORCE_HYPERLINK   file references as OSC 8 links (1) or not (0), whatever the terminal";

#[derive(Parser)]
#[command(
    name = "cairn",
    version,
    about = "A private, offline knowledge base for the terminal"
)]
#[command(after_help = AFTER_HELP)]
struct Cli {
    /// The knowledge base directory (default: `<user data dir>/cairn/kb`).
    #[arg(long, global = true, env = "CAIRN_KB", value_name = "DIR")]
    kb: Option<PathBuf>,
    /// Colour and file links on stdout: auto (on a terminal, unless NO_COLOR is set;
    /// CLICOLOR_FORCE forces it), always (even into a pipe) or never. JSON is never coloured.
    #[arg(long, global = true, value_enum, default_value_t = style::ColorArg::Auto, value_name = "WHEN")]
    color: style::ColorArg,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Open the terminal app (also what `cairn` alone does in a terminal).
    Tui(TuiArgs),
    /// Serve the knowledge base to agents over the Model Context Protocol (stdio, or streamable
    /// HTTP on loopback with --http): the tools search, ask, get and status, and every document
    /// as a resource.
    Mcp(McpArgs),
    /// Check the installed models, the ONNX Runtime library, the knowledge base, the packs and
    /// the prompt cache: one line each, ok or a problem with a hint (exit 1 on a problem).
    Doctor {
        /// One JSON array of {check, ok, detail, hint}.
        #[arg(long)]
        json: bool,
        /// Hash every model file again instead of trusting the stamps of the last check.
        #[arg(long)]
        deep: bool,
    },
    /// Add files and folders to the knowledge base (re-adding updates only what changed).
    Add {
        /// Files or folders; folders are walked honouring .gitignore, .ignore and .cairnignore.
        #[arg(required = true)]
        paths: Vec<PathBuf>,
        /// Delete the knowledge base's contents first (after changing the embedding model).
        #[arg(long)]
        rebuild: bool,
        #[command(flatten)]
        limits: LimitArgs,
        /// Print the summary as one JSON object.
        #[arg(long)]
        json: bool,
        /// No progress or per-file messages.
        #[arg(long, short)]
        quiet: bool,
        /// Then keep watching the paths: whenever something under them changes (and has been
        /// quiet for a second), add them again and print what changed — one line, or with
        /// --json one JSON object per run that changed something. Holds the knowledge base's
        /// writer lock until stopped (Ctrl-C; everything indexed so far stays).
        #[arg(long)]
        watch: bool,
        /// Commit after this many new chunks (tests use small values to exercise resuming).
        #[arg(long, default_value_t = 512, hide = true)]
        commit_every: usize,
    },
    /// Remove documents: a path that was added, or a key or folder as `status --documents` lists.
    Remove {
        /// Paths or document keys.
        #[arg(required = true)]
        targets: Vec<String>,
    },
    /// Show what the knowledge base holds.
    Status {
        /// One JSON object.
        #[arg(long)]
        json: bool,
        /// List every document.
        #[arg(long)]
        documents: bool,
    },
    /// Print a file's text as cairn reads it (with page and section markers), without indexing.
    Extract {
        /// The file.
        file: PathBuf,
        /// Mark each section's heading path, page and first line.
        #[arg(long)]
        sections: bool,
    },
    /// Search the knowledge base (keywords, meaning, or both).
    Search(SearchArgs),
    /// Answer a question from the knowledge base, citing document, page and lines.
    Ask(AskArgs),
    /// Measure retrieval or answering on public benchmarks.
    #[command(subcommand)]
    Eval(EvalCommand),
    /// Fetch, list, verify and exercise the pinned models.
    #[command(subcommand)]
    Models(ModelsCommand),
    /// Knowledge packs: build a knowledge base into one signed file, verify, install, list.
    #[command(subcommand)]
    Pack(PackCommand),
    /// Print a shell completion script (generated from this command line's definition).
    Completions {
        /// The shell.
        shell: clap_complete::Shell,
    },
    /// Print the man page (roff), generated from this command line's definition.
    Man,
    /// The config file (`CAIRN_CONFIG`, else `<user config dir>/cairn/cairn.toml`).
    #[command(subcommand)]
    Config(ConfigCommand),
}

#[derive(Subcommand)]
enum ConfigCommand {
    /// Print the settings `ask` would use (knowledge base, model, mode, k, budget, packs,
    /// gates), each with where its value came from: command line, environment, config file or
    /// default.
    Show {
        /// One JSON object: the config file's path and every setting's value and source.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum ExportFormat {
    /// One JSON object per chunk: id, vector, payload.
    Jsonl,
}

#[derive(Subcommand)]
#[allow(clippy::large_enum_variant)] // parsed once from the command line
enum PackCommand {
    /// Build a pack from files and folders (embedded once), or from a knowledge base as it is.
    Build {
        /// Files or folders to read (not with --from-kb).
        #[arg(required_unless_present_any = ["from_kb", "recipe"], conflicts_with_all = ["from_kb", "recipe"])]
        paths: Vec<PathBuf>,
        /// Build as a recipe file says: a JSON object with the description fields (`name`,
        /// `version`, `title`, `description`, `license`, `source`, `language`) and `paths`,
        /// relative to the recipe (corpora/cargo-book.pack.json is one).
        #[arg(long, value_name = "FILE", conflicts_with_all = ["from_kb", "name", "title", "description", "license", "source"])]
        recipe: Option<PathBuf>,
        /// Pack this knowledge base directory without re-embedding anything.
        #[arg(long, value_name = "DIR")]
        from_kb: Option<PathBuf>,
        /// The pack file to write.
        #[arg(short, long, value_name = "NAME.cairnpack")]
        output: PathBuf,
        /// Short name: lowercase letters, digits and `-` (default: the output file's stem).
        #[arg(long)]
        name: Option<String>,
        /// Semantic version.
        #[arg(long, default_value = "0.1.0")]
        version: String,
        /// One-line title.
        #[arg(long, default_value = "")]
        title: String,
        /// What the pack holds.
        #[arg(long, default_value = "")]
        description: String,
        /// SPDX license expression of the documents.
        #[arg(long, default_value = "")]
        license: String,
        /// Where the documents came from (URL or text).
        #[arg(long, default_value = "")]
        source: String,
        /// Language of the documents (BCP 47).
        #[arg(long, default_value = "en")]
        language: String,
        /// Pin the time fields and build the vector graph one vector at a time, so that the same
        /// documents give the same bytes (the graph takes longer).
        #[arg(long)]
        reproducible: bool,
        /// No progress output.
        #[arg(long, short)]
        quiet: bool,
    },
    /// Make a signing key pair: DIR/cairn.key (secret) and DIR/cairn.pub.
    Keygen {
        /// Where to write the keys (default: `<user config dir>/cairn/signing`, where `pack
        /// sign` looks).
        #[arg(long, value_name = "DIR")]
        out: Option<PathBuf>,
    },
    /// Sign a pack: writes PACK.minisig (minisign's format; `minisign -V` checks it too).
    Sign {
        /// The pack.
        pack: PathBuf,
        /// The secret key (default: `<user config dir>/cairn/signing/cairn.key`, as `pack
        /// keygen` writes it).
        #[arg(long, value_name = "FILE")]
        key: Option<PathBuf>,
    },
    /// Check every member's hash and the signature.
    Verify {
        /// The pack.
        pack: PathBuf,
        /// Also trust this public key (repeatable).
        #[arg(long, value_name = "KEY.pub")]
        trust: Vec<PathBuf>,
        /// Do not fail on a missing or untrusted signature.
        #[arg(long)]
        allow_unsigned: bool,
    },
    /// Verify and install a pack (refused unsigned or untrusted unless --allow-unsigned).
    Install {
        /// The pack.
        pack: PathBuf,
        /// Also trust this public key (repeatable).
        #[arg(long, value_name = "KEY.pub")]
        trust: Vec<PathBuf>,
        /// Install a pack without a trusted signature.
        #[arg(long)]
        allow_unsigned: bool,
        /// Refuse members larger than this many bytes.
        #[arg(long, default_value_t = cairn_pack::DEFAULT_MAX_MEMBER, value_name = "BYTES")]
        max_member_size: u64,
        /// Replace an installed newer version of the pack with this older one.
        #[arg(long)]
        allow_downgrade: bool,
    },
    /// List the installed packs.
    List {
        /// One JSON object: `packs_dir`, and `packs`, each with its manifest's description,
        /// `documents`, `chunks`, `created` (Unix seconds), `signature` (`key` and `trusted`,
        /// as checked when installed; null if unsigned) and `path`.
        #[arg(long)]
        json: bool,
    },
    /// Show a pack's manifest, signer and whether its embedding model is installed.
    Info {
        /// An installed pack's name, or a pack file.
        target: String,
    },
    /// Remove an installed pack.
    Remove {
        /// Its name.
        name: String,
    },
    /// Write an installed pack's chunks with their vectors as JSON lines (Qdrant points).
    Export {
        /// The installed pack's name.
        name: String,
        /// The output format.
        #[arg(long, value_enum, default_value_t = ExportFormat::Jsonl)]
        format: ExportFormat,
    },
    /// Trust a public key for installing packs (copied into the config dir).
    Trust {
        /// The public key file.
        key: PathBuf,
    },
}

/// Which installed packs a query searches besides the knowledge base.
#[derive(Args, Clone, Default)]
struct PackArgs {
    /// Search only this installed pack (repeatable; default: every installed pack).
    #[arg(long = "pack", value_name = "NAME")]
    packs: Vec<String>,
    /// Leave the knowledge base out: search the packs only.
    #[arg(long)]
    no_kb: bool,
    /// Search a pack embedded with another model by keywords only, instead of refusing it.
    #[arg(long)]
    bm25_only_mismatched: bool,
}

impl PackArgs {
    fn selection(&self) -> pack::Selection {
        pack::Selection {
            names: self.packs.clone(),
            no_kb: self.no_kb,
            bm25_only_mismatched: self.bm25_only_mismatched,
        }
    }
}

#[derive(Args)]
struct McpArgs {
    /// Serve streamable HTTP at http://ADDR/mcp instead of stdio; loopback addresses only
    /// (e.g. 127.0.0.1:8765; port 0 picks a free one). Requests whose Host or Origin is not
    /// this machine's are refused.
    #[arg(long, value_name = "ADDR")]
    http: Option<std::net::SocketAddr>,
    /// The model `ask` answers with: default, fast, tiny, or a path to a GGUF file.
    #[arg(long, default_value = "default")]
    model: String,
    /// Passages `ask` retrieves, unless a call says otherwise.
    #[arg(short, long, default_value_t = 8)]
    k: usize,
    /// Which retrieval legs `ask` runs.
    #[arg(long, value_enum, default_value_t = ModeArg::Hybrid)]
    mode: ModeArg,
    #[command(flatten)]
    packs: PackArgs,
}

#[derive(Args)]
struct TuiArgs {
    /// The model: default, fast, tiny, or a path to a GGUF file.
    #[arg(long, default_value = "default")]
    model: String,
    /// Which retrieval legs to run.
    #[arg(long, value_enum, default_value_t = ModeArg::Hybrid)]
    mode: ModeArg,
    /// Print the key list as Markdown and exit (the README's key table is this).
    #[arg(long)]
    keys: bool,
    /// Search only this installed pack beside the knowledge base (repeatable; default: all).
    #[arg(long = "pack", value_name = "NAME")]
    packs: Vec<String>,
    /// Search a pack embedded with another model by keywords only, instead of leaving it out.
    #[arg(long)]
    bm25_only_mismatched: bool,
    /// The limits per file of `/add`, as `cairn add` takes them.
    #[command(flatten, next_help_heading = "Limits per file of /add")]
    limits: LimitArgs,
}

/// What one file may cost when it is added (`cairn add`, and `/add` in the terminal app).
#[derive(Args, Clone, Debug)]
#[allow(clippy::struct_field_names)] // the flags' names
struct LimitArgs {
    /// Skip files larger than this many MiB (from their size on disk, unread).
    #[arg(
        long,
        env = "CAIRN_MAX_FILE_SIZE",
        default_value_t = 64,
        value_name = "MIB"
    )]
    pub max_file_size: u64,
    /// Read at most this many pages of a PDF; later pages are skipped with a message.
    #[arg(
        long,
        env = "CAIRN_MAX_PDF_PAGES",
        default_value_t = 2000,
        value_name = "N"
    )]
    pub max_pdf_pages: u32,
    /// Keep at most this many MiB of text per file: a text file with more is skipped, a
    /// PDF's later pages are.
    #[arg(long, env = "CAIRN_MAX_TEXT", default_value_t = 64, value_name = "MIB")]
    pub max_text: u64,
    /// Skip a PDF whose compressed streams expand to more than this many MiB.
    #[arg(
        long,
        env = "CAIRN_MAX_DECOMPRESSED",
        default_value_t = 512,
        value_name = "MIB"
    )]
    pub max_decompressed: u64,
}

impl Default for LimitArgs {
    fn default() -> Self {
        let d = cairn_ingest::ReadOptions::default();
        LimitArgs {
            max_file_size: d.max_bytes >> 20,
            max_pdf_pages: d.max_pdf_pages,
            max_text: (d.max_text_bytes >> 20) as u64,
            max_decompressed: d.max_decompressed_bytes >> 20,
        }
    }
}

impl LimitArgs {
    fn read_options(&self) -> cairn_ingest::ReadOptions {
        cairn_ingest::ReadOptions {
            max_bytes: self.max_file_size.saturating_mul(1 << 20),
            max_pdf_pages: self.max_pdf_pages,
            max_text_bytes: usize::try_from(self.max_text.saturating_mul(1 << 20))
                .unwrap_or(usize::MAX),
            max_decompressed_bytes: self.max_decompressed.saturating_mul(1 << 20),
        }
    }
}

#[derive(Args)]
struct SearchArgs {
    /// The query.
    #[arg(required_unless_present = "batch")]
    query: Option<String>,
    /// Search for every line of FILE (`-` for stdin): JSON objects `{"id", "query", "k",
    /// "mode", "after"}` or plain queries; one JSON object per line out (schema/search.schema.json).
    #[arg(long, value_name = "FILE", conflicts_with_all = ["query", "json"])]
    batch: Option<String>,
    /// The question asked before this one. A question that leans on it ("What about Arc?",
    /// "Is it thread safe?", "How do I create one?") is written out to stand on its own, and
    /// how it was taken is said on stderr.
    #[arg(long, value_name = "QUESTION", conflicts_with = "batch")]
    after: Option<String>,
    /// Results to show.
    #[arg(short, long, default_value_t = 10)]
    k: usize,
    /// Which legs to run.
    #[arg(long, value_enum, default_value_t = ModeArg::Hybrid)]
    mode: ModeArg,
    /// How hybrid mode fuses the legs.
    #[arg(long, value_enum, default_value_t = FusionArg::Score)]
    fusion: FusionArg,
    /// Weight of the dense leg in hybrid mode, 0–1 (0.4 scored best on SciFact; BENCHMARKS.md).
    #[arg(long, default_value_t = 0.4)]
    weight: f32,
    /// Show every copy of a passage: by default a hit whose text is mostly already shown (the
    /// same passage in another file) is folded into the one above it, listed under "also in".
    #[arg(long)]
    keep_duplicates: bool,
    /// One JSON object with every hit's document, section, page, lines and scores.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    packs: PackArgs,
}

#[derive(Args)]
#[allow(clippy::struct_excessive_bools)] // independent command-line flags
struct AskArgs {
    /// The question.
    #[arg(required_unless_present = "batch")]
    question: Option<String>,
    /// Answer every line of FILE (`-` for stdin): JSON objects `{"id", "question", "k", "mode",
    /// "max_tokens", "budget", "seed", "temperature", "min_named_coverage",
    /// "min_rare_coverage", "min_relative_score", "free", "after"}` or plain questions; one JSON object
    /// per line out, in input order (schema/answer.schema.json).
    #[arg(long, value_name = "FILE", conflicts_with_all = ["question", "json", "show_context", "quote"])]
    batch: Option<String>,
    /// The question asked before this one. A question that leans on it ("What about Arc?",
    /// "Is it thread safe?", "How do I create one?") is written out to stand on its own, and
    /// how it was taken is said on stderr.
    #[arg(long, value_name = "QUESTION", conflicts_with = "batch")]
    after: Option<String>,
    /// The model: default, fast, tiny, or a path to a GGUF file.
    #[arg(long, default_value = "default")]
    model: String,
    /// Passages to retrieve.
    #[arg(short, long, default_value_t = 8)]
    k: usize,
    /// Tokens of source text given to the model (less is faster; BENCHMARKS.md has the trade-off).
    #[arg(long, default_value_t = cairn_retriever::context::DEFAULT_BUDGET)]
    budget: usize,
    /// Give the model every copy of a passage: by default a passage whose text is mostly
    /// already among the sources (the same text in another file) is left out, and the source
    /// that holds it lists where else it is.
    #[arg(long)]
    keep_duplicates: bool,
    /// Which retrieval legs to run.
    #[arg(long, value_enum, default_value_t = ModeArg::Hybrid)]
    mode: ModeArg,
    /// Most tokens in the answer.
    #[arg(long, default_value_t = 200)]
    max_tokens: usize,
    /// Sampling temperature; 0 (the default) always picks the likeliest token.
    #[arg(long, default_value_t = 0.0)]
    temperature: f32,
    /// Seed for sampling (with --temperature).
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Least similarity of the best passage for the model to be asked at all.
    #[arg(long, default_value_t = engine::MIN_RELEVANCE)]
    min_relevance: f32,
    /// Least share of the question's content words one passage must contain for the model to
    /// be asked (0 turns this check off).
    #[arg(long, default_value_t = engine::MIN_COVERAGE)]
    min_coverage: f32,
    /// When the question names something no retrieved passage names, the share of its content
    /// words one passage must still hold for the model to be asked.
    #[arg(long, default_value_t = engine::MIN_NAMED_COVERAGE)]
    min_named_coverage: f32,
    /// The model is not asked when the best passage holds less than this share of the
    /// question's words weighted by rarity — both in the knowledge base and in general English
    /// (0 turns this check off).
    #[arg(long, default_value_t = engine::MIN_RARE_COVERAGE)]
    min_rare_coverage: f32,
    /// Passages after the best one are given to the model only if their retrieval score is
    /// at least this share of the best one's (0 gives all k).
    #[arg(long, default_value_t = cairn_retriever::context::MIN_RELATIVE_SCORE)]
    min_relative_score: f32,
    /// Let the model word the answer freely. By default the answer is a span quoted verbatim
    /// from the sources (or "not found"): a small model cannot then paraphrase, convert or
    /// invent.
    #[arg(long)]
    free: bool,
    /// Ask the model whether the sources state the answer to the question, and withhold its
    /// answer when "Yes" leads "No" by less than MARGIN logits: `auto` (the default) uses the
    /// margin calibrated for the model (the 1.5B's, higher for questions asking why or how
    /// something works, not how to do something; none for the others) on quoted answers,
    /// `off` skips it. A few dozen tokens on the context already in the model's cache.
    #[arg(long, value_name = "MARGIN|auto|off", allow_hyphen_values = true, value_parser = parse_self_check)]
    self_check: Option<engine::SelfCheck>,
    /// Print the sources given to the model before the answer.
    #[arg(long)]
    show_context: bool,
    /// Quote the cited sentences under each source.
    #[arg(long)]
    quote: bool,
    /// One JSON object (answer, sentences with citations, sources, abstention, timings).
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    packs: PackArgs,
}

impl AskArgs {
    /// What `ask` uses with no flags (for `config show`).
    fn defaults() -> AskArgs {
        match Cli::try_parse_from(["cairn", "ask", "?"]) {
            Ok(Cli {
                command: Some(Command::Ask(a)),
                ..
            }) => a,
            _ => unreachable!("`cairn ask ?` parses"),
        }
    }

    fn options(&self) -> engine::AskOptions {
        engine::AskOptions {
            k: self.k,
            mode: self.mode.into(),
            budget: self.budget,
            max_tokens: self.max_tokens,
            temperature: self.temperature,
            seed: self.seed,
            min_relevance: self.min_relevance,
            min_coverage: self.min_coverage,
            min_named_coverage: self.min_named_coverage,
            min_rare_coverage: self.min_rare_coverage,
            free: self.free,
            min_relative_score: self.min_relative_score,
            self_check: self.self_check.unwrap_or_default(),
            fold_duplicates: fold_duplicates(self.keep_duplicates),
            ..engine::AskOptions::default()
        }
    }
}

/// `--keep-duplicates` as a search option.
fn fold_duplicates(keep: bool) -> Option<f32> {
    (!keep).then_some(cairn_retriever::duplicates::DEFAULT_THRESHOLD)
}

/// `--self-check`: a margin in logits, `auto` or `off`.
fn parse_self_check(s: &str) -> Result<engine::SelfCheck, String> {
    match s {
        "auto" => Ok(engine::SelfCheck::Calibrated),
        "off" => Ok(engine::SelfCheck::Off),
        _ => s
            .parse::<f32>()
            .ok()
            .filter(|m| m.is_finite())
            .map(engine::SelfCheck::Margin)
            .ok_or_else(|| format!("expected a margin in logits, `auto` or `off`, not {s:?}")),
    }
}

impl From<ModeArg> for cairn_retriever::Mode {
    fn from(m: ModeArg) -> Self {
        match m {
            ModeArg::Bm25 => cairn_retriever::Mode::Bm25,
            ModeArg::Dense => cairn_retriever::Mode::Dense,
            ModeArg::Hybrid => cairn_retriever::Mode::Hybrid,
        }
    }
}

#[derive(Clone, Copy, Debug, Default, clap::ValueEnum, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
enum ModeArg {
    Bm25,
    Dense,
    #[default]
    Hybrid,
}

impl From<FusionArg> for cairn_retriever::Fusion {
    fn from(f: FusionArg) -> Self {
        match f {
            FusionArg::Rrf => cairn_retriever::Fusion::Rrf { k: 60.0 },
            FusionArg::Score => cairn_retriever::Fusion::Score,
        }
    }
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum FusionArg {
    /// Reciprocal rank fusion (k = 60).
    Rrf,
    /// Min-max normalised score fusion.
    Score,
}

#[derive(Subcommand)]
enum EvalCommand {
    /// Retrieval on a BEIR folder (corpus.jsonl, queries.jsonl, qrels/SPLIT.tsv).
    Beir {
        /// The BEIR dataset folder.
        dir: PathBuf,
        /// The qrels split.
        #[arg(long, default_value = "test")]
        split: String,
        /// Evaluate only the first N queries.
        #[arg(long)]
        limit: Option<usize>,
        /// One JSON object.
        #[arg(long)]
        json: bool,
        /// Keep the index in DIR and reuse it when run again (default: a throwaway one).
        #[arg(long, value_name = "DIR")]
        index: Option<PathBuf>,
    },
    /// Question answering through the full `ask` path (EM, F1, citations, abstention, retrieval
    /// recall, time to first token), on a SQuAD v1.1 file or on a question set over documents
    /// (`eval/docs-qa/questions.jsonl` with `--root`).
    Qa {
        /// The SQuAD v1.1 JSON file, or a `.jsonl` question set (one question per line, with
        /// `pages.txt` beside it listing the documents of the knowledge base).
        file: PathBuf,
        /// For a `.jsonl` question set: the folder its pages are read from.
        #[arg(long, value_name = "DIR")]
        root: Option<PathBuf>,
        /// The model: default, fast, tiny, or a GGUF path.
        #[arg(long, default_value = "default")]
        model: String,
        /// Use all articles, or the even-numbered (calibration) or odd-numbered (check) ones; for
        /// a question set, its calibration or check half.
        #[arg(long, value_enum, default_value_t = evalqa::Articles::All)]
        articles: evalqa::Articles,
        /// Remove this many whole articles from the knowledge base: their questions become
        /// unanswerable, to measure abstention.
        #[arg(long, default_value_t = 0, value_name = "N")]
        remove_articles: usize,
        /// Ask only N questions, evenly spread over the file.
        #[arg(long)]
        limit: Option<usize>,
        /// Passages to retrieve.
        #[arg(short, long, default_value_t = 8)]
        k: usize,
        /// Context budget in tokens.
        #[arg(long, default_value_t = cairn_retriever::context::DEFAULT_BUDGET)]
        budget: usize,
        /// Least similarity of the best passage for the model to be asked.
        #[arg(long, default_value_t = engine::MIN_RELEVANCE)]
        min_relevance: f32,
        /// Least share of the question's content words one passage must contain.
        #[arg(long, default_value_t = engine::MIN_COVERAGE)]
        min_coverage: f32,
        /// Least share of the question's words in one passage when a name it asks about is in
        /// none.
        #[arg(long, default_value_t = engine::MIN_NAMED_COVERAGE)]
        min_named_coverage: f32,
        /// Least share of the question's rare words in the best passage.
        #[arg(long, default_value_t = engine::MIN_RARE_COVERAGE)]
        min_rare_coverage: f32,
        /// Least score, as a share of the best passage's, of the other passages given.
        #[arg(long, default_value_t = cairn_retriever::context::MIN_RELATIVE_SCORE)]
        min_relative_score: f32,
        /// Added to the end-of-answer logit wherever a quoted span may end.
        #[arg(long, default_value_t = engine::STOP_BIAS, allow_hyphen_values = true)]
        stop_bias: f32,
        /// Least log-probability of a quoted answer's first token.
        #[arg(long, default_value_t = engine::MIN_START_LOGPROB, allow_hyphen_values = true)]
        min_start_logprob: f32,
        /// Least share of the question's words around an unsure quote.
        #[arg(long, default_value_t = engine::MIN_QUOTE_COVERAGE)]
        min_quote_coverage: f32,
        /// Added to the refusal's logit at a quoted answer's first token (below zero: the model
        /// refuses less readily).
        #[arg(long, default_value_t = engine::REFUSAL_BIAS, allow_hyphen_values = true)]
        refusal_bias: f32,
        /// Let the model word its answers freely instead of quoting the sources.
        #[arg(long)]
        free: bool,
        /// The self-check, as for `ask`: MARGIN, `auto` (the default) or `off`; a very low
        /// margin (-1000) scores every answer without withholding (the dump's `self_check`).
        #[arg(long, value_name = "MARGIN|auto|off", allow_hyphen_values = true, value_parser = parse_self_check)]
        self_check: Option<engine::SelfCheck>,
        /// Give the model only the retrieved passages of the gold paragraph: the model's
        /// reading, apart from retrieval.
        #[arg(long, conflicts_with = "retrieval_only")]
        oracle: bool,
        /// Only retrieve and assemble context (recall and relevance, no model).
        #[arg(long)]
        retrieval_only: bool,
        /// Write one JSON line per question to FILE.
        #[arg(long, value_name = "FILE")]
        dump: Option<PathBuf>,
        /// One JSON object.
        #[arg(long)]
        json: bool,
    },
    /// Search latency on the knowledge base (and installed packs) for a file of queries (one
    /// per line), and the time to open them.
    Latency {
        /// The queries.
        queries: PathBuf,
        /// Results per query.
        #[arg(short, long, default_value_t = 10)]
        k: usize,
        /// One JSON object.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        packs: PackArgs,
    },
}

#[derive(Subcommand)]
enum ModelsCommand {
    /// Download, reassemble and verify models (default: tiny, default, embedder and, on Linux x86-64, onnxruntime).
    Pull {
        /// Model ids to pull.
        ids: Vec<String>,
        /// Pull every model in the catalog, the 0.5 GB `fast` one included.
        #[arg(long)]
        all: bool,
        /// No progress output.
        #[arg(long, short)]
        quiet: bool,
    },
    /// List the catalog with each model's state on disk.
    List,
    /// Re-hash installed files against their pinned SHA-256.
    Verify {
        /// Model ids to verify (default: all installed).
        ids: Vec<String>,
    },
    /// Print the models directory, or the main file of a model.
    Path {
        /// A model id.
        id: Option<String>,
    },
    /// Run a model on a prompt and report its speed (for developers).
    Run(RunArgs),
}

#[derive(Args)]
struct RunArgs {
    /// A model id from the catalog (default, fast, tiny; `larger` is the former id of `default`) or a path to a GGUF file.
    model: String,
    /// Read the user message from this file.
    #[arg(long, conflicts_with = "prompt")]
    prompt_file: Option<PathBuf>,
    /// The user message.
    #[arg(long)]
    prompt: Option<String>,
    /// A system message.
    #[arg(long)]
    system: Option<String>,
    /// Most tokens to generate.
    #[arg(long, default_value_t = 128)]
    max_tokens: usize,
    /// Context window to allocate.
    #[arg(long, default_value_t = 4096)]
    ctx: usize,
    /// Sampling temperature; 0 means greedy.
    #[arg(long, default_value_t = 0.0)]
    temperature: f32,
    /// Nucleus sampling mass.
    #[arg(long, default_value_t = 0.9)]
    top_p: f32,
    /// Seed for sampling.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Generate exactly --max-tokens tokens, past end-of-turn (for benchmarks).
    #[arg(long)]
    ignore_eos: bool,
    /// Print the timings as one JSON object on stdout after the text.
    #[arg(long)]
    json: bool,
}

fn main() -> ExitCode {
    keep_freed_memory_for_reuse();
    let start = std::time::Instant::now();
    // Before any thread starts: ONNX Runtime, loaded later for embeddings, must send nothing.
    cairn_generator::embed::keep_runtime_offline();
    let parsed = Cli::command()
        .try_get_matches()
        .and_then(|m| Cli::from_arg_matches(&m).map(|cli| (cli, m)));
    let (mut cli, matches) = match parsed {
        Ok(parsed) => parsed,
        Err(e) => {
            // clap quotes what it was given: an argument that would drive the terminal is
            // shown without its control characters (and without clap's colours).
            let hostile =
                std::env::args_os().any(|a| sanitize(&a.to_string_lossy()) != a.to_string_lossy());
            if hostile {
                let text = sanitize(&e.render().to_string());
                if e.use_stderr() {
                    eprint!("{text}");
                } else {
                    print!("{text}");
                }
            } else {
                let _ = e.print();
            }
            return ExitCode::from(if e.use_stderr() { EXIT_USAGE } else { 0 });
        }
    };
    // Flags, then environment, then the config file, then defaults: resolved once, here.
    let config = match settings::load() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {}", sanitize(&e));
            return ExitCode::from(EXIT_USAGE);
        }
    };
    let terminal =
        io::IsTerminal::is_terminal(&io::stdin()) && io::IsTerminal::is_terminal(&io::stdout());
    if cli.command.is_none() && terminal {
        cli.command = Some(Command::Tui(TuiArgs::default_args()));
    }
    let entries = settings::apply(&mut cli, &matches, &config);
    if let Some(Command::Config(ConfigCommand::Show { json })) = cli.command {
        print!("{}", settings::show(&config, &entries, json));
        if json {
            println!();
        }
        return ExitCode::SUCCESS;
    }
    let cli = match cli.command {
        Some(Command::Tui(ref a)) => return tui(cli.kb.as_deref(), a, start),
        None => {
            let _ = <Cli as clap::CommandFactory>::command().write_long_help(&mut io::stderr());
            return ExitCode::from(EXIT_USAGE);
        }
        Some(_) => cli,
    };
    match run(cli) {
        Ok(Outcome::Done) => ExitCode::SUCCESS,
        Ok(Outcome::NotFound) => ExitCode::from(EXIT_NOT_FOUND),
        Ok(Outcome::LinesFailed) => ExitCode::from(EXIT_LINES_FAILED),
        Ok(Outcome::Problems) => ExitCode::from(EXIT_ERROR),
        Err(e) => {
            if is_broken_pipe(&e) {
                return ExitCode::SUCCESS;
            }
            eprintln!("error: {}", sanitize(&error_chain(&*e)));
            let usage = e.chain().any(|c| c.downcast_ref::<UsageError>().is_some());
            ExitCode::from(if usage { EXIT_USAGE } else { EXIT_ERROR })
        }
    }
}

/// An error and its causes as one line, `what: why: why`. A cause whose text the messages
/// before it already hold is left out: some errors (the engine's load errors, for one) name
/// their cause in their own message as well as chaining it.
pub(crate) fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut text = e.to_string();
    for cause in std::iter::successors(e.source(), |c| c.source()) {
        let cause = cause.to_string();
        if !text.contains(&cause) {
            text.push_str(": ");
            text.push_str(&cause);
        }
    }
    text
}

/// A mistake in what was asked (a path that does not exist), reported with exit status 2 after
/// the rest of the work is done.
#[derive(Debug)]
pub(crate) struct UsageError(pub(crate) String);

impl std::fmt::Display for UsageError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for UsageError {}

impl TuiArgs {
    /// What `cairn tui` with no flags means, for `cairn` alone: clap's own defaults, so that
    /// the two open the same app (a derived `Default` would not know them: it once started the
    /// bare app in keyword-only retrieval).
    fn default_args() -> Self {
        let command = TuiArgs::augment_args(clap::Command::new("tui"));
        TuiArgs::from_arg_matches(&command.get_matches_from(["tui"]))
            .expect("the flags of `cairn tui` all have defaults")
    }
}

/// `cairn tui`, or `cairn` alone in a terminal.
fn tui(kb: Option<&std::path::Path>, a: &TuiArgs, start: std::time::Instant) -> ExitCode {
    if a.keys {
        print!("{}", cairn_tui::keymap::markdown());
        return ExitCode::SUCCESS;
    }
    let kb = match kb::kb_dir(kb) {
        Ok(kb) => kb,
        Err(e) => {
            eprintln!("error: {}", sanitize(&error_chain(&*e)));
            return ExitCode::from(EXIT_USAGE);
        }
    };
    let options = cairn_tui::Options {
        kb,
        model: a.model.clone(),
        mode: a.mode.into(),
        models: ["tiny", "fast", "default"]
            .into_iter()
            .filter(|id| models::is_installed(id))
            .map(str::to_owned)
            .collect(),
        history: cairn_tui::default_history(),
        packs: match pack::choose_installed(&a.packs) {
            Ok(packs) => cairn_tui::worker::PackChoice {
                packs,
                bm25_only_mismatched: a.bm25_only_mismatched,
            },
            Err(e) => {
                eprintln!("error: {}", sanitize(&error_chain(&*e)));
                return ExitCode::from(EXIT_USAGE);
            }
        },
        color: std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty()),
        read: a.limits.read_options(),
    };
    match cairn_tui::run(options, start) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!(
                "error: the terminal app failed: {}",
                sanitize(&e.to_string())
            );
            ExitCode::from(EXIT_ERROR)
        }
    }
}

fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<io::Error>()
            .is_some_and(|io| io.kind() == io::ErrorKind::BrokenPipe)
    })
}

/// How a successful run ended.
enum Outcome {
    Done,
    /// `ask` withheld its answer (or some answers, in a batch).
    NotFound,
    /// Some lines of a batch failed.
    LinesFailed,
    /// `doctor` found a problem.
    Problems,
}

impl From<batch::Tally> for Outcome {
    fn from(t: batch::Tally) -> Self {
        if t.failed > 0 {
            Outcome::LinesFailed
        } else if t.abstained > 0 {
            Outcome::NotFound
        } else {
            Outcome::Done
        }
    }
}

fn run(cli: Cli) -> Result<Outcome> {
    if let Some(Command::Ask(ref a)) = cli.command {
        return run_ask(&kb::kb_dir(cli.kb.as_deref())?, a, cli.color);
    }
    if let Some(Command::Doctor { json, deep }) = cli.command {
        let checks = doctor::run(&kb::kb_dir(cli.kb.as_deref())?, deep);
        return Ok(
            if doctor::print(&checks, json, style::Paint::stdout(cli.color))? {
                Outcome::Done
            } else {
                Outcome::Problems
            },
        );
    }
    if let Some(Command::Mcp(ref a)) = cli.command {
        if let Some(addr) = a.http.filter(|addr| !addr.ip().is_loopback()) {
            return Err(UsageError(format!(
                "--http {addr}: not a loopback address; cairn serves MCP over HTTP to this \
                 machine only (use 127.0.0.1 or [::1])"
            ))
            .into());
        }
        let kb = kb::kb_dir(cli.kb.as_deref())?;
        let sources = pack::open_sources(&kb, &a.packs.selection())?;
        // With --no-kb, or no knowledge base and packs installed, the packs alone are served.
        let serving = if sources.label.is_some() {
            "the installed packs".to_owned()
        } else {
            kb.display().to_string()
        };
        let engine = sources.into_engine(&a.model)?;
        let options = engine::AskOptions {
            k: a.k,
            mode: a.mode.into(),
            ..engine::AskOptions::default()
        };
        let server = cairn_mcp::Server::new(engine, &a.model, options);
        let served = if let Some(addr) = a.http {
            cairn_mcp::serve_http(server, addr, |bound| {
                eprintln!(
                    "cairn mcp: serving {serving} with {} at http://{bound}{}",
                    a.model,
                    cairn_mcp::HTTP_PATH
                );
            })
        } else {
            eprintln!("cairn mcp: serving {serving} with {} on stdio", a.model);
            cairn_mcp::serve_stdio(server)
        };
        served.map_err(anyhow::Error::msg)?;
        return Ok(Outcome::Done);
    }
    if let Some(Command::Search(SearchArgs {
        batch: Some(ref input),
        k,
        mode,
        fusion,
        weight,
        keep_duplicates,
        ref packs,
        ..
    })) = cli.command
    {
        let kb = kb::kb_dir(cli.kb.as_deref())?;
        let sources = pack::open_sources(&kb, &packs.selection())?;
        let base = engine::AskOptions {
            k,
            mode: mode.into(),
            fusion: fusion.into(),
            dense_weight: weight,
            fold_duplicates: fold_duplicates(keep_duplicates),
            ..engine::AskOptions::default()
        };
        return batch::search(&sources.shelves(), &sources.embedder, input, &base)
            .map(Outcome::from);
    }
    run_other(cli).map(|()| Outcome::Done)
}

/// `question` as it stands on its own after `after` ([`cairn_engine::follow_up`]), saying on stderr
/// how it was taken when that is not as typed.
fn taken_as(after: Option<&str>, question: &str) -> String {
    match after.and_then(|earlier| cairn_engine::follow_up(earlier, question)) {
        Some(meant) => {
            eprintln!("taken as: {meant}");
            meant
        }
        None => question.to_owned(),
    }
}

fn run_ask(kb: &std::path::Path, a: &AskArgs, color: style::ColorArg) -> Result<Outcome> {
    let sources = pack::open_sources(kb, &a.packs.selection())?;
    let paint = style::Paint::stdout(color);
    let files = sources.reader.sources().unwrap_or_default();
    let mut engine = sources.into_engine(&a.model)?;
    let options = a.options();
    if let Some(input) = &a.batch {
        return batch::ask(&mut engine, input, &options, &a.model).map(Outcome::from);
    }
    let question = taken_as(
        a.after.as_deref(),
        a.question
            .as_deref()
            .expect("clap requires a question without --batch"),
    );
    let question = question.as_str();
    let stdout = io::stdout();
    let answer = if a.json {
        engine.ask(question, &options, &mut engine::Quiet)?
    } else {
        let mut printer = ask::Printer::new(stdout.lock(), a.show_context, !options.free, paint);
        let answer = engine.ask(question, &options, &mut printer)?;
        if let Some(e) = printer.error.take() {
            return Err(e.into());
        }
        printer.settle(&answer);
        printer.finish(answer.abstained.is_some());
        answer
    };
    let mut out = stdout.lock();
    if a.json {
        writeln!(out, "{}", answer.to_json(&a.model, a.seed))?;
    } else {
        ask::print_sources(&mut out, &answer, a.quote, paint, &files)?;
        out.flush()?;
        if std::io::IsTerminal::is_terminal(&io::stderr()) {
            let t = &answer.timings;
            eprintln!(
                "({}: first token after {:.1} s, {} prompt tokens ({} reused), {} answer tokens, {:.1} s in all)",
                engine.generator.name(),
                t.ttft_ms / 1e3,
                t.prompt_tokens,
                t.reused_tokens,
                t.answer_tokens,
                t.total_ms / 1e3
            );
        }
    }
    Ok(if answer.abstained.is_some() {
        Outcome::NotFound
    } else {
        Outcome::Done
    })
}

fn run_other(cli: Cli) -> Result<()> {
    let kb_dir = || kb::kb_dir(cli.kb.as_deref());
    let Some(command) = cli.command else {
        unreachable!("handled by main")
    };
    match command {
        Command::Ask(_)
        | Command::Tui(_)
        | Command::Mcp(_)
        | Command::Doctor { .. }
        | Command::Config(_) => {
            unreachable!("handled by run and main")
        }
        Command::Add {
            ref paths,
            rebuild,
            ref limits,
            json,
            quiet,
            watch,
            commit_every,
        } => {
            let settings = kb::AddSettings {
                rebuild,
                read: limits.read_options(),
                json,
                quiet,
                commit_every,
                watch: watch.then_some(kb::WATCH_QUIET),
            };
            // A path that does not exist is the user's mistake (as in ripgrep): the others
            // are still added, then the run ends with status 2 naming it.
            let missing: Vec<String> = paths
                .iter()
                .filter(|p| !p.exists())
                .map(|p| p.display().to_string())
                .collect();
            if watch && missing.len() == paths.len() {
                return Err(UsageError(format!(
                    "no such file or folder: {}\nhint: nothing to watch",
                    missing.join(", ")
                ))
                .into());
            }
            kb::add(&kb_dir()?, paths, &settings)?;
            if missing.is_empty() {
                Ok(())
            } else {
                let rest = if missing.len() == paths.len() {
                    "nothing was added"
                } else {
                    "the other paths were added"
                };
                Err(UsageError(format!(
                    "no such file or folder: {}\nhint: {rest}",
                    missing.join(", ")
                ))
                .into())
            }
        }
        Command::Remove { ref targets } => kb::remove(&kb_dir()?, targets),
        Command::Status { json, documents } => {
            kb::status(&kb_dir()?, json, documents, style::Paint::stdout(cli.color))
        }
        Command::Extract { ref file, sections } => kb::extract(file, sections),
        Command::Search(ref a) => {
            let settings = kb::SearchSettings {
                packs: a.packs.selection(),
                k: a.k,
                mode: a.mode.into(),
                fusion: a.fusion.into(),
                dense_weight: a.weight,
                fold_duplicates: fold_duplicates(a.keep_duplicates),
                json: a.json,
                paint: style::Paint::stdout(cli.color),
            };
            let query = taken_as(
                a.after.as_deref(),
                a.query
                    .as_deref()
                    .expect("clap requires a query without --batch"),
            );
            kb::search(&kb_dir()?, &query, &settings)
        }
        Command::Eval(EvalCommand::Beir {
            ref dir,
            ref split,
            limit,
            json,
            ref index,
        }) => eval::beir(dir, split, limit, json, index.as_deref()),
        Command::Eval(EvalCommand::Qa {
            ref file,
            ref root,
            ref model,
            articles,
            remove_articles,
            limit,
            k,
            budget,
            min_relevance,
            min_coverage,
            free,
            min_named_coverage,
            min_rare_coverage,
            min_relative_score,
            stop_bias,
            min_start_logprob,
            min_quote_coverage,
            refusal_bias,
            self_check,
            oracle,
            retrieval_only,
            ref dump,
            json,
        }) => evalqa::qa(&evalqa::QaSettings {
            file: file.clone(),
            root: root.clone(),
            model: model.clone(),
            articles,
            limit,
            remove_articles,
            retrieval_only,
            json,
            dump: dump.clone(),
            oracle,
            options: engine::AskOptions {
                k,
                budget,
                min_relevance,
                min_coverage,
                min_named_coverage,
                min_rare_coverage,
                min_relative_score,
                stop_bias,
                min_start_logprob,
                min_quote_coverage,
                refusal_bias,
                free,
                self_check: self_check.unwrap_or_default(),
                ..engine::AskOptions::default()
            },
        }),
        Command::Eval(EvalCommand::Latency {
            ref queries,
            k,
            json,
            ref packs,
        }) => eval::latency(&kb_dir()?, queries, k, json, &packs.selection()),
        Command::Models(cmd) => run_models(cmd),
        Command::Pack(cmd) => run_pack(cmd),
        Command::Completions { shell } => {
            let mut cmd = <Cli as clap::CommandFactory>::command();
            // Into a buffer first: clap_complete panics when its writer fails (`| head`).
            let mut script = Vec::new();
            clap_complete::generate(shell, &mut cmd, "cairn", &mut script);
            io::stdout().write_all(&script)?;
            Ok(())
        }
        Command::Man => {
            let cmd = <Cli as clap::CommandFactory>::command();
            clap_mangen::Man::new(cmd).render(&mut io::stdout())?;
            Ok(())
        }
    }
}

fn run_pack(cmd: PackCommand) -> Result<()> {
    match cmd {
        PackCommand::Build {
            paths,
            recipe: Some(recipe),
            output,
            reproducible,
            quiet,
            ..
        } => {
            let _ = paths;
            pack::build_recipe(&recipe, output, reproducible, quiet)
        }
        PackCommand::Build {
            paths,
            recipe: None,
            from_kb,
            output,
            name,
            version,
            title,
            description,
            license,
            source,
            language,
            reproducible,
            quiet,
        } => {
            let name = name.unwrap_or_else(|| {
                output
                    .file_stem()
                    .map(|s| s.to_string_lossy().into_owned())
                    .unwrap_or_default()
            });
            pack::build(&pack::BuildSettings {
                paths,
                from_kb,
                out: output,
                about: cairn_pack::About {
                    name,
                    version,
                    title,
                    description,
                    license,
                    source,
                    language,
                },
                reproducible,
                quiet,
            })
        }
        PackCommand::Keygen { out } => pack::keygen(out.as_deref()),
        PackCommand::Sign { pack: p, key } => pack::sign(&p, key.as_deref()),
        PackCommand::Verify {
            pack: p,
            trust,
            allow_unsigned,
        } => pack::verify(&p, &trust, allow_unsigned),
        PackCommand::Install {
            pack: p,
            trust,
            allow_unsigned,
            max_member_size,
            allow_downgrade,
        } => pack::install(
            &p,
            &trust,
            allow_unsigned,
            &cairn_pack::InstallOptions {
                max_member: max_member_size,
                allow_downgrade,
            },
        ),
        PackCommand::List { json } => pack::list(json),
        PackCommand::Info { target } => pack::info(&target),
        PackCommand::Remove { name } => pack::remove(&name),
        PackCommand::Trust { key } => pack::trust(&key),
        PackCommand::Export { name, format } => match format {
            ExportFormat::Jsonl => pack::export(&name),
        },
    }
}

fn run_models(cmd: ModelsCommand) -> Result<()> {
    match cmd {
        ModelsCommand::Pull { ids, all, quiet } => {
            let specs: Vec<&models::ModelSpec> = if all {
                models::CATALOG.iter().collect()
            } else if ids.is_empty() {
                models::CATALOG.iter().filter(|m| m.default_pull).collect()
            } else {
                ids.iter()
                    .map(|id| models::lookup(id))
                    .collect::<cairn_engine::Result<_>>()?
            };
            for spec in specs {
                models::pull(spec, quiet, &mut progress::Bars::new(quiet))
                    .with_context(|| format!("pulling `{}`", spec.id))?;
            }
            Ok(())
        }
        ModelsCommand::List => {
            let dir = models::models_dir()?;
            let mut out = io::stdout().lock();
            writeln!(out, "models directory: {}", dir.display())?;
            for spec in models::CATALOG {
                let present = spec.files.iter().all(|f| dir.join(f.dest).is_file());
                let state = if present {
                    "installed"
                } else {
                    "not installed"
                };
                let size: u64 = spec.files.iter().map(|f| f.size).sum();
                writeln!(
                    out,
                    "{:<14} {:<10} {:<49} {:>9}  {state}\n{:<14} license: {}",
                    spec.id,
                    spec.role.split(' ').next().unwrap_or_default(),
                    spec.name,
                    human_size(size),
                    "",
                    spec.license
                )?;
            }
            for (old, new) in models::ALIASES {
                writeln!(out, "{old:<14} former id of `{new}`, still accepted")?;
            }
            Ok(())
        }
        ModelsCommand::Verify { ids } => {
            let dir = models::models_dir()?;
            let specs: Vec<&models::ModelSpec> = if ids.is_empty() {
                models::CATALOG.iter().collect()
            } else {
                ids.iter()
                    .map(|id| models::lookup(id))
                    .collect::<cairn_engine::Result<_>>()?
            };
            let mut bad = 0;
            let mut out = io::stdout().lock();
            for spec in specs {
                for file in spec.files {
                    let state =
                        models::check_file(&dir, file, true, &mut progress::Bars::new(false))?;
                    let label = match state {
                        models::FileState::Verified => "ok",
                        models::FileState::Missing => "missing",
                        models::FileState::Corrupt => {
                            bad += 1;
                            "CORRUPT (sha256 mismatch; it will not be loaded)"
                        }
                    };
                    if state != models::FileState::Missing || !ids.is_empty() {
                        writeln!(out, "{:<14} {:<40} {label}", spec.id, file.dest)?;
                    }
                    if state == models::FileState::Missing && !ids.is_empty() {
                        bad += 1;
                    }
                }
            }
            if bad > 0 {
                anyhow::bail!(
                    "{bad} file(s) missing or failed verification\nhint: run `cairn models pull`"
                );
            }
            Ok(())
        }
        ModelsCommand::Path { id } => {
            let path = match id {
                None => models::models_dir()?,
                Some(id) => models::models_dir()?.join(models::lookup(&id)?.files[0].dest),
            };
            println!("{}", path.display());
            Ok(())
        }
        ModelsCommand::Run(args) => run_model(&args),
    }
}

fn run_model(args: &RunArgs) -> Result<()> {
    let prompt = match (&args.prompt_file, &args.prompt) {
        (Some(path), _) => std::fs::read_to_string(path)
            .with_context(|| format!("cannot read prompt file {}", path.display()))?,
        (None, Some(p)) => p.clone(),
        (None, None) => anyhow::bail!("give --prompt TEXT or --prompt-file FILE"),
    };
    let path = models::model_path(&args.model)?;
    let mut generator =
        Generator::load(&path, &LoadOptions { n_ctx: args.ctx }).context("loading the model")?;
    eprintln!(
        "loaded {} in {:.2} s ({} layers, context {} tokens)",
        generator.name(),
        generator.load_time().as_secs_f64(),
        generator.config().n_layer,
        generator.context_window()
    );
    let mut messages = Vec::new();
    if let Some(system) = &args.system {
        messages.push(Message::system(system.clone()));
    }
    messages.push(Message::user(prompt));
    let options = GenerateOptions {
        max_tokens: args.max_tokens,
        sampling: engine::sampling(args.temperature, args.top_p, args.seed),
        ignore_stop_tokens: args.ignore_eos,
    };
    let mut stdout = io::stdout().lock();
    let mut write_error = None;
    let mut sink = |piece: &str| match stdout
        .write_all(piece.as_bytes())
        .and_then(|()| stdout.flush())
    {
        Ok(()) => ControlFlow::Continue(()),
        Err(e) => {
            write_error = Some(e);
            ControlFlow::Break(())
        }
    };
    let g = generator.chat(&messages, &options, &mut sink)?;
    if let Some(e) = write_error {
        return Err(e.into());
    }
    writeln!(stdout)?;
    let stats = serde_json::json!({
        "model": generator.name(),
        "load_s": generator.load_time().as_secs_f64(),
        "prompt_tokens": g.prompt_tokens,
        "generated_tokens": g.tokens.len(),
        "time_to_first_token_s": g.time_to_first_token.as_secs_f64(),
        "prefill_tok_s": g.prefill_tokens_per_second(),
        "decode_tok_s": g.decode_tokens_per_second(),
        "finish": g.finish,
    });
    if args.json {
        writeln!(stdout, "{stats}")?;
    }
    eprintln!(
        "prompt {} tokens, prefill {:.1} tok/s, first token after {:.2} s; generated {} tokens, decode {:.1} tok/s ({:?})",
        g.prompt_tokens,
        g.prefill_tokens_per_second(),
        g.time_to_first_token.as_secs_f64(),
        g.tokens.len(),
        g.decode_tokens_per_second(),
        g.finish
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_purge_delay_option_is_the_one_set() {
        // Index 15 must be mimalloc's purge_delay, whose default is 1000 ms (v3); a reordered
        // enum in a newer mimalloc would make it another option. Unless the environment says
        // otherwise, the default is what a fresh process holds.
        if std::env::var_os("MIMALLOC_PURGE_DELAY").is_some() {
            return;
        }
        #[allow(unsafe_code)]
        // SAFETY: reads mimalloc's option table.
        let default = unsafe { libmimalloc_sys::mi_option_get(MI_OPTION_PURGE_DELAY) };
        assert_eq!(
            default, 1000,
            "option {MI_OPTION_PURGE_DELAY} is not purge_delay"
        );
    }

    #[test]
    fn cairn_alone_opens_the_app_as_cairn_tui_does() {
        let bare = TuiArgs::default_args();
        let Some(Command::Tui(tui)) = Cli::try_parse_from(["cairn", "tui"]).unwrap().command else {
            panic!("`cairn tui` parses as the app");
        };
        assert_eq!(bare.model, tui.model);
        assert_eq!(
            cairn_retriever::Mode::from(bare.mode),
            cairn_retriever::Mode::Hybrid
        );
        assert_eq!(
            cairn_retriever::Mode::from(bare.mode),
            cairn_retriever::Mode::from(tui.mode)
        );
    }
}
