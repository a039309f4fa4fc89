//! Reading one file into a [`Document`]: type detection, decoding, and the per-type readers.

use std::path::Path;

use crate::document::{DocKind, Document, Section};
use crate::error::{Error, Result};
use crate::{html, markdown, pdf};

/// Limits for reading one file, which protect a laptop from a hostile or broken file. A file
/// over a limit is skipped with a message naming it; a PDF's pages past a limit are skipped with
/// a notice.
#[derive(Clone, Debug)]
pub struct ReadOptions {
    /// Files larger than this are skipped, from their size on disk, unread (default 64 MiB).
    pub max_bytes: u64,
    /// Pages read per PDF; later pages are skipped with a notice (default 2,000).
    pub max_pdf_pages: u32,
    /// Text kept per file once read and decoded: a text file with more is skipped, a PDF's
    /// pages past it are skipped with a notice (default 64 MiB).
    pub max_text_bytes: usize,
    /// What a PDF's compressed streams (Flate) may expand to, all together; a PDF over it is
    /// skipped before its text is extracted (default 512 MiB).
    pub max_decompressed_bytes: u64,
}

impl Default for ReadOptions {
    fn default() -> Self {
        ReadOptions {
            max_bytes: 64 << 20,
            max_pdf_pages: 2000,
            max_text_bytes: 64 << 20,
            max_decompressed_bytes: 512 << 20,
        }
    }
}

/// Something worth telling the user about a file that was still read (a page without text, a
/// file that was not UTF-8).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Notice {
    /// The page concerned, for PDFs.
    pub page: Option<u32>,
    /// What happened, without the file name (the caller knows it).
    pub message: String,
}

/// A file read successfully, perhaps with notices.
#[derive(Debug)]
pub struct Read {
    /// The document.
    pub document: Document,
    /// Per-file or per-page notices.
    pub notices: Vec<Notice>,
}

const MARKDOWN: &[&str] = &["md", "markdown", "mdown", "mkd", "mdx"];
const HTML: &[&str] = &["html", "htm", "xhtml"];
const TEXT: &[&str] = &[
    "txt", "text", "rst", "adoc", "asciidoc", "org", "tex", "csv", "tsv", "log",
];
const CODE: &[&str] = &[
    "rs", "py", "pyi", "js", "mjs", "cjs", "ts", "tsx", "jsx", "go", "c", "h", "cc", "cpp", "cxx",
    "hpp", "hh", "java", "kt", "kts", "scala", "rb", "php", "cs", "fs", "swift", "m", "mm", "sh",
    "bash", "zsh", "fish", "ps1", "lua", "pl", "pm", "r", "jl", "hs", "ml", "mli", "ex", "exs",
    "erl", "clj", "el", "lisp", "scm", "zig", "nim", "dart", "sql", "toml", "yaml", "yml", "json",
    "ini", "cfg", "conf", "css", "scss", "sass", "less", "vue", "svelte", "proto", "graphql", "tf",
    "cmake", "mk", "gradle", "xml", "nix", "d", "v", "sv", "vhd", "f90", "asm", "s",
];
/// Types we know are not text; reported as unsupported without reading them.
const KNOWN_BINARY: &[&str] = &[
    "png",
    "jpg",
    "jpeg",
    "gif",
    "bmp",
    "tif",
    "tiff",
    "webp",
    "ico",
    "svgz",
    "psd",
    "heic",
    "mp3",
    "wav",
    "flac",
    "ogg",
    "m4a",
    "mp4",
    "mkv",
    "mov",
    "avi",
    "webm",
    "zip",
    "gz",
    "tgz",
    "bz2",
    "xz",
    "zst",
    "7z",
    "rar",
    "tar",
    "jar",
    "whl",
    "exe",
    "dll",
    "so",
    "dylib",
    "o",
    "a",
    "class",
    "pyc",
    "wasm",
    "bin",
    "dat",
    "db",
    "sqlite",
    "doc",
    "docx",
    "xls",
    "xlsx",
    "ppt",
    "pptx",
    "odt",
    "ods",
    "odp",
    "epub",
    "ttf",
    "otf",
    "woff",
    "woff2",
    "gguf",
    "safetensors",
    "onnx",
    "pt",
    "npy",
    "parquet",
];
/// File names without an extension that are text.
const TEXT_NAMES: &[&str] = &[
    "readme",
    "license",
    "licence",
    "copying",
    "authors",
    "changelog",
    "changes",
    "news",
    "notice",
    "todo",
    "install",
    "contributing",
    "makefile",
    "dockerfile",
];

/// Decides how a path would be read, from its name alone; `None` for known binary types and
/// unknown extensions (which [`read_file`] sniffs).
#[must_use]
pub fn kind_of(path: &Path) -> Option<DocKind> {
    let ext = extension(path);
    let e = ext.as_str();
    if MARKDOWN.contains(&e) {
        Some(DocKind::Markdown)
    } else if HTML.contains(&e) {
        Some(DocKind::Html)
    } else if e == "pdf" {
        Some(DocKind::Pdf)
    } else if TEXT.contains(&e) {
        Some(DocKind::Text)
    } else if CODE.contains(&e) {
        Some(DocKind::Code)
    } else if e.is_empty() {
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().to_lowercase())
            .unwrap_or_default();
        TEXT_NAMES
            .iter()
            .any(|t| name == *t || name.starts_with(&format!("{t}.")))
            .then_some(DocKind::Text)
    } else {
        None
    }
}

fn extension(path: &Path) -> String {
    path.extension()
        .map(|e| e.to_string_lossy().to_lowercase())
        .unwrap_or_default()
}

fn file_title(path: &Path) -> String {
    path.file_name()
        .map_or_else(String::new, |n| n.to_string_lossy().into_owned())
}

/// Reads a file from disk. `path` is used for the type and in messages.
pub fn read_file(path: &Path, options: &ReadOptions) -> Result<Read> {
    let io = |source| Error::Io {
        path: path.to_owned(),
        source,
    };
    let size = std::fs::metadata(path).map_err(io)?.len();
    if size > options.max_bytes {
        return Err(Error::TooLarge {
            path: path.to_owned(),
            size,
            limit: options.max_bytes,
        });
    }
    if KNOWN_BINARY.contains(&extension(path).as_str()) {
        return Err(Error::Unsupported {
            path: path.to_owned(),
            ext: extension(path),
        });
    }
    let bytes = std::fs::read(path).map_err(io)?;
    read_bytes_with(path, &bytes, options)
}

/// Reads a file's bytes with the default limits; `path` decides the type and names the file in
/// messages.
pub fn read_bytes(path: &Path, bytes: &[u8]) -> Result<Read> {
    read_bytes_with(path, bytes, &ReadOptions::default())
}

/// Reads a file's bytes under `options`' limits (but for `max_bytes`, which [`read_file`]
/// checks before reading).
pub fn read_bytes_with(path: &Path, bytes: &[u8], options: &ReadOptions) -> Result<Read> {
    let kind = kind_of(path);
    if kind == Some(DocKind::Pdf) {
        return pdf::read(path, bytes, options);
    }
    let (text, mut notices) = decode(path, bytes, kind.is_none())?;
    if text.len() > options.max_text_bytes {
        return Err(Error::TooMuchText {
            path: path.to_owned(),
            size: text.len(),
            limit: options.max_text_bytes,
        });
    }
    let kind = kind.unwrap_or(DocKind::Text);
    if text.trim().is_empty() {
        return Err(Error::NoText {
            path: path.to_owned(),
            pages: 0,
        });
    }
    let document = match kind {
        DocKind::Markdown => markdown::read(text, &file_title(path)),
        DocKind::Html => {
            let depth = html::nesting_depth(&text);
            if depth > html::MAX_DEPTH {
                return Err(Error::TooDeep {
                    path: path.to_owned(),
                    depth,
                    limit: html::MAX_DEPTH,
                });
            }
            html::read(&text, &file_title(path))
        }
        DocKind::Text | DocKind::Code => {
            let sections = vec![Section {
                range: 0..text.len(),
                heading: Vec::new(),
                page: None,
                first_line: 1,
            }];
            Document::new(kind, file_title(path), text, sections)
        }
        DocKind::Pdf => unreachable!("PDFs are read above"),
    };
    if document.sections.iter().all(|s| s.range.is_empty()) {
        return Err(Error::NoText {
            path: path.to_owned(),
            pages: 0,
        });
    }
    notices.shrink_to_fit();
    Ok(Read { document, notices })
}

/// Decodes text: UTF-8 (a BOM is dropped), UTF-16 with a BOM, else Windows-1252 with a notice.
/// NUL bytes mean binary. For unknown extensions (`sniff`), only clean UTF-8 counts as text.
fn decode(path: &Path, bytes: &[u8], sniff: bool) -> Result<(String, Vec<Notice>)> {
    let binary = || Error::Binary {
        path: path.to_owned(),
    };
    if let Some(rest) = bytes
        .strip_prefix(b"\xFF\xFE")
        .map(|r| (r, true))
        .or_else(|| bytes.strip_prefix(b"\xFE\xFF").map(|r| (r, false)))
    {
        let (rest, little) = rest;
        let units = rest.chunks_exact(2).map(|p| {
            if little {
                u16::from_le_bytes([p[0], p[1]])
            } else {
                u16::from_be_bytes([p[0], p[1]])
            }
        });
        let text: String = char::decode_utf16(units)
            .map(|c| c.unwrap_or(char::REPLACEMENT_CHARACTER))
            .collect();
        return Ok((text, Vec::new()));
    }
    let head = &bytes[..bytes.len().min(64 << 10)];
    if head.contains(&0) {
        return Err(if sniff {
            Error::Unsupported {
                path: path.to_owned(),
                ext: extension(path),
            }
        } else {
            binary()
        });
    }
    let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    match std::str::from_utf8(bytes) {
        Ok(text) => Ok((text.to_owned(), Vec::new())),
        Err(_) if sniff => Err(Error::Unsupported {
            path: path.to_owned(),
            ext: extension(path),
        }),
        Err(e) => {
            let at = e.valid_up_to();
            let line = bytecount(&bytes[..at], b'\n') + 1;
            let text = bytes.iter().map(|&b| windows_1252(b)).collect();
            Ok((
                text,
                vec![Notice {
                    page: None,
                    message: format!(
                        "not valid UTF-8 (first bad byte at offset {at}, line {line}); read as Windows-1252"
                    ),
                }],
            ))
        }
    }
}

fn bytecount(bytes: &[u8], b: u8) -> usize {
    bytes.iter().fold(0, |n, &x| n + usize::from(x == b))
}

/// Windows-1252, the usual encoding of legacy "ANSI" text, as a superset of Latin-1.
fn windows_1252(b: u8) -> char {
    const HIGH: [char; 32] = [
        '€', '\u{81}', '‚', 'ƒ', '„', '…', '†', '‡', 'ˆ', '‰', 'Š', '‹', 'Œ', '\u{8d}', 'Ž',
        '\u{8f}', '\u{90}', '‘', '’', '“', '”', '•', '–', '—', '˜', '™', 'š', '›', 'œ', '\u{9d}',
        'ž', 'Ÿ',
    ];
    if (0x80..0xA0).contains(&b) {
        HIGH[usize::from(b - 0x80)]
    } else {
        char::from(b)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_over_the_limit_skips_the_file() {
        let o = ReadOptions {
            max_text_bytes: 8,
            ..ReadOptions::default()
        };
        assert!(read_bytes_with(Path::new("a.md"), b"# short", &o).is_ok());
        let err = read_bytes_with(Path::new("a.md"), b"# longer text", &o).unwrap_err();
        assert_eq!(err.reason(), "too-much-text");
        assert_eq!(
            err.to_string(),
            "a.md: 13 bytes of text is over the 8-byte limit of text per file"
        );
    }

    #[test]
    fn latin1_text_is_read_with_a_notice_naming_the_line() {
        let read = read_bytes(Path::new("a.txt"), b"caf\xe9\nna\xefve\n").unwrap();
        assert_eq!(read.document.text, "café\nnaïve\n");
        assert_eq!(read.notices.len(), 1);
        assert!(
            read.notices[0].message.contains("line 1"),
            "{:?}",
            read.notices
        );
    }

    #[test]
    fn nul_bytes_are_binary() {
        let err = read_bytes(Path::new("a.txt"), b"abc\0def").unwrap_err();
        assert_eq!(err.reason(), "binary");
        assert!(err.to_string().starts_with("a.txt: "), "{err}");
    }

    #[test]
    fn unknown_extension_is_sniffed() {
        assert!(read_bytes(Path::new("notes.xyz"), b"plain words").is_ok());
        let err = read_bytes(Path::new("blob.xyz"), b"\x00\x01\x02bin").unwrap_err();
        assert_eq!(err.reason(), "unsupported");
    }

    #[test]
    fn utf16_with_bom_is_decoded() {
        let bytes: Vec<u8> = [0xFF, 0xFE]
            .into_iter()
            .chain("hé".encode_utf16().flat_map(u16::to_le_bytes))
            .collect();
        assert_eq!(
            read_bytes(Path::new("a.txt"), &bytes)
                .unwrap()
                .document
                .text,
            "hé"
        );
    }

    #[test]
    fn empty_files_have_no_text() {
        assert_eq!(
            read_bytes(Path::new("a.md"), b"  \n").unwrap_err().reason(),
            "no-text"
        );
    }
}
