#![no_main]
//! One line of `ask --batch` input: parsed or refused with a code, never a panic; an accepted
//! line's settings are within the documented bounds.

use cairn_engine::batch::parse_line;
use cairn_engine::AskOptions;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(line) = std::str::from_utf8(data) else {
        return;
    };
    let item = parse_line(7, line, &AskOptions::default());
    assert_eq!(item.line, 7);
    match item.parsed {
        Ok((q, o)) => {
            assert!(!q.trim().is_empty() || !line.trim_start().starts_with('{'));
            assert!((1..=100).contains(&o.k));
            assert!((1..=2048).contains(&o.max_tokens));
            assert!((0.0..=2.0).contains(&o.temperature));
        }
        Err(e) => assert!(
            ["bad_json", "bad_field", "missing_question"].contains(&e.code),
            "{}",
            e.code
        ),
    }
});
