#![no_main]
//! The pack reader on arbitrary files: the manifest is read or refused with a message naming the
//! pack, and `verify` never accepts a file whose checksums do not hold.

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let dir = if std::path::Path::new("/dev/shm").is_dir() {
        "/dev/shm".into()
    } else {
        std::env::temp_dir()
    };
    let path =
        std::path::PathBuf::from(dir).join(format!("cairn-fuzz-{}.cairnpack", std::process::id()));
    std::fs::write(&path, data).unwrap();
    let name = path.display().to_string();
    match cairn_pack::read_manifest(&path) {
        Ok(_) => {
            if let Err(e) = cairn_pack::verify(&path) {
                assert!(e.to_string().contains(&name), "{e}");
            }
        }
        Err(e) => assert!(e.to_string().contains(&name), "{e}"),
    }
    let _ = std::fs::remove_file(&path);
});
