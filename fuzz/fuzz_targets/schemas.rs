//! Tool input and output schemas, and the documents checked against them, from bytes: a schema
//! compiles or is refused, a document matches or is refused naming where, in one line, and
//! never a panic or a hang (a component's schema and a model's input are both hostile).
//!
//! Input: the schema's text, then (after a NUL byte) the document's.

#![no_main]

use baton_runtime::schema::{Direction, ToolSchemas};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|bytes: &[u8]| {
    let text = String::from_utf8_lossy(bytes);
    let (schema, document) = text.split_once('\0').unwrap_or((&text, "{}"));
    let schemas = match ToolSchemas::compile(schema, schema) {
        Ok(schemas) => schemas,
        Err(e) => {
            assert!(
                !e.to_string().contains('\n'),
                "a schema error of many lines"
            );
            return;
        }
    };
    let Ok(document) = serde_json::from_str(document) else {
        return;
    };
    let input = schemas.check(Direction::Input, &document);
    let output = schemas.check(Direction::Output, &document);
    // The same schema judges the same document the same way in both directions.
    assert_eq!(input.is_ok(), output.is_ok());
    if let Err(e) = input {
        assert!(!e.to_string().contains('\n'), "a violation of many lines");
    }
});
