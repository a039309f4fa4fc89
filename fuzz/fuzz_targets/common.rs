//! Shared by the targets: checks that hold for every document a reader returns.

use cairn_ingest::{Read, Result};

/// Every section lies inside the text, on character boundaries, and the reader's notices and
/// errors name the file.
pub fn check(read: &Result<Read>, name: &str) {
    match read {
        Ok(r) => {
            let text = &r.document.text;
            for s in &r.document.sections {
                assert!(s.range.start <= s.range.end && s.range.end <= text.len());
                assert!(text.is_char_boundary(s.range.start) && text.is_char_boundary(s.range.end));
                assert!(s.first_line >= 1);
            }
        }
        Err(e) => assert!(e.to_string().contains(name), "{e} does not name {name}"),
    }
}
