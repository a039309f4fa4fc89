//! Hostile inputs beside ordinary files, through the real binary with the real embedder: every
//! bad file gets a message naming it and why, the good files are still added and found, no
//! byte from a file name reaches the terminal raw, and the whole ingest stays under 1 GiB.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

fn write(path: &Path, bytes: impl AsRef<[u8]>) {
    std::fs::write(path, bytes).unwrap();
}

/// A PDF of these objects (numbered from 1; object 1 is the catalog) with an exact xref table.
fn pdf(objects: &[Vec<u8>], trailer_extra: &str) -> Vec<u8> {
    let mut out = b"%PDF-1.4\n".to_vec();
    let mut offsets = Vec::new();
    for (i, o) in objects.iter().enumerate() {
        offsets.push(out.len());
        out.extend(format!("{} 0 obj\n", i + 1).bytes());
        out.extend(o);
        out.extend(b"\nendobj\n");
    }
    let xref = out.len();
    out.extend(format!("xref\n0 {}\n0000000000 65535 f \n", objects.len() + 1).bytes());
    for off in offsets {
        out.extend(format!("{off:010} 00000 n \n").bytes());
    }
    out.extend(
        format!(
            "trailer\n<< /Size {} /Root 1 0 R {trailer_extra} >>\nstartxref\n{xref}\n%%EOF\n",
            objects.len() + 1
        )
        .bytes(),
    );
    out
}

/// A stream object: its dictionary entries, then its bytes.
fn stream(dict: &str, bytes: &[u8]) -> Vec<u8> {
    let mut o = format!("<< {dict} /Length {} >>\nstream\n", bytes.len()).into_bytes();
    o.extend(bytes);
    o.extend(b"\nendstream");
    o
}

/// The hostile PDFs: a page tree that is its own kid, a stream claiming a huge length, an
/// encrypted file, a page that is only an image, and a stream inflating to 100 MiB.
fn hostile_pdfs(dir: &Path) {
    // Found by the fuzzer: its page's font is a reference to no object, on which pdf-extract
    // panics.
    write(
        &dir.join("panics.pdf"),
        include_bytes!("../ingest/tests/fuzz-found/read_pdf/missing-font-object.pdf"),
    );
    let catalog = b"<< /Type /Catalog /Pages 2 0 R >>".to_vec();
    let font = b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>".to_vec();
    let page = |contents: u32, resources: &str| {
        format!("<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Resources << /Font << /F1 3 0 R >> {resources} >> /Contents {contents} 0 R >>").into_bytes()
    };
    let text = stream("", b"BT /F1 12 Tf 72 720 Td (Hostile text) Tj ET");
    write(
        &dir.join("ref-loop.pdf"),
        pdf(
            &[
                catalog.clone(),
                b"<< /Type /Pages /Kids [2 0 R 4 0 R] /Count 2 >>".to_vec(),
                font.clone(),
                page(5, ""),
                text.clone(),
            ],
            "",
        ),
    );
    let huge = pdf(
        &[
            catalog.clone(),
            b"<< /Type /Pages /Kids [4 0 R] /Count 1 >>".to_vec(),
            font.clone(),
            page(5, ""),
            b"<< /Length 99999999999 >>\nstream\nBT /F1 12 Tf 72 720 Td (Huge) Tj ET\nendstream"
                .to_vec(),
        ],
        "",
    );
    write(&dir.join("huge-length.pdf"), huge);
    write(
        &dir.join("encrypted.pdf"),
        pdf(
            &[
                catalog.clone(),
                b"<< /Type /Pages /Kids [4 0 R] /Count 1 >>".to_vec(),
                font.clone(),
                page(5, ""),
                text.clone(),
                format!(
                    "<< /Filter /Standard /V 1 /R 2 /O <{}> /U <{}> /P -44 >>",
                    "7a".repeat(32),
                    "c3".repeat(32)
                )
                .into_bytes(),
            ],
            "/Encrypt 6 0 R /ID [<0123456789abcdef0123456789abcdef> <0123456789abcdef0123456789abcdef>]",
        ),
    );
    let image = stream(
        "/Type /XObject /Subtype /Image /Width 2 /Height 2 /ColorSpace /DeviceGray /BitsPerComponent 8",
        &[0, 255, 255, 0],
    );
    write(
        &dir.join("image-only.pdf"),
        pdf(
            &[
                catalog.clone(),
                b"<< /Type /Pages /Kids [4 0 R] /Count 1 >>".to_vec(),
                font.clone(),
                page(5, "/XObject << /Im1 6 0 R >>"),
                stream("", b"q 100 0 0 100 72 600 cm /Im1 Do Q"),
                image,
            ],
            "",
        ),
    );
    let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::best());
    std::io::Write::write_all(&mut z, &vec![0u8; 100 << 20]).unwrap();
    write(
        &dir.join("bomb.pdf"),
        pdf(
            &[
                catalog,
                b"<< /Type /Pages /Kids [4 0 R] /Count 1 >>".to_vec(),
                font,
                page(5, ""),
                stream("/Filter /FlateDecode", &z.finish().unwrap()),
            ],
            "",
        ),
    );
}

/// Builds the folder of hostile files, with two good ones.
fn hostile_folder(dir: &Path) {
    std::fs::create_dir_all(dir.join("sub")).unwrap();
    write(
        &dir.join("good.md"),
        "# Zebras\n\nZebras graze on the savanna in large herds.\n",
    );
    write(&dir.join("empty.md"), b"");
    let mut binary = vec![0u8; 3000];
    for (i, b) in binary.iter_mut().enumerate() {
        *b = (i * 7 % 251) as u8;
    }
    write(&dir.join("binary.md"), binary);
    write(
        &dir.join("latin1.md"),
        b"# Caf\xe9\n\nThe caf\xe9 serves giraffe-shaped biscuits.\n",
    );
    let utf16 = |s: &str, bom: bool| -> Vec<u8> {
        let mut v = if bom { vec![0xff, 0xfe] } else { vec![] };
        v.extend(s.encode_utf16().flat_map(u16::to_le_bytes));
        v
    };
    write(
        &dir.join("utf16-bom.txt"),
        utf16("Elephants remember water holes for decades.", true),
    );
    write(
        &dir.join("utf16-no-bom.txt"),
        utf16("Penguins huddle together in the cold.", false),
    );
    // 1 GB, sparse: refused by its size, without being read.
    std::fs::File::create(dir.join("sparse.txt"))
        .unwrap()
        .set_len(1 << 30)
        .unwrap();
    write(
        &dir.join("deep.html"),
        format!(
            "<html><body>{}deep{}</body></html>",
            "<div>".repeat(100_000),
            "</div>".repeat(100_000)
        ),
    );
    // One 50 MB line of words.
    let line: String = (0..8_400_000u32)
        .map(|i| ["alpha ", "beta ", "gamma "][(i % 3) as usize])
        .collect();
    write(&dir.join("oneline.md"), line);
    write(
        &dir.join("esc\u{1b}]52;c;aGk=\u{7}\u{1b}[2J\nname.md"),
        "# Koalas\n\nKoalas sleep most of the day in eucalyptus trees.\n",
    );
    #[cfg(unix)]
    {
        use std::os::unix::fs::{symlink, PermissionsExt};
        write(
            &dir.join("secret.md"),
            "# Secret\n\nNo one may read this.\n",
        );
        std::fs::set_permissions(
            dir.join("secret.md"),
            std::fs::Permissions::from_mode(0o000),
        )
        .unwrap();
        symlink("loop2", dir.join("loop1")).unwrap();
        symlink("loop1", dir.join("loop2")).unwrap();
        symlink("..", dir.join("sub/up")).unwrap();
        symlink("/etc/hostname", dir.join("outside.txt")).unwrap();
    }
}

/// A command for `program` that file permissions apply to: as root (which reads any file), it
/// runs through util-linux's `setpriv` without the two capabilities that override them.
fn without_dac_override(program: &str) -> Command {
    use std::os::unix::fs::MetadataExt;
    let root = std::fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0);
    if root {
        let mut c = Command::new("setpriv");
        c.args(["--bounding-set", "-dac_override,-dac_read_search", program]);
        c
    } else {
        Command::new(program)
    }
}

/// Runs the binary, sampling its peak resident memory (`VmHWM`) until it exits.
fn run_measured(args: &[&str], kb: &Path) -> (i32, String, String, u64) {
    let mut child = without_dac_override(env!("CARGO_BIN_EXE_cairn"))
        .args(args)
        .env("CAIRN_KB", kb)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let status_file = format!("/proc/{}/status", child.id());
    let out = std::thread::spawn({
        let mut stdout = child.stdout.take().unwrap();
        move || {
            let mut s = String::new();
            std::io::Read::read_to_string(&mut stdout, &mut s).unwrap();
            s
        }
    });
    let err = std::thread::spawn({
        let mut stderr = child.stderr.take().unwrap();
        move || {
            let mut s = String::new();
            std::io::Read::read_to_string(&mut stderr, &mut s).unwrap();
            s
        }
    });
    let mut peak_kib = 0;
    let code = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status.code().unwrap_or(-1);
        }
        if let Ok(s) = std::fs::read_to_string(&status_file) {
            if let Some(kib) = s
                .lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
            {
                peak_kib = peak_kib.max(kib);
            }
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    (code, out.join().unwrap(), err.join().unwrap(), peak_kib)
}

#[test]
fn hostile_files_are_skipped_by_name_and_the_rest_is_added_within_a_gigabyte() {
    let tmp = tempfile::tempdir().unwrap();
    let docs = tmp.path().join("docs");
    hostile_folder(&docs);
    let kb = tmp.path().join("kb");
    hostile_pdfs(&docs);
    let (code, out, err, peak_kib) = run_measured(
        &["add", docs.to_str().unwrap(), "--max-decompressed", "64"],
        &kb,
    );
    let all = format!("{out}{err}");
    assert_eq!(code, 0, "{all}");
    for (file, why) in [
        ("docs/empty.md", "no text"),
        ("docs/binary.md", "binary"),
        ("docs/utf16-no-bom.txt", "binary"),
        ("docs/sparse.txt", "over the"),
        ("docs/deep.html", "nested 100002 elements deep"),
        ("docs/loop1", "symbolic link, not followed"),
        ("docs/loop2", "symbolic link, not followed"),
        ("docs/outside.txt", "symbolic link, not followed"),
        ("docs/sub/up", "symbolic link, not followed"),
        ("docs/latin1.md", "read as Windows-1252"),
        ("docs/encrypted.pdf", "encrypted PDF"),
        ("docs/ref-loop.pdf", "no text"),
        ("docs/huge-length.pdf", "no text on any of its 1 pages"),
        ("docs/image-only.pdf", "no text on any of its 1 pages"),
        ("docs/bomb.pdf", "expand to more than 67108864 bytes"),
        (
            "docs/panics.pdf",
            "page 1: the PDF reader panicked (missing object reference",
        ),
        ("docs/secret.md", "Permission denied"),
    ] {
        assert!(
            all.lines().any(|l| l.contains(file) && l.contains(why)),
            "no line names {file} with {why:?}:\n{all}"
        );
    }
    assert!(out.contains("5 added"), "{out}");
    // A panic caught in the PDF reader is told as the line above, not as Rust reports one.
    assert!(!all.contains("panicked at"), "{all}");
    // No control byte but newlines reaches the terminal: the file name's escape sequences and
    // its newline are dropped or shown escaped.
    assert!(!all.chars().any(|c| c.is_control() && c != '\n'), "{all:?}");
    assert!(
        peak_kib < 1 << 20,
        "peak RSS {} MiB is over 1 GiB",
        peak_kib >> 10
    );

    // What was added is searchable; the hostile name is shown on one line.
    let search = |q: &str| {
        let (code, out, err, _) = run_measured(&["search", q, "-k", "1"], &kb);
        assert_eq!(code, 0, "{out}{err}");
        out
    };
    assert!(search("zebras savanna").contains("docs/good.md"));
    assert!(search("elephants water holes").contains("docs/utf16-bom.txt"));
    assert!(search("giraffe biscuits").contains("docs/latin1.md"));
    let koalas = search("koalas eucalyptus");
    assert!(
        koalas.lines().next().unwrap().contains("name.md"),
        "{koalas:?}"
    );
    assert!(
        !koalas.chars().any(|c| c.is_control() && c != '\n'),
        "{koalas:?}"
    );
    assert!(search("alpha beta gamma").contains("docs/oneline.md"));
}

#[test]
fn files_that_vanish_or_grow_while_being_added_are_named_and_the_rest_is_added() {
    use std::io::{BufRead, Write};
    let tmp = tempfile::tempdir().unwrap();
    let docs = tmp.path().join("docs");
    std::fs::create_dir_all(&docs).unwrap();
    // Files are read in name order: the empty first one's message says the walk is over.
    write(&docs.join("a-empty.md"), b"");
    for i in 0..120 {
        write(
            &docs.join(format!("b-{i:03}.md")),
            format!("# Note {i}\n\nOtter number {i} floats on its back while eating clams.\n"),
        );
    }
    write(
        &docs.join("zzz-gone.md"),
        "# Gone\n\nThis file is removed.\n",
    );
    // Bytes that are not text: read whole, the file would be skipped as binary. It is large
    // (under the 64 MiB read limit), so that each read of it takes long enough to be sure to
    // see the grower below change it, however loaded the machine.
    let base: u64 = 56 << 20;
    write(
        &docs.join("zzz-growing.md"),
        vec![0u8; usize::try_from(base).unwrap()],
    );
    // It grows from before the run starts until the run ends, without pause (a sleeping grower
    // can miss a whole read on a loaded machine), and starts over at its first size before it
    // passes 60 MiB: each step changes its size, so every read sees a stamp that moved.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let grower = std::thread::spawn({
        let (path, stop) = (docs.join("zzz-growing.md"), stop.clone());
        move || {
            let mut f = std::fs::OpenOptions::new().append(true).open(path).unwrap();
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                if f.metadata().unwrap().len() >= base + (4 << 20) {
                    f.set_len(base).unwrap();
                }
                f.write_all(&[0u8; 4096]).unwrap();
                std::thread::yield_now();
            }
        }
    });

    let mut child = Command::new(env!("CARGO_BIN_EXE_cairn"))
        .args(["add", docs.to_str().unwrap(), "--commit-every", "8"])
        .env("CAIRN_KB", tmp.path().join("kb"))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = std::io::BufReader::new(child.stderr.take().unwrap());
    let mut err = String::new();
    while stderr.read_line(&mut err).unwrap() > 0 && !err.contains("a-empty.md") {}
    assert!(err.contains("a-empty.md"), "{err}");
    // The walk has listed the files; now one goes.
    std::fs::remove_file(docs.join("zzz-gone.md")).unwrap();
    std::io::Read::read_to_string(&mut stderr, &mut err).unwrap();
    let mut out = String::new();
    std::io::Read::read_to_string(&mut child.stdout.take().unwrap(), &mut out).unwrap();
    let status = child.wait().unwrap();
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    grower.join().unwrap();
    assert!(status.success(), "{out}{err}");
    let all = format!("{out}{err}");
    for (file, why) in [
        ("docs/zzz-gone.md", "removed while being added"),
        ("docs/zzz-growing.md", "changed while being read, 3 times"),
    ] {
        assert!(
            all.lines().any(|l| l.contains(file) && l.contains(why)),
            "no line names {file} with {why:?}:\n{all}"
        );
    }
    assert!(out.contains("120 added"), "{out}");
    let search = Command::new(env!("CARGO_BIN_EXE_cairn"))
        .args(["search", "otter number 119 clams", "-k", "1"])
        .env("CAIRN_KB", tmp.path().join("kb"))
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&search.stdout).contains("docs/b-119.md"));
}
