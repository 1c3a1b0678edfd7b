//! `{{name}}`: a tool that greets someone by name. Change `describe` and `invoke` to make it
//! yours; Baton checks every input against INPUT_SCHEMA before `invoke` runs, and every
//! output against OUTPUT_SCHEMA after.

wit_bindgen::generate!({ path: "wit", world: "baton:plugin/tool" });

use exports::baton::plugin::tool_api::{Guest, ToolError, ToolInfo};
use serde::Deserialize;

const INPUT_SCHEMA: &str = r#"{
  "type": "object",
  "properties": { "name": { "type": "string", "minLength": 1, "maxLength": 100 } },
  "required": ["name"],
  "additionalProperties": false
}"#;

const OUTPUT_SCHEMA: &str = r#"{
  "type": "object",
  "properties": { "greeting": { "type": "string" } },
  "required": ["greeting"],
  "additionalProperties": false
}"#;

#[derive(Deserialize)]
struct Input {
    name: String,
}

struct Component;

impl Guest for Component {
    fn describe() -> ToolInfo {
        ToolInfo {
            name: "{{name}}".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            description: "Greets someone by name.".into(),
            input_schema: INPUT_SCHEMA.into(),
            output_schema: OUTPUT_SCHEMA.into(),
        }
    }

    fn invoke(input: String) -> Result<String, ToolError> {
        let input: Input =
            serde_json::from_str(&input).map_err(|e| ToolError::InvalidInput(e.to_string()))?;
        // What a schema cannot say, the tool checks itself.
        let name = input.name.trim();
        if name.is_empty() {
            return Err(ToolError::InvalidInput("name must not be blank".into()));
        }
        Ok(serde_json::json!({ "greeting": format!("Hello, {name}!") }).to_string())
    }
}

export!(Component);
