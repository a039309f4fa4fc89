#![no_main]
//! The GGUF header, metadata and tensor directory reader, then what cairn derives from the
//! metadata before loading weights: the model shape, the tokenizer and the chat template.

use cairn_generator::{ChatTemplate, GgufFile, Tokenizer};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // GgufFile reads from a path; one file per fuzzing process, on tmpfs where there is one.
    let dir = if std::path::Path::new("/dev/shm").is_dir() {
        "/dev/shm".into()
    } else {
        std::env::temp_dir()
    };
    let path =
        std::path::PathBuf::from(dir).join(format!("cairn-fuzz-{}.gguf", std::process::id()));
    std::fs::write(&path, data).unwrap();
    if let Ok(file) = GgufFile::open(&path) {
        let _ = file.config();
        let _ = file.name();
        if let Ok(tok) = Tokenizer::from_gguf(&file) {
            if let Ok(ids) = tok.encode("Hello, world: «naïve» 東京 \u{0}") {
                let _ = tok.decode(&ids);
            }
        }
        if let Some(t) = file.chat_template() {
            let _ = ChatTemplate::new(Some(t), "<s>", "</s>");
        }
    }
    let _ = std::fs::remove_file(&path);
});
