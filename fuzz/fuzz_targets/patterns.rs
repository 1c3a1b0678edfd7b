#![no_main]
//! Patterns a component passes to `llm.complete-constrained`, and replies held to them: the
//! input is a pattern, a newline, then a reply. Compiling never panics, a pattern that compiles
//! also parses, and a decoder held to it takes the whole reply and may end there exactly when
//! the `regex` crate matches the whole reply (a second implementation of the same language).

use baton_llm::pattern::{Pattern, check};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some(split) = data.iter().position(|&b| b == b'\n') else {
        return;
    };
    let Ok(pattern) = std::str::from_utf8(&data[..split]) else {
        return;
    };
    let reply = &data[split + 1..];
    let parsed = check(pattern);
    let Ok(compiled) = Pattern::new(pattern) else {
        return;
    };
    assert!(parsed.is_ok(), "{pattern:?} compiled but does not parse");
    let Ok(whole) = regex::bytes::Regex::new(&format!("^(?:{pattern})$")) else {
        return;
    };
    let mut decoder = compiled.decoder();
    let held = decoder.advance(reply) && decoder.may_end();
    assert_eq!(
        held,
        whole.is_match(reply),
        "{pattern:?} on {:?}",
        String::from_utf8_lossy(reply)
    );
});
