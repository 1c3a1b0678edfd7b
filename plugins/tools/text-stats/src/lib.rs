//! `text-stats`: counts words, characters, lines and bytes of a text.

wit_bindgen::generate!({ path: "../../../wit", world: "baton:plugin/tool" });

use exports::baton::plugin::tool_api::{Guest, ToolError, ToolInfo};
use serde::Deserialize;

const INPUT_SCHEMA: &str = r#"{
  "type": "object",
  "properties": { "text": { "type": "string" } },
  "required": ["text"],
  "additionalProperties": false
}"#;

const OUTPUT_SCHEMA: &str = r#"{
  "type": "object",
  "properties": {
    "words": { "type": "integer", "minimum": 0 },
    "characters": { "type": "integer", "minimum": 0 },
    "lines": { "type": "integer", "minimum": 0 },
    "bytes": { "type": "integer", "minimum": 0 }
  },
  "required": ["words", "characters", "lines", "bytes"],
  "additionalProperties": false
}"#;

#[derive(Deserialize)]
struct Input {
    text: String,
}

struct TextStats;

impl Guest for TextStats {
    fn describe() -> ToolInfo {
        ToolInfo {
            name: "text-stats".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            description: "Counts the words, characters (Unicode scalar values), lines and bytes \
                          of a text."
                .into(),
            input_schema: INPUT_SCHEMA.into(),
            output_schema: OUTPUT_SCHEMA.into(),
        }
    }

    fn invoke(input: String) -> Result<String, ToolError> {
        let Input { text } =
            serde_json::from_str(&input).map_err(|e| ToolError::InvalidInput(e.to_string()))?;
        Ok(serde_json::json!({
            "words": text.split_whitespace().count(),
            "characters": text.chars().count(),
            // A final line without a trailing newline still counts as a line.
            "lines": text.lines().count(),
            "bytes": text.len(),
        })
        .to_string())
    }
}

export!(TextStats);
