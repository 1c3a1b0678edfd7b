//! `json-query`: runs a JSONPath query (RFC 9535) over a JSON document.

wit_bindgen::generate!({ path: "../../../wit", world: "baton:plugin/tool" });

use exports::baton::plugin::tool_api::{Guest, ToolError, ToolInfo};
use serde::Deserialize;
use serde_json::Value;
use serde_json_path::JsonPath;

const INPUT_SCHEMA: &str = r#"{
  "type": "object",
  "properties": {
    "document": { "description": "Any JSON value" },
    "query": { "type": "string", "description": "JSONPath, e.g. \"$.items[?@.price < 10].name\"" }
  },
  "required": ["document", "query"],
  "additionalProperties": false
}"#;

const OUTPUT_SCHEMA: &str = r#"{
  "type": "object",
  "properties": {
    "matches": { "type": "array" },
    "count": { "type": "integer", "minimum": 0 }
  },
  "required": ["matches", "count"],
  "additionalProperties": false
}"#;

#[derive(Deserialize)]
struct Input {
    document: Value,
    query: String,
}

struct JsonQuery;

impl Guest for JsonQuery {
    fn describe() -> ToolInfo {
        ToolInfo {
            name: "json-query".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            description: "Selects values from a JSON document with a JSONPath query (RFC 9535) \
                          and returns every match in document order."
                .into(),
            input_schema: INPUT_SCHEMA.into(),
            output_schema: OUTPUT_SCHEMA.into(),
        }
    }

    fn invoke(input: String) -> Result<String, ToolError> {
        let Input { document, query } =
            serde_json::from_str(&input).map_err(|e| ToolError::InvalidInput(e.to_string()))?;
        let path = JsonPath::parse(&query)
            .map_err(|e| ToolError::InvalidInput(format!("invalid JSONPath '{query}': {e}")))?;
        let matches: Vec<&Value> = path.query(&document).all();
        Ok(serde_json::json!({ "count": matches.len(), "matches": matches }).to_string())
    }
}

export!(JsonQuery);
