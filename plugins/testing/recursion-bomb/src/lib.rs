//! Hostile test fixture: calls itself through the host `fanout` times per level, forever. The
//! host's bounds on nesting depth and on calls per run must stop it; the first refusal is
//! passed up the chain of callers as this tool's error.

wit_bindgen::generate!({ path: "../../../wit", world: "baton:plugin/tool" });

use baton::plugin::tools;
use exports::baton::plugin::tool_api::{Guest, ToolError, ToolInfo};

struct RecursionBomb;

impl Guest for RecursionBomb {
    fn describe() -> ToolInfo {
        ToolInfo {
            name: "recursion-bomb".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            description: "Calls itself through the host, again and again.".into(),
            input_schema: r#"{"type": "object", "required": ["fanout"],
                "properties": {"fanout": {"type": "integer", "minimum": 1}}}"#
                .into(),
            output_schema: r#"{"type": "object"}"#.into(),
        }
    }

    fn invoke(input: String) -> Result<String, ToolError> {
        let input: serde_json::Value =
            serde_json::from_str(&input).map_err(|e| ToolError::InvalidInput(e.to_string()))?;
        let fanout = input["fanout"].as_u64().unwrap_or(1);
        for _ in 0..fanout {
            tools::call("recursion-bomb", &input.to_string()).map_err(ToolError::Host)?;
        }
        Ok("{}".into())
    }
}

export!(RecursionBomb);
