//! Packs from strangers: each hostile pack is refused with a clear error, and nothing is written
//! outside the install directory.

use std::fs;
use std::path::{Path, PathBuf};

use cairn_pack::signature::{self, Signed};
use cairn_pack::{About, Error, Manifest};

fn template(name: &str) -> Manifest {
    Manifest {
        format: cairn_pack::FORMAT_VERSION,
        about: About {
            name: name.into(),
            version: "1.0.0".into(),
            title: "Test".into(),
            ..About::default()
        },
        created: 0,
        embedder: cairn_index::EmbedderId {
            model: "m".into(),
            weights_sha256: "0".repeat(64),
            dim: 4,
        },
        chunking: cairn_index::ChunkOptions {
            max_tokens: 200,
            overlap_tokens: 32,
            min_section_tokens: 24,
        },
        fusion: serde_json::json!({"method": "score"}),
        documents: 1,
        chunks: 2,
        members: Vec::new(),
    }
}

/// A pack of three small files in `dir/good.cairnpack`.
fn good(dir: &Path) -> PathBuf {
    let root = dir.join("src");
    fs::create_dir_all(root.join("bm25")).unwrap();
    fs::write(root.join("meta.redb"), b"store bytes").unwrap();
    fs::write(root.join("bm25/meta.json"), b"{\"segments\":[]}").unwrap();
    fs::write(root.join("bm25/seg.idx"), vec![7u8; 10_000]).unwrap();
    let files = ["bm25/meta.json", "bm25/seg.idx", "meta.redb"].map(String::from);
    let out = dir.join("good.cairnpack");
    cairn_pack::write(&root, &files, template("good"), &out).unwrap();
    out
}

/// Rewrites a pack's manifest (and the header's length) with `edit`, keeping the members' bytes
/// and recomputing the trailer, as a forger would.
fn forge(pack: &Path, out: &Path, edit: impl FnOnce(&mut serde_json::Value)) {
    let bytes = fs::read(pack).unwrap();
    let n = u32::from_le_bytes(bytes[12..16].try_into().unwrap()) as usize;
    let mut v: serde_json::Value = serde_json::from_slice(&bytes[16..16 + n]).unwrap();
    edit(&mut v);
    let json = serde_json::to_vec(&v).unwrap();
    assert!(
        16 + json.len() <= 4096,
        "the forged manifest still fits before the first member"
    );
    let mut forged = bytes[..8].to_vec();
    forged.extend_from_slice(&bytes[8..12]);
    forged.extend_from_slice(&(json.len() as u32).to_le_bytes());
    forged.extend_from_slice(&json);
    forged.resize(4096, 0);
    forged.extend_from_slice(&bytes[4096..bytes.len() - 32]);
    let sum = blake3::hash(&forged);
    forged.extend_from_slice(sum.as_bytes());
    fs::write(out, forged).unwrap();
}

fn listing(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = walk(dir);
    v.sort();
    v
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    if let Ok(entries) = fs::read_dir(dir) {
        for e in entries.flatten() {
            let p = e.path();
            out.push(p.clone());
            if p.is_dir() {
                out.extend(walk(&p));
            }
        }
    }
    out
}

#[test]
fn a_good_pack_verifies_and_installs_into_its_own_directory() {
    let dir = tempfile::tempdir().unwrap();
    let pack = good(dir.path());
    let m = cairn_pack::verify(&pack).unwrap();
    assert_eq!(m.members.len(), 3);
    assert!(m.members.iter().all(|x| x.offset % cairn_pack::ALIGN == 0));
    let packs = dir.path().join("packs");
    let at = cairn_pack::install(&pack, &packs, &no_limit())
        .unwrap()
        .path;
    assert_eq!(at, packs.join("good"));
    assert_eq!(
        fs::read(at.join("bm25/seg.idx")).unwrap(),
        vec![7u8; 10_000]
    );
    assert_eq!(cairn_pack::installed(&packs).unwrap().len(), 1);
    // Reinstalling replaces it; removing removes it.
    cairn_pack::install(&pack, &packs, &no_limit()).unwrap();
    assert!(cairn_pack::remove(&packs, "good").unwrap());
    assert!(listing(&packs).is_empty(), "{:?}", listing(&packs));
}

#[test]
fn the_same_files_give_the_same_bytes() {
    let a = tempfile::tempdir().unwrap();
    let b = tempfile::tempdir().unwrap();
    assert_eq!(
        fs::read(good(a.path())).unwrap(),
        fs::read(good(b.path())).unwrap()
    );
}

#[test]
fn a_truncated_pack_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let pack = good(dir.path());
    let bytes = fs::read(&pack).unwrap();
    for cut in [0, 10, 100, 5000, bytes.len() - 1] {
        let p = dir.path().join(format!("cut{cut}.cairnpack"));
        fs::write(&p, &bytes[..cut]).unwrap();
        let e = cairn_pack::verify(&p).unwrap_err();
        assert!(matches!(e, Error::Malformed { .. }), "{cut}: {e}");
        assert!(e.to_string().contains(&p.display().to_string()), "{e}");
        assert!(cairn_pack::install(&p, &dir.path().join("packs"), &no_limit()).is_err());
    }
    assert!(listing(&dir.path().join("packs")).is_empty());
}

#[test]
fn one_flipped_byte_anywhere_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let pack = good(dir.path());
    let bytes = fs::read(&pack).unwrap();
    // Every 97th byte, and the last: header, manifest, padding, members, trailer.
    let mut positions: Vec<usize> = (0..bytes.len()).step_by(97).collect();
    positions.push(bytes.len() - 1);
    for at in positions {
        let mut b = bytes.clone();
        b[at] ^= 0x01;
        let p = dir.path().join("flipped.cairnpack");
        fs::write(&p, &b).unwrap();
        let e = cairn_pack::verify(&p);
        assert!(e.is_err(), "a flip at byte {at} went unnoticed");
    }
    // A flip inside a member names it.
    let m = cairn_pack::read_manifest(&pack).unwrap();
    let seg = m.members.iter().find(|x| x.path == "bm25/seg.idx").unwrap();
    let mut b = bytes.clone();
    b[(seg.offset + 5) as usize] ^= 0x80;
    let p = dir.path().join("member.cairnpack");
    fs::write(&p, &b).unwrap();
    let e = cairn_pack::verify(&p).unwrap_err();
    assert!(
        e.to_string().contains("member bm25/seg.idx does not match"),
        "{e}"
    );
}

#[test]
fn manifest_paths_outside_the_pack_are_refused_and_nothing_is_written() {
    let dir = tempfile::tempdir().unwrap();
    let pack = good(dir.path());
    let packs = dir.path().join("packs");
    for bad in [
        "../escaped",
        "/tmp/absolute",
        "bm25/../../escaped",
        "./meta.redb",
        "a\u{1b}[2J",
    ] {
        let p = dir.path().join("forged.cairnpack");
        forge(&pack, &p, |v| v["members"][0]["path"] = bad.into());
        let e = cairn_pack::install(&p, &packs, &no_limit()).unwrap_err();
        assert!(matches!(e, Error::UnsafePath { .. }), "{bad}: {e}");
        assert!(!e.to_string().contains('\u{1b}'), "shown escaped: {e}");
    }
    assert!(!dir.path().join("escaped").exists());
    assert!(listing(&packs).is_empty(), "{:?}", listing(&packs));
}

#[test]
fn a_member_over_the_size_limit_is_refused_naming_the_limit() {
    let dir = tempfile::tempdir().unwrap();
    let pack = good(dir.path());
    let packs = dir.path().join("packs");
    let e = cairn_pack::install(
        &pack,
        &packs,
        &cairn_pack::InstallOptions {
            max_member: 1000,
            ..Default::default()
        },
    )
    .unwrap_err();
    assert!(
        e.to_string().contains("over the limit of 1000 bytes"),
        "{e}"
    );
    assert!(listing(&packs).is_empty());
    // A manifest claiming gigabytes the file does not hold.
    let p = dir.path().join("huge.cairnpack");
    forge(&pack, &p, |v| v["members"][2]["size"] = (8u64 << 30).into());
    let e = cairn_pack::install(&p, &packs, &no_limit()).unwrap_err();
    assert!(e.to_string().contains("past the end of the file"), "{e}");
}

#[test]
fn a_newer_format_is_refused_saying_which_one_cairn_reads() {
    let dir = tempfile::tempdir().unwrap();
    let pack = good(dir.path());
    let mut bytes = fs::read(&pack).unwrap();
    bytes[8..12].copy_from_slice(&2u32.to_le_bytes());
    let p = dir.path().join("v2.cairnpack");
    fs::write(&p, bytes).unwrap();
    let e = cairn_pack::verify(&p).unwrap_err();
    assert_eq!(
        e.to_string().lines().next().unwrap(),
        format!(
            "{}: pack format 2 is newer than this cairn reads (format 1)",
            p.display()
        )
    );
}

#[test]
fn signatures_name_what_is_wrong() {
    let dir = tempfile::tempdir().unwrap();
    let pack = good(dir.path());
    let (sk, pk, id) = signature::keygen(&dir.path().join("keys")).unwrap();
    let (_, _, other_id) = signature::keygen(&dir.path().join("other")).unwrap();
    assert_ne!(id, other_id);
    let mine = signature::read_public_key(&pk).unwrap();
    let other = signature::read_public_key(&dir.path().join("other/cairn.pub")).unwrap();
    // No signature.
    let e = signature::check(&pack, std::slice::from_ref(&mine), true).unwrap_err();
    assert!(e.to_string().contains("no signature"), "{e}");
    signature::sign(&pack, &sk).unwrap();
    assert_eq!(
        signature::check(&pack, std::slice::from_ref(&mine), true).unwrap(),
        Signed::Trusted(id.clone())
    );
    // A valid signature by a key that is not trusted.
    let e = signature::check(&pack, &[other], true).unwrap_err();
    assert!(
        e.to_string()
            .contains(&format!("signed by key {id}, which is not trusted")),
        "{e}"
    );
    // The pack changed after signing (re-forged with a valid checksum): the signature fails.
    let copy = dir.path().join("copy.cairnpack");
    forge(&pack, &copy, |v| v["title"] = "Other".into());
    fs::copy(
        signature::signature_path(&pack),
        signature::signature_path(&copy),
    )
    .unwrap();
    cairn_pack::verify(&copy).unwrap();
    let e = signature::check(&copy, &[mine], true).unwrap_err();
    assert!(e.to_string().contains("does not match the file"), "{e}");
    // Keys are never overwritten.
    assert!(signature::keygen(&dir.path().join("keys")).is_err());
}

fn no_limit() -> cairn_pack::InstallOptions {
    cairn_pack::InstallOptions {
        max_member: u64::MAX,
        ..Default::default()
    }
}
