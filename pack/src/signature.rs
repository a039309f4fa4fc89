//! Ed25519 signatures in the minisign format: a detached `PACK.minisig` beside the pack, so
//! that `minisign -Vm PACK -p cairn.pub` checks a pack as well as cairn does.

use std::fs;
use std::io::Cursor;
use std::path::{Path, PathBuf};

pub use minisign::PublicKey;
use minisign::{KeyPair, PublicKeyBox, SecretKey, SecretKeyBox, SignatureBox};

use crate::{Error, Result};

/// The detached signature's path for a pack: `PACK.minisig`.
#[must_use]
pub fn signature_path(pack: &Path) -> PathBuf {
    let mut name = pack.as_os_str().to_owned();
    name.push(".minisig");
    PathBuf::from(name)
}

fn sig_error(text: String) -> Error {
    Error::Signature(text)
}

/// A public key's id as minisign prints it (16 hex digits).
#[must_use]
pub fn key_id(pk: &PublicKey) -> String {
    let b = pk.keynum();
    let mut le = [0u8; 8];
    le.copy_from_slice(&b[..8]);
    format!("{:016X}", u64::from_le_bytes(le))
}

/// Writes a new key pair: `dir/cairn.key` (secret, not encrypted: keep it private) and
/// `dir/cairn.pub`. Refuses to overwrite either.
pub fn keygen(dir: &Path) -> Result<(PathBuf, PathBuf, String)> {
    fs::create_dir_all(dir).map_err(|source| Error::Io {
        path: dir.to_owned(),
        source,
    })?;
    let (sk_path, pk_path) = (dir.join("cairn.key"), dir.join("cairn.pub"));
    for p in [&sk_path, &pk_path] {
        if p.exists() {
            return Err(sig_error(format!(
                "{} exists; cairn does not overwrite keys\nhint: choose another --out directory",
                p.display()
            )));
        }
    }
    let KeyPair { pk, sk } = KeyPair::generate_unencrypted_keypair()
        .map_err(|e| sig_error(format!("cannot make a key pair: {e}")))?;
    let id = key_id(&pk);
    let sk_box = sk
        .to_box(Some(&format!("cairn secret key {id}")))
        .map_err(|e| sig_error(e.to_string()))?;
    let pk_box = pk.to_box().map_err(|e| sig_error(e.to_string()))?;
    write_private(&sk_path, sk_box.to_string().as_bytes())?;
    fs::write(&pk_path, pk_box.to_string()).map_err(|source| Error::Io {
        path: pk_path.clone(),
        source,
    })?;
    Ok((sk_path, pk_path, id))
}

#[cfg(unix)]
fn write_private(path: &Path, bytes: &[u8]) -> Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(|source| Error::Io {
            path: path.to_owned(),
            source,
        })?;
    f.write_all(bytes).map_err(|source| Error::Io {
        path: path.to_owned(),
        source,
    })
}

#[cfg(not(unix))]
fn write_private(path: &Path, bytes: &[u8]) -> Result<()> {
    fs::write(path, bytes).map_err(|source| Error::Io {
        path: path.to_owned(),
        source,
    })
}

/// Reads a public key file (minisign's format).
pub fn read_public_key(path: &Path) -> Result<PublicKey> {
    let text = fs::read_to_string(path).map_err(|source| Error::Io {
        path: path.to_owned(),
        source,
    })?;
    PublicKeyBox::from_string(&text)
        .and_then(PublicKeyBox::into_public_key)
        .map_err(|e| {
            sig_error(format!(
                "{}: not a minisign public key: {e}",
                path.display()
            ))
        })
}

/// Signs `pack` with the secret key at `key`, writing `PACK.minisig`; returns its path and the
/// key id. The trusted comment names the pack and its manifest's version.
pub fn sign(pack: &Path, key: &Path) -> Result<(PathBuf, String)> {
    let manifest = crate::verify(pack)?;
    let text = fs::read_to_string(key).map_err(|source| Error::Io {
        path: key.to_owned(),
        source,
    })?;
    let sk = SecretKeyBox::from_string(&text)
        .and_then(SecretKey::from_unencrypted_box)
        .map_err(|e| {
            sig_error(format!(
                "{}: not an unencrypted minisign secret key: {e}",
                key.display()
            ))
        })?;
    let pk = PublicKey::from_secret_key(&sk).map_err(|e| sig_error(e.to_string()))?;
    let file = fs::File::open(pack).map_err(|source| Error::Io {
        path: pack.to_owned(),
        source,
    })?;
    let comment = format!(
        "cairn pack {}@{}",
        manifest.about.name, manifest.about.version
    );
    let sig = minisign::sign(Some(&pk), &sk, file, Some(&comment), None)
        .map_err(|e| sig_error(format!("signing {} failed: {e}", pack.display())))?;
    let out = signature_path(pack);
    fs::write(&out, sig.to_string()).map_err(|source| Error::Io {
        path: out.clone(),
        source,
    })?;
    Ok((out, key_id(&pk)))
}

/// How a pack's signature stands.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Signed {
    /// Signed by a trusted key (its id).
    Trusted(String),
    /// A valid signature by a key that is not trusted (its id).
    Untrusted(String),
}

/// Checks `PACK.minisig` against `trusted` keys. A missing signature, a signature that does not
/// verify, or (with `require_trusted`) a valid one by an unknown key is an error naming which.
pub fn check(pack: &Path, trusted: &[PublicKey], require_trusted: bool) -> Result<Signed> {
    let sig_path = signature_path(pack);
    let text = match fs::read_to_string(&sig_path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(sig_error(format!(
                "{}: no signature ({} does not exist)\nhint: ask its maker for the .minisig, or pass --allow-unsigned if you trust where it came from",
                pack.display(),
                sig_path.display()
            )))
        }
        Err(source) => {
            return Err(Error::Io {
                path: sig_path,
                source,
            })
        }
    };
    let sig = SignatureBox::from_string(&text).map_err(|e| {
        sig_error(format!(
            "{}: not a minisign signature: {e}",
            sig_path.display()
        ))
    })?;
    let data = fs::read(pack).map_err(|source| Error::Io {
        path: pack.to_owned(),
        source,
    })?;
    let signer = {
        let mut le = [0u8; 8];
        le.copy_from_slice(&sig.keynum()[..8]);
        format!("{:016X}", u64::from_le_bytes(le))
    };
    for pk in trusted {
        if key_id(pk) == signer {
            return match minisign::verify(pk, &sig, Cursor::new(&data), true, false, false) {
                Ok(()) => Ok(Signed::Trusted(signer)),
                Err(e) => Err(sig_error(format!(
                    "{}: the signature by key {signer} does not match the file ({e}): the pack was altered after signing",
                    pack.display()
                ))),
            };
        }
    }
    if require_trusted {
        return Err(sig_error(format!(
            "{}: signed by key {signer}, which is not trusted\nhint: `cairn pack verify --trust KEY.pub` checks it with the maker's public key; `cairn pack trust KEY.pub` trusts that key for installs",
            pack.display()
        )));
    }
    Ok(Signed::Untrusted(signer))
}
