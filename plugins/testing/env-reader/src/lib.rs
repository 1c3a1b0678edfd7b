//! Test fixture: returns the value of each environment variable it is asked about (null when
//! it is not set), to prove what a policy passes through and what it keeps out.

wit_bindgen::generate!({ path: "../../../wit", world: "baton:plugin/tool" });

use exports::baton::plugin::tool_api::{Guest, ToolError, ToolInfo};
use serde::Deserialize;

#[derive(Deserialize)]
struct Input {
    names: Vec<String>,
}

struct EnvReader;

impl Guest for EnvReader {
    fn describe() -> ToolInfo {
        ToolInfo {
            name: "env-reader".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            description: "Reports the values of the named environment variables.".into(),
            input_schema: r#"{"type": "object", "required": ["names"],
                "properties": {"names": {"type": "array", "items": {"type": "string"}}}}"#
                .into(),
            output_schema: r#"{"type": "object", "required": ["vars"]}"#.into(),
        }
    }

    fn invoke(input: String) -> Result<String, ToolError> {
        let input: Input =
            serde_json::from_str(&input).map_err(|e| ToolError::InvalidInput(e.to_string()))?;
        let vars: serde_json::Map<String, serde_json::Value> = input
            .names
            .into_iter()
            .map(|name| {
                let value = std::env::var(&name)
                    .ok()
                    .map_or(serde_json::Value::Null, Into::into);
                (name, value)
            })
            .collect();
        Ok(serde_json::json!({ "vars": vars }).to_string())
    }
}

export!(EnvReader);
